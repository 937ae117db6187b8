#include "sipcheck.h"

#include <ctype.h>
#include <osipparser2/osip_message.h>
#include <osipparser2/osip_parser.h>
#include <osipparser2/osip_port.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "sipframe.h"

static pthread_once_t init_once = PTHREAD_ONCE_INIT;

/* Unless told otherwise, libosip2 prints every syntax error it meets to standard output,
 * where it would corrupt our JSON Lines. A malformed message is data to us, not a fault:
 * its trace goes to our log at debug level only. */
static void osip_trace_to_log(const char *file, int line, osip_trace_level_t level, const char *fmt,
                              va_list ap)
{
    (void)level;
    if (log_get_level() < LOG_LEVEL_DEBUG)
        return;
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    buf[strcspn(buf, "\r\n")] = '\0';
    debug("libosip2 %s:%d: %s", file, line, buf);
}

/*
 * libosip2's allocations during a parse go to an arena of this thread, released whole when
 * the message is done. libosip2 5.3 leaks on some malformed bodies (a MIME part with two
 * Content-Type headers: osip_body_set_contenttype drops the first one's structure), and an
 * edge parses whatever the network sends it, so such messages would grow it without bound;
 * with the arena nothing a parse allocates outlives the message. It also spares a malloc
 * and free per header, parameter and string. Outside a parse, and for memory the arena did
 * not give out, the hooks are plain malloc, realloc and free.
 * Under AddressSanitizer the arena's unused bytes stay poisoned and every allocation is
 * followed by a poisoned gap, so reads past one are still caught.
 */
#if defined(__SANITIZE_ADDRESS__)
#define ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_ASAN 1
#endif
#endif
#ifdef ARENA_ASAN
#include <sanitizer/asan_interface.h>
#define ARENA_POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define ARENA_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define ARENA_POISON(p, n) ((void)(p), (void)(n))
#define ARENA_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define ARENA_CHUNK (64 * 1024) /* a typical parse takes a few KiB */
#define ARENA_ALIGN 16          /* also the size header before each allocation */
#define ARENA_GAP 16            /* after each allocation */

typedef struct arena_chunk {
    struct arena_chunk *next;
    size_t cap, used;
    _Alignas(ARENA_ALIGN) unsigned char data[];
} arena_chunk_t;

static _Thread_local arena_chunk_t *arena; /* the current parse's chunks; NULL outside one */
static _Thread_local bool arena_on;

static bool in_arena(const void *p)
{
    for (const arena_chunk_t *c = arena; c; c = c->next)
        if ((const unsigned char *)p >= c->data && (const unsigned char *)p < c->data + c->cap)
            return true;
    return false;
}

