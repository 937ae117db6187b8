#include "tcpstream.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <xxhash.h>

#include "sipframe.h"

#define OOO_MAX 64

typedef struct {
    uint32_t seq;
    uint8_t *data;
    size_t len;
} ooo_seg_t;

typedef struct {
    bool used;
    endpoint_t src, dst;
    uint64_t hash; /* of src and dst: where the index looks for it */
    bool have_seq;
    uint32_t next_seq;
    bool not_sip; /* never produced SIP: ignore further bytes */
    bool saw_sip; /* produced at least one message */
    /* SIP over WebSocket (RFC 7118): past the HTTP upgrade the bytes are frames */
    bool ws;
    bool ws_frag;     /* inside a message sent in several frames */
    bool ws_discard;  /* the rest of a message already handed on cut at the size limit */
    size_t ws_have;   /* bytes of the message gathered at the buffer's start */
    uint64_t ws_skip; /* bytes of a frame still to pass over */
    uint8_t *buf;
    size_t len, cap;
    ooo_seg_t *ooo; /* OOO_MAX entries, allocated at the first early segment */
    int n_ooo;
    int32_t newer, older; /* the recency list; -1 ends it */
    msg_t tmpl;           /* metadata of the latest segment, for messages emitted at flush */
} stream_t;

/*
 * The streams live in one array. A busy border node has thousands of TCP connections, and
 * every segment needs its stream: an open-addressing index on the endpoints' hash finds it,
 * a bitmap of free entries gives the lowest free one, and a recency list names the stream to
 * drop when all are in use. Each of these costs the same however many streams there are.
 */
struct tcpstream {
    stream_t *streams;
    int n, max;             /* entries allocated (grown by doubling as they fill), and at most */
    size_t held, max_bytes; /* bytes of stream buffers and early segments, and at most */
    uint32_t *index;        /* stream number + 1 by hash, linear probing; 0 empty */
    size_t index_mask;
    uint64_t *free_bits; /* bit set: entry free */
    int32_t newest, oldest;
    size_t max_msg;
    skips_t *skips;
    tcpstream_emit_fn emit;
    void *ctx;
    int last_hit;
};

/* The bits of word w of the free bitmap that stand for entries (the last word's may not). */
static uint64_t in_word(const tcpstream_t *t, size_t w)
{
    size_t last = ((size_t)t->n + 63) / 64 - 1;
    return w == last && t->n % 64 ? (1ULL << (t->n % 64)) - 1 : ~0ULL;
}

/* Every entry free (the index, calloc'd, starts empty), the recency list empty. */
static void reset_table(tcpstream_t *t)
{
    size_t words = ((size_t)t->n + 63) / 64;
    memset(t->free_bits, 0xff, words * sizeof *t->free_bits);
    t->free_bits[words - 1] = in_word(t, words - 1); /* no entries past n */
    t->newest = t->oldest = -1;
    t->last_hit = 0;
}

/* Index slots for n entries: a power of two, at most half full. */
static size_t index_size(int n)
{
    size_t cap = 16;
    while (cap < 2 * (size_t)n)
        cap *= 2;
    return cap;
}

tcpstream_t *tcpstream_new(size_t max_msg, int max_streams, size_t max_bytes, skips_t *skips,
                           tcpstream_emit_fn emit, void *ctx)
{
    tcpstream_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    if (max_streams < 1)
        max_streams = 1;
    t->max = max_streams;
    t->n = max_streams < 256 ? max_streams : 256; /* most inputs hold few connections */
    size_t cap = index_size(t->n);
    t->streams = calloc((size_t)t->n, sizeof *t->streams);
    t->index = calloc(cap, sizeof *t->index);
    t->free_bits = calloc(((size_t)t->n + 63) / 64, sizeof *t->free_bits);
    if (!t->streams || !t->index || !t->free_bits) {
        free(t->streams);
        free(t->index);
        free(t->free_bits);
        free(t);
        return NULL;
    }
    t->index_mask = cap - 1;
    reset_table(t);
    t->max_msg = max_msg;
    t->max_bytes = max_bytes;
    t->skips = skips;
    t->emit = emit;
    t->ctx = ctx;
    return t;
}

