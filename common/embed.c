#include "embed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "shape.h"
#include "sipnorm.h"

#define EMBED_PAD 8 /* zero bytes after the data so an 8-byte load never reads past it */

typedef struct {
    uint64_t key;
    uint32_t off; /* into the string arena; 0 = empty slot */
    uint32_t len;
} dict_slot_t;

typedef struct {
    uint64_t key;
    uint64_t count; /* 0: empty */
} hslot_t;

typedef struct {
    uint64_t key;
    double w; /* 0: empty */
} wslot_t;

/*
 * A word of the weighted counting table: key << 32 | rank << 16 | count; 0 is empty.
 * rank indexes the weights, which sit apart in order of falling |weight| from index 1 on: the
 * table stays at eight bytes a slot, and the weights most messages read share a few cache
 * lines. A kept word's rank is at least 1, so it is never 0, even for key 0 with no count.
 * A key that is not weighted holds rank 0, whose weight is 0, for the current message only.
 */
#define FW_COUNT 0xffffULL
#define FW_RANK_SHIFT 16
#define FW_RANK_MAX 0xffff /* the most weights the table serves; also the mask of a rank */

/* The most keys ranked_ngrams learns: 12,564 distinct 4-grams came from 107k messages of 1,000
 * users after field shaping; a full dictionary costs a 1 MB table. */
#define SL_MAX_KEYS EMBED_LEARNED_KEYS_MAX

/* One message in this many counts, by rank, the learned keys it holds (up to 0xffff): a
 * rebuilt table takes the keys most messages hold first. */
#define SL_USE_SAMPLE 16

struct embed {
    embed_opts_t o;
    uint8_t *buf_a, *buf_b; /* preprocessing stages */
    size_t buf_cap;
    const uint8_t *last;
    size_t last_len;
    uint64_t *keys, *tmp;
    size_t keys_cap;
    bool sorted;
    /* hash accumulation for unsorted output: a slot is empty when its count is 0, and the
     * slots a message used are emptied again after it */
    hslot_t *hslots;
    uint32_t *order;
    size_t hcap;
    /* weights (embed_set_weights): a lookup table by key, and for n-grams of up to 4 bytes
     * also the weighted counting table ft (words as FW_* says) and its weights by rank */
    uint64_t *wkeys;
    double *wvals;
    size_t nw;
    wslot_t *wt;
    size_t wt_cap;
    uint64_t *ft;
    double *ftw; /* by rank; ftw[0] = 0, the weight of a temporary word */
    size_t ft_cap, ft_nw;
    uint32_t *forder; /* per distinct key of a message: its slot in ft or st; then its rank */
    double *dtmp;     /* per distinct key: its weight (fused counting), its value (sorting) */
    int32_t *kb;      /* per distinct key, and 3 more: sort_keys32's buckets */
    /* sorted n-grams of up to 4 bytes by learned ranks (see ranked_ngrams): the counting table
     * st, whose kept words are the keys learned so far with their rank in key order (words as
     * FW_* says); those keys by rank, the ranks a message holds as bits, and keys seen but
     * not learned yet */
    uint64_t *st;
    size_t st_cap, st_n;
    uint32_t *st_key;
    uint16_t *st_use, *st_cnt; /* by rank: sampled messages that held it; its count in the
                                * message, while its bit is set */
    size_t st_msgs;
    uint64_t *st_bits;
    uint32_t *st_new;
    size_t st_new_n, st_new_cap;
    uint64_t *ukeys; /* per distinct key: a message's keys that have no rank, and their counts */
    double *uvals, *utmp;
    size_t ucap;
    sparse_t *spare; /* embed_message_stats() on paths that write a vector anyway */
    bool keep_dict;
    dict_slot_t *dict;
    size_t dict_cap, dict_n;
    char *arena;
    size_t arena_len, arena_cap;
};

void embed_opts_default(embed_opts_t *o)
{
    memset(o, 0, sizeof *o);
    o->kind = EMBED_NGRAM;
    o->n = 4;
    o->binary = false;
    o->norm = EMBED_NORM_NONE;
    o->shape = EMBED_SHAPE_FIELDS;
    o->header_norm = true;
    embed_opts_set_delimiters(o, " \\t\\r\\n,;:=@/<>\"'()[]?&");
}

int embed_opts_parse_feature(embed_opts_t *o, const char *spec)
{
    if (strcmp(spec, "token") == 0 || strcmp(spec, "tokens") == 0) {
        o->kind = EMBED_TOKEN;
        return 0;
    }
    if (strncmp(spec, "ngram:", 6) == 0) {
        char *end;
        long n = strtol(spec + 6, &end, 10);
        if (*end || n < 1 || n > 8)
            return -1;
        o->kind = EMBED_NGRAM;
        o->n = (int)n;
        return 0;
    }
    return -1;
}

