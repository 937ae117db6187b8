#include "edge_ingest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "decode.h"
#include "hep.h"
#include "log.h"
#include "monotime.h"
#include "tlsconn.h"

#define BATCH 512
#define DGRAM_MAX 65536
#define VLEN 32 /* datagrams per recvmmsg() */

/* One HEPv3 TCP sender, with what it sent of a packet not yet whole */
typedef struct {
    int fd; /* -1: a free slot */
    endpoint_t peer;
    hep_stream_t stream;
    tls_conn_t *tls; /* a sender to hep_tls_listen; NULL: plain TCP */
    double since;    /* when it connected (monotonic) */
    double last;     /* when a packet of its last gave a message, or it connected */
} hep_conn_t;

/* When every slot is taken, a new sender takes the slot of the one silent longest, if that one
 * has been silent this long: connections that send nothing (a scan, a host gone without a word
 * that keep-alive has not found yet) cannot keep senders out. Silent means no message, not no
 * byte: a stranger trickling a byte every few seconds into each connection, or sending packets
 * without the auth key or with nothing the decoder takes, holds none of them. One evicted so
 * connects again when it next has something to send, as HEP senders do. The same rule frees a slot
 * of a source at its [ingest] hep_tcp_per_source. */
#define HEP_IDLE_EVICT_SECONDS 10.0

/* A TLS sender that has not finished its handshake by then is closed: connections that never
 * start one would otherwise hold the 64 slots, and an open TLS port is reachable by anyone. */
#define TLS_HANDSHAKE_SECONDS 10.0

typedef struct {
    source_t src;
    decode_t *dec;
    skips_t skips;
    ingest_t *owner;
    uint64_t index;
    const char *name;
} feed_t;

struct ingest {
    const edge_config_t *c;
    edge_metrics_t *metrics;
    ingest_emit_fn emit;
    void *ctx;
    int hep_fd, udp_fd, hep_tcp_fd, hep_tls_fd;
    endpoint_t hep_local, udp_local, hep_tcp_local, hep_tls_local;
    tls_creds_t *tls;                     /* hep_tls_listen's certificate, and client CAs */
    log_limit_t tls_log;                  /* senders whose TLS failed, named ten a minute */
    hep_conn_t conns[INGEST_HEP_TCP_MAX]; /* plain and TLS senders alike */
    size_t nconns;
    pcap_t *live, *file;
    int live_fd, live_link, file_link;
    feed_t hep, udp, live_feed, file_feed;
    bool replay_done, replay_started;
    double replay_t0_wall, replay_t0_cap;
    struct pcap_pkthdr *pending_hdr; /* next replay packet, read ahead while pacing */
    const u_char *pending_data;
    endpoint_t sender; /* the HEP feed's current packet came from here (outer address) */
    double sender_now; /* and then (Unix seconds) */
    uint8_t *scratch;  /* inflated HEP payloads */
    uint8_t *bufs;     /* VLEN datagram buffers */
    struct mmsghdr mm[VLEN];
    struct iovec iov[VLEN];
    struct sockaddr_storage addrs[VLEN];
    union {
        char buf[CMSG_SPACE(sizeof(uint32_t))];
        struct cmsghdr align;
    } ctl[VLEN];
};

static void on_message(void *p, const msg_t *m)
{
    feed_t *f = p;
    if (f == &f->owner->hep) {
        edge_senders_t *s = f->owner->metrics->senders;
        edge_senders_count(s, &f->owner->sender, f->owner->sender_now,
                           m->len >= 8 && !memcmp(m->data, "SIP/2.0 ", 8));
        if (edge_senders_copy(s, &f->owner->sender, m, f->owner->sender_now))
            return; /* another sender's copy of a message judged already */
    }
    msg_t copy = *m;
    copy.input = f->name;
    copy.index = f->index++;
    f->owner->emit(f->owner->ctx, f->src, &copy);
}

