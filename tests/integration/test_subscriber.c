/* test_subscriber.c - the pub/sub subscriber against a real redis-server.
 *
 * The subscriber runs in-process on its own event_base; the tests pump the
 * loop in short slices and act on redis (publish, kill, restart, pause) from a
 * synchronous hiredis connection in between. Timing bounds are generous: the
 * suite also runs under valgrind. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "config.h"
#include "harness.h"
#include "log.h"
#include "freshness.h"
#include "subscriber.h"
#include "util.h"

#define CHANNEL "tenantcached:invalidate"
#define MAX_ATTEMPTS 256

static struct {
    struct harness h;
    struct event_base *base;
    struct config config;
    struct subscriber *sub;
    struct subscriber_callbacks callbacks;

    /* what the callbacks saw */
    int messages;
    char channel[128];
    char payload[16384];
    size_t payload_len;
    int subscribed;
    int subscribed_first;
    bool last_first;
    int disconnected;
    char reason[256];

    /* a fake server that accepts and at once closes every connection */
    int fake_fd;
    struct event *fake_event;
    long long attempt_ms[MAX_ATTEMPTS];
    int attempts;
} t;

/* --- callbacks ---------------------------------------------------------- */

static void on_message(void *arg, const char *channel, const char *payload, size_t len)
{
    ck_assert_ptr_eq(arg, &t);
    t.messages++;
    snprintf(t.channel, sizeof(t.channel), "%s", channel);
    t.payload_len = len < sizeof(t.payload) ? len : sizeof(t.payload);
    memcpy(t.payload, payload, t.payload_len);
}

static void on_subscribed(void *arg, bool first)
{
    ck_assert_ptr_eq(arg, &t);
    t.subscribed++;
    if (first)
        t.subscribed_first++;
    t.last_first = first;
    /* what the daemon does with it (main.c, without redis.stream) */
    freshness_current();
    ck_assert_uint_eq(freshness_down_since(), 0);
}

static void on_disconnected(void *arg, const char *reason)
{
    ck_assert_ptr_eq(arg, &t);
    t.disconnected++;
    snprintf(t.reason, sizeof(t.reason), "%s", reason);
    freshness_lost(util_monotonic_ms());
}

/* How many times the subscription came back after the first time. */
static int reconnects(void)
{
    return t.subscribed - t.subscribed_first;
}

/* --- config ------------------------------------------------------------- */

static void strings_add(struct config_strings *s, const char *value)
{
    s->items = xrealloc(s->items, (s->count + 1) * sizeof(char *));
    s->items[s->count++] = xstrdup(value);
}

static void strings_clear(struct config_strings *s)
{
    for (size_t i = 0; i < s->count; i++)
        free(s->items[i]);
    free(s->items);
    s->items = NULL;
    s->count = 0;
}

static void set_string(char **field, const char *value)
{
    free(*field);
    *field = xstrdup(value);
}

/* Only the redis section matters to the subscriber: built by hand so that
 * this test does not depend on the YAML loader. */
static void config_setup(void)
{
    memset(&t.config, 0, sizeof(t.config));
    struct config *c = &t.config;
    set_string(&c->redis.host, "127.0.0.1");
    c->redis.port = 6379;
    set_string(&c->redis.unix_path, t.h.redis_socket);
    set_string(&c->redis.username, "");
    set_string(&c->redis.password, "");
    strings_add(&c->redis.channels, CHANNEL);
    c->redis.connect_timeout_ms = 500;
    c->redis.reconnect_min_ms = 20;
    c->redis.reconnect_max_ms = 200;
}

static void config_teardown(void)
{
    struct config *c = &t.config;
    free(c->redis.host);
    free(c->redis.unix_path);
    free(c->redis.username);
    free(c->redis.password);
    strings_clear(&c->redis.channels);
    strings_clear(&c->redis.patterns);
}

/* --- fixture and loop ----------------------------------------------------- */

static void setup(void)
{
    memset(&t, 0, sizeof(t));
    t.fake_fd = -1;
    harness_init(&t.h);
    freshness_start(util_monotonic_ms());
    t.base = event_base_new();
    ck_assert_ptr_nonnull(t.base);
    config_setup();
    t.callbacks = (struct subscriber_callbacks){
        .on_message = on_message,
        .on_subscribed = on_subscribed,
        .on_disconnected = on_disconnected,
        .arg = &t,
    };
}

