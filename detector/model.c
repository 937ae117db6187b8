#include "model.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "fsutil.h"
#include "svdd.h"

#define MODEL_MAGIC "SIPGMDL1"

typedef struct {
    char magic[8];
    uint32_t version;
    uint32_t header_size;
    uint64_t file_size;
    uint64_t checksum;
    /* embedding */
    uint32_t kind, n, binary, norm, shape, header_norm;
    uint8_t delim[32];
    /* parameters */
    double nu, fpr, holdout;
    uint32_t k, local_norm;
    uint32_t context_headers; /* version 5 */
    uint32_t names;           /* version 7: 1 when a section of feature names ends the file */
    uint64_t seed;
    /* sizes */
    uint64_t dim, dict_cap, nrows, nnz, n_train, n_holdout;
    double mu_norm2, thr_global, thr_local;
    uint64_t svdd_iterations;
    double svdd_gap;
    /* section offsets from the file start */
    uint64_t off_dict, off_mu, off_rowptr, off_ids, off_vals, off_norm2, off_count, off_nodes;
    uint64_t off_seeds;
    uint64_t off_row_dist, off_row_point, off_row_spread; /* version 6 */
} model_header_t;

typedef struct {
    uint64_t key;
    uint32_t id;
    uint32_t used;
} dict_slot_t;

struct model {
    uint8_t *base; /* whole file image */
    size_t size;
    model_header_t *h;
    model_opts_t opts;
    const dict_slot_t *dict;
    const double *mu;
    trainset_t t;
    const knn_node_t *nodes;
    const knn_seed_t *seeds;
    const double *row_dist;
    const uint32_t *row_point;
    const double *row_spread;
    const uint32_t *name_off; /* feature id -> its name at names[name_off[id]..name_off[id+1]);
                               * NULL: the model keeps no names */
    const char *names;
    knn_index_t *ix; /* built at load; NULL (tree search only) if memory ran out */
    knn_parts_t parts;
};

void model_opts_default(model_opts_t *o)
{
    embed_opts_default(&o->embed);
    o->nu = 0.05;
    o->k = 1;
    o->fpr = 0.001;
    o->holdout = 0.2;
    o->local_norm = true;
    o->context_headers = false;
    o->seed = 1;
}

/* ---------------------------------------------------------------- vecset */

/* Distinct sparse vectors with counts (keys and float values in arenas). */
typedef struct {
    uint64_t *keys;
    float *vals;
    size_t nnz, cap;
    uint64_t *rowptr;
    uint32_t *count;
    uint64_t *hash;
    size_t rows, rows_cap;
    uint32_t *index; /* open addressing: row + 1, 0 empty */
    size_t index_cap;
    size_t total;
} vecset_t;

static void vecset_free(vecset_t *v)
{
    free(v->keys);
    free(v->vals);
    free(v->rowptr);
    free(v->count);
    free(v->hash);
    free(v->index);
    memset(v, 0, sizeof *v);
}

static uint64_t vector_hash(const sparse_t *s, float *tmp)
{
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, s->keys, s->n * sizeof *s->keys);
    for (size_t i = 0; i < s->n; i++)
        tmp[i] = (float)s->vals[i];
    XXH3_64bits_update(&st, tmp, s->n * sizeof *tmp);
    return XXH3_64bits_digest(&st);
}

static bool row_equals(const vecset_t *v, size_t row, const sparse_t *s, const float *vals)
{
    size_t a = v->rowptr[row], n = v->rowptr[row + 1] - a;
    return n == s->n && memcmp(v->keys + a, s->keys, n * sizeof *s->keys) == 0 &&
           memcmp(v->vals + a, vals, n * sizeof *vals) == 0;
}

static int vecset_rehash(vecset_t *v)
{
    size_t cap = v->index_cap ? v->index_cap * 2 : 1024;
    uint32_t *idx = calloc(cap, sizeof *idx);
    if (!idx)
        return -1;
    for (size_t r = 0; r < v->rows; r++) {
        size_t h = v->hash[r] & (cap - 1);
        while (idx[h])
            h = (h + 1) & (cap - 1);
        idx[h] = (uint32_t)(r + 1);
    }
    free(v->index);
    v->index = idx;
    v->index_cap = cap;
    return 0;
}

static int vecset_add(vecset_t *v, const sparse_t *s, float *tmp)
{
    v->total++;
    if ((v->rows + 1) * 2 > v->index_cap && vecset_rehash(v) != 0)
        return -1;
    uint64_t hv = vector_hash(s, tmp);
    size_t h = hv & (v->index_cap - 1);
    while (v->index[h]) {
        size_t r = v->index[h] - 1;
        if (v->hash[r] == hv && row_equals(v, r, s, tmp)) {
            v->count[r]++;
            return 0;
        }
        h = (h + 1) & (v->index_cap - 1);
    }
    if (v->rows + 1 >= v->rows_cap) {
        size_t cap = v->rows_cap ? v->rows_cap * 2 : 1024;
        uint64_t *rp = realloc(v->rowptr, (cap + 1) * sizeof *rp);
        if (!rp)
            return -1;
        v->rowptr = rp;
        uint32_t *c = realloc(v->count, cap * sizeof *c);
        if (!c)
            return -1;
        v->count = c;
        uint64_t *hs = realloc(v->hash, cap * sizeof *hs);
        if (!hs)
            return -1;
        v->hash = hs;
        v->rows_cap = cap;
    }
    if (v->nnz + s->n > v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 65536;
        while (cap < v->nnz + s->n)
            cap *= 2;
        uint64_t *k = realloc(v->keys, cap * sizeof *k);
        if (!k)
            return -1;
        v->keys = k;
        float *f = realloc(v->vals, cap * sizeof *f);
        if (!f)
            return -1;
        v->vals = f;
        v->cap = cap;
    }
    if (v->rows == 0)
        v->rowptr[0] = 0;
    memcpy(v->keys + v->nnz, s->keys, s->n * sizeof *s->keys);
    memcpy(v->vals + v->nnz, tmp, s->n * sizeof *tmp);
    v->nnz += s->n;
    v->rowptr[v->rows + 1] = v->nnz;
    v->count[v->rows] = 1;
    v->hash[v->rows] = hv;
    v->index[h] = (uint32_t)(v->rows + 1);
    v->rows++;
    return 0;
}

