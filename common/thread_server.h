/*
 * thread_server.h - "a thread per client": the plumbing that router-naive and router-mutex
 * share, and none of their pattern. It accepts clients, gives each an ID and a thread of its
 * own, refuses a client over --max-clients with "server full", keeps a registry of the clients
 * whose thread runs, and at SIGINT or SIGTERM shuts every client's socket and waits for the
 * threads. It never touches the state the client threads share: that is the router's lesson.
 *
 * A client's thread runs the router's three steps, each in that thread:
 *
 *     conn = join(t);                        // enter the table, send the ID; NULL: out of memory
 *     end = frame_reader_run(t->fd, max, forward, conn);      // every read's frames, in order
 *     leave(conn, t, end);                   // leave the table; client_thread_leave(t) before
 *                                            // t->fd may be closed; close it
 *
 *     struct thread_server srv = {.opt = &opt, .join = conn_join, .forward = forward_frames,
 *                                 .leave = conn_leave};
 *     if (!thread_server_run(&srv, listen_fd)) ...          // returns after the signal
 */
#ifndef THREAD_SERVER_H
#define THREAD_SERVER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "options.h"
#include "reader.h"

/* One client whose thread runs. */
struct client_thread {
    uint32_t id;
    int fd;
    struct client_thread *prev, *next; /* the registry's, under its own lock */
    bool listed;                       /* still in the registry */
};

struct thread_server {
    const struct options *opt;
    void *(*join)(struct client_thread *t);
    frame_batch_fn *forward; /* called with join's conn as its ctx */
    void (*leave)(void *conn, struct client_thread *t, enum read_end end);
    void (*print_stats)(void); /* --stats-interval: print the counters (server_print_stats) */
    uint64_t refusals;         /* out: error frames sent to clients refused ("server full") */
};

/*
 * Accept until SIGINT or SIGTERM, then shut every registered client's socket (which wakes its
 * thread from read or write) and wait up to 5 s for the threads. Returns false if some thread
 * did not finish. listen_fd is closed.
 */
bool thread_server_run(struct thread_server *srv, int listen_fd);

enum client_write { WRITTEN, WRITE_GONE, WRITE_TIMED_OUT };

/*
 * Write all of iov to client id's socket (blocking, as a client thread writes). WRITE_GONE: the
 * client is gone. WRITE_TIMED_OUT: a write moved no byte for --write-timeout (the socket's
 * SO_SNDTIMEO, set on accept): the client is a slow consumer; it is logged and its socket shut,
 * which ends its thread. NATS's write deadline, for a thread that writes itself.
 */
enum client_write thread_server_write(uint32_t id, int fd, struct iovec *iov, size_t n);

/*
 * Size this process's futex hash for about `waiters` threads blocked at once on their own
 * condition variables. Linux 6.16 gives each process a private hash of 16 buckets per few CPUs,
 * so with thousands of threads waiting (router-channels' writers) every wake-up walks a chain
 * of thousands: at 5,000 idle clients that cost router-channels 90% of its round trips. Call it
 * before creating threads; on older kernels it does nothing.
 */
void thread_server_size_futex_hash(size_t waiters);

/* Take t off the registry, so shutdown never touches its fd: call it before the fd may be
 * closed. t stays valid until leave returns. */
void client_thread_leave(struct client_thread *t);

#endif
