#include "knn.h"

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
/* The bound pass also has an AVX2 form, taken at run time where the processor has it */
#if defined(__x86_64__) && defined(__GNUC__)
#define KNN_AVX2 1
#include <immintrin.h>
#endif

#include "sparse.h"

typedef struct {
    uint64_t hash;
    uint32_t n, cap; /* features stored; room for cap (0: empty slot) */
    int hn;          /* neighbours in the stored heap */
    double spread;   /* their spread (knn_result_t) */
    uint32_t *ids;
    double *vals;
} cache_slot_t;

/* Single precision: half the memory of double, so the rows' sums stay in cache, and exact
 * for counts; bound_cheap allows for the rounding otherwise. */
typedef struct {
    float dot; /* q_P . x_P */
    float x2;  /* |x_P|^2 */
} row_acc_t;

typedef struct {
    double lb2;    /* lower bound on the squared distance */
    uint32_t pos;  /* the row's position in the index (knn_index_t row_at) */
    uint32_t full; /* lb2 includes the dense block (else only its norm) */
} knn_cand_t;

/* A distinct posting list among a query's rare features: the features sharing it (the same
 * rows with the same values) add to each row's sums together, walking it once. */
typedef struct {
    uint32_t j;   /* the lead feature, whose list it is */
    uint32_t cnt; /* the query's features with this list */
    double qsum;  /* the sum of their values */
    double qsq;   /* the sum of their squares */
} qlist_t;

struct knn_searcher {
    const trainset_t *t;
    int k;
    bool avx2; /* the bound pass four rows a step (knn_searcher_use_avx2) */
    double *dense;
    uint32_t *seen; /* seen[row] == gen: already offered in this search */
    uint32_t gen;
    /* max-heap of the best k so far, ordered by (dist, point) */
    double hd[KNN_MAX_K];
    uint32_t hp[KNN_MAX_K];
    int hn;
    size_t visited;
    size_t closed; /* rows in the leaves a search passed over */
    /* index search: per-row partial sums over the prefix features; all zero between searches,
     * and a row is touched when they are not */
    row_acc_t *acc;
    knn_cand_t *cand;
    uint32_t *rows; /* rows touched (their positions in the index), nrows of them */
    size_t nrows;
    uint32_t *runs; /* the open leaves, [runs[2i], runs[2i + 1]) as leaf numbers (open_leaves) */
    size_t nruns, runs_cap;
    bool runs_set;    /* the runs are known (else walks take whole lists) */
    uint32_t *qorder; /* the query's rare features, rarest first */
    size_t qorder_cap;
    qlist_t *qlists;                /* their distinct posting lists, rarest first (split_query) */
    uint32_t *lead_gen, *lead_slot; /* by lead feature: in qlists at lead_slot when == gen */
    float *qc;                      /* the query's common features as a dense row */
    int16_t *qc16;                  /* the same as integers, for a block of bytes */
    bool qc_small;                  /* every value of the query's common part is a byte */
    size_t qc_cap;
    double *memo; /* |q_C - x_C|^2 of each distinct common part, valid where memo_gen == gen */
    uint32_t *memo_gen;
    size_t memo_cap;
    /* answers of recent queries that equal no training row (KNN_CACHE_SLOTS slots, the
     * answer's heap at slot * k in cache_d and cache_p) */
    cache_slot_t *cache;
    double *cache_d;
    uint32_t *cache_p;
};

/* --- building --- */

typedef struct {
    uint32_t point;
    double d;
} item_t;

static int by_distance(const void *a, const void *b)
{
    const item_t *x = a, *y = b;
    if (x->d != y->d)
        return x->d < y->d ? -1 : 1;
    return x->point < y->point ? -1 : x->point > y->point;
}

static double row_distance(const trainset_t *t, uint32_t a, uint32_t b)
{
    return sparse_distance_from(t->norm2[a], t->norm2[b], trainset_row_dot(t, a, b));
}

static uint64_t next_random(uint64_t *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return *state >> 33;
}

/*
 * A good vantage point splits its subset into a near and a far half with a wide gap, so the
 * triangle inequality can prune one of them. Among a few random candidates, take the one
 * whose distances to a random sample spread most (largest variance); small subsets take
 * any point, where the sampling would cost more than it saves.
 */
static size_t choose_vantage(const trainset_t *t, const item_t *items, size_t n, uint64_t *rng)
{
    enum { CANDIDATES = 5, SAMPLE = 24 };
    if (n <= 64)
        return next_random(rng) % n;
    size_t best = 0;
    double best_spread = -1;
    for (int c = 0; c < CANDIDATES; c++) {
        size_t cand = next_random(rng) % n;
        double sum = 0, sum2 = 0;
        for (int k = 0; k < SAMPLE; k++) {
            double d = row_distance(t, items[cand].point, items[next_random(rng) % n].point);
            sum += d;
            sum2 += d * d;
        }
        double spread = sum2 / SAMPLE - (sum / SAMPLE) * (sum / SAMPLE);
        if (spread > best_spread) {
            best_spread = spread;
            best = cand;
        }
    }
    return best;
}

/* Builds the subtree over items[0..n) into nodes from *next on; returns its root or -1. */
static int32_t build(const trainset_t *t, item_t *items, size_t n, knn_node_t *nodes,
                     uint32_t *next, uint64_t *rng)
{
    if (n == 0)
        return -1;
    size_t pick = choose_vantage(t, items, n, rng);
    item_t tmp = items[0];
    items[0] = items[pick];
    items[pick] = tmp;
    int32_t me = (int32_t)(*next)++;
    knn_node_t *node = &nodes[me];
    node->point = items[0].point;
    node->inside = node->outside = -1;
    node->radius = 0;
    node->norm_lo = node->norm_hi = sqrt(t->norm2[node->point]);
    if (n == 1)
        return me;
    for (size_t i = 1; i < n; i++)
        items[i].d = row_distance(t, node->point, items[i].point);
    qsort(items + 1, n - 1, sizeof *items, by_distance);
    size_t half = (n - 1) / 2; /* items[1..1+half) inside, the rest outside */
    if (half == 0)
        half = 1;
    double radius = items[half].d;
    /* Keep the split consistent with "inside means d <= radius". */
    size_t cut = 1;
    while (cut < n && items[cut].d <= radius)
        cut++;
    nodes[me].radius = radius;
    int32_t in = build(t, items + 1, cut - 1, nodes, next, rng);
    int32_t out = build(t, items + cut, n - cut, nodes, next, rng);
    nodes[me].inside = in;
    nodes[me].outside = out;
    for (int c = 0; c < 2; c++) {
        int32_t child = c ? out : in;
        if (child < 0)
            continue;
        if (nodes[child].norm_lo < nodes[me].norm_lo)
            nodes[me].norm_lo = nodes[child].norm_lo;
        if (nodes[child].norm_hi > nodes[me].norm_hi)
            nodes[me].norm_hi = nodes[child].norm_hi;
    }
    return me;
}

int knn_build(const trainset_t *t, uint64_t seed, knn_node_t *nodes)
{
    if (t->n == 0)
        return 0;
    item_t *items = malloc(t->n * sizeof *items);
    if (!items)
        return -1;
    for (size_t i = 0; i < t->n; i++)
        items[i] = (item_t){(uint32_t)i, 0};
    uint32_t next = 0;
    uint64_t rng = seed ? seed : 0x5eed;
    build(t, items, t->n, nodes, &next, &rng);
    free(items);
    return 0;
}

/* --- searching --- */

bool knn_searcher_use_avx2(knn_searcher_t *s, bool on)
{
#ifdef KNN_AVX2
    s->avx2 = on && __builtin_cpu_supports("avx2");
#else
    (void)on;
    s->avx2 = false;
#endif
    return s->avx2;
}

/* Whether a row's partial sums are touched (bits, not values: -0 counts as touched, which
 * costs a bound and no more). */
static inline bool touched(const row_acc_t *a)
{
    uint64_t bits;
    memcpy(&bits, a, sizeof bits);
    return bits != 0;
}

bool knn_searcher_sums_clear(const knn_searcher_t *s)
{
    for (size_t r = 0; r < s->t->n; r++)
        if (touched(&s->acc[r]))
            return false;
    return true;
}

knn_searcher_t *knn_searcher_new(const trainset_t *t, int k)
{
    if (k < 1 || k > KNN_MAX_K)
        return NULL;
    knn_searcher_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->t = t;
    s->k = k;
    knn_searcher_use_avx2(s, true);
    s->dense = calloc(t->dim ? t->dim : 1, sizeof *s->dense);
    size_t n = t->n ? t->n : 1;
    s->seen = calloc(n, sizeof *s->seen);
    s->acc = calloc(n, sizeof *s->acc);
    s->cand = malloc(n * sizeof *s->cand);
    s->rows = malloc((n + 1) * sizeof *s->rows); /* add_posting_listed writes one past */
    if (!s->dense || !s->seen || !s->acc || !s->cand || !s->rows) {
        knn_searcher_destroy(&s);
        return NULL;
    }
    return s;
}

void knn_searcher_destroy(knn_searcher_t **self)
{
    knn_searcher_t *s = *self;
    if (!s)
        return;
    free(s->dense);
    free(s->seen);
    free(s->acc);
    free(s->cand);
    free(s->rows);
    free(s->runs);
    free(s->qorder);
    free(s->qlists);
    free(s->lead_gen);
    free(s->lead_slot);
    free(s->qc);
    free(s->qc16);
    free(s->memo);
    free(s->memo_gen);
    if (s->cache)
        for (size_t i = 0; i < KNN_CACHE_SLOTS; i++) {
            free(s->cache[i].ids);
            free(s->cache[i].vals);
        }
    free(s->cache);
    free(s->cache_d);
    free(s->cache_p);
    free(s);
    *self = NULL;
}

static int worse(double da, uint32_t pa, double db, uint32_t pb)
{
    return da > db || (da == db && pa > pb);
}

static void heap_swap(knn_searcher_t *s, int a, int b)
{
    double td = s->hd[a];
    uint32_t tp = s->hp[a];
    s->hd[a] = s->hd[b];
    s->hp[a] = s->hp[b];
    s->hd[b] = td;
    s->hp[b] = tp;
}

static void heap_sift_down(knn_searcher_t *s, int i)
{
    for (;;) {
        int l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->hn && worse(s->hd[l], s->hp[l], s->hd[m], s->hp[m]))
            m = l;
        if (r < s->hn && worse(s->hd[r], s->hp[r], s->hd[m], s->hp[m]))
            m = r;
        if (m == i)
            return;
        heap_swap(s, i, m);
        i = m;
    }
}

static void heap_push(knn_searcher_t *s, double d, uint32_t p)
{
    if (s->hn == s->k) {
        if (!worse(s->hd[0], s->hp[0], d, p))
            return;
        s->hd[0] = d;
        s->hp[0] = p;
        heap_sift_down(s, 0);
        return;
    }
    int i = s->hn++;
    s->hd[i] = d;
    s->hp[i] = p;
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (!worse(s->hd[i], s->hp[i], s->hd[parent], s->hp[parent]))
            break;
        heap_swap(s, i, parent);
        i = parent;
    }
}

static void offer(knn_searcher_t *s, uint32_t point, double d)
{
    uint32_t copies = s->t->count[point];
    if (copies > (uint32_t)s->k)
        copies = (uint32_t)s->k;
    for (uint32_t c = 0; c < copies; c++)
        heap_push(s, d, point);
}

static double tau(const knn_searcher_t *s)
{
    return s->hn < s->k ? INFINITY : s->hd[0];
}

/* A training row's dot product with the query scattered into s->dense, in four sums: one
 * would wait on each addition before the next (a row has hundreds of features). */
static double row_dot_query(const knn_searcher_t *s, uint32_t row)
{
    const trainset_t *t = s->t;
    const uint32_t *ids = t->ids;
    const float *vals = t->vals;
    const double *dense = s->dense;
    double d0 = 0, d1 = 0, d2 = 0, d3 = 0;
    uint64_t i = t->rowptr[row], end = t->rowptr[row + 1];
    for (; i + 4 <= end; i += 4) {
        d0 += (double)vals[i] * dense[ids[i]];
        d1 += (double)vals[i + 1] * dense[ids[i + 1]];
        d2 += (double)vals[i + 2] * dense[ids[i + 2]];
        d3 += (double)vals[i + 3] * dense[ids[i + 3]];
    }
    for (; i < end; i++)
        d0 += (double)vals[i] * dense[ids[i]];
    return (d0 + d1) + (d2 + d3);
}

