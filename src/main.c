/* main.c - tenantcached: command line, wiring and the main event loop.
 *
 * The main thread owns the invalidation stream (subscriber.c), the one
 * writer of the caches (apply.c), the housekeeping timers (sweep, shrink,
 * clocks, watchdog) and the signals; the query threads (server.c) answer
 * applications. Data flows one way:
 *
 *   Redis --pub/sub--> subscriber --> message_parse --> apply --> cache <-- commands <-- server <-- apps
 */
#include <event2/event.h>
#include <event2/thread.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "cache.h"
#include "config.h"
#include "fill.h"
#include "log.h"
#include "message.h"
#include "metrics.h"
#include "notify.h"
#include "server.h"
#include "stats.h"
#include "subscriber.h"
#include "util.h"

#define HOUSEKEEPING_INTERVAL_MS 100
#define SWEEP_BUDGET 512
#define SHRINK_BUDGET 256
/* A src silent for this many times redis.heartbeat_timeout is forgotten
 * (docs/reference.md §7): a publisher shut down for good without a "last"
 * heartbeat stops making critical data stale. */
#define PUBLISHER_FORGET_FACTOR 10

struct daemon {
    char *config_path;
    struct config *config;
    struct event_base *base;
    struct cache *cache;
    struct apply *apply;
    struct fill *fill;
    struct server *server;
    struct metrics *metrics;
    struct subscriber *subscriber;
    struct event *housekeeping;
    struct event *watchdog;
    struct event *signals[4];
    struct log_ratelimit invalid_log;
    bool stopping;
};

static void usage(FILE *out)
{
    fprintf(out,
            "usage: tenantcached [-c FILE] [--check]\n"
            "\n"
            "Per-host cache of per-tenant data, kept fresh from Redis pub/sub and\n"
            "served over a Unix socket in the Redis protocol.\n"
            "\n"
            "  -c, --config FILE  configuration file (default %s)\n"
            "  -t, --check        validate the configuration and exit (0: valid)\n"
            "  -v, --version      print the version and exit\n"
            "  -h, --help         print this help and exit\n",
            CONFIG_DEFAULT_PATH);
}

static struct cache_limits limits_from(const struct config *config)
{
    struct cache_limits limits = {
        .max_bytes = config->memory.max_bytes,
        .tenant_max_bytes = config->memory.tenant_max_bytes,
        .max_tenants = config->memory.max_tenants,
        .high_watermark = config->memory.high_watermark,
        .low_watermark = config->memory.low_watermark,
        .hot_reads = config->memory.hot_reads,
    };
    return limits;
}

static void notify_status(struct daemon *daemon)
{
    struct cache_stats figures;
    cache_get_stats(daemon->cache, &figures);
    notify_sendf("STATUS=redis %s, %llu entries, %llu tenants",
                 stats_get(&stats.redis_connected) ? "subscribed" : "disconnected",
                 (unsigned long long)figures.entries, (unsigned long long)figures.tenants);
}

/* ---- the invalidation stream ---- */

static void on_message(void *arg, const char *channel, const char *payload, size_t len)
{
    struct daemon *daemon = arg;
    struct message_batch batch;
    char error[MESSAGE_ERROR_MAX];
    if (message_parse(daemon->config, payload, len, &batch, error) != 0) {
        stats_add(&stats.messages_invalid, 1);
        log_limited(&daemon->invalid_log, 5000, LOG_LEVEL_WARNING,
                    "rejected message on '%s' (%zu bytes): %s", channel, len, error);
        return;
    }
    apply_batch(daemon->apply, &batch, util_monotonic_ms());
    message_batch_free(&batch);
}

static void drop_everything(struct daemon *daemon, const char *why)
{
    uint64_t dropped = cache_flush(daemon->cache, NULL, 0, -1);
    /* A fill in flight read its value before now: answered, never cached. */
    fill_note_flush(daemon->fill);
    log_notice("%s: dropped all %llu cached entries (redis.on_reconnect: flush)", why,
               (unsigned long long)dropped);
}

