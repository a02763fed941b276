/*
 * client.h - a small blocking client for the router protocol, for the conformance suite, the
 * race driver and the unit tests. (router_proc.h starts the router it talks to.)
 *
 *   struct client a, b;
 *   client_connect(&a, "127.0.0.1", r.port, 1000);   // reads a.id
 *   client_connect(&b, "127.0.0.1", r.port, 1000);
 *   client_send(&a, b.id, "hi", 2);
 *   char buf[64];
 *   ssize_t n = client_recv(&b, buf, sizeof buf, 1000); // n == 2, buf = "hi"
 *   client_close(&a); client_close(&b);
 */
#ifndef CLIENT_H
#define CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* client_recv results besides a length >= 0 */
#define CLIENT_ERROR (-1)   /* errno says why */
#define CLIENT_TIMEOUT (-2) /* nothing complete within the timeout */
#define CLIENT_CLOSED (-3)  /* the router closed the connection */
#define CLIENT_TOO_BIG (-4) /* the frame does not fit the caller's buffer */

struct client {
    int fd;
    uint32_t id;
    uint8_t *buf; /* bytes received but not yet returned */
    size_t len, cap;
};

/* Connect and read the 4-byte ID, waiting at most timeout_ms. Returns 0 or -1 (errno set). */
int client_connect(struct client *c, const char *host, uint16_t port, int timeout_ms);
/* Connect without reading the ID (to test what arrives first). Returns 0 or -1. */
int client_connect_raw(struct client *c, const char *host, uint16_t port);
void client_close(struct client *c);

/* Send one frame: dest, payload, NUL. Returns 0 or -1. */
int client_send(struct client *c, uint32_t dest, const void *payload, size_t len);
/* Send raw bytes as they are (split frames, garbage). Returns 0 or -1. */
int client_send_raw(struct client *c, const void *bytes, size_t len);

/*
 * Receive one router-to-client frame. Copies the payload (without its NUL) into buf and returns
 * its length, or one of the CLIENT_* codes. An error frame arrives like any other: its first
 * byte is PROTO_ERROR_BYTE. timeout_ms < 0 waits forever.
 */
ssize_t client_recv(struct client *c, void *buf, size_t cap, int timeout_ms);

/* Read exactly len raw bytes (e.g. the ID of a raw connection). Returns 0, or a CLIENT_* code. */
int client_recv_exact(struct client *c, void *buf, size_t len, int timeout_ms);

#endif
