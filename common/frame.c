/* frame.c - see frame.h. */
#include "frame.h"

#include <string.h>

uint32_t frame_get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

void frame_put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

ssize_t frame_parse(const uint8_t *buf, size_t len, size_t max_payload, struct frame *out)
{
    if (len <= PROTO_ID_LEN)
        return FRAME_NEED_MORE;

    /* The NUL may sit at most max_payload bytes after the header: look no further than that.
     * (Compared so that max_payload + 1 is only computed when it is below avail: no overflow.) */
    size_t avail = len - PROTO_ID_LEN;
    size_t window = avail <= max_payload ? avail : max_payload + 1;
    const uint8_t *nul = memchr(buf + PROTO_ID_LEN, '\0', window);
    if (nul == NULL)
        return avail > max_payload ? FRAME_TOO_LONG : FRAME_NEED_MORE;

    out->dest = frame_get_u32(buf);
    out->body = buf + PROTO_ID_LEN;
    out->body_len = (size_t)(nul - out->body) + 1;
    return (ssize_t)(PROTO_ID_LEN + out->body_len);
}
