/*
 * What the fuzz programs share: the link types whose index starts a fuzz_packets input
 * (seed_packets writes the same index), and the models' default embedding of a message.
 */
#ifndef SIPGUARD_FUZZ_COMMON_H
#define SIPGUARD_FUZZ_COMMON_H

#include <pcap/dlt.h>
#include <stdint.h>
#include <stdlib.h>

#include "embed.h"

static const int fuzz_linktypes[] = {DLT_EN10MB,    DLT_RAW,        DLT_NULL, DLT_LOOP,
                                     DLT_LINUX_SLL, DLT_LINUX_SLL2, DLT_IPV4, DLT_IPV6};
#define FUZZ_LINKTYPES (sizeof fuzz_linktypes / sizeof fuzz_linktypes[0])

/* Embeds a message as a model's default options do (the embedder made once); a failure is
 * a finding. */
static inline void fuzz_embed_default(const uint8_t *data, size_t len)
{
    static embed_t *e;
    static sparse_t *v;
    if (!e) {
        embed_opts_t o;
        embed_opts_default(&o);
        e = embed_new(&o);
        v = sparse_new();
        if (!e || !v)
            abort();
    }
    if (embed_message(e, data, len, v) != 0)
        abort();
}

#endif
