/* Tests of the readers (common/input, decode, tcpstream, ipfrag, hep) on captures made here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <cmocka.h>

#include <pcap/dlt.h>

#include "decode.h"
#include "hep.h"
#include "input.h"
#include "ipfrag.h"
#include "pcapw.h"
#include "sipcheck.h"
#include "sipframe.h"
#include "tcpstream.h"

static const char *INV =
    "INVITE sip:1001@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.2.3:5060;branch=z9hG4bK1\r\n"
    "From: <sip:1000@example.net>;tag=1\r\nTo: <sip:1001@example.net>\r\n"
    "Call-ID: abc@10.1.2.3\r\nCSeq: 1 INVITE\r\nContent-Length: 4\r\n\r\nbody";
static const char *BYE =
    "BYE sip:1001@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.2.3:5060;branch=z9hG4bK2\r\n"
    "From: <sip:1000@example.net>;tag=1\r\nTo: <sip:1001@example.net>;tag=2\r\n"
    "Call-ID: abc@10.1.2.3\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";

typedef struct {
    char *buf;
    size_t len;
    FILE *f;
    pcapw_t *w;
} cap_t;

static void cap_open(cap_t *c)
{
    memset(c, 0, sizeof *c);
    c->f = open_memstream(&c->buf, &c->len);
    c->w = pcapw_from_file(c->f);
}

static msg_t msg_between(uint16_t sport, uint16_t dport, transport_t tr, const char *data,
                         size_t len)
{
    msg_t m = {0};
    m.src.family = m.dst.family = 4;
    m.src.addr[0] = 10, m.src.addr[3] = 2;
    m.dst.addr[0] = 10, m.dst.addr[3] = 1;
    m.src.port = sport;
    m.dst.port = dport;
    m.transport = tr;
    m.ts_sec = 1700000000;
    m.data = (const uint8_t *)data;
    m.len = len;
    return m;
}

static void cap_add(cap_t *c, uint16_t dport, transport_t tr, const char *data, size_t len)
{
    msg_t m = msg_between(5060, dport, tr, data, len);
    assert_int_equal(pcapw_write(c->w, &m), 0);
}

static input_t *cap_reader(cap_t *c)
{
    assert_int_equal(pcapw_close(&c->w), 0);
    fclose(c->f);
    char err[256];
    decode_opts_t o;
    decode_opts_default(&o);
    input_t *in = input_open_memory("mem.pcap", c->buf, c->len, &o, err, sizeof err);
    assert_non_null(in);
    return in;
}

static size_t read_all(input_t *in, msg_t *out, size_t max, char copies[][2048])
{
    msg_t m;
    size_t n = 0;
    while (input_next(in, &m) == 1) {
        if (n < max) {
            out[n] = m;
            size_t l = m.len < 2047 ? m.len : 2047;
            memcpy(copies[n], m.data, l);
            copies[n][l] = 0;
            out[n].data = (const uint8_t *)copies[n];
        }
        n++;
    }
    return n;
}

static char copies[8][2048];

static void test_udp_messages_keep_order_addresses_and_bytes(void **state)
{
    (void)state;
    cap_t c;
    cap_open(&c);
    cap_add(&c, 5060, TRANSPORT_UDP, INV, strlen(INV));
    cap_add(&c, 5060, TRANSPORT_UDP, BYE, strlen(BYE));
    input_t *in = cap_reader(&c);
    msg_t m[8];
    assert_int_equal(read_all(in, m, 8, copies), 2);
    assert_int_equal(m[0].index, 0);
    assert_int_equal(m[1].index, 1);
    assert_int_equal(m[0].transport, TRANSPORT_UDP);
    assert_int_equal(m[0].len, strlen(INV));
    assert_memory_equal(m[0].data, INV, strlen(INV));
    char ep[MSG_ENDPOINT_STRLEN];
    msg_endpoint_format(&m[0].src, ep);
    assert_string_equal(ep, "10.0.0.2:5060");
    assert_int_equal(m[0].ts_sec, 1700000000);
    input_close(&in);
    free(c.buf);
}

static void test_tcp_several_messages_in_one_segment_and_one_across_segments(void **state)
{
    (void)state;
    char two[2048];
    snprintf(two, sizeof two, "%s%s", INV, BYE);
    size_t half = strlen(BYE) / 2;
    cap_t c;
    cap_open(&c);
    cap_add(&c, 5060, TRANSPORT_TCP, two, strlen(two));
    cap_add(&c, 5060, TRANSPORT_TCP, BYE, half);
    cap_add(&c, 5060, TRANSPORT_TCP, BYE + half, strlen(BYE) - half);
    input_t *in = cap_reader(&c);
    msg_t m[8];
    assert_int_equal(read_all(in, m, 8, copies), 3);
    assert_int_equal(m[0].len, strlen(INV));
    assert_int_equal(m[1].len, strlen(BYE));
    assert_int_equal(m[2].len, strlen(BYE));
    assert_memory_equal(m[2].data, BYE, strlen(BYE));
    assert_false(m[2].truncated);
    assert_int_equal(skips_total(input_skips(in)), 0);
    input_close(&in);
    free(c.buf);
}

static void test_tcp_lying_content_length_is_kept_truncated_and_counted(void **state)
{
    (void)state;
    char lie[2048];
    snprintf(lie, sizeof lie,
             "INVITE sip:a@b SIP/2.0\r\nCall-ID: x\r\nContent-Length: 99999\r\n\r\nshort%s", BYE);
    cap_t c;
    cap_open(&c);
    cap_add(&c, 5060, TRANSPORT_TCP, lie, strlen(lie));
    input_t *in = cap_reader(&c);
    msg_t m[8];
    size_t n = read_all(in, m, 8, copies);
    assert_true(n >= 1);
    assert_true(m[0].truncated);
    assert_true(skips_total(input_skips(in)) >= 1);
    input_close(&in);
    free(c.buf);
}

static void test_garbage_on_sip_port_is_a_message_that_fails_to_parse(void **state)
{
    (void)state;
    char garbage[300];
    for (size_t i = 0; i < sizeof garbage; i++)
        garbage[i] = (char)(i * 37 + 11);
    cap_t c;
    cap_open(&c);
    cap_add(&c, 5060, TRANSPORT_UDP, garbage, sizeof garbage);
    msg_t dns = msg_between(5353, 53, TRANSPORT_UDP, garbage, sizeof garbage);
    assert_int_equal(pcapw_write(c.w, &dns), 0); /* non-SIP UDP elsewhere */
    cap_add(&c, 5060, TRANSPORT_UDP, "", 0);     /* zero-length payload */
    input_t *in = cap_reader(&c);
    msg_t m[8];
    assert_int_equal(read_all(in, m, 8, copies), 1);
    sipinfo_t info;
    sipcheck_init();
    sipcheck_message(m[0].data, m[0].len, &info);
    assert_false(info.parse_ok);
    assert_string_equal(info.reason, "bad start line");
    assert_int_equal(skips_count(input_skips(in), "udp: not SIP (port and payload)"), 1);
    assert_int_equal(skips_count(input_skips(in), "udp: empty payload on SIP port"), 1);
    input_close(&in);
    free(c.buf);
}

