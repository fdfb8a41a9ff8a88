/* test_hostile.c - a catalogue of hostile input, on
 * the socket and on the channel, against the real tenantcached binary and a
 * real redis-server. Each input gets its documented answer (an error reply, a
 * protocol error and a closed connection, a rejected and counted message)
 * and, after each, the daemon is shown to go on serving: PING on a connection
 * opened before (the witness) and on a new one.
 *
 * Each test gets its own redis-server and daemon (checked fixture); the
 * daemon is started by the test itself, with the config it needs. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

#define CHANNEL "tenantcached:invalidate"
#define WAIT_MS 5000

static struct harness h;
static redisContext *client;
static int witness = -1;

/* ---- configs ---- */

/* The private sockets, max_clients, and `listen_extra` (more keys under
 * listen:, indented by two spaces; may be ""). The daemon also subscribes to
 * the pattern hostile:* (channel names chosen by a peer). */
static const char *config_text(unsigned max_clients, const char *listen_extra)
{
    static char text[4096];
    int n = snprintf(text, sizeof(text),
                     "log_level: debug\n"
                     "threads: 2\n"
                     "shards: 4\n"
                     "listen:\n"
                     "  socket: \"@DAEMON_SOCKET@\"\n"
                     "  max_clients: %u\n"
                     "%s"
                     "redis:\n"
                     "  unix: \"@REDIS_SOCKET@\"\n"
                     "  channels: [tenantcached:invalidate]\n"
                     "  patterns: [\"hostile:*\"]\n"
                     "  connect_timeout: 500ms\n"
                     "  reconnect_min: 50ms\n"
                     "  reconnect_max: 500ms\n"
                     "memory:\n"
                     "  max_bytes: 64mb\n"
                     "  tenant_max_bytes: 16mb\n"
                     "  max_tenants: 1000\n",
                     max_clients, listen_extra);
    ck_assert(n > 0 && (size_t)n < sizeof(text));
    return text;
}

static void setup(void)
{
    harness_init(&h);
    ck_assert_int_eq(harness_redis_start(&h), 0);
}

/* The daemon must stop cleanly after whatever a test did to it. */
static void teardown(void)
{
    if (client != NULL)
        redisFree(client);
    client = NULL;
    if (witness >= 0)
        close(witness);
    witness = -1;
    harness_finish(&h);
}

/* ---- raw sockets, for what a client library would never send ---- */

/* Like raw_send, for a client the daemon may drop meanwhile (it stopped
 * reading its replies): false once the daemon closed the connection. */
static bool raw_send_lenient(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
            return false;
        ck_assert_msg(n > 0, "write: %s", strerror(errno));
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static void raw_send_text(int fd, const char *text)
{
    harness_raw_send(fd, text, strlen(text));
}

/* True once the peer closes within timeout_ms (whatever it sends first). */
static bool raw_closed_within(int fd, int timeout_ms)
{
    char buffer[4096];
    long long deadline = harness_now_ms() + timeout_ms;
    while (harness_now_ms() < deadline) {
        bool closed;
        harness_raw_read(fd, buffer, sizeof(buffer) - 1, (int)(deadline - harness_now_ms()), &closed);
        if (closed)
            return true;
    }
    return false;
}

/* Sends request on a new connection and expects exactly `expected`, then
 * (when must_close) the connection closed by the daemon. */
static void raw_case(const void *request, size_t len, const char *expected, bool must_close)
{
    int fd = harness_raw_open(&h);
    harness_raw_send(fd, request, len);
    char buffer[512];
    bool closed;
    size_t want = strlen(expected);
    harness_raw_read(fd, buffer, want < sizeof(buffer) - 1 ? want : sizeof(buffer) - 1, WAIT_MS, &closed);
    ck_assert_msg(strcmp(buffer, expected) == 0, "request '%.40s' (%zu bytes): expected '%s', got '%s'",
                  (const char *)request, len, expected, buffer);
    if (must_close)
        ck_assert_msg(closed || raw_closed_within(fd, WAIT_MS),
                      "request '%.40s': the connection was not closed", (const char *)request);
    else
        ck_assert(!closed);
    close(fd);
}

static void raw_case_text(const char *request, const char *expected, bool must_close)
{
    raw_case(request, strlen(request), expected, must_close);
}

/* ---- replies over hiredis ---- */

/* The daemon runs and answers PING on the witness (opened at start). */
static void witness_ok(void)
{
    ck_assert_msg(harness_daemon_alive(&h), "the daemon died (status %d)", h.daemon_status);
    raw_send_text(witness, "PING\r\n");
    char buffer[16];
    bool closed;
    harness_raw_read(witness, buffer, 7, WAIT_MS, &closed);
    ck_assert_msg(strcmp(buffer, "+PONG\r\n") == 0, "witness PING: got '%s'%s", buffer,
                  closed ? " and EOF" : "");
}

/* The daemon runs, and answers PING on the witness and on a new connection. */
static void still_serving(void)
{
    witness_ok();
    redisContext *fresh = harness_connect(&h);
    ck_assert_ptr_nonnull(fresh);
    redisReply *reply = redisCommand(fresh, "PING");
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(reply->type, REDIS_REPLY_STATUS);
    ck_assert_str_eq(reply->str, "PONG");
    freeReplyObject(reply);
    redisFree(fresh);
}

/* Starts the daemon, waits for its subscription, connects `client` and the
 * witness. */
static void start_daemon(const char *listen_extra)
{
    client = harness_start_subscribed(&h, config_text(10000, listen_extra), WAIT_MS);
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    witness = harness_raw_open(&h);
    /* the harness's start-up probes may still be counted for a moment */
    ck_assert(harness_wait_info(client, WAIT_MS, "connected_clients", 2));
}

/* ---- publishing ---- */

/* PUBLISH a binary payload on any channel over a connection of our own. */
static void publish_bin(const char *channel, const void *payload, size_t len)
{
    redisContext *c = harness_redis_connect(&h);
    ck_assert_ptr_nonnull(c);
    redisReply *reply =
        redisCommand(c, "PUBLISH %b %b", channel, strlen(channel), payload, len);
    ck_assert_ptr_nonnull(reply);
    ck_assert_msg(reply->type == REDIS_REPLY_INTEGER && reply->integer >= 1,
                  "PUBLISH on '%s': %lld receivers", channel, reply->integer);
    freeReplyObject(reply);
    redisFree(c);
}

/* Publishes a message that must be rejected whole: messages_invalid grows by
 * one, nothing else changes, and the stream goes on. */
static void expect_rejected_bin(const char *channel, const void *payload, size_t len)
{
    long long invalid = harness_info_int(client, "messages_invalid");
    long long applied = harness_info_int(client, "messages_applied");
    long long entries = harness_info_int(client, "entries");
    publish_bin(channel, payload, len);
    harness_sync_stream(&h, client, CHANNEL, "config", "1", WAIT_MS);
    ck_assert_msg(harness_info_int(client, "messages_invalid") == invalid + 1,
                  "message '%.60s' (%zu bytes): messages_invalid %lld -> %lld",
                  (const char *)payload, len, invalid,
                  harness_info_int(client, "messages_invalid"));
    ck_assert_int_eq(harness_info_int(client, "messages_applied"),
                     applied + 1); /* the marker alone */
    ck_assert_int_eq(harness_info_int(client, "entries"), entries + 1);
    ck_assert_int_eq(harness_info_int(client, "redis_connected"), 1);
    still_serving();
}

static void expect_rejected(const char *payload)
{
    expect_rejected_bin(CHANNEL, payload, strlen(payload));
}

/* ---- NUL bytes ---- */

START_TEST(test_nul_bytes)
{
    start_daemon("");
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"a\",\"value\":1}");
    ck_assert(harness_wait_match(client, WAIT_MS, "1", "GET acme credit a"));

    /* in a key, a tenant, a kind, a permission, a command name */
    harness_expect_match(client, "-ERR invalid key", "GET acme credit %b", "a\0b", (size_t)3);
    harness_expect_match(client, "-ERR invalid key", "GET acme credit %b", "a\0", (size_t)2);
    harness_expect_match(client, "-ERR invalid key", "GET acme credit %b", "\0", (size_t)1);
    harness_expect_match(client, "-ERR invalid key", "MGET acme credit a %b", "a\0", (size_t)2);
    harness_expect_match(client, "-ERR invalid key", "CREDIT acme %b", "a\0", (size_t)2);
    harness_expect_match(client, "-ERR invalid key", "STATUS acme %b", "u\0", (size_t)2);
    harness_expect_match(client, "-ERR invalid tenant", "GET %b credit a", "acme\0", (size_t)5);
    harness_expect_match(client, "-ERR invalid tenant", "CREDIT %b a", "ac\0me", (size_t)5);
    harness_expect_match(client, "-ERR unknown kind 'credit?'", "GET acme %b a", "credit\0",
                         (size_t)7);
    harness_expect_match(client, "-ERR invalid permission", "ROLECAN acme r %b", "crm\0.read",
                         (size_t)9);
    harness_expect_match(client, "-ERR unknown command 'GE?T'", "%b acme credit a", "GE\0T",
                         (size_t)4);
    /* a name that does not parse is nil */
    harness_expect_match(client, "(nil)", "GET %b", "cache:acme:credit:a\0", (size_t)20);
    /* binary-safe where bytes are data */
    redisReply *reply = redisCommand(client, "PING %b", "a\0b", (size_t)3);
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(reply->type, REDIS_REPLY_STRING);
    ck_assert_uint_eq(reply->len, 3);
    ck_assert_int_eq(memcmp(reply->str, "a\0b", 3), 0);
    freeReplyObject(reply);
    /* the same connection goes on, and the real key is intact */
    harness_expect_match(client, "1", "GET acme credit a");
    /* inline, the NUL inside an argument */
    raw_case("GET acme credit a\0b\r\nPING\r\n", 27, "-ERR invalid key\r\n+PONG\r\n", false);
    still_serving();

    /* on the channel: an escaped NUL, a raw NUL byte in a string, and after
     * the JSON */
    expect_rejected("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"a\\u0000b\",\"value\":2}");
    static const char raw_nul[] =
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"a\0b\",\"value\":2}";
    expect_rejected_bin(CHANNEL, raw_nul, sizeof(raw_nul) - 1);
    static const char trailing_nul[] =
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"a\",\"value\":2}\0";
    expect_rejected_bin(CHANNEL, trailing_nul, sizeof(trailing_nul) - 1);
    static const char value_nul[] =
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"a\",\"value\":\"x\\u0000y\"}";
    expect_rejected(value_nul);
    harness_expect_match(client, "1", "GET acme credit a");
    ck_assert(harness_log_contains(&h, "rejected message on 'tenantcached:invalidate'"));
}
END_TEST