static void teardown(void)
{
    if (t.sub != NULL)
        subscriber_stop(t.sub);
    t.sub = NULL;
    if (t.fake_event != NULL)
        event_free(t.fake_event);
    if (t.fake_fd >= 0)
        close(t.fake_fd);
    event_base_free(t.base);
    config_teardown();
    harness_cleanup(&t.h);
}

static void start(void)
{
    char error[ERROR_MAX] = "";
    t.sub = subscriber_start(t.base, &t.config, &t.callbacks, error);
    ck_assert_msg(t.sub != NULL, "subscriber_start: %s", error);
}

static bool is_connected(int unused)
{
    (void)unused;
    return freshness_subscribed();
}

static bool messages_at_least(int n)
{
    return t.messages >= n;
}

static bool subscribed_at_least(int n)
{
    return t.subscribed >= n;
}

static bool disconnected_at_least(int n)
{
    return t.disconnected >= n;
}

static void expect_message(int n, const char *channel, const char *payload)
{
    ck_assert_msg(harness_pump_until(t.base, 5000, messages_at_least, n),
                  "message %d never arrived (got %d)", n, t.messages);
    ck_assert_str_eq(t.channel, channel);
    ck_assert_uint_eq(t.payload_len, strlen(payload));
    ck_assert(memcmp(t.payload, payload, t.payload_len) == 0);
}

static long long redis_info_int(const char *field)
{
    redisContext *c = harness_redis_connect(&t.h);
    ck_assert_ptr_nonnull(c);
    long long value = harness_info_int(c, field);
    redisFree(c);
    return value;
}

/* --- tests -------------------------------------------------------------- */

START_TEST(test_channels_and_patterns)
{
    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    strings_add(&t.config.redis.channels, "other:channel");
    strings_add(&t.config.redis.patterns, "tc:*");
    strings_add(&t.config.redis.patterns, "bin\x01*");
    start();
    ck_assert(!freshness_subscribed());
    ck_assert_uint_gt(freshness_down_since(), 0);
    ck_assert_int_eq(t.subscribed, 0); /* nothing happens before the loop runs */

    ck_assert(harness_pump_until(t.base, 5000, is_connected, 0));
    ck_assert_int_eq(t.subscribed, 1);
    ck_assert_int_eq(t.subscribed_first, 1);
    ck_assert(t.last_first);
    ck_assert_int_eq(t.disconnected, 0);
    ck_assert_int_eq(reconnects(), 0);
    ck_assert_uint_eq(freshness_down_since(), 0);
    ck_assert(harness_wait_subscribed(&t.h, 1000));

    ck_assert_int_eq(harness_publish(&t.h, CHANNEL, "{\"op\":\"flush\",\"tenant\":\"*\"}"), 1);
    expect_message(1, CHANNEL, "{\"op\":\"flush\",\"tenant\":\"*\"}");
    ck_assert_int_eq(harness_publish(&t.h, "other:channel", "two"), 1);
    expect_message(2, "other:channel", "two");
    ck_assert_int_eq(harness_publish(&t.h, "tc:acme", "three"), 1);
    expect_message(3, "tc:acme", "three");
    ck_assert_int_eq(harness_publish(&t.h, "bin\x01x", "four"), 1);
    expect_message(4, "bin\x01x", "four");
    ck_assert_int_eq(harness_publish(&t.h, "unrelated", "five"), 0);

    /* payloads are binary-safe: the length is passed, not a C string */
    redisContext *c = harness_redis_connect(&t.h);
    ck_assert_ptr_nonnull(c);
    redisReply *r = redisCommand(c, "PUBLISH %s %b", CHANNEL, "a\0b", (size_t)3);
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->integer, 1);
    freeReplyObject(r);
    redisFree(c);
    ck_assert(harness_pump_until(t.base, 5000, messages_at_least, 5));
    ck_assert_uint_eq(t.payload_len, 3);
    ck_assert(memcmp(t.payload, "a\0b", 3) == 0);

    /* an empty payload too */
    ck_assert_int_eq(harness_publish(&t.h, CHANNEL, ""), 1);
    expect_message(6, CHANNEL, "");
    ck_assert_int_eq(t.messages, 6);
    ck_assert_int_eq(t.disconnected, 0);
}
END_TEST

