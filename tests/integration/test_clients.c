/* test_clients.c - what every Redis client library sends besides queries
 * (docs/reference.md §4, "Speaking Redis to every client"): HELLO and RESP3,
 * MULTI/EXEC/DISCARD/WATCH, CLIENT, SELECT, ECHO, COMMAND, and the debug log
 * of connects and disconnects. A real redis-server and the real daemon;
 * queries with hiredis (the C client library) and raw sockets where the
 * exact bytes matter. The other libraries are driven by tests/clients/. */
#include <check.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define CHANNEL "tenantcached:invalidate"
#define WAIT_MS 3000

static struct harness h;
static redisContext *client;

static const char *config_text(const char *top, const char *listen, const char *redis)
{
    static char text[4096];
    int n = snprintf(text, sizeof(text),
                     "log_level: debug\n"
                     "threads: 2\n"
                     "shards: 4\n"
                     "%s"
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
                     "memory:\n"
                     "  max_bytes: 16mb\n"
                     "  tenant_max_bytes: 1mb\n"
                     "  max_tenants: 1000\n",
                     top, listen, redis);
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

static void start_default(void)
{
    start_daemon(config_text("", "", ""));
}

#define expect(...) harness_expect_match(client, __VA_ARGS__)

/* The reply's description, for assertions on parts of it. */
__attribute__((format(printf, 3, 4)))
static void describe(char *got, size_t size, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    redisReply *reply = redisvCommand(client, fmt, args);
    va_end(args);
    harness_describe_reply(reply, got, size);
    if (reply != NULL)
        freeReplyObject(reply);
}

/* Sends raw bytes on a new connection and asserts the exact bytes answered. */
static void raw_exchange(int fd, const char *request, const char *expected)
{
    size_t len = strlen(request);
    ck_assert_int_eq(write(fd, request, len), (ssize_t)len);
    size_t want = strlen(expected);
    char got[4096];
    bool closed = false;
    size_t n = harness_raw_read(fd, got, want, WAIT_MS, &closed);
    got[n] = '\0';
    ck_assert_msg(n == want && memcmp(got, expected, want) == 0, "%s: expected '%s', got '%s'",
                  request, expected, got);
}

/* ---- HELLO and RESP3 ---- */

START_TEST(test_hello)
{
    start_default();
    expect("[server,tenantcached,version,*", "HELLO");
    expect("-NOPROTO unsupported protocol version", "HELLO 4");
    expect("-NOPROTO unsupported protocol version", "HELLO 1");
    expect("-ERR Protocol version is not an integer or out of range", "HELLO three");
    expect("-ERR Syntax error in HELLO option 'BOGUS'", "HELLO 2 BOGUS");
    expect("(nil)", "CLIENT GETNAME");
    char got[1024];
    describe(got, sizeof(got), "HELLO 2 AUTH someone secret SETNAME app-1");
    char expected[256];
    redisReply *id = redisCommand(client, "CLIENT ID");
    ck_assert_int_eq(id->type, REDIS_REPLY_INTEGER);
    snprintf(expected, sizeof(expected),
             "[server,tenantcached,version,%s,proto,:2,id,:%lld,mode,standalone,role,master,"
             "modules,[]]",
             TENANTCACHED_VERSION, id->integer);
    freeReplyObject(id);
    ck_assert_str_eq(got, expected);
    expect("app-1", "CLIENT GETNAME");
    expect("-ERR Client names cannot contain spaces, newlines or special characters.",
           "HELLO 2 SETNAME %s", "a b");
}
END_TEST

/* After HELLO 3: the HELLO reply is a map, nil is "_", everything else keeps
 * its RESP2 shape; HELLO 2 goes back. */
START_TEST(test_resp3)
{
    start_default();
    harness_publish_set(&h, CHANNEL, "acme", "credit", "op", "5");
    ck_assert(harness_wait_reply(client, WAIT_MS, "5", "GET acme credit op"));
    int fd = harness_raw_connect(&h);
    ck_assert_int_ge(fd, 0);
    char hello3[160];
    snprintf(hello3, sizeof(hello3),
             "%%7\r\n$6\r\nserver\r\n$12\r\ntenantcached\r\n$7\r\nversion\r\n$%zu\r\n%s\r\n"
             "$5\r\nproto\r\n:3\r\n$2\r\nid\r\n:",
             strlen(TENANTCACHED_VERSION), TENANTCACHED_VERSION);
    raw_exchange(fd, "HELLO 3\r\n", hello3);
    char rest[256];
    bool closed = false;
    size_t n = harness_raw_read(fd, rest, sizeof(rest) - 1, 300, &closed);
    rest[n] = '\0';
    ck_assert_msg(strstr(rest, "$4\r\nmode\r\n$10\r\nstandalone\r\n$4\r\nrole\r\n$6\r\nmaster\r\n"
                               "$7\r\nmodules\r\n*0\r\n") != NULL,
                  "HELLO 3 tail: %s", rest);
    raw_exchange(fd, "GET acme credit nope\r\n", "_\r\n");
    raw_exchange(fd, "GET acme credit op\r\n", "$1\r\n5\r\n");
    raw_exchange(fd, "MGET acme credit op nope\r\n", "*2\r\n$1\r\n5\r\n_\r\n");
    raw_exchange(fd, "CLIENT GETNAME\r\n", "_\r\n");
    raw_exchange(fd, "CAN acme nobody read\r\n", "_\r\n");
    raw_exchange(fd, "PING\r\n", "+PONG\r\n");
    raw_exchange(fd, "HELLO 2\r\n", "*14\r\n$6\r\nserver\r\n");
    n = harness_raw_read(fd, rest, sizeof(rest) - 1, 300, &closed);
    raw_exchange(fd, "GET acme credit nope\r\n", "$-1\r\n");
    close(fd);
}
END_TEST

/* ---- MULTI / EXEC ---- */

START_TEST(test_multi_exec)
{
    start_default();
    harness_publish_set(&h, CHANNEL, "acme", "credit", "op", "5");
    ck_assert(harness_wait_reply(client, WAIT_MS, "5", "GET acme credit op"));
    expect("-ERR EXEC without MULTI", "EXEC");
    expect("-ERR DISCARD without MULTI", "DISCARD");
    expect("+OK", "WATCH a b");
    expect("+OK", "UNWATCH");
    expect("+OK", "MULTI");
    expect("-ERR MULTI calls can not be nested", "MULTI");
    expect("-ERR WATCH inside MULTI is not allowed", "WATCH a");
    expect("+QUEUED", "GET acme credit op");
    expect("+QUEUED", "PING");
    expect("+QUEUED", "GET cache:acme:credit:op");
    expect("+QUEUED", "GET acme credit nope");
    expect("+QUEUED", "GET bad:tenant credit op");
    expect("+QUEUED", "UNWATCH");
    expect("[5,+PONG,5,(nil),-ERR invalid tenant,+OK]", "EXEC");
    expect("-ERR EXEC without MULTI", "EXEC");
    /* DISCARD forgets the queue */
    expect("+OK", "MULTI");
    expect("+QUEUED", "PING");
    expect("+OK", "DISCARD");
    expect("-ERR EXEC without MULTI", "EXEC");
    expect("5", "GET acme credit op");
    /* an unknown command or a wrong arity while queueing aborts EXEC */
    expect("+OK", "MULTI");
    expect("+QUEUED", "PING");
    expect("-ERR unknown command 'NOSUCH'", "NOSUCH x");
    expect("+QUEUED", "PING");
    expect("-EXECABORT Transaction discarded because of previous errors.", "EXEC");
    expect("+OK", "MULTI");
    expect("-ERR wrong number of arguments for 'CAN'", "CAN acme");
    expect("-EXECABORT Transaction discarded because of previous errors.", "EXEC");
    expect("+OK", "MULTI");
    expect("[]", "EXEC");
    expect("+PONG", "PING");
}
END_TEST

/* Queued commands that miss wait for their fills; EXEC answers once all are
 * answered, in order. */
START_TEST(test_exec_fills)
{
    start_daemon(config_text("", "",
                             "  l2: true\n"
                             "  key_format: \"cache:{tenant}:{kind}:{key}\"\n"));
    redisContext *store = harness_redis_connect(&h);
    ck_assert_ptr_nonnull(store);
    redisReply *reply = redisCommand(store, "MSET cache:acme:credit:a 11 cache:acme:credit:b 22");
    ck_assert_int_eq(reply->type, REDIS_REPLY_STATUS);
    freeReplyObject(reply);
    redisFree(store);
    expect("+OK", "MULTI");
    expect("+QUEUED", "GET acme credit a");
    expect("+QUEUED", "PING");
    expect("+QUEUED", "MGET cache:acme:credit:b cache:acme:credit:c");
    expect("+QUEUED", "CREDIT acme a");
    expect("[11,+PONG,[22,(nil)],11]", "EXEC");
    expect("11", "GET acme credit a");
    /* pipelined: the replies after EXEC still come in order */
    redisAppendCommand(client, "MULTI");
    redisAppendCommand(client, "GET acme credit b");
    redisAppendCommand(client, "GET acme credit d");
    redisAppendCommand(client, "EXEC");
    redisAppendCommand(client, "ECHO after");
    const char *const expected[] = {"+OK", "+QUEUED", "+QUEUED", "[22,(nil)]", "after"};
    for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
        void *got = NULL;
        ck_assert_int_eq(redisGetReply(client, &got), REDIS_OK);
        char text[256];
        harness_describe_reply(got, text, sizeof(text));
        freeReplyObject(got);
        ck_assert_str_eq(text, expected[i]);
    }
}
END_TEST

