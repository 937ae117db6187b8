/*
 * wire: the ZeroMQ messages between edges and the overlay.
 *
 * Reports go from an edge's DEALER to the overlay's ROUTER as three frames:
 *   "SGR1" | edge id | sequence (8 bytes, big-endian) | report JSON
 * (four frames in all). The overlay answers each report it has committed with
 *   "SGA1" | edge id | sequence
 * and ignores a report whose (edge id, sequence) it already holds, so an edge
 * may send again whatever it is unsure of. docs/wire.md has the whole
 * protocol, signatures included.
 */
#ifndef SIPGUARD_WIRE_H
#define SIPGUARD_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define WIRE_REPORT "SGR1"
#define WIRE_ACK "SGA1"
#define WIRE_TAG_LEN 4

void wire_put_seq(uint8_t out[8], uint64_t seq);
/* Reads a sequence frame; returns 0, or -1 when it is not 8 bytes. */
int wire_get_seq(const void *frame, size_t len, uint64_t *seq);

/* Makes a CURVE key pair (Z85, 40 characters each) in dir/NAME.key and dir/NAME.pub, or reads
 * the existing one. Returns 0, or -1 with the reason in err. */
int wire_keypair(const char *dir, const char *name, char pub[41], char sec[41], char *err,
                 size_t errlen);

#endif
