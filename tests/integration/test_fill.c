/* test_fill.c - fills on a miss (docs/reference.md §5) and the hot refresh (§6), end to
 * end: a real redis-server as L2, a small HTTP origin (libevent evhttp in a
 * thread of this test process) as L3, and the real daemon binary.
 *
 * The origin serves /v1/tenants/{tenant}/{kind}/{key} from a table the test
 * fills (keyed by the raw, still URL-encoded request path), counts requests
 * per path, and can be told to delay its replies (a timer per request, the
 * loop never sleeps), to hold them until the test releases them, to answer
 * 500, or to stop listening altogether (every connection closed: the next
 * connect is refused). A test that races a message against a fill holds the
 * origin's reply until the message is applied, so the order is certain
 * however loaded the machine. Each test asserts exact replies and the
 * daemon's own INFO counters, and ends with a graceful stop (exit 0). */
#include <check.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
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
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"

#define CHANNEL "tenantcached:invalidate"
#define WAIT_MS 3000
/* origin.timeout and negative_ttl are generous so that a loaded machine
 * (a stalled test process, a slow sanitizer build) cannot turn a held or
 * cached answer into a failure; races are ordered by holding replies, not
 * by timing. */
#define ORIGIN_TIMEOUT_MS 2000
#define ROLE_L2_TTL_S 120
#define NEGATIVE_TTL_MS 2000

/* ======================================================================
 * The test origin
 * ====================================================================== */

/* One path the origin knows, or has been asked for. */
struct origin_entry {
    char *path;      /* raw request path, as sent (URL-encoded) */
    int status;      /* 0: not in the table (404) */
    char *body;
    int delay_ms;    /* per path; overrides the global delay when > 0 */
    bool held;       /* replies wait for origin_release() */
    unsigned count;  /* requests received */
    struct origin_entry *next;
};

/* A reply waiting for its timer, or for origin_release(). Loop thread only. */
struct origin_pending {
    struct evhttp_request *request;
    struct event *timer; /* NULL: held */
    char *path;
    int status;
    char *body;
    struct origin_pending *prev, *next;
};

static struct {
    pthread_mutex_t lock; /* guards entries, forced_status, delay_ms and the figures */
    pthread_cond_t called;
    struct origin_entry *entries;
    int forced_status; /* 0: serve the table; else answer this status to everything */
    int delay_ms;      /* every reply, unless its path has its own delay */
    unsigned total;
    unsigned in_flight;     /* requests received and not yet answered */
    unsigned max_in_flight;

    struct event_base *base;
    struct evhttp *http; /* NULL while stopped; loop thread only once running */
    int port;
    pthread_t thread;
    bool running;
    struct origin_pending *pending; /* loop thread only */
} origin;

/* Caller holds origin.lock. Finds or adds the record of path. */
static struct origin_entry *origin_entry_locked(const char *path)
{
    for (struct origin_entry *e = origin.entries; e != NULL; e = e->next) {
        if (strcmp(e->path, path) == 0)
            return e;
    }
    struct origin_entry *e = calloc(1, sizeof(*e));
    ck_assert_ptr_nonnull(e);
    e->path = strdup(path);
    ck_assert_ptr_nonnull(e->path);
    e->next = origin.entries;
    origin.entries = e;
    return e;
}

static void origin_answered(void)
{
    pthread_mutex_lock(&origin.lock);
    origin.in_flight--;
    pthread_cond_broadcast(&origin.called);
    pthread_mutex_unlock(&origin.lock);
}

static void origin_send(struct evhttp_request *request, int status, const char *body)
{
    origin_answered();
    struct evbuffer *out = evbuffer_new();
    evbuffer_add(out, body, strlen(body));
    evhttp_add_header(evhttp_request_get_output_headers(request), "Content-Type",
                      status == 200 ? "application/json" : "text/plain");
    const char *reason = status == 200 ? "OK" : status == 404 ? "Not Found" : "Oops";
    evhttp_send_reply(request, status, reason, out);
    evbuffer_free(out);
}

static void origin_pending_free(struct origin_pending *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        origin.pending = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    if (p->timer != NULL)
        event_free(p->timer);
    free(p->path);
    free(p->body);
    free(p);
}

static void origin_delayed(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct origin_pending *p = arg;
    origin_send(p->request, p->status, p->body);
    origin_pending_free(p);
}

static void origin_handle(struct evhttp_request *request, void *arg)
{
    (void)arg;
    char path[2048];
    snprintf(path, sizeof(path), "%s", evhttp_request_get_uri(request));
    char *query = strchr(path, '?');
    if (query != NULL)
        *query = '\0';

    pthread_mutex_lock(&origin.lock);
    struct origin_entry *e = origin_entry_locked(path);
    e->count++;
    origin.total++;
    if (++origin.in_flight > origin.max_in_flight)
        origin.max_in_flight = origin.in_flight;
    int status = e->status != 0 ? e->status : 404;
    char *body = strdup(e->status != 0 ? e->body : "not found");
    if (origin.forced_status != 0) {
        status = origin.forced_status;
        free(body);
        body = strdup("origin failure");
    }
    int delay = e->delay_ms > 0 ? e->delay_ms : origin.delay_ms;
    bool held = e->held;
    pthread_cond_broadcast(&origin.called);
    pthread_mutex_unlock(&origin.lock);
    ck_assert_ptr_nonnull(body);

    if (delay <= 0 && !held) {
        origin_send(request, status, body);
        free(body);
        return;
    }
    struct origin_pending *p = calloc(1, sizeof(*p));
    ck_assert_ptr_nonnull(p);
    p->request = request;
    p->path = strdup(path);
    p->status = status;
    p->body = body;
    p->next = origin.pending;
    if (p->next != NULL)
        p->next->prev = p;
    origin.pending = p;
    if (held)
        return;
    p->timer = evtimer_new(origin.base, origin_delayed, p);
    ck_assert_ptr_nonnull(p->timer);
    struct timeval tv = {.tv_sec = delay / 1000, .tv_usec = (delay % 1000) * 1000};
    evtimer_add(p->timer, &tv);
}

/* Loop thread (or before the loop runs). Binds 127.0.0.1:origin.port (0:
 * an ephemeral port, remembered). */
static void origin_do_listen(const char *unused)
{
    (void)unused;
    origin.http = evhttp_new(origin.base);
    ck_assert_ptr_nonnull(origin.http);
    evhttp_set_gencb(origin.http, origin_handle, NULL);
    struct evhttp_bound_socket *handle =
        evhttp_bind_socket_with_handle(origin.http, "127.0.0.1", (ev_uint16_t)origin.port);
    ck_assert_msg(handle != NULL, "origin: cannot bind 127.0.0.1:%d", origin.port);
    struct sockaddr_in address;
    socklen_t len = sizeof(address);
    ck_assert_int_eq(getsockname(evhttp_bound_socket_get_fd(handle), (struct sockaddr *)&address, &len), 0);
    origin.port = ntohs(address.sin_port);
}

/* Loop thread: drops every pending reply, closes the listener and every
 * connection. */
static void origin_do_close(const char *unused)
{
    (void)unused;
    while (origin.pending != NULL) {
        /* never answered: the requests go with their connections */
        origin_answered();
        origin_pending_free(origin.pending);
    }
    if (origin.http != NULL)
        evhttp_free(origin.http);
    origin.http = NULL;
}

/* Loop thread: sends the held replies of path (NULL: of every path). */
static void origin_do_release(const char *path)
{
    struct origin_pending *p = origin.pending;
    while (p != NULL) {
        struct origin_pending *next = p->next;
        if (p->timer == NULL && (path == NULL || strcmp(p->path, path) == 0)) {
            origin_send(p->request, p->status, p->body);
            origin_pending_free(p);
        }
        p = next;
    }
}

static void origin_do_break(const char *unused)
{
    (void)unused;
    event_base_loopbreak(origin.base);
}

struct origin_call {
    void (*fn)(const char *arg);
    const char *arg;
    bool done;
};

static void origin_call_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct origin_call *call = arg;
    call->fn(call->arg);
    pthread_mutex_lock(&origin.lock);
    call->done = true;
    pthread_cond_broadcast(&origin.called);
    pthread_mutex_unlock(&origin.lock);
}

/* Runs fn(arg) on the origin's loop thread and waits for it. */
static void origin_run(void (*fn)(const char *arg), const char *arg)
{
    if (!origin.running) {
        fn(arg);
        return;
    }
    struct origin_call call = {.fn = fn, .arg = arg, .done = false};
    struct timeval now = {0, 0};
    ck_assert_int_eq(event_base_once(origin.base, -1, EV_TIMEOUT, origin_call_cb, &call, &now), 0);
    pthread_mutex_lock(&origin.lock);
    while (!call.done)
        pthread_cond_wait(&origin.called, &origin.lock);
    pthread_mutex_unlock(&origin.lock);
}

