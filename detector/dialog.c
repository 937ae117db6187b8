#include "dialog.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define PROBES 16

typedef struct {
    char ctx[DIALOG_TOKEN_LEN * 2];
    char tok[DIALOG_TOKEN_LEN];
    uint32_t count;
} transition_t;

typedef struct {
    uint64_t key; /* 0: empty */
    uint32_t idx; /* into transitions */
} slot_t;

struct dialog_model {
    dialog_opts_t o;
    transition_t *tr;
    size_t n, cap;
    slot_t *map;
    size_t mapcap;
    size_t to_responses; /* transitions whose token is a response */
};

/* What a leg has been through, to tell a finished one (nothing more to come) from an open one */
enum {
    LEG_DIALOG = 1,      /* an INVITE, SUBSCRIBE or REFER: more requests may follow its answer */
    LEG_ESTABLISHED = 2, /* a 2xx to an INVITE */
    LEG_REFUSED = 4,     /* a final non-2xx to the INVITE before any 2xx: no call came of it */
    LEG_FINISHED = 8,
    LEG_REGISTER = 16,  /* a REGISTER: its refresh, an hour on, may come on the same Call-ID */
    LEG_ANSWERED = 32,  /* a response seen */
    LEG_CONFIRMED = 64, /* an ACK after the 2xx: a call both sides took up */
};

/* RFC 3261's Timer B and F (64 T1): a request unanswered this long has timed out at its sender,
 * so its leg will see nothing more (a scan, a flood the proxy does not answer). */
#define TRANSACTION_TIMEOUT 32.0

typedef struct {
    uint64_t key; /* 0: empty */
    double t;
    endpoint_t first; /* who spoke first on this leg */
    uint8_t ntok;     /* tokens of context held (up to order - 1) */
    char tok[DIALOG_MAX_ORDER - 1][DIALOG_TOKEN_LEN];
    bool flagged;
    uint8_t state;   /* LEG_* */
    uint8_t unknown; /* messages still to come whose context reaches before a resumption */
    uint32_t cseq;   /* of its last request (ntok a byte, so the leg stays 288 bytes) */
} leg_t;

/* What is kept of an open leg given up for room, so that its next message takes it up again
 * instead of looking like the start of a new leg (a BYE out of nowhere): who spoke first and
 * what the leg had been through, not its tokens. Eight bytes, so that it can remember as many
 * legs as the table holds for a thirty-sixth of the table's memory (a leg takes 288 bytes). */
typedef struct {
    uint32_t tag;   /* the leg key's high half (its low bits chose the place); 0: empty */
    uint16_t first; /* endpoint_hash of who spoke first, its low half */
    uint8_t state;  /* LEG_*, and GONE_FLAGGED */
    uint8_t hour;   /* of the leg's last message, modulo 256: the memory's age, coarsely */
} gone_t;

#define GONE_FLAGGED 128 /* the leg had been flagged */

struct dialog {
    const dialog_model_t *m;
    dialog_opts_t o;
    leg_t *legs;
    size_t cap, active, finished;
    uint64_t evicted, resumed;
    gone_t *gone; /* legs given up for room (open, answered registrations), by key: a later
                   * one takes an earlier one's place */
    size_t gone_mask;
    /* the feed's watch (dialog.h): the last response (or the first message), and since then the
     * requests that only follow a response (orphans), with their sources (up to
     * DIALOG_QUIET_SOURCES) */
    bool watching, no_responses, requests_only;
    double last_response;
    uint64_t orphans;
    uint32_t quiet_src[DIALOG_QUIET_SOURCES];
    int quiet_nsrc;
    uint64_t unjudged, quiet_spells, passed_over;
};

void dialog_opts_default(dialog_opts_t *o)
{
    o->order = 3;
    o->min_count = 1;
    o->timeout = 7200;
    o->capacity = 65536;
}

/* ------------------------------------------------------------------ the model's table */

