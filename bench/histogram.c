/* histogram.c - see histogram.h. */
#include "histogram.h"

#include <string.h>

void histogram_init(struct histogram *h)
{
    memset(h, 0, sizeof *h);
}

/*
 * Bucket layout: index v for v < 256. Above, let b be the position of v's top bit (b >= 8);
 * the top 8 bits of v, (v >> (b - 7)), lie in [128, 256) and pick one of 128 buckets of
 * width 2^(b - 7) inside the octave [2^b, 2^(b+1)).
 */
static unsigned bucket_of(uint64_t v)
{
    if (v < (1u << HISTOGRAM_SUB_BITS))
        return (unsigned)v;
    unsigned b = 63u - (unsigned)__builtin_clzll(v);
    unsigned shift = b - (HISTOGRAM_SUB_BITS - 1);
    unsigned octave = b - HISTOGRAM_SUB_BITS; /* 0 for [256, 512) */
    return (1u << HISTOGRAM_SUB_BITS) + octave * HISTOGRAM_HALF +
           (unsigned)((v >> shift) - HISTOGRAM_HALF);
}

/* The largest value that falls in bucket i. */
static uint64_t bucket_top(unsigned i)
{
    if (i < (1u << HISTOGRAM_SUB_BITS))
        return i;
    unsigned k = i - (1u << HISTOGRAM_SUB_BITS);
    unsigned octave = k / HISTOGRAM_HALF;
    unsigned shift = octave + 1;
    uint64_t low = (uint64_t)(HISTOGRAM_HALF + k % HISTOGRAM_HALF) << shift;
    return low + ((uint64_t)1 << shift) - 1;
}

void histogram_record(struct histogram *h, uint64_t ns)
{
    const uint64_t top = ((uint64_t)1 << HISTOGRAM_MAX_BITS) - 1;
    if (ns > top) {
        h->clamped++;
        ns = top;
    }
    if (h->count == 0 || ns < h->min)
        h->min = ns;
    if (ns > h->max)
        h->max = ns;
    h->count++;
    h->sum += (double)ns;
    h->buckets[bucket_of(ns)]++;
}

uint64_t histogram_percentile(const struct histogram *h, double p)
{
    if (h->count == 0)
        return 0;
    if (p >= 100.0)
        return h->max;
    /* The rank of the wanted sample, 1-based: the smallest r with r >= p% of count. */
    uint64_t rank = (uint64_t)(p / 100.0 * (double)h->count + 0.999999);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = bucket_top(i);
            return v > h->max ? h->max : v < h->min ? h->min : v;
        }
    }
    return h->max;
}

double histogram_mean(const struct histogram *h)
{
    return h->count ? h->sum / (double)h->count : 0.0;
}
