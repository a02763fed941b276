/*
 * router-sansio - the router as a state machine with no I/O (core.c), driven by a hand-written
 * poll(2) loop (this file).
 *
 * Pattern: sans-IO. The protocol and the routing live in a plain state machine that takes
 * events (connected, bytes arrived, the socket took n bytes, closed, time passed) and answers
 * with actions (write these bytes, stop or resume reading, close). It owns no socket, reads no
 * clock and starts no thread. This file is the only one that does I/O: one poll() over the
 * listener, the signalfd and every client, feeding what happens to the core and doing what it
 * says - the blog's poll_next, in C.
 * Lesson: with the I/O outside, the whole router is a function of its inputs, so a simulator
 * can play thousands of clients against it in a second, with every split, stall and time jump
 * reproducible from a seed (tests/sim_sansio.c); and the same core could run under epoll,
 * io_uring or libuv without a change.
 * Flaw: the state machine is explicit, and so more code than a callback: every "then" of the
 * reactor (stop reading, write later, close once written) becomes a state to record and an
 * action to hand out. And like the reactor, it uses one core.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "core.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "server.h"

static const struct router_info info = {
    .name = "router-sansio",
    .summary = "A sans-IO state machine driven by a hand-written poll(2) loop.",
};

#define READ_SIZE (64 * 1024) /* the loop's one read buffer */
#define ACCEPTS_PER_TURN 64   /* so a storm of connects does not starve the clients */
#define LINGER_MAX 16         /* clients sent away and draining at once (spare descriptors) */

/* What the loop knows of a descriptor; the core knows the rest. Indexed by fd, the core's key. */
struct fd_state {
    int slot;       /* index in pfds, or -1: not polled */
    bool want_out;  /* the last write was short: wait for POLLOUT, then core_writable */
    bool lingering; /* sent away: writing shut down, input discarded until EOF or linger_end */
    int64_t linger_end;
};

struct driver {
    struct options opt;
    struct core *core;
    int listen_fd, signal_fd;
    struct pollfd *pfds; /* [0] listener, [1] signalfd, then every client and lingering fd */
    size_t npfds, pfds_cap;
    struct fd_state *fds;
    size_t nfds;
    size_t lingering;
    int64_t now, accept_again, next_stats, next_deadline; /* -1: none */
    uint8_t buf[READ_SIZE];
};

static void must_grow(void **p, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return;
    size_t n = *cap ? *cap : 64;
    while (n < need)
        n *= 2;
    void *grown = realloc(*p, n * size);
    if (!grown)
        log_fatal("out of memory");
    *p = grown;
    *cap = n;
}

static struct fd_state *fd_of(struct driver *d, int fd)
{
    size_t old = d->nfds;
    must_grow((void **)&d->fds, &d->nfds, (size_t)fd + 1, sizeof *d->fds);
    for (size_t i = old; i < d->nfds; i++)
        d->fds[i] = (struct fd_state){.slot = -1};
    return &d->fds[fd];
}

static void poll_add(struct driver *d, int fd, short events)
{
    must_grow((void **)&d->pfds, &d->pfds_cap, d->npfds + 1, sizeof *d->pfds);
    fd_of(d, fd)->slot = (int)d->npfds;
    d->pfds[d->npfds++] = (struct pollfd){.fd = fd, .events = events};
}

/* Stop polling fd: the last entry takes its place. */
static void poll_remove(struct driver *d, int fd)
{
    struct fd_state *s = fd_of(d, fd);
    if (s->slot < 0)
        return;
    struct pollfd last = d->pfds[--d->npfds];
    if ((size_t)s->slot < d->npfds) {
        d->pfds[s->slot] = last;
        d->fds[last.fd].slot = s->slot;
    }
    s->slot = -1;
}

static void poll_events(struct driver *d, int fd, short on, short off)
{
    struct fd_state *s = fd_of(d, fd);
    if (s->slot >= 0)
        d->pfds[s->slot].events = (short)((d->pfds[s->slot].events | on) & ~off);
}

static void close_fd(struct driver *d, int fd)
{
    poll_remove(d, fd);
    struct fd_state *s = fd_of(d, fd);
    if (s->lingering)
        d->lingering--;
    *s = (struct fd_state){.slot = -1};
    if (close(fd) != 0)
        log_warn("close: %s", strerror(errno));
}

/* The core sent this client away while it may still be sending: a close now, with its input
 * unread, would make the kernel reset the connection and throw away what the client has not read
 * yet (its error frame). Shut down writing instead, and discard its input until it closes. */
static void linger(struct driver *d, int fd)
{
    struct fd_state *s = fd_of(d, fd);
    if (d->lingering >= LINGER_MAX || shutdown(fd, SHUT_WR) != 0) {
        close_fd(d, fd);
        return;
    }
    d->lingering++;
    s->lingering = true;
    s->want_out = false;
    s->linger_end = d->now + NET_LINGER_MS;
    poll_events(d, fd, POLLIN, POLLOUT);
}

