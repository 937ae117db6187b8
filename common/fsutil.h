/*
 * fsutil: small file-system helpers the daemons share.
 */
#ifndef SIPGUARD_FSUTIL_H
#define SIPGUARD_FSUTIL_H

#include <jansson.h>
#include <stdio.h>
#include <sys/types.h>

/* Creates a directory and its missing parents (mode for the ones it makes). Returns 0, or -1
 * with errno set. */
int mkdir_p(const char *dir, mode_t mode);

/* Whether mkdir_p(dir) would leave a directory this process can write in: dir is one, or its
 * nearest existing ancestor is. For --check-config, which must not create anything. Returns 0,
 * or -1 with errno set (ENOTDIR when that ancestor is a file). */
int fs_dir_would_be_writable(const char *dir);

/* Whether a file could be opened for writing at path: it exists and is writable (a device
 * such as /dev/null too), or it does not and its directory is writable. 0, or -1 with errno. */
int fs_file_would_be_writable(const char *path);

/*
 * A file written whole (a model, a signature set, a context model): into a temporary file
 * beside the target that wholefile_commit syncs and renames over it, so that a reader (an
 * edge reloading on SIGHUP) never sees half of one and a failed write leaves the old one. A
 * symbolic link to a regular file is followed, so the link stays and its target is replaced.
 * When the target exists and is not a regular file (/dev/stdout on a pipe or a terminal, a
 * FIFO, /dev/full), it is written in place: a rename would put a file where the device or
 * pipe was, and a write error (a full device) must be seen.
 */
typedef struct {
    FILE *f;
    char target[4096]; /* the file renamed over */
    char tmp[4200];    /* "" when writing in place */
} wholefile_t;

/* Opens the file to write. Returns its stream, or NULL with "PATH: why" in err. */
FILE *wholefile_open(wholefile_t *w, const char *path, char *err, size_t errlen);

/* Flushes, syncs and closes the stream and puts the file in place. Returns 0, or -1 with
 * "PATH: why" in err and the temporary file removed. */
int wholefile_commit(wholefile_t *w, const char *path, char *err, size_t errlen);

/* Gives up: closes the stream and removes the temporary file. */
void wholefile_abort(wholefile_t *w);

/* Why jansson could not read the JSON file at path: "PATH:LINE:COLUMN: what", or jansson's own
 * "unable to open PATH: why" when the file could not be opened (no line to name then). */
void json_file_error(char *buf, size_t len, const char *path, const json_error_t *je);

/* A JSON document written whole (json_dumpf flags). Returns 0, or -1 with "PATH: why". */
int wholefile_write_json(const json_t *doc, const char *path, size_t flags, char *err,
                         size_t errlen);

/*
 * Which file a path names now (device, inode, size, modification time), to tell whether a file
 * read before is the same one: a model is not loaded again for a reload or a new signature
 * set when its file did not change. `sipguard train -o` writes a new file and renames it over
 * the old (wholefile_commit), so a retrained model is another inode.
 */
typedef struct {
    int known; /* 0: the path could not be read (stat failed); never the same as anything */
    dev_t dev;
    ino_t ino;
    off_t size;
    long mtime_sec, mtime_nsec;
} file_id_t;

file_id_t file_id_of(const char *path);
/* Whether both are known and name the same file in the same state */
int file_id_same(const file_id_t *a, const file_id_t *b);

#endif
