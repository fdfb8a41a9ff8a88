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
#include "envelope.h"
#include "fill.h"
#include "freshness.h"
#include "log.h"
#include "message.h"
#include "metrics.h"
#include "notify.h"
#include "sentinel.h"
#include "server.h"
#include "snapshot.h"
#include "stats.h"
#include "stream.h"
#include "subscriber.h"
#include "tracking.h"
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
    struct sentinel *sentinel; /* NULL without redis.sentinels */
    struct stream *stream; /* NULL without redis.stream */
    struct snapshot_saver *saver; /* NULL without snapshot.path */
    struct snapshot_meta loaded;  /* what the snapshot loaded at start held */
    bool snapshot_uncovered;      /* loaded, and no stream to catch up from it */
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
                 freshness_subscribed() ? "subscribed" : "disconnected",
                 (unsigned long long)figures.entries, (unsigned long long)figures.tenants);
}

/* ---- the invalidation stream ---- */

/* Parses and applies one message (a plain payload, or the message inside an
 * envelope or a stream entry); `where` names its origin in the log. */
static void apply_payload(struct daemon *daemon, const char *where, const char *payload,
                          size_t len)
{
    struct message_batch batch;
    char error[ERROR_MAX];
    if (message_parse(daemon->config, payload, len, &batch, error) != 0) {
        stats_add(&stats.messages_invalid, 1);
        log_limited(&daemon->invalid_log, 5000, LOG_LEVEL_WARNING,
                    "rejected message on '%s' (%zu bytes): %s", where, len, error);
        return;
    }
    apply_batch(daemon->apply, &batch, util_monotonic_ms());
    message_batch_free(&batch);
}

static void on_message(void *arg, const char *channel, const char *payload, size_t len)
{
    struct daemon *daemon = arg;
    struct envelope_id id;
    const char *message;
    size_t message_len;
    switch (envelope_unwrap(payload, len, &id, &message, &message_len)) {
    case ENVELOPE_NONE:
        apply_payload(daemon, channel, payload, len);
        return;
    case ENVELOPE_INVALID:
        stats_add(&stats.messages_invalid, 1);
        log_limited(&daemon->invalid_log, 5000, LOG_LEVEL_WARNING,
                    "rejected message on '%s' (%zu bytes): malformed envelope", channel, len);
        return;
    case ENVELOPE_OK:
        break;
    }
    /* Without a stream there is nothing to catch up from: the message counts. */
    if (daemon->stream == NULL ||
        stream_live(daemon->stream, &id, message, message_len) == STREAM_LIVE_APPLY)
        apply_payload(daemon, channel, message, message_len);
}

/* A stream entry from the catch-up (or a live envelope held during it). */
static void on_stream_entry(void *arg, const struct envelope_id *id, const char *payload,
                            size_t len)
{
    struct daemon *daemon = arg;
    (void)id;
    apply_payload(daemon, "redis.stream", payload, len);
}

static void drop_everything(struct daemon *daemon, const char *why)
{
    /* A fill in flight read its value before now: answered, never cached. */
    fill_note_flush(daemon->fill, NULL, 0);
    uint64_t dropped = cache_flush(daemon->cache, NULL, 0, -1);
    log_notice("%s: dropped all %llu cached entries (redis.on_reconnect: flush)", why,
               (unsigned long long)dropped);
}

/* The stream is current again: fresh data for the staleness rules. */
static void stream_current(struct daemon *daemon)
{
    freshness_current();
    log_notice("subscribed to the invalidation stream");
    notify_status(daemon);
}

static void on_subscribed(void *arg, bool first)
{
    struct daemon *daemon = arg;
    if (!first) {
        stats_add(&stats.redis_reconnects, 1);
        apply_forget_publishers(daemon->apply);
    }
    if (first && daemon->snapshot_uncovered) {
        /* What was published since the snapshot cannot be read back. */
        daemon->snapshot_uncovered = false;
        if (daemon->config->redis.on_reconnect == CONFIG_ON_RECONNECT_FLUSH)
            drop_everything(daemon, "no stream covers the snapshot");
    }
    if (daemon->stream != NULL) {
        /* Counted as down (critical data -STALE past max_stale) until the
         * end of the stream is reached: on_caught_up. */
        stream_catch_up(daemon->stream);
        return;
    }
    /* Messages published while we were away are lost for good. */
    if (!first && daemon->config->redis.on_reconnect == CONFIG_ON_RECONNECT_FLUSH)
        drop_everything(daemon, "resubscribed after a disconnect");
    stream_current(daemon);
}