START_TEST(test_unusable_config)
{
    char error[ERROR_MAX] = "";
    strings_clear(&t.config.redis.channels);
    ck_assert_ptr_null(subscriber_start(t.base, &t.config, &t.callbacks, error));
    ck_assert_str_eq(error, "redis: no channels and no patterns to subscribe to");
    strings_add(&t.config.redis.channels, CHANNEL);
    set_string(&t.config.redis.unix_path, "");
    t.config.redis.port = 0;
    ck_assert_ptr_null(subscriber_start(t.base, &t.config, &t.callbacks, error));
    ck_assert_str_eq(error, "redis: redis.port is out of range");
    subscriber_stop(NULL);
}
END_TEST

START_TEST(test_redis_down_at_start)
{
    start();
    harness_pump_for(t.base, 500);
    ck_assert(!freshness_subscribed());
    ck_assert_int_eq(t.disconnected, 1); /* once for the outage, not per retry */
    ck_assert_ptr_nonnull(strstr(t.reason, "No such file"));
    ck_assert_uint_gt(freshness_down_since(), 0);

    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    ck_assert(harness_pump_until(t.base, 5000, is_connected, 0));
    ck_assert_int_eq(t.subscribed, 1);
    ck_assert(t.last_first);
    ck_assert_int_eq(t.disconnected, 1);
    ck_assert_int_eq(reconnects(), 0);
    ck_assert_int_eq(harness_publish(&t.h, CHANNEL, "hello"), 1);
    expect_message(1, CHANNEL, "hello");
}
END_TEST

START_TEST(test_kill_and_restart)
{
    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    start();
    ck_assert(harness_pump_until(t.base, 5000, is_connected, 0));
    ck_assert_int_eq(harness_publish(&t.h, CHANNEL, "before"), 1);
    expect_message(1, CHANNEL, "before");

    ck_assert_int_eq(harness_redis_stop(&t.h, SIGKILL), 0);
    ck_assert(harness_pump_until(t.base, 3000, disconnected_at_least, 1));
    long long lost_at = harness_now_ms();
    ck_assert(!freshness_subscribed());
    ck_assert_uint_gt(freshness_down_since(), 0);
    ck_assert_uint_le(freshness_down_since(), (uint64_t)lost_at);
    harness_pump_for(t.base, 700); /* several failed retries */
    ck_assert_int_eq(t.disconnected, 1);
    ck_assert(!freshness_subscribed());

    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    ck_assert(harness_pump_until(t.base, 5000, is_connected, 0));
    ck_assert_int_eq(t.subscribed, 2);
    ck_assert(!t.last_first);
    ck_assert_int_eq(t.subscribed_first, 1);
    ck_assert_int_eq(reconnects(), 1);
    ck_assert_int_eq(t.disconnected, 1);
    ck_assert_int_eq(harness_publish(&t.h, CHANNEL, "after"), 1);
    expect_message(2, CHANNEL, "after");

    /* and once more, with a clean shutdown of redis this time */
    ck_assert_int_eq(harness_redis_stop(&t.h, SIGTERM), 0);
    ck_assert(harness_pump_until(t.base, 3000, disconnected_at_least, 2));
    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    ck_assert(harness_pump_until(t.base, 5000, subscribed_at_least, 3));
    ck_assert_int_eq(reconnects(), 2);
    ck_assert_int_eq(t.disconnected, 2);
    ck_assert_int_eq(harness_publish(&t.h, CHANNEL, "again"), 1);
    expect_message(3, CHANNEL, "again");
}
END_TEST

START_TEST(test_client_kill)
{
    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    start();
    ck_assert(harness_pump_until(t.base, 5000, is_connected, 0));

    redisContext *c = harness_redis_connect(&t.h);
    ck_assert_ptr_nonnull(c);
    redisReply *r = redisCommand(c, "CLIENT KILL TYPE pubsub");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(r->integer, 1);
    freeReplyObject(r);
    redisFree(c);

    ck_assert(harness_pump_until(t.base, 5000, subscribed_at_least, 2));
    ck_assert_int_eq(t.disconnected, 1);
    ck_assert(!t.last_first);
    ck_assert_int_eq(reconnects(), 1);
    ck_assert_int_eq(harness_publish(&t.h, CHANNEL, "resubscribed"), 1);
    expect_message(1, CHANNEL, "resubscribed");
}
END_TEST

