/*
 * router-naive: one thread per connection, and a connection table shared with no lock at all.
 *
 * Pattern: the program Rust refuses to compile. It is router-mutex with the pattern's locks
 * taken out (diff the two files; only the shutdown bookkeeping keeps its own): reader threads
 * enter and leave the table, look each other up, write to each other's sockets and bump the
 * stats, all at once.
 *
 * Lesson: it passes a quiet test and breaks once threads overlap, which even one client
 * leaving as the next arrives is enough for. The data races, by function:
 *  - conn_join's conn_table_put, conn_leave's conn_table_remove (backward shift moves slots)
 *    and deliver's conn_table_get touch the same slots and count. An insert can be lost, a
 *    removed client resurrected, count can wrap below 0 so every later insert fails ("cannot
 *    add client"), and a probe can read a slot mid-move (one entry's id with another's conn)
 *    and send a frame to the wrong client, or miss one that is there.
 *  - deliver: two readers writing to one destination interleave once a write blocks half-way
 *    (a full socket), so a frame is no longer contiguous.
 *  - forward, send_error, conn_join: stats++ from many threads loses increments.
 *  - conn_leave closes and frees a conn that another reader may be writing to in deliver: a
 *    use after free, or a write to an fd number the acceptor has just handed to a new client.
 *  - conn_join puts a client in the table before its ID goes out: a sender that guesses the
 *    ID gets its frame in ahead of the ID.
 * ThreadSanitizer reports them: tests/race_check.sh.
 *
 * Flaw: undefined behaviour. rustc rejects the same design: in the talk, a method taking
 * &mut self loops on accept and passes `async move { self.handle_connection(socket).await }` to
 * tokio::spawn, which wants a 'static future. rustc answers E0521, "borrowed data escapes
 * outside of method": self is a borrow that lives only for the call, and it would escape into
 * a task that may outlive it. It adds E0382: the &mut self moved into the first task, so the
 * next loop iteration has none to give; two tasks can never hold it at once. Sharing needs
 * shared ownership (Arc) and synchronization (a Mutex, or channels): router-mutex, -channels.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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

#define READER_STACK_SIZE (64 * 1024) /* a reader keeps its buffer on the heap */
#define STOP_TIMEOUT_SEC 5            /* how long shutdown waits for the reader threads */

static const struct router_info info = {
    .name = "router-naive",
    .summary = "One thread per connection; the connection table is shared with no lock (racy).",
};

/* One client. id and fd are set before the conn is published and never change. */
struct conn {
    uint32_t id;
    int fd;
    struct conn *prev, *next; /* on readers.list while the reader runs; readers.lock */
};

/* slide: naive-state */
/* What the reader threads share, with nothing to guard it. */
static struct {
    struct conn_table table; /* ID -> struct conn, for every connected client */
    struct stats stats;
} shared;
/* end slide */

/*
 * Bookkeeping for shutdown, not for forwarding: the conns whose reader thread runs. This is
 * the one lock left, copied from router-mutex so that a clean exit does not depend on luck; it
 * is no part of the pattern and guards nothing the reader threads forward with.
 */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t done; /* signalled when count drops to 0 */
    struct conn *list;
    size_t count; /* reader threads not yet finished */
} readers = {.lock = PTHREAD_MUTEX_INITIALIZER};

static struct options opt;
static struct id_allocator ids; /* the acceptor's alone */
static uint64_t refusals;       /* error frames sent by refuse(); the acceptor's alone */
static pthread_attr_t reader_attr;

/* Delivering one frame ends one of three ways; the reader counts it and tells the sender. */
enum delivery { DELIVERED, NO_SUCH_DEST, DEST_FAILED };

static struct conn *conn_new(uint32_t id, int fd)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->id = id;
    c->fd = fd;
    return c;
}

/* Close the socket and free the conn, whoever may still be writing to it. */
static void conn_free(struct conn *c)
{
    if (close(c->fd) != 0)
        log_warn("close client %u: %s", c->id, strerror(errno));
    free(c);
}

