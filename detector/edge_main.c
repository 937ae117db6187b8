/*
 * sipguard-edge: the detector daemon beside a border node.
 *
 * One event loop (zmq_poll over the ingest sockets, the overlay socket and a
 * signal pipe) runs every message through the pipeline and hands reports to
 * the sink: the spool and uplink to the overlay, and/or JSON Lines. The HTTP
 * endpoint runs in libmicrohttpd's thread with its own pipeline and queues
 * its reports to the loop, which alone touches the spool and ZeroMQ.
 * SIGHUP reads the configuration again and applies the settings that can change while running
 * (edge_config's live ones), reloads signatures and allowed sources (and the model where it
 * changed) and reopens the JSON Lines file, without stopping; SIGTERM/SIGINT stop taking
 * input, flush, wait briefly for the overlay's last acks, and exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "cliopt.h"
#include "edge_config.h"
#include "fsutil.h"
#include "edge_http.h"
#include "edge_ingest.h"
#include "edge_metrics.h"
#include "edge_pipeline.h"
#include "edge_record.h"
#include "edge_sigsub.h"
#include "edge_spool.h"
#include "edge_uplink.h"
#include "log.h"
#include "monotime.h"
#include "tlsconn.h"
#include "wire.h"

#ifndef SIPGUARD_VERSION
#define SIPGUARD_VERSION "dev"
#endif

#define DRAIN_SECONDS 5.0

static const cliopt_t edge_opts[] = {
    {"config", 'c', "FILE", "INI configuration file (see --print-config)", NULL},
    {"model", 'm', "MODEL", "model file; the same as --set edge.model=MODEL", NULL},
    {"set", 's', "SECTION.KEY=VALUE", "override one setting of the file (repeatable)", NULL},
    {"check-config", 0, NULL,
     "read the configuration, load model and signatures, check that the files and directories "
     "the edge writes can be written, print the effective settings, exit",
     NULL},
    {"print-config", 0, NULL, "print a commented configuration with every setting, exit", NULL},
    {"ports-file", 0, "FILE",
     "write the bound ports (hep, udp, http, hep_tcp, hep_tls) to FILE once listening, for scripts "
     "and "
     "tests",
     NULL},
    {"version", 'V', NULL, "print the version", NULL},
    {"help", 'h', NULL, "show this help", NULL},
    {0},
};

static const clicmd_t edge_cmd = {
    "sipguard-edge [-c FILE] [--set SECTION.KEY=VALUE]... [OPTIONS]",
    "Scores every SIP message seen at a border node in real time. Messages come from HEPv3\n"
    "over UDP, TCP or TLS (Kamailio siptrace, OpenSIPS, FreeSWITCH, Asterisk, heplify; each\n"
    "sender counted apart in the metrics, GET /v1/senders lists them and DELETE\n"
    "/v1/senders/ADDRESS forgets one), a UDP mirror port, a live interface, a pcap file\n"
    "replay, or one at a time over HTTP (POST /v1/score, for inline use by a proxy). Each\n"
    "goes through the conformance check, inline signature matching, the global and local\n"
    "content models (and with [detectors] context the flood, dialog and binding detectors),\n"
    "and gets a verdict; anomalies are reported as JSON to the overlay over ZeroMQ (CURVE,\n"
    "acknowledged, spooled on disk until acknowledged) and/or as JSON Lines. GET /metrics\n"
    "serves Prometheus metrics (the context detectors' tables among them: what they hold and\n"
    "what they gave up for room), GET /healthz a health check. Sources in [verdict]\n"
    "allow_file (your own PBXs, trunks, proxies) are never answered with a blocking verdict;\n"
    "[verdict] monitor = yes answers every caller normal (a dry run) while judging, counting\n"
    "and reporting as usual. With [ban] after = N, a source whose requests draw N blocking\n"
    "judgements within [ban] window is banned (its messages answered banned, unscored; longer\n"
    "each time; kept across restarts; GET /v1/bans lists them, DELETE /v1/bans/SOURCE lifts\n"
    "one). With [ban] domain = yes it also bans the sources the domain's other edges banned,\n"
    "which the overlay sends with its set. With [record] dir set, the messages judged normal\n"
    "(or anomalous, or all) are kept as rotated pcap files to train the next model on.\n"
    "Signals: SIGHUP reads the configuration again and applies the settings --print-config\n"
    "marks (model, scoring, signatures, allowed sources, monitor, bans, reports, recording,\n"
    "log level; the others wait for the next start, and a file that does not read is refused\n"
    "whole), reloads signatures and allowed sources, and the model and context model where\n"
    "their files changed (an unchanged context model keeps the flood, dialog and binding\n"
    "state), reopens the JSON Lines file and finishes the recorded file, without dropping\n"
    "traffic; SIGTERM and SIGINT drain and exit. Settings: docs/edge.md, or --print-config.",
    edge_opts,
    "exit status: 0 clean stop, 1 failure (bad model, cannot listen, ...), 2 usage or\n"
    "configuration error.\n\n"
    "examples:\n"
    "  sipguard-edge -m edge.model --set ingest.hep_listen=0.0.0.0:9060 --set report.jsonl=-\n"
    "  sipguard-edge -c /etc/sipguard/edge.conf --check-config",
};

typedef struct report_node {
    json_t *report;
    struct report_node *next;
} report_node_t;

typedef struct {
    edge_config_t c;
    int argc; /* the command line, read again by a SIGHUP */
    char **argv;
    edge_metrics_t metrics;
    edge_assets_slot_t *slot;
    pipeline_t *pipe;
    ingest_t *ingest;
    edge_http_t *http;
    void *zctx;
    spool_t *spool;
    uplink_t *uplink;
    sigsub_t *sigsub;
    edge_record_t *record; /* [record]: made at start, writing while dir is set */
    bantable_t *bans;      /* made at start, used while [ban] after > 0 or domain = yes */
    char ban_file[600];    /* empty until bans are first on: then read back, and saved */
    bool ban_save_failing; /* the last save failed (logged once) */
    /* the context tables' losses (dialog legs, bindings, flood counters) at the last warning */
    uint64_t ctx_lost_logged[3];
    double ctx_logged_at; /* mono_now of that warning; 0: none yet */
    /* what the log last said of the dialog detector's feed: standing aside for want of
     * responses; a model of requests alone */
    bool dialog_aside_logged, requests_only_logged;
    double ban_saved_at; /* when the table was last written (ban_clock) */
    log_limit_t ban_log; /* [ban] log_max: the lines naming bans, shared by both pipelines */
    char sig_cache[512];
    FILE *jsonl;
    uint64_t local_seq;
    double sample_acc;         /* normal sampling: a deterministic stride, not a coin */
    pthread_mutex_t rate_lock; /* the report rate's token bucket, asked by both threads: */
    double tokens, refilled;   /* its tokens, and when it was last filled */
    uint64_t limited_logged;   /* rate-limited reports already named in the log */
    double limit_logged_at;
    uint64_t jsonl_unflushed; /* reports in the JSON Lines buffer since the last good flush */
    pthread_mutex_t qlock;    /* reports from the HTTP thread */
    report_node_t *qhead, *qtail;
} edge_t;

