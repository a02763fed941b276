/*
 * proto.h - protocol constants and the error frame, shared by every router.
 * The protocol itself is written down in PROTOCOL.md.
 */
#ifndef PROTO_H
#define PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PROTO_ID_LEN                                                                               \
    4                             /* a client ID on the wire, u32 big-endian: sent on accept, and  \
                                     the destination that starts every frame */
#define PROTO_ERROR_BYTE 0xFF     /* first byte of a router-to-client error frame */
#define PROTO_ERROR_FRAME_MAX 128 /* room for any error frame the routers build */

/*
 * Writes an error frame (0xFF, the printf-formatted reason, NUL) into buf, which must hold
 * PROTO_ERROR_FRAME_MAX bytes. Returns the frame's length, NUL included.
 */
size_t proto_error_frame(uint8_t buf[PROTO_ERROR_FRAME_MAX], const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
