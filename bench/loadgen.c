/*
 * loadgen.c - the benchmark's load generator: command line, result, exit status.
 *
 *   loadgen SCENARIO --port N [options]     drive a router (or the relay) and report
 *   loadgen relay [--port N]                run the relay floor itself (relay.c)
 *
 * A run prints one JSON object on one line (to --json FILE, appended, or to stdout) and one
 * line for people on stderr. It exits 0 if the run completed, 1 if the router failed it (not
 * listening, closed a connection, stopped answering: the message says which), 2 on a bad
 * command line. A global deadline bounds every run, so it never hangs. Integrity problems do
 * not change the exit status: they are counted in the result, and the runner judges them.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "loadgen.h"
#include "net.h"
#include "proc_probe.h"
#include "relay.h"

static const char *const scenario_names[] = {
    [SC_PINGPONG] = "pingpong",           [SC_PAIRS] = "pairs",
    [SC_PIPELINE] = "pipeline",           [SC_OPEN_LOOP] = "open-loop",
    [SC_SLOW_CONSUMER] = "slow-consumer", [SC_CONNECTIONS] = "connections",
};
#define NSCENARIOS (sizeof scenario_names / sizeof scenario_names[0])
#define IDLE_UNSET 0xFFFFFFFFu

static void usage(FILE *to)
{
    fprintf(to, "usage: loadgen SCENARIO --port N [options]\n"
                "       loadgen relay [--host ADDR] [--port N]\n"
                "scenarios (defaults in brackets):\n"
                "  pingpong       one pair, one frame in flight: round-trip time [32 B]\n"
                "  pairs          --pairs pairs, one frame in flight each [16 pairs, 32 B]\n"
                "  pipeline       --pairs senders to as many receivers, --window frames in\n"
                "                 flight each [8 senders, 256 frames, 64 B]\n"
                "  open-loop      --pairs senders at a fixed total --rate (frames/s) [16, 32 B]\n"
                "  slow-consumer  --pairs pairs at --rate, then one receiver stops reading and a\n"
                "                 sender floods it [4 pairs, 2000 frames/s, floods of 4096 B]\n"
                "  connections    --idle idle connections beside --pairs round-trip pairs\n"
                "                 [1000 idle, 4 pairs]\n"
                "options:\n"
                "  --host ADDR            router address [127.0.0.1]\n"
                "  --port N               router port (required)\n"
                "  --target router|relay  relay: the floor, frames keep their header [router]\n"
                "  --pairs N  --size BYTES  --window N  --rate N  --idle N\n"
                "  --max-in-flight N      open loop: frames one sender may have in flight [1024]\n"
                "  --flood-size BYTES  --flood-max BYTES   slow consumer's flood [4096, 256 MiB]\n"
                "  --warmup S  --duration S   unmeasured start, then measurement [0.2, 1]\n"
                "  --drain S              wait this long for the last frames [3]\n"
                "  --connect-timeout S    for each connection's ID [5]\n"
                "  --deadline S           for the whole run [from the above]\n"
                "  --router-pid PID       sample the router's resident memory and threads\n"
                "  --label TEXT           copied into the result\n"
                "  --json FILE            append the result line to FILE [stdout]\n");
}

static double parse_num(const char *opt, const char *s, double lo, double hi)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || v < lo || v > hi) {
        fprintf(stderr, "loadgen: bad value '%s' for --%s (from %g to %g)\n", s, opt, lo, hi);
        usage(stderr);
        exit(2);
    }
    return v;
}

static void parse_args(int argc, char **argv, struct config *cfg)
{
    size_t sc = 0;
    while (sc < NSCENARIOS && strcmp(argv[1], scenario_names[sc]) != 0)
        sc++;
    if (sc == NSCENARIOS) {
        fprintf(stderr, "loadgen: unknown scenario '%s'\n", argv[1]);
        usage(stderr);
        exit(2);
    }
    *cfg = (struct config){.scenario = (enum scenario)sc,
                           .host = "127.0.0.1",
                           .port = -1,
                           .label = "",
                           .idle = IDLE_UNSET,
                           .max_in_flight = 1024,
                           .flood_size = 4096,
                           .flood_max = 256u << 20,
                           .warmup_s = 0.2,
                           .duration_s = 1.0,
                           .drain_s = 3.0,
                           .connect_timeout_s = 5.0};
    static const struct option longopts[] = {{"host", required_argument, NULL, 'h'},
                                             {"port", required_argument, NULL, 'p'},
                                             {"target", required_argument, NULL, 't'},
                                             {"label", required_argument, NULL, 'l'},
                                             {"json", required_argument, NULL, 'j'},
                                             {"pairs", required_argument, NULL, 'n'},
                                             {"size", required_argument, NULL, 's'},
                                             {"window", required_argument, NULL, 'w'},
                                             {"rate", required_argument, NULL, 'r'},
                                             {"idle", required_argument, NULL, 'i'},
                                             {"max-in-flight", required_argument, NULL, 'm'},
                                             {"flood-size", required_argument, NULL, 'F'},
                                             {"flood-max", required_argument, NULL, 'M'},
                                             {"warmup", required_argument, NULL, 'W'},
                                             {"duration", required_argument, NULL, 'd'},
                                             {"drain", required_argument, NULL, 'D'},
                                             {"deadline", required_argument, NULL, 'X'},
                                             {"connect-timeout", required_argument, NULL, 'C'},
                                             {"router-pid", required_argument, NULL, 'P'},
                                             {"help", no_argument, NULL, 'H'},
                                             {NULL, 0, NULL, 0}};
    optind = 2;
    int ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            cfg->host = optarg;
            break;
        case 'p':
            cfg->port = (int)parse_num("port", optarg, 1, 65535);
            break;
        case 't':
            if (strcmp(optarg, "router") != 0 && strcmp(optarg, "relay") != 0) {
                fprintf(stderr, "loadgen: --target is router or relay\n");
                exit(2);
            }
            cfg->relay = strcmp(optarg, "relay") == 0;
            break;
        case 'l':
            cfg->label = optarg;
            break;
        case 'j':
            cfg->json_path = optarg;
            break;
        case 'n':
            cfg->pairs = (unsigned)parse_num("pairs", optarg, 1, 1000);
            break;
        case 's':
            cfg->size = (size_t)parse_num("size", optarg, PAYLOAD_HEADER_LEN, PAYLOAD_MAX_LEN);
            break;
        case 'w':
            cfg->window = (unsigned)parse_num("window", optarg, 1, 1 << 20);
            break;
        case 'r':
            cfg->rate = parse_num("rate", optarg, 1, 1e8);
            break;
        case 'i':
            cfg->idle = (unsigned)parse_num("idle", optarg, 0, 60000);
            break;
        case 'm':
            cfg->max_in_flight = (unsigned)parse_num("max-in-flight", optarg, 1, 1 << 20);
            break;
        case 'F':
            cfg->flood_size =
                (size_t)parse_num("flood-size", optarg, PAYLOAD_HEADER_LEN, PAYLOAD_MAX_LEN);
            break;
        case 'M':
            cfg->flood_max = (uint64_t)parse_num("flood-max", optarg, 0, 1e12);
            break;
        case 'W':
            cfg->warmup_s = parse_num("warmup", optarg, 0, 3600);
            break;
        case 'd':
            cfg->duration_s = parse_num("duration", optarg, 0.01, 3600);
            break;
        case 'D':
            cfg->drain_s = parse_num("drain", optarg, 0.01, 3600);
            break;
        case 'X':
            cfg->deadline_s = parse_num("deadline", optarg, 0.1, 36000);
            break;
        case 'C':
            cfg->connect_timeout_s = parse_num("connect-timeout", optarg, 0.01, 3600);
            break;
        case 'P':
            cfg->router_pid = (pid_t)parse_num("router-pid", optarg, 1, 1 << 30);
            break;
        case 'H':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            exit(2);
        }
    }
    if (optind != argc) {
        fprintf(stderr, "loadgen: unexpected argument '%s'\n", argv[optind]);
        exit(2);
    }
    if (cfg->port < 0) {
        fprintf(stderr, "loadgen: --port is required\n");
        exit(2);
    }
    static const unsigned default_pairs[] = {
        [SC_PINGPONG] = 1,   [SC_PAIRS] = 16,        [SC_PIPELINE] = 8,
        [SC_OPEN_LOOP] = 16, [SC_SLOW_CONSUMER] = 4, [SC_CONNECTIONS] = 4};
    if (!cfg->pairs)
        cfg->pairs = default_pairs[cfg->scenario];
    if (!cfg->size)
        cfg->size = cfg->scenario == SC_PIPELINE ? 64 : 32;
    if (!cfg->window)
        cfg->window = 256;
    if (cfg->scenario == SC_SLOW_CONSUMER && cfg->rate == 0)
        cfg->rate = 2000;
    if (cfg->scenario == SC_OPEN_LOOP && cfg->rate == 0) {
        fprintf(stderr, "loadgen: open-loop needs --rate (total frames/s)\n");
        exit(2);
    }
    if (cfg->scenario != SC_CONNECTIONS)
        cfg->idle = 0;
    else if (cfg->idle == IDLE_UNSET)
        cfg->idle = 1000;
}

/* ---- the result ---- */

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            fprintf(f, "\\u%04x", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static void json_latency(FILE *f, const char *key, const struct histogram *h)
{
    static const double curve[] = {50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 100};
    fprintf(f,
            "\"%s\":{\"count\":%llu,\"min\":%.3f,\"mean\":%.3f,\"p50\":%.3f,\"p90\":%.3f,"
            "\"p99\":%.3f,\"p999\":%.3f,\"max\":%.3f,\"curve\":[",
            key, (unsigned long long)h->count, us(h->min), histogram_mean(h) / 1000.0,
            us(histogram_percentile(h, 50)), us(histogram_percentile(h, 90)),
            us(histogram_percentile(h, 99)), us(histogram_percentile(h, 99.9)), us(h->max));
    for (size_t i = 0; i < sizeof curve / sizeof curve[0]; i++)
        fprintf(f, "%s[%g,%.3f]", i ? "," : "", curve[i], us(histogram_percentile(h, curve[i])));
    fputs("]}", f);
}

static uint64_t integrity_total(const struct integrity *b)
{
    return b->misrouted + b->lost + b->duplicated + b->out_of_order + b->corrupted +
           b->error_frames;
}

struct figures {
    double trips_per_s, frames_per_s, mb_per_s;
    double offered, achieved;
    bool saturated, stalled;
    double cpu_s, elapsed_s;
};

static void compute(const struct loadgen *lg, struct figures *fig)
{
    const struct config *cfg = &lg->cfg;
    double d = cfg->duration_s;
    *fig = (struct figures){
        .trips_per_s = (double)lg->window_trips / d,
        .frames_per_s = (double)lg->window_frames / d,
        .mb_per_s = (double)lg->window_bytes / d / 1e6,
        .offered = cfg->rate,
        .achieved = (double)lg->window_frames / d,
        .elapsed_s = (double)lg_now(lg) / 1e9,
    };
    double scheduled = (double)(lg->send_end - lg->run_start) * cfg->rate / 1e9;
    fig->saturated = (double)lg->behind > 0.01 * scheduled || fig->achieved < 0.9 * cfg->rate;
    /* Stalled: some healthy frame sent during the flood waited for more than half of it, and
     * the flood's p99 is ten times the baseline's (a stall of the whole machine, which shows
     * in both, is not the router's); or the healthy senders could not send at all. */
    const struct histogram *base = &lg->lat, *flood = &lg->lat_flood;
    fig->stalled = flood->count == 0 ||
                   (flood->max > (lg->send_end - lg->flood_start) / 2 &&
                    histogram_percentile(flood, 99) > 10 * histogram_percentile(base, 99));
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) == 0)
        fig->cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static void write_json(FILE *f, const struct loadgen *lg, const struct figures *fig)
{
    const struct config *cfg = &lg->cfg;
    const struct integrity *b = &lg->bad;
    fprintf(f, "{\"scenario\":\"%s\",\"target\":\"%s\",\"label\":", scenario_names[cfg->scenario],
            cfg->relay ? "relay" : "router");
    json_string(f, cfg->label);
    fprintf(f, ",\"host\":");
    json_string(f, cfg->host);
    fprintf(f, ",\"port\":%d,\"ok\":%s,\"error\":", cfg->port, lg->failed ? "false" : "true");
    if (lg->failed)
        json_string(f, lg->error);
    else
        fputs("null", f);
    fprintf(f,
            ",\"params\":{\"pairs\":%u,\"size\":%zu,\"window\":%u,\"rate\":%g,\"idle\":%u,"
            "\"warmup_s\":%g,\"duration_s\":%g,\"max_in_flight\":%u},",
            cfg->pairs, cfg->size, cfg->window, cfg->rate, cfg->idle, cfg->warmup_s,
            cfg->duration_s, cfg->max_in_flight);
    fprintf(f,
            "\"connections\":%u,\"connected\":%u,\"connect_s\":%.4f,\"frames_sent\":%llu,"
            "\"frames_received\":%llu,\"round_trips_per_s\":%.1f,\"frames_per_s\":%.1f,"
            "\"mb_per_s\":%.3f,",
            lg->nconns, lg->connected, lg->connect_s, (unsigned long long)lg->frames_sent,
            (unsigned long long)lg->frames_received, fig->trips_per_s, fig->frames_per_s,
            fig->mb_per_s);
    json_latency(f, "latency_us", &lg->lat);
    fprintf(f,
            ",\"integrity\":{\"misrouted\":%llu,\"lost\":%llu,\"duplicated\":%llu,"
            "\"out_of_order\":%llu,\"corrupted\":%llu,\"error_frames\":%llu,\"first_error_frame\":",
            (unsigned long long)b->misrouted, (unsigned long long)b->lost,
            (unsigned long long)b->duplicated, (unsigned long long)b->out_of_order,
            (unsigned long long)b->corrupted, (unsigned long long)b->error_frames);
    if (lg->first_error_frame[0])
        json_string(f, lg->first_error_frame);
    else
        fputs("null", f);
    fprintf(f, "},\"integrity_errors\":%llu", (unsigned long long)integrity_total(b));
    if (cfg->scenario == SC_OPEN_LOOP || cfg->scenario == SC_SLOW_CONSUMER)
        fprintf(f,
                ",\"open_loop\":{\"offered_per_s\":%g,\"achieved_per_s\":%.1f,\"behind\":%llu,"
                "\"lag_max_us\":%.3f,\"lag_mean_us\":%.3f,\"saturated\":%s}",
                fig->offered, fig->achieved, (unsigned long long)lg->behind, us(lg->lag_max),
                lg->lag_count ? us(lg->lag_sum / lg->lag_count) : 0.0,
                fig->saturated ? "true" : "false");
    if (cfg->scenario == SC_SLOW_CONSUMER) {
        fprintf(f, ",\"slow_consumer\":{");
        json_latency(f, "baseline_us", &lg->lat);
        fputc(',', f);
        json_latency(f, "flood_us", &lg->lat_flood);
        fprintf(f,
                ",\"stalled\":%s,\"flood_frames\":%llu,\"flood_bytes\":%llu,"
                "\"flood_errors\":%llu,\"flood_closed\":%s}",
                fig->stalled ? "true" : "false", (unsigned long long)lg->flood_frames,
                (unsigned long long)lg->flood_bytes, (unsigned long long)lg->flood_errors,
                lg->flood_closed ? "true" : "false");
    }
    fprintf(f, ",\"router_rss_start_kib\":");
    if (lg->rss_start_kib > 0)
        fprintf(f, "%ld", lg->rss_start_kib);
    else
        fputs("null", f);
    fprintf(f, ",\"router_rss_kib\":");
    if (lg->rss_kib > 0)
        fprintf(f, "%ld", lg->rss_kib);
    else
        fputs("null", f);
    fprintf(f, ",\"router_threads\":");
    if (lg->router_threads > 0)
        fprintf(f, "%d", lg->router_threads);
    else
        fputs("null", f);
    if (lg->usage_samples == 2) {
        const struct proc_usage *a = &lg->usage[0], *b = &lg->usage[1];
        fprintf(f, ",\"router_window\":{\"cpu_s\":%.3f,\"syscr\":%lld,\"syscw\":%lld,\"ctxt\":",
                b->cpu_s - a->cpu_s, b->syscr - a->syscr, b->syscw - a->syscw);
        if (a->ctxt >= 0 && b->ctxt >= 0)
            fprintf(f, "%lld", b->ctxt - a->ctxt);
        else
            fputs("null", f);
        fprintf(f, ",\"frames\":%llu}", (unsigned long long)lg->window_frames);
    }
    fprintf(f, ",\"loadgen_cpu_s\":%.3f,\"elapsed_s\":%.3f}\n", fig->cpu_s, fig->elapsed_s);
}

