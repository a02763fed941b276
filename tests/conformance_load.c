/*
 * conformance_load.c - the cases that load the router: a flood toward a client that never
 * reads (isolates-slow-consumers), and the survives-stress cases: a thousand connections,
 * random garbage, 10,000 frames in order each way, and 50 clients all to all.
 *
 * Traffic is driven from this one thread with non-blocking sockets and poll (the "pump"),
 * reading while writing, so a case cannot deadlock on full socket buffers, and it gives up when
 * nothing has moved for STALL_MS: a router that stalls makes the case fail, never hang.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conformance.h"
#include "frame.h"
#include "net.h"
#include "options.h"
#include "proc_probe.h"
#include "proto.h"

#define STALL_MS 3000       /* nothing moved for this long: the router is stuck */
#define PUMP_LIMIT_MS 20000 /* a pump that still moves gives up after this long anyway */
#define INBOX 65536         /* received bytes not yet a whole frame, per client */

/* One client's traffic: bytes still to send and bytes received, not yet a whole frame. */
struct flow {
    struct peer *p;
    uint8_t *out;
    size_t out_len, out_off;
    uint8_t in[INBOX];
    size_t in_len;
    bool closed;
};

struct pump {
    struct flow *flows;
    int n;
    uint32_t *rng; /* if set, writes are cut at random sizes, so frames split anywhere */
    bool garbage;  /* closes, write errors and overlong frames are expected, not failures */
    /* Called with each frame received by flows[to]; returns false to stop, with why set. */
    bool (*on_frame)(struct pump *pm, int to, const uint8_t *payload, size_t len);
    bool (*done)(const struct pump *pm);
    void *ctx;
    char why[400];
};

