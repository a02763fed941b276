/*
 * sim_sansio.c - a deterministic simulator for router-sansio's core (impl-sansio/core.h).
 *
 * The core does no I/O, so this program plays everything around it: the clients, their
 * sockets, and the clock. A seeded PRNG picks each step: a client connects, queues a frame (of
 * a random size, to a live client, to itself, to one that left, to an ID nobody has, or longer
 * than allowed), hands the core a random slice of what it sent (partial frames, several frames
 * at once), stalls or resumes reading, gets room in its socket, disconnects (mid-frame too), or
 * time passes (a little, or past the write timeout). Every CORE_WRITE is taken in part, whole,
 * or not at all, as a socket would. A model follows what each client sent and received, and
 * after every step the invariants are checked:
 *
 *   order     frames from one sender to one destination arrive in order, whole, exactly once:
 *             each is the next one that sender sent to it;
 *   flow      a sender the core reads has no frame stuck on its way to a live destination that
 *             takes bytes; a sender the core stopped reading waits on a client whose socket is
 *             full (so a stalled client holds up only its own senders);
 *   bounds    a queue the core offers never exceeds --max-pending by more than one frame and
 *             two error frames; the core's memory stays under a bound set by the limits;
 *   deadlines a client is evicted as a slow consumer exactly when its socket has taken nothing
 *             for the write timeout;
 *   actions   no action names a client the core closed or never had; reading stops and resumes
 *             alternate; refusals ("server full") happen exactly at --max-clients;
 *   errors    every error frame is one the protocol allows at that moment;
 *   counters  frames forwarded, bytes forwarded match what the clients received, whole.
 * At the end every client reads everything and the run must come to rest; then no frame
 * between two clients still connected is missing, the frames dropped are counted, and each
 * sender still connected was told about each destination that lost its frames.
 *
 *   sim_sansio                      the default seeds (what make test runs)
 *   sim_sansio --seed S --steps N   one run; on failure it prints the seed and the shortest
 *                                   prefix of steps that still fails, to replay it
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../impl-sansio/core.h"
#include "frame.h"
#include "proto.h"

#define MAX_LIVE 14         /* clients connected at once, refused ones included */
#define HEADER 16           /* a data payload's header: tag, sender, dest, seq, length */
#define DEFAULT_SEEDS 80    /* make test: seeds 1..DEFAULT_SEEDS ... */
#define DEFAULT_STEPS 25000 /* ... of this many steps each: two million in all */
#define REST_ROUNDS 10000   /* the end: rounds for everything to flow before "stuck" */
#define NONE UINT32_MAX

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SANITIZED 1 /* several times slower: make asan / make tsan run fewer steps */
#else
#define SANITIZED 0
#endif

/* ---- Small tools ---- */

static uint64_t rng;

static uint64_t rnd(void) /* splitmix64 */
{
    uint64_t z = (rng += 0x9E3779B97F4A7C15u);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
    return z ^ (z >> 31);
}

static uint64_t below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

static bool chance(unsigned per_mille)
{
    return below(1000) < per_mille;
}

static void *must_realloc(void *p, size_t size)
{
    p = realloc(p, size);
    if (!p && size) {
        fprintf(stderr, "sim_sansio: out of memory\n");
        exit(2);
    }
    return p;
}

/* A tiny map: key -> count, searched linearly (a client has few partners). */
struct map {
    struct entry {
        uint32_t key;
        uint64_t value;
    } * e;
    size_t n, cap;
};

static uint64_t *map_at(struct map *m, uint32_t key)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->e[i].key == key)
            return &m->e[i].value;
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 8;
        m->e = must_realloc(m->e, m->cap * sizeof *m->e);
    }
    m->e[m->n] = (struct entry){.key = key};
    return &m->e[m->n++].value;
}

static uint64_t map_get(const struct map *m, uint32_t key)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->e[i].key == key)
            return m->e[i].value;
    return 0;
}

static void map_free(struct map *m)
{
    free(m->e);
    *m = (struct map){0};
}

/* ---- The model ---- */

enum client_state { LIVE, REFUSED, CLOSED };

/* A frame a client has queued in its socket but not yet handed wholly to the core. */
struct pending_frame {
    uint32_t dest_inc; /* the destination's incarnation, or NONE: an ID nobody has */
    uint32_t dest_id;
    size_t end;    /* its end in the client's outgoing stream */
    bool too_long; /* no NUL within --max-message */
};

/* One connection, from connect to close; clients[] keeps them all, by incarnation. */
struct client {
    uint32_t inc, id; /* id 0: refused */
    int key;
    enum client_state state;
    enum core_close_reason reason; /* CLOSED: why the core said */
    bool reading;                  /* as the core's actions said */
    bool full;                     /* its socket took less than offered: waits for room */
    bool backlog;                  /* bytes are queued for it: the last write was short */
    bool full_before;              /* full when the current event began */
    bool stalled;                  /* the client reads nothing: its socket takes nothing */
    bool doomed;                   /* it sent a frame too long: the core sends it away */
    bool closed_by_peer;           /* the simulator reported it closed */
    int64_t progress;              /* its socket last took a byte, or its queue filled */

    uint8_t *out; /* what it sent; [sent, len) the core has not read yet */
    size_t out_len, out_cap, sent;
    struct pending_frame *pend;
    size_t pend_head, pend_len, pend_cap;

    uint8_t *in; /* the frame it is receiving */
    size_t in_len, in_cap, received;

