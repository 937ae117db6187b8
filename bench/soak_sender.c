/*
 * soak_sender: the traffic of a long soak, as HEPv3 datagrams, for bench/soak.sh. It sends,
 * at a fixed rate for a fixed time, a fixed-seed mix that keeps every table of the edge
 * turning over: keep-alive pings answered (dialog legs by the thousand), calls, registrations
 * from ever new addresses (IPv4 and IPv6: bindings, flood counters), scans from ever new
 * spoofed sources (reports, strikes, bans), and garbage (parse failures). Timestamps are the
 * wall clock, so the edge's timeouts run as they would. Prints "name value" lines.
 *   usage: soak_sender HOST:PORT SECONDS RATE [SEED]
 */
#include <arpa/inet.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "hep.h"
#include "monotime.h"

typedef struct {
    int fd;
    uint64_t rng;
    uint64_t sent, failed, seq;
    uint8_t pkt[4096];
    char body[2048];
} sender_t;

static uint64_t next_random(sender_t *s)
{
    s->rng ^= s->rng << 13; /* xorshift64: fixed seed, the same mix every run */
    s->rng ^= s->rng >> 7;
    s->rng ^= s->rng << 17;
    return s->rng;
}

/* The proxy, 10.0.0.1 or 2001:db8::1 (of the user's family) */
static endpoint_t proxy_for(const endpoint_t *user)
{
    endpoint_t p = {.family = user->family, .port = 5060};
    static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
    static const uint8_t v4[4] = {10, 0, 0, 1};
    if (user->family == 6)
        memcpy(p.addr, v6, 16);
    else
        memcpy(p.addr, v4, 4);
    return p;
}

/* A user among 65,536 behind the proxy, or (fresh) an address never seen before: IPv4 in
 * 100.64/10 or an IPv6 address in a /64 of its own. */
static endpoint_t somebody(sender_t *s, int fresh)
{
    uint64_t r = next_random(s);
    endpoint_t e = {.family = 4, .port = 5060};
    if (!fresh) {
        e.addr[0] = 10;
        e.addr[1] = 1;
        e.addr[2] = (uint8_t)(r >> 8);
        e.addr[3] = (uint8_t)r;
    } else if (r & 1) {
        e.family = 6;
        static const uint8_t prefix[4] = {0x20, 0x01, 0x0d, 0xb8};
        memcpy(e.addr, prefix, 4);
        uint64_t x = next_random(s);
        memcpy(e.addr + 4, &r, 4);
        memcpy(e.addr + 8, &x, 8);
    } else {
        e.addr[0] = 100;
        e.addr[1] = (uint8_t)(64 + ((r >> 8) & 63));
        e.addr[2] = (uint8_t)(r >> 16);
        e.addr[3] = (uint8_t)(r >> 24);
    }
    return e;
}

static void host_text(const endpoint_t *e, char *buf, size_t cap)
{
    char a[46];
    msg_address_format(e, a);
    snprintf(buf, cap, e->family == 6 ? "[%s]" : "%s", a);
}

/* Sends len bytes of s->body from one endpoint to another, wrapped in HEPv3, stamped now. */
static void send_body(sender_t *s, const endpoint_t *from, const endpoint_t *to, size_t len)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    msg_t m = {.src = *from,
               .dst = *to,
               .transport = TRANSPORT_UDP,
               .ts_sec = now.tv_sec,
               .ts_usec = (int32_t)(now.tv_nsec / 1000),
               .data = (const uint8_t *)s->body,
               .len = len};
    size_t n = hep_encode(&m, 1, NULL, s->pkt, sizeof s->pkt);
    if (n && send(s->fd, s->pkt, n, 0) == (ssize_t)n)
        s->sent++;
    else
        s->failed++;
}

/* One message: the request line or status line, then the headers of a Call-ID. */
static void send_sip(sender_t *s, const endpoint_t *from, const endpoint_t *to, const char *first,
                     const char *call, const char *user, const char *cseq, const char *extra)
{
    char host[64];
    host_text(from, host, sizeof host);
    int n = snprintf(s->body, sizeof s->body,
                     "%s\r\nVia: SIP/2.0/UDP %s:5060;branch=z9hG4bK%llx\r\n"
                     "From: <sip:%s@example.net>;tag=%llx\r\nTo: <sip:%s@example.net>\r\n"
                     "Call-ID: %s\r\nCSeq: %s\r\nMax-Forwards: 70\r\n%sContent-Length: 0\r\n\r\n",
                     first, host, (unsigned long long)next_random(s), user,
                     (unsigned long long)(next_random(s) & 0xffffff), user, call, cseq, extra);
    send_body(s, from, to, (size_t)n);
}

