#include "decode.h"

#include <pcap/dlt.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "hep.h"
#include "ipfrag.h"
#include "sipframe.h"
#include "tcpstream.h"

#define MAX_DEPTH 8 /* nested tunnels before we give up: stops crafted loops */

/* Recent first sightings of a cooked capture's packets, by hash: copies come microseconds
 * apart, so few other packets pass between a packet and its copy to take its slot. */
#define COPY_SLOTS 1024
#define IFINDEX_UNKNOWN UINT32_MAX /* Linux cooked v1 does not name the interface */

typedef struct {
    uint64_t hash;
    uint64_t first_us; /* capture time of the first sighting */
    uint32_t len;
    uint32_t ifindex;
    uint32_t copies; /* sightings after the first */
} copy_slot_t;

struct decode {
    decode_opts_t o;
    skips_t *skips;
    decode_emit_fn emit;
    void *ctx;
    ipfrag_t *frag;
    tcpstream_t *tcp;
    uint8_t *hep_scratch;
    bool truncated;          /* current frame cut by the snap length */
    copy_slot_t *copy_slots; /* allocated at the first cooked frame */
    bool copy_check;         /* the current frame is cooked: check its first IP packet */
    uint32_t frame_ifindex;
    uint64_t frame_us;
};

void decode_opts_default(decode_opts_t *o)
{
    *o = (decode_opts_t){0}; /* every field a later one adds starts off */
    o->port_lo = 5060;
    o->port_hi = 5090;
    o->sniff = true;
    o->hep_port = 9060;
    o->max_msg = 65535;
    /* Past either bound the least recently used streams are dropped (counted). A border node
     * may hold tens of thousands of TCP clients, and an entry costs memory only once used;
     * each open stream holds 4 KiB or more. */
    o->tcp_streams = 65536;
    o->tcp_memory = (size_t)512 << 20;
}

static void tcp_emit(void *ctx, const msg_t *m)
{
    decode_t *d = ctx;
    d->emit(d->ctx, m);
}

decode_t *decode_new(const decode_opts_t *opts, skips_t *skips, decode_emit_fn emit, void *ctx)
{
    decode_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->o = *opts;
    d->skips = skips;
    d->emit = emit;
    d->ctx = ctx;
    d->frag = ipfrag_new(256, 30, skips);
    d->tcp = tcpstream_new(opts->max_msg, opts->tcp_streams, opts->tcp_memory, skips, tcp_emit, d);
    d->hep_scratch = malloc(opts->max_msg);
    if (!d->frag || !d->tcp || !d->hep_scratch)
        decode_destroy(&d);
    return d;
}

