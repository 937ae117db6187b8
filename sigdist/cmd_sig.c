/*
 * sipguard sig: signature tools for analysts and tests.
 *   build   anomalous messages (flagged by a model in captures, or the raw messages of edge
 *           reports) + a clean sample -> verified bilateral signatures (siggen.h)
 *   export  a signature file as JSON or YARA rules
 *   match   count the messages of captures each signature matches, as an edge would
 */
#include "cmd_sig.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmdutil.h"
#include "fsutil.h"
#include "model.h"
#include "report.h"
#include "sigdb.h"
#include "siggen.h"

static const cliopt_t build_opts[] = {
    {"model", 'm', "MODEL", "model whose embedding the signatures use (required)", NULL},
    {"clean", 0, "INPUT", "clean traffic: builds N and verifies (repeatable; required)", NULL},
    {"reports", 0, "FILE.jsonl",
     "anomaly reports of edges: their raw messages are the anomalies "
     "(repeatable)",
     NULL},
    {"all", 0, NULL,
     "take every message of the INPUTs as an anomaly (not only those the model "
     "flags)",
     NULL},
    {"output", 'o', "FILE", "signature file to write (required)", NULL},
    {"linkage", 0, "KIND", "single, complete or average linkage, or kmeans", "average"},
    {"k", 'k', "N", "clusters of kmeans", "8"},
    {"cut", 0, "D", "merge clusters while their distance (unit vectors, 0..1.41) is below", "0.6"},
    {"min-members", 0, "N", "smallest cluster that makes a signature", "5"},
    {"presence", 0, "X", "keep features present in this fraction of a cluster's members", "0.5"},
    {"max-strings", 0, "N", "strings per signature", "32"},
    {"unilateral", 0, NULL, "A alone, not A - N", NULL},
    {"tighten", 0, NULL, "raise a threshold above the clean sample instead of rejecting", NULL},
    {"sequence", 0, "N", "sequence number of the signature set", "1"},
    {"prefix", 0, "TEXT", "signature ids are PREFIX-000001 ...", "sig"},
    CMD_INPUT_OPTIONS,
    {"quiet", 'q', NULL, "print no summary", NULL},
    {"help", 'h', NULL, "show this help", NULL},
    {0},
};

static const clicmd_t build_cmd = {
    "sipguard sig build -m MODEL --clean CLEAN... -o SIGS.json [OPTIONS] [INPUT...]",
    "Clusters anomalous messages (those the model flags in the INPUTs, every message with\n"
    "--all, and the raw messages of --reports), and for each cluster of at least --min-members\n"
    "builds a bilateral signature: the mean anomaly vector over the features most members\n"
    "share, minus the mean of the clean sample. Its threshold lets every member match; it is\n"
    "then replayed over the clean sample, and any clean match rejects it (or, with --tighten,\n"
    "raises the threshold). Writes a signature file edges load ([signatures] file), with the\n"
    "rejected ones listed apart.",
    build_opts,
    "exit status: 0 success, 1 failure, 2 usage error, 3 an input could not be read.\n\n"
    "example: sipguard sig build -m edge.model --clean clean.pcap -o sigs.json attack.pcap",
};

static int read_reports(siggen_t *g, const char *path, size_t *n)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "sipguard sig build: %s: cannot open\n", path);
        return -1;
    }
    char *line = NULL;
    size_t cap = 0, lineno = 0, skipped = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) > 0) {
        lineno++;
        json_error_t je;
        json_t *o = json_loadb(line, (size_t)len, JSON_ALLOW_NUL, &je);
        json_t *raw = json_object_get(o, "raw");
        if (!json_is_string(raw)) {
            skipped++;
            json_decref(o);
            continue;
        }
        size_t rl = json_string_length(raw);
        uint8_t *b = malloc(rl + 1);
        size_t bl = report_raw_bytes(json_string_value(raw), rl, b);
        siggen_add_anomaly(g, b, bl);
        (*n)++;
        free(b);
        json_decref(o);
    }
    free(line);
    fclose(f);
    if (skipped)
        fprintf(stderr,
                "sipguard sig build: %s: %zu of %zu lines are not reports with a raw "
                "message (skipped)\n",
                path, skipped, lineno);
    return 0;
}

typedef struct {
    siggen_t *g;
    model_scorer_t *scorer;
    bool all, clean;
    size_t anomalies, cleans;
} build_ctx_t;

