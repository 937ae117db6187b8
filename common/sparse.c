#include "sparse.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

sparse_t *sparse_new(void)
{
    return calloc(1, sizeof(sparse_t));
}

void sparse_destroy(sparse_t **self)
{
    if (!*self)
        return;
    free((*self)->keys);
    free((*self)->vals);
    free(*self);
    *self = NULL;
}

int sparse_reserve(sparse_t *s, size_t n)
{
    if (n <= s->cap)
        return 0;
    size_t cap = s->cap ? s->cap : 256;
    while (cap < n)
        cap *= 2;
    uint64_t *k = realloc(s->keys, cap * sizeof *k);
    if (!k)
        return -1;
    s->keys = k;
    double *v = realloc(s->vals, cap * sizeof *v);
    if (!v)
        return -1;
    s->vals = v;
    s->cap = cap;
    return 0;
}

void sparse_update_norm(sparse_t *s)
{
    double n2 = 0;
    for (size_t i = 0; i < s->n; i++)
        n2 += s->vals[i] * s->vals[i];
    s->norm2 = n2;
}

double sparse_dot(const sparse_t *a, const sparse_t *b)
{
    double d = 0;
    size_t i = 0, j = 0;
    while (i < a->n && j < b->n) {
        if (a->keys[i] < b->keys[j]) {
            i++;
        } else if (a->keys[i] > b->keys[j]) {
            j++;
        } else {
            d += a->vals[i++] * b->vals[j++];
        }
    }
    return d;
}

double sparse_distance_from(double norm2_a, double norm2_b, double dot)
{
    double d2 = norm2_a + norm2_b - 2.0 * dot;
    return d2 > 0 ? sqrt(d2) : 0.0;
}

double sparse_distance(const sparse_t *a, const sparse_t *b)
{
    return sparse_distance_from(a->norm2, b->norm2, sparse_dot(a, b));
}

int sparse_copy(sparse_t *dst, const sparse_t *src)
{
    if (sparse_reserve(dst, src->n) != 0)
        return -1;
    memcpy(dst->keys, src->keys, src->n * sizeof *src->keys);
    memcpy(dst->vals, src->vals, src->n * sizeof *src->vals);
    dst->n = src->n;
    dst->norm2 = src->norm2;
    return 0;
}
