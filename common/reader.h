/*
 * reader.h - a blocking frame reader: one socket, one buffer, frames out one by one.
 *
 * The threaded routers read a client's socket in a loop: read(2) some bytes, hand out every
 * complete frame they hold, keep the partial tail, read again. This is that loop's state and
 * its two steps, so that each router's read loop shows only what its pattern adds around them.
 *
 *     struct frame_reader r;
 *     struct frame f;
 *     int got = FRAME_NEED_MORE;
 *     frame_reader_init(&r, fd, max_message);                 // -1: out of memory
 *     while (got == FRAME_NEED_MORE && frame_reader_fill(&r) > 0) {   // one read(2)
 *         while ((got = frame_reader_next(&r, &f)) > 0)       // no read here
 *             forward(f.dest, f.body, f.body_len);
 *     }
 *     // got == FRAME_TOO_LONG: say so and disconnect; else EOF or a read error
 *     frame_reader_free(&r);
 *
 * The buffer is allocated once, FRAME_READER_START bytes (or one whole frame, if smaller). It
 * grows, doubling, only when a partial frame fills it, and never beyond one whole frame,
 * FRAME_HEADER_LEN + max_message + 1 bytes: an idle client that sends small frames holds 4 KiB.
 * Once grown it stays grown, so a client that sends large frames costs no allocation per frame.
 * Frames handed out point into the buffer (zero copy, like frame_parse) and stay valid until
 * the next frame_reader_fill or frame_reader_free. The reader has no state but the struct,
 * and no locking: one thread uses it.
 */
#ifndef READER_H
#define READER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "frame.h"

#define FRAME_READER_START 4096 /* first size of the buffer */

struct frame_reader {
    int fd;
    size_t max_message; /* the longest payload, as for frame_parse */
    uint8_t *buf;       /* buf[off..len) is read but not yet handed out; cap is its size */
    size_t off, len, cap;
};

/* Allocate the first buffer. Returns 0, or -1 with errno ENOMEM. Does not read. */
int frame_reader_init(struct frame_reader *r, int fd, size_t max_message);

/* The next complete frame already read: returns 1 and fills *f, or FRAME_NEED_MORE when what
 * is left is a partial frame (call frame_reader_fill), or FRAME_TOO_LONG. Never reads. */
int frame_reader_next(struct frame_reader *r, struct frame *f);

/* One read(2), after moving the partial frame to the start of the buffer and growing the
 * buffer if that frame fills it. Call it only once frame_reader_next said FRAME_NEED_MORE (or
 * first, right after init): then there is always room. Returns the bytes read (> 0), 0 at EOF,
 * or -1 with errno (as net_read; ENOMEM if the buffer could not grow). */
ssize_t frame_reader_fill(struct frame_reader *r);

/* Free the buffer. The fd is the caller's: it stays open. */
void frame_reader_free(struct frame_reader *r);

#endif
