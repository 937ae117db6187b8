/* sipguard score: score every SIP message of the inputs against a model, as JSON Lines. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allowlist.h"
#include "ban.h"
#include "cmdutil.h"
#include "commands.h"
#include "context.h"
#include "model.h"
#include "report.h"
#include "sipcheck.h"

static const cliopt_t score_opts[] = {
    {"model", 'm', "MODEL", "model file from sipguard train (required)", NULL},
    {"explain", 'e', NULL, "add the five features that raised each score most", NULL},
    {"no-local", 0, NULL, "skip the local (k-NN) model: global score only", NULL},
    {"context", 'c', "CONTEXT",
     "also run the flood and dialog detectors of this model from sipguard context train", NULL},
    {"anomalies", 'a', NULL, "print anomalous messages only (and, with --ban, banned ones)", NULL},
    {"ban", 0, "N",
     "replay the edge's bans ([ban] after = N) in capture time: a source whose requests draw N "
     "anomalous judgements within the window is banned, and its later messages are marked "
     "\"banned\"",
     NULL},
    {"ban-window", 0, "SECONDS", "with --ban: the window ([ban] window)", "60"},
    {"ban-seconds", 0, "SECONDS", "with --ban: the first ban's length ([ban] seconds)", "600"},
    {"ban-max-seconds", 0, "SECONDS", "with --ban: the longest ban ([ban] max_seconds)", "86400"},
    {"ban-ipv6-prefix", 0, "LEN",
     "with --ban: IPv6 sources are banned by this prefix ([ban] ipv6_prefix)", "64"},
    {"allow", 0, "FILE",
     "the edge's [verdict] allow_file: its sources' messages are marked \"allowed\" (the edge "
     "answers them normal), and with --ban they are never banned",
     NULL},
    {"output", 'o', "FILE", "write JSON Lines here instead of standard output", NULL},
    CMD_INPUT_OPTIONS,
    {"quiet", 'q', NULL, "print no summary and no skip table", NULL},
    {"help", 'h', NULL, "show this help", NULL},
    {0},
};

static const clicmd_t score_cmd = {
    "sipguard score -m MODEL [OPTIONS] INPUT...",
    "Scores every SIP message of the inputs with the model's global and local models and\n"
    "prints one JSON object per message (JSON Lines): input, index, ts, src, dst, transport,\n"
    "method or status, call_id, parse_ok (parse_error when false), global, local, anomaly,\n"
    "the thresholds, and with --explain the features that pushed each score up. With\n"
    "--context, the flood and dialog detectors judge each message by the traffic before it\n"
    "(inputs in time order) and add \"flood\" and \"dialog\" to `detector` when they fire.\n"
    "With --ban, the edge's bans are replayed by the messages' capture times (IPv6 sources by\n"
    "their --ban-ipv6-prefix), so that [ban] settings can be tried on past traffic: each message "
    "gets\n"
    "\"banned\" (its source was banned when it came: the edge would have answered it banned\n"
    "without judging it, and it starts no ban; its scores are shown all the same) and, for the\n"
    "one that starts a ban, \"banned_for\" (seconds). A summary goes to standard error.",
    score_opts,
    "exit status: 0 success, 1 failure (model unreadable, write error), 2 usage error,\n"
    "3 an input could not be read (the others were scored).\n\n"
    "example: sipguard score -m edge.model --explain -a today.pcap | jq .",
};

typedef struct {
    model_scorer_t *scorer;
    context_t *ctx; /* NULL without --context */
    bool augment;   /* the model was trained with context pseudo-headers */
    uint8_t *aug;
    model_stats_t st;
    bool explain, local, anomalies_only;
    FILE *out;
    size_t messages, anomalies, parse_fail, write_errors;
    bantable_t *bans;   /* --ban: NULL without */
    allowlist_t *allow; /* --allow */
    size_t banned, bans_started;
} score_ctx_t;

static json_t *explain_array(const model_feature_t *f, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "feature", json_string(f[i].feature));
        json_object_set_new(o, "contribution", json_real(f[i].contribution));
        json_array_append_new(a, o);
    }
    return a;
}