static void *arena_alloc(size_t n)
{
    if (n > SIZE_MAX / 2)
        return NULL;
    size_t need = ARENA_ALIGN + (n + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN + ARENA_GAP;
    arena_chunk_t *c = arena;
    if (!c || c->cap - c->used < need) {
        size_t cap = need > ARENA_CHUNK ? need : ARENA_CHUNK;
        c = malloc(sizeof *c + cap);
        if (!c)
            return NULL;
        c->next = arena;
        c->cap = cap;
        c->used = 0;
        ARENA_POISON(c->data, cap);
        arena = c;
    }
    unsigned char *p = c->data + c->used;
    c->used += need;
    ARENA_UNPOISON(p, ARENA_ALIGN + n);
    memcpy(p, &n, sizeof n);
    return p + ARENA_ALIGN;
}

static void *hook_malloc(size_t n)
{
    return arena_on ? arena_alloc(n) : malloc(n);
}

static void hook_free(void *p)
{
    if (!arena_on || !in_arena(p))
        free(p);
}

static void *hook_realloc(void *p, size_t n)
{
    if (!arena_on || (p && !in_arena(p)))
        return realloc(p, n);
    void *q = arena_alloc(n);
    if (q && p) {
        size_t old;
        memcpy(&old, (unsigned char *)p - ARENA_ALIGN, sizeof old);
        memcpy(q, p, old < n ? old : n);
    }
    return q;
}

static void arena_begin(void)
{
    arena_on = true;
}

/* Releases everything the parse allocated, its leaks included. */
static void arena_end(void)
{
    for (arena_chunk_t *c = arena, *next; c; c = next) {
        next = c->next;
        ARENA_UNPOISON(c->data, c->cap);
        free(c);
    }
    arena = NULL;
    arena_on = false;
}

static void init_parser(void)
{
    osip_set_allocators(hook_malloc, hook_realloc, hook_free);
    parser_init();
    /* Installing our function replaces the default stdout writer; below debug level the
     * levels are also switched off so the library does not format what we would drop. */
    osip_trace_initialize_func(END_TRACE_LEVEL, osip_trace_to_log);
    if (log_get_level() < LOG_LEVEL_DEBUG)
        for (int l = 0; l < END_TRACE_LEVEL; l++)
            osip_trace_disable_level((osip_trace_level_t)l);
}

void sipcheck_init(void)
{
    pthread_once(&init_once, init_parser);
}

static void copy_str(char *dst, size_t cap, const char *src);

/* Copies a value without its surrounding double quotes. */
static void copy_unquoted(char *dst, size_t cap, const char *src)
{
    if (!src)
        return;
    size_t n = strlen(src);
    if (n >= 2 && src[0] == '"' && src[n - 1] == '"') {
        src++;
        n -= 2;
    }
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    if (!src) {
        dst[0] = '\0';
        return;
    }
    size_t n = strlen(src);
    if (n >= cap)
        n = cap - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

int sipcheck_header_value(const uint8_t *data, size_t len, const char *name, const char *compact,
                          char *buf, size_t cap)
{
    const uint8_t *p = memchr(data, '\n', len), *end = data + len;
    size_t nlen = strlen(name);
    while (p && ++p < end) {
        const uint8_t *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        if (eol == p || (eol == p + 1 && *p == '\r'))
            break; /* blank line: end of headers */
        const uint8_t *colon = memchr(p, ':', (size_t)(eol - p));
        if (colon) {
            const uint8_t *ne = colon;
            while (ne > p && (ne[-1] == ' ' || ne[-1] == '\t'))
                ne--;
            size_t hl = (size_t)(ne - p);
            if ((hl == nlen && strncasecmp((const char *)p, name, nlen) == 0) ||
                (compact && hl == 1 && tolower(*p) == compact[0])) {
                const uint8_t *v = colon + 1, *ve = eol;
                while (v < ve && (*v == ' ' || *v == '\t'))
                    v++;
                while (ve > v && isspace(ve[-1]))
                    ve--;
                size_t n = (size_t)(ve - v);
                if (n >= cap)
                    n = cap - 1;
                memcpy(buf, v, n);
                buf[n] = '\0';
                return (int)n;
            }
        }
        p = eol;
    }
    return -1;
}

/* Method or status from the start line, without libosip2. */
static void scan_start_line(const uint8_t *data, size_t len, sipinfo_t *out)
{
    if (len >= 12 && memcmp(data, "SIP/2.0 ", 8) == 0) {
        out->is_request = false;
        int st = 0;
        for (size_t i = 8; i < 11 && isdigit(data[i]); i++)
            st = st * 10 + (data[i] - '0');
        out->status = st;
        return;
    }
    size_t i = 0;
    while (i < len && i < sizeof out->method - 1 && data[i] > ' ' && data[i] < 0x7f)
        i++;
    if (i > 0 && i < len && data[i] == ' ') {
        out->is_request = true;
        memcpy(out->method, data, i);
        out->method[i] = '\0';
    }
}

static void scan_fields(const uint8_t *data, size_t len, sipinfo_t *out)
{
    char buf[160];
    scan_start_line(data, len, out);
    sipcheck_header_value(data, len, "Call-ID", "i", out->call_id, sizeof out->call_id);
    sipcheck_header_value(data, len, "User-Agent", NULL, out->user_agent, sizeof out->user_agent);
    if (sipcheck_header_value(data, len, "CSeq", NULL, buf, sizeof buf) > 0) {
        char m[32] = "";
        unsigned long n = 0;
        if (sscanf(buf, "%lu %31s", &n, m) >= 1) {
            out->cseq = (uint32_t)n;
            copy_str(out->cseq_method, sizeof out->cseq_method, m);
        }
    }
}

static const char *param(osip_list_t *params, const char *name)
{
    osip_generic_param_t *p = NULL;
    if (osip_generic_param_get_byname(params, (char *)name, &p) == 0 && p && p->gvalue)
        return p->gvalue;
    return NULL;
}

static void extract_osip(osip_message_t *m, sipinfo_t *out)
{
    if (MSG_IS_REQUEST(m)) {
        out->is_request = true;
        copy_str(out->method, sizeof out->method, m->sip_method);
        if (m->req_uri)
            copy_str(out->ruri_user, sizeof out->ruri_user, m->req_uri->username);
    } else {
        out->is_request = false;
        out->status = m->status_code;
    }
    if (m->call_id) {
        char *s = NULL;
        if (osip_call_id_to_str(m->call_id, &s) == 0) {
            copy_str(out->call_id, sizeof out->call_id, s);
            osip_free(s);
        }
    }
    if (m->cseq) {
        out->cseq = m->cseq->number ? (uint32_t)strtoul(m->cseq->number, NULL, 10) : 0;
        copy_str(out->cseq_method, sizeof out->cseq_method, m->cseq->method);
    }
    if (m->from) {
        copy_str(out->from_tag, sizeof out->from_tag, param(&m->from->gen_params, "tag"));
        if (m->from->url)
            copy_str(out->from_user, sizeof out->from_user, m->from->url->username);
    }
    if (m->to) {
        copy_str(out->to_tag, sizeof out->to_tag, param(&m->to->gen_params, "tag"));
        if (m->to->url)
            copy_str(out->to_user, sizeof out->to_user, m->to->url->username);
    }
    out->vias = osip_list_size(&m->vias);
    osip_via_t *via = osip_list_get(&m->vias, 0);
    if (via) {
        copy_str(out->branch, sizeof out->branch, param(&via->via_params, "branch"));
        copy_str(out->via_host, sizeof out->via_host, via->host);
    }
    osip_contact_t *ct = osip_list_get(&m->contacts, 0);
    if (ct && ct->url)
        copy_str(out->contact_host, sizeof out->contact_host, ct->url->host);
    osip_header_t *h = NULL;
    if (osip_message_get_user_agent(m, 0, &h) >= 0 && h)
        copy_str(out->user_agent, sizeof out->user_agent, h->hvalue);
    h = NULL;
    if (osip_message_get_expires(m, 0, &h) >= 0 && h && h->hvalue)
        out->expires = atoi(h->hvalue);
    out->has_auth =
        osip_list_size(&m->authorizations) > 0 || osip_list_size(&m->proxy_authorizations) > 0;
    osip_authorization_t *a = osip_list_get(&m->authorizations, 0);
    if (!a)
        a = osip_list_get(&m->proxy_authorizations, 0);
    if (a) { /* the values keep their quotes in libosip2: drop them */
        copy_unquoted(out->auth_user, sizeof out->auth_user, a->username);
        copy_unquoted(out->auth_nonce, sizeof out->auth_nonce, a->nonce);
        copy_unquoted(out->auth_response, sizeof out->auth_response, a->response);
    }
}

/* The first mandatory header (RFC 3261 section 8.1.1) the parsed message lacks, or NULL. */
static const char *missing_mandatory(osip_message_t *m)
{
    if (osip_list_size(&m->vias) == 0)
        return "missing mandatory header Via";
    if (!m->from)
        return "missing mandatory header From";
    if (!m->to)
        return "missing mandatory header To";
    if (!m->call_id)
        return "missing mandatory header Call-ID";
    if (!m->cseq)
        return "missing mandatory header CSeq";
    return NULL;
}

void sipcheck_message(const uint8_t *data, size_t len, sipinfo_t *out)
{
    memset(out, 0, sizeof *out);
    out->expires = -1;
    out->reason = "";
    if (len == 0) {
        out->reason = "empty message";
        return;
    }
    if (!sipframe_looks_like_sip(data, len)) {
        out->reason = "bad start line";
        scan_fields(data, len, out);
        return;
    }
    sipcheck_init();
    arena_begin();
    osip_message_t *m = NULL;
    if (osip_message_init(&m) != 0) {
        arena_end();
        out->reason = "out of memory";
        return;
    }
    int rc = osip_message_parse(m, (const char *)data, len);
    if (rc != 0) {
        arena_end(); /* the message's structures too: no osip_message_free */
        out->reason = "libosip2 rejected the message (syntax error)";
        scan_fields(data, len, out);
        return;
    }
    extract_osip(m, out);
    const char *missing = missing_mandatory(m);
    if (missing) {
        out->reason = missing;
    } else {
        out->parse_ok = true;
    }
    if (!out->call_id[0] || !out->user_agent[0]) {
        sipinfo_t scan;
        memset(&scan, 0, sizeof scan);
        scan_fields(data, len, &scan);
        if (!out->user_agent[0])
            copy_str(out->user_agent, sizeof out->user_agent, scan.user_agent);
    }
    arena_end();
}
