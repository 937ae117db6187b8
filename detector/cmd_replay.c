/*
 * sipguard replay: send the SIP messages of captures to a live edge, as HEPv3
 * datagrams (what Kamailio siptrace sends), as HEPv3 over one TCP connection
 * (what OpenSIPS proto_hep and heplify can send), plain or in TLS, or as plain
 * UDP (a mirror port), at a bounded rate. For trying an edge out, load tests and
 * integration tests.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cmdutil.h"
#include "commands.h"
#include "hep.h"
#include "monotime.h"
#include "tlsconn.h"

static const cliopt_t replay_opts[] = {
    {"hep", 0, "HOST:PORT", "send HEPv3 datagrams here", NULL},
    {"hep-tcp", 0, "HOST:PORT", "send HEPv3 packets over one TCP connection to here", NULL},
    {"hep-tls", 0, "HOST:PORT",
     "send HEPv3 packets over one TLS connection to here; the edge's certificate must be "
     "issued to HOST",
     NULL},
    {"tls-ca", 0, "FILE", "PEM CAs the edge's certificate must chain to (--hep-tls)",
     "the system's"},
    {"tls-cert", 0, "FILE", "PEM certificate to present (--hep-tls; with --tls-key)", NULL},
    {"tls-key", 0, "FILE", "PEM private key of --tls-cert", NULL},
    {"udp", 0, "HOST:PORT", "send the bare SIP messages as UDP datagrams here", NULL},
    {"bind", 0, "ADDRESS",
     "send from this local address (numeric; to try per-source limits, bans or allowed "
     "sources, whose UDP mirror sees it as the messages' source)",
     NULL},
    {"rate", 'r', "N", "messages per second; 0 = as fast as possible", "10000"},
    {"auth-key", 0, "KEY", "HEPv3 auth key to put in every packet", NULL},
    {"capture-id", 0, "N", "HEPv3 capture agent id", "1"},
    CMD_INPUT_OPTIONS,
    {"quiet", 'q', NULL, "print no summary", NULL},
    {"help", 'h', NULL, "show this help", NULL},
    {0},
};

static const clicmd_t replay_cmd = {
    "sipguard replay (--hep | --hep-tcp | --hep-tls | --udp HOST:PORT) [OPTIONS] INPUT...",
    "Sends every SIP message of the inputs to a running sipguard-edge, either wrapped in\n"
    "HEPv3 with the original addresses and timestamps (as Kamailio siptrace and heplify do),\n"
    "in datagrams or over one TCP connection (plain or TLS), or bare as UDP datagrams (as a\n"
    "mirror port receives them), at a bounded rate. Messages longer than a HEP packet or a\n"
    "datagram can carry are counted and left out.",
    replay_opts,
    "exit status: 0 success, 1 failure (cannot send), 2 usage error, 3 an input could not\n"
    "be read.\n\n"
    "example: sipguard replay --hep 127.0.0.1:9060 --rate 5000 today.pcap",
};

typedef struct {
    int fd;
    struct sockaddr_storage to;
    socklen_t tolen;
    bool hep, tcp;
    tls_creds_t *creds; /* --hep-tls: the CAs and certificate, which must outlive the session */
    tls_conn_t *tls;    /* the session over the TCP connection */
    char host[256];     /* the destination's host, which its certificate must name */
    const char *auth_key;
    uint32_t capture_id;
    double rate, t0;
    uint64_t sent, too_long, errors;
    uint8_t buf[65536];
} replay_ctx_t;

/* Binds the socket to the numeric local address from; 0, or with the reason in err EXIT_USAGE
 * (not an address of the destination's family) or EXIT_FAIL (not one of this host's). */
