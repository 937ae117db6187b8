/* input_raw: one SIP message per file, exact bytes; or a directory of *.sip files. */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "input.h"

typedef struct {
    char **files;
    size_t n, next;
    uint8_t *buf;
} raw_state_t;

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int ends_with_sip(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && strcmp(name + n - 4, ".sip") == 0;
}

static int list_directory(raw_state_t *s, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    struct dirent *e;
    size_t cap = 0;
    while ((e = readdir(d))) {
        if (!ends_with_sip(e->d_name))
            continue;
        if (s->n == cap) {
            cap = cap ? cap * 2 : 64;
            char **f = realloc(s->files, cap * sizeof *f);
            if (!f) {
                closedir(d);
                return -1;
            }
            s->files = f;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        s->files[s->n] = malloc(len);
        if (!s->files[s->n]) {
            closedir(d);
            return -1;
        }
        snprintf(s->files[s->n++], len, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    qsort(s->files, s->n, sizeof *s->files, by_name);
    return 0;
}

static int raw_open(input_t *in, const char *path, const void *mem, size_t mem_len)
{
    (void)mem;
    (void)mem_len;
    raw_state_t *s = calloc(1, sizeof *s);
    struct stat st;
    if (!s || stat(path, &st) != 0) {
        input_set_error(in, "%s: %s", path, s ? strerror(errno) : "out of memory");
        free(s);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        if (list_directory(s, path) != 0) {
            input_set_error(in, "%s: cannot list directory: %s", path, strerror(errno));
            free(s);
            return -1;
        }
    } else {
        s->files = malloc(sizeof *s->files);
        s->files[0] = strdup(path);
        s->n = 1;
    }
    s->buf = malloc(input_opts(in)->max_msg + 1);
    input_set_state(in, s);
    return 0;
}

static int raw_fill(input_t *in)
{
    raw_state_t *s = input_state(in);
    while (s->next < s->n) {
        const char *path = s->files[s->next++];
        FILE *f = fopen(path, "rb");
        if (!f) {
            skips_add(input_skips_mut(in), "raw: cannot open file: %s", strerror(errno));
            continue;
        }
        size_t max = input_opts(in)->max_msg;
        size_t n = fread(s->buf, 1, max + 1, f);
        struct stat st;
        int have_st = fstat(fileno(f), &st) == 0;
        fclose(f);
        if (n == 0) {
            skips_add(input_skips_mut(in), "raw: empty file");
            continue;
        }
        msg_t m = {0};
        m.transport = TRANSPORT_NONE;
        m.input = path;
        m.ts_sec = have_st ? st.st_mtime : 0;
        m.data = s->buf;
        m.len = n > max ? max : n;
        if (n > max) {
            m.truncated = 1;
            skips_add(input_skips_mut(in), "message longer than limit (kept, truncated)");
        }
        input_enqueue(in, &m);
        return 1;
    }
    return 0;
}

static void raw_close(input_t *in)
{
    raw_state_t *s = input_state(in);
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->files[i]);
    free(s->files);
    free(s->buf);
    free(s);
}

const input_format_t input_raw_format = {"raw", raw_open, raw_fill, raw_close};
