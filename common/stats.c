/* stats.c - see stats.h. */
#include "stats.h"

#include <inttypes.h>
#include <stdio.h>

void stats_print(const char *program, const char *label, const struct stats *s, unsigned work_us)
{
    char work[96] = "";
    if (work_us > 0)
        snprintf(work, sizeof work, ", worked %u us on each of %" PRIu64 " frames", work_us,
                 s->frames_worked);
    fprintf(stderr,
            "%s: %s%sserved %" PRIu64 " clients, forwarded %" PRIu64 " frames (%" PRIu64
            " bytes), dropped %" PRIu64 " frames, sent %" PRIu64 " error frames, evicted %" PRIu64
            " slow consumers%s\n",
            program, label ? label : "", label ? ": " : "", s->clients_served, s->frames_forwarded,
            s->bytes_forwarded, s->frames_dropped, s->error_frames, s->slow_consumers, work);
}
