/*
 * sipguard-overlay: the domain's collector of anomaly reports (issue 5, first part).
 *
 * It takes reports from the configured edges (ZeroMQ ROUTER, CURVE, edge keys admitted by a
 * ZAP handler), checks them, commits them to SQLite and only then acknowledges them, and
 * serves /metrics and /healthz. Clustering, signatures, review and distribution build on
 * this store (docs/overlay.md says what exists).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <fcntl.h>
#include <ini.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "allowlist.h"
#include "bearer.h"
#include "cliopt.h"
#include "collector.h"
#include "edge_config.h"
#include "fsutil.h"
#include "httpd.h"
#include "log.h"
#include "publisher.h"
#include "sigman.h"
#include "store.h"
#include "wire.h"

#ifndef SIPGUARD_VERSION
#define SIPGUARD_VERSION "dev"
#endif

typedef struct {
    char listen[256], db[512], key_dir[512], http_listen[128], log_level[16], api_token[128];
    char snapshot_listen[256], updates_listen[256];
    char tls_cert[512], tls_key[512];
    long max_report;
    bool syslog;
    sigman_opts_t sig;
    long build_interval; /* seconds between signature builds when reports came in; 0: never */
    long retention_days; /* anomaly and refused reports older than this are deleted; 0: never */
    edge_key_t edges[COLLECTOR_MAX_EDGES];
    size_t n_edges;
} overlay_config_t;

static const cliopt_t opts[] = {
    {"config", 'c', "FILE", "INI configuration file (see --print-config)", NULL},
    {"set", 's', "SECTION.KEY=VALUE", "override one [overlay] or [signatures] setting (repeatable)",
     NULL},
    {"edge", 'e', "ID=KEY", "admit an edge: its id and its CURVE public key (repeatable)", NULL},
    {"check-config", 0, NULL,
     "read the configuration, open the store if there is one (creating nothing: a new store or key "
     "pair needs a directory that can be written), load the signature model, print the settings, "
     "exit",
     NULL},
    {"print-config", 0, NULL, "print a commented configuration with every setting, exit", NULL},
    {"ports-file", 0, "FILE", "write where it listens (reports, http) once listening", NULL},
    {"version", 'V', NULL, "print the version", NULL},
    {"help", 'h', NULL, "show this help", NULL},
    {0},
};

static const clicmd_t cmd = {
    "sipguard-overlay [-c FILE] [--set overlay.KEY=VALUE]... [--edge ID=KEY]...",
    "Collects the anomaly reports of a domain's edges. Edges connect with CURVE; only the\n"
    "public keys listed under [edges] (or given with --edge) get in, and an edge can only\n"
    "report as itself. Each report is checked against docs/report-schema.json, committed to\n"
    "SQLite (WAL) and only then acknowledged; duplicates by (edge, sequence) are acknowledged\n"
    "and not stored again; refused reports are recorded with their reason; reports older than\n"
    "retention_days (30) are deleted once clustered. The overlay's own key pair is made on\n"
    "first start in key_dir (server.pub is what edges need as [overlay] server_key).\n\n"
    "With [signatures] model set, stored anomalies are clustered as they arrive (linkage or\n"
    "k-means) and the clusters are saved in the store (every minute, after a build and on the\n"
    "way out), so a restart goes on from them instead of clustering the store again; every\n"
    "build_interval seconds the clusters that grew get a bilateral signature verified on the\n"
    "clean sample (edges' normal samples and [signatures] clean captures), stored as the next\n"
    "version of that cluster's signature, pending review or active under the auto_approve\n"
    "policy; active ones expire after lifetime seconds without new reports. The active set\n"
    "goes to every edge: snapshots on snapshot_listen, updates on updates_listen (CURVE,\n"
    "configured edges only).\n\n"
    "On [overlay] http_listen: the review page (GET /), the REST API under /v1/ (bearer token\n"
    "api_token; signatures, anomalies, clusters, edges, the domain's allowed sources that\n"
    "every edge gets with the set, the domain's bans (learned from the edges' reports, sent\n"
    "with the set: [signatures] share_bans), build; docs/overlay-api.yaml), GET /metrics and\n"
    "/healthz; HTTPS when tls_cert and tls_key are set.\n\n"
    "Signals: SIGHUP reads the configuration again and admits its [edges] (and --edge) from\n"
    "then on, closing the signature connections when an edge is taken off; it also applies\n"
    "api_token, log_level, retention_days, build_interval and the [signatures] settings that\n"
    "leave the clusters alone (all but model, linkage, k, cut, min_members), and reads\n"
    "tls_cert and tls_key again (a renewed certificate, on the same port); other settings\n"
    "take effect at the next start. SIGTERM and SIGINT finish the batch at hand, save the\n"
    "clusters and exit.",
    opts,
    "exit status: 0 clean stop, 1 failure (cannot listen, store unusable), 2 usage or\n"
    "configuration error.\n\n"
    "example: sipguard-overlay --set overlay.db=/var/lib/sipguard/overlay.db \\\n"
    "             --edge edge1=$(cat /var/lib/sipguard/keys/edge.pub)",
};

static void config_default(overlay_config_t *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen, sizeof c->listen, "tcp://127.0.0.1:7070");
    snprintf(c->snapshot_listen, sizeof c->snapshot_listen, "tcp://127.0.0.1:7071");
    snprintf(c->updates_listen, sizeof c->updates_listen, "tcp://127.0.0.1:7072");
    snprintf(c->db, sizeof c->db, "/var/lib/sipguard/overlay.db");
    snprintf(c->key_dir, sizeof c->key_dir, "/var/lib/sipguard/overlay-keys");
    snprintf(c->http_listen, sizeof c->http_listen, "127.0.0.1:8081");
    snprintf(c->log_level, sizeof c->log_level, "info");
    c->max_report = 1 << 20;
    sigman_opts_default(&c->sig);
    c->build_interval = 60;
    c->retention_days = 30;
}

static int add_edge(overlay_config_t *c, const char *id, const char *key, char *err, size_t errlen)
{
    if (!*id || strlen(id) > WIRE_ID_MAX || strlen(key) != 40) {
        snprintf(err, errlen,
                 "edge %s: expected an id of 1-%d characters and a 40-character "
                 "Z85 public key",
                 id, WIRE_ID_MAX);
        return -1;
    }
    if (c->n_edges == COLLECTOR_MAX_EDGES) {
        snprintf(err, errlen, "more than %d edges", COLLECTOR_MAX_EDGES);
        return -1;
    }
    snprintf(c->edges[c->n_edges].id, sizeof c->edges[0].id, "%s", id);
    memcpy(c->edges[c->n_edges++].key, key, 41);
    return 0;
}

/* One [overlay] setting. Returns NULL or why it was refused. */
static const char *set_overlay(overlay_config_t *c, const char *key, const char *v)
{
    struct {
        const char *name;
        char *field;
        size_t size;
    } strs[] = {{"listen", c->listen, sizeof c->listen},
                {"snapshot_listen", c->snapshot_listen, sizeof c->snapshot_listen},
                {"updates_listen", c->updates_listen, sizeof c->updates_listen},
                {"db", c->db, sizeof c->db},
                {"key_dir", c->key_dir, sizeof c->key_dir},
                {"http_listen", c->http_listen, sizeof c->http_listen},
                {"log_level", c->log_level, sizeof c->log_level},
                {"api_token", c->api_token, sizeof c->api_token},
                {"tls_cert", c->tls_cert, sizeof c->tls_cert},
                {"tls_key", c->tls_key, sizeof c->tls_key}};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        if (!strcasecmp(key, strs[i].name)) {
            if (strlen(v) >= strs[i].size)
                return "value too long";
            snprintf(strs[i].field, strs[i].size, "%s", v);
            return NULL;
        }
    if (!strcasecmp(key, "max_report_bytes")) {
        char *end;
        long n = strtol(v, &end, 10);
        if (!*v || *end || n < 1024 || n > (64L << 20))
            return "expected a whole number from 1024 to 67108864";
        c->max_report = n;
        return NULL;
    }
    if (!strcasecmp(key, "retention_days")) {
        char *end;
        long n = strtol(v, &end, 10);
        if (!*v || *end || n < 0 || n > 36500)
            return "expected a whole number of days from 0 (keep every report) to 36500";
        c->retention_days = n;
        return NULL;
    }
    if (!strcasecmp(key, "syslog")) {
        if (!strcasecmp(v, "yes") || !strcmp(v, "1") || !strcasecmp(v, "true"))
            c->syslog = true;
        else if (!strcasecmp(v, "no") || !strcmp(v, "0") || !strcasecmp(v, "false"))
            c->syslog = false;
        else
            return "expected yes or no";
        return NULL;
    }
    return "unknown key";
}

typedef struct {
    overlay_config_t *c;
    char reason[300];
} ini_ctx_t;

