#include "edge_spool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "fsutil.h"
#include "log.h"

#define SEQ_BLOCK 1000000ULL
#define FRAME_HEADER 16
#define MAX_FRAME (64u << 20)
#define NO_SEGMENT UINT32_MAX /* a report that could not be written: memory only */

typedef struct {
    uint64_t first_seq;
    uint64_t bytes;
    uint64_t unacked;
    bool gone; /* deleted */
} segment_t;

struct spool {
    char dir[512];
    uint64_t max_bytes, segment_bytes;
    segment_t *seg;
    size_t nseg, segcap;
    int cur_fd; /* the segment being appended to, or -1 */
    uint64_t next_seq, reserved_end;
    spool_entry_t *q; /* ring of entries, oldest first */
    size_t qhead, qlen, qcap;
    spool_stats_t st;
};

static void seg_path(const spool_t *s, uint64_t first, char *buf, size_t len)
{
    snprintf(buf, len, "%s/seg-%016" PRIx64 ".spool", s->dir, first);
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* Reserves the next block of sequence numbers in the seq file, synced before any is used. */
static int reserve_seq(spool_t *s)
{
    char path[600], tmp[600], buf[32];
    snprintf(path, sizeof path, "%s/seq", s->dir);
    snprintf(tmp, sizeof tmp, "%s/seq.tmp", s->dir);
    uint64_t end = s->next_seq + SEQ_BLOCK;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    if (fd < 0)
        return -1;
    int n = snprintf(buf, sizeof buf, "%" PRIu64 "\n", end);
    bool ok = write(fd, buf, (size_t)n) == n && fsync(fd) == 0;
    close(fd);
    if (!ok || rename(tmp, path) != 0)
        return -1;
    s->reserved_end = end;
    return 0;
}

static uint64_t read_seq_file(const spool_t *s)
{
    char path[600];
    snprintf(path, sizeof path, "%s/seq", s->dir);
    FILE *f = fopen(path, "r");
    uint64_t v = 0;
    if (f) {
        if (fscanf(f, "%" SCNu64, &v) != 1)
            v = 0;
        fclose(f);
    }
    return v;
}

static int push_entry(spool_t *s, const spool_entry_t *e)
{
    if (s->qlen == s->qcap) {
        size_t cap = s->qcap ? s->qcap * 2 : 1024;
        spool_entry_t *q = malloc(cap * sizeof *q);
        if (!q)
            return -1;
        for (size_t i = 0; i < s->qlen; i++)
            q[i] = s->q[(s->qhead + i) % s->qcap];
        free(s->q);
        s->q = q;
        s->qhead = 0;
        s->qcap = cap;
    }
    s->q[(s->qhead + s->qlen++) % s->qcap] = *e;
    return 0;
}

static int add_segment(spool_t *s, uint64_t first_seq, uint64_t bytes)
{
    if (s->nseg == s->segcap) {
        size_t cap = s->segcap ? s->segcap * 2 : 16;
        segment_t *g = realloc(s->seg, cap * sizeof *g);
        if (!g)
            return -1;
        s->seg = g;
        s->segcap = cap;
    }
    s->seg[s->nseg++] = (segment_t){first_seq, bytes, 0, false};
    return 0;
}

static int by_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Reads one segment's frames into the queue; cuts a torn or corrupt tail. */
static void delete_segment(spool_t *s, size_t i);

static int load_segment(spool_t *s, uint64_t first)
{
    char path[600];
    seg_path(s, first, path, sizeof path);
    int fd = open(path, O_RDWR);
    if (fd < 0)
        return -1;
    struct stat st;
    fstat(fd, &st);
    uint8_t *img = st.st_size ? malloc((size_t)st.st_size) : NULL;
    size_t size = (size_t)st.st_size, got = 0;
    while (img && got < size) {
        ssize_t r = read(fd, img + got, size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    size_t off = 0;
    uint32_t idx = (uint32_t)s->nseg;
    add_segment(s, first, 0);
    while (off + FRAME_HEADER <= got) {
        uint32_t len = (uint32_t)get_le(img + off, 4);
        uint64_t seq = get_le(img + off + 4, 8);
        uint32_t crc = (uint32_t)get_le(img + off + 12, 4);
        if (len > MAX_FRAME || off + FRAME_HEADER + len > got ||
            (uint32_t)crc32(0, img + off + FRAME_HEADER, len) != crc)
            break;
        spool_entry_t e = {seq, malloc(len + 1), len, 0, false, idx};
        if (!e.data)
            break;
        memcpy(e.data, img + off + FRAME_HEADER, len);
        e.data[len] = '\0';
        push_entry(s, &e);
        s->seg[idx].unacked++;
        s->st.recovered++;
        s->st.pending++;
        if (seq >= s->next_seq)
            s->next_seq = seq + 1;
        off += FRAME_HEADER + len;
    }
    if (off < size) {
        s->st.torn++;
        warning("spool %s: cut a torn or corrupt frame at byte %zu of %zu", path, off, size);
        if (ftruncate(fd, (off_t)off) != 0)
            warning("spool %s: cannot cut: %s", path, strerror(errno));
    }
    s->seg[idx].bytes = off;
    s->st.bytes += off;
    free(img);
    close(fd);
    if (s->seg[idx].unacked == 0) /* nothing readable in it */
        delete_segment(s, idx);
    return 0;
}

static int load_all(spool_t *s)
{
    DIR *d = opendir(s->dir);
    if (!d)
        return -1;
    uint64_t *firsts = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        uint64_t first;
        char tail[16];
        if (sscanf(de->d_name, "seg-%16" SCNx64 ".spoo%1s", &first, tail) != 2)
            continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            uint64_t *f = realloc(firsts, cap * sizeof *f);
            if (!f)
                break;
            firsts = f;
        }
        firsts[n++] = first;
    }
    closedir(d);
    if (n > 1)
        qsort(firsts, n, sizeof *firsts, by_u64);
    for (size_t i = 0; i < n; i++)
        load_segment(s, firsts[i]);
    free(firsts);
    return 0;
}

spool_t *spool_open(const char *dir, uint64_t max_bytes, char *err, size_t errlen)
{
    spool_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    s->max_bytes = max_bytes;
    s->segment_bytes = max_bytes / 16 > (1u << 20) ? (1u << 20) : max_bytes / 16;
    s->cur_fd = -1;
    s->next_seq = 1;
    if (mkdir_p(dir, 0750) != 0 || access(dir, W_OK) != 0) {
        snprintf(err, errlen, "spool directory %s: %s", dir, strerror(errno));
        free(s);
        return NULL;
    }
    load_all(s);
    uint64_t reserved = read_seq_file(s);
    if (reserved > s->next_seq)
        s->next_seq = reserved;
    if (reserve_seq(s) != 0) {
        snprintf(err, errlen, "spool directory %s: cannot write the sequence file: %s", dir,
                 strerror(errno));
        spool_close(&s);
        return NULL;
    }
    if (s->st.recovered)
        info("spool %s: %" PRIu64 " unacknowledged reports read back; they will be sent again", dir,
             s->st.recovered);
    return s;
}

void spool_close(spool_t **self)
{
    spool_t *s = *self;
    if (!s)
        return;
    if (s->cur_fd >= 0) {
        fdatasync(s->cur_fd);
        if (s->seg[s->nseg - 1].unacked == 0) /* all acknowledged: nothing to send again */
            delete_segment(s, s->nseg - 1);
        else
            close(s->cur_fd);
    }
    for (size_t i = 0; i < s->qlen; i++)
        free(s->q[(s->qhead + i) % s->qcap].data);
    free(s->q);
    free(s->seg);
    free(s);
    *self = NULL;
}

static void delete_segment(spool_t *s, size_t i)
{
    char path[600];
    seg_path(s, s->seg[i].first_seq, path, sizeof path);
    if (s->cur_fd >= 0 && i == s->nseg - 1) {
        close(s->cur_fd);
        s->cur_fd = -1;
    }
    unlink(path);
    s->st.bytes -= s->seg[i].bytes;
    s->seg[i].gone = true;
    s->seg[i].bytes = 0;
}

/* Drops entries from the front that are acknowledged or whose segment is gone. */
static void pop_front(spool_t *s)
{
    while (s->qlen) {
        spool_entry_t *e = &s->q[s->qhead];
        if (!e->acked && (e->segment == NO_SEGMENT || !s->seg[e->segment].gone))
            break;
        free(e->data);
        s->qhead = (s->qhead + 1) % s->qcap;
        s->qlen--;
    }
}

/* Past the bound, the oldest segments go; their unacknowledged reports are lost and counted. */
static void enforce_bound(spool_t *s)
{
    for (size_t i = 0; i < s->nseg && s->st.bytes > s->max_bytes; i++) {
        if (s->seg[i].gone || i == s->nseg - 1)
            continue;
        uint64_t lost = s->seg[i].unacked;
        s->st.dropped += lost;
        s->st.pending -= lost;
        warning("spool over its bound of %" PRIu64 " bytes: dropped the oldest segment with "
                "%" PRIu64 " unacknowledged reports (%" PRIu64 " lost so far)",
                s->max_bytes, lost, s->st.dropped);
        delete_segment(s, i);
        s->seg[i].unacked = 0;
    }
    pop_front(s);
}

/* Starts a new segment when there is none open or the open one is full. */
static int ensure_segment(spool_t *s, uint64_t seq)
{
    if (s->cur_fd >= 0 && s->seg[s->nseg - 1].bytes < s->segment_bytes)
        return 0;
    if (s->cur_fd >= 0) {
        fdatasync(s->cur_fd);
        close(s->cur_fd);
        s->cur_fd = -1;
    }
    char path[600];
    seg_path(s, seq, path, sizeof path);
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0640);
    if (fd < 0)
        return -1;
    if (add_segment(s, seq, 0) != 0) {
        close(fd);
        return -1;
    }
    s->cur_fd = fd;
    return 0;
}

