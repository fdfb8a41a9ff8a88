/* test_freshness.c - freshness.c: the one rule for "is the invalidation
 * stream fresh": down from start until the first subscribe, down since the
 * earlier of a lost subscription and a silent publisher, stale only past
 * max_stale, and an outage that outlives a catch-up keeps its start. */
#include <check.h>
#include <stdlib.h>

#include "freshness.h"

START_TEST(test_down_from_start)
{
    freshness_start(1000);
    ck_assert(!freshness_subscribed());
    ck_assert_uint_eq(freshness_down_since(), 1000);
    ck_assert_uint_eq(freshness_down_ms(1500), 500);
    ck_assert_uint_eq(freshness_down_ms(900), 0); /* a clock read before the start */
    ck_assert(!freshness_stale(1500, 500));       /* exactly max_stale: still served */
    ck_assert(freshness_stale(1501, 500));
}
END_TEST

START_TEST(test_current_then_lost)
{
    freshness_start(1000);
    freshness_current();
    ck_assert(freshness_subscribed());
    ck_assert_uint_eq(freshness_down_since(), 0);
    ck_assert_uint_eq(freshness_down_ms(99999), 0);
    ck_assert(!freshness_stale(99999, 0));

    freshness_lost(5000);
    ck_assert(!freshness_subscribed());
    ck_assert_uint_eq(freshness_down_since(), 5000);
    /* lost again (a catch-up that did not finish): the outage's start stays */
    freshness_lost(7000);
    ck_assert_uint_eq(freshness_down_since(), 5000);
    ck_assert(freshness_stale(7000, 1999));
    ck_assert(!freshness_stale(7000, 2000));
    freshness_current();
    ck_assert_uint_eq(freshness_down_since(), 0);
    freshness_lost(9000);
    ck_assert_uint_eq(freshness_down_since(), 9000);
}
END_TEST

START_TEST(test_silent_publisher)
{
    freshness_start(1000);
    freshness_current();
    freshness_set_silent(3000);
    ck_assert(freshness_subscribed()); /* still subscribed, yet not fresh */
    ck_assert_uint_eq(freshness_silent_since(), 3000);
    ck_assert_uint_eq(freshness_down_since(), 3000);
    ck_assert(freshness_stale(4001, 1000));

    /* the earlier of the two counts */
    freshness_lost(2000);
    ck_assert_uint_eq(freshness_down_since(), 2000);
    freshness_current();
    freshness_lost(8000);
    ck_assert_uint_eq(freshness_down_since(), 3000);

    freshness_set_silent(0);
    ck_assert_uint_eq(freshness_down_since(), 8000);
    freshness_current();
    ck_assert_uint_eq(freshness_down_since(), 0);
    ck_assert(!freshness_stale(100000, 0));
}
END_TEST

static Suite *freshness_suite(void)
{
    Suite *s = suite_create("freshness");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_down_from_start);
    tcase_add_test(tc, test_current_then_lost);
    tcase_add_test(tc, test_silent_publisher);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *runner = srunner_create(freshness_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
