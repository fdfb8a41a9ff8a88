/* test_sentinel.c - Redis high availability (docs/reference.md §7): a real
 * master, a replica and a sentinel on loopback TCP ports, and the real daemon
 * configured with redis.sentinels. The daemon must find the master, follow a
 * SENTINEL FAILOVER to the new master, get past a dead first sentinel, and
 * report a wrong master name in its log and HEALTH while it keeps retrying.
 *
 * The three redis-server processes are started by this file (the harness's
 * own redis-server listens on a Unix socket only); like the harness's, they
 * die with the test process (PR_SET_PDEATHSIG) and are stopped and reaped in
 * the teardown, whatever the test did. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>

#include "harness.h"

#define CHANNEL "tenantcached:invalidate"
#define MASTER_NAME "mymaster"
#define WAIT_MS 5000
#define FAILOVER_WAIT_MS 20000

enum { MASTER, REPLICA, SENTINEL, STRAY_SENTINEL, SERVERS };

static struct harness h;
static redisContext *client;
static int ports[SERVERS];
static pid_t pids[SERVERS];
static int dead_port; /* a port nothing listens on */

/* --- processes ---------------------------------------------------------- */

/* Runs argv with its output appended to <dir>/<name>.log; the child dies
 * with this process. */
static pid_t spawn(const char *name, const char *const *argv)
{
    char log_path[HARNESS_PATH_MAX + 32];
    snprintf(log_path, sizeof(log_path), "%s/%s.log", h.dir, name);
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid != 0)
        return pid;
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127);
    int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log >= 0) {
        dup2(log, STDOUT_FILENO);
        dup2(log, STDERR_FILENO);
    }
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    const char *server = getenv("REDIS_SERVER") ? getenv("REDIS_SERVER") : "redis-server";
    char **args = (char **)argv; /* argv[0] is replaced by the server binary */
    args[0] = (char *)server;
    execvp(server, args);
    fprintf(stderr, "cannot run %s: %s\n", server, strerror(errno));
    _exit(127);
}

static redisContext *tcp_connect(int port)
{
    struct timeval timeout = {.tv_sec = 5};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, timeout);
    if (c == NULL)
        return NULL;
    if (c->err) {
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, timeout);
    return c;
}

/* Waits until the server on port answers PING. */
static bool wait_answers(int port, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    while (harness_now_ms() < deadline) {
        redisContext *c = tcp_connect(port);
        if (c != NULL) {
            redisReply *reply = redisCommand(c, "PING");
            bool ok = reply != NULL && reply->type == REDIS_REPLY_STATUS;
            if (reply != NULL)
                freeReplyObject(reply);
            redisFree(c);
            if (ok)
                return true;
        }
        harness_sleep_ms(20);
    }
    return false;
}

static void start_redis(int which, int master_port)
{
    char port[16], master[16], name[16];
    snprintf(port, sizeof(port), "%d", ports[which]);
    snprintf(master, sizeof(master), "%d", master_port);
    snprintf(name, sizeof(name), which == MASTER ? "master" : "replica");
    const char *argv[] = {"redis-server", "--port", port, "--bind", "127.0.0.1",
                          "--save", "", "--appendonly", "no", "--dir", h.dir,
                          "--dbfilename", which == MASTER ? "master.rdb" : "replica.rdb",
                          which == REPLICA ? "--replicaof" : NULL,
                          "127.0.0.1", master, NULL};
    pids[which] = spawn(name, argv);
    ck_assert_msg(wait_answers(ports[which], WAIT_MS), "%s on port %d does not answer", name,
                  ports[which]);
}

/* Starts a sentinel on ports[which] that monitors the server on
 * ports[monitored] as MASTER_NAME: SENTINEL monitors the master; a
 * STRAY_SENTINEL that monitors the replica disagrees with the others. */