static double query_distance(knn_searcher_t *s, const query_t *q, uint32_t row)
{
    s->visited++;
    return sparse_distance_from(q->norm2, s->t->norm2[row], row_dot_query(s, row));
}

/* The distance to a row, computed and offered once per search. */
static double visit(knn_searcher_t *s, const query_t *q, uint32_t row)
{
    double d = query_distance(s, q, row);
    if (s->seen[row] != s->gen) {
        s->seen[row] = s->gen;
        offer(s, row, d);
    }
    return d;
}

static void new_search(knn_searcher_t *s)
{
    s->hn = 0;
    s->visited = 0;
    s->closed = 0;
    if (++s->gen == 0) {
        memset(s->seen, 0, s->t->n * sizeof *s->seen);
        if (s->memo_gen)
            memset(s->memo_gen, 0, s->memo_cap * sizeof *s->memo_gen);
        if (s->lead_gen)
            memset(s->lead_gen, 0, s->t->dim * sizeof *s->lead_gen);
        s->gen = 1;
    }
}

static void search_node(knn_searcher_t *s, const knn_node_t *nodes, int32_t i, const query_t *q)
{
    double qn = sqrt(q->norm2);
    while (i >= 0) {
        const knn_node_t *node = &nodes[i];
        /* | |q| - |x| | <= d(q, x): a subtree whose norms all lie farther than the bound from
         * |q| holds nothing closer (slack against rounding, as below) */
        double bound = tau(s), slack = 1e-9 * (1.0 + qn);
        if (qn + bound + slack < node->norm_lo || qn - bound - slack > node->norm_hi)
            return;
        double d = visit(s, q, node->point);
        /* Slack against rounding in d: pruning must never drop a true neighbour. */
        double eps = 1e-9 * (1.0 + d + node->radius);
        int32_t near = d <= node->radius ? node->inside : node->outside;
        int32_t far = d <= node->radius ? node->outside : node->inside;
        if (near >= 0)
            search_node(s, nodes, near, q);
        double gap = d <= node->radius ? node->radius - d : d - node->radius;
        if (far < 0 || gap > tau(s) + eps)
            return;
        i = far; /* tail call */
    }
}

static void scatter(knn_searcher_t *s, const query_t *q, double sign)
{
    for (size_t i = 0; i < q->n; i++)
        s->dense[q->ids[i]] = sign > 0 ? q->vals[i] : 0.0;
}

static void collect(knn_searcher_t *s, const query_t *q, knn_result_t *r)
{
    int n = s->hn;
    r->k = n;
    /* pop the heap from the worst down */
    for (int i = n - 1; i >= 0; i--) {
        r->dist[i] = q->offset2 > 0 ? sqrt(s->hd[0] * s->hd[0] + q->offset2) : s->hd[0];
        r->point[i] = s->hp[0];
        s->hd[0] = s->hd[s->hn - 1];
        s->hp[0] = s->hp[s->hn - 1];
        s->hn--;
        heap_sift_down(s, 0);
    }
    r->visited = s->visited;
    r->closed = s->closed;
}

/* --- the index: posting lists for rare features, a dense block for common ones --- */

struct knn_index {
    size_t n, dim;
    uint32_t cap;  /* features held by more rows than this are common */
    uint32_t *df;  /* rows holding each feature */
    uint64_t *off; /* dim + 1 offsets into row/val; common features have empty lists */
    uint32_t *row; /* the rows holding a feature, as positions (row_at), ascending */
    float *val;
    float *same; /* the value every entry of a feature's list has, else 0 (add_posting) */
    /* Where each leaf begins in a long list: for a lead feature j whose list has at least
     * 2 (nleaf + 1) entries, leaf_dir[leaf_dir_at[j] + l] is the offset in the list of its
     * first entry at or past leaf l's first position (l = 0..nleaf), so a walk finds where an
     * open leaf's rows start without a binary search (add_list); other lists have none. */
    uint64_t *leaf_dir_at;
    uint32_t *leaf_dir;
    int32_t *col;   /* column of a common feature in the dense block, else -1 */
    uint32_t *lead; /* the lowest feature whose posting list equals this one's (rows and
                     * values): a search walks such a list once for all of them */
    size_t ncol;    /* common features (columns) */
    size_t stride;  /* ncol rounded up to a multiple of 16 */
    /* The distinct common parts, ndense rows of stride values, and which one each training row
     * has: rows of one template from many users often share theirs, so the block is smaller
     * and a search measures each distinct part once (knn_searcher_t memo). When every value
     * is a count up to 255 (the default embedding) the block is held as bytes (dense8, dense
     * NULL): a quarter of the memory, and each part read when measured is 6 cache lines
     * rather than 24 at 107k training messages, where the block of floats was 23 MB and its
     * reads missed the caches. */
    float *dense;
    uint8_t *dense8;
    size_t ndense;
    uint32_t *dense_of;
    double *c2;    /* squared norm of each row's common part */
    double *cn;    /* and its square root */
    double *rest2; /* the rest of each row's squared norm */
    double *norm2; /* each row's squared norm */
    /* The rows in leaves (see knn.h, KNN_LEAF_ROWS): the index holds them in the order of
     * the leaves, and everything above that is indexed by row (dense_of to norm2, the posting
     * lists) is indexed by that position instead; row_at gives a position's training row.
     * pdir holds the KNN_PROJ_DIMS directions over the common columns, column by column
     * (pdir[c * KNN_PROJ_DIMS + j]); leaf_box a leaf's range in each of the LEAF_COORDS
     * coordinates (low, high), and leaf_norm2 its largest squared norm. */
    uint32_t *row_at;
    double *pdir;
    size_t leaf_rows; /* the most rows a leaf holds */
    size_t nleaf;
    uint32_t *leaf_start; /* nleaf + 1 positions */
    double *leaf_box;
    double *leaf_norm2;
    uint32_t *by_hash; /* open addressing on the rows' content hashes: row + 1, 0 empty */
    uint64_t *row_hash;
    size_t hash_cap;
};

/* A hash of a sparse vector that does not depend on the order of its entries. */
static uint64_t entry_hash(uint32_t id, float v)
{
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    uint64_t x = ((uint64_t)id << 32 | bits) * 0x9E3779B97F4A7C15ULL;
    x ^= x >> 29;
    x *= 0xBF58476D1CE4E5B9ULL;
    return x ^ (x >> 32);
}

static int index_hashes(knn_index_t *ix, const trainset_t *t)
{
    ix->hash_cap = 16;
    while (ix->hash_cap < 2 * t->n)
        ix->hash_cap *= 2;
    ix->by_hash = calloc(ix->hash_cap, sizeof *ix->by_hash);
    ix->row_hash = malloc((t->n ? t->n : 1) * sizeof *ix->row_hash);
    if (!ix->by_hash || !ix->row_hash)
        return -1;
    for (size_t r = 0; r < t->n; r++) {
        uint64_t h = 0;
        for (uint64_t i = t->rowptr[r]; i < t->rowptr[r + 1]; i++)
            h += entry_hash(t->ids[i], t->vals[i]);
        ix->row_hash[r] = h;
        size_t at = h & (ix->hash_cap - 1);
        while (ix->by_hash[at])
            at = (at + 1) & (ix->hash_cap - 1);
        ix->by_hash[at] = (uint32_t)r + 1;
    }
    return 0;
}

static int index_postings(knn_index_t *ix, const trainset_t *t)
{
    uint64_t total = 0;
    for (size_t j = 0; j < t->dim; j++) {
        ix->off[j] = total;
        if (ix->df[j] <= ix->cap)
            total += ix->df[j];
    }
    ix->off[t->dim] = total;
    ix->row = malloc((total ? total : 1) * sizeof *ix->row);
    ix->val = malloc((total ? total : 1) * sizeof *ix->val);
    uint64_t *fill = malloc((t->dim + 1) * sizeof *fill);
    if (!ix->row || !ix->val || !fill) {
        free(fill);
        return -1;
    }
    ix->same = calloc(t->dim + 1, sizeof *ix->same);
    if (!ix->same) {
        free(fill);
        return -1;
    }
    memcpy(fill, ix->off, (t->dim + 1) * sizeof *fill);
    for (size_t at = 0; at < t->n; at++) { /* each list in position order */
        uint32_t r = ix->row_at[at];
        for (uint64_t i = t->rowptr[r]; i < t->rowptr[r + 1]; i++) {
            uint32_t j = t->ids[i];
            if (ix->df[j] <= ix->cap) {
                ix->row[fill[j]] = (uint32_t)at;
                ix->val[fill[j]++] = t->vals[i];
            }
        }
    }
    free(fill);
    for (size_t j = 0; j < t->dim; j++) {
        uint64_t e = ix->off[j], end = ix->off[j + 1];
        while (e < end && ix->val[e] == ix->val[ix->off[j]])
            e++;
        ix->same[j] = e == end && end > ix->off[j] ? ix->val[ix->off[j]] : 0;
    }
    return 0;
}

/* The leaf directories of the long lists (knn_index_t leaf_dir); after index_list_leads. */
static int index_leaf_dirs(knn_index_t *ix)
{
    uint64_t total = 0, per = ix->nleaf + 1;
    ix->leaf_dir_at = malloc((ix->dim + 1) * sizeof *ix->leaf_dir_at);
    if (!ix->leaf_dir_at)
        return -1;
    for (size_t j = 0; j < ix->dim; j++) {
        ix->leaf_dir_at[j] = total;
        if (ix->lead[j] == j && ix->off[j + 1] - ix->off[j] >= 2 * per)
            total += per;
    }
    ix->leaf_dir_at[ix->dim] = total;
    ix->leaf_dir = malloc((total ? total : 1) * sizeof *ix->leaf_dir);
    if (!ix->leaf_dir)
        return -1;
    for (size_t j = 0; j < ix->dim; j++) {
        if (ix->leaf_dir_at[j + 1] == ix->leaf_dir_at[j])
            continue;
        uint64_t a = ix->off[j], e = a, end = ix->off[j + 1];
        uint32_t *dir = ix->leaf_dir + ix->leaf_dir_at[j];
        for (size_t l = 0; l < per; l++) {
            while (e < end && ix->row[e] < ix->leaf_start[l])
                e++;
            dir[l] = (uint32_t)(e - a);
        }
    }
    return 0;
}

static bool same_list(const knn_index_t *ix, uint32_t a, uint32_t b)
{
    uint64_t n = ix->off[a + 1] - ix->off[a];
    return n == ix->off[b + 1] - ix->off[b] &&
           !memcmp(ix->row + ix->off[a], ix->row + ix->off[b], n * sizeof *ix->row) &&
           !memcmp(ix->val + ix->off[a], ix->val + ix->off[b], n * sizeof *ix->val);
}

/*
 * Finds the rare features whose posting lists are equal, rows and values: the n-grams of one
 * string that only some messages hold (a user name, a User-Agent version) are held by exactly
 * those messages. Per query that merges 370k posting entries into 139k at 107k training
 * messages of 1,000 users, 50k into 13k at 10.9k. The lists themselves stay as they are.
 */
