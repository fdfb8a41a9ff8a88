/* sentinel.c - finds the Redis master through Redis Sentinel and follows its
 * failovers, for redis_link.c (docs/reference.md §7). See sentinel.h.
 *
 * hiredis 0.14 has no Sentinel support, so the conversation is a few commands
 * on plain async connections: a query (AUTH, SENTINEL GET-MASTER-ADDR-BY-NAME
 * on a sentinel, then AUTH, ROLE on the master it names) and a watch
 * (SUBSCRIBE +switch-master on one sentinel). Every step is bounded by
 * redis.connect_timeout with a libevent timer. As in redis_link.c, no context
 * is freed inside its own callbacks: a callback stores its result and
 * activates an event, and the event frees the context (its `data` cleared
 * first, so the NULL replies hiredis then delivers are ignored). */
#include "sentinel.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "config.h"
#include "log.h"
#include "redis_link.h"
#include "util.h"

#define SENTINEL_ERROR_MAX 512
#define SENTINEL_LOG_INTERVAL_MS 10000
#define SENTINEL_MIN_DELAY_MS 10

struct sentinel_address {
    char *host;
    unsigned port;
};

/* What the module copies out of the config. */
struct sentinel_settings {
    struct sentinel_address *sentinels;
    size_t count;
    char *master_name;
    char *password;       /* redis.sentinel_password, for the sentinels */
    char *redis_username; /* redis.username/password, for ROLE on the master */
    char *redis_password;
    uint64_t connect_timeout_ms;
    uint64_t reconnect_min_ms;
    uint64_t reconnect_max_ms;
};

enum query_step {
    QUERY_IDLE,      /* the master is known and verified; nothing to do */
    QUERY_WAITING,   /* a round failed: query_retry starts the next one */
    QUERY_START,     /* a round is to start from the loop */
    QUERY_ASKING,    /* GET-MASTER-ADDR-BY-NAME sent to sentinels[asking] */
    QUERY_VERIFYING, /* ROLE sent to the candidate */
};

/* What the current conversation's callbacks found, for query_run(). */
struct query_result {
    bool done;
    bool ok;
    bool answered; /* a server answered (an error from it says more than a refused connect) */
    char host[SENTINEL_HOST_MAX];
    unsigned port;
    char error[SENTINEL_ERROR_MAX];
};

struct sentinel {
    struct event_base *base;
    struct sentinel_settings settings;
    uint64_t rng;

    /* the query */
    enum query_step step;
    redisAsyncContext *query_ac;
    struct query_result result;
    size_t asking;    /* the sentinel asked, or whose answer is being verified */
    size_t asked;     /* sentinels tried in this round */
    size_t preferred; /* where a round starts: the last sentinel that answered well */
    char candidate_host[SENTINEL_HOST_MAX];
    unsigned candidate_port;
    bool switch_pending; /* a +switch-master waits for query_run() */
    char switch_host[SENTINEL_HOST_MAX];
    unsigned switch_port;
    unsigned query_failures; /* consecutive failed rounds */
    char round_error[SENTINEL_ERROR_MAX];
    bool round_error_answered;
    struct event *query_timeout;
    struct event *query_retry;
    struct event *query_event; /* runs query_run() from the loop */

    /* the watch */
    redisAsyncContext *watch_ac;
    size_t watch_index;
    bool watch_subscribed;
    bool watch_drop;
    char watch_reason[SENTINEL_ERROR_MAX];
    unsigned watch_failures;
    struct event *watch_timeout;
    struct event *watch_retry;
    struct event *watch_drop_event;

    struct log_ratelimit query_limit;
    struct log_ratelimit watch_limit;
};

/* What the query threads may read, under shared_lock. */
static pthread_mutex_t shared_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    bool known;
    char host[SENTINEL_HOST_MAX];
    unsigned port;
    uint64_t switches;
    char problem[SENTINEL_ERROR_MAX + 128];
} shared;

/* Main loop only. */
static struct sentinel *running;
static struct watcher {
    sentinel_moved_fn *fn;
    void *arg;
} *watchers;
static size_t watcher_count;

static void query_run(struct sentinel *s);
static void query_kick(struct sentinel *s);

/* ---- shared state ---- */

