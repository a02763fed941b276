/*
 * race_driver.c - traffic for tests/race_check.sh: give a router every chance to race.
 *
 *   race_driver LOG ROUTER [ROUTER_ARGS...]
 *
 * Starts ROUTER (with --port 0) with its stderr, where ThreadSanitizer reports, sent to LOG.
 * Then, for DRIVE_MS, WORKERS threads each connect a client, send FRAMES_PER_ROUND short
 * frames to the other workers' current clients, to themselves and to an ID nobody has, read
 * what arrives, disconnect, and start over. So clients join and leave the connection table
 * while others look it up, and several senders write to one destination at once. Finally it
 * stops the router with SIGTERM.
 *
 * It judges nothing about the router's output: it fails (exit 1) only if the router did not
 * start or no frame came back at all, which would mean the drive exercised nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client.h"
#include "clock.h"
#include "router_proc.h"

#define WORKERS 6
#define FRAMES_PER_ROUND 20
#define DRIVE_MS 2000
#define IO_TIMEOUT_MS 2000 /* for connect, and for a send the router does not take */
#define SETTLE_MS 20       /* after a round's sends, wait this long for frames in flight */
#define STOP_TIMEOUT_MS 10000
#define NOBODY 0x7FFFFFF0u /* an ID no router hands out this early */

static uint16_t port;
static int64_t deadline;
static _Atomic uint32_t live[WORKERS]; /* each worker's current client ID, 0 between rounds */
static atomic_uint_fast64_t sent, received, failures;

static uint32_t pick_destination(int self, uint32_t self_id, unsigned *seed)
{
    int r = rand_r(seed) % (WORKERS + 2);
    if (r == WORKERS)
        return self_id;
    if (r == WORKERS + 1)
        return NOBODY;
    uint32_t id = atomic_load(&live[r]);
    return id && r != self ? id : self_id;
}

/* Take every frame that has arrived, waiting up to wait_ms for the first. */
static void drain(struct client *c, int wait_ms)
{
    char buf[256];
    for (;;) {
        ssize_t n = client_recv(c, buf, sizeof buf, wait_ms);
        if (n < 0 && n != CLIENT_TOO_BIG)
            return;
        atomic_fetch_add(&received, 1);
        wait_ms = 0;
    }
}

/* One client's life: connect, send a round of frames while reading, leave. */
static void round_trip(int self, unsigned *seed)
{
    struct client c;
    if (client_connect(&c, "127.0.0.1", port, IO_TIMEOUT_MS) != 0) {
        atomic_fetch_add(&failures, 1);
        poll(NULL, 0, 50); /* the router may be gone: do not spin */
        return;
    }
    struct timeval tv = {.tv_sec = IO_TIMEOUT_MS / 1000};
    if (setsockopt(c.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv) != 0)
        atomic_fetch_add(&failures, 1);
    atomic_store(&live[self], c.id);
    for (int i = 0; i < FRAMES_PER_ROUND; i++) {
        char payload[48];
        int len = snprintf(payload, sizeof payload, "worker %d client %" PRIu32 " frame %d", self,
                           c.id, i);
        if (client_send(&c, pick_destination(self, c.id, seed), payload, (size_t)len) != 0) {
            atomic_fetch_add(&failures, 1);
            break;
        }
        atomic_fetch_add(&sent, 1);
        drain(&c, 0);
    }
    drain(&c, SETTLE_MS);
    atomic_store(&live[self], 0);
    client_close(&c);
}

static void *worker_main(void *arg)
{
    int self = (int)(intptr_t)arg;
    unsigned seed = (unsigned)self * 2654435761u + 1;
    while (clock_now_ms() < deadline)
        round_trip(self, &seed);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: race_driver LOG ROUTER [ROUTER_ARGS...]\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    int log_fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (log_fd < 0) {
        fprintf(stderr, "race_driver: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    struct router_proc r;
    if (router_proc_start(argv + 2, log_fd, &r) != 0)
        return 1;
    close(log_fd);
    port = r.port;

    deadline = clock_now_ms() + DRIVE_MS;
    pthread_t threads[WORKERS];
    int started = 0;
    for (; started < WORKERS; started++)
        if (pthread_create(&threads[started], NULL, worker_main, (void *)(intptr_t)started) != 0)
            break;
    for (int i = 0; i < started; i++)
        pthread_join(threads[i], NULL);

    int status = 0;
    bool exited = router_proc_stop(&r, SIGTERM, STOP_TIMEOUT_MS, &status) == 0;
    char how[64];
    if (!exited)
        snprintf(how, sizeof how, "killed after %d ms", STOP_TIMEOUT_MS);
    else if (WIFEXITED(status))
        snprintf(how, sizeof how, "exit %d", WEXITSTATUS(status));
    else
        snprintf(how, sizeof how, "signal %d", WTERMSIG(status));
    printf("race_driver: %s: %d workers, sent %" PRIuFAST64 " frames, received %" PRIuFAST64
           ", %" PRIuFAST64 " client failures, router %s\n",
           argv[2], started, atomic_load(&sent), atomic_load(&received), atomic_load(&failures),
           how);
    return started == WORKERS && atomic_load(&received) > 0 ? 0 : 1;
}
