#include "edge_metrics.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* upper bounds of the score-latency histogram, seconds */
static const double bounds[METRICS_BUCKETS] = {1e-6,   2.5e-6, 5e-6, 1e-5,   2.5e-5, 5e-5, 1e-4,
                                               2.5e-4, 5e-4,   1e-3, 2.5e-3, 1e-2,   1e-1, 1};

const char *metrics_source_name(source_t s)
{
    static const char *names[] = {"hep", "udp", "pcap", "live", "http"};
    return (unsigned)s < SRC_COUNT ? names[s] : "?";
}

void metrics_init(edge_metrics_t *m)
{
    memset(m, 0, sizeof *m);
}

void metrics_message(edge_metrics_t *m, source_t src, const edge_result_t *r)
{
    atomic_fetch_add(&m->messages[src][r->verdict], 1);
    if (r->waived)
        atomic_fetch_add(&m->waived[r->waived][r->verdict], 1);
    if (!r->info.parse_ok && r->verdict != VERDICT_BANNED) /* a banned one is not parsed */
        atomic_fetch_add(&m->parse_failures, 1);
    if (r->score.local_done)
        atomic_fetch_add(&m->local_runs, 1);
    bool fired[6] = {r->sigs.n > 0,      r->score.global_anomaly, r->score.local_anomaly,
                     r->ctx.flood.flood, r->ctx.dialog.anomaly,   r->ctx.binding.anomaly};
    for (int i = 0; i < 6; i++)
        if (fired[i])
            atomic_fetch_add(&m->fired[i], 1);
    if (r->ctx.flood_evicted)
        atomic_fetch_add(&m->flood_evicted, r->ctx.flood_evicted);
    if (r->ctx.dialog.evicted)
        atomic_fetch_add(&m->dialog_evicted, 1);
    if (r->ctx.dialog.resumed)
        atomic_fetch_add(&m->dialog_resumed, 1);
    if (r->ctx.dialog.aside)
        atomic_fetch_add(&m->dialog_unjudged, 1);
    if (r->ctx.dialog.passed_over)
        atomic_fetch_add(&m->dialog_passed_over, 1);
    if (r->ctx.binding_refused)
        atomic_fetch_add(&m->bindings_refused, 1);
    int b = 0;
    while (b < METRICS_BUCKETS && r->seconds > bounds[b])
        b++;
    atomic_fetch_add(&m->latency_bucket[b], 1);
    atomic_fetch_add(&m->latency_count, 1);
    double old = atomic_load(&m->latency_sum);
    while (!atomic_compare_exchange_weak(&m->latency_sum, &old, old + r->seconds))
        ;
}

typedef struct {
    char *buf;
    size_t len, cap;
} sbuf_t;

static void put(sbuf_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf_t *s, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(s->buf + s->len, s->cap - s->len, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (s->len + (size_t)n < s->cap) {
            s->len += (size_t)n;
            return;
        }
        size_t cap = s->cap * 2 + (size_t)n;
        char *b = realloc(s->buf, cap);
        if (!b)
            return;
        s->buf = b;
        s->cap = cap;
    }
}

static void counter(sbuf_t *s, const char *name, const char *help, uint64_t v)
{
    put(s, "# HELP sipguard_%s %s\n# TYPE sipguard_%s counter\nsipguard_%s %llu\n", name, help,
        name, name, (unsigned long long)v);
}

static void gauge(sbuf_t *s, const char *name, const char *help, double v)
{
    put(s, "# HELP sipguard_%s %s\n# TYPE sipguard_%s gauge\nsipguard_%s %.17g\n", name, help, name,
        name, v);
}

/* Each HEP sender's messages and last message time, labelled by its address: at most
 * EDGE_SENDERS_MAX of them (the table's bound keeps spoofed datagrams from growing the label
 * set). The HELP and TYPE lines come even with none, so that rules can name the metrics. */
