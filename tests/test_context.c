/* Tests of detector/flood, detector/dialog and detector/context on synthetic traffic. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "context.h"

/* Hosts below 1000 are ours (10.0.0.N); from 1000 on, strangers spread over 203.0.x.y. */
static void host_address(int host, uint8_t addr[16])
{
    uint8_t ours[4] = {10, 0, 0, (uint8_t)host};
    uint8_t stranger[4] = {203, 0, (uint8_t)(host / 250), (uint8_t)(host % 250)};
    memcpy(addr, host >= 1000 ? stranger : ours, 4);
}

/* A message record: source 10.0.0.S (or 203.0.113.S for strangers) and the parsed fields. */
static void make(msg_t *m, sipinfo_t *in, double t, int src, int dst, const char *method,
                 int status, const char *cseq_method, const char *call_id, const char *from,
                 const char *to)
{
    memset(m, 0, sizeof *m);
    memset(in, 0, sizeof *in);
    m->ts_sec = (int64_t)t;
    m->ts_usec = (int32_t)((t - (double)(int64_t)t) * 1e6);
    m->src.family = m->dst.family = 4;
    host_address(src, m->src.addr);
    host_address(dst, m->dst.addr);
    m->src.port = m->dst.port = 5060;
    m->transport = TRANSPORT_UDP;
    in->parse_ok = true;
    in->is_request = method != NULL;
    snprintf(in->method, sizeof in->method, "%s", method ? method : "");
    in->status = status;
    snprintf(in->cseq_method, sizeof in->cseq_method, "%s", cseq_method);
    snprintf(in->call_id, sizeof in->call_id, "%s", call_id);
    snprintf(in->from_user, sizeof in->from_user, "%s", from);
    snprintf(in->ruri_user, sizeof in->ruri_user, "%s", method ? to : "");
    in->expires = -1;
}

/* Normal traffic: 20 users (10.0.0.10-29) register, then one calls another every few seconds
 * through the proxy 10.0.0.1: INVITE, 100, 180, 200, ACK, BYE, 200. */
typedef void (*sink_fn)(void *ctx, const msg_t *m, const sipinfo_t *in);

static void normal_traffic(double t0, double seconds, sink_fn sink, void *ctx, unsigned seed)
{
    msg_t m;
    sipinfo_t in;
    char cid[64], a[16], b[16];
    for (int u = 0; u < 20; u++) {
        snprintf(cid, sizeof cid, "reg-%u-%d", seed, u);
        snprintf(a, sizeof a, "u%d", u);
        double t = t0 + u * 0.5;
        make(&m, &in, t, 10 + u, 1, "REGISTER", 0, "REGISTER", cid, a, a);
        sink(ctx, &m, &in);
        make(&m, &in, t + 0.01, 1, 10 + u, NULL, 200, "REGISTER", cid, a, a);
        in.expires = 3600;
        sink(ctx, &m, &in);
    }
    srand(seed);
    int n = 0;
    for (double t = t0 + 12; t < t0 + seconds; t += 2 + (rand() % 300) / 100.0, n++) {
        int x = rand() % 20, y = (x + 1 + rand() % 19) % 20;
        snprintf(cid, sizeof cid, "call-%u-%d", seed, n);
        snprintf(a, sizeof a, "u%d", x);
        snprintf(b, sizeof b, "u%d", y);
        struct {
            double dt;
            int src, dst;
            const char *method;
            int status;
            const char *cseq;
        } flow[] = {
            {0, 10 + x, 1, "INVITE", 0, "INVITE"},     {0.002, 1, 10 + x, NULL, 100, "INVITE"},
            {0.003, 1, 10 + y, "INVITE", 0, "INVITE"}, {0.05, 10 + y, 1, NULL, 180, "INVITE"},
            {0.052, 1, 10 + x, NULL, 180, "INVITE"},   {1.0, 10 + y, 1, NULL, 200, "INVITE"},
            {1.002, 1, 10 + x, NULL, 200, "INVITE"},   {1.05, 10 + x, 1, "ACK", 0, "ACK"},
            {1.052, 1, 10 + y, "ACK", 0, "ACK"},       {1.5, 10 + x, 1, "BYE", 0, "BYE"},
            {1.502, 1, 10 + y, "BYE", 0, "BYE"},       {1.54, 10 + y, 1, NULL, 200, "BYE"},
            {1.542, 1, 10 + x, NULL, 200, "BYE"},
        };
        for (size_t k = 0; k < sizeof flow / sizeof flow[0]; k++) {
            make(&m, &in, t + flow[k].dt, flow[k].src, flow[k].dst, flow[k].method, flow[k].status,
                 flow[k].cseq, cid, a, b);
            sink(ctx, &m, &in);
        }
    }
}

static void feed_flood_trainer(void *ctx, const msg_t *m, const sipinfo_t *in)
{
    flood_trainer_add(ctx, m, in);
}

static void feed_dialog_trainer(void *ctx, const msg_t *m, const sipinfo_t *in)
{
    dialog_trainer_add(ctx, m, in);
}

typedef struct {
    flood_t *f;
    int flagged;
} flood_count_t;

static void feed_flood(void *ctx, const msg_t *m, const sipinfo_t *in)
{
    flood_count_t *c = ctx;
    flood_verdict_t v;
    flood_observe(c->f, m, in, &v);
    c->flagged += v.flood;
}

static flood_model_t *trained_flood(void)
{
    static flood_model_t fm;
    flood_opts_t o;
    flood_opts_default(&o);
    flood_trainer_t *t = flood_trainer_new(&o);
    normal_traffic(1000, 600, feed_flood_trainer, t, 1);
    assert_int_equal(flood_trainer_finish(t, &fm), 0);
    flood_trainer_destroy(&t);
    return &fm;
}

static void test_flood_quiet_on_normal_traffic_of_another_day(void **state)
{
    (void)state;
    flood_model_t *fm = trained_flood();
    assert_true(fm->n_known >= 1); /* the proxy is busy: its own thresholds */
    flood_count_t c = {flood_new(fm, NULL), 0};
    normal_traffic(90000, 600, feed_flood, &c, 2);
    assert_int_equal(c.flagged, 0);
    flood_destroy(&c.f);
}

static void test_flood_single_source_constant_rate_flagged_within_a_few_messages(void **state)
{
    (void)state;
    flood_model_t *fm = trained_flood();
    flood_count_t c = {flood_new(fm, NULL), 0};
    normal_traffic(90000, 60, feed_flood, &c, 3);
    msg_t m;
    sipinfo_t in;
    flood_verdict_t v;
    int first = -1;
    for (int i = 0; i < 100; i++) { /* 25 INVITEs/s from one stranger */
        char cid[32];
        snprintf(cid, sizeof cid, "fl-%d", i);
        make(&m, &in, 90030 + i / 25.0, 1005, 1, "INVITE", 0, "INVITE", cid, "100", "u3");
        flood_observe(c.f, &m, &in, &v);
        if (v.flood && first < 0) {
            first = i;
            assert_int_equal(v.cls, FLOOD_INVITE);
            assert_true(v.count > v.threshold);
        }
    }
    assert_true(first >= 1 && first <= 4);
    flood_destroy(&c.f);
}

