/*
 * fuzz_context: the context model file (JSON: flood thresholds, the dialog detector's
 * transitions, the binding detector's infrastructure), which `sipguard score --context` and
 * the edge load. A document is refused with a reason, or loads and then watches traffic: a
 * burst of INVITEs and REGISTERs from a few sources (one of them IPv6, some strangers), whole
 * calls, and a teardown from a stranger. No crash, no hang, no read outside what was
 * allocated, and no allocation the settings could blow up past the fuzzer's memory limit.
 *
 * Input: the JSON text. Seed: a model trained by `sipguard context train` on generated
 * traffic (tests/fuzz/regress/context).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "context.h"
#include "fuzz_observe.h"
#include "sipcheck.h"

#define MESSAGES 96

static void endpoint(endpoint_t *ep, int host)
{
    memset(ep, 0, sizeof *ep);
    ep->port = 5060;
    if (host == 7) { /* one IPv6 source: 2001:db8::7 */
        ep->family = 6;
        ep->addr[0] = 0x20;
        ep->addr[1] = 0x01;
        ep->addr[2] = 0x0d;
        ep->addr[3] = 0xb8;
        ep->addr[15] = 7;
        return;
    }
    ep->family = 4;
    uint8_t ours[4] = {10, 0, 0, (uint8_t)host}, stranger[4] = {203, 0, 113, (uint8_t)host};
    memcpy(ep->addr, host >= 100 ? stranger : ours, 4);
}

/* Message i of the fixed sequence, as text into buf; its source and destination hosts. */
static size_t message_text(char *buf, size_t cap, int i, int *src, int *dst)
{
    static const char *flow[] = {"INVITE", "100", "180", "200", "ACK", "BYE", "200"};
    int call = i / 7, step = i % 7, caller = 10 + call % 5;
    if (i >= 70) { /* a burst from strangers and the IPv6 source, then a stranger's BYE */
        *src = i % 3 == 0 ? 7 : 100 + i % 4;
        *dst = 1;
        const char *method = i == MESSAGES - 1 ? "BYE" : i % 2 ? "REGISTER" : "INVITE";
        return (size_t)snprintf(buf, cap,
                                "%s sip:%d@example.net SIP/2.0\r\n"
                                "Via: SIP/2.0/UDP 203.0.113.%d;branch=z9hG4bK%d\r\n"
                                "From: <sip:%d@example.net>;tag=t%d\r\nTo: <sip:%d@example.net>\r\n"
                                "Call-ID: burst%d\r\nCSeq: 1 %s\r\n"
                                "Contact: <sip:%d@203.0.113.%d>\r\nContent-Length: 0\r\n\r\n",
                                method, 200 + i % 9, *src, i, 300 + i % 3, i, 200 + i % 9,
                                i % 5 ? i : 2, method, 300 + i % 3, *src);
    }
    bool request = step == 0 || step == 4 || step == 5;
    *src = request ? caller : 1;
    *dst = request ? 1 : caller;
    const char *method = step < 4 ? "INVITE" : step == 4 ? "ACK" : "BYE";
    int o = request
                ? snprintf(buf, cap, "%s sip:%d@example.net SIP/2.0\r\n", flow[step], 20 + call % 4)
                : snprintf(buf, cap, "SIP/2.0 %s OK\r\n", flow[step]);
    return (size_t)o + (size_t)snprintf(buf + o, cap - (size_t)o,
                                        "Via: SIP/2.0/UDP 10.0.0.%d;branch=z9hG4bK%d%d\r\n"
                                        "From: <sip:%d@example.net>;tag=a%d\r\n"
                                        "To: <sip:%d@example.net>%s\r\n"
                                        "Call-ID: call%d@10.0.0.%d\r\nCSeq: %d %s\r\n"
                                        "Contact: <sip:%d@10.0.0.%d>\r\nContent-Length: 0\r\n\r\n",
                                        caller, call, step, caller, call, 20 + call % 4,
                                        step > 1 ? ";tag=b" : "", call, caller, step == 5 ? 2 : 1,
                                        method, caller, caller);
}

static void watch(const context_model_t *m)
{
    context_t *c = context_new(m);
    if (!c)
        return; /* out of memory: refused, not a finding */
    char buf[1024];
    for (int i = 0; i < MESSAGES; i++) {
        int src, dst;
        size_t len = message_text(buf, sizeof buf, i, &src, &dst);
        double t = 1700000000.0 + (i < 70 ? i * 0.4 : 28 + (i - 70) * 0.01);
        endpoint_t from, to;
        endpoint(&from, src);
        endpoint(&to, dst);
        context_verdict_t v;
        fuzz_observe(c, t, &from, &to, src < 100, (uint8_t)src, buf, len, &v);
    }
    context_destroy(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        sipcheck_init();
        ready = true;
    }
    json_error_t je;
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return 0;
    char err[512] = "";
    context_model_t *m = context_model_from_json(root, "fuzz.json", err, sizeof err);
    json_decref(root);
    if (!m) {
        if (!err[0])
            abort(); /* a refusal must say why */
        return 0;
    }
    watch(m);
    context_model_destroy(&m);
    return 0;
}
