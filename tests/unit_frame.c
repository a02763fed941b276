/*
 * unit_frame.c - the frame parser (frame.h) and the error frame (proto.h).
 *
 * The parser is the one piece every router trusts with bytes straight off the wire, so it is
 * tested the way the routers use it: a receive buffer that fills a read at a time, parsed in a
 * loop until the parser asks for more. A stream of frames must give the same frames whatever
 * the reads look like, which is checked for every split point of a stream.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "frame.h"
#include "options.h"
#include "proto.h"

/* ---- a stream of frames and a receiver that parses it like a router ---- */

struct wire_frame {
    uint32_t dest;
    const uint8_t *payload;
    size_t len;
};

static uint8_t long_payload[300]; /* every byte value but NUL, cycling; filled by main() */
#define STREAM_MAX_PAYLOAD 300    /* the longest payload in the stream is exactly the limit */

/* Empty payloads, 0xFF and other high bytes, and IDs whose bytes are NUL or 0xFF. */
static const struct wire_frame stream_frames[] = {
    {1, (const uint8_t *)"hello", 5},
    {0xFFFFFFFFu, (const uint8_t *)"", 0},
    {0x80000000u, (const uint8_t *)"\xFF\xFE\x80\x7F\x01", 5},
    {0, (const uint8_t *)"x", 1},
    {0x00FF00FFu, (const uint8_t *)"", 0},
    {42, long_payload, sizeof long_payload},
    {7, (const uint8_t *)"\xFF", 1},
    {0x01000000u, (const uint8_t *)"", 0},
    {0xFF000000u, (const uint8_t *)"\xC3\xA9t\xC3\xA9", 5},
};
#define STREAM_FRAMES (sizeof stream_frames / sizeof stream_frames[0])

/* Writes the frames back to back into out; ends[i] is the offset just past frame i. */
static size_t build_stream(uint8_t *out, size_t ends[STREAM_FRAMES])
{
    size_t len = 0;
    for (size_t i = 0; i < STREAM_FRAMES; i++) {
        frame_put_u32(out + len, stream_frames[i].dest);
        memcpy(out + len + PROTO_ID_LEN, stream_frames[i].payload, stream_frames[i].len);
        len += PROTO_ID_LEN + stream_frames[i].len;
        out[len++] = '\0';
        ends[i] = len;
    }
    return len;
}

#define STREAM_BYTES 1024

/* What the router-style loop saw of one frame. */
struct seen_frame {
    uint32_t dest;
    size_t consumed;
    size_t body_len;
    uint8_t body[STREAM_MAX_PAYLOAD + 1];
};

struct receiver {
    uint8_t buf[STREAM_BYTES]; /* bytes read but not yet parsed into a frame */
    size_t len;
    size_t max_payload;
    struct seen_frame frames[STREAM_FRAMES];
    size_t nframes;
};

/* One read: append the bytes, take every complete frame, keep the rest for the next read. */
static void receiver_feed(struct receiver *r, const uint8_t *bytes, size_t n)
{
    assert_true(r->len + n <= sizeof r->buf);
    memcpy(r->buf + r->len, bytes, n);
    r->len += n;

    size_t off = 0;
    ssize_t used;
    struct frame f;
    while ((used = frame_parse(r->buf + off, r->len - off, r->max_payload, &f)) > 0) {
        /* Zero copy: the body is the payload in place, right after the 4-byte ID. */
        assert_ptr_equal(f.body, r->buf + off + PROTO_ID_LEN);
        assert_true((size_t)used <= r->len - off);
        assert_int_equal((size_t)used, PROTO_ID_LEN + f.body_len);
        assert_true(r->nframes < STREAM_FRAMES);
        assert_true(f.body_len <= sizeof r->frames[0].body);
        struct seen_frame *s = &r->frames[r->nframes++];
        s->dest = f.dest;
        s->consumed = (size_t)used;
        s->body_len = f.body_len;
        memcpy(s->body, f.body, f.body_len);
        off += (size_t)used;
    }
    assert_int_equal(used, FRAME_NEED_MORE);
    memmove(r->buf, r->buf + off, r->len - off);
    r->len -= off;
}