/* The queue counts against listen.max_reply_backlog. */
START_TEST(test_transaction_limit)
{
    start_daemon(config_text("", "  max_reply_backlog: 4kb\n", ""));
    char key[1001];
    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    expect("+OK", "MULTI");
    for (int i = 0; i < 3; i++)
        expect("+QUEUED", "GET acme credit %s", key);
    expect("-ERR transaction too large (listen.max_reply_backlog)", "GET acme credit %s", key);
    expect("-EXECABORT Transaction discarded because of previous errors.", "EXEC");
    expect("+PONG", "PING");
}
END_TEST

/* ---- CLIENT, SELECT, ECHO ---- */

START_TEST(test_client_commands)
{
    start_default();
    redisReply *id = redisCommand(client, "CLIENT ID");
    ck_assert_int_eq(id->type, REDIS_REPLY_INTEGER);
    ck_assert_int_gt(id->integer, 0);
    long long my_id = id->integer;
    freeReplyObject(id);
    expect("+OK", "CLIENT SETNAME worker-7");
    expect("worker-7", "CLIENT GETNAME");
    expect("-ERR Client names cannot contain spaces, newlines or special characters.",
           "CLIENT SETNAME %s", "two words");
    expect("+OK", "CLIENT SETINFO LIB-NAME hiredis");
    expect("+OK", "CLIENT SETINFO lib-ver 0.14.1");
    expect("-ERR Unrecognized option 'COLOR'", "CLIENT SETINFO COLOR blue");
    expect("-ERR unknown subcommand 'FROB'. Try CLIENT HELP.", "CLIENT FROB");
    char info[2048], wanted[256];
    describe(info, sizeof(info), "CLIENT INFO");
    snprintf(wanted, sizeof(wanted), "id=%lld ", my_id);
    ck_assert_msg(strncmp(info, wanted, strlen(wanted)) == 0, "CLIENT INFO: %s", info);
    snprintf(wanted, sizeof(wanted), " uid=%u gid=%u pid=%ld\n", (unsigned)getuid(),
             (unsigned)getgid(), (long)getpid());
    ck_assert_msg(strstr(info, wanted) != NULL, "CLIENT INFO: %s", info);
    ck_assert_msg(strstr(info, " name=worker-7 ") != NULL, "CLIENT INFO: %s", info);
    ck_assert_msg(strstr(info, " lib-name=hiredis lib-ver=0.14.1 ") != NULL, "CLIENT INFO: %s", info);
    ck_assert_msg(strstr(info, " cmd=client ") != NULL, "CLIENT INFO: %s", info);
    ck_assert_msg(strstr(info, " age=0 idle=0 ") != NULL, "CLIENT INFO: %s", info);
    ck_assert_msg(strstr(info, " multi=-1 ") != NULL, "CLIENT INFO: %s", info);
    expect("+OK", "MULTI");
    expect("+QUEUED", "PING");
    expect("+QUEUED", "CLIENT INFO");
    redisReply *queued = redisCommand(client, "EXEC");
    ck_assert_int_eq(queued->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(queued->elements, 2);
    ck_assert_msg(strstr(queued->element[1]->str, " multi=2 ") != NULL, "CLIENT INFO: %s",
                  queued->element[1]->str);
    freeReplyObject(queued);
    /* root is admin without access rules: LIST shows every connection */
    redisContext *other = harness_connect(&h);
    ck_assert_ptr_nonnull(other);
    redisReply *named = redisCommand(other, "CLIENT SETNAME second");
    freeReplyObject(named);
    char list[4096];
    describe(list, sizeof(list), "CLIENT LIST");
    ck_assert_msg(strstr(list, "name=worker-7 ") != NULL && strstr(list, "name=second ") != NULL,
                  "CLIENT LIST: %s", list);
    redisFree(other);
    expect("+OK", "SELECT 0");
    expect("-ERR DB index is out of range", "SELECT 1");
    expect("-ERR value is not an integer or out of range", "SELECT x");
    expect("hello world", "ECHO %s", "hello world");
    expect("-ERR wrong number of arguments for 'ECHO'", "ECHO");
}
END_TEST

/* A peer that is not admin sees only its own connection in CLIENT LIST. */
START_TEST(test_client_list_not_admin)
{
    start_daemon(config_text("access:\n  - {uid: 0, tenants: \"*\", admin: false}\n", "", ""));
    expect("+OK", "CLIENT SETNAME mine");
    redisContext *other = harness_connect(&h);
    ck_assert_ptr_nonnull(other);
    redisReply *named = redisCommand(other, "CLIENT SETNAME theirs");
    freeReplyObject(named);
    char list[4096];
    describe(list, sizeof(list), "CLIENT LIST");
    ck_assert_msg(strstr(list, "name=mine ") != NULL && strstr(list, "name=theirs") == NULL,
                  "CLIENT LIST: %s", list);
    int lines = 0;
    for (const char *c = list; *c != '\0'; c++)
        lines += *c == '\n';
    ck_assert_int_eq(lines, 1);
    redisFree(other);
}
END_TEST

/* ---- COMMAND ---- */

START_TEST(test_command)
{
    start_default();
    redisReply *all = redisCommand(client, "COMMAND");
    ck_assert_int_eq(all->type, REDIS_REPLY_ARRAY);
    size_t count = all->elements;
    bool seen_can = false;
    for (size_t i = 0; i < count; i++) {
        redisReply *entry = all->element[i];
        ck_assert_int_eq(entry->type, REDIS_REPLY_ARRAY);
        ck_assert_int_eq(entry->elements, 10);
        if (strcmp(entry->element[0]->str, "can") == 0) {
            seen_can = true;
            ck_assert_int_eq(entry->element[1]->integer, 4);
        }
    }
    freeReplyObject(all);
    ck_assert(seen_can);
    char text[64];
    snprintf(text, sizeof(text), ":%zu", count);
    expect(text, "COMMAND COUNT");
    expect("[[get,:-2,[+readonly,+fast],:0,:0,:0,[+@read],[],[],[]],(nil)]",
           "COMMAND INFO get nosuch");
    redisReply *can = redisCommand(client, "COMMAND DOCS can");
    ck_assert_int_eq(can->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(can->elements, 2);
    ck_assert_str_eq(can->element[0]->str, "can");
    redisReply *doc = can->element[1];
    ck_assert_int_eq(doc->elements, 8);
    const char *const fields[] = {"summary", "since", "group", "arguments"};
    for (size_t i = 0; i < 4; i++)
        ck_assert_str_eq(doc->element[2 * i]->str, fields[i]);
    ck_assert_str_eq(doc->element[1]->str, "1 if the user is active and a role of theirs grants "
                                           "the permission, 0 if not, nil if the user is unknown");
    ck_assert_str_eq(doc->element[3]->str, "0.1.0"); /* since */
    ck_assert_str_eq(doc->element[5]->str, "tenantcached");
    char arguments[1024];
    harness_describe_reply(doc->element[7], arguments, sizeof(arguments));
    ck_assert_str_eq(arguments, "[[name,tenant,type,string,display_text,tenant],"
                                "[name,user,type,string,display_text,user],"
                                "[name,permission,type,string,display_text,permission]]");
    freeReplyObject(can);
    redisReply *flush = redisCommand(client, "COMMAND DOCS FLUSH nosuch");
    ck_assert_int_eq(flush->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(flush->elements, 2);
    harness_describe_reply(flush->element[1]->element[7], arguments, sizeof(arguments));
    ck_assert_str_eq(arguments, "[[name,tenant,type,string,display_text,tenant],"
                                "[name,kind,type,string,display_text,kind,flags,[+optional]]]");
    freeReplyObject(flush);
    /* HELLO's syntax: an optional block holding a typed word, a token block
     * and a token argument (redis-cli shows it as redis-server's). */
    redisReply *hello = redisCommand(client, "COMMAND DOCS hello");
    ck_assert_int_eq(hello->type, REDIS_REPLY_ARRAY);
    ck_assert_str_eq(hello->element[1]->element[3]->str, "0.2.0"); /* since */
    redisReply *outer = hello->element[1]->element[7]->element[0];
    harness_describe_reply(outer->element[9]->element[0], arguments, sizeof(arguments));
    ck_assert_str_eq(arguments, "[name,protover,type,integer,display_text,protover]");
    harness_describe_reply(outer->element[9]->element[1], arguments, sizeof(arguments));
    ck_assert_str_eq(arguments, "[name,auth,type,block,display_text,auth,token,AUTH,flags,[+optional],"
                                "arguments,[[name,username,type,string,display_text,username],"
                                "[name,password,type,string,display_text,password]]]");
    harness_describe_reply(outer->element[9]->element[2], arguments, sizeof(arguments));
    ck_assert_str_eq(arguments, "[name,clientname,type,string,display_text,clientname,token,SETNAME,"
                                "flags,[+optional]]");
    ck_assert_str_eq(outer->element[3]->str, "block");
    freeReplyObject(hello);
    expect("[]", "COMMAND DOCS nosuch");
    redisReply *docs = redisCommand(client, "COMMAND DOCS");
    ck_assert_int_eq(docs->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(docs->elements, 2 * count);
    freeReplyObject(docs);
    expect("-ERR unknown subcommand 'FROB'. Try COMMAND HELP.", "COMMAND FROB");
}
END_TEST

/* ---- hiredis, the C library, as an application uses it ---- */

struct pool_caller {
    struct harness *h;
    int good;
};

static void *pool_call(void *arg)
{
    struct pool_caller *caller = arg;
    redisContext *own = harness_connect(caller->h);
    for (int i = 0; own != NULL && i < 50; i++) {
        redisReply *reply = redisCommand(own, "GET cache:acme:credit:op");
        caller->good += reply != NULL && reply->type == REDIS_REPLY_STRING &&
                        strcmp(reply->str, "5") == 0;
        if (reply != NULL)
            freeReplyObject(reply);
    }
    if (own != NULL)
        redisFree(own);
    return NULL;
}

/* The steps tests/clients/ runs for every other library: GET by name, CAN
 * through the raw-command API, a pipeline of 100, a transaction, a client
 * name, concurrent callers, an error reply, a reconnect after a restart. */
START_TEST(test_hiredis_library)
{
    start_daemon(config_text("", "",
                             "  l2: true\n"
                             "  key_format: \"cache:{tenant}:{kind}:{key}\"\n"));
    redisContext *store = harness_redis_connect(&h);
    ck_assert_ptr_nonnull(store);
    redisReply *reply = redisCommand(store, "MSET cache:acme:credit:op 5 cache:acme:user:alice %s "
                                            "cache:acme:role:sales %s",
                                     "{\"status\":\"active\",\"roles\":[\"sales\"]}",
                                     "[\"crm.*\"]");
    ck_assert_int_eq(reply->type, REDIS_REPLY_STATUS);
    freeReplyObject(reply);
    redisFree(store);
    /* no wait for the daemon's L2 connection: a fill waits for it */
    expect("5", "GET cache:acme:credit:op");
    expect(":1", "CAN acme alice crm.leads.create");
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(redisAppendCommand(client, "GET cache:acme:credit:op"), REDIS_OK);
    for (int i = 0; i < 100; i++) {
        void *got = NULL;
        ck_assert_int_eq(redisGetReply(client, &got), REDIS_OK);
        ck_assert_str_eq(((redisReply *)got)->str, "5");
        freeReplyObject(got);
    }
    expect("+OK", "MULTI");
    expect("+QUEUED", "CAN acme alice crm.leads.create");
    expect("+QUEUED", "CREDIT acme op");
    expect("[:1,5]", "EXEC");
    expect("+OK", "CLIENT SETNAME c-app");
    expect("c-app", "CLIENT GETNAME");
    pthread_t threads[4];
    struct pool_caller callers[4];
    for (int i = 0; i < 4; i++) {
        callers[i] = (struct pool_caller){.h = &h};
        ck_assert_int_eq(pthread_create(&threads[i], NULL, pool_call, &callers[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        ck_assert_int_eq(callers[i].good, 50);
    }
    expect("-ERR wrong number of arguments for 'CAN'", "CAN acme");
    ck_assert_int_eq(harness_daemon_stop(&h, SIGTERM), 0);
    ck_assert_int_eq(harness_daemon_start(&h, config_text("", "",
                                                          "  l2: true\n"
                                                          "  key_format: \"cache:{tenant}:{kind}:{key}\"\n")),
                     0);
    /* hiredis does not reconnect by itself: the first command fails, then
     * redisReconnect() gets a new connection that answers. */
    reply = redisCommand(client, "GET cache:acme:credit:op");
    ck_assert_ptr_null(reply);
    ck_assert_int_eq(redisReconnect(client), REDIS_OK);
    expect("5", "GET cache:acme:credit:op");
}
END_TEST

/* ---- log_level: debug ---- */

START_TEST(test_debug_log)
{
    start_default();
    expect("+OK", "CLIENT SETNAME logged-app");
    redisFree(client);
    client = harness_connect(&h);
    ck_assert_ptr_nonnull(client);
    expect("+PONG", "PING");
    char path[HARNESS_PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/daemon.log", h.dir);
    char connected[128], disconnected[160];
    snprintf(connected, sizeof(connected), "connected: uid %u gid %u pid %ld", (unsigned)getuid(),
             (unsigned)getgid(), (long)getpid());
    snprintf(disconnected, sizeof(disconnected),
             "disconnected: uid %u gid %u pid %ld name 'logged-app'", (unsigned)getuid(),
             (unsigned)getgid(), (long)getpid());
    bool found = false;
    for (long long end = harness_now_ms() + WAIT_MS; !found && harness_now_ms() < end;) {
        FILE *log = fopen(path, "r");
        ck_assert_ptr_nonnull(log);
        char line[1024];
        bool seen_connect = false, seen_disconnect = false;
        while (fgets(line, sizeof(line), log) != NULL) {
            seen_connect |= strstr(line, connected) != NULL;
            seen_disconnect |= strstr(line, disconnected) != NULL;
        }
        fclose(log);
        found = seen_connect && seen_disconnect;
        if (!found)
            harness_sleep_ms(50);
    }
    if (!found)
        harness_dump_log(&h);
    ck_assert_msg(found, "no '%s' and '%s' in the log", connected, disconnected);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("clients");
    TCase *tc = tcase_create("clients");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_hello);
    tcase_add_test(tc, test_resp3);
    tcase_add_test(tc, test_multi_exec);
    tcase_add_test(tc, test_exec_fills);
    tcase_add_test(tc, test_transaction_limit);
    tcase_add_test(tc, test_client_commands);
    tcase_add_test(tc, test_client_list_not_admin);
    tcase_add_test(tc, test_command);
    tcase_add_test(tc, test_debug_log);
    tcase_add_test(tc, test_hiredis_library);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
