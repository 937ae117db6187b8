#include "flood.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define HALFOPEN_NS FLOOD_KEYS /* counter namespace of half-open events */
#define PENDING_BITS 14
#define PROBES 8

typedef struct {
    uint64_t key; /* 0: empty */
    double c, t;
} counter_t;

typedef struct {
    uint64_t call; /* call-id hash; 0: empty */
    double t200;
    endpoint_t caller;
} pending_t;

typedef struct {
    uint64_t addr; /* address hash; 0: empty */
    double until;
} established_t;

#define ESTABLISHED_BITS 16

struct flood {
    flood_opts_t o;
    double thr_stranger[2][FLOOD_CLASSES];
    established_t *est; /* addresses with a current registration: direct-mapped by hash */
    double thr[FLOOD_KEYS][FLOOD_CLASSES];
    double thr_halfopen;
    counter_t *tab;
    size_t cap;      /* power of two */
    pending_t *pend; /* direct-mapped by call-id hash */
    uint64_t *fifo;  /* call-id hashes in 200 order, for expiry */
    double *fifo_t;
    size_t fifo_head, fifo_len;
    /* busy addresses with their own thresholds: open addressing, index + 1 */
    const flood_known_t *known;
    uint32_t *known_idx;
    size_t known_cap;
    /* training: the counts of the last observe() */
    double last[FLOOD_KEYS];
    double last_halfopen;
    bool halfopen_event;
    uint64_t evicted; /* counters still holding a request's worth reused for another key */
};

void flood_opts_default(flood_opts_t *o)
{
    o->tau = 1.0;
    o->ack_wait = 4.0;
    o->fpr = 0.001;
    o->slack = 0.25;
    o->floor = 2.0;
    o->floor_stranger = 1.5;
    o->capacity = 16384;
}

const char *flood_key_name(int key)
{
    static const char *n[] = {"source", "identity", "target", "global"};
    return key >= 0 && key < FLOOD_KEYS ? n[key] : "half-open";
}

const char *flood_class_name(int cls)
{
    static const char *n[] = {"INVITE", "REGISTER", "other"};
    return cls >= 0 && cls < FLOOD_CLASSES ? n[cls] : "?";
}

static uint64_t addr_hash(const endpoint_t *ep)
{
    return XXH3_64bits_withSeed(ep->addr, ep->family == 6 ? 16 : 4, (uint64_t)ep->family);
}

/* The counter of (namespace, class, key hash): a multiply-xorshift mix, cheap per message. */
static uint64_t counter_key(int ns, int cls, uint64_t h)
{
    uint64_t k = h ^ ((uint64_t)(ns * 8 + cls + 1) * 0x9E3779B97F4A7C15ULL);
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    return k ? k : 1;
}

flood_t *flood_new(const flood_model_t *m, const flood_opts_t *o)
{
    flood_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->o = m ? m->o : *o;
    size_t cap = 1024;
    while (cap < f->o.capacity)
        cap *= 2;
    f->cap = cap;
    f->tab = calloc(cap, sizeof *f->tab);
    f->pend = calloc((size_t)1 << PENDING_BITS, sizeof *f->pend);
    f->fifo = malloc(((size_t)1 << PENDING_BITS) * sizeof *f->fifo);
    f->fifo_t = malloc(((size_t)1 << PENDING_BITS) * sizeof *f->fifo_t);
    f->est = calloc((size_t)1 << ESTABLISHED_BITS, sizeof *f->est);
    if (!f->tab || !f->pend || !f->fifo || !f->fifo_t || !f->est) {
        flood_destroy(&f);
        return NULL;
    }
    for (int k = 0; k < FLOOD_KEYS; k++)
        for (int c = 0; c < FLOOD_CLASSES; c++)
            f->thr[k][c] = m ? m->thr[k][c] : INFINITY;
    f->thr_halfopen = m ? m->thr_halfopen : INFINITY;
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < FLOOD_CLASSES; c++)
            f->thr_stranger[k][c] = m ? m->thr_stranger[k][c] : INFINITY;
    if (m && m->n_known) {
        f->known = m->known;
        f->known_cap = 4 * FLOOD_MAX_KNOWN;
        f->known_idx = calloc(f->known_cap, sizeof *f->known_idx);
        if (!f->known_idx) {
            flood_destroy(&f);
            return NULL;
        }
        for (size_t i = 0; i < m->n_known; i++) {
            endpoint_t ep = {.family = m->known[i].family};
            memcpy(ep.addr, m->known[i].addr, 16);
            size_t h = addr_hash(&ep) & (f->known_cap - 1);
            while (f->known_idx[h])
                h = (h + 1) & (f->known_cap - 1);
            f->known_idx[h] = (uint32_t)i + 1;
        }
    }
    return f;
}

