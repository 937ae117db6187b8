/*
 * svdd: the global model, the centre of a soft minimum enclosing ball.
 *
 * The support vector data description with a linear kernel looks for the
 * smallest ball around the training vectors that leaves out at most a
 * fraction nu of them, so a few poisoned or odd training messages cannot
 * drag the centre. Its dual is
 *     max_a  sum_i a_i |x_i|^2 - |sum_i a_i x_i|^2
 *     s.t.   sum_i a_i = 1,  0 <= a_i <= 1/(nu n)
 * and the centre is mu = sum_i a_i x_i. We solve it with Frank-Wolfe: the
 * gradient is g_i = |x_i|^2 - 2 x_i.mu (a pass over the data), the linear
 * step fills the capped simplex greedily with the largest g_i (the points
 * farthest from the centre), and the step size is exact because the
 * objective is quadratic. Plain Frank-Wolfe steps can only shrink interior
 * weights geometrically and crawl near the optimum (measured: gap still 0.06
 * after 500 passes on 75,000 messages), so the step taken is a block
 * transfer: weight moves from weighted points with the smallest gradients to
 * points below their cap with the largest (an SMO-like step over many pairs
 * at once), with the same exact line search; each iteration takes whichever of
 * the two steps gains more. The Frank-Wolfe duality gap g.(s - a) bounds the
 * error: |mu - mu*|^2 <= f(a*) - f(a) <= gap, which is what stops it.
 * Repeated vectors carry their count: cap c_i/(nu n) and weight c_i.
 * Using the plain mean instead was measured useless (AUC 0.64-0.86, DESIGN.md).
 */
#ifndef SIPGUARD_SVDD_H
#define SIPGUARD_SVDD_H

#include "trainset.h"

typedef struct {
    double nu;    /* fraction allowed outside, (0, 1] */
    int max_iter; /* default 1000 */
    double tol;   /* stop when gap <= tol * objective (default 1e-4): since the
                   * centre's squared error is at most the gap, the centre is then
                   * within 1% of the radius of the optimum */
} svdd_opts_t;

typedef struct {
    int iterations;
    double gap;     /* final duality gap */
    double radius2; /* objective value: mean squared radius proxy */
} svdd_result_t;

void svdd_opts_default(svdd_opts_t *o);

/* Computes the centre into mu (dim doubles). Returns 0, or -1 when out of memory. */
int svdd_fit(const trainset_t *t, const svdd_opts_t *o, double *mu, svdd_result_t *res);

#endif
