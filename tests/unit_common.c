/*
 * unit_common.c - the plumbing in common/: connection table, IDs, options, sockets, the frame
 * reader, the test client and router_spawn.
 *
 * Everything here is tested through its header only, against a reference where one is cheap:
 * the connection table against a plain array, the socket helpers against the bytes a reader
 * thread actually received. Code that exits (options) runs in a forked child whose stdout and
 * stderr are captured. Threads and children never call cmocka's asserts: they record what
 * happened and the test thread checks it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <cmocka.h>

#include "client.h"
#include "clock.h"
#include "conn_table.h"
#include "frame.h"
#include "ids.h"
#include "log.h"
#include "net.h"
#include "options.h"
#include "proc_probe.h"
#include "proto.h"
#include "reader.h"
#include "router_proc.h"
#include "server.h"
#include "stats.h"
#include "work.h"

/* ---- small helpers ---- */

static uint64_t xorshift64(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* MurmurHash3's finalizer: a bijection on u32 that maps only 0 to 0, so mix32(1), mix32(2)...
 * are distinct, non-zero and scattered over the whole range. */
static uint32_t mix32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x85EBCA6Bu;
    x ^= x >> 13;
    x *= 0xC2B2AE35u;
    x ^= x >> 16;
    return x;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int wait_child(pid_t pid)
{
    int status;
    pid_t w;
    do
        w = waitpid(pid, &status, 0);
    while (w < 0 && errno == EINTR);
    assert_int_equal(w, pid);
    return status;
}

/* ---- conn_table ---- */

#define CONN(n) ((void *)(uintptr_t)(16 * (n)))

static void a_put_entry_can_be_got_back(void **state)
{
    (void)state;
    struct conn_table t;
    assert_int_equal(conn_table_init(&t, 4), 0);
    assert_true(conn_table_put(&t, 7, CONN(1)));
    assert_true(conn_table_put(&t, 0xFFFFFFFFu, CONN(2)));
    assert_ptr_equal(conn_table_get(&t, 7), CONN(1));
    assert_ptr_equal(conn_table_get(&t, 0xFFFFFFFFu), CONN(2));
    assert_int_equal(t.count, 2);
    conn_table_free(&t);
}

static void a_duplicate_put_is_refused_and_keeps_the_first_conn(void **state)
{
    (void)state;
    struct conn_table t;
    assert_int_equal(conn_table_init(&t, 4), 0);
    assert_true(conn_table_put(&t, 7, CONN(1)));
    assert_false(conn_table_put(&t, 7, CONN(2)));
    assert_ptr_equal(conn_table_get(&t, 7), CONN(1));
    assert_int_equal(t.count, 1);
    conn_table_free(&t);
}

static void get_of_zero_or_an_absent_id_is_null(void **state)
{
    (void)state;
    struct conn_table t;
    assert_int_equal(conn_table_init(&t, 4), 0);
    assert_null(conn_table_get(&t, 0));
    assert_null(conn_table_get(&t, 1));
    assert_true(conn_table_put(&t, 1, CONN(1)));
    assert_null(conn_table_get(&t, 0));
    assert_null(conn_table_get(&t, 2));
    assert_null(conn_table_remove(&t, 0));
    assert_int_equal(t.count, 1);
    conn_table_free(&t);
}

static void id_zero_cannot_be_put(void **state)
{
    (void)state;
    struct conn_table t;
    assert_int_equal(conn_table_init(&t, 4), 0);
    assert_false(conn_table_put(&t, 0, CONN(1)));
    assert_int_equal(t.count, 0);
    conn_table_free(&t);
}

static void a_removed_entry_is_gone_and_its_conn_returned(void **state)
{
    (void)state;
    struct conn_table t;
    assert_int_equal(conn_table_init(&t, 4), 0);
    assert_true(conn_table_put(&t, 3, CONN(3)));
    assert_true(conn_table_put(&t, 4, CONN(4)));
    assert_ptr_equal(conn_table_remove(&t, 3), CONN(3));
    assert_null(conn_table_get(&t, 3));
    assert_null(conn_table_remove(&t, 3));
    assert_null(conn_table_remove(&t, 99));
    assert_ptr_equal(conn_table_get(&t, 4), CONN(4));
    assert_int_equal(t.count, 1);
    /* An ID can be put again after its removal (the routers never do, the table allows it). */
    assert_true(conn_table_put(&t, 3, CONN(5)));
    assert_ptr_equal(conn_table_get(&t, 3), CONN(5));
    conn_table_free(&t);
}

static void a_table_holds_the_entries_it_was_sized_for(void **state)
{
    (void)state;
    struct conn_table t;
    assert_int_equal(conn_table_init(&t, 1000), 0);
    for (uint32_t id = 1; id <= 1000; id++)
        assert_true(conn_table_put(&t, mix32(id), CONN(id)));
    for (uint32_t id = 1; id <= 1000; id++)
        assert_ptr_equal(conn_table_get(&t, mix32(id)), CONN(id));
    conn_table_free(&t);
}

static void a_full_table_refuses_puts_and_still_answers_gets(void **state)
{
    (void)state;
    struct conn_table t;
    assert_int_equal(conn_table_init(&t, 4), 0);
    size_t cap = t.mask + 1;
    /* One slot always stays empty, so that every probe ends. */
    uint32_t id = 1;
    for (; id < cap; id++)
        assert_true(conn_table_put(&t, id, CONN(id)));
    assert_false(conn_table_put(&t, id, CONN(id)));
    assert_int_equal(t.count, cap - 1);
    assert_null(conn_table_get(&t, id));
    assert_null(conn_table_get(&t, 0xABCDEF));
    assert_null(conn_table_remove(&t, 0xABCDEF));
    for (uint32_t i = 1; i < cap; i++)
        assert_ptr_equal(conn_table_get(&t, i), CONN(i));
    assert_ptr_equal(conn_table_remove(&t, 5), CONN(5));
    assert_true(conn_table_put(&t, id, CONN(id)));
    assert_ptr_equal(conn_table_get(&t, id), CONN(id));
    conn_table_free(&t);
}

/* The reference: the live entries in a plain array. */
struct model {
    uint32_t *ids;
    void **conns;
    size_t n;
};

static void assert_table_matches(const struct conn_table *t, const struct model *m,
                                 uint32_t never_put)
{
    assert_int_equal(t->count, m->n);
    size_t used = 0;
    for (size_t i = 0; i <= t->mask; i++)
        used += t->slots[i].id != 0;
    assert_int_equal(used, m->n);
    for (size_t i = 0; i < m->n; i++)
        assert_ptr_equal(conn_table_get(t, m->ids[i]), m->conns[i]);
    assert_null(conn_table_get(t, never_put));
}

enum id_kind { SEQUENTIAL_IDS, SCATTERED_IDS };

/*
 * ops random puts and removes, the table checked against the model as it goes: completely
 * every check_every operations, and the touched ID after each one. The put/remove odds swing
 * every 20,000 operations so the table fills to fill_limit and drains to empty repeatedly.
 */
static void churn(size_t max_entries, size_t fill_limit, size_t ops, enum id_kind kind,
                  size_t check_every)
{
    struct conn_table t;
    assert_int_equal(conn_table_init(&t, max_entries), 0);
    assert_true(fill_limit <= t.mask);
    struct model m = {malloc(fill_limit * sizeof *m.ids), malloc(fill_limit * sizeof *m.conns), 0};
    assert_non_null(m.ids);
    assert_non_null(m.conns);

    uint64_t rng = 0x9E3779B97F4A7C15u;
    uint32_t counter = 0;
    size_t serial = 0;
    for (size_t op = 0; op < ops; op++) {
        uint64_t r = xorshift64(&rng);
        bool filling = (op / 20000) % 2 == 0;
        bool put = m.n == 0 || (m.n < fill_limit && r % 8 < (filling ? 5u : 3u));
        if (put) {
            counter++;
            uint32_t id = kind == SEQUENTIAL_IDS ? counter : mix32(counter);
            void *conn = CONN(++serial);
            assert_true(conn_table_put(&t, id, conn));
            if ((r >> 8) % 16 == 0)
                assert_false(conn_table_put(&t, id, CONN(0)));
            m.ids[m.n] = id;
            m.conns[m.n++] = conn;
            assert_ptr_equal(conn_table_get(&t, id), conn);
        } else {
            size_t k = (size_t)(r >> 8) % m.n;
            uint32_t id = m.ids[k];
            assert_ptr_equal(conn_table_remove(&t, id), m.conns[k]);
            assert_null(conn_table_get(&t, id));
            assert_null(conn_table_remove(&t, id));
            m.n--;
            m.ids[k] = m.ids[m.n];
            m.conns[k] = m.conns[m.n];
        }
        if ((op + 1) % check_every == 0) {
            uint32_t next = counter + 1;
            assert_table_matches(&t, &m, kind == SEQUENTIAL_IDS ? next : mix32(next));
        }
    }
    assert_table_matches(&t, &m, kind == SEQUENTIAL_IDS ? counter + 1 : mix32(counter + 1));
    free(m.ids);
    free(m.conns);
    conn_table_free(&t);
}

static void a_million_puts_and_removes_of_sequential_ids_match_the_model(void **state)
{
    (void)state;
    churn(4096, 4096, 1000000, SEQUENTIAL_IDS, 1024);
}

static void a_million_puts_and_removes_of_random_ids_match_the_model(void **state)
{
    (void)state;
    churn(4096, 4096, 1000000, SCATTERED_IDS, 1024);
}

/* A 16-slot table kept nearly full: every probe run is long and wraps around the end, which is
 * where backward-shift deletion can go wrong. Checked completely after every operation. */
static void churn_in_a_nearly_full_table_keeps_every_entry_findable(void **state)
{
    (void)state;
    churn(8, 15, 300000, SCATTERED_IDS, 1);
    churn(8, 15, 300000, SEQUENTIAL_IDS, 1);
}

/* ---- ids ---- */

static void sequential_ids_count_up_from_one(void **state)
{
    (void)state;
    struct id_allocator ids;
    ids_init(&ids, IDS_SEQUENTIAL);
    for (uint32_t want = 1; want <= 1000; want++) {
        uint32_t id = 0;
        assert_true(ids_next(&ids, &id));
        assert_int_equal(id, want);
    }
}

static void sequential_ids_run_out_after_the_largest_u32(void **state)
{
    (void)state;
    struct id_allocator ids;
    ids_init(&ids, IDS_SEQUENTIAL);
    ids.counter = UINT32_MAX - 2;
    uint32_t id;
    assert_true(ids_next(&ids, &id));
    assert_int_equal(id, UINT32_MAX - 1);
    assert_true(ids_next(&ids, &id));
    assert_int_equal(id, UINT32_MAX);
    assert_false(ids_next(&ids, &id));
    assert_false(ids_next(&ids, &id));
}

static int compare_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static void random_ids_are_distinct_non_zero_and_not_sequential(void **state)
{
    (void)state;
    enum { N = 100000 };
    uint32_t *v = malloc(N * sizeof *v);
    assert_non_null(v);
    struct id_allocator ids;
    ids_init(&ids, IDS_RANDOM);
    size_t steps = 0;
    for (size_t i = 0; i < N; i++) {
        assert_true(ids_next(&ids, &v[i]));
        assert_int_not_equal(v[i], 0);
        steps += i > 0 && v[i] == v[i - 1] + 1;
    }
    /* For random IDs a +1 step has odds 2^-32; a few would mean a pattern. */
    assert_true(steps < 10);
    qsort(v, N, sizeof *v, compare_u32);
    for (size_t i = 1; i < N; i++)
        assert_int_not_equal(v[i], v[i - 1]);
    /* Spread over the whole range, not clustered near the counter. */
    assert_true(v[N - 1] - v[0] > 0x80000000u);
    free(v);
}

static void two_random_allocators_hand_out_different_ids(void **state)
{
    (void)state;
    struct id_allocator a, b;
    ids_init(&a, IDS_RANDOM);
    ids_init(&b, IDS_RANDOM);
    int same = 0;
    for (int i = 0; i < 8; i++) {
        uint32_t x, y;
        assert_true(ids_next(&a, &x));
        assert_true(ids_next(&b, &y));
        same += x == y;
    }
    assert_true(same < 8);
}

/* ---- forked children: run code that exits, capture what it printed ---- */

#define CHILD_RETURNED 100 /* exit status of a child whose code returned instead of exiting */

struct child_result {
    int status;
    char out[16384];
    char err[16384];
};

static void slurp(FILE *f, char *buf, size_t cap)
{
    rewind(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static void run_forked(void (*body)(void *), void *arg, struct child_result *res)
{
    FILE *out = tmpfile(), *err = tmpfile();
    assert_non_null(out);
    assert_non_null(err);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (dup2(fileno(out), STDOUT_FILENO) < 0 || dup2(fileno(err), STDERR_FILENO) < 0)
            _exit(127);
        body(arg);
        fflush(stdout);
        fflush(stderr);
        _exit(CHILD_RETURNED);
    }
    res->status = wait_child(pid);
    slurp(out, res->out, sizeof res->out);
    slurp(err, res->err, sizeof res->err);
}

static void assert_exit_status(const struct child_result *res, int code)
{
    if (!WIFEXITED(res->status) || WEXITSTATUS(res->status) != code)
        fail_msg("child status 0x%x, wanted exit %d; stdout '%s' stderr '%s'", res->status, code,
                 res->out, res->err);
}

/* ---- options ---- */

static const char *const test_variants[] = {"plain", "deadlock", NULL};
static const char *const test_variant_help[] = {"the usual way", "locks in the wrong order"};
static const struct router_info test_info = {
    .name = "router-test",
    .summary = "a router that exists only in the unit tests",
    .variants = test_variants,
    .variant_help = test_variant_help,
};
static const struct router_info bare_info = {
    .name = "router-bare",
    .summary = "a router without variants",
};

#define ARGC(argv) ((int)(sizeof(argv) / sizeof(argv)[0]) - 1)

static void no_options_give_the_defaults(void **state)
{
    (void)state;
    char *argv[] = {"router-test", NULL};
    struct options o;
    options_parse(ARGC(argv), argv, &test_info, &o);
    assert_string_equal(o.host, "127.0.0.1");
    assert_int_equal(o.port, 8080);
    assert_int_equal(o.ids, IDS_SEQUENTIAL);
    assert_int_equal(o.max_message, 65536);
    assert_int_equal(o.max_clients, 10000);
    assert_int_equal(o.max_pending, 1024 * 1024);
    assert_true(o.error_frames);
    assert_int_equal(o.write_timeout_ms, 10000);
    assert_int_equal(o.work_us, 0);
    assert_int_equal(o.stats_interval_ms, 0);
    assert_string_equal(o.variant, "plain");

    char *bare[] = {"router-bare", NULL};
    options_parse(ARGC(bare), bare, &bare_info, &o);
    assert_null(o.variant);
}

static void every_option_sets_its_field(void **state)
{
    (void)state;
    /* The --name=value form here; the other tests use --name value. */
    char *argv[] = {
        "router-test",
        "--host=0.0.0.0",
        "--port=0",
        "--ids=random",
        "--max-message=1",
        "--max-clients=5",
        "--max-pending=4294967296",
        "--no-error-frames",
        "--write-timeout=0.25",
        "--work-us=1000000",
        "--stats-interval=2",
        "--variant=deadlock",
        "--quiet",
        NULL,
    };
    struct options o;
    options_parse(ARGC(argv), argv, &test_info, &o);
    log_set_level(LOG_INFO);
    assert_string_equal(o.host, "0.0.0.0");
    assert_int_equal(o.port, 0);
    assert_int_equal(o.ids, IDS_RANDOM);
    assert_int_equal(o.max_message, 1);
    assert_int_equal(o.max_clients, 5);
    assert_int_equal(o.max_pending, (size_t)1 << 32);
    assert_false(o.error_frames);
    assert_int_equal(o.write_timeout_ms, 250);
    assert_int_equal(o.work_us, 1000000);
    assert_int_equal(o.stats_interval_ms, 2000);
    assert_string_equal(o.variant, "deadlock");
}

static void parsing_again_starts_from_the_first_argument(void **state)
{
    (void)state;
    char *first[] = {"router-test", "--port", "1", "--ids", "random", NULL};
    char *second[] = {"router-test", "--port", "2", NULL};
    struct options o;
    options_parse(ARGC(first), first, &test_info, &o);
    assert_int_equal(o.port, 1);
    options_parse(ARGC(second), second, &test_info, &o);
    assert_int_equal(o.port, 2);
    assert_int_equal(o.ids, IDS_SEQUENTIAL);
}

static void port_takes_the_whole_u16_range(void **state)
{
    (void)state;
    char *top[] = {"router-test", "--port", "65535", "--ids", "sequential", NULL};
    char *low[] = {"router-test", "--port", "1", "--variant", "plain", NULL};
    struct options o;
    options_parse(ARGC(top), top, &test_info, &o);
    assert_int_equal(o.port, 65535);
    assert_int_equal(o.ids, IDS_SEQUENTIAL);
    options_parse(ARGC(low), low, &test_info, &o);
    assert_int_equal(o.port, 1);
    assert_string_equal(o.variant, "plain");
}

struct parse_call {
    const struct router_info *info;
    char **argv;
};

static void parse_in_child(void *arg)
{
    const struct parse_call *c = arg;
    int argc = 0;
    while (c->argv[argc])
        argc++;
    struct options o;
    options_parse(argc, c->argv, c->info, &o);
}

static void run_parse(const struct router_info *info, char **argv, struct child_result *res)
{
    struct parse_call c = {info, argv};
    run_forked(parse_in_child, &c, res);
}

/* Each bad command line exits 2, names the problem on stderr and shows the usage there. */
static void a_bad_option_exits_2_with_usage_on_stderr(void **state)
{
    (void)state;
    static const struct {
        const char *args[4];
        const char *says;
    } cases[] = {
        {{"--port", "70000"}, "--port wants a number from 0 to 65535, got '70000'"},
        {{"--port", "abc"}, "got 'abc'"},
        {{"--port", "-1"}, "got '-1'"},
        {{"--port", ""}, "got ''"},
        {{"--port", "80x"}, "got '80x'"},
        {{"--port", "99999999999999999999999"}, "got '99999999999999999999999'"},
        {{"--max-message", "0"}, "--max-message wants a number from 1 to"},
        {{"--max-clients", "1000001"}, "--max-clients wants a number from 1 to 1000000"},
        {{"--max-pending", "0"}, "--max-pending wants a number"},
        {{"--ids", "shuffled"}, "--ids is 'sequential' or 'random', not 'shuffled'"},
        {{"--work-us", "-1"}, "--work-us wants a number from 0 to 1000000, got '-1'"},
        {{"--work-us", "ten"}, "--work-us wants a number from 0 to 1000000, got 'ten'"},
        {{"--work-us", "1000001"}, "--work-us wants a number from 0 to 1000000, got '1000001'"},
        {{"--write-timeout", "-1"}, "--write-timeout wants seconds from 0 to 3600, got '-1'"},
        {{"--write-timeout", "soon"}, "--write-timeout wants seconds from 0 to 3600"},
        {{"--stats-interval", "4000"}, "--stats-interval wants seconds from 0 to 3600"},
        {{"--variant", "nope"}, "no variant named 'nope'"},
        {{"--bogus"}, "unknown option '--bogus'"},
        {{"-x"}, "unknown option '-x'"},
        {{"-qx"}, "unknown option '-q'"},
        {{"--help=yes"}, "unknown option '--help=yes'"},
        {{"--port"}, "--port needs a value"},
        {{"extra"}, "unexpected argument 'extra'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *argv[6] = {"router-test"};
        for (int a = 0; a < 4 && cases[i].args[a]; a++)
            argv[a + 1] = (char *)cases[i].args[a];
        struct child_result res;
        run_parse(&test_info, argv, &res);
        assert_exit_status(&res, 2);
        assert_string_equal(res.out, "");
        if (strncmp(res.err, "router-test: ", 13) != 0 || !strstr(res.err, cases[i].says) ||
            !strstr(res.err, "usage: router-test [options]"))
            fail_msg("case %zu: stderr was '%s', wanted '%s' and the usage", i, res.err,
                     cases[i].says);
    }
}

static void help_exits_0_with_usage_and_variants_on_stdout(void **state)
{
    (void)state;
    char *argv[] = {"router-test", "--help", "--bogus", NULL};
    struct child_result res;
    run_parse(&test_info, argv, &res);
    assert_exit_status(&res, 0);
    assert_string_equal(res.err, "");
    assert_non_null(strstr(res.out, "usage: router-test [options]"));
    assert_non_null(strstr(res.out, "a router that exists only in the unit tests"));
    assert_non_null(strstr(res.out, "--max-pending N"));
    assert_non_null(strstr(res.out, "plain"));
    assert_non_null(strstr(res.out, "(default)"));
    assert_non_null(strstr(res.out, "locks in the wrong order"));
}

static void version_prints_the_name_and_version(void **state)
{
    (void)state;
    char *argv[] = {"router-test", "--version", NULL};
    struct child_result res;
    run_parse(&test_info, argv, &res);
    assert_exit_status(&res, 0);
    assert_string_equal(res.out, "router-test " ROUTER_VERSION "\n");
    assert_string_equal(res.err, "");
}

static void variant_is_accepted_only_for_declared_names(void **state)
{
    (void)state;
    char *ok[] = {"router-test", "--variant", "deadlock", NULL};
    struct child_result res;
    run_parse(&test_info, ok, &res);
    assert_exit_status(&res, CHILD_RETURNED);

    char *prefix[] = {"router-test", "--variant", "dead", NULL};
    run_parse(&test_info, prefix, &res);
    assert_exit_status(&res, 2);

    char *none[] = {"router-bare", "--variant", "plain", NULL};
    run_parse(&bare_info, none, &res);
    assert_exit_status(&res, 2);
    assert_non_null(strstr(res.err, "no variant named 'plain'"));
}

/* A router's own option (router-sharded's --loops): parsed by its callback, in --help. */
static const char *own_value;
static const char *parse_own(const char *value)
{
    if (strcmp(value, "bad") == 0)
        return "--shards wants a good value, got '%s'";
    own_value = value;
    return NULL;
}
static const struct router_option own_options[] = {
    {"shards", "  --shards N         a router's own option", parse_own},
    {0},
};
static const struct router_info own_info = {
    .name = "router-own",
    .summary = "a router with an option of its own",
    .options = own_options,
};

static void a_routers_own_option_is_parsed_listed_and_checked(void **state)
{
    (void)state;
    char *both[] = {"router-own", "--shards", "3", "--port=7", NULL};
    struct options o;
    own_value = NULL;
    options_parse(ARGC(both), both, &own_info, &o);
    assert_string_equal(own_value, "3");
    assert_int_equal(o.port, 7);
    char *joined[] = {"router-own", "--shards=4", NULL};
    options_parse(ARGC(joined), joined, &own_info, &o);
    assert_string_equal(own_value, "4");

    struct child_result res;
    char *help[] = {"router-own", "--help", NULL};
    run_parse(&own_info, help, &res);
    assert_exit_status(&res, 0);
    assert_non_null(strstr(res.out, "  --shards N         a router's own option\n"));
    char *bad[] = {"router-own", "--shards", "bad", NULL};
    run_parse(&own_info, bad, &res);
    assert_exit_status(&res, 2);
    assert_non_null(strstr(res.err, "router-own: --shards wants a good value, got 'bad'"));
    assert_non_null(strstr(res.err, "usage: router-own [options]"));
    char *missing[] = {"router-own", "--shards", NULL};
    run_parse(&own_info, missing, &res);
    assert_exit_status(&res, 2);
    assert_non_null(strstr(res.err, "--shards needs a value"));
    char *elsewhere[] = {"router-test", "--shards", "3", NULL};
    run_parse(&test_info, elsewhere, &res);
    assert_exit_status(&res, 2);
    assert_non_null(strstr(res.err, "unknown option '--shards'"));
}

static void log_in_child(void *arg)
{
    char **argv = arg;
    int argc = 0;
    while (argv[argc])
        argc++;
    struct options o;
    options_parse(argc, argv, &test_info, &o);
    log_debug("a debug line");
    log_info("an info line");
    log_warn("a warning");
}

static void verbose_and_quiet_set_what_is_logged(void **state)
{
    (void)state;
    char *normal[] = {"router-test", NULL};
    char *verbose[] = {"router-test", "--verbose", NULL};
    char *quiet[] = {"router-test", "--quiet", NULL};
    struct child_result res;
    run_forked(log_in_child, normal, &res);
    assert_string_equal(res.err, "router-test: an info line\nrouter-test: a warning\n");
    run_forked(log_in_child, verbose, &res);
    assert_string_equal(res.err, "router-test: a debug line\nrouter-test: an info line\n"
                                 "router-test: a warning\n");
    run_forked(log_in_child, quiet, &res);
    assert_string_equal(res.err, "router-test: a warning\n");
}

static void summary_in_child(void *arg)
{
    (void)arg;
    struct stats s = {3, 10, 52, 1, 2, 4, 0};
    stats_print("router-test", NULL, &s, 0);
}

static void the_summary_is_one_line_with_every_counter(void **state)
{
    (void)state;
    struct child_result res;
    run_forked(summary_in_child, NULL, &res);
    assert_string_equal(res.err, "router-test: served 3 clients, forwarded 10 frames (52 bytes), "
                                 "dropped 1 frames, sent 2 error frames, evicted 4 slow "
                                 "consumers\n");
}

static void stats_line_in_child(void *arg)
{
    (void)arg;
    struct stats s = {1, 7, 70, 0, 0, 0, 7};
    stats_print("router-test", "stats", &s, 50);
}

static void a_stats_line_is_labelled_and_says_the_work_done(void **state)
{
    (void)state;
    struct child_result res;
    run_forked(stats_line_in_child, NULL, &res);
    assert_string_equal(res.err, "router-test: stats: served 1 clients, forwarded 7 frames (70 "
                                 "bytes), dropped 0 frames, sent 0 error frames, evicted 0 slow "
                                 "consumers, worked 50 us on each of 7 frames\n");
}

/* ---- work ---- */

static void work_is_a_deterministic_checksum_and_nothing_at_zero(void **state)
{
    (void)state;
    static const uint8_t a[] = "some payload", b[] = "some paylaod";
    work_calibrate();
    assert_true(work_rounds_per_us() > 0);
    assert_int_equal(work_do(a, sizeof a, 0), 0);
    uint32_t once = work_do(a, sizeof a, 5);
    assert_int_equal(work_do(a, sizeof a, 5), once);
    assert_int_not_equal(work_do(b, sizeof b, 5), once);
}

/* ---- server ---- */

struct server_call {
    char **argv;
    bool connect_to_self;
};

static void server_in_child(void *arg)
{
    const struct server_call *c = arg;
    int argc = 0;
    while (c->argv[argc])
        argc++;
    struct options o;
    int fd = server_start(argc, c->argv, &test_info, &o);
    if (c->connect_to_self) {
        struct client cl;
        if (client_connect_raw(&cl, "127.0.0.1", net_local_port(fd)) != 0)
            _exit(3);
        int got = server_wait_accept(fd);
        _exit(got >= 0 ? 101 : 4);
    }
    /* SIGTERM is blocked now: it waits, pending, for the signalfd in server_wait_accept. */
    kill(getpid(), SIGTERM);
    _exit(server_wait_accept(fd) == SERVER_STOP ? 102 : 5);
}

static void server_start_announces_and_accepts_and_stops_on_sigterm(void **state)
{
    (void)state;
    char *argv[] = {"router-test", "--port", "0", NULL};
    struct server_call accept_call = {argv, true}, stop_call = {argv, false};
    struct child_result res;
    run_forked(server_in_child, &accept_call, &res);
    assert_exit_status(&res, 101);
    unsigned port = 0;
    assert_int_equal(sscanf(res.out, "listening on 127.0.0.1:%u\n", &port), 1);
    assert_in_range(port, 1, 65535);
    run_forked(server_in_child, &stop_call, &res);
    assert_exit_status(&res, 102);
}

static void stats_interval_in_child(void *arg)
{
    char **argv = arg;
    int argc = 0;
    while (argv[argc])
        argc++;
    struct options o;
    int fd = server_start(argc, argv, &test_info, &o);
    _exit(server_wait_accept(fd) == SERVER_STATS ? 103 : 6);
}

/* With --stats-interval and nobody connecting, the wait ends with SERVER_STATS. */
static void wait_accept_says_when_a_stats_line_is_due(void **state)
{
    (void)state;
    char *argv[] = {"router-test", "--port", "0", "--stats-interval", "0.05", NULL};
    struct child_result res;
    run_forked(stats_interval_in_child, argv, &res);
    assert_exit_status(&res, 103);
}

static void server_start_exits_1_when_the_port_is_taken(void **state)
{
    (void)state;
    char err[NET_ERR_LEN];
    int taken = net_listen("127.0.0.1", 0, err);
    assert_true(taken >= 0);
    char port[8], want[128];
    snprintf(port, sizeof port, "%u", net_local_port(taken));
    snprintf(want, sizeof want, "router-test: bind 127.0.0.1:%s: Address already in use\n", port);
    char *argv[] = {"router-test", "--port", port, NULL};
    struct server_call call = {argv, false};
    struct child_result res;
    run_forked(server_in_child, &call, &res);
    assert_exit_status(&res, 1);
    assert_string_equal(res.err, want);
    assert_string_equal(res.out, "");
    assert_int_equal(close(taken), 0);
}

/* ---- net ---- */

static void listening_on_port_zero_gets_a_real_port(void **state)
{
    (void)state;
    char err[NET_ERR_LEN];
    int lfd = net_listen("127.0.0.1", 0, err);
    assert_true(lfd >= 0);
    uint16_t port = net_local_port(lfd);
    assert_int_not_equal(port, 0);
    struct client c;
    assert_int_equal(client_connect_raw(&c, "127.0.0.1", port), 0);
    int fd = net_accept(lfd);
    assert_true(fd >= 0);
    int nodelay = 0;
    socklen_t len = sizeof nodelay;
    assert_int_equal(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len), 0);
    assert_int_not_equal(nodelay, 0);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(net_write_all(fd, "ping", 4), 0);
    char buf[4];
    assert_int_equal(client_recv_exact(&c, buf, 4, 5000), 0);
    assert_memory_equal(buf, "ping", 4);
    client_close(&c);
    assert_int_equal(close(fd), 0);
    assert_int_equal(close(lfd), 0);
}

static void binding_a_taken_port_says_address_already_in_use(void **state)
{
    (void)state;
    char err[NET_ERR_LEN];
    int lfd = net_listen("127.0.0.1", 0, err);
    assert_true(lfd >= 0);
    uint16_t port = net_local_port(lfd);
    int fds_before = proc_count_fds(getpid());
    assert_int_equal(net_listen("127.0.0.1", port, err), -1);
    char want[NET_ERR_LEN];
    snprintf(want, sizeof want, "bind 127.0.0.1:%u: Address already in use", port);
    assert_string_equal(err, want);
    assert_int_equal(proc_count_fds(getpid()), fds_before);
    assert_int_equal(close(lfd), 0);
}

/* A thread that reads a socket to EOF, slowly, so that the writer meets a full buffer. */
struct drain {
    int fd;
    uint8_t *buf;
    size_t cap, len;
    bool failed;
    pthread_t thread;
};

static void *drain_main(void *arg)
{
    struct drain *d = arg;
    for (size_t reads = 1;; reads++) {
        uint8_t spare; /* a byte beyond cap would mean more arrived than was sent */
        size_t room = d->cap - d->len;
        size_t want = room == 0 ? 1 : room < 1000 ? room : 1000;
        ssize_t n = net_read(d->fd, room ? d->buf + d->len : &spare, want);
        if (n == 0)
            return NULL;
        if (n < 0 || room == 0) {
            d->failed = true;
            return NULL;
        }
        d->len += (size_t)n;
        if (reads % 64 == 0)
            sleep_ms(1);
    }
}

static void drain_start(struct drain *d, int fd, size_t cap)
{
    *d = (struct drain){.fd = fd, .buf = malloc(cap), .cap = cap};
    assert_non_null(d->buf);
    assert_int_equal(pthread_create(&d->thread, NULL, drain_main, d), 0);
}

/* Waits for the reader and checks it got exactly want[0..len). */
static void drain_finish(struct drain *d, const uint8_t *want, size_t len)
{
    assert_int_equal(pthread_join(d->thread, NULL), 0);
    assert_false(d->failed);
    assert_int_equal(d->len, len);
    assert_memory_equal(d->buf, want, len);
    free(d->buf);
}

static uint8_t *pattern(size_t len, uint64_t seed)
{
    uint8_t *p = malloc(len);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)xorshift64(&seed);
    return p;
}

static void small_buffer_pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(net_set_sndbuf(sv[0], 4096), 0);
}

