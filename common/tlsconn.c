#include "tlsconn.h"

#include <errno.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

struct tls_creds {
    gnutls_certificate_credentials_t cred;
    bool verify_peer; /* a server that requires client certificates */
    unsigned refs;    /* the owner's, and one per session using them */
};

/* Bytes read from the socket ahead of what GnuTLS asked for: it asks for a record's header and
 * then its body, a system call each, where plain TCP reads 64 KB at once; a HEP sender puts
 * each packet in a record of its own. */
#define TLS_READ_AHEAD 32768

struct tls_conn {
    gnutls_session_t s;
    tls_creds_t *creds;
    int fd;
    bool handshaken, peeked;
    uint8_t *in; /* TLS_READ_AHEAD bytes: in[in_off..in_len) not yet given to GnuTLS */
    size_t in_off, in_len;
    char why[160]; /* a failure's reason, when GnuTLS's own says too little */
};

/* Loads a PEM CA list into c; 0, or -1 with the reason (a file without a certificate in it is
 * one: GnuTLS would take it and then trust nothing). */
static int load_cas(tls_creds_t *c, const char *what, const char *file, char *err, size_t errlen)
{
    if (access(file, R_OK) != 0) {
        snprintf(err, errlen, "%s %s: %s", what, file, strerror(errno));
        return -1;
    }
    int n = gnutls_certificate_set_x509_trust_file(c->cred, file, GNUTLS_X509_FMT_PEM);
    if (n < 0)
        snprintf(err, errlen, "%s %s: %s", what, file, gnutls_strerror(n));
    else if (n == 0)
        snprintf(err, errlen, "%s %s: no PEM certificate in it", what, file);
    return n > 0 ? 0 : -1;
}

