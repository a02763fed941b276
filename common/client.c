/* client.c - see client.h. */
#include "client.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "clock.h"
#include "frame.h"
#include "net.h"
#include "proto.h"

int client_connect_raw(struct client *c, const char *host, uint16_t port)
{
    *c = (struct client){.fd = -1};
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV};
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    struct addrinfo *res;
    if (getaddrinfo(host, service, &hints, &res) != 0) {
        errno = EHOSTUNREACH;
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        int rc;
        do
            rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        while (rc < 0 && errno == EINTR);
        if (rc < 0) {
            int saved = errno;
            close(fd);
            errno = saved;
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        return -1;
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    c->fd = fd;
    return 0;
}

int client_connect(struct client *c, const char *host, uint16_t port, int timeout_ms)
{
    if (client_connect_raw(c, host, port) != 0)
        return -1;
    uint8_t id[PROTO_ID_LEN];
    int rc = client_recv_exact(c, id, sizeof id, timeout_ms);
    if (rc != 0) {
        client_close(c);
        errno = rc == CLIENT_TIMEOUT ? ETIMEDOUT : rc == CLIENT_CLOSED ? ECONNRESET : errno;
        return -1;
    }
    c->id = frame_get_u32(id);
    return 0;
}

void client_close(struct client *c)
{
    if (c->fd >= 0)
        close(c->fd);
    free(c->buf);
    *c = (struct client){.fd = -1};
}

int client_send_raw(struct client *c, const void *bytes, size_t len)
{
    return net_write_all(c->fd, bytes, len);
}

int client_send(struct client *c, uint32_t dest, const void *payload, size_t len)
{
    uint8_t header[PROTO_ID_LEN];
    frame_put_u32(header, dest);
    struct iovec iov[3] = {
        {.iov_base = header, .iov_len = sizeof header},
        {.iov_base = (void *)payload, .iov_len = len},
        {.iov_base = "", .iov_len = 1},
    };
    return net_writev_all(c->fd, iov, 3);
}

/* Wait for data and append what arrives to c->buf. Returns 0 or a CLIENT_* code. */
static int fill(struct client *c, int64_t deadline)
{
    if (c->cap - c->len < 4096) {
        size_t cap = c->cap ? c->cap * 2 : 65536;
        uint8_t *nb = realloc(c->buf, cap);
        if (!nb)
            return CLIENT_ERROR;
        c->buf = nb;
        c->cap = cap;
    }
    for (;;) {
        int wait = -1;
        if (deadline >= 0) {
            int64_t left = deadline - clock_now_ms();
            wait = left > 0 ? (int)left : 0;
        }
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int rc = poll(&p, 1, wait);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return CLIENT_ERROR;
        if (rc == 0)
            return CLIENT_TIMEOUT;
        ssize_t n = net_read(c->fd, c->buf + c->len, c->cap - c->len);
        if (n < 0)
            return errno == ECONNRESET ? CLIENT_CLOSED : CLIENT_ERROR;
        if (n == 0)
            return CLIENT_CLOSED;
        c->len += (size_t)n;
        return 0;
    }
}

static void consume(struct client *c, size_t n)
{
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
}

int client_recv_exact(struct client *c, void *buf, size_t len, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : clock_now_ms() + timeout_ms;
    while (c->len < len) {
        int rc = fill(c, deadline);
        if (rc != 0)
            return rc;
    }
    memcpy(buf, c->buf, len);
    consume(c, len);
    return 0;
}

ssize_t client_recv(struct client *c, void *buf, size_t cap, int timeout_ms)
{
    int64_t deadline = timeout_ms < 0 ? -1 : clock_now_ms() + timeout_ms;
    size_t scanned = 0;
    for (;;) {
        uint8_t *nul = c->len > scanned ? memchr(c->buf + scanned, '\0', c->len - scanned) : NULL;
        if (nul) {
            size_t n = (size_t)(nul - c->buf);
            if (n > cap) {
                consume(c, n + 1);
                return CLIENT_TOO_BIG;
            }
            memcpy(buf, c->buf, n);
            consume(c, n + 1);
            return (ssize_t)n;
        }
        scanned = c->len;
        int rc = fill(c, deadline);
        if (rc != 0)
            return rc;
    }
}
