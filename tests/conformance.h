/*
 * conformance.h - the pieces shared by the conformance suite's files.
 *
 * Every case runs in a fixture: a fresh router process started for that case alone (so one
 * crash cannot spill into the next case), its stderr captured in a temporary file, and the
 * clients the case opened. The fx_* checks talk to the router over real sockets and fail the
 * case with a sentence saying what was expected and what arrived; every one of them waits for a
 * bounded time, and a watchdog kills the router if a case still runs past CASE_LIMIT_MS, so the
 * suite cannot hang whatever the router does.
 *
 * Three properties are observed rather than simply asserted, because some routers lack them
 * on purpose (see conformance.c for how an expectation turns an observation into pass or fail).
 */
#ifndef CONFORMANCE_H
#define CONFORMANCE_H

/* cmocka.h needs these before it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdbool.h>

#include "client.h"
#include "clock.h"
#include "router_proc.h"

#define CONNECT_TIMEOUT_MS 3000 /* connect and receive the ID */
#define FRAME_TIMEOUT_MS 3000   /* a frame that should arrive */
#define SILENCE_MS 200          /* how long "nothing else arrives" is watched */
#define STOP_TIMEOUT_MS 5000    /* SIGTERM to exit, sanitizer leak checks included */
#define CASE_LIMIT_MS 40000     /* the watchdog's last resort */

/* PROP_NONE (zero) is what a case that observes no property gets by default. */
enum property { PROP_NONE, PROP_FORWARDS, PROP_ISOLATES, PROP_MEMORY, PROP_STRESS, PROP_COUNT };
enum expectation { EXPECT_YES, EXPECT_NO, EXPECT_ANY };
enum observation { SEEN_NOTHING, SEEN_YES, SEEN_NO };

/* What a case needs; handed to cmocka as the case's initial state. */
struct case_spec {
    const char *name;
    const char *const *args;   /* router options added for this case, NULL-terminated, or NULL */
    bool needs_forwarding;     /* meaningless against a router that does not forward */
    enum property property;    /* PROP_NONE, or the property whose observation the case is */
    long nofile;               /* > 0: the router's open-file limit */
    void (*run)(void **state); /* the case itself; cmocka calls fx_run_case, which calls it */
};

/* The suite's run: the router under test, the expectations, and what was observed. */
struct suite {
    char **router_argv; /* ROUTER ROUTER_ARGS, NULL-terminated */
    enum expectation expect[PROP_COUNT];
    enum observation seen[PROP_COUNT];
    char seen_note[PROP_COUNT][256]; /* how the observation was made, for the table */
    bool forwarding_na;              /* cases that need forwarding are not run */
    const char *na_cases[32];
    int n_na;
    int na_count[PROP_COUNT]; /* of a property's cases, how many were not applicable */
};
extern struct suite suite;
extern const char *const property_name[PROP_COUNT];        /* "forwards", as --expect spells it */
extern const char *const expectation_name[EXPECT_ANY + 1]; /* "yes", "no", "any" */

/* One client of a case, with a name for the messages ("A", "S (never reads)"). */
struct peer {
    struct client c;
    char name[24];
    bool used;
};

#define FX_MAX_PEERS 64

struct fixture {
    const struct case_spec *spec;
    struct router_proc router;
    int stderr_fd;    /* the router's stderr, a deleted temp file */
    bool router_gone; /* reaped during the case: router_status is its wait status */
    int router_status;
    bool end_judged; /* the case itself judged how the router ended: teardown does not */
    struct peer peers[FX_MAX_PEERS];

    /* The watchdog thread: kills the router if the case runs past CASE_LIMIT_MS. */
    pthread_t watchdog;
    bool watchdog_running;
    int wake[2];          /* a byte here tells the watchdog the case is over */
    int router_out;       /* the router's stdout after "listening on", owned by the watchdog */
    pthread_mutex_t lock; /* guards router.pid: the watchdog may kill it while a case reaps it */
    jmp_buf observed;     /* fx_run_case's frame: an expected "no" ends the case here */
};

/*
 * What cmocka runs for every case: the case itself, then the verdict on its property. A
 * property case passes when what it observed matches the expectation (an expected "no" or an
 * "any" passes with the observation printed) and fails when it does not.
 */
void fx_run_case(void **state);

/* cmocka setup and teardown: start a router with the case's options, stop and check it. */
int fx_setup(void **state);
int fx_teardown(void **state);

/* A deleted temp file for a router's stderr. */
int fx_open_log(void);
/* Print the log under a failure: its first sanitizer report if it has one, else its end. */
void fx_print_log(int fd, int max_lines);
/* Does the log hold a sanitizer report? Copies its first line into headline. */
bool fx_log_report(int fd, char *headline, size_t cap);

/* Stop the router with sig; see router_stop. Records how it ended. */
int fx_stop(struct fixture *f, int sig, int timeout_ms, int *status);

/* The first line of every case: returns its fixture. */
struct fixture *fx_begin(void **state);

