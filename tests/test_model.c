/* Tests of detector/model: training, calibration, scoring, and refusing bad model files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <math.h>
#include <xxhash.h>

#include "model.h"

static char path[64];

static void make_normal(char *buf, size_t cap, int i)
{
    snprintf(
        buf, cap,
        "REGISTER sip:example.net SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.2.%d:5060;branch=z9hG4bK%08x\r\n"
        "From: <sip:%d@example.net>;tag=%06x\r\nTo: <sip:%d@example.net>\r\n"
        "Call-ID: %08x%08x@10.1.2.%d\r\nCSeq: %d REGISTER\r\nExpires: 3600\r\n"
        "User-Agent: Linphone/3.12.0\r\nContent-Length: 0\r\n\r\n",
        i % 20, (unsigned)i * 7919u, 1000 + i % 20, (unsigned)i * 31u, 1000 + i % 20,
        (unsigned)i * 104729u, (unsigned)i, i % 20, i % 9 + 1);
}

/* Messages with more variety: 60 users, four user agents, optional headers. */
static void make_varied(char *buf, size_t cap, int i)
{
    static const char *agents[] = {"Linphone/3.12.0", "Linphone/4.7.2", "Zoiper rv2.10",
                                   "Grandstream GXP2170 1.0.9.830"};
    int user = (i * 7) % 60;
    snprintf(buf, cap,
             "REGISTER sip:example.net SIP/2.0\r\nVia: SIP/2.0/UDP "
             "10.1.%d.%d:5060;branch=z9hG4bK%08x\r\n"
             "From: <sip:%d@example.net>;tag=%06x\r\nTo: <sip:%d@example.net>\r\n"
             "Call-ID: %08x@10.1.2.%d\r\nCSeq: %d REGISTER\r\n%s"
             "User-Agent: %s\r\n%sContent-Length: 0\r\n\r\n",
             user % 3, user, (unsigned)i * 7919u, 4930000 + user * 13, (unsigned)i * 31u,
             4930000 + user * 13, (unsigned)i * 104729u, user, i % 9 + 1,
             i % 3 ? "Expires: 3600\r\n" : "", agents[(i / 7 + user) % 4],
             i % 5 == 0 ? "Supported: path, gruu\r\n" : "");
}

typedef void (*maker_t)(char *buf, size_t cap, int i);

static model_t *train_with(int n, int k, maker_t make)
{
    model_opts_t o;
    model_opts_default(&o);
    o.k = k;
    model_builder_t *b = model_builder_new(&o);
    embed_t *e = embed_new(&o.embed);
    sparse_t *v = sparse_new();
    char buf[1024];
    for (int i = 0; i < n; i++) {
        make(buf, sizeof buf, i);
        embed_message(e, (const uint8_t *)buf, strlen(buf), v);
        model_builder_add(b, v, i % 5 == 0);
    }
    char err[256];
    model_stats_t st;
    model_t *m = model_builder_finish(b, &st, err, sizeof err);
    assert_non_null(m);
    assert_int_equal(st.messages + st.holdout, n);
    /* field shaping: the same user's REGISTERs differ only in random values */
    assert_true(st.distinct < st.messages);
    embed_destroy(&e);
    sparse_destroy(&v);
    model_builder_destroy(&b);
    return m;
}

static model_t *train(int n)
{
    return train_with(n, 1, make_normal);
}

/* Messages the search must answer like brute force: repeats of training messages, new ones
 * from the same and from other users, variants with other values and headers, and garbage. */
static size_t make_probe(char *buf, size_t cap, int i)
{
    make_varied(buf, cap, i % 3 == 0 ? i : i * 11 + 5);
    char *ua = strstr(buf, "User-Agent: ");
    switch (i % 7) {
    case 4: {
        char tail[512];
        snprintf(tail, sizeof tail, "%s", ua);
        snprintf(ua, cap - (size_t)(ua - buf), "X-Probe: %d\r\n%s", i, tail);
        break;
    }
    case 5:
        for (size_t j = 0; j < 40; j++)
            buf[j] = (char)(0x80 + (i * 7 + (int)j) % 120); /* garbage start line */
        break;
    case 6:
        memcpy(buf, "OPTIONS", 7); /* another method: far from every training row */
        break;
    default:
        break;
    }
    return strlen(buf);
}

