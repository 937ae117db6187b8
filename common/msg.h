/*
 * msg: the record of one SIP message as every reader hands it on.
 *
 * A reader (pcap, HEP, raw files) fills one msg_t per SIP message with where
 * it came from (input name and 0-based index in capture order), when, between
 * which endpoints over which transport, and the exact bytes. The bytes stay
 * owned by the reader and are valid until its next call.
 */
#ifndef SIPGUARD_MSG_H
#define SIPGUARD_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    TRANSPORT_NONE = 0, /* raw message file: no packet, no transport */
    TRANSPORT_UDP,
    TRANSPORT_TCP,
    TRANSPORT_SCTP,
    TRANSPORT_WS, /* SIP over WebSocket (RFC 7118), over TCP */
} transport_t;

typedef struct {
    int family; /* 4, 6, or 0 when unknown */
    uint8_t addr[16];
    uint16_t port;
} endpoint_t;

typedef struct {
    const char *input; /* name of the input (file path) */
    uint64_t index;    /* 0-based, in capture order within the input */
    int64_t ts_sec;    /* capture time, seconds since the epoch */
    int32_t ts_usec;   /* and microseconds */
    endpoint_t src, dst;
    transport_t transport;
    bool has_mac; /* Ethernet source address known */
    uint8_t src_mac[6];
    bool via_hep;        /* decapsulated from HEPv3: addresses are the inner ones */
    bool truncated;      /* cut to the reader's message size limit, or incomplete */
    const uint8_t *data; /* the exact message bytes */
    size_t len;
} msg_t;

/* Longest text msg_endpoint_format() writes, including the NUL. */
#define MSG_ENDPOINT_STRLEN 56

/* Writes "1.2.3.4:5060" or "[2001:db8::1]:5060" (or "" when unknown) to buf. */
void msg_endpoint_format(const endpoint_t *ep, char buf[MSG_ENDPOINT_STRLEN]);
/* Writes the address only, without port (buf of at least 46 bytes). */
void msg_address_format(const endpoint_t *ep, char buf[46]);
/* Same family and address (and port, when with_port). */
bool msg_endpoint_equal(const endpoint_t *a, const endpoint_t *b, bool with_port);
/* The 12 bytes that start an IPv4 address written as IPv6 (::ffff:a.b.c.d), as a socket
 * bound to [::] sees IPv4 peers. */
extern const uint8_t msg_v4_mapped_prefix[12];
/* Whether a 16-byte address is an IPv4 one written as IPv6. */
bool msg_is_v4_mapped(const uint8_t addr[16]);
/* "udp", "tcp", "sctp" or "none". */
const char *msg_transport_name(transport_t t);

#endif
