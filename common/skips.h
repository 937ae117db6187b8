/*
 * skips: counted, named reasons why a reader passed over input.
 *
 * Readers never drop data silently: every packet or byte range they cannot
 * use is counted under a short reason ("unsupported link type 105",
 * "hep: chunk longer than packet"), and the programs print the table at the
 * end so a user sees what was not read and why.
 */
#ifndef SIPGUARD_SKIPS_H
#define SIPGUARD_SKIPS_H

#include <stdint.h>
#include <stdio.h>

#define SKIPS_MAX 64

typedef struct {
    char *reason[SKIPS_MAX];
    uint64_t count[SKIPS_MAX];
    int n;
    uint64_t other; /* reasons beyond SKIPS_MAX */
} skips_t;

/* Counts one occurrence of a reason (a printf format). */
void skips_add(skips_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sum of all counts. */
uint64_t skips_total(const skips_t *s);
/* Count of one exact reason, 0 when never seen. */
uint64_t skips_count(const skips_t *s, const char *reason);
/* Adds every count of src into dst. */
void skips_merge(skips_t *dst, const skips_t *src);
/* Prints "  N  reason" lines under a heading naming the input. */
void skips_print(const skips_t *s, const char *input, FILE *out);
void skips_free(skips_t *s);

#endif
