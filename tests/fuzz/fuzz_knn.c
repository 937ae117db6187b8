/*
 * fuzz_knn: the local model's exact search against brute force. The input describes a small
 * training set and some queries; the index, the seeded tree and the tree alone must each
 * find the neighbours brute force finds (distances within 1e-9), and so the same local
 * score, and leave every row's partial sums cleared. Any difference is a finding (abort).
 *
 * Input: a byte of options (k; the rows' values and the queries' values, each counts, values
 * past 255, or fractions), the number of rows and of features, then each row (an entry count,
 * then feature and value bytes), a byte for the index's leaf size (2 to 17 rows, so that a few
 * rows make many leaves), then queries in the same form as rows with a byte for the part of
 * their norm outside the dictionary. Counts give the index a block of bytes, and a query's
 * count past 255 is then measured against it in double precision.
 * Small sets make features common (held by more than a quarter of the rows: the index's
 * dense block) as readily as rare ones.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "knn.h"

#define MAX_ROWS 48
#define MAX_DIM 40
#define MAX_QUERIES 8

typedef struct {
    const uint8_t *p;
    size_t left;
} reader_t;

static uint8_t next_byte(reader_t *r)
{
    if (!r->left)
        return 0;
    r->left--;
    return *r->p++;
}

enum { VALUES_COUNTS, VALUES_LARGE, VALUES_FRACTIONS };

static double value_of(int kind, uint8_t b)
{
    switch (kind) {
    case VALUES_LARGE:
        return 1 + (double)b * 2; /* up to 511: past a byte */
    case VALUES_FRACTIONS:
        return (1 + (double)(b % 16)) * 0.37;
    default:
        return 1 + (double)(b % 4);
    }
}

/* One sparse vector over dim features into ids/vals (sorted ids); returns its entry count. */
static size_t read_vector(reader_t *r, size_t dim, int kind, uint32_t *ids, double *vals)
{
    double dense[MAX_DIM] = {0};
    size_t entries = next_byte(r) % 16;
    for (size_t i = 0; i < entries; i++) {
        size_t j = next_byte(r) % dim;
        dense[j] = value_of(kind, next_byte(r));
    }
    size_t n = 0;
    for (size_t j = 0; j < dim; j++)
        if (dense[j] != 0) {
            ids[n] = (uint32_t)j;
            vals[n++] = dense[j];
        }
    return n;
}

static bool same_row(const uint64_t *rowptr, const uint32_t *ids, const float *vals, size_t a,
                     size_t b)
{
    size_t na = rowptr[a + 1] - rowptr[a], nb = rowptr[b + 1] - rowptr[b];
    return na == nb && !memcmp(ids + rowptr[a], ids + rowptr[b], na * sizeof *ids) &&
           !memcmp(vals + rowptr[a], vals + rowptr[b], na * sizeof *vals);
}

static void check_same(const knn_result_t *a, const knn_result_t *b, const trainset_t *t)
{
    if (a->k != b->k)
        abort();
    for (int j = 0; j < a->k; j++)
        if (!(fabs(a->dist[j] - b->dist[j]) <= 1e-9 * (1 + b->dist[j])))
            abort();
    double la = knn_local_score(t, a), lb = knn_local_score(t, b);
    if (!(fabs(la - lb) <= 1e-9 * (1 + fabs(lb))))
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    reader_t r = {data, size};
    uint8_t options = next_byte(&r);
    int k = 1 + options % 5, kind = (options >> 3) % 3, qkind = (options >> 5) % 3;
    size_t want = 1 + next_byte(&r) % MAX_ROWS, dim = 1 + next_byte(&r) % MAX_DIM;
    uint64_t rowptr[MAX_ROWS + 1] = {0};
    uint32_t ids[MAX_ROWS * MAX_DIM], qids[MAX_DIM];
    float vals[MAX_ROWS * MAX_DIM];
    double norm2[MAX_ROWS], qvals[MAX_DIM];
    uint32_t count[MAX_ROWS];
    size_t n = 0;
    for (size_t i = 0; i < want && r.left; i++) {
        size_t m = read_vector(&r, dim, kind, qids, qvals);
        norm2[n] = 0;
        for (size_t e = 0; e < m; e++) {
            ids[rowptr[n] + e] = qids[e];
            vals[rowptr[n] + e] = (float)qvals[e];
            norm2[n] += (double)vals[rowptr[n] + e] * vals[rowptr[n] + e];
        }
        rowptr[n + 1] = rowptr[n] + m;
        count[n] = 1;
        size_t p = 0; /* training stores each distinct vector once, with a count */
        while (p < n && !same_row(rowptr, ids, vals, p, n))
            p++;
        if (p < n)
            count[p]++;
        else
            n++;
    }
    if (n == 0)
        return 0;
    trainset_t t = {n, dim, rowptr, ids, vals, norm2, count};
    knn_node_t *nodes = calloc(n, sizeof *nodes);
    knn_seed_t *seeds = calloc(KNN_BANDS * n, sizeof *seeds);
    /* leaves of 2 to 17 rows: many on the few rows a fuzz input holds */
    knn_index_t *ix = knn_index_new_sized(&t, 2 + next_byte(&r) % 16);
    knn_searcher_t *s = knn_searcher_new(&t, k);
    if (!nodes || !seeds || !ix || !s || knn_build(&t, 7, nodes) != 0 ||
        knn_build_seeds(&t, seeds) != 0)
        abort();
    for (int qi = 0; qi < MAX_QUERIES && r.left; qi++) {
        query_t q = {qids, qvals, 0, 0, 0};
        q.n = read_vector(&r, dim, qkind, qids, qvals);
        for (size_t e = 0; e < q.n; e++)
            q.norm2 += qvals[e] * qvals[e];
        q.offset2 = next_byte(&r) % 4;
        query_t full = q; /* brute force on the whole query: the unknown part inside norm2 */
        full.norm2 += full.offset2;
        full.offset2 = 0;
        knn_result_t brute, got;
        knn_searcher_use_avx2(s, qi % 2 == 0); /* both bound passes, in turn */
        knn_search_brute(s, &full, &brute);
        for (int way = 0; way < 3; way++) {
            knn_parts_t parts = {nodes, way ? seeds : NULL, way == 2 ? ix : NULL, NULL, NULL, NULL};
            knn_search(s, &parts, &q, &got);
            check_same(&got, &brute, &t);
            if (!knn_searcher_sums_clear(s))
                abort();
        }
        /* again through the index: the searcher's cache answers, the same */
        knn_parts_t parts = {nodes, seeds, ix, NULL, NULL, NULL};
        knn_search(s, &parts, &q, &got);
        check_same(&got, &brute, &t);
    }
    knn_searcher_destroy(&s);
    knn_index_destroy(&ix);
    free(nodes);
    free(seeds);
    return 0;
}
