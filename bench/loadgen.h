/*
 * loadgen.h - the benchmark's load generator: one process, one libuv loop, many connections.
 *
 * loadgen plays both ends of every conversation, so it knows what each receiver must get and
 * can time a frame from its (intended) send to its arrival with one clock. It is split in
 * layers, each using only those below it:
 *   lg.c         the clock and lg_fail, for all of them
 *   conn.c       connections: connect in order, read the ID, send frames, check every frame
 *                that arrives (payload.h) and count what is wrong with it; it tells the
 *                scenario what happened through lg->hooks
 *   scenarios.c  the traffic: who talks to whom, how fast, and the run's phases
 *   loadgen.c    the command line, the JSON result and the exit status; sets lg->hooks
 * It stays on one thread so that on a 2-core machine it takes one core at most and leaves the
 * other to the router under test.
 */
#ifndef LOADGEN_H
#define LOADGEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <uv.h>

#include "histogram.h"
#include "payload.h"
#include "proc_probe.h"

enum scenario {
    SC_PINGPONG,      /* one pair, one frame in flight: round-trip time */
    SC_PAIRS,         /* 16 pairs, one frame in flight each: round trips/s and RTT */
    SC_PIPELINE,      /* 8 senders to 8 receivers, a window of frames in flight each */
    SC_OPEN_LOOP,     /* 16 senders at a fixed total rate: latency against offered load */
    SC_SLOW_CONSUMER, /* 4 pairs at a fixed rate, then one receiver stalls under a flood */
    SC_CONNECTIONS,   /* many idle connections beside 4 pairs doing round trips */
};

enum role {
    ROLE_IDLE,     /* connected, expects nothing */
    ROLE_PINGER,   /* sends, waits for the echo, records the round trip */
    ROLE_ECHOER,   /* answers every frame with one carrying the original send time */
    ROLE_SENDER,   /* a one-way stream to its peer */
    ROLE_RECEIVER, /* records the one-way latency of its peer's stream */
    ROLE_FLOODER,  /* writes as fast as the router takes, to a receiver that does not read */
    ROLE_STALLED,  /* reads its ID, then never reads again */
};

#define SEQ_WINDOW 1024 /* how far back a receiver can tell a late frame from a duplicate */

struct bytes {
    uint8_t *data;
    size_t len, cap;
};

struct conn {
    uv_tcp_t tcp; /* first, so a handle pointer is a conn pointer */
    uv_connect_t connect_req;
    uv_write_t write_req;
    struct loadgen *lg;
    uint32_t index; /* place in lg->conns; the sender field of its frames */
    uint32_t id;    /* given by the router */
    enum role role;
    struct conn *peer; /* the one it sends to, or receives from */
    uint8_t id_buf[4];
    size_t id_len;
    bool closing;

    /* receiving: the peer's stream */
    struct bytes part;              /* the start of a frame whose NUL has not come yet */
    uint32_t rx_next;               /* highest seq seen + 1 */
    uint64_t rx_unique;             /* distinct frames received */
    uint64_t seen[SEQ_WINDOW / 64]; /* bit s % SEQ_WINDOW: seq s arrived (for s near rx_next) */

    /* sending */
    uint32_t tx_seq;   /* frames generated so far */
    struct bytes out;  /* generated, not yet handed to libuv */
    struct bytes wbuf; /* handed to libuv, write in flight */
    bool writing, dirty;
    unsigned stream;    /* open loop: this sender's number among the senders */
    uint64_t next_slot; /* open loop: its next scheduled frame */
};

struct config {
    enum scenario scenario;
    const char *host;
    int port;
    bool relay; /* --target relay: frames arrive with their 4-byte header */
    const char *label;
    const char *json_path;
    unsigned pairs;
    size_t size;
    unsigned window;        /* pipeline: frames in flight per sender */
    double rate;            /* open loop, slow consumer: total frames/s */
    unsigned idle;          /* connections: idle ones */
    unsigned max_in_flight; /* open loop: a sender this far ahead waits (it falls behind) */
    size_t flood_size;
    uint64_t flood_max;
    double warmup_s, duration_s, drain_s, deadline_s, connect_timeout_s;
    pid_t router_pid;
};