int embed_opts_parse_norm(embed_opts_t *o, const char *spec)
{
    if (strcmp(spec, "none") == 0)
        o->norm = EMBED_NORM_NONE;
    else if (strcmp(spec, "l1") == 0)
        o->norm = EMBED_NORM_L1;
    else if (strcmp(spec, "l2") == 0)
        o->norm = EMBED_NORM_L2;
    else
        return -1;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int embed_opts_parse_shape(embed_opts_t *o, const char *spec)
{
    if (strcmp(spec, "none") == 0)
        o->shape = EMBED_SHAPE_NONE;
    else if (strcmp(spec, "fields") == 0)
        o->shape = EMBED_SHAPE_FIELDS;
    else if (strcmp(spec, "all") == 0)
        o->shape = EMBED_SHAPE_ALL;
    else
        return -1;
    return 0;
}

const char *embed_shape_name(int shape)
{
    return shape == EMBED_SHAPE_ALL ? "all" : shape == EMBED_SHAPE_FIELDS ? "fields" : "none";
}

void embed_opts_set_delimiters(embed_opts_t *o, const char *d)
{
    memset(o->delim, 0, sizeof o->delim);
    for (size_t i = 0; d[i]; i++) {
        uint8_t c = (uint8_t)d[i];
        if (c == '\\' && d[i + 1]) {
            char e = d[++i];
            if (e == 't')
                c = '\t';
            else if (e == 'r')
                c = '\r';
            else if (e == 'n')
                c = '\n';
            else if (e == 'x' && hexval(d[i + 1]) >= 0 && hexval(d[i + 2]) >= 0) {
                c = (uint8_t)(hexval(d[i + 1]) * 16 + hexval(d[i + 2]));
                i += 2;
            } else
                c = (uint8_t)e;
        }
        o->delim[c / 8] |= (uint8_t)(1u << (c % 8));
    }
}

void embed_opts_feature_name(const embed_opts_t *o, char *buf, size_t cap)
{
    if (o->kind == EMBED_TOKEN)
        snprintf(buf, cap, "token");
    else
        snprintf(buf, cap, "ngram:%d", o->n);
}

embed_t *embed_new(const embed_opts_t *opts)
{
    embed_t *e = calloc(1, sizeof *e);
    if (!e)
        return NULL;
    e->o = *opts;
    e->sorted = true;
    return e;
}

void embed_set_sorted(embed_t *self, bool sorted)
{
    self->sorted = sorted;
}

void embed_destroy(embed_t **self)
{
    embed_t *e = *self;
    if (!e)
        return;
    free(e->buf_a);
    free(e->buf_b);
    free(e->keys);
    free(e->tmp);
    free(e->hslots);
    free(e->order);
    free(e->wkeys);
    free(e->wvals);
    free(e->wt);
    free(e->ft);
    free(e->ftw);
    free(e->forder);
    free(e->dtmp);
    free(e->kb);
    free(e->st);
    free(e->st_key);
    free(e->st_use);
    free(e->st_cnt);
    free(e->st_bits);
    free(e->st_new);
    free(e->ukeys);
    free(e->uvals);
    free(e->utmp);
    sparse_destroy(&e->spare);
    free(e->dict);
    free(e->arena);
    free(e);
    *self = NULL;
}

const embed_opts_t *embed_opts(const embed_t *self)
{
    return &self->o;
}

void embed_keep_dictionary(embed_t *self, bool on)
{
    self->keep_dict = on;
}

static int grow_buffers(embed_t *e, size_t len)
{
    /* Header normalisation can lengthen compact names ("i" -> "Call-ID"). */
    size_t need = len * 2 + 1024 + EMBED_PAD;
    if (need <= e->buf_cap)
        return 0;
    uint8_t *a = realloc(e->buf_a, need), *b;
    if (!a)
        return -1;
    e->buf_a = a;
    b = realloc(e->buf_b, need);
    if (!b)
        return -1;
    e->buf_b = b;
    e->buf_cap = need;
    return 0;
}

/* Reallocates array p to n elements, through void pointer q; false (p unchanged) on failure. */
#define GROW_ARRAY(p, n, q) (((q) = realloc((p), (n) * sizeof *(p))) != NULL && ((p) = (q), true))

/* The per-key scratch arrays, for messages of up to n keys. */
static int grow_keys(embed_t *e, size_t n)
{
    if (n <= e->keys_cap)
        return 0;
    size_t cap = e->keys_cap ? e->keys_cap : 1024;
    while (cap < n)
        cap *= 2;
    void *q;
    bool ok = GROW_ARRAY(e->keys, cap, q) && GROW_ARRAY(e->tmp, cap, q) &&
              GROW_ARRAY(e->forder, cap, q) && GROW_ARRAY(e->dtmp, cap, q) &&
              GROW_ARRAY(e->kb, cap + 3, q);
    if (!ok)
        return -1; /* the arrays grown so far stay larger: harmless */
    e->keys_cap = cap;
    return 0;
}

/* Runs header normalisation and shaping; returns the bytes to take features from. */
static const uint8_t *preprocess(embed_t *e, const uint8_t *data, size_t len, size_t *out_len)
{
    const uint8_t *cur = data;
    size_t n = len;
    if (e->o.header_norm && e->o.shape == EMBED_SHAPE_FIELDS) { /* the default, in one pass */
        n = sipnorm_headers_shaped(data, len, e->buf_b, e->buf_cap - EMBED_PAD);
        cur = e->buf_b;
    } else {
        if (e->o.header_norm) {
            n = sipnorm_headers(cur, n, e->buf_a, e->buf_cap - EMBED_PAD);
            cur = e->buf_a;
        }
        if (e->o.shape == EMBED_SHAPE_ALL) {
            n = shape_apply(cur, n, e->buf_b);
            cur = e->buf_b;
        } else if (e->o.shape == EMBED_SHAPE_FIELDS) {
            n = shape_fields(cur, n, e->buf_b);
            cur = e->buf_b;
        }
    }
    if (cur == data) {
        memcpy(e->buf_b, data, len);
        cur = e->buf_b;
    }
    memset((uint8_t *)cur + n, 0, EMBED_PAD);
    *out_len = n;
    return cur;
}

static bool is_delim(const embed_t *e, uint8_t c)
{
    return e->o.delim[c / 8] & (1u << (c % 8));
}

static void dict_insert(embed_t *e, uint64_t key, const uint8_t *s, size_t len);

static size_t extract_tokens(embed_t *e, const uint8_t *p, size_t len)
{
    size_t count = 0;
    for (size_t i = 0; i < len;) {
        while (i < len && is_delim(e, p[i]))
            i++;
        size_t start = i;
        while (i < len && !is_delim(e, p[i]))
            i++;
        if (i > start) {
            uint64_t key = XXH3_64bits(p + start, i - start) >> 1;
            e->keys[count++] = key;
            if (e->keep_dict)
                dict_insert(e, key, p + start, i - start);
        }
    }
    return count;
}

/* Orders entries by key with their values. Short lists by insertion. */
static void insertion_sort(uint64_t *keys, double *vals, size_t n)
{
    for (size_t i = 1; i < n; i++) {
        uint64_t k = keys[i];
        double v = vals[i];
        size_t j = i;
        for (; j > 0 && keys[j - 1] > k; j--) {
            keys[j] = keys[j - 1];
            vals[j] = vals[j - 1];
        }
        keys[j] = k;
        vals[j] = v;
    }
}

/* One radix pass: entries from (ks, vs) to (kd, vd) in order of the key byte at shift, stably.
 * With start, also where each byte's run begins (start[256] = n). */
static void radix_pass(const uint64_t *ks, const double *vs, uint64_t *kd, double *vd, size_t n,
                       unsigned shift, uint32_t *start)
{
    uint32_t count[256] = {0};
    for (size_t i = 0; i < n; i++)
        count[(ks[i] >> shift) & 0xff]++;
    uint32_t sum = 0;
    for (int b = 0; b < 256; b++) {
        uint32_t x = count[b];
        count[b] = sum;
        sum += x;
    }
    if (start) {
        memcpy(start, count, sizeof count);
        start[256] = (uint32_t)n;
    }
    for (size_t i = 0; i < n; i++) {
        uint32_t at = count[(ks[i] >> shift) & 0xff]++;
        kd[at] = ks[i];
        vd[at] = vs[i];
    }
}

/* The bits on which the keys differ; with any, also the bits set in any key. */
static uint64_t varying_bits(const uint64_t *keys, size_t n, uint64_t *any)
{
    uint64_t all_or = 0, all_and = ~0ULL;
    for (size_t i = 0; i < n; i++) {
        all_or |= keys[i];
        all_and &= keys[i];
    }
    if (any)
        *any = all_or;
    return all_or ^ all_and;
}

/* LSD radix sort by bytes, skipping byte positions on which every key agrees; the result ends
 * in (keys, vals), (ktmp, vtmp) are scratch. */
static void lsd_sort(uint64_t *keys, double *vals, uint64_t *ktmp, double *vtmp, size_t n)
{
    uint64_t varies = varying_bits(keys, n, NULL);
    uint64_t *ks = keys, *kd = ktmp;
    double *vs = vals, *vd = vtmp;
    for (unsigned shift = 0; shift < 64; shift += 8) {
        if (((varies >> shift) & 0xff) == 0)
            continue;
        radix_pass(ks, vs, kd, vd, n, shift, NULL);
        uint64_t *kt = ks;
        ks = kd;
        kd = kt;
        double *vt = vs;
        vs = vd;
        vd = vt;
    }
    if (ks != keys) {
        memcpy(keys, ks, n * sizeof *keys);
        memcpy(vals, vs, n * sizeof *vals);
    }
}

#define SORT_SMALL 24

/* Keys of up to 32 bits in a bucket: each entry's place is the number of smaller keys in it.
 * Branch-free, so it costs the same whatever the order; (int32) kb holds key ^ 2^31, so signed
 * comparisons order the keys, and may be read up to 3 entries past m. */
#define RANK_MAX 64
static void place_by_rank(const int32_t *kb, const double *vb, size_t m, uint64_t *keys,
                          double *vals)
{
    for (size_t i = 0; i < m; i += 4) {
        uint32_t rank[4] = {0, 0, 0, 0};
#ifdef __SSE2__
        __m128i ki = _mm_loadu_si128((const __m128i *)(const void *)(kb + i)),
                r = _mm_setzero_si128();
        for (size_t j = 0; j < m; j++)
            r = _mm_sub_epi32(r, _mm_cmpgt_epi32(ki, _mm_set1_epi32(kb[j])));
        _mm_storeu_si128((__m128i *)(void *)rank, r);
#else
        for (int l = 0; l < 4 && i + (size_t)l < m; l++)
            for (size_t j = 0; j < m; j++)
                rank[l] += kb[j] < kb[i + (size_t)l];
#endif
        for (size_t l = 0; l < 4 && i + l < m; l++) {
            keys[rank[l]] = (uint32_t)kb[i + l] ^ 0x80000000u;
            vals[rank[l]] = vb[i + l];
        }
    }
}

/*
 * Places the n entries of kb/vb, which are in order of bucket (bits shift.. of their keys;
 * bucket b holds entries first[b] to first[b + 1]): an entry's place is the number of smaller
 * keys, and every key outside its bucket that is smaller lies before it. So each group of
 * four entries counts the smaller keys from the start of its first entry's bucket to the end
 * of its last one's, four compares at a time, and adds where that span starts: no loop per
 * bucket, whose sizes the branches could not foresee. kb may be read up to 3 entries past n.
 */
static void place_by_span(const int32_t *kb, const double *vb, size_t n, unsigned shift,
                          const uint32_t first[257], uint64_t *keys, double *vals)
{
    for (size_t i = 0; i < n; i += 4) {
        size_t last = i + 3 < n ? i + 3 : n - 1;
        size_t lo = first[(((uint32_t)kb[i] ^ 0x80000000u) >> shift) & 0xff],
               hi = first[((((uint32_t)kb[last] ^ 0x80000000u) >> shift) & 0xff) + 1];
        uint32_t rank[4];
#ifdef __SSE2__
        __m128i ki = _mm_loadu_si128((const __m128i *)(const void *)(kb + i)),
                r = _mm_setzero_si128();
        for (size_t j = lo; j < hi; j++)
            r = _mm_sub_epi32(r, _mm_cmpgt_epi32(ki, _mm_set1_epi32(kb[j])));
        _mm_storeu_si128((__m128i *)(void *)rank, r);
#else
        for (int l = 0; l < 4; l++) {
            rank[l] = 0;
            for (size_t j = lo; j < hi && i + (size_t)l < n; j++)
                rank[l] += kb[j] < kb[i + (size_t)l];
        }
#endif
        for (size_t l = 0; l < 4 && i + l < n; l++) {
            keys[lo + rank[l]] = (uint32_t)kb[i + l] ^ 0x80000000u;
            vals[lo + rank[l]] = vb[i + l];
        }
    }
}

/*
 * Orders entries whose keys all fit in 32 bits (n-grams of up to 4 bytes): a counting pass on
 * the 8 highest bits that vary (for 4-grams, the last byte) puts them in order of bucket, and
 * place_by_span() ranks them within; few keys are ranked all against all, and a bucket too
 * big for ranks sends the whole set to the LSD sort. kb needs room for n + 3 entries.
 * Branch-free ranks beat insertion sort's mispredicted branch (one per key).
 */
static void sort_keys32(uint64_t *keys, double *vals, uint64_t *ktmp, double *vtmp, int32_t *kb,
                        size_t n, uint64_t varies)
{
    if (n <= RANK_MAX / 2) {
        for (size_t i = 0; i < n; i++) {
            kb[i] = (int32_t)((uint32_t)keys[i] ^ 0x80000000u);
            vtmp[i] = vals[i];
        }
        memset(kb + n, 0, 3 * sizeof *kb); /* read, never used, by place_by_rank */
        place_by_rank(kb, vtmp, n, keys, vals);
        return;
    }
    unsigned high = (unsigned)(63 - __builtin_clzll(varies)), shift = high >= 7 ? high - 7 : 0;
    uint32_t first[257] = {0}, next[256];
    for (size_t i = 0; i < n; i++)
        first[((keys[i] >> shift) & 0xff) + 1]++;
    uint32_t widest = 0;
    for (int b = 0; b < 256; b++) {
        widest = first[b + 1] > widest ? first[b + 1] : widest;
        first[b + 1] += first[b];
    }
    if (widest > RANK_MAX) {
        lsd_sort(keys, vals, ktmp, vtmp, n);
        return;
    }
    memcpy(next, first, sizeof next);
    for (size_t i = 0; i < n; i++) {
        uint32_t at = next[(keys[i] >> shift) & 0xff]++;
        kb[at] = (int32_t)((uint32_t)keys[i] ^ 0x80000000u);
        vtmp[at] = vals[i];
    }
    memset(kb + n, 0, 3 * sizeof *kb);
    place_by_span(kb, vtmp, n, shift, first, keys, vals);
}

/*
 * Orders entries by key with their values. A message has a few hundred distinct keys, too few
 * to pay for four 256-bucket LSD passes: keys of up to 32 bits get sort_keys32; wider ones one
 * pass on the highest byte that varies, which splits them into runs of a few keys that
 * insertion sort finishes; a long run (or a huge message) gets the LSD sort, so no input makes
 * this quadratic.
 */
static void sort_entries(uint64_t *keys, double *vals, uint64_t *ktmp, double *vtmp, int32_t *kb,
                         size_t n)
{
    if (n < 2)
        return;
    uint64_t all_or, varies = varying_bits(keys, n, &all_or);
    if (varies == 0)
        return; /* one key, repeated: not from a count, but harmless */
    if (all_or >> 32 == 0 && n <= 4096) {
        sort_keys32(keys, vals, ktmp, vtmp, kb, n, varies);
        return;
    }
    if (n <= SORT_SMALL) {
        insertion_sort(keys, vals, n);
        return;
    }
    if (n > 4096) {
        lsd_sort(keys, vals, ktmp, vtmp, n);
        return;
    }
    unsigned top = (unsigned)(63 - __builtin_clzll(varies)) / 8 * 8;
    uint32_t start[257];
    radix_pass(keys, vals, ktmp, vtmp, n, top, start);
    for (int b = 0; b < 256; b++) {
        size_t at = start[b], len = start[b + 1] - start[b];
        if (len < 2)
            continue; /* most of the 256 runs */
        if (len <= SORT_SMALL)
            insertion_sort(ktmp + at, vtmp + at, len);
        else
            lsd_sort(ktmp + at, vtmp + at, keys + at, vals + at, len);
    }
    memcpy(keys, ktmp, n * sizeof *keys);
    memcpy(vals, vtmp, n * sizeof *vals);
}

/* Binary values and l1/l2 scaling; out->norm2 must already be right for plain counts. */
static void normalise(embed_t *e, sparse_t *out)
{
    if (!e->o.binary && e->o.norm == EMBED_NORM_NONE)
        return;
    if (e->o.binary)
        for (size_t i = 0; i < out->n; i++)
            out->vals[i] = 1.0;
    double s = 0;
    if (e->o.norm == EMBED_NORM_L1) {
        for (size_t i = 0; i < out->n; i++)
            s += out->vals[i];
    } else if (e->o.norm == EMBED_NORM_L2) {
        for (size_t i = 0; i < out->n; i++)
            s += out->vals[i] * out->vals[i];
        s = sqrt(s);
    }
    if (s > 0)
        for (size_t i = 0; i < out->n; i++)
            out->vals[i] /= s;
    sparse_update_norm(out);
}

static int grow_hash(embed_t *e, size_t nk)
{
    size_t cap = e->hcap ? e->hcap : 1024;
    while (cap < 2 * nk)
        cap *= 2;
    if (cap == e->hcap)
        return 0;
    free(e->hslots);
    free(e->order);
    e->hslots = calloc(cap, sizeof *e->hslots);
    e->order = malloc(cap * sizeof *e->order);
    e->hcap = (e->hslots && e->order) ? cap : 0;
    return e->hcap ? 0 : -1;
}

/* One key into the table; branch-free on new-versus-seen, which is a coin flip per byte. */
static inline void count_key(hslot_t *slots, size_t mask, unsigned shift, uint32_t *order,
                             size_t *u, uint64_t k)
{
    size_t h = (size_t)((k * 0x9E3779B97F4A7C15ULL) >> shift);
    while (slots[h].count && slots[h].key != k)
        h = (h + 1) & mask;
    uint64_t c = slots[h].count;
    slots[h].key = k;
    slots[h].count = c + 1;
    order[*u] = (uint32_t)h;
    *u += c == 0;
}

/* Writes the distinct keys in order of first appearance with their counts, and empties the
 * slots used so that nothing is cleared between messages. */
static void drain_table(embed_t *e, size_t u, sparse_t *out)
{
    double norm2 = 0;
    for (size_t j = 0; j < u; j++) {
        hslot_t *s = &e->hslots[e->order[j]];
        double c = (double)s->count;
        out->keys[j] = s->key;
        out->vals[j] = c;
        norm2 += c * c;
        s->count = 0;
        s->key = 0; /* the 4-gram path reads the slots as packed words */
    }
    out->n = u;
    out->norm2 = norm2;
}

/* Counts equal keys of e->keys in an open-addressing table of (key, count) slots. */
static int accumulate(embed_t *e, size_t nk, sparse_t *out)
{
    if (grow_hash(e, nk) != 0 || sparse_reserve(out, nk) != 0)
        return -1;
    size_t mask = e->hcap - 1, u = 0;
    unsigned shift = 64 - (unsigned)__builtin_ctzll(e->hcap);
    for (size_t i = 0; i < nk; i++)
        count_key(e->hslots, mask, shift, e->order, &u, e->keys[i]);
    drain_table(e, u, out);
    return 0;
}

/*
 * 4-grams in the table read as packed words, count << 32 | key, twice as many as slots: each key
 * straight from the bytes, no key array. A new key and a seen one take branches of their own:
 * the branch-free form ((w | v) + 2^32 either way, the slot listed every time) measured 3 %
 * slower, best of 31 runs, though which way a 4-gram goes looks like a coin flip: the
 * predictor learns the messages' shared runs of seen 4-grams. The probe tests the key before
 * emptiness: the other order, the same work, ran 15 % slower in a harness timing this loop alone,
 * from the way gcc lays the loop out. (Not so in count_fused and count_key, where the key-first
 * order measured 3-5 % slower.) Two n-grams a step, each from its own load, saves the loop's
 * own instructions: 1.03-1.07x against a build where unrelated code had moved this loop to a
 * slower place, and even with the best earlier placement (docs/evaluation.md, twelfth
 * round); four a step measured 0.95x, and the same two-step loop in count_fused 0.91-0.93x
 * for global scoring.
 */
static inline __attribute__((always_inline)) void
count_one4(uint64_t *t, size_t mask, unsigned shift, uint32_t *order, size_t *u, uint32_t v)
{
    size_t h = (size_t)(((uint64_t)v * 0x9E3779B97F4A7C15ULL) >> shift);
    uint64_t w;
    while ((uint32_t)(w = t[h]) != v && w != 0)
        h = (h + 1) & mask;
    if (w) {
        t[h] = w + (1ULL << 32);
    } else {
        t[h] = v | (1ULL << 32);
        order[(*u)++] = (uint32_t)h;
    }
}

/* A function of its own, aligned to 64 bytes, so that the loop sits at the same place in a
 * cache line whatever code the linker puts before it: moved by unrelated growth (the k-NN
 * index's leaf directories, in another library linked first), the loop inlined in embed_bytes
 * ran the unsorted embedding 0.92-0.96x as fast (best of 15 runs, three alternating pairs),
 * and aligned so 0.98-0.99x of the earlier placement (docs/evaluation.md, seventeenth round).
 * One call a message costs nothing measurable. */
__attribute__((noinline, aligned(64))) static size_t count_packed4(uint64_t *t, size_t mask,
                                                                   unsigned shift, uint32_t *order,
                                                                   const uint8_t *p, size_t nk)
{
    size_t u = 0, i = 0;
    for (; i + 2 <= nk; i += 2) {
        uint32_t v0, v1;
        memcpy(&v0, p + i, 4);
        memcpy(&v1, p + i + 1, 4);
        count_one4(t, mask, shift, order, &u, v0);
        count_one4(t, mask, shift, order, &u, v1);
    }
    if (i < nk) {
        uint32_t v;
        memcpy(&v, p + i, 4);
        count_one4(t, mask, shift, order, &u, v);
    }
    return u;
}

/*
 * Writes the keys in order of first appearance with their counts and empties their words. The
 * squared norm is summed in integers: a floating-point sum waits for each addition before the
 * next. Two entries a step, and with SSE2 as one vector: the keys are the words' low halves,
 * their high halves the counts, converted to doubles and squared two at a time. The scalar
 * step took 15 instructions an entry and half as many vectors do; the counting and drain ran
 * 1.25x as fast. A count is below 2^31 (it counts a message's bytes), as the conversion from
 * 32-bit integers needs.
 */
static void drain_packed4(uint64_t *t, const uint32_t *order, size_t u, sparse_t *out)
{
    /* the output arrays as locals: a vector store may alias anything, out's fields too, so gcc
     * loaded both pointers again for every step */
    uint64_t sq = 0, *keys = out->keys;
    double *vals = out->vals;
    size_t j = 0;
#ifdef __SSE2__
    __m128i sq2 = _mm_setzero_si128();
    const __m128i low_half = _mm_set1_epi64x(0xffffffff);
    for (; j + 2 <= u; j += 2) {
        uint64_t *w0 = &t[order[j]], *w1 = &t[order[j + 1]];
        __m128i w = _mm_set_epi64x((long long)*w1, (long long)*w0);
        _mm_storeu_si128((__m128i *)(void *)(keys + j), _mm_and_si128(w, low_half));
        /* the counts in 32-bit lanes 0 and 1 to convert, and in lanes 0 and 2 to square */
        __m128i c = _mm_shuffle_epi32(w, _MM_SHUFFLE(3, 3, 3, 1));
        _mm_storeu_pd(vals + j, _mm_cvtepi32_pd(c));
        sq2 = _mm_add_epi64(sq2, _mm_mul_epu32(c, c));
        *w0 = 0;
        *w1 = 0;
    }
    sq = (uint64_t)_mm_cvtsi128_si64(sq2) +
         (uint64_t)_mm_cvtsi128_si64(_mm_unpackhi_epi64(sq2, sq2));
#endif
    for (; j < u; j++) {
        uint64_t w = t[order[j]], c = w >> 32;
        keys[j] = (uint32_t)w;
        vals[j] = (double)c;
        sq += c * c;
        t[order[j]] = 0;
    }
    out->n = u;
    out->norm2 = (double)sq;
}

/* The same for n-grams, taking each key straight from the bytes (no key array). */
static int accumulate_ngrams(embed_t *e, const uint8_t *p, size_t len, sparse_t *out)
{
    int n = e->o.n;
    size_t nk = len >= (size_t)n ? len - (size_t)n + 1 : 0;
    /* the packed 4-gram table at most 1/8 full (4,096 words, 32 KB, for a message of 400
     * bytes): a probe past the first slot is a mispredicted branch, and at 1/4 full one
     * n-gram in ten took one (40 a message); 1.03-1.04x the embedding, 1.07x the counting
     * alone on Intel; on AMD Zen 3 (32 KB of L1) the larger table measured even */
    if (grow_hash(e, n == 4 ? 2 * nk : nk) != 0 || sparse_reserve(out, nk) != 0)
        return -1;
    size_t mask = e->hcap - 1, u = 0;
    unsigned shift = 64 - (unsigned)__builtin_ctzll(e->hcap);
    if (n == 4) {
        uint64_t *packed = (uint64_t *)e->hslots;
        drain_packed4(packed, e->order,
                      count_packed4(packed, 2 * mask + 1, shift - 1, e->order, p, nk), out);
        return 0;
    }
    uint64_t keymask = n == 8 ? ~0ULL : ((1ULL << (8 * n)) - 1);
    for (size_t i = 0; i < nk; i++) {
        uint64_t v;
        memcpy(&v, p + i, 8); /* preprocess() pads the bytes with zeros */
        count_key(e->hslots, mask, shift, e->order, &u, v & keymask);
    }
    drain_table(e, u, out);
    return 0;
}

static bool ranked_counting(embed_t *e, size_t plen);
static int ranked_ngrams(embed_t *e, const uint8_t *p, size_t len, sparse_t *out);

/* Counts the features of the preprocessed bytes p into out: in a hash table, then (sorted
 * output) the distinct keys put in order; sorted n-grams of up to 4 bytes by learned ranks
 * where they can. */
static int embed_bytes(embed_t *e, const uint8_t *p, size_t plen, sparse_t *out)
{
    if (e->sorted && ranked_counting(e, plen)) {
        if (ranked_ngrams(e, p, plen, out) != 0)
            return -1;
        normalise(e, out);
        return 0;
    }
    int rc = e->o.kind == EMBED_NGRAM ? accumulate_ngrams(e, p, plen, out)
                                      : accumulate(e, extract_tokens(e, p, plen), out);
    if (rc != 0)
        return -1;
    if (e->sorted)
        sort_entries(out->keys, out->vals, e->tmp, e->dtmp, e->kb, out->n);
    normalise(e, out);
    return 0;
}

/* Preprocesses a message into e's buffers; returns the bytes to take features from. */
static const uint8_t *prepare(embed_t *e, const uint8_t *data, size_t len, sparse_t *out,
                              size_t *plen)
{
    out->n = 0;
    out->norm2 = 0;
    if (grow_buffers(e, len) != 0 || grow_keys(e, len + 1) != 0)
        return NULL;
    const uint8_t *p = preprocess(e, data, len, plen);
    e->last = p;
    e->last_len = *plen;
    return p;
}

int embed_message(embed_t *e, const uint8_t *data, size_t len, sparse_t *out)
{
    size_t plen;
    const uint8_t *p = prepare(e, data, len, out, &plen);
    return p ? embed_bytes(e, p, plen, out) : -1;
}

/* ---------------------------------------------------------------- weights */

static inline size_t key_slot(uint64_t key, unsigned shift)
{
    return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> shift);
}

