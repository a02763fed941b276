/*
 * conformance_cases.c - the protocol's cases: IDs, forwarding, framing, limits, errors,
 * departures and the command-line conventions. One behaviour per case; each starts from a
 * fresh router (see conformance_fixture.c). The cases that load the router are in
 * conformance_load.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "conformance.h"
#include "frame.h"
#include "proto.h"

/* An ID no router has handed out in a fresh run: sequential IDs start from 1, and random ones
 * are checked against the clients of the case before use. */
#define UNUSED_ID 4000000000u

static void send_str(struct fixture *f, struct peer *from, struct peer *to, const char *s)
{
    fx_send(f, from, to->c.id, s, strlen(s));
}

static void expect_str(struct fixture *f, struct peer *p, const char *s)
{
    fx_expect_frame(f, p, s, strlen(s), FRAME_TIMEOUT_MS);
}

/* Read raw bytes until the router closes the connection. Returns false on a timeout. */
static bool read_until_closed(struct peer *p, uint8_t *buf, size_t cap, size_t *len, int ms)
{
    int64_t deadline = clock_now_ms() + ms;
    *len = 0;
    while (*len < cap) {
        int64_t left = deadline - clock_now_ms();
        int rc = client_recv_exact(&p->c, buf + *len, 1, left > 0 ? (int)left : 0);
        if (rc == CLIENT_CLOSED)
            return true;
        if (rc != 0)
            return false;
        (*len)++;
    }
    return false;
}

void id_arrives_first_and_ids_are_distinct(void **state)
{
    struct fixture *f = fx_begin(state);
    enum { N = 5 };
    struct peer *p[N];
    uint32_t ids[N];
    /* Several clients wait for their IDs at once; none sends a byte. */
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof name, "client %d", i + 1);
        p[i] = fx_connect_raw(f, name);
    }
    for (int i = 0; i < N; i++) {
        uint8_t raw[PROTO_ID_LEN];
        int rc = client_recv_exact(&p[i]->c, raw, sizeof raw, CONNECT_TIMEOUT_MS);
        if (rc != 0)
            fx_fail(f, "%s expected its 4-byte ID without sending anything; got %s within %d ms",
                    p[i]->name, rc == CLIENT_TIMEOUT ? "nothing" : "the connection closed",
                    CONNECT_TIMEOUT_MS);
        ids[i] = frame_get_u32(raw);
        if (ids[i] == 0)
            fx_fail(f, "%s received ID 0; IDs are never 0", p[i]->name);
        for (int j = 0; j < i; j++)
            if (ids[j] == ids[i])
                fx_fail(f, "%s and %s both received ID %" PRIu32, p[j]->name, p[i]->name, ids[i]);
    }
    /* The ID is exactly 4 bytes: no greeting, no newline after it. */
    fx_sleep_ms(SILENCE_MS);
    for (int i = 0; i < N; i++)
        fx_expect_nothing(f, p[i], 0);
}

/* The talk's own test. */
/* The forwards property: the probe before the cases observed it; a "no" is reported here. */
void frames_are_forwarded_between_two_clients(void **state)
{
    struct fixture *f = fx_begin(state);
    if (suite.seen[PROP_FORWARDS] == SEEN_NO)
        fx_property_fails(f, "%s", suite.seen_note[PROP_FORWARDS]);
    struct peer *a = fx_connect(f, "A"), *b = fx_connect(f, "B");
    send_str(f, a, b, "forwarded");
    expect_str(f, b, "forwarded");
    fx_property_holds(f);
}

void two_clients_exchange_both_ways(void **state)
{
    struct fixture *f = fx_begin(state);
    struct peer *a = fx_connect(f, "A"), *b = fx_connect(f, "B");
    if (a->c.id == b->c.id)
        fx_fail(f, "A and B both received ID %" PRIu32, a->c.id);
    send_str(f, a, b, "hello, number 2");
    expect_str(f, b, "hello, number 2");
    send_str(f, b, a, "hello back, number 1");
    expect_str(f, a, "hello back, number 1");
}

void frames_split_byte_by_byte_are_reassembled(void **state)
{
    struct fixture *f = fx_begin(state);
    struct peer *a = fx_connect(f, "A"), *b = fx_connect(f, "B");
    static const char *const payloads[] = {"one byte per write", "and a second frame"};
    uint8_t wire[64];
    size_t len = 0;
    for (int i = 0; i < 2; i++) {
        frame_put_u32(wire + len, b->c.id);
        memcpy(wire + len + 4, payloads[i], strlen(payloads[i]) + 1);
        len += 4 + strlen(payloads[i]) + 1;
    }
    /* TCP_NODELAY and a pause per byte: each byte travels, and is read, on its own. */
    for (size_t i = 0; i < len; i++) {
        fx_send_raw(f, a, wire + i, 1);
        fx_sleep_ms(1);
    }
    expect_str(f, b, payloads[0]);
    expect_str(f, b, payloads[1]);
}

