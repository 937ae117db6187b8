#include "cluster.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#define RADIUS_REFRESH 32 /* joins between exact radius computations */
#define MERGE_SAMPLE 16   /* members of each side compared when two clusters may merge */
#define MEAN_SAMPLE 32    /* members a message is compared with for its mean distance */

struct clusterer {
    cluster_opts_t o;
    cluster_t **cl; /* live clusters, in founding order */
    size_t n, cap;
    size_t kept;
    uint64_t placed;
};

double unit_distance(const sparse_t *a, const sparse_t *b)
{
    if (a->norm2 == 0 || b->norm2 == 0)
        return a->norm2 == b->norm2 ? 0.0 : M_SQRT2;
    double d2 = 2 - 2 * sparse_dot(a, b) / sqrt(a->norm2 * b->norm2);
    return d2 > 0 ? sqrt(d2) : 0;
}

clusterer_t *clusterer_new(const cluster_opts_t *o)
{
    clusterer_t *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->o = *o;
    if (c->o.per_cluster == 0)
        c->o.per_cluster = 1;
    return c;
}

static void member_free(member_t *m)
{
    free(m->raw);
    sparse_destroy(&m->v);
}

static void cluster_free(cluster_t *k)
{
    for (size_t i = 0; i < k->n; i++)
        member_free(&k->m[i]);
    free(k->m);
    sparse_destroy(&k->sum);
    free(k);
}

void clusterer_destroy(clusterer_t **self)
{
    clusterer_t *c = *self;
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        cluster_free(c->cl[i]);
    free(c->cl);
    free(c);
    *self = NULL;
}

size_t clusterer_count(const clusterer_t *c)
{
    return c->n;
}

cluster_t *clusterer_get(clusterer_t *c, size_t i)
{
    return i < c->n ? c->cl[i] : NULL;
}

uint64_t clusterer_placed(const clusterer_t *c)
{
    return c->placed;
}

size_t clusterer_kept(const clusterer_t *c)
{
    return c->kept;
}

/* ------------------------------------------------------------------ centroid arithmetic */

static double unit_scale(const sparse_t *v)
{
    return v->norm2 > 0 ? 1 / sqrt(v->norm2) : 0;
}

/* sum += w * v (both sorted by key); entries that cancel are dropped. Returns 0 or -1. */
static int sum_add(sparse_t *sum, const sparse_t *v, double w)
{
    size_t cap = sum->n + v->n;
    uint64_t *keys = malloc((cap ? cap : 1) * sizeof *keys);
    double *vals = malloc((cap ? cap : 1) * sizeof *vals);
    if (!keys || !vals) {
        free(keys), free(vals);
        return -1;
    }
    size_t i = 0, j = 0, n = 0;
    double norm2 = 0;
    while (i < sum->n || j < v->n) {
        uint64_t key;
        double x;
        if (j == v->n || (i < sum->n && sum->keys[i] < v->keys[j])) {
            key = sum->keys[i];
            x = sum->vals[i++];
        } else if (i == sum->n || v->keys[j] < sum->keys[i]) {
            key = v->keys[j];
            x = w * v->vals[j++];
        } else {
            key = sum->keys[i];
            x = sum->vals[i++] + w * v->vals[j++];
        }
        if (fabs(x) > 1e-12) {
            keys[n] = key;
            vals[n++] = x;
            norm2 += x * x;
        }
    }
    free(sum->keys);
    free(sum->vals);
    sum->keys = keys;
    sum->vals = vals;
    sum->n = n;
    sum->cap = cap ? cap : 1;
    sum->norm2 = norm2;
    return 0;
}

/* The dot product of a message with a cluster's sum, which may hold many more keys: each of
 * the message's keys is looked up (O(m log n)) rather than both lists walked (O(m + n)). */
