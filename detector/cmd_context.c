/*
 * sipguard context: train the detectors that judge a message by what came
 * before it (flood, dialog) and evaluate each the way its published anchor
 * was evaluated, so the figures compare:
 *   - flood: the INVITE-flood GRU paper's windows of 10 INVITEs, step 2, a
 *     window malicious when it holds >= 2 attack INVITEs; accuracy, precision,
 *     recall, F1, IoU, FP and FN rates and time per window, overall and per
 *     attack rate class;
 *   - dialog: the LSTM dialog paper's detection and false-alarm probabilities
 *     on dialogs of types held out of training.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmdutil.h"
#include "commands.h"
#include "context.h"
#include "monotime.h"

static const cliopt_t train_opts[] = {
    {"output", 'o', "FILE", "context model to write (required)", NULL},
    {"tau", 0, "SECONDS", "flood: time constant of the decayed counts", "1"},
    {"ack-wait", 0, "SECONDS", "flood: how long a 200 to an INVITE waits for its ACK", "4"},
    {"fpr", 0, "RATE", "flood: quantile of normal counts the thresholds start from", "0.001"},
    {"slack", 0, "X", "flood: thresholds are that quantile times 1 + X", "0.25"},
    {"floor", 0, "COUNT", "flood: no threshold below this decayed count", "2"},
    {"flood-capacity", 0, "N",
     "flood: counters kept at once (four a request: source, identity, target, all)", "16384"},
    {"order", 0, "N", "dialog: n-gram order (N - 1 messages of context)", "3"},
    {"min-count", 0, "N", "dialog: transitions seen fewer times in training are anomalies", "1"},
    {"dialog-capacity", 0, "N",
     "dialog: legs tracked at once (a call through a proxy holds two; each registration and "
     "keep-alive ping one, until finished ones are given up for room); as many calls given up "
     "are remembered, 8 bytes each, and taken up again at their next message",
     "65536"},
    {"dialog-timeout", 0, "SECONDS", "dialog: idle time after which a leg is forgotten", "7200"},
    {"expected-users", 0, "N", "binding: users to size the Bloom filter and table for", "100000"},
    {"no-challenge", 0, NULL,
     "binding: bind on any 200 to a REGISTER, not only after a 401/407 challenge", NULL},
    {"no-flood", 0, NULL, "leave the flood detector out", NULL},
    {"no-dialog", 0, NULL, "leave the dialog detector out", NULL},
    {"no-binding", 0, NULL, "leave the binding detector out", NULL},
    CMD_INPUT_OPTIONS,
    {"quiet", 'q', NULL, "print no summary", NULL},
    {"help", 'h', NULL, "show this help", NULL},
    {0},
};

static const clicmd_t train_cmd = {
    "sipguard context train -o CONTEXT.json [OPTIONS] INPUT...",
    "Learns the flood detector's thresholds (decayed request counts per source, identity,\n"
    "target and overall, per method class; half-open sessions), the dialog detector's\n"
    "n-gram model of message sequences, and the binding detector's infrastructure (sources\n"
    "that speak for many identities) from normal traffic, into one JSON file for\n"
    "`sipguard score --context` and the edge. Inputs must be in time order (one capture, or\n"
    "consecutive ones), and carry what the edge will see: the dialog detector of a model\n"
    "trained with the responses stands aside on a feed that has none (a proxy that mirrors\n"
    "requests alone), and that of one trained without them judges requests alone\n"
    "(docs/dialog.md).",
    train_opts,
    "exit status: 0 success, 1 failure, 2 usage error, 3 an input could not be read.\n\n"
    "example: sipguard context train -o edge.context.json normal-week.pcap",
};

static const cliopt_t eval_opts[] = {
    {"model", 'm', "CONTEXT", "context model from sipguard context train (required)", NULL},
    {"labels", 'l', "CSV", "labels of the input, as sipguard gen writes them (required)", NULL},
    {"train-labels", 0, "CSV",
     "dialog: labels of the training capture; its dialog types are the known ones (required "
     "for dialog)",
     NULL},
    {"window", 0, "N", "flood: INVITEs per window", "10"},
    {"step", 0, "N", "flood: INVITEs between window starts", "2"},
    {"min-attack", 0, "N", "flood: attack INVITEs that make a window malicious", "2"},
    {"json", 0, NULL, "print the figures as one JSON object instead of tables", NULL},
    {"misses", 0, NULL, "flood: list the windows judged wrong on standard error", NULL},
    CMD_INPUT_OPTIONS,
    {"help", 'h', NULL, "show this help", NULL},
    {0},
};

static const clicmd_t eval_cmd = {
    "sipguard context eval (flood|dialog|binding) -m CONTEXT.json -l INPUT.labels.csv [OPTIONS] "
    "INPUT",
    "Evaluates one context detector on a labelled capture the way its published anchor was\n"
    "evaluated. flood: windows of --window INVITEs every --step INVITEs; a window is\n"
    "malicious when it holds at least --min-attack attack INVITEs, and flagged when at least\n"
    "as many of its INVITEs belong to a flood when the window ends (flagged, or sharing the\n"
    "key of a flood flagged later in the window); prints accuracy, precision, recall, F1, IoU, "
    "false-\n"
    "positive and false-negative rates and the detector's time per window, overall and per\n"
    "attack rate class (the flood scenario's rate-N). dialog: every Call-ID is a dialog of the\n"
    "type its labels give; types absent from --train-labels are held out; prints the\n"
    "detection probability (held-out dialogs flagged) and the false-alarm probability (dialogs\n"
    "of trained types flagged), per type, and the detection of attack dialogs per family.\n"
    "binding: per attack family, the messages flagged and the mismatch classes they got\n"
    "(new-location, spoofed-source, sip-spoof, identity-theft, auth-replay), and the share of\n"
    "normal requests flagged.",
    eval_opts,
    "exit status: 0 success, 1 failure, 2 usage error, 3 the input could not be read.\n\n"
    "example: sipguard gen -o t --attacks flood --flood-window a --seed 2 &&\n"
    "         sipguard context eval flood -m ctx.json -l t.labels.csv t.pcap",
};

/* ------------------------------------------------------------------ labels */

