#include "siggen.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report.h"
#include "shape.h"

#define MAX_CLEAN 20000

typedef struct {
    uint8_t *raw;
    size_t len;
    sparse_t *v;   /* counts, sorted by key */
    char edge[64]; /* who reported it ("" when it came from a capture) */
    double ts;
} item_t;

typedef struct {
    item_t *it;
    size_t n, cap;
} items_t;

struct siggen {
    embed_opts_t eo;
    siggen_opts_t o;
    embed_t *embed;
    items_t anomalies, clean;
    size_t seen_anomalies;
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
    o->max_anomalies = 2000;
    o->auto_members = 0;
    o->auto_edges = 1;
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
    if (!g->embed) {
        free(g);
        return NULL;
    }
    return g;
}

static void items_free(items_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->it[i].raw);
        sparse_destroy(&s->it[i].v);
    }
    free(s->it);
}

void siggen_destroy(siggen_t **self)
{
    siggen_t *g = *self;
    if (!g)
        return;
    items_free(&g->anomalies);
    items_free(&g->clean);
    sparse_destroy(&g->clean_mean);
    embed_destroy(&g->embed);
    free(g);
    *self = NULL;
}

static int add_item(siggen_t *g, items_t *s, const uint8_t *data, size_t len, size_t at)
{
    if (at == s->n && s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        item_t *it = realloc(s->it, cap * sizeof *it);
        if (!it)
            return -1;
        s->it = it;
        s->cap = cap;
    }
    item_t *it = &s->it[at];
    if (at < s->n) { /* replacing a sampled one */
        free(it->raw);
        sparse_destroy(&it->v);
    } else {
        s->n++;
    }
    it->raw = malloc(len ? len : 1);
    it->len = len;
    it->edge[0] = '\0';
    it->ts = 0;
    it->v = sparse_new();
    if (!it->raw || !it->v)
        return -1;
    memcpy(it->raw, data, len);
    return embed_message(g->embed, data, len, it->v);
}

/* Reservoir sampling keeps the inputs bounded and even over time. */
static size_t reservoir_slot(size_t seen, size_t cap)
{
    if (seen < cap)
        return seen;
    uint64_t x = (uint64_t)seen * 0x9E3779B97F4A7C15ULL;
    x ^= x >> 31;
    size_t j = (size_t)(x % (seen + 1));
    return j < cap ? j : SIZE_MAX;
}

int siggen_add_anomaly(siggen_t *g, const uint8_t *data, size_t len)
{
    size_t slot = reservoir_slot(g->seen_anomalies++, g->o.max_anomalies);
    return slot == SIZE_MAX ? 0 : add_item(g, &g->anomalies, data, len, slot);
}

int siggen_add_report(siggen_t *g, const uint8_t *data, size_t len, const char *edge, double ts)
{
    size_t slot = reservoir_slot(g->seen_anomalies++, g->o.max_anomalies);
    if (slot == SIZE_MAX)
        return 0;
    if (add_item(g, &g->anomalies, data, len, slot) != 0)
        return -1;
    snprintf(g->anomalies.it[slot].edge, sizeof g->anomalies.it[slot].edge, "%s", edge ? edge : "");
    g->anomalies.it[slot].ts = ts;
    return 0;
}

int siggen_add_clean(siggen_t *g, const uint8_t *data, size_t len)
{
    if (g->clean.n >= MAX_CLEAN)
        return 0;
    return add_item(g, &g->clean, data, len, g->clean.n);
}

/* ------------------------------------------------------------------ clustering */

/* Distance of unit-scaled vectors: sqrt(2 - 2 cos). */
static float unit_distance(const sparse_t *a, const sparse_t *b)
{
    if (a->norm2 == 0 || b->norm2 == 0)
        return a->norm2 == b->norm2 ? 0.0f : 1.4142135f;
    double c = sparse_dot(a, b) / sqrt(a->norm2 * b->norm2);
    double d2 = 2 - 2 * c;
    return (float)(d2 > 0 ? sqrt(d2) : 0);
}

static size_t find_root(size_t *parent, size_t i)
{
    while (parent[i] != i)
        i = parent[i] = parent[parent[i]];
    return i;
}

/* Agglomerative clustering by the nearest-neighbour chain (exact for these reducible
 * linkages, O(n^2) time and memory); merges below the cut are joined. Fills label[i]. */