static double dot_with_sum(const sparse_t *x, const sparse_t *sum)
{
    if (sum->n < 8 * x->n)
        return sparse_dot(x, sum);
    double d = 0;
    size_t lo = 0;
    for (size_t i = 0; i < x->n; i++) {
        size_t hi = sum->n;
        uint64_t key = x->keys[i];
        while (lo < hi) { /* keys ascend in both: the search starts where the last ended */
            size_t mid = lo + (hi - lo) / 2;
            if (sum->keys[mid] < key)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo == sum->n)
            break;
        if (sum->keys[lo] == key)
            d += x->vals[i] * sum->vals[lo];
    }
    return d;
}

/* Distance of a message (at unit length) from a cluster's mean. */
static double distance_to_mean(const cluster_t *k, const sparse_t *x)
{
    if (k->n == 0)
        return M_SQRT2;
    double nk = (double)k->n;
    double d2 = 1 - 2 * dot_with_sum(x, k->sum) * unit_scale(x) / nk + k->sum->norm2 / (nk * nk);
    if (x->norm2 == 0)
        d2 = k->sum->norm2 / (nk * nk);
    return d2 > 0 ? sqrt(d2) : 0;
}

static void refresh_radius(cluster_t *k)
{
    k->radius = 0;
    for (size_t i = 0; i < k->n; i++) {
        double d = distance_to_mean(k, k->m[i].v);
        k->radius = d > k->radius ? d : k->radius;
    }
    k->stale = 0;
}

static int rebuild_sum(cluster_t *k)
{
    k->sum->n = 0;
    k->sum->norm2 = 0;
    for (size_t i = 0; i < k->n; i++)
        if (sum_add(k->sum, k->m[i].v, unit_scale(k->m[i].v)) != 0)
            return -1;
    refresh_radius(k);
    return 0;
}

/* ------------------------------------------------------------------ members */

static void note_origin(cluster_t *k, const member_t *m, uint64_t arrival)
{
    bool known = !m->edge[0];
    for (size_t i = 0; i < k->n_edges && !known; i++)
        known = !strcmp(k->edges[i], m->edge);
    if (!known && k->n_edges < CLUSTER_MAX_EDGES)
        snprintf(k->edges[k->n_edges++], sizeof k->edges[0], "%s", m->edge);
    if (m->ts > 0) {
        k->first = k->first > 0 && k->first < m->ts ? k->first : m->ts;
        k->last = k->last > m->ts ? k->last : m->ts;
    }
    k->arrived = k->arrived > m->arrived ? k->arrived : m->arrived;
    k->touched = arrival;
    k->changed = true;
}

static void note_absorbed(cluster_t *k, const char *key)
{
    if (k->n_absorbed < CLUSTER_MAX_ABSORBED)
        snprintf(k->absorbed[k->n_absorbed++], sizeof k->absorbed[0], "%s", key);
}

/* Reservoir slot for the seen-th member (0-based) of a cluster keeping cap: where it goes, or
 * SIZE_MAX when it is not kept. A fixed hash, so replays keep the same members. */
static size_t reservoir_slot(size_t seen, size_t cap)
{
    if (seen < cap)
        return seen;
    uint64_t x = (uint64_t)seen * 0x9E3779B97F4A7C15ULL;
    x ^= x >> 31;
    size_t j = (size_t)(x % (seen + 1));
    return j < cap ? j : SIZE_MAX;
}