void decode_destroy(decode_t **self)
{
    if (!*self)
        return;
    ipfrag_destroy(&(*self)->frag);
    tcpstream_destroy(&(*self)->tcp);
    free((*self)->hep_scratch);
    free((*self)->copy_slots);
    free(*self);
    *self = NULL;
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static bool is_sip_port(const decode_t *d, uint16_t port)
{
    return port >= d->o.port_lo && port <= d->o.port_hi;
}

static void emit_message(decode_t *d, const msg_t *tmpl, const uint8_t *data, size_t len)
{
    msg_t m = *tmpl;
    m.data = data;
    m.len = len;
    if (len > d->o.max_msg) {
        skips_add(d->skips, "message longer than limit (kept, truncated)");
        m.len = d->o.max_msg;
        m.truncated = true;
    }
    d->emit(d->ctx, &m);
}

static void handle_hep(decode_t *d, const msg_t *outer, const uint8_t *p, size_t len)
{
    hep_t h;
    const char *why = NULL;
    int rc = hep_is_hep3(p, len) ? hep_decode(p, len, d->hep_scratch, d->o.max_msg, &h, &why)
                                 : hep12_decode(p, len, &h, &why);
    if (rc != 0) {
        skips_add(d->skips, "%s", why);
        return;
    }
    if (h.proto_type != 1) {
        skips_add(d->skips, "hep: payload type %d is not SIP", h.proto_type);
        return;
    }
    msg_t m = *outer;
    m.src = h.src;
    m.dst = h.dst;
    if (h.has_ts) {
        m.ts_sec = h.ts_sec;
        m.ts_usec = h.ts_usec;
    }
    m.transport = h.ip_proto == 6     ? TRANSPORT_TCP
                  : h.ip_proto == 132 ? TRANSPORT_SCTP
                                      : TRANSPORT_UDP;
    m.via_hep = true;
    m.has_mac = false;
    if (h.payload_len == 0 || sipframe_skip_crlf(h.payload, h.payload_len) == h.payload_len) {
        skips_add(d->skips, "hep: empty or keep-alive payload");
        return;
    }
    emit_message(d, &m, h.payload, h.payload_len);
}

void decode_udp_payload(decode_t *d, const msg_t *tmpl, const uint8_t *p, size_t len)
{
    if (hep_is_hep3(p, len)) {
        handle_hep(d, tmpl, p, len);
        return;
    }
    bool sip_port = is_sip_port(d, tmpl->src.port) || is_sip_port(d, tmpl->dst.port);
    /* HEPv1 and v2 have no magic: taken on the HEP port, or on a feed of HEP alone */
    if ((d->o.hep_only || (!sip_port && tmpl->dst.port == d->o.hep_port)) && hep_is_hep12(p, len)) {
        handle_hep(d, tmpl, p, len);
        return;
    }
    if (!sip_port && !(d->o.sniff && sipframe_looks_like_sip(p, len))) {
        skips_add(d->skips, "udp: not SIP (port and payload)");
        return;
    }
    if (len == 0) {
        skips_add(d->skips, "udp: empty payload on SIP port");
        return;
    }
    if (sipframe_skip_crlf(p, len) == len || (len <= 4 && memchr(p, 0, len))) {
        skips_add(d->skips, "udp: keep-alive");
        return;
    }
    emit_message(d, tmpl, p, len);
}

static void handle_ethernet(decode_t *d, msg_t *m, const uint8_t *p, size_t len, int depth);
static void handle_ethertype(decode_t *d, msg_t *m, uint16_t type, const uint8_t *p, size_t len,
                             int depth);

#define VXLAN_PORT 4789  /* IANA; AWS VPC Traffic Mirroring and Azure vTAP deliver mirrors so */
#define GENEVE_PORT 6081 /* IANA; AWS Gateway Load Balancer, VMware NSX */
#define TZSP_PORT 37008  /* MikroTik RouterOS's packet sniffer streams to it */

/* TZSP: version 1, type, encapsulation, then tagged fields up to the END tag (1), PADDING (0)
 * a byte alone, the others with a length byte; then the frame. Only Ethernet frames (1). */
static void handle_tzsp(decode_t *d, msg_t *m, const uint8_t *p, size_t len, int depth)
{
    if (len < 4 || p[0] != 1) {
        skips_add(d->skips, "tzsp: truncated header or version not 1");
        return;
    }
    uint16_t encap = rd16(p + 2);
    size_t at = 4;
    while (at < len && p[at] != 1)
        at += p[at] == 0 ? 1 : (at + 1 < len ? 2 + (size_t)p[at + 1] : len);
    if (at >= len) {
        skips_add(d->skips, "tzsp: tags run past the datagram");
        return;
    }
    if (encap != 1) {
        skips_add(d->skips, "tzsp: encapsulation %u is not Ethernet", encap);
        return;
    }
    handle_ethernet(d, m, p + at + 1, len - at - 1, depth + 1);
}

/* Mirrors that tunnel the mirrored frames in UDP: the clouds' VXLAN (RFC 7348) and GENEVE
 * (RFC 8926), and MikroTik's TZSP. Returns true when the datagram was one of them, and its
 * inner frame was decoded or its skip counted. */
static bool handle_udp_tunnel(decode_t *d, msg_t *m, const uint8_t *p, size_t len, int depth)
{
    if (m->dst.port == TZSP_PORT) {
        handle_tzsp(d, m, p, len, depth);
        return true;
    }
    if (m->dst.port == VXLAN_PORT && len >= 8 && (p[0] & 0x08)) { /* I flag: a VNI follows */
        handle_ethernet(d, m, p + 8, len - 8, depth + 1);
        return true;
    }
    if (m->dst.port == GENEVE_PORT && len >= 8 && (p[0] >> 6) == 0) {
        size_t hl = 8 + (size_t)(p[0] & 0x3f) * 4;
        uint16_t proto = rd16(p + 2);
        if (hl > len) {
            skips_add(d->skips, "geneve: truncated header");
            return true;
        }
        if (proto == 0x6558)
            handle_ethernet(d, m, p + hl, len - hl, depth + 1);
        else
            handle_ethertype(d, m, proto, p + hl, len - hl, depth + 1);
        return true;
    }
    return false;
}

static void handle_udp(decode_t *d, msg_t *m, const uint8_t *p, size_t len, int depth)
{
    if (len < 8) {
        skips_add(d->skips, "udp: truncated header");
        return;
    }
    m->src.port = rd16(p);
    m->dst.port = rd16(p + 2);
    size_t ulen = rd16(p + 4);
    m->transport = TRANSPORT_UDP;
    if (ulen < 8) {
        skips_add(d->skips, "udp: length field below 8");
        return;
    }
    if (ulen > len) {
        m->truncated = true; /* snap length cut the datagram: keep what we have */
        ulen = len;
    }
    if (!is_sip_port(d, m->dst.port) && handle_udp_tunnel(d, m, p + 8, ulen - 8, depth))
        return;
    decode_udp_payload(d, m, p + 8, ulen - 8);
}

static void handle_tcp(decode_t *d, msg_t *m, const uint8_t *p, size_t len)
{
    if (len < 20 || (size_t)(p[12] >> 4) * 4 < 20 || (size_t)(p[12] >> 4) * 4 > len) {
        skips_add(d->skips, "tcp: truncated or bad header");
        return;
    }
    size_t hl = (size_t)(p[12] >> 4) * 4;
    m->src.port = rd16(p);
    m->dst.port = rd16(p + 2);
    m->transport = TRANSPORT_TCP;
    uint8_t f = p[13], flags = 0;
    if (f & 0x01)
        flags |= TCP_FLAG_FIN;
    if (f & 0x02)
        flags |= TCP_FLAG_SYN;
    if (f & 0x04)
        flags |= TCP_FLAG_RST;
    size_t plen = len - hl;
    bool sip_port = is_sip_port(d, m->src.port) || is_sip_port(d, m->dst.port);
    /* elsewhere: a stream followed already, or one whose first bytes look like SIP or like
     * the HTTP upgrade of SIP over WebSocket (WebRTC gateways listen on 80, 443, 8080...) */
    bool sniffed =
        d->o.sniff && plen &&
        (sipframe_looks_like_sip(p + hl, plen) || tcpstream_starts_websocket(p + hl, plen));
    if (!sip_port && !sniffed && !tcpstream_follows(d->tcp, &m->src, &m->dst)) {
        if (plen)
            skips_add(d->skips, "tcp: not SIP (port and payload)");
        return;
    }
    tcpstream_segment(d->tcp, m, rd32(p + 4), flags, p + hl, plen);
}

/* SCTP: each DATA chunk that is a whole user message (B and E set) is one SIP message. */
static void handle_sctp(decode_t *d, msg_t *m, const uint8_t *p, size_t len)
{
    if (len < 12) {
        skips_add(d->skips, "sctp: truncated header");
        return;
    }
    m->src.port = rd16(p);
    m->dst.port = rd16(p + 2);
    m->transport = TRANSPORT_SCTP;
    for (size_t off = 12; off + 4 <= len;) {
        uint8_t type = p[off], flags = p[off + 1];
        size_t clen = rd16(p + off + 2);
        if (clen < 4 || clen > len - off) {
            skips_add(d->skips, "sctp: bad chunk length");
            return;
        }
        if (type == 0 && clen > 16) {
            if ((flags & 0x03) == 0x03)
                decode_udp_payload(d, m, p + off + 16, clen - 16);
            else
                skips_add(d->skips, "sctp: fragmented user message not supported");
        }
        off += (clen + 3) & ~(size_t)3;
    }
}

static void handle_ip(decode_t *d, msg_t *m, const uint8_t *p, size_t len, int depth);

static void handle_transport(decode_t *d, msg_t *m, int proto, const uint8_t *p, size_t len,
                             int depth);

static void handle_gre(decode_t *d, msg_t *m, const uint8_t *p, size_t len, int depth);

static void handle_transport(decode_t *d, msg_t *m, int proto, const uint8_t *p, size_t len,
                             int depth)
{
    switch (proto) {
    case 17:
        handle_udp(d, m, p, len, depth);
        break;
    case 6:
        handle_tcp(d, m, p, len);
        break;
    case 132:
        handle_sctp(d, m, p, len);
        break;
    case 4:
    case 41:
        handle_ip(d, m, p, len, depth + 1);
        break;
    case 47:
        handle_gre(d, m, p, len, depth + 1);
        break;
    case 1:
    case 58:
        skips_add(d->skips, "icmp");
        break;
    default:
        skips_add(d->skips, "ip protocol %d", proto);
    }
}

static void handle_ipv4(decode_t *d, msg_t *m, const uint8_t *p, size_t len, int depth)
{
    size_t ihl = (size_t)(p[0] & 0x0f) * 4;
    if (len < 20 || ihl < 20 || ihl > len) {
        skips_add(d->skips, "ipv4: truncated or bad header");
        return;
    }
    size_t total = rd16(p + 2);
    if (total < ihl) {
        skips_add(d->skips, "ipv4: total length below header length");
        return;
    }
    if (total > len) {
        m->truncated = true;
        total = len;
    }
    m->src.family = m->dst.family = 4;
    memset(m->src.addr, 0, 16);
    memset(m->dst.addr, 0, 16);
    memcpy(m->src.addr, p + 12, 4);
    memcpy(m->dst.addr, p + 16, 4);
    uint16_t frag = rd16(p + 6);
    size_t off = (size_t)(frag & 0x1fff) * 8;
    int more = (frag & 0x2000) != 0;
    if (off || more) {
        ipfrag_key_t k = {.family = 4, .id = rd16(p + 4), .proto = p[9]};
        memcpy(k.src, p + 12, 4);
        memcpy(k.dst, p + 16, 4);
        const uint8_t *whole;
        size_t wlen;
        if (ipfrag_add(d->frag, &k, m->ts_sec, off, more, p + ihl, total - ihl, &whole, &wlen) == 1)
            handle_transport(d, m, p[9], whole, wlen, depth);
        return;
    }
    handle_transport(d, m, p[9], p + ihl, total - ihl, depth);
}

static void handle_ipv6(decode_t *d, msg_t *m, const uint8_t *p, size_t len, int depth)
{
    if (len < 40) {
        skips_add(d->skips, "ipv6: truncated header");
        return;
    }
    size_t plen = rd16(p + 4);
    if (plen + 40 > len) {
        m->truncated = true;
        plen = len - 40;
    }
    m->src.family = m->dst.family = 6;
    memcpy(m->src.addr, p + 8, 16);
    memcpy(m->dst.addr, p + 24, 16);
    int next = p[6];
    const uint8_t *q = p + 40;
    size_t left = plen;
    for (;;) {
        if (next == 0 || next == 43 || next == 60) { /* hop-by-hop, routing, destination */
            if (left < 8 || (size_t)(q[1] + 1) * 8 > left) {
                skips_add(d->skips, "ipv6: bad extension header");
                return;
            }
            size_t hl = (size_t)(q[1] + 1) * 8;
            next = q[0];
            q += hl;
            left -= hl;
            continue;
        }
        if (next == 44) { /* fragment */
            if (left < 8) {
                skips_add(d->skips, "ipv6: bad fragment header");
                return;
            }
            uint16_t fo = rd16(q + 2);
            ipfrag_key_t k = {.family = 6, .id = rd32(q + 4), .proto = q[0]};
            memcpy(k.src, p + 8, 16);
            memcpy(k.dst, p + 24, 16);
            const uint8_t *whole;
            size_t wlen;
            if (ipfrag_add(d->frag, &k, m->ts_sec, (size_t)(fo & 0xfff8), fo & 1, q + 8, left - 8,
                           &whole, &wlen) == 1)
                handle_transport(d, m, k.proto, whole, wlen, depth);
            return;
        }
        break;
    }
    handle_transport(d, m, next, q, left, depth);
}

/* The IP packet's own length, without the link layer's padding behind it. */
static size_t ip_packet_len(const uint8_t *p, size_t len)
{
    size_t own = len;
    if ((p[0] >> 4) == 4 && len >= 4)
        own = rd16(p + 2);
    else if ((p[0] >> 4) == 6 && len >= 6)
        own = 40 + (size_t)rd16(p + 4);
    return own < len ? own : len;
}

/* True when this IP packet is a copy of one the cooked capture showed on another interface
 * (decode.h); a packet that is not becomes the slot's first sighting. */
static bool is_copy(decode_t *d, const uint8_t *p, size_t len)
{
    if (!d->copy_slots && !(d->copy_slots = calloc(COPY_SLOTS, sizeof *d->copy_slots)))
        return false; /* without memory, keep copies rather than lose packets */
    size_t n = ip_packet_len(p, len);
    uint64_t h = XXH3_64bits(p, n);
    copy_slot_t *s = &d->copy_slots[h & (COPY_SLOTS - 1)];
    uint64_t age = d->frame_us - s->first_us; /* wraps to huge when time went back */
    bool other_interface = s->ifindex == IFINDEX_UNKNOWN || s->ifindex != d->frame_ifindex;
    if (s->hash == h && s->len == n && age < COPY_WINDOW_US && other_interface &&
        s->copies < COPY_MAX) {
        s->copies++;
        return true;
    }
    *s = (copy_slot_t){
        .hash = h, .first_us = d->frame_us, .len = (uint32_t)n, .ifindex = d->frame_ifindex};
    return false;
}

static void handle_ip(decode_t *d, msg_t *m, const uint8_t *p, size_t len, int depth)
{
    if (depth > MAX_DEPTH) {
        skips_add(d->skips, "encapsulation nested too deep");
        return;
    }
    if (len < 1) {
        skips_add(d->skips, "ip: empty packet");
        return;
    }
    if (d->copy_check) { /* the frame's outermost IP packet only: a tunnel's copy is its own */
        d->copy_check = false;
        if (is_copy(d, p, len)) {
            skips_add(d->skips, "%s", DECODE_COPY_REASON);
            return;
        }
    }
    switch (p[0] >> 4) {
    case 4:
        handle_ipv4(d, m, p, len, depth);
        break;
    case 6:
        handle_ipv6(d, m, p, len, depth);
        break;
    default:
        skips_add(d->skips, "ip: version %d", p[0] >> 4);
    }
}

/* PPP protocol field to IP; addr/control bytes (ff 03) may precede it. */
static void handle_ppp(decode_t *d, msg_t *m, const uint8_t *p, size_t len, int depth)
{
    if (len >= 2 && p[0] == 0xff && p[1] == 0x03) {
        p += 2;
        len -= 2;
    }
    if (len < 2) {
        skips_add(d->skips, "ppp: truncated");
        return;
    }
    uint16_t proto = rd16(p);
    if (proto == 0x0021 || proto == 0x0057)
        handle_ip(d, m, p + 2, len - 2, depth + 1);
    else
        skips_add(d->skips, "ppp: protocol 0x%04x", proto);
}

static void handle_ethernet(decode_t *d, msg_t *m, const uint8_t *p, size_t len, int depth)
{
    if (len < 14) {
        skips_add(d->skips, "ethernet: truncated header");
        return;
    }
    m->has_mac = true;
    memcpy(m->src_mac, p + 6, 6);
    handle_ethertype(d, m, rd16(p + 12), p + 14, len - 14, depth);
}

static void handle_gre(decode_t *d, msg_t *m, const uint8_t *p, size_t len, int depth)
{
    if (len < 4) {
        skips_add(d->skips, "gre: truncated header");
        return;
    }
    uint16_t flags = rd16(p), proto = rd16(p + 2);
    size_t hl =
        4 + ((flags & 0x8000) ? 4 : 0) + ((flags & 0x2000) ? 4 : 0) + ((flags & 0x1000) ? 4 : 0);
    if ((flags & 0x0007) == 1) /* enhanced GRE (PPTP): key always, ack optional */
        hl = 8 + ((flags & 0x1000) ? 4 : 0) + ((flags & 0x0080) ? 4 : 0);
    if (hl > len) {
        skips_add(d->skips, "gre: truncated header");
        return;
    }
    p += hl;
    len -= hl;
    switch (proto) {
    case 0x88be: /* ERSPAN type II: 8-byte header, then the mirrored Ethernet frame */
        if (len < 8) {
            skips_add(d->skips, "erspan: truncated header");
            return;
        }
        handle_ethernet(d, m, p + 8, len - 8, depth + 1);
        break;
    case 0x22eb: /* ERSPAN type III: 12 bytes, plus 8 when the O bit is set */
        if (len < 12 || (len < 20 && (p[11] & 0x01))) {
            skips_add(d->skips, "erspan: truncated header");
            return;
        }
        handle_ethernet(d, m, p + 12 + ((p[11] & 0x01) ? 8 : 0),
                        len - 12 - ((p[11] & 0x01) ? 8 : 0), depth + 1);
        break;
    case 0x6558:
        handle_ethernet(d, m, p, len, depth + 1);
        break;
    case 0x880b:
        handle_ppp(d, m, p, len, depth);
        break;
    default:
        handle_ethertype(d, m, proto, p, len, depth + 1);
    }
}

static void handle_ethertype(decode_t *d, msg_t *m, uint16_t type, const uint8_t *p, size_t len,
                             int depth)
{
    if (depth > MAX_DEPTH) {
        skips_add(d->skips, "encapsulation nested too deep");
        return;
    }
    switch (type) {
    case 0x0800:
    case 0x86dd:
        handle_ip(d, m, p, len, depth);
        break;
    case 0x8100: /* 802.1Q */
    case 0x88a8: /* 802.1ad */
    case 0x9100:
        if (len < 4) {
            skips_add(d->skips, "vlan: truncated tag");
            return;
        }
        handle_ethertype(d, m, rd16(p + 2), p + 4, len - 4, depth + 1);
        break;
    case 0x8864: /* PPPoE session */
        if (len < 6) {
            skips_add(d->skips, "pppoe: truncated header");
            return;
        }
        handle_ppp(d, m, p + 6, len - 6, depth);
        break;
    case 0x8847:
    case 0x8848: { /* MPLS: pop labels to the bottom of the stack, then guess IP by version */
        size_t off = 0;
        while (off + 4 <= len && !(p[off + 2] & 0x01))
            off += 4;
        off += 4;
        if (off > len) {
            skips_add(d->skips, "mpls: truncated label stack");
            return;
        }
        handle_ip(d, m, p + off, len - off, depth + 1);
        break;
    }
    case 0x0806:
        skips_add(d->skips, "arp");
        break;
    default:
        skips_add(d->skips, "ethertype 0x%04x", type);
    }
}

bool decode_linktype_supported(int linktype)
{
    switch (linktype) {
    case DLT_EN10MB:
    case DLT_NULL:
    case DLT_LOOP:
    case DLT_RAW: /* libpcap maps LINKTYPE_RAW (101) to DLT_RAW */
    case DLT_IPV4:
    case DLT_IPV6:
    case DLT_LINUX_SLL:
    case DLT_LINUX_SLL2:
    case DLT_PPP:
        return true;
    default:
        return false;
    }
}

/* BSD loopback: a 4-byte address family, host order for NULL, network order for LOOP. */
static void handle_null(decode_t *d, msg_t *m, const uint8_t *p, size_t len, bool net_order)
{
    if (len < 4) {
        skips_add(d->skips, "loopback: truncated header");
        return;
    }
    uint32_t fam;
    if (net_order) {
        fam = rd32(p);
    } else {
        memcpy(&fam, p, 4);
        if (fam > 0xffff) /* written on a host of the other byte order */
            fam = __builtin_bswap32(fam);
    }
    if (fam == 2 || fam == 24 || fam == 28 || fam == 30)
        handle_ip(d, m, p + 4, len - 4, 0);
    else
        skips_add(d->skips, "loopback: address family %u", fam);
}

void decode_packet(decode_t *d, int linktype, int64_t sec, int32_t usec, const uint8_t *p,
                   size_t caplen, size_t wirelen)
{
    msg_t m = {0};
    m.ts_sec = sec;
    m.ts_usec = usec;
    m.truncated = caplen < wirelen;
    bool cooked = linktype == DLT_LINUX_SLL || linktype == DLT_LINUX_SLL2;
    d->copy_check = cooked && !d->o.keep_copies;
    if (d->copy_check) {
        /* unsigned: a crafted timestamp wraps instead of overflowing */
        d->frame_us = (uint64_t)sec * 1000000u + (uint64_t)(int64_t)usec;
        d->frame_ifindex =
            linktype == DLT_LINUX_SLL2 && caplen >= 8 ? rd32(p + 4) : IFINDEX_UNKNOWN;
    }
    switch (linktype) {
    case DLT_EN10MB:
        handle_ethernet(d, &m, p, caplen, 0);
        break;
    case DLT_NULL:
        handle_null(d, &m, p, caplen, false);
        break;
    case DLT_LOOP:
        handle_null(d, &m, p, caplen, true);
        break;
    case DLT_RAW:
    case DLT_IPV4:
    case DLT_IPV6:
        handle_ip(d, &m, p, caplen, 0);
        break;
    case DLT_LINUX_SLL:
        if (caplen < 16) {
            skips_add(d->skips, "linux cooked: truncated header");
            return;
        }
        handle_ethertype(d, &m, rd16(p + 14), p + 16, caplen - 16, 0);
        break;
    case DLT_LINUX_SLL2:
        if (caplen < 20) {
            skips_add(d->skips, "linux cooked v2: truncated header");
            return;
        }
        handle_ethertype(d, &m, rd16(p), p + 20, caplen - 20, 0);
        break;
    case DLT_PPP:
        handle_ppp(d, &m, p, caplen, 0);
        break;
    default:
        skips_add(d->skips, "unsupported link type %d", linktype);
    }
}

void decode_flush(decode_t *d)
{
    tcpstream_flush(d->tcp);
    ipfrag_flush(d->frag);
}

size_t decode_tcp_held(const decode_t *d)
{
    return tcpstream_held(d->tcp);
}
