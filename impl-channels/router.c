/*
 * router-channels: threads that own their state and talk through bounded channels (CSP).
 *
 * Pattern: one dispatcher thread owns the connection table and the stats, and no other thread
 * touches them. The acceptor hands it each new socket. Per client, a reader thread parses
 * frames and sends them to the dispatcher, and a writer thread, fed by its own bounded channel,
 * owns the socket's sending side: the dispatcher never waits on a socket or on a writer.
 * Bytes move by ownership: a reader packs each read's frames for one destination into one
 * parcel, and the parcel goes from reader to dispatcher to writer, whose one writev sends all
 * the parcels waiting for it.
 *
 * Lesson: nothing is shared, so nothing is locked; but every interaction is now a message, and
 * the hard parts need channels of their own. Backpressure: a reader whose frames wait for a
 * full destination gets no go-ahead token and reads nothing more. Errors: a failed write is
 * reported back to the dispatcher, which tells the sender.
 *
 * Flaw: complexity. Nine kinds of message, state handed from thread to thread, action at a
 * distance (one client's failed write becomes an error frame in another client's writer, by
 * way of the dispatcher), and two threads per client.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "channel.h"
#include "conn_table.h"
#include "frame.h"
#include "frame_groups.h"
#include "ids.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "proto.h"
#include "reader.h"
#include "server.h"
#include "stats.h"
#include "thread_server.h"
#include "work.h"

#define THREAD_STACK_SIZE (64 * 1024)      /* readers and writers keep their buffers on the heap */
#define INBOX_CAPACITY 1024                /* messages waiting for the dispatcher */
#define INBOX_BATCH 64                     /* messages the dispatcher takes in one go */
#define WRITER_CAPACITY 256                /* parcels in one writer channel */
#define REPORT_EVERY (WRITER_CAPACITY / 4) /* a parcel in so many asks its writer for a report */
#define WRITE_MAX (256 * 1024)             /* bytes in one writev: the rest go in the next */

static const struct router_info info = {
    .name = "router-channels",
    .summary = "A dispatcher thread owns the state; readers and writers talk to it through "
               "bounded channels.",
};

/*
 * What travels to a writer: bytes on the heap, whose owner is whoever holds the parcel.
 * OUT_LINGER is the last parcel for a client sent away: it carries no bytes (see net_linger).
 */
enum parcel_kind { OUT_ID, OUT_FRAMES, OUT_ERRORS, OUT_LINGER };
struct parcel {
    struct parcel *next; /* in a FRAMES message, or on a destination's parked list */
    enum parcel_kind kind;
    uint32_t src;     /* OUT_FRAMES: who sent them, to be told if they cannot be written */
    uint32_t dest;    /* OUT_FRAMES: where they go */
    uint32_t nframes; /* frames (or error frames) in bytes */
    bool report;      /* the writer reports back once it has written this one */
    size_t len;
    uint8_t bytes[]; /* the frames, back to back, as the destination reads them */
};

/*
 * One client. id and fd are set before its threads start and never change. The fields below
 * the line are the dispatcher's alone. No field is shared: the channels carry everything else.
 * The dispatcher frees a conn once both of its threads have sent their last message.
 */
struct conn {
    uint32_t id;
    int fd;
    struct channel writer_channel; /* dispatcher -> writer: struct parcel * */
    struct channel go_ahead;       /* dispatcher -> reader: permission tokens, two slots */
    pthread_t threads[2];          /* the writer, then the reader */
    int started, running;          /* threads created, and not yet exited */

    /* ---- the dispatcher's ---- */
    size_t pending;                       /* bytes in the writer channel: --max-pending */
    size_t pending_parcels;               /* parcels in it: at most WRITER_CAPACITY */
    size_t unasked, unasked_bytes;        /* parcels (bytes) sent since one asked for a report */
    struct parcel *parked, **parked_tail; /* parcels for this client waiting for room */
    size_t held;                          /* parcels this client sent that are parked somewhere */
    unsigned wants_go_ahead;              /* tokens its reader asked for and has not got */
    bool retired;                         /* its ID is out of the table; channels closed */
    bool slow;                            /* retired as a slow consumer */
    uint32_t told_about;                  /* the last departed destination it was told about */
    struct conn *prev, *next;             /* on state.conns until freed */
};

