/* test_l2.c - the L2 connection (GET/SET on a plain Redis connection) against
 * a real redis-server.
 *
 * l2 runs in-process on its own event_base; the tests pump the loop in short
 * slices and act on redis (write keys, kill, restart, pause) from a
 * synchronous hiredis connection in between. Timing bounds are generous: the
 * suite also runs under valgrind. */
#include <check.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "config.h"
#include "harness.h"
#include "l2.h"
#include "log.h"
#include "util.h"

#define MAX_ANSWERS 64
/* "At once" for an answer that must not wait for its (10 s) timeout: loose
 * enough for valgrind on a loaded machine. */
#define FAST_MS 2500

struct answer {
    int calls;
    enum l2_status status;
    char value[4096];
    size_t len;
    long long at_ms;
};

static struct {
    struct harness h;
    struct event_base *base;
    struct config *config;
    struct l2 *l2;

    struct answer answers[MAX_ANSWERS];
    int answered; /* done calls in total */
    bool in_l2_get; /* set around l2_get(): done must never run inside it */

    /* re-entrancy tests */
    int chain_left;              /* done sends another GET this many times */
    bool destroy_from_done;      /* done calls l2_destroy() */
} t;

/* --- config ------------------------------------------------------------- */

/* Loads a config whose redis section is `redis: {unix: SOCKET, l2: true,
 * EXTRA}` with fast reconnects. extra may be "". */
static struct config *load_config(const char *extra)
{
    char yaml[2048];
    snprintf(yaml, sizeof(yaml),
             "redis:\n"
             "  unix: \"%s\"\n"
             "  l2: true\n"
             "  connect_timeout: 300ms\n"
             "  reconnect_min: 20ms\n"
             "  reconnect_max: 200ms\n"
             "%s",
             t.h.redis_socket, extra);
    char error[ERROR_MAX];
    struct config *config = config_load_buffer("test", yaml, strlen(yaml), error);
    ck_assert_msg(config != NULL, "config: %s", error);
    return config;
}

static void use_config(const char *extra)
{
    if (t.config != NULL)
        config_free(t.config);
    t.config = load_config(extra);
}

/* --- fixture and loop ----------------------------------------------------- */

static void setup(void)
{
    memset(&t, 0, sizeof(t));
    harness_init(&t.h);
    t.base = event_base_new();
    ck_assert_ptr_nonnull(t.base);
    use_config("");
}

static void teardown(void)
{
    l2_destroy(t.l2);
    t.l2 = NULL;
    event_base_free(t.base);
    config_free(t.config);
    harness_cleanup(&t.h);
}

static void start(void)
{
    char error[ERROR_MAX] = "";
    ck_assert_msg(l2_create(t.base, t.config, &t.l2, error) == 0, "l2_create: %s", error);
    ck_assert_ptr_nonnull(t.l2);
}

static bool is_ready(int unused)
{
    (void)unused;
    return l2_ready(t.l2);
}

static bool is_not_ready(int unused)
{
    (void)unused;
    return !l2_ready(t.l2);
}

static bool answered_at_least(int n)
{
    return t.answered >= n;
}

/* --- requests ------------------------------------------------------------- */

static void on_done(void *arg, enum l2_status status, const char *value, size_t len);

/* Sends GET key (binary-safe) answered into slot. */
static void get(int slot, const char *key, size_t key_len, uint64_t timeout_ms)
{
    ck_assert_int_lt(slot, MAX_ANSWERS);
    t.in_l2_get = true;
    l2_get(t.l2, key, key_len, timeout_ms, on_done, &t.answers[slot]);
    t.in_l2_get = false;
}

static void on_done(void *arg, enum l2_status status, const char *value, size_t len)
{
    struct answer *a = arg;
    ck_assert_msg(!t.in_l2_get, "done called from inside l2_get()");
    ck_assert(status == L2_FOUND || status == L2_MISSING || status == L2_FAILED);
    a->calls++;
    a->status = status;
    a->at_ms = harness_now_ms();
    if (status == L2_FOUND) {
        ck_assert_uint_le(len, sizeof(a->value));
        memcpy(a->value, value, len);
        a->len = len;
    }
    t.answered++;
    if (t.chain_left > 0) {
        t.chain_left--;
        int slot = (int)(a - t.answers) + 1;
        get(slot, "chained", 7, 2000);
    }
    if (t.destroy_from_done) {
        t.destroy_from_done = false;
        l2_destroy(t.l2);
        t.l2 = NULL;
    }
}

