/*
 * options.h - the command line every router shares.
 *
 *   --host ADDR          address to bind (default 127.0.0.1)
 *   --port N             port to bind; 0 picks a free one (default 8080)
 *   --ids MODE           sequential (from 1, the default) or random (unpredictable, unique)
 *   --max-message N      longest payload in bytes (default 65536)
 *   --max-clients N      connected clients at once (default 10000)
 *   --max-pending N      bytes queued for one destination before its senders wait (1 MiB)
 *   --no-error-frames    never send error frames (clients that expect the bare protocol)
 *   --write-timeout S    a client whose queued output makes no progress for S seconds is a
 *                        slow consumer, and is disconnected (default 10; 0: never)
 *   --work-us N          N microseconds of CPU work per forwarded frame (default 0)
 *   --stats-interval S   print the counters every S seconds (default 0: only at exit)
 *   --variant NAME       a router's alternative version of its pattern, if it has any
 *   --verbose, --quiet   more or less logging on stderr
 *   --help, --version
 *
 * options_parse() exits: 0 after --help or --version, 2 with usage on stderr for a bad option.
 */
#ifndef OPTIONS_H
#define OPTIONS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ids.h"

#define ROUTER_VERSION "1.0.0"

/* The defaults, as --help and PROTOCOL.md state them. */
#define OPTIONS_DEFAULT_HOST "127.0.0.1"
#define OPTIONS_DEFAULT_PORT 8080
#define OPTIONS_DEFAULT_MAX_MESSAGE 65536
#define OPTIONS_DEFAULT_MAX_CLIENTS 10000
#define OPTIONS_DEFAULT_MAX_PENDING (1024 * 1024)
#define OPTIONS_DEFAULT_WRITE_TIMEOUT_MS 10000

/* An option of one router's own, parsed beside the common ones and listed after them in --help
 * (router-sharded's --loops N). It takes a value: --NAME VALUE or --NAME=VALUE. */
struct router_option {
    const char *name; /* without the dashes: "loops" */
    const char *help; /* its line in --help, as printed: "  --loops N          ..." */
    /* Take the value (the router keeps it). Returns NULL, or the usage error to print, with one
     * %s for the value: "--loops wants a number from 1 to 64, got '%s'". */
    const char *(*parse)(const char *value);
};

#define ROUTER_OPTIONS_MAX 8 /* a router's own options, at most */

/* What a router says about itself in --help. */
struct router_info {
    const char *name;                /* "router-mutex" */
    const char *summary;             /* one line: the pattern */
    const char *const *variants;     /* NULL-terminated; variants[0] is the default; may be NULL */
    const char *const *variant_help; /* one line per variant, same order */
    bool own_signals; /* true: the router catches SIGINT/SIGTERM itself (the reactor's
                         uv_signal); false: server_start routes them to server_wait_accept */
    const struct router_option *options; /* its own options, ending with {0}; may be NULL */
};

struct options {
    const char *host;
    uint16_t port;
    enum ids_mode ids;
    size_t max_message;
    size_t max_clients;
    size_t max_pending;
    bool error_frames;
    unsigned write_timeout_ms;  /* 0: no write deadline */
    unsigned work_us;           /* CPU work per forwarded frame (work.h) */
    unsigned stats_interval_ms; /* 0: no periodic stats line */
    const char *variant;        /* one of info->variants, or NULL if the router has none */
};

void options_parse(int argc, char **argv, const struct router_info *info, struct options *opt);

#endif
