#include "knn.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "sparse.h"

struct knn_searcher {
    const trainset_t *t;
    int k;
    double *dense;
    uint32_t *seen; /* seen[row] == gen: already offered in this search */
    uint32_t gen;
    /* max-heap of the best k so far, ordered by (dist, point) */
    double hd[KNN_MAX_K];
    uint32_t hp[KNN_MAX_K];
    int hn;
    size_t visited;
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

knn_searcher_t *knn_searcher_new(const trainset_t *t, int k)
{
    if (k < 1 || k > KNN_MAX_K)
        return NULL;
    knn_searcher_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->t = t;
    s->k = k;
    s->dense = calloc(t->dim ? t->dim : 1, sizeof *s->dense);
    s->seen = calloc(t->n ? t->n : 1, sizeof *s->seen);
    if (!s->dense || !s->seen) {
        free(s->dense);
        free(s->seen);
        free(s);
        return NULL;
    }
    return s;
}

void knn_searcher_destroy(knn_searcher_t **self)
{
    if (!*self)
        return;
    free((*self)->dense);
    free((*self)->seen);
    free(*self);
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

static double query_distance(knn_searcher_t *s, const query_t *q, uint32_t row)
{
    s->visited++;
    return sparse_distance_from(q->norm2, s->t->norm2[row],
                                trainset_row_dot_dense(s->t, row, s->dense));
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
    if (++s->gen == 0) {
        memset(s->seen, 0, s->t->n * sizeof *s->seen);
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

void knn_search(knn_searcher_t *s, const knn_node_t *nodes, const knn_seed_t *seeds,
                const query_t *q, knn_result_t *r)
{
    new_search(s);
    scatter(s, q, 1);
    visit_seeds(s, seeds, q);
    /* k neighbours at distance 0 already: nothing can be closer, the tree has nothing to add
     * (most normal messages repeat a training vector exactly once values are shaped) */
    bool done = s->hn == s->k && s->hd[0] == 0.0;
    if (s->t->n && !done)
        search_node(s, nodes, 0, q);
    scatter(s, q, -1);
    collect(s, q, r);
}

void knn_search_brute(knn_searcher_t *s, const query_t *q, knn_result_t *r)
{
    new_search(s);
    scatter(s, q, 1);
    for (size_t i = 0; i < s->t->n; i++)
        visit(s, q, (uint32_t)i);
    scatter(s, q, -1);
    collect(s, q, r);
}

double knn_local_score(const trainset_t *t, const knn_result_t *r)
{
    if (r->k == 0)
        return 0;
    double first = 0, pairs = 0;
    for (int i = 0; i < r->k; i++)
        first += r->dist[i];
    for (int i = 0; i < r->k; i++)
        for (int j = i + 1; j < r->k; j++)
            if (r->point[i] != r->point[j])
                pairs += 2.0 * row_distance(t, r->point[i], r->point[j]);
    double k = r->k;
    return first / k - pairs / (k * k);
}