    struct map made;     /* dest inc -> data frames made for it (the next sequence number) */
    struct map sent_to;  /* dest inc -> data frames handed wholly to the core */
    struct map got_from; /* sender inc -> data frames received whole */
    struct map told;     /* dest ID -> error frames naming it */
    struct map excused;  /* dest ID -> a notice about it may have been withheld (queue full) */
    struct map bogus;    /* ID nobody has -> frames sent to it */
    bool told_too_long, told_full;
};

struct sim {
    uint64_t seed;
    long step, steps;
    struct core_config cfg;
    struct core *core;
    int64_t now;
    struct client *clients;
    size_t nclients, clients_cap;
    int by_key[MAX_LIVE]; /* key -> incarnation, or -1 */
    uint32_t live_ids;    /* clients with an ID the core has not closed */
    uint32_t last_id, bogus_ids[4];
    size_t queue_bound, memory_bound;
    size_t departures; /* clients closed during the current event */
    bool batching;     /* a poll turn: several reads, then the actions (see turn) */
    uint64_t frames_received, bytes_received, errors_received;
    uint64_t stops, short_writes, refused, sent_away; /* coverage, for the summary line */
    jmp_buf fail_jump;
    char failure[512];
};

static const char *program; /* argv[0], for the replay line of a build with a planted bug */
static long failed_at;      /* the step of the last failure (steps + 1: while coming to rest) */

static void fail(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fail(struct sim *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = s->step <= s->steps
                ? snprintf(s->failure, sizeof s->failure, "step %ld: ", s->step)
                : snprintf(s->failure, sizeof s->failure, "at rest after step %ld: ", s->steps);
    vsnprintf(s->failure + n, sizeof s->failure - (size_t)n, fmt, ap);
    va_end(ap);
    failed_at = s->step;
    longjmp(s->fail_jump, 1);
}

static struct client *by_key(struct sim *s, int key)
{
    if (key < 0 || key >= MAX_LIVE || s->by_key[key] < 0)
        return NULL;
    return &s->clients[s->by_key[key]];
}

/* The incarnation that was given id, or NULL. */
static struct client *by_id(struct sim *s, uint32_t id)
{
    for (size_t i = s->nclients; i-- > 0;)
        if (s->clients[i].id == id)
            return &s->clients[i];
    return NULL;
}

static bool bogus(const struct sim *s, uint32_t id)
{
    for (int i = 0; i < 4; i++)
        if (s->bogus_ids[i] == id)
            return true;
    return false;
}

/* A live client that routes normally: connected, not sent away. */
static bool routable(const struct client *c)
{
    return c->state == LIVE && c->id != 0 && !c->doomed;
}

static void client_free(struct client *c)
{
    free(c->out);
    free(c->pend);
    free(c->in);
    map_free(&c->made);
    map_free(&c->sent_to);
    map_free(&c->got_from);
    map_free(&c->told);
    map_free(&c->excused);
    map_free(&c->bogus);
}

/* ---- Receiving: what the core wrote, byte by byte as the client reads it ---- */

static const char digits[65] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_";

static void put_num(uint8_t *p, uint64_t v, int width)
{
    for (int i = width - 1; i >= 0; i--, v >>= 6)
        p[i] = (uint8_t)digits[v & 63];
}

static bool get_num(const uint8_t *p, int width, uint64_t *v)
{
    *v = 0;
    for (int i = 0; i < width; i++) {
        const char *d = memchr(digits, p[i], 64);
        if (!d || p[i] == 0)
            return false;
        *v = *v << 6 | (uint64_t)(d - digits);
    }
    return true;
}

/* The filler byte at position i of a payload: never NUL, and it depends on the frame. */
static uint8_t filler(uint64_t sender, uint64_t seq, size_t i)
{
    return (uint8_t)('a' + (sender * 7 + seq * 13 + i) % 26);
}

static void on_error_frame(struct sim *s, struct client *c, const char *reason)
{
    s->errors_received++;
    unsigned long id;
    if (strcmp(reason, "message too long") == 0) {
        if (!c->doomed)
            fail(s, "client %u (ID %u) was told \"message too long\" but sent no such frame",
                 c->inc, c->id);
        c->told_too_long = true;
        return;
    }
    if (strcmp(reason, "server full") == 0) {
        if (c->id != 0)
            fail(s, "client %u (ID %u) was told \"server full\" after getting an ID", c->inc,
                 c->id);
        c->told_full = true;
        return;
    }
    int at = 0;
    bool unknown = sscanf(reason, "unknown destination %lu%n", &id, &at) == 1 && !reason[at];
    bool gone = false, slow = false;
    if (!unknown && sscanf(reason, "destination %lu%n", &id, &at) == 1) {
        gone = strcmp(reason + at, " disconnected, frames dropped") == 0;
        slow = strcmp(reason + at, " too slow, frames dropped") == 0;
    }
    if (!unknown && !gone && !slow)
        fail(s, "client %u got an error frame the protocol does not have: \"%s\"", c->inc, reason);
    (*map_at(&c->told, (uint32_t)id))++;
    if (bogus(s, (uint32_t)id)) {
        if (!unknown)
            fail(s, "client %u was told \"%s\" about an ID nobody has", c->inc, reason);
        return;
    }
    struct client *d = by_id(s, (uint32_t)id);
    if (!d)
        fail(s, "client %u was told \"%s\": it never sent to that ID", c->inc, reason);
    if (routable(d))
        fail(s, "client %u was told \"%s\" while client %u (ID %u) is connected", c->inc, reason,
             d->inc, d->id);
    if (!unknown && d->state != CLOSED)
        fail(s, "client %u was told \"%s\" before the core closed it", c->inc, reason);
    if (slow && d->reason != CORE_CLOSE_SLOW)
        fail(s, "client %u was told \"%s\" but that client was not evicted as slow", c->inc,
             reason);
    if (gone && d->state == CLOSED && d->reason == CORE_CLOSE_SLOW)
        fail(s, "client %u was told \"%s\" about a client evicted as slow", c->inc, reason);
}

/* A data frame: the next one its sender sent to c, whole. */
static void on_data_frame(struct sim *s, struct client *c, const uint8_t *p, size_t len)
{
    uint64_t sender, dest, seq, plen;
    if (len < HEADER || p[0] != 'D' || !get_num(p + 1, 4, &sender) || !get_num(p + 5, 4, &dest) ||
        !get_num(p + 9, 5, &seq) || !get_num(p + 14, 2, &plen))
        fail(s, "client %u received a damaged frame (%zu bytes)", c->inc, len);
    if (plen != len || dest != c->inc || sender >= s->nclients)
        fail(s,
             "client %u received a frame of %zu bytes that says it is %" PRIu64
             " bytes from client %" PRIu64 " for client %" PRIu64,
             c->inc, len, plen, sender, dest);
    for (size_t i = HEADER; i < len; i++)
        if (p[i] != filler(sender, seq, i))
            fail(s,
                 "client %u received frame %" PRIu64 " of client %" PRIu64 " with byte %zu damaged",
                 c->inc, seq, sender, i);
    uint64_t *got = map_at(&c->got_from, (uint32_t)sender);
    if (seq != *got)
        fail(s,
             "order: client %u received frame %" PRIu64 " of client %" PRIu64 " when frame %" PRIu64
             " was next (%s)",
             c->inc, seq, sender, *got, seq < *got ? "a duplicate" : "frames skipped");
    if (seq >= map_get(&s->clients[sender].sent_to, c->inc))
        fail(s, "client %u received frame %" PRIu64 " of client %" PRIu64 " before it was sent",
             c->inc, seq, sender);
    (*got)++;
    s->frames_received++;
    s->bytes_received += len + 1;
}

static void receive(struct sim *s, struct client *c, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++, c->received++) {
        if (c->received < PROTO_ID_LEN && c->id != 0) { /* its ID comes first */
            uint8_t want[PROTO_ID_LEN];
            frame_put_u32(want, c->id);
            if (p[i] != want[c->received])
                fail(s, "client %u's first bytes are not its ID %u", c->inc, c->id);
            continue;
        }
        if (c->in_len == c->in_cap) {
            c->in_cap = c->in_cap ? 2 * c->in_cap : 256;
            c->in = must_realloc(c->in, c->in_cap);
        }
        c->in[c->in_len++] = p[i];
        if (p[i] != 0)
            continue;
        if (c->in[0] == PROTO_ERROR_BYTE)
            on_error_frame(s, c, (const char *)c->in + 1);
        else
            on_data_frame(s, c, c->in, c->in_len - 1);
        c->in_len = 0;
    }
}

