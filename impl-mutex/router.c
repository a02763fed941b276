/*
 * router-mutex: one thread per connection, one mutex around the connection table.
 *
 * Pattern: the acceptor gives each client an ID and a thread (common/thread_server.h). The
 * thread enters its client in the table, then parses frames and forwards each one itself: it
 * locks the table, finds the destination, writes to its socket. What the threads share (the
 * table, the stats) sits behind shared.lock.
 *
 * Lesson: the lock makes sharing correct, not fast. The default variant holds the lock across
 * the write, so one client that stops reading fills its socket, the write blocks, and every
 * other sender waits for the lock: head-of-line blocking. --variant deadlock holds a socket's
 * lock while its reader waits for input, so a frame for a waiting client is never written.
 *
 * Flaw: a thread per client, and even --variant per-connection-lock, which holds the table lock
 * only for the lookup, lets a slow destination stall every sender that writes to it.
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

#include "conn_table.h"
#include "frame.h"
#include "frame_groups.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "proto.h"
#include "reader.h"
#include "server.h"
#include "stats.h"
#include "thread_server.h"
#include "work.h"

static const char *const variants[] = {"global-lock", "deadlock", "per-connection-lock", NULL};
static const char *const variant_help[] = {
    "hold the table lock across the write (head-of-line blocking)",
    "hold a socket's lock while its reader waits (forwards nothing)",
    "table lock for the lookup only, a lock per socket for the write",
};
static const struct router_info info = {
    .name = "router-mutex",
    .summary = "One thread per connection; one mutex guards the connection table.",
    .variants = variants,
    .variant_help = variant_help,
};

enum variant { GLOBAL_LOCK, DEADLOCK, PER_CONNECTION_LOCK };

/*
 * One client. id and fd are set before the conn is published and never change.
 *
 * Lifetime: the fd is closed and the conn freed only when refs drops to 0. refs counts the
 * client's own thread (until conn_leave) and every sender that pinned the conn to write to it
 * (per-connection-lock and deadlock). A pin is taken under shared.lock while the conn is in the
 * table; its thread removes it from the table under the same lock, so no pin appears after that.
 * In global-lock senders do not pin: they write while holding shared.lock, and the owner cannot
 * remove its conn meanwhile. So an fd is never closed (and its number never reused) while
 * another thread may still write to it.
 *
 * Lock order: only the deadlock variant nests locks, taking shared.lock while its reader holds
 * its own sock_lock, never the other way round.
 */
struct conn {
    uint32_t id;
    int fd;
    pthread_mutex_t sock_lock; /* serializes writes to fd, except in global-lock */
    unsigned refs;             /* guarded by shared.lock */
    bool slow; /* no more writes: it took nothing for --write-timeout. Guarded like the
                  socket: by sock_lock, or in global-lock by shared.lock */
};

/* slide: mutex-state */
/* What the client threads share, and the one lock that guards all of it. */
static struct {
    pthread_mutex_t lock;    /* guards the table, the stats and every conn's refs */
    struct conn_table table; /* ID -> struct conn, for every connected client */
    struct stats stats;
} shared = {.lock = PTHREAD_MUTEX_INITIALIZER};
/* end slide */

static struct options opt;
static enum variant variant;

/* Delivering a destination's frames ends one of these ways; the reader counts and tells. */
enum delivery { DELIVERED, NO_SUCH_DEST, DEST_FAILED, DEST_SLOW, DEST_EVICTED };

static struct conn *conn_new(uint32_t id, int fd)
{
    struct conn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    int rc = pthread_mutex_init(&c->sock_lock, NULL);
    if (rc != 0) {
        log_warn("pthread_mutex_init: %s", strerror(rc));
        free(c);
        return NULL;
    }
    c->id = id;
    c->fd = fd;
    c->refs = 1; /* the client thread's */
    return c;
}

/* Find a conn by ID and pin it, so it outlives the caller's write even if its client leaves. */
static struct conn *conn_pin(uint32_t id)
{
    pthread_mutex_lock(&shared.lock);
    struct conn *c = conn_table_get(&shared.table, id);
    if (c)
        c->refs++;
    pthread_mutex_unlock(&shared.lock);
    return c;
}

/* Drop one reference; the last closes the socket and frees the conn. */
static void conn_unpin(struct conn *c)
{
    pthread_mutex_lock(&shared.lock);
    bool last = --c->refs == 0;
    pthread_mutex_unlock(&shared.lock);
    if (!last)
        return;
    if (close(c->fd) != 0)
        log_warn("close client %u: %s", c->id, strerror(errno));
    pthread_mutex_destroy(&c->sock_lock);
    free(c);
}

