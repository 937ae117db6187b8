/* Tests of sigdist/cluster (incremental clustering under each linkage, merges, keys, bounds) and
 * of siggen's verification (reject, or tighten). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <xxhash.h>

#include "cluster.h"
#include "embed.h"
#include "sigdb.h"
#include "siggen.h"

/* A message whose embedding holds keys lo..hi (count 1 each) and `noise` keys of its own. */
static member_t message(uint64_t lo, uint64_t hi, size_t noise, uint64_t id)
{
    member_t m = {0};
    uint64_t spec[4] = {lo, hi, noise, id}; /* its bytes say how to make it again */
    m.raw = malloc(sizeof spec);
    memcpy(m.raw, spec, sizeof spec);
    m.len = sizeof spec;
    m.v = sparse_new();
    assert_int_equal(sparse_reserve(m.v, (size_t)(hi - lo + 1) + noise), 0);
    for (uint64_t k = lo; k <= hi; k++) {
        m.v->keys[m.v->n] = k;
        m.v->vals[m.v->n++] = 1;
    }
    for (size_t i = 0; i < noise; i++) { /* above every family's keys, distinct per message */
        m.v->keys[m.v->n] = 1000000 + id * 100 + i;
        m.v->vals[m.v->n++] = 1;
    }
    sparse_update_norm(m.v);
    return m;
}

/* The embedder a loaded clusterer makes its members' vectors with: message() again. */
static int remake(void *ctx, const uint8_t *raw, size_t len, sparse_t *out)
{
    (void)ctx;
    uint64_t spec[4];
    if (len != sizeof spec)
        return -1;
    memcpy(spec, raw, sizeof spec);
    if (spec[1] < spec[0] || spec[1] - spec[0] > 1000 || spec[2] > 100 || spec[3] > 100000)
        return -1; /* bytes a mutation made: not a message of this test */
    member_t m = message(spec[0], spec[1], (size_t)spec[2], spec[3]);
    int rc = sparse_copy(out, m.v);
    free(m.raw);
    sparse_destroy(&m.v);
    return rc;
}

static clusterer_t *make(linkage_t l, double cut, size_t k, size_t per, size_t max_kept)
{
    cluster_opts_t o = {
        .linkage = l, .cut = cut, .k = k, .per_cluster = per, .max_kept = max_kept, .small = 5};
    clusterer_t *c = clusterer_new(&o);
    assert_non_null(c);
    return c;
}

static void add(clusterer_t *c, member_t m)
{
    assert_int_equal(clusterer_add(c, &m, NULL), 0);
}

/* Two unrelated families, interleaved: two clusters of 15 whatever the linkage. Within a
 * family cos = 40/45 (distance 0.47); across, the vectors are orthogonal (1.41). */
static void test_two_families_under_every_linkage(void **state)
{
    (void)state;
    for (int l = LINK_SINGLE; l <= LINK_KMEANS; l++) {
        clusterer_t *c = make((linkage_t)l, 0.6, 2, 128, 10000);
        for (uint64_t i = 0; i < 30; i++)
            add(c, i % 2 ? message(5000, 5039, 5, i) : message(1, 40, 5, i));
        assert_int_equal(clusterer_count(c), 2);
        assert_string_equal(clusterer_get(c, 0)->key, "0");
        assert_string_equal(clusterer_get(c, 1)->key, "1");
        assert_int_equal(clusterer_get(c, 0)->members, 15);
        assert_int_equal(clusterer_get(c, 1)->members, 15);
        assert_int_equal(clusterer_placed(c), 30);
        clusterer_destroy(&c);
    }
}

/* A message halfway between two clusters (0.71 from each, 1.0 between them, cut 0.75):
 * single linkage joins them into one, keyed by the older; complete linkage does not. */