static void start_sentinel(int which, int monitored)
{
    const char *name = which == SENTINEL ? "sentinel" : "stray-sentinel";
    char path[HARNESS_PATH_MAX + 32];
    snprintf(path, sizeof(path), "%s/%s.conf", h.dir, name);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "port %d\n"
            "bind 127.0.0.1\n"
            "daemonize no\n"
            "dir %s\n"
            "sentinel monitor " MASTER_NAME " 127.0.0.1 %d 1\n"
            "sentinel down-after-milliseconds " MASTER_NAME " 1000\n"
            "sentinel failover-timeout " MASTER_NAME " 5000\n"
            "sentinel parallel-syncs " MASTER_NAME " 1\n",
            ports[which], h.dir, ports[monitored]);
    fclose(f);
    const char *argv[] = {"redis-server", path, "--sentinel", NULL};
    pids[which] = spawn(name, argv);
    ck_assert_msg(wait_answers(ports[which], WAIT_MS), "%s on port %d does not answer", name,
                  ports[which]);
}

static void stop_servers(void)
{
    for (int i = 0; i < SERVERS; i++) {
        if (pids[i] <= 0)
            continue;
        kill(pids[i], SIGKILL);
        int status;
        while (waitpid(pids[i], &status, 0) < 0 && errno == EINTR) {
        }
        pids[i] = 0;
    }
}

static void dump_server_logs(void)
{
    static const char *const names[] = {"master", "replica", "sentinel", "stray-sentinel"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        char path[HARNESS_PATH_MAX + 32], line[512];
        snprintf(path, sizeof(path), "%s/%s.log", h.dir, names[i]);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        fprintf(stderr, "---- %s ----\n", path);
        while (fgets(line, sizeof(line), f) != NULL)
            fputs(line, stderr);
        fclose(f);
    }
}

/* --- fixture ------------------------------------------------------------ */

static void setup(void)
{
    harness_init(&h);
    for (int i = 0; i < SERVERS; i++)
        ports[i] = harness_free_port();
    dead_port = harness_free_port();
    start_redis(MASTER, 0);
    start_redis(REPLICA, ports[MASTER]);
    start_sentinel(SENTINEL, MASTER);
}

static void teardown(void)
{
    if (client != NULL)
        redisFree(client);
    client = NULL;
    stop_servers();
    harness_cleanup(&h); /* stops the daemon, and checks its exit under a sanitizer */
}

/* Starts the daemon with sentinels (a YAML flow list) and master_name. */
/* The daemon's config with where (the lines that say where Redis is). */
static void daemon_config(char *config, size_t size, const char *where)
{
    snprintf(config, size,
             "log_level: debug\n"
             "threads: 2\n"
             "shards: 4\n"
             "listen:\n"
             "  socket: \"@DAEMON_SOCKET@\"\n"
             "redis:\n"
             "%s"
             "  channels: [" CHANNEL "]\n"
             "  connect_timeout: 500ms\n"
             "  reconnect_min: 50ms\n"
             "  reconnect_max: 500ms\n"
             "  l2: true\n"
             "memory:\n"
             "  max_bytes: 16mb\n"
             "  tenant_max_bytes: 1mb\n"
             "  max_tenants: 1000\n",
             where);
}

/* Starts the daemon with sentinels (a YAML flow list) and master_name. */
static void start_daemon(const char *sentinels, const char *master_name)
{
    char config[2048], where[512];
    snprintf(where, sizeof(where), "  sentinels: %s\n  master_name: %s\n", sentinels,
             master_name);
    daemon_config(config, sizeof(config), where);
    ck_assert_int_eq(harness_daemon_start(&h, config), 0);
    client = harness_connect(&h);
    ck_assert_ptr_nonnull(client);
}

/* --- helpers ------------------------------------------------------------ */

/* The text value of the INFO line "field:value" into buf ("" when absent). */
static const char *info_text(const char *field, char *buf, size_t size)
{
    buf[0] = '\0';
    redisReply *reply = redisCommand(client, "INFO redis");
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(reply->type, REDIS_REPLY_STRING);
    size_t len = strlen(field);
    for (const char *line = reply->str; line != NULL && *line != '\0';) {
        const char *end = strstr(line, "\r\n");
        size_t line_len = end ? (size_t)(end - line) : strlen(line);
        if (line_len > len && strncmp(line, field, len) == 0 && line[len] == ':')
            snprintf(buf, size, "%.*s", (int)(line_len - len - 1), line + len + 1);
        line = end ? end + 2 : NULL;
    }
    freeReplyObject(reply);
    return buf;
}