void flood_destroy(flood_t **self)
{
    flood_t *f = *self;
    if (!f)
        return;
    free(f->tab);
    free(f->pend);
    free(f->fifo);
    free(f->fifo_t);
    free(f->est);
    free(f->known_idx);
    free(f);
    *self = NULL;
}

/* c <- c * exp(-dt / tau) + 1 for one key; a full table reuses its most decayed entry, which
 * counts as evicted when it still held a request's worth (more keys than the table holds are
 * counting at once: the counts restart, and a flood by many of them goes unseen). */
static double bump(flood_t *f, uint64_t key, double now, double tau)
{
    size_t mask = f->cap - 1, h = key & mask, victim = h;
    double oldest = INFINITY;
    for (int p = 0; p < PROBES; p++, h = (h + 1) & mask) {
        counter_t *e = &f->tab[h];
        if (e->key == key) {
            double dt = now - e->t;
            e->c = (dt > 0 ? e->c * exp(-dt / tau) : e->c) + 1;
            e->t = now > e->t ? now : e->t;
            return e->c;
        }
        if (!e->key) {
            victim = h;
            break;
        }
        if (e->t < oldest) { /* the entry idle longest has decayed most (within a namespace) */
            oldest = e->t;
            victim = h;
        }
    }
    counter_t *v = &f->tab[victim];
    if (v->key && v->c * exp(-(now - v->t) / tau) >= 1)
        f->evicted++;
    *v = (counter_t){key, 1, now};
    return 1;
}

uint64_t flood_evicted(const flood_t *f)
{
    return f->evicted;
}

size_t flood_capacity(const flood_t *f)
{
    return f->cap;
}

static int method_class(const sipinfo_t *info)
{
    if (!strcmp(info->method, "INVITE"))
        return FLOOD_INVITE;
    if (!strcmp(info->method, "REGISTER"))
        return FLOOD_REGISTER;
    return FLOOD_OTHER;
}

static const flood_known_t *known_source(const flood_t *f, const endpoint_t *src, uint64_t src_hash)
{
    if (!f->known_idx)
        return NULL;
    size_t h = src_hash & (f->known_cap - 1);
    for (uint32_t i; (i = f->known_idx[h]); h = (h + 1) & (f->known_cap - 1)) {
        const flood_known_t *k = &f->known[i - 1];
        if (k->family == src->family && !memcmp(k->addr, src->addr, src->family == 6 ? 16 : 4))
            return k;
    }
    return NULL;
}

/* Tracks 200 OKs to INVITEs and their ACKs; counts each ACK that did not come in time. */
static void track_halfopen(flood_t *f, const msg_t *m, const sipinfo_t *info, double now)
{
    size_t pmask = ((size_t)1 << PENDING_BITS) - 1;
    uint64_t call = info->call_id[0] ? XXH3_64bits(info->call_id, strlen(info->call_id)) | 1 : 0;
    if (call && !info->is_request && info->status == 200 && !strcmp(info->cseq_method, "INVITE")) {
        pending_t *p = &f->pend[call & pmask];
        if (p->call != call) {
            *p = (pending_t){call, now, m->dst};
            if (f->fifo_len == pmask + 1) { /* full: the oldest is forgotten */
                f->fifo_head = (f->fifo_head + 1) & pmask;
                f->fifo_len--;
            }
            size_t at = (f->fifo_head + f->fifo_len++) & pmask;
            f->fifo[at] = call;
            f->fifo_t[at] = now;
        }
    } else if (call && info->is_request && !strcmp(info->method, "ACK")) {
        pending_t *p = &f->pend[call & pmask];
        if (p->call == call)
            p->call = 0;
    }
    while (f->fifo_len && f->fifo_t[f->fifo_head] + f->o.ack_wait < now) {
        uint64_t c = f->fifo[f->fifo_head];
        f->fifo_head = (f->fifo_head + 1) & pmask;
        f->fifo_len--;
        pending_t *p = &f->pend[c & pmask];
        if (p->call != c)
            continue; /* acknowledged */
        p->call = 0;
        double tau = 10 * f->o.tau;
        f->last_halfopen = bump(f, counter_key(HALFOPEN_NS, 0, addr_hash(&p->caller)), now, tau);
        bump(f, counter_key(HALFOPEN_NS, 1, 0), now, tau);
        f->halfopen_event = true;
    }
}

