/*
 * bench_core: embedding throughput and scoring speed on a capture held in
 * memory. Prints machine-readable "name value unit" lines; the median of
 * five runs is reported for each figure. The embedding figures time the
 * embedding of the capture's messages framed beforehand; scoring times
 * framing, embedding and scoring together, and the libosip2 check has the
 * framing time taken out.
 *   usage: bench_core CAPTURE MODEL
 * BENCH_ONLY=NAME (e.g. score_global) measures only that figure besides framing;
 * BENCH_VERBOSE=1 adds how much work the local searches did.
 * BENCH_RUNS=N takes the median of N runs instead of five, and adds the best run as
 * NAME_best_msgs_per_s: on a shared machine the best of many runs is the steadiest figure
 * for comparing two builds.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "input.h"
#include "model.h"
#include "sipcheck.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

static int by_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc(*len);
    if (fread(b, 1, *len, f) != *len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    return b;
}

enum {
    MODE_FRAME,
    MODE_EMBED4,
    MODE_EMBED4_HASH,
    MODE_EMBED4_RAW, /* the n-gram counting alone: no header normalisation, no shaping */
    MODE_TOKENS,
    MODE_GLOBAL,
    MODE_LOCAL,
    MODE_OSIP,
    MODE_COUNT
};

/* The capture's messages, framed once: the embedding figures time the embedding alone. */
typedef struct {
    uint8_t *data;
    size_t len;
} framed_t;

static framed_t *frame_all(const char *cap, size_t caplen, size_t *n)
{
    char err[256];
    input_t *in = input_open_memory("bench", cap, caplen, NULL, err, sizeof err);
    framed_t *f = NULL;
    size_t cap_n = 0;
    msg_t msg;
    *n = 0;
    while (in && input_next(in, &msg) == 1) {
        if (*n == cap_n) {
            cap_n = cap_n ? 2 * cap_n : 4096;
            framed_t *g = realloc(f, cap_n * sizeof *f);
            if (!g)
                break;
            f = g;
        }
        if (!(f[*n].data = malloc(msg.len ? msg.len : 1)))
            break;
        memcpy(f[*n].data, msg.data, msg.len);
        f[(*n)++].len = msg.len;
    }
    input_close(&in);
    return f;
}

static bool embeds(int mode)
{
    return mode == MODE_EMBED4 || mode == MODE_EMBED4_HASH || mode == MODE_EMBED4_RAW ||
           mode == MODE_TOKENS;
}

static embed_t *embedder(int mode)
{
    embed_opts_t eo;
    embed_opts_default(&eo);
    if (mode == MODE_TOKENS)
        eo.kind = EMBED_TOKEN;
    if (mode == MODE_EMBED4_RAW) {
        eo.shape = EMBED_SHAPE_NONE;
        eo.header_norm = false;
    }
    embed_t *e = embed_new(&eo);
    embed_set_sorted(e, mode != MODE_EMBED4_HASH && mode != MODE_EMBED4_RAW);
    return e;
}

/* Embeds the framed messages; returns the seconds it took. */
static double run_embed(const framed_t *f, size_t n, int mode, size_t *msgs, size_t *bytes)
{
    embed_t *e = embedder(mode);
    sparse_t *v = sparse_new();
    *msgs = *bytes = 0;
    double t0 = now();
    for (size_t i = 0; i < n; i++) {
        embed_message(e, f[i].data, f[i].len, v);
        *bytes += f[i].len;
    }
    double dt = now() - t0;
    *msgs = n;
    embed_destroy(&e);
    sparse_destroy(&v);
    return dt;
}

