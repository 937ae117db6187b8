/*
 * fuzz_config: the edge's settings from any text, one "section.key=value" per line as
 * --set and the INI loader apply them, then the cross-checks and the printout; and each
 * line as a HOST:PORT; the whole text as a [verdict] allow_file, looked up with addresses
 * taken from its bytes; and as a saved ban file ([ban] file), which once read must save and
 * read back to the same bans, with each line lifted as a source. A value must be taken or
 * refused with a reason, never crash. A libFuzzer target (SIPGUARD_FUZZ=ON with clang),
 * replayed over tests/fuzz/regress/config.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <unistd.h>

#include "allowlist.h"
#include "ban.h"
#include "edge_config.h"

static void write_file(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
        abort();
}

static char *list_text(bantable_t *t, double now)
{
    json_t *l = bantable_list(t, now);
    char *s = json_dumps(l, JSON_COMPACT);
    json_decref(l);
    if (!s)
        abort();
    return s;
}

/* The bytes as a saved ban file: read, or refused with a reason; what was read saves and
 * reads back the same. */
static void ban_file(const uint8_t *data, size_t size)
{
    char path[64], again[72], err[512];
    snprintf(path, sizeof path, "/tmp/fuzz-bans-%d.json", (int)getpid());
    snprintf(again, sizeof again, "%s.saved", path);
    write_file(path, data, size);
    ban_opts_t o = {3, 60, 600, 86400, 64, 64};
    bantable_t *t = bantable_new(&o), *u = bantable_new(&o);
    if (!t || !u)
        abort();
    double now = 1.7e9;
    err[0] = '\0';
    long n = bantable_load(t, path, now, err, sizeof err);
    if (n < 0 && !err[0])
        abort();
    if (n >= 0) {
        if (bantable_save(t, again, now, err, sizeof err) != 0 ||
            bantable_load(u, again, now, err, sizeof err) != n)
            abort();
        char *a = list_text(t, now), *b = list_text(u, now);
        if (strcmp(a, b) != 0)
            abort();
        free(a);
        free(b);
    }
    char *text = strndup((const char *)data, size); /* up to the first NUL */
    if (!text)
        abort();
    for (const char *line = text; *line;) {
        const char *end = strchr(line, '\n');
        size_t len = end ? (size_t)(end - line) : strlen(line);
        char source[128];
        snprintf(source, sizeof source, "%.*s", (int)(len < 127 ? len : 127), line);
        bantable_lift(t, source);
        line += len + (end != NULL);
    }
    free(text);
    bantable_destroy(&t);
    bantable_destroy(&u);
    unlink(path);
    unlink(again);
}

/* Each line as a domain ban's source: a line allowlist_entry_valid takes is exactly one entry
 * to allowlist_parse, and every line goes to bantable_set_domain, which skips what does not
 * read and may impose no more bans than it was given. */
static void domain_bans(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    const char *lines[64];
    double until[64];
    size_t n = 0;
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    for (char *line = text, *next; line && n < 64; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        char err[300];
        if (allowlist_entry_valid(line)) {
            allowlist_t *one = allowlist_parse(line, strlen(line), "fuzz", err, sizeof err);
            if (!one || allowlist_size(one) != 1)
                abort();
            allowlist_destroy(&one);
        }
        until[n] = (double)(n % 3) * 100; /* over, running, running */
        lines[n++] = line;
    }
    ban_opts_t o = {2, 60, 600, 86400, 64, 16};
    bantable_t *t = bantable_new(&o);
    if (!t)
        abort();
    if (bantable_set_domain(t, lines, until, n, 50) > (long)n)
        abort();
    bantable_set_domain(t, lines, until, n / 2, 60);
    json_decref(bantable_list(t, 60));
    bantable_destroy(&t);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (!text)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    edge_config_t c;
    edge_config_default(&c);
    char err[512];
    for (char *line = text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        err[0] = '\0';
        if (edge_config_set(&c, line, err, sizeof err) != 0 && !err[0])
            abort(); /* a refusal must say why */
        char host[256];
        unsigned port;
        edge_split_hostport(line, host, sizeof host, &port);
    }
    edge_config_validate(&c, err, sizeof err);
    FILE *null = fopen("/dev/null", "w");
    if (null) {
        edge_config_print(&c, null, true);
        fclose(null);
    }
    err[0] = '\0';
    allowlist_t *a = allowlist_parse((const char *)data, size, "fuzz", err, sizeof err);
    if (!a && !err[0])
        abort();
    for (size_t at = 0; a && at + 17 <= size; at += 17) {
        endpoint_t ep = {.family = data[at] & 1 ? 6 : 4};
        memcpy(ep.addr, data + at + 1, 16);
        allowlist_contains(a, &ep);
    }
    allowlist_destroy(&a);
    ban_file(data, size);
    domain_bans(data, size);
    free(text);
    return 0;
}