static void test_a_bridge_merges_under_single_linkage_only(void **state)
{
    (void)state;
    for (int l = LINK_SINGLE; l <= LINK_COMPLETE; l++) {
        clusterer_t *c = make((linkage_t)l, 0.75, 0, 128, 10000);
        for (uint64_t i = 0; i < 6; i++)
            add(c, message(1, 40, 0, i));
        for (uint64_t i = 6; i < 12; i++)
            add(c, message(21, 60, 0, i));
        assert_int_equal(clusterer_count(c), 2);
        add(c, message(11, 50, 0, 12));
        if (l == LINK_SINGLE) {
            assert_int_equal(clusterer_count(c), 1);
            cluster_t *k = clusterer_get(c, 0);
            assert_string_equal(k->key, "0");
            assert_int_equal(k->members, 13);
            assert_int_equal(k->n_absorbed, 1);
            assert_string_equal(k->absorbed[0], "6");
        } else {
            assert_int_equal(clusterer_count(c), 2);
            assert_int_equal(clusterer_get(c, 0)->members + clusterer_get(c, 1)->members, 13);
        }
        clusterer_destroy(&c);
    }
}

/* Replaying the same messages gives the same clusters, keys and counts. */
static void test_replay_gives_the_same_clusters(void **state)
{
    (void)state;
    clusterer_t *runs[2];
    for (int r = 0; r < 2; r++) {
        runs[r] = make(LINK_AVERAGE, 0.6, 0, 16, 10000);
        uint64_t x = 88172645463325252ULL;
        for (uint64_t i = 0; i < 300; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            uint64_t f = x % 5;
            add(runs[r], message(f * 100, f * 100 + 30 + x % 7, 3 + (x >> 8) % 4, i));
        }
    }
    assert_int_equal(clusterer_count(runs[0]), clusterer_count(runs[1]));
    assert_true(clusterer_count(runs[0]) >= 5);
    for (size_t i = 0; i < clusterer_count(runs[0]); i++) {
        assert_string_equal(clusterer_get(runs[0], i)->key, clusterer_get(runs[1], i)->key);
        assert_int_equal(clusterer_get(runs[0], i)->members, clusterer_get(runs[1], i)->members);
        assert_true(clusterer_get(runs[0], i)->n <= 16);
    }
    clusterer_destroy(&runs[0]);
    clusterer_destroy(&runs[1]);
}

/* A cluster keeps a sample but counts every member; past the memory bound, small clusters go
 * and the large one stays. */
static void test_bounds_keep_the_large_cluster(void **state)
{
    (void)state;
    clusterer_t *c = make(LINK_AVERAGE, 0.6, 0, 10, 50);
    for (uint64_t i = 0; i < 100; i++)
        add(c, message(1, 40, 5, i));
    assert_int_equal(clusterer_count(c), 1);
    assert_int_equal(clusterer_get(c, 0)->members, 100);
    assert_int_equal(clusterer_get(c, 0)->n, 10);
    for (uint64_t i = 100; i < 200; i++) /* singletons: each far from everything */
        add(c, message(10000 + i * 100, 10000 + i * 100 + 20, 0, i));
    assert_true(clusterer_kept(c) <= 50);
    assert_string_equal(clusterer_get(c, 0)->key, "0");
    assert_int_equal(clusterer_get(c, 0)->members, 100);
    clusterer_destroy(&c);
}

/* k-means never holds more than k clusters; a message far from both centres joins the nearer. */
static void test_kmeans_holds_k_clusters(void **state)
{
    (void)state;
    clusterer_t *c = make(LINK_KMEANS, 0.6, 2, 128, 10000);
    for (uint64_t i = 0; i < 30; i++)
        add(c, message((i % 3) * 1000, (i % 3) * 1000 + 40, 5, i));
    assert_int_equal(clusterer_count(c), 2);
    assert_int_equal(clusterer_get(c, 0)->members + clusterer_get(c, 1)->members, 30);
    clusterer_destroy(&c);
}

/* One member (without the User-Agent) scores no more than a clean message: the signature is
 * rejected, or with tighten its threshold rises above the clean message and the other members
 * still match. */
