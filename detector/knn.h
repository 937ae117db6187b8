/*
 * knn: the local model, exact k nearest neighbours of a message among the
 * training vectors.
 *
 * Local score of a message z with nearest training neighbours p_1..p_k:
 *     l(z) = (1/k) sum_i d(z, p_i) - (1/k^2) sum_i sum_j d(p_i, p_j)
 * The first term grows far from the data; the second forgives regions
 * where the training data itself is spread out.
 *
 * DESIGN.md wants results equal to brute force, so every shortcut here is a
 * proof that what it skips is farther than the current k-th neighbour (with
 * a small slack against rounding). A search takes the first of these that
 * applies:
 *
 * 1. The query equals a training row (on the features training knows).
 *    After value shaping this is most normal traffic, and such a query has
 *    exactly that row's neighbours, which training stored per row.
 * 2. The query was asked recently: each searcher keeps a small cache of
 *    answers, checked against the whole query, never a hash alone.
 * 3. The index. Features most rows hold ("common") sit in a small dense
 *    block; the others ("rare") have posting lists. A row that holds none of
 *    a set P of the query's rare features differs from it by at least
 *    |q_P|, so once P's squared values sum past the k-th distance, only rows
 *    on P's lists can still be nearer. Taking the rarest features first
 *    keeps those lists short. The lists give each such row its partial dot
 *    product on P, which with the dense block and the norms of the rest
 *    bounds its distance from below; rows are measured best bound first
 *    until the bound passes the k-th distance (see search_index in knn.c).
 *    A few of the rarest features and the best rows they find set the first
 *    k-th distance.
 * 4. Without an index (no memory for it), a vantage-point tree searched from
 *    MinHash seeds: the tree needs only the metric and prunes a subtree by
 *    the triangle inequality; the seeds (rows sharing MinHash bands with the
 *    query) give it a tight bound early.
 *
 * Why not the tree alone: its pruning needs the gap between a query's
 * distance to a vantage point and the node's radius to exceed the k-th
 * distance, and on SIP traffic (hundreds of shared header n-grams, neighbours
 * differing in user names and numbers) distances concentrate, so it visited
 * about half of the rows. The index measures a handful and bounds the rest
 * in a few nanoseconds each.
 *
 * Repeated training vectors are stored once with a count and enter the
 * neighbour list count times, which is what storing every copy would give.
 * The query is scattered once into a dense array over the feature ids, so
 * measuring a row is one pass over it.
 */
#ifndef SIPGUARD_KNN_H
#define SIPGUARD_KNN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "trainset.h"

typedef struct {
    uint32_t point;  /* row of the training set */
    int32_t inside;  /* child with d(point, x) <= radius, or -1 */
    int32_t outside; /* child with d(point, x) > radius, or -1 */
    uint32_t pad;
    double radius;
    double norm_lo, norm_hi; /* range of |x| over the subtree: |q| outside it by more than the
                              * current bound rules the whole subtree out */
} knn_node_t;

/* Builds the tree over all rows (nodes: t->n entries; root is node 0). Returns 0 or -1. */
int knn_build(const trainset_t *t, uint64_t seed, knn_node_t *nodes);

/*
 * Seeds: where to look first. The tree prunes well only once it holds a close neighbour,
 * and a query's close neighbours are messages with nearly the same n-grams. MinHash over
 * the set of feature ids finds them: KNN_BANDS bands of KNN_BAND_ROWS minimum hashes each,
 * one sorted (band key, row) array per band. At query time the rows sharing a band key
 * with the query are measured first (at most KNN_SEEDS_PER_BAND per band), so the search
 * starts with a tight bound. Seeds change the speed only: the answer is the same.
 */
#define KNN_BANDS 6
#define KNN_BAND_ROWS 2
#define KNN_SEEDS_PER_BAND 16

typedef struct {
    uint64_t key;
    uint32_t row;
    uint32_t pad;
} knn_seed_t;

/* Fills seeds (KNN_BANDS * t->n entries: band b at [b * n, (b + 1) * n)). Returns 0 or -1. */
int knn_build_seeds(const trainset_t *t, knn_seed_t *seeds);

/*
 * Index: posting lists (the rows holding a feature) for the rare features, and a dense block
 * of the common ones, those held by more than 1/KNN_INDEX_COMMON of the rows. Features with
 * equal lists (rows and values) are walked once for all of them. The block holds
 * each distinct common part once (rows of one template from many users share theirs), and a
 * search measures each once. Built from the rows when a model is loaded, not stored in the
 * file.
 */
#define KNN_INDEX_COMMON 4

/*
 * Leaves: the index holds its rows in leaves of at most KNN_LEAF_ROWS rows of like messages,
 * each with a box that bounds how near any of its rows can be to a query. A row's coordinates
 * are its common part projected on KNN_PROJ_DIMS directions (the leading principal
 * components of the distinct common parts), the length of the rest of its common part, and
 * the length of its rare part; the squared distance between two rows is at least that
 * between their coordinates, and from a query to a leaf's rows at least that from the query's
 * coordinates to the box. Once a search has its first k-th distance tau, it walks and bounds
 * only the rows of leaves whose box is within tau: at 107k training messages over a quarter of
 * the posting entries and two fifths of the rows are in leaves it passes over. The leaves
 * split the rows in halves by the coordinate they spread most along, so neighbouring leaves
 * sit next to each other and the open ones form few runs of positions. Like the rest of the
 * index, they are built when a model is loaded and change the speed only.
 */
#define KNN_PROJ_DIMS 8
#define KNN_LEAF_ROWS 512

