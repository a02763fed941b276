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
 * PROTO_ID_LEN + max_message + 1 bytes: an idle client that sends small frames holds 4 KiB.
 * Once grown it stays grown, so a client that sends large frames costs no allocation per frame.
 * Frames handed out point into the buffer (zero copy, like frame_parse) and stay valid until
 * the next frame_reader_fill or frame_reader_free. The reader has no state but the struct,
 * and no locking: one thread uses it.
 *
 * frame_reader_run is that loop, once for every threaded router: it hands the frames of each
 * read to the router in batches, so that a router can move all of them with one lock, one
 * message or one writev:
 *
 *     static bool forward(void *ctx, const struct frame *frames, size_t n) { ...; return true; }
 *     enum read_end end = frame_reader_run(fd, max_message, forward, conn);
 *     if (end == READ_TOO_LONG) ...say so...
 */
#ifndef READER_H
#define READER_H

#include <stdbool.h>
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

#define FRAME_BATCH 256 /* the most frames handed over in one call */

/* Called with the complete frames of one read, in order, at most FRAME_BATCH at a time (a read
 * of many small frames takes several calls). They point into the reader's buffer: valid until
 * the call returns. Returns false to stop reading. */
typedef bool frame_batch_fn(void *ctx, const struct frame *frames, size_t n);

enum read_end {
    READ_EOF,      /* the client closed its side */
    READ_ERROR,    /* read(2) failed (errno says why), or the buffer could not grow */
    READ_TOO_LONG, /* a payload over max_message: the frames before it were handed over */
    READ_STOPPED,  /* fn returned false */
};

/* Read fd and hand every complete frame to fn, each read's frames before the next read, until
 * the client closes, a read fails, a frame is too long or fn says stop. */
enum read_end frame_reader_run(int fd, size_t max_message, frame_batch_fn *fn, void *ctx);

#endif
