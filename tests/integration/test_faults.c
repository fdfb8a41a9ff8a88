/* test_faults.c - Redis faults end to end (docs/reference.md §7):
 * a real redis-server killed, restarted, paused, made to drop the daemon's
 * subscription; the real tenantcached binary answering through all of it.
 * Every test asserts exact replies, the daemon's INFO counters and HEALTH,
 * and ends with the cache consistent with the last published state.
 *
 * Each test gets its own redis-server and daemon (checked fixture) and starts
 * them itself, with the config it needs. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"

#define CHANNEL "tenantcached:invalidate"
#define WAIT_MS 5000

static struct harness h;
static redisContext *client;

/* ---- configs ---- */

/* The private sockets, reconnects after reconnect_min..max ms, and
 * `redis_extra` (more keys under redis:, each line indented by two spaces;
 * may be ""). */
static const char *config_text_reconnect(const char *redis_extra, int reconnect_min,
                                         int reconnect_max)
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
                     "  channels: [tenantcached:invalidate]\n"
                     "  connect_timeout: 300ms\n"
                     "  reconnect_min: %dms\n"
                     "  reconnect_max: %dms\n"
                     "%s"
                     "memory:\n"
                     "  max_bytes: 64mb\n"
                     "  tenant_max_bytes: 16mb\n"
                     "  max_tenants: 1000\n",
                     reconnect_min, reconnect_max, redis_extra);
    ck_assert(n > 0 && (size_t)n < sizeof(text));
    return text;
}

/* The same with fast reconnects (50 ms .. 300 ms). */
static const char *config_text(const char *redis_extra)
{
    return config_text_reconnect(redis_extra, 50, 300);
}

static void setup(void)
{
    harness_init(&h);
}

/* The daemon must stop cleanly after whatever a test did to it. */
static void teardown(void)
{
    if (client != NULL)
        redisFree(client);
    client = NULL;
    if (h.redis_pid > 0)
        harness_redis_resume(&h); /* a test that failed while redis was paused */
    harness_finish(&h);
}

/* Starts the daemon with `redis_extra`, connects `client`; when redis runs,
 * waits until the daemon counts itself subscribed. */
static void start_daemon(const char *redis_extra)
{
    ck_assert_int_eq(harness_daemon_start(&h, config_text(redis_extra)), 0);
    client = harness_connect(&h);
    ck_assert_ptr_nonnull(client);
    if (h.redis_pid > 0) {
        ck_assert(harness_wait_subscribed(&h, WAIT_MS));
        ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    }
}

static void start_all(const char *redis_extra)
{
    ck_assert_int_eq(harness_redis_start(&h), 0);
    start_daemon(redis_extra);
}

/* ---- replies ---- */

/* HEALTH's `redis` field and `stale_seconds`. */
static void health(char *redis, size_t size, long long *stale_seconds)
{
    json_t *root = harness_health(client);
    json_t *state = json_object_get(root, "redis");
    json_t *stale = json_object_get(root, "stale_seconds");
    ck_assert(json_is_string(state));
    ck_assert(json_is_integer(stale));
    snprintf(redis, size, "%s", json_string_value(state));
    *stale_seconds = (long long)json_integer_value(stale);
    json_decref(root);
}

static void expect_health(const char *redis, long long min_stale, long long max_stale)
{
    char state[32];
    long long stale;
    health(state, sizeof(state), &stale);
    ck_assert_msg(strcmp(state, redis) == 0, "HEALTH redis is '%s', expected '%s'", state, redis);
    ck_assert_msg(stale >= min_stale && stale <= max_stale,
                  "HEALTH stale_seconds is %lld, expected %lld..%lld", stale, min_stale, max_stale);
}

/* ---- publishing ---- */

/* The entries every staleness test reads: a credit, a profile, and a user
 * whose role grants crm.read. */
static void publish_fixture(void)
{
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"op\",\"value\":3}");
    harness_publish_ok(&h, CHANNEL,
                       "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"profile\",\"key\":\"u1\","
                       "\"value\":{\"name\":\"Ann\"}}");
    harness_publish_ok(&h, CHANNEL,
                       "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"sales\","
                       "\"value\":[\"crm.*\"]}");
    harness_publish_ok(&h, CHANNEL,
                       "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u1\","
                       "\"value\":{\"status\":\"active\",\"roles\":[\"sales\"]}}");
    ck_assert(harness_wait_match(client, WAIT_MS, "active", "STATUS acme u1"));
}

static void expect_fixture_fresh(void)
{
    harness_expect_match(client, "3", "GET acme credit op");
    harness_expect_match(client, "3", "CREDIT acme op");
    harness_expect_match(client, ":1", "CAN acme u1 crm.read");
    harness_expect_match(client, ":1", "ROLECAN acme sales crm.read");
    harness_expect_match(client, "[crm.*]", "PERMS acme sales");
    harness_expect_match(client, "{\"name\":\"Ann\"}", "GET acme profile u1");
}

/* Every critical query answers -STALE; the reference one is served and
 * counted. */
static void expect_fixture_stale(void)
{
    long long refused = harness_info_int(client, "stale_refused");
    long long served = harness_info_int(client, "stale_served");
    harness_expect_match(client, "-STALE invalidation stream down for *", "GET acme credit op");
    harness_expect_match(client, "-STALE *", "CREDIT acme op");
    harness_expect_match(client, "-STALE *", "CAN acme u1 crm.read");
    harness_expect_match(client, "-STALE *", "STATUS acme u1");
    harness_expect_match(client, "-STALE *", "GET cache:acme:credit:op");
    harness_expect_match(client, "-STALE *", "ROLECAN acme sales crm.read");
    harness_expect_match(client, "-STALE *", "PERMS acme sales");
    harness_expect_match(client, "-STALE *", "MGET cache:acme:profile:u1 cache:acme:credit:op");
    harness_expect_match(client, "{\"name\":\"Ann\"}", "GET acme profile u1");
    ck_assert_int_eq(harness_info_int(client, "stale_refused"), refused + 8);
    ck_assert_int_eq(harness_info_int(client, "stale_served"),
                     served + 2); /* the MGET's profile, then GET */
}

/* ---- kill -9 and restart ---- */

START_TEST(test_kill_restart_flush)
{
    start_all("");
    publish_fixture();
    ck_assert_int_eq(harness_info_int(client, "entries"), 4);
    expect_health("connected", 0, 0);
    ck_assert_int_eq(harness_info_int(client, "redis_disconnected_seconds"), 0);

    ck_assert_int_eq(harness_redis_stop(&h, SIGKILL), 0);
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 0));
    expect_health("disconnected", 0, 1);
    /* within max_stale (30 s by default) everything is served as it was */
    expect_fixture_fresh();
    harness_sleep_ms(1100);
    ck_assert_int_ge(harness_info_int(client, "redis_disconnected_seconds"), 1);
    expect_health("disconnected", 1, 3);
    ck_assert_int_eq(harness_info_int(client, "stale_refused"), 0);
    ck_assert_int_eq(harness_info_int(client, "stale_served"), 0);

    ck_assert_int_eq(harness_redis_start(&h), 0);
    ck_assert(harness_wait_subscribed(&h, WAIT_MS));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    ck_assert_int_eq(harness_info_int(client, "redis_reconnects"), 1);
    ck_assert_int_eq(harness_info_int(client, "redis_disconnected_seconds"), 0);
    expect_health("connected", 0, 0);
    /* on_reconnect: flush dropped everything: what changed meanwhile is lost */
    ck_assert_int_eq(harness_info_int(client, "entries"), 0);
    harness_expect_match(client, "(nil)", "GET acme credit op");
    harness_expect_match(client, "(nil)", "CREDIT acme op");
    harness_expect_match(client, "(nil)", "CAN acme u1 crm.read");
    harness_expect_match(client, "(nil)", "GET acme profile u1");
    ck_assert(harness_log_contains(&h, "dropped all 4 cached entries"));
    /* the new subscription delivers */
    long long applied = harness_info_int(client, "messages_applied");
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"op\",\"value\":5}");
    ck_assert(harness_wait_match(client, WAIT_MS, "5", "CREDIT acme op"));
    ck_assert_int_eq(harness_info_int(client, "messages_applied"), applied + 1);

    /* a second outage counts a second reconnect */
    ck_assert_int_eq(harness_redis_stop(&h, SIGKILL), 0);
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 0));
    ck_assert_int_eq(harness_redis_start(&h), 0);
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    ck_assert_int_eq(harness_info_int(client, "redis_reconnects"), 2);
    harness_expect_match(client, "(nil)", "CREDIT acme op");
}
END_TEST