/* One [signatures] setting. Returns NULL or why it was refused. */
static const char *set_signatures(overlay_config_t *c, const char *key, const char *v)
{
    char *end;
    if (!strcasecmp(key, "model")) {
        if (strlen(v) >= sizeof c->sig.model)
            return "value too long";
        snprintf(c->sig.model, sizeof c->sig.model, "%s", v);
    } else if (!strcasecmp(key, "clean")) {
        if (strlen(v) >= sizeof c->sig.clean)
            return "value too long";
        snprintf(c->sig.clean, sizeof c->sig.clean, "%s", v);
    } else if (!strcasecmp(key, "linkage")) {
        if (siggen_parse_linkage(v, &c->sig.gen.linkage) != 0)
            return "expected single, complete, average or kmeans";
    } else if (!strcasecmp(key, "cut")) {
        double d = strtod(v, &end);
        if (!*v || *end || d <= 0 || d > 2)
            return "expected a number above 0, at most 2";
        c->sig.gen.cut = d;
    } else if (!strcasecmp(key, "presence")) {
        double d = strtod(v, &end);
        if (!*v || *end || d <= 0 || d > 1)
            return "expected a fraction above 0, at most 1";
        c->sig.gen.presence = d;
    } else if (!strcasecmp(key, "max_strings")) {
        long n = strtol(v, &end, 10);
        if (!*v || *end || n < 1 || n > 256)
            return "expected a whole number from 1 to 256";
        c->sig.gen.max_strings = (size_t)n;
    } else if (!strcasecmp(key, "kind")) {
        if (strcmp(v, "bilateral") && strcmp(v, "unilateral"))
            return "expected bilateral or unilateral";
        c->sig.gen.bilateral = !strcmp(v, "bilateral");
    } else if (!strcasecmp(key, "tighten")) {
        if (strcmp(v, "yes") && strcmp(v, "no"))
            return "expected yes or no";
        c->sig.gen.tighten = !strcmp(v, "yes");
    } else if (!strcasecmp(key, "k")) {
        long n = strtol(v, &end, 10);
        if (!*v || *end || n < 1 || n > 10000)
            return "expected a whole number from 1 to 10000";
        c->sig.gen.k = (size_t)n;
    } else if (!strcasecmp(key, "share_bans")) {
        if (strcmp(v, "yes") && strcmp(v, "no"))
            return "expected yes or no";
        c->sig.share_bans = !strcmp(v, "yes");
    } else if (!strcasecmp(key, "max_shared_bans")) {
        long n = strtol(v, &end, 10);
        if (!*v || *end || n < 1 || n > 1000000)
            return "expected a whole number from 1 to 1000000";
        c->sig.max_bans = (size_t)n;
    } else if (!strcasecmp(key, "min_members") || !strcasecmp(key, "auto_approve") ||
               !strcasecmp(key, "auto_approve_edges") || !strcasecmp(key, "build_interval") ||
               !strcasecmp(key, "lifetime")) {
        long n = strtol(v, &end, 10);
        long most = !strcasecmp(key, "lifetime") ? 10L * 365 * 24 * 3600 : 1000000;
        if (!*v || *end || n < 0 || n > most) {
            static char why[64];
            snprintf(why, sizeof why, "expected a whole number from 0 to %ld", most);
            return why;
        }
        if (!strcasecmp(key, "min_members"))
            c->sig.gen.min_members = n ? (size_t)n : 1;
        else if (!strcasecmp(key, "auto_approve"))
            c->sig.auto_approve = (size_t)n;
        else if (!strcasecmp(key, "auto_approve_edges"))
            c->sig.auto_edges = (size_t)n;
        else if (!strcasecmp(key, "lifetime"))
            c->sig.lifetime = n;
        else
            c->build_interval = n;
    } else {
        return "unknown key";
    }
    return NULL;
}

static int on_ini(void *user, const char *section, const char *key, const char *value)
{
    ini_ctx_t *x = user;
    const char *why = NULL;
    char err[200];
    if (!strcasecmp(section, "overlay"))
        why = set_overlay(x->c, key, value);
    else if (!strcasecmp(section, "signatures"))
        why = set_signatures(x->c, key, value);
    else if (!strcasecmp(section, "edges"))
        why = add_edge(x->c, key, value, err, sizeof err) ? err : NULL;
    else
        why = "unknown section";
    if (why) {
        snprintf(x->reason, sizeof x->reason, "[%s] %s: %s", section, key, why);
        return 0;
    }
    return 1;
}

static void print_config(const overlay_config_t *c, bool comments)
{
    if (comments)
        printf(
            "# A SIGHUP reads this file again: it admits the [edges] and applies retention_days,\n"
            "# log_level, api_token, tls_cert, tls_key and build_interval, and the\n"
            "# [signatures] settings but model, linkage, cut, k and min_members; a change to\n"
            "# the others is logged and waits for the next start.\n\n");
    printf("[overlay]\n");
    if (comments)
        printf("# where edges send reports (ZeroMQ endpoint; tcp://*:7070 for all addresses)\n");
    printf("listen = %s\n", c->listen);
    if (comments)
        printf("# signature distribution: snapshots of the active set (ROUTER) and its updates\n"
               "# (PUB); edges set [overlay] signatures_snapshot and signatures_updates to them\n");
    printf("snapshot_listen = %s\nupdates_listen = %s\n", c->snapshot_listen, c->updates_listen);
    if (comments)
        printf("# the SQLite database of reports (WAL)\n");
    printf("db = %s\n", c->db);
    if (comments)
        printf("# the overlay's CURVE key pair (server.key, server.pub); made on first start\n");
    printf("key_dir = %s\n", c->key_dir);
    if (comments)
        printf("# larger reports are refused and counted\n");
    printf("max_report_bytes = %ld\n", c->max_report);
    if (comments)
        printf(
            "# days anomaly and refused reports are kept (the oldest go first, once clustered);\n"
            "# 0: every report is kept, and the store grows until the disk is full\n");
    printf("retention_days = %ld\n", c->retention_days);
    if (comments)
        printf("# GET /metrics and /healthz; empty: off\n");
    printf("http_listen = %s\n", c->http_listen);
    if (comments)
        printf("# error, warning, info or debug; syslog = yes logs to syslog\n");
    printf("log_level = %s\nsyslog = %s\n", c->log_level, c->syslog ? "yes" : "no");
    if (comments)
        printf("# bearer token the REST API (/v1/...) requires; empty: none (loopback only!)\n");
    if (c->api_token[0]) /* not shown: --check-config's output goes to the journal */
        printf("# api_token = (set; not shown)\n");
    else
        printf("api_token = \n");
    if (comments)
        printf("# PEM certificate and key: the HTTP endpoint speaks HTTPS (both, or neither)\n");
    printf("tls_cert = %s\ntls_key = %s\n\n[signatures]\n", c->tls_cert, c->tls_key);
    if (comments)
        printf("# the edges' model (its embedding is the signatures') and clean captures\n"
               "# (comma-separated) that build N and verify every signature\n");
    printf("model = %s\nclean = %s\n", c->sig.model, c->sig.clean);
    if (comments)
        printf("# clustering, incremental as reports arrive: single, complete or average\n"
               "# linkage (joined below the cut), or kmeans (at most k clusters); the clusters\n"
               "# are saved in the store, and changing these (or min_members) clusters the\n"
               "# reports retained again on the next start\n");
    printf("linkage = %s\ncut = %g\nk = %zu\n",
           c->sig.gen.linkage == LINK_SINGLE     ? "single"
           : c->sig.gen.linkage == LINK_COMPLETE ? "complete"
           : c->sig.gen.linkage == LINK_KMEANS   ? "kmeans"
                                                 : "average",
           c->sig.gen.cut, c->sig.gen.k);
    if (comments)
        printf("# A keeps the features at least `presence` of a cluster's members hold, the\n"
               "# max_strings of largest weight; kind bilateral is B = A - N (clean mean),\n"
               "# unilateral A alone; a signature that matches a clean message is rejected, or\n"
               "# with tighten = yes its threshold rises above the clean sample (when most\n"
               "# members still match)\n");
    printf("presence = %g\nmax_strings = %zu\nkind = %s\ntighten = %s\n", c->sig.gen.presence,
           c->sig.gen.max_strings, c->sig.gen.bilateral ? "bilateral" : "unilateral",
           c->sig.gen.tighten ? "yes" : "no");
    if (comments)
        printf("# smallest cluster that makes a signature; verified signatures of clusters with\n"
               "# auto_approve members or more, seen by auto_approve_edges edges or more, go\n"
               "# active without review (auto_approve 0: never); seconds between builds (0:\n"
               "# only POST /v1/build); seconds an active signature lives after the newest report\n"
               "# of its cluster arrived (0: until expired by hand)\n");
    printf("min_members = %zu\nauto_approve = %zu\nauto_approve_edges = %zu\n"
           "build_interval = %ld\nlifetime = %ld\n",
           c->sig.gen.min_members, c->sig.auto_approve, c->sig.auto_edges ? c->sig.auto_edges : 1,
           c->build_interval, c->sig.lifetime);
    if (comments)
        printf("# the sources edges banned ([ban]: a report says so) go out with the set, the\n"
               "# longest max_shared_bans of them, for edges with [ban] domain = yes to ban too\n");
    printf("share_bans = %s\nmax_shared_bans = %zu\n\n[edges]\n", c->sig.share_bans ? "yes" : "no",
           c->sig.max_bans);
    if (comments)
        printf("# one line per admitted edge: its id = its CURVE public key (edge.pub)\n");
    for (size_t i = 0; i < c->n_edges; i++)
        printf("%s = %s\n", c->edges[i].id, c->edges[i].key);
}