static uint64_t transition_key(const char *ctx, const char *tok)
{
    char buf[DIALOG_TOKEN_LEN * 3 + 2];
    size_t cl = strlen(ctx), tl = strlen(tok);
    if (cl + tl + 1 > sizeof buf)
        return 1;
    memcpy(buf, ctx, cl + 1);
    memcpy(buf + cl + 1, tok, tl);
    uint64_t k = XXH3_64bits(buf, cl + 1 + tl);
    return k ? k : 1;
}

static dialog_model_t *model_new(const dialog_opts_t *o)
{
    dialog_model_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->o = *o;
    m->mapcap = 1024;
    m->map = calloc(m->mapcap, sizeof *m->map);
    if (!m->map) {
        free(m);
        return NULL;
    }
    return m;
}

void dialog_model_destroy(dialog_model_t **self)
{
    dialog_model_t *m = *self;
    if (!m)
        return;
    free(m->tr);
    free(m->map);
    free(m);
    *self = NULL;
}

static slot_t *find_slot(const dialog_model_t *m, uint64_t key)
{
    size_t mask = m->mapcap - 1;
    for (size_t h = key & mask;; h = (h + 1) & mask)
        if (m->map[h].key == key || !m->map[h].key)
            return &m->map[h];
}

static uint32_t model_count(const dialog_model_t *m, const char *ctx, const char *tok)
{
    slot_t *s = find_slot(m, transition_key(ctx, tok));
    return s->key ? m->tr[s->idx].count : 0;
}

static int grow_map(dialog_model_t *m)
{
    slot_t *old = m->map;
    size_t oldcap = m->mapcap;
    m->mapcap *= 2;
    m->map = calloc(m->mapcap, sizeof *m->map);
    if (!m->map) {
        m->map = old;
        m->mapcap = oldcap;
        return -1;
    }
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].key)
            *find_slot(m, old[i].key) = old[i];
    free(old);
    return 0;
}

/* A response's token is its direction, a colon and its status code ("b:180/INVITE"). */
static bool is_response_token(const char *tok)
{
    return tok[0] && tok[1] == ':' && tok[2] >= '0' && tok[2] <= '9';
}

static int model_add(dialog_model_t *m, const char *ctx, const char *tok, uint32_t count)
{
    if ((m->n + 1) * 2 > m->mapcap && grow_map(m) != 0)
        return -1;
    uint64_t key = transition_key(ctx, tok);
    slot_t *s = find_slot(m, key);
    if (s->key) {
        m->tr[s->idx].count += count;
        return 0;
    }
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 256;
        transition_t *t = realloc(m->tr, cap * sizeof *t);
        if (!t)
            return -1;
        m->tr = t;
        m->cap = cap;
    }
    transition_t *t = &m->tr[m->n];
    snprintf(t->ctx, sizeof t->ctx, "%s", ctx);
    snprintf(t->tok, sizeof t->tok, "%s", tok);
    t->count = count;
    s->key = key;
    s->idx = (uint32_t)m->n++;
    m->to_responses += is_response_token(tok);
    return 0;
}

size_t dialog_model_transitions(const dialog_model_t *m)
{
    return m->n;
}

bool dialog_model_requests_only(const dialog_model_t *m)
{
    return m->n > 0 && m->to_responses == 0;
}

const dialog_opts_t *dialog_model_opts(const dialog_model_t *m)
{
    return &m->o;
}

/* ------------------------------------------------------------------ legs */

static dialog_t *tracker_new(const dialog_model_t *m, const dialog_opts_t *o)
{
    dialog_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->m = m;
    d->o = *o;
    d->cap = 1024;
    while (d->cap < d->o.capacity)
        d->cap *= 2;
    d->legs = calloc(d->cap, sizeof *d->legs);
    d->gone_mask = d->cap - 1;
    d->gone = calloc(d->gone_mask + 1, sizeof *d->gone);
    if (!d->legs || !d->gone) {
        free(d->legs);
        free(d->gone);
        free(d);
        return NULL;
    }
    return d;
}

dialog_t *dialog_new(const dialog_model_t *m)
{
    dialog_t *d = tracker_new(m, &m->o);
    if (d)
        d->requests_only = dialog_model_requests_only(m);
    return d;
}

