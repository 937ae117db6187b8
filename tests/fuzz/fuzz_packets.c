/*
 * fuzz_packets: a run of link-layer frames straight into the decoder, past libpcap's checks:
 * the first byte picks the link type, then each frame is a time step byte, a 2-byte
 * big-endian length and its bytes. Frames of one run meet in the TCP stream table and the
 * IPv4 fragment table, which a single frame cannot reach. The step's low two bits move the
 * clock: 1 s, none, 31 s (past the fragment timeout), or 40 s back, as a capture merged from
 * two hosts can. Every message goes on into the default embedding. With the first byte's
 * top bit the TCP bounds are tight (8 streams, 16 KiB), so that runs reach the drops that
 * make room; the bytes held must stay within the budget and be none after the flush.
 */
#include <stdint.h>
#include <stdlib.h>

#include "decode.h"
#include "fuzz_common.h"

static void on_message(void *ctx, const msg_t *m)
{
    size_t *count = ctx;
    if (m->len > 0 && !m->data)
        abort();
    fuzz_embed_default(m->data, m->len);
    (*count)++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int linktype = fuzz_linktypes[(data[0] & 0x7f) % FUZZ_LINKTYPES];
    decode_opts_t o;
    decode_opts_default(&o);
    if (data[0] & 0x80) {
        o.tcp_streams = 8;
        o.tcp_memory = 16 << 10;
    }
    skips_t skips = {0};
    size_t count = 0;
    decode_t *d = decode_new(&o, &skips, on_message, &count);
    if (!d)
        abort();
    static const int64_t steps[4] = {1, 0, 31, -40};
    int64_t sec = 1700000000;
    for (size_t i = 1; i + 3 <= size;) {
        sec += steps[data[i] & 3];
        size_t len = (size_t)data[i + 1] << 8 | data[i + 2];
        i += 3;
        if (len > size - i)
            len = size - i;
        decode_packet(d, linktype, sec, 0, data + i, len, len);
        i += len;
        if (decode_tcp_held(d) > o.tcp_memory)
            abort();
    }
    decode_flush(d);
    if (decode_tcp_held(d) != 0)
        abort();
    decode_destroy(&d);
    skips_free(&skips);
    return 0;
}