/* ---- Actions: the core's answers, done as a socket would ---- */

static void check_counters(struct sim *s);

static void on_close(struct sim *s, struct client *c, enum core_close_reason reason)
{
    switch (reason) {
    case CORE_CLOSE_PEER:
        if (!c->closed_by_peer)
            fail(s, "the core closed client %u as gone, but it is not", c->inc);
        break;
    case CORE_CLOSE_FULL:
        if (c->id != 0)
            fail(s, "the core turned away client %u after giving it ID %u", c->inc, c->id);
        break;
    case CORE_CLOSE_TOO_LONG:
        if (!c->doomed)
            fail(s, "the core sent client %u away for a frame too long it did not send", c->inc);
        if (s->cfg.error_frames && !c->told_too_long)
            fail(s, "the core closed client %u before it read \"message too long\"", c->inc);
        break;
    case CORE_CLOSE_SLOW:
        if (s->cfg.write_timeout_ms == 0 || !c->full ||
            s->now - c->progress < s->cfg.write_timeout_ms)
            fail(s,
                 "the core evicted client %u as slow after %" PRId64 " ms without progress "
                 "(socket %s, timeout %u ms)",
                 c->inc, s->now - c->progress, c->full ? "full" : "taking bytes",
                 s->cfg.write_timeout_ms);
        break;
    case CORE_CLOSE_NO_MEMORY:
        fail(s, "the core ran out of memory for client %u", c->inc);
    }
    s->refused += reason == CORE_CLOSE_FULL;
    s->sent_away += reason == CORE_CLOSE_TOO_LONG;
    if (c->id != 0)
        s->live_ids--;
    c->state = CLOSED;
    c->reason = reason;
    s->by_key[c->key] = -1;
    s->departures++;
    free(c->out);
    free(c->pend);
    c->out = NULL;
    c->pend = NULL;
    c->out_len = c->out_cap = c->sent = c->pend_head = c->pend_len = c->pend_cap = 0;
    /* Each sender still connected is due a notice about c if it lost frames to it - unless its
     * own queue was full when c left: the core then withholds it (as the reactor does). */
    if (c->id == 0)
        return;
    for (size_t i = 0; i < s->nclients; i++) {
        struct client *o = &s->clients[i];
        if (o->state == LIVE && (o->full || o->full_before ||
                                 s->departures * PROTO_ERROR_FRAME_MAX >= s->cfg.max_pending))
            *map_at(&o->excused, c->id) = 1;
    }
}