static int feed_init(feed_t *f, ingest_t *in, source_t src, const char *name, bool sniff)
{
    decode_opts_t o;
    decode_opts_default(&o);
    unsigned lo, hi;
    if (sscanf(in->c->sip_ports, "%u-%u", &lo, &hi) == 2) {
        o.port_lo = (uint16_t)lo;
        o.port_hi = (uint16_t)hi;
    }
    o.max_msg = (size_t)in->c->max_message;
    o.tcp_streams = (int)in->c->tcp_streams;
    o.tcp_memory = (size_t)in->c->tcp_memory_mb << 20;
    o.keep_copies = in->c->keep_copies;
    o.hep_only = src == SRC_HEP; /* HEPv1 and v2 have no magic, but here every datagram is HEP */
    o.sniff = sniff || o.sniff;
    f->src = src;
    f->owner = in;
    f->name = name;
    f->dec = decode_new(&o, &f->skips, on_message, f);
    return f->dec ? 0 : -1;
}

/* Closes a feed; a network feed names what it skipped and why (a replay did at its end). */
static void feed_close(feed_t *f)
{
    if (f->dec) {
        decode_flush(f->dec);
        decode_destroy(&f->dec);
        if (f->src != SRC_PCAP)
            skips_print(&f->skips, f->name, stderr);
    }
    skips_free(&f->skips);
}

static void sockaddr_to_endpoint(const struct sockaddr_storage *ss, endpoint_t *ep)
{
    memset(ep, 0, sizeof *ep);
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        ep->family = 4;
        memcpy(ep->addr, &a->sin_addr, 4);
        ep->port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        ep->family = 6;
        memcpy(ep->addr, &a->sin6_addr, 16);
        ep->port = ntohs(a->sin6_port);
    }
}

/* The socket address of a numeric HOST:PORT; its length, or 0 with the reason in err. */
static socklen_t listen_address(const char *what, const char *hostport, struct sockaddr_storage *ss,
                                char *err, size_t errlen)
{
    socklen_t sl = edge_hostport_sockaddr(hostport, ss);
    if (!sl)
        snprintf(err, errlen, "%s = %s: expected a numeric IPV4:PORT or [IPV6]:PORT", what,
                 hostport);
    return sl;
}

/* Binds the socket fd (-1: it could not be made) to ss, and listens on it when it is a
 * stream; returns it with the bound endpoint in local, or -1 with the reason in err. */
static int bind_socket(int fd, bool stream, struct sockaddr_storage *ss, socklen_t sl,
                       const char *what, const char *hostport, endpoint_t *local, char *err,
                       size_t errlen)
{
    if (fd < 0 || bind(fd, (struct sockaddr *)ss, sl) != 0 || (stream && listen(fd, 64) != 0)) {
        snprintf(err, errlen, "%s = %s: %s", what, hostport, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    sl = sizeof *ss;
    getsockname(fd, (struct sockaddr *)ss, &sl);
    sockaddr_to_endpoint(ss, local);
    return fd;
}

/* Binds a non-blocking UDP socket to HOST:PORT; fills the bound endpoint. */
static int bind_udp(const char *what, const char *hostport, endpoint_t *local, char *err,
                    size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = listen_address(what, hostport, &ss, err, errlen);
    if (!sl)
        return -1;
    int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int rcvbuf = 8 << 20, one = 1;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
        /* the kernel tells how many datagrams it dropped for want of buffer space */
        setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
    }
    return bind_socket(fd, false, &ss, sl, what, hostport, local, err, errlen);
}

/* A non-blocking TCP socket listening on HOST:PORT; fills the bound endpoint. */
static int listen_tcp(const char *what, const char *hostport, endpoint_t *local, char *err,
                      size_t errlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = listen_address(what, hostport, &ss, err, errlen);
    if (!sl)
        return -1;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one); /* a restart rebinds */
    return bind_socket(fd, true, &ss, sl, what, hostport, local, err, errlen);
}

/* Linux's any device offers cooked headers v1 and v2; v2 names each packet's interface, so
 * that decode tells the copies of a packet on several interfaces from a flood of identical
 * packets on one (decode.h). Other devices keep their own link type. */
static void prefer_cooked_v2(pcap_t *p)
{
    int *links = NULL;
    int n = pcap_list_datalinks(p, &links);
    bool v2 = false;
    for (int i = 0; i < n; i++)
        v2 = v2 || links[i] == DLT_LINUX_SLL2;
    if (n > 0)
        pcap_free_datalinks(links);
    if (v2 && pcap_datalink(p) == DLT_LINUX_SLL)
        pcap_set_datalink(p, DLT_LINUX_SLL2);
}

