/* cache.h - the sharded, two-tier, per-tenant store.
 *
 * Entries are keyed by (tenant, kind, key) triples, never by one concatenated
 * string. Tenants are spread over a power-of-two number of shards by the hash
 * of their name; a shard's read-write lock covers every tenant in it, so a
 * query that needs several entries of one tenant (CAN reads a user and its
 * roles) locks once. Readers share the lock and never wait for each other;
 * a writer (writes are serialised, see the thread rules below) holds a shard
 * only for the time of one entry's change.
 *
 * Each entry is one object: a 37-byte header (no pointers; times in 32
 * or 48 bits), key, compact JSON value and the "derived" blob from value.c,
 * carved from the cache's size-class slabs (slab.h; a glibc block above
 * SLAB_OBJECT_MAX); a tenant finds its entries in an open-addressing table
 * of pointers and one-byte hash tags. Memory is accounted exactly from what
 * the allocators hold (an entry: its class size), per tenant and in all,
 * and kept within the limits by
 * evicting, in this order: expired entries, negative entries (origin 404s,
 * which together hold at most an eighth of max_bytes), least-recently-used
 * reference entries, whole least-recently-used tenants. Critical entries are
 * never evicted one by one. A fill's write (cache_write.if_absent) for a
 * tenant with nothing cached never evicts another tenant's data: a query
 * must not make another tenant lose its data.
 *
 * Thread rules: cache_read_* from any thread, never blocking each other.
 * The writing calls may come from any thread too: an internal mutex
 * serialises them (the apply thread is the usual writer; FLUSH from a query
 * thread is the other). */
#ifndef TENANTCACHED_CACHE_H
#define TENANTCACHED_CACHE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache;
struct cache_entry;
struct cache_tenant;
struct cache_shard;

struct cache_limits {
    uint64_t max_bytes;
    uint64_t tenant_max_bytes;
    unsigned max_tenants;
    double high_watermark;  /* fraction of max_bytes that starts a shrink */
    double low_watermark;   /* fraction a shrink stops at */
    unsigned hot_reads;     /* 0: do not count reads per minute */
};

struct cache_key {
    const char *tenant;
    size_t tenant_len;
    unsigned kind;          /* index into the config's kinds table (< 64) */
    const char *key;
    size_t key_len;
};

/* What a set stores. The cache copies everything; the caller keeps ownership. */
struct cache_value {
    const char *json;
    size_t json_len;
    const void *derived;
    size_t derived_len;
    const char *index_key;  /* secondary index (a hierarchy entity's parent); NULL: none */
    size_t index_key_len;
};

/* How a write is to be applied. */
struct cache_write {
    bool critical;          /* the kind's tier */
    bool has_version;       /* false: always applies, the version becomes 0 */
    uint64_t version;
    uint64_t expires_ms;    /* monotonic ms; 0: never. Kept to the ms when less
                             * than 12 days ahead, else rounded up to 1.024 s */
    uint64_t updated_ms;    /* wall-clock ms of the change (kept below 2^48) */
    bool if_absent;         /* a fill: never replace a live entry or tombstone */
    /* A fill: not written (CACHE_STALE) if *epoch no longer equals
     * epoch_seen once the writers' lock is held, so that a flush that bumps
     * the epoch and then flushes can never miss what a fill writes. NULL:
     * no such check. */
    const _Atomic uint64_t *epoch;
    uint64_t epoch_seen;
};

enum cache_status {
    CACHE_OK,               /* applied */
    CACHE_STALE,            /* version not newer than the entry's or tombstone's */
    CACHE_NOT_CACHED,       /* no room under the limits: answered but not kept */
    CACHE_EXISTS,           /* if_absent and something live was there */
};

enum cache_entry_state {
    CACHE_ENTRY_VALUE,
    CACHE_ENTRY_TOMBSTONE,  /* deleted: answers nil, blocks older writes and fills */
    CACHE_ENTRY_NEGATIVE,   /* the origin said 404: answers nil until it expires */
};

struct cache_stats {
    uint64_t bytes;         /* accounted bytes, all tenants */
    uint64_t entries;       /* live entries (values, tombstones and negatives) */
    uint64_t tenants;
    uint64_t critical_bytes;
    uint64_t reference_bytes;
    uint64_t evictions_expired;
    uint64_t evictions_reference;
    uint64_t evictions_tenant;
    uint64_t evictions_negative; /* negative entries evicted (they go first) */
    uint64_t negative_entries;   /* negative entries cached now */
    uint64_t not_cached;    /* writes answered but not kept for lack of room */
    /* What the entries' slabs hold beyond the live entries (free objects,
     * headers): memory in use but not in `bytes`, which counts each
     * entry's class size (slab.h), since evicting one entry need not give
     * any of it back. */
    uint64_t slab_spare_bytes;
};

