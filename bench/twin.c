/*
 * twin: two builds of the embedding and scoring code in one process, timed in alternation
 * over the same messages, for comparing a change with its base on a machine whose speed
 * moves by up to 2x within minutes (see docs/evaluation.md). Runs of two binaries one after
 * the other catch different minutes; here every round times both builds back to back, in
 * alternating order, and the figure is the median of the per-round ratios.
 *
 * The base build's libraries are linked in as one object whose symbols carry the prefix
 * old_ (bench/ab.sh makes it); the working tree's are linked as they are. Both see the same
 * headers, so the base must agree with the working tree on the types used below.
 *   usage: twin CAPTURE MODEL [ROUNDS]   (TWIN_ONLY=name,name picks figures)
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <x86intrin.h>

#include "embed.h"
#include "input.h"
#include "model.h"
#include "sparse.h"

embed_t *old_embed_new(const embed_opts_t *opts);
void old_embed_set_sorted(embed_t *e, bool sorted);
void old_embed_destroy(embed_t **e);
int old_embed_message(embed_t *e, const uint8_t *data, size_t len, sparse_t *out);
model_t *old_model_load(const char *path, char *err, size_t len);
void old_model_destroy(model_t **m);
model_scorer_t *old_model_scorer_new(const model_t *m, bool explain);
void old_model_scorer_destroy(model_scorer_t **s);
int old_model_score_message(model_scorer_t *s, const uint8_t *data, size_t len, bool want_local,
                            model_score_t *out);

#define MAX_MSGS 200000

enum { UNSORTED, SORTED, RAW, TOKENS, GLOBAL, FIGURES };
static const char *figure_name[FIGURES] = {"embed_unsorted", "embed_sorted", "embed_raw",
                                           "embed_tokens", "score_global"};

typedef struct {
    uint8_t **data;
    size_t *len, n, bytes;
} messages_t;

typedef struct {
    embed_t *embed[2]; /* [0] the base build's, [1] the working tree's */
    model_scorer_t *scorer[2];
    sparse_t *v;
    int figure;
} contestants_t;

/* TSC ticks a second, measured over 100 ms of the monotonic clock: for the msg/s column only,
 * the ratios do not depend on it. */