static int build_one(void *p, const msg_t *m)
{
    build_ctx_t *c = p;
    if (c->clean) {
        c->cleans++;
        return siggen_add_clean(c->g, m->data, m->len);
    }
    if (!c->all) {
        model_score_t sc;
        if (model_score_message(c->scorer, m->data, m->len, true, &sc) != 0)
            return -1;
        if (!sc.global_anomaly && !sc.local_anomaly)
            return 0;
    }
    c->anomalies++;
    return siggen_add_anomaly(c->g, m->data, m->len);
}

static int sig_build(int argc, char **argv)
{
    decode_opts_t dopts;
    decode_opts_default(&dopts);
    siggen_opts_t so;
    siggen_opts_default(&so);
    const char *model = NULL, *out = NULL, *prefix = "sig", *arg;
    char *clean[64], *reports[64];
    int nclean = 0, nreports = 0, status;
    const char *name;
    bool all = false, quiet = false;
    long n, seq = 1;
    while ((name = cmd_next_option(&build_cmd, argc, argv, &arg, &dopts, NULL, &status))) {
        if (!strcmp(name, "model")) {
            model = arg;
        } else if (!strcmp(name, "clean") && nclean < 64) {
            clean[nclean++] = (char *)arg;
        } else if (!strcmp(name, "reports") && nreports < 64) {
            reports[nreports++] = (char *)arg;
        } else if (!strcmp(name, "all")) {
            all = true;
        } else if (!strcmp(name, "output")) {
            out = arg;
        } else if (!strcmp(name, "linkage")) {
            if (siggen_parse_linkage(arg, &so.linkage) != 0) {
                fprintf(stderr, "sipguard sig build: --linkage: expected single, complete, "
                                "average or kmeans\n");
                return EXIT_USAGE;
            }
        } else if (!strcmp(name, "k")) {
            if (cliopt_int("k", arg, 1, 10000, &n))
                return EXIT_USAGE;
            so.k = (size_t)n;
        } else if (!strcmp(name, "cut")) {
            if (cliopt_double("cut", arg, 0, 2, &so.cut))
                return EXIT_USAGE;
        } else if (!strcmp(name, "min-members")) {
            if (cliopt_int("min-members", arg, 1, 1000000, &n))
                return EXIT_USAGE;
            so.min_members = (size_t)n;
        } else if (!strcmp(name, "presence")) {
            if (cliopt_double("presence", arg, 0, 1, &so.presence))
                return EXIT_USAGE;
        } else if (!strcmp(name, "max-strings")) {
            if (cliopt_int("max-strings", arg, 1, 1000, &n))
                return EXIT_USAGE;
            so.max_strings = (size_t)n;
        } else if (!strcmp(name, "unilateral")) {
            so.bilateral = false;
        } else if (!strcmp(name, "tighten")) {
            so.tighten = true;
        } else if (!strcmp(name, "sequence")) {
            if (cliopt_int("sequence", arg, 1, 1L << 62, &seq))
                return EXIT_USAGE;
        } else if (!strcmp(name, "prefix")) {
            prefix = arg;
        } else if (!strcmp(name, "quiet")) {
            quiet = true;
        }
    }
    if (status >= 0)
        return status;
    if (!model || !out || !nclean || (optind >= argc && !nreports)) {
        fprintf(stderr, "sipguard sig build: %s\nusage: %s\n",
                !model    ? "-m MODEL is required"
                : !out    ? "-o FILE is required"
                : !nclean ? "--clean INPUT is required (signatures are verified on it)"
                          : "no anomalies: give INPUTs or --reports",
                build_cmd.usage);
        return EXIT_USAGE;
    }
    char err[600];
    model_t *m = model_load(model, err, sizeof err);
    if (!m) {
        fprintf(stderr, "sipguard sig build: %s\n", err);
        return EXIT_FAIL;
    }
    if (model_advice(m))
        fprintf(stderr, "sipguard sig build: warning: %s: %s\n", model, model_advice(m));
    build_ctx_t c = {
        siggen_new(&model_options(m)->embed, &so), model_scorer_new(m, false), all, false, 0, 0};
    int rc = EXIT_FAIL, failed = 0;
    if (!c.g) {
        fprintf(stderr, "sipguard sig build: the model embeds tokens; signatures need byte "
                        "n-grams\n");
        goto done;
    }
    for (int k = 0; k < nreports; k++)
        if (read_reports(c.g, reports[k], &c.anomalies) != 0)
            failed++;
    if (cmd_for_each_message(argv + optind, argc - optind, &dopts, quiet, build_one, &c, &failed) !=
        0)
        goto done;
    c.clean = true;
    if (cmd_for_each_message(clean, nclean, &dopts, quiet, build_one, &c, &failed) != 0)
        goto done;
    json_t *doc = siggen_build(c.g, (uint64_t)seq, prefix, false);
    char werr[4400];
    /* whole: an edge reloading the file never reads half a set, and a failed write leaves
     * the previous one */
    if (wholefile_write_json(doc, out, JSON_INDENT(1), werr, sizeof werr) != 0) {
        fprintf(stderr, "sipguard sig build: %s\n", werr);
        json_decref(doc);
        goto done;
    }
    if (!quiet)
        fprintf(stderr,
                "%zu anomalies, %zu clean messages: %zu signatures passed verification, "
                "%zu rejected\n",
                c.anomalies, c.cleans, json_array_size(json_object_get(doc, "signatures")),
                json_array_size(json_object_get(doc, "rejected")));
    json_decref(doc);
    rc = failed ? EXIT_INPUT : EXIT_OK;
done:
    siggen_destroy(&c.g);
    model_scorer_destroy(&c.scorer);
    model_destroy(&m);
    return rc;
}

