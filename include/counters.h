/* counters.h - the one table of the daemon's figures, read by INFO and /metrics.
 *
 * Every figure INFO shows in its clients, memory, stats, redis and
 * persistence sections, and every figure /metrics exposes (but the build
 * label and the latency histogram), is one row: its INFO name and section,
 * its Prometheus family, type, help and labels, and where its value comes
 * from (a counter of stats.h, or a getter over a view gathered once per
 * report). INFO writes a section's rows in table order; /metrics writes every
 * row that has a family, a family's HELP and TYPE on its first row, so the
 * two show the same counters by construction.
 *
 * Adding a counter: the field in struct stats (stats.h), its increment, and
 * one row in counters.c (see the comment above the table there). */
#ifndef TENANTCACHED_COUNTERS_H
#define TENANTCACHED_COUNTERS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cache.h"

struct config;
struct evbuffer;

/* The INFO sections the table fills (server and tenants are written by hand). */
enum counters_section {
    COUNTERS_CLIENTS,
    COUNTERS_MEMORY,
    COUNTERS_STATS,
    COUNTERS_REDIS,
    COUNTERS_PERSISTENCE,
};

/* How a value is shown. Only UINT, BYTES and MS rows may have a family. */
enum counters_format {
    COUNTERS_UINT,  /* INFO name:N; /metrics N */
    COUNTERS_BYTES, /* INFO name:N and name_human:1.50M; /metrics N */
    COUNTERS_MS,    /* a duration in ms: INFO whole seconds; /metrics seconds, 3 decimals */
    COUNTERS_RATIO, /* INFO only: name:0.00 */
    COUNTERS_TEXT,  /* INFO only: name:text */
};

/* What one report reads, gathered once so that every row agrees. */
struct counters_view {
    struct cache_stats cache;
    const struct config *config; /* borrowed */
    uint64_t now_ms;             /* monotonic */
};

struct counters_row {
    enum counters_section section;
    const char *info;   /* INFO field name; NULL: /metrics only */
    const char *family; /* Prometheus family; NULL: INFO only */
    const char *type;   /* "counter" or "gauge"; on a family's first row */
    const char *help;   /* on a family's first row */
    const char *labels; /* "" or a complete {name="value"} */
    enum counters_format format;
    /* Exactly one source: */
    _Atomic uint64_t *counter;
    uint64_t (*get)(const struct counters_view *view);
    double (*ratio)(const struct counters_view *view);
    const char *(*text)(const struct counters_view *view, char *buf, size_t size);
};

extern const struct counters_row counters_rows[];
extern const size_t counters_row_count;

/* Fills view from the cache's figures, the config and the clock. Cannot fail. */
void counters_view_init(struct counters_view *view, struct cache *cache,
                        const struct config *config, uint64_t now_ms);
/* The value of a UINT, BYTES or MS row. */
uint64_t counters_value(const struct counters_row *row, const struct counters_view *view);
/* Appends the "name:value\r\n" lines of one INFO section (no header). */
void counters_write_info(struct evbuffer *out, enum counters_section section,
                         const struct counters_view *view);
/* Appends every row with a family in Prometheus text format 0.0.4. */
void counters_write_metrics(struct evbuffer *out, const struct counters_view *view);

#endif
