/*
 * router-channels: threads that own their state and talk through bounded channels (CSP).
 *
 * Pattern: one dispatcher thread owns the connection table and the stats, and no other thread
 * touches them. The acceptor hands it each new socket. Per client, a reader thread parses
 * frames and sends them to the dispatcher, and a writer thread, fed by its own bounded channel,
 * owns the socket's sending side: the dispatcher never waits on a socket or on a writer.
 *
 * Lesson: nothing is shared, so nothing is locked; but every interaction is now a message, and
 * the hard parts need channels of their own. Backpressure: a reader whose frames wait for a
 * full destination gets no go-ahead token and reads nothing more. Errors: a failed write is
 * reported back to the dispatcher, which tells the sender.
 *
 * Flaw: complexity. Eight kinds of message, state handed from thread to thread, action at a
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
#include <unistd.h>

#include "channel.h"
#include "conn_table.h"
#include "frame.h"
#include "ids.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "proto.h"
#include "reader.h"
#include "server.h"
#include "stats.h"

#define THREAD_STACK_SIZE (64 * 1024) /* readers and writers keep their buffers on the heap */
#define INBOX_CAPACITY 1024           /* messages waiting for the dispatcher */
#define WRITER_CAPACITY_MAX 4096      /* frames in one writer channel, whatever --max-pending */

static const struct router_info info = {
    .name = "router-channels",
    .summary = "A dispatcher thread owns the state; readers and writers talk to it through "
               "bounded channels.",
};

/* An item on a writer channel: bytes on the heap, which the writer frees once written. */
/* OUT_LINGER is the last item for a client sent away: it carries no bytes (see net_linger). */
enum outgoing_kind { OUT_ID, OUT_FRAME, OUT_ERROR, OUT_LINGER };
struct outgoing {
    enum outgoing_kind kind;
    uint32_t src; /* OUT_FRAME: who sent it, to be told if it cannot be written */
    uint8_t *bytes;
    size_t len;
};

/* An item waiting for room in a full writer channel. Its owner is the reader that caused it:
 * that reader gets no go-ahead until the item has moved into the channel. */
struct parked {
    struct parked *next;
    struct outgoing out;
    uint32_t owner;
};

/*
 * One client. id and fd are set before its threads start and never change; `written` is the
 * writer's until its last message. The fields below the line are the dispatcher's alone. No
 * field is shared: the channels carry everything else. The dispatcher frees a conn once both of
 * its threads have sent their last message.
 */
struct conn {
    uint32_t id;
    int fd;
    struct channel writer_channel; /* dispatcher -> writer: struct outgoing */
    struct channel go_ahead;       /* dispatcher -> reader: the permission token, one slot */
    struct stats written;          /* the writer's counts, handed over by its last message */
    pthread_t threads[2];          /* the writer, then the reader */
    int started, running;          /* threads created, and not yet exited */

    /* ---- the dispatcher's ---- */
    struct parked *parked, **parked_tail; /* items for this client waiting for room, in order */
    size_t held;                          /* items this client sent that are parked somewhere */
    bool wants_go_ahead;                  /* its reader waits for the token */
    bool retired;                         /* its ID is out of the table; channels closed */
    struct conn *prev, *next;             /* on state.conns until freed */
};

/* Every message any thread sends to the dispatcher. */
enum message_kind {
    NEW_CONNECTION, /* acceptor: fd, a client just accepted */
    FRAME,          /* reader: conn sends body to peer; the message owns body */
    READ_DONE,      /* reader: every frame of one read is sent; it waits for its go-ahead */
    WRITER_ROOM,    /* writer: it took an item from its full channel */
    WRITE_FAILED,   /* writer: an item could not be written; peer is its sender (0: the router) */
    DISCONNECT,     /* reader, its last: EOF, an error, or too_long */
    WRITER_EXIT,    /* writer, its last: its channel was closed and is empty */
    PRINT_STATS,    /* acceptor: --stats-interval passed */
    SHUTDOWN,       /* acceptor, its last: SIGINT or SIGTERM */
};