/* A 200 to a REGISTER makes its addressee an established source until the binding expires. */
static void track_registrations(flood_t *f, const msg_t *m, const sipinfo_t *info, double now)
{
    if (info->is_request || info->status != 200 || strcmp(info->cseq_method, "REGISTER") ||
        !m->dst.family)
        return;
    uint64_t h = addr_hash(&m->dst) | 1;
    double expires = info->expires > 0 ? info->expires : 3600;
    size_t mask = ((size_t)1 << ESTABLISHED_BITS) - 1, at = h & mask, victim = at;
    for (int p = 0; p < PROBES; p++) { /* the same address, a free slot, or the soonest to end */
        size_t i = (h + (size_t)p) & mask;
        if (f->est[i].addr == h || !f->est[i].addr || f->est[i].until < now) {
            victim = i;
            break;
        }
        if (f->est[i].until < f->est[victim].until)
            victim = i;
    }
    f->est[victim] = (established_t){h, now + expires};
}

static bool established(const flood_t *f, uint64_t src_hash, double now)
{
    uint64_t h = src_hash | 1;
    size_t mask = ((size_t)1 << ESTABLISHED_BITS) - 1;
    for (int p = 0; p < PROBES; p++) {
        const established_t *e = &f->est[(h + (size_t)p) & mask];
        if (e->addr == h)
            return e->until >= now;
        if (!e->addr)
            return false;
    }
    return false;
}

/* Current half-open count of an address (decayed to now, not bumped). */
static double halfopen_of(flood_t *f, uint64_t src_hash, double now)
{
    uint64_t key = counter_key(HALFOPEN_NS, 0, src_hash);
    size_t mask = f->cap - 1, h = key & mask;
    for (int p = 0; p < PROBES; p++, h = (h + 1) & mask)
        if (f->tab[h].key == key)
            return f->tab[h].c * exp(-(now - f->tab[h].t) / (10 * f->o.tau));
    return 0;
}

/*
 * The source count of a request. A stranger's IPv6 requests count by the /64 they come from:
 * a /64 is one subscriber's or one site's (RIPE-690), and a tool that takes a new address in
 * it for every request would otherwise never pass a count kept per address. Infrastructure
 * and registered sources keep their own count per address, and so do REGISTERs: every phone
 * of a site that restarts at once registers as a stranger, from one /64.
 */
static uint64_t source_count_key(const endpoint_t *src, uint64_t addr_key, int cls, bool vouched)
{
    if (src->family != 6 || vouched || cls == FLOOD_REGISTER)
        return addr_key;
    return XXH3_64bits_withSeed(src->addr, 8, 64); /* seed 64: apart from whole addresses */
}