int sentinel_master(char *host, size_t size, unsigned *port)
{
    pthread_mutex_lock(&shared_lock);
    bool known = shared.known;
    if (known) {
        snprintf(host, size, "%s", shared.host);
        *port = shared.port;
    }
    pthread_mutex_unlock(&shared_lock);
    return known ? 0 : -1;
}

uint64_t sentinel_switches(void)
{
    pthread_mutex_lock(&shared_lock);
    uint64_t switches = shared.switches;
    pthread_mutex_unlock(&shared_lock);
    return switches;
}

bool sentinel_problem(char *buf, size_t size)
{
    pthread_mutex_lock(&shared_lock);
    snprintf(buf, size, "%s", shared.problem);
    pthread_mutex_unlock(&shared_lock);
    return buf[0] != '\0';
}

static void set_problem(const char *problem)
{
    pthread_mutex_lock(&shared_lock);
    snprintf(shared.problem, sizeof(shared.problem), "%s", problem);
    pthread_mutex_unlock(&shared_lock);
}

void sentinel_watch(sentinel_moved_fn *fn, void *arg)
{
    watchers = xrealloc(watchers, (watcher_count + 1) * sizeof(*watchers));
    watchers[watcher_count].fn = fn;
    watchers[watcher_count].arg = arg;
    watcher_count++;
}

void sentinel_unwatch(sentinel_moved_fn *fn, void *arg)
{
    for (size_t i = 0; i < watcher_count; i++) {
        if (watchers[i].fn == fn && watchers[i].arg == arg) {
            watchers[i] = watchers[--watcher_count];
            break;
        }
    }
    if (watcher_count == 0) {
        free(watchers);
        watchers = NULL;
    }
}

void sentinel_master_lost(void)
{
    if (running != NULL)
        query_kick(running);
}

/* ---- settings ---- */

static void settings_load(struct sentinel_settings *st, const struct config *config)
{
    const struct config_strings *list = &config->redis.sentinels;
    st->count = list->count;
    st->sentinels = xcalloc(list->count ? list->count : 1, sizeof(*st->sentinels));
    for (size_t i = 0; i < list->count; i++) {
        /* HOST:PORT, checked by the config loader; [v6]:PORT loses its brackets */
        const char *item = list->items[i];
        const char *colon = strrchr(item, ':');
        size_t host_len = colon != NULL ? (size_t)(colon - item) : strlen(item);
        if (host_len >= 2 && item[0] == '[' && item[host_len - 1] == ']')
            st->sentinels[i].host = xstrndup(item + 1, host_len - 2);
        else
            st->sentinels[i].host = xstrndup(item, host_len);
        st->sentinels[i].port = colon != NULL ? (unsigned)strtoul(colon + 1, NULL, 10) : 26379;
    }
    st->master_name = xstrdup(config->redis.master_name);
    st->password = xstrdup(config->redis.sentinel_password);
    st->redis_username = xstrdup(config->redis.username);
    st->redis_password = xstrdup(config->redis.password);
    st->connect_timeout_ms = config->redis.connect_timeout_ms;
    st->reconnect_min_ms = config->redis.reconnect_min_ms < SENTINEL_MIN_DELAY_MS
                               ? SENTINEL_MIN_DELAY_MS
                               : config->redis.reconnect_min_ms;
    st->reconnect_max_ms = config->redis.reconnect_max_ms < st->reconnect_min_ms
                               ? st->reconnect_min_ms
                               : config->redis.reconnect_max_ms;
}

static void secret_free(char *secret)
{
    if (secret != NULL)
        explicit_bzero(secret, strlen(secret));
    free(secret);
}

static void settings_free(struct sentinel_settings *st)
{
    for (size_t i = 0; i < st->count; i++)
        free(st->sentinels[i].host);
    free(st->sentinels);
    free(st->master_name);
    secret_free(st->password);
    free(st->redis_username);
    secret_free(st->redis_password);
    memset(st, 0, sizeof(*st));
}

/* True when a and b reach the same sentinels for the same master with the
 * same credentials. */
