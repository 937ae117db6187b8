/*
 * log: leveled diagnostics for every sipguard program.
 *
 * error(), warning(), info() and debug() prefix the message with the program
 * name and, at debug level, the calling function, so that a message says
 * where it came from. Messages go to stderr, or to syslog (daemon facility)
 * after log_set_syslog(1).
 */
#ifndef SIPGUARD_LOG_H
#define SIPGUARD_LOG_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum {
    LOG_LEVEL_ERROR = 0,
    LOG_LEVEL_WARNING,
    LOG_LEVEL_INFO,
    LOG_LEVEL_DEBUG
} log_level_t;

/* Sets the program name shown in front of every message. */
void log_set_program(const char *name);
/* Sends messages to syslog (1) or standard error (0). */
void log_set_syslog(int on);
/* Messages above this level are dropped. Default: LOG_LEVEL_WARNING. */
void log_set_level(log_level_t level);
log_level_t log_get_level(void);
/* Sets the level from its name ("error", "warning", "info", "debug"); returns 0, or -1 when
 * the name is unknown (the level is then unchanged). */
int log_parse_level(const char *name);
/* The level a name stands for ("error" ... "debug"), or -1 when it is none. */
int log_level_of(const char *name);

/* Appends item to the comma-separated list a log line names in buf (cap bytes, *len of them
 * written so far): what does not fit is cut, and buf stays a string. */
void log_list_add(char *buf, size_t cap, size_t *len, const char *item);

/* Prints one message at a level; prefer the macros below. */
void log_write(log_level_t level, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * A budget for one kind of line that a peer can make the program repeat at will (a ban per
 * scanning source, a refused connection per try): the first burst lines of each window are
 * logged one by one, the rest counted, and summed up in one warning once their window is over
 * ("N more WHAT in the last S s, not logged one by one"). A botnet-sized scan would otherwise
 * write thousands of lines a minute and meet journald's rate limit, which drops lines of every
 * kind. Safe to share between threads. Times are a monotonic clock's seconds.
 */
typedef struct {
    pthread_mutex_t lock;
    unsigned burst;   /* lines a window logs one by one; 0: every line */
    double window;    /* seconds */
    const char *what; /* names the lines in the summary, e.g. "bans" */
    double started;   /* the current window's start; < 0: none yet */
    unsigned used;    /* lines logged in it */
    uint64_t held;    /* lines counted but not logged in it */
} log_limit_t;

void log_limit_init(log_limit_t *l, unsigned burst, double window, const char *what);
void log_limit_destroy(log_limit_t *l);
/* A new burst (a SIGHUP's setting), from the next window on. */
void log_limit_set_burst(log_limit_t *l, unsigned burst);
/* Whether the line about to be written may be; when not, it is counted for the summary. A
 * window that ended with lines held is summed up first. */
bool log_limit_take(log_limit_t *l, double now);
/* Sums up the lines held once their window is over (call it now and then, so that the summary
 * comes without waiting for the next line); returns how many it summed up. At the end
 * (final), whatever is held. */
uint64_t log_limit_flush(log_limit_t *l, double now, bool final);

#define error(...) log_write(LOG_LEVEL_ERROR, __func__, __VA_ARGS__)
#define warning(...) log_write(LOG_LEVEL_WARNING, __func__, __VA_ARGS__)
#define info(...) log_write(LOG_LEVEL_INFO, __func__, __VA_ARGS__)
#define debug(...) log_write(LOG_LEVEL_DEBUG, __func__, __VA_ARGS__)

#endif