static json_t *build(bool tighten)
{
    static const char strong[] = "OPTIONS sip:100@evil.example SIP/2.0\r\nUser-Agent: fs\r\n\r\n";
    static const char weak[] = "OPTIONS sip:100@evil.example SIP/2.0\r\n\r\n";
    embed_opts_t eo;
    embed_opts_default(&eo);
    siggen_opts_t o;
    siggen_opts_default(&o);
    o.bilateral = false;
    o.max_strings = 200;
    o.cut = 0.8; /* the weak member (no User-Agent) is about 0.6 from the others */
    o.tighten = tighten;
    siggen_t *g = siggen_new(&eo, &o);
    assert_non_null(g);
    for (int i = 0; i < 9; i++)
        assert_int_equal(siggen_add_anomaly(g, (const uint8_t *)strong, sizeof strong - 1), 0);
    assert_int_equal(siggen_add_anomaly(g, (const uint8_t *)weak, sizeof weak - 1), 0);
    assert_int_equal(siggen_clusters(g), 1);
    assert_int_equal(siggen_add_clean(g, (const uint8_t *)weak, sizeof weak - 1), 0);
    json_t *doc = siggen_build(g, 1, "t", false);
    siggen_destroy(&g);
    return doc;
}

/* An svwar-like REGISTER for extension ext (SIPVicious 0.3.3's layout) or a phone's own. */
static int register_message(char *buf, size_t cap, int ext, bool scanner)
{
    if (scanner)
        return snprintf(
            buf, cap,
            "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:22956;"
            "branch=z9hG4bK-%d;rport\r\nMax-Forwards: 70\r\nTo: \"%d\"<sip:%d@127.0.0.1>"
            "\r\nFrom: \"%d\"<sip:%d@127.0.0.1>;tag=%d\r\nUser-Agent: friendly-scanner"
            "\r\nCall-ID: %d\r\nContact: sip:%d@127.0.0.1\r\nCSeq: 1 REGISTER\r\n"
            "Accept: application/sdp\r\nContent-Length: 0\r\n\r\n",
            300000 + ext * 7, ext, ext, ext, ext, 3900 + ext, 1900000 + ext, ext);
    return snprintf(buf, cap,
                    "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;"
                    "branch=z9hG4bK-%d-1-0\r\nFrom: <sip:%d@127.0.0.1>;tag=%dSIPpTag001\r\n"
                    "To: <sip:%d@127.0.0.1>\r\nCall-ID: 1-%d@127.0.0.1\r\nCSeq: 1 REGISTER\r\n"
                    "Contact: <sip:%d@127.0.0.1:5070>\r\nMax-Forwards: 70\r\nExpires: 3600\r\n"
                    "User-Agent: Acme Deskphone 4.2\r\nContent-Length: 0\r\n\r\n",
                    ext, ext, ext, ext, ext, ext);
}

/*
 * Every member of a cluster matches its signature at the edge's matcher. Members alike but
 * for the extension score the same, the lowest of them is the threshold, and the matcher adds
 * the products in another order than the build did: without a margin for rounding, all ten
 * two-digit extensions fell short by the last bit (seen with the real svwar,
 * tests/sipvicious_test.sh). And short scanner messages share strings with normal traffic but
 * have them fewer times, so that A - N is negative on them: the strings are chosen so that the
 * threshold stays above zero, and the signature passes.
 */
/* Builds signatures from the scanner's REGISTERs for extensions 90-130 against `clean` phone
 * REGISTERs, and returns how many of the scanner's and of the clean messages match them at
 * the edge's matcher (sigdb), and how many signatures passed. */