static void on_subscribed(void *arg, bool first)
{
    struct daemon *daemon = arg;
    if (!first) {
        stats_add(&stats.redis_reconnects, 1);
        /* Messages published while we were away are lost for good. */
        if (daemon->config->redis.on_reconnect == CONFIG_ON_RECONNECT_FLUSH)
            drop_everything(daemon, "resubscribed after a disconnect");
        apply_forget_publishers(daemon->apply);
    }
    stats_set(&stats.redis_connected, 1);
    stats_set(&stats.redis_down_since_ms, 0);
    log_notice("subscribed to the invalidation stream");
    notify_status(daemon);
}

static void on_disconnected(void *arg, const char *reason)
{
    struct daemon *daemon = arg;
    stats_set(&stats.redis_connected, 0);
    stats_set(&stats.redis_down_since_ms, util_monotonic_ms());
    log_warn("invalidation stream lost: %s", reason ? reason : "disconnected");
    notify_status(daemon);
}

static void on_write(void *arg, const char *tenant, size_t tenant_len, int kind, const char *key,
                     size_t key_len)
{
    struct daemon *daemon = arg;
    fill_note_write(daemon->fill, tenant, tenant_len, kind, key, key_len);
}

static void on_hot(void *arg, const char *tenant, size_t tenant_len, unsigned kind,
                   const char *key, size_t key_len)
{
    struct daemon *daemon = arg;
    fill_refresh(daemon->fill, tenant, tenant_len, kind, key, key_len);
}

static void on_gap(void *arg, const char *src, uint64_t expected, uint64_t got)
{
    struct daemon *daemon = arg;
    (void)expected;
    (void)got;
    if (daemon->config->redis.on_reconnect == CONFIG_ON_RECONNECT_FLUSH) {
        char why[200];
        snprintf(why, sizeof(why), "messages from publisher '%s' were lost", src);
        drop_everything(daemon, why);
    }
}

/* ---- timers ---- */

static void housekeeping(evutil_socket_t fd, short events, void *arg)
{
    (void)fd;
    (void)events;
    struct daemon *daemon = arg;
    uint64_t now = util_monotonic_ms();
    cache_set_wall_clock(daemon->cache, util_realtime_ms());
    cache_sweep(daemon->cache, now, SWEEP_BUDGET);
    cache_shrink(daemon->cache, now, SHRINK_BUDGET);
    uint64_t timeout = daemon->config->redis.heartbeat_timeout_ms;
    if (timeout != 0)
        apply_forget_silent_publishers(daemon->apply, now, PUBLISHER_FORGET_FACTOR * timeout);
    uint64_t heard = timeout ? apply_oldest_publisher_ms(daemon->apply) : 0;
    bool silent = heard != 0 && now - heard > timeout;
    uint64_t silent_since = stats_get(&stats.publisher_silent_since_ms);
    if (silent && silent_since == 0) {
        log_warn("a publisher has been silent for over %llums (redis.heartbeat_timeout)",
                 (unsigned long long)timeout);
        stats_set(&stats.publisher_silent_since_ms, heard + timeout);
    } else if (!silent && silent_since != 0) {
        stats_set(&stats.publisher_silent_since_ms, 0);
    }
}

static void watchdog(evutil_socket_t fd, short events, void *arg)
{
    (void)fd;
    (void)events;
    (void)arg;
    notify_send("WATCHDOG=1");
}

static struct event *start_timer(struct event_base *base, uint64_t interval_ms,
                                 event_callback_fn callback, void *arg)
{
    struct event *timer = event_new(base, -1, EV_PERSIST, callback, arg);
    struct timeval interval = util_timeval_from_ms(interval_ms);
    if (timer == NULL || event_add(timer, &interval) != 0)
        log_fatal("cannot start a timer");
    return timer;
}

/* ---- signals ---- */

/* Kinds are numbered in the order of the config: a reload that reorders,
 * adds or removes them renumbers the cached entries and the fills in flight
 * by name, and drops the entries of a kind that is gone or no longer cached
 * here (docs/reference.md §8). */