static int index_list_leads(knn_index_t *ix)
{
    size_t lists = 0, cap = 1024;
    for (size_t j = 0; j < ix->dim; j++)
        lists += ix->off[j + 1] > ix->off[j];
    while (cap < 2 * lists)
        cap *= 2;
    ix->lead = malloc((ix->dim ? ix->dim : 1) * sizeof *ix->lead);
    uint32_t *slot = calloc(cap, sizeof *slot); /* feature + 1 */
    uint64_t *hash = malloc(cap * sizeof *hash);
    if (!ix->lead || !slot || !hash) {
        free(slot);
        free(hash);
        return -1;
    }
    for (uint32_t j = 0; j < ix->dim; j++) {
        ix->lead[j] = j;
        uint64_t a = ix->off[j], n = ix->off[j + 1] - a;
        if (n == 0)
            continue;
        uint64_t h = XXH3_64bits_withSeed(ix->row + a, n * sizeof *ix->row,
                                          XXH3_64bits(ix->val + a, n * sizeof *ix->val));
        for (size_t at = h & (cap - 1);; at = (at + 1) & (cap - 1)) {
            if (!slot[at]) {
                slot[at] = j + 1;
                hash[at] = h;
                break;
            }
            if (hash[at] == h && same_list(ix, slot[at] - 1, j)) {
                ix->lead[j] = slot[at] - 1;
                break;
            }
        }
    }
    free(slot);
    free(hash);
    return 0;
}

/* The distinct common part equal to `row` (one row of the block, `bytes` long), added when
 * new; its index. */
static uint32_t intern_dense_row(knn_index_t *ix, uint32_t *slots, size_t cap, const void *row,
                                 size_t bytes)
{
    uint8_t *block = ix->dense8 ? ix->dense8 : (uint8_t *)ix->dense;
    for (size_t at = XXH3_64bits(row, bytes) & (cap - 1);; at = (at + 1) & (cap - 1)) {
        if (!slots[at]) {
            memcpy(block + ix->ndense * bytes, row, bytes);
            slots[at] = (uint32_t)++ix->ndense;
            return slots[at] - 1;
        }
        if (!memcmp(block + (size_t)(slots[at] - 1) * bytes, row, bytes))
            return slots[at] - 1;
    }
}

/* A value the block of bytes can hold exactly */
static bool byte_value(double v)
{
    return v >= 0 && v <= 255 && v == (double)(uint8_t)v;
}

/* Whether the common part of every row fits a block of bytes. Past 65,536 columns the integer
 * sums of dense_distance2_bytes could overflow, so such a block stays in floats. */
static bool common_part_is_bytes(const knn_index_t *ix, const trainset_t *t)
{
    if (ix->stride > 65536)
        return false;
    for (uint64_t i = 0; i < t->rowptr[t->n]; i++)
        if (ix->col[t->ids[i]] >= 0 && !byte_value(t->vals[i]))
            return false;
    return true;
}

/* Shrinks the block to its distinct parts, with 16 zero bytes after the last part so that the
 * distance loops may read whole vectors. */
static void fit_dense_block(knn_index_t *ix)
{
    size_t esize = ix->dense8 ? 1 : sizeof *ix->dense, used = ix->ndense * ix->stride * esize;
    uint8_t *block = ix->dense8 ? ix->dense8 : (uint8_t *)ix->dense;
    uint8_t *fit = realloc(block, used + 16 * esize);
    if (fit)
        block = fit;
    memset(block + used, 0, 16 * esize);
    if (ix->dense8)
        ix->dense8 = block;
    else
        ix->dense = (float *)block;
}

static int index_dense_block(knn_index_t *ix, const trainset_t *t)
{
    for (size_t j = 0; j < t->dim; j++)
        ix->col[j] = ix->df[j] > ix->cap ? (int32_t)ix->ncol++ : -1;
    ix->stride = (ix->ncol + 15) / 16 * 16;
    bool bytes = common_part_is_bytes(ix, t);
    size_t cap = 16, esize = bytes ? 1 : sizeof *ix->dense, row_bytes = ix->stride * esize;
    while (cap < 2 * t->n)
        cap *= 2;
    if (bytes)
        ix->dense8 = malloc(t->n * row_bytes + 16);
    else
        ix->dense = malloc(t->n * row_bytes + 16 * esize);
    ix->dense_of = malloc((t->n ? t->n : 1) * sizeof *ix->dense_of);
    ix->c2 = calloc(t->n ? t->n : 1, sizeof *ix->c2);
    ix->cn = calloc(t->n ? t->n : 1, sizeof *ix->cn);
    ix->rest2 = calloc(t->n ? t->n : 1, sizeof *ix->rest2);
    uint32_t *slots = calloc(cap, sizeof *slots);
    float *row = calloc(ix->stride + 16, sizeof *row);
    uint8_t *row8 = calloc(ix->stride + 16, 1);
    if ((!ix->dense && !ix->dense8) || !ix->dense_of || !ix->c2 || !ix->cn || !ix->rest2 ||
        !slots || !row || !row8) {
        free(slots);
        free(row);
        free(row8);
        return -1;
    }
    for (size_t r = 0; r < t->n; r++) {
        for (uint64_t i = t->rowptr[r]; i < t->rowptr[r + 1]; i++) {
            int32_t c = ix->col[t->ids[i]];
            if (c >= 0) {
                row[c] = t->vals[i];
                row8[c] = bytes ? (uint8_t)t->vals[i] : 0;
                ix->c2[r] += (double)t->vals[i] * t->vals[i];
            }
        }
        ix->dense_of[r] = intern_dense_row(ix, slots, cap, bytes ? (void *)row8 : row, row_bytes);
        ix->cn[r] = sqrt(ix->c2[r]);
        ix->rest2[r] = t->norm2[r] - ix->c2[r];
        for (uint64_t i = t->rowptr[r]; i < t->rowptr[r + 1]; i++)
            if (ix->col[t->ids[i]] >= 0)
                row[ix->col[t->ids[i]]] = row8[ix->col[t->ids[i]]] = 0;
    }
    free(slots);
    free(row);
    free(row8);
    fit_dense_block(ix);
    return 0;
}

/* --- leaves: the rows in groups, each with a box that bounds its rows' distances --- */

/* A leaf's coordinates: the common part's projection on each direction, the length of the
 * rest of the common part, and the length of the rare part. */
#define LEAF_COORDS (KNN_PROJ_DIMS + 2)

static double part_value(const knn_index_t *ix, size_t d, size_t c)
{
    return ix->dense8 ? (double)ix->dense8[d * ix->stride + c]
                      : (double)ix->dense[d * ix->stride + c];
}

/* Makes the rows of v (m directions of length n) orthonormal by Gram-Schmidt, twice over so
 * that rounding leaves them orthogonal to double precision; a direction that vanishes
 * becomes zero (it then adds nothing to a bound). */
static void orthonormalise(double *v, size_t n, int m)
{
    for (int i = 0; i < m; i++)
        for (int pass = 0; pass < 2; pass++) {
            double *vi = v + (size_t)i * n, len = 0;
            for (int j = 0; j < i; j++) {
                const double *vj = v + (size_t)j * n;
                double dot = 0;
                for (size_t c = 0; c < n; c++)
                    dot += vi[c] * vj[c];
                for (size_t c = 0; c < n; c++)
                    vi[c] -= dot * vj[c];
            }
            for (size_t c = 0; c < n; c++)
                len += vi[c] * vi[c];
            len = sqrt(len);
            for (size_t c = 0; c < n; c++)
                vi[c] = len > 1e-12 ? vi[c] / len : 0;
        }
}

/*
 * The directions along which the distinct common parts vary most (their leading principal
 * components, by a few rounds of subspace iteration on an even sample of them, centred, from a
 * fixed seed). Any orthonormal directions give valid bounds; these make them tight, as rows of
 * one kind of message (REGISTER, INVITE, a provisional response, ...) sit far from the others
 * along them. Returns them column by column (stride rows of KNN_PROJ_DIMS values), or NULL.
 */
#define PROJ_SAMPLE 2048
#define PROJ_ROUNDS 6
static double *common_directions(const knn_index_t *ix)
{
    const size_t n = ix->stride, parts = ix->ndense, dims = KNN_PROJ_DIMS;
    /* at most PROJ_SAMPLE parts, and a sample of at most 32 MB however wide the block */
    size_t sample = parts < PROJ_SAMPLE ? parts : PROJ_SAMPLE, most = 1 + (1u << 22) / (n + 1);
    sample = sample < most ? sample : most;
    double *x = malloc((sample * n + 1) * sizeof *x), *mean = calloc(n + 1, sizeof *mean);
    double *v = calloc(n * dims + 1, sizeof *v), *rows = calloc(dims * n + 1, sizeof *rows);
    double *w = calloc(dims, sizeof *w), *next = calloc(n * dims + 1, sizeof *next);
    if (!x || !mean || !v || !rows || !w || !next) {
        free(x);
        free(mean);
        free(v);
        free(rows);
        free(w);
        free(next);
        return NULL;
    }
    for (size_t i = 0; i < sample; i++)
        for (size_t c = 0; c < n; c++)
            mean[c] += part_value(ix, i * parts / sample, c) / (double)sample;
    for (size_t i = 0; i < sample; i++)
        for (size_t c = 0; c < n; c++)
            x[i * n + c] = part_value(ix, i * parts / sample, c) - mean[c];
    uint64_t rng = 0x5eed;
    for (size_t i = 0; i < n * dims; i++)
        v[i] = (double)(next_random(&rng) >> 11) * 0x1p-53 - 0.5;
    for (int round = 0; round <= PROJ_ROUNDS; round++) {
        /* orthonormal rows of the transposed v, then v from them */
        for (size_t c = 0; c < n; c++)
            for (size_t j = 0; j < dims; j++)
                rows[j * n + c] = v[c * dims + j];
        orthonormalise(rows, n, (int)dims);
        for (size_t c = 0; c < n; c++)
            for (size_t j = 0; j < dims; j++)
                v[c * dims + j] = rows[j * n + c];
        if (round == PROJ_ROUNDS)
            break;
        /* v = X^T X v, a row of the sample at a time: w = x_i v, then x_i^T w */
        memset(next, 0, n * dims * sizeof *next);
        for (size_t i = 0; i < sample; i++) {
            const double *xi = x + i * n;
            memset(w, 0, dims * sizeof *w);
            for (size_t c = 0; c < n; c++)
                for (size_t j = 0; j < dims; j++)
                    w[j] += xi[c] * v[c * dims + j];
            for (size_t c = 0; c < n; c++)
                for (size_t j = 0; j < dims; j++)
                    next[c * dims + j] += xi[c] * w[j];
        }
        memcpy(v, next, n * dims * sizeof *v);
    }
    free(x);
    free(mean);
    free(rows);
    free(w);
    free(next);
    return v;
}

/* The leaf coordinates of each row (LEAF_COORDS a row), by training row; NULL when memory
 * ran out. Keeps the directions in ix->pdir for projecting queries. */
static double *row_coordinates(knn_index_t *ix, const trainset_t *t)
{
    size_t n = ix->stride;
    double *part = calloc(ix->ndense * LEAF_COORDS + 1, sizeof *part);
    double *coord = malloc((t->n ? t->n : 1) * LEAF_COORDS * sizeof *coord);
    ix->pdir = common_directions(ix);
    if (!part || !coord || !ix->pdir) {
        free(part);
        free(coord);
        return NULL;
    }
    for (size_t d = 0; d < ix->ndense; d++) {
        double *pc = part + d * LEAF_COORDS, len2 = 0, proj2 = 0;
        for (size_t c = 0; c < n; c++) {
            double x = part_value(ix, d, c);
            if (x == 0)
                continue;
            len2 += x * x;
            for (int j = 0; j < KNN_PROJ_DIMS; j++)
                pc[j] += x * ix->pdir[c * KNN_PROJ_DIMS + (size_t)j];
        }
        for (int j = 0; j < KNN_PROJ_DIMS; j++)
            proj2 += pc[j] * pc[j];
        pc[KNN_PROJ_DIMS] = sqrt(len2 > proj2 ? len2 - proj2 : 0);
    }
    for (size_t r = 0; r < t->n; r++) {
        memcpy(coord + r * LEAF_COORDS, part + (size_t)ix->dense_of[r] * LEAF_COORDS,
               (KNN_PROJ_DIMS + 1) * sizeof *coord);
        coord[r * LEAF_COORDS + KNN_PROJ_DIMS + 1] = sqrt(ix->rest2[r] > 0 ? ix->rest2[r] : 0);
    }
    free(part);
    return coord;
}

