/* test_daemon.c - end to end: a real redis-server, the real tenantcached
 * binary, messages published with hiredis, queries over the daemon's socket.
 * Covers docs/reference.md §3 (messages), the basic commands of §4, the request framing
 * and the Redis restart of §7. */
#include <check.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

#define CHANNEL "tenantcached:invalidate"
#define WAIT_MS 3000

static struct harness h;
static redisContext *client;

static void setup(void)
{
    harness_init(&h);
    ck_assert_int_eq(harness_redis_start(&h), 0);
    ck_assert_int_eq(harness_daemon_start(&h, NULL), 0);
    ck_assert(harness_wait_subscribed(&h, WAIT_MS));
    client = harness_connect(&h);
    ck_assert_ptr_nonnull(client);
}

static void teardown(void)
{
    if (client != NULL)
        redisFree(client);
    client = NULL;
    harness_cleanup(&h);
}

static redisReply *command(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    redisReply *reply = redisvCommand(client, fmt, args);
    va_end(args);
    ck_assert_ptr_nonnull(reply);
    return reply;
}

static void expect_bulk(const char *expected, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    redisReply *reply = redisvCommand(client, fmt, args);
    va_end(args);
    ck_assert_ptr_nonnull(reply);
    if (expected == NULL) {
        ck_assert_msg(reply->type == REDIS_REPLY_NIL, "expected nil, got type %d '%s'", reply->type,
                      reply->str ? reply->str : "");
    } else {
        ck_assert_msg(reply->type == REDIS_REPLY_STRING, "expected '%s', got type %d '%s'",
                      expected, reply->type, reply->str ? reply->str : "");
        ck_assert_str_eq(reply->str, expected);
    }
    freeReplyObject(reply);
}

static void expect_error(const char *expected, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    redisReply *reply = redisvCommand(client, fmt, args);
    va_end(args);
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(reply->type, REDIS_REPLY_ERROR);
    ck_assert_str_eq(reply->str, expected);
    freeReplyObject(reply);
}

/* ---- the tests ---- */

START_TEST(test_set_then_get)
{
    harness_publish_ok(&h, CHANNEL,
                       "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"admin\","
                       "\"value\":[\"crm.*\", \"users.read\"]}");
    ck_assert(harness_wait_reply(client, WAIT_MS, "[\"crm.*\",\"users.read\"]", "GET acme role admin"));
    /* The same entry by its key_format name, and as MGET in both forms. */
    expect_bulk("[\"crm.*\",\"users.read\"]", "GET cache:acme:role:admin");
    redisReply *reply = command("MGET acme role admin nobody");
    ck_assert_int_eq(reply->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(reply->elements, 2);
    ck_assert_str_eq(reply->element[0]->str, "[\"crm.*\",\"users.read\"]");
    ck_assert_int_eq(reply->element[1]->type, REDIS_REPLY_NIL);
    freeReplyObject(reply);
    reply = command("MGET cache:acme:role:admin cache:acme:role:none not-a-name");
    ck_assert_int_eq(reply->elements, 3);
    ck_assert_str_eq(reply->element[0]->str, "[\"crm.*\",\"users.read\"]");
    ck_assert_int_eq(reply->element[1]->type, REDIS_REPLY_NIL);
    ck_assert_int_eq(reply->element[2]->type, REDIS_REPLY_NIL);
    freeReplyObject(reply);
    /* A tenant named a:b can never reach tenant a's entries. */
    expect_bulk(NULL, "GET cache:acme:role:admin:x");
    ck_assert_int_eq(harness_info_int(client, "messages_applied"), 1);
}
END_TEST

START_TEST(test_versions)
{
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"op\",\"value\":2,\"version\":5}");
    ck_assert(harness_wait_reply(client, WAIT_MS, "2", "GET acme credit op"));
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"op\",\"value\":3,\"version\":4}");
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"op\",\"value\":3,\"version\":5}");
    harness_sync_stream(&h, client, CHANNEL, "config", "1", WAIT_MS);
    expect_bulk("2", "GET acme credit op");
    ck_assert_int_eq(harness_info_int(client, "messages_stale"), 2);
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"op\",\"value\":{\"cost\":7.25},\"version\":6}");
    ck_assert(harness_wait_reply(client, WAIT_MS, "{\"cost\":7.25}", "GET acme credit op"));
    expect_bulk("7.25", "CREDIT acme op");
    /* Without a version a message always applies. */
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"op\",\"value\":1}");
    ck_assert(harness_wait_reply(client, WAIT_MS, "1", "GET acme credit op"));
}
END_TEST

