/*
 * conn.c - loadgen's connections: connect, read the ID, send frames, check what arrives.
 *
 * Frames are appended to a connection's out buffer and flushed once per loop turn, in a check
 * callback: whatever a turn produced for one socket goes out in one write. Every frame that
 * arrives is taken apart and checked here before the scenario sees it; a frame that fails a
 * check is counted in lg->bad and goes no further. A connection the router closes, or a read
 * or write that fails, ends the run with a message (lg_fail). What happens next is the
 * scenario's: conn.c calls it only through lg->hooks, so it does not depend on scenarios.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "frame.h"
#include "loadgen.h"
#include "proto.h"

#define READ_BUF (256 * 1024)

static const char *phase(const struct loadgen *lg)
{
    if (lg->connected < lg->nconns)
        return "while connecting";
    if (lg->draining)
        return "while waiting for the last frames";
    return "during the run";
}

static int reserve(struct bytes *b, size_t more)
{
    if (b->cap - b->len >= more)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->len < more)
        cap *= 2;
    uint8_t *d = realloc(b->data, cap);
    if (!d)
        return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

/* ---- sending ---- */

bool conn_idle(const struct conn *c)
{
    return !c->writing && c->out.len == 0;
}

static void on_nudge(uv_idle_t *idle)
{
    (void)idle;
}

static void mark_dirty(struct conn *c)
{
    struct loadgen *lg = c->lg;
    if (c->dirty)
        return;
    c->dirty = true;
    lg->dirty[lg->ndirty++] = c;
    if (lg->ndirty == 1)
        uv_idle_start(&lg->nudge, on_nudge);
}

void conn_send(struct conn *c, uint64_t time_ns, size_t size)
{
    size_t need = PROTO_ID_LEN + size + 1;
    if (reserve(&c->out, need) != 0) {
        lg_fail(c->lg, "out of memory for the send buffer of connection %u", c->index);
        return;
    }
    uint8_t *p = c->out.data + c->out.len;
    frame_put_u32(p, c->peer->id);
    struct payload_info pi = {.sender = c->index, .seq = c->tx_seq++, .time_ns = time_ns};
    payload_write(p + PROTO_ID_LEN, size, &pi);
    p[PROTO_ID_LEN + size] = '\0';
    c->out.len += need;
    c->lg->frames_sent++;
    mark_dirty(c);
}

static void flush(struct conn *c);

static void on_written(uv_write_t *req, int status)
{
    struct conn *c = req->data;
    c->writing = false;
    c->wbuf.len = 0;
    if (status < 0) {
        if (c->closing || status == UV_ECANCELED)
            return;
        if (c->role == ROLE_FLOODER && !c->lg->flooding) {
            c->lg->flood_closed = true;
            return;
        }
        lg_fail(c->lg, "write to connection %u (id %u) %s: %s", c->index, c->id, phase(c->lg),
                uv_strerror(status));
        return;
    }
    c->lg->hooks.on_written(c);
    flush(c);
}

/* Hand the out buffer to libuv, unless a write is still in flight (on_written comes back). */
static void flush(struct conn *c)
{
    if (c->writing || c->out.len == 0 || c->closing)
        return;
    struct bytes t = c->wbuf;
    c->wbuf = c->out;
    c->out = t;
    uv_buf_t b = uv_buf_init((char *)c->wbuf.data, (unsigned)c->wbuf.len);
    c->write_req.data = c;
    int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (rc != 0) {
        lg_fail(c->lg, "write to connection %u: %s", c->index, uv_strerror(rc));
        return;
    }
    c->writing = true;
}

int conn_write_static(struct conn *c, const uint8_t *data, size_t len)
{
    if (c->writing || c->closing)
        return -1;
    uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
    c->write_req.data = c;
    int rc = uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &b, 1, on_written);
    if (rc != 0) {
        lg_fail(c->lg, "write to connection %u: %s", c->index, uv_strerror(rc));
        return -1;
    }
    c->writing = true;
    return 0;
}

void conn_on_flush(uv_check_t *check)
{
    struct loadgen *lg = check->data;
    for (unsigned i = 0; i < lg->ndirty; i++) {
        lg->dirty[i]->dirty = false;
        flush(lg->dirty[i]);
    }
    lg->ndirty = 0;
    uv_idle_stop(&lg->nudge);
    if (lg->draining)
        lg->hooks.check_drained(lg);
}

static void on_closed(uv_handle_t *h)
{
    (void)h;
}

void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    uv_close((uv_handle_t *)&c->tcp, on_closed);
}

/* ---- receiving ---- */

enum seq_verdict { SEQ_NEW, SEQ_LATE, SEQ_DUPLICATE };

