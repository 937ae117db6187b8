/*
 * knn: the local model, exact k nearest neighbours over a vantage-point tree.
 *
 * Local score of a message z with nearest training neighbours p_1..p_k:
 *     l(z) = (1/k) sum_i d(z, p_i) - (1/k^2) sum_i sum_j d(p_i, p_j)
 * The first term grows far from the data; the second forgives regions
 * where the training data itself is spread out.
 *
 * Why a vantage-point tree. The vectors are sparse with a few hundred of
 * up to millions of dimensions, so coordinate trees (k-d trees) do not
 * apply, and hashing schemes (LSH) are approximate, but DESIGN.md wants
 * results equal to brute force. A VP-tree needs only the metric: each node
 * holds one training vector and the median distance from it; the triangle
 * inequality prunes a subtree whenever it cannot hold anything closer than
 * the current k-th neighbour. SIP traffic is highly clustered (after value
 * shaping most messages sit very near a training message), so the first
 * leaf reached gives a tight bound and most of the tree is never visited;
 * the cost grows roughly with the logarithm of the training set rather than
 * linearly. The pruning tests carry a small slack against rounding so the
 * answer stays exact. Repeated training vectors are stored once with a
 * count and enter the neighbour list count times, which is what storing
 * every copy would give.
 *
 * The query is scattered once into a dense array over the feature ids, so
 * each distance is one pass over a training row.
 */
#ifndef SIPGUARD_KNN_H
#define SIPGUARD_KNN_H

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

typedef struct knn_searcher knn_searcher_t;

/* A searcher holds the per-query scratch (one per thread). */
knn_searcher_t *knn_searcher_new(const trainset_t *t, int k);
void knn_searcher_destroy(knn_searcher_t **self);

typedef struct {
    int k;           /* neighbours found (< requested only for tiny training sets) */
    double dist[64]; /* ascending */
    uint32_t point[64];
    size_t visited; /* distance computations, for benchmarks */
} knn_result_t;

#define KNN_MAX_K 64

/* Exact k nearest neighbours through the tree, measuring seeded rows first (seeds may be
 * NULL). */
void knn_search(knn_searcher_t *s, const knn_node_t *nodes, const knn_seed_t *seeds,
                const query_t *q, knn_result_t *r);
/* The same by brute force over every row (tests, and a check for users). */
void knn_search_brute(knn_searcher_t *s, const query_t *q, knn_result_t *r);

/* The local score of DESIGN.md from a neighbour list. */
double knn_local_score(const trainset_t *t, const knn_result_t *r);

#endif
