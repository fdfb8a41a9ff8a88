/* counters.c - the table of the daemon's figures and its two renderings,
 * INFO lines and Prometheus text (see counters.h). */
#include "counters.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "freshness.h"
#include "redis_link.h"
#include "sentinel.h"
#include "stats.h"
#include "util.h"

/* ---- getters for the figures that are not a counter of stats.h ---- */

static uint64_t get_max_clients(const struct counters_view *view)
{
    return view->config->listen.max_clients;
}

static uint64_t get_max_buffer_memory(const struct counters_view *view)
{
    return view->config->listen.max_buffer_memory;
}

static uint64_t get_tracking_max_keys(const struct counters_view *view)
{
    return view->config->listen.tracking_max_keys;
}

static uint64_t get_used_memory(const struct counters_view *view)
{
    return view->cache.bytes;
}

static uint64_t get_rss(const struct counters_view *view)
{
    (void)view;
    return util_rss_bytes();
}

static uint64_t get_max_memory(const struct counters_view *view)
{
    return view->config->memory.max_bytes;
}

static double get_used_memory_percentage(const struct counters_view *view)
{
    uint64_t max = view->config->memory.max_bytes;
    return max ? 100.0 * (double)view->cache.bytes / (double)max : 0.0;
}

static uint64_t get_slab_spare_bytes(const struct counters_view *view)
{
    return view->cache.slab_spare_bytes;
}

static uint64_t get_critical_bytes(const struct counters_view *view)
{
    return view->cache.critical_bytes;
}

static uint64_t get_reference_bytes(const struct counters_view *view)
{
    return view->cache.reference_bytes;
}

static uint64_t get_tenant_max_memory(const struct counters_view *view)
{
    return view->config->memory.tenant_max_bytes;
}

static uint64_t get_max_tenants(const struct counters_view *view)
{
    return view->config->memory.max_tenants;
}

static uint64_t get_entries(const struct counters_view *view)
{
    return view->cache.entries;
}

static uint64_t get_tenants(const struct counters_view *view)
{
    return view->cache.tenants;
}

static double get_high_watermark(const struct counters_view *view)
{
    return view->config->memory.high_watermark;
}

static double get_low_watermark(const struct counters_view *view)
{
    return view->config->memory.low_watermark;
}

static uint64_t get_evictions_expired(const struct counters_view *view)
{
    return view->cache.evictions_expired;
}

static uint64_t get_evictions_reference(const struct counters_view *view)
{
    return view->cache.evictions_reference;
}

static uint64_t get_evictions_tenant(const struct counters_view *view)
{
    return view->cache.evictions_tenant;
}

static uint64_t get_not_cached(const struct counters_view *view)
{
    return view->cache.not_cached;
}

static uint64_t get_redis_connected(const struct counters_view *view)
{
    (void)view;
    return freshness_subscribed() ? 1 : 0;
}

static uint64_t get_stream_down_ms(const struct counters_view *view)
{
    return freshness_down_ms(view->now_ms);
}

static const char *get_redis_master(const struct counters_view *view, char *buf, size_t size)
{
    return redis_link_master_address(view->config, buf, size);
}

static uint64_t get_sentinel_switches(const struct counters_view *view)
{
    (void)view;
    return sentinel_switches();
}

/* redis.stream (docs/reference.md §7); empty without a stream */
static const char *get_stream_last_id(const struct counters_view *view, char *buf, size_t size)
{
    buf[0] = '\0';
    if (view->config->redis.stream[0] != '\0')
        snprintf(buf, size, "%llu-%llu", (unsigned long long)stats_get(&stats.stream_last_ms),
                 (unsigned long long)stats_get(&stats.stream_last_seq));
    return buf;
}

/* ---- the table ----
 *
 * In INFO order within each section. The rows of one Prometheus family are
 * adjacent, and its first row carries the type and the help (the unit suite
 * test_counters checks both). A new counter of stats.h is one row such as
 *
 *   {.section = COUNTERS_STATS, .info = "tracking_keys",
 *    .family = "tenantcached_tracking_keys", .type = "gauge",
 *    .help = "Keys some client tracks.", .labels = "", .counter = &stats.tracking_keys},
 *
 * (.family = NULL keeps it out of /metrics; .info = NULL out of INFO). */
