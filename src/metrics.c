/* metrics.c - Prometheus text exposition (format 0.0.4) at /metrics (see metrics.h).
 *
 * An evhttp server on the main loop answers GET /metrics from the same figures
 * INFO reads: the global counters of stats.h and cache_get_stats(). The only
 * state of its own is the query latency histogram, which every query thread
 * feeds through metrics_observe_latency(); it lives in static storage so that
 * observing costs the same whether /metrics is on or off, and survives a
 * reload that moves or turns off the listener. */
#include "metrics.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cache.h"
#include "config.h"
#include "log.h"
#include "sentinel.h"
#include "stats.h"
#include "util.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_LISTEN_BACKLOG 64
#define METRICS_TIMEOUT_SECONDS 10
#define METRICS_MAX_HEADERS_BYTES 8192
#define METRICS_MAX_BODY_BYTES 1024

struct metrics {
    struct evhttp *http;
    struct cache *cache;          /* borrowed */
    const struct config *config;  /* borrowed; replaced on every reload */
    char *listen;                 /* the address actually bound, to spot a change */
};

/* ---- the latency histogram ---------------------------------------------- */

/* Upper bounds of the buckets in nanoseconds, and the same as the `le` label
 * (written out, so the label reads as Prometheus's own clients write it). A
 * last, implicit bucket is +Inf. */
static const uint64_t latency_bounds_ns[] = {
    5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 5000000,
};
static const char *const latency_bounds_label[] = {
    "5e-06", "1e-05", "2.5e-05", "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.005",
};
_Static_assert(UTIL_ARRAY_LEN(latency_bounds_ns) == UTIL_ARRAY_LEN(latency_bounds_label),
               "one label per bucket bound");

#define LATENCY_BUCKETS (UTIL_ARRAY_LEN(latency_bounds_ns) + 1)
#define LATENCY_SLOTS 16

/* Every query thread adds to a slot of its own (threads beyond LATENCY_SLOTS
 * share), each on its own cache lines, so the hot path is two uncontended
 * relaxed increments rather than a line bounced between cores. A scrape sums
 * the slots. The count is the sum of the buckets, not a third counter. */
struct latency_slot {
    _Alignas(64) _Atomic uint64_t buckets[LATENCY_BUCKETS]; /* not cumulative */
    _Atomic uint64_t sum_ns;
};

static struct latency_slot latency_slots[LATENCY_SLOTS];
static _Atomic unsigned latency_next_slot;
static _Thread_local unsigned latency_slot_plus_one; /* 0: not assigned yet */

void metrics_observe_latency(double seconds)
{
    unsigned slot = latency_slot_plus_one;
    if (slot == 0) {
        slot = atomic_fetch_add_explicit(&latency_next_slot, 1, memory_order_relaxed) %
                   LATENCY_SLOTS + 1;
        latency_slot_plus_one = slot;
    }
    /* Clamped to an hour: a clock step must not overflow the sum. */
    uint64_t ns = 0;
    if (seconds > 3600.0)
        ns = 3600ull * 1000000000ull;
    else if (seconds > 0.0)
        ns = (uint64_t)(seconds * 1e9 + 0.5);
    size_t bucket = 0;
    while (bucket < UTIL_ARRAY_LEN(latency_bounds_ns) && ns > latency_bounds_ns[bucket])
        bucket++;
    struct latency_slot *mine = &latency_slots[slot - 1];
    atomic_fetch_add_explicit(&mine->buckets[bucket], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&mine->sum_ns, ns, memory_order_relaxed);
}

/* ---- the exposition ----------------------------------------------------- */

static void metrics_family(struct evbuffer *out, const char *name, const char *type,
                           const char *help)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample; labels is "" or a complete "{name=\"value\"}". */
static void metrics_sample(struct evbuffer *out, const char *name, const char *labels,
                           uint64_t value)
{
    evbuffer_add_printf(out, "%s%s %llu\n", name, labels, (unsigned long long)value);
}

/* A family of one unlabelled sample. */
static void metrics_single(struct evbuffer *out, const char *name, const char *type,
                           const char *help, uint64_t value)
{
    metrics_family(out, name, type, help);
    metrics_sample(out, name, "", value);
}

/* Seconds since the invalidation stream counts as down, as INFO's
 * redis_disconnected_seconds reports it: the subscription is lost, or a
 * publisher has been silent past redis.heartbeat_timeout. 0 while it is up. */
