/*
 * edge_senders: the HEP senders an edge hears (the proxies that mirror to it, by the address
 * their datagrams or connections come from), each with the messages it gave and when it last
 * gave one, for /metrics. An edge fed by three proxies whose one stops mirroring still judges
 * the other two's traffic, so the total cannot show it; a sender's own last-message time can,
 * and an alert watches it. Its responses are counted apart: a proxy that mirrors the requests
 * it receives and not its replies leaves the dialog detector half of each conversation, and
 * while the others' replies keep that detector judging, only this count shows which one.
 *
 * Two senders may mirror the same message (capture agents on both ends of a leg, as Homer
 * setups run them): the later copy, the same bytes between the same endpoints from another
 * sender within EDGE_SENDERS_COPY_SECONDS of arrival, is a copy, dropped and counted, not
 * judged twice (it would look like a retransmission to the dialog detector, and count twice
 * for the flood detector). The same bytes again from the same sender are a message of their
 * own: a retransmission, or a flood of identical packets, which must count.
 *
 * The table is bounded (EDGE_SENDERS_MAX), so spoofed HEP datagrams cannot grow it or the
 * metrics' label set: a sender past it is counted in untracked, not kept, and a place is
 * reused once its sender has been silent for EDGE_SENDERS_FORGET_SECONDS. Only the ingest
 * thread counts; the HTTP thread lists. Counts and times are atomics, and the table's shape
 * (which address is where) changes only under the lock, which a listing takes.
 */
#ifndef SIPGUARD_EDGE_SENDERS_H
#define SIPGUARD_EDGE_SENDERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"

#define EDGE_SENDERS_MAX 64
#define EDGE_SENDERS_FORGET_SECONDS 86400.0
#define EDGE_SENDERS_COPY_SECONDS 1.0 /* two agents' copies arrive within milliseconds */
/* recent messages remembered, by a hash of each: buckets of EDGE_SENDERS_COPY_WAYS, the oldest
 * giving its place, so that a copy is found though thousands of messages came between (a
 * direct-mapped table lost 16 of 4,636 copies that came 0.1-0.2 s apart at 2,000 a second) */
#define EDGE_SENDERS_COPY_BUCKETS 16384
#define EDGE_SENDERS_COPY_WAYS 4

typedef struct edge_senders edge_senders_t;

typedef struct {
    endpoint_t addr; /* port 0: a proxy may send from several */
    uint64_t messages;
    uint64_t responses; /* of the messages */
    double last;        /* Unix seconds of its last message */
} edge_sender_t;

/* NULL when out of memory. */
edge_senders_t *edge_senders_new(void);
void edge_senders_destroy(edge_senders_t **self);

/* Counts a message (a response or not) from the sender at addr at now (Unix seconds); the
 * ingest thread only. */
void edge_senders_count(edge_senders_t *s, const endpoint_t *addr, double now, bool response);

/* Copies the senders heard within EDGE_SENDERS_FORGET_SECONDS of now into out (room for
 * EDGE_SENDERS_MAX), in the order they were first heard; returns how many. */
size_t edge_senders_list(edge_senders_t *s, edge_sender_t *out, double now);

/* Forgets the sender at addr (a proxy taken out of service): it is no longer listed, and its
 * place may go to another, until it sends again; its message count goes on then. Returns
 * whether the table held it (not forgotten already). Any thread. */
bool edge_senders_forget(edge_senders_t *s, const endpoint_t *addr);

/* Whether m, from the sender at addr at now (Unix seconds of arrival), is a copy of a message
 * another sender gave within EDGE_SENDERS_COPY_SECONDS (above); counted when it is. The
 * ingest thread only. */
bool edge_senders_copy(edge_senders_t *s, const endpoint_t *addr, const msg_t *m, double now);

/* Copies dropped so. */
uint64_t edge_senders_copies(const edge_senders_t *s);

/* Messages from senders the table had no room for. */
uint64_t edge_senders_untracked(const edge_senders_t *s);

#endif