START_TEST(test_delete_keeps_tombstone)
{
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u1\",\"value\":\"active\",\"version\":3}");
    ck_assert(harness_wait_reply(client, WAIT_MS, "active", "STATUS acme u1"));
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"del\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u1\",\"version\":4}");
    ck_assert(harness_wait_reply(client, WAIT_MS, NULL, "GET acme user u1"));
    /* An older set arriving late cannot bring it back. */
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u1\",\"value\":\"active\",\"version\":3}");
    harness_sync_stream(&h, client, CHANNEL, "config", "1", WAIT_MS);
    expect_bulk(NULL, "GET acme user u1");
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u1\",\"value\":\"disabled\",\"version\":5}");
    ck_assert(harness_wait_reply(client, WAIT_MS, "disabled", "STATUS acme u1"));
}
END_TEST

START_TEST(test_invalidate_and_flush)
{
    const char *sets[] = {
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"r1\",\"value\":[\"a.b\"]}",
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"r2\",\"value\":[\"a.c\"]}",
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"c1\",\"value\":1}",
        "{\"op\":\"set\",\"tenant\":\"globex\",\"kind\":\"credit\",\"key\":\"c1\",\"value\":2}",
        "{\"op\":\"set\",\"tenant\":\"initech\",\"kind\":\"credit\",\"key\":\"c1\",\"value\":3}",
    };
    for (size_t i = 0; i < sizeof(sets) / sizeof(sets[0]); i++)
        harness_publish_ok(&h, CHANNEL, sets[i]);
    harness_sync_stream(&h, client, CHANNEL, "config", "1", WAIT_MS);
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"invalidate\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"r1\"}");
    ck_assert(harness_wait_reply(client, WAIT_MS, NULL, "GET acme role r1"));
    expect_bulk("[\"a.c\"]", "GET acme role r2");
    harness_publish_ok(&h, CHANNEL, "{\"op\":\"flush\",\"tenant\":\"acme\",\"kind\":\"role\"}");
    ck_assert(harness_wait_reply(client, WAIT_MS, NULL, "GET acme role r2"));
    expect_bulk("1", "GET acme credit c1");
    harness_publish_ok(&h, CHANNEL, "{\"op\":\"flush\",\"tenant\":\"acme\"}");
    ck_assert(harness_wait_reply(client, WAIT_MS, NULL, "GET acme credit c1"));
    expect_bulk("2", "GET globex credit c1");
    harness_publish_ok(&h, CHANNEL, "{\"op\":\"flush\",\"tenant\":\"*\"}");
    ck_assert(harness_wait_reply(client, WAIT_MS, NULL, "GET globex credit c1"));
    expect_bulk(NULL, "GET initech credit c1");
}
END_TEST