/* ---------------------------------------------------------------- builder */

struct model_builder {
    model_opts_t o;
    vecset_t train, held;
    float *tmp;
    size_t tmp_cap;
    const embed_t *namer; /* token models: whose dictionary names the features */
};

model_builder_t *model_builder_new(const model_opts_t *opts)
{
    model_builder_t *b = calloc(1, sizeof *b);
    if (b)
        b->o = *opts;
    return b;
}

void model_builder_name_tokens(model_builder_t *b, const embed_t *e)
{
    b->namer = e;
}

void model_builder_destroy(model_builder_t **self)
{
    if (!*self)
        return;
    vecset_free(&(*self)->train);
    vecset_free(&(*self)->held);
    free((*self)->tmp);
    free(*self);
    *self = NULL;
}

int model_builder_add(model_builder_t *b, const sparse_t *v, bool holdout)
{
    if (v->n > b->tmp_cap) {
        float *t = realloc(b->tmp, v->n * sizeof *t);
        if (!t)
            return -1;
        b->tmp = t;
        b->tmp_cap = v->n;
    }
    return vecset_add(holdout ? &b->held : &b->train, v, b->tmp);
}

static int by_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static size_t align8(size_t x)
{
    return (x + 7) & ~(size_t)7;
}

/* Sorted distinct keys of the training rows: the dictionary, id = position. */
static uint64_t *distinct_keys(const vecset_t *v, size_t *n_out)
{
    uint64_t *k = malloc((v->nnz ? v->nnz : 1) * sizeof *k);
    if (!k)
        return NULL;
    memcpy(k, v->keys, v->nnz * sizeof *k);
    qsort(k, v->nnz, sizeof *k, by_u64);
    size_t n = 0;
    for (size_t i = 0; i < v->nnz; i++)
        if (n == 0 || k[n - 1] != k[i])
            k[n++] = k[i];
    *n_out = n;
    return k;
}

static size_t dict_capacity(size_t dim)
{
    size_t cap = 16;
    while (cap < dim * 2)
        cap *= 2;
    return cap;
}

/* Slot hash of the dictionary: a multiply-xorshift mix, cheap enough for every feature of
 * every scored message (part of the file format). */
static uint64_t dict_hash(uint64_t key)
{
    key ^= key >> 31;
    key *= 0xbf58476d1ce4e5b9ULL;
    key ^= key >> 29;
    return key;
}

/* Where the names section starts: right after the last fixed section. */
static uint64_t names_offset(const model_header_t *h)
{
    return align8(h->off_row_spread + h->nrows * sizeof(double));
}

static void model_bind(model_t *m)
{
    model_header_t *h = m->h;
    m->dict = (const dict_slot_t *)(m->base + h->off_dict);
    m->mu = (const double *)(m->base + h->off_mu);
    m->t.n = h->nrows;
    m->t.dim = h->dim;
    m->t.rowptr = (const uint64_t *)(m->base + h->off_rowptr);
    m->t.ids = (const uint32_t *)(m->base + h->off_ids);
    m->t.vals = (const float *)(m->base + h->off_vals);
    m->t.norm2 = (const double *)(m->base + h->off_norm2);
    m->t.count = (const uint32_t *)(m->base + h->off_count);
    m->nodes = (const knn_node_t *)(m->base + h->off_nodes);
    m->seeds = (const knn_seed_t *)(m->base + h->off_seeds);
    m->row_dist = (const double *)(m->base + h->off_row_dist);
    m->row_point = (const uint32_t *)(m->base + h->off_row_point);
    m->row_spread = (const double *)(m->base + h->off_row_spread);
    m->name_off = h->names ? (const uint32_t *)(m->base + names_offset(h)) : NULL;
    m->names = h->names ? (const char *)(m->name_off + h->dim + 1) : NULL;
    embed_opts_default(&m->opts.embed);
    m->opts.embed.kind = (embed_kind_t)h->kind;
    m->opts.embed.n = (int)h->n;
    m->opts.embed.binary = h->binary;
    m->opts.embed.norm = (embed_norm_t)h->norm;
    m->opts.embed.shape = h->shape;
    m->opts.embed.header_norm = h->header_norm;
    memcpy(m->opts.embed.delim, h->delim, sizeof h->delim);
    m->opts.nu = h->nu;
    m->opts.fpr = h->fpr;
    m->opts.holdout = h->holdout;
    m->opts.k = (int)h->k;
    m->opts.local_norm = h->local_norm;
    m->opts.context_headers = h->context_headers;
    m->opts.seed = h->seed;
}

/* Each feature's name as --explain writes it (from the training embedder's dictionary), by id
 * (keys[id]); their lengths, and in *total their sum. NULL when out of memory. */
static uint32_t *feature_name_lengths(const embed_t *e, const uint64_t *keys, size_t dim,
                                      size_t *total)
{
    uint32_t *len = malloc((dim ? dim : 1) * sizeof *len);
    if (!len)
        return NULL;
    char name[sizeof(((model_feature_t *)0)->feature)];
    *total = 0;
    for (size_t id = 0; id < dim; id++) {
        embed_feature_name(e, keys[id], name, sizeof name);
        len[id] = (uint32_t)strlen(name);
        *total += len[id];
    }
    return len;
}