static void readers_add(struct conn *c)
{
    pthread_mutex_lock(&readers.lock);
    c->next = readers.list;
    if (readers.list)
        readers.list->prev = c;
    readers.list = c;
    readers.count++;
    pthread_mutex_unlock(&readers.lock);
}

/* Take c off the list before its fd may be closed, so shutdown never touches a closed fd. */
static void readers_remove(struct conn *c)
{
    pthread_mutex_lock(&readers.lock);
    if (c->prev)
        c->prev->next = c->next;
    else
        readers.list = c->next;
    if (c->next)
        c->next->prev = c->prev;
    pthread_mutex_unlock(&readers.lock);
}

/* A reader's very last step: after it, the thread touches no shared state. */
static void readers_done(void)
{
    pthread_mutex_lock(&readers.lock);
    if (--readers.count == 0)
        pthread_cond_broadcast(&readers.done);
    pthread_mutex_unlock(&readers.lock);
}

/* slide: naive-forward */
/* Look the destination up and write to it, while other threads insert, remove and write. */
static enum delivery deliver(uint32_t dest, const void *bytes, size_t len)
{
    enum delivery d = NO_SUCH_DEST;
    struct conn *to = conn_table_get(&shared.table, dest);
    if (to)
        d = net_write_all(to->fd, bytes, len) == 0 ? DELIVERED : DEST_FAILED;
    return d;
}
/* end slide */

/* An error frame travels to the sender's own ID like any frame. */
static void send_error(struct conn *c, const char *reason)
{
    if (!opt.error_frames)
        return;
    uint8_t frame[PROTO_ERROR_FRAME_MAX];
    size_t n = proto_error_frame(frame, "%s", reason);
    if (deliver(c->id, frame, n) != DELIVERED)
        return;
    shared.stats.error_frames++;
}

static void forward(struct conn *from, const struct frame *f)
{
    enum delivery d = deliver(f->dest, f->body, f->body_len);
    if (d == DELIVERED) {
        shared.stats.frames_forwarded++;
        shared.stats.bytes_forwarded += f->body_len;
    } else {
        shared.stats.frames_dropped++;
    }

    char reason[64];
    if (d == NO_SUCH_DEST) {
        snprintf(reason, sizeof reason, "unknown destination %u", f->dest);
        send_error(from, reason);
    } else if (d == DEST_FAILED) {
        snprintf(reason, sizeof reason, "destination %u failed", f->dest);
        send_error(from, reason);
    }
}

/* Read, and forward every complete frame before reading again. A frame too long ends it:
 * returns true then. */
static bool read_frames(struct conn *c)
{
    struct frame_reader r;
    if (frame_reader_init(&r, c->fd, opt.max_message) != 0) {
        log_warn("client %u: out of memory", c->id);
        return false;
    }
    struct frame f;
    int got = FRAME_NEED_MORE;
    ssize_t n = 0;
    while (got == FRAME_NEED_MORE && (n = frame_reader_fill(&r)) > 0) {
        while ((got = frame_reader_next(&r, &f)) > 0)
            forward(c, &f);
        if (got == FRAME_TOO_LONG)
            send_error(c, "message too long");
    }
    if (n < 0)
        log_debug("read client %u: %s", c->id, strerror(errno));
    frame_reader_free(&r);
    return got == FRAME_TOO_LONG;
}

/* The reader's first step: enter the table, then send the ID, so that a client that holds its
 * ID can already be reached. */
static bool conn_join(struct conn *c)
{
    uint8_t wire_id[PROTO_ID_LEN];
    frame_put_u32(wire_id, c->id);
    if (!conn_table_put(&shared.table, c->id, c))
        log_fatal("connection table: cannot add client %u", c->id);
    bool sent = net_write_all(c->fd, wire_id, sizeof wire_id) == 0;
    if (sent)
        shared.stats.clients_served++;
    log_debug("client %u %s", c->id, sent ? "connected" : "left before its ID arrived");
    return sent;
}

/* The reader's last step: leave the table, close, free. After a frame too long the client
 * may still be sending: linger, so that it reads its error frame, not a reset. */
