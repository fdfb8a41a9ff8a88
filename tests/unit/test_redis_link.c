/* test_redis_link.c - unit tests of redis_link.c, the self-healing hiredis
 * connection, against a real redis-server on a private Unix socket (started
 * by the test harness, tests/harness.c): the handshake
 * (AUTH, SELECT, the owner's own setup) before the link counts as up, the
 * up/down callbacks once per outage, reconnection after Redis comes back, a
 * drop asked for by the owner, replies still pending when the link is freed,
 * and the backoff's bounds. */
#include <check.h>
#include <event2/event.h>
#include <hiredis/async.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "harness.h"
#include "log.h"
#include "redis_link.h"
#include "unit_loop.h"

static struct harness h;
static struct event_base *base;
static struct config *config;
static struct redis_link *the_link;

/* What the callbacks saw. */
static struct {
    int ups;
    int first_ups;
    int downs;
    char reason[256];
    bool up;              /* flipped by on_up / on_down */
    bool down;
    bool setup_called;
    bool up_during_setup; /* redis_link_up() inside on_setup */
    bool established;     /* the owner's setup reply came */
} seen;

static void on_up(void *arg, bool first)
{
    (void)arg;
    seen.ups++;
    seen.first_ups += first;
    seen.up = true;
    seen.down = false;
    ck_assert(redis_link_up(the_link));
    ck_assert_ptr_nonnull(redis_link_context(the_link));
}

static void on_down(void *arg, const char *reason)
{
    (void)arg;
    seen.downs++;
    snprintf(seen.reason, sizeof(seen.reason), "%s", reason != NULL ? reason : "(null)");
    seen.down = true;
    seen.up = false;
    ck_assert(!redis_link_up(the_link));
}

static void setup(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    memset(&seen, 0, sizeof(seen));
    harness_init(&h);
    base = event_base_new();
    config = NULL;
    the_link = NULL;
}

static void teardown(void)
{
    redis_link_free(the_link);
    config_free(config);
    event_base_free(base);
    harness_cleanup(&h);
}

/* The config: redis.unix on the harness's socket, fast reconnects, and
 * `extra` lines under redis:. */
static void load_config(const char *extra)
{
    char yaml[1024];
    snprintf(yaml, sizeof(yaml),
             "log_level: error\nredis:\n  unix: \"%s\"\n  connect_timeout: 2s\n"
             "  reconnect_min: 20ms\n  reconnect_max: 100ms\n%s",
             h.redis_socket, extra);
    char error[ERROR_MAX] = "";
    config = config_load_buffer("test.yaml", yaml, strlen(yaml), error);
    ck_assert_msg(config != NULL, "config rejected: %s", error);
}

static void create(const struct redis_link_options *options,
                   void (*on_setup)(void *arg, redisAsyncContext *ac))
{
    struct redis_link_callbacks callbacks = {
        .on_setup = on_setup, .on_up = on_up, .on_down = on_down, .arg = &seen,
    };
    char error[ERROR_MAX] = "";
    the_link = redis_link_create(base, config, options, &callbacks, error);
    ck_assert_msg(the_link != NULL, "redis_link_create: %s", error);
    ck_assert(!redis_link_up(the_link)); /* nothing before the loop runs */
    ck_assert_int_eq(seen.ups + seen.downs, 0);
}

static void start_plain(const char *extra)
{
    load_config(extra);
    struct redis_link_options options = {.name = "test", .ping = true};
    create(&options, NULL);
}

/* ---- the backoff ---- */

START_TEST(test_backoff_bounds)
{
    uint64_t rng = 12345;
    /* min doubled per failure up to max, then drawn from the upper half,
     * never below min */
    const struct {
        unsigned failures;
        uint64_t low, high;
    } cases[] = {{0, 50, 50}, {1, 50, 100}, {2, 100, 200}, {3, 200, 400}, {4, 250, 500},
                 {30, 250, 500}};
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        uint64_t lowest = UINT64_MAX, highest = 0;
        for (int i = 0; i < 2000; i++) {
            uint64_t delay = redis_link_backoff_ms(50, 500, cases[c].failures, &rng);
            lowest = delay < lowest ? delay : lowest;
            highest = delay > highest ? delay : highest;
        }
        ck_assert_msg(lowest >= cases[c].low && highest <= cases[c].high,
                      "failures %u: %llu..%llu outside %llu..%llu", cases[c].failures,
                      (unsigned long long)lowest, (unsigned long long)highest,
                      (unsigned long long)cases[c].low, (unsigned long long)cases[c].high);
        /* jitter: the draws spread over the range, not one value */
        if (cases[c].high > cases[c].low)
            ck_assert_uint_gt(highest, lowest);
    }
}
END_TEST

/* ---- addresses ---- */