/* Adds a member to a cluster (taking it over); keeps it when the reservoir says so. */
static int join(clusterer_t *c, cluster_t *k, member_t *m, uint64_t arrival)
{
    note_origin(k, m, arrival);
    size_t slot = reservoir_slot(k->members++, c->o.per_cluster);
    if (slot == SIZE_MAX) {
        member_free(m);
        return 0;
    }
    double moved; /* how far the mean moves: bounds the change of every member's distance */
    if (slot == k->n) {
        if (k->n == k->cap) {
            size_t cap = k->cap ? k->cap * 2 : 8;
            member_t *nm = realloc(k->m, cap * sizeof *nm);
            if (!nm) {
                member_free(m);
                return -1;
            }
            k->m = nm;
            k->cap = cap;
        }
        moved = distance_to_mean(k, m->v) / (double)(k->n + 1);
        k->m[k->n++] = *m;
        c->kept++;
        if (sum_add(k->sum, m->v, unit_scale(m->v)) != 0)
            return -1;
    } else {
        moved = unit_distance(m->v, k->m[slot].v) / (double)k->n;
        if (sum_add(k->sum, k->m[slot].v, -unit_scale(k->m[slot].v)) != 0 ||
            sum_add(k->sum, m->v, unit_scale(m->v)) != 0) {
            member_free(m);
            return -1;
        }
        member_free(&k->m[slot]);
        k->m[slot] = *m;
    }
    if (++k->stale >= RADIUS_REFRESH || k->n <= 2) {
        refresh_radius(k);
    } else {
        double d = distance_to_mean(k, m->v);
        k->radius = fmax(k->radius + moved, d);
    }
    return 0;
}

static cluster_t *found(clusterer_t *c, member_t *m, const char *key, uint64_t arrival)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        cluster_t **ncl = realloc(c->cl, cap * sizeof *ncl);
        if (!ncl) {
            member_free(m);
            return NULL;
        }
        c->cl = ncl;
        c->cap = cap;
    }
    cluster_t *k = calloc(1, sizeof *k);
    if (!k || !(k->sum = sparse_new())) {
        free(k);
        member_free(m);
        return NULL;
    }
    if (key)
        snprintf(k->key, sizeof k->key, "%s", key);
    else
        snprintf(k->key, sizeof k->key, "%llu", (unsigned long long)arrival);
    k->founded = arrival;
    c->cl[c->n++] = k;
    if (join(c, k, m, arrival) != 0)
        return NULL;
    return k;
}

static void drop(clusterer_t *c, size_t i)
{
    c->kept -= c->cl[i]->n;
    cluster_free(c->cl[i]);
    memmove(&c->cl[i], &c->cl[i + 1], (c->n - i - 1) * sizeof *c->cl);
    c->n--;
}

static size_t index_of(const clusterer_t *c, const cluster_t *k)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->cl[i] == k)
            return i;
    return SIZE_MAX;
}

/* Folds cluster b into a (the older one keeps its key), then drops b. */
static int merge(clusterer_t *c, cluster_t *a, cluster_t *b)
{
    if (b->founded < a->founded) {
        cluster_t *t = a;
        a = b;
        b = t;
    }
    for (size_t i = 0; i < b->n_edges; i++) {
        member_t probe = {.ts = 0};
        snprintf(probe.edge, sizeof probe.edge, "%s", b->edges[i]);
        note_origin(a, &probe, a->touched);
    }
    if (b->first > 0)
        a->first = a->first > 0 && a->first < b->first ? a->first : b->first;
    a->last = fmax(a->last, b->last);
    a->arrived = fmax(a->arrived, b->arrived);
    note_absorbed(a, b->key);
    for (size_t i = 0; i < b->n_absorbed; i++)
        note_absorbed(a, b->absorbed[i]);
    a->touched = a->touched > b->touched ? a->touched : b->touched;
    a->changed = true;
    size_t total = a->n + b->n, keep = total < c->o.per_cluster ? total : c->o.per_cluster;
    member_t *all = malloc((total ? total : 1) * sizeof *all);
    if (!all)
        return -1;
    memcpy(all, a->m, a->n * sizeof *all);
    memcpy(all + a->n, b->m, b->n * sizeof *all);
    /* an even stride over both when they do not all fit */
    size_t kept = 0;
    for (size_t i = 0; i < total; i++) {
        bool take = keep == total || (i * keep) / total != ((i + 1) * keep) / total;
        if (take && kept < keep)
            all[kept++] = all[i];
        else
            member_free(&all[i]);
    }
    free(a->m);
    a->m = all;
    a->cap = total ? total : 1;
    c->kept -= a->n + b->n;
    a->n = kept;
    c->kept += kept;
    a->members += b->members;
    b->n = 0; /* its members moved */
    drop(c, index_of(c, b));
    return rebuild_sum(a);
}

