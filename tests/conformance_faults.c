/*
 * conformance_faults.c - the cases for what goes wrong around a router rather than in its
 * traffic: a destination that stops taking bytes (the write timeout), a sender that never reads
 * its own error frames, a signal the moment the router announces itself, and fewer file
 * descriptors than clients.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conformance.h"
#include "frame.h"
#include "net.h"
#include "proc_probe.h"
#include "proto.h"

#define WRITE_TIMEOUT_S 1      /* the cases' --write-timeout */
#define EVICTION_WAIT_MS 5000  /* the timeout, how often it is checked, and room for sanitizers */
#define OFFER_STALL_MS 300     /* a sender's writes have stalled if none moves for this long */
#define FX_OFFER_LIMIT_MS 5000 /* an offer gives up after this long anyway */
#define ISOLATION_MS 2000      /* as in the slow-consumer case */
#define SIGTERM_TRIES 20       /* starts, each stopped the moment it announces itself */
#define FEW_FDS 64             /* the open-file limit of the descriptor case */
#define MANY_CLIENTS 100       /* more clients than FEW_FDS */
#define IDLE_CPU_MAX_MS 200    /* CPU the router may use in a second of doing nothing */

/* Put p back in blocking mode, for the plain client calls. */
static void blocking(struct fixture *f, struct peer *p)
{
    int flags = fcntl(p->c.fd, F_GETFL);
    if (flags < 0 || fcntl(p->c.fd, F_SETFL, flags & ~O_NONBLOCK) != 0)
        fx_fail(f, "fcntl: %s", strerror(errno));
}

/* ---- The write timeout ---- */

#define SLOW_FRAME 16384 /* payload bytes per frame offered to the slow consumer */

/*
 * S stops reading and A floods it. Once S's socket has taken nothing for the write timeout, S
 * is a slow consumer: the router disconnects it, tells A (whose frames were dropped, or who
 * waited on S) "destination S too slow", and A goes on, able to reach B.
 */
void slow_consumer_is_disconnected_after_the_write_timeout(void **state)
{
    struct fixture *f = fx_begin(state);
    struct peer *s = fx_connect(f, "S (never reads)");
    struct peer *a = fx_connect(f, "A (floods S)");
    struct peer *b = fx_connect(f, "B");
    static uint8_t frame[PROTO_ID_LEN + SLOW_FRAME + 1];
    frame_put_u32(frame, s->c.id);
    memset(frame + PROTO_ID_LEN, 's', SLOW_FRAME);
    frame[sizeof frame - 1] = '\0';
    bool stalled;
    size_t partial;
    size_t sent = fx_offer(f, a, frame, sizeof frame, SIZE_MAX, &stalled, &partial);
    if (!stalled)
        fx_fail(f,
                "A's flood to S never stalled in %d ms (%.1f MiB): the router should stop "
                "taking frames it cannot deliver",
                FX_OFFER_LIMIT_MS, (double)sent / (1 << 20));
    blocking(f, a);

    /* Error frames only: A never gets payloads. The first that names S must say too slow. */
    int64_t start = clock_now_ms();
    static uint8_t buf[256];
    char want[64], got[320];
    snprintf(want, sizeof want, "destination %u too slow", s->c.id);
    for (;;) {
        int64_t left = EVICTION_WAIT_MS - (clock_now_ms() - start);
        ssize_t rc = client_recv(&a->c, buf, sizeof buf - 1, left > 0 ? (int)left : 0);
        if (rc < 1 || buf[0] != PROTO_ERROR_BYTE)
            fx_fail(f,
                    "A expected the error frame \"%s\" within %d ms of S's socket filling up "
                    "(--write-timeout %d); got %s",
                    want, EVICTION_WAIT_MS, WRITE_TIMEOUT_S,
                    fx_describe_recv(rc, buf, got, sizeof got));
        buf[rc] = '\0';
        if (strstr((char *)buf + 1, want))
            break;
        if (strstr((char *)buf + 1, "unknown destination") == NULL)
            fx_fail(f, "A expected \"%s\"; got %s", want,
                    fx_describe_recv(rc, buf, got, sizeof got));
    }
    int64_t took = clock_now_ms() - start;

    /* A stays connected and is routed as before. It finishes the frame it was writing when the
     * router stopped reading it; its frame to B comes after the rest of its flood, each now for
     * an unknown destination: A reads those error frames meanwhile. */
    if (partial > 0)
        fx_send_raw(f, a, frame + partial, sizeof frame - partial);
    static const char msg[] = "still here";
    fx_send(f, a, b->c.id, msg, strlen(msg));
    int64_t until = clock_now_ms() + FRAME_TIMEOUT_MS;
    size_t errors = 0;
    for (;;) {
        ssize_t rc = client_recv(&b->c, buf, sizeof buf, 20);
        if (rc == (ssize_t)strlen(msg) && memcmp(buf, msg, strlen(msg)) == 0)
            break;
        if (rc != CLIENT_TIMEOUT || clock_now_ms() > until)
            fx_fail(f,
                    "B expected \"%s\" from A within %d ms, A reading its %zu error frames "
                    "meanwhile; got %s",
                    msg, FRAME_TIMEOUT_MS, errors, fx_describe_recv(rc, buf, got, sizeof got));
        while ((rc = client_recv(&a->c, buf, sizeof buf, 0)) >= 1 && buf[0] == PROTO_ERROR_BYTE)
            errors++;
        if (rc != CLIENT_TIMEOUT)
            fx_fail(f, "A expected only error frames; got %s",
                    fx_describe_recv(rc, buf, got, sizeof got));
    }

    /* S was disconnected: it reads what the router had handed its kernel, then the end. */
    size_t frames = 0;
    for (;;) {
        ssize_t rc = client_recv(&s->c, buf, sizeof buf, FRAME_TIMEOUT_MS);
        if (rc == CLIENT_CLOSED)
            break;
        if (rc == CLIENT_TOO_BIG) {
            frames++;
            continue;
        }
        fx_fail(f,
                "S expected its pending frames, then the router's close; after %zu frames "
                "it got %s",
                frames, fx_describe_recv(rc, buf, got, sizeof got));
    }
    print_message("  S was disconnected %lld ms after A's flood (%.1f MiB) stalled; A was told, "
                  "and S read %zu frames before the close\n",
                  (long long)took, (double)sent / (1 << 20), frames);
}

