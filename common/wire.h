/*
 * wire: the ZeroMQ messages between edges and the overlay.
 *
 * Reports go from an edge's DEALER to the overlay's ROUTER as one frame:
 *   "SGR1" | edge id length (1 byte) | edge id | sequence (8 bytes, big-endian)
 *   | report JSON
 * The overlay answers each report it has committed with one frame
 *   "SGA1" | edge id length | edge id | sequence
 * and ignores a report whose (edge id, sequence) it already holds, so an edge
 * may send again whatever it is unsure of. One frame, not a multipart
 * message: libzmq 4.3 aborts (fq.cpp "!_more") when a peer dies while the
 * reader is between the frames of a multipart message, which our fault test
 * provoked. docs/wire.md has the whole protocol, signatures included.
 */
#ifndef SIPGUARD_WIRE_H
#define SIPGUARD_WIRE_H

#include <stddef.h>
#include <stdint.h>

#define WIRE_REPORT "SGR1"
#define WIRE_ACK "SGA1"
/* signature distribution: "SGS1" asks for the active set; "SGN1" | seq | JSON answers it;
 * "SGU1" | seq | JSON publishes a new active set (the whole set: small, and every update then
 * brings a late or lossy subscriber fully up to date) */
#define WIRE_SNAPSHOT_REQ "SGS1"
#define WIRE_SNAPSHOT "SGN1"
#define WIRE_UPDATE "SGU1"
#define WIRE_TAG_LEN 4

#define WIRE_ID_MAX 63

/* A decoded report or ack frame; id and json point into the frame. */
typedef struct {
    const char *id;
    size_t id_len;
    uint64_t seq;
    const char *json; /* reports only */
    size_t json_len;
} wire_msg_t;

/* Size of the frame wire_encode() writes. */
size_t wire_size(size_t id_len, size_t json_len);
/* Writes a report (json != NULL) or ack frame of tag WIRE_REPORT / WIRE_ACK into out (of
 * wire_size() bytes). Returns its length, or 0 when the id is empty or too long. */
size_t wire_encode(uint8_t *out, const char *tag, const char *id, uint64_t seq, const char *json,
                   size_t json_len);
/* Parses a frame of the given tag. Returns 0, or -1 when it is not one. */
int wire_decode(const void *frame, size_t len, const char *tag, wire_msg_t *out);

/* A signature-set frame (WIRE_SNAPSHOT or WIRE_UPDATE): tag | seq (8, big-endian) | JSON.
 * Encode into out (WIRE_TAG_LEN + 8 + len bytes); decode returns 0 or -1. */
size_t wire_encode_set(uint8_t *out, const char *tag, uint64_t seq, const char *json, size_t len);
int wire_decode_set(const void *frame, size_t len, const char *tag, uint64_t *seq,
                    const char **json, size_t *json_len);

/* A ZeroMQ socket of the type, to bind or connect to endpoint, with IPv6 on when the endpoint
 * is an IPv6 address in brackets (tcp://[2001:db8::7]:7070, tcp://[::]:7070 for both
 * families), which libzmq refuses otherwise. Other endpoints keep IPv4 as before: with IPv6
 * on, libzmq would prefer the IPv6 address of a name or an interface, and resolving names
 * here would block the caller. NULL with errno set. */
void *wire_socket(void *zctx, int type, const char *endpoint);

/* Unbinds a socket from endpoint (a concrete one, as ZMQ_LAST_ENDPOINT gives it) and binds it
 * there again: every connection accepted on it is closed, so each peer connects anew and
 * passes the ZAP allowlist again (CURVE checks a key only at the handshake). Returns 0, or
 * -1 with errno set. */
int wire_rebind(void *sock, const char *endpoint);

/* Makes a CURVE key pair (Z85, 40 characters each) in dir/NAME.key and dir/NAME.pub, or reads
 * the existing one. Returns 0, or -1 with the reason in err. */
int wire_keypair(const char *dir, const char *name, char pub[41], char sec[41], char *err,
                 size_t errlen);

#endif
