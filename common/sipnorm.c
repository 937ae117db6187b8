#include "sipnorm.h"

#include "blockcopy.h"
#include "shape.h"

#include <ctype.h>
#include <stdbool.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

typedef struct {
    const char *compact; /* one letter, or NULL */
    const char *name;
} header_name_t;

/* RFC 3261 section 7.3.3 and the extensions' compact forms, then common long-only names. */
static const header_name_t known[] = {
    {"i", "Call-ID"},
    {"m", "Contact"},
    {"e", "Content-Encoding"},
    {"l", "Content-Length"},
    {"c", "Content-Type"},
    {"f", "From"},
    {"s", "Subject"},
    {"k", "Supported"},
    {"t", "To"},
    {"v", "Via"},
    {"o", "Event"},
    {"r", "Refer-To"},
    {"b", "Referred-By"},
    {"u", "Allow-Events"},
    {"x", "Session-Expires"},
    {"y", "Identity"},
    {"a", "Accept-Contact"},
    {"j", "Reject-Contact"},
    {"d", "Request-Disposition"},
    {NULL, "Accept"},
    {NULL, "Accept-Encoding"},
    {NULL, "Accept-Language"},
    {NULL, "Alert-Info"},
    {NULL, "Allow"},
    {NULL, "Authentication-Info"},
    {NULL, "Authorization"},
    {NULL, "CSeq"},
    {NULL, "Call-Info"},
    {NULL, "Content-Disposition"},
    {NULL, "Content-Language"},
    {NULL, "Date"},
    {NULL, "Error-Info"},
    {NULL, "Expires"},
    {NULL, "In-Reply-To"},
    {NULL, "Max-Forwards"},
    {NULL, "MIME-Version"},
    {NULL, "Min-Expires"},
    {NULL, "Organization"},
    {NULL, "Priority"},
    {NULL, "Proxy-Authenticate"},
    {NULL, "Proxy-Authorization"},
    {NULL, "Proxy-Require"},
    {NULL, "Record-Route"},
    {NULL, "Reply-To"},
    {NULL, "Require"},
    {NULL, "Retry-After"},
    {NULL, "Route"},
    {NULL, "Server"},
    {NULL, "Timestamp"},
    {NULL, "Unsupported"},
    {NULL, "User-Agent"},
    {NULL, "Warning"},
    {NULL, "WWW-Authenticate"},
    {NULL, "RSeq"},
    {NULL, "RAck"},
    {NULL, "P-Asserted-Identity"},
    {NULL, "P-Preferred-Identity"},
    {NULL, "P-Charging-Vector"},
    {NULL, "Privacy"},
    {NULL, "Path"},
    {NULL, "Service-Route"},
    {NULL, "Subscription-State"},
    {NULL, "SIP-ETag"},
    {NULL, "SIP-If-Match"},
    {NULL, "Min-SE"},
    {NULL, "Diversion"},
    {NULL, "Remote-Party-ID"},
    {NULL, "Replaces"},
    {NULL, "Session-ID"},
    {NULL, "Security-Client"},
    {NULL, "Security-Server"},
    {NULL, "Security-Verify"},
};

#define KNOWN_COUNT (sizeof known / sizeof known[0])
#define MAX_NAME_LEN 24