/* A stranger taking a new IPv6 address in its /64 for every request is one source; strangers
 * in as many /64s each are not. */
static void test_flood_ipv6_strangers_count_by_their_64(void **state)
{
    (void)state;
    flood_model_t *fm = trained_flood();
    for (int spread = 0; spread < 2; spread++) {
        flood_t *f = flood_new(fm, NULL);
        flood_count_t c = {f, 0};
        normal_traffic(90000, 60, feed_flood, &c, 5);
        msg_t m;
        sipinfo_t in;
        flood_verdict_t v;
        int first_by_source = -1;
        for (int i = 0; i < 100; i++) { /* 25 INVITEs/s to many victims, From changing too */
            char cid[32], from[16], to[16];
            snprintf(cid, sizeof cid, "v6-%d-%d", spread, i);
            snprintf(from, sizeof from, "x%d", i);
            snprintf(to, sizeof to, "u%d", i % 20);
            make(&m, &in, 90030 + i / 25.0, 1005, 1, "INVITE", 0, "INVITE", cid, from, to);
            m.src.family = 6;
            static const uint8_t net[8] = {0x20, 0x01, 0x0d, 0xb8, 0x0b, 0xad, 0, 1};
            memcpy(m.src.addr, net, 8);
            if (spread) /* each in a /64 of its own */
                m.src.addr[6] = (uint8_t)(i >> 8), m.src.addr[7] = (uint8_t)(2 + i);
            for (int k = 8; k < 16; k++) /* a new interface id every time */
                m.src.addr[k] = (uint8_t)(i * 37 + k * 11);
            flood_observe(f, &m, &in, &v);
            if (v.flood && v.key == FLOOD_KEY_SOURCE && first_by_source < 0)
                first_by_source = i;
        }
        if (spread)
            assert_int_equal(first_by_source, -1);
        else
            assert_true(first_by_source >= 1 && first_by_source <= 4);
        flood_destroy(&f);
    }
    /* but 30 phones of one site's /64 registering within a second, after a power cut, are 30
     * sources */
    flood_t *f = flood_new(fm, NULL);
    msg_t m;
    sipinfo_t in;
    flood_verdict_t v;
    for (int i = 0; i < 30; i++) {
        char cid[32], user[16];
        snprintf(cid, sizeof cid, "boot-%d", i);
        snprintf(user, sizeof user, "site%d", i);
        make(&m, &in, 90030 + i / 30.0, 1005, 1, "REGISTER", 0, "REGISTER", cid, user, user);
        m.src.family = 6;
        static const uint8_t site[8] = {0x20, 0x01, 0x0d, 0xb8, 0x51, 0x7e, 0, 1};
        memcpy(m.src.addr, site, 8);
        m.src.addr[15] = (uint8_t)(10 + i);
        flood_observe(f, &m, &in, &v);
        assert_false(v.flood && v.key == FLOOD_KEY_SOURCE);
    }
    flood_destroy(&f);
}

static void test_flood_distributed_flagged_but_registered_users_still_call(void **state)
{
    (void)state;
    flood_model_t *fm = trained_flood();
    flood_t *f = flood_new(fm, NULL);
    flood_count_t c = {f, 0};
    normal_traffic(90000, 30, feed_flood, &c, 4);
    msg_t m;
    sipinfo_t in;
    flood_verdict_t v;
    int flagged = 0;
    for (int i = 0; i < 400; i++) { /* 200 INVITEs/s, each from another stranger */
        char cid[32];
        char to[16];
        snprintf(cid, sizeof cid, "dd-%d", i);
        char from[16];
        snprintf(to, sizeof to, "u%d", i % 20); /* victims spread too: only the total shows */
        snprintf(from, sizeof from, "x%d", i);
        make(&m, &in, 90040 + i / 200.0, 1000 + i, 1, "INVITE", 0, "INVITE", cid, from, to);
        flood_observe(f, &m, &in, &v);
        flagged += v.flood;
        if (i == 200) { /* a registered user calls in the middle of it */
            flood_verdict_t u;
            make(&m, &in, 90040 + i / 200.0, 12, 1, "INVITE", 0, "INVITE", "legit", "u2", "u5");
            flood_observe(f, &m, &in, &u);
            assert_false(u.flood);
            assert_true(u.vouched);
        }
    }
    assert_true(flagged >= 390);
    assert_int_equal(v.key, FLOOD_KEY_GLOBAL);
    flood_destroy(&f);
}

static void test_flood_half_open_sessions_flagged(void **state)
{
    (void)state;
    flood_model_t *fm = trained_flood();
    flood_t *f = flood_new(fm, NULL);
    msg_t m;
    sipinfo_t in;
    flood_verdict_t v;
    /* a stranger sends INVITEs 3 s apart (no rate alarm), never ACKs the 200s */
    int flagged_at = -1;
    for (int i = 0; i < 20; i++) {
        char cid[32];
        snprintf(cid, sizeof cid, "ho-%d", i);
        double t = 5000 + 3.0 * i;
        make(&m, &in, t, 1007, 1, "INVITE", 0, "INVITE", cid, "x", "u1");
        flood_observe(f, &m, &in, &v);
        if (v.flood && flagged_at < 0) {
            flagged_at = i;
            assert_int_equal(v.key, -1);
        }
        make(&m, &in, t + 0.5, 1, 1007, NULL, 200, "INVITE", cid, "x", "u1");
        flood_observe(f, &m, &in, &v);
    }
    assert_true(flagged_at > 0 && flagged_at < 20);
    flood_destroy(&f);
}

static void test_flood_model_json_round_trip_and_bad_models(void **state)
{
    (void)state;
    flood_model_t *fm = trained_flood(), back;
    json_t *j = flood_model_to_json(fm);
    char err[256];
    assert_int_equal(flood_model_from_json(j, &back, err, sizeof err), 0);
    assert_true(back.thr[FLOOD_KEY_GLOBAL][FLOOD_INVITE] ==
                fm->thr[FLOOD_KEY_GLOBAL][FLOOD_INVITE]);
    assert_int_equal(back.n_known, fm->n_known);
    assert_memory_equal(back.known[0].addr, fm->known[0].addr, 16);
    json_object_set_new(json_object_get(json_object_get(j, "thresholds"), "source"), "INVITE",
                        json_string("many"));
    assert_int_equal(flood_model_from_json(j, &back, err, sizeof err), -1);
    assert_non_null(strstr(err, "flood.thresholds.source.INVITE"));
    json_decref(j);
    j = json_pack("{s:s}", "tau", "x");
    assert_int_equal(flood_model_from_json(j, &back, err, sizeof err), -1);
    assert_non_null(strstr(err, "flood.tau"));
    json_decref(j);
}

