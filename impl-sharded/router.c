/*
 * router-sharded - the message router as one libuv event loop per core, bounded queues between.
 *
 * Pattern: router-reactor, once per core. N threads each run one loop, and each loop owns its
 * share of the clients outright - their sockets, buffers and queued output, its part of the
 * connection table, its counters - in its own struct router, the reactor's. A client's ID says
 * which loop owns it, so a loop routes with no table but its own: a frame for one of its own
 * clients is queued as in the reactor; a frame for another loop's client crosses, in cross(),
 * into the lane to that loop - a bounded queue, one per pair of loops - and that loop writes it
 * as its own. Loops share only the lanes (mailbox.h) and each other's bell, which says "mail";
 * what they must tell each other - new clients, frames, what became of frames - is mail.
 * Lesson: the reactor's ease stays inside each loop (one callback at a time, nothing locked,
 * backpressure by not reading), and now every core works: shard-per-core, as Seastar/ScyllaDB
 * and Redpanda do it, or nginx with its workers.
 * Flaw: a frame for another loop pays a hand-off - a copy into the lane, often a wakeup of that
 * loop through the kernel, a copy out - and the code has two kinds of delivery. A local frame
 * is queued at once; a remote one goes as mail, and what the reactor learns by looking (is the
 * destination there? is its queue full?) comes back later as more mail: eight kinds of it,
 * each a small protocol to get right.
 *
 * Accepting: loop 0 owns the one listening socket and hands each new client to the loop that
 * owns the ID it drew (MAIL_CLIENT). One acceptor spreads clients evenly, round-robin
 * (SO_REUSEPORT listeners would let the kernel hash them, so loops fill unevenly, and --port 0
 * would need every listener on the one port); it draws every ID from one allocator; and it
 * admits every client, so --max-clients holds across loops with no shared counter: an owner
 * tells loop 0 when a client leaves (MAIL_LEFT). Over the limit, loop 0 says "server full" and
 * closes the socket at once, as the reactor does.
 *
 * IDs: loop k of N owns the IDs that are k mod N. ids.h draws them as for every router, and
 * loop 0 draws until it gets one of the loop whose turn it is: sequential IDs (1, 2, 3...) come
 * in turn by themselves; random ones (ids.h's keyed permutation) take N draws on average, and
 * stay unique, never 0, and unpredictable but for their remainder.
 *
 * The bound between loops: the frames in one lane, put and not yet taken, take at most
 * --max-pending bytes (or one longer frame); a sender whose frame does not fit waits, not read,
 * like a sender to a full queue. The consumer takes all a lane holds each time it looks and
 * never refuses a frame, so one stalled client cannot stall a lane. The other mail answers
 * something and is bounded by it: a bounce per frame at most, a FULL and a ROOM per client and
 * loop, a CLIENT and a LEFT per client.
 *
 * Backpressure across loops: a loop cannot look at another loop's queues, so it is told. When a
 * client's queue reaches --max-pending with frames from loop k, its loop tells loop k once
 * (MAIL_FULL); loop k then holds every sender with a frame for that client, not reading it,
 * until told the queue drained below half or the client left (MAIL_ROOM). Frames already on
 * their way are taken, so a queue can pass --max-pending by what loop k sent before it heard:
 * about two lanes' worth at most, since a loop sends its answers before it makes room in a
 * lane (take_mail). Memory stays bounded, and bystanders never wait.
 *
 * Errors across loops: the destination's loop knows whether it is there, the sender's loop owns
 * the sender. A frame for a destination that is gone bounces back (MAIL_BOUNCE), and so do
 * frames dropped with a departing destination; the sender's loop then sends the very error
 * frame the reactor would have ("unknown destination N"; "destination N disconnected" or "too
 * slow, frames dropped", once per destination). Since any frame sent across may come back as
 * an error frame, a sender whose own queue is full waits before sending one.
 *
 * Counters: each loop keeps its own; loop 0 asks the others for theirs for a --stats-interval
 * line (MAIL_STATS), and main adds them up once every loop has stopped, with the share of
 * frames that crossed loops. Shutdown: SIGINT and SIGTERM reach loop 0 only, which sends
 * MAIL_STOP to the others; each closes its handles (its bell is unreferenced, so uv_run
 * returns), main joins the threads, frees what the lanes still hold (their frames count as
 * dropped), and prints the summary.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "conn_table.h"
#include "frame.h"
#include "ids.h"
#include "inbuf.h"
#include "list.h"
#include "log.h"
#include "mailbox.h"
#include "net.h"
#include "options.h"
#include "outbuf.h"
#include "proto.h"
#include "server.h"
#include "stats.h"
#include "uv_server.h"
#include "work.h"

#define MAX_LOOPS 64  /* a set of loops fits in a uint64_t (struct conn's held_by) */
#define MAIL_ROUNDS 4 /* mail taken in on_before_poll before the loop polls its sockets again */
#define PUBLISH_WORK_US 100 /* --work-us a turn does before it hands its mail over anyway */
#define LOOP_FDS                                                                                   \
    6 /* a loop's descriptors: epoll, libuv's eventfd, signal pipe and spare, its bell */

static unsigned loops_wanted; /* --loops, set by options_parse before any thread exists */

static const char *parse_loops(const char *value)
{
    char *end;
    errno = 0;
    unsigned long n = strtoul(value, &end, 10);
    if (errno || end == value || *end || value[0] == '-' || n < 1 || n > MAX_LOOPS)
        return "--loops wants a number from 1 to 64, got '%s'";
    loops_wanted = (unsigned)n;
    return NULL;
}

