/* subscriber.c - the invalidation stream: one hiredis async pub/sub connection
 * on the main event loop, made again with backoff whenever it fails.
 *
 * The connection itself (connect, AUTH, connect_timeout, backoff, the rules
 * for hiredis's context lifetime) is a redis_link; this file adds what is
 * particular to pub/sub: SUBSCRIBE and PSUBSCRIBE as the link's setup, the
 * link counting as up once every channel and pattern is confirmed, the
 * messages handed to on_message, and a liveness probe.
 *
 * The probe: a Redis that stops answering (SIGSTOP, a hung host) leaves the
 * socket open, and a subscribed hiredis 0.14 context cannot PING (the "pong"
 * is dropped unanswered). So every probe interval the subscriber SUBSCRIBEs
 * again to a channel it already has (or PSUBSCRIBEs a pattern), which Redis
 * confirms without changing anything; no confirmation within
 * connect_timeout drops the link, and the stream counts as down. */
#include "subscriber.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "config.h"
#include "log.h"
#include "redis_link.h"
#include "util.h"

struct subscriber {
    struct subscriber_callbacks callbacks;
    struct config_strings channels;
    struct config_strings patterns;
    struct redis_link *link;
    size_t confirmations_pending; /* during the link's setup */
    struct event *probe_timer;
    uint64_t probe_interval_ms;
    uint64_t probe_timeout_ms;
    uint64_t probe_sent_ms;       /* 0: no probe waiting for its confirmation */
};

/* Probing often enough that a silent Redis is noticed well within
 * max_stale, and never more than a few times a second. */
static void subscriber_probe_settings(struct subscriber *sub, const struct config *config)
{
    uint64_t interval = config->redis.max_stale_ms / 4;
    if (interval < 250)
        interval = 250;
    if (interval > 5000)
        interval = 5000;
    sub->probe_interval_ms = interval;
    /* At least a second: a busy main loop must not pass for a silent Redis. */
    uint64_t timeout = config->redis.connect_timeout_ms;
    sub->probe_timeout_ms = timeout > 1000 ? timeout : 1000;
}

static void subscriber_strings_copy(struct config_strings *to, const struct config_strings *from)
{
    to->count = from->count;
    to->items = xcalloc(from->count, sizeof(char *));
    for (size_t i = 0; i < from->count; i++)
        to->items[i] = xstrdup(from->items[i]);
}

static void subscriber_strings_free(struct config_strings *strings)
{
    for (size_t i = 0; i < strings->count; i++)
        free(strings->items[i]);
    free(strings->items);
    strings->items = NULL;
    strings->count = 0;
}

static bool subscriber_strings_equal(const struct config_strings *a, const struct config_strings *b)
{
    if (a->count != b->count)
        return false;
    for (size_t i = 0; i < a->count; i++) {
        if (strcmp(a->items[i], b->items[i]) != 0)
            return false;
    }
    return true;
}

/* Returns NULL when the config is usable for pub/sub, else what is wrong. */
static const char *subscriber_config_problem(const struct config *config)
{
    const struct config_strings *channels = &config->redis.channels;
    const struct config_strings *patterns = &config->redis.patterns;
    if (channels->count == 0 && patterns->count == 0)
        return "no channels and no patterns to subscribe to";
    if (channels->count + patterns->count >= (size_t)1 << 20)
        return "too many channels and patterns";
    return redis_link_config_problem(config);
}

static void subscriber_on_pubsub(redisAsyncContext *ac, void *r, void *privdata);

/* Sends one SUBSCRIBE or PSUBSCRIBE with every name as a binary-safe argument.
 * Returns 0, or -1 when hiredis refuses (the context is going away). */
static int subscriber_send_names(redisAsyncContext *ac, const char *command,
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
    int status = redisAsyncCommandArgv(ac, subscriber_on_pubsub, NULL, (int)argc, argv, lens);
    free(argv);
    free(lens);
    return status == REDIS_OK ? 0 : -1;
}

/* The link's setup: connected and authenticated, now subscribe. */
static void subscriber_on_setup(void *arg, redisAsyncContext *ac)
{
    struct subscriber *sub = arg;
    sub->confirmations_pending = sub->channels.count + sub->patterns.count;
    if (subscriber_send_names(ac, "SUBSCRIBE", &sub->channels) != 0 ||
        subscriber_send_names(ac, "PSUBSCRIBE", &sub->patterns) != 0)
        redis_link_drop_later(sub->link, "cannot send SUBSCRIBE");
}

static void subscriber_on_up(void *arg, bool first)
{
    struct subscriber *sub = arg;
    char address[300];
    log_info("redis %s: subscribed to %zu channel(s) and %zu pattern(s)%s",
             redis_link_address(sub->link, address, sizeof(address)), sub->channels.count,
             sub->patterns.count, first ? "" : " again");
    if (sub->callbacks.on_subscribed != NULL)
        sub->callbacks.on_subscribed(sub->callbacks.arg, first);
}

static void subscriber_on_down(void *arg, const char *reason)
{
    struct subscriber *sub = arg;
    sub->confirmations_pending = 0;
    sub->probe_sent_ms = 0;
    if (sub->callbacks.on_disconnected != NULL)
        sub->callbacks.on_disconnected(sub->callbacks.arg, reason);
}

static void subscriber_deliver(struct subscriber *sub, const redisReply *channel,
                               const redisReply *payload)
{
    if (channel->type != REDIS_REPLY_STRING || payload->type != REDIS_REPLY_STRING) {
        log_warn("redis: pub/sub message with an unexpected reply type, ignored");
        return;
    }
    /* A message proves Redis answers as well as a probe's confirmation. */
    sub->probe_sent_ms = 0;
    if (sub->callbacks.on_message != NULL)
        sub->callbacks.on_message(sub->callbacks.arg, channel->str, payload->str, payload->len);
}

