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

#include "clock.h"
#include "log.h"
#include "net.h"
#include "work.h"

static const struct options *options; /* what server_start parsed */
static int signal_fd = -1;
static bool accept_starved;   /* out of descriptors: said once, until an accept succeeds again */
static int64_t next_stats_ms; /* when --stats-interval wants the next line */

static void shutdown_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGINT);
    sigaddset(set, SIGTERM);
}

/* Block the shutdown signals before any thread exists and before the router announces itself:
 * from then on one waits, pending, for the router to take it. */
static void block_shutdown_signals(bool with_signalfd)
{
    sigset_t set;
    shutdown_signals(&set);
    if (pthread_sigmask(SIG_BLOCK, &set, NULL) != 0)
        log_fatal("pthread_sigmask: cannot block SIGINT and SIGTERM");
    if (!with_signalfd)
        return;
    signal_fd = signalfd(-1, &set, SFD_CLOEXEC);
    if (signal_fd < 0)
        log_fatal("signalfd: %s", strerror(errno));
}

/* Fit --max-clients to the descriptors this process may open. */
static void fit_descriptors(const struct router_info *info, struct options *opt)
{
    char err[NET_ERR_LEN];
    size_t limit;
    if (net_setup_process(opt->max_clients + SERVER_RESERVED_FDS, &limit, err) != 0)
        log_fatal("%s", err);
    if (limit >= opt->max_clients + SERVER_RESERVED_FDS)
        return;
    if (limit <= SERVER_RESERVED_FDS)
        log_fatal("the open-file limit is %zu: %s needs more than %d (ulimit -n)", limit,
                  info->name, SERVER_RESERVED_FDS);
    size_t fits = limit - SERVER_RESERVED_FDS;
    log_warn("the open-file limit is %zu and cannot be raised: --max-clients lowered from %zu to "
             "%zu (raise it with ulimit -n)",
             limit, opt->max_clients, fits);
    opt->max_clients = fits;
}

int server_start(int argc, char **argv, const struct router_info *info, struct options *opt)
{
    options_parse(argc, argv, info, opt);
    options = opt;
    fit_descriptors(info, opt);
    block_shutdown_signals(!info->own_signals);
    if (opt->work_us > 0)
        work_calibrate();

    char err[NET_ERR_LEN];
    int fd = net_listen(opt->host, opt->port, err);
    if (fd < 0)
        log_fatal("%s", err);
    next_stats_ms = clock_now_ms() + opt->stats_interval_ms;
    net_announce(opt->host, net_local_port(fd));
    return fd;
}

int server_signal_fd(void)
{
    return signal_fd;
}

void server_signals_ready(void)
{
    sigset_t set;
    shutdown_signals(&set);
    if (pthread_sigmask(SIG_UNBLOCK, &set, NULL) != 0)
        log_fatal("pthread_sigmask: cannot unblock SIGINT and SIGTERM");
}

/* How long poll may wait before the next stats line is due: -1 if none is wanted. */
static int stats_wait_ms(void)
{
    if (options->stats_interval_ms == 0)
        return -1;
    int64_t left = next_stats_ms - clock_now_ms();
    return left > 0 ? (int)left : 0;
}

int server_wait_accept(int listen_fd)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = listen_fd, .events = POLLIN},
                              {.fd = signal_fd, .events = POLLIN}};
        int ready = poll(p, 2, stats_wait_ms());
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            log_warn("poll: %s", strerror(errno));
            return SERVER_STOP;
        }
        if (p[1].revents) {
            log_debug("shutdown signal received");
            return SERVER_STOP;
        }
        if (ready == 0) {
            next_stats_ms += options->stats_interval_ms;
            return SERVER_STATS;
        }
        int fd = net_accept(listen_fd);
        if (fd >= 0) {
            if (accept_starved)
                log_info("accept: accepting clients again");
            accept_starved = false;
            if (options->write_timeout_ms > 0 &&
                net_set_send_timeout(fd, options->write_timeout_ms) != 0)
                log_warn("setsockopt SO_SNDTIMEO: %s", strerror(errno));
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

void server_print_stats(const struct router_info *info, const struct stats *s)
{
    stats_print(info->name, "stats", s, options->work_us);
}

void server_finish(const struct router_info *info, const struct stats *s)
{
    stats_print(info->name, NULL, s, options->work_us);
}