/* Write frames to c's socket, holding the lock that serializes its writes, unless it is a slow
 * consumer: one that took no byte for --write-timeout is one from then on (thread_server_write
 * shuts it). */
static enum delivery write_frames(struct conn *c, struct iovec *iov, size_t n)
{
    if (c->slow)
        return DEST_SLOW;
    enum client_write w = thread_server_write(c->id, c->fd, iov, n);
    c->slow = w == WRITE_TIMED_OUT;
    return w == WRITTEN ? DELIVERED : w == WRITE_GONE ? DEST_FAILED : DEST_EVICTED;
}

/* slide: mutex-forward */
/* global-lock: the table lock is held across the lookup AND the write. If the destination
 * stops reading, write() blocks with the lock held and every other sender waits behind it
 * (for --write-timeout at most: then the destination is a slow consumer, and is shut). */
static enum delivery deliver_global_lock(uint32_t dest, struct iovec *iov, size_t n)
{
    enum delivery d = NO_SUCH_DEST;
    pthread_mutex_lock(&shared.lock);
    struct conn *to = conn_table_get(&shared.table, dest);
    if (to)
        d = write_frames(to, iov, n);
    pthread_mutex_unlock(&shared.lock);
    return d;
}
/* end slide */

/* slide: mutex-per-connection-lock */
/* per-connection-lock (and deadlock): the table lock only finds and pins the destination; its
 * own lock keeps each write contiguous. A full socket now stalls only its own senders. */
static enum delivery deliver_per_connection_lock(uint32_t dest, struct iovec *iov, size_t n)
{
    struct conn *to = conn_pin(dest);
    if (!to)
        return NO_SUCH_DEST;
    pthread_mutex_lock(&to->sock_lock);
    enum delivery d = write_frames(to, iov, n);
    pthread_mutex_unlock(&to->sock_lock);
    conn_unpin(to);
    return d;
}
/* end slide */

static enum delivery deliver(uint32_t dest, struct iovec *iov, size_t n)
{
    if (variant == GLOBAL_LOCK)
        return deliver_global_lock(dest, iov, n);
    return deliver_per_connection_lock(dest, iov, n);
}

/* deadlock: the talk's Mutex<TcpStream>. One lock guards the whole socket, and the reader keeps
 * it while it waits for its client, letting go only to forward what arrived. A sender to a
 * client that waits for a frame blocks on sock_lock until that client speaks, which it never
 * does. The reader takes the lock before its ID goes out, so even the first frame finds it. */
/* slide: mutex-deadlock */
static void deadlock_hold(struct conn *c)
{
    if (variant == DEADLOCK)
        pthread_mutex_lock(&c->sock_lock);
}

static void deadlock_release(struct conn *c)
{
    if (variant == DEADLOCK)
        pthread_mutex_unlock(&c->sock_lock);
}
/* end slide */

/* n error frames, one reason, travel to the sender's own ID like any frame, in one write, so
 * they take the same lock as every other write to that socket and land between frames. */
static void send_error(struct conn *c, const char *reason, size_t n)
{
    if (!opt.error_frames)
        return;
    uint8_t frame[PROTO_ERROR_FRAME_MAX];
    struct iovec iov[FRAME_BATCH];
    iov_repeat(iov, n, frame, proto_error_frame(frame, "%s", reason));
    if (deliver(c->id, iov, n) != DELIVERED)
        return;
    pthread_mutex_lock(&shared.lock);
    shared.stats.error_frames += n;
    pthread_mutex_unlock(&shared.lock);
}

/* One destination's frames of one read: one write, then the counts, then the sender told:
 * once per frame for an unknown destination, once for a destination that failed. */
static void forward(struct conn *from, const struct frame_groups *g, size_t k)
{
    const struct frame_group *grp = &g->group[k];
    enum delivery d = deliver(grp->dest, (struct iovec *)g->iov + grp->first, grp->count);
    pthread_mutex_lock(&shared.lock);
    if (d == DELIVERED) {
        shared.stats.frames_forwarded += grp->count;
        shared.stats.bytes_forwarded += grp->bytes;
    } else {
        shared.stats.frames_dropped += grp->count;
    }
    shared.stats.slow_consumers += d == DEST_EVICTED;
    pthread_mutex_unlock(&shared.lock);

    char reason[64];
    if (d == NO_SUCH_DEST) {
        snprintf(reason, sizeof reason, "unknown destination %u", grp->dest);
        send_error(from, reason, grp->count);
    } else if (d != DELIVERED) {
        snprintf(reason, sizeof reason, "destination %u %s", grp->dest,
                 d == DEST_FAILED ? "failed" : "too slow");
        send_error(from, reason, 1);
    }
}