void flood_observe(flood_t *f, const msg_t *m, const sipinfo_t *info, flood_verdict_t *out)
{
    memset(out, 0, sizeof *out);
    out->key = -2;
    double now = (double)m->ts_sec + m->ts_usec * 1e-6;
    f->halfopen_event = false;
    track_halfopen(f, m, info, now);
    track_registrations(f, m, info, now);
    for (int k = 0; k < FLOOD_KEYS; k++)
        f->last[k] = -1;
    if (!info->is_request || !info->method[0])
        return;
    int cls = method_class(info);
    uint64_t hs[FLOOD_KEYS] = {
        m->src.family ? addr_hash(&m->src) : 0,
        info->from_user[0] ? XXH3_64bits(info->from_user, strlen(info->from_user)) : 0,
        info->ruri_user[0] ? XXH3_64bits(info->ruri_user, strlen(info->ruri_user)) : 0,
        1,
    };
    const flood_known_t *kn = m->src.family ? known_source(f, &m->src, hs[0]) : NULL;
    /* The overall and per-target counts say a flood is on, not who floods: requests from
     * infrastructure (busy in training) and from sources with a current registration are
     * judged by their own keys only (source, identity), so legitimate users keep calling
     * through a distributed flood and can still reach its victim. */
    bool vouched = kn || (m->src.family && established(f, hs[0], now));
    double best = 0;
    for (int k = 0; k < FLOOD_KEYS; k++) {
        if (!hs[k])
            continue;
        uint64_t key =
            k == FLOOD_KEY_SOURCE ? source_count_key(&m->src, hs[k], cls, vouched) : hs[k];
        double c = bump(f, counter_key(k, cls, key), now, f->o.tau);
        f->last[k] = c;
        if ((k == FLOOD_KEY_GLOBAL || k == FLOOD_KEY_TARGET) && vouched)
            continue;
        double thr = f->thr[k][cls];
        if (k == FLOOD_KEY_SOURCE && kn)
            thr = kn->thr[cls];
        else if ((k == FLOOD_KEY_SOURCE || k == FLOOD_KEY_IDENTITY) && !vouched)
            thr = f->thr_stranger[k][cls];
        if (c > thr && c / thr > best) {
            best = c / thr;
            out->flood = true;
            out->key = k;
            out->count = c;
            out->threshold = thr;
        }
    }
    if (cls == FLOOD_INVITE && m->src.family) {
        double h = halfopen_of(f, hs[0], now);
        if (h > f->thr_halfopen && h / f->thr_halfopen > best) {
            out->flood = true;
            out->key = -1;
            out->count = h;
            out->threshold = f->thr_halfopen;
        }
    }
    out->cls = cls;
    out->vouched = vouched;
    memcpy(out->keys, hs, sizeof hs);
}

/* ------------------------------------------------------------------ training */

typedef struct {
    float v;
    uint32_t src; /* index into the trainer's source list (source key only) */
} sample_t;

typedef struct {
    sample_t *s;
    size_t n, cap;
} samples_t;

typedef struct {
    uint8_t addr[16];
    int family;
    uint64_t requests;
    uint64_t ids[5]; /* the first distinct From identities it sent requests for */
    int nids;
} source_t;

struct flood_trainer {
    flood_opts_t o;
    flood_t *f;
    samples_t s[FLOOD_KEYS][FLOOD_CLASSES], halfopen, stranger[2][FLOOD_CLASSES];
    source_t *src;
    size_t nsrc, srccap;
    uint32_t *src_idx; /* open addressing by address hash, index + 1 */
    size_t src_idx_cap;
    uint64_t messages, requests;
};

static int push(samples_t *s, float v, uint32_t src)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        sample_t *n = realloc(s->s, cap * sizeof *n);
        if (!n)
            return -1;
        s->s = n;
        s->cap = cap;
    }
    s->s[s->n++] = (sample_t){v, src};
    return 0;
}

flood_trainer_t *flood_trainer_new(const flood_opts_t *o)
{
    flood_trainer_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->o = *o;
    t->f = flood_new(NULL, o);
    t->src_idx_cap = 1 << 16;
    t->src_idx = calloc(t->src_idx_cap, sizeof *t->src_idx);
    if (!t->f || !t->src_idx) {
        flood_trainer_destroy(&t);
        return NULL;
    }
    return t;
}

void flood_trainer_destroy(flood_trainer_t **self)
{
    flood_trainer_t *t = *self;
    if (!t)
        return;
    flood_destroy(&t->f);
    for (int k = 0; k < FLOOD_KEYS; k++)
        for (int c = 0; c < FLOOD_CLASSES; c++)
            free(t->s[k][c].s);
    free(t->halfopen.s);
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < FLOOD_CLASSES; c++)
            free(t->stranger[k][c].s);
    free(t->src);
    free(t->src_idx);
    free(t);
    *self = NULL;
}