static uint32_t xorshift32(uint32_t *s)
{
    uint32_t x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* A client for the pump: connected, non-blocking. */
static struct peer *pump_peer(struct fixture *f, const char *name)
{
    struct peer *p = fx_connect(f, name);
    if (net_set_nonblocking(p->c.fd) != 0)
        fx_fail(f, "fcntl O_NONBLOCK: %s", strerror(errno));
    return p;
}

/* Start a flow, with anything client_connect read past the ID moved into its inbox. */
static void flow_init(struct flow *fl, struct peer *p)
{
    fl->p = p;
    memcpy(fl->in, p->c.buf, p->c.len);
    fl->in_len = p->c.len;
    p->c.len = 0;
}

static bool pump_read(struct pump *pm, struct flow *fl, int to, bool *moved)
{
    ssize_t n = read(fl->p->c.fd, fl->in + fl->in_len, INBOX - fl->in_len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return true;
    if (n <= 0) {
        fl->closed = true;
        fl->out_off = fl->out_len;
        if (pm->garbage)
            return true;
        snprintf(pm->why, sizeof pm->why, "the router closed %s's connection%s%s", fl->p->name,
                 n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
        return false;
    }
    *moved = true;
    fl->in_len += (size_t)n;
    size_t start = 0;
    const uint8_t *nul;
    while ((nul = memchr(fl->in + start, '\0', fl->in_len - start)) != NULL) {
        size_t len = (size_t)(nul - (fl->in + start));
        if (!pm->on_frame(pm, to, fl->in + start, len))
            return false;
        start += len + 1;
    }
    memmove(fl->in, fl->in + start, fl->in_len - start);
    fl->in_len -= start;
    if (fl->in_len == INBOX) {
        if (pm->garbage) {
            fl->in_len = 0; /* a forwarded overlong frame; its contents do not matter here */
            return true;
        }
        snprintf(pm->why, sizeof pm->why, "%s received %d bytes without a NUL", fl->p->name, INBOX);
        return false;
    }
    return true;
}

static bool pump_write(struct pump *pm, struct flow *fl, bool *moved)
{
    size_t len = fl->out_len - fl->out_off;
    if (pm->rng && len > 1) {
        size_t cut = 1 + xorshift32(pm->rng) % 4096;
        len = cut < len ? cut : len;
    }
    ssize_t n = write(fl->p->c.fd, fl->out + fl->out_off, len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return true;
    if (n < 0) {
        if (pm->garbage) {
            fl->out_off = fl->out_len; /* the router hung up on it: nothing more to send */
            return true;
        }
        snprintf(pm->why, sizeof pm->why, "%s could not write: %s", fl->p->name, strerror(errno));
        return false;
    }
    fl->out_off += (size_t)n;
    *moved = true;
    return true;
}

/* Move bytes both ways until pm->done() says so. Returns false, with pm->why, if it cannot. */
static bool pump_run(struct pump *pm)
{
    struct pollfd pfd[FX_MAX_PEERS];
    int64_t start = clock_now_ms(), last_move = start;
    while (!pm->done(pm)) {
        int64_t now = clock_now_ms();
        if (now - last_move > STALL_MS) {
            snprintf(pm->why, sizeof pm->why, "nothing moved for %d ms", STALL_MS);
            return false;
        }
        if (now - start > PUMP_LIMIT_MS) {
            snprintf(pm->why, sizeof pm->why, "still not done after %d ms", PUMP_LIMIT_MS);
            return false;
        }
        for (int i = 0; i < pm->n; i++) {
            struct flow *fl = &pm->flows[i];
            pfd[i] = (struct pollfd){.fd = fl->closed ? -1 : fl->p->c.fd,
                                     .events = POLLIN | (fl->out_off < fl->out_len ? POLLOUT : 0)};
        }
        if (poll(pfd, (nfds_t)pm->n, 100) < 0 && errno != EINTR) {
            snprintf(pm->why, sizeof pm->why, "poll: %s", strerror(errno));
            return false;
        }
        bool moved = false;
        for (int i = 0; i < pm->n; i++) {
            struct flow *fl = &pm->flows[i];
            if ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) && !pump_read(pm, fl, i, &moved))
                return false;
            if ((pfd[i].revents & POLLOUT) && !fl->closed && !pump_write(pm, fl, &moved))
                return false;
        }
        if (moved)
            last_move = clock_now_ms();
    }
    return true;
}

static bool all_written(const struct pump *pm)
{
    for (int i = 0; i < pm->n; i++)
        if (pm->flows[i].out_off < pm->flows[i].out_len)
            return false;
    return true;
}

/* ---- Stress: every client sends per_pair numbered frames to every other client. ---- */

struct traffic {
    int n, per_pair;
    uint32_t *next; /* next[to * n + from]: the number `to` expects next from `from` */
    long received, expected;
};

/* The payload of frame #seq from client `from` to client `to`: a header naming all three, then
 * a filler whose length and letters depend on them, so any damage shows. */
static size_t traffic_payload(char *buf, int from, int to, int seq)
{
    int len = sprintf(buf, "%02d>%02d #%06d ", from, to, seq);
    int filler = (seq * 7 + from * 13 + to) % 61;
    for (int k = 0; k < filler; k++)
        buf[len + k] = (char)('a' + (from + to + seq + k) % 26);
    return (size_t)(len + filler);
}

static bool traffic_frame(struct pump *pm, int to, const uint8_t *payload, size_t len)
{
    struct traffic *t = pm->ctx;
    const char *me = pm->flows[to].p->name;
    char want[96], shown[200];
    int from, dest, seq;
    /* The frame's NUL follows it in the inbox, so sscanf stops there at the latest. */
    bool parsed = sscanf((const char *)payload, "%2d>%2d #%6d ", &from, &dest, &seq) == 3 &&
                  from >= 0 && from < t->n && dest >= 0 && dest < t->n && from != dest &&
                  seq >= 0 && seq < t->per_pair;
    if (parsed && dest != to) {
        snprintf(pm->why, sizeof pm->why, "%s received a frame meant for %s: %s", me,
                 pm->flows[dest].p->name, fx_render(payload, len, shown, sizeof shown));
        return false;
    }
    if (!parsed || traffic_payload(want, from, dest, seq) != len || memcmp(want, payload, len)) {
        snprintf(pm->why, sizeof pm->why,
                 "%s received a frame that was never sent (damaged or interleaved): %s", me,
                 fx_render(payload, len, shown, sizeof shown));
        return false;
    }
    uint32_t *next = &t->next[to * t->n + from];
    if ((uint32_t)seq != *next) {
        snprintf(pm->why, sizeof pm->why, "%s received #%d from %s but expected #%" PRIu32 ": %s",
                 me, seq, pm->flows[from].p->name, *next,
                 (uint32_t)seq < *next ? "a duplicate, or out of order"
                                       : "frames lost or out of order");
        return false;
    }
    (*next)++;
    t->received++;
    return true;
}

static bool traffic_done(const struct pump *pm)
{
    const struct traffic *t = pm->ctx;
    return t->received == t->expected;
}

/*
 * n clients, each sending per_pair frames to every other one, interleaved (#0 to everyone,
 * then #1...), all read concurrently. Returns true if every frame arrived exactly once, intact
 * and in order per sender; otherwise false with the first problem in why.
 */
static bool run_traffic(struct fixture *f, int n, int per_pair, char *why, size_t cap)
{
    struct peer *peers[FX_MAX_PEERS];
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof name, "client %d", i + 1);
        peers[i] = pump_peer(f, name);
    }
    struct traffic t = {.n = n,
                        .per_pair = per_pair,
                        .next = calloc((size_t)n * (size_t)n, sizeof *t.next),
                        .expected = (long)n * (n - 1) * per_pair};
    struct flow *flows = calloc((size_t)n, sizeof *flows);
    size_t frame_max = 4 + 96;
    for (int i = 0; t.next && flows && i < n; i++) {
        flows[i].out = malloc((size_t)(n - 1) * (size_t)per_pair * frame_max);
        if (!flows[i].out)
            break;
        for (int seq = 0; seq < per_pair; seq++)
            for (int to = 0; to < n; to++) {
                if (to == i)
                    continue;
                uint8_t *w = flows[i].out + flows[i].out_len;
                frame_put_u32(w, peers[to]->c.id);
                size_t len = traffic_payload((char *)w + 4, i, to, seq);
                w[4 + len] = '\0';
                flows[i].out_len += 4 + len + 1;
            }
    }
    bool ok = false;
    if (!t.next || !flows || !flows[n - 1].out) {
        snprintf(why, cap, "out of memory");
    } else {
        for (int i = 0; i < n; i++)
            flow_init(&flows[i], peers[i]);
        struct pump pm = {
            .flows = flows, .n = n, .on_frame = traffic_frame, .done = traffic_done, .ctx = &t};
        ok = pump_run(&pm);
        /* Name one frame still missing: the first sender a receiver still waits for. */
        int to = 0, from = 0;
        while (to < n && (to == from || t.next[to * n + from] == (uint32_t)per_pair)) {
            from = (from + 1) % n;
            to += from == 0;
        }
        char missing[96] = "";
        if (to < n)
            snprintf(missing, sizeof missing, "; %s still waits for #%" PRIu32 " from %s",
                     peers[to]->name, t.next[to * n + from], peers[from]->name);
        snprintf(why, cap, "%s (%ld of %ld frames had arrived%s)", pm.why, t.received, t.expected,
                 missing);
    }
    for (int i = 0; flows && i < n; i++)
        free(flows[i].out);
    free(flows);
    free(t.next);
    return ok;
}