static void stream_release(tcpstream_t *t, stream_t *s)
{
    for (int i = 0; i < s->n_ooo; i++) {
        free(s->ooo[i].data);
        t->held -= s->ooo[i].len;
    }
    if (s->ooo)
        t->held -= OOO_MAX * sizeof *s->ooo;
    free(s->ooo);
    free(s->buf);
    t->held -= s->cap;
    memset(s, 0, sizeof *s);
}

void tcpstream_destroy(tcpstream_t **self)
{
    if (!*self)
        return;
    tcpstream_t *t = *self;
    for (size_t w = 0; w < ((size_t)t->n + 63) / 64; w++) /* only the streams in use hold */
        for (uint64_t used = ~t->free_bits[w] & in_word(t, w); used; used &= used - 1)
            stream_release(t, &t->streams[w * 64 + (size_t)__builtin_ctzll(used)]);
    free((*self)->streams);
    free((*self)->index);
    free((*self)->free_bits);
    free(*self);
    *self = NULL;
}

static bool endpoint_equal(const endpoint_t *a, const endpoint_t *b)
{
    return a->family == b->family && a->port == b->port && memcmp(a->addr, b->addr, 16) == 0;
}

static void emit_bytes(tcpstream_t *t, stream_t *s, const msg_t *tmpl, size_t n, bool truncated)
{
    msg_t m = *tmpl;
    m.src = s->src;
    m.dst = s->dst;
    m.transport = s->ws ? TRANSPORT_WS : TRANSPORT_TCP;
    m.data = s->buf;
    m.len = n;
    m.truncated = truncated;
    s->saw_sip = true;
    t->emit(t->ctx, &m);
}

static void consume(stream_t *s, size_t n)
{
    memmove(s->buf, s->buf + n, s->len - n);
    s->len -= n;
}

/* Offset of the next line start after `from` that looks like a SIP start line, or 0. */
static size_t next_sip_start(const stream_t *s, size_t from)
{
    for (size_t i = from; i < s->len; i++) {
        if (s->buf[i] == '\n' && i + 1 < s->len &&
            sipframe_looks_like_sip(s->buf + i + 1, s->len - i - 1))
            return i + 1;
    }
    return 0;
}

/* Deals with bytes at the buffer start that are not a SIP start line. Returns false to wait. */
static bool resync(tcpstream_t *t, stream_t *s, bool closing)
{
    bool have_line = memchr(s->buf, '\n', s->len) != NULL || s->len >= 1024;
    if (!have_line && !closing)
        return false;
    if (!s->saw_sip) {
        skips_add(t->skips, "tcp: stream is not SIP (TLS, WebSocket or other protocol)");
        s->not_sip = true;
        s->len = 0;
        return false;
    }
    size_t at = next_sip_start(s, 0);
    skips_add(t->skips, "tcp: bytes between messages passed over (Content-Length too short?)");
    if (at == 0) {
        s->len = 0;
        return false;
    }
    consume(s, at);
    return true;
}

/* --- SIP over WebSocket --- */

#define WS_HEAD_MAX 8192 /* an HTTP upgrade's head; longer is not one */

static bool starts_http(const uint8_t *b, size_t len)
{
    return (len >= 4 && memcmp(b, "GET ", 4) == 0) || (len >= 9 && memcmp(b, "HTTP/1.1 ", 9) == 0);
}

/* The header line of this name (lower case, with the colon) in an HTTP head, or NULL; *n is the
 * length of its value. */
static const uint8_t *http_header(const uint8_t *head, size_t len, const char *name, size_t *n)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i + 1 < len; i++) {
        if (head[i] != '\n' || len - i - 1 < nl ||
            strncasecmp((const char *)head + i + 1, name, nl))
            continue;
        const uint8_t *v = head + i + 1 + nl, *end = memchr(v, '\n', (size_t)(head + len - v));
        *n = (size_t)((end ? end : head + len) - v);
        return v;
    }
    return NULL;
}

static bool value_has(const uint8_t *v, size_t n, const char *word)
{
    size_t wl = strlen(word);
    for (size_t i = 0; i + wl <= n; i++)
        if (!strncasecmp((const char *)v + i, word, wl))
            return true;
    return false;
}

/* True for a head (up to its blank line) that upgrades to WebSocket for SIP: a GET asking for
 * it, or the server's 101 granting it; both name the "sip" subprotocol (RFC 7118). */
