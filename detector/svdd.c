#include "svdd.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

void svdd_opts_default(svdd_opts_t *o)
{
    o->nu = 0.05;
    o->max_iter = 1000;
    o->tol = 1e-4;
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

static double dot_dense(const double *a, const double *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d += a[i] * b[i];
    return d;
}

/* The vertex of the capped simplex that maximises g.s: largest gradients first, each up to
 * its cap, until the weights sum to one. Used for the duality gap. */
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

/*
 * The ascent direction: move weight from points that carry weight and have the smallest
 * gradients to points below their cap with the largest, pairing them while the donor's
 * gradient is below the receiver's, each transfer as large as both bounds allow. Any step
 * gamma in [0, 1] along it keeps 0 <= a <= cap and sum a = 1, and none exists exactly when
 * the KKT conditions hold (one level rho: g_i <= rho where a_i = 0, g_i = rho strictly
 * inside, g_i >= rho at the cap).
 */
static void transfer_direction(const trainset_t *t, const double *g, const double *cap,
                               const double *alpha, ranked_t *donors, ranked_t *receivers,
                               double *d)
{
    size_t nd = 0, nr = 0;
    for (size_t i = 0; i < t->n; i++) {
        if (alpha[i] > 0)
            donors[nd++] = (ranked_t){-g[i], i};
        if (alpha[i] < cap[i])
            receivers[nr++] = (ranked_t){g[i], i};
    }
    qsort(donors, nd, sizeof *donors, by_gradient_desc);       /* ascending g */
    qsort(receivers, nr, sizeof *receivers, by_gradient_desc); /* descending g */
    memset(d, 0, t->n * sizeof *d);
    size_t i = 0, j = 0;
    double give = nd ? alpha[donors[0].i] : 0;
    double take = nr ? cap[receivers[0].i] - alpha[receivers[0].i] : 0;
    while (i < nd && j < nr && g[donors[i].i] < g[receivers[j].i]) {
        double m = give < take ? give : take;
        d[donors[i].i] -= m;
        d[receivers[j].i] += m;
        give -= m;
        take -= m;
        if (give <= 0 && ++i < nd)
            give = alpha[donors[i].i];
        if (take <= 0 && ++j < nr)
            take = cap[receivers[j].i] - alpha[receivers[j].i];
    }
}

typedef struct {
    double *alpha, *cap, *g, *s, *d, *delta;
    ranked_t *rank, *rank2;
} work_t;

static void work_free(work_t *w)
{
    free(w->alpha);
    free(w->cap);
    free(w->g);
    free(w->s);
    free(w->d);
    free(w->delta);
    free(w->rank);
    free(w->rank2);
}

static int work_alloc(work_t *w, size_t n, size_t dim)
{
    w->alpha = malloc(n * sizeof *w->alpha);
    w->cap = malloc(n * sizeof *w->cap);
    w->g = malloc(n * sizeof *w->g);
    w->s = malloc(n * sizeof *w->s);
    w->d = malloc(n * sizeof *w->d);
    w->delta = malloc((dim ? dim : 1) * sizeof *w->delta);
    w->rank = malloc(n * sizeof *w->rank);
    w->rank2 = malloc(n * sizeof *w->rank2);
    return w->alpha && w->cap && w->g && w->s && w->d && w->delta && w->rank && w->rank2 ? 0 : -1;
}

/* For the direction in w->d: its image delta = sum d_i x_i (left in w->delta), the slope
 * g.d (in *slope) and the curvature |delta|^2 (returned). */
static double direction_curvature(const trainset_t *t, work_t *w, size_t dim, double *slope)
{
    *slope = 0;
    memset(w->delta, 0, dim * sizeof *w->delta);
    for (size_t i = 0; i < t->n; i++) {
        if (w->d[i] == 0)
            continue;
        *slope += w->g[i] * w->d[i];
        add_row(t, i, w->d[i], w->delta);
    }
    return dot_dense(w->delta, w->delta, dim);
}

int svdd_fit(const trainset_t *t, const svdd_opts_t *o, double *mu, svdd_result_t *res)
{
    size_t n = t->n, dim = t->dim;
    memset(res, 0, sizeof *res);
    memset(mu, 0, dim * sizeof *mu);
    if (n == 0)
        return 0;
    work_t w = {0};
    if (work_alloc(&w, n, dim) != 0) {
        work_free(&w);
        return -1;
    }
    double total = 0;
    for (size_t i = 0; i < n; i++)
        total += t->count[i];
    for (size_t i = 0; i < n; i++) {
        w.alpha[i] = t->count[i] / total; /* the mean: feasible, and a good start */
        w.cap[i] = t->count[i] / (o->nu * total);
        if (w.cap[i] > 1.0)
            w.cap[i] = 1.0;
        add_row(t, i, w.alpha[i], mu);
    }
    double mu2 = dot_dense(mu, mu, dim);
    for (res->iterations = 0; res->iterations < o->max_iter; res->iterations++) {
        double f = -mu2;
        for (size_t i = 0; i < n; i++) {
            w.g[i] = t->norm2[i] - 2.0 * trainset_row_dot_dense(t, i, mu);
            f += w.alpha[i] * t->norm2[i];
        }
        res->radius2 = f;
        linear_oracle(t, w.g, w.cap, w.rank, w.s);
        double gap = 0;
        for (size_t i = 0; i < n; i++)
            gap += w.g[i] * (w.s[i] - w.alpha[i]);
        res->gap = gap;
        if (gap <= o->tol * (f > 1e-12 ? f : 1e-12))
            break;
        /* Take the Frank-Wolfe step or the block transfer, whichever promises more. */
        double gamma = 0, best = 0;
        bool use_transfer = false;
        for (int kind = 0; kind < 2; kind++) {
            if (kind == 0)
                for (size_t i = 0; i < n; i++)
                    w.d[i] = w.s[i] - w.alpha[i];
            else
                transfer_direction(t, w.g, w.cap, w.alpha, w.rank, w.rank2, w.d);
            double slope, dd = direction_curvature(t, &w, dim, &slope);
            if (dd <= 0 || slope <= 0)
                continue;
            double gm = slope / (2.0 * dd) < 1.0 ? slope / (2.0 * dd) : 1.0;
            double gain = gm * slope - gm * gm * dd;
            if (gain > best) {
                best = gain;
                gamma = gm;
                use_transfer = kind == 1;
            }
        }
        if (best <= 0)
            break;
        if (!use_transfer) /* recompute the Frank-Wolfe direction that won */
            for (size_t i = 0; i < n; i++)
                w.d[i] = w.s[i] - w.alpha[i];
        else
            transfer_direction(t, w.g, w.cap, w.alpha, w.rank, w.rank2, w.d);
        double slope_unused;
        direction_curvature(t, &w, dim, &slope_unused);
        for (size_t i = 0; i < n; i++) {
            w.alpha[i] += gamma * w.d[i];
            if (w.alpha[i] < 0) /* rounding at a bound */
                w.alpha[i] = 0;
        }
        for (size_t j = 0; j < dim; j++)
            mu[j] += gamma * w.delta[j];
        mu2 = dot_dense(mu, mu, dim);
    }
    work_free(&w);
    return 0;
}