/* The frames of one read: their --work-us (in this thread, outside any lock, so in parallel
 * with the others), then one write per destination, before the next read. */
static bool forward_frames(void *ctx, const struct frame *frames, size_t n)
{
    struct conn *c = ctx;
    deadlock_release(c);
    for (size_t i = 0; opt.work_us > 0 && i < n; i++)
        work_do(frames[i].body, frames[i].body_len, opt.work_us);
    pthread_mutex_lock(&shared.lock);
    shared.stats.frames_worked += opt.work_us > 0 ? n : 0;
    pthread_mutex_unlock(&shared.lock);
    struct frame_groups g;
    frame_groups_build(&g, frames, n);
    for (size_t k = 0; k < g.ngroups; k++)
        forward(c, &g, k);
    deadlock_hold(c);
    return true;
}

/* The reader's first step: enter the table and send the ID, in one critical section. Senders
 * look clients up under this lock, so they find this one only once its ID is in the socket:
 * no frame overtakes the ID, and a client that holds its ID can already be reached. A fresh
 * socket has an empty buffer, so this small write does not block. */
static void *conn_join(struct client_thread *t)
{
    struct conn *c = conn_new(t->id, t->fd);
    if (!c)
        return NULL;
    uint8_t wire_id[PROTO_ID_LEN];
    frame_put_u32(wire_id, c->id);
    deadlock_hold(c);
    pthread_mutex_lock(&shared.lock);
    if (!conn_table_put(&shared.table, c->id, c))
        log_fatal("connection table: cannot add client %u", c->id);
    bool sent = net_write_all(c->fd, wire_id, sizeof wire_id) == 0;
    if (sent)
        shared.stats.clients_served++;
    pthread_mutex_unlock(&shared.lock);
    log_debug("client %u %s", c->id, sent ? "connected" : "left before its ID arrived");
    return c; /* if the ID was not sent, the first read fails */
}

/* The reader's last step: leave the table, wake any sender blocked on this socket, let go.
 * After a frame too long, say so; the client may still be sending: linger, so that it reads its
 * error frame and what came before it, not a reset. */
static void conn_leave(void *conn, struct client_thread *t, enum read_end end)
{
    struct conn *c = conn;
    bool too_long = end == READ_TOO_LONG;
    deadlock_release(c);
    if (too_long)
        send_error(c, "message too long", 1);
    pthread_mutex_lock(&shared.lock);
    conn_table_remove(&shared.table, c->id);
    pthread_mutex_unlock(&shared.lock);
    if (too_long)
        net_linger(c->fd, NET_LINGER_MS);
    client_thread_leave(t);
    /* A sender that pinned c before the removal may sit in write(): now it gets EPIPE. */
    if (shutdown(c->fd, SHUT_RDWR) != 0 && errno != ENOTCONN)
        log_warn("shutdown client %u: %s", c->id, strerror(errno));
    log_debug("client %u left", c->id);
    conn_unpin(c); /* the client thread's own reference */
}

static void print_stats(void)
{
    pthread_mutex_lock(&shared.lock);
    struct stats now = shared.stats;
    pthread_mutex_unlock(&shared.lock);
    server_print_stats(&info, &now);
}

int main(int argc, char **argv)
{
    int listen_fd = server_start(argc, argv, &info, &opt);
    variant = strcmp(opt.variant, "deadlock") == 0              ? DEADLOCK
              : strcmp(opt.variant, "per-connection-lock") == 0 ? PER_CONNECTION_LOCK
                                                                : GLOBAL_LOCK;
    if (conn_table_init(&shared.table, opt.max_clients) != 0)
        log_fatal("connection table: out of memory");
    struct thread_server srv = {.opt = &opt,
                                .join = conn_join,
                                .forward = forward_frames,
                                .leave = conn_leave,
                                .print_stats = print_stats};
    if (!thread_server_run(&srv, listen_fd))
        return 1;

    pthread_mutex_lock(&shared.lock);
    shared.stats.error_frames += srv.refusals;
    pthread_mutex_unlock(&shared.lock);
    server_finish(&info, &shared.stats);
    conn_table_free(&shared.table);
    return 0;
}
