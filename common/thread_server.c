/* thread_server.c - see thread_server.h. */
#include "thread_server.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "ids.h"
#include "log.h"
#include "net.h"
#include "proto.h"
#include "server.h"

#define CLIENT_STACK_SIZE (64 * 1024) /* a client thread keeps its buffers on the heap */
#define STOP_TIMEOUT_SEC 5            /* how long shutdown waits for the client threads */

/*
 * The clients whose thread runs. Its lock is never held with another lock, nor across I/O:
 * shutdown must reach every socket even while a client thread sits in a blocked write (holding,
 * in router-mutex's global-lock, the router's own lock).
 */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t done; /* signalled when count drops to 0 */
    struct client_thread *list;
    size_t count; /* threads not yet finished, listed or not */
} registry = {.lock = PTHREAD_MUTEX_INITIALIZER};

static struct thread_server *server; /* the one being run */
static pthread_attr_t client_attr;

static void registry_add(struct client_thread *t)
{
    pthread_mutex_lock(&registry.lock);
    t->next = registry.list;
    if (registry.list)
        registry.list->prev = t;
    registry.list = t;
    t->listed = true;
    registry.count++;
    pthread_mutex_unlock(&registry.lock);
}

void client_thread_leave(struct client_thread *t)
{
    pthread_mutex_lock(&registry.lock);
    if (t->listed) {
        if (t->prev)
            t->prev->next = t->next;
        else
            registry.list = t->next;
        if (t->next)
            t->next->prev = t->prev;
        t->listed = false;
    }
    pthread_mutex_unlock(&registry.lock);
}

/* A thread's very last step: after it, the thread touches nothing shared. */
static void registry_done(void)
{
    pthread_mutex_lock(&registry.lock);
    if (--registry.count == 0)
        pthread_cond_broadcast(&registry.done);
    pthread_mutex_unlock(&registry.lock);
}

/* A client's thread: join, forward what it sends until it leaves, leave. */
static void *client_thread_main(void *arg)
{
    struct client_thread *t = arg;
    void *conn = server->join(t);
    if (conn) {
        enum read_end end =
            frame_reader_run(t->fd, server->opt->max_message, server->forward, conn);
        if (end == READ_ERROR)
            log_debug("read client %u: %s", t->id, strerror(errno));
        server->leave(conn, t, end);
    } else {
        log_warn("client %u: out of memory", t->id);
        client_thread_leave(t);
        if (close(t->fd) != 0)
            log_warn("close client %u: %s", t->id, strerror(errno));
    }
    client_thread_leave(t); /* in case leave did not */
    free(t);
    registry_done();
    return NULL;
}

#ifndef PR_FUTEX_HASH /* linux/prctl.h from 6.16 */
#define PR_FUTEX_HASH 78
#define PR_FUTEX_HASH_SET_SLOTS 1
#endif
#define FUTEX_HASH_MAX_SLOTS 65536

void thread_server_size_futex_hash(size_t waiters)
{
    unsigned long slots = 16;
    while (slots < waiters && slots < FUTEX_HASH_MAX_SLOTS)
        slots *= 2;
    if (prctl(PR_FUTEX_HASH, PR_FUTEX_HASH_SET_SLOTS, slots, 0, 0) != 0)
        log_debug("prctl PR_FUTEX_HASH: %s (a kernel before 6.16 has one hash for all)",
                  strerror(errno));
}

enum client_write thread_server_write(uint32_t id, int fd, struct iovec *iov, size_t n)
{
    if (net_writev_all(fd, iov, (int)n) == 0)
        return WRITTEN;
    if (errno != ETIMEDOUT)
        return WRITE_GONE;
    log_info("client %u: took no bytes for %.1f s: disconnected as a slow consumer", id,
             server->opt->write_timeout_ms / 1000.0);
    if (shutdown(fd, SHUT_RDWR) != 0 && errno != ENOTCONN)
        log_warn("shutdown client %u: %s", id, strerror(errno));
    return WRITE_TIMED_OUT;
}

