/* stats.c - see stats.h. */
#include "stats.h"

#include <inttypes.h>
#include <stdio.h>

void stats_print_summary(const char *program, const struct stats *s)
{
    fprintf(stderr,
            "%s: served %" PRIu64 " clients, forwarded %" PRIu64 " frames (%" PRIu64
            " bytes), dropped %" PRIu64 " frames, sent %" PRIu64 " error frames\n",
            program, s->clients_served, s->frames_forwarded, s->bytes_forwarded, s->frames_dropped,
            s->error_frames);
}