/* Every message any thread sends to the dispatcher. */
enum message_kind {
    NEW_CONNECTION, /* acceptor: fd, a client just accepted */
    FRAMES,         /* reader: one read's parcels; then it waits for its go-ahead */
    WROTE,          /* writer: it wrote parcels: counts, and room in its channel */
    WRITE_FAILED,   /* writer: parcel could not be written (slow: the write timed out) */
    DISCONNECT,     /* reader, its last: EOF, an error, or too_long */
    WRITER_EXIT,    /* writer, its last: its channel was closed and is empty; what it wrote
                       since its last WROTE */
    PRINT_STATS,    /* acceptor: --stats-interval passed */
    SHUTDOWN,       /* acceptor, its last: SIGINT or SIGTERM */
};

struct message {
    enum message_kind kind;
    struct conn *conn;      /* the client it is about; its own reader or writer sent it */
    int fd;                 /* NEW_CONNECTION */
    struct parcel *parcels; /* FRAMES: one per destination; WRITE_FAILED: the one */
    size_t frames, bytes;   /* FRAMES: frames worked; WROTE: frames forwarded, their bytes */
    size_t errors, written; /* WROTE: error frames written; bytes of parcels written */
    size_t written_parcels; /* WROTE: how many parcels those bytes were */
    bool too_long, slow;    /* DISCONNECT; WRITE_FAILED */
};

static struct options opt;
static size_t report_level;  /* a destination with more pending bytes has its writer report */
static struct channel inbox; /* every thread sends here; only the dispatcher receives */
static pthread_attr_t thread_attr;

/* The dispatcher's state. Only the dispatcher thread touches it, so nothing guards it. */
static struct {
    struct conn_table table; /* ID -> struct conn, for every client not yet retired */
    struct stats stats;
    struct id_allocator ids;
    struct conn *conns; /* every conn not yet freed, retired ones included */
    size_t nconns;      /* how many: what --max-clients limits, as each holds a socket */
    bool stopping;
} state;

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        log_fatal("out of memory");
    return p;
}

static struct parcel *parcel_new(enum parcel_kind kind, uint32_t src, uint32_t dest, size_t len)
{
    struct parcel *p = xmalloc(sizeof *p + len);
    *p = (struct parcel){.kind = kind, .src = src, .dest = dest, .len = len};
    return p;
}

/* Send a message to the dispatcher. The inbox is never closed: this only waits while it is full,
 * and the dispatcher, which waits for nothing else, always empties it. */
static void tell(struct message m)
{
    channel_send(&inbox, &m, CHANNEL_FOREVER);
}

/* ---- backpressure: the permission token ----
 *
 * After each read's frames the reader takes a token from its go_ahead channel before it reads
 * again. The dispatcher grants one for each read it has routed, and gives each reader one spare
 * at the start: the reader reads its next frames while the dispatcher routes the last ones, and
 * waits only when it is two reads ahead (a window of two saves a wake-up per read: 2.0 context
 * switches a frame instead of 3.6 at 16 pairs). The dispatcher, which never waits for a writer,
 * parks a parcel whose destination has no room (--max-pending bytes in its channel) and holds
 * its sender: no token until the parcel has moved. So a sender to a slow client stops reading,
 * memory stays bounded, and nobody else waits. A writer says what it wrote only when asked (a
 * parcel's report flag): the dispatcher asks once a destination's pending bytes come within one
 * parcel of --max-pending, or its channel is one parcel from full (many small parcels), so that
 * whatever waits for room, the last parcel in the channel asked for a report: the wait always
 * ends. It also asks every quarter of the channel's parcels or bytes, so the counts it decides
 * by never lag far behind the writer: asked only at the brim, a busy destination's channel
 * would run dry at every report (measured with pipelined 64 B frames, pinned: about 3.2
 * million frames/s asked every quarter, 2.4 million asked only at the brim).
 */

static bool has_room(const struct conn *to, const struct parcel *p) /* the dispatcher */
{
    return to->pending_parcels < WRITER_CAPACITY &&
           (to->pending == 0 || to->pending + p->len <= opt.max_pending);
}

