/* test_queries.c - the query surface end to end (docs/reference.md §2, §4, §8 security and
 * limits): a real redis-server, the real tenantcached binary, messages
 * published with hiredis, queries over the daemon's socket with hiredis, raw
 * sockets, forked clients running as `nobody` (ACL by SO_PEERCRED) and
 * redis-cli. Every test gets its own redis-server and daemon (checked
 * fixture); the daemon is started by the test itself, with the config it
 * needs. */
#include <check.h>
#include <errno.h>
#include <grp.h>
#include <jansson.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

#define CHANNEL "tenantcached:invalidate"
#define WAIT_MS 3000
#define NOBODY_UID 65534
#define NOBODY_GID 65534

static struct harness h;
static redisContext *client;

/* ---- configs ---- */

/* A config with the private sockets, a socket every user may connect to,
 * `threads` query threads, `top` (more top-level keys, may be "") and
 * `listen` (more keys under listen:, indented by two spaces, may be ""). */
static const char *config_text(int threads, const char *top, const char *listen)
{
    static char text[4096];
    int n = snprintf(text, sizeof(text),
                     "log_level: debug\n"
                     "threads: %d\n"
                     "shards: 4\n"
                     "active_statuses: [active, trial]\n"
                     "%s"
                     "listen:\n"
                     "  socket: \"@DAEMON_SOCKET@\"\n"
                     "  mode: \"0666\"\n"
                     "%s"
                     "redis:\n"
                     "  unix: \"@REDIS_SOCKET@\"\n"
                     "  channels: [tenantcached:invalidate]\n"
                     "  connect_timeout: 500ms\n"
                     "  reconnect_min: 50ms\n"
                     "  reconnect_max: 500ms\n"
                     "memory:\n"
                     "  max_bytes: 16mb\n"
                     "  tenant_max_bytes: 1mb\n"
                     "  max_tenants: 1000\n",
                     threads, top, listen);
    ck_assert(n > 0 && (size_t)n < sizeof(text));
    return text;
}

static void setup(void)
{
    harness_init(&h);
    /* `nobody` must reach the daemon's socket inside the private directory. */
    ck_assert_int_eq(chmod(h.dir, 0755), 0);
    ck_assert_int_eq(harness_redis_start(&h), 0);
}

/* The daemon must stop cleanly after whatever a test did to it (under the
 * sanitizer builds, a leak or an error at exit shows here as a non-zero code). */
static void teardown(void)
{
    if (client != NULL)
        redisFree(client);
    client = NULL;
    harness_finish(&h);
}

/* Starts the daemon with tmpl (NULL: the harness default), waits for its
 * subscription and connects `client`. */
static void start_daemon(const char *tmpl)
{
    client = harness_start_subscribed(&h, tmpl, WAIT_MS);
}

static void start_default(void)
{
    start_daemon(config_text(2, "", ""));
}

/* ---- publishing ---- */

static void del_value(const char *tenant, const char *kind, const char *key)
{
    char payload[256];
    snprintf(payload, sizeof(payload),
             "{\"op\":\"del\",\"tenant\":\"%s\",\"kind\":\"%s\",\"key\":\"%s\"}", tenant, kind, key);
    harness_publish_ok(&h, CHANNEL, payload);
}

/* Every message published so far has been applied (see harness_sync_stream). */
static void sync_stream(void)
{
    /* longer behind a busy daemon under make valgrind (the thread stress test) */
    int wait_ms = getenv("TENANTCACHED_SANITIZER") != NULL ? 10 * WAIT_MS : WAIT_MS;
    harness_sync_stream(&h, client, CHANNEL, "config", "1", wait_ms);
}

/* ---- replies ---- */

#define expect(...) harness_expect_match(client, __VA_ARGS__)

static redisReply *command_on(redisContext *c, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    redisReply *reply = redisvCommand(c, fmt, args);
    va_end(args);
    ck_assert_msg(reply != NULL, "no reply: %s", c->errstr);
    return reply;
}

/* The integer value of the line "field:value" in a field:value text; -1 when
 * absent. */
static long long text_field(const char *text, const char *field)
{
    size_t flen = strlen(field);
    for (const char *line = text; line != NULL && *line != '\0';) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':')
            return strtoll(line + flen + 1, NULL, 10);
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return -1;
}

/* ---- raw sockets ---- */

/* Reads and discards until EOF or timeout. Returns true on EOF. */
static bool raw_drain_until_closed(int fd, int timeout_ms)
{
    char buffer[65536];
    long long deadline = harness_now_ms() + timeout_ms;
    while (harness_now_ms() < deadline) {
        struct pollfd poller = {.fd = fd, .events = POLLIN};
        if (poll(&poller, 1, 100) <= 0)
            continue;
        ssize_t n = read(fd, buffer, sizeof(buffer));
        if (n <= 0)
            return true;
    }
    return false;
}

static void raw_expect_pong(int fd)
{
    char buffer[64];
    bool closed;
    harness_raw_send(fd, "PING\r\n", 6);
    harness_raw_read(fd, buffer, 7, WAIT_MS, &closed);
    ck_assert_str_eq(buffer, "+PONG\r\n");
}

/* ---- clients running as another user ---- */

/* Forks a child that drops to uid/gid (no supplementary groups), connects to
 * the daemon and runs each command (arguments split on spaces); the parent
 * collects one harness_describe_reply() line per command into out ("\n"-separated, a line
 * "connect: ..." if the connection failed). The child never touches Check:
 * it only writes to a pipe. */
static void run_as(uid_t uid, gid_t gid, const char *const *commands, char *out, size_t size)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        FILE *pipe_out = fdopen(fds[1], "w");
        if (pipe_out == NULL)
            _exit(2);
        if (setgroups(0, NULL) != 0 || setgid(gid) != 0 || setuid(uid) != 0) {
            fprintf(pipe_out, "setuid: %s\n", strerror(errno));
            fclose(pipe_out);
            _exit(3);
        }
        struct timeval tv = {.tv_sec = 5};
        redisContext *c = redisConnectUnixWithTimeout(h.daemon_socket, tv);
        if (c == NULL || c->err) {
            fprintf(pipe_out, "connect: %s\n", c != NULL ? c->errstr : "no memory");
            fclose(pipe_out);
            _exit(4);
        }
        redisSetTimeout(c, tv);
        for (size_t i = 0; commands[i] != NULL; i++) {
            char copy[512];
            snprintf(copy, sizeof(copy), "%s", commands[i]);
            const char *argv[32];
            size_t argc = 0;
            for (char *save = NULL, *word = strtok_r(copy, " ", &save); word != NULL && argc < 32;
                 word = strtok_r(NULL, " ", &save))
                argv[argc++] = word;
            redisReply *reply = redisCommandArgv(c, (int)argc, argv, NULL);
            char line[4096];
            harness_describe_reply(reply, line, sizeof(line));
            for (char *p = line; *p != '\0'; p++) {
                if (*p == '\r' || *p == '\n')
                    *p = ' '; /* one line per reply */
            }
            fprintf(pipe_out, "%s\n", line);
            if (reply != NULL)
                freeReplyObject(reply);
        }
        redisFree(c);
        fclose(pipe_out);
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    for (;;) {
        if (len + 1 >= size)
            break;
        ssize_t n = read(fds[0], out + len, size - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    out[len] = '\0';
    close(fds[0]);
    int status;
    while (waitpid(pid, &status, 0) == -1 && errno == EINTR) {
    }
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child as uid %u failed: %s",
                  (unsigned)uid, out);
}

/* Runs commands as nobody and compares each reply line with expected[i] (a
 * trailing '*' makes it a prefix). */
static void expect_as_nobody(const char *const *commands, const char *const *expected)
{
    char out[16384];
    run_as(NOBODY_UID, NOBODY_GID, commands, out, sizeof(out));
    char *save = NULL;
    char *line = strtok_r(out, "\n", &save);
    for (size_t i = 0; commands[i] != NULL; i++) {
        ck_assert_msg(line != NULL, "%s (as nobody): no reply", commands[i]);
        size_t n = strlen(expected[i]);
        bool prefix = n > 0 && expected[i][n - 1] == '*';
        bool match =
            prefix ? strncmp(line, expected[i], n - 1) == 0 : strcmp(line, expected[i]) == 0;
        ck_assert_msg(match, "%s (as nobody): expected '%s', got '%s'", commands[i], expected[i],
                      line);
        line = strtok_r(NULL, "\n", &save);
    }
}

/* ============================ the tests ============================ */

/* ---- CREDIT, STATUS ---- */

START_TEST(test_credit)
{
    start_default();
    harness_publish_set(&h, CHANNEL, "acme", "credit", "half", "3.5");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "twelve", "12");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "tenth", "0.1");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "obj", "{\"cost\":12}");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "objtenth",
                        "{\"cost\":0.1,\"currency\":\"EUR\"}");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "real12", "12.0");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "zero", "0");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "exp", "1e3");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "twenty", "{\"cost\":20}");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "exact", "0.30000000000000004");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "eighths", "1234567.125");
    sync_stream();
    expect("3.5", "CREDIT acme half");
    expect("12", "CREDIT acme twelve");
    expect("0.1", "CREDIT acme tenth");
    expect("12", "CREDIT acme obj");
    expect("0.1", "CREDIT acme objtenth");
    expect("12", "CREDIT acme real12");
    expect("0", "CREDIT acme zero");
    expect("1000", "CREDIT acme exp");
    expect("20", "CREDIT acme twenty");
    expect("0.30000000000000004", "CREDIT acme exact");
    expect("1234567.125", "CREDIT acme eighths");
    /* GET serves the stored JSON, CREDIT the number. */
    expect("{\"cost\":12}", "GET acme credit obj");
    expect("(nil)", "CREDIT acme unknown");
    expect("(nil)", "CREDIT globex half");
    /* A credit that is not a number is rejected whole: the old one stays. */
    harness_publish_set(&h, CHANNEL, "acme", "credit", "half", "\"cheap\"");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "half", "{\"cost\":\"1\"}");
    sync_stream();
    expect("3.5", "CREDIT acme half");
    expect("-ERR wrong number of arguments for 'CREDIT'", "CREDIT acme");
    expect("-ERR invalid tenant", "CREDIT a:b half");
}
END_TEST

