/* redis_link.c - one hiredis async connection on the main loop: connect, AUTH,
 * SELECT, the owner's setup, all under connect_timeout; reconnect with
 * backoff and jitter. Used by subscriber.c (pub/sub) and l2.c (GET/SET).
 *
 * hiredis 0.14 owns its async context: it frees it itself after a failed
 * connect and right after the disconnect callback. So this file never frees a
 * context from inside a hiredis callback: a callback that wants the connection
 * gone asks for a drop, which a libevent event carries out from the loop. A
 * context this file gives up on has its `data` cleared first, so the NULL
 * replies and the disconnect callback hiredis runs while freeing it are
 * ignored. */
#include "redis_link.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "config.h"
#include "log.h"
#include "sentinel.h"
#include "util.h"

/* A delay below this would come close to spinning against a dead server. */
#define LINK_MIN_DELAY_MS 10
/* Repeated connect failures log at most one line per interval. */
#define LINK_LOG_INTERVAL_MS 10000
#define LINK_REASON_MAX 256
#define LINK_ADDRESS_MAX 300

/* What the link copies out of the config. */
struct link_settings {
    char *host;
    unsigned port;
    char *unix_path; /* "" : TCP to host:port */
    char *username;
    char *password;
    unsigned db;
    uint64_t connect_timeout_ms; /* 0: none */
    uint64_t reconnect_min_ms;
    uint64_t reconnect_max_ms;
    bool sentinel;     /* redis.sentinels set: the address comes from sentinel_master() */
    char *master_name; /* with sentinel: redis.master_name, for log lines */
};

/* In handshake order: link_advance() relies on it. */
enum link_state {
    LINK_IDLE,           /* no context: waiting for the retry timer */
    LINK_CONNECTING,     /* context made, connect(2) in progress */
    LINK_AUTHENTICATING, /* AUTH sent */
    LINK_SELECTING,      /* SELECT sent */
    LINK_PINGING,        /* PING sent */
    LINK_SETUP,          /* the owner's on_setup ran; waiting for redis_link_established() */
    LINK_UP,
};

struct redis_link {
    struct event_base *base;
    struct redis_link_options options;
    struct redis_link_callbacks callbacks;
    struct link_settings settings;
    /* The address of the current (or last) attempt: the settings', or the
     * master the sentinels named. */
    char target_host[SENTINEL_HOST_MAX];
    unsigned target_port;

    redisAsyncContext *ac; /* owned by hiredis once connected; NULL while idle */
    enum link_state state;

    /* A drop asked for from inside a hiredis callback, done by drop_event. */
    bool drop_requested;
    char drop_reason[LINK_REASON_MAX];
    /* The next retry happens at once (a reconfigure, not a failure). */
    bool retry_now;

    struct event *retry_timer;   /* starts the next attempt */
    struct event *timeout_timer; /* connect_timeout of the current attempt */
    struct event *drop_event;

    unsigned failures; /* consecutive failed attempts since the last loss or success */
    bool ever_up;
    bool loss_reported; /* on_down already called for this outage */
    uint64_t rng;

    struct log_ratelimit fail_limit;
    struct log_ratelimit refused_limit;
};

static const char *link_or_empty(const char *s)
{
    return s != NULL ? s : "";
}

static void link_settings_load(struct link_settings *s, const struct config *config)
{
    s->host = xstrdup(link_or_empty(config->redis.host));
    s->port = config->redis.port;
    s->unix_path = xstrdup(link_or_empty(config->redis.unix_path));
    s->username = xstrdup(link_or_empty(config->redis.username));
    s->password = xstrdup(link_or_empty(config->redis.password));
    s->db = config->redis.db;
    s->connect_timeout_ms = config->redis.connect_timeout_ms;
    s->reconnect_min_ms = config->redis.reconnect_min_ms;
    if (s->reconnect_min_ms < LINK_MIN_DELAY_MS)
        s->reconnect_min_ms = LINK_MIN_DELAY_MS;
    s->reconnect_max_ms = config->redis.reconnect_max_ms;
    if (s->reconnect_max_ms < s->reconnect_min_ms)
        s->reconnect_max_ms = s->reconnect_min_ms;
    s->sentinel = config->redis.sentinels.count > 0;
    s->master_name = xstrdup(link_or_empty(config->redis.master_name));
}

