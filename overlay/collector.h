/*
 * collector: the overlay's report intake (ZeroMQ ROUTER with CURVE).
 *
 * Only edges whose public keys are configured get in: a ZAP handler (RFC 27)
 * answers the CURVE handshakes and names the edge, and a report whose edge id
 * is not the one its key belongs to is refused. The admitted keys can be
 * replaced while running (the overlay's SIGHUP). Each report is checked
 * (frame, size, JSON, the fields and types of docs/report-schema.json) before
 * anything is stored; a batch of reports is written in one transaction and
 * acknowledged only after it committed. Refused reports are recorded with
 * their reason, counted and acknowledged too, so that a bad report cannot
 * block an edge's spool; if the commit fails (full disk), nothing is
 * acknowledged and the edges send again later.
 */
#ifndef SIPGUARD_COLLECTOR_H
#define SIPGUARD_COLLECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define COLLECTOR_MAX_EDGES 1024

typedef struct {
    char id[64];
    char key[41]; /* Z85 public key */
} edge_key_t;

/* Why reports were refused (metrics labels). */
enum {
    REJ_FRAME = 0, /* not a report frame */
    REJ_IDENTITY,  /* edge id does not match the key it connected with */
    REJ_OVERSIZE,
    REJ_JSON,   /* malformed JSON */
    REJ_FIELDS, /* missing fields or wrong types */
    REJ_REASONS
};

typedef struct {
    uint64_t received, stored, duplicates, rejected[REJ_REASONS], zap_denied, commit_failures;
    uint64_t clean; /* of stored: normal messages edges sampled (the clean sample) */
    size_t edges;   /* admitted now */
} collector_stats_t;

const char *collector_reason_name(int reason);

typedef struct collector collector_t;

/* Binds the ROUTER at endpoint with the overlay's secret key; edges are the admitted keys.
 * NULL with the reason in err. */
collector_t *collector_new(void *zctx, const char *endpoint, const char *secret_key,
                           const edge_key_t *edges, size_t n_edges, size_t max_report,
                           store_t *store, char *err, size_t errlen);
void collector_destroy(collector_t **self);

/* Sockets to poll: the ROUTER and the ZAP handler. */
void *collector_socket(collector_t *c);
void *collector_zap(collector_t *c);

/* Admits these edges from now on instead (the configuration read again): handshakes are
 * answered by the new list, and reports from a connection whose edge is no longer admitted
 * are refused (REJ_IDENTITY). 0, or -1 when out of memory (the old list stays). */
int collector_set_edges(collector_t *c, const edge_key_t *edges, size_t n_edges);

/* Closes every edge's connection to the report socket, which stays bound: each edge connects
 * again and passes the new list at its handshake, so an edge taken off is refused there and
 * its reports wait in its spool, unacknowledged, instead of being refused one by one. 0, or
 * -1 with the reason in err. */
int collector_drop_peers(collector_t *c, char *err, size_t errlen);

/* Whether reports changed the domain's bans (store_put_ban) since the last call. A report
 * whose judgement banned its source ("banned_for", "ban_source") records the ban. */
bool collector_take_bans_changed(collector_t *c);

/* Answers waiting handshakes. */
void collector_on_zap(collector_t *c);
/* Now and then (each turn of the loop): sums up in the log the refused clients it did not name
 * one by one. */
void collector_tick(collector_t *c);
/* Takes up to a batch of waiting reports: checks, stores, commits, acks. */
void collector_on_reports(collector_t *c, double now);

/* Where it listens (after a wildcard port: the one bound). */
const char *collector_endpoint(const collector_t *c);
void collector_stats(const collector_t *c, collector_stats_t *out);

/* Checks one report's JSON against the schema's required fields. NULL when it is fine, else
 * a static reason naming the field. */
const char *collector_check_report(const char *json, size_t len, const char *edge, uint64_t seq,
                                   int *reason);
/* The same, also giving the report's signature_sequence (the set the edge enforced; -1 when
 * the report does not say). */
const char *collector_check_report_ex(const char *json, size_t len, const char *edge, uint64_t seq,
                                      int *reason, int64_t *sigseq);

#endif
