/*
 * edge_record: the edge keeps the traffic it judged as pcap files ([record]), so that the
 * next model is trained on this edge's own traffic (sipguard train on the finished files,
 * then a SIGHUP) and an anomaly's messages stay at hand as evidence.
 *
 * The messages kept are those judged normal (training material), those judged anomalous or
 * matching a signature (evidence), or all of them; a fraction of them when a busy edge should
 * cover days of traffic within max_mb (one in 1 / sample, by a stride rather than a coin). Each is
 * written as it arrived (its bytes, endpoints, transport and timestamp) through pcapw, so every
 * reader of ours and tshark take the files. A file is written as NAME.pcap.part and renamed to
 * NAME.pcap once it is finished (past file_mb, past file_seconds, at a SIGHUP or at the end), so a
 * .pcap file is always whole; a .part file left by a crash is finished at the next start. Finished
 * files past max_mb in all go, oldest first. Names are PREFIX-YYYYMMDD-HHMMSS.pcap (UTC of the
 * first message), so they sort by time.
 *
 * Recording is best effort and never holds up a verdict: a write that fails (a full disk)
 * finishes the file, is logged once and counted with every message not kept until the next
 * try, a minute later. One lock serialises the ingest loop and the HTTP thread.
 */
#ifndef SIPGUARD_EDGE_RECORD_H
#define SIPGUARD_EDGE_RECORD_H

#include <stdbool.h>
#include <stdint.h>

#include "edge_metrics.h"
#include "edge_pipeline.h"
#include "msg.h"

typedef enum { RECORD_NORMAL = 0, RECORD_ANOMALIES, RECORD_ALL } record_which_t;

/* "normal", "anomalies" or "all"; -1 for anything else. */
int record_which_parse(const char *s, record_which_t *out);

typedef struct {
    const char *dir;    /* empty: off */
    const char *prefix; /* the start of every file name (the edge's id) */
    record_which_t which;
    double sample;       /* fraction of those messages written: a deterministic stride */
    long file_mb;        /* a file is finished past this many MiB */
    double file_seconds; /* or once it has been open this long */
    long max_mb;         /* the finished files kept, in all */
} record_opts_t;

typedef struct edge_record edge_record_t;

/* NULL when out of memory. Records nothing until record_configure gives it a directory. Counts
 * in metrics (record_messages, record_dropped, record_files). */
edge_record_t *record_new(edge_metrics_t *metrics);

/* Takes new settings (at start and at each SIGHUP): the file being written is finished, and
 * the next message kept starts a new one, in the new directory if it changed. A directory
 * that cannot be made is logged, and recording waits for the next try. */
void record_configure(edge_record_t *r, const record_opts_t *o);

/* Keeps m when its result is of the kind recorded. Any thread. */
void record_message(edge_record_t *r, const msg_t *m, const edge_result_t *res);

/* Once a second: finishes a file open for file_seconds even when no message came since. */
void record_tick(edge_record_t *r);

/* Finishes the file being written and frees r. */
void record_destroy(edge_record_t **r);

#endif
