/*
 * model: the content model of one edge: embedding settings, global model
 * (SVDD centre), local model (training vectors, their VP-tree and each
 * row's own neighbour list) and the calibrated thresholds, trained from
 * normal traffic, saved to one file. The local model's search index (see
 * knn.h) is built from the rows when the file is loaded.
 *
 * File format (version 12): a fixed header (magic "SIPGMDL1", version,
 * sizes, parameters, thresholds, section offsets, XXH3-64 checksum of the
 * whole file with the checksum field zeroed), then 8-byte aligned sections:
 * feature dictionary (open-addressing table key -> id), centre (double per
 * id), training rows (CSR: row offsets, ids, float values), squared norms,
 * counts, VP-tree nodes, MinHash seed bands, each row's k neighbours
 * (distances, then rows; version 6), and for token models trained by
 * `sipguard train` the features' names (version 7: offsets by feature id,
 * then the printable names; a header flag says whether they are there).
 * Versions 8 to 12 have version 7's layout; the version says which values field shaping took
 * when the model was trained (shape.h): 8 added Record-Route's ftag= and did= and
 * P-Charging-Vector's icid-value=, 9 the Date header, Session-ID, IMS's SPIs and the per-call
 * values of SDP (every media port, RTCP port, SSRC, ICE credentials, SDES keys), 10 WebRTC's
 * (ICE candidates, media stream ids, SSRC groups, DTLS fingerprints), 11 a WebSocket client's
 * Via host and Contact user under .invalid, 12 the port in a Via over a connection (TCP, TLS,
 * WS, WSS, SCTP), a Via's rport= value and the port of a Contact or request URI over TCP, TLS
 * or SCTP. Versions 6 (version 7 without names) to 11 load
 * too; model_advice() says what that means. Loading reads
 * the file into one private buffer (not a mapping: a daemon's model must not change when someone
 * copies over the file), checks size, magic, version, checksum and every
 * offset, then points into the buffer: no parsing, no per-row allocation.
 *
 * Thresholds are calibrated on normal messages held back from training:
 * the score at the (1 - fpr) quantile of the held-out messages, so that at
 * most that fraction of them would be flagged.
 */
#ifndef SIPGUARD_MODEL_H
#define SIPGUARD_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "embed.h"
#include "knn.h"
#include "sparse.h"

#define MODEL_VERSION 12

typedef struct {
    embed_opts_t embed;
    double nu;       /* SVDD outlier fraction (default 0.05) */
    int k;           /* neighbours of the local model (default 5) */
    double fpr;      /* target false-positive rate of the thresholds (default 0.001) */
    double holdout;  /* fraction of training messages held back for calibration (default 0.2) */
    bool local_norm; /* divide the local score by |m(z)| (default on) */
    bool context_headers; /* trained on messages with context pseudo-headers (context.h) */
    uint64_t seed;
} model_opts_t;

void model_opts_default(model_opts_t *o);

typedef struct model model_t;

typedef struct {
    size_t messages, holdout, distinct, dim, nnz;
    int svdd_iterations;
    double svdd_gap;
    double thr_global, thr_local;
    double seconds;
} model_stats_t;

/* --- training --- */

typedef struct model_builder model_builder_t;

model_builder_t *model_builder_new(const model_opts_t *opts);
/* Token models: e's dictionary (embed_keep_dictionary, on before the first message) names the
 * features, and the model keeps the names, so that `info` shows tokens rather than their keys
 * (a key is a hash of the token). e must live until model_builder_finish. */
void model_builder_name_tokens(model_builder_t *b, const embed_t *e);
void model_builder_destroy(model_builder_t **self);
/* Adds one embedded training message; held-out messages only calibrate thresholds. */
int model_builder_add(model_builder_t *self, const sparse_t *v, bool holdout);
/* Fits both models and calibrates. Returns the model, or NULL with a reason in err. */
model_t *model_builder_finish(model_builder_t *self, model_stats_t *stats, char *err, size_t len);

/* --- files --- */

