/*
 * router-reactor - the message router as one libuv event loop.
 *
 * Pattern: one thread runs one loop, and the loop owns everything - the listener, the
 * connection table, every buffer, the counters - in one struct router. No socket ever blocks;
 * the loop calls back when one is ready, and each callback changes the state directly.
 * Lesson: callbacks run one after another, never two at once, so no state is ever seen half
 * updated and there is nothing to lock. A read callback forwards a frame by appending it to
 * the destination's queue; the queue is written later, all at once, before the loop sleeps.
 * Flaw: it uses one core. The router is no faster than one thread copying bytes, and any
 * callback that runs long (a slow write to a log, a costly computation) delays every client.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>

#include "conn_table.h"
#include "frame.h"
#include "ids.h"
#include "inbuf.h"
#include "list.h"
#include "log.h"
#include "options.h"
#include "outbuf.h"
#include "proto.h"
#include "server.h"
#include "stats.h"
#include "uv_server.h"
#include "work.h"

static const struct router_info info = {
    .name = "router-reactor",
    .summary = "One thread, one libuv event loop: callbacks own all the state, nothing is locked.",
    .own_signals = true,
};

/* Memory goes to the connections that have traffic: an idle one holds no input buffer and only a
 * small output buffer (it was sent its ID), so ten thousand of them cost little. */
#define READ_SIZE (64 * 1024) /* the loop's one read buffer */

/* slide: reactor-state */
struct router {
    uv_loop_t loop;
    struct uv_server srv;     /* the listener, signals, timers (common/uv_server.h) */
    uv_prepare_t before_poll; /* runs once a turn, just before the loop waits */
    struct conn_table conns;  /* ID -> struct conn, for OPEN conns */
    size_t clients;           /* given an ID and not closed yet: what --max-clients limits */
    struct id_allocator ids;
    struct list all;   /* every conn, for shutdown */
    struct list dirty; /* conns with bytes to write this turn */
    struct list ready; /* blocked senders whose destination drained */
    struct options opt;
    struct stats stats;
    uint8_t read_buf[READ_SIZE]; /* every read lands here, see on_alloc */
};
/* end slide */

enum conn_state {
    OPEN,     /* in the table under its ID: read from and written to */
    QUITTING, /* out of the table, not read: writes what it has queued, then closes */
    CLOSING,  /* uv_close called; on_close frees it */
};

/*
 * Output is double-buffered. New frames always go to `out`. At the end of a turn flush() writes
 * `out` with uv_try_write; if the kernel takes only part, the buffers swap: `sent` holds the
 * rest for one uv_write, which owns it until on_write, while `out` collects the next frames.
 */
struct conn {
    uv_tcp_t tcp; /* first, so a uv handle pointer is a conn pointer */
    struct router *r;
    uint32_t id; /* 0 for a client turned away as "server full" */
    enum conn_state state;

    struct inbuf in; /* bytes not routed yet: a partial frame, or frames that wait */

    struct outbuf out;  /* appended to during the turn */
    struct outbuf sent; /* non-empty exactly while a uv_write of it is in flight */
    size_t sent_done;   /* bytes of sent that uv_try_write already gave the kernel */
    uv_write_t write_req;

    bool blocked;           /* not reading: a frame waits for room in a full queue */
    struct list wait_link;  /* in the waiters of the conn it waits on, or in r->ready */
    struct list waiters;    /* senders blocked on this conn's queue */
    struct list dirty_link; /* in r->dirty while out has bytes to write */
    struct list all_link;   /* in r->all until freed */
    uint32_t told_about;    /* the last departed destination this sender was told about */

    struct write_watch watch; /* while sent has a uv_write in flight: --write-timeout */
    bool slow;                /* disconnected as a slow consumer */
};

/* Bytes queued for c that the kernel has not taken yet: what --max-pending limits. */
static size_t queued(const struct conn *c)
{
    return c->out.len + c->sent.len - c->sent_done;
}

static bool over_limit(const struct conn *c)
{
    return queued(c) >= c->r->opt.max_pending;
}

static void conn_close(struct conn *c);
static size_t route_frames(struct conn *c, const uint8_t *p, size_t len);
static void route_kept(struct conn *c);

/* Put c on the list that on_before_poll writes; a conn with a write in flight waits for
 * on_write instead. */