/* Whether the writer must report once it has written p, about to join to's channel. */
static bool wants_report(const struct conn *to, const struct parcel *p) /* the dispatcher */
{
    return to->pending + p->len > report_level || to->pending_parcels + 1 >= WRITER_CAPACITY ||
           to->unasked + 1 >= REPORT_EVERY || to->unasked_bytes + p->len >= opt.max_pending / 4;
}

/* Put p in to's writer channel if there is room, never waiting. Once sent, p is the writer's. */
static bool hand_over(struct conn *to, struct parcel *p) /* the dispatcher */
{
    size_t len = p->len; /* once sent, p is the writer's: it may be gone already */
    bool report = p->report = wants_report(to, p);
    if (!has_room(to, p) || channel_send(&to->writer_channel, &p, 0) != CHANNEL_OK)
        return false;
    to->pending += len;
    to->pending_parcels++;
    to->unasked = report ? 0 : to->unasked + 1;
    to->unasked_bytes = report ? 0 : to->unasked_bytes + len;
    return true;
}

/* slide: channels-backpressure */
static bool wait_for_go_ahead(struct conn *c) /* the reader; false: its client was retired */
{
    char token;
    return channel_recv(&c->go_ahead, &token, CHANNEL_FOREVER) > 0;
}

static void queue(struct conn *to, struct parcel *p, uint32_t owner) /* the dispatcher */
{
    if (!to->parked && hand_over(to, p)) /* once one is parked, the rest queue behind it */
        return;
    p->next = NULL;
    *to->parked_tail = p;
    to->parked_tail = &p->next;
    struct conn *o = conn_table_get(&state.table, owner);
    if (o)
        o->held++; /* no token for its reader until p has moved */
}
/* end slide */

/* The reader gets its token once it has asked and none of its parcels is parked. */
static void maybe_go_ahead(struct conn *c)
{
    if (!c->wants_go_ahead || c->held > 0)
        return;
    c->wants_go_ahead--;
    char token = 1;
    /* Two slots, and at most two tokens outstanding: never full. Closed if c is retired. */
    channel_send(&c->go_ahead, &token, 0);
}

/* A parked parcel moved or was dropped: its owner, if still connected, is held by one less. */
static void release(uint32_t owner)
{
    struct conn *o = conn_table_get(&state.table, owner);
    if (o) {
        o->held--;
        maybe_go_ahead(o);
    }
}

/* The owner of a parked parcel: its sender, or for the router's own bytes, its destination. */
static uint32_t owner_of(const struct parcel *p)
{
    return p->kind == OUT_FRAMES ? p->src : p->dest;
}

/* WROTE: move parked parcels into the channel, oldest first, while there is room. */
static void refill(struct conn *to)
{
    struct parcel *p;
    while ((p = to->parked)) {
        struct parcel *next = p->next; /* once sent, p is the writer's */
        uint32_t owner = owner_of(p);
        if (!hand_over(to, p))
            break;
        to->parked = next;
        if (!to->parked)
            to->parked_tail = &to->parked;
        release(owner);
    }
    if (to->retired && !to->parked) /* a client sent away: its last parcels are in */
        channel_close(&to->writer_channel);
}

/* ---- the reader: one per client ---- */

/* The frames of one read: their --work-us (in this thread, so in parallel with the others),
 * then one parcel per destination, all in one message; then wait for the go-ahead. */
static bool forward_frames(void *ctx, const struct frame *frames, size_t n)
{
    struct conn *c = ctx;
    for (size_t i = 0; opt.work_us > 0 && i < n; i++)
        work_do(frames[i].body, frames[i].body_len, opt.work_us);
    struct frame_groups g;
    frame_groups_build(&g, frames, n);
    struct parcel *parcels = NULL, **tail = &parcels;
    for (size_t k = 0; k < g.ngroups; k++) {
        const struct frame_group *grp = &g.group[k];
        struct parcel *p = parcel_new(OUT_FRAMES, c->id, grp->dest, grp->bytes);
        p->nframes = (uint32_t)grp->count;
        uint8_t *at = p->bytes;
        for (size_t i = grp->first; i < grp->first + grp->count; i++) {
            memcpy(at, g.iov[i].iov_base, g.iov[i].iov_len);
            at += g.iov[i].iov_len;
        }
        *tail = p;
        tail = &p->next;
    }
    tell((struct message){
        .kind = FRAMES, .conn = c, .parcels = parcels, .frames = opt.work_us > 0 ? n : 0});
    return wait_for_go_ahead(c);
}