static void drain(struct sim *s)
{
    struct core_action a;
    while (core_next_action(s->core, &a)) {
        struct client *c = by_key(s, a.key);
        if (!c)
            fail(s, "an action names key %d, which has no client", a.key);
        if (a.id != c->id)
            fail(s, "an action names ID %u for client %u, whose ID is %u", a.id, c->inc, c->id);
        switch (a.kind) {
        case CORE_WRITE: {
            if (a.len == 0 || c->full)
                fail(s, "client %u: a write of %zu bytes while its socket is %s", c->inc, a.len,
                     c->full ? "full" : "free");
            if (a.len > s->queue_bound)
                fail(s, "bounds: client %u has %zu bytes queued, over the bound of %zu", c->inc,
                     a.len, s->queue_bound);
            if (c->id == 0 && (a.len != 13 || memcmp(a.bytes, "\xffserver full", 13) != 0))
                fail(s, "a client turned away was written something other than \"server full\"");
            size_t took;
            if (c->stalled)
                took = 0;
            else if (chance(450))
                took = a.len;
            else
                took = below(a.len + 1);
            /* the queue just filled (it was empty), or the socket took some: progress */
            if (took > 0 || !c->backlog)
                c->progress = s->now;
            c->backlog = took < a.len;
            receive(s, c, a.bytes, took);
            if (took < a.len) {
                c->full = true;
                s->short_writes++;
            }
            core_written(s->core, a.key, took, s->now);
            break;
        }
        case CORE_STOP_READING:
        case CORE_START_READING: {
            bool on = a.kind == CORE_START_READING;
            if (c->reading == on || c->id == 0)
                fail(s, "client %u: told to %s reading, which it already %s", c->inc,
                     on ? "start" : "stop", on ? "does" : "did");
            c->reading = on;
            s->stops += !on;
            break;
        }
        case CORE_CLOSE:
            on_close(s, c, a.reason);
            break;
        }
    }
}

static void begin_event(struct sim *s)
{
    for (size_t i = 0; i < s->nclients; i++)
        s->clients[i].full_before = s->clients[i].full;
    s->departures = 0;
}

/* Every event goes through here: the core takes it, then its actions are done - or, in a
 * batch, once the batch ends. */
#define EVENT(s, call)                                                                             \
    do {                                                                                           \
        if (!(s)->batching)                                                                        \
            begin_event(s);                                                                        \
        call;                                                                                      \
        if (!(s)->batching)                                                                        \
            drain(s);                                                                              \
    } while (0)

/* ---- The clients' moves ---- */

static struct client *pick(struct sim *s, bool (*ok)(const struct client *))
{
    struct client *seen[MAX_LIVE];
    int n = 0;
    for (int k = 0; k < MAX_LIVE; k++) {
        struct client *c = by_key(s, k);
        if (c && (!ok || ok(c)))
            seen[n++] = c;
    }
    return n ? seen[below((uint64_t)n)] : NULL;
}

static void join(struct sim *s)
{
    int free_keys[MAX_LIVE], n = 0;
    for (int k = 0; k < MAX_LIVE; k++)
        if (s->by_key[k] < 0)
            free_keys[n++] = k;
    if (n == 0)
        return;
    if (s->nclients == s->clients_cap) {
        s->clients_cap = s->clients_cap ? 2 * s->clients_cap : 64;
        s->clients = must_realloc(s->clients, s->clients_cap * sizeof *s->clients);
    }
    struct client *c = &s->clients[s->nclients];
    *c = (struct client){.inc = (uint32_t)s->nclients, .key = free_keys[below((uint64_t)n)]};
    s->nclients++;
    s->by_key[c->key] = (int)c->inc;
    bool room = s->live_ids < s->cfg.max_clients;
    EVENT(s, c->id = core_connected(s->core, c->key, s->now));
    c = &s->clients[s->nclients - 1];
    if (room != (c->id != 0))
        fail(s, "client %u was %s with %u of %zu clients connected", c->inc,
             c->id ? "given an ID" : "turned away", s->live_ids, s->cfg.max_clients);
    if (c->id == 0) {
        if (c->state != CLOSED)
            fail(s, "client %u was turned away but not closed at once", c->inc);
        return;
    }
    if (s->cfg.ids.mode == IDS_SEQUENTIAL && c->id != s->last_id + 1)
        fail(s, "client %u got ID %u after ID %u", c->inc, c->id, s->last_id);
    if (c->id == 0 || bogus(s, c->id) || (by_id(s, c->id) != c))
        fail(s, "client %u got ID %u, which is not new", c->inc, c->id);
    s->last_id = c->id;
    s->live_ids++;
    c->state = LIVE;
    c->reading = true;
}

static void append_out(struct client *c, const uint8_t *p, size_t n)
{
    if (c->out_len + n > c->out_cap) {
        while (c->out_len + n > c->out_cap)
            c->out_cap = c->out_cap ? 2 * c->out_cap : 1024;
        c->out = must_realloc(c->out, c->out_cap);
    }
    memcpy(c->out + c->out_len, p, n);
    c->out_len += n;
}

static void add_pending(struct client *c, struct pending_frame f)
{
    if (c->pend_len == c->pend_cap) {
        if (c->pend_head > 0) {
            memmove(c->pend, c->pend + c->pend_head, (c->pend_len - c->pend_head) * sizeof f);
            c->pend_len -= c->pend_head;
            c->pend_head = 0;
        }
        if (c->pend_len == c->pend_cap) {
            c->pend_cap = c->pend_cap ? 2 * c->pend_cap : 16;
            c->pend = must_realloc(c->pend, c->pend_cap * sizeof f);
        }
    }
    c->pend[c->pend_len++] = f;
}

