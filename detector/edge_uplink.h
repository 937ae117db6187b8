/*
 * edge_uplink: sends the spool's reports to the overlay and takes its
 * acknowledgements (ZeroMQ DEALER to the overlay's ROUTER, CURVE).
 *
 * Lazy Pirate with a disk behind it: every report is in the spool before it
 * is sent; at most UPLINK_WINDOW are in flight; one without an ack after
 * ack_timeout is sent again, and on every (re)connection everything still
 * unacknowledged is sent again from the oldest. The overlay drops duplicates,
 * so a report arrives exactly once after deduplication. Connection state
 * comes from a socket monitor (CURVE handshake done, disconnected).
 */
#ifndef SIPGUARD_EDGE_UPLINK_H
#define SIPGUARD_EDGE_UPLINK_H

#include <stdbool.h>
#include <stdint.h>

#include "edge_spool.h"

#define UPLINK_WINDOW 1000

typedef struct uplink uplink_t;

/* Connects (in the background) to endpoint with the overlay's public key and this edge's
 * key pair. NULL with the reason in err on failure. */
uplink_t *uplink_new(void *zctx, const char *edge_id, const char *endpoint, const char *server_key,
                     const char *pub, const char *sec, double ack_timeout, spool_t *spool,
                     char *err, size_t errlen);
void uplink_destroy(uplink_t **self);

/* Sockets to poll for reading: the DEALER (acks) and the monitor (connection events). */
void *uplink_socket(uplink_t *u);
void *uplink_monitor(uplink_t *u);

/* Reads every waiting ack / connection event. */
void uplink_on_acks(uplink_t *u);
void uplink_on_events(uplink_t *u);

/* Sends what is due: new reports within the window, and those whose ack is overdue. */
void uplink_pump(uplink_t *u, double now);

bool uplink_connected(const uplink_t *u);
uint64_t uplink_acks(const uplink_t *u);
uint64_t uplink_sent(const uplink_t *u);

#endif
