/* subscriber.c - the invalidation stream: one hiredis async pub/sub connection
 * on the main event loop, made again with backoff whenever it fails.
 *
 * hiredis 0.14 owns its async context: it frees it itself after a failed
 * connect and right after the disconnect callback. So this file never frees a
 * context from inside a hiredis callback: a callback that wants the connection
 * gone asks for a drop, which a libevent event carries out from the loop. A
 * context this file gives up on has its `data` cleared first, so the NULL
 * replies and the disconnect callback hiredis runs while freeing it are
 * ignored. */
#include "subscriber.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "config.h"
#include "log.h"
#include "util.h"

/* A delay below this would come close to spinning against a dead server. */
#define SUB_MIN_DELAY_MS 10
/* Repeated connect failures log at most one line per interval. */
#define SUB_LOG_INTERVAL_MS 10000
#define SUB_REASON_MAX 256

/* What the subscriber copies out of the config. */
struct sub_settings {
    char *host;
    unsigned port;
    char *unix_path; /* "" : TCP to host:port */
    char *username;
    char *password;
    struct config_strings channels;
    struct config_strings patterns;
    uint64_t connect_timeout_ms; /* 0: none */
    uint64_t reconnect_min_ms;
    uint64_t reconnect_max_ms;
};

enum sub_state {
    SUB_IDLE,           /* no context: waiting for the retry timer */
    SUB_CONNECTING,     /* context made, connect(2) in progress */
    SUB_AUTHENTICATING, /* AUTH sent */
    SUB_SUBSCRIBING,    /* (P)SUBSCRIBE sent, confirmations pending */
    SUB_SUBSCRIBED,     /* every channel and pattern confirmed */
};

struct subscriber {
    struct event_base *base;
    struct subscriber_callbacks callbacks;
    struct sub_settings settings;

    redisAsyncContext *ac; /* owned by hiredis once connected; NULL while idle */
    enum sub_state state;
    size_t confirmations_pending;

    /* A drop asked for from inside a hiredis callback, done by drop_event. */
    bool drop_requested;
    char drop_reason[SUB_REASON_MAX];
    /* The next retry happens at once (a reconfigure, not a failure). */
    bool retry_now;

    struct event *retry_timer;   /* starts the next attempt */
    struct event *timeout_timer; /* connect_timeout of the current attempt */
    struct event *drop_event;

    unsigned failures;    /* consecutive failed attempts since the last loss or success */
    bool ever_subscribed;
    bool loss_reported;   /* on_disconnected already called for this outage */
    uint64_t reconnects;
    uint64_t down_since_ms;
    uint64_t rng;

    struct log_ratelimit fail_limit;
    struct log_ratelimit auth_limit;
};

static void sub_strings_copy(struct config_strings *to, const struct config_strings *from)
{
    to->count = from->count;
    to->items = xcalloc(from->count, sizeof(char *));
    for (size_t i = 0; i < from->count; i++)
        to->items[i] = xstrdup(from->items[i]);
}

static void sub_strings_free(struct config_strings *strings)
{
    for (size_t i = 0; i < strings->count; i++)
        free(strings->items[i]);
    free(strings->items);
    strings->items = NULL;
    strings->count = 0;
}

static bool sub_strings_equal(const struct config_strings *a, const struct config_strings *b)
{
    if (a->count != b->count)
        return false;
    for (size_t i = 0; i < a->count; i++) {
        if (strcmp(a->items[i], b->items[i]) != 0)
            return false;
    }
    return true;
}

static const char *sub_or_empty(const char *s)
{
    return s != NULL ? s : "";
}

