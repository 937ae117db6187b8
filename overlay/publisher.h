/*
 * publisher: the overlay's side of signature distribution (docs/wire.md).
 *
 * A ROUTER answers snapshot requests with the active set and its sequence; a
 * PUB socket sends every new active set. Both use CURVE with the collector's
 * ZAP allowlist, so only configured edges receive signatures. Subscribers
 * drop anything not newer than what they hold, so the set is also published
 * again now and then for those that missed an update.
 */
#ifndef SIPGUARD_PUBLISHER_H
#define SIPGUARD_PUBLISHER_H

#include <stddef.h>
#include <stdint.h>

typedef struct publisher publisher_t;

/* NULL with err on failure. The ZAP handler must already be bound (collector_new). */
publisher_t *publisher_new(void *zctx, const char *snapshot_endpoint, const char *updates_endpoint,
                           const char *secret_key, char *err, size_t errlen);
void publisher_destroy(publisher_t **self);

void *publisher_snapshot_socket(publisher_t *p);
/* Answers waiting snapshot requests with the set given. */
void publisher_on_requests(publisher_t *p, uint64_t seq, const char *json, size_t len);
/* Publishes a set. */
void publisher_publish(publisher_t *p, uint64_t seq, const char *json, size_t len);
/* Closes every edge's connection to both sockets, which stay bound to the same endpoints: each
 * edge connects again and passes the ZAP allowlist anew, so an edge no longer configured (or
 * whose key changed) stops hearing signature sets, which CURVE alone checks only at the
 * handshake. 0, or -1 with the reason in err (a socket that could not bind again). */
int publisher_drop_peers(publisher_t *p, char *err, size_t errlen);
const char *publisher_snapshot_endpoint(const publisher_t *p);
const char *publisher_updates_endpoint(const publisher_t *p);

#endif