static void write_all_delivers_everything_across_partial_writes(void **state)
{
    (void)state;
    enum { LEN = 1 << 20 };
    uint8_t *src = pattern(LEN, 1);
    int sv[2];
    small_buffer_pair(sv);
    /* Non-blocking with a small buffer: one write cannot take 1 MiB, so there are partial
     * writes and EAGAINs in between, which net_write_all must wait out. */
    assert_int_equal(net_set_nonblocking(sv[0]), 0);
    struct drain d;
    drain_start(&d, sv[1], LEN);
    assert_int_equal(net_write_all(sv[0], src, LEN), 0);
    assert_int_equal(close(sv[0]), 0);
    drain_finish(&d, src, LEN);
    assert_int_equal(close(sv[1]), 0);
    free(src);
}

static void writev_all_delivers_more_buffers_than_iov_max_in_order(void **state)
{
    (void)state;
    enum { NIOV = 3000, STRIDE = 700 };
    uint8_t *src = pattern((size_t)NIOV * STRIDE, 2);
    uint8_t *want = malloc((size_t)NIOV * STRIDE);
    struct iovec *iov = malloc(NIOV * sizeof *iov);
    assert_non_null(want);
    assert_non_null(iov);
    /* Buffers with gaps between them, some empty (the first and the last too), so bytes
     * only arrive right if each buffer is taken from where it is. */
    size_t total = 0;
    for (size_t i = 0; i < NIOV; i++) {
        size_t len = i == 0 || i == NIOV - 1 || i % 7 == 3 ? 0 : (i * 37) % (STRIDE - 1);
        iov[i] = (struct iovec){.iov_base = src + i * STRIDE + 1, .iov_len = len};
        memcpy(want + total, iov[i].iov_base, len);
        total += len;
    }
    int sv[2];
    small_buffer_pair(sv);
    assert_int_equal(net_set_nonblocking(sv[0]), 0);
    struct drain d;
    drain_start(&d, sv[1], total);
    assert_int_equal(net_writev_all(sv[0], iov, NIOV), 0);
    assert_int_equal(close(sv[0]), 0);
    drain_finish(&d, want, total);
    assert_int_equal(close(sv[1]), 0);
    free(iov);
    free(want);
    free(src);
}