static void build_and_match(int clean, int *passed, int *matched, int *clean_matched)
{
    embed_opts_t eo;
    embed_opts_default(&eo);
    siggen_opts_t o;
    siggen_opts_default(&o);
    siggen_t *g = siggen_new(&eo, &o);
    assert_non_null(g);
    char msg[1024];
    for (int ext = 90; ext <= 130; ext++) {
        int n = register_message(msg, sizeof msg, ext, true);
        assert_int_equal(siggen_add_anomaly(g, (const uint8_t *)msg, (size_t)n), 0);
    }
    for (int i = 0; i < clean; i++) {
        int n = register_message(msg, sizeof msg, 100 + i % 17, false);
        assert_int_equal(siggen_add_clean(g, (const uint8_t *)msg, (size_t)n), 0);
    }
    json_t *doc = siggen_build(g, 1, "t", false);
    siggen_destroy(&g);
    *passed = (int)json_array_size(json_object_get(doc, "signatures"));
    char err[256];
    sigdb_t *db = sigdb_from_json(doc, &eo, err, sizeof err);
    assert_non_null(db);
    sigscratch_t *sc = sigdb_scratch_new(db);
    embed_t *e = embed_new(&eo);
    sparse_t *v = sparse_new();
    *matched = *clean_matched = 0;
    for (int k = 0; k < 41 + clean; k++) {
        int n = k < 41 ? register_message(msg, sizeof msg, 90 + k, true)
                       : register_message(msg, sizeof msg, 100 + (k - 41) % 17, false);
        assert_int_equal(embed_message(e, (const uint8_t *)msg, (size_t)n, v), 0);
        size_t len;
        const uint8_t *bytes = embed_last_bytes(e, &len);
        sig_matches_t r;
        int hit = sigdb_match(db, sc, bytes, len, v, &r) > 0;
        *(k < 41 ? matched : clean_matched) += hit;
    }
    sparse_destroy(&v);
    embed_destroy(&e);
    sigdb_scratch_destroy(&sc);
    sigdb_destroy(&db);
    json_decref(doc);
}

/*
 * Every member of a cluster matches its signature at the edge's matcher, and the signature
 * passes: short scanner messages share strings with normal traffic but have them fewer times,
 * so that A - N is negative on them, and the strings are chosen so that the threshold stays
 * above zero. (The threshold's margin for rounding is tested by tests/sipvicious_test.sh: with
 * the real svwar, members alike but for the extension scored the same, their score was the
 * threshold, and the matcher's sum in another order fell short of it by the last bit for all
 * ten two-digit extensions; these generated weights happen to sum alike in any order.) Clean
 * samples of many sizes give the weights many fractions.
 */
static void test_every_member_matches_its_signature(void **state)
{
    (void)state;
    for (int clean = 1; clean <= 60; clean++) {
        int passed, matched, clean_matched;
        build_and_match(clean, &passed, &matched, &clean_matched);
        if (passed < 1 || matched != 41 || clean_matched != 0)
            fail_msg("%d clean messages: %d signatures, %d of 41 members matched, %d clean", clean,
                     passed, matched, clean_matched);
    }
}

static void test_verification_rejects_or_tightens(void **state)
{
    (void)state;
    json_t *doc = build(false);
    assert_int_equal(json_array_size(json_object_get(doc, "signatures")), 0);
    json_t *v =
        json_object_get(json_array_get(json_object_get(doc, "rejected"), 0), "verification");
    assert_int_equal(json_integer_value(json_object_get(v, "false_positives")), 1);
    json_decref(doc);
    doc = build(true);
    assert_int_equal(json_array_size(json_object_get(doc, "signatures")), 1);
    v = json_object_get(json_array_get(json_object_get(doc, "signatures"), 0), "verification");
    assert_true(json_is_true(json_object_get(v, "tightened")));
    assert_int_equal(json_integer_value(json_object_get(v, "members_matched")), 9);
    assert_int_equal(json_integer_value(json_object_get(v, "false_positives")), 0);
    json_decref(doc);
}

/* The i-th message of a stream of five families with noise, fixed seed. */
static member_t stream_message(uint64_t i)
{
    uint64_t x = 88172645463325252ULL + i * 0x9E3779B97F4A7C15ULL;
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    uint64_t f = x % 5;
    return message(f * 100, f * 100 + 30 + x % 7, 3 + (x >> 8) % 4, i);
}

static uint8_t *saved(const clusterer_t *c, size_t *len)
{
    uint8_t *b = clusterer_save(c, "test", len);
    assert_non_null(b);
    return b;
}

/* A clusterer saved part-way and loaded goes on exactly as the one never stopped: same
 * clusters, keys, kept members, sums and radii (their saved bytes are equal), under every
 * linkage and with the memory bound dropping clusters. */
