#include "edge_pipeline.h"

#include <arpa/inet.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "allowlist.h"
#include "fsutil.h"
#include "log.h"
#include "monotime.h"
#include "report.h"

/* Which file a part was loaded from: the same path naming the same file (common/fsutil) is
 * not read again. */
typedef struct {
    file_id_t file;
    char path[512];
} part_id_t;

static part_id_t part_id(const char *path)
{
    part_id_t id = {file_id_of(path), {0}};
    snprintf(id.path, sizeof id.path, "%s", path);
    return id;
}

static bool same_part(const part_id_t *a, const part_id_t *b)
{
    return file_id_same(&a->file, &b->file) && !strcmp(a->path, b->path);
}

/* The content model, shared by the asset sets that use the same file: loading one builds its
 * search index (0.7 s at 107k training messages), which a new signature set has no need of. */
typedef struct {
    model_t *model;
    model_stats_t st;
    part_id_t id;
    atomic_int refs;
} model_part_t;

/* The context detectors' model and their state (the traffic seen so far), shared likewise:
 * a new signature set must not make the dialog detector forget the calls in progress, which
 * it would then flag at their next message, nor the flood detector its counts. */
typedef struct {
    context_model_t *cmodel;
    context_t *ctx;
    pthread_mutex_t lock;
    part_id_t id;
    atomic_int refs;
} context_part_t;

/* The domain's bans a signature set carries ("bans": the overlay's list of the sources its
 * edges banned), imposed on the edge's ban table when the set is taken ([ban] domain). */
typedef struct {
    char **source; /* "ADDR" or "ADDR/LEN" */
    double *until; /* Unix seconds */
    size_t n;
} domain_bans_t;

struct edge_assets {
    model_part_t *m;
    context_part_t *cx; /* NULL: no context detectors */
    sigdb_t *sigs;      /* NULL: no signature file */
    allowlist_t *allow; /* NULL: none */
    domain_bans_t bans;
    /* the settings they were loaded with: a SIGHUP can change those that shape judgements
     * (monitor, the local policy, reports), and each pipeline takes them with the assets,
     * between two messages, never while another thread writes them */
    edge_config_t c;
    atomic_int refs; /* the slot's and each pipeline's */
};

struct edge_assets_slot {
    pthread_mutex_t lock;
    edge_assets_t *cur;
    atomic_uint_fast64_t gen;
};

struct pipeline {
    uint8_t *aug; /* the message with context pseudo-headers, when the model wants them */
    edge_assets_slot_t *slot;
    const edge_config_t *c; /* the settings of the assets in use (&a->c) */
    uint64_t gen;
    edge_assets_t *a;
    model_scorer_t *scorer;
    sigscratch_t *sigscratch;
    uint64_t rng;
    bantable_t *bans;     /* NULL: no bans */
    log_limit_t *ban_log; /* NULL: every ban logged */
};

static void model_part_release(model_part_t *m)
{
    if (m && atomic_fetch_sub(&m->refs, 1) == 1) {
        model_destroy(&m->model);
        free(m);
    }
}

static void context_part_release(context_part_t *cx)
{
    if (cx && atomic_fetch_sub(&cx->refs, 1) == 1) {
        context_destroy(&cx->ctx);
        context_model_destroy(&cx->cmodel);
        pthread_mutex_destroy(&cx->lock);
        free(cx);
    }
}

static void domain_bans_free(domain_bans_t *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->source[i]);
    free(b->source);
    free(b->until);
    *b = (domain_bans_t){NULL, NULL, 0};
}

static void assets_release(edge_assets_t *a)
{
    if (a && atomic_fetch_sub(&a->refs, 1) == 1) {
        model_part_release(a->m);
        context_part_release(a->cx);
        sigdb_destroy(&a->sigs);
        allowlist_destroy(&a->allow);
        domain_bans_free(&a->bans);
        free(a);
    }
}

static model_part_t *model_part_load(const char *path, char *err, size_t errlen)
{
    model_part_t *m = calloc(1, sizeof *m);
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    m->id = part_id(path); /* before reading: a file replaced meanwhile is read again later */
    if (!(m->model = model_load(path, err, errlen))) {
        free(m);
        return NULL;
    }
    if (model_advice(m->model))
        warning("model %s: %s", path, model_advice(m->model));
    model_stats(m->model, &m->st);
    atomic_init(&m->refs, 1);
    return m;
}

