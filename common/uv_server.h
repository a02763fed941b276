/*
 * uv_server.h - what a libuv router does besides its pattern: listen, stop on SIGINT and
 * SIGTERM, print the counters every --stats-interval, watch the writes in flight for
 * --write-timeout, and turn away a client over --max-clients. One uv_server per loop; each
 * part is optional, so a router with several loops gives the listener and the signals to one.
 *
 *     struct uv_server srv = {.loop = &loop, .opt = &opt, .data = r,
 *                             .on_connection = on_connection, .on_stop = on_stop,
 *                             .print_stats = print_stats, .on_stalled = evict};
 *     uv_server_start(&srv, listen_fd, true);   // listener, signals, timers; then
 *     uv_run(&loop, UV_RUN_DEFAULT);             // on_stop calls uv_server_close(&srv)
 *
 * A write is watched from uv_write to its callback: write_watch_start, write_watch_stop. If
 * the stream's unsent bytes do not shrink for --write-timeout, on_stalled is called with the
 * watch (the router finds its connection with list_entry), checked every quarter of it.
 */
#ifndef UV_SERVER_H
#define UV_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "list.h"
#include "options.h"

/* One write in flight, watched for progress. Embed it in the connection. */
struct write_watch {
    struct list link; /* in the server's list while the write is in flight */
    uv_stream_t *stream;
    size_t unsent_seen;   /* bytes libuv still had to write at the last look */
    uint64_t progress_ms; /* when the kernel last took some of them */
};

struct uv_server {
    uv_loop_t *loop;
    const struct options *opt;
    void *data;                      /* the router's, passed to the callbacks below */
    uv_connection_cb on_connection;  /* listener->data is data */
    void (*on_stop)(void *data);     /* SIGINT or SIGTERM */
    void (*print_stats)(void *data); /* every --stats-interval */
    void (*on_stalled)(void *data, struct write_watch *w); /* no progress for --write-timeout */

    /* the server's own */
    uv_tcp_t listener;
    uv_signal_t sigint, sigterm;
    uv_timer_t stats_timer, deadlines;
    struct list writing; /* watches of writes in flight */
    bool listening, signals;
};

/* Start the parts: the listener on listen_fd if it is >= 0 (and on_connection), the signal
 * handlers if signals (then server_signals_ready), the timers the options ask for. Exits on
 * failure, like server_start. */
void uv_server_start(struct uv_server *srv, int listen_fd, bool signals);

/* Close every handle uv_server_start opened (uv_run then returns once the router's own are
 * closed too). */
void uv_server_close(struct uv_server *srv);

void write_watch_init(struct write_watch *w, uv_stream_t *stream);
/* A uv_write of unsent bytes just started. */
void write_watch_start(struct uv_server *srv, struct write_watch *w, size_t unsent);
/* Its callback ran, or the stream is closing. Harmless if not watched. */
void write_watch_stop(struct write_watch *w);

/* Tell a client over --max-clients "server full" (if error frames are on), without waiting:
 * the caller closes it at once, so that it never holds a descriptor (server_start fitted
 * --max-clients to the open-file limit). Returns true if the error frame went out. */
bool uv_server_tell_full(const struct uv_server *srv, uv_tcp_t *client);

#endif
