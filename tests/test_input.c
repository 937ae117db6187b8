/* Tests of the readers (common/input, decode, tcpstream, ipfrag, hep) on captures made here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "hep.h"
#include "input.h"
#include "ipfrag.h"
#include "pcapw.h"
#include "sipcheck.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_udp_messages_keep_order_addresses_and_bytes),
        cmocka_unit_test(test_tcp_several_messages_in_one_segment_and_one_across_segments),
        cmocka_unit_test(test_tcp_lying_content_length_is_kept_truncated_and_counted),
        cmocka_unit_test(test_garbage_on_sip_port_is_a_message_that_fails_to_parse),
        cmocka_unit_test(test_truncated_capture_keeps_what_was_read_and_says_so),
        cmocka_unit_test(test_hep_datagram_is_decapsulated_with_inner_addresses),
        cmocka_unit_test(test_hep_rejects_bad_lengths),
        cmocka_unit_test(test_ipv4_fragments_reassemble_in_any_order),
        cmocka_unit_test(test_raw_files_zero_length_and_200k_message),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
