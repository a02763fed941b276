/*
 * fuzz_frame.c - libFuzzer target for frame_parse (make fuzz).
 *
 * The input is a small header that picks the parser's limit and where the reads split, then
 * the bytes a client sent. The stream is parsed three ways: all at once, in two reads, and in
 * many reads through a receive buffer that is compacted after every read, as the routers do.
 * Every way must give the same frames and end the same way, and every result must keep the
 * promises of frame.h. Any broken promise aborts, which libFuzzer reports as a crash.
 *
 *   byte 0      the limit: 0..239 as is, 240..254 in steps of 4096, 255 = SIZE_MAX
 *   bytes 1-2   where the two-read split falls (modulo the stream length + 1)
 *   byte 3      how many chunk sizes follow (0..7; 0 means 1-byte reads)
 *   ...         the chunk sizes, 1..256 bytes each, used in turn
 *   the rest    the stream
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sanitizer/asan_interface.h>

#include "frame.h"

#define check(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: broken promise: %s\n", __FILE__, __LINE__, #cond);             \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* How a parse of the whole stream went: the frames by offset, and how it stopped. */
struct outcome {
    size_t *starts; /* offset of each frame in the stream */
    size_t nframes;
    ssize_t last; /* FRAME_NEED_MORE or FRAME_TOO_LONG */
    size_t tail;  /* offset of the bytes left unparsed */
};

/* Checks one successful result against frame.h, for a frame at buf[0..len). */
static void check_frame(const uint8_t *buf, size_t len, size_t max, ssize_t used,
                        const struct frame *f)
{
    check((size_t)used <= len);
    check(f->body == buf + PROTO_ID_LEN); /* zero copy, right after the ID */
    check(f->body_len >= 1);
    check(f->body + f->body_len <= buf + len);
    check((size_t)used == PROTO_ID_LEN + f->body_len);
    check(f->body[f->body_len - 1] == '\0');
    check(memchr(f->body, '\0', f->body_len - 1) == NULL);
    check(f->body_len - 1 <= max);
    check(f->dest == frame_get_u32(buf));
}

/* Checks how a parse stopped: the bytes buf[0..len) really hold no complete frame, and
 * FRAME_TOO_LONG only when max + 1 payload bytes are there and none of them is a NUL. */
static void check_stop(const uint8_t *buf, size_t len, size_t max, ssize_t rc)
{
    check(rc == FRAME_NEED_MORE || rc == FRAME_TOO_LONG);
    if (len <= PROTO_ID_LEN) {
        check(rc == FRAME_NEED_MORE);
        return;
    }
    size_t avail = len - PROTO_ID_LEN;
    size_t window = avail <= max ? avail : max + 1;
    check(memchr(buf + PROTO_ID_LEN, '\0', window) == NULL);
    check((rc == FRAME_TOO_LONG) == (avail > max));
}

static void parse_whole(const uint8_t *s, size_t len, size_t max, struct outcome *o)
{
    o->nframes = 0;
    size_t off = 0;
    ssize_t rc;
    struct frame f;
    while ((rc = frame_parse(s + off, len - off, max, &f)) > 0) {
        check_frame(s + off, len - off, max, rc, &f);
        o->starts[o->nframes++] = off;
        off += (size_t)rc;
    }
    check_stop(s + off, len - off, max, rc);
    o->last = rc;
    o->tail = off;
}

/*
 * Feeds the stream to a router-style receive buffer in reads of the given sizes and checks
 * each frame against the whole-stream parse. The part of the buffer that no read has filled
 * yet is poisoned, so AddressSanitizer catches the parser reading past what has arrived.
 */