static tls_creds_t *creds_new(char *err, size_t errlen)
{
    tls_creds_t *c = calloc(1, sizeof *c);
    if (!c || gnutls_certificate_allocate_credentials(&c->cred) < 0) {
        free(c);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->refs = 1;
    return c;
}

/* Loads a PEM certificate and its key into c; 0, or -1 with the reason. GnuTLS says only "Error
 * while reading file" for either file, so a file that cannot be opened is named first. */
static int load_key_pair(tls_creds_t *c, const char *cert, const char *key, char *err,
                         size_t errlen)
{
    const char *what = access(cert, R_OK) != 0  ? "certificate"
                       : access(key, R_OK) != 0 ? "key"
                                                : NULL;
    if (what) {
        snprintf(err, errlen, "%s %s: %s", what, what[0] == 'c' ? cert : key, strerror(errno));
        return -1;
    }
    int rc = gnutls_certificate_set_x509_key_file(c->cred, cert, key, GNUTLS_X509_FMT_PEM);
    if (rc < 0)
        snprintf(err, errlen, "certificate %s with key %s: %s", cert, key, gnutls_strerror(rc));
    return rc < 0 ? -1 : 0;
}

tls_creds_t *tls_server_creds(const char *cert, const char *key, const char *client_ca, char *err,
                              size_t errlen)
{
    tls_creds_t *c = creds_new(err, errlen);
    if (!c)
        return NULL;
    c->verify_peer = client_ca && client_ca[0];
    if (load_key_pair(c, cert, key, err, errlen) != 0 ||
        (c->verify_peer && load_cas(c, "client CA", client_ca, err, errlen) != 0))
        tls_creds_free(&c);
    return c;
}

tls_creds_t *tls_client_creds(const char *ca, const char *cert, const char *key, char *err,
                              size_t errlen)
{
    tls_creds_t *c = creds_new(err, errlen);
    if (!c)
        return NULL;
    int rc = 0;
    if (ca && ca[0]) {
        rc = load_cas(c, "CA", ca, err, errlen);
    } else if ((rc = gnutls_certificate_set_x509_system_trust(c->cred)) < 0) {
        snprintf(err, errlen, "the system's trusted CAs: %s", gnutls_strerror(rc));
        rc = -1;
    }
    if (rc == 0 && cert && cert[0])
        rc = load_key_pair(c, cert, key, err, errlen);
    if (rc < 0)
        tls_creds_free(&c);
    return c;
}

void tls_creds_free(tls_creds_t **self)
{
    tls_creds_t *c = *self;
    *self = NULL;
    if (!c || --c->refs > 0)
        return;
    gnutls_certificate_free_credentials(c->cred);
    free(c);
}

/* GnuTLS writes with send() and no flags: a peer gone would raise SIGPIPE in a program that
 * does not ignore it (`sipguard replay`), and kill it without a word. */
static ssize_t push_nosignal(gnutls_transport_ptr_t p, const void *data, size_t len)
{
    tls_conn_t *t = p;
    ssize_t n = send(t->fd, data, len, MSG_NOSIGNAL);
    if (n < 0)
        gnutls_transport_set_errno(t->s, errno);
    return n;
}

/* GnuTLS's reads, from what was read ahead, and when that is used up one read of up to
 * TLS_READ_AHEAD bytes. */
static ssize_t pull_ahead(gnutls_transport_ptr_t p, void *data, size_t len)
{
    tls_conn_t *t = p;
    if (t->in_off == t->in_len) {
        ssize_t n = recv(t->fd, t->in, TLS_READ_AHEAD, 0);
        if (n <= 0) {
            if (n < 0)
                gnutls_transport_set_errno(t->s, errno);
            return n;
        }
        t->in_off = 0;
        t->in_len = (size_t)n;
    }
    size_t k = len < t->in_len - t->in_off ? len : t->in_len - t->in_off;
    memcpy(data, t->in + t->in_off, k);
    t->in_off += k;
    return (ssize_t)k;
}

/* Whether a read would find bytes within ms (the client's handshake timeout): those read ahead
 * count, which poll() on the socket cannot see. */
static int pull_ahead_timeout(gnutls_transport_ptr_t p, unsigned int ms)
{
    tls_conn_t *t = p;
    if (t->in_off < t->in_len)
        return 1;
    struct pollfd pfd = {t->fd, POLLIN, 0};
    return poll(&pfd, 1, ms == GNUTLS_INDEFINITE_TIMEOUT ? -1 : (int)ms);
}

long long tls_creds_expiry(const tls_creds_t *c)
{
    gnutls_datum_t der; /* GnuTLS's own copy: not freed here */
    gnutls_x509_crt_t crt;
    if (gnutls_certificate_get_crt_raw(c->cred, 0, 0, &der) < 0 || gnutls_x509_crt_init(&crt) < 0)
        return -1;
    long long t = gnutls_x509_crt_import(crt, &der, GNUTLS_X509_FMT_DER) < 0
                      ? -1
                      : (long long)gnutls_x509_crt_get_expiration_time(crt);
    gnutls_x509_crt_deinit(crt);
    return t;
}

/* A session of the given end on fd with c's credentials and GnuTLS's default priorities. */
static tls_conn_t *session_new(tls_creds_t *c, unsigned end, int fd)
{
    tls_conn_t *t = calloc(1, sizeof *t);
    if (!t || !(t->in = malloc(TLS_READ_AHEAD)) || gnutls_init(&t->s, end) < 0) {
        if (t)
            free(t->in);
        free(t);
        return NULL;
    }
    if (gnutls_set_default_priority(t->s) < 0 ||
        gnutls_credentials_set(t->s, GNUTLS_CRD_CERTIFICATE, c->cred) < 0) {
        tls_conn_free(&t, false);
        return NULL;
    }
    t->creds = c; /* GnuTLS reads them for as long as the session lives */
    c->refs++;
    t->fd = fd;
    gnutls_transport_set_ptr(t->s, t);
    gnutls_transport_set_push_function(t->s, push_nosignal);
    gnutls_transport_set_pull_function(t->s, pull_ahead);
    gnutls_transport_set_pull_timeout_function(t->s, pull_ahead_timeout);
    return t;
}

tls_conn_t *tls_server_session(tls_creds_t *creds, int fd)
{
    tls_conn_t *t = session_new(creds, GNUTLS_SERVER, fd);
    if (t && creds->verify_peer) {
        gnutls_certificate_server_set_request(t->s, GNUTLS_CERT_REQUIRE);
        gnutls_session_set_verify_cert(t->s, NULL, 0); /* the chain, to the client CAs */
    }
    return t;
}

tls_conn_t *tls_client_session(tls_creds_t *creds, int fd, const char *host, unsigned timeout_ms,
                               char *err, size_t errlen)
{
    tls_conn_t *t = session_new(creds, GNUTLS_CLIENT, fd);
    if (!t) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    /* SNI for a name, not an address (RFC 6066); the certificate is checked for either */
    bool address = strchr(host, ':') || host[strspn(host, "0123456789.")] == '\0';
    if (!address)
        gnutls_server_name_set(t->s, GNUTLS_NAME_DNS, host, strlen(host));
    gnutls_session_set_verify_cert(t->s, host, 0);
    gnutls_handshake_set_timeout(t->s, timeout_ms);
    int rc;
    do
        rc = gnutls_handshake(t->s);
    while (rc < 0 && !gnutls_error_is_fatal(rc));
    if (rc < 0) {
        snprintf(err, errlen, "TLS handshake: %s", gnutls_strerror(rc));
        tls_conn_free(&t, false);
        return NULL;
    }
    /* Under TLS 1.3 the server judges the client's certificate after the client's last flight,
     * so the handshake "succeeds" here and a refusal shows only at a later write, as a
     * connection ended without a word. GnuTLS sends a certificate only when one of ours was
     * issued by a CA the server named; with none sent to a server that asked (the edge asks
     * only when it requires one), say so now. */
    if (gnutls_certificate_client_get_request_status(t->s) && !gnutls_certificate_get_ours(t->s)) {
        snprintf(err, errlen,
                 "TLS: the server requires a client certificate, and none was given that one of "
                 "its CAs issued");
        tls_conn_free(&t, false);
        return NULL;
    }
    t->handshaken = true;
    return t;
}

/* Why a write failed: a server that ended the session sent an alert first (under TLS 1.3, a
 * refused client certificate), which a read within a short wait finds. */
static const char *write_failure(tls_conn_t *t, ssize_t rc)
{
    char byte;
    gnutls_record_set_timeout(t->s, 500);
    ssize_t n = 0;
    /* a few reads past whatever else the server sent first; never a wait without end */
    for (int i = 0; i < 16 && (i == 0 || n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN || n > 0);
         i++)
        n = gnutls_record_recv(t->s, &byte, 1);
    if (n == GNUTLS_E_FATAL_ALERT_RECEIVED) {
        snprintf(t->why, sizeof t->why, "the server ended the session: %s",
                 gnutls_alert_get_name(gnutls_alert_get(t->s)));
        return t->why;
    }
    return gnutls_strerror((int)rc);
}

/* Whether the first bytes a sender sent are a plain HEPv3 packet's: a sender set up for TCP
 * rather than TLS, which the handshake would only call "an unexpected TLS packet". */
static bool sent_plain_hep(tls_conn_t *t)
{
    char head[4];
    t->peeked = true;
    return recv(t->fd, head, sizeof head, MSG_PEEK | MSG_DONTWAIT) == 4 && !memcmp(head, "HEP3", 4);
}

/* Why a server's handshake failed, in an operator's words where GnuTLS's are vague. */
static const char *handshake_failure(tls_conn_t *t, int rc)
{
    if (rc == GNUTLS_E_FATAL_ALERT_RECEIVED) {
        snprintf(t->why, sizeof t->why, "the sender ended the handshake: %s",
                 gnutls_alert_get_name(gnutls_alert_get(t->s)));
        return t->why;
    }
    if (rc == GNUTLS_E_PULL_ERROR || rc == GNUTLS_E_PREMATURE_TERMINATION)
        return "the sender closed the connection during the handshake (does it trust this "
               "certificate?)";
    if (rc == GNUTLS_E_NO_CERTIFICATE_FOUND || rc == GNUTLS_E_CERTIFICATE_REQUIRED)
        return "the sender presented no certificate issued by a CA of hep_tls_client_ca";
    if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
        unsigned status = gnutls_session_get_verify_cert_status(t->s);
        if (status & GNUTLS_CERT_EXPIRED)
            return "the sender's certificate has expired";
        if (status & GNUTLS_CERT_NOT_ACTIVATED)
            return "the sender's certificate is not valid yet (is its clock or this one's "
                   "wrong?)";
        if (status & (GNUTLS_CERT_SIGNER_NOT_FOUND | GNUTLS_CERT_SIGNER_NOT_CA))
            return "the sender's certificate was not issued by a CA of hep_tls_client_ca";
        gnutls_datum_t text = {NULL, 0};
        if (gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) == 0) {
            snprintf(t->why, sizeof t->why, "the sender's certificate: %s", (char *)text.data);
            gnutls_free(text.data);
            return t->why;
        }
        return "the sender's certificate did not verify against hep_tls_client_ca";
    }
    return gnutls_strerror(rc);
}