static void *origin_main(void *arg)
{
    (void)arg;
    event_base_loop(origin.base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* Binds the listener (so that the port is known for the daemon's config);
 * the loop starts with origin_start_thread(), after the processes are forked. */
static void origin_init(void)
{
    ck_assert_int_eq(evthread_use_pthreads(), 0);
    pthread_mutex_init(&origin.lock, NULL);
    pthread_cond_init(&origin.called, NULL);
    origin.base = event_base_new();
    ck_assert_ptr_nonnull(origin.base);
    origin.port = 0;
    origin_do_listen(NULL);
}

static void origin_start_thread(void)
{
    ck_assert_int_eq(pthread_create(&origin.thread, NULL, origin_main, NULL), 0);
    origin.running = true;
}

/* Stops listening and closes every connection: connections are refused. */
static void origin_stop(void)
{
    origin_run(origin_do_close, NULL);
}

/* Listens again on the same port. */
static void origin_restart(void)
{
    origin_run(origin_do_listen, NULL);
}

static void origin_shutdown(void)
{
    if (origin.base == NULL)
        return;
    origin_run(origin_do_close, NULL);
    if (origin.running) {
        origin_run(origin_do_break, NULL);
        pthread_join(origin.thread, NULL);
        origin.running = false;
    }
    event_base_free(origin.base);
    origin.base = NULL;
    while (origin.entries != NULL) {
        struct origin_entry *e = origin.entries;
        origin.entries = e->next;
        free(e->path);
        free(e->body);
        free(e);
    }
}

/* Serves body with status at the raw path (NULL body: forget the path, 404).
 * delay_ms > 0: each reply waits that long; ORIGIN_HOLD: until released. */
#define ORIGIN_HOLD (-1)
static void origin_put_path(const char *path, int status, const char *body, int delay_ms)
{
    pthread_mutex_lock(&origin.lock);
    struct origin_entry *e = origin_entry_locked(path);
    free(e->body);
    e->body = body != NULL ? strdup(body) : NULL;
    e->status = body != NULL ? status : 0;
    e->delay_ms = delay_ms > 0 ? delay_ms : 0;
    e->held = delay_ms == ORIGIN_HOLD;
    pthread_mutex_unlock(&origin.lock);
}

static void origin_path(char *out, size_t size, const char *tenant, const char *kind, const char *key)
{
    snprintf(out, size, "/v1/tenants/%s/%s/%s", tenant, kind, key);
}

/* 200 with body for an entry whose parts need no URL encoding. */
static void origin_put(const char *tenant, const char *kind, const char *key, const char *body,
                       int delay_ms)
{
    char path[1024];
    origin_path(path, sizeof(path), tenant, kind, key);
    origin_put_path(path, 200, body, delay_ms);
}

/* Answers the held requests for the entry, and no longer holds new ones. */
static void origin_release(const char *tenant, const char *kind, const char *key)
{
    char path[1024];
    origin_path(path, sizeof(path), tenant, kind, key);
    pthread_mutex_lock(&origin.lock);
    origin_entry_locked(path)->held = false;
    pthread_mutex_unlock(&origin.lock);
    origin_run(origin_do_release, path);
}

static void origin_release_all(void)
{
    pthread_mutex_lock(&origin.lock);
    for (struct origin_entry *e = origin.entries; e != NULL; e = e->next)
        e->held = false;
    pthread_mutex_unlock(&origin.lock);
    origin_run(origin_do_release, NULL);
}

static void origin_force_status(int status)
{
    pthread_mutex_lock(&origin.lock);
    origin.forced_status = status;
    pthread_mutex_unlock(&origin.lock);
}

static unsigned origin_count_path(const char *path)
{
    pthread_mutex_lock(&origin.lock);
    unsigned n = origin_entry_locked(path)->count;
    pthread_mutex_unlock(&origin.lock);
    return n;
}

static unsigned origin_count(const char *tenant, const char *kind, const char *key)
{
    char path[1024];
    origin_path(path, sizeof(path), tenant, kind, key);
    return origin_count_path(path);
}

static unsigned origin_max_in_flight(void)
{
    pthread_mutex_lock(&origin.lock);
    unsigned n = origin.max_in_flight;
    pthread_mutex_unlock(&origin.lock);
    return n;
}

static unsigned origin_total(void)
{
    pthread_mutex_lock(&origin.lock);
    unsigned n = origin.total;
    pthread_mutex_unlock(&origin.lock);
    return n;
}

/* Waits until the origin has received at least n requests for the entry. */
static bool origin_wait_count(const char *tenant, const char *kind, const char *key, unsigned n,
                              int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    do {
        if (origin_count(tenant, kind, key) >= n)
            return true;
        harness_sleep_ms(2);
    } while (harness_now_ms() < deadline);
    return origin_count(tenant, kind, key) >= n;
}

/* Waits until the origin has received at least n requests in all. */
static bool origin_wait_total(unsigned n, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    do {
        if (origin_total() >= n)
            return true;
        harness_sleep_ms(2);
    } while (harness_now_ms() < deadline);
    return origin_total() >= n;
}

/* ======================================================================
 * The daemon, redis, and helpers
 * ====================================================================== */

#define FILL_CONFIG                                                      \
    "log_level: debug\n"                                                 \
    "threads: 2\n"                                                       \
    "shards: 4\n"                                                        \
    "listen:\n"                                                          \
    "  socket: \"@DAEMON_SOCKET@\"\n"                                    \
    "redis:\n"                                                           \
    "  unix: \"@REDIS_SOCKET@\"\n"                                       \
    "  channels: [tenantcached:invalidate]\n"                            \
    "  connect_timeout: 500ms\n"                                         \
    "  reconnect_min: 50ms\n"                                            \
    "  reconnect_max: 500ms\n"                                           \
    "  l2: true\n"                                                       \
    "  key_format: \"cache:{tenant}:{kind}:{key}\"\n"                    \
    "%s"                                                                 \
    "origin:\n"                                                          \
    "  url: \"http://127.0.0.1:%d/v1/tenants/{tenant}/{kind}/{key}\"\n"  \
    "  timeout: 2s\n"                                                    \
    "  negative_ttl: 2s\n"                                               \
    "  max_concurrent: 8\n"                                              \
    "memory:\n"                                                          \
    "  max_bytes: 16mb\n"                                                \
    "  tenant_max_bytes: 1mb\n"                                          \
    "  max_tenants: 1000\n"                                              \
    "  hot_reads: %d\n"                                                  \
    "kinds:\n"                                                           \
    "  role: {tier: critical, l2_ttl: 120s}\n"                           \
    "  user: {tier: critical, l2_ttl: 0}\n"

static struct harness h;
static redisContext *client; /* to the daemon */
static redisContext *store;  /* to redis: L2 as the test sees it */
static long long published;  /* messages this test published; all of them valid */

static void fail_with_log(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Prints the daemon's log, then fails the test with the message. */
static void fail_with_log(const char *fmt, ...)
{
    char message[1024];
    va_list args;
    va_start(args, fmt);
    vsnprintf(message, sizeof(message), fmt, args);
    va_end(args);
    fprintf(stderr, "---- %s\n", message);
    harness_dump_log(&h);
    ck_abort_msg("%s", message);
    abort(); /* not reached */
}

/* Waits until the daemon's log holds text, or timeout_ms passes. */
static bool wait_log_line(const char *text, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    do {
        FILE *log = fopen(h.daemon_log, "r");
        if (log != NULL) {
            char line[1024];
            bool found = false;
            while (!found && fgets(line, sizeof(line), log) != NULL)
                found = strstr(line, text) != NULL;
            fclose(log);
            if (found)
                return true;
        }
        harness_sleep_ms(5);
    } while (harness_now_ms() < deadline);
    return false;
}

/* Waits until the daemon's L2 connection (a normal, non-subscribed client
 * other than ours) shows in redis's CLIENT LIST, so that what a test does to
 * Redis next happens to a connection that is up. */
static void wait_l2_connected(void)
{
    redisReply *id = redisCommand(store, "CLIENT ID");
    ck_assert_ptr_nonnull(id);
    long long mine = id->integer;
    freeReplyObject(id);
    long long deadline = harness_now_ms() + WAIT_MS;
    do {
        redisReply *list = redisCommand(store, "CLIENT LIST TYPE normal");
        ck_assert_ptr_nonnull(list);
        bool found = false;
        for (char *line = list->str; line != NULL && *line != '\0' && !found;) {
            char *end = strchr(line, '\n');
            long long other = strtoll(line + 3, NULL, 10); /* "id=N ..." */
            char *cmd = strstr(line, " cmd=");
            if (other != mine && cmd != NULL && (end == NULL || cmd < end) &&
                strncmp(cmd + 5, "pubsub", 6) != 0 && strncmp(cmd + 5, "publish", 7) != 0)
                found = true;
            line = end != NULL ? end + 1 : NULL;
        }
        freeReplyObject(list);
        if (found) {
            /* Redis has seen the readiness PING; wait (a little) for the
             * daemon to have read its reply too. */
            wait_log_line("L2 connection ready", 1000);
            return;
        }
        harness_sleep_ms(10);
    } while (harness_now_ms() < deadline);
    fail_with_log("the daemon's L2 connection never showed in CLIENT LIST");
}

/* Appended to FILL_CONFIG by the next start() (access rules), and added
 * to its redis: section. */
static const char *extra_config = "";
static const char *redis_extra = "";

/* Replaces the first `from` in config (of size `size`) by `to`. */
static void config_replace(char *config, size_t size, const char *from, const char *to)
{
    char *at = strstr(config, from);
    ck_assert_ptr_nonnull(at);
    char rest[4096];
    snprintf(rest, sizeof(rest), "%s", at + strlen(from));
    snprintf(at, size - (size_t)(at - config), "%s%s", to, rest);
}

/* Set by a fixture before start_with(): memory for a large tenant. */
static bool big_memory;

/* max_tenants: 0 keeps the template's 1000. */
static void start_with(int hot_reads, unsigned max_tenants)
{
    harness_init(&h);
    memset(&origin, 0, sizeof(origin));
    origin_init();
    ck_assert_int_eq(harness_redis_start(&h), 0);
    store = harness_redis_connect(&h);
    ck_assert_ptr_nonnull(store);
    char config[8192];
    snprintf(config, sizeof(config), FILL_CONFIG, redis_extra, origin.port, hot_reads);
    if (max_tenants != 0) {
        char limit[64];
        snprintf(limit, sizeof(limit), "max_tenants: %u\n", max_tenants);
        config_replace(config, sizeof(config), "max_tenants: 1000\n", limit);
    }
    if (big_memory) {
        config_replace(config, sizeof(config), "max_bytes: 16mb", "max_bytes: 1gb");
        config_replace(config, sizeof(config), "tenant_max_bytes: 1mb", "tenant_max_bytes: 1gb");
    }
    size_t used = strlen(config);
    snprintf(config + used, sizeof(config) - used, "%s", extra_config);
    ck_assert_int_eq(harness_daemon_start(&h, config), 0);
    ck_assert(harness_wait_subscribed(&h, WAIT_MS));
    wait_l2_connected();
    client = harness_connect(&h);
    ck_assert_ptr_nonnull(client);
    origin_start_thread();
}

static void start(int hot_reads)
{
    start_with(hot_reads, 0);
}

static void setup(void)
{
    start(0);
}

static void setup_hot(void)
{
    start(3);
}

static void setup_few_tenants(void)
{
    start_with(0, 4);
}

static void setup_big_memory(void)
{
    big_memory = true;
    start_with(0, 0);
}

/* Critical data goes stale 1 s after the stream is lost. */
static void setup_stale(void)
{
    redis_extra = "  max_stale: 1s\n";
    start(0);
    redis_extra = "";
}

/* The test process (root) may read tenant acme only. */
static void setup_acl(void)
{
    static char rules[128];
    snprintf(rules, sizeof(rules), "access:\n  - {uid: %u, tenants: [acme]}\n", (unsigned)getuid());
    extra_config = rules;
    start(0);
    extra_config = "";
}

static void teardown(void)
{
    /* Every test ends with a graceful stop: exit 0 (under the sanitizers,
     * also no error and no leak in the daemon). */
    int code = harness_daemon_stop(&h, SIGTERM);
    if (code != 0 && code != -1)
        fail_with_log("the daemon exited %d on SIGTERM", code);
    if (client != NULL)
        redisFree(client);
    client = NULL;
    if (store != NULL)
        redisFree(store);
    store = NULL;
    harness_cleanup(&h);
    origin_shutdown();
    published = 0;
}

static void publish(const char *payload)
{
    harness_publish_ok(&h, CHANNEL, payload);
    published++;
}

/* Waits until every message published so far has been applied. (Not by
 * polling a marker entry with GET, as test_daemon does: here every GET of an
 * absent entry is a fill, and would show in the counters.) */
static void sync_stream(void)
{
    if (!harness_wait_info(client, WAIT_MS, "messages_applied", published))
        fail_with_log("messages_applied: expected %lld, got %lld", published,
                      harness_info_int(client, "messages_applied"));
}

static const char *reply_text(const redisReply *reply)
{
    return reply->str != NULL ? reply->str : "";
}

static redisReply *vcommand_on(redisContext *c, const char *fmt, va_list args)
{
    redisReply *reply = redisvCommand(c, fmt, args);
    if (reply == NULL)
        fail_with_log("no reply to '%s': %s", fmt, c->errstr);
    return reply;
}

static redisReply *command(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    redisReply *reply = vcommand_on(client, fmt, args);
    va_end(args);
    return reply;
}

/* expected NULL: a nil reply. */
static void check_bulk(const redisReply *reply, const char *expected, const char *what)
{
    if (expected == NULL) {
        if (reply->type != REDIS_REPLY_NIL)
            fail_with_log("%s: expected nil, got type %d '%s'", what, reply->type, reply_text(reply));
    } else if (reply->type != REDIS_REPLY_STRING || strcmp(reply->str, expected) != 0) {
        fail_with_log("%s: expected '%s', got type %d '%s'", what, expected, reply->type,
                      reply_text(reply));
    }
}

static void expect_bulk(const char *expected, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    redisReply *reply = vcommand_on(client, fmt, args);
    va_end(args);
    check_bulk(reply, expected, fmt);
    freeReplyObject(reply);
}

static void expect_int(long long expected, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    redisReply *reply = vcommand_on(client, fmt, args);
    va_end(args);
    if (reply->type != REDIS_REPLY_INTEGER || reply->integer != expected)
        fail_with_log("%s: expected :%lld, got type %d '%s' %lld", fmt, expected, reply->type,
                      reply_text(reply), reply->integer);
    freeReplyObject(reply);
}

static void check_unavailable(const redisReply *reply, const char *what)
{
    if (reply->type != REDIS_REPLY_ERROR || strncmp(reply->str, "UNAVAILABLE ", 12) != 0)
        fail_with_log("%s: expected -UNAVAILABLE ..., got type %d '%s'", what, reply->type,
                      reply_text(reply));
}

static void expect_unavailable(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    redisReply *reply = vcommand_on(client, fmt, args);
    va_end(args);
    check_unavailable(reply, fmt);
    freeReplyObject(reply);
}

static void expect_pong(void)
{
    redisReply *reply = command("PING");
    if (reply->type != REDIS_REPLY_STATUS || strcmp(reply->str, "PONG") != 0)
        fail_with_log("PING: got type %d '%s'", reply->type, reply_text(reply));
    freeReplyObject(reply);
}

/* INFO field equals expected (counters are updated on the main loop, so a
 * short wait absorbs the hop from the query thread). */
static void expect_info(const char *field, long long expected)
{
    if (!harness_wait_info(client, 1000, field, expected))
        fail_with_log("INFO %s: expected %lld, got %lld", field, expected,
                      harness_info_int(client, field));
}

static void expect_origin(unsigned expected, const char *tenant, const char *kind, const char *key)
{
    unsigned got = origin_count(tenant, kind, key);
    if (got != expected)
        fail_with_log("origin requests for %s/%s/%s: expected %u, got %u", tenant, kind, key,
                      expected, got);
}

/* The daemon's L2 write-back is fire and forget: waits until key exists in
 * redis (or timeout). Returns its value (malloc'ed), or NULL. */
static char *l2_wait_value(const char *key, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    do {
        redisReply *reply = redisCommand(store, "GET %s", key);
        ck_assert_ptr_nonnull(reply);
        char *value = reply->type == REDIS_REPLY_STRING ? strdup(reply->str) : NULL;
        freeReplyObject(reply);
        if (value != NULL)
            return value;
        harness_sleep_ms(5);
    } while (harness_now_ms() < deadline);
    return NULL;
}

static long long l2_exists(const char *key)
{
    redisReply *reply = redisCommand(store, "EXISTS %s", key);
    ck_assert_ptr_nonnull(reply);
    long long n = reply->integer;
    freeReplyObject(reply);
    return n;
}

static void l2_set(const char *key, const char *value)
{
    redisReply *reply = redisCommand(store, "SET %s %s", key, value);
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(reply->type, REDIS_REPLY_STATUS);
    freeReplyObject(reply);
}

static void l2_del(const char *key)
{
    redisReply *reply = redisCommand(store, "DEL %s", key);
    ck_assert_ptr_nonnull(reply);
    freeReplyObject(reply);
}

/* Sends a command on c without reading its reply. */
static void send_on(redisContext *c, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    ck_assert_int_eq(redisvAppendCommand(c, fmt, args), REDIS_OK);
    va_end(args);
    int done = 0;
    while (!done)
        ck_assert_int_eq(redisBufferWrite(c, &done), REDIS_OK);
}

/* A second connection that sends a command and reads the reply later. */
static redisContext *send_async(const char *fmt, ...)
{
    redisContext *c = harness_connect(&h);
    ck_assert_ptr_nonnull(c);
    va_list args;
    va_start(args, fmt);
    ck_assert_int_eq(redisvAppendCommand(c, fmt, args), REDIS_OK);
    va_end(args);
    int done = 0;
    while (!done)
        ck_assert_int_eq(redisBufferWrite(c, &done), REDIS_OK);
    return c;
}

static redisReply *receive(redisContext *c)
{
    void *reply = NULL;
    if (redisGetReply(c, &reply) != REDIS_OK || reply == NULL)
        fail_with_log("no reply: %s", c->errstr);
    return reply;
}

/* ======================================================================
 * The tests
 * ====================================================================== */

START_TEST(test_l2_hit)
{
    l2_set("cache:acme:config:theme", "{\"color\": \"blue\"}");
    expect_bulk("{\"color\":\"blue\"}", "GET acme config theme");
    expect_info("fills_l2", 1);
    expect_info("fills_l3", 0);
    expect_info("misses", 1);
    expect_info("hits", 0);
    ck_assert_uint_eq(origin_total(), 0);
    /* Now cached: a hit, by either name, without another fill. */
    expect_bulk("{\"color\":\"blue\"}", "GET acme config theme");
    expect_bulk("{\"color\":\"blue\"}", "GET cache:acme:config:theme");
    expect_info("hits", 2);
    expect_info("fills_l2", 1);
    /* The full-name form fills too. */
    l2_set("cache:acme:credit:export", "4");
    expect_bulk("4", "GET cache:acme:credit:export");
    expect_info("fills_l2", 2);
    ck_assert_uint_eq(origin_total(), 0);
    /* An L2 value that does not fit its kind is refused like such a set:
     * the origin is asked, and its value replaces the bad one in L2. */
    l2_set("cache:acme:credit:weird", "\"expensive\"");
    origin_put("acme", "credit", "weird", "5", 0);
    expect_bulk("5", "CREDIT acme weird");
    expect_info("fills_l2", 2);
    expect_info("fills_l3", 1);
    expect_origin(1, "acme", "credit", "weird");
    long long deadline = harness_now_ms() + WAIT_MS;
    char *stored = NULL;
    while ((stored = l2_wait_value("cache:acme:credit:weird", WAIT_MS)) != NULL &&
           strcmp(stored, "5") != 0 && harness_now_ms() < deadline) {
        free(stored);
        harness_sleep_ms(5);
    }
    ck_assert_ptr_nonnull(stored);
    ck_assert_str_eq(stored, "5");
    free(stored);
}
END_TEST

START_TEST(test_l3_hit_written_back_to_l2)
{
    origin_put("acme", "role", "admin", "[ \"crm.*\",  \"users.read\" ]", 0);
    expect_bulk("[\"crm.*\",\"users.read\"]", "GET acme role admin");
    expect_origin(1, "acme", "role", "admin");
    expect_info("fills_l3", 1);
    expect_info("fills_l2", 0);
    expect_info("misses", 1);
    /* Written back to L2, compact, with the kind's l2_ttl. */
    char *stored = l2_wait_value("cache:acme:role:admin", WAIT_MS);
    if (stored == NULL)
        fail_with_log("L3 value not written back to L2 key cache:acme:role:admin");
    ck_assert_str_eq(stored, "[\"crm.*\",\"users.read\"]");
    free(stored);
    redisReply *ttl = redisCommand(store, "TTL cache:acme:role:admin");
    ck_assert_ptr_nonnull(ttl);
    ck_assert_int_eq(ttl->type, REDIS_REPLY_INTEGER);
    ck_assert_msg(ttl->integer > 0 && ttl->integer <= ROLE_L2_TTL_S, "TTL %lld", ttl->integer);
    freeReplyObject(ttl);
    /* Cached in L1: the next GET is a hit. */
    expect_bulk("[\"crm.*\",\"users.read\"]", "GET acme role admin");
    expect_info("hits", 1);
    expect_origin(1, "acme", "role", "admin");
    /* Invalidated, it comes back from L2 (the write-back), not the origin. */
    publish("{\"op\":\"invalidate\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"admin\"}");
    sync_stream();
    expect_int(1, "ROLECAN acme admin crm.leads.create");
    expect_info("fills_l2", 1);
    expect_origin(1, "acme", "role", "admin");
}
END_TEST

/* l2_ttl: 0 writes the value back to L2 without an expiry
 * (docs/reference.md §9). */
START_TEST(test_l3_write_back_without_expiry)
{
    origin_put("acme", "user", "carol", "\"active\"", 0);
    expect_bulk("active", "STATUS acme carol");
    expect_info("fills_l3", 1);
    char *stored = l2_wait_value("cache:acme:user:carol", WAIT_MS);
    if (stored == NULL)
        fail_with_log("L3 value not written back to L2 key cache:acme:user:carol");
    ck_assert_str_eq(stored, "\"active\"");
    free(stored);
    redisReply *ttl = redisCommand(store, "TTL cache:acme:user:carol");
    ck_assert_ptr_nonnull(ttl);
    ck_assert_int_eq(ttl->type, REDIS_REPLY_INTEGER);
    ck_assert_msg(ttl->integer == -1, "TTL %lld, expected -1 (no expiry)", ttl->integer);
    freeReplyObject(ttl);
}
END_TEST

START_TEST(test_commands_fill)
{
    origin_put("acme", "credit", "export", "{\"cost\": 2.5}", 0);
    origin_put("acme", "user", "bob", "\"disabled\"", 0);
    origin_put("acme", "user", "ann", "{\"status\": \"active\", \"roles\": [\"editor\"]}", 0);
    origin_put("acme", "role", "editor", "[\"crm.leads.*\"]", 0);
    origin_put("acme", "role", "viewer", "{\"permissions\": [\"crm.read\"]}", 0);
    origin_put("acme", "role", "auditor", "[\"audit.*\", \"users.read\"]", 0);
    origin_put("acme", "hierarchy", "team1", "{\"parent\": \"dept1\", \"name\": \"Team 1\"}", 0);
    origin_put("acme", "hierarchy", "dept1", "{\"parent\": \"org\"}", 0);
    origin_put("acme", "hierarchy", "org", "{\"name\": \"Acme\"}", 0);

    expect_bulk("2.5", "CREDIT acme export");
    expect_bulk("disabled", "STATUS acme bob");
    /* CAN fills the user, then the user's role. */
    expect_int(1, "CAN acme ann crm.leads.create");
    expect_origin(1, "acme", "user", "ann");
    expect_origin(1, "acme", "role", "editor");
    expect_int(0, "CAN acme ann hr.read");
    expect_int(1, "ROLECAN acme viewer crm.read");
    expect_int(0, "ROLECAN acme viewer crm.write");
    redisReply *reply = command("PERMS acme auditor");
    ck_assert_int_eq(reply->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(reply->elements, 2);
    ck_assert_str_eq(reply->element[0]->str, "audit.*");
    ck_assert_str_eq(reply->element[1]->str, "users.read");
    freeReplyObject(reply);
    /* ANCESTORS fills every entity of the chain. */
    reply = command("ANCESTORS acme team1");
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2)
        fail_with_log("ANCESTORS acme team1: type %d, %zu elements '%s'", reply->type,
                      reply->elements, reply_text(reply));
    ck_assert_str_eq(reply->element[0]->str, "dept1");
    ck_assert_str_eq(reply->element[1]->str, "org");
    freeReplyObject(reply);
    ck_assert_uint_eq(origin_total(), 9);
    expect_info("fills_l3", 9);

    /* Not found anywhere: nil (nil for CAN too), cached negative. */
    expect_bulk(NULL, "CREDIT acme nope");
    expect_bulk(NULL, "STATUS acme ghost");
    expect_bulk(NULL, "CAN acme ghost2 crm.read");
    expect_bulk(NULL, "ROLECAN acme ghostrole crm.read");
    expect_bulk(NULL, "PERMS acme ghostrole");
    expect_bulk(NULL, "ANCESTORS acme ghostentity");
    expect_info("fills_negative", 5);
    ck_assert_uint_eq(origin_total(), 14);
    expect_origin(1, "acme", "role", "ghostrole");

    /* MGET: one key cached, one in L2, one at the origin, one nowhere. */
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"a\",\"value\":1}");
    sync_stream();
    l2_set("cache:acme:config:b", "2");
    origin_put("acme", "config", "c", "3", 0);
    reply = command("MGET acme config a b c d");
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 4)
        fail_with_log("MGET: type %d, %zu elements '%s'", reply->type, reply->elements,
                      reply_text(reply));
    check_bulk(reply->element[0], "1", "MGET [0]");
    check_bulk(reply->element[1], "2", "MGET [1]");
    check_bulk(reply->element[2], "3", "MGET [2]");
    check_bulk(reply->element[3], NULL, "MGET [3]");
    freeReplyObject(reply);
    expect_info("fills_l2", 1);
    expect_info("fills_l3", 10);
    expect_info("fills_negative", 6);
    /* The full-name form, now all from L1 (d as a negative). */
    reply = command("MGET cache:acme:config:c cache:acme:config:d");
    ck_assert_int_eq(reply->elements, 2);
    check_bulk(reply->element[0], "3", "MGET name [0]");
    check_bulk(reply->element[1], NULL, "MGET name [1]");
    freeReplyObject(reply);
    ck_assert_uint_eq(origin_total(), 16);
    expect_info("fill_errors", 0);
}
END_TEST

START_TEST(test_url_encoding)
{
    origin_put_path("/v1/tenants/acme/config/a%2Fb%25c", 200, "{\"enc\": 1}", 0);
    origin_put_path("/v1/tenants/ac.me_2-x/config/q%3Fx%3D1%26y%23z%2B%3A", 200, "2", 0);
    expect_bulk("{\"enc\":1}", "GET %s %s %s", "acme", "config", "a/b%c");
    ck_assert_uint_eq(origin_count_path("/v1/tenants/acme/config/a%2Fb%25c"), 1);
    expect_bulk("2", "GET %s %s %s", "ac.me_2-x", "config", "q?x=1&y#z+:");
    ck_assert_uint_eq(origin_count_path("/v1/tenants/ac.me_2-x/config/q%3Fx%3D1%26y%23z%2B%3A"), 1);
    ck_assert_uint_eq(origin_total(), 2);
    expect_info("fills_l3", 2);
    /* The L2 key is the template, not URL-encoded. */
    char *stored = l2_wait_value("cache:acme:config:a/b%c", WAIT_MS);
    ck_assert_ptr_nonnull(stored);
    ck_assert_str_eq(stored, "{\"enc\":1}");
    free(stored);
}
END_TEST

START_TEST(test_not_found_is_negative)
{
    expect_bulk(NULL, "GET acme config missing");
    expect_origin(1, "acme", "config", "missing");
    expect_info("fills_negative", 1);
    expect_info("fills_l3", 0);
    expect_info("fill_errors", 0);
    /* Cached negative: no new request. */
    expect_bulk(NULL, "GET acme config missing");
    expect_origin(1, "acme", "config", "missing");
    ck_assert_int_eq(l2_exists("cache:acme:config:missing"), 0);
    /* A set message replaces the negative entry. */
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"missing\",\"value\":7}");
    sync_stream();
    expect_bulk("7", "GET acme config missing");
    expect_origin(1, "acme", "config", "missing");
}
END_TEST

START_TEST(test_negative_expires)
{
    long long t0 = harness_now_ms();
    expect_bulk(NULL, "GET acme config gone");
    long long t1 = harness_now_ms(); /* the negative entry was made in [t0, t1] */
    expect_origin(1, "acme", "config", "gone");
    harness_sleep_ms(NEGATIVE_TTL_MS / 2 - (int)(harness_now_ms() - t0));
    long long t2 = harness_now_ms();
    expect_bulk(NULL, "GET acme config gone");
    long long t3 = harness_now_ms();
    if (origin_count("acme", "config", "gone") != 1)
        fail_with_log("negative entry not used %lld..%lld ms after it was made (negative_ttl "
                      "%d ms): origin asked %u times", t2 - t1, t3 - t0, NEGATIVE_TTL_MS,
                      origin_count("acme", "config", "gone"));
    /* After negative_ttl the entry is asked for again, and now exists. */
    origin_put("acme", "config", "gone", "\"back\"", 0);
    harness_sleep_ms(NEGATIVE_TTL_MS + 200 - (int)(harness_now_ms() - t1));
    expect_bulk("\"back\"", "GET acme config gone");
    expect_origin(2, "acme", "config", "gone");
    expect_info("fills_negative", 1);
    expect_info("fills_l3", 1);
}
END_TEST

START_TEST(test_origin_error_status)
{
    origin_put("acme", "config", "k", "\"v\"", 0);
    origin_force_status(500);
    expect_unavailable("GET acme config k");
    expect_info("fill_errors", 1);
    expect_pong();
    /* Not cached: asked again, and the origin recovered. */
    expect_unavailable("GET acme config k");
    expect_info("fill_errors", 2);
    origin_force_status(0);
    expect_bulk("\"v\"", "GET acme config k");
    expect_origin(3, "acme", "config", "k");
    expect_info("fills_l3", 1);
    expect_info("fills_negative", 0);
    /* Other statuses are failures too (not not-found). */
    origin_put_path("/v1/tenants/acme/config/teapot", 418, "short and stout", 0);
    expect_unavailable("GET acme config teapot");
    expect_info("fill_errors", 3);
}
END_TEST

START_TEST(test_origin_invalid_body)
{
    origin_put("acme", "config", "bad", "{not json", 0);
    origin_put("acme", "credit", "bad", "\"expensive\"", 0);
    expect_unavailable("GET acme config bad");
    expect_unavailable("CREDIT acme bad");
    expect_info("fill_errors", 2);
    expect_info("fills_l3", 0);
    ck_assert_int_eq(l2_exists("cache:acme:config:bad"), 0);
    ck_assert_int_eq(l2_exists("cache:acme:credit:bad"), 0);
    origin_put("acme", "credit", "bad", "3", 0);
    expect_bulk("3", "CREDIT acme bad");
    expect_origin(2, "acme", "credit", "bad");
}
END_TEST

START_TEST(test_origin_down)
{
    origin_put("acme", "config", "k", "{\"up\":true}", 0);
    expect_bulk("{\"up\":true}", "GET acme config k"); /* a keep-alive connection now exists */
    origin_stop();
    expect_unavailable("GET acme config other");
    expect_info("fill_errors", 1);
    expect_pong();
    expect_bulk("{\"up\":true}", "GET acme config k"); /* L1 still serves */
    expect_unavailable("GET acme config other");
    expect_info("fill_errors", 2);
    ck_assert(harness_daemon_alive(&h));
    origin_restart();
    origin_put("acme", "config", "other", "5", 0);
    expect_bulk("5", "GET acme config other");
    expect_info("fills_l3", 2);
    expect_origin(1, "acme", "config", "other");
}
END_TEST

START_TEST(test_origin_timeout)
{
    origin_put("acme", "config", "slow", "\"late\"", ORIGIN_HOLD); /* never answered in time */
    long long t0 = harness_now_ms();
    expect_unavailable("GET acme config slow");
    long long elapsed = harness_now_ms() - t0;
    ck_assert_msg(elapsed >= ORIGIN_TIMEOUT_MS - 50 && elapsed < ORIGIN_TIMEOUT_MS + 3000,
                  "answered after %lld ms", elapsed);
    expect_info("fill_errors", 1);
    expect_pong();
    origin_release_all(); /* to a connection the daemon gave up on */
    origin_put("acme", "config", "slow", "\"late\"", 0);
    expect_bulk("\"late\"", "GET acme config slow");
    expect_origin(2, "acme", "config", "slow");
    expect_info("fills_l3", 1);
}
END_TEST

START_TEST(test_origin_delay_within_timeout)
{
    /* A slow origin (a timer per request in the test origin) that answers
     * within origin.timeout is no failure. */
    origin_put("acme", "config", "slowish", "\"ok\"", 300);
    long long t0 = harness_now_ms();
    expect_bulk("\"ok\"", "GET acme config slowish");
    ck_assert_int_ge(harness_now_ms() - t0, 290);
    expect_info("fills_l3", 1);
    expect_info("fill_errors", 0);
}
END_TEST

START_TEST(test_l2_down_falls_through)
{
    origin_put("acme", "config", "k", "\"from origin\"", 0);
    ck_assert_int_eq(harness_redis_stop(&h, SIGKILL), 0);
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 0));
    expect_bulk("\"from origin\"", "GET acme config k");
    expect_info("fills_l3", 1);
    expect_info("fill_errors", 0);
}
END_TEST

