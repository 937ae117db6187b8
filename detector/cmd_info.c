/* sipguard info: what a model file holds, so that an operator with several (one per edge,
 * retrained over time) can tell them apart and see what each was trained with. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cmdutil.h"
#include "commands.h"

#define INFO_MAX_TOP 100

static const cliopt_t info_opts[] = {
    {"json", 0, NULL, "one JSON object per model, a line each", NULL},
    {"top", 0, "N", "list the N features the centre weighs most (0 to 100)", "10"},
    {"help", 'h', NULL, "show this help", NULL},
    {0},
};

static const clicmd_t info_cmd = {
    "sipguard info [--json] [--top N] MODEL...",
    "Describes model files from sipguard train: their size and when they were written; the\n"
    "embedding they were trained with (which sipguard score and the edge take from the file);\n"
    "how many messages they learned and how many were held out to calibrate the thresholds;\n"
    "the global model (SVDD: nu, solver iterations and duality gap, threshold) and the local\n"
    "model (k, normalisation, threshold); whether they need the context pseudo-headers; and\n"
    "the features the global model's centre weighs most, which is what normal traffic at that\n"
    "edge holds most (the tokens themselves in a token model; token:KEY in one trained\n"
    "before model format 7, which kept no token strings). Each\n"
    "file is read and checked whole, as the edge loads it.",
    info_opts,
    "exit status: 0 every model read, 1 a file is not a model sipguard reads (named, with why),\n"
    "2 usage error.\n\n"
    "examples:\n"
    "  sipguard info /etc/sipguard/edge.model\n"
    "  sipguard info --json --top 0 *.model | jq .thresholds",
};

static const char *norm_name(embed_norm_t n)
{
    return n == EMBED_NORM_L1 ? "l1" : n == EMBED_NORM_L2 ? "l2" : "none";
}

/* The delimiters of a token model as --delimiters takes them (space named, \t \r \n and \xHH
 * escaped). */
static void delimiters_text(const embed_opts_t *e, char *buf, size_t cap)
{
    size_t o = 0;
    buf[0] = 0;
    for (int c = 0; c < 256 && o + 8 < cap; c++) {
        if (!(e->delim[c / 8] & (1u << (c % 8))))
            continue;
        if (c == ' ')
            continue; /* named first, below */
        else if (c == '\t' || c == '\r' || c == '\n')
            o += (size_t)snprintf(buf + o, cap - o, "\\%c",
                                  c == '\t'   ? 't'
                                  : c == '\r' ? 'r'
                                              : 'n');
        else if (c > ' ' && c < 127 && c != '\\')
            o += (size_t)snprintf(buf + o, cap - o, "%c", c);
        else
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", c);
    }
    static const char space[] = "space and ";
    if ((e->delim[' ' / 8] & (1u << (' ' % 8))) && o + sizeof space <= cap) {
        memmove(buf + sizeof space - 1, buf, o + 1);
        memcpy(buf, space, sizeof space - 1);
    }
}

static json_t *info_json(const char *path, const struct stat *st, const model_t *m,
                         const model_feature_t *top, int ntop)
{
    const model_opts_t *mo = model_options(m);
    model_stats_t s;
    model_stats(m, &s);
    char feat[32], delims[1200];
    embed_opts_feature_name(&mo->embed, feat, sizeof feat);
    json_t *embedding =
        json_pack("{s:s, s:b, s:s, s:s, s:b}", "feature", feat, "binary", mo->embed.binary, "norm",
                  norm_name(mo->embed.norm), "shape", embed_shape_name(mo->embed.shape),
                  "header_norm", mo->embed.header_norm);
    if (mo->embed.kind == EMBED_TOKEN) {
        delimiters_text(&mo->embed, delims, sizeof delims);
        json_object_set_new(embedding, "delimiters", json_string(delims));
    }
    json_t *features = json_array();
    for (int i = 0; i < ntop; i++)
        json_array_append_new(features, json_pack("{s:s, s:f}", "feature", top[i].feature, "weight",
                                                  top[i].contribution));
    return json_pack(
        "{s:s, s:I, s:I, s:o, s:{s:I, s:I, s:I, s:I, s:I, s:f, s:I}, "
        "s:{s:f, s:i, s:f}, s:{s:i, s:b}, s:{s:f, s:f, s:f}, s:b, s:o}",
        "model", path, "bytes", (json_int_t)st->st_size, "written", (json_int_t)st->st_mtime,
        "embedding", embedding, "training", "messages", (json_int_t)(s.messages + s.holdout),
        "trained_on", (json_int_t)s.messages, "held_out", (json_int_t)s.holdout, "distinct_vectors",
        (json_int_t)s.distinct, "features", (json_int_t)s.dim, "holdout_fraction", mo->holdout,
        "seed", (json_int_t)mo->seed, "global", "nu", mo->nu, "iterations", s.svdd_iterations,
        "duality_gap", s.svdd_gap, "local", "k", mo->k, "divided_by_norm", mo->local_norm,
        "thresholds", "global", s.thr_global, "local", s.thr_local, "target_fpr", mo->fpr,
        "context_headers", mo->context_headers, "top_features", features);
}

