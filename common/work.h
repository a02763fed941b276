/*
 * work.h - CPU work per frame, the stand-in for what a real router does with each message
 * (validate it, decrypt it, compress it): --work-us N.
 *
 * work_calibrate() measures once, at startup, how many rounds of a checksum this machine runs
 * in a microsecond. work_do() then runs N microseconds' worth of rounds over a payload: a
 * deterministic computation (the same payload gives the same checksum), with no clock read,
 * no allocation and no shared state while it runs, so any number of threads may work at once,
 * each on its own core.
 *
 *     work_calibrate();                                  // once, before any thread works
 *     work_do(f.body, f.body_len, opt.work_us);          // where the pattern handles a frame
 */
#ifndef WORK_H
#define WORK_H

#include <stddef.h>
#include <stdint.h>

/* Measure the rounds per microsecond of this thread's CPU time (about 30 ms). */
void work_calibrate(void);

/* About us microseconds of CPU: a checksum over p[0, len) (len >= 1), repeated. Returns the
 * checksum. Nothing at all if us is 0. */
uint32_t work_do(const uint8_t *p, size_t len, unsigned us);

/* The calibration: rounds per microsecond (0 before work_calibrate). */
double work_rounds_per_us(void);

#endif
