/* test_tracking.c - client-side caching (docs/reference.md §4, "Client-side
 * caching"): CLIENT TRACKING and its invalidation pushes, against a real
 * redis-server and the real daemon. The tracking connections are raw sockets
 * so that the exact bytes of each push are asserted; the changes come as
 * published messages, fills, expiry, eviction and FLUSH.
 *
 * "No push" is shown by order, never by waiting: pushes to one connection
 * are queued in the order the changes happen, so after a change that must
 * stay silent the test makes another change that must not, and asserts that
 * the next value read is the push of the second one. */
#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define CHANNEL "tenantcached:invalidate"
#define WAIT_MS 5000

static struct harness h;
static redisContext *client;
/* The memory section of the config (the stress test needs room). */
static const char *memory_text = "memory:\n"
                                 "  max_bytes: 16mb\n"
                                 "  tenant_max_bytes: 1mb\n"
                                 "  max_tenants: 1000\n";

static const char *config_text(const char *listen, const char *redis, const char *rest)
{
    static char text[4096];
    int n = snprintf(text, sizeof(text),
                     "log_level: debug\n"
                     "threads: 2\n"
                     "shards: 4\n"
                     "listen:\n"
                     "  socket: \"@DAEMON_SOCKET@\"\n"
                     "%s"
                     "redis:\n"
                     "  unix: \"@REDIS_SOCKET@\"\n"
                     "  channels: [tenantcached:invalidate]\n"
                     "  connect_timeout: 500ms\n"
                     "  reconnect_min: 50ms\n"
                     "  reconnect_max: 500ms\n"
                     "%s"
                     "%s"
                     "%s",
                     listen, redis, memory_text, rest);
    ck_assert(n > 0 && (size_t)n < sizeof(text));
    return text;
}

static void setup(void)
{
    harness_init(&h);
    ck_assert_int_eq(harness_redis_start(&h), 0);
}

static void teardown(void)
{
    if (client != NULL)
        redisFree(client);
    client = NULL;
    harness_finish(&h);
}

static void start_daemon(const char *tmpl)
{
    client = harness_start_subscribed(&h, tmpl, WAIT_MS);
}

/* Publishes a set and waits until the daemon answers it. */
static void set_and_wait(const char *tenant, const char *kind, const char *key, const char *json)
{
    harness_publish_set(&h, CHANNEL, tenant, kind, key, json);
    char name[256];
    snprintf(name, sizeof(name), "cache:%s:%s:%s", tenant, kind, key);
    ck_assert(harness_wait_reply(client, WAIT_MS, json, "GET %s", name));
}

/* ---- raw RESP ---- */

/* Length of the first complete RESP2/RESP3 value in buf[0..len), or 0. */
static size_t value_length(const char *buf, size_t len)
{
    const char *crlf = memmem(buf, len, "\r\n", 2);
    if (crlf == NULL)
        return 0;
    size_t line = (size_t)(crlf - buf) + 2;
    long long n = atoll(buf + 1);
    switch (buf[0]) {
    case '$':
    case '!':
    case '=':
        if (n < 0)
            return line;
        return len >= line + (size_t)n + 2 ? line + (size_t)n + 2 : 0;
    case '*':
    case '>':
    case '~':
    case '%':
    case '|': {
        if (n < 0)
            return line;
        long long count = buf[0] == '%' || buf[0] == '|' ? 2 * n : n;
        size_t at = line;
        for (long long i = 0; i < count; i++) {
            size_t one = value_length(buf + at, len - at);
            if (one == 0)
                return 0;
            at += one;
        }
        return at;
    }
    default:
        return line;
    }
}

struct raw {
    int fd;
    char buf[1 << 20];
    size_t len;
};

static struct raw *raw_open(void)
{
    struct raw *r = calloc(1, sizeof(*r));
    ck_assert_ptr_nonnull(r);
    r->fd = harness_raw_connect(&h);
    ck_assert_int_ge(r->fd, 0);
    return r;
}