static unsigned slot_shift(size_t cap)
{
    return 64 - (unsigned)__builtin_ctzll(cap);
}

static double weight_of(const embed_t *e, uint64_t key)
{
    if (!e->wt_cap)
        return 0;
    size_t mask = e->wt_cap - 1;
    for (size_t h = key_slot(key, slot_shift(e->wt_cap));; h = (h + 1) & mask) {
        if (e->wt[h].w == 0)
            return 0;
        if (e->wt[h].key == key)
            return e->wt[h].w;
    }
}

double embed_weighted_dot(const embed_t *e, const sparse_t *v)
{
    double dot = 0;
    for (size_t i = 0; i < v->n; i++)
        dot += v->vals[i] * weight_of(e, v->keys[i]);
    return dot;
}

/* Keys of a message beyond those the table was built with room for */
#define FUSED_ROOM 1024

/* The fused table only serves keys of up to 32 bits, counted straight from the bytes, and
 * only messages that cannot fill it past three quarters (nor a count past FW_COUNT). It never
 * grows: one huge message would leave it large, and every later message slower for its cache
 * misses; such a message takes the plain path instead. */
static bool fused_counting(const embed_t *e, size_t plen)
{
    return !e->sorted && e->o.kind == EMBED_NGRAM && e->o.n <= 4 && e->ft_cap && plen < FW_COUNT &&
           4 * (e->ft_nw + plen) <= 3 * e->ft_cap;
}