static void mark_dirty(struct conn *c)
{
    if (c->state != CLOSING && c->out.len > 0 && c->sent.len == 0 && !list_linked(&c->dirty_link))
        list_push(&c->r->dirty, &c->dirty_link);
}

/* Queue bytes for c. Running out of memory is treated like a failed socket: c is closed. */
static void enqueue(struct conn *c, uint32_t sender, const uint8_t *bytes, size_t len)
{
    if (!outbuf_append(&c->out, sender, bytes, len)) {
        log_warn("client %" PRIu32 ": out of memory for its queue", c->id);
        if (sender != 0)
            c->r->stats.frames_dropped++;
        conn_close(c);
        return;
    }
    mark_dirty(c);
}

static void send_error(struct conn *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void send_error(struct conn *c, const char *fmt, ...)
{
    if (!c->r->opt.error_frames || c->state == CLOSING)
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

/*
 * A write of o to d finished or failed: its first `written` bytes reached the kernel and the
 * rest never will. This is the one place frames are counted, so each is counted exactly once:
 * forwarded if all its bytes were written, dropped otherwise (even if part of it went out).
 * Each sender of a dropped frame that is still connected gets one error frame per departed
 * destination - unless its own queue is full: it is not reading, and must not grow it.
 */
static void settle(struct conn *d, struct outbuf *o, size_t written)
{
    struct router *r = d->r;
    size_t end = 0;
    for (size_t i = 0; i < o->nframes; i++) {
        struct queued_frame q = o->frames[i];
        end += q.len;
        if (q.sender == 0)
            continue;
        if (end <= written) {
            r->stats.frames_forwarded++;
            r->stats.bytes_forwarded += q.len;
            continue;
        }
        r->stats.frames_dropped++;
        struct conn *s = conn_table_get(&r->conns, q.sender);
        if (s)
            tell_departed(s, d);
    }
    outbuf_clear(o);
}

/*
 * Take c out of routing: its ID stops resolving, it is read no more, and the senders blocked on
 * it go on (on_before_poll resumes them; their next frame for it gets "unknown destination").
 */
static void retire(struct conn *c)
{
    if (c->state != OPEN)
        return;
    conn_table_remove(&c->r->conns, c->id);
    list_splice(&c->r->ready, &c->waiters);
    list_remove(&c->wait_link);
    c->blocked = false;
    (void)uv_read_stop((uv_stream_t *)&c->tcp); /* cannot fail on a TCP handle */
    c->state = QUITTING;
}

/* The last callback for a conn: every uv_write of it has called back already. */
static void on_close(uv_handle_t *handle)
{
    struct conn *c = (struct conn *)handle;
    if (c->id != 0)
        c->r->clients--;
    settle(c, &c->sent, c->sent_done); /* a write that failed or was cancelled */
    settle(c, &c->out, 0);
    list_remove(&c->all_link);
    write_watch_stop(&c->watch);
    inbuf_free(&c->in);
    outbuf_free(&c->out);
    outbuf_free(&c->sent);
    free(c);
}

/* Close c now, whatever it had queued. Safe to call more than once and from any callback:
 * c stays allocated until on_close, which libuv runs after the current callback returns. */
static void conn_close(struct conn *c)
{
    if (c->state == CLOSING)
        return;
    if (c->id != 0)
        log_debug("client %" PRIu32 " disconnected", c->id);
    retire(c);
    list_remove(&c->dirty_link);
    c->state = CLOSING;
    uv_close((uv_handle_t *)&c->tcp, on_close);
}

/* Close c once the kernel has taken what is queued for it (its last error frame). */
static void conn_quit(struct conn *c)
{
    retire(c);
    if (queued(c) == 0)
        conn_close(c);
}

/*
 * Input. A conn reads into the loop's one buffer, and its frames are routed from there. Only what
 * cannot be routed yet is copied into the conn's own buffer, c->in: the start of a frame that
 * has not all arrived, or, while c is blocked, the frames after the one that waits.
 */

/* Keep p[0, len) for later. Running out of memory closes c, like a failed read. */
static void keep(struct conn *c, const uint8_t *p, size_t len)
{
    if (len == 0 || c->state != OPEN)
        return; /* nothing to keep, or nobody to route it for */
    if (!inbuf_keep(&c->in, p, len)) {
        log_warn("client %" PRIu32 ": out of memory for its input", c->id);
        conn_close(c);
    }
}

/*
 * Called once a read or a resume is done with c. An empty buffer is freed, so a connection that
 * is idle, or whose frames arrive whole, holds no input memory. One that keeps receiving frames
 * split across reads is never empty at this point (each read completes one frame and leaves the
 * start of the next), so it keeps its buffer and does not allocate per read. A conn that is no
 * longer OPEN is routed no more, and what it kept is discarded.
 */
static void trim_kept(struct conn *c)
{
    if (inbuf_empty(&c->in) || c->state != OPEN)
        inbuf_free(&c->in);
}

/*
 * libuv asks where to put the next read. The loop runs one callback at a time, and on_read has
 * routed or kept every byte of a read before it returns, so one buffer serves every read of
 * every conn, and an idle conn owns no input memory. (So on_alloc never fails, and on_read
 * never sees UV_ENOBUFS.)
 */
static void on_alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = (struct conn *)handle;
    (void)suggested;
    *buf = uv_buf_init((char *)c->r->read_buf, sizeof c->r->read_buf);
}

/*
 * The bytes c kept, if any, are the start of one frame: the new bytes first finish that one,
 * which is routed from c->in. The frames after it are routed straight from the read buffer, and
 * what is left (the start of the next frame, or frames that wait with c blocked) is kept.
 */
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = (struct conn *)stream;
    if (nread < 0) {
        if (nread != UV_EOF)
            log_debug("client %" PRIu32 ": read: %s", c->id, uv_strerror((int)nread));
        conn_close(c);
        return;
    }
    if (nread == 0)
        return; /* nothing new (EAGAIN) */
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t len = (size_t)nread, n;
    if (!inbuf_empty(&c->in)) {
        n = inbuf_frame_rest(&c->in, p, len, c->r->opt.max_message);
        keep(c, p, n);
        p += n;
        len -= n;
        route_kept(c);
    }
    if (inbuf_empty(&c->in)) {
        n = route_frames(c, p, len);
        p += n;
        len -= n;
    }
    keep(c, p, len);
    trim_kept(c);
}