static void raw_close(struct raw *r)
{
    close(r->fd);
    free(r);
}

/* Sends a command whose arguments are separated by single spaces. */
static void raw_send(struct raw *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void raw_send(struct raw *r, const char *fmt, ...)
{
    char line[4096], out[8192];
    va_list args;
    va_start(args, fmt);
    vsnprintf(line, sizeof(line), fmt, args);
    va_end(args);
    const char *words[256];
    size_t count = 0;
    for (char *save = NULL, *w = strtok_r(line, " ", &save); w != NULL && count < 256;
         w = strtok_r(NULL, " ", &save))
        words[count++] = w;
    int n = snprintf(out, sizeof(out), "*%zu\r\n", count);
    for (size_t i = 0; i < count; i++)
        n += snprintf(out + n, sizeof(out) - (size_t)n, "$%zu\r\n%s\r\n", strlen(words[i]),
                      words[i]);
    ck_assert_int_eq(write(r->fd, out, (size_t)n), n);
}

/* The next complete value, as raw bytes (NUL-terminated, static). */
static const char *raw_next(struct raw *r)
{
    static char value[1 << 16];
    long long deadline = harness_now_ms() + WAIT_MS;
    for (;;) {
        size_t n = r->len ? value_length(r->buf, r->len) : 0;
        if (n > 0) {
            size_t copy = n < sizeof(value) - 1 ? n : sizeof(value) - 1;
            memcpy(value, r->buf, copy);
            value[copy] = '\0';
            memmove(r->buf, r->buf + n, r->len - n);
            r->len -= n;
            return value;
        }
        long long left = deadline - harness_now_ms();
        ck_assert_msg(left > 0, "no complete value within %d ms (have %zu bytes)", WAIT_MS,
                      r->len);
        bool closed = false;
        size_t got = harness_raw_read(r->fd, r->buf + r->len, 1, (int)left, &closed);
        ck_assert_msg(!closed, "the daemon closed the connection");
        r->len += got;
    }
}

static void raw_expect(struct raw *r, const char *expected)
{
    const char *got = raw_next(r);
    ck_assert_msg(strcmp(got, expected) == 0, "expected '%s', got '%s'", expected, got);
}

/* The push invalidating one name. */
static const char *push_for(const char *name)
{
    static char text[512];
    snprintf(text, sizeof(text), ">2\r\n$10\r\ninvalidate\r\n*1\r\n$%zu\r\n%s\r\n", strlen(name),
             name);
    return text;
}

#define PUSH_ALL ">2\r\n$10\r\ninvalidate\r\n_\r\n"

/* A RESP3 connection with tracking on (options appended). */
static struct raw *tracker(const char *options)
{
    struct raw *r = raw_open();
    raw_send(r, "HELLO 3");
    const char *hello = raw_next(r);
    ck_assert_msg(hello[0] == '%', "HELLO 3: %s", hello);
    raw_send(r, "CLIENT TRACKING ON%s%s", options[0] ? " " : "", options);
    raw_expect(r, "+OK\r\n");
    return r;
}

static void raw_get(struct raw *r, const char *name, const char *expected)
{
    raw_send(r, "GET %s", name);
    raw_expect(r, expected);
}

/* ---- default mode ---- */

START_TEST(test_default_mode)
{
    start_daemon(config_text("", "", ""));
    set_and_wait("acme", "credit", "a", "1");
    struct raw *r = tracker("");
    raw_get(r, "cache:acme:credit:a", "$1\r\n1\r\n");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "a", "2");
    raw_expect(r, push_for("cache:acme:credit:a"));
    /* A second change before a new read: no push. The next push is b's. */
    harness_publish_set(&h, CHANNEL, "acme", "credit", "a", "3");
    raw_get(r, "cache:acme:credit:b", "_\r\n"); /* a nil read is tracked too */
    harness_publish_set(&h, CHANNEL, "acme", "credit", "b", "4");
    raw_expect(r, push_for("cache:acme:credit:b"));
    /* Read again: tracked again; a del sends it. */
    raw_get(r, "cache:acme:credit:a", "$1\r\n3\r\n");
    harness_publish_ok(&h, CHANNEL,
                       "{\"op\":\"del\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"a\"}");
    raw_expect(r, push_for("cache:acme:credit:a"));
    /* MGET by names tracks each; invalidate sends one. */
    set_and_wait("acme", "credit", "c", "5");
    raw_send(r, "MGET cache:acme:credit:c cache:acme:credit:d");
    raw_expect(r, "*2\r\n$1\r\n5\r\n_\r\n");
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"invalidate\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"c\"}");
    raw_expect(r, push_for("cache:acme:credit:c"));
    /* The reads by (tenant, kind, key) are not names: not tracked. */
    raw_send(r, "GET acme credit e");
    raw_expect(r, "_\r\n");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "e", "1");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "d", "1");
    raw_expect(r, push_for("cache:acme:credit:d"));
    ck_assert_int_eq(harness_info_int(client, "tracking_clients"), 1);
    ck_assert_int_ge(harness_info_int(client, "tracking_invalidations"), 5);
    /* OFF: nothing more. */
    raw_get(r, "cache:acme:credit:c", "_\r\n");
    raw_send(r, "CLIENT TRACKING OFF");
    raw_expect(r, "+OK\r\n");
    ck_assert_int_eq(harness_info_int(client, "tracking_clients"), 0);
    harness_publish_set(&h, CHANNEL, "acme", "credit", "c", "9");
    raw_send(r, "PING");
    raw_expect(r, "+PONG\r\n");
    raw_close(r);
}
END_TEST

