/* test_snapshot.c - warm restart from snapshot.path (docs/reference.md §6),
 * end to end: the real daemon stopped with SIGTERM writes its snapshot,
 * changes are published (FCALL tenantcached_publish) while it is down, and
 * the restarted daemon answers from the snapshot before any message, then
 * catches up from the stream. Corrupt, truncated and missing files start it
 * empty; a periodic save is counted in INFO. */
#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define CHANNEL "tenantcached:invalidate"
#define STREAM "tenantcached:log"
#define WAIT_MS 5000
#define KEYS 100

static struct harness h;
static redisContext *client;
static redisContext *redis;
static const char *const aof[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};

/* The private sockets, snapshot at <dir>/snapshot, and `extra` (top-level
 * lines) and `redis_extra` (lines under redis:). */
static const char *config_text(const char *redis_extra, const char *extra)
{
    static char text[4096];
    int n = snprintf(text, sizeof(text),
                     "log_level: debug\n"
                     "threads: 2\n"
                     "shards: 4\n"
                     "listen:\n"
                     "  socket: \"@DAEMON_SOCKET@\"\n"
                     "redis:\n"
                     "  unix: \"@REDIS_SOCKET@\"\n"
                     "  channels: [" CHANNEL "]\n"
                     "  connect_timeout: 500ms\n"
                     "  reconnect_min: 100ms\n"
                     "  reconnect_max: 200ms\n"
                     "%s"
                     "memory:\n"
                     "  max_bytes: 64mb\n"
                     "  tenant_max_bytes: 16mb\n"
                     "  max_tenants: 1000\n"
                     "%s",
                     redis_extra, extra);
    ck_assert(n > 0 && (size_t)n < sizeof(text));
    return text;
}

#define WITH_STREAM "  stream: \"" STREAM "\"\n"
#define SNAPSHOT_AT_STOP "snapshot:\n  path: \"@DIR@/snapshot\"\n  interval: 0\n"

static void setup(void)
{
    harness_init(&h);
}

static void teardown(void)
{
    if (client != NULL)
        redisFree(client);
    client = NULL;
    if (redis != NULL)
        redisFree(redis);
    redis = NULL;
    harness_finish(&h);
}

static void snapshot_path(char *path, size_t size)
{
    snprintf(path, size, "%s/snapshot", h.dir);
}

static void start_redis(bool load)
{
    ck_assert_int_eq(harness_redis_start_args(&h, aof), 0);
    if (redis != NULL)
        redisFree(redis);
    redis = harness_redis_connect(&h);
    ck_assert_ptr_nonnull(redis);
    if (!load)
        return;
    harness_redis_load_library(redis);
}

static void set_profile(long i, long value)
{
    char message[256];
    snprintf(message, sizeof(message),
             "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"profile\",\"key\":\"k%ld\","
             "\"value\":{\"v\":%ld},\"version\":%ld}",
             i, value, value + 1);
    harness_fcall_publish(redis, STREAM, CHANNEL, NULL, 0, message);
}

static void start_daemon(const char *redis_extra, const char *extra, bool wait_subscribed)
{
    if (client != NULL)
        redisFree(client);
    ck_assert_int_eq(harness_daemon_start(&h, config_text(redis_extra, extra)), 0);
    client = harness_connect(&h);
    ck_assert_ptr_nonnull(client);
    if (wait_subscribed) {
        ck_assert(harness_wait_subscribed(&h, WAIT_MS));
        ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    }
}

/* k0..k99 = i, a credit and a deleted profile, published and applied. */
static void seed(void)
{
    for (long i = 0; i < KEYS; i++)
        set_profile(i, i);
    harness_fcall_publish(
        redis, STREAM, CHANNEL, NULL, 0,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"op\",\"value\":3}");
    harness_fcall_publish(
        redis, STREAM, CHANNEL, NULL, 0,
        "{\"op\":\"del\",\"tenant\":\"acme\",\"kind\":\"profile\",\"key\":\"gone\","
        "\"version\":9}");
    ck_assert(harness_wait_reply(client, WAIT_MS, "3", "GET acme credit op"));
    ck_assert(harness_wait_reply(client, WAIT_MS, "{\"v\":99}", "GET acme profile k99"));
    /* the del, published last, is in too */
    ck_assert(harness_wait_info(client, WAIT_MS, "entries", KEYS + 2));
}

/* SIGTERM: a clean stop writes the snapshot. */
static void stop_daemon(void)
{
    redisFree(client);
    client = NULL;
    ck_assert_int_eq(harness_daemon_stop(&h, SIGTERM), 0);
    char path[256];
    snapshot_path(path, sizeof(path));
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0, "no snapshot at %s", path);
    ck_assert_int_gt(st.st_size, 1000);
    ck_assert(harness_log_contains(&h, "snapshot: 102 entries written"));
}

