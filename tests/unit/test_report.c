/* test_report.c - report.c: HEALTH's status levels are relative to the
 * configured watermarks (LOW below memory.low_watermark, MODERATE from it,
 * HIGH above memory.high_watermark, CRITICAL above 0.9). The commands
 * themselves are covered end to end by the integration suites. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "report.h"

static struct config config;

START_TEST(test_default_watermarks)
{
    memset(&config, 0, sizeof(config));
    config.memory.low_watermark = 0.7;
    config.memory.high_watermark = 0.8;
    ck_assert_str_eq(report_health_status(0.0, &config), "LOW");
    ck_assert_str_eq(report_health_status(0.69, &config), "LOW");
    ck_assert_str_eq(report_health_status(0.7, &config), "MODERATE");
    ck_assert_str_eq(report_health_status(0.8, &config), "MODERATE");
    ck_assert_str_eq(report_health_status(0.81, &config), "HIGH");
    ck_assert_str_eq(report_health_status(0.9, &config), "HIGH");
    ck_assert_str_eq(report_health_status(0.91, &config), "CRITICAL");
    ck_assert_str_eq(report_health_status(1.5, &config), "CRITICAL");
}
END_TEST

START_TEST(test_levels_follow_the_watermarks)
{
    memset(&config, 0, sizeof(config));
    config.memory.low_watermark = 0.5;
    config.memory.high_watermark = 0.6;
    ck_assert_str_eq(report_health_status(0.49, &config), "LOW");
    ck_assert_str_eq(report_health_status(0.5, &config), "MODERATE");
    ck_assert_str_eq(report_health_status(0.65, &config), "HIGH");
    ck_assert_str_eq(report_health_status(0.95, &config), "CRITICAL");
}
END_TEST

static Suite *report_suite(void)
{
    Suite *s = suite_create("report");
    TCase *tc = tcase_create("health");
    tcase_add_test(tc, test_default_watermarks);
    tcase_add_test(tc, test_levels_follow_the_watermarks);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *runner = srunner_create(report_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