static void test_truncated_capture_keeps_what_was_read_and_says_so(void **state)
{
    (void)state;
    cap_t c;
    cap_open(&c);
    cap_add(&c, 5060, TRANSPORT_UDP, INV, strlen(INV));
    cap_add(&c, 5060, TRANSPORT_UDP, BYE, strlen(BYE));
    assert_int_equal(pcapw_close(&c.w), 0);
    fclose(c.f);
    char err[256];
    input_t *in = input_open_memory("cut.pcap", c.buf, c.len - 40, NULL, err, sizeof err);
    assert_non_null(in);
    msg_t m[8];
    assert_int_equal(read_all(in, m, 8, copies), 1);
    assert_true(skips_total(input_skips(in)) == 1);
    assert_non_null(strstr(input_skips(in)->reason[0], "capture truncated"));
    input_close(&in);
    /* a file that stops inside the global header is refused with a reason */
    in = input_open_memory("cut.pcap", c.buf, 10, NULL, err, sizeof err);
    assert_null(in);
    assert_non_null(strstr(err, "cut.pcap"));
    free(c.buf);
}

static void test_hep_datagram_is_decapsulated_with_inner_addresses(void **state)
{
    (void)state;
    msg_t inner = msg_between(5070, 5080, TRANSPORT_UDP, INV, strlen(INV));
    inner.src.addr[3] = 77;
    inner.ts_sec = 1600000000;
    uint8_t hep[4096];
    size_t hl = hep_encode(&inner, 7, "secret", hep, sizeof hep);
    assert_true(hl > 0);
    cap_t c;
    cap_open(&c);
    msg_t outer = msg_between(40000, 9060, TRANSPORT_UDP, NULL, 0);
    assert_int_equal(pcapw_write_udp(c.w, &outer, hep, hl), 0);
    /* and one whose chunk claims more bytes than the datagram has */
    hep[hl - (strlen(INV) + 6) + 4] = 0xff;
    assert_int_equal(pcapw_write_udp(c.w, &outer, hep, hl), 0);
    input_t *in = cap_reader(&c);
    msg_t m[8];
    assert_int_equal(read_all(in, m, 8, copies), 1);
    assert_true(m[0].via_hep);
    assert_int_equal(m[0].src.port, 5070);
    assert_int_equal(m[0].src.addr[3], 77);
    assert_int_equal(m[0].ts_sec, 1600000000);
    assert_int_equal(skips_count(input_skips(in), "hep: chunk longer than packet"), 1);
    input_close(&in);
    free(c.buf);
}

/* A HEPv1 or v2 datagram: header, addresses (IPv4 192.0.2.7 -> 192.0.2.1, or IPv6), in v2 the
 * time header with the seconds and microseconds little-endian, padded to 12 bytes as Kamailio
 * sends it (tests/edge_test.sh sends one packed to 10), then the message. */
static size_t hep12(uint8_t *out, int version, bool v6, uint32_t sec, uint32_t usec)
{
    size_t addr = v6 ? 32 : 8, at = 8;
    uint8_t head[8] = {(uint8_t)version,
                       (uint8_t)(8 + addr),
                       v6 ? 10 : 2,
                       17,
                       0x13,
                       0xc6,
                       0x13,
                       0xc4}; /* 5062 -> 5060 */
    memcpy(out, head, 8);
    memset(out + at, 0, addr);
    out[at + (v6 ? 15 : 3)] = 7;
    out[at + addr / 2 + (v6 ? 15 : 3)] = 1;
    out[at] = v6 ? 0x20 : 192, out[at + addr / 2] = v6 ? 0x20 : 192;
    at += addr;
    if (version == 2) {
        for (int i = 0; i < 4; i++) {
            out[at + i] = (uint8_t)(sec >> (8 * i));
            out[at + 4 + i] = (uint8_t)(usec >> (8 * i));
        }
        out[at + 8] = 42, out[at + 9] = 0;
        out[at + 10] = out[at + 11] = 0; /* the padding Kamailio's struct has */
        at += 12;
    }
    memcpy(out + at, INV, strlen(INV));
    return at + strlen(INV);
}

static void test_hep_versions_1_and_2_are_read_on_the_hep_port(void **state)
{
    (void)state;
    uint8_t d[4096];
    cap_t c;
    cap_open(&c);
    msg_t outer = msg_between(40000, 9060, TRANSPORT_UDP, NULL, 0);
    size_t n = hep12(d, 2, false, 1600000001, 250000);
    assert_int_equal(pcapw_write_udp(c.w, &outer, d, n), 0);
    n = hep12(d, 1, true, 0, 0);
    assert_int_equal(pcapw_write_udp(c.w, &outer, d, n), 0);
    /* a header length that does not match the family: no HEP, and no SIP either */
    n = hep12(d, 1, false, 0, 0);
    d[1] = 40;
    assert_int_equal(pcapw_write_udp(c.w, &outer, d, n), 0);
    /* the same datagram to another port is not taken for HEP (no magic to tell it by) */
    msg_t other = msg_between(40000, 9999, TRANSPORT_UDP, NULL, 0);
    n = hep12(d, 1, false, 0, 0);
    assert_int_equal(pcapw_write_udp(c.w, &other, d, n), 0);
    input_t *in = cap_reader(&c);
    msg_t m[8];
    assert_int_equal(read_all(in, m, 8, copies), 2);
    assert_true(m[0].via_hep);
    assert_int_equal(m[0].src.family, 4);
    assert_int_equal(m[0].src.addr[0], 192);
    assert_int_equal(m[0].src.addr[3], 7);
    assert_int_equal(m[0].dst.addr[3], 1);
    assert_int_equal(m[0].src.port, 5062);
    assert_int_equal(m[0].dst.port, 5060);
    assert_int_equal(m[0].ts_sec, 1600000001);
    assert_int_equal(m[0].ts_usec, 250000);
    assert_int_equal(m[0].len, strlen(INV));
    assert_memory_equal(m[0].data, INV, strlen(INV));
    assert_int_equal(m[1].src.family, 6);
    assert_int_equal(m[1].src.addr[0], 0x20);
    assert_int_equal(m[1].src.addr[15], 7);
    assert_int_equal(m[1].ts_sec, 1700000000); /* v1 has no time: the capture's */
    assert_int_equal(skips_count(input_skips(in), "udp: not SIP (port and payload)"), 2);
    input_close(&in);
    free(c.buf);
}

static void test_hep_rejects_bad_lengths(void **state)
{
    (void)state;
    msg_t inner = msg_between(1, 2, TRANSPORT_UDP, BYE, strlen(BYE));
    uint8_t hep[4096], scratch[1024];
    size_t hl = hep_encode(&inner, 1, NULL, hep, sizeof hep);
    hep_t h;
    const char *why;
    assert_int_equal(hep_decode(hep, hl, scratch, sizeof scratch, &h, &why), 0);
    assert_int_equal(hep_decode(hep, hl - 1, scratch, sizeof scratch, &h, &why), -1);
    assert_string_equal(why, "hep: total length longer than datagram");
    uint8_t bad[64];
    memcpy(bad, hep, 12);
    bad[4] = 0, bad[5] = 12;  /* total 12: one chunk header */
    bad[10] = 0, bad[11] = 3; /* chunk length 3 < 6 */
    assert_int_equal(hep_decode(bad, 12, scratch, sizeof scratch, &h, &why), -1);
    assert_string_equal(why, "hep: chunk length below 6");
    memcpy(bad, hep, 6);
    bad[4] = 0, bad[5] = 8;
    assert_int_equal(hep_decode(bad, 8, scratch, sizeof scratch, &h, &why), -1);
    assert_string_equal(why, "hep: truncated chunk header");
    /* IP family chunk with a 2-byte body: fixed size violated */
    uint8_t fam[] = {'H', 'E', 'P', '3', 0, 14, 0, 0, 0, 1, 0, 8, 2, 2};
    assert_int_equal(hep_decode(fam, sizeof fam, scratch, sizeof scratch, &h, &why), -1);
    assert_string_equal(why, "hep: fixed-size chunk has wrong length");
}

