/*
 * clock.h - the monotonic clock, in the units the suite counts in.
 *
 * Every timeout, deadline and duration in the suite is measured on CLOCK_MONOTONIC, which never
 * jumps when the wall clock is set.
 */
#ifndef CLOCK_H
#define CLOCK_H

#include <stdint.h>

int64_t clock_now_ms(void);  /* milliseconds on the monotonic clock */
uint64_t clock_now_ns(void); /* nanoseconds on the monotonic clock */

#endif
