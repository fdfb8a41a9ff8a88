/* unit_loop.h - driving a libevent loop from a unit test: run it until a
 * flag the callbacks set turns true (failing the test if that never happens),
 * or for a while (to show that nothing more happens).
 *
 * Header-only (static inline functions) because the Makefile builds each unit suite
 * from its one test_*.c. */
#ifndef TENANTCACHED_TESTS_UNIT_LOOP_H
#define TENANTCACHED_TESTS_UNIT_LOOP_H

#include <check.h>
#include <event2/event.h>
#include <stdbool.h>
#include <time.h>

/* How long a test waits for the loop to reach a state before it fails: a
 * bound against hanging, not a speed assertion. */
#define UNIT_LOOP_WAIT_MS 10000

static inline long long unit_loop_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the loop in 10 ms slices until done(arg) is true; fails the test
 * after UNIT_LOOP_WAIT_MS. */
static inline void unit_loop_run_until_fn(struct event_base *base, bool (*done)(const void *arg),
                                          const void *arg, const char *what)
{
    long long deadline = unit_loop_now_ms() + UNIT_LOOP_WAIT_MS;
    while (!done(arg) && unit_loop_now_ms() < deadline) {
        struct timeval tick = {0, 10000};
        event_base_loopexit(base, &tick);
        event_base_loop(base, 0);
    }
    ck_assert_msg(done(arg), "the loop never got to: %s", what);
}

static inline bool unit_loop_flag_set(const void *arg)
{
    return *(const bool *)arg;
}

/* Runs the loop until *flag is true. */
static inline void unit_loop_run_until(struct event_base *base, const bool *flag, const char *what)
{
    unit_loop_run_until_fn(base, unit_loop_flag_set, flag, what);
}

/* Runs the loop for about ms. */
static inline void unit_loop_run_for(struct event_base *base, int ms)
{
    struct timeval span = {ms / 1000, (ms % 1000) * 1000};
    event_base_loopexit(base, &span);
    event_base_loop(base, 0);
}

#endif
