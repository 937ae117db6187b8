/*
 * ban: sources that keep drawing blocking judgements, blocked for a while.
 *
 * The content models judge one message at a time, but a scanner or a password
 * guesser sends many, and some of them look normal on their own (a well-formed
 * REGISTER with a guessed password). Operators pair a per-message check with a
 * ban list (Kamailio's pike and an htable with autoexpire, fail2ban): after
 * `after` blocking judgements within `window` seconds a source is banned, and
 * its messages are answered "banned" without being scored, which also spares
 * the edge during a flood. A source banned again is banned twice as long as
 * the time before, up to max_seconds; what it did is remembered for
 * max_seconds after its last ban ended. IPv6 sources are banned by prefix
 * (/64 by default: a tool that rotates addresses within its prefix is one
 * source); an entry keeps the prefix it was made with, so a new prefix (a
 * SIGHUP) or the domain's list with another one mix in one table, and a
 * lookup tries each length the table holds. Bans survive restarts: the table is saved as JSON.
 *
 * The table holds at most max_sources sources, so spoofed sources cannot grow
 * it without bound: when it is full, sources with nothing to remember are
 * dropped, and a strike that still finds no room is counted, not kept. One
 * lock guards it: the ingest loop, the HTTP thread and the HTTP API use it.
 * Times are Unix seconds (wall clock), so that a saved ban ends when it would
 * have ended. The overlay's list of the domain's bans is imposed on top
 * (bantable_set_domain), so that a source one edge banned is banned at all.
 */
#ifndef SIPGUARD_BAN_H
#define SIPGUARD_BAN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "msg.h"
#include "sipcheck.h"

typedef struct {
    unsigned after;     /* blocking judgements within window that start a ban (>= 1) */
    double window;      /* seconds */
    double seconds;     /* length of a source's first ban */
    double max_seconds; /* longest ban, and how long a source's bans are remembered */
    unsigned prefix6;   /* IPv6 sources are banned by this prefix length (1..128) */
    size_t max_sources; /* sources tracked at once */
} ban_opts_t;

typedef struct bantable bantable_t;

/* The time bans are kept in: the wall clock, in Unix seconds. */
double ban_clock(void);

/* NULL when out of memory. */
bantable_t *bantable_new(const ban_opts_t *o);
void bantable_destroy(bantable_t **t);

/* Takes o's after, window, seconds, max_seconds and prefix6 (a SIGHUP's new [ban] settings)
 * for the strikes and bans from now on; bans already running keep their ends, and IPv6 ones
 * their prefix (a lookup tries every prefix length the table holds); max_sources changes
 * through bantable_set_capacity. */
void bantable_set_opts(bantable_t *t, const ban_opts_t *o);

/* Gives the table room for max_sources sources (a SIGHUP's new [ban] max_sources; at least 1).
 * When it holds more than that, the sources with nothing left to remember at now go first,
 * then those whose ban ends soonest. Returns how many sources it dropped, or -1 when out of
 * memory (the table is then kept as it was). */
long bantable_set_capacity(bantable_t *t, size_t max_sources, double now);

/* Seconds left of a ban on the source at now, or 0 (not banned, or an unknown address). */
double bantable_banned(bantable_t *t, const endpoint_t *src, double now);

/* Counts a blocking judgement of the source's at now as strikes (at least 1) of the after that
 * ban it: a signature match may weigh more than an anomaly ([ban] signature_strikes). Returns
 * the length of the ban it starts, or 0 when it starts none. */
double bantable_strike(bantable_t *t, const endpoint_t *src, unsigned strikes, double now);

/* Lifts the ban on a source written as an address (an IPv6 one taken to the ban prefix) or as
 * ADDR/LEN (an IPv6 prefix as listed) and forgets its past bans. 1 when it was banned, 0 when not,
 * -1 when the text is not an address. */
int bantable_lift(bantable_t *t, const char *source);

/* Imposes the domain's bans (the overlay's list, which comes with its signature set): each
 * source is banned until its until, on top of what the table holds of its own, and sources
 * the previous list banned that this one does not are no longer banned by the domain.
 * Sources are "ADDR" or "ADDR/LEN" (an IPv6 prefix is banned as listed, whatever the table's
 * own prefix). Returns the
 * bans imposed (those still running, whose source has room in the table). */
long bantable_set_domain(bantable_t *t, const char *const *sources, const double *until, size_t n,
                         double now);

typedef struct {
    size_t active;      /* sources banned now (by themselves or the domain) */
    size_t domain;      /* of them, sources the domain's list bans */
    size_t tracked;     /* sources held: banned, striking, or remembered */
    uint64_t bans;      /* bans started since the table was made */
    uint64_t untracked; /* strikes not counted: the table was full */
} ban_stats_t;

/* Drops the sources with nothing left to remember and fills st (either may be skipped:
 * st NULL). Called about once a second; it walks the whole table. */
void bantable_tick(bantable_t *t, double now, ban_stats_t *st);

/* The active bans: [{"source", "until", "seconds_left", "bans", "domain"}], longest first. */
json_t *bantable_list(bantable_t *t, double now);

/* Whether something changed since the last save. */
bool bantable_dirty(bantable_t *t);

/* Writes every remembered source to path, whole (temporary file, sync, rename). 0, or -1 with
 * "PATH: why" in err. */
int bantable_save(bantable_t *t, const char *path, double now, char *err, size_t errlen);

/* Reads a file bantable_save wrote; sources whose memory has run out by now are skipped.
 * Returns the sources read, 0 when the file does not exist, or -1 with "PATH: why" in err
 * (the table is then left as it was). */
long bantable_load(bantable_t *t, const char *path, double now, char *err, size_t errlen);

/* Whether a blocking judgement of this message counts against its source: only a request the
 * source made itself does. A response is a server answering (perhaps an attacker), and a
 * request with more than one Via was forwarded by a proxy, whose own address it comes from. */
bool ban_counts(const sipinfo_t *info);

/* The text bans are listed and saved under: "203.0.113.7", "2001:db8:1:2::/64". */
void bantable_source_text(const bantable_t *t, const endpoint_t *src, char *buf, size_t cap);

#endif
