/*
 * core.h - the whole router as a state machine with no I/O (sans-IO).
 *
 * The core owns every client's state - IDs, partial frames, output queues, who waits on whom,
 * write deadlines - and the counters, and enforces every limit. It is fed events (a client
 * connected, bytes arrived, the socket took bytes, a client closed, time passed) and answers
 * with actions (write these bytes, stop or resume reading, close). It makes no system call,
 * reads no clock and never blocks: time is a number the caller passes in. So an event loop can
 * drive it (router.c, with epoll), and so can a simulator that plays every client
 * (tests/sim_sansio.c).
 *
 *     struct core *r = core_new(&cfg);                // cfg.ids initialised by the caller
 *     uint32_t id = core_connected(r, fd, now);       // the key is the fd; 0: "server full"
 *     core_received(r, fd, buf, n, now);              // whatever read(2) returned
 *     core_writable(r, fd, now);                      // POLLOUT, after a short write
 *     struct core_action a;
 *     while (core_next_action(r, &a))                 // after an event, or a poll turn
 *         switch (a.kind) {
 *         case CORE_WRITE:        n = write(a.key, a.bytes, a.len);
 *                                 core_written(r, a.key, n > 0 ? n : 0, now); break;
 *         case CORE_STOP_READING: case CORE_START_READING: ...; break;   // watch for input?
 *         case CORE_CLOSE:        close(a.key); break;
 *         }
 *     int64_t deadline = core_tick(r, now);           // evictions; the next one (-1: none)
 *
 * Keys name clients in events and actions. The caller picks them (a descriptor or a slot
 * index: small non-negative ints, the core indexes an array with them). A key is the core's
 * from core_connected until the core answers CORE_CLOSE for it; after that no action names
 * it, events naming it are ignored, and the caller may use it for a new client.
 *
 * Actions are computed when they are taken, so they may wait for several events (a poll turn):
 * a WRITE then offers everything queued by then. Take them all before core_connected (a key
 * closed meanwhile may come back), and do each before taking the next. Bytes read from a
 * client after its CORE_STOP_READING was taken are a broken contract; before, they are kept.
 */
#ifndef CORE_H
#define CORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"
#include "stats.h"

struct core_config {
    size_t max_message;        /* longest payload; longer: "message too long", then closed */
    size_t max_pending;        /* bytes queued for one client before its senders wait */
    size_t max_clients;        /* clients at once; one more is told "server full" */
    unsigned write_timeout_ms; /* a queue that the socket takes nothing of for so long: the
                                  client is a slow consumer and is closed; 0: never */
    unsigned work_us;          /* --work-us: CPU work per routed frame (work.h) */
    bool error_frames;         /* false: --no-error-frames */
    struct id_allocator ids;   /* ids_init'ed by the caller: the core calls only ids_next */
};

enum core_action_kind {
    CORE_WRITE,         /* write bytes[0, len) to key now, then report with core_written */
    CORE_STOP_READING,  /* do not read key until CORE_START_READING (a new client is read) */
    CORE_START_READING, /* read key again */
    CORE_CLOSE,         /* close key; the core has forgotten it */
};

/* Why a client is closed: what the driver logs, and how it closes. */
enum core_close_reason {
    CORE_CLOSE_PEER,      /* the driver reported it closed (core_closed), or core_stop */
    CORE_CLOSE_FULL,      /* turned away: --max-clients were connected */
    CORE_CLOSE_TOO_LONG,  /* sent away for a frame too long, after its queue was written: it may
                             still be sending, so shut down writing and drain its input before
                             closing, or the kernel's reset discards what it has not read */
    CORE_CLOSE_SLOW,      /* a slow consumer: its socket took nothing for write_timeout_ms */
    CORE_CLOSE_NO_MEMORY, /* the core could not grow one of its buffers */
};

struct core_action {
    enum core_action_kind kind;
    int key;
    uint32_t id;          /* the client's ID, for logs (0: a client turned away) */
    const uint8_t *bytes; /* CORE_WRITE: every byte queued for key and not taken yet; valid */
    size_t len;           /*   until the next call into the core other than core_next_action */
    enum core_close_reason reason; /* CORE_CLOSE */
};

struct core *core_new(const struct core_config *cfg); /* NULL if out of memory */
void core_free(struct core *r);                       /* closes nothing: call core_stop first */

/* Events. now_ms is any monotonic clock in milliseconds; the core never reads one itself. */
/* slide: sansio-api */

/* A client connected on key. Returns its ID, or 0: turned away (its actions say "server full"
 * and close it). */
uint32_t core_connected(struct core *r, int key, int64_t now_ms);
/* The client on key sent these bytes (any split: partial frames, several frames). */
void core_received(struct core *r, int key, const uint8_t *bytes, size_t len, int64_t now_ms);
/* The socket took the first n bytes of the last CORE_WRITE for key (n may be 0). Taking fewer
 * than offered means it is full: no CORE_WRITE for key until core_writable. */
void core_written(struct core *r, int key, size_t n, int64_t now_ms);
/* The socket of key can take bytes again (POLLOUT after a short write). */
void core_writable(struct core *r, int key, int64_t now_ms);
/* The client on key is gone: end of file or a socket error. */
void core_closed(struct core *r, int key, int64_t now_ms);
/* Time passed: evict the slow consumers. Returns when the next deadline falls (after now_ms),
 * or -1 if none is set. Events set deadlines too (a queue that fills starts one), so call it
 * after the events of a turn, and wait no longer than what it returned. */
int64_t core_tick(struct core *r, int64_t now_ms);
/* The next thing to do, or false when there is nothing. Do each before asking the next. */
bool core_next_action(struct core *r, struct core_action *a);
/* end slide */

/* Shutdown: close every client; what was queued for them is dropped and counted. */
void core_stop(struct core *r);

const struct stats *core_stats(const struct core *r);
/* Bytes of buffer the core holds (queues, kept input, tables): what memory bounds check. */
size_t core_memory(const struct core *r);

#endif