#define CONCURRENT 50

START_TEST(test_concurrent_misses_share_one_fill)
{
    origin_put("acme", "config", "shared", "{\"n\": 50}", ORIGIN_HOLD);
    redisContext *clients[CONCURRENT];
    for (int i = 0; i < CONCURRENT; i++) {
        clients[i] = harness_connect(&h);
        ck_assert_ptr_nonnull(clients[i]);
    }
    for (int i = 0; i < CONCURRENT; i++)
        send_on(clients[i], "GET acme config shared");
    /* Every miss has joined the one fill before the origin answers it. */
    if (!harness_wait_info(client, WAIT_MS, "fills_shared", CONCURRENT - 1))
        fail_with_log("fills_shared %lld while the fill is held, origin requests %u",
                      harness_info_int(client, "fills_shared"),
                      origin_count("acme", "config", "shared"));
    /* (The fill may still be at its L2 GET: wait for it to reach the origin.) */
    ck_assert(origin_wait_count("acme", "config", "shared", 1, WAIT_MS));
    origin_release("acme", "config", "shared");
    for (int i = 0; i < CONCURRENT; i++) {
        redisReply *reply = receive(clients[i]);
        check_bulk(reply, "{\"n\":50}", "GET acme config shared (concurrent)");
        freeReplyObject(reply);
        redisFree(clients[i]);
    }
    expect_origin(1, "acme", "config", "shared");
    expect_info("fills_l3", 1);
    expect_info("fills_shared", CONCURRENT - 1);
    expect_info("misses", CONCURRENT);
    expect_info("fill_errors", 0);
}
END_TEST