static void link_settings_free(struct link_settings *s)
{
    free(s->host);
    free(s->unix_path);
    free(s->username);
    free(s->master_name);
    if (s->password != NULL)
        explicit_bzero(s->password, strlen(s->password));
    free(s->password);
    memset(s, 0, sizeof(*s));
}

const char *redis_link_config_problem(const struct config *config)
{
    const char *unix_path = link_or_empty(config->redis.unix_path);
    if (config->redis.sentinels.count > 0)
        return NULL; /* the sentinels name the address; the loader checked them */
    if (unix_path[0] == '\0' && link_or_empty(config->redis.host)[0] == '\0')
        return "neither redis.unix nor redis.host is set";
    if (unix_path[0] == '\0' && (config->redis.port == 0 || config->redis.port > 65535))
        return "redis.port is out of range";
    return NULL;
}

/* True when both settings reach the same server with the same identity (and
 * db, where the link selects one): only then can a reload keep the connection. */
static bool link_same_connection(const struct redis_link *link, const struct link_settings *a,
                                 const struct link_settings *b)
{
    if (a->sentinel != b->sentinel)
        return false;
    if (a->sentinel && strcmp(a->master_name, b->master_name) != 0)
        return false;
    if (!a->sentinel && strcmp(a->unix_path, b->unix_path) != 0)
        return false;
    if (!a->sentinel && a->unix_path[0] == '\0' &&
        (strcmp(a->host, b->host) != 0 || a->port != b->port))
        return false;
    if (link->options.select_db && a->db != b->db)
        return false;
    return strcmp(a->username, b->username) == 0 && strcmp(a->password, b->password) == 0;
}

const char *redis_link_address(const struct redis_link *link, char *buf, size_t size)
{
    const struct link_settings *s = &link->settings;
    if (s->sentinel && link->target_host[0] == '\0')
        snprintf(buf, size, "(master '%s', not known yet)", s->master_name);
    else if (s->sentinel)
        snprintf(buf, size, "%s:%u", link->target_host, link->target_port);
    else if (s->unix_path[0] != '\0')
        snprintf(buf, size, "unix:%s", s->unix_path);
    else
        snprintf(buf, size, "%s:%u", s->host, s->port);
    return buf;
}

/* The delay before the next attempt: see redis_link.h. */
uint64_t redis_link_backoff_ms(uint64_t min, uint64_t max, unsigned failures, uint64_t *rng)
{
    uint64_t ceiling = min;
    for (unsigned i = 0; i < failures && ceiling < max; i++)
        ceiling *= 2;
    if (ceiling > max)
        ceiling = max;
    uint64_t floor = ceiling / 2 > min ? ceiling / 2 : min;
    return floor + util_random(rng) % (ceiling - floor + 1);
}

static uint64_t link_backoff_ms(struct redis_link *link)
{
    return redis_link_backoff_ms(link->settings.reconnect_min_ms, link->settings.reconnect_max_ms,
                                 link->failures, &link->rng);
}

static void link_timer_add(struct event *timer, uint64_t delay_ms)
{
    struct timeval tv = util_timeval_from_ms(delay_ms);
    evtimer_add(timer, &tv);
}

/* The connection attempt or the connection itself is over, and the context is
 * already gone (or hiredis frees it when the current callback returns).
 * Schedules the next attempt and reports the outage once. The link is not
 * touched after on_down, which may free it. */