static bool settings_same(const struct sentinel_settings *a, const struct sentinel_settings *b)
{
    if (a->count != b->count || strcmp(a->master_name, b->master_name) != 0 ||
        strcmp(a->password, b->password) != 0 ||
        strcmp(a->redis_username, b->redis_username) != 0 ||
        strcmp(a->redis_password, b->redis_password) != 0)
        return false;
    for (size_t i = 0; i < a->count; i++) {
        if (strcmp(a->sentinels[i].host, b->sentinels[i].host) != 0 ||
            a->sentinels[i].port != b->sentinels[i].port)
            return false;
    }
    return true;
}

static uint64_t backoff_ms(struct sentinel *s, unsigned failures)
{
    return redis_link_backoff_ms(s->settings.reconnect_min_ms, s->settings.reconnect_max_ms,
                                 failures, &s->rng);
}

static void timer_add(struct event *timer, uint64_t delay_ms)
{
    struct timeval tv = util_timeval_from_ms(delay_ms);
    evtimer_add(timer, &tv);
}

/* Connects to host:port, attaches to the loop and sends AUTH when a password
 * is given. Returns the context (data = s), or NULL with why filled. */
static redisAsyncContext *connect_to(struct sentinel *s, const char *host, unsigned port,
                                     const char *username, const char *password,
                                     redisConnectCallback *on_connect,
                                     redisDisconnectCallback *on_disconnect,
                                     redisCallbackFn *on_auth, char *why, size_t why_size)
{
    redisAsyncContext *ac = redisAsyncConnect(host, (int)port);
    if (ac == NULL) {
        snprintf(why, why_size, "cannot allocate a hiredis context");
        return NULL;
    }
    if (ac->err) {
        snprintf(why, why_size, "%s", ac->errstr);
        redisAsyncFree(ac); /* no callback ran: ours to free */
        return NULL;
    }
    redisEnableKeepAlive(&ac->c);
    if (redisLibeventAttach(ac, s->base) != REDIS_OK) {
        snprintf(why, why_size, "cannot attach to the event loop");
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = s;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    int sent = REDIS_OK;
    if (username != NULL && username[0] != '\0')
        sent = redisAsyncCommand(ac, on_auth, NULL, "AUTH %b %b", username, strlen(username),
                                 password, strlen(password));
    else if (password[0] != '\0')
        sent = redisAsyncCommand(ac, on_auth, NULL, "AUTH %b", password, strlen(password));
    if (sent != REDIS_OK) {
        snprintf(why, why_size, "cannot send AUTH");
        ac->data = NULL;
        redisAsyncFree(ac);
        return NULL;
    }
    return ac;
}

/* Gives up a context from the loop: its callbacks, run while hiredis frees
 * it, see data == NULL and do nothing. */
static void context_free(redisAsyncContext **slot)
{
    redisAsyncContext *ac = *slot;
    if (ac == NULL)
        return;
    *slot = NULL;
    ac->data = NULL;
    redisAsyncFree(ac);
}

/* ---- the query ---- */

static struct sentinel *query_of(const redisAsyncContext *ac)
{
    struct sentinel *s = ac->data;
    if (s == NULL || s->query_ac != ac || s->result.done)
        return NULL;
    return s;
}

static void query_finish(struct sentinel *s, bool ok, bool answered, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Records the conversation's outcome; query_run() goes on from the loop. */
static void query_finish(struct sentinel *s, bool ok, bool answered, const char *fmt, ...)
{
    s->result.done = true;
    s->result.ok = ok;
    s->result.answered = answered;
    va_list args;
    va_start(args, fmt);
    vsnprintf(s->result.error, sizeof(s->result.error), fmt, args);
    va_end(args);
    event_active(s->query_event, EV_TIMEOUT, 0);
}

static const char *query_target(const struct sentinel *s, char *buf, size_t size)
{
    if (s->step == QUERY_VERIFYING)
        snprintf(buf, size, "master %s:%u", s->candidate_host, s->candidate_port);
    else
        snprintf(buf, size, "sentinel %s:%u", s->settings.sentinels[s->asking].host,
                 s->settings.sentinels[s->asking].port);
    return buf;
}

static void query_on_connect(const redisAsyncContext *cac, int status)
{
    struct sentinel *s = query_of(cac);
    if (s == NULL || status == REDIS_OK)
        return;
    /* hiredis frees the context when this returns */
    ((redisAsyncContext *)cac)->data = NULL;
    s->query_ac = NULL;
    char target[SENTINEL_HOST_MAX + 32];
    query_finish(s, false, false, "%s: %s", query_target(s, target, sizeof(target)),
                 cac->c.err ? cac->c.errstr : "connect failed");
}

static void query_on_disconnect(const redisAsyncContext *cac, int status)
{
    (void)status;
    struct sentinel *s = cac->data;
    if (s == NULL || s->query_ac != cac)
        return;
    /* hiredis frees the context when this returns */
    ((redisAsyncContext *)cac)->data = NULL;
    s->query_ac = NULL;
    if (s->result.done)
        return;
    char target[SENTINEL_HOST_MAX + 32];
    query_finish(s, false, false, "%s: %s", query_target(s, target, sizeof(target)),
                 cac->c.err ? cac->c.errstr : "connection closed");
}

static void query_on_auth(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    redisReply *reply = r;
    struct sentinel *s = query_of(ac);
    if (s == NULL || reply == NULL || reply->type != REDIS_REPLY_ERROR)
        return;
    char target[SENTINEL_HOST_MAX + 32];
    query_finish(s, false, true, "%s: AUTH refused: %s (check %s)",
                 query_target(s, target, sizeof(target)), reply->str,
                 s->step == QUERY_VERIFYING ? "redis.username and redis.password"
                                            : "redis.sentinel_password");
}

static bool is_string(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_STRING || reply->type == REDIS_REPLY_STATUS;
}

static void query_on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    redisReply *reply = r;
    struct sentinel *s = query_of(ac);
    if (s == NULL || reply == NULL)
        return;
    char target[SENTINEL_HOST_MAX + 32];
    query_target(s, target, sizeof(target));
    if (reply->type == REDIS_REPLY_ERROR) {
        query_finish(s, false, true, "%s: %s", target, reply->str);
        return;
    }
    if (s->step == QUERY_ASKING) {
        if (reply->type == REDIS_REPLY_NIL) {
            query_finish(s, false, true,
                         "%s knows no master named '%s' (check redis.master_name)", target,
                         s->settings.master_name);
            return;
        }
        char *end = NULL;
        unsigned long port = 0;
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
            is_string(reply->element[0]) && is_string(reply->element[1]) &&
            reply->element[0]->len > 0 && reply->element[0]->len < SENTINEL_HOST_MAX)
            port = strtoul(reply->element[1]->str, &end, 10);
        if (end == NULL || *end != '\0' || port == 0 || port > 65535) {
            query_finish(s, false, true, "%s: unexpected answer to SENTINEL "
                         "GET-MASTER-ADDR-BY-NAME", target);
            return;
        }
        snprintf(s->result.host, sizeof(s->result.host), "%s", reply->element[0]->str);
        s->result.port = (unsigned)port;
        query_finish(s, true, true, "%s", "");
        return;
    }
    /* ROLE: ["master", offset, replicas] on a master */
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 && is_string(reply->element[0]) &&
        strcmp(reply->element[0]->str, "master") == 0) {
        query_finish(s, true, true, "%s", "");
        return;
    }
    const char *role = reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
                               is_string(reply->element[0])
                           ? reply->element[0]->str
                           : "unknown role";
    query_finish(s, false, true, "sentinel %s:%u names %s as master of '%s', but it is a %s",
                 s->settings.sentinels[s->asking].host, s->settings.sentinels[s->asking].port,
                 target, s->settings.master_name, role);
}

