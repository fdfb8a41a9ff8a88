/* test_commands.c - unit tests of commands.c, the query commands of
 * docs/reference.md §4: each request runs through commands_execute() against
 * a real cache filled by real invalidation messages (message.c + apply.c),
 * and the test asserts the exact RESP bytes written to the client's output.
 * No fill engine (env.fill NULL): a miss answers nil, as the header says. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "apply.h"
#include "blocked.h"
#include "cache.h"
#include "commands.h"
#include "config.h"
#include "freshness.h"
#include "log.h"
#include "message.h"
#include "protocol.h"
#include "reply.h"
#include "stats.h"

#define NOW 1000000

static struct config *config;
static struct cache *cache;
static struct apply *apply;
static struct commands_env env;
static struct commands_client client;
static struct reply_buffer out;

static const char *const default_yaml = "log_level: error\n";

/* Builds config, cache and applier from yaml, and one client that the peer
 * credentials of this process identify. */
static void start(const char *yaml)
{
    char error[ERROR_MAX] = "";
    config = config_load_buffer("test.yaml", yaml, strlen(yaml), error);
    ck_assert_msg(config != NULL, "config rejected: %s", error);
    struct cache_limits limits = {
        .max_bytes = config->memory.max_bytes,
        .tenant_max_bytes = config->memory.tenant_max_bytes,
        .max_tenants = config->memory.max_tenants,
        .high_watermark = config->memory.high_watermark,
        .low_watermark = config->memory.low_watermark,
    };
    cache = cache_create(4, &limits);
    struct apply_callbacks callbacks = {0};
    apply = apply_create(cache, config, &callbacks);
    env = (struct commands_env){.cache = cache, .config = config, .config_generation = 1};
    memset(&client, 0, sizeof(client));
    memset(&out, 0, sizeof(out));
    client.out = &out;
    client.uid = getuid();
    client.gid = getgid();
    client.pid = getpid();
    client.blocked = blocked_create(NULL, &client);
}

static void setup(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    memset(&stats, 0, sizeof(stats));
    config = NULL;
}

static void teardown(void)
{
    if (config == NULL)
        return;
    blocked_detach(client.blocked);
    acl_grant_clear(&client.grant);
    reply_buffer_free(&out);
    apply_destroy(apply);
    cache_destroy(cache);
    config_free(config);
    config = NULL;
}

/* Parses one invalidation message with the current config and applies it. */
static void publish(const char *text)
{
    struct message_batch batch;
    char error[ERROR_MAX] = "";
    ck_assert_msg(message_parse(config, text, strlen(text), &batch, error) == 0,
                  "%s rejected: %s", text, error);
    apply_batch(apply, &batch, NOW);
    message_batch_free(&batch);
}

/* Runs the request given as words (NULL-terminated) at now_ms and returns
 * what it wrote (static, NUL-terminated). */
static const char *run_at(uint64_t now_ms, const char *const *words)
{
    static char got[8192];
    size_t argc = 0;
    size_t lens[32];
    while (words[argc] != NULL) {
        ck_assert_uint_lt(argc, 32);
        lens[argc] = strlen(words[argc]);
        argc++;
    }
    struct protocol_request request = {.argc = argc, .argv = (const char **)words,
                                       .argv_len = lens};
    ck_assert_int_eq(commands_execute(&env, &client, &request, now_ms), COMMANDS_DONE);
    size_t len = reply_buffer_length(&out);
    ck_assert_uint_lt(len, sizeof(got));
    memcpy(got, reply_buffer_data(&out), len);
    got[len] = '\0';
    reply_buffer_drain(&out, len);
    return got;
}

#define RUN(...) run_at(NOW, (const char *const[]){__VA_ARGS__, NULL})
#define EXPECT(expected, ...) ck_assert_str_eq(RUN(__VA_ARGS__), expected)

