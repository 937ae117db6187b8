/*
 * edge_pipeline: what the edge does with one message, and the model and
 * signatures it does it with.
 *
 *   frame (the reader) -> parse/conformance (libosip2) -> normalise and embed
 *   -> signature match -> global score -> local score (per the policy)
 *   -> verdict -> report (JSON, for anomalies or for everything)
 *
 * The assets (model, signature database, and the context detectors' model with
 * their state, which one lock guards since they must see every message in
 * order, from any thread) are loaded together and shared
 * by every thread read-only, with a reference count: a reload (SIGHUP, new
 * signatures) publishes a new set, each pipeline picks it up before its next
 * message, and the old set is freed when its last user lets go. No message
 * waits for a reload and none is scored with a half-loaded model.
 */
#ifndef SIPGUARD_EDGE_PIPELINE_H
#define SIPGUARD_EDGE_PIPELINE_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "ban.h"
#include "context.h"
#include "edge_config.h"
#include "log.h"
#include "model.h"
#include "msg.h"
#include "sigdb.h"
#include "sipcheck.h"

typedef struct edge_assets edge_assets_t;

/* Loads the model, the signature file and the allowlist named in the config. NULL with err on
 * failure. */
edge_assets_t *edge_assets_load(const edge_config_t *c, char *err, size_t errlen);

/* The shared slot holding the current assets. */
typedef struct edge_assets_slot edge_assets_slot_t;
edge_assets_slot_t *edge_assets_slot_new(edge_assets_t *initial);
/* What a reload read anew: the model, the context detectors' model (whose state, the
 * traffic seen so far, then starts afresh). */
typedef struct {
    bool model;
    bool context;
} edge_reload_t;
/* The assets of the config again: the signature file and the allowed sources are read anew;
 * the model and the context part are kept from the current assets where their files are the
 * same (path, device, inode, size and modification time), and with the context part its
 * detectors' state. What was read anew goes to *what (may be NULL). NULL with err on
 * failure. */
edge_assets_t *edge_assets_reload(edge_assets_slot_t *slot, const edge_config_t *c,
                                  edge_reload_t *what, char *err, size_t errlen);
/* Publishes new assets (takes ownership); users move over before their next message. */
void edge_assets_publish(edge_assets_slot_t *slot, edge_assets_t *a);
void edge_assets_slot_destroy(edge_assets_slot_t **slot);
/* Imposes the current signature set's list of the domain's bans on t (bantable_set_domain);
 * returns how many. */
long edge_assets_impose_bans(edge_assets_slot_t *slot, bantable_t *t, double now);
/* The current assets' model, signature count, signature sequence and allowlist entries (for
 * metrics). */
void edge_assets_info(edge_assets_slot_t *slot, size_t *signatures, uint64_t *sig_sequence,
                      model_stats_t *st, size_t *allowed);

/* How full the context detectors' tables are; false without context detectors. */
bool edge_assets_context_stats(edge_assets_slot_t *slot, context_stats_t *out);

/* banned: the source is banned ([ban]); its message was not scored */
typedef enum {
    VERDICT_NORMAL = 0,
    VERDICT_ANOMALY,
    VERDICT_SIGNATURE,
    VERDICT_BANNED,
    VERDICT_COUNT
} verdict_t;
const char *edge_verdict_name(verdict_t v);

/* Why a message judged anomalous is answered normal anyway. */
typedef enum { WAIVED_NO = 0, WAIVED_ALLOWED, WAIVED_MONITOR, WAIVED_COUNT } waived_t;
const char *edge_waived_name(waived_t w); /* NULL, "allowed", "monitor" */

typedef struct {
    verdict_t verdict; /* the judgement */
    bool allowed;      /* the source is in [verdict] allow_file: never reported */
    waived_t waived;   /* set when a judgement other than normal is answered normal */
    sipinfo_t info;
    model_score_t score;
    double thr_global, thr_local;
    sig_matches_t sigs;
    context_verdict_t ctx; /* flood and dialog detectors, when configured */
    const char *sig_ids[SIGDB_MAX_MATCHES];
    double banned_for; /* seconds the source stays banned after this message; 0: not banned */
    double seconds;    /* time spent on this message */
} edge_result_t;

/* What a caller is answered: the judgement, or normal when it is waived. */
static inline verdict_t edge_answer(const edge_result_t *r)
{
    return r->waived ? VERDICT_NORMAL : r->verdict;
}

typedef struct pipeline pipeline_t;

/* A pipeline judging with the slot's assets and the settings they were loaded with. */
pipeline_t *pipeline_new(edge_assets_slot_t *slot, uint64_t seed);
/* The ban table the pipeline consults and feeds (shared; NULL: no bans), and the budget of
 * the log lines naming the bans it starts (shared too; NULL: every one logged). */
void pipeline_set_bans(pipeline_t *p, bantable_t *bans, log_limit_t *ban_log);
void pipeline_destroy(pipeline_t **self);
/* The settings of the newest assets (those a SIGHUP changes included), which the pipeline
 * moves to: for its own thread. */
const edge_config_t *pipeline_config(pipeline_t *p);

/* Runs one message through. Returns 0, or -1 when out of memory. */
int pipeline_run(pipeline_t *p, const msg_t *m, edge_result_t *out);

/* The report of the message just run: every field of docs/report-schema.json except seq, which
 * the sender adds. A new object. */
json_t *pipeline_report(pipeline_t *p, const msg_t *m, const edge_result_t *r);

#endif
