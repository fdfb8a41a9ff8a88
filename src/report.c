/* report.c - the INFO and HEALTH commands: what the daemon tells about
 * itself over the socket (docs/reference.md §4). INFO's counter sections come
 * from the counters table (counters.h), the same one /metrics writes; the
 * server and tenants sections and HEALTH's JSON are written here. HEALTH's
 * levels are relative to memory.low_watermark and memory.high_watermark.
 * Query threads only, like every command handler (command_call.h). */
#include "report.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acl.h"
#include "cache.h"
#include "command_call.h"
#include "config.h"
#include "counters.h"
#include "freshness.h"
#include "log.h"
#include "protocol.h"
#include "redis_link.h"
#include "reply.h"
#include "sentinel.h"
#include "stats.h"
#include "util.h"

static void info_server(struct command_call *call, struct evbuffer *text)
{
    uint64_t uptime = (call->now_ms - stats_get(&stats.start_ms)) / 1000;
    evbuffer_add_printf(text,
                        "# Server\r\ntenantcached_version:%s\r\nredis_version:7.0.0\r\n"
                        "process_id:%ld\r\nuptime_in_seconds:%llu\r\nuptime_in_days:%llu\r\n"
                        "config_file:%s\r\nthreads:%u\r\nshards:%u\r\napplication:%s\r\n"
                        "log_level:%s\r\n",
                        TENANTCACHED_VERSION, (long)getpid(), (unsigned long long)uptime,
                        (unsigned long long)(uptime / 86400), call->env->config->path,
                        call->env->config->threads, call->env->config->shards,
                        call->env->config->application, log_level_name(log_get_level()));
}

/* The sections of the counters table (counters.h). */
static void info_counters(struct command_call *call, struct evbuffer *text, const char *header,
                          enum counters_section section)
{
    struct counters_view view;
    counters_view_init(&view, call->env->cache, call->env->config, call->now_ms);
    evbuffer_add_printf(text, "# %s\r\n", header);
    counters_write_info(text, section, &view);
}

static void info_clients(struct command_call *call, struct evbuffer *text)
{
    info_counters(call, text, "Clients", COUNTERS_CLIENTS);
}

static void info_memory(struct command_call *call, struct evbuffer *text)
{
    info_counters(call, text, "Memory", COUNTERS_MEMORY);
}

static void info_stats(struct command_call *call, struct evbuffer *text)
{
    info_counters(call, text, "Stats", COUNTERS_STATS);
}

static void info_redis(struct command_call *call, struct evbuffer *text)
{
    info_counters(call, text, "Redis", COUNTERS_REDIS);
}

/* snapshot.path (docs/reference.md §6) */
static void info_persistence(struct command_call *call, struct evbuffer *text)
{
    info_counters(call, text, "Persistence", COUNTERS_PERSISTENCE);
}

/* A peer sees only the tenants it may read (docs/reference.md §8). */
static bool tenant_visible(const struct acl_grant *grant, const char *name)
{
    return acl_allows_tenant(grant, name, strlen(name));
}

struct tenant_lines {
    const struct acl_grant *grant;
    struct evbuffer *text;
};

static void info_tenant_line(void *arg, const struct cache_tenant_stats *tenant)
{
    struct tenant_lines *lines = arg;
    if (!tenant_visible(lines->grant, tenant->name))
        return;
    evbuffer_add_printf(lines->text, "tenant_%s:entries=%llu,bytes=%llu,hits=%llu,misses=%llu\r\n",
                        tenant->name, (unsigned long long)tenant->entries,
                        (unsigned long long)tenant->bytes, (unsigned long long)tenant->hits,
                        (unsigned long long)tenant->misses);
}

static void info_tenants(struct command_call *call, struct evbuffer *text)
{
    evbuffer_add_printf(text, "# Tenants\r\n");
    struct tenant_lines lines = {.grant = commands_grant(call), .text = text};
    cache_foreach_tenant(call->env->cache, info_tenant_line, &lines);
}

void report_command_info(struct command_call *call)
{
    static const struct {
        const char *name;
        void (*write)(struct command_call *call, struct evbuffer *text);
        bool in_default;
    } sections[] = {
        {"server", info_server, true}, {"clients", info_clients, true},
        {"memory", info_memory, true}, {"stats", info_stats, true},
        {"redis", info_redis, true},   {"persistence", info_persistence, true},
        {"tenants", info_tenants, false},
    };
    size_t len = 0;
    const char *wanted = call->request->argc == 2 ? commands_arg(call, 1, &len) : NULL;
    bool all = wanted != NULL && (util_equal_nocase(wanted, len, "all") ||
                                  util_equal_nocase(wanted, len, "everything"));
    bool default_set = wanted == NULL || util_equal_nocase(wanted, len, "default");
    struct evbuffer *text = evbuffer_new();
    for (size_t i = 0; i < UTIL_ARRAY_LEN(sections); i++) {
        bool include = all || (default_set && sections[i].in_default) ||
                       (wanted != NULL && util_equal_nocase(wanted, len, sections[i].name));
        if (!include)
            continue;
        if (evbuffer_get_length(text) > 0)
            evbuffer_add(text, "\r\n", 2);
        sections[i].write(call, text);
    }
    size_t text_len = evbuffer_get_length(text);
    reply_bulk(call->out, evbuffer_pullup(text, -1), text_len);
    evbuffer_free(text);
}

