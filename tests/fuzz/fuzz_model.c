/*
 * fuzz_model: a model file whose bytes were changed and whose checksum was then made right
 * again (someone's tool, a bad disk under a good copy, a crafted file) must be refused with a
 * reason or load and score like any model: no crash, no hang, no read outside the image, and
 * no score or threshold that is not a finite number. The loader's checksum stops random damage;
 * this checks what stands behind it, the validation of every size, offset, index and value.
 *
 * Two small models are trained at start from fixed messages (4-grams with k = 3; tokens, l2,
 * k = 1, with their features' names) and saved. Input: a byte of options (bit 0: which model; bit
 * 1: leave the checksum as the changes make it), then changes of five bytes each: an operation, a
 * 24-bit offset (within the header's first 512 bytes when the operation's top bit is set) and a
 * value byte. Operations: xor a byte; set a 64-bit word, a 32-bit word or a double (aligned) to one
 * of a few values that make sizes, offsets and indices overflow or point out of range.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "model.h"

#define CHECKSUM_OFFSET 24 /* magic 8, version 4, header size 4, file size 8 */
#define HEADER_SPAN 512

typedef struct {
    uint8_t *img;
    size_t size;
} image_t;

static image_t base[2];

/* The messages of a small site: three users registering and calling each other. */
static size_t make_message(char *buf, size_t cap, int i)
{
    static const char *agents[] = {"Yealink SIP-T46S 66.86.0.15", "Grandstream GXP2170 1.0.11",
                                   "Linphone/5.2.0 (belle-sip/5.2.0)"};
    int user = i % 3, peer = (i + 1) % 3;
    if (i % 2 == 0)
        return (size_t)snprintf(
            buf, cap,
            "REGISTER sip:example.net SIP/2.0\r\n"
            "Via: SIP/2.0/UDP 10.0.0.%d:5060;branch=z9hG4bK%08x\r\n"
            "From: <sip:10%d@example.net>;tag=%06x\r\nTo: <sip:10%d@example.net>\r\n"
            "Call-ID: %08x@10.0.0.%d\r\nCSeq: %d REGISTER\r\n"
            "Contact: <sip:10%d@10.0.0.%d:5060>\r\nUser-Agent: %s\r\n"
            "Expires: 3600\r\nContent-Length: 0\r\n\r\n",
            10 + user, (unsigned)i * 2654435761u, user, (unsigned)i * 40503u, user,
            (unsigned)i * 97u + 13u, 10 + user, i + 1, user, 10 + user, agents[user]);
    return (size_t)snprintf(
        buf, cap,
        "INVITE sip:10%d@example.net SIP/2.0\r\n"
        "Via: SIP/2.0/UDP 10.0.0.%d:5060;branch=z9hG4bK%08x\r\n"
        "From: <sip:10%d@example.net>;tag=%06x\r\nTo: <sip:10%d@example.net>\r\n"
        "Call-ID: %08x@10.0.0.%d\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
        "User-Agent: %s\r\nContent-Type: application/sdp\r\n"
        "Content-Length: 0\r\n\r\n",
        peer, 10 + user, (unsigned)i * 2654435761u, user, (unsigned)i * 40503u, peer,
        (unsigned)i * 97u + 13u, 10 + user, agents[user]);
}

static void train_image(image_t *out, const model_opts_t *o)
{
    model_builder_t *b = model_builder_new(o);
    embed_t *e = embed_new(&o->embed);
    sparse_t *v = sparse_new();
    char buf[1024], err[256];
    if (!b || !e || !v)
        abort();
    if (o->embed.kind == EMBED_TOKEN) { /* its features' names, as sipguard train keeps them */
        embed_keep_dictionary(e, true);
        model_builder_name_tokens(b, e);
    }
    for (int i = 0; i < 90; i++) {
        size_t n = make_message(buf, sizeof buf, i);
        if (embed_message(e, (const uint8_t *)buf, n, v) != 0 ||
            model_builder_add(b, v, i % 5 == 0) != 0)
            abort();
    }
    model_stats_t st;
    model_t *m = model_builder_finish(b, &st, err, sizeof err);
    char path[] = "/tmp/fuzz_model.XXXXXX";
    int fd = mkstemp(path);
    if (!m || fd < 0 || model_save(m, path, err, sizeof err) != 0)
        abort();
    close(fd);
    FILE *f = fopen(path, "rb"); /* model_save replaced the file: not fd's any more */
    if (!f || fseek(f, 0, SEEK_END) != 0)
        abort();
    out->size = (size_t)ftell(f);
    out->img = malloc(out->size);
    rewind(f);
    if (!out->img || fread(out->img, 1, out->size, f) != out->size)
        abort();
    fclose(f);
    unlink(path);
    model_destroy(&m);
    model_builder_destroy(&b);
    embed_destroy(&e);
    sparse_destroy(&v);
}

static void train_bases(void)
{
    model_opts_t o;
    model_opts_default(&o);
    o.k = 3;
    train_image(&base[0], &o);
    model_opts_default(&o);
    o.embed.kind = EMBED_TOKEN;
    o.embed.norm = EMBED_NORM_L2;
    train_image(&base[1], &o);
}