static bool wait_info_text(const char *field, const char *expected, int timeout_ms)
{
    char value[256];
    long long deadline = harness_now_ms() + timeout_ms;
    do {
        if (strcmp(info_text(field, value, sizeof(value)), expected) == 0)
            return true;
        harness_sleep_ms(10);
    } while (harness_now_ms() < deadline);
    fprintf(stderr, "INFO %s is '%s', expected '%s'\n", field, value, expected);
    return false;
}

/* PUBLISH on the server at port; returns the number of receivers, or -1
 * when the server is unreachable or closed the connection (a sentinel
 * promoting a replica kills its clients). */
static long long publish_on(int port, const char *payload)
{
    redisContext *c = tcp_connect(port);
    if (c == NULL)
        return -1;
    redisReply *reply = redisCommand(c, "PUBLISH %s %s", CHANNEL, payload);
    if (reply == NULL) {
        redisFree(c);
        return -1;
    }
    long long receivers = reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
    freeReplyObject(reply);
    redisFree(c);
    return receivers;
}

static long long publish_value(int port, const char *key, int value)
{
    char payload[200];
    snprintf(payload, sizeof(payload),
             "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"%s\",\"value\":%d}",
             key, value);
    return publish_on(port, payload);
}

static bool wait_subscriber_on(int port, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    do {
        redisContext *c = tcp_connect(port);
        if (c != NULL) {
            redisReply *reply = redisCommand(c, "PUBSUB NUMSUB %s", CHANNEL);
            bool ok = reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
                      reply->element[1]->integer > 0;
            if (reply != NULL)
                freeReplyObject(reply);
            redisFree(c);
            if (ok)
                return true;
        }
        harness_sleep_ms(10);
    } while (harness_now_ms() < deadline);
    return false;
}

