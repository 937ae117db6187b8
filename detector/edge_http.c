#include "edge_http.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "bearer.h"
#include "httpd.h"
#include "log.h"

struct edge_http {
    httpd_t *d;
    const edge_config_t *c;
    edge_metrics_t *metrics;
    edge_report_fn report;
    edge_report_allowed_fn allowed;
    void *report_ctx;
    pipeline_t *pipe;
    bantable_t *bans;      /* NULL: none (bans are on while [ban] after > 0 or domain = yes) */
    edge_record_t *record; /* NULL: none */
    pthread_mutex_t lock;  /* one pipeline; requests are handled one at a time anyway */
    uint64_t index;
};

typedef struct {
    char *body;
    size_t len, cap;
    bool too_big;
} upload_t;

int edge_parse_endpoint(const char *s, endpoint_t *ep)
{
    char host[128];
    unsigned port;
    memset(ep, 0, sizeof *ep);
    if (edge_split_hostport(s, host, sizeof host, &port) != 0)
        return -1;
    if (inet_pton(AF_INET, host, ep->addr) == 1)
        ep->family = 4;
    else if (inet_pton(AF_INET6, host, ep->addr) == 1)
        ep->family = 6;
    else
        return -1;
    ep->port = (uint16_t)port;
    return 0;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *type,
                             char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

/* A JSON body and a newline (takes the reference). */
static enum MHD_Result reply_json(struct MHD_Connection *conn, unsigned status, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return MHD_NO;
    size_t n = strlen(s);
    char *b = realloc(s, n + 2);
    if (!b) {
        free(s);
        return MHD_NO;
    }
    memcpy(b + n, "\n", 2);
    return reply(conn, status, "application/json", b);
}

static enum MHD_Result reply_error(struct MHD_Connection *conn, unsigned status, const char *why)
{
    return reply_json(conn, status, json_pack("{s:s}", "error", why));
}

/* Fills a message record from the request's optional X-SIP-* headers. */
static const char *request_msg(struct MHD_Connection *conn, msg_t *m)
{
    const char *src = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-SIP-Source");
    const char *dst = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-SIP-Destination");
    const char *tr = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "X-SIP-Transport");
    if (src && edge_parse_endpoint(src, &m->src) != 0)
        return "X-SIP-Source: expected ADDR:PORT or [V6]:PORT";
    if (dst && edge_parse_endpoint(dst, &m->dst) != 0)
        return "X-SIP-Destination: expected ADDR:PORT or [V6]:PORT";
    if (!tr || !strcasecmp(tr, "udp"))
        m->transport = tr ? TRANSPORT_UDP : TRANSPORT_NONE;
    else if (!strcasecmp(tr, "tcp") || !strcasecmp(tr, "tls"))
        m->transport = TRANSPORT_TCP;
    else if (!strcasecmp(tr, "sctp"))
        m->transport = TRANSPORT_SCTP;
    else if (!strcasecmp(tr, "ws") || !strcasecmp(tr, "wss"))
        m->transport = TRANSPORT_WS;
    else
        return "X-SIP-Transport: expected udp, tcp, tls, sctp, ws or wss";
    return NULL;
}

