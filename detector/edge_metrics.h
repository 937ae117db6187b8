/*
 * edge_metrics: the edge's counters, and their Prometheus text exposition.
 *
 * Counters are atomics so that the ingest loop and the HTTP thread update
 * them without locks. The exposition follows text format 0.0.4: one
 * `sipguard_` prefix, `_total` counters, base units, low-cardinality labels.
 */
#ifndef SIPGUARD_EDGE_METRICS_H
#define SIPGUARD_EDGE_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edge_pipeline.h"
#include "edge_senders.h"

#define METRICS_BUCKETS 14

typedef enum { SRC_HEP = 0, SRC_UDP, SRC_PCAP, SRC_LIVE, SRC_HTTP, SRC_COUNT } source_t;

typedef struct {
    atomic_uint_fast64_t messages[SRC_COUNT][VERDICT_COUNT];
    atomic_uint_fast64_t waived[WAIVED_COUNT][VERDICT_COUNT]; /* answered normal, by why */
    atomic_uint_fast64_t allowlist_entries;
    atomic_bool monitor;
    atomic_uint_fast64_t bans_active, bans_domain, bans_tracked, bans, ban_untracked; /* [ban] */
    atomic_uint_fast64_t parse_failures;
    atomic_uint_fast64_t skipped;      /* datagrams/packets a reader passed over */
    atomic_uint_fast64_t hep_rejected; /* bad HEP, wrong auth key */
    atomic_uint_fast64_t hep_tcp_connections, hep_tcp_refused; /* HEPv3 senders over TCP */
    atomic_uint_fast64_t hep_tcp_evicted;        /* silent senders closed for new ones */
    atomic_uint_fast64_t hep_tcp_source_limited; /* of the refused, by hep_tcp_per_source */
    atomic_uint_fast64_t hep_tls_failed;         /* TLS senders whose handshake or session failed */
    atomic_int_fast64_t hep_tls_expiry;   /* when the TLS certificate expires (Unix s); 0: no TLS */
    atomic_uint_fast64_t capture_dropped; /* live capture: ring full or interface drops */
    atomic_uint_fast64_t capture_copies;  /* cooked capture: a packet's copies, dropped */
    atomic_uint_fast64_t tcp_held;        /* bytes TCP reassembly holds (live, replay) */
    atomic_uint_fast64_t udp_dropped[2];  /* by the kernel, socket buffer full: hep, udp */
    atomic_uint_fast64_t local_runs;
    atomic_uint_fast64_t fired[6]; /* signature, global, local, flood, dialog, binding */
    atomic_uint_fast64_t latency_bucket[METRICS_BUCKETS + 1]; /* +Inf last */
    atomic_uint_fast64_t latency_count;
    _Atomic double latency_sum;
    atomic_uint_fast64_t reports, reports_dropped, report_write_errors;
    atomic_uint_fast64_t reports_rate_limited; /* not made: over [report] max_rate */
    atomic_uint_fast64_t spool_bytes, spool_pending;
    atomic_uint_fast64_t signatures, signature_sequence;
    atomic_uint_fast64_t signature_set_applied_us; /* Unix time (µs) the set took effect */
    atomic_uint_fast64_t reloads, reload_failures;
    atomic_bool overlay_connected, overlay_configured;
    atomic_uint_fast64_t acks;
    atomic_uint_fast64_t record_messages, record_dropped, record_files; /* [record] */
    /* the context detectors' tables: state given up or refused for want of room, and gauges */
    atomic_uint_fast64_t flood_evicted, dialog_evicted, dialog_resumed, bindings_refused;
    /* the dialog detector's feed: messages it left unjudged while the feed carried no
     * responses, responses its model (trained on requests alone) passed over, and whether it
     * stands aside now */
    atomic_uint_fast64_t dialog_unjudged, dialog_passed_over, dialog_aside;
    atomic_uint_fast64_t flood_capacity, dialog_open, dialog_finished, dialog_capacity;
    atomic_uint_fast64_t bindings, binding_capacity;
    edge_senders_t *senders; /* the HEP senders heard, by address; NULL: not kept */
} edge_metrics_t;

void metrics_init(edge_metrics_t *m);
/* Counts one scored message. */
void metrics_message(edge_metrics_t *m, source_t src, const edge_result_t *r);
/* Writes the exposition into a new malloc'd string. */
char *metrics_render(edge_metrics_t *m);
const char *metrics_source_name(source_t s);

#endif