/* A flush of one tenant sends its names; a flush of everything (message
 * tenant "*", or admin FLUSH) sends the null form. */
START_TEST(test_flushes)
{
    start_daemon(config_text("", "", ""));
    set_and_wait("acme", "credit", "a", "1");
    set_and_wait("globex", "credit", "a", "1");
    struct raw *r = tracker("");
    raw_get(r, "cache:acme:credit:a", "$1\r\n1\r\n");
    harness_publish_ok(&h, CHANNEL, "{\"op\":\"flush\",\"tenant\":\"acme\"}");
    raw_expect(r, push_for("cache:acme:credit:a"));
    raw_get(r, "cache:globex:credit:a", "$1\r\n1\r\n");
    harness_publish_ok(&h, CHANNEL, "{\"op\":\"flush\",\"tenant\":\"*\"}");
    raw_expect(r, PUSH_ALL);
    ck_assert(harness_wait_info(client, WAIT_MS, "tracking_keys", 0));
    set_and_wait("globex", "credit", "a", "2");
    raw_get(r, "cache:globex:credit:a", "$1\r\n2\r\n");
    redisReply *reply = redisCommand(client, "FLUSH *");
    ck_assert_ptr_nonnull(reply);
    ck_assert_str_eq(reply->str, "OK");
    freeReplyObject(reply);
    raw_expect(r, PUSH_ALL);
    raw_close(r);
}
END_TEST

/* Expiry changes an entry too: the sweep reclaims it after its TTL. */
START_TEST(test_expiry)
{
    start_daemon(config_text("", "", "kinds:\n  note: {ttl: 300ms}\n"));
    set_and_wait("acme", "note", "n", "\"x\"");
    struct raw *r = tracker("");
    raw_get(r, "cache:acme:note:n", "$3\r\n\"x\"\r\n");
    raw_expect(r, push_for("cache:acme:note:n"));
    raw_close(r);
}
END_TEST

/* So does eviction: the tenant's 1mb fills with reference entries read
 * after the tracked one, which is then the least recently used. */
