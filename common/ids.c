/* ids.c - see ids.h. */
#include "ids.h"

#include <sys/random.h>

#include "log.h"

void ids_init(struct id_allocator *ids, enum ids_mode mode)
{
    ids->mode = mode;
    ids->counter = 0;
    for (int i = 0; i < 4; i++)
        ids->keys[i] = 0;
    if (mode == IDS_RANDOM &&
        getrandom(ids->keys, sizeof ids->keys, 0) != (ssize_t)sizeof ids->keys)
        log_fatal("getrandom: cannot seed random IDs");
}

/* A four-round Feistel network on two 16-bit halves: a bijection on u32 for any keys. */
static uint32_t permute(const uint32_t keys[4], uint32_t x)
{
    uint32_t left = x >> 16, right = x & 0xFFFF;
    for (int round = 0; round < 4; round++) {
        uint32_t f = (right ^ keys[round]) * 0x9E3779B1u;
        f ^= f >> 15;
        uint32_t next = left ^ (f & 0xFFFF);
        left = right;
        right = next;
    }
    return left << 16 | right;
}

bool ids_next(struct id_allocator *ids, uint32_t *id)
{
    for (;;) {
        if (ids->counter == UINT32_MAX)
            return false;
        ids->counter++;
        uint32_t candidate =
            ids->mode == IDS_RANDOM ? permute(ids->keys, ids->counter) : ids->counter;
        if (candidate != 0) { /* 0 is never an ID; the permutation maps one counter to it */
            *id = candidate;
            return true;
        }
    }
}