/* A value is kept as sent less its whitespace (docs/reference.md §2): GET
 * answers the publisher's own number forms and escapes, while the queries
 * read what they need from that text, escaped or not. */
START_TEST(test_values_as_sent)
{
    start_default();
    harness_publish_set(&h, CHANNEL, "acme", "credit", "c", "{ \"cost\" : 1.50 , \"note\" : \"caf\\u00e9 \\\" x\" }");
    harness_publish_set(&h, CHANNEL, "acme", "config", "n", "[ 0.1, 1e2, -0 ]");
    harness_publish_set(&h, CHANNEL, "acme", "role", "r\\u0031", "{ \"perm\\u0069ssions\" : [ \"crm.\\u002a\", \"hr.read\" ] }");
    harness_publish_set(&h, CHANNEL, "acme", "user", "u", "{ \"roles\" : [ \"r\\u0031\" ], \"status\" : \"act\\u0069ve\" }");
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "t", "{ \"parent\" : \"d\\u0031\" }");
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "d1", "{ }");
    sync_stream();
    expect("{\"cost\":1.50,\"note\":\"caf\\u00e9 \\\" x\"}", "GET acme credit c");
    expect("1.5", "CREDIT acme c");
    expect("[0.1,1e2,-0]", "GET acme config n");
    expect("{\"roles\":[\"r\\u0031\"],\"status\":\"act\\u0069ve\"}", "GET acme user u");
    expect("active", "STATUS acme u");
    expect(":1", "CAN acme u crm.leads");
    expect(":1", "CAN acme u hr.read");
    expect(":0", "CAN acme u hr.write");
    expect("[crm.*,hr.read]", "PERMS acme r1");
    expect("[d1]", "ANCESTORS acme t");
    expect("[t]", "CHILDREN acme d1");
}
END_TEST

/* '.' and '..' are neither tenants nor keys: they would be path segments in
 * an origin URL. Refused in messages and in every query. */
START_TEST(test_dot_segments)
{
    start_default();
    long long invalid = harness_info_int(client, "messages_invalid");
    harness_publish_set(&h, CHANNEL, ".", "config", "k", "1");
    harness_publish_set(&h, CHANNEL, "..", "config", "k", "1");
    harness_publish_set(&h, CHANNEL, "acme", "config", ".", "1");
    harness_publish_set(&h, CHANNEL, "acme", "config", "..", "1");
    harness_publish_set(&h, CHANNEL, "acme", "config", "...", "3");
    sync_stream();
    ck_assert_int_eq(harness_info_int(client, "messages_invalid"), invalid + 4);
    expect("3", "GET acme config ...");
    expect("-ERR invalid tenant", "GET . config k");
    expect("-ERR invalid tenant", "GET .. config k");
    expect("-ERR invalid key", "GET acme config .");
    expect("-ERR invalid key", "GET acme config ..");
    expect("(nil)", "GET cache:..:config:k");
    expect("(nil)", "GET cache:acme:config:..");
    expect("-ERR invalid key", "MGET acme config ... ..");
    expect("-ERR invalid tenant", "MGET .. config k");
    expect("-ERR invalid tenant", "CREDIT .. k");
    expect("-ERR invalid key", "CREDIT acme ..");
    expect("-ERR invalid key", "CAN acme . crm.read");
    expect("-ERR invalid key", "ANCESTORS acme ..");
    expect("-ERR invalid tenant", "TENANT .");
    expect("-ERR invalid tenant", "FLUSH ..");
}
END_TEST

START_TEST(test_status)
{
    start_default();
    harness_publish_set(&h, CHANNEL, "acme", "user", "plain", "\"active\"");
    harness_publish_set(&h, CHANNEL, "acme", "user", "obj",
                        "{\"status\":\"suspended\",\"roles\":[\"admin\"]}");
    harness_publish_set(&h, CHANNEL, "acme", "user", "noroles", "{\"status\":\"trial\"}");
    sync_stream();
    expect("active", "STATUS acme plain");
    expect("suspended", "STATUS acme obj");
    expect("trial", "STATUS acme noroles");
    expect("(nil)", "STATUS acme ghost");
    expect("(nil)", "STATUS globex plain");
    del_value("acme", "user", "plain");
    sync_stream();
    expect("(nil)", "STATUS acme plain");
    expect("-ERR wrong number of arguments for 'STATUS'", "STATUS acme");
}
END_TEST

/* ---- CAN, ROLECAN, PERMS ---- */

static void publish_roles_and_users(void)
{
    harness_publish_set(&h, CHANNEL, "acme", "role", "admin", "[\"crm.*\",\"users.read\"]");
    harness_publish_set(&h, CHANNEL, "acme", "role", "viewer",
                        "{\"permissions\":[\"crm.leads.read\"]}");
    harness_publish_set(&h, CHANNEL, "acme", "role", "empty", "[]");
    harness_publish_set(&h, CHANNEL, "acme", "user", "alice",
                        "{\"status\":\"active\",\"roles\":[\"admin\"]}");
    harness_publish_set(&h, CHANNEL, "acme", "user", "bob",
                        "{\"status\":\"trial\",\"roles\":[\"viewer\"]}");
    harness_publish_set(&h, CHANNEL, "acme", "user", "carol",
                        "{\"status\":\"suspended\",\"roles\":[\"admin\"]}");
    harness_publish_set(&h, CHANNEL, "acme", "user", "dave", "\"active\"");
    harness_publish_set(&h, CHANNEL, "acme", "user", "erin",
                        "{\"status\":\"active\",\"roles\":[\"ghost\"]}");
    harness_publish_set(&h, CHANNEL, "acme", "user", "frank",
                        "{\"status\":\"active\",\"roles\":[\"ghost\",\"viewer\"]}");
    harness_publish_set(&h, CHANNEL, "acme", "user", "gina",
                        "{\"status\":\"active\",\"roles\":[]}");
    harness_publish_set(&h, CHANNEL, "acme", "user", "hank",
                        "{\"status\":\"active\",\"roles\":[\"empty\"]}");
    harness_publish_set(&h, CHANNEL, "acme", "user", "ivan",
                        "{\"status\":\"Active\",\"roles\":[\"admin\"]}");
    harness_publish_set(&h, CHANNEL, "globex", "role", "admin", "[\"*\"]");
    sync_stream();
}

START_TEST(test_can)
{
    start_default();
    publish_roles_and_users();
    /* active + a role that grants */
    expect(":1", "CAN acme alice crm.leads");
    expect(":1", "CAN acme alice crm.leads.create");
    expect(":1", "CAN acme alice users.read");
    expect(":0", "CAN acme alice users.write");
    expect(":0", "CAN acme alice crm");
    /* trial is active under active_statuses: [active, trial] */
    expect(":1", "CAN acme bob crm.leads.read");
    expect(":0", "CAN acme bob crm.leads.write");
    /* an inactive status grants nothing, whatever its roles */
    expect(":0", "CAN acme carol crm.leads");
    /* statuses compare exactly */
    expect(":0", "CAN acme ivan crm.leads");
    /* no roles: a plain status, an empty list, a role with no patterns */
    expect(":0", "CAN acme dave crm.leads");
    expect(":0", "CAN acme gina crm.leads");
    expect(":0", "CAN acme hank crm.leads");
    /* a role that is not cached grants nothing; the next one still counts */
    expect(":0", "CAN acme erin crm.leads");
    expect(":1", "CAN acme frank crm.leads.read");
    /* unknown user, unknown tenant: nil (roles of another tenant do not leak) */
    expect("(nil)", "CAN acme zed crm.leads");
    expect("(nil)", "CAN globex alice crm.leads");
    /* a deleted user is unknown */
    del_value("acme", "user", "alice");
    sync_stream();
    expect("(nil)", "CAN acme alice crm.leads");
    /* a deleted role stops granting */
    del_value("acme", "role", "viewer");
    sync_stream();
    expect(":0", "CAN acme bob crm.leads.read");
    /* a status change applies at once */
    harness_publish_set(&h, CHANNEL, "acme", "user", "carol",
                        "{\"status\":\"active\",\"roles\":[\"admin\"]}");
    sync_stream();
    expect(":1", "CAN acme carol crm.leads");
    expect("-ERR wrong number of arguments for 'CAN'", "CAN acme carol");
    expect("-ERR invalid permission", "CAN acme carol crm..leads");
    expect("-ERR invalid tenant", "CAN a:b carol crm.leads");
}
END_TEST

START_TEST(test_can_default_active_statuses)
{
    start_daemon(NULL); /* active_statuses defaults to [active] */
    publish_roles_and_users();
    expect(":1", "CAN acme alice crm.leads");
    expect(":0", "CAN acme bob crm.leads.read");
    expect("trial", "STATUS acme bob");
}
END_TEST