static void *reader_main(void *arg)
{
    struct conn *c = arg;
    enum read_end end = frame_reader_run(c->fd, opt.max_message, forward_frames, c);
    if (end == READ_ERROR)
        log_debug("read client %u: %s", c->id, strerror(errno));
    tell((struct message){.kind = DISCONNECT, .conn = c, .too_long = end == READ_TOO_LONG});
    return NULL; /* after its last message, the thread touches nothing shared */
}

/* ---- the writer: one per client ---- */

/* Write the parcels at the front of p[0, n), up to an OUT_LINGER, with as few writev calls as
 * IOV_MAX and WRITE_MAX allow. Returns how many were written whole. If the socket failed, sets
 * *failed, and *slow if the write timed out: a slow consumer. */
static size_t write_parcels(struct conn *c, struct parcel **p, size_t n, bool *failed, bool *slow)
{
    struct iovec iov[WRITER_CAPACITY];
    size_t done = 0;
    while (done < n && p[done]->kind != OUT_LINGER) {
        size_t k = 0, bytes = 0;
        while (done + k < n && p[done + k]->kind != OUT_LINGER && (k == 0 || bytes < WRITE_MAX)) {
            iov[k] = (struct iovec){.iov_base = p[done + k]->bytes, .iov_len = p[done + k]->len};
            bytes += p[done + k++]->len;
        }
        if (net_writev_all(c->fd, iov, (int)k) != 0) {
            *failed = true; /* the client is gone, or too slow: every parcel from now on drops */
            *slow = errno == ETIMEDOUT;
            break;
        }
        done += k;
    }
    return done;
}

/* Account for parcels p[0, n), of which the first ok were written, in *tally, and let them go;
 * the rest go back to the dispatcher one by one as WRITE_FAILED, or are the final OUT_LINGER.
 * Returns true if a parcel written asked for a report. */
static bool account(struct conn *c, struct parcel **p, size_t n, size_t ok, bool failed, bool slow,
                    struct message *tally)
{
    bool asked = false;
    for (size_t i = 0; i < n; i++) {
        if (i < ok) {
            tally->frames += p[i]->kind == OUT_FRAMES ? p[i]->nframes : 0;
            tally->bytes += p[i]->kind == OUT_FRAMES ? p[i]->len : 0;
            tally->errors += p[i]->kind == OUT_ERRORS ? p[i]->nframes : 0;
            tally->written += p[i]->len;
            tally->written_parcels++;
            asked = asked || p[i]->report;
            free(p[i]);
        } else if (p[i]->kind == OUT_LINGER) { /* the client reads what came before, not a reset */
            if (!failed)
                net_linger(c->fd, NET_LINGER_MS);
            free(p[i]);
        } else {
            tell((struct message){.kind = WRITE_FAILED, .conn = c, .parcels = p[i], .slow = slow});
        }
    }
    return asked;
}

/* The writer owns the sending side of one socket, and is the only thread that waits on it: a
 * client that stops reading stalls its own writer and nobody else. It takes every parcel
 * waiting in its channel at once, writes them with one writev, and reports when asked. */
/* slide: channels-writer */
static void *writer_main(void *arg)
{
    struct conn *c = arg;
    struct parcel *p[WRITER_CAPACITY];
    struct message tally = {.kind = WROTE, .conn = c};
    bool failed = false, slow = false;
    int n;
    while ((n = channel_recv_many(&c->writer_channel, p, WRITER_CAPACITY, CHANNEL_FOREVER)) > 0) {
        size_t ok = failed ? 0 : write_parcels(c, p, (size_t)n, &failed, &slow);
        if (account(c, p, (size_t)n, ok, failed, slow, &tally)) {
            tell(tally); /* the dispatcher asked: it needs the room */
            tally = (struct message){.kind = WROTE, .conn = c};
        }
    }
    tally.kind = WRITER_EXIT;
    tell(tally);
    return NULL;
}
/* end slide */

/* ---- the dispatcher: one, and the only thread that touches `state` ---- */