static size_t cluster(const siggen_t *g, size_t *label)
{
    size_t n = g->anomalies.n;
    if (n == 0)
        return 0;
    float *d = malloc(n * n * sizeof *d);
    size_t *size = malloc(n * sizeof *size), *chain = malloc(n * sizeof *chain),
           *parent = malloc(n * sizeof *parent);
    bool *active = malloc(n * sizeof *active);
    for (size_t i = 0; i < n; i++) {
        size[i] = 1;
        parent[i] = i;
        active[i] = true;
        d[i * n + i] = 0;
        for (size_t j = 0; j < i; j++)
            d[i * n + j] = d[j * n + i] = unit_distance(g->anomalies.it[i].v, g->anomalies.it[j].v);
    }
    size_t len = 0, left = n;
    while (left > 1) {
        if (len == 0)
            for (size_t i = 0; i < n; i++)
                if (active[i]) {
                    chain[len++] = i;
                    break;
                }
        size_t a = chain[len - 1], best = SIZE_MAX;
        float bd = INFINITY;
        /* prefer the previous element on ties, so the chain always ends in a merge */
        if (len >= 2) {
            best = chain[len - 2];
            bd = d[a * n + best];
        }
        for (size_t j = 0; j < n; j++)
            if (active[j] && j != a && d[a * n + j] < bd) {
                bd = d[a * n + j];
                best = j;
            }
        if (len >= 2 && best == chain[len - 2]) {
            size_t b = best;
            len -= 2;
            /* merge b into a (Lance-Williams update) */
            for (size_t k = 0; k < n; k++) {
                if (!active[k] || k == a || k == b)
                    continue;
                float da = d[a * n + k], db = d[b * n + k], nd;
                if (g->o.linkage == LINK_SINGLE)
                    nd = da < db ? da : db;
                else if (g->o.linkage == LINK_COMPLETE)
                    nd = da > db ? da : db;
                else
                    nd = (float)((size[a] * (double)da + size[b] * (double)db) /
                                 (double)(size[a] + size[b]));
                d[a * n + k] = d[k * n + a] = nd;
            }
            size[a] += size[b];
            active[b] = false;
            left--;
            if (bd < g->o.cut) /* for reducible linkages the dendrogram cut is this union */
                parent[find_root(parent, b)] = find_root(parent, a);
        } else {
            chain[len++] = best;
        }
    }
    /* labels 0.. by root */
    size_t nl = 0;
    size_t *root_label = malloc(n * sizeof *root_label);
    for (size_t i = 0; i < n; i++)
        root_label[i] = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        size_t r = find_root(parent, i);
        if (root_label[r] == SIZE_MAX)
            root_label[r] = nl++;
        label[i] = root_label[r];
    }
    free(root_label);
    free(d);
    free(size);
    free(chain);
    free(parent);
    free(active);
    return nl;
}

