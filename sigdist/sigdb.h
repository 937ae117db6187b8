/*
 * sigdb: signatures as data, and matching them at the edge.
 *
 * A signature (DESIGN.md, "Signatures") is a set of (feature string, weight)
 * pairs and a threshold over the embedding the model uses: its score for a
 * message x is sum_s weight_s * phi_s(x), and the message matches when the
 * score reaches the threshold. Positive weights mark attack strings; negative
 * ones normal strings whose absence is suspicious (bilateral signatures).
 *
 * Matching is two-stage, for speed: one vectorscan database over every
 * signature's positive-weight strings finds, in one pass over the message's
 * preprocessed bytes, which signatures can reach their threshold at all; the
 * linear score is then computed exactly over the embedding for those only.
 * A signature whose threshold is <= 0 is always a candidate.
 *
 * File format (JSON, docs/signatures.md):
 *   {"format": "sipguard-signatures", "version": 1, "sequence": 7,
 *    "feature": "ngram:4", "shape": "fields",
 *    "signatures": [{"id": "sig-000001", "name": "...", "threshold": 2.5,
 *                    "features": [{"string": "scanner", "weight": 1.0}, ...]}]}
 * Feature strings hold the preprocessed bytes; bytes >= 0x80 (shaping
 * tokens included) are written as \u0080-\u00ff, as reports write raw bytes.
 */
#ifndef SIPGUARD_SIGDB_H
#define SIPGUARD_SIGDB_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "embed.h"
#include "sparse.h"

#define SIGDB_MAX_MATCHES 8

typedef struct sigdb sigdb_t;
typedef struct sigscratch sigscratch_t;

typedef struct {
    int n;
    int index[SIGDB_MAX_MATCHES]; /* into the database */
    double score[SIGDB_MAX_MATCHES];
} sig_matches_t;

/* Builds a database from parsed JSON for an embedding; NULL with the reason in err (which
 * names the signature and field at fault). The embedding must be the model's. */
sigdb_t *sigdb_from_json(json_t *root, const embed_opts_t *eo, char *err, size_t errlen);
/* The same from a file. */
sigdb_t *sigdb_load(const char *path, const embed_opts_t *eo, char *err, size_t errlen);
/* The same, handing the parsed document to *doc (a new reference) when it loads, for members
 * the database does not read (an edge reads the domain's allowed sources there). */
sigdb_t *sigdb_load_doc(const char *path, const embed_opts_t *eo, json_t **doc, char *err,
                        size_t errlen);
void sigdb_destroy(sigdb_t **self);

size_t sigdb_count(const sigdb_t *db);
uint64_t sigdb_sequence(const sigdb_t *db);
const char *sigdb_id(const sigdb_t *db, int index);

/* Per-thread scratch space (vectorscan's, and the score sums). */
sigscratch_t *sigdb_scratch_new(const sigdb_t *db);
void sigdb_scratch_destroy(sigscratch_t **self);

/*
 * Matches a message: bytes are what the embedding took features from (embed_last_bytes),
 * v its embedding (unsorted is fine). Returns the number of matching signatures (also in
 * out->n, at most SIGDB_MAX_MATCHES, highest score first), or -1 on a scan error.
 */
int sigdb_match(const sigdb_t *db, sigscratch_t *sc, const uint8_t *bytes, size_t len,
                const sparse_t *v, sig_matches_t *out);

#endif