void dialog_destroy(dialog_t **self)
{
    dialog_t *d = *self;
    if (!d)
        return;
    free(d->legs);
    free(d->gone);
    free(d);
    *self = NULL;
}

void dialog_stats(const dialog_t *d, dialog_stats_t *out)
{
    out->legs = d->active;
    out->finished = d->finished;
    out->capacity = d->cap;
    out->evicted = d->evicted;
    out->resumed = d->resumed;
    out->no_responses = d->no_responses;
    out->unjudged = d->unjudged;
    out->quiet_spells = d->quiet_spells;
    out->requests_only = d->requests_only;
    out->passed_over = d->passed_over;
}

#define ENDPOINT_BYTES 19

/* An endpoint as bytes to hash (its fields, not the struct's padding); returns how many. */
static size_t endpoint_bytes(const endpoint_t *ep, uint8_t *buf)
{
    buf[0] = (uint8_t)ep->family;
    memcpy(buf + 1, ep->addr, sizeof ep->addr);
    buf[17] = (uint8_t)(ep->port >> 8);
    buf[18] = (uint8_t)ep->port;
    return ENDPOINT_BYTES;
}

/* The leg of a message: its Call-ID between its two endpoints, whichever direction. */
static uint64_t leg_key(const msg_t *m, const sipinfo_t *info)
{
    const endpoint_t *lo = &m->src, *hi = &m->dst;
    if (memcmp(lo, hi, sizeof *lo) > 0) {
        lo = &m->dst;
        hi = &m->src;
    }
    uint8_t buf[sizeof info->call_id + 2 * ENDPOINT_BYTES];
    size_t n = strlen(info->call_id);
    memcpy(buf, info->call_id, n);
    n += endpoint_bytes(lo, buf + n);
    n += endpoint_bytes(hi, buf + n);
    uint64_t k = XXH3_64bits(buf, n);
    return k ? k : 1;
}

/* How readily a leg gives up its slot to a new one: an expired leg first, then a finished one
 * (an OPTIONS ping answered, a call hung up), then an answered registration (its refresh may
 * reuse the Call-ID, answered without a challenge: as a new leg, a transition training never
 * saw), and an open one only when the probed slots hold nothing else. Keep-alive pings open a
 * leg each, many times the calls' number, so a table that gave up whichever leg was idle
 * longest forgot calls on hold and flagged their BYE. */
enum { GIVE_EXPIRED, GIVE_FINISHED, GIVE_DORMANT, GIVE_OPEN };

static int give_rank(const dialog_t *d, const leg_t *l, double now)
{
    if (now - l->t > d->o.timeout)
        return GIVE_EXPIRED;
    if (!(l->state & (LEG_FINISHED | LEG_ANSWERED)) && now - l->t > TRANSACTION_TIMEOUT)
        return GIVE_FINISHED;
    if (!(l->state & LEG_FINISHED))
        return GIVE_OPEN;
    return l->state & LEG_REGISTER ? GIVE_DORMANT : GIVE_FINISHED;
}

static uint32_t endpoint_hash(const endpoint_t *ep)
{
    uint8_t buf[ENDPOINT_BYTES];
    return (uint32_t)XXH3_64bits(buf, endpoint_bytes(ep, buf));
}

/* A leg's place in the memory of given-up legs, by its key's low bits (as in the table); the
 * high half, never 0 there, tells whose it is. */
static gone_t *gone_slot(const dialog_t *d, uint64_t key)
{
    return &d->gone[key & d->gone_mask];
}

static uint32_t gone_tag(uint64_t key)
{
    uint32_t t = (uint32_t)(key >> 32);
    return t ? t : 1;
}

static uint8_t hour_of(double t)
{
    return t > 0 && t < 1e18 ? (uint8_t)(uint64_t)(t / 3600.0) : 0;
}

/* Whether a memory is surely older than the legs' timeout: its age counts the hour boundaries
 * crossed since it was made, one more than the whole hours gone by at most, so an hour is
 * added; an age past 255 hours reads modulo 256. */
