#include "edge_record.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "monotime.h"
#include "pcapw.h"

#define RECORD_RETRY_SECONDS 60
/* the most a message's frame adds to its bytes: pcap record header 16, Ethernet 14, IPv6 40,
 * TCP 20 */
#define RECORD_FRAME_OVERHEAD 90
/* pcapw's limit on one frame's payload */
#define RECORD_MAX_MESSAGE 65000
#define MIB (1024.0 * 1024.0)

struct edge_record {
    pthread_mutex_t lock;
    atomic_bool on; /* read without the lock, so that a message not kept costs no lock */
    record_which_t which;
    double sample, sample_acc; /* the stride: a message is written when the sum passes 1 */
    char dir[512], prefix[80];
    long file_mb, max_mb;
    double file_seconds;
    pcapw_t *w;
    char path[700]; /* the .part file being written */
    double bytes;   /* about what it holds */
    double opened;  /* monotonic seconds */
    double retry_at;
    bool failing;        /* a failure was logged; the next file that opens says so */
    char last_stamp[32]; /* the time in the last file's name, and how many files took it */
    int same_stamp;
    edge_metrics_t *metrics;
};

int record_which_parse(const char *s, record_which_t *out)
{
    static const char *const names[] = {"normal", "anomalies", "all"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) {
            *out = (record_which_t)i;
            return 0;
        }
    return -1;
}

edge_record_t *record_new(edge_metrics_t *metrics)
{
    edge_record_t *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->metrics = metrics;
    pthread_mutex_init(&r->lock, NULL);
    atomic_init(&r->on, false);
    return r;
}

/* A recorded file of ours: PREFIX-....pcap, or with .part when part is set. */
static bool our_file(const edge_record_t *r, const char *name, bool part)
{
    size_t n = strlen(name), p = strlen(r->prefix);
    const char *ext = part ? ".pcap.part" : ".pcap";
    size_t e = strlen(ext);
    return n > p + 1 + e && !strncmp(name, r->prefix, p) && name[p] == '-' &&
           !strcmp(name + n - e, ext);
}

typedef struct {
    char name[256];
    off_t size;
    struct timespec mtime;
} kept_t;

/* Oldest first by the last write, to the nanosecond: files finished within one second (small
 * file_mb) are named by that second and a number, which does not sort by age. */