/* The alert that tells a sender why its handshake failed: GnuTLS's choice, but for a client
 * certificate that has expired, which it would call merely "bad". */
static void send_failure_alert(tls_conn_t *t, int rc)
{
    if (rc == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR &&
        (gnutls_session_get_verify_cert_status(t->s) & GNUTLS_CERT_EXPIRED))
        gnutls_alert_send(t->s, GNUTLS_AL_FATAL, GNUTLS_A_CERTIFICATE_EXPIRED);
    else
        gnutls_alert_send_appropriate(t->s, rc);
}

ssize_t tls_conn_read(tls_conn_t *t, void *buf, size_t len, const char **why)
{
    *why = NULL;
    if (!t->handshaken) {
        if (!t->peeked && sent_plain_hep(t)) {
            *why = "plain HEPv3, not TLS (a sender for hep_tcp_listen?)";
            return -1;
        }
        /* A server's handshake writes only a few kilobytes, which an accepted socket's send
         * buffer takes: it waits on reading alone, as the poll loop does. */
        int rc = gnutls_handshake(t->s);
        if (rc == GNUTLS_E_AGAIN || rc == GNUTLS_E_INTERRUPTED)
            return TLS_AGAIN;
        if (rc < 0 && !gnutls_error_is_fatal(rc))
            return TLS_AGAIN; /* a warning alert: go on when more comes */
        if (rc < 0) {
            *why = handshake_failure(t, rc);
            /* tell the sender why too (its log can then say more than "connection closed");
             * best effort, on a socket that does not wait */
            if (rc != GNUTLS_E_FATAL_ALERT_RECEIVED)
                send_failure_alert(t, rc);
            return -1;
        }
        t->handshaken = true;
    }
    for (;;) {
        ssize_t n = gnutls_record_recv(t->s, buf, len);
        if (n >= 0)
            return n;
        if (n == GNUTLS_E_PREMATURE_TERMINATION)
            return 0; /* closed without a close_notify: the stream's framing says what was lost */
        if (n == GNUTLS_E_INTERRUPTED)
            continue;
        if (n == GNUTLS_E_AGAIN || !gnutls_error_is_fatal((int)n))
            return TLS_AGAIN; /* a warning alert, a renegotiation asked for: the session goes on */
        *why = gnutls_strerror((int)n);
        return -1;
    }
}

bool tls_conn_handshaken(const tls_conn_t *t)
{
    return t->handshaken;
}

bool tls_conn_pending(const tls_conn_t *t)
{
    return t->handshaken && (gnutls_record_check_pending(t->s) > 0 || t->in_off < t->in_len);
}

int tls_conn_write(tls_conn_t *t, const void *p, size_t len, const char **why)
{
    const char *at = p;
    while (len > 0) {
        ssize_t n = gnutls_record_send(t->s, at, len);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED)
            continue;
        if (n < 0) {
            *why = write_failure(t, n);
            return -1;
        }
        at += n;
        len -= (size_t)n;
    }
    return 0;
}

void tls_conn_free(tls_conn_t **self, bool bye)
{
    tls_conn_t *t = *self;
    if (!t)
        return;
    if (bye && t->handshaken)
        gnutls_bye(t->s, GNUTLS_SHUT_WR);
    gnutls_deinit(t->s);
    tls_creds_free(&t->creds);
    free(t->in);
    free(t);
    *self = NULL;
}
