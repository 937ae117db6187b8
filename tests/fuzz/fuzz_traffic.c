/*
 * fuzz_traffic: arbitrary SIP traffic through the context detectors (flood, dialog, binding)
 * of one fixed model whose tables are at their smallest (1,024 places each), so that a short
 * input fills them and every way a leg, a counter or a binding is given up gets exercised:
 * legs finished, refused, answered, left unanswered, evicted; time running forward in small
 * and large steps and, as a mirror may deliver it, a little backwards. fuzz_context varies the
 * model over fixed traffic; this varies the traffic over a fixed model.
 *
 * After every message the tables' own accounts must hold: no more legs than slots, no more
 * finished legs than legs, evictions and refusals that never go down, no more bindings than
 * places, nor unjudged messages that go down; no message flagged while the dialog detector stands
 * aside, and none left unjudged unless it says it stands aside; and the verdict's strings end
 * within their arrays. A violation aborts.
 *
 * Input: events of five bytes, each one message or a burst of them on consecutive Call-IDs:
 *   0  bits 0-4 the message type (a request, or a response with its status); bits 5-7 the
 *      method a response's CSeq names (INVITE, ACK, BYE, CANCEL, REGISTER, OPTIONS, MESSAGE,
 *      SUBSCRIBE)
 *   1  bit 0 from the callee's side; bit 1 with a To tag; bit 2 from a stranger; bit 3 over
 *      IPv6; bits 4-7 the burst: 1 + 8 * that many messages
 *   2,3 the Call-ID's number
 *   4  the time step before it (hundredths of a second, half-minutes, hours, or back)
 * At most MAX_MESSAGES messages an input, so that a run stays short.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "context.h"
#include "fuzz_observe.h"
#include "sipcheck.h"

#define EVENT_BYTES 5
#define MAX_MESSAGES 6000

/* The model: flood thresholds low enough to fire, a call's and a registration's
 * transitions, binding with few expected users and no challenge needed (so that two messages
 * bind an identity); every table at its smallest. */
static const char model_json[] =
    "{\"format\":\"sipguard-context\",\"version\":1,"
    "\"flood\":{\"tau\":1.0,\"ack_wait\":4.0,\"fpr\":0.001,\"slack\":0.25,\"floor\":2.0,"
    "\"floor_stranger\":1.5,\"capacity\":1,\"trained_messages\":100,\"thresholds\":{"
    "\"source\":{\"INVITE\":2,\"REGISTER\":2,\"other\":2},"
    "\"identity\":{\"INVITE\":2,\"REGISTER\":2,\"other\":2},"
    "\"target\":{\"INVITE\":2,\"REGISTER\":2,\"other\":2},"
    "\"global\":{\"INVITE\":4,\"REGISTER\":4,\"other\":4},"
    "\"source_stranger\":{\"INVITE\":1.5,\"REGISTER\":1.5,\"other\":1.5},"
    "\"identity_stranger\":{\"INVITE\":1.5,\"REGISTER\":1.5,\"other\":1.5}},"
    "\"half_open_threshold\":2.5,\"busy_sources\":[{\"address\":\"10.0.0.1\",\"thresholds\":"
    "{\"INVITE\":3,\"REGISTER\":3,\"other\":3}}]},"
    "\"dialog\":{\"order\":3,\"min_count\":1,\"timeout\":7200.0,\"capacity\":1,\"transitions\":["
    "[\"^|^\",\"a:REGISTER\",9],[\"^|a:REGISTER\",\"b:401/REGISTER\",9],"
    "[\"a:REGISTER|b:401/REGISTER\",\"a:REGISTER\",9],"
    "[\"b:401/REGISTER|a:REGISTER\",\"b:200/REGISTER\",9],"
    "[\"^|^\",\"a:INVITE\",9],[\"^|a:INVITE\",\"b:180/INVITE\",9],"
    "[\"a:INVITE|b:180/INVITE\",\"b:200/INVITE\",9],[\"b:180/INVITE|b:200/INVITE\",\"a:ACK\",9],"
    "[\"b:200/INVITE|a:ACK\",\"a:BYE\",9],[\"a:ACK|a:BYE\",\"b:200/BYE\",9],"
    "[\"^|^\",\"a:OPTIONS\",9],[\"^|a:OPTIONS\",\"b:200/OPTIONS\",9]]},"
    "\"binding\":{\"expected_users\":1,\"require_challenge\":false,"
    "\"infrastructure_identities\":5,\"infrastructure\":[\"10.0.0.1\"]}}";

static const char *const requests[] = {"INVITE",  "ACK",     "BYE",       "CANCEL", "REGISTER",
                                       "OPTIONS", "MESSAGE", "SUBSCRIBE", "NOTIFY", "PRACK",
                                       "UPDATE",  "INFO",    "PUBLISH",   "REFER"};
static const int statuses[] = {100, 180, 183, 200, 202, 401, 403, 404,
                               407, 480, 486, 487, 500, 503, 603};
#define NREQ (sizeof requests / sizeof requests[0])
#define NSTATUS (sizeof statuses / sizeof statuses[0])

static context_model_t *model;

static void endpoint(endpoint_t *ep, int host, bool stranger, bool v6)
{
    memset(ep, 0, sizeof *ep);
    ep->port = 5060;
    if (v6) {
        ep->family = 6;
        static const uint8_t prefix[4] = {0x20, 0x01, 0x0d, 0xb8};
        memcpy(ep->addr, prefix, sizeof prefix);
        ep->addr[8] = stranger;
        ep->addr[15] = (uint8_t)host;
        return;
    }
    ep->family = 4;
    uint8_t ours[4] = {10, 0, 0, (uint8_t)host}, theirs[4] = {203, 0, 113, (uint8_t)host};
    memcpy(ep->addr, stranger ? theirs : ours, 4);
}

