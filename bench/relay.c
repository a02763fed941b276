/*
 * relay.c - the floor: the least any router can do with these sockets on this machine.
 *
 * One libuv loop, no parsing, no routing. Connections are paired in accept order (the first
 * with the second, the third with the fourth...) and whatever arrives on one is written to
 * its partner. Each connection is greeted with a 4-byte ID like a router's, but the IDs have
 * no zero byte: the destination header a sender puts in front of each frame is forwarded
 * with it, and with no NUL in it the header stays inside the frame, where loadgen
 * (--target relay) checks it against the receiver's own ID and strips it. So loadgen drives
 * the relay with exactly the scenario code it uses for the routers.
 *
 * loadgen connects one connection at a time, waiting for each ID before the next connect,
 * and lays its connections out so that partners are neighbours: accept order is then pair
 * order. Bytes that arrive for a connection during one loop turn are written at the end of
 * the turn in one go, the same batching a good event-loop router does; a sender whose partner
 * has MAX_QUEUED bytes waiting is not read until they drain.
 */
#include "relay.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "frame.h"
#include "net.h"
#include "options.h"
#include "proto.h"

#define READ_BUF (64 * 1024)
#define MAX_QUEUED (1024 * 1024) /* bytes waiting for one receiver before its sender pauses */

struct bytes {
    uint8_t *data;
    size_t len, cap;
};

struct rconn {
    uv_tcp_t tcp; /* first, so a handle pointer is a connection pointer */
    struct relay *relay;
    struct rconn *peer; /* NULL until paired, and again once the partner has gone */
    uint8_t id[PROTO_ID_LEN];
    uv_write_t id_req;
    struct bytes out;  /* bytes from the partner, for this connection, not yet written */
    struct bytes sent; /* handed to uv_write, in flight until on_written */
    uv_write_t write_req;
    bool writing;
    bool paused;              /* not reading: the partner has MAX_QUEUED bytes waiting */
    struct rconn *next_dirty; /* on relay->dirty: has bytes to flush this turn */
    bool dirty;
};

struct relay {
    uv_loop_t *loop;
    uv_tcp_t server;
    uv_signal_t sigint, sigterm;
    uv_check_t flusher;
    struct rconn *waiting; /* accepted, partner not yet */
    struct rconn *dirty;
    uint64_t accepted;
    uint64_t bytes;
};

uint32_t relay_id(uint64_t k)
{
    uint32_t id = 0;
    for (int i = 0; i < 4; i++) {
        id |= (uint32_t)(k % 255 + 1) << (8 * i);
        k /= 255;
    }
    return id;
}

static void on_closed(uv_handle_t *h)
{
    struct rconn *c = (struct rconn *)h;
    free(c->out.data);
    free(c->sent.data);
    free(c);
}

/* A bare relay has nothing to say to half a pair: when one side goes, both go. libuv cancels
 * a connection's pending writes (on_written, UV_ECANCELED) before its close callback runs. */
static void close_pair(struct rconn *c)
{
    struct rconn *p = c->peer;
    if (c->relay->waiting == c)
        c->relay->waiting = NULL;
    c->peer = NULL;
    if (!uv_is_closing((uv_handle_t *)&c->tcp))
        uv_close((uv_handle_t *)&c->tcp, on_closed);
    if (p) {
        p->peer = NULL;
        if (!uv_is_closing((uv_handle_t *)&p->tcp))
            uv_close((uv_handle_t *)&p->tcp, on_closed);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    /* One buffer for all: on_read copies the bytes out before the next read. */
    static char shared[READ_BUF];
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(shared, sizeof shared);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf);

/* c's queue has room again: let its partner's bytes in. */
static void unpause_partner(struct rconn *c)
{
    struct rconn *src = c->peer;
    if (!src || !src->paused || c->out.len + c->sent.len >= MAX_QUEUED)
        return;
    src->paused = false;
    if (uv_read_start((uv_stream_t *)&src->tcp, on_alloc, on_read) != 0)
        close_pair(src);
}

static void flush(struct rconn *c);

static void on_written(uv_write_t *req, int status)
{
    struct rconn *c = req->data;
    c->writing = false;
    c->sent.len = 0;
    if (status < 0) {
        if (status != UV_ECANCELED)
            close_pair(c);
        return;
    }
    flush(c);
}

/* Write what c's partner sent this turn: try at once; what the kernel does not take goes to
 * one uv_write, and new bytes collect in out meanwhile. */
static void flush(struct rconn *c)
{
    if (c->writing || c->out.len == 0 || uv_is_closing((uv_handle_t *)&c->tcp))
        return;
    uv_buf_t b = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
    int w = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
    if (w == UV_EAGAIN)
        w = 0;
    if (w < 0) {
        close_pair(c);
        return;
    }
    if ((size_t)w < c->out.len) {
        struct bytes t = c->sent;
        c->sent = c->out;
        c->out = t;
        b = uv_buf_init((char *)c->sent.data + w, (unsigned)(c->sent.len - (size_t)w));
        c->write_req.data = c;
        if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_written) != 0) {
            close_pair(c);
            return;
        }
        c->writing = true;
    }
    c->out.len = 0;
    unpause_partner(c);
}

static void on_flush(uv_check_t *check)
{
    struct relay *r = check->data;
    while (r->dirty) {
        struct rconn *c = r->dirty;
        r->dirty = c->next_dirty;
        c->dirty = false;
        flush(c);
    }
}

/* The whole relay: append the bytes to the partner's queue, to be written at the end of this
 * loop turn with everything else that came for it; pause this side while that queue is full. */
