/*
 * fuzz_message: one SIP message (any bytes) through everything that reads a message: the
 * framing, the libosip2 check, header normalisation, shaping, HEPv3 decoding, the decoder
 * as the edge's HEP and UDP listeners call it with a datagram, and the embedding under the option
 * set the first byte picks (n-gram length or tokens, shaping, header normalisation, binary, norm,
 * sorted or weighted counting), each checked against an embedder in the other order, and the
 * global score's inputs without the vector. A libFuzzer target (SIPGUARD_FUZZ=ON with clang), and
 * replayed over seeds by fuzz_replay in every build.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "decode.h"
#include "embed.h"
#include "hep.h"
#include "shape.h"
#include "sipcheck.h"
#include "sipframe.h"
#include "sipnorm.h"

#define OPTION_SETS 256

static embed_t *embedders[OPTION_SETS], *twins[OPTION_SETS];
static sparse_t *vec, *twin_vec, *again;

/* Option set s: bits 0-3 the feature (0-7: n-grams of 1..8 bytes, 8+: tokens), 4-5 shaping,
 * 6 header normalisation, 7 binary with l2 norm; sets with an odd n-gram count unsorted,
 * with weights on a few keys, so the fused counting table runs too. */
static embed_t *embedder(unsigned s)
{
    if (embedders[s])
        return embedders[s];
    embed_opts_t o;
    embed_opts_default(&o);
    unsigned f = s & 15;
    o.kind = f < 8 ? EMBED_NGRAM : EMBED_TOKEN;
    o.n = f < 8 ? (int)f + 1 : 4;
    o.shape = (int)((s >> 4) & 3) % 3;
    o.header_norm = (s >> 6) & 1;
    o.binary = (s >> 7) & 1;
    o.norm = o.binary ? EMBED_NORM_L2 : EMBED_NORM_NONE;
    embed_t *e = embed_new(&o), *twin = embed_new(&o);
    if (!e || !twin)
        abort();
    embed_set_sorted(twin, f & 1); /* the other order, without weights: the oracle */
    twins[s] = twin;
    if (f & 1) {
        embed_set_sorted(e, false);
        uint64_t keys[4] = {0, 0x20, 0x203a, 0x0a0d0a0d};
        double w[4] = {-2.5, 1.0, 0.5, 3.0};
        if (embed_set_weights(e, keys, w, 4) != 0)
            abort();
    }
    embedders[s] = e;
    return e;
}

/* Runs fn's output into a buffer of exactly cap bytes, so that ASan sees any write past it. */
static void exact_output(size_t cap, const uint8_t *data, size_t size,
                         size_t (*fn)(const uint8_t *, size_t, uint8_t *, size_t))
{
    uint8_t *out = malloc(cap ? cap : 1);
    if (!out)
        abort();
    if (fn(data, size, out, cap) > cap)
        abort();
    free(out);
}

static size_t do_shape_apply(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    (void)cap;
    return shape_apply(in, len, out);
}

static size_t do_shape_fields(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    (void)cap;
    return shape_fields(in, len, out);
}

/* Header names normalised and fields shaped in one pass: what the two passes give. */
static void same_as_two_passes(const uint8_t *data, size_t size, size_t cap)
{
    uint8_t *tmp = malloc(cap + 16), *want = malloc(cap + 16), *got = malloc(cap + 16);
    if (!tmp || !want || !got)
        abort();
    size_t wlen = shape_fields(tmp, sipnorm_headers(data, size, tmp, cap), want);
    size_t glen = sipnorm_headers_shaped(data, size, got, cap);
    if (glen != wlen || memcmp(got, want, wlen) != 0)
        abort();
    free(tmp);
    free(want);
    free(got);
}

static void on_datagram_message(void *ctx, const msg_t *m)
{
    (void)ctx;
    if (m->len > 0 && !m->data)
        abort();
}

/* The bytes as a datagram on the HEP port and on the SIP port, as the edge's listeners give
 * them to the decoder. */
static void decode_as_datagram(const uint8_t *data, size_t size)
{
    static decode_t *d;
    static skips_t skips;
    if (!d) {
        decode_opts_t o;
        decode_opts_default(&o);
        d = decode_new(&o, &skips, on_datagram_message, NULL);
        if (!d)
            abort();
    }
    msg_t t = {0};
    t.src.family = t.dst.family = 4;
    t.src.port = 40000;
    t.transport = TRANSPORT_UDP;
    t.dst.port = 9060;
    decode_udp_payload(d, &t, data, size);
    t.dst.port = 5060;
    decode_udp_payload(d, &t, data, size);
}

