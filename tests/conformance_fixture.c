/*
 * conformance_fixture.c - the fixture every case runs in, and the checks that fail a case with
 * a clear message. See conformance.h.
 *
 * Only the protocol and the command-line conventions are used (--port 0, the "listening on"
 * line, SIGTERM), so the suite judges any router, in any language.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "conformance.h"
#include "net.h"
#include "proto.h"

void fx_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Received frames land here; only the main thread runs cases. */
static uint8_t rx[1 << 17];

int fx_open_log(void)
{
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/conformance-router-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0) {
        print_error("cannot create a temp file for the router's stderr: %s\n", strerror(errno));
        return -1;
    }
    unlink(path); /* the descriptors keep it alive; nothing is left behind */
    return fd;
}

/* The last LOG_WINDOW bytes of the log, NUL-terminated, in a malloc'd buffer, or NULL. */
#define LOG_WINDOW (1 << 20)
static char *read_log(int fd)
{
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0)
        return NULL;
    off_t from = st.st_size > LOG_WINDOW ? st.st_size - LOG_WINDOW : 0;
    char *text = malloc((size_t)(st.st_size - from) + 1);
    ssize_t n = text ? pread(fd, text, (size_t)(st.st_size - from), from) : -1;
    if (n <= 0) {
        free(text);
        return NULL;
    }
    text[n] = '\0';
    return text;
}

