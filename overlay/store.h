/*
 * store: the overlay's durable record of reports (SQLite, WAL).
 *
 * Reports are keyed by (edge id, sequence): storing one again is a no-op, so
 * an edge may resend whatever it is unsure of. Writes are grouped into one
 * transaction per batch, and the collector acks a batch only after
 * store_commit() returned 0, so an acked report is on disk (synchronous=FULL).
 * Reports the collector refused are kept apart with their reason, so an
 * analyst can see what an edge sent and why it was not taken.
 */
#ifndef SIPGUARD_STORE_H
#define SIPGUARD_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include <stdint.h>

typedef struct store store_t;

/* Opens (creating) the database. NULL with the reason in err. */
store_t *store_open(const char *path, char *err, size_t errlen);
void store_close(store_t **self);

/* Starts a batch. Returns 0 or -1. */
int store_begin(store_t *s);
/* Adds one report to the batch: 1 when new, 0 when (edge, seq) was already stored, -1 on an
 * error (the batch must then be rolled back). */
int store_report(store_t *s, const char *edge, uint64_t seq, double received, const char *json,
                 size_t len);
/* Adds a normal message an edge sampled (its report JSON) to the clean sample, which keeps at
 * most `keep` per edge (the oldest go; the table is pruned every 256 samples, so an edge may
 * hold up to 255 more in between). 1 when new, 0 duplicate, -1 error. */
int store_clean(store_t *s, const char *edge, uint64_t seq, double received, const char *json,
                size_t len, size_t keep);
/* Calls fn for the JSON of every clean sample. */
int store_each_clean(store_t *s, int (*fn)(void *ctx, const char *json, size_t len), void *ctx);
uint64_t store_count_clean(store_t *s);
/* Records a refused report and why (in the batch). Returns 0 or -1. */
int store_rejected(store_t *s, const char *edge, uint64_t seq, double received, const char *why,
                   const char *data, size_t len);
/* Commits the batch (durable when it returns 0), or rolls it back. */
int store_commit(store_t *s);
void store_rollback(store_t *s);

/* Counts for metrics and tests. */
uint64_t store_count_reports(store_t *s);
uint64_t store_count_rejected(store_t *s);

/*
 * Retention: deletes at most `limit` of the oldest anomaly reports received before `before`
 * and numbered at most `placed` (the clustering has read them), and as many refused reports
 * received before `before`, in one transaction. The newest report is always kept, so that
 * numbers go on rising (SQLite would otherwise start them again at 1 in an empty table,
 * behind what the clustering has read). Returns the anomaly reports deleted (the refused ones
 * added to *rejected), or -1.
 */
long store_prune(store_t *s, double before, int64_t placed, size_t limit, long *rejected);
/* The clustering's saved state: the last report it had placed, reports placed since the last
 * build, the clusters (siggen_save_clusters), and notes (text, or NULL: sigman keeps the
 * clusters' last build results there). One row, replaced by each save. Load returns 1 and
 * malloc'd copies of the state and the notes (NULL when none), 0 when nothing was saved, -1 on
 * a store error. */
int store_save_clusters(store_t *s, int64_t after, uint64_t unbuilt, double now, const void *state,
                        size_t len, const char *notes);
int store_load_clusters(store_t *s, int64_t *after, uint64_t *unbuilt, uint8_t **state, size_t *len,
                        char **notes);
/* ---- signatures (see sigman.h) ---- */

/* Calls fn for the JSON of every stored report (in storage order). Returns 0 or -1. */
int store_each_report(store_t *s, int (*fn)(void *ctx, const char *json, size_t len), void *ctx);
/* Calls fn for the JSON (and receipt time) of each report stored after number *after (in
 * storage order, at most limit; 0: all) and moves *after on. Returns how many, or -1. */
int store_each_report_after(store_t *s, int64_t *after, size_t limit,
                            int (*fn)(void *ctx, const char *json, size_t len, double received),
                            void *ctx);
/* Stored anomaly reports as a JSON array of {n, edge, seq, received, report}, in arrival
 * order: those numbered after `after`, received at or after `since`, of `edge` (NULL: any),
 * at most `limit`. NULL on an error. */