static bool is_sip_websocket_upgrade(const uint8_t *head, size_t len)
{
    bool request = memcmp(head, "GET ", 4) == 0;
    if (!request && (len < 12 || memcmp(head + 9, "101", 3) != 0))
        return false;
    size_t un, pn;
    const uint8_t *up = http_header(head, len, "upgrade:", &un);
    const uint8_t *proto = http_header(head, len, "sec-websocket-protocol:", &pn);
    return up && value_has(up, un, "websocket") && proto && value_has(proto, pn, "sip");
}

bool tcpstream_starts_websocket(const uint8_t *p, size_t len)
{
    /* a GET, or a 101 answer; searched within the head only, since every HTTP segment on a
     * port that is not SIP's comes here */
    bool get = len >= 4 && memcmp(p, "GET ", 4) == 0;
    if (!get && !(len >= 12 && memcmp(p, "HTTP/1.1 101", 12) == 0))
        return false;
    size_t n = len < WS_HEAD_MAX ? len : WS_HEAD_MAX;
    const uint8_t *end = memmem(p, n, "\r\n\r\n", 4);
    return value_has(p, end ? (size_t)(end - p) : n, "websocket");
}

/* At a stream's start, takes an HTTP upgrade to SIP over WebSocket off the buffer: 1 when it
 * did (the stream's bytes are frames from here on), 0 to wait for the rest of the head, -1
 * when this is no such upgrade. */
static int take_upgrade(stream_t *s, bool closing)
{
    const uint8_t *end = memmem(s->buf, s->len < WS_HEAD_MAX ? s->len : WS_HEAD_MAX, "\r\n\r\n", 4);
    if (!end)
        return closing || s->len >= WS_HEAD_MAX ? -1 : 0;
    size_t head = (size_t)(end - s->buf) + 4;
    if (!is_sip_websocket_upgrade(s->buf, head))
        return -1;
    consume(s, head);
    s->ws = true;
    return 1;
}

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/* Reads the frame header at p (n bytes there): its length, or 0 while bytes are missing. */
static size_t ws_frame_header(const uint8_t *p, size_t n, uint64_t *payload, uint8_t key[4],
                              bool *masked)
{
    if (n < 2)
        return 0;
    size_t hl = 2;
    uint64_t len = p[1] & 0x7f;
    if (len == 126) {
        if (n < 4)
            return 0;
        len = (uint64_t)p[2] << 8 | p[3];
        hl = 4;
    } else if (len == 127) {
        if (n < 10)
            return 0;
        len = rd64(p + 2);
        hl = 10;
    }
    *masked = p[1] & 0x80;
    if (*masked) {
        if (n < hl + 4)
            return 0;
        memcpy(key, p + hl, 4);
        hl += 4;
    }
    *payload = len;
    return hl;
}

/* Removes n bytes at offset at of the buffer. */
static void cut(stream_t *s, size_t at, size_t n)
{
    memmove(s->buf + at, s->buf + at + n, s->len - at - n);
    s->len -= n;
}

static void ws_bad_frame(tcpstream_t *t, stream_t *s, const char *why)
{
    skips_add(t->skips, "websocket: %s, rest of stream passed over", why);
    s->not_sip = true;
    s->len = 0;
}

/* Hands on the message gathered at the buffer's start. */
static void ws_emit(tcpstream_t *t, stream_t *s, const msg_t *tmpl, bool truncated)
{
    if (s->ws_have == 0)
        skips_add(t->skips, "websocket: empty message");
    else
        emit_bytes(t, s, tmpl, s->ws_have, truncated);
    consume(s, s->ws_have);
    s->ws_have = 0;
}

/*
 * Cuts messages out of WebSocket frames. Each text or binary message (one frame, or a first
 * frame and its continuations) is one SIP message; its payload is unmasked in place and
 * gathered at the buffer's start, the frame headers cut out. Control frames (close, ping,
 * pong) are passed over. A message longer than the limit is handed on cut (truncated) and the
 * rest of it passed over as it comes, so a stream never holds more than one message's worth.
 */
