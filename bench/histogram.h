/*
 * histogram.h - a log-linear latency histogram in the manner of HdrHistogram, small enough to
 * read in one sitting.
 *
 * Values are nanoseconds. Below 256 ns every value has its own bucket; above, each power of
 * two is cut into 128 equal buckets, so a bucket is never wider than 1/128 of the values it
 * holds and any percentile read back is within 0.8% of the true one. The range ends at
 * 2^37 ns (about 137 s); larger values are clamped there and counted in `clamped`. Recording
 * is one bit scan and an increment: cheap enough for every frame.
 *
 *   struct histogram h;
 *   histogram_init(&h);
 *   histogram_record(&h, rtt_ns);
 *   uint64_t p99 = histogram_percentile(&h, 99.0);
 */
#ifndef HISTOGRAM_H
#define HISTOGRAM_H

#include <stdint.h>

#define HISTOGRAM_SUB_BITS 8                            /* 256 exact values, then halves of it */
#define HISTOGRAM_HALF (1u << (HISTOGRAM_SUB_BITS - 1)) /* buckets per power of two: 128 */
#define HISTOGRAM_MAX_BITS 37                           /* largest value: 2^37 - 1 ns */
#define HISTOGRAM_BUCKETS                                                                          \
    ((1u << HISTOGRAM_SUB_BITS) + (HISTOGRAM_MAX_BITS - HISTOGRAM_SUB_BITS) * HISTOGRAM_HALF)

struct histogram {
    uint64_t count, clamped;
    uint64_t min, max; /* exact, not bucketed */
    double sum;
    uint64_t buckets[HISTOGRAM_BUCKETS];
};

void histogram_init(struct histogram *h);
void histogram_record(struct histogram *h, uint64_t ns);
/* The value at percentile p (0..100]: the upper edge of its bucket, never an understatement.
 * 0 if the histogram is empty; p = 100 gives the exact max. */
uint64_t histogram_percentile(const struct histogram *h, double p);
double histogram_mean(const struct histogram *h);

#endif