void many_frames_in_one_write_are_all_delivered(void **state)
{
    struct fixture *f = fx_begin(state);
    struct peer *a = fx_connect(f, "A"), *b = fx_connect(f, "B");
    enum { N = 100 };
    uint8_t wire[N * 16];
    size_t len = 0;
    for (int i = 0; i < N; i++) {
        frame_put_u32(wire + len, b->c.id);
        len += 4 + (size_t)sprintf((char *)wire + len + 4, "frame %03d", i) + 1;
    }
    fx_send_raw(f, a, wire, len); /* one write, one segment: nothing more will come */
    for (int i = 0; i < N; i++) {
        char want[16], got[320], buf[64];
        int wlen = sprintf(want, "frame %03d", i);
        ssize_t rc = client_recv(&b->c, buf, sizeof buf, FRAME_TIMEOUT_MS);
        if (rc != wlen || memcmp(buf, want, (size_t)wlen) != 0)
            fx_fail(f,
                    "B received %d of the %d frames A sent in one write; for \"%s\" it got %s "
                    "(a router that handles one frame per read stalls here)",
                    i, N, want, fx_describe_recv(rc, buf, got, sizeof got));
    }
}

void empty_payload_is_delivered(void **state)
{
    struct fixture *f = fx_begin(state);
    struct peer *a = fx_connect(f, "A"), *b = fx_connect(f, "B");
    fx_send(f, a, b->c.id, "", 0);
    send_str(f, a, b, "after the empty one");
    fx_expect_frame(f, b, "", 0, FRAME_TIMEOUT_MS);
    expect_str(f, b, "after the empty one");
}

/* Cases run with --max-message 1000. */
#define LIMIT 1000

static void fill_payload(uint8_t *p, size_t len)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)('a' + i % 26);
}

void payload_at_the_limit_is_delivered(void **state)
{
    struct fixture *f = fx_begin(state);
    struct peer *a = fx_connect(f, "A"), *b = fx_connect(f, "B");
    uint8_t payload[LIMIT];
    fill_payload(payload, sizeof payload);
    fx_send(f, a, b->c.id, payload, sizeof payload);
    fx_expect_frame(f, b, payload, sizeof payload, FRAME_TIMEOUT_MS);
    send_str(f, a, b, "and A is still connected");
    expect_str(f, b, "and A is still connected");
}

void payload_over_the_limit_gets_error_and_disconnect(void **state)
{
    struct fixture *f = fx_begin(state);
    struct peer *a = fx_connect(f, "A"), *b = fx_connect(f, "B"), *c = fx_connect(f, "C");
    /* A header and LIMIT + 1 bytes without a NUL: exactly enough to know it is too long, and
     * nothing left unread when the router closes (unread bytes would turn its close into a
     * reset). */
    uint8_t wire[4 + LIMIT + 1];
    frame_put_u32(wire, b->c.id);
    fill_payload(wire + 4, LIMIT + 1);
    fx_send_raw(f, a, wire, sizeof wire);
    fx_expect_error(f, a, "message too long", FRAME_TIMEOUT_MS);
    fx_expect_closed(f, a, FRAME_TIMEOUT_MS);
    fx_expect_nothing(f, b, SILENCE_MS);
    send_str(f, b, c, "B and C are unaffected");
    expect_str(f, c, "B and C are unaffected");
    send_str(f, c, b, "C agrees");
    expect_str(f, b, "C agrees");
}

void unknown_destination_gets_error_frame(void **state)
{
    struct fixture *f = fx_begin(state);
    struct peer *a = fx_connect(f, "A"), *b = fx_connect(f, "B");
    if (a->c.id == UNUSED_ID || b->c.id == UNUSED_ID)
        fx_fail(f, "this case assumes no client has ID %u", UNUSED_ID);
    char reason[32];
    snprintf(reason, sizeof reason, "%u", UNUSED_ID);
    fx_send(f, a, UNUSED_ID, "to nobody", 9);
    fx_expect_error(f, a, reason, FRAME_TIMEOUT_MS);
    /* ID 0 is never handed out (a router indexing an array by ID may get this wrong). */
    fx_send(f, a, 0, "to zero", 7);
    fx_expect_error(f, a, "0", FRAME_TIMEOUT_MS);
    fx_expect_nothing(f, b, SILENCE_MS);
    send_str(f, a, b, "A is still connected");
    expect_str(f, b, "A is still connected");
}

void self_send_is_delivered(void **state)
{
    struct fixture *f = fx_begin(state);
    struct peer *a = fx_connect(f, "A");
    send_str(f, a, a, "a note to self");
    expect_str(f, a, "a note to self");
}

