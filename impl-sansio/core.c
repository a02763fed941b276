/*
 * core.c - the router's state machine (see core.h): router-reactor's logic with the I/O taken
 * out. Where the reactor calls libuv, the core records what it wants done, and core_next_action
 * hands it out; where libuv calls the reactor back, the driver calls an event function.
 *
 * Invariants (each event function restores them before it returns):
 *   - A client in r->by_key is OPEN (its ID resolves in r->conns), QUITTING (retired: its ID no
 *     longer resolves, it is not read, its queue is still written) or REFUSED (turned away: at
 *     most an error frame queued, no ID). A CLOSED client is out of by_key and on r->closing
 *     until its CORE_CLOSE is handed out; only then is it freed, so a pointer to it held further
 *     up the stack stays valid for the rest of the event.
 *   - queued(c), the bytes of c's queue the socket has not taken, is what --max-pending bounds:
 *     a frame is queued only if it fits, or if the queue is empty (one frame, however long);
 *     beyond that, at most two short error frames (a notice, "message too long").
 *   - A blocked sender is in the waiters of exactly one client, or on r->ready; it is not read.
 *   - Every queued frame is counted once: forwarded when its last byte is taken, dropped when
 *     its destination closes first (even if part of it went out).
 *   - A client with queued bytes and a write timeout is on r->deadlines, which is sorted by the
 *     time the socket last took a byte (or the queue became non-empty): time never goes back,
 *     and a client that makes progress moves to the tail.
 */
#include "core.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conn_table.h"
#include "frame.h"
#include "inbuf.h"
#include "list.h"
#include "outbuf.h"
#include "proto.h"
#include "work.h"

/* PLANT n (1..4) compiles in one realistic bug, to show that the simulator finds it: only
 * tests/sim_planted.sh sets it. 0, the default, is the router. */
#ifndef PLANT
#define PLANT 0
#endif

enum conn_state { OPEN, QUITTING, REFUSED, CLOSED };

struct conn {
    struct core *r;
    int key;
    uint32_t id; /* 0 for a client turned away */
    enum conn_state state;

    struct inbuf in; /* bytes not routed yet: a partial frame, or frames that wait */

    /* The queue. out.bytes[0, done) was taken by the socket; of that, the first `settled` frames
     * (settled_bytes bytes) were counted as forwarded. */
    struct outbuf out;
    size_t done, settled, settled_bytes;
    bool write_offered; /* a CORE_WRITE of out.bytes[done, len) is out, not reported yet */
    size_t offered;     /* its length */
    bool socket_full;   /* the socket took less than offered: wait for core_writable */
#if PLANT == 4
    size_t left; /* what the last write left behind */
#endif

    bool reading;      /* what the core wants */
    bool reading_told; /* what the driver was last told (a new client is read) */

    bool blocked;          /* not reading: a frame waits for room in a full queue */
    struct list wait_link; /* in the waiters of the client it waits on, or in r->ready */
    struct list waiters;   /* senders blocked on this client's queue */
    uint32_t told_about;   /* the last departed destination this sender was told about */

    struct list todo_link;         /* in r->todo: may have an action to hand out */
    struct list deadline_link;     /* in r->deadlines while it has queued bytes */
    int64_t progress_ms;           /* when the socket last took a byte, or the queue filled */
    bool slow;                     /* closed as a slow consumer */
    enum core_close_reason reason; /* CLOSED: why */
};

struct core {
    struct core_config cfg;
    struct conn_table conns; /* ID -> conn, for OPEN conns */
    struct conn **by_key;    /* key -> conn, for every conn not CLOSED */
    size_t nkeys;
    size_t clients; /* given an ID and not closed yet: what max_clients limits */
    int64_t now;
    struct list todo;      /* conns that may have an action: a write, a change of reading */
    struct list ready;     /* blocked senders whose destination drained or left */
    struct list deadlines; /* conns with queued bytes, oldest progress first */
    struct list closing;   /* CLOSED conns, their CORE_CLOSE not handed out yet */
    int orphan_key;        /* a key turned away with no memory for a conn, or -1 */
    struct stats stats;
#if PLANT == 3
    struct inbuf *leftover; /* by key */
#endif
};

static size_t queued(const struct conn *c)
{
    return c->out.len - c->done;
}