static void write_all_on_a_full_nonblocking_socket_reports_eagain(void **state)
{
    (void)state;
    int sv[2];
    small_buffer_pair(sv);
    assert_int_equal(net_set_nonblocking(sv[0]), 0);
    char block[512] = {0};
    while (write(sv[0], block, sizeof block) > 0)
        ;
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    errno = 0;
    assert_int_equal(net_write_all(sv[0], "x", 1), -1);
    assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
    assert_int_equal(net_write_all(sv[0], "", 0), 0);
    assert_int_equal(close(sv[0]), 0);
    assert_int_equal(close(sv[1]), 0);
}

static void write_all_to_a_closed_peer_fails_with_epipe(void **state)
{
    (void)state;
    char err[NET_ERR_LEN];
    size_t limit;
    assert_int_equal(net_setup_process(16, &limit, err), 0); /* SIGPIPE ignored */
    assert_true(limit >= 16);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    assert_int_equal(close(sv[1]), 0);
    errno = 0;
    assert_int_equal(net_write_all(sv[0], "x", 1), -1);
    assert_int_equal(errno, EPIPE);
    assert_int_equal(close(sv[0]), 0);
}

/* Signals without SA_RESTART, so a blocked read or write returns EINTR. */
static volatile sig_atomic_t signals_caught;

