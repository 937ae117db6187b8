/*
 * http_bench: latency of the edge's verdict endpoint, as a proxy sees it.
 *
 * One keep-alive HTTP/1.1 connection to 127.0.0.1:PORT posts the messages of
 * a capture to /v1/score one after another (as Kamailio's http_async_client
 * would, one transaction at a time) and prints the median, p99 and maximum
 * round-trip times and the request rate.
 *
 * usage: http_bench PORT CAPTURE [REQUESTS]
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "input.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + t.tv_nsec * 1e-9;
}

static int by_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Reads one response; returns its status, or -1. */
static int read_response(int fd, char *buf, size_t cap)
{
    size_t got = 0;
    char *end = NULL;
    while (!end) {
        ssize_t r = read(fd, buf + got, cap - 1 - got);
        if (r <= 0)
            return -1;
        got += (size_t)r;
        buf[got] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    const char *cl = strcasestr(buf, "Content-Length:");
    size_t body = cl ? strtoul(cl + 15, NULL, 10) : 0, have = got - (size_t)(end + 4 - buf);
    while (have < body) {
        ssize_t r = read(fd, buf, cap - 1);
        if (r <= 0)
            return -1;
        have += (size_t)r;
    }
    return atoi(buf + 9);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: http_bench PORT CAPTURE [REQUESTS]\n");
        return 2;
    }
    int port = atoi(argv[1]);
    size_t want = argc > 3 ? strtoul(argv[3], NULL, 10) : 20000;
    char err[256];
    input_t *in = input_open(argv[2], NULL, err, sizeof err);
    if (!in) {
        fprintf(stderr, "http_bench: %s\n", err);
        return 1;
    }
    size_t n = 0, cap = 1024;
    char **msgs = malloc(cap * sizeof *msgs);
    size_t *lens = malloc(cap * sizeof *lens);
    msg_t m;
    while (input_next(in, &m) == 1) {
        if (n == cap) {
            cap *= 2;
            msgs = realloc(msgs, cap * sizeof *msgs);
            lens = realloc(lens, cap * sizeof *lens);
        }
        msgs[n] = malloc(m.len);
        memcpy(msgs[n], m.data, m.len);
        lens[n++] = m.len;
    }
    input_close(&in);
    if (n == 0)
        return 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        perror("http_bench: connect");
        return 1;
    }
    double *lat = malloc(want * sizeof *lat);
    static char req[1 << 17], resp[1 << 16];
    size_t done = 0, errors = 0;
    double t0 = now();
    for (; done < want; done++) {
        size_t i = done % n;
        int h = snprintf(req, sizeof req,
                         "POST /v1/score HTTP/1.1\r\nHost: 127.0.0.1\r\nX-SIP-Source: "
                         "192.0.2.1:5060\r\nContent-Length: %zu\r\n\r\n",
                         lens[i]);
        if ((size_t)h + lens[i] > sizeof req)
            continue;
        memcpy(req + h, msgs[i], lens[i]);
        double s = now();
        if (write(fd, req, (size_t)h + lens[i]) < 0)
            break;
        int status = read_response(fd, resp, sizeof resp);
        lat[done] = now() - s;
        if (status != 200)
            errors++;
        if (status < 0)
            break;
    }
    double dt = now() - t0;
    close(fd);
    qsort(lat, done, sizeof *lat, by_double);
    printf("http_requests %zu\nhttp_errors %zu\nhttp_requests_per_s %.0f\n", done, errors,
           done / dt);
    printf("http_latency_p50_us %.1f\nhttp_latency_p99_us %.1f\nhttp_latency_max_us %.1f\n",
           lat[done / 2] * 1e6, lat[done * 99 / 100] * 1e6, lat[done - 1] * 1e6);
    return errors ? 1 : 0;
}