static void start_reading(struct conn *c)
{
    int rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0) {
        log_warn("client %" PRIu32 ": uv_read_start: %s", c->id, uv_strerror(rc));
        conn_close(c);
    }
}

/* slide: reactor-backpressure */
/* s has a frame for d, whose queue is full: stop reading s, keeping the frame, until d drains. */
static void block(struct conn *s, struct conn *d)
{
    (void)uv_read_stop((uv_stream_t *)&s->tcp); /* cannot fail on a TCP handle */
    s->blocked = true;
    list_push(&d->waiters, &s->wait_link);
}

/* on_before_poll calls this once s's destination drained: route the frames s kept, then,
 * unless one must wait again, read from s again. */
static void resume(struct conn *s)
{
    list_remove(&s->wait_link);
    s->blocked = false;
    route_kept(s);
    trim_kept(s);
    if (s->state == OPEN && !s->blocked)
        start_reading(s);
}
/* end slide */

/* Would len more bytes take q's queue past --max-pending? One frame always fits an empty
 * queue, however long: so a queue holds at most --max-pending bytes, or one longer frame. */
static bool no_room(const struct conn *q, size_t len)
{
    return queued(q) > 0 && queued(q) + len > q->r->opt.max_pending;
}

/*
 * Queue frame f from s for its destination. If the queue it needs has no room, block s and
 * return false: the frame stays in s's buffer. A frame for an unknown destination is dropped
 * and counted, and turns into an error frame for its sender, so that one needs room in the
 * sender's own queue. A frame that goes on gets its --work-us here, on the loop, once.
 */
