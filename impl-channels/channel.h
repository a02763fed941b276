/*
 * channel.h - a bounded queue between threads, with close, in the manner of Go's channels.
 *
 * A channel holds at most `capacity` items of one fixed size. channel_send copies an item in,
 * channel_recv copies the oldest one out: first in, first out, any number of senders and
 * receivers. Ownership travels with the bytes: a pointer inside an item belongs to whoever
 * holds the item, so a sent item is the receiver's and a refused one is still the sender's.
 *
 *     struct channel ch;
 *     channel_init(&ch, sizeof(struct msg), 64);
 *     channel_send(&ch, &m, CHANNEL_FOREVER);  // waits while the channel is full
 *     channel_send(&ch, &m, 0);                // never waits: CHANNEL_TIMEOUT if full
 *     n = channel_recv(&ch, &m, 100);          // waits at most 100 ms for an item
 *     n = channel_recv_many(&ch, ms, 64, CHANNEL_FOREVER); // all queued, up to 64, at once
 *     channel_close(&ch);                      // no more sends; wakes every waiting thread
 *     channel_destroy(&ch);                    // once no thread uses it
 *
 * Close is how a channel ends: every thread waiting in it wakes up, sends fail from then on,
 * and receivers still get the items already queued before they see CHANNEL_CLOSED.
 */
#ifndef CHANNEL_H
#define CHANNEL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#define CHANNEL_FOREVER (-1) /* a timeout_ms that waits as long as it takes */

#define CHANNEL_OK 0
#define CHANNEL_TIMEOUT (-1) /* full (send) or empty (recv) until the timeout ran out */
#define CHANNEL_CLOSED (-2)  /* send: the channel is closed; recv: closed and empty */

struct channel {
    pthread_mutex_t lock;
    pthread_cond_t not_empty; /* receivers wait here */
    pthread_cond_t not_full;  /* senders wait here */
    unsigned char *ring;      /* capacity slots of item_size bytes */
    size_t item_size, capacity;
    size_t head, len;       /* the oldest item is in slot head; len items are queued */
    size_t senders_waiting; /* asleep in not_full: a receive wakes one per slot it frees */
    bool closed;
};

/* Returns 0, or -1 with errno set (ENOMEM...). */
int channel_init(struct channel *ch, size_t item_size, size_t capacity);
/* Frees the channel, not what its remaining items point to: drain it first if that matters. */
void channel_destroy(struct channel *ch);

/* timeout_ms: CHANNEL_FOREVER, 0 (try once), or the most milliseconds to wait. */
/* Returns CHANNEL_OK, CHANNEL_TIMEOUT or CHANNEL_CLOSED; only on CHANNEL_OK was *item taken. */
int channel_send(struct channel *ch, const void *item, int timeout_ms);
/* Returns how many items were queued, this one included (== capacity: it was full), or
 * CHANNEL_TIMEOUT, or CHANNEL_CLOSED once the channel is closed and empty. */
int channel_recv(struct channel *ch, void *item, int timeout_ms);

/* Take every item queued, up to max, in one go: returns how many (>= 1) were copied into
 * items[0..), oldest first, or CHANNEL_TIMEOUT, or CHANNEL_CLOSED. One wake-up, many items. */
int channel_recv_many(struct channel *ch, void *items, size_t max, int timeout_ms);

void channel_close(struct channel *ch);

#endif