/* HEPv3 over TCP: a packet is found whole only once all of its bytes are there, two packets
 * back to back are found one after the other, and bytes that start no packet stop the stream */
static void test_hep_stream_packets_are_framed_by_their_length(void **state)
{
    (void)state;
    msg_t inner = msg_between(5070, 5080, TRANSPORT_TCP, INV, strlen(INV));
    uint8_t two[8192];
    size_t hl = hep_encode(&inner, 1, NULL, two, sizeof two);
    assert_true(hl > 6 && 2 * hl <= sizeof two);
    memcpy(two + hl, two, hl);
    for (size_t have = 0; have < hl; have++)
        assert_int_equal(hep_stream_packet(two, have), 0);
    assert_int_equal(hep_stream_packet(two, hl), (long)hl);
    assert_int_equal(hep_stream_packet(two, 2 * hl), (long)hl);
    assert_int_equal(hep_stream_packet(two + hl, hl), (long)hl);
    assert_int_equal(hep_stream_packet(two + hl, 3), 0); /* "HEP": more needed */
    assert_int_equal(hep_stream_packet((const uint8_t *)"HEX3", 4), -1);
    assert_int_equal(hep_stream_packet((const uint8_t *)"INVITE sip:", 11), -1);
    assert_int_equal(hep_stream_packet((const uint8_t *)"H\0", 2), -1);
    assert_int_equal(hep_stream_packet((const uint8_t *)"HEP2\0\x10", 6), -1); /* HEPv2 */
    /* a length shorter than the header itself cannot lead to a next packet */
    uint8_t tiny[6] = {'H', 'E', 'P', '3', 0, 5};
    assert_int_equal(hep_stream_packet(tiny, sizeof tiny), -1);
    tiny[5] = 6;
    assert_int_equal(hep_stream_packet(tiny, sizeof tiny), 6);
}

static void test_ipv4_fragments_reassemble_in_any_order(void **state)
{
    (void)state;
    skips_t sk = {0};
    ipfrag_t *f = ipfrag_new(4, 30, &sk);
    ipfrag_key_t k = {.family = 4, .id = 99, .proto = 17};
    uint8_t data[3000];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)i;
    const uint8_t *out;
    size_t len;
    assert_int_equal(ipfrag_add(f, &k, 0, 2400, 0, data + 2400, 600, &out, &len), 0);
    assert_int_equal(ipfrag_add(f, &k, 0, 0, 1, data, 1200, &out, &len), 0);
    assert_int_equal(ipfrag_add(f, &k, 0, 1200, 1, data + 1200, 1200, &out, &len), 1);
    assert_int_equal(len, 3000);
    assert_memory_equal(out, data, 3000);
    /* an unfinished datagram is counted at the end */
    k.id = 100;
    ipfrag_add(f, &k, 0, 0, 1, data, 1200, &out, &len);
    ipfrag_flush(f);
    assert_int_equal(skips_count(&sk, "ip fragments: datagram incomplete at end of input"), 1);
    ipfrag_destroy(&f);
    skips_free(&sk);
}

/* --- copies of one packet in a capture on Linux's any device --- */

typedef struct {
    decode_t *d;
    skips_t skips;
    int messages;
    int byes_from_10_0_0_2; /* whole BYEs from the inner sender, not a tunnel's end */
} cooked_t;

static void count_message(void *ctx, const msg_t *m)
{
    cooked_t *c = ctx;
    c->messages++;
    c->byes_from_10_0_0_2 += m->len == strlen(BYE) && !memcmp(m->data, BYE, m->len) &&
                             m->src.addr[0] == 10 && m->src.addr[3] == 2 && m->src.port == 5060;
}

static void cooked_open(cooked_t *c, bool keep_copies)
{
    memset(c, 0, sizeof *c);
    decode_opts_t o;
    decode_opts_default(&o);
    o.keep_copies = keep_copies;
    c->d = decode_new(&o, &c->skips, count_message, c);
    assert_non_null(c->d);
}

static void cooked_close(cooked_t *c)
{
    decode_destroy(&c->d);
    skips_free(&c->skips);
}

/* A frame of the given link type carrying BYE from 10.0.0.2 to 10.0.0.1 over UDP with this IPv4
 * identification; SLL2 frames name the interface; pad adds bytes behind the IP packet. */
static size_t cooked_frame(uint8_t *f, int linktype, uint32_t ifindex, uint16_t ip_id, size_t pad)
{
    size_t hl = linktype == DLT_LINUX_SLL2 ? 20 : linktype == DLT_LINUX_SLL ? 16 : 14;
    size_t plen = strlen(BYE), iplen = 20 + 8 + plen;
    memset(f, 0, hl + iplen + pad);
    if (linktype == DLT_LINUX_SLL2) {
        f[0] = 0x08; /* protocol IPv4, then the interface index */
        f[4] = (uint8_t)(ifindex >> 24), f[5] = (uint8_t)(ifindex >> 16);
        f[6] = (uint8_t)(ifindex >> 8), f[7] = (uint8_t)ifindex;
        f[9] = 1;
    } else if (linktype == DLT_LINUX_SLL) {
        f[3] = 1, f[14] = 0x08;
    } else {
        f[12] = 0x08;
    }
    uint8_t *ip = f + hl;
    ip[0] = 0x45, ip[2] = (uint8_t)(iplen >> 8), ip[3] = (uint8_t)iplen;
    ip[4] = (uint8_t)(ip_id >> 8), ip[5] = (uint8_t)ip_id, ip[6] = 0x40, ip[8] = 64, ip[9] = 17;
    ip[12] = 10, ip[15] = 2, ip[16] = 10, ip[19] = 1;
    uint8_t *udp = ip + 20;
    udp[0] = 0x13, udp[1] = 0xc4, udp[2] = 0x13, udp[3] = 0xc4;
    udp[4] = (uint8_t)((8 + plen) >> 8), udp[5] = (uint8_t)(8 + plen);
    memcpy(udp + 8, BYE, plen);
    return hl + iplen + pad;
}

static void cooked_packet(cooked_t *c, int linktype, uint32_t ifindex, uint16_t ip_id, int32_t usec,
                          size_t pad)
{
    uint8_t f[1024];
    size_t len = cooked_frame(f, linktype, ifindex, ip_id, pad);
    decode_packet(c->d, linktype, 1700000000, usec, f, len, len);
}

static void test_cooked_copies_on_other_interfaces_are_read_once(void **state)
{
    (void)state;
    cooked_t c;
    cooked_open(&c, false);
    /* a bridge and a container's veth: the same bytes 3 us apart, the veth's padded */
    cooked_packet(&c, DLT_LINUX_SLL, 0, 7, 100, 0);
    cooked_packet(&c, DLT_LINUX_SLL, 0, 7, 103, 6);
    assert_int_equal(c.messages, 1);
    assert_int_equal(skips_count(&c.skips, DECODE_COPY_REASON), 1);
    /* a new send of the same message carries a new identification: a message of its own */
    cooked_packet(&c, DLT_LINUX_SLL, 0, 8, 150, 0);
    assert_int_equal(c.messages, 2);
    /* the same bytes again after the window (a retransmission from a raw socket) */
    cooked_packet(&c, DLT_LINUX_SLL, 0, 8, 150 + COPY_WINDOW_US, 0);
    assert_int_equal(c.messages, 3);
    /* time going back is no copy */
    cooked_packet(&c, DLT_LINUX_SLL, 0, 8, 140, 0);
    assert_int_equal(c.messages, 4);
    assert_int_equal(skips_count(&c.skips, DECODE_COPY_REASON), 1);
    cooked_close(&c);
}