typedef struct {
    double w; /* |weight| */
    uint32_t i;
} weight_rank_t;

/* Larger weights first (the centre's large entries are the features most messages hold),
 * then the order given. */
static int by_weight(const void *a, const void *b)
{
    const weight_rank_t *x = a, *y = b;
    if (x->w != y->w)
        return x->w > y->w ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

/*
 * Builds the weighted counting table with room for the weights and `room` more keys. Keys go
 * in by falling weight: with linear probing the first keys in sit in their home slots, and
 * the features most messages hold then cost one probe, whose branch rarely mispredicts; their
 * weights, stored by the same rank, fill the first cache lines of ftw.
 * Where each key sits changes no result (sums run in the message's order).
 */
static int build_fused_table(embed_t *e, size_t room)
{
    if (e->nw > FW_RANK_MAX)
        return 0; /* more weights than a word can rank: the plain path serves */
    size_t cap = 1024;
    while (cap < 2 * (e->nw + room))
        cap *= 2;
    uint64_t *t = calloc(cap, sizeof *t);
    double *w = calloc(e->nw + 1, sizeof *w);
    weight_rank_t *order = malloc((e->nw ? e->nw : 1) * sizeof *order);
    uint32_t *from = malloc(cap * sizeof *from); /* which given entry a slot holds */
    if (!t || !w || !order || !from) {
        free(t);
        free(w);
        free(order);
        free(from);
        return -1;
    }
    for (size_t i = 0; i < e->nw; i++)
        order[i] = (weight_rank_t){fabs(e->wvals[i]), (uint32_t)i};
    qsort(order, e->nw, sizeof *order, by_weight);
    unsigned shift = slot_shift(cap);
    size_t ranks = 0;
    for (size_t k = 0; k < e->nw; k++) {
        uint32_t i = order[k].i;
        if (e->wkeys[i] >> 32)
            continue; /* no n-gram of up to 4 bytes has it, and its word would alias one */
        size_t h = key_slot(e->wkeys[i], shift);
        while (t[h] && (t[h] >> 32) != e->wkeys[i])
            h = (h + 1) & (cap - 1);
        if (t[h]) { /* a key given twice keeps its first weight */
            size_t r = (t[h] >> FW_RANK_SHIFT) & FW_RANK_MAX;
            if (from[h] > i) {
                w[r] = e->wvals[i];
                from[h] = i;
            }
            continue;
        }
        w[++ranks] = e->wvals[i];
        t[h] = e->wkeys[i] << 32 | (uint64_t)ranks << FW_RANK_SHIFT;
        from[h] = i;
    }
    free(order);
    free(from);
    free(e->ft);
    free(e->ftw);
    e->ft = t;
    e->ftw = w;
    e->ft_cap = cap;
    e->ft_nw = ranks;
    return 0;
}

static int build_weight_lookup(embed_t *e)
{
    size_t cap = 1024;
    while (cap < 2 * e->nw)
        cap *= 2;
    wslot_t *t = calloc(cap, sizeof *t);
    if (!t)
        return -1;
    unsigned shift = slot_shift(cap);
    for (size_t i = 0; i < e->nw; i++) {
        size_t h = key_slot(e->wkeys[i], shift);
        while (t[h].w != 0 && t[h].key != e->wkeys[i])
            h = (h + 1) & (cap - 1);
        if (t[h].w == 0)
            t[h] = (wslot_t){e->wkeys[i], e->wvals[i]};
    }
    e->wt = t;
    e->wt_cap = cap;
    return 0;
}

static void drop_weights(embed_t *e)
{
    free(e->wkeys);
    free(e->wvals);
    free(e->wt);
    free(e->ft);
    free(e->ftw);
    e->wkeys = NULL;
    e->wvals = NULL;
    e->wt = NULL;
    e->ft = NULL;
    e->ftw = NULL;
    e->nw = e->wt_cap = e->ft_cap = e->ft_nw = 0;
}

int embed_set_weights(embed_t *e, const uint64_t *keys, const double *w, size_t n)
{
    drop_weights(e);
    size_t nz = 0;
    for (size_t i = 0; i < n; i++)
        nz += w[i] != 0;
    if (nz == 0)
        return 0;
    e->wkeys = malloc(nz * sizeof *e->wkeys);
    e->wvals = malloc(nz * sizeof *e->wvals);
    if (!e->wkeys || !e->wvals)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        if (w[i] == 0)
            continue;
        e->wkeys[e->nw] = keys[i];
        e->wvals[e->nw++] = w[i];
    }
    if (build_weight_lookup(e) != 0)
        goto fail;
    if (e->o.kind == EMBED_NGRAM && e->o.n <= 4 && build_fused_table(e, FUSED_ROOM) != 0)
        goto fail;
    return 0;
fail:
    drop_weights(e);
    return -1;
}

