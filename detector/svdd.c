#include "svdd.h"

#include <stdlib.h>
#include <string.h>

void svdd_opts_default(svdd_opts_t *o)
{
    o->nu = 0.05;
    o->max_iter = 500;
    o->tol = 1e-6;
}

typedef struct {
    double g;
    size_t i;
} ranked_t;

static int by_gradient_desc(const void *a, const void *b)
{
    const ranked_t *x = a, *y = b;
    if (x->g != y->g)
        return x->g < y->g ? 1 : -1;
    return x->i < y->i ? -1 : x->i > y->i;
}

static void add_row(const trainset_t *t, size_t row, double w, double *dense)
{
    for (uint64_t k = t->rowptr[row]; k < t->rowptr[row + 1]; k++)
        dense[t->ids[k]] += w * (double)t->vals[k];
}

/* The vertex of the capped simplex that maximises g.s: largest gradients first, each up to
 * its cap, until the weights sum to one. */
static void linear_oracle(const trainset_t *t, const double *g, const double *cap, ranked_t *rank,
                          double *s)
{
    for (size_t i = 0; i < t->n; i++)
        rank[i] = (ranked_t){g[i], i};
    qsort(rank, t->n, sizeof *rank, by_gradient_desc);
    memset(s, 0, t->n * sizeof *s);
    double left = 1.0;
    for (size_t r = 0; r < t->n && left > 0; r++) {
        double w = cap[rank[r].i] < left ? cap[rank[r].i] : left;
        s[rank[r].i] = w;
        left -= w;
    }
}

static double dot_dense(const double *a, const double *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d += a[i] * b[i];
    return d;
}

int svdd_fit(const trainset_t *t, const svdd_opts_t *o, double *mu, svdd_result_t *res)
{
    size_t n = t->n, dim = t->dim;
    memset(res, 0, sizeof *res);
    memset(mu, 0, dim * sizeof *mu);
    if (n == 0)
        return 0;
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += t->count[i];
    double *alpha = malloc(n * sizeof *alpha), *cap = malloc(n * sizeof *cap);
    double *g = malloc(n * sizeof *g), *s = malloc(n * sizeof *s);
    double *mu_s = malloc(dim * sizeof *mu_s);
    ranked_t *rank = malloc(n * sizeof *rank);
    int rc = -1;
    if (!alpha || !cap || !g || !s || !mu_s || !rank)
        goto out;
    for (size_t i = 0; i < n; i++) {
        alpha[i] = t->count[i] / total; /* the mean: feasible, and a good start */
        cap[i] = t->count[i] / (o->nu * total);
        if (cap[i] > 1.0)
            cap[i] = 1.0;
        add_row(t, i, alpha[i], mu);
    }
    double mu2 = dot_dense(mu, mu, dim);
    for (res->iterations = 0; res->iterations < o->max_iter; res->iterations++) {
        double f = -mu2;
        for (size_t i = 0; i < n; i++) {
            g[i] = t->norm2[i] - 2.0 * trainset_row_dot_dense(t, i, mu);
            f += alpha[i] * t->norm2[i];
        }
        res->radius2 = f;
        linear_oracle(t, g, cap, rank, s);
        double gap = 0;
        for (size_t i = 0; i < n; i++)
            gap += g[i] * (s[i] - alpha[i]);
        res->gap = gap;
        if (gap <= o->tol * (f > 1e-12 ? f : 1e-12))
            break;
        memset(mu_s, 0, dim * sizeof *mu_s);
        for (size_t i = 0; i < n; i++)
            if (s[i] > 0)
                add_row(t, i, s[i], mu_s);
        /* delta = mu_s - mu; exact line search on the quadratic objective. */
        double dd = 0;
        for (size_t j = 0; j < dim; j++) {
            mu_s[j] -= mu[j];
            dd += mu_s[j] * mu_s[j];
        }
        if (dd <= 0)
            break;
        double gamma = gap / (2.0 * dd);
        if (gamma > 1.0)
            gamma = 1.0;
        for (size_t i = 0; i < n; i++)
            alpha[i] += gamma * (s[i] - alpha[i]);
        for (size_t j = 0; j < dim; j++)
            mu[j] += gamma * mu_s[j];
        mu2 = dot_dense(mu, mu, dim);
    }
    rc = 0;
out:
    free(alpha);
    free(cap);
    free(g);
    free(s);
    free(mu_s);
    free(rank);
    return rc;
}