static void test_cooked_copies_are_bounded_so_a_flood_still_counts(void **state)
{
    (void)state;
    cooked_t c;
    cooked_open(&c, false);
    /* 30 byte-identical packets 10 us apart with no interface named: at most COPY_MAX of
     * every COPY_MAX + 1 are taken for copies */
    for (int i = 0; i < 30; i++)
        cooked_packet(&c, DLT_LINUX_SLL, 0, 9, 10 * i, 0);
    assert_int_equal(c.messages, 30 / (COPY_MAX + 1) + (30 % (COPY_MAX + 1) != 0));
    cooked_close(&c);
    /* cooked v2 names the interface: a flood on one interface is all kept, and the copy of
     * each packet on a second interface is dropped */
    cooked_open(&c, false);
    for (int i = 0; i < 30; i++) {
        cooked_packet(&c, DLT_LINUX_SLL2, 3, 9, 10 * i, 0);
        cooked_packet(&c, DLT_LINUX_SLL2, 5, 9, 10 * i + 2, 0);
    }
    assert_int_equal(c.messages, 30);
    assert_int_equal(skips_count(&c.skips, DECODE_COPY_REASON), 30);
    cooked_close(&c);
}

static void test_copies_are_kept_when_asked_and_outside_cooked_captures(void **state)
{
    (void)state;
    cooked_t c;
    cooked_open(&c, true);
    cooked_packet(&c, DLT_LINUX_SLL, 0, 7, 100, 0);
    cooked_packet(&c, DLT_LINUX_SLL, 0, 7, 103, 0);
    cooked_packet(&c, DLT_LINUX_SLL2, 1, 7, 104, 0);
    cooked_packet(&c, DLT_LINUX_SLL2, 2, 7, 105, 0);
    assert_int_equal(c.messages, 4);
    cooked_close(&c);
    /* one Ethernet interface shows each packet once: the same bytes twice are two sends */
    cooked_open(&c, false);
    cooked_packet(&c, DLT_EN10MB, 0, 7, 100, 0);
    cooked_packet(&c, DLT_EN10MB, 0, 7, 103, 0);
    assert_int_equal(c.messages, 2);
    assert_int_equal(skips_total(&c.skips), 0);
    cooked_close(&c);
}

/* A mirror's frame from 192.0.2.1 to the collector 192.0.2.2: Ethernet, IPv4, UDP to dport,
 * then the tunnel's header and the mirrored bytes. */
static size_t udp_tunnel_frame(uint8_t *f, uint16_t dport, const uint8_t *hdr, size_t hl,
                               const uint8_t *inner, size_t il)
{
    size_t udplen = 8 + hl + il, iplen = 20 + udplen;
    memset(f, 0, 14 + 28);
    f[12] = 0x08;
    uint8_t *ip = f + 14;
    ip[0] = 0x45, ip[2] = (uint8_t)(iplen >> 8), ip[3] = (uint8_t)iplen, ip[8] = 64, ip[9] = 17;
    ip[12] = 192, ip[14] = 2, ip[15] = 1, ip[16] = 192, ip[18] = 2, ip[19] = 2;
    uint8_t *udp = ip + 20;
    udp[0] = 0xc3, udp[1] = 0x50, udp[2] = (uint8_t)(dport >> 8), udp[3] = (uint8_t)dport;
    udp[4] = (uint8_t)(udplen >> 8), udp[5] = (uint8_t)udplen;
    memcpy(udp + 8, hdr, hl);
    if (il)
        memcpy(udp + 8 + hl, inner, il);
    return 14 + iplen;
}

static void test_mirrors_in_vxlan_geneve_and_tzsp_are_unwrapped(void **state)
{
    (void)state;
    uint8_t inner[1024], f[1200];
    size_t il = cooked_frame(inner, DLT_EN10MB, 0, 7, 0); /* BYE 10.0.0.2 -> 10.0.0.1 */
    cooked_t c;
    cooked_open(&c, false);
    /* VXLAN, as AWS VPC Traffic Mirroring sends: flags with I set, VNI 123 */
    static const uint8_t vxlan[8] = {0x08, 0, 0, 0, 0, 0, 123, 0};
    size_t n = udp_tunnel_frame(f, 4789, vxlan, 8, inner, il);
    decode_packet(c.d, DLT_EN10MB, 1700000000, 0, f, n, n);
    /* GENEVE with a 4-byte option around an Ethernet frame, as a gateway load balancer sends */
    static const uint8_t geneve_eth[12] = {0x01, 0, 0x65, 0x58, 0, 0, 7, 0, 0x01, 0x08, 0x01, 0};
    n = udp_tunnel_frame(f, 6081, geneve_eth, 12, inner, il);
    decode_packet(c.d, DLT_EN10MB, 1700000000, 1, f, n, n);
    /* GENEVE around the bare IP packet */
    static const uint8_t geneve_ip[8] = {0x00, 0, 0x08, 0x00, 0, 0, 7, 0};
    n = udp_tunnel_frame(f, 6081, geneve_ip, 8, inner + 14, il - 14);
    decode_packet(c.d, DLT_EN10MB, 1700000000, 2, f, n, n);
    assert_int_equal(c.messages, 3);
    assert_int_equal(c.byes_from_10_0_0_2, 3);
    assert_int_equal(skips_total(&c.skips), 0);
    /* a header that claims more options than the datagram holds */
    static const uint8_t geneve_bad[8] = {0x3f, 0, 0x65, 0x58, 0, 0, 7, 0};
    n = udp_tunnel_frame(f, 6081, geneve_bad, 8, inner, 20);
    decode_packet(c.d, DLT_EN10MB, 1700000000, 3, f, n, n);
    assert_int_equal(c.messages, 3);
    assert_int_equal(skips_count(&c.skips, "geneve: truncated header"), 1);
    /* MikroTik's sniffer stream: TZSP version 1, received, Ethernet, a padding and a 2-byte
     * tag, END, the frame */
    static const uint8_t tzsp[9] = {1, 0, 0, 1, 0, 0x0a, 2, 0x12, 0x34};
    uint8_t tz[16];
    memcpy(tz, tzsp, 9);
    tz[9] = 1;
    n = udp_tunnel_frame(f, 37008, tz, 10, inner, il);
    decode_packet(c.d, DLT_EN10MB, 1700000000, 4, f, n, n);
    assert_int_equal(c.byes_from_10_0_0_2, 4);
    /* tags that never end, and 802.11 frames, are named skips */
    n = udp_tunnel_frame(f, 37008, tzsp, 9, NULL, 0);
    decode_packet(c.d, DLT_EN10MB, 1700000000, 5, f, n, n);
    tz[3] = 18;
    n = udp_tunnel_frame(f, 37008, tz, 10, inner, il);
    decode_packet(c.d, DLT_EN10MB, 1700000000, 6, f, n, n);
    assert_int_equal(c.messages, 4);
    assert_int_equal(skips_count(&c.skips, "tzsp: tags run past the datagram"), 1);
    assert_int_equal(skips_count(&c.skips, "tzsp: encapsulation 18 is not Ethernet"), 1);
    cooked_close(&c);
}

