#include "edge_uplink.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "log.h"
#include "wire.h"

#define UPLINK_RETRY_SECONDS 5

struct uplink {
    void *zctx;
    void *sock, *mon;
    char endpoint[256], server_key[41], pub[41], sec[41];
    unsigned generation; /* sockets made so far */
    double retry_at;     /* after a refused handshake: when to make a new socket (0: never) */
    char edge_id[64];
    double ack_timeout;
    spool_t *spool;
    uint64_t cursor; /* highest sequence sent since the last (re)connection */
    bool connected;
    bool told_handshake; /* a failed handshake is logged once until one succeeds */
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

/* Closes the socket and its monitor. */
static void close_socket(uplink_t *u)
{
    if (u->sock) {
        zmq_socket_monitor(u->sock, NULL, 0);
        zmq_close(u->sock);
        u->sock = NULL;
    }
    if (u->mon) {
        zmq_close(u->mon);
        u->mon = NULL;
    }
    u->connected = false;
}

/* Makes the DEALER with its options and monitor, and connects it. Returns 0, or -1 with err. */
static int open_socket(uplink_t *u, char *err, size_t errlen)
{
    u->generation++;
    u->sock = wire_socket(u->zctx, ZMQ_DEALER, u->endpoint);
    char monaddr[80];
    snprintf(monaddr, sizeof monaddr, "inproc://uplink-monitor-%p-%u", (void *)u, u->generation);
    if (!u->sock || set_opt(u->sock, ZMQ_CURVE_SERVERKEY, u->server_key, 40) ||
        set_opt(u->sock, ZMQ_CURVE_PUBLICKEY, u->pub, 40) ||
        set_opt(u->sock, ZMQ_CURVE_SECRETKEY, u->sec, 40) || set_int(u->sock, ZMQ_IMMEDIATE, 1) ||
        set_int(u->sock, ZMQ_LINGER, 0) || set_int(u->sock, ZMQ_SNDHWM, 4 * UPLINK_WINDOW) ||
        set_int(u->sock, ZMQ_RECONNECT_IVL, 100) || set_int(u->sock, ZMQ_RECONNECT_IVL_MAX, 2000) ||
        set_int(u->sock, ZMQ_HEARTBEAT_IVL, 1000) ||
        set_int(u->sock, ZMQ_HEARTBEAT_TIMEOUT, 3000) ||
        zmq_socket_monitor(u->sock, monaddr,
                           ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED |
                               ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0) {
        snprintf(err, errlen, "overlay socket: %s", zmq_strerror(errno));
        return -1;
    }
    u->mon = zmq_socket(u->zctx, ZMQ_PAIR);
    if (!u->mon || zmq_connect(u->mon, monaddr) != 0 || zmq_connect(u->sock, u->endpoint) != 0) {
        snprintf(err, errlen, "overlay endpoint %s: %s", u->endpoint, zmq_strerror(errno));
        return -1;
    }
    set_int(u->mon, ZMQ_LINGER, 0);
    return 0;
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
    u->zctx = zctx;
    snprintf(u->edge_id, sizeof u->edge_id, "%s", edge_id);
    snprintf(u->endpoint, sizeof u->endpoint, "%s", endpoint);
    memcpy(u->server_key, server_key, 41);
    memcpy(u->pub, pub, 41);
    memcpy(u->sec, sec, 41);
    u->ack_timeout = ack_timeout;
    u->spool = spool;
    if (open_socket(u, err, errlen) != 0) {
        uplink_destroy(&u);
        return NULL;
    }
    return u;
}

void uplink_destroy(uplink_t **self)
{
    uplink_t *u = *self;
    if (!u)
        return;
    close_socket(u);
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

/* Receives one whole message; returns its frame count (the first kept in *m), or -1. */
static int recv_message(void *sock, zmq_msg_t *m)
{
    zmq_msg_init(m);
    if (zmq_msg_recv(m, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(m);
        return -1;
    }
    int n = 1;
    while (zmq_msg_more(m)) { /* only the first frame counts; drain the rest */
        zmq_msg_t x;
        zmq_msg_init(&x);
        if (zmq_msg_recv(&x, sock, 0) < 0) {
            zmq_msg_close(&x);
            break;
        }
        int more = zmq_msg_more(&x);
        zmq_msg_close(&x);
        n++;
        if (!more)
            break;
    }
    return n;
}

void uplink_on_acks(uplink_t *u)
{
    zmq_msg_t m;
    int n;
    while ((n = recv_message(u->sock, &m)) >= 0) {
        wire_msg_t w;
        if (n == 1 && wire_decode(zmq_msg_data(&m), zmq_msg_size(&m), WIRE_ACK, &w) == 0 &&
            w.id_len == strlen(u->edge_id) && !memcmp(w.id, u->edge_id, w.id_len)) {
            spool_ack(u->spool, w.seq);
            u->acks++;
        } else {
            warning("overlay sent a message that is not an ack for this edge: ignored");
        }
        zmq_msg_close(&m);
    }
}

void uplink_on_events(uplink_t *u)
{
    zmq_msg_t f;
    while (recv_message(u->mon, &f) >= 0) { /* event frame first, then the address */
        if (zmq_msg_size(&f) >= 6) {
            uint16_t ev;
            memcpy(&ev, zmq_msg_data(&f), 2);
            if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL ||
                ev == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
                ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
                if (!u->told_handshake)
                    error("the CURVE handshake with the overlay failed (%s): check [overlay] "
                          "server_key, and that the overlay admits this edge's public key; "
                          "trying again every %d s",
                          ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH ? "refused by the overlay"
                                                                : "keys or protocol do not match",
                          UPLINK_RETRY_SECONDS);
                u->told_handshake = true;
                /* libzmq does not reconnect after a refused handshake: a new socket will */
                u->retry_at = -1;
            } else if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
                u->told_handshake = false;
                u->connected = true;
                u->cursor = 0; /* everything unacknowledged goes again */
                info("connected to the overlay");
            } else if (ev == ZMQ_EVENT_DISCONNECTED && u->connected) {
                u->connected = false;
                warning("lost the overlay; reports wait in the spool");
            }
        }
        zmq_msg_close(&f);
    }
}

/* Sends one report; false when the socket would block (no connection, queue full). */
static bool send_report(uplink_t *u, spool_entry_t *e, double now)
{
    zmq_msg_t m;
    if (zmq_msg_init_size(&m, wire_size(strlen(u->edge_id), e->len)) != 0)
        return false;
    wire_encode(zmq_msg_data(&m), WIRE_REPORT, u->edge_id, e->seq, e->data, e->len);
    if (zmq_msg_send(&m, u->sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&m);
        return false;
    }
    e->sent_at = now;
    u->sent++;
    return true;
}

void uplink_pump(uplink_t *u, double now)
{
    if (u->retry_at < 0)
        u->retry_at = now + UPLINK_RETRY_SECONDS;
    if (u->retry_at > 0 && now >= u->retry_at) {
        char err[300];
        u->retry_at = 0;
        close_socket(u);
        if (open_socket(u, err, sizeof err) != 0) {
            error("%s", err);
            u->retry_at = now + UPLINK_RETRY_SECONDS;
        }
        return;
    }
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
