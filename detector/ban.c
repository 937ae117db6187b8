#include "ban.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "fsutil.h"

#define BAN_FILE_VERSION 1
#define MAX_LEVEL 30 /* doublings: far past any max_seconds */

/* One source. IPv4 addresses are kept IPv4-mapped, so one key type serves both families. */
typedef struct {
    uint8_t key[16]; /* the address, masked to the ban prefix */
    uint8_t used;
    uint8_t bits;        /* prefix length of the key, in IPv6 terms (128 for IPv4) */
    uint16_t level;      /* bans so far */
    uint32_t strikes;    /* blocking judgements in the current window */
    double window_start; /* when the current window began */
    double until;        /* end of the current or last ban; 0: never banned */
    double domain_until; /* end of the ban the domain's list imposes (bantable_set_domain); 0:
                          * none. Not saved: the list comes back with the cached signature set */
} entry_t;

struct bantable {
    ban_opts_t o;
    pthread_mutex_t lock;
    entry_t *slots;
    size_t mask, count;
    /* IPv6 entries by prefix length: a lookup tries each length some entry has, since entries
     * made under an earlier ipv6_prefix, or listed by the domain with their own, keep theirs */
    uint32_t v6_bits[129];
    uint8_t v6_lens[129]; /* the lengths with entries, longest first */
    unsigned n_v6_lens;
    entry_t *scratch; /* room for max_sources entries, for rebuilding the table */
    double swept;     /* when the table was last swept to make room */
    uint64_t bans, untracked;
    bool dirty;
};

