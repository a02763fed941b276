/*
 * unit_mailbox.c - the lanes of router-sharded (impl-sharded/mailbox.h).
 *
 * The router trusts a lane with everything one loop tells another, so these tests pin down what
 * it promises: mail comes out whole and in order, only once it is published; the counted mail
 * in a lane stays within its bound (one longer piece in an empty lane); a producer that asked
 * for room is woken by the consumer's next take; a batch left open when every slot is taken
 * goes with a later publish; what is left at the end is delivered by lane_free; and a producer
 * and a consumer in two threads pass a million pieces with no loss and no reordering (run it
 * under SAN=tsan too).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "../impl-sharded/mailbox.h"

/* What a test's deliver callback saw. */
struct seen {
    int count;
    uint32_t kinds[4096];
    uint32_t a[4096];
    size_t bytes; /* body bytes */
    bool bodies_ok;
};

/* A body of len bytes that says which piece it belongs to. */
static void fill(uint8_t *p, size_t len, uint32_t a)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(a * 31 + i);
}

static bool check(const uint8_t *p, size_t len, uint32_t a)
{
    for (size_t i = 0; i < len; i++)
        if (p[i] != (uint8_t)(a * 31 + i))
            return false;
    return true;
}

static void record(void *ctx, const struct mail *m, const uint8_t *body)
{
    struct seen *s = ctx;
    if (s->count < 4096) {
        s->kinds[s->count] = m->kind;
        s->a[s->count] = m->a;
    }
    s->count++;
    s->bytes += m->len;
    if (!check(body, m->len, m->a))
        s->bodies_ok = false;
}

static void put(struct lane *l, uint8_t kind, uint32_t a, size_t len, bool counted)
{
    static uint8_t body[200000];
    fill(body, len, a);
    struct mail m = {.kind = kind, .len = (uint32_t)len, .a = a};
    assert_true(lane_put(l, &m, body, counted));
}

static void mail_comes_out_whole_in_order_and_only_once_published(void **state)
{
    (void)state;
    struct lane l;
    lane_init(&l, 1 << 20);
    struct seen s = {.bodies_ok = true};
    for (uint32_t i = 0; i < 100; i++)
        put(&l, (uint8_t)(i % 7), i, i * 13 % 300, i % 2 == 0);
    assert_false(lane_waiting(&l));
    assert_false(lane_take(&l, record, &s));
    assert_int_equal(s.count, 0);

    assert_true(lane_publish(&l));  /* the consumer must be told */
    assert_false(lane_publish(&l)); /* nothing new since */
    assert_true(lane_waiting(&l));
    lane_take(&l, record, &s);
    assert_false(lane_waiting(&l));
    assert_int_equal(s.count, 100);
    assert_true(s.bodies_ok);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(s.a[i], i);
        assert_int_equal(s.kinds[i], i % 7);
    }
    lane_free(&l, record, &s);
    assert_int_equal(s.count, 100);
}

static void counted_mail_stays_within_the_bound_and_one_long_piece_fits_an_empty_lane(void **state)
{
    (void)state;
    struct lane l;
    size_t piece = lane_size(1000);
    lane_init(&l, 10 * piece);
    struct seen s = {.bodies_ok = true};
    int n = 0;
    while (lane_fits(&l, piece))
        put(&l, 1, (uint32_t)n++, 1000, true);
    assert_int_equal(n, 10);
    put(&l, 2, 99, 5000, false); /* not counted: goes whatever the bound */
    assert_false(lane_fits(&l, piece));
    lane_publish(&l);
    assert_false(lane_fits(&l, piece)); /* published, still not taken */
    lane_take(&l, record, &s);
    assert_int_equal(s.count, 11);
    assert_true(lane_fits(&l, piece));

    assert_true(lane_fits(&l, lane_size(150000))); /* longer than the bound, lane empty */
    put(&l, 1, 7, 150000, true);
    assert_false(lane_fits(&l, lane_size(1)));
    lane_publish(&l);
    lane_take(&l, record, &s);
    assert_int_equal(s.count, 12);
    assert_true(s.bodies_ok);
    lane_free(&l, record, &s);
}

static void a_producer_that_asked_for_room_is_woken_by_the_next_take(void **state)
{
    (void)state;
    struct lane l;
    lane_init(&l, lane_size(10));
    struct seen s = {.bodies_ok = true};
    put(&l, 1, 1, 10, true);
    lane_publish(&l);
    assert_false(lane_fits(&l, lane_size(10)));
    assert_true(lane_take(&l, record, &s) == false); /* nobody asked yet */

    put(&l, 1, 2, 10, true);
    lane_publish(&l);
    lane_want_room(&l);
    assert_true(lane_take(&l, record, &s)); /* wake the producer */
    put(&l, 1, 3, 10, true);
    lane_publish(&l);
    assert_false(lane_take(&l, record, &s)); /* asked once, woken once */
    assert_false(lane_take(&l, record, &s)); /* nothing taken: nothing to say */
    assert_int_equal(s.count, 3);
    lane_free(&l, record, &s);
}