/* ------------------------------------------------------------------ export, match */

static const cliopt_t export_opts[] = {
    {"format", 'f', "FORMAT", "json (what edges load) or yara", "json"},
    {"help", 'h', NULL, "show this help", NULL},
    {0},
};

static const clicmd_t export_cmd = {
    "sipguard sig export [--format json|yara] SIGS.json",
    "Writes the verified signatures of a signature file to standard output, as JSON (what\n"
    "edges load) or as YARA rules (the strings of each signature that occur in raw messages;\n"
    "a rule matches when a message holds more of them than any clean message did).",
    export_opts,
    "exit status: 0 success, 1 failure (the file cannot be read or holds no signature set),\n"
    "2 usage error.\n\n"
    "example: sipguard sig export --format yara sigs.json > sipguard.yar",
};

static int sig_export(int argc, char **argv)
{
    const char *format = "json", *arg, *name;
    int status;
    while ((name = cmd_next_option(&export_cmd, argc, argv, &arg, NULL, NULL, &status)))
        if (!strcmp(name, "format"))
            format = arg;
    if (status >= 0)
        return status;
    if (optind + 1 != argc || (strcmp(format, "json") && strcmp(format, "yara"))) {
        fprintf(stderr, "sipguard sig export: %s\nusage: %s\n",
                optind + 1 != argc ? "give one SIGS.json" : "--format: expected json or yara",
                export_cmd.usage);
        return EXIT_USAGE;
    }
    const char *path = argv[optind];
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    if (!doc) {
        char why[600];
        json_file_error(why, sizeof why, path, &je);
        fprintf(stderr, "sipguard sig export: %s\n", why);
        return EXIT_FAIL;
    }
    char err[300];
    int rc = EXIT_OK;
    if (!strcmp(format, "yara")) {
        if (siggen_export_yara(doc, stdout, err, sizeof err) != 0) {
            fprintf(stderr, "sipguard sig export: %s: %s\n", path, err);
            rc = EXIT_FAIL;
        }
    } else {
        json_object_del(doc, "rejected");
        json_dumpf(doc, stdout, JSON_INDENT(1));
        putchar('\n');
    }
    json_decref(doc);
    return rc;
}

typedef struct {
    model_scorer_t *scorer;
    sigdb_t *db;
    sigscratch_t *sc;
    size_t messages, matched, *per_sig;
    const char *write_dir; /* each message as a file, for other tools (yara) */
} match_ctx_t;

static int match_one(void *p, const msg_t *m)
{
    match_ctx_t *c = p;
    embed_t *e = model_scorer_embed(c->scorer);
    sparse_t *v = (sparse_t *)model_scorer_vector(c->scorer);
    if (embed_message(e, m->data, m->len, v) != 0)
        return -1;
    size_t len;
    const uint8_t *bytes = embed_last_bytes(e, &len);
    sig_matches_t r;
    c->messages++;
    bool hit = sigdb_match(c->db, c->sc, bytes, len, v, &r) > 0;
    if (hit) {
        c->matched++;
        for (int i = 0; i < r.n; i++)
            c->per_sig[r.index[i]]++;
    }
    if (c->write_dir) {
        char path[600];
        snprintf(path, sizeof path, "%s/%06zu-%s.sip", c->write_dir, c->messages,
                 hit ? "match" : "none");
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(m->data, 1, m->len, f) != m->len || fclose(f) != 0) {
            fprintf(stderr, "sipguard sig match: %s: cannot write\n", path);
            return -1;
        }
    }
    return 0;
}

