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
    uint64_t slow_consumers;   /* clients disconnected for taking no bytes for --write-timeout */
    uint64_t frames_worked;    /* frames given their --work-us of CPU work */
};

/*
 * One line on stderr: "router-mutex: served 3 clients, forwarded 10 frames (52 bytes), dropped
 * 0 frames, sent 1 error frames, evicted 0 slow consumers", then ", worked 50 us on each of 10
 * frames" when work_us > 0. label, if not NULL, comes after the program: "router-mutex: stats:
 * served ..." for the lines --stats-interval prints; the summary at exit has none.
 */
void stats_print(const char *program, const char *label, const struct stats *s, unsigned work_us);

#endif