/* ---- invalid UTF-8 ---- */

START_TEST(test_invalid_utf8)
{
    start_daemon("");
    /* on the socket: a key is bytes (docs/reference.md §2 forbids only controls and
     * spaces); nothing cached can match one that is not UTF-8, so nil */
    harness_expect_match(client, "(nil)", "GET acme credit %b", "\xff\xfe", (size_t)2);
    harness_expect_match(client, "(nil)", "GET acme credit %b", "\xc0\xaf",
                         (size_t)2); /* overlong '/' */
    harness_expect_match(client, "(nil)", "GET acme credit %b", "\xed\xa0\x80",
                         (size_t)3); /* a surrogate */
    harness_expect_match(client, "(nil)", "GET acme credit %b", "a\xe2\x82",
                         (size_t)3); /* truncated */
    harness_expect_match(client, "(nil)", "GET %b", "cache:acme:credit:\xff", (size_t)19);
    harness_expect_match(client, "-ERR invalid tenant", "GET %b credit a", "\xc3\x28", (size_t)2);
    harness_expect_match(client,
                         "-ERR unknown kind '?"
                         "?'",
                         "GET acme %b a", "\xff\xfe", (size_t)2);
    harness_expect_match(client, "-ERR invalid permission", "ROLECAN acme r %b", "crm.\xff",
                         (size_t)5);
    harness_expect_match(client,
                         "-ERR unknown command '?"
                         "?'",
                         "%b", "\xff\xfe", (size_t)2);
    redisReply *reply = redisCommand(client, "PING %b", "\xff\xfe\xfd", (size_t)3);
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(reply->type, REDIS_REPLY_STRING);
    ck_assert_uint_eq(reply->len, 3);
    ck_assert_int_eq(memcmp(reply->str, "\xff\xfe\xfd", 3), 0);
    freeReplyObject(reply);
    /* CR LF in an argument echoed in an error cannot break the reply framing */
    harness_expect_match(client, "-ERR unknown kind 'x??+OK'", "GET acme %b a", "x\r\n+OK",
                         (size_t)6);
    harness_expect_match(client, "+PONG", "PING");
    still_serving();

    /* on the channel: JSON text must be UTF-8 */
    expect_rejected("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"\xff\",\"value\":1}");
    expect_rejected("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"k\",\"value\":\"\xc0\xaf\"}");
    expect_rejected("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"k\",\"value\":\"\xed\xa0\x80\"}");
    expect_rejected("{\"op\":\"set\",\"tenant\":\"\xe2\x82\",\"kind\":\"config\",\"key\":\"k\",\"value\":1}");
    expect_rejected("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"k\",\"value\":\"\\ud800\"}");
    expect_rejected("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"k\",\"value\":1,\"\xff\":1}");
    /* the log quotes none of those bytes */
    FILE *file = fopen(h.daemon_log, "r");
    ck_assert_ptr_nonnull(file);
    int c;
    while ((c = fgetc(file)) != EOF)
        ck_assert_msg(c < 0x80, "the daemon log holds byte 0x%02x", c);
    fclose(file);
    /* valid UTF-8 beyond ASCII is fine, in keys and values */
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"cl\xc3\xa9\",\"value\":\"\xe2\x82\xac\"}");
    ck_assert(harness_wait_match(client, WAIT_MS, "\"\xe2\x82\xac\"", "GET acme config %b",
                                 "cl\xc3\xa9", (size_t)4));
    still_serving();
}
END_TEST