static void a_batch_left_open_when_every_slot_is_taken_goes_later(void **state)
{
    (void)state;
    struct lane l;
    lane_init(&l, 1 << 30);
    struct seen s = {.bodies_ok = true};
    for (uint32_t i = 0; i < LANE_SLOTS; i++) {
        put(&l, 1, i, 8, false);
        assert_true(lane_publish(&l));
    }
    put(&l, 1, LANE_SLOTS, 8, false);
    assert_false(lane_publish(&l)); /* no slot: it stays open, the consumer will wake us */
    assert_true(lane_take(&l, record, &s));
    assert_int_equal(s.count, LANE_SLOTS);
    assert_true(lane_publish(&l));
    lane_take(&l, record, &s);
    assert_int_equal(s.count, LANE_SLOTS + 1);
    assert_int_equal(s.a[LANE_SLOTS], LANE_SLOTS);
    lane_free(&l, record, &s);
}

static void a_full_batch_is_handed_over_while_the_turn_goes_on(void **state)
{
    (void)state;
    struct lane l;
    lane_init(&l, 1 << 30);
    struct seen s = {.bodies_ok = true};
    size_t body = 1000, n = 2 * LANE_BATCH / lane_size(body) + 1;
    for (uint32_t i = 0; i < n; i++)
        put(&l, 1, i, body, true);
    assert_true(lane_waiting(&l)); /* batches went before any publish */
    lane_take(&l, record, &s);
    assert_true(s.count > 0 && (size_t)s.count < n);
    assert_true(lane_publish(&l));
    lane_take(&l, record, &s);
    assert_int_equal(s.count, n);
    for (int i = 0; i < s.count; i++)
        assert_int_equal(s.a[i], i);
    assert_true(s.bodies_ok);
    lane_free(&l, record, &s);
}

static void lane_free_delivers_what_is_published_and_what_is_still_open(void **state)
{
    (void)state;
    struct lane l;
    lane_init(&l, 1 << 20);
    struct seen s = {.bodies_ok = true};
    put(&l, 1, 0, 10, true);
    put(&l, 1, 1, 20, false);
    lane_publish(&l);
    put(&l, 1, 2, 30, true);
    lane_free(&l, record, &s);
    assert_int_equal(s.count, 3);
    assert_int_equal(s.bytes, 60);
    assert_int_equal(s.a[2], 2);
}

/* ---- Two threads ---- */

#define PIECES 1000000

struct pair {
    struct lane lane;
    atomic_bool woken;    /* the consumer's "ring" */
    atomic_bool finished; /* the consumer has had every piece */
    uint32_t next;        /* consumer: the piece it expects */
    bool in_order;
};

static void expect_next(void *ctx, const struct mail *m, const uint8_t *body)
{
    struct pair *p = ctx;
    if (m->a != p->next || !check(body, m->len, m->a))
        p->in_order = false;
    p->next++;
}

static void *consume(void *arg)
{
    struct pair *p = arg;
    while (p->next < PIECES) {
        if (lane_take(&p->lane, expect_next, p))
            atomic_store(&p->woken, true);
        else
            sched_yield();
    }
    atomic_store(&p->finished, true);
    return NULL;
}

static void a_producer_and_a_consumer_thread_pass_every_piece_once_in_order(void **state)
{
    (void)state;
    static struct pair p;
    lane_init(&p.lane, 64 * 1024);
    atomic_init(&p.woken, false);
    atomic_init(&p.finished, false);
    p.next = 0;
    p.in_order = true;
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, consume, &p), 0);
    uint32_t rng = 12345;
    for (uint32_t i = 0; i < PIECES;) {
        rng = rng * 1103515245u + 12345u;
        size_t len = rng >> 16 & 63;
        if (!lane_fits(&p.lane, lane_size(len))) {
            lane_publish(&p.lane);
            lane_want_room(&p.lane);
            while (!lane_fits(&p.lane, lane_size(len)) && !atomic_exchange(&p.woken, false))
                sched_yield();
            continue; /* the same piece again */
        }
        put(&p.lane, 1, i++, len, rng & 0x100);
        if (i % 97 == 0)
            lane_publish(&p.lane);
    }
    while (!atomic_load(&p.finished)) { /* the last batch, once a slot is free */
        lane_publish(&p.lane);
        sched_yield();
    }
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(p.next, PIECES);
    assert_true(p.in_order);
    lane_free(&p.lane, expect_next, &p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mail_comes_out_whole_in_order_and_only_once_published),
        cmocka_unit_test(counted_mail_stays_within_the_bound_and_one_long_piece_fits_an_empty_lane),
        cmocka_unit_test(a_producer_that_asked_for_room_is_woken_by_the_next_take),
        cmocka_unit_test(a_batch_left_open_when_every_slot_is_taken_goes_later),
        cmocka_unit_test(a_full_batch_is_handed_over_while_the_turn_goes_on),
        cmocka_unit_test(lane_free_delivers_what_is_published_and_what_is_still_open),
        cmocka_unit_test(a_producer_and_a_consumer_thread_pass_every_piece_once_in_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
