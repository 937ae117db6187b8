/* sipguard train: learn normal traffic into a model file. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stdlib.h>

#include "cmdutil.h"
#include "context.h"
#include "sipcheck.h"
#include "commands.h"
#include "model.h"

static const cliopt_t train_opts[] = {
    {"output", 'o', "MODEL", "write the model to this file (required)", NULL},
    {"like", 0, "MODEL",
     "start from the options MODEL was trained with (embedding, nu, k, fpr, holdout, local "
     "norm, seed), wherever --like stands; the other options given change them. To retrain "
     "an edge's model on newer traffic ([record] dir) the same way",
     NULL},
    CMD_EMBED_OPTIONS,
    {"nu", 0, "X", "global model: fraction of training messages allowed outside the ball", "0.05"},
    {"k", 'k', "K", "local model: number of nearest neighbours (1..64)", "1"},
    {"fpr", 0, "X", "target false-positive rate of the calibrated thresholds", "0.001"},
    {"holdout", 0, "X", "fraction of messages held back to calibrate thresholds", "0.2"},
    {"no-local-norm", 0, NULL, "do not divide the local score by the message vector's norm", NULL},
    {"seed", 0, "N", "seed for the hold-out draw, the sample and the tree", "1"},
    {"max-messages", 0, "N",
     "train on at most N messages: a uniform random sample of all the inputs' messages, "
     "taken in their order, so that memory and time stay bounded on long captures (they grow "
     "with the distinct messages: 2.9 GB and 6 minutes of one core for 840,000 messages)",
     NULL},
    {"context-headers", 0, "CONTEXT",
     "add the flood, dialog and binding detectors' state of each message as pseudo-header lines "
     "before embedding (a context model from sipguard context train; score then needs "
     "--context with the same file)",
     NULL},
    CMD_INPUT_OPTIONS,
    {"quiet", 'q', NULL, "print no summary and no skip table", NULL},
    {"help", 'h', NULL, "show this help", NULL},
    {0},
};

static const clicmd_t train_cmd = {
    "sipguard train [OPTIONS] -o MODEL INPUT...",
    "Learns what normal SIP looks like from captures (pcap, pcapng, HEPv3 inside captures),\n"
    "raw message files or directories of *.sip files, and writes a model: the embedding\n"
    "settings, the global model (centre of a soft minimum enclosing ball, SVDD), the local\n"
    "model (training vectors indexed for exact k-NN, with each distinct vector's own k\n"
    "nearest neighbours: the answer for every message that repeats it, so training searches\n"
    "once per distinct vector) and thresholds calibrated on held-out messages to the target\n"
    "false-positive rate. Train on normal traffic only.",
    train_opts,
    "exit status: 0 success, 1 failure (no messages, cannot write), 2 usage error,\n"
    "3 an input could not be read (the model is still written from the others).\n\n"
    "example: sipguard train -o edge.model normal-week.pcap",
};

/* A message kept by --max-messages: its place in the inputs and its bytes (with context
 * pseudo-headers already added). */
typedef struct {
    uint64_t index;
    uint8_t *data;
    size_t len;
} kept_t;

typedef struct {
    embed_t *embed;
    sparse_t *v;
    model_builder_t *b;
    context_t *ctx; /* --context-headers */
    uint8_t *aug;
    double holdout;
    uint64_t rng;
    size_t messages;
    size_t max;          /* --max-messages; 0: every message */
    uint64_t read;       /* messages the inputs held */
    uint64_t sample_rng; /* the reservoir's draws, apart from the hold-out's */
    kept_t *kept;        /* the reservoir: min(read, max) messages */
    size_t nkept, cap;
} train_ctx_t;

static double uniform(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return (double)(*s >> 11) / 9007199254740992.0;
}

/* Embeds a message and hands it to the builder, held out or not. */
static int learn(train_ctx_t *c, const uint8_t *data, size_t len)
{
    if (embed_message(c->embed, data, len, c->v) != 0 ||
        model_builder_add(c->b, c->v, uniform(&c->rng) < c->holdout) != 0) {
        fprintf(stderr, "sipguard: train: out of memory after %zu messages\n", c->messages);
        return -1;
    }
    c->messages++;
    return 0;
}

/* Reservoir sampling (Vitter's algorithm R): after n messages, each of them is kept with
 * probability max / n, whatever the inputs' length, in one pass and max messages of memory. */