static uint64_t value64(uint8_t b, size_t size)
{
    static const uint64_t fixed[] = {0,
                                     1,
                                     2,
                                     7,
                                     8,
                                     0xffffffffu,
                                     0x100000000u,
                                     1ULL << 60,
                                     1ULL << 61,
                                     1ULL << 62,
                                     1ULL << 63,
                                     UINT64_MAX,
                                     UINT64_MAX - 7,
                                     (UINT64_MAX / 16) + 1,
                                     (UINT64_MAX / 8) + 1,
                                     (UINT64_MAX / 4) + 1};
    size_t nf = sizeof fixed / sizeof fixed[0];
    if (b < nf)
        return fixed[b];
    switch (b % 4) {
    case 0:
        return size;
    case 1:
        return size - 8;
    case 2:
        return (size / 2) & ~(uint64_t)7;
    default:
        return b;
    }
}

static uint32_t value32(uint8_t b)
{
    static const uint32_t fixed[] = {0, 1, 2, 3, 5, 64, 0x7fffffff, 0x80000000u, 0xffffffffu};
    size_t nf = sizeof fixed / sizeof fixed[0];
    return b < nf ? fixed[b] : b;
}

static double value_double(uint8_t b)
{
    static const double fixed[] = {0, -0.0, -1, 1e-300, 1e300, 1e308, -1e308, INFINITY, -INFINITY};
    size_t nf = sizeof fixed / sizeof fixed[0];
    return b < nf ? fixed[b] : NAN;
}

static void change(uint8_t *img, size_t size, const uint8_t *c)
{
    size_t off =
        ((size_t)c[1] << 16 | (size_t)c[2] << 8 | c[3]) % (c[0] & 0x80 ? HEADER_SPAN : size);
    switch (c[0] & 3) {
    case 0:
        img[off % size] ^= c[4] ? c[4] : 1;
        break;
    case 1: {
        uint64_t v = value64(c[4], size);
        off &= ~(size_t)7;
        if (off + 8 <= size)
            memcpy(img + off, &v, 8);
        break;
    }
    case 2: {
        uint32_t v = value32(c[4]);
        off &= ~(size_t)3;
        if (off + 4 <= size)
            memcpy(img + off, &v, 4);
        break;
    }
    default: {
        double v = value_double(c[4]);
        off &= ~(size_t)7;
        if (off + 8 <= size)
            memcpy(img + off, &v, 8);
        break;
    }
    }
}

static void reseal(uint8_t *img, size_t size)
{
    memset(img + CHECKSUM_OFFSET, 0, 8);
    uint64_t h = XXH3_64bits(img, size);
    memcpy(img + CHECKSUM_OFFSET, &h, 8);
}

/* A changed model may score wrongly (stored neighbour lists are trusted as they come), but
 * it must give a finite number: NaN would pass as "not above the threshold". */
static void check_score(double x)
{
    if (!isfinite(x))
        abort();
}

/* Scores training-like and new messages (the neighbours' rows are read: an index that
 * points outside the image is caught by ASan), explains them, lists the centre's features. */
static void use(const model_t *m)
{
    model_scorer_t *s = model_scorer_new(m, true);
    if (!s)
        return; /* out of memory: a refusal, not a finding */
    char buf[1024];
    for (int i = 0; i < 12; i++) {
        size_t n = make_message(buf, sizeof buf, i < 6 ? i : 1000 + i);
        if (i == 11)
            n = (size_t)snprintf(buf, sizeof buf,
                                 "OPTIONS sip:100@1.2.3.4 SIP/2.0\r\n"
                                 "User-Agent: friendly-scanner\r\n\r\n");
        model_score_t sc;
        if (model_score_message(s, (const uint8_t *)buf, n, true, &sc) != 0)
            continue;
        check_score(sc.global);
        check_score(sc.local);
        model_explain_t ex;
        model_explain(s, &sc, &ex);
    }
    model_feature_t top[8];
    int got = model_centre_features(m, 8, top);
    for (int i = 0; i < got; i++) /* names go to terminals and JSON as they are */
        for (const char *c = top[i].feature; *c; c++)
            if (*c < 0x20 || *c > 0x7e)
                abort();
    model_stats_t st;
    model_stats(m, &st);
    check_score(st.thr_global); /* a threshold that is no number would flag nothing */
    check_score(st.thr_local);
    model_scorer_destroy(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!base[0].img)
        train_bases();
    if (size < 1)
        return 0;
    const image_t *b = &base[data[0] & 1];
    uint8_t *img = malloc(b->size);
    if (!img)
        return 0;
    memcpy(img, b->img, b->size);
    for (size_t i = 1; i + 5 <= size; i += 5)
        change(img, b->size, data + i);
    if (!(data[0] & 2))
        reseal(img, b->size);
    char err[256] = "";
    model_t *m = model_load_image(img, b->size, "fuzz.model", err, sizeof err);
    if (m) {
        use(m);
        model_destroy(&m);
    } else if (!err[0]) {
        abort(); /* a refusal must say why */
    }
    return 0;
}
