#include "log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

static const char *program = "sipguard";
/* atomic: a daemon's SIGHUP sets it while its other threads log */
static atomic_int max_level = LOG_LEVEL_WARNING;
static int use_syslog;

void log_set_syslog(int on)
{
    if (on && !use_syslog)
        openlog(program, LOG_PID, LOG_DAEMON);
    else if (!on && use_syslog)
        closelog();
    use_syslog = on;
}

void log_set_program(const char *name)
{
    program = name;
}

void log_set_level(log_level_t level)
{
    atomic_store_explicit(&max_level, (int)level, memory_order_relaxed);
}

log_level_t log_get_level(void)
{
    return (log_level_t)atomic_load_explicit(&max_level, memory_order_relaxed);
}

int log_level_of(const char *name)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    for (int i = 0; i < 4; i++)
        if (strcmp(name, names[i]) == 0)
            return i;
    return -1;
}

int log_parse_level(const char *name)
{
    int level = log_level_of(name);
    if (level < 0)
        return -1;
    log_set_level((log_level_t)level);
    return 0;
}

void log_list_add(char *buf, size_t cap, size_t *len, const char *item)
{
    if (cap == 0 || *len >= cap - 1)
        return;
    int n = snprintf(buf + *len, cap - *len, "%s%s", *len ? ", " : "", item);
    if (n > 0)
        *len = *len + (size_t)n < cap - 1 ? *len + (size_t)n : cap - 1;
}

void log_write(log_level_t level, const char *func, const char *fmt, ...)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    log_level_t max = log_get_level();
    if (level > max)
        return;
    va_list ap;
    va_start(ap, fmt);
    if (use_syslog) {
        static const int prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};
        vsyslog(prio[level], fmt, ap);
        va_end(ap);
        return;
    }
    flockfile(stderr); /* one line per message, whichever thread writes */
    if (max >= LOG_LEVEL_DEBUG)
        fprintf(stderr, "%s: %s: %s: ", program, names[level], func);
    else
        fprintf(stderr, "%s: %s: ", program, names[level]);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    funlockfile(stderr);
    va_end(ap);
}

void log_limit_init(log_limit_t *l, unsigned burst, double window, const char *what)
{
    pthread_mutex_init(&l->lock, NULL);
    l->burst = burst;
    l->window = window;
    l->what = what;
    l->started = -1;
    l->used = 0;
    l->held = 0;
}

void log_limit_destroy(log_limit_t *l)
{
    pthread_mutex_destroy(&l->lock);
}

void log_limit_set_burst(log_limit_t *l, unsigned burst)
{
    pthread_mutex_lock(&l->lock);
    l->burst = burst;
    pthread_mutex_unlock(&l->lock);
}

/* Under the lock: the summary of the window that ended, and none open. */
static uint64_t sum_up_held(log_limit_t *l, double now)
{
    uint64_t held = l->held;
    if (held)
        log_write(LOG_LEVEL_WARNING, "log_limit",
                  "%" PRIu64 " more %s in the last %.0f s, not "
                  "logged one by one (at most %u a %.0f s window are)",
                  held, l->what, now - l->started, l->burst, l->window);
    l->started = -1;
    l->used = 0;
    l->held = 0;
    return held;
}

bool log_limit_take(log_limit_t *l, double now)
{
    pthread_mutex_lock(&l->lock);
    if (l->started >= 0 && (now - l->started >= l->window || now < l->started))
        sum_up_held(l, now);
    if (l->started < 0)
        l->started = now;
    bool take = l->burst == 0 || l->used < l->burst;
    if (take)
        l->used++;
    else
        l->held++;
    pthread_mutex_unlock(&l->lock);
    return take;
}

uint64_t log_limit_flush(log_limit_t *l, double now, bool final)
{
    uint64_t held = 0;
    pthread_mutex_lock(&l->lock);
    if (l->started >= 0 && (final || now - l->started >= l->window || now < l->started))
        held = sum_up_held(l, now);
    pthread_mutex_unlock(&l->lock);
    return held;
}