static void log_close(const struct driver *d, const struct core_action *a)
{
    switch (a->reason) {
    case CORE_CLOSE_PEER:
        log_debug("client %" PRIu32 " disconnected", a->id);
        break;
    case CORE_CLOSE_FULL:
        log_debug("a client was turned away: server full");
        break;
    case CORE_CLOSE_TOO_LONG:
        log_debug("client %" PRIu32 ": message too long", a->id);
        break;
    case CORE_CLOSE_SLOW:
        log_info("client %" PRIu32 ": took no bytes for %.1f s: disconnected as a slow consumer",
                 a->id, d->opt.write_timeout_ms / 1000.0);
        break;
    case CORE_CLOSE_NO_MEMORY:
        log_warn("client %" PRIu32 ": out of memory for its buffers", a->id);
        break;
    }
}

/* Do what the core asks, until it asks nothing more. Called after every event. */
static void drain(struct driver *d)
{
    struct core_action a;
    while (core_next_action(d->core, &a)) {
        switch (a.kind) {
        case CORE_WRITE: {
            ssize_t n;
            do
                n = write(a.key, a.bytes, a.len);
            while (n < 0 && errno == EINTR);
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                log_debug("client %" PRIu32 ": write: %s", a.id, strerror(errno));
                core_closed(d->core, a.key, d->now);
                break;
            }
            size_t took = n > 0 ? (size_t)n : 0;
            if (took < a.len) { /* the socket is full: POLLOUT says when it has room */
                fd_of(d, a.key)->want_out = true;
                poll_events(d, a.key, POLLOUT, 0);
            }
            core_written(d->core, a.key, took, d->now);
            break;
        }
        case CORE_STOP_READING:
            poll_events(d, a.key, 0, POLLIN);
            break;
        case CORE_START_READING:
            poll_events(d, a.key, POLLIN, 0);
            break;
        case CORE_CLOSE:
            log_close(d, &a);
            if (a.reason == CORE_CLOSE_TOO_LONG)
                linger(d, a.key);
            else
                close_fd(d, a.key);
            break;
        }
    }
}

static void on_readable(struct driver *d, int fd)
{
    ssize_t n;
    do
        n = read(fd, d->buf, sizeof d->buf);
    while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
        return;
    if (fd_of(d, fd)->lingering) {
        if (n <= 0)
            close_fd(d, fd); /* it closed too, or failed: done lingering */
        return;
    }
    if (n > 0) {
        core_received(d->core, fd, d->buf, (size_t)n, d->now);
    } else {
        if (n < 0)
            log_debug("read: %s", strerror(errno));
        core_closed(d->core, fd, d->now);
    }
}

/* What poll said of one client. The actions wait for the end of the turn (see turn), so a
 * client the core has closed or stopped reading may still be read once: the core ignores or
 * keeps those bytes. */
static void on_client(struct driver *d, int fd, short revents)
{
    struct fd_state *s = fd_of(d, fd);
    if (s->slot < 0)
        return; /* closed earlier this turn */
    if ((revents & POLLOUT) && s->want_out) {
        s->want_out = false;
        poll_events(d, fd, 0, POLLOUT);
        core_writable(d->core, fd, d->now);
    }
    if ((revents & POLLIN) && (d->pfds[s->slot].events & POLLIN)) {
        on_readable(d, fd);
    } else if (revents & (POLLERR | POLLHUP | POLLNVAL)) {
        /* Dead, and not read (it waits on a full queue) or lingering: nothing more to learn. */
        if (s->lingering)
            close_fd(d, fd);
        else
            core_closed(d->core, fd, d->now);
    }
}

static void on_listener(struct driver *d)
{
    for (int i = 0; i < ACCEPTS_PER_TURN; i++) {
        int fd = net_accept(d->listen_fd);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors or memory: the client stays in the backlog, and poll would
                 * report it again at once. Stop polling the listener for a while instead. */
                if (d->accept_again < 0)
                    log_warn("accept: %s (retrying every 100 ms)", strerror(errno));
                d->accept_again = d->now + 100;
                d->pfds[0].events = 0;
            } else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNABORTED &&
                       errno != EPROTO) {
                log_warn("accept: %s", strerror(errno));
            }
            return;
        }
        if (net_set_nonblocking(fd) != 0) {
            log_warn("fcntl O_NONBLOCK: %s", strerror(errno));
            if (close(fd) != 0)
                log_warn("close: %s", strerror(errno));
            continue;
        }
        uint32_t id = core_connected(d->core, fd, d->now);
        if (id != 0) {
            log_debug("client %" PRIu32 " connected", id);
            poll_add(d, fd, POLLIN);
        } else {
            fd_of(d, fd); /* turned away: drain writes "server full" and closes it */
        }
        drain(d);
    }
}