static volatile sig_atomic_t got_term, got_hup;
static int sig_pipe[2] = {-1, -1};

static void on_signal(int sig)
{
    int saved = errno;
    if (sig == SIGHUP)
        got_hup = 1;
    else
        got_term = 1;
    if (write(sig_pipe[1], "x", 1) < 0) {
        /* the pipe is full: a wake-up is already pending */
    }
    errno = saved;
}

/* Counts reports the JSON Lines file did not take. A full disk fails every write: the error is
 * logged on the first and then every 10,000th. */
static void jsonl_failed(edge_t *e, uint64_t reports)
{
    uint64_t before = atomic_fetch_add(&e->metrics.report_write_errors, reports);
    if (before / 10000 != (before + reports) / 10000 || before == 0)
        error("cannot write to %s: %s (%llu reports not written so far)", e->c.jsonl,
              strerror(errno), (unsigned long long)(before + reports));
    clearerr(e->jsonl);
}

/* Writes out the JSON Lines buffer; what a failed flush held is counted as not written. */
static void jsonl_flush(edge_t *e)
{
    if (!e->jsonl)
        return;
    if (fflush(e->jsonl) != 0)
        jsonl_failed(e, e->jsonl_unflushed);
    e->jsonl_unflushed = 0;
}

/* Gives a report its sequence number and writes it to the spool and the JSON Lines file. */
static void sink_report(edge_t *e, json_t *r)
{
    uint64_t seq = e->spool ? spool_next_seq(e->spool) : ++e->local_seq;
    json_object_set_new(r, "seq", json_integer((json_int_t)seq));
    char *s = json_dumps(r, JSON_COMPACT);
    json_decref(r);
    if (!s)
        return;
    atomic_fetch_add(&e->metrics.reports, 1);
    if (e->spool && spool_append(e->spool, s, strlen(s)) == 0)
        atomic_fetch_add(&e->metrics.report_write_errors, 1);
    if (e->jsonl) {
        if (fputs(s, e->jsonl) < 0 || fputc('\n', e->jsonl) < 0)
            jsonl_failed(e, 1);
        else
            e->jsonl_unflushed++;
    }
    free(s);
}

/*
 * Whether one more report fits [report] max_rate: a token bucket that fills at max_rate a
 * second and holds a second's worth. A flood makes every message an anomaly; building,
 * spooling and sending a report for each would cost the edge more than judging it, and
 * fill the link and the overlay with copies of one attack. Messages past the rate are still
 * judged, counted by verdict, and blocked by signatures; only their reports are not made.
 * Asked before a report is built, by the loop and by the HTTP thread. The log names the
 * count at most once a minute.
 */
static bool report_allowed(void *ctx)
{
    edge_t *e = ctx;
    if (e->c.max_rate <= 0)
        return true;
    pthread_mutex_lock(&e->rate_lock);
    double now = mono_now();
    e->tokens += (now - e->refilled) * e->c.max_rate;
    e->refilled = now;
    if (e->tokens > e->c.max_rate)
        e->tokens = e->c.max_rate;
    bool allowed = e->tokens >= 1;
    if (allowed) {
        e->tokens -= 1;
    } else {
        uint64_t limited = atomic_fetch_add(&e->metrics.reports_rate_limited, 1) + 1;
        if (now - e->limit_logged_at >= 60) {
            warning("reports over max_rate (%g a second): %" PRIu64 " not made since the last "
                    "warning",
                    e->c.max_rate, limited - e->limited_logged);
            e->limited_logged = limited;
            e->limit_logged_at = now;
        }
    }
    pthread_mutex_unlock(&e->rate_lock);
    return allowed;
}

/* Called from the HTTP thread: queue for the loop. */
static void queue_report(void *ctx, json_t *r)
{
    edge_t *e = ctx;
    report_node_t *n = malloc(sizeof *n);
    if (!n) {
        json_decref(r);
        return;
    }
    n->report = r;
    n->next = NULL;
    pthread_mutex_lock(&e->qlock);
    if (e->qtail)
        e->qtail->next = n;
    else
        e->qhead = n;
    e->qtail = n;
    pthread_mutex_unlock(&e->qlock);
}

static void drain_queue(edge_t *e)
{
    pthread_mutex_lock(&e->qlock);
    report_node_t *n = e->qhead;
    e->qhead = e->qtail = NULL;
    pthread_mutex_unlock(&e->qlock);
    while (n) {
        report_node_t *next = n->next;
        sink_report(e, n->report); /* the HTTP thread asked report_allowed before making it */
        free(n);
        n = next;
    }
}

/* One normal message in 1 / normal_sample goes to the overlay as a clean sample. */
static bool sampled(edge_t *e)
{
    if (e->c.normal_sample <= 0)
        return false;
    e->sample_acc += e->c.normal_sample;
    if (e->sample_acc < 1)
        return false;
    e->sample_acc -= 1;
    return true;
}

static void on_message(void *ctx, source_t src, const msg_t *m)
{
    edge_t *e = ctx;
    edge_result_t r;
    if (pipeline_run(e->pipe, m, &r) != 0) {
        error("out of memory scoring message %" PRIu64 " of %s", m->index, m->input);
        return;
    }
    metrics_message(&e->metrics, src, &r);
    record_message(e->record, m, &r);
    /* an allowed source's traffic is neither attack nor clean material for the overlay; a
     * banned source's messages were not judged, and the ban was reported with what started it */
    if (!r.allowed && r.verdict != VERDICT_BANNED &&
        (r.verdict != VERDICT_NORMAL || !e->c.anomalies_only || sampled(e)) && report_allowed(e))
        sink_report(e, pipeline_report(e->pipe, m, &r));
}

static void impose_domain_bans(edge_t *e);
static void reload_config(edge_t *e);

/* The assets of c: the signatures and the allowed sources read again, and the model and the
 * context model where their files changed. NULL when one does not read (logged and counted). */
static edge_assets_t *reload_assets(edge_t *e, const edge_config_t *c, edge_reload_t *what)
{
    char err[600];
    edge_assets_t *a = edge_assets_reload(e->slot, c, what, err, sizeof err);
    if (!a) {
        atomic_fetch_add(&e->metrics.reload_failures, 1);
        error("reload refused, the previous settings, model, signatures and allowed sources stay "
              "in use: %s",
              err);
    }
    return a;
}

