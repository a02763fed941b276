/* proto.c - see proto.h. */
#include "proto.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

size_t proto_error_frame(uint8_t buf[PROTO_ERROR_FRAME_MAX], const char *fmt, ...)
{
    buf[0] = PROTO_ERROR_BYTE;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf((char *)buf + 1, PROTO_ERROR_FRAME_MAX - 1, fmt, ap);
    va_end(ap);
    size_t reason = n < 0 ? 0 : (size_t)n;
    if (reason > PROTO_ERROR_FRAME_MAX - 2)
        reason = PROTO_ERROR_FRAME_MAX - 2; /* vsnprintf truncated; its NUL ends the frame */
    buf[1 + reason] = '\0';
    return reason + 2;
}
