#include "shape.h"

#include "blockcopy.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

/* Character classes by table: shaping looks at every byte of every message. */
/* C_LETTER marks letters that are not hex digits, so a word is hex when its classes
 * include C_DIGIT and exclude C_LETTER. */
enum { C_DIGIT = 1, C_HEXLETTER = 2, C_LETTER = 4 };

static const uint8_t char_class[256] = {
    ['0'] = C_DIGIT,     ['1'] = C_DIGIT,     ['2'] = C_DIGIT,     ['3'] = C_DIGIT,
    ['4'] = C_DIGIT,     ['5'] = C_DIGIT,     ['6'] = C_DIGIT,     ['7'] = C_DIGIT,
    ['8'] = C_DIGIT,     ['9'] = C_DIGIT,     ['a'] = C_HEXLETTER, ['b'] = C_HEXLETTER,
    ['c'] = C_HEXLETTER, ['d'] = C_HEXLETTER, ['e'] = C_HEXLETTER, ['f'] = C_HEXLETTER,
    ['A'] = C_HEXLETTER, ['B'] = C_HEXLETTER, ['C'] = C_HEXLETTER, ['D'] = C_HEXLETTER,
    ['E'] = C_HEXLETTER, ['F'] = C_HEXLETTER, ['g'] = C_LETTER,    ['h'] = C_LETTER,
    ['i'] = C_LETTER,    ['j'] = C_LETTER,    ['k'] = C_LETTER,    ['l'] = C_LETTER,
    ['m'] = C_LETTER,    ['n'] = C_LETTER,    ['o'] = C_LETTER,    ['p'] = C_LETTER,
    ['q'] = C_LETTER,    ['r'] = C_LETTER,    ['s'] = C_LETTER,    ['t'] = C_LETTER,
    ['u'] = C_LETTER,    ['v'] = C_LETTER,    ['w'] = C_LETTER,    ['x'] = C_LETTER,
    ['y'] = C_LETTER,    ['z'] = C_LETTER,    ['G'] = C_LETTER,    ['H'] = C_LETTER,
    ['I'] = C_LETTER,    ['J'] = C_LETTER,    ['K'] = C_LETTER,    ['L'] = C_LETTER,
    ['M'] = C_LETTER,    ['N'] = C_LETTER,    ['O'] = C_LETTER,    ['P'] = C_LETTER,
    ['Q'] = C_LETTER,    ['R'] = C_LETTER,    ['S'] = C_LETTER,    ['T'] = C_LETTER,
    ['U'] = C_LETTER,    ['V'] = C_LETTER,    ['W'] = C_LETTER,    ['X'] = C_LETTER,
    ['Y'] = C_LETTER,    ['Z'] = C_LETTER,
};

static inline int is_digit(uint8_t c)
{
    return char_class[c] & C_DIGIT;
}

static inline int is_alnum(uint8_t c)
{
    return char_class[c] != 0;
}

static uint8_t digit_token(size_t n)
{
    return n <= 3    ? SHAPE_DIGITS_1_3
           : n <= 8  ? SHAPE_DIGITS_4_8
           : n <= 16 ? SHAPE_DIGITS_9_16
           : n <= 32 ? SHAPE_DIGITS_17_32
                     : SHAPE_DIGITS_LONG;
}

static uint8_t hex_token(size_t n)
{
    return n <= 8    ? SHAPE_HEX_1_8
           : n <= 16 ? SHAPE_HEX_9_16
           : n <= 32 ? SHAPE_HEX_17_32
                     : SHAPE_HEX_LONG;
}

/* Length of a dotted IPv4 address at in[i], or 0. */
static size_t ipv4_length(const uint8_t *in, size_t len, size_t i)
{
    size_t p = i;
    for (int group = 0; group < 4; group++) {
        size_t d = 0;
        while (p < len && is_digit(in[p]) && d < 4) {
            p++;
            d++;
        }
        if (d == 0 || d > 3)
            return 0;
        if (group < 3) {
            if (p >= len || in[p] != '.')
                return 0;
            p++;
        }
    }
    if (p < len && (is_alnum(in[p]) || (in[p] == '.' && p + 1 < len && is_digit(in[p + 1]))))
        return 0;
    return p - i;
}

/* Writes the shaped form of the word in[i..j) and returns the new output position. */
static size_t shape_word(const uint8_t *in, size_t i, size_t j, uint8_t *out, size_t o)
{
    unsigned seen = 0; /* union of the classes in the word */
    for (size_t k = i; k < j; k++)
        seen |= char_class[in[k]];
    if (seen == C_DIGIT) {
        out[o++] = digit_token(j - i);
        return o;
    }
    if ((seen & C_DIGIT) && !(seen & C_LETTER)) { /* hex digits only, at least one digit */
        out[o++] = hex_token(j - i);
        return o;
    }
    if (!(seen & C_DIGIT)) {
        memcpy(out + o, in + i, j - i);
        return o + (j - i);
    }
    for (size_t k = i; k < j;) {
        if (!is_digit(in[k])) {
            out[o++] = in[k++];
            continue;
        }
        size_t e = k;
        while (e < j && is_digit(in[e]))
            e++;
        out[o++] = digit_token(e - k);
        k = e;
    }
    return o;
}

size_t shape_apply(const uint8_t *in, size_t len, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        if (!is_alnum(in[i])) {
            out[o++] = in[i++];
            continue;
        }
        if (is_digit(in[i]) && (i == 0 || in[i - 1] != '.')) {
            size_t ip = ipv4_length(in, len, i);
            if (ip) {
                out[o++] = SHAPE_IPV4;
                i += ip;
                continue;
            }
        }
        size_t j = i;
        while (j < len && is_alnum(in[j]))
            j++;
        /* RFC 3261 branches are the magic cookie glued to a random value: keep the cookie,
         * shape the value as a word of its own. */
        if (j - i > 7 && memcmp(in + i, "z9hG4bK", 7) == 0) {
            memcpy(out + o, in + i, 7);
            o += 7;
            i += 7;
        }
        o = shape_word(in, i, j, out, o);
        i = j;
    }
    return o;
}

static uint8_t alnum_token(size_t n)
{
    return n <= 16 ? SHAPE_ALNUM_1_16 : n <= 32 ? SHAPE_ALNUM_17_32 : SHAPE_ALNUM_LONG;
}

/* A byte of no class, in the classes a value has shown */
#define C_OTHER 8

/* The token for a whole random value of n bytes whose classes were seen: digits, hex with a
 * digit, or anything else. */