/* Per-tenant figures for TENANT, INFO tenants and HEALTH. */
struct cache_tenant_stats {
    char name[65];
    uint64_t bytes;
    uint64_t critical_bytes;
    uint64_t entries;
    uint64_t hits;
    uint64_t misses;
    uint64_t last_access_ms; /* wall clock; 0: never read */
    unsigned kind_count;     /* number of valid slots below (0 from
                              * cache_foreach_tenant()) */
    uint64_t kind_entries[64];
    uint64_t kind_bytes[64];
};

/* Creates an empty cache with `shards` shards (a power of two). Cannot fail. */
struct cache *cache_create(unsigned shards, const struct cache_limits *limits);
void cache_destroy(struct cache *cache);
/* New limits apply to the next writes; call cache_enforce() to apply them now. */
void cache_set_limits(struct cache *cache, const struct cache_limits *limits);

/* Told of every change of an entry, whatever its cause: a value, tombstone
 * or negative entry stored, replaced or dropped (messages, fills, expiry,
 * eviction, flushes, kind remaps). A flush of every tenant and kind calls it
 * once with tenant NULL instead of once per entry. It runs on the writing
 * thread with the writers' lock and the entry's shard write-locked, so it
 * must be quick and must not call into the cache; the pointers are borrowed
 * for the call. */
typedef void cache_change_fn(void *arg, const char *tenant, size_t tenant_len, unsigned kind,
                             const char *key, size_t key_len);
/* Installs the change hook (NULL: none). Call before any writer runs. */
void cache_set_change_hook(struct cache *cache, cache_change_fn *fn, void *arg);

/* ---- Readers (any thread) ---- */

/* A read session over one tenant; holds its shard's read lock from begin to
 * end, so keep it short and never block inside it. Entries found stay valid
 * until cache_read_end(). */
struct cache_reader {
    struct cache *cache;
    struct cache_shard *shard;
    struct cache_tenant *tenant; /* NULL: the tenant has nothing cached */
    uint64_t now_ms;
    uint32_t stamp;              /* recency stamp for what this session reads */
    /* Counted by cache_read_find() and added to the shared figures once, at
     * cache_read_end(): a command that reads several entries (CAN) pays
     * for the contended counters once. */
    uint32_t hits;
    uint32_t misses;
};

void cache_read_begin(struct cache *cache, const char *tenant, size_t tenant_len, uint64_t now_ms,
                      struct cache_reader *reader);
void cache_read_end(struct cache_reader *reader);

/* The live (unexpired) entry for (kind, key), or NULL. Counts a hit or a miss
 * for the tenant (in the figures from cache_read_end() on) and marks the
 * entry recently used. */
const struct cache_entry *cache_read_find(struct cache_reader *reader, unsigned kind,
                                          const char *key, size_t key_len);

/* Calls fn for each live value entry of `kind` whose index key equals
 * index_key (the children of a hierarchy entity), in no particular order. */
void cache_read_index(struct cache_reader *reader, unsigned kind, const char *index_key,
                      size_t index_key_len,
                      void (*fn)(void *arg, const struct cache_entry *entry), void *arg);

enum cache_entry_state cache_entry_state(const struct cache_entry *entry);
bool cache_entry_critical(const struct cache_entry *entry);
/* The key: `len` bytes, not NUL-terminated. */
const char *cache_entry_key(const struct cache_entry *entry, size_t *len);
/* The compact JSON, `len` bytes, not NUL-terminated; empty for tombstones
 * and negatives. */
const char *cache_entry_value(const struct cache_entry *entry, size_t *len);
const void *cache_entry_derived(const struct cache_entry *entry, size_t *len);
uint64_t cache_entry_version(const struct cache_entry *entry);
uint64_t cache_entry_updated_ms(const struct cache *cache, const struct cache_entry *entry);

/* ---- The writer ---- */

enum cache_status cache_set(struct cache *cache, const struct cache_key *key,
                            const struct cache_value *value, const struct cache_write *write,
                            uint64_t now_ms);
/* Replaces the entry by a tombstone carrying the version, living until
 * write->expires_ms. */
enum cache_status cache_delete(struct cache *cache, const struct cache_key *key,
                               const struct cache_write *write, uint64_t now_ms);