/* ------------------------------------------------------------------ linkage */

/* The linkage distance of a message to a cluster, or INFINITY when it is not under the cut.
 * The mean m bounds each linkage: every member lies within the radius r of it, so all members
 * are within dm + r (and single and complete linkage are decided without a member when that is
 * under the cut); the mean distance lies between dm and the root mean square distance,
 * sqrt(dm^2 + 1 - |m|^2). Members are measured only when the bounds leave it open (for the
 * mean, an even sample of MEAN_SAMPLE of them). */
static double linkage_to(const clusterer_t *c, const cluster_t *k, const sparse_t *x)
{
    double dm = distance_to_mean(k, x), cut = c->o.cut;
    switch (c->o.linkage) {
    case LINK_SINGLE:
        if (dm - k->radius >= cut)
            return INFINITY;
        if (dm + k->radius < cut)
            return dm;
        for (size_t i = 0; i < k->n; i++) {
            double d = unit_distance(x, k->m[i].v);
            if (d < cut)
                return d; /* any one under the cut joins: single linkage */
        }
        return INFINITY;
    case LINK_COMPLETE: {
        if (dm >= cut)
            return INFINITY;
        if (dm + k->radius < cut)
            return dm + k->radius;
        double worst = 0;
        for (size_t i = 0; i < k->n; i++) {
            double d = unit_distance(x, k->m[i].v);
            if (d >= cut)
                return INFINITY;
            worst = d > worst ? d : worst;
        }
        return worst;
    }
    case LINK_AVERAGE: {
        if (dm >= cut || k->n == 0)
            return INFINITY;
        double nk = (double)k->n, spread = 1 - k->sum->norm2 / (nk * nk);
        double rms = sqrt(dm * dm + (spread > 0 ? spread : 0));
        if (rms < cut)
            return rms;
        /* the bounds left it open: the mean over an even sample of the kept members */
        size_t ns = k->n < MEAN_SAMPLE ? k->n : MEAN_SAMPLE;
        double s = 0;
        for (size_t i = 0; i < ns; i++)
            s += unit_distance(x, k->m[i * k->n / ns].v);
        double mean = s / (double)ns;
        return mean < cut ? mean : INFINITY;
    }
    case LINK_KMEANS:
    default: { /* cosine to the centre */
        double nx = unit_scale(x), ns = k->sum->norm2 > 0 ? 1 / sqrt(k->sum->norm2) : 0;
        double d2 = 2 - 2 * dot_with_sum(x, k->sum) * nx * ns;
        return d2 > 0 ? sqrt(d2) : 0;
    }
    }
}

/* Mean distance between the members of two clusters, under the cut or not: the distance of
 * the means bounds it from below and the root mean square distance from above, so only the
 * undecided pairs are measured (over a sample of each side). */
static bool average_linkage_under(const clusterer_t *c, const cluster_t *a, const cluster_t *b)
{
    if (a->n == 0 || b->n == 0)
        return false;
    double na = (double)a->n, nb = (double)b->n, ab = sparse_dot(a->sum, b->sum) / (na * nb);
    double lo2 = a->sum->norm2 / (na * na) + b->sum->norm2 / (nb * nb) - 2 * ab;
    if (lo2 > 0 && sqrt(lo2) >= c->o.cut)
        return false;
    double hi2 = 2 - 2 * ab;
    if (hi2 < c->o.cut * c->o.cut)
        return true;
    size_t sa = a->n < MERGE_SAMPLE ? a->n : MERGE_SAMPLE,
           sb = b->n < MERGE_SAMPLE ? b->n : MERGE_SAMPLE;
    double s = 0;
    for (size_t i = 0; i < sa; i++)
        for (size_t j = 0; j < sb; j++)
            s += unit_distance(a->m[i * a->n / sa].v, b->m[j * b->n / sb].v);
    return s / (double)(sa * sb) < c->o.cut;
}

