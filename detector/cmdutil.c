#include "cmdutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "input.h"

int cmd_embed_option(const char *name, const char *arg, embed_opts_t *o)
{
    if (strcmp(name, "feature") == 0) {
        if (embed_opts_parse_feature(o, arg) != 0) {
            fprintf(stderr, "sipguard: --feature: expected ngram:N (1..8) or token, got '%s'\n",
                    arg);
            return -1;
        }
    } else if (strcmp(name, "binary") == 0) {
        o->binary = true;
    } else if (strcmp(name, "norm") == 0) {
        if (embed_opts_parse_norm(o, arg) != 0) {
            fprintf(stderr, "sipguard: --norm: expected none, l1 or l2, got '%s'\n", arg);
            return -1;
        }
    } else if (strcmp(name, "no-shape") == 0) {
        o->shape = EMBED_SHAPE_NONE;
    } else if (strcmp(name, "shape") == 0) {
        if (embed_opts_parse_shape(o, arg) != 0) {
            fprintf(stderr, "sipguard: --shape: expected none, fields or all, got '%s'\n", arg);
            return -1;
        }
    } else if (strcmp(name, "no-header-norm") == 0) {
        o->header_norm = false;
    } else if (strcmp(name, "delimiters") == 0) {
        embed_opts_set_delimiters(o, arg);
    } else {
        return 0;
    }
    return 1;
}

int cmd_input_option(const char *name, const char *arg, decode_opts_t *o)
{
    long v;
    if (strcmp(name, "sip-ports") == 0) {
        unsigned lo, hi;
        char extra;
        if (sscanf(arg, "%u-%u%c", &lo, &hi, &extra) != 2 || lo > hi || hi > 65535) {
            fprintf(stderr, "sipguard: --sip-ports: expected LO-HI (e.g. 5060-5090), got '%s'\n",
                    arg);
            return -1;
        }
        o->port_lo = (uint16_t)lo;
        o->port_hi = (uint16_t)hi;
    } else if (strcmp(name, "no-sniff") == 0) {
        o->sniff = false;
    } else if (strcmp(name, "keep-copies") == 0) {
        o->keep_copies = true;
    } else if (strcmp(name, "hep-port") == 0) {
        if (cliopt_int(name, arg, 1, 65535, &v) != 0)
            return -1;
        o->hep_port = (uint16_t)v;
    } else if (strcmp(name, "max-message") == 0) {
        if (cliopt_int(name, arg, 512, 16 << 20, &v) != 0)
            return -1;
        o->max_msg = (size_t)v;
    } else if (strcmp(name, "tcp-streams") == 0) {
        if (cliopt_int(name, arg, 1, 1 << 24, &v) != 0)
            return -1;
        o->tcp_streams = (int)v;
    } else if (strcmp(name, "tcp-memory") == 0) {
        if (cliopt_int(name, arg, 1, 1 << 20, &v) != 0)
            return -1;
        o->tcp_memory = (size_t)v << 20;
    } else {
        return 0;
    }
    return 1;
}

const char *cmd_next_option(const clicmd_t *cmd, int argc, char **argv, const char **arg,
                            decode_opts_t *dopts, embed_opts_t *eo, int *status)
{
    for (;;) {
        int i = cliopt_next(cmd, argc, argv, arg);
        *status = i == -1 ? -1 : EXIT_USAGE;
        if (i < 0)
            return NULL;
        const char *name = cmd->opts[i].name;
        if (!strcmp(name, "help")) {
            cliopt_help(cmd, stdout);
            *status = EXIT_OK;
            return NULL;
        }
        int r = eo ? cmd_embed_option(name, *arg, eo) : 0;
        if (r == 0 && dopts)
            r = cmd_input_option(name, *arg, dopts);
        if (r < 0)
            return NULL;
        if (r == 0)
            return name;
    }
}

void cmd_print_model_summary(FILE *out, const char *lead, const char *name, const model_opts_t *mo,
                             const model_stats_t *st)
{
    char feat[32];
    embed_opts_feature_name(&mo->embed, feat, sizeof feat);
    fprintf(out,
            "%s%s%s: %zu messages (%zu held out for calibration), %zu distinct vectors, "
            "%zu features (%s%s%s)\n"
            "global: SVDD nu=%g, %d solver iterations, duality gap %.3g; threshold %.6g\n"
            "local: k=%d%s; threshold %.6g (target FPR %g)\n",
            lead ? lead : "", lead ? " " : "", name, st->messages + st->holdout, st->holdout,
            st->distinct, st->dim, feat, mo->embed.shape ? ", shaped: " : "",
            mo->embed.shape ? embed_shape_name(mo->embed.shape) : "", mo->nu, st->svdd_iterations,
            st->svdd_gap, st->thr_global, mo->k, mo->local_norm ? ", divided by |m(z)|" : "",
            st->thr_local, mo->fpr);
}

void cmd_lines_as_they_come(FILE *out, char **paths, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(paths[i], INPUT_STDIN) == 0) {
            setvbuf(out, NULL, _IOLBF, 0);
            return;
        }
}

int cmd_for_each_message(char **paths, int n, const decode_opts_t *o, bool quiet, cmd_message_fn fn,
                         void *ctx, int *failed_inputs)
{
    for (int i = 0; i < n; i++) {
        char err[600];
        input_t *in = input_open(paths[i], o, err, sizeof err);
        if (!in) {
            fprintf(stderr, "sipguard: %s\n", err);
            (*failed_inputs)++;
            continue;
        }
        msg_t m;
        int rc;
        while ((rc = input_next(in, &m)) == 1) {
            if (fn(ctx, &m) != 0) {
                input_close(&in);
                return -1;
            }
        }
        if (rc < 0) {
            fprintf(stderr, "sipguard: %s: %s\n", paths[i], input_error(in));
            (*failed_inputs)++;
        }
        if (!quiet)
            skips_print(input_skips(in), paths[i], stderr);
        input_close(&in);
    }
    return 0;
}