START_TEST(test_warm_restart_catches_up)
{
    start_redis(true);
    start_daemon(WITH_STREAM, SNAPSHOT_AT_STOP, true);
    seed();
    stop_daemon();

    /* while the daemon is down: k0..k49 change, then Redis goes away too */
    for (long i = 0; i < 50; i++)
        set_profile(i, 1000 + i);
    harness_fcall_publish(
        redis, STREAM, CHANNEL, NULL, 0,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"profile\",\"key\":\"gone\","
        "\"value\":{\"v\":8},\"version\":8}"); /* older than the tombstone */
    ck_assert_int_eq(harness_redis_stop(&h, SIGKILL), 0);

    /* the daemon answers from the snapshot before any message could come */
    start_daemon(WITH_STREAM, SNAPSHOT_AT_STOP, false);
    ck_assert_int_eq(harness_info_int(client, "redis_connected"), 0);
    ck_assert_int_eq(harness_info_int(client, "snapshot_loaded_entries"), KEYS + 2);
    ck_assert_int_eq(harness_info_int(client, "entries"), KEYS + 2);
    harness_expect(client, "{\"v\":0}", "GET acme profile k0");
    harness_expect(client, "{\"v\":99}", "GET acme profile k99");
    harness_expect(client, "3", "CREDIT acme op"); /* critical, within max_stale */
    harness_expect(client, "(nil)", "GET acme profile gone");
    ck_assert_int_eq(harness_info_int(client, "misses"), 0); /* the tombstone answers nil itself */
    ck_assert_int_eq(harness_info_int(client, "messages_applied"), 0);

    /* Redis back: caught up from the snapshot's stream entry, nothing flushed */
    start_redis(false);
    ck_assert(harness_wait_subscribed(&h, WAIT_MS));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    ck_assert_int_eq(harness_info_int(client, "catchup_applied"), 51);
    ck_assert_int_eq(harness_info_int(client, "catchup_failed"), 0);
    ck_assert_int_eq(harness_info_int(client, "messages_stale"),
                     1); /* the set older than the tombstone */
    for (long i = 0; i < KEYS; i++) {
        char expected[32];
        snprintf(expected, sizeof(expected), "{\"v\":%ld}", i < 50 ? 1000 + i : i);
        harness_expect(client, expected, "GET acme profile k%ld", i);
    }
    harness_expect(client, "(nil)", "GET acme profile gone");
    ck_assert_int_eq(harness_info_int(client, "entries"), KEYS + 2);
    ck_assert(!harness_log_contains(&h, "dropped all"));
}
END_TEST

START_TEST(test_no_stream_policy)
{
    /* without a stream, on_reconnect decides: keep serves the snapshot */
    start_redis(true);
    start_daemon("  on_reconnect: keep\n", SNAPSHOT_AT_STOP, true);
    seed();
    stop_daemon();
    start_daemon("  on_reconnect: keep\n", SNAPSHOT_AT_STOP, true);
    ck_assert_int_eq(harness_info_int(client, "snapshot_loaded_entries"), KEYS + 2);
    harness_expect(client, "{\"v\":5}", "GET acme profile k5");
    ck_assert_int_eq(harness_info_int(client, "entries"), KEYS + 2);

    /* ... flush drops it at the first subscription */
    redisFree(client);
    client = NULL;
    ck_assert_int_eq(harness_daemon_stop(&h, SIGTERM), 0);
    start_daemon("", SNAPSHOT_AT_STOP, true);
    ck_assert_int_eq(harness_info_int(client, "snapshot_loaded_entries"), KEYS + 2);
    ck_assert_int_eq(harness_info_int(client, "entries"), 0);
    ck_assert(harness_log_contains(&h, "no stream covers the snapshot"));
}
END_TEST

/* Rewrites the snapshot: keep `keep` bytes (0: all) and flip byte `flip`
 * (negative: none). */
static void damage(long keep, long flip)
{
    char path[256];
    snapshot_path(path, sizeof(path));
    FILE *file = fopen(path, "r+b");
    ck_assert_ptr_nonnull(file);
    if (flip >= 0) {
        ck_assert_int_eq(fseek(file, flip, SEEK_SET), 0);
        int c = fgetc(file);
        ck_assert_int_ne(c, EOF);
        ck_assert_int_eq(fseek(file, flip, SEEK_SET), 0);
        fputc(c ^ 0x20, file);
    }
    fclose(file);
    if (keep > 0)
        ck_assert_int_eq(truncate(path, keep), 0);
}

static void expect_started_empty(const char *why)
{
    start_daemon("  on_reconnect: keep\n", SNAPSHOT_AT_STOP, true);
    ck_assert_int_eq(harness_info_int(client, "snapshot_loaded_entries"), 0);
    ck_assert_int_eq(harness_info_int(client, "entries"), 0);
    ck_assert_msg(harness_log_contains(&h, why), "no '%s' in the log", why);
    harness_expect(client, "(nil)", "GET acme profile k5");
    redisFree(client);
    client = NULL;
    ck_assert_int_eq(harness_daemon_stop(&h, SIGTERM), 0);
}