static enum MHD_Result score(edge_http_t *h, struct MHD_Connection *conn, upload_t *u)
{
    if (u->too_big) {
        char why[96];
        snprintf(why, sizeof why, "message longer than max_message (%ld bytes)", h->c->max_message);
        return reply_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, why);
    }
    if (u->len == 0)
        return reply_error(conn, MHD_HTTP_BAD_REQUEST, "empty body: POST the raw SIP message");
    msg_t m = {0};
    const char *why = request_msg(conn, &m);
    if (why)
        return reply_error(conn, MHD_HTTP_BAD_REQUEST, why);
    m.input = "http";
    m.data = (const uint8_t *)u->body;
    m.len = u->len;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    m.ts_sec = now.tv_sec;
    m.ts_usec = (int32_t)(now.tv_nsec / 1000);
    edge_result_t r;
    json_t *report = NULL;
    pthread_mutex_lock(&h->lock);
    m.index = h->index++;
    int rc = pipeline_run(h->pipe, &m, &r);
    if (rc == 0 && !r.allowed && r.verdict != VERDICT_BANNED &&
        (r.verdict != VERDICT_NORMAL || !pipeline_config(h->pipe)->anomalies_only) &&
        h->allowed(h->report_ctx))
        report = pipeline_report(h->pipe, &m, &r);
    pthread_mutex_unlock(&h->lock);
    if (rc != 0)
        return reply_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    metrics_message(h->metrics, SRC_HTTP, &r);
    record_message(h->record, &m, &r);
    json_t *sigs = json_array(), *fired = json_array();
    for (int i = 0; i < r.sigs.n; i++)
        json_array_append_new(sigs, json_string(r.sig_ids[i]));
    if (r.sigs.n)
        json_array_append_new(fired, json_string("signature"));
    if (r.score.global_anomaly)
        json_array_append_new(fired, json_string("global"));
    if (r.score.local_anomaly)
        json_array_append_new(fired, json_string("local"));
    if (r.ctx.flood.flood)
        json_array_append_new(fired, json_string("flood"));
    if (r.ctx.dialog.anomaly)
        json_array_append_new(fired, json_string("dialog"));
    if (r.ctx.binding.anomaly)
        json_array_append_new(fired, json_string("binding"));
    if (r.verdict == VERDICT_BANNED)
        json_array_append_new(fired, json_string("ban"));
    bool scored = r.verdict != VERDICT_BANNED;
    /* verdict and anomaly are the answer, which a waived judgement turns normal; judged and
     * waived say what was judged and why it does not count */
    const char *waived = edge_waived_name(r.waived);
    json_t *o = json_pack(
        "{s:s, s:b, s:s, s:o, s:o, s:o, s:o, s:f, s:f, s:o, s:o, s:o}", "verdict",
        edge_verdict_name(edge_answer(&r)), "anomaly", edge_answer(&r) != VERDICT_NORMAL, "judged",
        edge_verdict_name(r.verdict), "waived", waived ? json_string(waived) : json_null(),
        "detector", fired, "global", scored ? json_real(r.score.global) : json_null(), "local",
        r.score.local_done ? json_real(r.score.local) : json_null(), "threshold_global",
        r.thr_global, "threshold_local", r.thr_local, "signatures", sigs, "parse_ok",
        scored ? json_boolean(r.info.parse_ok) : json_null(), "banned_for",
        r.banned_for > 0 ? json_real(r.banned_for) : json_null());
    if (report)
        h->report(h->report_ctx, report);
    return reply_json(conn, MHD_HTTP_OK, o);
}

/* GET /v1/bans lists the bans; DELETE /v1/bans/SOURCE lifts one (source NULL: none named). */
static enum MHD_Result bans(edge_http_t *h, struct MHD_Connection *conn, const char *method,
                            const char *source)
{
    pthread_mutex_lock(&h->lock); /* the pipeline's, whose settings a SIGHUP may have changed */
    const edge_config_t *c = pipeline_config(h->pipe);
    bool on = h->bans && (c->ban_after > 0 || c->ban_domain);
    pthread_mutex_unlock(&h->lock);
    if (!on)
        return reply_error(conn, MHD_HTTP_NOT_FOUND, "bans are off ([ban] after = 0, domain = no)");
    double t = ban_clock();
    if (!source) {
        if (strcmp(method, "GET") && strcmp(method, "HEAD"))
            return reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                               "use GET, or DELETE /v1/bans/SOURCE");
        return reply_json(conn, MHD_HTTP_OK, json_pack("{s:o}", "bans", bantable_list(h->bans, t)));
    }
    if (strcmp(method, "DELETE"))
        return reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "use DELETE");
    int lifted = bantable_lift(h->bans, source);
    if (lifted < 0)
        return reply_error(conn, MHD_HTTP_BAD_REQUEST,
                           "expected an address: /v1/bans/203.0.113.7 or /v1/bans/2001:db8::1");
    if (lifted == 0)
        return reply_error(conn, MHD_HTTP_NOT_FOUND, "not banned");
    info("ban on %s lifted over HTTP", source);
    return reply_json(conn, MHD_HTTP_OK, json_pack("{s:s}", "lifted", source));
}