/* Send to a departed ID until an error frame comes back: the router may take a moment to
 * notice the departure, and frames sent before it does are silently dropped. */
static void expect_departed(struct fixture *f, struct peer *from, uint32_t id)
{
    char reason[16], got[320];
    uint8_t buf[256];
    snprintf(reason, sizeof reason, "%" PRIu32, id);
    int64_t deadline = clock_now_ms() + FRAME_TIMEOUT_MS;
    int sent = 0;
    ssize_t rc;
    do {
        fx_send(f, from, id, "anyone there?", 13);
        sent++;
        rc = client_recv(&from->c, buf, sizeof buf, 100);
        if (rc >= 1 && buf[0] == PROTO_ERROR_BYTE &&
            memmem(buf + 1, (size_t)rc - 1, reason, strlen(reason)))
            return;
    } while (rc == CLIENT_TIMEOUT && clock_now_ms() < deadline);
    fx_fail(f,
            "%s sent %d frame(s) to departed ID %" PRIu32 " over %d ms, expecting an error "
            "frame mentioning it; got %s",
            from->name, sent, id, FRAME_TIMEOUT_MS, fx_describe_recv(rc, buf, got, sizeof got));
}

void vanished_client_mid_frame_leaves_others_unaffected_and_its_id_is_not_reused(void **state)
{
    struct fixture *f = fx_begin(state);
    struct peer *a = fx_connect(f, "A"), *b = fx_connect(f, "B"), *v = fx_connect(f, "V");
    uint32_t gone = v->c.id;
    uint8_t half[4 + 11];
    frame_put_u32(half, b->c.id);
    memcpy(half + 4, "half a fram", 11);
    fx_send_raw(f, v, half, sizeof half);
    fx_close(f, v);

    /* B's next frame is A's, whole: nothing of V's half frame reached it. */
    send_str(f, a, b, "V left");
    expect_str(f, b, "V left");
    send_str(f, b, a, "so it did");
    expect_str(f, a, "so it did");
    expect_departed(f, a, gone);

    /* The router has noticed V's departure; V's ID must stay retired. */
    struct peer *n[3];
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "newcomer %d", i + 1);
        n[i] = fx_connect(f, name);
        uint32_t id = n[i]->c.id;
        if (id == gone || id == a->c.id || id == b->c.id)
            fx_fail(f, "%s received ID %" PRIu32 ", which %s", name, id,
                    id == gone ? "V had before it left: IDs are never reused"
                               : "a connected client already has");
        for (int j = 0; j < i; j++)
            if (n[j]->c.id == id)
                fx_fail(f, "%s and %s both received ID %" PRIu32, n[j]->name, name, id);
    }
}

void max_clients_overflow_gets_server_full(void **state)
{
    struct fixture *f = fx_begin(state);
    fx_connect(f, "A");
    fx_connect(f, "B");
    struct peer *c = fx_connect(f, "C");
    /* The fourth gets the error frame and nothing else: no ID before it. */
    struct peer *d = fx_connect_raw(f, "D");
    uint8_t got[256];
    size_t len;
    bool closed = read_until_closed(d, got, sizeof got, &len, CONNECT_TIMEOUT_MS);
    bool one_error_frame = len >= 2 && got[0] == PROTO_ERROR_BYTE && got[len - 1] == '\0' &&
                           memchr(got, '\0', len) == got + len - 1 &&
                           memmem(got, len, "server full", 11);
    if (!closed || !one_error_frame) {
        char shown[320];
        fx_fail(f,
                "with --max-clients 3, the fourth client expected only an error frame "
                "\"\\xffserver full\" and then the connection closed within %d ms; it got %s%s",
                CONNECT_TIMEOUT_MS, fx_render(got, len, shown, sizeof shown),
                closed ? " and the close" : " and no close");
    }
    fx_close(f, d);

    /* A departure frees a place: once the router has noticed, a new client gets an ID. */
    fx_close(f, c);
    int64_t deadline = clock_now_ms() + CONNECT_TIMEOUT_MS;
    for (;;) {
        struct peer *e = fx_connect_raw(f, "E");
        uint8_t first[PROTO_ID_LEN];
        int rc = client_recv_exact(&e->c, first, sizeof first, CONNECT_TIMEOUT_MS);
        bool refused = rc == 0 && first[0] == PROTO_ERROR_BYTE && memcmp(first + 1, "ser", 3) == 0;
        if (rc == 0 && !refused)
            return;
        if (rc != 0 && rc != CLIENT_CLOSED)
            fx_fail(f, "E expected an ID after C left; got %s",
                    rc == CLIENT_TIMEOUT ? "nothing" : "a socket error");
        fx_close(f, e);
        if (clock_now_ms() > deadline)
            fx_fail(f,
                    "E was still refused %d ms after C left: the router did not free C's "
                    "place",
                    CONNECT_TIMEOUT_MS);
        fx_sleep_ms(50);
    }
}