static context_part_t *context_part_load(const char *path, char *err, size_t errlen)
{
    context_part_t *cx = calloc(1, sizeof *cx);
    if (!cx) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    cx->id = part_id(path);
    if (!(cx->cmodel = context_model_load(path, err, errlen)) ||
        !(cx->ctx = context_new(cx->cmodel))) {
        if (cx->cmodel)
            snprintf(err, errlen, "out of memory");
        context_model_destroy(&cx->cmodel);
        free(cx);
        return NULL;
    }
    pthread_mutex_init(&cx->lock, NULL);
    atomic_init(&cx->refs, 1);
    return cx;
}

/* The allowed sources a signature set carries ("allow": the overlay's list for the whole
 * domain), or NULL in *allow when it has none. Returns -1 with the reason in err when they
 * are not a list of addresses and prefixes. */
static int set_allowlist(const json_t *root, const char *path, allowlist_t **allow, char *err,
                         size_t errlen)
{
    json_t *list = json_object_get(root, "allow"), *v;
    *allow = NULL;
    if (!list)
        return 0;
    if (!json_is_array(list)) {
        snprintf(err, errlen, "%s: \"allow\" must be an array of addresses and prefixes", path);
        return -1;
    }
    size_t n = 0, i;
    json_array_foreach(list, i, v)
    {
        if (!json_is_string(v)) {
            snprintf(err, errlen, "%s: allow[%zu] must be a string", path, i);
            return -1;
        }
        n += json_string_length(v) + 1;
    }
    char *text = malloc(n + 1), *t = text;
    if (!text) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    json_array_foreach(list, i, v)
    {
        /* one entry a line, so a wrong one is named by its place (line k is allow[k - 1]) */
        memcpy(t, json_string_value(v), json_string_length(v));
        t += json_string_length(v);
        *t++ = '\n';
    }
    char name[600];
    snprintf(name, sizeof name, "%s: allow", path);
    *allow = allowlist_parse(text, (size_t)(t - text), name, err, errlen);
    free(text);
    return *allow ? 0 : -1;
}

/* Checks one of a set's bans; NULL, or what is wrong with it. */
static const char *check_domain_ban(const json_t *b)
{
    const json_t *src = json_object_get(b, "source"), *until = json_object_get(b, "until");
    if (!json_is_object(b))
        return "is not an object";
    if (!json_is_string(src))
        return "\"source\" must be a string";
    if (!json_is_number(until) || !isfinite(json_number_value(until)) ||
        json_number_value(until) <= 0)
        return "\"until\" must be a Unix time";
    if (json_string_length(src) != strlen(json_string_value(src)) || /* a NUL inside */
        !allowlist_entry_valid(json_string_value(src)))
        return "\"source\" is not an address or prefix";
    return NULL;
}

/* The domain's bans a signature set carries ("bans": [{"source", "until"}]), none when it has
 * none. Returns -1 with the reason in err when they are not such a list. */
