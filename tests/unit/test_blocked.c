/* test_blocked.c - unit tests of blocked.c, the owner of a request waiting
 * for fills: what a run that must wait wrote never reaches the output, the
 * request is parked as a private copy, the answers are gathered and the
 * request completes once they are all in; a failed fill replaces one step's
 * reply; a detached state lives until its last fill answers. The fill engine
 * is real (with an origin URL, so that misses are fillable), but its loop
 * never runs: fill_shutdown() answers every waiter FILL_UNAVAILABLE, which is
 * how these tests deliver answers. */
#include <check.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "blocked.h"
#include "cache.h"
#include "config.h"
#include "fill.h"
#include "protocol.h"
#include "reply.h"

static struct event_base *base;
static struct config *config;
static struct cache *cache;
static struct fill *fill;

/* The answers fill_shutdown() delivers, in order. */
static struct {
    struct blocked *waiter;
    struct fill_result *result;
} delivered[16];
static size_t delivered_count;

static void deliver(struct blocked *waiter, struct fill_result *result)
{
    ck_assert_uint_lt(delivered_count, 16);
    delivered[delivered_count].waiter = waiter;
    delivered[delivered_count].result = result;
    delivered_count++;
}

static void setup(void)
{
    const char *text = "origin:\n  url: \"http://127.0.0.1:9/{tenant}/{kind}/{key}\"\n";
    char error[ERROR_MAX] = "";
    config = config_load_buffer("test", text, strlen(text), error);
    ck_assert_msg(config != NULL, "config: %s", error);
    struct cache_limits limits = {
        .max_bytes = 1 << 20, .tenant_max_bytes = 1 << 20, .max_tenants = 10,
        .high_watermark = 0.8, .low_watermark = 0.7,
    };
    cache = cache_create(1, &limits);
    base = event_base_new();
    fill = fill_create(base, cache, config, deliver);
    delivered_count = 0;
}

static void teardown(void)
{
    fill_destroy(fill);
    event_base_free(base);
    cache_destroy(cache);
    config_free(config);
}

static enum blocked_lookup look(struct blocked *blocked, const char *key)
{
    struct cache_reader reader;
    struct blocked_item item;
    cache_read_begin(cache, "acme", 4, 1, &reader);
    enum blocked_lookup got = blocked_lookup(blocked, &reader, "acme", 4, CONFIG_KIND_CONFIG, key,
                                             strlen(key), BLOCKED_MISS_WAIT, &item);
    cache_read_end(&reader);
    return got;
}

START_TEST(test_a_run_that_waits_writes_nothing)
{
    struct reply_buffer out = {0};
    reply_status(&out, "EARLIER"); /* an earlier request's reply stays */
    size_t earlier = reply_buffer_length(&out);
    int owner;
    struct blocked *blocked = blocked_create(NULL, &owner);
    const char *argv[] = {"MGET", "acme", "config", "a"};
    size_t argv_len[] = {4, 4, 6, 1};
    struct protocol_request request = {.argc = 4, .argv = argv, .argv_len = argv_len};

    blocked_run_begin(blocked, fill, config, &out);
    blocked_step_begin(blocked);
    reply_array(&out, 1);
    ck_assert_int_eq(look(blocked, "a"), BLOCKED_PENDING);
    reply_nil(&out);
    reply_error(&out, "ERR a second reply a handler must never get out");
    blocked_step_end(blocked);
    ck_assert_int_eq(blocked_run_end(blocked, &request), BLOCKED_PARKED);
    ck_assert_uint_eq(reply_buffer_length(&out), earlier);
    ck_assert(blocked_waiting(blocked));
    /* a private, NUL-terminated copy */
    const struct protocol_request *parked = blocked_request(blocked);
    ck_assert_ptr_nonnull(parked);
    ck_assert_uint_eq(parked->argc, 4);
    ck_assert_ptr_ne(parked->argv[3], argv[3]);
    ck_assert_str_eq(parked->argv[3], "a");

    /* the fill fails: the request completes with one -UNAVAILABLE */
    fill_shutdown(fill);
    ck_assert_uint_eq(delivered_count, 1);
    ck_assert_ptr_eq(delivered[0].waiter, blocked);
    ck_assert_int_eq(blocked_answer(blocked, delivered[0].result), BLOCKED_READY);
    blocked_run_begin(blocked, fill, config, &out);
    blocked_step_begin(blocked);
    reply_array(&out, 1);
    ck_assert_int_eq(look(blocked, "a"), BLOCKED_ABSENT); /* the gathered answer */
    reply_nil(&out);
    blocked_step_end(blocked);
    ck_assert_int_eq(blocked_run_end(blocked, parked), BLOCKED_DONE);
    ck_assert(!blocked_waiting(blocked));
    ck_assert_uint_gt(reply_buffer_length(&out), earlier);
    ck_assert(memcmp(reply_buffer_data(&out) + earlier, "-UNAVAILABLE ", 13) == 0);
    blocked_detach(blocked);
    reply_buffer_free(&out);
}
END_TEST