/* The fixture of docs/reference.md §2 and §4. */
static void publish_acme(void)
{
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"crm.leads.create\","
            "\"value\":3.5}");
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"sms.send\","
            "\"value\":{\"cost\":12,\"currency\":\"credits\"}}");
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"sales\","
            "\"value\":[\"crm.*\",\"reports.read\"]}");
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u1\","
            "\"value\":{\"status\":\"active\",\"roles\":[\"sales\"]}}");
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u2\","
            "\"value\":{\"status\":\"suspended\",\"roles\":[\"sales\"]}}");
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"hierarchy\",\"key\":\"org-main\","
            "\"value\":{\"name\":\"Main\"}}");
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"hierarchy\",\"key\":\"dept-sales\","
            "\"value\":{\"parent\":\"org-main\"}}");
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"hierarchy\",\"key\":\"team-8\","
            "\"value\":{\"parent\":\"dept-sales\"}}");
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"hierarchy\",\"key\":\"team-7\","
            "\"value\":{\"parent\":\"dept-sales\",\"name\":\"Team 7\"}}");
}

/* ---- reading entries ---- */

START_TEST(test_get_forms)
{
    start(default_yaml);
    publish_acme();
    EXPECT("$24\r\n[\"crm.*\",\"reports.read\"]\r\n", "GET", "acme", "role", "sales");
    EXPECT("$24\r\n[\"crm.*\",\"reports.read\"]\r\n", "GET", "cache:acme:role:sales");
    EXPECT("$-1\r\n", "GET", "acme", "role", "nobody");
    EXPECT("$-1\r\n", "GET", "globex", "role", "sales");
    /* a name that does not parse as the format is nil, not an error */
    EXPECT("$-1\r\n", "GET", "cache:acme:nokind:sales");
    EXPECT("$-1\r\n", "GET", "not-a-name");
    /* command names are case-insensitive */
    EXPECT("$3\r\n3.5\r\n", "get", "acme", "credit", "crm.leads.create");
}
END_TEST

START_TEST(test_mget_forms)
{
    start(default_yaml);
    publish_acme();
    EXPECT("*3\r\n$3\r\n3.5\r\n$32\r\n{\"cost\":12,\"currency\":\"credits\"}\r\n$-1\r\n", "MGET",
           "acme", "credit", "crm.leads.create", "sms.send", "nope");
    EXPECT("*2\r\n$3\r\n3.5\r\n$-1\r\n", "MGET", "cache:acme:credit:crm.leads.create",
           "cache:acme:credit:none");
}
END_TEST

START_TEST(test_argument_errors)
{
    start(default_yaml);
    publish_acme();
    EXPECT("-ERR unknown command 'NOPE'\r\n", "NOPE", "x");
    EXPECT("-ERR unknown command 'a?b'\r\n", "a\x01" "b");
    EXPECT("-ERR wrong number of arguments for 'GET'\r\n", "GET", "acme", "role");
    EXPECT("-ERR wrong number of arguments for 'CREDIT'\r\n", "CREDIT", "acme");
    EXPECT("-ERR invalid tenant\r\n", "GET", "..", "role", "sales");
    EXPECT("-ERR unknown kind 'widget'\r\n", "GET", "acme", "widget", "sales");
    EXPECT("-ERR invalid key\r\n", "GET", "acme", "role", "..");
    EXPECT("-ERR invalid permission\r\n", "CAN", "acme", "u1", "crm..leads");
    EXPECT("-ERR invalid permission\r\n", "ROLECAN", "acme", "sales", "");
}
END_TEST

/* ---- authorisation and lookups ---- */

START_TEST(test_credit_and_status)
{
    start(default_yaml);
    publish_acme();
    EXPECT("$3\r\n3.5\r\n", "CREDIT", "acme", "crm.leads.create");
    EXPECT("$2\r\n12\r\n", "CREDIT", "acme", "sms.send");
    EXPECT("$-1\r\n", "CREDIT", "acme", "nope");
    EXPECT("$6\r\nactive\r\n", "STATUS", "acme", "u1");
    EXPECT("$9\r\nsuspended\r\n", "STATUS", "acme", "u2");
    EXPECT("$-1\r\n", "STATUS", "acme", "nobody");
}
END_TEST