static bool gone_stale(const dialog_t *d, const gone_t *g, double now)
{
    unsigned age = (uint8_t)(hour_of(now) - g->hour);
    return age > d->o.timeout / 3600.0 + 1;
}

/* Remembers a leg given up at now. A call both sides took up (its ACK seen) keeps its place
 * against a leg that is not one, until it is stale: a flood of INVITEs answered but never
 * confirmed, which evicts open legs by the thousand, would otherwise overwrite the memory of
 * every call it evicted before. */
static void remember_gone(dialog_t *d, const leg_t *l, double now)
{
    gone_t *g = gone_slot(d, l->key);
    if (g->tag && (g->state & LEG_CONFIRMED) && !(l->state & LEG_CONFIRMED) &&
        !gone_stale(d, g, now))
        return;
    g->tag = gone_tag(l->key);
    g->first = (uint16_t)endpoint_hash(&l->first);
    g->state = (uint8_t)(l->state | (l->flagged ? GONE_FLAGGED : 0));
    g->hour = hour_of(l->t);
}

/* Takes up again a new leg l that was given up for room (open, or an answered registration),
 * unless the memory of it is older than the legs' timeout: who spoke first and what it had
 * been through come back, as an open leg (a registration finishes again at its answer), and
 * this message and the order - 2 after it, whose context reaches back before it, are not
 * judged. Whether it was. */
static bool take_up_again(dialog_t *d, leg_t *l, const msg_t *m, double now)
{
    gone_t *g = gone_slot(d, l->key);
    if (g->tag != gone_tag(l->key) || gone_stale(d, g, now))
        return false;
    l->first = (uint16_t)endpoint_hash(&m->src) == g->first ? m->src : m->dst;
    /* counted as finished when it is again */
    l->state = (uint8_t)(g->state & ~(LEG_FINISHED | GONE_FLAGGED));
    l->flagged = g->state & GONE_FLAGGED;
    l->unknown = (uint8_t)(d->o.order - 1);
    g->tag = 0;
    d->resumed++;
    return true;
}

/* The leg's entry; a new one takes an empty slot, else the probed one most readily given up
 * (the one idle longest among equals). *evicted: an open leg was given up for it (a
 * registration given up is not counted: its refresh mostly comes on a new Call-ID, or is
 * challenged, as its first registration was); that leg is remembered. */
static leg_t *find_leg(dialog_t *d, uint64_t key, double now, bool *fresh, bool *evicted)
{
    size_t mask = d->cap - 1, h = key & mask, victim = h;
    int best = GIVE_OPEN + 1;
    double oldest = INFINITY;
    *evicted = false;
    for (int p = 0; p < PROBES; p++, h = (h + 1) & mask) {
        leg_t *l = &d->legs[h];
        if (l->key == key) {
            if (now - l->t <= d->o.timeout) {
                *fresh = false;
                return l;
            }
            victim = h; /* expired: start it again */
            best = GIVE_EXPIRED;
            break;
        }
        if (!l->key) {
            victim = h;
            best = -1;
            break;
        }
        int r = give_rank(d, l, now);
        if (r < best || (r == best && l->t < oldest)) {
            best = r;
            oldest = l->t;
            victim = h;
        }
    }
    leg_t *l = &d->legs[victim];
    if (!l->key)
        d->active++;
    if (l->state & LEG_FINISHED)
        d->finished--;
    if (best == GIVE_OPEN) {
        d->evicted++;
        *evicted = true;
    }
    if (best == GIVE_OPEN || best == GIVE_DORMANT)
        remember_gone(d, l, now);
    memset(l, 0, sizeof *l);
    l->key = key;
    *fresh = true;
    return l;
}

/* Moves the leg's state on by one message: finished when a BYE is answered, when an INVITE is
 * refused before any 2xx (busy, declined, cancelled: its ACK follows at once, and does not open
 * the leg again), and when a request outside any dialog (OPTIONS, REGISTER, MESSAGE, PUBLISH)
 * has its final answer; another request opens it again. */
