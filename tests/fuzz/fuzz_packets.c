/*
 * fuzz_packets: a run of link-layer frames straight into the decoder, past libpcap's checks:
 * the first byte picks the link type, then each frame is a 2-byte big-endian length and its
 * bytes. Frames of one run meet in the TCP stream table and the IPv4 fragment table, which a
 * single frame cannot reach. Every message is checked against the framing's own promises.
 */
#include <pcap/dlt.h>
#include <stdint.h>
#include <stdlib.h>

#include "decode.h"
#include "embed.h"

static const int linktypes[] = {DLT_EN10MB,    DLT_RAW,        DLT_NULL, DLT_LOOP,
                                DLT_LINUX_SLL, DLT_LINUX_SLL2, DLT_IPV4, DLT_IPV6};

static embed_t *e;
static sparse_t *v;

static void on_message(void *ctx, const msg_t *m)
{
    size_t *count = ctx;
    if (m->len > 0 && !m->data)
        abort();
    if (embed_message(e, m->data, m->len, v) != 0)
        abort();
    (*count)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!e) {
        embed_opts_t o;
        embed_opts_default(&o);
        e = embed_new(&o);
        v = sparse_new();
        if (!e || !v)
            abort();
    }
    if (size < 1)
        return 0;
    int linktype = linktypes[data[0] % (sizeof linktypes / sizeof linktypes[0])];
    decode_opts_t o;
    decode_opts_default(&o);
    skips_t skips = {0};
    size_t count = 0;
    decode_t *d = decode_new(&o, &skips, on_message, &count);
    if (!d)
        abort();
    int64_t sec = 1700000000;
    for (size_t i = 1; i + 2 <= size;) {
        size_t len = (size_t)data[i] << 8 | data[i + 1];
        i += 2;
        if (len > size - i)
            len = size - i;
        decode_packet(d, linktype, sec++, 0, data + i, len, len);
        i += len;
    }
    decode_flush(d);
    decode_destroy(&d);
    skips_free(&skips);
    return 0;
}