/* The trainer's index of a source address (added when new; UINT32_MAX when full). */
static uint32_t source_index(flood_trainer_t *t, const endpoint_t *ep)
{
    size_t mask = t->src_idx_cap - 1, h = addr_hash(ep) & mask;
    size_t alen = ep->family == 6 ? 16 : 4;
    for (uint32_t i; (i = t->src_idx[h]); h = (h + 1) & mask)
        if (t->src[i - 1].family == ep->family && !memcmp(t->src[i - 1].addr, ep->addr, alen))
            return i - 1;
    if (t->nsrc * 2 >= t->src_idx_cap)
        return UINT32_MAX;
    if (t->nsrc == t->srccap) {
        size_t cap = t->srccap ? t->srccap * 2 : 1024;
        source_t *s = realloc(t->src, cap * sizeof *s);
        if (!s)
            return UINT32_MAX;
        t->src = s;
        t->srccap = cap;
    }
    source_t *s = &t->src[t->nsrc];
    memset(s, 0, sizeof *s);
    memcpy(s->addr, ep->addr, alen);
    s->family = ep->family;
    t->src_idx[h] = (uint32_t)++t->nsrc;
    return (uint32_t)(t->nsrc - 1);
}

void flood_trainer_shortage(const flood_trainer_t *t, uint64_t *evicted, size_t *capacity)
{
    *evicted = t->f->evicted;
    *capacity = t->f->cap;
}

void flood_trainer_add(flood_trainer_t *t, const msg_t *m, const sipinfo_t *info)
{
    flood_verdict_t v;
    flood_observe(t->f, m, info, &v);
    t->messages++;
    if (t->f->halfopen_event)
        push(&t->halfopen, (float)t->f->last_halfopen, 0);
    if (!info->is_request || !info->method[0])
        return;
    t->requests++;
    int cls = method_class(info);
    uint32_t si = m->src.family ? source_index(t, &m->src) : UINT32_MAX;
    if (si != UINT32_MAX) {
        source_t *src = &t->src[si];
        src->requests++;
        uint64_t id =
            info->from_user[0] ? XXH3_64bits(info->from_user, strlen(info->from_user)) : 0;
        bool seen = !id;
        for (int i = 0; i < src->nids && !seen; i++)
            seen = src->ids[i] == id;
        if (!seen && src->nids < 5)
            src->ids[src->nids++] = id;
    }
    for (int k = 0; k < FLOOD_KEYS; k++)
        if (t->f->last[k] >= 0)
            push(&t->s[k][cls], (float)t->f->last[k], k == FLOOD_KEY_SOURCE ? si : 0);
    for (int k = 0; k < 2 && !v.vouched; k++) /* busy sources are taken out at the end */
        if (t->f->last[k] >= 0)
            push(&t->stranger[k][cls], (float)t->f->last[k], si);
}

static int by_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* (1 - fpr) quantile of values, times 1 + slack, at least the floor. */
static double threshold_of(float *v, size_t n, const flood_opts_t *o)
{
    if (n == 0)
        return o->floor * (1 + o->slack);
    qsort(v, n, sizeof *v, by_float);
    size_t at = (size_t)floor((1 - o->fpr) * (double)(n - 1));
    double thr = v[at] * (1 + o->slack);
    return thr > o->floor ? thr : o->floor;
}