/* RFC 3261 token characters, by table: every byte of every header name is tested. */
static const uint8_t token_char[256] = {
    ['-'] = 1,  ['.'] = 1, ['!'] = 1, ['%'] = 1, ['*'] = 1, ['_'] = 1, ['+'] = 1, ['`'] = 1,
    ['\''] = 1, ['~'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
    ['6'] = 1,  ['7'] = 1, ['8'] = 1, ['9'] = 1, ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1,
    ['e'] = 1,  ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1, ['k'] = 1, ['l'] = 1,
    ['m'] = 1,  ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1,
    ['u'] = 1,  ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1, ['A'] = 1, ['B'] = 1,
    ['C'] = 1,  ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1,
    ['K'] = 1,  ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1,
    ['S'] = 1,  ['T'] = 1, ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
};

static int is_token(uint8_t c)
{
    return token_char[c];
}

/*
 * Every header line of every message is looked up, so the names are indexed once, full names
 * and compact letters alike, by a hash of their case-folded bytes, with a multiplier chosen at
 * start so that each has a slot of its own (one probe, one compare, no branch on which kind
 * of name a line has). A name's
 * bytes are folded by setting bit 5 (0x20), which among token characters changes only
 * letters, so equal folded words mean equal names but for case. A name is kept as three
 * zero-padded words, compared in one go, and its canonical spelling padded to 32 bytes,
 * copied in one go. strncasecmp and a variable-length memcpy mispredicted on every line.
 */
typedef struct {
    uint64_t w[3]; /* folded, zero past len */
    uint32_t len;  /* 0: empty slot */
    uint32_t known;
} name_slot_t;

#define NAME_SLOTS 512
#define NAME_KEYS (KNOWN_COUNT + 26) /* the names, and the compact letters */
static name_slot_t name_slot[NAME_SLOTS];
static uint64_t name_mul;
static char padded[KNOWN_COUNT][32]; /* canonical spellings, zero-padded */
static uint8_t padded_len[KNOWN_COUNT];
static int8_t line_field[KNOWN_COUNT]; /* shape_header_field of each name */
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

#define FOLD 0x2020202020202020ULL

/* 24 bytes set, then 24 clear: the 24 bytes from 24 - len keep a name's len bytes. Masks by
 * load, not computed per word from the length. */
static const uint8_t name_mask[2 * MAX_NAME_LEN] = {
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};

/* Folded words of a name of len (1..MAX_NAME_LEN) bytes at p, which is readable for 24 */
static inline void fold_name(const uint8_t *p, size_t len, uint64_t w[3])
{
    const uint8_t *mask = name_mask + MAX_NAME_LEN - len;
    for (size_t k = 0; k < 3; k++) {
        uint64_t x, m;
        memcpy(&x, p + 8 * k, 8);
        memcpy(&m, mask + 8 * k, 8);
        w[k] = (x | FOLD) & m;
    }
}

static inline size_t name_hash(const uint64_t w[3], size_t len, uint64_t mul)
{
    return (size_t)(((w[0] ^ (w[1] * 0x9E3779B97F4A7C15ULL) ^ w[2] ^ (uint64_t)len) * mul) >> 55);
}

/* The keys the index holds: every known name and every compact letter, folded, with the
 * entry of known each stands for. */
typedef struct {
    uint64_t w[3];
    size_t len, known;
} name_key_t;

static size_t name_keys(name_key_t *keys)
{
    size_t n = 0;
    for (size_t i = 0; i < KNOWN_COUNT; i++) {
        size_t len = strlen(known[i].name);
        memcpy(padded[i], known[i].name, len);
        padded_len[i] = (uint8_t)len;
        line_field[i] = (int8_t)shape_header_field(known[i].name);
        keys[n] = (name_key_t){{0, 0, 0}, len, i};
        fold_name((const uint8_t *)padded[i], len, keys[n++].w);
        if (known[i].compact) {
            uint8_t letter[MAX_NAME_LEN] = {(uint8_t)known[i].compact[0]};
            keys[n] = (name_key_t){{0, 0, 0}, 1, i};
            fold_name(letter, 1, keys[n++].w);
        }
    }
    return n;
}

/* How many keys miss their first slot under a multiplier */
static size_t slot_misses(const name_key_t *keys, size_t n, uint64_t mul)
{
    uint64_t used[NAME_SLOTS / 64] = {0};
    size_t missed = 0;
    for (size_t i = 0; i < n; i++) {
        size_t h = name_hash(keys[i].w, keys[i].len, mul);
        missed += (used[h / 64] >> (h % 64)) & 1;
        used[h / 64] |= 1ULL << (h % 64);
    }
    return missed;
}

/* Takes the first multiplier (of some thousands tried) under which every key has its own
 * first slot, or else the one with the fewest misses (which then probe on): lookups are right
 * either way. */
static void build_index(void)
{
    name_key_t keys[NAME_KEYS];
    size_t n = name_keys(keys), fewest = SIZE_MAX;
    uint64_t mul = 0x9E3779B97F4A7C15ULL, best = mul | 1;
    for (int t = 0; t < 20000 && fewest > 0; t++, mul += 0x5851F42D4C957F2EULL) {
        size_t missed = slot_misses(keys, n, mul | 1);
        if (missed < fewest) {
            fewest = missed;
            best = mul | 1;
        }
    }
    name_mul = best;
    for (size_t i = 0; i < n; i++) {
        size_t h = name_hash(keys[i].w, keys[i].len, best);
        while (name_slot[h].len)
            h = (h + 1) % NAME_SLOTS;
        name_slot[h] = (name_slot_t){{keys[i].w[0], keys[i].w[1], keys[i].w[2]},
                                     (uint32_t)keys[i].len,
                                     (uint32_t)keys[i].known};
    }
}

/* Index into known of a name of len (1..MAX_NAME_LEN) bytes at p (readable for 24), or -1 */
static inline int known_index(const uint8_t *p, size_t len)
{
    uint64_t w[3];
    fold_name(p, len, w);
    for (size_t h = name_hash(w, len, name_mul);; h = (h + 1) % NAME_SLOTS) {
        const name_slot_t *s = &name_slot[h];
        if (((s->w[0] ^ w[0]) | (s->w[1] ^ w[1]) | (s->w[2] ^ w[2])) == 0 && s->len == len)
            return (int)s->known;
        if (!s->len)
            return -1;
    }
}

/* The same for a name near the end of the input, copied out first */
static int known_index_copied(const uint8_t *p, size_t len)
{
    uint8_t buf[MAX_NAME_LEN] = {0};
    memcpy(buf, p, len);
    return known_index(buf, len);
}

const char *sipnorm_canonical_name(const char *name, size_t len)
{
    pthread_once(&index_once, build_index);
    if (len == 0 || len > MAX_NAME_LEN)
        return NULL;
    for (size_t i = 0; i < len; i++)
        if (!is_token((uint8_t)name[i]))
            return NULL; /* folding is only exact on token characters */
    int k = known_index_copied((const uint8_t *)name, len);
    return k >= 0 ? known[k].name : NULL;
}

/* How many token characters start in[i..len): 16 bytes at a time where 16 are there, so
 * that a name shorter than that costs no branch on its length. */
static inline size_t token_run(const uint8_t *in, size_t i, size_t len)
{
    size_t n = 0;
#ifdef __SSE2__
    for (; i + n + 16 <= len; n += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(in + i + n));
        __m128i lower = _mm_or_si128(x, _mm_set1_epi8(0x20)); /* letters fold; bytes >= 0x80
                                                               * stay negative, below '0' */
        __m128i t = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8('0' - 1)),
                                  _mm_cmplt_epi8(x, _mm_set1_epi8('9' + 1)));
        t = _mm_or_si128(t, _mm_and_si128(_mm_cmpgt_epi8(lower, _mm_set1_epi8('a' - 1)),
                                          _mm_cmplt_epi8(lower, _mm_set1_epi8('z' + 1))));
        static const char specials[] = "-.!%*_+`'~";