/* Closes the leaf of the rows at positions [a, b): its box and largest squared norm. */
static void close_leaf(knn_index_t *ix, const trainset_t *t, const double *coord, size_t a,
                       size_t b)
{
    size_t l = ix->nleaf++;
    double *box = ix->leaf_box + l * 2 * LEAF_COORDS;
    ix->leaf_start[l] = (uint32_t)a;
    ix->leaf_start[l + 1] = (uint32_t)b;
    ix->leaf_norm2[l] = 0;
    for (int c = 0; c < LEAF_COORDS; c++) {
        box[2 * c] = INFINITY;
        box[2 * c + 1] = -INFINITY;
    }
    for (size_t i = a; i < b; i++) {
        const double *x = coord + (size_t)ix->row_at[i] * LEAF_COORDS;
        for (int c = 0; c < LEAF_COORDS; c++) {
            box[2 * c] = fmin(box[2 * c], x[c]);
            box[2 * c + 1] = fmax(box[2 * c + 1], x[c]);
        }
        ix->leaf_norm2[l] = fmax(ix->leaf_norm2[l], t->norm2[ix->row_at[i]]);
    }
}

/* Splits the rows at positions [a, b) in half by the coordinate they spread most along, down
 * to leaves of at most ix->leaf_rows: neighbouring leaves sit next to each other. */
static void split_rows(knn_index_t *ix, const trainset_t *t, const double *coord, item_t *scratch,
                       size_t a, size_t b)
{
    if (b - a <= ix->leaf_rows) {
        close_leaf(ix, t, coord, a, b);
        return;
    }
    int widest = 0;
    double spread = -1;
    for (int c = 0; c < LEAF_COORDS; c++) {
        double lo = INFINITY, hi = -INFINITY;
        for (size_t i = a; i < b; i++) {
            double v = coord[(size_t)ix->row_at[i] * LEAF_COORDS + (size_t)c];
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
        }
        if (hi - lo > spread) {
            spread = hi - lo;
            widest = c;
        }
    }
    /* sorted by that coordinate (as item_t distances), ties by row */
    for (size_t i = a; i < b; i++)
        scratch[i] =
            (item_t){ix->row_at[i], coord[(size_t)ix->row_at[i] * LEAF_COORDS + (size_t)widest]};
    qsort(scratch + a, b - a, sizeof *scratch, by_distance);
    for (size_t i = a; i < b; i++)
        ix->row_at[i] = scratch[i].point;
    size_t mid = a + (b - a) / 2;
    split_rows(ix, t, coord, scratch, a, mid);
    split_rows(ix, t, coord, scratch, mid, b);
}

/* Puts the rows in leaves (ix->row_at, the boxes); 0 or -1. */
static int index_leaves(knn_index_t *ix, const trainset_t *t)
{
    size_t n = t->n, most = n / (ix->leaf_rows / 2) + 2; /* halving leaves at least half full */
    ix->row_at = malloc((n ? n : 1) * sizeof *ix->row_at);
    ix->leaf_start = malloc((most + 1) * sizeof *ix->leaf_start);
    ix->leaf_box = malloc(most * 2 * LEAF_COORDS * sizeof *ix->leaf_box);
    ix->leaf_norm2 = malloc(most * sizeof *ix->leaf_norm2);
    item_t *scratch = malloc((n ? n : 1) * sizeof *scratch);
    double *coord = row_coordinates(ix, t);
    if (!ix->row_at || !ix->leaf_start || !ix->leaf_box || !ix->leaf_norm2 || !scratch || !coord) {
        free(scratch);
        free(coord);
        return -1;
    }
    for (size_t r = 0; r < n; r++)
        ix->row_at[r] = (uint32_t)r;
    ix->leaf_start[0] = 0;
    if (n)
        split_rows(ix, t, coord, scratch, 0, n);
    free(scratch);
    free(coord);
    return 0;
}

/* Puts a by-row array of n values in position order. */
static int permute_rows(void **values, size_t size, const uint32_t *row_at, size_t n)
{
    uint8_t *in = *values, *out = malloc((n ? n : 1) * size);
    if (!out)
        return -1;
    for (size_t i = 0; i < n; i++)
        memcpy(out + i * size, in + (size_t)row_at[i] * size, size);
    free(in);
    *values = out;
    return 0;
}

static int index_positions(knn_index_t *ix, const trainset_t *t)
{
    ix->norm2 = malloc((t->n ? t->n : 1) * sizeof *ix->norm2);
    if (!ix->norm2)
        return -1;
    memcpy(ix->norm2, t->norm2, t->n * sizeof *ix->norm2);
    return permute_rows((void **)&ix->dense_of, sizeof *ix->dense_of, ix->row_at, t->n) ||
                   permute_rows((void **)&ix->c2, sizeof *ix->c2, ix->row_at, t->n) ||
                   permute_rows((void **)&ix->cn, sizeof *ix->cn, ix->row_at, t->n) ||
                   permute_rows((void **)&ix->rest2, sizeof *ix->rest2, ix->row_at, t->n) ||
                   permute_rows((void **)&ix->norm2, sizeof *ix->norm2, ix->row_at, t->n)
               ? -1
               : 0;
}

knn_index_t *knn_index_new(const trainset_t *t)
{
    return knn_index_new_sized(t, KNN_LEAF_ROWS);
}

knn_index_t *knn_index_new_sized(const trainset_t *t, size_t leaf_rows)
{
    knn_index_t *ix = calloc(1, sizeof *ix);
    if (!ix)
        return NULL;
    ix->n = t->n;
    ix->dim = t->dim;
    ix->leaf_rows = leaf_rows < 2 ? 2 : leaf_rows;
    /* A feature most rows hold would give a posting list as long as a brute-force pass and
     * never prune anything; such features are few and go into a small dense block. */
    ix->cap = (uint32_t)(t->n / KNN_INDEX_COMMON + 1);
    ix->df = calloc(t->dim + 1, sizeof *ix->df);
    ix->off = calloc(t->dim + 1, sizeof *ix->off);
    ix->col = calloc(t->dim + 1, sizeof *ix->col);
    if (!ix->df || !ix->off || !ix->col) {
        knn_index_destroy(&ix);
        return NULL;
    }
    for (uint64_t i = 0; i < t->rowptr[t->n]; i++)
        ix->df[t->ids[i]]++;
    /* the leaves come from the common parts, and the posting lists list positions */
    if (index_dense_block(ix, t) != 0 || index_leaves(ix, t) != 0 || index_positions(ix, t) != 0 ||
        index_postings(ix, t) != 0 || index_list_leads(ix) != 0 || index_leaf_dirs(ix) != 0 ||
        index_hashes(ix, t) != 0)
        knn_index_destroy(&ix);
    return ix;
}

size_t knn_index_shared_lists(const knn_index_t *ix)
{
    size_t n = 0;
    for (size_t j = 0; j < ix->dim; j++)
        n += ix->lead[j] != j;
    return n;
}

bool knn_index_common_bytes(const knn_index_t *ix)
{
    return ix->dense8 != NULL;
}

void knn_index_destroy(knn_index_t **self)
{
    knn_index_t *ix = *self;
    if (!ix)
        return;
    free(ix->df);
    free(ix->off);
    free(ix->row);
    free(ix->val);
    free(ix->same);
    free(ix->leaf_dir_at);
    free(ix->leaf_dir);
    free(ix->col);
    free(ix->lead);
    free(ix->dense);
    free(ix->dense8);
    free(ix->dense_of);
    free(ix->c2);
    free(ix->cn);
    free(ix->rest2);
    free(ix->norm2);
    free(ix->row_at);
    free(ix->pdir);
    free(ix->leaf_start);
    free(ix->leaf_box);
    free(ix->leaf_norm2);
    free(ix->by_hash);
    free(ix->row_hash);
    free(ix);
    *self = NULL;
}

/* --- searching through the index --- */

/*
 * A row's squared distance splits over three parts of the feature space: the prefix P (the
 * query's rare features whose posting lists have been added into acc and acc2), the common
 * features C (the dense block, exact), and the rest M. On M only the norms are known, so
 *   d^2 >= (|q_P|^2 - 2 acc + acc2) + |q_C - x_C|^2 + (|q_M| - |x_M|)^2,
 * which is the exact distance once P holds all of the query's rare features. A row on no
 * posting list of P has acc = acc2 = 0: it differs from the query by the whole of q_P.
 */
typedef struct {
    double qp2;   /* |q_P|^2 */
    double qm;    /* |q_M| */
    double qc2;   /* |q_C|^2 */
    double qcn;   /* |q_C| */
    size_t np;    /* posting lists in P (each for one or more features) */
    size_t nrare; /* the query's rare features' lists: P holds all of them when np == nrare */
    double qproj[KNN_PROJ_DIMS]; /* q_C's leaf coordinates: its projections, */
    double qres;                 /* the length of the rest of it, */
    double qrn;                  /* and the length of the query off the block (|q_R|) */
} split_t;

/*
 * |q_C - x_C|^2 in single precision, four lanes at a time in two chains (the block's rows are
 * padded with zeros to a multiple of sixteen). For counts every step is exact; otherwise the
 * rounding error of a sum of ncol non-negative terms is below ncol * 2^-23 of it, so the result
 * scaled down by FLOAT_SUM_MARGIN is still a lower bound.
 */
typedef float v4f __attribute__((vector_size(16)));
#define FLOAT_SUM_MARGIN (1.0 - 1e-4)

static double dense_distance2(const float *qc, const float *x, size_t stride)
{
    v4f acc0 = {0}, acc1 = {0};
    for (size_t c = 0; c < stride; c += 8) {
        v4f a0, a1, b0, b1;
        memcpy(&a0, qc + c, sizeof a0);
        memcpy(&a1, qc + c + 4, sizeof a1);
        memcpy(&b0, x + c, sizeof b0);
        memcpy(&b1, x + c + 4, sizeof b1);
        v4f d0 = a0 - b0, d1 = a1 - b1;
        acc0 += d0 * d0;
        acc1 += d1 * d1;
    }
    v4f acc = acc0 + acc1;
    return ((double)acc[0] + acc[1] + acc[2] + acc[3]) * FLOAT_SUM_MARGIN;
}

/* |q_C - x_C|^2 for a block of bytes and a query whose common values are bytes too: exact, in
 * integers. Each difference is at most 255 in size, so a 32-bit lane gains at most 2 * 2 * 255^2
 * a step of 16 columns, and common_part_is_bytes keeps the steps to 4,096. */
static double dense_distance2_bytes(const int16_t *qc, const uint8_t *x, size_t stride)
{
#ifdef __SSE2__
    __m128i zero = _mm_setzero_si128(), acc0 = zero, acc1 = zero;
    for (size_t c = 0; c < stride; c += 16) {
        __m128i xb = _mm_loadu_si128((const __m128i *)(const void *)(x + c));
        __m128i dl = _mm_sub_epi16(_mm_loadu_si128((const __m128i *)(const void *)(qc + c)),
                                   _mm_unpacklo_epi8(xb, zero));
        __m128i dh = _mm_sub_epi16(_mm_loadu_si128((const __m128i *)(const void *)(qc + c + 8)),
                                   _mm_unpackhi_epi8(xb, zero));
        acc0 = _mm_add_epi32(acc0, _mm_madd_epi16(dl, dl));
        acc1 = _mm_add_epi32(acc1, _mm_madd_epi16(dh, dh));
    }
    int32_t lanes[4];
    _mm_storeu_si128((__m128i *)(void *)lanes, _mm_add_epi32(acc0, acc1));
    return (double)lanes[0] + lanes[1] + lanes[2] + lanes[3];
#else
    int64_t sum = 0;
    for (size_t c = 0; c < stride; c++) {
        int32_t d = qc[c] - x[c];
        sum += d * d;
    }
    return (double)sum;
#endif
}

/* The same for a query with a value that is not a byte (a count past 255 of some common
 * n-gram: rare, an attack's message): in double precision from the query rounded to float, as
 * dense_distance2 does. */
static double dense_distance2_mixed(const float *qc, const uint8_t *x, size_t stride)
{
    double sum = 0;
    for (size_t c = 0; c < stride; c++) {
        double d = (double)qc[c] - x[c];
        sum += d * d;
    }
    return sum * FLOAT_SUM_MARGIN;
}