static void receiver_init(struct receiver *r)
{
    memset(r, 0, sizeof *r);
    r->max_payload = STREAM_MAX_PAYLOAD;
}

/* The receiver saw exactly the first n frames of the stream, byte for byte. */
static void assert_saw_first_frames(const struct receiver *r, size_t n)
{
    assert_int_equal(r->nframes, n);
    for (size_t i = 0; i < n; i++) {
        const struct wire_frame *w = &stream_frames[i];
        const struct seen_frame *s = &r->frames[i];
        assert_int_equal(s->dest, w->dest);
        assert_int_equal(s->body_len, w->len + 1);
        assert_int_equal(s->consumed, PROTO_ID_LEN + w->len + 1);
        if (w->len > 0)
            assert_memory_equal(s->body, w->payload, w->len);
        assert_int_equal(s->body[w->len], '\0');
    }
}

static size_t frames_ending_by(const size_t ends[STREAM_FRAMES], size_t offset)
{
    size_t n = 0;
    while (n < STREAM_FRAMES && ends[n] <= offset)
        n++;
    return n;
}

static void a_stream_split_at_any_point_gives_the_same_frames(void **state)
{
    (void)state;
    uint8_t stream[STREAM_BYTES];
    size_t ends[STREAM_FRAMES];
    size_t len = build_stream(stream, ends);

    for (size_t k = 0; k <= len; k++) {
        struct receiver r;
        receiver_init(&r);
        receiver_feed(&r, stream, k);
        assert_saw_first_frames(&r, frames_ending_by(ends, k));
        receiver_feed(&r, stream + k, len - k);
        assert_saw_first_frames(&r, STREAM_FRAMES);
        assert_int_equal(r.len, 0);
    }
}

static void a_stream_fed_byte_by_byte_completes_each_frame_at_its_nul(void **state)
{
    (void)state;
    uint8_t stream[STREAM_BYTES];
    size_t ends[STREAM_FRAMES];
    size_t len = build_stream(stream, ends);

    struct receiver r;
    receiver_init(&r);
    for (size_t i = 0; i < len; i++) {
        receiver_feed(&r, stream + i, 1);
        assert_saw_first_frames(&r, frames_ending_by(ends, i + 1));
    }
    assert_saw_first_frames(&r, STREAM_FRAMES);
    assert_int_equal(r.len, 0);
}

/* ---- single frames ---- */

/* A frame with ID dest and payload_len copies of fill, with or without its NUL. */
static size_t make_frame(uint8_t *buf, uint32_t dest, uint8_t fill, size_t payload_len, int nul)
{
    frame_put_u32(buf, dest);
    memset(buf + PROTO_ID_LEN, fill, payload_len);
    size_t len = PROTO_ID_LEN + payload_len;
    if (nul)
        buf[len++] = '\0';
    return len;
}

static void an_empty_payload_is_a_frame_of_just_the_nul(void **state)
{
    (void)state;
    const uint8_t buf[] = {0, 0, 0, 9, '\0', 'n', 'e', 'x', 't'};
    struct frame f;
    assert_int_equal(frame_parse(buf, sizeof buf, 16, &f), 5);
    assert_int_equal(f.dest, 9);
    assert_ptr_equal(f.body, buf + 4);
    assert_int_equal(f.body_len, 1);
}

static void inputs_up_to_the_header_need_more(void **state)
{
    (void)state;
    const uint8_t buf[] = {0, 0, 0, 0, 0};
    struct frame f;
    /* A NUL inside the ID is part of the ID, not the end of a frame. */
    for (size_t len = 0; len <= PROTO_ID_LEN; len++)
        assert_int_equal(frame_parse(buf, len, 16, &f), FRAME_NEED_MORE);
    assert_int_equal(frame_parse(buf, sizeof buf, 16, &f), 5);
    assert_int_equal(f.dest, 0);
}