/* A sender as JSON: its address, messages, last message (Unix time) and how long ago. */
static json_t *sender_json(const edge_sender_t *e, double now)
{
    char a[46];
    msg_address_format(&e->addr, a);
    return json_pack("{s:s, s:I, s:I, s:f, s:f}", "sender", a, "messages", (json_int_t)e->messages,
                     "responses", (json_int_t)e->responses, "last", e->last, "seconds_since",
                     now - e->last);
}

/* GET /v1/senders lists the HEP senders heard (edge_senders); DELETE /v1/senders/ADDRESS
 * forgets one, a proxy taken out of service, so that it no longer counts as gone silent. */
static enum MHD_Result senders(edge_http_t *h, struct MHD_Connection *conn, const char *method,
                               const char *address)
{
    edge_senders_t *s = h->metrics->senders;
    if (!s)
        return reply_error(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory at start");
    double now = ban_clock();
    if (!address) {
        if (strcmp(method, "GET") && strcmp(method, "HEAD"))
            return reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED,
                               "use GET, or DELETE /v1/senders/ADDRESS");
        static edge_sender_t list[EDGE_SENDERS_MAX];
        static pthread_mutex_t list_lock = PTHREAD_MUTEX_INITIALIZER;
        pthread_mutex_lock(&list_lock);
        size_t n = edge_senders_list(s, list, now);
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append_new(a, sender_json(&list[i], now));
        pthread_mutex_unlock(&list_lock);
        return reply_json(conn, MHD_HTTP_OK,
                          json_pack("{s:o, s:I}", "senders", a, "untracked",
                                    (json_int_t)edge_senders_untracked(s)));
    }
    if (strcmp(method, "DELETE"))
        return reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "use DELETE");
    endpoint_t ep = {0};
    if (inet_pton(AF_INET, address, ep.addr) == 1)
        ep.family = 4;
    else if (inet_pton(AF_INET6, address, ep.addr) == 1)
        ep.family = 6;
    else
        return reply_error(conn, MHD_HTTP_BAD_REQUEST,
                           "expected an address: /v1/senders/10.0.0.5 or /v1/senders/2001:db8::5");
    if (!edge_senders_forget(s, &ep))
        return reply_error(conn, MHD_HTTP_NOT_FOUND, "no such sender");
    info("HEP sender %s forgotten over HTTP", address);
    return reply_json(conn, MHD_HTTP_OK, json_pack("{s:s}", "forgotten", address));
}

/* [http] api_token, as the newest settings have it (a SIGHUP may replace it) */
static bool token_accepted(edge_http_t *h, struct MHD_Connection *conn)
{
    const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    pthread_mutex_lock(&h->lock);
    bool ok = bearer_accepted(auth, pipeline_config(h->pipe)->http_token);
    pthread_mutex_unlock(&h->lock);
    return ok;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *data_len, void **con_cls)
{
    (void)version;
    edge_http_t *h = cls;
    bool post = !strcmp(method, "POST");
    if (!strncmp(url, "/v1/", 4) && !*con_cls && !token_accepted(h, conn))
        return reply_error(conn, MHD_HTTP_UNAUTHORIZED, "missing or wrong bearer token");
    if (!strcmp(url, "/v1/score")) {
        if (!post)
            return reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "use POST");
        upload_t *u = *con_cls;
        if (!u) {
            u = calloc(1, sizeof *u);
            if (!u)
                return MHD_NO;
            *con_cls = u;
            return MHD_YES;
        }
        if (*data_len) {
            if (u->len + *data_len > (size_t)h->c->max_message) {
                u->too_big = true;
            } else {
                if (u->len + *data_len > u->cap) {
                    size_t cap = (u->len + *data_len) * 2;
                    char *b = realloc(u->body, cap);
                    if (!b)
                        return MHD_NO;
                    u->body = b;
                    u->cap = cap;
                }
                memcpy(u->body + u->len, data, *data_len);
                u->len += *data_len;
            }
            *data_len = 0;
            return MHD_YES;
        }
        return score(h, conn, u);
    }
    if (!strncmp(url, "/v1/bans", 8) && (url[8] == 0 || url[8] == '/'))
        return bans(h, conn, method, url[8] ? url + 9 : NULL);
    if (!strncmp(url, "/v1/senders", 11) && (url[11] == 0 || url[11] == '/'))
        return senders(h, conn, method, url[11] ? url + 12 : NULL);
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return reply_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "use GET");
    if (!strcmp(url, "/metrics")) {
        char *text = metrics_render(h->metrics);
        if (!text)
            return MHD_NO;
        return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text);
    }
    if (!strcmp(url, "/healthz"))
        return reply(conn, MHD_HTTP_OK, "text/plain", strdup("ok\n"));
    return reply_error(conn, MHD_HTTP_NOT_FOUND,
                       "unknown path; try POST /v1/score, GET /v1/bans, GET /v1/senders, GET "
                       "/metrics or GET /healthz");
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    upload_t *u = *con_cls;
    if (u) {
        free(u->body);
        free(u);
        *con_cls = NULL;
    }
}