START_TEST(test_eviction)
{
    start_daemon(config_text("", "", "kinds:\n  page: {}\n"));
    set_and_wait("acme", "page", "p0", "\"first\"");
    struct raw *r = tracker("");
    raw_get(r, "cache:acme:page:p0", "$7\r\n\"first\"\r\n");
    static char big[8200];
    big[0] = '"';
    memset(big + 1, 'v', 8000);
    big[8001] = '"';
    big[8002] = '\0';
    for (int i = 1; i <= 300; i++) {
        char key[16];
        snprintf(key, sizeof(key), "p%d", i);
        harness_publish_set(&h, CHANNEL, "acme", "page", key, big);
        /* Read it (once it is there), so that it is more recent than p0. */
        bool seen = false;
        for (long long end = harness_now_ms() + WAIT_MS; !seen && harness_now_ms() < end;) {
            redisReply *reply = redisCommand(client, "GET cache:acme:page:%s", key);
            ck_assert_ptr_nonnull(reply);
            seen = reply->type == REDIS_REPLY_STRING && reply->len == strlen(big);
            freeReplyObject(reply);
            if (!seen)
                harness_sleep_ms(2);
        }
        ck_assert_msg(seen, "%s never arrived", key);
    }
    raw_expect(r, push_for("cache:acme:page:p0"));
    raw_close(r);
}
END_TEST

/* A fill that brings a value where a tracked read found none. */
START_TEST(test_fill_brings_value)
{
    start_daemon(config_text("", "  l2: true\n", ""));
    struct raw *r = tracker("");
    raw_get(r, "cache:acme:credit:f", "_\r\n");
    redisContext *store = harness_redis_connect(&h);
    ck_assert_ptr_nonnull(store);
    redisReply *reply = redisCommand(store, "SET cache:acme:credit:f 7");
    ck_assert_ptr_nonnull(reply);
    freeReplyObject(reply);
    redisFree(store);
    /* Another connection's miss fills it from L2. */
    ck_assert(harness_wait_reply(client, WAIT_MS, "7", "GET cache:acme:credit:f"));
    raw_expect(r, push_for("cache:acme:credit:f"));
    raw_close(r);
}
END_TEST

/* BCAST: every change under a prefix, read or not. */
START_TEST(test_bcast)
{
    start_daemon(config_text("", "", ""));
    struct raw *r = tracker("BCAST PREFIX cache:acme:credit: PREFIX cache:globex:role:");
    harness_publish_set(&h, CHANNEL, "initech", "credit", "x", "1");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "x", "1");
    raw_expect(r, push_for("cache:acme:credit:x"));
    harness_publish_set(&h, CHANNEL, "acme", "role", "x", "{\"permissions\":[]}");
    harness_publish_set(&h, CHANNEL, "globex", "role", "admin", "{\"permissions\":[]}");
    raw_expect(r, push_for("cache:globex:role:admin"));
    raw_send(r, "CLIENT TRACKINGINFO");
    raw_expect(r, "%3\r\n$5\r\nflags\r\n~2\r\n$2\r\non\r\n$5\r\nbcast\r\n$8\r\nredirect\r\n"
                  ":0\r\n$8\r\nprefixes\r\n*2\r\n$18\r\ncache:acme:credit:\r\n"
                  "$18\r\ncache:globex:role:\r\n");
    raw_close(r);
}
END_TEST

