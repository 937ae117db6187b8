#include "binding.h"

#include <arpa/inet.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define CBF_HASHES 4
#define PENDING_SLOTS 8192 /* REGISTER transactions in flight, direct-mapped */
#define REPLAY_SLOTS 16384 /* recent digests, direct-mapped */

typedef struct {
    uint64_t id; /* identity hash; 0: empty */
    char identity[64];
    endpoint_t addr;
    char via_host[64], contact_host[64];
    uint8_t mac[6];
    bool has_mac;
    double until;
} bind_t;

typedef struct {
    uint64_t call; /* 0: empty */
    bool challenged;
    endpoint_t addr;
    char via_host[64], contact_host[64];
    uint8_t mac[6];
    bool has_mac;
    int expires;
} pending_t;

typedef struct {
    uint64_t digest; /* 0: empty */
    uint64_t addr, call;
} seen_auth_t;

typedef struct {
    uint64_t addr;     /* address hash; 0: empty */
    uint64_t identity; /* the identity last bound to it */
    char name[64];
} by_addr_t;

struct binding {
    binding_model_t m;
    uint8_t *cbf; /* counting Bloom filter over identities */
    size_t cbf_size;
    bind_t *tab;
    size_t cap, n;
    size_t tombs; /* slots of removed bindings, which probes pass over as if taken */
    double swept; /* when the table was last rebuilt for room (binding time) */
    by_addr_t *rev;
    pending_t *pend;
    seen_auth_t *auth;
    uint64_t refused;
};

void binding_opts_default(binding_opts_t *o)
{
    o->expected_users = 100000;
    o->require_challenge = true;
    o->infra_identities = 5;
}

const char *binding_class_name(bind_class_t c)
{
    static const char *n[] = {"ok",        "new-location",   "spoofed-source",
                              "sip-spoof", "identity-theft", "auth-replay"};
    return (unsigned)c < BIND_CLASSES ? n[c] : "?";
}

static uint64_t hash_str(const char *s, uint64_t seed)
{
    uint64_t h = XXH3_64bits_withSeed(s, strlen(s), seed);
    return h ? h : 1;
}

static uint64_t hash_addr(const endpoint_t *e)
{
    uint64_t h = XXH3_64bits_withSeed(e->addr, e->family == 6 ? 16 : 4, (uint64_t)e->family);
    return h ? h : 1;
}

/* ------------------------------------------------------------------ counting Bloom filter */

static void cbf_add(binding_t *b, uint64_t id, int delta)
{
    uint64_t h1 = id, h2 = (id >> 29 | id << 35) | 1;
    for (int i = 0; i < CBF_HASHES; i++) {
        uint8_t *c = &b->cbf[(h1 + (uint64_t)i * h2) % b->cbf_size];
        if (delta > 0 && *c < 255)
            (*c)++;
        else if (delta < 0 && *c > 0 && *c < 255) /* a saturated counter stays: never a false no */
            (*c)--;
    }
}

static bool cbf_maybe(const binding_t *b, uint64_t id)
{
    uint64_t h1 = id, h2 = (id >> 29 | id << 35) | 1;
    for (int i = 0; i < CBF_HASHES; i++)
        if (!b->cbf[(h1 + (uint64_t)i * h2) % b->cbf_size])
            return false;
    return true;
}

/* ------------------------------------------------------------------ tables */

binding_t *binding_new(const binding_model_t *m)
{
    binding_t *b = calloc(1, sizeof *b);
    if (!b)
        return NULL;
    b->m = *m;
    size_t users = m->o.expected_users ? m->o.expected_users : 1000;
    b->cbf_size = users * 10 + 64; /* ~1 % false "maybe" at the expected count */
    b->cap = 1024;
    while (b->cap < 2 * users)
        b->cap *= 2;
    b->cbf = calloc(b->cbf_size, 1);
    b->tab = calloc(b->cap, sizeof *b->tab);
    b->rev = calloc(b->cap, sizeof *b->rev);
    b->pend = calloc(PENDING_SLOTS, sizeof *b->pend);
    b->auth = calloc(REPLAY_SLOTS, sizeof *b->auth);
    if (!b->cbf || !b->tab || !b->rev || !b->pend || !b->auth) {
        binding_destroy(&b);
        return NULL;
    }
    return b;
}

void binding_destroy(binding_t **self)
{
    binding_t *b = *self;
    if (!b)
        return;
    free(b->cbf);
    free(b->tab);
    free(b->rev);
    free(b->pend);
    free(b->auth);
    free(b);
    *self = NULL;
}

size_t binding_count(const binding_t *b)
{
    return b->n;
}

uint64_t binding_refused(const binding_t *b)
{
    return b->refused;
}

size_t binding_tombstones(const binding_t *b)
{
    return b->tombs;
}

