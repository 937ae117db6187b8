/*
 * input: every source of SIP messages behind one open/next/close interface.
 *
 * As in sally, each format is a plug-in file exporting the same trio:
 * input_pcap.c (pcap and pcapng files via libpcap, also from memory),
 * input_raw.c (one message per file, or a directory of *.sip files). The
 * dispatcher picks the format by looking at the path and the file's magic.
 * Messages come out one at a time, numbered 0.. in capture order, with
 * everything a reader passed over counted in its skips table.
 */
#ifndef SIPGUARD_INPUT_H
#define SIPGUARD_INPUT_H

#include <stddef.h>

#include "decode.h"
#include "msg.h"
#include "skips.h"

typedef struct input input_t;

/* The operations of one format; `state` is the format's own. */
typedef struct {
    const char *name;
    int (*open)(input_t *in, const char *path, const void *mem, size_t mem_len);
    int (*fill)(input_t *in); /* queue at least one message; 0 at end, -1 on error */
    void (*close)(input_t *in);
} input_format_t;

/* The path that names standard input: a pcap or pcapng stream (tcpdump -w -), read as it
 * comes, once a process. */
#define INPUT_STDIN "-"

/*
 * Opens a capture file, a raw message file, a directory of them, or standard input. Returns
 * NULL on error, with a message saying which file and what is wrong in errbuf.
 */
input_t *input_open(const char *path, const decode_opts_t *opts, char *errbuf, size_t errlen);

/* Opens a pcap or pcapng image held in memory (benchmarks, tests). */
input_t *input_open_memory(const char *name, const void *data, size_t len,
                           const decode_opts_t *opts, char *errbuf, size_t errlen);

/* Next message: 1 and *m filled (valid until the next call), 0 at the end, -1 on a read error. */
int input_next(input_t *in, msg_t *m);

/* The reason of the last error, or "". */
const char *input_error(const input_t *in);
/* Name of the format in use ("pcap", "raw"). */
const char *input_format_name(const input_t *in);
/* What the reader passed over so far. */
const skips_t *input_skips(const input_t *in);
/* Messages handed out so far. */
size_t input_count(const input_t *in);

void input_close(input_t **in);

/* --- for format plug-ins --- */

/* Copies a message into the input's queue; bytes inside the range lent by
 * input_lend() are not copied but handed out where they are. */
void input_enqueue(input_t *in, const msg_t *m);
/* Bytes (a packet) that stay valid until the format's next fill: messages inside them need no
 * copy. The fill must then return as soon as the queue holds what they gave. NULL ends it. */
void input_lend(input_t *in, const uint8_t *bytes, size_t len);
/* Messages queued and not yet handed out. */
size_t input_queued(const input_t *in);
void *input_state(input_t *in);
void input_set_state(input_t *in, void *state);
const decode_opts_t *input_opts(const input_t *in);
skips_t *input_skips_mut(input_t *in);
void input_set_error(input_t *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *input_name(const input_t *in);

extern const input_format_t input_pcap_format;
extern const input_format_t input_raw_format;

#endif