START_TEST(test_rolecan_and_perms)
{
    start_default();
    publish_roles_and_users();
    expect(":1", "ROLECAN acme admin crm.leads");
    expect(":1", "ROLECAN acme admin users.read");
    expect(":0", "ROLECAN acme admin users.write");
    expect(":1", "ROLECAN acme viewer crm.leads.read");
    expect(":0", "ROLECAN acme viewer crm.leads");
    expect(":0", "ROLECAN acme empty crm.leads");
    expect("(nil)", "ROLECAN acme ghost crm.leads");
    expect(":1", "ROLECAN globex admin anything.at.all");
    expect("(nil)", "ROLECAN initech admin crm.leads");
    expect("[crm.*,users.read]", "PERMS acme admin");
    expect("[crm.leads.read]", "PERMS acme viewer");
    expect("[]", "PERMS acme empty");
    expect("[*]", "PERMS globex admin");
    expect("(nil)", "PERMS acme ghost");
    expect("(nil)", "PERMS initech admin");
    /* A role whose value is not an array of patterns is rejected whole. */
    harness_publish_set(&h, CHANNEL, "acme", "role", "admin", "\"everything\"");
    harness_publish_set(&h, CHANNEL, "acme", "role", "admin", "[\"crm.*\",42]");
    sync_stream();
    expect("[crm.*,users.read]", "PERMS acme admin");
    /* A new version replaces the patterns. */
    harness_publish_set(&h, CHANNEL, "acme", "role", "admin", "{\"permissions\":[\"billing.*\"]}");
    sync_stream();
    expect("[billing.*]", "PERMS acme admin");
    expect(":0", "ROLECAN acme admin crm.leads");
    expect(":1", "ROLECAN acme admin billing.invoices.pay");
    expect("-ERR wrong number of arguments for 'ROLECAN'", "ROLECAN acme admin");
    expect("-ERR wrong number of arguments for 'PERMS'", "PERMS acme");
}
END_TEST

/* Each pattern through ROLECAN and, for a user holding only that role, CAN. */
static void expect_pattern(const char *role, const char *permission, int granted)
{
    const char *want = granted ? ":1" : ":0";
    expect(want, "ROLECAN acme %s %s", role, permission);
    expect(want, "CAN acme u_%s %s", role, permission);
}

START_TEST(test_permission_patterns)
{
    start_default();
    const struct {
        const char *role;
        const char *patterns;
    } roles[] = {
        {"crmstar", "[\"crm.*\"]"},   {"starread", "[\"*.read\"]"},
        {"all", "[\"*\"]"},           {"middle", "[\"crm.*.create\"]"},
        {"exact", "[\"crm.leads\"]"}, {"twostar", "[\"*.*\"]"},
    };
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        char user[64], value[128];
        harness_publish_set(&h, CHANNEL, "acme", "role", roles[i].role, roles[i].patterns);
        snprintf(user, sizeof(user), "u_%s", roles[i].role);
        snprintf(value, sizeof(value), "{\"status\":\"active\",\"roles\":[\"%s\"]}", roles[i].role);
        harness_publish_set(&h, CHANNEL, "acme", "user", user, value);
    }
    sync_stream();
    /* `crm.*`: a last `*` is one or more segments */
    expect_pattern("crmstar", "crm.leads", 1);
    expect_pattern("crmstar", "crm.leads.create", 1);
    expect_pattern("crmstar", "crm", 0);
    expect_pattern("crmstar", "crmx.a", 0);
    expect_pattern("crmstar", "xcrm.a", 0);
    expect_pattern("crmstar", "users.read", 0);
    /* `*.read`: a `*` that is not last is exactly one segment */
    expect_pattern("starread", "users.read", 1);
    expect_pattern("starread", "crm.users.read", 0);
    expect_pattern("starread", "read", 0);
    expect_pattern("starread", "users.reader", 0);
    expect_pattern("starread", "users.write", 0);
    /* `*` alone: everything */
    expect_pattern("all", "crm", 1);
    expect_pattern("all", "crm.leads.create", 1);
    expect_pattern("all", "a.b.c.d.e", 1);
    /* `crm.*.create` */
    expect_pattern("middle", "crm.leads.create", 1);
    expect_pattern("middle", "crm.x.create", 1);
    expect_pattern("middle", "crm.create", 0);
    expect_pattern("middle", "crm.leads.deals.create", 0);
    expect_pattern("middle", "crm.leads.create.x", 0);
    /* no wildcard: exact */
    expect_pattern("exact", "crm.leads", 1);
    expect_pattern("exact", "crm.leads.create", 0);
    expect_pattern("exact", "crm", 0);
    expect_pattern("exact", "crm.lead", 0);
    /* `*.*`: one segment, then one or more */
    expect_pattern("twostar", "a.b", 1);
    expect_pattern("twostar", "a.b.c", 1);
    expect_pattern("twostar", "a", 0);
}
END_TEST

START_TEST(test_role_with_500_patterns)
{
    start_default();
    size_t size = 500 * 32 + 64;
    char *value = malloc(size);
    ck_assert_ptr_nonnull(value);
    size_t len = (size_t)snprintf(value, size, "{\"permissions\":[");
    for (int i = 0; i < 500; i++) {
        const char *suffix = i % 3 == 0 ? "read" : i % 3 == 1 ? "*" : "*.write";
        char pattern[32];
        snprintf(pattern, sizeof(pattern), "mod%d.%s", i, suffix);
        len += (size_t)snprintf(value + len, size - len, "%s\"%s\"", i ? "," : "", pattern);
    }
    snprintf(value + len, size - len, "]}");
    harness_publish_set(&h, CHANNEL, "acme", "role", "big", value);
    free(value);
    harness_publish_set(&h, CHANNEL, "acme", "user", "u",
                        "{\"status\":\"active\",\"roles\":[\"small\",\"big\"]}");
    harness_publish_set(&h, CHANNEL, "acme", "role", "small", "[\"x.y\"]");
    sync_stream();
    redisReply *reply = command_on(client, "PERMS acme big");
    ck_assert_int_eq(reply->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(reply->elements, 500);
    ck_assert_str_eq(reply->element[0]->str, "mod0.read");
    ck_assert_str_eq(reply->element[499]->str, "mod499.*");
    ck_assert_str_eq(reply->element[497]->str, "mod497.*.write");
    freeReplyObject(reply);
    expect(":1", "ROLECAN acme big mod0.read");
    expect(":0", "ROLECAN acme big mod0.write");
    expect(":1", "ROLECAN acme big mod499.a.b");
    expect(":1", "ROLECAN acme big mod497.leads.write");
    expect(":0", "ROLECAN acme big mod497.leads.read");
    expect(":0", "ROLECAN acme big mod500.read");
    expect(":1", "CAN acme u mod250.x");
    expect(":1", "CAN acme u x.y");
    expect(":0", "CAN acme u mod251.x");
    /* Denials walk all 500 patterns; 2000 of them stay well within a
     * generous bound (this is a smoke check, not a benchmark). */
    long long started = harness_now_ms();
    for (int i = 0; i < 2000; i++)
        redisAppendCommand(client, "CAN acme u nomatch.%d", i);
    for (int i = 0; i < 2000; i++) {
        void *raw = NULL;
        ck_assert_int_eq(redisGetReply(client, &raw), REDIS_OK);
        redisReply *r = raw;
        ck_assert_int_eq(r->type, REDIS_REPLY_INTEGER);
        ck_assert_int_eq(r->integer, 0);
        freeReplyObject(r);
    }
    ck_assert_int_lt(harness_now_ms() - started, 5000);
}
END_TEST

/* ---- ANCESTORS, CHILDREN ---- */

static int count_occurrences(const char *path, const char *needle)
{
    FILE *file = fopen(path, "r");
    if (file == NULL)
        return -1;
    char line[4096];
    int count = 0;
    while (fgets(line, sizeof(line), file) != NULL) {
        if (strstr(line, needle) != NULL)
            count++;
    }
    fclose(file);
    return count;
}

START_TEST(test_ancestors)
{
    start_default();
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "root", "{\"name\":\"Acme\"}");
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "div",
                        "{\"parent\":\"root\",\"name\":\"Sales\"}");
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "team", "{\"parent\":\"div\"}");
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "emp",
                        "{\"parent\":\"team\",\"name\":\"Ann\"}");
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "orphan", "{\"parent\":\"missing\"}");
    sync_stream();
    expect("[team,div,root]", "ANCESTORS acme emp");
    expect("[div,root]", "ANCESTORS acme team");
    expect("[root]", "ANCESTORS acme div");
    expect("[]", "ANCESTORS acme root");
    /* the chain stops at a parent that is not cached */
    expect("[missing]", "ANCESTORS acme orphan");
    expect("(nil)", "ANCESTORS acme nobody");
    expect("(nil)", "ANCESTORS globex emp");
    /* a move changes the chain at once */
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "team", "{\"parent\":\"root\"}");
    sync_stream();
    expect("[team,root]", "ANCESTORS acme emp");

    /* a cycle a -> b -> a is cut, logged (once), and the daemon keeps answering */
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "a", "{\"parent\":\"b\"}");
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "b", "{\"parent\":\"a\"}");
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "c", "{\"parent\":\"a\"}");
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "self", "{\"parent\":\"self\"}");
    sync_stream();
    expect("[b]", "ANCESTORS acme a");
    expect("[a]", "ANCESTORS acme b");
    expect("[a,b]", "ANCESTORS acme c");
    expect("[]", "ANCESTORS acme self");
    expect("+PONG", "PING");
    expect("[team,root]", "ANCESTORS acme emp");
    ck_assert(harness_daemon_alive(&h));
    ck_assert_int_eq(count_occurrences(h.daemon_log, "cycle"), 1);

    /* a very deep chain: whatever the depth limit, the answer starts at the
     * parent and follows the real chain */
    for (int i = 1; i <= 300; i++) {
        char key[16], value[64];
        snprintf(key, sizeof(key), "d%d", i);
        snprintf(value, sizeof(value), "{\"parent\":\"d%d\"}", i - 1);
        harness_publish_set(&h, CHANNEL, "deep", "hierarchy", key, value);
    }
    harness_publish_set(&h, CHANNEL, "deep", "hierarchy", "d0", "{}");
    sync_stream();
    redisReply *reply = command_on(client, "ANCESTORS deep d300");
    ck_assert_int_eq(reply->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_ge(reply->elements, 1);
    ck_assert_uint_le(reply->elements, 300);
    for (size_t i = 0; i < reply->elements; i++) {
        char expected[16];
        snprintf(expected, sizeof(expected), "d%zu", 299 - i);
        ck_assert_str_eq(reply->element[i]->str, expected);
    }
    freeReplyObject(reply);
    expect("[d1,d0]", "ANCESTORS deep d2");
}
END_TEST