/* Starts the conversation of the current step (ASKING or VERIFYING). A
 * failure to even start is reported like any other, through query_event. */
static void query_open(struct sentinel *s)
{
    const struct sentinel_settings *st = &s->settings;
    const char *host, *username, *password;
    unsigned port;
    memset(&s->result, 0, sizeof(s->result));
    if (s->step == QUERY_ASKING) {
        host = st->sentinels[s->asking].host;
        port = st->sentinels[s->asking].port;
        username = NULL;
        password = st->password;
    } else {
        host = s->candidate_host;
        port = s->candidate_port;
        username = st->redis_username;
        password = st->redis_password;
    }
    char why[SENTINEL_ERROR_MAX];
    redisAsyncContext *ac = connect_to(s, host, port, username, password, query_on_connect,
                                       query_on_disconnect, query_on_auth, why, sizeof(why));
    if (ac == NULL) {
        char target[SENTINEL_HOST_MAX + 32];
        query_finish(s, false, false, "%s: %s", query_target(s, target, sizeof(target)), why);
        return;
    }
    int sent;
    if (s->step == QUERY_ASKING)
        sent = redisAsyncCommand(ac, query_on_reply, NULL, "SENTINEL GET-MASTER-ADDR-BY-NAME %b",
                                 st->master_name, strlen(st->master_name));
    else
        sent = redisAsyncCommand(ac, query_on_reply, NULL, "ROLE");
    s->query_ac = ac;
    if (sent != REDIS_OK) {
        query_finish(s, false, false, "cannot send the query");
        return;
    }
    if (st->connect_timeout_ms > 0)
        timer_add(s->query_timeout, st->connect_timeout_ms);
}

