/*
 * router_proc.h - a router as a child process: start it on a free port, stop it with a signal.
 * The conformance suite, the race driver and the unit tests use it; it knows only the command
 * line conventions every router follows (--port 0, the "listening on HOST:PORT" line).
 *
 *   struct router_proc r;
 *   router_proc_start(argv, -1, &r);          // argv[0] is the router; "--port 0" is appended
 *   ... connect to 127.0.0.1:r.port ...
 *   router_proc_stop(&r, SIGTERM, 5000, &status);
 */
#ifndef ROUTER_PROC_H
#define ROUTER_PROC_H

#include <stdint.h>
#include <sys/types.h>

struct router_proc {
    pid_t pid;
    uint16_t port;
    int stdout_fd; /* the rest of the router's stdout */
};

/*
 * Start argv (argv[0] a path, NULL-terminated) with "--port 0" appended, wait up to 5 s for its
 * "listening on HOST:PORT" line, and fill *r. stderr is inherited unless stderr_fd >= 0, in
 * which case it is redirected there. Returns 0, or -1 with a message on stderr.
 */
int router_proc_start(char *const argv[], int stderr_fd, struct router_proc *r);

/* The same, with the router's open-file limit (soft and hard) set to nofile, if it is > 0. */
int router_proc_start_limited(char *const argv[], int stderr_fd, long nofile,
                              struct router_proc *r);

/*
 * Send sig, wait up to timeout_ms for the router to exit, then SIGKILL it. Returns 0 and the
 * wait status in *status if it exited by itself, -1 if it had to be killed.
 */
int router_proc_stop(struct router_proc *r, int sig, int timeout_ms, int *status);

#endif
