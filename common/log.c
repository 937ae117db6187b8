#include "log.h"

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