/* n error frames, one reason, travel like any frame: on the client's own writer channel. */
static void send_errors(uint32_t to_id, const char *reason, size_t n)
{
    struct conn *to = conn_table_get(&state.table, to_id);
    if (!opt.error_frames || !to)
        return;
    uint8_t frame[PROTO_ERROR_FRAME_MAX];
    size_t len = proto_error_frame(frame, "%s", reason);
    struct parcel *p = parcel_new(OUT_ERRORS, 0, to_id, n * len);
    p->nframes = (uint32_t)n;
    for (size_t i = 0; i < n; i++)
        memcpy(p->bytes + i * len, frame, len);
    queue(to, p, to_id);
}

/* FRAMES: each parcel to its destination, found in the table that only this thread touches. */
static void deliver(struct conn *from, struct parcel *p)
{
    struct conn *to = conn_table_get(&state.table, p->dest);
    if (to) {
        queue(to, p, from->id);
        return;
    }
    state.stats.frames_dropped += p->nframes;
    char reason[64];
    snprintf(reason, sizeof reason, "unknown destination %u", p->dest);
    send_errors(from->id, reason, p->nframes);
    free(p);
}

/* Frames for c will never be written: count them, and tell their sender, once, if it is still
 * connected. */
static void drop_frames(struct conn *c, struct parcel *p)
{
    state.stats.frames_dropped += p->nframes;
    struct conn *s = conn_table_get(&state.table, p->src);
    if (!s || s->told_about == c->id)
        return;
    s->told_about = c->id;
    char reason[64];
    snprintf(reason, sizeof reason, "destination %u %s", c->id, c->slow ? "too slow" : "failed");
    send_errors(p->src, reason, 1);
}

/* The client is gone, or being sent away. Its ID dies here; parked parcels are dropped and their
 * senders told and released; the channels close, which ends its reader's wait for a token and
 * its writer's loop. flush (a client sent away; its reader has exited): the writer still writes
 * what is queued, and the error frames still parked, then lingers (OUT_LINGER) before the
 * socket closes; the writer channel closes once they are in (see refill). */
static void retire(struct conn *c, bool flush)
{
    if (c->retired)
        return;
    c->retired = true;
    conn_table_remove(&state.table, c->id);
    /* Wake the reader from read(), and fail the writer's writes, so what is still queued comes
     * back as WRITE_FAILED messages, one per parcel. */
    if (!flush && shutdown(c->fd, SHUT_RDWR) != 0 && errno != ENOTCONN)
        log_warn("shutdown client %u: %s", c->id, strerror(errno));
    struct parcel **pp = &c->parked, *p;
    while ((p = *pp)) {
        if (flush && p->kind == OUT_ERRORS) { /* it still gets told why */
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        if (p->kind == OUT_FRAMES)
            drop_frames(c, p);
        release(owner_of(p));
        free(p);
    }
    c->parked_tail = pp;
    channel_close(&c->go_ahead);
    if (flush)
        queue(c, parcel_new(OUT_LINGER, 0, c->id, 0), 0);
    if (!c->parked)
        channel_close(&c->writer_channel);
}

static struct conn *conn_new(uint32_t id, int fd)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (channel_init(&c->writer_channel, sizeof(struct parcel *), WRITER_CAPACITY) != 0) {
        free(c);
        return NULL;
    }
    if (channel_init(&c->go_ahead, 1, 2) != 0) {
        channel_destroy(&c->writer_channel);
        free(c);
        return NULL;
    }
    c->id = id;
    c->fd = fd;
    c->parked_tail = &c->parked;
    return c;
}

/* Once no thread of c runs: what is left in its writer channel was never written. */
static void conn_free(struct conn *c)
{
    struct parcel *p;
    while (channel_recv(&c->writer_channel, &p, 0) > 0)
        free(p);
    if (close(c->fd) != 0)
        log_warn("close client %u: %s", c->id, strerror(errno));
    channel_destroy(&c->writer_channel);
    channel_destroy(&c->go_ahead);
    free(c);
}

/* One of c's threads sent its last message. After the second, each join below waits only for
 * a thread to return; then c goes. */
static void thread_exited(struct conn *c)
{
    if (--c->running > 0)
        return;
    for (int i = 0; i < c->started; i++)
        pthread_join(c->threads[i], NULL);
    if (c->prev)
        c->prev->next = c->next;
    else
        state.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    state.nconns--;
    log_debug("client %u freed", c->id);
    conn_free(c);
}

