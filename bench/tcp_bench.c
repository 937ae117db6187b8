/*
 * tcp_bench: reading TCP from a capture with many connections open at once. Writes (in
 * memory) a capture of N connections, each sending INVITEs cut in two segments, all first
 * halves before the second halves, and reads it back five times. Prints, per N, the messages
 * read, the segments skipped, and messages/s of the best run (one core). The reader follows
 * 16,384 directions, 8,192 connections: past that it drops streams, which the skips show.
 *   usage: tcp_bench [N ...]   (1 to 60000; default 100 1000 5000)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "input.h"
#include "pcapw.h"

static const char *INV =
    "INVITE sip:1001@example.net SIP/2.0\r\nVia: SIP/2.0/TCP 10.1.2.3:5060;branch=z9hG4bK1\r\n"
    "From: <sip:1000@example.net>;tag=1\r\nTo: <sip:1001@example.net>\r\n"
    "Call-ID: abc@10.1.2.3\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";

enum { ROUNDS = 3, RUNS = 5 };

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* The capture: ROUNDS rounds, in each every connection's first half, then every second half. */
static int write_capture(int n, char **buf, size_t *len)
{
    FILE *f = open_memstream(buf, len);
    pcapw_t *w = f ? pcapw_from_file(f) : NULL;
    if (!w)
        return -1;
    size_t half = strlen(INV) / 2;
    for (int r = 0; r < ROUNDS; r++)
        for (int pass = 0; pass < 2; pass++)
            for (int c = 0; c < n; c++) {
                msg_t m = {0};
                m.src.family = m.dst.family = 4;
                m.src.addr[0] = m.dst.addr[0] = 10;
                m.src.addr[2] = (uint8_t)(c >> 8);
                m.src.addr[3] = (uint8_t)c;
                m.dst.addr[3] = 1;
                m.src.port = m.dst.port = 5060;
                m.transport = TRANSPORT_TCP;
                m.ts_sec = 1700000000;
                m.data = (const uint8_t *)(pass ? INV + half : INV);
                m.len = pass ? strlen(INV) - half : half;
                if (pcapw_write(w, &m) != 0)
                    return -1;
            }
    int rc = pcapw_close(&w);
    fclose(f);
    return rc;
}

int main(int argc, char **argv)
{
    int defaults[] = {100, 1000, 5000}, count = argc > 1 ? argc - 1 : 3;
    for (int a = 0; a < count; a++) {
        int n = argc > 1 ? atoi(argv[a + 1]) : defaults[a];
        if (n < 1 || n > 60000) {
            fprintf(stderr, "tcp_bench: connections must be 1 to 60000\n");
            return 2;
        }
        char *buf = NULL, err[256];
        size_t len = 0, msgs = 0;
        uint64_t skipped = 0;
        if (write_capture(n, &buf, &len) != 0) {
            fprintf(stderr, "tcp_bench: cannot write the capture\n");
            return 1;
        }
        double best = 1e9;
        for (int r = 0; r < RUNS; r++) {
            double t0 = now();
            input_t *in = input_open_memory("tcp_bench", buf, len, NULL, err, sizeof err);
            if (!in) {
                fprintf(stderr, "tcp_bench: %s\n", err);
                return 1;
            }
            msg_t m;
            for (msgs = 0; input_next(in, &m) == 1;)
                msgs++;
            skipped = skips_total(input_skips(in));
            input_close(&in);
            double t = now() - t0;
            best = t < best ? t : best;
        }
        printf("tcp_%d_connections_messages %zu\ntcp_%d_connections_skipped %llu\n"
               "tcp_%d_connections_msgs_per_s %.0f\n",
               n, msgs, n, (unsigned long long)skipped, n, msgs / best);
        free(buf);
    }
    return 0;
}