/*
 * A threshold is the score of one calibration message, and messages just like it recur. The
 * paths that score a message sum its global score in different orders (key order with the
 * local model, as at calibration; first appearance without it), so such a message may land a
 * few units in the last place above the threshold on one path: its verdict must not depend on
 * the path. Rounding is not above; a real excess is.
 */
static void test_verdicts_do_not_depend_on_the_scoring_path(void **state)
{
    (void)state;
    double thr = 28.36920599;
    assert_false(model_above_threshold(thr, thr));
    assert_false(model_above_threshold(nextafter(thr, INFINITY), thr));
    assert_false(model_above_threshold(thr * (1 + 1e-12), thr));
    assert_true(model_above_threshold(thr * (1 + 1e-7), thr));
    assert_false(model_above_threshold(1e300, INFINITY));
    assert_true(model_above_threshold(1e-300, 0));
    assert_false(model_above_threshold(0, 0));

    model_t *m = train_with(1000, 1, make_varied);
    model_stats_t st;
    model_stats(m, &st);
    model_scorer_t *with_local = model_scorer_new(m, false),
                   *global_only = model_scorer_new(m, false);
    char buf[1024];
    size_t at_threshold = 0;
    for (int i = 0; i < 1000; i++) {
        make_varied(buf, sizeof buf, i);
        model_score_t a, b;
        model_score_message(with_local, (const uint8_t *)buf, strlen(buf), true, &a);
        model_score_message(global_only, (const uint8_t *)buf, strlen(buf), false, &b);
        assert_true(fabs(a.global - b.global) <= 1e-12 * a.global);
        assert_int_equal(a.global_anomaly, b.global_anomaly);
        at_threshold += fabs(a.global - st.thr_global) <= 1e-12 * st.thr_global;
    }
    assert_true(at_threshold > 0); /* the calibration message and its like are among them */
    model_scorer_destroy(&with_local);
    model_scorer_destroy(&global_only);
    model_destroy(&m);
}

static void test_local_scores_equal_brute_force(void **state)
{
    (void)state;
    char err[256], buf[1024];
    for (int k = 1; k <= 5; k += 4) {
        model_t *trained = train_with(1500, k, make_varied);
        assert_int_equal(model_save(trained, path, err, sizeof err), 0);
        model_t *loaded = model_load(path, err, sizeof err); /* stored answers from the file */
        assert_non_null(loaded);
        for (int which = 0; which < 2; which++) {
            model_t *m = which ? loaded : trained;
            model_scorer_t *fast = model_scorer_new(m, false), *brute = model_scorer_new(m, false);
            model_scorer_use_brute_force(brute, true);
            size_t searched = 0, answered = 0;
            for (int round = 0; round < 2; round++) /* the second round from the cache */
                for (int i = 0; i < 700; i++) {
                    size_t len = make_probe(buf, sizeof buf, i);
                    model_score_t a, b;
                    assert_int_equal(model_score_message(fast, (uint8_t *)buf, len, true, &a), 0);
                    assert_int_equal(model_score_message(brute, (uint8_t *)buf, len, true, &b), 0);
                    assert_true(fabs(a.local - b.local) <= 1e-9 * (1 + fabs(b.local)));
                    assert_int_equal(a.local_anomaly, b.local_anomaly);
                    searched += round == 0 && a.nn.visited > 0;
                    answered += a.nn.visited == 0;
                }
            /* every way was taken: stored answers and the cache, and the index */
            assert_true(searched > 100);
            assert_true(answered > 700);
            model_scorer_destroy(&fast);
            model_scorer_destroy(&brute);
        }
        model_destroy(&trained);
        model_destroy(&loaded);
    }
}

static int setup(void **state)
{
    (void)state;
    snprintf(path, sizeof path, "/tmp/sipguard-model-%d.bin", (int)getpid());
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    unlink(path);
    return 0;
}