size_t binding_capacity(const binding_t *b)
{
    return b->cap / 4 * 3; /* bind_identity keeps the table at most three quarters full */
}

/* The binding of an identity, or NULL; an expired one is removed on the way. */
static bind_t *find(binding_t *b, uint64_t id, double now)
{
    if (!cbf_maybe(b, id))
        return NULL;
    size_t mask = b->cap - 1;
    for (size_t h = id & mask, p = 0; p < b->cap && b->tab[h].id; h = (h + 1) & mask, p++)
        if (b->tab[h].id == id) {
            if (b->tab[h].until >= now)
                return &b->tab[h];
            b->tab[h].until = -1; /* expired: kept as a tombstone for probing, out of the filter */
            cbf_add(b, id, -1);
            b->tab[h].id = ~0ULL;
            b->n--;
            b->tombs++;
            return NULL;
        }
    return NULL;
}

static void unbind(binding_t *b, uint64_t id, double now)
{
    bind_t *e = find(b, id, now);
    if (!e)
        return;
    cbf_add(b, id, -1);
    e->id = ~0ULL; /* tombstone */
    e->until = -1;
    b->n--;
    b->tombs++;
}

/* The table laid out again without its tombstones and expired bindings (those leave the
 * filter). Removals only ever leave tombstones, and an insertion reuses one only where its
 * probe meets it first, so without this the empty slots would run out after enough
 * registrations came and went, and every probe for an identity the filter lets through by
 * mistake would walk the whole table; and a table full of bindings that expired unseen would
 * refuse new ones. Keeps the old table when memory runs out. */
static void rebuild(binding_t *b, double now)
{
    b->swept = now;
    bind_t *t = calloc(b->cap, sizeof *t);
    if (!t)
        return;
    size_t mask = b->cap - 1, n = 0;
    for (size_t i = 0; i < b->cap; i++) {
        const bind_t *e = &b->tab[i];
        if (!e->id || e->id == ~0ULL)
            continue;
        if (e->until < now) {
            cbf_add(b, e->id, -1);
            continue;
        }
        size_t h = e->id & mask;
        while (t[h].id)
            h = (h + 1) & mask;
        t[h] = *e;
        n++;
    }
    free(b->tab);
    b->tab = t;
    b->n = n;
    b->tombs = 0;
}

/* Room for one more binding: at most three quarters of the table bound; a quarter in
 * tombstones, or the table full, makes it rebuild first (full: at most once a minute, since
 * under a flood of registrations the walk would otherwise come with each of them). */
static bool room_for_one(binding_t *b, double now)
{
    bool full = (b->n + 1) * 4 > b->cap * 3;
    if (b->tombs * 4 > b->cap || (full && now - b->swept >= 60))
        rebuild(b, now);
    return (b->n + 1) * 4 <= b->cap * 3;
}

static void bind_identity(binding_t *b, const char *identity, const pending_t *p, double until,
                          double now)
{
    uint64_t id = hash_str(identity, 1);
    bind_t *e = find(b, id, now);
    if (!e) {
        if (!room_for_one(b, now)) { /* full: the filter and table stay bounded */
            b->refused++;
            return;
        }
        size_t mask = b->cap - 1, h = id & mask;
        while (b->tab[h].id && b->tab[h].id != ~0ULL)
            h = (h + 1) & mask;
        e = &b->tab[h];
        b->tombs -= e->id == ~0ULL;
        cbf_add(b, id, +1);
        b->n++;
    }
    e->id = id;
    snprintf(e->identity, sizeof e->identity, "%s", identity);
    e->addr = p->addr;
    snprintf(e->via_host, sizeof e->via_host, "%s", p->via_host);
    snprintf(e->contact_host, sizeof e->contact_host, "%s", p->contact_host);
    memcpy(e->mac, p->mac, 6);
    e->has_mac = p->has_mac;
    e->until = until;
    /* the reverse view: which identity this address belongs to */
    uint64_t ah = hash_addr(&p->addr);
    size_t mask = b->cap - 1, h = ah & mask;
    for (size_t k = 0; k < 16 && b->rev[h].addr && b->rev[h].addr != ah; k++)
        h = (h + 1) & mask;
    b->rev[h] = (by_addr_t){ah, id, ""};
    snprintf(b->rev[h].name, sizeof b->rev[h].name, "%s", identity);
}

/* The identity bound to an address other than `self`, or NULL. */
static const by_addr_t *owner_of(binding_t *b, const endpoint_t *addr, uint64_t self, double now)
{
    uint64_t ah = hash_addr(addr);
    size_t mask = b->cap - 1, h = ah & mask;
    for (size_t k = 0; k < 16 && b->rev[h].addr; k++, h = (h + 1) & mask)
        if (b->rev[h].addr == ah) {
            if (b->rev[h].identity == self)
                return NULL;
            bind_t *e = find(b, b->rev[h].identity, now);
            return e && msg_endpoint_equal(&e->addr, addr, false) ? &b->rev[h] : NULL;
        }
    return NULL;
}