/* Fills the names section laid out for the lengths feature_name_lengths gave. */
static void write_feature_names(model_t *m, const embed_t *e, const uint64_t *keys,
                                const uint32_t *len)
{
    uint32_t *off = (uint32_t *)m->name_off;
    char *at = (char *)m->names, name[sizeof(((model_feature_t *)0)->feature)];
    off[0] = 0;
    for (size_t id = 0; id < m->h->dim; id++) {
        embed_feature_name(e, keys[id], name, sizeof name);
        memcpy(at + off[id], name, len[id]);
        off[id + 1] = off[id] + len[id];
    }
}

/* Lays out the file image and fills header, dictionary and rows from the training set. */
static model_t *layout_model(const model_builder_t *b, const uint64_t *keys, size_t dim)
{
    const vecset_t *v = &b->train;
    size_t dict_cap = dict_capacity(dim);
    size_t off = align8(sizeof(model_header_t));
    model_header_t h = {0};
    h.off_dict = off;
    off = align8(off + dict_cap * sizeof(dict_slot_t));
    h.off_mu = off;
    off = align8(off + dim * sizeof(double));
    h.off_rowptr = off;
    off = align8(off + (v->rows + 1) * sizeof(uint64_t));
    h.off_ids = off;
    off = align8(off + v->nnz * sizeof(uint32_t));
    h.off_vals = off;
    off = align8(off + v->nnz * sizeof(float));
    h.off_norm2 = off;
    off = align8(off + v->rows * sizeof(double));
    h.off_count = off;
    off = align8(off + v->rows * sizeof(uint32_t));
    h.off_nodes = off;
    off = align8(off + v->rows * sizeof(knn_node_t));
    h.off_seeds = off;
    off = align8(off + KNN_BANDS * v->rows * sizeof(knn_seed_t));
    h.off_row_dist = off;
    off = align8(off + v->rows * (size_t)b->o.k * sizeof(double));
    h.off_row_point = off;
    off = align8(off + v->rows * (size_t)b->o.k * sizeof(uint32_t));
    h.off_row_spread = off;
    off = align8(off + v->rows * sizeof(double));
    size_t names_bytes = 0;
    uint32_t *name_len = NULL;
    if (b->namer && b->o.embed.kind == EMBED_TOKEN) {
        if (!(name_len = feature_name_lengths(b->namer, keys, dim, &names_bytes)))
            return NULL;
        h.names = 1;
        off = align8(off + (dim + 1) * sizeof(uint32_t) + names_bytes);
    }
    model_t *m = calloc(1, sizeof *m);
    if (m && !(m->base = calloc(1, off))) {
        free(m);
        m = NULL;
    }
    if (!m) {
        free(name_len);
        return NULL;
    }
    m->size = off;
    memcpy(h.magic, MODEL_MAGIC, 8);
    h.version = MODEL_VERSION;
    h.header_size = sizeof h;
    h.file_size = off;
    const embed_opts_t *e = &b->o.embed;
    h.kind = e->kind;
    h.n = (uint32_t)e->n;
    h.binary = e->binary;
    h.norm = e->norm;
    h.shape = e->shape;
    h.header_norm = e->header_norm;
    memcpy(h.delim, e->delim, sizeof h.delim);
    h.nu = b->o.nu;
    h.fpr = b->o.fpr;
    h.holdout = b->o.holdout;
    h.k = (uint32_t)b->o.k;
    h.local_norm = b->o.local_norm;
    h.context_headers = b->o.context_headers;
    h.seed = b->o.seed;
    h.dim = dim;
    h.dict_cap = dict_cap;
    h.nrows = v->rows;
    h.nnz = v->nnz;
    h.n_train = v->total;
    h.n_holdout = b->held.total;
    memcpy(m->base, &h, sizeof h);
    m->h = (model_header_t *)m->base;
    model_bind(m);
    if (name_len)
        write_feature_names(m, b->namer, keys, name_len);
    free(name_len);

    dict_slot_t *dict = (dict_slot_t *)(m->base + h.off_dict);
    for (size_t id = 0; id < dim; id++) {
        size_t s = dict_hash(keys[id]) & (dict_cap - 1);
        while (dict[s].used)
            s = (s + 1) & (dict_cap - 1);
        dict[s] = (dict_slot_t){keys[id], (uint32_t)id, 1};
    }
    uint64_t *rowptr = (uint64_t *)(m->base + h.off_rowptr);
    uint32_t *ids = (uint32_t *)(m->base + h.off_ids);
    float *vals = (float *)(m->base + h.off_vals);
    double *norm2 = (double *)(m->base + h.off_norm2);
    uint32_t *count = (uint32_t *)(m->base + h.off_count);
    memcpy(rowptr, v->rowptr, (v->rows + 1) * sizeof *rowptr);
    if (v->rows == 0)
        rowptr[0] = 0;
    memcpy(vals, v->vals, v->nnz * sizeof *vals);
    memcpy(count, v->count, v->rows * sizeof *count);
    for (size_t r = 0; r < v->rows; r++) {
        double n2 = 0;
        for (uint64_t i = v->rowptr[r]; i < v->rowptr[r + 1]; i++) {
            const uint64_t *at = bsearch(&v->keys[i], keys, dim, sizeof *keys, by_u64);
            ids[i] = (uint32_t)(at - keys);
            n2 += (double)vals[i] * (double)vals[i];
        }
        norm2[r] = n2;
    }
    return m;
}

static int by_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The (1 - fpr) quantile of scores: at most fpr of them lie above it. */
static double quantile_threshold(double *scores, size_t n, double fpr)
{
    if (n == 0)
        return INFINITY;
    qsort(scores, n, sizeof *scores, by_double);
    double pos = ceil((1.0 - fpr) * (double)n) - 1.0;
    size_t idx = pos < 0 ? 0 : (size_t)pos;
    if (idx >= n)
        idx = n - 1;
    return scores[idx];
}