/* A client beyond --max-clients gets no ID and no threads. The dispatcher writes its error
 * frame itself, the only bytes it ever writes: MSG_DONTWAIT, so it cannot wait, and a socket
 * just accepted has an empty send buffer that takes these few bytes at once. */
static void refuse(int fd, const char *reason)
{
    if (opt.error_frames) {
        uint8_t frame[PROTO_ERROR_FRAME_MAX];
        size_t n = proto_error_frame(frame, "%s", reason);
        if (send(fd, frame, n, MSG_DONTWAIT) == (ssize_t)n)
            state.stats.error_frames++;
        else
            log_debug("refused client: error frame not sent");
    }
    if (close(fd) != 0)
        log_warn("close: %s", strerror(errno));
}

/* NEW_CONNECTION: an ID, queued as the first parcel of the client's own writer channel; then
 * the table, where senders find it; then its writer and reader threads. A retired client still
 * counts against --max-clients while its writer flushes: its socket is open until it is freed. */
static void admit(int fd)
{
    uint32_t id;
    if (state.nconns >= opt.max_clients || !ids_next(&state.ids, &id)) {
        refuse(fd, "server full");
        return;
    }
    struct conn *c = conn_new(id, fd);
    if (!c) {
        log_warn("client %u: out of memory", id);
        refuse(fd, "server full");
        return;
    }
    struct parcel *first = parcel_new(OUT_ID, 0, id, PROTO_ID_LEN);
    frame_put_u32(first->bytes, id);
    channel_send(&c->writer_channel, &first, 0); /* an empty channel has room */
    char token = 1;
    channel_send(&c->go_ahead, &token, 0); /* the spare: a window of two reads */
    c->pending = c->unasked_bytes = PROTO_ID_LEN;
    c->pending_parcels = c->unasked = 1;

    int rc = pthread_create(&c->threads[0], &thread_attr, writer_main, c);
    if (rc != 0) {
        log_warn("pthread_create: %s", strerror(rc));
        conn_free(c);
        return;
    }
    c->started = c->running = 1;
    if (!conn_table_put(&state.table, id, c))
        log_fatal("connection table: cannot add client %u", id);
    c->next = state.conns;
    if (state.conns)
        state.conns->prev = c;
    state.conns = c;
    state.nconns++;
    state.stats.clients_served++;
    log_debug("client %u connected", id);

    rc = pthread_create(&c->threads[1], &thread_attr, reader_main, c);
    if (rc != 0) {
        log_warn("pthread_create: %s", strerror(rc));
        retire(c, false); /* the writer exits, and its WRITER_EXIT frees c */
        return;
    }
    c->started = c->running = 2;
}

/* SHUTDOWN: retire every client. Those retired already may still be flushing in write(): cut
 * them short too. The dispatcher then runs until every conn is freed. */
static void stop_all(void)
{
    state.stopping = true;
    for (struct conn *c = state.conns; c; c = c->next) {
        if (!c->retired)
            retire(c, false);
        else if (shutdown(c->fd, SHUT_RDWR) != 0 && errno != ENOTCONN)
            log_warn("shutdown client %u: %s", c->id, strerror(errno));
    }
}

/* WROTE: the writer's counts join the stats, and its channel has room again. */
static void wrote(struct conn *c, const struct message *m)
{
    state.stats.frames_forwarded += m->frames;
    state.stats.bytes_forwarded += m->bytes;
    state.stats.error_frames += m->errors;
    c->pending -= m->written;
    c->pending_parcels -= m->written_parcels;
    refill(c);
}

/* WRITE_FAILED: the first failure of a client that is still in the table retires it; a write
 * that moved no byte for --write-timeout makes it a slow consumer. */
static void write_failed(struct conn *c, const struct message *m)
{
    struct parcel *p = m->parcels;
    if (m->slow && !c->retired) {
        c->slow = true;
        state.stats.slow_consumers++;
        log_info("client %u: took no bytes for %.1f s: disconnected as a slow consumer", c->id,
                 opt.write_timeout_ms / 1000.0);
    }
    retire(c, false);
    c->pending -= p->len;
    c->pending_parcels--;
    if (p->kind == OUT_FRAMES)
        drop_frames(c, p);
    free(p);
}

/* How a client ends, and the router: failures and last messages. Each error travels as a
 * message to the dispatcher, and from it, as an error frame, to the sender's own writer. */