static int by_age(const void *a, const void *b)
{
    const kept_t *x = a, *y = b;
    if (x->mtime.tv_sec != y->mtime.tv_sec)
        return x->mtime.tv_sec < y->mtime.tv_sec ? -1 : 1;
    if (x->mtime.tv_nsec != y->mtime.tv_nsec)
        return x->mtime.tv_nsec < y->mtime.tv_nsec ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The finished files of ours in the directory, oldest first; NULL (and *n 0) when none or when
 * the directory does not read. */
static kept_t *list_finished(const edge_record_t *r, size_t *n)
{
    *n = 0;
    DIR *d = opendir(r->dir);
    if (!d)
        return NULL;
    kept_t *k = NULL;
    size_t cap = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        char path[1024];
        if (!our_file(r, de->d_name, false) || strlen(de->d_name) >= sizeof k->name ||
            snprintf(path, sizeof path, "%s/%s", r->dir, de->d_name) >= (int)sizeof path ||
            stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (*n == cap) {
            size_t c = cap ? 2 * cap : 64;
            kept_t *g = realloc(k, c * sizeof *k);
            if (!g)
                break;
            k = g;
            cap = c;
        }
        snprintf(k[*n].name, sizeof k[*n].name, "%s", de->d_name);
        k[*n].size = st.st_size;
        k[(*n)++].mtime = st.st_mtim;
    }
    closedir(d);
    if (*n > 1)
        qsort(k, *n, sizeof *k, by_age);
    return k;
}

/* Removes the oldest finished files while all of them together pass max_mb. */
static void keep_within_bound(edge_record_t *r)
{
    size_t n;
    kept_t *k = list_finished(r, &n);
    double total = 0, bound = (double)r->max_mb * MIB;
    for (size_t i = 0; i < n; i++)
        total += (double)k[i].size;
    for (size_t i = 0; i < n && total > bound; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", r->dir, k[i].name);
        if (unlink(path) == 0)
            total -= (double)k[i].size;
        else
            warning("recording: cannot remove %s to stay within [record] max_mb: %s", path,
                    strerror(errno));
    }
    free(k);
}

/* NAME.pcap.part becomes NAME.pcap */
static int rename_finished(const char *part)
{
    char done[720];
    size_t n = strlen(part);
    snprintf(done, sizeof done, "%.*s", (int)(n - strlen(".part")), part);
    return rename(part, done);
}

/* .part files a previous run left (it died while writing them) are finished as they are: the
 * readers count a torn last frame and read the rest. */
static void finish_leftovers(edge_record_t *r)
{
    DIR *d = opendir(r->dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char path[1024];
        if (!our_file(r, de->d_name, true) ||
            snprintf(path, sizeof path, "%s/%s", r->dir, de->d_name) >= (int)sizeof path)
            continue;
        if (rename_finished(path) == 0)
            info("recording: %s, left by an earlier run, finished", path);
    }
    closedir(d);
}

/* Logs a failure once (until a file opens again) and waits a while before the next try. */
static void failed(edge_record_t *r, const char *what, const char *path, int err)
{
    if (!r->failing)
        error("recording: %s %s: %s; messages are not recorded (counted in "
              "sipguard_record_dropped_total) until a try a minute from now works",
              what, path, strerror(err));
    r->failing = true;
    r->retry_at = mono_now() + RECORD_RETRY_SECONDS;
}

/* Closes the file being written, puts it under its finished name and keeps the directory within
 * max_mb. */
static void finish_file(edge_record_t *r)
{
    if (!r->w)
        return;
    errno = 0;
    int rc = pcapw_close(&r->w);
    int err = errno;
    if (rc != 0)
        failed(r, "writing", r->path, err ? err : EIO);
    if (rename_finished(r->path) != 0) {
        failed(r, "finishing", r->path, errno);
        return;
    }
    atomic_fetch_add(&r->metrics->record_files, 1);
    keep_within_bound(r);
}

/* A new file named by the time now; false when none can be opened (or the last failure was
 * too recent to try again). */
static bool open_file(edge_record_t *r)
{
    if (mono_now() < r->retry_at)
        return false;
    if (mkdir_p(r->dir, 0750) != 0) {
        failed(r, "making the directory", r->dir, errno);
        return false;
    }
    time_t now = time(NULL);
    struct tm tm;
    char stamp[32];
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof stamp, "%Y%m%d-%H%M%S", &tm);
    /* a second file within one second takes a number, never one an earlier file of this run
     * took (removed by max_mb since, the name would come back out of order) */
    r->same_stamp = strcmp(stamp, r->last_stamp) ? 0 : r->same_stamp + 1;
    snprintf(r->last_stamp, sizeof r->last_stamp, "%s", stamp);
    struct stat st;
    for (;; r->same_stamp++) {
        char suffix[16] = "";
        if (r->same_stamp)
            snprintf(suffix, sizeof suffix, "-%d", r->same_stamp);
        int n = snprintf(r->path, sizeof r->path, "%s/%s-%s%s.pcap.part", r->dir, r->prefix, stamp,
                         suffix);
        if (n >= (int)sizeof r->path) {
            failed(r, "naming a file in", r->dir, ENAMETOOLONG);
            return false;
        }
        r->path[n - strlen(".part")] = 0; /* the finished name must be free too */
        bool taken = stat(r->path, &st) == 0;
        r->path[n - strlen(".part")] = '.';
        if (!taken && stat(r->path, &st) != 0)
            break;
    }
    if (!(r->w = pcapw_open(r->path))) {
        failed(r, "opening", r->path, errno);
        return false;
    }
    if (r->failing)
        info("recording again, to %s", r->path);
    r->failing = false;
    r->bytes = 24;
    r->opened = mono_now();
    return true;
}

/* Only what a file name may hold of the edge's id: an id is free text. */
static void set_prefix(edge_record_t *r, const char *id)
{
    size_t i = 0;
    for (; id[i] && i + 1 < sizeof r->prefix; i++) {
        char c = id[i];
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '.' || c == '_' || c == '-';
        r->prefix[i] = plain && !(i == 0 && c == '.') ? c : '_';
    }
    r->prefix[i] = 0;
    if (!i)
        snprintf(r->prefix, sizeof r->prefix, "sipguard");
}

