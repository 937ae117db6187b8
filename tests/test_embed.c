/* Tests of common/embed, shape and sipnorm: the paper's worked examples and the options. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>
#include <math.h>

#include "embed.h"
#include "shape.h"
#include "sipnorm.h"

static const char *paper = "BYE SIP:JOHN@DOE SIP/2.0";

static double value_of(const sparse_t *v, uint64_t key)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->keys[i] == key)
            return v->vals[i];
    return 0;
}

static uint64_t ngram_key(const char *s, int n)
{
    uint64_t k = 0;
    for (int i = 0; i < n; i++)
        k |= (uint64_t)(uint8_t)s[i] << (8 * i);
    return k;
}

static embed_t *plain_embedder(embed_kind_t kind, int n)
{
    embed_opts_t o;
    embed_opts_default(&o);
    o.kind = kind;
    o.n = n;
    o.shape = EMBED_SHAPE_NONE;
    o.header_norm = false;
    embed_opts_set_delimiters(&o, " @:/");
    return embed_new(&o);
}

static double token_count(embed_t *e, sparse_t *v, const char *tok)
{
    char name[96];
    for (size_t i = 0; i < v->n; i++) {
        embed_feature_name(e, v->keys[i], name, sizeof name);
        if (!strcmp(name, tok))
            return v->vals[i];
    }
    return 0;
}

static void test_tokens_of_paper_example(void **state)
{
    (void)state;
    embed_t *e = plain_embedder(EMBED_TOKEN, 0);
    embed_keep_dictionary(e, true);
    sparse_t *v = sparse_new();
    assert_int_equal(embed_message(e, (const uint8_t *)paper, strlen(paper), v), 0);
    assert_int_equal(v->n, 5);
    assert_true(token_count(e, v, "BYE") == 1);
    assert_true(token_count(e, v, "SIP") == 2);
    assert_true(token_count(e, v, "JOHN") == 1);
    assert_true(token_count(e, v, "DOE") == 1);
    assert_true(token_count(e, v, "2.0") == 1);
    assert_true(v->norm2 == 1 + 4 + 1 + 1 + 1);
    sparse_destroy(&v);
    embed_destroy(&e);
}

static void test_ngrams_of_paper_example(void **state)
{
    (void)state;
    embed_t *e4 = plain_embedder(EMBED_NGRAM, 4), *e3 = plain_embedder(EMBED_NGRAM, 3);
    sparse_t *v = sparse_new();
    embed_message(e4, (const uint8_t *)paper, strlen(paper), v);
    assert_true(value_of(v, ngram_key("SIP:", 4)) == 1);
    assert_true(value_of(v, ngram_key("SIP/", 4)) == 1);
    double total = 0;
    for (size_t i = 0; i < v->n; i++)
        total += v->vals[i];
    assert_true(total == strlen(paper) - 3);
    for (size_t i = 1; i < v->n; i++)
        assert_true(v->keys[i - 1] < v->keys[i]); /* sorted, distinct */
    embed_message(e3, (const uint8_t *)paper, strlen(paper), v);
    assert_true(value_of(v, ngram_key("SIP", 3)) == 2);
    char name[32];
    embed_feature_name(e4, ngram_key("SIP:", 4), name, sizeof name);
    assert_string_equal(name, "SIP:");
    sparse_destroy(&v);
    embed_destroy(&e4);
    embed_destroy(&e3);
}

/* Feature names: shaping tokens by name, \r \n \\ escaped, other bytes as \xHH; a name cut
 * by the buffer keeps what fits of the piece that did not (as snprintf cut it). */
static void test_feature_names_escape_and_cut(void **state)
{
    (void)state;
    embed_t *e = plain_embedder(EMBED_NGRAM, 4);
    char name[32];
    embed_feature_name(e, ngram_key("\r\n\\\x01", 4), name, sizeof name);
    assert_string_equal(name, "\\r\\n\\\\\\x01");
    char shaped[4] = {(char)SHAPE_DIGITS_4_8, 'a', 'b', ':'};
    uint64_t k = ngram_key(shaped, 4);
    embed_feature_name(e, k, name, sizeof name);
    assert_string_equal(name, "<dig4-8>ab:");
    embed_feature_name(e, k, name, 11);
    assert_string_equal(name, "<dig4-8>ab");
    embed_feature_name(e, k, name, 5);
    assert_string_equal(name, "<dig");
    embed_feature_name(e, ngram_key("\r\r\r\r", 4), name, 2);
    assert_string_equal(name, "\\");
    embed_feature_name(e, ngram_key("\xfe\x7f\x80 ", 4), name, sizeof name);
    assert_string_equal(name, "<ipv4>\\x7f\\x80 ");
    embed_destroy(&e);
}

static void test_binary_and_norms(void **state)
{
    (void)state;
    embed_opts_t o;
    embed_opts_default(&o);
    o.shape = EMBED_SHAPE_NONE;
    o.n = 3;
    o.binary = true;
    o.norm = EMBED_NORM_L2;
    embed_t *e = embed_new(&o);
    sparse_t *v = sparse_new();
    embed_message(e, (const uint8_t *)paper, strlen(paper), v);
    assert_true(fabs(v->norm2 - 1.0) < 1e-12);
    for (size_t i = 1; i < v->n; i++)
        assert_true(fabs(v->vals[i] - v->vals[0]) < 1e-15);
    embed_destroy(&e);
    o.binary = false;
    o.norm = EMBED_NORM_L1;
    e = embed_new(&o);
    embed_message(e, (const uint8_t *)paper, strlen(paper), v);
    double s = 0;
    for (size_t i = 0; i < v->n; i++)
        s += v->vals[i];
    assert_true(fabs(s - 1.0) < 1e-12);
    sparse_destroy(&v);
    embed_destroy(&e);
}

static void test_shape_replaces_random_values_by_class_and_length(void **state)
{
    (void)state;
    const char *in = "Call-ID: a84b4c76e66710@10.1.2.3;branch=z9hG4bK776 CSeq: 314159 INVITE "
                     "z9hG4bKa7f3c9e1 tag=as83dk3";
    uint8_t out[256];
    size_t n = shape_apply((const uint8_t *)in, strlen(in), out);
    uint8_t expect[] = "Call-ID: \xfb@\xfe;branch=z9hG4bK\xf5 CSeq: \xf6 INVITE z9hG4bK\xfa "
                       "tag=as\xf5"
                       "dk\xf5";
    assert_int_equal(n, sizeof expect - 1);
    assert_memory_equal(out, expect, n);
    /* an overlong value keeps standing out */
    char longnum[64];
    memset(longnum, '7', 40);
    longnum[40] = '\0';
    n = shape_apply((const uint8_t *)longnum, 40, out);
    assert_int_equal(n, 1);
    assert_int_equal(out[0], SHAPE_DIGITS_LONG);
}

static void test_field_shaping_replaces_only_per_message_random_values(void **state)
{
    (void)state;
    const char *in =
        "INVITE sip:alice@10.1.2.3:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.1.2.9:5062;branch=z9hG4bK776asdhds;rport\r\n"
        "From: <sip:bob@example.net>;tag=1928301774\r\n"
        "Call-ID: a84b4c76e66710@pc33.example.net\r\n"
        "CSeq: 314159 INVITE\r\n"
        "Authorization: Digest username=\"bob\", nonce=\"dcd98b71\", response=\"6629fae4\"\r\n"
        "User-Agent: Yealink SIP-T46S 66.85.0.5\r\nContent-Length: 57\r\n\r\n"
        "o=bob 53655765 2353687637 IN IP4 10.1.2.9\r\nm=audio 49170 RTP/AVP 0\r\n";
    uint8_t out[1024];
    size_t n = shape_fields((const uint8_t *)in, strlen(in), out);
    const char *expect =
        "INVITE sip:alice@10.1.2.3:5060 SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.1.2.9:5062;branch=z9hG4bK\xc0;rport\r\n"
        "From: <sip:bob@example.net>;tag=\xf7\r\n"
        "Call-ID: \xfb@pc33.example.net\r\n"
        "CSeq: \xf6 INVITE\r\n"
        "Authorization: Digest username=\"bob\", nonce=\"\xfa\", response=\"\xfa\"\r\n"
        "User-Agent: Yealink SIP-T46S 66.85.0.5\r\nContent-Length: \xf5\r\n\r\n"
        "o=bob \xf6 \xf7 IN IP4 10.1.2.9\r\nm=audio \xf6 RTP/AVP 0\r\n";
    assert_int_equal(n, strlen(expect));
    assert_memory_equal(out, expect, n);
}

/* Kamailio's and OpenSIPS's Record-Route carries the From tag (ftag) and the dialog module's id
 * (did), new with every dialog: two calls of one flow through the proxy must shape alike, and a
 * parameter that only ends in "tag" or "did" keeps its value. */
static void test_field_shaping_takes_record_route_dialog_values(void **state)
{
    (void)state;
    const char *a = "Record-Route: <sip:10.0.0.1;lr;ftag=8154SIPpTag001;did=151.58acf775>\r\n"
                    "Route: <sip:10.0.0.1;lr;FTAG=as5f3e2a1b>\r\nX-Note: xftag=77;mydid=12\r\n";
    const char *b = "Record-Route: <sip:10.0.0.1;lr;ftag=8877SIPpTag004;did=999.8931a38>\r\n"
                    "Route: <sip:10.0.0.1;lr;FTAG=as6c01d2e4>\r\nX-Note: xftag=77;mydid=12\r\n";
    const char *expect = "Record-Route: <sip:10.0.0.1;lr;ftag=\xc0;did=\xc0>\r\n"
                         "Route: <sip:10.0.0.1;lr;FTAG=\xc0>\r\nX-Note: xftag=77;mydid=12\r\n";
    uint8_t out[512];
    for (int k = 0; k < 2; k++) {
        const char *in = k ? b : a;
        size_t n = shape_fields((const uint8_t *)in, strlen(in), out);
        assert_int_equal(n, strlen(expect));
        assert_memory_equal(out, expect, n);
    }
}