START_TEST(test_optin_optout)
{
    start_daemon(config_text("", "", ""));
    set_and_wait("acme", "credit", "a", "1");
    set_and_wait("acme", "credit", "b", "1");
    struct raw *r = tracker("OPTIN");
    raw_get(r, "cache:acme:credit:a", "$1\r\n1\r\n"); /* not tracked */
    raw_send(r, "CLIENT CACHING YES");
    raw_expect(r, "+OK\r\n");
    raw_get(r, "cache:acme:credit:b", "$1\r\n1\r\n"); /* tracked */
    harness_publish_set(&h, CHANNEL, "acme", "credit", "a", "2");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "b", "2");
    raw_expect(r, push_for("cache:acme:credit:b"));
    raw_send(r, "CLIENT CACHING NO");
    raw_expect(r, "-ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT "
                  "mode.\r\n");
    raw_send(r, "CLIENT TRACKING ON OPTOUT");
    raw_expect(r, "-ERR You can't switch OPTIN/OPTOUT mode before disabling tracking for this "
                  "client, and then re-enabling it with a different mode.\r\n");
    raw_send(r, "CLIENT TRACKING OFF");
    raw_expect(r, "+OK\r\n");
    raw_send(r, "CLIENT TRACKING ON OPTOUT NOLOOP");
    raw_expect(r, "+OK\r\n");
    raw_send(r, "CLIENT CACHING NO");
    raw_expect(r, "+OK\r\n");
    raw_get(r, "cache:acme:credit:a", "$1\r\n2\r\n"); /* not tracked */
    raw_get(r, "cache:acme:credit:b", "$1\r\n2\r\n"); /* tracked */
    harness_publish_set(&h, CHANNEL, "acme", "credit", "a", "3");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "b", "3");
    raw_expect(r, push_for("cache:acme:credit:b"));
    raw_send(r, "CLIENT TRACKINGINFO");
    raw_expect(r, "%3\r\n$5\r\nflags\r\n~3\r\n$2\r\non\r\n$6\r\noptout\r\n$6\r\nnoloop\r\n"
                  "$8\r\nredirect\r\n:0\r\n$8\r\nprefixes\r\n*0\r\n");
    raw_close(r);
}
END_TEST

START_TEST(test_errors)
{
    start_daemon(config_text("", "", ""));
    struct raw *r = raw_open();
    raw_send(r, "CLIENT CACHING YES");
    raw_expect(r, "-ERR CLIENT CACHING can be called only when the client is in tracking mode "
                  "with OPTIN or OPTOUT mode enabled\r\n");
    raw_send(r, "CLIENT GETREDIR");
    raw_expect(r, ":-1\r\n");
    raw_send(r, "CLIENT TRACKING MAYBE");
    raw_expect(r, "-ERR syntax error\r\n");
    raw_send(r, "CLIENT TRACKING ON PREFIX a");
    raw_expect(r, "-ERR PREFIX option requires BCAST mode to be enabled\r\n");
    raw_send(r, "CLIENT TRACKING ON BCAST OPTIN");
    raw_expect(r, "-ERR OPTIN and OPTOUT are not compatible with BCAST\r\n");
    raw_send(r, "CLIENT TRACKING ON OPTIN OPTOUT");
    raw_expect(r, "-ERR You can't use both OPTIN and OPTOUT\r\n");
    raw_send(r, "CLIENT TRACKING ON REDIRECT 999999");
    raw_expect(r, "-ERR The client ID you want redirect to does not exist\r\n");
    raw_send(r, "CLIENT TRACKING ON BCAST PREFIX ab PREFIX abc");
    raw_expect(r, "-ERR Prefix 'ab' overlaps with another provided prefix 'abc'. Prefixes for a "
                  "single client must not overlap.\r\n");
    raw_send(r, "CLIENT TRACKINGINFO");
    raw_expect(r, "*6\r\n$5\r\nflags\r\n*1\r\n$3\r\noff\r\n$8\r\nredirect\r\n:-1\r\n"
                  "$8\r\nprefixes\r\n*0\r\n");
    raw_send(r, "CLIENT TRACKING ON");
    raw_expect(r, "+OK\r\n");
    raw_send(r, "CLIENT TRACKING ON BCAST");
    raw_expect(r, "-ERR You can't switch BCAST mode on/off before disabling tracking for this "
                  "client, and then re-enabling it with a different mode.\r\n");
    raw_send(r, "CLIENT GETREDIR");
    raw_expect(r, ":0\r\n");
    raw_send(r, "SUBSCRIBE news");
    raw_expect(r, "-ERR only the __redis__:invalidate channel can be subscribed to here\r\n");
    raw_close(r);
}
END_TEST