static double measure_common(const knn_searcher_t *s, const knn_index_t *ix, uint32_t d)
{
    if (!ix->dense8)
        return dense_distance2(s->qc, ix->dense + (size_t)d * ix->stride, ix->stride);
    const uint8_t *x = ix->dense8 + (size_t)d * ix->stride;
    return s->qc_small ? dense_distance2_bytes(s->qc16, x, ix->stride)
                       : dense_distance2_mixed(s->qc, x, ix->stride);
}

/* Asks for row r's common part to be fetched into the cache, before it is measured */
static void prefetch_common(const knn_index_t *ix, uint32_t r)
{
    size_t bytes = ix->stride * (ix->dense8 ? 1 : sizeof *ix->dense);
    const uint8_t *x =
        (ix->dense8 ? ix->dense8 : (const uint8_t *)ix->dense) + (size_t)ix->dense_of[r] * bytes;
    for (size_t b = 0; b < bytes; b += 64)
        __builtin_prefetch(x + b);
}

/* Row r's part, measured once per search for each distinct common part. */
static double common_distance2(knn_searcher_t *s, const knn_index_t *ix, uint32_t r)
{
    uint32_t d = ix->dense_of[r];
    if (s->memo_gen[d] != s->gen) {
        s->memo_gen[d] = s->gen;
        s->memo[d] = measure_common(s, ix, d);
    }
    return s->memo[d];
}

/* The bound without the dense block (its part bounded by the norms alone), then with it. */
static double bound_cheap(const knn_index_t *ix, const split_t *sp, uint32_t r, row_acc_t a)
{
    double acc = a.dot, acc2 = a.x2, gc = sp->qcn - ix->cn[r];
    if (sp->np == sp->nrare) {
        /* P holds all of the query's rare features: |x_M|^2 is the rest of |x|^2 off the
         * common block, acc2 cancels (and need not have been summed), and acc (a float sum
         * of np terms, the query's values rounded to float) may be off by (np + 2) * 2^-23
         * of |q_P|^2 + |x_R|^2 */
        double e2 = ix->rest2[r];
        double rounding = (double)(sp->np + 2) * 0x1p-23 * (sp->qp2 + e2);
        return sp->qp2 - 2 * acc + e2 - rounding + gc * gc;
    }
    /* the float sums over np terms (and the query's values rounded to float) may be off by
     * (np + 2) * 2^-23 of their magnitudes */
    double rounding = (double)(sp->np + 2) * 0x1p-23 * (sp->qp2 + 2 * acc2);
    double xm2 = ix->rest2[r] - acc2;
    double gm = sp->qm - sqrt(xm2 > 0 ? xm2 : 0);
    return sp->qp2 - 2 * acc + acc2 - rounding + gm * gm + gc * gc;
}

static double bound_full(knn_searcher_t *s, const knn_index_t *ix, const split_t *sp, uint32_t r,
                         double cheap)
{
    double gc = sp->qcn - ix->cn[r];
    return cheap - gc * gc + common_distance2(s, ix, r);
}

/* Slack against rounding: a bound within it of the current k-th distance is not trusted
 * (the row at position pos). */
static double slack(const knn_index_t *ix, const query_t *q, uint32_t pos, double t2)
{
    return 1e-9 * (1.0 + q->norm2 + ix->norm2[pos] + t2);
}

static bool cand_before(const knn_cand_t *a, const knn_cand_t *b)
{
    return a->lb2 < b->lb2 || (a->lb2 == b->lb2 && a->pos < b->pos);
}

/* The candidates form a min-heap on their bounds. */
static void cand_sift_down(knn_cand_t *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && cand_before(&h[l], &h[m]))
            m = l;
        if (r < n && cand_before(&h[r], &h[m]))
            m = r;
        if (m == i)
            return;
        knn_cand_t t = h[i];
        h[i] = h[m];
        h[m] = t;
        i = m;
    }
}

static int grow_query_scratch(knn_searcher_t *s, size_t n)
{
    if (!s->lead_gen) {
        s->lead_gen = calloc(s->t->dim ? s->t->dim : 1, sizeof *s->lead_gen);
        s->lead_slot = malloc((s->t->dim ? s->t->dim : 1) * sizeof *s->lead_slot);
        if (!s->lead_gen || !s->lead_slot)
            return -1;
    }
    if (n <= s->qorder_cap)
        return 0;
    uint32_t *o = realloc(s->qorder, n * sizeof *o);
    if (!o)
        return -1;
    s->qorder = o;
    qlist_t *l = realloc(s->qlists, n * sizeof *l);
    if (!l)
        return -1;
    s->qlists = l;
    s->qorder_cap = n;
    return 0;
}

/* Scatters the query's common features into qc, orders its rare ones from the rarest up (by
 * the power of two of how many rows hold them) into qorder, and merges those that share a
 * posting list into qlists; returns how many lists. */
static size_t split_query(knn_searcher_t *s, const knn_index_t *ix, const query_t *q, split_t *sp)
{
    size_t start[34] = {0};
    sp->qc2 = 0;
    memset(sp->qproj, 0, sizeof sp->qproj);
    s->qc_small = true;
    for (size_t i = 0; i < q->n; i++) {
        uint32_t j = q->ids[i], df = ix->df[j];
        if (ix->col[j] >= 0) {
            s->qc[ix->col[j]] = (float)q->vals[i];
            s->qc16[ix->col[j]] = byte_value(q->vals[i]) ? (int16_t)q->vals[i] : 0;
            s->qc_small &= byte_value(q->vals[i]);
            sp->qc2 += q->vals[i] * q->vals[i];
            const double *dir = ix->pdir + (size_t)ix->col[j] * KNN_PROJ_DIMS;
            for (int d = 0; d < KNN_PROJ_DIMS; d++)
                sp->qproj[d] += q->vals[i] * dir[d];
        } else
            start[(df ? 32 - __builtin_clz(df) : 0) + 1]++;
    }
    for (int b = 1; b < 34; b++)
        start[b] += start[b - 1];
    for (size_t i = 0; i < q->n; i++) {
        uint32_t j = q->ids[i], df = ix->df[j];
        if (ix->col[j] < 0)
            s->qorder[start[df ? 32 - __builtin_clz(df) : 0]++] = (uint32_t)i;
    }
    /* features with one list (equal lists have equal lengths, so the same bucket) merge */
    size_t nl = 0;
    for (size_t o = 0; o < start[33]; o++) {
        uint32_t i = s->qorder[o], lead = ix->lead[q->ids[i]];
        double v = q->vals[i];
        if (s->lead_gen[lead] != s->gen) {
            s->lead_gen[lead] = s->gen;
            s->lead_slot[lead] = (uint32_t)nl;
            s->qlists[nl++] = (qlist_t){lead, 0, 0, 0};
        }
        qlist_t *l = &s->qlists[s->lead_slot[lead]];
        l->cnt++;
        l->qsum += v;
        l->qsq += v * v;
    }
    sp->qcn = sqrt(sp->qc2);
    double proj2 = 0, qe2 = q->norm2 - sp->qc2;
    for (int d = 0; d < KNN_PROJ_DIMS; d++)
        proj2 += sp->qproj[d] * sp->qproj[d];
    sp->qres = sqrt(sp->qc2 > proj2 ? sp->qc2 - proj2 : 0);
    sp->qrn = sqrt(qe2 > 0 ? qe2 : 0);
    sp->qp2 = 0;
    sp->np = 0;
    sp->nrare = nl;
    return nl;
}

static void clear_query(knn_searcher_t *s, const knn_index_t *ix, const query_t *q)
{
    for (size_t i = 0; i < q->n; i++)
        if (ix->col[q->ids[i]] >= 0)
            s->qc[ix->col[q->ids[i]]] = s->qc16[ix->col[q->ids[i]]] = 0;
    for (size_t i = 0; i < s->nrows; i++)
        s->acc[s->rows[i]] = (row_acc_t){0, 0};
}

/* Adds entries [e, end) of a posting list into the per-row partial sums, for the l->cnt
 * features that share it (each row holds the same value xv in all of them). The walks are
 * bound by their instructions, not by memory, and unrolled they took 7-19 % less time at 107k
 * training messages. A list whose entries all have one value (most do, for counts: 43 % of
 * the entries walked at 107k) adds the same terms to each row, with no value to read or
 * multiply (about 5 % of a search's cycles); the terms are the products the loop would take,
 * so the sums are the same. */
static void add_posting(knn_searcher_t *s, const knn_index_t *ix, const qlist_t *l, uint64_t e,
                        uint64_t end)
{
    row_acc_t *acc = s->acc;
    const uint32_t *row = ix->row;
    const float *val = ix->val;
    float qf = (float)l->qsum, cnt = (float)l->cnt, same = ix->same[l->j];
    if (same != 0) {
        float dot = qf * same, x2 = cnt * (same * same);
#pragma GCC unroll 4
        for (; e < end; e++) {
            row_acc_t *a = &acc[row[e]];
            a->dot += dot;
            a->x2 += x2;
        }
        return;
    }
#pragma GCC unroll 4
    for (; e < end; e++) {
        float xv = val[e];
        row_acc_t *a = &acc[row[e]];
        a->dot += qf * xv;
        a->x2 += cnt * (xv * xv);
    }
}

/* The query's part of the distance only, for when P will hold all of its rare features (the
 * bound then needs no |x_P|^2): fewer instructions per entry. */
static void add_posting_dot(knn_searcher_t *s, const knn_index_t *ix, const qlist_t *l, uint64_t e,
                            uint64_t end)
{
    row_acc_t *acc = s->acc;
    const uint32_t *row = ix->row;
    const float *val = ix->val;
    float qf = (float)l->qsum, same = ix->same[l->j];
    if (same != 0) {
        float dot = qf * same;
#pragma GCC unroll 4
        for (; e < end; e++)
            acc[row[e]].dot += dot;
        return;
    }
#pragma GCC unroll 4
    for (; e < end; e++)
        acc[row[e]].dot += qf * val[e];
}

/* The first entry in [a, b) of a list (in position order) at position pos or past it. */
static uint64_t first_entry_from(const uint32_t *row, uint64_t a, uint64_t b, uint32_t pos)
{
    while (a < b) {
        uint64_t mid = a + (b - a) / 2;
        if (row[mid] < pos)
            a = mid + 1;
        else
            b = mid;
    }
    return a;
}

/*
 * Adds a posting list into the partial sums of the rows in open leaves (s->runs), or all of it
 * before they are known. Finding where a run starts and ends in a list takes two binary
 * searches, which pay only when the closed leaves between two runs hold enough of the list's
 * entries: a list of e entries over n rows is expected to hold g * e / n in a gap of g rows,
 * and gaps expected to hold fewer than KNN_SKIP_ENTRIES are walked through. A row of a closed
 * leaf that is added anyway is cleared with the others of its leaf (bound_every_row).
 */
#define KNN_SKIP_ENTRIES 64
static void add_entries(knn_searcher_t *s, const knn_index_t *ix, const qlist_t *l, uint64_t e,
                        uint64_t end, bool dot_only)
{
    if (dot_only)
        add_posting_dot(s, ix, l, e, end);
    else
        add_posting(s, ix, l, e, end);
}

static void add_list(knn_searcher_t *s, const knn_index_t *ix, const qlist_t *l, bool dot_only)
{
    uint64_t a = ix->off[l->j], b = ix->off[l->j + 1];
    if (!s->runs_set || a == b) {
        add_entries(s, ix, l, a, b, dot_only);
        return;
    }
    /* the rows worth skipping: skip * (b - a) >= KNN_SKIP_ENTRIES * n */
    uint64_t skip = (KNN_SKIP_ENTRIES * (uint64_t)s->t->n + (b - a) - 1) / (b - a);
    const uint32_t *leaf = ix->leaf_start, *dir = NULL;
    if (ix->leaf_dir_at[l->j + 1] > ix->leaf_dir_at[l->j])
        dir = ix->leaf_dir + ix->leaf_dir_at[l->j];
    uint64_t list = a;
    for (size_t i = 0; i < s->nruns && a < b;) {
        uint32_t from = s->runs[2 * i], to = s->runs[2 * i + 1];
        for (i++; i < s->nruns && leaf[s->runs[2 * i]] - leaf[to] < skip; i++)
            to = s->runs[2 * i + 1];
        uint64_t first = dir ? list + dir[from] : first_entry_from(ix->row, a, b, leaf[from]);
        a = dir ? list + dir[to] : first_entry_from(ix->row, first, b, leaf[to]);
        add_entries(s, ix, l, first, a, dot_only);
    }
}

