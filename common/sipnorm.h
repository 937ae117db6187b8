/*
 * sipnorm: header-name normalisation before embedding.
 *
 * The same header can be written "Call-ID", "call-id", "CALL-ID" or "i"
 * (RFC 3261 compact form); user agents differ in which they use, and that
 * difference is not what an anomaly detector should learn. Rewriting every
 * header name to one canonical spelling (compact forms expanded, known names
 * in their RFC case, unknown names lower-cased) removes it. Header values,
 * the start line, folded continuation lines and the body are left as they are.
 */
#ifndef SIPGUARD_SIPNORM_H
#define SIPGUARD_SIPNORM_H

#include <stddef.h>
#include <stdint.h>

/* Canonical spelling of a header name (len bytes), or NULL when unknown. */
const char *sipnorm_canonical_name(const char *name, size_t len);

/*
 * Writes the message with canonical header names to out (cap bytes; the
 * result is at most len + 32 * number of header lines when compact forms
 * expand, and lines are copied in 16-byte blocks, so out needs 16 bytes of room
 * past it). Returns the output length, or len copied unchanged when out is too small.
 */
size_t sipnorm_headers(const uint8_t *in, size_t len, uint8_t *out, size_t cap);

/*
 * shape_fields(sipnorm_headers(in)) in one pass and without the buffer between: the same
 * bytes, the same rule for out (cap bytes, and 16 of room past the normalised length).
 */
size_t sipnorm_headers_shaped(const uint8_t *in, size_t len, uint8_t *out, size_t cap);

#endif
