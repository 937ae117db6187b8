#include "siggen.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "report.h"
#include "shape.h"

#define MAX_CLEAN 20000
#define PER_CLUSTER 128 /* members a cluster keeps for its signature */

typedef struct {
    member_t *it;
    size_t n, cap;
} items_t;

struct siggen {
    embed_opts_t eo;
    siggen_opts_t o;
    embed_t *embed;
    clusterer_t *clusters;
    items_t clean;
    sparse_t *clean_mean; /* N over every feature, sorted by key (made once per build) */
};

void siggen_opts_default(siggen_opts_t *o)
{
    o->linkage = LINK_AVERAGE;
    o->k = 8;
    o->cut = 0.6;
    o->min_members = 5;
    o->presence = 0.5;
    o->max_strings = 32;
    o->bilateral = true;
    o->tighten = false;
    o->max_anomalies = 10000;
    o->auto_members = 0;
    o->auto_edges = 1;
}

void siggen_set_policy(siggen_t *g, const siggen_opts_t *o)
{
    g->o.presence = o->presence;
    g->o.max_strings = o->max_strings;
    g->o.bilateral = o->bilateral;
    g->o.tighten = o->tighten;
    g->o.auto_members = o->auto_members;
    g->o.auto_edges = o->auto_edges;
}

int siggen_parse_linkage(const char *s, linkage_t *out)
{
    static const char *n[] = {"single", "complete", "average", "kmeans"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, n[i])) {
            *out = (linkage_t)i;
            return 0;
        }
    return -1;
}

static cluster_opts_t cluster_options(const siggen_opts_t *o)
{
    return (cluster_opts_t){.linkage = o->linkage,
                            .cut = o->cut,
                            .k = o->k,
                            .per_cluster = PER_CLUSTER,
                            .max_kept = o->max_anomalies,
                            .small = o->min_members};
}

siggen_t *siggen_new(const embed_opts_t *eo, const siggen_opts_t *o)
{
    if (eo->kind != EMBED_NGRAM)
        return NULL;
    siggen_t *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->eo = *eo;
    g->o = *o;
    g->embed = embed_new(eo); /* sorted output: the scores look features up */
    cluster_opts_t co = cluster_options(o);
    g->clusters = clusterer_new(&co);
    if (!g->embed || !g->clusters) {
        embed_destroy(&g->embed);
        clusterer_destroy(&g->clusters);
        free(g);
        return NULL;
    }
    return g;
}

static void clean_free(siggen_t *g)
{
    for (size_t i = 0; i < g->clean.n; i++) {
        free(g->clean.it[i].raw);
        sparse_destroy(&g->clean.it[i].v);
    }
    g->clean.n = 0;
}

void siggen_destroy(siggen_t **self)
{
    siggen_t *g = *self;
    if (!g)
        return;
    clusterer_destroy(&g->clusters);
    clean_free(g);
    free(g->clean.it);
    sparse_destroy(&g->clean_mean);
    embed_destroy(&g->embed);
    free(g);
    *self = NULL;
}

/* A member record of a message: its bytes and embedding. Returns 0 or -1. */
static int make_member(siggen_t *g, member_t *m, const uint8_t *data, size_t len)
{
    memset(m, 0, sizeof *m);
    m->raw = malloc(len ? len : 1);
    m->len = len;
    m->v = sparse_new();
    if (!m->raw || !m->v || embed_message(g->embed, data, len, m->v) != 0) {
        free(m->raw);
        sparse_destroy(&m->v);
        return -1;
    }
    memcpy(m->raw, data, len);
    return 0;
}

int siggen_add_anomaly(siggen_t *g, const uint8_t *data, size_t len)
{
    return siggen_add_report(g, data, len, NULL, 0, 0, NULL);
}