static uint8_t token_of(unsigned seen, size_t n)
{
    if (seen == C_DIGIT)
        return digit_token(n);
    if ((seen & C_DIGIT) && !(seen & (C_LETTER | C_OTHER)))
        return hex_token(n);
    return alnum_token(n);
}

static inline unsigned class_of(uint8_t c)
{
    return char_class[c] | (char_class[c] ? 0 : C_OTHER);
}

/* The stop sets of field values, as tables (built once). */
enum {
    STOP_PARAM,
    STOP_QUOTED,
    STOP_CALLID,
    STOP_WORD,
    STOP_LINE,
    STOP_KEY,
    STOP_USER, /* a URI's user part, up to its '@' */
    STOP_HOST, /* a URI's or a Via's host */
    STOP_URI,  /* a request URI, up to its parameters */
    STOP_SETS
};
static const char *stop_chars[STOP_SETS] = {";,\" \t\r\n>",   "\"\r\n",        "@\r\n",
                                            " \t\r\n",        "\r\n",          "| \t\r\n",
                                            "@;:,>\" \t\r\n", ";:,>\" \t\r\n", "; \t\r\n"};
static bool stop_table[STOP_SETS][256];
static pthread_once_t stop_once = PTHREAD_ONCE_INIT;

static void build_field_slots(void);

#ifdef __SSE2__
/* The classes of the bytes of x that valid marks, as class_of() gives them. Bytes from 0x80
 * are negative to the signed compares, so they fall below '0' and count as no class. */
static inline unsigned classes16(__m128i x, unsigned valid)
{
    __m128i lower = _mm_or_si128(x, _mm_set1_epi8(0x20));
    __m128i digit = _mm_and_si128(_mm_cmpgt_epi8(x, _mm_set1_epi8('0' - 1)),
                                  _mm_cmplt_epi8(x, _mm_set1_epi8('9' + 1)));
    __m128i alpha = _mm_and_si128(_mm_cmpgt_epi8(lower, _mm_set1_epi8('a' - 1)),
                                  _mm_cmplt_epi8(lower, _mm_set1_epi8('z' + 1)));
    __m128i hex = _mm_and_si128(alpha, _mm_cmplt_epi8(lower, _mm_set1_epi8('f' + 1)));
    unsigned d = (unsigned)_mm_movemask_epi8(digit) & valid;
    unsigned a = (unsigned)_mm_movemask_epi8(alpha) & valid;
    unsigned h = (unsigned)_mm_movemask_epi8(hex) & valid;
    unsigned other = ~((unsigned)_mm_movemask_epi8(_mm_or_si128(digit, alpha))) & valid;
    return (d ? C_DIGIT : 0) | (h ? C_HEXLETTER : 0) | ((a & ~h) ? C_LETTER : 0) |
           (other ? C_OTHER : 0);
}
#endif

/*
 * Length of the value at v (up to a byte of the stop set: stops[0..ns), NUL among them), and
 * the classes of its bytes: one pass, 16 bytes at a time where 16 are there. A value's end
 * and class were two byte loops, each mispredicting its exit.
 */
static inline __attribute__((always_inline)) size_t scan_value(const uint8_t *v, size_t left,
                                                               const char *stops, int ns,
                                                               const bool stop[256],
                                                               unsigned *seen_out)
{
    size_t n = 0;
    unsigned seen = 0;
#ifdef __SSE2__
    for (; n + 16 <= left; n += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(v + n));
        unsigned hit = stops_in_block(x, stops, ns);
        unsigned valid = hit ? (1u << __builtin_ctz(hit)) - 1 : 0xffffu;
        seen |= classes16(x, valid);
        if (hit) {
            *seen_out = seen;
            return n + (size_t)__builtin_ctz(hit);
        }
    }
#else
    (void)stops;
    (void)ns;
#endif
    while (n < left && !stop[v[n]])
        seen |= class_of(v[n++]);
    *seen_out = seen;
    return n;
}

/* The stops of a URI's user part and of a host, as the SSE scans take them (NUL among them) */
static const char user_stops[] = {'@', ';', ':', ',', '>', '"', ' ', '\t', '\r', '\n', 0};
static const char host_stops[] = {';', ':', ',', '>', '"', ' ', '\t', '\r', '\n', 0};

/* Length of the value of stop set `set` at v, and its token in *token when it has one. */
static size_t shape_value(const uint8_t *v, size_t left, int set, uint8_t *token)
{
    static const char param[] = {';', ',', '"', ' ', '\t', '\r', '\n', '>', 0};
    static const char quoted[] = {'"', '\r', '\n', 0};
    static const char callid[] = {'@', '\r', '\n', 0};
    static const char word[] = {' ', '\t', '\r', '\n', 0};
    static const char line[] = {'\r', '\n', 0};
    static const char key[] = {'|', ' ', '\t', '\r', '\n', 0};
    unsigned seen;
    size_t n;
    switch (set) {
    case STOP_PARAM:
        n = scan_value(v, left, param, sizeof param, stop_table[set], &seen);
        break;
    case STOP_QUOTED:
        n = scan_value(v, left, quoted, sizeof quoted, stop_table[set], &seen);
        break;
    case STOP_CALLID:
        n = scan_value(v, left, callid, sizeof callid, stop_table[set], &seen);
        break;
    case STOP_LINE:
        n = scan_value(v, left, line, sizeof line, stop_table[set], &seen);
        break;
    case STOP_KEY:
        n = scan_value(v, left, key, sizeof key, stop_table[set], &seen);
        break;
    default:
        n = scan_value(v, left, word, sizeof word, stop_table[STOP_WORD], &seen);
        break;
    }
    *token = token_of(seen, n);
    return n;
}

/* Where the value of stop set STOP_USER, STOP_HOST or STOP_URI at v ends: scan_value without the
 * classes, for values shaped only when their end shows they must be (shape_uri) */
static size_t value_end(const uint8_t *v, size_t left, int set)
{
    static const char uri_stops[] = {';', ' ', '\t', '\r', '\n', 0};
    size_t n = 0;
#ifdef __SSE2__
    for (; n + 16 <= left; n += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(v + n));
        unsigned hit = set == STOP_USER   ? stops_in_block(x, user_stops, sizeof user_stops)
                       : set == STOP_HOST ? stops_in_block(x, host_stops, sizeof host_stops)
                                          : stops_in_block(x, uri_stops, sizeof uri_stops);
        if (hit)
            return n + (size_t)__builtin_ctz(hit);
    }
#endif
    while (n < left && !stop_table[set][v[n]])
        n++;
    return n;
}