/* After *kp grew under average linkage: merge it with every cluster now close enough; *kp is
 * then the cluster they became. */
static int merge_neighbours(clusterer_t *c, cluster_t **kp)
{
    cluster_t *k = *kp;
    for (bool again = true; again;) {
        again = false;
        for (size_t i = 0; i < c->n; i++) {
            cluster_t *o = c->cl[i];
            if (o == k || !average_linkage_under(c, k, o))
                continue;
            cluster_t *keep = o->founded < k->founded ? o : k;
            if (merge(c, k, o) != 0)
                return -1;
            k = *kp = keep;
            again = true;
            break;
        }
    }
    return 0;
}

/* When memory is short: drop the least recently grown small cluster (or any, but not k). */
static void make_room(clusterer_t *c, const cluster_t *k)
{
    while (c->kept > c->o.max_kept && c->n > 1) {
        size_t victim = SIZE_MAX;
        for (int pass = 0; pass < 2 && victim == SIZE_MAX; pass++)
            for (size_t i = 0; i < c->n; i++) {
                const cluster_t *o = c->cl[i];
                if (o == k || (pass == 0 && o->members >= c->o.small))
                    continue;
                if (victim == SIZE_MAX || o->touched < c->cl[victim]->touched)
                    victim = i;
            }
        if (victim == SIZE_MAX)
            return;
        drop(c, victim);
    }
}

int clusterer_add(clusterer_t *c, member_t *m, const char *key)
{
    uint64_t arrival = c->placed++;
    cluster_t *best = NULL;
    double bd = INFINITY;
    if (c->o.linkage == LINK_SINGLE) {
        /* join every cluster within reach: they become one */
        for (size_t i = 0; i < c->n;) {
            cluster_t *k = c->cl[i];
            if (k == best || !isfinite(linkage_to(c, k, m->v))) {
                i++;
                continue;
            }
            if (!best) {
                best = k;
                i++;
                continue;
            }
            cluster_t *keep = k->founded < best->founded ? k : best;
            if (merge(c, best, k) != 0) {
                member_free(m);
                return -1;
            }
            best = keep;
            i = 0; /* the list moved */
        }
    } else {
        for (size_t i = 0; i < c->n; i++) {
            double d = linkage_to(c, c->cl[i], m->v);
            if (d < bd) {
                bd = d;
                best = c->cl[i];
            }
        }
        if (c->o.linkage == LINK_KMEANS && c->n < c->o.k && bd >= c->o.cut)
            best = NULL; /* far from every centre and room for another */
    }
    cluster_t *k = best;
    if (k) {
        if (join(c, k, m, arrival) != 0)
            return -1;
        /* the mean moves little with each member: look for merges as the cluster doubles and
         * every 32 members, not at every join */
        bool grown = (k->members & (k->members - 1)) == 0 || k->members % 32 == 0;
        if (c->o.linkage == LINK_AVERAGE && grown && merge_neighbours(c, &k) != 0)
            return -1;
    } else if (!(k = found(c, m, key, arrival))) {
        return -1;
    }
    make_room(c, k);
    return 0;
}

/* ------------------------------------------------------------------ saved state */

/*
 * The state is written field by field in the host's byte order (an order mark refuses a state
 * from a machine of the other order), with every count checked on the way back in, and a
 * checksum over the whole. Members' embeddings are not written: they are most of the memory
 * and the caller's embedder makes them again from the bytes. The centroid sums are written,
 * so that a loaded clusterer decides each later message exactly as the one saved would have.
 */
#define STATE_MAGIC "SGCLUST"
#define STATE_VERSION 1u
#define STATE_ORDER 0x01020304u

