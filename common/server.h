/*
 * server.h - what every router does before and after its pattern, so an impl-* file holds
 * only the way it shares state.
 *
 *   int listen_fd = server_start(argc, argv, &info, &opt);   // parse, limits, bind, announce
 *   ... the pattern ...
 *   server_finish(&info, &stats);                              // summary on stderr
 *
 * SIGINT and SIGTERM are blocked by server_start before "listening on" is printed, and before
 * any thread exists, so every thread inherits the mask: a signal that comes at any moment from
 * then on waits, pending, until the router is ready for it, and never runs a handler at an
 * arbitrary point in an arbitrary thread. Threaded routers receive them through a signalfd that
 * server_wait_accept polls beside the listening socket (a hand-written poll loop can poll
 * server_signal_fd itself). A router with own_signals (libuv's uv_signal_t) installs its
 * handlers, then calls server_signals_ready to let them through.
 *
 * Descriptors: each client holds one, and the router needs SERVER_RESERVED_FDS more of its own.
 * server_start raises the open-file limit as far as the hard limit allows; if that cannot fit
 * --max-clients, it lowers --max-clients to fit and says so (as Redis does with maxclients), so
 * a client over the limit gets "server full" instead of hitting the limit in accept.
 */
#ifndef SERVER_H
#define SERVER_H

#include "options.h"
#include "stats.h"

#define SERVER_RESERVED_FDS 32 /* stdio, the listener, the signalfd or libuv's, spares */

#define SERVER_STOP (-1)  /* server_wait_accept: SIGINT or SIGTERM, shut down */
#define SERVER_STATS (-2) /* server_wait_accept: --stats-interval passed, print the counters */

/* Parse options, set up the process, bind, print "listening on". Exits on any failure. Calls
 * work_calibrate() if --work-us is set. */
int server_start(int argc, char **argv, const struct router_info *info, struct options *opt);

/*
 * Block until a client connects, a shutdown signal arrives, or (with --stats-interval) it is
 * time for a stats line. Returns the client's fd (blocking mode, TCP_NODELAY, and the write
 * deadline of --write-timeout: SO_SNDTIMEO), SERVER_STOP or SERVER_STATS. Transient accept
 * failures are logged and retried; EMFILE/ENFILE back off for 100 ms instead of spinning.
 */
int server_wait_accept(int listen_fd);

/* The signalfd that reports SIGINT and SIGTERM (routers without own_signals), for a router
 * that polls it in its own loop. Read it with read(2) when it is readable, then shut down. */
int server_signal_fd(void);

/* own_signals: the router's own handlers are in place; unblock SIGINT and SIGTERM. */
void server_signals_ready(void);

/* The counters, as a "stats:" line on stderr (--stats-interval). */
void server_print_stats(const struct router_info *info, const struct stats *s);

/* Print the summary line to stderr. The caller then returns 0 from main. */
void server_finish(const struct router_info *info, const struct stats *s);

#endif
