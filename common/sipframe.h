/*
 * sipframe: where SIP messages start and end in a byte stream.
 *
 * Datagram transports carry one message per payload; stream transports
 * (TCP) carry messages back to back, delimited by the blank line after the
 * headers and the Content-Length of the body (RFC 3261 section 18.3). These
 * helpers recognise a SIP start line and compute a message's length from
 * its headers without parsing the rest.
 */
#ifndef SIPGUARD_SIPFRAME_H
#define SIPGUARD_SIPFRAME_H

#include <stdbool.h>
#include <stddef.h>

/* True when buf starts like a SIP request line ("METHOD sip:... SIP/2.0") or a status line
 * ("SIP/2.0 200 ..."). Looks at the first line only, at most 1 KiB. */
bool sipframe_looks_like_sip(const unsigned char *buf, size_t len);

typedef enum {
    SIPFRAME_COMPLETE,   /* *msg_len bytes form one message */
    SIPFRAME_NEED_MORE,  /* header block or body not complete yet */
    SIPFRAME_BAD_LENGTH, /* Content-Length present but not a number; *msg_len = header block */
} sipframe_result_t;

/*
 * Finds the end of the message at the start of buf: end of headers
 * (CRLF CRLF, or bare LF LF) plus Content-Length (long or compact form; absent
 * means 0). *header_len receives the header block length when known and
 * *content_length the declared body length (-1 when absent or invalid).
 */
sipframe_result_t sipframe_message_length(const unsigned char *buf, size_t len, size_t *msg_len,
                                          size_t *header_len, long long *content_length);

/* Number of leading CR/LF bytes (keep-alives between messages). */
size_t sipframe_skip_crlf(const unsigned char *buf, size_t len);

#endif