/* GET key through l2 and wait for the answer. */
static struct answer *get_wait(int slot, const char *key, size_t key_len, uint64_t timeout_ms)
{
    int before = t.answers[slot].calls;
    get(slot, key, key_len, timeout_ms);
    long long deadline = harness_now_ms() + (long long)timeout_ms + 5000;
    while (t.answers[slot].calls == before && harness_now_ms() < deadline)
        harness_pump_for(t.base, 5);
    ck_assert_int_eq(t.answers[slot].calls, before + 1);
    return &t.answers[slot];
}

static redisContext *redis(void)
{
    redisContext *c = harness_redis_connect(&t.h);
    ck_assert_ptr_nonnull(c);
    return c;
}

/* Runs a command on c and checks that it did not fail. */
static redisReply *command(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *reply = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert_ptr_nonnull(reply);
    ck_assert_msg(reply->type != REDIS_REPLY_ERROR, "redis: %s", reply->str);
    return reply;
}

static void redis_run(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *reply = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert_ptr_nonnull(reply);
    ck_assert_msg(reply->type != REDIS_REPLY_ERROR, "redis: %s", reply->str);
    freeReplyObject(reply);
}

static void expect_found(const struct answer *a, const char *value, size_t len)
{
    ck_assert_int_eq(a->status, L2_FOUND);
    ck_assert_uint_eq(a->len, len);
    ck_assert(memcmp(a->value, value, len) == 0);
}

/* --- tests -------------------------------------------------------------- */

START_TEST(test_disabled)
{
    config_free(t.config);
    char error[ERROR_MAX];
    const char *yaml = "redis: {l2: false}\n";
    t.config = config_load_buffer("test", yaml, strlen(yaml), error);
    ck_assert_ptr_nonnull(t.config);
    struct l2 *off = NULL;
    ck_assert_int_eq(l2_create(t.base, t.config, &off, error), 0);
    ck_assert_ptr_null(off);
    l2_destroy(NULL);
    ck_assert(!l2_ready(NULL));
}
END_TEST

START_TEST(test_get)
{
    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    redisContext *c = redis();
    static const char binary[] = "a\0b\r\n\xff\x01z";
    redis_run(c, "SET %s %b", "cache:acme:profile:1", binary, sizeof(binary) - 1);
    redis_run(c, "SET %b %s", "bin\0key", (size_t)7, "under a binary key");
    redis_run(c, "SET %s %s", "empty", "");
    redis_run(c, "RPUSH %s %s", "a-list", "x");
    static char big[3000];
    memset(big, 'v', sizeof(big));
    redis_run(c, "SET %s %b", "big", big, sizeof(big));

    start();
    ck_assert(!l2_ready(t.l2)); /* nothing happens before the loop runs */
    ck_assert(harness_pump_until(t.base, 5000, is_ready, 0));

    /* found, with the exact bytes */
    expect_found(get_wait(0, "cache:acme:profile:1", 20, 2000), binary, sizeof(binary) - 1);
    expect_found(get_wait(1, "bin\0key", 7, 2000), "under a binary key", 18);
    expect_found(get_wait(2, "empty", 5, 2000), "", 0);
    expect_found(get_wait(3, "big", 3, 2000), big, sizeof(big));
    /* the key is binary-safe: "bin" alone is another key */
    ck_assert_int_eq(get_wait(4, "bin", 3, 2000)->status, L2_MISSING);
    /* missing */
    ck_assert_int_eq(get_wait(5, "cache:acme:profile:2", 20, 2000)->status, L2_MISSING);
    /* wrong type: WRONGTYPE error reply */
    ck_assert_int_eq(get_wait(6, "a-list", 6, 2000)->status, L2_FAILED);
    ck_assert(l2_ready(t.l2)); /* an error reply is not a connection problem */

    /* many in flight at once, each answered once, in any order */
    for (int i = 10; i < 40; i++)
        get(i, i % 2 ? "big" : "nope", i % 2 ? 3 : 4, 2000);
    ck_assert(harness_pump_until(t.base, 5000, answered_at_least, 7 + 30));
    harness_pump_for(t.base, 50);
    for (int i = 10; i < 40; i++) {
        ck_assert_int_eq(t.answers[i].calls, 1);
        if (i % 2)
            expect_found(&t.answers[i], big, sizeof(big));
        else
            ck_assert_int_eq(t.answers[i].status, L2_MISSING);
    }
    ck_assert_int_eq(t.answered, 37);
    redisFree(c);
}
END_TEST