typedef struct {
    uint8_t *b;
    size_t n, cap;
    bool failed;
} wbuf_t;

static void put(wbuf_t *w, const void *p, size_t len)
{
    if (w->failed)
        return;
    if (w->cap - w->n < len) {
        size_t cap = w->cap ? w->cap : 4096;
        while (cap - w->n < len)
            cap *= 2;
        uint8_t *b = realloc(w->b, cap);
        if (!b) {
            w->failed = true;
            return;
        }
        w->b = b;
        w->cap = cap;
    }
    memcpy(w->b + w->n, p, len);
    w->n += len;
}

static void put_u64(wbuf_t *w, uint64_t v)
{
    put(w, &v, sizeof v);
}

static void put_f64(wbuf_t *w, double v)
{
    put(w, &v, sizeof v);
}

static void put_str(wbuf_t *w, const char *s)
{
    put_u64(w, strlen(s));
    put(w, s, strlen(s));
}

static void put_cluster(wbuf_t *w, const cluster_t *k)
{
    put_str(w, k->key);
    put_u64(w, k->members);
    put_u64(w, k->n);
    put_f64(w, k->radius);
    put_u64(w, k->stale);
    put_u64(w, k->n_edges);
    for (size_t i = 0; i < k->n_edges; i++)
        put_str(w, k->edges[i]);
    put_f64(w, k->first);
    put_f64(w, k->last);
    put_f64(w, k->arrived);
    put_u64(w, k->n_absorbed);
    for (size_t i = 0; i < k->n_absorbed; i++)
        put_str(w, k->absorbed[i]);
    put_u64(w, k->founded);
    put_u64(w, k->touched);
    put_u64(w, k->changed);
    put_u64(w, k->sum->n);
    put_f64(w, k->sum->norm2);
    put(w, k->sum->keys, k->sum->n * sizeof *k->sum->keys);
    put(w, k->sum->vals, k->sum->n * sizeof *k->sum->vals);
    for (size_t i = 0; i < k->n; i++) {
        put_u64(w, k->m[i].len);
        put(w, k->m[i].raw, k->m[i].len);
        put_str(w, k->m[i].edge);
        put_f64(w, k->m[i].ts);
        put_f64(w, k->m[i].arrived);
    }
}

static void put_options(wbuf_t *w, const cluster_opts_t *o)
{
    put_u64(w, (uint64_t)o->linkage);
    put_f64(w, o->cut);
    put_u64(w, o->k);
    put_u64(w, o->per_cluster);
    put_u64(w, o->max_kept);
    put_u64(w, o->small);
}

uint8_t *clusterer_save(const clusterer_t *c, const char *tag, size_t *len)
{
    wbuf_t w = {0};
    uint32_t head[2] = {STATE_VERSION, STATE_ORDER};
    put(&w, STATE_MAGIC, 8);
    put(&w, head, sizeof head);
    put_str(&w, tag ? tag : "");
    put_options(&w, &c->o);
    put_u64(&w, c->placed);
    put_u64(&w, c->n);
    for (size_t i = 0; i < c->n; i++)
        put_cluster(&w, c->cl[i]);
    put_u64(&w, XXH3_64bits(w.b, w.n));
    if (w.failed) {
        free(w.b);
        return NULL;
    }
    *len = w.n;
    return w.b;
}

typedef struct {
    const uint8_t *p;
    size_t left;
    bool bad;
} rbuf_t;

static void get(rbuf_t *r, void *p, size_t len)
{
    if (r->bad || len > r->left) {
        r->bad = true;
        memset(p, 0, len);
        return;
    }
    memcpy(p, r->p, len);
    r->p += len;
    r->left -= len;
}

static uint64_t get_u64(rbuf_t *r)
{
    uint64_t v;
    get(r, &v, sizeof v);
    return v;
}

