/*
 * pcapw: writes SIP messages as a classic pcap capture (Ethernet framing).
 *
 * Each message becomes one frame: Ethernet, IPv4 or IPv6, then UDP, or TCP
 * (a connection opens with SYN, SYN-ACK, ACK; then one PSH|ACK segment per
 * message, with per-direction sequence numbers and the peer's as ACK),
 * with correct IP, UDP and TCP checksums, so tshark and libpcap readers
 * accept it. Used by the traffic generator and by tests that need captures
 * made at test time.
 */
#ifndef SIPGUARD_PCAPW_H
#define SIPGUARD_PCAPW_H

#include <stdio.h>

#include "msg.h"

typedef struct pcapw pcapw_t;

/* Opens path for writing (truncates). Returns NULL with errno set. */
pcapw_t *pcapw_open(const char *path);
/* Writes into an already open stream (not closed by pcapw_close). */
pcapw_t *pcapw_from_file(FILE *f);
/* Writes one message with its endpoints, transport and timestamp (MAC from src_mac when set). */
int pcapw_write(pcapw_t *w, const msg_t *m);
/* Writes a UDP datagram carrying arbitrary payload (e.g. HEP) between m's endpoints. */
int pcapw_write_udp(pcapw_t *w, const msg_t *m, const uint8_t *payload, size_t len);
/* Flushes and closes; returns 0, or -1 when a write failed at any point. */
int pcapw_close(pcapw_t **w);

#endif
