#include "sigman.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "allowlist.h"
#include "fsutil.h"
#include "input.h"
#include "log.h"
#include "model.h"
#include "report.h"

void sigman_opts_default(sigman_opts_t *o)
{
    memset(o, 0, sizeof *o);
    siggen_opts_default(&o->gen);
    o->lifetime = 7 * 24 * 3600;
    o->share_bans = true;
    o->max_bans = 10000;
}

/* The raw message of a report's JSON, as bytes (malloc'd), or NULL; fills the report. */
static uint8_t *raw_of(const char *json, size_t len, size_t *out_len, json_t **report)
{
    json_error_t je;
    *report = json_loadb(json, len, JSON_ALLOW_NUL, &je);
    json_t *raw = json_object_get(*report, "raw");
    if (!json_is_string(raw))
        return NULL;
    size_t rl = json_string_length(raw);
    uint8_t *b = malloc(rl + 1);
    if (b)
        *out_len = report_raw_bytes(json_string_value(raw), rl, b);
    return b;
}

struct sigman {
    sigman_opts_t o;
    siggen_t *gen;
    int64_t after;    /* the last report placed (its number in the store) */
    uint64_t unbuilt; /* reports placed since the last build */
    uint64_t placed;  /* reports placed since start */
    int64_t saved;    /* the last report placed when the clusters were last saved */
    bool unsaved;     /* placed or built since the last save */
    json_t *outcomes; /* cluster key -> its last build's result, for the API (saved too) */
};

/* Places one stored report in its cluster, keyed by the edge and sequence that sent it. */
static int add_report(void *ctx, const char *json, size_t len, double received)
{
    sigman_t *sm = ctx;
    json_t *o;
    size_t n = 0;
    uint8_t *b = raw_of(json, len, &n, &o);
    if (b) {
        const char *edge = json_string_value(json_object_get(o, "edge"));
        char key[96];
        snprintf(key, sizeof key, "%s/%" JSON_INTEGER_FORMAT, edge ? edge : "",
                 json_integer_value(json_object_get(o, "seq")));
        siggen_add_report(sm->gen, b, n, edge, json_number_value(json_object_get(o, "ts")),
                          received, key);
        sm->unbuilt++;
        sm->placed++;
        sm->unsaved = true;
    }
    free(b);
    json_decref(o);
    return 0;
}

static int add_clean_report(void *ctx, const char *json, size_t len)
{
    json_t *o;
    size_t n = 0;
    uint8_t *b = raw_of(json, len, &n, &o);
    if (b)
        siggen_add_clean(ctx, b, n);
    free(b);
    json_decref(o);
    return 0;
}