START_TEST(test_kill_restart_keep)
{
    start_all("  on_reconnect: keep\n");
    publish_fixture();
    ck_assert_int_eq(harness_redis_stop(&h, SIGKILL), 0);
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 0));
    expect_health("disconnected", 0, 1);
    ck_assert_int_eq(harness_redis_start(&h), 0);
    ck_assert(harness_wait_subscribed(&h, WAIT_MS));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    ck_assert_int_eq(harness_info_int(client, "redis_reconnects"), 1);
    expect_health("connected", 0, 0);
    /* keep: the operator accepts staleness; nothing was dropped */
    ck_assert_int_eq(harness_info_int(client, "entries"), 4);
    expect_fixture_fresh();
    ck_assert(!harness_log_contains(&h, "dropped all"));
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"op\",\"value\":6}");
    ck_assert(harness_wait_match(client, WAIT_MS, "6", "CREDIT acme op"));
    ck_assert_int_eq(harness_info_int(client, "entries"), 4);
}
END_TEST

/* ---- CLIENT KILL TYPE pubsub ---- */

START_TEST(test_client_kill_pubsub)
{
    start_all("");
    publish_fixture();
    redisContext *admin = harness_redis_connect(&h);
    ck_assert_ptr_nonnull(admin);
    redisReply *reply = redisCommand(admin, "CLIENT KILL TYPE pubsub");
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(reply->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(reply->integer, 1);
    freeReplyObject(reply);

    ck_assert(harness_wait_info(client, WAIT_MS, "redis_reconnects", 1));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    ck_assert(harness_wait_subscribed(&h, WAIT_MS));
    expect_health("connected", 0, 0);
    ck_assert_int_eq(harness_info_int(client, "entries"), 0);
    harness_expect_match(client, "(nil)", "GET acme credit op");
    harness_expect_match(client, "(nil)", "GET acme profile u1");
    ck_assert(harness_log_contains(&h, "resubscribed after a disconnect"));
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"op\",\"value\":7}");
    ck_assert(harness_wait_match(client, WAIT_MS, "7", "CREDIT acme op"));

    /* twice more, quickly: each is one reconnect */
    for (int i = 0; i < 2; i++) {
        reply = redisCommand(admin, "CLIENT KILL TYPE pubsub");
        ck_assert_ptr_nonnull(reply);
        ck_assert_int_eq(reply->integer, 1);
        freeReplyObject(reply);
        ck_assert(harness_wait_info(client, WAIT_MS, "redis_reconnects", 2 + i));
        ck_assert(harness_wait_subscribed(&h, WAIT_MS));
    }
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    harness_expect_match(client, "(nil)", "CREDIT acme op");
    redisFree(admin);
}
END_TEST

/* ---- Redis paused (SIGSTOP) past max_stale ---- */

/* A publisher of heartbeats on its own connection, in a thread: what an
 * authoritative service sends when it has nothing else to say. */
struct beater {
    const char *socket;
    const char *src;
    unsigned long long seq;
    int interval_ms;
    atomic_bool stop;
    atomic_int sent;
    atomic_llong last_sent_ms;  /* when the last accepted heartbeat was sent */
    pthread_t thread;
};

static void *beater_main(void *arg)
{
    struct beater *b = arg;
    struct timeval timeout = {.tv_sec = 0, .tv_usec = 300000};
    redisContext *c = NULL;
    char payload[256];
    snprintf(payload, sizeof(payload), "{\"op\":\"heartbeat\",\"src\":\"%s\",\"seq\":%llu}", b->src,
             b->seq);
    while (!atomic_load(&b->stop)) {
        if (c == NULL) {
            c = redisConnectUnixWithTimeout(b->socket, timeout);
            if (c != NULL && c->err == 0) {
                redisSetTimeout(c, timeout);
            } else {
                if (c != NULL)
                    redisFree(c);
                c = NULL;
            }
        }
        if (c != NULL) {
            long long sending_at = harness_now_ms();
            redisReply *r = redisCommand(c, "PUBLISH %s %s", CHANNEL, payload);
            if (r == NULL) {
                redisFree(c); /* timed out (paused) or lost: a new one next time */
                c = NULL;
            } else {
                if (r->type == REDIS_REPLY_INTEGER) {
                    atomic_store(&b->last_sent_ms, sending_at);
                    atomic_fetch_add(&b->sent, 1);
                }
                freeReplyObject(r);
            }
        }
        harness_sleep_ms(b->interval_ms);
    }
    if (c != NULL)
        redisFree(c);
    return NULL;
}

static void beater_start(struct beater *b, const char *src, unsigned long long seq)
{
    b->socket = h.redis_socket;
    b->src = src;
    b->seq = seq;
    b->interval_ms = 100;
    atomic_init(&b->stop, false);
    atomic_init(&b->sent, 0);
    atomic_init(&b->last_sent_ms, 0);
    ck_assert_int_eq(pthread_create(&b->thread, NULL, beater_main, b), 0);
}

static void beater_stop(struct beater *b)
{
    atomic_store(&b->stop, true);
    pthread_join(b->thread, NULL);
}

/* No heartbeats: the daemon's only view of Redis is its pub/sub connection. A
 * Redis that stops answering (SIGSTOP, a hung host) while the connection stays
 * open must still make critical data -STALE after max_stale (docs/reference.md §7: the
 * invalidation stream is down; nothing can be published meanwhile). */
START_TEST(test_paused_redis_stale)
{
    start_all("  max_stale: 1s\n");
    publish_fixture();
    expect_fixture_fresh();
    ck_assert_int_eq(harness_redis_pause(&h), 0);
    long long paused_at = harness_now_ms();
    /* max_stale, and as much again for the daemon to notice */
    bool stale = harness_wait_match(client, 2500, "-STALE *", "GET acme credit op");
    char state[32];
    long long stale_seconds;
    health(state, sizeof(state), &stale_seconds);
    ck_assert_msg(
        stale,
        "redis paused for %lld ms (max_stale 1s): GET acme credit op still served "
        "(expected -STALE ...); INFO redis_connected:%lld redis_disconnected_seconds:%lld "
        "stale_refused:%lld; HEALTH redis:%s stale_seconds:%lld",
        harness_now_ms() - paused_at, harness_info_int(client, "redis_connected"),
        harness_info_int(client, "redis_disconnected_seconds"),
        harness_info_int(client, "stale_refused"), state, stale_seconds);
    expect_fixture_stale();
    ck_assert_int_ge(harness_info_int(client, "redis_disconnected_seconds"), 1);
    expect_health("disconnected", 1, 10);

    ck_assert_int_eq(harness_redis_resume(&h), 0);
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    /* fresh again: kept (the outage was seen as silence) or dropped (it was
     * seen as a lost connection, and on_reconnect: flush ran) */
    long long deadline = harness_now_ms() + WAIT_MS;
    char got[256] = "";
    while (harness_now_ms() < deadline) {
        redisReply *reply = redisCommand(client, "GET acme credit op");
        harness_describe_reply(reply, got, sizeof(got));
        if (reply != NULL)
            freeReplyObject(reply);
        if (strcmp(got, "3") == 0 || strcmp(got, "(nil)") == 0)
            break;
        harness_sleep_ms(10);
    }
    ck_assert_msg(strcmp(got, "3") == 0 || strcmp(got, "(nil)") == 0,
                  "after the resume, GET acme credit op is '%s'", got);
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"op\",\"value\":8}");
    ck_assert(harness_wait_match(client, WAIT_MS, "8", "CREDIT acme op"));
}
END_TEST