/* The tables shaping reads, built once. */
static void build_stop_tables(void)
{
    for (int k = 0; k < STOP_SETS; k++) {
        stop_table[k][0] = true;
        for (const char *c = stop_chars[k]; *c; c++)
            stop_table[k][(uint8_t)*c] = true;
    }
    build_field_slots();
}

static int starts_with_ci(const uint8_t *p, size_t left, const char *word, size_t n)
{
    if (left < n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((p[i] | 0x20) != (word[i] | 0x20))
            return 0;
    return 1;
}

/* Values a function of their own shapes, named where a field's stop set would be */
enum { VALUE_VIA = STOP_SETS, VALUE_URI, VALUE_RPORT };

typedef struct {
    const char *name; /* what precedes the value */
    size_t len;       /* of name */
    int line_start;   /* only at the start of a line */
    int stops;        /* STOP_* set that ends the value, or a VALUE_* */
    const char *lead; /* when set, the value is shaped only after this, kept as it is */
} field_t;

#define FIELD(name, line_start, stops)                                                             \
    {                                                                                              \
        name, sizeof name - 1, line_start, stops, NULL                                             \
    }
#define FIELD_AFTER(name, lead, stops)                                                             \
    {                                                                                              \
        name, sizeof name - 1, 1, stops, lead                                                      \
    }

/* Where random values stand. */
static const field_t fields[] = {
    FIELD("branch=z9hG4bK", 0, STOP_PARAM),
    FIELD("tag=", 0, STOP_PARAM),
    /* Kamailio's and OpenSIPS's Record-Route: the From tag again (rr), and the dialog
     * module's id of the dialog; both are new with every dialog */
    FIELD("ftag=", 0, STOP_PARAM),
    FIELD("did=", 0, STOP_PARAM),
    FIELD("cnonce=\"", 0, STOP_QUOTED),
    FIELD("nonce=\"", 0, STOP_QUOTED),
    FIELD("response=\"", 0, STOP_QUOTED),
    FIELD("opaque=\"", 0, STOP_QUOTED),
    FIELD("Call-ID:", 1, STOP_CALLID),
    FIELD("CSeq:", 1, STOP_WORD),
    /* derived, not random, but it changes with every shaped-away value in the body */
    FIELD("Content-Length:", 1, STOP_WORD),
    /* IMS: the charging id of a session (RFC 3455), new with every one */
    FIELD_AFTER("P-Charging-Vector:", "icid-value=", STOP_PARAM),
    /* the time of sending, as one token: a day's model would otherwise know its weekday,
     * hours and minutes, and the next day's messages would be new in them */
    FIELD("Date:", 1, STOP_LINE),
    /* RFC 7989: the end-to-end session identifier, a UUID from each end, new every session */
    FIELD("Session-ID:", 1, STOP_PARAM),
    FIELD("remote=", 0, STOP_PARAM),
    /* IMS (TS 33.203): the security associations' indexes in Security-Client, -Server and
     * -Verify, chosen anew at every registration (the protected ports stay, as ports do) */
    FIELD("spi-c=", 0, STOP_PARAM),
    FIELD("spi-s=", 0, STOP_PARAM),
    /* the port a connection's client writes in its Via (shape_via); and RFC 7118: a WebSocket
     * client, which cannot know its own address, writes a random host name under the reserved
     * .invalid domain in its Via, and in its Contact with a random user (SIP.js and JsSIP: new
     * with every page load) */
    FIELD("Via:", 1, VALUE_VIA),
    /* RFC 3581: the source port a proxy saw the request come from, which it adds to the
     * client's Via (shape_rport) */
    FIELD("rport=", 0, VALUE_RPORT),
    FIELD("Contact:", 1, VALUE_URI),
};

/* Shapes the value at in[p] of stop set `stops` to one token; returns where the input goes on. */
static size_t shape_token_at(const uint8_t *in, size_t len, size_t p, uint8_t *out, size_t *o,
                             int stops)
{
    uint8_t token;
    size_t n = shape_value(in + p, len - p, stops, &token);
    if (n) {
        out[(*o)++] = token;
        p += n;
    }
    return p;
}

/* SDP o= line: username SP sess-id SP sess-version: shape the two numbers. */
static size_t shape_sdp_origin(const uint8_t *in, size_t len, size_t i, uint8_t *out, size_t *o)
{
    size_t p = i + 2;
    while (p < len && in[p] != ' ' && in[p] != '\n') /* username stays */
        out[(*o)++] = in[p++];
    for (int field = 0; field < 2 && p < len && in[p] == ' '; field++) {
        out[(*o)++] = in[p++];
        p = shape_token_at(in, len, p, out, o, STOP_WORD);
    }
    return p;
}

/* Copies the n bytes of word at in[p] when they are there; returns where the input goes on, or
 * p when they are not. */
static size_t copy_word(const uint8_t *in, size_t len, size_t p, uint8_t *out, size_t *o,
                        const char *word, size_t n)
{
    if (len - p < n || memcmp(in + p, word, n) != 0)
        return p;
    memcpy(out + *o, in + p, n);
    *o += n;
    return p + n;
}

/* SDP m= line: media SP port: the port (of any media: audio, video, image for T.38 fax, ...) is
 * chosen per call. */
static size_t shape_sdp_media(const uint8_t *in, size_t len, size_t i, uint8_t *out, size_t *o)
{
    size_t p = i + 2, end = p + 16 < len ? p + 16 : len; /* media names are short tokens */
    while (p < end && in[p] != ' ' && in[p] != '\r' && in[p] != '\n')
        p++;
    if (p == end || in[p] != ' ' || p == i + 2)
        return i;
    memcpy(out + *o, in + i, p + 1 - i);
    *o += p + 1 - i;
    return shape_token_at(in, len, p + 1, out, o, STOP_WORD);
}

static bool at_line_end(const uint8_t *in, size_t len, size_t p)
{
    return p >= len || in[p] == '\r' || in[p] == '\n';
}

/* Copies the blanks at in[p]; returns where the input goes on. */
static size_t copy_blanks(const uint8_t *in, size_t len, size_t p, uint8_t *out, size_t *o)
{
    while (p < len && (in[p] == ' ' || in[p] == '\t'))
        out[(*o)++] = in[p++];
    return p;
}

/* Whether the host of n bytes at h is a name under the reserved .invalid domain (RFC 6761) */
static bool under_invalid(const uint8_t *h, size_t n)
{
    return n > 8 && starts_with_ci(h + n - 8, 8, ".invalid", 8);
}

/* The token of the n bytes at v, none of them a stop of a host (so none of a word's) */
static uint8_t token_within_host(const uint8_t *v, size_t n)
{
    uint8_t token;
    shape_value(v, n, STOP_WORD, &token);
    return token;
}

/* Writes the host of n bytes at in[p], a name under .invalid: its label (what precedes the
 * domain) one token, the domain kept. Returns where the input goes on. */
static size_t shape_invalid_host(const uint8_t *in, size_t p, size_t n, uint8_t *out, size_t *o)
{
    out[(*o)++] = token_within_host(in + p, n - 8);
    memcpy(out + *o, in + p + n - 8, 8);
    *o += 8;
    return p + n;
}

/* The digits of the port after the host that ends at in[at] (0 when no ':' and digit follow) */
static size_t port_digits(const uint8_t *in, size_t len, size_t at)
{
    size_t n = 0;
    if (at < len && in[at] == ':')
        while (at + 1 + n < len && is_digit(in[at + 1 + n]))
            n++;
    return n;
}

/* Whether the n digits at p are one of SIP's default ports, 5060 and 5061 (RFC 3261). Most
 * clients listen there, and a message that carries one shares its n-grams with every other
 * client's, so such a port stays where another would be shaped. */
static bool default_sip_port(const uint8_t *p, size_t n)
{
    return n == 4 && memcmp(p, "506", 3) == 0 && (p[3] == '0' || p[3] == '1');
}

/* Writes the host of hn bytes at in[h] and its port of n digits after it, the port one token
 * unless it is a default one. Returns where the input goes on. */
static size_t write_host_and_port(const uint8_t *in, size_t h, size_t hn, size_t n, uint8_t *out,
                                  size_t *o)
{
    memcpy(out + *o, in + h, hn);
    *o += hn;
    if (!n)
        return h + hn;
    out[(*o)++] = ':';
    if (default_sip_port(in + h + hn + 1, n)) {
        memcpy(out + *o, in + h + hn + 1, n);
        *o += n;
    } else {
        out[(*o)++] = digit_token(n);
    }
    return h + hn + 1 + n;
}

/* RFC 3581's rport=VALUE: the source port a proxy saw the request come from, which it adds to
 * the client's Via: a NAT's mapping or a connection's port, new with each; a default port (a
 * phone with no NAT between) stays. Returns where the input goes on, or i. */
static size_t shape_rport(const uint8_t *in, size_t len, size_t i, uint8_t *out, size_t *o)
{
    size_t n = 0;
    while (i + n < len && is_digit(in[i + n]))
        n++;
    if (default_sip_port(in + i, n) && (i + n >= len || stop_table[STOP_PARAM][in[i + n]]))
        return i;
    return shape_token_at(in, len, i, out, o, STOP_PARAM);
}

/* Whether the n bytes at t name a transport over connections (TCP, TLS, WS, WSS, SCTP,
 * TLS-SCTP), and whether it is WebSocket's. */
static bool connection_transport(const uint8_t *t, size_t n, bool *websocket)
{
    *websocket =
        n >= 2 && n <= 3 && starts_with_ci(t, 2, "ws", 2) && (n == 2 || (t[2] | 0x20) == 's');
    if (*websocket)
        return true;
    switch (n) { /* by length first: a Via's transport is looked at in every Via line */
    case 3:
        return starts_with_ci(t, 3, "tcp", 3) || starts_with_ci(t, 3, "tls", 3);
    case 4:
        return starts_with_ci(t, 4, "sctp", 4);
    case 8:
        return starts_with_ci(t, 8, "tls-sctp", 8);
    default:
        return false;
    }
}

/* Length of the host at h: an IPv6 reference ([...]) or up to a host's stop; 0 for a '[' that
 * no ']' closes within the longest IPv6 reference. */
static size_t host_length(const uint8_t *in, size_t len, size_t h)
{
    if (h >= len || in[h] != '[')
        return value_end(in + h, len - h, STOP_HOST);
    for (size_t e = h + 1; e < len && e - h <= 48; e++) {
        if (in[e] == ']')
            return e + 1 - h;
        if (in[e] != ':' && in[e] != '.' && !is_alnum(in[e]))
            return 0;
    }
    return 0;
}

/*
 * Via: SIP/2.0/TRANSPORT HOST[:PORT]: over a connection the port is often the connection's own,
 * new with each one (PJSIP's clients write it; a listening port looks no different in the Via),
 * so it is shaped for TCP, TLS, WS, WSS and SCTP unless it is one of SIP's defaults; over UDP it
 * is the port the phone listens on, and stays. A WebSocket client's host under .invalid (RFC 7118:
 * SIP.js and JsSIP make it up at every page load) is shaped too; every other host is a real one,
 * and stays. Returns where the input goes on, or i.
 */
static size_t shape_via(const uint8_t *in, size_t len, size_t i, uint8_t *out, size_t *o)
{
    uint64_t proto, want;
    if (len - i < 11)
        return i;
    /* SIP/2.0/ in one compare, case aside: each byte of "sip/2.0/" has bit 5 set */
    memcpy(&proto, in + i, 8);
    memcpy(&want, "sip/2.0/", 8);
    if ((proto | 0x2020202020202020ULL) != want || (in[i + 8] | 0x20) == 'u')
        return i;
    size_t t = i + 8, h = t;
    while (h < len && h - t < 8 && (is_alnum(in[h]) || in[h] == '-'))
        h++;
    bool websocket;
    if (!connection_transport(in + t, h - t, &websocket) || h >= len ||
        (in[h] != ' ' && in[h] != '\t'))
        return i;
    while (h < len && (in[h] == ' ' || in[h] == '\t'))
        h++;
    size_t n = host_length(in, len, h);
    if (n == 0)
        return i;
    size_t port = port_digits(in, len, h + n);
    bool invalid = websocket && under_invalid(in + h, n);
    if (!invalid && (!port || default_sip_port(in + h + n + 1, port)))
        return i;
    memcpy(out + *o, in + i, h - i);
    *o += h - i;
    if (!invalid)
        return write_host_and_port(in, h, n, port, out, o);
    size_t p = shape_invalid_host(in, h, n, out, o);
    return port ? write_host_and_port(in, p, 0, port, out, o) : p;
}

/* What the URI parameters at in[q] (each ;NAME[=VALUE], up to the URI's end) say of its
 * transport. */
enum { URI_OTHER, URI_WEBSOCKET, URI_CONNECTION };
static int uri_transport(const uint8_t *in, size_t len, size_t q)
{
    while (q < len && in[q] == ';') {
        q++;
        if (starts_with_ci(in + q, len - q, "transport=", 10)) {
            size_t v = q + 10;
            bool websocket;
            if (!connection_transport(in + v, value_end(in + v, len - v, STOP_HOST), &websocket))
                return URI_OTHER;
            return websocket ? URI_WEBSOCKET : URI_CONNECTION;
        }
        q += value_end(in + q, len - q, STOP_HOST);
    }
    return URI_OTHER;
}

/* Where the '<' after the display name at in[i] is (RFC 3261's name-addr: a quoted string or
 * words, then blanks), or i when no display name and '<' are there. */
#define DISPLAY_NAME_MAX 256
static size_t past_display_name(const uint8_t *in, size_t len, size_t i)
{
    static const char word_marks[] = "-.!%*_+`'~ \t"; /* RFC 3261 token characters, blanks */
    size_t p = i, end = len - i > DISPLAY_NAME_MAX ? i + DISPLAY_NAME_MAX : len;
    if (p < end && in[p] == '"') {
        for (p++; p < end && in[p] != '"'; p++) {
            if (in[p] == '\r' || in[p] == '\n')
                return i;
            p += in[p] == '\\'; /* a quoted pair: the next byte is the name's */
        }
        if (p >= end)
            return i;
        for (p++; p < end && (in[p] == ' ' || in[p] == '\t');)
            p++;
    } else {
        while (p < end && in[p] && (is_alnum(in[p]) || strchr(word_marks, in[p])))
            p++;
    }
    return p < end && in[p] == '<' ? p : i;
}

/*
 * sip:[USER@]HOST[:PORT][;PARAMS] at in[p], a Contact's or a request's (in[i..p) the display
 * name and '<' before a Contact's, kept as they are): what a client draws for it. A WebSocket
 * client (RFC 7118; SIP.js and JsSIP, at every page load) draws the user, and the host when it
 * is made up under .invalid; a proxy that fixed the Contact for NAT (Kamailio's and OpenSIPS's
 * fix_nated_contact) put the client's address and the port of its connection there instead,
 * and kept the user and transport=ws: then the user and that port are shaped. A client over TCP,
 * TLS or SCTP (PJSIP's) writes its connection's port with transport=tcp|tls|sctp: the port is
 * shaped, the user (an account) stays. Ports are shaped unless they are SIP's defaults, and
 * addresses stay, as addresses do. In-dialog requests go to the Contact, so a request's URI is
 * shaped alike. Returns where the input goes on, or i.
 */
static size_t shape_uri_at(const uint8_t *in, size_t len, size_t i, size_t p, uint8_t *out,
                           size_t *o)
{
    size_t scheme = starts_with_ci(in + p, len - p, "sip:", 4)    ? 4
                    : starts_with_ci(in + p, len - p, "sips:", 5) ? 5
                                                                  : 0;
    if (!scheme)
        return i;
    p += scheme;
    size_t u = value_end(in + p, len - p, STOP_USER);
    bool user = u > 0 && p + u < len && in[p + u] == '@';
    size_t h = user ? p + u + 1 : p, hn = host_length(in, len, h), port = 0;
    if (hn == 0)
        return i;
    bool invalid = user && under_invalid(in + h, hn);
    int transport = URI_OTHER;
    if (!invalid) {
        port = port_digits(in, len, h + hn);
        transport = uri_transport(in, len, h + hn + (port ? 1 + port : 0));
    }
    bool shape_user = user && (invalid || transport == URI_WEBSOCKET);
    bool shape_port = port && transport != URI_OTHER && !default_sip_port(in + h + hn + 1, port);
    if (!shape_user && !shape_port)
        return i;
    size_t kept = shape_user ? p : h;
    memcpy(out + *o, in + i, kept - i);
    *o += kept - i;
    if (shape_user) { /* the user: no stop of a user within u */
        out[(*o)++] = token_within_host(in + p, u);
        out[(*o)++] = '@';
    }
    if (invalid)
        return shape_invalid_host(in, h, hn, out, o);
    return write_host_and_port(in, h, hn, port, out, o);
}

/* The URI of a Contact's value at in[i], past its display name and '<' */
static size_t shape_uri(const uint8_t *in, size_t len, size_t i, uint8_t *out, size_t *o)
{
    size_t d = past_display_name(in, len, i), p = d + (d < len && in[d] == '<');
    return shape_uri_at(in, len, i, p, out, o);
}

/* A request's URI (METHOD SP Request-URI SP SIP-Version, at in[0]) as shape_uri_at shapes it.
 * Returns where the input goes on, or 0 when the line is no such request or nothing in its URI
 * is shaped. */
static size_t shape_request_uri(const uint8_t *in, size_t len, uint8_t *out, size_t *o)
{
    size_t m = 0;
    while (m < len && m < 32 && (is_alnum(in[m]) || in[m] == '-'))
        m++;
    if (m == 0 || m + 1 >= len || in[m] != ' ')
        return 0;
    /* only a URI with parameters can say its transport: most (sip:bob@example.com) have none,
     * and a request line is every other message, so they are passed over at one scan. (A
     * WebSocket client's Contact, where in-dialog requests go, always says transport=ws.) */
    size_t u = m + 1, n = value_end(in + u, len - u, STOP_URI);
    if (u + n >= len || in[u + n] != ';')
        return 0;
    size_t at = *o;
    memcpy(out + at, in, u);
    *o += u;
    size_t p = shape_uri_at(in, len, u, u, out, o);
    if (p > u)
        return p;
    *o = at;
    return 0;
}

/* Where the word at in[p] ends (a blank, a line end or NUL). */
static size_t word_end(const uint8_t *in, size_t len, size_t p)
{
    while (p < len && in[p] != ' ' && in[p] != '\t' && in[p] != '\r' && in[p] != '\n' && in[p])
        p++;
    return p;
}

/* Copies the word at in[p] and the blanks after it; returns where the input goes on. */
static size_t copy_word_at(const uint8_t *in, size_t len, size_t p, uint8_t *out, size_t *o)
{
    size_t end = word_end(in, len, p);
    memcpy(out + *o, in + p, end - p);
    *o += end - p;
    return copy_blanks(in, len, end, out, o);
}

/* Shapes the word at in[p] (copies its first byte when it has no value, a NUL) and copies the
 * blanks after it; returns where the input goes on, always past p. */
static size_t shape_word_at(const uint8_t *in, size_t len, size_t p, uint8_t *out, size_t *o)
{
    size_t q = shape_token_at(in, len, p, out, o, STOP_WORD);
    if (q == p)
        out[(*o)++] = in[q++];
    return copy_blanks(in, len, q, out, o);
}

/* Shapes every word from in[p] to the line's end. */
static size_t shape_words(const uint8_t *in, size_t len, size_t p, uint8_t *out, size_t *o)
{
    p = copy_blanks(in, len, p, out, o);
    while (!at_line_end(in, len, p))
        p = shape_word_at(in, len, p, out, o);
    return p;
}

/* a=ssrc:ID ATTRIBUTE:VALUE...: the source id, and every word of the value (a CNAME, a
 * WebRTC msid's two ids, a label), all chosen per call (RFC 5576, RFC 8830). */
static size_t shape_ssrc(const uint8_t *in, size_t len, size_t p, uint8_t *out, size_t *o)
{
    p = shape_token_at(in, len, p, out, o, STOP_WORD);
    if (p >= len || in[p] != ' ')
        return p;
    out[(*o)++] = in[p++];
    size_t end = word_end(in, len, p), colon = p;
    while (colon < end && in[colon] != ':')
        colon++;
    if (colon == end) /* no attribute:value */
        return p;
    memcpy(out + *o, in + p, colon + 1 - p);
    *o += colon + 1 - p;
    return shape_words(in, len, colon + 1, out, o);
}

/*
 * a=candidate:FOUNDATION COMPONENT TRANSPORT PRIORITY ADDRESS PORT typ TYPE [NAME VALUE]...
 * (RFC 8839): the foundation, the priority and the port change with every call and every
 * network; so do a browser's mDNS host names (a UUID under .local) and the rport and ufrag
 * values. The component, transport, type and a plain address stay, as addresses do.
 */
static size_t shape_candidate(const uint8_t *in, size_t len, size_t p, uint8_t *out, size_t *o)
{
    bool shape_next = false; /* the word is the value of rport or ufrag */
    for (int word = 1; !at_line_end(in, len, p); word++) {
        size_t end = word_end(in, len, p);
        bool mdns = word == 5 && end - p > 6 && memcmp(in + end - 6, ".local", 6) == 0;
        if (word == 1 || word == 4 || word == 6 || mdns || shape_next) {
            p = shape_word_at(in, len, p, out, o);
            shape_next = false;
            continue;
        }
        shape_next = word > 8 && word % 2 == 1 &&
                     ((end - p == 5 && memcmp(in + p, "rport", 5) == 0) ||
                      (end - p == 5 && memcmp(in + p, "ufrag", 5) == 0));
        p = copy_word_at(in, len, p, out, o);
        if (p == end && !at_line_end(in, len, p)) /* a NUL: copied as a byte */
            out[(*o)++] = in[p++];
    }
    return p;
}

/* a=crypto:TAG SUITE inline:KEY|LIFETIME|MKI (RFC 4568): the key; the suite stays. */
static size_t shape_crypto(const uint8_t *in, size_t len, size_t p, uint8_t *out, size_t *o)
{
    while (p < len && in[p] != '\n') {
        size_t q = copy_word(in, len, p, out, o, "inline:", 7);
        if (q > p)
            return shape_token_at(in, len, q, out, o, STOP_KEY);
        out[(*o)++] = in[p++];
    }
    return p;
}

/*
 * SDP a= lines whose values are chosen per call or per session: the RTCP port (RFC 3605, the
 * media port's neighbour), ICE's credentials and candidates (RFC 8839), the RTP source ids
 * with their attributes and groups (RFC 5576), WebRTC's media stream ids (RFC 8830), the DTLS
 * certificate's fingerprint (RFC 8122: browsers make a certificate per connection) and an SDES
 * key (RFC 4568). Returns where the input goes on, or i when the line is none of those.
 */
enum {
    A_ONE,       /* one value */
    A_WORDS,     /* every word */
    A_AFTER_ONE, /* every word after the first (a hash name, a group's or a semantic's name) */
    A_SSRC,
    A_CANDIDATE,
    A_CRYPTO
};
static size_t shape_sdp_attribute(const uint8_t *in, size_t len, size_t i, uint8_t *out, size_t *o)
{
    static const struct {
        const char *name;
        size_t len;
        int kind;
    } attrs[] = {
        {"a=rtcp:", 7, A_ONE},
        {"a=ice-ufrag:", 12, A_ONE},
        {"a=ice-pwd:", 10, A_ONE},
        {"a=candidate:", 12, A_CANDIDATE},
        {"a=ssrc:", 7, A_SSRC},
        {"a=ssrc-group:", 13, A_AFTER_ONE},
        {"a=msid:", 7, A_WORDS},
        {"a=msid-semantic:", 16, A_AFTER_ONE},
        {"a=fingerprint:", 14, A_AFTER_ONE},
        {"a=crypto:", 9, A_CRYPTO},
    };
    for (size_t k = 0; k < sizeof attrs / sizeof *attrs; k++) {
        size_t p = copy_word(in, len, i, out, o, attrs[k].name, attrs[k].len);
        if (p == i)
            continue;
        switch (attrs[k].kind) {
        case A_ONE:
            return shape_token_at(in, len, p, out, o, STOP_WORD);
        case A_WORDS:
            return shape_words(in, len, p, out, o);
        case A_AFTER_ONE:
            p = copy_blanks(in, len, p, out, o);
            return at_line_end(in, len, p)
                       ? p
                       : shape_words(in, len, copy_word_at(in, len, p, out, o), out, o);
        case A_SSRC:
            return shape_ssrc(in, len, p, out, o);
        case A_CANDIDATE:
            return shape_candidate(in, len, p, out, o);
        default:
            return shape_crypto(in, len, p, out, o);
        }
    }
    return i;
}

/*
 * Where shaping may have work: a field or an SDP line can only begin after one of these bytes
 * (or at the very start), and only with one of the letters below (case aside: the first
 * letters of the field names, and o and m of the SDP lines). Such a place is a candidate;
 * everything between candidates is copied as it is.
 */
#define SEPARATORS "; ,\t\n"
static const bool separator_before[256] = {[';'] = true, [' '] = true, [','] = true, ['\t'] = true};
/* compared with bit 5 set, as field_at folds case */
static const bool first_letter[256] = {
    ['b'] = true, ['c'] = true, ['d'] = true, ['f'] = true, ['m'] = true, ['n'] = true,
    ['o'] = true, ['p'] = true, ['r'] = true, ['s'] = true, ['t'] = true, ['v'] = true};

#ifdef __SSE2__
/* Bit k set when byte k of x, with bit 5 set, is one of the first letters above: the runs
 * b-d, m-p and r-t as ranges and f and v alone, 15 operations where a compare per letter took 23
 * (bytes from 0x80 are negative to the signed compares, below every range). */
static inline unsigned first_letters_in_block(__m128i x)
{
    __m128i l = _mm_or_si128(x, _mm_set1_epi8(0x20));
    __m128i bd = _mm_and_si128(_mm_cmpgt_epi8(l, _mm_set1_epi8('b' - 1)),
                               _mm_cmplt_epi8(l, _mm_set1_epi8('d' + 1)));
    __m128i mp = _mm_and_si128(_mm_cmpgt_epi8(l, _mm_set1_epi8('m' - 1)),
                               _mm_cmplt_epi8(l, _mm_set1_epi8('p' + 1)));
    __m128i rt = _mm_and_si128(_mm_cmpgt_epi8(l, _mm_set1_epi8('r' - 1)),
                               _mm_cmplt_epi8(l, _mm_set1_epi8('t' + 1)));
    __m128i fv =
        _mm_or_si128(_mm_cmpeq_epi8(l, _mm_set1_epi8('f')), _mm_cmpeq_epi8(l, _mm_set1_epi8('v')));
    return (unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(bd, mp), _mm_or_si128(rt, fv)));
}
#endif

