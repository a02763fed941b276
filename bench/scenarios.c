/*
 * scenarios.c - the traffic: who talks to whom, how fast, and the phases of a run.
 *
 * Every scenario is built from pairs of neighbouring connections (which is also how the relay
 * pairs them). A run goes: connect everything; warm up; measure for the duration; stop
 * sending; drain, i.e. wait until every frame sent has arrived. Latency is recorded for
 * frames whose send time falls inside the measurement window, whenever they arrive, so
 * frames stuck in a stalled router still count once they come out. Throughput counts the
 * frames that arrive inside the window.
 *
 * Closed loop (pingpong, pairs, connections): a pinger sends one frame, its echoer answers,
 * the pinger sends the next: the round-trip time, and the most round trips/s.
 * Pipeline: each sender keeps up to `window` frames in flight to its receiver; loadgen sees
 * both ends, so it needs no acknowledgements to know how many are in flight.
 * Open loop: each frame has a slot on a fixed schedule, and its latency is measured from the
 * slot, not from when loadgen got round to sending it. A router that stalls delays the sends
 * behind it, and that delay is in the figures: no coordinated omission.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "loadgen.h"
#include "proc_probe.h"

/* At high rates, wake at most this often and send every frame whose slot has come: each one
 * keeps its slot time, so the wait is in its latency, and loadgen spends its core on frames
 * rather than on timer wakeups. */
#define TICK_MIN_NS 20000u
#define FLOOD_GAP_NS 50000000u   /* between the baseline and the flood */
#define FLOOD_CHUNK (256 * 1024) /* the flood is written in chunks of about this size */

int scenario_layout(struct loadgen *lg)
{
    const struct config *cfg = &lg->cfg;
    bool closed_loop = cfg->scenario == SC_PINGPONG || cfg->scenario == SC_PAIRS ||
                       cfg->scenario == SC_CONNECTIONS;
    bool slow = cfg->scenario == SC_SLOW_CONSUMER;
    unsigned idle = cfg->idle + (cfg->idle & 1); /* even, so the relay pairs the rest right */
    unsigned n = idle + 2 * cfg->pairs + (slow ? 2 : 0);
    lg->conns = calloc(n, sizeof *lg->conns);
    lg->active = calloc(n, sizeof *lg->active);
    lg->senders = calloc(n, sizeof *lg->senders);
    lg->dirty = calloc(n, sizeof *lg->dirty);
    if (!lg->conns || !lg->active || !lg->senders || !lg->dirty)
        return -1;
    for (unsigned i = 0; i < n; i++) {
        struct conn *c = calloc(1, sizeof *c);
        if (!c)
            return -1;
        c->lg = lg;
        c->index = i;
        c->role = ROLE_IDLE;
        lg->conns[i] = c;
    }
    lg->nconns = n;
    for (unsigned i = idle; i + 1 < n; i += 2) {
        struct conn *a = lg->conns[i], *b = lg->conns[i + 1];
        a->peer = b;
        b->peer = a;
        lg->active[lg->nactive++] = a;
        lg->active[lg->nactive++] = b;
        if (closed_loop) {
            a->role = ROLE_PINGER;
            b->role = ROLE_ECHOER;
        } else {
            a->role = ROLE_SENDER;
            b->role = ROLE_RECEIVER;
            a->stream = lg->nsenders;
            lg->senders[lg->nsenders++] = a;
        }
    }
    if (slow) {
        /* The last pair is not a healthy one: a flooder and a receiver that stops reading. */
        lg->flooder = lg->conns[n - 2];
        lg->stalled = lg->conns[n - 1];
        lg->flooder->role = ROLE_FLOODER;
        lg->stalled->role = ROLE_STALLED;
        lg->nsenders--;
        lg->nactive -= 2;
    }
    return 0;
}

/* ---- sending patterns ---- */

static bool healthy_sender(enum role r)
{
    return r == ROLE_PINGER || r == ROLE_ECHOER || r == ROLE_SENDER;
}

uint64_t scenario_outstanding(const struct loadgen *lg)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < lg->nactive; i++) {
        const struct conn *c = lg->active[i];
        if (healthy_sender(c->role) && c->tx_seq > c->peer->rx_unique)
            n += c->tx_seq - c->peer->rx_unique;
    }
    return n;
}

