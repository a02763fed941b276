/* payload.c - see payload.h. */
#include "payload.h"

#include <string.h>

#define PAD_OFFSETS 61 /* a prime, so neighbouring frames never share an offset */

static uint8_t pattern[PAYLOAD_MAX_LEN + PAD_OFFSETS];
static const char hex[] = "0123456789abcdef";

void payload_init(void)
{
    /* Printable bytes from '!' to '~', in an order that does not repeat with a short period. */
    for (size_t i = 0; i < sizeof pattern; i++)
        pattern[i] = (uint8_t)('!' + (i * 31 + (i >> 7)) % 94);
}

static void put_hex(uint8_t *dst, uint64_t v, int digits)
{
    for (int i = digits - 1; i >= 0; i--) {
        dst[i] = (uint8_t)hex[v & 15];
        v >>= 4;
    }
}

/* Returns -1 if any of the digits is not lowercase hex. */
static int64_t get_hex(const uint8_t *src, int digits)
{
    int64_t v = 0;
    for (int i = 0; i < digits; i++) {
        uint8_t ch = src[i];
        int d = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* FNV-1a over the header fields and the length, folded to 16 bits. */
static uint16_t check_of(const uint8_t *header, size_t len)
{
    uint32_t h = 2166136261u;
    for (int i = 0; i < 24; i++)
        h = (h ^ header[i]) * 16777619u;
    for (int i = 0; i < 4; i++)
        h = (h ^ (uint8_t)(len >> (8 * i))) * 16777619u;
    return (uint16_t)(h ^ h >> 16);
}

void payload_write(uint8_t *dst, size_t len, const struct payload_info *p)
{
    put_hex(dst, p->sender, 4);
    put_hex(dst + 4, p->seq, 8);
    put_hex(dst + 12, p->time_ns & 0xFFFFFFFFFFFFull, 12);
    put_hex(dst + 24, check_of(dst, len), 4);
    memcpy(dst + PAYLOAD_HEADER_LEN, pattern + p->seq % PAD_OFFSETS, len - PAYLOAD_HEADER_LEN);
}

int payload_read(const uint8_t *src, size_t len, struct payload_info *out)
{
    if (len < PAYLOAD_HEADER_LEN || len > PAYLOAD_MAX_LEN)
        return -1;
    int64_t sender = get_hex(src, 4), seq = get_hex(src + 4, 8), t = get_hex(src + 12, 12);
    int64_t check = get_hex(src + 24, 4);
    if (sender < 0 || seq < 0 || t < 0 || check != check_of(src, len))
        return -1;
    if (memcmp(src + PAYLOAD_HEADER_LEN, pattern + seq % PAD_OFFSETS, len - PAYLOAD_HEADER_LEN))
        return -1;
    out->sender = (uint32_t)sender;
    out->seq = (uint32_t)seq;
    out->time_ns = (uint64_t)t;
    return 0;
}