/* The same, listing each row in s->rows the first time it is touched. Every entry then waits
 * on the one before (for the count of rows), which only the short lists of the rarest features
 * can afford. A row whose sums stay zero after a tiny value may be listed again: it is bounded
 * twice and measured once, and the list stops at n rows (the first bound needs only some). */
static void add_posting_listed(knn_searcher_t *s, const knn_index_t *ix, const qlist_t *l)
{
    row_acc_t *acc = s->acc;
    const uint32_t *row = ix->row;
    const float *val = ix->val;
    float qf = (float)l->qsum, cnt = (float)l->cnt;
    size_t nrows = s->nrows, n = s->t->n;
    for (uint64_t e = ix->off[l->j], end = ix->off[l->j + 1]; e < end; e++) {
        float xv = val[e];
        row_acc_t *a = &acc[row[e]];
        s->rows[nrows] = row[e];
        nrows += (size_t)!touched(a) & (size_t)(nrows < n);
        a->dot += qf * xv;
        a->x2 += cnt * (xv * xv);
    }
    s->nrows = nrows;
}

/* Lists the rows touched so far, after posting lists too long to list rows as they go. */
#define KNN_LISTED_FRACTION 16
static void list_touched_rows(knn_searcher_t *s)
{
    size_t nrows = 0;
    for (size_t r = 0; r < s->t->n; r++) {
        s->rows[nrows] = (uint32_t)r;
        nrows += touched(&s->acc[r]);
    }
    s->nrows = nrows;
}

/* Takes rare features into P (posting lists added) until |q_P|^2 exceeds need or none are
 * left; *np counts those taken so far. With list, the rows touched are listed in s->rows as
 * they are (the caller lists them otherwise, when it needs them). */
static void extend_prefix(knn_searcher_t *s, const knn_index_t *ix, size_t nrare, size_t *np,
                          split_t *sp, double qe2, double need, bool list, bool dot_only)
{
    bool scan = false;
    while (*np < nrare && sp->qp2 <= need) {
        const qlist_t *l = &s->qlists[(*np)++];
        /* a long list would cost more listed than a pass over all rows afterwards */
        bool short_list = ix->off[l->j + 1] - ix->off[l->j] <= s->t->n / KNN_LISTED_FRACTION;
        if (list && short_list)
            add_posting_listed(s, ix, l);
        else
            add_list(s, ix, l, dot_only);
        scan |= list && !short_list;
        sp->qp2 += l->qsq;
    }
    if (scan)
        list_touched_rows(s);
    sp->np = *np;
    double qm2 = *np < nrare ? qe2 - sp->qp2 : 0;
    sp->qm = sqrt(qm2 > 0 ? qm2 : 0);
}

/* How many candidates ahead tighten_all fetches common parts */
#define KNN_PREFETCH_AHEAD 6

/*
 * Many candidates: far queries, whose cheap bounds are all weak. Tightening them one at a
 * time through the heap would cost a heap step each; instead every bound is tightened in one
 * pass and those that cannot beat the current k-th distance are dropped. Returns how many
 * remain.
 */
static size_t tighten_all(knn_searcher_t *s, const knn_index_t *ix, const query_t *q,
                          const split_t *sp, size_t m)
{
    double t = tau(s), t2 = t * t;
    size_t kept = 0;
    for (size_t i = 0; i < m; i++) {
        knn_cand_t c = s->cand[i];
        /* the block is megabytes at 100k training messages: without this, each part's read
         * waited on memory (tightening 118-146k cycles a search at 107k, 72-104k with it) */
        if (i + KNN_PREFETCH_AHEAD < m)
            prefetch_common(ix, s->cand[i + KNN_PREFETCH_AHEAD].pos);
        c.lb2 = bound_full(s, ix, sp, c.pos, c.lb2);
        c.full = 1;
        if (c.lb2 <= t2 + slack(ix, q, c.pos, t2))
            s->cand[kept++] = c;
    }
    return kept;
}

/* Bounds each listed row (or every row when all is set) cheaply and keeps those that may beat
 * the current k-th distance (every row while it is infinite) as candidates; returns how many.
 * A pass over every row also clears its partial sums, which the rest of the search no longer
 * needs. */
static size_t bound_rows(knn_searcher_t *s, const knn_index_t *ix, const query_t *q,
                         const split_t *sp, bool all)
{
    size_t n = all ? s->t->n : s->nrows, m = 0;
    double t = tau(s), t2 = t * t;
    for (size_t i = 0; i < n; i++) {
        uint32_t pos = all ? (uint32_t)i : s->rows[i];
        row_acc_t a = s->acc[pos];
        if (all)
            s->acc[pos] = (row_acc_t){0, 0};
        if (s->seen[ix->row_at[pos]] == s->gen)
            continue;
        double lb = bound_cheap(ix, sp, pos, a);
        if (isfinite(t) && lb > t2 + slack(ix, q, pos, t2))
            continue;
        s->cand[m++] = (knn_cand_t){lb, pos, 0};
    }
    return m;
}

/* Keeps the row at position pos as a candidate with bound lb unless it was measured already. */
static inline size_t keep_row(knn_searcher_t *s, const knn_index_t *ix, size_t m, uint32_t pos,
                              double lb)
{
    if (s->seen[ix->row_at[pos]] != s->gen)
        s->cand[m++] = (knn_cand_t){lb, pos, 0};
    return m;
}

/*
 * bound_rows over every row with a finite k-th distance, branch-free: four rows a step in AVX2
 * where the processor has it, else two in SSE2, the rest one at a time. Each computes the same
 * bounds in the same order as bound_cheap, so which one ran never changes an answer (tests run
 * both). A pass over all the rows is the search's largest cost at 100k training messages (a
 * query's lists touch about half of them, and few of those stay candidates), and branch-free it
 * costs about what listing the touched rows alone did; four rows a step take it from about
 * 280k to 160k cycles a search there.
 */
typedef struct {
    double qp2, qm, qcn, terms, base, limit; /* the bound's and slack()'s terms of the query */
    bool whole;
} pass_t;

static pass_t pass_terms(const knn_searcher_t *s, const query_t *q, const split_t *sp)
{
    double t = tau(s);
    return (pass_t){sp->qp2,
                    sp->qm,
                    sp->qcn,
                    (double)(sp->np + 2) * 0x1p-23,
                    1.0 + q->norm2,
                    t * t,
                    sp->np == sp->nrare};
}

/* Keeps the rows of a step (from position r) whose bits are set in keep, with their bounds. */
static size_t keep_rows(knn_searcher_t *s, const knn_index_t *ix, size_t m, size_t r, int keep,
                        const double *lbs)
{
    for (int b = 0; keep; b++, keep >>= 1)
        if (keep & 1)
            m = keep_row(s, ix, m, (uint32_t)(r + (size_t)b), lbs[b]);
    return m;
}

#ifdef __SSE2__
/* Rows from position r to end two at a time; returns the first row left, and adds the
 * candidates to *m. */
static size_t bound_pass_sse2(knn_searcher_t *s, const knn_index_t *ix, const pass_t *p, size_t r,
                              size_t end, size_t *m)
{
    __m128d qp2 = _mm_set1_pd(p->qp2), qm = _mm_set1_pd(p->qm), qcn = _mm_set1_pd(p->qcn);
    __m128d two = _mm_set1_pd(2), zero = _mm_setzero_pd(), eps = _mm_set1_pd(1e-9);
    __m128d terms = _mm_set1_pd(p->terms), base = _mm_set1_pd(p->base);
    __m128d limit = _mm_set1_pd(p->limit);
    for (; r + 2 <= end; r += 2) {
        __m128 a = _mm_loadu_ps((const float *)(const void *)&s->acc[r]);
        _mm_storeu_ps((float *)(void *)&s->acc[r], _mm_setzero_ps());
        __m128d acc = _mm_cvtps_pd(_mm_shuffle_ps(a, a, _MM_SHUFFLE(2, 0, 2, 0)));
        __m128d acc2 = _mm_cvtps_pd(_mm_shuffle_ps(a, a, _MM_SHUFFLE(3, 1, 3, 1)));
        __m128d e2 = _mm_loadu_pd(ix->rest2 + r);
        __m128d gc = _mm_sub_pd(qcn, _mm_loadu_pd(ix->cn + r)), lb;
        __m128d part = _mm_sub_pd(qp2, _mm_mul_pd(two, acc));
        if (p->whole) {
            __m128d rounding = _mm_mul_pd(terms, _mm_add_pd(qp2, e2));
            lb = _mm_sub_pd(_mm_add_pd(part, e2), rounding);
        } else {
            __m128d rounding = _mm_mul_pd(terms, _mm_add_pd(qp2, _mm_mul_pd(two, acc2)));
            __m128d gm = _mm_sub_pd(qm, _mm_sqrt_pd(_mm_max_pd(_mm_sub_pd(e2, acc2), zero)));
            lb = _mm_add_pd(_mm_sub_pd(_mm_add_pd(part, acc2), rounding), _mm_mul_pd(gm, gm));
        }
        lb = _mm_add_pd(lb, _mm_mul_pd(gc, gc));
        /* slack(): 1e-9 * (1 + |q|^2 + |x|^2 + t2) */
        __m128d n2 = _mm_loadu_pd(ix->norm2 + r);
        __m128d bar = _mm_add_pd(limit, _mm_mul_pd(eps, _mm_add_pd(_mm_add_pd(base, n2), limit)));
        int keep = _mm_movemask_pd(_mm_cmpngt_pd(lb, bar));
        if (keep) {
            double lbs[2];
            _mm_storeu_pd(lbs, lb);
            *m = keep_rows(s, ix, *m, r, keep, lbs);
        }
    }
    return r;
}
#endif

#ifdef KNN_AVX2
/* The same four rows at a time. */
__attribute__((target("avx2"))) static size_t bound_pass_avx2(knn_searcher_t *s,
                                                              const knn_index_t *ix,
                                                              const pass_t *p, size_t r, size_t end,
                                                              size_t *m)
{
    __m256d qp2 = _mm256_set1_pd(p->qp2), qm = _mm256_set1_pd(p->qm);
    __m256d qcn = _mm256_set1_pd(p->qcn), two = _mm256_set1_pd(2), zero = _mm256_setzero_pd();
    __m256d eps = _mm256_set1_pd(1e-9), terms = _mm256_set1_pd(p->terms);
    __m256d base = _mm256_set1_pd(p->base), limit = _mm256_set1_pd(p->limit);
    for (; r + 4 <= end; r += 4) {
        /* four rows' sums: dot x2 dot x2 | dot x2 dot x2 */
        __m256 a = _mm256_loadu_ps((const float *)(const void *)&s->acc[r]);
        _mm256_storeu_ps((float *)(void *)&s->acc[r], _mm256_setzero_ps());
        __m128 lo = _mm256_castps256_ps128(a), hi = _mm256_extractf128_ps(a, 1);
        __m256d acc = _mm256_cvtps_pd(_mm_shuffle_ps(lo, hi, _MM_SHUFFLE(2, 0, 2, 0)));
        __m256d acc2 = _mm256_cvtps_pd(_mm_shuffle_ps(lo, hi, _MM_SHUFFLE(3, 1, 3, 1)));
        __m256d e2 = _mm256_loadu_pd(ix->rest2 + r);
        __m256d gc = _mm256_sub_pd(qcn, _mm256_loadu_pd(ix->cn + r)), lb;
        __m256d part = _mm256_sub_pd(qp2, _mm256_mul_pd(two, acc));
        if (p->whole) {
            __m256d rounding = _mm256_mul_pd(terms, _mm256_add_pd(qp2, e2));
            lb = _mm256_sub_pd(_mm256_add_pd(part, e2), rounding);
        } else {
            __m256d rounding = _mm256_mul_pd(terms, _mm256_add_pd(qp2, _mm256_mul_pd(two, acc2)));
            __m256d gm =
                _mm256_sub_pd(qm, _mm256_sqrt_pd(_mm256_max_pd(_mm256_sub_pd(e2, acc2), zero)));
            lb = _mm256_add_pd(_mm256_sub_pd(_mm256_add_pd(part, acc2), rounding),
                               _mm256_mul_pd(gm, gm));
        }
        lb = _mm256_add_pd(lb, _mm256_mul_pd(gc, gc));
        __m256d n2 = _mm256_loadu_pd(ix->norm2 + r);
        __m256d bar =
            _mm256_add_pd(limit, _mm256_mul_pd(eps, _mm256_add_pd(_mm256_add_pd(base, n2), limit)));
        int keep = _mm256_movemask_pd(_mm256_cmp_pd(lb, bar, _CMP_NGT_UQ));
        if (keep) {
            double lbs[4];
            _mm256_storeu_pd(lbs, lb);
            *m = keep_rows(s, ix, *m, r, keep, lbs);
        }
    }
    return r;
}
#endif