static int score_one(void *p, const msg_t *m)
{
    score_ctx_t *c = p;
    sipinfo_t info;
    sipcheck_message(m->data, m->len, &info);
    /* the edge's order: a banned source's message is answered without any detector */
    double ts = (double)m->ts_sec + m->ts_usec * 1e-6, ban_len = 0;
    bool allowed = c->allow && allowlist_contains(c->allow, &m->src);
    bool banned = c->bans && !allowed && bantable_banned(c->bans, &m->src, ts) > 0;
    context_verdict_t cv = {0};
    if (c->ctx && !banned)
        context_observe(c->ctx, m, &info, &cv);
    const uint8_t *data = m->data;
    size_t len = m->len, n;
    if (c->augment && (n = context_augment(&cv, m->data, m->len, c->aug, CONTEXT_AUG_MAX))) {
        data = c->aug;
        len = n;
    }
    model_score_t sc;
    if (model_score_message(c->scorer, data, len, c->local, &sc) != 0) {
        fprintf(stderr, "sipguard score: out of memory\n");
        return -1;
    }
    bool anomaly = sc.global_anomaly || sc.local_anomaly || cv.anomaly;
    if (c->bans && !banned && !allowed && anomaly && ban_counts(&info) &&
        (ban_len = bantable_strike(c->bans, &m->src, 1, ts)) > 0)
        c->bans_started++;
    c->messages++;
    c->anomalies += anomaly;
    c->banned += banned;
    c->parse_fail += !info.parse_ok;
    if (c->anomalies_only && !anomaly && !banned)
        return 0;
    json_t *o = report_message_fields(m, &info);
    json_object_set_new(o, "global", json_real(sc.global));
    json_object_set_new(o, "local", c->local ? json_real(sc.local) : json_null());
    json_object_set_new(o, "anomaly", json_boolean(anomaly));
    json_t *fired = json_array();
    if (sc.global_anomaly)
        json_array_append_new(fired, json_string("global"));
    if (sc.local_anomaly)
        json_array_append_new(fired, json_string("local"));
    context_report(&cv, o, fired);
    json_object_set_new(o, "detector", fired);
    json_object_set_new(o, "threshold_global", json_real(c->st.thr_global));
    json_object_set_new(o, "threshold_local", json_real(c->st.thr_local));
    if (c->bans) {
        json_object_set_new(o, "banned", json_boolean(banned));
        if (ban_len > 0)
            json_object_set_new(o, "banned_for", json_real(ban_len));
    }
    if (c->allow)
        json_object_set_new(o, "allowed", json_boolean(allowed));
    if (c->explain) {
        model_explain_t ex;
        model_explain(c->scorer, &sc, &ex);
        json_t *e = json_object();
        json_object_set_new(e, "global", explain_array(ex.global, ex.n_global));
        if (c->local)
            json_object_set_new(e, "local", explain_array(ex.local, ex.n_local));
        json_object_set_new(o, "explain", e);
    }
    if (report_write_line(o, c->out) != 0)
        c->write_errors++;
    json_decref(o);
    return c->write_errors ? -1 : 0;
}