static const struct router_option own_options[] = {
    {"loops", "  --loops N          event loops, one thread each (default: the CPUs it may use)",
     parse_loops},
    {0},
};

static const struct router_info info = {
    .name = "router-sharded",
    .summary = "One libuv event loop per core, each owning its clients; bounded queues between.",
    .own_signals = true,
    .options = own_options,
};

/* Memory goes to the connections that have traffic: an idle one holds no input buffer and only a
 * small output buffer (it was sent its ID), so ten thousand of them cost little. */
#define READ_SIZE (64 * 1024) /* the loop's one read buffer */

struct router;

/* Every loop and every lane. main sets it up before any loop runs; it is read-only after. */
struct mesh {
    unsigned n; /* loops */
    struct router *loops[MAX_LOOPS];
    struct lane *lanes; /* lanes[from * n + to]: loop from's mail for loop to */
};

/* One loop: the reactor's struct router, one per loop. Every field is its loop's alone; other
 * loops reach it only through the lanes, and wake it by writing to its bell. */
struct router {
    uv_loop_t loop;
    struct uv_server srv;     /* write watches; on loop 0 signals and the stats timer too */
    uv_prepare_t before_poll; /* runs once a turn, just before the loop waits */
    uv_poll_t bell;           /* bell_fd readable: another loop put mail in a lane to this one */
    uv_tcp_t spare;           /* never used: see router_new */
    int bell_fd;              /* an eventfd; main creates and closes it, any loop writes it */
    atomic_bool asleep; /* the one field other loops read: it may wait in epoll, ring to wake it */
    struct conn_table conns; /* ID -> struct conn, for this loop's OPEN conns */
    struct conn_table holds; /* ID -> struct hold: other loops' clients said to be full */
    struct list lane_waiters[MAX_LOOPS]; /* senders waiting for room in the lane to loop k */
    unsigned index;                      /* loop k owns the IDs that are k mod n */
    const struct mesh *mesh;
    bool stopping;     /* MAIL_STOP came (or the signal, on loop 0) */
    struct list all;   /* every conn, for shutdown */
    struct list dirty; /* conns with bytes to write this turn */
    struct list ready; /* blocked senders whose destination drained */
    struct options opt;
    struct stats stats;
    uint64_t routed, crossed;    /* frames routed, and those of them that crossed to another loop */
    unsigned work_since_publish; /* --work-us done since the mail was last handed over */

    /* loop 0's alone: the acceptor, and the --stats-interval line */
    uv_poll_t accepting;    /* the listening socket, readable */
    uv_timer_t accept_wait; /* out of descriptors: try again in a while */
    int listen_fd;
    bool accept_starved; /* said so once, until an accept succeeds again */
    size_t clients;      /* given an ID and not closed yet, on every loop: --max-clients */
    struct id_allocator ids;
    unsigned turn;               /* the loop the next client goes to */
    struct stats stats_sum;      /* the counters the loops sent so far */
    unsigned stats_due;          /* loops that have not sent theirs yet */
    uint8_t read_buf[READ_SIZE]; /* every read lands here, see on_alloc */
};

/* slide: sharded-mail */
/* What travels in the lanes (mailbox.h): struct mail's kind, and what a, b and the body are. */
enum mail_kind {
    MAIL_CLIENT, /* loop 0 to the owner: a = the new client's ID, b = its socket */
    MAIL_FRAME,  /* a = sender, b = destination, body = the frame: the one kind that is counted */
    MAIL_BOUNCE, /* to the sender's loop: frames of a for b were dropped; why: enum bounce */
    MAIL_FULL,   /* to a sender's loop: b's queue is full, hold its senders */
    MAIL_ROOM,   /* to a loop told MAIL_FULL: b drained, or left (why: 1 if as a slow consumer) */
    MAIL_LEFT,   /* to loop 0: one of the sender's clients closed */
    MAIL_STATS,  /* loop 0 asks (no body); a loop answers with its struct stats */
    MAIL_STOP,   /* loop 0 to the others: SIGINT or SIGTERM, shut down */
};
/* end slide */

enum bounce { BOUNCE_UNKNOWN, BOUNCE_DEPARTED, BOUNCE_SLOW };

/* Another loop's client, full (MAIL_FULL): this loop's senders with a frame for it wait here. */
struct hold {
    struct list waiters;
};

enum conn_state {
    OPEN,     /* in the table under its ID: read from and written to */
    QUITTING, /* out of the table, not read: writes what it has queued, then closes */
    CLOSING,  /* uv_close called; on_close frees it */
};

/*
 * Output is double-buffered. New frames always go to `out`. At the end of a turn flush() writes
 * `out` with uv_try_write; if the kernel takes only part, the buffers swap: `sent` holds the
 * rest for one uv_write, which owns it until on_write, while `out` collects the next frames.
 * A conn and everything in it belong to the loop that owns its ID.
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
    struct list wait_link;  /* in a list of waiters (a conn's, a hold's, a lane's), or r->ready */
    struct list waiters;    /* senders blocked on this conn's queue */
    struct list dirty_link; /* in r->dirty while out has bytes to write */
    struct list all_link;   /* in r->all until freed */
    uint32_t told_about;    /* the last departed destination this sender was told about */
    uint64_t held_by;       /* the loops told MAIL_FULL about it, and not MAIL_ROOM yet */

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

/* ---- Mail ---- */

/* The loop that owns an ID. */
static unsigned owner(const struct router *r, uint32_t id)
{
    return id % r->mesh->n;
}