START_TEST(test_flush_spares_other_tenants_fills)
{
    /* A FLUSH of one tenant discards the fills in flight for that tenant
     * only: another tenant's fill that completes after it is cached. */
    origin_put("beta", "config", "kept", "\"b\"", ORIGIN_HOLD);
    origin_put("acme", "config", "gone", "\"a\"", ORIGIN_HOLD);
    redisContext *beta = send_async("GET beta config kept");
    redisContext *acme = send_async("GET acme config gone");
    ck_assert(origin_wait_count("beta", "config", "kept", 1, WAIT_MS));
    ck_assert(origin_wait_count("acme", "config", "gone", 1, WAIT_MS));
    redisContext *admin = send_async("FLUSH acme");
    redisReply *reply = receive(admin);
    ck_assert_int_eq(reply->type, REDIS_REPLY_STATUS);
    freeReplyObject(reply);
    redisFree(admin);
    origin_release_all();
    reply = receive(beta);
    check_bulk(reply, "\"b\"", "the other tenant's fill");
    freeReplyObject(reply);
    redisFree(beta);
    reply = receive(acme);
    check_bulk(reply, "\"a\"", "the flushed tenant's fill");
    freeReplyObject(reply);
    redisFree(acme);
    expect_info("fills_discarded", 1);
    expect_bulk("\"b\"", "GET beta config kept");
    expect_origin(1, "beta", "config", "kept");
}
END_TEST

START_TEST(test_invalidate_during_fill)
{
    origin_put("acme", "config", "race", "\"v1\"", ORIGIN_HOLD);
    redisContext *waiter = send_async("GET acme config race");
    ck_assert(origin_wait_count("acme", "config", "race", 1, WAIT_MS));
    publish("{\"op\":\"invalidate\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"race\"}");
    sync_stream();
    origin_release("acme", "config", "race");
    redisReply *reply = receive(waiter);
    check_bulk(reply, "\"v1\"", "waiter of the raced fill");
    freeReplyObject(reply);
    redisFree(waiter);
    expect_info("fills_discarded", 1);
    /* Not cached, in L1 nor L2: the next GET fills again from the origin. */
    ck_assert_int_eq(l2_exists("cache:acme:config:race"), 0);
    origin_put("acme", "config", "race", "\"v2\"", 0);
    expect_bulk("\"v2\"", "GET acme config race");
    expect_origin(2, "acme", "config", "race");
    expect_info("fills_l3", 2);
    expect_info("fills_discarded", 1);
}
END_TEST

START_TEST(test_del_during_fill)
{
    origin_put("acme", "user", "u1", "\"active\"", ORIGIN_HOLD);
    redisContext *waiter = send_async("STATUS acme u1");
    ck_assert(origin_wait_count("acme", "user", "u1", 1, WAIT_MS));
    publish("{\"op\":\"del\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u1\",\"version\":5}");
    sync_stream();
    origin_release("acme", "user", "u1");
    redisReply *reply = receive(waiter);
    check_bulk(reply, "active", "waiter of the raced fill");
    freeReplyObject(reply);
    redisFree(waiter);
    expect_info("fills_discarded", 1);
    /* The tombstone holds: nil, without a fill. */
    expect_bulk(NULL, "STATUS acme u1");
    expect_bulk(NULL, "GET acme user u1");
    expect_origin(1, "acme", "user", "u1");
    ck_assert_int_eq(l2_exists("cache:acme:user:u1"), 0);
    /* A newer set still applies. */
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u1\",\"value\":\"locked\",\"version\":6}");
    sync_stream();
    expect_bulk("locked", "STATUS acme u1");
    expect_origin(1, "acme", "user", "u1");
}
END_TEST

START_TEST(test_set_during_fill)
{
    origin_put("acme", "credit", "op", "1", ORIGIN_HOLD);
    redisContext *waiter = send_async("CREDIT acme op");
    ck_assert(origin_wait_count("acme", "credit", "op", 1, WAIT_MS));
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"op\",\"value\":9}");
    sync_stream();
    origin_release("acme", "credit", "op");
    redisReply *reply = receive(waiter);
    /* The request arrived before the set: the fill's value is a correct
     * answer, and so is the set's. */
    if (reply->type != REDIS_REPLY_STRING || (strcmp(reply->str, "1") != 0 && strcmp(reply->str, "9") != 0))
        fail_with_log("waiter: expected '1' or '9', got type %d '%s'", reply->type, reply_text(reply));
    freeReplyObject(reply);
    redisFree(waiter);
    expect_info("fills_discarded", 1);
    /* The set won. */
    expect_bulk("9", "CREDIT acme op");
    expect_bulk("9", "GET acme credit op");
    expect_origin(1, "acme", "credit", "op");
    ck_assert_int_eq(l2_exists("cache:acme:credit:op"), 0);
}
END_TEST

START_TEST(test_flush_during_fill)
{
    origin_put("acme", "role", "r", "[\"a.b\"]", ORIGIN_HOLD);
    redisContext *waiter = send_async("PERMS acme r");
    ck_assert(origin_wait_count("acme", "role", "r", 1, WAIT_MS));
    publish("{\"op\":\"flush\",\"tenant\":\"acme\"}");
    sync_stream();
    origin_release("acme", "role", "r");
    redisReply *reply = receive(waiter);
    ck_assert_int_eq(reply->type, REDIS_REPLY_ARRAY);
    ck_assert_int_eq(reply->elements, 1);
    ck_assert_str_eq(reply->element[0]->str, "a.b");
    freeReplyObject(reply);
    redisFree(waiter);
    expect_info("fills_discarded", 1);
    origin_put("acme", "role", "r", "[\"a.c\"]", 0);
    expect_int(1, "ROLECAN acme r a.c");
    expect_origin(2, "acme", "role", "r");
}
END_TEST