double ban_clock(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Slots for max_sources sources, at most half full (short probes), and the scratch room to
 * rebuild them. False when out of memory (nothing allocated). */
static bool alloc_slots(size_t max_sources, entry_t **slots, size_t *mask, entry_t **scratch)
{
    size_t cap = 16;
    while (cap < 2 * max_sources)
        cap *= 2;
    *slots = calloc(cap, sizeof **slots);
    *scratch = malloc(max_sources * sizeof **scratch);
    if (!*slots || !*scratch) {
        free(*slots);
        free(*scratch);
        return false;
    }
    *mask = cap - 1;
    return true;
}

bantable_t *bantable_new(const ban_opts_t *o)
{
    bantable_t *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->o = *o;
    if (t->o.after < 1)
        t->o.after = 1;
    if (t->o.prefix6 < 1 || t->o.prefix6 > 128)
        t->o.prefix6 = 64;
    if (t->o.max_sources < 1)
        t->o.max_sources = 1;
    if (!alloc_slots(t->o.max_sources, &t->slots, &t->mask, &t->scratch)) {
        free(t);
        return NULL;
    }
    pthread_mutex_init(&t->lock, NULL);
    return t;
}

void bantable_set_opts(bantable_t *t, const ban_opts_t *o)
{
    pthread_mutex_lock(&t->lock);
    t->o.after = o->after < 1 ? 1 : o->after;
    t->o.window = o->window;
    t->o.seconds = o->seconds;
    t->o.max_seconds = o->max_seconds;
    if (o->prefix6 >= 1 && o->prefix6 <= 128)
        t->o.prefix6 = o->prefix6;
    pthread_mutex_unlock(&t->lock);
}

void bantable_destroy(bantable_t **self)
{
    bantable_t *t = *self;
    if (!t)
        return;
    pthread_mutex_destroy(&t->lock);
    free(t->slots);
    free(t->scratch);
    free(t);
    *self = NULL;
}

/* Clears the bits of addr past the first bits. */
static void mask_to(uint8_t addr[16], unsigned bits)
{
    for (unsigned i = 0; i < 16; i++) {
        unsigned keep = bits >= 8 * (i + 1) ? 8 : bits > 8 * i ? bits - 8 * i : 0;
        addr[i] &= (uint8_t)(keep ? 0xff << (8 - keep) : 0);
    }
}

/* The key of an address: IPv4 (or IPv4-mapped IPv6) whole, IPv6 to the ban prefix. False for
 * an unknown address. */
static bool key_of(const bantable_t *t, int family, const uint8_t *addr, uint8_t key[16],
                   uint8_t *bits)
{
    if (family == 4 || (family == 6 && msg_is_v4_mapped(addr))) {
        memcpy(key, msg_v4_mapped_prefix, 12);
        memcpy(key + 12, family == 4 ? addr : addr + 12, 4);
        *bits = 128;
        return true;
    }
    if (family != 6)
        return false;
    memcpy(key, addr, 16);
    mask_to(key, t->o.prefix6);
    *bits = (uint8_t)t->o.prefix6;
    return true;
}

/* A source is its masked address and its prefix length: 2001:db8:1::/48 and the /64 that
 * starts it have the same bytes. */
static size_t slot_of(const bantable_t *t, const uint8_t key[16], uint8_t bits)
{
    return (size_t)(XXH3_64bits(key, 16) ^ (bits * 0x9E3779B97F4A7C15ULL)) & t->mask;
}

static bool is_v6_key(const uint8_t key[16])
{
    return !msg_is_v4_mapped(key);
}

/* Counts an IPv6 entry of bits in or out of the lengths a lookup tries. */
static void count_v6_len(bantable_t *t, const uint8_t key[16], uint8_t bits, int by)
{
    if (!is_v6_key(key))
        return;
    bool was = t->v6_bits[bits] > 0;
    t->v6_bits[bits] = (uint32_t)((int)t->v6_bits[bits] + by);
    if (was == (t->v6_bits[bits] > 0))
        return;
    t->n_v6_lens = 0;
    for (int len = 128; len >= 0; len--)
        if (t->v6_bits[len])
            t->v6_lens[t->n_v6_lens++] = (uint8_t)len;
}

static void clear_v6_lens(bantable_t *t)
{
    memset(t->v6_bits, 0, sizeof t->v6_bits);
    t->n_v6_lens = 0;
}

static entry_t *find(bantable_t *t, const uint8_t key[16], uint8_t bits)
{
    for (size_t h = slot_of(t, key, bits);; h = (h + 1) & t->mask) {
        entry_t *e = &t->slots[h];
        if (!e->used)
            return NULL;
        if (e->bits == bits && !memcmp(e->key, key, 16))
            return e;
    }
}

/* An entry for key, new and empty if there was none; NULL when the table is full. */
static entry_t *find_or_add(bantable_t *t, const uint8_t key[16], uint8_t bits)
{
    size_t h = slot_of(t, key, bits);
    for (;; h = (h + 1) & t->mask) {
        entry_t *e = &t->slots[h];
        if (!e->used)
            break;
        if (e->bits == bits && !memcmp(e->key, key, 16))
            return e;
    }
    if (t->count >= t->o.max_sources)
        return NULL;
    entry_t *e = &t->slots[h];
    memset(e, 0, sizeof *e);
    memcpy(e->key, key, 16);
    e->bits = bits;
    e->used = 1;
    t->count++;
    count_v6_len(t, key, bits, 1);
    return e;
}

/* When a source's ban ends: its own, or the domain's, whichever ends later. */
static double ban_end(const entry_t *e)
{
    return e->until > e->domain_until ? e->until : e->domain_until;
}

/* Whether a source has anything left to remember at now: a ban, the memory of one, strikes
 * in an open window, or a ban of the domain's. */
static bool remembered(const bantable_t *t, const entry_t *e, double now)
{
    if (e->until > 0 && now < e->until + t->o.max_seconds)
        return true;
    if (e->domain_until > now)
        return true;
    return e->strikes > 0 && now < e->window_start + t->o.window;
}

/* Rebuilds the table with only the sources still remembered. */
static void sweep(bantable_t *t, double now)
{
    size_t n = 0;
    for (size_t h = 0; h <= t->mask; h++)
        if (t->slots[h].used && remembered(t, &t->slots[h], now))
            t->scratch[n++] = t->slots[h];
    if (n == t->count)
        return;
    memset(t->slots, 0, (t->mask + 1) * sizeof *t->slots);
    t->count = 0;
    clear_v6_lens(t);
    for (size_t i = 0; i < n; i++)
        *find_or_add(t, t->scratch[i].key, t->scratch[i].bits) = t->scratch[i];
    t->swept = now;
}

static int by_until_desc(const void *a, const void *b);

long bantable_set_capacity(bantable_t *t, size_t max_sources, double now)
{
    if (max_sources < 1)
        max_sources = 1;
    pthread_mutex_lock(&t->lock);
    if (max_sources == t->o.max_sources) {
        pthread_mutex_unlock(&t->lock);
        return 0;
    }
    entry_t *slots, *scratch;
    size_t mask;
    if (!alloc_slots(max_sources, &slots, &mask, &scratch)) {
        pthread_mutex_unlock(&t->lock);
        return -1;
    }
    /* the old scratch holds every source the old table holds */
    size_t n = 0, held = t->count;
    for (size_t h = 0; h <= t->mask; h++)
        if (t->slots[h].used && (held <= max_sources || remembered(t, &t->slots[h], now)))
            t->scratch[n++] = t->slots[h];
    if (n > max_sources) { /* the bans that end last stay */
        qsort(t->scratch, n, sizeof *t->scratch, by_until_desc);
        n = max_sources;
    }
    free(t->slots);
    t->slots = slots;
    t->mask = mask;
    t->count = 0;
    clear_v6_lens(t);
    t->o.max_sources = max_sources;
    for (size_t i = 0; i < n; i++)
        *find_or_add(t, t->scratch[i].key, t->scratch[i].bits) = t->scratch[i];
    free(t->scratch);
    t->scratch = scratch;
    t->dirty |= n < held;
    pthread_mutex_unlock(&t->lock);
    return (long)(held - n);
}

/* How long the entry of key and bits is still banned at now; 0 when it is not. */
static double left_of(bantable_t *t, const uint8_t key[16], uint8_t bits, double now)
{
    const entry_t *e = find(t, key, bits);
    return e && ban_end(e) > now ? ban_end(e) - now : 0;
}

double bantable_banned(bantable_t *t, const endpoint_t *src, double now)
{
    uint8_t key[16], bits;
    if (!t || !key_of(t, src->family, src->addr, key, &bits))
        return 0;
    pthread_mutex_lock(&t->lock);
    double left = 0;
    if (!is_v6_key(key)) {
        left = left_of(t, key, bits, now);
    } else { /* every prefix length the table holds (usually the one of ipv6_prefix) */
        for (unsigned i = 0; i < t->n_v6_lens; i++) {
            memcpy(key, src->addr, 16);
            mask_to(key, t->v6_lens[i]);
            double l = left_of(t, key, t->v6_lens[i], now);
            left = l > left ? l : left;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return left;
}

/* The length of a source's next ban, which has had level bans before. */
static double ban_length(const bantable_t *t, unsigned level)
{
    double len = ldexp(t->o.seconds, (int)(level < MAX_LEVEL ? level : MAX_LEVEL));
    return len < t->o.max_seconds ? len : t->o.max_seconds;
}

double bantable_strike(bantable_t *t, const endpoint_t *src, unsigned strikes, double now)
{
    uint8_t key[16], bits;
    if (!t || !key_of(t, src->family, src->addr, key, &bits))
        return 0;
    pthread_mutex_lock(&t->lock);
    entry_t *e = find_or_add(t, key, bits);
    if (!e && now - t->swept >= 1) { /* full: make room, at most once a second */
        sweep(t, now);
        t->swept = now;
        e = find_or_add(t, key, bits);
    }
    double len = 0;
    if (!e) {
        t->untracked++;
    } else if (ban_end(e) <= now) { /* a banned source's messages are not judged; a race is */
        if (e->strikes == 0 || now >= e->window_start + t->o.window) {
            e->window_start = now;
            e->strikes = 0;
        }
        /* both below a million (the settings' bound): no overflow */
        e->strikes += strikes ? strikes : 1;
        if (e->strikes >= t->o.after) {
            if (e->until > 0 && now >= e->until + t->o.max_seconds)
                e->level = 0; /* its past bans are forgotten */
            len = ban_length(t, e->level);
            e->until = now + len;
            e->level += e->level < UINT16_MAX;
            e->strikes = 0;
            t->bans++;
            t->dirty = true;
        }
    }
    pthread_mutex_unlock(&t->lock);
    return len;
}

/* Reads "ADDR" or "ADDR/LEN" into a key: an IPv6 one to its own LEN (how a saved ban or the
 * domain's list names a prefix), or without one to the ban prefix; an IPv4 one whole. */
static bool parse_source(const bantable_t *t, const char *text, uint8_t key[16], uint8_t *bits)
{
    char s[INET6_ADDRSTRLEN + 8];
    if (strlen(text) >= sizeof s)
        return false;
    strcpy(s, text);
    char *slash = strchr(s, '/');
    long len = -1;
    if (slash) {
        char *end;
        errno = 0;
        len = strtol(slash + 1, &end, 10);
        if (end == slash + 1 || *end || errno || len < 0 || len > 128)
            return false;
        *slash = 0;
    }
    uint8_t addr[16];
    if (inet_pton(AF_INET, s, addr) == 1)
        return key_of(t, 4, addr, key, bits);
    if (inet_pton(AF_INET6, s, addr) != 1 || !key_of(t, 6, addr, key, bits))
        return false;
    if (len >= 1 && is_v6_key(key)) { /* a prefix of its own (/0 would be every address) */
        memcpy(key, addr, 16);
        mask_to(key, (unsigned)len);
        *bits = (uint8_t)len;
    }
    return true;
}

/* Removes the entry at slot h, moving later entries of its probe run back. */
static void remove_at(bantable_t *t, size_t h)
{
    t->slots[h].used = 0;
    t->count--;
    count_v6_len(t, t->slots[h].key, t->slots[h].bits, -1);
    for (size_t j = (h + 1) & t->mask; t->slots[j].used; j = (j + 1) & t->mask) {
        size_t home = slot_of(t, t->slots[j].key, t->slots[j].bits);
        /* the entry at j may move to h when h lies on its way from home to j */
        bool on_way = h <= j ? (home <= h || home > j) : (home <= h && home > j);
        if (on_way) {
            t->slots[h] = t->slots[j];
            t->slots[j].used = 0;
            h = j;
        }
    }
}

int bantable_lift(bantable_t *t, const char *source)
{
    uint8_t key[16], bits;
    if (!parse_source(t, source, key, &bits))
        return -1;
    pthread_mutex_lock(&t->lock);
    entry_t *e = find(t, key, bits);
    int lifted = 0;
    if (e) {
        lifted = e->until > 0; /* whether or not it has run out: the source is forgiven */
        remove_at(t, (size_t)(e - t->slots));
        t->dirty = true;
    }
    pthread_mutex_unlock(&t->lock);
    return lifted;
}

void bantable_tick(bantable_t *t, double now, ban_stats_t *st)
{
    pthread_mutex_lock(&t->lock);
    if (t->count > 0) /* an empty table is not walked */
        sweep(t, now);
    if (st) {
        st->active = st->domain = 0;
        for (size_t h = 0; t->count > 0 && h <= t->mask; h++) {
            const entry_t *e = &t->slots[h];
            st->active += e->used && ban_end(e) > now;
            st->domain += e->used && e->domain_until > now;
        }
        st->tracked = t->count;
        st->bans = t->bans;
        st->untracked = t->untracked;
    }
    pthread_mutex_unlock(&t->lock);
}

bool ban_counts(const sipinfo_t *info)
{
    return info->status == 0 && info->vias <= 1;
}

static void entry_text(const entry_t *e, char *buf, size_t cap)
{
    char a[INET6_ADDRSTRLEN];
    if (msg_is_v4_mapped(e->key)) {
        inet_ntop(AF_INET, e->key + 12, a, sizeof a);
        snprintf(buf, cap, "%s", a);
    } else {
        inet_ntop(AF_INET6, e->key, a, sizeof a);
        if (e->bits == 128)
            snprintf(buf, cap, "%s", a);
        else
            snprintf(buf, cap, "%s/%u", a, e->bits);
    }
}

void bantable_source_text(const bantable_t *t, const endpoint_t *src, char *buf, size_t cap)
{
    entry_t e = {0};
    if (!key_of(t, src->family, src->addr, e.key, &e.bits)) {
        snprintf(buf, cap, "?");
        return;
    }
    entry_text(&e, buf, cap);
}

static int by_until_desc(const void *a, const void *b)
{
    double x = ban_end(a), y = ban_end(b);
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Copies into t->scratch the sources banned now (active_only), or else the ones to save:
 * those with a ban of their own to remember. Returns how many. */
static size_t gather(bantable_t *t, double now, bool active_only)
{
    size_t n = 0;
    for (size_t h = 0; h <= t->mask; h++) {
        const entry_t *e = &t->slots[h];
        if (e->used && (active_only ? ban_end(e) > now : e->until > 0 && remembered(t, e, now)))
            t->scratch[n++] = *e;
    }
    qsort(t->scratch, n, sizeof *t->scratch, by_until_desc);
    return n;
}

/* The entries gather() picks, copied out under the lock (48 bytes each), so that what is made
 * of them (a listing, the ban file) does not hold up the pipelines' lookups. NULL with *n = 0
 * when there are none; NULL with *n > 0 when out of memory. */
static entry_t *copy_gathered(bantable_t *t, double now, bool active_only, size_t *n)
{
    pthread_mutex_lock(&t->lock);
    *n = gather(t, now, active_only);
    entry_t *copy = *n ? malloc(*n * sizeof *copy) : NULL;
    if (copy)
        memcpy(copy, t->scratch, *n * sizeof *copy);
    if (!active_only)
        t->dirty = false; /* what is saved is taken */
    pthread_mutex_unlock(&t->lock);
    return copy;
}

/* n entries as [{"source", "until", "bans", "seconds_left", "domain"}] ("domain": the domain's
 * list bans it too; "until": the later of the two ends). */
static json_t *entries_json(const entry_t *list, size_t n, double now)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        const entry_t *e = &list[i];
        char s[INET6_ADDRSTRLEN + 8];
        entry_text(e, s, sizeof s);
        double until = ban_end(e);
        json_array_append_new(a, json_pack("{s:s, s:f, s:i, s:f, s:b}", "source", s, "until", until,
                                           "bans", (int)e->level, "seconds_left", until - now,
                                           "domain", e->domain_until > now));
    }
    return a;
}

long bantable_set_domain(bantable_t *t, const char *const *sources, const double *until, size_t n,
                         double now)
{
    pthread_mutex_lock(&t->lock);
    for (size_t h = 0; h <= t->mask; h++)
        t->slots[h].domain_until = 0;
    long applied = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t key[16], bits;
        if (until[i] <= now || !parse_source(t, sources[i], key, &bits))
            continue; /* over, or not an address (the set's loader checked them) */
        entry_t *e = find_or_add(t, key, bits);
        if (!e && now - t->swept >= 1) {
            sweep(t, now);
            t->swept = now;
            e = find_or_add(t, key, bits);
        }
        if (!e) {
            t->untracked++;
            continue;
        }
        if (e->domain_until < until[i])
            e->domain_until = until[i];
        applied++;
    }
    pthread_mutex_unlock(&t->lock);
    return applied;
}

json_t *bantable_list(bantable_t *t, double now)
{
    size_t n;
    entry_t *list = copy_gathered(t, now, true, &n);
    json_t *a = n && !list ? NULL : entries_json(list, n, now);
    free(list);
    return a;
}

bool bantable_dirty(bantable_t *t)
{
    pthread_mutex_lock(&t->lock);
    bool d = t->dirty;
    pthread_mutex_unlock(&t->lock);
    return d;
}

/* The saved bans, one a line, each made and written in turn: a document built whole took about
 * 10 MB for 22,000 bans, made every 5 s under a flood of spoofed sources (bench/soak.sh saw the
 * edge's memory swing by as much); a copy of the entries takes 48 bytes each. Returns 0, or -1
 * with "PATH: why". */
static int write_bans(const entry_t *e, size_t n, const char *path, double now, char *err,
                      size_t errlen)
{
    wholefile_t w;
    FILE *f = wholefile_open(&w, path, err, errlen);
    if (!f)
        return -1;
    json_t *head = json_pack("{s:i, s:f}", "version", BAN_FILE_VERSION, "saved", now);
    /* the head without its closing brace, then the list */
    char *text = head ? json_dumps(head, JSON_COMPACT) : NULL;
    bool oom = !text, failed = oom;
    if (text) {
        text[strlen(text) - 1] = '\0';
        fprintf(f, "%s,\"bans\":[", text);
    }
    free(text);
    json_decref(head);
    for (size_t i = 0; i < n && !failed; i++) {
        char s[INET6_ADDRSTRLEN + 8];
        entry_text(&e[i], s, sizeof s);
        json_t *o =
            json_pack("{s:s, s:f, s:i}", "source", s, "until", e[i].until, "bans", (int)e[i].level);
        fputs(i ? ",\n " : "\n ", f);
        oom = !o;
        failed = oom || json_dumpf(o, f, JSON_COMPACT) != 0;
        json_decref(o);
    }
    fputs("\n]}\n", f);
    if (failed || ferror(f) || fflush(f) != 0) {
        snprintf(err, errlen, "%s: write failed: %s", path,
                 oom ? "out of memory" : strerror(errno));
        wholefile_abort(&w);
        return -1;
    }
    return wholefile_commit(&w, path, err, errlen);
}

int bantable_save(bantable_t *t, const char *path, double now, char *err, size_t errlen)
{
    size_t n;
    entry_t *copy = copy_gathered(t, now, false, &n);
    int rc = -1;
    if (n && !copy)
        snprintf(err, errlen, "%s: out of memory", path);
    else
        rc = write_bans(copy, n, path, now, err, errlen);
    free(copy);
    if (rc != 0) {
        pthread_mutex_lock(&t->lock);
        t->dirty = true; /* try again at the next save */
        pthread_mutex_unlock(&t->lock);
    }
    return rc;
}

/* Checks one saved ban and puts it in e. NULL, or what is wrong with it. */
static const char *read_ban(bantable_t *t, const json_t *b, entry_t *e)
{
    const json_t *src = json_object_get(b, "source"), *until = json_object_get(b, "until"),
                 *bans = json_object_get(b, "bans");
    if (!json_is_object(b))
        return "a ban is not an object";
    if (!json_is_string(src) || !parse_source(t, json_string_value(src), e->key, &e->bits))
        return "\"source\" is not an address";
    if (!json_is_number(until) || !isfinite(json_number_value(until)) ||
        json_number_value(until) <= 0)
        return "\"until\" is not a time";
    if (!json_is_integer(bans) || json_integer_value(bans) < 1 ||
        json_integer_value(bans) > UINT16_MAX)
        return "\"bans\" is not a count of at least 1";
    e->until = json_number_value(until);
    e->level = (uint16_t)json_integer_value(bans);
    e->used = 1;
    return NULL;
}

long bantable_load(bantable_t *t, const char *path, double now, char *err, size_t errlen)
{
    json_error_t je;
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (errno == ENOENT)
            return 0;
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    json_t *doc = json_loadf(f, JSON_REJECT_DUPLICATES, &je);
    fclose(f);
    if (!doc) {
        snprintf(err, errlen, "%s:%d: %s", path, je.line, je.text);
        return -1;
    }
    const json_t *version = json_object_get(doc, "version"), *bans = json_object_get(doc, "bans");
    const char *why = NULL;
    pthread_mutex_lock(&t->lock); /* scratch is the table's */
    if (!json_is_object(doc) || !json_is_integer(version))
        why = "not a ban file (no \"version\")";
    else if (json_integer_value(version) != BAN_FILE_VERSION)
        why = "a ban file of another version";
    else if (!json_is_array(bans))
        why = "\"bans\" is not an array";
    size_t n = 0;
    for (size_t i = 0; !why && i < json_array_size(bans); i++) {
        entry_t e = {0};
        if ((why = read_ban(t, json_array_get(bans, i), &e)) != NULL) {
            snprintf(err, errlen, "%s: ban %zu: %s", path, i + 1, why);
            pthread_mutex_unlock(&t->lock);
            json_decref(doc);
            return -1;
        }
        if (remembered(t, &e, now) && n < t->o.max_sources)
            t->scratch[n++] = e;
    }
    json_decref(doc);
    if (why) {
        pthread_mutex_unlock(&t->lock);
        snprintf(err, errlen, "%s: %s", path, why);
        return -1;
    }
    long added = 0;
    for (size_t i = 0; i < n; i++) {
        entry_t *e = find_or_add(t, t->scratch[i].key, t->scratch[i].bits);
        if (!e)
            break;
        if (e->until < t->scratch[i].until) {
            e->until = t->scratch[i].until;
            e->level = t->scratch[i].level;
        }
        added++;
    }
    pthread_mutex_unlock(&t->lock);
    return added;
}
