/*
 * cluster: incremental clustering of anomalous messages (issue 5, "cluster
 * them ... incrementally as reports arrive").
 *
 * Each message is placed when it arrives, against the clusters so far, so the
 * overlay never re-clusters its whole store. Messages are compared as their
 * embeddings scaled to unit length (distance sqrt(2 - 2 cos), 0..sqrt 2).
 *
 *  - single linkage: a message joins every cluster that has a kept member
 *    closer than the cut, merging them (exact single linkage over the kept
 *    members, whatever the order);
 *  - complete linkage: it joins the nearest cluster whose kept members are all
 *    closer than the cut;
 *  - average linkage: it joins the cluster of least mean distance when that is
 *    under the cut; the grown cluster then merges with any cluster whose mean
 *    member-to-member distance is under the cut;
 *  - k-means: sequential spherical k-means: while there are fewer than k
 *    clusters, a message farther than the cut from every centre starts one;
 *    otherwise it joins the most similar centre, which moves to the running
 *    mean.
 *
 * A message starting a cluster gives it its key (the caller's name for the
 * message, e.g. "edge1/1234"); a merged cluster keeps the older key (and
 * lists the keys it absorbed), so a cluster keeps one name while it grows and replaying the same
 * messages gives the same clusters and keys. Each cluster counts every member, the edges they came
 * from and the first and last time seen, but keeps at most `per_cluster` members (a reservoir
 * sample) and all clusters together at most `max_kept`: past that, the least recently grown small
 * cluster goes. The centroid (sum of kept unit vectors) bounds every linkage from below (mean and
 * max distance are at least the distance to the mean; the nearest is at least that minus the
 * cluster's radius), so most clusters are ruled out with one dot product.
 */
#ifndef SIPGUARD_CLUSTER_H
#define SIPGUARD_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sparse.h"

typedef enum { LINK_SINGLE = 0, LINK_COMPLETE, LINK_AVERAGE, LINK_KMEANS } linkage_t;

#define CLUSTER_MAX_EDGES 16
#define CLUSTER_MAX_ABSORBED 8

typedef struct {
    uint8_t *raw; /* the message's bytes */
    size_t len;
    sparse_t *v;    /* its embedding (counts, sorted by key) */
    char edge[64];  /* who reported it ("" when it came from a capture) */
    double ts;      /* the message's time */
    double arrived; /* when the collector received it (0: unknown) */
} member_t;

typedef struct {
    char key[64];
    member_t *m; /* kept members */
    size_t n, cap;
    size_t members; /* every member ever placed here */
    sparse_t *sum;  /* sum of the kept members at unit length, sorted by key */
    double radius;  /* >= the distance of any kept member from the mean */
    unsigned stale; /* joins since the radius was last computed exactly */
    char edges[CLUSTER_MAX_EDGES][64];
    size_t n_edges; /* distinct edges (the first CLUSTER_MAX_EDGES kept by name) */
    double first, last;
    double arrived;                          /* the newest member's arrival */
    char absorbed[CLUSTER_MAX_ABSORBED][64]; /* keys of clusters merged into this one */
    size_t n_absorbed;
    uint64_t founded, touched; /* arrival numbers */
    bool changed;              /* grown since the caller last cleared it */
} cluster_t;

typedef struct {
    linkage_t linkage;
    double cut;         /* linkage distance under which messages join (unit vectors) */
    size_t k;           /* most clusters for k-means */
    size_t per_cluster; /* kept members per cluster */
    size_t max_kept;    /* kept members over all clusters */
    size_t small;       /* clusters under this many members go first when memory is short */
} cluster_opts_t;

typedef struct clusterer clusterer_t;

clusterer_t *clusterer_new(const cluster_opts_t *o);
void clusterer_destroy(clusterer_t **self);

/* Places a message (its member record is taken over: raw and v are owned from here on, also on
 * failure). key names it (NULL: its arrival number). Returns 0, or -1 out of memory. */
int clusterer_add(clusterer_t *c, member_t *m, const char *key);

size_t clusterer_count(const clusterer_t *c);
/* The i-th live cluster (0 <= i < clusterer_count), in the order they were founded. */
cluster_t *clusterer_get(clusterer_t *c, size_t i);
/* Messages placed so far, and members kept now. */
uint64_t clusterer_placed(const clusterer_t *c);
size_t clusterer_kept(const clusterer_t *c);

/*
 * The clusterer's state as bytes (malloc'd; NULL when out of memory), so that a restarted
 * overlay goes on where it stopped instead of clustering its whole store again, and keeps its
 * clusters' names when the reports that founded them were deleted. tag names what the members
 * were embedded with; load refuses a state saved under another tag or other options, and one
 * that is corrupt or truncated, with the reason in err. Members' embeddings are not saved:
 * load makes them again from the members' bytes with embed (0 on success).
 */
typedef int (*clusterer_embed_fn)(void *ctx, const uint8_t *raw, size_t len, sparse_t *out);
uint8_t *clusterer_save(const clusterer_t *c, const char *tag, size_t *len);
clusterer_t *clusterer_load(const cluster_opts_t *o, const char *tag, const uint8_t *buf,
                            size_t len, clusterer_embed_fn embed, void *ctx, char *err,
                            size_t errlen);

/* sqrt(2 - 2 cos) of two vectors (0 for two empty ones). */
double unit_distance(const sparse_t *a, const sparse_t *b);

#endif