static void hep_senders(sbuf_t *s, edge_senders_t *senders)
{
    static edge_sender_t list[EDGE_SENDERS_MAX]; /* the HTTP thread's alone */
    size_t n = senders ? edge_senders_list(senders, list, (double)time(NULL)) : 0;
    put(s,
        "# HELP sipguard_hep_sender_messages_total Messages from each HEPv3 sender (its "
        "address: the proxy that mirrors), of those heard within a day, %d at most.\n"
        "# TYPE sipguard_hep_sender_messages_total counter\n",
        EDGE_SENDERS_MAX);
    char a[46];
    for (size_t i = 0; i < n; i++) {
        msg_address_format(&list[i].addr, a);
        put(s, "sipguard_hep_sender_messages_total{sender=\"%s\"} %llu\n", a,
            (unsigned long long)list[i].messages);
    }
    put(s, "# HELP sipguard_hep_sender_responses_total Of those, the SIP responses: none from a "
           "sender that mirrors requests alone, whose calls the dialog detector sees half of.\n"
           "# TYPE sipguard_hep_sender_responses_total counter\n");
    for (size_t i = 0; i < n; i++) {
        msg_address_format(&list[i].addr, a);
        put(s, "sipguard_hep_sender_responses_total{sender=\"%s\"} %llu\n", a,
            (unsigned long long)list[i].responses);
    }
    put(s, "# HELP sipguard_hep_sender_last_message_timestamp_seconds When each HEPv3 sender "
           "last gave a message (Unix time).\n"
           "# TYPE sipguard_hep_sender_last_message_timestamp_seconds gauge\n");
    for (size_t i = 0; i < n; i++) {
        msg_address_format(&list[i].addr, a);
        put(s, "sipguard_hep_sender_last_message_timestamp_seconds{sender=\"%s\"} %.3f\n", a,
            list[i].last);
    }
    counter(s, "hep_copies_dropped_total",
            "HEPv3 messages dropped as copies: the same bytes between the same endpoints that "
            "another sender gave within a second (two capture agents mirroring one leg).",
            edge_senders_copies(senders));
    counter(s, "hep_senders_untracked_total",
            "Messages from HEPv3 senders past the 64 an edge keeps apart (spoofed datagrams, or "
            "more proxies than that).",
            edge_senders_untracked(senders));
}

/* The context detectors' tables ([detectors] context): how full, and what they gave up. */
static void put_context_tables(sbuf_t *s, edge_metrics_t *m)
{
    put(s,
        "# HELP sipguard_dialog_legs Dialog legs the dialog detector holds: open (a call or "
        "transaction in progress, or idle) and finished (a BYE or a ping answered).\n"
        "# TYPE sipguard_dialog_legs gauge\n"
        "sipguard_dialog_legs{state=\"open\"} %llu\n"
        "sipguard_dialog_legs{state=\"finished\"} %llu\n",
        (unsigned long long)atomic_load(&m->dialog_open),
        (unsigned long long)atomic_load(&m->dialog_finished));
    gauge(s, "dialog_legs_capacity",
          "Legs the dialog detector's table holds (its model's capacity); 0 without it.",
          (double)atomic_load(&m->dialog_capacity));
    counter(s, "dialog_legs_evicted_total",
            "Open dialog legs given up for new ones before their timeout: the table was too "
            "small. A later message of such a call (its BYE) takes it up again while the "
            "detector remembers it, else it may be flagged as a transition never seen.",
            atomic_load(&m->dialog_evicted));
    counter(s, "dialog_legs_resumed_total",
            "Dialog legs given up for room (open ones, and answered registrations) that a later "
            "message took up again: who spoke first and the leg's state came back, and its next "
            "order - 1 messages went unjudged.",
            atomic_load(&m->dialog_resumed));
    gauge(s, "dialog_feed_without_responses",
          "1 while the dialog detector stands aside because its feed has carried no SIP "
          "response for 4 s though requests that follow one (ACKs, BYEs) kept coming (a proxy that "
          "mirrors requests alone), and its model learned responses; 0 otherwise.",
          (double)atomic_load(&m->dialog_aside));
    counter(s, "dialog_messages_unjudged_total",
            "Messages the dialog detector left unjudged while it stood aside for a feed without "
            "responses.",
            atomic_load(&m->dialog_unjudged));
    counter(s, "dialog_responses_passed_over_total",
            "Responses passed over by a dialog model that learned none (trained on a feed of "
            "requests alone): it judges requests alone.",
            atomic_load(&m->dialog_passed_over));
    gauge(s, "bindings", "Registrations the binding detector holds.",
          (double)atomic_load(&m->bindings));
    gauge(s, "bindings_capacity",
          "Registrations the binding detector's table holds (from its model's expected_users); 0 "
          "without it.",
          (double)atomic_load(&m->binding_capacity));
    counter(s, "bindings_refused_total",
            "Registrations not bound because the binding table was full: their identities go "
            "unchecked.",
            atomic_load(&m->bindings_refused));
    gauge(s, "flood_counters_capacity",
          "Decayed request counters the flood detector's table holds; 0 without it.",
          (double)atomic_load(&m->flood_capacity));
    counter(s, "flood_counters_evicted_total",
            "Flood counters still holding a request's worth reused for another key: more "
            "sources, identities and targets were counting at once than the table holds.",
            atomic_load(&m->flood_evicted));
}

