/*
 * net.h - socket plumbing shared by every router, in the manner of Redis's anet.c.
 *
 * Functions that can fail for a reason worth telling return -1 and write a message into err
 * ("bind 127.0.0.1:8080: Address already in use"). The I/O helpers retry on EINTR and finish
 * partial writes, so no router repeats those loops. SIGPIPE is ignored once, in net_setup_process,
 * so a write to a vanished peer returns EPIPE instead of killing the router.
 */
#ifndef NET_H
#define NET_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define NET_ERR_LEN 256

/* Ignore SIGPIPE; raise RLIMIT_NOFILE toward want_fds, as far as the hard limit allows, and
 * store the limit now in force in *limit. Returns 0, or -1 with a message. */
int net_setup_process(size_t want_fds, size_t *limit, char err[NET_ERR_LEN]);

/* A listening TCP socket bound to host:port (SO_REUSEADDR). Returns the fd or -1. */
int net_listen(const char *host, uint16_t port, char err[NET_ERR_LEN]);

/* The port a bound socket actually got (for --port 0). */
uint16_t net_local_port(int fd);

/* Accept one client; returns its fd (TCP_NODELAY set), or -1 with errno (EAGAIN, EMFILE...). */
int net_accept(int listen_fd);

/* read(2) that retries on EINTR. Returns bytes read, 0 at EOF, -1 on error. */
ssize_t net_read(int fd, void *buf, size_t len);

/* Write all of buf, retrying on EINTR and partial writes. Returns 0, or -1 with errno.
 * On a non-blocking socket it returns -1/EAGAIN only if nothing at all could be written. On a
 * blocking socket with a send timeout (net_set_send_timeout), a write that moved no byte for
 * that long returns -1 with errno ETIMEDOUT: the peer is not reading. */
int net_write_all(int fd, const void *buf, size_t len);

/* The same for a vector of buffers; iov is modified in place. */
int net_writev_all(int fd, struct iovec *iov, int iovcnt);

/*
 * Before the router closes a connection it chose to end (a frame too long), while the client
 * may still be sending: shut the sending side, so a FIN follows the bytes already queued, then
 * read and discard until the client closes too or timeout_ms pass. close(2) on a socket with
 * unread input sends a reset instead, and a reset makes the client's kernel throw away what the
 * client has not read yet: the last frames, and the error frame that says why. The caller
 * still closes fd.
 */
void net_linger(int fd, int timeout_ms);
#define NET_LINGER_MS 2000

int net_set_nonblocking(int fd);
int net_set_sndbuf(int fd, int bytes);
/* SO_SNDTIMEO: a blocking write that can move no byte for ms milliseconds fails. */
int net_set_send_timeout(int fd, unsigned ms);

/* One line on stdout, flushed: "listening on HOST:PORT". Test and bench harnesses wait for it. */
void net_announce(const char *host, uint16_t port);

#endif