/* Where the first sanitizer report in text starts (at the start of its line), or NULL. */
static const char *find_report(const char *text)
{
    static const char *const headlines[] = {"ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                                            "WARNING: ThreadSanitizer", "runtime error:"};
    const char *first = NULL;
    for (size_t i = 0; i < sizeof headlines / sizeof headlines[0]; i++) {
        const char *at = strstr(text, headlines[i]);
        if (at && (!first || at < first))
            first = at;
    }
    while (first && first > text && first[-1] != '\n')
        first--;
    return first;
}

static void print_lines(const char *from, int max_lines)
{
    for (int i = 0; i < max_lines && *from; i++) {
        size_t len = strcspn(from, "\n");
        print_error("    | %.*s\n", (int)len, from);
        from += len + (from[len] == '\n');
    }
}

bool fx_log_report(int fd, char *headline, size_t cap)
{
    char *text = read_log(fd);
    const char *at = text ? find_report(text) : NULL;
    if (at)
        snprintf(headline, cap, "%.*s", (int)strcspn(at, "\n"), at);
    free(text);
    return at != NULL;
}

void fx_print_log(int fd, int max_lines)
{
    char *text = read_log(fd);
    if (!text)
        return;
    const char *report = find_report(text);
    if (report) {
        /* The headline and the top of its stack say what went wrong; the rest is detail. */
        print_error("    router's stderr, from its sanitizer report:\n");
        print_lines(report, max_lines);
        const char *summary = strstr(report, "SUMMARY:");
        if (summary)
            print_lines(summary, 1);
    } else {
        /* The start of the last max_lines lines, ignoring the final line end. */
        size_t len = strlen(text);
        const char *start = text + len - (len > 0 && text[len - 1] == '\n');
        for (int lines = 0; start > text; start--)
            if (start[-1] == '\n' && ++lines == max_lines)
                break;
        print_error("    router's stderr, last lines:\n");
        print_lines(start, max_lines);
    }
    free(text);
}

/*
 * The watchdog thread: copies whatever the router writes to stdout after its "listening on"
 * line into the log (a router that logs to stdout must not block on a full pipe), and kills
 * the router if the case is still running after CASE_LIMIT_MS. Killing the router makes every
 * socket call the case is blocked in return, so the case fails instead of hanging.
 */
static void *watchdog_main(void *arg)
{
    struct fixture *f = arg;
    int64_t deadline = clock_now_ms() + CASE_LIMIT_MS;
    bool fired = false;
    for (;;) {
        int64_t left = deadline - clock_now_ms();
        if (left <= 0) {
            if (fired) {
                print_error("watchdog: the suite itself is stuck in %s; giving up\n",
                            f->spec->name);
                _exit(3);
            }
            fired = true;
            print_error("watchdog: %s still running after %.0f s: killing the router\n",
                        f->spec->name, CASE_LIMIT_MS / 1000.0);
            pthread_mutex_lock(&f->lock);
            if (f->router.pid > 0)
                kill(f->router.pid, SIGKILL);
            pthread_mutex_unlock(&f->lock);
            deadline = clock_now_ms() + 10000;
            continue;
        }
        struct pollfd p[2] = {{.fd = f->wake[0], .events = POLLIN},
                              {.fd = f->router_out, .events = POLLIN}};
        int n = poll(p, f->router_out >= 0 ? 2 : 1, (int)left);
        if (n < 0 && errno != EINTR) {
            print_error("watchdog: poll: %s\n", strerror(errno));
            return NULL;
        }
        if (n > 0 && p[0].revents)
            return NULL; /* disarmed */
        if (n > 0 && p[1].revents) {
            char buf[4096];
            ssize_t got = read(f->router_out, buf, sizeof buf);
            if (got <= 0) {
                close(f->router_out);
                f->router_out = -1;
            } else if (write(f->stderr_fd, buf, (size_t)got) != got) {
                print_error("watchdog: cannot log the router's stdout: %s\n", strerror(errno));
            }
        }
    }
}

/* Clean up whatever fx_setup got to; the router, if any, is already stopped. */
static void fixture_free(struct fixture *f)
{
    if (f->router_out >= 0)
        close(f->router_out);
    if (f->stderr_fd >= 0)
        close(f->stderr_fd);
    if (f->wake[0] >= 0) {
        close(f->wake[0]);
        close(f->wake[1]);
    }
    pthread_mutex_destroy(&f->lock);
    free(f);
}

int fx_setup(void **state)
{
    const struct case_spec *spec = *state;
    struct fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    *f = (struct fixture){.spec = spec,
                          .router = {.pid = -1, .stdout_fd = -1},
                          .stderr_fd = -1,
                          .router_out = -1,
                          .wake = {-1, -1}};
    pthread_mutex_init(&f->lock, NULL);
    int argc = 0, extra = 0;
    while (suite.router_argv[argc])
        argc++;
    while (spec->args && spec->args[extra])
        extra++;
    char *argv[argc + extra + 1];
    memcpy(argv, suite.router_argv, (size_t)argc * sizeof *argv);
    for (int i = 0; i < extra; i++)
        argv[argc + i] = (char *)spec->args[i];
    argv[argc + extra] = NULL;

    f->stderr_fd = fx_open_log();
    if (f->stderr_fd < 0 || pipe2(f->wake, O_CLOEXEC) != 0) {
        fixture_free(f);
        return -1;
    }
    if (router_proc_start_limited(argv, f->stderr_fd, spec->nofile, &f->router) != 0) {
        char added[256] = "";
        for (int i = 0, o = 0; i < extra && o < (int)sizeof added; i++)
            o += snprintf(added + o, sizeof added - (size_t)o, " %s", spec->args[i]);
        print_error("could not start the router%s%s for %s\n", extra ? " with" : "", added,
                    spec->name);
        fx_print_log(f->stderr_fd, 10);
        fixture_free(f);
        return -1;
    }
    /* The watchdog owns the rest of stdout from here on; router_stop will not close it. */
    f->router_out = f->router.stdout_fd;
    f->router.stdout_fd = -1;
    int rc = pthread_create(&f->watchdog, NULL, watchdog_main, f);
    if (rc != 0) {
        print_error("pthread_create: %s\n", strerror(rc));
        router_proc_stop(&f->router, SIGKILL, STOP_TIMEOUT_MS, NULL);
        fixture_free(f);
        return -1;
    }
    f->watchdog_running = true;
    *state = f;
    return 0;
}

int fx_stop(struct fixture *f, int sig, int timeout_ms, int *status)
{
    pthread_mutex_lock(&f->lock);
    int rc = -1;
    if (f->router.pid > 0) {
        int st = 0;
        rc = router_proc_stop(&f->router, sig, timeout_ms, &st);
        if (rc == 0) {
            f->router_gone = true;
            f->router_status = st;
        }
    }
    pthread_mutex_unlock(&f->lock);
    if (status)
        *status = f->router_status;
    return rc;
}

/* Did the router end in a way that points at a bug: a crash or a sanitizer's report? */
static bool ended_badly(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status) != 0;
    /* SIGTERM without a handler is judged by sigterm_exits_zero_with_summary alone. */
    return WIFSIGNALED(status) && WTERMSIG(status) != SIGTERM && WTERMSIG(status) != SIGKILL;
}

