/* test_origin.c - unit tests of origin.c, the L3 HTTP client of
 * docs/reference.md §5, against a real HTTP server (http_peer.h) on the
 * same loop: the URL built from the template with URL-encoded parts, the
 * classification of the answers (200 found, 404 not found, anything else and
 * a refused connection failed), the max_concurrent queue, the timeout, and
 * destroy answering what is still in flight. */
#include <check.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "http_peer.h"
#include "log.h"
#include "origin.h"

static struct event_base *base;
static struct http_peer peer;
static struct config *config;
static struct origin *origin;

/* What one request's done callback was given. */
struct answer {
    bool done;
    int calls;
    enum origin_status status;
    char body[256];
};

static void on_done(void *arg, enum origin_status status, const char *body, size_t len)
{
    struct answer *answer = arg;
    answer->done = true;
    answer->calls++;
    answer->status = status;
    snprintf(answer->body, sizeof(answer->body), "%.*s", (int)len, body != NULL ? body : "");
}

static void setup(void)
{
    log_set_level(LOG_LEVEL_ERROR); /* failures are logged: keep the output readable */
    base = event_base_new();
    http_peer_start(&peer, base);
    config = NULL;
    origin = NULL;
}

static void teardown(void)
{
    origin_destroy(origin);
    config_free(config);
    http_peer_stop(&peer);
    event_base_free(base);
}

/* The config with origin.url = the peer's address + path_template, and
 * `extra` lines under origin:. Creates `origin` from it. */
static void start(const char *path_template, const char *extra)
{
    char url[512], yaml[1024];
    http_peer_url(&peer, path_template, url, sizeof(url));
    snprintf(yaml, sizeof(yaml), "origin:\n  url: \"%s\"\n%s", url, extra);
    char error[ERROR_MAX] = "";
    config = config_load_buffer("test.yaml", yaml, strlen(yaml), error);
    ck_assert_msg(config != NULL, "config rejected: %s", error);
    ck_assert_msg(origin_create(base, config, &origin, error) == 0, "origin_create: %s", error);
    ck_assert_ptr_nonnull(origin);
}

static void get(const char *tenant, const char *kind, const char *key, struct answer *answer)
{
    memset(answer, 0, sizeof(*answer));
    origin_get(origin, tenant, strlen(tenant), kind, key, strlen(key), on_done, answer);
}

START_TEST(test_no_url_no_origin)
{
    const char *yaml = "log_level: error\n";
    char error[ERROR_MAX] = "";
    config = config_load_buffer("test.yaml", yaml, strlen(yaml), error);
    ck_assert_ptr_nonnull(config);
    struct origin *off = NULL;
    ck_assert_int_eq(origin_create(base, config, &off, error), 0);
    ck_assert_ptr_null(off);
}
END_TEST

START_TEST(test_found_with_its_body)
{
    http_peer_route(&peer, "/v1/tenants/acme/role/sales", 200, "[\"crm.*\"]");
    start("/v1/tenants/{tenant}/{kind}/{key}", "");
    struct answer answer;
    get("acme", "role", "sales", &answer);
    ck_assert(!answer.done); /* later, never inside origin_get */
    unit_loop_run_until(base, &answer.done, "the answer");
    ck_assert_int_eq(answer.calls, 1);
    ck_assert_int_eq(answer.status, ORIGIN_FOUND);
    ck_assert_str_eq(answer.body, "[\"crm.*\"]");
    ck_assert_uint_eq(peer.seen_count, 1);
    ck_assert_str_eq(peer.seen[0], "/v1/tenants/acme/role/sales");
}
END_TEST

START_TEST(test_parts_are_url_encoded)
{
    start("/e/{tenant}/{kind}/{key}?again={key}", "");
    struct answer answer;
    get("acme", "config", "a b/c?d&e%", &answer);
    unit_loop_run_until(base, &answer.done, "the answer");
    ck_assert_str_eq(peer.seen[0],
                     "/e/acme/config/a%20b%2Fc%3Fd%26e%25?again=a%20b%2Fc%3Fd%26e%25");
}
END_TEST

