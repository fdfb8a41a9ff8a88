/* freshness.h - whether the invalidation stream is current: the one rule.
 *
 * The stream counts as down while the subscription is lost or still catching
 * up (redis.stream), and while a publisher has been silent past
 * redis.heartbeat_timeout; down since the earlier of the two. Critical data
 * is refused once it has been down longer than redis.max_stale
 * (docs/reference.md §7). INFO, HEALTH, /metrics, the query commands and the
 * daemon's status line all ask here; nothing else derives it.
 *
 * The main thread writes (freshness_start, _current, _lost, _set_silent);
 * any thread reads. Relaxed atomics: a reader may see a state a write old. */
#ifndef TENANTCACHED_FRESHNESS_H
#define TENANTCACHED_FRESHNESS_H

#include <stdbool.h>
#include <stdint.h>

/* At start: down since now_ms (monotonic) until the first subscribe. */
void freshness_start(uint64_t now_ms);
/* Subscribed and caught up: the stream is current again. */
void freshness_current(void);
/* The subscription was lost at now_ms; a loss during an outage already
 * counted (a catch-up that did not finish) keeps the outage's start. */
void freshness_lost(uint64_t now_ms);
/* A publisher has been silent since since_ms (0: every publisher is heard). */
void freshness_set_silent(uint64_t since_ms);
/* Monotonic ms since which a publisher is silent; 0 when none is. */
uint64_t freshness_silent_since(void);

/* True while subscribed and caught up (INFO redis_connected). */
bool freshness_subscribed(void);
/* Monotonic ms since which the stream counts as down; 0 while it is fresh. */
uint64_t freshness_down_since(void);
/* How long (ms) the stream has counted as down at now_ms; 0 while fresh. */
uint64_t freshness_down_ms(uint64_t now_ms);
/* True when the stream has been down longer than max_stale_ms at now_ms:
 * critical data must not be served. */
bool freshness_stale(uint64_t now_ms, uint64_t max_stale_ms);

#endif