#define C(name) .counter = &stats.name

const struct counters_row counters_rows[] = {
    /* # Clients */
    {.section = COUNTERS_CLIENTS, .info = "connected_clients", .family = "tenantcached_clients",
     .type = "gauge", .help = "Connected clients.", .labels = "", C(connected_clients)},
    {.section = COUNTERS_CLIENTS, .info = "max_clients", .get = get_max_clients},
    {.section = COUNTERS_CLIENTS, .info = "rejected_connections",
     .family = "tenantcached_connections_rejected_total", .type = "counter",
     .help = "Connections refused (listen.max_clients).", .labels = "",
     C(connections_rejected)},
    {.section = COUNTERS_CLIENTS, .info = "clients_dropped_backlog",
     .family = "tenantcached_clients_dropped_total", .type = "counter",
     .help = "Clients disconnected by the daemon, by reason.", .labels = "{reason=\"backlog\"}",
     C(clients_dropped_backlog)},
    {.section = COUNTERS_CLIENTS, .info = "clients_dropped_idle",
     .family = "tenantcached_clients_dropped_total", .labels = "{reason=\"idle\"}",
     C(clients_dropped_idle)},
    {.section = COUNTERS_CLIENTS, .info = "clients_dropped_memory",
     .family = "tenantcached_clients_dropped_total", .labels = "{reason=\"memory\"}",
     C(clients_dropped_memory)},
    {.section = COUNTERS_CLIENTS, .info = "client_buffer_bytes",
     .family = "tenantcached_client_buffer_bytes", .type = "gauge",
     .help = "Input and reply buffers held for clients (listen.max_buffer_memory).",
     .labels = "", C(client_buffer_bytes)},
    {.section = COUNTERS_CLIENTS, .info = "max_buffer_memory", .get = get_max_buffer_memory},
    {.section = COUNTERS_CLIENTS, .info = "protocol_errors",
     .family = "tenantcached_protocol_errors_total", .type = "counter",
     .help = "Connections closed for a RESP framing error.", .labels = "", C(protocol_errors)},
    /* CLIENT TRACKING (docs/reference.md §4) */
    {.section = COUNTERS_CLIENTS, .info = "tracking_clients",
     .family = "tenantcached_tracking_clients", .type = "gauge",
     .help = "Connections with CLIENT TRACKING on.", .labels = "", C(tracking_clients)},
    {.section = COUNTERS_CLIENTS, .info = "tracking_keys", .family = "tenantcached_tracking_keys",
     .type = "gauge", .help = "Entry names remembered for CLIENT TRACKING.", .labels = "",
     C(tracking_keys)},
    {.section = COUNTERS_CLIENTS, .info = "tracking_invalidations",
     .family = "tenantcached_tracking_invalidations_total", .type = "counter",
     .help = "Invalidations queued for tracking connections.", .labels = "",
     C(tracking_invalidations)},
    {.section = COUNTERS_CLIENTS, .info = "tracking_max_keys", .get = get_tracking_max_keys},

    /* # Memory */
    {.section = COUNTERS_MEMORY, .info = "used_memory", .family = "tenantcached_memory_used_bytes",
     .type = "gauge", .help = "Bytes the caches hold (keys, values and per-entry overhead).",
     .labels = "", .format = COUNTERS_BYTES, .get = get_used_memory},
    {.section = COUNTERS_MEMORY, .info = "used_memory_rss",
     .family = "tenantcached_memory_rss_bytes", .type = "gauge",
     .help = "Resident set size of the process.", .labels = "", .format = COUNTERS_BYTES,
     .get = get_rss},
    /* Free room in the entry slabs: resident, but not in used_memory. */
    {.section = COUNTERS_MEMORY, .info = "used_memory_slab_spare", .format = COUNTERS_BYTES,
     .get = get_slab_spare_bytes},
    {.section = COUNTERS_MEMORY, .info = "tracking_memory",
     .family = "tenantcached_tracking_memory_bytes", .type = "gauge",
     .help = "Bytes held by the CLIENT TRACKING table and queued invalidations.", .labels = "",
     .format = COUNTERS_BYTES, C(tracking_bytes)},
    {.section = COUNTERS_MEMORY, .info = "max_memory", .family = "tenantcached_memory_limit_bytes",
     .type = "gauge", .help = "The configured memory.max_bytes.", .labels = "",
     .format = COUNTERS_BYTES, .get = get_max_memory},
    {.section = COUNTERS_MEMORY, .info = "used_memory_percentage", .format = COUNTERS_RATIO,
     .ratio = get_used_memory_percentage},
    {.section = COUNTERS_MEMORY, .info = "used_memory_critical",
     .family = "tenantcached_memory_bytes", .type = "gauge",
     .help = "Bytes the caches hold, by tier.", .labels = "{tier=\"critical\"}",
     .get = get_critical_bytes},
    {.section = COUNTERS_MEMORY, .info = "used_memory_reference",
     .family = "tenantcached_memory_bytes", .labels = "{tier=\"reference\"}",
     .get = get_reference_bytes},
    {.section = COUNTERS_MEMORY, .info = "tenant_max_memory", .get = get_tenant_max_memory},
    {.section = COUNTERS_MEMORY, .info = "max_tenants", .get = get_max_tenants},
    {.section = COUNTERS_MEMORY, .info = "entries", .family = "tenantcached_entries",
     .type = "gauge", .help = "Cached entries, including tombstones and negative entries.",
     .labels = "", .get = get_entries},
    {.section = COUNTERS_MEMORY, .info = "tenants", .family = "tenantcached_tenants",
     .type = "gauge", .help = "Tenants with something cached.", .labels = "",
     .get = get_tenants},
    {.section = COUNTERS_MEMORY, .info = "high_watermark", .format = COUNTERS_RATIO,
     .ratio = get_high_watermark},
    {.section = COUNTERS_MEMORY, .info = "low_watermark", .format = COUNTERS_RATIO,
     .ratio = get_low_watermark},

    /* # Stats */
    {.section = COUNTERS_STATS, .info = "messages_applied",
     .family = "tenantcached_messages_total", .type = "counter",
     .help = "Invalidation messages received, by what became of them.",
     .labels = "{result=\"applied\"}", C(messages_applied)},
    {.section = COUNTERS_STATS, .info = "messages_stale", .family = "tenantcached_messages_total",
     .labels = "{result=\"stale\"}", C(messages_stale)},
    {.section = COUNTERS_STATS, .info = "messages_invalid",
     .family = "tenantcached_messages_total", .labels = "{result=\"invalid\"}",
     C(messages_invalid)},
    {.section = COUNTERS_STATS, .info = "messages_filtered",
     .family = "tenantcached_messages_total", .labels = "{result=\"filtered\"}",
     C(messages_filtered)},
    {.section = COUNTERS_STATS, .info = "messages_unknown_kind",
     .family = "tenantcached_messages_total", .labels = "{result=\"unknown_kind\"}",
     C(messages_unknown_kind)},
    {.section = COUNTERS_STATS, .info = "seq_gaps", .family = "tenantcached_seq_gaps_total",
     .type = "counter", .help = "Lost messages detected from a publisher's seq numbers.",
     .labels = "", C(seq_gaps)},
    {.section = COUNTERS_STATS, .info = "hits", .family = "tenantcached_hits_total",
     .type = "counter", .help = "Lookups answered from the cache.", .labels = "", C(hits)},
    {.section = COUNTERS_STATS, .info = "misses", .family = "tenantcached_misses_total",
     .type = "counter", .help = "Lookups not found in the cache.", .labels = "", C(misses)},
    {.section = COUNTERS_STATS, .info = "fills_l2", .family = "tenantcached_fills_total",
     .type = "counter", .help = "Misses filled, by the source that answered.",
     .labels = "{source=\"l2\"}", C(fills_l2)},
    {.section = COUNTERS_STATS, .info = "fills_l3", .family = "tenantcached_fills_total",
     .labels = "{source=\"l3\"}", C(fills_l3)},
    {.section = COUNTERS_STATS, .info = "fill_errors", .family = "tenantcached_fill_errors_total",
     .type = "counter", .help = "Fills that failed (Redis and the origin unreachable).",
     .labels = "", C(fill_errors)},
    {.section = COUNTERS_STATS, .info = "fills_shared",
     .family = "tenantcached_fills_shared_total", .type = "counter",
     .help = "Misses that joined a fill already in flight.", .labels = "", C(fills_shared)},
    {.section = COUNTERS_STATS, .info = "fills_discarded",
     .family = "tenantcached_fills_discarded_total", .type = "counter",
     .help = "Fills answered but not cached because an invalidation raced them.", .labels = "",
     C(fills_discarded)},
    {.section = COUNTERS_STATS, .info = "fills_negative",
     .family = "tenantcached_fills_negative_total", .type = "counter",
     .help = "Fills the origin answered 404, cached as negative entries.", .labels = "",
     C(fills_negative)},
    {.section = COUNTERS_STATS, .info = "evictions_expired",
     .family = "tenantcached_evictions_total", .type = "counter",
     .help = "Entries evicted, by cause.", .labels = "{cause=\"expired\"}",
     .get = get_evictions_expired},
    {.section = COUNTERS_STATS, .info = "evictions_reference",
     .family = "tenantcached_evictions_total", .labels = "{cause=\"reference\"}",
     .get = get_evictions_reference},
    {.section = COUNTERS_STATS, .info = "evictions_tenant",
     .family = "tenantcached_evictions_total", .labels = "{cause=\"tenant\"}",
     .get = get_evictions_tenant},
    {.section = COUNTERS_STATS, .info = "not_cached", .family = "tenantcached_not_cached_total",
     .type = "counter", .help = "Values answered but not kept for lack of room.", .labels = "",
     .get = get_not_cached},
    {.section = COUNTERS_STATS, .info = "stale_served", .family = "tenantcached_stale_total",
     .type = "counter",
     .help = "Queries while the invalidation stream was down past redis.max_stale.",
     .labels = "{action=\"served\"}", C(stale_served)},
    {.section = COUNTERS_STATS, .info = "stale_refused", .family = "tenantcached_stale_total",
     .labels = "{action=\"refused\"}", C(stale_refused)},
    /* also in # Clients, and in /metrics there as clients_dropped_total{reason="memory"} */
    {.section = COUNTERS_STATS, .info = "clients_dropped_memory", C(clients_dropped_memory)},
    {.section = COUNTERS_STATS, .info = "total_commands_processed",
     .family = "tenantcached_commands_total", .type = "counter", .help = "Commands executed.",
     .labels = "", C(commands_processed)},
    {.section = COUNTERS_STATS, .info = "total_connections_received",
     .family = "tenantcached_connections_total", .type = "counter",
     .help = "Connections accepted.", .labels = "", C(connections_received)},

    /* # Redis */
    {.section = COUNTERS_REDIS, .info = "redis_connected",
     .family = "tenantcached_redis_connected", .type = "gauge",
     .help = "1 while subscribed to the invalidation stream.", .labels = "",
     .get = get_redis_connected},
    {.section = COUNTERS_REDIS, .info = "redis_reconnects",
     .family = "tenantcached_redis_reconnects_total", .type = "counter",
     .help = "Resubscriptions after the invalidation stream was lost.", .labels = "",
     C(redis_reconnects)},
    {.section = COUNTERS_REDIS, .info = "redis_disconnected_seconds",
     .family = "tenantcached_redis_disconnected_seconds", .type = "gauge",
     .help = "Seconds the invalidation stream has been down (or a publisher silent); "
             "0 while up.",
     .labels = "", .format = COUNTERS_MS, .get = get_stream_down_ms},
    {.section = COUNTERS_REDIS, .info = "redis_master", .format = COUNTERS_TEXT,
     .text = get_redis_master},
    {.section = COUNTERS_REDIS, .info = "sentinel_switches",
     .family = "tenantcached_sentinel_switches_total", .type = "counter",
     .help = "Times the Redis master named by the sentinels changed.", .labels = "",
     .get = get_sentinel_switches},
    {.section = COUNTERS_REDIS, .info = "stream_last_id", .format = COUNTERS_TEXT,
     .text = get_stream_last_id},
    {.section = COUNTERS_REDIS, .info = "catchup_applied",
     .family = "tenantcached_catchup_applied_total", .type = "counter",
     .help = "Stream entries applied while catching up after a resubscription.", .labels = "",
     C(catchup_applied)},
    {.section = COUNTERS_REDIS, .info = "catchup_failed",
     .family = "tenantcached_catchup_failed_total", .type = "counter",
     .help = "Catch-ups that found the missed stream entries gone (on_reconnect applied).",
     .labels = "", C(catchup_failed)},
    {.section = COUNTERS_REDIS, .info = "messages_duplicate",
     .family = "tenantcached_messages_duplicate_total", .type = "counter",
     .help = "Live envelopes skipped as already applied from the stream.", .labels = "",
     C(messages_duplicate)},

    /* # Persistence: snapshot.path (docs/reference.md §6) */
    {.section = COUNTERS_PERSISTENCE, .info = "snapshot_saved_at", C(snapshot_saved_at)},
    {.section = COUNTERS_PERSISTENCE, .info = "snapshot_entries", C(snapshot_entries)},
    {.section = COUNTERS_PERSISTENCE, .info = "snapshot_save_ms", C(snapshot_save_ms)},
    {.section = COUNTERS_PERSISTENCE, .info = "snapshot_stall_us", C(snapshot_stall_us)},
    {.section = COUNTERS_PERSISTENCE, .info = "snapshot_loaded_entries",
     C(snapshot_loaded_entries)},
};