struct message {
    enum message_kind kind;
    struct conn *conn; /* the client it is about; its own reader or writer sent it */
    int fd;            /* NEW_CONNECTION */
    uint32_t peer;     /* FRAME: the destination; WRITE_FAILED: the frame's sender */
    bool too_long;     /* DISCONNECT */
    uint8_t *body;     /* FRAME: payload and NUL, on the heap */
    size_t len;
};

static struct options opt;
static struct channel inbox; /* every thread sends here; only the dispatcher receives */
static size_t writer_capacity;
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

/* Send a message to the dispatcher. The inbox is never closed: this only waits while it is full,
 * and the dispatcher, which waits for nothing else, always empties it. */
static void tell(struct message m)
{
    channel_send(&inbox, &m, CHANNEL_FOREVER);
}

/* ---- backpressure: the permission token ----
 *
 * After each read's frames the reader asks to go on (READ_DONE) and waits for a token on its
 * go_ahead channel. The dispatcher, which never waits for a writer, parks a frame whose
 * destination channel is full and holds its sender: no token until the frame has moved. So a
 * sender to a slow client stops reading, memory stays bounded, and nobody else waits.
 */

/* slide: channels-backpressure */
static bool wait_for_go_ahead(struct conn *c) /* the reader; false: its client was retired */
{
    tell((struct message){.kind = READ_DONE, .conn = c});
    char token;
    return channel_recv(&c->go_ahead, &token, CHANNEL_FOREVER) > 0;
}

static void queue(struct conn *to, struct outgoing out, uint32_t owner) /* the dispatcher */
{
    if (!to->parked && channel_send(&to->writer_channel, &out, 0) == CHANNEL_OK)
        return; /* 0: try, never wait. Once one item is parked, the rest queue behind it. */
    struct parked *p = xmalloc(sizeof *p);
    *p = (struct parked){.out = out, .owner = owner};
    *to->parked_tail = p;
    to->parked_tail = &p->next;
    struct conn *o = conn_table_get(&state.table, owner);
    if (o)
        o->held++; /* no token for its reader until p has moved */
}
/* end slide */

/* The reader gets its token once it has asked and none of its items is parked. */
static void maybe_go_ahead(struct conn *c)
{
    if (!c->wants_go_ahead || c->held > 0)
        return;
    c->wants_go_ahead = false;
    char token = 1;
    /* One slot, and at most one token outstanding: never full. Closed if c is retired. */
    channel_send(&c->go_ahead, &token, 0);
}

/* READ_DONE: the reader asks for its token. */
static void permit(struct conn *c)
{
    c->wants_go_ahead = true;
    maybe_go_ahead(c);
}

/* A parked item moved or was dropped: its owner, if still connected, is held by one less. */
static void release(uint32_t owner)
{
    struct conn *o = conn_table_get(&state.table, owner);
    if (o) {
        o->held--;
        maybe_go_ahead(o);
    }
}

/* WRITER_ROOM: move parked items into the channel, oldest first, while there is room. */
static void refill(struct conn *to)
{
    struct parked *p;
    while ((p = to->parked) && channel_send(&to->writer_channel, &p->out, 0) == CHANNEL_OK) {
        to->parked = p->next;
        if (!to->parked)
            to->parked_tail = &to->parked;
        release(p->owner);
        free(p);
    }
    if (to->retired && !to->parked) /* a client sent away: its last items are in */
        channel_close(&to->writer_channel);
}

/* ---- the reader: one per client ---- */

/* Hand one frame to the dispatcher, in a copy that the message owns. */
static void forward(struct conn *c, const struct frame *f)
{
    uint8_t *body = xmalloc(f->body_len);
    memcpy(body, f->body, f->body_len);
    tell((struct message){
        .kind = FRAME, .conn = c, .peer = f->dest, .body = body, .len = f->body_len});
}