static bool infrastructure(const binding_t *b, const endpoint_t *src)
{
    for (size_t i = 0; i < b->m.n_infra; i++)
        if (msg_endpoint_equal(&b->m.infra[i], src, false))
            return true;
    return false;
}

/* Registrations: remember each REGISTER, note its challenge, bind on its 200. */
static void track_register(binding_t *b, const msg_t *m, const sipinfo_t *info, double now)
{
    if (!info->call_id[0] || strcmp(info->cseq_method, "REGISTER"))
        return;
    uint64_t call = hash_str(info->call_id, 2);
    pending_t *p = &b->pend[call % PENDING_SLOTS];
    if (info->is_request) {
        if (p->call != call)
            *p = (pending_t){.call = call};
        p->addr = m->src;
        snprintf(p->via_host, sizeof p->via_host, "%s", info->via_host);
        snprintf(p->contact_host, sizeof p->contact_host, "%s", info->contact_host);
        p->has_mac = m->has_mac;
        memcpy(p->mac, m->src_mac, 6);
        p->expires = info->expires;
        return;
    }
    if (p->call != call)
        return;
    if (info->status == 401 || info->status == 407) {
        p->challenged = true;
    } else if (info->status == 200 && (p->challenged || !b->m.o.require_challenge)) {
        const char *identity = info->to_user[0] ? info->to_user : info->from_user;
        int expires = info->expires >= 0 ? info->expires : p->expires >= 0 ? p->expires : 3600;
        if (identity[0]) {
            if (expires == 0)
                unbind(b, hash_str(identity, 1), now);
            else
                bind_identity(b, identity, p, now + expires, now);
        }
        p->call = 0;
    }
}

/* A digest answered before, coming back from elsewhere or in another dialog. */
static bool replayed(binding_t *b, const msg_t *m, const sipinfo_t *info)
{
    if (!info->auth_response[0] || !info->auth_nonce[0])
        return false;
    char key[160];
    snprintf(key, sizeof key, "%s|%s", info->auth_nonce, info->auth_response);
    uint64_t d = hash_str(key, 3), a = hash_addr(&m->src), c = hash_str(info->call_id, 2);
    seen_auth_t *s = &b->auth[d % REPLAY_SLOTS];
    if (s->digest == d)
        return s->addr != a || s->call != c; /* a retransmission is the same address and dialog */
    *s = (seen_auth_t){d, a, c};
    return false;
}

static void verdict(binding_verdict_t *out, bind_class_t cls, const char *identity,
                    const char *bound)
{
    out->judged = true;
    out->anomaly = cls != BIND_OK;
    out->cls = cls;
    snprintf(out->identity, sizeof out->identity, "%s", identity);
    snprintf(out->bound, sizeof out->bound, "%s", bound);
}

void binding_observe(binding_t *b, const msg_t *m, const sipinfo_t *info, binding_verdict_t *out)
{
    memset(out, 0, sizeof *out);
    double now = (double)m->ts_sec + m->ts_usec * 1e-6;
    track_register(b, m, info, now);
    if (!info->is_request || !info->from_user[0] || !m->src.family || infrastructure(b, &m->src))
        return;
    out->judged = true;
    if (replayed(b, m, info)) {
        verdict(out, BIND_AUTH_REPLAY, info->from_user, "");
        return;
    }
    uint64_t id = hash_str(info->from_user, 1);
    bind_t *e = find(b, id, now);
    const by_addr_t *other = owner_of(b, &m->src, id, now);
    if (!e) {
        if (other) /* an unbound identity from a registered user's address */
            verdict(out, BIND_IDENTITY_THEFT, info->from_user, other->name);
        return;
    }
    char bound[46];
    msg_address_format(&e->addr, bound);
    bool claims_device = (info->via_host[0] && !strcmp(info->via_host, e->via_host)) ||
                         (info->contact_host[0] && !strcmp(info->contact_host, e->contact_host));
    if (msg_endpoint_equal(&m->src, &e->addr, false)) {
        bool other_hosts =
            (info->via_host[0] && e->via_host[0] && strcmp(info->via_host, e->via_host)) ||
            (info->contact_host[0] && e->contact_host[0] &&
             strcmp(info->contact_host, e->contact_host));
        if (m->has_mac && e->has_mac && memcmp(m->src_mac, e->mac, 6))
            verdict(out, BIND_SPOOFED_SOURCE, info->from_user, bound);
        else if (other_hosts)
            verdict(out, BIND_SIP_SPOOF, info->from_user, bound);
        return;
    }
    if (other)
        verdict(out, BIND_IDENTITY_THEFT, info->from_user, other->name);
    else if (claims_device)
        verdict(out, BIND_SPOOFED_SOURCE, info->from_user, bound);
    else
        verdict(out, BIND_NEW_LOCATION, info->from_user, bound);
}

