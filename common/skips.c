#include "skips.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static void skips_add_n(skips_t *s, const char *reason, uint64_t n)
{
    for (int i = 0; i < s->n; i++) {
        if (strcmp(s->reason[i], reason) == 0) {
            s->count[i] += n;
            return;
        }
    }
    if (s->n == SKIPS_MAX) {
        s->other += n;
        return;
    }
    s->reason[s->n] = strdup(reason);
    if (!s->reason[s->n]) {
        s->other += n;
        return;
    }
    s->count[s->n++] = n;
}

void skips_add(skips_t *s, const char *fmt, ...)
{
    char buf[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    skips_add_n(s, buf, 1);
}

uint64_t skips_total(const skips_t *s)
{
    uint64_t t = s->other;
    for (int i = 0; i < s->n; i++)
        t += s->count[i];
    return t;
}

uint64_t skips_count(const skips_t *s, const char *reason)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->reason[i], reason) == 0)
            return s->count[i];
    return 0;
}

void skips_merge(skips_t *dst, const skips_t *src)
{
    for (int i = 0; i < src->n; i++)
        skips_add_n(dst, src->reason[i], src->count[i]);
    dst->other += src->other;
}

void skips_print(const skips_t *s, const char *input, FILE *out)
{
    if (skips_total(s) == 0)
        return;
    fprintf(out, "%s: skipped:\n", input);
    for (int i = 0; i < s->n; i++)
        fprintf(out, "  %10llu  %s\n", (unsigned long long)s->count[i], s->reason[i]);
    if (s->other)
        fprintf(out, "  %10llu  (other reasons)\n", (unsigned long long)s->other);
}

void skips_free(skips_t *s)
{
    for (int i = 0; i < s->n; i++)
        free(s->reason[i]);
    memset(s, 0, sizeof *s);
}