/* ---- A sender that never reads its own error frames ---- */

#define NOBODY 0x7FFFFFF0u /* an ID no router hands out this early */

/*
 * E sends frame after frame to a destination that does not exist, and never reads: its error
 * frames pile up in its own socket. A router that writes them while holding what every sender
 * needs (router-mutex's global lock) stalls everyone; the others stop reading E, and only E.
 */
void error_frames_a_sender_never_reads_do_not_stall_others(void **state)
{
    struct fixture *f = fx_begin(state);
    struct peer *e = fx_connect(f, "E (never reads its errors)");
    struct peer *a = fx_connect(f, "A"), *b = fx_connect(f, "B");
    uint8_t frame[PROTO_ID_LEN + 2];
    frame_put_u32(frame, NOBODY);
    frame[PROTO_ID_LEN] = 'e';
    frame[PROTO_ID_LEN + 1] = '\0';
    bool stalled;
    size_t partial;
    size_t sent = fx_offer(f, e, frame, sizeof frame, SIZE_MAX, &stalled, &partial);

    int64_t took = fx_time_frame(f, a, b, ISOLATION_MS);
    fx_close(f, e); /* lets a jammed router go, before the verdict */
    if (took < 0)
        fx_property_fails(f,
                          "A's frame to B did not arrive within %d ms while E's %zu frames to "
                          "nobody (E never reading its error frames) %s",
                          ISOLATION_MS, sent / sizeof frame, stalled ? "were stuck" : "flowed");
    print_message("  A's frame reached B in %lld ms while E's %zu frames to nobody %s\n",
                  (long long)took, sent / sizeof frame, stalled ? "were stuck" : "flowed");
    fx_property_holds(f);
}

/* ---- A signal the moment the router is up ---- */

/* Does the log end with a line that is not a sanitizer's? (The summary comes last.) */
static bool ends_with_summary(int log_fd)
{
    char text[4096];
    off_t size = lseek(log_fd, 0, SEEK_END);
    off_t from = size > (off_t)sizeof text - 1 ? size - (off_t)(sizeof text - 1) : 0;
    ssize_t n = size > 0 ? pread(log_fd, text, (size_t)(size - from), from) : 0;
    if (n <= 0 || text[n - 1] != '\n')
        return false;
    text[n - 1] = '\0';
    const char *last = strrchr(text, '\n');
    last = last ? last + 1 : text;
    return strstr(last, "served") != NULL;
}

/*
 * PROTOCOL.md promises exit 0 and a summary on SIGTERM: from the moment the router says
 * "listening on", not only once it has settled. A router that installs its handlers after
 * announcing itself is killed by a signal that comes in between.
 */
void sigterm_right_after_listening_exits_zero_every_time(void **state)
{
    struct fixture *f = fx_begin(state);
    for (int i = 0; i < SIGTERM_TRIES; i++) {
        int log_fd = fx_open_log();
        struct router_proc r;
        if (log_fd < 0 || router_proc_start(suite.router_argv, log_fd, &r) != 0)
            fx_fail(f, "try %d: could not start another router", i + 1);
        int status = 0;
        int stopped = router_proc_stop(&r, SIGTERM, STOP_TIMEOUT_MS, &status);
        bool summary = ends_with_summary(log_fd);
        close(log_fd);
        if (stopped != 0)
            fx_fail(f, "try %d: SIGTERM right after \"listening on\": still running after %d ms",
                    i + 1, STOP_TIMEOUT_MS);
        if (WIFSIGNALED(status))
            fx_fail(f,
                    "try %d: SIGTERM right after \"listening on\" killed the router (signal "
                    "%d): its handlers were not in place yet",
                    i + 1, WTERMSIG(status));
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !summary)
            fx_fail(f,
                    "try %d: after SIGTERM right after \"listening on\" the router should exit "
                    "0 with its summary line; it exited with status %d, %s",
                    i + 1, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
                    summary ? "with the summary" : "without a summary line");
    }
    print_message("  %d routers stopped the moment they announced themselves: each exited 0 "
                  "with its summary\n",
                  SIGTERM_TRIES);
}