START_TEST(test_children)
{
    start_default();
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "root", "{}");
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "c", "{\"parent\":\"root\"}");
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "a",
                        "{\"parent\":\"root\",\"name\":\"A\"}");
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "b10", "{\"parent\":\"root\"}");
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "b", "{\"parent\":\"root\"}");
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "a1", "{\"parent\":\"a\"}");
    harness_publish_set(&h, CHANNEL, "globex", "hierarchy", "x", "{\"parent\":\"root\"}");
    sync_stream();
    expect("[a,b,b10,c]", "CHILDREN acme root");
    expect("[a1]", "CHILDREN acme a");
    expect("[]", "CHILDREN acme a1");   /* a leaf */
    expect("[]", "CHILDREN acme nosuch"); /* nothing names it as parent */
    expect("[x]", "CHILDREN globex root");
    expect("[]", "CHILDREN initech root");
    /* an entity moves when its parent changes */
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "b", "{\"parent\":\"a\"}");
    sync_stream();
    expect("[a,b10,c]", "CHILDREN acme root");
    expect("[a1,b]", "CHILDREN acme a");
    /* becoming a root leaves the old parent */
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "c", "{\"name\":\"now a root\"}");
    sync_stream();
    expect("[a,b10]", "CHILDREN acme root");
    /* deleted and invalidated entries are no longer children */
    del_value("acme", "hierarchy", "b10");
    harness_publish_ok(
        &h, CHANNEL,
        "{\"op\":\"invalidate\",\"tenant\":\"acme\",\"kind\":\"hierarchy\",\"key\":\"a1\"}");
    sync_stream();
    expect("[a]", "CHILDREN acme root");
    expect("[b]", "CHILDREN acme a");
    /* a flush of the kind empties the index */
    harness_publish_ok(&h, CHANNEL,
                       "{\"op\":\"flush\",\"tenant\":\"acme\",\"kind\":\"hierarchy\"}");
    sync_stream();
    expect("[]", "CHILDREN acme root");
    expect("[]", "CHILDREN acme a");
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "z", "{\"parent\":\"root\"}");
    sync_stream();
    expect("[z]", "CHILDREN acme root");
    expect("[x]", "CHILDREN globex root");
}
END_TEST

/* ---- TENANT, INFO tenants, HEALTH, FLUSH ---- */

START_TEST(test_tenant)
{
    start_default();
    harness_publish_set(&h, CHANNEL, "acme", "credit", "c1", "1");
    harness_publish_set(&h, CHANNEL, "acme", "credit", "c2", "{\"cost\":2}");
    harness_publish_set(&h, CHANNEL, "acme", "role", "r1", "[\"a.b\"]");
    harness_publish_set(&h, CHANNEL, "acme", "user", "u1", "\"active\"");
    harness_publish_set(&h, CHANNEL, "globex", "credit", "c1", "5");
    sync_stream();
    expect("1", "GET acme credit c1");
    expect("2", "CREDIT acme c2");
    expect("active", "STATUS acme u1");
    expect("(nil)", "GET acme credit nope");
    expect("(nil)", "CREDIT acme nope");

    redisReply *reply = command_on(client, "TENANT acme");
    ck_assert_int_eq(reply->type, REDIS_REPLY_STRING);
    const char *text = reply->str;
    ck_assert_msg(strncmp(text, "tenant:acme\r\n", 13) == 0, "got '%s'", text);
    ck_assert_int_eq(text_field(text, "entries"), 4);
    ck_assert_int_gt(text_field(text, "bytes"), 0);
    ck_assert_int_eq(text_field(text, "credit_entries"), 2);
    ck_assert_int_eq(text_field(text, "role_entries"), 1);
    ck_assert_int_eq(text_field(text, "user_entries"), 1);
    ck_assert_int_eq(text_field(text, "config_entries"), 0);
    ck_assert_int_gt(text_field(text, "credit_bytes"), 0);
    ck_assert_int_eq(text_field(text, "config_bytes"), 0);
    /* the tenant's bytes include its own tables: at least what its kinds hold */
    ck_assert_int_le(text_field(text, "credit_bytes") + text_field(text, "role_bytes") +
                         text_field(text, "user_bytes"),
                     text_field(text, "bytes"));
    ck_assert_int_eq(text_field(text, "hits"), 3);
    ck_assert_int_eq(text_field(text, "misses"), 2);
    ck_assert_int_ge(text_field(text, "last_access"), 0);
    /* every line is field:value */
    for (const char *line = text; *line != '\0';) {
        const char *end = strstr(line, "\r\n");
        ck_assert_ptr_nonnull(end);
        const char *colon = memchr(line, ':', (size_t)(end - line));
        ck_assert_msg(colon != NULL && colon > line, "line '%.*s'", (int)(end - line), line);
        line = end + 2;
    }
    freeReplyObject(reply);

    reply = command_on(client, "TENANT initech");
    ck_assert_int_eq(reply->type, REDIS_REPLY_STRING);
    ck_assert_int_eq(text_field(reply->str, "entries"), 0);
    ck_assert_int_eq(text_field(reply->str, "hits"), 0);
    freeReplyObject(reply);
    expect("-ERR invalid tenant", "TENANT a:b");
    expect("-ERR wrong number of arguments for 'TENANT'", "TENANT");

    /* INFO tenants: one line per resident tenant, not part of the default INFO */
    reply = command_on(client, "INFO tenants");
    ck_assert_int_eq(reply->type, REDIS_REPLY_STRING);
    ck_assert_msg(strncmp(reply->str, "# Tenants\r\n", 11) == 0, "got '%s'", reply->str);
    const char *acme = strstr(reply->str, "\ntenant_acme:entries=4,bytes=");
    ck_assert_msg(acme != NULL, "got '%s'", reply->str);
    const char *acme_end = strstr(acme + 1, "\r\n");
    ck_assert_ptr_nonnull(acme_end);
    char acme_line[256];
    snprintf(acme_line, sizeof(acme_line), "%.*s", (int)(acme_end - acme - 1), acme + 1);
    ck_assert_msg(strstr(acme_line, ",hits=3,misses=2") != NULL, "got '%s'", acme_line);
    ck_assert_msg(strstr(reply->str, "\ntenant_globex:entries=1,") != NULL, "got '%s'",
                  reply->str);
    ck_assert_ptr_null(strstr(reply->str, "tenant_initech"));
    ck_assert_ptr_null(strstr(reply->str, "# Memory"));
    freeReplyObject(reply);
    reply = command_on(client, "INFO");
    ck_assert_ptr_null(strstr(reply->str, "# Tenants"));
    freeReplyObject(reply);
    reply = command_on(client, "INFO all");
    ck_assert_ptr_nonnull(strstr(reply->str, "# Tenants"));
    ck_assert_ptr_nonnull(strstr(reply->str, "# Memory"));
    freeReplyObject(reply);
    ck_assert_int_eq(harness_info_int(client, "tenants"), 3); /* acme, globex, sync */
}
END_TEST

START_TEST(test_health)
{
    start_default();
    json_t *doc = harness_health(client);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "status")), "LOW");
    /* empty: only the daemon's fixed tables, what INFO reports */
    ck_assert(json_is_integer(json_object_get(doc, "used_bytes")));
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "used_bytes")),
                     harness_info_int(client, "used_memory"));
    ck_assert_int_lt(json_integer_value(json_object_get(doc, "used_bytes")), 64 * 1024);
    ck_assert(json_is_integer(json_object_get(doc, "limit_bytes")));
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "limit_bytes")), 16 * 1024 * 1024);
    ck_assert(json_is_number(json_object_get(doc, "usage_percentage")));
    ck_assert(json_number_value(json_object_get(doc, "usage_percentage")) < 1.0);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "redis")), "connected");
    ck_assert(json_is_integer(json_object_get(doc, "stale_seconds")));
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "stale_seconds")), 0);
    json_t *advice = json_object_get(doc, "recommendations");
    ck_assert(json_is_array(advice));
    ck_assert_uint_ge(json_array_size(advice), 1);
    for (size_t i = 0; i < json_array_size(advice); i++)
        ck_assert(json_is_string(json_array_get(advice, i)));
    json_decref(doc);

    /* with data: used_bytes and the percentage follow INFO's figures */
    for (int i = 0; i < 50; i++) {
        char key[16];
        snprintf(key, sizeof(key), "k%d", i);
        harness_publish_set(&h, CHANNEL, "acme", "profile", key,
                            "{\"name\":\"a profile with some text in it\"}");
    }
    sync_stream();
    long long used = harness_info_int(client, "used_memory");
    ck_assert_int_gt(used, 0);
    doc = harness_health(client);
    ck_assert_int_eq(json_integer_value(json_object_get(doc, "used_bytes")), used);
    double percent = json_number_value(json_object_get(doc, "usage_percentage"));
    double expected = 100.0 * (double)used / (16.0 * 1024 * 1024);
    ck_assert_msg(percent >= expected - 0.01 && percent <= expected + 0.01,
                  "usage_percentage %f, expected %f", percent, expected);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "status")), "LOW");
    json_decref(doc);

    /* redis down: "disconnected", and a recommendation says so */
    ck_assert_int_eq(harness_redis_stop(&h, SIGKILL), 0);
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 0));
    doc = harness_health(client);
    ck_assert_str_eq(json_string_value(json_object_get(doc, "redis")), "disconnected");
    ck_assert_uint_ge(json_array_size(json_object_get(doc, "recommendations")), 1);
    json_decref(doc);
    expect("-ERR wrong number of arguments for 'HEALTH'", "HEALTH now");
}
END_TEST