static void write_human(const struct loadgen *lg, const struct figures *fig)
{
    const struct config *cfg = &lg->cfg;
    const struct histogram *h = &lg->lat;
    fprintf(stderr, "loadgen: %s vs %s:%d%s%s%s: ", scenario_names[cfg->scenario], cfg->host,
            cfg->port, cfg->relay ? " (relay)" : "", cfg->label[0] ? " " : "", cfg->label);
    uint64_t bad = integrity_total(&lg->bad);
    if (lg->failed) {
        fprintf(stderr, "FAILED: %s; %s %llu bad frames\n", lg->error,
                bad ? "INTEGRITY:" : "integrity:", (unsigned long long)bad);
        return;
    }
    switch (cfg->scenario) {
    case SC_PINGPONG:
    case SC_PAIRS:
    case SC_CONNECTIONS:
        fprintf(stderr, "%.0f round trips/s, RTT", fig->trips_per_s);
        break;
    case SC_PIPELINE:
        fprintf(stderr, "%.0f frames/s, %.1f MB/s, latency", fig->frames_per_s, fig->mb_per_s);
        break;
    case SC_OPEN_LOOP:
        fprintf(stderr, "offered %.0f/s, delivered %.0f/s%s, latency", fig->offered, fig->achieved,
                fig->saturated ? " (saturated)" : "");
        break;
    case SC_SLOW_CONSUMER:
        fprintf(stderr, "healthy p99 %.1f us, %.1f us under the flood%s; baseline",
                us(histogram_percentile(h, 99)), us(histogram_percentile(&lg->lat_flood, 99)),
                fig->stalled ? " (stalled)" : "");
        break;
    }
    fprintf(stderr, " p50 %.1f p99 %.1f p99.9 %.1f max %.1f us", us(histogram_percentile(h, 50)),
            us(histogram_percentile(h, 99)), us(histogram_percentile(h, 99.9)), us(h->max));
    if (lg->rss_kib > 0)
        fprintf(stderr, ", router RSS %ld KiB", lg->rss_kib);
    if (bad)
        fprintf(stderr, "; INTEGRITY: %llu bad frames\n", (unsigned long long)bad);
    else
        fprintf(stderr, "; integrity ok\n");
}