json_t *store_list_reports(store_t *s, const char *edge, double since, int64_t after, size_t limit);
/* Adds a signature (version `version` of the cluster's signature; cluster may be NULL) unless
 * one with the same content hash exists. Returns 1 added, 0 known, -1 error. */
int store_add_signature(store_t *s, const char *id, const char *hash, const char *state, double now,
                        const char *doc, const char *cluster, int version);
/* The newest version of a cluster's signature as {id, state, hash, version}, or NULL. */
json_t *store_cluster_signature(store_t *s, const char *cluster);
/* Replaces a signature's document (its counts and times moved on; same strings). 0 or -1. */
int store_update_signature_doc(store_t *s, const char *id, const char *doc, double now);
/* Signatures as a JSON array of {id, state, reason, created, updated, signature}; state NULL:
 * all. A new reference, or NULL on an error. */
json_t *store_list_signatures(store_t *s, const char *state);
/* One signature, or NULL when unknown. */
json_t *store_get_signature(store_t *s, const char *id);
/* Sets a signature's state when it is in `from` (a |-separated list). Returns 0, -1 unknown
 * id, -2 not in an allowed state (a conflict), -3 error. */
int store_set_state(store_t *s, const char *id, const char *from, const char *to,
                    const char *reason, double now);
/* The signature-set sequence number, bumped on every change of the active set. */
uint64_t store_sequence(store_t *s);
int store_bump_sequence(store_t *s);
/* Signatures by state (pending, active, rejected, expired); for each cluster with a
 * signature that went active, the time from its founding report (first_seen) to the first of
 * its signatures going active, as histogram counts (one per bound of store_latency_bounds,
 * then past the last); and the edges whose last report named an older set than the current
 * one. */
#define STORE_STATES 4
#define STORE_LATENCY_BUCKETS 10
extern const double store_latency_bounds[STORE_LATENCY_BUCKETS];
typedef struct {
    uint64_t by_state[STORE_STATES];
    uint64_t to_active[STORE_LATENCY_BUCKETS + 1];
    uint64_t to_active_count;
    double to_active_sum;
    uint64_t edges_behind;
} store_signature_stats_t;
/* Returns 0, or -1 on a database error. */
int store_signature_stats(store_t *s, store_signature_stats_t *out);

/* The domain's allowed sources as an analyst last put them (the allow-file text), with when
 * (*updated, 0 if never). A new string ("" when none), or NULL on an error. */
char *store_get_allowlist(store_t *s, double *updated);
/* Replaces them and bumps the signature-set sequence, at once, so that every edge takes the
 * set that carries them. Returns 0 or -1. */
int store_set_allowlist(store_t *s, const char *text, double now);
/* The domain's bans: the sources its edges banned ([ban]), shared with every edge in the
 * signature set. Records that an edge banned source (an address, or an IPv6 prefix as
 * ADDR/LEN) until then, in the open batch: 1 when the domain's list changed (a new source,
 * or a ban that ends later), 0 when not, -1 on an error. */
int store_put_ban(store_t *s, const char *source, double until, const char *edge, double now);
/* The bans running at now, longest first, at most limit (0: all), as a JSON array of
 * {source, until, edge (whose ban ends last), first (when first reported), count (reports)};
 * NULL on an error. */
json_t *store_list_bans(store_t *s, double now, size_t limit);
/* How many bans are running at now (0 on an error too). */
uint64_t store_count_bans(store_t *s, double now);
/* Lifts a ban for the whole domain, and bumps the signature-set sequence so that every edge
 * hears it. 1 lifted, 0 unknown, -1 error. */
int store_delete_ban(store_t *s, const char *source);
/* The next free signature number (for ids). */
uint64_t store_next_signature_number(store_t *s);
/* Notes that an edge was heard (at received) and, when sigseq >= 0, the signature set it
 * enforced. Returns 0 or -1. */
int store_edge_state(store_t *s, const char *edge, double received, int64_t sigseq);
/* Edges with their last report time, report count and signature set (null: not known yet), as
 * a JSON array. */
json_t *store_list_edges(store_t *s);

/* The last error message of the database; after a batch rolled back, why it did (once). */
const char *store_error(store_t *s);

#endif