START_TEST(test_addresses)
{
    load_config("");
    ck_assert_ptr_null(redis_link_config_problem(config));
    char buf[256], expected[256];
    snprintf(expected, sizeof(expected), "unix:%s", h.redis_socket);
    ck_assert_str_eq(redis_link_master_address(config, buf, sizeof(buf)), expected);
    struct redis_link_options options = {.name = "test"};
    create(&options, NULL);
    ck_assert_str_eq(redis_link_address(the_link, buf, sizeof(buf)), expected);

    config_free(config);
    const char *tcp = "redis:\n  host: 127.0.0.1\n  port: 6390\n";
    char error[ERROR_MAX] = "";
    config = config_load_buffer("tcp.yaml", tcp, strlen(tcp), error);
    ck_assert_msg(config != NULL, "%s", error);
    ck_assert_str_eq(redis_link_master_address(config, buf, sizeof(buf)), "127.0.0.1:6390");
}
END_TEST

/* ---- up and down ---- */

START_TEST(test_comes_up)
{
    ck_assert_int_eq(harness_redis_start(&h), 0);
    start_plain("");
    unit_loop_run_until(base, &seen.up, "up");
    ck_assert_int_eq(seen.ups, 1);
    ck_assert_int_eq(seen.first_ups, 1);
    ck_assert_int_eq(seen.downs, 0);
    ck_assert_ptr_eq(redis_link_owner(redis_link_context(the_link)), &seen);
}
END_TEST

/* The owner's setup: CLIENT SETNAME, established when redis confirms it. */
static void setname_answered(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    redisReply *reply = r;
    if (reply == NULL || redis_link_owner(ac) == NULL)
        return;
    ck_assert_int_eq(reply->type, REDIS_REPLY_STATUS);
    seen.established = true;
    redis_link_established(the_link);
}

static void on_setup(void *arg, redisAsyncContext *ac)
{
    ck_assert_ptr_eq(arg, &seen);
    seen.setup_called = true;
    seen.up_during_setup = redis_link_up(the_link);
    redisAsyncCommand(ac, setname_answered, NULL, "CLIENT SETNAME linktest");
}

START_TEST(test_owner_setup_before_up)
{
    ck_assert_int_eq(harness_redis_start(&h), 0);
    load_config("");
    struct redis_link_options options = {.name = "test", .setup_stage = "naming"};
    create(&options, on_setup);
    unit_loop_run_until(base, &seen.up, "up");
    ck_assert(seen.setup_called);
    ck_assert(!seen.up_during_setup);
    ck_assert(seen.established);
    /* redis saw the owner's command on this connection */
    redisContext *c = harness_redis_connect(&h);
    ck_assert_ptr_nonnull(c);
    redisReply *reply = redisCommand(c, "CLIENT LIST");
    ck_assert_ptr_nonnull(reply);
    ck_assert_ptr_nonnull(strstr(reply->str, "name=linktest"));
    freeReplyObject(reply);
    redisFree(c);
}
END_TEST

static void set_answered(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    redisReply *reply = r;
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(reply->type, REDIS_REPLY_STATUS);
    *(bool *)privdata = true;
}

START_TEST(test_select_db)
{
    ck_assert_int_eq(harness_redis_start(&h), 0);
    load_config("  db: 3\n");
    struct redis_link_options options = {.name = "L2", .select_db = true};
    create(&options, NULL);
    unit_loop_run_until(base, &seen.up, "up");
    bool stored = false;
    redisAsyncCommand(redis_link_context(the_link), set_answered, &stored, "SET linkkey here");
    unit_loop_run_until(base, &stored, "the SET");
    redisContext *c = harness_redis_connect(&h);
    ck_assert_ptr_nonnull(c);
    redisReply *reply = redisCommand(c, "GET linkkey");
    ck_assert_int_eq(reply->type, REDIS_REPLY_NIL); /* not in db 0 */
    freeReplyObject(reply);
    freeReplyObject(redisCommand(c, "SELECT 3"));
    reply = redisCommand(c, "GET linkkey");
    ck_assert_int_eq(reply->type, REDIS_REPLY_STRING);
    ck_assert_str_eq(reply->str, "here");
    freeReplyObject(reply);
    redisFree(c);
}
END_TEST

START_TEST(test_auth)
{
    const char *const extra[] = {"--requirepass", "s3cret", NULL};
    ck_assert_int_eq(harness_redis_start_args(&h, extra), 0);
    start_plain("  password: s3cret\n");
    unit_loop_run_until(base, &seen.up, "up");
    ck_assert_int_eq(seen.downs, 0);
}
END_TEST

