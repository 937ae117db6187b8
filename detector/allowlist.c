#include "allowlist.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* An address as a 128-bit number (IPv4 in the low 32 bits), so one compare serves both. */
typedef struct {
    uint64_t hi, lo;
} key_t128;

typedef struct {
    key_t128 key; /* masked to len */
    int len;
} entry_t;

/* One family's entries sorted by (length, longest first; key): the j-th length in use,
 * lens[j], has keys[begin[j] .. end[j]), searched by halves. */
typedef struct {
    int bits; /* 32 or 128 */
    key_t128 *keys;
    size_t n;
    int lens[129], nlens;
    size_t begin[129], end[129];
} table_t;

struct allowlist {
    table_t v4, v6;
    size_t n;
};

#define MAX_LINE 256

static void key_bytes(key_t128 k, int bits, uint8_t *out);

static key_t128 mask_key(key_t128 k, int len, int bits)
{
    if (bits == 32) {
        k.lo &= len == 0 ? 0 : (0xffffffffULL << (32 - len)) & 0xffffffffULL;
        return k;
    }
    if (len <= 64) {
        k.hi &= len == 0 ? 0 : ~0ULL << (64 - len);
        k.lo = 0;
    } else {
        k.lo &= ~0ULL << (128 - len);
    }
    return k;
}

static int key_cmp(key_t128 a, key_t128 b)
{
    if (a.hi != b.hi)
        return a.hi < b.hi ? -1 : 1;
    return a.lo < b.lo ? -1 : a.lo > b.lo;
}

static int entry_cmp(const void *pa, const void *pb)
{
    const entry_t *a = pa, *b = pb;
    return a->len != b->len ? (a->len > b->len ? -1 : 1) : key_cmp(a->key, b->key);
}

static key_t128 key_of(const uint8_t *addr, int bits)
{
    key_t128 k = {0, 0};
    if (bits == 32) {
        k.lo = (uint64_t)addr[0] << 24 | (uint64_t)addr[1] << 16 | (uint64_t)addr[2] << 8 | addr[3];
        return k;
    }
    for (int i = 0; i < 8; i++) {
        k.hi = k.hi << 8 | addr[i];
        k.lo = k.lo << 8 | addr[8 + i];
    }
    return k;
}

/* Sorts a family's entries, drops repeats and indexes the lengths in use. */
static int build_table(table_t *t, entry_t *e, size_t n, int bits)
{
    t->bits = bits;
    if (n)
        qsort(e, n, sizeof *e, entry_cmp); /* e is NULL when there are none */
    t->keys = malloc((n ? n : 1) * sizeof *t->keys);
    if (!t->keys)
        return -1;
    for (size_t i = 0; i < n; i++) {
        bool new_len = i == 0 || e[i].len != e[i - 1].len;
        if (!new_len && key_cmp(e[i].key, e[i - 1].key) == 0)
            continue; /* listed twice */
        if (new_len) {
            t->lens[t->nlens] = e[i].len;
            t->begin[t->nlens++] = t->n;
        }
        t->keys[t->n++] = e[i].key;
        t->end[t->nlens - 1] = t->n;
    }
    return 0;
}

static bool table_contains(const table_t *t, key_t128 k)
{
    for (int j = 0; j < t->nlens; j++) {
        key_t128 want = mask_key(k, t->lens[j], t->bits);
        size_t lo = t->begin[j], hi = t->end[j];
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            int c = key_cmp(t->keys[mid], want);
            if (c == 0)
                return true;
            if (c < 0)
                lo = mid + 1;
            else
                hi = mid;
        }
    }
    return false;
}

