/*
 * unit_channel.c - the bounded channel of router-channels (impl-channels/channel.h).
 *
 * The router trusts the channel with every interaction between its threads, so these tests
 * pin down what it promises: FIFO order, a bound that makes senders wait or time out, a close
 * that wakes every waiting thread while receivers still drain what was queued, and no item lost
 * or duplicated when many threads send at once (run it under SAN=tsan too).
 *
 * A test that waits for a thread to block gives it BLOCK_MS first: on a loaded machine it may
 * not have blocked yet, which makes the test weaker, never wrong. Joins time out, so a channel
 * that fails to wake a thread fails the test instead of hanging it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../impl-channels/channel.h"

#define BLOCK_MS 100       /* time given to a thread to reach its wait */
#define JOIN_LIMIT_MS 5000 /* a thread still running after this is a failure */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Join t, failing the test if it does not finish within JOIN_LIMIT_MS. */
static void join_or_fail(pthread_t t)
{
    struct timespec limit;
    clock_gettime(CLOCK_REALTIME, &limit);
    limit.tv_sec += JOIN_LIMIT_MS / 1000;
    int rc = pthread_timedjoin_np(t, NULL, &limit);
    if (rc != 0)
        fail_msg("a thread blocked in the channel did not finish: %s", strerror(rc));
}

static void make_channel(struct channel *ch, size_t capacity)
{
    assert_int_equal(channel_init(ch, sizeof(int), capacity), 0);
}

/* One thread's call into the channel, and what it returned. */
struct call {
    struct channel *ch;
    int item;
    int rc;
    atomic_bool done;
};

static void *send_forever(void *arg)
{
    struct call *c = arg;
    c->rc = channel_send(c->ch, &c->item, CHANNEL_FOREVER);
    atomic_store(&c->done, true);
    return NULL;
}

static void *recv_forever(void *arg)
{
    struct call *c = arg;
    c->rc = channel_recv(c->ch, &c->item, CHANNEL_FOREVER);
    atomic_store(&c->done, true);
    return NULL;
}

static void start(pthread_t *t, void *(*fn)(void *), struct call *c, struct channel *ch)
{
    c->ch = ch;
    atomic_init(&c->done, false);
    assert_int_equal(pthread_create(t, NULL, fn, c), 0);
}

/* ---- order, bound, timeouts ---- */

static void items_come_out_in_the_order_they_went_in(void **state)
{
    (void)state;
    struct channel ch;
    make_channel(&ch, 4);
    /* Twice around the ring, so the wrap-around is covered. */
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 4; i++)
            assert_int_equal(channel_send(&ch, &i, 0), CHANNEL_OK);
        for (int i = 0; i < 4; i++) {
            int got = -1;
            assert_true(channel_recv(&ch, &got, 0) > 0);
            assert_int_equal(got, i);
        }
    }
    channel_destroy(&ch);
}