/* The master is verified: publish it and tell the watchers if it moved. */
static void query_adopt(struct sentinel *s)
{
    pthread_mutex_lock(&shared_lock);
    bool had = shared.known;
    char old_host[SENTINEL_HOST_MAX];
    unsigned old_port = shared.port;
    snprintf(old_host, sizeof(old_host), "%s", shared.host);
    bool changed = !had || shared.port != s->candidate_port ||
                   strcmp(shared.host, s->candidate_host) != 0;
    if (changed) {
        snprintf(shared.host, sizeof(shared.host), "%s", s->candidate_host);
        shared.port = s->candidate_port;
        shared.known = true;
        if (had)
            shared.switches++;
    }
    shared.problem[0] = '\0';
    pthread_mutex_unlock(&shared_lock);

    s->step = QUERY_IDLE;
    s->query_failures = 0;
    s->preferred = s->asking;
    if (!changed)
        return;
    if (had)
        log_notice("sentinel: master '%s' moved from %s:%u to %s:%u", s->settings.master_name,
                   old_host, old_port, s->candidate_host, s->candidate_port);
    else
        log_notice("sentinel: master '%s' is %s:%u", s->settings.master_name, s->candidate_host,
                   s->candidate_port);
    for (size_t i = 0; i < watcher_count; i++)
        watchers[i].fn(watchers[i].arg);
}

/* The current sentinel gave nothing usable: ask the next, or end the round
 * and wait for the backoff. */
static void query_next(struct sentinel *s)
{
    const char *error = s->result.error;
    if (s->round_error[0] == '\0' || (s->result.answered && !s->round_error_answered)) {
        snprintf(s->round_error, sizeof(s->round_error), "%s", error);
        s->round_error_answered = s->result.answered;
    }
    log_debug("sentinel: %s", error);
    if (++s->asked < s->settings.count) {
        s->asking = (s->asking + 1) % s->settings.count;
        s->step = QUERY_ASKING;
        query_open(s);
        return;
    }
    uint64_t delay = backoff_ms(s, s->query_failures);
    if (s->query_failures < 64)
        s->query_failures++;
    char problem[SENTINEL_ERROR_MAX + 64];
    snprintf(problem, sizeof(problem), "no usable master '%s' from %zu sentinel%s: %s",
             s->settings.master_name, s->settings.count, s->settings.count == 1 ? "" : "s",
             s->round_error);
    set_problem(problem);
    /* An answer that names no usable master (a wrong master_name, a replica)
     * is an error to fix; sentinels or a master out of reach may be a
     * failover under way. */
    log_limited(&s->query_limit, SENTINEL_LOG_INTERVAL_MS,
                s->round_error_answered ? LOG_LEVEL_ERROR : LOG_LEVEL_WARNING,
                "sentinel: %s; asking again in %llu ms", problem, (unsigned long long)delay);
    s->step = QUERY_WAITING;
    timer_add(s->query_retry, delay);
}