int flood_trainer_finish(flood_trainer_t *t, flood_model_t *out)
{
    memset(out, 0, sizeof *out);
    out->o = t->o;
    out->trained_messages = t->messages;
    if (t->requests == 0)
        return -1;
    /* busy sources (1 % of the requests or more, or speaking for five identities or more:
     * proxies, gateways, trunks) get thresholds from their own counts */
    int32_t *known_of = malloc((t->nsrc + 1) * sizeof *known_of);
    float *buf = malloc((t->requests + t->halfopen.n + 1) * sizeof *buf);
    if (!known_of || !buf) {
        free(known_of);
        free(buf);
        return -1;
    }
    for (size_t i = 0; i < t->nsrc; i++) {
        known_of[i] = -1;
        bool busy = (t->src[i].requests * 100 >= t->requests && t->src[i].requests >= 50) ||
                    t->src[i].nids >= 5;
        if (out->n_known < FLOOD_MAX_KNOWN && busy) {
            flood_known_t *k = &out->known[out->n_known];
            memcpy(k->addr, t->src[i].addr, 16);
            k->family = t->src[i].family;
            known_of[i] = (int32_t)out->n_known++;
        }
    }
    for (int k = 0; k < FLOOD_KEYS; k++)
        for (int c = 0; c < FLOOD_CLASSES; c++) {
            samples_t *s = &t->s[k][c];
            size_t n = 0;
            for (size_t i = 0; i < s->n; i++)
                if (k != FLOOD_KEY_SOURCE || s->s[i].src == UINT32_MAX || known_of[s->s[i].src] < 0)
                    buf[n++] = s->s[i].v;
            /* the overall count, like infrastructure, follows the whole population: wider */
            flood_opts_t wide = t->o;
            if (k == FLOOD_KEY_GLOBAL)
                wide.slack = (1 + t->o.slack) * (1 + t->o.slack) - 1;
            out->thr[k][c] = threshold_of(buf, n, &wide);
        }
    for (size_t j = 0; j < out->n_known; j++)
        for (int c = 0; c < FLOOD_CLASSES; c++) {
            samples_t *s = &t->s[FLOOD_KEY_SOURCE][c];
            size_t n = 0;
            for (size_t i = 0; i < s->n; i++)
                if (s->s[i].src != UINT32_MAX && known_of[s->s[i].src] == (int32_t)j)
                    buf[n++] = s->s[i].v;
            {
                /* infrastructure follows the whole population's calls: one day of it is a thin
                 * sample, so it gets the slack twice */
                flood_opts_t wide = t->o;
                wide.slack = (1 + t->o.slack) * (1 + t->o.slack) - 1;
                out->known[j].thr[c] = threshold_of(buf, n, &wide);
            }
        }
    for (int k = 0; k < 2; k++)
        for (int c = 0; c < FLOOD_CLASSES; c++) {
            /* strangers: what unregistered sources did in training, at a lower floor */
            flood_opts_t o = t->o;
            o.floor = t->o.floor_stranger;
            samples_t *st = &t->stranger[k][c];
            size_t n = 0;
            for (size_t i = 0; i < st->n; i++)
                if (st->s[i].src == UINT32_MAX || known_of[st->s[i].src] < 0)
                    buf[n++] = st->s[i].v;
            /* none in training: a stranger's second request within ln 2 tau is already odd */
            out->thr_stranger[k][c] = n ? threshold_of(buf, n, &o) : o.floor;
        }
    for (size_t i = 0; i < t->halfopen.n; i++)
        buf[i] = t->halfopen.s[i].v;
    out->thr_halfopen = threshold_of(buf, t->halfopen.n, &t->o);
    free(buf);
    free(known_of);
    return 0;
}

/* ------------------------------------------------------------------ JSON */

static json_t *classes_json(const double *thr)
{
    json_t *o = json_object();
    for (int c = 0; c < FLOOD_CLASSES; c++)
        json_object_set_new(o, flood_class_name(c), json_real(thr[c]));
    return o;
}

json_t *flood_model_to_json(const flood_model_t *m)
{
    json_t *thr = json_object(), *known = json_array();
    for (int k = 0; k < FLOOD_KEYS; k++)
        json_object_set_new(thr, flood_key_name(k), classes_json(m->thr[k]));
    for (size_t i = 0; i < m->n_known; i++) {
        endpoint_t ep = {.family = m->known[i].family};
        memcpy(ep.addr, m->known[i].addr, 16);
        char a[46];
        msg_address_format(&ep, a);
        json_array_append_new(known, json_pack("{s:s, s:o}", "address", a, "thresholds",
                                               classes_json(m->known[i].thr)));
    }
    json_object_set_new(thr, "source_stranger", classes_json(m->thr_stranger[0]));
    json_object_set_new(thr, "identity_stranger", classes_json(m->thr_stranger[1]));
    return json_pack("{s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:o, s:f, s:o}", "tau", m->o.tau,
                     "ack_wait", m->o.ack_wait, "fpr", m->o.fpr, "slack", m->o.slack, "floor",
                     m->o.floor, "floor_stranger", m->o.floor_stranger, "capacity",
                     (json_int_t)m->o.capacity, "trained_messages", (json_int_t)m->trained_messages,
                     "thresholds", thr, "half_open_threshold", m->thr_halfopen, "busy_sources",
                     known);
}

