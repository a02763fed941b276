/* options.c - see options.h. */
#include "options.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

static void usage(FILE *out, const struct router_info *info)
{
    fprintf(out,
            "usage: %s [options]\n"
            "%s\n\n"
            "  --host ADDR        address to bind (default %s)\n"
            "  --port N           port to bind, 0 for any free port (default %d)\n"
            "  --ids MODE         sequential (default, from 1) or random\n"
            "  --max-message N    longest payload in bytes (default %d)\n"
            "  --max-clients N    clients connected at once (default %d)\n"
            "  --max-pending N    bytes queued for one destination before its senders wait"
            " (default %d)\n"
            "  --no-error-frames  never send error frames\n"
            "  --write-timeout S  disconnect a client whose output makes no progress for S\n"
            "                     seconds: a slow consumer (default %g; 0: never)\n"
            "  --work-us N        N microseconds of CPU work per forwarded frame (default 0)\n"
            "  --stats-interval S print the counters every S seconds (default 0: only at exit)\n"
            "  --verbose          log every connection\n"
            "  --quiet            log only warnings\n"
            "  --help, --version\n",
            info->name, info->summary, OPTIONS_DEFAULT_HOST, OPTIONS_DEFAULT_PORT,
            OPTIONS_DEFAULT_MAX_MESSAGE, OPTIONS_DEFAULT_MAX_CLIENTS, OPTIONS_DEFAULT_MAX_PENDING,
            OPTIONS_DEFAULT_WRITE_TIMEOUT_MS / 1000.0);
    for (const struct router_option *o = info->options; o && o->name; o++)
        fprintf(out, "%s\n", o->help);
    if (info->variants) {
        fprintf(out, "  --variant NAME     one of:\n");
        for (int i = 0; info->variants[i]; i++)
            fprintf(out, "      %-22s %s%s\n", info->variants[i], info->variant_help[i],
                    i == 0 ? " (default)" : "");
    }
}

static _Noreturn void bad_usage(const struct router_info *info, const char *fmt, const char *arg)
{
    fprintf(stderr, "%s: ", info->name);
    fprintf(stderr, fmt, arg);
    fputs("\n", stderr);
    usage(stderr, info);
    exit(2);
}

static size_t parse_size(const struct router_info *info, const char *opt, const char *s, size_t min,
                         size_t max)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || v < min || v > max) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s wants a number from %zu to %zu, got '%%s'", opt, min, max);
        bad_usage(info, msg, s);
    }
    return (size_t)v;
}

/* A duration in seconds, with up to millisecond precision ("10", "0.5"), from 0 to max_s. */
static unsigned parse_seconds_ms(const struct router_info *info, const char *opt, const char *s,
                                 unsigned max_s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= 0 && v <= max_s)) {
        char msg[128];
        snprintf(msg, sizeof msg, "%s wants seconds from 0 to %u, got '%%s'", opt, max_s);
        bad_usage(info, msg, s);
    }
    return (unsigned)(v * 1000 + 0.5);
}

