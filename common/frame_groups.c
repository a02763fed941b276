/* frame_groups.c - see frame_groups.h. */
#include "frame_groups.h"

void frame_groups_build(struct frame_groups *g, const struct frame *frames, size_t n)
{
    size_t which[FRAME_BATCH]; /* frame i belongs to group which[i] */
    g->ngroups = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = 0;
        while (k < g->ngroups && g->group[k].dest != frames[i].dest)
            k++; /* a read rarely has more than a few destinations */
        if (k == g->ngroups)
            g->group[g->ngroups++] = (struct frame_group){.dest = frames[i].dest};
        g->group[k].count++;
        g->group[k].bytes += frames[i].body_len;
        which[i] = k;
    }
    size_t next = 0;
    for (size_t k = 0; k < g->ngroups; k++) {
        g->group[k].first = next;
        next += g->group[k].count;
        g->group[k].count = 0; /* counted again as the iovecs are placed */
    }
    for (size_t i = 0; i < n; i++) {
        struct frame_group *grp = &g->group[which[i]];
        g->iov[grp->first + grp->count++] =
            (struct iovec){.iov_base = (void *)frames[i].body, .iov_len = frames[i].body_len};
    }
}

void iov_repeat(struct iovec *iov, size_t n, const void *bytes, size_t len)
{
    for (size_t i = 0; i < n; i++)
        iov[i] = (struct iovec){.iov_base = (void *)bytes, .iov_len = len};
}
