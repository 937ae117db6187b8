/*
 * fuzz_packets: a run of link-layer frames straight into the decoder, past libpcap's checks:
 * the first byte picks the link type, then each frame is a 2-byte big-endian length and its
 * bytes. Frames of one run meet in the TCP stream table and the IPv4 fragment table, which a
 * single frame cannot reach. Every message goes on into the default embedding.
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
    int linktype = fuzz_linktypes[data[0] % FUZZ_LINKTYPES];
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