struct integrity {
    uint64_t misrouted;    /* arrived at a connection that was not its destination */
    uint64_t lost;         /* sent and never arrived */
    uint64_t duplicated;   /* arrived twice */
    uint64_t out_of_order; /* arrived after a later frame of the same stream */
    uint64_t corrupted;    /* failed the payload check, or had the wrong length */
    uint64_t error_frames; /* error frames from the router on a healthy connection */
};

/* What the connections tell the scenario (scenarios.c; loadgen.c wires them up), so that conn.c
 * needs nothing from scenarios.c. */
struct scenario_hooks {
    void (*start)(struct loadgen *lg); /* every connection has its ID */
    void (*on_frame)(struct conn *c, const struct payload_info *pi, uint64_t now);
    void (*on_written)(struct conn *c);
    void (*check_drained)(struct loadgen *lg);
};

struct loadgen {
    struct config cfg;
    struct scenario_hooks hooks;
    uv_loop_t *loop;
    struct sockaddr_storage addr;

    struct conn **conns; /* every connection, in connect order (partners side by side) */
    unsigned nconns;
    unsigned started, connected; /* connects begun; connections that have their ID */
    struct conn **active;        /* the ones that carry traffic */
    unsigned nactive;
    struct conn **senders; /* open loop: the scheduled streams */
    unsigned nsenders;
    struct conn *flooder, *stalled;
    struct conn **dirty; /* connections with frames to flush at the end of this loop turn */
    unsigned ndirty;

    uv_timer_t connect_timer, flood_timer, end_timer, drain_timer, deadline_timer;
    uv_timer_t window_timer; /* samples the router's /proc counters as the window opens, shuts */
    uv_check_t flusher;
    uv_idle_t nudge; /* keeps the loop from blocking while frames wait to be flushed */
    uv_poll_t tick;  /* open loop: a timerfd, for microsecond send times */
    int tick_fd;
    uint64_t tick_armed; /* time the timerfd is set for, 0 if none */
    uint64_t last_tick;  /* when it last fired */

    /* Times in ns since epoch (the loop's start). Windows are [start, end). */
    uint64_t epoch;
    uint64_t measure_start, measure_end, flood_start, send_end;
    uint64_t run_start; /* all connected */
    bool sending, flooding, draining, done, failed;
    char error[256];
    char first_error_frame[96];

    /* results */
    struct integrity bad;
    struct histogram lat;       /* round trips, or one-way latency */
    struct histogram lat_flood; /* slow consumer: healthy pairs during the flood */
    uint64_t frames_sent, frames_received;
    uint64_t window_frames, window_bytes, window_trips; /* delivered inside the window */
    uint64_t lag_max, lag_sum, lag_count; /* open loop: actual send - intended, in window */
    uint64_t behind;                      /* open loop: scheduled frames never sent */
    uint8_t *flood_chunk;                 /* the same frames, written again and again */
    size_t flood_chunk_len;
    uint64_t flood_frames, flood_bytes, flood_errors;
    bool flood_closed;           /* the router closed the flooder or the stalled receiver */
    long rss_start_kib, rss_kib; /* the router's VmRSS before connecting, and at the end */
    struct proc_usage usage[2];  /* the router's, as the measured window opened and shut */
    int usage_samples;           /* how many of them were read */
    int router_threads;          /* at the end, with everything still connected */
    double connect_s;
};

/* lg.c: loadgen-wide helpers */
uint64_t lg_now(const struct loadgen *lg); /* ns since the loop started */
void lg_fail(struct loadgen *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* conn.c */
void conn_connect_all(struct loadgen *lg);
void conn_send(struct conn *c, uint64_t time_ns, size_t size);
/* Write bytes that stay alive and unchanged until the write completes (the flood). */
int conn_write_static(struct conn *c, const uint8_t *data, size_t len);
void conn_close(struct conn *c);
void conn_on_flush(uv_check_t *check);
bool conn_idle(const struct conn *c); /* nothing generated and unwritten */

/* scenarios.c */
int scenario_layout(struct loadgen *lg); /* create the connections and their roles */
void scenario_start(struct loadgen *lg); /* all connected: go */
void scenario_on_frame(struct conn *c, const struct payload_info *pi, uint64_t now);
void scenario_on_written(struct conn *c);
void scenario_check_drained(struct loadgen *lg);
uint64_t scenario_outstanding(const struct loadgen *lg); /* healthy frames not yet delivered */

#endif
