/* channel.c - see channel.h. One mutex guards the ring; two condition variables say why a
 * thread waits, so a send wakes only receivers and a receive wakes only senders, and no more
 * of them than it freed slots: with 10,000 senders waiting on a full inbox, a broadcast would
 * wake them all to find room for a few (measured: 12 s to take 10,000 clients' last messages,
 * every core in futex calls). */
#include "channel.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int channel_init(struct channel *ch, size_t item_size, size_t capacity)
{
    if (item_size == 0 || capacity == 0 || capacity > INT_MAX) {
        errno = EINVAL;
        return -1;
    }
    *ch = (struct channel){.item_size = item_size, .capacity = capacity};
    ch->ring = calloc(capacity, item_size);
    if (!ch->ring)
        return -1;

    /* Timed waits measure on the monotonic clock, so a change of wall-clock time cannot
     * stretch or cut them. */
    pthread_condattr_t attr;
    int rc = pthread_condattr_init(&attr);
    if (rc == 0) {
        rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        if (rc == 0)
            rc = pthread_cond_init(&ch->not_empty, &attr);
        if (rc == 0 && (rc = pthread_cond_init(&ch->not_full, &attr)) != 0)
            pthread_cond_destroy(&ch->not_empty);
        pthread_condattr_destroy(&attr);
    }
    if (rc == 0 && (rc = pthread_mutex_init(&ch->lock, NULL)) != 0) {
        pthread_cond_destroy(&ch->not_empty);
        pthread_cond_destroy(&ch->not_full);
    }
    if (rc != 0) {
        free(ch->ring);
        errno = rc;
        return -1;
    }
    return 0;
}

void channel_destroy(struct channel *ch)
{
    pthread_mutex_destroy(&ch->lock);
    pthread_cond_destroy(&ch->not_empty);
    pthread_cond_destroy(&ch->not_full);
    free(ch->ring);
    ch->ring = NULL;
}

static void deadline_after(struct timespec *t, int ms)
{
    clock_gettime(CLOCK_MONOTONIC, t);
    t->tv_sec += ms / 1000;
    t->tv_nsec += (long)(ms % 1000) * 1000000;
    if (t->tv_nsec >= 1000000000) {
        t->tv_sec++;
        t->tv_nsec -= 1000000000;
    }
}

/*
 * Wait on cv with ch->lock held. Returns false if the time is up. The caller checks its
 * condition once more after a timeout: a wakeup that raced with the timeout is not lost.
 */
static bool wait_on(struct channel *ch, pthread_cond_t *cv, int timeout_ms,
                    const struct timespec *deadline)
{
    if (timeout_ms == 0)
        return false;
    if (timeout_ms < 0) {
        pthread_cond_wait(cv, &ch->lock);
        return true;
    }
    return pthread_cond_timedwait(cv, &ch->lock, deadline) != ETIMEDOUT;
}

int channel_send(struct channel *ch, const void *item, int timeout_ms)
{
    struct timespec deadline;
    if (timeout_ms > 0)
        deadline_after(&deadline, timeout_ms);

    pthread_mutex_lock(&ch->lock);
    int rc;
    for (bool time_is_up = false;;) {
        if (ch->closed) {
            rc = CHANNEL_CLOSED;
            break;
        }
        if (ch->len < ch->capacity) {
            size_t tail = (ch->head + ch->len) % ch->capacity;
            memcpy(ch->ring + tail * ch->item_size, item, ch->item_size);
            ch->len++;
            pthread_cond_signal(&ch->not_empty);
            rc = CHANNEL_OK;
            break;
        }
        if (time_is_up) {
            rc = CHANNEL_TIMEOUT;
            break;
        }
        ch->senders_waiting++;
        time_is_up = !wait_on(ch, &ch->not_full, timeout_ms, &deadline);
        ch->senders_waiting--;
    }
    pthread_mutex_unlock(&ch->lock);
    return rc;
}

/* Take up to max of the oldest items into items, waiting as channel_recv does. Returns how
 * many were taken, or CHANNEL_TIMEOUT or CHANNEL_CLOSED; *queued how many there were. */
static int take(struct channel *ch, void *items, size_t max, int timeout_ms, size_t *queued)
{
    struct timespec deadline;
    if (timeout_ms > 0)
        deadline_after(&deadline, timeout_ms);

    pthread_mutex_lock(&ch->lock);
    int rc;
    for (bool time_is_up = false;;) {
        /* Items queued before the close are still delivered: check for them first. */
        if (ch->len > 0) {
            size_t n = ch->len < max ? ch->len : max;
            *queued = ch->len;
            for (size_t i = 0; i < n; i++) {
                memcpy((unsigned char *)items + i * ch->item_size,
                       ch->ring + ch->head * ch->item_size, ch->item_size);
                ch->head = (ch->head + 1) % ch->capacity;
            }
            ch->len -= n;
            for (size_t woken = 0; woken < n && woken < ch->senders_waiting; woken++)
                pthread_cond_signal(&ch->not_full);
            rc = (int)n;
            break;
        }
        if (ch->closed) {
            rc = CHANNEL_CLOSED;
            break;
        }
        if (time_is_up) {
            rc = CHANNEL_TIMEOUT;
            break;
        }
        time_is_up = !wait_on(ch, &ch->not_empty, timeout_ms, &deadline);
    }
    pthread_mutex_unlock(&ch->lock);
    return rc;
}

int channel_recv(struct channel *ch, void *item, int timeout_ms)
{
    size_t queued;
    int rc = take(ch, item, 1, timeout_ms, &queued);
    return rc > 0 ? (int)queued : rc;
}

int channel_recv_many(struct channel *ch, void *items, size_t max, int timeout_ms)
{
    size_t queued;
    return take(ch, items, max, timeout_ms, &queued);
}

void channel_close(struct channel *ch)
{
    pthread_mutex_lock(&ch->lock);
    ch->closed = true;
    pthread_cond_broadcast(&ch->not_empty);
    pthread_cond_broadcast(&ch->not_full);
    pthread_mutex_unlock(&ch->lock);
}
