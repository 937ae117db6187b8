/* sipguard eval: detection quality of a model on labelled inputs. */
#include <math.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmdutil.h"
#include "commands.h"
#include "evalmetrics.h"
#include "model.h"

static const cliopt_t eval_opts[] = {
    {"model", 'm', "MODEL", "model file from sipguard train (required)", NULL},
    {"normal", 0, "INPUT...", "inputs holding normal traffic only (one or more)", NULL},
    {"attack", 0, "INPUT...", "inputs holding attack traffic only (one or more)", NULL},
    {"roc", 0, "FILE.csv", "write the ROC curves (model,threshold,fpr,tpr)", NULL},
    {"plot", 0, "FILE.svg", "draw the ROC curves as an SVG image", NULL},
    {"json", 0, NULL, "print the figures as one JSON object instead of a table", NULL},
    CMD_INPUT_OPTIONS,
    {"help", 'h', NULL, "show this help", NULL},
    {0},
};

static const clicmd_t eval_cmd = {
    "sipguard eval -m MODEL --normal INPUT... --attack INPUT... [--roc F.csv] [--plot F.svg]",
    "Scores every message of the normal and the attack inputs and reports, for the global and\n"
    "the local model: AUC, and the true-positive rate at false-positive rates 0, 0.001 and\n"
    "0.01 (thresholds taken from the normal scores themselves), plus the rates of the\n"
    "model's own calibrated thresholds.",
    eval_opts,
    "exit status: 0 success, 1 failure, 2 usage error, 3 an input could not be read.",
};

typedef struct {
    double *v;
    size_t n, cap;
} scores_t;

static int push(scores_t *s, double x)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 4096;
        double *v = realloc(s->v, cap * sizeof *v);
        if (!v)
            return -1;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = x;
    return 0;
}

typedef struct {
    model_scorer_t *scorer;
    scores_t *g, *l;
    size_t flagged;
} eval_ctx_t;

static int eval_one(void *p, const msg_t *m)
{
    eval_ctx_t *c = p;
    model_score_t sc;
    if (model_score_message(c->scorer, m->data, m->len, true, &sc) != 0 ||
        push(c->g, sc.global) != 0 || push(c->l, sc.local) != 0)
        return -1;
    c->flagged += sc.global_anomaly || sc.local_anomaly;
    return 0;
}

/* Splits argv into options (for getopt) and the operands following --normal / --attack. */
static int split_args(int argc, char **argv, char **opts, int *nopts, char **normal, int *nn,
                      char **attack, int *na)
{
    int mode = 0;
    *nopts = *nn = *na = 0;
    opts[(*nopts)++] = argv[0];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--normal") || !strcmp(a, "--attack")) {
            mode = a[2] == 'n' ? 1 : 2;
            continue;
        }
        if (a[0] == '-' && a[1]) {
            opts[(*nopts)++] = argv[i];
            const char *name = a[1] == '-' ? a + 2 : NULL;
            for (const cliopt_t *o = eval_opts; o->name; o++) {
                bool match = name ? !strcmp(name, o->name) : (o->letter == a[1] && !a[2]);
                if (match && o->arg && i + 1 < argc)
                    opts[(*nopts)++] = argv[++i];
            }
            continue;
        }
        if (mode == 1)
            normal[(*nn)++] = argv[i];
        else if (mode == 2)
            attack[(*na)++] = argv[i];
        else {
            fprintf(stderr, "sipguard eval: '%s': say whether it is --normal or --attack\n", a);
            return -1;
        }
    }
    opts[*nopts] = NULL;
    return 0;
}

static void print_table(const char *model, double auc, const double tpr[3], double fpr_cal,
                        double tpr_cal)
{
    printf("%-7s AUC %.4f   TPR@FPR=0 %.4f   TPR@FPR=0.001 %.4f   TPR@FPR=0.01 %.4f   "
           "calibrated threshold: FPR %.4f TPR %.4f\n",
           model, auc, tpr[0], tpr[1], tpr[2], fpr_cal, tpr_cal);
}

static double rate_above(const double *v, size_t n, double t)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += model_above_threshold(v[i], t);
    return n ? (double)c / (double)n : NAN;
}