/* Puts assets that reload_assets made in use. */
static void publish_assets(edge_t *e, edge_assets_t *a, const edge_reload_t *what)
{
    edge_assets_publish(e->slot, a);
    impose_domain_bans(e);
    atomic_fetch_add(&e->metrics.reloads, 1);
    info("reloaded: model %s %s%s%s%s%s%s", e->c.model,
         what->model ? "read anew" : "unchanged, kept",
         e->c.signatures_file[0] ? ", signatures " : "", e->c.signatures_file,
         e->c.allow_file[0] ? ", allowed sources " : "", e->c.allow_file,
         what->context ? "; the context model changed: its detectors' state starts afresh" : "");
}

/* A signature set from the overlay: the assets again, with the settings in use. */
static void reload(edge_t *e)
{
    edge_reload_t what;
    edge_assets_t *a = reload_assets(e, &e->c, &what);
    if (a)
        publish_assets(e, a, &what);
}

static void update_gauges(edge_t *e)
{
    size_t nsig, allowed;
    uint64_t sigseq;
    model_stats_t st;
    edge_assets_info(e->slot, &nsig, &sigseq, &st, &allowed);
    atomic_store(&e->metrics.signatures, nsig);
    atomic_store(&e->metrics.allowlist_entries, allowed);
    if (atomic_exchange(&e->metrics.signature_sequence, sigseq) != sigseq) {
        struct timespec now; /* when this set took effect (for the overlay's latency figures) */
        clock_gettime(CLOCK_REALTIME, &now);
        atomic_store(&e->metrics.signature_set_applied_us,
                     (uint64_t)now.tv_sec * 1000000u + (uint64_t)now.tv_nsec / 1000u);
    }
    if (e->spool) {
        spool_stats_t ss;
        spool_stats(e->spool, &ss);
        atomic_store(&e->metrics.spool_bytes, ss.bytes);
        atomic_store(&e->metrics.spool_pending, ss.pending);
        atomic_store(&e->metrics.reports_dropped, ss.dropped);
    }
    if (e->uplink) {
        atomic_store(&e->metrics.overlay_connected, uplink_connected(e->uplink));
        atomic_store(&e->metrics.acks, uplink_acks(e->uplink));
    }
}

/* What the context tables gave up for room, in the log for those who read no metrics: the first
 * time, then at most once an hour, with what was lost since the last warning. */
#define CONTEXT_WARN_SECONDS 3600.0
static void warn_context_losses(edge_t *e, const context_stats_t *st)
{
    uint64_t now_lost[3] = {atomic_load(&e->metrics.dialog_evicted),
                            atomic_load(&e->metrics.bindings_refused),
                            atomic_load(&e->metrics.flood_evicted)};
    uint64_t *was = e->ctx_lost_logged;
    bool more = now_lost[0] > was[0] || now_lost[1] > was[1] || now_lost[2] > was[2];
    double t = mono_now();
    if (!more || (e->ctx_logged_at > 0 && t - e->ctx_logged_at < CONTEXT_WARN_SECONDS))
        return;
    if (now_lost[0] > was[0])
        warning("the dialog detector gave up %llu calls in progress for room (its table holds "
                "%zu legs): a call's next message takes it up again while the detector remembers "
                "it, else that message may be flagged; raise it with `sipguard context train "
                "--dialog-capacity` (sipguard_dialog_legs_evicted_total)",
                (unsigned long long)(now_lost[0] - was[0]), st->dialog.capacity);
    if (now_lost[1] > was[1])
        warning("the binding detector's table was full for %llu registrations (it holds %zu): "
                "those identities go unchecked; raise it with `sipguard context train "
                "--expected-users` (sipguard_bindings_refused_total)",
                (unsigned long long)(now_lost[1] - was[1]), st->binding_capacity);
    if (now_lost[2] > was[2])
        warning("the flood detector reused %llu counters still counting (its table holds %zu); "
                "raise it with `sipguard context train --flood-capacity` if no flood of spoofed "
                "sources is on (sipguard_flood_counters_evicted_total)",
                (unsigned long long)(now_lost[2] - was[2]), st->flood_capacity);
    memcpy(was, now_lost, sizeof now_lost);
    e->ctx_logged_at = t;
}

/* Whether the dialog detector judges its feed as its model expects, in the log when that
 * changes: a proxy that mirrors requests alone makes a model of traffic with responses stand
 * aside (dialog.h), and a model trained on such a feed judges requests alone. */
static void watch_dialog_feed(edge_t *e, const dialog_stats_t *st)
{
    atomic_store(&e->metrics.dialog_aside, st->no_responses);
    if (st->no_responses && !e->dialog_aside_logged)
        warning("the feed has carried no SIP response for %.0f s though requests that only "
                "follow one (ACKs, BYEs) kept coming: the dialog detector, whose model learned "
                "responses, "
                "stands aside until responses come (sipguard_dialog_feed_without_responses). "
                "Does the proxy mirror its replies? Kamailio: modparam(\"siptrace\", "
                "\"trace_mode\", 1), or sip_trace() with its \"t\" mode",
                DIALOG_QUIET_SECONDS);
    else if (!st->no_responses && e->dialog_aside_logged)
        info("responses on the feed again: the dialog detector judges again");
    e->dialog_aside_logged = st->no_responses;
    if (st->requests_only && !e->requests_only_logged)
        info("the dialog model learned no SIP response (trained on a feed of requests alone): it "
             "judges requests alone and passes over responses");
    e->requests_only_logged = st->requests_only;
}

/* Once a second: how full the context detectors' tables are (a lock the pipeline takes per
 * message, so not on every loop). */
static void tick_context(edge_t *e)
{
    context_stats_t st;
    if (!edge_assets_context_stats(e->slot, &st))
        memset(&st, 0, sizeof st);
    atomic_store(&e->metrics.flood_capacity, st.flood_capacity);
    atomic_store(&e->metrics.dialog_open, st.dialog.legs - st.dialog.finished);
    atomic_store(&e->metrics.dialog_finished, st.dialog.finished);
    atomic_store(&e->metrics.dialog_capacity, st.dialog.capacity);
    atomic_store(&e->metrics.bindings, st.bindings);
    atomic_store(&e->metrics.binding_capacity, st.binding_capacity);
    warn_context_losses(e, &st);
    watch_dialog_feed(e, &st.dialog);
}

