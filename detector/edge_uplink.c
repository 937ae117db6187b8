#include "edge_uplink.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "log.h"
#include "wire.h"

struct uplink {
    void *sock, *mon;
    char edge_id[64];
    double ack_timeout;
    spool_t *spool;
    uint64_t cursor; /* highest sequence sent since the last (re)connection */
    bool connected;
    uint64_t acks, sent;
};

static int set_opt(void *s, int opt, const void *v, size_t len)
{
    return zmq_setsockopt(s, opt, v, len);
}

static int set_int(void *s, int opt, int v)
{
    return zmq_setsockopt(s, opt, &v, sizeof v);
}

uplink_t *uplink_new(void *zctx, const char *edge_id, const char *endpoint, const char *server_key,
                     const char *pub, const char *sec, double ack_timeout, spool_t *spool,
                     char *err, size_t errlen)
{
    uplink_t *u = calloc(1, sizeof *u);
    if (!u) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(u->edge_id, sizeof u->edge_id, "%s", edge_id);
    u->ack_timeout = ack_timeout;
    u->spool = spool;
    u->sock = zmq_socket(zctx, ZMQ_DEALER);
    char monaddr[64];
    snprintf(monaddr, sizeof monaddr, "inproc://uplink-monitor-%p", (void *)u);
    if (!u->sock || set_opt(u->sock, ZMQ_CURVE_SERVERKEY, server_key, 40) ||
        set_opt(u->sock, ZMQ_CURVE_PUBLICKEY, pub, 40) ||
        set_opt(u->sock, ZMQ_CURVE_SECRETKEY, sec, 40) || set_int(u->sock, ZMQ_IMMEDIATE, 1) ||
        set_int(u->sock, ZMQ_LINGER, 0) || set_int(u->sock, ZMQ_SNDHWM, 4 * UPLINK_WINDOW) ||
        set_int(u->sock, ZMQ_RECONNECT_IVL, 100) || set_int(u->sock, ZMQ_RECONNECT_IVL_MAX, 2000) ||
        set_int(u->sock, ZMQ_HEARTBEAT_IVL, 1000) ||
        set_int(u->sock, ZMQ_HEARTBEAT_TIMEOUT, 3000) ||
        zmq_socket_monitor(u->sock, monaddr,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED) != 0) {
        snprintf(err, errlen, "overlay socket: %s", zmq_strerror(errno));
        uplink_destroy(&u);
        return NULL;
    }
    u->mon = zmq_socket(zctx, ZMQ_PAIR);
    if (!u->mon || zmq_connect(u->mon, monaddr) != 0 || zmq_connect(u->sock, endpoint) != 0) {
        snprintf(err, errlen, "overlay endpoint %s: %s", endpoint, zmq_strerror(errno));
        uplink_destroy(&u);
        return NULL;
    }
    set_int(u->mon, ZMQ_LINGER, 0);
    return u;
}

void uplink_destroy(uplink_t **self)
{
    uplink_t *u = *self;
    if (!u)
        return;
    if (u->sock) {
        zmq_socket_monitor(u->sock, NULL, 0);
        zmq_close(u->sock);
    }
    if (u->mon)
        zmq_close(u->mon);
    free(u);
    *self = NULL;
}

void *uplink_socket(uplink_t *u)
{
    return u->sock;
}

void *uplink_monitor(uplink_t *u)
{
    return u->mon;
}

/* Receives all frames of one message into up to n buffers; returns the frame count or -1. */
static int recv_frames(void *sock, zmq_msg_t *f, int n)
{
    int got = 0, more = 1;
    while (more) {
        zmq_msg_t tmp, *m = got < n ? &f[got] : &tmp;
        zmq_msg_init(m);
        if (zmq_msg_recv(m, sock, ZMQ_DONTWAIT) < 0) {
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

void uplink_on_acks(uplink_t *u)
{
    zmq_msg_t f[3];
    int n;
    while ((n = recv_frames(u->sock, f, 3)) >= 0) {
        uint64_t seq;
        if (n == 3 && zmq_msg_size(&f[0]) == WIRE_TAG_LEN &&
            !memcmp(zmq_msg_data(&f[0]), WIRE_ACK, WIRE_TAG_LEN) &&
            wire_get_seq(zmq_msg_data(&f[2]), zmq_msg_size(&f[2]), &seq) == 0) {
            spool_ack(u->spool, seq);
            u->acks++;
        } else {
            warning("overlay sent a message that is not an ack (%d frames): ignored", n);
        }
        for (int i = 0; i < n && i < 3; i++)
            zmq_msg_close(&f[i]);
    }
}

void uplink_on_events(uplink_t *u)
{
    zmq_msg_t f[2];
    int n;
    while ((n = recv_frames(u->mon, f, 2)) >= 0) {
        if (n >= 1 && zmq_msg_size(&f[0]) >= 6) {
            uint16_t ev;
            memcpy(&ev, zmq_msg_data(&f[0]), 2);
            if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
                u->connected = true;
                u->cursor = 0; /* everything unacknowledged goes again */
                info("connected to the overlay");
            } else if (ev == ZMQ_EVENT_DISCONNECTED && u->connected) {
                u->connected = false;
                warning("lost the overlay; reports wait in the spool");
            }
        }
        for (int i = 0; i < n && i < 2; i++)
            zmq_msg_close(&f[i]);
    }
}

/* Sends one report; false when the socket would block (no connection, queue full). */
static bool send_report(uplink_t *u, spool_entry_t *e, double now)
{
    uint8_t seq[8];
    wire_put_seq(seq, e->seq);
    if (zmq_send(u->sock, WIRE_REPORT, WIRE_TAG_LEN, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return false;
    /* after the first frame the rest of a message is always accepted */
    zmq_send(u->sock, u->edge_id, strlen(u->edge_id), ZMQ_SNDMORE);
    zmq_send(u->sock, seq, 8, ZMQ_SNDMORE);
    zmq_send(u->sock, e->data, e->len, 0);
    e->sent_at = now;
    u->sent++;
    return true;
}

void uplink_pump(uplink_t *u, double now)
{
    if (!u->connected)
        return;
    size_t n = spool_count(u->spool), i = 0, inflight = 0;
    /* in flight: overdue ones go again */
    for (; i < n; i++) {
        spool_entry_t *e = spool_entry(u->spool, i);
        if (e->seq > u->cursor)
            break;
        if (e->acked)
            continue;
        inflight++;
        if (now - e->sent_at >= u->ack_timeout && !send_report(u, e, now))
            return;
    }
    for (; i < n && inflight < UPLINK_WINDOW; i++) {
        spool_entry_t *e = spool_entry(u->spool, i);
        if (e->acked)
            continue;
        if (!send_report(u, e, now))
            return;
        u->cursor = e->seq;
        inflight++;
    }
}

bool uplink_connected(const uplink_t *u)
{
    return u->connected;
}

uint64_t uplink_acks(const uplink_t *u)
{
    return u->acks;
}

uint64_t uplink_sent(const uplink_t *u)
{
    return u->sent;
}