/* Moves the query on. From the loop only (events and timers). */
static void query_run(struct sentinel *s)
{
    if (s->switch_pending) {
        /* a +switch-master: verify the new master at once, whatever ran */
        s->switch_pending = false;
        evtimer_del(s->query_timeout);
        evtimer_del(s->query_retry);
        context_free(&s->query_ac);
        snprintf(s->candidate_host, sizeof(s->candidate_host), "%s", s->switch_host);
        s->candidate_port = s->switch_port;
        s->asking = s->watch_index;
        s->asked = 0;
        s->round_error[0] = '\0';
        s->round_error_answered = false;
        s->step = QUERY_VERIFYING;
        query_open(s);
        return;
    }
    if (s->step == QUERY_START) {
        s->asking = s->preferred < s->settings.count ? s->preferred : 0;
        s->asked = 0;
        s->round_error[0] = '\0';
        s->round_error_answered = false;
        s->step = QUERY_ASKING;
        query_open(s);
        return;
    }
    if ((s->step != QUERY_ASKING && s->step != QUERY_VERIFYING) || !s->result.done)
        return;
    evtimer_del(s->query_timeout);
    context_free(&s->query_ac);
    if (!s->result.ok) {
        query_next(s);
        return;
    }
    if (s->step == QUERY_ASKING) {
        snprintf(s->candidate_host, sizeof(s->candidate_host), "%s", s->result.host);
        s->candidate_port = s->result.port;
        s->step = QUERY_VERIFYING;
        query_open(s);
        return;
    }
    query_adopt(s);
}

static void query_kick(struct sentinel *s)
{
    if (s->step != QUERY_IDLE)
        return; /* running, or waiting for its backoff */
    s->step = QUERY_START;
    event_active(s->query_event, EV_TIMEOUT, 0);
}

static void query_event_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    query_run(arg);
}

static void query_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sentinel *s = arg;
    if (s->step != QUERY_WAITING)
        return;
    s->step = QUERY_START;
    query_run(s);
}

static void query_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sentinel *s = arg;
    if (s->query_ac == NULL || s->result.done)
        return;
    char target[SENTINEL_HOST_MAX + 32];
    query_finish(s, false, false, "%s: no answer within %llu ms",
                 query_target(s, target, sizeof(target)),
                 (unsigned long long)s->settings.connect_timeout_ms);
}

/* ---- the watch ---- */

static void watch_open(struct sentinel *s);

/* The watch connection is gone (the context already freed or being freed):
 * try the next sentinel after the backoff, and ask again for the master,
 * since a switch may have been missed. */
static void watch_lost(struct sentinel *s, const char *reason)
{
    const struct sentinel_address *a = &s->settings.sentinels[s->watch_index];
    bool was_subscribed = s->watch_subscribed;
    s->watch_subscribed = false;
    s->watch_drop = false;
    evtimer_del(s->watch_timeout);
    event_del(s->watch_drop_event);
    if (was_subscribed)
        s->watch_failures = 0;
    uint64_t delay = backoff_ms(s, s->watch_failures);
    if (s->watch_failures < 64)
        s->watch_failures++;
    if (was_subscribed)
        log_warn("sentinel %s:%u: +switch-master watch lost: %s; retrying in %llu ms", a->host,
                 a->port, reason, (unsigned long long)delay);
    else
        log_limited(&s->watch_limit, SENTINEL_LOG_INTERVAL_MS, LOG_LEVEL_WARNING,
                    "sentinel %s:%u: cannot watch +switch-master: %s; retrying in %llu ms",
                    a->host, a->port, reason, (unsigned long long)delay);
    s->watch_index = (s->watch_index + 1) % s->settings.count;
    timer_add(s->watch_retry, delay);
    if (was_subscribed)
        query_kick(s);
}

static struct sentinel *watch_of(const redisAsyncContext *ac)
{
    struct sentinel *s = ac->data;
    if (s == NULL || s->watch_ac != ac || s->watch_drop)
        return NULL;
    return s;
}

/* From inside a watch callback: the context is freed by watch_drop_event. */
static void watch_drop_later(struct sentinel *s, const char *reason)
{
    s->watch_drop = true;
    snprintf(s->watch_reason, sizeof(s->watch_reason), "%s", reason);
    event_active(s->watch_drop_event, EV_TIMEOUT, 0);
}

static void watch_drop_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sentinel *s = arg;
    if (!s->watch_drop)
        return;
    char reason[SENTINEL_ERROR_MAX];
    snprintf(reason, sizeof(reason), "%s", s->watch_reason);
    context_free(&s->watch_ac);
    watch_lost(s, reason);
}

