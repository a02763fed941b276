/*
 * list.h - an intrusive doubly linked list, as in the Linux kernel.
 *
 * A struct that can be on a list holds a struct list member; a list is a struct list head.
 * A node that is on no list points to itself, so it can be removed again harmlessly, and any
 * node leaves its list in O(1). One thread uses a list: it does no locking.
 *
 *     struct conn { ...; struct list dirty_link; };
 *     list_init(&r->dirty);                      // an empty list
 *     list_init(&c->dirty_link);                 // a node on no list
 *     list_push(&r->dirty, &c->dirty_link);      // at the end
 *     struct conn *first = list_entry(r->dirty.next, struct conn, dirty_link);
 *     list_remove(&c->dirty_link);
 */
#ifndef LIST_H
#define LIST_H

#include <stdbool.h>
#include <stddef.h>

struct list {
    struct list *prev, *next;
};

/* The struct TYPE that holds list node n as its member named field. */
#define list_entry(n, type, field) ((type *)((char *)(n)-offsetof(type, field)))

static inline void list_init(struct list *n)
{
    n->prev = n->next = n;
}

static inline bool list_empty(const struct list *head)
{
    return head->next == head;
}

/* Is node n on some list? */
static inline bool list_linked(const struct list *n)
{
    return n->next != n;
}

static inline void list_remove(struct list *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    list_init(n);
}

static inline void list_push(struct list *head, struct list *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

/* Move every node of from to the end of to; from is left empty. */
static inline void list_splice(struct list *to, struct list *from)
{
    if (list_empty(from))
        return;
    from->next->prev = to->prev;
    to->prev->next = from->next;
    from->prev->next = to;
    to->prev = from->prev;
    list_init(from);
}

#endif