static void link_failed(struct redis_link *link, const char *why)
{
    char reason[LINK_REASON_MAX];
    char address[LINK_ADDRESS_MAX];
    snprintf(reason, sizeof(reason), "%s", why);
    redis_link_address(link, address, sizeof(address));

    bool was_up = link->state == LINK_UP;
    link->state = LINK_IDLE;
    link->drop_requested = false;
    evtimer_del(link->timeout_timer);
    event_del(link->drop_event);

    if (was_up)
        link->failures = 0;
    uint64_t delay = link->retry_now ? 0 : link_backoff_ms(link);
    link->retry_now = false;
    if (!was_up && link->failures < 64)
        link->failures++;
    if (was_up)
        log_warn("redis %s: %s connection lost: %s; reconnecting in %llu ms", address,
                 link->options.name, reason, (unsigned long long)delay);
    else
        log_limited(&link->fail_limit, LINK_LOG_INTERVAL_MS, LOG_LEVEL_WARNING,
                    "redis %s: %s connection failed: %s; retrying in %llu ms", address,
                    link->options.name, reason, (unsigned long long)delay);
    link_timer_add(link->retry_timer, delay);
    if (link->settings.sentinel)
        sentinel_master_lost(); /* re-ask after any disconnect */

    if (!link->loss_reported) {
        link->loss_reported = true;
        if (link->callbacks.on_down != NULL)
            link->callbacks.on_down(link->callbacks.arg, reason);
    }
}

/* Gives up the current context. Only from outside hiredis callbacks: it frees
 * the context at once (its pending replies are called back with NULL). */
static void link_drop(struct redis_link *link, const char *reason)
{
    redisAsyncContext *ac = link->ac;
    if (ac == NULL)
        return;
    link->ac = NULL;
    ac->data = NULL;
    redisAsyncFree(ac);
    link_failed(link, reason);
}

void redis_link_drop_later(struct redis_link *link, const char *reason)
{
    if (link->ac == NULL || link->drop_requested)
        return;
    link->drop_requested = true;
    snprintf(link->drop_reason, sizeof(link->drop_reason), "%s", reason);
    event_active(link->drop_event, EV_TIMEOUT, 0);
}

static void link_drop_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct redis_link *link = arg;
    if (!link->drop_requested)
        return;
    char reason[LINK_REASON_MAX];
    snprintf(reason, sizeof(reason), "%s", link->drop_reason);
    link->drop_requested = false;
    link_drop(link, reason);
}

/* The link behind a hiredis callback, or NULL when this file already gave the
 * context up (it is being freed) or a drop is pending. */
static struct redis_link *link_of(const redisAsyncContext *ac)
{
    struct redis_link *link = ac->data;
    if (link == NULL || link->ac != ac || link->drop_requested)
        return NULL;
    return link;
}

void *redis_link_owner(const redisAsyncContext *ac)
{
    struct redis_link *link = link_of(ac);
    return link != NULL ? link->callbacks.arg : NULL;
}

void redis_link_established(struct redis_link *link)
{
    if (link->ac == NULL || link->state == LINK_UP || link->state == LINK_IDLE)
        return;
    evtimer_del(link->timeout_timer);
    bool first = !link->ever_up;
    link->state = LINK_UP;
    link->ever_up = true;
    link->failures = 0;
    link->loss_reported = false;
    if (link->callbacks.on_up != NULL)
        link->callbacks.on_up(link->callbacks.arg, first);
}

static void link_on_handshake(redisAsyncContext *ac, void *r, void *privdata);

/* Sends the next handshake command after the one the state names, or hands
 * over to the owner once there is none left. */