static double get_f64(rbuf_t *r)
{
    double v;
    get(r, &v, sizeof v);
    return v;
}

/* A count of items of at least `each` bytes: no more than the bytes left can hold. */
static size_t get_count(rbuf_t *r, size_t each, size_t most)
{
    uint64_t n = get_u64(r);
    if (n > most || n > r->left / each)
        r->bad = true;
    return r->bad ? 0 : (size_t)n;
}

static void get_str(rbuf_t *r, char *out, size_t cap)
{
    size_t n = get_count(r, 1, cap - 1);
    get(r, out, n);
    out[r->bad ? 0 : n] = '\0';
}

/* A centroid sum: keys strictly ascending, as sum_add and the dot products need. */
static int get_sum(rbuf_t *r, sparse_t *sum)
{
    size_t n = get_count(r, sizeof(uint64_t) + sizeof(double), SIZE_MAX);
    double norm2 = get_f64(r);
    if (r->bad || sparse_reserve(sum, n ? n : 1) != 0)
        return -1;
    get(r, sum->keys, n * sizeof *sum->keys);
    get(r, sum->vals, n * sizeof *sum->vals);
    for (size_t i = 1; i < n && !r->bad; i++)
        r->bad = sum->keys[i] <= sum->keys[i - 1];
    sum->n = r->bad ? 0 : n;
    sum->norm2 = norm2;
    return r->bad ? -1 : 0;
}

static int get_member(rbuf_t *r, member_t *m, clusterer_embed_fn embed, void *ctx)
{
    memset(m, 0, sizeof *m);
    m->len = get_count(r, 1, SIZE_MAX);
    if (r->bad || !(m->raw = malloc(m->len ? m->len : 1)))
        return -1;
    get(r, m->raw, m->len);
    get_str(r, m->edge, sizeof m->edge);
    m->ts = get_f64(r);
    m->arrived = get_f64(r);
    if (r->bad || !(m->v = sparse_new()) || embed(ctx, m->raw, m->len, m->v) != 0) {
        member_free(m);
        return -1;
    }
    return 0;
}

/* One cluster, appended to c (so that a failure part-way frees it with c). */
static int get_cluster(clusterer_t *c, rbuf_t *r, clusterer_embed_fn embed, void *ctx)
{
    cluster_t *k = calloc(1, sizeof *k);
    if (!k || !(k->sum = sparse_new())) {
        free(k);
        return -1;
    }
    c->cl[c->n++] = k;
    get_str(r, k->key, sizeof k->key);
    k->members = (size_t)get_u64(r);
    size_t n = get_count(r, 4 * sizeof(uint64_t), c->o.per_cluster);
    k->radius = get_f64(r);
    k->stale = (unsigned)get_u64(r);
    k->n_edges = get_count(r, sizeof(uint64_t), CLUSTER_MAX_EDGES);
    for (size_t i = 0; i < k->n_edges; i++)
        get_str(r, k->edges[i], sizeof k->edges[i]);
    k->first = get_f64(r);
    k->last = get_f64(r);
    k->arrived = get_f64(r);
    k->n_absorbed = get_count(r, sizeof(uint64_t), CLUSTER_MAX_ABSORBED);
    for (size_t i = 0; i < k->n_absorbed; i++)
        get_str(r, k->absorbed[i], sizeof k->absorbed[i]);
    k->founded = get_u64(r);
    k->touched = get_u64(r);
    k->changed = get_u64(r) != 0;
    /* the reservoir keeps every member until it is full: join relies on it */
    size_t full = k->members < c->o.per_cluster ? k->members : c->o.per_cluster;
    if (r->bad || n == 0 || n != full || get_sum(r, k->sum) != 0 ||
        !(k->m = calloc(n ? n : 1, sizeof *k->m)))
        return -1;
    k->cap = n ? n : 1;
    for (; k->n < n; k->n++)
        if (get_member(r, &k->m[k->n], embed, ctx) != 0)
            return -1;
    c->kept += k->n;
    return 0;
}