static bool same_vector(const sparse_t *a, const sparse_t *b)
{
    /* an empty vector may have no arrays yet, and memcmp must not see NULL */
    return a->n == b->n && a->norm2 == b->norm2 &&
           (a->n == 0 || (!memcmp(a->keys, b->keys, a->n * sizeof *a->keys) &&
                          !memcmp(a->vals, b->vals, a->n * sizeof *a->vals)));
}

/* The twin embeds in the other order (the sorted one learning ranks as it goes): the same
 * entries, and the sorted vector in ascending order. vec_unsorted says which one vec is. */
static void check_against_twin(embed_t *twin, const uint8_t *data, size_t size, bool vec_unsorted)
{
    if (embed_message(twin, data, size, twin_vec) != 0)
        abort();
    const sparse_t *sorted = vec_unsorted ? twin_vec : vec, *other = vec_unsorted ? vec : twin_vec;
    if (sorted->n != other->n)
        abort();
    for (size_t i = 1; i < sorted->n; i++)
        if (sorted->keys[i - 1] >= sorted->keys[i])
            abort();
    for (size_t i = 0; i < other->n; i++) {
        size_t lo = 0, hi = sorted->n;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (sorted->keys[mid] < other->keys[i])
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == sorted->n || sorted->keys[lo] != other->keys[i] ||
            sorted->vals[lo] != other->vals[i])
            abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (!vec) {
        sipcheck_init();
        vec = sparse_new();
        twin_vec = sparse_new();
        again = sparse_new();
        if (!vec || !twin_vec || !again)
            abort();
    }
    unsigned set = data[0];
    data++;
    size--;

    size_t msg_len, header_len;
    long long content_length;
    sipframe_message_length(data, size, &msg_len, &header_len, &content_length);
    sipframe_looks_like_sip(data, size);
    sipframe_skip_crlf(data, size);

    sipinfo_t info;
    sipcheck_message(data, size, &info);

    /* the output bounds the shaping and normalisation functions promise: len bytes for
     * shaping; for header names whatever cap is given (too small: the message unchanged) */
    exact_output(size, data, size, do_shape_apply);
    exact_output(size, data, size, do_shape_fields);
    exact_output(size, data, size, sipnorm_headers);
    exact_output(size + 16, data, size, sipnorm_headers);
    exact_output(2 * size + 1024, data, size, sipnorm_headers);
    exact_output(size, data, size, sipnorm_headers_shaped);
    exact_output(size + 16, data, size, sipnorm_headers_shaped);
    exact_output(2 * size + 1024, data, size, sipnorm_headers_shaped);
    same_as_two_passes(data, size, size + 16);
    same_as_two_passes(data, size, 2 * size + 1024);

    hep_t hep;
    const char *why;
    uint8_t *inflated = malloc(65536);
    if (!inflated)
        abort();
    if (hep_decode(data, size, inflated, 65536, &hep, &why) == 0 &&
        (hep.payload_len > 65536 + size || (hep.auth_key && hep.auth_key_len > size)))
        abort();
    free(inflated);
    decode_as_datagram(data, size);

    embed_t *e = embedder(set);
    double dot;
    if (embed_message_dot(e, data, size, vec, &dot) != 0)
        abort();
    check_against_twin(twins[set], data, size, (set & 1) != 0);
    if (set & 1) { /* weighted: the global score's inputs alone, and the vector on demand */
        double norm2, dot2;
        if (embed_message_stats(e, data, size, &norm2, &dot2) != 0 || norm2 != vec->norm2 ||
            dot2 != dot || embed_last_vector(e, again) != 0 || !same_vector(again, vec))
            abort();
    }
    /* feature names stay within the buffer they are given, however small, and end in NUL */
    for (size_t i = 0; i < vec->n && i < 8; i++) {
        char name[48];
        size_t cap = 1 + (size_t)(vec->keys[i] + i) % sizeof name;
        memset(name, 'Z', sizeof name);
        embed_feature_name(e, vec->keys[i], name, cap);
        bool terminated = strnlen(name, cap) < cap;
        bool untouched_past = cap == sizeof name || name[cap] == 'Z';
        if (!terminated || !untouched_past)
            abort();
    }
    return 0;
}
