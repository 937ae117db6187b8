#include "sipframe.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

static bool is_token_char(unsigned char c)
{
    return isalnum(c) || strchr("-.!%*_+`'~", c) != NULL;
}

bool sipframe_looks_like_sip(const unsigned char *buf, size_t len)
{
    if (len > 1024)
        len = 1024;
    const unsigned char *eol = memchr(buf, '\n', len);
    size_t line = eol ? (size_t)(eol - buf) : len;
    if (line >= 8 && memcmp(buf, "SIP/2.0 ", 8) == 0)
        return true;
    /* Request line: token SP ... SP SIP/2.0 */
    size_t i = 0;
    while (i < line && is_token_char(buf[i]))
        i++;
    if (i == 0 || i >= line || buf[i] != ' ')
        return false;
    size_t end = line;
    if (end > 0 && buf[end - 1] == '\r')
        end--;
    if (end < i + 9)
        return false;
    return memcmp(buf + end - 8, " SIP/2.0", 8) == 0 || memmem(buf + i, end - i, "SIP/", 4);
}

size_t sipframe_skip_crlf(const unsigned char *buf, size_t len)
{
    size_t i = 0;
    while (i < len && (buf[i] == '\r' || buf[i] == '\n'))
        i++;
    return i;
}

/* Length of the header block including its terminating blank line, or 0. Only line ends
 * matter: a newline followed by a newline or CR LF is looked for 16 positions at a time
 * (one search, where memchr needed one call per line), then line by line near the end. */
static size_t header_block_length(const unsigned char *buf, size_t len)
{
    size_t at = 0;
#ifdef __SSE2__
    const __m128i lf = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r');
    for (; at + 18 <= len; at += 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(buf + at)),
                y = _mm_loadu_si128((const __m128i *)(const void *)(buf + at + 1)),
                z = _mm_loadu_si128((const __m128i *)(const void *)(buf + at + 2));
        __m128i end = _mm_and_si128(
            _mm_cmpeq_epi8(x, lf),
            _mm_or_si128(_mm_cmpeq_epi8(y, lf),
                         _mm_and_si128(_mm_cmpeq_epi8(y, cr), _mm_cmpeq_epi8(z, lf))));
        unsigned bits = (unsigned)_mm_movemask_epi8(end);
        if (bits) {
            size_t i = at + (size_t)__builtin_ctz(bits);
            return buf[i + 1] == '\n' ? i + 2 : i + 3;
        }
    }
#endif
    const unsigned char *p = buf + at, *end = buf + len;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        size_t i = (size_t)(p - buf);
        if (i + 1 >= len)
            return 0;
        if (buf[i + 1] == '\n')
            return i + 2;
        if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
            return i + 3;
        p++;
    }
    return 0;
}

/* Value of Content-Length (or "l") in the header block: >= 0, -1 absent, -2 invalid. */
static long long content_length(const unsigned char *buf, size_t hlen)
{
    const unsigned char *p = buf, *end = buf + hlen;
    while (p < end) {
        const unsigned char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        int first = *p | 0x20; /* only these lines can hold the length: no search in others */
        const unsigned char *colon =
            first == 'c' || first == 'l' ? memchr(p, ':', (size_t)(eol - p)) : NULL;
        if (colon) {
            const unsigned char *ne = colon;
            while (ne > p && (ne[-1] == ' ' || ne[-1] == '\t'))
                ne--;
            size_t nlen = (size_t)(ne - p);
            if ((nlen == 14 && strncasecmp((const char *)p, "Content-Length", 14) == 0) ||
                (nlen == 1 && (*p == 'l' || *p == 'L'))) {
                const unsigned char *v = colon + 1;
                while (v < eol && (*v == ' ' || *v == '\t'))
                    v++;
                if (v == eol || !isdigit(*v))
                    return -2;
                long long n = 0;
                while (v < eol && isdigit(*v)) {
                    if (n > 100000000LL)
                        return -2;
                    n = n * 10 + (*v++ - '0');
                }
                while (v < eol && (*v == ' ' || *v == '\t' || *v == '\r'))
                    v++;
                return v == eol ? n : -2;
            }
        }
        p = eol + 1;
    }
    return -1;
}

sipframe_result_t sipframe_message_length(const unsigned char *buf, size_t len, size_t *msg_len,
                                          size_t *header_len, long long *clen_out)
{
    *header_len = 0;
    *clen_out = -1;
    size_t hlen = header_block_length(buf, len);
    if (hlen == 0)
        return SIPFRAME_NEED_MORE;
    *header_len = hlen;
    long long cl = content_length(buf, hlen);
    if (cl == -2) {
        *msg_len = hlen;
        return SIPFRAME_BAD_LENGTH;
    }
    if (cl < 0)
        cl = 0;
    *clen_out = cl;
    *msg_len = hlen + (size_t)cl;
    return *msg_len <= len ? SIPFRAME_COMPLETE : SIPFRAME_NEED_MORE;
}