static void test_attack_scores_above_thresholds_normal_below(void **state)
{
    (void)state;
    model_t *m = train(600);
    char err[256];
    assert_int_equal(model_save(m, path, err, sizeof err), 0);
    model_destroy(&m);
    m = model_load(path, err, sizeof err);
    assert_non_null(m);
    model_scorer_t *s = model_scorer_new(m, true);
    char buf[1024];
    make_normal(buf, sizeof buf, 100001);
    model_score_t sc;
    model_score_message(s, (const uint8_t *)buf, strlen(buf), true, &sc);
    assert_false(sc.global_anomaly);
    assert_false(sc.local_anomaly);
    const char *attack =
        "OPTIONS sip:100@example.net SIP/2.0\r\nVia: SIP/2.0/UDP "
        "203.0.113.5:5070;branch=z9hG4bK-1\r\n"
        "From: \"sipvicious\"<sip:100@1.1.1.1>;tag=6438\r\nTo: \"sipvicious\"<sip:100@1.1.1.1>\r\n"
        "Call-ID: 1' OR '1'='1\r\nCSeq: 1 OPTIONS\r\nUser-Agent: "
        "friendly-scanner\r\nContent-Length: 0\r\n\r\n";
    model_score_message(s, (const uint8_t *)attack, strlen(attack), true, &sc);
    assert_true(sc.global_anomaly || sc.local_anomaly);
    assert_true(sc.local_anomaly);
    /* global-only scoring takes its own path (the centre table): same score */
    model_score_t g;
    model_score_message(s, (const uint8_t *)attack, strlen(attack), false, &g);
    assert_true(fabs(g.global - sc.global) <= 1e-9 * sc.global);
    assert_false(g.local_done);
    model_score_message(s, (const uint8_t *)buf, strlen(buf), false, &g);
    model_score_message(s, (const uint8_t *)buf, strlen(buf), true, &sc);
    assert_true(fabs(g.global - sc.global) <= 1e-9 * (1 + sc.global));
    model_score_message(s, (const uint8_t *)attack, strlen(attack), true, &sc);
    model_explain_t ex;
    model_explain(s, &sc, &ex);
    assert_int_equal(ex.n_local, MODEL_EXPLAIN_TOP);
    assert_true(ex.local[0].contribution >= ex.local[1].contribution);
    /* global-only scoring writes no vector: explaining it, asking for the vector, or scoring
     * the local model afterwards counts the message again, and gives what scoring it whole did */
    sparse_t *whole = sparse_new();
    assert_int_equal(sparse_copy(whole, model_scorer_vector(s)), 0);
    model_score_message(s, (const uint8_t *)buf, strlen(buf), true, &g); /* another vector */
    model_score_message(s, (const uint8_t *)attack, strlen(attack), false, &g);
    assert_true(g.global == sc.global);
    model_explain_t exg;
    model_explain(s, &g, &exg);
    assert_int_equal(exg.n_global, ex.n_global);
    for (int i = 0; i < ex.n_global; i++) {
        assert_string_equal(exg.global[i].feature, ex.global[i].feature);
        assert_true(exg.global[i].contribution == ex.global[i].contribution);
    }
    const sparse_t *v = model_scorer_vector(s);
    assert_int_equal(v->n, whole->n);
    assert_true(v->norm2 == whole->norm2);
    assert_memory_equal(v->keys, whole->keys, v->n * sizeof *v->keys);
    assert_memory_equal(v->vals, whole->vals, v->n * sizeof *v->vals);
    model_score_message(s, (const uint8_t *)buf, strlen(buf), true, &g);
    model_score_message(s, (const uint8_t *)attack, strlen(attack), false, &g);
    assert_int_equal(model_score_embedded(s, true, &g), 0);
    assert_true(g.local_done && g.local == sc.local && g.global == sc.global);
    sparse_destroy(&whole);
    model_scorer_destroy(&s);
    model_destroy(&m);
}

static void rewrite_byte(long at, int value, long truncate_to)
{
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    if (at >= 0) {
        fseek(f, at, SEEK_SET);
        fputc(value, f);
    }
    fclose(f);
    if (truncate_to >= 0)
        assert_int_equal(truncate(path, truncate_to), 0);
}

static void expect_load_error(const char *needle)
{
    char err[256];
    model_t *m = model_load(path, err, sizeof err);
    assert_null(m);
    assert_non_null(strstr(err, needle));
    assert_non_null(strstr(err, path));
}