/* How many lines of the daemon's log contain needle. */
static int log_count(const char *needle)
{
    FILE *f = fopen(h.daemon_log, "r");
    if (f == NULL)
        return 0;
    char line[2048];
    int found = 0;
    while (fgets(line, sizeof(line), f) != NULL)
        found += strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

static bool log_contains(const char *needle)
{
    return log_count(needle) > 0;
}

static bool wait_log_count(const char *needle, int count, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    while (log_count(needle) < count && harness_now_ms() < deadline)
        harness_sleep_ms(20);
    return log_count(needle) >= count;
}

/* Waits until the sentinel sees the replica as a healthy replica of the
 * master, so that a SENTINEL FAILOVER has a candidate. */
static void wait_sentinel_knows_replica(void)
{
    redisContext *c = tcp_connect(ports[SENTINEL]);
    ck_assert_ptr_nonnull(c);
    long long deadline = harness_now_ms() + FAILOVER_WAIT_MS;
    bool ready = false;
    while (!ready && harness_now_ms() < deadline) {
        redisReply *reply = redisCommand(c, "SENTINEL REPLICAS " MASTER_NAME);
        ck_assert_ptr_nonnull(reply);
        for (size_t i = 0; reply->type == REDIS_REPLY_ARRAY && i < reply->elements; i++) {
            const redisReply *fields = reply->element[i];
            const char *flags = NULL, *link = NULL;
            for (size_t k = 0; k + 1 < fields->elements; k += 2) {
                if (strcmp(fields->element[k]->str, "flags") == 0)
                    flags = fields->element[k + 1]->str;
                if (strcmp(fields->element[k]->str, "master-link-status") == 0)
                    link = fields->element[k + 1]->str;
            }
            if (flags != NULL && strcmp(flags, "slave") == 0 && link != NULL &&
                strcmp(link, "ok") == 0)
                ready = true;
        }
        freeReplyObject(reply);
        if (!ready)
            harness_sleep_ms(50);
    }
    redisFree(c);
    if (!ready)
        dump_server_logs();
    ck_assert_msg(ready, "the sentinel never saw a healthy replica");
}

static void sentinel_list(char *buf, size_t size, bool dead_first)
{
    if (dead_first)
        snprintf(buf, size, "[\"127.0.0.1:%d\", \"127.0.0.1:%d\"]", dead_port, ports[SENTINEL]);
    else
        snprintf(buf, size, "[\"127.0.0.1:%d\"]", ports[SENTINEL]);
}

static void master_text(int which, char *buf, size_t size)
{
    snprintf(buf, size, "127.0.0.1:%d", ports[which]);
}

/* SENTINEL FAILOVER on the sentinel, once it knows a healthy replica. */
static void failover(void)
{
    wait_sentinel_knows_replica();
    redisContext *s = tcp_connect(ports[SENTINEL]);
    ck_assert_ptr_nonnull(s);
    redisReply *reply = redisCommand(s, "SENTINEL FAILOVER " MASTER_NAME);
    ck_assert_ptr_nonnull(reply);
    char text[256];
    harness_describe_reply(reply, text, sizeof(text));
    ck_assert_msg(reply->type == REDIS_REPLY_STATUS, "SENTINEL FAILOVER: %s", text);
    freeReplyObject(reply);
    redisFree(s);
}

/* --- tests -------------------------------------------------------------- */

START_TEST(test_finds_master)
{
    char sentinels[128], master[64];
    sentinel_list(sentinels, sizeof(sentinels), false);
    start_daemon(sentinels, MASTER_NAME);
    master_text(MASTER, master, sizeof(master));
    ck_assert(wait_info_text("redis_master", master, WAIT_MS));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    ck_assert_int_eq(harness_info_int(client, "sentinel_switches"), 0);
    /* subscribed on the master itself, not on the replica */
    ck_assert(wait_subscriber_on(ports[MASTER], WAIT_MS));
    ck_assert_int_eq(publish_value(ports[MASTER], "k1", 41), 1);
    ck_assert(harness_wait_reply(client, WAIT_MS, "41", "GET acme config k1"));
    /* L2 reads the master too */
    redisContext *m = tcp_connect(ports[MASTER]);
    ck_assert_ptr_nonnull(m);
    redisReply *set = redisCommand(m, "SET cache:acme:config:stored 12");
    ck_assert_ptr_nonnull(set);
    freeReplyObject(set);
    redisFree(m);
    ck_assert(harness_wait_reply(client, WAIT_MS, "12", "GET acme config stored"));

    json_t *root = harness_health(client);
    ck_assert_str_eq(json_string_value(json_object_get(root, "redis_master")), master);
    ck_assert_str_eq(json_string_value(json_object_get(root, "redis")), "connected");
    ck_assert_ptr_null(json_object_get(root, "sentinel_error"));
    json_decref(root);
}
END_TEST

START_TEST(test_follows_failover)
{
    char sentinels[128], master[64], replica[64];
    sentinel_list(sentinels, sizeof(sentinels), false);
    start_daemon(sentinels, MASTER_NAME);
    master_text(MASTER, master, sizeof(master));
    master_text(REPLICA, replica, sizeof(replica));
    ck_assert(wait_info_text("redis_master", master, WAIT_MS));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    ck_assert_int_eq(publish_value(ports[MASTER], "before", 1), 1);
    ck_assert(harness_wait_reply(client, WAIT_MS, "1", "GET acme config before"));
    wait_sentinel_knows_replica();

    long long started = harness_now_ms();
    failover();

    /* Publish on the new master until the daemon has applied one from it:
     * the first value it shows is the first message it got from there. */
    int published = 0;
    bool applied = false;
    long long applied_ms = 0;
    while (!applied && harness_now_ms() - started < FAILOVER_WAIT_MS) {
        publish_value(ports[REPLICA], "after", ++published);
        redisReply *r = redisCommand(client, "GET acme config after");
        ck_assert_ptr_nonnull(r);
        applied = r->type == REDIS_REPLY_STRING;
        freeReplyObject(r);
        if (applied)
            applied_ms = harness_now_ms();
        else
            harness_sleep_ms(5);
    }
    if (!applied) {
        harness_dump_log(&h);
        dump_server_logs();
    }
    ck_assert_msg(applied, "no message from the new master applied within %d ms",
                  FAILOVER_WAIT_MS);
    fprintf(stderr, "sentinel: SENTINEL FAILOVER to the first message applied from the new "
                    "master: %lld ms\n", applied_ms - started);

    ck_assert(wait_info_text("redis_master", replica, WAIT_MS));
    ck_assert_int_eq(harness_info_int(client, "sentinel_switches"), 1);
    /* it keeps applying on the new master */
    ck_assert_int_eq(publish_value(ports[REPLICA], "later", 77), 1);
    ck_assert(harness_wait_reply(client, WAIT_MS, "77", "GET acme config later"));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    /* and L2 reads the new master */
    redisContext *m = tcp_connect(ports[REPLICA]);
    ck_assert_ptr_nonnull(m);
    redisReply *set = redisCommand(m, "SET cache:acme:config:stored 13");
    ck_assert_ptr_nonnull(set);
    freeReplyObject(set);
    ck_assert(harness_wait_reply(client, WAIT_MS, "13", "GET acme config stored"));
    redisReply *stats = redisCommand(m, "INFO commandstats");
    ck_assert_ptr_nonnull(stats);
    ck_assert_msg(strstr(stats->str, "cmdstat_get:") != NULL, "no GET reached the new master");
    freeReplyObject(stats);
    redisFree(m);
    json_t *root = harness_health(client);
    ck_assert_str_eq(json_string_value(json_object_get(root, "redis_master")), replica);
    json_decref(root);
}
END_TEST

START_TEST(test_first_sentinel_down)
{
    char sentinels[128], master[64];
    sentinel_list(sentinels, sizeof(sentinels), true);
    start_daemon(sentinels, MASTER_NAME);
    master_text(MASTER, master, sizeof(master));
    ck_assert(wait_info_text("redis_master", master, WAIT_MS));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    ck_assert_int_eq(publish_value(ports[MASTER], "k", 5), 1);
    ck_assert(harness_wait_reply(client, WAIT_MS, "5", "GET acme config k"));
    json_t *root = harness_health(client);
    ck_assert_ptr_null(json_object_get(root, "sentinel_error"));
    json_decref(root);
}
END_TEST

/* The first sentinel names the replica: ROLE says "slave", so the daemon asks
 * the next sentinel and uses the real master. */
START_TEST(test_sentinels_disagree)
{
    start_sentinel(STRAY_SENTINEL, REPLICA);
    char sentinels[128], master[64];
    snprintf(sentinels, sizeof(sentinels), "[\"127.0.0.1:%d\", \"127.0.0.1:%d\"]",
             ports[STRAY_SENTINEL], ports[SENTINEL]);
    start_daemon(sentinels, MASTER_NAME);
    master_text(MASTER, master, sizeof(master));
    ck_assert(wait_info_text("redis_master", master, WAIT_MS));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    ck_assert_int_eq(publish_value(ports[MASTER], "k", 6), 1);
    ck_assert(harness_wait_reply(client, WAIT_MS, "6", "GET acme config k"));
    ck_assert_int_eq(harness_info_int(client, "sentinel_switches"), 0);
    char refused[200];
    snprintf(refused, sizeof(refused),
             "sentinel 127.0.0.1:%d names master 127.0.0.1:%d as master of '" MASTER_NAME
             "', but it is a slave",
             ports[STRAY_SENTINEL], ports[REPLICA]);
    if (!log_contains(refused))
        harness_dump_log(&h);
    ck_assert_msg(log_contains(refused), "the log does not say: %s", refused);
}
END_TEST

/* The first sentinel accepts connections but answers nothing (stopped): each
 * conversation with it ends at connect_timeout and the next one is asked. */
START_TEST(test_silent_sentinel)
{
    start_sentinel(STRAY_SENTINEL, MASTER);
    ck_assert_int_eq(kill(pids[STRAY_SENTINEL], SIGSTOP), 0);
    char sentinels[128], master[64], silent[96];
    snprintf(sentinels, sizeof(sentinels), "[\"127.0.0.1:%d\", \"127.0.0.1:%d\"]",
             ports[STRAY_SENTINEL], ports[SENTINEL]);
    start_daemon(sentinels, MASTER_NAME);
    master_text(MASTER, master, sizeof(master));
    ck_assert(wait_info_text("redis_master", master, WAIT_MS));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    ck_assert_int_eq(publish_value(ports[MASTER], "k", 7), 1);
    ck_assert(harness_wait_reply(client, WAIT_MS, "7", "GET acme config k"));
    snprintf(silent, sizeof(silent), "sentinel 127.0.0.1:%d: no answer within 500 ms",
             ports[STRAY_SENTINEL]);
    ck_assert_msg(log_contains(silent), "the log does not say: %s", silent);
}
END_TEST

/* No sentinel answers at start: HEALTH says why, the daemon keeps asking,
 * and finds the master once a sentinel comes up on that port. */
START_TEST(test_no_sentinel_then_one)
{
    char sentinels[128], master[64], want[64];
    snprintf(sentinels, sizeof(sentinels), "[\"127.0.0.1:%d\"]", ports[STRAY_SENTINEL]);
    start_daemon(sentinels, MASTER_NAME);
    snprintf(want, sizeof(want), "sentinel 127.0.0.1:%d: Connection refused",
             ports[STRAY_SENTINEL]);
    long long deadline = harness_now_ms() + WAIT_MS;
    bool reported = false;
    while (!reported && harness_now_ms() < deadline) {
        json_t *root = harness_health(client);
        const char *error = json_string_value(json_object_get(root, "sentinel_error"));
        reported = error != NULL && strstr(error, want) != NULL;
        json_decref(root);
        if (!reported)
            harness_sleep_ms(20);
    }
    ck_assert_msg(reported, "HEALTH sentinel_error never said: %s", want);
    ck_assert_int_eq(harness_info_int(client, "redis_connected"), 0);
    ck_assert(harness_daemon_alive(&h));

    start_sentinel(STRAY_SENTINEL, MASTER);
    master_text(MASTER, master, sizeof(master));
    ck_assert(wait_info_text("redis_master", master, WAIT_MS));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    ck_assert_int_eq(publish_value(ports[MASTER], "k", 8), 1);
    ck_assert(harness_wait_reply(client, WAIT_MS, "8", "GET acme config k"));
    json_t *root = harness_health(client);
    ck_assert_ptr_null(json_object_get(root, "sentinel_error"));
    json_decref(root);
}
END_TEST

/* A reload from a fixed address (the replica) to the sentinels moves the
 * connections to the master, and the reloaded daemon follows a failover. */
START_TEST(test_reload_to_sentinels)
{
    char config[2048], where[512], master[64], replica[64];
    snprintf(where, sizeof(where), "  host: 127.0.0.1\n  port: %d\n", ports[REPLICA]);
    daemon_config(config, sizeof(config), where);
    ck_assert_int_eq(harness_daemon_start(&h, config), 0);
    client = harness_connect(&h);
    ck_assert_ptr_nonnull(client);
    master_text(MASTER, master, sizeof(master));
    master_text(REPLICA, replica, sizeof(replica));
    ck_assert(wait_info_text("redis_master", replica, WAIT_MS));
    ck_assert(wait_subscriber_on(ports[REPLICA], WAIT_MS));

    snprintf(where, sizeof(where), "  sentinels: [\"127.0.0.1:%d\"]\n", ports[SENTINEL]);
    daemon_config(config, sizeof(config), where);
    ck_assert_int_eq(harness_daemon_write_config(&h, config), 0);
    ck_assert_int_eq(harness_daemon_signal(&h, SIGHUP), 0);
    ck_assert(wait_info_text("redis_master", master, WAIT_MS));
    ck_assert(wait_subscriber_on(ports[MASTER], WAIT_MS));
    ck_assert_int_eq(publish_value(ports[MASTER], "k", 9), 1);
    ck_assert(harness_wait_reply(client, WAIT_MS, "9", "GET acme config k"));

    failover();
    ck_assert(wait_info_text("redis_master", replica, FAILOVER_WAIT_MS));
    ck_assert(wait_subscriber_on(ports[REPLICA], WAIT_MS));
    ck_assert_int_eq(harness_info_int(client, "sentinel_switches"), 1);
}
END_TEST

/* The sentinel restarts: the daemon keeps its master meanwhile, watches
 * +switch-master again once the sentinel is back, and follows a failover. */
START_TEST(test_sentinel_restart)
{
    char sentinels[128], master[64], replica[64], watching[96];
    sentinel_list(sentinels, sizeof(sentinels), false);
    start_daemon(sentinels, MASTER_NAME);
    master_text(MASTER, master, sizeof(master));
    master_text(REPLICA, replica, sizeof(replica));
    snprintf(watching, sizeof(watching), "sentinel 127.0.0.1:%d: watching +switch-master",
             ports[SENTINEL]);
    ck_assert(wait_info_text("redis_master", master, WAIT_MS));
    ck_assert(wait_log_count(watching, 1, WAIT_MS));

    kill(pids[SENTINEL], SIGKILL);
    int status;
    while (waitpid(pids[SENTINEL], &status, 0) < 0 && errno == EINTR) {
    }
    pids[SENTINEL] = 0;
    ck_assert(wait_log_count("+switch-master watch lost", 1, WAIT_MS));
    /* the master did not move: the stream stays up */
    ck_assert_int_eq(publish_value(ports[MASTER], "k", 10), 1);
    ck_assert(harness_wait_reply(client, WAIT_MS, "10", "GET acme config k"));
    ck_assert_int_eq(harness_info_int(client, "redis_connected"), 1);

    start_sentinel(SENTINEL, MASTER);
    ck_assert(wait_log_count(watching, 2, WAIT_MS));
    failover();
    ck_assert(wait_info_text("redis_master", replica, FAILOVER_WAIT_MS));
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 1));
    ck_assert_int_eq(publish_value(ports[REPLICA], "k", 11), 1);
    ck_assert(harness_wait_reply(client, WAIT_MS, "11", "GET acme config k"));
}
END_TEST