static void drain_ws(tcpstream_t *t, stream_t *s, const msg_t *tmpl, bool closing)
{
    while (!s->not_sip) {
        if (s->ws_skip) {
            size_t there = s->len - s->ws_have;
            size_t n = there < s->ws_skip ? there : (size_t)s->ws_skip;
            cut(s, s->ws_have, n);
            s->ws_skip -= n;
            if (s->ws_skip)
                return;
        }
        uint8_t *p = s->buf + s->ws_have, key[4];
        size_t there = s->len - s->ws_have;
        uint64_t plen;
        bool masked;
        size_t hl = ws_frame_header(p, there, &plen, key, &masked);
        if (!hl)
            break;
        bool fin = p[0] & 0x80;
        unsigned op = p[0] & 0x0f;
        if (op >= 8) { /* control frames: short, and may come between a message's frames */
            if (op > 10 || plen > 125 || !fin) {
                ws_bad_frame(t, s, "bad control frame");
                return;
            }
            if (there < hl + plen)
                break;
            cut(s, s->ws_have, hl + (size_t)plen);
            continue;
        }
        if (op > 2 || (op == 0) != (s->ws_frag || s->ws_discard)) {
            ws_bad_frame(t, s, "frame out of order or of unknown type");
            return;
        }
        if (s->ws_discard) { /* a continuation of a message already cut */
            cut(s, s->ws_have, hl);
            s->ws_skip = plen;
            s->ws_discard = !fin;
            continue;
        }
        size_t room = t->max_msg - s->ws_have;
        size_t take = plen < room ? (size_t)plen : room;
        if (there - hl < take && !closing)
            return; /* the payload, or as much as the limit keeps, has not all come */
        if (there - hl < take)
            take = there - hl;
        cut(s, s->ws_have, hl);
        if (masked)
            for (size_t i = 0; i < take; i++)
                s->buf[s->ws_have + i] ^= key[i & 3];
        s->ws_have += take;
        s->ws_frag = !fin;
        if (take < plen) { /* over the limit, or the stream ends inside the frame */
            skips_add(t->skips, closing && plen <= room
                                    ? "websocket: message incomplete at end of stream (kept, "
                                      "truncated)"
                                    : "websocket: message longer than limit (kept, truncated)");
            ws_emit(t, s, tmpl, true);
            s->ws_skip = plen - take;
            s->ws_frag = false;
            s->ws_discard = !fin;
            continue;
        }
        if (fin)
            ws_emit(t, s, tmpl, false);
    }
    if (closing && s->len) {
        skips_add(t->skips, s->ws_have
                                ? "websocket: message incomplete at end of stream (kept, truncated)"
                                : "websocket: frame incomplete at end of stream");
        if (s->ws_have)
            ws_emit(t, s, tmpl, true);
        s->len = 0;
    }
}

/* Cuts complete messages off the buffer; with closing, also what is left. */
static void drain(tcpstream_t *t, stream_t *s, const msg_t *tmpl, bool closing)
{
    while (s->len > 0 && !s->not_sip) {
        if (s->ws) {
            drain_ws(t, s, tmpl, closing);
            return;
        }
        if (!s->saw_sip && starts_http(s->buf, s->len)) {
            int r = take_upgrade(s, closing);
            if (r == 0)
                return;
            if (r == 1)
                continue; /* else not SIP: resync below says so */
        }
        size_t skip = sipframe_skip_crlf(s->buf, s->len);
        if (skip) {
            consume(s, skip);
            continue;
        }
        if (!sipframe_looks_like_sip(s->buf, s->len)) {
            if (!resync(t, s, closing))
                return;
            continue;
        }
        size_t mlen, hlen;
        long long cl;
        sipframe_result_t r = sipframe_message_length(s->buf, s->len, &mlen, &hlen, &cl);
        if (r == SIPFRAME_COMPLETE && mlen <= t->max_msg) {
            emit_bytes(t, s, tmpl, mlen, false);
            consume(s, mlen);
            continue;
        }
        if (r == SIPFRAME_BAD_LENGTH) {
            size_t at = next_sip_start(s, hlen - 1);
            if (!at && !closing && s->len < t->max_msg)
                return;
            size_t n = at ? at : (s->len < t->max_msg ? s->len : t->max_msg);
            skips_add(t->skips, "tcp: invalid Content-Length, message cut at next start line");
            emit_bytes(t, s, tmpl, n, true);
            consume(s, n);
            continue;
        }
        bool too_long = (hlen && (size_t)cl + hlen > t->max_msg) || s->len >= t->max_msg;
        if (!too_long && !closing)
            return;
        size_t at = hlen ? next_sip_start(s, hlen - 1) : 0;
        if (!at && !closing && s->len < t->max_msg)
            return;
        size_t n = at ? at : (s->len < t->max_msg ? s->len : t->max_msg);
        skips_add(t->skips, closing && !too_long
                                ? "tcp: message incomplete at end of stream (kept, truncated)"
                                : "tcp: message longer than limit (kept, truncated)");
        emit_bytes(t, s, tmpl, n, true);
        consume(s, n);
    }
}