/* IMS: P-Charging-Vector's icid-value is new with every session (RFC 3455), written with or
 * without a blank after the colon (a real capture of the corpus has none), plain or quoted;
 * the rest of the header, and a vector that does not open with it, stay as written. Header
 * names are normalised first, as the embedding does. */
/* Both shaping paths, header names normalised before shaping or in the same pass, give
 * expect for the len bytes of in. */
static void assert_both_paths_shape(const char *in, size_t len, const char *expect)
{
    uint8_t tmp[2048], out[2048];
    assert_true(len <= sizeof tmp);
    size_t n = shape_fields(tmp, sipnorm_headers((const uint8_t *)in, len, tmp, sizeof tmp), out);
    assert_int_equal(n, strlen(expect));
    assert_memory_equal(out, expect, n);
    n = sipnorm_headers_shaped((const uint8_t *)in, len, out, sizeof out);
    assert_int_equal(n, strlen(expect));
    assert_memory_equal(out, expect, n);
}

static void test_field_shaping_takes_the_ims_charging_id(void **state)
{
    (void)state;
    const char *in =
        "INVITE sip:a@b SIP/2.0\r\n"
        "P-Charging-Vector:icid-value=l3IAkHDw~~~~0OHYPQA;icid-generated-at=10.249.30.11"
        ";orig-ioi=example.ru\r\n"
        "p-charging-vector: ICID-VALUE=\"AyretyU0dm+6O2IrT5tAFrbHLso=023551024\";x=1\r\n"
        "P-Charging-Vector: orig-ioi=example.ru;icid-value=1234\r\n\r\n";
    const char *expect = "INVITE sip:a@b SIP/2.0\r\n"
                         "P-Charging-Vector:icid-value=\xc1;icid-generated-at=10.249.30.11"
                         ";orig-ioi=example.ru\r\n"
                         "P-Charging-Vector: ICID-VALUE=\"\xff\";x=1\r\n"
                         "P-Charging-Vector: orig-ioi=example.ru;icid-value=1234\r\n\r\n";
    assert_both_paths_shape(in, strlen(in), expect);
}

/* The values real captures showed new with every message, call or registration beside those
 * above: the Date header's time, RFC 7989's Session-ID, IMS's security association indexes,
 * and in SDP every media port, the RTCP port, SSRC and CNAME, ICE's credentials and an SDES
 * key. Two messages of one flow must shape alike in both shaping paths; what only looks like
 * them (rtcp-fb, a parameter ending in spi-c, a media line with no port) stays as written. */
static void test_field_shaping_takes_dates_sessions_spis_and_sdp_values(void **state)
{
    (void)state;
    static const char *flow =
        "REGISTER sip:ims.example SIP/2.0\r\n"
        "Date: %s\r\n"
        "Session-ID: %s;remote=%s\r\n"
        "Security-Client: ipsec-3gpp;alg=hmac-sha-1-96;spi-c=%s;spi-s=%s;port-c=5062;port-s=5064"
        ";xspi-c=7\r\n"
        "Content-Length: 0\r\n\r\n"
        "v=0\r\nm=video %s RTP/AVP 99\r\na=rtcp:%s IN IP4 10.0.0.2\r\na=rtcp-fb:99 nack\r\n"
        "a=ssrc:%s cname:%s\r\na=ice-ufrag:%s\r\na=ice-pwd:%s\r\n"
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:%s|2^20|1:4\r\nm=image %s udptl t38\r\nm=x\r\n";
    static const char *values[2][13] = {
        {"Tue, 16 Aug 2016 08:27:42 GMT", "ab30317f1a784dc48ff824d0d3715d86",
         "47755a9de7794ba387653f2099600ef2", "1234567", "2345678", "51372", "51373", "919941605",
         "1dabcbc6377e87fc", "64f1a0", "asd88fgpdd777uzjYhagZg",
         "WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz", "4000"},
        {"Sat, 02 Dec 2017 23:01:09 GMT", "10f88471518a3d03ff925b1f11d45b68",
         "54c91d75272ce247f4dfa34528cc3624", "9876543", "8765432", "40376", "40377", "377151224",
         "9a8b7c6d5e4f3a2b", "7c00e1", "Q3zMmvW8dNk1yQ2pA9rTbc",
         "d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj", "4002"}};
    const char *expect =
        "REGISTER sip:ims.example SIP/2.0\r\n"
        "Date: \xc1\r\n"
        "Session-ID: \xfc;remote=\xfc\r\n"
        "Security-Client: "
        "ipsec-3gpp;alg=hmac-sha-1-96;spi-c=\xf6;spi-s=\xf6;port-c=5062;port-s=5064"
        ";xspi-c=7\r\n"
        "Content-Length: \xf5\r\n\r\n"
        "v=0\r\nm=video \xf6 RTP/AVP 99\r\na=rtcp:\xf6 IN IP4 10.0.0.2\r\na=rtcp-fb:99 nack\r\n"
        "a=ssrc:\xf7 cname:\xfb\r\na=ice-ufrag:\xfa\r\na=ice-pwd:\xc1\r\n"
        "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:\xff|2^20|1:4\r\nm=image \xf6 udptl "
        "t38\r\nm=x\r\n";
    char in[1024];
    for (int k = 0; k < 2; k++) {
        const char *const *v = values[k];
        int len = snprintf(in, sizeof in, flow, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7],
                           v[8], v[9], v[10], v[11], v[12]);
        assert_both_paths_shape(in, (size_t)len, expect);
    }
}

/* WebRTC's SDP, as a browser behind SIP over WebSocket writes it: ICE candidates (foundation,
 * priority, port, an mDNS host name, rport and ufrag values), media stream ids, SSRC groups and
 * attributes, and the DTLS fingerprint change with every call; the candidate's component,
 * transport, address and type, the group's and the semantic's names and the hash's name stay.
 * Two calls must shape alike in both shaping paths; a=mid and a=group, not per call, stay. */
static void test_field_shaping_takes_webrtc_sdp_values(void **state)
{
    (void)state;
    static const char *flow =
        "INVITE sip:bob@example.com SIP/2.0\r\nContent-Length: 0\r\n\r\n"
        "v=0\r\na=msid-semantic: WMS %s\r\na=group:BUNDLE 0\r\n"
        "a=candidate:%s 1 udp %s 10.10.24.139 %s typ host generation 0 network-id 1\r\n"
        "a=candidate:%s 1 udp %s 69.17.142.250 %s typ srflx raddr 10.10.24.139 rport %s ufrag "
        "%s\r\n"
        "a=candidate:%s 1 tcp %s %s.local %s typ host tcptype active\r\n"
        "a=fingerprint:sha-256 %s\r\na=mid:0\r\na=msid:%s %s\r\na=ssrc-group:FID %s %s\r\n"
        "a=ssrc:%s msid:%s %s\r\n";
    static const char *values[2][20] = {
        {"nY3lUME4QrrxqMSKV6s4pwefhY8pYo9GhrH9",
         "3826373926",
         "2122260223",
         "55695",
         "302099698",
         "1686052607",
         "55695",
         "55695",
         "BwhA",
         "2861705686",
         "1518280447",
         "0a1b2c3d-1111-2222-3333-444455556666",
         "9",
         "21:B5:56:5A:47:9A:0C:A4:A4:AC:04:40:61:7A:AA:41:FE:6A:DE:84:15:9F:ED:A8:8D:4A:23:DB:5B:"
         "E9:6F:45",
         "nY3lUME4QrrxqMSKV6s4pwefhY8pYo9GhrH9",
         "595224d1-ae9e-460e-9f93-e144d9f5dedd",
         "497994907",
         "1234567891",
         "497994907",
         "nY3lUME4QrrxqMSKV6s4pwefhY8pYo9GhrH9"},
        {"FNCWLM1aSwTaD9l82PKhyrLF9Rsy8oEEqqqq",
         "1004563915",
         "2122194687",
         "61234",
         "842163049",
         "1685987071",
         "61234",
         "61234",
         "x9Qz",
         "1197836123",
         "1518214911",
         "f0e1d2c3-aaaa-bbbb-cccc-ddddeeeeffff",
         "9",
         "22:7A:01:93:70:B4:F8:0E:08:84:F1:EE:DE:ED:B1:EE:5B:1A:FD:D3:8F:38:8D:60:B1:D6:42:12:61:"
         "07:17:00",
         "FNCWLM1aSwTaD9l82PKhyrLF9Rsy8oEEqqqq",
         "a0b1c2d3-4e5f-4061-8293-a4b5c6d7e8f9",
         "334768501",
         "2147483647",
         "334768501",
         "FNCWLM1aSwTaD9l82PKhyrLF9Rsy8oEEqqqq"}};
    const char *expect =
        "INVITE sip:bob@example.com SIP/2.0\r\nContent-Length: \xf5\r\n\r\n"
        "v=0\r\na=msid-semantic: WMS \xff\r\na=group:BUNDLE 0\r\n"
        "a=candidate:\xf7 1 udp \xf7 10.10.24.139 \xf6 typ host generation 0 network-id 1\r\n"
        "a=candidate:\xf7 1 udp \xf7 69.17.142.250 \xf6 typ srflx raddr 10.10.24.139 rport \xf6 "
        "ufrag \xc0\r\n"
        "a=candidate:\xf7 1 tcp \xf7 \xff \xf5 typ host tcptype active\r\n"
        "a=fingerprint:sha-256 \xff\r\na=mid:0\r\na=msid:\xff \xff\r\na=ssrc-group:FID \xf7 "
        "\xf7\r\n"
        "a=ssrc:\xf7 msid:\xff \xff\r\n";
    char in[2048];
    for (int k = 0; k < 2; k++) {
        const char *const *v = values[k];
        int len = snprintf(in, sizeof in, flow, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7],
                           v[8], v[9], v[10], v[11], v[12], v[13], v[14], v[15], v[16], v[17],
                           v[18], v[19], v[15]);
        assert_both_paths_shape(in, (size_t)len, expect);
    }
}

