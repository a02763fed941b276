/*
 * ids.h - client IDs: unique for the life of the process, never reused, never 0.
 *
 * Sequential mode counts from 1. Random mode passes the same counter through a keyed 32-bit
 * permutation (a Feistel network keyed from getrandom), so IDs look random, cannot be guessed
 * from each other, and are still unique without remembering the ones handed out.
 * Not thread-safe: call from one thread (every router allocates IDs where it accepts).
 */
#ifndef IDS_H
#define IDS_H

#include <stdbool.h>
#include <stdint.h>

enum ids_mode { IDS_SEQUENTIAL, IDS_RANDOM };

struct id_allocator {
    enum ids_mode mode;
    uint32_t counter;
    uint32_t keys[4];
};

void ids_init(struct id_allocator *ids, enum ids_mode mode);
/* Returns false once the 32-bit ID space is used up (after about 4 billion IDs). */
bool ids_next(struct id_allocator *ids, uint32_t *id);

#endif