START_TEST(test_flush_admin)
{
    start_default(); /* no access rules: root is admin */
    harness_publish_set(&h, CHANNEL, "acme", "credit", "c1", "1");
    harness_publish_set(&h, CHANNEL, "acme", "role", "r1", "[\"a.b\"]");
    harness_publish_set(&h, CHANNEL, "globex", "credit", "c1", "2");
    harness_publish_set(&h, CHANNEL, "globex", "role", "r1", "[\"a.c\"]");
    harness_publish_set(&h, CHANNEL, "initech", "credit", "c1", "3");
    sync_stream();
    long long entries = harness_info_int(client, "entries");
    expect("+OK", "FLUSH acme");
    expect("(nil)", "GET acme credit c1");
    expect("(nil)", "PERMS acme r1");
    expect("2", "CREDIT globex c1");
    redisReply *reply = command_on(client, "TENANT acme");
    ck_assert_int_eq(text_field(reply->str, "entries"), 0);
    freeReplyObject(reply);
    ck_assert_int_eq(harness_info_int(client, "entries"), entries - 2);
    /* one kind only */
    expect("+OK", "FLUSH globex credit");
    expect("(nil)", "CREDIT globex c1");
    expect("[a.c]", "PERMS globex r1");
    expect("-ERR unknown kind 'nosuch'", "FLUSH globex nosuch");
    expect("-ERR invalid tenant", "FLUSH a:b");
    expect("-ERR wrong number of arguments for 'FLUSH'", "FLUSH");
    /* every tenant */
    expect("+OK", "FLUSH *");
    expect("(nil)", "PERMS globex r1");
    expect("(nil)", "CREDIT initech c1");
    ck_assert_int_eq(harness_info_int(client, "entries"), 0);
    /* a flush is not a tombstone: new data is accepted */
    harness_publish_set(&h, CHANNEL, "acme", "credit", "c1", "4");
    ck_assert(harness_wait_reply(client, WAIT_MS, "4", "CREDIT acme c1"));
}
END_TEST

/* ---- ACL by SO_PEERCRED ---- */

/* Waits on INFO (which every peer may read) rather than on a tenant: with
 * access rules, root may read none. */
static void publish_two_tenants(void)
{
    harness_publish_set(&h, CHANNEL, "acme", "credit", "op", "5");
    harness_publish_set(&h, CHANNEL, "globex", "credit", "op", "7");
    harness_publish_set(&h, CHANNEL, "initech", "credit", "op", "9");
    ck_assert(harness_wait_info(client, WAIT_MS, "messages_applied", 3));
}

START_TEST(test_acl_no_rules)
{
    start_default();
    publish_two_tenants();
    /* Without rules every peer reads every tenant; only root (and the
     * daemon's own user, root here) is admin. */
    const char *const commands[] = {
        "GET acme credit op", "CREDIT globex op", "TENANT initech", "FLUSH acme", "FLUSH *",
        "GET acme credit op", NULL,
    };
    const char *const expected[] = {
        "5", "7", "tenant:initech*", "-NOPERM*", "-NOPERM*", "5",
    };
    expect_as_nobody(commands, expected);
    expect("+OK", "FLUSH acme");
    expect("(nil)", "GET acme credit op");
}
END_TEST

START_TEST(test_acl_tenant_rules)
{
    start_daemon(config_text(2,
                             "access:\n"
                             "  - {uid: 65534, tenants: [acme]}\n"
                             "  - {group: nogroup, tenants: [initech]}\n"
                             "  - {user: daemon, tenants: \"*\", admin: true}\n",
                             ""));
    publish_two_tenants();
    const char *const commands[] = {
        "GET acme credit op",
        "CREDIT acme op",
        "GET initech credit op",
        "GET globex credit op",
        "CREDIT globex op",
        "STATUS globex u",
        "CAN globex u a.b",
        "ROLECAN globex r a.b",
        "PERMS globex r",
        "ANCESTORS globex e",
        "CHILDREN globex e",
        "TENANT globex",
        "MGET globex credit op",
        "GET cache:globex:credit:op",
        "MGET cache:acme:credit:op cache:globex:credit:op",
        "MGET cache:acme:credit:op cache:initech:credit:op",
        "FLUSH acme",
        "FLUSH globex",
        "PING",
        NULL,
    };
    const char *const expected[] = {
        "5", "5", "9",
        "-NOPERM*", "-NOPERM*", "-NOPERM*", "-NOPERM*", "-NOPERM*", "-NOPERM*", "-NOPERM*",
        "-NOPERM*", "-NOPERM*", "-NOPERM*", "-NOPERM*", "-NOPERM*",
        "[5,9]",
        "-NOPERM*", "-NOPERM*",
        "+PONG",
    };
    expect_as_nobody(commands, expected);
    /* the denial names the tenant */
    char out[1024];
    const char *const one[] = {"GET globex credit op", NULL};
    run_as(NOBODY_UID, NOBODY_GID, one, out, sizeof(out));
    ck_assert_msg(strstr(out, "globex") != NULL, "got '%s'", out);
    /* root matches no rule: with rules, it reads nothing and is not admin */
    expect("-NOPERM*", "GET acme credit op");
    expect("-NOPERM*", "FLUSH acme");
    expect("+PONG", "PING");
    /* nothing was flushed */
    const char *const again[] = {"GET acme credit op", NULL};
    const char *const again_expected[] = {"5"};
    expect_as_nobody(again, again_expected);
}
END_TEST

/* INFO tenants, INFO all and HEALTH's top_tenants leave out the tenants
 * outside the peer's grant; a peer that may read every tenant sees all. */