/* The callback of SUBSCRIBE and PSUBSCRIBE: hiredis calls it for every
 * confirmation and then for every message on those channels and patterns. */
static void subscriber_on_pubsub(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    redisReply *reply = r;
    struct subscriber *sub = redis_link_owner(ac); /* NULL: the context is given up */
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
        subscriber_deliver(sub, reply->element[1], reply->element[2]);
    } else if (strcasecmp(type, "pmessage") == 0 && reply->elements >= 4) {
        subscriber_deliver(sub, reply->element[2], reply->element[3]);
    } else if (strcasecmp(type, "subscribe") == 0 || strcasecmp(type, "psubscribe") == 0) {
        if (redis_link_up(sub->link)) {
            sub->probe_sent_ms = 0; /* a probe's confirmation: Redis answers */
            return;
        }
        if (sub->confirmations_pending == 0)
            return;
        if (--sub->confirmations_pending == 0)
            redis_link_established(sub->link);
    }
    /* unsubscribe confirmations: nothing to do, this file never unsubscribes */
}

static void subscriber_probe(evutil_socket_t fd, short events, void *arg)
{
    (void)fd;
    (void)events;
    struct subscriber *sub = arg;
    redisAsyncContext *ac = redis_link_context(sub->link);
    if (!redis_link_up(sub->link) || ac == NULL)
        return;
    uint64_t now = util_monotonic_ms();
    if (sub->probe_sent_ms != 0) {
        if (now - sub->probe_sent_ms >= sub->probe_timeout_ms) {
            sub->probe_sent_ms = 0;
            redis_link_drop_later(sub->link, "Redis stopped answering (liveness probe)");
        }
        return;
    }
    const char *command = sub->channels.count > 0 ? "SUBSCRIBE" : "PSUBSCRIBE";
    const char *name = sub->channels.count > 0 ? sub->channels.items[0] : sub->patterns.items[0];
    const char *argv[2] = {command, name};
    size_t lens[2] = {strlen(command), strlen(name)};
    if (redisAsyncCommandArgv(ac, subscriber_on_pubsub, NULL, 2, argv, lens) == REDIS_OK)
        sub->probe_sent_ms = now;
}

static void subscriber_probe_arm(struct subscriber *sub)
{
    /* Ticks at a fraction of the interval so a late answer is seen soon. */
    uint64_t tick = sub->probe_timeout_ms < sub->probe_interval_ms ? sub->probe_timeout_ms
                                                                   : sub->probe_interval_ms;
    struct timeval every = util_timeval_from_ms(tick);
    event_add(sub->probe_timer, &every);
}

struct subscriber *subscriber_start(struct event_base *base, const struct config *config,
                                    const struct subscriber_callbacks *callbacks, char *error)
{
    const char *problem = subscriber_config_problem(config);
    if (problem != NULL) {
        snprintf(error, ERROR_MAX, "redis: %s", problem);
        return NULL;
    }
    struct subscriber *sub = xcalloc(1, sizeof(*sub));
    if (callbacks != NULL)
        sub->callbacks = *callbacks;
    subscriber_strings_copy(&sub->channels, &config->redis.channels);
    subscriber_strings_copy(&sub->patterns, &config->redis.patterns);
    const struct redis_link_options options = {
        .name = "pub/sub",
        .setup_stage = "subscribing",
        .select_db = false,
        .ping = false, /* the SUBSCRIBE confirmations are the round trip */
    };
    const struct redis_link_callbacks link_callbacks = {
        .on_setup = subscriber_on_setup,
        .on_up = subscriber_on_up,
        .on_down = subscriber_on_down,
        .arg = sub,
    };
    sub->link = redis_link_create(base, config, &options, &link_callbacks, error);
    if (sub->link == NULL) {
        subscriber_strings_free(&sub->channels);
        subscriber_strings_free(&sub->patterns);
        free(sub);
        return NULL;
    }
    subscriber_probe_settings(sub, config);
    sub->probe_timer = event_new(base, -1, EV_PERSIST, subscriber_probe, sub);
    if (sub->probe_timer == NULL)
        log_fatal("cannot create the pub/sub probe timer");
    subscriber_probe_arm(sub);
    return sub;
}

void subscriber_reconfigure(struct subscriber *sub, const struct config *config)
{
    const char *problem = subscriber_config_problem(config);
    if (problem != NULL) {
        log_error("redis: %s; keeping the previous redis settings", problem);
        return;
    }
    bool changed = !subscriber_strings_equal(&sub->channels, &config->redis.channels) ||
                   !subscriber_strings_equal(&sub->patterns, &config->redis.patterns);
    subscriber_strings_free(&sub->channels);
    subscriber_strings_free(&sub->patterns);
    subscriber_strings_copy(&sub->channels, &config->redis.channels);
    subscriber_strings_copy(&sub->patterns, &config->redis.patterns);
    subscriber_probe_settings(sub, config);
    subscriber_probe_arm(sub);
    redis_link_reconfigure(sub->link, config, changed);
}

void subscriber_stop(struct subscriber *sub)
{
    if (sub == NULL)
        return;
    event_free(sub->probe_timer);
    redis_link_free(sub->link); /* the context's NULL replies are ignored */
    subscriber_strings_free(&sub->channels);
    subscriber_strings_free(&sub->patterns);
    free(sub);
}
