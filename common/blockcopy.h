/*
 * blockcopy: copying text up to and including the next of a few stop bytes, 16 bytes at a
 * time where the CPU can (SSE2). Header-name normalisation copies the rest of each header
 * line this way: a search followed by a memcpy of a few dozen bytes mispredicted on its
 * length. Field shaping tests whole blocks against a few bytes with stops_in_block().
 */
#ifndef SIPGUARD_BLOCKCOPY_H
#define SIPGUARD_BLOCKCOPY_H

#include <stddef.h>
#include <stdint.h>
#ifdef __SSE2__
#include <emmintrin.h>

/* Bit k set when byte k of x is one of stops[0..n). Inlined with constant stops, each
 * compare takes its repeated byte from a constant. */
static inline __attribute__((always_inline)) unsigned stops_in_block(__m128i x, const char *stops,
                                                                     int n)
{
    __m128i m = _mm_setzero_si128();
#pragma GCC unroll 10
    for (int k = 0; k < n; k++)
        m = _mm_or_si128(m, _mm_cmpeq_epi8(x, _mm_set1_epi8(stops[k])));
    return (unsigned)_mm_movemask_epi8(m);
}
#endif

/*
 * Copies in[i..] through the first byte that is one of stops[0..n) (or to len) to out + *o,
 * moving *o past what it copied; returns where the copy ended in in. Whole blocks are stored
 * as they are tested, so up to 15 bytes past the copy are written too (and overwritten by
 * what the caller writes next): out needs 16 bytes of room past *o + (len - i). Inlined with
 * constant stops, so the compares unroll.
 */
static inline __attribute__((always_inline)) size_t blockcopy_through(const uint8_t *in, size_t i,
                                                                      size_t len, uint8_t *out,
                                                                      size_t *o, const char *stops,
                                                                      int n)
{
#ifdef __SSE2__
    for (; i + 16 <= len; i += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(in + i));
        _mm_storeu_si128((__m128i *)(void *)(out + *o), x);
        unsigned bits = stops_in_block(x, stops, n);
        if (bits) {
            size_t at = (size_t)__builtin_ctz(bits) + 1;
            *o += at;
            return i + at;
        }
        *o += 16;
    }
#endif
    while (i < len) {
        uint8_t c = in[i++];
        out[(*o)++] = c;
        int hit = 0; /* one branch per byte, not one per stop */
#pragma GCC unroll 8
        for (int k = 0; k < n; k++)
            hit |= c == (uint8_t)stops[k];
        if (hit)
            break;
    }
    return i;
}

#endif