static int open_live(ingest_t *in, char *err, size_t errlen)
{
    char perr[PCAP_ERRBUF_SIZE] = "";
    pcap_t *p = pcap_create(in->c->interface, perr);
    if (!p) {
        snprintf(err, errlen, "interface %s: %s", in->c->interface, perr);
        return -1;
    }
    /* immediate mode gives a ring of snaplen-sized frames: ring size / snaplen packets fit */
    pcap_set_snaplen(p, (int)in->c->snaplen);
    pcap_set_promisc(p, 1);
    pcap_set_immediate_mode(p, 1);
    pcap_set_buffer_size(p, (int)(in->c->capture_mb << 20));
    struct bpf_program prog;
    bool active = pcap_activate(p) >= 0;
    if (active)
        prefer_cooked_v2(p); /* before the filter, which is compiled for the link type */
    if (!active || pcap_compile(p, &prog, in->c->bpf, 1, PCAP_NETMASK_UNKNOWN) != 0 ||
        pcap_setfilter(p, &prog) != 0 || pcap_setnonblock(p, 1, perr) != 0) {
        snprintf(err, errlen, "interface %s: %s", in->c->interface, pcap_geterr(p));
        pcap_close(p);
        return -1;
    }
    pcap_freecode(&prog);
    in->live = p;
    in->live_link = pcap_datalink(p);
    in->live_fd = pcap_get_selectable_fd(p);
    if (in->live_fd < 0) {
        snprintf(err, errlen, "interface %s: cannot be polled", in->c->interface);
        return -1;
    }
    return 0;
}

tls_creds_t *ingest_tls_creds(const edge_config_t *c, char *err, size_t errlen)
{
    char why[1200];
    tls_creds_t *t =
        tls_server_creds(c->hep_tls_cert, c->hep_tls_key, c->hep_tls_client_ca, why, sizeof why);
    if (!t)
        snprintf(err, errlen, "[ingest] hep_tls_listen: %s", why);
    return t;
}

long long ingest_tls_expiry(const ingest_t *in)
{
    return in->tls ? tls_creds_expiry(in->tls) : -1;
}

bool ingest_takes_tls(const ingest_t *in)
{
    return in->tls != NULL;
}

void ingest_replace_tls(ingest_t *in, tls_creds_t *creds)
{
    tls_creds_free(&in->tls); /* the senders connected keep them through their sessions */
    in->tls = creds;
}

/* hep_tls_listen: the certificate first, so that a bad one is named before a port is taken. */
static int open_tls(ingest_t *in, char *err, size_t errlen)
{
    const edge_config_t *c = in->c;
    if (!(in->tls = ingest_tls_creds(c, err, errlen)))
        return -1;
    in->hep_tls_fd =
        listen_tcp("[ingest] hep_tls_listen", c->hep_tls_listen, &in->hep_tls_local, err, errlen);
    return in->hep_tls_fd < 0 ? -1 : 0;
}

ingest_t *ingest_new(const edge_config_t *c, edge_metrics_t *metrics, ingest_emit_fn emit,
                     void *ctx, char *err, size_t errlen)
{
    ingest_t *in = calloc(1, sizeof *in);
    if (!in) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    in->c = c;
    in->metrics = metrics;
    in->emit = emit;
    in->ctx = ctx;
    in->hep_fd = in->udp_fd = in->live_fd = in->hep_tcp_fd = in->hep_tls_fd = -1;
    log_limit_init(&in->tls_log, 10, 60, "HEP senders whose TLS failed");
    for (size_t i = 0; i < INGEST_HEP_TCP_MAX; i++)
        in->conns[i].fd = -1;
    in->replay_done = true;
    in->scratch = malloc(DGRAM_MAX * 4);
    in->bufs = malloc((size_t)VLEN * DGRAM_MAX);
    if (!in->scratch || !in->bufs)
        goto fail_oom;
    if ((c->hep_listen[0] || c->hep_tcp_listen[0] || c->hep_tls_listen[0]) &&
        feed_init(&in->hep, in, SRC_HEP, "hep", false) != 0)
        goto fail_oom;
    if (c->hep_listen[0]) {
        in->hep_fd = bind_udp("[ingest] hep_listen", c->hep_listen, &in->hep_local, err, errlen);
        if (in->hep_fd < 0)
            goto fail;
    }
    if (c->hep_tcp_listen[0]) {
        in->hep_tcp_fd = listen_tcp("[ingest] hep_tcp_listen", c->hep_tcp_listen,
                                    &in->hep_tcp_local, err, errlen);
        if (in->hep_tcp_fd < 0)
            goto fail;
    }
    if (c->hep_tls_listen[0] && open_tls(in, err, errlen) != 0)
        goto fail;
    if (c->udp_listen[0]) {
        in->udp_fd = bind_udp("[ingest] udp_listen", c->udp_listen, &in->udp_local, err, errlen);
        if (in->udp_fd < 0 || feed_init(&in->udp, in, SRC_UDP, "udp", true) != 0)
            goto fail;
    }
    if (c->interface[0]) {
        if (open_live(in, err, errlen) != 0 ||
            feed_init(&in->live_feed, in, SRC_LIVE, c->interface, false) != 0)
            goto fail;
    }
    if (c->pcap_file[0]) {
        char perr[PCAP_ERRBUF_SIZE] = "";
        in->file = pcap_open_offline(c->pcap_file, perr);
        if (!in->file) {
            snprintf(err, errlen, "[ingest] pcap_file = %s: %s", c->pcap_file, perr);
            goto fail;
        }
        in->file_link = pcap_datalink(in->file);
        in->replay_done = false;
        if (feed_init(&in->file_feed, in, SRC_PCAP, c->pcap_file, false) != 0)
            goto fail_oom;
    }
    return in;
fail_oom:
    snprintf(err, errlen, "out of memory");
fail:
    ingest_destroy(&in);
    return NULL;
}