typedef struct {
    bool attack;
    char family[40];
    char scenario[80];
} label_t;

typedef struct {
    label_t *l;
    size_t n;
} labels_t;

static int read_labels(const char *path, labels_t *out)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "sipguard context: %s: cannot open\n", path);
        return -1;
    }
    char line[2048];
    size_t cap = 0;
    out->l = NULL;
    out->n = 0;
    if (!fgets(line, sizeof line, f) || strncmp(line, "index,ts,label,family,scenario", 30)) {
        fprintf(stderr,
                "sipguard context: %s: not a labels file (expected the header "
                "index,ts,label,family,scenario,...)\n",
                path);
        fclose(f);
        return -1;
    }
    while (fgets(line, sizeof line, f)) {
        char *fld[5], *p = line;
        int k = 0;
        for (; k < 5 && p; k++) {
            fld[k] = p;
            p = strchr(p, ',');
            if (p)
                *p++ = '\0';
        }
        if (k < 5 || !p) {
            fprintf(stderr, "sipguard context: %s: row %zu has fewer than 6 fields\n", path,
                    out->n + 1);
            fclose(f);
            free(out->l);
            return -1;
        }
        if (out->n == cap) {
            cap = cap ? cap * 2 : 4096;
            out->l = realloc(out->l, cap * sizeof *out->l);
        }
        label_t *l = &out->l[out->n++];
        l->attack = !strcmp(fld[2], "attack");
        snprintf(l->family, sizeof l->family, "%s", fld[3]);
        snprintf(l->scenario, sizeof l->scenario, "%s", fld[4]);
    }
    fclose(f);
    return 0;
}

/* ------------------------------------------------------------------ train */

typedef struct {
    flood_trainer_t *flood;
    dialog_trainer_t *dialog;
    binding_trainer_t *binding;
    size_t messages;
} train_ctx_t;

static int train_one(void *p, const msg_t *m)
{
    train_ctx_t *c = p;
    sipinfo_t info;
    sipcheck_message(m->data, m->len, &info);
    if (c->flood)
        flood_trainer_add(c->flood, m, &info);
    if (c->dialog)
        dialog_trainer_add(c->dialog, m, &info);
    if (c->binding)
        binding_trainer_add(c->binding, m, &info);
    c->messages++;
    return 0;
}