char *metrics_render(edge_metrics_t *m)
{
    sbuf_t s = {malloc(8192), 0, 8192};
    if (!s.buf)
        return NULL;
    s.buf[0] = '\0';
    put(&s, "# HELP sipguard_messages_total SIP messages scored, by input and verdict.\n"
            "# TYPE sipguard_messages_total counter\n");
    for (int src = 0; src < SRC_COUNT; src++)
        for (int v = 0; v < VERDICT_COUNT; v++)
            put(&s, "sipguard_messages_total{source=\"%s\",verdict=\"%s\"} %llu\n",
                metrics_source_name((source_t)src), edge_verdict_name((verdict_t)v),
                (unsigned long long)atomic_load(&m->messages[src][v]));
    put(&s, "# HELP sipguard_verdicts_waived_total Messages judged anomalous but answered normal: "
            "from an allowed source, or in monitor mode.\n"
            "# TYPE sipguard_verdicts_waived_total counter\n");
    for (int w = WAIVED_ALLOWED; w < WAIVED_COUNT; w++)
        for (int v = VERDICT_ANOMALY; v < VERDICT_COUNT; v++)
            put(&s, "sipguard_verdicts_waived_total{reason=\"%s\",judged=\"%s\"} %llu\n",
                edge_waived_name((waived_t)w), edge_verdict_name((verdict_t)v),
                (unsigned long long)atomic_load(&m->waived[w][v]));
    gauge(&s, "allowlist_entries", "Addresses and prefixes in [verdict] allow_file.",
          (double)atomic_load(&m->allowlist_entries));
    gauge(&s, "monitor_mode", "1 when [verdict] monitor answers every caller normal (a dry run).",
          atomic_load(&m->monitor) ? 1 : 0);
    gauge(&s, "bans_active", "Sources banned now ([ban]): their messages are answered banned.",
          (double)atomic_load(&m->bans_active));
    gauge(&s, "bans_domain",
          "Of the sources banned now, those the domain's list bans ([ban] domain: another edge "
          "banned them).",
          (double)atomic_load(&m->bans_domain));
    gauge(&s, "bans_tracked",
          "Sources the ban table holds (banned, striking or remembered); at most [ban] "
          "max_sources.",
          (double)atomic_load(&m->bans_tracked));
    counter(&s, "bans_total", "Bans started.", atomic_load(&m->bans));
    counter(&s, "ban_untracked_total",
            "Blocking judgements not counted against their source: the ban table was full.",
            atomic_load(&m->ban_untracked));
    counter(&s, "record_messages_total", "Messages written to the pcap files of [record] dir.",
            atomic_load(&m->record_messages));
    counter(&s, "record_dropped_total",
            "Messages [record] should have kept but could not write (a write failed, the "
            "directory was missing, or longer than a frame holds).",
            atomic_load(&m->record_dropped));
    counter(&s, "record_files_total", "Recorded pcap files finished (renamed from .pcap.part).",
            atomic_load(&m->record_files));
    static const char *detectors[] = {"signature", "global", "local", "flood", "dialog", "binding"};
    put(&s, "# HELP sipguard_detector_fired_total Messages each detector flagged.\n"
            "# TYPE sipguard_detector_fired_total counter\n");
    for (int i = 0; i < 6; i++)
        put(&s, "sipguard_detector_fired_total{detector=\"%s\"} %llu\n", detectors[i],
            (unsigned long long)atomic_load(&m->fired[i]));
    put_context_tables(&s, m);
    counter(&s, "parse_failures_total", "Messages libosip2 could not parse.",
            atomic_load(&m->parse_failures));
    counter(&s, "skipped_total", "Packets or datagrams a reader passed over (not SIP, broken).",
            atomic_load(&m->skipped));
    counter(&s, "hep_rejected_total",
            "HEPv3 packets refused (malformed or wrong auth key), and TCP streams that are not "
            "HEPv3.",
            atomic_load(&m->hep_rejected));
    gauge(&s, "hep_tcp_connections",
          "HEPv3 senders connected over TCP, TLS included ([ingest] hep_tcp_listen, "
          "hep_tls_listen).",
          (double)atomic_load(&m->hep_tcp_connections));
    counter(&s, "hep_tcp_refused_total",
            "HEPv3 senders over TCP or TLS closed at once: 64 were connected already, or as "
            "many as [ingest] hep_tcp_per_source from the same source, none silent for 10 s.",
            atomic_load(&m->hep_tcp_refused));
    counter(&s, "hep_tcp_source_limited_total",
            "Of sipguard_hep_tcp_refused_total, the senders closed because their source held "
            "[ingest] hep_tcp_per_source connections already.",
            atomic_load(&m->hep_tcp_source_limited));
    gauge(&s, "hep_tls_certificate_expiry_timestamp_seconds",
          "When the certificate of [ingest] hep_tls_listen stops being valid (Unix time); 0 "
          "without TLS.",
          (double)atomic_load(&m->hep_tls_expiry));
    counter(&s, "hep_tcp_evicted_total",
            "HEPv3 senders over TCP or TLS closed for a new one when all 64 slots (or their "
            "source's hep_tcp_per_source) were taken: the one that sent no message for "
            "longest, after 10 s.",
            atomic_load(&m->hep_tcp_evicted));
    counter(&s, "hep_tls_failures_total",
            "HEPv3 senders over TLS closed because their handshake or session failed (no "
            "certificate, or one no client CA issued; not TLS at all).",
            atomic_load(&m->hep_tls_failed));
    hep_senders(&s, m->senders);
    put(&s,
        "# HELP sipguard_udp_dropped_total Datagrams the kernel dropped before the edge read "
        "them (receive buffer full).\n# TYPE sipguard_udp_dropped_total counter\n"
        "sipguard_udp_dropped_total{source=\"hep\"} %llu\n"
        "sipguard_udp_dropped_total{source=\"udp\"} %llu\n",
        (unsigned long long)atomic_load(&m->udp_dropped[0]),
        (unsigned long long)atomic_load(&m->udp_dropped[1]));
    counter(&s, "capture_dropped_total",
            "Packets the live capture lost (capture ring full, or dropped by the interface).",
            atomic_load(&m->capture_dropped));
    counter(&s, "capture_copies_dropped_total",
            "Copies of a packet that a capture on Linux's any device showed on another "
            "interface it crossed (a bridge and its veth, a bond and its slave), dropped before "
            "they were judged ([ingest] keep_copies = no).",
            atomic_load(&m->capture_copies));
    gauge(&s, "tcp_reassembly_bytes",
          "Bytes TCP reassembly holds for open streams (live capture, pcap replay); at most "
          "[ingest] tcp_memory_mb.",
          (double)atomic_load(&m->tcp_held));
    counter(&s, "local_model_runs_total", "Messages the local k-NN model scored.",
            atomic_load(&m->local_runs));
    put(&s, "# HELP sipguard_score_latency_seconds Time to score one message.\n"
            "# TYPE sipguard_score_latency_seconds histogram\n");
    uint64_t cum = 0;
    for (int b = 0; b <= METRICS_BUCKETS; b++) {
        cum += atomic_load(&m->latency_bucket[b]);
        if (b < METRICS_BUCKETS)
            put(&s, "sipguard_score_latency_seconds_bucket{le=\"%g\"} %llu\n", bounds[b],
                (unsigned long long)cum);
        else
            put(&s, "sipguard_score_latency_seconds_bucket{le=\"+Inf\"} %llu\n",
                (unsigned long long)cum);
    }
    put(&s, "sipguard_score_latency_seconds_sum %.9f\nsipguard_score_latency_seconds_count %llu\n",
        atomic_load(&m->latency_sum), (unsigned long long)atomic_load(&m->latency_count));
    counter(&s, "reports_total", "Anomaly reports written.", atomic_load(&m->reports));
    counter(&s, "reports_dropped_total", "Reports lost because the spool hit its bound.",
            atomic_load(&m->reports_dropped));
    counter(&s, "reports_rate_limited_total",
            "Reports not made because they came faster than [report] max_rate.",
            atomic_load(&m->reports_rate_limited));
    counter(&s, "report_write_errors_total",
            "Reports the spool or the JSON Lines file could "
            "not take (disk full, I/O error).",
            atomic_load(&m->report_write_errors));
    counter(&s, "reports_acked_total", "Reports the overlay acknowledged.", atomic_load(&m->acks));
    gauge(&s, "spool_bytes", "Bytes in the on-disk report spool.",
          (double)atomic_load(&m->spool_bytes));
    gauge(&s, "spool_pending_reports", "Reports waiting for the overlay's acknowledgement.",
          (double)atomic_load(&m->spool_pending));
    gauge(&s, "signatures_active", "Signatures matched inline.",
          (double)atomic_load(&m->signatures));
    gauge(&s, "signature_sequence", "Sequence number of the signature set in use.",
          (double)atomic_load(&m->signature_sequence));
    gauge(&s, "signature_set_applied_seconds", "Unix time the signature set in use took effect.",
          (double)atomic_load(&m->signature_set_applied_us) / 1e6);
    counter(&s, "reloads_total", "Successful reloads of model and signatures (SIGHUP).",
            atomic_load(&m->reloads));
    counter(&s, "reload_failures_total", "Reloads refused; the previous model stays in use.",
            atomic_load(&m->reload_failures));
    gauge(&s, "overlay_connected", "1 when connected to the overlay, else 0.",
          atomic_load(&m->overlay_connected) ? 1 : 0);
    return s.buf;
}