static void link_advance(struct redis_link *link)
{
    const struct link_settings *s = &link->settings;
    int sent;
    if (link->state < LINK_AUTHENTICATING && (s->username[0] != '\0' || s->password[0] != '\0')) {
        link->state = LINK_AUTHENTICATING;
        if (s->username[0] != '\0')
            sent = redisAsyncCommand(link->ac, link_on_handshake, NULL, "AUTH %b %b", s->username,
                                     strlen(s->username), s->password, strlen(s->password));
        else
            sent = redisAsyncCommand(link->ac, link_on_handshake, NULL, "AUTH %b", s->password,
                                     strlen(s->password));
        if (sent != REDIS_OK)
            redis_link_drop_later(link, "cannot send AUTH");
        return;
    }
    if (link->state < LINK_SELECTING && link->options.select_db && s->db != 0) {
        link->state = LINK_SELECTING;
        sent = redisAsyncCommand(link->ac, link_on_handshake, NULL, "SELECT %u", s->db);
        if (sent != REDIS_OK)
            redis_link_drop_later(link, "cannot send SELECT");
        return;
    }
    if (link->state < LINK_AUTHENTICATING && link->options.ping) {
        /* nothing above was sent: one round trip proves that Redis answers */
        link->state = LINK_PINGING;
        sent = redisAsyncCommand(link->ac, link_on_handshake, NULL, "PING");
        if (sent != REDIS_OK)
            redis_link_drop_later(link, "cannot send PING");
        return;
    }
    if (link->callbacks.on_setup != NULL) {
        link->state = LINK_SETUP;
        link->callbacks.on_setup(link->callbacks.arg, link->ac);
        return;
    }
    redis_link_established(link);
}

/* The reply to AUTH, SELECT or PING. */
static void link_on_handshake(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    redisReply *reply = r;
    struct redis_link *link = link_of(ac);
    if (link == NULL || reply == NULL) /* NULL: the context is being freed */
        return;
    if (reply->type != REDIS_REPLY_ERROR) {
        link_advance(link);
        return;
    }
    char address[LINK_ADDRESS_MAX];
    char reason[LINK_REASON_MAX];
    redis_link_address(link, address, sizeof(address));
    switch (link->state) {
    case LINK_AUTHENTICATING:
        log_limited(&link->refused_limit, LINK_LOG_INTERVAL_MS, LOG_LEVEL_WARNING,
                    "redis %s: AUTH%s%s refused: %s (check redis.username and "
                    "redis.password/password_file)",
                    address, link->settings.username[0] != '\0' ? " as " : "",
                    link->settings.username, reply->str);
        snprintf(reason, sizeof(reason), "AUTH refused: %s", reply->str);
        break;
    case LINK_SELECTING:
        log_limited(&link->refused_limit, LINK_LOG_INTERVAL_MS, LOG_LEVEL_WARNING,
                    "redis %s: SELECT %u refused: %s (check redis.db)", address,
                    link->settings.db, reply->str);
        snprintf(reason, sizeof(reason), "SELECT %u refused: %s", link->settings.db, reply->str);
        break;
    default:
        snprintf(reason, sizeof(reason), "PING refused: %s", reply->str);
        break;
    }
    redis_link_drop_later(link, reason);
}

static void link_on_connect(const redisAsyncContext *cac, int status)
{
    struct redis_link *link = cac->data;
    if (link == NULL || link->ac != cac)
        return;
    if (status != REDIS_OK) {
        /* hiredis frees the context when this returns (without calling the
         * disconnect callback: it never was connected). */
        char reason[LINK_REASON_MAX];
        if (link->drop_requested)
            snprintf(reason, sizeof(reason), "%s", link->drop_reason);
        else
            snprintf(reason, sizeof(reason), "%s",
                     cac->c.err ? cac->c.errstr : "connect failed");
        ((redisAsyncContext *)cac)->data = NULL;
        link->ac = NULL;
        link_failed(link, reason);
        return;
    }
    if (link->drop_requested)
        return;
    link_advance(link);
}

static void link_on_disconnect(const redisAsyncContext *cac, int status)
{
    (void)status;
    struct redis_link *link = cac->data;
    if (link == NULL || link->ac != cac)
        return;
    /* hiredis frees the context when this returns */
    char reason[LINK_REASON_MAX];
    if (link->drop_requested)
        snprintf(reason, sizeof(reason), "%s", link->drop_reason);
    else
        snprintf(reason, sizeof(reason), "%s",
                 cac->c.err ? cac->c.errstr : "connection closed");
    ((redisAsyncContext *)cac)->data = NULL;
    link->ac = NULL;
    link_failed(link, reason);
}

