#include "pcapw.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PCAPW_STREAMS 4096 /* directions the table starts with; it doubles at half full */

typedef struct {
    endpoint_t src, dst;
    uint32_t seq;
    int used;
} tcp_dir_t;

struct pcapw {
    FILE *f;
    int own;
    int error;
    uint16_t ip_id;
    tcp_dir_t *tcp;
    size_t tcp_cap, tcp_used;
    uint8_t *frame;
};

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static pcapw_t *pcapw_init(FILE *f, int own)
{
    pcapw_t *w = calloc(1, sizeof *w);
    if (!w)
        return NULL;
    w->f = f;
    w->own = own;
    w->tcp = calloc(PCAPW_STREAMS, sizeof *w->tcp);
    w->tcp_cap = PCAPW_STREAMS;
    w->frame = malloc(70000 + 128);
    if (!w->tcp || !w->frame) {
        free(w->tcp);
        free(w->frame);
        free(w);
        return NULL;
    }
    /* global header: microsecond pcap, version 2.4, snaplen 262144, Ethernet */
    uint32_t hdr[6] = {0xa1b2c3d4, 0x00040002, 0, 0, 262144, 1};
    if (fwrite(hdr, sizeof hdr, 1, f) != 1)
        w->error = 1;
    return w;
}

pcapw_t *pcapw_open(const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return NULL;
    pcapw_t *w = pcapw_init(f, 1);
    if (!w)
        fclose(f);
    return w;
}

pcapw_t *pcapw_from_file(FILE *f)
{
    return pcapw_init(f, 0);
}