/* Parses one entry (trimmed, not empty). Returns 0, or -1 with the reason in why. */
static int parse_entry(char *s, entry_t *out, int *bits, char *why, size_t whylen)
{
    char *slash = strchr(s, '/');
    if (slash)
        *slash = '\0';
    uint8_t addr[16];
    if (inet_pton(AF_INET, s, addr) == 1) {
        *bits = 32;
    } else if (inet_pton(AF_INET6, s, addr) == 1) {
        *bits = 128;
    } else {
        snprintf(why, whylen, "'%s' is not an IPv4 or IPv6 address", s);
        return -1;
    }
    int len = *bits;
    if (slash) {
        char *end;
        errno = 0;
        long l = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end || errno || l < 0 || l > *bits) {
            snprintf(why, whylen, "'/%s' is not a prefix length of 0 to %d", slash + 1, *bits);
            return -1;
        }
        len = (int)l;
    }
    out->len = len;
    out->key = mask_key(key_of(addr, *bits), len, *bits);
    if (key_cmp(out->key, key_of(addr, *bits)) != 0) {
        uint8_t net[16] = {0};
        key_bytes(out->key, *bits, net);
        char text[INET6_ADDRSTRLEN];
        inet_ntop(*bits == 32 ? AF_INET : AF_INET6, net, text, sizeof text);
        snprintf(why, whylen, "%s/%d has host bits set (the prefix is %s/%d)", s, len, text, len);
        return -1;
    }
    return 0;
}

/* The line's entry with comments and surrounding blanks removed, or "" */
static char *trimmed(char *line)
{
    char *hash = strchr(line, '#');
    if (hash)
        *hash = '\0';
    while (*line == ' ' || *line == '\t')
        line++;
    size_t n = strlen(line);
    while (n && (line[n - 1] == ' ' || line[n - 1] == '\t' || line[n - 1] == '\r' ||
                 line[n - 1] == '\n'))
        line[--n] = '\0';
    return line;
}

typedef struct {
    entry_t *e[2]; /* IPv4, IPv6 */
    size_t n[2], cap[2];
} pending_t;

static int pending_add(pending_t *p, int fam, const entry_t *e)
{
    if (p->n[fam] == p->cap[fam]) {
        size_t cap = p->cap[fam] ? 2 * p->cap[fam] : 16;
        entry_t *grown = realloc(p->e[fam], cap * sizeof *grown);
        if (!grown)
            return -1;
        p->e[fam] = grown;
        p->cap[fam] = cap;
    }
    p->e[fam][p->n[fam]++] = *e;
    return 0;
}