/* RESP2: REDIRECT to a connection subscribed to __redis__:invalidate. */
START_TEST(test_redirect)
{
    start_daemon(config_text("", "", ""));
    set_and_wait("acme", "credit", "a", "1");
    struct raw *sub = raw_open();
    raw_send(sub, "CLIENT ID");
    const char *id_text = raw_next(sub);
    long long id = atoll(id_text + 1);
    raw_send(sub, "SUBSCRIBE __redis__:invalidate");
    raw_expect(sub, "*3\r\n$9\r\nsubscribe\r\n$20\r\n__redis__:invalidate\r\n:1\r\n");
    struct raw *r = raw_open();
    raw_send(r, "CLIENT TRACKING ON REDIRECT %lld", id);
    raw_expect(r, "+OK\r\n");
    raw_send(r, "CLIENT GETREDIR");
    char expected[256];
    snprintf(expected, sizeof(expected), ":%lld\r\n", id);
    raw_expect(r, expected);
    raw_get(r, "cache:acme:credit:a", "$1\r\n1\r\n");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "a", "2");
    raw_expect(sub, "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$19\r\n"
                    "cache:acme:credit:a\r\n");
    harness_publish_ok(&h, CHANNEL, "{\"op\":\"flush\",\"tenant\":\"*\"}");
    raw_expect(sub, "*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n$-1\r\n");
    raw_send(sub, "UNSUBSCRIBE");
    raw_expect(sub, "*3\r\n$11\r\nunsubscribe\r\n$20\r\n__redis__:invalidate\r\n:0\r\n");
    /* The target closes: a RESP3 tracker is told. */
    raw_close(sub);
    raw_send(r, "HELLO 3");
    (void)raw_next(r);
    raw_get(r, "cache:acme:credit:a", "_\r\n");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "a", "3");
    snprintf(expected, sizeof(expected), ">2\r\n$21\r\ntracking-redir-broken\r\n:%lld\r\n", id);
    raw_expect(r, expected);
    raw_send(r, "CLIENT TRACKINGINFO");
    snprintf(expected, sizeof(expected),
             "%%3\r\n$5\r\nflags\r\n~2\r\n$2\r\non\r\n$15\r\nbroken_redirect\r\n"
             "$8\r\nredirect\r\n:%lld\r\n$8\r\nprefixes\r\n*0\r\n",
             id);
    raw_expect(r, expected);
    raw_close(r);
}
END_TEST

/* REDIRECT to a RESP3 connection that ran nothing but HELLO and CLIENT ID:
 * it hears the pushes (filtered by its own grant, computed for it). */
START_TEST(test_redirect_resp3)
{
    start_daemon(config_text("", "", ""));
    set_and_wait("acme", "credit", "a", "1");
    struct raw *target = raw_open();
    raw_send(target, "HELLO 3");
    (void)raw_next(target);
    raw_send(target, "CLIENT ID");
    long long id = atoll(raw_next(target) + 1);
    struct raw *r = raw_open();
    raw_send(r, "CLIENT TRACKING ON REDIRECT %lld", id);
    raw_expect(r, "+OK\r\n");
    raw_get(r, "cache:acme:credit:a", "$1\r\n1\r\n");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "a", "2");
    raw_expect(target, push_for("cache:acme:credit:a"));
    raw_close(r);
    raw_close(target);
}
END_TEST

