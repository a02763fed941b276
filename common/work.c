/* work.c - see work.h. */
#include "work.h"

#include <time.h>

#include "clock.h"

#define CALIBRATION_ROUNDS 4000000 /* about 10 ms a try on a current core */
#define CALIBRATION_TRIES 3

static double rounds_per_us; /* written by work_calibrate, before any thread works */

/* rounds steps of FNV-1a over p, cycling through it: one multiply each, each step waiting on
 * the one before, so the compiler cannot vectorize it away. */
static uint32_t checksum(const uint8_t *p, size_t len, uint64_t rounds)
{
    uint32_t h = 2166136261u;
    size_t i = 0;
    for (uint64_t k = 0; k < rounds; k++) {
        h = (h ^ p[i]) * 16777619u;
        if (++i == len)
            i = 0;
    }
    __asm__ volatile("" : : "r"(h)); /* the result is used: keep the loop */
    return h;
}

/* This thread's CPU time in ns: what the work costs, whatever else the machine is doing (a
 * wall clock would count the time the thread was not running, and make the work too short). */
static uint64_t cpu_now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
        return clock_now_ns();
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void work_calibrate(void)
{
    static const uint8_t sample[64] = "a payload to work on, the length of a small frame";
    double best = 0;
    for (int t = 0; t < CALIBRATION_TRIES; t++) {
        uint64_t start = cpu_now_ns();
        checksum(sample, sizeof sample, CALIBRATION_ROUNDS);
        uint64_t ns = cpu_now_ns() - start;
        double rate = ns > 0 ? CALIBRATION_ROUNDS * 1000.0 / (double)ns : 0;
        if (rate > best)
            best = rate; /* the fastest try: the others were slowed (caches, frequency) */
    }
    rounds_per_us = best > 0 ? best : 1;
}

uint32_t work_do(const uint8_t *p, size_t len, unsigned us)
{
    if (us == 0 || len == 0)
        return 0;
    return checksum(p, len, (uint64_t)(us * rounds_per_us + 0.5));
}

double work_rounds_per_us(void)
{
    return rounds_per_us;
}