START_TEST(test_pipelined_replies_in_order)
{
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"hit\",\"value\":\"h\"}");
    sync_stream();
    origin_put("acme", "config", "slow", "\"s\"", ORIGIN_HOLD);
    origin_put("acme", "config", "fast", "\"f\"", 0);
    redisContext *c = harness_connect(&h);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(redisAppendCommand(c, "GET acme config slow"), REDIS_OK);
    ck_assert_int_eq(redisAppendCommand(c, "GET acme config hit"), REDIS_OK);
    ck_assert_int_eq(redisAppendCommand(c, "GET acme config fast"), REDIS_OK);
    ck_assert_int_eq(redisAppendCommand(c, "PING"), REDIS_OK);
    ck_assert_int_eq(redisAppendCommand(c, "GET acme config nowhere"), REDIS_OK);
    send_on(c, "GET acme config hit");
    ck_assert(origin_wait_count("acme", "config", "slow", 1, WAIT_MS));
    /* While the first is being filled, nothing behind it is answered. */
    struct pollfd poller = {.fd = c->fd, .events = POLLIN};
    ck_assert_int_eq(poll(&poller, 1, 200), 0);
    origin_release("acme", "config", "slow");
    redisReply *reply = receive(c);
    check_bulk(reply, "\"s\"", "pipelined 1 (slow miss)");
    freeReplyObject(reply);
    reply = receive(c);
    check_bulk(reply, "\"h\"", "pipelined 2 (hit)");
    freeReplyObject(reply);
    reply = receive(c);
    check_bulk(reply, "\"f\"", "pipelined 3 (miss)");
    freeReplyObject(reply);
    reply = receive(c);
    ck_assert_int_eq(reply->type, REDIS_REPLY_STATUS);
    ck_assert_str_eq(reply->str, "PONG");
    freeReplyObject(reply);
    reply = receive(c);
    check_bulk(reply, NULL, "pipelined 5 (404)");
    freeReplyObject(reply);
    reply = receive(c);
    check_bulk(reply, "\"h\"", "pipelined 6 (hit)");
    freeReplyObject(reply);
    redisFree(c);
    expect_info("fills_l3", 2);
    expect_info("fills_negative", 1);
}
END_TEST

START_TEST(test_sigterm_during_fill)
{
    origin_put("acme", "config", "inflight", "\"x\"", ORIGIN_HOLD); /* never answered */
    redisContext *waiter = send_async("GET acme config inflight");
    ck_assert(origin_wait_count("acme", "config", "inflight", 1, WAIT_MS));
    long long t0 = harness_now_ms();
    int code = harness_daemon_stop(&h, SIGTERM);
    long long elapsed = harness_now_ms() - t0;
    if (code != 0)
        fail_with_log("SIGTERM with a fill in flight: exit %d", code);
    ck_assert_msg(elapsed < ORIGIN_TIMEOUT_MS, "stopping took %lld ms", elapsed);
    /* The parked request was answered before the connection closed. */
    void *any = NULL;
    int rc = redisGetReply(waiter, &any);
    redisReply *reply = any;
    ck_assert_msg(rc == REDIS_OK && reply != NULL, "the parked request got no reply: %s",
                  waiter->errstr);
    check_unavailable(reply, "parked request at shutdown");
    freeReplyObject(reply);
    redisFree(waiter);
    struct stat st;
    ck_assert_int_eq(stat(h.daemon_socket, &st), -1);
}
END_TEST

START_TEST(test_origin_closes_idle_connections)
{
    /* The origin restarts (or its keep-alive timeout closes idle
     * connections): the next fill must not fail on a dead connection. */
    origin_put("acme", "config", "a", "1", 0);
    origin_put("acme", "config", "b", "2", 0);
    origin_put("acme", "config", "c", "3", 0);
    expect_bulk("1", "GET acme config a");
    origin_stop();
    origin_restart();
    expect_bulk("2", "GET acme config b");
    origin_stop();
    origin_restart();
    harness_sleep_ms(50);
    expect_bulk("3", "GET acme config c");
    expect_info("fill_errors", 0);
    expect_info("fills_l3", 3);
}
END_TEST

START_TEST(test_origin_max_concurrent)
{
    /* 20 different entries at once: exactly max_concurrent (8) requests
     * reach the origin while it holds them, the rest wait in the daemon,
     * and every one is answered. */
    redisContext *clients[20];
    char key[16], body[16];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(body, sizeof(body), "%d", i);
        origin_put("acme", "config", key, body, ORIGIN_HOLD);
    }
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        clients[i] = send_async("GET acme config %s", key);
    }
    ck_assert(origin_wait_total(8, WAIT_MS));
    harness_sleep_ms(200);
    ck_assert_uint_eq(origin_total(), 8);
    origin_release_all();
    for (int i = 0; i < 20; i++) {
        snprintf(body, sizeof(body), "%d", i);
        redisReply *reply = receive(clients[i]);
        check_bulk(reply, body, "GET acme config k<i> (20 at once)");
        freeReplyObject(reply);
        redisFree(clients[i]);
    }
    ck_assert_uint_eq(origin_total(), 20);
    ck_assert_uint_eq(origin_max_in_flight(), 8);
    expect_info("fills_l3", 20);
    expect_info("fill_errors", 0);
}
END_TEST

START_TEST(test_client_gone_while_parked)
{
    origin_put("acme", "config", "slow", "\"s\"", ORIGIN_HOLD);
    redisContext *gone = send_async("GET acme config slow");
    ck_assert(origin_wait_count("acme", "config", "slow", 1, WAIT_MS));
    redisFree(gone); /* closes while its request waits for the fill */
    harness_sleep_ms(50);
    origin_release("acme", "config", "slow");
    if (!harness_wait_info(client, WAIT_MS, "fills_l3", 1))
        fail_with_log("fills_l3 %lld, fill_errors %lld, origin requests %u",
                      harness_info_int(client, "fills_l3"), harness_info_int(client, "fill_errors"),
                      origin_count("acme", "config", "slow"));
    expect_pong();
    /* The fill still cached its value; another client gets it. */
    expect_bulk("\"s\"", "GET acme config slow");
    expect_origin(1, "acme", "config", "slow");
    ck_assert(harness_wait_info(client, WAIT_MS, "connected_clients", 1));
    ck_assert(harness_daemon_alive(&h));
}
END_TEST

START_TEST(test_quit_after_parked_request)
{
    origin_put("acme", "config", "slow", "\"s\"", ORIGIN_HOLD);
    redisContext *c = harness_connect(&h);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(redisAppendCommand(c, "GET acme config slow"), REDIS_OK);
    ck_assert_int_eq(redisAppendCommand(c, "QUIT"), REDIS_OK);
    send_on(c, "PING");
    ck_assert(origin_wait_count("acme", "config", "slow", 1, WAIT_MS));
    origin_release("acme", "config", "slow");
    redisReply *reply = receive(c);
    check_bulk(reply, "\"s\"", "GET before QUIT");
    freeReplyObject(reply);
    reply = receive(c);
    ck_assert_int_eq(reply->type, REDIS_REPLY_STATUS);
    ck_assert_str_eq(reply->str, "OK");
    freeReplyObject(reply);
    void *after = NULL;
    ck_assert_int_ne(redisGetReply(c, &after), REDIS_OK); /* closed: no PONG */
    redisFree(c);
}
END_TEST

START_TEST(test_mget_same_key_twice)
{
    origin_put("acme", "config", "x", "\"x\"", ORIGIN_HOLD);
    send_on(client, "MGET acme config x nope x");
    ck_assert(origin_wait_count("acme", "config", "x", 1, WAIT_MS));
    origin_release("acme", "config", "x");
    redisReply *reply = receive(client);
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3)
        fail_with_log("MGET: type %d, %zu elements '%s'", reply->type, reply->elements,
                      reply_text(reply));
    check_bulk(reply->element[0], "\"x\"", "MGET [0]");
    check_bulk(reply->element[1], NULL, "MGET [1]");
    check_bulk(reply->element[2], "\"x\"", "MGET [2]");
    freeReplyObject(reply);
    expect_origin(1, "acme", "config", "x");
    expect_info("fills_l3", 1);
}
END_TEST

START_TEST(test_can_with_missing_or_failing_role)
{
    origin_put("acme", "user", "ann", "{\"status\": \"active\", \"roles\": [\"gone\", \"ok\"]}", 0);
    origin_put("acme", "role", "ok", "[\"crm.read\"]", 0);
    origin_put("acme", "user", "bob", "{\"status\": \"active\", \"roles\": [\"broken\"]}", 0);
    origin_put_path("/v1/tenants/acme/role/broken", 503, "later", 0);
    origin_put("acme", "user", "cy", "{\"status\": \"away\", \"roles\": [\"ok\"]}", 0);
    /* An unknown role grants nothing; another role may. */
    expect_int(1, "CAN acme ann crm.read");
    expect_int(0, "CAN acme ann crm.write");
    expect_origin(1, "acme", "role", "gone");
    /* A role that cannot be filled: the answer is not known. */
    expect_unavailable("CAN acme bob crm.read");
    /* Not active: no role is needed at all. */
    expect_int(0, "CAN acme cy crm.read");
}
END_TEST

START_TEST(test_set_wins_over_an_unwaited_fill)
{
    /* CAN answers as soon as one role grants, while the fill of another
     * role it asked for is still in flight. A set of that role applied
     * afterwards must win over the fill for every later request, including
     * the next one on the same connection. */
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"r2\",\"value\":[\"crm.*\"]}");
    sync_stream();
    origin_put("acme", "user", "ann", "{\"status\": \"active\", \"roles\": [\"r1\", \"r2\"]}", 0);
    origin_put("acme", "role", "r1", "[\"a.b\"]", ORIGIN_HOLD);
    origin_put("acme", "user", "bob", "{\"status\": \"active\", \"roles\": [\"r1\"]}", 0);
    redisContext *c = harness_connect(&h);
    ck_assert_ptr_nonnull(c);
    redisReply *reply = redisCommand(c, "CAN acme ann crm.read");
    ck_assert_ptr_nonnull(reply);
    if (reply->type != REDIS_REPLY_INTEGER || reply->integer != 1)
        fail_with_log("CAN acme ann crm.read: type %d '%s'", reply->type, reply_text(reply));
    freeReplyObject(reply);
    ck_assert(origin_wait_count("acme", "role", "r1", 1, WAIT_MS));
    publish("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"r1\",\"value\":[\"z.z\"]}");
    sync_stream();
    expect_bulk("[\"z.z\"]", "GET acme role r1");
    /* On the same connection, after the set was applied; the fill of r1 is
     * answered (with the old value) while this request waits for bob. */
    send_on(c, "CAN acme bob a.b");
    origin_wait_count("acme", "user", "bob", 1, 500); /* may wait for r1: fine */
    origin_release("acme", "role", "r1");
    reply = receive(c);
    if (reply->type != REDIS_REPLY_INTEGER || reply->integer != 0)
        fail_with_log("CAN acme bob a.b after the set of r1 to [z.z]: expected :0, got type %d "
                      "'%s' %lld", reply->type, reply_text(reply), reply->integer);
    freeReplyObject(reply);
    reply = redisCommand(c, "CAN acme bob z.z");
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(reply->type, REDIS_REPLY_INTEGER);
    ck_assert_int_eq(reply->integer, 1);
    freeReplyObject(reply);
    redisFree(c);
    expect_info("fills_discarded", 1);
}
END_TEST