static void test_a_saved_state_goes_on_as_if_never_stopped(void **state)
{
    (void)state;
    for (int l = LINK_SINGLE; l <= LINK_KMEANS; l++) {
        clusterer_t *whole = make((linkage_t)l, 0.6, 4, 16, 60);
        clusterer_t *part = make((linkage_t)l, 0.6, 4, 16, 60);
        for (uint64_t i = 0; i < 400; i++) {
            add(whole, stream_message(i));
            if (i < 170)
                add(part, stream_message(i));
        }
        size_t len;
        uint8_t *b = saved(part, &len);
        clusterer_destroy(&part);
        cluster_opts_t o = {.linkage = (linkage_t)l,
                            .cut = 0.6,
                            .k = 4,
                            .per_cluster = 16,
                            .max_kept = 60,
                            .small = 5};
        char err[256] = "";
        part = clusterer_load(&o, "test", b, len, remake, NULL, err, sizeof err);
        assert_non_null(part);
        free(b);
        for (uint64_t i = 170; i < 400; i++)
            add(part, stream_message(i));
        size_t la, lb;
        uint8_t *a = saved(whole, &la);
        b = saved(part, &lb);
        assert_true(clusterer_count(whole) >= 2);
        assert_int_equal(la, lb);
        assert_memory_equal(a, b, la);
        free(a);
        free(b);
        clusterer_destroy(&whole);
        clusterer_destroy(&part);
    }
}

/* A state that is corrupt, truncated, of another format, saved for another embedding or under
 * other settings is refused with the reason; mutated bytes with a valid checksum load or are
 * refused, and never crash (ASan and UBSan watch this). */
static void test_a_saved_state_is_checked(void **state)
{
    (void)state;
    clusterer_t *c = make(LINK_AVERAGE, 0.6, 0, 16, 10000);
    for (uint64_t i = 0; i < 120; i++)
        add(c, stream_message(i));
    cluster_opts_t o = {
        .linkage = LINK_AVERAGE, .cut = 0.6, .per_cluster = 16, .max_kept = 10000, .small = 5};
    size_t len;
    uint8_t *b = saved(c, &len);
    char err[256];
    clusterer_t *got = clusterer_load(&o, "test", b, len, remake, NULL, err, sizeof err);
    assert_non_null(got);
    assert_int_equal(clusterer_count(got), clusterer_count(c));
    clusterer_destroy(&got);
    assert_null(clusterer_load(&o, "other", b, len, remake, NULL, err, sizeof err));
    assert_non_null(strstr(err, "saved for embedding \"test\", not \"other\""));
    o.cut = 0.5;
    assert_null(clusterer_load(&o, "test", b, len, remake, NULL, err, sizeof err));
    assert_non_null(strstr(err, "other clustering settings (linkage average, cut 0.6"));
    o.cut = 0.6;
    for (size_t cut = 0; cut < len; cut += 1 + cut / 8)
        assert_null(clusterer_load(&o, "test", b, cut, remake, NULL, err, sizeof err));
    b[len / 2] ^= 1;
    assert_null(clusterer_load(&o, "test", b, len, remake, NULL, err, sizeof err));
    assert_string_equal(err, "checksum mismatch (corrupt)");
    b[len / 2] ^= 1;
    uint8_t *m = malloc(len);
    uint64_t x = 7;
    int loaded = 0;
    for (int t = 0; t < 3000; t++) {
        memcpy(m, b, len);
        for (int k = 0; k < 1 + t % 3; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            size_t at = (size_t)(x % (len - 8)); /* past the header too */
            m[at] = (uint8_t)(x >> 40);
        }
        uint64_t sum = XXH3_64bits(m, len - 8);
        memcpy(m + len - 8, &sum, 8);
        got = clusterer_load(&o, "test", m, len, remake, NULL, err, sizeof err);
        loaded += got != NULL;
        if (got) /* it must then hold up to more messages */
            add(got, stream_message(1000 + (uint64_t)t));
        clusterer_destroy(&got);
    }
    assert_true(loaded > 0 && loaded < 3000);
    free(m);
    free(b);
    clusterer_destroy(&c);
}

/* Through siggen with real messages: saved half-way and loaded into a new builder, the
 * signatures built at the end are those of a builder never stopped. */
