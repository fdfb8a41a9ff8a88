/* stats.h - the daemon's counters, shared by every thread.
 *
 * Plain relaxed atomics: counters are written from the apply thread and the
 * query threads and read by INFO, HEALTH and /metrics, where a value a few
 * nanoseconds old is fine. One global instance, as redis-server's stat_* fields. */
#ifndef TENANTCACHED_STATS_H
#define TENANTCACHED_STATS_H

#include <stdatomic.h>
#include <stdint.h>

struct stats {
    _Atomic uint64_t messages_applied;
    _Atomic uint64_t messages_stale;
    _Atomic uint64_t messages_invalid;
    _Atomic uint64_t messages_filtered;
    _Atomic uint64_t messages_unknown_kind;
    _Atomic uint64_t seq_gaps;
    /* redis.stream (docs/reference.md §7) */
    _Atomic uint64_t catchup_applied;     /* entries applied while catching up */
    _Atomic uint64_t catchup_failed;      /* catch-ups that found the missed entries gone */
    _Atomic uint64_t messages_duplicate;  /* live envelopes already applied, skipped */
    _Atomic uint64_t stream_last_ms;      /* the last applied entry ID, for INFO (the two */
    _Atomic uint64_t stream_last_seq;     /* halves may be read a write apart) */
    _Atomic uint64_t hits;
    _Atomic uint64_t misses;
    _Atomic uint64_t fills_l2;
    _Atomic uint64_t fills_l3;
    _Atomic uint64_t fill_errors;
    _Atomic uint64_t fills_shared;
    _Atomic uint64_t fills_discarded;
    _Atomic uint64_t fills_negative;
    _Atomic uint64_t stale_served;
    _Atomic uint64_t stale_refused;
    _Atomic uint64_t commands_processed;
    _Atomic uint64_t connections_received;
    _Atomic uint64_t connections_rejected;
    _Atomic uint64_t protocol_errors;
    _Atomic uint64_t clients_dropped_backlog;
    _Atomic uint64_t clients_dropped_idle;
    _Atomic uint64_t clients_dropped_memory; /* listen.max_buffer_memory */
    _Atomic uint64_t client_buffer_bytes;    /* input and reply buffers of every client */
    _Atomic uint64_t connected_clients;
    /* Whether the stream is up is not a counter: freshness.h. */
    /* CLIENT TRACKING (tracking.c) */
    _Atomic uint64_t tracking_clients;       /* connections with tracking on */
    _Atomic uint64_t tracking_keys;          /* names in the tracking table */
    _Atomic uint64_t tracking_bytes;         /* what the table and outboxes hold */
    _Atomic uint64_t tracking_invalidations; /* invalidations queued, names and flushes */
    _Atomic uint64_t redis_reconnects;
    _Atomic uint64_t start_ms;             /* monotonic ms at start */
    /* snapshot.path (docs/reference.md §6) */
    _Atomic uint64_t snapshot_saved_at;       /* wall-clock seconds of the last save; 0: none */
    _Atomic uint64_t snapshot_entries;        /* entries in the last save */
    _Atomic uint64_t snapshot_save_ms;        /* how long the last save took, start to rename */
    _Atomic uint64_t snapshot_stall_us;       /* its longest shard lock hold */
    _Atomic uint64_t snapshot_loaded_entries; /* entries loaded at start */
};

extern struct stats stats;

static inline void stats_add(_Atomic uint64_t *counter, uint64_t n)
{
    atomic_fetch_add_explicit(counter, n, memory_order_relaxed);
}

static inline void stats_sub(_Atomic uint64_t *counter, uint64_t n)
{
    atomic_fetch_sub_explicit(counter, n, memory_order_relaxed);
}

static inline void stats_set(_Atomic uint64_t *counter, uint64_t value)
{
    atomic_store_explicit(counter, value, memory_order_relaxed);
}

static inline uint64_t stats_get(_Atomic uint64_t *counter)
{
    return atomic_load_explicit(counter, memory_order_relaxed);
}

#endif