static int bind_local(const replay_ctx_t *c, const char *from, char *err, size_t errlen)
{
    struct sockaddr_storage ss = {0};
    socklen_t len = 0;
    ss.ss_family = c->to.ss_family;
    if (c->to.ss_family == AF_INET &&
        inet_pton(AF_INET, from, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
        len = sizeof(struct sockaddr_in);
    else if (c->to.ss_family == AF_INET6 &&
             inet_pton(AF_INET6, from, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
        len = sizeof(struct sockaddr_in6);
    if (!len) {
        snprintf(err, errlen, "--bind %s: expected a numeric %s address, as the destination's",
                 from, c->to.ss_family == AF_INET ? "IPv4" : "IPv6");
        return EXIT_USAGE;
    }
    if (bind(c->fd, (struct sockaddr *)&ss, len) != 0) {
        snprintf(err, errlen, "--bind %s: %s", from, strerror(errno));
        return EXIT_FAIL;
    }
    return 0;
}

/* The destination HOST:PORT (or [IPV6]:PORT) resolved, and a socket for it in c; 0, or -1 with
 * the reason in err (the port is checked here: getaddrinfo takes 70000 as 4464). */
static int resolve(const char *hostport, replay_ctx_t *c, char *err, size_t errlen)
{
    char *host = c->host;
    const char *colon = strrchr(hostport, ':');
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : 0;
    if (!colon || colon == hostport || (size_t)(colon - hostport) >= sizeof c->host ||
        !isdigit((unsigned char)colon[1]) || *end || port < 1 || port > 65535) {
        snprintf(err, errlen, "expected HOST:PORT or [IPV6]:PORT with a port from 1 to 65535");
        return -1;
    }
    snprintf(host, sizeof c->host, "%.*s", (int)(colon - hostport), hostport);
    if (host[0] == '[') { /* [v6] */
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = {0}, *ai;
    hints.ai_socktype = c->tcp ? SOCK_STREAM : SOCK_DGRAM;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    memcpy(&c->to, ai->ai_addr, ai->ai_addrlen);
    c->tolen = ai->ai_addrlen;
    c->fd = socket(ai->ai_family, hints.ai_socktype, 0);
    freeaddrinfo(ai);
    if (c->fd < 0)
        snprintf(err, errlen, "socket: %s", strerror(errno));
    return c->fd < 0 ? -1 : 0;
}

/* Writes all of a packet to the TCP connection; 0 or -1. */
static int send_stream(replay_ctx_t *c, const uint8_t *p, size_t len)
{
    const char *why;
    if (c->tls && tls_conn_write(c->tls, p, len, &why) != 0) {
        fprintf(stderr, "sipguard replay: send: %s\n", why);
        return -1;
    }
    while (!c->tls && len > 0) {
        ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "sipguard replay: send: %s\n", strerror(errno));
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int send_one(void *p, const msg_t *m)
{
    replay_ctx_t *c = p;
    const void *data = m->data;
    size_t len = m->len;
    if (c->hep) {
        msg_t a = *m;
        if (a.src.family != 4 && a.src.family != 6) /* a raw message file: no addresses */
            a.src.family = a.dst.family = 4;        /* so 0.0.0.0, which HEP can carry */
        len = hep_encode(&a, c->capture_id, c->auth_key, c->buf, sizeof c->buf);
        data = c->buf;
    }
    if (len == 0 || len > (c->tcp ? 65535 : 65507)) {
        c->too_long++;
        return 0;
    }
    if (c->rate > 0) { /* pace: never ahead of sent / rate */
        double due = c->t0 + (double)c->sent / c->rate;
        for (double t = mono_now(); t < due; t = mono_now()) {
            struct timespec ts = {0, (long)((due - t) * 1e9)};
            nanosleep(&ts, NULL);
        }
    }
    if (c->tcp) {
        if (send_stream(c, data, len) != 0)
            return -1;
        c->sent++;
        return 0;
    }
    while (sendto(c->fd, data, len, 0, (struct sockaddr *)&c->to, c->tolen) < 0) {
        if (errno == ENOBUFS || errno == EAGAIN) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
            continue;
        }
        if (errno != ECONNREFUSED) {
            fprintf(stderr, "sipguard replay: send: %s\n", strerror(errno));
            return -1;
        }
        c->errors++; /* nobody listening yet: counted, not fatal */
        break;
    }
    c->sent++;
    return 0;
}

/* --hep-tls: a TLS session on the connected socket, the edge's certificate checked against the
 * CAs (the system's when none is given) and the host; 0, or -1 with the reason. */
static int start_tls(replay_ctx_t *c, const char *ca, const char *cert, const char *key, char *err,
                     size_t errlen)
{
    if (!(c->creds = tls_client_creds(ca, cert, key, err, errlen)))
        return -1;
    c->tls = tls_client_session(c->creds, c->fd, c->host, 10000, err, errlen);
    return c->tls ? 0 : -1;
}

int cmd_replay(int argc, char **argv)
{
    decode_opts_t dopts;
    decode_opts_default(&dopts);
    static replay_ctx_t c;
    memset(&c, 0, sizeof c);
    c.rate = 10000;
    c.capture_id = 1;
    const char *target = NULL, *arg, *tls_ca = NULL, *tls_cert = NULL, *tls_key = NULL;
    const char *from = NULL;
    bool tls = false;
    bool quiet = false;
    const char *name;
    int status;
    while ((name = cmd_next_option(&replay_cmd, argc, argv, &arg, &dopts, NULL, &status))) {
        long n;
        if (!strcmp(name, "hep") || !strcmp(name, "hep-tcp") || !strcmp(name, "hep-tls") ||
            !strcmp(name, "udp")) {
            if (target) {
                fprintf(stderr,
                        "sipguard replay: give one of --hep, --hep-tcp, --hep-tls and --udp\n");
                return EXIT_USAGE;
            }
            target = arg;
            c.hep = strcmp(name, "udp") != 0;
            tls = !strcmp(name, "hep-tls");
            c.tcp = tls || !strcmp(name, "hep-tcp");
        } else if (!strcmp(name, "tls-ca")) {
            tls_ca = arg;
        } else if (!strcmp(name, "tls-cert")) {
            tls_cert = arg;
        } else if (!strcmp(name, "tls-key")) {
            tls_key = arg;
        } else if (!strcmp(name, "bind")) {
            from = arg;
        } else if (!strcmp(name, "rate")) {
            if (cliopt_double("rate", arg, 0, 1e9, &c.rate) != 0)
                return EXIT_USAGE;
        } else if (!strcmp(name, "auth-key")) {
            c.auth_key = arg;
        } else if (!strcmp(name, "capture-id")) {
            if (cliopt_int("capture-id", arg, 0, 0xffffffffL, &n) != 0)
                return EXIT_USAGE;
            c.capture_id = (uint32_t)n;
        } else if (!strcmp(name, "quiet")) {
            quiet = true;
        }
    }
    if (status >= 0)
        return status;
    if (!target || optind >= argc) {
        fprintf(stderr, "sipguard replay: %s\nusage: %s\n",
                target ? "no INPUT given" : "--hep, --hep-tcp, --hep-tls or --udp is required",
                replay_cmd.usage);
        return EXIT_USAGE;
    }
    if ((tls_ca || tls_cert || tls_key) && !tls) {
        fprintf(stderr, "sipguard replay: --tls-ca, --tls-cert and --tls-key go with --hep-tls\n");
        return EXIT_USAGE;
    }
    if (!tls_cert != !tls_key) {
        fprintf(stderr, "sipguard replay: --tls-cert and --tls-key go together\n");
        return EXIT_USAGE;
    }
    char err[1200];
    if (resolve(target, &c, err, sizeof err) != 0) {
        fprintf(stderr, "sipguard replay: %s: %s\n", target, err);
        return EXIT_USAGE;
    }
    int bound = from ? bind_local(&c, from, err, sizeof err) : 0;
    if (bound != 0) {
        fprintf(stderr, "sipguard replay: %s\n", err);
        close(c.fd);
        return bound;
    }
    if (c.tcp && connect(c.fd, (struct sockaddr *)&c.to, c.tolen) != 0) {
        fprintf(stderr, "sipguard replay: %s: cannot connect: %s\n", target, strerror(errno));
        close(c.fd);
        return EXIT_FAIL;
    }
    if (tls && start_tls(&c, tls_ca, tls_cert, tls_key, err, sizeof err) != 0) {
        fprintf(stderr, "sipguard replay: %s: %s\n", target, err);
        tls_creds_free(&c.creds);
        close(c.fd);
        return EXIT_FAIL;
    }
    c.t0 = mono_now();
    int failed = 0;
    int loop =
        cmd_for_each_message(argv + optind, argc - optind, &dopts, quiet, send_one, &c, &failed);
    tls_conn_free(&c.tls, true);
    tls_creds_free(&c.creds);
    close(c.fd);
    /* over TCP "sent" means written: a connection that failed may have lost the last ones */
    bool broken = loop != 0 && c.tcp;
    if (!quiet)
        fprintf(stderr, "sent %llu messages in %.2f s%s%s", (unsigned long long)c.sent,
                mono_now() - c.t0,
                broken ? " (then the connection failed: the receiver may not have taken them all)"
                       : "",
                c.too_long || c.errors ? "" : "\n");
    if (!quiet && (c.too_long || c.errors))
        fprintf(stderr, "; %llu too long to send, %llu refused by the receiver\n",
                (unsigned long long)c.too_long, (unsigned long long)c.errors);
    if (loop != 0)
        return EXIT_FAIL;
    return failed ? EXIT_INPUT : EXIT_OK;
}