/* Appends a pcapng block: type, total length, body (padded to 4 bytes), total length. */
static size_t pcapng_block(uint8_t *out, uint32_t type, const void *body, size_t len)
{
    uint32_t total = (uint32_t)(12 + ((len + 3) & ~(size_t)3));
    memset(out, 0, total);
    memcpy(out, &type, 4);
    memcpy(out + 4, &total, 4);
    memcpy(out + 8, body, len);
    memcpy(out + total - 4, &total, 4);
    return total;
}

static size_t pcapng_interface(uint8_t *out, uint16_t linktype)
{
    uint8_t idb[8] = {0};
    uint32_t snap = 65535;
    memcpy(idb, &linktype, 2);
    memcpy(idb + 4, &snap, 4);
    return pcapng_block(out, 1, idb, sizeof idb);
}

static void test_pcapng_of_mixed_link_types_fails_by_name_after_what_it_read(void **state)
{
    (void)state;
    static uint8_t file[4096];
    size_t n = 0;
    uint8_t shb[16] = {0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0};
    memset(shb + 8, 0xff, 8); /* section length unknown */
    n += pcapng_block(file + n, 0x0A0D0D0A, shb, sizeof shb);
    n += pcapng_interface(file + n, 1); /* Ethernet */
    uint8_t epb[20 + 1024];
    memset(epb, 0, 20);
    uint32_t caplen = (uint32_t)cooked_frame(epb + 20, DLT_EN10MB, 0, 7, 0);
    memcpy(epb + 12, &caplen, 4);
    memcpy(epb + 16, &caplen, 4);
    n += pcapng_block(file + n, 6, epb, 20 + caplen);
    n += pcapng_interface(file + n, 113); /* Linux cooked: libpcap stops here */
    n += pcapng_block(file + n, 6, epb, 20 + caplen);
    char err[256];
    input_t *in = input_open_memory("mixed.pcapng", file, n, NULL, err, sizeof err);
    assert_non_null(in);
    msg_t m;
    assert_int_equal(input_next(in, &m), 1); /* the packet before the second interface */
    assert_int_equal(m.len, strlen(BYE));
    assert_int_equal(input_next(in, &m), -1);
    assert_non_null(strstr(input_error(in), "pcapng mixes interfaces of different link types"));
    input_close(&in);
}

/* --- SIP over WebSocket (RFC 7118) --- */

static const char *WS_GET =
    "GET /ws HTTP/1.1\r\nHost: proxy.example.net:8080\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Protocol: sip\r\nSec-WebSocket-Version: 13\r\n\r\n";
static const char *WS_101 = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                            "Connection: Upgrade\r\nSec-WebSocket-Protocol: sip\r\n\r\n";
static const char *OK200 =
    "SIP/2.0 200 OK\r\nVia: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK2\r\n"
    "From: <sip:1000@example.net>;tag=1\r\nTo: <sip:1001@example.net>;tag=2\r\n"
    "Call-ID: abc@10.1.2.3\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";

