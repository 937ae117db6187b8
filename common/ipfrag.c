#include "ipfrag.h"

#include <stdlib.h>
#include <string.h>

#define IPFRAG_MAX 65535
#define IPFRAG_UNITS ((IPFRAG_MAX + 7) / 8)

typedef struct {
    int used;
    ipfrag_key_t key;
    int64_t first_seen;
    size_t total; /* payload length, known once the last fragment arrived; 0 before */
    uint8_t *buf;
    uint8_t covered[(IPFRAG_UNITS + 7) / 8];
} pending_t;

struct ipfrag {
    pending_t *slots;
    int n;
    int timeout;
    skips_t *skips;
    uint8_t *done; /* last completed datagram, handed out to the caller */
};

ipfrag_t *ipfrag_new(int max_pending, int timeout_sec, skips_t *skips)
{
    ipfrag_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->slots = calloc((size_t)max_pending, sizeof *f->slots);
    if (!f->slots) {
        free(f);
        return NULL;
    }
    f->n = max_pending;
    f->timeout = timeout_sec;
    f->skips = skips;
    return f;
}

static void slot_release(pending_t *p)
{
    free(p->buf);
    memset(p, 0, sizeof *p);
}

void ipfrag_destroy(ipfrag_t **self)
{
    if (!*self)
        return;
    for (int i = 0; i < (*self)->n; i++)
        slot_release(&(*self)->slots[i]);
    free((*self)->slots);
    free((*self)->done);
    free(*self);
    *self = NULL;
}

static int key_equal(const ipfrag_key_t *a, const ipfrag_key_t *b)
{
    return a->family == b->family && a->id == b->id && a->proto == b->proto &&
           memcmp(a->src, b->src, 16) == 0 && memcmp(a->dst, b->dst, 16) == 0;
}

/* Finds the slot of a datagram, or claims a free (or expired, or oldest) one. */
static pending_t *slot_for(ipfrag_t *f, const ipfrag_key_t *key, int64_t now)
{
    pending_t *free_slot = NULL, *oldest = NULL;
    for (int i = 0; i < f->n; i++) {
        pending_t *p = &f->slots[i];
        if (p->used && now - p->first_seen > f->timeout) {
            skips_add(f->skips, "ip fragments: datagram timed out incomplete");
            slot_release(p);
        }
        if (!p->used) {
            if (!free_slot)
                free_slot = p;
            continue;
        }
        if (key_equal(&p->key, key))
            return p;
        if (!oldest || p->first_seen < oldest->first_seen)
            oldest = p;
    }
    if (!free_slot) {
        skips_add(f->skips, "ip fragments: table full, oldest datagram dropped");
        slot_release(oldest);
        free_slot = oldest;
    }
    free_slot->buf = malloc(IPFRAG_MAX);
    if (!free_slot->buf)
        return NULL;
    free_slot->used = 1;
    free_slot->key = *key;
    free_slot->first_seen = now;
    return free_slot;
}

static int all_covered(const pending_t *p)
{
    size_t units = (p->total + 7) / 8;
    for (size_t u = 0; u < units; u++)
        if (!(p->covered[u / 8] & (1u << (u % 8))))
            return 0;
    return 1;
}

int ipfrag_add(ipfrag_t *f, const ipfrag_key_t *key, int64_t now, size_t offset, int more,
               const uint8_t *data, size_t len, const uint8_t **out, size_t *out_len)
{
    if (offset + len > IPFRAG_MAX || (more && len % 8 != 0) || (more && len == 0)) {
        skips_add(f->skips, "ip fragments: invalid fragment");
        return -1;
    }
    pending_t *p = slot_for(f, key, now);
    if (!p) {
        skips_add(f->skips, "ip fragments: out of memory");
        return -1;
    }
    memcpy(p->buf + offset, data, len);
    for (size_t u = offset / 8; u < (offset + len + 7) / 8; u++)
        p->covered[u / 8] |= (uint8_t)(1u << (u % 8));
    if (!more)
        p->total = offset + len;
    if (p->total == 0 || !all_covered(p))
        return 0;
    free(f->done);
    f->done = p->buf;
    p->buf = NULL;
    *out = f->done;
    *out_len = p->total;
    slot_release(p);
    return 1;
}

void ipfrag_flush(ipfrag_t *f)
{
    for (int i = 0; i < f->n; i++) {
        if (f->slots[i].used) {
            skips_add(f->skips, "ip fragments: datagram incomplete at end of input");
            slot_release(&f->slots[i]);
        }
    }
}