/*
 * The receiver's view of its peer's stream. rx_next is one past the highest seq seen; the
 * bitmap remembers which of the last SEQ_WINDOW seqs arrived, so a seq below rx_next is a
 * duplicate if its bit is set and a late (out-of-order) frame if not. Seqs skipped over stay
 * missing until they arrive; whatever is still missing at the end is counted lost.
 */
static enum seq_verdict seq_accept(struct conn *c, uint32_t s)
{
    uint64_t *bits = c->seen;
    if (s >= c->rx_next) {
        if (s - c->rx_next >= SEQ_WINDOW)
            memset(c->seen, 0, sizeof c->seen);
        else
            for (uint32_t k = c->rx_next; k != s; k++)
                bits[k / 64 % (SEQ_WINDOW / 64)] &= ~(1ull << (k % 64));
        bits[s / 64 % (SEQ_WINDOW / 64)] |= 1ull << (s % 64);
        c->rx_next = s + 1;
        c->rx_unique++;
        return SEQ_NEW;
    }
    if (c->rx_next - s <= SEQ_WINDOW) {
        uint64_t bit = 1ull << (s % 64), *word = &bits[s / 64 % (SEQ_WINDOW / 64)];
        if (*word & bit)
            return SEQ_DUPLICATE;
        *word |= bit;
    }
    c->rx_unique++;
    return SEQ_LATE;
}

static bool receives(enum role r)
{
    return r == ROLE_PINGER || r == ROLE_ECHOER || r == ROLE_RECEIVER;
}

/* One frame without its NUL. */
static void on_frame(struct conn *c, const uint8_t *f, size_t len)
{
    struct loadgen *lg = c->lg;
    lg->frames_received++;
    if (lg->cfg.relay) {
        /* The relay forwards the destination header: it must be this connection's ID. */
        if (len < PROTO_ID_LEN) {
            lg->bad.corrupted++;
            return;
        }
        if (frame_get_u32(f) != c->id) {
            lg->bad.misrouted++;
            return;
        }
        f += PROTO_ID_LEN;
        len -= PROTO_ID_LEN;
    }
    if (len > 0 && f[0] == PROTO_ERROR_BYTE) {
        if (c->role == ROLE_FLOODER) {
            lg->flood_errors++; /* its receiver was closed at the end of the flood */
            return;
        }
        lg->bad.error_frames++;
        if (!lg->first_error_frame[0])
            snprintf(lg->first_error_frame, sizeof lg->first_error_frame, "%.*s",
                     (int)(len - 1 < 80 ? len - 1 : 80), (const char *)f + 1);
        return;
    }
    struct payload_info pi;
    if (payload_read(f, len, &pi) != 0 || len != lg->cfg.size) {
        lg->bad.corrupted++;
        return;
    }
    if (!receives(c->role) || pi.sender != c->peer->index) {
        lg->bad.misrouted++;
        return;
    }
    switch (seq_accept(c, pi.seq)) {
    case SEQ_DUPLICATE:
        lg->bad.duplicated++;
        return;
    case SEQ_LATE:
        lg->bad.out_of_order++;
        break;
    case SEQ_NEW:
        break;
    }
    lg->hooks.on_frame(c, &pi, lg_now(lg));
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    /* One buffer for all: libuv calls on_read right after on_alloc, and on_read consumes or
     * copies everything before it returns. */
    static char shared[READ_BUF];
    (void)h;
    (void)suggested;
    *buf = uv_buf_init(shared, sizeof shared);
}

