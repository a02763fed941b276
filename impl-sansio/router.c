/*
 * router-sansio - the router as a state machine with no I/O (core.c), driven by a hand-written
 * epoll(7) loop (this file).
 *
 * Pattern: sans-IO. The protocol and the routing live in a plain state machine that takes
 * events (connected, bytes arrived, the socket took n bytes, closed, time passed) and answers
 * with actions (write these bytes, stop or resume reading, close). It owns no socket, reads no
 * clock and starts no thread. This file is the only one that does I/O: one loop that waits on
 * the listener, the signalfd and every client, feeds what happened to the core and does what
 * it says - the blog's poll_next, in C.
 * Lesson: with the I/O outside, the whole router is a function of its inputs, so a simulator
 * can play thousands of clients against it in a second, with every split, stall and time jump
 * reproducible from a seed (tests/sim_sansio.c); and the same core could run under poll,
 * io_uring or libuv without a change.
 * Flaw: the state machine is explicit, and so more code than a callback: every "then" of the
 * reactor (stop reading, write later, close once written) becomes a state to record and an
 * action to hand out. And like the reactor, it uses one core.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
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
    .summary = "A sans-IO state machine driven by a hand-written epoll loop.",
};

#define READ_SIZE (64 * 1024) /* the loop's one read buffer */
#define EVENTS 256            /* readiness reports taken per epoll_wait */
#define ACCEPTS_PER_TURN 64   /* so a storm of connects does not starve the clients */
#define LINGER_MAX 16         /* clients sent away and draining at once (spare descriptors) */

/* What the loop knows of a descriptor; the core knows the rest. Indexed by fd, the core's key. */
struct fd_state {
    bool open;       /* a client's, registered with epoll */
    uint32_t events; /* what epoll watches: EPOLLIN while the core reads it, EPOLLOUT ... */
    bool want_out;   /* ... after a short write, until the socket has room: core_writable */
    bool lingering;  /* sent away: writing shut down, input discarded until EOF or the end */
    int64_t linger_end;
};

struct driver {
    struct options opt;
    struct core *core;
    int epoll_fd, listen_fd, signal_fd;
    struct fd_state *fds;
    size_t nfds;
    int lingering[LINGER_MAX]; /* the lingering fds */
    size_t nlingering;
    int64_t now, accept_again, next_stats, next_deadline; /* -1: none */
    uint8_t buf[READ_SIZE];
};

static struct fd_state *fd_of(struct driver *d, int fd)
{
    if ((size_t)fd >= d->nfds) {
        size_t n = d->nfds ? d->nfds : 64;
        while (n <= (size_t)fd)
            n *= 2;
        struct fd_state *fds = realloc(d->fds, n * sizeof *fds);
        if (!fds)
            log_fatal("out of memory");
        memset(fds + d->nfds, 0, (n - d->nfds) * sizeof *fds);
        d->fds = fds;
        d->nfds = n;
    }
    return &d->fds[fd];
}

static void watch(struct driver *d, int fd, int op, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.fd = fd};
    if (epoll_ctl(d->epoll_fd, op, fd, &ev) != 0)
        log_fatal("epoll_ctl: %s", strerror(errno));
}

/* Watch fd for events | on, minus off: one epoll_ctl, only if that changes anything. */
static void set_events(struct driver *d, int fd, uint32_t on, uint32_t off)
{
    struct fd_state *s = fd_of(d, fd);
    uint32_t events = (s->events | on) & ~off;
    if (!s->open || events == s->events)
        return;
    s->events = events;
    watch(d, fd, EPOLL_CTL_MOD, events);
}

static void close_fd(struct driver *d, int fd)
{
    struct fd_state *s = fd_of(d, fd);
    if (s->lingering) {
        for (size_t i = 0; i < d->nlingering; i++)
            if (d->lingering[i] == fd) {
                d->lingering[i] = d->lingering[--d->nlingering];
                break;
            }
    }
    *s = (struct fd_state){0};
    if (close(fd) != 0) /* which also takes it out of the epoll set */
        log_warn("close: %s", strerror(errno));
}

/* The core sent this client away while it may still be sending: a close now, with its input
 * unread, would make the kernel reset the connection and throw away what the client has not read
 * yet (its error frame). Shut down writing instead, and discard its input until it closes. */
static void linger(struct driver *d, int fd)
{
    struct fd_state *s = fd_of(d, fd);
    if (d->nlingering == LINGER_MAX || shutdown(fd, SHUT_WR) != 0) {
        close_fd(d, fd);
        return;
    }
    d->lingering[d->nlingering++] = fd;
    s->lingering = true;
    s->want_out = false;
    s->linger_end = d->now + NET_LINGER_MS;
    set_events(d, fd, EPOLLIN, EPOLLOUT);
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

/* Do what the core asks, until it asks nothing more. */
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
            if (took < a.len) { /* the socket is full: EPOLLOUT says when it has room */
                fd_of(d, a.key)->want_out = true;
                set_events(d, a.key, EPOLLOUT, 0);
            }
            core_written(d->core, a.key, took, d->now);
            break;
        }
        case CORE_STOP_READING:
            set_events(d, a.key, 0, EPOLLIN);
            break;
        case CORE_START_READING:
            set_events(d, a.key, EPOLLIN, 0);
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

