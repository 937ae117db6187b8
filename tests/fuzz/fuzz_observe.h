/*
 * What the two fuzz programs of the context detectors share: a message's text, sent over UDP
 * between two endpoints at a time, checked by libosip2 and observed by the detectors, its
 * verdict then written as a report would write it.
 */
#ifndef SIPGUARD_FUZZ_OBSERVE_H
#define SIPGUARD_FUZZ_OBSERVE_H

#include <jansson.h>
#include <string.h>

#include "context.h"
#include "sipcheck.h"

/* The MAC address's last byte is mac when has_mac (a capture with Ethernet). */
static inline void fuzz_observe(context_t *c, double t, const endpoint_t *src,
                                const endpoint_t *dst, bool has_mac, uint8_t mac, const char *text,
                                size_t len, context_verdict_t *v)
{
    msg_t msg;
    memset(&msg, 0, sizeof msg);
    msg.ts_sec = (int64_t)t;
    msg.ts_usec = (int32_t)((t - (double)msg.ts_sec) * 1e6);
    msg.src = *src;
    msg.dst = *dst;
    msg.transport = TRANSPORT_UDP;
    msg.has_mac = has_mac;
    msg.src_mac[5] = mac;
    msg.data = (const uint8_t *)text;
    msg.len = len;
    sipinfo_t info;
    sipcheck_message(msg.data, msg.len, &info);
    context_observe(c, &msg, &info, v);
    json_t *o = json_object(), *detectors = json_array();
    context_report(v, o, detectors);
    json_decref(o);
    json_decref(detectors);
}

#endif