/* Scores the held-out messages (or, without any, the training rows) and sets thresholds. */
static int calibrate(model_t *m, const vecset_t *held, bool resubstitute)
{
    const vecset_t *src = held;
    size_t n = src->total;
    double *g = malloc((n ? n : 1) * sizeof *g), *l = malloc((n ? n : 1) * sizeof *l);
    model_scorer_t *s = model_scorer_new(m, false);
    sparse_t *v = sparse_new();
    int rc = -1;
    if (!g || !l || !s || !v)
        goto out;
    size_t at = 0;
    for (size_t r = 0; r < src->rows; r++) {
        size_t a = src->rowptr[r], len = src->rowptr[r + 1] - a;
        if (sparse_reserve(v, len) != 0)
            goto out;
        for (size_t i = 0; i < len; i++) {
            v->keys[i] = src->keys[a + i];
            v->vals[i] = src->vals[a + i];
        }
        v->n = len;
        sparse_update_norm(v);
        model_score_t sc;
        model_score_vector(s, v, true, &sc);
        for (uint32_t c = 0; c < src->count[r]; c++) {
            g[at] = sc.global;
            l[at++] = sc.local;
        }
    }
    (void)resubstitute;
    m->h->thr_global = quantile_threshold(g, at, m->h->fpr);
    m->h->thr_local = quantile_threshold(l, at, m->h->fpr);
    rc = 0;
out:
    free(g);
    free(l);
    model_scorer_destroy(&s);
    sparse_destroy(&v);
    return rc;
}

/* The index is built from the rows, not stored: without memory for it the tree serves. */
static void bind_search(model_t *m)
{
    m->ix = knn_index_new(&m->t);
    m->parts = (knn_parts_t){m->nodes, m->seeds, m->ix, m->row_dist, m->row_point, m->row_spread};
}

/* Each training row's own neighbour list, for queries that repeat it. */
static int build_row_lists(model_t *m)
{
    bind_search(m);
    if (!m->ix)
        return -1;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN); /* one search per distinct row: spread them */
    return knn_build_row_lists(&m->t, (int)m->h->k, &m->parts, cpus > 0 ? (int)cpus : 1,
                               (double *)(m->base + m->h->off_row_dist),
                               (uint32_t *)(m->base + m->h->off_row_point),
                               (double *)(m->base + m->h->off_row_spread));
}