/*
 * Counts the n-grams of p in the weighted table: one probe per n-gram finds its count and
 * its weight's rank. Keys new to the table go in as temporary words and are emptied again
 * when the message is done; kept words never move, so the table is then as it was.
 * KEYMASK is a constant in each caller so that the 4-gram loop does no masking.
 */
static inline size_t count_fused(uint64_t *t, size_t cap, uint32_t *order, const uint8_t *p,
                                 size_t nk, uint32_t keymask)
{
    size_t mask = cap - 1, u = 0;
    unsigned shift = slot_shift(cap);
    for (size_t i = 0; i < nk; i++) {
        uint32_t v;
        memcpy(&v, p + i, 4); /* preprocess() pads the bytes with zeros */
        v &= keymask;
        uint64_t hi = (uint64_t)v << 32, w;
        size_t h = key_slot(v, shift);
        while ((w = t[h]) != 0 && (w >> 32) != v)
            h = (h + 1) & mask;
        t[h] = w ? w + 1 : (hi | 1);
        order[u] = (uint32_t)h;
        u += (w & FW_COUNT) == 0;
    }
    return u;
}

/* The word a slot keeps once the message is done: a kept word without its count, or empty
 * (a temporary word, rank 0). A branch: most keys are kept, and a branch-free mask (neg, sbb,
 * and) ran 4 % slower in paired runs. */
