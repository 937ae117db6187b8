/*
 * allowlist: sources whose messages never get a blocking verdict.
 *
 * Operators list their own infrastructure (PBXs, trunks, the proxies behind
 * the edge) so that a detector's judgement of their traffic is counted but
 * never answered as a block: a rate limiter that banned the operator's own
 * PBX is the failure peers' users report most. Entries are addresses or
 * CIDR prefixes, IPv4 and IPv6 alike, one per line of a file; a source
 * written as an IPv4-mapped IPv6 address matches the IPv4 entries. Lookups
 * cost one binary search per prefix length in use.
 */
#ifndef SIPGUARD_ALLOWLIST_H
#define SIPGUARD_ALLOWLIST_H

#include <stdbool.h>
#include <stddef.h>

#include "msg.h"

typedef struct allowlist allowlist_t;

/* Reads a file of entries: "ADDR" or "ADDR/LEN", blank lines and '#' comments allowed. A
 * prefix with host bits set, an address that does not parse or a length out of range is
 * an error naming the file and line. NULL with the reason in err. */
allowlist_t *allowlist_load(const char *path, char *err, size_t errlen);

/* The same from text (name stands for the file in errors), for tests and callers that
 * hold the entries themselves. */
allowlist_t *allowlist_parse(const char *text, size_t len, const char *name, char *err,
                             size_t errlen);

/* Whether text is exactly one entry as a list would take it: "ADDR" or "ADDR/LEN", no host
 * bits set past the prefix, nothing else (no blanks, no comment). */
bool allowlist_entry_valid(const char *text);

/* Whether the endpoint's address falls in an entry (NULL or an unknown address: no). */
bool allowlist_contains(const allowlist_t *a, const endpoint_t *ep);

/* Number of entries. */
size_t allowlist_size(const allowlist_t *a);

/* Entry i (0 .. size - 1; IPv4 ones first) as "ADDR/LEN", the form every entry is kept in:
 * the list an overlay hands its edges. Returns buf. */
char *allowlist_entry_text(const allowlist_t *a, size_t i, char *buf, size_t cap);

/* Every entry of a and of b (either may be NULL): an edge's own list and the overlay's.
 * NULL when out of memory. */
allowlist_t *allowlist_union(const allowlist_t *a, const allowlist_t *b);

void allowlist_destroy(allowlist_t **a);

#endif