START_TEST(test_batch_and_invalid_messages)
{
    harness_publish_ok(
        &h, CHANNEL,
        "[{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"a\",\"value\":1},"
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"b\",\"value\":2},"
        "{\"op\":\"del\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"a\"}]");
    /* Its operations apply in order, but a reader may look between two of
     * them: wait until the whole batch is applied. */
    harness_sync_stream(&h, client, CHANNEL, "config", "0", WAIT_MS);
    expect_bulk("2", "GET acme credit b");
    expect_bulk(NULL, "GET acme credit a");
    /* A batch whose last element is bad applies nothing. */
    harness_publish_ok(
        &h, CHANNEL,
        "[{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"b\",\"value\":9},"
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"c\",\"value\":\"x\"}]");
    harness_publish_ok(&h, CHANNEL, "not json at all");
    harness_publish_ok(&h, CHANNEL,
                       "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"b\"}");
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"a:b\",\"kind\":\"credit\",\"key\":\"b\",\"value\":1}");
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"b\",\"value\":1,\"version\":-1}");
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"nosuchkind\",\"key\":\"b\",\"value\":1}");
    harness_sync_stream(&h, client, CHANNEL, "config", "1", WAIT_MS);
    expect_bulk("2", "GET acme credit b");
    expect_bulk(NULL, "GET acme credit c");
    ck_assert_int_eq(harness_info_int(client, "messages_invalid"), 5);
    ck_assert_int_eq(harness_info_int(client, "messages_unknown_kind"), 1);
    ck_assert(harness_daemon_alive(&h));
}
END_TEST

START_TEST(test_errors)
{
    expect_error("ERR unknown command 'NOPE'", "NOPE a b");
    expect_error("ERR wrong number of arguments for 'GET'", "GET a b");
    expect_error("ERR invalid tenant", "GET a:b credit x");
    expect_error("ERR unknown kind 'nosuch'", "GET acme nosuch x");
    redisReply *reply = command("PING");
    ck_assert_str_eq(reply->str, "PONG");
    freeReplyObject(reply);
    expect_bulk("hello", "PING hello");
    reply = command("COMMAND DOCS");
    ck_assert_int_eq(reply->type, REDIS_REPLY_ARRAY);
    ck_assert_int_gt(reply->elements, 0); /* name, docs for each command (test_clients.c) */
    ck_assert_int_eq(reply->elements % 2, 0);
    freeReplyObject(reply);
    reply = command("INFO");
    ck_assert_int_eq(reply->type, REDIS_REPLY_STRING);
    ck_assert_ptr_nonnull(strstr(reply->str, "# Server\r\n"));
    ck_assert_ptr_nonnull(strstr(reply->str, "# Memory\r\n"));
    ck_assert_ptr_nonnull(strstr(reply->str, "used_memory_rss:"));
    ck_assert_ptr_nonnull(strstr(reply->str, "redis_connected:1\r\n"));
    freeReplyObject(reply);
    reply = command("INFO stats");
    ck_assert_ptr_null(strstr(reply->str, "# Server"));
    ck_assert_ptr_nonnull(strstr(reply->str, "evictions_reference:"));
    freeReplyObject(reply);
}
END_TEST

START_TEST(test_pipelining_and_inline)
{
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"p\",\"value\":4}");
    ck_assert(harness_wait_reply(client, WAIT_MS, "4", "GET acme credit p"));
    int fd = harness_raw_open(&h);
    const char *requests = "*1\r\n$4\r\nPING\r\n*4\r\n$3\r\nGET\r\n$4\r\nacme\r\n$6\r\ncredit\r\n"
                           "$1\r\np\r\nPING inline\r\n*0\r\n*-1\r\n*2\r\n$4\r\nPING\r\n$1\r\nz\r\n";
    harness_raw_send(fd, requests, strlen(requests));
    const char *expected = "+PONG\r\n$1\r\n4\r\n$6\r\ninline\r\n$1\r\nz\r\n";
    char buffer[256];
    bool closed;
    harness_raw_read(fd, buffer, strlen(expected), WAIT_MS, &closed);
    ck_assert_str_eq(buffer, expected);
    /* One request delivered a byte at a time. */
    const char *slow = "*4\r\n$3\r\nGET\r\n$4\r\nacme\r\n$6\r\ncredit\r\n$1\r\np\r\n";
    for (size_t i = 0; slow[i] != '\0'; i++) {
        harness_raw_send(fd, slow + i, 1);
        harness_sleep_ms(2);
    }
    harness_raw_read(fd, buffer, 7, WAIT_MS, &closed);
    ck_assert_str_eq(buffer, "$1\r\n4\r\n");
    close(fd);
}
END_TEST