START_TEST(test_can_and_rolecan)
{
    start(default_yaml);
    publish_acme();
    EXPECT(":1\r\n", "CAN", "acme", "u1", "crm.leads.create");
    EXPECT(":1\r\n", "CAN", "acme", "u1", "reports.read");
    EXPECT(":0\r\n", "CAN", "acme", "u1", "billing.refund");
    EXPECT(":0\r\n", "CAN", "acme", "u1", "crm"); /* crm.* needs one more segment */
    /* a status that is not active grants nothing */
    EXPECT(":0\r\n", "CAN", "acme", "u2", "crm.leads.create");
    EXPECT("$-1\r\n", "CAN", "acme", "nobody", "crm.leads.create");
    EXPECT(":1\r\n", "ROLECAN", "acme", "sales", "crm.leads");
    EXPECT(":0\r\n", "ROLECAN", "acme", "sales", "reports.write");
    EXPECT("$-1\r\n", "ROLECAN", "acme", "nobody", "crm.leads");
    EXPECT("*2\r\n$5\r\ncrm.*\r\n$12\r\nreports.read\r\n", "PERMS", "acme", "sales");
    EXPECT("$-1\r\n", "PERMS", "acme", "nobody");
}
END_TEST

START_TEST(test_can_with_a_missing_role)
{
    start(default_yaml);
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u3\","
            "\"value\":{\"status\":\"active\",\"roles\":[\"ghost\",\"viewer\"]}}");
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"viewer\","
            "\"value\":[\"*.read\"]}");
    /* a listed role that does not exist grants nothing; another still does */
    EXPECT(":1\r\n", "CAN", "acme", "u3", "users.read");
    EXPECT(":0\r\n", "CAN", "acme", "u3", "users.list.read");
}
END_TEST

/* Every role of a user and every pattern of a role is read until one
 * grants, written plainly or with escapes (then kept decoded in the blob). */
START_TEST(test_can_reads_every_role_and_pattern)
{
    start(default_yaml);
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u4\","
            "\"value\":{\"status\":\"active\",\"roles\":[\"viewer\",\"o\\\"ps\"]}}");
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"viewer\","
            "\"value\":[\"*.read\",\"docs.*\"]}");
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"o\\\"ps\","
            "\"value\":{\"permissions\":[\"hr.*.read\",\"ops.tickets.close\","
            "\"fin.\\\"x\\\".*\"]}}");
    EXPECT(":1\r\n", "CAN", "acme", "u4", "users.read");
    EXPECT(":1\r\n", "CAN", "acme", "u4", "docs.a.b");
    EXPECT(":1\r\n", "CAN", "acme", "u4", "ops.tickets.close");
    EXPECT(":1\r\n", "CAN", "acme", "u4", "fin.\"x\".export");
    EXPECT(":0\r\n", "CAN", "acme", "u4", "fin.x.export");
    EXPECT(":0\r\n", "CAN", "acme", "u4", "ops.tickets");
    EXPECT(":1\r\n", "CAN", "acme", "u4", "hr.staff.read");
    EXPECT(":0\r\n", "CAN", "acme", "u4", "hr.staff.write");
    EXPECT(":1\r\n", "ROLECAN", "acme", "o\"ps", "fin.\"x\".a.b");
    EXPECT(":0\r\n", "ROLECAN", "acme", "o\"ps", "docs.a");
}
END_TEST

/* A status is active when it equals one of active_statuses: not a prefix of
 * one, nor one followed by more. */
START_TEST(test_can_active_statuses)
{
    start("log_level: error\nactive_statuses: [active, trial]\n");
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"all\","
            "\"value\":[\"*\"]}");
    const char *const statuses[] = {"active", "trial", "act",   "activex",
                                    "tria",   "trials", "Active"};
    const bool active[] = {true, true, false, false, false, false, false};
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++) {
        char message[256];
        snprintf(message, sizeof(message),
                 "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u%zu\","
                 "\"value\":{\"status\":\"%s\",\"roles\":[\"all\"]}}",
                 i, statuses[i]);
        publish(message);
        char user[16];
        snprintf(user, sizeof(user), "u%zu", i);
        const char *want = active[i] ? ":1\r\n" : ":0\r\n";
        ck_assert_msg(strcmp(RUN("CAN", "acme", user, "crm.leads"), want) == 0, "status %s",
                      statuses[i]);
    }
}
END_TEST

