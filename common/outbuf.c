/* outbuf.c - see outbuf.h. */
#include "outbuf.h"

#include <stdlib.h>
#include <string.h>

/* A capacity of at least need, doubling from first. */
static size_t grown(size_t cap, size_t need, size_t first)
{
    size_t n = cap ? cap : first;
    while (n < need)
        n *= 2;
    return n;
}

bool outbuf_append(struct outbuf *o, uint32_t sender, const uint8_t *p, size_t len)
{
    if (o->len + len > o->cap) {
        size_t cap = grown(o->cap, o->len + len, OUTBUF_FIRST);
        uint8_t *bytes = realloc(o->bytes, cap);
        if (!bytes)
            return false;
        o->bytes = bytes;
        o->cap = cap;
    }
    if (o->nframes == o->frames_cap) {
        size_t cap = grown(o->frames_cap, o->nframes + 1, OUTBUF_FRAMES_FIRST);
        struct queued_frame *frames = realloc(o->frames, cap * sizeof *frames);
        if (!frames)
            return false;
        o->frames = frames;
        o->frames_cap = cap;
    }
    memcpy(o->bytes + o->len, p, len);
    o->len += len;
    o->frames[o->nframes++] = (struct queued_frame){.sender = sender, .len = (uint32_t)len};
    return true;
}

void outbuf_free(struct outbuf *o)
{
    free(o->bytes);
    free(o->frames);
    *o = (struct outbuf){0};
}

void outbuf_clear(struct outbuf *o)
{
    bool oversized =
        (o->cap > OUTBUF_KEEP && 4 * o->len < o->cap) ||
        (o->frames_cap * sizeof *o->frames > OUTBUF_KEEP && 4 * o->nframes < o->frames_cap);
    o->len = 0;
    o->nframes = 0;
    if (oversized)
        outbuf_free(o);
}
