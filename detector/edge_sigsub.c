#include "edge_sigsub.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "log.h"
#include "wire.h"

struct sigsub {
    void *zctx;
    void *snap, *sub;
    char snap_ep[256], upd_ep[256], server_key[41], pub[41], sec[41];
    double opened_at; /* when the sockets were made; 0 until the first tick */
    char cache[600];
    uint64_t seq;
    bool have_snapshot;
    double asked_at;
    bool heard;      /* an update came since the last tick */
    double heard_at; /* when an update last came */
};

/* The overlay sends its set again every 5 s: this long without one, the subscription is
 * taken for dead (a handshake refused by an overlay that has since been replaced, which
 * libzmq does not retry) and made anew, with a snapshot. */
#define UPDATE_SILENCE 15.0

static int curve_client(void *s, const char *server_key, const char *pub, const char *sec)
{
    int zero = 0, one = 1;
    return zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_key, 40) ||
           zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40) ||
           zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40) ||
           zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero) ||
           zmq_setsockopt(s, ZMQ_IMMEDIATE, &one, sizeof one);
}

/* The sequence of the cached set, so a restart does not take an older one. */
static uint64_t cached_sequence(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char buf[256] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strstr(buf, "\"sequence\":");
    return p ? strtoull(p + 11, NULL, 10) : 0;
}

/* Makes both sockets: subscribe first, so nothing published before the snapshot is lost. */
static int open_sockets(sigsub_t *s)
{
    int hwm = 100;
    s->sub = wire_socket(s->zctx, ZMQ_SUB, s->upd_ep);
    s->snap = wire_socket(s->zctx, ZMQ_DEALER, s->snap_ep);
    return !s->sub || !s->snap || curve_client(s->sub, s->server_key, s->pub, s->sec) ||
                   curve_client(s->snap, s->server_key, s->pub, s->sec) ||
                   zmq_setsockopt(s->sub, ZMQ_SUBSCRIBE, WIRE_UPDATE, WIRE_TAG_LEN) ||
                   zmq_setsockopt(s->sub, ZMQ_RCVHWM, &hwm, sizeof hwm) ||
                   zmq_connect(s->sub, s->upd_ep) || zmq_connect(s->snap, s->snap_ep)
               ? -1
               : 0;
}

static void close_sockets(sigsub_t *s)
{
    if (s->sub)
        zmq_close(s->sub);
    if (s->snap)
        zmq_close(s->snap);
    s->sub = s->snap = NULL;
}

sigsub_t *sigsub_new(void *zctx, const char *snapshot_ep, const char *updates_ep,
                     const char *server_key, const char *pub, const char *sec,
                     const char *cache_path, char *err, size_t errlen)
{
    sigsub_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->zctx = zctx;
    snprintf(s->cache, sizeof s->cache, "%s", cache_path);
    snprintf(s->snap_ep, sizeof s->snap_ep, "%s", snapshot_ep);
    snprintf(s->upd_ep, sizeof s->upd_ep, "%s", updates_ep);
    memcpy(s->server_key, server_key, 41);
    memcpy(s->pub, pub, 41);
    memcpy(s->sec, sec, 41);
    s->seq = cached_sequence(cache_path);
    if (open_sockets(s) != 0) {
        snprintf(err, errlen, "signature subscription %s, %s: %s", snapshot_ep, updates_ep,
                 zmq_strerror(errno));
        sigsub_destroy(&s);
        return NULL;
    }
    return s;
}

void sigsub_destroy(sigsub_t **self)
{
    sigsub_t *s = *self;
    if (!s)
        return;
    close_sockets(s);
    free(s);
    *self = NULL;
}

void *sigsub_snapshot_socket(sigsub_t *s)
{
    return s->snap;
}

void *sigsub_updates_socket(sigsub_t *s)
{
    return s->sub;
}

uint64_t sigsub_sequence(const sigsub_t *s)
{
    return s->seq;
}

void sigsub_tick(sigsub_t *s, double now)
{
    if (s->opened_at == 0)
        s->opened_at = now;
    if (!s->have_snapshot && now - s->opened_at > 5.0) {
        /* no answer in 5 s (the request went out twice): perhaps a refused handshake, after
         * which libzmq does not retry; every 5 s, as the uplink remakes its socket, so an edge
         * a SIGHUP admits on the overlay hears its set within seconds */
        close_sockets(s);
        if (open_sockets(s) != 0)
            warning("cannot reopen the signature subscription: %s", zmq_strerror(errno));
        s->opened_at = now;
        s->asked_at = 0;
    }
    if (s->heard) {
        s->heard = false;
        s->heard_at = now;
    }
    double quiet_since = s->heard_at > s->opened_at ? s->heard_at : s->opened_at;
    if (s->have_snapshot && now - quiet_since > UPDATE_SILENCE) {
        debug("no signature update for %.0f s: subscribing again", UPDATE_SILENCE);
        close_sockets(s);
        if (open_sockets(s) != 0)
            warning("cannot reopen the signature subscription: %s", zmq_strerror(errno));
        s->opened_at = now;
        s->asked_at = 0;
        s->have_snapshot = false;
    }
    if (s->have_snapshot || now - s->asked_at < 3.0)
        return;
    s->asked_at = now;
    zmq_send(s->snap, WIRE_SNAPSHOT_REQ, WIRE_TAG_LEN, ZMQ_DONTWAIT);
}

/* Writes a newer set to the cache (atomically). Returns true when it was newer. */
static bool take_set(sigsub_t *s, uint64_t seq, const char *json, size_t len)
{
    if (seq <= s->seq && s->have_snapshot)
        return false;
    if (seq < s->seq) /* older than the cache from an earlier run */
        return false;
    char tmp[620];
    snprintf(tmp, sizeof tmp, "%s.tmp", s->cache);
    FILE *f = fopen(tmp, "w");
    if (!f || fwrite(json, 1, len, f) != len || fclose(f) != 0 || rename(tmp, s->cache) != 0) {
        error("cannot write the signature cache %s: %s", s->cache, strerror(errno));
        return false;
    }
    bool newer = seq != s->seq || !s->have_snapshot;
    s->seq = seq;
    return newer;
}

bool sigsub_on_messages(sigsub_t *s)
{
    bool changed = false;
    void *socks[2] = {s->snap, s->sub};
    const char *tags[2] = {WIRE_SNAPSHOT, WIRE_UPDATE};
    for (int k = 0; k < 2; k++)
        for (;;) {
            zmq_msg_t m;
            zmq_msg_init(&m);
            if (zmq_msg_recv(&m, socks[k], ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&m);
                break;
            }
            uint64_t seq;
            const char *json;
            size_t len;
            if (!zmq_msg_more(&m) && wire_decode_set(zmq_msg_data(&m), zmq_msg_size(&m), tags[k],
                                                     &seq, &json, &len) == 0) {
                bool newer = take_set(s, seq, json, len);
                if (k == 0)
                    s->have_snapshot = true;
                else
                    s->heard = true;
                changed = changed || newer;
            }
            while (zmq_msg_more(&m)) {
                zmq_msg_close(&m);
                zmq_msg_init(&m);
                zmq_msg_recv(&m, socks[k], 0);
            }
            zmq_msg_close(&m);
        }
    return changed;
}