static bool can_send(const struct client *c)
{
    return routable(c);
}

/* c queues one frame in its socket (the core reads it with deliver). */
static void make_frame(struct sim *s, struct client *c, struct client *d, bool too_long)
{
    uint8_t buf[PROTO_ID_LEN + 4096 + 64];
    struct pending_frame f = {.dest_inc = NONE};
    size_t plen;
    if (too_long) {
        f.dest_id = d ? d->id : s->bogus_ids[0];
        f.too_long = true;
        plen = s->cfg.max_message + 1 + below(40);
        memset(buf + PROTO_ID_LEN, 'x', plen);
        c->doomed = true;
    } else if (!d) { /* an ID nobody has: any payload, even empty */
        f.dest_id = s->bogus_ids[below(4)];
        plen = below(s->cfg.max_message + 1);
        memset(buf + PROTO_ID_LEN, 'b', plen);
        (*map_at(&c->bogus, f.dest_id))++;
    } else {
        f.dest_id = d->id;
        f.dest_inc = d->inc;
        plen = HEADER + below(s->cfg.max_message - HEADER + 1);
        if (chance(100))
            plen = s->cfg.max_message; /* the longest legal frame */
        uint64_t seq = (*map_at(&c->made, d->inc))++;
        uint8_t *p = buf + PROTO_ID_LEN;
        p[0] = 'D';
        put_num(p + 1, c->inc, 4);
        put_num(p + 5, d->inc, 4);
        put_num(p + 9, seq, 5);
        put_num(p + 14, plen, 2);
        for (size_t i = HEADER; i < plen; i++)
            p[i] = filler(c->inc, seq, i);
    }
    frame_put_u32(buf, f.dest_id);
    size_t n = PROTO_ID_LEN + plen;
    if (!too_long)
        buf[n++] = 0;
    append_out(c, buf, n);
    f.end = c->out_len;
    add_pending(c, f);
}

static struct client *pick_dest(struct sim *s, struct client *c)
{
    unsigned roll = (unsigned)below(100);
    if (roll < 5)
        return c;                       /* to itself */
    if (roll < 12 && s->nclients > 0) { /* to anyone ever: often one that left */
        struct client *d = &s->clients[below(s->nclients)];
        if (d->id != 0)
            return d;
    }
    return pick(s, can_send);
}

/* The core reads a random slice of what c sent. */
static void deliver(struct sim *s, struct client *c)
{
    size_t left = c->out_len - c->sent;
    size_t frame = PROTO_ID_LEN + s->cfg.max_message + 1;
    size_t n;
    unsigned roll = (unsigned)below(10);
    if (roll < 2)
        n = 1 + below(8); /* a few bytes: a frame split anywhere, even inside its ID */
    else if (roll < 5)
        n = 1 + below(frame);
    else
        n = 1 + below(8 * frame); /* several frames at once */
    if (n > left)
        n = left;
    if (n == 0)
        return;
    size_t from = c->sent;
    c->sent += n;
    /* the frames now wholly handed over */
    while (c->pend_head < c->pend_len && c->pend[c->pend_head].end <= c->sent) {
        struct pending_frame f = c->pend[c->pend_head++];
        if (f.dest_inc != NONE)
            (*map_at(&c->sent_to, f.dest_inc))++;
    }
    uint8_t *copy = must_realloc(NULL, n); /* the core must not rely on the caller's buffer */
    memcpy(copy, c->out + from, n);
    int key = c->key;
    EVENT(s, core_received(s->core, key, copy, n, s->now));
    memset(copy, 0xEE, n);
    free(copy);
    c = NULL; /* drain may have closed it */
}

static void disconnect(struct sim *s, struct client *c)
{
    c->closed_by_peer = true;
    int key = c->key;
    EVENT(s, core_closed(s->core, key, s->now));
    if (c->state != CLOSED)
        fail(s, "client %u disconnected, but the core did not close it", c->inc);
}

static bool has_output(const struct client *c)
{
    return c->state == LIVE && c->reading && c->sent < c->out_len;
}

static bool is_full(const struct client *c)
{
    return c->state == LIVE && c->full && !c->stalled;
}

static void writable(struct sim *s, struct client *c)
{
    c->full = false;
    int key = c->key;
    EVENT(s, core_writable(s->core, key, s->now));
}

static void tick(struct sim *s)
{
    EVENT(s, (void)core_tick(s->core, s->now));
}

/* ---- Invariants after every step ---- */

static void check_counters(struct sim *s)
{
    const struct stats *st = core_stats(s->core);
    if (st->frames_forwarded != s->frames_received || st->bytes_forwarded != s->bytes_received)
        fail(s,
             "counters: the core forwarded %" PRIu64 " frames (%" PRIu64
             " bytes); the clients received %" PRIu64 " (%" PRIu64 " bytes) whole",
             st->frames_forwarded, st->bytes_forwarded, s->frames_received, s->bytes_received);
}