int cmd_score(int argc, char **argv)
{
    decode_opts_t dopts;
    decode_opts_default(&dopts);
    const char *model_path = NULL, *out_path = NULL, *context_path = NULL, *arg;
    score_ctx_t c = {0};
    c.local = true;
    bool quiet = false;
    const char *allow_path = NULL;
    ban_opts_t bo = {0, 60, 600, 86400, 64, (size_t)1 << 20};
    long l;
    const char *name;
    int status;
    while ((name = cmd_next_option(&score_cmd, argc, argv, &arg, &dopts, NULL, &status))) {
        if (!strcmp(name, "model")) {
            model_path = arg;
        } else if (!strcmp(name, "explain")) {
            c.explain = true;
        } else if (!strcmp(name, "no-local")) {
            c.local = false;
        } else if (!strcmp(name, "context")) {
            context_path = arg;
        } else if (!strcmp(name, "anomalies")) {
            c.anomalies_only = true;
        } else if (!strcmp(name, "output")) {
            out_path = arg;
        } else if (!strcmp(name, "ban")) {
            if (cliopt_int(name, arg, 1, 1000000, &l))
                return EXIT_USAGE;
            bo.after = (unsigned)l;
        } else if (!strcmp(name, "ban-window")) {
            if (cliopt_double(name, arg, 0.001, 86400, &bo.window))
                return EXIT_USAGE;
        } else if (!strcmp(name, "ban-seconds")) {
            if (cliopt_double(name, arg, 0.001, 1e8, &bo.seconds))
                return EXIT_USAGE;
        } else if (!strcmp(name, "ban-max-seconds")) {
            if (cliopt_double(name, arg, 0.001, 1e9, &bo.max_seconds))
                return EXIT_USAGE;
        } else if (!strcmp(name, "ban-ipv6-prefix")) {
            if (cliopt_int(name, arg, 1, 128, &l))
                return EXIT_USAGE;
            bo.prefix6 = (unsigned)l;
        } else if (!strcmp(name, "allow")) {
            allow_path = arg;
        } else if (!strcmp(name, "quiet")) {
            quiet = true;
        }
    }
    if (status >= 0)
        return status;
    if (!model_path || optind >= argc) {
        fprintf(stderr, "sipguard score: %s\nusage: %s\n",
                model_path ? "no INPUT given" : "-m MODEL is required", score_cmd.usage);
        return EXIT_USAGE;
    }
    if (bo.after > 0 && bo.max_seconds < bo.seconds) {
        fprintf(stderr,
                "sipguard score: --ban-max-seconds (%g) is shorter than --ban-seconds (%g)\n",
                bo.max_seconds, bo.seconds);
        return EXIT_USAGE;
    }
    if ((bo.window != 60 || bo.seconds != 600 || bo.max_seconds != 86400 || bo.prefix6 != 64) &&
        bo.after == 0) {
        fprintf(stderr, "sipguard score: --ban-* go with --ban N\nusage: %s\n", score_cmd.usage);
        return EXIT_USAGE;
    }
    char err[600];
    if (allow_path && !(c.allow = allowlist_load(allow_path, err, sizeof err))) {
        fprintf(stderr, "sipguard score: %s\n", err);
        return EXIT_FAIL;
    }
    if (bo.after > 0 && !(c.bans = bantable_new(&bo))) {
        allowlist_destroy(&c.allow);
        return EXIT_FAIL;
    }
    model_t *m = model_load(model_path, err, sizeof err);
    if (!m) {
        fprintf(stderr, "sipguard score: %s\n", err);
        bantable_destroy(&c.bans);
        allowlist_destroy(&c.allow);
        return EXIT_FAIL;
    }
    if (model_advice(m))
        fprintf(stderr, "sipguard score: warning: %s: %s\n", model_path, model_advice(m));
    context_model_t *cm = NULL;
    c.augment = model_options(m)->context_headers;
    if (c.augment && !context_path) {
        fprintf(stderr,
                "sipguard score: %s was trained with context pseudo-headers: give "
                "--context with the context model it was trained with\n",
                model_path);
        model_destroy(&m);
        bantable_destroy(&c.bans);
        allowlist_destroy(&c.allow);
        return EXIT_USAGE;
    }
    if (c.augment && !(c.aug = malloc(CONTEXT_AUG_MAX))) {
        model_destroy(&m);
        bantable_destroy(&c.bans);
        allowlist_destroy(&c.allow);
        return EXIT_FAIL;
    }
    if (context_path) {
        cm = context_model_load(context_path, err, sizeof err);
        if (!cm || !(c.ctx = context_new(cm))) {
            fprintf(stderr, "sipguard score: %s\n", cm ? "out of memory" : err);
            context_model_destroy(&cm);
            model_destroy(&m);
            free(c.aug);
            bantable_destroy(&c.bans);
            allowlist_destroy(&c.allow);
            return EXIT_FAIL;
        }
    }
    sipcheck_init();
    model_stats(m, &c.st);
    c.scorer = model_scorer_new(m, c.explain);
    c.out = out_path ? fopen(out_path, "w") : stdout;
    int failed = 0, rc = EXIT_FAIL;
    if (!c.out) {
        fprintf(stderr, "sipguard score: %s: cannot open for writing\n", out_path);
        goto out;
    }
    if (!c.scorer)
        goto out;
    cmd_lines_as_they_come(c.out, argv + optind, argc - optind);
    int loop =
        cmd_for_each_message(argv + optind, argc - optind, &dopts, quiet, score_one, &c, &failed);
    if (fflush(c.out) != 0 || c.write_errors || loop != 0) {
        fprintf(stderr, "sipguard score: writing the results failed\n");
        goto out;
    }
    if (!quiet)
        fprintf(stderr, "scored %zu messages: %zu anomalous, %zu failed to parse\n", c.messages,
                c.anomalies, c.parse_fail);
    if (c.ctx) { /* even with -q: the figures above are not to be trusted without it */
        context_stats_t cst;
        context_stats(c.ctx, &cst);
        context_warn(stderr, "sipguard score", &cst);
    }
    if (!quiet && c.bans)
        fprintf(stderr, "bans: %zu started, %zu messages from banned sources\n", c.bans_started,
                c.banned);
    rc = failed ? EXIT_INPUT : EXIT_OK;
out:
    if (c.out && c.out != stdout)
        fclose(c.out);
    model_scorer_destroy(&c.scorer);
    model_destroy(&m);
    context_destroy(&c.ctx);
    context_model_destroy(&cm);
    free(c.aug);
    bantable_destroy(&c.bans);
    allowlist_destroy(&c.allow);
    return rc;
}