static int set_domain_bans(const json_t *root, const char *path, domain_bans_t *out, char *err,
                           size_t errlen)
{
    const json_t *list = json_object_get(root, "bans"), *b;
    *out = (domain_bans_t){NULL, NULL, 0};
    if (!list)
        return 0;
    if (!json_is_array(list)) {
        snprintf(err, errlen, "%s: \"bans\" must be an array of {\"source\", \"until\"}", path);
        return -1;
    }
    size_t n = json_array_size(list), i;
    out->source = calloc(n ? n : 1, sizeof *out->source);
    out->until = malloc((n ? n : 1) * sizeof *out->until);
    if (!out->source || !out->until) {
        domain_bans_free(out);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    json_array_foreach(list, i, b)
    {
        const char *why = check_domain_ban(b);
        if (why) {
            snprintf(err, errlen, "%s: bans[%zu] %s", path, i, why);
            domain_bans_free(out);
            return -1;
        }
        if (!(out->source[out->n] = strdup(json_string_value(json_object_get(b, "source"))))) {
            snprintf(err, errlen, "out of memory");
            domain_bans_free(out);
            return -1;
        }
        out->until[out->n++] = json_number_value(json_object_get(b, "until"));
    }
    return 0;
}

/* A signature file, and the allowed sources and the domain's bans it carries. */
static sigdb_t *load_signatures(const char *path, const embed_opts_t *eo, allowlist_t **allow,
                                domain_bans_t *bans, char *err, size_t errlen)
{
    json_t *root = NULL;
    sigdb_t *db = sigdb_load_doc(path, eo, &root, err, errlen);
    if (db && (set_allowlist(root, path, allow, err, errlen) != 0 ||
               set_domain_bans(root, path, bans, err, errlen) != 0))
        sigdb_destroy(&db);
    json_decref(root);
    return db;
}

/* The allowed sources: the edge's own file, and the signature set's (already in *allow). */
static int add_allow_file(const edge_config_t *c, allowlist_t **allow, char *err, size_t errlen)
{
    if (!c->allow_file[0])
        return 0;
    allowlist_t *own = allowlist_load(c->allow_file, err, errlen), *both = NULL;
    if (own && *allow && !(both = allowlist_union(own, *allow)))
        snprintf(err, errlen, "out of memory");
    if (!own || (*allow && !both)) {
        allowlist_destroy(&own);
        return -1;
    }
    if (both) {
        allowlist_destroy(&own);
        allowlist_destroy(allow);
    }
    *allow = both ? both : own;
    return 0;
}

/* Takes a reference to the current assets. */
static edge_assets_t *assets_acquire(edge_assets_slot_t *slot, uint64_t *gen)
{
    pthread_mutex_lock(&slot->lock);
    edge_assets_t *a = slot->cur;
    atomic_fetch_add(&a->refs, 1);
    *gen = atomic_load(&slot->gen);
    pthread_mutex_unlock(&slot->lock);
    return a;
}

/* The assets of the config, taking the model and the context part of prev (NULL: none) where
 * their files are the same ones. */
static edge_assets_t *assets_load(const edge_config_t *c, const edge_assets_t *prev, char *err,
                                  size_t errlen)
{
    edge_assets_t *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&a->refs, 1);
    a->c = *c;
    part_id_t mid = part_id(c->model);
    if (prev && same_part(&prev->m->id, &mid)) {
        a->m = prev->m;
        atomic_fetch_add(&a->m->refs, 1);
    } else if (!(a->m = model_part_load(c->model, err, errlen))) {
        assets_release(a);
        return NULL;
    }
    const model_t *model = a->m->model;
    if (c->signatures_file[0]) { /* the overlay's allowed sources come with its set */
        a->sigs = load_signatures(c->signatures_file, &model_options(model)->embed, &a->allow,
                                  &a->bans, err, errlen);
        if (!a->sigs) {
            assets_release(a);
            return NULL;
        }
    }
    if (model_options(model)->context_headers && !c->context_model[0]) {
        snprintf(err, errlen,
                 "%s was trained with context pseudo-headers: set [detectors] "
                 "context to the context model it was trained with",
                 c->model);
        assets_release(a);
        return NULL;
    }
    if (c->context_model[0]) {
        part_id_t cid = part_id(c->context_model);
        if (prev && prev->cx && same_part(&prev->cx->id, &cid)) {
            a->cx = prev->cx;
            atomic_fetch_add(&a->cx->refs, 1);
        } else if (!(a->cx = context_part_load(c->context_model, err, errlen))) {
            assets_release(a);
            return NULL;
        }
    }
    if (add_allow_file(c, &a->allow, err, errlen) != 0) {
        assets_release(a);
        return NULL;
    }
    return a;
}

edge_assets_t *edge_assets_load(const edge_config_t *c, char *err, size_t errlen)
{
    return assets_load(c, NULL, err, errlen);
}

edge_assets_t *edge_assets_reload(edge_assets_slot_t *slot, const edge_config_t *c,
                                  edge_reload_t *what, char *err, size_t errlen)
{
    uint64_t gen;
    edge_assets_t *cur = assets_acquire(slot, &gen);
    edge_assets_t *a = assets_load(c, cur, err, errlen);
    if (a && what)
        *what = (edge_reload_t){a->m != cur->m, a->cx && a->cx != cur->cx};
    assets_release(cur);
    return a;
}

edge_assets_slot_t *edge_assets_slot_new(edge_assets_t *initial)
{
    edge_assets_slot_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_mutex_init(&s->lock, NULL);
    s->cur = initial;
    atomic_init(&s->gen, 1);
    return s;
}

void edge_assets_publish(edge_assets_slot_t *slot, edge_assets_t *a)
{
    pthread_mutex_lock(&slot->lock);
    edge_assets_t *old = slot->cur;
    slot->cur = a;
    atomic_fetch_add(&slot->gen, 1);
    pthread_mutex_unlock(&slot->lock);
    assets_release(old);
}

