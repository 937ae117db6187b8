/*
 * sipcheck: conformance check and field extraction with libosip2.
 *
 * Every message is parsed by libosip2; we record whether it parsed and, if
 * not, why (a bad start line, a libosip2 syntax error, a missing mandatory
 * header). The fields the detectors and reports need (method or status,
 * Call-ID, CSeq, tags, Via branch, User-Agent, users of From/To/R-URI) are
 * extracted from the parsed message, or by a plain header scan when the
 * parse failed, so a report about a broken message still says what it was.
 */
#ifndef SIPGUARD_SIPCHECK_H
#define SIPGUARD_SIPCHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    bool parse_ok;
    const char *reason; /* why parse_ok is false; static string; "" when it parsed */
    bool is_request;
    char method[32]; /* requests */
    int status;      /* responses */
    char call_id[128];
    uint32_t cseq;
    char cseq_method[32];
    char from_tag[64], to_tag[64];
    char branch[96];
    char user_agent[128];
    char from_user[64], to_user[64], ruri_user[64];
    char contact_host[64], via_host[64];
    int vias;      /* Via header values (more than one: the request was forwarded); 0 unparsed */
    int expires;   /* Expires header or -1 */
    bool has_auth; /* Authorization or Proxy-Authorization present */
    char auth_user[64], auth_nonce[96], auth_response[48]; /* its digest fields, unquoted */
} sipinfo_t;

/* Initialises libosip2's parser; call once before any thread parses. */
void sipcheck_init(void);

/* Parses and checks one message. */
void sipcheck_message(const uint8_t *data, size_t len, sipinfo_t *out);

/*
 * Finds the first header named `name` (or its compact form `compact`, may be
 * NULL) by a plain scan of the header block, case-insensitive. Copies the
 * trimmed value into buf and returns its length, or -1 when absent.
 */
int sipcheck_header_value(const uint8_t *data, size_t len, const char *name, const char *compact,
                          char *buf, size_t cap);

#endif
