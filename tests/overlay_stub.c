/*
 * overlay_stub: the overlay's report collector reduced to what the edge
 * tests need. A ROUTER with CURVE (server key pair in DIR, made on first
 * start) takes reports, appends each new (edge, seq) to DIR/reports.log,
 * syncs, and only then acks; duplicates are acked again and counted. On
 * start it reads reports.log back, so a restarted stub still knows what it
 * holds. It stops on SIGTERM, or after --max-seconds.
 *
 * usage: overlay_stub DIR ENDPOINT [MAX_SECONDS]
 *   writes DIR/server.pub (its public key) and DIR/endpoint (where it listens)
 */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "wire.h"

static volatile sig_atomic_t stop;
static void on_term(int s)
{
    (void)s;
    stop = 1;
}

typedef struct {
    char edge[64];
    uint64_t seq;
} key_t_;

static key_t_ *seen;
static size_t nseen, capseen;

static int known(const char *edge, uint64_t seq)
{
    for (size_t i = nseen; i-- > 0;)
        if (seen[i].seq == seq && !strcmp(seen[i].edge, edge))
            return 1;
    return 0;
}

static void remember(const char *edge, uint64_t seq)
{
    if (nseen == capseen) {
        capseen = capseen ? capseen * 2 : 4096;
        seen = realloc(seen, capseen * sizeof *seen);
    }
    snprintf(seen[nseen].edge, sizeof seen[nseen].edge, "%s", edge);
    seen[nseen++].seq = seq;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: overlay_stub DIR ENDPOINT [MAX_SECONDS]\n");
        return 2;
    }
    const char *dir = argv[1];
    double max_s = argc > 3 ? atof(argv[3]) : 120;
    signal(SIGTERM, on_term);
    signal(SIGINT, on_term);
    char pub[41], sec[41], err[256], path[600];
    if (wire_keypair(dir, "server", pub, sec, err, sizeof err) != 0) {
        fprintf(stderr, "overlay_stub: %s\n", err);
        return 1;
    }
    snprintf(path, sizeof path, "%s/reports.log", dir);
    FILE *log = fopen(path, "a+");
    if (!log)
        return 1;
    rewind(log);
    char line[1 << 16], edge[64];
    uint64_t seq;
    long complete = 0; /* end of the last whole line: a kill mid-write leaves a torn one */
    while (fgets(line, sizeof line, log)) {
        if (line[strlen(line) - 1] != '\n')
            break;
        complete = ftell(log);
        if (sscanf(line, "%63s %" SCNu64, edge, &seq) == 2)
            remember(edge, seq);
    }
    if (ftruncate(fileno(log), complete) != 0)
        return 1;
    fseek(log, 0, SEEK_END);
    void *ctx = zmq_ctx_new(), *r = zmq_socket(ctx, ZMQ_ROUTER);
    int one = 1, linger = 0;
    zmq_setsockopt(r, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(r, ZMQ_CURVE_SECRETKEY, sec, 40);
    zmq_setsockopt(r, ZMQ_LINGER, &linger, sizeof linger);
    if (zmq_bind(r, argv[2]) != 0) {
        fprintf(stderr, "overlay_stub: bind %s: %s\n", argv[2], zmq_strerror(zmq_errno()));
        return 1;
    }
    char ep[256];
    size_t eplen = sizeof ep;
    zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, ep, &eplen);
    snprintf(path, sizeof path, "%s/endpoint", dir);
    FILE *f = fopen(path, "w");
    fprintf(f, "%s\n", ep);
    fclose(f);
    uint64_t fresh = 0, dups = 0;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!stop) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) > max_s)
            break;
        zmq_pollitem_t it = {r, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) <= 0)
            continue;
        /* a batch: write every new report, sync once, then ack the whole batch */
        static struct {
            char id[256];
            size_t idlen;
            uint8_t ack[WIRE_TAG_LEN + 1 + WIRE_ID_MAX + 8];
            size_t acklen;
        } acks[256];
        int nack = 0;
        while (nack < 256) {
            zmq_msg_t fr[3];
            int n = 0, more = 1;
            while (more && n < 3) {
                zmq_msg_init(&fr[n]);
                if (zmq_msg_recv(&fr[n], r, nack ? ZMQ_DONTWAIT : 0) < 0) {
                    zmq_msg_close(&fr[n]);
                    break;
                }
                more = zmq_msg_more(&fr[n]);
                n++;
            }
            if (n == 0)
                break;
            wire_msg_t w;
            if (n == 2 && zmq_msg_size(&fr[0]) <= 256 &&
                wire_decode(zmq_msg_data(&fr[1]), zmq_msg_size(&fr[1]), WIRE_REPORT, &w) == 0) {
                snprintf(edge, sizeof edge, "%.*s", (int)w.id_len, w.id);
                seq = w.seq;
                if (known(edge, seq)) {
                    dups++;
                } else {
                    fprintf(log, "%s %" PRIu64 " %.*s\n", edge, seq, (int)w.json_len, w.json);
                    remember(edge, seq);
                    fresh++;
                }
                memcpy(acks[nack].id, zmq_msg_data(&fr[0]), zmq_msg_size(&fr[0]));
                acks[nack].idlen = zmq_msg_size(&fr[0]);
                acks[nack].acklen = wire_encode(acks[nack].ack, WIRE_ACK, edge, seq, NULL, 0);
                nack++;
            }
            for (int i = 0; i < n; i++)
                zmq_msg_close(&fr[i]);
            while (more) { /* discard the rest of a message of another shape */
                zmq_msg_t x;
                zmq_msg_init(&x);
                zmq_msg_recv(&x, r, 0);
                more = zmq_msg_more(&x);
                zmq_msg_close(&x);
            }
        }
        fflush(log);
        fdatasync(fileno(log)); /* committed before any ack */
        for (int i = 0; i < nack; i++) {
            zmq_send(r, acks[i].id, acks[i].idlen, ZMQ_SNDMORE);
            zmq_send(r, acks[i].ack, acks[i].acklen, 0);
        }
    }
    fprintf(stderr, "overlay_stub: %" PRIu64 " new reports, %" PRIu64 " duplicates\n", fresh, dups);
    fclose(log);
    zmq_close(r);
    zmq_ctx_term(ctx);
    return 0;
}