static inline uint64_t emptied_word(uint64_t w)
{
    uint64_t kept = (w >> FW_RANK_SHIFT) & FW_RANK_MAX;
    return kept ? w & ~FW_COUNT : 0;
}

/*
 * Writes the counted keys (in order of first appearance) with their counts, unless out is
 * NULL, empties the slots, and returns the dot product with the weights and the squared norm.
 * The norm is a sum of squared counts, exact in any order, so it is summed in integers off the
 * floating-point chain. The dot product is summed in four interleaved partial sums (entries
 * j, j + 4, ... in each, the last few in the first), added pairwise at the end: one chain of
 * additions, each waiting for the last, took half the drain's time. The order is fixed, so
 * embed_message_dot() and embed_message_stats() give the same bits; the sorted path sums in
 * key order and may differ in the last bits. Inlined with out NULL for global-only scoring:
 * the vector's writes missed the first-level cache about 125 times a message.
 */
static inline double drain_one(uint64_t *t, const double *ftw, uint32_t slot, size_t j,
                               uint64_t *keys, double *vals, uint64_t *n2)
{
    uint64_t w = t[slot], count = w & FW_COUNT;
    double c = (double)(int64_t)count;
    if (keys) {
        keys[j] = w >> 32;
        vals[j] = c;
    }
    *n2 += count * count;
    t[slot] = emptied_word(w);
    return c * ftw[(w >> FW_RANK_SHIFT) & FW_RANK_MAX];
}

static inline double drain_fused(uint64_t *t, const double *ftw, const uint32_t *order, size_t u,
                                 sparse_t *out, double *norm2)
{
    uint64_t n2 = 0;
    /* the output arrays as locals, as in drain_packed4 */
    uint64_t *keys = out ? out->keys : NULL;
    double *vals = out ? out->vals : NULL;
    double d0 = 0, d1 = 0, d2 = 0, d3 = 0;
    size_t j = 0;
    for (; j + 4 <= u; j += 4) {
        d0 += drain_one(t, ftw, order[j], j, keys, vals, &n2);
        d1 += drain_one(t, ftw, order[j + 1], j + 1, keys, vals, &n2);
        d2 += drain_one(t, ftw, order[j + 2], j + 2, keys, vals, &n2);
        d3 += drain_one(t, ftw, order[j + 3], j + 3, keys, vals, &n2);
    }
    for (; j < u; j++)
        d0 += drain_one(t, ftw, order[j], j, keys, vals, &n2);
    *norm2 = (double)n2;
    return (d0 + d1) + (d2 + d3);
}

/* The same when normalising changes the values: the weights are kept aside and the dot
 * product is taken of the normalised values. */
static double drain_fused_renormed(embed_t *e, size_t u, sparse_t *out)
{
    uint64_t *t = e->ft;
    for (size_t j = 0; j < u; j++) {
        uint64_t w = t[e->forder[j]];
        out->keys[j] = w >> 32;
        out->vals[j] = (double)(int64_t)(w & FW_COUNT);
        e->dtmp[j] = e->ftw[(w >> FW_RANK_SHIFT) & FW_RANK_MAX];
        t[e->forder[j]] = emptied_word(w);
    }
    out->n = u;
    sparse_update_norm(out);
    normalise(e, out);
    double d = 0;
    for (size_t j = 0; j < u; j++)
        d += out->vals[j] * e->dtmp[j];
    return d;
}

/* Counts the n-grams of p in the weighted table; returns how many are distinct. */
static size_t count_weighted(embed_t *e, const uint8_t *p, size_t len)
{
    int n = e->o.n;
    size_t nk = len >= (size_t)n ? len - (size_t)n + 1 : 0;
    return n == 4 ? count_fused(e->ft, e->ft_cap, e->forder, p, nk, 0xffffffffu)
                  : count_fused(e->ft, e->ft_cap, e->forder, p, nk, (1u << (8 * n)) - 1);
}

static int fused_ngrams(embed_t *e, const uint8_t *p, size_t len, sparse_t *out, double *dot)
{
    if (sparse_reserve(out, len) != 0)
        return -1;
    size_t u = count_weighted(e, p, len);
    if (e->o.binary || e->o.norm != EMBED_NORM_NONE) {
        *dot = drain_fused_renormed(e, u, out);
    } else {
        *dot = drain_fused(e->ft, e->ftw, e->forder, u, out, &out->norm2);
        out->n = u;
    }
    return 0;
}

/* ------------------------------------------------ sorted n-grams by learned ranks */

/*
 * Sorting a message's distinct keys cost more than counting them. But traffic at one place
 * repeats its n-grams: after field shaping, 5,419 messages held 4,412 distinct 4-grams, and
 * 107k messages of 1,000 users 12,564. So the sorted embedder learns the keys it sees and
 * gives each its rank in key order, kept in its counting table's word where the fused table
 * keeps a weight's rank. Draining a message then sets one bit per ranked key, and reading the
 * bits in order gives its keys in order; the few keys without a rank are sorted as before and
 * merged in. The output is the same whatever was learned (the keys in order, exact counts):
 * learning changes the speed only. New keys are learned in batches, the table rebuilt each
 * time, until SL_MAX_KEYS; past that the unranked keys of each message are sorted.
 */
/* Distinct keys of a message beyond the learned ones that the table has room for */
#define SL_ROOM 1024

static int by_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Sorts and deduplicates n keys in place; returns how many distinct ones. */
static size_t sort_unique_u32(uint32_t *k, size_t n)
{
    if (n > 1) /* k may be NULL when n is 0 */
        qsort(k, n, sizeof *k, by_u32);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || k[i] != k[m - 1])
            k[m++] = k[i];
    return m;
}

/*
 * Puts the m ranked keys into the empty table t, the keys more messages held first: with linear
 * probing the first keys in sit in their home slots, so the common ones cost one probe, whose
 * branch rarely mispredicts. Ordered by the bit length of their use count, in one pass per
 * length that occurs: a full sort would cost more than it saves.
 */