/* Tell a client it cannot be taken, and close it. It has no ID, so no one else writes to it. */
static void refuse(int fd, const char *reason)
{
    if (server->opt->error_frames) {
        uint8_t frame[PROTO_ERROR_FRAME_MAX];
        size_t n = proto_error_frame(frame, "%s", reason);
        if (net_write_all(fd, frame, n) == 0)
            server->refusals++;
    }
    if (close(fd) != 0)
        log_warn("close: %s", strerror(errno));
}

/* The acceptor: a place, an ID, a thread, which introduces its client itself. Only this thread
 * adds clients, so there is room for this one until it is added. */
static void admit(struct id_allocator *ids, int fd)
{
    pthread_mutex_lock(&registry.lock);
    bool full = registry.count >= server->opt->max_clients;
    pthread_mutex_unlock(&registry.lock);
    uint32_t id;
    if (full || !ids_next(ids, &id)) {
        refuse(fd, "server full");
        return;
    }
    struct client_thread *t = calloc(1, sizeof *t);
    if (!t) {
        log_warn("client %u: out of memory", id);
        refuse(fd, "out of memory");
        return;
    }
    t->id = id;
    t->fd = fd;
    registry_add(t);
    pthread_t thread;
    int rc = pthread_create(&thread, &client_attr, client_thread_main, t);
    if (rc != 0) {
        log_warn("pthread_create: %s", strerror(rc));
        client_thread_leave(t);
        free(t);
        registry_done();
        refuse(fd, "server full");
    }
}

static void setup(void)
{
    pthread_condattr_t ca;
    int rc = pthread_condattr_init(&ca);
    if (rc == 0)
        rc = pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (rc == 0)
        rc = pthread_cond_init(&registry.done, &ca);
    if (rc == 0)
        rc = pthread_condattr_destroy(&ca);
    if (rc == 0)
        rc = pthread_attr_init(&client_attr);
    if (rc == 0)
        rc = pthread_attr_setstacksize(&client_attr, CLIENT_STACK_SIZE);
    if (rc == 0)
        rc = pthread_attr_setdetachstate(&client_attr, PTHREAD_CREATE_DETACHED);
    if (rc != 0)
        log_fatal("thread setup: %s", strerror(rc));
}

/* Shut every client's socket, which wakes threads blocked in read() and in write(), then wait
 * for the threads. Returns false if some did not finish in time. */
static bool stop_all(void)
{
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += STOP_TIMEOUT_SEC;

    pthread_mutex_lock(&registry.lock);
    for (struct client_thread *t = registry.list; t; t = t->next)
        if (shutdown(t->fd, SHUT_RDWR) != 0 && errno != ENOTCONN)
            log_warn("shutdown client %u: %s", t->id, strerror(errno));
    int rc = 0;
    while (registry.count > 0 && rc != ETIMEDOUT)
        rc = pthread_cond_timedwait(&registry.done, &registry.lock, &deadline);
    size_t left = registry.count;
    pthread_mutex_unlock(&registry.lock);
    if (left > 0)
        log_warn("%zu client threads did not finish", left);
    return left == 0;
}

bool thread_server_run(struct thread_server *srv, int listen_fd)
{
    server = srv;
    setup();
    struct id_allocator ids; /* the acceptor's alone */
    ids_init(&ids, srv->opt->ids);
    int fd;
    while ((fd = server_wait_accept(listen_fd)) != SERVER_STOP) {
        if (fd == SERVER_STATS)
            srv->print_stats();
        else
            admit(&ids, fd);
    }
    if (close(listen_fd) != 0)
        log_warn("close listener: %s", strerror(errno));
    bool stopped = stop_all();
    if (stopped) {
        pthread_attr_destroy(&client_attr);
        pthread_cond_destroy(&registry.done);
    }
    return stopped;
}