START_TEST(test_hot_refresh)
{
    origin_put("acme", "config", "hot", "\"h1\"", 0);
    origin_put("acme", "config", "cold", "\"c1\"", 0);
    for (int i = 0; i < 5; i++)
        expect_bulk("\"h1\"", "GET acme config hot");
    expect_bulk("\"c1\"", "GET acme config cold");
    expect_origin(1, "acme", "config", "hot");
    expect_origin(1, "acme", "config", "cold");
    expect_info("fills_l3", 2);
    /* Both were written back to L2; wait for that before dropping them. */
    const char *const written[] = {"cache:acme:config:hot", "cache:acme:config:cold"};
    for (size_t i = 0; i < 2; i++) {
        char *stored = l2_wait_value(written[i], WAIT_MS);
        ck_assert_ptr_nonnull(stored);
        free(stored);
    }
    /* The publisher changes the value at the source, drops the L2 copy, and
     * invalidates. Nobody asks, but the hot entry is filled again. */
    origin_put("acme", "config", "hot", "\"h2\"", 0);
    origin_put("acme", "config", "cold", "\"c2\"", 0);
    l2_del("cache:acme:config:hot");
    l2_del("cache:acme:config:cold");
    publish("{\"op\":\"invalidate\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"hot\"}");
    publish("{\"op\":\"invalidate\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"cold\"}");
    sync_stream();
    if (!origin_wait_count("acme", "config", "hot", 2, WAIT_MS))
        fail_with_log("hot entry was not refilled after invalidation (origin count %u)",
                      origin_count("acme", "config", "hot"));
    expect_info("fills_l3", 3);
    long long hits = harness_info_int(client, "hits");
    long long misses = harness_info_int(client, "misses");
    expect_bulk("\"h2\"", "GET acme config hot");
    expect_info("hits", hits + 1);
    expect_info("misses", misses);
    expect_origin(2, "acme", "config", "hot");
    /* The cold entry (read once) was not, even given the time. */
    harness_sleep_ms(200);
    expect_origin(1, "acme", "config", "cold");
    expect_bulk("\"c2\"", "GET acme config cold");
    expect_origin(2, "acme", "config", "cold");
}
END_TEST


START_TEST(test_miss_after_invalidate_does_not_join_the_raced_fill)
{
    /* A fill is in flight with v1 when the publisher changes the entry and
     * invalidates it. A miss that arrives after the invalidation must not be
     * answered with what the raced fill brings: it starts a fill of its own. */
    origin_put("acme", "config", "race", "\"v1\"", ORIGIN_HOLD);
    redisContext *before = send_async("GET acme config race");
    ck_assert(origin_wait_count("acme", "config", "race", 1, WAIT_MS));
    publish("{\"op\":\"invalidate\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"race\"}");
    sync_stream();
    origin_put("acme", "config", "race", "\"v2\"", ORIGIN_HOLD);
    redisContext *after = send_async("GET acme config race");
    if (!origin_wait_count("acme", "config", "race", 2, WAIT_MS))
        fail_with_log("the miss after the invalidation joined the raced fill (origin asked %u "
                      "times, fills_shared %lld)", origin_count("acme", "config", "race"),
                      harness_info_int(client, "fills_shared"));
    origin_release("acme", "config", "race");
    redisReply *reply = receive(before);
    check_bulk(reply, "\"v1\"", "the miss before the invalidation");
    freeReplyObject(reply);
    reply = receive(after);
    check_bulk(reply, "\"v2\"", "the miss after the invalidation");
    freeReplyObject(reply);
    redisFree(before);
    redisFree(after);
    expect_info("fills_shared", 0);
    expect_info("fills_discarded", 1);
    /* The second fill was not raced: cached. */
    expect_bulk("\"v2\"", "GET acme config race");
    expect_origin(2, "acme", "config", "race");
}
END_TEST

START_TEST(test_write_back_keeps_newer_l2_data)
{
    /* While the origin answers with v1, another writer (the publisher, or
     * another daemon's fill) stores v2 in L2. The write-back of v1 must not
     * replace it. */
    origin_put("acme", "config", "wb", "\"v1\"", ORIGIN_HOLD);
    redisContext *waiter = send_async("GET acme config wb");
    ck_assert(origin_wait_count("acme", "config", "wb", 1, WAIT_MS));
    l2_set("cache:acme:config:wb", "\"v2\"");
    origin_release("acme", "config", "wb");
    redisReply *reply = receive(waiter);
    check_bulk(reply, "\"v1\"", "the fill's waiter");
    freeReplyObject(reply);
    redisFree(waiter);
    /* A fill from L2 on the same (ordered) connection: once it is answered,
     * the write-back has been processed by redis. */
    l2_set("cache:acme:config:marker", "1");
    expect_bulk("1", "GET acme config marker");
    expect_info("fills_l2", 1);
    redisReply *stored = redisCommand(store, "GET cache:acme:config:wb");
    ck_assert_ptr_nonnull(stored);
    if (stored->type != REDIS_REPLY_STRING || strcmp(stored->str, "\"v2\"") != 0)
        fail_with_log("L2 holds '%s' after the write-back: the newer \"v2\" was overwritten",
                      reply_text(stored));
    freeReplyObject(stored);
    /* With nothing there, the write-back still happens, with the kind's TTL. */
    origin_put("acme", "config", "fresh", "\"f\"", 0);
    expect_bulk("\"f\"", "GET acme config fresh");
    char *value = l2_wait_value("cache:acme:config:fresh", WAIT_MS);
    ck_assert_ptr_nonnull(value);
    ck_assert_str_eq(value, "\"f\"");
    free(value);
}
END_TEST


START_TEST(test_made_up_tenants_evict_nobody)
{
    /* max_tenants 4, three real tenants with critical data. A peer reads
     * entries of 100 made-up tenants, which the origin does not know (404,
     * negative entries): no real tenant loses anything. */
    const char *const real[] = {"alpha", "beta", "gamma"};
    char message[256];
    for (int i = 0; i < 3; i++) {
        snprintf(message, sizeof(message),
                 "{\"op\":\"set\",\"tenant\":\"%s\",\"kind\":\"credit\",\"key\":\"op\",\"value\":%d}",
                 real[i], i + 1);
        publish(message);
    }
    sync_stream();
    for (int i = 0; i < 100; i++)
        expect_bulk(NULL, "GET fake%d config k", i);
    expect_info("fills_negative", 100);
    for (int i = 0; i < 3; i++) {
        snprintf(message, sizeof(message), "%d", i + 1);
        expect_bulk(message, "CREDIT %s op", real[i]);
        expect_origin(0, real[i], "credit", "op");
    }
    expect_info("evictions_tenant", 0);
    ck_assert_int_le(harness_info_int(client, "tenants"), 4);
    /* A new real tenant takes the made-up tenant's slot (negative entries go
     * first), not a real tenant's. */
    publish("{\"op\":\"set\",\"tenant\":\"delta\",\"kind\":\"credit\",\"key\":\"op\",\"value\":4}");
    sync_stream();
    expect_bulk("4", "CREDIT delta op");
    for (int i = 0; i < 3; i++) {
        snprintf(message, sizeof(message), "%d", i + 1);
        expect_bulk(message, "CREDIT %s op", real[i]);
    }
    expect_info("evictions_tenant", 0);
    expect_info("tenants", 4);
    expect_origin(0, "delta", "credit", "op");
}
END_TEST

/* ---- one request, one reply ---- */

/* Reads the reply to a PING sent after the request under test: it must be
 * the very next reply. */
static void expect_pong_on(redisContext *c, const char *after)
{
    redisReply *reply = receive(c);
    if (reply->type != REDIS_REPLY_STATUS || strcmp(reply->str, "PONG") != 0)
        fail_with_log("the reply after %s: expected PONG, got type %d '%s'", after, reply->type,
                      reply_text(reply));
    freeReplyObject(reply);
}

START_TEST(test_mget_refused_name_after_a_miss)
{
    /* The first name misses (its fill is held), a later one is refused:
     * the request answers one error, and the fill cannot make it answer
     * again. */
    origin_put("acme", "config", "slow", "\"s\"", ORIGIN_HOLD);
    redisContext *c = harness_connect(&h);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(redisAppendCommand(c, "MGET cache:acme:config:slow cache:globex:config:x"),
                     REDIS_OK);
    send_on(c, "PING");
    origin_wait_count("acme", "config", "slow", 1, 300); /* need not be asked at all */
    origin_release("acme", "config", "slow");
    redisReply *reply = receive(c);
    if (reply->type != REDIS_REPLY_ERROR || strncmp(reply->str, "NOPERM ", 7) != 0)
        fail_with_log("MGET with a refused name: expected -NOPERM, got type %d '%s'", reply->type,
                      reply_text(reply));
    freeReplyObject(reply);
    expect_pong_on(c, "MGET with a refused name");
    /* The same with the key/kind form and GET: one error each. */
    ck_assert_int_eq(redisAppendCommand(c, "MGET cache:acme:config:slow2 cache:acme:nokind:x"),
                     REDIS_OK);
    send_on(c, "PING");
    reply = receive(c);
    ck_assert_msg(reply->type == REDIS_REPLY_ARRAY && reply->elements == 2,
                  "MGET with an unparsable name: type %d", reply->type);
    freeReplyObject(reply);
    expect_pong_on(c, "MGET with an unparsable name");
    redisFree(c);
}
END_TEST


/* GETs redis has run (the daemon's L2 lookups, when the test sends none). */
static long long redis_get_calls(void)
{
    redisReply *reply = redisCommand(store, "INFO commandstats");
    ck_assert_ptr_nonnull(reply);
    long long calls = 0;
    const char *line = reply->type == REDIS_REPLY_STRING ? strstr(reply->str, "cmdstat_get:calls=") : NULL;
    if (line != NULL)
        calls = strtoll(line + strlen("cmdstat_get:calls="), NULL, 10);
    freeReplyObject(reply);
    return calls;
}

START_TEST(test_admin_flush_races_completing_fills)
{
    /* An admin FLUSH runs on a query thread while the main loop completes
     * fills. None of the fills that started before the FLUSH may be cached
     * afterwards: those completing before it are flushed, those completing
     * during or after it are discarded. The tenant is made large so that
     * the flush lasts while the held fills are released and complete. */
    enum { BATCHES = 300, PER_BATCH = 1000, FILLS = 24 };
    size_t size = PER_BATCH * 96 + 16;
    char *batch = malloc(size);
    ck_assert_ptr_nonnull(batch);
    for (int b = 0; b < BATCHES; b++) {
        size_t used = 0;
        batch[used++] = '[';
        for (int i = 0; i < PER_BATCH; i++)
            used += (size_t)snprintf(batch + used, size - used,
                                     "%s{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"profile\","
                                     "\"key\":\"p%d_%d\",\"value\":{}}", i ? "," : "", b, i);
        snprintf(batch + used, size - used, "]");
        publish(batch);
        published += PER_BATCH - 1; /* messages_applied counts operations */
    }
    free(batch);
    if (!harness_wait_info(client, 40000, "messages_applied", published))
        fail_with_log("messages_applied: expected %lld, got %lld", published,
                      harness_info_int(client, "messages_applied"));
    long long loaded = harness_info_int(client, "entries");
    ck_assert_int_eq(loaded, BATCHES * PER_BATCH);
    char key[32], body[32];
    redisContext *waiters[FILLS];
    for (int i = 0; i < FILLS; i++) {
        snprintf(key, sizeof(key), "f%d", i);
        snprintf(body, sizeof(body), "%d", i);
        origin_put("acme", "config", key, body, ORIGIN_HOLD);
        waiters[i] = send_async("GET acme config %s", key);
    }
    /* Every fill has started (each begins with its L2 GET) before the
     * FLUSH is sent: a fill that starts after it may cache what it brings. */
    long long deadline = harness_now_ms() + WAIT_MS;
    while (redis_get_calls() < FILLS && harness_now_ms() < deadline)
        harness_sleep_ms(2);
    if (redis_get_calls() < FILLS)
        fail_with_log("only %lld of %d fills started", redis_get_calls(), FILLS);
    ck_assert(origin_wait_total(8, WAIT_MS)); /* max_concurrent; the rest queue */
    redisContext *admin = send_async("FLUSH acme");
    harness_sleep_ms(2);
    origin_release_all();
    redisReply *reply = receive(admin);
    ck_assert_int_eq(reply->type, REDIS_REPLY_STATUS);
    freeReplyObject(reply);
    redisFree(admin);
    for (int i = 0; i < FILLS; i++) {
        snprintf(body, sizeof(body), "%d", i);
        reply = receive(waiters[i]);
        check_bulk(reply, body, "a fill raced by FLUSH");
        freeReplyObject(reply);
        redisFree(waiters[i]);
    }
    long long entries = harness_info_int(client, "entries");
    if (entries != 0)
        fail_with_log("%lld entries after FLUSH acme: fills that started before it were cached",
                      entries);
}
END_TEST

/* ======================================================================
 * A raw origin: what real HTTP servers do that libevent's own does not
 * ====================================================================== */

/* A plain-socket HTTP server, a thread per connection, for the ways real
 * origins end connections: HTTP/1.0 (closed after each response),
 * "Connection: close", and a keep-alive server that closes a connection
 * after one response without saying so (a keep-alive timeout or a
 * per-connection request limit firing as the next request is sent). It
 * answers /v1/tenants/T/K/KEY with "KEY" as a JSON string, except for the
 * tenants `big` (a 64 MiB body) and `drip` (a valid body sent a byte every
 * 300 ms). Listens on 127.0.0.1 and, when it can, on ::1 (the same port),
 * so that "localhost" works whichever address the resolver gives first. */