static void check(struct sim *s)
{
    check_counters(s);
    size_t mem = core_memory(s->core);
    if (mem > s->memory_bound)
        fail(s, "bounds: the core holds %zu bytes, over the bound of %zu", mem, s->memory_bound);
    for (int k = 0; k < MAX_LIVE; k++) {
        struct client *c = by_key(s, k);
        if (!c)
            continue;
        if (c->state != LIVE)
            fail(s, "client %u is still in the core's hands after being %s", c->inc,
                 c->id ? "closed" : "turned away");
        if (c->full && s->cfg.write_timeout_ms > 0 &&
            s->now - c->progress >= s->cfg.write_timeout_ms)
            fail(s,
                 "deadlines: client %u's socket took nothing for %" PRId64
                 " ms (timeout %u ms) and it is still connected",
                 c->inc, s->now - c->progress, s->cfg.write_timeout_ms);
        if (!routable(c))
            continue;
        if (c->reading) {
            /* flow: every frame it handed over to a destination that takes bytes is there */
            for (int j = 0; j < MAX_LIVE; j++) {
                struct client *d = by_key(s, j);
                if (!d || !routable(d) || d->full)
                    continue;
                uint64_t sent = map_get(&c->sent_to, d->inc);
                uint64_t got = map_get(&d->got_from, c->inc);
                if (sent != got)
                    fail(s,
                         "flow: client %u handed over %" PRIu64 " frames for client %u, "
                         "which takes bytes, and %" PRIu64 " arrived",
                         c->inc, sent, d->inc, got);
            }
            continue;
        }
        /* flow: a sender not read waits on a client whose socket is full: itself (room for an
         * error frame) or one it has frames on the way to */
        bool excused = c->full;
        for (int j = 0; j < MAX_LIVE && !excused; j++) {
            struct client *d = by_key(s, j);
            excused = d && d->state == LIVE && d->full &&
                      map_get(&c->sent_to, d->inc) > map_get(&d->got_from, c->inc);
        }
        if (!excused)
            fail(s,
                 "flow: the core stopped reading client %u, but no client it sends to is "
                 "full: it is held up for nothing",
                 c->inc);
    }
}

/* ---- A run ---- */

static void configure(struct sim *s)
{
    static const size_t messages[] = {HEADER, 40, 100, 300, 1000, 4000};
    static const size_t pendings[] = {256, 600, 2000, 5000, 20000};
    static const unsigned timeouts[] = {0, 30, 100, 400, 2000};
    s->cfg.max_message = messages[below(6)];
    s->cfg.max_pending = pendings[below(5)];
    s->cfg.max_clients = 2 + below(MAX_LIVE - 3);
    s->cfg.write_timeout_ms = timeouts[below(5)];
    s->cfg.error_frames = !chance(100);
    s->cfg.work_us = chance(300) ? 1 : 0; /* uncalibrated: counted, but no time spent */
    /* IDs are drawn by the allocator: keyed by the seed in random mode, so still reproducible */
    ids_init(&s->cfg.ids, IDS_SEQUENTIAL);
    if (chance(300)) {
        s->cfg.ids.mode = IDS_RANDOM;
        for (int i = 0; i < 4; i++)
            s->cfg.ids.keys[i] = (uint32_t)rnd();
    }
    /* IDs nobody will ever have: the allocator's, far past any this run hands out */
    struct id_allocator far = s->cfg.ids;
    far.counter = 0xF0000000u;
    for (int i = 0; i < 4; i++)
        if (!ids_next(&far, &s->bogus_ids[i]))
            abort();
    size_t frame = s->cfg.max_message + 1;
    size_t bigger = frame > s->cfg.max_pending ? frame : s->cfg.max_pending;
    s->queue_bound = bigger + 2 * PROTO_ERROR_FRAME_MAX;
    size_t per_client = 512 + 16 * s->queue_bound + 4 * (5 * (PROTO_ID_LEN + frame) + 1024);
    s->memory_bound = 64 * 1024 + MAX_LIVE * per_client;
}

/* A poll turn, as router.c does it: several clients are read, and only then are the actions
 * taken. So a client may be read after the core stopped reading it, or closed it, before the
 * simulator learnt it: the core must keep those bytes, or ignore them. Only reads are batched:
 * a departure in a batch could see queues filled earlier in it, which the notice check does
 * not model. */
static void turn(struct sim *s)
{
    begin_event(s);
    s->batching = true;
    for (int i = 0, n = 2 + (int)below(4); i < n; i++) {
        struct client *c = pick(s, has_output);
        if (c)
            deliver(s, c);
    }
    s->batching = false;
    drain(s);
}

static bool is_stalled(const struct client *c)
{
    return c->stalled;
}

static bool takes_bytes(const struct client *c)
{
    return !c->stalled;
}

/* One step: a move picked at random, then time's effects, then every invariant. */
static void one_step(struct sim *s)
{
    unsigned roll = (unsigned)below(1000), live = 0;
    for (int k = 0; k < MAX_LIVE; k++)
        live += by_key(s, k) != NULL;
    struct client *c;
    if (roll < 40) {
        if (live < 3 || chance(1000 * (MAX_LIVE - live) / MAX_LIVE))
            join(s);
    } else if (roll < 50) {
        if ((c = pick(s, NULL)) != NULL)
            disconnect(s, c);
    } else if (roll < 350) {
        if ((c = pick(s, can_send)) != NULL) {
            struct client *d = chance(40) ? NULL : pick_dest(s, c);
            make_frame(s, c, d, false);
        }
    } else if (roll < 375) { /* a flood to one destination */
        if ((c = pick(s, can_send)) != NULL) {
            struct client *d = pick_dest(s, c);
            for (int i = 0, n = 5 + (int)below(60); i < n; i++)
                make_frame(s, c, d, false);
        }
    } else if (roll < 379) {
        if ((c = pick(s, can_send)) != NULL)
            make_frame(s, c, pick_dest(s, c), true);
    } else if (roll < 600) {
        if ((c = pick(s, has_output)) != NULL)
            deliver(s, c);
    } else if (roll < 700) {
        turn(s);
    } else if (roll < 870) {
        if ((c = pick(s, is_full)) != NULL)
            writable(s, c);
    } else if (roll < 880) {
        if ((c = pick(s, takes_bytes)) != NULL)
            c->stalled = true;
    } else if (roll < 900) {
        if ((c = pick(s, is_stalled)) != NULL)
            c->stalled = false;
    } else if (roll < 997) {
        s->now += (int64_t)below(20);
    } else {
        s->now += (int64_t)(s->cfg.write_timeout_ms + below(s->cfg.write_timeout_ms + 100));
    }
    tick(s);
    check(s);
}