allowlist_t *allowlist_parse(const char *text, size_t len, const char *name, char *err,
                             size_t errlen)
{
    pending_t p = {{NULL, NULL}, {0, 0}, {0, 0}};
    allowlist_t *a = NULL;
    size_t pos = 0;
    for (int line_no = 1; pos < len; line_no++) {
        const char *nl = memchr(text + pos, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
        char line[MAX_LINE + 1], why[200];
        if (n > MAX_LINE) {
            snprintf(err, errlen, "%s:%d: line longer than %d bytes", name, line_no, MAX_LINE);
            goto fail;
        }
        if (memchr(text + pos, '\0', n)) {
            snprintf(err, errlen, "%s:%d: a NUL byte (not a text file?)", name, line_no);
            goto fail;
        }
        memcpy(line, text + pos, n);
        line[n] = '\0';
        pos += n + (nl != NULL);
        char *s = trimmed(line);
        if (!*s)
            continue;
        entry_t e;
        int bits;
        if (parse_entry(s, &e, &bits, why, sizeof why) != 0) {
            snprintf(err, errlen, "%s:%d: %s", name, line_no, why);
            goto fail;
        }
        if (pending_add(&p, bits == 32 ? 0 : 1, &e) != 0)
            goto oom;
    }
    a = calloc(1, sizeof *a);
    if (!a || build_table(&a->v4, p.e[0], p.n[0], 32) != 0 ||
        build_table(&a->v6, p.e[1], p.n[1], 128) != 0)
        goto oom;
    a->n = a->v4.n + a->v6.n;
    free(p.e[0]);
    free(p.e[1]);
    return a;
oom:
    snprintf(err, errlen, "%s: out of memory", name);
fail:
    free(p.e[0]);
    free(p.e[1]);
    allowlist_destroy(&a);
    return NULL;
}

bool allowlist_entry_valid(const char *text)
{
    char s[MAX_LINE + 1], why[200];
    entry_t e;
    int bits;
    if (strlen(text) > MAX_LINE)
        return false;
    strcpy(s, text); /* parse_entry cuts it at the slash */
    return parse_entry(s, &e, &bits, why, sizeof why) == 0;
}

allowlist_t *allowlist_load(const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    char *text = NULL;
    size_t cap = 0, len = 0, n;
    char buf[65536];
    while ((n = fread(buf, 1, sizeof buf, f)) > 0) {
        if (len + n > cap) {
            size_t want = cap ? 2 * cap : sizeof buf;
            while (want < len + n)
                want *= 2;
            char *grown = realloc(text, want);
            if (!grown) {
                free(text);
                fclose(f);
                snprintf(err, errlen, "%s: out of memory", path);
                return NULL;
            }
            text = grown;
            cap = want;
        }
        memcpy(text + len, buf, n);
        len += n;
    }
    int failed = ferror(f);
    fclose(f);
    if (failed) {
        free(text);
        snprintf(err, errlen, "%s: read error", path);
        return NULL;
    }
    allowlist_t *a = allowlist_parse(text ? text : "", len, path, err, errlen);
    free(text);
    return a;
}

bool allowlist_contains(const allowlist_t *a, const endpoint_t *ep)
{
    if (!a || !ep)
        return false;
    if (ep->family == 4)
        return table_contains(&a->v4, key_of(ep->addr, 32));
    if (ep->family != 6)
        return false;
    if (msg_is_v4_mapped(ep->addr) && table_contains(&a->v4, key_of(ep->addr + 12, 32)))
        return true;
    return table_contains(&a->v6, key_of(ep->addr, 128));
}

size_t allowlist_size(const allowlist_t *a)
{
    return a ? a->n : 0;
}

/* The address bytes of a key (4 or 16) */
static void key_bytes(key_t128 k, int bits, uint8_t *out)
{
    if (bits == 32) {
        for (int i = 0; i < 4; i++)
            out[i] = (uint8_t)(k.lo >> (24 - 8 * i));
        return;
    }
    for (int i = 0; i < 8; i++) {
        out[i] = (uint8_t)(k.hi >> (56 - 8 * i));
        out[8 + i] = (uint8_t)(k.lo >> (56 - 8 * i));
    }
}

/* Entry i of one family's table, with its length. */
static key_t128 table_entry(const table_t *t, size_t i, int *len)
{
    int j = 0;
    while (i >= t->end[j])
        j++;
    *len = t->lens[j];
    return t->keys[i];
}

char *allowlist_entry_text(const allowlist_t *a, size_t i, char *buf, size_t cap)
{
    const table_t *t = i < a->v4.n ? &a->v4 : &a->v6;
    int len;
    key_t128 k = table_entry(t, i < a->v4.n ? i : i - a->v4.n, &len);
    uint8_t bytes[16];
    key_bytes(k, t->bits, bytes);
    char text[INET6_ADDRSTRLEN];
    inet_ntop(t->bits == 32 ? AF_INET : AF_INET6, bytes, text, sizeof text);
    snprintf(buf, cap, "%s/%d", text, len);
    return buf;
}

/* Appends a table's entries to a list of pending ones. */
static int add_table(entry_t **e, size_t *n, const table_t *t)
{
    if (!t->n)
        return 0;
    entry_t *grown = realloc(*e, (*n + t->n) * sizeof **e);
    if (!grown)
        return -1;
    *e = grown;
    for (size_t i = 0; i < t->n; i++) {
        grown[*n].key = table_entry(t, i, &grown[*n].len);
        (*n)++;
    }
    return 0;
}

allowlist_t *allowlist_union(const allowlist_t *a, const allowlist_t *b)
{
    entry_t *e[2] = {NULL, NULL};
    size_t n[2] = {0, 0};
    allowlist_t *u = calloc(1, sizeof *u);
    bool ok = u != NULL;
    for (int k = 0; k < 2 && ok; k++) {
        const allowlist_t *src = k ? b : a;
        ok = !src ||
             (add_table(&e[0], &n[0], &src->v4) == 0 && add_table(&e[1], &n[1], &src->v6) == 0);
    }
    ok =
        ok && build_table(&u->v4, e[0], n[0], 32) == 0 && build_table(&u->v6, e[1], n[1], 128) == 0;
    free(e[0]);
    free(e[1]);
    if (!ok) {
        allowlist_destroy(&u);
        return NULL;
    }
    u->n = u->v4.n + u->v6.n;
    return u;
}

void allowlist_destroy(allowlist_t **a)
{
    if (!*a)
        return;
    free((*a)->v4.keys);
    free((*a)->v6.keys);
    free(*a);
    *a = NULL;
}
