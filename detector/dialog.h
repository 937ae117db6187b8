/*
 * dialog: per-dialog message sequences, learned as an n-gram model.
 *
 * Every message with a Call-ID becomes a token: its direction on its leg
 * ("a" from the side that spoke first, "b" from the other) and its type (the
 * method of a request; status code and CSeq method of a response), e.g.
 * "a:INVITE", "b:180/INVITE", "a:ACK". A leg is one Call-ID between one pair
 * of endpoints, so the caller-proxy and proxy-callee halves of a call are two
 * sequences whose interleaving in time does not matter.
 *
 * Training counts every (previous order-1 tokens, token) transition of the
 * normal traffic, with "^" before the first message. Scoring looks the same
 * transition up as each message arrives: one never seen in training (or seen
 * fewer than min_count times) flags the message, so an abnormal dialog is
 * flagged at its first abnormal message, not when it ends. A leg is flagged
 * once; later messages of it are not reported again.
 *
 * Legs live in a bounded table: idle ones expire after `timeout` seconds. A
 * leg whose exchange is over (a BYE answered, an OPTIONS, REGISTER or MESSAGE
 * answered outside any dialog, an INVITE refused before any 2xx) is finished. A
 * table short of room gives up an expired leg, else a finished one, else an
 * answered registration (its refresh may come on the same Call-ID), and an
 * open one (a call in progress, whose next message would then look unseen)
 * only when the slots probed hold nothing else, counted as evicted. Legs of
 * those two kinds given up are remembered (who spoke first, what the leg went
 * through: eight bytes, as many as the table has slots, a later one taking an
 * earlier one's place unless that is a call both sides confirmed and the later
 * one is not), so that the next message takes the leg up again rather than
 * starting one that training never saw start that way; the first messages after
 * that, whose context reaches back before it, are not judged.
 *
 * The transitions need both sides of the conversation: a model trained on traffic with
 * responses, fed traffic without (a proxy that mirrors the requests it receives and not the
 * replies: Kamailio's sip_trace() without its "t" mode), would flag nearly every call. So the
 * detector watches its feed: when no response has come for DIALOG_QUIET_SECONDS while
 * requests that only follow a response kept coming (an ACK or a BYE after an INVITE nothing
 * answered, a REGISTER sent again with credentials after a challenge never seen:
 * DIALOG_QUIET_ORPHANS of them from DIALOG_QUIET_SOURCES sources or more), it stands aside
 * (follows the legs, judges nothing) until a response comes. Such requests, and not just
 * requests, so that neither a lull nor a scan or flood the proxy drops without an answer makes
 * it stand aside. A model that learned no response at all (trained
 * on such a feed) judges requests alone and passes over any response.
 */
#ifndef SIPGUARD_DIALOG_H
#define SIPGUARD_DIALOG_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "sipcheck.h"

#define DIALOG_MAX_ORDER 6
/* long enough that a feed that carries responses shows one (a proxy answers within
 * milliseconds, and an INVITE with its 100 Trying within 200 ms), short enough to spare most
 * calls of a busy feed's first seconds */
#define DIALOG_QUIET_SECONDS 4.0
#define DIALOG_QUIET_ORPHANS 4
#define DIALOG_QUIET_SOURCES 2
#define DIALOG_TOKEN_LEN 48

typedef struct {
    int order;          /* n of the n-grams: order-1 tokens of context (default 3) */
    uint32_t min_count; /* transitions seen fewer times are anomalies (default 1) */
    double timeout;  /* idle seconds before a leg is forgotten (default 7200: longer than calls) */
    size_t capacity; /* legs tracked at once (default 65536) */
} dialog_opts_t;

void dialog_opts_default(dialog_opts_t *o);

typedef struct dialog_model dialog_model_t;

typedef struct {
    bool anomaly;
    bool first_of_leg; /* the message opened a new leg */
    bool evicted;      /* its new leg took the slot of an open one, not expired */
    bool resumed;      /* its leg had been given up for room (open, or an answered registration)
                        * and this message took it up again: it and the order - 2 after it are not
                        * judged, as their context reaches back before */
    bool aside; /* not judged: the feed has carried no response for a while (dialog_stats_t) */
    bool passed_over;                   /* a response, passed over by a model that learned none */
    char token[DIALOG_TOKEN_LEN];       /* the message's token */
    char context[DIALOG_TOKEN_LEN * 2]; /* the tokens before it, "|"-joined */
    uint32_t count;                     /* times training saw the transition */
} dialog_verdict_t;

typedef struct {
    size_t legs;       /* held now (open, finished, or expired and not yet reused) */
    size_t finished;   /* of those, the finished ones */
    size_t capacity;   /* slots: the capacity option rounded up to a power of two, at least 1024 */
    uint64_t evicted;  /* open legs given up for new ones before their timeout */
    uint64_t resumed;  /* legs given up for room (open ones, and answered registrations) that a
                        * later message took up again */
    bool no_responses; /* the feed has carried no response for a while (above) and the
                        * model learned responses: the detector stands aside until one comes */
    uint64_t unjudged; /* messages not judged while it stood aside */
    uint64_t quiet_spells; /* times it began to stand aside */
    bool requests_only;    /* the model learned no response: it judges requests alone */
    uint64_t passed_over;  /* responses such a model passed over */
} dialog_stats_t;

/* Training: feed normal traffic in time order, then finish into a model. */
typedef struct dialog_trainer dialog_trainer_t;
dialog_trainer_t *dialog_trainer_new(const dialog_opts_t *o);
void dialog_trainer_add(dialog_trainer_t *t, const msg_t *m, const sipinfo_t *info);
dialog_model_t *dialog_trainer_finish(dialog_trainer_t *t);
/* The training table's stats: legs evicted in training taught transitions of calls cut in two. */
void dialog_trainer_stats(const dialog_trainer_t *t, dialog_stats_t *out);
void dialog_trainer_destroy(dialog_trainer_t **self);

void dialog_model_destroy(dialog_model_t **self);
size_t dialog_model_transitions(const dialog_model_t *m);
/* Whether the model learned transitions and none to a response: trained on a feed of requests. */
bool dialog_model_requests_only(const dialog_model_t *m);
const dialog_opts_t *dialog_model_opts(const dialog_model_t *m);
json_t *dialog_model_to_json(const dialog_model_t *m);
dialog_model_t *dialog_model_from_json(json_t *j, char *err, size_t errlen);

typedef struct dialog dialog_t;
dialog_t *dialog_new(const dialog_model_t *m);
void dialog_destroy(dialog_t **self);
/* Judges one message (in time order). Messages without a Call-ID are never anomalies. */
void dialog_observe(dialog_t *d, const msg_t *m, const sipinfo_t *info, dialog_verdict_t *out);
void dialog_stats(const dialog_t *d, dialog_stats_t *out);

#endif