static void on_id(struct conn *c);

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct conn *c = (struct conn *)s;
    struct loadgen *lg = c->lg;
    if (n < 0) {
        if (c->closing)
            return;
        if ((c->role == ROLE_FLOODER || c->role == ROLE_STALLED) && !lg->flooding &&
            lg->flood_start && lg_now(lg) >= lg->flood_start) {
            lg->flood_closed = true; /* the relay closes a pair when one side goes */
            conn_close(c);
            return;
        }
        if (c->id_len < sizeof c->id_buf)
            lg_fail(lg, "router closed connection %u before sending its ID (%u connections open)",
                    c->index, lg->connected);
        else if (n == UV_EOF)
            lg_fail(lg, "router closed connection %u (id %u) %s", c->index, c->id, phase(lg));
        else
            lg_fail(lg, "read from connection %u (id %u) %s: %s", c->index, c->id, phase(lg),
                    uv_strerror((int)n));
        return;
    }
    const uint8_t *p = (const uint8_t *)buf->base;
    size_t len = (size_t)n;
    if (c->id_len < sizeof c->id_buf) {
        size_t take = sizeof c->id_buf - c->id_len < len ? sizeof c->id_buf - c->id_len : len;
        memcpy(c->id_buf + c->id_len, p, take);
        c->id_len += take;
        p += take;
        len -= take;
        if (c->id_len == sizeof c->id_buf)
            on_id(c);
    }
    while (len > 0 && !lg->failed) {
        const uint8_t *nul = memchr(p, '\0', len);
        size_t flen = nul ? (size_t)(nul - p) : len;
        if (c->part.len + flen > PROTO_ID_LEN + PAYLOAD_MAX_LEN) {
            lg->bad.corrupted++;
            lg_fail(lg, "connection %u received more than %d bytes without a NUL", c->index,
                    PROTO_ID_LEN + PAYLOAD_MAX_LEN);
            return;
        }
        if (!nul || c->part.len) {
            if (reserve(&c->part, flen) != 0) {
                lg_fail(lg, "out of memory");
                return;
            }
            memcpy(c->part.data + c->part.len, p, flen);
            c->part.len += flen;
        }
        if (!nul)
            return;
        if (c->part.len) {
            on_frame(c, c->part.data, c->part.len);
            c->part.len = 0;
        } else {
            on_frame(c, p, flen);
        }
        p += flen + 1;
        len -= flen + 1;
    }
}

/* ---- connecting ---- */

/*
 * The relay pairs connections in accept order, so for it each connect waits for the previous
 * connection's ID. A router identifies connections by the IDs it hands out, in whatever order,
 * so with one loadgen opens up to CONNECT_WINDOW at once: 5,000 idle connections take a
 * fraction of the time.
 */
#define CONNECT_WINDOW 32

static void connect_more(struct loadgen *lg);

static void on_id(struct conn *c)
{
    struct loadgen *lg = c->lg;
    c->id = frame_get_u32(c->id_buf);
    if (c->role == ROLE_STALLED && uv_read_stop((uv_stream_t *)&c->tcp) != 0) {
        lg_fail(lg, "uv_read_stop failed");
        return;
    }
    lg->connected++;
    if (lg->connected == lg->nconns) {
        uv_timer_stop(&lg->connect_timer);
        lg->connect_s = (double)(lg_now(lg) - lg->run_start) / 1e9;
        lg->hooks.start(lg);
        return;
    }
    /* Progress: the timeout counts again from now. */
    uv_timer_again(&lg->connect_timer);
    connect_more(lg);
}

static void on_connected(uv_connect_t *req, int status)
{
    struct conn *c = req->data;
    struct loadgen *lg = c->lg;
    if (status < 0) {
        lg_fail(lg, "connect %s:%d (connection %u): %s%s", lg->cfg.host, lg->cfg.port, c->index,
                uv_strerror(status),
                status == UV_ECONNREFUSED ? " - is the router listening there?" : "");
        return;
    }
    int rc = uv_tcp_nodelay(&c->tcp, 1);
    if (rc == 0)
        rc = uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    if (rc != 0)
        lg_fail(lg, "connection %u: %s", c->index, uv_strerror(rc));
}

static void on_connect_timeout(uv_timer_t *t)
{
    struct loadgen *lg = t->data;
    lg_fail(lg, "no ID from the router within %.1f s (%u of %u connections have theirs)",
            lg->cfg.connect_timeout_s, lg->connected, lg->nconns);
}

static void connect_more(struct loadgen *lg)
{
    unsigned window = lg->cfg.relay ? 1 : CONNECT_WINDOW;
    while (lg->started < lg->nconns && lg->started - lg->connected < window && !lg->failed) {
        struct conn *c = lg->conns[lg->started++];
        int rc = uv_tcp_init(lg->loop, &c->tcp);
        if (rc != 0) {
            lg_fail(lg, "connection %u: %s", c->index, uv_strerror(rc));
            return;
        }
        c->tcp.data = c;
        c->connect_req.data = c;
        rc = uv_tcp_connect(&c->connect_req, &c->tcp, (const struct sockaddr *)&lg->addr,
                            on_connected);
        if (rc != 0) {
            lg_fail(lg, "connect %s:%d (connection %u): %s", lg->cfg.host, lg->cfg.port, c->index,
                    uv_strerror(rc));
            return;
        }
    }
}

void conn_connect_all(struct loadgen *lg)
{
    lg->connect_timer.data = lg;
    lg->run_start = lg_now(lg);
    uint64_t ms = (uint64_t)(lg->cfg.connect_timeout_s * 1000);
    if (uv_timer_start(&lg->connect_timer, on_connect_timeout, ms, ms) != 0) {
        lg_fail(lg, "uv_timer_start failed");
        return;
    }
    connect_more(lg);
}