int model_save(const model_t *m, const char *path, char *err, size_t len);
model_t *model_load(const char *path, char *err, size_t len);
/* The same for a file's bytes already in memory (malloc'd; the model takes them, and frees
 * them if it refuses them); path is what errors call it. */
model_t *model_load_image(uint8_t *img, size_t size, const char *path, char *err, size_t len);
void model_destroy(model_t **self);

const model_opts_t *model_options(const model_t *m);

/*
 * What the user should know about a model that loaded but was made by an older build, as one
 * sentence for a warning; NULL when nothing. A field-shaping model of format 6 or 7 was
 * trained before shaping took Record-Route's ftag= and did= and P-Charging-Vector's
 * icid-value=: it scores, but messages with them now embed without their random values,
 * which the model learned as they were, so it should be trained again.
 */
const char *model_advice(const model_t *m);
void model_stats(const model_t *m, model_stats_t *stats);
const trainset_t *model_trainset(const model_t *m);

/* --- scoring (one scorer per thread) --- */

typedef struct {
    double global, local;
    bool global_anomaly, local_anomaly;
    bool local_done;
    knn_result_t nn; /* the local model's neighbours: nn.k of them (0 without a local score);
                      * entries past nn.k are not set */
} model_score_t;

/*
 * Whether a score lies above a threshold by more than rounding: more than 1e-9 of the
 * threshold's size. A threshold is the score of one calibration message, and the paths that
 * score a message sum in different orders (key order with the local model and at
 * calibration, order of first appearance for global-only scoring), so a message identical to
 * that one can land a few units in the last place above it on one path and not on another.
 * Every verdict goes through here, so that it does not depend on the path.
 */
bool model_above_threshold(double score, double threshold);

typedef struct {
    char feature[96];
    double contribution;
} model_feature_t;

#define MODEL_EXPLAIN_TOP 5

typedef struct {
    int n_global, n_local;
    model_feature_t global[MODEL_EXPLAIN_TOP], local[MODEL_EXPLAIN_TOP];
} model_explain_t;

/* The n features with the largest weights in the global model's centre (the SVDD's weighted
 * mean of the normal training vectors: what normal traffic holds most), largest first, named
 * as --explain names them (a token model without names, trained before version 7, as
 * "token:KEY"); the weight is
 * in contribution. Returns how many (fewer when the model has fewer), or -1 out of memory. */
int model_centre_features(const model_t *m, int n, model_feature_t *out);
/* Whether the file keeps its features' names (a token model trained with format 7 or later). */
bool model_has_feature_names(const model_t *m);

typedef struct model_scorer model_scorer_t;

model_scorer_t *model_scorer_new(const model_t *m, bool explain);
/* The local model then measures every training row instead of searching: the answer is the
 * same, only slower; tests check the search against it. */
void model_scorer_use_brute_force(model_scorer_t *s, bool on);
void model_scorer_destroy(model_scorer_t **self);
embed_t *model_scorer_embed(model_scorer_t *s);

/* Embeds and scores a message; local only when want_local. Returns 0, or -1 out of memory.
 * Without the local model the vector is not written until asked for (model_scorer_vector,
 * model_explain, model_score_embedded with the local model). */
int model_score_message(model_scorer_t *s, const uint8_t *data, size_t len, bool want_local,
                        model_score_t *out);
/* The two halves of model_score_message, for callers that look at the vector in between
 * (signature matching): embeds into model_scorer_vector(), noting the dot product with the
 * centre as the features are counted, then scores that vector. */
int model_scorer_embed_message(model_scorer_t *s, const uint8_t *data, size_t len);
int model_score_embedded(model_scorer_t *s, bool want_local, model_score_t *out);
/* Scores an already embedded vector. */
int model_score_vector(model_scorer_t *s, const sparse_t *v, bool want_local, model_score_t *out);
/* The features of the last scored message that raised its scores most. */
void model_explain(model_scorer_t *s, const model_score_t *score, model_explain_t *out);
/* The last embedded vector (written now when global-only scoring left it out; empty if that
 * runs out of memory). */
const sparse_t *model_scorer_vector(model_scorer_t *s);

#endif
