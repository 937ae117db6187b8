#include "input.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
    msg_t m;    /* with data where it lies when lent */
    size_t off; /* else of its bytes in the input's byte store */
    bool lent;
} queued_t;

struct input {
    const input_format_t *fmt;
    void *state;
    char *name;
    decode_opts_t opts;
    skips_t skips;
    queued_t *q;
    size_t q_head, q_len, q_cap;
    /* the queued messages' bytes, one after the other: emptied when the queue is, so a
     * message handed out stays valid until the next call and no message costs an allocation */
    uint8_t *bytes;
    size_t bytes_len, bytes_cap;
    const uint8_t *lent; /* input_lend() */
    size_t lent_len;
    size_t count;
    int at_end;
    char err[512];
};

void *input_state(input_t *in)
{
    return in->state;
}

void input_set_state(input_t *in, void *state)
{
    in->state = state;
}

const decode_opts_t *input_opts(const input_t *in)
{
    return &in->opts;
}

skips_t *input_skips_mut(input_t *in)
{
    return &in->skips;
}

const skips_t *input_skips(const input_t *in)
{
    return &in->skips;
}

const char *input_name(const input_t *in)
{
    return in->name;
}

const char *input_error(const input_t *in)
{
    return in->err;
}

const char *input_format_name(const input_t *in)
{
    return in->fmt->name;
}

size_t input_count(const input_t *in)
{
    return in->count;
}

void input_set_error(input_t *in, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(in->err, sizeof in->err, fmt, ap);
    va_end(ap);
}

/* Room for n more bytes in the byte store. */
static int reserve_bytes(input_t *in, size_t n)
{
    if (in->bytes_len + n <= in->bytes_cap)
        return 0;
    size_t cap = in->bytes_cap ? in->bytes_cap : 65536;
    while (cap < in->bytes_len + n)
        cap *= 2;
    uint8_t *b = realloc(in->bytes, cap);
    if (!b)
        return -1;
    in->bytes = b;
    in->bytes_cap = cap;
    return 0;
}

void input_lend(input_t *in, const uint8_t *bytes, size_t len)
{
    in->lent = bytes;
    in->lent_len = bytes ? len : 0;
}

size_t input_queued(const input_t *in)
{
    return in->q_len - in->q_head;
}

void input_enqueue(input_t *in, const msg_t *m)
{
    if (in->q_head == in->q_len) /* what was handed out is done with (until the next call) */
        in->q_head = in->q_len = in->bytes_len = 0;
    if (in->q_len == in->q_cap) {
        size_t cap = in->q_cap ? in->q_cap * 2 : 16;
        queued_t *q = realloc(in->q, cap * sizeof *q);
        if (!q) {
            skips_add(&in->skips, "out of memory, message dropped");
            return;
        }
        in->q = q;
        in->q_cap = cap;
    }
    bool lent = in->lent && m->data >= in->lent && m->len <= in->lent_len &&
                (size_t)(m->data - in->lent) <= in->lent_len - m->len;
    if (!lent && reserve_bytes(in, m->len) != 0) {
        skips_add(&in->skips, "out of memory, message dropped");
        return;
    }
    queued_t *e = &in->q[in->q_len++];
    e->m = *m;
    if (!e->m.input)
        e->m.input = in->name;
    e->lent = lent;
    e->off = in->bytes_len;
    if (!lent) {
        if (m->len)
            memcpy(in->bytes + in->bytes_len, m->data, m->len);
        in->bytes_len += m->len;
    }
}

static input_t *input_alloc(const char *name, const decode_opts_t *opts)
{
    input_t *in = calloc(1, sizeof *in);
    if (!in)
        return NULL;
    in->name = strdup(name);
    if (opts)
        in->opts = *opts;
    else
        decode_opts_default(&in->opts);
    return in;
}

static int read_magic(const char *path, uint8_t magic[4])
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    size_t n = fread(magic, 1, 4, f);
    fclose(f);
    if (n < 4)
        memset(magic + n, 0, 4 - n);
    return 0;
}

