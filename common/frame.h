/*
 * frame.h - incremental, zero-copy parser for client-to-router frames.
 *
 * A frame on the wire is: 4-byte destination ID (u32, big-endian), payload bytes (any byte but
 * NUL), one NUL byte. frame_parse() looks at the start of the caller's buffer and either finds
 * one complete frame there, or says that more bytes are needed, or that the payload has grown
 * past the limit without a NUL. It never allocates and never copies: the result points into
 * the caller's buffer, which must stay alive while the result is used.
 *
 * Call it in a loop until it stops returning a positive count, so that every complete frame
 * in a read is handled before the next read:
 *
 *     while ((n = frame_parse(buf + off, len - off, max, &f)) > 0) {
 *         forward(f.dest, f.body, f.body_len);
 *         off += n;
 *     }
 *     if (n == FRAME_TOO_LONG) ...;   // else FRAME_NEED_MORE: keep buf[off..len) and read again
 */
#ifndef FRAME_H
#define FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "proto.h" /* PROTO_ID_LEN, the length of the destination ID */

#define FRAME_NEED_MORE (-1) /* no complete frame yet: read more bytes */
#define FRAME_TOO_LONG (-2)  /* payload exceeds max_payload without a NUL */

struct frame {
    uint32_t dest;       /* destination ID, host byte order */
    const uint8_t *body; /* payload and its NUL: exactly the bytes to forward */
    size_t body_len;     /* payload length + 1 */
};

/* Returns the bytes consumed (> 0) and fills *out, or FRAME_NEED_MORE, or FRAME_TOO_LONG. */
ssize_t frame_parse(const uint8_t *buf, size_t len, size_t max_payload, struct frame *out);

/* Big-endian u32 helpers for IDs on the wire. */
uint32_t frame_get_u32(const uint8_t *p);
void frame_put_u32(uint8_t *p, uint32_t v);

#endif