static void follow_state(dialog_t *d, leg_t *l, const sipinfo_t *info)
{
    bool was = l->state & LEG_FINISHED, now = false;
    if (info->is_request) {
        if (!strcmp(info->method, "INVITE") || !strcmp(info->method, "SUBSCRIBE") ||
            !strcmp(info->method, "REFER"))
            l->state |= LEG_DIALOG;
        else if (!strcmp(info->method, "REGISTER"))
            l->state |= LEG_REGISTER;
        bool ack = !strcmp(info->method, "ACK");
        if (ack && (l->state & LEG_ESTABLISHED))
            l->state |= LEG_CONFIRMED;
        now = was && ack; /* the ACK of a refusal */
    } else if (info->status < 200) {
        l->state |= LEG_ANSWERED;
        now = was; /* a provisional answer changes nothing else */
    } else {
        bool invite = !strcmp(info->cseq_method, "INVITE");
        l->state |= LEG_ANSWERED;
        if (invite && info->status < 300)
            l->state |= LEG_ESTABLISHED;
        else if (invite && !(l->state & LEG_ESTABLISHED))
            l->state |= LEG_REFUSED; /* a challenge (407) too: a new INVITE opens it again */
        now = !strcmp(info->cseq_method, "BYE") || (!invite && !(l->state & LEG_DIALOG)) ||
              (invite && (l->state & LEG_REFUSED) && !(l->state & LEG_ESTABLISHED));
    }
    l->state = (uint8_t)((l->state & ~LEG_FINISHED) | (now ? LEG_FINISHED : 0));
    d->finished = d->finished - was + now;
}

static void make_token(const msg_t *m, const leg_t *l, const sipinfo_t *info, char *tok)
{
    char dir = msg_endpoint_equal(&m->src, &l->first, true) ? 'a' : 'b';
    if (info->is_request)
        snprintf(tok, DIALOG_TOKEN_LEN, "%c:%s", dir, info->method[0] ? info->method : "?");
    else
        snprintf(tok, DIALOG_TOKEN_LEN, "%c:%d/%s", dir, info->status,
                 info->cseq_method[0] ? info->cseq_method : "?");
}

static void context_of(const leg_t *l, int order, char *ctx, size_t cap)
{
    size_t o = 0;
    ctx[0] = '\0';
    int want = order - 1;
    for (int i = 0; i < want; i++) {
        int k = l->ntok - want + i; /* index into the held tokens; negative: before the start */
        const char *t = k < 0 ? "^" : l->tok[k];
        int w = snprintf(ctx + o, cap - o, "%s%s", i ? "|" : "", t);
        if (w < 0 || (size_t)w >= cap - o)
            break;
        o += (size_t)w;
    }
}

static void push_token(leg_t *l, int order, const char *tok)
{
    int keep = order - 1;
    if (keep <= 0)
        return;
    if (l->ntok == keep) {
        memmove(l->tok[0], l->tok[1], (size_t)(keep - 1) * DIALOG_TOKEN_LEN);
        l->ntok--;
    }
    snprintf(l->tok[l->ntok++], DIALOG_TOKEN_LEN, "%s", tok);
}

/* Whether a message belongs to a leg (a Call-ID; a response with its status). */
static bool has_leg(const sipinfo_t *info)
{
    return info->call_id[0] && (info->is_request || info->status != 0);
}

/* Whether a request can only have followed a response this leg never showed: an ACK or a BYE
 * after an INVITE that nothing answered (an ACK answers a final response, and a BYE needs a
 * dialog, which a response sets up), or a new request (a higher CSeq) within a transaction's
 * timeout of one nothing answered (a REGISTER or an INVITE sent again with credentials after
 * its challenge: RFC 3261 has a UA wait for the final answer, or the timeout, first). A feed
 * without responses is full of them. */
static bool follows_a_response_unseen(const leg_t *l, const sipinfo_t *info, double now)
{
    if (!info->is_request || (l->state & LEG_ANSWERED))
        return false;
    if ((l->state & LEG_DIALOG) && (!strcmp(info->method, "ACK") || !strcmp(info->method, "BYE")))
        return true;
    return l->cseq && info->cseq > l->cseq && now - l->t <= TRANSACTION_TIMEOUT;
}