/* Run with --no-error-frames and --max-message 1000. */
void no_error_frames_option_suppresses_errors(void **state)
{
    struct fixture *f = fx_begin(state);
    struct peer *a = fx_connect(f, "A");
    if (a->c.id == UNUSED_ID)
        fx_fail(f, "this case assumes no client has ID %u", UNUSED_ID);
    fx_send(f, a, UNUSED_ID, "to nobody", 9);
    send_str(f, a, a, "marker");
    /* The marker comes next, and no error frame before or after it. */
    expect_str(f, a, "marker");
    fx_expect_nothing(f, a, SILENCE_MS);

    uint8_t wire[4 + LIMIT + 1];
    frame_put_u32(wire, a->c.id);
    fill_payload(wire + 4, LIMIT + 1);
    fx_send_raw(f, a, wire, sizeof wire);
    fx_expect_closed(f, a, FRAME_TIMEOUT_MS);
}

/* Run with --ids random. */
void random_ids_are_distinct(void **state)
{
    struct fixture *f = fx_begin(state);
    enum { N = 20 };
    uint32_t ids[N];
    for (int i = 0; i < N; i++) {
        char name[16];
        snprintf(name, sizeof name, "client %d", i + 1);
        ids[i] = fx_connect(f, name)->c.id;
        if (ids[i] == 0)
            fx_fail(f, "%s received ID 0; IDs are never 0", name);
        for (int j = 0; j < i; j++)
            if (ids[j] == ids[i])
                fx_fail(f, "clients %d and %d both received ID %" PRIu32, j + 1, i + 1, ids[i]);
    }
    /* Random IDs cannot be guessed from each other: no constant step between them. */
    bool constant_step = true;
    for (int i = 2; i < N; i++)
        constant_step = constant_step && ids[i] - ids[i - 1] == ids[1] - ids[0];
    if (constant_step)
        fx_fail(f,
                "with --ids random, the IDs %" PRIu32 ", %" PRIu32 ", %" PRIu32
                "... advance by a constant step: they are predictable",
                ids[0], ids[1], ids[2]);
}

/* Run with --ids random: IDs use all 32 bits, so a signed or narrow ID type shows here. */
void clients_with_random_ids_exchange_frames(void **state)
{
    struct fixture *f = fx_begin(state);
    struct peer *a = fx_connect(f, "A"), *b = fx_connect(f, "B");
    send_str(f, a, b, "to a random ID");
    expect_str(f, b, "to a random ID");
    send_str(f, b, a, "and back");
    expect_str(f, a, "and back");
}

void sigterm_exits_zero_with_summary(void **state)
{
    struct fixture *f = fx_begin(state);
    fx_connect(f, "A");
    fx_connect(f, "B");
    struct stat st;
    if (fstat(f->stderr_fd, &st) != 0)
        fx_fail(f, "fstat on the router's stderr file: %s", strerror(errno));
    off_t before = st.st_size;

    char how[96];
    if (!fx_router_alive(f))
        fx_fail(f, "the router %s before it was sent SIGTERM", fx_router_state(f, how, sizeof how));
    int status;
    f->end_judged = true; /* this case judges the exit itself */
    if (fx_stop(f, SIGTERM, STOP_TIMEOUT_MS, &status) != 0)
        fx_fail(f, "the router did not exit within %d ms of SIGTERM (it was then killed)",
                STOP_TIMEOUT_MS);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fx_fail(f, "after SIGTERM the router should exit with status 0; it %s",
                fx_router_state(f, how, sizeof how));
    }

    /* What it wrote to stderr after the signal must end with a complete line: the summary. */
    char text[2048];
    ssize_t n = 0;
    if (fstat(f->stderr_fd, &st) == 0 && st.st_size > before) {
        off_t from = st.st_size - before > (off_t)sizeof text - 1
                         ? st.st_size - (off_t)sizeof text + 1
                         : before;
        n = pread(f->stderr_fd, text, sizeof text - 1, from);
    }
    if (n <= 1 || text[n - 1] != '\n')
        fx_fail(f,
                "after SIGTERM the router should print a one-line summary on stderr; it "
                "printed %s",
                n <= 0 ? "nothing" : "no complete line");
    /* Show it: the last line that is not a sanitizer's (those come last, at exit). */
    text[n] = '\0';
    const char *summary = "(only sanitizer output)";
    for (ssize_t end = n - 1; end >= 0;) { /* text[end] ends a line */
        text[end] = '\0';
        ssize_t start = end;
        while (start > 0 && text[start - 1] != '\n')
            start--;
        if (!strstr(text + start, "Sanitizer")) {
            summary = text + start;
            break;
        }
        end = start - 1;
    }
    print_message("  summary: %s\n", summary);
}
