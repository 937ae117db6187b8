/*
 * flood: rate anomalies that one message cannot show.
 *
 * Every request updates a decayed count, c <- c * exp(-dt / tau) + 1, for each
 * of four keys and its method class (INVITE, REGISTER, other):
 *   - its source address             (one attacker, scanners);
 *   - its source identity (From user) (one account used from many places);
 *   - its target (Request-URI user)   (many sources against one victim);
 *   - everything together              (distributed floods whose sources each
 *                                       stay below any per-source limit).
 * c is about the number of such requests in the last tau seconds, so it tracks
 * constant and increasing rates alike with O(1) work and no window buffer.
 * A request is a flood when a count passes its threshold. The overall and
 * per-target counts mark only requests from sources that are neither
 * infrastructure (busy in training) nor registered (a 200 to their REGISTER,
 * until it expires): a distributed flood is on, but a registered user's call
 * is still a call.
 *
 * Half-open sessions: a 200 OK to an INVITE whose ACK does not follow within
 * ack_wait seconds counts against the caller's address (decayed over 10 tau);
 * INVITEs from an address over its half-open threshold are floods too.
 *
 * Thresholds are learned, not set: training runs the same counters over
 * normal traffic and takes, per key type and class, the (1 - fpr) quantile
 * of the counts seen, with a slack factor on top; addresses busy in training
 * (a proxy, a trunk) get thresholds of their own from their own counts.
 * State is bounded: a fixed table whose stale entries are reused first.
 */
#ifndef SIPGUARD_FLOOD_H
#define SIPGUARD_FLOOD_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "sipcheck.h"

enum { FLOOD_KEY_SOURCE = 0, FLOOD_KEY_IDENTITY, FLOOD_KEY_TARGET, FLOOD_KEY_GLOBAL, FLOOD_KEYS };
enum { FLOOD_INVITE = 0, FLOOD_REGISTER, FLOOD_OTHER, FLOOD_CLASSES };

#define FLOOD_MAX_KNOWN 1024 /* busy addresses with thresholds of their own */

typedef struct {
    double tau;            /* seconds (default 1) */
    double ack_wait;       /* seconds a 200 to an INVITE waits for its ACK (default 4) */
    double fpr;            /* quantile of the thresholds (default 0.001) */
    double slack;          /* thresholds are multiplied by 1 + slack (default 0.25) */
    double floor;          /* no threshold below this count (default 2) */
    double floor_stranger; /* the same for a source neither infrastructure nor registered
                              (default 1.5: its second request within about half a second) */
    size_t capacity;       /* counters kept (default 16384; stale ones are reused first) */
} flood_opts_t;

typedef struct {
    uint8_t addr[16];
    int family;
    double thr[FLOOD_CLASSES];
} flood_known_t;

/* What training learned. */
typedef struct {
    flood_opts_t o;
    double thr[FLOOD_KEYS][FLOOD_CLASSES];
    /* source and identity keys, for requests from sources neither busy nor registered */
    double thr_stranger[2][FLOOD_CLASSES];
    double thr_halfopen;
    flood_known_t known[FLOOD_MAX_KNOWN];
    size_t n_known;
    uint64_t trained_messages;
} flood_model_t;

typedef struct {
    bool flood;
    int key;      /* FLOOD_KEY_* that fired, or -1 for half-open */
    int cls;      /* FLOOD_INVITE ... */
    double count; /* the decayed count that passed */
    double threshold;
    uint64_t keys[FLOOD_KEYS]; /* the request's key hashes (0: none), to group a flood's members */
    bool vouched;              /* infrastructure or registered: not judged by the overall count */
} flood_verdict_t;

void flood_opts_default(flood_opts_t *o);
const char *flood_key_name(int key);
const char *flood_class_name(int cls);

typedef struct flood flood_t;

/* A detector with the model's thresholds (NULL model: thresholds infinite, for training). */
flood_t *flood_new(const flood_model_t *m, const flood_opts_t *o);
void flood_destroy(flood_t **self);

/* Counters reused for another key while they still held a request's worth (more keys were
 * counting at once than the table holds), and the table's slots. */
uint64_t flood_evicted(const flood_t *f);
size_t flood_capacity(const flood_t *f);

/* Updates the counters with one message (in time order) and judges it. */
void flood_observe(flood_t *f, const msg_t *m, const sipinfo_t *info, flood_verdict_t *out);

/* Training: every message of the normal traffic, in time order, then finish. */
typedef struct flood_trainer flood_trainer_t;
flood_trainer_t *flood_trainer_new(const flood_opts_t *o);
void flood_trainer_add(flood_trainer_t *t, const msg_t *m, const sipinfo_t *info);
/* Counters evicted while training (flood_evicted): counts that restarted, so thresholds learned
 * too low. */
void flood_trainer_shortage(const flood_trainer_t *t, uint64_t *evicted, size_t *capacity);
/* Learns the thresholds into out. Returns 0, or -1 when no request was seen. */
int flood_trainer_finish(flood_trainer_t *t, flood_model_t *out);
void flood_trainer_destroy(flood_trainer_t **self);

/* JSON form of the model (inside the context model file). */
json_t *flood_model_to_json(const flood_model_t *m);
/* Returns 0, or -1 with the reason in err. */
int flood_model_from_json(json_t *j, flood_model_t *m, char *err, size_t errlen);

#endif