/* What the limits count: every byte queued. */
static size_t pending(const struct conn *c)
{
#if PLANT == 4 /* the bug: count what the socket refused, forgetting what was queued since */
    return c->left;
#endif
    return queued(c);
}

static bool over_limit(const struct conn *c)
{
    return pending(c) >= c->r->cfg.max_pending;
}

static void conn_close(struct conn *c, enum core_close_reason reason);
static size_t route_frames(struct conn *c, const uint8_t *p, size_t len);
static void route_kept(struct conn *c);

static void advance(struct core *r, int64_t now_ms)
{
    if (now_ms > r->now)
        r->now = now_ms; /* a clock that steps back is held where it was */
}

static struct conn *lookup(const struct core *r, int key)
{
    return key >= 0 && (size_t)key < r->nkeys ? r->by_key[key] : NULL;
}

/* c may have an action to hand out: core_next_action looks. */
static void mark_todo(struct conn *c)
{
    if (c->state != CLOSED && !list_linked(&c->todo_link))
        list_push(&c->r->todo, &c->todo_link);
}

static void set_reading(struct conn *c, bool on)
{
    c->reading = on;
    if (c->reading != c->reading_told)
        mark_todo(c);
}

/* Keep c on r->deadlines exactly while it has queued bytes (and there is a write timeout). */
static void watch(struct conn *c)
{
    bool wanted = c->r->cfg.write_timeout_ms > 0 && queued(c) > 0 && c->state != REFUSED &&
                  c->state != CLOSED;
    if (!wanted) {
        list_remove(&c->deadline_link);
    } else if (!list_linked(&c->deadline_link)) {
        c->progress_ms = c->r->now;
        list_push(&c->r->deadlines, &c->deadline_link);
    }
}

/* Queue bytes for c. Running out of memory is treated like a failed socket: c is closed. */
static void enqueue(struct conn *c, uint32_t sender, const uint8_t *bytes, size_t len)
{
    if (!outbuf_append(&c->out, sender, bytes, len)) {
        if (sender != 0)
            c->r->stats.frames_dropped++;
        conn_close(c, CORE_CLOSE_NO_MEMORY);
        return;
    }
    mark_todo(c);
    watch(c);
}

