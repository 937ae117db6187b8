/* Tests of detector/knn and svdd: exact k-NN against brute force, and the SVDD centre. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "knn.h"
#include "svdd.h"

typedef struct {
    trainset_t t;
    uint64_t *rowptr;
    uint32_t *ids, *count;
    float *vals;
    double *norm2;
} owned_t;

static uint64_t rs = 42;
static double urand(void)
{
    rs = rs * 6364136223846793005ULL + 1442695040888963407ULL;
    return (double)(rs >> 11) / 9007199254740992.0;
}

#define COMMON 10 /* features every row holds, the last ids: the index's dense block */

/* n rows over dim features, about nnz per row, clustered around a few centres. With blocks,
 * features come in blocks of four (ids 4b to 4b + 3) that a row holds all together with one
 * value, as the n-grams of a string only some messages hold: their posting lists are equal.
 * Values are small counts times scale: with scale 1 the index holds its common block as
 * bytes, with a fraction as floats. With templates, a row's common values follow its centre, as
 * the fixed parts of one kind of SIP message do, and the index's leaves tell the centres
 * apart. */
static owned_t make_set(size_t n, size_t dim, size_t nnz, int dup_every, bool blocks, float scale,
                        bool templates)
{
    owned_t o = {0};
    size_t per_row = (blocks ? 4 : 1) * nnz + COMMON + 3;
    o.rowptr = calloc(n + 1, sizeof *o.rowptr);
    o.ids = calloc(n * per_row, sizeof *o.ids);
    o.vals = calloc(n * per_row, sizeof *o.vals);
    o.norm2 = calloc(n, sizeof *o.norm2);
    o.count = calloc(n, sizeof *o.count);
    size_t at = 0;
    for (size_t r = 0; r < n; r++) {
        size_t base = (r % 7) * (dim / 8);
        uint32_t id = (uint32_t)(base + (size_t)(urand() * 3));
        uint32_t last_block = UINT32_MAX;
        for (size_t j = 0; j < nnz && id < dim; j++) {
            float v = (float)(1 + floor(urand() * 4)) * scale;
            if (!blocks) {
                o.ids[at] = id;
                o.vals[at] = v;
                o.norm2[r] += (double)v * v;
                at++;
            } else if (id / 4 != last_block && id / 4 * 4 + 3 < dim - COMMON) {
                last_block = id / 4;
                for (uint32_t b = 0; b < 4; b++) {
                    o.ids[at] = last_block * 4 + b;
                    o.vals[at] = v;
                    o.norm2[r] += (double)v * v;
                    at++;
                }
            }
            id += 1 + (uint32_t)(urand() * 3);
            if (id >= dim - COMMON)
                break;
        }
        /* templated rows also hold three of fifty features that rows of every centre hold */
        for (uint32_t j = 0; templates && j < 3; j++) {
            o.ids[at] = (uint32_t)(7 * (dim / 8) + 16 * j + (size_t)(urand() * 16));
            o.vals[at] = scale;
            o.norm2[r] += (double)scale * scale;
            at++;
        }
        for (uint32_t c = (uint32_t)(dim - COMMON); c < dim; c++) {
            o.ids[at] = c;
            o.vals[at] = (float)(templates ? 1 + 4 * ((c * (r % 7 + 2)) % 7) + floor(urand() * 2)
                                           : 1 + floor(urand() * 3)) *
                         scale;
            o.norm2[r] += (double)o.vals[at] * o.vals[at];
            at++;
        }
        o.rowptr[r + 1] = at;
        o.count[r] = dup_every && r % (size_t)dup_every == 0 ? 3 : 1;
    }
    o.t = (trainset_t){n, dim, o.rowptr, o.ids, o.vals, o.norm2, o.count};
    return o;
}

static void free_set(owned_t *o)
{
    free(o->rowptr);
    free(o->ids);
    free(o->vals);
    free(o->norm2);
    free(o->count);
}

static void random_query(size_t dim, size_t nnz, uint32_t *ids, double *vals, query_t *q)
{
    size_t n = 0;
    double n2 = 0;
    uint32_t id = (uint32_t)(urand() * (double)(dim / 2));
    for (size_t j = 0; j < nnz && id < dim; j++) {
        ids[n] = id;
        vals[n] = 1 + floor(urand() * 4);
        n2 += vals[n] * vals[n];
        n++;
        id += 1 + (uint32_t)(urand() * 5);
    }
    *q = (query_t){ids, vals, n, n2, 3.0 /* features outside the dictionary */};
}