static int context_train(int argc, char **argv)
{
    decode_opts_t dopts;
    decode_opts_default(&dopts);
    flood_opts_t fo;
    flood_opts_default(&fo);
    dialog_opts_t dl;
    dialog_opts_default(&dl);
    binding_opts_t bo;
    binding_opts_default(&bo);
    const char *out = NULL, *arg;
    bool quiet = false, flood = true, dialog = true, binding = true;
    const char *name;
    int status;
    long n;
    while ((name = cmd_next_option(&train_cmd, argc, argv, &arg, &dopts, NULL, &status))) {
        if (!strcmp(name, "output")) {
            out = arg;
        } else if (!strcmp(name, "tau")) {
            if (cliopt_double(name, arg, 0.001, 3600, &fo.tau))
                return EXIT_USAGE;
        } else if (!strcmp(name, "ack-wait")) {
            if (cliopt_double(name, arg, 0.01, 3600, &fo.ack_wait))
                return EXIT_USAGE;
        } else if (!strcmp(name, "fpr")) {
            if (cliopt_double(name, arg, 0, 0.5, &fo.fpr))
                return EXIT_USAGE;
        } else if (!strcmp(name, "slack")) {
            if (cliopt_double(name, arg, 0, 100, &fo.slack))
                return EXIT_USAGE;
        } else if (!strcmp(name, "floor")) {
            if (cliopt_double(name, arg, 1, 1e6, &fo.floor))
                return EXIT_USAGE;
        } else if (!strcmp(name, "flood-capacity")) {
            if (cliopt_int(name, arg, 1024, 1 << 26, &n))
                return EXIT_USAGE;
            fo.capacity = (size_t)n;
        } else if (!strcmp(name, "dialog-capacity")) {
            if (cliopt_int(name, arg, 1024, 1 << 26, &n))
                return EXIT_USAGE;
            dl.capacity = (size_t)n;
        } else if (!strcmp(name, "dialog-timeout")) {
            if (cliopt_double(name, arg, 1, 30 * 86400, &dl.timeout))
                return EXIT_USAGE;
        } else if (!strcmp(name, "order")) {
            if (cliopt_int(name, arg, 1, DIALOG_MAX_ORDER, &n))
                return EXIT_USAGE;
            dl.order = (int)n;
        } else if (!strcmp(name, "min-count")) {
            if (cliopt_int(name, arg, 1, 1000000, &n))
                return EXIT_USAGE;
            dl.min_count = (uint32_t)n;
        } else if (!strcmp(name, "expected-users")) {
            if (cliopt_int(name, arg, 1, 100000000, &n))
                return EXIT_USAGE;
            bo.expected_users = (size_t)n;
        } else if (!strcmp(name, "no-challenge")) {
            bo.require_challenge = false;
        } else if (!strcmp(name, "no-binding")) {
            binding = false;
        } else if (!strcmp(name, "no-flood")) {
            flood = false;
        } else if (!strcmp(name, "no-dialog")) {
            dialog = false;
        } else if (!strcmp(name, "quiet")) {
            quiet = true;
        }
    }
    if (status >= 0)
        return status;
    if (!out || optind >= argc || (!flood && !dialog && !binding)) {
        fprintf(stderr, "sipguard context train: %s\nusage: %s\n",
                !out ? "-o FILE is required"
                : optind >= argc
                    ? "no INPUT given"
                    : "--no-flood, --no-dialog and --no-binding leave nothing to train",
                train_cmd.usage);
        return EXIT_USAGE;
    }
    sipcheck_init();
    train_ctx_t c = {flood ? flood_trainer_new(&fo) : NULL, dialog ? dialog_trainer_new(&dl) : NULL,
                     binding ? binding_trainer_new(&bo) : NULL, 0};
    int failed = 0, rc = EXIT_FAIL;
    cmd_for_each_message(argv + optind, argc - optind, &dopts, quiet, train_one, &c, &failed);
    context_stats_t shortages = {0};
    if (c.flood)
        flood_trainer_shortage(c.flood, &shortages.flood_evicted, &shortages.flood_capacity);
    if (c.dialog)
        dialog_trainer_stats(c.dialog, &shortages.dialog);
    context_model_t m = {0};
    char err[600];
    if (flood) {
        if (flood_trainer_finish(c.flood, &m.flood) != 0) {
            fprintf(stderr, "sipguard context train: no SIP request in the inputs\n");
            goto out;
        }
        m.has_flood = true;
    }
    if (dialog) {
        m.dialog = dialog_trainer_finish(c.dialog);
        shortages.dialog.requests_only = dialog_model_requests_only(m.dialog);
    }
    /* in training too: counts cut short learn thresholds too low, legs cut short learn calls
     * that start with a BYE, and a feed of requests alone a model that judges requests alone */
    context_warn(stderr, "sipguard context train", &shortages);
    if (binding) {
        binding_trainer_finish(c.binding, &m.binding);
        m.has_binding = true;
    }
    if (context_model_save(&m, out, err, sizeof err) != 0) {
        fprintf(stderr, "sipguard context train: %s\n", err);
        goto out;
    }
    if (!quiet) {
        fprintf(stderr, "trained on %zu messages", c.messages);
        if (flood)
            fprintf(stderr,
                    "; flood thresholds per second-scale count: INVITE source %.1f, "
                    "target %.1f, global %.1f; %zu busy sources",
                    m.flood.thr[FLOOD_KEY_SOURCE][FLOOD_INVITE],
                    m.flood.thr[FLOOD_KEY_TARGET][FLOOD_INVITE],
                    m.flood.thr[FLOOD_KEY_GLOBAL][FLOOD_INVITE], m.flood.n_known);
        if (m.dialog)
            fprintf(stderr, "; %zu dialog transitions", dialog_model_transitions(m.dialog));
        if (binding)
            fprintf(stderr, "; %zu infrastructure addresses", m.binding.n_infra);
        fprintf(stderr, "\n");
    }
    rc = failed ? EXIT_INPUT : EXIT_OK;
out:
    dialog_model_destroy(&m.dialog);
    flood_trainer_destroy(&c.flood);
    dialog_trainer_destroy(&c.dialog);
    binding_trainer_destroy(&c.binding);
    return rc;
}

/* ------------------------------------------------------------------ eval */

typedef struct {
    bool attack, flagged;
    int rate;   /* rate class of a flood attack message, else 0 */
    size_t msg; /* index of the message */
    int key;    /* the key that fired (flagged ones) */
    bool vouched;
    uint64_t keys[FLOOD_KEYS];
} invite_t;

#define EVAL_BATCH 1024

typedef struct {
    char call_id[128];
    char type[80]; /* normal: the scenario; attack: the family */
    bool attack, flagged;
    int first_flag; /* message number within the dialog that was flagged first, 1-based */
    int messages;
} dlg_t;