START_TEST(test_set)
{
    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    redisContext *c = redis();
    start();
    l2_set(t.l2, "early", 5, "x", 1, 60, false); /* not ready yet: skipped */
    ck_assert(harness_pump_until(t.base, 5000, is_ready, 0));

    static const char value[] = "{\"v\":1}\0tail";
    l2_set(t.l2, "k\0ey", 4, value, sizeof(value) - 1, 100, false);
    l2_set(t.l2, "forever", 7, "f", 1, 0, false);
    /* SET is fire and forget: the GET after it on the same connection sees it */
    expect_found(get_wait(0, "k\0ey", 4, 2000), value, sizeof(value) - 1);

    redisReply *r = command(c, "TTL %b", "k\0ey", (size_t)4);
    ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
    ck_assert_msg(r->integer > 90 && r->integer <= 100, "TTL %lld", r->integer);
    freeReplyObject(r);
    r = command(c, "GET %b", "k\0ey", (size_t)4);
    ck_assert_int_eq(r->type, REDIS_REPLY_STRING);
    ck_assert_uint_eq(r->len, sizeof(value) - 1);
    ck_assert(memcmp(r->str, value, r->len) == 0);
    freeReplyObject(r);

    /* ttl 0: no expiry */
    r = command(c, "TTL %s", "forever");
    ck_assert_int_eq(r->integer, -1);
    freeReplyObject(r);
    r = command(c, "EXISTS %s", "early");
    ck_assert_int_eq(r->integer, 0);
    freeReplyObject(r);

    /* a refused SET (wrong type is not an error for SET; a huge EX is) is
     * logged and changes nothing */
    l2_set(t.l2, "k\0ey", 4, "other", 5, UINT64_MAX / 2, false);
    expect_found(get_wait(1, "k\0ey", 4, 2000), value, sizeof(value) - 1);
    /* if_absent (NX): what is there stays; an absent key is written */
    l2_set(t.l2, "k\0ey", 4, "newer?", 6, 60, true);
    l2_set(t.l2, "absent", 6, "a", 1, 60, true);
    expect_found(get_wait(2, "k\0ey", 4, 2000), value, sizeof(value) - 1);
    expect_found(get_wait(3, "absent", 6, 2000), "a", 1);
    ck_assert(l2_ready(t.l2));
    redisFree(c);
}
END_TEST

START_TEST(test_db)
{
    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    redisContext *c = redis();
    redis_run(c, "SET %s %s", "k", "in db 0");
    redis_run(c, "SELECT 3");
    redis_run(c, "SET %s %s", "k", "in db 3");
    redis_run(c, "SET %s %s", "only3", "three");
    redis_run(c, "SELECT 0");

    use_config("  db: 3\n");
    start();
    ck_assert(harness_pump_until(t.base, 5000, is_ready, 0));
    expect_found(get_wait(0, "k", 1, 2000), "in db 3", 7);
    expect_found(get_wait(1, "only3", 5, 2000), "three", 5);
    l2_set(t.l2, "written", 7, "w", 1, 60, false);
    ck_assert_int_eq(get_wait(2, "written", 7, 2000)->status, L2_FOUND);
    redisReply *r = command(c, "EXISTS %s", "written");
    ck_assert_int_eq(r->integer, 0); /* not in db 0 */
    freeReplyObject(r);
    redis_run(c, "SELECT 3");
    r = command(c, "EXISTS %s", "written");
    ck_assert_int_eq(r->integer, 1);
    freeReplyObject(r);
    redis_run(c, "SELECT 0");

    /* a reload to db 0 reconnects and reads db 0 */
    use_config("");
    l2_reconfigure(t.l2, t.config);
    ck_assert(!l2_ready(t.l2)); /* the drop is pending: fills skip L2 at once */
    ck_assert(harness_pump_until(t.base, 5000, is_ready, 0));
    expect_found(get_wait(3, "k", 1, 2000), "in db 0", 7);
    ck_assert_int_eq(get_wait(4, "only3", 5, 2000)->status, L2_MISSING);

    /* a reload that changes nothing keeps the connection */
    l2_reconfigure(t.l2, t.config);
    ck_assert(l2_ready(t.l2));
    harness_pump_for(t.base, 50);
    ck_assert(l2_ready(t.l2));

    /* a db redis does not have: SELECT refused, never ready */
    use_config("  db: 999\n");
    l2_reconfigure(t.l2, t.config);
    harness_pump_for(t.base, 500);
    ck_assert(!l2_ready(t.l2));
    ck_assert_int_eq(get_wait(5, "k", 1, 2000)->status, L2_FAILED);
    redisFree(c);
}
END_TEST