void edge_assets_slot_destroy(edge_assets_slot_t **self)
{
    edge_assets_slot_t *s = *self;
    if (!s)
        return;
    assets_release(s->cur);
    pthread_mutex_destroy(&s->lock);
    free(s);
    *self = NULL;
}

long edge_assets_impose_bans(edge_assets_slot_t *slot, bantable_t *t, double now)
{
    uint64_t gen;
    edge_assets_t *a = assets_acquire(slot, &gen);
    long n =
        bantable_set_domain(t, (const char *const *)a->bans.source, a->bans.until, a->bans.n, now);
    assets_release(a);
    return n;
}

void edge_assets_info(edge_assets_slot_t *slot, size_t *signatures, uint64_t *sig_sequence,
                      model_stats_t *st, size_t *allowed)
{
    uint64_t gen;
    edge_assets_t *a = assets_acquire(slot, &gen);
    *signatures = a->sigs ? sigdb_count(a->sigs) : 0;
    *sig_sequence = a->sigs ? sigdb_sequence(a->sigs) : 0;
    *st = a->m->st;
    *allowed = allowlist_size(a->allow);
    assets_release(a);
}

bool edge_assets_context_stats(edge_assets_slot_t *slot, context_stats_t *out)
{
    uint64_t gen;
    edge_assets_t *a = assets_acquire(slot, &gen);
    bool on = a->cx != NULL;
    if (on) {
        pthread_mutex_lock(&a->cx->lock);
        context_stats(a->cx->ctx, out);
        pthread_mutex_unlock(&a->cx->lock);
    }
    assets_release(a);
    return on;
}

const char *edge_verdict_name(verdict_t v)
{
    static const char *names[] = {"normal", "anomaly", "signature", "banned"};
    return (unsigned)v < VERDICT_COUNT ? names[v] : "?";
}

const char *edge_waived_name(waived_t w)
{
    static const char *names[] = {NULL, "allowed", "monitor"};
    return (unsigned)w < WAIVED_COUNT ? names[w] : NULL;
}

/* Moves the pipeline to the current assets when a new set was published. */
static int follow_assets(pipeline_t *p)
{
    if (p->a && atomic_load(&p->slot->gen) == p->gen)
        return 0;
    uint64_t gen;
    edge_assets_t *a = assets_acquire(p->slot, &gen);
    /* the same model keeps its scorer (whose searcher is sized by the training set), unless
     * reports now name top features and it was made without explanations, or the reverse */
    bool explain = a->c.top_features > 0;
    bool same_model = p->a && p->a->m == a->m && (p->a->c.top_features > 0) == explain;
    model_scorer_t *scorer = same_model ? p->scorer : model_scorer_new(a->m->model, explain);
    sigscratch_t *ss = a->sigs ? sigdb_scratch_new(a->sigs) : NULL;
    if (!scorer || (a->sigs && !ss)) {
        if (!same_model)
            model_scorer_destroy(&scorer);
        sigdb_scratch_destroy(&ss);
        assets_release(a);
        return -1;
    }
    if (!same_model)
        model_scorer_destroy(&p->scorer);
    sigdb_scratch_destroy(&p->sigscratch);
    assets_release(p->a);
    p->a = a;
    p->c = &a->c;
    p->gen = gen;
    p->scorer = scorer;
    p->sigscratch = ss;
    return 0;
}

pipeline_t *pipeline_new(edge_assets_slot_t *slot, uint64_t seed)
{
    pipeline_t *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->slot = slot;
    p->rng = seed | 1;
    p->aug = malloc(CONTEXT_AUG_MAX);
    if (!p->aug || follow_assets(p) != 0) {
        pipeline_destroy(&p);
        return NULL;
    }
    return p;
}

void pipeline_set_bans(pipeline_t *p, bantable_t *bans, log_limit_t *ban_log)
{
    p->bans = bans;
    p->ban_log = ban_log;
}

const edge_config_t *pipeline_config(pipeline_t *p)
{
    follow_assets(p); /* out of memory: the settings in use stay */
    return p->c;
}

void pipeline_destroy(pipeline_t **self)
{
    pipeline_t *p = *self;
    if (!p)
        return;
    model_scorer_destroy(&p->scorer);
    sigdb_scratch_destroy(&p->sigscratch);
    assets_release(p->a);
    free(p->aug);
    free(p);
    *self = NULL;
}