static int start_overlay(edge_t *e, char *err, size_t errlen)
{
    char pub[41], sec[41];
    if (wire_keypair(e->c.key_dir, "edge", pub, sec, err, errlen) != 0)
        return -1;
    if (e->c.sig_snapshot[0]) {
        e->sigsub = sigsub_new(e->zctx, e->c.sig_snapshot, e->c.sig_updates,
                               e->c.overlay_server_key, pub, sec, e->sig_cache, err, errlen);
        if (!e->sigsub)
            return -1;
        info("signatures from the overlay (%s, %s); held: sequence %llu", e->c.sig_snapshot,
             e->c.sig_updates, (unsigned long long)sigsub_sequence(e->sigsub));
    }
    if (!e->c.overlay_endpoint[0])
        return 0;
    e->spool = spool_open(e->c.spool_dir, (uint64_t)e->c.spool_max_bytes, err, errlen);
    if (!e->spool)
        return -1;
    e->uplink = uplink_new(e->zctx, e->c.id, e->c.overlay_endpoint, e->c.overlay_server_key, pub,
                           sec, e->c.ack_timeout, e->spool, err, errlen);
    if (!e->uplink)
        return -1;
    info("reporting to the overlay at %s as %s (edge public key %s)", e->c.overlay_endpoint,
         e->c.id, pub);
    return 0;
}

static int write_ports_file(const edge_t *e, const char *path)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    fprintf(f, "hep %u\nudp %u\nhttp %u\nhep_tcp %u\nhep_tls %u\n", ingest_hep_port(e->ingest),
            ingest_udp_port(e->ingest), e->http ? edge_http_port(e->http) : 0,
            ingest_hep_tcp_port(e->ingest), ingest_hep_tls_port(e->ingest));
    if (fclose(f) != 0)
        return -1;
    return rename(tmp, path); /* readers never see half a file */
}

static bool bans_wanted(const edge_config_t *c)
{
    return c->ban_after > 0 || c->ban_domain;
}

static ban_opts_t ban_opts_of(const edge_config_t *c)
{
    return (ban_opts_t){(unsigned)c->ban_after,
                        c->ban_window,
                        c->ban_seconds,
                        c->ban_max_seconds,
                        (unsigned)c->ban_ipv6_prefix,
                        (size_t)c->ban_max_sources};
}

static void log_ban_settings(const edge_t *e)
{
    if (e->c.ban_after > 0)
        info("bans: a source is banned after %ld blocking judgements within %g s (a signature "
             "match counting for %ld), for %g s doubling to %g s, IPv6 by its /%ld; kept in %s",
             e->c.ban_after, e->c.ban_window, e->c.ban_signature_strikes, e->c.ban_seconds,
             e->c.ban_max_seconds, e->c.ban_ipv6_prefix, e->ban_file);
    if (e->c.ban_domain)
        info("bans: the domain's bans that come with the signature set are imposed too");
}

/* [record] as e->c says: the file being written is finished (at start there is none). */
static void configure_record(edge_t *e)
{
    const edge_config_t *c = &e->c;
    record_opts_t o = {.dir = c->record_dir,
                       .prefix = c->id,
                       .sample = c->record_sample,
                       .file_mb = c->record_file_mb,
                       .file_seconds = c->record_file_seconds,
                       .max_mb = c->record_max_mb};
    record_which_parse(c->record_verdicts, &o.which); /* edge_config_validate checked it */
    record_configure(e->record, &o);
    char share[48] = "";
    if (c->record_sample < 1)
        snprintf(share, sizeof share, ", one in %.4g,", 1 / c->record_sample);
    if (c->record_dir[0])
        info("recording the messages judged %s%s to %s (files of %ld MiB or %g s, %ld MiB in "
             "all)",
             c->record_verdicts, share, c->record_dir, c->record_file_mb, c->record_file_seconds,
             c->record_max_mb);
}

static int make_record(edge_t *e)
{
    if (!(e->record = record_new(&e->metrics))) {
        error("out of memory");
        return -1;
    }
    configure_record(e);
    return 0;
}

/* Senders that check the edge's certificate refuse it once it has expired, and the mirror stops
 * without a word from the edge: the log says so at start and at every SIGHUP, two weeks
 * ahead, and the expiry is a metric (an alert watches it). */
#define TLS_EXPIRY_WARN_DAYS 14

static void note_tls_expiry(edge_t *e)
{
    long long expiry = ingest_tls_expiry(e->ingest);
    atomic_store(&e->metrics.hep_tls_expiry, expiry > 0 ? expiry : 0);
    if (expiry <= 0)
        return;
    double days = ((double)expiry - (double)time(NULL)) / 86400;
    if (days < 0)
        error("[ingest] hep_tls_cert = %s expired %.1f days ago: senders that check it refuse "
              "to connect",
              e->c.hep_tls_cert, -days);
    else if (days < TLS_EXPIRY_WARN_DAYS)
        warning("[ingest] hep_tls_cert = %s expires in %.1f days: renew it, then send a SIGHUP",
                e->c.hep_tls_cert, days);
}

/* The ban table is made at start whatever [ban] says (its room is reserved, not touched), so
 * that a SIGHUP can turn bans on for the pipelines of both threads. */
static int make_bans(edge_t *e)
{
    ban_opts_t o = ban_opts_of(&e->c);
    if (!(e->bans = bantable_new(&o))) {
        error("out of memory");
        return -1;
    }
    return 0;
}

/* Bans are on for the first time: the file they are kept in, with the bans a previous run saved
 * there. A saved file that cannot be read is moved aside (FILE.bad) rather than overwritten,
 * and the edge goes on without its bans. */
static int open_ban_file(edge_t *e)
{
    char path[sizeof e->ban_file];
    if (e->c.ban_file[0])
        snprintf(path, sizeof path, "%s", e->c.ban_file);
    else if (snprintf(path, sizeof path, "%s/bans.json", e->c.spool_dir) >= (int)sizeof path) {
        error("[overlay] spool_dir is too long");
        return -1;
    }
    if (!e->c.ban_file[0] && mkdir_p(e->c.spool_dir, 0750) != 0) {
        error("spool directory %s: %s", e->c.spool_dir, strerror(errno));
        return -1;
    }
    /* refused now rather than found at the first ban that cannot be saved */
    if (e->c.ban_file[0] && fs_file_would_be_writable(path) != 0) {
        error("[ban] file = %s: %s", path, strerror(errno));
        return -1;
    }
    snprintf(e->ban_file, sizeof e->ban_file, "%s", path);
    char err[700], aside[620];
    struct stat st;
    /* a device (/dev/null, to keep none) has nothing to read back and is never renamed */
    bool regular = stat(e->ban_file, &st) != 0 || S_ISREG(st.st_mode);
    long n = regular ? bantable_load(e->bans, e->ban_file, ban_clock(), err, sizeof err) : 0;
    if (!regular) {
        info("bans are not restored from %s, which is not a regular file", e->ban_file);
    } else if (n < 0) {
        snprintf(aside, sizeof aside, "%s.bad", e->ban_file);
        error("bans not restored, starting without them: %s (the file is kept as %s)", err,
              rename(e->ban_file, aside) == 0 ? aside : e->ban_file);
    } else if (n > 0) {
        info("%ld banned or remembered sources restored from %s", n, e->ban_file);
    }
    return 0;
}