/* The frames of one read, each to the dispatcher; then wait for the go-ahead to read again. */
static bool forward_frames(void *ctx, const struct frame *frames, size_t n)
{
    struct conn *c = ctx;
    for (size_t i = 0; i < n; i++)
        forward(c, &frames[i]);
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

static void count_written(struct stats *s, const struct outgoing *out)
{
    if (out->kind == OUT_FRAME) {
        s->frames_forwarded++;
        s->bytes_forwarded += out->len;
    } else if (out->kind == OUT_ERROR) {
        s->error_frames++;
    }
}

/* Write one item to the client. OUT_LINGER writes nothing: it lets the client read everything
 * before it, the error frame last, before the socket closes. */
static int write_out(struct conn *c, const struct outgoing *out)
{
    if (out->kind == OUT_LINGER) {
        net_linger(c->fd, NET_LINGER_MS);
        return 0;
    }
    return net_write_all(c->fd, out->bytes, out->len);
}

/* The writer owns the sending side of one socket, and is the only thread that waits on it: a
 * client that stops reading stalls its own writer and nobody else. */
/* slide: channels-writer */
static void *writer_main(void *arg)
{
    struct conn *c = arg;
    struct outgoing out;
    bool failed = false;
    int queued;
    while ((queued = channel_recv(&c->writer_channel, &out, CHANNEL_FOREVER)) > 0) {
        if ((size_t)queued == writer_capacity) /* it was full: parked items can move now */
            tell((struct message){.kind = WRITER_ROOM, .conn = c});
        if (!failed && write_out(c, &out) != 0)
            failed = true; /* the client is gone: every item from now on is dropped */
        if (failed)
            tell((struct message){.kind = WRITE_FAILED, .conn = c, .peer = out.src});
        else
            count_written(&c->written, &out);
        free(out.bytes);
    }
    tell((struct message){.kind = WRITER_EXIT, .conn = c});
    return NULL;
}
/* end slide */

/* ---- the dispatcher: one, and the only thread that touches `state` ---- */

/* An error frame travels like any frame: on the client's own writer channel, in turn. */
static void send_error(uint32_t to_id, const char *reason)
{
    struct conn *to = conn_table_get(&state.table, to_id);
    if (!opt.error_frames || !to)
        return;
    uint8_t *bytes = xmalloc(PROTO_ERROR_FRAME_MAX);
    size_t len = proto_error_frame(bytes, "%s", reason);
    queue(to, (struct outgoing){.kind = OUT_ERROR, .bytes = bytes, .len = len}, to_id);
}

/* FRAME: find the destination in the table that only this thread touches, and queue. */
static void deliver(struct conn *from, uint32_t dest, uint8_t *body, size_t len)
{
    struct conn *to = conn_table_get(&state.table, dest);
    if (to) {
        struct outgoing out = {.kind = OUT_FRAME, .src = from->id, .bytes = body, .len = len};
        queue(to, out, from->id);
        return;
    }
    free(body);
    state.stats.frames_dropped++;
    char reason[64];
    snprintf(reason, sizeof reason, "unknown destination %u", dest);
    send_error(from->id, reason);
}

/* A frame for c will never be written: count it, and tell its sender if still connected. */
static void drop_frame(struct conn *c, uint32_t src)
{
    state.stats.frames_dropped++;
    char reason[64];
    snprintf(reason, sizeof reason, "destination %u failed", c->id);
    send_error(src, reason);
}

/* The client is gone, or being sent away. Its ID dies here; parked frames are dropped and their
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
     * back as WRITE_FAILED messages, one per frame. */
    if (!flush && shutdown(c->fd, SHUT_RDWR) != 0 && errno != ENOTCONN)
        log_warn("shutdown client %u: %s", c->id, strerror(errno));
    struct parked **pp = &c->parked, *p;
    while ((p = *pp)) {
        if (flush && p->out.kind == OUT_ERROR) { /* it still gets told why */
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        if (p->out.kind == OUT_FRAME)
            drop_frame(c, p->out.src);
        release(p->owner);
        free(p->out.bytes);
        free(p);
    }
    c->parked_tail = pp;
    channel_close(&c->go_ahead);
    if (flush)
        queue(c, (struct outgoing){.kind = OUT_LINGER}, 0);
    if (!c->parked)
        channel_close(&c->writer_channel);
}

static struct conn *conn_new(uint32_t id, int fd)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    if (channel_init(&c->writer_channel, sizeof(struct outgoing), writer_capacity) != 0) {
        free(c);
        return NULL;
    }
    if (channel_init(&c->go_ahead, 1, 1) != 0) {
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
    struct outgoing out;
    while (channel_recv(&c->writer_channel, &out, 0) > 0)
        free(out.bytes);
    if (close(c->fd) != 0)
        log_warn("close client %u: %s", c->id, strerror(errno));
    channel_destroy(&c->writer_channel);
    channel_destroy(&c->go_ahead);
    free(c);
}

/* One of c's threads sent its last message. After the second, each join below waits only for
 * a thread to return; then the writer's counts join the stats and c goes. */
static void thread_exited(struct conn *c)
{
    if (--c->running > 0)
        return;
    for (int i = 0; i < c->started; i++)
        pthread_join(c->threads[i], NULL);
    state.stats.frames_forwarded += c->written.frames_forwarded;
    state.stats.bytes_forwarded += c->written.bytes_forwarded;
    state.stats.error_frames += c->written.error_frames;
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

/* NEW_CONNECTION: an ID, queued as the first item of the client's own writer channel; then the
 * table, where senders find it; then its writer and reader threads. A retired client still
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
    uint8_t *wire_id = xmalloc(PROTO_ID_LEN);
    frame_put_u32(wire_id, id);
    struct outgoing first = {.kind = OUT_ID, .bytes = wire_id, .len = PROTO_ID_LEN};
    channel_send(&c->writer_channel, &first, 0); /* an empty channel has room */

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
    case WRITE_FAILED: /* c's client is gone, and the frame with it: tell the frame's sender */
        retire(c, false);
        if (m->peer != 0) /* 0: the router's own bytes, an ID or an error frame */
            drop_frame(c, m->peer);
        break;
    case DISCONNECT: /* EOF or a read error; or a frame too long: say so last, then close */
        if (m->too_long && !c->retired)
            send_error(c->id, "message too long");
        retire(c, m->too_long);
        thread_exited(c);
        break;
    case WRITER_EXIT:
        thread_exited(c);
        break;

    default: /* SHUTDOWN, the acceptor's last message */
        stop_all();
        break;
    }
    /* end slide */
}