static int by_key(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* The unit-length mean of some unit-scaled vectors, as a sorted sparse vector. */
static sparse_t *centroid(const siggen_t *g, const size_t *label, size_t c, size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        if (label[i] == c)
            total += g->anomalies.it[i].v->n;
    sparse_t *out = sparse_new();
    uint64_t *keys = malloc((total ? total : 1) * sizeof *keys);
    double *vals = malloc((total ? total : 1) * sizeof *vals);
    size_t *order = malloc((total ? total : 1) * sizeof *order);
    if (!out || !keys || !vals || !order || sparse_reserve(out, total ? total : 1) != 0) {
        free(keys), free(vals), free(order);
        sparse_destroy(&out);
        return NULL;
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const sparse_t *v = g->anomalies.it[i].v;
        if (label[i] != c || v->norm2 == 0)
            continue;
        double s = 1 / sqrt(v->norm2);
        for (size_t j = 0; j < v->n; j++, k++) {
            keys[k] = v->keys[j];
            vals[k] = v->vals[j] * s;
        }
    }
    /* sort by key through a (key, value) view */
    typedef struct {
        uint64_t key;
        double v;
    } pair_t;
    pair_t *p = (pair_t *)malloc((k ? k : 1) * sizeof *p);
    for (size_t i = 0; p && i < k; i++)
        p[i] = (pair_t){keys[i], vals[i]};
    if (p)
        qsort(p, k, sizeof *p, by_key); /* key is the first member */
    size_t m = 0;
    for (size_t i = 0; p && i < k;) {
        double sum = 0;
        size_t j = i;
        for (; j < k && p[j].key == p[i].key; j++)
            sum += p[j].v;
        out->keys[m] = p[i].key;
        out->vals[m++] = sum;
        i = j;
    }
    out->n = m;
    sparse_update_norm(out);
    free(p), free(keys), free(vals), free(order);
    return out;
}

/* Spherical k-means: k-means++ seeds (a fixed sequence, so builds repeat), then at most 20
 * rounds of assigning each anomaly to the most similar centre (cosine). Fills label[i]. */
static size_t kmeans(const siggen_t *g, size_t *label)
{
    size_t n = g->anomalies.n, k = g->o.k < n ? g->o.k : n;
    if (n == 0 || k == 0)
        return 0;
    sparse_t **cen = calloc(k, sizeof *cen);
    double *best = malloc(n * sizeof *best);
    uint64_t rng = 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < n; i++) {
        label[i] = SIZE_MAX;
        best[i] = INFINITY;
    }
    /* k-means++: each next seed drawn with probability proportional to its distance^2 */
    size_t first = 0;
    for (size_t c = 0; c < k; c++) {
        size_t pick = first;
        if (c > 0) {
            double total = 0;
            for (size_t i = 0; i < n; i++)
                total += best[i] * best[i];
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            double r = (double)(rng >> 11) / 9007199254740992.0 * total, acc = 0;
            for (pick = 0; pick + 1 < n; pick++) {
                acc += best[pick] * best[pick];
                if (acc >= r)
                    break;
            }
        }
        label[pick] = c;
        cen[c] = centroid(g, label, c, n);
        label[pick] = SIZE_MAX;
        for (size_t i = 0; i < n; i++) {
            double d = unit_distance(g->anomalies.it[i].v, cen[c]);
            if (d < best[i])
                best[i] = d;
        }
    }
    for (int round = 0; round < 20; round++) {
        bool moved = false;
        for (size_t i = 0; i < n; i++) {
            size_t arg = 0;
            double bd = INFINITY;
            for (size_t c = 0; c < k; c++) {
                double d = cen[c] ? unit_distance(g->anomalies.it[i].v, cen[c]) : INFINITY;
                if (d < bd)
                    bd = d, arg = c;
            }
            moved = moved || label[i] != arg;
            label[i] = arg;
        }
        if (!moved)
            break;
        for (size_t c = 0; c < k; c++) {
            sparse_destroy(&cen[c]);
            cen[c] = centroid(g, label, c, n);
        }
    }
    for (size_t c = 0; c < k; c++)
        sparse_destroy(&cen[c]);
    free(cen);
    free(best);
    return k;
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

/* A, N and B over the features present in enough members. Returns how many features. */
static size_t cluster_features(const siggen_t *g, const size_t *members, size_t nm, feat_t **out)
{
    size_t total = 0;
    for (size_t i = 0; i < nm; i++)
        total += g->anomalies.it[members[i]].v->n;
    uint64_t *keys = malloc((total ? total : 1) * sizeof *keys);
    size_t k = 0;
    for (size_t i = 0; i < nm; i++) {
        const sparse_t *v = g->anomalies.it[members[i]].v;
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
                a += value_at(g->anomalies.it[members[m]].v, keys[i]);
            a /= (double)nm;
            if (g->o.bilateral && g->clean_mean)
                c = value_at(g->clean_mean, keys[i]);
            f[nf++] = (feat_t){keys[i], a - c};
        }
        i = j;
    }
    free(keys);
    qsort(f, nf, sizeof *f, by_abs_weight);
    if (nf > g->o.max_strings)
        nf = g->o.max_strings;
    *out = f;
    return nf;
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
    for (size_t i = 0; i + m <= n; i++)
        if (!memcmp(hay + i, needle, m))
            return 1;
    return 0;
}

