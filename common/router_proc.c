/* router_proc.c - see router_proc.h. */
#include "router_proc.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "clock.h"
#include "net.h"

int router_proc_start(char *const argv[], int stderr_fd, struct router_proc *r)
{
    return router_proc_start_limited(argv, stderr_fd, 0, r);
}

int router_proc_start_limited(char *const argv[], int stderr_fd, long nofile, struct router_proc *r)
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
        struct rlimit limit = {.rlim_cur = (rlim_t)nofile, .rlim_max = (rlim_t)nofile};
        if (sigprocmask(SIG_SETMASK, &none, NULL) != 0 || dup2(out[1], STDOUT_FILENO) < 0 ||
            (stderr_fd >= 0 && dup2(stderr_fd, STDERR_FILENO) < 0) ||
            (nofile > 0 && setrlimit(RLIMIT_NOFILE, &limit) != 0))
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
    int64_t deadline = clock_now_ms() + 5000;
    while (n + 1 < sizeof line) {
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        int64_t left = deadline - clock_now_ms();
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

int router_proc_stop(struct router_proc *r, int sig, int timeout_ms, int *status)
{
    int rc = -1;
    if (r->pid > 0) {
        kill(r->pid, sig);
        int64_t deadline = clock_now_ms() + timeout_ms;
        for (;;) {
            pid_t w = waitpid(r->pid, status, WNOHANG);
            if (w == r->pid) {
                rc = 0;
                break;
            }
            if (w < 0 && errno != EINTR)
                break;
            if (clock_now_ms() >= deadline) {
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