START_TEST(test_protocol_errors_isolated)
{
    int bad = harness_raw_open(&h);
    int other = harness_raw_open(&h);
    /* A declared length over max_request_bytes is refused at once, before
     * any body arrives. */
    harness_raw_send(bad, "*2\r\n$2000000000\r\n", 17);
    char buffer[256];
    bool closed;
    size_t got = harness_raw_read(bad, buffer, sizeof(buffer) - 1, WAIT_MS, &closed);
    ck_assert_uint_gt(got, 0);
    ck_assert_msg(strncmp(buffer, "-ERR Protocol error: ", 21) == 0, "got '%s'", buffer);
    ck_assert(closed || harness_raw_read(bad, buffer, 1, WAIT_MS, &closed) == 0);
    ck_assert(closed);
    close(bad);
    int worse = harness_raw_open(&h);
    harness_raw_send(worse, "*2000000000\r\n", 13);
    harness_raw_read(worse, buffer, sizeof(buffer) - 1, WAIT_MS, &closed);
    ck_assert_msg(strncmp(buffer, "-ERR Protocol error: ", 21) == 0, "got '%s'", buffer);
    close(worse);
    harness_raw_send(other, "PING\r\n", 6);
    harness_raw_read(other, buffer, 7, WAIT_MS, &closed);
    ck_assert_str_eq(buffer, "+PONG\r\n");
    close(other);
    ck_assert_int_eq(harness_info_int(client, "protocol_errors"), 2);
}
END_TEST

START_TEST(test_quit)
{
    int fd = harness_raw_open(&h);
    harness_raw_send(fd, "PING\r\nQUIT\r\nPING\r\n", 18);
    char buffer[64];
    bool closed;
    harness_raw_read(fd, buffer, 32, WAIT_MS, &closed);
    ck_assert_str_eq(buffer, "+PONG\r\n+OK\r\n");
    ck_assert(closed);
    close(fd);
}
END_TEST

START_TEST(test_redis_restart)
{
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"r\",\"value\":1}");
    ck_assert(harness_wait_reply(client, WAIT_MS, "1", "GET acme credit r"));
    ck_assert_int_eq(harness_redis_stop(&h, SIGKILL), 0);
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 0));
    /* The daemon keeps answering while Redis is away (within max_stale). */
    redisReply *reply = command("PING");
    ck_assert_str_eq(reply->str, "PONG");
    freeReplyObject(reply);
    ck_assert_int_eq(harness_redis_start(&h), 0);
    ck_assert(harness_wait_subscribed(&h, 5000));
    ck_assert(harness_wait_info(client, 5000, "redis_connected", 1));
    ck_assert_int_eq(harness_info_int(client, "redis_reconnects"), 1);
    /* on_reconnect: flush (the default) dropped what may have gone stale. */
    expect_bulk(NULL, "GET acme credit r");
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"r\",\"value\":2}");
    ck_assert(harness_wait_reply(client, WAIT_MS, "2", "GET acme credit r"));
}
END_TEST

START_TEST(test_config_check)
{
    char out[2048];
    const char *good[] = {"--check", "-c", "conf/tenantcached.yaml", NULL};
    ck_assert_int_eq(harness_run_binary(&h, good, out, sizeof(out)), 0);
    char path[256];
    snprintf(path, sizeof(path), "%s/bad.yaml", h.dir);
    FILE *file = fopen(path, "w");
    ck_assert_ptr_nonnull(file);
    fputs("log_level: info\nmemory:\n  max_byte: 64mb\n", file);
    fclose(file);
    const char *bad[] = {"--check", "-c", path, NULL};
    ck_assert_int_eq(harness_run_binary(&h, bad, out, sizeof(out)), 1);
    char expected[300];
    snprintf(expected, sizeof(expected), "%s:3:3: ", path);
    ck_assert_msg(strstr(out, expected) != NULL, "got '%s'", out);
    ck_assert_msg(strstr(out, "max_byte") != NULL, "got '%s'", out);
}
END_TEST