static void insert_by_use(uint64_t *t, size_t cap, const uint32_t *keys, const uint16_t *use,
                          size_t m)
{
    uint64_t lengths = 0;
    for (size_t r = 1; r <= m; r++)
        lengths |= 1ULL << (32 - __builtin_clz(use[r] | 1));
    unsigned shift = slot_shift(cap);
    while (lengths) {
        unsigned len = 63 - (unsigned)__builtin_clzll(lengths);
        lengths &= ~(1ULL << len);
        for (size_t r = 1; r <= m; r++) {
            if (32 - __builtin_clz(use[r] | 1) != (int)len)
                continue;
            size_t h = key_slot(keys[r], shift);
            while (t[h])
                h = (h + 1) & (cap - 1);
            t[h] = (uint64_t)keys[r] << 32 | (uint64_t)r << FW_RANK_SHIFT;
        }
    }
}

/* The learned keys become the union of those and the new ones (merged, both being sorted), in
 * key order, ranked from 1, and the table is rebuilt with a kept word for each. */
static int learn_keys(embed_t *e)
{
    size_t nn = sort_unique_u32(e->st_new, e->st_new_n), m = 0;
    uint32_t *keys = malloc((e->st_n + nn + 1) * sizeof *keys);
    uint16_t *use = malloc((e->st_n + nn + 1) * sizeof *use),
             *cnt = malloc((e->st_n + nn + 1) * sizeof *cnt);
    uint64_t *bits = e->st_bits ? e->st_bits : calloc((SL_MAX_KEYS + 1) / 64, sizeof *bits);
    if (!keys || !use || !cnt || !bits) {
        free(keys);
        free(use);
        free(cnt);
        if (bits != e->st_bits)
            free(bits);
        return -1;
    }
    for (size_t i = 1, j = 0; i <= e->st_n || j < nn;) {
        if (i <= e->st_n && j < nn && e->st_key[i] == e->st_new[j]) {
            j++; /* learned already: cannot happen, as only unranked keys are collected */
        } else if (i <= e->st_n && (j == nn || e->st_key[i] < e->st_new[j])) {
            keys[++m] = e->st_key[i];
            use[m] = e->st_use[i++];
        } else {
            keys[++m] = e->st_new[j++];
            use[m] = 0;
        }
    }
    size_t cap = 1024;
    while (cap < 2 * (m + SL_ROOM))
        cap *= 2;
    uint64_t *t = cap == e->st_cap ? e->st : calloc(cap, sizeof *t);
    if (!t) {
        free(keys);
        free(use);
        free(cnt);
        return -1;
    }
    if (t == e->st)
        memset(t, 0, cap * sizeof *t);
    insert_by_use(t, cap, keys, use, m);
    if (t != e->st)
        free(e->st);
    free(e->st_key);
    free(e->st_use);
    free(e->st_cnt);
    e->st = t;
    e->st_cap = cap;
    e->st_key = keys;
    e->st_use = use;
    e->st_cnt = cnt;
    e->st_bits = bits;
    e->st_n = m;
    e->st_new_n = 0;
    return 0;
}

/* Whether a message of plen bytes takes the ranked path; makes the first (empty) table. */
static bool ranked_counting(embed_t *e, size_t plen)
{
    if (e->o.kind != EMBED_NGRAM || e->o.n > 4 || plen >= FW_COUNT)
        return false;
    if (!e->st && learn_keys(e) != 0)
        return false;
    return 4 * (e->st_n + plen) <= 3 * e->st_cap;
}

/*
 * Empties the slots the message used. A ranked key's count goes to st_cnt by its rank, with
 * its bit set (its key is st_key by rank); the others go to ukeys/uvals (their table words
 * were temporary). Returns how many of those.
 */
static size_t drain_ranked(embed_t *e, size_t u, uint64_t *norm2)
{
    uint64_t *t = e->st, n2 = 0;
    size_t nu = 0;
    for (size_t j = 0; j < u; j++) {
        uint64_t w = t[e->forder[j]], count = w & FW_COUNT;
        size_t r = (w >> FW_RANK_SHIFT) & FW_RANK_MAX;
        n2 += count * count;
        if (r) { /* nearly always, once the keys are learned */
            e->st_cnt[r] = (uint16_t)count;
            e->st_bits[r / 64] |= 1ULL << (r % 64);
            t[e->forder[j]] = w & ~FW_COUNT;
        } else {
            e->ukeys[nu] = w >> 32;
            e->uvals[nu++] = (double)(int64_t)count;
            t[e->forder[j]] = 0;
        }
    }
    *norm2 = n2;
    return nu;
}

/* Lists the ranks whose bits are set, in order, into ranks, and clears the bits. (Writing
 * eight ranks per word whatever it held, to spare the loop's mispredicted exit, was not
 * faster; nor was emitting each key straight from the bits.) */
static size_t ranks_in_order(embed_t *e, uint32_t *ranks)
{
    size_t nr = 0;
    for (size_t wi = 0; wi <= e->st_n / 64; wi++) {
        uint64_t b = e->st_bits[wi];
        if (!b)
            continue;
        e->st_bits[wi] = 0;
        for (; b; b &= b - 1)
            ranks[nr++] = (uint32_t)(wi * 64) + (uint32_t)__builtin_ctzll(b);
    }
    return nr;
}

/* Writes the ranked keys in rank order, which is key order, merging in the nu sorted unranked
 * ones. A ranked key and its count are read by rank (st_key, st_cnt): an earlier version
 * went through the key's place in the message's list, a load more for each. */
static void emit_in_key_order(embed_t *e, size_t nu, sparse_t *out)
{
    uint32_t *ranks = e->forder; /* free once the table is drained */
    size_t nr = ranks_in_order(e, ranks), j = 0, ui = 0;
    for (size_t i = 0; i < nr; i++) {
        uint32_t r = ranks[i];
        uint64_t key = e->st_key[r];
        for (; ui < nu && e->ukeys[ui] < key; ui++, j++) {
            out->keys[j] = e->ukeys[ui];
            out->vals[j] = e->uvals[ui];
        }
        out->keys[j] = key;
        out->vals[j++] = (double)e->st_cnt[r];
    }
    if (++e->st_msgs % SL_USE_SAMPLE == 0)
        for (size_t i = 0; i < nr; i++)
            e->st_use[ranks[i]] += e->st_use[ranks[i]] < 0xffff;
    for (; ui < nu; ui++, j++) {
        out->keys[j] = e->ukeys[ui];
        out->vals[j] = e->uvals[ui];
    }
}

/* Keeps a message's unranked keys for the next batch, and learns a batch once it is half of
 * what is known (64 more at first), so that rebuilds grow the table geometrically. A failed
 * rebuild keeps the old table: only speed is lost. */
static void collect_new_keys(embed_t *e, size_t nu)
{
    size_t room = SL_MAX_KEYS - e->st_n - e->st_new_n;
    nu = nu < room ? nu : room;
    if (nu == 0)
        return;
    if (e->st_new_n + nu > e->st_new_cap) {
        size_t cap = 2 * (e->st_new_n + nu);
        uint32_t *k = realloc(e->st_new, cap * sizeof *k);
        if (!k)
            return;
        e->st_new = k;
        e->st_new_cap = cap;
    }
    for (size_t i = 0; i < nu; i++)
        e->st_new[e->st_new_n++] = (uint32_t)e->ukeys[i];
    bool batch = e->st_new_n >= 64 + e->st_n / 2 || e->st_n + e->st_new_n == SL_MAX_KEYS;
    if (batch && learn_keys(e) != 0)
        e->st_new_n = 0;
}