static void remap_kinds(struct daemon *daemon, const struct config *old,
                        const struct config *config)
{
    int map[CONFIG_MAX_KINDS];
    bool changed = false;
    for (size_t i = 0; i < old->kind_count; i++) {
        map[i] = -1;
        for (size_t j = 0; j < config->kind_count; j++) {
            if (strcmp(old->kinds[i].name, config->kinds[j].name) == 0) {
                if (config->kinds[j].cached)
                    map[i] = (int)j;
                break;
            }
        }
        changed = changed || map[i] != (int)i;
    }
    if (!changed)
        return;
    fill_remap_kinds(daemon->fill, map, (unsigned)old->kind_count);
    uint64_t dropped = cache_remap_kinds(daemon->cache, map, (unsigned)old->kind_count);
    for (size_t i = 0; i < old->kind_count; i++) {
        if (map[i] < 0)
            log_notice("kind '%s' is no longer cached", old->kinds[i].name);
    }
    log_notice("kinds renumbered by the reload; %llu entries of removed kinds dropped",
               (unsigned long long)dropped);
}

static void reload(struct daemon *daemon)
{
    notify_send("RELOADING=1");
    char error[CONFIG_ERROR_MAX];
    struct config *config = config_load(daemon->config_path, error);
    if (config == NULL) {
        log_error("reload refused, keeping the running configuration: %s", error);
        notify_send("READY=1");
        return;
    }
    char server_error[256];
    if (server_reconfigure(daemon->server, config, server_error, sizeof(server_error)) != 0) {
        log_error("reload refused, keeping the running configuration: %s", server_error);
        config_free(config);
        notify_send("READY=1");
        return;
    }
    struct config *old = daemon->config;
    daemon->config = config;
    remap_kinds(daemon, old, config);
    log_set_level(config->log_level);
    struct cache_limits limits = limits_from(config);
    cache_set_limits(daemon->cache, &limits);
    cache_enforce(daemon->cache, util_monotonic_ms());
    apply_set_config(daemon->apply, config);
    fill_reconfigure(daemon->fill, config);
    sub_reconfigure(daemon->subscriber, config);
    daemon->metrics = metrics_reconfigure(daemon->metrics, daemon->base, daemon->cache, config);
    config_free(old);
    log_notice("configuration reloaded from %s", daemon->config_path);
    notify_send("READY=1");
    notify_status(daemon);
}

static void on_signal(evutil_socket_t signal_number, short events, void *arg)
{
    (void)events;
    struct daemon *daemon = arg;
    if (signal_number == SIGHUP) {
        reload(daemon);
        return;
    }
    if (daemon->stopping)
        return;
    daemon->stopping = true;
    log_notice("signal %d: stopping", (int)signal_number);
    notify_send("STOPPING=1");
    event_base_loopbreak(daemon->base);
}

/* ---- lifecycle ---- */