START_TEST(test_wrong_password_is_one_outage)
{
    const char *const extra[] = {"--requirepass", "s3cret", NULL};
    ck_assert_int_eq(harness_redis_start_args(&h, extra), 0);
    start_plain("  password: wrong\n");
    unit_loop_run_until(base, &seen.down, "down");
    ck_assert_msg(strstr(seen.reason, "WRONGPASS") != NULL ||
                      strstr(seen.reason, "invalid") != NULL,
                  "reason: %s", seen.reason);
    /* many retries (20..100 ms apart), one report */
    unit_loop_run_for(base, 500);
    ck_assert_int_eq(seen.downs, 1);
    ck_assert_int_eq(seen.ups, 0);
}
END_TEST

START_TEST(test_no_redis_then_redis)
{
    start_plain("");
    unit_loop_run_until(base, &seen.down, "the first attempt failing");
    unit_loop_run_for(base, 300);
    ck_assert_int_eq(seen.downs, 1);
    ck_assert_int_eq(seen.ups, 0);
    ck_assert_ptr_null(redis_link_context(the_link));
    ck_assert_int_eq(harness_redis_start(&h), 0);
    unit_loop_run_until(base, &seen.up, "up once redis runs");
    ck_assert_int_eq(seen.ups, 1);
    ck_assert_int_eq(seen.first_ups, 1);
}
END_TEST

START_TEST(test_reconnects_after_redis_restarts)
{
    ck_assert_int_eq(harness_redis_start(&h), 0);
    start_plain("");
    unit_loop_run_until(base, &seen.up, "up");
    ck_assert_int_eq(harness_redis_stop(&h, SIGKILL), 0);
    unit_loop_run_until(base, &seen.down, "down");
    ck_assert_int_eq(seen.downs, 1);
    ck_assert(!redis_link_up(the_link));
    unit_loop_run_for(base, 300); /* retries fail meanwhile: still one outage */
    ck_assert_int_eq(seen.downs, 1);
    ck_assert_int_eq(harness_redis_start(&h), 0);
    unit_loop_run_until(base, &seen.up, "up again");
    ck_assert_int_eq(seen.ups, 2);
    ck_assert_int_eq(seen.first_ups, 1); /* the second time is not the first */
}
END_TEST

START_TEST(test_drop_later)
{
    ck_assert_int_eq(harness_redis_start(&h), 0);
    start_plain("");
    unit_loop_run_until(base, &seen.up, "up");
    redis_link_drop_later(the_link, "the owner gave up");
    /* carried out from the loop, not inside the call */
    ck_assert_int_eq(seen.downs, 0);
    ck_assert_ptr_null(redis_link_context(the_link)); /* a drop is pending */
    unit_loop_run_until(base, &seen.down, "down");
    ck_assert_ptr_nonnull(strstr(seen.reason, "the owner gave up"));
    unit_loop_run_until(base, &seen.up, "up again");
    ck_assert_int_eq(seen.ups, 2);
    ck_assert_int_eq(seen.downs, 1);
}
END_TEST

/* A reply still pending when the link is freed: called back with NULL, and
 * the owner can tell the context is no longer the the_link's. */
static struct {
    bool called;
    bool reply_null;
    bool owner_null;
} pending;

static void blpop_answered(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    pending.called = true;
    pending.reply_null = r == NULL;
    pending.owner_null = redis_link_owner(ac) == NULL;
}

START_TEST(test_free_with_a_pending_reply)
{
    ck_assert_int_eq(harness_redis_start(&h), 0);
    start_plain("");
    unit_loop_run_until(base, &seen.up, "up");
    memset(&pending, 0, sizeof(pending));
    redisAsyncCommand(redis_link_context(the_link), blpop_answered, NULL, "BLPOP never-pushed 0");
    unit_loop_run_for(base, 50);
    ck_assert(!pending.called);
    redis_link_free(the_link);
    the_link = NULL;
    ck_assert(pending.called);
    ck_assert(pending.reply_null);
    ck_assert(pending.owner_null);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("redis_link");
    TCase *pure = tcase_create("pure");
    tcase_add_checked_fixture(pure, setup, teardown);
    tcase_add_test(pure, test_backoff_bounds);
    tcase_add_test(pure, test_addresses);
    suite_add_tcase(suite, pure);
    TCase *live = tcase_create("live");
    tcase_add_checked_fixture(live, setup, teardown);
    tcase_set_timeout(live, 60);
    tcase_add_test(live, test_comes_up);
    tcase_add_test(live, test_owner_setup_before_up);
    tcase_add_test(live, test_select_db);
    tcase_add_test(live, test_auth);
    tcase_add_test(live, test_wrong_password_is_one_outage);
    tcase_add_test(live, test_no_redis_then_redis);
    tcase_add_test(live, test_reconnects_after_redis_restarts);
    tcase_add_test(live, test_drop_later);
    tcase_add_test(live, test_free_with_a_pending_reply);
    suite_add_tcase(suite, live);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