static uint32_t sum16(const uint8_t *p, size_t len, uint32_t sum)
{
    for (size_t i = 0; i + 1 < len; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (len & 1)
        sum += (uint32_t)(p[len - 1] << 8);
    return sum;
}

static uint16_t fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* Checksum of a UDP or TCP segment with the IPv4 or IPv6 pseudo-header. */
static uint16_t l4_checksum(const msg_t *m, int proto, const uint8_t *seg, size_t len)
{
    uint32_t sum = 0;
    size_t alen = m->src.family == 4 ? 4 : 16;
    sum = sum16(m->src.addr, alen, sum);
    sum = sum16(m->dst.addr, alen, sum);
    sum += (uint32_t)proto;
    sum += (uint32_t)(len & 0xffff) + (uint32_t)(len >> 16);
    sum = sum16(seg, len, sum);
    uint16_t c = fold(sum);
    return c == 0 && proto == 17 ? 0xffff : c;
}

static size_t dir_hash(const endpoint_t *src, const endpoint_t *dst)
{
    size_t h = 0;
    for (size_t i = 0; i < 16; i++)
        h = h * 31 + src->addr[i] * 7 + dst->addr[i];
    return (h * 31 + src->port) * 31 + dst->port;
}

/* Room for two more directions with the table at most half full (a connection adds both of
 * its directions at once, and tcp_dir's pointers must survive the second lookup). A table
 * that cannot grow keeps its size: tcp_dir then shares a slot when it is full. */
static void tcp_reserve(pcapw_t *w)
{
    if (2 * (w->tcp_used + 2) <= w->tcp_cap)
        return;
    size_t cap = 2 * w->tcp_cap;
    tcp_dir_t *t = calloc(cap, sizeof *t);
    if (!t)
        return;
    for (size_t i = 0; i < w->tcp_cap; i++) {
        if (!w->tcp[i].used)
            continue;
        size_t at = dir_hash(&w->tcp[i].src, &w->tcp[i].dst) % cap;
        while (t[at].used)
            at = (at + 1) % cap;
        t[at] = w->tcp[i];
    }
    free(w->tcp);
    w->tcp = t;
    w->tcp_cap = cap;
}

/* The direction src -> dst, created when absent (*created set) with an initial sequence
 * number derived from the endpoints. */
static tcp_dir_t *tcp_dir(pcapw_t *w, const endpoint_t *src, const endpoint_t *dst, int *created)
{
    size_t h = dir_hash(src, dst);
    *created = 0;
    for (size_t probe = 0; probe < w->tcp_cap; probe++) {
        tcp_dir_t *d = &w->tcp[(h + probe) % w->tcp_cap];
        if (!d->used) {
            d->used = 1;
            d->src = *src;
            d->dst = *dst;
            d->seq = (uint32_t)(h * 2654435761u);
            *created = 1;
            w->tcp_used++;
            return d;
        }
        if (!memcmp(&d->src, src, sizeof d->src) && !memcmp(&d->dst, dst, sizeof d->dst))
            return d;
    }
    return &w->tcp[h % w->tcp_cap]; /* table full and could not grow: share a slot */
}

static int write_frame(pcapw_t *w, const msg_t *m, int proto, const uint8_t *payload, size_t len,
                       uint8_t tcp_flags);

/* A new connection opens with SYN, SYN-ACK, ACK, so that readers (tshark) follow it. */
static void tcp_handshake(pcapw_t *w, const msg_t *m, tcp_dir_t *fwd, tcp_dir_t *rev)
{
    msg_t back = *m;
    back.src = m->dst;
    back.dst = m->src;
    back.has_mac = 0;
    write_frame(w, m, 6, NULL, 0, 0x02); /* SYN */
    fwd->seq++;
    write_frame(w, &back, 6, NULL, 0, 0x12); /* SYN-ACK */
    rev->seq++;
    write_frame(w, m, 6, NULL, 0, 0x10); /* ACK */
}

static int write_frame(pcapw_t *w, const msg_t *m, int proto, const uint8_t *payload, size_t len,
                       uint8_t tcp_flags)
{
    uint8_t *f = w->frame;
    size_t l4len = (proto == 17 ? 8 : 20) + len;
    size_t iplen = m->src.family == 4 ? 20 : 40;
    if (len > 65000 || (m->src.family != 4 && m->src.family != 6))
        return -1;
    /* Ethernet: a locally administered MAC derived from the address when none is given */
    uint8_t dmac[6] = {0x02, 0, m->dst.addr[12], m->dst.addr[13], m->dst.addr[14], m->dst.addr[15]};
    uint8_t smac[6] = {0x02, 0, m->src.addr[12], m->src.addr[13], m->src.addr[14], m->src.addr[15]};
    if (m->src.family == 4) {
        memcpy(dmac + 2, m->dst.addr, 4);
        memcpy(smac + 2, m->src.addr, 4);
    }
    memcpy(f, dmac, 6);
    memcpy(f + 6, m->has_mac ? m->src_mac : smac, 6);
    put16(f + 12, m->src.family == 4 ? 0x0800 : 0x86dd);
    uint8_t *ip = f + 14, *l4 = ip + iplen;
    if (m->src.family == 4) {
        memset(ip, 0, 20);
        ip[0] = 0x45;
        put16(ip + 2, (uint16_t)(20 + l4len));
        put16(ip + 4, w->ip_id++);
        put16(ip + 6, 0x4000); /* don't fragment */
        ip[8] = 64;
        ip[9] = (uint8_t)proto;
        memcpy(ip + 12, m->src.addr, 4);
        memcpy(ip + 16, m->dst.addr, 4);
        put16(ip + 10, fold(sum16(ip, 20, 0)));
    } else {
        memset(ip, 0, 40);
        ip[0] = 0x60;
        put16(ip + 4, (uint16_t)l4len);
        ip[6] = (uint8_t)proto;
        ip[7] = 64;
        memcpy(ip + 8, m->src.addr, 16);
        memcpy(ip + 24, m->dst.addr, 16);
    }
    put16(l4, m->src.port);
    put16(l4 + 2, m->dst.port);
    if (proto == 17) {
        put16(l4 + 4, (uint16_t)l4len);
        put16(l4 + 6, 0);
        memcpy(l4 + 8, payload, len);
        put16(l4 + 6, l4_checksum(m, 17, l4, l4len));
    } else {
        int c1, c2;
        tcp_dir_t *fwd = tcp_dir(w, &m->src, &m->dst, &c1);
        tcp_dir_t *rev = tcp_dir(w, &m->dst, &m->src, &c2);
        memset(l4 + 4, 0, 16);
        put32(l4 + 4, fwd->seq);
        put32(l4 + 8, tcp_flags == 0x02 ? 0 : rev->seq);
        l4[12] = 5 << 4;
        l4[13] = tcp_flags;
        put16(l4 + 14, 65535);
        if (len)
            memcpy(l4 + 20, payload, len);
        put16(l4 + 16, l4_checksum(m, 6, l4, l4len));
        fwd->seq += (uint32_t)len;
    }
    size_t flen = 14 + iplen + l4len;
    uint32_t rec[4] = {(uint32_t)m->ts_sec, (uint32_t)m->ts_usec, (uint32_t)flen, (uint32_t)flen};
    if (fwrite(rec, sizeof rec, 1, w->f) != 1 || fwrite(f, flen, 1, w->f) != 1) {
        w->error = 1;
        return -1;
    }
    return 0;
}

int pcapw_write(pcapw_t *w, const msg_t *m)
{
    if (m->transport != TRANSPORT_TCP && m->transport != TRANSPORT_WS) /* WS: bare, over TCP */
        return write_frame(w, m, 17, m->data, m->len, 0);
    int c1, c2;
    tcp_reserve(w);
    tcp_dir_t *fwd = tcp_dir(w, &m->src, &m->dst, &c1);
    tcp_dir_t *rev = tcp_dir(w, &m->dst, &m->src, &c2);
    if (c1 && c2)
        tcp_handshake(w, m, fwd, rev);
    return write_frame(w, m, 6, m->data, m->len, 0x18); /* PSH | ACK */
}

int pcapw_write_udp(pcapw_t *w, const msg_t *m, const uint8_t *payload, size_t len)
{
    return write_frame(w, m, 17, payload, len, 0);
}

int pcapw_close(pcapw_t **wp)
{
    pcapw_t *w = *wp;
    if (!w)
        return 0;
    int rc = w->error ? -1 : 0;
    if (fflush(w->f) != 0)
        rc = -1;
    if (w->own && fclose(w->f) != 0)
        rc = -1;
    free(w->tcp);
    free(w->frame);
    free(w);
    *wp = NULL;
    return rc;
}
