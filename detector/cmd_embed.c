/* sipguard embed: write the sparse vector of every message (libsvm or JSON Lines). */
#include <inttypes.h>
#include <getopt.h>
#include <math.h>
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
    char *line; /* a libsvm or JSON line being formatted */
    size_t line_cap;
    char *input;      /* the input whose name is in input_json (a copy: names are freed) */
    char *input_json; /* ,"input":"..." as jansson writes it, or "" (not UTF-8) */
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

/* Makes room for need bytes in the line buffer. Returns 0 or -1. */
static int line_room(embed_ctx_t *c, size_t need)
{
    if (need <= c->line_cap)
        return 0;
    char *l = realloc(c->line, need);
    if (!l)
        return -1;
    c->line = l;
    c->line_cap = need;
    return 0;
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
    if (line_room(c, 32 + v->n * LIBSVM_ENTRY_MAX) != 0)
        return -1;
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

/* The most a JSON real takes: %.10g of a double (17 bytes), ".0", a NUL. */
#define JSON_REAL_MAX 24

/*
 * A double as jansson writes a real with JSON_REAL_PRECISION(10): "%.10g", then ".0" when
 * that has neither a point nor an exponent, and the exponent without "+" or leading zeros.
 * Counts take the short way (digits and ".0").
 */
static char *put_json_real(char *p, double x)
{
    if (x > 0 && x < 1e10 && x == (double)(uint64_t)x) {
        p = put_u64(p, (uint64_t)x);
        memcpy(p, ".0", 2);
        return p + 2;
    }
    if (!isfinite(x)) { /* not JSON (jansson refused it); no embedding makes one */
        memcpy(p, "null", 4);
        return p + 4;
    }
    char b[JSON_REAL_MAX];
    int n = snprintf(b, sizeof b, "%.10g", x);
    if (n < 0 || n >= (int)sizeof b - 2)
        n = 0;
    b[n] = '\0';
    char *e = strchr(b, 'e');
    if (!e && !strchr(b, '.')) {
        memcpy(b + n, ".0", 3);
        n += 2;
    } else if (e) {
        char *digits = e + 1 + (e[1] == '-'), *from = e + 1;
        from += *from == '+' || *from == '-';
        while (*from == '0' && from[1])
            from++;
        memmove(digits, from, strlen(from) + 1);
        n = (int)strlen(b);
    }
    memcpy(p, b, (size_t)n);
    return p + n;
}

/* A feature name (printable ASCII, which embed_feature_name writes) as a JSON string. */
static char *put_json_name(char *p, const char *s)
{
    *p++ = '"';
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            *p++ = '\\';
        *p++ = *s;
    }
    *p++ = '"';
    return p;
}

/* ,"input":NAME as jansson writes it (ASCII, \u escapes), once per input; nothing for a name
 * that is not UTF-8, which jansson leaves out. */
static int input_field(embed_ctx_t *c, const char *input)
{
    input = input ? input : "";
    if (c->input_json && !strcmp(c->input, input))
        return 0;
    free(c->input_json);
    free(c->input);
    c->input_json = NULL;
    if (!(c->input = strdup(input)))
        return -1;
    json_t *name = json_string(input);
    char *text = name ? json_dumps(name, JSON_ENCODE_ANY | JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
    json_decref(name);
    size_t len = text ? strlen(text) : 0;
    c->input_json = malloc(len + 16);
    if (c->input_json)
        snprintf(c->input_json, len + 16, "%s%s", text ? "\"input\":" : "", text ? text : "");
    free(text);
    return c->input_json ? 0 : -1;
}

/*
 * One JSON line, formatted in memory and written at once, byte for byte what jansson wrote
 * (report_write_line: compact, ASCII, ten significant digits): building a jansson object a
 * message, with an array and three values a feature, held `embed --format json` at about
 * 2,800 messages a second.
 */
static int write_json_line(embed_ctx_t *c, const msg_t *m)
{
    const sparse_t *v = c->v;
    if (input_field(c, m->input) != 0)
        return -1;
    size_t input_len = strlen(c->input_json);
    /* a feature: ["16 hex digits","name escaped (at most twice 96 bytes)",real], */
    if (line_room(c, 96 + input_len + JSON_REAL_MAX + v->n * (24 + 2 * 96 + JSON_REAL_MAX)) != 0)
        return -1;
    char *p = c->line;
    *p++ = '{';
    memcpy(p, c->input_json, input_len);
    p += input_len;
    p += sprintf(p, "%s\"index\":%" PRIu64 ",\"norm2\":", input_len ? "," : "", (uint64_t)m->index);
    p = put_json_real(p, v->norm2);
    memcpy(p, ",\"features\":[", 13);
    p += 13;
    for (size_t i = 0; i < v->n; i++) {
        char name[96], key[24];
        embed_feature_name(c->e, v->keys[i], name, sizeof name);
        put_hex16(key, v->keys[i]);
        if (i)
            *p++ = ',';
        *p++ = '[';
        *p++ = '"';
        memcpy(p, key, 16);
        p += 16;
        *p++ = '"';
        *p++ = ',';
        p = put_json_name(p, name);
        *p++ = ',';
        p = put_json_real(p, v->vals[i]);
        *p++ = ']';
    }
    memcpy(p, "]}\n", 3);
    p += 3;
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
    c->write_error = write_json_line(c, m) != 0;
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
    const char *name;
    int status;
    while ((name = cmd_next_option(&embed_cmd, argc, argv, &arg, &dopts, &eo, &status))) {
        if (!strcmp(name, "format")) {
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
    if (status >= 0)
        return status;
    if (optind >= argc) {
        fprintf(stderr, "sipguard embed: no INPUT given\nusage: %s\n", embed_cmd.usage);
        return EXIT_USAGE;
    }
    c.e = embed_new(&eo);
    c.v = sparse_new();
    embed_keep_dictionary(c.e, c.json);
    int failed = 0;
    cmd_lines_as_they_come(stdout, argv + optind, argc - optind);
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
    free(c.input_json);
    free(c.input);
    return rc;
}