static int64_t earliest(int64_t a, int64_t b)
{
    return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

/* How long poll may sleep: until the next write deadline, stats line, linger end or accept. */
static int wait_ms(const struct driver *d)
{
    int64_t when = earliest(d->next_deadline, earliest(d->next_stats, d->accept_again));
    for (size_t i = 2; d->lingering > 0 && i < d->npfds; i++)
        if (d->fds[d->pfds[i].fd].lingering)
            when = earliest(when, d->fds[d->pfds[i].fd].linger_end);
    if (when < 0)
        return -1;
    return when > d->now ? (int)(when - d->now) : 0;
}

/* Timers: the accept backoff, the lingering clients, the stats line, the write deadlines. */
static void on_time(struct driver *d)
{
    if (d->accept_again >= 0 && d->now >= d->accept_again) {
        d->accept_again = -1;
        d->pfds[0].events = POLLIN;
    }
    for (size_t i = d->npfds; d->lingering > 0 && i-- > 2;) { /* close_fd moves the last here */
        int fd = d->pfds[i].fd;
        if (d->fds[fd].lingering && d->now >= d->fds[fd].linger_end)
            close_fd(d, fd);
    }
    if (d->next_stats >= 0 && d->now >= d->next_stats) {
        server_print_stats(&info, core_stats(d->core));
        d->next_stats += d->opt.stats_interval_ms;
    }
    d->next_deadline = core_tick(d->core, d->now);
    drain(d);
}

/* One turn: wait, then hand every descriptor's news to the core, and do what it says once, at
 * the end: a queue that got frames from many reads leaves in one write, as in the reactor. The
 * entries poll filled in are copied first: the actions close clients and reorder pfds. */
static bool turn(struct driver *d, struct pollfd *ready)
{
    int n = poll(d->pfds, d->npfds, wait_ms(d));
    if (n < 0 && errno != EINTR)
        log_fatal("poll: %s", strerror(errno));
    d->now = clock_now_ms();
    size_t nready = 0;
    for (size_t i = 2; n > 0 && i < d->npfds; i++)
        if (d->pfds[i].revents)
            ready[nready++] = d->pfds[i];
    if (n > 0 && d->pfds[1].revents) {
        struct signalfd_siginfo si;
        if (read(d->signal_fd, &si, sizeof si) != (ssize_t)sizeof si)
            log_warn("signalfd: %s", strerror(errno));
        log_debug("shutdown signal received");
        return false;
    }
    for (size_t i = 0; i < nready; i++)
        on_client(d, ready[i].fd, ready[i].revents);
    drain(d);
    if (n > 0 && (d->pfds[0].revents & POLLIN))
        on_listener(d); /* last: a descriptor closed above may be reused by accept */
    on_time(d);
    return true;
}

int main(int argc, char **argv)
{
    static struct driver d; /* big (the read buffer): not on the stack */
    d.listen_fd = server_start(argc, argv, &info, &d.opt);
    d.signal_fd = server_signal_fd();
    if (net_set_nonblocking(d.listen_fd) != 0)
        log_fatal("fcntl O_NONBLOCK: %s", strerror(errno));
    struct core_config cfg = {.max_message = d.opt.max_message,
                              .max_pending = d.opt.max_pending,
                              .max_clients = d.opt.max_clients,
                              .write_timeout_ms = d.opt.write_timeout_ms,
                              .work_us = d.opt.work_us,
                              .error_frames = d.opt.error_frames};
    ids_init(&cfg.ids, d.opt.ids);
    d.core = core_new(&cfg);
    if (!d.core)
        log_fatal("out of memory");
    d.now = clock_now_ms();
    d.accept_again = d.next_deadline = -1;
    d.next_stats = d.opt.stats_interval_ms ? d.now + d.opt.stats_interval_ms : -1;
    poll_add(&d, d.listen_fd, POLLIN);
    poll_add(&d, d.signal_fd, POLLIN);

    struct pollfd *ready = NULL; /* room for every client polled */
    size_t ready_cap = 0;
    do
        must_grow((void **)&ready, &ready_cap, d.npfds, sizeof *ready);
    while (turn(&d, ready));

    core_stop(d.core); /* every client closes; what was queued for them is counted dropped */
    drain(&d);
    while (d.npfds > 2)
        close_fd(&d, d.pfds[d.npfds - 1].fd); /* the lingering ones */
    if (close(d.listen_fd) != 0)
        log_warn("close: %s", strerror(errno));
    server_finish(&info, core_stats(d.core));
    core_free(d.core);
    free(ready);
    free(d.pfds);
    free(d.fds);
    return 0;
}
