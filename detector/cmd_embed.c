/* sipguard embed: write the sparse vector of every message (libsvm or JSON Lines). */
#include <inttypes.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmdutil.h"
#include "commands.h"
#include "report.h"

static const cliopt_t embed_cmd_opts[] = {
    CMD_EMBED_OPTIONS,
    {"format", 0, "FMT", "libsvm (label index:value ...) or json (one object per message)",
     "libsvm"},
    {"label", 0, "N", "class label written at the start of each libsvm line", "0"},
    CMD_INPUT_OPTIONS,
    {"quiet", 'q', NULL, "print no skip table", NULL},
    {"help", 'h', NULL, "show this help", NULL},
    {0},
};

static const clicmd_t embed_cmd = {
    "sipguard embed [OPTIONS] INPUT...",
    "Writes the embedding of every SIP message to standard output, in the same settings the\n"
    "models use, so results can be checked against other tools (sally, LIBSVM, scikit-learn's\n"
    "load_svmlight_file) or fed to them. In libsvm format the index of a feature is its\n"
    "64-bit key plus one (for n-grams the key is the n bytes, little-endian; for tokens the\n"
    "XXH3-64 hash shifted right by one); indices ascend. JSON adds readable feature names.",
    embed_cmd_opts,
    "exit status: 0 success, 1 write error, 2 usage error, 3 an input could not be read.",
};

typedef struct {
    embed_t *e;
    sparse_t *v;
    bool json;
    long label;
    FILE *out;
    int write_error;
    char *line; /* a libsvm line being formatted */
    size_t line_cap;
} embed_ctx_t;

/* Writes v in decimal at p, two digits a step (an index of a 4-gram has ten); returns the end. */
static char *put_u64(char *p, uint64_t v)
{
    static const char pairs[201] = "00010203040506070809101112131415161718192021222324252627282930"
                                   "31323334353637383940414243444546474849505152535455565758596061"
                                   "62636465666768697071727374757677787980818283848586878889909192"
                                   "93949596979899";
    char digits[20];
    int n = 20;
    while (v >= 100) {
        const char *d = pairs + 2 * (v % 100);
        v /= 100;
        digits[--n] = d[1];
        digits[--n] = d[0];
    }
    if (v >= 10) {
        digits[--n] = pairs[2 * v + 1];
        digits[--n] = pairs[2 * v];
    } else {
        digits[--n] = (char)('0' + v);
    }
    memcpy(p, digits + n, (size_t)(20 - n));
    return p + (20 - n);
}

/* Writes v as 16 lower-case hex digits and a NUL (what "%016" PRIx64 writes). */
static void put_hex16(char out[17], uint64_t v)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = 15; i >= 0; i--, v >>= 4)
        out[i] = hex[v & 15];
    out[16] = '\0';
}

/* The most a libsvm entry takes: " ", a 20-digit index, ":", and %.10g of a double (at most
 * "-1.234567891e-308", 17 bytes) */
#define LIBSVM_ENTRY_MAX 40

/*
 * One libsvm line, formatted in memory and written at once. Values are written as "%.10g"
 * writes them, but counts (whole numbers below 1e10, which %.10g writes as plain digits) are
 * formatted as integers: printf's floating-point formatting took about 80 % of `embed`.
 */
static int write_libsvm_line(embed_ctx_t *c)
{
    const sparse_t *v = c->v;
    size_t need = 32 + v->n * LIBSVM_ENTRY_MAX;
    if (need > c->line_cap) {
        char *l = realloc(c->line, need);
        if (!l)
            return -1;
        c->line = l;
        c->line_cap = need;
    }
    char *p = c->line + snprintf(c->line, 32, "%ld", c->label);
    for (size_t i = 0; i < v->n; i++) {
        double x = v->vals[i];
        *p++ = ' ';
        p = put_u64(p, v->keys[i] + 1);
        *p++ = ':';
        if (x > 0 && x < 1e10 && x == (double)(uint64_t)x) /* not -0, which %.10g signs */
            p = put_u64(p, (uint64_t)x);
        else
            p += snprintf(p, LIBSVM_ENTRY_MAX - 22, "%.10g", x);
    }
    *p++ = '\n';
    size_t len = (size_t)(p - c->line);
    return fwrite(c->line, 1, len, c->out) == len ? 0 : -1;
}

static int embed_one(void *p, const msg_t *m)
{
    embed_ctx_t *c = p;
    if (embed_message(c->e, m->data, m->len, c->v) != 0)
        return -1;
    if (!c->json) {
        c->write_error = write_libsvm_line(c) != 0;
        return c->write_error ? -1 : 0;
    }
    json_t *o = json_object();
    json_object_set_new(o, "input", json_string(m->input ? m->input : ""));
    json_object_set_new(o, "index", json_integer((json_int_t)m->index));
    json_object_set_new(o, "norm2", json_real(c->v->norm2));
    json_t *feats = json_array();
    for (size_t i = 0; i < c->v->n; i++) {
        char name[96], key[24];
        embed_feature_name(c->e, c->v->keys[i], name, sizeof name);
        put_hex16(key, c->v->keys[i]);
        json_t *f = json_array();
        json_array_append_new(f, json_string(key));
        json_array_append_new(f, json_string(name));
        json_array_append_new(f, json_real(c->v->vals[i]));
        json_array_append_new(feats, f);
    }
    json_object_set_new(o, "features", feats);
    c->write_error = report_write_line(o, c->out) != 0;
    json_decref(o);
    return c->write_error ? -1 : 0;
}

int cmd_embed(int argc, char **argv)
{
    embed_opts_t eo;
    embed_opts_default(&eo);
    decode_opts_t dopts;
    decode_opts_default(&dopts);
    embed_ctx_t c = {0};
    c.out = stdout;
    bool quiet = false;
    const char *arg;
    int i;
    while ((i = cliopt_next(&embed_cmd, argc, argv, &arg)) != -1) {
        if (i == -2)
            return EXIT_USAGE;
        const char *name = embed_cmd_opts[i].name;
        int r = cmd_embed_option(name, arg, &eo);
        if (r == 0)
            r = cmd_input_option(name, arg, &dopts);
        if (r < 0)
            return EXIT_USAGE;
        if (r > 0)
            continue;
        if (!strcmp(name, "help")) {
            cliopt_help(&embed_cmd, stdout);
            return EXIT_OK;
        } else if (!strcmp(name, "format")) {
            if (strcmp(arg, "libsvm") && strcmp(arg, "json")) {
                fprintf(stderr, "sipguard embed: --format: expected libsvm or json, got '%s'\n",
                        arg);
                return EXIT_USAGE;
            }
            c.json = !strcmp(arg, "json");
        } else if (!strcmp(name, "label")) {
            if (cliopt_int(name, arg, -1000000, 1000000, &c.label))
                return EXIT_USAGE;
        } else if (!strcmp(name, "quiet")) {
            quiet = true;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "sipguard embed: no INPUT given\nusage: %s\n", embed_cmd.usage);
        return EXIT_USAGE;
    }
    c.e = embed_new(&eo);
    c.v = sparse_new();
    embed_keep_dictionary(c.e, c.json);
    int failed = 0;
    int loop =
        cmd_for_each_message(argv + optind, argc - optind, &dopts, quiet, embed_one, &c, &failed);
    int rc = failed ? EXIT_INPUT : EXIT_OK;
    if (loop != 0 || fflush(stdout) != 0) {
        fprintf(stderr, "sipguard embed: writing the vectors failed\n");
        rc = EXIT_FAIL;
    }
    embed_destroy(&c.e);
    sparse_destroy(&c.v);
    free(c.line);
    return rc;
}
