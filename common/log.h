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

#include <stddef.h>

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

#define error(...) log_write(LOG_LEVEL_ERROR, __func__, __VA_ARGS__)
#define warning(...) log_write(LOG_LEVEL_WARNING, __func__, __VA_ARGS__)
#define info(...) log_write(LOG_LEVEL_INFO, __func__, __VA_ARGS__)
#define debug(...) log_write(LOG_LEVEL_DEBUG, __func__, __VA_ARGS__)

#endif