static void info_text(const char *path, const struct stat *st, const model_t *m,
                      const model_feature_t *top, int ntop)
{
    const model_opts_t *mo = model_options(m);
    model_stats_t s;
    model_stats(m, &s);
    cmd_print_model_summary(stdout, NULL, path, mo, &s);
    char when[64];
    struct tm tm;
    time_t t = st->st_mtime;
    gmtime_r(&t, &tm);
    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
    printf("file: %lld bytes, written %s\n", (long long)st->st_size, when);
    printf("embedding: %s, %s%s, header names %s", mo->embed.binary ? "binary" : "counts",
           mo->embed.norm == EMBED_NORM_NONE ? "no" : norm_name(mo->embed.norm), " normalisation",
           mo->embed.header_norm ? "normalised" : "as written");
    if (mo->embed.kind == EMBED_TOKEN) {
        char delims[1200];
        delimiters_text(&mo->embed, delims, sizeof delims);
        printf(", delimiters %s", delims);
    }
    printf("\ncalibration: %g of the messages held out (seed %llu); context pseudo-headers: %s\n",
           mo->holdout, (unsigned long long)mo->seed,
           mo->context_headers ? "yes (score with --context, or [detectors] context on the edge)"
                               : "no");
    if (ntop > 0)
        printf("what the centre weighs most%s:\n",
               mo->embed.kind == EMBED_TOKEN && !model_has_feature_names(m)
                   ? " (by key: this model, of format 6, keeps no token strings; train it "
                     "again to see them)"
                   : "");
    for (int i = 0; i < ntop; i++)
        printf("  \"%s\"%*s %.4g\n", top[i].feature,
               (int)(strlen(top[i].feature) < 24 ? 24 - strlen(top[i].feature) : 0), "",
               top[i].contribution);
}

/* Describes one file; 0, or -1 after saying why it is not a model. */
static int describe(const char *path, bool json, int ntop)
{
    char err[600];
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "sipguard info: %s: %s\n", path, strerror(errno));
        return -1;
    }
    model_t *m = model_load(path, err, sizeof err);
    if (!m) {
        fprintf(stderr, "sipguard info: %s\n", err);
        return -1;
    }
    if (model_advice(m))
        fprintf(stderr, "sipguard info: warning: %s: %s\n", path, model_advice(m));
    model_feature_t top[INFO_MAX_TOP];
    int n = model_centre_features(m, ntop, top);
    if (n < 0) {
        fprintf(stderr, "sipguard info: out of memory\n");
        model_destroy(&m);
        return -1;
    }
    if (json) {
        json_t *o = info_json(path, &st, m, top, n);
        char *line = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
        if (line)
            puts(line);
        free(line);
        json_decref(o);
    } else {
        info_text(path, &st, m, top, n);
    }
    model_destroy(&m);
    return 0;
}

int cmd_info(int argc, char **argv)
{
    const char *arg, *name;
    bool json = false;
    long top = 10;
    int status;
    while ((name = cmd_next_option(&info_cmd, argc, argv, &arg, NULL, NULL, &status))) {
        if (!strcmp(name, "json")) {
            json = true;
        } else if (!strcmp(name, "top")) {
            if (cliopt_int("top", arg, 0, INFO_MAX_TOP, &top))
                return EXIT_USAGE;
        }
    }
    if (status >= 0)
        return status;
    if (optind >= argc) {
        fprintf(stderr, "sipguard info: no MODEL given\nusage: %s\n", info_cmd.usage);
        return EXIT_USAGE;
    }
    int rc = EXIT_OK;
    for (int f = optind; f < argc; f++) {
        if (!json && f > optind)
            putchar('\n');
        if (describe(argv[f], json, (int)top) != 0)
            rc = EXIT_FAIL;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "sipguard info: cannot write the output\n");
        rc = EXIT_FAIL;
    }
    return rc;
}