static double metrics_stream_down_seconds(void)
{
    uint64_t since = stats_get(&stats.redis_connected) ? 0 : stats_get(&stats.redis_down_since_ms);
    uint64_t silent = stats_get(&stats.publisher_silent_since_ms);
    if (silent != 0 && (since == 0 || silent < since))
        since = silent;
    uint64_t now = util_monotonic_ms();
    return since != 0 && now > since ? (double)(now - since) / 1000.0 : 0.0;
}

static void metrics_write_histogram(struct evbuffer *out)
{
    uint64_t buckets[LATENCY_BUCKETS] = {0};
    uint64_t sum_ns = 0;
    for (size_t s = 0; s < LATENCY_SLOTS; s++) {
        for (size_t b = 0; b < LATENCY_BUCKETS; b++)
            buckets[b] += atomic_load_explicit(&latency_slots[s].buckets[b], memory_order_relaxed);
        sum_ns += atomic_load_explicit(&latency_slots[s].sum_ns, memory_order_relaxed);
    }
    const char *name = "tenantcached_query_duration_seconds";
    metrics_family(out, name, "histogram", "Time to execute one query command, in seconds.");
    uint64_t cumulative = 0;
    for (size_t b = 0; b < LATENCY_BUCKETS; b++) {
        cumulative += buckets[b];
        const char *le = b < UTIL_ARRAY_LEN(latency_bounds_label) ? latency_bounds_label[b] : "+Inf";
        evbuffer_add_printf(out, "%s_bucket{le=\"%s\"} %llu\n", name, le,
                            (unsigned long long)cumulative);
    }
    evbuffer_add_printf(out, "%s_sum %llu.%09llu\n%s_count %llu\n", name,
                        (unsigned long long)(sum_ns / 1000000000ull),
                        (unsigned long long)(sum_ns % 1000000000ull), name,
                        (unsigned long long)cumulative);
}