static void count_signal(int sig)
{
    (void)sig;
    signals_caught++;
}

static void catch_sigusr1(struct sigaction *old)
{
    struct sigaction sa = {.sa_handler = count_signal};
    sigemptyset(&sa.sa_mask);
    signals_caught = 0;
    assert_int_equal(sigaction(SIGUSR1, &sa, old), 0);
}

struct blocked_call {
    int fd;
    const uint8_t *src;
    size_t len;
    int rc;
    char byte;
    pthread_t thread;
};

static void *write_all_main(void *arg)
{
    struct blocked_call *b = arg;
    b->rc = net_write_all(b->fd, b->src, b->len);
    return NULL;
}

static void write_all_keeps_going_when_signals_interrupt_it(void **state)
{
    (void)state;
    enum { LEN = 1 << 20 };
    struct sigaction old;
    catch_sigusr1(&old);
    uint8_t *src = pattern(LEN, 3);
    int sv[2];
    small_buffer_pair(sv); /* blocking: the writer sleeps in write() once the buffer is full */
    struct blocked_call w = {.fd = sv[0], .src = src, .len = LEN, .rc = 1};
    assert_int_equal(pthread_create(&w.thread, NULL, write_all_main, &w), 0);
    for (int i = 0; i < 5; i++) {
        sleep_ms(20);
        assert_int_equal(pthread_kill(w.thread, SIGUSR1), 0);
    }
    struct drain d;
    drain_start(&d, sv[1], LEN);
    assert_int_equal(pthread_join(w.thread, NULL), 0);
    assert_int_equal(w.rc, 0);
    assert_int_equal(close(sv[0]), 0);
    drain_finish(&d, src, LEN);
    assert_true(signals_caught >= 1); /* signals sent close together may merge */
    assert_int_equal(close(sv[1]), 0);
    assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
    free(src);
}

