/* test_stream.c - catching up from redis.stream instead of flushing
 * (docs/reference.md §7), end to end: a real redis-server 7 with
 * scripts/tenantcached.lua loaded, publishers calling FCALL
 * tenantcached_publish, and the real daemon losing its subscription
 * (CLIENT KILL TYPE pubsub, kill -9 of Redis with AOF on) while changes are
 * published. Every test asserts exact values and the daemon's INFO counters.
 *
 * "While the subscription is down" is exact here: the CLIENT KILL and the
 * publishes run in one MULTI/EXEC, so nothing published reaches the daemon
 * live, and reconnect_min (300 ms) keeps it away until they are all in. */
#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define CHANNEL "tenantcached:invalidate"
#define STREAM "tenantcached:log"
#define WAIT_MS 5000

static struct harness h;
static redisContext *client; /* to the daemon */
static redisContext *redis;  /* to redis-server: publishes, admin */

/* The private sockets, the stream, reconnects after 300 ms, and `extra`
 * (more lines under redis:, each indented by two spaces; may be ""). */
static const char *config_text(const char *extra)
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
                     "  stream: \"" STREAM "\"\n"
                     "  connect_timeout: 500ms\n"
                     "  reconnect_min: 300ms\n"
                     "  reconnect_max: 300ms\n"
                     "%s"
                     "memory:\n"
                     "  max_bytes: 64mb\n"
                     "  tenant_max_bytes: 16mb\n"
                     "  max_tenants: 1000\n",
                     extra);
    ck_assert(n > 0 && (size_t)n < sizeof(text));
    return text;
}

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

/* ---- redis ---- */

static void redis_connect(void)
{
    if (redis != NULL)
        redisFree(redis);
    redis = harness_redis_connect(&h);
    ck_assert_ptr_nonnull(redis);
}

static void start_redis(const char *const *extra)
{
    ck_assert_int_eq(harness_redis_start_args(&h, extra), 0);
    redis_connect();
    harness_redis_load_library(redis);
}

static void set_profile(char *id, const char *tenant, const char *key, long value)
{
    char message[256];
    snprintf(message, sizeof(message),
             "{\"op\":\"set\",\"tenant\":\"%s\",\"kind\":\"profile\",\"key\":\"%s\","
             "\"value\":{\"v\":%ld}}",
             tenant, key, value);
    harness_fcall_publish(redis, STREAM, CHANNEL, id, 64, message);
}

/* One MULTI/EXEC: CLIENT KILL TYPE pubsub (the daemon's subscription, which
 * must be there), then the queued commands. The daemon sees none of them
 * live. */
struct batch {
    int queued;
};

static void batch_begin(struct batch *b)
{
    b->queued = 0;
    ck_assert_int_eq(redisAppendCommand(redis, "MULTI"), REDIS_OK);
    ck_assert_int_eq(redisAppendCommand(redis, "CLIENT KILL TYPE pubsub"), REDIS_OK);
    b->queued = 1;
}

static void batch_profile(struct batch *b, const char *tenant, const char *key, long value)
{
    char message[256];
    snprintf(message, sizeof(message),
             "{\"op\":\"set\",\"tenant\":\"%s\",\"kind\":\"profile\",\"key\":\"%s\","
             "\"value\":{\"v\":%ld}}",
             tenant, key, value);
    ck_assert_int_eq(redisAppendCommand(redis, "FCALL tenantcached_publish 1 %s %s %s", STREAM,
                                        CHANNEL, message),
                     REDIS_OK);
    b->queued++;
}

static void batch_command(struct batch *b, const char *command)
{
    ck_assert_int_eq(redisAppendCommand(redis, command), REDIS_OK);
    b->queued++;
}

/* Runs the transaction; asserts every command succeeded and the kill hit
 * exactly one subscription. */