static void on_caught_up(void *arg, bool ok, const char *reason)
{
    struct daemon *daemon = arg;
    if (!ok) {
        stats_add(&stats.catchup_failed, 1);
        log_warn("cannot catch up from redis.stream: %s", reason);
        if (daemon->config->redis.on_reconnect == CONFIG_ON_RECONNECT_FLUSH)
            drop_everything(daemon, "the missed messages are gone from redis.stream");
    }
    stream_current(daemon);
}

static void on_disconnected(void *arg, const char *reason)
{
    struct daemon *daemon = arg;
    if (daemon->stream != NULL)
        stream_abort(daemon->stream);
    /* Lost while catching up: still down since the outage began. */
    freshness_lost(util_monotonic_ms());
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

/* ---- the snapshot ---- */

static void add_publisher(void *arg, const char *src, uint64_t seq)
{
    snapshot_meta_add_publisher(arg, src, seq);
}

/* What a snapshot records besides the entries, at the start of a save. */
static void snapshot_meta(void *arg, struct snapshot_meta *meta)
{
    struct daemon *daemon = arg;
    if (daemon->stream != NULL)
        meta->has_stream_id = stream_last_id(daemon->stream, &meta->stream_id);
    apply_foreach_publisher(daemon->apply, add_publisher, meta);
}

/* Loads snapshot.path into the cache, before the socket answers. A missing
 * or unusable file is logged and the daemon starts empty. */
static void load_snapshot(struct daemon *daemon)
{
    if (daemon->config->snapshot.path[0] == '\0')
        return;
    char error[ERROR_MAX];
    uint64_t started = util_monotonic_ms();
    int64_t loaded = snapshot_load(daemon->config, daemon->cache, started, util_realtime_ms(),
                                   &daemon->loaded, error);
    if (loaded < 0) {
        log_warn("snapshot ignored, starting empty: %s", error);
        return;
    }
    for (size_t i = 0; i < daemon->loaded.publisher_count; i++)
        apply_restore_publisher(daemon->apply, daemon->loaded.publishers[i].src,
                                daemon->loaded.publishers[i].seq, started);
    stats_set(&stats.snapshot_loaded_entries, (uint64_t)loaded);
    char id[ENVELOPE_ID_MAX] = "none";
    if (daemon->loaded.has_stream_id)
        envelope_id_format(&daemon->loaded.stream_id, id);
    log_notice("snapshot %s: %lld entries loaded in %llu ms (stream entry %s)",
               daemon->config->snapshot.path, (long long)loaded,
               (unsigned long long)(util_monotonic_ms() - started), id);
    daemon->snapshot_uncovered = true; /* until a stream says otherwise */
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
    uint64_t silent_since = freshness_silent_since();
    if (silent && silent_since == 0) {
        log_warn("a publisher has been silent for over %llums (redis.heartbeat_timeout)",
                 (unsigned long long)timeout);
        freshness_set_silent(heard + timeout);
    } else if (!silent && silent_since != 0) {
        freshness_set_silent(0);
    }
    /* Applications drop what they hold before reads turn -STALE. */
    tracking_check_stale(freshness_down_since(), now, daemon->config->redis.max_stale_ms);
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
    char error[ERROR_MAX];
    struct config *config = config_load(daemon->config_path, error);
    if (config == NULL) {
        log_error("reload refused, keeping the running configuration: %s", error);
        notify_send("READY=1");
        return;
    }
    char server_error[ERROR_MAX];
    if (server_reconfigure(daemon->server, config, server_error) != 0) {
        log_error("reload refused, keeping the running configuration: %s", server_error);
        config_free(config);
        notify_send("READY=1");
        return;
    }
    struct config *old = daemon->config;
    daemon->config = config;
    remap_kinds(daemon, old, config);
    tracking_configure(config);
    log_set_level(config->log_level);
    struct cache_limits limits = limits_from(config);
    cache_set_limits(daemon->cache, &limits);
    cache_enforce(daemon->cache, util_monotonic_ms());
    apply_set_config(daemon->apply, config);
    /* Before the links, which ask it for the master. */
    if (daemon->sentinel != NULL && config->redis.sentinels.count > 0) {
        sentinel_reconfigure(daemon->sentinel, config);
    } else {
        sentinel_stop(daemon->sentinel);
        daemon->sentinel = sentinel_start(daemon->base, config);
    }
    fill_reconfigure(daemon->fill, config);
    snapshot_saver_reconfigure(daemon->saver, config);
    subscriber_reconfigure(daemon->subscriber, config);
    stream_reconfigure(daemon->stream, config);
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
    char error[ERROR_MAX];
    int status = 1;
    daemon->base = event_base_new();
    if (daemon->base == NULL) {
        log_error("cannot create the event loop");
        return 1;
    }
    uint64_t now = util_monotonic_ms();
    stats_set(&stats.start_ms, now);
    /* Until the first subscribe the stream counts as down since start. */
    freshness_start(now);

    struct cache_limits limits = limits_from(daemon->config);
    daemon->cache = cache_create(daemon->config->shards, &limits);
    tracking_init(daemon->config);
    cache_set_change_hook(daemon->cache, tracking_change, NULL);
    cache_set_wall_clock(daemon->cache, util_realtime_ms());
    struct apply_callbacks apply_callbacks = {.on_gap = on_gap,
                                             .on_write = on_write,
                                             .on_hot = on_hot,
                                             .arg = daemon};
    daemon->apply = apply_create(daemon->cache, daemon->config, &apply_callbacks);
    /* Before fill (L2) and the subscriber, whose connections ask it for the master. */
    daemon->sentinel = sentinel_start(daemon->base, daemon->config);
    load_snapshot(daemon);
    daemon->fill = fill_create(daemon->base, daemon->cache, daemon->config, server_deliver_fill);

    daemon->server = server_start(daemon->base, daemon->cache, daemon->fill, daemon->config, error);
    if (daemon->server == NULL) {
        log_error("cannot serve queries: %s", error);
        goto cleanup;
    }
    if (metrics_start(daemon->base, daemon->cache, daemon->config, &daemon->metrics, error) != 0) {
        log_error("cannot serve metrics: %s", error);
        goto cleanup;
    }
    if (stream_create(daemon->base, daemon->config, &daemon->stream, error) != 0)
        log_error("%s; no catch-up stream", error);
    if (daemon->stream != NULL) {
        const struct stream_callbacks stream_callbacks = {
            .on_entry = on_stream_entry,
            .on_caught_up = on_caught_up,
            .arg = daemon,
        };
        stream_set_callbacks(daemon->stream, &stream_callbacks);
        if (daemon->snapshot_uncovered && daemon->loaded.has_stream_id) {
            /* The first subscription catches up from the snapshot's entry. */
            stream_restore_last(daemon->stream, &daemon->loaded.stream_id);
            daemon->snapshot_uncovered = false;
        }
    } else if (daemon->config->redis.stream[0] != '\0') {
        log_error("cannot start reading redis.stream");
        goto cleanup;
    }
    struct subscriber_callbacks callbacks = {
        .on_message = on_message,
        .on_subscribed = on_subscribed,
        .on_disconnected = on_disconnected,
        .arg = daemon,
    };
    daemon->subscriber = subscriber_start(daemon->base, daemon->config, &callbacks, error);
    if (daemon->subscriber == NULL) {
        log_error("cannot start the Redis subscriber: %s", error);
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
    daemon->saver = snapshot_saver_create(daemon->base, daemon->cache, daemon->config,
                                          snapshot_meta, daemon);
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
    /* A clean stop leaves a snapshot of what the queries last saw. */
    snapshot_saver_stop(daemon->saver);
    snapshot_meta_clear(&daemon->loaded);
    fill_destroy(daemon->fill);
    tracking_shutdown();
    if (daemon->subscriber != NULL)
        subscriber_stop(daemon->subscriber);
    sentinel_stop(daemon->sentinel);
    stream_destroy(daemon->stream);
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
    char error[ERROR_MAX];
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