static int emit(const struct loadgen *lg, const struct figures *fig)
{
    char *text;
    size_t len;
    FILE *m = open_memstream(&text, &len);
    if (!m)
        return -1;
    write_json(m, lg, fig);
    if (fclose(m) != 0)
        return -1;
    int rc = 0;
    FILE *out = stdout;
    if (lg->cfg.json_path && !(out = fopen(lg->cfg.json_path, "a"))) {
        fprintf(stderr, "loadgen: %s: %s\n", lg->cfg.json_path, strerror(errno));
        rc = -1;
    } else {
        /* One write, so lines from runs that share the file never interleave. */
        if (fwrite(text, 1, len, out) != len || fflush(out) != 0)
            rc = -1;
        if (out != stdout && fclose(out) != 0)
            rc = -1;
    }
    free(text);
    return rc;
}

/* ---- setup and main ---- */

/* Every handle is closed by now, so nothing refers to the connections any more. */
static void free_all(struct loadgen *lg)
{
    for (unsigned i = 0; i < lg->nconns; i++) {
        struct conn *c = lg->conns[i];
        free(c->part.data);
        free(c->out.data);
        free(c->wbuf.data);
        free(c);
    }
    free(lg->conns);
    free(lg->active);
    free(lg->senders);
    free(lg->dirty);
    free(lg->flood_chunk);
}