static void sub_settings_load(struct sub_settings *s, const struct config *config)
{
    s->host = xstrdup(sub_or_empty(config->redis.host));
    s->port = config->redis.port;
    s->unix_path = xstrdup(sub_or_empty(config->redis.unix_path));
    s->username = xstrdup(sub_or_empty(config->redis.username));
    s->password = xstrdup(sub_or_empty(config->redis.password));
    sub_strings_copy(&s->channels, &config->redis.channels);
    sub_strings_copy(&s->patterns, &config->redis.patterns);
    s->connect_timeout_ms = config->redis.connect_timeout_ms;
    s->reconnect_min_ms = config->redis.reconnect_min_ms;
    if (s->reconnect_min_ms < SUB_MIN_DELAY_MS)
        s->reconnect_min_ms = SUB_MIN_DELAY_MS;
    s->reconnect_max_ms = config->redis.reconnect_max_ms;
    if (s->reconnect_max_ms < s->reconnect_min_ms)
        s->reconnect_max_ms = s->reconnect_min_ms;
}

static void sub_settings_free(struct sub_settings *s)
{
    free(s->host);
    free(s->unix_path);
    free(s->username);
    free(s->password);
    sub_strings_free(&s->channels);
    sub_strings_free(&s->patterns);
    memset(s, 0, sizeof(*s));
}

/* Returns NULL when the settings are usable, else what is wrong with them. */
static const char *sub_settings_problem(const struct sub_settings *s)
{
    if (s->channels.count == 0 && s->patterns.count == 0)
        return "no channels and no patterns to subscribe to";
    if (s->unix_path[0] == '\0' && s->host[0] == '\0')
        return "neither redis.unix nor redis.host is set";
    if (s->unix_path[0] == '\0' && (s->port == 0 || s->port > 65535))
        return "redis.port is out of range";
    if (s->channels.count + s->patterns.count >= (size_t)1 << 20)
        return "too many channels and patterns";
    return NULL;
}

/* True when both settings reach the same server with the same identity and
 * the same subscriptions: only then can a reload keep the connection. */
static bool sub_settings_same_connection(const struct sub_settings *a, const struct sub_settings *b)
{
    if (strcmp(a->unix_path, b->unix_path) != 0)
        return false;
    if (a->unix_path[0] == '\0' && (strcmp(a->host, b->host) != 0 || a->port != b->port))
        return false;
    return strcmp(a->username, b->username) == 0 && strcmp(a->password, b->password) == 0 &&
           sub_strings_equal(&a->channels, &b->channels) &&
           sub_strings_equal(&a->patterns, &b->patterns);
}

/* "unix:/path" or "host:port", for log lines. */
static const char *sub_address(const struct subscriber *sub, char *buf, size_t size)
{
    const struct sub_settings *s = &sub->settings;
    if (s->unix_path[0] != '\0')
        snprintf(buf, size, "unix:%s", s->unix_path);
    else
        snprintf(buf, size, "%s:%u", s->host, s->port);
    return buf;
}

