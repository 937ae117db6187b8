/*
 * trainset: the training vectors as the models see them.
 *
 * Distinct training vectors in compressed-row form over dense feature ids
 * (the model's dictionary maps 64-bit feature keys to ids 0..dim-1), each
 * with its squared norm and how many training messages had exactly that
 * vector. Value shaping makes many messages identical, so storing each
 * vector once with a count saves memory and k-NN work while giving the same
 * scores as storing every copy.
 */
#ifndef SIPGUARD_TRAINSET_H
#define SIPGUARD_TRAINSET_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    size_t n;               /* distinct vectors */
    size_t dim;             /* feature ids are < dim */
    const uint64_t *rowptr; /* n + 1 offsets into ids/vals */
    const uint32_t *ids;    /* sorted within a row */
    const float *vals;
    const double *norm2;
    const uint32_t *count; /* multiplicity of each vector */
} trainset_t;

/* A query vector in the same id space: ids of features the dictionary knows, with their
 * values, and norm2 over those. offset2 is the squared norm of the features no training
 * vector has: they add the same amount to every squared distance, so the search runs on
 * the known part (tighter bounds, same neighbours) and adds offset2 back at the end. */
typedef struct {
    const uint32_t *ids;
    const double *vals;
    size_t n;
    double norm2;
    double offset2;
} query_t;

/* Dot product of two rows of a training set (merge over sorted ids). */
static inline double trainset_row_dot(const trainset_t *t, size_t a, size_t b)
{
    uint64_t i = t->rowptr[a], ie = t->rowptr[a + 1], j = t->rowptr[b], je = t->rowptr[b + 1];
    double d = 0;
    while (i < ie && j < je) {
        if (t->ids[i] < t->ids[j])
            i++;
        else if (t->ids[i] > t->ids[j])
            j++;
        else
            d += (double)t->vals[i++] * (double)t->vals[j++];
    }
    return d;
}

/* Dot product of a row with a query scattered into a dense array of dim entries. */
static inline double trainset_row_dot_dense(const trainset_t *t, size_t row, const double *dense)
{
    double d = 0;
    for (uint64_t i = t->rowptr[row]; i < t->rowptr[row + 1]; i++)
        d += (double)t->vals[i] * dense[t->ids[i]];
    return d;
}

#endif