static void watch_on_connect(const redisAsyncContext *cac, int status)
{
    struct sentinel *s = cac->data;
    if (s == NULL || s->watch_ac != cac || status == REDIS_OK)
        return;
    /* hiredis frees the context when this returns */
    char reason[SENTINEL_ERROR_MAX];
    snprintf(reason, sizeof(reason), "%s", cac->c.err ? cac->c.errstr : "connect failed");
    ((redisAsyncContext *)cac)->data = NULL;
    s->watch_ac = NULL;
    watch_lost(s, reason);
}

static void watch_on_disconnect(const redisAsyncContext *cac, int status)
{
    (void)status;
    struct sentinel *s = cac->data;
    if (s == NULL || s->watch_ac != cac)
        return;
    /* hiredis frees the context when this returns */
    char reason[SENTINEL_ERROR_MAX];
    snprintf(reason, sizeof(reason), "%s",
             s->watch_drop ? s->watch_reason : cac->c.err ? cac->c.errstr : "connection closed");
    ((redisAsyncContext *)cac)->data = NULL;
    s->watch_ac = NULL;
    watch_lost(s, reason);
}

static void watch_on_auth(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    redisReply *reply = r;
    struct sentinel *s = watch_of(ac);
    if (s == NULL || reply == NULL || reply->type != REDIS_REPLY_ERROR)
        return;
    char reason[SENTINEL_ERROR_MAX];
    snprintf(reason, sizeof(reason), "AUTH refused: %s (check redis.sentinel_password)",
             reply->str);
    watch_drop_later(s, reason);
}

/* "+switch-master" payload: "<name> <old-ip> <old-port> <new-ip> <new-port>". */
static void watch_switch(struct sentinel *s, const char *payload)
{
    char name[256], old_host[SENTINEL_HOST_MAX], new_host[SENTINEL_HOST_MAX];
    unsigned old_port, new_port;
    if (sscanf(payload, "%255s %255s %u %255s %u", name, old_host, &old_port, new_host,
               &new_port) != 5 ||
        new_port == 0 || new_port > 65535) {
        log_warn("sentinel: ignored a +switch-master message it cannot read: %.200s", payload);
        return;
    }
    if (strcmp(name, s->settings.master_name) != 0)
        return;
    log_notice("sentinel: +switch-master '%s' from %s:%u to %s:%u", name, old_host, old_port,
               new_host, new_port);
    snprintf(s->switch_host, sizeof(s->switch_host), "%s", new_host);
    s->switch_port = new_port;
    s->switch_pending = true;
    event_active(s->query_event, EV_TIMEOUT, 0);
}

static void watch_on_message(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    redisReply *reply = r;
    struct sentinel *s = watch_of(ac);
    if (s == NULL || reply == NULL)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        char reason[SENTINEL_ERROR_MAX];
        snprintf(reason, sizeof(reason), "SUBSCRIBE refused: %s", reply->str);
        watch_drop_later(s, reason);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        !is_string(reply->element[0]))
        return;
    const char *kind = reply->element[0]->str;
    if (strcmp(kind, "subscribe") == 0) {
        const struct sentinel_address *a = &s->settings.sentinels[s->watch_index];
        evtimer_del(s->watch_timeout);
        s->watch_subscribed = true;
        s->watch_failures = 0;
        log_info("sentinel %s:%u: watching +switch-master", a->host, a->port);
        query_kick(s); /* a switch may have happened while nobody watched */
    } else if (strcmp(kind, "message") == 0 && is_string(reply->element[2])) {
        watch_switch(s, reply->element[2]->str);
    }
}

static void watch_open(struct sentinel *s)
{
    const struct sentinel_address *a = &s->settings.sentinels[s->watch_index];
    char why[SENTINEL_ERROR_MAX];
    redisAsyncContext *ac = connect_to(s, a->host, a->port, NULL, s->settings.password,
                                       watch_on_connect, watch_on_disconnect, watch_on_auth, why,
                                       sizeof(why));
    if (ac == NULL) {
        watch_lost(s, why);
        return;
    }
    s->watch_ac = ac;
    if (redisAsyncCommand(ac, watch_on_message, NULL, "SUBSCRIBE +switch-master") != REDIS_OK) {
        context_free(&s->watch_ac);
        watch_lost(s, "cannot send SUBSCRIBE");
        return;
    }
    if (s->settings.connect_timeout_ms > 0)
        timer_add(s->watch_timeout, s->settings.connect_timeout_ms);
}