/* The same outage with a heartbeat publisher and redis.heartbeat_timeout:
 * the publisher's silence marks the stream down (docs/reference.md §7). */
START_TEST(test_paused_redis_heartbeat)
{
    start_all("  max_stale: 1s\n  heartbeat_timeout: 500ms\n");
    publish_fixture();
    struct beater beater;
    beater_start(&beater, "authz-1", 1);
    /* heartbeats flowing: fresh however long it lasts */
    harness_sleep_ms(1600);
    ck_assert_int_ge(atomic_load(&beater.sent), 5);
    expect_fixture_fresh();
    expect_health("connected", 0, 0);
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 0);

    ck_assert_int_eq(harness_redis_pause(&h), 0);
    long long paused_at = harness_now_ms();
    ck_assert(harness_wait_match(client, 4000, "-STALE *", "GET acme credit op"));
    long long stale_at = harness_now_ms();
    /* heartbeat_timeout + max_stale after the last heartbeat the daemon
     * got, give or take the 100 ms housekeeping tick: never before that
     * heartbeat was sent (a loaded machine may have sent it well before the
     * pause), and not long after the pause. */
    long long since_beat = stale_at - atomic_load(&beater.last_sent_ms);
    long long took = stale_at - paused_at;
    ck_assert_msg(since_beat >= 1400, "-STALE %lld ms after the last heartbeat was sent",
                  since_beat);
    ck_assert_msg(took <= 2200, "-STALE after %lld ms of pause", took);
    expect_fixture_stale();
    ck_assert_int_ge(harness_info_int(client, "redis_disconnected_seconds"), 1);
    /* Both signals saw it: the publisher went silent, and the pub/sub
     * connection's liveness probe went unanswered. */
    expect_health("disconnected", 1, 10);
    ck_assert(harness_log_contains(&h, "a publisher has been silent for over 500ms"));
    ck_assert(harness_log_contains(&h, "liveness probe"));

    ck_assert_int_eq(harness_redis_resume(&h), 0);
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    /* Resubscribed: what was published meanwhile may be lost, so the
     * default on_reconnect: flush dropped everything; fresh data serves. */
    ck_assert_int_eq(harness_info_int(client, "redis_reconnects"), 1);
    ck_assert_int_eq(harness_info_int(client, "entries"), 0);
    publish_fixture();
    ck_assert(harness_wait_match(client, 3000, "3", "GET acme credit op"));
    expect_fixture_fresh();
    expect_health("connected", 0, 0);
    ck_assert_int_eq(harness_info_int(client, "redis_disconnected_seconds"), 0);
    beater_stop(&beater);
}
END_TEST

/* ---- Redis never up ---- */

START_TEST(test_redis_never_up)
{
    long long started = harness_now_ms();
    start_daemon("  max_stale: 1s\n");
    harness_expect_match(client, "+PONG", "PING");
    ck_assert_int_eq(harness_info_int(client, "redis_connected"), 0);
    ck_assert_int_eq(harness_info_int(client, "redis_reconnects"), 0);
    expect_health("disconnected", 0, 1);
    if (harness_now_ms() - started < 800) /* still within max_stale */
        harness_expect_match(client, "(nil)", "GET acme credit op");
    /* down since start: after max_stale, critical answers -STALE */
    ck_assert(harness_wait_match(client, 2000, "-STALE *", "GET acme credit op"));
    harness_expect_match(client, "-STALE *", "CREDIT acme op");
    harness_expect_match(client, "-STALE *", "CAN acme u1 crm.read");
    long long served = harness_info_int(client, "stale_served");
    harness_expect_match(client, "(nil)", "GET acme profile u1");
    ck_assert_int_eq(harness_info_int(client, "stale_served"), served + 1);
    ck_assert_int_ge(harness_info_int(client, "stale_refused"), 3);
    ck_assert_int_ge(harness_info_int(client, "redis_disconnected_seconds"), 1);
    expect_health("disconnected", 1, 10);
    harness_expect_match(client, "+PONG", "PING");

    ck_assert_int_eq(harness_redis_start(&h), 0);
    ck_assert(harness_wait_subscribed(&h, WAIT_MS));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    /* the first subscription is not a reconnect */
    ck_assert_int_eq(harness_info_int(client, "redis_reconnects"), 0);
    expect_health("connected", 0, 0);
    harness_expect_match(client, "(nil)", "GET acme credit op");
    publish_fixture();
    expect_fixture_fresh();
    ck_assert_int_eq(harness_info_int(client, "messages_applied"), 4);
}
END_TEST

/* ---- a subscriber slower than the publisher ---- */

START_TEST(test_slow_subscriber)
{
    const char *const args[] = {"--client-output-buffer-limit", "pubsub 64kb 32kb 1", NULL};
    ck_assert_int_eq(harness_redis_start_args(&h, args), 0);
    start_daemon("");
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"slow\",\"kind\":\"config\",\"key\":\"old\",\"value\":1}");
    ck_assert(harness_wait_match(client, WAIT_MS, "1", "GET slow config old"));

    enum { KEYS = 20, MESSAGES = 100, PAD = 10000 };
    int last[KEYS];
    memset(last, 0, sizeof(last));
    char *payload = malloc(PAD + 256);
    ck_assert_ptr_nonnull(payload);
    ck_assert_int_eq(harness_daemon_signal(&h, SIGSTOP), 0);
    /* ~1 MB while the daemon does not read: redis drops the subscription */
    for (int i = 0; i < MESSAGES; i++) {
        int key = i % KEYS;
        int version = i + 1;
        int n = snprintf(payload, PAD + 256,
                         "{\"op\":\"set\",\"tenant\":\"slow\",\"kind\":\"config\",\"key\":\"k%d\","
                         "\"version\":%d,\"value\":{\"v\":%d,\"pad\":\"",
                         key, version, version);
        memset(payload + n, 'x', PAD);
        snprintf(payload + n + PAD, 256, "\"}}");
        ck_assert_int_ge(harness_publish(&h, CHANNEL, payload), 0);
        last[key] = version;
    }
    ck_assert_int_eq(harness_daemon_signal(&h, SIGCONT), 0);
    ck_assert(harness_wait_info(client, 10000, "redis_reconnects", 1));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    ck_assert(harness_wait_subscribed(&h, WAIT_MS));

    /* Whatever arrived before the drop was applied, then dropped on the
     * resubscribe (flush): no value older than the last published remains. */
    harness_expect_match(client, "(nil)", "GET slow config old");
    for (int key = 0; key < KEYS; key++) {
        redisReply *reply = redisCommand(client, "GET slow config k%d", key);
        ck_assert_ptr_nonnull(reply);
        if (reply->type == REDIS_REPLY_STRING) {
            char prefix[64];
            snprintf(prefix, sizeof(prefix), "{\"v\":%d,", last[key]);
            ck_assert_msg(strncmp(reply->str, prefix, strlen(prefix)) == 0,
                          "k%d holds %.20s..., the last published is version %d", key, reply->str,
                          last[key]);
        } else {
            ck_assert_int_eq(reply->type, REDIS_REPLY_NIL);
        }
        freeReplyObject(reply);
    }
    FILE *log = fopen(h.redis_log, "r");
    ck_assert_ptr_nonnull(log);
    char line[1024];
    bool dropped = false;
    while (!dropped && fgets(line, sizeof(line), log) != NULL)
        dropped = strstr(line, "output buffer limits") != NULL;
    fclose(log);
    ck_assert_msg(dropped, "redis did not log an output buffer limit disconnection");
    ck_assert_int_eq(harness_info_int(client, "messages_invalid"), 0);

    /* the new subscription delivers, large messages included */
    int n = snprintf(payload, PAD + 256,
                     "{\"op\":\"set\",\"tenant\":\"slow\",\"kind\":\"config\",\"key\":\"k0\","
                     "\"version\":%d,\"value\":{\"v\":%d,\"pad\":\"",
                     MESSAGES + 1, MESSAGES + 1);
    memset(payload + n, 'y', PAD);
    snprintf(payload + n + PAD, 256, "\"}}");
    harness_publish_ok(&h, CHANNEL, payload);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "{\"v\":%d,*", MESSAGES + 1);
    ck_assert(harness_wait_match(client, WAIT_MS, prefix, "GET slow config k0"));
    free(payload);
}
END_TEST

