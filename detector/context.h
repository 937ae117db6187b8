/*
 * context: the detectors that judge a message by what came before it (flood,
 * dialog, binding), their common model file, and one call that runs them all.
 *
 * The content models (model.h) judge each message alone; these keep state
 * across messages, so they must see the traffic in time order and in one
 * place. Their model is one JSON file (docs/detectors.md):
 *   {"format": "sipguard-context", "version": 1,
 *    "flood": {...}, "dialog": {...}, "binding": {...}}  (each optional)
 * learned by `sipguard context train` from the same normal traffic as the
 * content model, and used by `sipguard score --context` and the edge.
 */
#ifndef SIPGUARD_CONTEXT_H
#define SIPGUARD_CONTEXT_H

#include <stdbool.h>
#include <stdio.h>

#include "binding.h"
#include "dialog.h"
#include "flood.h"

typedef struct {
    bool has_flood;
    flood_model_t flood;
    dialog_model_t *dialog; /* NULL: no dialog model */
    bool has_binding;
    binding_model_t binding;
} context_model_t;

context_model_t *context_model_load(const char *path, char *err, size_t errlen);
/* The same from a parsed document; path is what errors call it. */
context_model_t *context_model_from_json(json_t *root, const char *path, char *err, size_t errlen);
/* Writes to a temporary name and renames. Returns 0, or -1 with the reason in err. */
int context_model_save(const context_model_t *m, const char *path, char *err, size_t errlen);
void context_model_destroy(context_model_t **self);

typedef struct {
    bool anomaly; /* any of them fired */
    flood_verdict_t flood;
    dialog_verdict_t dialog; /* dialog.evicted: an open leg given up for this message's */
    binding_verdict_t binding;
    /* state this message cost for want of room (the edge counts them) */
    uint32_t flood_evicted; /* counters still counting reused for its keys */
    bool binding_refused;   /* its registration not bound: the table was full */
} context_verdict_t;

/* How full the detectors' tables are: what an operator sizes them by. */
typedef struct {
    bool has_flood, has_dialog, has_binding;
    size_t flood_capacity;
    uint64_t flood_evicted;
    dialog_stats_t dialog;
    size_t bindings, binding_capacity;
    uint64_t bindings_refused;
} context_stats_t;

typedef struct context context_t;
context_t *context_new(const context_model_t *m);
void context_destroy(context_t **self);
/* Runs every context detector the model has on one message (time order). */
void context_observe(context_t *c, const msg_t *m, const sipinfo_t *info, context_verdict_t *out);

void context_stats(const context_t *c, context_stats_t *out);
/* Warns on f, after "prog: warning: ", of each table that ran out of room, naming what it cost
 * and the `context train` option that sizes it, and of a feed the dialog detector could not
 * judge as its model expects (no responses, or a model that learned none). Returns how many
 * warnings it wrote. */
int context_warn(FILE *f, const char *prog, const context_stats_t *st);

/* The verdict's fields for a report: "flood", "dialog", "binding" objects added to o, and their
 * names appended to the detector array. */
void context_report(const context_verdict_t *v, json_t *o, json_t *detectors);

/*
 * Context pseudo-headers (DESIGN.md): the detectors' state for this message as three header
 * lines inserted after the message's last header, so the content models learn it too:
 *   X-Ctx-Rate: ok|over|none   X-Ctx-Dialog: known|unseen|none   X-Ctx-Binding: <class>|none
 * Writes the augmented message to out (cap bytes). Returns its length, or 0 when it does not
 * fit (use the message as it is).
 */
#define CONTEXT_AUG_MAX (1 << 20) /* buffer for an augmented message: the longest message + 160 */

size_t context_augment(const context_verdict_t *v, const uint8_t *data, size_t len, uint8_t *out,
                       size_t cap);

#endif