static void lifecycle(const struct message *m)
{
    struct conn *c = m->conn;
    if (m->kind == PRINT_STATS) {
        server_print_stats(&info, &state.stats);
        return;
    }
    /* slide: channels-errors */
    switch (m->kind) {
    case WRITE_FAILED: /* c's client is gone, or too slow: tell the frames' sender */
        write_failed(c, m);
        break;
    case DISCONNECT: /* EOF or a read error; or a frame too long: say so last, then close */
        if (m->too_long && !c->retired)
            send_errors(c->id, "message too long", 1);
        retire(c, m->too_long);
        thread_exited(c);
        break;
    case WRITER_EXIT:
        wrote(c, m);
        thread_exited(c);
        break;
    default: /* SHUTDOWN, the acceptor's last message */
        stop_all();
        break;
    }
    /* end slide */
}

/* FRAMES: the parcels of one read, each to its destination; then the reader asks for its
 * token. */
static void frames(struct conn *c, const struct message *m)
{
    state.stats.frames_worked += m->frames;
    for (struct parcel *p = m->parcels, *next; p; p = next) {
        next = p->next;
        deliver(c, p);
    }
    c->wants_go_ahead++;
    maybe_go_ahead(c);
}

/* The dispatcher: it waits on its inbox and on nothing else, takes every message waiting there
 * at once, and finishes each before the next, so the state it owns is never seen half-changed. */
static void *dispatcher_main(void *arg)
{
    (void)arg;
    struct message batch[INBOX_BATCH];
    /* slide: channels-dispatcher */
    while (!state.stopping || state.conns) {
        int n = channel_recv_many(&inbox, batch, INBOX_BATCH, CHANNEL_FOREVER);
        for (int i = 0; i < n; i++) {
            struct message *m = &batch[i];
            if (m->kind == NEW_CONNECTION)
                admit(m->fd);
            else if (m->kind == FRAMES)
                frames(m->conn, m);
            else if (m->kind == WROTE)
                wrote(m->conn, m);
            else
                lifecycle(m);
        }
    }
    /* end slide */
    return NULL;
}

static void router_init(void)
{
    thread_server_size_futex_hash(2 * opt.max_clients); /* writers wait in their channels */
    /* The longest parcel: one read's frames for one destination (at most the reader's buffer),
     * or a batch of error frames. */
    size_t longest = PROTO_ID_LEN + opt.max_message + 1;
    if (longest < FRAME_READER_START)
        longest = FRAME_READER_START;
    if (longest < FRAME_BATCH * PROTO_ERROR_FRAME_MAX)
        longest = FRAME_BATCH * PROTO_ERROR_FRAME_MAX;
    report_level = opt.max_pending > longest ? opt.max_pending - longest : 0;
    ids_init(&state.ids, opt.ids);
    if (conn_table_init(&state.table, opt.max_clients) != 0)
        log_fatal("connection table: out of memory");
    if (channel_init(&inbox, sizeof(struct message), INBOX_CAPACITY) != 0)
        log_fatal("inbox: %s", strerror(errno));
    int rc = pthread_attr_init(&thread_attr);
    if (rc == 0)
        rc = pthread_attr_setstacksize(&thread_attr, THREAD_STACK_SIZE);
    if (rc != 0)
        log_fatal("thread setup: %s", strerror(rc));
}

int main(int argc, char **argv)
{
    int listen_fd = server_start(argc, argv, &info, &opt);
    router_init();
    pthread_t dispatcher;
    int rc = pthread_create(&dispatcher, NULL, dispatcher_main, NULL);
    if (rc != 0)
        log_fatal("pthread_create: %s", strerror(rc));

    int fd;
    while ((fd = server_wait_accept(listen_fd)) != SERVER_STOP)
        tell(fd == SERVER_STATS ? (struct message){.kind = PRINT_STATS}
                                : (struct message){.kind = NEW_CONNECTION, .fd = fd});
    if (close(listen_fd) != 0)
        log_warn("close listener: %s", strerror(errno));
    tell((struct message){.kind = SHUTDOWN});
    pthread_join(dispatcher, NULL);

    server_finish(&info, &state.stats);
    conn_table_free(&state.table);
    channel_destroy(&inbox);
    pthread_attr_destroy(&thread_attr);
    return 0;
}