/* What epoll said of one client. The actions wait for the end of the turn (see turn), so a
 * client the core has closed or stopped reading may still be read once: the core ignores or
 * keeps those bytes. */
static void on_client(struct driver *d, int fd, uint32_t ready)
{
    struct fd_state *s = fd_of(d, fd);
    if (!s->open)
        return; /* closed earlier this turn */
    if ((ready & EPOLLOUT) && s->want_out) {
        s->want_out = false;
        set_events(d, fd, 0, EPOLLOUT);
        core_writable(d->core, fd, d->now);
    }
    if ((ready & EPOLLIN) && (s->events & EPOLLIN)) {
        on_readable(d, fd);
    } else if (ready & (EPOLLERR | EPOLLHUP)) {
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
                /* Out of descriptors or memory: the client stays in the backlog, and epoll would
                 * report it again at once. Stop watching the listener for a while instead. */
                if (d->accept_again < 0)
                    log_warn("accept: %s (retrying every 100 ms)", strerror(errno));
                d->accept_again = d->now + 100;
                watch(d, d->listen_fd, EPOLL_CTL_MOD, 0);
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
            *fd_of(d, fd) = (struct fd_state){.open = true, .events = EPOLLIN};
            watch(d, fd, EPOLL_CTL_ADD, EPOLLIN);
        }
        drain(d); /* its ID, or "server full" and the close; and before the next key */
    }
}

static int64_t earliest(int64_t a, int64_t b)
{
    return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

/* How long to sleep: until the next write deadline, stats line, linger end or accept retry. */
static int wait_ms(const struct driver *d)
{
    int64_t when = earliest(d->next_deadline, earliest(d->next_stats, d->accept_again));
    for (size_t i = 0; i < d->nlingering; i++)
        when = earliest(when, d->fds[d->lingering[i]].linger_end);
    if (when < 0)
        return -1;
    return when > d->now ? (int)(when - d->now) : 0;
}

/* Timers: the accept retry, the lingering clients, the stats line, the write deadlines. */
static void on_time(struct driver *d)
{
    if (d->accept_again >= 0 && d->now >= d->accept_again) {
        d->accept_again = -1;
        watch(d, d->listen_fd, EPOLL_CTL_MOD, EPOLLIN);
    }
    for (size_t i = d->nlingering; i-- > 0;) /* close_fd moves the last one here: seen already */
        if (d->now >= d->fds[d->lingering[i]].linger_end)
            close_fd(d, d->lingering[i]);
    if (d->next_stats >= 0 && d->now >= d->next_stats) {
        server_print_stats(&info, core_stats(d->core));
        d->next_stats += d->opt.stats_interval_ms;
    }
    d->next_deadline = core_tick(d->core, d->now);
    drain(d);
}

/* SIGINT or SIGTERM arrived on the signalfd: take it. */
static bool took_signal(struct driver *d)
{
    struct signalfd_siginfo si;
    if (read(d->signal_fd, &si, sizeof si) != (ssize_t)sizeof si)
        log_warn("signalfd: %s", strerror(errno));
    log_debug("shutdown signal received");
    return true;
}

/* One turn: wait, hand every descriptor's news to the core, then do what it says, once: a queue
 * that got frames from many reads leaves in one write, as in the reactor. New clients come
 * last: a descriptor closed this turn may come back from accept. Returns false to stop. */
/* slide: sansio-turn */
static bool turn(struct driver *d)
{
    struct epoll_event ready[EVENTS];
    int n = epoll_wait(d->epoll_fd, ready, EVENTS, wait_ms(d));
    if (n < 0) {
        if (errno != EINTR)
            log_fatal("epoll_wait: %s", strerror(errno));
        n = 0;
    }
    d->now = clock_now_ms();
    bool connecting = false;
    for (int i = 0; i < n; i++) {
        int fd = ready[i].data.fd;
        if (fd == d->signal_fd)
            return !took_signal(d);
        if (fd == d->listen_fd)
            connecting = true;
        else
            on_client(d, fd, ready[i].events);
    }
    drain(d);
    if (connecting)
        on_listener(d);
    on_time(d);
    return true;
}
/* end slide */

int main(int argc, char **argv)
{
    static struct driver d; /* big (the read buffer): not on the stack */
    d.listen_fd = server_start(argc, argv, &info, &d.opt);
    d.signal_fd = server_signal_fd();
    if (net_set_nonblocking(d.listen_fd) != 0)
        log_fatal("fcntl O_NONBLOCK: %s", strerror(errno));
    d.epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    if (d.epoll_fd < 0)
        log_fatal("epoll_create1: %s", strerror(errno));
    watch(&d, d.listen_fd, EPOLL_CTL_ADD, EPOLLIN);
    watch(&d, d.signal_fd, EPOLL_CTL_ADD, EPOLLIN);

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

    while (turn(&d))
        ;

    core_stop(d.core); /* every client closes; what was queued for them is counted dropped */
    drain(&d);
    while (d.nlingering > 0)
        close_fd(&d, d.lingering[0]);
    if (close(d.listen_fd) != 0 || close(d.epoll_fd) != 0)
        log_warn("close: %s", strerror(errno));
    server_finish(&info, core_stats(d.core));
    core_free(d.core);
    free(d.fds);
    return 0;
}