static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct rconn *c = (struct rconn *)s;
    struct rconn *dst = c->peer;
    if (n < 0) {
        close_pair(c);
        return;
    }
    if (n == 0 || !dst)
        return;
    struct bytes *q = &dst->out;
    if (q->cap - q->len < (size_t)n) {
        size_t cap = q->cap ? q->cap : READ_BUF;
        while (cap - q->len < (size_t)n)
            cap *= 2;
        uint8_t *d = realloc(q->data, cap);
        if (!d) {
            close_pair(c);
            return;
        }
        q->data = d;
        q->cap = cap;
    }
    memcpy(q->data + q->len, buf->base, (size_t)n);
    q->len += (size_t)n;
    c->relay->bytes += (uint64_t)n;
    if (!dst->dirty) {
        dst->dirty = true;
        dst->next_dirty = c->relay->dirty;
        c->relay->dirty = dst;
    }
    if (q->len + dst->sent.len >= MAX_QUEUED) {
        c->paused = true;
        if (uv_read_stop(s) != 0)
            close_pair(c);
    }
}

static void on_id_sent(uv_write_t *req, int status)
{
    struct rconn *c = req->data;
    if (status < 0 && status != UV_ECANCELED)
        close_pair(c);
}

static void on_connection(uv_stream_t *server, int status)
{
    struct relay *r = server->data;
    if (status < 0) {
        fprintf(stderr, "relay: accept: %s\n", uv_strerror(status));
        return;
    }
    struct rconn *c = calloc(1, sizeof *c);
    if (!c) {
        fprintf(stderr, "relay: out of memory\n");
        return;
    }
    c->relay = r;
    if (uv_tcp_init(r->loop, &c->tcp) != 0) {
        free(c);
        return;
    }
    c->tcp.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->tcp) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    frame_put_u32(c->id, relay_id(r->accepted++));
    uv_buf_t idbuf = uv_buf_init((char *)c->id, sizeof c->id);
    c->id_req.data = c;
    if (uv_write(&c->id_req, (uv_stream_t *)&c->tcp, &idbuf, 1, on_id_sent) != 0) {
        uv_close((uv_handle_t *)&c->tcp, on_closed);
        return;
    }
    if (!r->waiting) {
        r->waiting = c;
        return;
    }
    struct rconn *a = r->waiting;
    r->waiting = NULL;
    a->peer = c;
    c->peer = a;
    if (uv_read_start((uv_stream_t *)&a->tcp, on_alloc, on_read) != 0 ||
        uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) != 0)
        close_pair(a);
}

/* Connections are freed by their close callback; the relay's own handles live in main. */
static void close_any(uv_handle_t *h, void *arg)
{
    struct relay *r = arg;
    if (uv_is_closing(h))
        return;
    if (h->type == UV_TCP && h != (uv_handle_t *)&r->server)
        uv_close(h, on_closed);
    else
        uv_close(h, NULL);
}

static void on_signal(uv_signal_t *sig, int signum)
{
    (void)signum;
    uv_walk(sig->loop, close_any, sig->data);
}

static void usage(FILE *to)
{
    fprintf(to, "usage: loadgen relay [--host ADDR] [--port N]\n"
                "  the relay floor: pairs connections in accept order and copies bytes\n"
                "  between partners without parsing them (default 127.0.0.1:8080)\n");
}

int relay_main(int argc, char **argv)
{
    const char *host = OPTIONS_DEFAULT_HOST;
    long port = OPTIONS_DEFAULT_PORT;
    static const struct option longopts[] = {{"host", required_argument, NULL, 'h'},
                                             {"port", required_argument, NULL, 'p'},
                                             {"help", no_argument, NULL, 'H'},
                                             {NULL, 0, NULL, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *end;
        switch (ch) {
        case 'h':
            host = optarg;
            break;
        case 'p':
            port = strtol(optarg, &end, 10);
            if (*end || port < 0 || port > 65535) {
                fprintf(stderr, "relay: bad port '%s'\n", optarg);
                return 2;
            }
            break;
        case 'H':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }

    char err[NET_ERR_LEN];
    size_t limit;
    if (net_setup_process(1 << 16, &limit, err) != 0) {
        fprintf(stderr, "relay: %s\n", err);
        return 1;
    }
    int fd = net_listen(host, (uint16_t)port, err);
    if (fd < 0) {
        fprintf(stderr, "relay: %s\n", err);
        return 1;
    }
    struct relay r = {.loop = uv_default_loop()};
    int rc;
    if ((rc = uv_tcp_init(r.loop, &r.server)) != 0 || (rc = uv_tcp_open(&r.server, fd)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&r.server, SOMAXCONN, on_connection)) != 0 ||
        (rc = uv_signal_init(r.loop, &r.sigint)) != 0 ||
        (rc = uv_signal_init(r.loop, &r.sigterm)) != 0 ||
        (rc = uv_signal_start(&r.sigint, on_signal, SIGINT)) != 0 ||
        (rc = uv_signal_start(&r.sigterm, on_signal, SIGTERM)) != 0 ||
        (rc = uv_check_init(r.loop, &r.flusher)) != 0 ||
        (rc = uv_check_start(&r.flusher, on_flush)) != 0) {
        fprintf(stderr, "relay: libuv setup: %s\n", uv_strerror(rc));
        return 1;
    }
    r.server.data = &r;
    r.sigint.data = &r;
    r.sigterm.data = &r;
    r.flusher.data = &r;
    net_announce(host, net_local_port(fd));
    uv_run(r.loop, UV_RUN_DEFAULT);
    fprintf(stderr, "relay: paired %llu connections, forwarded %llu bytes\n",
            (unsigned long long)r.accepted, (unsigned long long)r.bytes);
    return uv_loop_close(r.loop) == 0 ? 0 : 1;
}