/* ------------------------------------------------------------------ HTTP */

typedef struct {
    collector_t *col;
    store_t *store;
} http_ctx_t;

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

extern const char review_page[]; /* web/review.html, embedded at build time */
static pthread_mutex_t stats_lock = PTHREAD_MUTEX_INITIALIZER;
static int sig_pipe[2] = {-1, -1}; /* wakes the loop: signals, and API changes to the set */
/* the store is used by the event loop (reports, builds) and the HTTP thread (the API) */
static pthread_mutex_t store_lock = PTHREAD_MUTEX_INITIALIZER;
static store_t *g_store;
static overlay_config_t *g_config;
static sigman_t *g_sigman;     /* the clusters and signatures; NULL without a model */
static size_t shared_clusters; /* under stats_lock, for /metrics */
static uint64_t shared_clustered;
static collector_stats_t shared_stats; /* copied by the loop, read by the HTTP thread */
static uint64_t stored_at_start;       /* reports the store held when the overlay started */
static uint64_t shared_pruned, shared_pruned_rejected; /* by retention, under stats_lock */
static size_t shared_state_bytes; /* the clusters' saved state, under stats_lock */
static uint64_t shared_save_failures;
static uint64_t shared_reloads, shared_reload_failures; /* SIGHUP */
static double shared_set_published; /* when the current set first went out, under stats_lock */

static enum MHD_Result json_reply(struct MHD_Connection *conn, unsigned status, json_t *o)
{
    char *t = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    size_t n = t ? strlen(t) : 0;
    char *b = realloc(t, n + 2);
    if (!b) {
        free(t);
        return MHD_NO;
    }
    memcpy(b + n, "\n", 2);
    return reply(conn, status, "application/json", b);
}

static enum MHD_Result api_error(struct MHD_Connection *conn, unsigned status, const char *why)
{
    return json_reply(conn, status, json_pack("{s:s}", "error", why));
}

static double wall_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static enum MHD_Result metrics_reply(struct MHD_Connection *conn);

/* A request's body: the allowed sources may run to many lines, the rest is a small JSON
 * object. */
#define BODY_MAX (1u << 20)
#define SMALL_BODY_MAX 4096
typedef struct {
    char *body;
    size_t len, cap;
    bool too_big; /* over BODY_MAX: the rest was not kept */
} post_t;

/* A whole-number query argument in [lo, hi] (def when absent); -1 when it is not one. */
static int64_t query_int(struct MHD_Connection *conn, const char *name, int64_t def, int64_t lo,
                         int64_t hi)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
    if (!v)
        return def;
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    return !*v || *end || errno || n < lo || n > hi ? -1 : (int64_t)n;
}

/* GET /v1/anomalies?edge=&since=&after=&limit=: stored anomaly reports, oldest first; "next"
 * is the `after` of the following page. */
static enum MHD_Result list_anomalies(struct MHD_Connection *conn)
{
    const char *edge = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "edge");
    const char *since_s = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "since");
    int64_t after = query_int(conn, "after", 0, 0, INT64_MAX);
    int64_t limit = query_int(conn, "limit", 100, 1, 1000);
    double since = 0;
    char *end = NULL;
    if (since_s)
        since = strtod(since_s, &end);
    if (after < 0)
        return api_error(conn, 400, "after: expected a report number (0 or more)");
    if (limit < 0)
        return api_error(conn, 400, "limit: expected a whole number from 1 to 1000");
    if (since_s && (!*since_s || *end || !isfinite(since)))
        return api_error(conn, 400, "since: expected a Unix time in seconds");
    json_t *list = store_list_reports(g_store, edge, since, after, (size_t)limit);
    if (!list)
        return api_error(conn, 500, store_error(g_store));
    size_t n = json_array_size(list);
    json_t *last = n ? json_array_get(list, n - 1) : NULL;
    return json_reply(conn, 200,
                      json_pack("{s:o, s:o}", "anomalies", list, "next",
                                last && n == (size_t)limit
                                    ? json_integer(json_integer_value(json_object_get(last, "n")))
                                    : json_null()));
}

/* GET /v1/clusters?min_members=&limit=: the live clusters, most members first. */
static enum MHD_Result list_clusters(struct MHD_Connection *conn)
{
    int64_t min_members = query_int(conn, "min_members", 1, 1, INT64_MAX);
    int64_t limit = query_int(conn, "limit", 100, 1, 1000);
    if (min_members < 0)
        return api_error(conn, 400, "min_members: expected a whole number, 1 or more");
    if (limit < 0)
        return api_error(conn, 400, "limit: expected a whole number from 1 to 1000");
    if (!g_sigman)
        return api_error(conn, 503, "no model: set [signatures] model to the edges' model");
    json_t *list = sigman_list_clusters(g_sigman, g_store, (size_t)min_members, (size_t)limit);
    if (!list)
        return api_error(conn, 500, "out of memory");
    return json_reply(conn, 200,
                      json_pack("{s:o, s:I, s:I}", "clusters", list, "live",
                                (json_int_t)sigman_clusters(g_sigman), "placed_up_to",
                                (json_int_t)sigman_last_placed(g_sigman)));
}

/* GET /v1/allowlist: the domain's allowed sources, as every edge gets them. */
static enum MHD_Result get_allowlist(struct MHD_Connection *conn)
{
    char err[300];
    double updated;
    json_t *entries = sigman_allowlist(g_store, &updated, err, sizeof err);
    char *text = entries ? store_get_allowlist(g_store, &updated) : NULL;
    if (!text) {
        json_decref(entries);
        return api_error(conn, 500, entries ? store_error(g_store) : err);
    }
    /* the text as it was put, comments and all, for editing; the entries as edges get them */
    json_t *o = json_pack("{s:o, s:s, s:o, s:I}", "entries", entries, "text", text, "updated",
                          updated > 0 ? json_real(updated) : json_null(), "signature_sequence",
                          (json_int_t)store_sequence(g_store));
    free(text);
    return o ? json_reply(conn, 200, o) : api_error(conn, 500, "out of memory");
}

/* PUT /v1/allowlist: replaces them with the body, an allow file (one address or CIDR prefix
 * a line, '#' comments); refused whole, with the line, when one entry is wrong. The set is
 * published again with them. */
static enum MHD_Result put_allowlist(struct MHD_Connection *conn, post_t *body)
{
    if (body->too_big)
        return api_error(conn, 413, "body larger than 1 MiB");
    char err[300];
    allowlist_t *a =
        allowlist_parse(body->body ? body->body : "", body->len, "body", err, sizeof err);
    if (!a)
        return api_error(conn, 400, err);
    allowlist_destroy(&a);
    json_t *utf8 = json_stringn(body->body ? body->body : "", body->len);
    if (!utf8) /* GET hands the text back as a JSON string */
        return api_error(conn, 400, "body: not UTF-8 text");
    json_decref(utf8);
    char *text = strndup(body->body ? body->body : "", body->len);
    int rc = text ? store_set_allowlist(g_store, text, wall_now()) : -1;
    free(text);
    if (rc != 0)
        return api_error(conn, 500, store_error(g_store));
    if (write(sig_pipe[1], "w", 1) < 0) {
        /* the loop is already awake */
    }
    return get_allowlist(conn);
}

/* api_token: a SIGHUP may replace it while the HTTP thread compares */
static pthread_mutex_t token_lock = PTHREAD_MUTEX_INITIALIZER;

/* Whether an Authorization header (NULL: none) passes [overlay] api_token (empty: no token). */
static bool token_accepted(const char *auth)
{
    pthread_mutex_lock(&token_lock);
    bool ok = bearer_accepted(auth, g_config->api_token);
    pthread_mutex_unlock(&token_lock);
    return ok;
}