static int keep_sampled(train_ctx_t *c, const uint8_t *data, size_t len)
{
    uint64_t n = ++c->read;
    size_t slot = c->nkept;
    if (c->nkept == c->max) {
        uint64_t j = (uint64_t)(uniform(&c->sample_rng) * (double)n);
        if (j >= c->max)
            return 0;
        slot = (size_t)j;
    }
    if (slot == c->cap) { /* grown as messages come: a short capture allocates little */
        size_t cap = c->cap ? c->cap * 2 : 1024;
        cap = cap < c->max ? cap : c->max;
        kept_t *k = realloc(c->kept, cap * sizeof *k);
        if (!k)
            goto no_memory;
        c->kept = k;
        c->cap = cap;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        goto no_memory;
    memcpy(copy, data, len);
    if (slot == c->nkept)
        c->nkept++;
    else
        free(c->kept[slot].data);
    c->kept[slot] = (kept_t){n - 1, copy, len};
    return 0;
no_memory:
    fprintf(stderr, "sipguard: train: out of memory keeping a sample of %zu messages\n", c->max);
    return -1;
}

static int by_index(const void *a, const void *b)
{
    const kept_t *x = a, *y = b;
    return (x->index > y->index) - (x->index < y->index);
}

/* Trains on the sample in the inputs' order, freeing each message once learned. */
static int learn_sample(train_ctx_t *c)
{
    qsort(c->kept, c->nkept, sizeof *c->kept, by_index);
    int rc = 0;
    for (size_t i = 0; i < c->nkept; i++) {
        if (rc == 0)
            rc = learn(c, c->kept[i].data, c->kept[i].len);
        free(c->kept[i].data);
    }
    c->nkept = 0;
    return rc;
}

static int train_one(void *p, const msg_t *m)
{
    train_ctx_t *c = p;
    const uint8_t *data = m->data;
    size_t len = m->len;
    if (c->ctx) {
        sipinfo_t info;
        context_verdict_t cv;
        sipcheck_message(m->data, m->len, &info);
        context_observe(c->ctx, m, &info, &cv);
        size_t n = context_augment(&cv, m->data, m->len, c->aug, CONTEXT_AUG_MAX);
        if (n) {
            data = c->aug;
            len = n;
        }
    }
    return c->max ? keep_sampled(c, data, len) : learn(c, data, len);
}

/* Thresholds a user should know are shaky, said even with --quiet: a held-out sample too
 * small to resolve --fpr (the threshold is then its highest score), and a local threshold of 0
 * (every held-out message equals a training one, so any message unlike all of training is an
 * anomaly: a capture of one tool's identical calls does this). */
static void warn_about_calibration(const model_stats_t *st, const model_opts_t *mo)
{
    double needed = ceil(1.0 / mo->fpr);
    if (st->holdout > 0 && (double)st->holdout < needed)
        fprintf(stderr,
                "sipguard train: warning: %zu messages held out for calibration cannot resolve "
                "--fpr %g (that takes %.0f); the thresholds are their highest scores\n",
                st->holdout, mo->fpr, needed);
    if (mo->k > 0 && st->thr_local <= 0)
        fprintf(stderr,
                "sipguard train: warning: the local threshold is 0: every held-out message "
                "equals a training message, so every message unlike all of training will be an "
                "anomaly; train on a longer and more varied capture\n");
}

/* --like MODEL (or --like=MODEL) anywhere before a lone "--": that model's options in *mo,
 * before the other options are read, so that those change them whatever their order. Returns
 * -1 to go on, or an exit code. */
static int take_options_like(int argc, char **argv, model_opts_t *mo)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
        const char *path = !strncmp(argv[i], "--like=", 7)              ? argv[i] + 7
                           : !strcmp(argv[i], "--like") && i + 1 < argc ? argv[i + 1]
                                                                        : NULL;
        if (!path)
            continue;
        char err[600];
        model_t *m = model_load(path, err, sizeof err);
        if (!m) {
            fprintf(stderr, "sipguard train: --like: %s\n", err);
            return EXIT_FAIL;
        }
        *mo = *model_options(m);
        mo->context_headers = false; /* set again by --context-headers, which must be given */
        bool needs_context = model_options(m)->context_headers;
        model_destroy(&m);
        if (needs_context)
            return -2;
    }
    return -1;
}

/* What the command line asks for. */
typedef struct {
    model_opts_t mo;
    decode_opts_t dopts;
    const char *out, *context_path;
    bool quiet;
    size_t max_messages; /* 0: every message */
} train_args_t;