typedef struct {
    char family[40];
    size_t requests, flagged, cls[BIND_CLASSES];
} bind_row_t;

typedef struct {
    const labels_t *labels;
    context_t *ctx;
    bool flood, dialog, binding;
    bind_row_t rows[64];
    size_t nrows;
    size_t n;
    double *times; /* detector seconds per message */
    size_t times_cap;
    invite_t *inv;
    size_t ninv, invcap;
    dlg_t *dlg;
    size_t ndlg, dlgcap;
    size_t *dlg_idx; /* open addressing by call-id hash, index + 1 */
    size_t dlg_idx_cap;
    size_t unlabelled;
    bool misses; /* print the windows judged wrong */
    msg_t batch[EVAL_BATCH];
    sipinfo_t infos[EVAL_BATCH];
    context_verdict_t verdicts[EVAL_BATCH];
    size_t nbatch;
} eval_ctx_t;

static size_t call_hash(const char *s)
{
    size_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    return h;
}

static dlg_t *dialog_of(eval_ctx_t *c, const char *call_id)
{
    if ((c->ndlg + 1) * 2 > c->dlg_idx_cap) {
        size_t cap = c->dlg_idx_cap ? c->dlg_idx_cap * 2 : 4096;
        size_t *idx = calloc(cap, sizeof *idx);
        for (size_t i = 0; i < c->ndlg; i++) {
            size_t h = call_hash(c->dlg[i].call_id) & (cap - 1);
            while (idx[h])
                h = (h + 1) & (cap - 1);
            idx[h] = i + 1;
        }
        free(c->dlg_idx);
        c->dlg_idx = idx;
        c->dlg_idx_cap = cap;
    }
    size_t h = call_hash(call_id) & (c->dlg_idx_cap - 1);
    for (; c->dlg_idx[h]; h = (h + 1) & (c->dlg_idx_cap - 1))
        if (!strcmp(c->dlg[c->dlg_idx[h] - 1].call_id, call_id))
            return &c->dlg[c->dlg_idx[h] - 1];
    if (c->ndlg == c->dlgcap) {
        c->dlgcap = c->dlgcap ? c->dlgcap * 2 : 4096;
        c->dlg = realloc(c->dlg, c->dlgcap * sizeof *c->dlg);
    }
    dlg_t *d = &c->dlg[c->ndlg];
    memset(d, 0, sizeof *d);
    snprintf(d->call_id, sizeof d->call_id, "%s", call_id);
    c->dlg_idx[h] = ++c->ndlg;
    return d;
}

static int rate_class(const char *scenario)
{
    const char *r = strstr(scenario, "rate-");
    return r ? atoi(r + 5) : 0;
}

/* Books one judged message: its INVITE for the flood windows, its dialog for the dialog
 * figures. */
static void account(eval_ctx_t *c, const sipinfo_t *info, const context_verdict_t *v, double dt)
{
    if (c->n == c->times_cap) {
        c->times_cap = c->times_cap ? c->times_cap * 2 : 65536;
        c->times = realloc(c->times, c->times_cap * sizeof *c->times);
    }
    c->times[c->n] = dt;
    const label_t *l = c->n < c->labels->n ? &c->labels->l[c->n] : NULL;
    c->unlabelled += l == NULL;
    if (c->flood && info->is_request && !strcmp(info->method, "INVITE")) {
        if (c->ninv == c->invcap) {
            c->invcap = c->invcap ? c->invcap * 2 : 4096;
            c->inv = realloc(c->inv, c->invcap * sizeof *c->inv);
        }
        invite_t *iv = &c->inv[c->ninv++];
        *iv = (invite_t){l && l->attack,
                         v->flood.flood,
                         l && l->attack ? rate_class(l->scenario) : 0,
                         c->n,
                         v->flood.key,
                         v->flood.vouched,
                         {0}};
        memcpy(iv->keys, v->flood.keys, sizeof iv->keys);
    }
    if (c->binding && v->binding.judged && l) {
        const char *fam = l->attack ? l->family : "normal";
        size_t r = 0;
        while (r < c->nrows && strcmp(c->rows[r].family, fam))
            r++;
        if (r == c->nrows && c->nrows < 64)
            snprintf(c->rows[c->nrows++].family, sizeof c->rows[0].family, "%s", fam);
        if (r < 64) {
            c->rows[r].requests++;
            c->rows[r].flagged += v->binding.anomaly;
            c->rows[r].cls[v->binding.cls]++;
        }
    }
    if (c->dialog && info->call_id[0] && l) {
        dlg_t *d = dialog_of(c, info->call_id);
        d->messages++;
        if (!d->type[0] || (l->attack && !d->attack)) {
            snprintf(d->type, sizeof d->type, "%s", l->attack ? l->family : l->scenario);
            d->attack = l->attack;
        }
        if (v->dialog.anomaly && !d->flagged) {
            d->flagged = true;
            d->first_flag = d->messages;
        }
    }
    c->n++;
}

/* Runs the detector over the buffered messages in one go and books them. Parsing happens
 * before, so the time measured is the detector's own, as a deployment that parses once for
 * all its detectors would spend it. */
