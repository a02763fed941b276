/*
 * mailbox.h - the lanes between router-sharded's event loops: the memory two loops share.
 *
 * A lane carries mail from one loop (its producer) to one other (its consumer): a bounded
 * single-producer, single-consumer queue. The producer puts mail into an open batch during its
 * turn; at the end of the turn lane_publish hands the batch over, and the producer wakes the
 * consumer once, if lane_publish says so (and the consumer may be asleep: router.c). The
 * consumer takes every published batch, in order, and frees it. So mail from one loop to
 * another arrives in the order it was put, and costs at most one wakeup per turn, not one per
 * piece.
 *
 *     lane_init(&l, cap);
 *     if (lane_fits(&l, lane_size(len))) lane_put(&l, &m, body, true); // producer, in a turn
 *     if (lane_publish(&l)) wake(consumer);                            // producer, turn's end
 *     if (lane_take(&l, deliver, ctx)) wake(producer);                 // consumer, woken
 *     lane_free(&l, deliver, ctx);                                     // at exit, both stopped
 *
 * The bound: the mail put as `counted` (the frames) takes at most cap bytes of a lane (header
 * and body: lane_size), put and not yet taken, or one longer piece if the lane holds no other:
 * lane_fits says whether more fits. When it does not, the producer asks to be woken
 * (lane_want_room) once the consumer has taken some: lane_take then returns true. Mail not counted
 * (the router's answers and notices) is bounded by what causes it, never by waiting: a loop that
 * had to wait to answer could wait on a loop that waits on it.
 *
 * No lock and no libuv here: each side writes its own fields, and the fields the other side
 * reads are C11 atomics, sequentially consistent where a wakeup depends on them (the room
 * handshake, and head for the router's asleep handshake). Not thread-safe beyond that: one
 * producer thread, one consumer thread.
 */
#ifndef MAILBOX_H
#define MAILBOX_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LANE_SLOTS 64          /* batches published and not yet taken, at most */
#define LANE_BATCH (64 * 1024) /* a batch this full is published at once, not at the turn's end */
#define LANE_BATCH_FIRST 4096  /* first size of a batch */

/* The head of one piece of mail; len bytes of body follow it. The fields but len are the
 * router's to give a meaning. */
struct mail {
    uint8_t kind;
    uint8_t why;
    uint16_t spare;
    uint32_t len;
    uint32_t a, b;
};

struct batch; /* mail back to back: private to mailbox.c */

struct lane {
    /* the producer's */
    struct batch *open; /* mail put since the last hand-over, or NULL */
    uint64_t put;       /* counted bytes ever put */
    bool unannounced;   /* published since lane_publish last returned true */
    size_t cap;         /* the bound (set by lane_init, then read-only) */
    char apart[64];     /* the producer's and the consumer's fields on separate cache lines */

    /* the hand-over: written by the producer, read by the consumer */
    _Atomic uint64_t head;           /* batches published */
    struct batch *slots[LANE_SLOTS]; /* slots[i % LANE_SLOTS]: batch i, until it is taken */
    char apart2[64];

    /* written by the consumer, read by the producer */
    _Atomic uint64_t tail;  /* batches taken */
    _Atomic uint64_t taken; /* counted bytes taken */
    atomic_bool want_room;  /* set by the producer, cleared by the consumer as it wakes it */
};

/* Called with each piece of mail, in order; body points into the batch, and is valid only until
 * deliver returns. */
typedef void lane_deliver_fn(void *ctx, const struct mail *m, const uint8_t *body);

void lane_init(struct lane *l, size_t cap);

/* Producer: would len more counted bytes fit? */
bool lane_fits(const struct lane *l, size_t len);

/* Producer: the bytes a counted piece of mail with a body of len bytes takes in the lane. */
size_t lane_size(size_t len);

/* Producer: be woken once the consumer has taken mail (lane_take returns true). */
void lane_want_room(struct lane *l);

/* Producer: put mail (m->len bytes of body) in the open batch; counted: against the bound.
 * Returns false, with nothing put, if out of memory. */
bool lane_put(struct lane *l, const struct mail *m, const void *body, bool counted);

/* Producer: hand the open batch over. Returns true if the consumer has mail it was not woken
 * for yet: the caller wakes it. If LANE_SLOTS batches wait already, the batch stays open (the
 * consumer wakes the producer once it has taken some, and the next call hands it over). */
bool lane_publish(struct lane *l);

/* Consumer: has the producer published mail not taken yet? (Sequentially consistent, as the
 * hand-over is.) */
bool lane_waiting(const struct lane *l);

/* Consumer: deliver every published piece of mail, in order, and free it. Returns true if the
 * producer asked for room: the caller wakes it. */
bool lane_take(struct lane *l, lane_deliver_fn *deliver, void *ctx);

/* Once neither side runs any more: deliver what is left, published or not, and free it all. */
void lane_free(struct lane *l, lane_deliver_fn *deliver, void *ctx);

#endif