/* Before the first -STALE, every tracking client is told to drop all. */
START_TEST(test_stale)
{
    start_daemon(config_text("", "  max_stale: 1s\n", ""));
    set_and_wait("acme", "credit", "a", "1");
    struct raw *r = tracker("");
    raw_get(r, "cache:acme:credit:a", "$1\r\n1\r\n");
    ck_assert_int_eq(harness_redis_stop(&h, SIGKILL), 0);
    /* The timer sends it without any read. */
    raw_expect(r, PUSH_ALL);
    raw_get(r, "cache:acme:credit:a",
            "-STALE invalidation stream down for 1s; critical data may be stale\r\n");
    raw_close(r);
}
END_TEST

/* A peer only hears of tenants it may read, BCAST included. */
START_TEST(test_acl)
{
    start_daemon(config_text("", "", "access:\n  - {uid: 0, tenants: [acme]}\n"));
    struct raw *r = tracker("BCAST PREFIX cache:");
    raw_get(r, "cache:globex:credit:a", "-NOPERM this user has no access to tenant 'globex'\r\n");
    harness_publish_set(&h, CHANNEL, "globex", "credit", "a", "1");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "a", "1");
    raw_expect(r, push_for("cache:acme:credit:a"));
    raw_close(r);
}
END_TEST

/* Past tracking_max_keys the oldest names are invalidated and forgotten. */
START_TEST(test_bound)
{
    start_daemon(config_text("  tracking_max_keys: 3\n", "", ""));
    struct raw *r = tracker("");
    raw_get(r, "cache:acme:credit:k1", "_\r\n");
    raw_get(r, "cache:acme:credit:k2", "_\r\n");
    raw_get(r, "cache:acme:credit:k3", "_\r\n");
    ck_assert_int_eq(harness_info_int(client, "tracking_keys"), 3);
    raw_send(r, "GET cache:acme:credit:k4");
    raw_expect(r, "_\r\n");
    raw_expect(r, push_for("cache:acme:credit:k1"));
    ck_assert_int_eq(harness_info_int(client, "tracking_keys"), 3);
    /* k1 is forgotten: its change is silent; k2's is not. */
    harness_publish_set(&h, CHANNEL, "acme", "credit", "k1", "1");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "k2", "1");
    raw_expect(r, push_for("cache:acme:credit:k2"));
    raw_close(r);
}
END_TEST

/* Many connections tracking many names while messages change them: each
 * hears of exactly its own names, once each; the table stays bounded. The
 * caches have room for every entry, so that every set is a change (a value
 * answered but not cached changes nothing a client can hold).
 * 100 connections of 1,000 names each (TRACKING_STRESS_NAMES, up to 10,000,
 * for the full size: slower than make check should be); 200 each under a
 * sanitizer, which looks for races, not for scale, and runs ten times
 * slower. */