static void stream_drop(tcpstream_t *t, stream_t *s);

/*
 * Makes room for `more` bytes in the reassembly budget, dropping the least recently used
 * streams other than s (counted): whoever opens many connections and leaves messages
 * unfinished, or sends segments far ahead of a gap, must not grow the reader without bound.
 * False when even s alone would not fit.
 */
static bool make_room(tcpstream_t *t, const stream_t *s, size_t more)
{
    int32_t self = (int32_t)(s - t->streams);
    while (t->held + more > t->max_bytes && t->oldest >= 0 && t->oldest != self) {
        skips_add(t->skips, "tcp: reassembly memory full, least recently used stream dropped");
        stream_drop(t, &t->streams[t->oldest]);
    }
    return t->held + more <= t->max_bytes;
}

/* Appends to the stream's buffer: NULL, or why it could not (the bytes are dropped). */
static const char *append(tcpstream_t *t, stream_t *s, const uint8_t *data, size_t len)
{
    if (s->len + len > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        while (cap < s->len + len)
            cap *= 2;
        if (!make_room(t, s, cap - s->cap))
            return "tcp: reassembly memory full, bytes dropped";
        uint8_t *b = realloc(s->buf, cap);
        if (!b)
            return "tcp: out of memory, bytes dropped";
        t->held += cap - s->cap;
        s->buf = b;
        s->cap = cap;
    }
    memcpy(s->buf + s->len, data, len);
    s->len += len;
    return NULL;
}

/* The hash of a direction of a connection: addresses and ports of both ends. */
static uint64_t endpoints_hash(const endpoint_t *src, const endpoint_t *dst)
{
    uint8_t key[2 * 19];
    const endpoint_t *ep[2] = {src, dst};
    for (int k = 0; k < 2; k++) {
        key[19 * k] = (uint8_t)ep[k]->family;
        key[19 * k + 1] = (uint8_t)(ep[k]->port >> 8);
        key[19 * k + 2] = (uint8_t)ep[k]->port;
        memcpy(key + 19 * k + 3, ep[k]->addr, 16);
    }
    return XXH3_64bits(key, sizeof key);
}

static void list_unlink(tcpstream_t *t, int32_t i)
{
    stream_t *s = &t->streams[i];
    if (s->newer >= 0)
        t->streams[s->newer].older = s->older;
    else
        t->newest = s->older;
    if (s->older >= 0)
        t->streams[s->older].newer = s->newer;
    else
        t->oldest = s->newer;
}

static void list_push_newest(tcpstream_t *t, int32_t i)
{
    stream_t *s = &t->streams[i];
    s->newer = -1;
    s->older = t->newest;
    if (t->newest >= 0)
        t->streams[t->newest].newer = i;
    t->newest = i;
    if (t->oldest < 0)
        t->oldest = i;
}

/* Removes stream i from the index: backward-shift deletion, so no probe sequence breaks. */
static void index_remove(tcpstream_t *t, int32_t i)
{
    size_t mask = t->index_mask, at = t->streams[i].hash & mask;
    while (t->index[at] != (uint32_t)i + 1)
        at = (at + 1) & mask;
    for (size_t next = (at + 1) & mask; t->index[next]; next = (next + 1) & mask) {
        size_t home = t->streams[t->index[next] - 1].hash & mask;
        /* the entry at next may move to at when its home is not in (at, next] */
        bool stays = at <= next ? (home > at && home <= next) : (home > at || home <= next);
        if (stays)
            continue;
        t->index[at] = t->index[next];
        at = next;
    }
    t->index[at] = 0;
}