START_TEST(test_auth)
{
    const char *const args[] = {"--requirepass", "s3cret pass", NULL};
    ck_assert_int_eq(harness_redis_start_args(&t.h, args), 0);
    redisContext *c = redis(); /* the harness AUTHs */
    redis_run(c, "SET %s %s", "k", "v");

    /* the right password, with db selection after AUTH */
    use_config("  password: \"s3cret pass\"\n  db: 2\n");
    redis_run(c, "SELECT 2");
    redis_run(c, "SET %s %s", "k", "v2");
    start();
    ck_assert(harness_pump_until(t.base, 5000, is_ready, 0));
    expect_found(get_wait(0, "k", 1, 2000), "v2", 2);
    l2_destroy(t.l2);
    t.l2 = NULL;

    /* with a username (AUTH user pass) */
    use_config("  username: default\n  password: \"s3cret pass\"\n");
    start();
    ck_assert(harness_pump_until(t.base, 5000, is_ready, 0));
    expect_found(get_wait(1, "k", 1, 2000), "v", 1);
    l2_destroy(t.l2);
    t.l2 = NULL;

    /* a wrong password: never ready, GETs fail at once */
    use_config("  password: wrong\n");
    start();
    harness_pump_for(t.base, 500);
    ck_assert(!l2_ready(t.l2));
    long long before = harness_now_ms();
    ck_assert_int_eq(get_wait(2, "k", 1, 10000)->status, L2_FAILED);
    ck_assert_int_lt(t.answers[2].at_ms - before, FAST_MS);

    /* and no password at all: the PING of the handshake gets NOAUTH */
    use_config("");
    l2_reconfigure(t.l2, t.config);
    harness_pump_for(t.base, 300);
    ck_assert(!l2_ready(t.l2));

    /* a reload with the right one connects */
    use_config("  password: \"s3cret pass\"\n");
    l2_reconfigure(t.l2, t.config);
    ck_assert(harness_pump_until(t.base, 5000, is_ready, 0));
    expect_found(get_wait(3, "k", 1, 2000), "v", 1);
    redisFree(c);
}
END_TEST

START_TEST(test_redis_down_at_start)
{
    start();
    /* not ready: answered L2_FAILED from the loop, not from inside l2_get() */
    long long before = harness_now_ms();
    get(0, "k", 1, 10000);
    ck_assert_int_eq(t.answers[0].calls, 0);
    ck_assert(harness_pump_until(t.base, 5000, answered_at_least, 1));
    ck_assert_int_eq(t.answers[0].status, L2_FAILED);
    ck_assert_int_lt(t.answers[0].at_ms - before, FAST_MS);
    harness_pump_for(t.base, 300); /* failed retries */
    ck_assert(!l2_ready(t.l2));
    before = harness_now_ms();
    ck_assert_int_eq(get_wait(1, "k", 1, 10000)->status, L2_FAILED);
    ck_assert_int_lt(t.answers[1].at_ms - before, FAST_MS);
    l2_set(t.l2, "k", 1, "v", 1, 10, false); /* skipped */

    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    ck_assert(harness_pump_until(t.base, 5000, is_ready, 0));
    ck_assert_int_eq(get_wait(2, "k", 1, 2000)->status, L2_MISSING);
    l2_set(t.l2, "k", 1, "v", 1, 10, false);
    expect_found(get_wait(3, "k", 1, 2000), "v", 1);
    ck_assert_int_eq(t.answered, 4);
}
END_TEST

/* A GET sent while the first connection is still being made waits for it
 * rather than failing at once: a daemon just started does not skip L2 for
 * its first misses. */