static void a_payload_without_its_nul_yet_needs_more(void **state)
{
    (void)state;
    uint8_t buf[64];
    size_t len = make_frame(buf, 3, 'a', 10, 0);
    struct frame f;
    assert_int_equal(frame_parse(buf, len, 16, &f), FRAME_NEED_MORE);
}

static void a_payload_of_exactly_max_bytes_is_complete(void **state)
{
    (void)state;
    enum { MAX = 64 };
    uint8_t buf[PROTO_ID_LEN + MAX + 1];
    size_t len = make_frame(buf, 5, 'm', MAX, 1);
    struct frame f;
    assert_int_equal(frame_parse(buf, len, MAX, &f), PROTO_ID_LEN + MAX + 1);
    assert_int_equal(f.body_len, MAX + 1);
    assert_int_equal(f.body[MAX], '\0');
}

static void max_bytes_without_a_nul_yet_need_more(void **state)
{
    (void)state;
    enum { MAX = 64 };
    uint8_t buf[PROTO_ID_LEN + MAX];
    size_t len = make_frame(buf, 5, 'm', MAX, 0);
    struct frame f;
    assert_int_equal(frame_parse(buf, len, MAX, &f), FRAME_NEED_MORE);
}

static void max_plus_one_bytes_without_a_nul_are_too_long(void **state)
{
    (void)state;
    enum { MAX = 64 };
    uint8_t buf[PROTO_ID_LEN + MAX + 2];
    size_t len = make_frame(buf, 5, 'm', MAX + 1, 0);
    struct frame f;
    assert_int_equal(frame_parse(buf, len, MAX, &f), FRAME_TOO_LONG);
    /* The NUL arriving one byte too late does not rescue the frame. */
    buf[len++] = '\0';
    assert_int_equal(frame_parse(buf, len, MAX, &f), FRAME_TOO_LONG);
}

static void the_default_limit_is_enforced_at_its_boundary(void **state)
{
    (void)state;
    enum { MAX = OPTIONS_DEFAULT_MAX_MESSAGE };
    static uint8_t buf[PROTO_ID_LEN + MAX + 2];
    struct frame f;
    size_t len = make_frame(buf, 1, 0xFF, MAX, 1);
    assert_int_equal(frame_parse(buf, len, MAX, &f), (ssize_t)len);
    len = make_frame(buf, 1, 0xFF, MAX + 1, 0);
    assert_int_equal(frame_parse(buf, len - 1, MAX, &f), FRAME_NEED_MORE);
    assert_int_equal(frame_parse(buf, len, MAX, &f), FRAME_TOO_LONG);
}

static void a_zero_limit_allows_only_empty_payloads(void **state)
{
    (void)state;
    uint8_t buf[16];
    struct frame f;
    size_t len = make_frame(buf, 1, 'z', 0, 1);
    assert_int_equal(frame_parse(buf, len, 0, &f), 5);
    len = make_frame(buf, 1, 'z', 1, 0);
    assert_int_equal(frame_parse(buf, len, 0, &f), FRAME_TOO_LONG);
}

static void the_largest_limit_does_not_overflow(void **state)
{
    (void)state;
    uint8_t buf[16];
    struct frame f;
    size_t len = make_frame(buf, 1, 'q', 3, 1);
    assert_int_equal(frame_parse(buf, len, SIZE_MAX, &f), (ssize_t)len);
    assert_int_equal(frame_parse(buf, len - 1, SIZE_MAX, &f), FRAME_NEED_MORE);
}