static void run_batch(eval_ctx_t *c)
{
    double t0 = mono_now();
    for (size_t i = 0; i < c->nbatch; i++)
        context_observe(c->ctx, &c->batch[i], &c->infos[i], &c->verdicts[i]);
    double per = c->nbatch ? (mono_now() - t0) / (double)c->nbatch : 0;
    for (size_t i = 0; i < c->nbatch; i++)
        account(c, &c->infos[i], &c->verdicts[i], per);
    c->nbatch = 0;
}

static int eval_one(void *p, const msg_t *m)
{
    eval_ctx_t *c = p;
    sipcheck_message(m->data, m->len, &c->infos[c->nbatch]);
    c->batch[c->nbatch] = *m;
    c->batch[c->nbatch].data = NULL; /* the detectors use the parsed fields only */
    if (++c->nbatch == EVAL_BATCH)
        run_batch(c);
    return 0;
}

typedef struct {
    size_t tp, fp, tn, fn;
} confusion_t;

static void print_metrics(const char *name, confusion_t k, double us, bool json, bool *first)
{
    double tot = (double)(k.tp + k.fp + k.tn + k.fn);
    double acc = tot ? (double)(k.tp + k.tn) / tot : 0;
    double prec = k.tp + k.fp ? (double)k.tp / (double)(k.tp + k.fp) : 0;
    double rec = k.tp + k.fn ? (double)k.tp / (double)(k.tp + k.fn) : 0;
    double f1 = prec + rec > 0 ? 2 * prec * rec / (prec + rec) : 0;
    double iou = k.tp + k.fp + k.fn ? (double)k.tp / (double)(k.tp + k.fp + k.fn) : 0;
    double fpr = k.fp + k.tn ? (double)k.fp / (double)(k.fp + k.tn) : 0;
    double fnr = k.tp + k.fn ? (double)k.fn / (double)(k.tp + k.fn) : 0;
    if (json) {
        printf("%s\"%s\":{\"windows\":%zu,\"malicious\":%zu,\"accuracy\":%.6f,\"precision\":%.6f,"
               "\"recall\":%.6f,\"f1\":%.6f,\"iou\":%.6f,\"fpr\":%.6f,\"fnr\":%.6f,"
               "\"us_per_window\":%.3f}",
               *first ? "" : ",", name, (size_t)tot, k.tp + k.fn, acc, prec, rec, f1, iou, fpr, fnr,
               us);
        *first = false;
    } else {
        printf("%-14s %8zu %6zu %8.2f%% %8.2f%% %8.2f%% %8.2f%% %8.2f%% %7.3f%% %7.3f%% %8.2f\n",
               name, (size_t)tot, k.tp + k.fn, 100 * acc, 100 * prec, 100 * rec, 100 * f1,
               100 * iou, 100 * fpr, 100 * fnr, us);
    }
}

/* Whether INVITE i belongs to the flood that INVITE j was flagged for: the same value of the
 * key that fired (for the overall count: any request it judges). */
static bool same_flood(const invite_t *i, const invite_t *j)
{
    if (!j->flagged)
        return false;
    if (j->key == FLOOD_KEY_GLOBAL)
        return !i->vouched;
    /* a shared identity or target groups only requests nobody vouches for: a call's own
     * forwarded copy (from infrastructure) and a registered user's calls stay out */
    if (j->key == FLOOD_KEY_IDENTITY || j->key == FLOOD_KEY_TARGET)
        return !i->vouched && i->keys[j->key] && i->keys[j->key] == j->keys[j->key];
    /* by its source (that key, or half-open sessions) unless it is infrastructure or
     * registered */
    if ((j->key == FLOOD_KEY_SOURCE || j->key < 0) && !j->vouched)
        return i->keys[FLOOD_KEY_SOURCE] && i->keys[FLOOD_KEY_SOURCE] == j->keys[FLOOD_KEY_SOURCE];
    return false;
}

/* INVITEs of the window the detector holds for flood members when the window ends: flagged
 * ones, and earlier ones of a flood flagged later in the window (what a window classifier
 * that sees all ten at once, like the anchor, can use; nothing after the window is). */
static int flagged_in_window(const invite_t *w, long n)
{
    int count = 0;
    for (long i = 0; i < n; i++) {
        bool member = w[i].flagged;
        for (long j = i + 1; j < n && !member; j++)
            member = same_flood(&w[i], &w[j]);
        count += member;
    }
    return count;
}

