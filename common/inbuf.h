/*
 * inbuf.h - the bytes an event-loop router keeps for one connection between reads.
 *
 * An event loop reads every connection into one shared buffer and routes the complete frames
 * straight from there. Only what cannot be routed yet is kept in the connection's own inbuf:
 * the start of a frame that has not all arrived, or frames that must wait (their destination
 * is full). An idle connection keeps nothing and holds no memory.
 *
 *     if (!inbuf_empty(&c->in)) {                      // finish the frame begun earlier
 *         n = inbuf_frame_rest(&c->in, p, len, max_message);
 *         inbuf_keep(&c->in, p, n);                     // then route from c->in
 *         ...
 *     }
 *     c->in.start += routed;                           // what was routed from the front
 *     inbuf_keep(&c->in, p + done, len - done);        // the rest of a read, for later
 *     if (inbuf_empty(&c->in)) inbuf_free(&c->in);     // give idle memory back
 */
#ifndef INBUF_H
#define INBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define INBUF_FIRST 512 /* first size of the buffer */

struct inbuf {
    uint8_t *bytes; /* the kept bytes are bytes[start, end); NULL while none were ever kept */
    size_t cap, start, end;
};

static inline bool inbuf_empty(const struct inbuf *b)
{
    return b->start == b->end;
}

/* Append p[0, len), after moving what is kept to the front. Returns false if out of memory
 * (nothing appended). */
bool inbuf_keep(struct inbuf *b, const uint8_t *p, size_t len);

/* Free the buffer; what it kept is discarded. */
void inbuf_free(struct inbuf *b);

/*
 * b keeps the start of one frame, shorter than the longest legal one. How many of the new
 * bytes p[0, len) finish it: up to its NUL, or all of them, but never more than the longest
 * legal frame (PROTO_ID_LEN + max_message + 1), so a runaway frame is caught there.
 */
size_t inbuf_frame_rest(const struct inbuf *b, const uint8_t *p, size_t len, size_t max_message);

#endif