START_TEST(test_get_during_first_connect)
{
    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    redisContext *c = redis();
    redis_run(c, "SET %s %s", "k", "v");
    start();
    ck_assert(!l2_ready(t.l2));
    get(0, "k", 1, 5000);
    get(1, "nope", 4, 5000);
    ck_assert_int_eq(t.answers[0].calls, 0);
    ck_assert(harness_pump_until(t.base, 5000, answered_at_least, 2));
    expect_found(&t.answers[0], "v", 1);
    ck_assert_int_eq(t.answers[1].status, L2_MISSING);
    ck_assert(l2_ready(t.l2));

    /* Redis not answering at start: the GET waits only as long as that
     * first attempt (connect_timeout, 300 ms here), not its own 10 s. */
    l2_destroy(t.l2);
    t.l2 = NULL;
    ck_assert_int_eq(harness_redis_pause(&t.h), 0);
    start();
    long long before = harness_now_ms();
    get(2, "k", 1, 10000);
    ck_assert(harness_pump_until(t.base, 5000, answered_at_least, 3));
    ck_assert_int_eq(t.answers[2].status, L2_FAILED);
    ck_assert_int_lt(t.answers[2].at_ms - before, FAST_MS);
    ck_assert_int_eq(harness_redis_resume(&t.h), 0);
    ck_assert(harness_pump_until(t.base, 5000, is_ready, 0));
    expect_found(get_wait(3, "k", 1, 2000), "v", 1);
    redisFree(c);
}
END_TEST

START_TEST(test_paused_redis)
{
    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    redisContext *c = redis();
    redis_run(c, "SET %s %s", "k", "v");
    start();
    ck_assert(harness_pump_until(t.base, 5000, is_ready, 0));

    ck_assert_int_eq(harness_redis_pause(&t.h), 0);
    long long before = harness_now_ms();
    get(0, "k", 1, 200);
    get(1, "k", 1, 10000);
    ck_assert(harness_pump_until(t.base, 5000, answered_at_least, 1));
    ck_assert_int_eq(t.answers[0].calls, 1);
    ck_assert_int_eq(t.answers[0].status, L2_FAILED);
    long long took = t.answers[0].at_ms - before;
    ck_assert_msg(took >= 190 && took < 200 + FAST_MS, "answered after %lld ms", took);
    /* nothing arrived since the GET was sent: the connection is dropped, and
     * the other GET answered at once rather than after its 5 s */
    ck_assert(harness_pump_until(t.base, 5000, answered_at_least, 2));
    ck_assert_int_eq(t.answers[1].status, L2_FAILED);
    ck_assert_int_lt(t.answers[1].at_ms - before, 200 + FAST_MS);
    ck_assert(!l2_ready(t.l2));
    /* while redis stays paused, attempts time out in the PING; fills skip L2 */
    harness_pump_for(t.base, 800);
    ck_assert(!l2_ready(t.l2));
    before = harness_now_ms();
    ck_assert_int_eq(get_wait(2, "k", 1, 10000)->status, L2_FAILED);
    ck_assert_int_lt(t.answers[2].at_ms - before, FAST_MS);

    ck_assert_int_eq(harness_redis_resume(&t.h), 0);
    ck_assert(harness_pump_until(t.base, 5000, is_ready, 0));
    expect_found(get_wait(3, "k", 1, 2000), "v", 1);
    harness_pump_for(t.base, 100);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(t.answers[i].calls, 1);

    /* a short pause within the timeout: nothing fails */
    ck_assert_int_eq(harness_redis_pause(&t.h), 0);
    get(4, "k", 1, 3000);
    harness_pump_for(t.base, 200);
    ck_assert_int_eq(t.answers[4].calls, 0);
    ck_assert_int_eq(harness_redis_resume(&t.h), 0);
    ck_assert(harness_pump_until(t.base, 3000, answered_at_least, 5));
    expect_found(&t.answers[4], "v", 1);
    ck_assert(l2_ready(t.l2));
    redisFree(c);
}
END_TEST