void record_configure(edge_record_t *r, const record_opts_t *o)
{
    pthread_mutex_lock(&r->lock);
    finish_file(r);
    snprintf(r->dir, sizeof r->dir, "%s", o->dir ? o->dir : "");
    set_prefix(r, o->prefix ? o->prefix : "");
    r->which = o->which;
    r->sample = o->sample > 0 && o->sample < 1 ? o->sample : 1;
    r->file_mb = o->file_mb > 0 ? o->file_mb : 1;
    r->max_mb = o->max_mb > r->file_mb ? o->max_mb : r->file_mb;
    r->file_seconds = o->file_seconds > 0 ? o->file_seconds : 3600;
    r->retry_at = 0;
    if (r->dir[0]) {
        if (mkdir_p(r->dir, 0750) != 0) {
            failed(r, "making the directory", r->dir, errno);
        } else {
            finish_leftovers(r);
            keep_within_bound(r);
        }
    }
    atomic_store(&r->on, r->dir[0] != 0);
    pthread_mutex_unlock(&r->lock);
}

/* Whether this message of the kind kept is one of the sample (every one at sample 1). */
static bool sampled(edge_record_t *r)
{
    r->sample_acc += r->sample;
    if (r->sample_acc < 1)
        return false;
    r->sample_acc -= 1;
    return true;
}

static bool kept_kind(record_which_t which, const edge_result_t *res)
{
    switch (which) {
    case RECORD_NORMAL:
        return res->verdict == VERDICT_NORMAL;
    case RECORD_ANOMALIES:
        return res->verdict == VERDICT_ANOMALY || res->verdict == VERDICT_SIGNATURE;
    default:
        return true;
    }
}

/* What pcapw writes for m: a message that came without addresses (POST /v1/score without
 * X-SIP-Source) goes as 0.0.0.0 to port 5060, and one without a transport as UDP. */
static msg_t framed(const msg_t *m)
{
    msg_t f = *m;
    if (f.src.family != 4 && f.src.family != 6) {
        memset(&f.src, 0, sizeof f.src);
        f.src.family = 4;
    }
    if (f.dst.family != f.src.family) {
        memset(&f.dst, 0, sizeof f.dst);
        f.dst.family = f.src.family;
        f.dst.port = 5060;
    }
    if (f.transport == TRANSPORT_WS) /* written bare over TCP, as a pcap has no frames */
        f.transport = TRANSPORT_TCP;
    if (f.transport != TRANSPORT_TCP)
        f.transport = TRANSPORT_UDP;
    return f;
}

void record_message(edge_record_t *r, const msg_t *m, const edge_result_t *res)
{
    if (!r || !atomic_load_explicit(&r->on, memory_order_relaxed))
        return;
    pthread_mutex_lock(&r->lock);
    if (!r->dir[0] || !kept_kind(r->which, res) || !sampled(r)) {
        pthread_mutex_unlock(&r->lock);
        return;
    }
    msg_t f = framed(m);
    errno = 0;
    if (m->len > RECORD_MAX_MESSAGE || (!r->w && !open_file(r))) {
        atomic_fetch_add(&r->metrics->record_dropped, 1);
    } else if (pcapw_write(r->w, &f) != 0) {
        atomic_fetch_add(&r->metrics->record_dropped, 1);
        failed(r, "writing", r->path, errno ? errno : EIO);
        finish_file(r);
    } else {
        atomic_fetch_add(&r->metrics->record_messages, 1);
        r->bytes += (double)m->len + RECORD_FRAME_OVERHEAD;
        if (r->bytes >= (double)r->file_mb * MIB)
            finish_file(r);
    }
    pthread_mutex_unlock(&r->lock);
}

void record_tick(edge_record_t *r)
{
    if (!r || !atomic_load(&r->on))
        return;
    pthread_mutex_lock(&r->lock);
    if (r->w && mono_now() - r->opened >= r->file_seconds)
        finish_file(r);
    pthread_mutex_unlock(&r->lock);
}

void record_destroy(edge_record_t **self)
{
    edge_record_t *r = *self;
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    finish_file(r);
    pthread_mutex_unlock(&r->lock);
    pthread_mutex_destroy(&r->lock);
    free(r);
    *self = NULL;
}