/* The end: every client reads everything and time moves slowly, until nothing moves. */
static void come_to_rest(struct sim *s)
{
    for (size_t i = 0; i < s->nclients; i++)
        s->clients[i].stalled = false;
    for (int round = 0;; round++) {
        struct client *c = pick(s, has_output);
        if (!c)
            c = pick(s, is_full);
        if (!c)
            break;
        if (round == REST_ROUNDS)
            fail(s, "stuck: %d rounds after every client started reading, client %u still %s",
                 REST_ROUNDS, c->inc, c->full ? "has bytes queued" : "has bytes to send");
        if (c->full)
            writable(s, c);
        else
            deliver(s, c);
        s->now += 1;
        tick(s);
        check(s);
    }
    check(s); /* at rest: nobody full, so nobody may wait */
    const struct stats *st = core_stats(s->core);
    uint64_t lost_live = 0, lost_all = 0;
    for (size_t i = 0; i < s->nclients; i++) {
        struct client *c = &s->clients[i];
        for (size_t e = 0; e < c->sent_to.n; e++) {
            struct client *d = &s->clients[c->sent_to.e[e].key];
            uint64_t sent = c->sent_to.e[e].value, got = map_get(&d->got_from, c->inc);
            lost_all += sent - got;
            if (!routable(c) || sent == got)
                continue;
            lost_live += sent - got;
            if (routable(d))
                fail(s,
                     "lost: %" PRIu64 " of client %u's %" PRIu64 " frames for client %u "
                     "never arrived, and both are still connected",
                     sent - got, c->inc, sent, d->inc);
            if (s->cfg.error_frames && map_get(&c->told, d->id) == 0 &&
                !map_get(&c->excused, d->id))
                fail(s,
                     "told: client %u lost %" PRIu64 " frames to client %u (ID %u), "
                     "and was never told",
                     c->inc, sent - got, d->inc, d->id);
        }
        for (size_t e = 0; e < c->bogus.n; e++) {
            lost_all += c->bogus.e[e].value;
            if (!routable(c))
                continue;
            lost_live += c->bogus.e[e].value;
            uint64_t told = map_get(&c->told, c->bogus.e[e].key);
            if (s->cfg.error_frames && told != c->bogus.e[e].value)
                fail(s,
                     "told: client %u sent %" PRIu64 " frames to ID %u, which nobody has, "
                     "and was told %" PRIu64 " times",
                     c->inc, c->bogus.e[e].value, c->bogus.e[e].key, told);
        }
    }
    if (st->frames_dropped < lost_live || st->frames_dropped > lost_all)
        fail(s,
             "counters: the core dropped %" PRIu64 " frames; the clients still connected lost "
             "%" PRIu64 ", all of them %" PRIu64,
             st->frames_dropped, lost_live, lost_all);
    if (st->error_frames < s->errors_received)
        fail(s, "counters: %" PRIu64 " error frames counted, %" PRIu64 " received",
             st->error_frames, s->errors_received);
    if (st->clients_served != (uint64_t)s->last_id && s->cfg.ids.mode == IDS_SEQUENTIAL)
        fail(s, "counters: %" PRIu64 " clients served, %u IDs handed out", st->clients_served,
             s->last_id);
    /* shutdown: every client closes, and nothing is left */
    for (int k = 0; k < MAX_LIVE; k++)
        if (by_key(s, k))
            by_key(s, k)->closed_by_peer = true;
    EVENT(s, core_stop(s->core));
    for (int k = 0; k < MAX_LIVE; k++)
        if (by_key(s, k))
            fail(s, "core_stop left client %u open", by_key(s, k)->inc);
    /* every frame routed was worked on once, and ended forwarded or dropped */
    uint64_t ended = st->frames_forwarded + st->frames_dropped;
    if (s->cfg.work_us > 0 ? st->frames_worked != ended : st->frames_worked != 0)
        fail(s, "counters: %" PRIu64 " frames worked on, %" PRIu64 " forwarded or dropped",
             st->frames_worked, ended);
}

static void sim_free(struct sim *s)
{
    core_free(s->core);
    for (size_t i = 0; i < s->nclients; i++)
        client_free(&s->clients[i]);
    free(s->clients);
}