/* docs/reference.md §2 applications, §3 patterns and §4 `GET name` with an operator's
 * key_format, through the real daemon (its own config, so no fixture). */
START_TEST(test_application_patterns_key_format)
{
    harness_init(&h);
    ck_assert_int_eq(harness_redis_start(&h), 0);
    ck_assert_int_eq(harness_daemon_start(&h,
                                          "log_level: debug\n"
                                          "application: finance\n"
                                          "listen:\n"
                                          "  socket: \"@DAEMON_SOCKET@\"\n"
                                          "redis:\n"
                                          "  unix: \"@REDIS_SOCKET@\"\n"
                                          "  channels: []\n"
                                          "  patterns: [\"inval:*\"]\n"
                                          "  key_format: \"tc/{tenant}/{kind}/{key}\"\n"),
                     0);
    ck_assert(harness_wait_subscribed(&h, WAIT_MS));
    client = harness_connect(&h);
    ck_assert_ptr_nonnull(client);
    /* finance caches credit and role only: a user message is filtered. */
    ck_assert_int_ge(harness_publish(&h, "inval:eu", "{\"op\":\"set\",\"tenant\":\"acme\","
                                                    "\"kind\":\"user\",\"key\":\"u1\",\"value\":\"active\"}"),
                     1);
    ck_assert_int_ge(harness_publish(&h, "inval:us", "{\"op\":\"set\",\"tenant\":\"acme\","
                                                    "\"kind\":\"credit\",\"key\":\"a:b\",\"value\":2}"),
                     1);
    ck_assert(harness_wait_reply(client, WAIT_MS, "2", "GET acme credit a:b"));
    ck_assert_int_eq(harness_info_int(client, "messages_filtered"), 1);
    expect_bulk(NULL, "STATUS acme u1");
    /* The name form follows key_format; the key may hold the separator. */
    expect_bulk("2", "GET tc/acme/credit/a:b");
    expect_bulk(NULL, "GET cache:acme:credit:a:b");
    redisReply *reply = command("MGET tc/acme/credit/a:b tc/acme/credit/none");
    ck_assert_int_eq(reply->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(reply->elements, 2);
    ck_assert_str_eq(reply->element[0]->str, "2");
    ck_assert_int_eq(reply->element[1]->type, REDIS_REPLY_NIL);
    freeReplyObject(reply);
    redisFree(client);
    client = NULL;
    harness_cleanup(&h);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("daemon");
    TCase *stream = tcase_create("stream");
    tcase_add_checked_fixture(stream, setup, teardown);
    tcase_set_timeout(stream, 60);
    tcase_add_test(stream, test_set_then_get);
    tcase_add_test(stream, test_versions);
    tcase_add_test(stream, test_delete_keeps_tombstone);
    tcase_add_test(stream, test_invalidate_and_flush);
    tcase_add_test(stream, test_batch_and_invalid_messages);
    tcase_add_test(stream, test_errors);
    tcase_add_test(stream, test_pipelining_and_inline);
    tcase_add_test(stream, test_protocol_errors_isolated);
    tcase_add_test(stream, test_quit);
    tcase_add_test(stream, test_redis_restart);
    tcase_add_test(stream, test_config_check);
    suite_add_tcase(suite, stream);
    TCase *configured = tcase_create("configured");
    tcase_set_timeout(configured, 60);
    tcase_add_test(configured, test_application_patterns_key_format);
    suite_add_tcase(suite, configured);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
