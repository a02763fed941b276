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
            "  --verbose          log every connection\n"
            "  --quiet            log only warnings\n"
            "  --help, --version\n",
            info->name, info->summary, OPTIONS_DEFAULT_HOST, OPTIONS_DEFAULT_PORT,
            OPTIONS_DEFAULT_MAX_MESSAGE, OPTIONS_DEFAULT_MAX_CLIENTS, OPTIONS_DEFAULT_MAX_PENDING);
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
        O_VARIANT,
        O_VERBOSE,
        O_QUIET,
        O_HELP,
        O_VERSION
    };
    static const struct option longopts[] = {
        {"host", required_argument, 0, O_HOST},
        {"port", required_argument, 0, O_PORT},
        {"ids", required_argument, 0, O_IDS},
        {"max-message", required_argument, 0, O_MAX_MESSAGE},
        {"max-clients", required_argument, 0, O_MAX_CLIENTS},
        {"max-pending", required_argument, 0, O_MAX_PENDING},
        {"no-error-frames", no_argument, 0, O_NO_ERR},
        {"variant", required_argument, 0, O_VARIANT},
        {"verbose", no_argument, 0, O_VERBOSE},
        {"quiet", no_argument, 0, O_QUIET},
        {"help", no_argument, 0, O_HELP},
        {"version", no_argument, 0, O_VERSION},
        {0, 0, 0, 0},
    };

    log_set_program(info->name);
    *opt = (struct options){
        .host = OPTIONS_DEFAULT_HOST,
        .port = OPTIONS_DEFAULT_PORT,
        .ids = IDS_SEQUENTIAL,
        .max_message = OPTIONS_DEFAULT_MAX_MESSAGE,
        .max_clients = OPTIONS_DEFAULT_MAX_CLIENTS,
        .max_pending = OPTIONS_DEFAULT_MAX_PENDING,
        .error_frames = true,
        .variant = info->variants ? info->variants[0] : NULL,
    };

    opterr = 0; /* we print our own message */
    optind = 0; /* glibc: rescan from argv[1] and forget any earlier argv, so a second call
                   (tests do this) does not resume the first one's state */
    int c;
    while ((c = getopt_long(argc, argv, ":", longopts, NULL)) != -1) {
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