/* Surviving includes the end: after the load, SIGTERM stops the router cleanly, and its
 * stderr holds no sanitizer report. */
static bool stops_cleanly(struct fixture *f, char *why, size_t cap)
{
    int status;
    char how[96], headline[256];
    if (!fx_router_alive(f))
        snprintf(why, cap, "after the load the router %s", fx_router_state(f, how, sizeof how));
    else if (fx_stop(f, SIGTERM, STOP_TIMEOUT_MS, &status) != 0)
        snprintf(why, cap, "after the load the router did not exit within %d ms of SIGTERM",
                 STOP_TIMEOUT_MS);
    else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        snprintf(why, cap, "after the load and SIGTERM the router %s",
                 fx_router_state(f, how, sizeof how));
    else if (fx_log_report(f->stderr_fd, headline, sizeof headline))
        snprintf(why, cap, "the router's stderr has a sanitizer report: %s", headline);
    else
        return true;
    return false;
}

/* The end of every stress case. */
static void survived(struct fixture *f)
{
    char why[512];
    if (!stops_cleanly(f, why, sizeof why))
        fx_fail(f, "%s", why);
    fx_property_holds(f);
}

static void traffic_case(void **state, int clients, int per_pair)
{
    struct fixture *f = fx_begin(state);
    char why[512];
    if (!run_traffic(f, clients, per_pair, why, sizeof why))
        fx_fail(f, "%s", why);
    survived(f);
}