START_TEST(test_output_buffer_limit)
{
    /* A consumer too slow for redis's pubsub output buffer limit is
     * disconnected by redis: that must be a plain reconnect. */
    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    redisContext *c = harness_redis_connect(&t.h);
    ck_assert_ptr_nonnull(c);
    redisReply *r = redisCommand(c, "CONFIG SET client-output-buffer-limit %s", "pubsub 64kb 0 0");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->type, REDIS_REPLY_STATUS);
    freeReplyObject(r);

    start();
    ck_assert(harness_pump_until(t.base, 5000, is_connected, 0));
    static char big[16384];
    memset(big, 'x', sizeof(big) - 1);
    /* the loop does not run: nothing reads, the socket and then redis's buffer fill */
    for (int i = 0; i < 200; i++) {
        r = redisCommand(c, "PUBLISH %s %s", CHANNEL, big);
        ck_assert_ptr_nonnull(r);
        freeReplyObject(r);
    }
    ck_assert(harness_pump_until(t.base, 10000, subscribed_at_least, 2));
    ck_assert_int_eq(t.disconnected, 1);
    ck_assert_int_eq(reconnects(), 1);
    int seen = t.messages;
    r = redisCommand(c, "PUBLISH %s %s", CHANNEL, "small");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->integer, 1);
    freeReplyObject(r);
    expect_message(seen + 1, CHANNEL, "small");
    redisFree(c);
}
END_TEST

START_TEST(test_auth)
{
    const char *const args[] = {"--requirepass", "s3cret pass", NULL};
    ck_assert_int_eq(harness_redis_start_args(&t.h, args), 0);

    /* the right password */
    set_string(&t.config.redis.password, "s3cret pass");
    start();
    ck_assert(harness_pump_until(t.base, 5000, is_connected, 0));
    ck_assert_int_eq(harness_publish(&t.h, CHANNEL, "authed"), 1);
    expect_message(1, CHANNEL, "authed");
    subscriber_stop(t.sub);
    t.sub = NULL;

    /* with a username (AUTH user pass) */
    set_string(&t.config.redis.username, "default");
    start();
    ck_assert(harness_pump_until(t.base, 5000, subscribed_at_least, 2));
    ck_assert_int_eq(harness_publish(&t.h, CHANNEL, "as default"), 1);
    expect_message(2, CHANNEL, "as default");
    ck_assert_int_eq(t.disconnected, 0);
}
END_TEST

START_TEST(test_auth_wrong_password)
{
    const char *const args[] = {"--requirepass", "right", NULL};
    ck_assert_int_eq(harness_redis_start_args(&t.h, args), 0);
    long long connections_before = redis_info_int("total_connections_received");

    set_string(&t.config.redis.password, "wrong");
    start();
    harness_pump_for(t.base, 1500);
    ck_assert(!freshness_subscribed());
    ck_assert_int_eq(t.disconnected, 1);
    ck_assert_msg(strstr(t.reason, "WRONGPASS") != NULL || strstr(t.reason, "invalid") != NULL,
                  "reason: %s", t.reason);
    long long tries = redis_info_int("total_connections_received") - connections_before - 1;
    /* it keeps retrying, with backoff (20 ms .. 200 ms over 1.5 s: no spin) */
    ck_assert_msg(tries >= 3 && tries <= 60, "%lld connection attempts", tries);

    /* no password at all: NOAUTH on SUBSCRIBE, same story */
    set_string(&t.config.redis.password, "");
    subscriber_reconfigure(t.sub, &t.config);
    harness_pump_for(t.base, 500);
    ck_assert(!freshness_subscribed());
    ck_assert_int_eq(t.disconnected, 1); /* still the same outage */

    /* a reload with the right password connects */
    set_string(&t.config.redis.password, "right");
    subscriber_reconfigure(t.sub, &t.config);
    ck_assert(harness_pump_until(t.base, 5000, is_connected, 0));
    ck_assert(t.last_first);
    ck_assert_int_eq(harness_publish(&t.h, CHANNEL, "finally"), 1);
    expect_message(1, CHANNEL, "finally");
}
END_TEST

/* A TCP port nobody listens on right now (the kernel picked it). */
static unsigned free_tcp_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t len = sizeof(sa);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