int fx_teardown(void **state)
{
    struct fixture *f = *state;
    *state = (void *)f->spec;
    if (f->watchdog_running) {
        if (write(f->wake[1], "", 1) != 1)
            print_error("cannot wake the watchdog: %s\n", strerror(errno));
        pthread_join(f->watchdog, NULL);
    }
    for (int i = 0; i < FX_MAX_PEERS; i++)
        if (f->peers[i].used)
            fx_close(f, &f->peers[i]);
    fx_stop(f, SIGTERM, STOP_TIMEOUT_MS, NULL);

    int rc = 0;
    char how[96], headline[256];
    /* A case that judged the router's end itself is not judged again here. */
    if (!f->end_judged && f->router_gone && ended_badly(f->router_status)) {
        print_error("at the end of %s, the router %s: a crash, or a sanitizer's report\n",
                    f->spec->name, fx_router_state(f, how, sizeof how));
        fx_print_log(f->stderr_fd, 20);
        rc = -1;
    } else if (!f->end_judged && fx_log_report(f->stderr_fd, headline, sizeof headline)) {
        /* Reported but not fatal (e.g. exitcode=0 in the sanitizer's options): show it. */
        print_message("  note: the router's stderr has a sanitizer report: %s\n", headline);
    }
    fixture_free(f);
    return rc;
}

struct fixture *fx_begin(void **state)
{
    return *state;
}

bool fx_router_alive(struct fixture *f)
{
    pthread_mutex_lock(&f->lock);
    if (!f->router_gone && f->router.pid > 0) {
        int status;
        if (waitpid(f->router.pid, &status, WNOHANG) == f->router.pid) {
            f->router_gone = true;
            f->router_status = status;
            f->router.pid = -1;
        }
    }
    bool alive = !f->router_gone && f->router.pid > 0;
    pthread_mutex_unlock(&f->lock);
    return alive;
}

const char *fx_router_state(struct fixture *f, char *buf, size_t cap)
{
    if (fx_router_alive(f))
        snprintf(buf, cap, "still running");
    else if (!f->router_gone)
        snprintf(buf, cap, "is not running");
    else if (WIFEXITED(f->router_status))
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(f->router_status));
    else if (WIFSIGNALED(f->router_status))
        snprintf(buf, cap, "was killed by signal %d (%s)", WTERMSIG(f->router_status),
                 strsignal(WTERMSIG(f->router_status)));
    else
        snprintf(buf, cap, "ended (wait status %#x)", f->router_status);
    return buf;
}

/* Fail the case with msg, the router's state and its stderr. */
static _Noreturn void fail_case(struct fixture *f, const char *msg)
{
    char how[96];
    /* The message shows how the router ended, if it has: teardown need not say it again. */
    f->end_judged = !fx_router_alive(f);
    print_error("%s\n    router: %s\n", msg, fx_router_state(f, how, sizeof how));
    fx_print_log(f->stderr_fd, 10);
    fail();
    abort(); /* not reached: fail() jumps back into cmocka */
}

/*
 * The property is observed not to hold. The table keeps the first such note. Then the case
 * fails if the property was expected; otherwise the observation is printed and the case ends
 * in fx_run_case, as expected. A stress case observes the router's end too (a crash, a report
 * at exit), so teardown does not judge it again.
 */
static _Noreturn void property_fails(struct fixture *f, const char *note)
{
    enum property prop = f->spec->property;
    if (suite.seen[prop] != SEEN_NO) {
        size_t len = strnlen(note, sizeof suite.seen_note[prop] - 1);
        memcpy(suite.seen_note[prop], note, len);
        suite.seen_note[prop][len] = '\0';
    }
    suite.seen[prop] = SEEN_NO;
    if (suite.expect[prop] != EXPECT_YES) {
        print_message("  observed: %s\n  %s: no (expected %s)\n", note, property_name[prop],
                      expectation_name[suite.expect[prop]]);
        f->end_judged = prop == PROP_STRESS;
        longjmp(f->observed, 1);
    }
    fail_case(f, note);
}

void fx_fail(struct fixture *f, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* In a stress case every failure, a crash included, means "does not survive stress". */
    if (f->spec->property == PROP_STRESS)
        property_fails(f, msg);
    fail_case(f, msg);
}