/* Fail the case: the message, the router's state and the tail of its stderr. */
_Noreturn void fx_fail(struct fixture *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Connect a client and read its ID; or connect without reading anything. */
struct peer *fx_connect(struct fixture *f, const char *name);
struct peer *fx_connect_raw(struct fixture *f, const char *name);
void fx_close(struct fixture *f, struct peer *p);

void fx_send(struct fixture *f, struct peer *from, uint32_t dest, const void *payload, size_t len);
void fx_send_raw(struct fixture *f, struct peer *from, const void *bytes, size_t len);

#define FX_OFFER_STALL_MS 300  /* a sender's writes have stalled if none moves for this long */
#define FX_OFFER_LIMIT_MS 5000 /* an offer gives up after this long anyway */

/*
 * Write copies of frame[0, len) from p, non-blocking, until the router stops taking them (no
 * progress for FX_OFFER_STALL_MS), max bytes are written or FX_OFFER_LIMIT_MS pass. Returns
 * the bytes written;
 * *stalled says which, and *partial how much of the last copy went out (0: it is whole). p
 * stays non-blocking.
 */
size_t fx_offer(struct fixture *f, struct peer *p, const uint8_t *frame, size_t len, size_t max,
                bool *stalled, size_t *partial);

/* Expect exactly this payload as the next frame within timeout_ms. */
void fx_expect_frame(struct fixture *f, struct peer *p, const void *want, size_t len,
                     int timeout_ms);
/* A sends B a frame: the milliseconds it took to arrive, or -1 if it did not within ms (any
 * other answer fails the case). For the isolation cases, while someone else jams the router. */
int64_t fx_time_frame(struct fixture *f, struct peer *a, struct peer *b, int ms);

/* Expect an error frame (0xFF first) whose reason contains `reason`. */
void fx_expect_error(struct fixture *f, struct peer *p, const char *reason, int timeout_ms);
/* Expect the router to close the connection, with no frame before it. */
void fx_expect_closed(struct fixture *f, struct peer *p, int timeout_ms);
/* Expect nothing at all to arrive for ms. */
void fx_expect_nothing(struct fixture *f, struct peer *p, int ms);

void fx_sleep_ms(int ms);

/* Is the router process still running? Reaps it (and records how it ended) if not. */
bool fx_router_alive(struct fixture *f);
/* "still running", "exited with status 1", "was killed by signal 11 (Segmentation fault)" */
const char *fx_router_state(struct fixture *f, char *buf, size_t cap);

/* Printable rendering of bytes for messages: "\xffunknown destination 7" (23 bytes). */
const char *fx_render(const void *bytes, size_t len, char *buf, size_t cap);
/* What a client_recv result means, for messages. */
const char *fx_describe_recv(ssize_t rc, const void *buf, char *out, size_t cap);

/*
 * A property case reports what it observed. If the property does not hold, the first note is
 * kept for the table; the case then fails if the property was expected (yes), and otherwise
 * ends there and passes, the observation printed (see fx_run_case).
 * In a survives-stress case, any fx_fail is such an observation.
 */
void fx_property_holds(struct fixture *f);
_Noreturn void fx_property_fails(struct fixture *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The cases, one function each (conformance_cases.c, conformance_load.c, conformance_faults.c). */
void id_arrives_first_and_ids_are_distinct(void **state);
void frames_are_forwarded_between_two_clients(void **state);
void two_clients_exchange_both_ways(void **state);
void frames_split_byte_by_byte_are_reassembled(void **state);
void many_frames_in_one_write_are_all_delivered(void **state);
void empty_payload_is_delivered(void **state);
void payload_at_the_limit_is_delivered(void **state);
void payload_over_the_limit_gets_error_and_disconnect(void **state);
void unknown_destination_gets_error_frame(void **state);
void self_send_is_delivered(void **state);
void vanished_client_mid_frame_leaves_others_unaffected_and_its_id_is_not_reused(void **state);
void max_clients_overflow_gets_server_full(void **state);
void no_error_frames_option_suppresses_errors(void **state);
void random_ids_are_distinct(void **state);
void clients_with_random_ids_exchange_frames(void **state);
void sigterm_exits_zero_with_summary(void **state);
void connect_disconnect_1000_times_keeps_fd_count(void **state);
void random_garbage_does_not_crash_it(void **state);
void slow_consumer_does_not_stall_other_clients(void **state);
void stalled_reader_keeps_router_memory_bounded(void **state);
void flooded_client_sent_away_still_reads_its_error_frame(void **state);
void per_pair_order_holds_over_10000_frames(void **state);
void all_to_all_50_clients_deliver_every_frame_once_intact(void **state);
void slow_consumer_is_disconnected_after_the_write_timeout(void **state);
void error_frames_a_sender_never_reads_do_not_stall_others(void **state);
void paused_reader_gets_every_small_frame_once_it_reads(void **state);
void sigterm_right_after_listening_exits_zero_every_time(void **state);
void too_few_descriptors_every_client_gets_an_id_or_server_full(void **state);

#endif