static void link_connect(struct redis_link *link)
{
    const struct link_settings *s = &link->settings;
    char reason[LINK_REASON_MAX];
    redisAsyncContext *ac;
    if (s->sentinel) {
        char problem[LINK_REASON_MAX];
        if (sentinel_master(link->target_host, sizeof(link->target_host), &link->target_port) < 0) {
            link->target_host[0] = '\0';
            if (!sentinel_problem(problem, sizeof(problem))) {
                /* The first answer is on its way and wakes the link
                 * (link_master_moved); this timer is only a safety net. */
                link_timer_add(link->retry_timer, link_backoff_ms(link));
                return;
            }
            snprintf(reason, sizeof(reason), "no master known: %.200s", problem);
            link_failed(link, reason);
            return;
        }
        ac = redisAsyncConnect(link->target_host, (int)link->target_port);
    } else if (s->unix_path[0] != '\0') {
        ac = redisAsyncConnectUnix(s->unix_path);
    } else {
        ac = redisAsyncConnect(s->host, (int)s->port);
    }
    if (ac == NULL) {
        link_failed(link, "cannot allocate a hiredis context");
        return;
    }
    if (ac->err) {
        /* Failed before any callback could run: ours to free. */
        snprintf(reason, sizeof(reason), "%s", ac->errstr);
        redisAsyncFree(ac);
        link_failed(link, reason);
        return;
    }
    if (s->sentinel || s->unix_path[0] == '\0')
        redisEnableKeepAlive(&ac->c); /* notice a peer that vanished with the network */
    if (redisLibeventAttach(ac, link->base) != REDIS_OK) {
        redisAsyncFree(ac);
        link_failed(link, "cannot attach to the event loop");
        return;
    }
    ac->data = link;
    redisAsyncSetConnectCallback(ac, link_on_connect);
    redisAsyncSetDisconnectCallback(ac, link_on_disconnect);
    link->ac = ac;
    link->state = LINK_CONNECTING;
    if (s->connect_timeout_ms > 0)
        link_timer_add(link->timeout_timer, s->connect_timeout_ms);
}

static void link_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct redis_link *link = arg;
    if (link->ac == NULL)
        link_connect(link);
}

/* connect_timeout covers the whole handshake, so that a Redis that accepts
 * but never answers (paused, overloaded) cannot hold the attempt forever. */
static void link_timeout_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct redis_link *link = arg;
    if (link->ac == NULL || link->state == LINK_UP)
        return;
    const char *stage;
    switch (link->state) {
    case LINK_CONNECTING:
        stage = "connecting";
        break;
    case LINK_AUTHENTICATING:
        stage = "authenticating";
        break;
    case LINK_SELECTING:
        stage = "selecting the db";
        break;
    case LINK_PINGING:
        stage = "waiting for PING";
        break;
    case LINK_SETUP:
        stage = link->options.setup_stage != NULL ? link->options.setup_stage : "in setup";
        break;
    default:
        stage = "waiting";
        break;
    }
    char reason[LINK_REASON_MAX];
    snprintf(reason, sizeof(reason), "timed out after %llu ms %s",
             (unsigned long long)link->settings.connect_timeout_ms, stage);
    link_drop(link, reason);
}

/* The sentinels named another master: move to it at once, unless the current
 * attempt already goes there. May run inside another context's callback. */
static void link_master_moved(void *arg)
{
    struct redis_link *link = arg;
    char host[SENTINEL_HOST_MAX];
    unsigned port;
    if (sentinel_master(host, sizeof(host), &port) < 0)
        return;
    link->failures = 0;
    if (link->ac != NULL) {
        if (strcmp(host, link->target_host) == 0 && port == link->target_port)
            return;
        char reason[LINK_REASON_MAX];
        snprintf(reason, sizeof(reason), "master moved to %.200s:%u", host, port);
        link->retry_now = true;
        redis_link_drop_later(link, reason);
    } else {
        evtimer_del(link->retry_timer);
        link_timer_add(link->retry_timer, 0);
    }
}