/* An SDP attribute line (a=) is a candidate at a line start only: 'a' begins too many words
 * elsewhere. */
static inline bool is_candidate(const uint8_t *in, size_t i)
{
    bool line_start = i == 0 || in[i - 1] == '\n';
    bool after = line_start || separator_before[in[i - 1]];
    return (after && first_letter[in[i] | 0x20]) || (line_start && in[i] == 'a');
}

/*
 * Copies in[i..] to out + *o up to the next candidate at or after i (or to len) and returns
 * where that is; with or_line, up to the next line start after i if that comes first.
 * Sixteen bytes at a time: each block is stored as it is tested, and a candidate needs a
 * separator in the block loaded one byte earlier and a first letter in the block itself, so
 * a block without one costs no branch but the loop's. Copying the runs between separators one
 * by one mispredicted at the end of most runs, some fifty a message. A whole block is written
 * only where 16 input bytes are left, and the output never gains on the input, so nothing is
 * written past *o + (len - i) as it was when shaping began.
 */
static inline __attribute__((always_inline)) size_t
copy_to_candidate(const uint8_t *in, size_t i, size_t len, uint8_t *out, size_t *o, bool or_line)
{
    size_t to = *o; /* in a register: a store to out might otherwise change *o */
    if (i == 0 && len > 0) {
        if (is_candidate(in, 0))
            return 0;
        out[to++] = in[i++]; /* the block loop reads the byte before its block */
    }
#ifdef __SSE2__
    for (; i + 16 <= len; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(in + i));
        __m128i before = _mm_loadu_si128((const __m128i *)(const void *)(in + i - 1));
        _mm_storeu_si128((__m128i *)(void *)(out + to), x);
        unsigned line = stops_in_block(before, "\n", 1);
        unsigned attr = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8('a')));
        unsigned bits = (stops_in_block(before, SEPARATORS, sizeof SEPARATORS - 1) &
                         first_letters_in_block(x)) |
                        (line & attr);
        if (or_line)
            bits |= line;
        if (bits) {
            size_t at = (size_t)__builtin_ctz(bits);
            *o = to + at;
            return i + at;
        }
        to += 16;
    }