START_TEST(test_tcp)
{
    unsigned port = free_tcp_port();
    char port_text[16];
    snprintf(port_text, sizeof(port_text), "%u", port);
    const char *const args[] = {"--port", port_text, "--bind", "127.0.0.1", NULL};
    set_string(&t.config.redis.unix_path, "");
    t.config.redis.port = port;

    /* refused first, then redis comes up on that port */
    start();
    harness_pump_for(t.base, 300);
    ck_assert(!freshness_subscribed());
    ck_assert_int_eq(t.disconnected, 1);
    ck_assert_msg(strstr(t.reason, "refused") != NULL, "reason: %s", t.reason);
    ck_assert_int_eq(harness_redis_start_args(&t.h, args), 0);
    ck_assert(harness_pump_until(t.base, 5000, is_connected, 0));
    ck_assert_int_eq(harness_publish(&t.h, CHANNEL, "over tcp"), 1);
    expect_message(1, CHANNEL, "over tcp");

    ck_assert_int_eq(harness_redis_stop(&t.h, SIGKILL), 0);
    ck_assert(harness_pump_until(t.base, 3000, disconnected_at_least, 2));
    ck_assert_int_eq(harness_redis_start_args(&t.h, args), 0);
    ck_assert(harness_pump_until(t.base, 5000, subscribed_at_least, 2));
    ck_assert_int_eq(reconnects(), 1);
}
END_TEST

static void fake_accept(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    (void)arg;
    for (;;) {
        int client = accept(fd, NULL, NULL);
        if (client < 0)
            return;
        if (t.attempts < MAX_ATTEMPTS)
            t.attempt_ms[t.attempts++] = harness_now_ms();
        close(client);
    }
}

