#include "shape.h"

static int is_digit(uint8_t c)
{
    return c >= '0' && c <= '9';
}

static int is_hex(uint8_t c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int is_alnum(uint8_t c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
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
    int all_digits = 1, all_hex = 1;
    for (size_t k = i; k < j; k++) {
        all_digits &= is_digit(in[k]);
        all_hex &= is_hex(in[k]);
    }
    if (all_digits) {
        out[o++] = digit_token(j - i);
        return o;
    }
    int has_digit = 0;
    for (size_t k = i; k < j && !has_digit; k++)
        has_digit = is_digit(in[k]);
    if (all_hex && has_digit) {
        out[o++] = hex_token(j - i);
        return o;
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