/* ---- deep nesting, huge and numerous messages ---- */

static char *nested(size_t depth, const char *prefix, const char *suffix)
{
    size_t plen = strlen(prefix), slen = strlen(suffix);
    char *text = malloc(plen + 2 * depth + slen + 1);
    ck_assert_ptr_nonnull(text);
    memcpy(text, prefix, plen);
    memset(text + plen, '[', depth);
    memset(text + plen + depth, ']', depth);
    memcpy(text + plen + 2 * depth, suffix, slen + 1);
    return text;
}

START_TEST(test_deep_json)
{
    start_daemon("");
    /* 100,000 levels: as the message, and as a value */
    char *deep = nested(100000, "", "");
    expect_rejected(deep);
    free(deep);
    deep = nested(100000, "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"d\",\"value\":", "}");
    expect_rejected(deep);
    free(deep);
    /* unbalanced: 100,000 opening brackets only */
    deep = malloc(100001);
    ck_assert_ptr_nonnull(deep);
    memset(deep, '[', 100000);
    deep[100000] = '\0';
    expect_rejected(deep);
    memset(deep, '{', 100000);
    expect_rejected(deep);
    free(deep);
    /* 1,000 levels is legal JSON: stored and served as it came */
    deep = nested(1000, "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"d\",\"value\":", "}");
    harness_publish_ok(&h, CHANNEL, deep);
    free(deep);
    char *value = nested(1000, "", "");
    redisReply *reply = NULL;
    long long deadline = harness_now_ms() + WAIT_MS;
    while (harness_now_ms() < deadline) {
        reply = redisCommand(client, "GET acme config d");
        ck_assert_ptr_nonnull(reply);
        if (reply->type == REDIS_REPLY_STRING)
            break;
        freeReplyObject(reply);
        reply = NULL;
        harness_sleep_ms(10);
    }
    ck_assert_msg(reply != NULL, "the 1,000-deep value was not applied");
    ck_assert_uint_eq(reply->len, 2000);
    ck_assert_int_eq(memcmp(reply->str, value, 2000), 0);
    freeReplyObject(reply);
    free(value);
    ck_assert(harness_log_contains(&h, "rejected message"));
    still_serving();
}
END_TEST

START_TEST(test_huge_messages)
{
    start_daemon("");
    /* redis.max_message_bytes is not set: the default, 1 MB, applies */
    /* 10 MB, well-formed: rejected by size, never parsed */
    const char *head = "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"big\",\"value\":\"";
    const char *tail = "\"}";
    size_t size = 10 * 1024 * 1024;
    char *big = malloc(size + 1);
    ck_assert_ptr_nonnull(big);
    size_t hlen = strlen(head), tlen = strlen(tail);
    memcpy(big, head, hlen);
    memset(big + hlen, 'x', size - hlen - tlen);
    memcpy(big + size - tlen, tail, tlen + 1);
    expect_rejected_bin(CHANNEL, big, size);
    ck_assert(harness_log_contains(&h, "message too large (10485760 bytes, limit 1048576)"));
    /* the limit itself: 1 MB exactly is accepted, one byte more is not */
    size = 1024 * 1024 + 1;
    memcpy(big + size - tlen, tail, tlen + 1);
    expect_rejected_bin(CHANNEL, big, size);
    size = 1024 * 1024;
    memcpy(big + size - tlen, tail, tlen + 1);
    publish_bin(CHANNEL, big, size);
    redisReply *reply = NULL;
    long long deadline = harness_now_ms() + WAIT_MS;
    while (harness_now_ms() < deadline) {
        reply = redisCommand(client, "GET acme config big");
        ck_assert_ptr_nonnull(reply);
        if (reply->type == REDIS_REPLY_STRING)
            break;
        freeReplyObject(reply);
        reply = NULL;
        harness_sleep_ms(10);
    }
    ck_assert_msg(reply != NULL, "the 1 MB message was not applied");
    ck_assert_uint_eq(reply->len, size - hlen - tlen + 2); /* the quoted string */
    freeReplyObject(reply);
    free(big);

    /* more operations in one batch than the daemon takes (10,000) */
    size_t count = 10001;
    const char *op = "{\"op\":\"del\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"k\"}";
    size_t oplen = strlen(op);
    char *batch = malloc(count * (oplen + 1) + 2);
    ck_assert_ptr_nonnull(batch);
    size_t len = 0;
    batch[len++] = '[';
    for (size_t i = 0; i < count; i++) {
        if (i > 0)
            batch[len++] = ',';
        memcpy(batch + len, op, oplen);
        len += oplen;
    }
    batch[len++] = ']';
    batch[len] = '\0';
    expect_rejected(batch);
    free(batch);
    /* numbers no integer holds */
    expect_rejected("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"n\",\"value\":1,\"version\":99999999999999999999}");
    expect_rejected("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"n\",\"value\":1e400}");
    expect_rejected("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"n\",\"value\":1,\"src\":\"p\",\"seq\":0}");
    /* a key over 512 bytes, a tenant over 64 */
    char text[2048];
    char key[600];
    memset(key, 'k', 513);
    key[513] = '\0';
    snprintf(text, sizeof(text), "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"%s\",\"value\":1}", key);
    expect_rejected(text);
    key[65] = '\0';
    snprintf(text, sizeof(text), "{\"op\":\"set\",\"tenant\":\"%s\",\"kind\":\"config\",\"key\":\"k\",\"value\":1}", key);
    expect_rejected(text);
}
END_TEST

/* A channel name is chosen by whoever publishes (patterns subscriptions):
 * quoted in the log, it must not be able to forge log lines. Run first on a
 * fresh daemon: the rejection log line is rate-limited. */
START_TEST(test_channel_name_in_log)
{
    start_daemon("");
    const char *channel = "hostile:x\nFORGED-LOG-LINE error: all good";
    expect_rejected_bin(channel, "not json", 8);
    FILE *file = fopen(h.daemon_log, "r");
    ck_assert_ptr_nonnull(file);
    char line[4096];
    bool forged = false, quoted = false;
    while (fgets(line, sizeof(line), file) != NULL) {
        forged = forged || strncmp(line, "FORGED-LOG-LINE", 15) == 0;
        quoted = quoted || strstr(line, "rejected message on 'hostile:x") != NULL;
    }
    fclose(file);
    ck_assert_msg(quoted, "the rejection was not logged");
    ck_assert_msg(!forged, "a channel name forged a line of the daemon log");
}
END_TEST