static void report_flood(eval_ctx_t *c, long window, long step, long min_attack, bool json)
{
    if (c->misses)
        fprintf(stderr, "windows judged wrong: A attack, n normal, * flagged, then the rate "
                        "class, the key that fired (k0 source, k1 identity, k2 target, k3 "
                        "overall, k-1 half-open) and the source\n");

    static const int classes[] = {10, 25, 50, 100, 500, 1000};
    confusion_t all = {0}, per[6] = {{0}};
    double *prefix = malloc((c->n + 1) * sizeof *prefix);
    prefix[0] = 0;
    for (size_t i = 0; i < c->n; i++)
        prefix[i + 1] = prefix[i] + c->times[i];
    double time_sum = 0, invite_time = 0;
    size_t windows = 0;
    for (size_t s = 0; s + (size_t)window <= c->ninv; s += (size_t)step) {
        int att = 0, votes[6] = {0};
        for (long k = 0; k < window; k++) {
            invite_t *v = &c->inv[s + (size_t)k];
            att += v->attack;
            for (int r = 0; r < 6; r++)
                votes[r] += v->attack && v->rate == classes[r];
        }
        int flag = flagged_in_window(&c->inv[s], window);
        bool truth = att >= min_attack, pred = flag >= min_attack;
        if (c->misses && truth != pred) {
            fprintf(stderr, "%s window at INVITE %zu:", truth ? "FN" : "FP", s);
            for (long k = 0; k < window; k++) {
                invite_t *v = &c->inv[s + (size_t)k];
                fprintf(stderr, " %c%s%d/k%d/%llx", v->attack ? 'A' : 'n', v->flagged ? "*" : "",
                        v->rate, v->flagged ? v->key : 9, (unsigned long long)(v->keys[0] & 0xfff));
            }
            fprintf(stderr, "\n");
        }
        time_sum += prefix[c->inv[s + (size_t)window - 1].msg + 1] - prefix[c->inv[s].msg];
        for (long k = 0; k < window; k++)
            invite_time += c->times[c->inv[s + (size_t)k].msg];
        windows++;
        int cls = -1;
        for (int r = 0; r < 6; r++)
            if (votes[r] && (cls < 0 || votes[r] > votes[cls]))
                cls = r;
        if (truth && pred)
            all.tp++;
        else if (truth)
            all.fn++;
        else if (pred)
            all.fp++;
        else
            all.tn++;
        if (truth && cls >= 0) {
            per[cls].tp += pred;
            per[cls].fn += !pred;
        }
    }
    for (int r = 0; r < 6; r++) { /* each class against all the normal windows */
        per[r].fp = all.fp;
        per[r].tn = all.tn;
    }
    double us = windows ? 1e6 * time_sum / (double)windows : 0;
    double us_inv = windows ? 1e6 * invite_time / (double)windows : 0;
    bool first = true;
    if (json) {
        printf(
            "{\"detector\":\"flood\",\"invites\":%zu,\"windows\":%zu,\"window\":%ld,\"step\":%ld,"
            "\"us_per_window_invites_only\":%.3f,\"classes\":{",
            c->ninv, windows, window, step, us_inv);
    } else {
        printf("flood detector: %zu INVITEs, %zu windows of %ld INVITEs, step %ld; a window is "
               "malicious with >= %ld attack INVITEs\n",
               c->ninv, windows, window, step, min_attack);
        printf("%-14s %8s %6s %9s %9s %9s %9s %9s %8s %8s %8s\n", "class", "windows", "malic.",
               "accuracy", "precision", "recall", "F1", "IoU", "FP rate", "FN rate", "us/window");
    }
    print_metrics("all", all, us, json, &first);
    for (int r = 0; r < 6; r++) {
        if (per[r].tp + per[r].fn == 0)
            continue;
        char name[32];
        snprintf(name, sizeof name, "rate-%d", classes[r]);
        print_metrics(name, per[r], us, json, &first);
    }
    if (json)
        printf("}}\n");
    else
        printf("us/window: the detector's time on every message inside the window's span; on "
               "its %ld INVITEs alone: %.2f us\n",
               window, us_inv);
    free(prefix);
}

static int type_known(char (*types)[80], size_t n, const char *t)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(types[i], t))
            return 1;
    return 0;
}

