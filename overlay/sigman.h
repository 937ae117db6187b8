/*
 * sigman: the overlay's signatures: built from the stored reports, reviewed,
 * and published as the active set.
 *
 * Stored anomalies are placed in clusters as they arrive (sigman_ingest
 * reads the reports stored since it last ran; on start it replays the store,
 * which gives the same clusters and keys). A build makes a bilateral
 * signature for each cluster that grew, verifies it on the clean sample (what
 * edges sampled plus [signatures] clean captures; sigdist/siggen), and stores
 * it as the next version of that cluster's signature: pending, or active when
 * the auto-approval policy holds. A new version supersedes (expires) a
 * pending older one at once and an active one when it becomes active; a
 * cluster whose signature was rejected is not proposed again. State changes:
 * pending -> active (approve), pending|active -> rejected (reject, with a
 * reason), active -> expired (by hand, or `lifetime` seconds after the
 * cluster's newest report arrived); a pending signature of a cluster that
 * merged into another is superseded by the other's; every change of the active set bumps the set's
 * sequence number.
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
    long lifetime;       /* an active signature expires this long after its cluster last grew */
    bool share_bans;     /* the domain's bans go out with the set (default yes) */
    size_t max_bans;     /* at most this many, the longest (default 10000) */
} sigman_opts_t;

void sigman_opts_default(sigman_opts_t *o);

typedef struct sigman sigman_t;

/* Loads the model's embedding. NULL with err when there is no model or it embeds tokens. */
sigman_t *sigman_new(const sigman_opts_t *o, char *err, size_t errlen);
void sigman_destroy(sigman_t **self);
/* Takes o's settings that do not touch the clusters for what comes next: the clean captures,
 * the settings of signature making (siggen_set_policy), auto_approve, auto_edges, lifetime
 * (for signatures placed from then on), share_bans and max_bans. model and the clustering
 * settings (linkage, k, cut, min_members) stay as they were. */
void sigman_set_policy(sigman_t *sm, const sigman_opts_t *o);

/* Places the reports stored since the last call (at most max; 0: all) in their clusters.
 * Returns how many, or -1 on a store error. */
long sigman_ingest(sigman_t *sm, store_t *s, size_t max);
/* Live clusters; reports placed since start; since the last build. */
size_t sigman_clusters(const sigman_t *sm);
uint64_t sigman_placed(const sigman_t *sm);
/* The number of the last stored report placed in a cluster (retention keeps the others). */
int64_t sigman_last_placed(const sigman_t *sm);
uint64_t sigman_unbuilt(const sigman_t *sm);

/*
 * The clusters survive a restart as saved state in the store: resume loads it, and ingest
 * then reads on from the last report it had placed, so a restart neither clusters the whole
 * store again nor renames a cluster whose founding report retention deleted. Resume returns 1
 * (*clusters loaded), 0 when nothing was saved, -1 with err when the saved state cannot be
 * used (another embedding or clustering settings, corrupt) or the store failed: the clusters
 * are then built from the reports retained, as without a saved state. Save writes the state
 * (*bytes long); retention deletes only reports up to sigman_saved, so that what a restart
 * needs is always there.
 */
int sigman_resume(sigman_t *sm, store_t *s, size_t *clusters, char *err, size_t errlen);
int sigman_save(sigman_t *sm, store_t *s, double now, size_t *bytes, char *err, size_t errlen);
int64_t sigman_saved(const sigman_t *sm);
/* Whether anything was placed or built since the last save (or start). */
bool sigman_unsaved(const sigman_t *sm);

/* The live clusters, most members first (at most limit, and only those with min_members or
 * more): key, members counted and kept, edges, first and last message time, newest arrival,
 * absorbed keys, whether it grew since the last build, its newest signature's id, state and
 * version (null when none), and its last build (when, and the verification: passed, or
 * rejected and why; null when never built; saved and resumed with the clusters). NULL when
 * out of memory. */
json_t *sigman_list_clusters(const sigman_t *sm, store_t *s, size_t min_members, size_t limit);

/* Places what is left, then builds the signatures of the clusters that grew. Returns how many
 * new signature versions, or -1 with err. */
int sigman_build(sigman_t *sm, store_t *s, double now, char *err, size_t errlen);

/* Expires the active signatures whose lifetime ran out. Returns how many. */
int sigman_expire_due(store_t *s, double now);

/* approve / reject / expire. Returns 0, -1 unknown id, -2 state conflict, -3 store error. */
int sigman_transition(store_t *s, const char *id, const char *action, const char *reason,
                      double now);

/* The domain's allowed sources (stored by PUT /v1/allowlist) as canonical "ADDR/LEN"
 * strings, with when they were set in *updated (when not NULL; 0 if never). A new array, or
 * NULL with the reason in err. */
json_t *sigman_allowlist(store_t *s, double *updated, char *err, size_t errlen);

/* The active set as a sipguard-signatures document (what edges load), with the allowed
 * sources under "allow" when there are any, and with share_bans the domain's running bans
 * under "bans" ([{"source", "until"}], longest first, at most max_bans). */
json_t *sigman_active(store_t *s, const sigman_opts_t *o, char *err, size_t errlen);

#endif
