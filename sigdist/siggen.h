/*
 * siggen: from anomalous messages to verified signatures (DESIGN.md,
 * "Signatures"; issue 5).
 *
 *  1. cluster the anomalies incrementally as they are added (cluster.h):
 *     single, complete or average linkage over their embeddings scaled to unit
 *     length with a distance cut, or sequential spherical k-means with a given
 *     k; each cluster keeps a sample of its members and counts all of them;
 *  2. per cluster with enough members: A = the mean member vector over the
 *     features present in at least `presence` of the members (the rest
 *     pruned; A alone is the unilateral signature), N = the mean of the clean
 *     sample over the same features, B = A - N (bilateral); the `max_strings`
 *     features of largest |weight| are kept;
 *  3. the threshold is the lowest score of any member, so every member
 *     matches; verification replays the signature over the clean sample: a
 *     clean message that matches rejects it, or (with `tighten`) raises the
 *     threshold above the highest clean score when members still match.
 *
 * Signatures come out in the sipguard-signatures format (sigdb.h) for the
 * model's embedding (byte n-grams), with the cluster and verification facts.
 */
#ifndef SIPGUARD_SIGGEN_H
#define SIPGUARD_SIGGEN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "cluster.h"
#include "embed.h"
#include "sparse.h"

typedef struct {
    linkage_t linkage;    /* default average */
    size_t k;             /* clusters of k-means (8) */
    double cut;           /* merge while the linkage distance is below (unit vectors; 0.6) */
    size_t min_members;   /* clusters smaller than this make no signature (5) */
    double presence;      /* keep features present in this fraction of members (0.5) */
    size_t max_strings;   /* strings per signature (32) */
    bool bilateral;       /* B = A - N (default) or A alone */
    bool tighten;         /* on a clean match, raise the threshold instead of rejecting */
    size_t auto_members;  /* signatures the policy may approve at once: cluster size (0: none) */
    size_t auto_edges;    /* ... and edges that saw it */
    size_t max_anomalies; /* members kept over all clusters (10,000; then small clusters go) */
} siggen_opts_t;

void siggen_opts_default(siggen_opts_t *o);
/* "single", "complete", "average" or "kmeans"; returns 0 or -1. */
int siggen_parse_linkage(const char *s, linkage_t *out);

typedef struct siggen siggen_t;

/* A builder for an embedding (byte n-grams only: the strings must be recoverable). NULL when
 * the embedding is of tokens. */
siggen_t *siggen_new(const embed_opts_t *eo, const siggen_opts_t *o);
/* Takes o's settings for making signatures (presence, max_strings, bilateral, tighten,
 * auto_members, auto_edges) for the next builds; the clustering ones (linkage, k, cut,
 * max_anomalies, min_members, which also picks the clusters dropped when memory is short)
 * stay, since the clusters were made under them. */
void siggen_set_policy(siggen_t *g, const siggen_opts_t *o);
void siggen_destroy(siggen_t **self);

/* Adds one anomalous message (the bytes; embedded and placed in its cluster here). */
int siggen_add_anomaly(siggen_t *g, const uint8_t *data, size_t len);
/* The same, with the edge that reported it and the message's time (for the signature's edges
 * and first and last seen), when it was received (0: unknown), and a name for it (a cluster it
 * founds is keyed by it; NULL: its arrival number). */
int siggen_add_report(siggen_t *g, const uint8_t *data, size_t len, const char *edge, double ts,
                      double arrived, const char *key);
/* Adds one clean message; siggen_clear_clean empties the clean sample (to load it afresh). */
int siggen_add_clean(siggen_t *g, const uint8_t *data, size_t len);
void siggen_clear_clean(siggen_t *g);
/* Live clusters, and the i-th of them (0 <= i < siggen_clusters, in founding order). */
size_t siggen_clusters(const siggen_t *g);
const cluster_t *siggen_cluster(const siggen_t *g, size_t i);
/* A cluster's edges and the keys of the clusters merged into it, as JSON arrays of strings. */
json_t *siggen_cluster_edges(const cluster_t *k);
json_t *siggen_cluster_absorbed(const cluster_t *k);
/* The clusters as bytes (malloc'd; NULL when out of memory), and back: load replaces the
 * clusters with the saved ones, or returns -1 with the reason (another embedding or other
 * clustering settings, corrupt, truncated) and keeps them as they were. */
uint8_t *siggen_save_clusters(const siggen_t *g, size_t *len);
int siggen_load_clusters(siggen_t *g, const uint8_t *buf, size_t len, char *err, size_t errlen);

/*
 * Builds and verifies a signature for each cluster with enough members (changed_only: only
 * those that grew since the last build). Returns a sipguard-signatures document (new
 * reference): the verified signatures under "signatures", the rejected ones under "rejected"
 * (not loaded by edges), each with "cluster" (its key, members counted and kept) and
 * "verification" facts. sequence names the set.
 */
json_t *siggen_build(siggen_t *g, uint64_t sequence, const char *id_prefix, bool changed_only);

/* Writes a sipguard-signatures document as YARA rules (one rule per signature: its positive
 * strings as hex strings, the condition the count of them a member needs). Returns 0 or -1. */
int siggen_export_yara(json_t *doc, FILE *out, char *err, size_t errlen);

#endif
