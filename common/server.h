/*
 * server.h - what every router does before and after its pattern, so an impl-* file holds
 * only the way it shares state.
 *
 *   int listen_fd = server_start(argc, argv, &info, &opt);   // parse, limits, bind, announce
 *   ... the pattern ...
 *   server_finish(&info, &stats);                              // summary on stderr
 *
 * Threaded routers stop through server_wait_accept(): SIGINT and SIGTERM are blocked in every
 * thread by server_start (threads created later inherit the mask) and delivered through a
 * signalfd that server_wait_accept polls beside the listening socket. The reactor does not use
 * it: libuv's uv_signal_t does the same job inside its loop.
 */
#ifndef SERVER_H
#define SERVER_H

#include "options.h"
#include "stats.h"

/* Parse options, set up the process, bind, print "listening on". Exits on any failure. */
int server_start(int argc, char **argv, const struct router_info *info, struct options *opt);

/*
 * Block until a client connects or a shutdown signal arrives. Returns the client's fd (blocking
 * mode, TCP_NODELAY), or -1 when the router should shut down. Transient accept failures are
 * logged and retried; EMFILE/ENFILE back off for 100 ms instead of spinning the CPU.
 */
int server_wait_accept(int listen_fd);

/* Print the summary line to stderr. The caller then returns 0 from main. */
void server_finish(const struct router_info *info, const struct stats *s);

#endif