static void metrics_write(const struct metrics *metrics, struct evbuffer *out)
{
    struct cache_stats figures;
    cache_get_stats(metrics->cache, &figures);

    metrics_family(out, "tenantcached_build_info", "gauge",
                   "Always 1; the version label names the running build.");
    evbuffer_add_printf(out, "tenantcached_build_info{version=\"%s\"} 1\n", TENANTCACHED_VERSION);

    /* memory and contents */
    metrics_single(out, "tenantcached_entries", "gauge",
                   "Cached entries, including tombstones and negative entries.", figures.entries);
    metrics_single(out, "tenantcached_tenants", "gauge", "Tenants with something cached.",
                   figures.tenants);
    metrics_single(out, "tenantcached_memory_used_bytes", "gauge",
                   "Bytes the caches hold (keys, values and per-entry overhead).", figures.bytes);
    metrics_single(out, "tenantcached_memory_limit_bytes", "gauge",
                   "The configured memory.max_bytes.", metrics->config->memory.max_bytes);
    metrics_single(out, "tenantcached_memory_rss_bytes", "gauge",
                   "Resident set size of the process.", util_rss_bytes());
    metrics_family(out, "tenantcached_memory_bytes", "gauge", "Bytes the caches hold, by tier.");
    metrics_sample(out, "tenantcached_memory_bytes", "{tier=\"critical\"}", figures.critical_bytes);
    metrics_sample(out, "tenantcached_memory_bytes", "{tier=\"reference\"}",
                   figures.reference_bytes);

    /* the invalidation stream */
    const char *messages = "tenantcached_messages_total";
    metrics_family(out, messages, "counter",
                   "Invalidation messages received, by what became of them.");
    metrics_sample(out, messages, "{result=\"applied\"}", stats_get(&stats.messages_applied));
    metrics_sample(out, messages, "{result=\"stale\"}", stats_get(&stats.messages_stale));
    metrics_sample(out, messages, "{result=\"invalid\"}", stats_get(&stats.messages_invalid));
    metrics_sample(out, messages, "{result=\"filtered\"}", stats_get(&stats.messages_filtered));
    metrics_sample(out, messages, "{result=\"unknown_kind\"}",
                   stats_get(&stats.messages_unknown_kind));
    metrics_single(out, "tenantcached_seq_gaps_total", "counter",
                   "Lost messages detected from a publisher's seq numbers.",
                   stats_get(&stats.seq_gaps));
    metrics_single(out, "tenantcached_catchup_applied_total", "counter",
                   "Stream entries applied while catching up after a resubscription.",
                   stats_get(&stats.catchup_applied));
    metrics_single(out, "tenantcached_catchup_failed_total", "counter",
                   "Catch-ups that found the missed stream entries gone (on_reconnect applied).",
                   stats_get(&stats.catchup_failed));
    metrics_single(out, "tenantcached_messages_duplicate_total", "counter",
                   "Live envelopes skipped as already applied from the stream.",
                   stats_get(&stats.messages_duplicate));
    metrics_single(out, "tenantcached_redis_connected", "gauge",
                   "1 while subscribed to the invalidation stream.",
                   stats_get(&stats.redis_connected) ? 1 : 0);
    metrics_single(out, "tenantcached_redis_reconnects_total", "counter",
                   "Resubscriptions after the invalidation stream was lost.",
                   stats_get(&stats.redis_reconnects));
    metrics_single(out, "tenantcached_sentinel_switches_total", "counter",
                   "Times the Redis master named by the sentinels changed.",
                   sentinel_switches());
    metrics_family(out, "tenantcached_redis_disconnected_seconds", "gauge",
                   "Seconds the invalidation stream has been down (or a publisher silent); "
                   "0 while up.");
    evbuffer_add_printf(out, "tenantcached_redis_disconnected_seconds %.3f\n",
                        metrics_stream_down_seconds());

    /* lookups and fills */
    metrics_single(out, "tenantcached_hits_total", "counter", "Lookups answered from the cache.",
                   stats_get(&stats.hits));
    metrics_single(out, "tenantcached_misses_total", "counter", "Lookups not found in the cache.",
                   stats_get(&stats.misses));
    metrics_family(out, "tenantcached_fills_total", "counter",
                   "Misses filled, by the source that answered.");
    metrics_sample(out, "tenantcached_fills_total", "{source=\"l2\"}", stats_get(&stats.fills_l2));
    metrics_sample(out, "tenantcached_fills_total", "{source=\"l3\"}", stats_get(&stats.fills_l3));
    metrics_single(out, "tenantcached_fill_errors_total", "counter",
                   "Fills that failed (Redis and the origin unreachable).",
                   stats_get(&stats.fill_errors));
    metrics_single(out, "tenantcached_fills_shared_total", "counter",
                   "Misses that joined a fill already in flight.", stats_get(&stats.fills_shared));
    metrics_single(out, "tenantcached_fills_discarded_total", "counter",
                   "Fills answered but not cached because an invalidation raced them.",
                   stats_get(&stats.fills_discarded));
    metrics_single(out, "tenantcached_fills_negative_total", "counter",
                   "Fills the origin answered 404, cached as negative entries.",
                   stats_get(&stats.fills_negative));
    metrics_family(out, "tenantcached_evictions_total", "counter", "Entries evicted, by cause.");
    metrics_sample(out, "tenantcached_evictions_total", "{cause=\"expired\"}",
                   figures.evictions_expired);
    metrics_sample(out, "tenantcached_evictions_total", "{cause=\"reference\"}",
                   figures.evictions_reference);
    metrics_sample(out, "tenantcached_evictions_total", "{cause=\"tenant\"}",
                   figures.evictions_tenant);
    metrics_single(out, "tenantcached_not_cached_total", "counter",
                   "Values answered but not kept for lack of room.", figures.not_cached);
    metrics_family(out, "tenantcached_stale_total", "counter",
                   "Queries while the invalidation stream was down past redis.max_stale.");
    metrics_sample(out, "tenantcached_stale_total", "{action=\"served\"}",
                   stats_get(&stats.stale_served));
    metrics_sample(out, "tenantcached_stale_total", "{action=\"refused\"}",
                   stats_get(&stats.stale_refused));

    /* clients */
    metrics_single(out, "tenantcached_clients", "gauge", "Connected clients.",
                   stats_get(&stats.connected_clients));
    metrics_single(out, "tenantcached_connections_total", "counter", "Connections accepted.",
                   stats_get(&stats.connections_received));
    metrics_single(out, "tenantcached_connections_rejected_total", "counter",
                   "Connections refused (listen.max_clients).",
                   stats_get(&stats.connections_rejected));
    metrics_family(out, "tenantcached_clients_dropped_total", "counter",
                   "Clients disconnected by the daemon, by reason.");
    metrics_sample(out, "tenantcached_clients_dropped_total", "{reason=\"backlog\"}",
                   stats_get(&stats.clients_dropped_backlog));
    metrics_sample(out, "tenantcached_clients_dropped_total", "{reason=\"idle\"}",
                   stats_get(&stats.clients_dropped_idle));
    metrics_single(out, "tenantcached_tracking_clients", "gauge",
                   "Connections with CLIENT TRACKING on.", stats_get(&stats.tracking_clients));
    metrics_single(out, "tenantcached_tracking_keys", "gauge",
                   "Entry names remembered for CLIENT TRACKING.", stats_get(&stats.tracking_keys));
    metrics_single(out, "tenantcached_tracking_memory_bytes", "gauge",
                   "Bytes held by the CLIENT TRACKING table and queued invalidations.",
                   stats_get(&stats.tracking_bytes));
    metrics_single(out, "tenantcached_tracking_invalidations_total", "counter",
                   "Invalidations queued for tracking connections.",
                   stats_get(&stats.tracking_invalidations));
    metrics_single(out, "tenantcached_commands_total", "counter", "Commands executed.",
                   stats_get(&stats.commands_processed));
    metrics_single(out, "tenantcached_protocol_errors_total", "counter",
                   "Connections closed for a RESP framing error.", stats_get(&stats.protocol_errors));
    metrics_write_histogram(out);
}