int siggen_add_report(siggen_t *g, const uint8_t *data, size_t len, const char *edge, double ts,
                      double arrived, const char *key)
{
    member_t m;
    if (make_member(g, &m, data, len) != 0)
        return -1;
    snprintf(m.edge, sizeof m.edge, "%s", edge ? edge : "");
    m.ts = ts;
    m.arrived = arrived;
    return clusterer_add(g->clusters, &m, key);
}

int siggen_add_clean(siggen_t *g, const uint8_t *data, size_t len)
{
    if (g->clean.n >= MAX_CLEAN)
        return 0;
    if (g->clean.n == g->clean.cap) {
        size_t cap = g->clean.cap ? g->clean.cap * 2 : 256;
        member_t *it = realloc(g->clean.it, cap * sizeof *it);
        if (!it)
            return -1;
        g->clean.it = it;
        g->clean.cap = cap;
    }
    if (make_member(g, &g->clean.it[g->clean.n], data, len) != 0)
        return -1;
    g->clean.n++;
    return 0;
}

void siggen_clear_clean(siggen_t *g)
{
    clean_free(g);
}

size_t siggen_clusters(const siggen_t *g)
{
    return clusterer_count(g->clusters);
}

const cluster_t *siggen_cluster(const siggen_t *g, size_t i)
{
    return clusterer_get(g->clusters, i);
}

/* What a saved state's members were embedded with: loading makes their vectors again, so the
 * embedding must be the same. */
static void embedding_tag(const siggen_t *g, char *tag, size_t cap)
{
    char feature[32];
    embed_opts_feature_name(&g->eo, feature, sizeof feature);
    snprintf(tag, cap, "%s shape %s headers %d binary %d norm %d", feature,
             embed_shape_name(g->eo.shape), g->eo.header_norm, g->eo.binary, (int)g->eo.norm);
}

uint8_t *siggen_save_clusters(const siggen_t *g, size_t *len)
{
    char tag[128];
    embedding_tag(g, tag, sizeof tag);
    return clusterer_save(g->clusters, tag, len);
}

static int embed_again(void *ctx, const uint8_t *raw, size_t len, sparse_t *out)
{
    return embed_message(ctx, raw, len, out);
}

int siggen_load_clusters(siggen_t *g, const uint8_t *buf, size_t len, char *err, size_t errlen)
{
    char tag[128];
    embedding_tag(g, tag, sizeof tag);
    cluster_opts_t co = cluster_options(&g->o);
    clusterer_t *c = clusterer_load(&co, tag, buf, len, embed_again, g->embed, err, errlen);
    if (!c)
        return -1;
    clusterer_destroy(&g->clusters);
    g->clusters = c;
    return 0;
}

