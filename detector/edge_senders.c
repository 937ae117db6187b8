#include "edge_senders.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "log.h"

typedef struct {
    endpoint_t addr; /* written under the lock, by the ingest thread only */
    bool used;
    uint64_t order; /* when it was first heard, as a count: the listing's order */
    atomic_uint_fast64_t messages, responses;
    _Atomic double last;
} slot_t;

/* A message heard lately: a hash of its bytes and endpoints, its sender's, when it came. */
typedef struct {
    uint64_t key;
    uint64_t sender;
    double t;
} heard_t;

struct edge_senders {
    pthread_mutex_t lock;
    heard_t heard[EDGE_SENDERS_COPY_BUCKETS][EDGE_SENDERS_COPY_WAYS]; /* the ingest thread's */
    atomic_uint_fast64_t copies;
    slot_t slots[EDGE_SENDERS_MAX];
    int hit; /* the slot of the last message's sender: most messages follow one of their own */
    uint64_t added;
    atomic_uint_fast64_t untracked;
};

edge_senders_t *edge_senders_new(void)
{
    edge_senders_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    pthread_mutex_init(&s->lock, NULL);
    s->hit = -1;
    return s;
}

void edge_senders_destroy(edge_senders_t **self)
{
    if (!*self)
        return;
    pthread_mutex_destroy(&(*self)->lock);
    free(*self);
    *self = NULL;
}

static bool same_address(const endpoint_t *a, const endpoint_t *b)
{
    return a->family == b->family && !memcmp(a->addr, b->addr, a->family == 4 ? 4 : 16);
}

/* The slot of addr; -1 when it has none. Read without the lock: only this thread writes. */
static int find(const edge_senders_t *s, const endpoint_t *addr)
{
    for (int i = 0; i < EDGE_SENDERS_MAX; i++)
        if (s->slots[i].used && same_address(&s->slots[i].addr, addr))
            return i;
    return -1;
}

/* A slot for a new sender: a free one, else the one silent longest if it has been silent
 * EDGE_SENDERS_FORGET_SECONDS; -1 when there is none. */
static int add(edge_senders_t *s, const endpoint_t *addr, double now)
{
    int at = -1;
    for (int i = 0; i < EDGE_SENDERS_MAX && at < 0; i++)
        if (!s->slots[i].used)
            at = i;
    for (int i = 0; i < EDGE_SENDERS_MAX && at < 0; i++)
        if (now - atomic_load(&s->slots[i].last) >= EDGE_SENDERS_FORGET_SECONDS)
            at = i;
    if (at < 0)
        return -1;
    pthread_mutex_lock(&s->lock);
    slot_t *e = &s->slots[at];
    e->addr = (endpoint_t){.family = addr->family};
    memcpy(e->addr.addr, addr->addr, sizeof e->addr.addr);
    e->used = true;
    e->order = s->added++;
    atomic_store(&e->messages, 0);
    atomic_store(&e->responses, 0);
    atomic_store(&e->last, now);
    pthread_mutex_unlock(&s->lock);
    /* at most EDGE_SENDERS_MAX a day: a proxy starting to mirror is the news an operator
     * setting one up waits for */
    char a[46];
    msg_address_format(addr, a);
    info("HEP sender %s heard for the first time%s", a,
         s->added > EDGE_SENDERS_MAX ? " (in the place of one silent for a day)" : "");
    return at;
}

/* One writer: a load and a store, not a locked read-modify-write (6.2-9.1 against 10.9-15.1 ns
 * a message in bench/senders_bench, three runs each); a reader sees the count before or after,
 * whole. */
static void bump(atomic_uint_fast64_t *c)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

void edge_senders_count(edge_senders_t *s, const endpoint_t *addr, double now, bool response)
{
    if (!s || (addr->family != 4 && addr->family != 6))
        return;
    int i = s->hit;
    if (i < 0 || !same_address(&s->slots[i].addr, addr)) {
        if ((i = find(s, addr)) < 0 && (i = add(s, addr, now)) < 0) {
            if (atomic_fetch_add_explicit(&s->untracked, 1, memory_order_relaxed) == 0)
                warning("HEP senders past the %d kept apart are counted together "
                        "(sipguard_hep_senders_untracked_total): spoofed datagrams, or more "
                        "proxies than that",
                        EDGE_SENDERS_MAX);
            return;
        }
        s->hit = i;
    }
    slot_t *e = &s->slots[i];
    bump(&e->messages);
    if (response)
        bump(&e->responses);
    atomic_store_explicit(&e->last, now, memory_order_relaxed);
}