static double uniform(pipeline_t *p)
{
    p->rng ^= p->rng << 13;
    p->rng ^= p->rng >> 7;
    p->rng ^= p->rng << 17;
    return (double)(p->rng >> 11) / 9007199254740992.0;
}

/* The local-model policy of the config, given the global score and whether a signature matched.
 * A message already flagged needs no local score for its verdict, and under attack such
 * messages are most of the traffic and the slowest to search (local_flagged = no). */
static bool wants_local(pipeline_t *p, const model_score_t *g, double thr_global, bool signature)
{
    if (!p->c->local_flagged && (g->global_anomaly || signature))
        return false;
    switch (p->c->local_policy) {
    case LOCAL_ALWAYS:
        return true;
    case LOCAL_NEAR:
        return g->global >= (1 - p->c->local_margin) * thr_global;
    case LOCAL_SAMPLE:
        return g->global_anomaly || uniform(p) < p->c->local_sample;
    case LOCAL_NEVER:
        return false;
    }
    return true;
}

/* The signatures matching the message just embedded (its shaped bytes and vector v). */
static void match_signatures(pipeline_t *p, embed_t *e, const sparse_t *v, edge_result_t *out)
{
    if (!p->a->sigs)
        return;
    size_t len;
    const uint8_t *bytes = embed_last_bytes(e, &len);
    if (sigdb_match(p->a->sigs, p->sigscratch, bytes, len, v, &out->sigs) < 0)
        out->sigs.n = 0;
    for (int i = 0; i < out->sigs.n; i++)
        out->sig_ids[i] = sigdb_id(p->a->sigs, out->sigs.index[i]);
}

/* Counts a blocking judgement against the message's source, and logs the ban it may start. */
static void note_strike(pipeline_t *p, const msg_t *m, double now, edge_result_t *out)
{
    unsigned strikes =
        out->verdict == VERDICT_SIGNATURE ? (unsigned)p->c->ban_signature_strikes : 1;
    double len = bantable_strike(p->bans, &m->src, strikes, now);
    if (len <= 0)
        return;
    out->banned_for = len;
    if (p->ban_log && !log_limit_take(p->ban_log, mono_now()))
        return;
    char src[INET6_ADDRSTRLEN + 8];
    bantable_source_text(p->bans, &m->src, src, sizeof src);
    char weight[48] = "";
    if (strikes > 1)
        snprintf(weight, sizeof weight, ", counting for %u", strikes);
    warning("banned %s for %.0f s: %ld blocking judgements within %g s (the last: %s%s%s)", src,
            len, p->c->ban_after, p->c->ban_window, edge_verdict_name(out->verdict), weight,
            p->c->monitor ? "; monitor mode: not enforced" : "");
}

int pipeline_run(pipeline_t *p, const msg_t *m, edge_result_t *out)
{
    double t0 = mono_now();
    if (follow_assets(p) != 0)
        return -1;
    memset(out, 0, sizeof *out);
    out->allowed = allowlist_contains(p->a->allow, &m->src);
    out->thr_global = p->a->m->st.thr_global;
    out->thr_local = p->a->m->st.thr_local;
    /* a SIGHUP may have turned bans off ([ban] after = 0, domain = no): the table stays, unused */
    bool bans_on = p->bans && (p->c->ban_after > 0 || p->c->ban_domain);
    double now = bans_on ? ban_clock() : 0;
    if (bans_on && !out->allowed && (out->banned_for = bantable_banned(p->bans, &m->src, now))) {
        /* not checked, scored or shown to the context detectors: the point of a ban is that
         * the source costs nothing more */
        out->verdict = VERDICT_BANNED;
        out->waived = p->c->monitor ? WAIVED_MONITOR : WAIVED_NO;
        out->seconds = mono_now() - t0;
        return 0;
    }
    sipcheck_message(m->data, m->len, &out->info);
    if (p->a->cx) {
        pthread_mutex_lock(&p->a->cx->lock);
        context_observe(p->a->cx->ctx, m, &out->info, &out->ctx);
        pthread_mutex_unlock(&p->a->cx->lock);
    }
    embed_t *e = model_scorer_embed(p->scorer);
    const uint8_t *data = m->data;
    size_t len = m->len, n;
    if (model_options(p->a->m->model)->context_headers &&
        (n = context_augment(&out->ctx, m->data, m->len, p->aug, CONTEXT_AUG_MAX))) {
        data = p->aug;
        len = n;
    }
    /* without signatures or the local model nothing reads the vector but a report's
     * explanation, which counts the message again */
    if (p->a->sigs || p->c->local_policy != LOCAL_NEVER) {
        if (model_scorer_embed_message(p->scorer, data, len) != 0)
            return -1;
        match_signatures(p, e, model_scorer_vector(p->scorer), out);
        model_score_embedded(p->scorer, false, &out->score);
    } else if (model_score_message(p->scorer, data, len, false, &out->score) != 0) {
        return -1;
    }
    if (wants_local(p, &out->score, out->thr_global, out->sigs.n > 0))
        model_score_embedded(p->scorer, true, &out->score);
    if (out->sigs.n > 0)
        out->verdict = VERDICT_SIGNATURE;
    else if (out->score.global_anomaly || out->score.local_anomaly || out->ctx.anomaly)
        out->verdict = VERDICT_ANOMALY;
    else
        out->verdict = VERDICT_NORMAL;
    if (out->verdict != VERDICT_NORMAL)
        out->waived = out->allowed ? WAIVED_ALLOWED : p->c->monitor ? WAIVED_MONITOR : WAIVED_NO;
    if (bans_on && p->c->ban_after > 0 && !out->allowed && out->verdict != VERDICT_NORMAL &&
        ban_counts(&out->info))
        note_strike(p, m, now, out);
    out->seconds = mono_now() - t0;
    return 0;
}

