#include "shape.h"

#include <string.h>

/* Character classes by table: shaping looks at every byte of every message. */
/* C_LETTER marks letters that are not hex digits, so a word is hex when its classes
 * include C_DIGIT and exclude C_LETTER. */
enum { C_DIGIT = 1, C_HEXLETTER = 2, C_LETTER = 4 };

static const uint8_t char_class[256] = {
    ['0'] = C_DIGIT, ['1'] = C_DIGIT, ['2'] = C_DIGIT, ['3'] = C_DIGIT, ['4'] = C_DIGIT,
    ['5'] = C_DIGIT, ['6'] = C_DIGIT, ['7'] = C_DIGIT, ['8'] = C_DIGIT, ['9'] = C_DIGIT,
    ['a'] = C_HEXLETTER, ['b'] = C_HEXLETTER, ['c'] = C_HEXLETTER,
    ['d'] = C_HEXLETTER, ['e'] = C_HEXLETTER, ['f'] = C_HEXLETTER,
    ['A'] = C_HEXLETTER, ['B'] = C_HEXLETTER, ['C'] = C_HEXLETTER,
    ['D'] = C_HEXLETTER, ['E'] = C_HEXLETTER, ['F'] = C_HEXLETTER,
    ['g'] = C_LETTER, ['h'] = C_LETTER, ['i'] = C_LETTER, ['j'] = C_LETTER, ['k'] = C_LETTER,
    ['l'] = C_LETTER, ['m'] = C_LETTER, ['n'] = C_LETTER, ['o'] = C_LETTER, ['p'] = C_LETTER,
    ['q'] = C_LETTER, ['r'] = C_LETTER, ['s'] = C_LETTER, ['t'] = C_LETTER, ['u'] = C_LETTER,
    ['v'] = C_LETTER, ['w'] = C_LETTER, ['x'] = C_LETTER, ['y'] = C_LETTER, ['z'] = C_LETTER,
    ['G'] = C_LETTER, ['H'] = C_LETTER, ['I'] = C_LETTER, ['J'] = C_LETTER, ['K'] = C_LETTER,
    ['L'] = C_LETTER, ['M'] = C_LETTER, ['N'] = C_LETTER, ['O'] = C_LETTER, ['P'] = C_LETTER,
    ['Q'] = C_LETTER, ['R'] = C_LETTER, ['S'] = C_LETTER, ['T'] = C_LETTER, ['U'] = C_LETTER,
    ['V'] = C_LETTER, ['W'] = C_LETTER, ['X'] = C_LETTER, ['Y'] = C_LETTER, ['Z'] = C_LETTER,
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
    return n <= 3 ? SHAPE_DIGITS_1_3 : n <= 8 ? SHAPE_DIGITS_4_8 : n <= 16 ? SHAPE_DIGITS_9_16
                                     : n <= 32 ? SHAPE_DIGITS_17_32 : SHAPE_DIGITS_LONG;
}

static uint8_t hex_token(size_t n)
{
    return n <= 8 ? SHAPE_HEX_1_8 : n <= 16 ? SHAPE_HEX_9_16 : n <= 32 ? SHAPE_HEX_17_32
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

const char *shape_token_name(uint8_t b)
{
    static const char *names[] = {"<dig1-3>",  "<dig4-8>",   "<dig9-16>",  "<dig17-32>",
                                  "<dig33+>",  "<hex1-8>",   "<hex9-16>",  "<hex17-32>",
                                  "<hex33+>",  "<ipv4>"};
    if (b >= SHAPE_DIGITS_1_3 && b <= SHAPE_IPV4)
        return names[b - SHAPE_DIGITS_1_3];
    return NULL;
}