/* ---- lost-message detection (src, seq, heartbeat) ---- */

static void set_seq(const char *src, unsigned long long seq, const char *key, int value)
{
    harness_publishf(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"%s\",\"value\":%d,"
        "\"src\":\"%s\",\"seq\":%llu}",
        key, value, src, seq);
}

static void heartbeat(const char *src, unsigned long long seq)
{
    harness_publishf(&h, CHANNEL, "{\"op\":\"heartbeat\",\"src\":\"%s\",\"seq\":%llu}", src, seq);
}

START_TEST(test_seq_gaps)
{
    start_all("");
    /* 1, 2, 3: in order */
    set_seq("p", 1, "a", 1);
    set_seq("p", 2, "b", 2);
    set_seq("p", 3, "c", 3);
    harness_sync_stream(&h, client, CHANNEL, "profile", "{\"m\":1}", WAIT_MS);
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 0);
    harness_expect_match(client, "1", "GET acme config a");
    harness_expect_match(client, "2", "GET acme config b");
    harness_expect_match(client, "3", "GET acme config c");

    /* another publisher: 1, 2, 5 */
    set_seq("q", 1, "q1", 1);
    set_seq("q", 2, "q2", 2);
    harness_sync_stream(&h, client, CHANNEL, "profile", "{\"m\":1}", WAIT_MS);
    ck_assert_int_eq(harness_info_int(client, "entries"), 7);
    set_seq("q", 5, "q5", 5);
    harness_sync_stream(&h, client, CHANNEL, "profile", "{\"m\":1}", WAIT_MS);
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 1);
    /* dropped before seq 5 was applied: everything older is gone, seq 5 stays */
    harness_expect_match(client, "(nil)", "GET acme config a");
    harness_expect_match(client, "(nil)", "GET acme config c");
    harness_expect_match(client, "(nil)", "GET acme config q1");
    harness_expect_match(client, "(nil)", "GET acme config q2");
    harness_expect_match(client, "5", "GET acme config q5");
    ck_assert_int_eq(harness_info_int(client, "entries"), 2); /* q5 and the last sync marker */
    ck_assert(harness_log_contains(&h, "publisher 'q' jumped from seq 2 to 5"));
    ck_assert(harness_log_contains(&h, "messages from publisher 'q' were lost"));
    ck_assert_int_eq(harness_info_int(client, "redis_reconnects"), 0);

    /* a restarted publisher starts at 1 again: not a gap */
    set_seq("q", 1, "r1", 1);
    set_seq("q", 2, "r2", 2);
    /* a repeated seq (a duplicate) is applied, not a gap */
    set_seq("q", 2, "r2", 22);
    set_seq("q", 3, "r3", 3);
    set_seq("q", 3, "r3", 33);
    harness_sync_stream(&h, client, CHANNEL, "profile", "{\"m\":1}", WAIT_MS);
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 1);
    harness_expect_match(client, "1", "GET acme config r1");
    harness_expect_match(client, "22", "GET acme config r2");
    harness_expect_match(client, "33", "GET acme config r3");
    harness_expect_match(client, "5", "GET acme config q5");

    /* a heartbeat with the last seq: nothing */
    heartbeat("q", 3);
    harness_sync_stream(&h, client, CHANNEL, "profile", "{\"m\":1}", WAIT_MS);
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 1);
    harness_expect_match(client, "33", "GET acme config r3");
    /* the other publisher goes on from 3 */
    set_seq("p", 4, "d", 4);
    harness_sync_stream(&h, client, CHANNEL, "profile", "{\"m\":1}", WAIT_MS);
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 1);
    harness_expect_match(client, "4", "GET acme config d");

    /* a heartbeat past the last seq: its last message (4) was lost */
    heartbeat("q", 4);
    harness_sync_stream(&h, client, CHANNEL, "profile", "{\"m\":1}", WAIT_MS);
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 2);
    harness_expect_match(client, "(nil)", "GET acme config r3");
    harness_expect_match(client, "(nil)", "GET acme config d");
    ck_assert(harness_log_contains(&h, "publisher 'q' jumped from seq 3 to 4 (heartbeat)"));
    /* and the count goes on from the heartbeat's seq */
    set_seq("q", 5, "s5", 5);
    harness_sync_stream(&h, client, CHANNEL, "profile", "{\"m\":1}", WAIT_MS);
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 2);
    harness_expect_match(client, "5", "GET acme config s5");

    /* a batch: consecutive seqs are fine; a jump inside one drops what came
     * before it, the rest of the batch applies */
    harness_publish_ok(
        &h, CHANNEL,
        "[{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"b5\",\"value\":5,\"src\":\"p\",\"seq\":5},"
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"b6\",\"value\":6,\"src\":\"p\",\"seq\":6}]");
    harness_sync_stream(&h, client, CHANNEL, "profile", "{\"m\":1}", WAIT_MS);
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 2);
    harness_expect_match(client, "5", "GET acme config b5");
    harness_expect_match(client, "6", "GET acme config b6");
    harness_publish_ok(
        &h, CHANNEL,
        "[{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"b7\",\"value\":7,\"src\":\"p\",\"seq\":7},"
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"b9\",\"value\":9,\"src\":\"p\",\"seq\":9},"
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"b10\",\"value\":10,\"src\":\"p\",\"seq\":10}]");
    harness_sync_stream(&h, client, CHANNEL, "profile", "{\"m\":1}", WAIT_MS);
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 3);
    harness_expect_match(client, "(nil)", "GET acme config b5");
    harness_expect_match(client, "(nil)", "GET acme config b7");
    harness_expect_match(client, "9", "GET acme config b9");
    harness_expect_match(client, "10", "GET acme config b10");

    /* messages without src/seq never count */
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"plain\",\"value\":1}");
    harness_sync_stream(&h, client, CHANNEL, "profile", "{\"m\":1}", WAIT_MS);
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 3);
    /* a heartbeat from a publisher never seen: a baseline, not a gap */
    heartbeat("new", 40);
    set_seq("new", 41, "n41", 41);
    harness_sync_stream(&h, client, CHANNEL, "profile", "{\"m\":1}", WAIT_MS);
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 3);
    harness_expect_match(client, "41", "GET acme config n41");
    harness_expect_match(client, "1", "GET acme config plain");
    ck_assert_int_eq(harness_info_int(client, "messages_invalid"), 0);

    /* a numbered message that is rejected was not applied: the next one
     * finds its seq missing, which is a gap (the safe reading) */
    harness_publish_ok(&h, CHANNEL,
                       "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"x\","
                       "\"value\":\"not a number\",\"src\":\"new\",\"seq\":42}");
    set_seq("new", 43, "n43", 43);
    harness_sync_stream(&h, client, CHANNEL, "profile", "{\"m\":1}", WAIT_MS);
    ck_assert_int_eq(harness_info_int(client, "messages_invalid"), 1);
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 4);
    harness_expect_match(client, "(nil)", "GET acme config n41");
    harness_expect_match(client, "43", "GET acme config n43");
}
END_TEST