static void metrics_handle_scrape(struct evhttp_request *request, void *arg)
{
    const struct metrics *metrics = arg;
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        evhttp_send_error(request, HTTP_INTERNAL, NULL);
        return;
    }
    metrics_write(metrics, body);
    evhttp_add_header(evhttp_request_get_output_headers(request), "Content-Type",
                      METRICS_CONTENT_TYPE);
    evhttp_send_reply(request, HTTP_OK, "OK", body);
    evbuffer_free(body);
}

static void metrics_handle_other(struct evhttp_request *request, void *arg)
{
    (void)arg;
    evhttp_send_error(request, HTTP_NOTFOUND, NULL);
}

/* ---- the listener ------------------------------------------------------- */

static bool metrics_is_loopback(const struct sockaddr *address)
{
    if (address->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)address;
        return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
    }
    if (address->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)address;
        return IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr);
    }
    return false;
}

/* A listening, non-blocking socket on one resolved address. Returns the fd,
 * or -1 with errno set. */
static int metrics_listen_on(const struct addrinfo *ai)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0)
        return -1;
    int on = 1;
    /* A restarted daemon must not wait out TIME_WAIT; v6-only so that "::"
     * and "0.0.0.0" given as two addresses never collide. */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        (ai->ai_family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on)) != 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, METRICS_LISTEN_BACKLOG) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Binds http to every address HOST resolves to ("localhost" is 127.0.0.1 and
 * ::1). Succeeds when at least one could be bound. Returns 0, or -1 with a
 * message in error and, when bind(2) or listen(2) failed, its errno in
 * *bind_errno. */
static int metrics_bind(struct evhttp *http, const char *listen, char *error, size_t error_size,
                        int *bind_errno)
{
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || colon == listen || colon[1] == '\0') {
        snprintf(error, error_size, "metrics.listen '%s' is not HOST:PORT", listen);
        return -1;
    }
    char *host = xstrndup(listen, (size_t)(colon - listen));
    size_t host_len = strlen(host);
    if (host_len >= 2 && host[0] == '[' && host[host_len - 1] == ']') { /* [::1]:9187 */
        memmove(host, host + 1, host_len - 2);
        host[host_len - 2] = '\0';
    }
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
    };
    struct addrinfo *list = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &list);
    free(host);
    if (rc != 0) {
        snprintf(error, error_size, "metrics.listen %s: %s", listen, gai_strerror(rc));
        return -1;
    }
    int bound = 0, first_errno = 0;
    bool exposed = false;
    for (const struct addrinfo *ai = list; ai != NULL; ai = ai->ai_next) {
        int fd = metrics_listen_on(ai);
        if (fd >= 0 && evhttp_accept_socket_with_handle(http, fd) == NULL) {
            close(fd);
            fd = -1;
            errno = ENOMEM;
        }
        if (fd < 0) {
            if (first_errno == 0)
                first_errno = errno;
            continue;
        }
        bound++;
        exposed = exposed || !metrics_is_loopback(ai->ai_addr);
    }
    freeaddrinfo(list);
    if (bound == 0) {
        *bind_errno = first_errno;
        snprintf(error, error_size, "metrics.listen %s: %s", listen,
                 strerror(first_errno ? first_errno : EADDRNOTAVAIL));
        return -1;
    }
    if (exposed)
        log_warn("metrics.listen %s is not a loopback address: /metrics has no authentication",
                 listen);
    return 0;
}

