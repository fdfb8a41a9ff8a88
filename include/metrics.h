/* metrics.h - Prometheus text exposition at http://metrics.listen/metrics.
 *
 * Optional (metrics.listen empty: off). Served by libevent's HTTP server on
 * the main loop; writes the counters table INFO writes too (counters.h), so
 * the two always agree. */
#ifndef TENANTCACHED_METRICS_H
#define TENANTCACHED_METRICS_H

#include <stddef.h>

#include "errors.h"

struct cache;
struct config;
struct event_base;
struct metrics;

/* Starts serving when config->metrics.listen is set. Returns 0 with the
 * server in *out, or 0 with *out NULL (nothing to stop) when metrics.listen is
 * empty; -1 with the reason in error[ERROR_MAX] when it cannot serve (a bind
 * failure). The cache and config are borrowed. */
int metrics_start(struct event_base *base, struct cache *cache, const struct config *config,
                  struct metrics **out, char *error);
/* Applies a reloaded config (a changed address rebinds). Returns the metrics
 * server to use from now on, which may be NULL (turned off) or new. */
struct metrics *metrics_reconfigure(struct metrics *metrics, struct event_base *base,
                                    struct cache *cache, const struct config *config);
void metrics_stop(struct metrics *metrics);

/* Records one query's service time, for the latency histogram. Any thread. */
void metrics_observe_latency(double seconds);

#endif