struct redis_link *redis_link_create(struct event_base *base, const struct config *config,
                                     const struct redis_link_options *options,
                                     const struct redis_link_callbacks *callbacks, char *error)
{
    const char *problem = redis_link_config_problem(config);
    if (problem != NULL) {
        snprintf(error, ERROR_MAX, "redis: %s", problem);
        return NULL;
    }
    struct redis_link *link = xcalloc(1, sizeof(*link));
    link->base = base;
    if (options != NULL)
        link->options = *options;
    if (link->options.name == NULL)
        link->options.name = "redis";
    if (callbacks != NULL)
        link->callbacks = *callbacks;
    link_settings_load(&link->settings, config);
    if (link->settings.sentinel)
        sentinel_watch(link_master_moved, link);
    link->retry_timer = evtimer_new(base, link_retry_timer, link);
    link->timeout_timer = evtimer_new(base, link_timeout_timer, link);
    link->drop_event = event_new(base, -1, 0, link_drop_event, link);
    if (link->retry_timer == NULL || link->timeout_timer == NULL || link->drop_event == NULL)
        log_fatal("out of memory creating the redis connection's events");
    link->rng = util_monotonic_us() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)link;
    if (link->rng == 0)
        link->rng = 0x9E3779B97F4A7C15ULL;
    link->state = LINK_IDLE;
    /* The first attempt runs from the loop, so that no callback fires before
     * the caller has the link in hand. */
    link_timer_add(link->retry_timer, 0);
    return link;
}

int redis_link_reconfigure(struct redis_link *link, const struct config *config, bool reconnect)
{
    const char *problem = redis_link_config_problem(config);
    if (problem != NULL) {
        log_error("redis: %s; keeping the previous redis settings", problem);
        return -1;
    }
    struct link_settings next;
    link_settings_load(&next, config);
    if (!link_same_connection(link, &link->settings, &next))
        reconnect = true;
    if (link->settings.sentinel != next.sentinel) {
        if (next.sentinel)
            sentinel_watch(link_master_moved, link);
        else
            sentinel_unwatch(link_master_moved, link);
    }
    link_settings_free(&link->settings);
    link->settings = next;
    if (!reconnect)
        return 0; /* timeouts and backoff bounds apply from the next attempt */

    char address[LINK_ADDRESS_MAX];
    log_info("redis %s: settings changed, reconnecting the %s connection",
             redis_link_address(link, address, sizeof(address)), link->options.name);
    link->failures = 0;
    if (link->ac != NULL) {
        /* Deferred so that a reload started from any callback stays safe. */
        link->retry_now = true;
        redis_link_drop_later(link, "redis settings changed");
    } else {
        evtimer_del(link->retry_timer);
        link_timer_add(link->retry_timer, 0);
    }
    return 0;
}

bool redis_link_up(const struct redis_link *link)
{
    return link->state == LINK_UP;
}

redisAsyncContext *redis_link_context(const struct redis_link *link)
{
    if (link->state != LINK_UP || link->drop_requested)
        return NULL;
    return link->ac;
}

void redis_link_free(struct redis_link *link)
{
    if (link == NULL)
        return;
    if (link->settings.sentinel)
        sentinel_unwatch(link_master_moved, link);
    if (link->ac != NULL) {
        redisAsyncContext *ac = link->ac;
        link->ac = NULL;
        ac->data = NULL; /* its NULL replies and disconnect callback are ignored */
        redisAsyncFree(ac);
    }
    event_free(link->retry_timer);
    event_free(link->timeout_timer);
    event_free(link->drop_event);
    link_settings_free(&link->settings);
    free(link);
}

const char *redis_link_master_address(const struct config *config, char *buf, size_t size)
{
    char host[SENTINEL_HOST_MAX];
    unsigned port;
    if (config->redis.sentinels.count == 0 && link_or_empty(config->redis.unix_path)[0] != '\0')
        snprintf(buf, size, "unix:%s", config->redis.unix_path);
    else if (config->redis.sentinels.count == 0)
        snprintf(buf, size, "%s:%u", link_or_empty(config->redis.host), config->redis.port);
    else if (sentinel_master(host, sizeof(host), &port) == 0)
        snprintf(buf, size, "%s:%u", host, port);
    else
        snprintf(buf, size, "%s", "");
    return buf;
}