/* /v1/...: the review API (docs/overlay-api.yaml). */
static enum MHD_Result api(struct MHD_Connection *conn, const char *url, const char *method,
                           post_t *body)
{
    if (!token_accepted(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization")))
        return api_error(conn, 401, "missing or wrong bearer token");
    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST");
    char id[64], action[16];
    enum MHD_Result r;
    pthread_mutex_lock(&store_lock);
    if (!strcmp(url, "/v1/signatures") && get) {
        const char *state = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "state");
        if (state && strcmp(state, "pending") && strcmp(state, "active") &&
            strcmp(state, "rejected") && strcmp(state, "expired"))
            r = api_error(conn, 400, "state: expected pending, active, rejected or expired");
        else
            r = json_reply(conn, 200,
                           json_pack("{s:o}", "signatures", store_list_signatures(g_store, state)));
    } else if (!strcmp(url, "/v1/anomalies") && get) {
        r = list_anomalies(conn);
    } else if (!strcmp(url, "/v1/clusters") && get) {
        r = list_clusters(conn);
    } else if (!strcmp(url, "/v1/signatures/active.json") && get) {
        char err[300];
        json_t *doc = sigman_active(g_store, &g_config->sig, err, sizeof err);
        r = doc ? json_reply(conn, 200, doc) : api_error(conn, 503, err);
    } else if (sscanf(url, "/v1/signatures/%63[^/]/%15s", id, action) == 2) {
        if (!post) {
            r = api_error(conn, 405, "use POST");
        } else if (body->too_big || body->len > SMALL_BODY_MAX) {
            r = api_error(conn, 413, "body larger than 4 KiB");
        } else {
            json_error_t je;
            json_t *b = body->len ? json_loadb(body->body, body->len, 0, &je) : NULL;
            const char *reason = json_string_value(json_object_get(b, "reason"));
            if (body->len && !json_is_object(b)) {
                r = api_error(conn, 400, "body: expected a JSON object");
            } else if (!strcmp(action, "reject") && !reason) {
                r = api_error(conn, 400, "reject needs {\"reason\": \"...\"}");
            } else {
                int rc = sigman_transition(g_store, id, action, reason, wall_now());
                if (rc == 0 && write(sig_pipe[1], "w", 1) < 0) {
                    /* the loop is already awake */
                }
                json_t *cur = rc == 0 ? store_get_signature(g_store, id) : NULL;
                r = rc == 0    ? json_reply(conn, 200, cur)
                    : rc == -1 ? api_error(conn, 404, "unknown signature or action")
                    : rc == -2 ? api_error(conn, 409,
                                           "the signature is not in a state that "
                                           "allows this")
                               : api_error(conn, 500, store_error(g_store));
            }
            json_decref(b);
        }
    } else if (sscanf(url, "/v1/signatures/%63s", id) == 1 && get) {
        json_t *o = store_get_signature(g_store, id);
        r = o ? json_reply(conn, 200, o) : api_error(conn, 404, "unknown signature");
    } else if (!strcmp(url, "/v1/edges") && get) {
        r = json_reply(conn, 200,
                       json_pack("{s:o, s:I}", "edges", store_list_edges(g_store),
                                 "signature_sequence", (json_int_t)store_sequence(g_store)));
    } else if (!strcmp(url, "/v1/allowlist")) {
        r = !strcmp(method, "PUT") ? put_allowlist(conn, body)
            : get                  ? get_allowlist(conn)
                                   : api_error(conn, 405, "use GET or PUT");
    } else if (!strcmp(url, "/v1/bans") && get) {
        json_t *list = store_list_bans(g_store, wall_now(), 0);
        r = list ? json_reply(conn, 200,
                              json_pack("{s:o, s:b, s:I}", "bans", list, "shared",
                                        g_config->sig.share_bans, "signature_sequence",
                                        (json_int_t)store_sequence(g_store)))
                 : api_error(conn, 500, store_error(g_store));
    } else if (!strncmp(url, "/v1/bans/", 9)) {
        int lifted = strcmp(method, "DELETE") ? -2 : store_delete_ban(g_store, url + 9);
        r = lifted == -2 ? api_error(conn, 405, "use DELETE")
            : lifted < 0 ? api_error(conn, 500, store_error(g_store))
            : lifted == 0
                ? api_error(conn, 404, "no such ban (the source as GET /v1/bans lists it)")
                : json_reply(conn, 200, json_pack("{s:s, s:b}", "source", url + 9, "lifted", 1));
    } else if (!strcmp(url, "/v1/build") && post) {
        char err[600] = "no model: set [signatures] model to the edges' model";
        int added = g_sigman ? sigman_build(g_sigman, g_store, wall_now(), err, sizeof err) : -1;
        r = added >= 0 ? json_reply(conn, 200, json_pack("{s:i}", "added", added))
                       : api_error(conn, 503, err);
    } else {
        r = api_error(conn, get || post ? 404 : 405,
                      "unknown path or method; see docs/overlay-api.yaml");
    }
    pthread_mutex_unlock(&store_lock);
    return r;
}

static enum MHD_Result on_http(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *data,
                               size_t *data_len, void **con_cls)
{
    (void)cls, (void)version;
    if (!strncmp(url, "/v1/", 4)) {
        post_t *p = *con_cls;
        if (!p) {
            p = calloc(1, sizeof *p);
            if (!p)
                return MHD_NO;
            *con_cls = p;
            return MHD_YES;
        }
        if (*data_len) {
            if (p->len + *data_len > BODY_MAX) {
                p->too_big = true;
            } else if (!p->too_big) {
                if (p->len + *data_len > p->cap) {
                    size_t cap = p->cap ? p->cap : 4096;
                    while (cap < p->len + *data_len)
                        cap *= 2;
                    char *grown = realloc(p->body, cap);
                    if (!grown)
                        return MHD_NO;
                    p->body = grown;
                    p->cap = cap;
                }
                memcpy(p->body + p->len, data, *data_len);
                p->len += *data_len;
            }
            *data_len = 0;
            return MHD_YES;
        }
        return api(conn, url, method, p);
    }
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return reply(conn, 405, "application/json", strdup("{\"error\":\"use GET\"}\n"));
    if (!strcmp(url, "/healthz"))
        return reply(conn, 200, "text/plain", strdup("ok\n"));
    if (!strcmp(url, "/") || !strcmp(url, "/review")) {
        return reply(conn, 200, "text/html; charset=utf-8", strdup(review_page));
    }
    if (strcmp(url, "/metrics"))
        return reply(conn, 404, "application/json",
                     strdup("{\"error\":\"unknown path; try /metrics, /healthz or /v1/\"}\n"));
    return metrics_reply(conn);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    post_t *p = *con_cls;
    if (p)
        free(p->body);
    free(p);
    *con_cls = NULL;
}

/* The signatures' part of /metrics, into b (cap bytes): how many in each state, the time from
 * detection (the founding report of a signature's cluster) to the signature going active,
 * the set in use and when it went out (edges' sipguard_signature_set_applied_seconds minus
 * this is the propagation), and the edges behind it. Returns the length written. */
static int signature_metrics(char *b, size_t cap)
{
    store_signature_stats_t ss;
    pthread_mutex_lock(&store_lock);
    int rc = store_signature_stats(g_store, &ss);
    uint64_t seq = store_sequence(g_store);
    size_t nbans = (size_t)store_count_bans(g_store, wall_now());
    pthread_mutex_unlock(&store_lock);
    pthread_mutex_lock(&stats_lock);
    double published = shared_set_published;
    pthread_mutex_unlock(&stats_lock);
    if (rc != 0)
        return 0;
    static const char *const states[STORE_STATES] = {"pending", "active", "rejected", "expired"};
    int n = snprintf(b, cap,
                     "# HELP sipguard_overlay_signatures Signatures in the store, by state.\n"
                     "# TYPE sipguard_overlay_signatures gauge\n");
    for (int k = 0; k < STORE_STATES && (size_t)n < cap; k++)
        n += snprintf(b + n, cap - (size_t)n, "sipguard_overlay_signatures{state=\"%s\"} %llu\n",
                      states[k], (unsigned long long)ss.by_state[k]);
    if ((size_t)n < cap)
        n += snprintf(b + n, cap - (size_t)n,
                      "# HELP sipguard_overlay_detection_to_active_seconds Per cluster, from its "
                      "first report to the first of its signatures going active (approved, or "
                      "by the auto_approve policy).\n"
                      "# TYPE sipguard_overlay_detection_to_active_seconds histogram\n");
    uint64_t cum = 0;
    for (int k = 0; k <= STORE_LATENCY_BUCKETS && (size_t)n < cap; k++) {
        cum += ss.to_active[k];
        if (k < STORE_LATENCY_BUCKETS)
            n += snprintf(b + n, cap - (size_t)n,
                          "sipguard_overlay_detection_to_active_seconds_bucket{le=\"%g\"} %llu\n",
                          store_latency_bounds[k], (unsigned long long)cum);
        else
            n += snprintf(b + n, cap - (size_t)n,
                          "sipguard_overlay_detection_to_active_seconds_bucket{le=\"+Inf\"} "
                          "%llu\n",
                          (unsigned long long)cum);
    }
    if ((size_t)n < cap)
        n += snprintf(
            b + n, cap - (size_t)n,
            "sipguard_overlay_detection_to_active_seconds_sum %.3f\n"
            "sipguard_overlay_detection_to_active_seconds_count %llu\n"
            "# HELP sipguard_overlay_signature_sequence Sequence of the active signature set.\n"
            "# TYPE sipguard_overlay_signature_sequence gauge\n"
            "sipguard_overlay_signature_sequence %llu\n"
            "# HELP sipguard_overlay_signature_set_published_seconds Unix time the current set "
            "first went out to the edges (0: not since start).\n"
            "# TYPE sipguard_overlay_signature_set_published_seconds gauge\n"
            "sipguard_overlay_signature_set_published_seconds %.3f\n"
            "# HELP sipguard_overlay_edges_behind Edges whose latest report named an older "
            "signature set than the current one.\n"
            "# TYPE sipguard_overlay_edges_behind gauge\n"
            "sipguard_overlay_edges_behind %llu\n"
            "# HELP sipguard_overlay_bans_active Sources edges of the domain banned, their bans "
            "running (GET /v1/bans).\n"
            "# TYPE sipguard_overlay_bans_active gauge\n"
            "sipguard_overlay_bans_active %zu\n",
            ss.to_active_sum, (unsigned long long)ss.to_active_count, (unsigned long long)seq,
            published, (unsigned long long)ss.edges_behind, nbans);
    return (size_t)n < cap ? n : (int)cap - 1;
}

static enum MHD_Result metrics_reply(struct MHD_Connection *conn)
{
    collector_stats_t st;
    pthread_mutex_lock(&stats_lock);
    st = shared_stats;
    size_t clusters = shared_clusters;
    uint64_t clustered = shared_clustered, pruned = shared_pruned,
             pruned_rejected = shared_pruned_rejected, save_failures = shared_save_failures;
    size_t state_bytes = shared_state_bytes;
    uint64_t reloads = shared_reloads, reload_failures = shared_reload_failures;
    pthread_mutex_unlock(&stats_lock);
    enum { METRICS_MAX = 16384 };
    char *b = malloc(METRICS_MAX);
    if (!b)
        return MHD_NO;
    int n = snprintf(
        b, METRICS_MAX,
        "# HELP sipguard_overlay_reports_received_total Report messages received.\n"
        "# TYPE sipguard_overlay_reports_received_total counter\n"
        "sipguard_overlay_reports_received_total %llu\n"
        "# HELP sipguard_overlay_reports_stored_total Reports committed to the store.\n"
        "# TYPE sipguard_overlay_reports_stored_total counter\n"
        "sipguard_overlay_reports_stored_total %llu\n"
        "# HELP sipguard_overlay_reports_duplicate_total Reports received again (acked, not "
        "stored).\n"
        "# TYPE sipguard_overlay_reports_duplicate_total counter\n"
        "sipguard_overlay_reports_duplicate_total %llu\n"
        "# HELP sipguard_overlay_reports_refused_total Reports refused, by reason.\n"
        "# TYPE sipguard_overlay_reports_refused_total counter\n",
        (unsigned long long)st.received, (unsigned long long)st.stored,
        (unsigned long long)st.duplicates);
    for (int r = 0; r < REJ_REASONS; r++)
        n += snprintf(b + n, METRICS_MAX - (size_t)n,
                      "sipguard_overlay_reports_refused_total{reason=\"%s\"} %llu\n",
                      collector_reason_name(r), (unsigned long long)st.rejected[r]);
    n += snprintf(
        b + n, METRICS_MAX - (size_t)n,
        "# HELP sipguard_overlay_clean_samples_total Normal messages edges sampled, stored "
        "as the clean sample (of the stored reports).\n"
        "# TYPE sipguard_overlay_clean_samples_total counter\n"
        "sipguard_overlay_clean_samples_total %llu\n"
        "# HELP sipguard_overlay_reports_in_store Reports the store holds (anomalies and clean "
        "samples).\n"
        "# TYPE sipguard_overlay_reports_in_store gauge\n"
        "sipguard_overlay_reports_in_store %llu\n"
        "# HELP sipguard_overlay_handshakes_refused_total CURVE clients whose key is not "
        "an edge's.\n# TYPE sipguard_overlay_handshakes_refused_total counter\n"
        "sipguard_overlay_handshakes_refused_total %llu\n"
        "# HELP sipguard_overlay_commit_failures_total Batches the store could not commit "
        "(not acknowledged).\n# TYPE sipguard_overlay_commit_failures_total counter\n"
        "sipguard_overlay_commit_failures_total %llu\n"
        "# HELP sipguard_overlay_clusters Clusters of anomalies now.\n"
        "# TYPE sipguard_overlay_clusters gauge\n"
        "sipguard_overlay_clusters %zu\n"
        "# HELP sipguard_overlay_anomalies_clustered_total Stored anomalies placed in clusters "
        "since start (those after the saved clusters, or the whole store's replay when none "
        "were saved).\n"
        "# TYPE sipguard_overlay_anomalies_clustered_total counter\n"
        "sipguard_overlay_anomalies_clustered_total %llu\n"
        "# HELP sipguard_overlay_reports_pruned_total Reports deleted by retention "
        "(retention_days), anomalies and refused reports.\n"
        "# TYPE sipguard_overlay_reports_pruned_total counter\n"
        "sipguard_overlay_reports_pruned_total{kind=\"anomaly\"} %llu\n"
        "sipguard_overlay_reports_pruned_total{kind=\"refused\"} %llu\n",
        (unsigned long long)st.clean, (unsigned long long)(stored_at_start + st.stored - pruned),
        (unsigned long long)st.zap_denied, (unsigned long long)st.commit_failures, clusters,
        (unsigned long long)clustered, (unsigned long long)pruned,
        (unsigned long long)pruned_rejected);
    n += signature_metrics(b + n, METRICS_MAX - (size_t)n);
    snprintf(b + n, METRICS_MAX - (size_t)n,
             "# HELP sipguard_overlay_cluster_state_bytes Size of the clusters' state as last "
             "saved to the store (0: not saved since start).\n"
             "# TYPE sipguard_overlay_cluster_state_bytes gauge\n"
             "sipguard_overlay_cluster_state_bytes %zu\n"
             "# HELP sipguard_overlay_cluster_save_failures_total Saves of the clusters' state "
             "that failed (retention then keeps the reports a restart would need).\n"
             "# TYPE sipguard_overlay_cluster_save_failures_total counter\n"
             "sipguard_overlay_cluster_save_failures_total %llu\n"
             "# HELP sipguard_overlay_edges_admitted Edges whose keys the configuration admits.\n"
             "# TYPE sipguard_overlay_edges_admitted gauge\n"
             "sipguard_overlay_edges_admitted %zu\n"
             "# HELP sipguard_overlay_reloads_total SIGHUP reloads of the admitted edges.\n"
             "# TYPE sipguard_overlay_reloads_total counter\n"
             "sipguard_overlay_reloads_total %llu\n"
             "# HELP sipguard_overlay_reload_failures_total SIGHUP reloads refused (the "
             "configuration did not read).\n"
             "# TYPE sipguard_overlay_reload_failures_total counter\n"
             "sipguard_overlay_reload_failures_total %llu\n",
             state_bytes, (unsigned long long)save_failures, st.edges, (unsigned long long)reloads,
             (unsigned long long)reload_failures);
    return reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", b);
}

/* The API's listener (common/httpd), or NULL when http_listen is empty. */
static httpd_opts_t http_opts(void)
{
    return (httpd_opts_t){.listen_name = "[overlay] http_listen",
                          .section = "[overlay]",
                          .handler = on_http,
                          .completed = on_completed};
}

static httpd_t *start_http(const overlay_config_t *c, char *err, size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = edge_hostport_sockaddr(c->http_listen, &ss);
    if (!sl) {
        snprintf(err, errlen, "[overlay] http_listen = %s: expected IPV4:PORT or [IPV6]:PORT",
                 c->http_listen);
        return NULL;
    }
    httpd_opts_t o = http_opts();
    return httpd_start(&o, c->http_listen, &ss, sl, c->tls_cert, c->tls_key, err, errlen);
}

/*
 * SIGHUP: the HTTPS certificate and key are read again, so that a renewed certificate needs
 * no restart (and tls_cert, tls_key may name other files, or turn HTTPS on or off). When they
 * changed, the daemon starts again on the same listening socket (httpd_reload_tls). A pair
 * that does not read or load leaves the running one.
 */
static void reload_https(overlay_config_t *c, const overlay_config_t *fresh, httpd_t *http)
{
    if (!http)
        return; /* no HTTP at all: http_listen takes a restart */
    char err[1200];
    int rc = httpd_reload_tls(http, fresh->tls_cert, fresh->tls_key, err, sizeof err);
    if (rc == -1) {
        error("SIGHUP: %s; HTTPS goes on with the certificate it has", err);
        return;
    }
    if (rc == -2) {
        error("SIGHUP: %s", err);
        return;
    }
    memcpy(c->tls_cert, fresh->tls_cert, sizeof c->tls_cert);
    memcpy(c->tls_key, fresh->tls_key, sizeof c->tls_key);
    if (rc == 1)
        info("SIGHUP: the API now speaks %s%s", c->tls_cert[0] ? "HTTPS with " : "plain HTTP",
             c->tls_cert);
}

/* ------------------------------------------------------------------ main */

static volatile sig_atomic_t stop, reload_wanted;

static void on_signal(int s)
{
    int saved = errno;
    if (s == SIGHUP)
        reload_wanted = 1;
    else
        stop = 1;
    if (write(sig_pipe[1], "x", 1) < 0) {
        /* a wake-up is already pending */
    }
    errno = saved;
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

/*
 * Saves the clusters when some report was placed or a build ran since the last save (caller
 * holds store_lock): at most once a CLUSTER_SAVE_INTERVAL while caught up, after each build,
 * and on the way out.
 * A failed save is warned about and counted; retention then stops at the last good one.
 */
enum { CLUSTER_SAVE_INTERVAL = 60 };

static bool save_clusters(double now)
{
    if (!g_sigman || !sigman_unsaved(g_sigman))
        return false;
    char err[600];
    size_t bytes = 0;
    double t0 = now_s();
    int rc = sigman_save(g_sigman, g_store, now, &bytes, err, sizeof err);
    if (rc != 0)
        warning("saving the clusters: %s", err);
    else
        debug("clusters saved: %zu bytes up to report %lld in %.3f s", bytes,
              (long long)sigman_saved(g_sigman), now_s() - t0);
    pthread_mutex_lock(&stats_lock);
    if (rc != 0)
        shared_save_failures++;
    else
        shared_state_bytes = bytes;
    pthread_mutex_unlock(&stats_lock);
    return true;
}

/* Starts the clustering from its saved state, when there is one it can use. */
static void resume_clusters(void)
{
    char err[600];
    size_t clusters = 0;
    double t0 = now_s();
    int rc = sigman_resume(g_sigman, g_store, &clusters, err, sizeof err);
    if (rc > 0)
        info("clusters resumed: %zu, up to report %lld (%.2f s)", clusters,
             (long long)sigman_last_placed(g_sigman), now_s() - t0);
    else if (rc < 0)
        warning("saved clusters not used (%s): clustering the reports retained again", err);
}

/* Keeps the active set's document current; publishes it when it changed, and again every
 * 5 s for subscribers that missed an update. */
static void refresh_set(publisher_t *p, const overlay_config_t *c, char **json, uint64_t *seq,
                        double *published_at)
{
    pthread_mutex_lock(&store_lock);
    uint64_t now_seq = store_sequence(g_store);
    if (now_seq != *seq && c->sig.model[0]) {
        char err[300];
        json_t *doc = sigman_active(g_store, &c->sig, err, sizeof err);
        if (doc) {
            free(*json);
            *json = json_dumps(doc, JSON_COMPACT);
            *seq = now_seq;
            *published_at = 0; /* publish now */
            json_decref(doc);
        }
    }
    pthread_mutex_unlock(&store_lock);
    double t = now_s();
    if (*json && t - *published_at >= 5.0) {
        bool first = *published_at == 0; /* a new set */
        publisher_publish(p, *seq, *json, strlen(*json));
        *published_at = t;
        if (first) {
            pthread_mutex_lock(&stats_lock);
            shared_set_published = wall_now();
            pthread_mutex_unlock(&stats_lock);
        }
    }
}

/* When reports changed the domain's bans, the set's sequence moves on, so that every edge
 * takes the set with them; at most once a second, so that a scan wave of new bans does not
 * make every edge take a new set for each. */
static void share_bans(const overlay_config_t *c, collector_t *col)
{
    static bool pending;
    static double last;
    pending |= collector_take_bans_changed(col);
    double now = now_s();
    if (!pending || !c->sig.share_bans || !c->sig.model[0] || now - last < 1.0)
        return;
    pthread_mutex_lock(&store_lock);
    if (store_bump_sequence(g_store) == 0) {
        pending = false;
        last = now;
    }
    pthread_mutex_unlock(&store_lock);
}

/* Places newly stored anomalies in their clusters (a short slice per turn of the loop, so
 * neither a long replay on start nor a flood of anomalies holds intake up); every
 * build_interval seconds, when some came in, builds the signatures of the clusters that grew;
 * every 5 s expires what outlived its lifetime. Returns true while stored anomalies wait to be
 * placed (the loop then does not sleep in poll). */
static bool keep_signatures(const overlay_config_t *c, bool busy)
{
    static double last_build, last_expiry, last_save;
    if (!g_sigman)
        return false;
    double now = now_s();
    char err[600];
    pthread_mutex_lock(&store_lock);
    /* intake and the API come first: a turn that took reports clusters for about 2 ms, an
     * idle one for up to 50 ms, so clustering lags a flood and catches up after it */
    double budget = busy ? 0.002 : 0.05;
    long got;
    do {
        got = sigman_ingest(g_sigman, g_store, 16);
    } while (got == 16 && now_s() - now < budget);
    if (got < 0)
        warning("clustering: store: %s", store_error(g_store));
    bool caught_up = got >= 0 && got < 16;
    int added = 0;
    if (c->build_interval > 0 && caught_up && sigman_unbuilt(g_sigman) > 0 &&
        now - last_build >= (double)c->build_interval) {
        last_build = now;
        added = sigman_build(g_sigman, g_store, now, err, sizeof err);
        if (added < 0)
            warning("signature build: %s", err);
        else if (added > 0)
            info("signature build: %d new signature versions", added);
        last_save = 0; /* save soon: the build cleared the clusters' marks of growth */
    }
    if (caught_up && now - last_save >= CLUSTER_SAVE_INTERVAL && save_clusters(wall_now()))
        last_save = now;
    if (now - last_expiry >= 5) {
        last_expiry = now;
        int n = sigman_expire_due(g_store, now);
        if (n > 0)
            info("%d signatures expired (lifetime)", n);
    }
    size_t nclusters = sigman_clusters(g_sigman);
    uint64_t clustered = sigman_placed(g_sigman);
    pthread_mutex_unlock(&store_lock);
    pthread_mutex_lock(&stats_lock);
    shared_clusters = nclusters;
    shared_clustered = clustered;
    pthread_mutex_unlock(&stats_lock);
    return got == 16; /* more to place */
}

/*
 * Retention: every minute, or every turn while a backlog remains, deletes a batch of the
 * reports older than retention_days that the clustering has read. Batches of 5,000 keep each
 * turn short; an overlay that starts on a store full of old reports works through it while it
 * takes new ones. Returns true while old reports remain.
 */
static bool prune_reports(const overlay_config_t *c, bool backlog)
{
    static double last;
    static uint64_t pruned, pruned_rejected;
    double now = now_s();
    if (c->retention_days <= 0 || (!backlog && now - last < 60))
        return false;
    last = now;
    enum { BATCH = 5000 };
    long rejected = 0;
    pthread_mutex_lock(&store_lock);
    /* only what the saved clusters hold: a restart reads on from there */
    int64_t placed = g_sigman ? sigman_saved(g_sigman) : INT64_MAX;
    long n =
        store_prune(g_store, now - (double)c->retention_days * 86400, placed, BATCH, &rejected);
    if (n < 0)
        warning("retention: store: %s", store_error(g_store));
    pthread_mutex_unlock(&store_lock);
    if (n <= 0 && rejected == 0)
        return false;
    pruned += (uint64_t)(n > 0 ? n : 0);
    pruned_rejected += (uint64_t)rejected;
    debug("retention: %ld reports and %ld refused reports deleted", n, rejected);
    pthread_mutex_lock(&stats_lock);
    shared_pruned = pruned;
    shared_pruned_rejected = pruned_rejected;
    pthread_mutex_unlock(&stats_lock);
    return n == BATCH || rejected == BATCH;
}

static int parse_args(overlay_config_t *c, int argc, char **argv, bool *check,
                      const char **ports_file)
{
    const char *arg, *config = NULL, *sets[64], *edges[256];
    int nsets = 0, nedges = 0, i;
    char err[400];
    while ((i = cliopt_next(&cmd, argc, argv, &arg)) != -1) {
        if (i == -2)
            return 2;
        const char *name = opts[i].name;
        if (!strcmp(name, "help")) {
            cliopt_help(&cmd, stdout);
            return 0;
        } else if (!strcmp(name, "version")) {
            printf("sipguard-overlay %s\n", SIPGUARD_VERSION);
            return 0;
        } else if (!strcmp(name, "print-config")) {
            print_config(c, true);
            return 0;
        } else if (!strcmp(name, "config")) {
            config = arg;
        } else if (!strcmp(name, "check-config")) {
            *check = true;
        } else if (!strcmp(name, "ports-file")) {
            *ports_file = arg;
        } else if (!strcmp(name, "set") && nsets < 64) {
            sets[nsets++] = arg;
        } else if (!strcmp(name, "edge") && nedges < 256) {
            edges[nedges++] = arg;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sipguard-overlay: unexpected argument %s\nusage: %s\n", argv[optind],
                cmd.usage);
        return 2;
    }
    if (config) {
        FILE *f = fopen(config, "r");
        ini_ctx_t x = {.c = c};
        int r = f ? ini_parse_file(f, on_ini, &x) : -1;
        if (f)
            fclose(f);
        if (r != 0) {
            fprintf(stderr, "sipguard-overlay: %s%s%d: %s\n", config, f ? ":" : "", f ? r : 0,
                    f ? (x.reason[0] ? x.reason : "not valid INI") : strerror(errno));
            return 2;
        }
    }
    for (int k = 0; k < nsets; k++) {
        const char *eq = strchr(sets[k], '='), *dot = strchr(sets[k], '.');
        char key[64], section[32];
        if (!eq || !dot || dot > eq || dot - sets[k] >= 32 || eq - dot - 1 >= 64) {
            fprintf(stderr, "sipguard-overlay: --set %s: expected SECTION.KEY=VALUE\n", sets[k]);
            return 2;
        }
        snprintf(section, sizeof section, "%.*s", (int)(dot - sets[k]), sets[k]);
        snprintf(key, sizeof key, "%.*s", (int)(eq - dot - 1), dot + 1);
        const char *why = !strcasecmp(section, "overlay")      ? set_overlay(c, key, eq + 1)
                          : !strcasecmp(section, "signatures") ? set_signatures(c, key, eq + 1)
                                                               : "unknown section";
        if (why) {
            fprintf(stderr, "sipguard-overlay: --set %s.%s: %s\n", section, key, why);
            return 2;
        }
    }
    for (int k = 0; k < nedges; k++) {
        const char *eq = strchr(edges[k], '=');
        char id[80];
        if (!eq || eq - edges[k] >= 80) {
            fprintf(stderr, "sipguard-overlay: --edge %s: expected ID=KEY\n", edges[k]);
            return 2;
        }
        snprintf(id, sizeof id, "%.*s", (int)(eq - edges[k]), edges[k]);
        if (add_edge(c, id, eq + 1, err, sizeof err) != 0) {
            fprintf(stderr, "sipguard-overlay: --edge: %s\n", err);
            return 2;
        }
    }
    if (log_parse_level(c->log_level) != 0) {
        fprintf(stderr, "sipguard-overlay: log_level %s: expected error, warning, info or debug\n",
                c->log_level);
        return 2;
    }
    return -1;
}

/* Names the edges of a that b does not admit (by id and key) into buf; how many. */
static size_t edges_missing(const overlay_config_t *a, const overlay_config_t *b, char *buf,
                            size_t cap)
{
    size_t n = 0, len = 0;
    buf[0] = 0;
    for (size_t i = 0; i < a->n_edges; i++) {
        size_t j = 0;
        while (j < b->n_edges &&
               (strcmp(a->edges[i].id, b->edges[j].id) || strcmp(a->edges[i].key, b->edges[j].key)))
            j++;
        if (j < b->n_edges)
            continue;
        log_list_add(buf, cap, &len, a->edges[i].id);
        n++;
    }
    return n;
}

/* The [signatures] settings a SIGHUP applies, those that leave the clusters as they are (not
 * model, linkage, k, cut and min_members, which also picks the clusters to drop when memory
 * is short, and is saved with them): they shape the next builds (sigman_set_policy). A change to
 * the shared bans sends the set again when there are bans, so that edges drop or take them now. */
static void apply_signature_policy(overlay_config_t *c, const overlay_config_t *fresh, char *names,
                                   size_t cap, size_t *o)
{
    sigman_opts_t *a = &c->sig;
    const sigman_opts_t *b = &fresh->sig;
    bool bans = a->share_bans != b->share_bans || a->max_bans != b->max_bans, any = bans;
#define POLICY(changed, name)                                                                      \
    do {                                                                                           \
        if (changed) {                                                                             \
            log_list_add(names, cap, o, name);                                                     \
            any = true;                                                                            \
        }                                                                                          \
    } while (0)
    POLICY(strcmp(a->clean, b->clean) != 0, "clean");
    POLICY(a->gen.presence != b->gen.presence, "presence");
    POLICY(a->gen.max_strings != b->gen.max_strings, "max_strings");
    POLICY(a->gen.bilateral != b->gen.bilateral, "kind");
    POLICY(a->gen.tighten != b->gen.tighten, "tighten");
    POLICY(a->auto_approve != b->auto_approve, "auto_approve");
    POLICY(a->auto_edges != b->auto_edges, "auto_approve_edges");
    POLICY(a->lifetime != b->lifetime, "lifetime");
    POLICY(a->share_bans != b->share_bans, "share_bans");
    POLICY(a->max_bans != b->max_bans, "max_shared_bans");
#undef POLICY
    if (!any)
        return;
    pthread_mutex_lock(&store_lock); /* the API reads them, and builds with them */
    memcpy(a->clean, b->clean, sizeof a->clean);
    a->gen.presence = b->gen.presence;
    a->gen.max_strings = b->gen.max_strings;
    a->gen.bilateral = b->gen.bilateral;
    a->gen.tighten = b->gen.tighten;
    a->auto_approve = b->auto_approve;
    a->auto_edges = b->auto_edges;
    a->lifetime = b->lifetime;
    a->share_bans = b->share_bans;
    a->max_bans = b->max_bans;
    if (g_sigman)
        sigman_set_policy(g_sigman, a);
    if (bans && a->model[0] && store_count_bans(g_store, wall_now()) > 0 &&
        store_bump_sequence(g_store) != 0)
        error("SIGHUP: the shared bans changed, but the set could not be sent again: %s",
              store_error(g_store));
    pthread_mutex_unlock(&store_lock);
}

/* Takes the settings a SIGHUP applies from fresh into c, naming those that changed. */
static void apply_live_settings(overlay_config_t *c, const overlay_config_t *fresh)
{
    char names[400] = "";
    size_t o = 0;
#define CHANGED(name) log_list_add(names, sizeof names, &o, name)
    if (strcmp(c->api_token, fresh->api_token)) {
        pthread_mutex_lock(&token_lock);
        memcpy(c->api_token, fresh->api_token, sizeof c->api_token);
        pthread_mutex_unlock(&token_lock);
        CHANGED("api_token");
    }
    if (strcmp(c->log_level, fresh->log_level)) {
        memcpy(c->log_level, fresh->log_level, sizeof c->log_level);
        CHANGED("log_level");
    }
    if (c->retention_days != fresh->retention_days) {
        c->retention_days = fresh->retention_days;
        CHANGED("retention_days");
    }
    if (c->build_interval != fresh->build_interval) {
        c->build_interval = fresh->build_interval;
        CHANGED("build_interval");
    }
    apply_signature_policy(c, fresh, names, sizeof names, &o);
#undef CHANGED
    if (o)
        info("SIGHUP: applying %s", names);
}

/*
 * SIGHUP: the configuration (file, --set and --edge as given at start) is read again and its
 * [edges] taken, so that an edge is admitted or turned away without a restart, with the
 * settings that can change while running: api_token (so a token is replaced without a
 * restart), log_level, retention_days, build_interval and the [signatures] settings that
 * leave the clusters alone (apply_signature_policy); the HTTPS certificate and key are read
 * again (reload_https). When an edge is
 * turned away (or its key changed), every report and signature connection is closed and made
 * again, so that it stops reporting and hearing signature sets, which CURVE checks only at the
 * handshake. Other settings
 * (sockets, store, signature building) take effect at the next start; a change to them is
 * logged as such. A configuration that no longer reads is refused whole.
 */
static void reload_edges(overlay_config_t *c, collector_t *col, publisher_t *pubr, httpd_t *http,
                         int argc, char **argv)
{
    static overlay_config_t fresh;
    config_default(&fresh);
    bool check = false;
    const char *ports_file = NULL;
    optind = 0; /* getopt from the start again */
    if (parse_args(&fresh, argc, argv, &check, &ports_file) >= 0) {
        error("SIGHUP: the configuration does not read (above); the admitted edges stay as they "
              "were");
        pthread_mutex_lock(&stats_lock);
        shared_reload_failures++;
        pthread_mutex_unlock(&stats_lock);
        return;
    }
    if (collector_set_edges(col, fresh.edges, fresh.n_edges) != 0) {
        error("SIGHUP: out of memory; the admitted edges stay as they were");
        pthread_mutex_lock(&stats_lock);
        shared_reload_failures++;
        pthread_mutex_unlock(&stats_lock);
        return;
    }
    char added[512], removed[512];
    size_t na = edges_missing(&fresh, c, added, sizeof added);
    size_t nr = edges_missing(c, &fresh, removed, sizeof removed);
    info("SIGHUP: %zu edges admitted; %zu added or with a new key%s%s, %zu removed or with a new "
         "key%s%s",
         fresh.n_edges, na, na ? ": " : "", added, nr, nr ? ": " : "", removed);
    char err[512];
    if (nr && collector_drop_peers(col, err, sizeof err) != 0)
        error("SIGHUP: %s; edges cannot report until the overlay restarts", err);
    else if (nr && publisher_drop_peers(pubr, err, sizeof err) != 0)
        error("SIGHUP: %s; edges cannot fetch signature sets until the overlay restarts", err);
    else if (nr)
        info("SIGHUP: report and signature connections closed; the edges still admitted connect "
             "again");
    /* the rest compared as a whole: both were made by config_default (zeroed) and the same
     * parse, so equal settings are equal bytes */
    memcpy(c->edges, fresh.edges, sizeof c->edges);
    c->n_edges = fresh.n_edges;
    apply_live_settings(c, &fresh); /* log_level: parse_args has set it */
    reload_https(c, &fresh, http);
    /* the certificate's outcome is logged above, taken or not */
    memcpy(fresh.tls_cert, c->tls_cert, sizeof fresh.tls_cert);
    memcpy(fresh.tls_key, c->tls_key, sizeof fresh.tls_key);
    if (memcmp(&fresh, c, sizeof fresh) != 0)
        warning("SIGHUP: settings that a SIGHUP does not apply changed (the listening addresses, "
                "db, key_dir, max_report_bytes, http_listen, syslog, and [signatures] model, "
                "linkage, k, cut, min_members); they take effect at the next start");
    pthread_mutex_lock(&stats_lock);
    shared_reloads++;
    pthread_mutex_unlock(&stats_lock);
}

/*
 * --check-config: the store, the signature model and the key directory as the overlay will
 * use them, creating nothing: an existing store is opened (so that a file that is no database
 * is named), a missing one only needs a writable directory, and so does a missing key pair.
 * Prints the effective settings; 0, or 1 naming what would stop the start.
 */
static int check_overlay_config(const overlay_config_t *c)
{
    char err[1200], key[600];
    httpd_opts_t http = http_opts();
    if (c->http_listen[0] && httpd_check_tls(&http, c->tls_cert, c->tls_key, err, sizeof err)) {
        error("%s", err);
        return 1;
    }
    if (access(c->db, F_OK) == 0) {
        store_t *store = store_open(c->db, err, sizeof err);
        if (!store) {
            error("%s", err);
            return 1;
        }
        store_close(&store);
    } else if (fs_file_would_be_writable(c->db) != 0) {
        error("[overlay] db = %s: %s", c->db, strerror(errno));
        return 1;
    }
    snprintf(key, sizeof key, "%s/server.key", c->key_dir);
    if (access(key, F_OK) != 0 && fs_dir_would_be_writable(c->key_dir) != 0) {
        error("[overlay] key_dir = %s: %s", c->key_dir, strerror(errno));
        return 1;
    }
    sigman_t *sm = NULL;
    if (c->sig.model[0] && !(sm = sigman_new(&c->sig, err, sizeof err))) {
        error("[signatures] model: %s", err);
        return 1;
    }
    sigman_destroy(&sm);
    print_config(c, false);
    fprintf(stderr, "sipguard-overlay: configuration OK\n");
    return 0;
}

static int overlay_run(int argc, char **argv)
{
    static overlay_config_t c;
    config_default(&c);
    log_set_program("sipguard-overlay");
    log_set_level(LOG_LEVEL_INFO);
    bool check = false;
    const char *ports_file = NULL;
    int rc = parse_args(&c, argc, argv, &check, &ports_file);
    if (rc >= 0)
        return rc;
    if (c.syslog)
        log_set_syslog(1);
    if (check)
        return check_overlay_config(&c);
    char err[600], pub[41], sec[41];
    store_t *store = store_open(c.db, err, sizeof err);
    if (!store) {
        error("%s", err);
        return 1;
    }
    if (c.sig.model[0] && !(g_sigman = sigman_new(&c.sig, err, sizeof err))) {
        error("[signatures] model: %s", err);
        store_close(&store);
        return 1;
    }
    if (wire_keypair(c.key_dir, "server", pub, sec, err, sizeof err) != 0) {
        error("%s", err);
        sigman_destroy(&g_sigman);
        store_close(&store);
        return 1;
    }
    stored_at_start = store_count_reports(store) + store_count_clean(store);
    g_store = store;
    g_config = &c;
    if (g_sigman)
        resume_clusters();
    if (c.n_edges == 0)
        warning("no edge is configured: every edge will be refused (add [edges] or --edge)");
    if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
        return 1;
    struct sigaction sa = {0};
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* a file size limit (LimitFSIZE=) then fails a write as a full disk does, which is
     * handled, instead of killing the daemon */
    signal(SIGXFSZ, SIG_IGN);
    void *zctx = zmq_ctx_new();
    collector_t *col = collector_new(zctx, c.listen, sec, c.edges, c.n_edges, (size_t)c.max_report,
                                     store, err, sizeof err);
    unsigned http_port = 0;
    httpd_t *http = NULL;
    publisher_t *pubr = NULL;
    rc = 1;
    if (!col) {
        error("%s", err);
        goto out;
    }
    pubr = publisher_new(zctx, c.snapshot_listen, c.updates_listen, sec, err, sizeof err);
    if (!pubr) {
        error("%s", err);
        goto out;
    }
    if (c.http_listen[0] && !(http = start_http(&c, err, sizeof err))) {
        error("%s", err);
        goto out;
    }
    http_port = http ? httpd_port(http) : 0;
    info("collecting reports at %s (server key %s) for %zu edges; http port %u",
         collector_endpoint(col), pub, c.n_edges, http_port);
    if (ports_file) {
        char tmp[600];
        snprintf(tmp, sizeof tmp, "%s.tmp", ports_file);
        FILE *f = fopen(tmp, "w");
        if (!f ||
            fprintf(f, "reports %s\nsnapshot %s\nupdates %s\nhttp %u\nkey %s\n",
                    collector_endpoint(col), publisher_snapshot_endpoint(pubr),
                    publisher_updates_endpoint(pubr), http_port, pub) < 0 ||
            fclose(f) != 0 || rename(tmp, ports_file) != 0) {
            error("--ports-file %s: %s", ports_file, strerror(errno));
            goto out;
        }
    }
    char *set_json = NULL;
    uint64_t set_seq = UINT64_MAX;
    double published_at = 0;
    bool backlog = false;     /* anomalies stored and not yet clustered: do not sleep in poll */
    bool old_reports = false; /* reports past retention remain: delete the next batch soon */
    while (!stop) {
        zmq_pollitem_t items[4] = {{collector_zap(col), 0, ZMQ_POLLIN, 0},
                                   {collector_socket(col), 0, ZMQ_POLLIN, 0},
                                   {NULL, sig_pipe[0], ZMQ_POLLIN, 0},
                                   {publisher_snapshot_socket(pubr), 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 4, backlog ? 0 : 100) < 0 && errno != EINTR)
            break;
        if (items[2].revents & ZMQ_POLLIN) { /* a signal, or the API saying the set changed */
            char buf[64];
            while (read(sig_pipe[0], buf, sizeof buf) > 0)
                ;
        }
        if (reload_wanted) {
            reload_wanted = 0;
            reload_edges(&c, col, pubr, http, argc, argv);
        }
        refresh_set(pubr, &c, &set_json, &set_seq, &published_at);
        if (items[3].revents & ZMQ_POLLIN)
            publisher_on_requests(pubr, set_seq, set_json ? set_json : "",
                                  set_json ? strlen(set_json) : 0);
        if (items[0].revents & ZMQ_POLLIN)
            collector_on_zap(col);
        collector_tick(col);
        if (items[1].revents & ZMQ_POLLIN) {
            pthread_mutex_lock(&store_lock);
            collector_on_reports(col, now_s());
            pthread_mutex_unlock(&store_lock);
        }
        share_bans(&c, col);
        backlog = keep_signatures(&c, items[1].revents & ZMQ_POLLIN);
        old_reports = prune_reports(&c, old_reports);
        backlog = backlog || old_reports;
        collector_stats_t st;
        collector_stats(col, &st);
        pthread_mutex_lock(&stats_lock);
        shared_stats = st;
        pthread_mutex_unlock(&stats_lock);
    }
    info("stopping");
    pthread_mutex_lock(&store_lock);
    save_clusters(wall_now());
    pthread_mutex_unlock(&store_lock);
    free(set_json);
    rc = 0;
out:
    publisher_destroy(&pubr);
    httpd_stop(&http);
    collector_destroy(&col);
    zmq_ctx_term(zctx);
    sigman_destroy(&g_sigman);
    store_close(&store);
    return rc;
}

int main(int argc, char **argv)
{
    return cliopt_finish_stdout("sipguard-overlay", overlay_run(argc, argv));
}