/* YARA form: the positive strings that occur in raw bytes, and how many a member needs. */
static json_t *yara_form(const siggen_t *g, const feat_t *f, size_t nf, const size_t *members,
                         size_t nm)
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
    for (size_t m = 0; m < nm; m++) {
        const item_t *it = &g->anomalies.it[members[m]];
        size_t c = 0;
        for (size_t s = 0; s < ns; s++)
            c += present_in(it->raw, it->len, strs[s], (size_t)g->eo.n);
        if (c < min_member)
            min_member = c;
    }
    for (size_t m = 0; m < g->clean.n; m++) {
        const item_t *it = &g->clean.it[m];
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

json_t *siggen_build(siggen_t *g, uint64_t sequence, const char *id_prefix)
{
    if (g->clean.n)
        make_clean_mean(g);
    size_t n = g->anomalies.n;
    size_t *label = malloc((n ? n : 1) * sizeof *label);
    size_t nl = g->o.linkage == LINK_KMEANS ? kmeans(g, label) : cluster(g, label);
    char feature[32];
    embed_opts_feature_name(&g->eo, feature, sizeof feature);
    json_t *doc = json_pack("{s:s, s:i, s:I, s:s, s:s, s:o, s:o}", "format", "sipguard-signatures",
                            "version", 1, "sequence", (json_int_t)sequence, "feature", feature,
                            "shape", embed_shape_name(g->eo.shape), "signatures", json_array(),
                            "rejected", json_array());
    size_t *members = malloc((n ? n : 1) * sizeof *members), made = 0;
    for (size_t c = 0; c < nl; c++) {
        size_t nm = 0;
        for (size_t i = 0; i < n; i++)
            if (label[i] == c)
                members[nm++] = i;
        if (nm < g->o.min_members)
            continue;
        feat_t *f;
        size_t nf = cluster_features(g, members, nm, &f);
        double thr = INFINITY, max_clean = -INFINITY;
        for (size_t m = 0; m < nm; m++) {
            double s = score(f, nf, g->anomalies.it[members[m]].v);
            thr = s < thr ? s : thr;
        }
        size_t fp = 0;
        for (size_t m = 0; m < g->clean.n; m++) {
            double s = score(f, nf, g->clean.it[m].v);
            max_clean = s > max_clean ? s : max_clean;
            fp += s >= thr;
        }
        bool tightened = false;
        size_t matched = nm;
        if (fp && g->o.tighten) {
            double t = max_clean + 1e-6 * (1 + fabs(max_clean));
            matched = 0;
            for (size_t m = 0; m < nm; m++)
                matched += score(f, nf, g->anomalies.it[members[m]].v) >= t;
            if (matched * 2 >= nm) { /* still covers most of the cluster */
                thr = t;
                fp = 0;
                tightened = true;
            }
        }
        bool ok = nf > 0 && fp == 0 && thr > 0;
        char id[96];
        snprintf(id, sizeof id, "%s-%06zu", id_prefix, ++made);
        json_t *feats = json_array();
        for (size_t i = 0; i < nf; i++)
            json_array_append_new(feats, json_pack("{s:o, s:f}", "string",
                                                   feature_string(g, f[i].key), "weight", f[i].w));
        json_t *edges = json_array();
        double first = INFINITY, last = -INFINITY;
        for (size_t m = 0; m < nm; m++) {
            const item_t *it = &g->anomalies.it[members[m]];
            if (it->ts > 0) {
                first = it->ts < first ? it->ts : first;
                last = it->ts > last ? it->ts : last;
            }
            bool known = !it->edge[0];
            size_t k;
            json_t *e;
            json_array_foreach(edges, k, e) known =
                known || !strcmp(json_string_value(e), it->edge);
            if (!known)
                json_array_append_new(edges, json_string(it->edge));
        }
        bool auto_ok = g->o.auto_members && nm >= g->o.auto_members &&
                       json_array_size(edges) >= g->o.auto_edges;
        json_t *samples = json_array(); /* a few members, for the reviewer */
        for (size_t m = 0; m < nm && m < 3; m++)
            json_array_append_new(samples, report_raw_string(g->anomalies.it[members[m]].raw,
                                                             g->anomalies.it[members[m]].len));
        json_t *sig = json_pack(
            "{s:s, s:s, s:f, s:o, s:{s:I, s:s, s:f}, s:{s:I, s:I, s:f, s:I, s:b, s:s}, s:o, s:o}",
            "id", id, "kind", g->o.bilateral ? "bilateral" : "unilateral", "threshold", thr,
            "features", feats, "cluster", "members", (json_int_t)nm, "linkage",
            g->o.linkage == LINK_SINGLE     ? "single"
            : g->o.linkage == LINK_COMPLETE ? "complete"
            : g->o.linkage == LINK_KMEANS   ? "kmeans"
                                            : "average",
            "cut", g->o.linkage == LINK_KMEANS ? (double)g->o.k : g->o.cut, "verification",
            "clean_messages", (json_int_t)g->clean.n, "false_positives", (json_int_t)fp,
            "max_clean_score", isfinite(max_clean) ? max_clean : 0.0, "members_matched",
            (json_int_t)matched, "tightened", tightened, "result", ok ? "passed" : "rejected",
            "yara", ok ? yara_form(g, f, nf, members, nm) : json_null(), "samples", samples);
        json_object_set_new(sig, "edges", edges);
        json_object_set_new(sig, "first_seen", isfinite(first) ? json_real(first) : json_null());
        json_object_set_new(sig, "last_seen", isfinite(last) ? json_real(last) : json_null());
        json_object_set_new(sig, "auto_approvable", json_boolean(ok && auto_ok));
        json_array_append_new(json_object_get(doc, ok ? "signatures" : "rejected"), sig);
        free(f);
    }
    free(members);
    free(label);
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