static bool route(struct conn *s, const struct frame *f)
{
    struct router *r = s->r;
    struct conn *d = conn_table_get(&r->conns, f->dest);
    struct conn *q = d ? d : s;
    if ((d || r->opt.error_frames) && no_room(q, d ? f->body_len : PROTO_ERROR_FRAME_MAX)) {
        block(s, q);
        return false;
    }
    if (r->opt.work_us > 0) {
        work_do(f->body, f->body_len, r->opt.work_us);
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

/* A payload longer than --max-message: tell the sender and hang up once that is written. */
static void reject_too_long(struct conn *c)
{
    log_debug("client %" PRIu32 ": message too long", c->id);
    send_error(c, "message too long");
    conn_quit(c);
}

/* slide: reactor-read */
/* Route the complete frames in p[0, len) that c sent, in order, until none is left or one must
 * wait. Returns the bytes routed; the caller keeps the rest. */
static size_t route_frames(struct conn *c, const uint8_t *p, size_t len)
{
    size_t done = 0;
    struct frame f;
    while (c->state == OPEN && !c->blocked) {
        ssize_t n = frame_parse(p + done, len - done, c->r->opt.max_message, &f);
        if (n == FRAME_NEED_MORE)
            break;
        if (n == FRAME_TOO_LONG) {
            reject_too_long(c);
            break;
        }
        if (route(c, &f))
            done += (size_t)n;
    }
    return done;
}
/* end slide */

/* Route the frames c kept in its own buffer. */
static void route_kept(struct conn *c)
{
    c->in.start += route_frames(c, c->in.bytes + c->in.start, c->in.end - c->in.start);
}

/* c's queue shrank. A quitting conn closes once it is empty. Otherwise, below half its limit,
 * the senders blocked on it become ready, and on_before_poll resumes them. */
static void after_write(struct conn *c)
{
    if (c->state == QUITTING && queued(c) == 0)
        conn_close(c);
    else if (2 * queued(c) < c->r->opt.max_pending)
        list_splice(&c->r->ready, &c->waiters);
}

static void on_write(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    write_watch_stop(&c->watch);
    if (status != 0) {
        if (status != UV_ECANCELED)
            log_debug("client %" PRIu32 ": write: %s", c->id, uv_strerror(status));
        conn_close(c); /* on_close counts what sent still holds as dropped */
        return;
    }
    settle(c, &c->sent, c->sent.len);
    c->sent_done = 0;
    if (c->state == CLOSING)
        return;
    mark_dirty(c); /* frames queued meanwhile go out this turn */
    after_write(c);
}

/* The kernel took only part of out: swap the buffers and let one uv_write finish the rest. */
static int write_rest(struct conn *c, size_t done)
{
    struct outbuf t = c->sent;
    c->sent = c->out;
    c->out = t;
    c->sent_done = done;
    uv_buf_t buf = {.base = (char *)c->sent.bytes + done, .len = c->sent.len - done};
    int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1, on_write);
    if (rc == 0)
        write_watch_start(&c->r->srv, &c->watch, buf.len);
    return rc;
}

/* slide: reactor-flush */
/* Write everything queued for c this turn: one system call, however many frames. */
static void flush(struct conn *c)
{
    list_remove(&c->dirty_link);
    if (c->state == CLOSING || c->sent.len > 0 || c->out.len == 0)
        return;
    uv_buf_t buf = {.base = (char *)c->out.bytes, .len = c->out.len};
    int n = uv_try_write((uv_stream_t *)&c->tcp, &buf, 1);
    if (n == UV_EAGAIN)
        n = 0; /* the socket's buffer is full: uv_write waits until it has room */
    if (n >= 0 && (size_t)n == c->out.len)
        settle(c, &c->out, c->out.len);
    else if (n < 0 || write_rest(c, (size_t)n) != 0) { /* the socket failed */
        conn_close(c);
        return;
    }
    after_write(c);
}
/* end slide */

/*
 * A slow consumer: its socket took no byte for --write-timeout. Like NATS's write deadline, it
 * is disconnected, whatever it had queued is dropped and counted, and every sender that loses
 * a frame or waits on it is told, and goes on.
 */
static void evict(void *data, struct write_watch *w)
{
    struct router *r = data;
    struct conn *c = list_entry(w, struct conn, watch);
    r->stats.slow_consumers++;
    log_info("client %" PRIu32 ": took no bytes for %.1f s: disconnected as a slow consumer", c->id,
             r->opt.write_timeout_ms / 1000.0);
    c->slow = true;
    for (struct list *n = c->waiters.next; n != &c->waiters; n = n->next)
        tell_departed(list_entry(n, struct conn, wait_link), c);
    conn_close(c); /* on_close settles its queue: the senders of those frames are told too */
}

/*
 * Runs once a turn, after that turn's callbacks and just before the loop waits for I/O: resume
 * the senders whose destination drained, and flush every queue that got frames. Each can make
 * work for the other (a resumed sender fills queues; a flush drains one), so loop until both
 * lists are empty. That ends: every round moves bytes on, from a sender's buffer into a queue or
 * from a queue into the kernel, and both hold only so much.
 */
static void on_before_poll(uv_prepare_t *prepare)
{
    struct router *r = prepare->data;
    for (;;) {
        if (!list_empty(&r->ready))
            resume(list_entry(r->ready.next, struct conn, wait_link));
        else if (!list_empty(&r->dirty))
            flush(list_entry(r->dirty.next, struct conn, dirty_link));
        else
            return;
    }
}

static struct conn *conn_new(struct router *r)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        log_fatal("out of memory");
    int rc = uv_tcp_init(&r->loop, &c->tcp);
    if (rc != 0)
        log_fatal("uv_tcp_init: %s", uv_strerror(rc));
    c->r = r;
    c->state = QUITTING; /* until it has an ID */
    c->write_req.data = c;
    list_init(&c->wait_link);
    list_init(&c->waiters);
    list_init(&c->dirty_link);
    write_watch_init(&c->watch, (uv_stream_t *)&c->tcp);
    list_push(&r->all, &c->all_link);
    return c;
}