static void *read_main(void *arg)
{
    struct blocked_call *b = arg;
    b->rc = (int)net_read(b->fd, &b->byte, 1);
    return NULL;
}

static void read_keeps_waiting_when_signals_interrupt_it(void **state)
{
    (void)state;
    struct sigaction old;
    catch_sigusr1(&old);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct blocked_call r = {.fd = sv[1], .rc = -2};
    assert_int_equal(pthread_create(&r.thread, NULL, read_main, &r), 0);
    for (int i = 0; i < 3; i++) {
        sleep_ms(20);
        assert_int_equal(pthread_kill(r.thread, SIGUSR1), 0);
    }
    sleep_ms(20);
    assert_int_equal(net_write_all(sv[0], "z", 1), 0);
    assert_int_equal(pthread_join(r.thread, NULL), 0);
    assert_int_equal(r.rc, 1);
    assert_int_equal(r.byte, 'z');
    assert_true(signals_caught >= 1);
    assert_int_equal(close(sv[0]), 0);
    assert_int_equal(close(sv[1]), 0);
    assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
}

/* ---- frame_reader, over a socketpair ---- */

/* Puts dest, payload and its NUL at out; returns the frame's length. */
static size_t put_frame(uint8_t *out, uint32_t dest, const char *payload)
{
    size_t n = strlen(payload) + 1;
    frame_put_u32(out, dest);
    memcpy(out + PROTO_ID_LEN, payload, n);
    return PROTO_ID_LEN + n;
}

static void assert_frame(const struct frame *f, uint32_t dest, const char *payload)
{
    assert_int_equal(f->dest, dest);
    assert_int_equal(f->body_len, strlen(payload) + 1);
    assert_memory_equal(f->body, payload, f->body_len);
}

/* A socketpair whose reading end sv[1] gives up after 5 s, so that a reader waiting for bytes
 * that will never come fails the test instead of hanging it. */
static void reader_pair(int sv[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    struct timeval limit = {.tv_sec = 5};
    assert_int_equal(setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit), 0);
}

static void close_pair(int sv[2])
{
    assert_int_equal(close(sv[0]), 0);
    assert_int_equal(close(sv[1]), 0);
}

/* A reader on one end of a socketpair, and a thread that writes wire to the other end: for more
 * bytes than a socket buffer is sure to hold. */
struct streamed {
    int sv[2];
    uint8_t *wire; /* on the heap; freed by streamed_finish */
    struct blocked_call writer;
    struct frame_reader r;
};

static void streamed_start(struct streamed *s, uint8_t *wire, size_t len, size_t max_message)
{
    s->wire = wire;
    reader_pair(s->sv);
    s->writer = (struct blocked_call){.fd = s->sv[0], .src = wire, .len = len, .rc = -2};
    assert_int_equal(pthread_create(&s->writer.thread, NULL, write_all_main, &s->writer), 0);
    assert_int_equal(frame_reader_init(&s->r, s->sv[1], max_message), 0);
}

/* Checks that the writer wrote everything, and frees. */
static void streamed_finish(struct streamed *s)
{
    assert_int_equal(pthread_join(s->writer.thread, NULL), 0);
    assert_int_equal(s->writer.rc, 0);
    frame_reader_free(&s->r);
    close_pair(s->sv);
    free(s->wire);
}

static void frames_that_arrive_in_one_read_all_come_out_before_the_next(void **state)
{
    (void)state;
    uint8_t wire[64];
    size_t len = put_frame(wire, 1, "one");
    len += put_frame(wire + len, 2, "");
    len += put_frame(wire + len, 3, "three");
    int sv[2];
    reader_pair(sv);
    assert_int_equal(net_set_nonblocking(sv[1]),
                     0); /* a read with nothing there fails, not hangs */
    assert_int_equal(net_write_all(sv[0], wire, len), 0);

    struct frame_reader r;
    assert_int_equal(frame_reader_init(&r, sv[1], 100), 0);
    assert_int_equal(frame_reader_fill(&r), len);
    struct frame f;
    assert_int_equal(frame_reader_next(&r, &f), 1);
    assert_frame(&f, 1, "one");
    assert_true(f.body > r.buf && f.body < r.buf + r.len); /* zero copy */
    assert_int_equal(frame_reader_next(&r, &f), 1);
    assert_frame(&f, 2, "");
    assert_int_equal(frame_reader_next(&r, &f), 1);
    assert_frame(&f, 3, "three");
    assert_int_equal(frame_reader_next(&r, &f), FRAME_NEED_MORE);
    assert_int_equal(frame_reader_fill(&r), -1); /* the one read took every byte */
    assert_int_equal(errno, EAGAIN);
    frame_reader_free(&r);
    close_pair(sv);
}

static void a_frame_that_arrives_byte_by_byte_comes_out_whole(void **state)
{
    (void)state;
    uint8_t wire[64];
    size_t first = put_frame(wire, 7, "first");
    size_t len = first + put_frame(wire + first, 8, "second");
    int sv[2];
    reader_pair(sv);
    struct frame_reader r;
    assert_int_equal(frame_reader_init(&r, sv[1], 100), 0);
    struct frame f;
    for (size_t i = 0; i < len; i++) {
        assert_int_equal(net_write_all(sv[0], wire + i, 1), 0);
        assert_int_equal(frame_reader_fill(&r), 1);
        bool last_byte = i == first - 1 || i == len - 1;
        assert_int_equal(frame_reader_next(&r, &f), last_byte ? 1 : FRAME_NEED_MORE);
        if (last_byte) {
            assert_frame(&f, i < first ? 7 : 8, i < first ? "first" : "second");
            assert_int_equal(frame_reader_next(&r, &f), FRAME_NEED_MORE);
        }
    }
    frame_reader_free(&r);
    close_pair(sv);
}