void per_pair_order_holds_over_10000_frames(void **state)
{
    traffic_case(state, 2, 10000); /* 10,000 frames each way */
}

void all_to_all_50_clients_deliver_every_frame_once_intact(void **state)
{
    traffic_case(state, 50, 20); /* 50 clients x 49 destinations x 20 frames: 49,000 frames */
}

/* ---- A client that never reads ---- */

#define FLOOD_FRAME 16384            /* payload bytes per flood frame */
#define FLOOD_MAX ((size_t)64 << 20) /* offered at most while others exchange frames */
#define ISOLATION_MS 2000 /* a second is the bar; the margin is for loaded, sanitized runs */

/* F sends frames to dest until its writes stall or max bytes are offered. Returns bytes sent. */
static size_t flood(struct fixture *f, struct peer *from, uint32_t dest, size_t max, bool *stalled)
{
    static uint8_t frame[4 + FLOOD_FRAME + 1];
    frame_put_u32(frame, dest);
    memset(frame + 4, 'f', FLOOD_FRAME);
    frame[sizeof frame - 1] = '\0';
    size_t partial;
    return fx_offer(f, from, frame, sizeof frame, max, stalled, &partial);
}

void slow_consumer_does_not_stall_other_clients(void **state)
{
    struct fixture *f = fx_begin(state);
    struct peer *s = fx_connect(f, "S (never reads)");
    struct peer *fl = fx_connect(f, "F (floods S)");
    struct peer *a = fx_connect(f, "A"), *b = fx_connect(f, "B");
    bool stalled;
    size_t sent = flood(f, fl, s->c.id, FLOOD_MAX, &stalled);
    double mib = (double)sent / (1 << 20);

    int64_t took = fx_time_frame(f, a, b, ISOLATION_MS);
    fx_close(f, s); /* lets a jammed router go, before the verdict */
    if (took < 0)
        fx_property_fails(f,
                          "A's frame to B did not arrive within %d ms while F's %.1f MiB flood "
                          "to S (never reading) %s",
                          ISOLATION_MS, mib, stalled ? "was stuck" : "flowed");
    print_message("  A's frame reached B in %lld ms while F's %.1f MiB flood to S %s\n",
                  (long long)took, mib, stalled ? "was stuck" : "flowed");
    fx_property_holds(f);
}

/* The client a router sends away for a frame too long may still have bytes on the way in and
 * frames on the way out. Closing a socket with unread input makes the kernel send a reset,
 * which throws away what the client has not read yet, the error frame first. */