/* A client is waiting in the listen queue. */
static void on_connection(uv_stream_t *listener, int status)
{
    struct router *r = listener->data;
    if (status < 0) {
        log_warn("accept: %s", uv_strerror(status));
        return;
    }
    struct conn *c = conn_new(r);
    int rc = uv_accept(listener, (uv_stream_t *)&c->tcp);
    if (rc == 0)
        rc = uv_tcp_nodelay(&c->tcp, 1);
    if (rc != 0) {
        log_warn("accept: %s", uv_strerror(rc));
        conn_close(c);
        return;
    }
    /* A client that quits still holds its socket until its last error frame is written, so it
     * counts until on_close: the limit bounds the descriptors clients hold, not just IDs. */
    if (r->clients >= r->opt.max_clients || !ids_next(&r->ids, &c->id) ||
        !conn_table_put(&r->conns, c->id, c)) {
        c->id = 0; /* over --max-clients: told, and closed now (uv_server.h) */
        if (uv_server_tell_full(&r->srv, &c->tcp))
            r->stats.error_frames++;
        conn_close(c);
        return;
    }
    c->state = OPEN;
    r->clients++;
    r->stats.clients_served++;
    log_debug("client %" PRIu32 " connected", c->id);
    uint8_t id[PROTO_ID_LEN];
    frame_put_u32(id, c->id);
    enqueue(c, 0, id, sizeof id); /* first in its queue, so the first bytes it receives */
    start_reading(c);
}

/* SIGINT or SIGTERM: close every handle. uv_run returns once the last close callback ran. */
static void on_stop(void *data)
{
    struct router *r = data;
    uv_server_close(&r->srv);
    uv_close((uv_handle_t *)&r->before_poll, NULL);
    for (struct list *n = r->all.next; n != &r->all; n = n->next)
        conn_close(list_entry(n, struct conn, all_link));
}

static void print_stats(void *data)
{
    struct router *r = data;
    server_print_stats(&info, &r->stats);
}

static void router_start(struct router *r, int listen_fd)
{
    if (conn_table_init(&r->conns, r->opt.max_clients) != 0)
        log_fatal("out of memory");
    ids_init(&r->ids, r->opt.ids);
    list_init(&r->all);
    list_init(&r->dirty);
    list_init(&r->ready);
    int rc = uv_loop_init(&r->loop);
    if (rc == 0)
        rc = uv_prepare_init(&r->loop, &r->before_poll);
    if (rc == 0)
        rc = uv_prepare_start(&r->before_poll, on_before_poll);
    if (rc != 0)
        log_fatal("libuv: %s", uv_strerror(rc));
    r->before_poll.data = r;
    r->srv = (struct uv_server){.loop = &r->loop,
                                .opt = &r->opt,
                                .data = r,
                                .on_connection = on_connection,
                                .on_stop = on_stop,
                                .print_stats = print_stats,
                                .on_stalled = evict};
    uv_server_start(&r->srv, listen_fd, true);
}

int main(int argc, char **argv)
{
    struct router r = {0};
    int listen_fd = server_start(argc, argv, &info, &r.opt);
    router_start(&r, listen_fd);

    int rc = uv_run(&r.loop, UV_RUN_DEFAULT);
    if (rc != 0)
        log_warn("uv_run: handles still active at exit");
    rc = uv_loop_close(&r.loop);
    if (rc != 0)
        log_warn("uv_loop_close: %s", uv_strerror(rc));
    conn_table_free(&r.conns);
    server_finish(&info, &r.stats);
    return 0;
}