static void watch_retry_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sentinel *s = arg;
    if (s->watch_ac == NULL)
        watch_open(s);
}

static void watch_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sentinel *s = arg;
    if (s->watch_ac == NULL || s->watch_subscribed)
        return;
    char reason[SENTINEL_ERROR_MAX];
    snprintf(reason, sizeof(reason), "not subscribed within %llu ms",
             (unsigned long long)s->settings.connect_timeout_ms);
    context_free(&s->watch_ac);
    watch_lost(s, reason);
}

/* ---- lifecycle ---- */

/* Drops both connections and starts over from the loop. */
static void sentinel_restart(struct sentinel *s)
{
    evtimer_del(s->query_timeout);
    evtimer_del(s->query_retry);
    evtimer_del(s->watch_timeout);
    evtimer_del(s->watch_retry);
    event_del(s->query_event);
    event_del(s->watch_drop_event);
    context_free(&s->query_ac);
    context_free(&s->watch_ac);
    s->switch_pending = false;
    s->watch_drop = false;
    s->watch_subscribed = false;
    s->watch_index = 0;
    s->watch_failures = 0;
    s->preferred = 0;
    s->query_failures = 0;
    s->step = QUERY_WAITING;
    timer_add(s->query_retry, 0);
    timer_add(s->watch_retry, 0);
}

struct sentinel *sentinel_start(struct event_base *base, const struct config *config)
{
    if (config->redis.sentinels.count == 0)
        return NULL;
    if (running != NULL)
        log_fatal("sentinel_start: a sentinel already runs");
    struct sentinel *s = xcalloc(1, sizeof(*s));
    s->base = base;
    settings_load(&s->settings, config);
    s->rng = util_monotonic_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)s;
    if (s->rng == 0)
        s->rng = 0x9E3779B97F4A7C15ULL;
    s->query_timeout = evtimer_new(base, query_timeout_cb, s);
    s->query_retry = evtimer_new(base, query_retry_cb, s);
    s->query_event = event_new(base, -1, 0, query_event_cb, s);
    s->watch_timeout = evtimer_new(base, watch_timeout_cb, s);
    s->watch_retry = evtimer_new(base, watch_retry_cb, s);
    s->watch_drop_event = event_new(base, -1, 0, watch_drop_cb, s);
    if (s->query_timeout == NULL || s->query_retry == NULL || s->query_event == NULL ||
        s->watch_timeout == NULL || s->watch_retry == NULL || s->watch_drop_event == NULL)
        log_fatal("out of memory creating the sentinel events");
    pthread_mutex_lock(&shared_lock);
    shared.known = false;
    shared.switches = 0;
    shared.problem[0] = '\0';
    pthread_mutex_unlock(&shared_lock);
    running = s;
    sentinel_restart(s);
    return s;
}

void sentinel_reconfigure(struct sentinel *s, const struct config *config)
{
    struct sentinel_settings next;
    settings_load(&next, config);
    bool same = settings_same(&s->settings, &next);
    settings_free(&s->settings);
    s->settings = next;
    if (same)
        return;
    log_info("sentinel: settings changed, asking the sentinels again");
    /* the links wait for the new answer rather than use the old master */
    pthread_mutex_lock(&shared_lock);
    shared.known = false;
    shared.problem[0] = '\0';
    pthread_mutex_unlock(&shared_lock);
    sentinel_restart(s);
}

void sentinel_stop(struct sentinel *s)
{
    if (s == NULL)
        return;
    context_free(&s->query_ac);
    context_free(&s->watch_ac);
    event_free(s->query_timeout);
    event_free(s->query_retry);
    event_free(s->query_event);
    event_free(s->watch_timeout);
    event_free(s->watch_retry);
    event_free(s->watch_drop_event);
    settings_free(&s->settings);
    free(s);
    running = NULL;
    pthread_mutex_lock(&shared_lock);
    shared.known = false;
    shared.problem[0] = '\0';
    pthread_mutex_unlock(&shared_lock);
}
