/* mailbox.c - see mailbox.h. */
#include "mailbox.h"

#include <stdlib.h>
#include <string.h>

/* Pieces of mail back to back, each a struct mail and its body, padded to 8 bytes. */
struct batch {
    size_t len, cap;  /* bytes used, bytes allocated */
    uint64_t counted; /* bytes of counted mail in it */
    _Alignas(8) uint8_t bytes[];
};

static size_t padded(size_t len)
{
    return (len + 7) & ~(size_t)7;
}

size_t lane_size(size_t len)
{
    return sizeof(struct mail) + padded(len);
}

void lane_init(struct lane *l, size_t cap)
{
    memset(l, 0, sizeof *l);
    l->cap = cap;
    atomic_init(&l->head, 0);
    atomic_init(&l->tail, 0);
    atomic_init(&l->taken, 0);
    atomic_init(&l->want_room, false);
}

bool lane_fits(const struct lane *l, size_t len)
{
    uint64_t held = l->put - atomic_load(&l->taken);
    return held == 0 || held + len <= l->cap;
}

/*
 * The producer sets want_room and then looks at taken again (lane_fits); the consumer adds to
 * taken and then clears want_room. Both sequentially consistent, so one of them sees the
 * other's write: either the producer sees the room, or the consumer sees the request and wakes
 * it. A wakeup is never lost.
 */
void lane_want_room(struct lane *l)
{
    atomic_store(&l->want_room, true);
}

/* Hand the open batch over, unless LANE_SLOTS batches wait already: then the consumer is asked
 * to wake the producer once it has taken some. Returns true if it was handed over. */
static bool hand_over(struct lane *l)
{
    if (!l->open || l->open->len == 0)
        return false;
    uint64_t head = atomic_load_explicit(&l->head, memory_order_relaxed); /* our own */
    if (head - atomic_load_explicit(&l->tail, memory_order_acquire) == LANE_SLOTS) {
        lane_want_room(l);
        if (head - atomic_load(&l->tail) == LANE_SLOTS)
            return false;
    }
    l->slots[head % LANE_SLOTS] = l->open;
    l->open = NULL;
    atomic_store(&l->head, head + 1); /* sequentially consistent: see lane_waiting */
    l->unannounced = true;
    return true;
}

bool lane_put(struct lane *l, const struct mail *m, const void *body, bool counted)
{
    size_t size = lane_size(m->len);
    if (l->open && l->open->len + size > LANE_BATCH)
        hand_over(l); /* full: it goes now, and the wakeup at the turn's end */
    struct batch *b = l->open;
    if (!b || b->len + size > b->cap) {
        size_t cap = b ? b->cap : LANE_BATCH_FIRST;
        while (cap < (b ? b->len : 0) + size)
            cap *= 2;
        struct batch *grown = realloc(b, sizeof *grown + cap);
        if (!grown)
            return false;
        if (!b)
            grown->len = grown->counted = 0;
        grown->cap = cap;
        l->open = b = grown;
    }
    memcpy(b->bytes + b->len, m, sizeof *m);
    if (m->len > 0)
        memcpy(b->bytes + b->len + sizeof *m, body, m->len);
    b->len += size;
    if (counted) {
        b->counted += size;
        l->put += size;
    }
    return true;
}

bool lane_publish(struct lane *l)
{
    hand_over(l);
    bool wake = l->unannounced;
    l->unannounced = false;
    return wake;
}

bool lane_waiting(const struct lane *l)
{
    return atomic_load(&l->head) != atomic_load_explicit(&l->tail, memory_order_relaxed);
}

/* Deliver the mail of b, in order. */
static void deliver_batch(const struct batch *b, lane_deliver_fn *deliver, void *ctx)
{
    for (size_t at = 0; at < b->len;) {
        const struct mail *m = (const struct mail *)(b->bytes + at);
        deliver(ctx, m, b->bytes + at + sizeof *m);
        at += lane_size(m->len);
    }
}

bool lane_take(struct lane *l, lane_deliver_fn *deliver, void *ctx)
{
    uint64_t head = atomic_load_explicit(&l->head, memory_order_acquire);
    uint64_t tail = atomic_load_explicit(&l->tail, memory_order_relaxed); /* our own */
    if (tail == head)
        return false;
    for (; tail != head; tail++) {
        struct batch *b = l->slots[tail % LANE_SLOTS];
        deliver_batch(b, deliver, ctx);
        uint64_t counted = b->counted;
        free(b);
        atomic_store(&l->tail, tail + 1); /* its slot is free */
        atomic_fetch_add(&l->taken, counted);
    }
    return atomic_exchange(&l->want_room, false);
}

void lane_free(struct lane *l, lane_deliver_fn *deliver, void *ctx)
{
    lane_take(l, deliver, ctx);
    if (l->open) {
        deliver_batch(l->open, deliver, ctx);
        free(l->open);
        l->open = NULL;
    }
}