START_TEST(test_late_reply_after_timeout)
{
    /* A GET timeout too short to say anything about the connection: the
     * reply that comes after it is ignored and the connection stays. */
    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    redisContext *c = redis();
    redis_run(c, "SET %s %s", "k", "v");
    start();
    ck_assert(harness_pump_until(t.base, 5000, is_ready, 0));
    ck_assert_int_eq(harness_redis_pause(&t.h), 0);
    get(0, "k", 1, 50);
    get(1, "k", 1, 5000);
    ck_assert(harness_pump_until(t.base, 3000, answered_at_least, 1));
    ck_assert_int_eq(t.answers[0].status, L2_FAILED);
    harness_pump_for(t.base, 100);
    ck_assert(l2_ready(t.l2));
    ck_assert_int_eq(t.answers[1].calls, 0);
    ck_assert_int_eq(harness_redis_resume(&t.h), 0);
    ck_assert(harness_pump_until(t.base, 3000, answered_at_least, 2));
    expect_found(&t.answers[1], "v", 1);
    harness_pump_for(t.base, 50);
    ck_assert_int_eq(t.answers[0].calls, 1); /* its late reply did not answer again */
    ck_assert_int_eq(t.answers[0].status, L2_FAILED);
    ck_assert(l2_ready(t.l2));
    expect_found(get_wait(2, "k", 1, 2000), "v", 1);

    /* a timeout of 0 is answered from the loop, once */
    get(3, "k", 1, 0);
    ck_assert_int_eq(t.answers[3].calls, 0);
    ck_assert(harness_pump_until(t.base, 3000, answered_at_least, 4));
    harness_pump_for(t.base, 50);
    ck_assert_int_eq(t.answers[3].calls, 1);
    ck_assert(l2_ready(t.l2));
    redisFree(c);
}
END_TEST

START_TEST(test_kill_mid_flight)
{
    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    start();
    ck_assert(harness_pump_until(t.base, 5000, is_ready, 0));

    /* paused so that the GETs are surely in flight when redis dies */
    ck_assert_int_eq(harness_redis_pause(&t.h), 0);
    long long before = harness_now_ms();
    for (int i = 0; i < 5; i++)
        get(i, "k", 1, 10000);
    harness_pump_for(t.base, 50);
    ck_assert_int_eq(t.answered, 0);
    ck_assert_int_eq(harness_redis_stop(&t.h, SIGKILL), 0);
    ck_assert(harness_pump_until(t.base, 5000, answered_at_least, 5));
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(t.answers[i].calls, 1);
        ck_assert_int_eq(t.answers[i].status, L2_FAILED);
        ck_assert_int_lt(t.answers[i].at_ms - before, 5000);
    }
    ck_assert(!l2_ready(t.l2));
    harness_pump_for(t.base, 300);
    ck_assert_int_eq(get_wait(5, "k", 1, 5000)->status, L2_FAILED);

    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    ck_assert(harness_pump_until(t.base, 5000, is_ready, 0));
    l2_set(t.l2, "k", 1, "back", 4, 60, false);
    expect_found(get_wait(6, "k", 1, 2000), "back", 4);

    /* and once more, killed while idle */
    ck_assert_int_eq(harness_redis_stop(&t.h, SIGKILL), 0);
    ck_assert(harness_pump_until(t.base, 5000, is_not_ready, 0));
    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    ck_assert(harness_pump_until(t.base, 5000, is_ready, 0));
    ck_assert_int_eq(get_wait(7, "k", 1, 2000)->status, L2_MISSING); /* no persistence */
    ck_assert_int_eq(t.answered, 8);
}
END_TEST

START_TEST(test_destroy_with_pending)
{
    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    start();
    ck_assert(harness_pump_until(t.base, 5000, is_ready, 0));
    ck_assert_int_eq(harness_redis_pause(&t.h), 0);
    for (int i = 0; i < 4; i++)
        get(i, "k", 1, 10000);
    harness_pump_for(t.base, 30);
    ck_assert_int_eq(t.answered, 0);
    l2_destroy(t.l2);
    t.l2 = NULL;
    ck_assert_int_eq(t.answered, 4); /* before it returned */
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(t.answers[i].calls, 1);
        ck_assert_int_eq(t.answers[i].status, L2_FAILED);
    }
    ck_assert_int_eq(harness_redis_resume(&t.h), 0);
    harness_pump_for(t.base, 100); /* nothing of it is left on the loop */
    ck_assert_int_eq(t.answered, 4);

    /* with GETs waiting for their deferred failure (not ready), and one
     * timed-out GET whose reply hiredis still owes */
    use_config("");
    start();
    get(4, "k", 1, 1000);
    get(5, "k", 1, 1000);
    l2_destroy(t.l2);
    t.l2 = NULL;
    ck_assert_int_eq(t.answered, 6);
    ck_assert_int_eq(t.answers[4].status, L2_FAILED);
    ck_assert_int_eq(t.answers[5].status, L2_FAILED);

    start();
    ck_assert(harness_pump_until(t.base, 5000, is_ready, 0));
    ck_assert_int_eq(harness_redis_pause(&t.h), 0);
    get(6, "k", 1, 50);
    get(7, "k", 1, 10000);
    ck_assert(harness_pump_until(t.base, 2000, answered_at_least, 7));
    l2_destroy(t.l2);
    t.l2 = NULL;
    ck_assert_int_eq(t.answered, 8);
    ck_assert_int_eq(harness_redis_resume(&t.h), 0);
    harness_pump_for(t.base, 100);
    ck_assert_int_eq(t.answered, 8);

    /* destroyed before the loop ever ran */
    start();
    l2_destroy(t.l2);
    t.l2 = NULL;
    harness_pump_for(t.base, 50);
}
END_TEST