/* ---- RESP framing: negative and huge lengths, null arrays ---- */

START_TEST(test_lengths)
{
    start_daemon("");
    long long errors = harness_info_int(client, "protocol_errors");
    static const struct {
        const char *request;
        const char *reply;
    } cases[] = {
        {"*2\r\n$4\r\nPING\r\n$-5\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
        {"*1\r\n$-1\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
        {"*-5\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
        {"*-2147483648\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
        {"*1\r\n$99999999999999999999\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
        {"*1\r\n$18446744073709551615\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
        {"*1\r\n$18446744073709551616\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
        {"*1\r\n$2147483648\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
        {"*99999999999999999999\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
        {"*18446744073709551616\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
        {"*1\r\n$+4\r\nPING\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
        {"*1\r\n$ 4\r\nPING\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
        {"*1\r\n$4x\r\nPING\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
        {"*1\r\n$04\r\nPING\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
        {"*1\r\n$\r\n", "-ERR Protocol error: invalid bulk length\r\n"},
        {"*1x\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
        {"*\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
        {"*1\r\n:4\r\n", "-ERR Protocol error: expected '$', got ':'\r\n"},
        {"*1\r\n$4\r\nPINGxx\r\n", "-ERR Protocol error: expected CRLF after bulk string\r\n"},
        {"*1\r\n$4\r\nPING\n\r", "-ERR Protocol error: expected CRLF after bulk string\r\n"},
        {"*1\r$4\r\n", "-ERR Protocol error: invalid multibulk length\r\n"},
        {"PING \"abc\r\n", "-ERR Protocol error: unbalanced quotes in request\r\n"},
    };
    size_t n = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < n; i++) {
        raw_case_text(cases[i].request, cases[i].reply, true);
        still_serving();
    }
    ck_assert_int_eq(harness_info_int(client, "protocol_errors"), errors + (long long)n);

    /* a length line that never ends, and an inline line that never ends */
    char *endless = malloc(70001);
    ck_assert_ptr_nonnull(endless);
    endless[0] = '*';
    memset(endless + 1, '1', 69999);
    endless[70000] = '\0';
    raw_case_text(endless, "-ERR Protocol error: too big mbulk count string\r\n", true);
    memcpy(endless, "*1\r\n$", 5);
    raw_case_text(endless, "-ERR Protocol error: too big bulk count string\r\n", true);
    memset(endless, 'P', 70000);
    raw_case_text(endless, "-ERR Protocol error: too big inline request\r\n", true);
    free(endless);
    still_serving();
    ck_assert_int_eq(harness_info_int(client, "protocol_errors"), errors + (long long)n + 3);

    /* *-1 and *0 are skipped silently, as redis-server does; so are empty
     * inline lines */
    raw_case_text("*-1\r\n*0\r\n*-1\r\n\r\n*0\r\nPING\r\n*-1\r\n*1\r\n$4\r\nPING\r\n",
                  "+PONG\r\n+PONG\r\n", false);
    ck_assert_int_eq(harness_info_int(client, "protocol_errors"), errors + (long long)n + 3);
    still_serving();
}
END_TEST

/* ---- large requests, within max_request_bytes ---- */

/* The daemon's CPU time so far (user + system), in clock ticks. */
static long long daemon_cpu_ticks(void)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)h.daemon_pid);
    FILE *file = fopen(path, "r");
    ck_assert_ptr_nonnull(file);
    char text[1024];
    size_t n = fread(text, 1, sizeof(text) - 1, file);
    fclose(file);
    text[n] = '\0';
    const char *p = strrchr(text, ')'); /* the command name may hold anything */
    ck_assert_ptr_nonnull(p);
    unsigned long long utime = 0, stime = 0;
    /* after ")": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime */
    int got = sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
                     &stime);
    ck_assert_int_eq(got, 2);
    return (long long)(utime + stime);
}

/* A bulk of `size` bytes as one PING; its echo must come back whole. */
static void expect_big_ping(int fd, size_t size)
{
    char header[64];
    int n = snprintf(header, sizeof(header), "*2\r\n$4\r\nPING\r\n$%zu\r\n", size);
    char *body = malloc(size + 2);
    ck_assert_ptr_nonnull(body);
    memset(body, 'b', size);
    memcpy(body + size, "\r\n", 2);
    harness_raw_send(fd, header, (size_t)n);
    harness_raw_send(fd, body, size + 2);
    char *reply = malloc(size + 64);
    ck_assert_ptr_nonnull(reply);
    n = snprintf(header, sizeof(header), "$%zu\r\n", size);
    size_t want = (size_t)n + size + 2;
    bool closed;
    size_t got = harness_raw_read(fd, reply, want, WAIT_MS, &closed);
    ck_assert_msg(got == want, "PING of %zu bytes: %zu of %zu reply bytes%s", size, got, want,
                  closed ? ", then EOF" : "");
    ck_assert_int_eq(memcmp(reply, header, (size_t)n), 0);
    ck_assert_int_eq(memcmp(reply + n, body, size + 2), 0);
    free(reply);
    free(body);
}

START_TEST(test_large_requests)
{
    start_daemon("");
    int fd = harness_raw_open(&h);
    /* max_request_bytes is 1 MB: anything up to it is served, in one
     * request and pipelined */
    expect_big_ping(fd, 100 * 1024);
    expect_big_ping(fd, 300 * 1024);
    expect_big_ping(fd, 600 * 1024);
    expect_big_ping(fd, 1024 * 1024 - 4); /* "PING" + the bulk: the limit exactly */
    still_serving();
    /* an MGET of 1,000 keys of 500 bytes */
    enum { KEYS = 1000, KEY_LEN = 500 };
    const char **argv = calloc(KEYS + 3, sizeof(char *));
    size_t *lens = calloc(KEYS + 3, sizeof(size_t));
    char *key = malloc(KEY_LEN);
    ck_assert(argv != NULL && lens != NULL && key != NULL);
    memset(key, 'k', KEY_LEN);
    argv[0] = "MGET";
    lens[0] = 4;
    argv[1] = "acme";
    lens[1] = 4;
    argv[2] = "config";
    lens[2] = 6;
    for (int i = 3; i < KEYS + 3; i++) {
        argv[i] = key;
        lens[i] = KEY_LEN;
    }
    redisReply *reply = redisCommandArgv(client, KEYS + 3, argv, lens);
    ck_assert_ptr_nonnull(reply);
    ck_assert_msg(reply->type == REDIS_REPLY_ARRAY, "MGET of 1,000 long keys: type %d %s",
                  reply->type, reply->str ? reply->str : "");
    ck_assert_uint_eq(reply->elements, KEYS);
    freeReplyObject(reply);
    free(argv);
    free(lens);
    free(key);

    /* half of a 900 KB request, then silence: the daemon waits for the
     * rest without burning CPU meanwhile */
    size_t size = 900 * 1024;
    char header[64];
    int n = snprintf(header, sizeof(header), "*2\r\n$4\r\nPING\r\n$%zu\r\n", size);
    char *body = malloc(size + 2);
    ck_assert_ptr_nonnull(body);
    memset(body, 'h', size);
    memcpy(body + size, "\r\n", 2);
    harness_raw_send(fd, header, (size_t)n);
    harness_raw_send(fd, body, size / 2);
    harness_sleep_ms(100);
    long long before = daemon_cpu_ticks();
    long ticks_per_second = sysconf(_SC_CLK_TCK);
    harness_sleep_ms(1000);
    long long used = daemon_cpu_ticks() - before;
    ck_assert_msg(used * 1000 / ticks_per_second < 200,
                  "the daemon used %lld ms of CPU in 1 s while a request was half sent",
                  used * 1000 / ticks_per_second);
    still_serving();
    harness_raw_send(fd, body + size / 2, size - size / 2 + 2);
    char *echo = malloc(size + 64);
    ck_assert_ptr_nonnull(echo);
    bool closed;
    size_t want = (size_t)snprintf(header, sizeof(header), "$%zu\r\n", size) + size + 2;
    ck_assert_uint_eq(harness_raw_read(fd, echo, want, WAIT_MS, &closed), want);
    free(echo);
    free(body);
    /* one byte over the limit: refused at its declared length */
    raw_case_text("*2\r\n$4\r\nPING\r\n$1048573\r\n", "-ERR Protocol error: request too large\r\n",
                  true);
    close(fd);
    ck_assert_int_eq(harness_info_int(client, "protocol_errors"), 1);
    still_serving();
}
END_TEST

/* ---- thousands of arguments ---- */

START_TEST(test_many_args)
{
    start_daemon("");
    long long errors = harness_info_int(client, "protocol_errors");
    /* the count alone is refused, before any argument arrives */
    raw_case_text("*5000\r\n", "-ERR Protocol error: invalid multibulk length\r\n", true);
    raw_case_text("*1025\r\n", "-ERR Protocol error: invalid multibulk length\r\n", true);
    still_serving();

    /* max_args (1024) exactly is served */
    enum { MANY = 5000 };
    const char **argv = calloc(MANY, sizeof(char *));
    size_t *lens = calloc(MANY, sizeof(size_t));
    ck_assert(argv != NULL && lens != NULL);
    argv[0] = "MGET";
    argv[1] = "acme";
    argv[2] = "credit";
    for (int i = 3; i < MANY; i++)
        argv[i] = "k";
    for (int i = 0; i < MANY; i++)
        lens[i] = strlen(argv[i]);
    redisReply *reply = redisCommandArgv(client, 1024, argv, lens);
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(reply->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(reply->elements, 1021);
    freeReplyObject(reply);
    /* 5,000 from a client library: a protocol error, then closed */
    redisContext *many = harness_connect(&h);
    ck_assert_ptr_nonnull(many);
    reply = redisCommandArgv(many, MANY, argv, lens);
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(reply->type, REDIS_REPLY_ERROR);
    ck_assert_str_eq(reply->str, "ERR Protocol error: invalid multibulk length");
    freeReplyObject(reply);
    reply = redisCommand(many, "PING");
    ck_assert_ptr_null(reply);
    redisFree(many);
    free(argv);
    free(lens);
    /* 5,000 inline */
    char *line = malloc(MANY * 2 + 8);
    ck_assert_ptr_nonnull(line);
    size_t len = 0;
    memcpy(line, "PING", 4);
    len = 4;
    for (int i = 0; i < MANY; i++) {
        line[len++] = ' ';
        line[len++] = 'a';
    }
    memcpy(line + len, "\r\n", 3);
    raw_case_text(line, "-ERR Protocol error: too many arguments in inline request\r\n", true);
    free(line);
    ck_assert_int_eq(harness_info_int(client, "protocol_errors"), errors + 4);
    still_serving();
}
END_TEST

/* ---- half a request ---- */

START_TEST(test_half_request)
{
    start_daemon("");
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"op\",\"value\":4}");
    ck_assert(harness_wait_match(client, WAIT_MS, "4", "GET acme credit op"));
    const char *request = "*4\r\n$3\r\nGET\r\n$4\r\nacme\r\n$6\r\ncredit\r\n$2\r\nop\r\n";
    size_t half = 22; /* ends inside "acme" */
    int hanging = harness_raw_open(&h);
    harness_raw_send(hanging, request, half);
    /* 200 more, each declaring a bulk of a megabyte and sending one byte */
    enum { SLOW = 200 };
    int slow[SLOW];
    for (int i = 0; i < SLOW; i++) {
        slow[i] = harness_raw_open(&h);
        raw_send_text(slow[i], "*2\r\n$4\r\nPING\r\n$1000000\r\nx");
    }
    /* everyone else is served meanwhile */
    for (int i = 0; i < 20; i++) {
        harness_expect_match(client, "4", "GET acme credit op");
        still_serving();
        harness_sleep_ms(50);
    }
    ck_assert_int_eq(harness_info_int(client, "connected_clients"), 2 + 1 + SLOW);
    /* without idle_timeout the half request just waits: the rest completes it */
    raw_send_text(hanging, request + half);
    char buffer[64];
    bool closed;
    harness_raw_read(hanging, buffer, 7, WAIT_MS, &closed);
    ck_assert_str_eq(buffer, "$1\r\n4\r\n");
    close(hanging);
    for (int i = 0; i < SLOW; i++)
        close(slow[i]);
    ck_assert(harness_wait_info(client, WAIT_MS, "connected_clients", 2));
    ck_assert_int_eq(harness_info_int(client, "protocol_errors"), 0);
    still_serving();
}
END_TEST

/* A reload that lowers max_args and max_request_bytes while a request is
 * half received: the request keeps the limits it began with (and the daemon
 * keeps its heap: the parser's vectors once shrank under it); the next
 * request gets the new ones. */
START_TEST(test_reload_mid_request)
{
    start_daemon("  max_args: 1000\n  max_request_bytes: 1mb\n");
    enum { KEYS = 197, SENT_FIRST = 20 };
    char first[4096], rest[4096];
    size_t first_len = (size_t)snprintf(first, sizeof(first),
                                        "*%d\r\n$4\r\nMGET\r\n$4\r\nacme\r\n$6\r\nconfig\r\n",
                                        KEYS + 3);
    for (int i = 0; i < SENT_FIRST; i++)
        first_len += (size_t)snprintf(first + first_len, sizeof(first) - first_len,
                                      "$6\r\nkey%03d\r\n", i);
    size_t rest_len = 0;
    for (int i = SENT_FIRST; i < KEYS; i++)
        rest_len += (size_t)snprintf(rest + rest_len, sizeof(rest) - rest_len, "$6\r\nkey%03d\r\n",
                                     i);
    int fd = harness_raw_open(&h);
    harness_raw_send(fd, first, first_len);
    witness_ok();
    ck_assert_int_eq(harness_daemon_write_config(
                         &h, config_text(10000, "  max_args: 4\n  max_request_bytes: 64\n")),
                     0);
    ck_assert_int_eq(harness_daemon_signal(&h, SIGHUP), 0);
    long long deadline = harness_now_ms() + WAIT_MS;
    while (!harness_log_contains(&h, "configuration reloaded") && harness_now_ms() < deadline)
        harness_sleep_ms(20);
    ck_assert(harness_log_contains(&h, "configuration reloaded"));
    harness_raw_send(fd, rest, rest_len);
    /* one array of KEYS nils */
    char expected[2048];
    size_t expected_len = (size_t)snprintf(expected, sizeof(expected), "*%d\r\n", KEYS);
    for (int i = 0; i < KEYS; i++)
        expected_len += (size_t)snprintf(expected + expected_len, sizeof(expected) - expected_len,
                                         "$-1\r\n");
    char buffer[2048];
    bool closed;
    harness_raw_read(fd, buffer, expected_len, WAIT_MS, &closed);
    ck_assert_msg(strcmp(buffer, expected) == 0, "the half-received MGET: got '%.80s'%s", buffer,
                  closed ? " and EOF" : "");
    ck_assert_msg(harness_daemon_alive(&h), "the daemon died (status %d)", h.daemon_status);
    /* the next request on the same connection is held to the new limits */
    raw_send_text(fd, "*5\r\n$4\r\nMGET\r\n$4\r\nacme\r\n$6\r\nconfig\r\n$1\r\na\r\n$1\r\nb\r\n");
    const char *refused = "-ERR Protocol error: invalid multibulk length\r\n";
    harness_raw_read(fd, buffer, strlen(refused), WAIT_MS, &closed);
    ck_assert_str_eq(buffer, refused);
    close(fd);
    still_serving();
}
END_TEST

/* listen.max_buffer_memory bounds what all clients together make the daemon
 * hold: clients that each stall halfway through a large request are
 * dropped, the one holding the most first, and counted; everyone else is
 * served. */
START_TEST(test_buffer_memory_bound)
{
    start_daemon("  max_buffer_memory: 4mb\n");
    enum { HOLDERS = 20, PART = 800 * 1024 };
    char *part = malloc(PART);
    ck_assert_ptr_nonnull(part);
    memset(part, 'x', PART);
    int fds[HOLDERS];
    for (int i = 0; i < HOLDERS; i++) {
        fds[i] = harness_raw_open(&h);
        raw_send_text(fds[i], "*2\r\n$4\r\nPING\r\n$900000\r\n");
        if (!raw_send_lenient(fds[i], part, PART))
            continue; /* dropped already */
        witness_ok();
    }
    free(part);
    /* at most 4 MB are held: of 20 clients holding 800 KB each, at most 5
     * stay */
    enum { FIT = 4 * 1024 * 1024 / PART };
    long long deadline = harness_now_ms() + WAIT_MS;
    while (harness_info_int(client, "clients_dropped_memory") < HOLDERS - FIT &&
           harness_now_ms() < deadline)
        harness_sleep_ms(20);
    ck_assert_int_ge(harness_info_int(client, "clients_dropped_memory"), HOLDERS - FIT);
    long long held = harness_info_int(client, "client_buffer_bytes");
    ck_assert_msg(held <= 4 * 1024 * 1024, "client_buffer_bytes %lld", held);
    int closed = 0;
    for (int i = 0; i < HOLDERS; i++) {
        if (raw_closed_within(fds[i], 50))
            closed++;
        close(fds[i]);
    }
    ck_assert_int_ge(closed, HOLDERS - FIT);
    ck_assert_int_eq(harness_info_int(client, "clients_dropped_memory"), closed);
    still_serving();
}
END_TEST

/* Past max_buffer_memory, the connection holding the most goes, whichever
 * query thread holds it; the smaller ones stay. */
START_TEST(test_buffer_memory_drops_the_largest)
{
    start_daemon("  max_buffer_memory: 4mb\n");
    enum { BIG = 950 * 1000, SMALL = 300 * 1000, SMALLS = 11 };
    char *data = malloc(BIG);
    ck_assert_ptr_nonnull(data);
    memset(data, 'x', BIG);
    int big = harness_raw_open(&h);
    raw_send_text(big, "*2\r\n$4\r\nPING\r\n$1000000\r\n");
    harness_raw_send(big, data, BIG);
    long long deadline = harness_now_ms() + WAIT_MS;
    while (harness_info_int(client, "client_buffer_bytes") < BIG && harness_now_ms() < deadline)
        harness_sleep_ms(10);
    ck_assert_int_ge(harness_info_int(client, "client_buffer_bytes"), BIG);
    int smalls[SMALLS];
    for (int i = 0; i < SMALLS; i++) {
        smalls[i] = harness_raw_open(&h);
        raw_send_text(smalls[i], "*2\r\n$4\r\nPING\r\n$1000000\r\n");
        harness_raw_send(smalls[i], data, SMALL);
    }
    free(data);
    /* 0.95 + 11 x 0.3 MB is over 4 MB; without the big one it is not */
    ck_assert(harness_wait_info(client, WAIT_MS, "clients_dropped_memory", 1));
    ck_assert_msg(raw_closed_within(big, WAIT_MS), "the largest client was not dropped");
    for (int i = 0; i < SMALLS; i++) {
        ck_assert_msg(!raw_closed_within(smalls[i], 20), "small client %d was dropped", i);
        close(smalls[i]);
    }
    close(big);
    ck_assert_int_eq(harness_info_int(client, "clients_dropped_memory"), 1);
    still_serving();
}
END_TEST

START_TEST(test_half_request_idle_timeout)
{
    start_daemon("  idle_timeout: 500ms\n");
    int hanging = harness_raw_open(&h);
    raw_send_text(hanging, "*4\r\n$3\r\nGET\r\n$4\r\nac");
    long long sent = harness_now_ms();
    /* others are served, and stay connected while they are active */
    bool dropped = false;
    long long took = 0;
    while (!dropped && harness_now_ms() - sent < 3000) {
        harness_expect_match(client, "+PONG", "PING");
        still_serving();
        char buffer[64];
        bool closed;
        harness_raw_read(hanging, buffer, sizeof(buffer) - 1, 50, &closed);
        dropped = closed;
        took = harness_now_ms() - sent;
    }
    ck_assert_msg(dropped, "the half request was not dropped (idle_timeout 500ms)");
    ck_assert_msg(took >= 400 && took <= 1500, "dropped after %lld ms (idle_timeout 500ms)", took);
    close(hanging);
    harness_expect_match(client, "+PONG", "PING");
    ck_assert_int_ge(harness_info_int(client, "clients_dropped_idle"), 1);
    ck_assert(harness_wait_info(client, WAIT_MS, "connected_clients", 2));
    still_serving();
}
END_TEST

/* ---- 5,000 connections at once ---- */

/* Raises the soft fd limit to the hard one (the daemon, started after,
 * inherits it). Returns the new soft limit. */
static rlim_t raise_fd_limit(void)
{
    struct rlimit limit;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &limit), 0);
    limit.rlim_cur = limit.rlim_max;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &limit), 0);
    return limit.rlim_cur;
}

/* Opens count connections, sends PING on each, and sorts the answers into
 * served (+PONG) and refused (-ERR max clients reached, then closed). The
 * connections are left open in fds. */
static void open_many(int *fds, int count, int *served, int *refused)
{
    for (int i = 0; i < count; i++) {
        fds[i] = harness_raw_open(&h);
        /* a refused one may be closed already: its error is still readable */
        ssize_t sent = write(fds[i], "PING\r\n", 6);
        ck_assert_msg(sent == 6 || (sent < 0 && (errno == EPIPE || errno == ECONNRESET)),
                      "write: %s", strerror(errno));
    }
    *served = *refused = 0;
    for (int i = 0; i < count; i++) {
        char buffer[64];
        bool closed;
        harness_raw_read(fds[i], buffer, 7, WAIT_MS, &closed);
        if (strcmp(buffer, "+PONG\r\n") == 0) {
            (*served)++;
            continue;
        }
        if (strncmp(buffer, "-ERR max", 7) == 0) {
            size_t more = harness_raw_read(fds[i], buffer + 7, sizeof(buffer) - 8, 1000, &closed);
            (void)more;
            ck_assert_str_eq(buffer, "-ERR max clients reached\r\n");
            ck_assert(closed || raw_closed_within(fds[i], WAIT_MS));
            (*refused)++;
            continue;
        }
        ck_assert_msg(false, "connection %d: got '%s'%s", i, buffer, closed ? " and EOF" : "");
    }
}

START_TEST(test_5000_connections)
{
    enum { COUNT = 5000 };
    rlim_t limit = raise_fd_limit();
    ck_assert_msg(limit >= COUNT + 100, "the fd hard limit is %llu", (unsigned long long)limit);
    start_daemon("");
    long long baseline = harness_info_int(client, "connected_clients");
    ck_assert_int_eq(baseline, 2);
    int *fds = calloc(COUNT, sizeof(int));
    ck_assert_ptr_nonnull(fds);
    long long started = harness_now_ms();
    int served, refused;
    open_many(fds, COUNT, &served, &refused);
    fprintf(stderr, "5000 connections: %d served, %d refused in %lld ms\n", served, refused,
            harness_now_ms() - started);
    ck_assert_int_eq(served, COUNT);
    ck_assert_int_eq(harness_info_int(client, "connected_clients"), baseline + COUNT);
    still_serving();
    for (int i = 0; i < COUNT; i++)
        close(fds[i]);
    ck_assert(harness_wait_info(client, WAIT_MS, "connected_clients", baseline));
    ck_assert_int_eq(harness_info_int(client, "rejected_connections"), 0);

    /* the same with max_clients 1000 (a reload applies it at once): the
     * surplus hears why, and is closed */
    ck_assert_int_eq(harness_daemon_write_config(&h, config_text(1000, "")), 0);
    ck_assert_int_eq(harness_daemon_signal(&h, SIGHUP), 0);
    long long deadline = harness_now_ms() + WAIT_MS;
    while (!harness_log_contains(&h, "configuration reloaded") && harness_now_ms() < deadline)
        harness_sleep_ms(20);
    ck_assert(harness_log_contains(&h, "configuration reloaded"));
    redisReply *reply = redisCommand(client, "INFO clients");
    ck_assert_ptr_nonnull(reply);
    ck_assert_msg(strstr(reply->str, "max_clients:1000\r\n") != NULL, "%s", reply->str);
    freeReplyObject(reply);
    open_many(fds, 3000, &served, &refused);
    fprintf(stderr, "3000 connections over max_clients 1000: %d served, %d refused\n", served,
            refused);
    ck_assert_int_eq(served, 1000 - (int)baseline);
    ck_assert_int_eq(refused, 3000 - served);
    ck_assert_int_eq(harness_info_int(client, "rejected_connections"), refused);
    witness_ok(); /* (a new connection would be refused now) */
    for (int i = 0; i < 3000; i++)
        close(fds[i]);
    ck_assert(harness_wait_info(client, WAIT_MS, "connected_clients", baseline));
    still_serving();
    free(fds);
}
END_TEST

/* The daemon out of file descriptors (its soft limit far below
 * max_clients): the surplus hears why and is closed; nothing spins, and
 * once clients leave, new ones are served. */
START_TEST(test_out_of_fds)
{
    struct rlimit saved;
    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
    struct rlimit low = {.rlim_cur = 128, .rlim_max = saved.rlim_max};
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
    start_daemon(""); /* the daemon inherits the low limit */
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
    raise_fd_limit();

    enum { COUNT = 400 };
    int fds[COUNT];
    int served = 0, refused = 0;
    for (int i = 0; i < COUNT; i++) {
        fds[i] = harness_raw_open(&h);
        ssize_t sent = write(fds[i], "PING\r\n", 6);
        ck_assert_msg(sent == 6 || (sent < 0 && (errno == EPIPE || errno == ECONNRESET)),
                      "write: %s", strerror(errno));
    }
    for (int i = 0; i < COUNT; i++) {
        char buffer[128];
        bool closed;
        harness_raw_read(fds[i], buffer, 7, WAIT_MS, &closed);
        if (strcmp(buffer, "+PONG\r\n") == 0) {
            served++;
            continue;
        }
        harness_raw_read(fds[i], buffer + strlen(buffer), sizeof(buffer) - 1 - strlen(buffer), 1000,
                 &closed);
        /* Under valgrind, an fd past valgrind's own limit is closed by
         * valgrind inside accept(2), before the daemon can say anything. */
        const char *tool = getenv("TENANTCACHED_SANITIZER");
        if (buffer[0] == '\0' && closed && tool != NULL && strcmp(tool, "valgrind") == 0) {
            refused++;
            continue;
        }
        if (strcmp(buffer, "-ERR server out of file descriptors\r\n") != 0 &&
            strcmp(buffer, "-ERR max clients reached\r\n") != 0)
            harness_dump_log(&h);
        ck_assert_msg(strcmp(buffer, "-ERR server out of file descriptors\r\n") == 0 ||
                          strcmp(buffer, "-ERR max clients reached\r\n") == 0,
                      "connection %d of %d: got '%s'%s", i, COUNT, buffer, closed ? " and EOF" : "");
        ck_assert(closed || raw_closed_within(fds[i], WAIT_MS));
        refused++;
    }
    fprintf(stderr, "out of fds: %d served, %d refused\n", served, refused);
    ck_assert_int_gt(served, 50);
    ck_assert_int_gt(refused, 0);
    ck_assert_int_eq(served + refused, COUNT);
    long long before = daemon_cpu_ticks();
    harness_sleep_ms(500);
    long long used = (daemon_cpu_ticks() - before) * 1000 / sysconf(_SC_CLK_TCK);
    ck_assert_msg(used < 200, "the daemon used %lld ms of CPU in 500 ms while out of fds", used);
    witness_ok();
    for (int i = 0; i < COUNT; i++)
        close(fds[i]);
    ck_assert(harness_wait_info(client, WAIT_MS, "connected_clients", 2));
    still_serving();
    ck_assert(harness_log_contains(&h, "accept: Too many open files"));
}
END_TEST

/* ---- clients that disconnect mid-reply ---- */

START_TEST(test_disconnect_mid_reply)
{
    start_daemon("");
    /* 1,000 profiles of ~1 KB: an MGET of all of them is a ~1 MB reply */
    enum { KEYS = 1000, PER_BATCH = 100 };
    char pad[1001];
    memset(pad, 'p', 1000);
    pad[1000] = '\0';
    size_t op_size = 1200;
    char *batch = malloc(PER_BATCH * op_size + 2);
    ck_assert_ptr_nonnull(batch);
    for (int first = 0; first < KEYS; first += PER_BATCH) {
        size_t len = 0;
        batch[len++] = '[';
        for (int i = first; i < first + PER_BATCH; i++)
            len += (size_t)snprintf(batch + len, op_size,
                                    "%s{\"op\":\"set\",\"tenant\":\"big\",\"kind\":\"profile\","
                                    "\"key\":\"k%d\",\"value\":{\"pad\":\"%s\"}}",
                                    i > first ? "," : "", i, pad);
        batch[len++] = ']';
        batch[len] = '\0';
        harness_publish_ok(&h, CHANNEL, batch);
    }
    free(batch);
    ck_assert(harness_wait_info(client, WAIT_MS, "entries", KEYS));
    /* the request, as RESP */
    size_t request_size = 64 + KEYS * 16;
    char *request = malloc(request_size);
    ck_assert_ptr_nonnull(request);
    size_t len = (size_t)snprintf(request, request_size,
                                  "*%d\r\n$4\r\nMGET\r\n$3\r\nbig\r\n$7\r\nprofile\r\n", KEYS + 3);
    for (int i = 0; i < KEYS; i++) {
        char key[16];
        int klen = snprintf(key, sizeof(key), "k%d", i);
        len += (size_t)snprintf(request + len, request_size - len, "$%d\r\n%s\r\n", klen, key);
    }
    /* once in full, to know the size */
    redisReply *reply = redisCommand(client, "MGET big profile k0 k999");
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(reply->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(reply->element[1]->type, REDIS_REPLY_STRING);
    freeReplyObject(reply);
    long long rss_before = harness_info_int(client, "used_memory_rss");

    static const char *const others[] = {"INFO all\r\n", "HEALTH\r\n", "TENANT big\r\n"};
    for (int round = 0; round < 300; round++) {
        int fd = harness_raw_open(&h);
        if (round % 3 == 0) {
            /* pipelined: ~20 MB of replies asked for, then gone */
            for (int i = 0; i < 20 && raw_send_lenient(fd, request, len); i++) {
            }
        } else if (round % 3 == 1) {
            harness_raw_send(fd, request, len);
            char buffer[1024];
            bool closed;
            harness_raw_read(fd, buffer, 100, 1000, &closed); /* the start of the reply only */
            /* a reset rather than a close */
            struct linger abort_close = {.l_onoff = 1, .l_linger = 0};
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &abort_close, sizeof(abort_close));
        } else {
            harness_raw_send(fd, request, len);
            raw_send_text(fd, others[round % 3 == 2 ? (round / 3) % 3 : 0]);
        }
        close(fd);
        if (round % 50 == 0)
            still_serving();
    }
    still_serving();
    ck_assert(harness_wait_info(client, WAIT_MS, "connected_clients", 2));
    long long rss_after = harness_info_int(client, "used_memory_rss");
    fprintf(stderr, "disconnect mid-reply: rss %lld -> %lld\n", rss_before, rss_after);
    /* replies of closed clients are freed, not kept: allocator slack only
     * (not measured under AddressSanitizer, which keeps freed memory in
     * quarantine, nor ThreadSanitizer, whose shadow memory grows with what
     * was ever touched) */
    const char *tool = getenv("TENANTCACHED_SANITIZER");
    if (tool == NULL || (strcmp(tool, "address") != 0 && strcmp(tool, "thread") != 0))
        ck_assert_msg(rss_after < rss_before + 64 * 1024 * 1024, "rss grew from %lld to %lld",
                      rss_before, rss_after);
    ck_assert_int_eq(harness_info_int(client, "entries"), KEYS);
    reply = redisCommand(client, "MGET big profile k0 k999");
    ck_assert_ptr_nonnull(reply);
    ck_assert_uint_eq(reply->elements, 2);
    ck_assert_int_eq(reply->element[0]->type, REDIS_REPLY_STRING);
    freeReplyObject(reply);
    free(request);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("hostile");
    TCase *channel = tcase_create("channel");
    tcase_add_checked_fixture(channel, setup, teardown);
    tcase_set_timeout(channel, 60);
    tcase_add_test(channel, test_channel_name_in_log);
    tcase_add_test(channel, test_nul_bytes);
    tcase_add_test(channel, test_invalid_utf8);
    tcase_add_test(channel, test_deep_json);
    tcase_add_test(channel, test_huge_messages);
    suite_add_tcase(suite, channel);

    TCase *socket_input = tcase_create("socket");
    tcase_add_checked_fixture(socket_input, setup, teardown);
    tcase_set_timeout(socket_input, 60);
    tcase_add_test(socket_input, test_lengths);
    tcase_add_test(socket_input, test_large_requests);
    tcase_add_test(socket_input, test_many_args);
    tcase_add_test(socket_input, test_half_request);
    tcase_add_test(socket_input, test_half_request_idle_timeout);
    tcase_add_test(socket_input, test_reload_mid_request);
    tcase_add_test(socket_input, test_buffer_memory_bound);
    tcase_add_test(socket_input, test_buffer_memory_drops_the_largest);
    tcase_add_test(socket_input, test_5000_connections);
    tcase_add_test(socket_input, test_out_of_fds);
    tcase_add_test(socket_input, test_disconnect_mid_reply);
    suite_add_tcase(suite, socket_input);

    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