static int is_pcap_magic(const uint8_t m[4])
{
    static const uint8_t magics[][4] = {{0xd4, 0xc3, 0xb2, 0xa1},
                                        {0xa1, 0xb2, 0xc3, 0xd4},
                                        {0x4d, 0x3c, 0xb2, 0xa1},
                                        {0xa1, 0xb2, 0x3c, 0x4d},
                                        {0x0a, 0x0d, 0x0d, 0x0a}};
    for (size_t i = 0; i < sizeof magics / sizeof magics[0]; i++)
        if (memcmp(m, magics[i], 4) == 0)
            return 1;
    return 0;
}

static int has_capture_extension(const char *path)
{
    const char *dot = strrchr(path, '.');
    return dot &&
           (strcmp(dot, ".pcap") == 0 || strcmp(dot, ".pcapng") == 0 || strcmp(dot, ".cap") == 0);
}

/* Chooses the format of a path: pcap by magic, raw for directories and other files. */
static const input_format_t *choose_format(const char *path, char *errbuf, size_t errlen)
{
    if (strcmp(path, INPUT_STDIN) == 0)
        return &input_pcap_format; /* a pipe cannot be peeked at: captures only, as tcpdump -r - */
    struct stat st;
    if (stat(path, &st) != 0) {
        snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (S_ISDIR(st.st_mode))
        return &input_raw_format;
    uint8_t magic[4];
    if (read_magic(path, magic) != 0) {
        snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (is_pcap_magic(magic))
        return &input_pcap_format;
    if (memcmp(magic, "RTSS", 4) == 0 || memcmp(magic, "GMBU", 4) == 0) {
        snprintf(errbuf, errlen,
                 "%s: Microsoft NetMon capture format is not supported (convert it with "
                 "editcap -F pcap)",
                 path);
        return NULL;
    }
    if (has_capture_extension(path)) {
        snprintf(errbuf, errlen,
                 "%s: not a pcap or pcapng file (magic %02x%02x%02x%02x); truncated or another "
                 "format",
                 path, magic[0], magic[1], magic[2], magic[3]);
        return NULL;
    }
    return &input_raw_format;
}

static input_t *open_with(const input_format_t *fmt, input_t *in, const char *path, const void *mem,
                          size_t mem_len, char *errbuf, size_t errlen)
{
    in->fmt = fmt;
    if (fmt->open(in, path, mem, mem_len) != 0) {
        snprintf(errbuf, errlen, "%s", in->err[0] ? in->err : "cannot open input");
        skips_free(&in->skips);
        free(in->name);
        free(in);
        return NULL;
    }
    return in;
}

input_t *input_open(const char *path, const decode_opts_t *opts, char *errbuf, size_t errlen)
{
    const input_format_t *fmt = choose_format(path, errbuf, errlen);
    if (!fmt)
        return NULL;
    input_t *in = input_alloc(path, opts);
    if (!in) {
        snprintf(errbuf, errlen, "%s: out of memory", path);
        return NULL;
    }
    return open_with(fmt, in, path, NULL, 0, errbuf, errlen);
}

input_t *input_open_memory(const char *name, const void *data, size_t len,
                           const decode_opts_t *opts, char *errbuf, size_t errlen)
{
    input_t *in = input_alloc(name, opts);
    if (!in) {
        snprintf(errbuf, errlen, "%s: out of memory", name);
        return NULL;
    }
    return open_with(&input_pcap_format, in, name, data, len, errbuf, errlen);
}

int input_next(input_t *in, msg_t *m)
{
    while (in->q_head == in->q_len) {
        if (in->at_end)
            return 0;
        int rc = in->fmt->fill(in);
        if (rc < 0)
            return -1;
        if (rc == 0)
            in->at_end = 1;
    }
    queued_t *e = &in->q[in->q_head++];
    *m = e->m;
    if (!e->lent)
        m->data = in->bytes + e->off; /* the store may have moved since it was queued */
    m->index = in->count++;
    return 1;
}

void input_close(input_t **inp)
{
    input_t *in = *inp;
    if (!in)
        return;
    in->fmt->close(in);
    free(in->q);
    free(in->bytes);
    skips_free(&in->skips);
    free(in->name);
    free(in);
    *inp = NULL;
}
