/*
 * fuzz_hep_stream: bytes as a HEPv3 TCP stream (hep_stream_t, as the edge reads a sender),
 * taken twice: in the largest pieces the buffer holds, and in small pieces whose sizes the
 * first byte seeds (1 to 64 bytes, as short reads deliver them). Both must hand on the same
 * packets in the same order and stop at the same place; every packet handed on starts with
 * the magic and is exactly as long as its header says, and goes on into the decoder and,
 * when it decodes, its payload into the default embedding.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fuzz_common.h"
#include "hep.h"

typedef struct {
    uint64_t hash; /* of every packet's bytes, in order */
    size_t packets;
} seen_t;

static void on_packet(void *ctx, const uint8_t *p, size_t len)
{
    seen_t *s = ctx;
    if (len < 6 || memcmp(p, "HEP3", 4) != 0 || ((size_t)p[4] << 8 | p[5]) != len)
        abort();
    s->hash = XXH3_64bits_withSeed(p, len, s->hash);
    s->packets++;
    static uint8_t scratch[1 << 16];
    hep_t h;
    const char *why;
    if (hep_decode(p, len, scratch, sizeof scratch, &h, &why) == 0 && h.payload_len)
        fuzz_embed_default(h.payload, h.payload_len);
}

/* Feeds data in pieces (piece == 0: as much as there is room for); returns how many bytes
 * were taken when the stream stopped (size when it did not), with what was seen in *s. */
static size_t feed(const uint8_t *data, size_t size, uint32_t seed, seen_t *s)
{
    hep_stream_t st;
    if (hep_stream_init(&st) != 0)
        abort();
    size_t at = 0;
    while (at < size) {
        size_t room = hep_stream_room(&st), n = size - at;
        if (room == 0)
            abort(); /* what is kept is always less than a packet */
        if (seed) {
            seed = seed * 1103515245u + 12345u;
            size_t piece = 1 + (seed >> 16) % 64;
            if (n > piece)
                n = piece;
        }
        if (n > room)
            n = room;
        memcpy(hep_stream_tail(&st), data + at, n);
        at += n;
        if (hep_stream_take(&st, n, on_packet, s) != 0)
            break;
    }
    hep_stream_free(&st);
    return at;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    seen_t whole = {0, 0}, pieces = {0, 0};
    feed(data + 1, size - 1, 0, &whole);
    feed(data + 1, size - 1, (uint32_t)data[0] + 1, &pieces);
    /* the pieces may stop later in the input (a bad start found only once bytes arrive), but
     * never with other packets before it */
    if (whole.packets != pieces.packets || whole.hash != pieces.hash)
        abort();
    return 0;
}
