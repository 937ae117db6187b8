#include "fsutil.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int mkdir_p(const char *dir, mode_t mode)
{
    char tmp[512];
    if (snprintf(tmp, sizeof tmp, "%s", dir) >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = tmp + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            if (mkdir(tmp, mode) != 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    return mkdir(tmp, mode) != 0 && errno != EEXIST ? -1 : 0;
}

int fs_dir_would_be_writable(const char *dir)
{
    char tmp[512];
    if (snprintf(tmp, sizeof tmp, "%s", dir[0] ? dir : ".") >= (int)sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    struct stat st;
    while (stat(tmp, &st) != 0) { /* up to the part that exists */
        char *slash = strrchr(tmp, '/');
        if (errno != ENOENT || !slash)
            return errno == ENOENT ? access(".", W_OK | X_OK) : -1;
        if (slash == tmp)
            slash[1] = '\0'; /* "/" */
        else
            *slash = '\0';
    }
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return access(tmp, W_OK | X_OK);
}

int fs_file_would_be_writable(const char *path)
{
    if (access(path, F_OK) == 0)
        return access(path, W_OK);
    if (errno != ENOENT)
        return -1;
    char dir[512];
    const char *slash = strrchr(path, '/');
    int n = !slash          ? snprintf(dir, sizeof dir, ".")
            : slash == path ? snprintf(dir, sizeof dir, "/")
                            : snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (n >= (int)sizeof dir) {
        errno = ENAMETOOLONG;
        return -1;
    }
    struct stat st;
    if (stat(dir, &st) != 0)
        return -1;
    if (!S_ISDIR(st.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return access(dir, W_OK | X_OK);
}

/* Where path's bytes go: itself, or the regular file a symbolic link leads to. False when
 * they are to be written in place (path exists and is no regular file, or a link leads
 * somewhere that is not an ordinary path, as /dev/stdout on a pipe does). */
static bool renamed_over(const char *path, char *target, size_t cap)
{
    struct stat st, lst;
    if (lstat(path, &lst) != 0) {
        snprintf(target, cap, "%s", path); /* a new file */
        return true;
    }
    if (!S_ISLNK(lst.st_mode)) {
        snprintf(target, cap, "%s", path);
        return S_ISREG(lst.st_mode);
    }
    char real[PATH_MAX];
    struct stat rst;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || !realpath(path, real) ||
        stat(real, &rst) != 0 || rst.st_dev != st.st_dev || rst.st_ino != st.st_ino ||
        strlen(real) >= cap) {
        snprintf(target, cap, "%s", path);
        return false;
    }
    memcpy(target, real, strlen(real) + 1);
    return true;
}

FILE *wholefile_open(wholefile_t *w, const char *path, char *err, size_t errlen)
{
    w->tmp[0] = '\0';
    w->f = NULL;
    if (!renamed_over(path, w->target, sizeof w->target)) {
        if (!(w->f = fopen(path, "wb")))
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return w->f;
    }
    /* the process id keeps two writers of one target apart */
    if (snprintf(w->tmp, sizeof w->tmp, "%s.tmp.%ld", w->target, (long)getpid()) >=
        (int)sizeof w->tmp) {
        snprintf(err, errlen, "%s: %s", path, strerror(ENAMETOOLONG));
        w->tmp[0] = '\0';
        return NULL;
    }
    if (!(w->f = fopen(w->tmp, "wb"))) /* named as the user named it, the temporary after */
        snprintf(err, errlen, "%s: %s (writing %s first)", path, strerror(errno), w->tmp);
    return w->f;
}

int wholefile_commit(wholefile_t *w, const char *path, char *err, size_t errlen)
{
    int bad = ferror(w->f) || fflush(w->f) != 0, saved = errno;
    /* a device or a pipe need not support fsync */
    if (!bad && w->tmp[0] && fsync(fileno(w->f)) != 0) {
        bad = 1;
        saved = errno;
    }
    if (fclose(w->f) != 0 && !bad) {
        bad = 1;
        saved = errno;
    }
    w->f = NULL;
    if (bad) {
        snprintf(err, errlen, "%s: write failed: %s", path, strerror(saved ? saved : EIO));
        wholefile_abort(w);
        return -1;
    }
    if (w->tmp[0] && rename(w->tmp, w->target) != 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        wholefile_abort(w);
        return -1;
    }
    return 0;
}

int wholefile_write_json(const json_t *doc, const char *path, size_t flags, char *err,
                         size_t errlen)
{
    wholefile_t w;
    FILE *f = wholefile_open(&w, path, err, errlen);
    if (!f)
        return -1;
    if (json_dumpf(doc, f, flags) != 0) {
        snprintf(err, errlen, "%s: write failed: %s", path, strerror(errno));
        wholefile_abort(&w);
        return -1;
    }
    return wholefile_commit(&w, path, err, errlen);
}

void wholefile_abort(wholefile_t *w)
{
    if (w->f)
        fclose(w->f);
    w->f = NULL;
    if (w->tmp[0])
        unlink(w->tmp);
    w->tmp[0] = '\0';
}

file_id_t file_id_of(const char *path)
{
    file_id_t id = {0};
    struct stat st;
    if (stat(path, &st) != 0)
        return id;
    id = (file_id_t){
        1, st.st_dev, st.st_ino, st.st_size, (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
    return id;
}

int file_id_same(const file_id_t *a, const file_id_t *b)
{
    return a->known && b->known && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
           a->mtime_sec == b->mtime_sec && a->mtime_nsec == b->mtime_nsec;
}

void json_file_error(char *buf, size_t len, const char *path, const json_error_t *je)
{
    if (je->line > 0)
        snprintf(buf, len, "%s:%d:%d: %s", path, je->line, je->column, je->text);
    else
        snprintf(buf, len, "%s", je->text);
}