struct top_tenants {
    const struct acl_grant *grant;
    struct {
        char name[65];
        uint64_t bytes;
    } top[5];
    size_t count;
};

static void track_top_tenant(void *arg, const struct cache_tenant_stats *tenant)
{
    struct top_tenants *top = arg;
    if (!tenant_visible(top->grant, tenant->name))
        return;
    size_t capacity = UTIL_ARRAY_LEN(top->top);
    size_t position = top->count;
    while (position > 0 && top->top[position - 1].bytes < tenant->bytes)
        position--;
    if (position >= capacity)
        return;
    size_t last = top->count < capacity ? top->count : capacity - 1;
    memmove(&top->top[position + 1], &top->top[position], (last - position) * sizeof(top->top[0]));
    memcpy(top->top[position].name, tenant->name, sizeof(top->top[position].name));
    top->top[position].bytes = tenant->bytes;
    if (top->count < capacity)
        top->count++;
}

const char *report_health_status(double ratio, const struct config *config)
{
    if (ratio > REPORT_CRITICAL_RATIO)
        return "CRITICAL";
    if (ratio > config->memory.high_watermark)
        return "HIGH";
    if (ratio >= config->memory.low_watermark)
        return "MODERATE";
    return "LOW";
}

void report_command_health(struct command_call *call)
{
    const struct config *config = call->env->config;
    struct cache_stats figures;
    cache_get_stats(call->env->cache, &figures);
    double ratio = config->memory.max_bytes ? (double)figures.bytes / (double)config->memory.max_bytes
                                            : 0.0;
    bool connected = freshness_subscribed();
    json_t *health = json_object();
    json_object_set_new(health, "status", json_string(report_health_status(ratio, config)));
    json_object_set_new(health, "used_bytes", json_integer((json_int_t)figures.bytes));
    json_object_set_new(health, "limit_bytes", json_integer((json_int_t)config->memory.max_bytes));
    json_object_set_new(health, "usage_percentage", json_real(((double)(long long)(ratio * 10000.0)) / 100.0));
    json_object_set_new(health, "rss_bytes", json_integer((json_int_t)util_rss_bytes()));
    json_object_set_new(health, "entries", json_integer((json_int_t)figures.entries));
    json_object_set_new(health, "tenants", json_integer((json_int_t)figures.tenants));
    json_object_set_new(health, "redis", json_string(connected ? "connected" : "disconnected"));
    char master[300], sentinel_error[700];
    json_object_set_new(health, "redis_master",
                        json_string(redis_link_master_address(config, master, sizeof(master))));
    bool sentinel_failing = sentinel_problem(sentinel_error, sizeof(sentinel_error));
    if (sentinel_failing)
        json_object_set_new(health, "sentinel_error", json_string(sentinel_error));
    json_object_set_new(health, "stale_seconds",
                        json_integer((json_int_t)(freshness_down_ms(call->now_ms) / 1000)));
    json_t *evictions = json_object();
    json_object_set_new(evictions, "expired", json_integer((json_int_t)figures.evictions_expired));
    json_object_set_new(evictions, "reference", json_integer((json_int_t)figures.evictions_reference));
    json_object_set_new(evictions, "tenant", json_integer((json_int_t)figures.evictions_tenant));
    json_object_set_new(evictions, "not_cached", json_integer((json_int_t)figures.not_cached));
    json_object_set_new(health, "evictions", evictions);
    struct top_tenants top = {.grant = commands_grant(call)};
    cache_foreach_tenant(call->env->cache, track_top_tenant, &top);
    json_t *biggest = json_array();
    for (size_t i = 0; i < top.count; i++) {
        json_t *tenant = json_object();
        json_object_set_new(tenant, "tenant", json_string(top.top[i].name));
        json_object_set_new(tenant, "bytes", json_integer((json_int_t)top.top[i].bytes));
        json_array_append_new(biggest, tenant);
    }
    json_object_set_new(health, "top_tenants", biggest);

    json_t *advice = json_array();
    if (ratio > REPORT_CRITICAL_RATIO)
        json_array_append_new(advice, json_string("raise memory.max_bytes or run one instance per application (application:)"));
    if (ratio > config->memory.high_watermark && !config->redis.l2 && config->origin.url[0] == '\0')
        json_array_append_new(advice, json_string("enable redis.l2 or origin.url so evicted entries can be filled again"));
    if (ratio > config->memory.high_watermark)
        json_array_append_new(advice, json_string("lower the ttl of reference kinds (profile, audit, history)"));
    if (figures.evictions_tenant > 0)
        json_array_append_new(advice, json_string("whole tenants were evicted: raise memory.max_bytes or lower memory.max_tenants"));
    if (figures.not_cached > 0)
        json_array_append_new(advice, json_string("some entries did not fit: raise memory.tenant_max_bytes"));
    if (!connected)
        json_array_append_new(advice, json_string("the invalidation stream is down: check the Redis connection"));
    if (sentinel_failing)
        json_array_append_new(advice, json_string("the sentinels name no usable master: check redis.sentinels and redis.master_name (see sentinel_error)"));
    if (json_array_size(advice) == 0)
        json_array_append_new(advice, json_string("memory usage optimal"));
    json_object_set_new(health, "recommendations", advice);

    char *text = json_dumps(health, JSON_COMPACT | JSON_REAL_PRECISION(6));
    reply_bulk_string(call->out, text ? text : "{}");
    free(text);
    json_decref(health);
}
