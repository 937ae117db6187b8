/*
 * fuzz_cluster: the overlay's saved cluster state as the store hands it back. The input is a
 * state without its checksum (the target appends a valid one, so that mutations reach the
 * reader rather than stop at the checksum). A state that loads must take another message,
 * save, and load again to the same bytes; one that does not must say why. Members are
 * embedded again by a real 4-gram embedder, as the overlay's are.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "cluster.h"
#include "embed.h"

static const cluster_opts_t opts = {
    .linkage = LINK_AVERAGE, .cut = 0.6, .k = 8, .per_cluster = 8, .max_kept = 64, .small = 3};

static embed_t *embedder(void)
{
    static embed_t *e;
    if (!e) {
        embed_opts_t o;
        embed_opts_default(&o);
        if (!(e = embed_new(&o)))
            abort();
    }
    return e;
}

static int embed_again(void *ctx, const uint8_t *raw, size_t len, sparse_t *out)
{
    (void)ctx;
    return embed_message(embedder(), raw, len, out);
}

static const char probe[] = "OPTIONS sip:100@example.net SIP/2.0\r\nUser-Agent: fuzz\r\n\r\n";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *state = malloc(size + 8);
    if (!state)
        return 0;
    memcpy(state, data, size);
    uint64_t sum = XXH3_64bits(data, size);
    memcpy(state + size, &sum, 8);
    char err[600] = "";
    clusterer_t *c =
        clusterer_load(&opts, "fuzz", state, size + 8, embed_again, NULL, err, sizeof err);
    free(state);
    if (!c) {
        if (!err[0])
            abort(); /* a refusal names its reason */
        return 0;
    }
    member_t m = {0};
    m.len = sizeof probe - 1;
    m.raw = malloc(m.len);
    m.v = sparse_new();
    if (!m.raw || !m.v || embed_message(embedder(), (const uint8_t *)probe, m.len, m.v) != 0)
        abort();
    memcpy(m.raw, probe, m.len);
    if (clusterer_add(c, &m, "fuzz/1") != 0)
        abort();
    size_t len = 0, again_len = 0;
    uint8_t *saved = clusterer_save(c, "fuzz", &len);
    clusterer_t *again =
        saved ? clusterer_load(&opts, "fuzz", saved, len, embed_again, NULL, err, sizeof err)
              : NULL;
    uint8_t *resaved = again ? clusterer_save(again, "fuzz", &again_len) : NULL;
    if (!resaved || again_len != len || memcmp(saved, resaved, len) != 0)
        abort(); /* what it saved, it must read back as it was */
    free(saved);
    free(resaved);
    clusterer_destroy(&again);
    clusterer_destroy(&c);
    return 0;
}
