/*
 * outbuf.h - a connection's output queue for an event loop: frames back to back in one byte
 * buffer, plus, per frame, who sent it.
 *
 * One contiguous buffer rather than a list of frames, because appending a frame is then a
 * single memcpy into memory reused turn after turn (no malloc per frame), and the whole queue
 * leaves in one write. The sender IDs cost 8 bytes a frame and let a failed write say exactly
 * which frames were lost and whom to tell.
 *
 *     struct outbuf o = {0};
 *     outbuf_append(&o, sender, body, len);          // false: out of memory
 *     write(fd, o.bytes, o.len) ...;                 // then, for each o.frames[i]: counted
 *     outbuf_clear(&o);                              // empty, memory kept for the next turn
 *     outbuf_free(&o);
 */
#ifndef OUTBUF_H
#define OUTBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OUTBUF_FIRST 64         /* first size of the bytes: a short frame or two */
#define OUTBUF_FRAMES_FIRST 4   /* first number of frames there is room for */
#define OUTBUF_KEEP (16 * 1024) /* drained buffers up to this size are kept */

struct queued_frame {
    uint32_t sender; /* 0: the router's own bytes (the client's ID, an error frame) */
    uint32_t len;
};

struct outbuf {
    uint8_t *bytes;
    size_t len, cap;
    struct queued_frame *frames;
    size_t nframes, frames_cap;
};

/* Append one frame of len bytes from sender. Returns false, with o unchanged, if out of
 * memory. Growth doubles, so appends cost amortized O(1). */
bool outbuf_append(struct outbuf *o, uint32_t sender, const uint8_t *p, size_t len);

/*
 * Empty o after its bytes were written or dropped. Its memory is kept for the next turn, so
 * steady traffic allocates nothing (regrowing a large buffer every turn would cost a copy of
 * every byte, and page faults besides). But a buffer larger than OUTBUF_KEEP is freed once a
 * write uses less than a quarter of it: when a burst ebbs, its memory goes back.
 */
void outbuf_clear(struct outbuf *o);

void outbuf_free(struct outbuf *o);

#endif