START_TEST(test_seq_gap_keep)
{
    start_all("  on_reconnect: keep\n");
    set_seq("p", 1, "a", 1);
    set_seq("p", 2, "b", 2);
    set_seq("p", 4, "d", 4);
    harness_sync_stream(&h, client, CHANNEL, "profile", "{\"m\":1}", WAIT_MS);
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 1);
    /* keep: counted and logged, nothing dropped */
    harness_expect_match(client, "1", "GET acme config a");
    harness_expect_match(client, "2", "GET acme config b");
    harness_expect_match(client, "4", "GET acme config d");
    ck_assert(harness_log_contains(&h, "publisher 'p' jumped from seq 2 to 4"));
    heartbeat("p", 6);
    harness_sync_stream(&h, client, CHANNEL, "profile", "{\"m\":1}", WAIT_MS);
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 2);
    harness_expect_match(client, "1", "GET acme config a");
}
END_TEST

/* After a resubscribe every publisher is new: its next seq is a baseline. */
START_TEST(test_seq_after_reconnect)
{
    start_all("");
    set_seq("p", 1, "a", 1);
    set_seq("p", 2, "b", 2);
    harness_sync_stream(&h, client, CHANNEL, "profile", "{\"m\":1}", WAIT_MS);
    redisContext *admin = harness_redis_connect(&h);
    ck_assert_ptr_nonnull(admin);
    redisReply *reply = redisCommand(admin, "CLIENT KILL TYPE pubsub");
    ck_assert_ptr_nonnull(reply);
    freeReplyObject(reply);
    redisFree(admin);
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_reconnects", 1));
    ck_assert(harness_wait_subscribed(&h, WAIT_MS));
    set_seq("p", 9, "i", 9);
    harness_sync_stream(&h, client, CHANNEL, "profile", "{\"m\":1}", WAIT_MS);
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 0);
    harness_expect_match(client, "9", "GET acme config i");
    set_seq("p", 11, "k", 11);
    harness_sync_stream(&h, client, CHANNEL, "profile", "{\"m\":1}", WAIT_MS);
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 1);
}
END_TEST

START_TEST(test_heartbeat_timeout)
{
    start_all("  max_stale: 500ms\n  heartbeat_timeout: 500ms\n");
    publish_fixture();
    /* no publisher numbers its messages yet: silence is no signal */
    harness_sleep_ms(1300);
    expect_fixture_fresh();
    expect_health("connected", 0, 0);

    /* a known src, then silence */
    set_seq("authz", 1, "cfg", 1);
    ck_assert(harness_wait_match(client, WAIT_MS, "1", "GET acme config cfg"));
    long long last = harness_now_ms();
    expect_fixture_fresh();
    ck_assert(harness_wait_match(client, 3000, "-STALE *", "GET acme credit op"));
    long long took = harness_now_ms() - last;
    ck_assert_msg(took >= 900 && took <= 1600, "-STALE %lld ms after the last message", took);
    expect_fixture_stale();
    harness_expect_match(client, "-STALE *", "GET acme config cfg");
    expect_health("connected", 0, 10);
    ck_assert(harness_log_contains(&h, "a publisher has been silent for over 500ms"));

    /* a heartbeat (seq == last): fresh again, nothing dropped */
    heartbeat("authz", 1);
    ck_assert(harness_wait_match(client, 2000, "3", "GET acme credit op"));
    expect_fixture_fresh();
    harness_expect_match(client, "1", "GET acme config cfg");
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 0);

    /* silent again, then a data message: fresh again */
    ck_assert(harness_wait_match(client, 3000, "-STALE *", "CREDIT acme op"));
    set_seq("authz", 2, "cfg", 2);
    ck_assert(harness_wait_match(client, 2000, "2", "GET acme config cfg"));
    expect_fixture_fresh();
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 0);
    ck_assert_int_eq(harness_info_int(client, "redis_reconnects"), 0);
    ck_assert_int_eq(harness_info_int(client, "redis_connected"), 1);
}
END_TEST

START_TEST(test_heartbeat_last_retires_src)
{
    /* A publisher that shuts down for good says so: its silence afterwards
     * never makes critical data stale. */
    start_all("  max_stale: 300ms\n  heartbeat_timeout: 300ms\n");
    publish_fixture();
    set_seq("retiring", 1, "cfg", 1);
    ck_assert(harness_wait_match(client, WAIT_MS, "1", "GET acme config cfg"));
    harness_publishf(&h, CHANNEL,
                     "{\"op\":\"heartbeat\",\"src\":\"retiring\",\"seq\":1,\"last\":true}");
    harness_sync_stream(&h, client, CHANNEL, "profile", "{\"m\":1}", WAIT_MS);
    /* Well past heartbeat_timeout + max_stale (and short of 10 times the
     * timeout, when a silent src is forgotten anyway). */
    harness_sleep_ms(1500);
    expect_fixture_fresh();
    harness_expect_match(client, "1", "GET acme config cfg");
    ck_assert(harness_log_contains(&h, "publisher 'retiring' retired at seq 1"));
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 0);
    /* It may come back: numbered again from wherever it starts. */
    set_seq("retiring", 1, "cfg", 2);
    ck_assert(harness_wait_match(client, WAIT_MS, "2", "GET acme config cfg"));
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 0);
    /* A "last" that is not a boolean is an invalid message. */
    long long invalid = harness_info_int(client, "messages_invalid");
    harness_publishf(&h, CHANNEL,
                     "{\"op\":\"heartbeat\",\"src\":\"retiring\",\"seq\":1,\"last\":1}");
    harness_sync_stream(&h, client, CHANNEL, "profile", "{\"m\":1}", WAIT_MS);
    ck_assert_int_eq(harness_info_int(client, "messages_invalid"), invalid + 1);
}
END_TEST

START_TEST(test_silent_src_forgotten)
{
    /* A src that stops without a "last" heartbeat makes critical data stale
     * after heartbeat_timeout + max_stale, and is forgotten after ten times
     * heartbeat_timeout: critical data answers again, nothing was dropped. */
    start_all("  max_stale: 200ms\n  heartbeat_timeout: 200ms\n");
    publish_fixture();
    set_seq("gone", 1, "cfg", 1);
    ck_assert(harness_wait_match(client, WAIT_MS, "1", "GET acme config cfg"));
    ck_assert(harness_wait_match(client, 3000, "-STALE *", "GET acme credit op"));
    expect_fixture_stale();
    ck_assert(harness_wait_match(client, 5000, "3", "GET acme credit op"));
    expect_fixture_fresh();
    harness_expect_match(client, "1", "GET acme config cfg");
    ck_assert(harness_log_contains(&h, "publisher 'gone' silent for over 2000ms: forgotten"));
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 0);
    ck_assert_int_eq(harness_info_int(client, "redis_reconnects"), 0);
}
END_TEST

/* ---- a fill in flight across a flush ---- */

/* A small HTTP origin: a thread accepting connections, a thread per
 * request. Paths under /v1/tenants/acme/config/ get 200 with `body`, held
 * until the test releases them while `hold` is on; any other path is 404 at
 * once (the test's sync markers miss, and are filled, too). */
static struct {
    int listener;
    int port;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    bool hold;
    unsigned releases; /* bumped by each release */
    bool stop;
    int requests;      /* to /v1/tenants/acme/config/ */
    int busy;          /* request threads running */
    char body[64];
} slow_origin;

