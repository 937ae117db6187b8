/*
 * tcpstream: SIP messages out of TCP segments.
 *
 * Each direction of a connection is a stream with its own buffer. Segments
 * are appended in sequence order: retransmitted bytes are trimmed, early
 * segments wait in a small bounded queue until the gap fills. The buffer is
 * cut into messages by the header block and Content-Length (sipframe), so
 * several messages in one segment and one message across segments both
 * work. A stream that opens with an HTTP upgrade to WebSocket for SIP (RFC
 * 7118, a WebRTC client and its proxy) is read as frames: each text or binary
 * message, unmasked, is one SIP message (transport "ws"). Streams whose bytes
 * never look like SIP (TLS, other HTTP or WebSocket) are counted and ignored. A message whose
 * Content-Length runs past the size limit, or that is unfinished when the stream closes, is still
 * handed on, marked truncated, because such messages are exactly what we must score; after a
 * Content-Length that was too short the reader resynchronises on the next SIP start line and counts
 * the bytes it passed over. Finding a segment's stream costs the same however many streams are
 * open; when all max_streams are in use, the least recently used one is dropped (counted). The
 * bytes held for all streams (buffers and early segments) stay within max_bytes: to make room, the
 * least recently used streams are dropped (counted), so many connections left mid-message, or
 * segments sent far ahead of a gap, cannot make the reader grow without bound.
 */
#ifndef SIPGUARD_TCPSTREAM_H
#define SIPGUARD_TCPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "skips.h"

typedef struct tcpstream tcpstream_t;

/* Called for every message found; m->data is valid during the call only. */
typedef void (*tcpstream_emit_fn)(void *ctx, const msg_t *m);

#define TCP_FLAG_FIN 0x01
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04

tcpstream_t *tcpstream_new(size_t max_msg, int max_streams, size_t max_bytes, skips_t *skips,
                           tcpstream_emit_fn emit, void *ctx);
void tcpstream_destroy(tcpstream_t **self);

/* Feeds one segment. tmpl supplies timestamps, endpoints and MAC for messages it completes. */
void tcpstream_segment(tcpstream_t *self, const msg_t *tmpl, uint32_t seq, uint8_t flags,
                       const uint8_t *data, size_t len);

/* True when bytes start an HTTP upgrade to WebSocket (a stream worth following on any port). */
bool tcpstream_starts_websocket(const uint8_t *p, size_t len);

/* True when segments from src to dst belong to a stream followed already (once its first
 * bytes looked like SIP, its later segments need not). */
bool tcpstream_follows(tcpstream_t *self, const endpoint_t *src, const endpoint_t *dst);

/* Emits what every stream still holds (end of input). */
void tcpstream_flush(tcpstream_t *self);

/* Bytes held for all streams now: their buffers and queued early segments. */
size_t tcpstream_held(const tcpstream_t *self);

#endif