enum raw_mode {
    RAW_CLOSE,        /* HTTP/1.1 with Connection: close */
    RAW_HTTP10,       /* HTTP/1.0, no Connection header */
    RAW_SILENT_CLOSE, /* HTTP/1.1 keep-alive advertised, closed after one response */
};

#define RAW_BIG_BYTES (64u * 1024 * 1024)

static struct {
    int fds[2];
    int port;
    pthread_t thread;
    _Atomic int mode;
    _Atomic unsigned requests;
    _Atomic unsigned big_complete; /* big bodies written whole */
    _Atomic unsigned big_cut;      /* big bodies the client stopped reading */
    _Atomic bool stop;
    bool running;
} raw;

static bool raw_write_all(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n <= 0)
            return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

static void raw_answer(int fd, const char *path, int mode)
{
    const char *status = mode == RAW_HTTP10 ? "HTTP/1.0 200 OK" : "HTTP/1.1 200 OK";
    const char *connection = mode == RAW_CLOSE ? "Connection: close\r\n" : "";
    char head[512];
    char tenant[128] = "", key[256] = "";
    sscanf(path, "/v1/tenants/%127[^/]/%*[^/]/%255s", tenant, key);
    if (strcmp(tenant, "big") == 0) {
        snprintf(head, sizeof(head), "%s\r\nContent-Type: application/json\r\n%sContent-Length: %u\r\n\r\n\"",
                 status, connection, RAW_BIG_BYTES);
        bool whole = raw_write_all(fd, head, strlen(head));
        static char chunk[65536];
        memset(chunk, 'x', sizeof(chunk));
        for (size_t sent = 1; whole && sent < RAW_BIG_BYTES - 1; sent += sizeof(chunk)) {
            size_t n = RAW_BIG_BYTES - 1 - sent < sizeof(chunk) ? RAW_BIG_BYTES - 1 - sent : sizeof(chunk);
            whole = raw_write_all(fd, chunk, n);
        }
        whole = whole && raw_write_all(fd, "\"", 1);
        atomic_fetch_add(whole ? &raw.big_complete : &raw.big_cut, 1);
        return;
    }
    if (strcmp(tenant, "drip") == 0) {
        static const char body[] = "\"dripping\"";
        snprintf(head, sizeof(head), "%s\r\nContent-Type: application/json\r\n%sContent-Length: %zu\r\n\r\n",
                 status, connection, sizeof(body) - 1);
        bool ok = raw_write_all(fd, head, strlen(head));
        for (size_t i = 0; ok && i < sizeof(body) - 1; i++) {
            harness_sleep_ms(300);
            ok = raw_write_all(fd, body + i, 1);
        }
        return;
    }
    char body[300];
    snprintf(body, sizeof(body), "\"%s\"", key);
    char reply[1024];
    snprintf(reply, sizeof(reply), "%s\r\nContent-Type: application/json\r\n%sContent-Length: %zu\r\n\r\n%s",
             status, connection, strlen(body), body);
    raw_write_all(fd, reply, strlen(reply));
}

static void *raw_connection(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char request[8192];
    size_t used = 0;
    for (;;) {
        ssize_t n = recv(fd, request + used, sizeof(request) - 1 - used, 0);
        if (n <= 0)
            break;
        used += (size_t)n;
        request[used] = '\0';
        if (strstr(request, "\r\n\r\n") == NULL) {
            if (used == sizeof(request) - 1)
                break;
            continue;
        }
        char path[1024] = "";
        sscanf(request, "GET %1023s", path);
        atomic_fetch_add(&raw.requests, 1);
        raw_answer(fd, path, atomic_load(&raw.mode));
        break; /* every mode ends the connection after one response */
    }
    close(fd);
    return NULL;
}

static void *raw_accept_loop(void *arg)
{
    (void)arg;
    while (!atomic_load(&raw.stop)) {
        struct pollfd polls[2] = {{.fd = raw.fds[0], .events = POLLIN}, {.fd = raw.fds[1], .events = POLLIN}};
        if (poll(polls, raw.fds[1] >= 0 ? 2 : 1, 100) <= 0)
            continue;
        for (int i = 0; i < 2; i++) {
            if (raw.fds[i] < 0 || !(polls[i].revents & POLLIN))
                continue;
            int fd = accept(raw.fds[i], NULL, NULL);
            if (fd < 0)
                continue;
            pthread_t thread;
            if (pthread_create(&thread, NULL, raw_connection, (void *)(intptr_t)fd) == 0)
                pthread_detach(thread);
            else
                close(fd);
        }
    }
    return NULL;
}

static void raw_start(void)
{
    raw.fds[0] = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(raw.fds[0], 0);
    int one = 1;
    setsockopt(raw.fds[0], SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    ck_assert_int_eq(bind(raw.fds[0], (struct sockaddr *)&address, sizeof(address)), 0);
    ck_assert_int_eq(listen(raw.fds[0], 512), 0);
    socklen_t len = sizeof(address);
    ck_assert_int_eq(getsockname(raw.fds[0], (struct sockaddr *)&address, &len), 0);
    raw.port = ntohs(address.sin_port);
    raw.fds[1] = socket(AF_INET6, SOCK_STREAM, 0);
    struct sockaddr_in6 address6 = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT,
                                    .sin6_port = htons((uint16_t)raw.port)};
    if (raw.fds[1] >= 0 && (bind(raw.fds[1], (struct sockaddr *)&address6, sizeof(address6)) != 0 ||
                            listen(raw.fds[1], 512) != 0)) {
        close(raw.fds[1]);
        raw.fds[1] = -1;
    }
    ck_assert_int_eq(pthread_create(&raw.thread, NULL, raw_accept_loop, NULL), 0);
    raw.running = true;
}

static void raw_stop(void)
{
    if (!raw.running)
        return;
    atomic_store(&raw.stop, true);
    pthread_join(raw.thread, NULL);
    for (int i = 0; i < 2; i++) {
        if (raw.fds[i] >= 0)
            close(raw.fds[i]);
    }
    raw.running = false;
}

#define RAW_CONFIG                                                       \
    "log_level: debug\n"                                                 \
    "threads: 2\n"                                                       \
    "shards: 4\n"                                                        \
    "listen:\n"                                                          \
    "  socket: \"@DAEMON_SOCKET@\"\n"                                    \
    "redis:\n"                                                           \
    "  unix: \"@REDIS_SOCKET@\"\n"                                       \
    "  channels: [tenantcached:invalidate]\n"                            \
    "origin:\n"                                                          \
    "  url: \"http://%s:%d/v1/tenants/{tenant}/{kind}/{key}\"\n"         \
    "  timeout: 2s\n"                                                    \
    "  max_concurrent: 8\n"                                              \
    "memory:\n"                                                          \
    "  max_bytes: 64mb\n"                                                \
    "  tenant_max_bytes: 8mb\n"

static void start_raw(const char *host)
{
    harness_init(&h);
    memset(&raw, 0, sizeof(raw));
    raw_start();
    ck_assert_int_eq(harness_redis_start(&h), 0);
    char config[4096];
    snprintf(config, sizeof(config), RAW_CONFIG, host, raw.port);
    ck_assert_int_eq(harness_daemon_start(&h, config), 0);
    client = harness_connect(&h);
    ck_assert_ptr_nonnull(client);
}

static void setup_raw(void)
{
    start_raw("127.0.0.1");
}

static void teardown_raw(void)
{
    int code = harness_daemon_stop(&h, SIGTERM);
    if (code != 0 && code != -1)
        fail_with_log("the daemon exited %d on SIGTERM", code);
    if (client != NULL)
        redisFree(client);
    client = NULL;
    harness_cleanup(&h);
    raw_stop();
}

/* MGET of 300 different misses of tenant acme: every one answered with its
 * key, by the origin in the current mode. */
static void expect_mget_300(const char *what)
{
    enum { KEYS = 300 };
    const char *argv[KEYS + 3];
    size_t lens[KEYS + 3];
    char names[KEYS][16];
    argv[0] = "MGET", argv[1] = "acme", argv[2] = "config";
    for (int i = 0; i < KEYS; i++) {
        snprintf(names[i], sizeof(names[i]), "%s%d", what, i);
        argv[i + 3] = names[i];
    }
    for (int i = 0; i < KEYS + 3; i++)
        lens[i] = strlen(argv[i]);
    redisReply *reply = redisCommandArgv(client, KEYS + 3, argv, lens);
    if (reply == NULL)
        fail_with_log("%s: no reply to MGET: %s", what, client->errstr);
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != KEYS)
        fail_with_log("%s: MGET of 300 misses answered type %d '%s'", what, reply->type,
                      reply_text(reply));
    for (int i = 0; i < KEYS; i++) {
        char expected[32];
        snprintf(expected, sizeof(expected), "\"%s\"", names[i]);
        check_bulk(reply->element[i], expected, what);
    }
    freeReplyObject(reply);
}

START_TEST(test_origin_connection_close)
{
    atomic_store(&raw.mode, RAW_CLOSE);
    expect_mget_300("close");
    expect_info("fill_errors", 0);
}
END_TEST

START_TEST(test_origin_http10)
{
    atomic_store(&raw.mode, RAW_HTTP10);
    expect_mget_300("http10");
    expect_info("fill_errors", 0);
}
END_TEST

START_TEST(test_origin_closes_reused_connections)
{
    atomic_store(&raw.mode, RAW_SILENT_CLOSE);
    expect_mget_300("silent");
    expect_info("fill_errors", 0);
    expect_mget_300("again");
    expect_info("fill_errors", 0);
}
END_TEST

START_TEST(test_origin_body_too_large)
{
    /* A 64 MiB body is refused while it is read: the daemon stops reading
     * (the origin cannot write it whole), answers -UNAVAILABLE, and goes on. */
    atomic_store(&raw.mode, RAW_CLOSE);
    expect_unavailable("GET big config k");
    expect_info("fill_errors", 1);
    long long deadline = harness_now_ms() + WAIT_MS;
    while (atomic_load(&raw.big_cut) + atomic_load(&raw.big_complete) == 0 && harness_now_ms() < deadline)
        harness_sleep_ms(10);
    if (atomic_load(&raw.big_cut) != 1 || atomic_load(&raw.big_complete) != 0)
        fail_with_log("the 64 MiB body was read whole (%u) instead of cut (%u)",
                      atomic_load(&raw.big_complete), atomic_load(&raw.big_cut));
    expect_pong();
    expect_bulk("\"fine\"", "GET acme config fine");
    ck_assert(wait_log_line("body larger than", 1000));
}
END_TEST

START_TEST(test_origin_whole_request_timeout)
{
    /* Each byte of the body comes within the read timeout, the whole body
     * does not come within origin.timeout (2 s): unavailable. */
    atomic_store(&raw.mode, RAW_CLOSE);
    expect_unavailable("GET drip config k");
    expect_info("fill_errors", 1);
    ck_assert(wait_log_line("timed out", 1000));
    expect_bulk("\"ok\"", "GET acme config ok");
}
END_TEST

static void setup_raw_localhost(void)
{
    start_raw("localhost");
}

START_TEST(test_origin_host_name)
{
    atomic_store(&raw.mode, RAW_CLOSE);
    expect_bulk("\"named\"", "GET acme config named");
    expect_mget_300("name");
    expect_info("fill_errors", 0);
}
END_TEST

START_TEST(test_mget_stale_name_after_a_miss)
{
    /* Reference data is served while the stream is stale, critical data
     * refused: an MGET whose first name misses (reference) and whose second
     * is critical answers one -STALE, and the PING after it its PONG. */
    origin_put("acme", "profile", "p", "{\"a\":1}", 0);
    ck_assert_int_eq(harness_redis_stop(&h, SIGKILL), 0);
    ck_assert(harness_wait_info(client, WAIT_MS, "redis_connected", 0));
    long long deadline = harness_now_ms() + 10000;
    bool stale = false;
    while (!stale && harness_now_ms() < deadline) {
        redisReply *reply = command("CREDIT acme probe");
        stale = reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "STALE ", 6) == 0;
        freeReplyObject(reply);
        if (!stale)
            harness_sleep_ms(100);
    }
    ck_assert_msg(stale, "critical data never went stale");
    ck_assert_int_eq(redisAppendCommand(client, "MGET cache:acme:profile:p cache:acme:credit:c"),
                     REDIS_OK);
    send_on(client, "PING");
    redisReply *reply = receive(client);
    if (reply->type != REDIS_REPLY_ERROR || strncmp(reply->str, "STALE ", 6) != 0)
        fail_with_log("MGET with a stale name: expected -STALE, got type %d '%s'", reply->type,
                      reply_text(reply));
    freeReplyObject(reply);
    expect_pong_on(client, "MGET with a stale name");
    /* The reference name alone is filled and served. */
    expect_bulk("{\"a\":1}", "GET cache:acme:profile:p");
}
END_TEST