/* Moves a leg on by one message; fills the token and its context, and *judged: whether that
 * context is known (not from before a resumption). Returns the leg or NULL. */
static leg_t *advance(dialog_t *d, const msg_t *m, const sipinfo_t *info, char *tok, char *ctx,
                      bool *fresh, bool *evicted, bool *resumed, bool *judged, bool *orphan)
{
    if (!has_leg(info))
        return NULL;
    double now = (double)m->ts_sec + m->ts_usec * 1e-6;
    leg_t *l = find_leg(d, leg_key(m, info), now, fresh, evicted);
    *resumed = *fresh && take_up_again(d, l, m, now);
    if (*fresh && !*resumed)
        l->first = m->src;
    *orphan = follows_a_response_unseen(l, info, now);
    if (info->is_request && info->cseq > l->cseq)
        l->cseq = info->cseq;
    l->t = now;
    follow_state(d, l, info);
    make_token(m, l, info, tok);
    context_of(l, d->o.order, ctx, DIALOG_TOKEN_LEN * 2);
    push_token(l, d->o.order, tok);
    *judged = l->unknown == 0;
    if (l->unknown)
        l->unknown--;
    return l;
}

/* Counts an orphan's source among those since the last response, up to DIALOG_QUIET_SOURCES. */
static void note_quiet_source(dialog_t *d, const endpoint_t *src)
{
    uint32_t h = endpoint_hash(src) | 1;
    for (int i = 0; i < d->quiet_nsrc; i++)
        if (d->quiet_src[i] == h)
            return;
    if (d->quiet_nsrc < DIALOG_QUIET_SOURCES)
        d->quiet_src[d->quiet_nsrc++] = h;
}

/* Follows whether the feed carries responses (dialog.h): stands aside when none has come for a
 * while though requests that only follow one kept coming, and judges again at the next one.
 * orphan: the message is such a request. */
static void watch_feed(dialog_t *d, const msg_t *m, const sipinfo_t *info, bool orphan)
{
    double now = (double)m->ts_sec + m->ts_usec * 1e-6;
    if (!d->watching) {
        d->watching = true;
        d->last_response = now;
    }
    if (!info->is_request) {
        d->last_response = now;
        d->orphans = 0;
        d->quiet_nsrc = 0;
        d->no_responses = false;
        return;
    }
    if (orphan) {
        d->orphans++;
        note_quiet_source(d, &m->src);
    }
    if (!d->no_responses && d->orphans >= DIALOG_QUIET_ORPHANS &&
        d->quiet_nsrc >= DIALOG_QUIET_SOURCES && now - d->last_response >= DIALOG_QUIET_SECONDS) {
        d->no_responses = true;
        d->quiet_spells++;
    }
}

void dialog_observe(dialog_t *d, const msg_t *m, const sipinfo_t *info, dialog_verdict_t *out)
{
    memset(out, 0, sizeof *out);
    if (!has_leg(info))
        return;
    if (d->requests_only && !info->is_request) {
        d->passed_over++; /* the model knows no response: as if the feed had carried none */
        out->passed_over = true;
        return;
    }
    bool fresh, judged, orphan;
    leg_t *l = advance(d, m, info, out->token, out->context, &fresh, &out->evicted, &out->resumed,
                       &judged, &orphan);
    if (!d->requests_only)
        watch_feed(d, m, info, orphan);
    out->first_of_leg = fresh && !out->resumed;
    if (!judged)
        return;
    if (d->no_responses) {
        out->aside = true;
        d->unjudged++;
        return;
    }
    out->count = model_count(d->m, out->context, out->token);
    if (out->count < d->o.min_count && !l->flagged) {
        out->anomaly = true;
        l->flagged = true;
    }
}

/* ------------------------------------------------------------------ training */

struct dialog_trainer {
    dialog_t *legs;
    dialog_model_t *m;
};

dialog_trainer_t *dialog_trainer_new(const dialog_opts_t *o)
{
    if (o->order < 1 || o->order > DIALOG_MAX_ORDER)
        return NULL;
    dialog_trainer_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->m = model_new(o);
    t->legs = t->m ? tracker_new(t->m, o) : NULL;
    if (!t->legs) {
        dialog_trainer_destroy(&t);
        return NULL;
    }
    return t;
}