/* xorshift64*: jitter needs to be spread, not unpredictable. */
static uint64_t sub_random(struct subscriber *sub)
{
    uint64_t x = sub->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    sub->rng = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* The delay before the next attempt: reconnect_min doubled per consecutive
 * failure up to reconnect_max, then drawn uniformly from its upper half (never
 * below reconnect_min), so that many daemons restarted together by one Redis
 * outage do not reconnect in lockstep. */
static uint64_t sub_backoff_ms(struct subscriber *sub)
{
    uint64_t min = sub->settings.reconnect_min_ms;
    uint64_t max = sub->settings.reconnect_max_ms;
    uint64_t ceiling = min;
    for (unsigned i = 0; i < sub->failures && ceiling < max; i++)
        ceiling *= 2;
    if (ceiling > max)
        ceiling = max;
    uint64_t floor = ceiling / 2 > min ? ceiling / 2 : min;
    return floor + sub_random(sub) % (ceiling - floor + 1);
}

static void sub_timer_add(struct event *timer, uint64_t delay_ms)
{
    struct timeval tv = {
        .tv_sec = (time_t)(delay_ms / 1000),
        .tv_usec = (suseconds_t)((delay_ms % 1000) * 1000),
    };
    evtimer_add(timer, &tv);
}

/* The connection attempt or the connection itself is over, and the context is
 * already gone (or hiredis frees it when the current callback returns).
 * Schedules the next attempt and reports the outage once. */
static void sub_failed(struct subscriber *sub, const char *why)
{
    char reason[SUB_REASON_MAX];
    char address[300];
    snprintf(reason, sizeof(reason), "%s", why);
    sub_address(sub, address, sizeof(address));

    bool was_up = sub->state == SUB_SUBSCRIBED;
    sub->state = SUB_IDLE;
    sub->confirmations_pending = 0;
    sub->drop_requested = false;
    evtimer_del(sub->timeout_timer);
    event_del(sub->drop_event);

    if (was_up) {
        sub->down_since_ms = util_monotonic_ms();
        sub->failures = 0;
    }
    uint64_t delay = sub->retry_now ? 0 : sub_backoff_ms(sub);
    sub->retry_now = false;
    if (!was_up && sub->failures < 64)
        sub->failures++;
    if (was_up)
        log_warn("redis %s: subscription lost: %s; reconnecting in %llu ms", address, reason,
                 (unsigned long long)delay);
    else
        log_limited(&sub->fail_limit, SUB_LOG_INTERVAL_MS, LOG_LEVEL_WARNING,
                    "redis %s: cannot subscribe: %s; retrying in %llu ms", address, reason,
                    (unsigned long long)delay);
    sub_timer_add(sub->retry_timer, delay);

    if (!sub->loss_reported) {
        sub->loss_reported = true;
        if (sub->callbacks.on_disconnected != NULL)
            sub->callbacks.on_disconnected(sub->callbacks.arg, reason);
    }
}

/* Gives up the current context. Only from outside hiredis callbacks: it frees
 * the context at once. */
static void sub_drop(struct subscriber *sub, const char *reason)
{
    redisAsyncContext *ac = sub->ac;
    if (ac == NULL)
        return;
    sub->ac = NULL;
    ac->data = NULL;
    redisAsyncFree(ac);
    sub_failed(sub, reason);
}

/* Asks for sub_drop() from the loop; safe inside hiredis callbacks. */
static void sub_drop_later(struct subscriber *sub, const char *reason)
{
    if (sub->drop_requested)
        return;
    sub->drop_requested = true;
    snprintf(sub->drop_reason, sizeof(sub->drop_reason), "%s", reason);
    event_active(sub->drop_event, EV_TIMEOUT, 0);
}

static void sub_drop_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct subscriber *sub = arg;
    if (!sub->drop_requested)
        return;
    char reason[SUB_REASON_MAX];
    snprintf(reason, sizeof(reason), "%s", sub->drop_reason);
    sub->drop_requested = false;
    sub_drop(sub, reason);
}

/* The context behind a hiredis callback, or NULL when this file already gave
 * it up (it is being freed) or a drop is pending. */
static struct subscriber *sub_of(const redisAsyncContext *ac)
{
    struct subscriber *sub = ac->data;
    if (sub == NULL || sub->ac != ac || sub->drop_requested)
        return NULL;
    return sub;
}

static void sub_established(struct subscriber *sub)
{
    char address[300];
    evtimer_del(sub->timeout_timer);
    bool first = !sub->ever_subscribed;
    sub->state = SUB_SUBSCRIBED;
    sub->ever_subscribed = true;
    if (!first)
        sub->reconnects++;
    sub->down_since_ms = 0;
    sub->failures = 0;
    sub->loss_reported = false;
    log_info("redis %s: subscribed to %zu channel(s) and %zu pattern(s)%s",
             sub_address(sub, address, sizeof(address)), sub->settings.channels.count,
             sub->settings.patterns.count, first ? "" : " again");
    if (sub->callbacks.on_subscribed != NULL)
        sub->callbacks.on_subscribed(sub->callbacks.arg, first);
}

static void sub_on_pubsub(redisAsyncContext *ac, void *r, void *privdata);