/* ---- Fewer file descriptors than clients ---- */

/* The router's CPU time so far, in ms, or -1. */
static long cpu_ms(pid_t pid)
{
    struct proc_usage u;
    return proc_usage(pid, &u, false) == 0 ? (long)(u.cpu_s * 1000) : -1;
}

/*
 * With an open-file limit of FEW_FDS, MANY_CLIENTS connect. Each gets an ID or "server full"
 * and the close, never a silent close or a wait for nothing; the router does not spin while
 * full; and once the clients leave, a new one is served.
 */
void too_few_descriptors_every_client_gets_an_id_or_server_full(void **state)
{
    struct fixture *f = fx_begin(state);
    static struct client c[MANY_CLIENTS];
    int ids = 0, full = 0;
    char got[320];
    for (int i = 0; i < MANY_CLIENTS; i++)
        if (client_connect_raw(&c[i], "127.0.0.1", f->router.port) != 0)
            fx_fail(f, "client %d could not connect: %s", i, strerror(errno));
    for (int i = 0; i < MANY_CLIENTS; i++) {
        uint8_t first[PROTO_ID_LEN];
        int rc = client_recv_exact(&c[i], first, 1, CONNECT_TIMEOUT_MS);
        if (rc != 0)
            fx_fail(f,
                    "client %d of %d (with %d IDs and %d \"server full\" so far) expected an "
                    "ID or \"server full\" within %d ms; got %s",
                    i + 1, MANY_CLIENTS, ids, full, CONNECT_TIMEOUT_MS,
                    fx_describe_recv(rc, NULL, got, sizeof got));
        if (first[0] != PROTO_ERROR_BYTE) {
            if (client_recv_exact(&c[i], first + 1, PROTO_ID_LEN - 1, CONNECT_TIMEOUT_MS) != 0)
                fx_fail(f, "client %d: the router sent part of an ID", i + 1);
            ids++;
            continue;
        }
        char reason[PROTO_ERROR_FRAME_MAX];
        ssize_t n = client_recv(&c[i], reason, sizeof reason - 1, CONNECT_TIMEOUT_MS);
        if (n < 0 || (reason[n] = '\0', strstr(reason, "server full") == NULL))
            fx_fail(f, "client %d expected \"server full\"; got %s", i + 1,
                    fx_describe_recv(n, reason, got, sizeof got));
        uint8_t more[1];
        rc = client_recv_exact(&c[i], more, 1, CONNECT_TIMEOUT_MS);
        if (rc != CLIENT_CLOSED)
            fx_fail(f, "client %d was told \"server full\" and expected the close; got %s", i + 1,
                    rc == 0 ? "more bytes" : fx_describe_recv(rc, NULL, got, sizeof got));
        full++;
    }
    if (ids == 0 || full == 0)
        fx_fail(f,
                "with an open-file limit of %d, %d clients: %d got an ID and %d \"server "
                "full\"; expected some of each",
                FEW_FDS, MANY_CLIENTS, ids, full);

    long before = cpu_ms(f->router.pid);
    fx_sleep_ms(1000);
    long after = cpu_ms(f->router.pid);
    if (before < 0 || after < 0)
        fx_fail(f, "cannot read the router's CPU time in /proc");
    if (after - before > IDLE_CPU_MAX_MS)
        fx_fail(f,
                "full, with nothing to do, the router used %ld ms of CPU in a second: it "
                "spins",
                after - before);

    for (int i = 0; i < MANY_CLIENTS; i++)
        client_close(&c[i]);
    /* Threaded routers free a place once the client's thread has ended: try for a while. */
    int64_t deadline = clock_now_ms() + CONNECT_TIMEOUT_MS;
    for (bool served = false; !served;) {
        struct peer *n = fx_connect_raw(f, "N (after the others left)");
        uint8_t first[PROTO_ID_LEN];
        int rc = client_recv_exact(&n->c, first, PROTO_ID_LEN, CONNECT_TIMEOUT_MS);
        served = rc == 0 && first[0] != PROTO_ERROR_BYTE;
        fx_close(f, n);
        if (!served && clock_now_ms() > deadline)
            fx_fail(f, "after the %d clients left, a new client got no ID within %d ms",
                    MANY_CLIENTS, CONNECT_TIMEOUT_MS);
        if (!served)
            fx_sleep_ms(50);
    }
    print_message("  open-file limit %d, %d clients: %d got an ID, %d \"server full\"; %ld ms "
                  "of CPU in an idle second; a new client was served after they left\n",
                  FEW_FDS, MANY_CLIENTS, ids, full, after - before);
}