typedef struct {
    dialog_t *d;
    int flagged;
} dialog_count_t;

static void feed_dialog(void *ctx, const msg_t *m, const sipinfo_t *in)
{
    dialog_count_t *c = ctx;
    dialog_verdict_t v;
    dialog_observe(c->d, m, in, &v);
    c->flagged += v.anomaly;
}

static dialog_model_t *trained_dialog_of(size_t capacity);

static dialog_model_t *trained_dialog(void)
{
    dialog_opts_t o;
    dialog_opts_default(&o);
    return trained_dialog_of(o.capacity);
}

static void
test_dialog_known_flows_pass_and_a_new_one_is_flagged_at_its_first_odd_message(void **state)
{
    (void)state;
    dialog_model_t *dm = trained_dialog();
    dialog_count_t c = {dialog_new(dm), 0};
    normal_traffic(50000, 600, feed_dialog, &c, 7);
    assert_int_equal(c.flagged, 0);
    /* a cancelled call: INVITE, 100, 180, then CANCEL, never seen in training */
    msg_t m;
    sipinfo_t in;
    dialog_verdict_t v;
    const struct {
        int src, dst;
        const char *method;
        int status;
        const char *cseq;
        bool odd;
    } flow[] = {
        {20, 1, "INVITE", 0, "INVITE", false}, {1, 20, NULL, 100, "INVITE", false},
        {1, 20, NULL, 180, "INVITE", false},   {20, 1, "CANCEL", 0, "CANCEL", true},
        {1, 20, NULL, 200, "CANCEL", false}, /* the leg is flagged once */
    };
    for (size_t k = 0; k < sizeof flow / sizeof flow[0]; k++) {
        make(&m, &in, 60000 + k * 0.1, flow[k].src, flow[k].dst, flow[k].method, flow[k].status,
             flow[k].cseq, "cancelled-1", "u10", "u11");
        dialog_observe(c.d, &m, &in, &v);
        assert_int_equal(v.anomaly, flow[k].odd);
        if (flow[k].odd) {
            assert_string_equal(v.token, "a:CANCEL");
            assert_string_equal(v.context, "b:100/INVITE|b:180/INVITE");
            assert_int_equal(v.count, 0);
        }
    }
    /* a BYE out of nowhere (a spoofed teardown) */
    make(&m, &in, 60010, 1009, 1, "BYE", 0, "BYE", "call-7-3", "u1", "u2");
    dialog_observe(c.d, &m, &in, &v);
    assert_true(v.anomaly);
    assert_true(v.first_of_leg);
    dialog_destroy(&c.d);
    dialog_model_destroy(&dm);
}

static void test_dialog_state_is_bounded(void **state)
{
    (void)state;
    dialog_model_t *dm = trained_dialog();
    dialog_opts_t o = *dialog_model_opts(dm);
    assert_int_equal(o.capacity, 65536);
    dialog_t *d = dialog_new(dm);
    msg_t m;
    sipinfo_t in;
    dialog_verdict_t v;
    for (int i = 0; i < 200000; i++) { /* more legs than the table holds, within 20 s */
        char cid[32];
        snprintf(cid, sizeof cid, "many-%d", i);
        make(&m, &in, 70000 + i * 0.0001, 10 + i % 20, 1, "OPTIONS", 0, "OPTIONS", cid, "u", "u");
        dialog_observe(d, &m, &in, &v);
    }
    dialog_stats_t st;
    dialog_stats(d, &st);
    assert_int_equal(st.capacity, 65536);
    assert_true(st.legs <= st.capacity && st.legs > 60000);
    /* none answered, none expired nor unanswered for 32 s (a transaction's timeout): every new
     * leg past the table's room gave up an open one */
    assert_int_equal(st.evicted, 200000 - st.legs);
    assert_int_equal(st.finished, 0);
    dialog_destroy(&d);
    dialog_model_destroy(&dm);
}

static dialog_model_t *trained_dialog_of(size_t capacity)
{
    dialog_opts_t o;
    dialog_opts_default(&o);
    o.capacity = capacity;
    dialog_trainer_t *t = dialog_trainer_new(&o);
    normal_traffic(1000, 600, feed_dialog_trainer, t, 1);
    dialog_model_t *m = dialog_trainer_finish(t);
    dialog_trainer_destroy(&t);
    assert_non_null(m);
    return m;
}

typedef struct {
    double dt;
    int src, dst;
    const char *method;
    int status;
    const char *cseq;
} step_t;

/* Feeds steps of one Call-ID from t on; returns how many were flagged. */
static int feed_steps(dialog_t *d, double t, const step_t *s, size_t n, const char *cid,
                      dialog_verdict_t *last)
{
    msg_t m;
    sipinfo_t in;
    int flagged = 0;
    for (size_t k = 0; k < n; k++) {
        make(&m, &in, t + s[k].dt, s[k].src, s[k].dst, s[k].method, s[k].status, s[k].cseq, cid,
             "u1", "u2");
        dialog_observe(d, &m, &in, last);
        flagged += last->anomaly;
    }
    return flagged;
}

/* Pings from the proxy, each on a Call-ID of its own, one every dt seconds: answered (finished
 * legs) or not (open legs, until 32 s unanswered, as a scan that gets no answer leaves them). */
static void pings_to(sink_fn sink, void *ctx, double t0, int n, double dt, bool answered)
{
    msg_t m;
    sipinfo_t in;
    for (int i = 0; i < n; i++) {
        char cid[32];
        snprintf(cid, sizeof cid, "ping-%d", i);
        double t = t0 + i * dt;
        make(&m, &in, t, 1, 10 + i % 200, "OPTIONS", 0, "OPTIONS", cid, "proxy", "u");
        sink(ctx, &m, &in);
        if (answered) {
            make(&m, &in, t + 0.001, 10 + i % 200, 1, NULL, 200, "OPTIONS", cid, "proxy", "u");
            sink(ctx, &m, &in);
        }
    }
}

static void observe_dialog(void *ctx, const msg_t *m, const sipinfo_t *in)
{
    dialog_verdict_t v;
    dialog_observe(ctx, m, in, &v);
}

static void ping_churn(dialog_t *d, double t0, int n, double dt, bool answered)
{
    pings_to(observe_dialog, d, t0, n, dt, answered);
}

/* The steps that set up a call from caller to callee through the proxy (host 1) and answer it:
 * two legs, caller-proxy and proxy-callee. */
enum { CALL_SETUP_STEPS = 9 };
static void call_setup(int caller, int callee, step_t s[CALL_SETUP_STEPS])
{
    const step_t setup[CALL_SETUP_STEPS] = {
        {0, caller, 1, "INVITE", 0, "INVITE"},     {0.002, 1, caller, NULL, 100, "INVITE"},
        {0.003, 1, callee, "INVITE", 0, "INVITE"}, {0.05, callee, 1, NULL, 180, "INVITE"},
        {0.052, 1, caller, NULL, 180, "INVITE"},   {1.0, callee, 1, NULL, 200, "INVITE"},
        {1.002, 1, caller, NULL, 200, "INVITE"},   {1.05, caller, 1, "ACK", 0, "ACK"},
        {1.052, 1, callee, "ACK", 0, "ACK"},
    };
    memcpy(s, setup, sizeof setup);
}