START_TEST(test_acl_reports_show_granted_tenants)
{
    start_daemon(config_text(2,
                             "access:\n"
                             "  - {uid: 65534, tenants: [acme]}\n"
                             "  - {uid: 0, tenants: \"*\", admin: true}\n",
                             ""));
    publish_two_tenants();
    const char *const commands[] = {"INFO tenants", "INFO all", "HEALTH", "TENANT globex", NULL};
    char out[16384];
    run_as(NOBODY_UID, NOBODY_GID, commands, out, sizeof(out));
    char *save = NULL;
    for (char *line = strtok_r(out, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        ck_assert_msg(strstr(line, "globex") == NULL || strncmp(line, "-NOPERM", 7) == 0,
                      "nobody sees globex: '%.300s'", line);
        ck_assert_msg(strstr(line, "initech") == NULL, "nobody sees initech: '%.300s'", line);
    }
    run_as(NOBODY_UID, NOBODY_GID, commands, out, sizeof(out));
    ck_assert_msg(strstr(out, "tenant_acme:") != NULL, "INFO tenants as nobody: %.300s", out);
    ck_assert_msg(strstr(out, "\"tenant\":\"acme\"") != NULL, "HEALTH as nobody: %.600s", out);
    /* root may read every tenant */
    redisReply *reply = command_on(client, "INFO tenants");
    ck_assert_int_eq(reply->type, REDIS_REPLY_STRING);
    ck_assert_msg(strstr(reply->str, "tenant_globex:") != NULL && strstr(reply->str, "tenant_initech:"),
                  "%s", reply->str);
    freeReplyObject(reply);
    reply = command_on(client, "HEALTH");
    ck_assert_int_eq(reply->type, REDIS_REPLY_STRING);
    ck_assert_msg(strstr(reply->str, "\"tenant\":\"globex\"") != NULL, "%s", reply->str);
    freeReplyObject(reply);
}
END_TEST

START_TEST(test_acl_admin_rule)
{
    start_daemon(config_text(2,
                             "access:\n"
                             "  - {user: nobody, tenants: \"*\", admin: true}\n"
                             "  - {gid: 0, tenants: \"*\"}\n",
                             ""));
    publish_two_tenants();
    /* root reads through the gid rule but is not admin */
    expect("5", "GET acme credit op");
    expect("-NOPERM*", "FLUSH acme");
    expect("5", "GET acme credit op");
    const char *const commands[] = {
        "GET globex credit op", "FLUSH acme", "GET acme credit op", "FLUSH globex credit", NULL,
    };
    const char *const expected[] = {"7", "+OK", "(nil)", "+OK"};
    expect_as_nobody(commands, expected);
    expect("(nil)", "GET acme credit op");
    expect("(nil)", "GET globex credit op");
    expect("9", "GET initech credit op");
}
END_TEST

/* FLUSH * as the very first command of a connection (when the peer's grant
 * is computed) gets exactly one reply; and it needs every tenant, not only
 * admin: an admin of [acme] may flush acme, not globex, nor everything. */
START_TEST(test_acl_flush_every_tenant)
{
    start_daemon(config_text(2,
                             "access:\n"
                             "  - {uid: 65534, tenants: [acme], admin: true}\n"
                             "  - {uid: 0, tenants: [initech]}\n",
                             ""));
    publish_two_tenants();
    const char *const commands[] = {"FLUSH *", "PING", "FLUSH globex", "GET acme credit op",
                                    "FLUSH acme", "GET acme credit op", NULL};
    const char *const expected[] = {"-NOPERM*", "+PONG", "-NOPERM*", "5", "+OK", "(nil)"};
    expect_as_nobody(commands, expected);
    /* root: reads initech, not admin */
    redisFree(client);
    client = harness_connect(&h);
    ck_assert_ptr_nonnull(client);
    expect("-NOPERM*", "FLUSH *");
    expect("+PONG", "PING");
    expect("9", "GET initech credit op");
    expect("-NOPERM*", "FLUSH initech");
    expect("9", "GET initech credit op");
}
END_TEST

START_TEST(test_acl_reload)
{
    start_default();
    publish_two_tenants();
    expect("7", "GET globex credit op");
    /* the new rules apply to connections that are already open */
    ck_assert_int_eq(harness_daemon_write_config(&h, config_text(2,
                                                                 "access:\n"
                                                                 "  - {uid: 65534, tenants: [globex]}\n",
                                                                 "")),
                     0);
    ck_assert_int_eq(harness_daemon_signal(&h, SIGHUP), 0);
    long long deadline = harness_now_ms() + WAIT_MS;
    bool denied = false;
    while (!denied && harness_now_ms() < deadline) {
        redisReply *reply = command_on(client, "GET globex credit op");
        denied = reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOPERM", 6) == 0;
        freeReplyObject(reply);
        if (!denied)
            harness_sleep_ms(20);
    }
    ck_assert_msg(denied, "root still reads globex after the reload");
    const char *const commands[] = {"GET globex credit op", "GET acme credit op", NULL};
    const char *const expected[] = {"7", "-NOPERM*"};
    expect_as_nobody(commands, expected);
}
END_TEST

/* ---- limits ---- */

START_TEST(test_max_clients)
{
    start_daemon(config_text(2, "", "  max_clients: 3\n"));
    /* the harness's start-up probe may still be counted for a moment */
    ck_assert(harness_wait_info(client, WAIT_MS, "connected_clients", 1));
    redisContext *second = harness_connect(&h);
    redisContext *third = harness_connect(&h);
    ck_assert_ptr_nonnull(second);
    ck_assert_ptr_nonnull(third);
    harness_expect_match(second, "+PONG", "PING");
    harness_expect_match(third, "+PONG", "PING");
    int fourth = harness_raw_open(&h);
    char buffer[128];
    bool closed;
    harness_raw_read(fourth, buffer, sizeof(buffer) - 1, WAIT_MS, &closed);
    ck_assert_str_eq(buffer, "-ERR max clients reached\r\n");
    ck_assert(closed || raw_drain_until_closed(fourth, WAIT_MS));
    close(fourth);
    expect("+PONG", "PING");
    harness_expect_match(second, "+PONG", "PING");
    harness_expect_match(third, "+PONG", "PING");
    ck_assert_int_eq(harness_info_int(client, "rejected_connections"), 1);
    ck_assert_int_eq(harness_info_int(client, "connected_clients"), 3);
    /* once one leaves, a new one is accepted */
    redisFree(third);
    ck_assert(harness_wait_info(client, WAIT_MS, "connected_clients", 2));
    redisContext *fifth = harness_connect(&h);
    ck_assert_ptr_nonnull(fifth);
    harness_expect_match(fifth, "+PONG", "PING");
    redisFree(fifth);
    redisFree(second);
}
END_TEST

START_TEST(test_max_args)
{
    start_daemon(config_text(2, "", "  max_args: 8\n"));
    int other = harness_raw_open(&h);
    /* eight arguments are fine */
    expect("[(nil),(nil),(nil),(nil),(nil)]", "MGET acme credit a b c d e");
    /* nine are a protocol error at once (the count alone is enough) */
    int bad = harness_raw_open(&h);
    harness_raw_send(bad, "*9\r\n", 4);
    char buffer[256];
    bool closed;
    harness_raw_read(bad, buffer, sizeof(buffer) - 1, WAIT_MS, &closed);
    ck_assert_msg(strncmp(buffer, "-ERR Protocol error: ", 21) == 0, "got '%s'", buffer);
    ck_assert(closed || raw_drain_until_closed(bad, WAIT_MS));
    close(bad);
    /* the same inline */
    bad = harness_raw_open(&h);
    const char *inline_request = "MGET acme credit a b c d e f\r\n";
    harness_raw_send(bad, inline_request, strlen(inline_request));
    harness_raw_read(bad, buffer, sizeof(buffer) - 1, WAIT_MS, &closed);
    ck_assert_msg(strncmp(buffer, "-ERR Protocol error: ", 21) == 0, "got '%s'", buffer);
    ck_assert(closed || raw_drain_until_closed(bad, WAIT_MS));
    close(bad);
    /* a hiredis client sending nine: error, then closed */
    redisContext *nine = harness_connect(&h);
    ck_assert_ptr_nonnull(nine);
    harness_expect_match(nine, "-ERR Protocol error: *", "MGET acme credit a b c d e f");
    redisReply *after = redisCommand(nine, "PING");
    ck_assert_ptr_null(after);
    redisFree(nine);
    raw_expect_pong(other);
    close(other);
    expect("+PONG", "PING");
    ck_assert_int_eq(harness_info_int(client, "protocol_errors"), 3);
}
END_TEST

START_TEST(test_max_request_bytes)
{
    start_daemon(config_text(2, "", "  max_request_bytes: 4kb\n"));
    int other = harness_raw_open(&h);
    /* a declared bulk over the limit is refused before its body arrives */
    int bad = harness_raw_open(&h);
    const char *header = "*2\r\n$4\r\nPING\r\n$5000\r\n";
    harness_raw_send(bad, header, strlen(header));
    char buffer[256];
    bool closed;
    long long started = harness_now_ms();
    harness_raw_read(bad, buffer, sizeof(buffer) - 1, WAIT_MS, &closed);
    ck_assert_msg(strncmp(buffer, "-ERR Protocol error: ", 21) == 0, "got '%s'", buffer);
    ck_assert_int_lt(harness_now_ms() - started, 2000);
    ck_assert(closed || raw_drain_until_closed(bad, WAIT_MS));
    close(bad);
    /* several bulks that add up to more than the limit */
    bad = harness_raw_open(&h);
    char *big = malloc(3000);
    ck_assert_ptr_nonnull(big);
    memset(big, 'x', 3000);
    const char *first = "*3\r\n$4\r\nPING\r\n$3000\r\n";
    harness_raw_send(bad, first, strlen(first));
    harness_raw_send(bad, big, 3000);
    harness_raw_send(bad, "\r\n", 2);
    /* 3004 bytes so far: within the limit, nothing to say yet */
    ck_assert_uint_eq(harness_raw_read(bad, buffer, sizeof(buffer) - 1, 200, &closed), 0);
    ck_assert(!closed);
    /* the next declared bulk would take it to 6004: refused at once */
    harness_raw_send(bad, "$3000\r\n", 7);
    harness_raw_read(bad, buffer, sizeof(buffer) - 1, WAIT_MS, &closed);
    ck_assert_msg(strncmp(buffer, "-ERR Protocol error: ", 21) == 0, "got '%s'", buffer);
    ck_assert(closed || raw_drain_until_closed(bad, WAIT_MS));
    close(bad);
    /* within the limit: served */
    redisReply *reply = command_on(client, "PING %b", big, (size_t)3000);
    ck_assert_int_eq(reply->type, REDIS_REPLY_STRING);
    ck_assert_uint_eq(reply->len, 3000);
    freeReplyObject(reply);
    free(big);
    raw_expect_pong(other);
    close(other);
    ck_assert_int_eq(harness_info_int(client, "protocol_errors"), 2);
}
END_TEST

START_TEST(test_idle_timeout)
{
    start_daemon(config_text(2, "", "  idle_timeout: 300ms\n"));
    redisFree(client); /* it would be idle too */
    client = NULL;
    int idle = harness_raw_open(&h);
    int active = harness_raw_open(&h);
    raw_expect_pong(idle);
    for (int i = 0; i < 12; i++) {
        raw_expect_pong(active);
        harness_sleep_ms(100);
    }
    /* the idle one was closed: read returns EOF */
    char buffer[64];
    bool closed;
    size_t got = harness_raw_read(idle, buffer, sizeof(buffer) - 1, WAIT_MS, &closed);
    ck_assert_uint_eq(got, 0);
    ck_assert(closed);
    close(idle);
    raw_expect_pong(active);
    close(active);
    client = harness_connect(&h);
    ck_assert_ptr_nonnull(client);
    ck_assert_int_ge(harness_info_int(client, "clients_dropped_idle"), 1);
}
END_TEST

/* A reply larger than max_reply_backlog is not built: the command answers
 * -ERR reply too large, and the connection goes on. */
START_TEST(test_reply_too_large)
{
    start_daemon(config_text(2, "", "  max_reply_backlog: 64kb\n"));
    char value[1100];
    int len = snprintf(value, sizeof(value), "{\"pad\":\"");
    memset(value + len, 'p', 1000);
    snprintf(value + len + 1000, sizeof(value) - (size_t)len - 1000, "\"}");
    harness_publish_set(&h, CHANNEL, "acme", "config", "big", value);
    sync_stream();
    enum { MANY = 100 }; /* 100 x ~1 KB: over 64 KB */
    const char *argv[MANY + 3] = {"MGET", "acme", "config"};
    for (int i = 3; i < MANY + 3; i++)
        argv[i] = "big";
    redisReply *reply = redisCommandArgv(client, MANY + 3, argv, NULL);
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(reply->type, REDIS_REPLY_ERROR);
    ck_assert_str_eq(reply->str, "ERR reply too large");
    freeReplyObject(reply);
    expect("+PONG", "PING");
    /* half as many fit */
    reply = redisCommandArgv(client, MANY / 2 + 3, argv, NULL);
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(reply->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(reply->elements, MANY / 2);
    freeReplyObject(reply);
    ck_assert_int_eq(harness_info_int(client, "clients_dropped_backlog"), 0);
}
END_TEST

/* In a transaction the bound is per element: one queued command whose reply
 * would pass max_reply_backlog is that element's -ERR reply too large, the
 * others answer (docs/reference.md §4). */
START_TEST(test_exec_element_too_large)
{
    start_daemon(config_text(2, "", "  max_reply_backlog: 64kb\n"));
    char value[1100];
    int len = snprintf(value, sizeof(value), "{\"pad\":\"");
    memset(value + len, 'p', 1000);
    snprintf(value + len + 1000, sizeof(value) - (size_t)len - 1000, "\"}");
    harness_publish_set(&h, CHANNEL, "acme", "config", "big", value);
    sync_stream();
    enum { MANY = 100 }; /* 100 x ~1 KB: over 64 KB */
    const char *argv[MANY + 3] = {"MGET", "acme", "config"};
    for (int i = 3; i < MANY + 3; i++)
        argv[i] = "big";
    expect("+OK", "MULTI");
    redisReply *reply = redisCommandArgv(client, MANY + 3, argv, NULL);
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(reply->type, REDIS_REPLY_STATUS);
    ck_assert_str_eq(reply->str, "QUEUED");
    freeReplyObject(reply);
    expect("+QUEUED", "PING");
    reply = redisCommandArgv(client, MANY / 2 + 3, argv, NULL);
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(reply->type, REDIS_REPLY_STATUS);
    freeReplyObject(reply);
    reply = redisCommand(client, "EXEC");
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(reply->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(reply->elements, 3);
    ck_assert_int_eq(reply->element[0]->type, REDIS_REPLY_ERROR);
    ck_assert_str_eq(reply->element[0]->str, "ERR reply too large");
    ck_assert_int_eq(reply->element[1]->type, REDIS_REPLY_STATUS);
    ck_assert_str_eq(reply->element[1]->str, "PONG");
    ck_assert_int_eq(reply->element[2]->type, REDIS_REPLY_ARRAY);
    ck_assert_uint_eq(reply->element[2]->elements, MANY / 2);
    freeReplyObject(reply);
    expect("+PONG", "PING");
    ck_assert_int_eq(harness_info_int(client, "clients_dropped_backlog"), 0);
}
END_TEST

START_TEST(test_max_reply_backlog)
{
    start_daemon(config_text(2, "", "  max_reply_backlog: 64kb\n"));
    char value[1100];
    int len = snprintf(value, sizeof(value), "{\"pad\":\"");
    memset(value + len, 'p', 1000);
    snprintf(value + len + 1000, sizeof(value) - (size_t)len - 1000, "\"}");
    harness_publish_set(&h, CHANNEL, "acme", "config", "big", value);
    sync_stream();
    redisReply *reply = command_on(client, "GET acme config big");
    ck_assert_int_eq(reply->type, REDIS_REPLY_STRING);
    ck_assert_uint_ge(reply->len, 1000);
    freeReplyObject(reply);

    int greedy = harness_raw_open(&h);
    const char *get = "*4\r\n$3\r\nGET\r\n$4\r\nacme\r\n$6\r\nconfig\r\n$3\r\nbig\r\n";
    size_t get_len = strlen(get);
    size_t count = 5000;
    char *requests = malloc(get_len * count);
    ck_assert_ptr_nonnull(requests);
    for (size_t i = 0; i < count; i++)
        memcpy(requests + i * get_len, get, get_len);
    /* pipeline everything without reading; the daemon may hang up midway */
    size_t sent = 0;
    while (sent < get_len * count) {
        ssize_t n = send(greedy, requests + sent, get_len * count - sent, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        sent += (size_t)n;
    }
    free(requests);
    ck_assert(harness_wait_info(client, 5000, "clients_dropped_backlog", 1));
    ck_assert(raw_drain_until_closed(greedy, 5000));
    close(greedy);
    /* the others are still served */
    expect(value, "GET acme config big");
    ck_assert(harness_wait_info(client, WAIT_MS, "connected_clients", 1));
    ck_assert(harness_daemon_alive(&h));
}
END_TEST

/* ---- query threads under a stream of sets ---- */

#define STRESS_KEYS 50
#define STRESS_READERS 4
#define STRESS_MS 2000

static struct {
    _Atomic long long published[STRESS_KEYS]; /* highest v published for key i */
    atomic_bool stop;
    atomic_long replies;
    atomic_long values;
    atomic_long errors;
    pthread_mutex_t lock;
    char first_error[512];
} stress;

__attribute__((format(printf, 1, 2)))
static void stress_fail(const char *fmt, ...)
{
    va_list args;
    pthread_mutex_lock(&stress.lock);
    if (atomic_fetch_add(&stress.errors, 1) == 0) {
        va_start(args, fmt);
        vsnprintf(stress.first_error, sizeof(stress.first_error), fmt, args);
        va_end(args);
    }
    pthread_mutex_unlock(&stress.lock);
}

/* The value published as version v (of key v % STRESS_KEYS). */
static void stress_value(long long v, char *buf, size_t size)
{
    char digits[24];
    int n = snprintf(digits, sizeof(digits), "%lld", v);
    size_t len = (size_t)snprintf(buf, size, "{\"v\":%lld,\"pad\":\"", v);
    int repeat = (int)(v % 23) + 1;
    for (int i = 0; i < repeat && len + (size_t)n + 4 < size; i++) {
        memcpy(buf + len, digits, (size_t)n);
        len += (size_t)n;
    }
    snprintf(buf + len, size - len, "\"}");
}

/* Checks a GET reply for key: nil, or exactly a value published for it. */
static void stress_check_get(int key, const redisReply *r, long long *last_seen)
{
    if (r->type == REDIS_REPLY_NIL)
        return;
    if (r->type != REDIS_REPLY_STRING) {
        stress_fail("GET k%d: reply type %d %s", key, r->type,
                    r->type == REDIS_REPLY_ERROR ? r->str : "");
        return;
    }
    json_error_t error;
    json_t *doc = json_loadb(r->str, r->len, 0, &error);
    json_t *v = doc ? json_object_get(doc, "v") : NULL;
    if (!json_is_integer(v)) {
        stress_fail("GET k%d: not a published value: %.*s", key, (int)r->len, r->str);
        json_decref(doc);
        return;
    }
    long long version = json_integer_value(v);
    char expected[512];
    stress_value(version, expected, sizeof(expected));
    long long published = atomic_load(&stress.published[key]);
    if (strlen(expected) != r->len || memcmp(expected, r->str, r->len) != 0)
        stress_fail("GET k%d: torn value %.*s (expected %s)", key, (int)r->len, r->str, expected);
    else if (version % STRESS_KEYS != key || version > published)
        stress_fail("GET k%d: v %lld was never published for it (latest %lld)", key, version,
                    published);
    else if (version < *last_seen)
        stress_fail("GET k%d: went back from v %lld to v %lld", key, *last_seen, version);
    else
        *last_seen = version;
    atomic_fetch_add(&stress.values, 1);
    json_decref(doc);
}

static void *stress_reader(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg;
    long long last_seen[STRESS_KEYS] = {0};
    struct timeval tv = {.tv_sec = 5};
    redisContext *c = redisConnectUnixWithTimeout(h.daemon_socket, tv);
    if (c == NULL || c->err) {
        stress_fail("reader connect: %s", c ? c->errstr : "no memory");
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    while (!atomic_load(&stress.stop)) {
        int key = (int)(rand_r(&seed) % STRESS_KEYS);
        /* a small pipeline: GET, CAN, STATUS */
        redisAppendCommand(c, "GET acme config k%d", key);
        redisAppendCommand(c, "CAN acme u%d app.read", key);
        redisAppendCommand(c, "STATUS acme u%d", key);
        redisReply *replies[3] = {NULL, NULL, NULL};
        for (int i = 0; i < 3; i++) {
            void *raw = NULL;
            if (redisGetReply(c, &raw) != REDIS_OK) {
                stress_fail("reader: connection error: %s", c->errstr);
                goto done;
            }
            replies[i] = raw;
        }
        stress_check_get(key, replies[0], &last_seen[key]);
        const redisReply *can = replies[1];
        if (!(can->type == REDIS_REPLY_NIL ||
              (can->type == REDIS_REPLY_INTEGER && (can->integer == 0 || can->integer == 1))))
            stress_fail("CAN u%d: reply type %d", key, can->type);
        const redisReply *status = replies[2];
        if (!(status->type == REDIS_REPLY_NIL ||
              (status->type == REDIS_REPLY_STRING &&
               (strcmp(status->str, "active") == 0 || strcmp(status->str, "blocked") == 0))))
            stress_fail("STATUS u%d: reply type %d '%s'", key, status->type,
                        status->str ? status->str : "");
        for (int i = 0; i < 3; i++)
            freeReplyObject(replies[i]);
        atomic_fetch_add(&stress.replies, 3);
    }
done:
    redisFree(c);
    return NULL;
}

START_TEST(test_query_threads_stress)
{
    start_daemon(config_text(4, "", ""));
    memset(&stress, 0, sizeof(stress));
    pthread_mutex_init(&stress.lock, NULL);
    harness_publish_set(&h, CHANNEL, "acme", "role", "reader", "[\"app.read\"]");
    harness_publish_set(&h, CHANNEL, "acme", "role", "writer", "[\"app.write\"]");
    sync_stream();

    pthread_t readers[STRESS_READERS];
    for (uintptr_t i = 0; i < STRESS_READERS; i++)
        ck_assert_int_eq(pthread_create(&readers[i], NULL, stress_reader, (void *)(i + 1)), 0);

    /* Publish versioned sets round-robin over the keys; now and then a
     * delete or an invalidate, and the user of the same index. */
    char last_value[STRESS_KEYS][512];
    bool last_live[STRESS_KEYS] = {false};
    long long v = STRESS_KEYS; /* so that v % STRESS_KEYS == key and v > 0 */
    long long messages = 0;
    long long deadline = harness_now_ms() + STRESS_MS;
    while (harness_now_ms() < deadline) {
        v++;
        int key = (int)(v % STRESS_KEYS);
        char value[512], payload[768];
        if (v % 97 == 0) {
            snprintf(payload, sizeof(payload),
                     "{\"op\":\"%s\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"k%d\","
                     "\"version\":%lld}",
                     v % 2 ? "del" : "invalidate", key, v);
            last_live[key] = false;
        } else {
            stress_value(v, value, sizeof(value));
            atomic_store(&stress.published[key], v);
            snprintf(payload, sizeof(payload),
                     "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"k%d\","
                     "\"value\":%s,\"version\":%lld}",
                     key, value, v);
            snprintf(last_value[key], sizeof(last_value[key]), "%s", value);
            last_live[key] = true;
        }
        harness_publish_ok(&h, CHANNEL, payload);
        messages++;
        if (v % 3 == 0) {
            snprintf(payload, sizeof(payload),
                     "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u%d\","
                     "\"value\":{\"status\":\"%s\",\"roles\":[\"%s\"]},\"version\":%lld}",
                     key, v % 2 ? "active" : "blocked", v % 4 < 2 ? "reader" : "writer", v);
            harness_publish_ok(&h, CHANNEL, payload);
            messages++;
        }
    }
    atomic_store(&stress.stop, true);
    for (int i = 0; i < STRESS_READERS; i++)
        pthread_join(readers[i], NULL);
    ck_assert_msg(atomic_load(&stress.errors) == 0, "%ld bad replies; first: %s",
                  atomic_load(&stress.errors), stress.first_error);
    ck_assert_int_gt(atomic_load(&stress.replies), 1000);
    ck_assert_int_gt(atomic_load(&stress.values), 100);
    ck_assert(harness_daemon_alive(&h));

    /* Once the stream is drained, every key holds its last published state. */
    sync_stream();
    for (int key = 0; key < STRESS_KEYS; key++)
        expect(last_live[key] ? last_value[key] : "(nil)", "GET acme config k%d", key);
    ck_assert_int_ge(harness_info_int(client, "messages_applied"), messages);
    pthread_mutex_destroy(&stress.lock);
}
END_TEST

/* ---- redis-cli ---- */

/* Runs a shell command, returns its exit status and its output in out. */
static int shell(const char *command, char *out, size_t size)
{
    fflush(stdout);
    fflush(stderr);
    FILE *pipe = popen(command, "r");
    ck_assert_ptr_nonnull(pipe);
    size_t len = 0;
    size_t n;
    while (len + 1 < size && (n = fread(out + len, 1, size - 1 - len, pipe)) > 0)
        len += n;
    out[len] = '\0';
    int status = pclose(pipe);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void expect_cli(const char *args, const char *expected)
{
    char command[512], out[8192];
    snprintf(command, sizeof(command), "redis-cli -s '%s' %s 2>&1", h.daemon_socket, args);
    int status = shell(command, out, sizeof(out));
    ck_assert_msg(status == 0, "%s: exit %d: %s", command, status, out);
    ck_assert_msg(strcmp(out, expected) == 0, "%s: expected '%s', got '%s'", command, expected,
                  out);
}

START_TEST(test_redis_cli)
{
    start_default();
    publish_roles_and_users();
    harness_publish_set(&h, CHANNEL, "acme", "credit", "op", "3.5");
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "root", "{}");
    harness_publish_set(&h, CHANNEL, "acme", "hierarchy", "kid", "{\"parent\":\"root\"}");
    sync_stream();
    expect_cli("PING", "PONG\n");
    expect_cli("COMMAND INFO can", "can\n4\nreadonly\nfast\n0\n0\n0\n@read\n\n\n\n");
    expect_cli("GET acme credit op", "3.5\n");
    expect_cli("GET cache:acme:credit:op", "3.5\n");
    expect_cli("CREDIT acme op", "3.5\n");
    expect_cli("STATUS acme alice", "active\n");
    expect_cli("CAN acme alice crm.leads", "1\n");
    expect_cli("ROLECAN acme viewer crm.leads", "0\n");
    expect_cli("PERMS acme admin", "crm.*\nusers.read\n");
    expect_cli("ANCESTORS acme kid", "root\n");
    expect_cli("CHILDREN acme root", "kid\n");
    expect_cli("GET acme credit nope", "\n");

    /* Interactive: on a terminal redis-cli runs its REPL (which sends
     * COMMAND DOCS at start); commands come from stdin through `script`'s
     * pty. TERM=dumb keeps linenoise from asking the terminal for its cursor
     * position, which nobody would answer. */
    char command[768], out[16384];
    snprintf(command, sizeof(command),
             "printf 'PING\\nCREDIT acme op\\nCAN acme alice crm.leads\\nHEALTH\\nTENANT acme\\n"
             "INFO tenants\\nFLUSH acme credit\\nCREDIT acme op\\n' | "
             "TERM=dumb timeout 20 script -qec \"redis-cli -s '%s'\" /dev/null 2>&1",
             h.daemon_socket);
    int status = shell(command, out, sizeof(out));
    ck_assert_msg(status == 0, "interactive redis-cli: exit %d: %s", status, out);
    ck_assert_msg(strstr(out, "PONG") != NULL, "got '%s'", out);
    ck_assert_msg(strstr(out, "\"3.5\"") != NULL, "got '%s'", out);
    ck_assert_msg(strstr(out, "(integer) 1") != NULL, "got '%s'", out);
    ck_assert_msg(strstr(out, "usage_percentage") != NULL, "got '%s'", out);
    ck_assert_msg(strstr(out, "tenant:acme") != NULL, "got '%s'", out);
    ck_assert_msg(strstr(out, "tenant_acme:") != NULL, "got '%s'", out);
    ck_assert_msg(strstr(out, "OK") != NULL, "got '%s'", out);
    ck_assert_msg(strstr(out, "(nil)") != NULL, "got '%s'", out);
    ck_assert_msg(strstr(out, "ERR") == NULL, "got '%s'", out);
    ck_assert(harness_daemon_alive(&h));
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("queries");

    TCase *queries = tcase_create("queries");
    tcase_add_checked_fixture(queries, setup, teardown);
    tcase_set_timeout(queries, 60);
    tcase_add_test(queries, test_credit);
    tcase_add_test(queries, test_values_as_sent);
    tcase_add_test(queries, test_dot_segments);
    tcase_add_test(queries, test_status);
    tcase_add_test(queries, test_can);
    tcase_add_test(queries, test_can_default_active_statuses);
    tcase_add_test(queries, test_rolecan_and_perms);
    tcase_add_test(queries, test_permission_patterns);
    tcase_add_test(queries, test_role_with_500_patterns);
    tcase_add_test(queries, test_ancestors);
    tcase_add_test(queries, test_children);
    tcase_add_test(queries, test_tenant);
    tcase_add_test(queries, test_health);
    tcase_add_test(queries, test_flush_admin);
    suite_add_tcase(suite, queries);

    TCase *acl = tcase_create("acl");
    tcase_add_checked_fixture(acl, setup, teardown);
    tcase_set_timeout(acl, 60);
    tcase_add_test(acl, test_acl_no_rules);
    tcase_add_test(acl, test_acl_tenant_rules);
    tcase_add_test(acl, test_acl_reports_show_granted_tenants);
    tcase_add_test(acl, test_acl_admin_rule);
    tcase_add_test(acl, test_acl_flush_every_tenant);
    tcase_add_test(acl, test_acl_reload);
    suite_add_tcase(suite, acl);

    TCase *limits = tcase_create("limits");
    tcase_add_checked_fixture(limits, setup, teardown);
    tcase_set_timeout(limits, 60);
    tcase_add_test(limits, test_max_clients);
    tcase_add_test(limits, test_max_args);
    tcase_add_test(limits, test_max_request_bytes);
    tcase_add_test(limits, test_idle_timeout);
    tcase_add_test(limits, test_max_reply_backlog);
    tcase_add_test(limits, test_reply_too_large);
    tcase_add_test(limits, test_exec_element_too_large);
    suite_add_tcase(suite, limits);

    TCase *threads = tcase_create("threads");
    tcase_add_checked_fixture(threads, setup, teardown);
    tcase_set_timeout(threads, 120);
    tcase_add_test(threads, test_query_threads_stress);
    tcase_add_test(threads, test_redis_cli);
    suite_add_tcase(suite, threads);

    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