int cmd_eval(int argc, char **argv)
{
    char **opts = calloc((size_t)argc + 1, sizeof *opts);
    char **normal = calloc((size_t)argc + 1, sizeof *normal);
    char **attack = calloc((size_t)argc + 1, sizeof *attack);
    int nopts, nn, na, rc = EXIT_USAGE;
    decode_opts_t dopts;
    decode_opts_default(&dopts);
    const char *model_path = NULL, *roc = NULL, *plot = NULL, *arg;
    bool json = false;
    model_t *m = NULL;
    scores_t g[2] = {{0}}, l[2] = {{0}};
    eval_ctx_t c = {0};
    if (!opts || !normal || !attack ||
        split_args(argc, argv, opts, &nopts, normal, &nn, attack, &na) != 0)
        goto out;
    const char *name;
    int status;
    while ((name = cmd_next_option(&eval_cmd, nopts, opts, &arg, &dopts, NULL, &status))) {
        if (!strcmp(name, "model")) {
            model_path = arg;
        } else if (!strcmp(name, "roc")) {
            roc = arg;
        } else if (!strcmp(name, "plot")) {
            plot = arg;
        } else if (!strcmp(name, "json")) {
            json = true;
        }
    }
    if (status >= 0) {
        rc = status;
        goto out;
    }
    if (!model_path || !nn || !na) {
        fprintf(stderr, "sipguard eval: needs -m MODEL, --normal INPUT... and --attack INPUT...\n");
        goto out;
    }
    char err[600];
    rc = EXIT_FAIL;
    m = model_load(model_path, err, sizeof err);
    if (!m) {
        fprintf(stderr, "sipguard eval: %s\n", err);
        goto out;
    }
    if (model_advice(m))
        fprintf(stderr, "sipguard eval: warning: %s: %s\n", model_path, model_advice(m));
    if (model_options(m)->context_headers) {
        /* the pseudo-headers need the traffic in one stream, in time order, and eval reads
         * normal and attack inputs apart */
        fprintf(stderr,
                "sipguard eval: %s was trained with context pseudo-headers; evaluate it "
                "with sipguard score --context on a labelled capture instead\n",
                model_path);
        goto out;
    }
    model_stats_t st;
    model_stats(m, &st);
    c.scorer = model_scorer_new(m, false);
    int failed = 0;
    size_t flagged[2];
    for (int set = 0; set < 2; set++) {
        c.g = &g[set];
        c.l = &l[set];
        c.flagged = 0;
        if (cmd_for_each_message(set ? attack : normal, set ? na : nn, &dopts, true, eval_one, &c,
                                 &failed) != 0) {
            fprintf(stderr, "sipguard eval: out of memory\n");
            goto out;
        }
        flagged[set] = c.flagged;
    }
    if (!g[0].n || !g[1].n) {
        fprintf(stderr, "sipguard eval: no %s messages were read\n", g[0].n ? "attack" : "normal");
        goto out;
    }
    double fpr_cal[2] = {rate_above(g[0].v, g[0].n, st.thr_global),
                         rate_above(l[0].v, l[0].n, st.thr_local)};
    double tpr_cal[2] = {rate_above(g[1].v, g[1].n, st.thr_global),
                         rate_above(l[1].v, l[1].n, st.thr_local)};
    double auc[2] = {evalmetrics_auc(g[0].v, g[0].n, g[1].v, g[1].n),
                     evalmetrics_auc(l[0].v, l[0].n, l[1].v, l[1].n)};
    static const double targets[3] = {0, 0.001, 0.01};
    double tpr[2][3];
    for (int t = 0; t < 3; t++) {
        tpr[0][t] = evalmetrics_tpr_at(g[0].v, g[0].n, g[1].v, g[1].n, targets[t], NULL);
        tpr[1][t] = evalmetrics_tpr_at(l[0].v, l[0].n, l[1].v, l[1].n, targets[t], NULL);
    }
    if (json) {
        printf("{\"normal\":%zu,\"attack\":%zu", g[0].n, g[1].n);
        const char *names[2] = {"global", "local"};
        for (int k = 0; k < 2; k++)
            printf(",\"%s\":{\"auc\":%.6f,\"tpr_at_fpr_0\":%.6f,\"tpr_at_fpr_0.001\":%.6f,"
                   "\"tpr_at_fpr_0.01\":%.6f,\"calibrated_fpr\":%.6f,\"calibrated_tpr\":%.6f}",
                   names[k], auc[k], tpr[k][0], tpr[k][1], tpr[k][2], fpr_cal[k], tpr_cal[k]);
        printf(",\"either_calibrated\":{\"fpr\":%.6f,\"tpr\":%.6f}}\n",
               (double)flagged[0] / (double)g[0].n, (double)flagged[1] / (double)g[1].n);
    } else {
        printf("normal messages: %zu   attack messages: %zu\n", g[0].n, g[1].n);
        print_table("global", auc[0], tpr[0], fpr_cal[0], tpr_cal[0]);
        print_table("local", auc[1], tpr[1], fpr_cal[1], tpr_cal[1]);
        printf("either model at its calibrated threshold: FPR %.4f TPR %.4f\n",
               (double)flagged[0] / (double)g[0].n, (double)flagged[1] / (double)g[1].n);
    }
    if (roc) {
        FILE *f = fopen(roc, "w");
        if (!f) {
            fprintf(stderr, "sipguard eval: %s: cannot open for writing\n", roc);
            goto out;
        }
        fprintf(f, "model,threshold,fpr,tpr\n");
        evalmetrics_roc_csv(f, "global", g[0].v, g[0].n, g[1].v, g[1].n);
        evalmetrics_roc_csv(f, "local", l[0].v, l[0].n, l[1].v, l[1].n);
        if (fclose(f) != 0) {
            fprintf(stderr, "sipguard eval: %s: write failed\n", roc);
            goto out;
        }
    }
    if (plot) {
        FILE *f = fopen(plot, "w");
        if (!f) {
            fprintf(stderr, "sipguard eval: %s: cannot open for writing\n", plot);
            goto out;
        }
        const char *names[2] = {"global (SVDD)", "local (k-NN)"};
        const double *nv[2] = {g[0].v, l[0].v}, *av[2] = {g[1].v, l[1].v};
        evalmetrics_roc_svg(f, 2, names, nv, g[0].n, av, g[1].n);
        if (fclose(f) != 0) {
            fprintf(stderr, "sipguard eval: %s: write failed\n", plot);
            goto out;
        }
    }
    rc = failed ? EXIT_INPUT : EXIT_OK;
out:
    model_scorer_destroy(&c.scorer);
    model_destroy(&m);
    for (int k = 0; k < 2; k++) {
        free(g[k].v);
        free(l[k].v);
    }
    free(opts);
    free(normal);
    free(attack);
    return rc;
}
