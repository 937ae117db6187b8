#include "report.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *report_message_fields(const msg_t *m, const sipinfo_t *info)
{
    char src[MSG_ENDPOINT_STRLEN], dst[MSG_ENDPOINT_STRLEN];
    msg_endpoint_format(&m->src, src);
    msg_endpoint_format(&m->dst, dst);
    json_t *o = json_object();
    json_object_set_new(o, "input", json_string(m->input ? m->input : ""));
    json_object_set_new(o, "index", json_integer((json_int_t)m->index));
    json_object_set_new(o, "ts", json_real((double)m->ts_sec + m->ts_usec / 1e6));
    json_object_set_new(o, "src", src[0] ? json_string(src) : json_null());
    json_object_set_new(o, "dst", dst[0] ? json_string(dst) : json_null());
    json_object_set_new(o, "transport", json_string(msg_transport_name(m->transport)));
    if (info->is_request && info->method[0])
        json_object_set_new(o, "method", json_stringn_nocheck(info->method, strlen(info->method)));
    else if (!info->is_request && info->status)
        json_object_set_new(o, "status", json_integer(info->status));
    json_object_set_new(o, "call_id",
                        report_text_string((const uint8_t *)info->call_id, strlen(info->call_id)));
    json_object_set_new(o, "parse_ok", json_boolean(info->parse_ok));
    if (!info->parse_ok)
        json_object_set_new(o, "parse_error", json_string(info->reason));
    if (info->user_agent[0])
        json_object_set_new(
            o, "user_agent",
            report_text_string((const uint8_t *)info->user_agent, strlen(info->user_agent)));
    if (m->via_hep)
        json_object_set_new(o, "hep", json_true());
    if (m->truncated)
        json_object_set_new(o, "truncated", json_true());
    return o;
}

/* Length of the valid UTF-8 sequence at s, or 0. */
static size_t utf8_seq(const uint8_t *s, size_t n)
{
    if (s[0] < 0x80)
        return s[0] ? 1 : 0;
    size_t len = (s[0] & 0xe0) == 0xc0   ? 2
                 : (s[0] & 0xf0) == 0xe0 ? 3
                 : (s[0] & 0xf8) == 0xf0 ? 4
                                         : 0;
    if (!len || len > n || (len == 2 && s[0] < 0xc2) || s[0] > 0xf4)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xc0) != 0x80)
            return 0;
    return len;
}

/* Writes byte b at buf + o as the UTF-8 of the code point of the same value; the new end. */
static size_t put_latin1(char *buf, size_t o, uint8_t b)
{
    if (b < 0x80) {
        buf[o++] = (char)b;
    } else {
        buf[o++] = (char)(0xc0 | (b >> 6));
        buf[o++] = (char)(0x80 | (b & 0x3f));
    }
    return o;
}

json_t *report_text_string(const uint8_t *data, size_t len)
{
    /* worst case: every byte becomes a 2-byte UTF-8 sequence */
    char *buf = malloc(len * 2 + 1);
    if (!buf)
        return json_null();
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        size_t n = utf8_seq(data + i, len - i);
        if (n) {
            memcpy(buf + o, data + i, n);
            o += n;
            i += n;
        } else { /* NUL (jansson writes \u0000) or an invalid byte: its Latin-1 code point */
            o = put_latin1(buf, o, data[i++]);
        }
    }
    json_t *s = json_stringn(buf, o);
    free(buf);
    return s ? s : json_null();
}

json_t *report_raw_string(const uint8_t *data, size_t len)
{
    char *buf = malloc(len * 2 + 1);
    if (!buf)
        return json_null();
    size_t o = 0;
    for (size_t i = 0; i < len; i++)
        o = put_latin1(buf, o, data[i]); /* NUL too: jansson writes it as \u0000 */
    json_t *s = json_stringn(buf, o);
    free(buf);
    return s ? s : json_null();
}

/* The line is formatted in memory and written with one fwrite: json_dumpf wrote each token
 * with an fwrite of its own, each taking the stream's lock (a tenth of `score`'s time). The
 * buffer is the thread's own and keeps the size of the longest line so far, so a line is
 * formatted twice (once to learn its length) only when it is longer than every line before. */
int report_write_line(json_t *obj, FILE *out)
{
    static _Thread_local char *line;
    static _Thread_local size_t cap;
    const size_t flags = JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(10);
    size_t n = json_dumpb(obj, line, cap, flags);
    if (n == 0)
        return -1;
    if (n + 1 > cap) {
        size_t want = n + 1 > 4096 ? n + 1 : 4096;
        char *grown = realloc(line, want);
        if (!grown)
            return -1;
        line = grown;
        cap = want;
        if (json_dumpb(obj, line, cap, flags) != n)
            return -1;
    }
    line[n] = '\n';
    return fwrite(line, 1, n + 1, out) == n + 1 ? 0 : -1;
}

size_t report_raw_bytes(const char *s, size_t len, uint8_t *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        uint8_t c = (uint8_t)s[i];
        if ((c == 0xC2 || c == 0xC3) && i + 1 < len) { /* U+0080..U+00FF */
            out[o++] = (uint8_t)(((c & 0x1F) << 6) | ((uint8_t)s[i + 1] & 0x3F));
            i += 2;
        } else {
            out[o++] = c;
            i++;
        }
    }
    return o;
}