#endif
    for (; i < len; i++) {
        if (is_candidate(in, i) || (or_line && i > 0 && in[i - 1] == '\n'))
            break;
        out[to++] = in[i];
    }
    *o = to;
    return i;
}

#define NFIELDS (sizeof fields / sizeof fields[0])

/* The fields by the first four bytes of their names, lower-cased as starts_with_ci compares: a
 * perfect hash of those keys into 32 slots, so that finding whether a field starts at a
 * separator is one load and one comparison, a branch that is almost never taken. A compare tree
 * here mispredicted about 20 times per message. Every byte of a key has bit 5 set, so no key is
 * 0, the empty slot. Names that share their first four bytes (spi-c=, spi-s=) share a slot,
 * the later ones chained from the first by same_key. */
#define FIELD_SLOTS 32
static struct {
    uint32_t key;
    uint32_t field;
} field_slot[FIELD_SLOTS];
static int8_t same_key[sizeof fields / sizeof fields[0]]; /* the next field of a key, or -1 */
static uint32_t field_mul;
/* Each field's name with bit 5 set in every byte, zero-padded, for a compare of 16 bytes (a
 * longer name is compared byte by byte) */
static uint8_t field_folded[sizeof fields / sizeof fields[0]][32];

static inline uint32_t lower_four(const uint8_t *p)
{
    uint32_t x;
    memcpy(&x, p, 4);
    return x | 0x20202020u;
}

