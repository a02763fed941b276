/*
 * payload.h - the benchmark's self-checking payload.
 *
 * Every frame loadgen sends says who sent it, its place in its stream and when it was meant
 * to leave, so the receiving end can check it without any shared table: a frame that arrives
 * at the wrong connection, twice, out of order, cut or mixed with another is caught. The
 * payload is printable ASCII, never NUL (the frame terminator) and never 0xFF (which starts
 * an error frame):
 *
 *   [0, 4)    sender   loadgen's index of the sending connection, 4 hex digits
 *   [4, 12)   seq      the frame's number in its sender's stream, 8 hex digits
 *   [12, 24)  time     nanoseconds since loadgen started (its intended send time), 12 hex
 *   [24, 28)  check    16-bit hash of bytes [0, 24) and of the payload length, 4 hex
 *   [28, len) padding  a fixed pattern entered at an offset that depends on seq
 *
 * The padding is compared with memcmp, so checking a 4 KiB frame costs little more than
 * receiving it.
 */
#ifndef PAYLOAD_H
#define PAYLOAD_H

#include <stddef.h>
#include <stdint.h>

#define PAYLOAD_HEADER_LEN 28
#define PAYLOAD_MAX_LEN 65536
#define PAYLOAD_MAX_SENDER 0xFFFFu

struct payload_info {
    uint32_t sender;
    uint32_t seq;
    uint64_t time_ns; /* 48 bits: about 78 hours */
};

/* Build the padding pattern. Call once before the others. */
void payload_init(void);

/* Write a payload of exactly len bytes (PAYLOAD_HEADER_LEN <= len <= PAYLOAD_MAX_LEN). */
void payload_write(uint8_t *dst, size_t len, const struct payload_info *p);

/* Decode and verify a received payload. Returns 0 and fills *out, or -1 if it is corrupt. */
int payload_read(const uint8_t *src, size_t len, struct payload_info *out);

#endif