void ingest_destroy(ingest_t **self)
{
    ingest_t *in = *self;
    if (!in)
        return;
    feed_close(&in->hep);
    feed_close(&in->udp);
    feed_close(&in->live_feed);
    feed_close(&in->file_feed);
    if (in->hep_fd >= 0)
        close(in->hep_fd);
    for (size_t i = 0; i < INGEST_HEP_TCP_MAX; i++)
        if (in->conns[i].fd >= 0) {
            tls_conn_free(&in->conns[i].tls, false);
            close(in->conns[i].fd);
            hep_stream_free(&in->conns[i].stream);
        }
    if (in->hep_tcp_fd >= 0)
        close(in->hep_tcp_fd);
    if (in->hep_tls_fd >= 0)
        close(in->hep_tls_fd);
    tls_creds_free(&in->tls);
    log_limit_flush(&in->tls_log, mono_now(), true);
    log_limit_destroy(&in->tls_log);
    if (in->udp_fd >= 0)
        close(in->udp_fd);
    if (in->live)
        pcap_close(in->live);
    if (in->file)
        pcap_close(in->file);
    free(in->scratch);
    free(in->bufs);
    free(in);
    *self = NULL;
}

int ingest_fds(const ingest_t *in, int *fds, int max)
{
    int n = 0;
    if (in->hep_fd >= 0 && n < max)
        fds[n++] = in->hep_fd;
    if (in->udp_fd >= 0 && n < max)
        fds[n++] = in->udp_fd;
    if (in->live_fd >= 0 && n < max)
        fds[n++] = in->live_fd;
    if (in->hep_tcp_fd >= 0 && n < max)
        fds[n++] = in->hep_tcp_fd;
    if (in->hep_tls_fd >= 0 && n < max)
        fds[n++] = in->hep_tls_fd;
    for (size_t i = 0; i < INGEST_HEP_TCP_MAX && n < max; i++)
        if (in->conns[i].fd >= 0)
            fds[n++] = in->conns[i].fd;
    return n;
}

/* What the capture and replay feeds' TCP streams hold (the UDP feeds have none). */
static void note_tcp_held(ingest_t *in)
{
    size_t held = 0;
    if (in->live_feed.dec)
        held += decode_tcp_held(in->live_feed.dec);
    if (in->file_feed.dec)
        held += decode_tcp_held(in->file_feed.dec);
    atomic_store(&in->metrics->tcp_held, held);
}

/* A cooked capture's copies are not broken input: counted apart from the skips. */
static uint64_t capture_copies(const ingest_t *in)
{
    return skips_count(&in->live_feed.skips, DECODE_COPY_REASON) +
           skips_count(&in->file_feed.skips, DECODE_COPY_REASON);
}

static uint64_t all_skips(const ingest_t *in)
{
    return skips_total(&in->hep.skips) + skips_total(&in->udp.skips) +
           skips_total(&in->live_feed.skips) + skips_total(&in->file_feed.skips) -
           capture_copies(in);
}