/* A training row, exactly (if exact) or with a few values changed, a few features dropped and
 * a few added: the repeats and near-duplicates that make up most of real traffic. */
static void near_query(const trainset_t *t, bool exact, uint32_t *ids, double *vals, query_t *q)
{
    size_t r = (size_t)(urand() * (double)t->n), n = 0;
    double n2 = 0;
    for (uint64_t i = t->rowptr[r]; i < t->rowptr[r + 1] && n < 120; i++) {
        double u = exact ? 0.5 : urand();
        if (u < 0.05)
            continue;
        ids[n] = t->ids[i];
        vals[n] = u < 0.15 ? 1 + floor(urand() * 4) : t->vals[i];
        if (u > 0.97 && ids[n] + 1 < t->dim &&
            (i + 1 == t->rowptr[r + 1] || t->ids[i + 1] > ids[n] + 1)) {
            n2 += vals[n] * vals[n];
            n++;
            ids[n] = ids[n - 1] + 1;
            vals[n] = 1;
        }
        n2 += vals[n] * vals[n];
        n++;
    }
    *q = (query_t){ids, vals, n, n2, urand() < 0.5 ? 0.0 : 2.0};
}

/* A value past 255 at the query's last feature (a near query's last features are the common
 * ones): the query's common part then fits no block of bytes. */
static void make_big_last_value(query_t *q, double *vals)
{
    if (q->n == 0)
        return;
    q->norm2 -= vals[q->n - 1] * vals[q->n - 1];
    vals[q->n - 1] = 300;
    q->norm2 += vals[q->n - 1] * vals[q->n - 1];
}