#undef C

const size_t counters_row_count = UTIL_ARRAY_LEN(counters_rows);

void counters_view_init(struct counters_view *view, struct cache *cache,
                        const struct config *config, uint64_t now_ms)
{
    cache_get_stats(cache, &view->cache);
    view->config = config;
    view->now_ms = now_ms;
}

uint64_t counters_value(const struct counters_row *row, const struct counters_view *view)
{
    if (row->counter != NULL)
        return stats_get(row->counter);
    return row->get != NULL ? row->get(view) : 0;
}

void counters_write_info(struct evbuffer *out, enum counters_section section,
                         const struct counters_view *view)
{
    for (size_t i = 0; i < counters_row_count; i++) {
        const struct counters_row *row = &counters_rows[i];
        if (row->section != section || row->info == NULL)
            continue;
        char buf[320];
        switch (row->format) {
        case COUNTERS_RATIO:
            evbuffer_add_printf(out, "%s:%.2f\r\n", row->info, row->ratio(view));
            break;
        case COUNTERS_TEXT:
            evbuffer_add_printf(out, "%s:%s\r\n", row->info, row->text(view, buf, sizeof(buf)));
            break;
        case COUNTERS_MS:
            evbuffer_add_printf(out, "%s:%llu\r\n", row->info,
                                (unsigned long long)(counters_value(row, view) / 1000));
            break;
        case COUNTERS_BYTES: {
            uint64_t bytes = counters_value(row, view);
            util_format_human_bytes(bytes, buf, sizeof(buf));
            evbuffer_add_printf(out, "%s:%llu\r\n%s_human:%s\r\n", row->info,
                                (unsigned long long)bytes, row->info, buf);
            break;
        }
        case COUNTERS_UINT:
            evbuffer_add_printf(out, "%s:%llu\r\n", row->info,
                                (unsigned long long)counters_value(row, view));
            break;
        }
    }
}

void counters_write_metrics(struct evbuffer *out, const struct counters_view *view)
{
    const char *family = NULL;
    for (size_t i = 0; i < counters_row_count; i++) {
        const struct counters_row *row = &counters_rows[i];
        if (row->family == NULL)
            continue;
        if (family == NULL || strcmp(family, row->family) != 0) {
            family = row->family;
            evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n", family, row->help, family,
                                row->type);
        }
        uint64_t value = counters_value(row, view);
        if (row->format == COUNTERS_MS)
            evbuffer_add_printf(out, "%s%s %.3f\n", family, row->labels,
                                (double)value / 1000.0);
        else
            evbuffer_add_printf(out, "%s%s %llu\n", family, row->labels,
                                (unsigned long long)value);
    }
}