static inline uint32_t field_slot_of(uint32_t key)
{
    return (key * field_mul) >> 27;
}

static void build_field_slots(void)
{
    for (size_t k = 0; k < NFIELDS; k++)
        for (size_t i = 0; i < fields[k].len; i++)
            field_folded[k][i] = (uint8_t)(fields[k].name[i] | 0x20);
    /* odd multipliers from a fixed start until one separates the keys (671 tries for today's
     * 18 keys: some microseconds, once) */
    for (field_mul = 0x9E3779B1u;; field_mul += 2) {
        memset(field_slot, 0, sizeof field_slot);
        memset(same_key, -1, sizeof same_key);
        size_t k = 0;
        for (; k < NFIELDS; k++) {
            uint32_t key = lower_four((const uint8_t *)fields[k].name), h = field_slot_of(key);
            if (field_slot[h].key == key) { /* a name sharing the key: at the chain's end */
                uint32_t last = field_slot[h].field;
                while (same_key[last] >= 0)
                    last = (uint32_t)same_key[last];
                same_key[last] = (int8_t)k;
                continue;
            }
            if (field_slot[h].key)
                break;
            field_slot[h].key = key;
            field_slot[h].field = (uint32_t)k;
        }
        if (k == NFIELDS)
            return;
    }
}