/* The domain's bans of the signature set now in use, imposed ([ban] domain). */
static void impose_domain_bans(edge_t *e)
{
    if (!e->c.ban_domain)
        return;
    long n = edge_assets_impose_bans(e->slot, e->bans, ban_clock());
    if (n > 0)
        info("%ld of the domain's bans imposed", n);
}

/* Seconds between two writes of the ban file while bans keep changing: under a flood every
 * second brings new bans, and a table of tens of thousands of sources is megabytes written
 * and synced; a change after a quiet spell is written within a second. */
#define BAN_SAVE_SECONDS 5.0

/* Once a second: the ban gauges, and the table saved when it changed (a table never used is
 * left alone: the walk costs a millisecond at the default max_sources); at the end (final)
 * whatever changed since the last write. */
static void tick_bans(edge_t *e, bool final)
{
    if (!e->bans || (!bans_wanted(&e->c) && !e->ban_file[0]))
        return;
    log_limit_flush(&e->ban_log, mono_now(), final);
    ban_stats_t st;
    double now = ban_clock();
    bantable_tick(e->bans, now, &st);
    atomic_store(&e->metrics.bans_active, st.active);
    atomic_store(&e->metrics.bans_domain, st.domain);
    atomic_store(&e->metrics.bans_tracked, st.tracked);
    atomic_store(&e->metrics.bans, st.bans);
    atomic_store(&e->metrics.ban_untracked, st.untracked);
    char err[700];
    if (!e->ban_file[0] || !bantable_dirty(e->bans)) /* no file: it could not be opened */
        return;
    if (!final && now - e->ban_saved_at < BAN_SAVE_SECONDS)
        return;
    e->ban_saved_at = now;
    bool failed = bantable_save(e->bans, e->ban_file, now, err, sizeof err) != 0;
    if (failed && !e->ban_save_failing) /* once, not every second of a full disk */
        error("bans not saved (kept in memory, tried again every %g seconds): %s", BAN_SAVE_SECONDS,
              err);
    else if (!failed && e->ban_save_failing)
        info("bans saved again to %s", e->ban_file);
    e->ban_save_failing = failed;
}

static int setup(edge_t *e, const char *ports_file)
{
    char err[600];
    if (e->c.sig_snapshot[0]) {
        /* the overlay's signatures: the set held from the last run until it answers */
        if (snprintf(e->sig_cache, sizeof e->sig_cache, "%s/signatures.json", e->c.spool_dir) >=
            (int)sizeof e->sig_cache) {
            error("[overlay] spool_dir is too long");
            return -1;
        }
        if (mkdir_p(e->c.spool_dir, 0750) != 0) {
            error("spool directory %s: %s", e->c.spool_dir, strerror(errno));
            return -1;
        }
        if (access(e->sig_cache, R_OK) == 0)
            snprintf(e->c.signatures_file, sizeof e->c.signatures_file, "%s", e->sig_cache);
    }
    edge_assets_t *a = edge_assets_load(&e->c, err, sizeof err);
    if (!a) {
        error("%s", err);
        return -1;
    }
    e->slot = edge_assets_slot_new(a);
    e->pipe = pipeline_new(e->slot, (uint64_t)time(NULL));
    if (!e->slot || !e->pipe) {
        error("out of memory");
        return -1;
    }
    if (make_bans(e) != 0 || (bans_wanted(&e->c) && open_ban_file(e) != 0) || make_record(e) != 0)
        return -1;
    log_ban_settings(e);
    pipeline_set_bans(e->pipe, e->bans, &e->ban_log);
    impose_domain_bans(e); /* those of the set the edge starts with (the overlay's, cached) */
    e->zctx = zmq_ctx_new();
    if (e->c.jsonl[0]) {
        e->jsonl = strcmp(e->c.jsonl, "-") ? fopen(e->c.jsonl, "a") : stdout;
        if (!e->jsonl) {
            error("[report] jsonl = %s: %s", e->c.jsonl, strerror(errno));
            return -1;
        }
    }
    if ((e->c.overlay_endpoint[0] || e->sig_cache[0]) && start_overlay(e, err, sizeof err) != 0) {
        error("%s", err);
        return -1;
    }
    atomic_store(&e->metrics.overlay_configured, e->uplink != NULL);
    e->metrics.senders = edge_senders_new(); /* before the HTTP thread reads it; NULL: none kept */
    if (e->c.http_listen[0]) {
        e->http = edge_http_start(&e->c, e->slot, &e->metrics, e->bans, &e->ban_log, e->record,
                                  queue_report, report_allowed, e, err, sizeof err);
        if (!e->http) {
            error("%s", err);
            return -1;
        }
    }
    e->ingest = ingest_new(&e->c, &e->metrics, on_message, e, err, sizeof err);
    if (!e->ingest) {
        error("%s", err);
        return -1;
    }
    update_gauges(e);
    note_tls_expiry(e);
    info("edge %s up: hep port %u (udp), %u (tcp), %u (tls%s), udp port %u, http port %u%s%s",
         e->c.id, ingest_hep_port(e->ingest), ingest_hep_tcp_port(e->ingest),
         ingest_hep_tls_port(e->ingest), e->c.hep_tls_client_ca[0] ? ", client certificates" : "",
         ingest_udp_port(e->ingest), e->http ? edge_http_port(e->http) : 0,
         e->c.pcap_file[0] ? ", replaying " : "", e->c.pcap_file);
    if (e->c.allow_file[0])
        info("allowed sources: %llu addresses and prefixes from %s are never answered with a "
             "blocking verdict",
             (unsigned long long)atomic_load(&e->metrics.allowlist_entries), e->c.allow_file);
    if (e->c.monitor)
        warning("monitor mode: every caller is answered normal; judgements are counted and "
                "reported only");
    if (ports_file && write_ports_file(e, ports_file) != 0) {
        error("--ports-file %s: %s", ports_file, strerror(errno));
        return -1;
    }
    return 0;
}