/* A WebSocket client's Via host and Contact user and host under .invalid (RFC 7118), as SIP.js
 * and JsSIP draw them at every page load, and the Contact's user and port after a proxy fixed
 * it for NAT (transport=ws kept, the client's address and connection's port put in): two page
 * loads must shape alike in both paths. A real host, a Via of another transport, a Contact
 * without a user, a user with a password, a name that only ends in "invalid" and a Contact of
 * another transport stay as written. */
static void test_field_shaping_takes_websocket_clients_invalid_hosts(void **state)
{
    (void)state;
    static const char *flow =
        "REGISTER sip:example.com SIP/2.0\r\n"
        "Via: SIP/2.0/WSS %s.invalid;branch=z9hG4bK5699446\r\n"
        "v: SIP/2.0/ws  %s.INVALID:5060\r\n"
        "Via: SIP/2.0/UDP %s.invalid;rport\r\n"
        "Via: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK77\r\n"
        "Contact: <sip:%s@%s.invalid;transport=ws>;+sip.instance=\"<urn:uuid:x>\"\r\n"
        "m: sips:%s@%s.invalid\r\n"
        "Contact: <sip:alice@example.com>\r\nContact: <sip:%s.invalid>\r\n"
        "Contact: <sip:bob:secret@%s.invalid>\r\nContact: <sip:carol@notinvalid>\r\n"
        "Contact: <sip:%s@10.243.17.55:%s;transport=ws;ob>\r\n"
        "Contact: <sip:%s@203.0.113.9;ob;Transport=WSS>;expires=600\r\n"
        "Contact: <sip:dave@10.0.0.1:5060;transport=udp>\r\n"
        "Contact: <sip:erin@10.0.0.1:5060;transport=wsx>\r\n"
        "Content-Length: 0\r\n\r\n";
    static const char *values[2][4] = {{"1jon8lkj09s0", "7keablct", "sdjfh", "43380"},
                                       {"df7jal23ls0d", "k3l1s3ls", "q0e8r", "51234"}};
    char expect[1024];
    snprintf(expect, sizeof expect,
             "REGISTER sip:example.com SIP/2.0\r\n"
             "Via: SIP/2.0/WSS \xc0.invalid;branch=z9hG4bK\xf6\r\n"
             "Via: SIP/2.0/ws  \xc0.INVALID:5060\r\n"
             "Via: SIP/2.0/UDP %s.invalid;rport\r\n"
             "Via: SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK\xf5\r\n"
             "Contact: <sip:\xc0@\xc0.invalid;transport=ws>;+sip.instance=\"<urn:uuid:x>\"\r\n"
             "Contact: sips:\xc0@\xc0.invalid\r\n"
             "Contact: <sip:alice@example.com>\r\nContact: <sip:%s.invalid>\r\n"
             "Contact: <sip:bob:secret@%s.invalid>\r\nContact: <sip:carol@notinvalid>\r\n"
             "Contact: <sip:\xc0@10.243.17.55:\xf6;transport=ws;ob>\r\n"
             "Contact: <sip:\xc0@203.0.113.9;ob;Transport=WSS>;expires=600\r\n"
             "Contact: <sip:dave@10.0.0.1:5060;transport=udp>\r\n"
             "Contact: <sip:erin@10.0.0.1:5060;transport=wsx>\r\n"
             "Content-Length: \xf5\r\n\r\n",
             "%s", "%s", "%s");
    char in[1024], want[1024];
    for (int k = 0; k < 2; k++) {
        const char *host = values[k][0], *user = values[k][1], *other = values[k][2];
        int len = snprintf(in, sizeof in, flow, host, host, other, user, host, user, host, other,
                           host, user, values[k][3], user);
        snprintf(want, sizeof want, expect, other, other, host);
        assert_both_paths_shape(in, (size_t)len, want);
    }
}

/* Asserts that two messages embed to the same vector with options o; returns its features. */
static size_t embed_alike(const embed_opts_t *o, const char *a, size_t alen, const char *b,
                          size_t blen)
{
    embed_t *e = embed_new(o);
    sparse_t *va = sparse_new(), *vb = sparse_new();
    embed_message(e, (const uint8_t *)a, alen, va);
    embed_message(e, (const uint8_t *)b, blen, vb);
    assert_true(sparse_distance(va, vb) < 1e-12);
    size_t n = va->n;
    sparse_destroy(&va);
    sparse_destroy(&vb);
    embed_destroy(&e);
    return n;
}

/* The ports a connection gives a client: its Via's port over TCP, TLS, WS, WSS or SCTP (PJSIP
 * writes the connection's own), the rport= a proxy adds (RFC 3581: the source port it saw, a
 * NAT's mapping or a connection's), and the port of a Contact that says transport=tcp, tls or
 * sctp, with the URI of a request sent to it (the user, an account, stays). Two connections
 * must shape alike in both paths, and their embeddings be equal. SIP's default ports (5060,
 * 5061) wherever they stand, a UDP Via's port, an rport without a value, received=, an IPv6
 * reference's colons, a transport that only starts like one, a Contact of UDP and a request to a
 * plain address of record stay as written, or as their own fields shape them. */
static void test_field_shaping_takes_the_ports_of_connections(void **state)
{
    (void)state;
    static const char *flow =
        "NOTIFY sip:635@10.21.1.132:%s;transport=TCP;ob SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 10.21.1.132:%s;rport=%s;received=10.21.1.132;alias\r\n"
        "v: sip/2.0/tls\t[2001:db8::7]:%s;branch=z9hG4bK5\r\n"
        "Via: SIP/2.0/WSS 203.0.113.9:%s\r\n"
        "Via: SIP/2.0/SCTP pbx.example.com:%s;rport=%s\r\n"
        "Via: SIP/2.0/TLS-SCTP 10.0.0.9:%s\r\n"
        "Via: SIP/2.0/UDP 192.168.1.2:5062;received=80.230.219.70;rport=%s\r\n"
        "Via: SIP/2.0/UDP 192.168.1.2:5060;rport;branch=z9hG4bK6\r\n"
        "Via: SIP/2.0/TCPX 10.0.0.1:5060\r\n"
        "Via: SIP/2.0/TCP [2001:db8::7\r\n"
        "Via: SIP/2.0/TLS proxy.example.com\r\n"
        "Via: SIP/2.0/TLS 10.0.0.2:5061;rport=5060;branch=z9hG4bK7\r\n"
        "Via: SIP/2.0/WSS x.invalid:%s\r\n"
        "Contact: \"635 \\\"Shipping\" <sip:635@10.21.1.132:%s;transport=TCP;ob>;reg-id=1\r\n"
        "m: Front Desk <sip:10.0.0.1:%s;Transport=tls>\r\n"
        "Contact: <sip:bob@[2001:db8::1]:%s;transport=sctp>\r\n"
        "Contact: <sip:carol@10.0.0.1:5060;transport=udp>\r\n"
        "Contact: <sip:erin@10.0.0.3:5061;transport=tls>\r\n"
        "Contact: \"unclosed <sip:dave@10.0.0.1:5060;transport=tcp>\r\n"
        "Content-Length: 0\r\n\r\n";
    static const char *expect =
        "NOTIFY sip:635@10.21.1.132:\xf6;transport=TCP;ob SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 10.21.1.132:\xf6;rport=\xf6;received=10.21.1.132;alias\r\n"
        "Via: sip/2.0/tls\t[2001:db8::7]:\xf6;branch=z9hG4bK\xf5\r\n"
        "Via: SIP/2.0/WSS 203.0.113.9:\xf6\r\n"
        "Via: SIP/2.0/SCTP pbx.example.com:\xf6;rport=\xf6\r\n"
        "Via: SIP/2.0/TLS-SCTP 10.0.0.9:\xf6\r\n"
        "Via: SIP/2.0/UDP 192.168.1.2:5062;received=80.230.219.70;rport=\xf6\r\n"
        "Via: SIP/2.0/UDP 192.168.1.2:5060;rport;branch=z9hG4bK\xf5\r\n"
        "Via: SIP/2.0/TCPX 10.0.0.1:5060\r\n"
        "Via: SIP/2.0/TCP [2001:db8::7\r\n"
        "Via: SIP/2.0/TLS proxy.example.com\r\n"
        "Via: SIP/2.0/TLS 10.0.0.2:5061;rport=5060;branch=z9hG4bK\xf5\r\n"
        "Via: SIP/2.0/WSS \xc0.invalid:\xf6\r\n"
        "Contact: \"635 \\\"Shipping\" <sip:635@10.21.1.132:\xf6;transport=TCP;ob>;reg-id=1\r\n"
        "Contact: Front Desk <sip:10.0.0.1:\xf6;Transport=tls>\r\n"
        "Contact: <sip:bob@[2001:db8::1]:\xf6;transport=sctp>\r\n"
        "Contact: <sip:carol@10.0.0.1:5060;transport=udp>\r\n"
        "Contact: <sip:erin@10.0.0.3:5061;transport=tls>\r\n"
        "Contact: \"unclosed <sip:dave@10.0.0.1:5060;transport=tcp>\r\n"
        "Content-Length: \xf5\r\n\r\n";
    static const char *ports[2][2] = {{"49731", "5070"}, {"52795", "37016"}};
    char in[2][1024];
    int len[2];
    for (int k = 0; k < 2; k++) {
        const char *a = ports[k][0], *b = ports[k][1];
        len[k] = snprintf(in[k], sizeof in[k], flow, a, a, a, b, a, b, a, b, a, b, a, b, b);
        assert_both_paths_shape(in[k], (size_t)len[k], expect);
    }
    embed_opts_t o;
    embed_opts_default(&o);
    assert_int_equal(o.shape, EMBED_SHAPE_FIELDS);
    assert_true(embed_alike(&o, in[0], (size_t)len[0], in[1], (size_t)len[1]) > 100);
}