static void high_bytes_pass_through_payload_and_id(void **state)
{
    (void)state;
    uint8_t buf[4 + 256] = {0xFF, 0x80, 0x00, 0xFE};
    for (int i = 1; i < 256; i++)
        buf[3 + i] = (uint8_t)(256 - i); /* 0xFF down to 0x01 */
    buf[4 + 255] = '\0';
    struct frame f;
    assert_int_equal(frame_parse(buf, sizeof buf, 255, &f), (ssize_t)sizeof buf);
    assert_int_equal(f.dest, 0xFF8000FEu);
    assert_int_equal(f.body_len, 256);
    assert_int_equal(f.body[0], 0xFF);
    assert_int_equal(f.body[254], 0x01);
    assert_ptr_equal(f.body, buf + 4);
}

static void only_the_first_frame_is_consumed(void **state)
{
    (void)state;
    const uint8_t buf[] = {0, 0, 0, 1, 'a', 0, 0, 0, 0, 2, 'b', 0};
    struct frame f;
    assert_int_equal(frame_parse(buf, sizeof buf, 16, &f), 6);
    assert_int_equal(f.dest, 1);
    assert_int_equal(frame_parse(buf + 6, sizeof buf - 6, 16, &f), 6);
    assert_int_equal(f.dest, 2);
    assert_ptr_equal(f.body, buf + 10);
}

/* ---- u32 helpers ---- */

static void u32_is_written_big_endian(void **state)
{
    (void)state;
    uint8_t buf[6] = {0xAA, 0xAA, 0xAA, 0xAA, 0xAA, 0xAA};
    frame_put_u32(buf + 1, 0x01020304u);
    const uint8_t want[6] = {0xAA, 0x01, 0x02, 0x03, 0x04, 0xAA};
    assert_memory_equal(buf, want, sizeof want);
    const uint8_t wire[4] = {0xFF, 0xFE, 0x80, 0x01};
    assert_int_equal(frame_get_u32(wire), 0xFFFE8001u);
}

static void u32_round_trips_through_the_wire_format(void **state)
{
    (void)state;
    const uint32_t fixed[] = {0, 1, 0xFF, 0x100, 0x7FFFFFFFu, 0x80000000u, 0xFFFFFFFFu};
    uint8_t buf[4];
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        frame_put_u32(buf, fixed[i]);
        assert_int_equal(frame_get_u32(buf), fixed[i]);
    }
    uint32_t x = 2463534242u; /* xorshift32: a fixed pseudo-random sequence */
    for (int i = 0; i < 100000; i++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        frame_put_u32(buf, x);
        assert_int_equal(buf[0], x >> 24);
        assert_int_equal(frame_get_u32(buf), x);
    }
}

/* ---- error frames ---- */

/* Fills the buffer with a marker so bytes the function should not write can be checked. */
#define GUARD 16
static uint8_t guarded[PROTO_ERROR_FRAME_MAX + GUARD];

static void reset_guarded(void)
{
    memset(guarded, 0xA5, sizeof guarded);
}

static void assert_guard_untouched(void)
{
    for (size_t i = PROTO_ERROR_FRAME_MAX; i < sizeof guarded; i++)
        assert_int_equal(guarded[i], 0xA5);
}

static void an_error_frame_is_0xff_reason_nul(void **state)
{
    (void)state;
    reset_guarded();
    size_t n = proto_error_frame(guarded, "unknown destination %u", 42u);
    const char want[] = "\xFFunknown destination 42";
    assert_int_equal(n, sizeof want); /* 0xFF + 22 characters + NUL */
    assert_memory_equal(guarded, want, sizeof want);
    assert_int_equal(guarded[0], PROTO_ERROR_BYTE);
    assert_guard_untouched();
}

static void an_error_frame_with_an_empty_reason_is_two_bytes(void **state)
{
    (void)state;
    reset_guarded();
    size_t n = proto_error_frame(guarded, "%s", "");
    assert_int_equal(n, 2);
    assert_int_equal(guarded[0], 0xFF);
    assert_int_equal(guarded[1], '\0');
}

/* The routers forward an error frame like any other: one NUL, at the very end. */
static void assert_single_trailing_nul(size_t n)
{
    assert_true(n >= 2 && n <= PROTO_ERROR_FRAME_MAX);
    assert_null(memchr(guarded, '\0', n - 1));
    assert_int_equal(guarded[n - 1], '\0');
}