/* Waits up to DRAIN_SECONDS for the overlay to acknowledge what is pending. */
static void drain_uplink(edge_t *e)
{
    if (!e->uplink)
        return;
    double end = mono_now() + DRAIN_SECONDS;
    spool_stats_t ss;
    for (spool_stats(e->spool, &ss); ss.pending && mono_now() < end; spool_stats(e->spool, &ss)) {
        if (!uplink_connected(e->uplink) && mono_now() > end - DRAIN_SECONDS + 1)
            break; /* no overlay: the spool keeps them for the next start */
        uplink_pump(e->uplink, mono_now());
        if (!uplink_socket(e->uplink) || !uplink_monitor(e->uplink))
            break;
        zmq_pollitem_t items[2] = {{uplink_socket(e->uplink), 0, ZMQ_POLLIN, 0},
                                   {uplink_monitor(e->uplink), 0, ZMQ_POLLIN, 0}};
        zmq_poll(items, 2, 50);
        uplink_on_acks(e->uplink);
        uplink_on_events(e->uplink);
    }
    if (ss.pending)
        info("%" PRIu64 " reports not yet acknowledged stay in the spool for the next start",
             ss.pending);
}

static void run(edge_t *e)
{
    double last_sync = mono_now();
    while (!got_term) {
        if (got_hup) {
            got_hup = 0;
            reload_config(e);
        }
        zmq_pollitem_t items[INGEST_MAX_FDS + 8];
        int n = 0, fds[INGEST_MAX_FDS];
        int nf = ingest_fds(e->ingest, fds, INGEST_MAX_FDS);
        for (int i = 0; i < nf; i++)
            items[n++] = (zmq_pollitem_t){NULL, fds[i], ZMQ_POLLIN, 0};
        items[n++] = (zmq_pollitem_t){NULL, sig_pipe[0], ZMQ_POLLIN, 0};
        int sub = n;
        bool polled_sigsub =
            e->sigsub && sigsub_snapshot_socket(e->sigsub) && sigsub_updates_socket(e->sigsub);
        if (polled_sigsub) {
            items[n++] = (zmq_pollitem_t){sigsub_snapshot_socket(e->sigsub), 0, ZMQ_POLLIN, 0};
            items[n++] = (zmq_pollitem_t){sigsub_updates_socket(e->sigsub), 0, ZMQ_POLLIN, 0};
        }
        int up = n;
        bool polled_uplink = e->uplink && uplink_socket(e->uplink) && uplink_monitor(e->uplink);
        if (polled_uplink) {
            items[n++] = (zmq_pollitem_t){uplink_socket(e->uplink), 0, ZMQ_POLLIN, 0};
            items[n++] = (zmq_pollitem_t){uplink_monitor(e->uplink), 0, ZMQ_POLLIN, 0};
        }
        double due = ingest_replay(e->ingest, mono_now());
        long timeout = due < 0 ? 100 : (long)(due * 1000);
        if (timeout > 100)
            timeout = 100;
        if (zmq_poll(items, n, timeout) < 0 && errno != EINTR) {
            error("poll: %s", zmq_strerror(errno));
            break;
        }
        for (int i = 0; i < nf; i++) /* an error too: a broken connection reads as one */
            if (items[i].revents & (ZMQ_POLLIN | ZMQ_POLLERR))
                ingest_on_readable(e->ingest, fds[i]);
        if (items[nf].revents & ZMQ_POLLIN) {
            char buf[64];
            while (read(sig_pipe[0], buf, sizeof buf) > 0)
                ;
        }
        drain_queue(e);
        if (e->sigsub) {
            if (polled_sigsub && (items[sub].revents | items[sub + 1].revents) & ZMQ_POLLIN &&
                sigsub_on_messages(e->sigsub)) {
                snprintf(e->c.signatures_file, sizeof e->c.signatures_file, "%s", e->sig_cache);
                info("signature set %llu from the overlay",
                     (unsigned long long)sigsub_sequence(e->sigsub));
                reload(e);
            }
            sigsub_tick(e->sigsub, mono_now());
        }
        if (polled_uplink) {
            if (items[up].revents & ZMQ_POLLIN)
                uplink_on_acks(e->uplink);
            if (items[up + 1].revents & ZMQ_POLLIN)
                uplink_on_events(e->uplink);
        }
        if (e->uplink)
            uplink_pump(e->uplink, mono_now());
        update_gauges(e);
        if (mono_now() - last_sync >= 1.0) {
            last_sync = mono_now();
            if (e->spool)
                spool_sync(e->spool);
            jsonl_flush(e);
            tick_bans(e, false);
            tick_context(e);
            record_tick(e->record);
            ingest_tick(e->ingest, last_sync);
        }
        if (e->c.pcap_exit && ingest_replay_done(e->ingest) && e->c.pcap_file[0])
            break;
    }
    info("stopping: flushing decoders and reports");
}

static void teardown(edge_t *e)
{
    edge_http_stop(&e->http);   /* no more HTTP reports after this */
    ingest_destroy(&e->ingest); /* flushes what decoders hold, through on_message */
    edge_senders_destroy(&e->metrics.senders);
    drain_queue(e);
    drain_uplink(e);
    uplink_destroy(&e->uplink);
    sigsub_destroy(&e->sigsub);
    spool_close(&e->spool);
    if (e->zctx)
        zmq_ctx_term(e->zctx);
    jsonl_flush(e);
    if (e->jsonl && e->jsonl != stdout)
        fclose(e->jsonl);
    pipeline_destroy(&e->pipe);
    edge_assets_slot_destroy(&e->slot);
    tick_bans(e, true); /* the last changes saved */
    log_limit_flush(&e->ban_log, mono_now(), true);
    bantable_destroy(&e->bans);
    record_destroy(&e->record); /* after the last message: the file it was writing finished */
}

static int install_signals(void)
{
    if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
        return -1;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* a file size limit (LimitFSIZE=) then fails a write as a full disk does, which is
     * handled, instead of killing the daemon */
    signal(SIGXFSZ, SIG_IGN);
    return 0;
}

/* Reads the command line (and the file it names) into c. Returns -1 to go on, or an exit code:
 * 0 after --help and the like, 2 with the reason in err (empty when cliopt printed it). */
static int parse_args(edge_config_t *c, int argc, char **argv, bool *check, const char **ports_file,
                      char *err, size_t errlen)
{
    const char *arg, *config = NULL;
    int i;
    err[0] = '\0';
    /* the file first, then the overrides in order: collect them in one pass */
    const char *sets[64];
    int nsets = 0;
    while ((i = cliopt_next(&edge_cmd, argc, argv, &arg)) != -1) {
        if (i == -2)
            return 2;
        const char *name = edge_opts[i].name;
        if (!strcmp(name, "help")) {
            cliopt_help(&edge_cmd, stdout);
            return 0;
        } else if (!strcmp(name, "version")) {
            printf("sipguard-edge %s\n", SIPGUARD_VERSION);
            return 0;
        } else if (!strcmp(name, "print-config")) {
            edge_config_print(c, stdout, true);
            return 0;
        } else if (!strcmp(name, "config")) {
            config = arg;
        } else if (!strcmp(name, "check-config")) {
            *check = true;
        } else if (!strcmp(name, "ports-file")) {
            *ports_file = arg;
        } else if (nsets < 64) {
            static char model_set[600];
            if (!strcmp(name, "model")) {
                snprintf(model_set, sizeof model_set, "edge.model=%s", arg);
                arg = model_set;
            }
            sets[nsets++] = arg;
        }
    }
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument %s\nusage: %s", argv[optind], edge_cmd.usage);
        return 2;
    }
    if (config && edge_config_load(c, config, err, errlen) != 0)
        return 2;
    for (int k = 0; k < nsets; k++)
        if (edge_config_set(c, sets[k], err, errlen) != 0)
            return 2;
    return edge_config_validate(c, err, errlen) != 0 ? 2 : -1;
}

