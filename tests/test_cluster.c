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

#include "cluster.h"
#include "siggen.h"

/* A message whose embedding holds keys lo..hi (count 1 each) and `noise` keys of its own. */
static member_t message(uint64_t lo, uint64_t hi, size_t noise, uint64_t id)
{
    member_t m = {0};
    m.raw = malloc(1);
    m.raw[0] = 'x';
    m.len = 1;
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_families_under_every_linkage),
        cmocka_unit_test(test_a_bridge_merges_under_single_linkage_only),
        cmocka_unit_test(test_replay_gives_the_same_clusters),
        cmocka_unit_test(test_bounds_keep_the_large_cluster),
        cmocka_unit_test(test_kmeans_holds_k_clusters),
        cmocka_unit_test(test_verification_rejects_or_tightens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