static void a_reason_that_just_fits_is_not_truncated(void **state)
{
    (void)state;
    char reason[PROTO_ERROR_FRAME_MAX - 1];
    memset(reason, 'r', sizeof reason - 1); /* PROTO_ERROR_FRAME_MAX - 2 characters */
    reason[sizeof reason - 1] = '\0';
    reset_guarded();
    size_t n = proto_error_frame(guarded, "%s", reason);
    assert_int_equal(n, PROTO_ERROR_FRAME_MAX);
    assert_memory_equal(guarded + 1, reason, sizeof reason - 1);
    assert_single_trailing_nul(n);
    assert_guard_untouched();
}

static void a_reason_one_character_too_long_loses_that_character(void **state)
{
    (void)state;
    char reason[PROTO_ERROR_FRAME_MAX];
    memset(reason, 'r', sizeof reason - 2); /* PROTO_ERROR_FRAME_MAX - 2 characters, then 's' */
    reason[sizeof reason - 2] = 's';
    reason[sizeof reason - 1] = '\0';
    reset_guarded();
    size_t n = proto_error_frame(guarded, "%s", reason);
    assert_int_equal(n, PROTO_ERROR_FRAME_MAX);
    assert_int_equal(guarded[PROTO_ERROR_FRAME_MAX - 2], 'r');
    assert_single_trailing_nul(n);
    assert_guard_untouched();
}

static void a_very_long_reason_is_truncated_and_still_nul_terminated(void **state)
{
    (void)state;
    char reason[1000];
    memset(reason, 'x', sizeof reason - 1);
    reason[sizeof reason - 1] = '\0';
    reset_guarded();
    size_t n = proto_error_frame(guarded, "too long: %s", reason);
    assert_int_equal(n, PROTO_ERROR_FRAME_MAX);
    assert_memory_equal(guarded + 1, "too long: xxx", 13);
    assert_int_equal(guarded[PROTO_ERROR_FRAME_MAX - 2], 'x');
    assert_single_trailing_nul(n);
    assert_guard_untouched();
}

int main(void)
{
    for (size_t i = 0; i < sizeof long_payload; i++)
        long_payload[i] = (uint8_t)(i % 255 + 1);

    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_stream_split_at_any_point_gives_the_same_frames),
        cmocka_unit_test(a_stream_fed_byte_by_byte_completes_each_frame_at_its_nul),
        cmocka_unit_test(an_empty_payload_is_a_frame_of_just_the_nul),
        cmocka_unit_test(inputs_up_to_the_header_need_more),
        cmocka_unit_test(a_payload_without_its_nul_yet_needs_more),
        cmocka_unit_test(a_payload_of_exactly_max_bytes_is_complete),
        cmocka_unit_test(max_bytes_without_a_nul_yet_need_more),
        cmocka_unit_test(max_plus_one_bytes_without_a_nul_are_too_long),
        cmocka_unit_test(the_default_limit_is_enforced_at_its_boundary),
        cmocka_unit_test(a_zero_limit_allows_only_empty_payloads),
        cmocka_unit_test(the_largest_limit_does_not_overflow),
        cmocka_unit_test(high_bytes_pass_through_payload_and_id),
        cmocka_unit_test(only_the_first_frame_is_consumed),
        cmocka_unit_test(u32_is_written_big_endian),
        cmocka_unit_test(u32_round_trips_through_the_wire_format),
        cmocka_unit_test(an_error_frame_is_0xff_reason_nul),
        cmocka_unit_test(an_error_frame_with_an_empty_reason_is_two_bytes),
        cmocka_unit_test(a_reason_that_just_fits_is_not_truncated),
        cmocka_unit_test(a_reason_one_character_too_long_loses_that_character),
        cmocka_unit_test(a_very_long_reason_is_truncated_and_still_nul_terminated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
