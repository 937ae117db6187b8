#include "collector.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "allowlist.h"
#include "log.h"
#include "monotime.h"
#include "wire.h"

#define BATCH 512
#define CLEAN_PER_EDGE 5000 /* clean samples kept per edge */

struct collector {
    void *router, *zap;
    edge_key_t *edges;
    size_t n_edges, max_report;
    store_t *store;
    char endpoint[256];
    collector_stats_t st;
    bool bans_changed; /* a report changed the domain's bans since collector_take_bans_changed */
    /* failed batches since the last message about them: a full disk fails nearly every one,
     * and small batches may still fit now and then */
    uint64_t failing;
    double failure_said; /* when the last one was logged (0: never) */
    bool failure_open;   /* a failure was logged and no batch has committed since */
    /* refused CURVE clients: an edge whose key is not in [edges] retries every 100 ms, a line
     * each time */
    log_limit_t zap_log;
};

/* Refused clients named in the log a minute; the rest are summed up. */
#define ZAP_LOG_BURST 10

const char *collector_reason_name(int reason)
{
    static const char *n[] = {"frame", "identity", "oversize", "json", "fields"};
    return reason >= 0 && reason < REJ_REASONS ? n[reason] : "?";
}

collector_t *collector_new(void *zctx, const char *endpoint, const char *secret_key,
                           const edge_key_t *edges, size_t n_edges, size_t max_report,
                           store_t *store, char *err, size_t errlen)
{
    collector_t *c = calloc(1, sizeof *c);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    log_limit_init(&c->zap_log, ZAP_LOG_BURST, 60, "refused CURVE clients");
    c->edges = malloc((n_edges ? n_edges : 1) * sizeof *c->edges);
    if (!c->edges) {
        snprintf(err, errlen, "out of memory");
        collector_destroy(&c);
        return NULL;
    }
    memcpy(c->edges, edges, n_edges * sizeof *edges);
    c->n_edges = n_edges;
    c->max_report = max_report;
    c->store = store;
    /* the ZAP handler must be bound before any CURVE socket accepts a handshake */
    c->zap = zmq_socket(zctx, ZMQ_REP);
    c->router = wire_socket(zctx, ZMQ_ROUTER, endpoint);
    int one = 1, zero = 0, hwm = 100000;
    if (!c->zap || zmq_bind(c->zap, "inproc://zeromq.zap.01") != 0 || !c->router ||
        zmq_setsockopt(c->router, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(c->router, ZMQ_CURVE_SECRETKEY, secret_key, 40) != 0 ||
        zmq_setsockopt(c->router, ZMQ_ZAP_DOMAIN, "sipguard", 8) != 0 ||
        zmq_setsockopt(c->router, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(c->router, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0 ||
        zmq_setsockopt(c->router, ZMQ_ROUTER_HANDOVER, &one, sizeof one) != 0 ||
        zmq_bind(c->router, endpoint) != 0) {
        snprintf(err, errlen, "report socket %s: %s", endpoint, zmq_strerror(errno));
        collector_destroy(&c);
        return NULL;
    }
    zmq_setsockopt(c->zap, ZMQ_LINGER, &zero, sizeof zero);
    size_t len = sizeof c->endpoint;
    zmq_getsockopt(c->router, ZMQ_LAST_ENDPOINT, c->endpoint, &len);
    return c;
}

void collector_destroy(collector_t **self)
{
    collector_t *c = *self;
    if (!c)
        return;
    if (c->router)
        zmq_close(c->router);
    if (c->zap)
        zmq_close(c->zap);
    log_limit_flush(&c->zap_log, mono_now(), true);
    log_limit_destroy(&c->zap_log);
    free(c->edges);
    free(c);
    *self = NULL;
}

int collector_drop_peers(collector_t *c, char *err, size_t errlen)
{
    if (wire_rebind(c->router, c->endpoint) != 0) {
        snprintf(err, errlen, "report socket %s: %s", c->endpoint, zmq_strerror(errno));
        return -1;
    }
    return 0;
}

void *collector_socket(collector_t *c)
{
    return c->router;
}

void *collector_zap(collector_t *c)
{
    return c->zap;
}

const char *collector_endpoint(const collector_t *c)
{
    return c->endpoint;
}

void collector_stats(const collector_t *c, collector_stats_t *out)
{
    *out = c->st;
    out->edges = c->n_edges;
}

bool collector_take_bans_changed(collector_t *c)
{
    bool changed = c->bans_changed;
    c->bans_changed = false;
    return changed;
}

int collector_set_edges(collector_t *c, const edge_key_t *edges, size_t n_edges)
{
    edge_key_t *e = malloc((n_edges ? n_edges : 1) * sizeof *e);
    if (!e)
        return -1;
    memcpy(e, edges, n_edges * sizeof *edges);
    free(c->edges);
    c->edges = e;
    c->n_edges = n_edges;
    return 0;
}

/* Whether an edge of this id is admitted now */
static bool admitted(const collector_t *c, const char *id)
{
    for (size_t i = 0; i < c->n_edges; i++)
        if (!strcmp(c->edges[i].id, id))
            return true;
    return false;
}

/* Receives every frame of one message (up to n kept). Returns the frame count, or -1. */
static int recv_all(void *sock, zmq_msg_t *f, int n, int flags)
{
    int got = 0, more = 1;
    while (more) {
        zmq_msg_t tmp, *m = got < n ? &f[got] : &tmp;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, sock, got ? 0 : flags) < 0) {
            zmq_msg_close(m);
            for (int i = 0; i < got && i < n; i++)
                zmq_msg_close(&f[i]);
            return -1;
        }
        more = zmq_msg_more(m);
        if (m == &tmp)
            zmq_msg_close(&tmp);
        got++;
    }
    return got;
}

static const edge_key_t *edge_of_key(const collector_t *c, const char *z85)
{
    for (size_t i = 0; i < c->n_edges; i++)
        if (!strcmp(c->edges[i].key, z85))
            return &c->edges[i];
    return NULL;
}

void collector_tick(collector_t *c)
{
    log_limit_flush(&c->zap_log, mono_now(), false);
}

void collector_on_zap(collector_t *c)
{
    zmq_msg_t f[7];
    int n;
    while ((n = recv_all(c->zap, f, 7, ZMQ_DONTWAIT)) >= 0) {
        const edge_key_t *e = NULL;
        if (n >= 7 && zmq_msg_size(&f[5]) == 5 && !memcmp(zmq_msg_data(&f[5]), "CURVE", 5) &&
            zmq_msg_size(&f[6]) == 32) {
            char z85[41];
            zmq_z85_encode(z85, zmq_msg_data(&f[6]), 32);
            e = edge_of_key(c, z85);
            if (!e) {
                c->st.zap_denied++;
                if (log_limit_take(&c->zap_log, mono_now()))
                    warning("refused a CURVE client whose key %s is not a configured edge", z85);
            }
        }
        /* version, request id, status code, status text, user id, metadata */
        zmq_send(c->zap, "1.0", 3, ZMQ_SNDMORE);
        zmq_send(c->zap, n >= 2 ? zmq_msg_data(&f[1]) : "", n >= 2 ? zmq_msg_size(&f[1]) : 0,
                 ZMQ_SNDMORE);
        zmq_send(c->zap, e ? "200" : "400", 3, ZMQ_SNDMORE);
        const char *text = e ? "OK" : "unknown edge key";
        zmq_send(c->zap, text, strlen(text), ZMQ_SNDMORE);
        zmq_send(c->zap, e ? e->id : "", e ? strlen(e->id) : 0, ZMQ_SNDMORE);
        zmq_send(c->zap, "", 0, 0);
        for (int i = 0; i < n && i < 7; i++)
            zmq_msg_close(&f[i]);
    }
}

/* The type a required field must have. */
typedef enum { T_STR, T_INT, T_NUM, T_BOOL, T_ARR, T_STR_OR_NULL, T_NUM_OR_NULL } ftype_t;

static bool type_ok(json_t *v, ftype_t t)
{
    switch (t) {
    case T_STR:
        return json_is_string(v);
    case T_INT:
        return json_is_integer(v);
    case T_NUM:
        return json_is_number(v);
    case T_BOOL:
        return json_is_boolean(v);
    case T_ARR:
        return json_is_array(v);
    case T_STR_OR_NULL:
        return json_is_string(v) || json_is_null(v);
    case T_NUM_OR_NULL:
        return json_is_number(v) || json_is_null(v);
    }
    return false;
}

const char *collector_check_report(const char *json, size_t len, const char *edge, uint64_t seq,
                                   int *reason)
{
    int64_t sigseq;
    return collector_check_report_ex(json, len, edge, seq, reason, &sigseq);
}

const char *collector_check_report_ex(const char *json, size_t len, const char *edge, uint64_t seq,
                                      int *reason, int64_t *sigseq)
{
    *sigseq = -1;
    static const struct {
        const char *name;
        ftype_t type;
        const char *why;
    } fields[] = {
        {"edge", T_STR, "field edge: expected a string"},
        {"seq", T_INT, "field seq: expected an integer"},
        {"input", T_STR, "field input: expected a string"},
        {"index", T_INT, "field index: expected an integer"},
        {"ts", T_NUM, "field ts: expected a number"},
        {"src", T_STR_OR_NULL, "field src: expected a string or null"},
        {"dst", T_STR_OR_NULL, "field dst: expected a string or null"},
        {"transport", T_STR, "field transport: expected a string"},
        {"call_id", T_STR_OR_NULL, "field call_id: expected a string or null"},
        {"parse_ok", T_BOOL, "field parse_ok: expected true or false"},
        {"verdict", T_STR, "field verdict: expected a string"},
        {"detector", T_ARR, "field detector: expected an array"},
        {"global", T_NUM, "field global: expected a number"},
        {"local", T_NUM_OR_NULL, "field local: expected a number or null"},
        {"threshold_global", T_NUM, "field threshold_global: expected a number"},
        {"threshold_local", T_NUM, "field threshold_local: expected a number"},
        {"signatures", T_ARR, "field signatures: expected an array"},
        {"reported_at", T_NUM, "field reported_at: expected a number"},
    };
    json_error_t je;
    /* raw messages may hold NUL bytes (a fuzzing attack does): \u0000 is allowed */
    json_t *o = json_loadb(json, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!o || !json_is_object(o)) {
        json_decref(o);
        *reason = REJ_JSON;
        return "malformed JSON (or not an object)";
    }
    const char *why = NULL;
    *reason = REJ_FIELDS;
    for (size_t i = 0; i < sizeof fields / sizeof fields[0] && !why; i++) {
        json_t *v = json_object_get(o, fields[i].name);
        if (!v || !type_ok(v, fields[i].type))
            why = fields[i].why;
    }
    if (!why && strcmp(json_string_value(json_object_get(o, "edge")), edge)) {
        why = "field edge differs from the edge id of the frame";
        *reason = REJ_IDENTITY;
    }
    if (!why && (uint64_t)json_integer_value(json_object_get(o, "seq")) != seq)
        why = "field seq differs from the sequence number of the frame";
    json_t *ss = json_object_get(o, "signature_sequence"); /* optional */
    if (!why && ss && (!json_is_integer(ss) || json_integer_value(ss) < 0))
        why = "field signature_sequence: expected an integer, 0 or more";
    else if (!why && ss)
        *sigseq = (int64_t)json_integer_value(ss);
    json_decref(o);
    return why;
}

typedef struct {
    uint8_t routing[256];
    size_t routing_len;
    uint8_t ack[WIRE_TAG_LEN + 1 + WIRE_ID_MAX + 8];
    size_t ack_len;
} pending_ack_t;

/* The ban a report says its judgement started ("banned_for", "ban_source"), recorded as one of
 * the domain's (in the open batch). A report without one, or with one that does not read, is
 * stored all the same. Returns 0, or -1 on a store error. */
static int note_ban(collector_t *c, const char *edge, const char *json, size_t len, double now)
{
    if (!memmem(json, len, "\"ban_source\"", 12))
        return 0; /* most reports: not parsed again */
    json_error_t je;
    json_t *r = json_loadb(json, len, JSON_ALLOW_NUL, &je);
    const json_t *src = json_object_get(r, "ban_source"), *secs = json_object_get(r, "banned_for"),
                 *at = json_object_get(r, "reported_at");
    int rc = 0;
    /* the ban runs from when the edge reported it, by the edge's clock, as edges keep bans */
    double from = json_is_number(at) ? json_number_value(at) : now;
    if (json_is_string(src) && json_string_length(src) == strlen(json_string_value(src)) &&
        allowlist_entry_valid(json_string_value(src)) && json_is_number(secs) &&
        json_number_value(secs) > 0 && isfinite(json_number_value(secs)) && isfinite(from) &&
        from + json_number_value(secs) > now) { /* a report spooled past its ban's end: over */
        int changed = store_put_ban(c->store, json_string_value(src),
                                    from + json_number_value(secs), edge, now);
        if (changed < 0)
            rc = -1;
        c->bans_changed |= changed > 0;
    }
    json_decref(r);
    return rc;
}

/* Checks one received report and adds it to the open batch. Returns 0, or -1 on a store error
 * (the batch is then rolled back). Fills the ack to send after the commit (ack_len 0: none). */
static int take_report(collector_t *c, zmq_msg_t *id, zmq_msg_t *frame, double now,
                       pending_ack_t *ack)
{
    ack->ack_len = 0;
    memcpy(ack->routing, zmq_msg_data(id), zmq_msg_size(id));
    ack->routing_len = zmq_msg_size(id);
    wire_msg_t w;
    const char *user = zmq_msg_gets(frame, "User-Id");
    c->st.received++;
    if (wire_decode(zmq_msg_data(frame), zmq_msg_size(frame), WIRE_REPORT, &w) != 0) {
        c->st.rejected[REJ_FRAME]++;
        warning("a message that is not a report frame (%zu bytes) from edge %s: dropped",
                zmq_msg_size(frame), user ? user : "?");
        return 0; /* no (edge, seq) to acknowledge */
    }
    char edge[WIRE_ID_MAX + 1];
    snprintf(edge, sizeof edge, "%.*s", (int)w.id_len, w.id);
    int64_t sigseq = -1;
    ack->ack_len = wire_encode(ack->ack, WIRE_ACK, edge, w.seq, NULL, 0);
    int reason = -1;
    const char *why = NULL;
    if (!user || strcmp(user, edge)) {
        reason = REJ_IDENTITY;
        why = "the edge id is not the one its key belongs to";
    } else if (!admitted(c, edge)) { /* taken off [edges] since its connection was made */
        reason = REJ_IDENTITY;
        why = "the edge is no longer admitted";
    } else if (w.json_len > c->max_report) {
        reason = REJ_OVERSIZE;
        why = "report larger than max_report_bytes";
    } else {
        why = collector_check_report_ex(w.json, w.json_len, edge, w.seq, &reason, &sigseq);
    }
    if (why) {
        if (c->st.rejected[reason]++ % 1000 == 0)
            warning("refused report %" PRIu64 " of edge %s: %s (%" PRIu64 " refused for this "
                    "reason so far)",
                    w.seq, edge, why, c->st.rejected[reason]);
        return store_rejected(c->store, edge, w.seq, now, why, w.json, w.json_len);
    }
    /* a normal message the edge sampled joins the clean sample, not the anomalies */
    bool normal = memmem(w.json, w.json_len, "\"verdict\":\"normal\"", 18) != NULL;
    int fresh = normal ? store_clean(c->store, edge, w.seq, now, w.json, w.json_len, CLEAN_PER_EDGE)
                       : store_report(c->store, edge, w.seq, now, w.json, w.json_len);
    if (fresh < 0)
        return -1;
    if (fresh) {
        c->st.stored++;
        c->st.clean += normal;
        if (store_edge_state(c->store, edge, now, sigseq) != 0)
            return -1;
        if (!normal && note_ban(c, edge, w.json, w.json_len, now) != 0)
            return -1;
    } else
        c->st.duplicates++;
    return 0;
}

/* A batch rolled back: the counts go back to before it, as the store did (the edges send its
 * reports again, and they must count once when they are stored), but for the frames received.
 * Logged at most once a minute, with the batches that failed in between. */
static void undo_batch(collector_t *c, const collector_stats_t *before, bool bans_changed, int n,
                       double now)
{
    uint64_t received = c->st.received;
    c->st = *before;
    c->st.received = received;
    c->st.commit_failures++;
    c->bans_changed = bans_changed;
    const char *why = store_error(c->store);
    c->failing++;
    if (c->failure_said > 0 && now - c->failure_said < 60)
        return;
    error("cannot store %d reports: %s; they stay with their edges, which send them again "
          "(%" PRIu64 " failed batches since the last such message; said at most once a minute)",
          n, why, c->failing);
    c->failing = 0;
    c->failure_said = now;
    c->failure_open = true;
}

void collector_on_reports(collector_t *c, double now)
{
    static pending_ack_t acks[BATCH];
    int n = 0;
    collector_stats_t before = c->st;
    bool bans_before = c->bans_changed;
    bool failed = store_begin(c->store) != 0;
    for (; n < BATCH && !failed; n++) {
        zmq_msg_t f[2];
        int got = recv_all(c->router, f, 2, ZMQ_DONTWAIT);
        if (got < 0)
            break;
        if (got == 2)
            failed = take_report(c, &f[0], &f[1], now, &acks[n]) != 0;
        else
            acks[n].ack_len = 0, c->st.rejected[REJ_FRAME]++;
        for (int i = 0; i < got && i < 2; i++)
            zmq_msg_close(&f[i]);
    }
    if (failed || store_commit(c->store) != 0) {
        /* nothing acknowledged: the edges send it all again later */
        store_rollback(c->store);
        undo_batch(c, &before, bans_before, n, now);
        return;
    }
    if (c->failure_open && n > 0) { /* a batch with nothing in it writes nothing: no sign */
        info("storing reports again");
        c->failure_open = false;
    }
    for (int i = 0; i < n; i++) {
        if (!acks[i].ack_len)
            continue;
        zmq_send(c->router, acks[i].routing, acks[i].routing_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
        zmq_send(c->router, acks[i].ack, acks[i].ack_len, ZMQ_DONTWAIT);
    }
}