/* Reopens the JSON Lines file at [report] jsonl (after logrotate moved it, or at a new path);
 * when the new one cannot be opened, reports go on to the old one. */
static void reopen_jsonl(edge_t *e)
{
    jsonl_flush(e);
    FILE *f = NULL;
    if (e->c.jsonl[0] && !(f = strcmp(e->c.jsonl, "-") ? fopen(e->c.jsonl, "a") : stdout)) {
        error("[report] jsonl = %s: %s; reports go on to the file open before", e->c.jsonl,
              strerror(errno));
        return;
    }
    if (e->jsonl && e->jsonl != stdout && e->jsonl != f)
        fclose(e->jsonl);
    e->jsonl = f;
}

/* A SIGHUP's new [ban] max_sources for the table; what no longer fits is dropped and said. */
static void resize_bans(edge_t *e, const edge_config_t *before)
{
    if (e->c.ban_max_sources == before->ban_max_sources)
        return;
    long dropped = bantable_set_capacity(e->bans, (size_t)e->c.ban_max_sources, ban_clock());
    if (dropped < 0)
        error("[ban] max_sources = %ld: out of memory; the table keeps room for %ld",
              e->c.ban_max_sources, before->ban_max_sources);
    else if (dropped > 0)
        warning("[ban] max_sources = %ld: %ld sources did not fit and were dropped (those with "
                "nothing left to remember, then the bans ending soonest)",
                e->c.ban_max_sources, dropped);
}

/* A SIGHUP moved [ban] file: the table takes in what the new file holds (open_ban_file) and is
 * saved there at once, so that the next start finds every ban; the old file is left as it is. */
static void move_ban_file(edge_t *e)
{
    char old[sizeof e->ban_file];
    snprintf(old, sizeof old, "%s", e->ban_file);
    e->ban_file[0] = 0;
    if (open_ban_file(e) != 0) {
        snprintf(e->ban_file, sizeof e->ban_file, "%s", old);
        error("[ban] file: bans stay kept in %s", old);
        return;
    }
    char err[700];
    if (bantable_save(e->bans, e->ban_file, ban_clock(), err, sizeof err) != 0)
        error("bans not saved (kept in memory, tried again every %g seconds): %s", BAN_SAVE_SECONDS,
              err);
    else
        info("bans are kept in %s now (was %s)", e->ban_file, old);
}

/* The new [ban] settings (e->c; before: those they replace) for the table; bans turned on for
 * the first time read back what a previous run saved, and the domain's bans stop when [ban]
 * domain is turned off. */
static void apply_ban_settings(edge_t *e, const edge_config_t *before)
{
    const edge_config_t *c = &e->c;
    log_limit_set_burst(&e->ban_log, (unsigned)c->ban_log_max);
    bool moved = strcmp(c->ban_file, before->ban_file) != 0;
    if (c->ban_after == before->ban_after && c->ban_window == before->ban_window &&
        c->ban_signature_strikes == before->ban_signature_strikes &&
        c->ban_seconds == before->ban_seconds && c->ban_max_seconds == before->ban_max_seconds &&
        c->ban_domain == before->ban_domain && c->ban_max_sources == before->ban_max_sources &&
        c->ban_ipv6_prefix == before->ban_ipv6_prefix && !moved)
        return;
    ban_opts_t o = ban_opts_of(c);
    bantable_set_opts(e->bans, &o);
    resize_bans(e, before);
    if (moved && e->ban_file[0]) /* opened before: the bans go along to the new file */
        move_ban_file(e);
    else if (bans_wanted(c) && !e->ban_file[0] && open_ban_file(e) != 0)
        error("bans are on, but not kept across restarts");
    if (before->ban_domain && !c->ban_domain)
        bantable_set_domain(e->bans, NULL, NULL, 0, ban_clock());
    if (!bans_wanted(c))
        info("bans: off; the table is kept for when they are on again");
    log_ban_settings(e);
}

/* SIGHUP: [http] tls_cert and tls_key read again (checked before anything was applied); the
 * endpoint starts again on its socket when they changed. */
static void reload_https(edge_t *e)
{
    char err[1400];
    int rc = e->http ? edge_http_reload_tls(e->http, &e->c, err, sizeof err) : 0;
    if (rc == 1)
        info("SIGHUP: the HTTP endpoint now speaks %s%s",
             e->c.http_tls_cert[0] ? "HTTPS with " : "plain HTTP", e->c.http_tls_cert);
    else if (rc < 0)
        error("SIGHUP: %s%s", err, rc == -1 ? "; HTTPS goes on with the certificate it has" : "");
}

/*
 * SIGHUP: the command line and the file it names are read again. The settings a SIGHUP applies
 * (edge_config's live ones: the model and asset files, scoring, verdicts, bans, reports, the
 * log level) are taken together with the assets they name; the others (sockets, capture,
 * overlay, identity) are logged as waiting for the next start. A configuration that does not
 * read, or an asset that does not load, is refused whole: nothing changes.
 */
