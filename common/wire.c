#include "wire.h"

#include "fsutil.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

size_t wire_size(size_t id_len, size_t json_len)
{
    return WIRE_TAG_LEN + 1 + id_len + 8 + json_len;
}

size_t wire_encode(uint8_t *out, const char *tag, const char *id, uint64_t seq, const char *json,
                   size_t json_len)
{
    size_t il = strlen(id);
    if (il == 0 || il > WIRE_ID_MAX)
        return 0;
    uint8_t *p = out;
    memcpy(p, tag, WIRE_TAG_LEN);
    p += WIRE_TAG_LEN;
    *p++ = (uint8_t)il;
    memcpy(p, id, il);
    p += il;
    for (int i = 0; i < 8; i++)
        *p++ = (uint8_t)(seq >> (56 - 8 * i));
    if (json && json_len) {
        memcpy(p, json, json_len);
        p += json_len;
    }
    return (size_t)(p - out);
}

int wire_decode(const void *frame, size_t len, const char *tag, wire_msg_t *out)
{
    const uint8_t *p = frame;
    if (len < WIRE_TAG_LEN + 1 + 1 + 8 || memcmp(p, tag, WIRE_TAG_LEN))
        return -1;
    size_t il = p[WIRE_TAG_LEN];
    if (il == 0 || il > WIRE_ID_MAX || len < WIRE_TAG_LEN + 1 + il + 8)
        return -1;
    out->id = (const char *)p + WIRE_TAG_LEN + 1;
    out->id_len = il;
    const uint8_t *s = p + WIRE_TAG_LEN + 1 + il;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | s[i];
    out->seq = v;
    out->json = (const char *)s + 8;
    out->json_len = len - (WIRE_TAG_LEN + 1 + il + 8);
    return 0;
}

size_t wire_encode_set(uint8_t *out, const char *tag, uint64_t seq, const char *json, size_t len)
{
    memcpy(out, tag, WIRE_TAG_LEN);
    for (int i = 0; i < 8; i++)
        out[WIRE_TAG_LEN + i] = (uint8_t)(seq >> (56 - 8 * i));
    memcpy(out + WIRE_TAG_LEN + 8, json, len);
    return WIRE_TAG_LEN + 8 + len;
}

int wire_decode_set(const void *frame, size_t len, const char *tag, uint64_t *seq,
                    const char **json, size_t *json_len)
{
    const uint8_t *p = frame;
    if (len < WIRE_TAG_LEN + 8 || memcmp(p, tag, WIRE_TAG_LEN))
        return -1;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[WIRE_TAG_LEN + i];
    *seq = v;
    *json = (const char *)p + WIRE_TAG_LEN + 8;
    *json_len = len - WIRE_TAG_LEN - 8;
    return 0;
}

/* Reads a 40-character Z85 key from a file. */
static int read_key(const char *path, char key[41])
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char buf[64] = {0};
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    if (n != 40)
        return -1;
    memcpy(key, buf, 41);
    return 0;
}

static int write_key(const char *path, const char *key, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, mode);
    if (fd < 0)
        return -1;
    char line[42];
    snprintf(line, sizeof line, "%s\n", key);
    int ok = write(fd, line, 41) == 41 && fsync(fd) == 0;
    close(fd);
    return ok ? 0 : -1;
}

int wire_keypair(const char *dir, const char *name, char pub[41], char sec[41], char *err,
                 size_t errlen)
{
    char pp[600], sp[600];
    snprintf(pp, sizeof pp, "%s/%s.pub", dir, name);
    snprintf(sp, sizeof sp, "%s/%s.key", dir, name);
    if (read_key(sp, sec) == 0 && read_key(pp, pub) == 0)
        return 0;
    if (access(sp, F_OK) == 0) {
        snprintf(err, errlen, "%s: exists but is not a 40-character Z85 key (or %s is missing)", sp,
                 pp);
        return -1;
    }
    if (mkdir_p(dir, 0700) != 0) {
        snprintf(err, errlen, "%s: %s", dir, strerror(errno));
        return -1;
    }
    if (zmq_curve_keypair(pub, sec) != 0) {
        snprintf(err, errlen, "libzmq cannot make CURVE keys (built without libsodium?)");
        return -1;
    }
    if (write_key(sp, sec, 0600) != 0 || write_key(pp, pub, 0644) != 0) {
        snprintf(err, errlen, "cannot write the key pair to %s: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* Whether a tcp:// endpoint's host is an IPv6 address in brackets, which libzmq refuses
 * without its IPv6 option (wire_socket) */
static bool endpoint_wants_ipv6(const char *endpoint)
{
    return !strncmp(endpoint, "tcp://[", 7);
}

void *wire_socket(void *zctx, int type, const char *endpoint)
{
    void *sock = zmq_socket(zctx, type);
    int on = endpoint_wants_ipv6(endpoint);
    if (sock && on && zmq_setsockopt(sock, ZMQ_IPV6, &on, sizeof on) != 0) {
        int saved = errno;
        zmq_close(sock);
        errno = saved;
        return NULL;
    }
    return sock;
}

/* Unbinding closes every connection accepted on the endpoint; binding again takes the port
 * back. The old listener is closed by libzmq's I/O thread, so the bind is retried for up to a
 * second while the port is still taken. */
int wire_rebind(void *sock, const char *ep)
{
    if (zmq_unbind(sock, ep) != 0)
        return -1;
    struct timespec pause = {0, 10 * 1000 * 1000};
    for (int tries = 0; tries < 100; tries++) {
        if (zmq_bind(sock, ep) == 0)
            return 0;
        if (errno != EADDRINUSE)
            return -1;
        nanosleep(&pause, NULL);
    }
    return -1;
}
