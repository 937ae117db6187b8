/*
 * httpd: what the edge's and the overlay's HTTP endpoints share on libmicrohttpd.
 *
 * The listening socket is made here rather than by libmicrohttpd, so that a daemon started
 * again with a new certificate takes the same socket: the port is never closed, and
 * connections made meanwhile wait in its backlog. HTTPS runs from a PEM certificate and key
 * read into memory (libmicrohttpd keeps pointers to them for the daemon's lifetime, so they
 * live here); a SIGHUP reads them again (a renewed certificate written over the old one),
 * and only a pair that loads replaces the running one. An [::] address takes both families.
 */
#ifndef SIPGUARD_HTTPD_H
#define SIPGUARD_HTTPD_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

typedef struct {
    const char *listen_name; /* the listening setting, for messages: "[http] listen" */
    const char *section;     /* where tls_cert and tls_key are set: "[http]" */
    MHD_AccessHandlerCallback handler;
    void *handler_cls;
    MHD_RequestCompletedCallback completed; /* NULL: none */
    void *completed_cls;
    unsigned timeout_s;       /* an idle connection is closed after this; 0: never */
    unsigned max_connections; /* 0: libmicrohttpd's default */
} httpd_opts_t;

typedef struct httpd httpd_t;

/* Listens on addr (hostport, its text, names it in messages) and serves HTTPS with the PEM
 * files cert and key (both empty: plain HTTP). NULL with the reason in err. */
httpd_t *httpd_start(const httpd_opts_t *o, const char *hostport,
                     const struct sockaddr_storage *addr, socklen_t addrlen, const char *cert,
                     const char *key, char *err, size_t errlen);
unsigned httpd_port(const httpd_t *h);
void httpd_stop(httpd_t **self);

/* --check-config: cert and key go together, can be read, and load as a pair. 0, or -1 with
 * the reason in err. */
int httpd_check_tls(const httpd_opts_t *o, const char *cert, const char *key, char *err,
                    size_t errlen);

/* A SIGHUP: cert and key read again (other files, or HTTPS turned on or off). 1 when the daemon
 * now runs with them (started again on its socket: requests in flight are cut, and their
 * clients retry), 0 when they are what it runs with, -1 with the reason in err when they do
 * not read or load (the running pair stays), -2 when the daemon could not be started again at
 * all (the API is down until the next start). */
int httpd_reload_tls(httpd_t *h, const char *cert, const char *key, char *err, size_t errlen);

#endif