static void check_against_brute(size_t n, int k, int dup_every, bool blocks, float scale,
                                bool templates)
{
    size_t dim = 4000, nnz = 40;
    owned_t o = make_set(n, dim, nnz, dup_every, blocks, scale, templates);
    knn_node_t *nodes = calloc(n, sizeof *nodes);
    assert_int_equal(knn_build(&o.t, 7, nodes), 0);
    knn_seed_t *seeds = calloc(KNN_BANDS * n, sizeof *seeds);
    assert_int_equal(knn_build_seeds(&o.t, seeds), 0);
    knn_index_t *ix = knn_index_new(&o.t);
    /* and one of many small leaves: many runs of open leaves, gaps walked through or skipped */
    knn_index_t *small = knn_index_new_sized(&o.t, 8);
    assert_non_null(ix);
    assert_non_null(small);
    assert_true(knn_index_common_bytes(ix) == (scale == 1));
    /* with blocks, three of every four features walk another one's posting list (fewer only
     * if a block were common) */
    if (blocks) {
        bool *used = calloc(dim, sizeof *used);
        size_t nused = 0;
        for (uint64_t i = 0; i < o.t.rowptr[n]; i++)
            if (o.t.ids[i] < dim - COMMON && !used[o.t.ids[i]])
                used[o.t.ids[i]] = true, nused++;
        free(used);
        assert_true(nused > 100 && 2 * knn_index_shared_lists(ix) >= nused);
    }
    knn_searcher_t *s = knn_searcher_new(&o.t, k);
    double *row_dist = calloc(n * (size_t)k, sizeof *row_dist);
    uint32_t *row_point = calloc(n * (size_t)k, sizeof *row_point);
    double *row_spread = calloc(n, sizeof *row_spread);
    knn_parts_t building = {nodes, NULL, ix, NULL, NULL, NULL};
    assert_int_equal(knn_build_row_lists(&o.t, k, &building, 3, row_dist, row_point, row_spread),
                     0);
    /* the same answers from one thread: each row's answer depends on the row alone */
    double *one_dist = calloc(n * (size_t)k, sizeof *one_dist);
    uint32_t *one_point = calloc(n * (size_t)k, sizeof *one_point);
    double *one_spread = calloc(n, sizeof *one_spread);
    assert_int_equal(knn_build_row_lists(&o.t, k, &building, 1, one_dist, one_point, one_spread),
                     0);
    assert_memory_equal(one_dist, row_dist, n * (size_t)k * sizeof *one_dist);
    assert_memory_equal(one_point, row_point, n * (size_t)k * sizeof *one_point);
    assert_memory_equal(one_spread, row_spread, n * sizeof *one_spread);
    free(one_dist);
    free(one_point);
    free(one_spread);
    uint32_t ids[128];
    double vals[128];
    size_t visited[4] = {0}, near_visited = 0, near_closed = 0, near_searched = 0;
    for (int i = 0; i < 300; i++) {
        query_t q;
        bool near = i % 3 != 0;
        if (near)
            near_query(&o.t, i % 3 == 2, ids, vals, &q);
        else if (i % 50 == 0)
            q = (query_t){NULL, NULL, 0, 0, 4.0}; /* nothing training knew: garbage */
        else
            random_query(dim, nnz, ids, vals, &q);
        if (i % 10 == 4)
            make_big_last_value(&q, vals);
        /* the bound pass in AVX2 (where the processor has it) and in SSE2, in turn */
        knn_searcher_use_avx2(s, i % 2 == 0);
        /* brute force on the full query: the unknown features' norm inside norm2 */
        knn_result_t b;
        query_t full = q;
        full.norm2 += full.offset2;
        full.offset2 = 0;
        knn_search_brute(s, &full, &b);
        /* the tree without and with seeds, and the index with its leaves and with small ones */
        for (int way = 0; way < 4; way++) {
            knn_result_t a;
            knn_parts_t parts = {nodes,
                                 way ? seeds : NULL,
                                 way == 2   ? ix
                                 : way == 3 ? small
                                            : NULL,
                                 way >= 2 ? row_dist : NULL,
                                 way >= 2 ? row_point : NULL,
                                 way >= 2 ? row_spread : NULL};
            knn_search(s, &parts, &q, &a);
            assert_true(knn_searcher_sums_clear(s));
            visited[way] += a.visited;
            if (way == 2 && near)
                near_visited += a.visited;
            if (way == 2 && near && a.visited) {
                near_closed += a.closed;
                near_searched++;
            }
            assert_int_equal(a.k, b.k);
            for (int j = 0; j < a.k; j++)
                assert_true(fabs(a.dist[j] - b.dist[j]) <= 1e-9 * (1 + b.dist[j]));
            double la = knn_local_score(&o.t, &a), lb = knn_local_score(&o.t, &b);
            assert_true(fabs(la - lb) <= 1e-9 * (1 + fabs(lb)));
            if (way >= 2) {
                /* the same query again: answered from the searcher's cache, identically */
                knn_result_t again;
                knn_search(s, &parts, &q, &again);
                assert_int_equal(again.k, a.k);
                assert_int_equal(again.visited, 0);
                assert_true(knn_local_score(&o.t, &again) == knn_local_score(&o.t, &a));
                for (int j = 0; j < a.k; j++) {
                    assert_true(again.dist[j] == a.dist[j]);
                    assert_int_equal(again.point[j], a.point[j]);
                }
            }
        }
    }
    /* never more work than brute force plus the seeds (random far-away queries may need all
     * of it); the sublinear growth on SIP traffic is a benchmark figure (bench/run.sh) */
    for (int way = 0; way < 4; way++)
        assert_true(visited[way] <= 300 * (n + KNN_BANDS * KNN_SEEDS_PER_BAND));
    /* near-duplicates through the index: the bounds leave few rows to measure (block rows
     * are longer than near_query copies, so theirs are not near, and near_query's changed
     * values are counts, far from scaled rows) */
    if (n >= 500 && !blocks && scale == 1)
        assert_true(near_visited < 200 * (size_t)(k + 20));
    /* near queries of templated rows: leaves of other centres are passed over (about half of
     * the rows: each leaf holds parts of two centres or so) */
    if (templates)
        assert_true(near_searched > 50 && near_closed > near_searched * n / 3);
    knn_searcher_destroy(&s);
    knn_index_destroy(&ix);
    knn_index_destroy(&small);
    free(row_dist);
    free(row_point);
    free(row_spread);
    free(nodes);
    free(seeds);
    free_set(&o);
}

static void test_knn_equals_brute_force_k1(void **state)
{
    (void)state;
    check_against_brute(500, 1, 0, false, 1, false);
}

