/* inbuf.c - see inbuf.h. */
#include "inbuf.h"

#include <stdlib.h>
#include <string.h>

#include "proto.h"

bool inbuf_keep(struct inbuf *b, const uint8_t *p, size_t len)
{
    size_t kept = b->end - b->start;
    if (b->start > 0) { /* slide what is left to the front */
        memmove(b->bytes, b->bytes + b->start, kept);
        b->start = 0;
        b->end = kept;
    }
    if (kept + len > b->cap) {
        size_t cap = b->cap ? b->cap : INBUF_FIRST;
        while (cap < kept + len)
            cap *= 2;
        uint8_t *bytes = realloc(b->bytes, cap);
        if (!bytes)
            return false;
        b->bytes = bytes;
        b->cap = cap;
    }
    if (len > 0)
        memcpy(b->bytes + kept, p, len);
    b->end += len;
    return true;
}

void inbuf_free(struct inbuf *b)
{
    free(b->bytes);
    *b = (struct inbuf){0};
}

size_t inbuf_frame_rest(const struct inbuf *b, const uint8_t *p, size_t len, size_t max_message)
{
    size_t kept = b->end - b->start; /* a frame with no NUL yet: shorter than longest */
    size_t longest = PROTO_ID_LEN + max_message + 1;
    size_t n = len < longest - kept ? len : longest - kept;
    size_t skip = kept < PROTO_ID_LEN ? PROTO_ID_LEN - kept : 0; /* the dest ID's bytes */
    const uint8_t *nul = skip < n ? memchr(p + skip, '\0', n - skip) : NULL;
    return nul ? (size_t)(nul - p) + 1 : n;
}
