/*
 * sparse: sparse vectors as sorted (key, value) arrays, and their maths.
 *
 * The embedding of a SIP message has a few hundred non-zero dimensions out
 * of 2^64, so a vector is two parallel arrays sorted by key plus its cached
 * squared norm. Distances use ||x - z||^2 = |x|^2 + |z|^2 - 2 x.z, so only
 * the dot product walks the arrays.
 */
#ifndef SIPGUARD_SPARSE_H
#define SIPGUARD_SPARSE_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint64_t *keys;
    double *vals;
    size_t n, cap;
    double norm2; /* sum of squared values */
} sparse_t;

sparse_t *sparse_new(void);
void sparse_destroy(sparse_t **self);
/* Makes room for n entries; returns 0, or -1 when out of memory. */
int sparse_reserve(sparse_t *self, size_t n);
/* Recomputes norm2 from the values. */
void sparse_update_norm(sparse_t *self);
/* Dot product of two sorted vectors. */
double sparse_dot(const sparse_t *a, const sparse_t *b);
/* Euclidean distance from cached norms and one dot product; never negative. */
double sparse_distance(const sparse_t *a, const sparse_t *b);
/* Copies src into dst (dst keeps its own storage). Returns 0 or -1. */
int sparse_copy(sparse_t *dst, const sparse_t *src);

/* Distance from two squared norms and a dot product, clamped at zero against rounding. */
double sparse_distance_from(double norm2_a, double norm2_b, double dot);

#endif