/* Publishes what the readers passed over. */
static void note_skips(ingest_t *in)
{
    atomic_store(&in->metrics->skipped, all_skips(in));
    atomic_store(&in->metrics->capture_copies, capture_copies(in));
}

/* A HEP datagram with the wrong or no auth key, when one is required, goes no further; nor,
 * then, does anything that is not HEPv3 (HEPv1 and v2 cannot carry a key, and would let any
 * sender claim any addresses). */
static bool hep_admitted(ingest_t *in, const uint8_t *p, size_t len)
{
    if (!in->c->hep_auth_key[0])
        return true;
    if (!hep_is_hep3(p, len)) {
        atomic_fetch_add(&in->metrics->hep_rejected, 1);
        debug("datagram on the HEP port that is not HEPv3 while an auth key is required: dropped");
        return false;
    }
    hep_t h;
    const char *why;
    if (hep_decode(p, len, in->scratch, DGRAM_MAX * 4, &h, &why) != 0)
        return true; /* the decoder counts it under its own reason */
    size_t kl = strlen(in->c->hep_auth_key);
    if (h.auth_key && h.auth_key_len == kl && !memcmp(h.auth_key, in->c->hep_auth_key, kl))
        return true;
    atomic_fetch_add(&in->metrics->hep_rejected, 1);
    debug("HEP datagram without the configured auth key: dropped");
    return false;
}

/* The kernel's count of datagrams it dropped on this socket (SO_RXQ_OVFL), when it says. */
static void note_drops(ingest_t *in, feed_t *f, struct msghdr *mh)
{
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm))
        if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SO_RXQ_OVFL) {
            uint32_t dropped; /* cumulative per socket */
            memcpy(&dropped, CMSG_DATA(cm), sizeof dropped);
            atomic_store(&in->metrics->udp_dropped[f->src == SRC_HEP ? 0 : 1], dropped);
        }
}

/* Reads datagrams in batches of VLEN per system call (recvmmsg), up to BATCH in all. */
static void read_datagrams(ingest_t *in, int fd, feed_t *f, const endpoint_t *local)
{
    struct mmsghdr *mm = in->mm;
    for (int total = 0; total < BATCH;) {
        for (int k = 0; k < VLEN; k++) {
            in->iov[k] = (struct iovec){in->bufs + (size_t)k * DGRAM_MAX, DGRAM_MAX};
            mm[k].msg_hdr = (struct msghdr){.msg_name = &in->addrs[k],
                                            .msg_namelen = sizeof in->addrs[k],
                                            .msg_iov = &in->iov[k],
                                            .msg_iovlen = 1,
                                            .msg_control = in->ctl[k].buf,
                                            .msg_controllen = sizeof in->ctl[k].buf};
        }
        int got = recvmmsg(fd, mm, VLEN, MSG_TRUNC | MSG_DONTWAIT, NULL);
        if (got <= 0)
            break;
        total += got;
        struct timespec now; /* one arrival time per batch */
        clock_gettime(CLOCK_REALTIME, &now);
        for (int k = 0; k < got; k++) {
            uint8_t *buf = in->bufs + (size_t)k * DGRAM_MAX;
            size_t n = mm[k].msg_len;
            note_drops(in, f, &mm[k].msg_hdr);
            if (mm[k].msg_hdr.msg_flags & MSG_TRUNC) {
                skips_add(&f->skips, "udp: datagram longer than 65536 bytes");
                continue;
            }
            if (f->src == SRC_HEP && !hep_admitted(in, buf, n))
                continue;
            msg_t t = {0};
            sockaddr_to_endpoint(&in->addrs[k], &t.src);
            t.dst = *local;
            t.transport = TRANSPORT_UDP;
            t.ts_sec = now.tv_sec;
            t.ts_usec = (int32_t)(now.tv_nsec / 1000);
            in->sender = t.src;
            in->sender_now = (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
            decode_udp_payload(f->dec, &t, buf, n);
        }
        if (got < VLEN)
            break;
    }
    note_skips(in);
}

/* --- HEPv3 over TCP --- */

static void close_conn(ingest_t *in, hep_conn_t *c)
{
    tls_conn_free(&c->tls, false);
    close(c->fd);
    hep_stream_free(&c->stream);
    *c = (hep_conn_t){.fd = -1};
    in->nconns--;
    atomic_store(&in->metrics->hep_tcp_connections, in->nconns);
}

/* A sender whose host died without closing would hold its slot for good: TCP keep-alive
 * probes after a minute of silence find it gone within about 90 s, and the read fails. */
static void keep_alive(int fd)
{
    int on = 1, idle = 60, interval = 10, count = 3;
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof interval);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
}