/* The dispatcher: it waits on its inbox and on nothing else, and finishes each message before
 * it takes the next, so the state it owns is never seen half-changed. */
static void *dispatcher_main(void *arg)
{
    (void)arg;
    struct message m;
    /* slide: channels-dispatcher */
    while (!state.stopping || state.conns) {
        channel_recv(&inbox, &m, CHANNEL_FOREVER);
        switch (m.kind) {
        case NEW_CONNECTION:
            admit(m.fd);
            break;
        case FRAME:
            deliver(m.conn, m.peer, m.body, m.len);
            break;
        case READ_DONE:
            permit(m.conn);
            break;
        case WRITER_ROOM:
            refill(m.conn);
            break;
        default:
            lifecycle(&m);
            break;
        }
    }
    /* end slide */
    return NULL;
}

/*
 * A writer channel holds --max-pending / (--max-message + 1) frames, at least 2: then frames
 * waiting for one client never exceed --max-pending bytes, even at the largest size. Counting
 * frames rather than bytes keeps the channel simple. Past that, senders wait (parked items are
 * bounded too: at most one read's frames per waiting reader).
 */
static void router_init(void)
{
    size_t frames = opt.max_pending / (opt.max_message + 1);
    writer_capacity = frames < 2 ? 2 : frames > WRITER_CAPACITY_MAX ? WRITER_CAPACITY_MAX : frames;
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
