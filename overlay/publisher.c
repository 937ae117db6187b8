#include "publisher.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "log.h"
#include "wire.h"

struct publisher {
    void *snap, *pub;
    char snap_ep[256], pub_ep[256];
};

static int curve_server(void *s, const char *secret)
{
    int one = 1, zero = 0;
    return zmq_setsockopt(s, ZMQ_CURVE_SERVER, &one, sizeof one) ||
           zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, secret, 40) ||
           zmq_setsockopt(s, ZMQ_ZAP_DOMAIN, "sipguard", 8) ||
           zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
}

publisher_t *publisher_new(void *zctx, const char *snapshot_endpoint, const char *updates_endpoint,
                           const char *secret_key, char *err, size_t errlen)
{
    publisher_t *p = calloc(1, sizeof *p);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->snap = wire_socket(zctx, ZMQ_ROUTER, snapshot_endpoint);
    p->pub = wire_socket(zctx, ZMQ_PUB, updates_endpoint);
    if (!p->snap || !p->pub || curve_server(p->snap, secret_key) ||
        curve_server(p->pub, secret_key) || zmq_bind(p->snap, snapshot_endpoint) != 0 ||
        zmq_bind(p->pub, updates_endpoint) != 0) {
        snprintf(err, errlen, "signature sockets %s, %s: %s", snapshot_endpoint, updates_endpoint,
                 zmq_strerror(errno));
        publisher_destroy(&p);
        return NULL;
    }
    size_t len = sizeof p->snap_ep;
    zmq_getsockopt(p->snap, ZMQ_LAST_ENDPOINT, p->snap_ep, &len);
    len = sizeof p->pub_ep;
    zmq_getsockopt(p->pub, ZMQ_LAST_ENDPOINT, p->pub_ep, &len);
    return p;
}

void publisher_destroy(publisher_t **self)
{
    publisher_t *p = *self;
    if (!p)
        return;
    if (p->snap)
        zmq_close(p->snap);
    if (p->pub)
        zmq_close(p->pub);
    free(p);
    *self = NULL;
}

int publisher_drop_peers(publisher_t *p, char *err, size_t errlen)
{
    const char *eps[2] = {p->snap_ep, p->pub_ep};
    void *socks[2] = {p->snap, p->pub};
    for (int i = 0; i < 2; i++)
        if (wire_rebind(socks[i], eps[i]) != 0) {
            snprintf(err, errlen, "signature socket %s: %s", eps[i], zmq_strerror(errno));
            return -1;
        }
    return 0;
}

void *publisher_snapshot_socket(publisher_t *p)
{
    return p->snap;
}

const char *publisher_snapshot_endpoint(const publisher_t *p)
{
    return p->snap_ep;
}

const char *publisher_updates_endpoint(const publisher_t *p)
{
    return p->pub_ep;
}

static void send_set(void *sock, const char *tag, uint64_t seq, const char *json, size_t len,
                     int flags)
{
    zmq_msg_t m;
    if (zmq_msg_init_size(&m, WIRE_TAG_LEN + 8 + len) != 0)
        return;
    wire_encode_set(zmq_msg_data(&m), tag, seq, json, len);
    if (zmq_msg_send(&m, sock, flags) < 0)
        zmq_msg_close(&m);
}

void publisher_on_requests(publisher_t *p, uint64_t seq, const char *json, size_t len)
{
    for (;;) {
        zmq_msg_t id, req;
        zmq_msg_init(&id);
        if (zmq_msg_recv(&id, p->snap, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            return;
        }
        int more = zmq_msg_more(&id);
        zmq_msg_init(&req);
        bool ok = more && zmq_msg_recv(&req, p->snap, 0) >= 0 && !zmq_msg_more(&req) &&
                  zmq_msg_size(&req) == WIRE_TAG_LEN &&
                  !memcmp(zmq_msg_data(&req), WIRE_SNAPSHOT_REQ, WIRE_TAG_LEN);
        while (zmq_msg_more(&req)) { /* drain a message of another shape */
            zmq_msg_close(&req);
            zmq_msg_init(&req);
            zmq_msg_recv(&req, p->snap, 0);
        }
        if (ok) {
            zmq_send(p->snap, zmq_msg_data(&id), zmq_msg_size(&id), ZMQ_SNDMORE | ZMQ_DONTWAIT);
            send_set(p->snap, WIRE_SNAPSHOT, seq, json, len, ZMQ_DONTWAIT);
        } else {
            warning("a signature-snapshot request of the wrong shape: ignored");
        }
        zmq_msg_close(&id);
        zmq_msg_close(&req);
    }
}

void publisher_publish(publisher_t *p, uint64_t seq, const char *json, size_t len)
{
    send_set(p->pub, WIRE_UPDATE, seq, json, len, ZMQ_DONTWAIT);
}