static struct lane *lane_to(const struct router *r, unsigned k)
{
    return &r->mesh->lanes[r->index * r->mesh->n + k];
}

/* Put mail for loop k; it leaves with the next publish (at the latest, the end of the turn). */
static void post(struct router *r, unsigned k, const struct mail *m, const void *body)
{
    if (!lane_put(lane_to(r, k), m, body, m->kind == MAIL_FRAME))
        log_fatal("out of memory for mail to loop %u", k);
}

/*
 * Ring loop k's bell: one write to its eventfd. (Not uv_async_send, which does the same plus a
 * handshake with the woken loop: that loop spins, then yields, until the sender has left
 * uv_async_send - and when the two threads share a core, the sender is preempted right
 * there, by the thread it woke, and every hand-off costs two extra switches.)
 */
static void wake(struct router *k)
{
    uint64_t one = 1;
    if (write(k->bell_fd, &one, sizeof one) != (ssize_t)sizeof one && errno != EAGAIN)
        log_warn("loop %u: write to its bell: %s", k->index, strerror(errno));
}

/* Hand this turn's mail to the other loops: a batch per loop that has mail, and a ring of its
 * bell if it may be asleep. One that is not looks at its lanes before it sleeps (asleep is set
 * then, and both sides' accesses are sequentially consistent: either it sees the mail, or
 * this loop sees it asleep). */
static void publish(struct router *r)
{
    r->work_since_publish = 0;
    for (unsigned k = 0; k < r->mesh->n; k++)
        if (k != r->index && lane_publish(lane_to(r, k)) && atomic_load(&r->mesh->loops[k]->asleep))
            wake(r->mesh->loops[k]);
}

/* Has another loop published mail for this one? */
static bool mail_waiting(const struct router *r)
{
    for (unsigned k = 0; k < r->mesh->n; k++)
        if (k != r->index && lane_waiting(&r->mesh->lanes[k * r->mesh->n + r->index]))
            return true;
    return false;
}

/* slide: sharded-cross */
/* The one way a frame crosses to another loop: into the lane to the loop that owns its
 * destination, which queues it as if it had read it itself (arrive). route made sure it fits. */
static void cross(struct router *r, uint32_t sender, const struct frame *f)
{
    struct mail m = {.kind = MAIL_FRAME, .len = (uint32_t)f->body_len, .a = sender, .b = f->dest};
    post(r, owner(r, f->dest), &m, f->body);
    r->crossed++;
}
/* end slide */

/* A turn with --work-us can run long. Before a frame's work, the mail of the last
 * PUBLISH_WORK_US of work is handed over, so that the other loops start on it meanwhile instead
 * of every loop waiting for the others' turns to end. */
static void before_work(struct router *r)
{
    if (r->work_since_publish >= PUBLISH_WORK_US)
        publish(r);
    r->work_since_publish += r->opt.work_us;
}

/* The sender's loop is told what became of frames of sender for dest. */
static void bounce(struct router *r, uint32_t sender, uint32_t dest, enum bounce why)
{
    if (r->opt.error_frames)
        post(r, owner(r, sender),
             &(struct mail){.kind = MAIL_BOUNCE, .why = why, .a = sender, .b = dest}, NULL);
}

/* c's queue drained below half, or c left: every loop holding senders for it lets them go,
 * telling them, if slow, that c was a slow consumer. */
static void release_holds(struct conn *c, bool slow)
{
    for (unsigned k = 0; c->held_by != 0; k++)
        if (c->held_by & (UINT64_C(1) << k)) {
            post(c->r, k, &(struct mail){.kind = MAIL_ROOM, .why = slow, .b = c->id}, NULL);
            c->held_by &= ~(UINT64_C(1) << k);
        }
}

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

/* Tell s, once, that destination id is gone with frames of s still queued, or while s waited
 * for it - unless the queue of s is full: it is not reading, and must not grow it. */
static void tell_departed(struct conn *s, uint32_t id, bool slow)
{
    if (s->told_about == id || over_limit(s))
        return;
    s->told_about = id;
    if (slow)
        send_error(s, "destination %" PRIu32 " too slow, frames dropped", id);
    else
        send_error(s, "destination %" PRIu32 " disconnected, frames dropped", id);
}

/*
 * A write of o to d finished or failed: its first `written` bytes reached the kernel and the
 * rest never will. This is the one place frames are counted, so each is counted exactly once:
 * forwarded if all its bytes were written, dropped otherwise (even if part of it went out).
 * Each sender of a dropped frame that is still connected gets one error frame per departed
 * destination - unless its own queue is full: it is not reading, and must not grow it. A sender
 * on another loop is told by bounce, once per run of its frames.
 */
static void settle(struct conn *d, struct outbuf *o, size_t written)
{
    struct router *r = d->r;
    size_t end = 0;
    uint32_t last_bounced = 0;
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
        if (owner(r, q.sender) != r->index) {
            if (q.sender != last_bounced)
                bounce(r, q.sender, d->id, d->slow ? BOUNCE_SLOW : BOUNCE_DEPARTED);
            last_bounced = q.sender;
            continue;
        }
        struct conn *s = conn_table_get(&r->conns, q.sender);
        if (s)
            tell_departed(s, d->id, d->slow);
    }
    outbuf_clear(o);
}

/*
 * Take c out of routing: its ID stops resolving, it is read no more, and the senders blocked on
 * it go on, on every loop (on_before_poll resumes them; their next frame for it gets "unknown
 * destination").
 */