uint64_t spool_next_seq(spool_t *s)
{
    if (s->next_seq >= s->reserved_end && reserve_seq(s) != 0)
        return 0;
    return s->next_seq;
}

uint64_t spool_append(spool_t *s, const char *data, size_t len)
{
    if (s->next_seq >= s->reserved_end && reserve_seq(s) != 0) {
        s->st.write_errors++;
        error("spool %s: cannot reserve sequence numbers: %s", s->dir, strerror(errno));
        return 0;
    }
    uint64_t seq = s->next_seq++;
    spool_entry_t e = {seq, malloc(len + 1), len, 0, false, 0};
    if (!e.data)
        return 0;
    memcpy(e.data, data, len);
    e.data[len] = '\0';
    bool written = false;
    if (len <= MAX_FRAME && ensure_segment(s, seq) == 0) {
        uint8_t h[FRAME_HEADER];
        put_le(h, len, 4);
        put_le(h + 4, seq, 8);
        put_le(h + 12, crc32(0, (const uint8_t *)data, (uInt)len), 4);
        /* one write of header and payload, so a frame is torn at worst, never interleaved */
        uint8_t *frame = malloc(FRAME_HEADER + len);
        if (frame) {
            memcpy(frame, h, FRAME_HEADER);
            memcpy(frame + FRAME_HEADER, data, len);
            ssize_t w = write(s->cur_fd, frame, FRAME_HEADER + len);
            written = w == (ssize_t)(FRAME_HEADER + len);
            if (!written && w > 0) /* a partial frame would read back as torn: take it back */
                if (ftruncate(s->cur_fd, (off_t)s->seg[s->nseg - 1].bytes) != 0)
                    warning("spool: cannot take back a partial frame");
            free(frame);
        }
    }
    if (written) {
        s->seg[s->nseg - 1].bytes += FRAME_HEADER + len;
        s->seg[s->nseg - 1].unacked++;
        s->st.bytes += FRAME_HEADER + len;
        e.segment = (uint32_t)(s->nseg - 1);
    } else {
        if (s->st.write_errors++ % 10000 == 0) /* a full disk fails every write: not every line */
            error("spool %s: cannot write report %" PRIu64 ": %s (kept in memory only; %" PRIu64
                  " write errors so far)",
                  s->dir, seq, errno ? strerror(errno) : "short write", s->st.write_errors);
        e.segment = NO_SEGMENT;
    }
    s->st.pending++;
    if (push_entry(s, &e) != 0) {
        free(e.data);
        return 0;
    }
    enforce_bound(s);
    return seq;
}

