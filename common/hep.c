#include "hep.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

enum {
    HEP_IP_FAMILY = 0x01,
    HEP_IP_PROTO = 0x02,
    HEP_IPV4_SRC = 0x03,
    HEP_IPV4_DST = 0x04,
    HEP_IPV6_SRC = 0x05,
    HEP_IPV6_DST = 0x06,
    HEP_SRC_PORT = 0x07,
    HEP_DST_PORT = 0x08,
    HEP_TS_SEC = 0x09,
    HEP_TS_USEC = 0x0a,
    HEP_PROTO_TYPE = 0x0b,
    HEP_CAPTURE_ID = 0x0c,
    HEP_AUTH_KEY = 0x0e,
    HEP_PAYLOAD = 0x0f,
    HEP_PAYLOAD_ZIP = 0x10,
};

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

int hep_is_hep3(const uint8_t *buf, size_t len)
{
    return len >= 6 && memcmp(buf, "HEP3", 4) == 0;
}

long hep_stream_packet(const uint8_t *buf, size_t len)
{
    size_t magic = len < 4 ? len : 4;
    if (memcmp(buf, "HEP3", magic) != 0)
        return -1;
    if (len < 6)
        return 0;
    size_t total = (size_t)buf[4] << 8 | buf[5];
    if (total < 6)
        return -1; /* shorter than its own header: no next packet to find after it */
    return total <= len ? (long)total : 0;
}

int hep_stream_init(hep_stream_t *s)
{
    s->have = 0;
    s->buf = malloc(HEP_STREAM_MAX);
    return s->buf ? 0 : -1;
}

void hep_stream_free(hep_stream_t *s)
{
    free(s->buf);
    s->buf = NULL;
    s->have = 0;
}

int hep_stream_take(hep_stream_t *s, size_t n,
                    void (*fn)(void *ctx, const uint8_t *packet, size_t len), void *ctx)
{
    s->have += n;
    size_t off = 0;
    long plen;
    while (off < s->have && (plen = hep_stream_packet(s->buf + off, s->have - off)) > 0) {
        fn(ctx, s->buf + off, (size_t)plen);
        off += (size_t)plen;
    }
    if (off < s->have && hep_stream_packet(s->buf + off, s->have - off) < 0)
        return -1;
    memmove(s->buf, s->buf + off, s->have - off);
    s->have -= off;
    return 0;
}

/* The body size a generic chunk type must have, or 0 when it varies. */
static size_t fixed_body_size(uint16_t type)
{
    switch (type) {
    case HEP_IP_FAMILY:
    case HEP_IP_PROTO:
    case HEP_PROTO_TYPE:
        return 1;
    case HEP_SRC_PORT:
    case HEP_DST_PORT:
        return 2;
    case HEP_IPV4_SRC:
    case HEP_IPV4_DST:
    case HEP_TS_SEC:
    case HEP_TS_USEC:
    case HEP_CAPTURE_ID:
        return 4;
    case HEP_IPV6_SRC:
    case HEP_IPV6_DST:
        return 16;
    default:
        return 0;
    }
}

static int inflate_payload(const uint8_t *in, size_t in_len, uint8_t *out, size_t cap,
                           size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof z);
    /* 15 + 32: accept zlib and gzip headers, as senders differ. */
    if (inflateInit2(&z, 15 + 32) != Z_OK)
        return -1;
    z.next_in = (Bytef *)in;
    z.avail_in = (uInt)in_len;
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int rc = inflate(&z, Z_FINISH);
    *out_len = cap - z.avail_out;
    inflateEnd(&z);
    return rc == Z_STREAM_END ? 0 : -1;
}

static void apply_chunk(hep_t *h, uint16_t type, const uint8_t *b, size_t blen)
{
    switch (type) {
    case HEP_IP_FAMILY:
        h->src.family = h->dst.family = b[0] == 2 ? 4 : b[0] == 10 ? 6 : 0;
        break;
    case HEP_IP_PROTO:
        h->ip_proto = b[0];
        break;
    case HEP_IPV4_SRC:
        memcpy(h->src.addr, b, 4);
        break;
    case HEP_IPV4_DST:
        memcpy(h->dst.addr, b, 4);
        break;
    case HEP_IPV6_SRC:
        memcpy(h->src.addr, b, 16);
        break;
    case HEP_IPV6_DST:
        memcpy(h->dst.addr, b, 16);
        break;
    case HEP_SRC_PORT:
        h->src.port = rd16(b);
        break;
    case HEP_DST_PORT:
        h->dst.port = rd16(b);
        break;
    case HEP_TS_SEC:
        h->ts_sec = rd32(b);
        h->has_ts = 1;
        break;
    case HEP_TS_USEC:
        h->ts_usec = (int32_t)(rd32(b) % 1000000u);
        break;
    case HEP_PROTO_TYPE:
        h->proto_type = b[0];
        break;
    case HEP_CAPTURE_ID:
        h->capture_id = rd32(b);
        break;
    case HEP_AUTH_KEY:
        h->auth_key = (const char *)b;
        h->auth_key_len = blen;
        break;
    case HEP_PAYLOAD:
        h->payload = b;
        h->payload_len = blen;
        break;
    default:
        break; /* correlation id, VLAN, node name, vendor chunks: not needed */
    }
}

