/*
 * ingest_bench: how many reports per second the overlay commits and acknowledges when many
 * edges send at once. It plays K edges itself (a DEALER with its own CURVE key pair each, as
 * sipguard-edge has), so the figure is the overlay's, not the edges' detection cost.
 *
 *   ingest_bench keys DIR K
 *       makes (or reads) DIR/edge1 .. edgeK key pairs and prints "--edge edgeI=PUBLIC" lines
 *       for the overlay's command line
 *   ingest_bench run ENDPOINT SERVER_KEY DIR K REPORTS [WINDOW]
 *       each edge sends REPORTS anomaly reports (a SIP scan with a new user in each) keeping at
 *       most WINDOW (256) unacknowledged, until every one is acknowledged or 120 s passed;
 *       prints "name value" lines
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "wire.h"

typedef struct {
    void *sock;
    char id[16];
    uint64_t next, acked; /* next sequence to send (from 1); acknowledged so far */
} edge_t;

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static int keys(const char *dir, int k)
{
    for (int i = 1; i <= k; i++) {
        char name[16], pub[41], sec[41], err[300];
        snprintf(name, sizeof name, "edge%d", i);
        if (wire_keypair(dir, name, pub, sec, err, sizeof err) != 0) {
            fprintf(stderr, "ingest_bench: %s\n", err);
            return 1;
        }
        printf("--edge %s=%s\n", name, pub);
    }
    return 0;
}

/* One report as an edge makes it (the fields docs/report-schema.json requires). */
static size_t report_json(char *out, size_t cap, const char *edge, uint64_t seq)
{
    return (size_t)snprintf(
        out, cap,
        "{\"edge\":\"%s\",\"seq\":%llu,\"input\":\"hep\",\"index\":%llu,\"ts\":%.3f,"
        "\"src\":\"203.0.113.9:5070\",\"dst\":\"192.0.2.1:5060\",\"transport\":\"udp\","
        "\"call_id\":\"scan-%llu\",\"parse_ok\":true,\"verdict\":\"anomaly\","
        "\"detector\":[\"global\"],\"global\":9.5,\"local\":null,\"threshold_global\":2.0,"
        "\"threshold_local\":0.5,\"signatures\":[],\"reported_at\":%.3f,"
        "\"raw\":\"OPTIONS sip:%llu@192.0.2.1 SIP/2.0\\r\\nVia: SIP/2.0/UDP "
        "203.0.113.9:5070;branch=z9hG4bK-%llu\\r\\nFrom: \\\"sipvicious\\\"<sip:100@1.1.1.1>;"
        "tag=%llx\\r\\nTo: <sip:%llu@192.0.2.1>\\r\\nCall-ID: scan-%llu\\r\\nCSeq: 1 "
        "OPTIONS\\r\\nUser-Agent: friendly-scanner\\r\\nContent-Length: 0\\r\\n\\r\\n\"}",
        edge, (unsigned long long)seq, (unsigned long long)seq, 1.7e9 + (double)seq * 1e-3,
        (unsigned long long)seq, 1.7e9 + (double)seq * 1e-3, (unsigned long long)(1000 + seq),
        (unsigned long long)seq, (unsigned long long)(seq * 2654435761u),
        (unsigned long long)(1000 + seq), (unsigned long long)seq);
}

static int send_report(edge_t *e)
{
    char json[1400];
    uint8_t frame[1600];
    size_t jl = report_json(json, sizeof json, e->id, e->next);
    size_t n = wire_encode(frame, WIRE_REPORT, e->id, e->next, json, jl);
    if (zmq_send(e->sock, frame, n, ZMQ_DONTWAIT) < 0)
        return errno == EAGAIN ? 0 : -1;
    e->next++;
    return 1;
}

static int run(const char *endpoint, const char *server_key, const char *dir, int k,
               uint64_t reports, uint64_t window)
{
    void *ctx = zmq_ctx_new();
    edge_t *edges = calloc((size_t)k, sizeof *edges);
    zmq_pollitem_t *items = calloc((size_t)k, sizeof *items);
    for (int i = 0; i < k; i++) {
        char pub[41], sec[41], err[300];
        snprintf(edges[i].id, sizeof edges[i].id, "edge%d", i + 1);
        if (wire_keypair(dir, edges[i].id, pub, sec, err, sizeof err) != 0) {
            fprintf(stderr, "ingest_bench: %s\n", err);
            return 1;
        }
        int linger = 0;
        void *s = edges[i].sock = zmq_socket(ctx, ZMQ_DEALER);
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, server_key, 40);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, 40);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, 40);
        zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
        if (zmq_connect(s, endpoint) != 0) {
            fprintf(stderr, "ingest_bench: %s: %s\n", endpoint, zmq_strerror(errno));
            return 1;
        }
        edges[i].next = 1;
        items[i] = (zmq_pollitem_t){s, 0, ZMQ_POLLIN, 0};
    }
    uint64_t total = reports * (uint64_t)k, acked = 0;
    double t0 = now_s(), deadline = t0 + 120;
    while (acked < total && now_s() < deadline) {
        for (int i = 0; i < k; i++)
            while (edges[i].next <= reports && edges[i].next - 1 - edges[i].acked < window &&
                   send_report(&edges[i]) == 1)
                ;
        if (zmq_poll(items, k, 100) < 0)
            break;
        for (int i = 0; i < k; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            uint8_t buf[256];
            int n;
            while ((n = zmq_recv(edges[i].sock, buf, sizeof buf, ZMQ_DONTWAIT)) >= 0) {
                wire_msg_t m;
                if (wire_decode(buf, (size_t)n, WIRE_ACK, &m) == 0) {
                    edges[i].acked++;
                    acked++;
                }
            }
        }
    }
    double t = now_s() - t0;
    printf("overlay_ingest_edges %d\n", k);
    printf("overlay_ingest_reports_acked %llu of %llu\n", (unsigned long long)acked,
           (unsigned long long)total);
    printf("overlay_ingest_reports_per_s %.0f\n", (double)acked / t);
    for (int i = 0; i < k; i++)
        zmq_close(edges[i].sock);
    zmq_ctx_term(ctx);
    free(edges);
    free(items);
    return acked == total ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "keys"))
        return keys(argv[2], atoi(argv[3]));
    if ((argc == 7 || argc == 8) && !strcmp(argv[1], "run"))
        return run(argv[2], argv[3], argv[4], atoi(argv[5]), strtoull(argv[6], NULL, 10),
                   argc == 8 ? strtoull(argv[7], NULL, 10) : 256);
    fprintf(stderr, "usage: ingest_bench keys DIR K\n"
                    "       ingest_bench run ENDPOINT SERVER_KEY DIR K REPORTS [WINDOW]\n");
    return 2;
}