/* The clean sample: what edges sampled, and the configured captures. */
static int add_clean(siggen_t *g, store_t *s, const char *paths, char *err, size_t errlen)
{
    char list[1024];
    snprintf(list, sizeof list, "%s", paths);
    size_t n = store_count_clean(s);
    if (store_each_clean(s, add_clean_report, g) != 0) {
        snprintf(err, errlen, "store: %s", store_error(s));
        return -1;
    }
    for (char *save, *p = strtok_r(list, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        input_t *in = input_open(p, NULL, err, errlen);
        if (!in)
            return -1;
        msg_t m;
        while (input_next(in, &m) == 1) {
            siggen_add_clean(g, m.data, m.len);
            n++;
        }
        input_close(&in);
    }
    if (n == 0) {
        snprintf(err, errlen,
                 "no clean traffic: set [signatures] clean to normal captures, or "
                 "have edges sample normal messages ([report] normal_sample)");
        return -1;
    }
    return 0;
}

/* The builder's settings from the overlay's: the approval policy rides with them */
static siggen_opts_t builder_opts(const sigman_opts_t *o)
{
    siggen_opts_t go = o->gen;
    go.auto_members = o->auto_approve;
    go.auto_edges = o->auto_edges ? o->auto_edges : 1;
    return go;
}

void sigman_set_policy(sigman_t *sm, const sigman_opts_t *o)
{
    siggen_opts_t go = builder_opts(o);
    siggen_set_policy(sm->gen, &go);
    memcpy(sm->o.clean, o->clean, sizeof sm->o.clean);
    sm->o.auto_approve = o->auto_approve;
    sm->o.auto_edges = o->auto_edges;
    sm->o.lifetime = o->lifetime;
    sm->o.share_bans = o->share_bans;
    sm->o.max_bans = o->max_bans;
    sm->o.gen.presence = o->gen.presence;
    sm->o.gen.max_strings = o->gen.max_strings;
    sm->o.gen.bilateral = o->gen.bilateral;
    sm->o.gen.tighten = o->gen.tighten;
}

sigman_t *sigman_new(const sigman_opts_t *o, char *err, size_t errlen)
{
    if (!o->model[0]) {
        snprintf(err, errlen, "no model: set [signatures] model to the edges' model");
        return NULL;
    }
    model_t *m = model_load(o->model, err, errlen);
    if (!m)
        return NULL;
    if (model_advice(m))
        warning("signatures model %s: %s", o->model, model_advice(m));
    sigman_t *sm = calloc(1, sizeof *sm);
    siggen_opts_t go = builder_opts(o);
    if (sm) {
        sm->o = *o;
        sm->gen = siggen_new(&model_options(m)->embed, &go);
        sm->outcomes = json_object();
    }
    if (!sm || !sm->gen || !sm->outcomes) {
        if (sm && !sm->gen && model_options(m)->embed.kind != EMBED_NGRAM)
            snprintf(err, errlen, "%s embeds tokens; signatures need byte n-grams", o->model);
        else
            snprintf(err, errlen, "out of memory");
        if (sm) {
            siggen_destroy(&sm->gen);
            json_decref(sm->outcomes);
        }
        free(sm);
        sm = NULL;
    }
    model_destroy(&m);
    return sm;
}

void sigman_destroy(sigman_t **self)
{
    if (!*self)
        return;
    siggen_destroy(&(*self)->gen);
    json_decref((*self)->outcomes);
    free(*self);
    *self = NULL;
}

long sigman_ingest(sigman_t *sm, store_t *s, size_t max)
{
    return store_each_report_after(s, &sm->after, max, add_report, sm);
}

size_t sigman_clusters(const sigman_t *sm)
{
    return siggen_clusters(sm->gen);
}

uint64_t sigman_placed(const sigman_t *sm)
{
    return sm->placed;
}

int64_t sigman_last_placed(const sigman_t *sm)
{
    return sm->after;
}

uint64_t sigman_unbuilt(const sigman_t *sm)
{
    return sm->unbuilt;
}

int sigman_resume(sigman_t *sm, store_t *s, size_t *clusters, char *err, size_t errlen)
{
    int64_t after = 0;
    uint64_t unbuilt = 0;
    uint8_t *state = NULL;
    char *notes = NULL;
    size_t len = 0;
    int rc = store_load_clusters(s, &after, &unbuilt, &state, &len, &notes);
    if (rc <= 0) {
        if (rc < 0)
            snprintf(err, errlen, "store: %s", store_error(s));
        return rc;
    }
    char why[300];
    if (siggen_load_clusters(sm->gen, state, len, why, sizeof why) != 0) {
        snprintf(err, errlen, "%s", why);
        rc = -1;
    } else {
        sm->after = sm->saved = after;
        sm->unbuilt = unbuilt;
        *clusters = siggen_clusters(sm->gen);
        /* the last build results, when they read back as an object (else none: the API
         * then says null until the next build) */
        json_t *o = notes ? json_loads(notes, 0, NULL) : NULL;
        if (json_is_object(o)) {
            json_decref(sm->outcomes);
            sm->outcomes = json_incref(o);
        }
        json_decref(o);
    }
    free(state);
    free(notes);
    return rc;
}

int sigman_save(sigman_t *sm, store_t *s, double now, size_t *bytes, char *err, size_t errlen)
{
    size_t len = 0;
    uint8_t *state = siggen_save_clusters(sm->gen, &len);
    if (!state) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char *notes = json_dumps(sm->outcomes, JSON_COMPACT);
    int rc = store_save_clusters(s, sm->after, sm->unbuilt, now, state, len, notes);
    free(notes);
    free(state);
    if (rc != 0) {
        snprintf(err, errlen, "store: %s", store_error(s));
        return -1;
    }
    sm->saved = sm->after;
    sm->unsaved = false;
    *bytes = len;
    return 0;
}

int64_t sigman_saved(const sigman_t *sm)
{
    return sm->saved;
}

bool sigman_unsaved(const sigman_t *sm)
{
    return sm->unsaved;
}

static int by_members_desc(const void *a, const void *b)
{
    const cluster_t *x = *(const cluster_t *const *)a, *y = *(const cluster_t *const *)b;
    if (x->members != y->members)
        return x->members < y->members ? 1 : -1;
    return x->founded < y->founded ? -1 : x->founded > y->founded; /* older first */
}

/* A cluster as the API lists it, with its newest signature from the store. */
static json_t *cluster_json(const cluster_t *k, store_t *s, json_t *outcome)
{
    json_t *sig = store_cluster_signature(s, k->key), *brief = json_null();
    if (sig)
        brief =
            json_pack("{s:O, s:O, s:O}", "id", json_object_get(sig, "id"), "state",
                      json_object_get(sig, "state"), "version", json_object_get(sig, "version"));
    json_decref(sig);
    return json_pack("{s:s, s:I, s:I, s:o, s:f, s:f, s:f, s:o, s:b, s:o, s:o}", "key", k->key,
                     "members", (json_int_t)k->members, "kept", (json_int_t)k->n, "edges",
                     siggen_cluster_edges(k), "first_seen", k->first, "last_seen", k->last,
                     "last_arrival", k->arrived, "absorbed", siggen_cluster_absorbed(k),
                     "grown_since_build", k->changed, "signature", brief ? brief : json_null(),
                     "last_build", outcome ? json_incref(outcome) : json_null());
}

json_t *sigman_list_clusters(const sigman_t *sm, store_t *s, size_t min_members, size_t limit)
{
    size_t n = siggen_clusters(sm->gen), m = 0;
    const cluster_t **all = malloc((n ? n : 1) * sizeof *all);
    json_t *list = json_array();
    if (!all || !list) {
        free(all);
        json_decref(list);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const cluster_t *k = siggen_cluster(sm->gen, i);
        if (k->members >= min_members)
            all[m++] = k;
    }
    qsort(all, m, sizeof *all, by_members_desc);
    for (size_t i = 0; i < m && i < limit; i++)
        json_array_append_new(list,
                              cluster_json(all[i], s, json_object_get(sm->outcomes, all[i]->key)));
    free(all);
    return list;
}

static void content_hash(json_t *sig, char out[17])
{
    char *feats = json_dumps(json_object_get(sig, "features"), JSON_COMPACT | JSON_SORT_KEYS);
    snprintf(out, 17, "%016llx",
             (unsigned long long)XXH3_64bits(feats ? feats : "", feats ? strlen(feats) : 0));
    free(feats);
}

static int store_doc(store_t *s, const char *id, json_t *sig, double now)
{
    char *text = json_dumps(sig, JSON_COMPACT);
    int r = text ? store_update_signature_doc(s, id, text, now) : -1;
    free(text);
    return r;
}

/* Pending signatures of clusters that merged into this one are superseded by its signature
 * (active ones stay: an analyst approved them, and they still match). */
static int retire_absorbed(store_t *s, json_t *cl, const char *id, double now)
{
    size_t i;
    json_t *k;
    json_array_foreach(json_object_get(cl, "absorbed"), i, k)
    {
        json_t *old = store_cluster_signature(s, json_string_value(k));
        const char *oid = old ? json_string_value(json_object_get(old, "id")) : NULL;
        if (oid && !strcmp(json_string_value(json_object_get(old, "state")), "pending")) {
            char why[96];
            snprintf(why, sizeof why, "superseded by %s (its cluster merged into that one)", id);
            if (store_set_state(s, oid, "pending", "expired", why, now) == -3) {
                json_decref(old);
                return -1;
            }
        }
        json_decref(old);
    }
    return 0;
}

/*
 * One built signature into the store, as the next version of its cluster's signature:
 *  - the same strings and weights as the newest version: that version's counts, times and
 *    expiry move on;
 *  - the cluster's signature was rejected: not proposed again (the analyst said no);
 *  - otherwise a new version, pending (or active under the auto-approval policy); it
 *    supersedes a pending older version at once, an active one when it becomes active.
 * Returns 1 when a version was added, 0 when not, -1 on a store error; *activated says the
 * active set changed.
 */
static int place_signature(const sigman_t *sm, store_t *s, json_t *sig, double now, bool *activated)
{
    char hash[17], id[32];
    content_hash(sig, hash);
    json_t *cl = json_object_get(sig, "cluster");
    const char *key = json_string_value(json_object_get(cl, "key"));
    if (sm->o.lifetime > 0) { /* counted from the cluster's newest report */
        json_t *arr = json_object_get(cl, "last_arrival");
        double from = json_is_number(arr) ? json_number_value(arr) : now;
        json_object_set_new(sig, "expires", json_real(from + (double)sm->o.lifetime));
    }
    json_t *prev = key ? store_cluster_signature(s, key) : NULL;
    const char *pstate = prev ? json_string_value(json_object_get(prev, "state")) : NULL;
    const char *pid = prev ? json_string_value(json_object_get(prev, "id")) : NULL;
    int rc = 0;
    if (prev && !strcmp(json_string_value(json_object_get(prev, "hash")), hash)) {
        json_object_set_new(sig, "id", json_string(pid));
        json_object_set_new(sig, "version",
                            json_object_get(prev, "version")
                                ? json_incref(json_object_get(prev, "version"))
                                : json_integer(1));
        rc = store_doc(s, pid, sig, now) == 0 && retire_absorbed(s, cl, pid, now) == 0 ? 0 : -1;
        json_decref(prev);
        return rc;
    }
    if (prev && !strcmp(pstate, "rejected")) {
        json_decref(prev);
        return 0;
    }
    int version = prev ? (int)json_integer_value(json_object_get(prev, "version")) + 1 : 1;
    bool active = json_is_true(json_object_get(sig, "auto_approvable"));
    snprintf(id, sizeof id, "sig-%06llu", (unsigned long long)store_next_signature_number(s));
    json_object_set_new(sig, "id", json_string(id));
    json_object_set_new(sig, "version", json_integer(version));
    if (prev)
        json_object_set_new(sig, "supersedes", json_string(pid));
    char *text = json_dumps(sig, JSON_COMPACT);
    rc = text ? store_add_signature(s, id, hash, active ? "active" : "pending", now, text, key,
                                    version)
              : -1;
    free(text);
    if (rc > 0 && prev && (!strcmp(pstate, "pending") || (active && !strcmp(pstate, "active")))) {
        char why[64];
        snprintf(why, sizeof why, "superseded by %s", id);
        if (store_set_state(s, pid, "pending|active", "expired", why, now) == -3)
            rc = -1;
        *activated = *activated || !strcmp(pstate, "active");
    }
    *activated = *activated || (rc > 0 && active);
    if (rc > 0 && retire_absorbed(s, cl, id, now) != 0)
        rc = -1;
    json_decref(prev);
    return rc;
}

/* Keeps each built cluster's result (passed, or rejected with its verification facts) for
 * the API, and forgets those of clusters no longer live. */
static void note_outcomes(sigman_t *sm, json_t *doc, double now)
{
    static const char *const lists[] = {"signatures", "rejected"};
    for (int l = 0; l < 2; l++) {
        size_t i;
        json_t *sig;
        json_array_foreach(json_object_get(doc, lists[l]), i, sig)
        {
            const char *key =
                json_string_value(json_object_get(json_object_get(sig, "cluster"), "key"));
            json_t *v = json_object_get(sig, "verification");
            if (key && v)
                json_object_set_new(sm->outcomes, key,
                                    json_pack("{s:f, s:O}", "at", now, "verification", v));
        }
    }
    json_t *live = json_object();
    for (size_t c = 0; live && c < siggen_clusters(sm->gen); c++) {
        const char *key = siggen_cluster(sm->gen, c)->key;
        json_t *o = json_object_get(sm->outcomes, key);
        if (o)
            json_object_set(live, key, o);
    }
    if (live) {
        json_decref(sm->outcomes);
        sm->outcomes = live;
    }
}

int sigman_build(sigman_t *sm, store_t *s, double now, char *err, size_t errlen)
{
    if (sigman_ingest(sm, s, 0) < 0) {
        snprintf(err, errlen, "store: %s", store_error(s));
        return -1;
    }
    siggen_clear_clean(sm->gen);
    if (add_clean(sm->gen, s, sm->o.clean, err, errlen) != 0)
        return -1;
    sm->unbuilt = 0;
    sm->unsaved = true; /* the clusters' marks of growth are cleared */
    json_t *doc = siggen_build(sm->gen, 0, "cand", true);
    note_outcomes(sm, doc, now);
    size_t i;
    json_t *sig;
    bool activated = false;
    int added = 0;
    if (store_begin(s) != 0) {
        snprintf(err, errlen, "store: %s", store_error(s));
        json_decref(doc);
        return -1;
    }
    json_array_foreach(json_object_get(doc, "signatures"), i, sig)
    {
        int r = place_signature(sm, s, sig, now, &activated);
        if (r < 0) {
            added = -1;
            break;
        }
        added += r;
    }
    json_decref(doc);
    if (added >= 0 && activated)
        store_bump_sequence(s);
    if (added < 0 || store_commit(s) != 0) {
        store_rollback(s);
        snprintf(err, errlen, "store: %s", store_error(s));
        added = -1;
    }
    return added;
}

int sigman_transition(store_t *s, const char *id, const char *action, const char *reason,
                      double now)
{
    const char *from, *to;
    if (!strcmp(action, "approve"))
        from = "pending", to = "active";
    else if (!strcmp(action, "reject"))
        from = "pending|active", to = "rejected";
    else if (!strcmp(action, "expire"))
        from = "active", to = "expired";
    else
        return -1;
    json_t *cur = store_get_signature(s, id);
    bool was_active = cur && !strcmp(json_string_value(json_object_get(cur, "state")), "active");
    const char *older =
        cur ? json_string_value(json_object_get(json_object_get(cur, "signature"), "supersedes"))
            : NULL;
    char older_id[64] = "";
    if (older)
        snprintf(older_id, sizeof older_id, "%s", older);
    json_decref(cur);
    int rc = store_set_state(s, id, from, to, reason, now);
    if (rc == 0 && !strcmp(to, "active") && older_id[0]) {
        char why[64];
        snprintf(why, sizeof why, "superseded by %s", id);
        store_set_state(s, older_id, "active", "expired", why, now); /* when still active */
    }
    if (rc == 0 && (was_active || !strcmp(to, "active")))
        store_bump_sequence(s); /* the active set changed */
    return rc;
}

int sigman_expire_due(store_t *s, double now)
{
    json_t *list = store_list_signatures(s, "active"), *row;
    size_t i;
    int n = 0;
    json_array_foreach(list, i, row)
    {
        json_t *exp = json_object_get(json_object_get(row, "signature"), "expires");
        if (!json_is_number(exp) || json_number_value(exp) > now)
            continue;
        const char *id = json_string_value(json_object_get(row, "id"));
        if (store_set_state(s, id, "active", "expired", "lifetime: no new member seen", now) == 0)
            n++;
    }
    json_decref(list);
    if (n > 0)
        store_bump_sequence(s);
    return n;
}

json_t *sigman_allowlist(store_t *s, double *updated, char *err, size_t errlen)
{
    double when;
    char *text = store_get_allowlist(s, &when);
    if (!text) {
        snprintf(err, errlen, "allowlist: %s", store_error(s));
        return NULL;
    }
    if (updated)
        *updated = when;
    allowlist_t *a = allowlist_parse(text, strlen(text), "allowlist", err, errlen);
    free(text);
    json_t *entries = a ? json_array() : NULL;
    for (size_t i = 0; entries && i < allowlist_size(a); i++) {
        char entry[64];
        json_array_append_new(entries,
                              json_string(allowlist_entry_text(a, i, entry, sizeof entry)));
    }
    allowlist_destroy(&a);
    return entries;
}

static double wall_clock(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* The feature and shape names of the model's embedding, which every set carries: read once
 * per model file, since loading a model builds its search index (0.7 s at 107k training
 * messages), too slow for each new set now that bans move the set on. */
static int set_header(const char *model, char feature[32], char shape[32], char *err, size_t errlen)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static char path[512], feat[32], shp[32];
    static file_id_t id;
    pthread_mutex_lock(&lock);
    file_id_t now = file_id_of(model);
    if (!path[0] || strcmp(path, model) || !file_id_same(&id, &now)) {
        path[0] = 0;
        model_t *m = model_load(model, err, errlen);
        if (!m) {
            pthread_mutex_unlock(&lock);
            return -1;
        }
        embed_opts_feature_name(&model_options(m)->embed, feat, sizeof feat);
        snprintf(shp, sizeof shp, "%s", embed_shape_name(model_options(m)->embed.shape));
        model_destroy(&m);
        id = now; /* as it was before the read: a file replaced meanwhile is read again */
        snprintf(path, sizeof path, "%s", model);
    }
    memcpy(feature, feat, 32);
    memcpy(shape, shp, 32);
    pthread_mutex_unlock(&lock);
    return 0;
}

json_t *sigman_active(store_t *s, const sigman_opts_t *o, char *err, size_t errlen)
{
    char feature[32], shape[32];
    if (!o->model[0]) {
        snprintf(err, errlen, "no model configured");
        return NULL;
    }
    if (set_header(o->model, feature, shape, err, errlen) != 0)
        return NULL;
    json_t *doc = json_pack("{s:s, s:i, s:I, s:s, s:s, s:o}", "format", "sipguard-signatures",
                            "version", 1, "sequence", (json_int_t)store_sequence(s), "feature",
                            feature, "shape", shape, "signatures", json_array());
    json_t *list = store_list_signatures(s, "active"), *row;
    size_t i;
    json_array_foreach(list, i, row)
        json_array_append(json_object_get(doc, "signatures"), json_object_get(row, "signature"));
    json_decref(list);
    json_t *allow = sigman_allowlist(s, NULL, err, errlen);
    if (!allow) {
        json_decref(doc);
        return NULL;
    }
    if (json_array_size(allow)) /* older edges ignore the member; newer ones allow these too */
        json_object_set(doc, "allow", allow);
    json_decref(allow);
    json_t *bans = o->share_bans ? store_list_bans(s, wall_clock(), o->max_bans) : NULL;
    if (json_array_size(bans)) { /* what an edge needs of each: the source, and until when */
        json_t *out = json_array(), *b;
        json_array_foreach(bans, i, b) json_array_append_new(
            out, json_pack("{s:O, s:O}", "source", json_object_get(b, "source"), "until",
                           json_object_get(b, "until")));
        json_object_set_new(doc, "bans", out);
    }
    json_decref(bans);
    return doc;
}
