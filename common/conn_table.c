/* conn_table.c - see conn_table.h. */
#include "conn_table.h"

#include <stdlib.h>

static size_t home(const struct conn_table *t, uint32_t id)
{
    /* Fibonacci hashing: the high half of the product depends on every bit of the ID, so both
     * sequential IDs and IDs that differ only in their high bits spread over the table. */
    return (size_t)(((uint64_t)id * 0x9E3779B97F4A7C15u) >> 32) & t->mask;
}

int conn_table_init(struct conn_table *t, size_t max_entries)
{
    size_t cap = 16;
    while (cap < 2 * max_entries)
        cap *= 2;
    t->slots = calloc(cap, sizeof *t->slots);
    t->mask = cap - 1;
    t->count = 0;
    return t->slots ? 0 : -1;
}

void conn_table_free(struct conn_table *t)
{
    free(t->slots);
    t->slots = NULL;
    t->count = 0;
}

bool conn_table_put(struct conn_table *t, uint32_t id, void *conn)
{
    /* 0 marks an empty slot, so it is never a key; one slot stays empty so every probe ends. */
    if (id == 0 || t->count >= t->mask)
        return false;
    size_t i = home(t, id);
    while (t->slots[i].id != 0) {
        if (t->slots[i].id == id)
            return false;
        i = (i + 1) & t->mask;
    }
    t->slots[i].id = id;
    t->slots[i].conn = conn;
    t->count++;
    return true;
}

void *conn_table_get(const struct conn_table *t, uint32_t id)
{
    if (id == 0)
        return NULL;
    for (size_t i = home(t, id); t->slots[i].id != 0; i = (i + 1) & t->mask)
        if (t->slots[i].id == id)
            return t->slots[i].conn;
    return NULL;
}

void *conn_table_remove(struct conn_table *t, uint32_t id)
{
    if (id == 0)
        return NULL;
    size_t i = home(t, id);
    while (t->slots[i].id != id) {
        if (t->slots[i].id == 0)
            return NULL;
        i = (i + 1) & t->mask;
    }
    void *conn = t->slots[i].conn;
    t->count--;

    /* Backward-shift deletion: pull later entries of the probe run into the hole, unless that
     * would move one before its home slot. */
    size_t hole = i;
    for (size_t j = (i + 1) & t->mask; t->slots[j].id != 0; j = (j + 1) & t->mask) {
        size_t h = home(t, t->slots[j].id);
        /* j's entry may fill the hole if its home is not cyclically within (hole, j]. */
        if (((j - h) & t->mask) >= ((j - hole) & t->mask)) {
            t->slots[hole] = t->slots[j];
            hole = j;
        }
    }
    t->slots[hole].id = 0;
    t->slots[hole].conn = NULL;
    return conn;
}
