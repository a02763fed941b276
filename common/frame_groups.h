/*
 * frame_groups.h - the frames of one read, grouped by destination, ready for one writev each.
 *
 * A thread-per-client router that writes each frame with its own write(2) pays a system call
 * per frame. Grouping a read's frames by destination (keeping each destination's frames in the
 * order they came) lets it write each group with one writev(2): the frames a sender sends one
 * destination still arrive in order and whole, and a read of a hundred frames to one client
 * costs one call instead of a hundred. No allocation: the groups point into the frames.
 *
 *     struct frame_groups g;
 *     frame_groups_build(&g, frames, n);                     // n <= FRAME_BATCH
 *     for (size_t i = 0; i < g.ngroups; i++)
 *         writev(fd_of(g.group[i].dest), g.iov + g.group[i].first, g.group[i].count);
 */
#ifndef FRAME_GROUPS_H
#define FRAME_GROUPS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "frame.h"
#include "reader.h" /* FRAME_BATCH */

struct frame_group {
    uint32_t dest;
    size_t first; /* its frames' bodies are iov[first, first + count) */
    size_t count;
    size_t bytes; /* their total length */
};

struct frame_groups {
    size_t ngroups;
    struct frame_group group[FRAME_BATCH]; /* in the order of each destination's first frame */
    struct iovec iov[FRAME_BATCH];
};

/* Group frames[0, n), n <= FRAME_BATCH. The iovecs point at the frames' bodies. */
void frame_groups_build(struct frame_groups *g, const struct frame *frames, size_t n);

/* n iovecs that all point at the same bytes: n copies of one error frame, for one writev. */
void iov_repeat(struct iovec *iov, size_t n, const void *bytes, size_t len);

#endif