static void retire(struct conn *c)
{
    if (c->state != OPEN)
        return;
    conn_table_remove(&c->r->conns, c->id);
    list_splice(&c->r->ready, &c->waiters);
    release_holds(c, c->slow);
    list_remove(&c->wait_link);
    c->blocked = false;
    (void)uv_read_stop((uv_stream_t *)&c->tcp); /* cannot fail on a TCP handle */
    c->state = QUITTING;
}

/* A client closed: loop 0, which admits clients, has room for one more. */
static void left(struct router *r)
{
    if (r->index == 0)
        r->clients--;
    else
        post(r, 0, &(struct mail){.kind = MAIL_LEFT}, NULL);
}

/* The last callback for a conn: every uv_write of it has called back already. */
static void on_close(uv_handle_t *handle)
{
    struct conn *c = (struct conn *)handle;
    if (c->id != 0)
        left(c->r);
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

/* s has a frame that must wait (in a full queue's waiters, a hold's, or a full lane's): stop
 * reading s, keeping the frame, until what it waits on has room. */
static void block(struct conn *s, struct list *waiters)
{
    (void)uv_read_stop((uv_stream_t *)&s->tcp); /* cannot fail on a TCP handle */
    s->blocked = true;
    list_push(waiters, &s->wait_link);
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

/* Would len more bytes take q's queue past --max-pending? One frame always fits an empty
 * queue, however long: so a queue holds at most --max-pending bytes, or one longer frame. */
static bool no_room(const struct conn *q, size_t len)
{
    return queued(q) > 0 && queued(q) + len > q->r->opt.max_pending;
}

/* slide: sharded-route */
/*
 * Must s's frame f for another loop's client wait? On that client, held full (MAIL_FULL); on
 * s's own queue, full, since the frame may come back as an error frame for s; or on room in
 * the lane, and then the other loop wakes this one once it has taken some. Returns the list
 * of waiters to join, or NULL if f may cross now.
 */
static struct list *wait_across(struct conn *s, const struct frame *f, unsigned k)
{
    struct router *r = s->r;
    struct hold *h = conn_table_get(&r->holds, f->dest);
    if (h)
        return &h->waiters;
    if (r->opt.error_frames && no_room(s, PROTO_ERROR_FRAME_MAX))
        return &s->waiters;
    struct lane *l = lane_to(r, k);
    size_t size = lane_size(f->body_len);
    if (lane_fits(l, size))
        return NULL;
    lane_want_room(l);
    return lane_fits(l, size) ? NULL : &r->lane_waiters[k];
}
/* end slide */

/*
 * Queue frame f from s for its destination, or send it across to the loop that owns it. If it
 * must wait, block s and return false: the frame stays in s's buffer. A frame for an unknown
 * destination is dropped and counted, and turns into an error frame for its sender, so that one
 * needs room in the sender's own queue. A frame that goes on gets its --work-us here, on the
 * loop that read it, once.
 */
static bool route(struct conn *s, const struct frame *f)
{
    struct router *r = s->r;
    unsigned k = owner(r, f->dest);
    struct conn *d = NULL;
    if (k != r->index) {
        struct list *waiters = wait_across(s, f, k);
        if (waiters) {
            block(s, waiters);
            return false;
        }
    } else {
        d = conn_table_get(&r->conns, f->dest);
        struct conn *q = d ? d : s;
        if ((d || r->opt.error_frames) && no_room(q, d ? f->body_len : PROTO_ERROR_FRAME_MAX)) {
            block(s, &q->waiters);
            return false;
        }
    }
    r->routed++;
    if (r->opt.work_us > 0) {
        before_work(r);
        work_do(f->body, f->body_len, r->opt.work_us);
        r->stats.frames_worked++;
    }
    if (k != r->index) {
        cross(r, s->id, f);
        return true;
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

/* Route the frames c kept in its own buffer. */
static void route_kept(struct conn *c)
{
    c->in.start += route_frames(c, c->in.bytes + c->in.start, c->in.end - c->in.start);
}

/* c's queue shrank. A quitting conn closes once it is empty. Otherwise, below half its limit,
 * the senders blocked on it become ready, here and on every loop that holds some. */
static void after_write(struct conn *c)
{
    if (c->state == QUITTING && queued(c) == 0) {
        conn_close(c);
    } else if (2 * queued(c) < c->r->opt.max_pending) {
        list_splice(&c->r->ready, &c->waiters);
        release_holds(c, false);
    }
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

/*
 * A slow consumer: its socket took no byte for --write-timeout. Like NATS's write deadline, it
 * is disconnected, whatever it had queued is dropped and counted, and every sender that loses
 * a frame or waits on it is told, and goes on - on other loops too (retire, settle).
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
        tell_departed(list_entry(n, struct conn, wait_link), c->id, true);
    conn_close(c); /* on_close settles its queue: the senders of those frames are told too */
}

static void take_mail(struct router *r);

/*
 * The turn's work is done: hand its mail over, and say this loop may sleep (asleep: the other
 * loops ring its bell for mail from then on) - unless mail came meanwhile. That is taken now,
 * without a ring and a trip through the kernel, and the turn goes on (returns true); a few
 * rounds at most, so that the loop still polls its sockets while mail keeps coming.
 */
static bool mail_came(struct router *r, int round)
{
    publish(r);
    atomic_store(&r->asleep, true);
    if (r->stopping || !mail_waiting(r))
        return false;
    atomic_store_explicit(&r->asleep, false, memory_order_relaxed);
    if (round == MAIL_ROUNDS) {
        wake(r); /* poll the sockets first, then come back for it */
        return false;
    }
    take_mail(r);
    return true;
}

/*
 * Runs once a turn, after that turn's callbacks and just before the loop waits for I/O: resume
 * the senders whose destination drained, and flush every queue that got frames. Each can make
 * work for the other (a resumed sender fills queues; a flush drains one), and so can mail from
 * other loops, so loop until the lists are empty and no mail came. That ends: every round moves
 * bytes on, from a sender's buffer into a queue or from a queue into the kernel, and both hold
 * only so much; and mail is taken here only MAIL_ROUNDS times.
 */
static void on_before_poll(uv_prepare_t *prepare)
{
    struct router *r = prepare->data;
    int rounds = 0;
    for (;;) {
        if (!list_empty(&r->ready))
            resume(list_entry(r->ready.next, struct conn, wait_link));
        else if (!list_empty(&r->dirty))
            flush(list_entry(r->dirty.next, struct conn, dirty_link));
        else if (!mail_came(r, rounds++))
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

/* ---- Clients: loop 0 accepts and admits them, the owner of each ID adopts its client ---- */

/* A client admitted by loop 0, with the ID it drew for this loop: it is this loop's now. */
static void adopt(struct router *r, int fd, uint32_t id)
{
    struct conn *c = conn_new(r);
    c->id = id;
    int rc = uv_tcp_open(&c->tcp, fd);
    if (rc != 0) {
        log_warn("client %" PRIu32 ": uv_tcp_open: %s", id, uv_strerror(rc));
        close(fd); /* not the handle's: uv_tcp_open failed */
        conn_close(c);
        return;
    }
    if (!conn_table_put(&r->conns, c->id, c)) { /* cannot happen: sized for --max-clients */
        conn_close(c);
        return;
    }
    c->state = OPEN;
    r->stats.clients_served++;
    log_debug("client %" PRIu32 " connected", c->id);
    uint8_t bytes[PROTO_ID_LEN];
    frame_put_u32(bytes, c->id);
    enqueue(c, 0, bytes, sizeof bytes); /* first in its queue, so the first bytes it receives */
    start_reading(c);
}

/* Over --max-clients: told, and closed now (uv_server.h), never holding a descriptor. */
static void refuse(struct router *r, int fd)
{
    struct conn *c = conn_new(r); /* id 0: never counted as a client */
    if (uv_tcp_open(&c->tcp, fd) != 0)
        close(fd);
    else if (uv_server_tell_full(&r->srv, &c->tcp))
        r->stats.error_frames++;
    conn_close(c);
}

/* The next ID, of the loop whose turn it is. False once the IDs are used up. */
static bool next_id(struct router *r, uint32_t *id)
{
    do {
        if (!ids_next(&r->ids, id))
            return false;
    } while (owner(r, *id) != r->turn);
    r->turn = (r->turn + 1) % r->mesh->n;
    return true;
}

/* slide: sharded-accept */
/* Loop 0: a client accepted. Admit it, and hand it to the loop that owns the ID it gets. A
 * client that quits still holds its socket until its last error frame is written, so it counts
 * until its owner says it closed (left): the limit bounds descriptors, not just IDs. */
static void admit(struct router *r, int fd)
{
    uint32_t id;
    if (r->clients >= r->opt.max_clients || !next_id(r, &id)) {
        refuse(r, fd);
        return;
    }
    r->clients++;
    unsigned k = owner(r, id);
    if (k == r->index)
        adopt(r, fd, id);
    else
        post(r, k, &(struct mail){.kind = MAIL_CLIENT, .a = id, .b = (uint32_t)fd}, NULL);
}
/* end slide */

static void on_accept(uv_poll_t *poll, int status, int events);

static void on_accept_wait(uv_timer_t *timer)
{
    struct router *r = timer->data;
    int rc = uv_poll_start(&r->accepting, UV_READABLE, on_accept);
    if (rc != 0)
        log_fatal("uv_poll_start: %s", uv_strerror(rc));
}

/* Loop 0: the listening socket is readable. Accept until it has nobody waiting. Out of
 * descriptors or memory, the client stays in the backlog and the socket stays readable: stop
 * looking at it for 100 ms rather than spin. */
static void on_accept(uv_poll_t *poll, int status, int events)
{
    struct router *r = poll->data;
    (void)events;
    if (status < 0) {
        log_warn("accept: %s", uv_strerror(status));
        return;
    }
    for (;;) {
        int fd = net_accept(r->listen_fd);
        if (fd >= 0) {
            if (r->accept_starved)
                log_info("accept: accepting clients again");
            r->accept_starved = false;
            admit(r, fd);
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return;
        if (errno == ECONNABORTED || errno == EPROTO)
            continue; /* that client gave up meanwhile: the next one */
        if (errno != EMFILE && errno != ENFILE && errno != ENOBUFS && errno != ENOMEM) {
            log_warn("accept: %s", strerror(errno));
            return;
        }
        if (!r->accept_starved)
            log_warn("accept: %s (retrying every 100 ms)", strerror(errno));
        r->accept_starved = true;
        int rc = uv_poll_stop(&r->accepting);
        if (rc == 0)
            rc = uv_timer_start(&r->accept_wait, on_accept_wait, 100, 0);
        if (rc != 0)
            log_fatal("accept: %s", uv_strerror(rc));
        return;
    }
}

/* ---- Mail, as it arrives ---- */

/* slide: sharded-arrive */
/* A frame from another loop's client: queue it as if it had been read here. A destination that
 * is gone bounces it. Its queue over --max-pending, the sender's loop is told once (MAIL_FULL)
 * to hold its senders until it drains: the frame itself is taken whatever its queue holds, since
 * it left before that loop could know, and the lanes bound how many more can be on their way. */
static void arrive(struct router *r, uint32_t sender, uint32_t dest, const uint8_t *body,
                   size_t len)
{
    struct conn *d = conn_table_get(&r->conns, dest);
    if (!d) {
        r->stats.frames_dropped++;
        bounce(r, sender, dest, BOUNCE_UNKNOWN);
        return;
    }
    enqueue(d, sender, body, len);
    uint64_t bit = UINT64_C(1) << owner(r, sender);
    if (d->state == OPEN && over_limit(d) && !(d->held_by & bit)) {
        d->held_by |= bit;
        post(r, owner(r, sender), &(struct mail){.kind = MAIL_FULL, .b = dest}, NULL);
    }
}
/* end slide */

/* Frames of sender for dest were dropped on dest's loop: tell the sender, as route or settle
 * would have. A frame for an unknown destination was sent before its error frame could be
 * known, so that may take the sender's queue past its limit: by at most what one lane holds,
 * since wait_across holds a sender whose queue is full. */
static void bounced(struct router *r, uint32_t sender, uint32_t dest, enum bounce why)
{
    struct conn *s = conn_table_get(&r->conns, sender);
    if (!s)
        return;
    if (why == BOUNCE_UNKNOWN)
        send_error(s, "unknown destination %" PRIu32, dest);
    else
        tell_departed(s, dest, why == BOUNCE_SLOW);
}

/* Another loop's client dest is full: hold this loop's senders to it (wait_across). */
static void hold(struct router *r, uint32_t dest)
{
    if (conn_table_get(&r->holds, dest))
        return;
    struct hold *h = malloc(sizeof *h);
    if (!h || !conn_table_put(&r->holds, dest, h))
        log_fatal("out of memory for a hold");
    list_init(&h->waiters);
}

/* dest drained, or left: its senders here go on (on_before_poll resumes them). */
static void unhold(struct router *r, uint32_t dest, bool slow)
{
    struct hold *h = conn_table_remove(&r->holds, dest);
    if (!h)
        return;
    if (slow)
        for (struct list *n = h->waiters.next; n != &h->waiters; n = n->next)
            tell_departed(list_entry(n, struct conn, wait_link), dest, true);
    list_splice(&r->ready, &h->waiters);
    free(h);
}

static void add_stats(struct stats *to, const struct stats *s)
{
    to->clients_served += s->clients_served;
    to->frames_forwarded += s->frames_forwarded;
    to->bytes_forwarded += s->bytes_forwarded;
    to->frames_dropped += s->frames_dropped;
    to->error_frames += s->error_frames;
    to->slow_consumers += s->slow_consumers;
    to->frames_worked += s->frames_worked;
}

/* --stats-interval, on loop 0: ask every loop for its counters; the line is printed once they
 * have all answered (stats_mail). A loop still busy with the last question is not asked again. */
static void print_stats(void *data)
{
    struct router *r = data;
    if (r->stats_due > 0)
        return;
    r->stats_sum = r->stats;
    r->stats_due = r->mesh->n - 1;
    for (unsigned k = 1; k < r->mesh->n; k++)
        post(r, k, &(struct mail){.kind = MAIL_STATS}, NULL);
    if (r->stats_due == 0)
        server_print_stats(&info, &r->stats_sum);
}

static void stats_mail(struct router *r, const uint8_t *body, size_t len)
{
    if (len == 0) { /* a question from loop 0 */
        post(r, 0, &(struct mail){.kind = MAIL_STATS, .len = sizeof r->stats}, &r->stats);
        return;
    }
    struct stats s;
    memcpy(&s, body, sizeof s);
    add_stats(&r->stats_sum, &s);
    if (--r->stats_due == 0)
        server_print_stats(&info, &r->stats_sum);
}

/* Stop: close every handle but the bell (unreferenced: uv_run returns without it, and other
 * loops may still ring it until they stop too). Loop 0, told by a signal, tells the
 * others first. Mail left in the lanes is freed by main. */
static void on_stop(void *data)
{
    struct router *r = data;
    if (r->stopping)
        return;
    r->stopping = true;
    if (r->index == 0) {
        for (unsigned k = 1; k < r->mesh->n; k++)
            post(r, k, &(struct mail){.kind = MAIL_STOP}, NULL);
        publish(r);
        uv_close((uv_handle_t *)&r->accepting, NULL);
        uv_close((uv_handle_t *)&r->accept_wait, NULL);
    }
    uv_server_close(&r->srv);
    uv_close((uv_handle_t *)&r->before_poll, NULL);
    uv_close((uv_handle_t *)&r->spare, NULL);
    for (struct list *n = r->all.next; n != &r->all; n = n->next)
        conn_close(list_entry(n, struct conn, all_link));
}

/* Mail that will not be delivered (its loop stopped): a frame in it is dropped, a client's
 * socket closed. */
static void discard(void *data, const struct mail *m, const uint8_t *body)
{
    struct router *r = data;
    (void)body;
    if (m->kind == MAIL_FRAME)
        r->stats.frames_dropped++;
    else if (m->kind == MAIL_CLIENT)
        close((int)m->b);
}

static void deliver(void *data, const struct mail *m, const uint8_t *body)
{
    struct router *r = data;
    if (r->stopping) {
        discard(r, m, body);
        return;
    }
    switch ((enum mail_kind)m->kind) {
    case MAIL_CLIENT:
        adopt(r, (int)m->b, m->a);
        break;
    case MAIL_FRAME:
        arrive(r, m->a, m->b, body, m->len);
        break;
    case MAIL_BOUNCE:
        bounced(r, m->a, m->b, (enum bounce)m->why);
        break;
    case MAIL_FULL:
        hold(r, m->b);
        break;
    case MAIL_ROOM:
        unhold(r, m->b, m->why);
        break;
    case MAIL_LEFT:
        r->clients--;
        break;
    case MAIL_STATS:
        stats_mail(r, body, m->len);
        break;
    case MAIL_STOP:
        on_stop(r);
        break;
    }
}

/*
 * Take the mail in every lane to this loop. Its answers (bounces, FULL) leave at once, before
 * the loops that waited for room in a lane are woken: so a loop that sent frames to a full
 * client learns that before it can send more. Then the senders waiting for room in a lane from
 * this loop go on, if the other loop took some. What else this makes (frames queued, senders
 * ready) is flushed by on_before_poll, as for a read.
 */
static void take_mail(struct router *r)
{
    uint64_t want_room = 0; /* the loops to wake */
    for (unsigned k = 0; k < r->mesh->n && !r->stopping; k++)
        if (k != r->index && lane_take(&r->mesh->lanes[k * r->mesh->n + r->index], deliver, r))
            want_room |= UINT64_C(1) << k;
    publish(r);
    for (unsigned k = 0; k < r->mesh->n; k++) {
        if (want_room & UINT64_C(1) << k)
            wake(r->mesh->loops[k]);
        if (!list_empty(&r->lane_waiters[k]) && lane_fits(lane_to(r, k), 1))
            list_splice(&r->ready, &r->lane_waiters[k]);
    }
}

/* Another loop rang this one's bell. */
static void on_bell(uv_poll_t *bell, int status, int events)
{
    struct router *r = bell->data;
    uint64_t rings;
    (void)events;
    atomic_store_explicit(&r->asleep, false, memory_order_relaxed);
    if (status < 0 || (read(r->bell_fd, &rings, sizeof rings) < 0 && errno != EAGAIN))
        log_warn("loop %u: its bell: %s", r->index,
                 status < 0 ? uv_strerror(status) : strerror(errno));
    take_mail(r);
}

/* ---- Setting up, running, stopping ---- */

static void must(int rc, const char *what)
{
    if (rc != 0)
        log_fatal("%s: %s", what, uv_strerror(rc));
}

static struct router *router_new(const struct mesh *m, unsigned k, const struct options *opt)
{
    struct router *r = calloc(1, sizeof *r);
    if (!r)
        log_fatal("out of memory");
    r->opt = *opt;
    r->index = k;
    r->mesh = m;
    r->listen_fd = -1;
    atomic_init(&r->asleep, false);
    if (conn_table_init(&r->conns, r->opt.max_clients) != 0 ||
        conn_table_init(&r->holds, r->opt.max_clients) != 0)
        log_fatal("out of memory");
    list_init(&r->all);
    list_init(&r->dirty);
    list_init(&r->ready);
    for (unsigned j = 0; j < MAX_LOOPS; j++)
        list_init(&r->lane_waiters[j]);
    must(uv_loop_init(&r->loop), "uv_loop_init");
    must(uv_prepare_init(&r->loop, &r->before_poll), "uv_prepare_init");
    must(uv_prepare_start(&r->before_poll, on_before_poll), "uv_prepare_start");
    r->bell_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (r->bell_fd < 0)
        log_fatal("eventfd: %s", strerror(errno));
    must(uv_poll_init(&r->loop, &r->bell, r->bell_fd), "uv_poll_init");
    must(uv_poll_start(&r->bell, UV_READABLE, on_bell), "uv_poll_start");
    uv_unref((uv_handle_t *)&r->bell); /* see on_stop */
    /* libuv keeps a spare descriptor per loop, for when accept runs out of them, and opens it
     * with the loop's first TCP handle. Open it now: a loop's descriptors then do not grow
     * with its first client (so a count of them before and after clients comes out even). */
    must(uv_tcp_init(&r->loop, &r->spare), "uv_tcp_init");
    r->before_poll.data = r->bell.data = r;
    r->srv = (struct uv_server){.loop = &r->loop,
                                .opt = &r->opt,
                                .data = r,
                                .on_stop = on_stop,
                                .print_stats = k == 0 ? print_stats : NULL,
                                .on_stalled = evict};
    return r;
}

/* Loop 0 is the acceptor: it polls the listening socket itself, so that it can hand the
 * descriptor of each new client to another loop (a libuv listener would accept into a handle
 * of its own loop). */
static void start_accepting(struct router *r, int listen_fd)
{
    r->listen_fd = listen_fd;
    ids_init(&r->ids, r->opt.ids);
    r->turn = 1 % r->mesh->n;                                               /* the loop of ID 1 */
    must(uv_poll_init(&r->loop, &r->accepting, listen_fd), "uv_poll_init"); /* non-blocking */
    must(uv_timer_init(&r->loop, &r->accept_wait), "uv_timer_init");
    r->accepting.data = r->accept_wait.data = r;
    must(uv_poll_start(&r->accepting, UV_READABLE, on_accept), "uv_poll_start");
}

static void *run(void *data)
{
    struct router *r = data;
    int rc = uv_run(&r->loop, UV_RUN_DEFAULT);
    if (rc != 0)
        log_warn("loop %u: uv_run: handles still active at exit", r->index);
    return NULL;
}

/* Every loop has stopped: close its last handle, and free it. */
static void router_free(struct router *r)
{
    uv_close((uv_handle_t *)&r->bell, NULL);
    int rc = uv_run(&r->loop, UV_RUN_DEFAULT);
    if (close(r->bell_fd) != 0)
        log_warn("close: %s", strerror(errno));
    if (rc == 0)
        rc = uv_loop_close(&r->loop);
    if (rc != 0)
        log_warn("loop %u: uv_loop_close: %s", r->index, uv_strerror(rc));
    for (size_t i = 0; i <= r->holds.mask; i++)
        if (r->holds.slots[i].id != 0)
            free(r->holds.slots[i].conn);
    conn_table_free(&r->holds);
    conn_table_free(&r->conns);
    free(r);
}

/* The default --loops: one per CPU this process may run on (its affinity, as Go's GOMAXPROCS
 * and nginx's "worker_processes auto" count them), so a router confined to one core (taskset)
 * runs one loop rather than two that take turns; else one per online CPU. */
static unsigned online_cpus(void)
{
    cpu_set_t set;
    long n = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set)
                                                         : sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > MAX_LOOPS ? MAX_LOOPS : (unsigned)n;
}

/*
 * Each loop beyond the first holds LOOP_FDS more descriptors than server_start set aside. Raise
 * the open-file limit for them as far as allowed; if that is not enough, give the loops at most
 * half of what is left after the router's own, and lower --max-clients to fit the rest, saying
 * so, as server_start does. Returns the loops to run.
 */
static unsigned fit_loops(struct options *opt, unsigned n)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) != 0)
        log_fatal("getrlimit: %s", strerror(errno));
    rlim_t want = opt->max_clients + SERVER_RESERVED_FDS + LOOP_FDS * (rlim_t)(n - 1);
    if (lim.rlim_cur == RLIM_INFINITY || lim.rlim_cur >= want)
        return n;
    lim.rlim_cur = lim.rlim_max != RLIM_INFINITY && lim.rlim_max < want ? lim.rlim_max : want;
    if (setrlimit(RLIMIT_NOFILE, &lim) != 0)
        log_fatal("setrlimit: %s", strerror(errno));
    if (lim.rlim_cur >= want)
        return n;
    size_t room = lim.rlim_cur - SERVER_RESERVED_FDS; /* at least 1: server_start saw to it */
    unsigned most = 1 + (unsigned)(room / 2 / LOOP_FDS);
    if (n > most) {
        log_warn("the open-file limit is %zu: --loops lowered from %u to %u (raise it with "
                 "ulimit -n)",
                 (size_t)lim.rlim_cur, n, most);
        n = most;
    }
    size_t fits = room - LOOP_FDS * (size_t)(n - 1);
    if (opt->max_clients > fits) {
        log_warn("the open-file limit is %zu: --max-clients lowered from %zu to %zu for %u "
                 "loops",
                 (size_t)lim.rlim_cur, opt->max_clients, fits, n);
        opt->max_clients = fits;
    }
    return n;
}

int main(int argc, char **argv)
{
    struct options opt;
    loops_wanted = online_cpus();
    int listen_fd = server_start(argc, argv, &info, &opt);
    struct mesh m = {.n = fit_loops(&opt, loops_wanted)};

    m.lanes = calloc((size_t)m.n * m.n, sizeof *m.lanes);
    if (!m.lanes)
        log_fatal("out of memory");
    for (unsigned i = 0; i < m.n * m.n; i++)
        lane_init(&m.lanes[i], opt.max_pending);
    for (unsigned k = 0; k < m.n; k++)
        m.loops[k] = router_new(&m, k, &opt);
    start_accepting(m.loops[0], listen_fd);

    /* The threads start with SIGINT and SIGTERM blocked (server_start): only loop 0, in this
     * thread, takes them, once its handlers are in place. */
    pthread_t threads[MAX_LOOPS];
    for (unsigned k = 1; k < m.n; k++) {
        uv_server_start(&m.loops[k]->srv, -1, false);
        int rc = pthread_create(&threads[k], NULL, run, m.loops[k]);
        if (rc != 0)
            log_fatal("pthread_create: %s", strerror(rc));
    }
    uv_server_start(&m.loops[0]->srv, -1, true);
    run(m.loops[0]);
    for (unsigned k = 1; k < m.n; k++) {
        int rc = pthread_join(threads[k], NULL);
        if (rc != 0)
            log_fatal("pthread_join: %s", strerror(rc));
    }

    /* Every loop has stopped: this thread owns it all now. */
    if (close(listen_fd) != 0)
        log_warn("close: %s", strerror(errno));
    for (unsigned i = 0; i < m.n * m.n; i++)
        lane_free(&m.lanes[i], discard, m.loops[i % m.n]);
    free(m.lanes);
    struct stats total = {0};
    uint64_t routed = 0, crossed = 0;
    for (unsigned k = 0; k < m.n; k++) {
        add_stats(&total, &m.loops[k]->stats);
        routed += m.loops[k]->routed;
        crossed += m.loops[k]->crossed;
        router_free(m.loops[k]);
    }
    fprintf(stderr, "%s: %u loops; %" PRIu64 " of %" PRIu64 " frames crossed loops (%.1f%%)\n",
            info.name, m.n, crossed, routed, routed ? 100.0 * (double)crossed / (double)routed : 0);
    server_finish(&info, &total);
    return 0;
}
