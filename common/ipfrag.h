/*
 * ipfrag: reassembly of fragmented IPv4 and IPv6 datagrams.
 *
 * SIP over UDP routinely exceeds the path MTU (INVITEs with large SDP, long
 * Via chains), so captures hold fragments. Fragments are keyed by family,
 * addresses, protocol and identification and copied into a 64 KiB buffer
 * with a coverage bitmap of 8-byte units, so overlaps and any arrival order
 * work. The table is bounded (datagrams in flight and age in capture time);
 * whatever is evicted or never completes is counted, not lost silently.
 */
#ifndef SIPGUARD_IPFRAG_H
#define SIPGUARD_IPFRAG_H

#include <stddef.h>
#include <stdint.h>

#include "skips.h"

typedef struct ipfrag ipfrag_t;

typedef struct {
    int family; /* 4 or 6 */
    uint8_t src[16], dst[16];
    uint32_t id;
    uint8_t proto; /* transport protocol of the datagram */
} ipfrag_key_t;

/* max_pending: datagrams in flight; timeout_sec: age after which a datagram is dropped. */
ipfrag_t *ipfrag_new(int max_pending, int timeout_sec, skips_t *skips);
void ipfrag_destroy(ipfrag_t **self);

/*
 * Adds one fragment: payload bytes at byte offset `offset` of the datagram's
 * payload, `more` set when more fragments follow. Returns 1 and sets
 * *out and *out_len to the reassembled payload (valid until the next call) when
 * the datagram is complete, 0 otherwise, -1 when the fragment is invalid.
 */
int ipfrag_add(ipfrag_t *self, const ipfrag_key_t *key, int64_t now_sec, size_t offset, int more,
               const uint8_t *data, size_t len, const uint8_t **out, size_t *out_len);

/* Counts and drops every incomplete datagram (end of input). */
void ipfrag_flush(ipfrag_t *self);

#endif
