/*
 * sigman: the overlay's signatures: built from the stored reports, reviewed,
 * and published as the active set.
 *
 * A build re-clusters the stored anomalies (their raw messages) with the
 * model's embedding, makes bilateral signatures and verifies them on the
 * configured clean sample (sigdist/siggen); each passed signature not seen
 * before (same strings and weights) is stored as pending, or active when the
 * auto-approval policy holds. State changes: pending -> active (approve),
 * pending|active -> rejected (reject, with a reason), active -> expired;
 * every change of the active set bumps the set's sequence number.
 */
#ifndef SIPGUARD_SIGMAN_H
#define SIPGUARD_SIGMAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "siggen.h"
#include "store.h"

typedef struct {
    char model[512];  /* the edges' model: its embedding is the signatures' */
    char clean[1024]; /* clean captures, comma-separated */
    siggen_opts_t gen;
    size_t auto_approve; /* active at once when a cluster has this many members; 0: never */
    size_t auto_edges;   /* ... and was reported by at least this many edges (default 1) */
} sigman_opts_t;

void sigman_opts_default(sigman_opts_t *o);

/* Builds from everything stored. Returns how many new signatures, or -1 with err. */
int sigman_build(store_t *s, const sigman_opts_t *o, double now, char *err, size_t errlen);

/* approve / reject / expire. Returns 0, -1 unknown id, -2 state conflict, -3 store error. */
int sigman_transition(store_t *s, const char *id, const char *action, const char *reason,
                      double now);

/* The active set as a sipguard-signatures document (what edges load). */
json_t *sigman_active(store_t *s, const sigman_opts_t *o, char *err, size_t errlen);

#endif
