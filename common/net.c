/* net.c - see net.h. */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "clock.h"

int net_setup_process(size_t want_fds, size_t *limit, char err[NET_ERR_LEN])
{
    struct sigaction sa = {.sa_handler = SIG_IGN};
    if (sigaction(SIGPIPE, &sa, NULL) != 0) {
        snprintf(err, NET_ERR_LEN, "ignore SIGPIPE: %s", strerror(errno));
        return -1;
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        snprintf(err, NET_ERR_LEN, "getrlimit: %s", strerror(errno));
        return -1;
    }
    if (rl.rlim_cur < want_fds) {
        rl.rlim_cur = want_fds < rl.rlim_max ? want_fds : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            snprintf(err, NET_ERR_LEN, "setrlimit: %s", strerror(errno));
            return -1;
        }
    }
    *limit = rl.rlim_cur == RLIM_INFINITY ? SIZE_MAX : (size_t)rl.rlim_cur;
    return 0;
}

int net_listen(const char *host, uint16_t port, char err[NET_ERR_LEN])
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    struct addrinfo *res;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        snprintf(err, NET_ERR_LEN, "resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    const char *step = "socket";
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        step = "socket"; /* the message names the step that failed for the last address */
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0)
            continue;
        int one = 1;
        step = "setsockopt SO_REUSEADDR";
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0) {
            step = "bind";
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
                step = "listen";
                if (listen(fd, SOMAXCONN) == 0)
                    break;
            }
        }
        int saved = errno;
        close(fd);
        errno = saved;
        fd = -1;
    }
    if (fd < 0)
        snprintf(err, NET_ERR_LEN, "%s %s:%u: %s", step, host, port, strerror(errno));
    freeaddrinfo(res);
    return fd;
}

uint16_t net_local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

int net_accept(int listen_fd)
{
    int fd;
    do
        fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return -1;
    int one = 1;
    /* Frames are small and latency matters: do not let Nagle hold them back. */
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

ssize_t net_read(int fd, void *buf, size_t len)
{
    ssize_t n;
    do
        n = read(fd, buf, len);
    while (n < 0 && errno == EINTR);
    return n;
}

int net_write_all(int fd, const void *buf, size_t len)
{
    struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
    return net_writev_all(fd, &iov, 1);
}

int net_writev_all(int fd, struct iovec *iov, int iovcnt)
{
    size_t written = 0;
    while (iovcnt > 0) {
        if (iov->iov_len == 0) {
            iov++;
            iovcnt--;
            continue;
        }
        ssize_t n = writev(fd, iov, iovcnt > IOV_MAX ? IOV_MAX : iovcnt);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                int flags = fcntl(fd, F_GETFL);
                if (flags >= 0 && !(flags & O_NONBLOCK)) {
                    errno = ETIMEDOUT; /* blocking: SO_SNDTIMEO passed with no byte moved */
                    return -1;
                }
                if (written > 0) {
                    /* Non-blocking socket, part already sent: wait until it can take more. */
                    struct pollfd p = {.fd = fd, .events = POLLOUT};
                    if (poll(&p, 1, -1) < 0 && errno != EINTR)
                        return -1;
                    continue;
                }
                errno = EAGAIN;
            }
            return -1;
        }
        written += (size_t)n;
        for (size_t left = (size_t)n; left > 0;) {
            size_t take = left < iov->iov_len ? left : iov->iov_len;
            iov->iov_base = (char *)iov->iov_base + take;
            iov->iov_len -= take;
            left -= take;
            if (iov->iov_len == 0) {
                iov++;
                iovcnt--;
            }
        }
    }
    return 0;
}

void net_linger(int fd, int timeout_ms)
{
    if (shutdown(fd, SHUT_WR) != 0)
        return; /* not connected any more: nothing left to deliver */
    int64_t deadline = clock_now_ms() + timeout_ms;
    char sink[4096];
    for (;;) {
        int64_t left = deadline - clock_now_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int rc = left > 0 ? poll(&p, 1, (int)left) : 0;
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0 || net_read(fd, sink, sizeof sink) <= 0)
            return; /* timed out, the client closed, or the connection failed */
    }
}

int net_set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0)
        return -1;
    return fcntl(fd, F_SETFL, flags | O_NONBLOCK);
}

int net_set_send_timeout(int fd, unsigned ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

int net_set_sndbuf(int fd, int bytes)
{
    return setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bytes, sizeof bytes);
}

void net_announce(const char *host, uint16_t port)
{
    printf("listening on %s:%u\n", host, port);
    fflush(stdout);
}