/* The first k-th distance: the rows best bounded by the query's rarest features summing to a
 * squared value of KNN_BOOTSTRAP_MASS, at most k + KNN_BOOTSTRAP_EXTRA of them measured.
 * (8 rather than 16 since the eighth round: fewer rows to bound and tighten first, now that
 * the walk goes past tau anyway; paired cycle counts 0.94x a search at 107k training
 * messages, 0.97x at 10.9k; 4, 6 and 12 measured between.) */
#define KNN_BOOTSTRAP_MASS 8
#define KNN_BOOTSTRAP_EXTRA 10
/* How far P grows past the first k-th distance tau. Rows on none of P's lists drop out once
 * |q_P|^2 passes tau^2, but every list walked past that tightens the bounds of the rows on
 * it, and with all the rare features in P a row's bound is exact but for the dense block:
 * such a search measures one or two rows after its first ones, against about 37 otherwise at
 * 107k training messages. So P takes every rare feature when their squared values sum to
 * at most KNN_WHOLE_MARGIN tau^2, else grows to KNN_WALK_MARGIN tau^2. Per search (paired
 * cycle counts, docs/evaluation.md) 0.85x at 10.9k and 107k training messages; the margins'
 * neighbours (1.25-2, 1.1-1.4) measured within a few percent of these. */
#define KNN_WHOLE_MARGIN 1.5
#define KNN_WALK_MARGIN 1.25
/* Past this many candidates their bounds are tightened in one pass rather than lazily. */
#define KNN_BATCH_BOUNDS 256

/* A searcher also keeps the answers of its recent queries that equal no training row: traffic
 * repeats itself (a phone re-registers with the same message), and the answer is a function
 * of the query, so a repeat is answered exactly without searching. */
#define KNN_CACHE_SLOTS 1024
/* Queries with more features are not cached, which bounds a searcher's cache at 12 MB even
 * when every query is a large one (a typical message has about 300 features). */
#define KNN_CACHE_MAX_FEATURES 1024

typedef struct knn_index knn_index_t;
knn_index_t *knn_index_new(const trainset_t *t);
/* The same with leaves of at most leaf_rows rows instead of KNN_LEAF_ROWS (at least 2): tests
 * and fuzzing use small ones to have many leaves on few rows. */
knn_index_t *knn_index_new_sized(const trainset_t *t, size_t leaf_rows);
void knn_index_destroy(knn_index_t **self);
/* Features whose posting list equals a lower one's (rows and values), which a search walks
 * once for all of them: the n-grams of a string only some messages hold. For tests. */
size_t knn_index_shared_lists(const knn_index_t *ix);
/* Whether the index holds its common block as bytes (every common value a count up to 255) */
bool knn_index_common_bytes(const knn_index_t *ix);

typedef struct knn_searcher knn_searcher_t;

/* A searcher holds the per-query scratch (one per thread). */
knn_searcher_t *knn_searcher_new(const trainset_t *t, int k);
void knn_searcher_destroy(knn_searcher_t **self);
/* Whether the search's bound pass may take four rows a step in AVX2, where the processor has
 * it (on by default; else two in SSE2). Returns whether it will. The answers are the same
 * either way; tests turn it off to check the other pass too. */
bool knn_searcher_use_avx2(knn_searcher_t *s, bool on);
/* Whether every row's partial sums are zero, as each search must leave them (for tests: a row
 * left with sums would only weaken or wrongly tighten later bounds, which answers may hide). */
bool knn_searcher_sums_clear(const knn_searcher_t *s);

typedef struct {
    int k;           /* neighbours found (< requested only for tiny training sets) */
    double dist[64]; /* ascending */
    uint32_t point[64];
    size_t visited; /* distance computations, for benchmarks */
    size_t closed;  /* rows in the leaves the search passed over (KNN_LEAF_ROWS), likewise */
    double spread;  /* sum of 2 d(p_i, p_j) over pairs i < j of different rows: the local
                     * score's second term, stored with answers that are stored */
} knn_result_t;

#define KNN_MAX_K 64

/* What a search may use; any part may be NULL except that nodes are needed without ix. */
typedef struct {
    const knn_node_t *nodes;
    const knn_seed_t *seeds;
    const knn_index_t *ix;
    /* The answers for queries equal to a training row: row r's k (distance, row) pairs at
     * [r * k, (r + 1) * k), distance -1 past the end of a short list (see knn_build_row_lists). */
    const double *row_dist;
    const uint32_t *row_point;
    const double *row_spread; /* and each row's spread (knn_result_t) */
} knn_parts_t;

/*
 * Exact k nearest neighbours. With an index: a query equal to a training row takes that row's
 * stored answer, others search the index. Without: seeded rows first, then the tree.
 */
void knn_search(knn_searcher_t *s, const knn_parts_t *parts, const query_t *q, knn_result_t *r);

/*
 * Most normal messages repeat a training vector exactly once values are shaped, and a query
 * equal to row r has exactly row r's neighbours, so training stores every row's answer:
 * dist and point hold t->n * k entries and spread t->n, filled by searching each row
 * (parts->ix needed) on up to threads threads (at most KNN_MAX_THREADS). Returns 0 or -1.
 */
#define KNN_MAX_THREADS 16
int knn_build_row_lists(const trainset_t *t, int k, const knn_parts_t *parts, int threads,
                        double *dist, uint32_t *point, double *spread);

/* The same by brute force over every row (tests, and a check for users). */
void knn_search_brute(knn_searcher_t *s, const query_t *q, knn_result_t *r);

/* The local score of DESIGN.md from a neighbour list. */
double knn_local_score(const trainset_t *t, const knn_result_t *r);

#endif
