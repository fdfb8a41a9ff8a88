/* metrics.c - Prometheus text exposition (format 0.0.4) at /metrics (see metrics.h).
 *
 * An evhttp server on the main loop answers GET /metrics from the same table
 * INFO reads (counters.h), plus the build label and the histogram. The only
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
#include "counters.h"
#include "log.h"
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
    metrics_family(out, "tenantcached_build_info", "gauge",
                   "Always 1; the version label names the running build.");
    evbuffer_add_printf(out, "tenantcached_build_info{version=\"%s\"} 1\n", TENANTCACHED_VERSION);
    struct counters_view view;
    counters_view_init(&view, metrics->cache, metrics->config, util_monotonic_ms());
    counters_write_metrics(out, &view);
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
static int metrics_bind(struct evhttp *http, const char *listen, char *error,
                        int *bind_errno)
{
    const char *colon = strrchr(listen, ':');
    if (colon == NULL || colon == listen || colon[1] == '\0') {
        snprintf(error, ERROR_MAX, "metrics.listen '%s' is not HOST:PORT", listen);
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
        snprintf(error, ERROR_MAX, "metrics.listen %s: %s", listen, gai_strerror(rc));
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
        snprintf(error, ERROR_MAX, "metrics.listen %s: %s", listen,
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
                                      char *error, int *bind_errno)
{
    *bind_errno = 0;
    struct metrics *metrics = xcalloc(1, sizeof(*metrics));
    metrics->cache = cache;
    metrics->config = config;
    metrics->listen = xstrdup(listen);
    metrics->http = evhttp_new(base);
    if (metrics->http == NULL) {
        snprintf(error, ERROR_MAX, "cannot create the metrics HTTP server");
        goto fail;
    }
    /* Scrapers send small GETs; anything else is refused before it costs. */
    evhttp_set_allowed_methods(metrics->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_timeout(metrics->http, METRICS_TIMEOUT_SECONDS);
    evhttp_set_max_headers_size(metrics->http, METRICS_MAX_HEADERS_BYTES);
    evhttp_set_max_body_size(metrics->http, METRICS_MAX_BODY_BYTES);
    if (evhttp_set_cb(metrics->http, "/metrics", metrics_handle_scrape, metrics) != 0) {
        snprintf(error, ERROR_MAX, "cannot register /metrics");
        goto fail;
    }
    evhttp_set_gencb(metrics->http, metrics_handle_other, NULL);
    if (metrics_bind(metrics->http, listen, error, bind_errno) != 0)
        goto fail;
    log_info("serving metrics at http://%s/metrics", listen);
    return metrics;

fail:
    metrics_stop(metrics);
    return NULL;
}

int metrics_start(struct event_base *base, struct cache *cache, const struct config *config,
                  struct metrics **out, char *error)
{
    const char *listen = config->metrics.listen;
    int bind_errno;
    *out = NULL;
    if (listen == NULL || listen[0] == '\0')
        return 0;
    *out = metrics_create(base, cache, config, listen, error, &bind_errno);
    return *out != NULL ? 0 : -1;
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
    char error[ERROR_MAX];
    int bind_errno;
    if (metrics == NULL) {
        struct metrics *fresh =
            metrics_create(base, cache, config, listen, error, &bind_errno);
        if (fresh == NULL)
            log_error("%s; metrics stay off", error);
        return fresh;
    }
    /* Bind the new address before letting go of the old one, so that a
     * mistyped address leaves the metrics where they were. */
    struct metrics *fresh =
        metrics_create(base, cache, config, listen, error, &bind_errno);
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
    fresh = metrics_create(base, cache, config, listen, error, &bind_errno);
    if (fresh == NULL) {
        char retry_error[ERROR_MAX];
        fresh = metrics_create(base, cache, config, old_listen, retry_error, &bind_errno);
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
