/*
 * monotime: seconds on the monotonic clock, for intervals, deadlines and rates; never for
 * times that are saved or shown, which are the wall clock's.
 */
#ifndef SIPGUARD_MONOTIME_H
#define SIPGUARD_MONOTIME_H

#include <time.h>

static inline double mono_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#endif