void flooded_client_sent_away_still_reads_its_error_frame(void **state)
{
    struct fixture *f = fx_begin(state);
    struct peer *s = fx_connect(f, "S (reads late)");
    struct peer *fl = fx_connect(f, "F (floods S)");
    bool stalled;
    size_t sent = flood(f, fl, s->c.id, FLOOD_MAX, &stalled);

    /* Far past the default limit: the router gives up on S with bytes still arriving. */
    enum { TOO_LONG = PROTO_ID_LEN + OPTIONS_DEFAULT_MAX_MESSAGE + 1 + 16384 };
    static uint8_t wire[TOO_LONG];
    frame_put_u32(wire, fl->c.id);
    memset(wire + PROTO_ID_LEN, 'x', sizeof wire - PROTO_ID_LEN);
    fx_send_raw(f, s, wire, sizeof wire);

    static uint8_t buf[FLOOD_FRAME + 1];
    size_t frames = 0;
    bool told = false;
    for (;;) {
        ssize_t rc = client_recv(&s->c, buf, sizeof buf, FRAME_TIMEOUT_MS);
        if (rc == CLIENT_CLOSED)
            break;
        char got[320];
        if (rc < 0)
            fx_fail(f,
                    "S expected frames, then \"message too long\", then the close; after %zu "
                    "frames it got %s",
                    frames, fx_describe_recv(rc, buf, got, sizeof got));
        /* Frames F's sender had already routed to S may still follow the error frame: the
         * protocol orders frames per sender, not across senders. */
        if (rc > 0 && buf[0] == PROTO_ERROR_BYTE) {
            if (told || rc != 17 || memcmp(buf + 1, "message too long", 16) != 0)
                fx_fail(f, "S expected \"message too long\"; got %s",
                        fx_describe_recv(rc, buf, got, sizeof got));
            told = true;
            continue;
        }
        for (ssize_t i = 0; i < rc; i++)
            if (buf[i] != 'f' || rc != FLOOD_FRAME)
                fx_fail(f, "S received a damaged flood frame (frame %zu, %zd bytes)", frames, rc);
        frames++;
    }
    if (!told)
        fx_fail(f,
                "the connection closed after %zu flood frames without \"message too long\" "
                "(a close with unread input sends a reset, which discards what S had not "
                "read)",
                frames);
    print_message("  S read %zu flood frames (of %.1f MiB offered) and its error frame\n", frames,
                  (double)sent / (1 << 20));
    survived(f);
}

/* A reader that pauses while its router queues a flood for it, then many small frames, each
 * sent on its own: a router that queues by bytes but keeps the frames of each read apart may
 * run out of slots before bytes. Once the reader reads again, every frame must follow. */
#define PAUSE_FLOOD ((size_t)16 << 20) /* far beyond the kernel's buffers, within --max-pending */
#define PAUSE_SMALL 600                /* small frames after the flood, one write each */

void paused_reader_gets_every_small_frame_once_it_reads(void **state)
{
    struct fixture *f = fx_begin(state);
    struct peer *d = fx_connect(f, "D (pauses)");
    struct peer *fl = fx_connect(f, "F (floods D)");
    struct peer *g = fx_connect(f, "G (small frames to D)");
    bool stalled;
    size_t sent = flood(f, fl, d->c.id, PAUSE_FLOOD, &stalled);
    for (int i = 0; i < PAUSE_SMALL; i++) {
        char msg[16];
        fx_send(f, g, d->c.id, msg, (size_t)snprintf(msg, sizeof msg, "g%d", i));
        fx_sleep_ms(1); /* one read, so one batch, per frame at the router */
    }
    static uint8_t buf[FLOOD_FRAME + 1];
    size_t floods = 0;
    for (int next = 0; next < PAUSE_SMALL;) {
        ssize_t rc = client_recv(&d->c, buf, sizeof buf, FRAME_TIMEOUT_MS);
        char got[320], want[16];
        snprintf(want, sizeof want, "g%d", next);
        if (rc == FLOOD_FRAME && buf[0] == 'f') {
            floods++;
        } else if (rc < 0 || (size_t)rc != strlen(want) || memcmp(buf, want, (size_t)rc)) {
            fx_fail(f,
                    "after %zu flood frames (of %.1f MiB offered) and %d of G's %d small frames, "
                    "D expected \"%s\"; got %s",
                    floods, (double)sent / (1 << 20), next, PAUSE_SMALL, want,
                    fx_describe_recv(rc, buf, got, sizeof got));
        } else {
            next++;
        }
    }
    print_message(
        "  D read G's %d small frames in order, among %zu flood frames (%.1f MiB offered, "
        "%s)\n",
        PAUSE_SMALL, floods, (double)sent / (1 << 20), stalled ? "F stalled" : "all taken");
    survived(f);
}