#pragma GCC unroll 10
        for (int k = 0; k < 10; k++)
            t = _mm_or_si128(t, _mm_cmpeq_epi8(x, _mm_set1_epi8(specials[k])));
        unsigned other = ~(unsigned)_mm_movemask_epi8(t) & 0xffffu;
        if (other)
            return n + (size_t)__builtin_ctz(other);
    }
#endif
    while (i + n < len && is_token(in[i + n]))
        n++;
    return n;
}

/*
 * Most header lines are a known name and a colon right after it. Such a line's name is found
 * from where its first colon is and looked up at once, without classifying its bytes: a
 * byte string that folds to a known name is all token characters, but for carriage returns
 * (0x0D folds to '-'), which the test for bytes below 0x21 keeps out with the rest. Returns
 * the name's length with its index in known in *k, or 0 when the line is not that case.
 */
static inline size_t known_name_at_colon(const uint8_t *in, size_t i, size_t len, int *k)
{
#ifdef __SSE2__
    if (i + 32 > len)
        return 0;
    __m128i a = _mm_loadu_si128((const __m128i *)(const void *)(in + i));
    __m128i b = _mm_loadu_si128((const __m128i *)(const void *)(in + i + 16));
    unsigned colon = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(a, _mm_set1_epi8(':'))) |
                     (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(b, _mm_set1_epi8(':'))) << 16;
    /* bytes below 0x21, and from 0x80 (negative to the signed compare) */
    unsigned low = (unsigned)_mm_movemask_epi8(_mm_cmplt_epi8(a, _mm_set1_epi8(0x21))) |
                   (unsigned)_mm_movemask_epi8(_mm_cmplt_epi8(b, _mm_set1_epi8(0x21))) << 16;
    if (!colon)
        return 0;
    size_t n = (size_t)__builtin_ctz(colon);
    if (n == 0 || n > MAX_NAME_LEN || (low & ((1u << n) - 1)))
        return 0;
    *k = known_index(in + i, n);
    return *k >= 0 ? n : 0;