/* Whether field f's whole name starts at p (left bytes; the first four are known to match). */
static bool field_name_at(const field_t *f, const uint8_t *p, size_t left)
{
#ifdef __SSE2__
    if (left >= 16 && f->len <= 16) { /* the whole name in one compare: no loop to mispredict */
        __m128i x =
            _mm_or_si128(_mm_loadu_si128((const __m128i *)(const void *)p), _mm_set1_epi8(0x20));
        __m128i name = _mm_loadu_si128((const __m128i *)(const void *)field_folded[f - fields]);
        unsigned same = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, name)),
                 want = (1u << f->len) - 1;
        return (same & want) == want;
    }
#endif
    return starts_with_ci(p, left, f->name, f->len);
}

/* The field whose name starts at p, or NULL. */
static const field_t *field_at(const uint8_t *p, size_t left, int line_start)
{
    if (left < 4)
        return NULL;
    uint32_t key = lower_four(p), h = field_slot_of(key);
    if (field_slot[h].key != key)
        return NULL;
    for (int k = (int)field_slot[h].field; k >= 0; k = same_key[k]) {
        const field_t *f = &fields[k];
        if ((line_start || !f->line_start) && field_name_at(f, p, left))
            return f;
    }
    return NULL;
}

/* Copies whatever blanks follow a line field's name, then shapes its value at in[i]; returns
 * where the input goes on. */