/* Sends one SUBSCRIBE or PSUBSCRIBE with every name as a binary-safe argument.
 * Returns 0, or -1 when hiredis refuses (the context is going away). */
static int sub_send_names(redisAsyncContext *ac, const char *command,
                          const struct config_strings *names)
{
    if (names->count == 0)
        return 0;
    size_t argc = names->count + 1;
    const char **argv = xcalloc(argc, sizeof(char *));
    size_t *lens = xcalloc(argc, sizeof(size_t));
    argv[0] = command;
    lens[0] = strlen(command);
    for (size_t i = 0; i < names->count; i++) {
        argv[i + 1] = names->items[i];
        lens[i + 1] = strlen(names->items[i]);
    }
    int status = redisAsyncCommandArgv(ac, sub_on_pubsub, NULL, (int)argc, argv, lens);
    free(argv);
    free(lens);
    return status == REDIS_OK ? 0 : -1;
}

static void sub_subscribe(struct subscriber *sub)
{
    sub->state = SUB_SUBSCRIBING;
    sub->confirmations_pending = sub->settings.channels.count + sub->settings.patterns.count;
    if (sub_send_names(sub->ac, "SUBSCRIBE", &sub->settings.channels) != 0 ||
        sub_send_names(sub->ac, "PSUBSCRIBE", &sub->settings.patterns) != 0)
        sub_drop_later(sub, "cannot send SUBSCRIBE");
}

static void sub_on_auth(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    redisReply *reply = r;
    struct subscriber *sub = sub_of(ac);
    if (sub == NULL || reply == NULL) /* NULL: the context is being freed */
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        char address[300];
        char reason[SUB_REASON_MAX];
        log_limited(&sub->auth_limit, SUB_LOG_INTERVAL_MS, LOG_LEVEL_WARNING,
                    "redis %s: AUTH%s%s refused: %s (check redis.username and "
                    "redis.password/password_file)",
                    sub_address(sub, address, sizeof(address)),
                    sub->settings.username[0] != '\0' ? " as " : "", sub->settings.username,
                    reply->str);
        snprintf(reason, sizeof(reason), "AUTH refused: %s", reply->str);
        sub_drop_later(sub, reason);
        return;
    }
    sub_subscribe(sub);
}

static void sub_deliver(struct subscriber *sub, const redisReply *channel,
                        const redisReply *payload)
{
    if (channel->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING) {
        log_warn("redis: pub/sub message with an unexpected reply type, ignored");
        return;
    }
    if (sub->callbacks.on_message != NULL)
        sub->callbacks.on_message(sub->callbacks.arg, channel->str, payload->str, payload->len);
}

/* The callback of SUBSCRIBE and PSUBSCRIBE: hiredis calls it for every
 * confirmation and then for every message on those channels and patterns. */
static void sub_on_pubsub(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    redisReply *reply = r;
    struct subscriber *sub = sub_of(ac);
    if (sub == NULL || reply == NULL)
        return;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING) {
        log_warn("redis: unexpected reply on the pub/sub connection (type %d), ignored",
                 reply->type);
        return;
    }
    /* Messages on the channels confirmed first can arrive before the last
     * confirmation: they are delivered, not held, as they are as current as
     * any that follow; the on_reconnect policy runs after them. */
    const char *type = reply->element[0]->str;
    if (strcasecmp(type, "message") == 0) {
        sub_deliver(sub, reply->element[1], reply->element[2]);
    } else if (strcasecmp(type, "pmessage") == 0 && reply->elements >= 4) {
        sub_deliver(sub, reply->element[2], reply->element[3]);
    } else if (strcasecmp(type, "subscribe") == 0 || strcasecmp(type, "psubscribe") == 0) {
        if (sub->state != SUB_SUBSCRIBING || sub->confirmations_pending == 0)
            return;
        if (--sub->confirmations_pending == 0)
            sub_established(sub);
    }
    /* unsubscribe confirmations: nothing to do, this file never unsubscribes */
}