static void feed(siggen_t *g, int from, int to)
{
    static const char *fmt[] = {
        "OPTIONS sip:%d@victim.example SIP/2.0\r\nVia: SIP/2.0/UDP "
        "10.0.0.9:5070;branch=z9hG4bK%d\r\n"
        "User-Agent: friendly-scanner\r\nCall-ID: %d\r\nCSeq: 1 OPTIONS\r\n\r\n",
        "REGISTER sip:victim.example SIP/2.0\r\nFrom: <sip:%d@victim.example>;tag=%d\r\n"
        "Authorization: Digest username=\"%d\", response=\"0123abcd\"\r\nUser-Agent: "
        "sipcli\r\n\r\n",
        "BYE sip:alice@10.1.2.3 SIP/2.0\r\nCall-ID: %d@spoof\r\nCSeq: %d BYE\r\nX-Flood: "
        "%d\r\n\r\n"};
    for (int i = from; i < to; i++) {
        char msg[512];
        int n = snprintf(msg, sizeof msg, fmt[i % 3], 1000 + i * 7, i * 31, i);
        char key[32];
        snprintf(key, sizeof key, "e%d/%d", i % 2, i);
        assert_int_equal(siggen_add_report(g, (const uint8_t *)msg, (size_t)n, i % 2 ? "e1" : "e0",
                                           1000.0 + i, 2000.0 + i, key),
                         0);
    }
}

static void test_siggen_resumes_from_saved_clusters(void **state)
{
    (void)state;
    embed_opts_t eo;
    embed_opts_default(&eo);
    siggen_opts_t o;
    siggen_opts_default(&o);
    siggen_t *whole = siggen_new(&eo, &o), *part = siggen_new(&eo, &o);
    assert_non_null(whole);
    assert_non_null(part);
    feed(whole, 0, 150);
    feed(part, 0, 70);
    size_t len;
    uint8_t *b = siggen_save_clusters(part, &len);
    assert_non_null(b);
    siggen_destroy(&part);
    part = siggen_new(&eo, &o);
    char err[256];
    assert_int_equal(siggen_load_clusters(part, b, len, err, sizeof err), 0);
    feed(part, 70, 150);
    assert_int_equal(siggen_clusters(part), siggen_clusters(whole));
    assert_true(siggen_clusters(whole) >= 3);
    static const char clean[] = "OPTIONS sip:ping@proxy SIP/2.0\r\nCSeq: 1 OPTIONS\r\n\r\n";
    assert_int_equal(siggen_add_clean(whole, (const uint8_t *)clean, sizeof clean - 1), 0);
    assert_int_equal(siggen_add_clean(part, (const uint8_t *)clean, sizeof clean - 1), 0);
    json_t *a = siggen_build(whole, 1, "t", false), *c = siggen_build(part, 1, "t", false);
    assert_true(json_array_size(json_object_get(a, "signatures")) >= 3);
    assert_true(json_equal(a, c));
    json_decref(a);
    json_decref(c);
    /* another embedding's builder refuses it and keeps its own clusters */
    eo.n = 3;
    siggen_t *other = siggen_new(&eo, &o);
    feed(other, 0, 10);
    size_t before = siggen_clusters(other);
    assert_int_equal(siggen_load_clusters(other, b, len, err, sizeof err), -1);
    assert_non_null(strstr(err, "saved for embedding \"ngram:4"));
    assert_int_equal(siggen_clusters(other), before);
    free(b);
    siggen_destroy(&other);
    siggen_destroy(&whole);
    siggen_destroy(&part);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_families_under_every_linkage),
        cmocka_unit_test(test_a_bridge_merges_under_single_linkage_only),
        cmocka_unit_test(test_replay_gives_the_same_clusters),
        cmocka_unit_test(test_bounds_keep_the_large_cluster),
        cmocka_unit_test(test_kmeans_holds_k_clusters),
        cmocka_unit_test(test_verification_rejects_or_tightens),
        cmocka_unit_test(test_every_member_matches_its_signature),
        cmocka_unit_test(test_a_saved_state_goes_on_as_if_never_stopped),
        cmocka_unit_test(test_a_saved_state_is_checked),
        cmocka_unit_test(test_siggen_resumes_from_saved_clusters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