START_TEST(test_wrong_master_name)
{
    char sentinels[128];
    sentinel_list(sentinels, sizeof(sentinels), false);
    start_daemon(sentinels, "nosuchmaster");

    /* HEALTH names the problem */
    long long deadline = harness_now_ms() + WAIT_MS;
    const char *error = NULL;
    json_t *root = NULL;
    while (harness_now_ms() < deadline) {
        root = harness_health(client);
        error = json_string_value(json_object_get(root, "sentinel_error"));
        if (error != NULL)
            break;
        json_decref(root);
        root = NULL;
        harness_sleep_ms(20);
    }
    ck_assert_msg(error != NULL, "HEALTH never showed a sentinel_error");
    char want[128];
    snprintf(want, sizeof(want), "sentinel 127.0.0.1:%d knows no master named 'nosuchmaster'",
             ports[SENTINEL]);
    ck_assert_msg(strstr(error, want) != NULL, "sentinel_error: %s", error);
    ck_assert_str_eq(json_string_value(json_object_get(root, "redis")), "disconnected");
    ck_assert_str_eq(json_string_value(json_object_get(root, "redis_master")), "");
    json_t *advice = json_object_get(root, "recommendations");
    bool advised = false;
    for (size_t i = 0; i < json_array_size(advice); i++)
        advised |= strstr(json_string_value(json_array_get(advice, i)), "redis.master_name") !=
                   NULL;
    ck_assert(advised);
    json_decref(root);

    /* the log says it too, and the daemon keeps running and retrying */
    ck_assert(log_contains(want));
    ck_assert(log_contains("check redis.master_name"));
    redisContext *s = tcp_connect(ports[SENTINEL]);
    ck_assert_ptr_nonnull(s);
    redisReply *before = redisCommand(s, "INFO stats");
    ck_assert_ptr_nonnull(before);
    long long connections_before = -1, connections_after = -1;
    const char *at = strstr(before->str, "total_connections_received:");
    ck_assert_ptr_nonnull(at);
    connections_before = atoll(at + strlen("total_connections_received:"));
    freeReplyObject(before);
    harness_sleep_ms(1500);
    redisReply *after = redisCommand(s, "INFO stats");
    ck_assert_ptr_nonnull(after);
    at = strstr(after->str, "total_connections_received:");
    ck_assert_ptr_nonnull(at);
    connections_after = atoll(at + strlen("total_connections_received:"));
    freeReplyObject(after);
    redisFree(s);
    /* retried (new queries came), with backoff (reconnect_max 500 ms: at
     * most a handful in 1.5 s, not a busy loop) */
    ck_assert_int_gt(connections_after, connections_before);
    ck_assert_int_lt(connections_after - connections_before, 40);
    ck_assert(harness_daemon_alive(&h));
    ck_assert_int_eq(harness_info_int(client, "redis_connected"), 0);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("sentinel");
    TCase *tc = tcase_create("sentinel");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 90);
    tcase_add_test(tc, test_finds_master);
    tcase_add_test(tc, test_follows_failover);
    tcase_add_test(tc, test_first_sentinel_down);
    tcase_add_test(tc, test_sentinels_disagree);
    tcase_add_test(tc, test_silent_sentinel);
    tcase_add_test(tc, test_no_sentinel_then_one);
    tcase_add_test(tc, test_wrong_master_name);
    tcase_add_test(tc, test_reload_to_sentinels);
    tcase_add_test(tc, test_sentinel_restart);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