static const cliopt_t match_opts[] = {
    {"sigs", 's', "SIGS.json", "signature file (required)", NULL},
    {"model", 'm', "MODEL", "model whose embedding the signatures use (required)", NULL},
    {"write", 0, "DIR",
     "also write each message to DIR/NNNNNN-match.sip or -none.sip, in the order read (DIR is made "
     "if missing), for other tools, e.g. yara",
     NULL},
    CMD_INPUT_OPTIONS,
    {"help", 'h', NULL, "show this help", NULL},
    {0},
};

static const clicmd_t match_cmd = {
    "sipguard sig match -s SIGS.json -m MODEL [--write DIR] INPUT...",
    "Counts the messages each signature matches, as an edge matches them inline. Prints\n"
    "\"messages N matched M\" and one line per signature: its id and how many messages it\n"
    "matched.",
    match_opts,
    "exit status: 0 success, 1 failure, 2 usage error, 3 an input could not be read.\n\n"
    "example: sipguard sig match -s sigs.json -m edge.model attack.pcap",
};

static int sig_match(int argc, char **argv)
{
    const char *sigs = NULL, *model = NULL, *write_dir = NULL, *arg, *name;
    decode_opts_t dopts;
    decode_opts_default(&dopts);
    int status;
    while ((name = cmd_next_option(&match_cmd, argc, argv, &arg, &dopts, NULL, &status))) {
        if (!strcmp(name, "sigs"))
            sigs = arg;
        else if (!strcmp(name, "model"))
            model = arg;
        else if (!strcmp(name, "write"))
            write_dir = arg;
    }
    if (status >= 0)
        return status;
    if (!sigs || !model || optind >= argc) {
        fprintf(stderr, "sipguard sig match: %s\nusage: %s\n",
                !sigs || !model ? "-s SIGS.json and -m MODEL are required" : "no INPUT given",
                match_cmd.usage);
        return EXIT_USAGE;
    }
    int first = optind;
    char err[600];
    model_t *m = model_load(model, err, sizeof err);
    if (!m) {
        fprintf(stderr, "sipguard sig match: %s\n", err);
        return EXIT_FAIL;
    }
    if (model_advice(m))
        fprintf(stderr, "sipguard sig match: warning: %s: %s\n", model, model_advice(m));
    if (write_dir && mkdir_p(write_dir, 0755) != 0) {
        fprintf(stderr, "sipguard sig match: %s: cannot create the directory: %s\n", write_dir,
                strerror(errno));
        model_destroy(&m);
        return EXIT_FAIL;
    }
    match_ctx_t c = {model_scorer_new(m, false), NULL, NULL, 0, 0, NULL, write_dir};
    c.db = sigdb_load(sigs, &model_options(m)->embed, err, sizeof err);
    int rc = EXIT_FAIL, failed = 0;
    if (!c.db) {
        fprintf(stderr, "sipguard sig match: %s\n", err);
        goto done;
    }
    c.sc = sigdb_scratch_new(c.db);
    c.per_sig = calloc(sigdb_count(c.db) + 1, sizeof *c.per_sig);
    if (cmd_for_each_message(argv + first, argc - first, &dopts, true, match_one, &c, &failed) != 0)
        goto done;
    printf("messages %zu matched %zu\n", c.messages, c.matched);
    for (size_t i = 0; i < sigdb_count(c.db); i++)
        printf("%s %zu\n", sigdb_id(c.db, (int)i), c.per_sig[i]);
    rc = failed ? EXIT_INPUT : EXIT_OK;
done:
    free(c.per_sig);
    sigdb_scratch_destroy(&c.sc);
    sigdb_destroy(&c.db);
    model_scorer_destroy(&c.scorer);
    model_destroy(&m);
    return rc;
}

int cmd_sig(int argc, char **argv)
{
    if (argc >= 2 && !strcmp(argv[1], "build"))
        return sig_build(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "export"))
        return sig_export(argc - 1, argv + 1);
    if (argc >= 2 && !strcmp(argv[1], "match"))
        return sig_match(argc - 1, argv + 1);
    bool help = argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"));
    fprintf(help ? stdout : stderr,
            "usage: sipguard sig build -m MODEL --clean CLEAN... -o SIGS.json [INPUT...]\n"
            "       sipguard sig export [--format json|yara] SIGS.json\n"
            "       sipguard sig match -s SIGS.json -m MODEL INPUT...\n\n"
            "Signatures from anomalies (docs/signatures.md): build clusters anomalous messages "
            "and\nmakes verified bilateral signatures; export writes them as JSON or YARA; "
            "match counts\nwhat they match. Each has --help.\n");
    return help ? EXIT_OK : EXIT_USAGE;
}