static uint64_t in_flight(const struct conn *s)
{
    return s->tx_seq - s->peer->rx_unique;
}

static void pipeline_fill(struct conn *s, uint64_t now)
{
    struct loadgen *lg = s->lg;
    while (lg->sending && in_flight(s) < lg->cfg.window && !lg->failed)
        conn_send(s, now, lg->cfg.size);
}

/* The k-th scheduled frame of sender j: the senders take turns, evenly spaced. */
static uint64_t slot_time(const struct loadgen *lg, unsigned j, uint64_t k)
{
    double slot = (double)k * lg->nsenders + j;
    return lg->run_start + (uint64_t)(slot * 1e9 / lg->cfg.rate);
}

/* Send every frame whose slot has come, unless the sender is max_in_flight ahead of its
 * receiver: then it falls behind, and the frames it sends later keep their slot times. */
static void open_loop_fill(struct conn *s, uint64_t now)
{
    struct loadgen *lg = s->lg;
    while (lg->sending && in_flight(s) < lg->cfg.max_in_flight) {
        uint64_t t = slot_time(lg, s->stream, s->next_slot);
        if (t > now || t >= lg->send_end)
            break;
        conn_send(s, t, lg->cfg.size);
        s->next_slot++;
        if (t >= lg->measure_start && t < lg->measure_end) {
            uint64_t lag = now - t;
            lg->lag_sum += lag;
            lg->lag_count++;
            if (lag > lg->lag_max)
                lg->lag_max = lag;
        }
    }
}

/* Set the timerfd for the earliest slot of a sender that may send. */
static void arm_tick(struct loadgen *lg)
{
    uint64_t next = UINT64_MAX;
    for (unsigned j = 0; j < lg->nsenders; j++) {
        struct conn *s = lg->senders[j];
        if (in_flight(s) >= lg->cfg.max_in_flight)
            continue; /* woken by its receiver instead */
        uint64_t t = slot_time(lg, j, s->next_slot);
        if (t < next)
            next = t;
    }
    if (!lg->sending || next >= lg->send_end)
        return;
    if (next < lg->last_tick + TICK_MIN_NS)
        next = lg->last_tick + TICK_MIN_NS;
    if (lg->tick_armed && lg->tick_armed <= next)
        return;
    uint64_t abs = lg->epoch + next;
    struct itimerspec its = {
        .it_value = {.tv_sec = (time_t)(abs / 1000000000u), .tv_nsec = (long)(abs % 1000000000u)}};
    if (timerfd_settime(lg->tick_fd, TFD_TIMER_ABSTIME, &its, NULL) != 0) {
        lg_fail(lg, "timerfd_settime failed");
        return;
    }
    lg->tick_armed = next;
}

static void on_tick(uv_poll_t *p, int status, int events)
{
    struct loadgen *lg = p->data;
    (void)events;
    if (status < 0) {
        lg_fail(lg, "timerfd poll: %s", uv_strerror(status));
        return;
    }
    uint64_t expirations;
    if (read(lg->tick_fd, &expirations, sizeof expirations) < 0 && errno != EAGAIN) {
        lg_fail(lg, "read timerfd failed");
        return;
    }
    lg->tick_armed = 0;
    uint64_t now = lg_now(lg);
    lg->last_tick = now;
    for (unsigned j = 0; j < lg->nsenders; j++)
        open_loop_fill(lg->senders[j], now);
    arm_tick(lg);
}

/*
 * The flood is one chunk of frames to the stalled receiver, built once and written again
 * whenever the previous write has gone: it costs loadgen a write call, not a payload per
 * frame, so loadgen's own loop stays free for the healthy pairs it is timing.
 */
static int build_flood_chunk(struct loadgen *lg)
{
    size_t frame = PROTO_ID_LEN + lg->cfg.flood_size + 1;
    size_t n = FLOOD_CHUNK / frame ? FLOOD_CHUNK / frame : 1;
    lg->flood_chunk = malloc(n * frame);
    if (!lg->flood_chunk)
        return -1;
    for (size_t i = 0; i < n; i++) {
        uint8_t *p = lg->flood_chunk + i * frame;
        struct payload_info pi = {.sender = lg->flooder->index, .seq = (uint32_t)i};
        frame_put_u32(p, lg->stalled->id);
        payload_write(p + PROTO_ID_LEN, lg->cfg.flood_size, &pi);
        p[frame - 1] = '\0';
    }
    lg->flood_chunk_len = n * frame;
    return 0;
}