static void *slow_origin_request(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char request[4096];
    size_t got = 0;
    request[0] = '\0';
    while (got < sizeof(request) - 1 && strstr(request, "\r\n\r\n") == NULL) {
        ssize_t n = read(fd, request + got, sizeof(request) - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        request[got] = '\0';
    }
    bool ours = strncmp(request, "GET /v1/tenants/acme/config/", 28) == 0;
    char reply[256];
    int len;
    pthread_mutex_lock(&slow_origin.lock);
    if (ours) {
        slow_origin.requests++;
        pthread_cond_broadcast(&slow_origin.changed);
        unsigned releases = slow_origin.releases;
        while (slow_origin.hold && slow_origin.releases == releases && !slow_origin.stop)
            pthread_cond_wait(&slow_origin.changed, &slow_origin.lock);
        len = snprintf(reply, sizeof(reply),
                       "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                       "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                       strlen(slow_origin.body), slow_origin.body);
    } else {
        len = snprintf(reply, sizeof(reply),
                       "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
    pthread_mutex_unlock(&slow_origin.lock);
    ssize_t ignored = write(fd, reply, (size_t)len);
    (void)ignored;
    close(fd);
    pthread_mutex_lock(&slow_origin.lock);
    slow_origin.busy--;
    pthread_cond_broadcast(&slow_origin.changed);
    pthread_mutex_unlock(&slow_origin.lock);
    return NULL;
}

static void *slow_origin_main(void *arg)
{
    (void)arg;
    for (;;) {
        pthread_mutex_lock(&slow_origin.lock);
        bool stop = slow_origin.stop;
        pthread_mutex_unlock(&slow_origin.lock);
        if (stop)
            break;
        struct pollfd poller = {.fd = slow_origin.listener, .events = POLLIN};
        if (poll(&poller, 1, 50) <= 0)
            continue;
        int fd = accept4(slow_origin.listener, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        pthread_mutex_lock(&slow_origin.lock);
        slow_origin.busy++;
        pthread_mutex_unlock(&slow_origin.lock);
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&thread, &attr, slow_origin_request, (void *)(intptr_t)fd) != 0) {
            close(fd);
            pthread_mutex_lock(&slow_origin.lock);
            slow_origin.busy--;
            pthread_mutex_unlock(&slow_origin.lock);
        }
        pthread_attr_destroy(&attr);
    }
    return NULL;
}

static void slow_origin_start(void)
{
    pthread_mutex_init(&slow_origin.lock, NULL);
    pthread_cond_init(&slow_origin.changed, NULL);
    slow_origin.listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(slow_origin.listener, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(slow_origin.listener, (struct sockaddr *)&address, sizeof(address)), 0);
    socklen_t length = sizeof(address);
    ck_assert_int_eq(getsockname(slow_origin.listener, (struct sockaddr *)&address, &length), 0);
    slow_origin.port = ntohs(address.sin_port);
    ck_assert_int_eq(listen(slow_origin.listener, 16), 0);
    ck_assert_int_eq(pthread_create(&slow_origin.thread, NULL, slow_origin_main, NULL), 0);
}

static void slow_origin_stop(void)
{
    pthread_mutex_lock(&slow_origin.lock);
    slow_origin.stop = true;
    pthread_cond_broadcast(&slow_origin.changed);
    while (slow_origin.busy > 0)
        pthread_cond_wait(&slow_origin.changed, &slow_origin.lock);
    pthread_mutex_unlock(&slow_origin.lock);
    pthread_join(slow_origin.thread, NULL);
    close(slow_origin.listener);
}

static void slow_origin_set(bool hold, const char *body)
{
    pthread_mutex_lock(&slow_origin.lock);
    slow_origin.hold = hold;
    snprintf(slow_origin.body, sizeof(slow_origin.body), "%s", body);
    pthread_mutex_unlock(&slow_origin.lock);
}

static bool slow_origin_wait_requests(int count)
{
    long long deadline = harness_now_ms() + WAIT_MS;
    pthread_mutex_lock(&slow_origin.lock);
    while (slow_origin.requests < count && harness_now_ms() < deadline) {
        pthread_mutex_unlock(&slow_origin.lock);
        harness_sleep_ms(5);
        pthread_mutex_lock(&slow_origin.lock);
    }
    bool ok = slow_origin.requests >= count;
    pthread_mutex_unlock(&slow_origin.lock);
    return ok;
}

static void slow_origin_release(void)
{
    pthread_mutex_lock(&slow_origin.lock);
    slow_origin.releases++;
    pthread_cond_broadcast(&slow_origin.changed);
    pthread_mutex_unlock(&slow_origin.lock);
}

/* A miss is being filled from the origin (value 1, as the origin had it
 * then) when the on_reconnect flush runs: a gap first, a resubscribe then.
 * The fill's answer goes to its waiter, but the flush means "anything read
 * before now may be stale": it must not be cached (docs/reference.md §5, §7). */
START_TEST(test_flush_discards_fill_in_flight)
{
    slow_origin_start();
    char extra[512];
    snprintf(extra, sizeof(extra), "  max_stale: 30s\n");
    ck_assert_int_eq(harness_redis_start(&h), 0);
    char config[8192];
    int n = snprintf(config, sizeof(config), "%s"
             "origin:\n"
             "  url: \"http://127.0.0.1:%d/v1/tenants/{tenant}/{kind}/{key}\"\n"
             "  timeout: 3s\n",
             config_text(extra), slow_origin.port);
    ck_assert(n > 0 && (size_t)n < sizeof(config));
    ck_assert_int_eq(harness_daemon_start(&h, config), 0);
    client = harness_connect(&h);
    ck_assert_ptr_nonnull(client);
    ck_assert(harness_wait_subscribed(&h, WAIT_MS));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    redisContext *waiter = harness_connect(&h);
    ck_assert_ptr_nonnull(waiter);

    const char *const flushes[] = {"gap", "resubscribe"};
    for (int round = 0; round < 2; round++) {
        slow_origin_set(true, "1");
        ck_assert_int_eq(redisAppendCommand(waiter, "GET acme config k%d", round), REDIS_OK);
        int pending = 1;
        ck_assert_int_eq(redisBufferWrite(waiter, &pending), REDIS_OK);
        ck_assert(slow_origin_wait_requests(2 * round + 1));
        if (round == 0) {
            set_seq("p", 1, "a", 1);
            set_seq("p", 3, "c", 3); /* seq 2 was lost */
            harness_sync_stream(&h, client, CHANNEL, "profile", "{\"m\":1}", WAIT_MS);
            ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 1);
        } else {
            redisContext *admin = harness_redis_connect(&h);
            ck_assert_ptr_nonnull(admin);
            redisReply *kill = redisCommand(admin, "CLIENT KILL TYPE pubsub");
            ck_assert_ptr_nonnull(kill);
            freeReplyObject(kill);
            redisFree(admin);
            ck_assert(harness_wait_info(client, WAIT_MS, "redis_reconnects", 1));
            ck_assert(harness_wait_subscribed(&h, WAIT_MS));
        }
        long long discarded = harness_info_int(client, "fills_discarded");
        /* the origin answers what it read before the flush */
        slow_origin_release();
        redisReply *reply = NULL;
        ck_assert_int_eq(redisGetReply(waiter, (void **)&reply), REDIS_OK);
        char answered[256];
        harness_describe_reply(reply, answered, sizeof(answered));
        if (strcmp(answered, "1") != 0)
            harness_dump_log(&h);
        ck_assert_msg(strcmp(answered, "1") == 0, "the waiter got '%s'", answered);
        freeReplyObject(reply);
        /* the next query must not get it from the cache: the origin is asked
         * again and has the current value */
        slow_origin_set(false, "2");
        char got[64];
        reply = redisCommand(client, "GET acme config k%d", round);
        harness_describe_reply(reply, got, sizeof(got));
        if (reply != NULL)
            freeReplyObject(reply);
        ck_assert_msg(strcmp(got, "2") == 0,
                      "after a %s flush, a fill begun before it was cached: GET acme config k%d "
                      "is '%s' (the origin now has 2); fills_discarded %lld -> %lld",
                      flushes[round], round, got, discarded,
                      harness_info_int(client, "fills_discarded"));
        ck_assert_int_eq(harness_info_int(client, "fills_discarded"), discarded + 1);
    }
    redisFree(waiter);
    slow_origin_stop();
}
END_TEST

/* ---- convergence under faults ---- */

#define CONV_KEYS 2000
#define CONV_TENANT "conv"
#define CONV_STREAM "tenantcached:log"

/* The publisher thread's state. Written by the thread only until it is
 * joined; the test reads it after. */
struct converger {
    const char *socket;
    bool stream;                 /* publish through FCALL tenantcached_publish */
    atomic_bool stop;
    atomic_long published;
    atomic_long retries;
    atomic_uint distinct;        /* keys published at least once */
    bool failed;
    char failure[256];
    unsigned long long seq;
    uint64_t rng;
    unsigned version[CONV_KEYS]; /* last published version; 0: never */
    bool deleted[CONV_KEYS];     /* the last published op was a del */
    bool counted[CONV_KEYS];     /* in distinct (the publisher's own) */
};

static uint64_t conv_random(struct converger *c)
{
    uint64_t x = c->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    c->rng = x;
    return x;
}

static const char *conv_kind(unsigned key)
{
    return key % 2 == 0 ? "config" : "profile"; /* a critical and a reference kind */
}

/* Appends one operation on key at its next version to buf. */
static size_t conv_operation(struct converger *c, char *buf, size_t size, unsigned key, bool del,
                             unsigned *version)
{
    *version = c->version[key] + 1;
    c->seq++;
    if (del)
        return (size_t)snprintf(buf, size,
                                "{\"op\":\"del\",\"tenant\":\"" CONV_TENANT "\",\"kind\":\"%s\","
                                "\"key\":\"k%04u\",\"version\":%u,\"src\":\"conv\",\"seq\":%llu}",
                                conv_kind(key), key, *version, c->seq);
    return (size_t)snprintf(buf, size,
                            "{\"op\":\"set\",\"tenant\":\"" CONV_TENANT "\",\"kind\":\"%s\","
                            "\"key\":\"k%04u\",\"version\":%u,\"value\":{\"v\":%u,\"k\":%u},"
                            "\"src\":\"conv\",\"seq\":%llu}",
                            conv_kind(key), key, *version, *version, key, c->seq);
}

/* PUBLISH until redis confirms it (a retry after a lost reply may deliver
 * twice: the same version is then ignored as stale). */
static bool conv_publish(struct converger *c, redisContext **ctx, const char *payload)
{
    struct timeval timeout = {.tv_sec = 3, .tv_usec = 0};
    long long deadline = harness_now_ms() + 15000;
    while (harness_now_ms() < deadline) {
        if (*ctx == NULL) {
            *ctx = redisConnectUnixWithTimeout(c->socket, timeout);
            if (*ctx == NULL || (*ctx)->err) {
                if (*ctx != NULL)
                    redisFree(*ctx);
                *ctx = NULL;
                atomic_fetch_add(&c->retries, 1);
                harness_sleep_ms(10);
                continue;
            }
            redisSetTimeout(*ctx, timeout);
        }
        redisReply *r = c->stream ? redisCommand(*ctx, "FCALL tenantcached_publish 1 %s %s %s",
                                                 CONV_STREAM, CHANNEL, payload)
                                  : redisCommand(*ctx, "PUBLISH %s %s", CHANNEL, payload);
        if (r == NULL) {
            redisFree(*ctx);
            *ctx = NULL;
            atomic_fetch_add(&c->retries, 1);
            continue;
        }
        bool ok = r->type == (c->stream ? REDIS_REPLY_STRING : REDIS_REPLY_INTEGER);
        freeReplyObject(r);
        if (ok)
            return true;
    }
    snprintf(c->failure, sizeof(c->failure), "PUBLISH not confirmed within 15 s");
    return false;
}

static void *converger_main(void *arg)
{
    struct converger *c = arg;
    redisContext *ctx = NULL;
    char payload[8 * 256];
    while (!atomic_load(&c->stop) && !c->failed) {
        /* one operation, or a batch of 2..8 (a fifth of the time) */
        unsigned count = conv_random(c) % 5 == 0 ? 2 + (unsigned)(conv_random(c) % 7) : 1;
        unsigned keys[8], versions[8];
        bool dels[8];
        size_t len = 0;
        if (count > 1)
            payload[len++] = '[';
        for (unsigned i = 0; i < count; i++) {
            keys[i] = (unsigned)(conv_random(c) % CONV_KEYS);
            dels[i] = conv_random(c) % 7 == 0;
            if (i > 0)
                payload[len++] = ',';
            len += conv_operation(c, payload + len, sizeof(payload) - len, keys[i], dels[i],
                                  &versions[i]);
            /* a key twice in one batch: later operations build on earlier ones */
            c->version[keys[i]] = versions[i];
            c->deleted[keys[i]] = dels[i];
        }
        if (count > 1)
            payload[len++] = ']';
        payload[len] = '\0';
        if (!conv_publish(c, &ctx, payload)) {
            c->failed = true;
            break;
        }
        atomic_fetch_add(&c->published, 1);
        for (unsigned i = 0; i < count; i++) {
            if (!c->counted[keys[i]]) {
                c->counted[keys[i]] = true;
                atomic_fetch_add(&c->distinct, 1);
            }
        }
        usleep(50);
    }
    if (ctx != NULL)
        redisFree(ctx);
    return NULL;
}

/* Waits until the daemon resubscribed after a fault injected when it had
 * counted `before` reconnects. A pause may add one of its own (the liveness
 * probe notices it), so this waits for "more than before", not an exact count. */
static void wait_resubscribed(long long before)
{
    long long deadline = harness_now_ms() + WAIT_MS;
    while (harness_info_int(client, "redis_reconnects") <= before && harness_now_ms() < deadline)
        harness_sleep_ms(20);
    ck_assert_int_gt(harness_info_int(client, "redis_reconnects"), before);
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
}

/* Checks every key of one kind (keys of parity `parity`) against the last
 * published state. Returns the number of keys present; counts mismatches. */
static unsigned conv_check(const struct converger *c, unsigned parity, unsigned *wrong)
{
    unsigned present = 0;
    for (unsigned first = parity; first < CONV_KEYS; first += 2 * 500) {
        const char *argv[3 + 500];
        size_t lens[3 + 500];
        char names[500][8];
        int argc = 3;
        argv[0] = "MGET";
        argv[1] = CONV_TENANT;
        argv[2] = conv_kind(parity);
        for (int i = 0; i < 3; i++)
            lens[i] = strlen(argv[i]);
        unsigned keys[500];
        unsigned n = 0;
        for (unsigned key = first; key < CONV_KEYS && n < 500; key += 2, n++) {
            keys[n] = key;
            snprintf(names[n], sizeof(names[n]), "k%04u", key);
            argv[argc] = names[n];
            lens[argc++] = strlen(names[n]);
        }
        redisReply *reply = redisCommandArgv(client, argc, argv, lens);
        ck_assert_ptr_nonnull(reply);
        ck_assert_msg(reply->type == REDIS_REPLY_ARRAY, "MGET %s: reply type %d %s",
                      conv_kind(parity), reply->type, reply->str ? reply->str : "");
        ck_assert_uint_eq(reply->elements, n);
        for (unsigned i = 0; i < n; i++) {
            unsigned key = keys[i];
            const redisReply *item = reply->element[i];
            if (item->type == REDIS_REPLY_NIL)
                continue;
            present++;
            char expected[64];
            snprintf(expected, sizeof(expected), "{\"v\":%u,\"k\":%u}", c->version[key], key);
            bool ok = item->type == REDIS_REPLY_STRING && !c->deleted[key] &&
                      strcmp(item->str, expected) == 0;
            if (!ok && ++*wrong <= 10)
                fprintf(stderr,
                        "convergence: %s k%04u is %s, the last published is %s (version %u)\n",
                        conv_kind(parity), key, item->str ? item->str : "(non-string)",
                        c->deleted[key] ? "a del" : expected, c->version[key]);
        }
        freeReplyObject(reply);
    }
    return present;
}

/* stream: publishers go through redis.stream, Redis keeps it in an AOF, and
 * the daemon catches up after every fault instead of flushing. */
static void convergence(bool stream)
{
    static const char *const aof[] = {"--appendonly", "yes", "--appendfsync", "always", NULL};
    const char *const *redis_args = stream ? aof : NULL;
    /* reconnects slow enough that each fault loses a few hundred messages */
    ck_assert_int_eq(harness_redis_start_args(&h, redis_args), 0);
    if (stream) {
        redisContext *admin = harness_redis_connect(&h);
        ck_assert_ptr_nonnull(admin);
        harness_redis_load_library(admin);
        redisFree(admin);
    }
    const char *extra = stream ? "  stream: \"" CONV_STREAM "\"\n" : "";
    ck_assert_int_eq(harness_daemon_start(&h, config_text_reconnect(extra, 250, 400)), 0);
    client = harness_connect(&h);
    ck_assert_ptr_nonnull(client);
    ck_assert(harness_wait_subscribed(&h, WAIT_MS));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    struct converger *c = calloc(1, sizeof(*c));
    ck_assert_ptr_nonnull(c);
    c->socket = h.redis_socket;
    c->stream = stream;
    c->rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)harness_now_ms();
    atomic_init(&c->stop, false);
    atomic_init(&c->published, 0);
    atomic_init(&c->retries, 0);
    atomic_init(&c->distinct, 0);
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, converger_main, c), 0);

    /* The check at the end means something only if most keys were
     * published: wait for that before the faults, however slow the host. */
    long long deadline = harness_now_ms() + 20 * WAIT_MS;
    while (atomic_load(&c->distinct) < CONV_KEYS * 9 / 10 && harness_now_ms() < deadline)
        harness_sleep_ms(20);
    harness_sleep_ms(200);
    for (int round = 0; round < 2; round++) {
        /* SIGSTOP / SIGCONT: nothing is lost, publishers wait */
        ck_assert_int_eq(harness_redis_pause(&h), 0);
        harness_sleep_ms(500);
        ck_assert_int_eq(harness_redis_resume(&h), 0);
        harness_sleep_ms(600);
        ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
        /* kill -9 and restart */
        long long before = harness_info_int(client, "redis_reconnects");
        ck_assert_int_eq(harness_redis_stop(&h, SIGKILL), 0);
        harness_sleep_ms(150);
        ck_assert_int_eq(harness_redis_start_args(&h, redis_args), 0);
        wait_resubscribed(before);
        harness_sleep_ms(600);
        /* CLIENT KILL TYPE pubsub */
        before = harness_info_int(client, "redis_reconnects");
        redisContext *admin = harness_redis_connect(&h);
        ck_assert_ptr_nonnull(admin);
        redisReply *reply = redisCommand(admin, "CLIENT KILL TYPE pubsub");
        ck_assert_ptr_nonnull(reply);
        ck_assert_int_eq(reply->integer, 1);
        freeReplyObject(reply);
        redisFree(admin);
        wait_resubscribed(before);
        /* the last fault loses messages: stop soon after it, so that what
         * was lost is not all overwritten by later versions */
        harness_sleep_ms(round == 0 ? 600 : 300);
    }
    atomic_store(&c->stop, true);
    pthread_join(thread, NULL);
    ck_assert_msg(!c->failed, "publisher: %s", c->failure);

    /* the last fault is over: subscribed, then a quiet second */
    ck_assert(harness_wait_subscribed(&h, WAIT_MS));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    harness_sleep_ms(1000);

    unsigned wrong = 0;
    unsigned present = conv_check(c, 0, &wrong) + conv_check(c, 1, &wrong);
    unsigned published_keys = 0;
    for (unsigned key = 0; key < CONV_KEYS; key++)
        published_keys += c->version[key] > 0;
    fprintf(stderr,
            "convergence: %ld publishes (%ld retries), %u keys published, %u present, "
            "%lld reconnects, %lld applied, %lld stale, %lld gaps\n",
            atomic_load(&c->published), atomic_load(&c->retries), published_keys, present,
            harness_info_int(client, "redis_reconnects"),
            harness_info_int(client, "messages_applied"),
            harness_info_int(client, "messages_stale"), harness_info_int(client, "seq_gaps"));
    ck_assert_msg(wrong == 0, "%u keys hold a value other than the last published", wrong);
    /* the check means something only if much survived the last flush */
    ck_assert_uint_ge(published_keys, CONV_KEYS * 9 / 10);
    ck_assert_uint_ge(present, 200);
    /* two kills and two CLIENT KILLs, plus any pause the probe noticed */
    ck_assert_int_ge(harness_info_int(client, "redis_reconnects"), 4);
    ck_assert_int_eq(harness_info_int(client, "messages_invalid"), 0);
    /* every loss was a whole subscription, handled by the resubscribe */
    ck_assert_int_eq(harness_info_int(client, "seq_gaps"), 0);
    if (stream) {
        /* nothing lost, nothing flushed: every key whose last op was a set
         * holds its last value */
        unsigned live_keys = 0;
        for (unsigned key = 0; key < CONV_KEYS; key++)
            live_keys += c->version[key] > 0 && !c->deleted[key];
        ck_assert_uint_eq(present, live_keys);
        ck_assert_int_eq(harness_info_int(client, "catchup_failed"), 0);
        ck_assert_int_gt(harness_info_int(client, "catchup_applied"), 0);
        ck_assert(!harness_log_contains(&h, "dropped all"));
    }
    free(c);
}