/* ------------------------------------------------------------------ training */

typedef struct {
    endpoint_t addr;
    uint64_t ids[8]; /* the first distinct identities seen from it */
    int n;
} src_ids_t;

struct binding_trainer {
    binding_opts_t o;
    src_ids_t *src;
    size_t n, cap;
};

binding_trainer_t *binding_trainer_new(const binding_opts_t *o)
{
    binding_trainer_t *t = calloc(1, sizeof *t);
    if (t)
        t->o = *o;
    return t;
}

void binding_trainer_destroy(binding_trainer_t **self)
{
    binding_trainer_t *t = *self;
    if (!t)
        return;
    free(t->src);
    free(t);
    *self = NULL;
}

void binding_trainer_add(binding_trainer_t *t, const msg_t *m, const sipinfo_t *info)
{
    if (!info->is_request || !info->from_user[0] || !m->src.family)
        return;
    src_ids_t *s = NULL;
    for (size_t i = 0; i < t->n && !s; i++) /* sources are few next to messages: a list */
        if (msg_endpoint_equal(&t->src[i].addr, &m->src, false))
            s = &t->src[i];
    if (!s) {
        if (t->n == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 256;
            src_ids_t *n = realloc(t->src, cap * sizeof *n);
            if (!n)
                return;
            t->src = n;
            t->cap = cap;
        }
        s = &t->src[t->n++];
        memset(s, 0, sizeof *s);
        s->addr = m->src;
        s->addr.port = 0;
    }
    uint64_t id = hash_str(info->from_user, 1);
    for (int i = 0; i < s->n; i++)
        if (s->ids[i] == id)
            return;
    if (s->n < 8)
        s->ids[s->n++] = id;
}

void binding_trainer_finish(binding_trainer_t *t, binding_model_t *out)
{
    memset(out, 0, sizeof *out);
    out->o = t->o;
    for (size_t i = 0; i < t->n && out->n_infra < BINDING_MAX_INFRA; i++)
        if (t->src[i].n >= t->o.infra_identities)
            out->infra[out->n_infra++] = t->src[i].addr;
}

/* ------------------------------------------------------------------ JSON */

json_t *binding_model_to_json(const binding_model_t *m)
{
    json_t *infra = json_array();
    for (size_t i = 0; i < m->n_infra; i++) {
        char a[46];
        msg_address_format(&m->infra[i], a);
        json_array_append_new(infra, json_string(a));
    }
    return json_pack("{s:I, s:b, s:i, s:o}", "expected_users", (json_int_t)m->o.expected_users,
                     "require_challenge", m->o.require_challenge, "infrastructure_identities",
                     m->o.infra_identities, "infrastructure", infra);
}

int binding_model_from_json(json_t *j, binding_model_t *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    binding_opts_default(&m->o);
    json_t *users = json_object_get(j, "expected_users"),
           *ch = json_object_get(j, "require_challenge"),
           *ii = json_object_get(j, "infrastructure_identities"),
           *infra = json_object_get(j, "infrastructure");
    if (!json_is_integer(users) || json_integer_value(users) < 1 ||
        json_integer_value(users) > 100000000) {
        snprintf(err, errlen, "binding.expected_users: expected a whole number from 1 to 10^8");
        return -1;
    }
    if (!json_is_boolean(ch) || !json_is_integer(ii) || json_integer_value(ii) < 2 ||
        !json_is_array(infra) || json_array_size(infra) > BINDING_MAX_INFRA) {
        snprintf(err, errlen,
                 "binding: require_challenge (true/false), "
                 "infrastructure_identities (>= 2) and infrastructure (an array of "
                 "at most %d addresses) are required",
                 BINDING_MAX_INFRA);
        return -1;
    }
    m->o.expected_users = (size_t)json_integer_value(users);
    m->o.require_challenge = json_is_true(ch);
    m->o.infra_identities = (int)json_integer_value(ii);
    size_t i;
    json_t *e;
    json_array_foreach(infra, i, e)
    {
        const char *a = json_string_value(e);
        endpoint_t *ep = &m->infra[m->n_infra];
        memset(ep, 0, sizeof *ep);
        if (a && inet_pton(AF_INET, a, ep->addr) == 1)
            ep->family = 4;
        else if (a && inet_pton(AF_INET6, a, ep->addr) == 1)
            ep->family = 6;
        else {
            snprintf(err, errlen, "binding.infrastructure[%zu]: expected an IPv4 or IPv6 address",
                     i);
            return -1;
        }
        m->n_infra++;
    }
    return 0;
}