static void test_dialog_keeps_calls_on_hold_through_a_churn_of_pings(void **state)
{
    (void)state;
    step_t setup[CALL_SETUP_STEPS];
    call_setup(10, 11, setup);
    static const step_t hangup[] = {
        {0, 10, 1, "BYE", 0, "BYE"},
        {0.002, 1, 11, "BYE", 0, "BYE"},
        {0.04, 11, 1, NULL, 200, "BYE"},
        {0.042, 1, 10, NULL, 200, "BYE"},
    };
    size_t nh = sizeof hangup / sizeof hangup[0];
    /* 20 times the table's room in pings while the call is on hold, well inside the 7200 s
     * timeout: answered, 1,000 a second; unanswered, as fast (a flood, whose open legs leave no
     * room: the call is given up, and taken up again at its BYE, or, hung up four hours on,
     * past the timeout, not); unanswered, 10 a second (a scan: 320 legs within a
     * transaction's 32 s timeout, so the timed-out ones make the room) */
    enum { KEPT, TAKEN_UP, FORGOTTEN };
    static const struct {
        double dt;
        bool answered;
        int call;
        double later; /* seconds between the pings and the hangup */
    } churn[] = {{0.001, true, KEPT, 1},
                 {0.001, false, TAKEN_UP, 1},
                 {0.001, false, FORGOTTEN, 4 * 3600},
                 {0.1, false, KEPT, 1}};
    dialog_model_t *dm = trained_dialog_of(1024);
    for (size_t k = 0; k < sizeof churn / sizeof churn[0]; k++) {
        dialog_t *d = dialog_new(dm);
        dialog_verdict_t v;
        dialog_stats_t st;
        assert_int_equal(feed_steps(d, 5000, setup, CALL_SETUP_STEPS, "held-call", &v), 0);
        ping_churn(d, 5010, 20000, churn[k].dt, churn[k].answered);
        double end = 5010 + 20000 * churn[k].dt + churn[k].later;
        int flagged = feed_steps(d, end, hangup, nh, "held-call", &v);
        dialog_stats(d, &st);
        assert_int_equal(st.capacity, 1024);
        if (churn[k].call == KEPT) {
            assert_int_equal(flagged, 0); /* the call's two legs were kept */
            assert_int_equal(st.evicted, 0);
        } else {
            /* the giving up of open legs is what evicted counts */
            assert_true(st.evicted >= 20000 - 1024);
        }
        if (churn[k].call == TAKEN_UP) {
            /* the pings, never answered, could not take the memory of a call both sides had
             * confirmed: both legs come back at their BYE, and nothing is flagged */
            assert_int_equal(flagged, 0);
            assert_int_equal(st.resumed, 2);
        }
        if (churn[k].call == FORGOTTEN) {
            /* past the timeout the memory is stale: the BYE opens a new leg, a transition
             * training never saw */
            assert_true(flagged >= 1);
            assert_int_equal(st.resumed, 0);
        }
        if (churn[k].answered)
            assert_int_equal(st.finished, st.legs); /* the pings answered, the call hung up */
        dialog_destroy(&d);
    }
    dialog_model_destroy(&dm);
}

/* Open legs given up for room are remembered: a call's next message takes its leg up again,
 * with who spoke first and what the leg went through, instead of opening a new leg whose BYE
 * training never saw. 300 calls through the proxy, then a burst of unanswered pings (open legs)
 * until a few hundred of the oldest open legs, mostly the calls', are given up; then, once the
 * pings have timed out (32 s unanswered), every caller hangs up. */
static void test_dialog_takes_up_given_up_calls_again(void **state)
{
    (void)state;
    enum { CALLS = 300 };
    dialog_model_t *dm = trained_dialog_of(1024);
    dialog_t *d = dialog_new(dm);
    dialog_verdict_t v;
    dialog_stats_t st;
    for (int k = 0; k < CALLS; k++) {
        char cid[32];
        snprintf(cid, sizeof cid, "held-%d", k);
        step_t setup[CALL_SETUP_STEPS];
        call_setup(10 + k % 20, 30 + k % 20, setup);
        assert_int_equal(feed_steps(d, 5000 + k * 0.01, setup, CALL_SETUP_STEPS, cid, &v), 0);
    }
    ping_churn(d, 5010, 1024 - 2 * CALLS + 300, 0.001, false);
    dialog_stats(d, &st);
    assert_true(st.evicted >= 300);
    uint64_t evicted = st.evicted;
    int resumed = 0, forgotten = 0, flagged = 0, flagged_kept = 0, forgotten_b = 0;
    for (int k = 0; k < CALLS; k++) {
        char cid[32];
        snprintf(cid, sizeof cid, "held-%d", k);
        int caller = 10 + k % 20, callee = 30 + k % 20;
        /* even calls: the caller hangs up, so on each leg the BYE comes from who spoke first
         * there (the caller; the proxy on the callee's leg), as in training; odd calls: the
         * callee hangs up, so each BYE comes from who spoke second, which only a leg that knows
         * its direction can tell */
        bool callee_hangs_up = k % 2;
        const step_t hangup[] = {
            {0, caller, 1, "BYE", 0, "BYE"},
            {0.002, 1, callee, "BYE", 0, "BYE"},
            {0, callee, 1, "BYE", 0, "BYE"},
            {0.002, 1, caller, "BYE", 0, "BYE"},
        };
        const char *token = callee_hangs_up ? "b:BYE" : "a:BYE";
        for (int j = 0; j < 2; j++) {
            int f = feed_steps(d, 5050 + k * 0.01, &hangup[2 * callee_hangs_up + j], 1, cid, &v);
            flagged += f;
            if (v.resumed) {
                resumed++;
                assert_string_equal(v.token, token); /* who spoke first came back */
                assert_false(v.anomaly);             /* its context is unknown: not judged */
                assert_false(v.first_of_leg);
            } else if (v.first_of_leg) {
                forgotten++; /* its memory taken by a later given-up leg */
                forgotten_b += !callee_hangs_up && j == 1;
                assert_string_equal(v.token, "a:BYE");
                assert_true(v.anomaly);
            } else { /* kept all along: a callee's BYE is a transition training never saw */
                assert_string_equal(v.token, token);
                assert_int_equal(v.anomaly, callee_hangs_up);
                flagged_kept += f;
            }
        }
    }
    dialog_stats(d, &st);
    assert_int_equal(st.evicted, evicted); /* the timed-out pings made the room */
    assert_int_equal(st.resumed, (uint64_t)resumed);
    assert_true(resumed + forgotten <= (int)evicted);
    assert_true(resumed >= 200);
    assert_true(forgotten * 4 <= resumed);
    assert_int_equal(flagged, forgotten + flagged_kept);
    /* once the context is known again (order - 1 = 2 messages after taking up), the leg is
     * judged: on the callee's leg of an even call, an INFO from the callee after its answer to
     * the BYE was never seen in training; a forgotten leg was flagged at its BYE already */
    int judged = 0;
    for (int k = 0; k < CALLS; k += 2) {
        char cid[32];
        snprintf(cid, sizeof cid, "held-%d", k);
        int callee = 30 + k % 20;
        const step_t after[] = {
            {0, callee, 1, NULL, 200, "BYE"},
            {0.01, callee, 1, "INFO", 0, "INFO"},
        };
        judged += feed_steps(d, 5060 + k * 0.01, after, 2, cid, &v);
        assert_string_equal(v.token, "b:INFO");
    }
    assert_int_equal(judged, CALLS / 2 - forgotten_b);
    dialog_destroy(&d);
    dialog_model_destroy(&dm);
}