static int get_num(json_t *o, const char *key, double lo, double *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v) || json_number_value(v) < lo) {
        snprintf(err, errlen, "flood.%s: expected a number >= %g", key, lo);
        return -1;
    }
    *out = json_number_value(v);
    return 0;
}

static int classes_from_json(json_t *o, const char *where, double *thr, char *err, size_t errlen)
{
    if (!json_is_object(o)) {
        snprintf(err, errlen, "%s: expected an object of thresholds", where);
        return -1;
    }
    for (int c = 0; c < FLOOD_CLASSES; c++) {
        json_t *v = json_object_get(o, flood_class_name(c));
        if (!json_is_number(v) || json_number_value(v) <= 0) {
            snprintf(err, errlen, "%s.%s: expected a positive number", where, flood_class_name(c));
            return -1;
        }
        thr[c] = json_number_value(v);
    }
    return 0;
}

/* An IPv4 or IPv6 address in text into 16 bytes and a family (4 or 6). */
static int parse_address(const char *a, uint8_t addr[16], int *family)
{
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, a, addr) == 1) {
        *family = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, a, addr) == 1) {
        *family = 6;
        return 0;
    }
    return -1;
}

int flood_model_from_json(json_t *j, flood_model_t *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    err[0] = '\0';
    flood_opts_default(&m->o);
    double cap;
    if (!json_is_object(j) || get_num(j, "tau", 1e-3, &m->o.tau, err, errlen) ||
        get_num(j, "ack_wait", 0, &m->o.ack_wait, err, errlen) ||
        get_num(j, "capacity", 1, &cap, err, errlen) ||
        get_num(j, "half_open_threshold", 0, &m->thr_halfopen, err, errlen)) {
        if (!json_is_object(j))
            snprintf(err, errlen, "flood: expected an object");
        return -1;
    }
    m->o.capacity = cap > 1 << 26 ? 1 << 26 : (size_t)cap;
    json_t *thr = json_object_get(j, "thresholds"), *known = json_object_get(j, "busy_sources");
    char where[64];
    for (int k = 0; k < FLOOD_KEYS; k++) {
        snprintf(where, sizeof where, "flood.thresholds.%s", flood_key_name(k));
        if (classes_from_json(json_object_get(thr, flood_key_name(k)), where, m->thr[k], err,
                              errlen))
            return -1;
    }
    if (classes_from_json(json_object_get(thr, "source_stranger"),
                          "flood.thresholds.source_stranger", m->thr_stranger[0], err, errlen) ||
        classes_from_json(json_object_get(thr, "identity_stranger"),
                          "flood.thresholds.identity_stranger", m->thr_stranger[1], err, errlen))
        return -1;
    if (!json_is_array(known) || json_array_size(known) > FLOOD_MAX_KNOWN) {
        snprintf(err, errlen, "flood.busy_sources: expected an array of at most %d",
                 FLOOD_MAX_KNOWN);
        return -1;
    }
    size_t i;
    json_t *e;
    json_array_foreach(known, i, e)
    {
        flood_known_t *k = &m->known[m->n_known++];
        const char *a = json_string_value(json_object_get(e, "address"));
        snprintf(where, sizeof where, "flood.busy_sources[%zu]", i);
        if (a && parse_address(a, k->addr, &k->family) == 0 &&
            classes_from_json(json_object_get(e, "thresholds"), where, k->thr, err, errlen) == 0)
            continue;
        if (!err[0] || !a)
            snprintf(err, errlen, "%s: expected an address and thresholds", where);
        return -1;
    }
    return 0;
}