static size_t shape_field_value(const field_t *f, const uint8_t *in, size_t len, size_t i,
                                uint8_t *out, size_t *o)
{
    while (f->line_start && i < len && (in[i] == ' ' || in[i] == '\t'))
        out[(*o)++] = in[i++];
    int stops = f->stops;
    if (f->lead) { /* the value starts with the lead, or is not the field's after all */
        size_t n = strlen(f->lead);
        if (!starts_with_ci(in + i, len - i, f->lead, n))
            return i;
        memcpy(out + *o, in + i, n);
        *o += n;
        i += n;
        if (i < len && in[i] == '"') { /* a quoted value: up to the closing quote */
            out[(*o)++] = in[i++];
            stops = STOP_QUOTED;
        }
    }
    if (stops == VALUE_VIA)
        return shape_via(in, len, i, out, o);
    if (stops == VALUE_URI)
        return shape_uri(in, len, i, out, o);
    if (stops == VALUE_RPORT)
        return shape_rport(in, len, i, out, o);
    return shape_token_at(in, len, i, out, o, stops);
}

/*
 * Shapes what starts at candidate i, a line start when line_start: an SDP o=, m= or a= line,
 * or a field. Returns where the input goes on, or i when nothing starts there.
 */
static size_t shape_at(const uint8_t *in, size_t len, size_t i, uint8_t *out, size_t *o,
                       bool line_start)
{
    bool sdp_line = line_start && i + 2 < len && in[i + 1] == '=';
    if (sdp_line && in[i] == 'o') {
        out[(*o)++] = in[i];
        out[(*o)++] = in[i + 1];
        return shape_sdp_origin(in, len, i, out, o);
    }
    if (sdp_line && in[i] == 'm')
        return shape_sdp_media(in, len, i, out, o);
    if (sdp_line && in[i] == 'a')
        return shape_sdp_attribute(in, len, i, out, o);
    const field_t *f = field_at(in + i, len - i, line_start);
    if (!f)
        return i;
    size_t nl = f->len;
    if (nl <= 16 && i + 16 <= len) /* not past *o + (len - i): see copy_to_candidate */
        memcpy(out + *o, in + i, 16);
    else
        memcpy(out + *o, in + i, nl);
    *o += nl;
    return shape_field_value(f, in, len, i + nl, out, o);
}

/* Whether a field's name may start at p (left bytes): its first four bytes are one's. */
static inline bool field_may_start(const uint8_t *p, size_t left)
{
    if (left < 4)
        return false;
    uint32_t key = lower_four(p);
    return field_slot[field_slot_of(key)].key == key;
}

/* Shapes what starts at candidate i, or copies its byte when nothing does; returns where the
 * input goes on (past i either way). Within a line only a field can start, and most
 * candidates are none: those are turned away here, without the call. */
static inline size_t shape_or_copy(const uint8_t *in, size_t len, size_t i, uint8_t *out, size_t *o,
                                   bool line_start)
{
    if (line_start || field_may_start(in + i, len - i)) {
        size_t next = shape_at(in, len, i, out, o, line_start);
        if (next > i)
            return next;
    }
    out[(*o)++] = in[i]; /* nothing starts here after all: the byte stays */
    return i + 1;
}

void shape_prepare(void)
{
    pthread_once(&stop_once, build_stop_tables);
}

size_t shape_fields_rest(const uint8_t *in, size_t i, size_t len, uint8_t *out, size_t *o)
{
    while ((i = copy_to_candidate(in, i, len, out, o, false)) < len)
        i = shape_or_copy(in, len, i, out, o, i == 0 || in[i - 1] == '\n');
    return len;
}

size_t shape_fields(const uint8_t *in, size_t len, uint8_t *out)
{
    shape_prepare();
    size_t o = 0;
    shape_fields_rest(in, shape_request_uri(in, len, out, &o), len, out, &o);
    return o;
}

int shape_header_field(const char *name)
{
    size_t len = strlen(name);
    for (size_t k = 0; k < NFIELDS; k++)
        if (fields[k].line_start && fields[k].len == len + 1 && fields[k].name[len] == ':' &&
            starts_with_ci((const uint8_t *)name, len, fields[k].name, len))
            return (int)k;
    return -1;
}

size_t shape_fields_line(const uint8_t *in, size_t i, size_t len, uint8_t *out, size_t *o,
                         int field)
{
    size_t past;
    if (field >= 0 && i < len && in[i] == ':') {
        out[(*o)++] = ':';
        i = shape_field_value(&fields[field], in, len, i + 1, out, o);
    } else if (i == 0 && field < 0 && (past = shape_request_uri(in, len, out, o)) > 0) {
        i = past;
    } else if (i < len && (i == 0 || in[i - 1] == '\n')) {
        /* a line start, where the copy below would stop at once */
        if (is_candidate(in, i))
            i = shape_or_copy(in, len, i, out, o, true);
        else
            out[(*o)++] = in[i++];
    }
    while ((i = copy_to_candidate(in, i, len, out, o, true)) < len) {
        if (in[i - 1] == '\n')
            return i;
        i = shape_or_copy(in, len, i, out, o, false);
    }
    return len;
}

const char *shape_token_name(uint8_t b)
{
    static const char *names[] = {"<dig1-3>", "<dig4-8>",  "<dig9-16>",  "<dig17-32>", "<dig33+>",
                                  "<hex1-8>", "<hex9-16>", "<hex17-32>", "<hex33+>",   "<ipv4>"};
    if (b >= SHAPE_DIGITS_1_3 && b <= SHAPE_IPV4)
        return names[b - SHAPE_DIGITS_1_3];
    if (b == SHAPE_ALNUM_1_16)
        return "<rnd1-16>";
    if (b == SHAPE_ALNUM_17_32)
        return "<rnd17-32>";
    if (b == SHAPE_ALNUM_LONG)
        return "<rnd33+>";
    return NULL;
}
