/*
 * report: JSON encoding of what we say about a message (jansson).
 *
 * One place builds the fields every output shares (where the message came
 * from, what it is), so `sipguard score`, the edge's anomaly reports and the
 * overlay agree on names and formats. Schema: docs/report-schema.json.
 */
#ifndef SIPGUARD_REPORT_H
#define SIPGUARD_REPORT_H

#include <jansson.h>

#include "msg.h"
#include "sipcheck.h"

/* A new object with input, index, ts, src, dst, transport, method or status, call_id,
 * parse_ok (and parse_error when false), user_agent when present, truncated when set. */
json_t *report_message_fields(const msg_t *m, const sipinfo_t *info);

/* Bytes exactly, as a JSON string: each byte is the code point of the same value (its
 * Latin-1 reading), so report_raw_bytes() gives back the same bytes whatever they were. ASCII
 * reads as itself; UTF-8 text beyond it reads as its bytes ("\u00c3\u00a9" for an e-acute). */
json_t *report_raw_string(const uint8_t *data, size_t len);

/* Bytes for a person to read, as a JSON string: valid UTF-8 stays as it is, other bytes
 * become their Latin-1 code points. Not reversible (the two can meet on one string): for
 * fields nothing turns back into bytes (Call-ID, User-Agent). */
json_t *report_text_string(const uint8_t *data, size_t len);

/* The inverse of report_raw_string(): code points up to U+00FF become one byte each, others
 * keep their UTF-8 bytes. out needs len bytes. Returns the number of bytes. */
size_t report_raw_bytes(const char *s, size_t len, uint8_t *out);

/* Writes an object as one line (JSON Lines) and a newline; returns 0 or -1 on write error. */
int report_write_line(json_t *obj, FILE *out);

#endif