/* Steps fed to a trainer from t on, on one Call-ID. */
static void train_steps(dialog_trainer_t *t, double t0, const step_t *s, size_t n, const char *cid)
{
    msg_t m;
    sipinfo_t in;
    for (size_t k = 0; k < n; k++) {
        make(&m, &in, t0 + s[k].dt, s[k].src, s[k].dst, s[k].method, s[k].status, s[k].cseq, cid,
             "u1", "u2");
        dialog_trainer_add(t, &m, &in);
    }
}

/* Training takes given-up legs up again too, and learns no transition whose context reaches
 * back before that: calls cut in two by a table too small for the training traffic no longer
 * teach that a call may begin with its BYE, except those whose memory was lost too. */
static void test_dialog_training_learns_nothing_from_before_a_leg_was_taken_up(void **state)
{
    (void)state;
    enum { CALLS = 300 };
    dialog_opts_t o;
    dialog_opts_default(&o);
    o.capacity = 1024;
    dialog_trainer_t *t = dialog_trainer_new(&o);
    assert_non_null(t);
    for (int k = 0; k < CALLS; k++) {
        char cid[32];
        snprintf(cid, sizeof cid, "held-%d", k);
        step_t setup[CALL_SETUP_STEPS];
        call_setup(10 + k % 20, 30 + k % 20, setup);
        train_steps(t, 5000 + k * 0.01, setup, CALL_SETUP_STEPS, cid);
    }
    pings_to(feed_dialog_trainer, t, 5010, 1024 - 2 * CALLS + 300, 0.001, false);
    for (int k = 0; k < CALLS; k++) {
        char cid[32];
        snprintf(cid, sizeof cid, "held-%d", k);
        int caller = 10 + k % 20, callee = 30 + k % 20;
        const step_t hangup[] = {
            {0, caller, 1, "BYE", 0, "BYE"},
            {0.002, 1, callee, "BYE", 0, "BYE"},
            {0.04, callee, 1, NULL, 200, "BYE"},
            {0.042, 1, caller, NULL, 200, "BYE"},
        };
        train_steps(t, 5050 + k * 0.01, hangup, 4, cid);
    }
    dialog_stats_t st;
    dialog_trainer_stats(t, &st);
    dialog_model_t *m = dialog_trainer_finish(t);
    dialog_trainer_destroy(&t);
    assert_non_null(m);
    json_t *j = dialog_model_to_json(m), *tr = json_object_get(j, "transitions"), *row;
    size_t i;
    json_int_t bye_first = 0, bye_answered = 0;
    json_array_foreach(tr, i, row)
    {
        const char *ctx = json_string_value(json_array_get(row, 0)),
                   *tok = json_string_value(json_array_get(row, 1));
        json_int_t n = json_integer_value(json_array_get(row, 2));
        if (!strcmp(ctx, "^|^") && !strcmp(tok, "a:BYE"))
            bye_first = n;
        if (!strcmp(ctx, "b:200/INVITE|a:ACK") && !strcmp(tok, "a:BYE"))
            bye_answered = n;
    }
    assert_true(st.evicted >= 300);
    assert_true(st.resumed >= 200);
    /* a leg taken up again teaches nothing at its BYE and its answer; a leg forgotten teaches
     * a BYE first; a leg kept all along teaches the BYE after the ACK */
    assert_true(bye_first * 4 <= (json_int_t)st.resumed);
    assert_int_equal(bye_first + bye_answered + (json_int_t)st.resumed, 2 * CALLS);
    json_decref(j);
    dialog_model_destroy(&m);
}

static void test_dialog_tells_finished_legs_from_open_ones(void **state)
{
    (void)state;
    dialog_model_t *dm = trained_dialog();
    dialog_t *d = dialog_new(dm);
    dialog_verdict_t v;
    dialog_stats_t st;
    /* each exchange, and the finished legs after it */
    static const step_t ping[] = {{0, 1, 10, "OPTIONS", 0, "OPTIONS"},
                                  {0.01, 10, 1, NULL, 200, "OPTIONS"}};
    static const step_t ping_again[] = {{0, 1, 10, "OPTIONS", 0, "OPTIONS"}};
    static const step_t registered[] = {{0, 11, 1, "REGISTER", 0, "REGISTER"},
                                        {0.01, 1, 11, NULL, 401, "REGISTER"},
                                        {0.02, 11, 1, "REGISTER", 0, "REGISTER"},
                                        {0.03, 1, 11, NULL, 200, "REGISTER"}};
    static const step_t refused[] = {{0, 10, 1, "INVITE", 0, "INVITE"},
                                     {0.01, 1, 10, NULL, 486, "INVITE"}};
    static const step_t ack[] = {{0, 10, 1, "ACK", 0, "ACK"}};
    static const step_t call[] = {
        {0, 12, 1, "INVITE", 0, "INVITE"},  {0.01, 1, 12, NULL, 200, "INVITE"},
        {0.02, 12, 1, "ACK", 0, "ACK"},     {1, 12, 1, "INFO", 0, "INFO"},
        {1.01, 1, 12, NULL, 200, "INFO"},   {2, 12, 1, "INVITE", 0, "INVITE"},
        {2.01, 1, 12, NULL, 491, "INVITE"}, {2.02, 12, 1, "ACK", 0, "ACK"}};
    static const step_t bye[] = {{0, 12, 1, "BYE", 0, "BYE"}, {0.01, 1, 12, NULL, 200, "BYE"}};
    static const step_t challenged[] = {
        {0, 13, 1, "INVITE", 0, "INVITE"},  {0.01, 1, 13, NULL, 407, "INVITE"},
        {0.02, 13, 1, "ACK", 0, "ACK"},     {0.03, 13, 1, "INVITE", 0, "INVITE"},
        {0.04, 1, 13, NULL, 200, "INVITE"}, {0.05, 13, 1, "ACK", 0, "ACK"}};
    struct {
        const step_t *s;
        size_t n;
        const char *cid;
        size_t finished;
    } seq[] = {
        {ping, 2, "ping", 1},
        {registered, 4, "reg", 2}, /* given up after the pings, before calls */
        {refused, 2, "busy", 3},
        {ack, 1, "busy", 3},        /* its ACK does not open it again */
        {call, 8, "talk", 3},       /* an INFO answered and a re-INVITE refused end no call */
        {challenged, 6, "auth", 3}, /* the INVITE sent again with credentials opens it */
        {bye, 2, "talk", 4},
        {ping_again, 1, "ping", 3}, /* a new request opens a leg again */
    };
    double t = 9000;
    for (size_t k = 0; k < sizeof seq / sizeof seq[0]; k++, t += 10) {
        feed_steps(d, t, seq[k].s, seq[k].n, seq[k].cid, &v);
        dialog_stats(d, &st);
        assert_int_equal(st.finished, seq[k].finished);
    }
    assert_int_equal(st.legs, 5);
    dialog_destroy(&d);
    dialog_model_destroy(&dm);
}