enum { HEP12_HEADER = 8, HEP12_TIME = 10, AF_INET_LINUX = 2, AF_INET6_LINUX = 10 };

/* Bytes of the addresses after the header, by the family (Linux's numbers, which every HEPv1
 * and HEPv2 sender we know writes); 0 for any other. */
static size_t hep12_address_bytes(uint8_t family)
{
    return family == AF_INET_LINUX ? 8 : family == AF_INET6_LINUX ? 32 : 0;
}

int hep_is_hep12(const uint8_t *buf, size_t len)
{
    if (len < HEP12_HEADER || (buf[0] != 1 && buf[0] != 2))
        return 0;
    size_t addr = hep12_address_bytes(buf[2]);
    size_t head = HEP12_HEADER + addr + (buf[0] == 2 ? HEP12_TIME : 0);
    bool proto = buf[3] == 17 || buf[3] == 6 || buf[3] == 132;
    /* the header length field counts the header and the addresses, never the time header */
    return addr && proto && buf[1] == HEP12_HEADER + addr && len >= head;
}

/* The sender's host order is not in the datagram: little-endian (x86, ARM) first, big-endian
 * when that gives no valid microseconds. */
static bool hep12_time(const uint8_t *t, int64_t *sec, int32_t *usec)
{
    uint32_t le_s =
                 (uint32_t)t[0] | (uint32_t)t[1] << 8 | (uint32_t)t[2] << 16 | (uint32_t)t[3] << 24,
             le_u =
                 (uint32_t)t[4] | (uint32_t)t[5] << 8 | (uint32_t)t[6] << 16 | (uint32_t)t[7] << 24;
    if (le_u < 1000000) {
        *sec = le_s;
        *usec = (int32_t)le_u;
        return true;
    }
    if (rd32(t + 4) < 1000000) {
        *sec = rd32(t);
        *usec = (int32_t)rd32(t + 4);
        return true;
    }
    return false;
}

int hep12_decode(const uint8_t *buf, size_t len, hep_t *out, const char **why)
{
    memset(out, 0, sizeof *out);
    if (!hep_is_hep12(buf, len)) {
        *why = "hep: not a HEPv1 or HEPv2 datagram";
        return -1;
    }
    size_t addr = hep12_address_bytes(buf[2]), at = HEP12_HEADER;
    out->src.family = out->dst.family = addr == 8 ? 4 : 6;
    memcpy(out->src.addr, buf + at, addr / 2);
    memcpy(out->dst.addr, buf + at + addr / 2, addr / 2);
    out->src.port = rd16(buf + 4);
    out->dst.port = rd16(buf + 6);
    at += addr;
    if (buf[0] == 2) {
        out->has_ts = hep12_time(buf + at, &out->ts_sec, &out->ts_usec);
        out->capture_id = (uint32_t)buf[at + 8] | (uint32_t)buf[at + 9] << 8;
        at += HEP12_TIME;
        /* senders copy a C struct of 10 bytes' fields, padded to 12 (Kamailio, FreeSWITCH,
         * captagent; seen from Kamailio 5.6), unless it is packed: a message never starts with
         * a zero byte */
        if (len - at >= 2 && buf[at] == 0 && buf[at + 1] == 0)
            at += 2;
    }
    out->ip_proto = buf[3];
    out->proto_type = 1; /* these versions carry SIP only */
    out->payload = buf + at;
    out->payload_len = len - at;
    return 0;
}