START_TEST(test_hierarchy)
{
    start(default_yaml);
    publish_acme();
    EXPECT("*2\r\n$10\r\ndept-sales\r\n$8\r\norg-main\r\n", "ANCESTORS", "acme", "team-7");
    EXPECT("*0\r\n", "ANCESTORS", "acme", "org-main");
    EXPECT("$-1\r\n", "ANCESTORS", "acme", "nowhere");
    /* sorted, whatever the order they arrived in */
    EXPECT("*2\r\n$6\r\nteam-7\r\n$6\r\nteam-8\r\n", "CHILDREN", "acme", "dept-sales");
    EXPECT("*0\r\n", "CHILDREN", "acme", "team-7");
}
END_TEST

START_TEST(test_a_deleted_entry_is_nil)
{
    start(default_yaml);
    publish_acme();
    publish("{\"op\":\"del\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"sales\"}");
    EXPECT("$-1\r\n", "GET", "acme", "role", "sales");
    EXPECT("$-1\r\n", "PERMS", "acme", "sales");
    /* u1's only role is gone: u1 is known, but may do nothing */
    EXPECT(":0\r\n", "CAN", "acme", "u1", "crm.leads.create");
}
END_TEST

/* ---- administration ---- */

START_TEST(test_ping_quit)
{
    start(default_yaml);
    EXPECT("+PONG\r\n", "PING");
    EXPECT("$5\r\nhello\r\n", "PING", "hello");
    ck_assert(!client.close_after_reply);
    EXPECT("+OK\r\n", "QUIT");
    ck_assert(client.close_after_reply);
}
END_TEST

START_TEST(test_flush)
{
    /* no access rules: this process's own user is an admin */
    start(default_yaml);
    publish_acme();
    EXPECT("+OK\r\n", "FLUSH", "acme", "credit");
    EXPECT("$-1\r\n", "CREDIT", "acme", "crm.leads.create");
    EXPECT("$6\r\nactive\r\n", "STATUS", "acme", "u1");
    EXPECT("-ERR unknown kind 'widget'\r\n", "FLUSH", "acme", "widget");
    EXPECT("+OK\r\n", "FLUSH", "*");
    EXPECT("$-1\r\n", "STATUS", "acme", "u1");
}
END_TEST

START_TEST(test_tenant_lines)
{
    start("log_level: error\napplication: finance\n");
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"op\",\"value\":3}");
    const char *got = RUN("TENANT", "acme");
    ck_assert_msg(got[0] == '$', "%s", got);
    ck_assert_ptr_nonnull(strstr(got, "tenant:acme\r\n"));
    ck_assert_ptr_nonnull(strstr(got, "resident:1\r\n"));
    ck_assert_ptr_nonnull(strstr(got, "entries:1\r\n"));
    ck_assert_ptr_nonnull(strstr(got, "credit_entries:1\r\n"));
    ck_assert_ptr_nonnull(strstr(got, "role_entries:0\r\n"));
    /* a tenant with nothing cached: the same lines with zeros */
    got = RUN("TENANT", "globex");
    ck_assert_ptr_nonnull(strstr(got, "tenant:globex\r\n"));
    ck_assert_ptr_nonnull(strstr(got, "resident:0\r\n"));
    ck_assert_ptr_nonnull(strstr(got, "entries:0\r\n"));
    ck_assert_ptr_nonnull(strstr(got, "credit_entries:0\r\n"));
}
END_TEST

/* ---- access rules ---- */

START_TEST(test_access_rules)
{
    char yaml[256];
    snprintf(yaml, sizeof(yaml),
             "log_level: error\naccess:\n  - {uid: %u, tenants: [acme]}\n", (unsigned)getuid());
    start(yaml);
    publish_acme();
    publish("{\"op\":\"set\",\"tenant\":\"globex\",\"kind\":\"credit\",\"key\":\"op\","
            "\"value\":1}");
    EXPECT("$3\r\n3.5\r\n", "CREDIT", "acme", "crm.leads.create");
    EXPECT("-NOPERM this user has no access to tenant 'globex'\r\n", "CREDIT", "globex", "op");
    EXPECT("-NOPERM this user has no access to tenant 'globex'\r\n", "GET", "globex", "credit",
           "op");
    EXPECT("-NOPERM this user has no access to tenant 'globex'\r\n", "TENANT", "globex");
    /* not an admin under these rules */
    EXPECT("-NOPERM FLUSH needs an admin peer\r\n", "FLUSH", "acme");
    EXPECT("$3\r\n3.5\r\n", "CREDIT", "acme", "crm.leads.create");
}
END_TEST