START_TEST(test_backoff)
{
    /* A server that accepts and hangs up at once: every attempt fails fast,
     * so the gaps between accepts are the backoff delays. */
    char path[HARNESS_PATH_MAX];
    snprintf(path, sizeof(path), "%s/fake.sock", t.h.dir);
    t.fake_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(t.fake_fd, 0);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    ck_assert_int_eq(bind(t.fake_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(t.fake_fd, 64), 0);
    t.fake_event = event_new(t.base, t.fake_fd, EV_READ | EV_PERSIST, fake_accept, NULL);
    event_add(t.fake_event, NULL);

    set_string(&t.config.redis.unix_path, path);
    t.config.redis.reconnect_min_ms = 20;
    t.config.redis.reconnect_max_ms = 160;
    start();
    harness_pump_for(t.base, 3000);
    ck_assert(!freshness_subscribed());
    ck_assert_int_eq(t.disconnected, 1);

    /* 20, 20..40, 40..80, then 80..160 ms: about 20 attempts in 3 s */
    int n = t.attempts;
    ck_assert_msg(n >= 8 && n <= 60, "%d attempts in 3 s", n);
    long long first_gap = t.attempt_ms[1] - t.attempt_ms[0];
    long long late = 0;
    for (int i = 1; i < n; i++) {
        long long gap = t.attempt_ms[i] - t.attempt_ms[i - 1];
        ck_assert_msg(gap >= 15, "gap %d is %lld ms, below reconnect_min", i, gap);
        ck_assert_msg(gap <= 160 + 250, "gap %d is %lld ms, above reconnect_max", i, gap);
        if (i >= n - 5)
            late += gap;
    }
    late /= 5;
    ck_assert_msg(late >= 70 && late > first_gap, "delays did not grow: first %lld, late %lld",
                  first_gap, late);

    /* a reconfigure to a working address retries at once and resets the backoff */
    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    set_string(&t.config.redis.unix_path, t.h.redis_socket);
    long long before = harness_now_ms();
    subscriber_reconfigure(t.sub, &t.config);
    ck_assert(harness_pump_until(t.base, 5000, is_connected, 0));
    ck_assert_msg(harness_now_ms() - before < 1000, "reconfigure took %lld ms",
                  harness_now_ms() - before);
    ck_assert_int_eq(t.disconnected, 1);
}
END_TEST

START_TEST(test_paused_redis)
{
    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    ck_assert_int_eq(harness_redis_pause(&t.h), 0);
    t.config.redis.connect_timeout_ms = 200;
    start();
    harness_pump_for(t.base, 1200); /* connect(2) succeeds into the backlog; nothing answers */
    ck_assert(!freshness_subscribed());
    ck_assert_int_eq(t.disconnected, 1);
    ck_assert_msg(strstr(t.reason, "timed out") != NULL, "reason: %s", t.reason);

    ck_assert_int_eq(harness_redis_resume(&t.h), 0);
    ck_assert(harness_pump_until(t.base, 5000, is_connected, 0));
    ck_assert(t.last_first);
    /* the abandoned attempts reached redis once it resumed */
    ck_assert_int_ge(redis_info_int("total_connections_received"), 3);

    /* paused while subscribed: nothing to notice; messages flow after resume */
    ck_assert_int_eq(harness_redis_pause(&t.h), 0);
    harness_pump_for(t.base, 300);
    ck_assert_int_eq(harness_redis_resume(&t.h), 0);
    ck_assert_int_eq(harness_publish(&t.h, CHANNEL, "resumed"), 1);
    expect_message(1, CHANNEL, "resumed");
}
END_TEST

START_TEST(test_stop_while_connecting)
{
    /* stopped before the loop ever ran */
    start();
    subscriber_stop(t.sub);
    t.sub = NULL;

    /* stopped mid-handshake: connected to a paused redis, SUBSCRIBE unanswered */
    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    ck_assert_int_eq(harness_redis_pause(&t.h), 0);
    t.config.redis.connect_timeout_ms = 5000;
    set_string(&t.config.redis.password, "unused");
    start();
    harness_pump_for(t.base, 150);
    ck_assert(!freshness_subscribed());
    subscriber_stop(t.sub);
    t.sub = NULL;
    harness_pump_for(t.base, 50); /* nothing of it is left on the loop */
    ck_assert_int_eq(harness_redis_resume(&t.h), 0);
    ck_assert_int_eq(t.subscribed, 0);
}
END_TEST

START_TEST(test_stop_while_disconnected)
{
    start();
    harness_pump_for(t.base, 300);
    ck_assert_int_eq(t.disconnected, 1);
    subscriber_stop(t.sub);
    t.sub = NULL;
    harness_pump_for(t.base, 100);

    /* and while subscribed, then after a loss */
    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    start();
    ck_assert(harness_pump_until(t.base, 5000, is_connected, 0));
    ck_assert_int_eq(harness_redis_stop(&t.h, SIGKILL), 0);
    ck_assert(harness_pump_until(t.base, 3000, disconnected_at_least, 2));
    subscriber_stop(t.sub);
    t.sub = NULL;
    harness_pump_for(t.base, 100);
}
END_TEST

START_TEST(test_reconfigure)
{
    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    start();
    ck_assert(harness_pump_until(t.base, 5000, is_connected, 0));

    /* only timings changed: the connection stays */
    t.config.redis.reconnect_max_ms = 1000;
    t.config.redis.connect_timeout_ms = 800;
    subscriber_reconfigure(t.sub, &t.config);
    harness_pump_for(t.base, 200);
    ck_assert_int_eq(t.subscribed, 1);
    ck_assert_int_eq(t.disconnected, 0);
    ck_assert(freshness_subscribed());

    /* the channels changed: resubscribe */
    strings_clear(&t.config.redis.channels);
    strings_add(&t.config.redis.channels, "new:channel");
    subscriber_reconfigure(t.sub, &t.config);
    ck_assert(harness_pump_until(t.base, 5000, subscribed_at_least, 2));
    ck_assert(!t.last_first);
    ck_assert_int_eq(t.disconnected, 1);
    ck_assert_int_eq(reconnects(), 1);
    ck_assert_int_eq(harness_publish(&t.h, CHANNEL, "old"), 0);
    ck_assert_int_eq(harness_publish(&t.h, "new:channel", "new"), 1);
    expect_message(1, "new:channel", "new");

    /* an unusable reload is refused and the connection kept */
    strings_clear(&t.config.redis.channels);
    subscriber_reconfigure(t.sub, &t.config);
    harness_pump_for(t.base, 200);
    ck_assert(freshness_subscribed());
    ck_assert_int_eq(t.subscribed, 2);
    ck_assert_int_eq(harness_publish(&t.h, "new:channel", "still"), 1);
    expect_message(2, "new:channel", "still");
}
END_TEST

static Suite *subscriber_suite(void)
{
    Suite *s = suite_create("subscriber");
    TCase *tc = tcase_create("redis");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_channels_and_patterns);
    tcase_add_test(tc, test_unusable_config);
    tcase_add_test(tc, test_redis_down_at_start);
    tcase_add_test(tc, test_kill_and_restart);
    tcase_add_test(tc, test_client_kill);
    tcase_add_test(tc, test_output_buffer_limit);
    tcase_add_test(tc, test_auth);
    tcase_add_test(tc, test_auth_wrong_password);
    tcase_add_test(tc, test_tcp);
    tcase_add_test(tc, test_backoff);
    tcase_add_test(tc, test_paused_redis);
    tcase_add_test(tc, test_stop_while_connecting);
    tcase_add_test(tc, test_stop_while_disconnected);
    tcase_add_test(tc, test_reconfigure);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    log_init();
    SRunner *runner = srunner_create(subscriber_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