static void conn_leave(struct conn *c, bool too_long)
{
    conn_table_remove(&shared.table, c->id);
    if (too_long)
        net_linger(c->fd, NET_LINGER_MS);
    readers_remove(c);
    log_debug("client %u left", c->id);
    conn_free(c);
}

static void *reader_main(void *arg)
{
    struct conn *c = arg;
    bool too_long = conn_join(c) && read_frames(c);
    conn_leave(c, too_long);
    readers_done();
    return NULL;
}

/* Tell a client it cannot be taken, and close it. It has no ID, so no one else can write to it. */
static void refuse(int fd, const char *reason)
{
    if (opt.error_frames) {
        uint8_t frame[PROTO_ERROR_FRAME_MAX];
        size_t n = proto_error_frame(frame, "%s", reason);
        if (net_write_all(fd, frame, n) == 0)
            refusals++;
    }
    if (close(fd) != 0)
        log_warn("close: %s", strerror(errno));
}

/* The acceptor: a place, an ID, a reader thread, which introduces its client itself. */
static void router_accept(int fd)
{
    pthread_mutex_lock(&readers.lock);
    bool full = readers.count >= opt.max_clients;
    pthread_mutex_unlock(&readers.lock);
    uint32_t id;
    if (full || !ids_next(&ids, &id)) {
        refuse(fd, "server full");
        return;
    }
    struct conn *c = conn_new(id, fd);
    if (!c) {
        log_warn("client %u: out of memory", id);
        refuse(fd, "out of memory");
        return;
    }
    readers_add(c);
    pthread_t thread;
    int rc = pthread_create(&thread, &reader_attr, reader_main, c);
    if (rc != 0) {
        log_warn("pthread_create: %s", strerror(rc));
        readers_remove(c);
        conn_free(c);
        readers_done();
    }
}

static void router_init(void)
{
    ids_init(&ids, opt.ids);
    if (conn_table_init(&shared.table, opt.max_clients) != 0)
        log_fatal("connection table: out of memory");

    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);
    if (rc == 0)
        rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(&readers.done, &ca);
    if (rc == 0)
        rc = pthread_condattr_destroy(&ca);
    if (rc == 0)
        rc = pthread_attr_init(&reader_attr);
    if (rc == 0)
        rc = pthread_attr_setstacksize(&reader_attr, READER_STACK_SIZE);
    if (rc == 0)
        rc = pthread_attr_setdetachstate(&reader_attr, PTHREAD_CREATE_DETACHED);
    if (rc != 0)
        log_fatal("thread setup: %s", strerror(rc));
}

/* Shut every client's socket, which wakes readers blocked in read() and senders blocked in
 * write(), then wait for the reader threads. Returns false if some did not finish in time. */
static bool router_stop(void)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += STOP_TIMEOUT_SEC;

    pthread_mutex_lock(&readers.lock);
    for (struct conn *c = readers.list; c; c = c->next)
        if (shutdown(c->fd, SHUT_RDWR) != 0 && errno != ENOTCONN)
            log_warn("shutdown client %u: %s", c->id, strerror(errno));
    int rc = 0;
    while (readers.count > 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&readers.done, &readers.lock, &deadline);
    size_t left = readers.count;
    pthread_mutex_unlock(&readers.lock);
    if (left > 0)
        log_warn("%zu reader threads did not finish", left);
    return left == 0;
}

int main(int argc, char **argv)
{
    int listen_fd = server_start(argc, argv, &info, &opt);
    router_init();
    int fd;
    while ((fd = server_wait_accept(listen_fd)) >= 0)
        router_accept(fd);
    if (close(listen_fd) != 0)
        log_warn("close listener: %s", strerror(errno));
    if (!router_stop())
        return 1;

    shared.stats.error_frames += refusals;
    server_finish(&info, &shared.stats);
    conn_table_free(&shared.table);
    pthread_attr_destroy(&reader_attr);
    pthread_cond_destroy(&readers.done);
    return 0;
}