START_TEST(test_convergence)
{
    convergence(false);
}
END_TEST

START_TEST(test_convergence_stream)
{
    convergence(true);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("faults");
    TCase *restart = tcase_create("restart");
    tcase_add_checked_fixture(restart, setup, teardown);
    tcase_set_timeout(restart, 60);
    tcase_add_test(restart, test_kill_restart_flush);
    tcase_add_test(restart, test_kill_restart_keep);
    tcase_add_test(restart, test_client_kill_pubsub);
    tcase_add_test(restart, test_redis_never_up);
    tcase_add_test(restart, test_slow_subscriber);
    suite_add_tcase(suite, restart);

    TCase *stale = tcase_create("stale");
    tcase_add_checked_fixture(stale, setup, teardown);
    tcase_set_timeout(stale, 60);
    tcase_add_test(stale, test_paused_redis_stale);
    tcase_add_test(stale, test_paused_redis_heartbeat);
    tcase_add_test(stale, test_heartbeat_timeout);
    tcase_add_test(stale, test_heartbeat_last_retires_src);
    tcase_add_test(stale, test_silent_src_forgotten);
    suite_add_tcase(suite, stale);

    TCase *gaps = tcase_create("gaps");
    tcase_add_checked_fixture(gaps, setup, teardown);
    tcase_set_timeout(gaps, 60);
    tcase_add_test(gaps, test_seq_gaps);
    tcase_add_test(gaps, test_seq_gap_keep);
    tcase_add_test(gaps, test_seq_after_reconnect);
    tcase_add_test(gaps, test_flush_discards_fill_in_flight);
    suite_add_tcase(suite, gaps);

    TCase *convergence = tcase_create("convergence");
    tcase_add_checked_fixture(convergence, setup, teardown);
    tcase_set_timeout(convergence, 60);
    tcase_add_test(convergence, test_convergence);
    tcase_add_test(convergence, test_convergence_stream);
    suite_add_tcase(suite, convergence);

    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