/* Stores a negative entry (origin 404) unless something live is there, or
 * epoch (when not NULL) no longer equals epoch_seen (see cache_write). */
enum cache_status cache_set_negative(struct cache *cache, const struct cache_key *key,
                                     uint64_t expires_ms, const _Atomic uint64_t *epoch,
                                     uint64_t epoch_seen, uint64_t now_ms);
/* Drops the entry (no tombstone; a live tombstone is kept). A version not
 * newer than the entry's makes it CACHE_STALE and nothing is dropped.
 * *recent_reads (may be NULL) receives how often the dropped entry was read
 * in the last minute, when limits.hot_reads is set. */
enum cache_status cache_invalidate(struct cache *cache, const struct cache_key *key,
                                   bool has_version, uint64_t version, uint64_t now_ms,
                                   uint32_t *recent_reads);
/* Drops a tenant's entries (tenant NULL: every tenant), of one kind when
 * kind >= 0. Returns the number of entries dropped. */
uint64_t cache_flush(struct cache *cache, const char *tenant, size_t tenant_len, int kind);

/* Reclaims expired entries and tombstones, scanning at most `budget` table
 * slots from where the last call stopped. Returns entries reclaimed. */
uint64_t cache_sweep(struct cache *cache, uint64_t now_ms, unsigned budget);
/* The adaptive shrink: when usage is above the high watermark, evicts
 * least-recently-used reference entries (at most `budget` of them per call)
 * until it is below the low one. Returns true while more work remains. */
bool cache_shrink(struct cache *cache, uint64_t now_ms, unsigned budget);
/* Brings the cache within its limits now (after the limits were lowered). */
void cache_enforce(struct cache *cache, uint64_t now_ms);

/* After a reload renumbered the kinds: an entry of kind k (k < map_count)
 * becomes kind map[k]; map[k] < 0 (the kind was removed, or is no longer
 * cached here) drops it, and a kind >= map_count is dropped too. Entries
 * keep their kind by name across a reload (docs/reference.md §8). Returns
 * the number of entries dropped. */
uint64_t cache_remap_kinds(struct cache *cache, const int *map, unsigned map_count);

/* ---- Figures (any thread) ---- */

void cache_get_stats(struct cache *cache, struct cache_stats *out);
/* Fills out for the tenant, its per-kind figures too (counted from its
 * entries, under its shard's read lock: O(its entries)); returns false if
 * the tenant is not resident. */
bool cache_tenant_get_stats(struct cache *cache, const char *tenant, size_t tenant_len,
                            struct cache_tenant_stats *out);
/* Calls fn for every resident tenant, one shard locked at a time, without
 * per-kind figures (kind_count 0). */
void cache_foreach_tenant(struct cache *cache,
                          void (*fn)(void *arg, const struct cache_tenant_stats *tenant),
                          void *arg);

/* Sets the clock used to stamp tenant reads (wall-clock ms); the main loop
 * ticks it so readers need no clock call. */
void cache_set_wall_clock(struct cache *cache, uint64_t wall_ms);

/* Bytes of an entry before its key: the fixed header and the packed
 * fields (lengths, times, version), and the bytes it was allocated with
 * before its allocator's rounding (for the per-entry layout figures of
 * `make bench`). */
size_t cache_entry_header_bytes(const struct cache_entry *entry);
size_t cache_entry_allocated_bytes(const struct cache_entry *entry);

/* ---- Whole-cache walks (snapshots) ---- */

/* One value or tombstone as cache_foreach_entry() shows it; every pointer is
 * valid only during the callback. */
struct cache_entry_view {
    const char *tenant;
    size_t tenant_len;
    unsigned kind;
    const char *key;
    size_t key_len;
    const char *json;       /* "" for a tombstone */
    size_t json_len;
    bool tombstone;
    bool critical;
    uint64_t version;       /* 0: unversioned */
    uint64_t expires_ms;    /* monotonic; 0: never */
    uint64_t updated_ms;    /* wall clock */
};

unsigned cache_shard_count(const struct cache *cache);
/* Calls fn for every value and tombstone of one shard (0 .. shard count - 1;
 * negative entries are left out) under the shard's read lock: writers to that
 * shard wait until it returns, so fn must be quick and must not call into the
 * cache. Returns the number of entries shown. Any thread. */
uint64_t cache_foreach_entry(struct cache *cache, unsigned shard,
                             void (*fn)(void *arg, const struct cache_entry_view *entry),
                             void *arg);

#endif