/* Whether two senders are one source for [ingest] hep_tcp_per_source: the same IPv4 address,
 * or the same IPv6 /64, since one host is given a whole /64 as easily as one address. An IPv4
 * address seen through an IPv6 socket (::ffff:a.b.c.d) is compared whole. */
static bool same_source(const endpoint_t *a, const endpoint_t *b)
{
    if (a->family != b->family)
        return false;
    size_t n = a->family == 4 ? 4 : msg_is_v4_mapped(a->addr) ? 16 : 8;
    return !memcmp(a->addr, b->addr, n);
}

static size_t source_connections(const ingest_t *in, const endpoint_t *peer)
{
    size_t n = 0;
    for (size_t i = 0; i < INGEST_HEP_TCP_MAX; i++)
        n += in->conns[i].fd >= 0 && same_source(&in->conns[i].peer, peer);
    return n;
}

/* The slot of the sender silent longest (of source's, unless NULL), closed for a new one, when
 * it has been silent HEP_IDLE_EVICT_SECONDS; NULL when none has. */
static hep_conn_t *evict_idlest(ingest_t *in, double now, const endpoint_t *source)
{
    hep_conn_t *idlest = NULL;
    for (size_t i = 0; i < INGEST_HEP_TCP_MAX; i++) {
        const hep_conn_t *c = &in->conns[i];
        if (c->fd >= 0 && (!source || same_source(&c->peer, source)) &&
            (!idlest || c->last < idlest->last))
            idlest = &in->conns[i];
    }
    if (!idlest || now - idlest->last < HEP_IDLE_EVICT_SECONDS)
        return NULL;
    if (idlest->stream.have)
        skips_add(&in->hep.skips, "hep: TCP connection closed inside a packet");
    if (atomic_fetch_add(&in->metrics->hep_tcp_evicted, 1) % 1000 == 0)
        info("a HEP sender with no message for %.0f s closed for a new one (%d "
             "connections at most, hep_tcp_per_source %ld; logged once a thousand)",
             now - idlest->last, INGEST_HEP_TCP_MAX, in->c->hep_tcp_per_source);
    close_conn(in, idlest);
    return idlest;
}

/* A slot for a new sender from peer: a free one, else one a silent sender gives up (its own
 * source's when that source is at its limit); NULL: the sender is refused, and why. */
static hep_conn_t *slot_for(ingest_t *in, const endpoint_t *peer, double now, const char **why)
{
    long per_source = in->c->hep_tcp_per_source;
    if (per_source > 0 && source_connections(in, peer) >= (size_t)per_source) {
        hep_conn_t *c = evict_idlest(in, now, peer);
        if (!c) {
            atomic_fetch_add(&in->metrics->hep_tcp_source_limited, 1);
            *why = "its source holds [ingest] hep_tcp_per_source connections already";
        }
        return c;
    }
    for (size_t i = 0; i < INGEST_HEP_TCP_MAX; i++)
        if (in->conns[i].fd < 0)
            return &in->conns[i];
    hep_conn_t *c = evict_idlest(in, now, NULL);
    if (!c)
        *why = "too many connections";
    return c;
}

/* Takes the senders waiting to connect to listen_fd (hep_tcp_listen's or hep_tls_listen's,
 * whose senders start a TLS session); one past INGEST_HEP_TCP_MAX in all, or past
 * hep_tcp_per_source from one source, is closed at once unless a silent one gives its slot. */
