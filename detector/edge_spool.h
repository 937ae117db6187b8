/*
 * edge_spool: the edge's on-disk queue of reports the overlay has not yet
 * acknowledged.
 *
 * Every report is appended here before it is sent, so neither a dead overlay
 * nor a SIGKILLed edge loses it: on restart the spool is read back and what
 * it holds is sent again (the overlay drops duplicates by (edge, sequence)).
 * The spool is a directory of segment files of length-prefixed frames
 * (u32 length, u64 sequence, u32 CRC-32 of the payload, payload; little
 * endian), named by their first sequence number. A segment whose reports are
 * all acknowledged is deleted. The total size is bounded: past the bound the
 * oldest segment goes, and the reports lost with it are counted and logged.
 * A torn frame at the end of a segment (the edge died mid-write) is cut off.
 *
 * Sequence numbers never repeat across restarts: blocks of them are reserved
 * in the file `seq` (written and synced before use), so a crash skips at most
 * the rest of one block.
 */
#ifndef SIPGUARD_EDGE_SPOOL_H
#define SIPGUARD_EDGE_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct spool spool_t;

/* One report waiting for its acknowledgement. */
typedef struct {
    uint64_t seq;
    char *data;
    size_t len;
    double sent_at; /* monotonic seconds of the last send; 0 = never sent */
    bool acked;
    uint32_t segment; /* index into the spool's segment list */
} spool_entry_t;

typedef struct {
    uint64_t bytes;     /* on disk */
    uint64_t pending;   /* reports not acknowledged */
    uint64_t dropped;   /* reports lost to the size bound */
    uint64_t recovered; /* reports read back at open */
    uint64_t torn;      /* torn or corrupt frames cut off at open */
    uint64_t write_errors;
} spool_stats_t;

/* Opens (creating) the spool directory and reads back what it holds. NULL and err on failure. */
spool_t *spool_open(const char *dir, uint64_t max_bytes, char *err, size_t errlen);
void spool_close(spool_t **self);

/*
 * Appends a report and returns its sequence number (> 0), or 0 when it could not be written
 * (disk full, I/O error: logged and counted; the report is still kept in memory and sent).
 */
uint64_t spool_append(spool_t *s, const char *data, size_t len);

/* The sequence number the next spool_append() will give (0 when none can be reserved). */
uint64_t spool_next_seq(spool_t *s);

/* Marks a report acknowledged; deletes segments left with nothing pending. Unknown: ignored. */
void spool_ack(spool_t *s, uint64_t seq);

/* The pending reports, oldest first: entry i of n (acked ones may be among them). */
size_t spool_count(const spool_t *s);
spool_entry_t *spool_entry(spool_t *s, size_t i);

/* Flushes written frames to stable storage (fdatasync). */
void spool_sync(spool_t *s);

void spool_stats(const spool_t *s, spool_stats_t *out);

#endif