static void report_dialog(eval_ctx_t *c, const labels_t *train, bool json)
{
    /* the dialog types training saw: scenario names of its normal messages */
    char(*known)[80] = calloc(64, sizeof *known);
    size_t nk = 0;
    for (size_t i = 0; i < train->n && nk < 64; i++)
        if (!train->l[i].attack && !type_known(known, nk, train->l[i].scenario))
            snprintf(known[nk++], 80, "%s", train->l[i].scenario);
    char(*types)[80] = calloc(256, sizeof *types);
    size_t nt = 0, tot[256] = {0}, hit[256] = {0};
    bool attack_t[256] = {0};
    size_t held = 0, held_hit = 0, kept = 0, kept_hit = 0, att = 0, att_hit = 0;
    double pos_sum = 0;
    for (size_t i = 0; i < c->ndlg; i++) {
        dlg_t *d = &c->dlg[i];
        size_t t = 0;
        while (t < nt && strcmp(types[t], d->type))
            t++;
        if (t == nt && nt < 256) {
            snprintf(types[nt], 80, "%s", d->type);
            attack_t[nt++] = d->attack;
        }
        if (t < 256) {
            tot[t]++;
            hit[t] += d->flagged;
        }
        if (d->flagged)
            pos_sum += d->first_flag;
        if (d->attack) {
            att++;
            att_hit += d->flagged;
        } else if (type_known(known, nk, d->type)) {
            kept++;
            kept_hit += d->flagged;
        } else {
            held++;
            held_hit += d->flagged;
        }
    }
    double pd = held ? (double)held_hit / (double)held : 0,
           pfa = kept ? (double)kept_hit / (double)kept : 0,
           pa = att ? (double)att_hit / (double)att : 0;
    double per_msg = c->n ? 1e6 * 0 : 0;
    double tsum = 0;
    for (size_t i = 0; i < c->n; i++)
        tsum += c->times[i];
    per_msg = c->n ? 1e6 * tsum / (double)c->n : 0;
    if (json) {
        printf(
            "{\"detector\":\"dialog\",\"dialogs\":%zu,\"held_out\":%zu,\"detection_probability\":"
            "%.6f,\"known\":%zu,\"false_alarm_probability\":%.6f,\"attack_dialogs\":%zu,"
            "\"attack_detection\":%.6f,\"us_per_message\":%.3f,\"types\":{",
            c->ndlg, held, pd, kept, pfa, att, pa, per_msg);
        for (size_t t = 0; t < nt; t++)
            printf("%s\"%s\":{\"dialogs\":%zu,\"flagged\":%zu,\"attack\":%s,\"trained\":%s}",
                   t ? "," : "", types[t], tot[t], hit[t], attack_t[t] ? "true" : "false",
                   type_known(known, nk, types[t]) ? "true" : "false");
        printf("}}\n");
    } else {
        printf("dialog detector: %zu dialogs (Call-IDs); %zu trained types\n", c->ndlg, nk);
        printf("  detection probability (held-out types):   %7.3f%%  (%zu of %zu)\n", 100 * pd,
               held_hit, held);
        printf("  false-alarm probability (trained types):  %7.3f%%  (%zu of %zu)\n", 100 * pfa,
               kept_hit, kept);
        printf("  attack dialogs flagged:                   %7.3f%%  (%zu of %zu)\n", 100 * pa,
               att_hit, att);
        printf("  flagged at message %.1f of the dialog on average; %.3f us per message\n",
               held_hit + kept_hit + att_hit ? pos_sum / (double)(held_hit + kept_hit + att_hit)
                                             : 0,
               per_msg);
        printf("  %-28s %8s %8s %9s\n", "type", "dialogs", "flagged", "");
        for (size_t t = 0; t < nt; t++)
            printf("  %-28s %8zu %8zu %9s\n", types[t], tot[t], hit[t],
                   attack_t[t]                       ? "attack"
                   : type_known(known, nk, types[t]) ? "trained"
                                                     : "held out");
    }
    free(known);
    free(types);
}

static void report_binding(eval_ctx_t *c, bool json)
{
    size_t att = 0, att_hit = 0, norm = 0, norm_hit = 0;
    for (size_t r = 0; r < c->nrows; r++) {
        bool normal = !strcmp(c->rows[r].family, "normal");
        (normal ? &norm : &att)[0] += c->rows[r].requests;
        (normal ? &norm_hit : &att_hit)[0] += c->rows[r].flagged;
    }
    double tsum = 0;
    for (size_t i = 0; i < c->n; i++)
        tsum += c->times[i];
    double per_msg = c->n ? 1e6 * tsum / (double)c->n : 0;
    if (json) {
        printf("{\"detector\":\"binding\",\"normal_requests\":%zu,\"false_alarm_rate\":%.6f,"
               "\"attack_requests\":%zu,\"detection_rate\":%.6f,\"us_per_message\":%.3f,"
               "\"families\":{",
               norm, norm ? (double)norm_hit / (double)norm : 0, att,
               att ? (double)att_hit / (double)att : 0, per_msg);
        for (size_t r = 0; r < c->nrows; r++) {
            printf("%s\"%s\":{\"requests\":%zu,\"flagged\":%zu", r ? "," : "", c->rows[r].family,
                   c->rows[r].requests, c->rows[r].flagged);
            for (int k = 1; k < BIND_CLASSES; k++)
                printf(",\"%s\":%zu", binding_class_name((bind_class_t)k), c->rows[r].cls[k]);
            printf("}");
        }
        printf("}}\n");
        return;
    }
    printf("binding detector: requests it judged (not from infrastructure) and flagged, by "
           "family, and the mismatch class they got\n");
    printf("  normal requests flagged: %.3f%% (%zu of %zu); attack requests flagged: %.2f%% "
           "(%zu of %zu); %.3f us per message\n",
           norm ? 100.0 * (double)norm_hit / (double)norm : 0, norm_hit, norm,
           att ? 100.0 * (double)att_hit / (double)att : 0, att_hit, att, per_msg);
    printf("  %-26s %8s %8s", "family", "requests", "flagged");
    for (int k = 1; k < BIND_CLASSES; k++)
        printf(" %14s", binding_class_name((bind_class_t)k));
    printf("\n");
    for (size_t r = 0; r < c->nrows; r++) {
        printf("  %-26s %8zu %8zu", c->rows[r].family, c->rows[r].requests, c->rows[r].flagged);
        for (int k = 1; k < BIND_CLASSES; k++)
            printf(" %14zu", c->rows[r].cls[k]);
        printf("\n");
    }
}

