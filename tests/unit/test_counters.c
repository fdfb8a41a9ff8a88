/* test_counters.c - counters.c: the table that drives INFO and /metrics is
 * well formed (a family's rows adjacent, typed and described on its first
 * row, labels well formed, INFO names unique within a section, one source
 * per row), and its two renderings write the values the rows name. */
#include <check.h>
#include <event2/buffer.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "counters.h"
#include "freshness.h"
#include "stats.h"

START_TEST(test_families_adjacent_and_typed)
{
    for (size_t i = 0; i < counters_row_count; i++) {
        const struct counters_row *row = &counters_rows[i];
        if (row->family == NULL)
            continue;
        ck_assert_msg(row->labels != NULL, "%s: no labels (use \"\")", row->family);
        bool first = i == 0 || counters_rows[i - 1].family == NULL ||
                     strcmp(counters_rows[i - 1].family, row->family) != 0;
        if (first) {
            ck_assert_msg(row->type != NULL && row->help != NULL, "%s: no type/help", row->family);
            ck_assert(strcmp(row->type, "counter") == 0 || strcmp(row->type, "gauge") == 0);
            /* and it does not come back after its run */
            size_t end = i + 1;
            while (end < counters_row_count && counters_rows[end].family != NULL &&
                   strcmp(counters_rows[end].family, row->family) == 0)
                end++;
            for (size_t k = end; k < counters_row_count; k++)
                ck_assert_msg(counters_rows[k].family == NULL ||
                                  strcmp(counters_rows[k].family, row->family) != 0,
                              "%s: rows not adjacent", row->family);
        }
        ck_assert_msg(row->format == COUNTERS_UINT || row->format == COUNTERS_BYTES ||
                          row->format == COUNTERS_MS,
                      "%s: only numbers go to /metrics", row->family);
    }
}
END_TEST

START_TEST(test_rows_well_formed)
{
    regex_t labels;
    ck_assert_int_eq(regcomp(&labels, "^(\\{[a-z_]+=\"[a-z0-9_]+\"\\})?$", REG_EXTENDED | REG_NOSUB),
                     0);
    for (size_t i = 0; i < counters_row_count; i++) {
        const struct counters_row *row = &counters_rows[i];
        ck_assert(row->info != NULL || row->family != NULL);
        int sources = (row->counter != NULL) + (row->get != NULL) + (row->ratio != NULL) +
                      (row->text != NULL);
        ck_assert_msg(sources == 1, "row %zu: %d sources", i, sources);
        if (row->format == COUNTERS_RATIO)
            ck_assert(row->ratio != NULL);
        else if (row->format == COUNTERS_TEXT)
            ck_assert(row->text != NULL);
        else
            ck_assert(row->counter != NULL || row->get != NULL);
        if (row->family != NULL)
            ck_assert_msg(regexec(&labels, row->labels, 0, NULL, 0) == 0, "labels %s",
                          row->labels);
        for (size_t j = 0; j < i && row->info != NULL; j++) {
            const struct counters_row *other = &counters_rows[j];
            if (other->section == row->section && other->info != NULL)
                ck_assert_msg(strcmp(other->info, row->info) != 0, "%s twice", row->info);
        }
    }
    regfree(&labels);
}
END_TEST

static struct config *test_config(void)
{
    static struct config config;
    memset(&config, 0, sizeof(config));
    config.memory.max_bytes = 1000;
    config.memory.high_watermark = 0.8;
    config.memory.low_watermark = 0.7;
    config.listen.max_clients = 7;
    static char empty[] = "", host[] = "redis.example";
    config.redis.stream = empty;
    config.redis.host = host;
    config.redis.port = 6390;
    return &config;
}

START_TEST(test_renderings_agree)
{
    struct counters_view view;
    memset(&view, 0, sizeof(view));
    view.config = test_config();
    view.cache.bytes = 250;
    view.cache.evictions_tenant = 3;
    view.now_ms = 10000;
    freshness_start(7500);
    stats_set(&stats.fills_l3, 42);
    stats_set(&stats.stale_refused, 5);

    struct evbuffer *out = evbuffer_new();
    counters_write_info(out, COUNTERS_STATS, &view);
    counters_write_info(out, COUNTERS_MEMORY, &view);
    counters_write_info(out, COUNTERS_REDIS, &view);
    counters_write_info(out, COUNTERS_CLIENTS, &view);
    evbuffer_add(out, "", 1);
    const char *info = (const char *)evbuffer_pullup(out, -1);
    ck_assert_ptr_nonnull(strstr(info, "\r\nfills_l3:42\r\n"));
    ck_assert_ptr_nonnull(strstr(info, "\r\nstale_refused:5\r\n"));
    ck_assert_ptr_nonnull(strstr(info, "\r\nevictions_tenant:3\r\n"));
    ck_assert_ptr_nonnull(strstr(info, "used_memory:250\r\nused_memory_human:250B\r\n"));
    ck_assert_ptr_nonnull(strstr(info, "\r\nused_memory_percentage:25.00\r\n"));
    ck_assert_ptr_nonnull(strstr(info, "\r\nhigh_watermark:0.80\r\nlow_watermark:0.70\r\n"));
    ck_assert_ptr_nonnull(strstr(info, "redis_connected:0\r\n"));
    ck_assert_ptr_nonnull(strstr(info, "\r\nredis_disconnected_seconds:2\r\n"));
    ck_assert_ptr_nonnull(strstr(info, "\r\nmax_clients:7\r\n"));
    ck_assert_ptr_nonnull(strstr(info, "\r\nredis_master:redis.example:6390\r\n"));
    ck_assert_ptr_nonnull(strstr(info, "\r\nstream_last_id:\r\n"));
    evbuffer_free(out);

    out = evbuffer_new();
    counters_write_metrics(out, &view);
    evbuffer_add(out, "", 1);
    const char *text = (const char *)evbuffer_pullup(out, -1);
    ck_assert_ptr_nonnull(strstr(text, "\ntenantcached_fills_total{source=\"l3\"} 42\n"));
    ck_assert_ptr_nonnull(strstr(text, "\ntenantcached_stale_total{action=\"refused\"} 5\n"));
    ck_assert_ptr_nonnull(strstr(text, "\ntenantcached_evictions_total{cause=\"tenant\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(text, "\ntenantcached_memory_used_bytes 250\n"));
    ck_assert_ptr_nonnull(strstr(text, "\ntenantcached_redis_disconnected_seconds 2.500\n"));
    ck_assert_ptr_nonnull(strstr(text, "# HELP tenantcached_fills_total Misses filled, by the "
                                       "source that answered.\n# TYPE tenantcached_fills_total "
                                       "counter\ntenantcached_fills_total{source=\"l2\"} "));
    ck_assert_ptr_null(strstr(text, "percentage"));
    ck_assert_ptr_null(strstr(text, "snapshot"));
    evbuffer_free(out);
}
END_TEST

static Suite *counters_suite(void)
{
    Suite *s = suite_create("counters");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, test_families_adjacent_and_typed);
    tcase_add_test(tc, test_rows_well_formed);
    tcase_add_test(tc, test_renderings_agree);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *runner = srunner_create(counters_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