static void recv_tells_how_many_items_were_queued(void **state)
{
    (void)state;
    struct channel ch;
    make_channel(&ch, 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(channel_send(&ch, &i, 0), CHANNEL_OK);
    int got;
    assert_int_equal(channel_recv(&ch, &got, 0), 3); /* == capacity: it was full */
    assert_int_equal(channel_recv(&ch, &got, 0), 2);
    assert_int_equal(channel_recv(&ch, &got, 0), 1);
    channel_destroy(&ch);
}

static void recv_many_takes_what_is_queued_up_to_max_in_order_across_the_wrap(void **state)
{
    (void)state;
    struct channel ch;
    make_channel(&ch, 4);
    int got[4] = {-1, -1, -1, -1};
    for (int i = 0; i < 3; i++) /* head moves to 3: the next items wrap around the ring */
        assert_int_equal(channel_send(&ch, &i, 0), CHANNEL_OK);
    assert_int_equal(channel_recv_many(&ch, got, 4, 0), 3);
    for (int i = 0; i < 3; i++)
        assert_int_equal(got[i], i);
    for (int i = 10; i < 14; i++)
        assert_int_equal(channel_send(&ch, &i, 0), CHANNEL_OK);
    assert_int_equal(channel_recv_many(&ch, got, 3, 0), 3); /* max, not all four */
    assert_int_equal(got[0], 10);
    assert_int_equal(got[2], 12);
    assert_int_equal(channel_recv_many(&ch, got, 3, 0), 1);
    assert_int_equal(got[0], 13);
    assert_int_equal(channel_recv_many(&ch, got, 3, 0), CHANNEL_TIMEOUT);
    channel_close(&ch);
    assert_int_equal(channel_recv_many(&ch, got, 3, 0), CHANNEL_CLOSED);
    channel_destroy(&ch);
}

static void send_to_a_full_channel_fails_at_once_without_waiting(void **state)
{
    (void)state;
    struct channel ch;
    make_channel(&ch, 2);
    int x = 7;
    assert_int_equal(channel_send(&ch, &x, 0), CHANNEL_OK);
    assert_int_equal(channel_send(&ch, &x, 0), CHANNEL_OK);
    assert_int_equal(channel_send(&ch, &x, 0), CHANNEL_TIMEOUT);
    channel_destroy(&ch);
}

static void send_to_a_full_channel_times_out_after_its_timeout(void **state)
{
    (void)state;
    struct channel ch;
    make_channel(&ch, 1);
    int x = 1;
    assert_int_equal(channel_send(&ch, &x, 0), CHANNEL_OK);
    int64_t t0 = now_ms();
    assert_int_equal(channel_send(&ch, &x, 150), CHANNEL_TIMEOUT);
    int64_t waited = now_ms() - t0;
    assert_true(waited >= 140); /* clock granularity aside, it waited the whole time */
    assert_true(waited < JOIN_LIMIT_MS);
    channel_destroy(&ch);
}

static void recv_from_an_empty_channel_times_out_after_its_timeout(void **state)
{
    (void)state;
    struct channel ch;
    make_channel(&ch, 1);
    int x;
    assert_int_equal(channel_recv(&ch, &x, 0), CHANNEL_TIMEOUT);
    int64_t t0 = now_ms();
    assert_int_equal(channel_recv(&ch, &x, 150), CHANNEL_TIMEOUT);
    assert_true(now_ms() - t0 >= 140);
    channel_destroy(&ch);
}

static void a_sender_blocked_at_capacity_goes_on_when_a_receiver_makes_room(void **state)
{
    (void)state;
    struct channel ch;
    make_channel(&ch, 1);
    int first = 1;
    assert_int_equal(channel_send(&ch, &first, 0), CHANNEL_OK);

    pthread_t t;
    struct call c = {.item = 2};
    start(&t, send_forever, &c, &ch);
    sleep_ms(BLOCK_MS);
    assert_false(atomic_load(&c.done)); /* still waiting for room */

    int got;
    assert_int_equal(channel_recv(&ch, &got, 0), 1);
    assert_int_equal(got, 1);
    join_or_fail(t);
    assert_int_equal(c.rc, CHANNEL_OK);
    assert_int_equal(channel_recv(&ch, &got, 0), 1);
    assert_int_equal(got, 2);
    channel_destroy(&ch);
}

static void a_timed_recv_gets_an_item_sent_while_it_waits(void **state)
{
    (void)state;
    struct channel ch;
    make_channel(&ch, 1);
    pthread_t t;
    struct call c = {.item = 42};
    start(&t, send_forever, &c, &ch);
    int got = 0;
    assert_int_equal(channel_recv(&ch, &got, JOIN_LIMIT_MS), 1);
    assert_int_equal(got, 42);
    join_or_fail(t);
    channel_destroy(&ch);
}

/* ---- close ---- */

#define WAITERS 4

static void close_wakes_every_blocked_receiver(void **state)
{
    (void)state;
    struct channel ch;
    make_channel(&ch, 2);
    pthread_t t[WAITERS];
    struct call c[WAITERS] = {0};
    for (int i = 0; i < WAITERS; i++)
        start(&t[i], recv_forever, &c[i], &ch);
    sleep_ms(BLOCK_MS);
    for (int i = 0; i < WAITERS; i++)
        assert_false(atomic_load(&c[i].done));

    channel_close(&ch);
    for (int i = 0; i < WAITERS; i++) {
        join_or_fail(t[i]);
        assert_int_equal(c[i].rc, CHANNEL_CLOSED);
    }
    channel_destroy(&ch);
}

static void close_wakes_every_blocked_sender_and_their_items_stay_theirs(void **state)
{
    (void)state;
    struct channel ch;
    make_channel(&ch, 1);
    int first = 0;
    assert_int_equal(channel_send(&ch, &first, 0), CHANNEL_OK);
    pthread_t t[WAITERS];
    struct call c[WAITERS] = {0};
    for (int i = 0; i < WAITERS; i++) {
        c[i].item = i + 1;
        start(&t[i], send_forever, &c[i], &ch);
    }
    sleep_ms(BLOCK_MS);
    for (int i = 0; i < WAITERS; i++)
        assert_false(atomic_load(&c[i].done));

    channel_close(&ch);
    for (int i = 0; i < WAITERS; i++) {
        join_or_fail(t[i]);
        assert_int_equal(c[i].rc, CHANNEL_CLOSED);
    }
    /* Only the item queued before the close is there: no refused item slipped in. */
    int got;
    assert_int_equal(channel_recv(&ch, &got, 0), 1);
    assert_int_equal(got, 0);
    assert_int_equal(channel_recv(&ch, &got, 0), CHANNEL_CLOSED);
    channel_destroy(&ch);
}

static void receivers_drain_what_was_queued_before_they_see_closed(void **state)
{
    (void)state;
    struct channel ch;
    make_channel(&ch, 4);
    for (int i = 0; i < 3; i++)
        assert_int_equal(channel_send(&ch, &i, 0), CHANNEL_OK);
    channel_close(&ch);
    int got;
    for (int i = 0; i < 3; i++) {
        assert_true(channel_recv(&ch, &got, CHANNEL_FOREVER) > 0);
        assert_int_equal(got, i);
    }
    assert_int_equal(channel_recv(&ch, &got, CHANNEL_FOREVER), CHANNEL_CLOSED);
    assert_int_equal(channel_recv(&ch, &got, 0), CHANNEL_CLOSED);
    channel_destroy(&ch);
}

static void send_to_a_closed_channel_fails(void **state)
{
    (void)state;
    struct channel ch;
    make_channel(&ch, 4);
    channel_close(&ch);
    int x = 1;
    assert_int_equal(channel_send(&ch, &x, 0), CHANNEL_CLOSED);
    assert_int_equal(channel_send(&ch, &x, CHANNEL_FOREVER), CHANNEL_CLOSED);
    assert_int_equal(channel_send(&ch, &x, 100), CHANNEL_CLOSED);
    channel_destroy(&ch);
}

static void init_refuses_a_channel_that_could_hold_nothing(void **state)
{
    (void)state;
    struct channel ch;
    assert_int_equal(channel_init(&ch, sizeof(int), 0), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(channel_init(&ch, 0, 4), -1);
    assert_int_equal(errno, EINVAL);
}

/* ---- many threads ---- */

#define PRODUCERS 8
#define PER_PRODUCER 20000

struct producer {
    struct channel *ch;
    int index;
};

/* Items are index * PER_PRODUCER + sequence number, sent through a small channel so that
 * producers block against each other and the consumer all the time. */
static void *produce(void *arg)
{
    struct producer *p = arg;
    for (int i = 0; i < PER_PRODUCER; i++) {
        int item = p->index * PER_PRODUCER + i;
        if (channel_send(p->ch, &item, CHANNEL_FOREVER) != CHANNEL_OK)
            return "send failed";
    }
    return NULL;
}

static void many_producers_and_one_consumer_pass_every_item_once_in_order(void **state)
{
    (void)state;
    struct channel ch;
    make_channel(&ch, 8);
    pthread_t t[PRODUCERS];
    struct producer p[PRODUCERS];
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (struct producer){.ch = &ch, .index = i};
        assert_int_equal(pthread_create(&t[i], NULL, produce, &p[i]), 0);
    }

    int next[PRODUCERS] = {0}; /* the sequence number expected from each producer */
    for (int n = 0; n < PRODUCERS * PER_PRODUCER; n++) {
        int item;
        assert_true(channel_recv(&ch, &item, JOIN_LIMIT_MS) > 0);
        assert_in_range(item, 0, PRODUCERS * PER_PRODUCER - 1);
        int from = item / PER_PRODUCER;
        /* Each producer's items arrive in its order, so none is lost or seen twice. */
        assert_int_equal(item % PER_PRODUCER, next[from]);
        next[from]++;
    }
    for (int i = 0; i < PRODUCERS; i++) {
        void *err;
        assert_int_equal(pthread_join(t[i], &err), 0);
        assert_null(err);
        assert_int_equal(next[i], PER_PRODUCER);
    }
    int item;
    assert_int_equal(channel_recv(&ch, &item, 0), CHANNEL_TIMEOUT); /* nothing extra */
    channel_destroy(&ch);
}

#define CONSUMERS 4

struct consumer {
    struct channel *ch;
    unsigned char *seen; /* its own PRODUCERS * PER_PRODUCER counters, one per item */
    atomic_int *total;
};

static void *consume(void *arg)
{
    struct consumer *c = arg;
    int item;
    while (channel_recv(c->ch, &item, CHANNEL_FOREVER) > 0) {
        c->seen[item]++; /* this consumer's own counters */
        atomic_fetch_add(c->total, 1);
    }
    return NULL;
}

static void many_producers_and_consumers_deliver_every_item_exactly_once(void **state)
{
    (void)state;
    struct channel ch;
    make_channel(&ch, 8);
    unsigned char *seen[CONSUMERS];
    atomic_int total;
    atomic_init(&total, 0);
    pthread_t ct[CONSUMERS], pt[PRODUCERS];
    struct consumer c[CONSUMERS];
    struct producer p[PRODUCERS];
    for (int i = 0; i < CONSUMERS; i++) {
        seen[i] = calloc(PRODUCERS * PER_PRODUCER, 1);
        assert_non_null(seen[i]);
        c[i] = (struct consumer){.ch = &ch, .seen = seen[i], .total = &total};
        assert_int_equal(pthread_create(&ct[i], NULL, consume, &c[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        p[i] = (struct producer){.ch = &ch, .index = i};
        assert_int_equal(pthread_create(&pt[i], NULL, produce, &p[i]), 0);
    }
    for (int i = 0; i < PRODUCERS; i++) {
        void *err;
        assert_int_equal(pthread_join(pt[i], &err), 0);
        assert_null(err);
    }
    channel_close(&ch); /* consumers drain the rest, then see closed */
    for (int i = 0; i < CONSUMERS; i++)
        join_or_fail(ct[i]);

    assert_int_equal(atomic_load(&total), PRODUCERS * PER_PRODUCER);
    for (int item = 0; item < PRODUCERS * PER_PRODUCER; item++) {
        int count = 0;
        for (int i = 0; i < CONSUMERS; i++)
            count += seen[i][item];
        if (count != 1)
            fail_msg("item %d received %d times", item, count);
    }
    for (int i = 0; i < CONSUMERS; i++)
        free(seen[i]);
    channel_destroy(&ch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(items_come_out_in_the_order_they_went_in),
        cmocka_unit_test(recv_tells_how_many_items_were_queued),
        cmocka_unit_test(recv_many_takes_what_is_queued_up_to_max_in_order_across_the_wrap),
        cmocka_unit_test(send_to_a_full_channel_fails_at_once_without_waiting),
        cmocka_unit_test(send_to_a_full_channel_times_out_after_its_timeout),
        cmocka_unit_test(recv_from_an_empty_channel_times_out_after_its_timeout),
        cmocka_unit_test(a_sender_blocked_at_capacity_goes_on_when_a_receiver_makes_room),
        cmocka_unit_test(a_timed_recv_gets_an_item_sent_while_it_waits),
        cmocka_unit_test(close_wakes_every_blocked_receiver),
        cmocka_unit_test(close_wakes_every_blocked_sender_and_their_items_stay_theirs),
        cmocka_unit_test(receivers_drain_what_was_queued_before_they_see_closed),
        cmocka_unit_test(send_to_a_closed_channel_fails),
        cmocka_unit_test(init_refuses_a_channel_that_could_hold_nothing),
        cmocka_unit_test(many_producers_and_one_consumer_pass_every_item_once_in_order),
        cmocka_unit_test(many_producers_and_consumers_deliver_every_item_exactly_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