void fx_run_case(void **state)
{
    struct fixture *f = *state;
    if (setjmp(f->observed) != 0)
        return; /* property_fails recorded an expected "no" */
    f->spec->run(state);

    enum property prop = f->spec->property;
    if (prop != PROP_NONE && suite.expect[prop] == EXPECT_NO && suite.seen[prop] == SEEN_YES)
        fail_case(f, "the property was expected not to hold for this router, but it held");
}

void fx_property_holds(struct fixture *f)
{
    enum property prop = f->spec->property;
    if (suite.seen[prop] != SEEN_NO)
        suite.seen[prop] = SEEN_YES;
}

void fx_property_fails(struct fixture *f, const char *fmt, ...)
{
    char note[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(note, sizeof note, fmt, ap);
    va_end(ap);
    property_fails(f, note);
}

static struct peer *new_peer(struct fixture *f, const char *name)
{
    for (int i = 0; i < FX_MAX_PEERS; i++)
        if (!f->peers[i].used) {
            struct peer *p = &f->peers[i];
            p->used = true;
            snprintf(p->name, sizeof p->name, "%s", name);
            return p;
        }
    fx_fail(f, "the case opened more than %d clients at once", FX_MAX_PEERS);
}

static const char *connect_error(int err)
{
    switch (err) {
    case ETIMEDOUT:
        return "no ID arrived in time";
    case ECONNRESET:
        return "the router closed the connection before sending an ID";
    default:
        return strerror(err);
    }
}

struct peer *fx_connect(struct fixture *f, const char *name)
{
    struct peer *p = new_peer(f, name);
    if (client_connect(&p->c, "127.0.0.1", f->router.port, CONNECT_TIMEOUT_MS) != 0) {
        int err = errno;
        p->used = false;
        fx_fail(f, "%s could not connect and receive its ID within %d ms: %s", name,
                CONNECT_TIMEOUT_MS, connect_error(err));
    }
    return p;
}

struct peer *fx_connect_raw(struct fixture *f, const char *name)
{
    struct peer *p = new_peer(f, name);
    if (client_connect_raw(&p->c, "127.0.0.1", f->router.port) != 0) {
        int err = errno;
        p->used = false;
        fx_fail(f, "%s could not connect: %s", name, strerror(err));
    }
    return p;
}

void fx_close(struct fixture *f, struct peer *p)
{
    (void)f;
    client_close(&p->c);
    p->used = false;
}

void fx_send(struct fixture *f, struct peer *from, uint32_t dest, const void *payload, size_t len)
{
    if (client_send(&from->c, dest, payload, len) != 0)
        fx_fail(f, "%s could not send a frame to %u: %s", from->name, dest, strerror(errno));
}

void fx_send_raw(struct fixture *f, struct peer *from, const void *bytes, size_t len)
{
    if (client_send_raw(&from->c, bytes, len) != 0)
        fx_fail(f, "%s could not send %zu bytes: %s", from->name, len, strerror(errno));
}

const char *fx_render(const void *bytes, size_t len, char *buf, size_t cap)
{
    const uint8_t *b = bytes;
    size_t shown = len < 48 ? len : 48, o = 0;
    o += (size_t)snprintf(buf + o, cap - o, "\"");
    for (size_t i = 0; i < shown && o + 8 < cap; i++) {
        if (b[i] >= 0x20 && b[i] < 0x7f && b[i] != '"' && b[i] != '\\')
            buf[o++] = (char)b[i];
        else
            o += (size_t)snprintf(buf + o, cap - o, "\\x%02x", b[i]);
    }
    snprintf(buf + o, cap - o, "%s\" (%zu bytes)", shown < len ? "..." : "", len);
    return buf;
}

const char *fx_describe_recv(ssize_t rc, const void *buf, char *out, size_t cap)
{
    switch (rc) {
    case CLIENT_TIMEOUT:
        return "nothing";
    case CLIENT_CLOSED:
        return "the connection closed by the router";
    case CLIENT_TOO_BIG:
        return "a frame too long to hold";
    case CLIENT_ERROR:
        snprintf(out, cap, "a socket error: %s", strerror(errno));
        return out;
    default: {
        char shown[256];
        snprintf(out, cap, "the frame %s", fx_render(buf, (size_t)rc, shown, sizeof shown));
        return out;
    }
    }
}

void fx_expect_frame(struct fixture *f, struct peer *p, const void *want, size_t len,
                     int timeout_ms)
{
    ssize_t rc = client_recv(&p->c, rx, sizeof rx, timeout_ms);
    if (rc >= 0 && (size_t)rc == len && memcmp(rx, want, len) == 0)
        return;
    char w[256], got[320];
    fx_fail(f, "%s expected the frame %s within %d ms; got %s", p->name,
            fx_render(want, len, w, sizeof w), timeout_ms,
            fx_describe_recv(rc, rx, got, sizeof got));
}

void fx_expect_error(struct fixture *f, struct peer *p, const char *reason, int timeout_ms)
{
    ssize_t rc = client_recv(&p->c, rx, sizeof rx, timeout_ms);
    if (rc >= 1 && rx[0] == PROTO_ERROR_BYTE &&
        memmem(rx + 1, (size_t)rc - 1, reason, strlen(reason)))
        return;
    char got[320];
    fx_fail(f,
            "%s expected an error frame (0xFF, then a reason mentioning \"%s\") within %d ms; "
            "got %s",
            p->name, reason, timeout_ms, fx_describe_recv(rc, rx, got, sizeof got));
}

void fx_expect_closed(struct fixture *f, struct peer *p, int timeout_ms)
{
    ssize_t rc = client_recv(&p->c, rx, sizeof rx, timeout_ms);
    if (rc == CLIENT_CLOSED)
        return;
    char got[320];
    fx_fail(f,
            "%s expected the router to close its connection within %d ms, with nothing "
            "before; got %s",
            p->name, timeout_ms, fx_describe_recv(rc, rx, got, sizeof got));
}

void fx_expect_nothing(struct fixture *f, struct peer *p, int ms)
{
    ssize_t rc = client_recv(&p->c, rx, sizeof rx, ms);
    if (rc == CLIENT_TIMEOUT && p->c.len == 0)
        return;
    char got[320];
    if (rc == CLIENT_TIMEOUT)
        fx_fail(f, "%s expected nothing more to arrive; got the partial bytes %s", p->name,
                fx_render(p->c.buf, p->c.len, got, sizeof got));
    fx_fail(f, "%s expected nothing to arrive for %d ms; got %s", p->name, ms,
            fx_describe_recv(rc, rx, got, sizeof got));
}

size_t fx_offer(struct fixture *f, struct peer *p, const uint8_t *frame, size_t len, size_t max,
                bool *stalled, size_t *partial)
{
    if (net_set_nonblocking(p->c.fd) != 0)
        fx_fail(f, "fcntl O_NONBLOCK: %s", strerror(errno));
    size_t sent = 0, off = 0;
    int64_t start = clock_now_ms();
    *stalled = false;
    while (sent < max && clock_now_ms() - start < FX_OFFER_LIMIT_MS) {
        ssize_t n = write(p->c.fd, frame + off, len - off);
        if (n >= 0) {
            sent += (size_t)n;
            off = (off + (size_t)n) % len;
            continue;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN)
            fx_fail(f, "%s could not keep writing: %s", p->name, strerror(errno));
        struct pollfd pfd = {.fd = p->c.fd, .events = POLLOUT};
        int rc = poll(&pfd, 1, FX_OFFER_STALL_MS);
        if (rc == 0) {
            *stalled = true;
            break;
        }
        if (rc < 0 && errno != EINTR)
            fx_fail(f, "poll: %s", strerror(errno));
    }
    *partial = off;
    return sent;
}

int64_t fx_time_frame(struct fixture *f, struct peer *a, struct peer *b, int ms)
{
    static const char msg[] = "past the jam";
    int64_t start = clock_now_ms();
    fx_send(f, a, b->c.id, msg, strlen(msg));
    char buf[64], got[320];
    ssize_t rc = client_recv(&b->c, buf, sizeof buf, ms);
    int64_t took = clock_now_ms() - start;
    if (rc == (ssize_t)strlen(msg) && memcmp(buf, msg, strlen(msg)) == 0)
        return took;
    if (rc != CLIENT_TIMEOUT)
        fx_fail(f, "%s expected \"%s\" from %s; got %s", b->name, msg, a->name,
                fx_describe_recv(rc, buf, got, sizeof got));
    return -1;
}