static void flood_write(struct conn *f)
{
    struct loadgen *lg = f->lg;
    if (!lg->flooding || lg->flood_bytes >= lg->cfg.flood_max || lg->failed)
        return;
    if (conn_write_static(f, lg->flood_chunk, lg->flood_chunk_len) == 0) {
        size_t frame = PROTO_ID_LEN + lg->cfg.flood_size + 1;
        lg->flood_frames += lg->flood_chunk_len / frame;
        lg->flood_bytes += lg->flood_chunk_len;
    }
}

void scenario_on_written(struct conn *c)
{
    if (c->role == ROLE_FLOODER)
        flood_write(c);
}

/* ---- receiving ---- */

void scenario_on_frame(struct conn *c, const struct payload_info *pi, uint64_t now)
{
    struct loadgen *lg = c->lg;
    const struct config *cfg = &lg->cfg;
    uint64_t t = pi->time_ns;
    bool sent_in_window = t >= lg->measure_start && t < lg->measure_end;
    if (now >= lg->measure_start && now < lg->measure_end) {
        lg->window_frames++;
        lg->window_bytes += cfg->size;
        if (c->role == ROLE_PINGER)
            lg->window_trips++;
    }
    switch (c->role) {
    case ROLE_PINGER:
        if (sent_in_window)
            histogram_record(&lg->lat, now - t);
        if (lg->sending)
            conn_send(c, now, cfg->size);
        break;
    case ROLE_ECHOER:
        conn_send(c, t, cfg->size); /* the answer carries the question's send time */
        break;
    case ROLE_RECEIVER:
        if (sent_in_window)
            histogram_record(&lg->lat, now - t);
        else if (cfg->scenario == SC_SLOW_CONSUMER && t >= lg->flood_start && t < lg->send_end)
            histogram_record(&lg->lat_flood, now - t);
        if (cfg->scenario == SC_PIPELINE) {
            pipeline_fill(c->peer, now);
        } else if (in_flight(c->peer) + 1 == cfg->max_in_flight) {
            /* Its sender was held back by max_in_flight: it may send again. */
            open_loop_fill(c->peer, now);
            arm_tick(lg);
        }
        break;
    default:
        break;
    }
}

/* ---- phases ---- */

static uint64_t ms_until(const struct loadgen *lg, uint64_t t)
{
    uint64_t now = lg_now(lg);
    return t > now ? (t - now + 999999) / 1000000 : 0;
}

/* The router's CPU time, system calls and context switches as the measured window opens, then
 * as it shuts: what the router spent on the frames of the window. The loop waits while /proc is
 * read, and context switches cost a read per router thread: not with thousands of idle
 * connections, where a thread per client made that wait 0.6 s inside the window (and the
 * report shows switches only for pairs and pipeline). */
static void on_window(uv_timer_t *t)
{
    struct loadgen *lg = t->data;
    bool switches = lg->cfg.scenario != SC_CONNECTIONS;
    if (lg->usage_samples < 2 &&
        proc_usage(lg->cfg.router_pid, &lg->usage[lg->usage_samples], switches) == 0)
        lg->usage_samples++;
    else
        lg->usage_samples = 3; /* not readable: no figures rather than wrong ones */
    if (lg->usage_samples == 1)
        uv_timer_start(t, on_window, ms_until(lg, lg->measure_end), 0);
}

static void finish(struct loadgen *lg)
{
    /* The run can be over before the window's closing sample ran (its timer is due at the same
     * moment as the end of sending): take it now, a few frames late rather than never. */
    if (lg->usage_samples == 1)
        on_window(&lg->window_timer);
    lg->done = true;
    if (lg->cfg.router_pid > 0) {
        lg->rss_kib = proc_rss_kib(lg->cfg.router_pid);
        lg->router_threads = proc_count_threads(lg->cfg.router_pid);
    }
    uv_stop(lg->loop);
}