static json_t *features_array(const model_feature_t *f, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(
            a, json_pack("{s:s, s:f}", "feature", f[i].feature, "contribution", f[i].contribution));
    return a;
}

json_t *pipeline_report(pipeline_t *p, const msg_t *m, const edge_result_t *r)
{
    json_t *o = report_message_fields(m, &r->info);
    json_object_set_new(o, "edge", json_string(p->c->id));
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    json_object_set_new(o, "reported_at",
                        json_real((double)now.tv_sec + (double)now.tv_nsec * 1e-9));
    json_object_set_new(o, "verdict", json_string(edge_verdict_name(r->verdict)));
    if (r->banned_for > 0 && p->bans) {
        /* this judgement banned the source (a banned one is not reported); the overlay shares
         * the ban under the source's text (an IPv6 one as its prefix) */
        char src[INET6_ADDRSTRLEN + 8];
        bantable_source_text(p->bans, &m->src, src, sizeof src);
        json_object_set_new(o, "banned_for", json_real(r->banned_for));
        json_object_set_new(o, "ban_source", json_string(src));
    }
    /* the signature set this edge enforced, so the overlay can show which edges lag */
    json_object_set_new(
        o, "signature_sequence",
        json_integer(p->a && p->a->sigs ? (json_int_t)sigdb_sequence(p->a->sigs) : 0));
    json_t *fired = json_array();
    if (r->sigs.n)
        json_array_append_new(fired, json_string("signature"));
    if (r->score.global_anomaly)
        json_array_append_new(fired, json_string("global"));
    if (r->score.local_anomaly)
        json_array_append_new(fired, json_string("local"));
    context_report(&r->ctx, o, fired);
    json_object_set_new(o, "detector", fired);
    json_object_set_new(o, "global", json_real(r->score.global));
    json_object_set_new(o, "local", r->score.local_done ? json_real(r->score.local) : json_null());
    json_object_set_new(o, "threshold_global", json_real(r->thr_global));
    json_object_set_new(o, "threshold_local", json_real(r->thr_local));
    json_t *sigs = json_array();
    for (int i = 0; i < r->sigs.n; i++)
        json_array_append_new(
            sigs, json_pack("{s:s, s:f}", "id", r->sig_ids[i], "score", r->sigs.score[i]));
    json_object_set_new(o, "signatures", sigs);
    if (p->c->top_features > 0) {
        model_explain_t ex;
        model_explain(p->scorer, &r->score, &ex);
        int ng = ex.n_global < p->c->top_features ? ex.n_global : (int)p->c->top_features;
        int nl = ex.n_local < p->c->top_features ? ex.n_local : (int)p->c->top_features;
        json_t *top = json_object();
        json_object_set_new(top, "global", features_array(ex.global, ng));
        json_object_set_new(top, "local", features_array(ex.local, nl));
        json_object_set_new(o, "top_features", top);
    }
    if (p->c->raw)
        json_object_set_new(o, "raw", report_raw_string(m->data, m->len));
    return o;
}