/* Forgets stream i: its bytes, its place in the index and the list; the entry is free again. */
static void stream_drop(tcpstream_t *t, stream_t *s)
{
    int32_t i = (int32_t)(s - t->streams);
    index_remove(t, i);
    list_unlink(t, i);
    stream_release(t, s);
    t->free_bits[i / 64] |= 1ULL << (i % 64);
}

/* Puts stream i into the index. */
static void index_add(tcpstream_t *t, int32_t i)
{
    size_t at = t->streams[i].hash & t->index_mask;
    while (t->index[at])
        at = (at + 1) & t->index_mask;
    t->index[at] = (uint32_t)i + 1;
}

/* Doubles the entries (up to max), the bitmap with them, and the index, rebuilt. Returns 0,
 * or -1 (nothing changed) when memory runs out. */
static int grow(tcpstream_t *t)
{
    int n = 2 * t->n < t->max ? 2 * t->n : t->max;
    size_t words = ((size_t)n + 63) / 64, old_words = ((size_t)t->n + 63) / 64, cap = index_size(n);
    stream_t *s = realloc(t->streams, (size_t)n * sizeof *s);
    if (s)
        t->streams = s;
    uint64_t *bits = s ? realloc(t->free_bits, words * sizeof *bits) : NULL;
    if (bits)
        t->free_bits = bits;
    uint32_t *index = bits ? calloc(cap, sizeof *index) : NULL;
    if (!index)
        return -1;
    memset(s + t->n, 0, (size_t)(n - t->n) * sizeof *s);
    for (size_t w = old_words; w < words; w++)
        bits[w] = 0;
    for (int i = t->n; i < n; i++) /* the new entries are free */
        bits[i / 64] |= 1ULL << (i % 64);
    free(t->index);
    t->index = index;
    t->index_mask = cap - 1;
    t->n = n;
    for (size_t w = 0; w < words; w++)
        for (uint64_t used = ~bits[w] & in_word(t, w); used; used &= used - 1)
            index_add(t, (int32_t)(w * 64 + (size_t)__builtin_ctzll(used)));
    return 0;
}

/* The lowest free entry (growing the table when all are in use and it may), or -1 */
static int32_t lowest_free(tcpstream_t *t)
{
    for (size_t w = 0; w < ((size_t)t->n + 63) / 64; w++)
        if (t->free_bits[w])
            return (int32_t)(w * 64 + (size_t)__builtin_ctzll(t->free_bits[w]));
    int32_t first_new = t->n;
    return t->n < t->max && grow(t) == 0 ? first_new : -1;
}

static stream_t *stream_for(tcpstream_t *t, const endpoint_t *src, const endpoint_t *dst)
{
    stream_t *hit = &t->streams[t->last_hit];
    if (hit->used && endpoint_equal(&hit->src, src) && endpoint_equal(&hit->dst, dst))
        return hit;
    uint64_t h = endpoints_hash(src, dst);
    size_t mask = t->index_mask;
    for (size_t at = h & mask; t->index[at]; at = (at + 1) & mask) {
        stream_t *s = &t->streams[t->index[at] - 1];
        if (s->hash == h && endpoint_equal(&s->src, src) && endpoint_equal(&s->dst, dst)) {
            t->last_hit = (int)t->index[at] - 1;
            return s;
        }
    }
    int32_t i = lowest_free(t);
    if (i < 0) {
        skips_add(t->skips, "tcp: stream table full, least recently used stream dropped");
        i = t->oldest;
        stream_drop(t, &t->streams[i]);
    }
    stream_t *s = &t->streams[i]; /* after any growth: the entries may have moved */
    t->free_bits[i / 64] &= ~(1ULL << (i % 64));
    s->used = true;
    s->src = *src;
    s->dst = *dst;
    s->hash = h;
    index_add(t, i);
    list_push_newest(t, i);
    t->last_hit = i;
    return s;
}

/* Appends in-order bytes, trimming what was already seen. */
static void accept_bytes(tcpstream_t *t, stream_t *s, uint32_t seq, const uint8_t *data, size_t len)
{
    int32_t ahead = (int32_t)(seq - s->next_seq);
    if (ahead < 0) {
        size_t dup = (size_t)(-(int64_t)ahead);
        if (dup >= len)
            return; /* pure retransmission */
        data += dup;
        len -= dup;
    }
    if (s->len + len > 4 * t->max_msg + 65536) {
        skips_add(t->skips, "tcp: stream buffer over limit, bytes dropped");
        s->len = 0;
    }
    const char *failed = append(t, s, data, len);
    if (failed) {
        skips_add(t->skips, "%s", failed);
        return;
    }
    s->next_seq += (uint32_t)len;
}