static double run(const char *cap, size_t caplen, model_t *m, int mode, size_t *msgs, size_t *bytes)
{
    char err[256];
    input_t *in = input_open_memory("bench", cap, caplen, NULL, err, sizeof err);
    embed_t *e = embedder(mode);
    sparse_t *v = sparse_new();
    model_scorer_t *s = model_scorer_new(m, false);
    msg_t msg;
    size_t visited = 0, zero = 0, dup_visited = 0, closed = 0, searched = 0;
    *msgs = *bytes = 0;
    double t0 = now();
    while (input_next(in, &msg) == 1) {
        model_score_t sc;
        sipinfo_t info;
        if (mode == MODE_GLOBAL || mode == MODE_LOCAL) {
            model_score_message(s, msg.data, msg.len, mode == MODE_LOCAL, &sc);
            if (mode == MODE_LOCAL) {
                visited += sc.nn.visited;
                closed += sc.nn.closed;
                searched += sc.nn.visited > 0;
                bool dup = sc.nn.k > 0 && sc.nn.dist[0] == 0;
                zero += dup;
                if (dup)
                    dup_visited += sc.nn.visited;
            }
        } else if (mode == MODE_OSIP)
            sipcheck_message(msg.data, msg.len, &info);
        (*msgs)++;
        *bytes += msg.len;
    }
    double dt = now() - t0;
    if (mode == MODE_LOCAL && getenv("BENCH_VERBOSE"))
        fprintf(stderr,
                "local: %.1f distance computations per message, %.1f%% exact duplicates of a "
                "training vector (%.1f computations each), %.1f for the others; %.0f training "
                "rows in passed-over leaves per search\n",
                (double)visited / (double)*msgs, 100.0 * (double)zero / (double)*msgs,
                zero ? (double)dup_visited / (double)zero : 0.0,
                *msgs > zero ? (double)(visited - dup_visited) / (double)(*msgs - zero) : 0.0,
                searched ? (double)closed / (double)searched : 0.0);
    input_close(&in);
    embed_destroy(&e);
    sparse_destroy(&v);
    model_scorer_destroy(&s);
    return dt;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_core CAPTURE MODEL\n");
        return 2;
    }
    size_t caplen;
    char *cap = slurp(argv[1], &caplen), err[512];
    model_t *m = model_load(argv[2], err, sizeof err);
    if (!cap || !m) {
        fprintf(stderr, "bench_core: %s\n", cap ? err : "cannot read capture");
        return 1;
    }
    sipcheck_init();
    static const char *names[] = {
        "framing",     "embed_ngram4", "embed_ngram4_unsorted", "embed_ngram4_unsorted_raw",
        "embed_token", "score_global", "score_global_local",    "osip_check"};
    double frame_time = 0, frame_best = 0;
    const char *only = getenv("BENCH_ONLY"); /* one figure (and framing), e.g. for a profiler */
    int runs = getenv("BENCH_RUNS") ? atoi(getenv("BENCH_RUNS")) : 5;
    if (runs < 1 || runs > 1000) {
        fprintf(stderr, "bench_core: BENCH_RUNS must be 1 to 1000\n");
        return 2;
    }
    size_t nframed = 0;
    framed_t *framed = frame_all(cap, caplen, &nframed);
    for (int mode = 0; mode < MODE_COUNT; mode++) {
        if (only && mode != MODE_FRAME && strcmp(only, names[mode]) != 0)
            continue;
        double t[1000];
        size_t msgs = 0, bytes = 0;
        for (int r = 0; r < runs; r++)
            t[r] = embeds(mode) ? run_embed(framed, nframed, mode, &msgs, &bytes)
                                : run(cap, caplen, m, mode, &msgs, &bytes);
        qsort(t, (size_t)runs, sizeof *t, by_double);
        double med = t[runs / 2];
        if (mode == MODE_FRAME) {
            frame_time = med;
            frame_best = t[0];
        }
        /* the libosip2 check alone: framing time taken out (the embedding figures time
         * framed messages) */
        bool framing_out = mode == MODE_OSIP;
        double own = med - (framing_out ? frame_time : 0);
        printf("%s_msgs_per_s %.0f\n%s_mb_per_s %.1f\n", names[mode], msgs / own, names[mode],
               bytes / own / 1e6);
        if (getenv("BENCH_RUNS"))
            printf("%s_best_msgs_per_s %.0f\n", names[mode],
                   msgs / (t[0] - (framing_out ? frame_best : 0)));
    }
    for (size_t i = 0; i < nframed; i++)
        free(framed[i].data);
    free(framed);
    model_destroy(&m);
    free(cap);
    return 0;
}