/* A sink that passes requests on and drops responses: what a proxy that mirrors only the
 * requests it receives sends. */
typedef struct {
    sink_fn sink;
    void *ctx;
} requests_only_t;

static void requests_only(void *ctx, const msg_t *m, const sipinfo_t *in)
{
    requests_only_t *r = ctx;
    if (in->is_request)
        r->sink(r->ctx, m, in);
}

typedef struct {
    dialog_t *d;
    int flagged, flagged_aside, aside;
    double first_aside;
} aside_count_t;

static void observe_aside(void *ctx, const msg_t *m, const sipinfo_t *in)
{
    aside_count_t *c = ctx;
    dialog_verdict_t v;
    dialog_observe(c->d, m, in, &v);
    c->flagged += v.anomaly;
    if (v.aside && !c->aside++)
        c->first_aside = (double)m->ts_sec + m->ts_usec * 1e-6;
    c->flagged_aside += c->aside && v.anomaly;
}

/* A model trained with responses, fed the requests alone, flags calls until it sees that no
 * response comes: then it stands aside, flags nothing more, and judges again at the next
 * response. */
static void test_dialog_stands_aside_while_the_feed_carries_no_responses(void **state)
{
    (void)state;
    dialog_model_t *dm = trained_dialog();
    assert_false(dialog_model_requests_only(dm));
    aside_count_t c = {.d = dialog_new(dm)};
    requests_only_t r = {observe_aside, &c};
    normal_traffic(50000, 600, requests_only, &r, 7);
    dialog_stats_t st;
    dialog_stats(c.d, &st);
    assert_true(st.no_responses);
    assert_int_equal(st.quiet_spells, 1);
    assert_int_equal(st.unjudged, (uint64_t)c.aside);
    /* the registrations from 50,000 s on go unanswered, the calls from 50,012 s: it stands aside
     * a transaction's timeout after the first, once a few calls have shown their ACKs */
    assert_true(c.first_aside >= 50000 + DIALOG_QUIET_SECONDS);
    assert_true(c.first_aside < 50000 + DIALOG_QUIET_SECONDS + 15);
    assert_true(c.flagged > 0); /* before: every call's ACK after an INVITE nothing answered */
    assert_int_equal(c.flagged_aside, 0);
    assert_true(c.aside > 900); /* about 170 calls of six requests in 600 s */
    /* the replies come back: judged again from the first of them */
    int aside_before = c.aside;
    c.flagged = 0;
    normal_traffic(51000, 300, observe_aside, &c, 8);
    dialog_stats(c.d, &st);
    assert_false(st.no_responses);
    assert_int_equal(c.aside, aside_before + 1); /* the first REGISTER, before its answer */
    assert_int_equal(c.flagged, 0);
    dialog_verdict_t v;
    step_t bye = {0, 1009, 1, "BYE", 0, "BYE"}; /* a teardown out of nowhere */
    assert_int_equal(feed_steps(c.d, 51400, &bye, 1, "spoofed", &v), 1);
    dialog_destroy(&c.d);
    dialog_model_destroy(&dm);
}

/* What must not make it stand aside: a lull, a flood the proxy drops without an answer (even of
 * INVITEs and their ACKs, from one source), while the feed carries responses otherwise. */
static void test_dialog_judges_through_lulls_and_unanswered_floods(void **state)
{
    (void)state;
    dialog_model_t *dm = trained_dialog();
    dialog_t *d = dialog_new(dm);
    dialog_count_t c = {d, 0};
    normal_traffic(50000, 300, feed_dialog, &c, 7);
    msg_t m;
    sipinfo_t in;
    dialog_verdict_t v;
    double t = 50400;
    for (int i = 0; i < 20000; i++, t += 0.005) { /* 100 s: INVITEs from 50 sources */
        char cid[32];
        snprintf(cid, sizeof cid, "flood-%d", i);
        make(&m, &in, t, 1000 + i % 50, 1, "INVITE", 0, "INVITE", cid, "x", "y");
        dialog_observe(d, &m, &in, &v);
        assert_false(v.aside);
    }
    for (int i = 0; i < 2000; i++, t += 0.05) { /* 100 s more: INVITE and ACK from one source */
        char cid[32];
        snprintf(cid, sizeof cid, "pairs-%d", i);
        make(&m, &in, t, 1000, 1, "INVITE", 0, "INVITE", cid, "x", "y");
        dialog_observe(d, &m, &in, &v);
        make(&m, &in, t + 0.01, 1000, 1, "ACK", 0, "ACK", cid, "x", "y");
        dialog_observe(d, &m, &in, &v);
        assert_false(v.aside);
    }
    step_t bye = {0, 1009, 1, "BYE", 0, "BYE"};
    assert_int_equal(feed_steps(d, t + 3600, &bye, 1, "spoofed-after-a-lull", &v), 1);
    dialog_stats_t st;
    dialog_stats(d, &st);
    assert_int_equal(st.quiet_spells, 0);
    assert_int_equal(st.unjudged, 0);
    dialog_destroy(&d);
    dialog_model_destroy(&dm);
}

/* Registrations sent again with credentials (a higher CSeq) after a challenge the feed never
 * showed are requests that only follow a response too; sent again after a transaction's
 * timeout they are not (the first one may simply have gone unanswered). */