static int context_eval(int argc, char **argv)
{
    if (argc < 2 ||
        (strcmp(argv[1], "flood") && strcmp(argv[1], "dialog") && strcmp(argv[1], "binding"))) {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            cliopt_help(&eval_cmd, stdout);
            return EXIT_OK;
        }
        fprintf(stderr, "sipguard context eval: say flood, dialog or binding\nusage: %s\n",
                eval_cmd.usage);
        return EXIT_USAGE;
    }
    bool flood = !strcmp(argv[1], "flood"), binding = !strcmp(argv[1], "binding");
    argc--;
    argv++;
    decode_opts_t dopts;
    decode_opts_default(&dopts);
    const char *model = NULL, *labels = NULL, *train_labels = NULL, *arg;
    long window = 10, step = 2, min_attack = 2;
    bool json = false, misses = false;
    const char *name;
    int status;
    while ((name = cmd_next_option(&eval_cmd, argc, argv, &arg, &dopts, NULL, &status))) {
        if (!strcmp(name, "model")) {
            model = arg;
        } else if (!strcmp(name, "labels")) {
            labels = arg;
        } else if (!strcmp(name, "train-labels")) {
            train_labels = arg;
        } else if (!strcmp(name, "window")) {
            if (cliopt_int(name, arg, 1, 100000, &window))
                return EXIT_USAGE;
        } else if (!strcmp(name, "step")) {
            if (cliopt_int(name, arg, 1, 100000, &step))
                return EXIT_USAGE;
        } else if (!strcmp(name, "min-attack")) {
            if (cliopt_int(name, arg, 1, 100000, &min_attack))
                return EXIT_USAGE;
        } else if (!strcmp(name, "json")) {
            json = true;
        } else if (!strcmp(name, "misses")) {
            misses = true;
        }
    }
    if (status >= 0)
        return status;
    bool dialog = !flood && !binding;
    if (!model || !labels || optind != argc - 1 || (dialog && !train_labels)) {
        fprintf(stderr, "sipguard context eval: %s\nusage: %s\n",
                !model               ? "-m CONTEXT is required"
                : !labels            ? "-l LABELS is required"
                : optind != argc - 1 ? "give exactly one INPUT"
                                     : "dialog needs --train-labels",
                eval_cmd.usage);
        return EXIT_USAGE;
    }
    char err[600];
    context_model_t *m = context_model_load(model, err, sizeof err);
    if (!m) {
        fprintf(stderr, "sipguard context eval: %s\n", err);
        return EXIT_FAIL;
    }
    if ((flood && !m->has_flood) || (dialog && !m->dialog) || (binding && !m->has_binding)) {
        fprintf(stderr, "sipguard context eval: %s has no %s model\n", model, argv[0]);
        context_model_destroy(&m);
        return EXIT_FAIL;
    }
    labels_t lab = {0}, tlab = {0};
    if (read_labels(labels, &lab) != 0 || (train_labels && read_labels(train_labels, &tlab) != 0)) {
        free(lab.l);
        context_model_destroy(&m);
        return EXIT_USAGE;
    }
    /* only the detector under evaluation runs */
    context_model_t only = *m;
    only.has_flood = flood;
    only.has_binding = binding;
    if (!dialog)
        only.dialog = NULL;
    sipcheck_init();
    static eval_ctx_t c; /* large: the batch */
    memset(&c, 0, sizeof c);
    c.labels = &lab;
    c.ctx = context_new(&only);
    c.flood = flood;
    c.dialog = dialog;
    c.binding = binding;
    c.misses = misses;
    int failed = 0;
    cmd_for_each_message(argv + optind, 1, &dopts, true, eval_one, &c, &failed);
    run_batch(&c);
    if (c.n != lab.n)
        fprintf(stderr, "sipguard context eval: warning: %zu messages but %zu labels\n", c.n,
                lab.n);
    if (flood)
        report_flood(&c, window, step, min_attack, json);
    else if (binding)
        report_binding(&c, json);
    else
        report_dialog(&c, &tlab, json);
    if (c.ctx) { /* the figures above are not to be trusted without it */
        context_stats_t cst;
        context_stats(c.ctx, &cst);
        context_warn(stderr, "sipguard context eval", &cst);
    }
    context_destroy(&c.ctx);
    context_model_destroy(&m);
    free(lab.l);
    free(tlab.l);
    free(c.times);
    free(c.inv);
    free(c.dlg);
    free(c.dlg_idx);
    return failed ? EXIT_INPUT : EXIT_OK;
}

int cmd_context(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "train"))
        return context_train(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "eval"))
        return context_eval(argc - 1, argv + 1);
    bool help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    fprintf(help ? stdout : stderr,
            "usage: sipguard context train -o CONTEXT.json [OPTIONS] INPUT...\n"
            "       sipguard context eval (flood|dialog|binding) -m CONTEXT.json -l LABELS "
            "[OPTIONS] INPUT\n\n"
            "The detectors that judge a message by what came before it: flood (request rates "
            "per\nsource, identity, target and overall; half-open sessions), dialog (message "
            "sequences\nper Call-ID) and binding (who registered from where). `sipguard context "
            "train --help`\nand `sipguard context eval --help` say more.\n");
    return help ? EXIT_OK : EXIT_USAGE;
}