static const char *linkage_label(uint64_t l)
{
    static const char *names[] = {"single", "complete", "average", "kmeans"};
    return l < 4 ? names[l] : "unknown";
}

/* The header: magic, version, byte order, tag and options. NULL when they match, else why. */
static const char *check_header(rbuf_t *r, const cluster_opts_t *o, const char *tag, char *why,
                                size_t whylen)
{
    char magic[8], saved_tag[128];
    uint32_t head[2];
    get(r, magic, sizeof magic);
    get(r, head, sizeof head);
    if (r->bad || memcmp(magic, STATE_MAGIC, 8) != 0)
        return "not a saved cluster state";
    if (head[0] != STATE_VERSION || head[1] != STATE_ORDER) {
        snprintf(why, whylen, "saved in format %u%s; this build reads format %u", head[0],
                 head[1] != STATE_ORDER ? " on a machine of the other byte order" : "",
                 STATE_VERSION);
        return why;
    }
    get_str(r, saved_tag, sizeof saved_tag);
    if (!r->bad && strcmp(saved_tag, tag ? tag : "") != 0) {
        snprintf(why, whylen, "saved for embedding \"%s\", not \"%s\"", saved_tag, tag ? tag : "");
        return why;
    }
    cluster_opts_t s = {0};
    s.linkage = (linkage_t)get_u64(r);
    uint64_t linkage = (uint64_t)s.linkage;
    s.cut = get_f64(r);
    s.k = (size_t)get_u64(r);
    s.per_cluster = (size_t)get_u64(r);
    s.max_kept = (size_t)get_u64(r);
    s.small = (size_t)get_u64(r);
    if (r->bad)
        return "truncated";
    if (linkage != (uint64_t)o->linkage || s.cut != o->cut || s.k != o->k ||
        s.per_cluster != o->per_cluster || s.max_kept != o->max_kept || s.small != o->small) {
        snprintf(why, whylen,
                 "saved with other clustering settings (linkage %s, cut %g, k %zu, %zu kept a "
                 "cluster, %zu in all, small %zu)",
                 linkage_label(linkage), s.cut, s.k, s.per_cluster, s.max_kept, s.small);
        return why;
    }
    return NULL;
}

clusterer_t *clusterer_load(const cluster_opts_t *o, const char *tag, const uint8_t *buf,
                            size_t len, clusterer_embed_fn embed, void *ctx, char *err,
                            size_t errlen)
{
    uint64_t sum;
    if (len < 8 + sizeof sum) {
        snprintf(err, errlen, "truncated (%zu bytes)", len);
        return NULL;
    }
    memcpy(&sum, buf + len - sizeof sum, sizeof sum);
    if (XXH3_64bits(buf, len - sizeof sum) != sum) {
        snprintf(err, errlen, "checksum mismatch (corrupt)");
        return NULL;
    }
    rbuf_t r = {buf, len - sizeof sum, false};
    char why[512];
    const char *bad = check_header(&r, o, tag, why, sizeof why);
    if (bad) {
        snprintf(err, errlen, "%s", bad);
        return NULL;
    }
    clusterer_t *c = clusterer_new(o);
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->placed = get_u64(&r);
    size_t n = get_count(&r, 16 * sizeof(uint64_t), SIZE_MAX);
    if (!r.bad && n > 0 && !(c->cl = calloc(n, sizeof *c->cl)))
        r.bad = true;
    c->cap = n;
    for (size_t i = 0; i < n && !r.bad;)
        if (get_cluster(c, &r, embed, ctx) == 0)
            i++;
        else
            r.bad = true;
    if (r.bad || r.left != 0) {
        snprintf(err, errlen, "%s",
                 r.bad ? "malformed, or a member could not be embedded again"
                       : "trailing bytes after the last cluster");
        clusterer_destroy(&c);
    }
    return c;
}