void scenario_check_drained(struct loadgen *lg)
{
    if (lg->done || lg->failed || scenario_outstanding(lg) > 0)
        return;
    for (unsigned i = 0; i < lg->nactive; i++)
        if (!conn_idle(lg->active[i]))
            return;
    finish(lg);
}

static void on_drain_timeout(uv_timer_t *t)
{
    struct loadgen *lg = t->data;
    lg_fail(lg,
            "%llu frames never arrived within %.1f s of the last send (lost, or the router "
            "stopped answering)",
            (unsigned long long)scenario_outstanding(lg), lg->cfg.drain_s);
}

static void on_flood_start(uv_timer_t *t)
{
    struct loadgen *lg = t->data;
    lg->flooding = true;
    flood_write(lg->flooder);
}

static void on_send_end(uv_timer_t *t)
{
    struct loadgen *lg = t->data;
    lg->sending = false;
    lg->flooding = false;
    if (lg->cfg.scenario == SC_OPEN_LOOP || lg->cfg.scenario == SC_SLOW_CONSUMER) {
        uv_poll_stop(&lg->tick);
        /* Slots due before send_end that were never sent: the sender fell behind. */
        double due = (double)(lg->send_end - lg->run_start) * lg->cfg.rate / 1e9;
        uint64_t sent = 0;
        for (unsigned j = 0; j < lg->nsenders; j++)
            sent += lg->senders[j]->next_slot;
        lg->behind = due > (double)sent ? (uint64_t)ceil(due - (double)sent - 0.5) : 0;
    }
    if (lg->stalled) /* let a router stuck on it go, so the healthy frames can drain */
        conn_close(lg->stalled);
    lg->draining = true;
    lg->drain_timer.data = lg;
    uv_timer_start(&lg->drain_timer, on_drain_timeout, (uint64_t)(lg->cfg.drain_s * 1000), 0);
    scenario_check_drained(lg);
}

void scenario_start(struct loadgen *lg)
{
    const struct config *cfg = &lg->cfg;
    uint64_t now = lg_now(lg);
    lg->run_start = now;
    lg->measure_start = now + (uint64_t)(cfg->warmup_s * 1e9);
    lg->measure_end = lg->measure_start + (uint64_t)(cfg->duration_s * 1e9);
    lg->send_end = lg->measure_end;
    if (cfg->scenario == SC_SLOW_CONSUMER) {
        /* A gap between the two periods, so frames sent just before the flood are not caught
         * by it and counted in the baseline. */
        lg->flood_start = lg->measure_end + FLOOD_GAP_NS;
        lg->send_end = lg->flood_start + (uint64_t)(cfg->duration_s * 1e9);
        if (build_flood_chunk(lg) != 0) {
            lg_fail(lg, "out of memory for the flood");
            return;
        }
        lg->flood_timer.data = lg;
        uv_timer_start(&lg->flood_timer, on_flood_start, ms_until(lg, lg->flood_start), 0);
    }
    if (cfg->router_pid > 0) {
        lg->window_timer.data = lg;
        uv_timer_start(&lg->window_timer, on_window, ms_until(lg, lg->measure_start), 0);
    }
    lg->sending = true;
    lg->end_timer.data = lg;
    uv_timer_start(&lg->end_timer, on_send_end, ms_until(lg, lg->send_end), 0);
    switch (cfg->scenario) {
    case SC_PINGPONG:
    case SC_PAIRS:
    case SC_CONNECTIONS:
        for (unsigned i = 0; i < lg->nactive; i++)
            if (lg->active[i]->role == ROLE_PINGER)
                conn_send(lg->active[i], now, cfg->size);
        break;
    case SC_PIPELINE:
        for (unsigned j = 0; j < lg->nsenders; j++)
            pipeline_fill(lg->senders[j], now);
        break;
    case SC_OPEN_LOOP:
    case SC_SLOW_CONSUMER:
        lg->tick.data = lg;
        if (uv_poll_start(&lg->tick, UV_READABLE, on_tick) != 0) {
            lg_fail(lg, "uv_poll_start failed");
            return;
        }
        arm_tick(lg);
        break;
    }
}
