/*
 * senders_bench: what counting each HEP message to its sender (detector/edge_senders) costs
 * the edge's ingest thread, in nanoseconds a message: the usual case, runs of messages from
 * one of a few proxies, and the worst, every message from another of the 64 kept apart (each
 * then searched for). Median of five runs of 20 million messages. Prints "name value" lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edge_senders.h"

#define MESSAGES 20000000
#define RUNS 5

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int by_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* ns a message when messages come from nsenders senders in runs of run messages each */
static double measure(int nsenders, int run)
{
    static endpoint_t from[EDGE_SENDERS_MAX];
    for (int i = 0; i < nsenders; i++)
        from[i] = (endpoint_t){.family = 4, .addr = {10, 0, (uint8_t)(i >> 8), (uint8_t)i}};
    double t[RUNS];
    for (int r = 0; r < RUNS; r++) {
        edge_senders_t *s = edge_senders_new();
        if (!s)
            exit(1);
        double t0 = now_s(), when = 1e9;
        int k = 0, left = run; /* the sender, and its messages left in this run */
        for (long m = 0; m < MESSAGES; m++) {
            edge_senders_count(s, &from[k], when, k % 2);
            when += 1e-5;
            if (--left == 0) {
                left = run;
                k = k + 1 == nsenders ? 0 : k + 1;
            }
        }
        t[r] = (now_s() - t0) * 1e9 / MESSAGES;
        edge_sender_t list[EDGE_SENDERS_MAX];
        if (edge_senders_list(s, list, when + MESSAGES * 1e-5) != (size_t)nsenders)
            exit(1); /* every sender kept: the figure is of counting, not of refusing */
        edge_senders_destroy(&s);
    }
    qsort(t, RUNS, sizeof t[0], by_double);
    return t[RUNS / 2];
}

int main(void)
{
    printf("senders_count_ns_per_msg_3_proxies_runs_of_16 %.2f\n", measure(3, 16));
    printf("senders_count_ns_per_msg_64_senders_each_message_another %.2f\n",
           measure(EDGE_SENDERS_MAX, 1));
    return 0;
}