static int ranked_ngrams(embed_t *e, const uint8_t *p, size_t len, sparse_t *out)
{
    int n = e->o.n;
    size_t nk = len >= (size_t)n ? len - (size_t)n + 1 : 0;
    if (sparse_reserve(out, nk) != 0)
        return -1;
    if (nk > e->ucap) { /* only here: other embedders never need them */
        void *q;
        size_t cap = e->keys_cap;
        if (!(GROW_ARRAY(e->ukeys, cap, q) && GROW_ARRAY(e->uvals, cap, q) &&
              GROW_ARRAY(e->utmp, cap, q)))
            return -1;
        e->ucap = cap;
    }
    /* count_weighted's twin on the learned table: one helper taking the table as an argument
     * made gcc's counting loop 370-700 instructions a message longer (cachegrind) */
    size_t u = n == 4 ? count_fused(e->st, e->st_cap, e->forder, p, nk, 0xffffffffu)
                      : count_fused(e->st, e->st_cap, e->forder, p, nk, (1u << (8 * n)) - 1);
    uint64_t norm2;
    size_t nu = drain_ranked(e, u, &norm2);
    sort_entries(e->ukeys, e->uvals, e->tmp, e->utmp, e->kb, nu);
    emit_in_key_order(e, nu, out);
    out->n = u;
    out->norm2 = (double)norm2;
    collect_new_keys(e, nu);
    return 0;
}

size_t embed_learned_keys(const embed_t *self)
{
    return self->st_n;
}

int embed_message_dot(embed_t *e, const uint8_t *data, size_t len, sparse_t *out, double *dot)
{
    *dot = 0;
    size_t plen;
    const uint8_t *p = prepare(e, data, len, out, &plen);
    if (!p)
        return -1;
    if (fused_counting(e, plen))
        return fused_ngrams(e, p, plen, out, dot);
    if (embed_bytes(e, p, plen, out) != 0)
        return -1;
    *dot = embed_weighted_dot(e, out);
    return 0;
}

int embed_message_stats(embed_t *e, const uint8_t *data, size_t len, double *norm2, double *dot)
{
    if (!e->spare && !(e->spare = sparse_new()))
        return -1;
    *dot = *norm2 = 0;
    size_t plen;
    const uint8_t *p = prepare(e, data, len, e->spare, &plen);
    if (!p)
        return -1;
    if (fused_counting(e, plen) && !e->o.binary && e->o.norm == EMBED_NORM_NONE) {
        *dot = drain_fused(e->ft, e->ftw, e->forder, count_weighted(e, p, plen), NULL, norm2);
        return 0;
    }
    /* every other embedding: the vector, which these paths write anyway */
    if (embed_bytes(e, p, plen, e->spare) != 0)
        return -1;
    *dot = embed_weighted_dot(e, e->spare);
    *norm2 = e->spare->norm2;
    return 0;
}

int embed_last_vector(embed_t *e, sparse_t *out)
{
    out->n = 0;
    out->norm2 = 0;
    return e->last ? embed_bytes(e, e->last, e->last_len, out) : 0;
}

const uint8_t *embed_last_bytes(const embed_t *self, size_t *len)
{
    *len = self->last_len;
    return self->last;
}

static int dict_grow(embed_t *e)
{
    size_t cap = e->dict_cap ? e->dict_cap * 2 : 4096;
    dict_slot_t *d = calloc(cap, sizeof *d);
    if (!d)
        return -1;
    for (size_t i = 0; i < e->dict_cap; i++) {
        if (!e->dict[i].off)
            continue;
        size_t h = e->dict[i].key & (cap - 1);
        while (d[h].off)
            h = (h + 1) & (cap - 1);
        d[h] = e->dict[i];
    }
    free(e->dict);
    e->dict = d;
    e->dict_cap = cap;
    return 0;
}

static void dict_insert(embed_t *e, uint64_t key, const uint8_t *s, size_t len)
{
    if (len > 255)
        len = 255;
    if ((e->dict_n + 1) * 2 > e->dict_cap && dict_grow(e) != 0)
        return;
    size_t h = key & (e->dict_cap - 1);
    while (e->dict[h].off) {
        if (e->dict[h].key == key)
            return;
        h = (h + 1) & (e->dict_cap - 1);
    }
    if (e->arena_len + len + 1 > e->arena_cap) {
        size_t cap = e->arena_cap ? e->arena_cap * 2 : 65536;
        while (cap < e->arena_len + len + 1)
            cap *= 2;
        char *a = realloc(e->arena, cap);
        if (!a)
            return;
        e->arena = a;
        e->arena_cap = cap;
        if (e->arena_len == 0)
            e->arena_len = 1; /* offset 0 marks an empty slot */
    }
    memcpy(e->arena + e->arena_len, s, len);
    e->dict[h] = (dict_slot_t){key, (uint32_t)e->arena_len, (uint32_t)len};
    e->arena_len += len;
    e->dict_n++;
}

int embed_feature_key(const embed_opts_t *o, const uint8_t *s, size_t len, uint64_t *key)
{
    if (o->kind == EMBED_NGRAM) {
        if (len != (size_t)o->n)
            return -1;
        uint64_t k = 0;
        for (size_t i = 0; i < len; i++)
            k |= (uint64_t)s[i] << (8 * i);
        *key = k;
        return 0;
    }
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++)
        if (o->delim[s[i] / 8] & (1u << (s[i] % 8)))
            return -1; /* a token never holds a delimiter */
    *key = XXH3_64bits(s, len) >> 1;
    return 0;
}

void embed_ngram_bytes(uint64_t key, int n, uint8_t *out)
{
    for (int i = 0; i < n; i++)
        out[i] = (uint8_t)(key >> (8 * i));
}

/* Appends bytes readably: printable ASCII as is, shaping tokens by name, others as \xHH. */
/* Appends piece (n bytes) at buf + o, NUL after it; one that does not fit whole is cut to what
 * fits (NUL last) and ends the name: *full is then set and o returned unchanged. */
static size_t append_piece(char *buf, size_t cap, size_t o, const char *piece, size_t n, bool *full)
{
    if (n >= cap - o) {
        memcpy(buf + o, piece, cap - o - 1);
        buf[cap - 1] = '\0';
        *full = true;
        return o;
    }
    memcpy(buf + o, piece, n);
    buf[o + n] = '\0';
    return o + n;
}

/* Appends the readable form of s: shaping tokens by name, printable bytes as they are, \r \n
 * and \\ escaped, other bytes as \xHH. Written piece by piece: a snprintf per byte was most of
 * `embed --format json`. */
static size_t append_readable(char *buf, size_t cap, size_t o, const uint8_t *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    bool full = false;
    for (size_t i = 0; i < len && o + 1 < cap && !full; i++) {
        const char *tok = shape_token_name(s[i]);
        char esc[4] = {'\\', 'x', hex[s[i] >> 4], hex[s[i] & 15]};
        if (tok)
            o = append_piece(buf, cap, o, tok, strlen(tok), &full);
        else if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\')
            o = append_piece(buf, cap, o, (const char *)&s[i], 1, &full);
        else if (s[i] == '\r')
            o = append_piece(buf, cap, o, "\\r", 2, &full);
        else if (s[i] == '\n')
            o = append_piece(buf, cap, o, "\\n", 2, &full);
        else if (s[i] == '\\')
            o = append_piece(buf, cap, o, "\\\\", 2, &full);
        else
            o = append_piece(buf, cap, o, esc, 4, &full);
    }
    return o;
}

void embed_feature_name(const embed_t *e, uint64_t key, char *buf, size_t cap)
{
    if (cap == 0)
        return;
    buf[0] = '\0';
    if (e->o.kind == EMBED_NGRAM) {
        uint8_t b[8];
        embed_ngram_bytes(key, e->o.n, b);
        append_readable(buf, cap, 0, b, (size_t)e->o.n);
        return;
    }
    if (e->dict_cap) {
        size_t h = key & (e->dict_cap - 1);
        while (e->dict[h].off) {
            if (e->dict[h].key == key) {
                append_readable(buf, cap, 0, (const uint8_t *)e->arena + e->dict[h].off,
                                e->dict[h].len);
                return;
            }
            h = (h + 1) & (e->dict_cap - 1);
        }
    }
    snprintf(buf, cap, "token:%016llx", (unsigned long long)key);
}