#define STRESS_CLIENTS 100
#define STRESS_NAMES_MAX 10000
START_TEST(test_stress)
{
    const char *env = getenv("TRACKING_STRESS_NAMES");
    const int STRESS_NAMES = env != NULL && atoi(env) > 0 && atoi(env) <= STRESS_NAMES_MAX
                                 ? atoi(env) / 100 * 100
                                 : getenv("TENANTCACHED_SANITIZER") != NULL ? 200 : 1000;
    memory_text = "memory:\n  max_bytes: 1gb\n  tenant_max_bytes: 32mb\n  max_tenants: 1000\n";
    start_daemon(config_text("  tracking_max_keys: 1000000\n  max_clients: 1000\n", "", ""));
    static struct raw *rs[STRESS_CLIENTS];
    for (int c = 0; c < STRESS_CLIENTS; c++) {
        rs[c] = tracker("");
        /* Pipelined reads of its own names. */
        char batch[64 * 1024];
        for (int k = 0; k < STRESS_NAMES; k += 100) {
            size_t n = 0;
            for (int j = k; j < k + 100; j++) {
                char name[64];
                int len = snprintf(name, sizeof(name), "cache:t%d:credit:k%d", c, j);
                n += (size_t)snprintf(batch + n, sizeof(batch) - n, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n",
                                      len, name);
            }
            ck_assert_int_eq(write(rs[c]->fd, batch, n), (ssize_t)n);
            for (int j = k; j < k + 100; j++)
                raw_expect(rs[c], "_\r\n");
        }
    }
    ck_assert_int_eq(harness_info_int(client, "tracking_keys"), STRESS_CLIENTS * STRESS_NAMES);
    /* Change every name: publishes pipelined by the thousand. */
    redisContext *redis = harness_redis_connect(&h);
    ck_assert_ptr_nonnull(redis);
    for (int c = 0; c < STRESS_CLIENTS; c++) {
        for (int k = 0; k < STRESS_NAMES; k++) {
            char payload[256];
            snprintf(payload, sizeof(payload),
                     "{\"op\":\"set\",\"tenant\":\"t%d\",\"kind\":\"credit\",\"key\":\"k%d\","
                     "\"value\":1}",
                     c, k);
            ck_assert_int_eq(redisAppendCommand(redis, "PUBLISH %s %s", CHANNEL, payload),
                             REDIS_OK);
            if ((c * STRESS_NAMES + k) % 1000 == 999 ||
                (c == STRESS_CLIENTS - 1 && k == STRESS_NAMES - 1)) {
                int pending = (c * STRESS_NAMES + k) % 1000 + 1;
                for (int i = 0; i < pending; i++) {
                    redisReply *reply = NULL;
                    ck_assert_int_eq(redisGetReply(redis, (void **)&reply), REDIS_OK);
                    ck_assert_int_eq(reply->integer, 1);
                    freeReplyObject(reply);
                }
            }
        }
    }
    redisFree(redis);
    for (int c = 0; c < STRESS_CLIENTS; c++) {
        int seen = 0;
        static char mark[STRESS_NAMES_MAX];
        memset(mark, 0, sizeof(mark));
        while (seen < STRESS_NAMES) {
            const char *v = raw_next(rs[c]);
            ck_assert_msg(strncmp(v, ">2\r\n$10\r\ninvalidate\r\n*", 22) == 0, "client %d: %.80s",
                          c, v);
            const char *p = v + 22;
            long count = strtol(p, NULL, 10);
            p = strstr(p, "\r\n") + 2;
            for (long i = 0; i < count; i++) {
                long len = strtol(p + 1, NULL, 10);
                p = strstr(p, "\r\n") + 2;
                char prefix[32];
                int plen = snprintf(prefix, sizeof(prefix), "cache:t%d:credit:k", c);
                ck_assert_msg(len > plen && strncmp(p, prefix, (size_t)plen) == 0,
                              "client %d got %.*s", c, (int)len, p);
                int k = atoi(p + plen);
                ck_assert_msg(k >= 0 && k < STRESS_NAMES && !mark[k], "client %d: k%d twice", c,
                              k);
                mark[k] = 1;
                seen++;
                p += len + 2;
            }
        }
    }
    ck_assert_int_eq(harness_info_int(client, "tracking_keys"), 0);
    for (int c = 0; c < STRESS_CLIENTS; c++)
        raw_close(rs[c]);
}
END_TEST

static Suite *tracking_suite(void)
{
    Suite *s = suite_create("tracking");
    TCase *tc = tcase_create("tracking");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_default_mode);
    tcase_add_test(tc, test_flushes);
    tcase_add_test(tc, test_expiry);
    tcase_add_test(tc, test_eviction);
    tcase_add_test(tc, test_fill_brings_value);
    tcase_add_test(tc, test_bcast);
    tcase_add_test(tc, test_optin_optout);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_redirect);
    tcase_add_test(tc, test_redirect_resp3);
    tcase_add_test(tc, test_stale);
    tcase_add_test(tc, test_acl);
    tcase_add_test(tc, test_bound);
    tcase_add_test(tc, test_stress);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *runner = srunner_create(tracking_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