static void queue_early(tcpstream_t *t, stream_t *s, uint32_t seq, const uint8_t *data, size_t len)
{
    if (s->n_ooo == OOO_MAX) {
        skips_add(t->skips, "tcp: out-of-order queue full, segment dropped");
        return;
    }
    size_t queue = s->ooo ? 0 : OOO_MAX * sizeof *s->ooo;
    if (!make_room(t, s, queue + len)) {
        skips_add(t->skips, "tcp: reassembly memory full, segment dropped");
        return;
    }
    if (!s->ooo && !(s->ooo = malloc(queue))) {
        skips_add(t->skips, "tcp: out of memory, segment dropped");
        return;
    }
    t->held += queue;
    uint8_t *copy = malloc(len);
    if (!copy) {
        skips_add(t->skips, "tcp: out of memory, segment dropped");
        return;
    }
    memcpy(copy, data, len);
    t->held += len;
    s->ooo[s->n_ooo++] = (ooo_seg_t){seq, copy, len};
}

/* Moves queued segments that now fit into the buffer. */
static void drain_early(tcpstream_t *t, stream_t *s)
{
    bool moved = true;
    while (moved) {
        moved = false;
        for (int i = 0; i < s->n_ooo; i++) {
            ooo_seg_t *o = &s->ooo[i];
            if ((int32_t)(o->seq - s->next_seq) > 0)
                continue;
            accept_bytes(t, s, o->seq, o->data, o->len);
            free(o->data);
            t->held -= o->len;
            s->ooo[i] = s->ooo[--s->n_ooo];
            moved = true;
            break;
        }
    }
}

void tcpstream_segment(tcpstream_t *t, const msg_t *tmpl, uint32_t seq, uint8_t flags,
                       const uint8_t *data, size_t len)
{
    stream_t *s = stream_for(t, &tmpl->src, &tmpl->dst);
    int32_t i = (int32_t)(s - t->streams);
    if (t->newest != i) {
        list_unlink(t, i);
        list_push_newest(t, i);
    }
    s->tmpl = *tmpl;
    if (flags & TCP_FLAG_SYN) {
        s->have_seq = true;
        s->next_seq = seq + 1;
        seq++;
    } else if (!s->have_seq) {
        s->have_seq = true;
        s->next_seq = seq;
    }
    if (len > 0 && !s->not_sip) {
        if ((int32_t)(seq - s->next_seq) > 0)
            queue_early(t, s, seq, data, len);
        else
            accept_bytes(t, s, seq, data, len);
        drain_early(t, s);
        drain(t, s, tmpl, false);
    }
    if (flags & (TCP_FLAG_FIN | TCP_FLAG_RST)) {
        drain(t, s, tmpl, true);
        stream_drop(t, s);
    }
}

bool tcpstream_follows(tcpstream_t *t, const endpoint_t *src, const endpoint_t *dst)
{
    uint64_t h = endpoints_hash(src, dst);
    for (size_t at = h & t->index_mask; t->index[at]; at = (at + 1) & t->index_mask) {
        const stream_t *s = &t->streams[t->index[at] - 1];
        if (s->hash == h && endpoint_equal(&s->src, src) && endpoint_equal(&s->dst, dst))
            return true;
    }
    return false;
}

void tcpstream_flush(tcpstream_t *t)
{
    /* the streams in use, in the order of their entries, found by the free bitmap: a pass
     * over every entry would read the whole table (and map its untouched pages) */
    for (size_t w = 0; w < ((size_t)t->n + 63) / 64; w++) {
        for (uint64_t used = ~t->free_bits[w] & in_word(t, w); used; used &= used - 1) {
            stream_t *s = &t->streams[w * 64 + (size_t)__builtin_ctzll(used)];
            if (s->n_ooo)
                skips_add(t->skips, "tcp: gap never filled, queued segments dropped");
            msg_t tmpl = s->tmpl;
            drain(t, s, &tmpl, true);
            stream_drop(t, s);
        }
    }
}

size_t tcpstream_held(const tcpstream_t *t)
{
    return t->held;
}