#else
    (void)in;
    (void)i;
    (void)len;
    (void)k;
    return 0;
#endif
}

/* Index into known of the header name in[i..i+n) (token characters), or -1 */
static inline int name_index(const uint8_t *in, size_t i, size_t n, size_t len)
{
    if (n == 0 || n > MAX_NAME_LEN)
        return -1;
    return i + MAX_NAME_LEN <= len ? known_index(in + i, n) : known_index_copied(in + i, n);
}

/*
 * The normalised message to out (cap bytes); with shaped, field-shaped as well, a line at a
 * time, so that each byte is read once. norm is where the normalised message has got to, which
 * the rule of what fits is about; out's own position o is at most norm (shaping only
 * shortens), so every write of the shaped pass stays within what the plain one writes.
 */
static inline __attribute__((always_inline)) size_t normalise(const uint8_t *in, size_t len,
                                                              uint8_t *out, size_t cap, bool shaped)
{
    pthread_once(&index_once, build_index);
    size_t o = 0, i = 0, norm = 0;
    const uint8_t *nl = memchr(in, '\n', len);
    if (!nl || cap < len)
        goto unchanged;
    i = (size_t)(nl - in) + 1;
    if (shaped) {
        shape_fields_line(in, 0, len, out, &o, -1); /* the start line */
    } else {
        memcpy(out, in, i);
        o = i;
    }
    norm = i;
    while (i < len) {
        if (in[i] == '\n' || (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n'))
            break; /* blank line: body follows unchanged */
        int known_at;
        size_t n = known_name_at_colon(in, i, len, &known_at), ws = 0;
        if (!n) { /* the line byte by byte */
            n = token_run(in, i, len);
            known_at = name_index(in, i, n, len);
            while (i + n + ws < len && (in[i + n + ws] == ' ' || in[i + n + ws] == '\t'))
                ws++;
        }
        bool colon = n && i + n + ws < len && in[i + n + ws] == ':';
        int field = -1;
        if (colon && known_at >= 0) {
            size_t cl = padded_len[known_at];
            if (norm + 32 + (len - i - n) > cap)
                goto unchanged;
            memcpy(out + o, padded[known_at], 32); /* whole, so a constant-size copy */
            o += cl;
            norm += cl;
            i += n;
            field = line_field[known_at]; /* shaped only if the colon follows at once */
        } else if (colon) {
            for (size_t k = 0; k < n; k++)
                out[o + k] = (uint8_t)tolower(in[i + k]);
            o += n;
            norm += n;
            i += n;
        }
        if (norm + (len - i) + 16 > cap)
            goto unchanged; /* room for the rest of the message, as blockcopy needs */
        if (shaped) {
            size_t next = shape_fields_line(in, i, len, out, &o, field);
            norm += next - i;
            i = next;
        } else {
            i = blockcopy_through(in, i, len, out, &o, "\n", 1);
            norm = o;
        }
    }
    if (norm + (len - i) > cap)
        goto unchanged;
    if (shaped) {
        shape_fields_rest(in, i, len, out, &o);
        return o;
    }
    memcpy(out + o, in + i, len - i);
    return o + (len - i);
unchanged:
    if (cap < len)
        return 0;
    if (shaped)
        return shape_fields(in, len, out);
    memcpy(out, in, len);
    return len;
}

size_t sipnorm_headers(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    return normalise(in, len, out, cap, false);
}

size_t sipnorm_headers_shaped(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    shape_prepare();
    return normalise(in, len, out, cap, true);
}
