#include "sipnorm.h"

#include "blockcopy.h"

#include <ctype.h>
#include <pthread.h>
#include <string.h>
#include <strings.h>

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
};

#define KNOWN_COUNT (sizeof known / sizeof known[0])
#define MAX_NAME_LEN 24

/* Every header line of every message is looked up, so names are indexed once by length
 * (and compact letters directly) instead of compared against the whole table. */
static const header_name_t *by_compact[26];
static uint8_t by_length[MAX_NAME_LEN + 1][8]; /* indices + 1 into known, 0 ends */
static pthread_once_t index_once = PTHREAD_ONCE_INIT;

static void build_index(void)
{
    for (size_t i = 0; i < KNOWN_COUNT; i++) {
        if (known[i].compact)
            by_compact[known[i].compact[0] - 'a'] = &known[i];
        size_t len = strlen(known[i].name);
        for (int s = 0; s < 7; s++) {
            if (!by_length[len][s]) {
                by_length[len][s] = (uint8_t)(i + 1);
                break;
            }
        }
    }
}

const char *sipnorm_canonical_name(const char *name, size_t len)
{
    pthread_once(&index_once, build_index);
    if (len == 1) {
        int c = tolower((unsigned char)name[0]);
        return c >= 'a' && c <= 'z' && by_compact[c - 'a'] ? by_compact[c - 'a']->name : NULL;
    }
    if (len > MAX_NAME_LEN)
        return NULL;
    int first = tolower((unsigned char)name[0]);
    for (const uint8_t *s = by_length[len]; *s; s++) {
        const char *cand = known[*s - 1].name;
        if (tolower((unsigned char)cand[0]) == first && strncasecmp(cand, name, len) == 0)
            return cand;
    }
    return NULL;
}

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

size_t sipnorm_headers(const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    size_t o = 0, i = 0;
    const uint8_t *nl = memchr(in, '\n', len);
    if (!nl || cap < len)
        goto unchanged;
    i = (size_t)(nl - in) + 1;
    memcpy(out, in, i); /* start line */
    o = i;
    while (i < len) {
        if (in[i] == '\n' || (in[i] == '\r' && i + 1 < len && in[i + 1] == '\n'))
            break; /* blank line: body follows unchanged */
        size_t n = 0;
        while (i + n < len && is_token(in[i + n]))
            n++;
        const char *canon = n ? sipnorm_canonical_name((const char *)in + i, n) : NULL;
        size_t ws = 0;
        while (i + n + ws < len && (in[i + n + ws] == ' ' || in[i + n + ws] == '\t'))
            ws++;
        if (canon && i + n + ws < len && in[i + n + ws] == ':') {
            size_t cl = strlen(canon);
            if (o + cl + (len - i - n) > cap)
                goto unchanged;
            memcpy(out + o, canon, cl);
            o += cl;
            i += n;
        } else if (n && i + n + ws < len && in[i + n + ws] == ':') {
            for (size_t k = 0; k < n; k++)
                out[o + k] = (uint8_t)tolower(in[i + k]);
            o += n;
            i += n;
        }
        if (o + (len - i) + 16 > cap)
            goto unchanged; /* room for the rest of the message, as blockcopy needs */
        i = blockcopy_through(in, i, len, out, &o, "\n", 1);
    }
    if (o + (len - i) > cap)
        goto unchanged;
    memcpy(out + o, in + i, len - i);
    return o + (len - i);
unchanged:
    if (cap >= len) {
        memcpy(out, in, len);
        return len;
    }
    return 0;
}
