/*
 * shape: value shaping before embedding.
 *
 * Call-IDs, tags, branches, nonces, CSeq numbers, ports and addresses are
 * random per message. As raw bytes they fill every vector with n-grams that
 * no other message shares, so they dominate distances and a new legitimate
 * call flow looks as far from training as an attack (DESIGN.md measured this
 * on real captures). Shaping replaces each such run by one byte naming its
 * class and length bucket: the randomness goes, an overlong or odd value
 * still stands out.
 *
 * A "word" is a maximal run of ASCII letters and digits. Rules, in order:
 *   - a dotted IPv4 address (four 1-3 digit groups)   -> SHAPE_IPV4
 *   - a word of digits only                           -> digit token by length
 *   - a word of hex digits with at least one digit    -> hex token by length
 *   - any other word: each run of digits inside it     -> digit token by length
 * A word that starts with the RFC 3261 branch cookie "z9hG4bK" keeps the cookie and the
 * rest is shaped as a word of its own.
 * Token bytes are 0xC0, 0xC1 and 0xF5-0xFF, which never occur in valid UTF-8,
 * so they do not collide with text that SIP allows.
 */
#ifndef SIPGUARD_SHAPE_H
#define SIPGUARD_SHAPE_H

#include <stddef.h>
#include <stdint.h>

enum {
    SHAPE_DIGITS_1_3 = 0xF5,
    SHAPE_DIGITS_4_8 = 0xF6,
    SHAPE_DIGITS_9_16 = 0xF7,
    SHAPE_DIGITS_17_32 = 0xF8,
    SHAPE_DIGITS_LONG = 0xF9,
    SHAPE_HEX_1_8 = 0xFA,
    SHAPE_HEX_9_16 = 0xFB,
    SHAPE_HEX_17_32 = 0xFC,
    SHAPE_HEX_LONG = 0xFD,
    SHAPE_IPV4 = 0xFE,
    /* field shaping: a random value of mixed letters and digits */
    SHAPE_ALNUM_1_16 = 0xC0,
    SHAPE_ALNUM_17_32 = 0xC1,
    SHAPE_ALNUM_LONG = 0xFF,
};

/* Shapes in into out (at least len bytes). Returns the shaped length (<= len). */
size_t shape_apply(const uint8_t *in, size_t len, uint8_t *out);

/*
 * Field shaping: only the values SIP makes random per message are replaced,
 * each by one token of its class and length: the Call-ID before any '@',
 * tag=, the part of branch= after the cookie, ftag= and did= (the From tag and
 * the dialog id that Kamailio and OpenSIPS put in their Record-Route), nonce, cnonce, response and
 * opaque of digest headers, the CSeq number, the Content-Length value (it
 * follows the lengths of random body values), IMS's icid-value when it opens a
 * P-Charging-Vector, the whole Date value, Session-ID's own and remote= UUIDs, IMS's
 * spi-c= and spi-s= security indexes, a WebSocket client's made-up host under .invalid in its Via
 * (after SIP/2.0/WS or WSS) and Contact, with the Contact's user (RFC 7118), the user and port of
 * a transport=ws Contact whose host is an address (a proxy fixed it for NAT), the port of a Via
 * over TCP, TLS, WS, WSS or SCTP (often the connection's own), a Via's rport= value (a NAT's
 * mapping or a connection's port, RFC 3581), the port of a Contact that says transport=tcp, tls
 * or sctp, and a request URI as a Contact (ports other than 5060 and 5061 only), and in SDP the
 * session id and version, every m= line's port, and the values of a=rtcp:, a=ssrc: (and its
 * attribute's: cname:, msid:, ...), a=ssrc-group:, a=msid:, a=msid-semantic:, a=ice-ufrag:,
 * a=ice-pwd:, a=fingerprint: (after the hash's name), an ICE a=candidate:'s foundation, priority,
 * port, mDNS host name and rport/ufrag values, and the key of a=crypto:'s inline:. Everything else
 * (addresses, ports, users, versions) stays as written: an edge knows its own hosts and users, and
 * that is worth keeping. Expects header names normalised (sipnorm). out needs room for len bytes
 * (it may be written up to there). Returns the shaped length (<= len).
 */
size_t shape_fields(const uint8_t *in, size_t len, uint8_t *out);

/*
 * Field shaping a line at a time, for header-name normalisation to run in the same pass
 * (sipnorm_headers_shaped); the results are those of shape_fields on the normalised message.
 * Call shape_prepare() once before the others.
 *
 * shape_header_field: the field a header of canonical name `name` begins when a colon
 * follows the name at once (Call-ID, CSeq, Content-Length), or -1.
 * shape_fields_line: shapes in[i..] through the end of its line (the next '\n', or len) to
 * out + *o, advancing *o; i is a line start, or follows a header name already written to out,
 * whose field (or -1) is `field`. Returns where the next line starts.
 * shape_fields_rest: the same through len.
 * Both write whole 16-byte blocks, but none past *o + (len - i) as it is at the call.
 */
void shape_prepare(void);
int shape_header_field(const char *name);
size_t shape_fields_line(const uint8_t *in, size_t i, size_t len, uint8_t *out, size_t *o,
                         int field);
size_t shape_fields_rest(const uint8_t *in, size_t i, size_t len, uint8_t *out, size_t *o);

/* Readable name of a token byte ("<dig1-3>", "<hex9-16>", "<ipv4>"), or NULL for other bytes. */
const char *shape_token_name(uint8_t b);

#endif
