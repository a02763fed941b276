/*
 * stats.h - the counters every router prints in its one-line summary at exit.
 * Plain integers: each router keeps them the way it keeps the rest of its state.
 */
#ifndef STATS_H
#define STATS_H

#include <stdint.h>

struct stats {
    uint64_t clients_served;   /* connections accepted and given an ID */
    uint64_t frames_forwarded; /* frames written to their destination */
    uint64_t bytes_forwarded;  /* payload bytes of those frames, NULs included */
    uint64_t frames_dropped;   /* frames lost because their destination went away */
    uint64_t error_frames;     /* error frames sent */
};

/* "router-mutex: served 3 clients, forwarded 10 frames (52 bytes), dropped 0 frames, sent 1
 * error frames" */
void stats_print_summary(const char *program, const struct stats *s);

#endif
