/* sentinel.h - the Redis master, found through Redis Sentinel and followed
 * across failovers (docs/reference.md §7, "Redis high availability").
 *
 * With redis.sentinels set, the pub/sub and L2 connections (redis_link.c) do
 * not use redis.host/port: before each connect they ask this module for the
 * current master (sentinel_master()), and they reconnect at once when it
 * moves (sentinel_watch()). The module runs on the main loop and holds two
 * kinds of plain hiredis async connections to the sentinels:
 *
 *  - a query: the sentinels are asked in turn (`SENTINEL
 *    GET-MASTER-ADDR-BY-NAME redis.master_name`) until one names a master
 *    that answers `ROLE` with "master". A round that finds none is tried
 *    again after the same backoff as the Redis connections (reconnect_min
 *    doubled up to reconnect_max, with jitter). A query runs at start, after
 *    any lost Redis connection (sentinel_master_lost()), and whenever the
 *    watch connection is (re)established;
 *  - a watch: one sentinel's `+switch-master` channel. A switch of our master
 *    is verified with `ROLE` and followed at once. A lost watch moves to the
 *    next sentinel after the backoff.
 *
 * One instance per process (the links find it without being handed it). The
 * readers below are thread-safe, for INFO and HEALTH on the query threads.
 * Another connection to the master (a stream reader, say) gets all of this
 * by being a redis_link; code that only needs the address calls
 * sentinel_master(), or redis_link_master_address() for either mode. */
#ifndef TENANTCACHED_SENTINEL_H
#define TENANTCACHED_SENTINEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config;
struct event_base;
struct sentinel;

#define SENTINEL_HOST_MAX 256

/* Starts following config->redis.master_name through config->redis.sentinels
 * (the config is copied). Returns NULL when no sentinel is configured. Only
 * one may run at a time (a second start is a fatal programming error). The
 * first query starts from the loop: nothing happens before this returns. */
struct sentinel *sentinel_start(struct event_base *base, const struct config *config);

/* Applies a reloaded config: when the sentinels, the master name or any
 * password changed, the connections are made again and the master is asked
 * for anew; otherwise only timeouts and backoff bounds change. */
void sentinel_reconfigure(struct sentinel *sentinel, const struct config *config);

/* Closes the connections and frees everything; the master becomes unknown.
 * From the loop, outside hiredis callbacks. NULL is a no-op. */
void sentinel_stop(struct sentinel *sentinel);

/* The current master: copies its host into host (size bytes) and its port
 * into *port and returns 0, or returns -1 when no master is known (no
 * sentinel running, or none has named a verified master yet). The one place
 * to ask "where is Redis" when redis.sentinels is set. Thread-safe. */
int sentinel_master(char *host, size_t size, unsigned *port);

/* How many times the master changed after the first one was found. Thread-safe. */
uint64_t sentinel_switches(void);

/* Why no usable master is known, or why the last query failed ("sentinel
 * 127.0.0.1:26379 knows no master named 'x' (check redis.master_name)"),
 * into buf; returns false (buf "") when all is well. Thread-safe. */
bool sentinel_problem(char *buf, size_t size);

/* Called (on the main loop, possibly inside a hiredis callback of another
 * connection) after the master changed: the watcher reconnects to
 * sentinel_master(). Registration is independent of sentinel_start(); fn and
 * arg together identify a watcher. Main loop only. */
typedef void sentinel_moved_fn(void *arg);
void sentinel_watch(sentinel_moved_fn *fn, void *arg);
void sentinel_unwatch(sentinel_moved_fn *fn, void *arg);

/* A connection to the master failed or was lost: the sentinels are asked
 * again (unless a query is already running or waiting for its backoff).
 * Safe inside hiredis callbacks; a no-op while no sentinel runs. */
void sentinel_master_lost(void);

#endif