void options_parse(int argc, char **argv, const struct router_info *info, struct options *opt)
{
    enum {
        O_HOST = 256,
        O_PORT,
        O_IDS,
        O_MAX_MESSAGE,
        O_MAX_CLIENTS,
        O_MAX_PENDING,
        O_NO_ERR,
        O_WRITE_TIMEOUT,
        O_WORK_US,
        O_STATS_INTERVAL,
        O_VARIANT,
        O_VERBOSE,
        O_QUIET,
        O_HELP,
        O_VERSION,
        O_OWN /* the router's own options: O_OWN + their index */
    };
    static const struct option common[] = {
        {"host", required_argument, 0, O_HOST},
        {"port", required_argument, 0, O_PORT},
        {"ids", required_argument, 0, O_IDS},
        {"max-message", required_argument, 0, O_MAX_MESSAGE},
        {"max-clients", required_argument, 0, O_MAX_CLIENTS},
        {"max-pending", required_argument, 0, O_MAX_PENDING},
        {"no-error-frames", no_argument, 0, O_NO_ERR},
        {"write-timeout", required_argument, 0, O_WRITE_TIMEOUT},
        {"work-us", required_argument, 0, O_WORK_US},
        {"stats-interval", required_argument, 0, O_STATS_INTERVAL},
        {"variant", required_argument, 0, O_VARIANT},
        {"verbose", no_argument, 0, O_VERBOSE},
        {"quiet", no_argument, 0, O_QUIET},
        {"help", no_argument, 0, O_HELP},
        {"version", no_argument, 0, O_VERSION},
        {0, 0, 0, 0},
    };
    struct option longopts[sizeof common / sizeof *common + ROUTER_OPTIONS_MAX];
    int n = 0, own = 0;
    while (common[n].name) {
        longopts[n] = common[n];
        n++;
    }
    for (; info->options && info->options[own].name; own++) {
        if (own == ROUTER_OPTIONS_MAX)
            log_fatal("%s has more than %d options of its own", info->name, ROUTER_OPTIONS_MAX);
        longopts[n++] = (struct option){info->options[own].name, required_argument, 0, O_OWN + own};
    }
    longopts[n] = (struct option){0, 0, 0, 0};

    log_set_program(info->name);
    *opt = (struct options){
        .host = OPTIONS_DEFAULT_HOST,
        .port = OPTIONS_DEFAULT_PORT,
        .ids = IDS_SEQUENTIAL,
        .max_message = OPTIONS_DEFAULT_MAX_MESSAGE,
        .max_clients = OPTIONS_DEFAULT_MAX_CLIENTS,
        .max_pending = OPTIONS_DEFAULT_MAX_PENDING,
        .error_frames = true,
        .write_timeout_ms = OPTIONS_DEFAULT_WRITE_TIMEOUT_MS,
        .variant = info->variants ? info->variants[0] : NULL,
    };

    opterr = 0; /* we print our own message */
    optind = 0; /* glibc: rescan from argv[1] and forget any earlier argv, so a second call
                   (tests do this) does not resume the first one's state */
    int c;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
        if (c >= O_OWN && c < O_OWN + own) {
            const char *bad = info->options[c - O_OWN].parse(optarg);
            if (bad)
                bad_usage(info, bad, optarg);
            continue;
        }
        switch (c) {
        case O_HOST:
            opt->host = optarg;
            break;
        case O_PORT:
            opt->port = (uint16_t)parse_size(info, "--port", optarg, 0, 65535);
            break;
        case O_IDS:
            if (strcmp(optarg, "sequential") == 0)
                opt->ids = IDS_SEQUENTIAL;
            else if (strcmp(optarg, "random") == 0)
                opt->ids = IDS_RANDOM;
            else
                bad_usage(info, "--ids is 'sequential' or 'random', not '%s'", optarg);
            break;
        case O_MAX_MESSAGE:
            opt->max_message = parse_size(info, "--max-message", optarg, 1, 64u << 20);
            break;
        case O_MAX_CLIENTS:
            opt->max_clients = parse_size(info, "--max-clients", optarg, 1, 1000000);
            break;
        case O_MAX_PENDING:
            opt->max_pending = parse_size(info, "--max-pending", optarg, 1, (size_t)1 << 32);
            break;
        case O_NO_ERR:
            opt->error_frames = false;
            break;
        case O_WRITE_TIMEOUT:
            opt->write_timeout_ms = parse_seconds_ms(info, "--write-timeout", optarg, 3600);
            break;
        case O_WORK_US: /* at most a second: more is no frame's work, but a typo */
            opt->work_us = (unsigned)parse_size(info, "--work-us", optarg, 0, 1000000);
            break;
        case O_STATS_INTERVAL:
            opt->stats_interval_ms = parse_seconds_ms(info, "--stats-interval", optarg, 3600);
            break;
        case O_VARIANT: {
            const char *const *v = info->variants;
            while (v && *v && strcmp(*v, optarg) != 0)
                v++;
            if (!v || !*v)
                bad_usage(info, "no variant named '%s'", optarg);
            opt->variant = *v;
            break;
        }
        case O_VERBOSE:
            log_set_level(LOG_DEBUG);
            break;
        case O_QUIET:
            log_set_level(LOG_WARN);
            break;
        case O_HELP:
            usage(stdout, info);
            exit(0);
        case O_VERSION:
            printf("%s %s\n", info->name, ROUTER_VERSION);
            exit(0);
        case ':':
            bad_usage(info, "%s needs a value", argv[optind - 1]);
        default: {
            /* An unknown short option may sit inside a group ("-qx"), where argv[optind - 1]
             * is not it; optopt names it. For long options it is 0 or the option's code. */
            char shortopt[3] = {'-', (char)optopt, '\0'};
            bad_usage(info, "unknown option '%s'",
                      optopt > 0 && optopt < 256 ? shortopt : argv[optind - 1]);
        }
        }
    }
    if (optind < argc)
        bad_usage(info, "unexpected argument '%s'", argv[optind]);
}
