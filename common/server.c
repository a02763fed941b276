/* server.c - see server.h. */
#include "server.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "log.h"
#include "net.h"

static int signal_fd = -1;
static bool accept_starved; /* out of descriptors: said once, until an accept succeeds again */

/* Block the shutdown signals before any thread exists, so every thread inherits the mask and
 * only the signalfd sees them: no handler runs at an arbitrary point in an arbitrary thread. */
static void catch_shutdown_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        log_fatal("pthread_sigmask: cannot block SIGINT and SIGTERM");
    signal_fd = signalfd(-1, &set, SFD_CLOEXEC);
    if (signal_fd < 0)
        log_fatal("signalfd: %s", strerror(errno));
}

int server_start(int argc, char **argv, const struct router_info *info, struct options *opt)
{
    options_parse(argc, argv, info, opt);

    char err[NET_ERR_LEN];
    /* Each client is one fd; leave room for the listener, stdio and a few spares. */
    if (net_setup_process(opt->max_clients + 64, err) != 0)
        log_fatal("%s", err);

    if (!info->own_signals)
        catch_shutdown_signals();

    int fd = net_listen(opt->host, opt->port, err);
    if (fd < 0)
        log_fatal("%s", err);
    net_announce(opt->host, net_local_port(fd));
    return fd;
}

int server_wait_accept(int listen_fd)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = listen_fd, .events = POLLIN},
                              {.fd = signal_fd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            log_warn("poll: %s", strerror(errno));
            return -1;
        }
        if (p[1].revents) {
            log_debug("shutdown signal received");
            return -1;
        }
        int fd = net_accept(listen_fd);
        if (fd >= 0) {
            if (accept_starved)
                log_info("accept: accepting clients again");
            accept_starved = false;
            return fd;
        }
        switch (errno) {
        case EAGAIN:
        case ECONNABORTED:
        case EPROTO:
            break; /* the client gave up between poll and accept */
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM:
            /* Out of descriptors or memory: the pending client stays in the backlog and poll
             * would report it again at once. Back off instead of spinning the CPU. */
            if (!accept_starved)
                log_warn("accept: %s (retrying every 100 ms)", strerror(errno));
            accept_starved = true;
            poll(NULL, 0, 100);
            break;
        default:
            log_warn("accept: %s", strerror(errno));
            break;
        }
    }
}

void server_finish(const struct router_info *info, const struct stats *s)
{
    stats_print_summary(info->name, s);
}
