/*
 * router-naive: one thread per connection, and a connection table shared with no lock at all.
 *
 * Pattern: the program Rust refuses to compile. It is router-mutex with the pattern's locks
 * taken out (diff the two files): client threads enter and leave the table, look each other up,
 * write to each other's sockets and bump the stats, all at once. Accepting, the thread per
 * client and shutdown are common/thread_server.h, and no part of the pattern.
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

static const struct router_info info = {
    .name = "router-naive",
    .summary = "One thread per connection; the connection table is shared with no lock (racy).",
};

/* One client. id and fd are set before the conn is published and never change. */
struct conn {
    uint32_t id;
    int fd;
    bool slow; /* its socket took nothing for --write-timeout: no more writes to it */
};

/* slide: naive-state */
/* What the client threads share, with nothing to guard it. */
static struct {
    struct conn_table table; /* ID -> struct conn, for every connected client */
    struct stats stats;
} shared;
/* end slide */

static struct options opt;

/* Delivering a destination's frames ends one of these ways; the reader counts and tells. */
enum delivery { DELIVERED, NO_SUCH_DEST, DEST_FAILED, DEST_SLOW, DEST_EVICTED };

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

/* Write frames to c's socket, unless it is a slow consumer: one that
 * took no byte for --write-timeout is one from then on (thread_server_write shuts it). */
static enum delivery write_frames(struct conn *c, struct iovec *iov, size_t n)
{
    if (c->slow)
        return DEST_SLOW;
    enum client_write w = thread_server_write(c->id, c->fd, iov, n);
    c->slow = w == WRITE_TIMED_OUT;
    return w == WRITTEN ? DELIVERED : w == WRITE_GONE ? DEST_FAILED : DEST_EVICTED;
}

/* slide: naive-forward */
/* Look the destination up and write its frames, while other threads insert, remove and write. */
static enum delivery deliver(uint32_t dest, struct iovec *iov, size_t n)
{
    enum delivery d = NO_SUCH_DEST;
    struct conn *to = conn_table_get(&shared.table, dest);
    if (to)
        d = write_frames(to, iov, n);
    return d;
}
/* end slide */

/* n error frames, one reason, travel to the sender's own ID like any frame, in one write. */
static void send_error(struct conn *c, const char *reason, size_t n)
{
    if (!opt.error_frames)
        return;
    uint8_t frame[PROTO_ERROR_FRAME_MAX];
    struct iovec iov[FRAME_BATCH];
    iov_repeat(iov, n, frame, proto_error_frame(frame, "%s", reason));
    if (deliver(c->id, iov, n) != DELIVERED)
        return;
    shared.stats.error_frames += n;
}

/* One destination's frames of one read: one write, then the counts, then the sender told:
 * once per frame for an unknown destination, once for a destination that failed. */
static void forward(struct conn *from, const struct frame_groups *g, size_t k)
{
    const struct frame_group *grp = &g->group[k];
    enum delivery d = deliver(grp->dest, (struct iovec *)g->iov + grp->first, grp->count);
    if (d == DELIVERED) {
        shared.stats.frames_forwarded += grp->count;
        shared.stats.bytes_forwarded += grp->bytes;
    } else {
        shared.stats.frames_dropped += grp->count;
    }
    shared.stats.slow_consumers += d == DEST_EVICTED;

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

/* The frames of one read: their --work-us (in this thread, so in parallel with the others),
 * then one write per destination, before the next read. */
static bool forward_frames(void *ctx, const struct frame *frames, size_t n)
{
    struct conn *c = ctx;
    for (size_t i = 0; opt.work_us > 0 && i < n; i++)
        work_do(frames[i].body, frames[i].body_len, opt.work_us);
    shared.stats.frames_worked += opt.work_us > 0 ? n : 0;
    struct frame_groups g;
    frame_groups_build(&g, frames, n);
    for (size_t k = 0; k < g.ngroups; k++)
        forward(c, &g, k);
    return true;
}

/* The reader's first step: enter the table, then send the ID, so that a client that holds its
 * ID can already be reached. */
static void *conn_join(struct client_thread *t)
{
    struct conn *c = conn_new(t->id, t->fd);
    if (!c)
        return NULL;
    uint8_t wire_id[PROTO_ID_LEN];
    frame_put_u32(wire_id, c->id);
    if (!conn_table_put(&shared.table, c->id, c))
        log_fatal("connection table: cannot add client %u", c->id);
    bool sent = net_write_all(c->fd, wire_id, sizeof wire_id) == 0;
    if (sent)
        shared.stats.clients_served++;
    log_debug("client %u %s", c->id, sent ? "connected" : "left before its ID arrived");
    return c; /* if the ID was not sent, the first read fails */
}

/* The reader's last step: leave the table, close, free. After a frame too long, say so; the
 * client may still be sending: linger, so that it reads its error frame, not a reset. */
static void conn_leave(void *conn, struct client_thread *t, enum read_end end)
{
    struct conn *c = conn;
    bool too_long = end == READ_TOO_LONG;
    if (too_long)
        send_error(c, "message too long", 1);
    conn_table_remove(&shared.table, c->id);
    if (too_long)
        net_linger(c->fd, NET_LINGER_MS);
    client_thread_leave(t);
    log_debug("client %u left", c->id);
    conn_free(c);
}

static void print_stats(void)
{
    server_print_stats(&info, &shared.stats);
}

int main(int argc, char **argv)
{
    int listen_fd = server_start(argc, argv, &info, &opt);
    if (conn_table_init(&shared.table, opt.max_clients) != 0)
        log_fatal("connection table: out of memory");
    struct thread_server srv = {.opt = &opt,
                                .join = conn_join,
                                .forward = forward_frames,
                                .leave = conn_leave,
                                .print_stats = print_stats};
    if (!thread_server_run(&srv, listen_fd))
        return 1;

    shared.stats.error_frames += srv.refusals;
    server_finish(&info, &shared.stats);
    conn_table_free(&shared.table);
    return 0;
}
