/* test_metrics.c - metrics.c in process: a real evhttp server on 127.0.0.1
 * answering a real evhttp client on the same loop. GET /metrics is
 * Prometheus text with its content type, HELP/TYPE for every family of the
 * counters table, the latency histogram fed by metrics_observe_latency();
 * other paths answer 404, other methods 501; without metrics.listen nothing
 * is served. */
#include <check.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cache.h"
#include "config.h"
#include "counters.h"
#include "metrics.h"

static struct event_base *base;
static struct cache *cache;
static struct config *config;
static struct metrics *metrics;
static int port;

static struct {
    bool done;
    int code;
    char content_type[128];
    char body[65536];
} answer;

/* A port that was free a moment ago (bound to 0, then closed). */
static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&address, sizeof(address)), 0);
    socklen_t len = sizeof(address);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&address, &len), 0);
    close(fd);
    return ntohs(address.sin_port);
}

static void load_config(const char *listen)
{
    char text[256];
    snprintf(text, sizeof(text), "metrics:\n  listen: \"%s\"\n", listen);
    char error[ERROR_MAX] = "";
    config = config_load_buffer("test", text, strlen(text), error);
    ck_assert_msg(config != NULL, "config: %s", error);
}

static void setup(void)
{
    port = free_port();
    char listen[64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
    load_config(listen);
    struct cache_limits limits = {
        .max_bytes = 1 << 20, .tenant_max_bytes = 1 << 20, .max_tenants = 10,
        .high_watermark = 0.8, .low_watermark = 0.7,
    };
    cache = cache_create(1, &limits);
    base = event_base_new();
    char error[ERROR_MAX] = "";
    ck_assert_msg(metrics_start(base, cache, config, &metrics, error) == 0, "metrics_start: %s",
                  error);
    ck_assert_ptr_nonnull(metrics);
}

static void teardown(void)
{
    metrics_stop(metrics);
    event_base_free(base);
    cache_destroy(cache);
    config_free(config);
}

static void on_answer(struct evhttp_request *request, void *arg)
{
    (void)arg;
    answer.done = true;
    if (request == NULL)
        return;
    answer.code = evhttp_request_get_response_code(request);
    const char *type =
        evhttp_find_header(evhttp_request_get_input_headers(request), "Content-Type");
    snprintf(answer.content_type, sizeof(answer.content_type), "%s", type ? type : "");
    struct evbuffer *body = evhttp_request_get_input_buffer(request);
    size_t len = evbuffer_get_length(body);
    ck_assert_uint_lt(len, sizeof(answer.body));
    evbuffer_remove(body, answer.body, len);
    answer.body[len] = '\0';
}

/* Sends one request on the loop and runs it until the answer. */
static void request(enum evhttp_cmd_type method, const char *path)
{
    memset(&answer, 0, sizeof(answer));
    struct evhttp_connection *connection =
        evhttp_connection_base_new(base, NULL, "127.0.0.1", (unsigned short)port);
    ck_assert_ptr_nonnull(connection);
    evhttp_connection_set_timeout(connection, 5);
    struct evhttp_request *req = evhttp_request_new(on_answer, NULL);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", "127.0.0.1");
    ck_assert_int_eq(evhttp_make_request(connection, req, method, path), 0);
    while (!answer.done)
        event_base_loop(base, EVLOOP_ONCE);
    evhttp_connection_free(connection);
}

START_TEST(test_scrape)
{
    metrics_observe_latency(0.000003); /* the first bucket, le=5e-06 */
    metrics_observe_latency(2.0);      /* past every bound: +Inf only */
    request(EVHTTP_REQ_GET, "/metrics");
    ck_assert_int_eq(answer.code, 200);
    ck_assert_str_eq(answer.content_type, "text/plain; version=0.0.4; charset=utf-8");
    ck_assert_ptr_nonnull(strstr(answer.body, "tenantcached_build_info{version=\""));
    /* every family of the table, with its type */
    for (size_t i = 0; i < counters_row_count; i++) {
        const struct counters_row *row = &counters_rows[i];
        if (row->family == NULL || row->type == NULL)
            continue;
        char line[160];
        snprintf(line, sizeof(line), "# TYPE %s %s\n", row->family, row->type);
        ck_assert_msg(strstr(answer.body, line) != NULL, "no '%s'", line);
    }
    ck_assert_ptr_nonnull(strstr(answer.body, "\ntenantcached_redis_connected 0\n"));
    ck_assert_ptr_nonnull(strstr(answer.body, "\ntenantcached_memory_limit_bytes 268435456\n"));
    /* the histogram is cumulative and counts both observations (other
     * suites in this process add none: each test runs in its own fork) */
    ck_assert_ptr_nonnull(
        strstr(answer.body, "\ntenantcached_query_duration_seconds_bucket{le=\"5e-06\"} 1\n"));
    ck_assert_ptr_nonnull(
        strstr(answer.body, "\ntenantcached_query_duration_seconds_bucket{le=\"0.005\"} 1\n"));
    ck_assert_ptr_nonnull(
        strstr(answer.body, "\ntenantcached_query_duration_seconds_bucket{le=\"+Inf\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(answer.body, "\ntenantcached_query_duration_seconds_count 2\n"));
    ck_assert_ptr_nonnull(
        strstr(answer.body, "\ntenantcached_query_duration_seconds_sum 2.000003000\n"));
}
END_TEST

START_TEST(test_other_paths_and_methods)
{
    request(EVHTTP_REQ_GET, "/");
    ck_assert_int_eq(answer.code, 404);
    request(EVHTTP_REQ_GET, "/metricsx");
    ck_assert_int_eq(answer.code, 404);
    /* GET and HEAD only; libevent refuses the others as 501 Not Implemented */
    request(EVHTTP_REQ_POST, "/metrics");
    ck_assert_int_eq(answer.code, 501);
    request(EVHTTP_REQ_HEAD, "/metrics");
    ck_assert_int_eq(answer.code, 200);
}
END_TEST

START_TEST(test_off_without_listen)
{
    struct config *off;
    char error[ERROR_MAX] = "";
    off = config_load_buffer("test", "", 0, error);
    ck_assert_ptr_nonnull(off);
    struct metrics *none = metrics;
    ck_assert_int_eq(metrics_start(base, cache, off, &none, error), 0);
    ck_assert_ptr_null(none);
    config_free(off);
}
END_TEST

static Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("http");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_scrape);
    tcase_add_test(tc, test_other_paths_and_methods);
    tcase_add_test(tc, test_off_without_listen);
    tcase_set_timeout(tc, 30);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *runner = srunner_create(metrics_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