START_TEST(test_status_classes)
{
    http_peer_route(&peer, "/acme/config/missing", 404, "no such thing");
    http_peer_route(&peer, "/acme/config/broken", 500, "oops");
    http_peer_route(&peer, "/acme/config/moved", 301, "");
    http_peer_route(&peer, "/acme/config/empty", 200, "");
    start("/{tenant}/{kind}/{key}", "");
    struct answer missing, broken, moved, empty;
    get("acme", "config", "missing", &missing);
    get("acme", "config", "broken", &broken);
    get("acme", "config", "moved", &moved);
    get("acme", "config", "empty", &empty);
    unit_loop_run_until(base, &missing.done, "missing");
    unit_loop_run_until(base, &broken.done, "broken");
    unit_loop_run_until(base, &moved.done, "moved");
    unit_loop_run_until(base, &empty.done, "empty");
    ck_assert_int_eq(missing.status, ORIGIN_NOT_FOUND);
    ck_assert_int_eq(broken.status, ORIGIN_FAILED);
    ck_assert_int_eq(moved.status, ORIGIN_FAILED);
    ck_assert_int_eq(empty.status, ORIGIN_FOUND);
    ck_assert_str_eq(empty.body, "");
    ck_assert_int_eq(missing.calls + broken.calls + moved.calls + empty.calls, 4);
}
END_TEST

START_TEST(test_refused_is_failed)
{
    start("/{tenant}/{kind}/{key}", "");
    http_peer_stop(&peer); /* nothing listens on the port any more */
    struct answer answer;
    get("acme", "config", "k", &answer);
    unit_loop_run_until(base, &answer.done, "the answer");
    ck_assert_int_eq(answer.status, ORIGIN_FAILED);
    ck_assert_int_eq(answer.calls, 1);
}
END_TEST

START_TEST(test_max_concurrent_queues_in_order)
{
    http_peer_route(&peer, "/acme/config/a", 200, "1");
    http_peer_route(&peer, "/acme/config/b", 200, "2");
    http_peer_route(&peer, "/acme/config/c", 200, "3");
    start("/{tenant}/{kind}/{key}", "  max_concurrent: 1\n");
    peer.hold = true;
    struct answer a, b, c;
    get("acme", "config", "a", &a);
    get("acme", "config", "b", &b);
    get("acme", "config", "c", &c);
    http_peer_run_until_seen(&peer, 1);
    /* one connection: b and c wait while a is held */
    unit_loop_run_for(base, 200);
    ck_assert_uint_eq(peer.seen_count, 1);
    ck_assert(!a.done && !b.done && !c.done);
    http_peer_release(&peer);
    unit_loop_run_until(base, &c.done, "the last answer");
    ck_assert(a.done && b.done);
    ck_assert_str_eq(a.body, "1");
    ck_assert_str_eq(b.body, "2");
    ck_assert_str_eq(c.body, "3");
    ck_assert_uint_eq(peer.seen_count, 3);
    ck_assert_str_eq(peer.seen[0], "/acme/config/a");
    ck_assert_str_eq(peer.seen[1], "/acme/config/b");
    ck_assert_str_eq(peer.seen[2], "/acme/config/c");
}
END_TEST

START_TEST(test_timeout_fails_the_request)
{
    start("/{tenant}/{kind}/{key}", "  timeout: 100ms\n");
    peer.hold = true; /* never answered */
    struct answer answer;
    get("acme", "config", "slow", &answer);
    unit_loop_run_until(base, &answer.done, "the timeout");
    ck_assert_int_eq(answer.status, ORIGIN_FAILED);
    ck_assert_int_eq(answer.calls, 1);
    http_peer_release(&peer); /* a late answer changes nothing */
    unit_loop_run_for(base, 100);
    ck_assert_int_eq(answer.calls, 1);
}
END_TEST

START_TEST(test_destroy_answers_in_flight_and_queued)
{
    start("/{tenant}/{kind}/{key}", "  max_concurrent: 1\n");
    peer.hold = true;
    struct answer sent, queued;
    get("acme", "config", "sent", &sent);
    get("acme", "config", "queued", &queued);
    http_peer_run_until_seen(&peer, 1);
    origin_destroy(origin);
    origin = NULL;
    ck_assert_int_eq(sent.calls, 1);
    ck_assert_int_eq(sent.status, ORIGIN_FAILED);
    ck_assert_int_eq(queued.calls, 1);
    ck_assert_int_eq(queued.status, ORIGIN_FAILED);
    peer.hold = false;
    peer.held_count = 0; /* evhttp_free answers nothing; the requests die with it */
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("origin");
    TCase *tc = tcase_create("http");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_no_url_no_origin);
    tcase_add_test(tc, test_found_with_its_body);
    tcase_add_test(tc, test_parts_are_url_encoded);
    tcase_add_test(tc, test_status_classes);
    tcase_add_test(tc, test_refused_is_failed);
    tcase_add_test(tc, test_max_concurrent_queues_in_order);
    tcase_add_test(tc, test_timeout_fails_the_request);
    tcase_add_test(tc, test_destroy_answers_in_flight_and_queued);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