static void sub_on_connect(const redisAsyncContext *cac, int status)
{
    struct subscriber *sub = cac->data;
    if (sub == NULL || sub->ac != cac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context when this returns (without calling the
         * disconnect callback: it never was connected). */
        char reason[SUB_REASON_MAX];
        if (sub->drop_requested)
            snprintf(reason, sizeof(reason), "%s", sub->drop_reason);
        else
            snprintf(reason, sizeof(reason), "%s",
                     cac->c.err ? cac->c.errstr : "connect failed");
        ((redisAsyncContext *)cac)->data = NULL;
        sub->ac = NULL;
        sub_failed(sub, reason);
        return;
    }
    if (sub->drop_requested)
        return;
    const struct sub_settings *s = &sub->settings;
    if (s->username[0] == '\0' && s->password[0] == '\0') {
        sub_subscribe(sub);
        return;
    }
    int sent;
    sub->state = SUB_AUTHENTICATING;
    if (s->username[0] != '\0')
        sent = redisAsyncCommand(sub->ac, sub_on_auth, NULL, "AUTH %b %b", s->username,
                                 strlen(s->username), s->password, strlen(s->password));
    else
        sent = redisAsyncCommand(sub->ac, sub_on_auth, NULL, "AUTH %b", s->password,
                                 strlen(s->password));
    if (sent != REDIS_OK)
        sub_drop_later(sub, "cannot send AUTH");
}

static void sub_on_disconnect(const redisAsyncContext *cac, int status)
{
    (void)status;
    struct subscriber *sub = cac->data;
    if (sub == NULL || sub->ac != cac)
        return;
    /* hiredis frees the context when this returns */
    char reason[SUB_REASON_MAX];
    if (sub->drop_requested)
        snprintf(reason, sizeof(reason), "%s", sub->drop_reason);
    else
        snprintf(reason, sizeof(reason), "%s",
                 cac->c.err ? cac->c.errstr : "connection closed");
    ((redisAsyncContext *)cac)->data = NULL;
    sub->ac = NULL;
    sub_failed(sub, reason);
}

static void sub_connect(struct subscriber *sub)
{
    const struct sub_settings *s = &sub->settings;
    char reason[SUB_REASON_MAX];
    redisAsyncContext *ac;
    if (s->unix_path[0] != '\0')
        ac = redisAsyncConnectUnix(s->unix_path);
    else
        ac = redisAsyncConnect(s->host, (int)s->port);
    if (ac == NULL) {
        sub_failed(sub, "cannot allocate a hiredis context");
        return;
    }
    if (ac->err) {
        /* Failed before any callback could run: ours to free. */
        snprintf(reason, sizeof(reason), "%s", ac->errstr);
        redisAsyncFree(ac);
        sub_failed(sub, reason);
        return;
    }
    if (s->unix_path[0] == '\0')
        redisEnableKeepAlive(&ac->c); /* notice a peer that vanished with the network */
    if (redisLibeventAttach(ac, sub->base) != REDIS_OK) {
        redisAsyncFree(ac);
        sub_failed(sub, "cannot attach to the event loop");
        return;
    }
    ac->data = sub;
    redisAsyncSetConnectCallback(ac, sub_on_connect);
    redisAsyncSetDisconnectCallback(ac, sub_on_disconnect);
    sub->ac = ac;
    sub->state = SUB_CONNECTING;
    if (s->connect_timeout_ms > 0)
        sub_timer_add(sub->timeout_timer, s->connect_timeout_ms);
}

static void sub_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct subscriber *sub = arg;
    if (sub->ac == NULL)
        sub_connect(sub);
}

/* connect_timeout covers the whole handshake, so that a Redis that accepts
 * but never answers (paused, overloaded) cannot hold the attempt forever. */