/* A frame: FIN and opcode, the payload masked with key when key is not NULL (a client's). */
static size_t ws_frame(uint8_t *out, bool fin, int op, const uint8_t *key, const char *payload,
                       size_t len)
{
    size_t h = 0;
    out[h++] = (uint8_t)((fin ? 0x80 : 0) | op);
    uint8_t m = key ? 0x80 : 0;
    if (len < 126) {
        out[h++] = (uint8_t)(m | len);
    } else if (len < 65536) {
        out[h++] = m | 126;
        out[h++] = (uint8_t)(len >> 8);
        out[h++] = (uint8_t)len;
    } else {
        out[h++] = m | 127;
        for (int i = 7; i >= 0; i--)
            out[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    if (key) {
        memcpy(out + h, key, 4);
        h += 4;
    }
    for (size_t i = 0; i < len; i++)
        out[h + i] = (uint8_t)payload[i] ^ (key ? key[i & 3] : 0);
    return h + len;
}

/* One TCP segment between the WebRTC client 10.0.0.2:43380 and the proxy 10.0.0.1:8080. */
static void ws_segment(cap_t *c, bool from_client, const void *data, size_t len)
{
    msg_t m = msg_between(43380, 8080, TRANSPORT_TCP, data, len);
    if (!from_client) {
        endpoint_t e = m.src;
        m.src = m.dst;
        m.dst = e;
    }
    assert_int_equal(pcapw_write(c->w, &m), 0);
}

static input_t *ws_reader(cap_t *c, size_t max_msg)
{
    assert_int_equal(pcapw_close(&c->w), 0);
    fclose(c->f);
    char err[256];
    decode_opts_t o;
    decode_opts_default(&o);
    o.max_msg = max_msg;
    input_t *in = input_open_memory("ws.pcap", c->buf, c->len, &o, err, sizeof err);
    assert_non_null(in);
    return in;
}

static void test_sip_over_websocket_on_any_port_is_read_frame_by_frame(void **state)
{
    (void)state;
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    static uint8_t f[8192];
    size_t n, inv = strlen(INV), bye = strlen(BYE);
    cap_t c;
    cap_open(&c);
    ws_segment(&c, true, WS_GET, strlen(WS_GET));
    ws_segment(&c, false, WS_101, strlen(WS_101));
    /* a masked INVITE (126-length form) cut across two segments */
    n = ws_frame(f, true, 1, key, INV, inv);
    ws_segment(&c, true, f, 7);
    ws_segment(&c, true, f + 7, n - 7);
    /* the proxy's unmasked answer */
    n = ws_frame(f, true, 1, NULL, OK200, strlen(OK200));
    ws_segment(&c, false, f, n);
    /* a BYE in two frames with a ping between them, then a pong and a close in one segment */
    n = ws_frame(f, false, 1, key, BYE, 10);
    n += ws_frame(f + n, true, 9, key, "hi", 2);
    n += ws_frame(f + n, true, 0, key, BYE + 10, bye - 10);
    n += ws_frame(f + n, true, 10, key, "hi", 2);
    n += ws_frame(f + n, true, 8, key, "\x03\xe8", 2);
    ws_segment(&c, true, f, n);
    input_t *in = ws_reader(&c, 65535);
    msg_t m[8];
    assert_int_equal(read_all(in, m, 8, copies), 3);
    assert_int_equal(m[0].transport, TRANSPORT_WS);
    assert_int_equal(m[0].len, inv);
    assert_memory_equal(m[0].data, INV, inv);
    assert_int_equal(m[0].dst.port, 8080);
    assert_int_equal(m[1].len, strlen(OK200));
    assert_memory_equal(m[1].data, OK200, strlen(OK200));
    assert_int_equal(m[1].src.port, 8080);
    assert_int_equal(m[2].len, bye);
    assert_memory_equal(m[2].data, BYE, bye);
    assert_false(m[0].truncated || m[1].truncated || m[2].truncated);
    assert_int_equal(skips_total(input_skips(in)), 0);
    input_close(&in);
    free(c.buf);
}

static void test_websocket_bounds_and_other_subprotocols(void **state)
{
    (void)state;
    static const uint8_t key[4] = {1, 2, 3, 4};
    static uint8_t f[8192];
    static char big[3000];
    memset(big, 'a', sizeof big);
    memcpy(big, INV, strlen(INV));
    cap_t c;
    cap_open(&c);
    ws_segment(&c, true, WS_GET, strlen(WS_GET));
    /* longer than the 1024-byte limit: handed on cut, its rest passed over; a 64-bit length
     * form, then a message in the frames that follow */
    size_t n = ws_frame(f, true, 2, key, big, sizeof big);
    n += ws_frame(f + n, true, 1, key, BYE, strlen(BYE));
    ws_segment(&c, true, f, n / 2);
    ws_segment(&c, true, f + n / 2, n - n / 2);
    input_t *in = ws_reader(&c, 1024);
    msg_t m[8];
    assert_int_equal(read_all(in, m, 8, copies), 2);
    assert_true(m[0].truncated);
    assert_int_equal(m[0].len, 1024);
    assert_memory_equal(m[0].data, INV, strlen(INV));
    assert_false(m[1].truncated);
    assert_memory_equal(m[1].data, BYE, strlen(BYE));
    assert_int_equal(
        skips_count(input_skips(in), "websocket: message longer than limit (kept, truncated)"), 1);
    input_close(&in);
    free(c.buf);

    /* a WebSocket for something else than SIP is not read, and a continuation frame with no
     * message begun ends a SIP one */
    const char *chat = "GET /chat HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Protocol: chat\r\n\r\n";
    cap_open(&c);
    ws_segment(&c, true, chat, strlen(chat));
    n = ws_frame(f, true, 1, key, INV, strlen(INV));
    ws_segment(&c, true, f, n);
    in = ws_reader(&c, 65535);
    assert_int_equal(read_all(in, m, 8, copies), 0);
    assert_int_equal(
        skips_count(input_skips(in), "tcp: stream is not SIP (TLS, WebSocket or other protocol)"),
        1);
    input_close(&in);
    free(c.buf);
    cap_open(&c);
    ws_segment(&c, true, WS_GET, strlen(WS_GET));
    n = ws_frame(f, true, 0, key, INV, strlen(INV));
    n += ws_frame(f + n, true, 1, key, INV, strlen(INV));
    ws_segment(&c, true, f, n);
    in = ws_reader(&c, 65535);
    assert_int_equal(read_all(in, m, 8, copies), 0);
    assert_int_equal(
        skips_count(input_skips(in),
                    "websocket: frame out of order or of unknown type, rest of stream passed over"),
        1);
    input_close(&in);
    free(c.buf);
}

static void test_raw_files_zero_length_and_200k_message(void **state)
{
    (void)state;
    char dir[] = "/tmp/sipguard-raw-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/a.sip", dir);
    FILE *f = fopen(path, "wb");
    fwrite(INV, 1, strlen(INV), f);
    fclose(f);
    snprintf(path, sizeof path, "%s/b.sip", dir);
    f = fopen(path, "wb");
    fclose(f);
    snprintf(path, sizeof path, "%s/c.sip", dir);
    f = fopen(path, "wb");
    fputs("INVITE sip:a@b SIP/2.0\r\nX: ", f);
    for (int i = 0; i < 200 * 1024; i++)
        fputc('A', f);
    fclose(f);
    char err[256];
    input_t *in = input_open(dir, NULL, err, sizeof err);
    assert_non_null(in);
    msg_t m[8];
    assert_int_equal(read_all(in, m, 8, copies), 2);
    assert_false(m[0].truncated);
    assert_true(m[1].truncated);
    assert_int_equal(m[1].len, 65535);
    assert_int_equal(skips_count(input_skips(in), "raw: empty file"), 1);
    input_close(&in);
    for (const char *n = "abc"; *n; n++) {
        snprintf(path, sizeof path, "%s/%c.sip", dir, *n);
        unlink(path);
    }
    rmdir(dir);
    assert_null(input_open("/nonexistent/x.pcap", NULL, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/x.pcap"));
}

static uint32_t next_rand_u32(uint32_t *x)
{
    *x = *x * 1103515245u + 12345u;
    return *x >> 8;
}

/* tcpstream on its own: messages it emits, copied */
typedef struct {
    size_t n, whole, truncated;
    uint64_t sum; /* of (source port + length) over whole messages, to catch mix-ups */
} tcp_sink_t;

static void tcp_sink(void *ctx, const msg_t *m)
{
    tcp_sink_t *k = ctx;
    k->n++;
    if (m->truncated) {
        k->truncated++;
        return;
    }
    if (m->len == strlen(INV) && memcmp(m->data, INV, m->len) == 0) {
        k->whole++;
        k->sum += m->src.port + m->len;
    }
}

static msg_t tcp_from(uint32_t client)
{
    msg_t m = msg_between((uint16_t)(10000 + client % 50000), 5060, TRANSPORT_TCP, NULL, 0);
    m.src.addr[2] = (uint8_t)(client / 50000);
    return m;
}

#define BIG ((size_t)512 << 20) /* a reassembly budget the test never reaches */

/* A tcpstream with its skips and a sink for what it emits. */
typedef struct {
    skips_t skips;
    tcp_sink_t sink;
    tcpstream_t *t;
} tcp_rig_t;

static void rig_open(tcp_rig_t *r, int max_streams, size_t max_bytes)
{
    memset(r, 0, sizeof *r);
    r->t = tcpstream_new(65535, max_streams, max_bytes, &r->skips, tcp_sink, &r->sink);
    assert_non_null(r->t);
}

/* Checks that n messages came out whole, from the ports summed in want, nothing skipped. */
static void rig_close_all_whole(tcp_rig_t *r, size_t n, uint64_t want)
{
    assert_int_equal(r->sink.whole, n);
    assert_int_equal(r->sink.truncated, 0);
    assert_int_equal(r->sink.sum, want);
    assert_int_equal(skips_total(&r->skips), 0);
    tcpstream_destroy(&r->t);
    skips_free(&r->skips);
}

static void rig_close(tcp_rig_t *r)
{
    tcpstream_destroy(&r->t);
    skips_free(&r->skips);
}

/* 3000 connections at once (more than the 1024 the table once held), each message in two
 * segments, all first halves before any second half: every message comes out whole, and no
 * stream is dropped. */
static void test_tcp_thousands_of_connections_at_once(void **state)
{
    (void)state;
    enum { CLIENTS = 3000 };
    tcp_rig_t r;
    rig_open(&r, 16384, BIG);
    tcpstream_t *t = r.t;
    size_t half = strlen(INV) / 2;
    uint64_t want = 0;
    for (int pass = 0; pass < 2; pass++)
        for (uint32_t c = 0; c < CLIENTS; c++) {
            /* the second pass visits the clients in another order */
            uint32_t who = pass ? (c * 7919u) % CLIENTS : c;
            msg_t m = tcp_from(who);
            const char *part = pass ? INV + half : INV;
            size_t len = pass ? strlen(INV) - half : half;
            tcpstream_segment(t, &m, 1000u + who + (pass ? (uint32_t)half : 0), 0,
                              (const uint8_t *)part, len);
            if (pass)
                want += m.src.port + strlen(INV);
        }
    rig_close_all_whole(&r, CLIENTS, want);
}

/* With room for 4 streams, a fifth drops the least recently used one (counted); the others
 * still complete their messages. */
static void test_tcp_full_table_drops_the_least_recently_used_stream(void **state)
{
    (void)state;
    tcp_rig_t r;
    rig_open(&r, 4, BIG);
    tcpstream_t *t = r.t;
    size_t half = strlen(INV) / 2;
    uint32_t order[] = {0, 1, 2, 3, 0, 4}; /* client 1 is then the least recently used */
    for (size_t i = 0; i < 6; i++) {
        msg_t m = tcp_from(order[i]);
        bool again = i == 4; /* client 0's second half */
        tcpstream_segment(t, &m, 1000u + (again ? (uint32_t)half : 0), 0,
                          (const uint8_t *)(again ? INV + half : INV),
                          again ? strlen(INV) - half : half);
    }
    assert_int_equal(r.sink.whole, 1); /* client 0 */
    assert_int_equal(
        skips_count(&r.skips, "tcp: stream table full, least recently used stream dropped"), 1);
    uint32_t rest[] = {2, 3, 4, 1};
    for (size_t i = 0; i < 4; i++) {
        msg_t m = tcp_from(rest[i]);
        tcpstream_segment(t, &m, 1000u + (uint32_t)half, 0, (const uint8_t *)INV + half,
                          strlen(INV) - half);
    }
    /* 2, 3 and 4 complete; 1 lost its first half with its stream, and its second half is not a
     * message start (and its new stream pushes out 2, done with by then) */
    assert_int_equal(r.sink.whole, 4);
    rig_close(&r);
}

/* Connections open and close (FIN) in a random interleaving, 5000 in all and up to 300 open at
 * once, in a table of 512: finding, adding and removing streams in the index never loses or
 * mixes up a message. */
static void test_tcp_connections_coming_and_going(void **state)
{
    (void)state;
    enum { TOTAL = 5000, OPEN = 300 };
    tcp_rig_t r;
    rig_open(&r, 512, BIG);
    tcpstream_t *t = r.t;
    uint32_t open[OPEN], sent[OPEN], x = 1, next = 0;
    size_t n_open = 0, len = strlen(INV);
    uint64_t want = 0;
    while (next < TOTAL || n_open > 0) {
        x = x * 1103515245u + 12345u;
        if (n_open < OPEN && next < TOTAL && (x >> 16) % 3 == 0) {
            open[n_open] = next++;
            sent[n_open++] = 0;
            continue;
        }
        if (n_open == 0)
            continue;
        size_t k = (x >> 8) % n_open;
        msg_t m = tcp_from(open[k]);
        size_t part = 1 + (x >> 20) % 90;
        if (sent[k] + part > len)
            part = len - sent[k];
        bool last = sent[k] + part == len;
        tcpstream_segment(t, &m, 5000u + open[k] + sent[k], last ? TCP_FLAG_FIN : 0,
                          (const uint8_t *)INV + sent[k], part);
        sent[k] += (uint32_t)part;
        if (last) {
            want += m.src.port + len;
            open[k] = open[--n_open];
            sent[k] = sent[n_open];
        }
    }
    rig_close_all_whole(&r, TOTAL, want);
}

/* At the end of input every open stream hands on what it holds, marked truncated, and the
 * table is empty again: 200 streams over several words of the free bitmap. */
static void test_tcp_flush_hands_on_every_open_stream(void **state)
{
    (void)state;
    tcp_rig_t r;
    rig_open(&r, 256, BIG); /* room for one round */
    tcpstream_t *t = r.t;
    size_t half = strlen(INV) / 2;
    for (int round = 0; round < 2; round++) {
        for (uint32_t c = 0; c < 200; c++) {
            msg_t m = tcp_from(c + 1000 * (uint32_t)round);
            tcpstream_segment(t, &m, 77, 0, (const uint8_t *)INV, half);
        }
        tcpstream_flush(t);
        assert_int_equal(r.sink.truncated, 200 * (size_t)(round + 1));
    }
    assert_int_equal(r.sink.whole, 0);
    assert_int_equal(skips_total(&r.skips), 400); /* the truncated messages; none dropped */
    assert_int_equal(
        skips_count(&r.skips, "tcp: message incomplete at end of stream (kept, truncated)"), 400);
    rig_close(&r);
}

/* 40 connections left mid-message in a 64 KiB budget (16 buffers of 4 KiB): the bytes held
 * never pass it, the least recently used streams make room (counted), and the 16 newest
 * still complete their messages. At the end nothing is held. */
static void test_tcp_memory_budget_drops_the_least_recently_used_streams(void **state)
{
    (void)state;
    enum { CLIENTS = 40, KEPT = 16 };
    tcp_rig_t r;
    rig_open(&r, 1024, 64 << 10);
    tcpstream_t *t = r.t;
    size_t half = strlen(INV) / 2;
    for (uint32_t c = 0; c < CLIENTS; c++) {
        msg_t m = tcp_from(c);
        tcpstream_segment(t, &m, 1000u + c, 0, (const uint8_t *)INV, half);
        assert_true(tcpstream_held(t) <= 64 << 10);
    }
    assert_int_equal(tcpstream_held(t), KEPT * 4096);
    assert_int_equal(
        skips_count(&r.skips, "tcp: reassembly memory full, least recently used stream dropped"),
        CLIENTS - KEPT);
    uint64_t want = 0;
    for (uint32_t c = CLIENTS - KEPT; c < CLIENTS; c++) {
        msg_t m = tcp_from(c);
        tcpstream_segment(t, &m, 1000u + c + (uint32_t)half, TCP_FLAG_FIN,
                          (const uint8_t *)INV + half, strlen(INV) - half);
        want += m.src.port + strlen(INV);
    }
    assert_int_equal(r.sink.whole, KEPT);
    assert_int_equal(r.sink.sum, want);
    assert_int_equal(tcpstream_held(t), 0); /* every kept stream closed with FIN */
    rig_close(&r);
}

/* Segments sent far ahead of a gap, ten on each of 1,000 connections, in a 64 KiB budget: the
 * early segments held stay within it; the newest connection, whose gap then fills, still
 * gives its message whole; flushing drops the rest (counted) and frees every byte. */
static void test_tcp_early_segments_stay_within_the_memory_budget(void **state)
{
    (void)state;
    enum { CLIENTS = 1000, EARLY = 10 };
    tcp_rig_t r;
    rig_open(&r, 4096, 64 << 10);
    tcpstream_t *t = r.t;
    uint8_t junk[1000];
    memset(junk, 'x', sizeof junk);
    for (uint32_t c = 0; c < CLIENTS; c++) {
        msg_t m = tcp_from(c);
        tcpstream_segment(t, &m, 1000, TCP_FLAG_SYN, NULL, 0);
        for (uint32_t k = 0; k < EARLY; k++) {
            tcpstream_segment(t, &m, 100000u + 2000u * k, 0, junk, sizeof junk);
            assert_true(tcpstream_held(t) <= 64 << 10);
        }
    }
    assert_true(
        skips_count(&r.skips, "tcp: reassembly memory full, least recently used stream dropped") >
        CLIENTS / 2);
    size_t half = strlen(INV) / 2;
    msg_t m = tcp_from(CLIENTS);
    tcpstream_segment(t, &m, 5000u - 1u, TCP_FLAG_SYN, NULL, 0);
    tcpstream_segment(t, &m, 5000u + (uint32_t)half, 0, (const uint8_t *)INV + half,
                      strlen(INV) - half); /* the second half first, queued */
    assert_int_equal(r.sink.whole, 0);
    tcpstream_segment(t, &m, 5000u, 0, (const uint8_t *)INV, half);
    assert_int_equal(r.sink.whole, 1);
    tcpstream_flush(t);
    assert_int_equal(tcpstream_held(t), 0);
    rig_close(&r);
}

/* One message larger than the whole budget: its bytes past the budget are dropped (counted),
 * nothing else is dropped, and the stream still follows its next message. */
static void test_tcp_message_larger_than_the_budget_is_counted(void **state)
{
    (void)state;
    tcp_rig_t r;
    rig_open(&r, 16, 4096);
    tcpstream_t *t = r.t;
    char big[6000];
    int head =
        snprintf(big, sizeof big,
                 "MESSAGE sip:a@b SIP/2.0\r\nCall-ID: x\r\nContent-Length: %d\r\n\r\n", 5000);
    memset(big + head, 'y', sizeof big - (size_t)head);
    msg_t m = tcp_from(1);
    tcpstream_segment(t, &m, 1, TCP_FLAG_SYN, NULL, 0);
    tcpstream_segment(t, &m, 2, 0, (const uint8_t *)big, 3000);
    assert_int_equal(tcpstream_held(t), 4096);
    tcpstream_segment(t, &m, 3002, 0, (const uint8_t *)big + 3000, 3000);
    assert_int_equal(skips_count(&r.skips, "tcp: reassembly memory full, bytes dropped"), 1);
    assert_true(tcpstream_held(t) <= 4096);
    rig_close(&r);
}

/* What sipframe_message_length must say, one byte at a time: the header block ends after
 * the first newline followed by a newline or CR LF; Content-Length (or l) is the first line
 * whose name, up to the colon less white space, is one of those. */
static sipframe_result_t oracle_frame(const char *b, size_t len, size_t *msg_len)
{
    size_t hlen = 0;
    for (size_t i = 0; i < len && !hlen; i++) {
        if (b[i] != '\n')
            continue;
        if (i + 1 >= len)
            return SIPFRAME_NEED_MORE;
        if (b[i + 1] == '\n')
            hlen = i + 2;
        else if (b[i + 1] == '\r' && i + 2 < len && b[i + 2] == '\n')
            hlen = i + 3;
    }
    if (!hlen)
        return SIPFRAME_NEED_MORE;
    long long cl = -1;
    for (size_t line = 0; line < hlen && cl == -1;) {
        size_t eol = line;
        while (eol < hlen && b[eol] != '\n')
            eol++;
        size_t colon = line;
        while (colon < eol && b[colon] != ':')
            colon++;
        size_t ne = colon;
        while (ne > line && (b[ne - 1] == ' ' || b[ne - 1] == '\t'))
            ne--;
        bool named =
            colon < eol && ((ne - line == 14 && !strncasecmp(b + line, "Content-Length", 14)) ||
                            (ne - line == 1 && (b[line] | 0x20) == 'l'));
        if (named) {
            size_t v = colon + 1;
            while (v < eol && (b[v] == ' ' || b[v] == '\t'))
                v++;
            long long n = 0;
            size_t d = v;
            while (d < eol && b[d] >= '0' && b[d] <= '9' && n <= 100000000LL)
                n = n * 10 + (b[d++] - '0');
            size_t rest = d;
            while (rest < eol && (b[rest] == ' ' || b[rest] == '\t' || b[rest] == '\r'))
                rest++;
            bool ok = d > v && rest == eol && !(d < eol && b[d] >= '0' && b[d] <= '9');
            if (!ok) {
                *msg_len = hlen;
                return SIPFRAME_BAD_LENGTH;
            }
            cl = n;
        }
        line = eol + 1;
    }
    *msg_len = hlen + (size_t)(cl < 0 ? 0 : cl);
    return *msg_len <= len ? SIPFRAME_COMPLETE : SIPFRAME_NEED_MORE;
}

/* Random header blocks (every line ending, blank lines of both kinds at every offset,
 * Content-Length in any case and compact, white space before the colon, bad values, other
 * headers starting with C or L) cut at every length: framed as the oracle says. */
static void test_tcp_framing_like_the_oracle(void **state)
{
    (void)state;
    static const char *names[] = {
        "Content-Length", "content-length", "CONTENT-LENGTH", "l",  "L",           "Call-ID",
        "Contact",        "CSeq",           "Content-Type",   "Lx", "Max-Forwards"};
    static const char *values[] = {"0", "12", " 7 ", "x", "", "99999999999", "3\r", "1 2"};
    uint32_t x = 11;
    char b[1024];
    for (int round = 0; round < 3000; round++) {
        size_t len = (size_t)snprintf(b, sizeof b, "BYE sip:%.*s SIP/2.0\r\n",
                                      (int)(next_rand_u32(&x) % 20), "aaaaaaaaaaaaaaaaaaaa");
        int lines = (int)(next_rand_u32(&x) % 8);
        for (int l = 0; l < lines; l++)
            len += (size_t)snprintf(
                b + len, sizeof b - len, "%s%s:%s%s", names[next_rand_u32(&x) % 11],
                next_rand_u32(&x) % 4 ? "" : " \t", values[next_rand_u32(&x) % 8],
                next_rand_u32(&x) % 3 ? "\r\n" : "\n");
        len +=
            (size_t)snprintf(b + len, sizeof b - len, "%s", next_rand_u32(&x) % 3 ? "\r\n" : "\n");
        len += (size_t)snprintf(b + len, sizeof b - len, "%.*s", (int)(next_rand_u32(&x) % 30),
                                "bodybodybodybodybodybodybodybody");
        for (size_t cut = len > 60 ? len - 60 : 0; cut <= len; cut++) {
            size_t want_len = 0, got_len = 0, hlen;
            long long cl;
            sipframe_result_t want = oracle_frame(b, cut, &want_len);
            sipframe_result_t got =
                sipframe_message_length((const unsigned char *)b, cut, &got_len, &hlen, &cl);
            assert_int_equal(got, want);
            if (got != SIPFRAME_NEED_MORE)
                assert_int_equal(got_len, want_len);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_udp_messages_keep_order_addresses_and_bytes),
        cmocka_unit_test(test_tcp_several_messages_in_one_segment_and_one_across_segments),
        cmocka_unit_test(test_tcp_lying_content_length_is_kept_truncated_and_counted),
        cmocka_unit_test(test_tcp_thousands_of_connections_at_once),
        cmocka_unit_test(test_tcp_full_table_drops_the_least_recently_used_stream),
        cmocka_unit_test(test_tcp_connections_coming_and_going),
        cmocka_unit_test(test_tcp_flush_hands_on_every_open_stream),
        cmocka_unit_test(test_tcp_memory_budget_drops_the_least_recently_used_streams),
        cmocka_unit_test(test_tcp_early_segments_stay_within_the_memory_budget),
        cmocka_unit_test(test_tcp_message_larger_than_the_budget_is_counted),
        cmocka_unit_test(test_tcp_framing_like_the_oracle),
        cmocka_unit_test(test_garbage_on_sip_port_is_a_message_that_fails_to_parse),
        cmocka_unit_test(test_truncated_capture_keeps_what_was_read_and_says_so),
        cmocka_unit_test(test_hep_datagram_is_decapsulated_with_inner_addresses),
        cmocka_unit_test(test_hep_versions_1_and_2_are_read_on_the_hep_port),
        cmocka_unit_test(test_hep_rejects_bad_lengths),
        cmocka_unit_test(test_hep_stream_packets_are_framed_by_their_length),
        cmocka_unit_test(test_ipv4_fragments_reassemble_in_any_order),
        cmocka_unit_test(test_raw_files_zero_length_and_200k_message),
        cmocka_unit_test(test_cooked_copies_on_other_interfaces_are_read_once),
        cmocka_unit_test(test_cooked_copies_are_bounded_so_a_flood_still_counts),
        cmocka_unit_test(test_copies_are_kept_when_asked_and_outside_cooked_captures),
        cmocka_unit_test(test_pcapng_of_mixed_link_types_fails_by_name_after_what_it_read),
        cmocka_unit_test(test_sip_over_websocket_on_any_port_is_read_frame_by_frame),
        cmocka_unit_test(test_mirrors_in_vxlan_geneve_and_tzsp_are_unwrapped),
        cmocka_unit_test(test_websocket_bounds_and_other_subprotocols),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