#define STRESS_KEYS 300
#define STRESS_ROUNDS 40

struct stress_publisher {
    redisContext *redis;
    _Atomic bool stop;
    unsigned sent;
};

/* Sets, invalidates and deletes the keys the MGETs read, round-robin. */
static void *stress_publish(void *arg)
{
    struct stress_publisher *p = arg;
    static const char *const ops[] = {"set", "invalidate", "set", "invalidate", "del"};
    for (unsigned i = 0; !atomic_load(&p->stop); i++) {
        unsigned key = (i * 7919u) % STRESS_KEYS;
        const char *op = ops[i % 5];
        redisReply *reply;
        if (strcmp(op, "set") == 0)
            reply = redisCommand(p->redis,
                                 "PUBLISH " CHANNEL " {\"op\":\"set\",\"tenant\":\"acme\",\"kind\":"
                                 "\"config\",\"key\":\"k%u\",\"value\":\"s%u\"}",
                                 key, i);
        else
            reply = redisCommand(p->redis,
                                 "PUBLISH " CHANNEL " {\"op\":\"%s\",\"tenant\":\"acme\",\"kind\":"
                                 "\"config\",\"key\":\"k%u\"}",
                                 op, key);
        if (reply == NULL)
            break;
        freeReplyObject(reply);
        p->sent++;
        if (i % 16 == 0)
            usleep(1000);
    }
    return NULL;
}

START_TEST(test_mget_stress_one_reply_each)
{
    /* Pipelined MGETs of hundreds of names, by full name and by kind, each
     * followed by a PING, while a publisher sets, invalidates and deletes
     * the same entries and the origin answers slowly. Every reply is one
     * array of the right size whose elements are nil or a value of the
     * entry, and every PONG is where it belongs. */
    char name[64], body[64];
    for (unsigned k = 0; k < STRESS_KEYS; k++) {
        snprintf(name, sizeof(name), "k%u", k);
        snprintf(body, sizeof(body), "\"o%u\"", k);
        origin_put("acme", "config", name, body, 3);
    }
    /* Two commands: argv is names; one by kind: argv is "acme config keys". */
    size_t argc_names = STRESS_KEYS + 1, argc_keys = STRESS_KEYS + 3;
    const char **argv = calloc(argc_keys, sizeof(*argv));
    char **owned = calloc(argc_keys, sizeof(*owned));
    ck_assert_ptr_nonnull(argv);
    ck_assert_ptr_nonnull(owned);
    struct stress_publisher publisher = {.redis = harness_redis_connect(&h)};
    ck_assert_ptr_nonnull(publisher.redis);
    pthread_t thread;
    ck_assert_int_eq(pthread_create(&thread, NULL, stress_publish, &publisher), 0);
    redisContext *c = harness_connect(&h);
    ck_assert_ptr_nonnull(c);
    struct timeval tv = {.tv_sec = 20};
    redisSetTimeout(c, tv);
    for (unsigned round = 0; round < STRESS_ROUNDS; round++) {
        bool by_name = round % 2 == 0;
        size_t argc = by_name ? argc_names : argc_keys;
        argv[0] = "MGET";
        size_t first = 1;
        if (!by_name) {
            argv[1] = "acme";
            argv[2] = "config";
            first = 3;
        }
        for (size_t i = first; i < argc; i++) {
            unsigned k = (unsigned)((i - first + round * 13) % STRESS_KEYS);
            char text[64];
            if (by_name)
                snprintf(text, sizeof(text), "cache:acme:config:k%u", k);
            else
                snprintf(text, sizeof(text), "k%u", k);
            owned[i] = strdup(text);
            argv[i] = owned[i];
        }
        ck_assert_int_eq(redisAppendCommandArgv(c, (int)argc, argv, NULL), REDIS_OK);
        for (size_t i = first; i < argc; i++) {
            free(owned[i]);
            owned[i] = NULL;
        }
        ck_assert_int_eq(redisAppendCommand(c, "PING"), REDIS_OK);
    }
    for (unsigned round = 0; round < STRESS_ROUNDS; round++) {
        void *got = NULL;
        if (redisGetReply(c, &got) != REDIS_OK || got == NULL)
            fail_with_log("round %u: no reply to MGET: %s", round, c->errstr);
        redisReply *reply = got;
        if (reply->type == REDIS_REPLY_ERROR) {
            /* A fill that failed: one error for the whole request. */
            check_unavailable(reply, "stress MGET");
        } else {
            if (reply->type != REDIS_REPLY_ARRAY || reply->elements != STRESS_KEYS)
                fail_with_log("round %u: MGET: type %d with %zu elements '%s'", round,
                              reply->type, reply->elements, reply_text(reply));
            for (size_t i = 0; i < reply->elements; i++) {
                const redisReply *e = reply->element[i];
                if (e->type == REDIS_REPLY_NIL)
                    continue;
                unsigned k = (unsigned)((i + round * 13) % STRESS_KEYS);
                char origin_value[32];
                snprintf(origin_value, sizeof(origin_value), "\"o%u\"", k);
                if (e->type != REDIS_REPLY_STRING)
                    fail_with_log("round %u: MGET[%zu] (k%u): type %d '%s'", round, i, k,
                                  e->type, reply_text(e));
                if (strcmp(e->str, origin_value) != 0 && strncmp(e->str, "\"s", 2) != 0)
                    fail_with_log("round %u: MGET[%zu] (k%u): '%s' is no value of the entry",
                                  round, i, k, e->str);
            }
        }
        freeReplyObject(reply);
        expect_pong_on(c, "a stress MGET");
    }
    atomic_store(&publisher.stop, true);
    pthread_join(thread, NULL);
    ck_assert_uint_gt(publisher.sent, 0);
    redisFree(publisher.redis);
    redisFree(c);
    free(argv);
    free(owned);
    /* The daemon still answers on a new connection. */
    expect_pong();
}
END_TEST

/* ---- a transaction's fills (docs/reference.md §4) ---- */

static void expect_status(const char *expected, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void expect_status(const char *expected, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    redisReply *reply = vcommand_on(client, fmt, args);
    va_end(args);
    if (reply->type != REDIS_REPLY_STATUS || strcmp(reply->str, expected) != 0)
        fail_with_log("%s: expected +%s, got type %d '%s'", fmt, expected, reply->type,
                      reply_text(reply));
    freeReplyObject(reply);
}

START_TEST(test_exec_failed_fill_is_one_element)
{
    /* EXEC waits for every fill of its queue; a fill that failed makes only
     * its own element -UNAVAILABLE, and the next request is answered next. */
    origin_put("acme", "config", "good", "\"g\"", 0);
    origin_put_path("/v1/tenants/acme/config/bad", 500, "oops", 0);
    expect_status("OK", "MULTI");
    expect_status("QUEUED", "GET acme config good");
    expect_status("QUEUED", "GET acme config bad");
    expect_status("QUEUED", "PING");
    redisReply *reply = command("EXEC");
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3)
        fail_with_log("EXEC: expected an array of 3, got type %d (%zu elements)", reply->type,
                      reply->type == REDIS_REPLY_ARRAY ? reply->elements : (size_t)0);
    check_bulk(reply->element[0], "\"g\"", "EXEC element 1");
    check_unavailable(reply->element[1], "EXEC element 2");
    ck_assert_int_eq(reply->element[2]->type, REDIS_REPLY_STATUS);
    ck_assert_str_eq(reply->element[2]->str, "PONG");
    freeReplyObject(reply);
    expect_pong();
    expect_info("fill_errors", 1);
    /* The queue is gone once EXEC answered. */
    reply = command("EXEC");
    ck_assert_int_eq(reply->type, REDIS_REPLY_ERROR);
    ck_assert_str_eq(reply->str, "ERR EXEC without MULTI");
    freeReplyObject(reply);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("fill");
    TCase *fill = tcase_create("fill");
    tcase_add_checked_fixture(fill, setup, teardown);
    tcase_set_timeout(fill, 30);
    tcase_add_test(fill, test_l2_hit);
    tcase_add_test(fill, test_l3_hit_written_back_to_l2);
    tcase_add_test(fill, test_l3_write_back_without_expiry);
    tcase_add_test(fill, test_commands_fill);
    tcase_add_test(fill, test_flush_spares_other_tenants_fills);
    tcase_add_test(fill, test_url_encoding);
    tcase_add_test(fill, test_not_found_is_negative);
    tcase_add_test(fill, test_negative_expires);
    tcase_add_test(fill, test_origin_error_status);
    tcase_add_test(fill, test_origin_invalid_body);
    tcase_add_test(fill, test_origin_down);
    tcase_add_test(fill, test_origin_timeout);
    tcase_add_test(fill, test_origin_delay_within_timeout);
    tcase_add_test(fill, test_l2_down_falls_through);
    tcase_add_test(fill, test_concurrent_misses_share_one_fill);
    tcase_add_test(fill, test_invalidate_during_fill);
    tcase_add_test(fill, test_del_during_fill);
    tcase_add_test(fill, test_set_during_fill);
    tcase_add_test(fill, test_flush_during_fill);
    tcase_add_test(fill, test_pipelined_replies_in_order);
    tcase_add_test(fill, test_sigterm_during_fill);
    tcase_add_test(fill, test_origin_closes_idle_connections);
    tcase_add_test(fill, test_origin_max_concurrent);
    tcase_add_test(fill, test_client_gone_while_parked);
    tcase_add_test(fill, test_quit_after_parked_request);
    tcase_add_test(fill, test_mget_same_key_twice);
    tcase_add_test(fill, test_can_with_missing_or_failing_role);
    tcase_add_test(fill, test_set_wins_over_an_unwaited_fill);
    tcase_add_test(fill, test_miss_after_invalidate_does_not_join_the_raced_fill);
    tcase_add_test(fill, test_write_back_keeps_newer_l2_data);
    tcase_add_test(fill, test_mget_stress_one_reply_each);
    tcase_add_test(fill, test_exec_failed_fill_is_one_element);
    suite_add_tcase(suite, fill);
    TCase *acl = tcase_create("acl");
    tcase_add_checked_fixture(acl, setup_acl, teardown);
    tcase_set_timeout(acl, 30);
    tcase_add_test(acl, test_mget_refused_name_after_a_miss);
    suite_add_tcase(suite, acl);
    TCase *stale = tcase_create("stale");
    tcase_add_checked_fixture(stale, setup_stale, teardown);
    tcase_set_timeout(stale, 30);
    tcase_add_test(stale, test_mget_stale_name_after_a_miss);
    suite_add_tcase(suite, stale);
    TCase *hot = tcase_create("hot");
    tcase_add_checked_fixture(hot, setup_hot, teardown);
    tcase_set_timeout(hot, 30);
    tcase_add_test(hot, test_hot_refresh);
    suite_add_tcase(suite, hot);
    TCase *few = tcase_create("few_tenants");
    tcase_add_checked_fixture(few, setup_few_tenants, teardown);
    tcase_set_timeout(few, 30);
    tcase_add_test(few, test_made_up_tenants_evict_nobody);
    suite_add_tcase(suite, few);
    TCase *flush = tcase_create("flush_race");
    tcase_add_checked_fixture(flush, setup_big_memory, teardown);
    tcase_set_timeout(flush, 120);
    tcase_add_test(flush, test_admin_flush_races_completing_fills);
    suite_add_tcase(suite, flush);
    TCase *real = tcase_create("real_origins");
    tcase_add_checked_fixture(real, setup_raw, teardown_raw);
    tcase_set_timeout(real, 60);
    tcase_add_test(real, test_origin_connection_close);
    tcase_add_test(real, test_origin_http10);
    tcase_add_test(real, test_origin_closes_reused_connections);
    tcase_add_test(real, test_origin_body_too_large);
    tcase_add_test(real, test_origin_whole_request_timeout);
    suite_add_tcase(suite, real);
    TCase *named = tcase_create("named_origin");
    tcase_add_checked_fixture(named, setup_raw_localhost, teardown_raw);
    tcase_set_timeout(named, 60);
    tcase_add_test(named, test_origin_host_name);
    suite_add_tcase(suite, named);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