static void test_knn_equals_brute_force_k5_with_duplicates(void **state)
{
    (void)state;
    check_against_brute(2000, 5, 4, false, 1, false);
}

/* Features whose posting lists are equal are walked once, with the query's values summed:
 * queries holding whole blocks, parts of them, and other values than the rows' */
static void test_knn_equals_brute_force_with_shared_posting_lists(void **state)
{
    (void)state;
    check_against_brute(1000, 5, 3, true, 1, false);
    check_against_brute(400, 1, 0, true, 1, false);
}

/* Values that are not counts (l1 or l2 normalised, say): the common block in floats */
static void test_knn_equals_brute_force_with_fractional_values(void **state)
{
    (void)state;
    check_against_brute(1000, 5, 3, false, 0.37f, false);
    check_against_brute(600, 1, 0, true, 0.37f, false);
}

/* Training rows of seven kinds with their own common parts, in several leaves: a search passes
 * over the leaves of the other kinds and still finds the exact neighbours */
static void test_knn_equals_brute_force_passing_over_leaves(void **state)
{
    (void)state;
    check_against_brute(4000, 5, 3, false, 1, true);
    check_against_brute(2500, 1, 0, false, 0.37f, true);
}

static void test_knn_tiny_training_set(void **state)
{
    (void)state;
    check_against_brute(3, 5, 0, false, 1, false);
}

static void test_local_score_matches_definition(void **state)
{
    (void)state;
    /* two rows: e1 and 2*e1; query at 0 with k = 2 */
    uint64_t rowptr[] = {0, 1, 2};
    uint32_t ids[] = {0, 0}, count[] = {1, 1};
    float vals[] = {1, 2};
    double norm2[] = {1, 4};
    trainset_t t = {2, 1, rowptr, ids, vals, norm2, count};
    knn_node_t nodes[2];
    knn_build(&t, 1, nodes);
    knn_searcher_t *s = knn_searcher_new(&t, 2);
    query_t q = {NULL, NULL, 0, 0, 0};
    knn_result_t r;
    knn_search(s, &(knn_parts_t){nodes, NULL, NULL, NULL, NULL, NULL}, &q, &r);
    /* (1/2)(1 + 2) - (1/4)(2 * |1 - 2|) = 1.5 - 0.5 */
    assert_true(fabs(knn_local_score(&t, &r) - 1.0) < 1e-12);
    knn_searcher_destroy(&s);
}

static double svdd_centre_1d(const float *x, int n, double nu)
{
    uint64_t rowptr[16];
    uint32_t ids[16], count[16];
    double norm2[16];
    for (int i = 0; i < n; i++) {
        rowptr[i] = (uint64_t)i;
        ids[i] = 0;
        norm2[i] = (double)x[i] * x[i];
        count[i] = 1;
    }
    rowptr[n] = (uint64_t)n;
    trainset_t t = {(size_t)n, 1, rowptr, ids, x, norm2, count};
    svdd_opts_t o;
    svdd_opts_default(&o);
    o.nu = nu;
    o.max_iter = 5000;
    o.tol = 1e-12;
    double mu = 0;
    svdd_result_t res;
    assert_int_equal(svdd_fit(&t, &o, &mu, &res), 0);
    return mu;
}

static void test_svdd_hard_ball_centre_is_midpoint_not_mean(void **state)
{
    (void)state;
    const float x[] = {0, 0, 0, 10};
    /* small nu: the minimum enclosing ball, centred between the extremes */
    assert_true(fabs(svdd_centre_1d(x, 4, 0.01) - 5.0) < 1e-3);
    /* nu = 1 caps every weight at 1/n: the centre is the mean */
    assert_true(fabs(svdd_centre_1d(x, 4, 1.0) - 2.5) < 1e-9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_knn_equals_brute_force_k1),
        cmocka_unit_test(test_knn_equals_brute_force_k5_with_duplicates),
        cmocka_unit_test(test_knn_equals_brute_force_with_shared_posting_lists),
        cmocka_unit_test(test_knn_equals_brute_force_with_fractional_values),
        cmocka_unit_test(test_knn_equals_brute_force_passing_over_leaves),
        cmocka_unit_test(test_knn_tiny_training_set),
        cmocka_unit_test(test_local_score_matches_definition),
        cmocka_unit_test(test_svdd_hard_ball_centre_is_midpoint_not_mean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
