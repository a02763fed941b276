/* reader.c - see reader.h. */
#include "reader.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"

/* One whole frame: the most the buffer ever needs. */
static size_t max_frame(const struct frame_reader *r)
{
    return PROTO_ID_LEN + r->max_message + 1;
}

int frame_reader_init(struct frame_reader *r, int fd, size_t max_message)
{
    *r = (struct frame_reader){.fd = fd, .max_message = max_message};
    size_t whole = max_frame(r);
    r->cap = whole < FRAME_READER_START ? whole : FRAME_READER_START;
    r->buf = malloc(r->cap);
    if (!r->buf) {
        errno = ENOMEM;
        return -1;
    }
    return 0;
}

int frame_reader_next(struct frame_reader *r, struct frame *f)
{
    ssize_t used = frame_parse(r->buf + r->off, r->len - r->off, r->max_message, f);
    if (used < 0)
        return (int)used; /* FRAME_NEED_MORE or FRAME_TOO_LONG; off stays put */
    r->off += (size_t)used;
    return 1;
}

ssize_t frame_reader_fill(struct frame_reader *r)
{
    /* The frames before off were handed out and their time is up: drop them. */
    if (r->off > 0) {
        r->len -= r->off;
        memmove(r->buf, r->buf + r->off, r->len);
        r->off = 0;
    }

    /* A partial frame fills the buffer. It is shorter than a whole frame (else frame_parse
     * would have said FRAME_TOO_LONG), so doubling up to one whole frame makes room. */
    if (r->len == r->cap) {
        size_t whole = max_frame(r);
        size_t bigger = r->cap < whole / 2 ? r->cap * 2 : whole;
        uint8_t *nb = realloc(r->buf, bigger);
        if (!nb) {
            errno = ENOMEM;
            return -1;
        }
        r->buf = nb;
        r->cap = bigger;
    }

    ssize_t n = net_read(r->fd, r->buf + r->len, r->cap - r->len);
    if (n > 0)
        r->len += (size_t)n;
    return n;
}

void frame_reader_free(struct frame_reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->off = r->len = r->cap = 0;
}

enum read_end frame_reader_run(int fd, size_t max_message, frame_batch_fn *fn, void *ctx)
{
    struct frame_reader r;
    if (frame_reader_init(&r, fd, max_message) != 0)
        return READ_ERROR;
    struct frame batch[FRAME_BATCH];
    bool go = true;
    int got = FRAME_NEED_MORE;
    ssize_t n = 0;
    while (go && got == FRAME_NEED_MORE && (n = frame_reader_fill(&r)) > 0) {
        size_t k = 0;
        while (go && (got = frame_reader_next(&r, &batch[k])) > 0) {
            if (++k == FRAME_BATCH) {
                go = fn(ctx, batch, k);
                k = 0;
            }
        }
        if (go && k > 0)
            go = fn(ctx, batch, k);
    }
    frame_reader_free(&r);
    return !go                     ? READ_STOPPED
           : got == FRAME_TOO_LONG ? READ_TOO_LONG
           : n < 0                 ? READ_ERROR
                                   : READ_EOF;
}