/* One exchange of the mix; returns the messages it sent. */
static int one_exchange(sender_t *s)
{
    char call[64], user[32];
    uint64_t pick = next_random(s) % 100;
    snprintf(call, sizeof call, "%llx@soak", (unsigned long long)++s->seq);
    endpoint_t u = somebody(s, pick >= 45), p = proxy_for(&u);
    snprintf(user, sizeof user, "%u", (unsigned)(next_random(s) % 65536));
    if (pick < 35) { /* a keep-alive ping, answered */
        send_sip(s, &p, &u, "OPTIONS sip:ping@10.1.0.1 SIP/2.0", call, user, "1 OPTIONS", "");
        send_sip(s, &u, &p, "SIP/2.0 200 OK", call, user, "1 OPTIONS", "");
        return 2;
    }
    if (pick < 45) { /* a call, answered and hung up */
        send_sip(s, &u, &p, "INVITE sip:2000@example.net SIP/2.0", call, user, "1 INVITE", "");
        send_sip(s, &p, &u, "SIP/2.0 100 Trying", call, user, "1 INVITE", "");
        send_sip(s, &p, &u, "SIP/2.0 200 OK", call, user, "1 INVITE", "");
        send_sip(s, &u, &p, "ACK sip:2000@example.net SIP/2.0", call, user, "1 ACK", "");
        send_sip(s, &u, &p, "BYE sip:2000@example.net SIP/2.0", call, user, "2 BYE", "");
        send_sip(s, &p, &u, "SIP/2.0 200 OK", call, user, "2 BYE", "");
        return 6;
    }
    if (pick < 65) { /* a registration from an address never seen: challenged, then bound */
        char auth[160];
        snprintf(auth, sizeof auth,
                 "Authorization: Digest username=\"%s\", nonce=\"%llx\", response=\"%llx\"\r\n",
                 user, (unsigned long long)next_random(s), (unsigned long long)next_random(s));
        send_sip(s, &u, &p, "REGISTER sip:example.net SIP/2.0", call, user, "1 REGISTER", "");
        send_sip(s, &p, &u, "SIP/2.0 401 Unauthorized", call, user, "1 REGISTER", "");
        send_sip(s, &u, &p, "REGISTER sip:example.net SIP/2.0", call, user, "2 REGISTER", auth);
        send_sip(s, &p, &u, "SIP/2.0 200 OK", call, user, "2 REGISTER", "Expires: 3600\r\n");
        return 4;
    }
    if (pick < 90) { /* a scan from a spoofed source, unanswered */
        send_sip(s, &u, &p, "INVITE sip:100@10.0.0.1 SIP/2.0", call, user, "1 INVITE",
                 "User-Agent: friendly-scanner\r\n");
        return 1;
    }
    /* garbage on the SIP port */
    int n = 40 + (int)(next_random(s) % 400);
    for (int i = 0; i < n; i++)
        s->body[i] = (char)next_random(s);
    send_body(s, &u, &p, (size_t)n);
    return 1;
}

static int connect_udp(const char *hostport)
{
    char host[256];
    const char *colon = strrchr(hostport, ':');
    if (!colon || (size_t)(colon - hostport) >= sizeof host)
        return -1;
    memcpy(host, hostport, (size_t)(colon - hostport));
    host[colon - hostport] = '\0';
    struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *ai;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0)
        return -1;
    int fd = socket(ai->ai_family, SOCK_DGRAM, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        close(fd);
        fd = -1;
    }
    freeaddrinfo(ai);
    return fd;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: soak_sender HOST:PORT SECONDS RATE [SEED]\n");
        return 2;
    }
    double seconds = atof(argv[2]), rate = atof(argv[3]);
    sender_t s = {.rng = argc > 4 ? strtoull(argv[4], NULL, 10) | 1 : 88172645463325252ULL};
    if (seconds <= 0 || seconds > 86400 || rate <= 0 || rate > 1e6) {
        fprintf(stderr, "soak_sender: SECONDS must be in (0, 86400], RATE in (0, 1e6]\n");
        return 2;
    }
    if ((s.fd = connect_udp(argv[1])) < 0) {
        fprintf(stderr, "soak_sender: %s: cannot reach\n", argv[1]);
        return 1;
    }
    double t0 = mono_now(), end = t0 + seconds;
    uint64_t messages = 0;
    /* paced in steps of 1 ms: a step's due messages, then a sleep until the next step */
    for (double now = t0; now < end; now = mono_now()) {
        double due = (now - t0) * rate;
        while ((double)messages < due)
            messages += (uint64_t)one_exchange(&s);
        struct timespec pause = {0, 1000000};
        nanosleep(&pause, NULL);
    }
    double dt = mono_now() - t0;
    printf("soak_messages_sent %llu\nsoak_send_failures %llu\nsoak_rate_msgs_per_s %.0f\n",
           (unsigned long long)s.sent, (unsigned long long)s.failed, (double)s.sent / dt);
    close(s.fd);
    return 0;
}