/* Reads the options into a; returns -1 to go on, or the exit code. */
static int parse_train_args(int argc, char **argv, train_args_t *a)
{
    model_opts_default(&a->mo);
    decode_opts_default(&a->dopts);
    const char *arg, *name;
    int status = take_options_like(argc, argv, &a->mo);
    if (status >= 0)
        return status;
    bool like_needs_context = status == -2;
    while (
        (name = cmd_next_option(&train_cmd, argc, argv, &arg, &a->dopts, &a->mo.embed, &status))) {
        double d;
        long l;
        if (!strcmp(name, "output")) {
            a->out = arg;
        } else if (!strcmp(name, "nu")) {
            if (cliopt_double(name, arg, 1e-6, 1, &d))
                return EXIT_USAGE;
            a->mo.nu = d;
        } else if (!strcmp(name, "k")) {
            if (cliopt_int(name, arg, 1, KNN_MAX_K, &l))
                return EXIT_USAGE;
            a->mo.k = (int)l;
        } else if (!strcmp(name, "fpr")) {
            if (cliopt_double(name, arg, 0, 0.5, &d))
                return EXIT_USAGE;
            a->mo.fpr = d;
        } else if (!strcmp(name, "holdout")) {
            if (cliopt_double(name, arg, 0, 0.9, &d))
                return EXIT_USAGE;
            a->mo.holdout = d;
        } else if (!strcmp(name, "no-local-norm")) {
            a->mo.local_norm = false;
        } else if (!strcmp(name, "seed")) {
            if (cliopt_int(name, arg, 0, 1L << 62, &l))
                return EXIT_USAGE;
            a->mo.seed = (uint64_t)l;
        } else if (!strcmp(name, "max-messages")) {
            if (cliopt_int(name, arg, 1, 1L << 40, &l))
                return EXIT_USAGE;
            a->max_messages = (size_t)l;
        } else if (!strcmp(name, "context-headers")) {
            a->context_path = arg;
        } else if (!strcmp(name, "like")) {
            /* taken before the other options (take_options_like) */
        } else if (!strcmp(name, "quiet")) {
            a->quiet = true;
        }
    }
    if (status >= 0)
        return status;
    if (!a->out || optind >= argc) {
        fprintf(stderr, "sipguard train: %s\nusage: %s\n",
                a->out ? "no INPUT given" : "-o MODEL is required", train_cmd.usage);
        return EXIT_USAGE;
    }
    if (like_needs_context && !a->context_path) {
        fprintf(stderr, "sipguard train: --like names a model trained with --context-headers: "
                        "give --context-headers CONTEXT too\n");
        return EXIT_USAGE;
    }
    return -1;
}

/* Fits the models to what c learned, writes the model file and says what it holds; returns
 * 0 or -1. */
static int write_model(train_ctx_t *c, const train_args_t *a)
{
    model_stats_t st;
    char err[512];
    model_t *m = model_builder_finish(c->b, &st, err, sizeof err);
    if (!m || model_save(m, a->out, err, sizeof err) != 0) {
        fprintf(stderr, "sipguard train: %s\n", err);
        model_destroy(&m);
        return -1;
    }
    if (!a->quiet)
        cmd_print_model_summary(stderr, "trained", a->out, &a->mo, &st);
    warn_about_calibration(&st, &a->mo);
    model_destroy(&m);
    return 0;
}

static void train_ctx_free(train_ctx_t *c)
{
    embed_destroy(&c->embed);
    sparse_destroy(&c->v);
    model_builder_destroy(&c->b);
    context_destroy(&c->ctx);
    free(c->aug);
    for (size_t i = 0; i < c->nkept; i++)
        free(c->kept[i].data);
    free(c->kept);
}

int cmd_train(int argc, char **argv)
{
    train_args_t a = {0};
    int status = parse_train_args(argc, argv, &a);
    if (status >= 0)
        return status;
    train_ctx_t c = {0};
    context_model_t *cm = NULL;
    if (a.context_path) {
        char cerr[600];
        cm = context_model_load(a.context_path, cerr, sizeof cerr);
        if (!cm) {
            fprintf(stderr, "sipguard train: %s\n", cerr);
            return EXIT_FAIL;
        }
        c.ctx = context_new(cm);
        c.aug = malloc(CONTEXT_AUG_MAX);
        a.mo.context_headers = true;
        sipcheck_init();
    }
    c.embed = embed_new(&a.mo.embed);
    c.v = sparse_new();
    c.b = model_builder_new(&a.mo);
    c.holdout = a.mo.holdout;
    c.rng = a.mo.seed * 0x9e3779b97f4a7c15ULL + 1;
    c.sample_rng = a.mo.seed * 0xbf58476d1ce4e5b9ULL + 1;
    c.max = a.max_messages;
    if (c.embed && c.b && a.mo.embed.kind == EMBED_TOKEN) { /* the model keeps their names */
        embed_keep_dictionary(c.embed, true);
        model_builder_name_tokens(c.b, c.embed);
    }
    int failed = 0, rc = EXIT_FAIL;
    if (!c.embed || !c.v || !c.b || (cm && (!c.ctx || !c.aug)) ||
        cmd_for_each_message(argv + optind, argc - optind, &a.dopts, a.quiet, train_one, &c,
                             &failed) != 0)
        goto out;
    if (c.max) {
        if (learn_sample(&c) != 0)
            goto out;
        if (!a.quiet)
            fprintf(stderr,
                    "sipguard train: a sample of %zu of the %llu messages read "
                    "(--max-messages %zu)\n",
                    c.messages, (unsigned long long)c.read, c.max);
    }
    if (write_model(&c, &a) == 0)
        rc = failed ? EXIT_INPUT : EXIT_OK;
out:
    train_ctx_free(&c);
    context_model_destroy(&cm);
    return rc;
}