static void test_dialog_sees_challenges_the_feed_never_showed(void **state)
{
    (void)state;
    dialog_model_t *dm = trained_dialog();
    enum { UNSEEN, ANSWERED, AFTER_TIMEOUT };
    for (int k = UNSEEN; k <= AFTER_TIMEOUT; k++) {
        dialog_t *d = dialog_new(dm);
        msg_t m;
        sipinfo_t in;
        dialog_verdict_t v;
        for (int u = 0; u < 40; u++) {
            char cid[32];
            snprintf(cid, sizeof cid, "reg-%d", u);
            double t = 100 + u * 0.5, again = k == AFTER_TIMEOUT ? 40 : 0.02;
            make(&m, &in, t, 10 + u, 1, "REGISTER", 0, "REGISTER", cid, "u", "u");
            in.cseq = 1;
            dialog_observe(d, &m, &in, &v);
            if (k == ANSWERED) {
                make(&m, &in, t + 0.01, 1, 10 + u, NULL, 401, "REGISTER", cid, "u", "u");
                in.cseq = 1;
                dialog_observe(d, &m, &in, &v);
            }
            make(&m, &in, t + again, 10 + u, 1, "REGISTER", 0, "REGISTER", cid, "u", "u");
            in.cseq = 2;
            dialog_observe(d, &m, &in, &v);
        }
        dialog_stats_t st;
        dialog_stats(d, &st);
        assert_int_equal(st.quiet_spells, k == UNSEEN);
        dialog_destroy(&d);
    }
    dialog_model_destroy(&dm);
}

/* A model trained on a feed of requests alone learns no response: it judges requests alone,
 * passing over responses, so the same traffic with its replies passes as well as without. */
static void test_dialog_model_of_requests_alone_passes_over_responses(void **state)
{
    (void)state;
    dialog_opts_t o;
    dialog_opts_default(&o);
    dialog_trainer_t *t = dialog_trainer_new(&o);
    requests_only_t tr = {feed_dialog_trainer, t};
    normal_traffic(1000, 600, requests_only, &tr, 1);
    dialog_model_t *dm = dialog_trainer_finish(t);
    dialog_trainer_destroy(&t);
    assert_true(dialog_model_requests_only(dm));
    json_t *j = dialog_model_to_json(dm);
    char err[256];
    dialog_model_t *back = dialog_model_from_json(j, err, sizeof err);
    json_decref(j);
    assert_non_null(back);
    assert_true(dialog_model_requests_only(back));
    for (int with_replies = 0; with_replies < 2; with_replies++) {
        dialog_count_t c = {dialog_new(back), 0};
        requests_only_t r = {feed_dialog, &c};
        if (with_replies)
            normal_traffic(50000, 600, feed_dialog, &c, 7);
        else
            normal_traffic(50000, 600, requests_only, &r, 7);
        dialog_stats_t st;
        dialog_stats(c.d, &st);
        assert_int_equal(c.flagged, 0);
        assert_true(st.requests_only);
        assert_int_equal(st.quiet_spells, 0);
        assert_true(with_replies ? st.passed_over > 1000 : st.passed_over == 0);
        dialog_verdict_t v;
        step_t bye = {0, 1009, 1, "BYE", 0, "BYE"}; /* still a teardown out of nowhere */
        assert_int_equal(feed_steps(c.d, 51000, &bye, 1, "spoofed", &v), 1);
        dialog_destroy(&c.d);
    }
    dialog_model_destroy(&back);
    dialog_model_destroy(&dm);
}

static void test_context_model_file_round_trip_and_refusals(void **state)
{
    (void)state;
    char path[64], err[512];
    snprintf(path, sizeof path, "/tmp/sipguard-ctx-%d.json", (int)getpid());
    context_model_t m = {.has_flood = true, .flood = *trained_flood(), .dialog = trained_dialog()};
    assert_int_equal(context_model_save(&m, path, err, sizeof err), 0);
    context_model_t *back = context_model_load(path, err, sizeof err);
    assert_non_null(back);
    assert_true(back->has_flood);
    assert_int_equal(dialog_model_transitions(back->dialog), dialog_model_transitions(m.dialog));
    context_t *c = context_new(back);
    assert_non_null(c);
    context_destroy(&c);
    context_model_destroy(&back);
    dialog_model_destroy(&m.dialog);
    FILE *f = fopen(path, "w");
    fputs("{\"format\":\"sipguard-context\",\"version\":1,\"dialog\":{\"order\":9}}", f);
    fclose(f);
    assert_null(context_model_load(path, err, sizeof err));
    assert_non_null(strstr(err, "dialog.order"));
    f = fopen(path, "w");
    fputs("{\"format\":\"sipguard-context\",", f);
    fclose(f);
    assert_null(context_model_load(path, err, sizeof err));
    assert_non_null(strstr(err, path));
    f = fopen(path, "w");
    fputs("{\"format\":\"other\"}", f);
    fclose(f);
    assert_null(context_model_load(path, err, sizeof err));
    assert_non_null(strstr(err, "not a context model"));
    unlink(path);
}

/* A registration of user uN from host H: REGISTER, 401, REGISTER with a digest, 200. */
static void register_user(binding_t *b, double t, int host, const char *user, int expires,
                          const char *via, bool challenge)
{
    msg_t m;
    sipinfo_t in;
    binding_verdict_t v;
    char cid[64];
    snprintf(cid, sizeof cid, "reg-%s-%.0f", user, t);
    make(&m, &in, t, host, 1, "REGISTER", 0, "REGISTER", cid, user, user);
    snprintf(in.via_host, sizeof in.via_host, "%s", via);
    snprintf(in.contact_host, sizeof in.contact_host, "%s", via);
    binding_observe(b, &m, &in, &v);
    if (challenge) {
        make(&m, &in, t + 0.01, 1, host, NULL, 401, "REGISTER", cid, user, user);
        binding_observe(b, &m, &in, &v);
    }
    make(&m, &in, t + 0.02, host, 1, "REGISTER", 0, "REGISTER", cid, user, user);
    snprintf(in.via_host, sizeof in.via_host, "%s", via);
    snprintf(in.contact_host, sizeof in.contact_host, "%s", via);
    snprintf(in.auth_nonce, sizeof in.auth_nonce, "nonce-%s-%.0f", user, t);
    snprintf(in.auth_response, sizeof in.auth_response, "resp-%s", user);
    binding_observe(b, &m, &in, &v);
    make(&m, &in, t + 0.03, 1, host, NULL, 200, "REGISTER", cid, user, user);
    snprintf(in.to_user, sizeof in.to_user, "%s", user);
    in.expires = expires;
    binding_observe(b, &m, &in, &v);
}

/* A request from host with From user, Via/Contact host via. */
static binding_verdict_t request_from(binding_t *b, double t, int host, const char *user,
                                      const char *via, const char *call)
{
    msg_t m;
    sipinfo_t in;
    binding_verdict_t v;
    make(&m, &in, t, host, 1, "INVITE", 0, "INVITE", call, user, "u9");
    snprintf(in.via_host, sizeof in.via_host, "%s", via);
    snprintf(in.contact_host, sizeof in.contact_host, "%s", via);
    binding_observe(b, &m, &in, &v);
    return v;
}