#define MEMORY_OFFERED ((size_t)512 << 20)
#define MEMORY_BOUND_KIB (64 * 1024)

void stalled_reader_keeps_router_memory_bounded(void **state)
{
    struct fixture *f = fx_begin(state);
    struct peer *s = fx_connect(f, "S (never reads)");
    struct peer *fl = fx_connect(f, "F (floods S)");
    long before = proc_rss_kib(f->router.pid);
    bool stalled;
    size_t sent = flood(f, fl, s->c.id, MEMORY_OFFERED, &stalled);
    long peak = proc_peak_rss_kib(f->router.pid);
    if (before < 0 || peak < 0)
        fx_fail(f, "cannot read the router's memory in /proc");
    double mib = (double)sent / (1 << 20);
    if (peak > MEMORY_BOUND_KIB)
        fx_property_fails(f,
                          "the router's peak memory reached %.1f MiB (%.1f MiB at the start) "
                          "after taking %.1f MiB for S, which never reads",
                          peak / 1024.0, before / 1024.0, mib);
    print_message("  the router took %.1f MiB of the %zu MiB offered, then %s; peak memory "
                  "%.1f MiB\n",
                  mib, MEMORY_OFFERED >> 20, stalled ? "stopped reading" : "the time ran out",
                  peak / 1024.0);
    fx_property_holds(f);
}

/* ---- Many connections ---- */

#define FD_SETTLE_MS 3000 /* closing is asynchronous in threaded routers: give it time */

/* The router's descriptor count once two readings 50 ms apart agree (at most a second). */
static int settled_fd_count(pid_t pid)
{
    int prev = proc_count_fds(pid);
    for (int i = 0; i < 20; i++) {
        fx_sleep_ms(50);
        int now = proc_count_fds(pid);
        if (now == prev)
            break;
        prev = now;
    }
    return prev;
}

void connect_disconnect_1000_times_keeps_fd_count(void **state)
{
    struct fixture *f = fx_begin(state);
    /* Warm up first: a router may open descriptors lazily for its first client. */
    for (int i = 0; i < 5; i++)
        fx_close(f, fx_connect(f, "warm-up"));
    int before = settled_fd_count(f->router.pid);
    if (before < 0)
        fx_fail(f, "cannot count the router's descriptors in /proc");

    /* In batches of 20 open at once; every other client leaves without reading its ID. */
    enum { TOTAL = 1000, BATCH = 20 };
    for (int done = 0; done < TOTAL; done += BATCH) {
        struct peer *batch[BATCH];
        for (int k = 0; k < BATCH; k++) {
            char name[24];
            snprintf(name, sizeof name, "client %d", done + k + 1);
            batch[k] = k % 2 ? fx_connect_raw(f, name) : fx_connect(f, name);
        }
        for (int k = 0; k < BATCH; k++)
            fx_close(f, batch[k]);
    }
    /* Once a last client has its ID, the router has accepted every earlier one. */
    fx_close(f, fx_connect(f, "last"));

    int64_t deadline = clock_now_ms() + FD_SETTLE_MS;
    int after;
    while ((after = proc_count_fds(f->router.pid)) > before && clock_now_ms() < deadline)
        fx_sleep_ms(20);
    if (after < 0)
        fx_fail(f, "cannot count the router's descriptors in /proc any more");
    if (after > before)
        fx_fail(f,
                "the router had %d open descriptors before %d clients came and went, and "
                "%d still %d ms after the last left: %d leaked",
                before, TOTAL, after, FD_SETTLE_MS, after - before);
    print_message("  open descriptors: %d before, %d after\n", before, after);
    survived(f);
}

/* ---- Garbage ---- */

#define GARBAGE_SEED 20250620u

