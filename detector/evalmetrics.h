/*
 * evalmetrics: how well scores separate normal from attack messages.
 *
 * AUC by the rank statistic (ties count one half), the true-positive rate
 * at a target false-positive rate (threshold = the (1 - fpr) quantile of
 * the normal scores, flag what lies strictly above it; at FPR 0 that is
 * everything above the highest normal score), and the ROC curve itself.
 */
#ifndef SIPGUARD_EVALMETRICS_H
#define SIPGUARD_EVALMETRICS_H

#include <stddef.h>
#include <stdio.h>

/* AUC of attack scores over normal scores; the arrays are sorted in place. */
double evalmetrics_auc(double *normal, size_t nn, double *attack, size_t na);
/* TPR at a target FPR; both arrays must be sorted ascending. */
double evalmetrics_tpr_at(const double *normal, size_t nn, const double *attack, size_t na,
                          double fpr, double *threshold);
/* Writes "model,threshold,fpr,tpr" rows of the ROC curve (sorted arrays). */
void evalmetrics_roc_csv(FILE *out, const char *model, const double *normal, size_t nn,
                         const double *attack, size_t na);
/* Writes an SVG with the ROC curves of up to four models (sorted arrays). */
void evalmetrics_roc_svg(FILE *out, int models, const char *const *names,
                         const double *const *normal, size_t nn, const double *const *attack,
                         size_t na);

#endif
