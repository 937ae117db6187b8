/*
 * edge_ingest: the edge's message sources, several at once.
 *
 *   - HEPv3 over UDP (Kamailio siptrace, OpenSIPS proto_hep, FreeSWITCH,
 *     Asterisk res_hep, heplify), with an optional shared auth key;
 *   - HEPv3 over TCP (OpenSIPS proto_hep, heplify, Kamailio siptrace with
 *     transport=tcp): packets framed by their own length, from up to
 *     INGEST_HEP_TCP_MAX senders at once ([ingest] hep_tcp_per_source from one
 *     source); and the same over TLS (common/tlsconn,
 *     optionally with client certificates), whose senders share those slots;
 *   - plain SIP datagrams mirrored to a UDP port;
 *   - a live interface through libpcap (BPF filter), non-blocking;
 *   - a pcap/pcapng file replayed as fast as possible or at its own pace.
 *
 * Every source has its own decoder (so TCP streams and fragments of one do
 * not mix with another's) and its own skip table; the event loop polls the
 * file descriptors this module lists and calls back for each message.
 */
#ifndef SIPGUARD_EDGE_INGEST_H
#define SIPGUARD_EDGE_INGEST_H

#include <stdbool.h>

#include "edge_config.h"
#include "edge_metrics.h"
#include "msg.h"
#include "tlsconn.h"

/* HEPv3 TCP connections held at once; a sender past them is closed and counted */
#define INGEST_HEP_TCP_MAX 64
/* The most file descriptors ingest_fds lists */
#define INGEST_MAX_FDS (5 + INGEST_HEP_TCP_MAX)

typedef void (*ingest_emit_fn)(void *ctx, source_t src, const msg_t *m);

typedef struct ingest ingest_t;

ingest_t *ingest_new(const edge_config_t *c, edge_metrics_t *metrics, ingest_emit_fn emit,
                     void *ctx, char *err, size_t errlen);
/* Flushes what the decoders still hold (emitting it) and closes every source. */
void ingest_destroy(ingest_t **self);

/* File descriptors to poll for reading; returns how many were written (at most max). */
int ingest_fds(const ingest_t *in, int *fds, int max);
/* Reads what is waiting on fd (a bounded batch, so no source starves the others). */
void ingest_on_readable(ingest_t *in, int fd);

/*
 * Replays what is due from the pcap file. Returns the seconds until the next packet is due
 * (0 when more is ready now), or -1 when there is no replay or it has ended.
 */
double ingest_replay(ingest_t *in, double now);
bool ingest_replay_done(const ingest_t *in);

/* The credentials [ingest] hep_tls_cert, hep_tls_key and hep_tls_client_ca name; NULL with the
 * reason in err (naming the setting and the file). */
tls_creds_t *ingest_tls_creds(const edge_config_t *c, char *err, size_t errlen);
/* Whether hep_tls_listen is open. */
bool ingest_takes_tls(const ingest_t *in);
/* When hep_tls_listen's certificate expires (Unix seconds); -1 when TLS is off. */
long long ingest_tls_expiry(const ingest_t *in);
/* New credentials (a SIGHUP's) for the TLS senders that connect from now on; takes them. */
void ingest_replace_tls(ingest_t *in, tls_creds_t *creds);

/* Once a second (now: a monotonic clock): TLS senders that have not finished their handshake
 * within 10 s are closed, and the log sums up the failures it did not name. */
void ingest_tick(ingest_t *in, double now);

/* Bound ports (0 when the source is off); useful when the config asked for port 0. */
unsigned ingest_hep_port(const ingest_t *in);
unsigned ingest_hep_tcp_port(const ingest_t *in);
unsigned ingest_hep_tls_port(const ingest_t *in);
unsigned ingest_udp_port(const ingest_t *in);

#endif