START_TEST(test_reentrant_done)
{
    ck_assert_int_eq(harness_redis_start(&t.h), 0);
    redisContext *c = redis();
    redis_run(c, "SET %s %s", "chained", "c");
    start();
    ck_assert(harness_pump_until(t.base, 5000, is_ready, 0));

    /* done sends the next GET from inside a reply callback */
    t.chain_left = 3;
    get(0, "chained", 7, 2000);
    ck_assert(harness_pump_until(t.base, 5000, answered_at_least, 4));
    for (int i = 0; i < 4; i++)
        expect_found(&t.answers[i], "c", 1);

    /* done destroys l2 from inside a reply callback, with other GETs pending */
    t.destroy_from_done = true;
    get(10, "chained", 7, 2000);
    get(11, "chained", 7, 2000);
    get(12, "nothing", 7, 2000);
    ck_assert(harness_pump_until(t.base, 5000, answered_at_least, 7));
    ck_assert_ptr_null(t.l2);
    expect_found(&t.answers[10], "c", 1);
    ck_assert_int_eq(t.answers[11].calls, 1);
    ck_assert_int_eq(t.answers[12].calls, 1);
    harness_pump_for(t.base, 100);
    ck_assert_int_eq(t.answered, 7);

    /* done destroys l2 from inside a timeout */
    start();
    ck_assert(harness_pump_until(t.base, 5000, is_ready, 0));
    ck_assert_int_eq(harness_redis_pause(&t.h), 0);
    t.destroy_from_done = true;
    get(20, "chained", 7, 50);
    get(21, "chained", 7, 5000);
    ck_assert(harness_pump_until(t.base, 3000, answered_at_least, 9));
    ck_assert_ptr_null(t.l2);
    ck_assert_int_eq(t.answers[20].status, L2_FAILED);
    ck_assert_int_eq(t.answers[21].status, L2_FAILED);
    ck_assert_int_eq(harness_redis_resume(&t.h), 0);
    harness_pump_for(t.base, 100);
    ck_assert_int_eq(t.answered, 9);

    /* done destroys l2 while a connection loss answers the GETs */
    start();
    ck_assert(harness_pump_until(t.base, 5000, is_ready, 0));
    ck_assert_int_eq(harness_redis_pause(&t.h), 0);
    t.destroy_from_done = true;
    get(30, "chained", 7, 5000);
    get(31, "chained", 7, 5000);
    harness_pump_for(t.base, 30);
    ck_assert_int_eq(harness_redis_stop(&t.h, SIGKILL), 0);
    ck_assert(harness_pump_until(t.base, 3000, answered_at_least, 11));
    ck_assert_ptr_null(t.l2);
    harness_pump_for(t.base, 100);
    ck_assert_int_eq(t.answered, 11);
    redisFree(c);
}
END_TEST

static Suite *l2_suite(void)
{
    Suite *s = suite_create("l2");
    TCase *tc = tcase_create("redis");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_disabled);
    tcase_add_test(tc, test_get);
    tcase_add_test(tc, test_set);
    tcase_add_test(tc, test_db);
    tcase_add_test(tc, test_auth);
    tcase_add_test(tc, test_redis_down_at_start);
    tcase_add_test(tc, test_get_during_first_connect);
    tcase_add_test(tc, test_paused_redis);
    tcase_add_test(tc, test_late_reply_after_timeout);
    tcase_add_test(tc, test_kill_mid_flight);
    tcase_add_test(tc, test_destroy_with_pending);
    tcase_add_test(tc, test_reentrant_done);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    log_init();
    SRunner *runner = srunner_create(l2_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
