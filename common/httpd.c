#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

struct httpd {
    httpd_opts_t o;
    struct MHD_Daemon *d;
    int fd, family;
    unsigned port;
    char *cert, *key; /* the PEM text the daemon runs with; NULL: plain HTTP */
};

/* A whole small file in memory, or NULL (errno says why; EFBIG: over a megabyte). */
static char *slurp_text(const char *path)
{
    enum { MOST = 1 << 20 }; /* a certificate chain is some KB; a larger file is not one */
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *b = malloc(MOST + 1);
    size_t n = b ? fread(b, 1, MOST + 1, f) : 0;
    bool whole = b && !ferror(f) && n <= MOST;
    fclose(f);
    if (!whole) { /* cut short, it would not load, and say so less plainly */
        free(b);
        errno = EFBIG;
        return NULL;
    }
    b[n] = '\0';
    return b;
}

/* Reads cert and key into *cert_text and *key_text (both NULL when both names are empty: plain
 * HTTP); 0, or -1 with the reason in err. */
static int read_pair(const httpd_opts_t *o, const char *cert, const char *key, char **cert_text,
                     char **key_text, char *err, size_t errlen)
{
    *cert_text = *key_text = NULL;
    if (!cert[0] != !key[0]) {
        snprintf(err, errlen, "%s tls_cert and tls_key go together", o->section);
        return -1;
    }
    if (!cert[0])
        return 0;
    if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
        snprintf(err, errlen, "this libmicrohttpd has no TLS support");
        return -1;
    }
    const char *failed = !(*cert_text = slurp_text(cert)) ? cert
                         : !(*key_text = slurp_text(key)) ? key
                                                          : NULL;
    if (failed) {
        snprintf(err, errlen, "cannot read %s: %s", failed,
                 errno == EFBIG ? "larger than 1 MB, no certificate or key" : strerror(errno));
        free(*cert_text);
        *cert_text = NULL;
        return -1;
    }
    return 0;
}

/* Whether libmicrohttpd takes the pair: a daemon without a socket, stopped at once. */
static bool pair_loads(const httpd_opts_t *o, char *cert, char *key)
{
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_NO_LISTEN_SOCKET | MHD_USE_TLS, 0, NULL, NULL,
                                            o->handler, o->handler_cls, MHD_OPTION_HTTPS_MEM_CERT,
                                            cert, MHD_OPTION_HTTPS_MEM_KEY, key, MHD_OPTION_END);
    if (d)
        MHD_stop_daemon(d);
    return d != NULL;
}

/* A listening TCP socket on addr (hostport in messages); -1 with the reason in err. */
static int listen_socket(httpd_t *h, const char *hostport, const struct sockaddr_storage *addr,
                         socklen_t sl, char *err, size_t errlen)
{
    struct sockaddr_storage ss = *addr;
    h->family = ss.ss_family;
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, zero = 0;
    if (fd >= 0) {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ss.ss_family == AF_INET6) /* [::] takes IPv4 too */
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    }
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, 128) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(err, errlen, "%s = %s: cannot listen: %s", h->o.listen_name, hostport,
                 strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    h->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                             : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

/* The daemon on h's socket, HTTPS with cert and key (NULL: plain), with inter-thread
 * communication so that it can hand its socket back (MHD_quiesce_daemon). */
static struct MHD_Daemon *daemon_on_socket(const httpd_t *h, char *cert, char *key)
{
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC |
                     (h->family == AF_INET6 ? MHD_USE_IPv6 : 0) | (cert ? MHD_USE_TLS : 0);
    struct MHD_OptionItem opts[7];
    size_t n = 0;
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_LISTEN_SOCKET, h->fd, NULL};
    if (h->o.completed) /* a function and its closure: the function as an integer, as the
                         * option arrays of libmicrohttpd want */
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_NOTIFY_COMPLETED, (intptr_t)h->o.completed,
                                            h->o.completed_cls};
    if (h->o.timeout_s)
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, h->o.timeout_s, NULL};
    if (h->o.max_connections)
        opts[n++] =
            (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, h->o.max_connections, NULL};
    if (cert) {
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, cert};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, key};
    }
    opts[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    return MHD_start_daemon(flags, 0, NULL, NULL, h->o.handler, h->o.handler_cls, MHD_OPTION_ARRAY,
                            opts, MHD_OPTION_END);
}

httpd_t *httpd_start(const httpd_opts_t *o, const char *hostport,
                     const struct sockaddr_storage *addr, socklen_t addrlen, const char *cert,
                     const char *key, char *err, size_t errlen)
{
    httpd_t *h = calloc(1, sizeof *h);
    if (!h) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->o = *o;
    h->fd = -1;
    if (read_pair(o, cert, key, &h->cert, &h->key, err, errlen) != 0 ||
        (h->fd = listen_socket(h, hostport, addr, addrlen, err, errlen)) < 0) {
        httpd_stop(&h);
        return NULL;
    }
    if (!(h->d = daemon_on_socket(h, h->cert, h->key))) {
        snprintf(err, errlen, "%s = %s: the HTTP daemon does not start%s", o->listen_name, hostport,
                 h->cert ? " (the certificate and key do not fit together?)" : "");
        httpd_stop(&h);
        return NULL;
    }
    return h;
}

unsigned httpd_port(const httpd_t *h)
{
    return h->port;
}

void httpd_stop(httpd_t **self)
{
    httpd_t *h = *self;
    if (!h)
        return;
    if (h->d)
        MHD_stop_daemon(h->d); /* closes the listening socket it was given */
    else if (h->fd >= 0)
        close(h->fd);
    free(h->cert);
    free(h->key);
    free(h);
    *self = NULL;
}

int httpd_check_tls(const httpd_opts_t *o, const char *cert, const char *key, char *err,
                    size_t errlen)
{
    char *c, *k;
    if (read_pair(o, cert, key, &c, &k, err, errlen) != 0)
        return -1;
    bool bad = c && !pair_loads(o, c, k);
    if (bad)
        snprintf(err, errlen, "%s and %s do not load as a certificate and its key", cert, key);
    free(c);
    free(k);
    return bad ? -1 : 0;
}

static bool same_text(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

int httpd_reload_tls(httpd_t *h, const char *cert, const char *key, char *err, size_t errlen)
{
    char *c, *k;
    if (read_pair(&h->o, cert, key, &c, &k, err, errlen) != 0)
        return -1;
    int rc = 0;
    if (c && !pair_loads(&h->o, c, k)) {
        snprintf(err, errlen, "%s and %s do not load as a certificate and its key", cert, key);
        rc = -1;
    } else if (!same_text(c, h->cert) || !same_text(k, h->key)) {
        MHD_socket fd = MHD_quiesce_daemon(h->d);
        if (fd == MHD_INVALID_SOCKET) {
            snprintf(err, errlen,
                     "the HTTP daemon cannot hand over its socket; the certificate "
                     "changes at the next start");
            rc = -1;
        } else {
            MHD_stop_daemon(h->d);
            if ((h->d = daemon_on_socket(h, c, k))) {
                char *old_c = h->cert, *old_k = h->key;
                h->cert = c, h->key = k;
                c = old_c, k = old_k; /* freed below */
                rc = 1;
            } else if ((h->d = daemon_on_socket(h, h->cert, h->key))) {
                snprintf(err, errlen, "the HTTP daemon does not start with %s and %s", cert, key);
                rc = -1;
            } else {
                snprintf(err, errlen,
                         "the HTTP daemon does not start again; the API is down "
                         "until the next start");
                close(h->fd);
                h->fd = -1;
                rc = -2;
            }
        }
    }
    free(c);
    free(k);
    return rc;
}