START_TEST(test_flush_star_needs_every_tenant)
{
    char yaml[256];
    snprintf(yaml, sizeof(yaml),
             "log_level: error\naccess:\n  - {uid: %u, tenants: [acme], admin: true}\n",
             (unsigned)getuid());
    start(yaml);
    publish_acme();
    EXPECT("-NOPERM FLUSH * needs access to every tenant\r\n", "FLUSH", "*");
    EXPECT("$3\r\n3.5\r\n", "CREDIT", "acme", "crm.leads.create");
    EXPECT("+OK\r\n", "FLUSH", "acme");
    EXPECT("$-1\r\n", "CREDIT", "acme", "crm.leads.create");
}
END_TEST

/* ---- staleness (docs/reference.md §7) ---- */

START_TEST(test_stale_refuses_critical_serves_reference)
{
    start("log_level: error\nredis:\n  max_stale: 2s\n");
    publish_acme();
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"profile\",\"key\":\"p\","
            "\"value\":{\"a\":1}}");
    freshness_current();
    EXPECT("$3\r\n3.5\r\n", "CREDIT", "acme", "crm.leads.create");
    /* down for 1 s: not yet past max_stale */
    freshness_lost(NOW - 1000);
    EXPECT("$3\r\n3.5\r\n", "CREDIT", "acme", "crm.leads.create");
    ck_assert_uint_eq(stats.stale_refused, 0);
    /* down for 5 s: critical data refused, reference data served and counted */
    const char *got = run_at(NOW + 4000, (const char *const[]){"CREDIT", "acme",
                                                             "crm.leads.create", NULL});
    ck_assert_str_eq(got, "-STALE invalidation stream down for 5s; critical data may be stale\r\n");
    ck_assert_uint_eq(stats.stale_refused, 1);
    got = run_at(NOW + 4000, (const char *const[]){"GET", "acme", "profile", "p", NULL});
    ck_assert_str_eq(got, "$7\r\n{\"a\":1}\r\n");
    ck_assert_uint_eq(stats.stale_served, 1);
    /* PING is answered whatever the stream does */
    got = run_at(NOW + 4000, (const char *const[]){"PING", NULL});
    ck_assert_str_eq(got, "+PONG\r\n");
    freshness_current();
    EXPECT("$3\r\n3.5\r\n", "CREDIT", "acme", "crm.leads.create");
}
END_TEST

START_TEST(test_counts_commands)
{
    start(default_yaml);
    uint64_t before = stats.commands_processed;
    EXPECT("+PONG\r\n", "PING");
    EXPECT("-ERR unknown command 'NOPE'\r\n", "NOPE");
    ck_assert_uint_eq(stats.commands_processed, before + 2);
}
END_TEST

static Suite *commands_suite(void)
{
    Suite *s = suite_create("commands");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_get_forms);
    tcase_add_test(tc, test_mget_forms);
    tcase_add_test(tc, test_argument_errors);
    tcase_add_test(tc, test_credit_and_status);
    tcase_add_test(tc, test_can_and_rolecan);
    tcase_add_test(tc, test_can_with_a_missing_role);
    tcase_add_test(tc, test_can_reads_every_role_and_pattern);
    tcase_add_test(tc, test_can_active_statuses);
    tcase_add_test(tc, test_hierarchy);
    tcase_add_test(tc, test_a_deleted_entry_is_nil);
    tcase_add_test(tc, test_ping_quit);
    tcase_add_test(tc, test_flush);
    tcase_add_test(tc, test_tenant_lines);
    tcase_add_test(tc, test_access_rules);
    tcase_add_test(tc, test_flush_star_needs_every_tenant);
    tcase_add_test(tc, test_stale_refuses_critical_serves_reference);
    tcase_add_test(tc, test_counts_commands);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *runner = srunner_create(commands_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