static void accept_senders(ingest_t *in, int listen_fd)
{
    bool tls = listen_fd == in->hep_tls_fd;
    const char *what = tls ? "hep_tls_listen" : "hep_tcp_listen";
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        int fd = accept4(listen_fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED)
                warning("[ingest] %s: accept: %s", what, strerror(errno));
            if (errno == ECONNABORTED || errno == EINTR)
                continue;
            return;
        }
        double now = mono_now();
        endpoint_t peer;
        sockaddr_to_endpoint(&ss, &peer);
        const char *why = "out of memory";
        hep_conn_t *c = slot_for(in, &peer, now, &why);
        hep_stream_t stream = {0};
        tls_conn_t *session = c && tls ? tls_server_session(in->tls, fd) : NULL;
        if (!c || (tls && !session) || hep_stream_init(&stream) != 0) {
            tls_conn_free(&session, false);
            close(fd);
            if (atomic_fetch_add(&in->metrics->hep_tcp_refused, 1) % 1000 == 0) {
                char name[MSG_ENDPOINT_STRLEN];
                msg_endpoint_format(&peer, name);
                warning("HEP sender %s over TCP refused: %s (%d in all at most; this is logged "
                        "once a thousand)",
                        name, why, INGEST_HEP_TCP_MAX);
            }
            continue;
        }
        keep_alive(fd);
        *c = (hep_conn_t){.fd = fd, .stream = stream, .tls = session, .since = now, .last = now};
        c->peer = peer;
        in->nconns++;
        atomic_store(&in->metrics->hep_tcp_connections, in->nconns);
    }
}

/* A whole packet from a sender, read as a datagram is */
typedef struct {
    ingest_t *in;
    const hep_conn_t *c;
    struct timespec now;
} stream_read_t;

static void on_stream_packet(void *ctx, const uint8_t *p, size_t len)
{
    stream_read_t *r = ctx;
    if (!hep_admitted(r->in, p, len))
        return;
    msg_t t = {0};
    t.src = r->c->peer;
    t.dst = r->c->tls ? r->in->hep_tls_local : r->in->hep_tcp_local;
    t.transport = TRANSPORT_TCP;
    t.ts_sec = r->now.tv_sec;
    t.ts_usec = (int32_t)(r->now.tv_nsec / 1000);
    r->in->sender = r->c->peer;
    r->in->sender_now = (double)r->now.tv_sec + (double)r->now.tv_nsec * 1e-9;
    decode_udp_payload(r->in->hep.dec, &t, p, len);
}

/* A TLS sender whose handshake or session failed (no certificate, one no client CA issued, not
 * TLS at all): counted, named within the log's budget, closed. */
static void tls_failed(ingest_t *in, hep_conn_t *c, const char *why)
{
    atomic_fetch_add(&in->metrics->hep_tls_failed, 1);
    if (log_limit_take(&in->tls_log, mono_now())) {
        char peer[MSG_ENDPOINT_STRLEN];
        msg_endpoint_format(&c->peer, peer);
        warning("HEP sender %s over TLS: %s (connection closed)", peer, why);
    }
    if (c->stream.have)
        skips_add(&in->hep.skips, "hep: TCP connection closed inside a packet");
    close_conn(in, c);
}

/* Reads what a sender sent, a bounded amount a turn. A stream that starts no HEPv3 packet
 * where one should start is closed: HEP has no marker to find the next packet by. */
static void read_stream(ingest_t *in, hep_conn_t *c)
{
    stream_read_t r = {in, c, {0, 0}};
    /* what a TLS session decrypted and holds, poll() cannot announce: it is read now, and it
     * is at most a record */
    for (int turn = 0; c->fd >= 0 && (turn < 16 || (c->tls && tls_conn_pending(c->tls))); turn++) {
        ssize_t n;
        if (c->tls) {
            const char *why;
            n = tls_conn_read(c->tls, hep_stream_tail(&c->stream), hep_stream_room(&c->stream),
                              &why);
            if (n == TLS_AGAIN)
                break;
            if (n < 0) {
                tls_failed(in, c, why);
                break;
            }
        } else {
            n = read(c->fd, hep_stream_tail(&c->stream), hep_stream_room(&c->stream));
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
        }
        if (n <= 0) { /* the sender closed, or the connection broke */
            if (c->stream.have)
                skips_add(&in->hep.skips, "hep: TCP connection closed inside a packet");
            close_conn(in, c);
            break;
        }
        clock_gettime(CLOCK_REALTIME, &r.now);
        uint64_t messages = in->hep.index; /* what the HEP feed has given so far */
        if (hep_stream_take(&c->stream, (size_t)n, on_stream_packet, &r) != 0) {
            skips_add(&in->hep.skips, "hep: TCP stream not HEPv3 (connection closed)");
            atomic_fetch_add(&in->metrics->hep_rejected, 1);
            close_conn(in, c);
            break;
        }
        if (in->hep.index != messages)
            c->last = mono_now();
    }
    note_skips(in);
}