/* Run seed for steps, then bring it to rest. Returns true if every invariant held. */
static bool run(uint64_t seed, long steps, bool quiet, char failure[512])
{
    struct sim *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->seed = seed;
    s->steps = steps;
    rng = seed;
    configure(s);
    for (int k = 0; k < MAX_LIVE; k++)
        s->by_key[k] = -1;
    s->core = core_new(&s->cfg);
    if (!s->core)
        abort();
    s->memory_bound += core_memory(s->core);
    s->now = 1000000;
    bool ok = setjmp(s->fail_jump) == 0;
    if (ok) {
        for (s->step = 1; s->step <= steps; s->step++)
            one_step(s);
        come_to_rest(s);
    } else {
        snprintf(failure, 512, "%s", s->failure);
    }
    if (!quiet && ok) {
        const struct stats *st = core_stats(s->core);
        printf("seed %" PRIu64 ": %ld steps; max-message %zu, max-pending %zu, max-clients %zu, "
               "write-timeout %u ms%s%s%s\n  %zu clients (%" PRIu64 " turned away, %" PRIu64
               " sent away, %" PRIu64 " slow), %" PRIu64 " frames forwarded, %" PRIu64
               " dropped, %" PRIu64 " error frames, %" PRIu64 " senders stopped, %" PRIu64
               " short writes\n",
               seed, steps, s->cfg.max_message, s->cfg.max_pending, s->cfg.max_clients,
               s->cfg.write_timeout_ms, s->cfg.error_frames ? "" : ", no error frames",
               s->cfg.ids.mode == IDS_RANDOM ? ", random IDs" : "",
               s->cfg.work_us ? ", work-us 1" : "", s->nclients, s->refused, s->sent_away,
               st->slow_consumers, st->frames_forwarded, st->frames_dropped, st->error_frames,
               s->stops, s->short_writes);
    }
    sim_free(s);
    free(s);
    return ok;
}

/* A failure at `steps`: find the shortest prefix of the same run that still fails. */
static long shrink(uint64_t seed, long steps, char failure[512])
{
    long lo = 0, hi = steps; /* run(lo) passes (0 steps is taken to), run(hi) fails */
    char probe[512];
    while (hi - lo > 1) {
        long mid = lo + (hi - lo) / 2;
        if (run(seed, mid, true, probe))
            lo = mid;
        else {
            hi = mid;
            memcpy(failure, probe, sizeof probe);
        }
    }
    return hi;
}

/* Run one seed; on failure print it, shrink it, and say how to replay it. Returns 0 if it
 * passed, else the shortest failing prefix; *at is the step the full run failed at. */
static long run_and_report(uint64_t seed, long steps, bool quiet, long *at)
{
    char failure[512];
    if (run(seed, steps, quiet, failure))
        return 0;
    *at = failed_at;
    printf("seed %" PRIu64 " FAILED: %s\n", seed, failure);
    long k = shrink(seed, steps, failure);
    printf("seed %" PRIu64 " fails at step %ld: %s\n", seed, k, failure);
#if defined(PLANT) && PLANT != 0
    printf("replay: %s --seed %" PRIu64 " --steps %ld\n", program, seed, k);
#else
    printf("replay: make sim SEED=%" PRIu64 " STEPS=%ld\n", seed, k);
#endif
    fflush(stdout);
    return k;
}

static int by_value(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    uint64_t seed = 0;
    long steps = -1, seeds = DEFAULT_SEEDS;
    bool one = false, quiet = false;
    program = argv[0];
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = strtoull(argv[++i], NULL, 0);
            one = true;
        } else if (strcmp(argv[i], "--steps") == 0 && i + 1 < argc) {
            steps = strtol(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) {
            seeds = strtol(argv[++i], NULL, 0);
        } else if (strcmp(argv[i], "--quiet") == 0) {
            quiet = true;
        } else {
            fprintf(stderr,
                    "usage: sim_sansio [--seed S] [--steps N] [--seeds K] [--quiet]\n"
                    "  no --seed: seeds 1..K (default %d) of N steps (default %d)\n",
                    DEFAULT_SEEDS, DEFAULT_STEPS);
            return 2;
        }
    }
    if (steps < 0)
        steps = SANITIZED && !one ? DEFAULT_STEPS / 4 : DEFAULT_STEPS;
    if (SANITIZED && !one)
        printf("sim_sansio: built with a sanitizer: %ld steps a seed instead of %d\n", steps,
               DEFAULT_STEPS);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    long runs = 0, failures = 0, first_seed = 0, first_at = 0, until_first = 0, at = 0;
    long *shortest = must_realloc(NULL, (size_t)(seeds > 0 ? seeds : 1) * sizeof *shortest);
    uint64_t from = one ? seed : 1, to = one ? seed : (uint64_t)seeds;
    for (uint64_t i = from; i >= from && i <= to; i++, runs++) {
        long k = run_and_report(i, steps, quiet, &at);
        if (k == 0) {
            until_first += failures ? 0 : steps;
            continue;
        }
        if (failures == 0) {
            first_seed = (long)i;
            first_at = at;
            until_first += at;
        }
        shortest[failures++] = k;
    }
    bool ok = failures == 0;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double secs = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("sim_sansio: %s: %ld run%s, %ld steps, %.1f s\n", ok ? "passed" : "FAILED", runs,
           runs == 1 ? "" : "s", runs * steps, secs);
    if (!ok) {
        qsort(shortest, (size_t)failures, sizeof *shortest, by_value);
        printf("sim_sansio: %ld of %ld seeds failed; the first, seed %ld, at step %ld%s (%ld steps "
               "simulated until then); shortest failing prefixes: %ld to %ld steps, median %ld\n",
               failures, runs, first_seed, first_at > steps ? steps : first_at,
               first_at > steps ? " (coming to rest)" : "", until_first, shortest[0],
               shortest[failures - 1], shortest[failures / 2]);
    }
    free(shortest);
    return ok ? 0 : 1;
}