static bool discard_frame(struct pump *pm, int to, const uint8_t *payload, size_t len)
{
    (void)pm, (void)to, (void)payload, (void)len;
    return true;
}

static void put_random(uint8_t *p, size_t len, uint32_t *rng, bool nul_allowed)
{
    for (size_t i = 0; i < len; i++) {
        uint8_t b = (uint8_t)xorshift32(rng);
        p[i] = b || nul_allowed ? b : 'x';
    }
}

/* Random bytes mixed with frames to random IDs and to the given real ones. */
static size_t put_mixed(uint8_t *p, size_t cap, uint32_t *rng, const uint32_t *ids, int n_ids)
{
    size_t len = 0;
    while (len + 4 + 301 < cap) {
        uint32_t r = xorshift32(rng);
        size_t body = 1 + r % 300;
        if (r % 3 == 0) {
            put_random(p + len, body, rng, true);
            len += body;
            continue;
        }
        frame_put_u32(p + len, r % 3 == 1 ? ids[(r >> 8) % (uint32_t)n_ids] : xorshift32(rng));
        put_random(p + len + 4, body - 1, rng, false);
        p[len + 4 + body - 1] = '\0';
        len += 4 + body;
    }
    return len;
}

void random_garbage_does_not_crash_it(void **state)
{
    struct fixture *f = fx_begin(state);
    enum { G = 4, BYTES = 32768, OVERLONG = 70000 };
    struct peer *g[G];
    uint32_t ids[G];
    for (int i = 0; i < G; i++) {
        char name[16];
        snprintf(name, sizeof name, "garbage %d", i + 1);
        g[i] = pump_peer(f, name);
        ids[i] = g[i]->c.id;
    }
    uint32_t rng = GARBAGE_SEED;
    struct flow *flows = calloc(G, sizeof *flows);
    for (int i = 0; flows && i < G; i++)
        if (!(flows[i].out = malloc(OVERLONG + 4)))
            break;
    if (!flows || !flows[G - 1].out) {
        for (int i = 0; flows && i < G; i++)
            free(flows[i].out);
        free(flows);
        fx_fail(f, "out of memory");
    }
    /* 1: pure noise. 2, 3: noise, frames to random IDs, frames to each other. 4: a payload
     * longer than the default --max-message, which must cost it its connection, not the
     * router its memory. */
    put_random(flows[0].out, BYTES, &rng, true);
    flows[0].out_len = BYTES;
    flows[1].out_len = put_mixed(flows[1].out, BYTES, &rng, ids, G);
    flows[2].out_len = put_mixed(flows[2].out, BYTES, &rng, ids, G);
    frame_put_u32(flows[3].out, ids[0]);
    put_random(flows[3].out + 4, OVERLONG, &rng, false);
    flows[3].out_len = OVERLONG + 4;

    for (int i = 0; i < G; i++)
        flow_init(&flows[i], g[i]);
    struct pump pm = {.flows = flows,
                      .n = G,
                      .rng = &rng,
                      .garbage = true,
                      .on_frame = discard_frame,
                      .done = all_written};
    if (!pump_run(&pm))
        print_message("  the garbage was not all taken: %s\n", pm.why);
    for (int i = 0; i < G; i++)
        free(flows[i].out);
    free(flows);
    for (int i = 0; i < G; i++)
        fx_close(f, g[i]);

    fx_sleep_ms(SILENCE_MS); /* time to choke on what it has read, if it is going to */
    if (!fx_router_alive(f))
        fx_fail(f, "the router died of random input (seed %u)", GARBAGE_SEED);
    struct peer *x = fx_connect(f, "X"), *y = fx_connect(f, "Y");
    static const char hi[] = "after the garbage", back[] = "still fine";
    fx_send(f, x, y->c.id, hi, strlen(hi));
    fx_expect_frame(f, y, hi, strlen(hi), FRAME_TIMEOUT_MS);
    fx_send(f, y, x->c.id, back, strlen(back));
    fx_expect_frame(f, x, back, strlen(back), FRAME_TIMEOUT_MS);
    survived(f);
}