static void on_live_packet(u_char *user, const struct pcap_pkthdr *h, const u_char *data)
{
    ingest_t *in = (ingest_t *)user;
    decode_packet(in->live_feed.dec, in->live_link, h->ts.tv_sec, (int32_t)h->ts.tv_usec, data,
                  h->caplen, h->len);
}

void ingest_on_readable(ingest_t *in, int fd)
{
    if (fd == in->hep_fd)
        read_datagrams(in, fd, &in->hep, &in->hep_local);
    else if (fd == in->hep_tcp_fd || fd == in->hep_tls_fd)
        accept_senders(in, fd);
    else if (fd == in->udp_fd)
        read_datagrams(in, fd, &in->udp, &in->udp_local);
    else if (fd == in->live_fd) {
        if (pcap_dispatch(in->live, BATCH, on_live_packet, (u_char *)in) < 0)
            warning("interface %s: %s", in->c->interface, pcap_geterr(in->live));
        struct pcap_stat ps;
        if (pcap_stats(in->live, &ps) == 0)
            atomic_store(&in->metrics->capture_dropped, (uint64_t)ps.ps_drop + ps.ps_ifdrop);
        note_skips(in);
        note_tcp_held(in);
    } else {
        for (size_t i = 0; i < INGEST_HEP_TCP_MAX; i++)
            if (in->conns[i].fd == fd) {
                read_stream(in, &in->conns[i]);
                break;
            }
    }
}

static void finish_replay(ingest_t *in)
{
    in->replay_done = true;
    decode_flush(in->file_feed.dec);
    note_skips(in);
    note_tcp_held(in);
    skips_print(&in->file_feed.skips, in->c->pcap_file, stderr);
    info("replay of %s ended: %llu messages", in->c->pcap_file,
         (unsigned long long)in->file_feed.index);
}

double ingest_replay(ingest_t *in, double now)
{
    if (in->replay_done)
        return -1;
    for (int i = 0; i < 4 * BATCH; i++) {
        if (!in->pending_hdr) {
            int r = pcap_next_ex(in->file, &in->pending_hdr, &in->pending_data);
            if (r != 1) {
                if (r == PCAP_ERROR)
                    warning("%s: %s (the rest of the file is not read)", in->c->pcap_file,
                            pcap_geterr(in->file));
                in->pending_hdr = NULL;
                finish_replay(in);
                return -1;
            }
        }
        double ts = (double)in->pending_hdr->ts.tv_sec + in->pending_hdr->ts.tv_usec * 1e-6;
        if (!in->replay_started) {
            in->replay_started = true;
            in->replay_t0_wall = now;
            in->replay_t0_cap = ts;
        }
        if (in->c->pcap_pace) {
            double due = in->replay_t0_wall + (ts - in->replay_t0_cap);
            if (due > now)
                return due - now;
        }
        decode_packet(in->file_feed.dec, in->file_link, in->pending_hdr->ts.tv_sec,
                      (int32_t)in->pending_hdr->ts.tv_usec, in->pending_data,
                      in->pending_hdr->caplen, in->pending_hdr->len);
        in->pending_hdr = NULL;
    }
    note_skips(in);
    note_tcp_held(in);
    return 0;
}

bool ingest_replay_done(const ingest_t *in)
{
    return in->replay_done;
}

unsigned ingest_hep_port(const ingest_t *in)
{
    return in->hep_fd >= 0 ? in->hep_local.port : 0;
}

void ingest_tick(ingest_t *in, double now)
{
    for (size_t i = 0; i < INGEST_HEP_TCP_MAX; i++) {
        hep_conn_t *c = &in->conns[i];
        if (c->fd >= 0 && c->tls && !tls_conn_handshaken(c->tls) &&
            now - c->since >= TLS_HANDSHAKE_SECONDS)
            tls_failed(in, c, "no TLS handshake within 10 s");
    }
    log_limit_flush(&in->tls_log, now, false);
}

unsigned ingest_hep_tls_port(const ingest_t *in)
{
    return in->hep_tls_fd >= 0 ? in->hep_tls_local.port : 0;
}

unsigned ingest_hep_tcp_port(const ingest_t *in)
{
    return in->hep_tcp_fd >= 0 ? in->hep_tcp_local.port : 0;
}

unsigned ingest_udp_port(const ingest_t *in)
{
    return in->udp_fd >= 0 ? in->udp_local.port : 0;
}