/* Requests sent to a client's Contact: its URI is shaped as the Contact is (a WebSocket
 * client's user and connection port, a TCP client's port); other request lines, URIs without
 * parameters, status lines and lines that only look like requests stay. */
static void test_field_shaping_takes_request_uris_like_contacts(void **state)
{
    (void)state;
    static const char *cases[][2] = {
        {"BYE sip:10.21.1.132:49731;transport=TCP SIP/2.0\r\n\r\n",
         "BYE sip:10.21.1.132:\xf6;transport=TCP SIP/2.0\r\n\r\n"},
        {"INVITE sip:7keablct@10.243.17.55:43380;transport=ws SIP/2.0\r\n\r\n",
         "INVITE sip:\xc0@10.243.17.55:\xf6;transport=ws SIP/2.0\r\n\r\n"},
        {"MESSAGE sips:k3l1s3ls@df7jal23ls0d.invalid;transport=wss SIP/2.0\r\n\r\n",
         "MESSAGE sips:\xc0@\xc0.invalid;transport=wss SIP/2.0\r\n\r\n"},
        /* a URI without parameters is passed over (shape_request_uri) */
        {"MESSAGE sips:k3l1s3ls@df7jal23ls0d.invalid SIP/2.0\r\n\r\n",
         "MESSAGE sips:k3l1s3ls@df7jal23ls0d.invalid SIP/2.0\r\n\r\n"},
        {"INVITE sip:+4930;npdi@10.0.0.1:4000 SIP/2.0\r\n\r\n",
         "INVITE sip:+4930;npdi@10.0.0.1:4000 SIP/2.0\r\n\r\n"},
        {"INVITE sip:bob@example.com:5060 SIP/2.0\r\nContact: <sip:a@b:5070>\r\n\r\n",
         "INVITE sip:bob@example.com:5060 SIP/2.0\r\nContact: <sip:a@b:5070>\r\n\r\n"},
        {"SIP/2.0 200 OK\r\nContact: <sip:a@1.2.3.4:6000;transport=tcp>\r\n\r\n",
         "SIP/2.0 200 OK\r\nContact: <sip:a@1.2.3.4:\xf6;transport=tcp>\r\n\r\n"},
        {"BYE  sip:10.0.0.1:4000;transport=tcp SIP/2.0\r\n\r\n",
         "BYE  sip:10.0.0.1:4000;transport=tcp SIP/2.0\r\n\r\n"},
        {"BYE sip:10.0.0.1:4000;transport=tcp", "BYE sip:10.0.0.1:\xf6;transport=tcp"},
        {"BYE sip:10.0.0.1:", "BYE sip:10.0.0.1:"},
        {"BYE ", "BYE "},
        {" sip:10.0.0.1:4000;transport=tcp", " sip:10.0.0.1:4000;transport=tcp"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++)
        assert_both_paths_shape(cases[k][0], strlen(cases[k][0]), cases[k][1]);
}

static void test_same_flow_different_random_values_embed_identically(void **state)
{
    (void)state;
    const char *a =
        "INVITE sip:1001@example.net SIP/2.0\r\nCall-ID: 8f3a9c01d2e4\r\nCSeq: 17 INVITE\r\n\r\n";
    const char *b =
        "INVITE sip:1042@example.net SIP/2.0\r\nCall-ID: 11ab77cc90f1\r\nCSeq: 93 INVITE\r\n\r\n";
    embed_opts_t o;
    embed_opts_default(&o);
    o.shape = EMBED_SHAPE_ALL;
    assert_true(embed_alike(&o, a, strlen(a), b, strlen(b)) > 0);
}

static void test_header_names_normalised(void **state)
{
    (void)state;
    const char *in = "INVITE sip:a@b SIP/2.0\r\ni: x\r\ncall-id: y\r\nX-Custom: z\r\nv: "
                     "SIP/2.0/UDP h\r\n\r\nbody i: q";
    uint8_t out[512];
    size_t n = sipnorm_headers((const uint8_t *)in, strlen(in), out, sizeof out);
    const char *expect = "INVITE sip:a@b SIP/2.0\r\nCall-ID: x\r\nCall-ID: y\r\nx-custom: "
                         "z\r\nVia: SIP/2.0/UDP h\r\n\r\nbody i: q";
    assert_int_equal(n, strlen(expect));
    assert_memory_equal(out, expect, n);
}

/* Lines are copied 16 bytes at a time: header values of every length up to three blocks, and
 * a last line without its newline, come out whole, with the next name still normalised. */
static void test_header_names_normalised_after_values_of_every_length(void **state)
{
    (void)state;
    char in[256], expect[256], value[64];
    uint8_t out[512];
    for (int n = 0; n < 48; n++) {
        memset(value, 'a' + n % 26, (size_t)n);
        value[n] = 0;
        snprintf(in, sizeof in, "BYE sip:a@b SIP/2.0\r\nf: %s\r\nv: h\r\ni: %s", value, value);
        snprintf(expect, sizeof expect, "BYE sip:a@b SIP/2.0\r\nFrom: %s\r\nVia: h\r\nCall-ID: %s",
                 value, value);
        size_t len = sipnorm_headers((const uint8_t *)in, strlen(in), out, sizeof out);
        assert_int_equal(len, strlen(expect));
        assert_memory_equal(out, expect, len);
    }
}

/* The header names sipnorm knows, as RFC 3261 and its extensions spell them, and the compact
 * letters: the oracle for the lookup below. */
static const char *const known_names[] = {"Call-ID",
                                          "Contact",
                                          "Content-Encoding",
                                          "Content-Length",
                                          "Content-Type",
                                          "From",
                                          "Subject",
                                          "Supported",
                                          "To",
                                          "Via",
                                          "Event",
                                          "Refer-To",
                                          "Referred-By",
                                          "Allow-Events",
                                          "Session-Expires",
                                          "Identity",
                                          "Accept-Contact",
                                          "Reject-Contact",
                                          "Request-Disposition",
                                          "Accept",
                                          "Accept-Encoding",
                                          "Accept-Language",
                                          "Alert-Info",
                                          "Allow",
                                          "Authentication-Info",
                                          "Authorization",
                                          "CSeq",
                                          "Call-Info",
                                          "Content-Disposition",
                                          "Content-Language",
                                          "Date",
                                          "Error-Info",
                                          "Expires",
                                          "In-Reply-To",
                                          "Max-Forwards",
                                          "MIME-Version",
                                          "Min-Expires",
                                          "Organization",
                                          "Priority",
                                          "Proxy-Authenticate",
                                          "Proxy-Authorization",
                                          "Proxy-Require",
                                          "Record-Route",
                                          "Reply-To",
                                          "Require",
                                          "Retry-After",
                                          "Route",
                                          "Server",
                                          "Timestamp",
                                          "Unsupported",
                                          "User-Agent",
                                          "Warning",
                                          "WWW-Authenticate",
                                          "RSeq",
                                          "RAck",
                                          "P-Asserted-Identity",
                                          "P-Preferred-Identity",
                                          "Privacy",
                                          "Path",
                                          "Service-Route",
                                          "Subscription-State",
                                          "SIP-ETag",
                                          "SIP-If-Match",
                                          "Min-SE",
                                          "Diversion",
                                          "Remote-Party-ID",
                                          "Replaces"};
static const char compact_letters[] = "imelcfsktvorbuxyajd"; /* in the order of the first 19 */

static uint32_t next_rand(uint32_t *x)
{
    *x = *x * 1103515245u + 12345u;
    return *x >> 8;
}

static const char *oracle_name(const char *name, size_t len)
{
    if (len == 1)
        for (size_t k = 0; compact_letters[k]; k++)
            if ((name[0] | 0x20) == compact_letters[k])
                return known_names[k];
    for (size_t k = 0; k < sizeof known_names / sizeof *known_names; k++)
        if (strlen(known_names[k]) == len && strncasecmp(known_names[k], name, len) == 0)
            return known_names[k];
    return NULL;
}

/* Every known name in any case, and near misses (a byte changed, added or dropped), looked up
 * as the oracle says. */
static void test_header_name_lookup_matches_the_names(void **state)
{
    (void)state;
    uint32_t x = 7;
    char name[64];
    for (size_t k = 0; k < sizeof known_names / sizeof *known_names; k++)
        for (int round = 0; round < 40; round++) {
            size_t len = strlen(known_names[k]);
            memcpy(name, known_names[k], len + 1);
            for (size_t i = 0; i < len; i++)
                if (next_rand(&x) % 2 && name[i] >= 'a' && name[i] <= 'z')
                    name[i] = (char)(name[i] - 32);
                else if (next_rand(&x) % 2 && name[i] >= 'A' && name[i] <= 'Z')
                    name[i] = (char)(name[i] + 32);
            int edit = round % 4; /* 0: none; 1: change; 2: add; 3: drop a byte */
            size_t at = next_rand(&x) % len;
            if (edit == 1)
                name[at] = "-x_9Z."[next_rand(&x) % 6];
            else if (edit == 2) {
                memmove(name + at + 1, name + at, len - at + 1);
                name[at] = "-qk"[next_rand(&x) % 3];
                len++;
            } else if (edit == 3) {
                memmove(name + at, name + at + 1, len - at);
                len--;
            }
            const char *got = sipnorm_canonical_name(name, len), *want = oracle_name(name, len);
            assert_true(got == want || (got && want && strcmp(got, want) == 0));
        }
    for (int c = 0; c < 256; c++) {
        char one = (char)c;
        const char *got = sipnorm_canonical_name(&one, 1), *want = oracle_name(&one, 1);
        if (!(c >= 'a' && c <= 'z') && !(c >= 'A' && c <= 'Z'))
            want = NULL;
        assert_true(got == want || (got && want && strcmp(got, want) == 0));
    }
}

static int oracle_token(uint8_t c)
{
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') ||
           (c && strchr("-.!%*_+`'~", c));
}

/* What sipnorm_headers must write, one byte at a time. */
static size_t oracle_normalise(const char *in, size_t len, char *out)
{
    const char *nl = memchr(in, '\n', len);
    if (!nl) {
        memcpy(out, in, len);
        return len;
    }
    size_t i = (size_t)(nl - in) + 1, o = i;
    memcpy(out, in, i);
    while (i < len && !(in[i] == '\n' || (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n'))) {
        size_t n = 0, ws = 0;
        while (i + n < len && oracle_token((uint8_t)in[i + n]))
            n++;
        while (i + n + ws < len && (in[i + n + ws] == ' ' || in[i + n + ws] == '\t'))
            ws++;
        if (n && i + n + ws < len && in[i + n + ws] == ':') {
            const char *canon = oracle_name(in + i, n);
            for (size_t k = 0; k < (canon ? strlen(canon) : n); k++)
                out[o++] = canon ? canon[k]
                                 : (char)((in[i + k] >= 'A' && in[i + k] <= 'Z') ? in[i + k] + 32
                                                                                 : in[i + k]);
            i += n;
        }
        while (i < len) {
            out[o++] = in[i];
            if (in[i++] == '\n')
                break;
        }
    }
    memcpy(out + o, in + i, len - i);
    return o + (len - i);
}

/* Random header blocks (known names in any case, compact letters, unknown names up to 40 bytes
 * with every token character, non-token bytes inside names, white space before the colon, a
 * last line without its newline, bodies) at every alignment: normalised as the oracle says. */
static void test_header_names_normalised_like_the_oracle(void **state)
{
    (void)state;
    static const char tokens[] = "abcXYZ019-.!%*_+`'~";
    uint32_t x = 2026;
    char in[2048], want[4096];
    uint8_t out[4096 + 64];
    for (int round = 0; round < 3000; round++) {
        size_t len = (size_t)snprintf(in, sizeof in, "OPTIONS sip:%.*s SIP/2.0\r\n",
                                      (int)(next_rand(&x) % 17), "abcdefghijklmnopq");
        int lines = 1 + (int)(next_rand(&x) % 12);
        for (int l = 0; l < lines && len < 1500; l++) {
            int kind = (int)(next_rand(&x) % 5);
            if (kind == 0) {
                const char *k =
                    known_names[next_rand(&x) % (sizeof known_names / sizeof *known_names)];
                for (size_t i = 0; k[i]; i++)
                    in[len++] = next_rand(&x) % 3 ? k[i]
                                                  : (char)(k[i] ^ 0x20 * (((k[i] | 0x20) >= 'a') &&
                                                                          ((k[i] | 0x20) <= 'z')));
            } else if (kind == 1)
                in[len++] =
                    (char)(compact_letters[next_rand(&x) % 19] ^ (next_rand(&x) % 2 ? 0x20 : 0));
            else {
                size_t n = next_rand(&x) % 41;
                for (size_t i = 0; i < n; i++)
                    in[len++] = tokens[next_rand(&x) % (sizeof tokens - 1)];
                if (kind == 4)
                    in[len++] = " @\"/"[next_rand(&x) % 4];
            }
            for (int ws = (int)(next_rand(&x) % 4) - 2; ws > 0; ws--)
                in[len++] = next_rand(&x) % 2 ? ' ' : '\t';
            if (next_rand(&x) % 8)
                in[len++] = ':';
            size_t v = next_rand(&x) % 50;
            for (size_t i = 0; i < v; i++)
                in[len++] = "aB1 ;=<>:"[next_rand(&x) % 9];
            if (l < lines - 1 || next_rand(&x) % 3)
                len += (size_t)sprintf(in + len, next_rand(&x) % 4 ? "\r\n" : "\n");
        }
        if (next_rand(&x) % 3 == 0)
            len += (size_t)sprintf(in + len, "\r\nbody i: q\r\nv: x");
        size_t want_len = oracle_normalise(in, len, want);
        size_t got = sipnorm_headers((const uint8_t *)in, len, out, sizeof out - 64);
        assert_int_equal(got, want_len);
        assert_memory_equal(out, want, got);
    }
}

/* The two passes the default embedding fuses, one after the other. */
static size_t two_passes(const uint8_t *in, size_t len, size_t cap, uint8_t *tmp, uint8_t *out)
{
    return shape_fields(tmp, sipnorm_headers(in, len, tmp, cap), out);
}

/* Messages pieced together from what both passes act on (compact and long names in any case,
 * blanks before colons, every shaped field, SDP lines, separators, line ends of both kinds,
 * bodies) and cut anywhere, with buffers from too small to ample: normalising and shaping in
 * one pass writes what the two passes write, and nothing past the room the plain pass may use. */
static void test_header_names_and_fields_in_one_pass_as_in_two(void **state)
{
    (void)state;
    static const char *pieces[] = {"Call-ID:",
                                   "call-id:",
                                   "CALL-ID :",
                                   "i:",
                                   "I: ",
                                   "i\t:",
                                   "CSeq:",
                                   "cseq:",
                                   "l:",
                                   "Content-Length:",
                                   "content-length :",
                                   "v:",
                                   "Via:",
                                   "t:",
                                   "To:",
                                   "f:",
                                   "From:",
                                   "Record-Route:",
                                   "P-Charging-Vector:",
                                   "p-charging-vector :",
                                   "icid-value=",
                                   "ICID-Value=\"",
                                   "ftag=",
                                   "did=",
                                   "Date:",
                                   "date :",
                                   "Session-ID:",
                                   "session-id:",
                                   "remote=",
                                   "Security-Client:",
                                   "spi-c=",
                                   "SPI-S=",
                                   "a=rtcp:",
                                   "a=rtcp-fb:",
                                   "a=ssrc:",
                                   " cname:",
                                   "a=ice-ufrag:",
                                   "a=ice-pwd:",
                                   "a=crypto:1 AES_CM inline:",
                                   "a=candidate:",
                                   " typ host",
                                   " rport ",
                                   " ufrag ",
                                   ".local",
                                   "a=msid:",
                                   "a=msid-semantic: WMS ",
                                   "a=ssrc-group:FID ",
                                   " msid:",
                                   "a=fingerprint:sha-256 ",
                                   "Contact:",
                                   "contact :",
                                   "Contact: <sip:",
                                   "Via: SIP/2.0/WSS ",
                                   "v: sip/2.0/ws ",
                                   "SIP/2.0/WS",
                                   "sips:",
                                   "k3l1s3ls@",
                                   "df7jal23ls0d.invalid",
                                   ".INVALID",
                                   ".invalid",
                                   ";transport=ws",
                                   ";Transport=WSS>",
                                   ";ob",
                                   ":43380",
                                   "Via: SIP/2.0/TCP ",
                                   "v: sip/2.0/tls\t",
                                   "SIP/2.0/SCTP ",
                                   "SIP/2.0/TLS-",
                                   "[2001:db8::7]",
                                   "[",
                                   "]",
                                   ":5060",
                                   ";rport=",
                                   "RPORT=",
                                   ";rport",
                                   ";received=",
                                   "NOTIFY sip:",
                                   "BYE sip:10.0.0.1:4000",
                                   ";transport=TCP",
                                   ";Transport=tls>",
                                   "\"635 \\\"x\" <",
                                   "Front Desk <",
                                   "inline:",
                                   "|",
                                   "m=video ",
                                   "m=image ",
                                   "m=",
                                   "a=",
                                   "X-Odd:",
                                   "Call\rID:",
                                   "Content\rLength:",
                                   "CSe\x80:",
                                   "tag:",
                                   "o:",
                                   "m:",
                                   "\r\n",
                                   "\n",
                                   "\r\n\r\n",
                                   " ",
                                   "\t",
                                   ";",
                                   ",",
                                   ":",
                                   "=",
                                   "@",
                                   "\"",
                                   "<",
                                   ">",
                                   "tag=",
                                   "branch=z9hG4bK",
                                   "nonce=\"",
                                   "cnonce=\"",
                                   "response=\"",
                                   "opaque=\"",
                                   "o=",
                                   "m=audio ",
                                   "12345",
                                   "a9f3",
                                   "deadbeef",
                                   "xyz",
                                   "10.0.0.1",
                                   "\xff",
                                   "INVITE sip:a@b SIP/2.0\r\n",
                                   "SIP/2.0 200 OK\r\n"};
    uint32_t x = 4475;
    uint8_t in[1024], tmp[2 * 1024 + 128], want[2 * 1024 + 128], out[2 * 1024 + 128];
    for (int round = 0; round < 20000; round++) {
        size_t len = 0;
        for (int k = (int)(next_rand(&x) % 40); k > 0; k--) {
            const char *p = pieces[next_rand(&x) % (sizeof pieces / sizeof *pieces)];
            size_t n = strlen(p);
            if (len + n > sizeof in)
                break;
            memcpy(in + len, p, n);
            len += n;
        }
        size_t caps[] = {len, len + 16, len + next_rand(&x) % 200, 2 * len + 64};
        for (size_t c = 0; c < sizeof caps / sizeof *caps; c++) {
            memset(out, 0xA5, sizeof out);
            size_t wlen = two_passes(in, len, caps[c], tmp, want);
            size_t got = sipnorm_headers_shaped(in, len, out, caps[c]);
            assert_int_equal(got, wlen);
            assert_memory_equal(out, want, got);
            for (size_t k = caps[c] + 16; k < sizeof out; k++)
                assert_int_equal(out[k], 0xA5);
        }
    }
    /* a compact Call-ID is expanded and its value shaped; with a blank before the colon the
     * value stays, as the field's name is not there */
    const char *m = "BYE sip:a SIP/2.0\r\ni: 4711@h\r\nCall-ID : 4711@h\r\n\r\n";
    size_t got = sipnorm_headers_shaped((const uint8_t *)m, strlen(m), out, 200);
    const char want_text[] = "BYE sip:a SIP/2.0\r\nCall-ID: \xf6@h\r\nCall-ID : 4711@h\r\n\r\n";
    assert_int_equal(got, sizeof want_text - 1);
    assert_memory_equal(out, want_text, got);
    /* a carriage return folds to '-' (bit 5 set) but is no token character: these lines have
     * no header name to normalise, and stay as they are */
    const char *cr = "BYE sip:a SIP/2.0\r\nCall\rID: 4711@h\r\nContent\rLength: 0\r\n\r\n";
    got = sipnorm_headers((const uint8_t *)cr, strlen(cr), out, 200);
    assert_int_equal(got, strlen(cr));
    assert_memory_equal(out, cr, got);
}

/* The token shaping gives a whole value, by the rules of shape.h, one byte at a time. */
static uint8_t oracle_value_token(const uint8_t *v, size_t n)
{
    bool digit = false, hex_letter = false, other = false;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = v[i], l = (uint8_t)(c | 0x20);
        if (c >= '0' && c <= '9')
            digit = true;
        else if (((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) && l <= 'f')
            hex_letter = true;
        else
            other = true; /* other letters, and bytes of no class */
    }
    if (digit && !hex_letter && !other)
        return n <= 3    ? SHAPE_DIGITS_1_3
               : n <= 8  ? SHAPE_DIGITS_4_8
               : n <= 16 ? SHAPE_DIGITS_9_16
               : n <= 32 ? SHAPE_DIGITS_17_32
                         : SHAPE_DIGITS_LONG;
    if (digit && !other)
        return n <= 8    ? SHAPE_HEX_1_8
               : n <= 16 ? SHAPE_HEX_9_16
               : n <= 32 ? SHAPE_HEX_17_32
                         : SHAPE_HEX_LONG;
    return n <= 16 ? SHAPE_ALNUM_1_16 : n <= 32 ? SHAPE_ALNUM_17_32 : SHAPE_ALNUM_LONG;
}

/* Tag and Call-ID values of every length to 70, of digits, hex, letters and bytes of no class
 * (0x80 and up among them), at every alignment, ended by each byte of their stop sets or by
 * the end of the message: each becomes the token the rules give. */
static void test_shape_values_of_every_length_and_class(void **state)
{
    (void)state;
    static const char pool[] = "0123456789abcdefABCDEFghzGZ-._=+!~\x80\xc3\xff";
    static const char param_stops[] = ";, \t\r\n>\"";
    uint32_t x = 99;
    uint8_t in[512], want[512], out[512 + 64];
    for (int round = 0; round < 4000; round++) {
        size_t pad = next_rand(&x) % 16, n = next_rand(&x) % 71, m = 1 + next_rand(&x) % 40;
        /* digits only; hex digits; letters and bytes of no class; anything */
        static const size_t from[] = {0, 0, 10, 0},
                            span[] = {10, 22, sizeof pool - 11, sizeof pool - 1};
        int kind = (int)(next_rand(&x) % 4);
        size_t len = 0, wlen = 0;
        char head[64];
        int hl = snprintf(head, sizeof head, "BYE sip:a SIP/2.0\r\nVia: x%.*s;tag=", (int)pad,
                          "pppppppppppppppp");
        memcpy(in, head, (size_t)hl);
        memcpy(want, head, (size_t)hl);
        len = wlen = (size_t)hl;
        uint8_t *v = in + len;
        for (size_t i = 0; i < n; i++)
            in[len++] = (uint8_t)pool[from[kind] + next_rand(&x) % span[kind]];
        if (n) /* an empty value keeps no token */
            want[wlen++] = oracle_value_token(v, n);
        char stop = param_stops[next_rand(&x) % (sizeof param_stops - 1)];
        in[len++] = (uint8_t)stop;
        want[wlen++] = (uint8_t)stop;
        const char *mid = "\r\nCall-ID: ";
        if (stop != '\r' && stop != '\n') {
            memcpy(in + len, mid, strlen(mid));
            memcpy(want + wlen, mid, strlen(mid));
        } else {
            memcpy(in + len, mid + 1, strlen(mid) - 1);
            memcpy(want + wlen, mid + 1, strlen(mid) - 1);
            len--, wlen--;
        }
        len += strlen(mid);
        wlen += strlen(mid);
        uint8_t *c = in + len;
        for (size_t i = 0; i < m; i++)
            in[len++] = (uint8_t)pool[next_rand(&x) % (sizeof pool - 1)];
        want[wlen++] = oracle_value_token(c, m);
        if (next_rand(&x) % 2) { /* else the message ends in the value */
            memcpy(in + len, "@h\r\n", 4);
            memcpy(want + wlen, "@h\r\n", 4);
            len += 4;
            wlen += 4;
        }
        size_t got = shape_fields(in, len, out);
        assert_int_equal(got, wlen);
        assert_memory_equal(out, want, got);
    }
}

/* Every field name shaping knows, in any case and with one byte changed, after a separator
 * or at a line start, with room after it and at the very end of the message: only an exact
 * name (but for case) in its place has its value shaped. */
static void test_shape_field_names_in_any_case_and_near_misses(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        bool line_start;
    } names[] = {{"branch=z9hG4bK", false}, {"tag=", false},        {"cnonce=\"", false},
                 {"nonce=\"", false},       {"response=\"", false}, {"opaque=\"", false},
                 {"Call-ID:", true},        {"CSeq:", true},        {"Content-Length:", true},
                 {"Date:", true},           {"Session-ID:", true},  {"remote=", false},
                 {"spi-c=", false},         {"spi-s=", false}};
    uint32_t x = 5;
    char name[32], in[256];
    uint8_t out[256 + 64];
    for (size_t k = 0; k < sizeof names / sizeof *names; k++)
        for (int round = 0; round < 200; round++) {
            size_t nl = strlen(names[k].name);
            memcpy(name, names[k].name, nl + 1);
            for (size_t i = 0; i < nl; i++)
                if (next_rand(&x) % 2 && ((name[i] | 0x20) >= 'a' && (name[i] | 0x20) <= 'z'))
                    name[i] ^= 0x20;
            bool changed = round % 3 == 0;
            if (changed) /* a letter to another letter, or a byte to a digit */
                name[next_rand(&x) % nl] = (char)(next_rand(&x) % 2 ? 'q' : '7');
            bool at_line_start = next_rand(&x) % 2, at_end = next_rand(&x) % 2;
            int len =
                snprintf(in, sizeof in, "BYE sip:a SIP/2.0\r\n%s%s%s", at_line_start ? "" : "X: a;",
                         name, at_end ? "12" : "12\r\nMax-Forwards: 70\r\n\r\n");
            size_t got = shape_fields((const uint8_t *)in, (size_t)len, out);
            bool exact = strncasecmp(name, names[k].name, nl) == 0;
            bool shaped = exact && (at_line_start || !names[k].line_start);
            size_t at = strlen("BYE sip:a SIP/2.0\r\n") + (at_line_start ? 0 : 5) + nl;
            if (shaped) {
                assert_int_equal(got, (size_t)len - 1); /* "12" became one token byte */
                assert_int_equal(out[at], SHAPE_DIGITS_1_3);
                assert_memory_equal(out, in, at);
            } else {
                assert_int_equal(got, (size_t)len);
                assert_memory_equal(out, in, got);
            }
        }
}

static void test_empty_and_tiny_messages(void **state)
{
    (void)state;
    embed_opts_t o;
    embed_opts_default(&o);
    embed_t *e = embed_new(&o);
    sparse_t *v = sparse_new();
    assert_int_equal(embed_message(e, (const uint8_t *)"", 0, v), 0);
    assert_int_equal(v->n, 0);
    assert_int_equal(embed_message(e, (const uint8_t *)"ab", 2, v), 0);
    assert_int_equal(v->n, 0);
    sparse_destroy(&v);
    embed_destroy(&e);
}

/* The options the sweeps below go through: tokens or n-grams of length n, and opt 0 plain
 * counts, 1 binary, 2 l1-normalised, 3 l2-normalised with every value shaped. */
static embed_opts_t sweep_options(int kind, int n, int opt)
{
    embed_opts_t o;
    embed_opts_default(&o);
    o.kind = kind ? EMBED_TOKEN : EMBED_NGRAM;
    o.n = n;
    o.binary = opt == 1;
    o.norm = opt == 2 ? EMBED_NORM_L1 : opt == 3 ? EMBED_NORM_L2 : EMBED_NORM_NONE;
    o.shape = opt == 3 ? EMBED_SHAPE_ALL : EMBED_SHAPE_FIELDS;
    return o;
}

/* Every n-gram of the bytes the embedder took its features from, counted by comparing
 * positions: the vector holds exactly these counts. */
static void assert_counts_are_naive_counts(const embed_t *e, const sparse_t *v, int n)
{
    size_t len;
    const uint8_t *p = embed_last_bytes(e, &len);
    size_t positions = len >= (size_t)n ? len - (size_t)n + 1 : 0;
    double total = 0;
    for (size_t i = 0; i < v->n; i++)
        total += v->vals[i];
    assert_true(total == (double)positions);
    for (size_t i = 0; i < positions; i++) {
        double c = 0;
        for (size_t j = 0; j < positions; j++)
            c += memcmp(p + i, p + j, (size_t)n) == 0;
        uint64_t key;
        assert_int_equal(embed_feature_key(embed_opts(e), p + i, (size_t)n, &key), 0);
        assert_true(value_of(v, key) == c);
    }
}

/* The hash-accumulation path (scoring) must give the sorted path's vector, in another order,
 * for every feature kind, length and option. */
static void test_unsorted_equals_sorted_for_every_option(void **state)
{
    (void)state;
    static char words[4 * 80 + 1], noise[301], short_noise[21];
    const char *msgs[] = {
        "INVITE sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK77\r\n"
        "i: abc123@host\r\nf: <sip:a@b>;tag=99\r\nl: 0\r\n\r\n",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "\xff\xfe\x00\x00\x01", "ab", "",
        words, noise, short_noise,
        /* runs of zero bytes: the 4-gram of four zeros is key 0, whose word in the plain
         * table must still not read as empty, counted 3 + 2 times around other keys */
        "\0\0\0\0\0\0ab\0\0\0\0\0",
        /* the same after a key whose hash is 0 has taken key 0's first slot, so that key 0
         * is new only after a probe */
        "\"#  \0\0\0\0\0x\0\0\0\0"};
    /* the lengths of the messages holding zero bytes; strlen for the others */
    const size_t zero_len[] = {[2] = 5, [8] = 13, [9] = 14};
    /* three-letter words and a ';': dozens of distinct 4-grams end in ';', more than a
     * sort bucket ranks */
    for (int w = 0; w < 80; w++) {
        words[4 * w] = (char)('a' + w % 26);
        words[4 * w + 1] = (char)('a' + (w * 7) % 26);
        words[4 * w + 2] = (char)('a' + w / 26);
        words[4 * w + 3] = ';';
    }
    /* bytes from a fixed-seed generator, none zero: keys above and below 2^31 side by side */
    uint32_t seed = 12345;
    for (int i = 0; i < 300; i++) {
        seed = seed * 1103515245u + 12345u;
        noise[i] = (char)((seed >> 16) % 255 + 1);
    }
    memcpy(short_noise, noise, 20); /* few keys: ranked all together, not by bucket */
    sparse_t *a = sparse_new(), *b = sparse_new();
    for (int kind = 0; kind < 2; kind++)
        for (int n = 1; n <= 8; n++)
            for (int opt = 0; opt < 4; opt++) {
                embed_opts_t o = sweep_options(kind, n, opt);
                embed_t *sorted = embed_new(&o), *hashed = embed_new(&o);
                embed_set_sorted(hashed, false);
                /* twice through, so that slots left by one message would show in the next */
                for (int round = 0; round < 2; round++)
                    for (size_t m = 0; m < sizeof msgs / sizeof msgs[0]; m++) {
                        size_t len = m < sizeof zero_len / sizeof zero_len[0] && zero_len[m]
                                         ? zero_len[m]
                                         : strlen(msgs[m]);
                        assert_int_equal(embed_message(sorted, (const uint8_t *)msgs[m], len, a),
                                         0);
                        assert_int_equal(embed_message(hashed, (const uint8_t *)msgs[m], len, b),
                                         0);
                        assert_int_equal(a->n, b->n);
                        assert_true(fabs(a->norm2 - b->norm2) <= 1e-12 * (1 + a->norm2));
                        for (size_t i = 0; i < b->n; i++)
                            assert_true(value_of(a, b->keys[i]) == b->vals[i]);
                        for (size_t i = 1; i < a->n; i++)
                            assert_true(a->keys[i - 1] < a->keys[i]);
                        if (kind == 0 && opt == 0)
                            assert_counts_are_naive_counts(sorted, a, n);
                    }
                embed_destroy(&sorted);
                embed_destroy(&hashed);
            }
    sparse_destroy(&a);
    sparse_destroy(&b);
}

/* Field shaping finds separators a block at a time: values after runs of every length, with
 * the separator at every offset of a block, are still shaped, and the runs copied whole. */
static void test_field_shaping_after_runs_of_every_length(void **state)
{
    (void)state;
    char in[256], expect[256];
    uint8_t out[256];
    for (int run = 0; run < 48; run++) {
        char a[64], b[64];
        memset(a, 'a', (size_t)run);
        a[run] = '\0';
        memset(b, 'b', (size_t)run);
        b[run] = '\0';
        snprintf(in, sizeof in, "%s;tag=1234;%s tag=ab12\r\nCSeq: 7 BYE\r\n", a, b);
        snprintf(expect, sizeof expect, "%s;tag=\xf6;%s tag=\xfa\r\nCSeq: \xf5 BYE\r\n", a, b);
        size_t n = shape_fields((const uint8_t *)in, strlen(in), out);
        assert_int_equal(n, strlen(expect));
        assert_memory_equal(out, expect, n);
        /* SDP lines (and near misses) at every place in a block and in the message's tail */
        snprintf(in, sizeof in, "%s\nmo=1\no=%s 12 34 IN\nm=video 8\nm=audio 4000 RTP", a, b);
        snprintf(expect, sizeof expect,
                 "%s\nmo=1\no=%s \xf5 \xf5 IN\nm=video \xf5\nm=audio \xf6 RTP", a, b);
        for (size_t cut = strlen(in) - 4; cut <= strlen(in); cut += 4) {
            n = shape_fields((const uint8_t *)in, cut, out);
            assert_int_equal(n, cut == strlen(in) ? strlen(expect) : cut - 5);
            assert_memory_equal(out, expect, n);
        }
    }
}

/* The unsorted vector put in key order: what the sorted embedder must give. */
static void sort_by_key(sparse_t *v)
{
    for (size_t i = 1; i < v->n; i++)
        for (size_t j = i; j > 0 && v->keys[j - 1] > v->keys[j]; j--) {
            uint64_t k = v->keys[j];
            double x = v->vals[j];
            v->keys[j] = v->keys[j - 1];
            v->vals[j] = v->vals[j - 1];
            v->keys[j - 1] = k;
            v->vals[j - 1] = x;
        }
}

/* A message of the stream below: m picks a SIP-like message with random user, tag and host
 * (new keys beside learned ones), random bytes (hundreds of new keys), or a short one. */
static size_t stream_message(uint32_t *seed, int m, char *buf, size_t cap)
{
    uint32_t r[4];
    for (int i = 0; i < 4; i++) {
        *seed = *seed * 1103515245u + 12345u;
        r[i] = *seed >> 8;
    }
    switch (m % 5) {
    case 0:
    case 1:
        return (size_t)snprintf(
            buf, cap,
            "REGISTER sip:pbx%u.example SIP/2.0\r\nFrom: <sip:u%x@pbx>;tag=%x\r\n"
            "To: <sip:u%x@pbx>\r\nUser-Agent: Phone/%u.%u\r\nl: 0\r\n\r\n",
            r[0] % 7, r[1] % 4096, r[2], r[1] % 4096, r[3] % 5, r[0] % 3);
    case 2:
    case 3: {
        size_t len = 100 + r[0] % 400;
        for (size_t i = 0; i < len; i++) {
            *seed = *seed * 1103515245u + 12345u;
            buf[i] = (char)(*seed >> 16);
        }
        return len;
    }
    default:
        return r[0] % 6; /* an empty message, or the first bytes of the last one */
    }
}

/*
 * The sorted embedder learns the n-grams it sees and sorts by their learned ranks: over a long
 * stream (the dictionary filling up to its limit, keys it does not know merged between those
 * it does, messages too long for the learned table) it gives exactly the unsorted embedder's
 * vector in key order, for 4-, 3- and 1-grams, counts, binary and l2.
 */
static void test_sorted_embedder_learns_ranks_and_gives_the_same_vectors(void **state)
{
    (void)state;
    static char buf[70000];
    const int opts[][2] = {{4, 0}, {3, 1}, {4, 3}, {1, 0}};
    sparse_t *a = sparse_new(), *b = sparse_new();
    for (size_t c = 0; c < sizeof opts / sizeof opts[0]; c++) {
        embed_opts_t o = sweep_options(0, opts[c][0], opts[c][1]);
        embed_t *sorted = embed_new(&o), *hashed = embed_new(&o);
        embed_set_sorted(hashed, false);
        uint32_t seed = 2024;
        size_t len, learned_after_20 = 0;
        for (int m = 0; m < 600; m++) {
            if (m == 300) { /* longer than any count the learned table holds */
                memset(buf, 'x', sizeof buf);
                len = sizeof buf;
            } else {
                len = stream_message(&seed, m, buf, sizeof buf);
            }
            assert_int_equal(embed_message(sorted, (const uint8_t *)buf, len, a), 0);
            assert_int_equal(embed_message(hashed, (const uint8_t *)buf, len, b), 0);
            sort_by_key(b);
            assert_int_equal(a->n, b->n);
            /* l2: the squares of the normalised values are summed in another order */
            assert_true(fabs(a->norm2 - b->norm2) <= 1e-12 * (1 + a->norm2));
            assert_memory_equal(a->keys, b->keys, a->n * sizeof *a->keys);
            assert_memory_equal(a->vals, b->vals, a->n * sizeof *a->vals);
            if (m == 20)
                learned_after_20 = embed_learned_keys(sorted);
        }
        /* 1-grams: at most 256 keys; longer n-grams fill the dictionary from the random bytes */
        assert_true(learned_after_20 > 0);
        if (opts[c][0] == 1)
            assert_true(embed_learned_keys(sorted) <= 256);
        else
            assert_int_equal(embed_learned_keys(sorted), EMBED_LEARNED_KEYS_MAX);
        embed_destroy(&sorted);
        embed_destroy(&hashed);
    }
    sparse_destroy(&a);
    sparse_destroy(&b);
}

static bool has_key(const uint64_t *keys, size_t n, uint64_t key)
{
    for (size_t i = 0; i < n; i++)
        if (keys[i] == key)
            return true;
    return false;
}

/* Brute force: sum of value times weight over the entries of v. */
static double weighted_sum(const sparse_t *v, const uint64_t *keys, const double *w, size_t nw)
{
    double d = 0;
    for (size_t i = 0; i < v->n; i++)
        for (size_t j = 0; j < nw; j++)
            if (keys[j] == v->keys[i])
                d += v->vals[i] * w[j];
    return d;
}

/* With weights set, the unsorted embedder (weights inside its counting table for n <= 4)
 * gives the sorted path's vector and the brute-force dot product, message after message, and
 * embed_message_stats() the same norm and dot product with the vector written only on demand:
 * keys a message adds to the table must leave no trace in the next one. A long message is too
 * big for the table and takes the plain path between the others; the all-zero n-gram has the
 * largest weight, so key 0 is the first kept key. */
static void test_weighted_embedding_gives_vector_and_dot(void **state)
{
    (void)state;
    static char big[20000];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof big - 1; i++) {
        x = x * 1103515245u + 12345u;
        big[i] = (char)(' ' + (x >> 16) % 90);
    }
    const char *msgs[] = {
        "INVITE sip:bob@example.net SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK77\r\n"
        "i: abc123@host\r\nf: <sip:a@b>;tag=99\r\nl: 0\r\n\r\n",
        "BYE sip:bob@example.net SIP/2.0\r\nCSeq: 2 BYE\r\n\r\n",
        "\x00\x00\x00\x00\x00\x00\x00\x00\x00",
        big,
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "ab",
        ""};
    size_t lens[] = {strlen(msgs[0]), strlen(msgs[1]), 9, strlen(big), strlen(msgs[4]), 2, 0};
    sparse_t *a = sparse_new(), *b = sparse_new(), *c = sparse_new();
    for (int kind = 0; kind < 2; kind++)
        for (int n = 1; n <= 8; n++)
            for (int opt = 0; opt < 4; opt++) {
                embed_opts_t o = sweep_options(kind, n, opt);
                embed_t *sorted = embed_new(&o), *weighted = embed_new(&o), *stats = embed_new(&o);
                embed_set_sorted(weighted, false);
                embed_set_sorted(stats, false);
                /* weights on the features of the first two messages, one in three left out */
                uint64_t keys[512];
                double w[512];
                size_t nw = 0;
                for (int m = 0; m < 2; m++) {
                    embed_message(sorted, (const uint8_t *)msgs[m], lens[m], a);
                    for (size_t i = 0; i < a->n && nw < 500; i++)
                        if ((a->keys[i] + (uint64_t)i) % 3 != 0 && a->keys[i] != 0 &&
                            !has_key(keys, nw, a->keys[i])) {
                            keys[nw] = a->keys[i];
                            w[nw] = 0.25 + (double)(nw % 7) - 3.0;
                            nw++;
                        }
                }
                keys[nw] = 0; /* the n-gram of zero bytes, with the largest weight: the fused
                               * table ranks it first, and its word must still not read as empty */
                w[nw++] = -9.5;
                assert_int_equal(embed_set_weights(weighted, keys, w, nw), 0);
                assert_int_equal(embed_set_weights(stats, keys, w, nw), 0);
                for (int round = 0; round < 2; round++)
                    for (size_t m = 0; m < sizeof msgs / sizeof msgs[0]; m++) {
                        double dot = -1;
                        assert_int_equal(
                            embed_message(sorted, (const uint8_t *)msgs[m], lens[m], a), 0);
                        assert_int_equal(
                            embed_message_dot(weighted, (const uint8_t *)msgs[m], lens[m], b, &dot),
                            0);
                        assert_int_equal(a->n, b->n);
                        assert_true(fabs(a->norm2 - b->norm2) <= 1e-12 * (1 + a->norm2));
                        for (size_t i = 0; i < b->n; i++)
                            assert_true(value_of(a, b->keys[i]) == b->vals[i]);
                        double want = weighted_sum(a, keys, w, nw);
                        assert_true(fabs(dot - want) <= 1e-9 * (1 + fabs(want)));
                        assert_true(fabs(embed_weighted_dot(weighted, b) - want) <=
                                    1e-9 * (1 + fabs(want)));
                        /* the global score's inputs without the vector: the same sums; the
                         * vector on demand (every other message), the same vector */
                        double norm2 = -1, sdot = -1;
                        assert_int_equal(embed_message_stats(stats, (const uint8_t *)msgs[m],
                                                             lens[m], &norm2, &sdot),
                                         0);
                        assert_true(norm2 == b->norm2 && sdot == dot);
                        if ((m + (size_t)round) % 2 == 0) {
                            assert_int_equal(embed_last_vector(stats, c), 0);
                            assert_int_equal(c->n, b->n);
                            assert_true(c->norm2 == b->norm2);
                            assert_memory_equal(c->keys, b->keys, b->n * sizeof *b->keys);
                            assert_memory_equal(c->vals, b->vals, b->n * sizeof *b->vals);
                        }
                    }
                embed_destroy(&sorted);
                embed_destroy(&weighted);
                embed_destroy(&stats);
            }
    sparse_destroy(&a);
    sparse_destroy(&b);
    sparse_destroy(&c);
}

/* A key given twice keeps its first weight, in the counting table and in the lookup alike. */
static void test_weights_keep_the_first_of_a_repeated_key(void **state)
{
    (void)state;
    sparse_t *v = sparse_new();
    /* the fused table takes keys by falling weight: the first may be the smaller or larger */
    for (int kind = 0; kind < 4; kind++) {
        embed_t *e = plain_embedder(kind % 2 ? EMBED_TOKEN : EMBED_NGRAM, 4);
        embed_set_sorted(e, false);
        uint64_t key;
        assert_int_equal(embed_feature_key(embed_opts(e), (const uint8_t *)"JOHN", 4, &key), 0);
        uint64_t keys[] = {key, key};
        double first = kind < 2 ? 2.0 : 5.0, w[] = {first, 7.0 - first};
        assert_int_equal(embed_set_weights(e, keys, w, 2), 0);
        double dot = 0;
        assert_int_equal(embed_message_dot(e, (const uint8_t *)"BYE JOHN", 8, v, &dot), 0);
        assert_true(dot == first);
        assert_true(embed_weighted_dot(e, v) == first);
        embed_destroy(&e);
    }
    sparse_destroy(&v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens_of_paper_example),
        cmocka_unit_test(test_ngrams_of_paper_example),
        cmocka_unit_test(test_feature_names_escape_and_cut),
        cmocka_unit_test(test_binary_and_norms),
        cmocka_unit_test(test_shape_replaces_random_values_by_class_and_length),
        cmocka_unit_test(test_field_shaping_replaces_only_per_message_random_values),
        cmocka_unit_test(test_field_shaping_takes_record_route_dialog_values),
        cmocka_unit_test(test_field_shaping_takes_the_ims_charging_id),
        cmocka_unit_test(test_field_shaping_takes_dates_sessions_spis_and_sdp_values),
        cmocka_unit_test(test_field_shaping_takes_webrtc_sdp_values),
        cmocka_unit_test(test_field_shaping_takes_websocket_clients_invalid_hosts),
        cmocka_unit_test(test_field_shaping_takes_the_ports_of_connections),
        cmocka_unit_test(test_field_shaping_takes_request_uris_like_contacts),
        cmocka_unit_test(test_same_flow_different_random_values_embed_identically),
        cmocka_unit_test(test_header_names_normalised),
        cmocka_unit_test(test_header_names_normalised_after_values_of_every_length),
        cmocka_unit_test(test_header_name_lookup_matches_the_names),
        cmocka_unit_test(test_shape_values_of_every_length_and_class),
        cmocka_unit_test(test_shape_field_names_in_any_case_and_near_misses),
        cmocka_unit_test(test_header_names_normalised_like_the_oracle),
        cmocka_unit_test(test_header_names_and_fields_in_one_pass_as_in_two),
        cmocka_unit_test(test_empty_and_tiny_messages),
        cmocka_unit_test(test_unsorted_equals_sorted_for_every_option),
        cmocka_unit_test(test_field_shaping_after_runs_of_every_length),
        cmocka_unit_test(test_weighted_embedding_gives_vector_and_dot),
        cmocka_unit_test(test_weights_keep_the_first_of_a_repeated_key),
        cmocka_unit_test(test_sorted_embedder_learns_ranks_and_gives_the_same_vectors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