static void batch_exec(struct batch *b)
{
    ck_assert_int_eq(redisAppendCommand(redis, "EXEC"), REDIS_OK);
    redisReply *reply;
    for (int i = 0; i < b->queued + 1; i++) { /* +OK, then +QUEUED each */
        ck_assert_int_eq(redisGetReply(redis, (void **)&reply), REDIS_OK);
        ck_assert_msg(reply->type == REDIS_REPLY_STATUS, "queueing: %s",
                      reply->type == REDIS_REPLY_ERROR ? reply->str : "?");
        freeReplyObject(reply);
    }
    ck_assert_int_eq(redisGetReply(redis, (void **)&reply), REDIS_OK);
    ck_assert_int_eq(reply->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(reply->elements, (size_t)b->queued);
    ck_assert_int_eq(reply->element[0]->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(reply->element[0]->integer, 1); /* the daemon's subscription */
    for (size_t i = 1; i < reply->elements; i++)
        ck_assert_msg(reply->element[i]->type != REDIS_REPLY_ERROR, "command %zu: %s", i,
                      reply->element[i]->str);
    freeReplyObject(reply);
}

/* ---- the daemon ---- */

/* INFO's stream_last_id into id[64] ("" when absent). */
static void info_last_id(char *id)
{
    redisReply *reply = redisCommand(client, "INFO");
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(reply->type, REDIS_REPLY_STRING);
    const char *line = strstr(reply->str, "\r\nstream_last_id:");
    ck_assert_ptr_nonnull(line);
    line += strlen("\r\nstream_last_id:");
    size_t len = strcspn(line, "\r");
    ck_assert_uint_lt(len, 64);
    memcpy(id, line, len);
    id[len] = '\0';
    freeReplyObject(reply);
}

static void start_daemon(const char *extra)
{
    ck_assert_int_eq(harness_daemon_start(&h, config_text(extra)), 0);
    client = harness_connect(&h);
    ck_assert_ptr_nonnull(client);
    ck_assert(harness_wait_subscribed(&h, WAIT_MS));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
}

#define KEYS 100

/* k0..k99 of tenant acme set to v=i, through the stream, and applied. */
static void seed(void)
{
    char id[64];
    for (long i = 0; i < KEYS; i++) {
        char key[32];
        snprintf(key, sizeof(key), "k%ld", i);
        set_profile(id, "acme", key, i);
    }
    ck_assert(harness_wait_reply(client, WAIT_MS, "{\"v\":99}", "GET acme profile k99"));
    ck_assert_int_eq(harness_info_int(client, "entries"), KEYS);
    char last[64];
    info_last_id(last);
    ck_assert_str_eq(last, id);
}

/* After the reconnect: k0..k(changed-1) hold base+i... as `value_of` says,
 * the others their seeded value; all of them hits, no miss. */
static void expect_all_cached(long changed, long base)
{
    long long hits = harness_info_int(client, "hits");
    long long misses = harness_info_int(client, "misses");
    for (long i = 0; i < KEYS; i++) {
        char expected[32];
        snprintf(expected, sizeof(expected), "{\"v\":%ld}", i < changed ? base + i : i);
        harness_expect(client, expected, "GET acme profile k%ld", i);
    }
    ck_assert_int_eq(harness_info_int(client, "hits"), hits + KEYS);
    ck_assert_int_eq(harness_info_int(client, "misses"), misses);
    ck_assert_int_eq(harness_info_int(client, "fills_l2"), 0);
    ck_assert_int_eq(harness_info_int(client, "fills_l3"), 0);
    ck_assert_int_eq(harness_info_int(client, "entries"), KEYS);
}

/* ---- catching up ---- */

START_TEST(test_client_kill_catches_up)
{
    start_redis(NULL);
    /* published before the daemon's first subscription: not its business */
    char before[64];
    set_profile(before, "early", "e1", 1);
    start_daemon("");
    char last[64];
    info_last_id(last);
    ck_assert_str_eq(last, before); /* started at the stream's end */
    harness_expect(client, "(nil)", "GET early profile e1");
    seed();
    ck_assert_int_eq(harness_info_int(client, "catchup_applied"), 0);
    long long applied = harness_info_int(client, "messages_applied");

    /* 300 changes while the subscription is down: six rounds over k0..k49 */
    struct batch b;
    batch_begin(&b);
    for (long round = 0; round < 6; round++) {
        for (long i = 0; i < 50; i++) {
            char key[32];
            snprintf(key, sizeof(key), "k%ld", i);
            batch_profile(&b, "acme", key, 1000 * (round + 1) + i);
        }
    }
    batch_exec(&b);

    ck_assert(harness_wait_info(client, WAIT_MS, "redis_reconnects", 1));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    /* every one of them from the stream, in order: the last round wins */
    ck_assert_int_eq(harness_info_int(client, "catchup_applied"), 300);
    ck_assert_int_eq(harness_info_int(client, "messages_applied"), applied + 300);
    ck_assert_int_eq(harness_info_int(client, "catchup_failed"), 0);
    ck_assert_int_eq(harness_info_int(client, "messages_duplicate"), 0);
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 0);
    expect_all_cached(50, 6000);
    ck_assert(!harness_log_contains(&h, "dropped all"));

    /* live again, and the stream position follows */
    char id[64];
    set_profile(id, "acme", "k99", 7);
    ck_assert(harness_wait_reply(client, WAIT_MS, "{\"v\":7}", "GET acme profile k99"));
    info_last_id(last);
    ck_assert_str_eq(last, id);
    ck_assert_int_eq(harness_info_int(client, "catchup_applied"), 300);
}
END_TEST

START_TEST(test_kill9_aof_catches_up)
{
    const char *const aof[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
    start_redis(aof);
    start_daemon("");
    seed();

    struct batch b;
    batch_begin(&b);
    for (long i = 0; i < 200; i++) {
        char key[32];
        snprintf(key, sizeof(key), "k%ld", i % 40);
        batch_profile(&b, "acme", key, (i < 160 ? 500 : 2000) + i % 40);
    }
    batch_exec(&b);
    /* before the daemon (reconnect_min 300 ms) can subscribe again */
    ck_assert_int_eq(harness_redis_stop(&h, SIGKILL), 0);
    ck_assert_int_eq(harness_redis_start_args(&h, aof), 0);
    redis_connect();

    ck_assert(harness_wait_subscribed(&h, WAIT_MS));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    ck_assert_int_eq(harness_info_int(client, "redis_reconnects"), 1);
    ck_assert_int_eq(harness_info_int(client, "catchup_applied"), 200);
    ck_assert_int_eq(harness_info_int(client, "catchup_failed"), 0);
    expect_all_cached(40, 2000);
    ck_assert(!harness_log_contains(&h, "dropped all"));

    /* the function survived in the AOF too: live publishes still work */
    char id[64];
    set_profile(id, "acme", "k0", 9);
    ck_assert(harness_wait_reply(client, WAIT_MS, "{\"v\":9}", "GET acme profile k0"));
}
END_TEST

START_TEST(test_unversioned_later_wins)
{
    start_redis(NULL);
    start_daemon("");
    seed();
    struct batch b;
    batch_begin(&b);
    batch_profile(&b, "acme", "k1", 111);
    batch_profile(&b, "acme", "k1", 222);
    batch_command(&b, "FCALL tenantcached_publish 1 " STREAM " " CHANNEL
                      " {\"op\":\"del\",\"tenant\":\"acme\",\"kind\":\"profile\",\"key\":\"k2\"}");
    batch_profile(&b, "acme", "k3", 333);
    batch_command(&b, "FCALL tenantcached_publish 1 " STREAM " " CHANNEL
                      " {\"op\":\"del\",\"tenant\":\"acme\",\"kind\":\"profile\",\"key\":\"k3\"}");
    batch_exec(&b);
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_reconnects", 1));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    ck_assert_int_eq(harness_info_int(client, "catchup_applied"), 5);
    harness_expect(client, "{\"v\":222}", "GET acme profile k1");
    harness_expect(client, "(nil)", "GET acme profile k2");
    harness_expect(client, "(nil)", "GET acme profile k3");
    harness_expect(client, "{\"v\":4}", "GET acme profile k4");
    ck_assert_int_eq(harness_info_int(client, "entries"), KEYS); /* k2 and k3 are tombstones now */
}
END_TEST

/* ---- what cannot be caught up ---- */

static void expect_flushed_after(struct batch *b)
{
    batch_exec(b);
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_reconnects", 1));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    ck_assert_int_eq(harness_info_int(client, "catchup_failed"), 1);
    ck_assert_int_eq(harness_info_int(client, "catchup_applied"), 0);
    ck_assert_int_eq(harness_info_int(client, "entries"), 0);
    harness_expect(client, "(nil)", "GET acme profile k50");
    ck_assert(harness_log_contains(&h, "dropped all"));
    /* and it goes on from the stream's end */
    char id[64];
    set_profile(id, "acme", "k50", 5);
    ck_assert(harness_wait_reply(client, WAIT_MS, "{\"v\":5}", "GET acme profile k50"));
    char last[64];
    info_last_id(last);
    ck_assert_str_eq(last, id);
}

START_TEST(test_trimmed_stream_flushes)
{
    start_redis(NULL);
    start_daemon("");
    seed();
    struct batch b;
    batch_begin(&b);
    for (long i = 0; i < 10; i++)
        batch_profile(&b, "acme", "k0", 100 + i);
    batch_command(&b, "XTRIM " STREAM " MAXLEN 0");
    expect_flushed_after(&b);
}
END_TEST

START_TEST(test_xdel_flushes)
{
    start_redis(NULL);
    start_daemon("");
    seed();
    /* three while down; the middle one deleted */
    char ids[3][64];
    redisReply *reply;
    ck_assert_int_eq(redisAppendCommand(redis, "MULTI"), REDIS_OK);
    ck_assert_int_eq(redisAppendCommand(redis, "CLIENT KILL TYPE pubsub"), REDIS_OK);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(redisAppendCommand(redis,
                                            "FCALL tenantcached_publish 1 %s %s "
                                            "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":"
                                            "\"profile\",\"key\":\"k1\",\"value\":%d}",
                                            STREAM, CHANNEL, i),
                         REDIS_OK);
    ck_assert_int_eq(redisAppendCommand(redis, "EXEC"), REDIS_OK);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(redisGetReply(redis, (void **)&reply), REDIS_OK);
        freeReplyObject(reply);
    }
    ck_assert_int_eq(redisGetReply(redis, (void **)&reply), REDIS_OK);
    ck_assert_int_eq(reply->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(reply->elements, 4);
    ck_assert_int_eq(reply->element[0]->integer, 1);
    for (int i = 0; i < 3; i++)
        snprintf(ids[i], sizeof(ids[i]), "%s", reply->element[i + 1]->str);
    freeReplyObject(reply);
    /* the daemon waits reconnect_min (300 ms) before it subscribes again */
    reply = redisCommand(redis, "XDEL %s %s", STREAM, ids[1]);
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(reply->integer, 1);
    freeReplyObject(reply);
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_reconnects", 1));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    ck_assert_int_eq(harness_info_int(client, "catchup_failed"), 1);
    ck_assert_int_eq(harness_info_int(client, "catchup_applied"), 0);
    ck_assert_int_eq(harness_info_int(client, "entries"), 0);
    ck_assert(harness_log_contains(&h, "dropped all"));
}
END_TEST

START_TEST(test_stream_lost_keep)
{
    /* no persistence: a restart loses the stream; on_reconnect: keep */
    start_redis(NULL);
    start_daemon("  on_reconnect: keep\n");
    seed();
    ck_assert_int_eq(harness_redis_stop(&h, SIGKILL), 0);
    start_redis(NULL);
    ck_assert(harness_wait_subscribed(&h, WAIT_MS));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    ck_assert_int_eq(harness_info_int(client, "catchup_failed"), 1);
    ck_assert_int_eq(harness_info_int(client, "entries"), KEYS); /* keep: nothing dropped */
    ck_assert(!harness_log_contains(&h, "dropped all"));
    ck_assert(harness_log_contains(&h, "the stream is gone"));
    char id[64];
    set_profile(id, "acme", "k0", 77);
    ck_assert(harness_wait_reply(client, WAIT_MS, "{\"v\":77}", "GET acme profile k0"));
}
END_TEST

/* ---- live envelopes ---- */

START_TEST(test_duplicates_skipped)
{
    start_redis(NULL);
    start_daemon("");
    char id[64];
    set_profile(id, "acme", "k1", 1);
    ck_assert(harness_wait_reply(client, WAIT_MS, "{\"v\":1}", "GET acme profile k1"));
    set_profile(id, "acme", "k1", 2);
    ck_assert(harness_wait_reply(client, WAIT_MS, "{\"v\":2}", "GET acme profile k1"));
    long long applied = harness_info_int(client, "messages_applied");

    /* the same envelope again, and one from long ago: skipped, counted */
    char envelope[512];
    snprintf(envelope, sizeof(envelope),
             "{\"id\":\"%s\",\"message\":{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"profile\","
             "\"key\":\"k1\",\"value\":{\"v\":2}}}",
             id);
    ck_assert_int_eq(harness_publish(&h, CHANNEL, envelope), 1);
    ck_assert_int_eq(harness_publish(&h, CHANNEL,
                                     "{\"id\":\"1-0\",\"message\":{\"op\":\"set\",\"tenant\":"
                                     "\"acme\",\"kind\":\"profile\",\"key\":\"k1\",\"value\":"
                                     "{\"v\":0}}}"),
                     1);
    ck_assert(harness_wait_info(client, WAIT_MS, "messages_duplicate", 2));
    harness_expect(client, "{\"v\":2}", "GET acme profile k1");
    ck_assert_int_eq(harness_info_int(client, "messages_applied"), applied);

    /* plain messages stay valid next to envelopes */
    ck_assert_int_eq(harness_publish(&h, CHANNEL,
                                     "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"profile\","
                                     "\"key\":\"k2\",\"value\":{\"v\":3}}"),
                     1);
    ck_assert(harness_wait_reply(client, WAIT_MS, "{\"v\":3}", "GET acme profile k2"));
    /* a malformed envelope is an invalid message */
    long long invalid = harness_info_int(client, "messages_invalid");
    ck_assert_int_eq(harness_publish(&h, CHANNEL, "{\"id\":\"x\",\"message\":{}}"), 1);
    ck_assert(harness_wait_info(client, WAIT_MS, "messages_invalid", invalid + 1));
    ck_assert_int_eq(harness_info_int(client, "messages_duplicate"), 2);
}
END_TEST

/* Live envelopes published during a long catch-up are applied after the
 * backlog, never before it, and each exactly once: the last live value wins. */
START_TEST(test_live_during_catch_up)
{
    start_redis(NULL);
    start_daemon("  stream_batch: 1\n");
    seed();
    long long applied = harness_info_int(client, "messages_applied");
    struct batch b;
    batch_begin(&b);
    for (long i = 0; i < 2000; i++)
        batch_profile(&b, "acme", "k0", i);
    batch_exec(&b);
    ck_assert(harness_wait_subscribed(&h, WAIT_MS));
    /* publish live until the daemon is caught up, and five more after */
    int live = 0;
    int after = 0;
    char id[64];
    while (after < 5) {
        set_profile(id, "acme", "k0", 10000 + live);
        live++;
        if (harness_info_int(client, "redis_connected") == 1)
            after++;
        ck_assert_int_lt(live, 100000);
    }
    char expected[32];
    snprintf(expected, sizeof(expected), "{\"v\":%d}", 10000 + live - 1);
    ck_assert(harness_wait_reply(client, WAIT_MS, expected, "GET acme profile k0"));
    char last[64];
    info_last_id(last);
    ck_assert_str_eq(last, id);
    ck_assert_int_eq(harness_info_int(client, "messages_applied"), applied + 2000 + live);
    /* the catch-up reads on while the stream grows: the live ones it read
     * were then skipped as held duplicates */
    ck_assert_int_ge(harness_info_int(client, "catchup_applied"), 2000);
    ck_assert_int_le(harness_info_int(client, "catchup_applied"), 2000 + live);
    ck_assert_int_eq(harness_info_int(client, "catchup_failed"), 0);
    ck_assert_int_eq(harness_info_int(client, "entries"), KEYS);
    ck_assert(!harness_log_contains(&h, "dropped all"));
}
END_TEST

/* ---- staleness while catching up ---- */

START_TEST(test_stale_until_caught_up)
{
    start_redis(NULL);
    /* one entry per round: a long catch-up; max_stale 1ms: stale at once */
    start_daemon("  stream_batch: 1\n  max_stale: 1ms\n");
    char id[64];
    harness_fcall_publish(
        redis, STREAM, CHANNEL, id, sizeof(id),
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"op\",\"value\":3}");
    ck_assert(harness_wait_reply(client, WAIT_MS, "3", "GET acme credit op"));

    struct batch b;
    batch_begin(&b);
    for (long i = 0; i < 3000; i++)
        batch_profile(&b, "acme", "k0", i);
    batch_exec(&b);
    /* No fresh answer for critical data before the whole backlog is in; at
     * least one -STALE while subscribed again but still catching up. */
    bool stale_while_catching_up = false;
    long long deadline = harness_now_ms() + 20000;
    for (;;) {
        redisReply *reply = redisCommand(client, "GET acme credit op");
        ck_assert_ptr_nonnull(reply);
        bool stale = reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "STALE", 5) == 0;
        bool fresh = reply->type == REDIS_REPLY_STRING && strcmp(reply->str, "3") == 0;
        ck_assert_msg(stale || fresh, "unexpected reply");
        freeReplyObject(reply);
        long long caught = harness_info_int(client, "catchup_applied");
        if (fresh) {
            ck_assert_int_eq(caught, 3000);
            break;
        }
        redisReply *numsub = redisCommand(redis, "PUBSUB NUMSUB %s", CHANNEL);
        ck_assert_ptr_nonnull(numsub);
        if (numsub->element[1]->integer == 1 && caught > 0 && caught < 3000)
            stale_while_catching_up = true;
        freeReplyObject(numsub);
        ck_assert(harness_now_ms() < deadline);
    }
    ck_assert(stale_while_catching_up);
    ck_assert_int_eq(harness_info_int(client, "redis_connected"), 1);
    harness_expect(client, "{\"v\":2999}", "GET acme profile k0");
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("stream");
    TCase *catchup = tcase_create("catchup");
    tcase_add_checked_fixture(catchup, setup, teardown);
    tcase_set_timeout(catchup, 60);
    tcase_add_test(catchup, test_client_kill_catches_up);
    tcase_add_test(catchup, test_kill9_aof_catches_up);
    tcase_add_test(catchup, test_unversioned_later_wins);
    tcase_add_test(catchup, test_stale_until_caught_up);
    tcase_add_test(catchup, test_live_during_catch_up);
    suite_add_tcase(suite, catchup);

    TCase *gone = tcase_create("gone");
    tcase_add_checked_fixture(gone, setup, teardown);
    tcase_set_timeout(gone, 60);
    tcase_add_test(gone, test_trimmed_stream_flushes);
    tcase_add_test(gone, test_xdel_flushes);
    tcase_add_test(gone, test_stream_lost_keep);
    suite_add_tcase(suite, gone);

    TCase *live = tcase_create("live");
    tcase_add_checked_fixture(live, setup, teardown);
    tcase_set_timeout(live, 60);
    tcase_add_test(live, test_duplicates_skipped);
    suite_add_tcase(suite, live);

    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