static void test_corrupt_truncated_and_foreign_models_are_refused(void **state)
{
    (void)state;
    model_t *m = train(200);
    char err[256];
    assert_int_equal(model_save(m, path, err, sizeof err), 0);
    model_destroy(&m);
    rewrite_byte(600, 0x5a, -1);
    expect_load_error("checksum mismatch");
    m = train(200);
    model_save(m, path, err, sizeof err);
    model_destroy(&m);
    rewrite_byte(8, MODEL_VERSION + 1, -1); /* version field: one this build does not know */
    char newer[32];
    snprintf(newer, sizeof newer, "version %d", MODEL_VERSION + 1);
    expect_load_error(newer);
    m = train(200);
    model_save(m, path, err, sizeof err);
    model_destroy(&m);
    rewrite_byte(-1, 0, 1000);
    expect_load_error("truncated");
    rewrite_byte(0, 'X', -1);
    expect_load_error("not a sipguard model");
    rewrite_byte(-1, 0, 3);
    expect_load_error("too short");
}

/* Where model.c's header keeps the fields the next test changes (docs/cli.md, the model
 * file); the test first checks them against what the model says of itself. */
enum {
    AT_CHECKSUM = 24,
    AT_DIM = 136,
    AT_DICT_CAP = 144,
    AT_NNZ = 160,
    AT_MU_NORM2 = 184,
    AT_THR_GLOBAL = 192,
    AT_OFF_DICT = 224,
    AT_OFF_MU = 232,
    AT_VERSION = 8,
    AT_NAMES = 124,
    AT_NROWS = 152,
    AT_OFF_ROW_SPREAD = 312
};

typedef struct {
    uint8_t *img;
    size_t size;
} image_t;

static uint64_t u64_at(const image_t *im, size_t at)
{
    uint64_t v;
    memcpy(&v, im->img + at, 8);
    return v;
}

static void set_u64(image_t *im, size_t at, uint64_t v)
{
    memcpy(im->img + at, &v, 8);
}

static void set_double(image_t *im, size_t at, double v)
{
    memcpy(im->img + at, &v, 8);
}

/* A copy of the saved model's bytes */
static image_t saved_image(void)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    image_t im = {NULL, (size_t)ftell(f)};
    rewind(f);
    im.img = malloc(im.size);
    assert_non_null(im.img);
    assert_int_equal(fread(im.img, 1, im.size, f), im.size);
    fclose(f);
    return im;
}

/* Loads the changed image with its checksum made right again: refused, saying why. */
static void expect_image_refused(image_t *im, const char *needle)
{
    memset(im->img + AT_CHECKSUM, 0, 8);
    set_u64(im, AT_CHECKSUM, XXH3_64bits(im->img, im->size));
    char err[256] = "";
    model_t *m = model_load_image(im->img, im->size, "changed.model", err, sizeof err);
    if (m || !strstr(err, needle))
        fail_msg("expected \"%s\", got \"%s\"", needle, m ? "(loaded)" : err);
    im->img = NULL; /* the loader took it */
}

/* Loads the image with its checksum made right again, or fails the test. */
static model_t *load_image_with_checksum(image_t *im)
{
    memset(im->img + AT_CHECKSUM, 0, 8);
    set_u64(im, AT_CHECKSUM, XXH3_64bits(im->img, im->size));
    char err[256] = "";
    model_t *m = model_load_image(im->img, im->size, "older.model", err, sizeof err);
    if (!m)
        fail_msg("refused: %s", err);
    im->img = NULL;
    return m;
}

/* A field-shaping model of format 7 (trained before ftag= and did= were shaped) still loads,
 * and says it should be trained again; one of this build's format says nothing, and a version
 * past this build's is refused. */