static void test_binding_classifies_mismatches(void **state)
{
    (void)state;
    binding_model_t bm;
    memset(&bm, 0, sizeof bm);
    binding_opts_default(&bm.o);
    bm.o.expected_users = 1000;
    host_address(1, bm.infra[0].addr); /* the proxy */
    bm.infra[0].family = 4;
    bm.n_infra = 1;
    binding_t *b = binding_new(&bm);
    register_user(b, 100, 10, "alice", 3600, "10.0.0.10", true);
    register_user(b, 101, 11, "bob", 3600, "10.0.0.11", true);
    register_user(b, 102, 12, "carol", 3600, "10.0.0.12", false); /* no challenge: not bound */
    assert_int_equal(binding_count(b), 2);
    binding_verdict_t v = request_from(b, 200, 10, "alice", "10.0.0.10", "c1");
    assert_true(v.judged);
    assert_false(v.anomaly);
    v = request_from(b, 201, 1, "alice", "10.0.0.1", "c1"); /* the proxy forwarding it */
    assert_false(v.judged);
    v = request_from(b, 202, 1500, "alice", "10.0.0.10", "c2"); /* claims alice's device */
    assert_int_equal(v.cls, BIND_SPOOFED_SOURCE);
    assert_string_equal(v.bound, "10.0.0.10");
    v = request_from(b, 203, 10, "alice", "192.0.2.66", "c3"); /* alice's address, other hosts */
    assert_int_equal(v.cls, BIND_SIP_SPOOF);
    v = request_from(b, 204, 11, "alice", "10.0.0.11", "c4"); /* bob's address, alice's name */
    assert_int_equal(v.cls, BIND_IDENTITY_THEFT);
    assert_string_equal(v.bound, "bob");
    v = request_from(b, 205, 1600, "alice", "203.0.6.100", "c5");
    assert_int_equal(v.cls, BIND_NEW_LOCATION);
    v = request_from(b, 206, 1600, "carol", "203.0.6.100", "c6"); /* never bound: nothing */
    assert_false(v.anomaly);
    /* the digest of alice's registration, sent again from elsewhere */
    msg_t m;
    sipinfo_t in;
    make(&m, &in, 207, 1700, 1, "REGISTER", 0, "REGISTER", "replay-1", "alice", "alice");
    snprintf(in.auth_nonce, sizeof in.auth_nonce, "nonce-alice-100");
    snprintf(in.auth_response, sizeof in.auth_response, "resp-alice");
    binding_observe(b, &m, &in, &v);
    assert_int_equal(v.cls, BIND_AUTH_REPLAY);
    /* expiry: bob registered for 3600 s */
    v = request_from(b, 101 + 3700, 1800, "bob", "203.0.7.50", "c7");
    assert_false(v.anomaly);
    assert_int_equal(binding_count(b), 1);
    /* Expires 0 removes alice */
    register_user(b, 300, 10, "alice", 0, "10.0.0.10", true);
    assert_int_equal(binding_count(b), 0);
    binding_destroy(&b);
}

static void test_binding_table_is_bounded(void **state)
{
    (void)state;
    binding_model_t bm;
    memset(&bm, 0, sizeof bm);
    binding_opts_default(&bm.o);
    bm.o.expected_users = 100; /* table of 1024: 768 bindings at most */
    binding_t *b = binding_new(&bm);
    char user[16];
    for (int i = 0; i < 2000; i++) {
        snprintf(user, sizeof user, "user%d", i);
        register_user(b, 10 + i, 1000 + i, user, 3600, "x", true);
    }
    assert_true(binding_count(b) <= 768);
    assert_true(binding_refused(b) >= 2000 - 768);
    binding_destroy(&b);

    /* a table full of bindings that expired unseen makes room for new ones */
    b = binding_new(&bm);
    for (int i = 0; i < 768; i++) {
        snprintf(user, sizeof user, "short%d", i);
        register_user(b, 3000 + i * 0.01, 1000 + i, user, 600, "x", true);
    }
    assert_int_equal(binding_count(b), 768);
    register_user(b, 3100, 1900, "late", 3600, "x", true); /* the others still bound */
    assert_int_equal(binding_refused(b), 1);
    register_user(b, 3700, 1901, "later", 3600, "x", true); /* they have expired */
    assert_int_equal(binding_refused(b), 1);
    assert_int_equal(binding_count(b), 1);
    binding_destroy(&b);

    /* registrations that come and go leave no more than a quarter of the table in tombstones,
     * so probes still end at empty slots; those still bound are still found */
    b = binding_new(&bm);
    register_user(b, 4000, 1990, "stays", 86400, "keep", true);
    for (int i = 0; i < 20000; i++) {
        snprintf(user, sizeof user, "churn%d", i);
        register_user(b, 4001 + i * 0.1, 1000 + i % 900, user, 3600, "x", true);
        register_user(b, 4001.05 + i * 0.1, 1000 + i % 900, user, 0, "x", true);
    }
    assert_int_equal(binding_count(b), 1);
    assert_true(binding_tombstones(b) <= 1024 / 4);
    assert_int_equal(binding_refused(b), 0);
    binding_verdict_t v = request_from(b, 7000, 1991, "stays", "elsewhere", "c-stays");
    assert_true(v.anomaly); /* its binding survived the rebuilds: a request from elsewhere */
    binding_destroy(&b);
    json_t *j = binding_model_to_json(&bm);
    binding_model_t back;
    char err[200];
    assert_int_equal(binding_model_from_json(j, &back, err, sizeof err), 0);
    assert_int_equal(back.o.expected_users, 100);
    json_object_set_new(j, "infrastructure", json_pack("[s]", "not-an-address"));
    assert_int_equal(binding_model_from_json(j, &back, err, sizeof err), -1);
    assert_non_null(strstr(err, "binding.infrastructure[0]"));
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flood_quiet_on_normal_traffic_of_another_day),
        cmocka_unit_test(test_flood_single_source_constant_rate_flagged_within_a_few_messages),
        cmocka_unit_test(test_flood_distributed_flagged_but_registered_users_still_call),
        cmocka_unit_test(test_flood_ipv6_strangers_count_by_their_64),
        cmocka_unit_test(test_flood_half_open_sessions_flagged),
        cmocka_unit_test(test_flood_model_json_round_trip_and_bad_models),
        cmocka_unit_test(
            test_dialog_known_flows_pass_and_a_new_one_is_flagged_at_its_first_odd_message),
        cmocka_unit_test(test_dialog_state_is_bounded),
        cmocka_unit_test(test_dialog_keeps_calls_on_hold_through_a_churn_of_pings),
        cmocka_unit_test(test_dialog_takes_up_given_up_calls_again),
        cmocka_unit_test(test_dialog_training_learns_nothing_from_before_a_leg_was_taken_up),
        cmocka_unit_test(test_dialog_tells_finished_legs_from_open_ones),
        cmocka_unit_test(test_dialog_stands_aside_while_the_feed_carries_no_responses),
        cmocka_unit_test(test_dialog_judges_through_lulls_and_unanswered_floods),
        cmocka_unit_test(test_dialog_sees_challenges_the_feed_never_showed),
        cmocka_unit_test(test_dialog_model_of_requests_alone_passes_over_responses),
        cmocka_unit_test(test_context_model_file_round_trip_and_refusals),
        cmocka_unit_test(test_binding_classifies_mismatches),
        cmocka_unit_test(test_binding_table_is_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