START_TEST(test_steps_answer_apart)
{
    /* A transaction: the step whose fill failed answers -UNAVAILABLE, the
     * other keeps its reply. */
    struct reply_buffer out = {0};
    int owner;
    struct blocked *blocked = blocked_create(NULL, &owner);
    const char *argv[] = {"EXEC"};
    size_t argv_len[] = {4};
    struct protocol_request request = {.argc = 1, .argv = argv, .argv_len = argv_len};
    blocked_run_begin(blocked, fill, config, &out);
    reply_array(&out, 2);
    blocked_step_begin(blocked);
    reply_status(&out, "PONG");
    blocked_step_end(blocked);
    blocked_step_begin(blocked);
    ck_assert(!blocked_run_waits(blocked));
    ck_assert_int_eq(look(blocked, "b"), BLOCKED_PENDING);
    ck_assert(blocked_run_waits(blocked));
    reply_nil(&out);
    blocked_step_end(blocked);
    ck_assert_int_eq(blocked_run_end(blocked, &request), BLOCKED_PARKED);
    ck_assert_uint_eq(reply_buffer_length(&out), 0);
    fill_shutdown(fill);
    ck_assert_int_eq(blocked_answer(blocked, delivered[0].result), BLOCKED_READY);
    blocked_run_begin(blocked, fill, config, &out);
    reply_array(&out, 2);
    blocked_step_begin(blocked);
    reply_status(&out, "PONG");
    blocked_step_end(blocked);
    blocked_step_begin(blocked);
    ck_assert_int_eq(look(blocked, "b"), BLOCKED_ABSENT);
    reply_nil(&out);
    blocked_step_end(blocked);
    ck_assert_int_eq(blocked_run_end(blocked, blocked_request(blocked)), BLOCKED_DONE);
    const char *want = "*2\r\n+PONG\r\n-UNAVAILABLE ";
    ck_assert(memcmp(reply_buffer_data(&out), want, strlen(want)) == 0);
    blocked_detach(blocked);
    reply_buffer_free(&out);
}
END_TEST

START_TEST(test_detached_lives_until_answered)
{
    struct reply_buffer out = {0};
    int owner;
    struct blocked *blocked = blocked_create(NULL, &owner);
    const char *argv[] = {"GET", "acme", "config", "c"};
    size_t argv_len[] = {3, 4, 6, 1};
    struct protocol_request request = {.argc = 4, .argv = argv, .argv_len = argv_len};
    blocked_run_begin(blocked, fill, config, &out);
    blocked_step_begin(blocked);
    ck_assert_int_eq(look(blocked, "c"), BLOCKED_PENDING);
    blocked_step_end(blocked);
    ck_assert_int_eq(blocked_run_end(blocked, &request), BLOCKED_PARKED);
    blocked_detach(blocked); /* the connection closed */
    fill_shutdown(fill);
    ck_assert_uint_eq(delivered_count, 1);
    /* freed here (the sanitizer builds check it is neither leaked nor used) */
    ck_assert_int_eq(blocked_answer(delivered[0].waiter, delivered[0].result), BLOCKED_IGNORED);
    reply_buffer_free(&out);
}
END_TEST

START_TEST(test_too_large_step)
{
    struct reply_buffer out = {0};
    int owner;
    struct blocked *blocked = blocked_create(NULL, &owner);
    const char *argv[] = {"MGET"};
    size_t argv_len[] = {4};
    struct protocol_request request = {.argc = 1, .argv = argv, .argv_len = argv_len};
    static char big[2 * 1024 * 1024];
    memset(big, 'x', sizeof(big));
    blocked_run_begin(blocked, fill, config, &out); /* max_reply_backlog: 16mb */
    blocked_step_begin(blocked);
    reply_array(&out, 10);
    for (int i = 0; i < 10; i++)
        reply_bulk(&out, big, sizeof(big));
    blocked_step_end(blocked);
    ck_assert_int_eq(blocked_run_end(blocked, &request), BLOCKED_DONE);
    const char *want = "-ERR reply too large\r\n";
    ck_assert_uint_eq(reply_buffer_length(&out), strlen(want));
    ck_assert(memcmp(reply_buffer_data(&out), want, strlen(want)) == 0);
    blocked_detach(blocked);
    reply_buffer_free(&out);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("blocked");
    TCase *runs = tcase_create("runs");
    tcase_add_checked_fixture(runs, setup, teardown);
    tcase_add_test(runs, test_a_run_that_waits_writes_nothing);
    tcase_add_test(runs, test_steps_answer_apart);
    tcase_add_test(runs, test_detached_lives_until_answered);
    tcase_add_test(runs, test_too_large_step);
    suite_add_tcase(suite, runs);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
