/*
 * edge_http: the edge's HTTP endpoint (libmicrohttpd, its own thread).
 *
 *   POST /v1/score   the raw SIP message as the body; optional headers
 *                    X-SIP-Source and X-SIP-Destination (ADDR:PORT or
 *                    [V6]:PORT) and X-SIP-Transport (udp, tcp, sctp).
 *                    Answers JSON: verdict, anomaly, detector, scores,
 *                    thresholds, matched signature ids, parse_ok. For
 *                    inline use by a proxy (Kamailio http_async_client).
 *   GET /v1/bans     the sources banned now ([ban]); DELETE /v1/bans/SOURCE
 *                    lifts one.
 *   GET /metrics     Prometheus text exposition.
 *   GET /healthz     "ok" while the edge runs with a model.
 *
 * Anomalies found through /v1/score are reported like any other, through
 * the callback (called from the HTTP thread).
 */
#ifndef SIPGUARD_EDGE_HTTP_H
#define SIPGUARD_EDGE_HTTP_H

#include <jansson.h>

#include "edge_config.h"
#include "edge_metrics.h"
#include "edge_pipeline.h"
#include "edge_record.h"

typedef struct edge_http edge_http_t;

/* Receives a report (takes the reference); must be thread-safe. */
typedef void (*edge_report_fn)(void *ctx, json_t *report);
/* Whether a report that is due may be made now ([report] max_rate); must be thread-safe.
 * Asked before the report is built, which is most of what a report costs. */
typedef bool (*edge_report_allowed_fn)(void *ctx);

/* bans: the edge's ban table, or NULL when bans are off, and ban_log the budget of the lines
 * naming bans (pipeline_set_bans); record: where the messages judged are kept ([record]), or
 * NULL. */
edge_http_t *edge_http_start(const edge_config_t *c, edge_assets_slot_t *slot,
                             edge_metrics_t *metrics, bantable_t *bans, log_limit_t *ban_log,
                             edge_record_t *record, edge_report_fn report,
                             edge_report_allowed_fn allowed, void *report_ctx, char *err,
                             size_t errlen);
/* --check-config: [http] tls_cert and tls_key go together, read and load. 0, or -1 with the
 * reason in err. */
int edge_http_check_tls(const edge_config_t *c, char *err, size_t errlen);
/* A SIGHUP: [http] tls_cert and tls_key read again (httpd_reload_tls: 1 taken, 0 unchanged, -1
 * refused with the running pair kept, -2 the endpoint down until the next start). */
int edge_http_reload_tls(edge_http_t *h, const edge_config_t *c, char *err, size_t errlen);
/* The port it listens on (useful when the config asked for port 0). */
unsigned edge_http_port(const edge_http_t *h);
void edge_http_stop(edge_http_t **self);

/* Parses "1.2.3.4:5060" or "[2001:db8::1]:5060". Returns 0 or -1. */
int edge_parse_endpoint(const char *s, endpoint_t *ep);

#endif