model_t *model_builder_finish(model_builder_t *b, model_stats_t *stats, char *err, size_t len)
{
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (b->train.rows == 0) {
        snprintf(err, len, "no training messages");
        return NULL;
    }
    size_t dim;
    uint64_t *keys = distinct_keys(&b->train, &dim);
    model_t *m = keys ? layout_model(b, keys, dim) : NULL;
    free(keys);
    if (!m) {
        snprintf(err, len, "out of memory laying out the model");
        return NULL;
    }
    svdd_opts_t so;
    svdd_opts_default(&so);
    so.nu = b->o.nu;
    svdd_result_t sr;
    double *mu = (double *)(m->base + m->h->off_mu);
    knn_node_t *nodes = (knn_node_t *)(m->base + m->h->off_nodes);
    knn_seed_t *seeds = (knn_seed_t *)(m->base + m->h->off_seeds);
    if (svdd_fit(&m->t, &so, mu, &sr) != 0 || knn_build(&m->t, b->o.seed, nodes) != 0 ||
        knn_build_seeds(&m->t, seeds) != 0 || build_row_lists(m) != 0) {
        snprintf(err, len, "out of memory fitting the models");
        model_destroy(&m);
        return NULL;
    }
    double mu2 = 0;
    for (size_t j = 0; j < dim; j++)
        mu2 += mu[j] * mu[j];
    m->h->mu_norm2 = mu2;
    m->h->svdd_iterations = (uint64_t)sr.iterations;
    m->h->svdd_gap = sr.gap;
    bool resub = b->held.total == 0;
    if (calibrate(m, resub ? &b->train : &b->held, resub) != 0) {
        snprintf(err, len, "out of memory calibrating thresholds");
        model_destroy(&m);
        return NULL;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (stats) {
        model_stats(m, stats);
        stats->seconds = (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
    }
    return m;
}

/* ---------------------------------------------------------------- files */

static uint64_t image_checksum(const uint8_t *base, size_t size)
{
    model_header_t h;
    memcpy(&h, base, sizeof h);
    h.checksum = 0;
    XXH3_state_t st;
    XXH3_64bits_reset(&st);
    XXH3_64bits_update(&st, &h, sizeof h);
    XXH3_64bits_update(&st, base + sizeof h, size - sizeof h);
    return XXH3_64bits_digest(&st);
}

int model_save(const model_t *m, const char *path, char *err, size_t len)
{
    m->h->checksum = image_checksum(m->base, m->size);
    wholefile_t w;
    FILE *f = wholefile_open(&w, path, err, len);
    if (!f)
        return -1;
    if (fwrite(m->base, 1, m->size, f) != m->size) {
        snprintf(err, len, "%s: write failed: %s", path, strerror(errno));
        wholefile_abort(&w);
        return -1;
    }
    return wholefile_commit(&w, path, err, len); /* a reader never sees half a model */
}

static int64_t lookup(const model_t *m, uint64_t key);

/* Whether count elements of size bytes each fit in the file from off (compared by division:
 * a crafted count times the size could wrap around to a small number). */
static bool section_ok(const model_header_t *h, uint64_t off, uint64_t count, uint64_t size)
{
    return off % 8 == 0 && off >= h->header_size && off <= h->file_size &&
           count <= (h->file_size - off) / size;
}

/* The dictionary holds dim keys, each id once, each found from its own hash before an empty
 * slot (so a lookup always ends, and finds what training put there). */
static const char *validate_dictionary(const model_t *m)
{
    const model_header_t *h = m->h;
    uint8_t *seen = calloc(h->dim / 8 + 1, 1);
    if (!seen)
        return "out of memory";
    size_t used = 0;
    const char *why = NULL;
    for (size_t s = 0; s < h->dict_cap && !why; s++) {
        const dict_slot_t *d = &m->dict[s];
        if (!d->used)
            continue;
        if (d->used != 1 || d->id >= h->dim || (seen[d->id / 8] & (1u << (d->id % 8))))
            why = "dictionary entry invalid or repeated";
        else if (++used > h->dim || lookup(m, d->key) != d->id)
            why = "dictionary inconsistent";
        else
            seen[d->id / 8] |= (uint8_t)(1u << (d->id % 8));
    }
    if (!why && used != h->dim)
        why = "dictionary inconsistent";
    free(seen);
    return why;
}

/* A value no count or normalised value of a message can exceed (counts are of bytes) */
#define MODEL_VALUE_MAX 4294967296.0

static bool finite_at_least_zero(double x)
{
    return x >= 0 && isfinite(x);
}

/* Checks the header's parameters, and that every section lies inside the file (before
 * anything points into them). */
static const char *validate_layout(const model_header_t *h)
{
    if (h->kind > EMBED_TOKEN || h->n < 1 || h->n > 8 || h->norm > EMBED_NORM_L2 || h->k < 1 ||
        h->k > KNN_MAX_K || h->shape > EMBED_SHAPE_FIELDS || h->binary > 1 || h->header_norm > 1 ||
        h->local_norm > 1 || h->context_headers > 1)
        return "invalid embedding or model parameters";
    if (!(h->nu > 0 && h->nu <= 1) || !(h->fpr >= 0 && h->fpr <= 1) ||
        !(h->holdout >= 0 && h->holdout < 1))
        return "invalid training parameters";
    if (!finite_at_least_zero(h->thr_global) || !finite_at_least_zero(h->thr_local) ||
        !finite_at_least_zero(h->mu_norm2))
        return "invalid thresholds or centre";
    /* the dictionary keeps an empty slot, so that looking up an unseen key ends */
    if (h->dim > UINT32_MAX || h->nrows > UINT32_MAX || h->dict_cap <= h->dim ||
        (h->dict_cap & (h->dict_cap - 1)))
        return "invalid sizes";
    if (!section_ok(h, h->off_dict, h->dict_cap, sizeof(dict_slot_t)) ||
        !section_ok(h, h->off_mu, h->dim, sizeof(double)) ||
        !section_ok(h, h->off_rowptr, h->nrows + 1, sizeof(uint64_t)) ||
        !section_ok(h, h->off_ids, h->nnz, sizeof(uint32_t)) ||
        !section_ok(h, h->off_vals, h->nnz, sizeof(float)) ||
        !section_ok(h, h->off_norm2, h->nrows, sizeof(double)) ||
        !section_ok(h, h->off_count, h->nrows, sizeof(uint32_t)) ||
        !section_ok(h, h->off_nodes, h->nrows, sizeof(knn_node_t)) ||
        !section_ok(h, h->off_seeds, KNN_BANDS * h->nrows, sizeof(knn_seed_t)) ||
        !section_ok(h, h->off_row_dist, h->nrows * h->k, sizeof(double)) ||
        !section_ok(h, h->off_row_point, h->nrows * h->k, sizeof(uint32_t)) ||
        !section_ok(h, h->off_row_spread, h->nrows, sizeof(double)))
        return "a section lies outside the file";
    if (h->names > 1 || (h->names && (h->version < 7 || h->kind != EMBED_TOKEN)))
        return "invalid names flag";
    if (h->names && !section_ok(h, names_offset(h), h->dim + 1, sizeof(uint32_t)))
        return "the names section lies outside the file";
    return NULL;
}

/* The names: in order, each at most as long as --explain writes one, printable ASCII (they
 * go to terminals and JSON as they are), all inside the file. */
static const char *validate_names(const model_t *m)
{
    const model_header_t *h = m->h;
    if (!m->name_off)
        return NULL;
    size_t room = h->file_size - (size_t)((const uint8_t *)m->names - m->base);
    if (m->name_off[0] != 0 || m->name_off[h->dim] > room)
        return "names section inconsistent";
    for (size_t id = 0; id < h->dim; id++)
        if (m->name_off[id + 1] < m->name_off[id] ||
            m->name_off[id + 1] - m->name_off[id] >= sizeof(((model_feature_t *)0)->feature))
            return "names section inconsistent";
    for (size_t i = 0; i < m->name_off[h->dim]; i++)
        if (m->names[i] < 0x20 || m->names[i] > 0x7e)
            return "a feature name is not printable";
    return NULL;
}

/* Checks that every index in the sections is in range and every value a finite number that
 * a model can hold. */
static const char *validate(const model_t *m)
{
    const model_header_t *h = m->h;
    const trainset_t *t = &m->t;
    if (t->rowptr[0] != 0 || t->rowptr[t->n] != h->nnz)
        return "row offsets inconsistent";
    for (size_t r = 0; r < t->n; r++) {
        if (t->rowptr[r + 1] < t->rowptr[r])
            return "row offsets not increasing";
        if (m->nodes[r].point >= t->n || m->nodes[r].inside >= (int64_t)t->n ||
            m->nodes[r].outside >= (int64_t)t->n)
            return "tree node out of range";
        for (int b = 0; b < KNN_BANDS; b++)
            if (m->seeds[(size_t)b * t->n + r].row >= t->n)
                return "seed row out of range";
        for (size_t i = r * h->k; i < (r + 1) * h->k; i++)
            if (m->row_point[i] >= t->n ||
                !(finite_at_least_zero(m->row_dist[i]) || m->row_dist[i] == -1))
                return "stored neighbour out of range";
        if (!finite_at_least_zero(m->row_spread[r]))
            return "stored neighbour spread invalid";
        if (!finite_at_least_zero(t->norm2[r]))
            return "row norm invalid";
    }
    for (size_t d = 0; d < h->dim; d++)
        if (!(fabs(m->mu[d]) <= MODEL_VALUE_MAX))
            return "centre value invalid";
    for (size_t i = 0; i < h->nnz; i++)
        if (!(fabsf(t->vals[i]) <= (float)MODEL_VALUE_MAX))
            return "row value invalid";
    for (size_t i = 0; i < h->nnz; i++)
        if (t->ids[i] >= h->dim)
            return "feature id out of range";
    const char *why = validate_names(m);
    return why ? why : validate_dictionary(m);
}

model_t *model_load(const char *path, char *err, size_t len)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        snprintf(err, len, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        snprintf(err, len, "%s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (st.st_size < (off_t)sizeof(model_header_t)) {
        snprintf(err, len, "%s: not a sipguard model (file too short: %lld bytes)", path,
                 (long long)st.st_size);
        close(fd);
        return NULL;
    }
    /* Read into private memory rather than mapped: a model file overwritten in place (cp over
     * it) while a daemon uses it would otherwise change or vanish under the running model. */
    size_t size = (size_t)st.st_size, got = 0;
    uint8_t *img = malloc(size);
    while (img && got < size) {
        ssize_t r = read(fd, img + got, size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!img || got != size) {
        snprintf(err, len, "%s: %s", path,
                 img ? "read error or file changed while reading" : "out of memory");
        free(img);
        return NULL;
    }
    return model_load_image(img, size, path, err, len);
}

model_t *model_load_image(uint8_t *img, size_t size, const char *path, char *err, size_t len)
{
    if (size < sizeof(model_header_t)) {
        snprintf(err, len, "%s: not a sipguard model (file too short: %zu bytes)", path, size);
        free(img);
        return NULL;
    }
    model_t *m = calloc(1, sizeof *m);
    if (!m) {
        free(img);
        snprintf(err, len, "%s: out of memory", path);
        return NULL;
    }
    m->base = img;
    m->size = size;
    m->h = (model_header_t *)img;
    const char *why = NULL;
    char buf[160];
    if (memcmp(m->h->magic, MODEL_MAGIC, 7) != 0) {
        why = "not a sipguard model (bad magic)";
    } else if (m->h->version < 6 || m->h->version > MODEL_VERSION ||
               m->h->magic[7] != MODEL_MAGIC[7]) {
        /* version 6 is version 7 without names, and 8 is 7 with ftag= and did= shaped: all
         * three are read as they are (model_advice) */
        snprintf(buf, sizeof buf, "model format version %u; this build reads versions 6 to %d",
                 m->h->version, MODEL_VERSION);
        why = buf;
    } else if (m->h->header_size != sizeof(model_header_t)) {
        why = "header size does not match this version";
    } else if (m->h->file_size != m->size) {
        snprintf(buf, sizeof buf, "truncated or extended: file has %zu bytes, header says %llu",
                 m->size, (unsigned long long)m->h->file_size);
        why = buf;
    } else if (image_checksum(m->base, m->size) != m->h->checksum) {
        why = "checksum mismatch (file corrupt)";
    } else {
        why = validate_layout(m->h);
        if (!why) {
            model_bind(m);
            why = validate(m);
        }
        if (!why)
            bind_search(m);
    }
    if (why) {
        snprintf(err, len, "%s: %s", path, why);
        model_destroy(&m);
        return NULL;
    }
    return m;
}

void model_destroy(model_t **self)
{
    model_t *m = *self;
    if (!m)
        return;
    knn_index_destroy(&m->ix);
    free(m->base);
    free(m);
    *self = NULL;
}

/* What field shaping took since each model version, newest last: a model's advice names all
 * that came after it. */
#define SHAPED_SINCE_11                                                                            \
    "the ports of Vias over TCP, TLS, WS, WSS and SCTP, Vias' rport= values, and the ports of "    \
    "Contacts and request URIs over TCP, TLS and SCTP"
#define SHAPED_SINCE_10                                                                            \
    "WebSocket clients' made-up Via hosts and Contact users (under .invalid) and connection "      \
    "ports, " SHAPED_SINCE_11
#define SHAPED_SINCE_9                                                                             \
    "WebRTC's ICE candidates, media stream ids, SSRC groups, DTLS fingerprints "                   \
    "and " SHAPED_SINCE_10
#define SHAPED_SINCE_8                                                                             \
    "Date, Session-ID, IMS's spi-c= and spi-s=, SDP's media ports other than audio, RTCP "         \
    "ports, SSRCs, ICE credentials, SDES keys, " SHAPED_SINCE_9
#define SHAPED_SINCE_7                                                                             \
    "the ftag= and did= of Record-Route (Kamailio, OpenSIPS), the icid-value= of "                 \
    "P-Charging-Vector (IMS), " SHAPED_SINCE_8
#define RETRAIN_ADVICE(shaped)                                                                     \
    "trained by an older build, before field shaping took " shaped ": it scores, but train it "    \
    "again so that it learns them as they are now shaped"

const char *model_advice(const model_t *m)
{
    if (m->h->shape != EMBED_SHAPE_FIELDS)
        return NULL;
    if (m->h->version < 8)
        return RETRAIN_ADVICE(SHAPED_SINCE_7);
    if (m->h->version < 9)
        return RETRAIN_ADVICE(SHAPED_SINCE_8);
    if (m->h->version < 10)
        return RETRAIN_ADVICE(SHAPED_SINCE_9);
    if (m->h->version < 11)
        return RETRAIN_ADVICE(SHAPED_SINCE_10);
    if (m->h->version < 12)
        return RETRAIN_ADVICE(SHAPED_SINCE_11);
    return NULL;
}

const model_opts_t *model_options(const model_t *m)
{
    return &m->opts;
}

const trainset_t *model_trainset(const model_t *m)
{
    return &m->t;
}

void model_stats(const model_t *m, model_stats_t *s)
{
    memset(s, 0, sizeof *s);
    s->messages = m->h->n_train;
    s->holdout = m->h->n_holdout;
    s->distinct = m->h->nrows;
    s->dim = m->h->dim;
    s->nnz = m->h->nnz;
    s->svdd_iterations = (int)m->h->svdd_iterations;
    s->svdd_gap = m->h->svdd_gap;
    s->thr_global = m->h->thr_global;
    s->thr_local = m->h->thr_local;
}

bool model_has_feature_names(const model_t *m)
{
    return m->name_off != NULL;
}

int model_centre_features(const model_t *m, int n, model_feature_t *out)
{
    if (n <= 0)
        return 0;
    uint64_t *keys = malloc((size_t)n * sizeof *keys);
    uint32_t *ids = malloc((size_t)n * sizeof *ids);
    embed_t *e = embed_new(&m->opts.embed);
    if (!e || !keys || !ids) {
        free(keys);
        free(ids);
        embed_destroy(&e);
        return -1;
    }
    int got = 0;
    for (size_t d = 0; d < m->h->dict_cap; d++) {
        if (!m->dict[d].used)
            continue;
        double w = m->mu[m->dict[d].id];
        if (w <= 0 || (got == n && w <= out[n - 1].contribution))
            continue;
        int at = got < n ? got++ : n - 1; /* insertion into the n kept, largest first */
        for (; at > 0 && out[at - 1].contribution < w; at--) {
            out[at] = out[at - 1];
            keys[at] = keys[at - 1];
            ids[at] = ids[at - 1];
        }
        out[at].contribution = w;
        keys[at] = m->dict[d].key;
        ids[at] = m->dict[d].id;
    }
    for (int i = 0; i < got; i++) {
        if (m->name_off) { /* validated: shorter than the field */
            uint32_t a = m->name_off[ids[i]], b = m->name_off[ids[i] + 1];
            memcpy(out[i].feature, m->names + a, b - a);
            out[i].feature[b - a] = '\0';
        } else {
            embed_feature_name(e, keys[i], out[i].feature, sizeof out[i].feature);
        }
    }
    free(keys);
    free(ids);
    embed_destroy(&e);
    return got;
}

/* ---------------------------------------------------------------- scoring */

struct model_scorer {
    const model_t *m;
    embed_t *embed;
    sparse_t *v;
    uint32_t *qids;
    double *qvals;
    size_t qcap;
    knn_searcher_t *knn;
    bool brute;   /* the local model measures every training row (checks and tests) */
    double dot;   /* of s->v with the centre, from model_scorer_embed_message() */
    bool v_stale; /* global-only scoring left s->v unwritten; written when asked for */
};

/* The centre goes to the embedder as weights, so global scoring gets its dot product while
 * the message's features are counted (embed_set_weights). Returns 0 or -1. */
static int give_centre_to_embedder(model_scorer_t *s)
{
    const model_t *m = s->m;
    size_t n = 0;
    uint64_t *keys = malloc((m->h->dim + 1) * sizeof *keys);
    double *w = malloc((m->h->dim + 1) * sizeof *w);
    int rc = -1;
    if (!keys || !w)
        goto out;
    for (size_t d = 0; d < m->h->dict_cap; d++) {
        if (!m->dict[d].used || m->mu[m->dict[d].id] == 0)
            continue;
        keys[n] = m->dict[d].key;
        w[n++] = m->mu[m->dict[d].id];
    }
    rc = embed_set_weights(s->embed, keys, w, n);
out:
    free(keys);
    free(w);
    return rc;
}

model_scorer_t *model_scorer_new(const model_t *m, bool explain)
{
    model_scorer_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->m = m;
    s->embed = embed_new(&m->opts.embed);
    s->v = sparse_new();
    s->knn = knn_searcher_new(&m->t, m->opts.k);
    if (!s->embed || !s->v || !s->knn) {
        model_scorer_destroy(&s);
        return NULL;
    }
    embed_keep_dictionary(s->embed, explain);
    embed_set_sorted(s->embed, false);
    if (give_centre_to_embedder(s) != 0)
        model_scorer_destroy(&s);
    return s;
}

void model_scorer_use_brute_force(model_scorer_t *s, bool on)
{
    s->brute = on;
}

void model_scorer_destroy(model_scorer_t **self)
{
    model_scorer_t *s = *self;
    if (!s)
        return;
    embed_destroy(&s->embed);
    sparse_destroy(&s->v);
    knn_searcher_destroy(&s->knn);
    free(s->qids);
    free(s->qvals);
    free(s);
    *self = NULL;
}

embed_t *model_scorer_embed(model_scorer_t *s)
{
    return s->embed;
}

/* The last message's vector, written now if global-only scoring left it out. */
static int fresh_vector(model_scorer_t *s)
{
    if (!s->v_stale)
        return 0;
    s->v_stale = false;
    return embed_last_vector(s->embed, s->v);
}

const sparse_t *model_scorer_vector(model_scorer_t *s)
{
    if (fresh_vector(s) != 0)
        s->v->n = 0;
    return s->v;
}

/* Dense id of a feature key, or -1 when training never saw it. */
static int64_t lookup(const model_t *m, uint64_t key)
{
    size_t mask = m->h->dict_cap - 1;
    for (size_t s = dict_hash(key) & mask;; s = (s + 1) & mask) {
        if (!m->dict[s].used)
            return -1;
        if (m->dict[s].key == key)
            return m->dict[s].id;
    }
}

bool model_above_threshold(double score, double threshold)
{
    return score > threshold + 1e-9 * fabs(threshold);
}

/* The global score from the vector's squared norm and its dot product with the centre. */
static void score_global(const model_t *m, double norm2, double dot, model_score_t *out)
{
    /* the scalars only: clearing the neighbour arrays would cost more than this whole score */
    out->local = 0;
    out->local_anomaly = out->local_done = false;
    out->nn.k = 0;
    out->nn.visited = 0;
    out->nn.spread = 0;
    out->global = sparse_distance_from(norm2, m->h->mu_norm2, dot);
    out->global_anomaly = model_above_threshold(out->global, m->h->thr_global);
}

int model_score_vector(model_scorer_t *s, const sparse_t *v, bool want_local, model_score_t *out)
{
    const model_t *m = s->m;
    if (!want_local) {
        score_global(m, v->norm2, embed_weighted_dot(s->embed, v), out);
        return 0;
    }
    if (v->n > s->qcap) {
        uint32_t *qi = realloc(s->qids, v->n * sizeof *qi);
        if (!qi)
            return -1;
        s->qids = qi;
        double *qv = realloc(s->qvals, v->n * sizeof *qv);
        if (!qv)
            return -1;
        s->qvals = qv;
        s->qcap = v->n;
    }
    size_t nq = 0;
    double dot = 0, known2 = 0;
    for (size_t i = 0; i < v->n; i++) {
        int64_t id = lookup(m, v->keys[i]);
        if (id < 0)
            continue;
        s->qids[nq] = (uint32_t)id;
        s->qvals[nq++] = v->vals[i];
        dot += v->vals[i] * m->mu[id];
        known2 += v->vals[i] * v->vals[i];
    }
    score_global(m, v->norm2, dot, out);
    if (want_local) {
        double offset2 = v->norm2 - known2;
        query_t q = {s->qids, s->qvals, nq, known2, offset2 > 0 ? offset2 : 0};
        if (s->brute)
            knn_search_brute(s->knn, &q, &out->nn);
        else
            knn_search(s->knn, &m->parts, &q, &out->nn);
        out->local = knn_local_score(&m->t, &out->nn);
        if (m->opts.local_norm && v->norm2 > 0)
            out->local /= sqrt(v->norm2);
        out->local_done = true;
        out->local_anomaly = model_above_threshold(out->local, m->h->thr_local);
    }
    return 0;
}

int model_scorer_embed_message(model_scorer_t *s, const uint8_t *data, size_t len)
{
    s->v_stale = false;
    return embed_message_dot(s->embed, data, len, s->v, &s->dot);
}

int model_score_embedded(model_scorer_t *s, bool want_local, model_score_t *out)
{
    if (want_local)
        return fresh_vector(s) == 0 ? model_score_vector(s, s->v, true, out) : -1;
    score_global(s->m, s->v->norm2, s->dot, out);
    return 0;
}

/* Global-only scoring needs the vector's squared norm and its dot product with the centre,
 * not the vector (embed_message_stats); the vector is written if asked for afterwards. */
int model_score_message(model_scorer_t *s, const uint8_t *data, size_t len, bool want_local,
                        model_score_t *out)
{
    if (want_local) {
        if (model_scorer_embed_message(s, data, len) != 0)
            return -1;
        return model_score_embedded(s, true, out);
    }
    if (embed_message_stats(s->embed, data, len, &s->v->norm2, &s->dot) != 0)
        return -1;
    s->v_stale = true;
    return model_score_embedded(s, false, out);
}

/* Value of a feature id in a training row, 0 when absent. */
static double row_value(const trainset_t *t, size_t row, int64_t id)
{
    if (id < 0)
        return 0;
    uint64_t lo = t->rowptr[row], hi = t->rowptr[row + 1];
    while (lo < hi) {
        uint64_t mid = (lo + hi) / 2;
        if (t->ids[mid] < (uint32_t)id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < t->rowptr[row + 1] && t->ids[lo] == (uint32_t)id ? t->vals[lo] : 0;
}

static void keep_top(model_feature_t *top, int *n, const char *name, double c)
{
    int pos = *n < MODEL_EXPLAIN_TOP ? (*n)++ : MODEL_EXPLAIN_TOP;
    if (pos == MODEL_EXPLAIN_TOP) {
        if (c <= top[MODEL_EXPLAIN_TOP - 1].contribution)
            return;
        pos = MODEL_EXPLAIN_TOP - 1;
    }
    while (pos > 0 && top[pos - 1].contribution < c) {
        top[pos] = top[pos - 1];
        pos--;
    }
    snprintf(top[pos].feature, sizeof top[pos].feature, "%s", name);
    top[pos].contribution = c;
}

void model_explain(model_scorer_t *s, const model_score_t *score, model_explain_t *out)
{
    const model_t *m = s->m;
    const sparse_t *v = s->v;
    memset(out, 0, sizeof *out);
    if (fresh_vector(s) != 0)
        return;
    bool local = score->local_done && score->nn.k > 0;
    for (size_t i = 0; i < v->n; i++) {
        int64_t id = lookup(m, v->keys[i]);
        double mu = id >= 0 ? m->mu[id] : 0;
        double cg = (v->vals[i] - mu) * (v->vals[i] - mu) - mu * mu;
        char name[96];
        embed_feature_name(s->embed, v->keys[i], name, sizeof name);
        if (cg > 0)
            keep_top(out->global, &out->n_global, name, cg);
        if (local) {
            double p = row_value(&m->t, score->nn.point[0], id);
            double cl = (v->vals[i] - p) * (v->vals[i] - p) - p * p;
            if (cl > 0)
                keep_top(out->local, &out->n_local, name, cl);
        }
    }
}