void spool_ack(spool_t *s, uint64_t seq)
{
    /* entries are in sequence order: binary search */
    size_t lo = 0, hi = s->qlen;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (s->q[(s->qhead + mid) % s->qcap].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == s->qlen)
        return;
    spool_entry_t *e = &s->q[(s->qhead + lo) % s->qcap];
    if (e->seq != seq || e->acked)
        return;
    e->acked = true;
    s->st.pending--;
    if (e->segment == NO_SEGMENT) {
        pop_front(s);
        return;
    }
    segment_t *g = &s->seg[e->segment];
    if (g->unacked)
        g->unacked--;
    /* a finished segment goes; the open one too once full, the next append opens another */
    bool open_one = e->segment == s->nseg - 1 && s->cur_fd >= 0;
    if (g->unacked == 0 && !g->gone && (!open_one || g->bytes >= s->segment_bytes))
        delete_segment(s, e->segment);
    pop_front(s);
}

size_t spool_count(const spool_t *s)
{
    return s->qlen;
}

spool_entry_t *spool_entry(spool_t *s, size_t i)
{
    return &s->q[(s->qhead + i) % s->qcap];
}

void spool_sync(spool_t *s)
{
    if (s->cur_fd >= 0)
        fdatasync(s->cur_fd);
}

void spool_stats(const spool_t *s, spool_stats_t *out)
{
    *out = s->st;
}
