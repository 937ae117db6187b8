/*
 * hep: decoder for HEPv3 (Homer Encapsulation Protocol) datagrams, and the framing of
 * HEPv3 over TCP; HEPv1 and HEPv2 datagrams too.
 *
 * Kamailio siptrace, OpenSIPS proto_hep, FreeSWITCH, Asterisk res_hep and
 * heplify mirror SIP in HEPv3: "HEP3", a 16-bit total length, then chunks of
 * (vendor, type, length incl. 6-byte header, body), all big-endian. We take
 * the generic chunks for addresses, ports, timestamp, protocol type, auth
 * key and payload (plain, or zlib-compressed in chunk 0x10). Every length is
 * checked against the datagram and fixed-size chunks against their size, as
 * heplify does; a bad datagram is rejected with a reason, never half-read.
 */
#ifndef SIPGUARD_HEP_H
#define SIPGUARD_HEP_H

#include <stddef.h>
#include <stdint.h>

#include "msg.h"

typedef struct {
    endpoint_t src, dst;
    int ip_proto;   /* 6 TCP, 17 UDP, 132 SCTP; 0 when absent */
    int proto_type; /* 1 = SIP */
    int64_t ts_sec;
    int32_t ts_usec;
    int has_ts;
    uint32_t capture_id;
    const char *auth_key; /* points into the datagram, not NUL-terminated */
    size_t auth_key_len;
    const uint8_t *payload;
    size_t payload_len;
    int compressed; /* payload came from chunk 0x10 and was inflated into the scratch buffer */
} hep_t;

/* True when buf starts with the HEPv3 magic. */
int hep_is_hep3(const uint8_t *buf, size_t len);

/*
 * HEPv3 over a byte stream (TCP, as OpenSIPS proto_hep, heplify and Kamailio siptrace with
 * transport=tcp send it): the length of the packet that starts buf, when all of it is within
 * the len bytes there; 0 when more bytes are needed to tell; -1 when buf starts no HEPv3
 * packet (a stream out of step, which has no marker to find the next packet by).
 */
long hep_stream_packet(const uint8_t *buf, size_t len);

/*
 * A HEPv3 TCP stream's bytes not yet taken: a packet begun and not yet whole. The reader reads
 * into hep_stream_tail (hep_stream_room bytes there), then hep_stream_take hands on each whole
 * packet and keeps the rest.
 */
#define HEP_STREAM_MAX 65535 /* the largest packet: a 16-bit total length */
typedef struct {
    uint8_t *buf; /* HEP_STREAM_MAX bytes */
    size_t have;
} hep_stream_t;

/* 0, or -1 when out of memory. */
int hep_stream_init(hep_stream_t *s);
void hep_stream_free(hep_stream_t *s);
static inline uint8_t *hep_stream_tail(hep_stream_t *s)
{
    return s->buf + s->have;
}
/* Never 0 between two takes: what is kept is less than a packet. */
static inline size_t hep_stream_room(const hep_stream_t *s)
{
    return HEP_STREAM_MAX - s->have;
}
/* Takes n more bytes (read into the tail): calls fn for each whole packet, in order, and keeps
 * the part of the next one. 0, or -1 when the bytes where a packet should start start none
 * (fn has had the packets before them). */
int hep_stream_take(hep_stream_t *s, size_t n,
                    void (*fn)(void *ctx, const uint8_t *packet, size_t len), void *ctx);

/*
 * Decodes one datagram. scratch (of scratch_len bytes) receives an inflated
 * compressed payload. Returns 0 and fills out, or -1 and sets *why to a
 * static reason.
 */
int hep_decode(const uint8_t *buf, size_t len, uint8_t *scratch, size_t scratch_len, hep_t *out,
               const char **why);

/*
 * HEPv1 and HEPv2, which Kamailio siptrace sends unless hep_version is set to 3 and older
 * FreeSWITCH and captagent setups still do: no magic, an 8-byte header (version, header
 * length, address family, IP protocol, source and destination port, big-endian), the two
 * addresses (IPv4 or IPv6), in version 2 a time header (seconds, microseconds and a 16-bit
 * capture id, in the sender's byte order: 10 bytes, which senders pad to 12), then the SIP
 * message. True when buf is
 * shaped so, every length consistent; since there is no magic, callers look only at
 * datagrams sent to a HEP port.
 */
int hep_is_hep12(const uint8_t *buf, size_t len);

/* Decodes a HEPv1 or HEPv2 datagram into out (proto_type SIP); 0, or -1 with *why. */
int hep12_decode(const uint8_t *buf, size_t len, hep_t *out, const char **why);

/*
 * Writes a HEPv3 datagram for a message into buf (of cap bytes): the
 * generic chunks for family, protocol, addresses, ports, timestamp, type SIP,
 * capture id, optional auth key, and payload. Returns its length, or 0 when
 * it does not fit. Used by tests, the generator and replay tools.
 */
size_t hep_encode(const msg_t *m, uint32_t capture_id, const char *auth_key, uint8_t *buf,
                  size_t cap);

#endif