/* 200 frames of 104 bytes: frames straddle every 4 KiB read, and none ever fills the buffer. */
static void small_frames_come_out_in_order_and_never_grow_the_buffer(void **state)
{
    (void)state;
    enum { FRAMES = 200, PAYLOAD = 99, FRAME_LEN = PROTO_ID_LEN + PAYLOAD + 1 };
    uint8_t *wire = malloc(FRAMES * FRAME_LEN);
    assert_non_null(wire);
    char payload[PAYLOAD + 1] = {0};
    for (int i = 0; i < FRAMES; i++) {
        memset(payload, 'a' + i % 26, PAYLOAD);
        put_frame(wire + i * FRAME_LEN, (uint32_t)i + 1, payload);
    }
    struct streamed s;
    streamed_start(&s, wire, FRAMES * FRAME_LEN, OPTIONS_DEFAULT_MAX_MESSAGE);
    struct frame f;
    int got, seen = 0;
    while (seen < FRAMES) {
        assert_true(frame_reader_fill(&s.r) > 0);
        while ((got = frame_reader_next(&s.r, &f)) > 0) {
            memset(payload, 'a' + seen % 26, PAYLOAD);
            assert_frame(&f, (uint32_t)seen + 1, payload);
            seen++;
        }
        assert_int_equal(got, FRAME_NEED_MORE);
        assert_int_equal(s.r.cap, FRAME_READER_START);
    }
    streamed_finish(&s);
}

static void the_longest_frame_grows_the_buffer_to_one_frame_and_no_more(void **state)
{
    (void)state;
    enum { MAX = 65536, WHOLE = PROTO_ID_LEN + MAX + 1 };
    uint8_t *wire = malloc(WHOLE);
    assert_non_null(wire);
    frame_put_u32(wire, 42);
    memset(wire + PROTO_ID_LEN, 'x', MAX);
    wire[WHOLE - 1] = '\0';
    struct streamed s;
    streamed_start(&s, wire, WHOLE, MAX);
    assert_int_equal(s.r.cap, FRAME_READER_START);
    struct frame f;
    int got;
    do {
        assert_true(frame_reader_fill(&s.r) > 0);
        assert_true(s.r.cap <= WHOLE);
    } while ((got = frame_reader_next(&s.r, &f)) == FRAME_NEED_MORE);
    assert_int_equal(got, 1);
    assert_int_equal(f.dest, 42);
    assert_int_equal(f.body_len, MAX + 1);
    assert_memory_equal(f.body, wire + PROTO_ID_LEN, MAX + 1);
    assert_int_equal(s.r.cap, WHOLE);
    streamed_finish(&s);
}

static void a_frame_too_long_is_reported_after_the_frames_before_it(void **state)
{
    (void)state;
    uint8_t wire[32];
    size_t len = put_frame(wire, 5, "12345678"); /* exactly --max-message 8 */
    frame_put_u32(wire + len, 6);
    memcpy(wire + len + PROTO_ID_LEN, "123456789", 9); /* one byte over, no NUL yet */
    len += PROTO_ID_LEN + 9;
    int sv[2];
    reader_pair(sv);
    assert_int_equal(net_write_all(sv[0], wire, len), 0);

    struct frame_reader r;
    assert_int_equal(frame_reader_init(&r, sv[1], 8), 0);
    assert_int_equal(r.cap, PROTO_ID_LEN + 8 + 1); /* one whole frame is less than 4 KiB */
    struct frame f;
    assert_int_equal(frame_reader_fill(&r), 13);
    assert_int_equal(frame_reader_next(&r, &f), 1);
    assert_frame(&f, 5, "12345678");
    assert_int_equal(frame_reader_next(&r, &f), FRAME_NEED_MORE);
    assert_int_equal(frame_reader_fill(&r), 13);
    assert_int_equal(frame_reader_next(&r, &f), FRAME_TOO_LONG);
    assert_int_equal(frame_reader_next(&r, &f), FRAME_TOO_LONG);
    assert_int_equal(r.cap, 13);
    frame_reader_free(&r);
    close_pair(sv);
}

static void a_frame_too_long_is_found_once_the_buffer_holds_one_whole_frame(void **state)
{
    (void)state;
    enum { MAX = 10000, WHOLE = PROTO_ID_LEN + MAX + 1 };
    uint8_t *wire = malloc(WHOLE);
    assert_non_null(wire);
    memset(wire, 'y', WHOLE); /* dest 0x79797979, then MAX + 1 bytes and no NUL */
    struct streamed s;
    streamed_start(&s, wire, WHOLE, MAX);
    struct frame f;
    int got;
    do
        assert_true(frame_reader_fill(&s.r) > 0);
    while ((got = frame_reader_next(&s.r, &f)) == FRAME_NEED_MORE);
    assert_int_equal(got, FRAME_TOO_LONG);
    assert_int_equal(s.r.len, WHOLE);
    assert_int_equal(s.r.cap, WHOLE);
    streamed_finish(&s);
}

/* 3,000 bytes, then 1,000 more, of a frame cut short by EOF: the buffer grows only for a
 * partial frame that fills it, and EOF after a partial frame is just EOF. */
static void a_partial_frame_keeps_the_buffer_and_eof_after_it_reads_0(void **state)
{
    (void)state;
    enum { PART = 3000, MORE = 1000 };
    uint8_t wire[PART + MORE];
    memset(wire, 'z', sizeof wire);
    int sv[2];
    reader_pair(sv);
    struct frame_reader r;
    assert_int_equal(frame_reader_init(&r, sv[1], OPTIONS_DEFAULT_MAX_MESSAGE), 0);
    struct frame f;
    assert_int_equal(net_write_all(sv[0], wire, PART), 0);
    assert_int_equal(frame_reader_fill(&r), PART);
    assert_int_equal(frame_reader_next(&r, &f), FRAME_NEED_MORE);
    assert_int_equal(net_write_all(sv[0], wire + PART, MORE), 0);
    assert_int_equal(frame_reader_fill(&r), MORE);
    assert_int_equal(frame_reader_next(&r, &f), FRAME_NEED_MORE);
    assert_int_equal(r.cap, FRAME_READER_START);
    assert_int_equal(close(sv[0]), 0);
    assert_int_equal(frame_reader_fill(&r), 0);
    assert_int_equal(frame_reader_next(&r, &f), FRAME_NEED_MORE);
    frame_reader_free(&r);
    assert_null(r.buf);
    assert_int_equal(close(sv[1]), 0);
}

/* ---- the client library, against a fake router in a thread ---- */

struct fake_router {
    int listen_fd;
    uint16_t port;
    const void *script; /* sent in one write right after accept */
    size_t script_len;
    bool hang_up; /* close right after the script; otherwise read until the client closes */
    uint8_t received[256];
    size_t received_len;
    bool failed;
    pthread_t thread;
};

static void *fake_router_main(void *arg)
{
    struct fake_router *f = arg;
    int fd = net_accept(f->listen_fd);
    if (fd < 0) {
        f->failed = true;
        return NULL;
    }
    if (net_write_all(fd, f->script, f->script_len) != 0)
        f->failed = true;
    while (!f->hang_up && !f->failed) {
        uint8_t *at = f->received + f->received_len;
        ssize_t n = net_read(fd, at, sizeof f->received - f->received_len);
        if (n <= 0) {
            f->failed = n < 0 || f->received_len == sizeof f->received;
            break;
        }
        f->received_len += (size_t)n;
    }
    if (close(fd) != 0)
        f->failed = true;
    return NULL;
}

static void fake_router_start(struct fake_router *f, const void *script, size_t len, bool hang_up)
{
    char err[NET_ERR_LEN];
    *f = (struct fake_router){.script = script, .script_len = len, .hang_up = hang_up};
    f->listen_fd = net_listen("127.0.0.1", 0, err);
    assert_true(f->listen_fd >= 0);
    f->port = net_local_port(f->listen_fd);
    assert_int_equal(pthread_create(&f->thread, NULL, fake_router_main, f), 0);
}

static void fake_router_finish(struct fake_router *f)
{
    assert_int_equal(pthread_join(f->thread, NULL), 0);
    assert_false(f->failed);
    assert_int_equal(close(f->listen_fd), 0);
}

/* Waits until n bytes sit unread in the client's socket, so the next read takes them all. */
static void wait_for_unread(const struct client *c, int n)
{
    int64_t deadline = clock_now_ms() + 5000;
    int queued = 0;
    while (ioctl(c->fd, FIONREAD, &queued) == 0 && queued < n && clock_now_ms() < deadline)
        sleep_ms(1);
    assert_int_equal(queued, n);
}

