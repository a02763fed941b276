/*
 * conn_table.h - the connection table: client ID -> the router's per-connection object.
 *
 * An open-addressing hash map with linear probing and backward-shift deletion (no tombstones,
 * so a long run of connects and disconnects never degrades it). Its capacity is fixed at
 * creation: twice the most entries it will hold, rounded up to a power of two, so it never
 * resizes. It does no locking: how it is shared is each router's whole lesson.
 */
#ifndef CONN_TABLE_H
#define CONN_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct conn_slot {
    uint32_t id; /* 0 = empty */
    void *conn;
};

struct conn_table {
    struct conn_slot *slots;
    size_t mask; /* capacity - 1 */
    size_t count;
};

int conn_table_init(struct conn_table *t, size_t max_entries); /* 0, or -1 if out of memory */
void conn_table_free(struct conn_table *t);
bool conn_table_put(struct conn_table *t, uint32_t id, void *conn); /* false: there, full or 0 */
void *conn_table_get(const struct conn_table *t, uint32_t id);      /* NULL if absent */
void *conn_table_remove(struct conn_table *t, uint32_t id);         /* the removed conn or NULL */

/* Visit every entry: for (i = 0; i <= t->mask; i++) if (t->slots[i].id) ... */

#endif