int hep_decode(const uint8_t *buf, size_t len, uint8_t *scratch, size_t scratch_len, hep_t *out,
               const char **why)
{
    memset(out, 0, sizeof *out);
    if (!hep_is_hep3(buf, len)) {
        *why = "hep: not a HEPv3 datagram";
        return -1;
    }
    size_t total = rd16(buf + 4);
    if (total != len) {
        *why = total > len ? "hep: total length longer than datagram"
                           : "hep: total length shorter than datagram";
        return -1;
    }
    const uint8_t *zipped = NULL;
    size_t zipped_len = 0;
    for (size_t off = 6; off < len;) {
        if (len - off < 6) {
            *why = "hep: truncated chunk header";
            return -1;
        }
        uint16_t vendor = rd16(buf + off), type = rd16(buf + off + 2);
        size_t clen = rd16(buf + off + 4);
        if (clen < 6) {
            *why = "hep: chunk length below 6";
            return -1;
        }
        if (clen > len - off) {
            *why = "hep: chunk longer than packet";
            return -1;
        }
        const uint8_t *body = buf + off + 6;
        size_t blen = clen - 6;
        if (vendor == 0) {
            size_t want = fixed_body_size(type);
            if (want && blen != want) {
                *why = "hep: fixed-size chunk has wrong length";
                return -1;
            }
            if (type == HEP_PAYLOAD_ZIP) {
                zipped = body;
                zipped_len = blen;
            } else {
                apply_chunk(out, type, body, blen);
            }
        }
        off += clen;
    }
    if (!out->payload && zipped) {
        size_t n = 0;
        if (inflate_payload(zipped, zipped_len, scratch, scratch_len, &n) != 0) {
            *why = "hep: compressed payload does not inflate";
            return -1;
        }
        out->payload = scratch;
        out->payload_len = n;
        out->compressed = 1;
    }
    if (!out->payload) {
        *why = "hep: no payload chunk";
        return -1;
    }
    if (out->src.family == 0) {
        *why = "hep: no IP family chunk";
        return -1;
    }
    return 0;
}

static size_t put_chunk(uint8_t *buf, size_t cap, size_t off, uint16_t type, const void *body,
                        size_t blen)
{
    if (off == 0 || blen > 0xffff - 6 || off + 6 + blen > cap)
        return 0;
    uint8_t *p = buf + off;
    size_t clen = 6 + blen;
    p[0] = 0;
    p[1] = 0;
    p[2] = (uint8_t)(type >> 8);
    p[3] = (uint8_t)type;
    p[4] = (uint8_t)(clen >> 8);
    p[5] = (uint8_t)clen;
    memcpy(p + 6, body, blen);
    return off + clen;
}

size_t hep_encode(const msg_t *m, uint32_t capture_id, const char *auth_key, uint8_t *buf,
                  size_t cap)
{
    if (cap < 6 || (m->src.family != 4 && m->src.family != 6))
        return 0;
    memcpy(buf, "HEP3", 4);
    size_t off = 6;
    uint8_t fam = m->src.family == 4 ? 2 : 10;
    uint8_t proto = m->transport == TRANSPORT_TCP || m->transport == TRANSPORT_WS ? 6
                    : m->transport == TRANSPORT_SCTP                              ? 132
                                                                                  : 17;
    uint8_t sp[2] = {(uint8_t)(m->src.port >> 8), (uint8_t)m->src.port};
    uint8_t dp[2] = {(uint8_t)(m->dst.port >> 8), (uint8_t)m->dst.port};
    uint32_t s = (uint32_t)m->ts_sec, us = (uint32_t)m->ts_usec, id = capture_id;
    uint8_t ts[4] = {(uint8_t)(s >> 24), (uint8_t)(s >> 16), (uint8_t)(s >> 8), (uint8_t)s};
    uint8_t tu[4] = {(uint8_t)(us >> 24), (uint8_t)(us >> 16), (uint8_t)(us >> 8), (uint8_t)us};
    uint8_t ci[4] = {(uint8_t)(id >> 24), (uint8_t)(id >> 16), (uint8_t)(id >> 8), (uint8_t)id};
    uint8_t sip = 1;
    size_t alen = m->src.family == 4 ? 4 : 16;
    off = put_chunk(buf, cap, off, HEP_IP_FAMILY, &fam, 1);
    off = put_chunk(buf, cap, off, HEP_IP_PROTO, &proto, 1);
    off = put_chunk(buf, cap, off, m->src.family == 4 ? HEP_IPV4_SRC : HEP_IPV6_SRC, m->src.addr,
                    alen);
    off = put_chunk(buf, cap, off, m->src.family == 4 ? HEP_IPV4_DST : HEP_IPV6_DST, m->dst.addr,
                    alen);
    off = put_chunk(buf, cap, off, HEP_SRC_PORT, sp, 2);
    off = put_chunk(buf, cap, off, HEP_DST_PORT, dp, 2);
    off = put_chunk(buf, cap, off, HEP_TS_SEC, ts, 4);
    off = put_chunk(buf, cap, off, HEP_TS_USEC, tu, 4);
    off = put_chunk(buf, cap, off, HEP_PROTO_TYPE, &sip, 1);
    off = put_chunk(buf, cap, off, HEP_CAPTURE_ID, ci, 4);
    if (auth_key)
        off = put_chunk(buf, cap, off, HEP_AUTH_KEY, auth_key, strlen(auth_key));
    off = put_chunk(buf, cap, off, HEP_PAYLOAD, m->data, m->len);
    if (off == 0 || off > 0xffff)
        return 0;
    buf[4] = (uint8_t)(off >> 8);
    buf[5] = (uint8_t)off;
    return off;
}