static void parse_in_reads(const uint8_t *s, size_t len, size_t max, const struct outcome *whole,
                           const uint8_t *sizes, size_t nsizes)
{
    size_t cap = len ? len : 1;
    uint8_t *rbuf = malloc(cap);
    check(rbuf != NULL);
    size_t rlen = 0, fed = 0, nframes = 0, consumed = 0, read_no = 0;
    ssize_t rc = FRAME_NEED_MORE;
    while (fed < len && rc == FRAME_NEED_MORE) {
        size_t n = nsizes ? (size_t)sizes[read_no++ % nsizes] + 1 : 1;
        if (n > len - fed)
            n = len - fed;
        ASAN_UNPOISON_MEMORY_REGION(rbuf, cap);
        memcpy(rbuf + rlen, s + fed, n);
        rlen += n;
        fed += n;
        ASAN_POISON_MEMORY_REGION(rbuf + rlen, cap - rlen);

        size_t off = 0;
        struct frame f;
        while ((rc = frame_parse(rbuf + off, rlen - off, max, &f)) > 0) {
            check_frame(rbuf + off, rlen - off, max, rc, &f);
            check(nframes < whole->nframes);
            check(consumed + off == whole->starts[nframes]);
            check(memcmp(f.body, s + whole->starts[nframes] + PROTO_ID_LEN, f.body_len) == 0);
            nframes++;
            off += (size_t)rc;
        }
        check_stop(rbuf + off, rlen - off, max, rc);
        memmove(rbuf, rbuf + off, rlen - off);
        rlen -= off;
        consumed += off;
    }
    ASAN_UNPOISON_MEMORY_REGION(rbuf, cap);
    free(rbuf);
    /* The same frames, stopped at the same place for the same reason. */
    check(nframes == whole->nframes);
    check(consumed == whole->tail);
    check(rc == whole->last);
}

/* The first read ends at k: the frames of the whole parse that fit in it come out first. */
static void parse_in_two(const uint8_t *s, size_t len, size_t max, const struct outcome *whole,
                         size_t k)
{
    /* An exact-size copy of the first read, so reading past it is caught. */
    uint8_t *piece = malloc(k ? k : 1);
    check(piece != NULL);
    memcpy(piece, s, k);
    struct outcome first;
    first.starts = malloc((k / (PROTO_ID_LEN + 1) + 1) * sizeof *first.starts);
    check(first.starts != NULL);
    parse_whole(piece, k, max, &first);
    free(piece);
    check(first.nframes <= whole->nframes);
    for (size_t i = 0; i < first.nframes; i++)
        check(first.starts[i] == whole->starts[i]);
    if (first.last == FRAME_TOO_LONG) {
        check(whole->last == FRAME_TOO_LONG && whole->nframes == first.nframes);
        check(first.tail == whole->tail);
    } else {
        /* The rest of the stream continues from the first read's leftover bytes. */
        struct outcome rest;
        size_t start = first.tail;
        rest.starts = malloc(((len - start) / (PROTO_ID_LEN + 1) + 1) * sizeof *rest.starts);
        check(rest.starts != NULL);
        parse_whole(s + start, len - start, max, &rest);
        check(first.nframes + rest.nframes == whole->nframes);
        for (size_t i = 0; i < rest.nframes; i++)
            check(start + rest.starts[i] == whole->starts[first.nframes + i]);
        check(start + rest.tail == whole->tail);
        check(rest.last == whole->last);
        free(rest.starts);
    }
    free(first.starts);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    size_t max = data[0] < 240   ? data[0]
                 : data[0] < 255 ? (size_t)(data[0] - 239) * 4096
                                 : SIZE_MAX;
    size_t split = (size_t)data[1] << 8 | data[2];
    size_t nsizes = data[3] % 8;
    if (size < 4 + nsizes)
        return 0;
    const uint8_t *sizes = data + 4;
    const uint8_t *s = data + 4 + nsizes;
    size_t len = size - 4 - nsizes;

    /* Each frame takes at least PROTO_ID_LEN + 1 bytes. */
    struct outcome whole;
    whole.starts = malloc((len / (PROTO_ID_LEN + 1) + 1) * sizeof *whole.starts);
    check(whole.starts != NULL);
    parse_whole(s, len, max, &whole);
    parse_in_two(s, len, max, &whole, split % (len + 1));
    parse_in_reads(s, len, max, &whole, sizes, nsizes);
    free(whole.starts);
    return 0;
}