static void sub_timeout_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct subscriber *sub = arg;
    if (sub->ac == NULL || sub->state == SUB_SUBSCRIBED)
        return;
    static const char *const stage[] = {
        [SUB_IDLE] = "waiting",
        [SUB_CONNECTING] = "connecting",
        [SUB_AUTHENTICATING] = "authenticating",
        [SUB_SUBSCRIBING] = "subscribing",
        [SUB_SUBSCRIBED] = "subscribed",
    };
    char reason[SUB_REASON_MAX];
    snprintf(reason, sizeof(reason), "timed out after %llu ms %s",
             (unsigned long long)sub->settings.connect_timeout_ms, stage[sub->state]);
    sub_drop(sub, reason);
}

struct subscriber *sub_start(struct event_base *base, const struct config *config,
                             const struct subscriber_callbacks *callbacks)
{
    struct subscriber *sub = xcalloc(1, sizeof(*sub));
    sub->base = base;
    if (callbacks != NULL)
        sub->callbacks = *callbacks;
    sub_settings_load(&sub->settings, config);
    const char *problem = sub_settings_problem(&sub->settings);
    if (problem != NULL) {
        log_error("redis: %s", problem);
        sub_settings_free(&sub->settings);
        free(sub);
        return NULL;
    }
    sub->retry_timer = evtimer_new(base, sub_retry_timer, sub);
    sub->timeout_timer = evtimer_new(base, sub_timeout_timer, sub);
    sub->drop_event = event_new(base, -1, 0, sub_drop_event, sub);
    if (sub->retry_timer == NULL || sub->timeout_timer == NULL || sub->drop_event == NULL)
        log_fatal("out of memory creating the subscriber's events");
    sub->rng = util_monotonic_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)sub;
    if (sub->rng == 0)
        sub->rng = 0x9E3779B97F4A7C15ULL;
    sub->state = SUB_IDLE;
    sub->down_since_ms = util_monotonic_ms();
    if (sub->down_since_ms == 0)
        sub->down_since_ms = 1;
    /* The first attempt runs from the loop, so that no callback fires before
     * the caller has the subscriber in hand. */
    sub_timer_add(sub->retry_timer, 0);
    return sub;
}

void sub_reconfigure(struct subscriber *sub, const struct config *config)
{
    struct sub_settings next;
    sub_settings_load(&next, config);
    const char *problem = sub_settings_problem(&next);
    if (problem != NULL) {
        log_error("redis: %s; keeping the previous redis settings", problem);
        sub_settings_free(&next);
        return;
    }
    bool reconnect = !sub_settings_same_connection(&sub->settings, &next);
    sub_settings_free(&sub->settings);
    sub->settings = next;
    if (!reconnect)
        return; /* timeouts and backoff bounds apply from the next attempt */

    char address[300];
    log_info("redis %s: settings changed, reconnecting",
             sub_address(sub, address, sizeof(address)));
    sub->failures = 0;
    sub->retry_now = true;
    if (sub->ac != NULL) {
        /* Deferred so that a reload started from any callback stays safe. */
        sub_drop_later(sub, "redis settings changed");
    } else {
        sub->retry_now = false;
        evtimer_del(sub->retry_timer);
        sub_timer_add(sub->retry_timer, 0);
    }
}

bool sub_connected(const struct subscriber *sub)
{
    return sub->state == SUB_SUBSCRIBED;
}

uint64_t sub_reconnects(const struct subscriber *sub)
{
    return sub->reconnects;
}

uint64_t sub_down_since_ms(const struct subscriber *sub)
{
    return sub->state == SUB_SUBSCRIBED ? 0 : sub->down_since_ms;
}

void sub_stop(struct subscriber *sub)
{
    if (sub == NULL)
        return;
    if (sub->ac != NULL) {
        redisAsyncContext *ac = sub->ac;
        sub->ac = NULL;
        ac->data = NULL; /* its NULL replies and disconnect callback are ignored */
        redisAsyncFree(ac);
    }
    event_free(sub->retry_timer);
    event_free(sub->timeout_timer);
    event_free(sub->drop_event);
    sub_settings_free(&sub->settings);
    free(sub);
}