static void on_deadline(uv_timer_t *t)
{
    struct loadgen *lg = t->data;
    lg_fail(lg,
            "no result within the %.1f s deadline: the router stopped answering "
            "(%llu frames outstanding)",
            lg->cfg.deadline_s, (unsigned long long)scenario_outstanding(lg));
}

static void close_handle(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static int resolve(struct loadgen *lg)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res;
    int rc = getaddrinfo(lg->cfg.host, NULL, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "loadgen: resolve %s: %s\n", lg->cfg.host, gai_strerror(rc));
        return -1;
    }
    memcpy(&lg->addr, res->ai_addr, res->ai_addrlen);
    if (lg->addr.ss_family == AF_INET6)
        ((struct sockaddr_in6 *)&lg->addr)->sin6_port = htons((uint16_t)lg->cfg.port);
    else
        ((struct sockaddr_in *)&lg->addr)->sin_port = htons((uint16_t)lg->cfg.port);
    freeaddrinfo(res);
    return 0;
}

static int setup_loop(struct loadgen *lg)
{
    lg->loop = uv_default_loop();
    int rc;
    if ((rc = uv_timer_init(lg->loop, &lg->connect_timer)) != 0 ||
        (rc = uv_timer_init(lg->loop, &lg->flood_timer)) != 0 ||
        (rc = uv_timer_init(lg->loop, &lg->end_timer)) != 0 ||
        (rc = uv_timer_init(lg->loop, &lg->drain_timer)) != 0 ||
        (rc = uv_timer_init(lg->loop, &lg->deadline_timer)) != 0 ||
        (rc = uv_timer_init(lg->loop, &lg->window_timer)) != 0 ||
        (rc = uv_check_init(lg->loop, &lg->flusher)) != 0 ||
        (rc = uv_idle_init(lg->loop, &lg->nudge)) != 0) {
        fprintf(stderr, "loadgen: libuv: %s\n", uv_strerror(rc));
        return -1;
    }
    lg->flusher.data = lg;
    if ((rc = uv_check_start(&lg->flusher, conn_on_flush)) != 0) {
        fprintf(stderr, "loadgen: libuv: %s\n", uv_strerror(rc));
        return -1;
    }
    if (lg->cfg.scenario == SC_OPEN_LOOP || lg->cfg.scenario == SC_SLOW_CONSUMER) {
        /* libuv's timers have millisecond resolution; open-loop slots need microseconds. */
        lg->tick_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (lg->tick_fd < 0) {
            fprintf(stderr, "loadgen: timerfd_create: %s\n", strerror(errno));
            return -1;
        }
        if ((rc = uv_poll_init(lg->loop, &lg->tick, lg->tick_fd)) != 0) {
            fprintf(stderr, "loadgen: libuv: %s\n", uv_strerror(rc));
            return -1;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "relay") == 0)
        return relay_main(argc - 1, argv + 1);

    static struct loadgen lg;
    parse_args(argc, argv, &lg.cfg);
    payload_init();
    lg.hooks = (struct scenario_hooks){.start = scenario_start,
                                       .on_frame = scenario_on_frame,
                                       .on_written = scenario_on_written,
                                       .check_drained = scenario_check_drained};
    if (scenario_layout(&lg) != 0) {
        fprintf(stderr, "loadgen: out of memory\n");
        return 1;
    }
    struct config *cfg = &lg.cfg;
    if (!cfg->deadline_s)
        cfg->deadline_s = 5 + cfg->connect_timeout_s + lg.nconns * 0.002 + cfg->warmup_s +
                          cfg->duration_s * (cfg->scenario == SC_SLOW_CONSUMER ? 2 : 1) +
                          cfg->drain_s;
    char err[NET_ERR_LEN];
    size_t limit;
    if (net_setup_process(lg.nconns + 64, &limit, err) != 0) {
        fprintf(stderr, "loadgen: %s\n", err);
        return 1;
    }
    /* Let the open-loop timerfd fire when asked, not up to 50 us later. */
    if (prctl(PR_SET_TIMERSLACK, 1UL) != 0)
        fprintf(stderr, "loadgen: PR_SET_TIMERSLACK: %s (send times may be late)\n",
                strerror(errno));
    if (resolve(&lg) != 0 || setup_loop(&lg) != 0)
        return 1;

    lg.epoch = uv_hrtime();
    lg.deadline_timer.data = &lg;
    uv_timer_start(&lg.deadline_timer, on_deadline, (uint64_t)(cfg->deadline_s * 1000), 0);
    if (cfg->router_pid > 0)
        lg.rss_start_kib = proc_rss_kib(cfg->router_pid);
    conn_connect_all(&lg);
    uv_run(lg.loop, UV_RUN_DEFAULT);

    /* Whatever a healthy sender sent and its receiver never got is lost (a completed run
     * has drained them all, so this counts only in a failed one). */
    lg.bad.lost = scenario_outstanding(&lg);
    struct figures fig;
    compute(&lg, &fig);
    uv_walk(lg.loop, close_handle, NULL);
    uv_run(lg.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(lg.loop) != 0)
        fprintf(stderr, "loadgen: some libuv handles did not close\n");
    free_all(&lg);
    int rc = emit(&lg, &fig);
    write_human(&lg, &fig);
    if (rc != 0)
        return 1;
    return lg.failed ? 1 : 0;
}