/* The endpoint's daemon: an idle connection closed after 10 s, 256 at most at once. */
static httpd_opts_t http_opts(edge_http_t *h)
{
    return (httpd_opts_t){.listen_name = "[http] listen",
                          .section = "[http]",
                          .handler = on_request,
                          .handler_cls = h,
                          .completed = on_completed,
                          .completed_cls = h,
                          .timeout_s = 10,
                          .max_connections = 256};
}

edge_http_t *edge_http_start(const edge_config_t *c, edge_assets_slot_t *slot,
                             edge_metrics_t *metrics, bantable_t *bans, log_limit_t *ban_log,
                             edge_record_t *record, edge_report_fn report,
                             edge_report_allowed_fn allowed, void *report_ctx, char *err,
                             size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = edge_hostport_sockaddr(c->http_listen, &ss);
    if (!sl) {
        snprintf(err, errlen, "[http] listen = %s: expected a numeric IPV4:PORT or [IPV6]:PORT",
                 c->http_listen);
        return NULL;
    }
    edge_http_t *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->c = c;
    h->metrics = metrics;
    h->report = report;
    h->allowed = allowed;
    h->report_ctx = report_ctx;
    pthread_mutex_init(&h->lock, NULL);
    h->pipe = pipeline_new(slot, 0x9e3779b97f4a7c15ULL);
    if (!h->pipe) {
        snprintf(err, errlen, "out of memory");
        edge_http_stop(&h);
        return NULL;
    }
    h->bans = bans;
    h->record = record;
    pipeline_set_bans(h->pipe, bans, ban_log);
    httpd_opts_t o = http_opts(h);
    if (!(h->d = httpd_start(&o, c->http_listen, &ss, sl, c->http_tls_cert, c->http_tls_key, err,
                             errlen))) {
        edge_http_stop(&h);
        return NULL;
    }
    return h;
}

unsigned edge_http_port(const edge_http_t *h)
{
    return httpd_port(h->d);
}

int edge_http_check_tls(const edge_config_t *c, char *err, size_t errlen)
{
    httpd_opts_t o = http_opts(NULL);
    return c->http_listen[0] ? httpd_check_tls(&o, c->http_tls_cert, c->http_tls_key, err, errlen)
                             : 0;
}

int edge_http_reload_tls(edge_http_t *h, const edge_config_t *c, char *err, size_t errlen)
{
    return httpd_reload_tls(h->d, c->http_tls_cert, c->http_tls_key, err, errlen);
}

void edge_http_stop(edge_http_t **self)
{
    edge_http_t *h = *self;
    if (!h)
        return;
    httpd_stop(&h->d);
    pipeline_destroy(&h->pipe);
    pthread_mutex_destroy(&h->lock);
    free(h);
    *self = NULL;
}