/* Builds a server for config bound to listen (which may differ from
 * config->metrics.listen when an old address is restored). Returns NULL with
 * a message in error on failure, and the errno of a failed bind in
 * *bind_errno (0 for other failures). */
static struct metrics *metrics_create(struct event_base *base, struct cache *cache,
                                      const struct config *config, const char *listen,
                                      char *error, size_t error_size, int *bind_errno)
{
    *bind_errno = 0;
    struct metrics *metrics = xcalloc(1, sizeof(*metrics));
    metrics->cache = cache;
    metrics->config = config;
    metrics->listen = xstrdup(listen);
    metrics->http = evhttp_new(base);
    if (metrics->http == NULL) {
        snprintf(error, error_size, "cannot create the metrics HTTP server");
        goto fail;
    }
    /* Scrapers send small GETs; anything else is refused before it costs. */
    evhttp_set_allowed_methods(metrics->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_timeout(metrics->http, METRICS_TIMEOUT_SECONDS);
    evhttp_set_max_headers_size(metrics->http, METRICS_MAX_HEADERS_BYTES);
    evhttp_set_max_body_size(metrics->http, METRICS_MAX_BODY_BYTES);
    if (evhttp_set_cb(metrics->http, "/metrics", metrics_handle_scrape, metrics) != 0) {
        snprintf(error, error_size, "cannot register /metrics");
        goto fail;
    }
    evhttp_set_gencb(metrics->http, metrics_handle_other, NULL);
    if (metrics_bind(metrics->http, listen, error, error_size, bind_errno) != 0)
        goto fail;
    log_info("serving metrics at http://%s/metrics", listen);
    return metrics;

fail:
    metrics_stop(metrics);
    return NULL;
}

struct metrics *metrics_start(struct event_base *base, struct cache *cache,
                              const struct config *config, int *failed, char *error,
                              size_t error_size)
{
    *failed = 0;
    const char *listen = config->metrics.listen;
    if (listen == NULL || listen[0] == '\0')
        return NULL;
    int bind_errno;
    struct metrics *metrics =
        metrics_create(base, cache, config, listen, error, error_size, &bind_errno);
    if (metrics == NULL)
        *failed = 1;
    return metrics;
}

struct metrics *metrics_reconfigure(struct metrics *metrics, struct event_base *base,
                                    struct cache *cache, const struct config *config)
{
    const char *listen = config->metrics.listen != NULL ? config->metrics.listen : "";
    if (metrics != NULL && strcmp(metrics->listen, listen) == 0) {
        metrics->config = config;
        return metrics;
    }
    if (listen[0] == '\0') {
        log_notice("metrics turned off (metrics.listen is empty)");
        metrics_stop(metrics);
        return NULL;
    }
    char error[256];
    int bind_errno;
    if (metrics == NULL) {
        struct metrics *fresh =
            metrics_create(base, cache, config, listen, error, sizeof(error), &bind_errno);
        if (fresh == NULL)
            log_error("%s; metrics stay off", error);
        return fresh;
    }
    /* Bind the new address before letting go of the old one, so that a
     * mistyped address leaves the metrics where they were. */
    struct metrics *fresh =
        metrics_create(base, cache, config, listen, error, sizeof(error), &bind_errno);
    if (fresh != NULL) {
        metrics_stop(metrics);
        return fresh;
    }
    if (bind_errno != EADDRINUSE) {
        log_error("%s; metrics stay at %s", error, metrics->listen);
        metrics->config = config;
        return metrics;
    }
    /* The new address may overlap the old one (127.0.0.1:9187 became
     * localhost:9187): let the old go, and take it back if the new still fails. */
    char *old_listen = xstrdup(metrics->listen);
    metrics_stop(metrics);
    fresh = metrics_create(base, cache, config, listen, error, sizeof(error), &bind_errno);
    if (fresh == NULL) {
        char retry_error[256];
        fresh = metrics_create(base, cache, config, old_listen, retry_error, sizeof(retry_error),
                               &bind_errno);
        if (fresh != NULL)
            log_error("%s; metrics stay at %s", error, old_listen);
        else
            log_error("%s; metrics are off (%s)", error, retry_error);
    }
    free(old_listen);
    return fresh;
}

void metrics_stop(struct metrics *metrics)
{
    if (metrics == NULL)
        return;
    if (metrics->http != NULL)
        evhttp_free(metrics->http);
    free(metrics->listen);
    free(metrics);
}
