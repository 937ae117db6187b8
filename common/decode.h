/*
 * decode: from captured link-layer frames to SIP messages.
 *
 * Peels the layers a SIP capture can have: link (Ethernet, Linux cooked v1
 * and v2, raw IP, BSD loopback/null), VLAN and QinQ tags, PPPoE, MPLS,
 * IPv4 and IPv6 (extension headers, fragments reassembled by ipfrag),
 * tunnels (IP-in-IP, GRE including ERSPAN and PPP), then UDP, TCP (streams
 * reassembled and split by tcpstream) and SCTP DATA chunks. UDP payloads on
 * the SIP ports, or that start like SIP, are messages; HEPv3 datagrams are
 * decapsulated and their inner message used with the inner addresses and
 * timestamp. Everything passed over is counted in the skips table by name.
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
} decode_opts_t;

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
