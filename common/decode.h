/*
 * decode: from captured link-layer frames to SIP messages.
 *
 * Peels the layers a SIP capture can have: link (Ethernet, Linux cooked v1
 * and v2, raw IP, BSD loopback/null), VLAN and QinQ tags, PPPoE, MPLS,
 * IPv4 and IPv6 (extension headers, fragments reassembled by ipfrag),
 * tunnels (IP-in-IP, GRE including ERSPAN and PPP, VXLAN, GENEVE, TZSP), then UDP, TCP
 * (streams reassembled and split by tcpstream) and SCTP DATA chunks. UDP payloads
 * on the SIP ports, or that start like SIP, are messages; HEPv3 datagrams (and
 * HEPv1/v2 on the HEP port) are decapsulated and their inner message used with
 * the inner addresses and timestamp. Everything passed over is counted in the skips table by name.
 *
 * A capture on Linux's "any" device (Linux cooked headers) shows a packet once for every
 * interface it crosses: sent and received on loopback, on a bridge and the container's
 * veth. Such copies are dropped (counted) unless keep_copies is set: a copy is the same
 * network-layer bytes within COPY_WINDOW_US of their first sighting, on another interface
 * where the header says which (SLL2), at most COPY_MAX of them a first sighting.
 */
#ifndef SIPGUARD_DECODE_H
#define SIPGUARD_DECODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "skips.h"

typedef struct {
    uint16_t port_lo, port_hi; /* SIP ports, inclusive (default 5060-5090) */
    bool sniff;                /* also take payloads on other ports that start like SIP */
    uint16_t hep_port;         /* HEPv3 port (default 9060); HEP3 magic is recognised anywhere */
    size_t max_msg;            /* longer messages are cut and marked truncated (default 65535) */
    int tcp_streams;           /* TCP connection directions followed at once (default 65536) */
    size_t tcp_memory;         /* bytes all TCP streams may hold together (default 512 MiB) */
    bool keep_copies;          /* keep a cooked capture's copies of a packet (default false) */
    bool hep_only; /* every datagram is HEP (the edge's HEP listener): v1 and v2 on any port */
} decode_opts_t;

/* The kernel hands the any device's copies on within microseconds; 5 ms leaves room for a
 * loaded host. A retransmission comes 500 ms later at the earliest (T1), and a new send
 * carries a new IPv4 identification, so neither is taken for a copy. */
#define COPY_WINDOW_US 5000
/* Sightings past the first that one packet may have: loopback, a bridge and its veth, a bond and
 * its slave show a packet twice; a VLAN on a bond three times. Bounds what a flood of
 * byte-identical packets faster than one per window (IPv6 datagrams from one socket, or a
 * raw-socket tool that repeats its IPv4 identification) can lose: two in three at most. */
#define COPY_MAX 2
/* The skips table's name for a dropped copy. */
#define DECODE_COPY_REASON "linux cooked: copy of a packet seen on another interface"

void decode_opts_default(decode_opts_t *o);

typedef struct decode decode_t;

/* Receives each message; m->data is valid during the call only. */
typedef void (*decode_emit_fn)(void *ctx, const msg_t *m);

decode_t *decode_new(const decode_opts_t *opts, skips_t *skips, decode_emit_fn emit, void *ctx);
void decode_destroy(decode_t **self);

/* Decodes one captured frame of the given libpcap link type (DLT_*). */
void decode_packet(decode_t *self, int linktype, int64_t sec, int32_t usec, const uint8_t *pkt,
                   size_t caplen, size_t wirelen);

/* Handles one UDP payload whose addresses are known (a mirror port, a HEP listener). */
void decode_udp_payload(decode_t *self, const msg_t *tmpl, const uint8_t *payload, size_t len);

/* True when the link type is one decode_packet() understands. */
bool decode_linktype_supported(int linktype);

/* Emits what TCP streams still hold and counts unfinished fragments (end of input). */
void decode_flush(decode_t *self);

/* Bytes the TCP streams hold now (at most decode_opts_t.tcp_memory). */
size_t decode_tcp_held(const decode_t *self);

#endif