/* The rows at positions [r, end) into the candidates after the m there are; returns how many
 * there are then. */
static size_t bound_run(knn_searcher_t *s, const knn_index_t *ix, const query_t *q,
                        const split_t *sp, const pass_t *p, size_t r, size_t end, size_t m)
{
    size_t start = r;
#ifdef KNN_AVX2
    if (s->avx2)
        r = bound_pass_avx2(s, ix, p, r, end, &m);
#endif
#ifdef __SSE2__
    if (r == start) /* no AVX2, or fewer than four rows */
        r = bound_pass_sse2(s, ix, p, r, end, &m);
#endif
    (void)start;
    for (; r < end; r++) {
        row_acc_t a = s->acc[r];
        s->acc[r] = (row_acc_t){0, 0};
        double lb = bound_cheap(ix, sp, (uint32_t)r, a);
        if (!(lb > p->limit + slack(ix, q, (uint32_t)r, p->limit)))
            m = keep_row(s, ix, m, (uint32_t)r, lb);
    }
    return m;
}

/* Bounds the rows of the open leaves and clears the partial sums of all rows: a closed leaf's
 * rows may have some from the lists walked whole. */
static size_t bound_every_row(knn_searcher_t *s, const knn_index_t *ix, const query_t *q,
                              const split_t *sp)
{
    size_t n = s->t->n, m = 0, done = 0;
    pass_t p = pass_terms(s, q, sp);
    for (size_t i = 0; i < s->nruns; i++) {
        size_t from = ix->leaf_start[s->runs[2 * i]], to = ix->leaf_start[s->runs[2 * i + 1]];
        memset(s->acc + done, 0, (from - done) * sizeof *s->acc);
        m = bound_run(s, ix, q, sp, &p, from, to, m);
        done = to;
    }
    memset(s->acc + done, 0, (n - done) * sizeof *s->acc);
    return m;
}

/* The heap's next top is one of the two children of its top: ask for what each will need, its
 * common part or its row. At 107k training messages the first rows' tightening went from
 * 56-75k to 35-40k cycles a search, and the rows' measuring about a tenth faster. */
static void prefetch_next(const knn_searcher_t *s, const knn_index_t *ix, size_t m)
{
    for (size_t c = 1; c <= 2 && c < m; c++) {
        if (!s->cand[c].full) {
            prefetch_common(ix, s->cand[c].pos);
            continue;
        }
        uint64_t at = s->t->rowptr[ix->row_at[s->cand[c].pos]];
        for (int b = 0; b < 4; b++) { /* the rest follows in the processor's own prefetch */
            __builtin_prefetch(s->t->ids + at + 16 * b);
            __builtin_prefetch(s->t->vals + at + 16 * b);
        }
    }
}

/*
 * Bounds each listed row (or every row when all is set) cheaply and keeps those that may beat
 * the current k-th distance in a heap; then, best first, tightens a bound with the dense
 * block or measures the row once its bound is tight, until the best bound left passes the
 * k-th distance (or limit rows were measured). With fewer than k found so far every row is
 * kept, and the first measured set the bar. A pass over every row also clears its partial
 * sums, which the rest of the search no longer needs.
 */
static void measure_by_bound(knn_searcher_t *s, const knn_index_t *ix, const query_t *q,
                             const split_t *sp, bool all, size_t limit)
{
    size_t m =
        all && isfinite(tau(s)) ? bound_every_row(s, ix, q, sp) : bound_rows(s, ix, q, sp, all);
    /* without a k-th distance yet (the first rows, which measure only a few) nothing could be
     * dropped: bounds are tightened lazily, best first */
    if (m > KNN_BATCH_BOUNDS && isfinite(tau(s)))
        m = tighten_all(s, ix, q, sp, m);
    for (size_t i = m / 2; i-- > 0;)
        cand_sift_down(s->cand, m, i);
    size_t measured = 0;
    while (m > 0 && measured < limit) {
        knn_cand_t *top = &s->cand[0];
        double tc = tau(s);
        if (isfinite(tc) && top->lb2 > tc * tc + slack(ix, q, top->pos, tc * tc))
            break;
        prefetch_next(s, ix, m);
        if (!top->full) {
            top->lb2 = bound_full(s, ix, sp, top->pos, top->lb2);
            top->full = 1;
        } else {
            visit(s, q, ix->row_at[top->pos]);
            measured++;
            *top = s->cand[--m];
        }
        cand_sift_down(s->cand, m, 0);
    }
}

/* A lower bound on the squared distance from a query at coordinates x to any row of leaf l:
 * the gap between x and the leaf's box (see knn.h, KNN_LEAF_ROWS). */
static double leaf_bound(const knn_index_t *ix, const double *x, size_t l)
{
    const double *box = ix->leaf_box + l * 2 * LEAF_COORDS;
    double lb = 0;
    for (int c = 0; c < LEAF_COORDS; c++) {
        double below = box[2 * c] - x[c], above = x[c] - box[2 * c + 1];
        double gap = below > above ? below : above;
        lb += gap > 0 ? gap * gap : 0;
    }
    return lb;
}

/* Lists the leaves that may hold a row nearer than t, as runs of leaf numbers (s->runs);
 * every leaf while t is infinite. The slack is a hundred times the rows' (slack()): the
 * coordinates are sums of products with the directions, rounded. */
static void open_leaves(knn_searcher_t *s, const knn_index_t *ix, const query_t *q,
                        const split_t *sp, double t)
{
    double t2 = t * t, x[LEAF_COORDS];
    size_t open = 0;
    memcpy(x, sp->qproj, sizeof sp->qproj);
    x[KNN_PROJ_DIMS] = sp->qres;
    x[KNN_PROJ_DIMS + 1] = sp->qrn;
    s->nruns = 0;
    s->runs_set = true;
    for (size_t l = 0; l < ix->nleaf; l++) {
        if (isfinite(t) &&
            leaf_bound(ix, x, l) > t2 + 1e-7 * (1.0 + q->norm2 + ix->leaf_norm2[l] + t2))
            continue;
        open += ix->leaf_start[l + 1] - ix->leaf_start[l];
        if (s->nruns && s->runs[2 * s->nruns - 1] == l) {
            s->runs[2 * s->nruns - 1] = (uint32_t)(l + 1);
            continue;
        }
        s->runs[2 * s->nruns] = (uint32_t)l;
        s->runs[2 * s->nruns + 1] = (uint32_t)(l + 1);
        s->nruns++;
    }
    s->closed = s->t->n - open;
}

/*
 * The exact search through the index: a few of the query's rarest features find rows that
 * share them; measuring the most promising of those sets a first bound tau. Rows holding
 * none of the rare features P whose squared values sum past tau^2 are farther than tau, so
 * P grows past that point (by KNN_WALK_MARGIN, for tighter bounds), and only rows on its
 * posting lists can stay candidates and be measured. When the query's rare features cannot
 * sum far past tau^2, all of them join P and the cheap bound is exact but for the dense block
 * (a pass over the rows, not a brute-force search).
 */
static void search_index(knn_searcher_t *s, const knn_index_t *ix, const query_t *q)
{
    split_t sp;
    size_t nrare = split_query(s, ix, q, &sp), np = 0;
    double qe2 = q->norm2 - sp.qc2;
    s->nrows = 0;
    s->runs_set = false;
    extend_prefix(s, ix, nrare, &np, &sp, qe2, KNN_BOOTSTRAP_MASS, true, false);
    measure_by_bound(s, ix, q, &sp, false, (size_t)s->k + KNN_BOOTSTRAP_EXTRA);
    double t = tau(s), need = t * t + 1e-9 * (1.0 + q->norm2 + t * t);
    /* from here on only rows of leaves that may hold one nearer than tau are walked and
     * bounded */
    open_leaves(s, ix, q, &sp, t);
    /* When all of the rare features join P (they cannot pass tau^2, or not by much: see
     * KNN_WHOLE_MARGIN), only q_P . x_P is needed from the lists */
    bool whole = !isfinite(t) || qe2 <= KNN_WHOLE_MARGIN * need;
    extend_prefix(s, ix, nrare, &np, &sp, qe2, whole ? INFINITY : KNN_WALK_MARGIN * need, false,
                  whole);
    /* Then every row of the open leaves is bounded, in a branch-free pass (bound_every_row):
     * at 100k training messages P's lists touch about half of the rows, and listing those
     * cost more than the pass. A row on none of them has a bound of at least |q_P|^2, past
     * tau^2 unless P holds every rare feature, so it drops out there. */
    measure_by_bound(s, ix, q, &sp, true, SIZE_MAX); /* clears every row's sums */
    s->nrows = 0;
    clear_query(s, ix, q);
}

/* --- seeds --- */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* The band keys of a set of feature ids. */
static void band_keys(const uint32_t *ids, size_t n, uint64_t keys[KNN_BANDS])
{
    uint64_t mins[KNN_BANDS * KNN_BAND_ROWS];
    for (int h = 0; h < KNN_BANDS * KNN_BAND_ROWS; h++)
        mins[h] = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        uint64_t base = mix64(ids[i] + 1);
        for (int h = 0; h < KNN_BANDS * KNN_BAND_ROWS; h++) {
            uint64_t v = mix64(base ^ (0x9e3779b97f4a7c15ULL * (uint64_t)(h + 1)));
            if (v < mins[h])
                mins[h] = v;
        }
    }
    for (int b = 0; b < KNN_BANDS; b++) {
        uint64_t k = 0;
        for (int r = 0; r < KNN_BAND_ROWS; r++)
            k = mix64(k ^ mins[b * KNN_BAND_ROWS + r]);
        keys[b] = k;
    }
}

static int by_key(const void *a, const void *b)
{
    const knn_seed_t *x = a, *y = b;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return x->row < y->row ? -1 : x->row > y->row;
}

int knn_build_seeds(const trainset_t *t, knn_seed_t *seeds)
{
    size_t n = t->n;
    for (size_t r = 0; r < n; r++) {
        uint64_t keys[KNN_BANDS];
        band_keys(t->ids + t->rowptr[r], (size_t)(t->rowptr[r + 1] - t->rowptr[r]), keys);
        for (int b = 0; b < KNN_BANDS; b++)
            seeds[(size_t)b * n + r] = (knn_seed_t){keys[b], (uint32_t)r, 0};
    }
    for (int b = 0; b < KNN_BANDS; b++)
        qsort(seeds + (size_t)b * n, n, sizeof *seeds, by_key);
    return 0;
}

