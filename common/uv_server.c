/* uv_server.c - see uv_server.h. */
#include "uv_server.h"

#include <signal.h>

#include "log.h"
#include "proto.h"
#include "server.h"

static void must(int rc, const char *what)
{
    if (rc != 0)
        log_fatal("%s: %s", what, uv_strerror(rc));
}

static void on_signal(uv_signal_t *sig, int signum)
{
    struct uv_server *srv = sig->data;
    log_debug("signal %d: shutting down", signum);
    srv->on_stop(srv->data);
}

static void on_stats(uv_timer_t *timer)
{
    struct uv_server *srv = timer->data;
    srv->print_stats(srv->data);
}

/* Every quarter --write-timeout: a write whose unsent bytes did not shrink since the last look
 * has made no progress; one that made none for the whole timeout has stalled. */
static void on_deadlines(uv_timer_t *timer)
{
    struct uv_server *srv = timer->data;
    uint64_t now = uv_now(srv->loop);
    for (struct list *n = srv->writing.next, *next; n != &srv->writing; n = next) {
        next = n->next; /* on_stalled may close the stream, and stop this watch */
        struct write_watch *w = list_entry(n, struct write_watch, link);
        size_t unsent = uv_stream_get_write_queue_size(w->stream);
        if (unsent != w->unsent_seen) {
            w->unsent_seen = unsent;
            w->progress_ms = now;
        } else if (now - w->progress_ms >= srv->opt->write_timeout_ms) {
            srv->on_stalled(srv->data, w);
        }
    }
}

void uv_server_start(struct uv_server *srv, int listen_fd, bool signals)
{
    list_init(&srv->writing);
    if (listen_fd >= 0) {
        must(uv_tcp_init(srv->loop, &srv->listener), "uv_tcp_init");
        must(uv_tcp_open(&srv->listener, listen_fd), "uv_tcp_open"); /* makes it non-blocking */
        srv->listener.data = srv->data;
        must(uv_listen((uv_stream_t *)&srv->listener, SOMAXCONN, srv->on_connection), "uv_listen");
        srv->listening = true;
    }
    if (signals) {
        must(uv_signal_init(srv->loop, &srv->sigint), "uv_signal_init");
        must(uv_signal_init(srv->loop, &srv->sigterm), "uv_signal_init");
        srv->sigint.data = srv->sigterm.data = srv;
        must(uv_signal_start(&srv->sigint, on_signal, SIGINT), "uv_signal_start");
        must(uv_signal_start(&srv->sigterm, on_signal, SIGTERM), "uv_signal_start");
        srv->signals = true;
        server_signals_ready(); /* a signal that came since server_start is taken now */
    }
    must(uv_timer_init(srv->loop, &srv->stats_timer), "uv_timer_init");
    must(uv_timer_init(srv->loop, &srv->deadlines), "uv_timer_init");
    srv->stats_timer.data = srv->deadlines.data = srv;
    unsigned every = srv->opt->stats_interval_ms;
    if (every > 0 && srv->print_stats)
        must(uv_timer_start(&srv->stats_timer, on_stats, every, every), "uv_timer_start");
    unsigned check = (srv->opt->write_timeout_ms + 3) / 4;
    if (check > 0 && srv->on_stalled)
        must(uv_timer_start(&srv->deadlines, on_deadlines, check, check), "uv_timer_start");
}

void uv_server_close(struct uv_server *srv)
{
    if (srv->listening)
        uv_close((uv_handle_t *)&srv->listener, NULL);
    if (srv->signals) {
        uv_close((uv_handle_t *)&srv->sigint, NULL);
        uv_close((uv_handle_t *)&srv->sigterm, NULL);
    }
    uv_close((uv_handle_t *)&srv->stats_timer, NULL);
    uv_close((uv_handle_t *)&srv->deadlines, NULL);
    srv->listening = srv->signals = false;
}

void write_watch_init(struct write_watch *w, uv_stream_t *stream)
{
    list_init(&w->link);
    w->stream = stream;
}

void write_watch_start(struct uv_server *srv, struct write_watch *w, size_t unsent)
{
    list_remove(&w->link);
    list_push(&srv->writing, &w->link);
    w->unsent_seen = unsent;
    w->progress_ms = uv_now(srv->loop);
}

void write_watch_stop(struct write_watch *w)
{
    list_remove(&w->link);
}

bool uv_server_tell_full(const struct uv_server *srv, uv_tcp_t *client)
{
    if (!srv->opt->error_frames)
        return false;
    uint8_t frame[PROTO_ERROR_FRAME_MAX];
    uv_buf_t buf = {.base = (char *)frame, .len = proto_error_frame(frame, "server full")};
    return uv_try_write((uv_stream_t *)client, &buf, 1) == (int)buf.len;
}