size_t edge_senders_list(edge_senders_t *s, edge_sender_t *out, double now)
{
    uint64_t order[EDGE_SENDERS_MAX];
    size_t n = 0;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < EDGE_SENDERS_MAX; i++) {
        const slot_t *e = &s->slots[i];
        double last = atomic_load(&e->last);
        if (!e->used || now - last >= EDGE_SENDERS_FORGET_SECONDS)
            continue;
        out[n] =
            (edge_sender_t){e->addr, atomic_load(&e->messages), atomic_load(&e->responses), last};
        order[n++] = e->order;
    }
    pthread_mutex_unlock(&s->lock);
    /* first heard first: a few entries, so insertion */
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && order[j - 1] > order[j]; j--) {
            uint64_t o = order[j];
            order[j] = order[j - 1];
            order[j - 1] = o;
            edge_sender_t t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    return n;
}

bool edge_senders_forget(edge_senders_t *s, const endpoint_t *addr)
{
    if (!s)
        return false;
    pthread_mutex_lock(&s->lock); /* the addresses stay where they are meanwhile */
    int i = find(s, addr);
    /* a last message at minus infinity lists it as silent for good and frees its place, and a
     * store of the time is all the ingest thread's counting writes: no race with it */
    bool listed = i >= 0 && atomic_load(&s->slots[i].last) > -INFINITY;
    if (listed)
        atomic_store(&s->slots[i].last, -INFINITY);
    pthread_mutex_unlock(&s->lock);
    return listed;
}

/* A hash of the endpoint's family and address (not its port: a proxy may send from several). */
static uint64_t address_hash(const endpoint_t *a)
{
    uint8_t b[17];
    b[0] = (uint8_t)a->family;
    memcpy(b + 1, a->addr, 16);
    return XXH3_64bits(b, sizeof b);
}

/* The message's bytes between its two endpoints (ports too), as one hash. */
static uint64_t message_hash(const msg_t *m)
{
    uint8_t b[2 * 19];
    const endpoint_t *e[2] = {&m->src, &m->dst};
    for (int i = 0; i < 2; i++) {
        b[19 * i] = (uint8_t)e[i]->family;
        memcpy(b + 19 * i + 1, e[i]->addr, 16);
        b[19 * i + 17] = (uint8_t)(e[i]->port >> 8);
        b[19 * i + 18] = (uint8_t)e[i]->port;
    }
    return XXH3_64bits_withSeed(m->data, m->len, XXH3_64bits(b, sizeof b));
}

bool edge_senders_copy(edge_senders_t *s, const endpoint_t *addr, const msg_t *m, double now)
{
    if (!s)
        return false;
    uint64_t key = message_hash(m) | 1, sender = address_hash(addr);
    heard_t *b = s->heard[key % EDGE_SENDERS_COPY_BUCKETS], *h = &b[0];
    for (int w = 0; w < EDGE_SENDERS_COPY_WAYS; w++) {
        if (b[w].key == key) {
            h = &b[w];
            break;
        }
        if (b[w].t < h->t) /* empty ones first (t 0), then the oldest */
            h = &b[w];
    }
    bool recent = h->key == key && now - h->t <= EDGE_SENDERS_COPY_SECONDS &&
                  h->t - now <= EDGE_SENDERS_COPY_SECONDS;
    if (recent && h->sender != sender) {
        atomic_fetch_add_explicit(&s->copies, 1, memory_order_relaxed);
        return true; /* the first sender's stays the one remembered */
    }
    *h = (heard_t){key, sender, now};
    return false;
}

uint64_t edge_senders_copies(const edge_senders_t *s)
{
    return s ? atomic_load(&s->copies) : 0;
}

uint64_t edge_senders_untracked(const edge_senders_t *s)
{
    return s ? atomic_load(&s->untracked) : 0;
}