/* Measures the rows that share a band key with the query. */
static void visit_seeds(knn_searcher_t *s, const knn_seed_t *seeds, const query_t *q)
{
    size_t n = s->t->n;
    if (!seeds || q->n == 0 || n == 0)
        return;
    uint64_t keys[KNN_BANDS];
    band_keys(q->ids, q->n, keys);
    for (int b = 0; b < KNN_BANDS; b++) {
        const knn_seed_t *band = seeds + (size_t)b * n;
        size_t lo = 0, hi = n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (band[mid].key < keys[b])
                lo = mid + 1;
            else
                hi = mid;
        }
        for (size_t i = lo, taken = 0;
             i < n && band[i].key == keys[b] && taken < KNN_SEEDS_PER_BAND; i++, taken++) {
            visit(s, q, band[i].row);
            if (s->hn == s->k && s->hd[0] == 0.0)
                return; /* an exact match fills the list: the seeds cannot improve on it */
        }
    }
}

/* Scratch for a query through the index; false when memory ran out. */
static bool index_scratch(knn_searcher_t *s, const knn_index_t *ix, const query_t *q)
{
    if (!ix || ix->n != s->t->n || grow_query_scratch(s, q->n) != 0)
        return false;
    if (ix->nleaf > s->runs_cap) {
        uint32_t *r = realloc(s->runs, 2 * ix->nleaf * sizeof *r);
        if (!r)
            return false;
        s->runs = r;
        s->runs_cap = ix->nleaf;
    }
    if (ix->stride + 16 > s->qc_cap) {
        float *c = calloc(ix->stride + 16, sizeof *c);
        int16_t *c16 = calloc(ix->stride + 16, sizeof *c16);
        if (!c || !c16) {
            free(c);
            free(c16);
            return false;
        }
        free(s->qc);
        free(s->qc16);
        s->qc = c;
        s->qc16 = c16;
        s->qc_cap = ix->stride + 16;
    }
    if (ix->ndense > s->memo_cap) {
        double *m = malloc(ix->ndense * sizeof *m);
        uint32_t *g = calloc(ix->ndense, sizeof *g);
        if (!m || !g) {
            free(m);
            free(g);
            return false;
        }
        free(s->memo);
        free(s->memo_gen);
        s->memo = m;
        s->memo_gen = g;
        s->memo_cap = ix->ndense;
    }
    return true;
}

/* The training row equal to the query (on the features training knows), or -1. */
static uint64_t query_hash(const query_t *q)
{
    uint64_t h = 0;
    for (size_t i = 0; i < q->n; i++)
        h += entry_hash(q->ids[i], (float)q->vals[i]);
    return h;
}

static int64_t equal_row(const knn_searcher_t *s, const knn_index_t *ix, const query_t *q,
                         uint64_t h)
{
    for (size_t at = h & (ix->hash_cap - 1); ix->by_hash[at]; at = (at + 1) & (ix->hash_cap - 1)) {
        uint32_t r = ix->by_hash[at] - 1;
        if (ix->row_hash[r] != h || s->t->rowptr[r + 1] - s->t->rowptr[r] != q->n)
            continue;
        uint64_t i = s->t->rowptr[r];
        while (i < s->t->rowptr[r + 1] && (double)s->t->vals[i] == s->dense[s->t->ids[i]])
            i++;
        if (i == s->t->rowptr[r + 1])
            return r;
    }
    return -1;
}

/* Loads the stored answer for a training row into the heap. */
static void recall_row(knn_searcher_t *s, const knn_parts_t *parts, uint32_t row)
{
    size_t at = (size_t)row * (size_t)s->k;
    s->hn = 0;
    while (s->hn < s->k && parts->row_dist[at + (size_t)s->hn] >= 0) {
        s->hd[s->hn] = parts->row_dist[at + (size_t)s->hn];
        s->hp[s->hn] = parts->row_point[at + (size_t)s->hn];
        s->hn++;
    }
}

/* Stores the heap of a finished search as the answer for a training row. */
static void store_row(const knn_searcher_t *s, uint32_t row, double *dist, uint32_t *point)
{
    size_t at = (size_t)row * (size_t)s->k;
    for (int i = 0; i < s->k; i++) {
        dist[at + (size_t)i] = i < s->hn ? s->hd[i] : -1;
        point[at + (size_t)i] = i < s->hn ? s->hp[i] : 0;
    }
}

/* The cache slot holding the answer for the query (scattered into dense), or NULL. */
static cache_slot_t *cached(knn_searcher_t *s, const query_t *q, uint64_t h)
{
    if (!s->cache)
        return NULL;
    cache_slot_t *c = &s->cache[h % KNN_CACHE_SLOTS];
    if (!c->cap || c->hash != h || c->n != q->n)
        return NULL;
    for (uint32_t i = 0; i < c->n; i++)
        if (s->dense[c->ids[i]] != c->vals[i])
            return NULL;
    return c;
}

static void recall_cached(knn_searcher_t *s, const cache_slot_t *c)
{
    size_t at = (size_t)(c - s->cache) * (size_t)s->k;
    s->hn = c->hn;
    memcpy(s->hd, s->cache_d + at, (size_t)c->hn * sizeof *s->hd);
    memcpy(s->hp, s->cache_p + at, (size_t)c->hn * sizeof *s->hp);
}

/* Keeps the answer of a finished search, replacing the slot's last one; a query too large
 * to be usual traffic, or memory running out, only goes uncached. */
static void cache_answer(knn_searcher_t *s, const query_t *q, uint64_t h, double spread)
{
    if (q->n > KNN_CACHE_MAX_FEATURES)
        return;
    if (!s->cache) {
        s->cache = calloc(KNN_CACHE_SLOTS, sizeof *s->cache);
        s->cache_d = malloc(KNN_CACHE_SLOTS * (size_t)s->k * sizeof *s->cache_d);
        s->cache_p = malloc(KNN_CACHE_SLOTS * (size_t)s->k * sizeof *s->cache_p);
        if (!s->cache || !s->cache_d || !s->cache_p) {
            free(s->cache);
            free(s->cache_d);
            free(s->cache_p);
            s->cache = NULL;
            s->cache_d = NULL;
            s->cache_p = NULL;
            return;
        }
    }
    cache_slot_t *c = &s->cache[h % KNN_CACHE_SLOTS];
    size_t room = q->n ? q->n : 1; /* a query of no known features (garbage) is cached too */
    if (c->cap < room) {
        uint32_t *ids = realloc(c->ids, room * sizeof *ids);
        if (ids)
            c->ids = ids;
        double *vals = ids ? realloc(c->vals, room * sizeof *vals) : NULL;
        if (vals)
            c->vals = vals;
        c->cap = vals ? (uint32_t)room : 0;
        if (!vals)
            return;
    }
    c->hash = h;
    c->spread = spread;
    c->n = (uint32_t)q->n;
    if (q->n) {
        memcpy(c->ids, q->ids, q->n * sizeof *c->ids);
        memcpy(c->vals, q->vals, q->n * sizeof *c->vals);
    }
    size_t at = (size_t)(c - s->cache) * (size_t)s->k;
    c->hn = s->hn;
    memcpy(s->cache_d + at, s->hd, (size_t)s->hn * sizeof *s->hd);
    memcpy(s->cache_p + at, s->hp, (size_t)s->hn * sizeof *s->hp);
}

/* The local score's second term from the neighbours in the heap. */
static double heap_spread(const knn_searcher_t *s)
{
    double pairs = 0;
    for (int i = 0; i < s->hn; i++)
        for (int j = i + 1; j < s->hn; j++)
            if (s->hp[i] != s->hp[j])
                pairs += 2.0 * row_distance(s->t, s->hp[i], s->hp[j]);
    return pairs;
}

/* Fills the heap with the query's neighbours; returns their spread (from a stored or cached
 * answer, or measured and then cached). */
static double search_parts(knn_searcher_t *s, const knn_parts_t *parts, const query_t *q)
{
    if (s->t->n && index_scratch(s, parts->ix, q)) {
        uint64_t h = query_hash(q);
        int64_t row = parts->row_dist ? equal_row(s, parts->ix, q, h) : -1;
        const cache_slot_t *c;
        if (row >= 0) {
            recall_row(s, parts, (uint32_t)row);
            return parts->row_spread[row];
        }
        if ((c = cached(s, q, h))) {
            recall_cached(s, c);
            return c->spread;
        }
        search_index(s, parts->ix, q);
        double spread = heap_spread(s);
        cache_answer(s, q, h, spread);
        return spread;
    }
    visit_seeds(s, parts->seeds, q);
    /* k neighbours at distance 0 already: nothing can be closer, the tree has nothing to add */
    bool done = s->hn == s->k && s->hd[0] == 0.0;
    if (s->t->n && !done)
        search_node(s, parts->nodes, 0, q);
    return heap_spread(s);
}

void knn_search(knn_searcher_t *s, const knn_parts_t *parts, const query_t *q, knn_result_t *r)
{
    new_search(s);
    scatter(s, q, 1);
    double spread = search_parts(s, parts, q);
    scatter(s, q, -1);
    collect(s, q, r);
    r->spread = spread;
}

typedef struct {
    const trainset_t *t;
    const knn_parts_t *parts; /* without row answers: those are being built */
    int k, threads, index;
    double *dist, *spread;
    uint32_t *point;
    int rc;
} row_lists_job_t;

/* Answers every threads-th row from index on: each row's answer depends on the row alone. */
static void *build_row_lists_part(void *arg)
{
    row_lists_job_t *job = arg;
    const trainset_t *t = job->t;
    knn_searcher_t *s = knn_searcher_new(t, job->k);
    double *vals = NULL;
    size_t cap = 0;
    job->rc = s ? 0 : -1;
    for (size_t r = (size_t)job->index; s && r < t->n; r += (size_t)job->threads) {
        size_t n = (size_t)(t->rowptr[r + 1] - t->rowptr[r]);
        if (n > cap) {
            double *v = realloc(vals, n * sizeof *v);
            if (!v) {
                job->rc = -1;
                break;
            }
            vals = v;
            cap = n;
        }
        for (size_t i = 0; i < n; i++)
            vals[i] = t->vals[t->rowptr[r] + i];
        query_t q = {t->ids + t->rowptr[r], vals, n, t->norm2[r], 0};
        new_search(s);
        scatter(s, &q, 1);
        job->spread[r] = search_parts(s, job->parts, &q);
        scatter(s, &q, -1);
        store_row(s, (uint32_t)r, job->dist, job->point);
    }
    free(vals);
    knn_searcher_destroy(&s);
    return NULL;
}

int knn_build_row_lists(const trainset_t *t, int k, const knn_parts_t *parts, int threads,
                        double *dist, uint32_t *point, double *spread)
{
    knn_parts_t search = *parts;
    search.row_dist = NULL;
    search.row_point = NULL;
    search.row_spread = NULL;
    if (threads < 1)
        threads = 1;
    if (threads > KNN_MAX_THREADS)
        threads = KNN_MAX_THREADS;
    row_lists_job_t jobs[KNN_MAX_THREADS];
    pthread_t tids[KNN_MAX_THREADS];
    bool started[KNN_MAX_THREADS] = {false};
    for (int i = 0; i < threads; i++) {
        jobs[i] = (row_lists_job_t){t, &search, k, threads, i, dist, spread, point, 0};
        /* the first part runs here; a thread that cannot start leaves its part to this one */
        started[i] = i > 0 && pthread_create(&tids[i], NULL, build_row_lists_part, &jobs[i]) == 0;
    }
    build_row_lists_part(&jobs[0]);
    int rc = jobs[0].rc;
    for (int i = 1; i < threads; i++) {
        if (started[i])
            pthread_join(tids[i], NULL);
        else
            build_row_lists_part(&jobs[i]);
        if (jobs[i].rc != 0)
            rc = -1;
    }
    return rc;
}

void knn_search_brute(knn_searcher_t *s, const query_t *q, knn_result_t *r)
{
    new_search(s);
    scatter(s, q, 1);
    for (size_t i = 0; i < s->t->n; i++)
        visit(s, q, (uint32_t)i);
    scatter(s, q, -1);
    double spread = heap_spread(s);
    collect(s, q, r);
    r->spread = spread;
}

double knn_local_score(const trainset_t *t, const knn_result_t *r)
{
    if (r->k == 0)
        return 0;
    (void)t; /* the spread came with the neighbours */
    double first = 0;
    for (int i = 0; i < r->k; i++)
        first += r->dist[i];
    double k = r->k;
    return first / k - r->spread / (k * k);
}