static int run(struct daemon *daemon)
{
    char error[256];
    int status = 1;
    daemon->base = event_base_new();
    if (daemon->base == NULL) {
        log_error("cannot create the event loop");
        return 1;
    }
    uint64_t now = util_monotonic_ms();
    stats_set(&stats.start_ms, now);
    /* Until the first subscribe the stream counts as down since start. */
    stats_set(&stats.redis_down_since_ms, now);

    struct cache_limits limits = limits_from(daemon->config);
    daemon->cache = cache_create(daemon->config->shards, &limits);
    cache_set_wall_clock(daemon->cache, util_realtime_ms());
    struct apply_callbacks apply_callbacks = {.on_gap = on_gap,
                                             .on_write = on_write,
                                             .on_hot = on_hot,
                                             .arg = daemon};
    daemon->apply = apply_create(daemon->cache, daemon->config, &apply_callbacks);
    daemon->fill = fill_create(daemon->base, daemon->cache, daemon->config, server_deliver_fill);

    daemon->server = server_start(daemon->base, daemon->cache, daemon->fill, daemon->config, error,
                                  sizeof(error));
    if (daemon->server == NULL) {
        log_error("cannot serve queries: %s", error);
        goto cleanup;
    }
    int metrics_failed = 0;
    daemon->metrics = metrics_start(daemon->base, daemon->cache, daemon->config, &metrics_failed,
                                    error, sizeof(error));
    if (metrics_failed) {
        log_error("cannot serve metrics: %s", error);
        goto cleanup;
    }
    struct subscriber_callbacks callbacks = {
        .on_message = on_message,
        .on_subscribed = on_subscribed,
        .on_disconnected = on_disconnected,
        .arg = daemon,
    };
    daemon->subscriber = sub_start(daemon->base, daemon->config, &callbacks);
    if (daemon->subscriber == NULL) {
        log_error("cannot start the Redis subscriber");
        goto cleanup;
    }
    const int handled[] = {SIGTERM, SIGINT, SIGHUP};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(handled); i++) {
        daemon->signals[i] = evsignal_new(daemon->base, handled[i], on_signal, daemon);
        if (daemon->signals[i] == NULL || event_add(daemon->signals[i], NULL) != 0) {
            log_error("cannot handle signal %d", handled[i]);
            goto cleanup;
        }
    }
    daemon->housekeeping = start_timer(daemon->base, HOUSEKEEPING_INTERVAL_MS, housekeeping, daemon);
    uint64_t watchdog_ms = notify_watchdog_interval_ms();
    if (watchdog_ms > 0)
        daemon->watchdog = start_timer(daemon->base, watchdog_ms, watchdog, daemon);

    log_notice("tenantcached %s ready on %s (%u query threads, %u shards, application %s)",
               TENANTCACHED_VERSION, daemon->config->listen.socket, daemon->config->threads,
               daemon->config->shards, daemon->config->application);
    notify_send("READY=1\nSTATUS=listening, connecting to redis");
    event_base_dispatch(daemon->base);
    status = 0;

cleanup:
    /* Parked requests are answered (-UNAVAILABLE) before the threads stop. */
    fill_shutdown(daemon->fill);
    if (daemon->server != NULL)
        server_stop(daemon->server);
    fill_destroy(daemon->fill);
    if (daemon->subscriber != NULL)
        sub_stop(daemon->subscriber);
    metrics_stop(daemon->metrics);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(daemon->signals); i++) {
        if (daemon->signals[i] != NULL)
            event_free(daemon->signals[i]);
    }
    if (daemon->housekeeping != NULL)
        event_free(daemon->housekeeping);
    if (daemon->watchdog != NULL)
        event_free(daemon->watchdog);
    apply_destroy(daemon->apply);
    cache_destroy(daemon->cache);
    event_base_free(daemon->base);
    if (status == 0)
        log_notice("stopped");
    return status;
}

int main(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'},
        {"check", no_argument, NULL, 't'},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = CONFIG_DEFAULT_PATH;
    bool check_only = false;
    int option;
    while ((option = getopt_long(argc, argv, "c:tvh", options, NULL)) != -1) {
        switch (option) {
        case 'c':
            path = optarg;
            break;
        case 't':
            check_only = true;
            break;
        case 'v':
            printf("tenantcached %s\n", TENANTCACHED_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    log_init();
    char error[CONFIG_ERROR_MAX];
    struct config *config = config_load(path, error);
    if (config == NULL) {
        fprintf(stderr, "%s\n", error);
        return 1;
    }
    if (check_only) {
        printf("%s: configuration is valid\n", path);
        config_free(config);
        return 0;
    }
    log_set_level(config->log_level);
    signal(SIGPIPE, SIG_IGN);
    if (evthread_use_pthreads() != 0)
        log_fatal("libevent has no pthreads support");

    struct daemon daemon = {.config_path = xstrdup(path), .config = config};
    int status = run(&daemon);
    config_free(daemon.config);
    free(daemon.config_path);
    libevent_global_shutdown();
    return status;
}
