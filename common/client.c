/* client.c - see client.h. */
#include "client.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "net.h"
#include "proto.h"

int64_t client_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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
    uint8_t header[FRAME_HEADER_LEN];
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
            int64_t left = deadline - client_now_ms();
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
    int64_t deadline = timeout_ms < 0 ? -1 : client_now_ms() + timeout_ms;
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
    int64_t deadline = timeout_ms < 0 ? -1 : client_now_ms() + timeout_ms;
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

int router_spawn(char *const argv[], int stderr_fd, struct router_proc *r)
{
    int argc = 0;
    while (argv[argc])
        argc++;
    char **args = calloc((size_t)argc + 3, sizeof *args);
    if (!args)
        return -1;
    memcpy(args, argv, (size_t)argc * sizeof *args);
    args[argc] = "--port";
    args[argc + 1] = "0";

    int out[2];
    if (pipe2(out, O_CLOEXEC) != 0) {
        perror("pipe");
        free(args);
        return -1;
    }
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        close(out[0]);
        close(out[1]);
        free(args);
        return -1;
    }
    if (pid == 0) {
        /* The router starts with no signal blocked, whatever the harness thread had blocked:
         * a blocked SIGTERM would survive exec and make router_stop's signal go unseen. */
        sigset_t none;
        sigemptyset(&none);
        if (sigprocmask(SIG_SETMASK, &none, NULL) != 0 || dup2(out[1], STDOUT_FILENO) < 0 ||
            (stderr_fd >= 0 && dup2(stderr_fd, STDERR_FILENO) < 0))
            _exit(127);
        execv(args[0], args);
        fprintf(stderr, "exec %s: %s\n", args[0], strerror(errno));
        _exit(127);
    }
    free(args);
    close(out[1]);

    /* Read the first line, byte by byte so nothing after it is consumed. */
    char line[256];
    size_t n = 0;
    int64_t deadline = client_now_ms() + 5000;
    while (n + 1 < sizeof line) {
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        int64_t left = deadline - client_now_ms();
        if (left <= 0)
            break;
        int rc = poll(&p, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue; /* a signal for the harness is no reason to give up on the router */
        if (rc <= 0)
            break;
        char ch;
        if (net_read(out[0], &ch, 1) != 1)
            break;
        if (ch == '\n')
            break;
        line[n++] = ch;
    }
    line[n] = '\0';
    const char *colon = strrchr(line, ':');
    if (strncmp(line, "listening on ", 13) != 0 || !colon || atoi(colon + 1) <= 0) {
        fprintf(stderr, "%s did not report 'listening on HOST:PORT' (got '%s')\n", argv[0], line);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(out[0]);
        return -1;
    }
    r->pid = pid;
    r->port = (uint16_t)atoi(colon + 1);
    r->stdout_fd = out[0];
    return 0;
}

int router_stop(struct router_proc *r, int sig, int timeout_ms, int *status)
{
    int rc = -1;
    if (r->pid > 0) {
        kill(r->pid, sig);
        int64_t deadline = client_now_ms() + timeout_ms;
        for (;;) {
            pid_t w = waitpid(r->pid, status, WNOHANG);
            if (w == r->pid) {
                rc = 0;
                break;
            }
            if (w < 0 && errno != EINTR)
                break;
            if (client_now_ms() >= deadline) {
                kill(r->pid, SIGKILL);
                waitpid(r->pid, status, 0);
                break;
            }
            poll(NULL, 0, 10);
        }
    }
    if (r->stdout_fd >= 0)
        close(r->stdout_fd);
    r->pid = -1;
    r->stdout_fd = -1;
    return rc;
}

int proc_count_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static long status_field(pid_t pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, f))
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            v = strtol(line + klen + 1, NULL, 10);
            break;
        }
    fclose(f);
    return v;
}

int proc_count_threads(pid_t pid)
{
    return (int)status_field(pid, "Threads");
}

long proc_rss_kib(pid_t pid)
{
    return status_field(pid, "VmRSS");
}

long proc_peak_rss_kib(pid_t pid)
{
    return status_field(pid, "VmHWM");
}