/* The text of a message on Call-ID number call: type's low five bits pick a request or a
 * response's status, and a response's high three bits the method its CSeq names. */
static size_t message_text(char *buf, size_t cap, uint8_t type, unsigned call, bool to_tag)
{
    unsigned kind = (type & 31u) % (unsigned)(NREQ + NSTATUS);
    const char *method = kind < NREQ ? requests[kind] : requests[type >> 5];
    int o = kind < NREQ
                ? snprintf(buf, cap, "%s sip:u%u@example.net SIP/2.0\r\n", method, call % 97)
                : snprintf(buf, cap, "SIP/2.0 %d Reason\r\n", statuses[kind - NREQ]);
    o += snprintf(buf + o, cap - (size_t)o,
                  "Via: SIP/2.0/UDP 10.0.0.%u;branch=z9hG4bK%u\r\n"
                  "From: <sip:u%u@example.net>;tag=f%u\r\nTo: <sip:u%u@example.net>%s\r\n"
                  "Call-ID: c%u@example.net\r\nCSeq: %u %s\r\n"
                  "Contact: <sip:u%u@10.0.0.%u>\r\nExpires: %u\r\n"
                  "Authorization: Digest username=\"u%u\", nonce=\"n%u\", response=\"r%u\"\r\n"
                  "Content-Length: 0\r\n\r\n",
                  call % 251, call, call % 1999, call, call % 1999, to_tag ? ";tag=t" : "", call,
                  1 + call % 3, method, call % 1999, call % 251, call % 7 ? 3600 : 0, call % 1999,
                  call % 13, call % 11);
    return (size_t)o;
}

static double time_step(uint8_t b)
{
    if (b < 200)
        return b * 0.01;
    if (b < 250)
        return (b - 199) * 30.0;
    if (b < 254)
        return (b - 249) * 3600.0;
    return -0.5; /* a mirror's reordering */
}

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_traffic: %s\n", what);
        abort();
    }
}

static void check_verdict(const context_verdict_t *v)
{
    check(memchr(v->dialog.token, 0, sizeof v->dialog.token) != NULL, "token not ended");
    check(memchr(v->dialog.context, 0, sizeof v->dialog.context) != NULL, "context not ended");
}

/* The tables' accounts, which only grow where they count losses. */
static void check_stats(const context_t *c, context_stats_t *last)
{
    context_stats_t st;
    context_stats(c, &st);
    check(st.dialog.legs <= st.dialog.capacity, "more legs than slots");
    check(st.dialog.finished <= st.dialog.legs, "more finished legs than legs");
    check(st.dialog.evicted >= last->dialog.evicted, "evictions went down");
    check(st.dialog.resumed >= last->dialog.resumed, "resumptions went down");
    check(st.dialog.unjudged >= last->dialog.unjudged, "unjudged messages went down");
    check(st.dialog.quiet_spells >= last->dialog.quiet_spells, "spells standing aside went down");
    check(st.flood_evicted >= last->flood_evicted, "flood evictions went down");
    check(st.bindings <= st.binding_capacity, "more bindings than places");
    check(st.bindings_refused >= last->bindings_refused, "refusals went down");
    *last = st;
}

static void observe(context_t *c, const char *text, size_t len, double t, const uint8_t *ev,
                    context_stats_t *last)
{
    bool callee = ev[1] & 1, stranger = ev[1] & 4, v6 = ev[1] & 8;
    unsigned caller_host = 10 + ev[2] % 64;
    endpoint_t from, to;
    endpoint(&from, callee ? 1 : (int)caller_host, !callee && stranger, v6);
    endpoint(&to, callee ? (int)caller_host : 1, callee && stranger, v6);
    context_verdict_t v;
    fuzz_observe(c, t, &from, &to, !stranger, (uint8_t)caller_host, text, len, &v);
    check_verdict(&v);
    check_stats(c, last);
    check(!(v.dialog.aside && v.dialog.anomaly), "flagged while standing aside");
    check(!v.dialog.aside || last->dialog.no_responses, "stood aside without saying so");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!model) {
        sipcheck_init();
        json_error_t je;
        json_t *root = json_loads(model_json, 0, &je);
        char err[256];
        model = root ? context_model_from_json(root, "fuzz_traffic", err, sizeof err) : NULL;
        json_decref(root);
        check(model != NULL, "the built-in model does not load");
    }
    context_t *c = context_new(model);
    if (!c)
        return 0; /* out of memory: not a finding */
    context_stats_t last;
    memset(&last, 0, sizeof last);
    double t = 1700000000.0;
    char buf[1024];
    size_t sent = 0;
    for (size_t at = 0; at + EVENT_BYTES <= size && sent < MAX_MESSAGES; at += EVENT_BYTES) {
        const uint8_t *ev = data + at;
        t += time_step(ev[4]);
        unsigned call = (unsigned)ev[2] << 8 | ev[3], burst = 1 + 8u * (ev[1] >> 4);
        for (unsigned k = 0; k < burst && sent < MAX_MESSAGES; k++, sent++) {
            size_t len = message_text(buf, sizeof buf, ev[0], call + k, ev[1] & 2);
            observe(c, buf, len, t, ev, &last);
            t += 0.001;
        }
    }
    context_destroy(&c);
    return 0;
}