static void connect_reads_the_id_the_router_sends_first(void **state)
{
    (void)state;
    struct fake_router f;
    fake_router_start(&f, "\xDE\xAD\xBE\xEF", 4, false);
    struct client c;
    assert_int_equal(client_connect(&c, "127.0.0.1", f.port, 5000), 0);
    assert_int_equal(c.id, 0xDEADBEEFu);
    assert_true(c.fd >= 0);
    client_close(&c);
    assert_int_equal(c.fd, -1);
    fake_router_finish(&f);
}

static void frames_that_arrive_in_one_read_come_out_one_by_one(void **state)
{
    (void)state;
    /* The ID and four frames in one write: the bytes after the ID are kept for client_recv. */
    static const char script[] = "\x00\x00\x00\x05"
                                 "one\0two\0\0\xFF"
                                 "error\0";
    struct fake_router f;
    fake_router_start(&f, script, sizeof script - 1, false);
    struct client c;
    assert_int_equal(client_connect_raw(&c, "127.0.0.1", f.port), 0);
    wait_for_unread(&c, sizeof script - 1);
    uint8_t id[4];
    assert_int_equal(client_recv_exact(&c, id, 4, 1000), 0);
    assert_int_equal(frame_get_u32(id), 5);
    int queued = -1;
    assert_int_equal(ioctl(c.fd, FIONREAD, &queued), 0);
    assert_int_equal(queued, 0); /* all of it was read at once */

    char buf[16];
    assert_int_equal(client_recv(&c, buf, sizeof buf, 0), 3);
    assert_memory_equal(buf, "one", 3);
    assert_int_equal(client_recv(&c, buf, sizeof buf, 0), 3);
    assert_memory_equal(buf, "two", 3);
    assert_int_equal(client_recv(&c, buf, sizeof buf, 0), 0);
    assert_int_equal(client_recv(&c, buf, sizeof buf, 0), 6);
    assert_memory_equal(buf,
                        "\xFF"
                        "error",
                        6);
    assert_int_equal(client_recv(&c, buf, sizeof buf, 0), CLIENT_TIMEOUT);
    client_close(&c);
    fake_router_finish(&f);
}

static void recv_times_out_while_a_frame_is_incomplete(void **state)
{
    (void)state;
    struct fake_router f;
    fake_router_start(&f, "\0\0\0\1partial", 11, false);
    struct client c;
    assert_int_equal(client_connect(&c, "127.0.0.1", f.port, 5000), 0);
    char buf[16];
    int64_t start = clock_now_ms();
    assert_int_equal(client_recv(&c, buf, sizeof buf, 100), CLIENT_TIMEOUT);
    int64_t waited = clock_now_ms() - start;
    assert_true(waited >= 99);
    assert_true(waited < 10000);
    client_close(&c);
    fake_router_finish(&f);
}

static void recv_reports_closed_when_the_router_hangs_up(void **state)
{
    (void)state;
    struct fake_router f;
    fake_router_start(&f, "\0\0\0\1whole\0cut", 13, true);
    struct client c;
    assert_int_equal(client_connect(&c, "127.0.0.1", f.port, 5000), 0);
    char buf[16];
    assert_int_equal(client_recv(&c, buf, sizeof buf, 5000), 5);
    assert_int_equal(client_recv(&c, buf, sizeof buf, 5000), CLIENT_CLOSED);
    client_close(&c);
    fake_router_finish(&f);
}

static void a_frame_too_big_for_the_buffer_is_reported_and_skipped(void **state)
{
    (void)state;
    static const char script[] = "\0\0\0\1"
                                 "0123456789\0"
                                 "12345678\0"
                                 "ok\0";
    struct fake_router f;
    fake_router_start(&f, script, sizeof script - 1, false);
    struct client c;
    assert_int_equal(client_connect(&c, "127.0.0.1", f.port, 5000), 0);
    char buf[8];
    assert_int_equal(client_recv(&c, buf, sizeof buf, 5000), CLIENT_TOO_BIG);
    assert_int_equal(client_recv(&c, buf, sizeof buf, 5000), 8); /* exactly fills buf */
    assert_memory_equal(buf, "12345678", 8);
    assert_int_equal(client_recv(&c, buf, sizeof buf, 5000), 2);
    assert_memory_equal(buf, "ok", 2);
    client_close(&c);
    fake_router_finish(&f);
}

static void send_writes_the_id_the_payload_and_a_nul(void **state)
{
    (void)state;
    struct fake_router f;
    fake_router_start(&f, "\0\0\0\1", 4, false);
    struct client c;
    assert_int_equal(client_connect(&c, "127.0.0.1", f.port, 5000), 0);
    assert_int_equal(client_send(&c, 0x01020304u, "hi", 2), 0);
    assert_int_equal(client_send(&c, 0xFFFFFFFFu, "", 0), 0);
    assert_int_equal(client_send_raw(&c, "\0\0", 2), 0);
    client_close(&c);
    fake_router_finish(&f);
    static const uint8_t want[] = {1, 2, 3, 4, 'h', 'i', 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0};
    assert_int_equal(f.received_len, sizeof want);
    assert_memory_equal(f.received, want, sizeof want);
}

static void connect_times_out_when_no_id_arrives(void **state)
{
    (void)state;
    char err[NET_ERR_LEN];
    int lfd = net_listen("127.0.0.1", 0, err); /* never accepts: the kernel completes connects */
    assert_true(lfd >= 0);
    int fds_before = proc_count_fds(getpid());
    struct client c;
    errno = 0;
    assert_int_equal(client_connect(&c, "127.0.0.1", net_local_port(lfd), 100), -1);
    assert_int_equal(errno, ETIMEDOUT);
    assert_int_equal(c.fd, -1);
    assert_int_equal(proc_count_fds(getpid()), fds_before);
    assert_int_equal(close(lfd), 0);
}

static void connect_fails_when_the_router_closes_before_the_id(void **state)
{
    (void)state;
    struct fake_router f;
    fake_router_start(&f, "\0\0", 2, true);
    struct client c;
    errno = 0;
    assert_int_equal(client_connect(&c, "127.0.0.1", f.port, 5000), -1);
    assert_int_equal(errno, ECONNRESET);
    fake_router_finish(&f);
}

static void connect_to_a_closed_port_is_refused(void **state)
{
    (void)state;
    char err[NET_ERR_LEN];
    int lfd = net_listen("127.0.0.1", 0, err);
    assert_true(lfd >= 0);
    uint16_t port = net_local_port(lfd);
    assert_int_equal(close(lfd), 0);
    struct client c;
    errno = 0;
    assert_int_equal(client_connect(&c, "127.0.0.1", port, 1000), -1);
    assert_int_equal(errno, ECONNREFUSED);
}

/* ---- router_spawn, with /bin/sh scripts standing in for routers ---- */

/* sh -c SCRIPT gets "--port 0" appended, which become $0 and $1. */
static int spawn_script(const char *script, int stderr_fd, struct router_proc *r)
{
    char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
    return router_proc_start(argv, stderr_fd, r);
}

static void spawn_takes_the_port_from_the_first_line_and_leaves_the_rest(void **state)
{
    (void)state;
    struct router_proc r;
    assert_int_equal(
        spawn_script("echo listening on 127.0.0.1:4242; echo \"$0 $1\"; exec sleep 30", -1, &r), 0);
    assert_int_equal(r.port, 4242);
    assert_true(r.pid > 0);
    char rest[32] = {0};
    size_t n = 0;
    while (n < 9) {
        ssize_t got = net_read(r.stdout_fd, rest + n, sizeof rest - 1 - n);
        assert_true(got > 0);
        n += (size_t)got;
    }
    assert_string_equal(rest, "--port 0\n");
    pid_t pid = r.pid;
    int status = 0;
    assert_int_equal(router_proc_stop(&r, SIGTERM, 5000, &status), 0);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGTERM);
    assert_int_equal(r.pid, -1);
    assert_int_equal(r.stdout_fd, -1);
    assert_int_equal(kill(pid, 0), -1);
}

static void spawn_fails_cleanly_without_a_listening_line(void **state)
{
    (void)state;
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    assert_true(devnull >= 0);
    /* router_spawn explains each failure on stderr: keep that out of the test output. */
    int saved_stderr = dup(STDERR_FILENO);
    assert_true(saved_stderr >= 0);
    assert_true(dup2(devnull, STDERR_FILENO) >= 0);
    int fds_before = proc_count_fds(getpid());
    struct router_proc r;
    int bad_line = spawn_script("echo bind failed; exit 1", devnull, &r);
    int bad_port = spawn_script("echo listening on nowhere; exec sleep 30", devnull, &r);
    char *missing[] = {"/nonexistent/router", NULL};
    int no_exec = router_proc_start(missing, devnull, &r);
    int fds_after = proc_count_fds(getpid());
    assert_true(dup2(saved_stderr, STDERR_FILENO) >= 0);
    assert_int_equal(close(saved_stderr), 0);
    assert_int_equal(bad_line, -1);
    assert_int_equal(bad_port, -1);
    assert_int_equal(no_exec, -1);
    assert_int_equal(fds_after, fds_before);
    /* Every child was reaped: none is left to wait for. */
    errno = 0;
    assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
    assert_int_equal(errno, ECHILD);
    assert_int_equal(close(devnull), 0);
}