static void test_models_of_the_older_shaping_load_with_advice(void **state)
{
    (void)state;
    model_t *m = train(200);
    assert_int_equal(model_options(m)->embed.shape, EMBED_SHAPE_FIELDS);
    assert_null(model_advice(m));
    char err[256];
    assert_int_equal(model_save(m, path, err, sizeof err), 0);
    model_destroy(&m);
    image_t im = saved_image();
    uint32_t version;
    memcpy(&version, im.img + AT_VERSION, 4);
    assert_int_equal(version, MODEL_VERSION);
    for (uint32_t older = 6; older < MODEL_VERSION; older++) {
        memcpy(im.img + AT_VERSION, &older, 4);
        image_t copy = {malloc(im.size), im.size};
        assert_non_null(copy.img);
        memcpy(copy.img, im.img, im.size);
        m = load_image_with_checksum(&copy);
        assert_non_null(model_advice(m));
        /* each names what shaping took since the model's version */
        assert_true((strstr(model_advice(m), "ftag=") != NULL) == (older < 8));
        assert_true((strstr(model_advice(m), "SDES keys") != NULL) == (older < 9));
        assert_true((strstr(model_advice(m), "DTLS fingerprints") != NULL) == (older < 10));
        assert_true((strstr(model_advice(m), ".invalid") != NULL) == (older < 11));
        assert_non_null(strstr(model_advice(m), "rport="));
        model_destroy(&m);
    }
    uint32_t newer = MODEL_VERSION + 1;
    memcpy(im.img + AT_VERSION, &newer, 4);
    expect_image_refused(&im, "this build reads versions 6 to");
}

/*
 * A changed file whose checksum was made right again (a crafted file, or a tool that rewrote
 * it) is refused by what stands behind the checksum: sizes whose byte counts would wrap
 * around to a small number, a dictionary with no empty slot (a lookup of an unseen feature
 * would never end) or an id twice, and values that are not numbers (a NaN threshold would
 * flag nothing). tests/fuzz/fuzz_model looks for more.
 */
static void test_changed_models_with_a_right_checksum_are_refused(void **state)
{
    (void)state;
    model_t *m = train(200);
    model_stats_t st;
    model_stats(m, &st);
    char err[256];
    assert_int_equal(model_save(m, path, err, sizeof err), 0);
    model_destroy(&m);
    image_t im = saved_image();
    assert_int_equal(u64_at(&im, AT_DIM), st.dim);
    assert_int_equal(u64_at(&im, AT_NNZ), st.nnz);
    uint64_t cap = u64_at(&im, AT_DICT_CAP);
    assert_true(cap > st.dim && (cap & (cap - 1)) == 0);
    free(im.img);

    im = saved_image(); /* the unchanged image loads */
    m = model_load_image(im.img, im.size, "same.model", err, sizeof err);
    assert_non_null(m);
    model_destroy(&m);

    im = saved_image();
    set_u64(&im, AT_NNZ, (UINT64_MAX / 4) + 1); /* times 4 bytes: 0 */
    expect_image_refused(&im, "a section lies outside the file");
    im = saved_image();
    set_u64(&im, AT_DICT_CAP, 1ULL << 60); /* times 16 bytes: 0 */
    expect_image_refused(&im, "a section lies outside the file");

    im = saved_image();
    uint64_t off_dict = u64_at(&im, AT_OFF_DICT);
    for (uint64_t slot = 0; slot < cap; slot++) /* every slot used: no empty one */
        memcpy(im.img + off_dict + slot * 16 + 12, &(uint32_t){1}, 4);
    expect_image_refused(&im, "dictionary");
    im = saved_image();
    set_u64(&im, AT_DICT_CAP, st.dim); /* no room for an empty slot */
    expect_image_refused(&im, "invalid sizes");

    im = saved_image();
    set_double(&im, AT_THR_GLOBAL, NAN);
    expect_image_refused(&im, "invalid thresholds");
    im = saved_image();
    set_double(&im, AT_MU_NORM2, INFINITY);
    expect_image_refused(&im, "invalid thresholds or centre");
    im = saved_image();
    set_double(&im, u64_at(&im, AT_OFF_MU), NAN);
    expect_image_refused(&im, "centre value invalid");
}

/* A token model trained with its embedder's dictionary, as `sipguard train -f token` does;
 * with names false, as one trained before model format 7 (no names kept). */