START_TEST(test_damaged_snapshots)
{
    start_redis(true);
    /* missing: starts empty */
    start_daemon("  on_reconnect: keep\n", SNAPSHOT_AT_STOP, true);
    ck_assert(harness_log_contains(&h, "snapshot ignored, starting empty: cannot open"));
    seed();
    stop_daemon();
    char path[256];
    snapshot_path(path, sizeof(path));
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    long size = (long)st.st_size;
    char copy[300];
    snprintf(copy, sizeof(copy), "%s.good", path);
    char command[700];
    snprintf(command, sizeof(command), "cp '%s' '%s'", path, copy);
    ck_assert_int_eq(system(command), 0);
    snprintf(command, sizeof(command), "cp '%s' '%s'", copy, path);

    damage(size / 2, -1); /* truncated */
    expect_started_empty("checksum mismatch");
    ck_assert_int_eq(system(command), 0);
    damage(0, size / 2); /* one byte flipped in the records */
    expect_started_empty("checksum mismatch");
    ck_assert_int_eq(system(command), 0);
    damage(0, 9); /* the format version */
    expect_started_empty("format version");
    ck_assert_int_eq(system(command), 0);
    damage(5, -1); /* almost nothing left */
    expect_started_empty("not a tenantcached snapshot");

    /* the intact copy still loads */
    snprintf(command, sizeof(command), "cp '%s' '%s'", copy, path);
    ck_assert_int_eq(system(command), 0);
    start_daemon("  on_reconnect: keep\n", SNAPSHOT_AT_STOP, true);
    ck_assert_int_eq(harness_info_int(client, "snapshot_loaded_entries"), KEYS + 2);
}
END_TEST

START_TEST(test_kinds_by_name)
{
    /* entries are matched to kinds by name: a kind the new config lacks is
     * left out, the rest loads */
    start_redis(true);
    start_daemon("  on_reconnect: keep\n", SNAPSHOT_AT_STOP "kinds:\n  widget: {tier: critical}\n",
                 true);
    seed();
    harness_fcall_publish(redis, STREAM, CHANNEL, NULL, 0,
                          "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"widget\",\"key\":\"w\","
                          "\"value\":{\"x\":1}}");
    ck_assert(harness_wait_reply(client, WAIT_MS, "{\"x\":1}", "GET acme widget w"));
    redisFree(client);
    client = NULL;
    ck_assert_int_eq(harness_daemon_stop(&h, SIGTERM), 0);
    ck_assert(harness_log_contains(&h, "snapshot: 103 entries written"));
    start_daemon("  on_reconnect: keep\n", SNAPSHOT_AT_STOP, true);
    ck_assert_int_eq(harness_info_int(client, "snapshot_loaded_entries"), KEYS + 2);
    harness_expect(client, "{\"v\":7}", "GET acme profile k7");
    harness_expect(client, "-ERR unknown kind 'widget'", "GET acme widget w");
}
END_TEST

START_TEST(test_periodic_save)
{
    start_redis(true);
    start_daemon(WITH_STREAM, "snapshot:\n  path: \"@DIR@/snapshot\"\n  interval: 300ms\n", true);
    seed();
    long long deadline = harness_now_ms() + WAIT_MS;
    while (harness_info_int(client, "snapshot_entries") != KEYS + 2 && harness_now_ms() < deadline)
        harness_sleep_ms(50);
    ck_assert_int_eq(harness_info_int(client, "snapshot_entries"), KEYS + 2);
    ck_assert_int_gt(harness_info_int(client, "snapshot_saved_at"), 1700000000);
    ck_assert_int_ge(harness_info_int(client, "snapshot_save_ms"), 0);
    /* the file on disk is the whole snapshot: a daemon killed now restarts warm */
    ck_assert_int_eq(harness_daemon_stop(&h, SIGKILL), 128 + SIGKILL);
    redisFree(client);
    client = NULL;
    start_daemon(WITH_STREAM, SNAPSHOT_AT_STOP, true);
    ck_assert_int_eq(harness_info_int(client, "snapshot_loaded_entries"), KEYS + 2);
    harness_expect(client, "{\"v\":42}", "GET acme profile k42");
    ck_assert_int_eq(harness_info_int(client, "catchup_failed"), 0);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("snapshot");
    TCase *restart = tcase_create("restart");
    tcase_add_checked_fixture(restart, setup, teardown);
    tcase_set_timeout(restart, 60);
    tcase_add_test(restart, test_warm_restart_catches_up);
    tcase_add_test(restart, test_no_stream_policy);
    tcase_add_test(restart, test_periodic_save);
    suite_add_tcase(suite, restart);

    TCase *damaged = tcase_create("damaged");
    tcase_add_checked_fixture(damaged, setup, teardown);
    tcase_set_timeout(damaged, 60);
    tcase_add_test(damaged, test_damaged_snapshots);
    tcase_add_test(damaged, test_kinds_by_name);
    suite_add_tcase(suite, damaged);

    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