static void stop_kills_a_router_that_ignores_the_signal(void **state)
{
    (void)state;
    struct router_proc r;
    assert_int_equal(
        spawn_script("trap '' TERM; echo listening on 127.0.0.1:1; exec sleep 30", -1, &r), 0);
    pid_t pid = r.pid;
    int status = 0;
    int64_t start = clock_now_ms();
    assert_int_equal(router_proc_stop(&r, SIGTERM, 200, &status), -1);
    assert_true(clock_now_ms() - start >= 200);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    assert_int_equal(kill(pid, 0), -1);
}

static void a_spawned_router_does_not_inherit_blocked_signals(void **state)
{
    (void)state;
    sigset_t term, old;
    sigemptyset(&term);
    sigaddset(&term, SIGTERM);
    assert_int_equal(pthread_sigmask(SIG_BLOCK, &term, &old), 0);
    struct router_proc r;
    int rc = spawn_script("echo listening on 127.0.0.1:1; exec sleep 30", -1, &r);
    assert_int_equal(pthread_sigmask(SIG_SETMASK, &old, NULL), 0);
    assert_int_equal(rc, 0);
    int status = 0;
    assert_int_equal(router_proc_stop(&r, SIGTERM, 2000, &status), 0);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGTERM);
}

/* Sends SIGUSR1 to a thread every 10 ms until told to stop. */
struct pinger {
    pthread_t target, thread;
    atomic_bool stop;
};

static void *pinger_main(void *arg)
{
    struct pinger *p = arg;
    while (!atomic_load(&p->stop) && pthread_kill(p->target, SIGUSR1) == 0)
        sleep_ms(10);
    return NULL;
}

static void spawn_waits_for_the_line_through_signals(void **state)
{
    (void)state;
    struct sigaction old;
    catch_sigusr1(&old);
    struct pinger p = {.target = pthread_self()};
    assert_int_equal(pthread_create(&p.thread, NULL, pinger_main, &p), 0);
    struct router_proc r;
    int rc = spawn_script("sleep 0.3; echo listening on 127.0.0.1:7; exec sleep 30", -1, &r);
    atomic_store(&p.stop, true);
    assert_int_equal(pthread_join(p.thread, NULL), 0);
    assert_int_equal(sigaction(SIGUSR1, &old, NULL), 0);
    assert_true(signals_caught > 0);
    assert_int_equal(rc, 0);
    assert_int_equal(r.port, 7);
    assert_int_equal(router_proc_stop(&r, SIGKILL, 5000, NULL), 0);
}

/* ---- /proc helpers ---- */

static void *block_on_pipe(void *arg)
{
    char ch;
    (void)net_read(*(int *)arg, &ch, 1);
    return NULL;
}

static void proc_helpers_count_fds_threads_and_memory(void **state)
{
    (void)state;
    pid_t self = getpid();
    int fds = proc_count_fds(self), threads = proc_count_threads(self);
    assert_true(fds >= 3);
    assert_true(threads >= 1);
    assert_true(proc_rss_kib(self) > 0);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    assert_int_equal(proc_count_fds(self), fds + 2);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, block_on_pipe, &p[0]), 0);
    assert_int_equal(proc_count_threads(self), threads + 1);
    assert_int_equal(net_write_all(p[1], "x", 1), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_int_equal(close(p[0]), 0);
    assert_int_equal(close(p[1]), 0);
    assert_int_equal(proc_count_fds(self), fds);
    assert_int_equal(proc_count_fds(INT_MAX), -1);
    assert_int_equal(proc_count_threads(INT_MAX), -1);
    assert_int_equal(proc_rss_kib(INT_MAX), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(a_put_entry_can_be_got_back),
        cmocka_unit_test(a_duplicate_put_is_refused_and_keeps_the_first_conn),
        cmocka_unit_test(get_of_zero_or_an_absent_id_is_null),
        cmocka_unit_test(id_zero_cannot_be_put),
        cmocka_unit_test(a_removed_entry_is_gone_and_its_conn_returned),
        cmocka_unit_test(a_table_holds_the_entries_it_was_sized_for),
        cmocka_unit_test(a_full_table_refuses_puts_and_still_answers_gets),
        cmocka_unit_test(a_million_puts_and_removes_of_sequential_ids_match_the_model),
        cmocka_unit_test(a_million_puts_and_removes_of_random_ids_match_the_model),
        cmocka_unit_test(churn_in_a_nearly_full_table_keeps_every_entry_findable),
        cmocka_unit_test(sequential_ids_count_up_from_one),
        cmocka_unit_test(sequential_ids_run_out_after_the_largest_u32),
        cmocka_unit_test(random_ids_are_distinct_non_zero_and_not_sequential),
        cmocka_unit_test(two_random_allocators_hand_out_different_ids),
        cmocka_unit_test(no_options_give_the_defaults),
        cmocka_unit_test(every_option_sets_its_field),
        cmocka_unit_test(parsing_again_starts_from_the_first_argument),
        cmocka_unit_test(port_takes_the_whole_u16_range),
        cmocka_unit_test(a_bad_option_exits_2_with_usage_on_stderr),
        cmocka_unit_test(help_exits_0_with_usage_and_variants_on_stdout),
        cmocka_unit_test(version_prints_the_name_and_version),
        cmocka_unit_test(variant_is_accepted_only_for_declared_names),
        cmocka_unit_test(a_routers_own_option_is_parsed_listed_and_checked),
        cmocka_unit_test(verbose_and_quiet_set_what_is_logged),
        cmocka_unit_test(the_summary_is_one_line_with_every_counter),
        cmocka_unit_test(a_stats_line_is_labelled_and_says_the_work_done),
        cmocka_unit_test(work_is_a_deterministic_checksum_and_nothing_at_zero),
        cmocka_unit_test(wait_accept_says_when_a_stats_line_is_due),
        cmocka_unit_test(server_start_announces_and_accepts_and_stops_on_sigterm),
        cmocka_unit_test(server_start_exits_1_when_the_port_is_taken),
        cmocka_unit_test(listening_on_port_zero_gets_a_real_port),
        cmocka_unit_test(binding_a_taken_port_says_address_already_in_use),
        cmocka_unit_test(write_all_delivers_everything_across_partial_writes),
        cmocka_unit_test(writev_all_delivers_more_buffers_than_iov_max_in_order),
        cmocka_unit_test(write_all_on_a_full_nonblocking_socket_reports_eagain),
        cmocka_unit_test(write_all_to_a_closed_peer_fails_with_epipe),
        cmocka_unit_test(write_all_keeps_going_when_signals_interrupt_it),
        cmocka_unit_test(read_keeps_waiting_when_signals_interrupt_it),
        cmocka_unit_test(frames_that_arrive_in_one_read_all_come_out_before_the_next),
        cmocka_unit_test(a_frame_that_arrives_byte_by_byte_comes_out_whole),
        cmocka_unit_test(small_frames_come_out_in_order_and_never_grow_the_buffer),
        cmocka_unit_test(the_longest_frame_grows_the_buffer_to_one_frame_and_no_more),
        cmocka_unit_test(a_frame_too_long_is_reported_after_the_frames_before_it),
        cmocka_unit_test(a_frame_too_long_is_found_once_the_buffer_holds_one_whole_frame),
        cmocka_unit_test(a_partial_frame_keeps_the_buffer_and_eof_after_it_reads_0),
        cmocka_unit_test(connect_reads_the_id_the_router_sends_first),
        cmocka_unit_test(frames_that_arrive_in_one_read_come_out_one_by_one),
        cmocka_unit_test(recv_times_out_while_a_frame_is_incomplete),
        cmocka_unit_test(recv_reports_closed_when_the_router_hangs_up),
        cmocka_unit_test(a_frame_too_big_for_the_buffer_is_reported_and_skipped),
        cmocka_unit_test(send_writes_the_id_the_payload_and_a_nul),
        cmocka_unit_test(connect_times_out_when_no_id_arrives),
        cmocka_unit_test(connect_fails_when_the_router_closes_before_the_id),
        cmocka_unit_test(connect_to_a_closed_port_is_refused),
        cmocka_unit_test(spawn_takes_the_port_from_the_first_line_and_leaves_the_rest),
        cmocka_unit_test(spawn_fails_cleanly_without_a_listening_line),
        cmocka_unit_test(stop_kills_a_router_that_ignores_the_signal),
        cmocka_unit_test(a_spawned_router_does_not_inherit_blocked_signals),
        cmocka_unit_test(spawn_waits_for_the_line_through_signals),
        cmocka_unit_test(proc_helpers_count_fds_threads_and_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