static model_t *train_tokens(int n, bool names)
{
    model_opts_t o;
    model_opts_default(&o);
    o.embed.kind = EMBED_TOKEN;
    model_builder_t *b = model_builder_new(&o);
    embed_t *e = embed_new(&o.embed);
    sparse_t *v = sparse_new();
    if (names) {
        embed_keep_dictionary(e, true);
        model_builder_name_tokens(b, e);
    }
    char buf[1024], err[256];
    for (int i = 0; i < n; i++) {
        make_varied(buf, sizeof buf, i);
        embed_message(e, (const uint8_t *)buf, strlen(buf), v);
        model_builder_add(b, v, i % 5 == 0);
    }
    model_stats_t st;
    model_t *m = model_builder_finish(b, &st, err, sizeof err);
    assert_non_null(m);
    embed_destroy(&e);
    sparse_destroy(&v);
    model_builder_destroy(&b);
    return m;
}

/* Whether the centre's ten heaviest features are named by their tokens (none "token:KEY"),
 * "example.net" among them (every message holds it twice). */
static bool centre_named(const model_t *m)
{
    model_feature_t top[10];
    int got = model_centre_features(m, 10, top);
    assert_int_equal(got, 10);
    bool domain = false;
    for (int i = 0; i < got; i++) {
        if (!strncmp(top[i].feature, "token:", 6))
            return false;
        domain |= !strcmp(top[i].feature, "example.net");
    }
    return domain;
}

/* The names section of a saved image: offsets by feature id, then the names */
static uint32_t *name_offsets(image_t *im)
{
    uint64_t at = u64_at(im, AT_OFF_ROW_SPREAD) + u64_at(im, AT_NROWS) * 8;
    return (uint32_t *)(void *)(im->img + ((at + 7) & ~7ULL));
}

/*
 * A token model keeps its features' names (format 7), so `info` shows the tokens: in memory,
 * and saved and loaded. A model without them (an older file, format 6) still loads and names
 * its features by key. Names that are not printable, or offsets past the file, are refused.
 */
static void test_token_models_keep_their_feature_names(void **state)
{
    (void)state;
    char err[256];
    model_t *m = train_tokens(300, true);
    assert_true(centre_named(m));
    assert_true(model_has_feature_names(m));
    assert_int_equal(model_save(m, path, err, sizeof err), 0);
    model_destroy(&m);
    m = model_load(path, err, sizeof err);
    assert_non_null(m);
    assert_true(centre_named(m));
    model_destroy(&m);

    image_t im = saved_image();
    assert_int_equal(im.img[AT_NAMES], 1);
    uint64_t dim = u64_at(&im, AT_DIM);
    uint32_t *off = name_offsets(&im);
    char *names = (char *)(off + dim + 1);
    char *domain = memmem(names, off[dim], "example.net", 11);
    assert_non_null(domain);
    domain[7] = 0x1b; /* an escape character, which would go to a terminal as it is */
    expect_image_refused(&im, "a feature name is not printable");
    im = saved_image();
    off = name_offsets(&im);
    off[dim] = 1u << 30;
    expect_image_refused(&im, "names section inconsistent");
    im = saved_image();
    im.img[AT_VERSION] = 6; /* names in a format that has none */
    expect_image_refused(&im, "invalid names flag");

    m = train_tokens(300, false);
    assert_false(centre_named(m));
    assert_int_equal(model_save(m, path, err, sizeof err), 0);
    model_destroy(&m);
    im = saved_image();
    assert_int_equal(im.img[AT_NAMES], 0);
    im.img[AT_VERSION] = 6; /* format 6 is format 7 without names: it loads */
    memset(im.img + AT_CHECKSUM, 0, 8);
    set_u64(&im, AT_CHECKSUM, XXH3_64bits(im.img, im.size));
    m = model_load_image(im.img, im.size, "v6.model", err, sizeof err);
    assert_non_null(m);
    assert_false(model_has_feature_names(m));
    model_feature_t top[1];
    assert_int_equal(model_centre_features(m, 1, top), 1);
    assert_memory_equal(top[0].feature, "token:", 6);
    model_destroy(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_attack_scores_above_thresholds_normal_below),
        cmocka_unit_test(test_corrupt_truncated_and_foreign_models_are_refused),
        cmocka_unit_test(test_changed_models_with_a_right_checksum_are_refused),
        cmocka_unit_test(test_models_of_the_older_shaping_load_with_advice),
        cmocka_unit_test(test_token_models_keep_their_feature_names),
        cmocka_unit_test(test_local_scores_equal_brute_force),
        cmocka_unit_test(test_verdicts_do_not_depend_on_the_scoring_path),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
