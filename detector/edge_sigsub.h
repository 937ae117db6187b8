/*
 * edge_sigsub: the edge's side of signature distribution (docs/wire.md).
 *
 * Subscribes to the overlay's updates first, then asks for a snapshot (the
 * zguide's Clone order, so nothing published in between is missed); every
 * set newer than the one held is written to a cache file (spool_dir/
 * signatures.json) and becomes the edge's signature file, reloaded with the
 * model like a SIGHUP. At start the cache is used until the overlay answers,
 * so an edge keeps enforcing the last set it had while the overlay is away.
 * Both sockets use CURVE with the edge's key pair.
 */
#ifndef SIPGUARD_EDGE_SIGSUB_H
#define SIPGUARD_EDGE_SIGSUB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sigsub sigsub_t;

sigsub_t *sigsub_new(void *zctx, const char *snapshot_ep, const char *updates_ep,
                     const char *server_key, const char *pub, const char *sec,
                     const char *cache_path, char *err, size_t errlen);
void sigsub_destroy(sigsub_t **self);

void *sigsub_snapshot_socket(sigsub_t *s);
void *sigsub_updates_socket(sigsub_t *s);

/* Reads what arrived; returns true when a newer set was written to the cache file. */
bool sigsub_on_messages(sigsub_t *s);
/* Asks for a snapshot again when none came (every few seconds). */
void sigsub_tick(sigsub_t *s, double now);
/* The sequence of the set held (0: none). */
uint64_t sigsub_sequence(const sigsub_t *s);

#endif