static void send_error(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void send_error(struct conn *c, const char *fmt, ...)
{
    if (!c->r->cfg.error_frames || c->state == CLOSED)
        return;
    char reason[PROTO_ERROR_FRAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    uint8_t frame[PROTO_ERROR_FRAME_MAX];
    size_t len = proto_error_frame(frame, "%s", reason);
    c->r->stats.error_frames++;
    enqueue(c, 0, frame, len);
}

/* Tell s, once, that d is gone with frames of s still queued, or while s waited for it - unless
 * the queue of s is full: it is not reading, and must not grow it. */
static void tell_departed(struct conn *s, struct conn *d)
{
    if (s->told_about == d->id || over_limit(s))
        return;
    s->told_about = d->id;
    if (d->slow)
        send_error(s, "destination %" PRIu32 " too slow, frames dropped", d->id);
    else
        send_error(s, "destination %" PRIu32 " disconnected, frames dropped", d->id);
}

/* The socket took bytes up to c->done: count the frames it finished as forwarded, and give
 * back the room they took (compacting once half the buffer is spent, so each byte moves at most
 * about once). */
static void settle_written(struct conn *c)
{
    struct core *r = c->r;
    while (c->settled < c->out.nframes) {
        struct queued_frame q = c->out.frames[c->settled];
        if (c->settled_bytes + q.len > c->done)
            break;
        c->settled++;
        c->settled_bytes += q.len;
        if (q.sender != 0) {
            r->stats.frames_forwarded++;
            r->stats.bytes_forwarded += q.len;
        }
    }
    if (c->done == c->out.len) {
        outbuf_clear(&c->out);
        c->done = c->settled = c->settled_bytes = 0;
    } else if (c->settled_bytes > 0 && 2 * c->settled_bytes >= c->out.len) {
        struct outbuf *o = &c->out;
        memmove(o->bytes, o->bytes + c->settled_bytes, o->len - c->settled_bytes);
        memmove(o->frames, o->frames + c->settled, (o->nframes - c->settled) * sizeof *o->frames);
        o->len -= c->settled_bytes;
        o->nframes -= c->settled;
        c->done -= c->settled_bytes;
        c->settled = c->settled_bytes = 0;
    }
}

/* d closes: every frame not wholly taken is dropped and counted, and each sender that is still
 * connected is told (once per departed destination). */
static void drop_queue(struct conn *d)
{
    struct core *r = d->r;
    for (size_t i = d->settled; i < d->out.nframes; i++) {
        uint32_t sender = d->out.frames[i].sender;
        if (sender == 0)
            continue;
        r->stats.frames_dropped++;
        struct conn *s = conn_table_get(&r->conns, sender);
        if (s)
            tell_departed(s, d);
    }
    outbuf_clear(&d->out);
    d->done = d->settled = d->settled_bytes = 0;
}

/* Take c out of routing: its ID stops resolving, it is read no more, and the senders blocked on
 * it go on (finish_event resumes them; their next frame for it gets "unknown destination"). */
static void retire(struct conn *c)
{
    if (c->state != OPEN)
        return;
    conn_table_remove(&c->r->conns, c->id);
#if PLANT == 1 /* the bug: let go of the senders blocked on it, but forget to resume them */
    while (!list_empty(&c->waiters))
        list_remove(c->waiters.next);
#else
    list_splice(&c->r->ready, &c->waiters);
#endif
    list_remove(&c->wait_link);
    c->blocked = false;
    set_reading(c, false);
    c->state = QUITTING;
}

/* Close c now, whatever it had queued. Safe to call more than once. c stays allocated, on
 * r->closing, until core_next_action hands out its CORE_CLOSE. */
static void conn_close(struct conn *c, enum core_close_reason reason)
{
    struct core *r = c->r;
    if (c->state == CLOSED)
        return;
    retire(c);
    if (c->id != 0)
        r->clients--;
    c->state = CLOSED;
    c->reason = reason;
    drop_queue(c);
    r->by_key[c->key] = NULL;
    list_remove(&c->todo_link);
    list_remove(&c->deadline_link);
    list_push(&r->closing, &c->todo_link);
}

/* Close c once the socket has taken what is queued for it (its last error frame). */
static void conn_quit(struct conn *c)
{
    retire(c);
    if (queued(c) == 0)
        conn_close(c, CORE_CLOSE_TOO_LONG);
}

/* Keep p[0, len) for later. Running out of memory closes c. */
static void keep(struct conn *c, const uint8_t *p, size_t len)
{
    if (len == 0 || c->state != OPEN)
        return; /* nothing to keep, or nobody to route it for */
    if (!inbuf_keep(&c->in, p, len))
        conn_close(c, CORE_CLOSE_NO_MEMORY);
}

/* An empty buffer is freed, so an idle client, or one whose frames arrive whole, holds no input
 * memory; a client no longer OPEN is routed no more, and what it kept is discarded. */
static void trim_kept(struct conn *c)
{
    if (inbuf_empty(&c->in) || c->state != OPEN)
        inbuf_free(&c->in);
}

/* s has a frame for d, whose queue is full: stop reading s, keeping the frame, until d drains. */
static void block(struct conn *s, struct conn *d)
{
    set_reading(s, false);
    s->blocked = true;
    list_push(&d->waiters, &s->wait_link);
}

/* s's destination drained or left: route the frames s kept, then, unless one must wait again,
 * read from s again. */
static void resume(struct conn *s)
{
    list_remove(&s->wait_link);
    s->blocked = false;
    route_kept(s);
    trim_kept(s);
    if (s->state == OPEN && !s->blocked)
        set_reading(s, true);
}

/* Would len more bytes take q's queue past max_pending? One frame always fits an empty queue,
 * however long: so a queue holds at most max_pending bytes, or one longer frame. */
static bool no_room(const struct conn *q, size_t len)
{
    return pending(q) > 0 && pending(q) + len > q->r->cfg.max_pending;
}

/*
 * Queue frame f from s for its destination. If the queue it needs has no room, block s and
 * return false: the frame stays in s's buffer. A frame for an unknown destination is dropped
 * and counted, and turns into an error frame for its sender, so that one needs room in the
 * sender's own queue. A frame that goes on gets its work_us here, once.
 */
static bool route(struct conn *s, const struct frame *f)
{
    struct core *r = s->r;
    struct conn *d = conn_table_get(&r->conns, f->dest);
    struct conn *q = d ? d : s;
    if ((d || r->cfg.error_frames) && no_room(q, d ? f->body_len : PROTO_ERROR_FRAME_MAX)) {
        block(s, q);
        return false;
    }
    if (r->cfg.work_us > 0) {
        work_do(f->body, f->body_len, r->cfg.work_us);
        r->stats.frames_worked++;
    }
    if (d) {
        enqueue(d, s->id, f->body, f->body_len);
        return true;
    }
    r->stats.frames_dropped++;
    send_error(s, "unknown destination %" PRIu32, f->dest);
    return true;
}

/* Route the complete frames in p[0, len) that c sent, in order, until none is left or one must
 * wait. A payload over max_message: "message too long", and c quits once that is written.
 * Returns the bytes routed; the caller keeps the rest. */
static size_t route_frames(struct conn *c, const uint8_t *p, size_t len)
{
    size_t done = 0;
    struct frame f;
    while (c->state == OPEN && !c->blocked) {
        ssize_t n = frame_parse(p + done, len - done, c->r->cfg.max_message, &f);
        if (n == FRAME_NEED_MORE)
            break;
        if (n == FRAME_TOO_LONG) {
            send_error(c, "message too long");
            conn_quit(c);
            break;
        }
        if (route(c, &f))
            done += (size_t)n;
    }
    return done;
}

/* Route the frames c kept in its own buffer. */
static void route_kept(struct conn *c)
{
    c->in.start += route_frames(c, c->in.bytes + c->in.start, c->in.end - c->in.start);
}

/* c's queue shrank. A quitting client closes once it is empty. Otherwise, below half its
 * limit, the senders blocked on it become ready. */
static void after_write(struct conn *c)
{
    if (c->state == QUITTING && queued(c) == 0)
        conn_close(c, CORE_CLOSE_TOO_LONG);
    else if (2 * pending(c) < c->r->cfg.max_pending)
        list_splice(&c->r->ready, &c->waiters);
}

/* The end of every event: resume the senders whose destination drained or left. Each resume
 * moves bytes from a sender's buffer into queues, which only writes empty, so this ends. */
static void finish_event(struct core *r)
{
    while (!list_empty(&r->ready))
        resume(list_entry(r->ready.next, struct conn, wait_link));
}

/* ---- Events ---- */

static struct conn *conn_new(struct core *r, int key)
{
    if ((size_t)key >= r->nkeys) {
        size_t n = r->nkeys ? r->nkeys : 64;
        while (n <= (size_t)key)
            n *= 2;
        struct conn **by_key = realloc(r->by_key, n * sizeof *by_key);
        if (!by_key)
            return NULL;
        memset(by_key + r->nkeys, 0, (n - r->nkeys) * sizeof *by_key);
        r->by_key = by_key;
#if PLANT == 3
        r->leftover = realloc(r->leftover, n * sizeof *r->leftover);
        memset(r->leftover + r->nkeys, 0, (n - r->nkeys) * sizeof *r->leftover);
#endif
        r->nkeys = n;
    }
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->r = r;
    c->key = key;
#if PLANT == 3 /* the bug: a key's state outlives its client: the next one inherits its input */
    c->in = r->leftover[key];
    r->leftover[key] = (struct inbuf){0};
#endif
    list_init(&c->wait_link);
    list_init(&c->waiters);
    list_init(&c->todo_link);
    list_init(&c->deadline_link);
    r->by_key[key] = c;
    return c;
}

uint32_t core_connected(struct core *r, int key, int64_t now_ms)
{
    advance(r, now_ms);
    if (key < 0 || lookup(r, key))
        return 0; /* not a key the core can take: the caller broke the contract */
    struct conn *c = conn_new(r, key);
    if (!c) {
        r->orphan_key = key;
        return 0;
    }
    uint32_t id;
    if (r->clients >= r->cfg.max_clients || !ids_next(&r->cfg.ids, &id) ||
        !conn_table_put(&r->conns, id, c)) {
        /* Turned away: one try at "server full", then closed (core_written), so that it never
         * holds a descriptor for long. */
        c->state = REFUSED;
        if (!r->cfg.error_frames) {
            conn_close(c, CORE_CLOSE_FULL);
            return 0;
        }
        uint8_t frame[PROTO_ERROR_FRAME_MAX];
        enqueue(c, 0, frame, proto_error_frame(frame, "server full"));
        return 0;
    }
    c->id = id;
    c->state = OPEN;
    c->reading = c->reading_told = true;
    r->clients++;
    r->stats.clients_served++;
    uint8_t wire[PROTO_ID_LEN];
    frame_put_u32(wire, id);
    enqueue(c, 0, wire, sizeof wire); /* first in its queue, so the first bytes it receives */
    return id;
}

/*
 * The bytes c kept, if any, are the start of one frame: the new bytes first finish that one,
 * which is routed from c->in. The frames after it are routed straight from the caller's buffer,
 * and what is left (the start of the next frame, or frames that wait with c blocked) is kept.
 */
void core_received(struct core *r, int key, const uint8_t *p, size_t len, int64_t now_ms)
{
    advance(r, now_ms);
    struct conn *c = lookup(r, key);
    if (!c || c->state != OPEN || len == 0)
        return; /* a client sent away: what it still sends is discarded */
    if (c->blocked) {
        keep(c, p, len); /* read after CORE_STOP_READING: it waits behind the blocked frame */
        return;
    }
    size_t n;
    if (!inbuf_empty(&c->in)) {
        n = inbuf_frame_rest(&c->in, p, len, r->cfg.max_message);
        keep(c, p, n);
        p += n;
        len -= n;
#if PLANT == 2 /* the bug: route the frames in the new bytes first, then the one completed */
        if (!c->blocked) {
            n = route_frames(c, p, len);
            p += n;
            len -= n;
        }
#endif
        route_kept(c);
    }
    if (inbuf_empty(&c->in)) {
        n = route_frames(c, p, len);
        p += n;
        len -= n;
    }
    keep(c, p, len);
    trim_kept(c);
    finish_event(r);
}

void core_written(struct core *r, int key, size_t n, int64_t now_ms)
{
    advance(r, now_ms);
    struct conn *c = lookup(r, key);
    if (!c || !c->write_offered)
        return;
    c->write_offered = false;
    if (n > c->offered)
        n = c->offered; /* more than it was given: count what it was given */
    if (n < c->offered)
        c->socket_full = true;
#if PLANT == 4
    c->left = c->offered - n;
#endif
    if (c->state == REFUSED) {
        if (n == c->offered)
            r->stats.error_frames++;
        conn_close(c, CORE_CLOSE_FULL);
        return;
    }
    if (n > 0) {
        c->done += n;
        list_remove(&c->deadline_link); /* progress: watch() puts it at the tail, from now */
        settle_written(c);
        watch(c);
        after_write(c);
    }
    finish_event(r);
}

void core_writable(struct core *r, int key, int64_t now_ms)
{
    advance(r, now_ms);
    struct conn *c = lookup(r, key);
    if (!c || !c->socket_full)
        return;
    c->socket_full = false;
    mark_todo(c);
}

void core_closed(struct core *r, int key, int64_t now_ms)
{
    advance(r, now_ms);
    struct conn *c = lookup(r, key);
    if (!c)
        return;
    conn_close(c, CORE_CLOSE_PEER);
    finish_event(r);
}

/*
 * A slow consumer: its socket took no byte for the write timeout. Like NATS's write deadline,
 * it is disconnected, whatever it had queued is dropped and counted, and every sender that loses
 * a frame or waits on it is told, and goes on.
 */
static void evict(struct conn *c)
{
    c->r->stats.slow_consumers++;
    c->slow = true;
    for (struct list *n = c->waiters.next; n != &c->waiters; n = n->next)
        tell_departed(list_entry(n, struct conn, wait_link), c);
    conn_close(c, CORE_CLOSE_SLOW);
}

int64_t core_tick(struct core *r, int64_t now_ms)
{
    advance(r, now_ms);
    int64_t timeout = r->cfg.write_timeout_ms;
    while (!list_empty(&r->deadlines)) {
        struct conn *c = list_entry(r->deadlines.next, struct conn, deadline_link);
        if (c->progress_ms + timeout > r->now)
            break;
        evict(c);
    }
    finish_event(r);
    if (list_empty(&r->deadlines))
        return -1;
    return list_entry(r->deadlines.next, struct conn, deadline_link)->progress_ms + timeout;
}

void core_stop(struct core *r)
{
    for (size_t k = 0; k < r->nkeys; k++)
        if (r->by_key[k])
            conn_close(r->by_key[k], CORE_CLOSE_PEER);
}

/* ---- Actions ---- */

static void conn_free(struct conn *c)
{
#if PLANT == 3
    if (c->r->leftover) {
        inbuf_free(&c->r->leftover[c->key]);
        c->r->leftover[c->key] = c->in;
        c->in = (struct inbuf){0};
    }
#endif
    inbuf_free(&c->in);
    outbuf_free(&c->out);
    free(c);
}

static bool write_due(const struct conn *c)
{
    return queued(c) > 0 && !c->write_offered && !c->socket_full;
}

bool core_next_action(struct core *r, struct core_action *a)
{
    if (r->orphan_key >= 0) {
        *a = (struct core_action){
            .kind = CORE_CLOSE, .key = r->orphan_key, .reason = CORE_CLOSE_NO_MEMORY};
        r->orphan_key = -1;
        return true;
    }
    if (!list_empty(&r->closing)) {
        struct conn *c = list_entry(r->closing.next, struct conn, todo_link);
        *a = (struct core_action){
            .kind = CORE_CLOSE, .key = c->key, .id = c->id, .reason = c->reason};
        list_remove(&c->todo_link);
        conn_free(c);
        return true;
    }
    while (!list_empty(&r->todo)) {
        struct conn *c = list_entry(r->todo.next, struct conn, todo_link);
        *a = (struct core_action){.key = c->key, .id = c->id};
        if (c->reading != c->reading_told) {
            c->reading_told = c->reading;
            a->kind = c->reading ? CORE_START_READING : CORE_STOP_READING;
            return true; /* c stays on todo: it may have a write as well */
        }
        list_remove(&c->todo_link);
        if (write_due(c)) {
            c->write_offered = true;
            c->offered = queued(c);
            a->kind = CORE_WRITE;
            a->bytes = c->out.bytes + c->done;
            a->len = c->offered;
            return true;
        }
    }
    return false;
}

/* ---- Life and introspection ---- */

struct core *core_new(const struct core_config *cfg)
{
    struct core *r = calloc(1, sizeof *r);
    if (!r)
        return NULL;
    r->cfg = *cfg;
    r->orphan_key = -1;
    list_init(&r->todo);
    list_init(&r->ready);
    list_init(&r->deadlines);
    list_init(&r->closing);
    if (conn_table_init(&r->conns, cfg->max_clients) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

void core_free(struct core *r)
{
    if (!r)
        return;
    for (size_t k = 0; k < r->nkeys; k++)
        if (r->by_key[k])
            conn_free(r->by_key[k]);
    while (!list_empty(&r->closing)) {
        struct conn *c = list_entry(r->closing.next, struct conn, todo_link);
        list_remove(&c->todo_link);
        conn_free(c);
    }
#if PLANT == 3
    for (size_t k = 0; k < r->nkeys; k++)
        inbuf_free(&r->leftover[k]);
    free(r->leftover);
#endif
    free(r->by_key);
    conn_table_free(&r->conns);
    free(r);
}

const struct stats *core_stats(const struct core *r)
{
    return &r->stats;
}

static size_t conn_memory(const struct conn *c)
{
    return sizeof *c + c->in.cap + c->out.cap + c->out.frames_cap * sizeof *c->out.frames;
}

size_t core_memory(const struct core *r)
{
    size_t bytes =
        sizeof *r + r->nkeys * sizeof *r->by_key + (r->conns.mask + 1) * sizeof *r->conns.slots;
    for (size_t k = 0; k < r->nkeys; k++)
        if (r->by_key[k])
            bytes += conn_memory(r->by_key[k]);
    for (struct list *n = r->closing.next; n != &r->closing; n = n->next)
        bytes += conn_memory(list_entry(n, struct conn, todo_link));
    return bytes;
}
