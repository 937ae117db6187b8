/*
 * tlsconn: TLS over a TCP socket (GnuTLS), for HEPv3 streams that cross networks
 * (heplify -nt tls, a proxy's mirror to a detector in another site).
 *
 * The server side runs on the edge's non-blocking sockets and is driven by its poll loop:
 * the handshake goes on inside tls_conn_read as data arrives, so one slow sender never
 * holds the loop. The client side is blocking, for `sipguard replay --hep-tls`. Only the
 * TLS versions and ciphers of GnuTLS's default priority are offered; a server may require
 * a client certificate chained to its own CA list (mutual TLS), and a client checks the
 * server's certificate against the host name or address it connected to.
 */
#ifndef SIPGUARD_TLSCONN_H
#define SIPGUARD_TLSCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct tls_creds tls_creds_t;
typedef struct tls_conn tls_conn_t;

/* Server credentials: a PEM certificate (its chain after it) and its key; with client_ca (not
 * empty), a PEM list of CAs one of which a client's certificate must chain to (a client
 * without one is refused). NULL with the reason in err, naming the file. */
tls_creds_t *tls_server_creds(const char *cert, const char *key, const char *client_ca, char *err,
                              size_t errlen);
/* Client credentials: ca, the PEM CAs the server's certificate must chain to (empty: the
 * system's trust store); cert and key (both, or neither), a certificate to present. */
tls_creds_t *tls_client_creds(const char *ca, const char *cert, const char *key, char *err,
                              size_t errlen);
/* Drops the caller's hold on the credentials: sessions made with them keep them until they
 * end, so a server can take a new certificate while its senders stay connected. Not for
 * sharing between threads. */
void tls_creds_free(tls_creds_t **self);

/* When the certificate a server's credentials present stops being valid (Unix seconds), or -1
 * when there is none or it cannot be read. */
long long tls_creds_expiry(const tls_creds_t *c);

/* A server session on an accepted non-blocking socket (the caller's); its handshake happens in
 * tls_conn_read. NULL when out of memory. */
tls_conn_t *tls_server_session(tls_creds_t *creds, int fd);
/* A client session on a connected blocking socket, handshaken within timeout_ms and the
 * server's certificate checked for host (a name or an address). NULL with the reason. */
tls_conn_t *tls_client_session(tls_creds_t *creds, int fd, const char *host, unsigned timeout_ms,
                               char *err, size_t errlen);

#define TLS_AGAIN (-2)

/* Reads up to len bytes into buf, going on with the handshake first. Returns the bytes read; 0
 * when the peer has closed; TLS_AGAIN when nothing more comes until the socket is readable;
 * -1 when the session failed, with the reason in *why (a static string). */
ssize_t tls_conn_read(tls_conn_t *t, void *buf, size_t len, const char **why);
/* Whether the handshake is done. */
bool tls_conn_handshaken(const tls_conn_t *t);
/* Decrypted bytes waiting inside the session, which poll() cannot announce. */
bool tls_conn_pending(const tls_conn_t *t);
/* Writes all of p; 0, or -1 with the reason in *why. */
int tls_conn_write(tls_conn_t *t, const void *p, size_t len, const char **why);
/* Ends the session, saying so to the peer first when bye (a client done sending), and frees
 * it; the socket stays the caller's. */
void tls_conn_free(tls_conn_t **self, bool bye);

#endif