void dialog_trainer_add(dialog_trainer_t *t, const msg_t *m, const sipinfo_t *info)
{
    char tok[DIALOG_TOKEN_LEN], ctx[DIALOG_TOKEN_LEN * 2];
    bool fresh, evicted, resumed, judged, orphan;
    if (advance(t->legs, m, info, tok, ctx, &fresh, &evicted, &resumed, &judged, &orphan) && judged)
        model_add(t->m, ctx, tok, 1);
}

void dialog_trainer_stats(const dialog_trainer_t *t, dialog_stats_t *out)
{
    dialog_stats(t->legs, out);
}

dialog_model_t *dialog_trainer_finish(dialog_trainer_t *t)
{
    dialog_model_t *m = t->m;
    t->m = NULL;
    return m;
}

void dialog_trainer_destroy(dialog_trainer_t **self)
{
    dialog_trainer_t *t = *self;
    if (!t)
        return;
    dialog_destroy(&t->legs);
    dialog_model_destroy(&t->m);
    free(t);
    *self = NULL;
}

/* ------------------------------------------------------------------ JSON */

json_t *dialog_model_to_json(const dialog_model_t *m)
{
    json_t *tr = json_array();
    for (size_t i = 0; i < m->n; i++)
        json_array_append_new(
            tr, json_pack("[s, s, I]", m->tr[i].ctx, m->tr[i].tok, (json_int_t)m->tr[i].count));
    return json_pack("{s:i, s:I, s:f, s:I, s:o}", "order", m->o.order, "min_count",
                     (json_int_t)m->o.min_count, "timeout", m->o.timeout, "capacity",
                     (json_int_t)m->o.capacity, "transitions", tr);
}

dialog_model_t *dialog_model_from_json(json_t *j, char *err, size_t errlen)
{
    dialog_opts_t o;
    dialog_opts_default(&o);
    json_t *order = json_object_get(j, "order"), *minc = json_object_get(j, "min_count"),
           *to = json_object_get(j, "timeout"), *cap = json_object_get(j, "capacity"),
           *tr = json_object_get(j, "transitions");
    if (!json_is_integer(order) || json_integer_value(order) < 1 ||
        json_integer_value(order) > DIALOG_MAX_ORDER) {
        snprintf(err, errlen, "dialog.order: expected a whole number from 1 to %d",
                 DIALOG_MAX_ORDER);
        return NULL;
    }
    if (!json_is_integer(minc) || json_integer_value(minc) < 1 || !json_is_number(to) ||
        json_number_value(to) <= 0 || !json_is_integer(cap) || json_integer_value(cap) < 1 ||
        json_integer_value(cap) > (1 << 26) || !json_is_array(tr)) {
        snprintf(err, errlen,
                 "dialog: min_count, timeout, capacity and transitions must be "
                 "positive numbers and an array");
        return NULL;
    }
    o.order = (int)json_integer_value(order);
    o.min_count = (uint32_t)json_integer_value(minc);
    o.timeout = json_number_value(to);
    o.capacity = (size_t)json_integer_value(cap);
    dialog_model_t *m = model_new(&o);
    size_t i;
    json_t *e;
    json_array_foreach(tr, i, e)
    {
        const char *ctx = json_string_value(json_array_get(e, 0)),
                   *tok = json_string_value(json_array_get(e, 1));
        json_t *n = json_array_get(e, 2);
        if (!ctx || !tok || !json_is_integer(n) || json_integer_value(n) < 1 ||
            strlen(ctx) >= DIALOG_TOKEN_LEN * 2 || strlen(tok) >= DIALOG_TOKEN_LEN ||
            model_add(m, ctx, tok, (uint32_t)json_integer_value(n)) != 0) {
            snprintf(err, errlen, "dialog.transitions[%zu]: expected [context, token, count]", i);
            dialog_model_destroy(&m);
            return NULL;
        }
    }
    return m;
}