static void reload_config(edge_t *e)
{
    static edge_config_t fresh, next, before; /* large */
    char err[600], names[1024];
    bool check = false;
    const char *ports_file = NULL;
    edge_config_default(&fresh);
    optind = 0; /* getopt from the start again */
    if (parse_args(&fresh, e->argc, e->argv, &check, &ports_file, err, sizeof err) >= 0) {
        atomic_fetch_add(&e->metrics.reload_failures, 1);
        error("SIGHUP: the configuration does not read, nothing changes: %s", err);
        return;
    }
    if (e->c.sig_snapshot[0]) /* the overlay's signatures, not a file of the configuration */
        snprintf(fresh.signatures_file, sizeof fresh.signatures_file, "%s", e->c.signatures_file);
    if (edge_config_changes(&e->c, &fresh, false, names, sizeof names))
        warning("SIGHUP: %s changed; taking effect at the next start", names);
    next = e->c;
    edge_config_take_live(&next, &fresh);
    /* the TLS files are read again whether or not their names changed: a renewed certificate
     * is written over the old one */
    char tls_err[1400];
    tls_creds_t *tls = NULL;
    if ((ingest_takes_tls(e->ingest) &&
         !(tls = ingest_tls_creds(&next, tls_err, sizeof tls_err))) ||
        (e->http && edge_http_check_tls(&next, tls_err, sizeof tls_err) != 0)) {
        atomic_fetch_add(&e->metrics.reload_failures, 1);
        error("reload refused, the previous settings stay in use: %s", tls_err);
        tls_creds_free(&tls);
        return;
    }
    edge_reload_t what;
    edge_assets_t *a = reload_assets(e, &next, &what);
    if (!a) {
        tls_creds_free(&tls);
        return;
    }
    size_t changed = edge_config_changes(&e->c, &next, true, names, sizeof names);
    before = e->c;
    pthread_mutex_lock(&e->rate_lock); /* max_rate is read under it by the HTTP thread */
    edge_config_take_live(&e->c, &next);
    pthread_mutex_unlock(&e->rate_lock);
    if (changed)
        info("SIGHUP: applying %s", names);
    log_parse_level(e->c.log_level);
    atomic_store(&e->metrics.monitor, e->c.monitor);
    reopen_jsonl(e);
    configure_record(e);
    apply_ban_settings(e, &before);
    if (tls) {
        ingest_replace_tls(e->ingest, tls);
        info("HEP over TLS: certificate %s read again, for senders that connect from now on",
             e->c.hep_tls_cert);
        note_tls_expiry(e);
    }
    reload_https(e);
    publish_assets(e, a, &what);
}

/*
 * What --check-config can tell of the files and directories the edge will write, without
 * making any: the JSON Lines file, the key pair, the spool and the ban file, without which
 * the edge refuses to start (-1, the reason in err); and the recording directory, where it
 * would start and only say that nothing is recorded (a warning here too).
 */
static int check_output_paths(const edge_config_t *c, char *err, size_t errlen)
{
    bool overlay = c->overlay_endpoint[0] || c->sig_snapshot[0];
    char edge_key[600];
    snprintf(edge_key, sizeof edge_key, "%s/edge.key", c->key_dir);
    const char *what = NULL, *path = NULL;
    if (c->jsonl[0] && strcmp(c->jsonl, "-") && fs_file_would_be_writable(c->jsonl) != 0)
        what = "[report] jsonl", path = c->jsonl;
    else if (overlay && access(edge_key, F_OK) != 0 && fs_dir_would_be_writable(c->key_dir) != 0)
        what = "[overlay] key_dir", path = c->key_dir;
    else if ((overlay || (bans_wanted(c) && !c->ban_file[0])) &&
             fs_dir_would_be_writable(c->spool_dir) != 0)
        what = "[overlay] spool_dir", path = c->spool_dir;
    else if (bans_wanted(c) && c->ban_file[0] && fs_file_would_be_writable(c->ban_file) != 0)
        what = "[ban] file", path = c->ban_file;
    if (what) {
        snprintf(err, errlen, "%s = %s: %s", what, path, strerror(errno));
        return -1;
    }
    if (c->record_dir[0] && fs_dir_would_be_writable(c->record_dir) != 0)
        fprintf(stderr,
                "sipguard-edge: warning: [record] dir = %s: %s; the edge would start and "
                "record nothing until it can\n",
                c->record_dir, strerror(errno));
    return 0;
}

/* --check-config: the HTTPS pair of [http], and the HEP TLS listener's certificate, key and
 * client CAs, load (the edge reads them at start). */
static int check_tls_files(const edge_config_t *c, char *err, size_t errlen)
{
    if (edge_http_check_tls(c, err, errlen) != 0)
        return -1;
    if (!c->hep_tls_listen[0])
        return 0;
    tls_creds_t *t = ingest_tls_creds(c, err, errlen);
    if (!t)
        return -1;
    tls_creds_free(&t);
    return 0;
}

/* What --check-config loaded, so that the journal of a reload says which model is in use. */
static void describe_assets(const edge_config_t *c, edge_assets_slot_t *slot)
{
    size_t sigs = 0, allowed = 0;
    uint64_t seq = 0;
    model_stats_t st;
    edge_assets_info(slot, &sigs, &seq, &st, &allowed);
    fprintf(stderr,
            "sipguard-edge: model %s: %zu messages (%zu held out), %zu distinct vectors, "
            "thresholds %.6g (global) and %.6g (local); %zu signatures; %zu allowed sources\n",
            c->model, st.messages + st.holdout, st.holdout, st.distinct, st.thr_global,
            st.thr_local, sigs, allowed);
}

static int edge_run(int argc, char **argv)
{
    static edge_t e; /* large; and signal handlers may outlive main's frame */
    edge_config_default(&e.c);
    metrics_init(&e.metrics);
    pthread_mutex_init(&e.qlock, NULL);
    pthread_mutex_init(&e.rate_lock, NULL);
    log_set_program("sipguard-edge");
    bool check = false;
    const char *ports_file = NULL;
    char err[600];
    e.argc = argc;
    e.argv = argv;
    int rc = parse_args(&e.c, argc, argv, &check, &ports_file, err, sizeof err);
    if (rc >= 0) {
        if (err[0])
            fprintf(stderr, "sipguard-edge: %s\n", err);
        return rc;
    }
    log_parse_level(e.c.log_level);
    log_limit_init(&e.ban_log, (unsigned)e.c.ban_log_max, 60, "bans");
    atomic_store(&e.metrics.monitor, e.c.monitor);
    if (e.c.syslog)
        log_set_syslog(1);
    if (check) {
        edge_assets_t *a = check_output_paths(&e.c, err, sizeof err) == 0 &&
                                   check_tls_files(&e.c, err, sizeof err) == 0
                               ? edge_assets_load(&e.c, err, sizeof err)
                               : NULL;
        if (!a) {
            fprintf(stderr, "sipguard-edge: %s\n", err);
            return 1;
        }
        edge_assets_slot_t *slot = edge_assets_slot_new(a);
        edge_config_print(&e.c, stdout, false);
        describe_assets(&e.c, slot);
        edge_assets_slot_destroy(&slot);
        fprintf(stderr, "sipguard-edge: configuration OK\n");
        return 0;
    }
    if (install_signals() != 0) {
        error("cannot install signal handlers: %s", strerror(errno));
        return 1;
    }
    sipcheck_init();
    rc = setup(&e, ports_file) == 0 ? 0 : 1;
    if (rc == 0)
        run(&e);
    teardown(&e);
    log_limit_destroy(&e.ban_log);
    return rc;
}

int main(int argc, char **argv)
{
    return cliopt_finish_stdout("sipguard-edge", edge_run(argc, argv));
}