static int by_key(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------------ signatures */

typedef struct {
    uint64_t key;
    double w;
} feat_t;

static double value_at(const sparse_t *v, uint64_t key)
{
    size_t lo = 0, hi = v->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v->keys[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < v->n && v->keys[lo] == key ? v->vals[lo] : 0;
}

static double score(const feat_t *f, size_t nf, const sparse_t *v)
{
    double s = 0;
    for (size_t i = 0; i < nf; i++)
        s += f[i].w * value_at(v, f[i].key);
    return s;
}

static int by_abs_weight(const void *a, const void *b)
{
    double x = fabs(((const feat_t *)a)->w), y = fabs(((const feat_t *)b)->w);
    return x < y ? 1 : x > y ? -1 : 0;
}

/* The lowest score of a cluster's kept members over the features f[0..nf). */
static double poorest_member(const cluster_t *cl, const feat_t *f, size_t nf)
{
    double low = INFINITY;
    for (size_t m = 0; m < cl->n; m++) {
        double s = score(f, nf, cl->m[m].v);
        low = s < low ? s : low;
    }
    return low;
}

/*
 * Keeps the first `max` of the features f[0..nf) (ordered by |weight|) at the front and returns
 * how many are kept. When that leaves a member at a score of zero or below, the threshold would
 * let a message with none of the strings match, and the signature would be rejected: that is
 * what a short attack message gets, since it shares many strings with normal traffic but has
 * each fewer times, so A - N is negative on them (SIPVicious's REGISTERs beside Kamailio's
 * calls). The features are then chosen again in the same order, a negative one only while
 * every member's score stays above zero; a member with no positive string still ends at zero.
 */
static size_t choose_features(const cluster_t *cl, feat_t *f, size_t nf, size_t max)
{
    size_t keep = nf < max ? nf : max;
    if (keep == 0 || poorest_member(cl, f, keep) > 0)
        return keep;
    double *member = calloc(cl->n ? cl->n : 1, sizeof *member); /* each member's score so far */
    feat_t *chosen = malloc(keep * sizeof *chosen);
    if (!member || !chosen) {
        free(member);
        free(chosen);
        return keep;
    }
    size_t n = 0;
    for (size_t i = 0; i < nf && n < keep; i++) {
        bool fits = true;
        for (size_t m = 0; m < cl->n && f[i].w < 0 && fits; m++)
            fits = member[m] + f[i].w * value_at(cl->m[m].v, f[i].key) > 0;
        if (!fits)
            continue;
        for (size_t m = 0; m < cl->n; m++)
            member[m] += f[i].w * value_at(cl->m[m].v, f[i].key);
        chosen[n++] = f[i];
    }
    memcpy(f, chosen, n * sizeof *f);
    free(member);
    free(chosen);
    return n;
}

/* A, N and B over the features present in enough members, the strings of a signature chosen
 * among them (choose_features). Returns how many features. */
static size_t cluster_features(const siggen_t *g, const cluster_t *cl, feat_t **out)
{
    size_t nm = cl->n;
    size_t total = 0;
    for (size_t i = 0; i < nm; i++)
        total += cl->m[i].v->n;
    uint64_t *keys = malloc((total ? total : 1) * sizeof *keys);
    size_t k = 0;
    for (size_t i = 0; i < nm; i++) {
        const sparse_t *v = cl->m[i].v;
        memcpy(keys + k, v->keys, v->n * sizeof *keys);
        k += v->n;
    }
    qsort(keys, k, sizeof *keys, by_key);
    feat_t *f = malloc((k ? k : 1) * sizeof *f);
    size_t nf = 0;
    for (size_t i = 0; i < k;) {
        size_t j = i;
        while (j < k && keys[j] == keys[i])
            j++;
        /* each member contributes a key at most once: j - i members hold it */
        if ((double)(j - i) >= g->o.presence * (double)nm) {
            double a = 0, c = 0;
            for (size_t m = 0; m < nm; m++)
                a += value_at(cl->m[m].v, keys[i]);
            a /= (double)nm;
            if (g->o.bilateral && g->clean_mean)
                c = value_at(g->clean_mean, keys[i]);
            f[nf++] = (feat_t){keys[i], a - c};
        }
        i = j;
    }
    free(keys);
    qsort(f, nf, sizeof *f, by_abs_weight);
    *out = f;
    return choose_features(cl, f, nf, g->o.max_strings);
}

static json_t *feature_string(const siggen_t *g, uint64_t key)
{
    uint8_t b[8];
    embed_ngram_bytes(key, g->eo.n, b);
    char utf8[8 * 2 + 1];
    size_t o = 0;
    for (int i = 0; i < g->eo.n; i++) { /* each byte as the code point of the same value */
        if (b[i] < 0x80) {
            utf8[o++] = (char)b[i];
        } else {
            utf8[o++] = (char)(0xC0 | (b[i] >> 6));
            utf8[o++] = (char)(0x80 | (b[i] & 0x3F));
        }
    }
    return json_stringn(utf8, o);
}

static bool is_shaping_token(uint8_t c)
{
    return c == SHAPE_ALNUM_1_16 || c == SHAPE_ALNUM_17_32 || c >= 0xF5;
}

/* 1 when the needle occurs in the haystack (YARA counts strings present, not occurrences). */
static size_t present_in(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m)
{
    return memmem(hay, n, needle, m) != NULL;
}

/* YARA form: the positive strings that occur in raw bytes, and how many a member needs. */
static json_t *yara_form(const siggen_t *g, const feat_t *f, size_t nf, const cluster_t *k)
{
    uint8_t strs[64][8];
    size_t ns = 0;
    for (size_t i = 0; i < nf && ns < 64; i++) {
        if (f[i].w <= 0)
            continue;
        embed_ngram_bytes(f[i].key, g->eo.n, strs[ns]);
        bool raw = true;
        for (int b = 0; b < g->eo.n; b++)
            raw = raw && !is_shaping_token(strs[ns][b]);
        ns += raw;
    }
    if (ns == 0)
        return json_null();
    size_t min_member = SIZE_MAX, max_clean = 0;
    for (size_t m = 0; m < k->n; m++) {
        const member_t *it = &k->m[m];
        size_t c = 0;
        for (size_t s = 0; s < ns; s++)
            c += present_in(it->raw, it->len, strs[s], (size_t)g->eo.n);
        if (c < min_member)
            min_member = c;
    }
    for (size_t m = 0; m < g->clean.n; m++) {
        const member_t *it = &g->clean.it[m];
        size_t c = 0;
        for (size_t s = 0; s < ns; s++)
            c += present_in(it->raw, it->len, strs[s], (size_t)g->eo.n);
        if (c > max_clean)
            max_clean = c;
    }
    if (min_member == 0 || max_clean >= min_member)
        return json_null(); /* no count of these strings separates members from clean */
    json_t *hex = json_array();
    for (size_t s = 0; s < ns; s++) {
        char h[3 * 8 + 1];
        size_t o = 0;
        for (int b = 0; b < g->eo.n; b++)
            o += (size_t)snprintf(h + o, sizeof h - o, "%s%02X", b ? " " : "", strs[s][b]);
        json_array_append_new(hex, json_string(h));
    }
    /* as many as the poorest member has: every member matches, and the rule keeps as far from
     * clean traffic (which never had more than max_clean) as it can */
    return json_pack("{s:o, s:I, s:I}", "strings", hex, "min", (json_int_t)min_member, "max_clean",
                     (json_int_t)max_clean);
}

typedef struct {
    uint64_t key;
    double v;
} kv_t;

static int by_kv_key(const void *a, const void *b)
{
    uint64_t x = ((const kv_t *)a)->key, y = ((const kv_t *)b)->key;
    return x < y ? -1 : x > y;
}

/* The mean clean vector, once: every feature's value summed over the sample. */
static void make_clean_mean(siggen_t *g)
{
    size_t total = 0;
    for (size_t i = 0; i < g->clean.n; i++)
        total += g->clean.it[i].v->n;
    kv_t *kv = malloc((total ? total : 1) * sizeof *kv);
    sparse_t *mean = sparse_new();
    if (!kv || !mean || sparse_reserve(mean, total ? total : 1) != 0) {
        free(kv);
        sparse_destroy(&mean);
        return;
    }
    size_t k = 0;
    for (size_t i = 0; i < g->clean.n; i++)
        for (size_t j = 0; j < g->clean.it[i].v->n; j++)
            kv[k++] = (kv_t){g->clean.it[i].v->keys[j], g->clean.it[i].v->vals[j]};
    qsort(kv, k, sizeof *kv, by_kv_key);
    size_t n = 0;
    for (size_t i = 0; i < k;) {
        double sum = 0;
        size_t j = i;
        for (; j < k && kv[j].key == kv[i].key; j++)
            sum += kv[j].v;
        mean->keys[n] = kv[i].key;
        mean->vals[n++] = sum / (double)g->clean.n;
        i = j;
    }
    mean->n = n;
    free(kv);
    sparse_destroy(&g->clean_mean);
    g->clean_mean = mean;
}

static const char *linkage_name(linkage_t l)
{
    return l == LINK_SINGLE     ? "single"
           : l == LINK_COMPLETE ? "complete"
           : l == LINK_KMEANS   ? "kmeans"
                                : "average";
}

/* The threshold (the poorest member's score) and its check on the clean sample, tightened
 * above the clean sample when allowed and most members still match. */
typedef struct {
    double threshold, max_clean;
    size_t false_positives, matched;
    bool tightened;
} verdict_t;

static verdict_t verify(const siggen_t *g, const feat_t *f, size_t nf, const cluster_t *k)
{
    verdict_t v = {INFINITY, -INFINITY, 0, k->n, false};
    for (size_t m = 0; m < k->n; m++) {
        double s = score(f, nf, k->m[m].v);
        v.threshold = s < v.threshold ? s : v.threshold;
    }
    /* A matcher sums the same products in another order (the edge by the message's features),
     * and the poorest member, often several alike, must not fall short by a rounding. */
    if (isfinite(v.threshold))
        v.threshold -= 1e-9 * (1 + fabs(v.threshold));
    for (size_t m = 0; m < g->clean.n; m++) {
        double s = score(f, nf, g->clean.it[m].v);
        v.max_clean = s > v.max_clean ? s : v.max_clean;
        v.false_positives += s >= v.threshold;
    }
    if (v.false_positives && g->o.tighten) {
        double t = v.max_clean + 1e-6 * (1 + fabs(v.max_clean));
        size_t matched = 0;
        for (size_t m = 0; m < k->n; m++)
            matched += score(f, nf, k->m[m].v) >= t;
        if (matched * 2 >= k->n) { /* still covers most of the cluster */
            v = (verdict_t){t, v.max_clean, 0, matched, true};
        }
    }
    return v;
}

static json_t *names_json(const char (*names)[64], size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(names[i]));
    return a;
}

json_t *siggen_cluster_edges(const cluster_t *k)
{
    return names_json(k->edges, k->n_edges);
}

json_t *siggen_cluster_absorbed(const cluster_t *k)
{
    return names_json(k->absorbed, k->n_absorbed);
}

/* One cluster's signature document (verified; "result" says whether it passed). */
static json_t *cluster_signature(const siggen_t *g, const cluster_t *k, const char *id, bool *ok)
{
    feat_t *f;
    size_t nf = cluster_features(g, k, &f);
    verdict_t v = verify(g, f, nf, k);
    *ok = nf > 0 && v.false_positives == 0 && v.threshold > 0;
    json_t *feats = json_array();
    for (size_t i = 0; i < nf; i++)
        json_array_append_new(feats, json_pack("{s:o, s:f}", "string", feature_string(g, f[i].key),
                                               "weight", f[i].w));
    bool auto_ok =
        g->o.auto_members && k->members >= g->o.auto_members && k->n_edges >= g->o.auto_edges;
    json_t *samples = json_array(); /* a few members, for the reviewer */
    for (size_t m = 0; m < k->n && m < 3; m++)
        json_array_append_new(samples, report_raw_string(k->m[m].raw, k->m[m].len));
    json_t *sig = json_pack(
        "{s:s, s:s, s:f, s:o, s:{s:s, s:I, s:I, s:s, s:f}, s:{s:I, s:I, s:f, s:I, s:b, s:s}, "
        "s:o, s:o}",
        "id", id, "kind", g->o.bilateral ? "bilateral" : "unilateral", "threshold", v.threshold,
        "features", feats, "cluster", "key", k->key, "members", (json_int_t)k->members, "kept",
        (json_int_t)k->n, "linkage", linkage_name(g->o.linkage), "cut",
        g->o.linkage == LINK_KMEANS ? (double)g->o.k : g->o.cut, "verification", "clean_messages",
        (json_int_t)g->clean.n, "false_positives", (json_int_t)v.false_positives, "max_clean_score",
        isfinite(v.max_clean) ? v.max_clean : 0.0, "members_matched", (json_int_t)v.matched,
        "tightened", v.tightened, "result", *ok ? "passed" : "rejected", "yara",
        *ok ? yara_form(g, f, nf, k) : json_null(), "samples", samples);
    json_object_set_new(sig, "edges", siggen_cluster_edges(k));
    json_object_set_new(json_object_get(sig, "cluster"), "absorbed", siggen_cluster_absorbed(k));
    if (k->arrived > 0)
        json_object_set_new(json_object_get(sig, "cluster"), "last_arrival", json_real(k->arrived));
    json_object_set_new(sig, "first_seen", k->first > 0 ? json_real(k->first) : json_null());
    json_object_set_new(sig, "last_seen", k->last > 0 ? json_real(k->last) : json_null());
    json_object_set_new(sig, "auto_approvable", json_boolean(*ok && auto_ok));
    free(f);
    return sig;
}

json_t *siggen_build(siggen_t *g, uint64_t sequence, const char *id_prefix, bool changed_only)
{
    if (g->clean.n)
        make_clean_mean(g);
    char feature[32];
    embed_opts_feature_name(&g->eo, feature, sizeof feature);
    json_t *doc = json_pack("{s:s, s:i, s:I, s:s, s:s, s:o, s:o}", "format", "sipguard-signatures",
                            "version", 1, "sequence", (json_int_t)sequence, "feature", feature,
                            "shape", embed_shape_name(g->eo.shape), "signatures", json_array(),
                            "rejected", json_array());
    size_t made = 0;
    for (size_t c = 0; c < clusterer_count(g->clusters); c++) {
        cluster_t *k = clusterer_get(g->clusters, c);
        bool wanted = k->members >= g->o.min_members && (k->changed || !changed_only);
        k->changed = false;
        if (!wanted)
            continue;
        char id[96];
        snprintf(id, sizeof id, "%s-%06zu", id_prefix, ++made);
        bool ok;
        json_t *sig = cluster_signature(g, k, id, &ok);
        json_array_append_new(json_object_get(doc, ok ? "signatures" : "rejected"), sig);
    }
    return doc;
}

int siggen_export_yara(json_t *doc, FILE *out, char *err, size_t errlen)
{
    json_t *sigs = json_object_get(doc, "signatures");
    if (!json_is_array(sigs)) {
        snprintf(err, errlen, "not a signature document (no \"signatures\" array)");
        return -1;
    }
    fprintf(out,
            "// sipguard signatures, sequence %lld: byte strings of each signature that "
            "occur in raw messages;\n// a message matches when it holds more of them "
            "than any clean message did.\n",
            (long long)json_integer_value(json_object_get(doc, "sequence")));
    size_t i, written = 0;
    json_t *s;
    json_array_foreach(sigs, i, s)
    {
        json_t *y = json_object_get(s, "yara");
        const char *id = json_string_value(json_object_get(s, "id"));
        if (!json_is_object(y) || !id)
            continue;
        fprintf(out, "\nrule ");
        for (const char *c = id; *c; c++)
            fputc((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9')
                      ? *c
                      : '_',
                  out);
        fprintf(out, "\n{\n    meta:\n        sipguard_id = \"%s\"\n    strings:\n", id);
        size_t k;
        json_t *h;
        json_array_foreach(json_object_get(y, "strings"), k, h)
            fprintf(out, "        $s%zu = { %s }\n", k, json_string_value(h));
        fprintf(out, "    condition:\n        %lld of them\n}\n",
                (long long)json_integer_value(json_object_get(y, "min")));
        written++;
    }
    if (written == 0)
        fprintf(out, "\n// no signature has a YARA form\n");
    return 0;
}