static double tsc_hz(void)
{
    struct timespec a, b, pause = {0, 100000000};
    clock_gettime(CLOCK_MONOTONIC, &a);
    uint64_t t0 = __rdtsc();
    nanosleep(&pause, NULL);
    uint64_t t1 = __rdtsc();
    clock_gettime(CLOCK_MONOTONIC, &b);
    return (double)(t1 - t0) / ((double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9);
}

static int read_messages(const char *path, messages_t *ms)
{
    char err[256];
    input_t *in = input_open(path, NULL, err, sizeof err);
    if (!in) {
        fprintf(stderr, "twin: %s\n", err);
        return -1;
    }
    ms->data = malloc(MAX_MSGS * sizeof *ms->data);
    ms->len = malloc(MAX_MSGS * sizeof *ms->len);
    msg_t m;
    while (ms->data && ms->len && ms->n < MAX_MSGS && input_next(in, &m) == 1) {
        if (!(ms->data[ms->n] = malloc(m.len + 1)))
            break;
        memcpy(ms->data[ms->n], m.data, m.len);
        ms->len[ms->n++] = m.len;
        ms->bytes += m.len;
    }
    input_close(&in);
    return ms->n ? 0 : -1;
}

static void set_up(contestants_t *c, int figure, model_t *const model[2])
{
    embed_opts_t o;
    embed_opts_default(&o);
    if (figure == TOKENS)
        o.kind = EMBED_TOKEN;
    if (figure == RAW) {
        o.shape = EMBED_SHAPE_NONE;
        o.header_norm = false;
    }
    c->figure = figure;
    c->embed[0] = old_embed_new(&o);
    c->embed[1] = embed_new(&o);
    old_embed_set_sorted(c->embed[0], figure == SORTED);
    embed_set_sorted(c->embed[1], figure == SORTED);
    c->scorer[0] = old_model_scorer_new(model[0], false);
    c->scorer[1] = model_scorer_new(model[1], false);
    c->v = sparse_new();
}

static void tear_down(contestants_t *c)
{
    old_embed_destroy(&c->embed[0]);
    embed_destroy(&c->embed[1]);
    old_model_scorer_destroy(&c->scorer[0]);
    model_scorer_destroy(&c->scorer[1]);
    sparse_destroy(&c->v);
}

/* One message through build b; returns a number that depends on the whole result. */
static double one(contestants_t *c, int b, const uint8_t *data, size_t len)
{
    if (c->figure == GLOBAL) {
        model_score_t sc;
        if (b)
            model_score_message(c->scorer[1], data, len, false, &sc);
        else
            old_model_score_message(c->scorer[0], data, len, false, &sc);
        return sc.global;
    }
    if (b)
        embed_message(c->embed[1], data, len, c->v);
    else
        old_embed_message(c->embed[0], data, len, c->v);
    return c->v->norm2 + (double)c->v->n + (c->v->n ? (double)c->v->keys[c->v->n / 2] : 0);
}

/* Every message through build b: its time in TSC cycles, and the sum of one()'s results. */
static double pass(contestants_t *c, int b, const messages_t *ms, double *sum)
{
    *sum = 0;
    uint64_t t0 = __rdtsc();
    for (size_t i = 0; i < ms->n; i++)
        *sum += one(c, b, ms->data[i], ms->len[i]);
    return (double)(__rdtsc() - t0);
}

static int by_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void compare(contestants_t *c, const messages_t *ms, int rounds, double hz)
{
    double total[2] = {0, 0}, best[2] = {INFINITY, INFINITY}, sum[2];
    double *ratio = malloc((size_t)rounds * sizeof *ratio);
    bool same = true;
    /* two rounds first, untimed: caches, and the sorted embedders' learning */
    for (int r = -2; r < rounds && ratio; r++) {
        double t[2];
        for (int k = 0; k < 2; k++) {
            int b = (r & 1) ? 1 - k : k;
            t[b] = pass(c, b, ms, &sum[b]);
        }
        /* global scores may differ in the last bits between builds; the rest must not */
        same &=
            c->figure == GLOBAL ? fabs(sum[0] - sum[1]) <= 1e-9 * fabs(sum[0]) : sum[0] == sum[1];
        if (r < 0)
            continue;
        for (int b = 0; b < 2; b++) {
            total[b] += t[b];
            best[b] = fmin(best[b], t[b]);
        }
        ratio[r] = t[0] / t[1];
    }
    if (!ratio)
        return;
    qsort(ratio, (size_t)rounds, sizeof *ratio, by_double);
    double n = (double)ms->n;
    printf("%-15s base %6.0f new %6.0f cycles/msg (best %6.0f %6.0f)  speed-up median %.3f "
           "(q25 %.3f q75 %.3f)  new best %.0f msg/s %.1f MB/s  results %s\n",
           figure_name[c->figure], total[0] / rounds / n, total[1] / rounds / n, best[0] / n,
           best[1] / n, ratio[rounds / 2], ratio[rounds / 4], ratio[3 * rounds / 4],
           n / (best[1] / hz), (double)ms->bytes / (best[1] / hz) / 1e6,
           same ? "the same" : "DIFFER");
    free(ratio);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: twin CAPTURE MODEL [ROUNDS]\n");
        return 2;
    }
    int rounds = argc > 3 ? atoi(argv[3]) : 30;
    if (rounds < 4 || rounds > 10000) {
        fprintf(stderr, "twin: ROUNDS must be 4 to 10000\n");
        return 2;
    }
    messages_t ms = {0};
    char err[512];
    if (read_messages(argv[1], &ms) != 0)
        return 1;
    model_t *model[2] = {old_model_load(argv[2], err, sizeof err), NULL};
    if (model[0])
        model[1] = model_load(argv[2], err, sizeof err);
    if (!model[1]) {
        fprintf(stderr, "twin: %s\n", err);
        return 1;
    }
    const char *only = getenv("TWIN_ONLY");
    double hz = tsc_hz();
    for (int f = 0; f < FIGURES; f++) {
        if (only && !strstr(only, figure_name[f]))
            continue;
        contestants_t c;
        set_up(&c, f, model);
        compare(&c, &ms, rounds, hz);
        tear_down(&c);
    }
    old_model_destroy(&model[0]);
    model_destroy(&model[1]);
    for (size_t i = 0; i < ms.n; i++)
        free(ms.data[i]);
    free(ms.data);
    free(ms.len);
    return 0;
}
