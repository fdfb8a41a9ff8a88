/* cache.c - the sharded, two-tier, per-tenant store (see cache.h).
 *
 * Layout: cache -> shards (rwlock + hash table of tenants) -> tenant (an
 * open-addressing table of entries' 32-bit references with one-byte hash
 * tags, a sorted array for the secondary index) -> entries
 * (one object each, from the cache's slab pool (slab.h), which turns a
 * reference into an address: a 7-byte header and packed varint fields, no
 * pointers, key, JSON value, derived blob, index key, and for some a
 * tail: a negative entry's tenant, a read counter for hot refresh).
 *
 * Writers are serialised by one mutex (cache->writer: the apply thread, and
 * FLUSH from a query thread), so the structures used to choose victims (the
 * array of every tenant with a Fenwick tree of their reference entry counts,
 * the array of every negative entry) and the entries' slab pool belong to
 * whoever holds it and need no other lock; readers only touch each entry's
 * atomic recency word and gap byte. Recency is a logical clock (one tick
 * per read session), which keeps sampled LRU accurate however fast reads
 * come. Expiries are 32-bit millisecond ticks compared on the wrapping clock
 * (see fields_set_expiry()), so the writers' and readers' now_ms must be one
 * monotonic clock. */
#include "cache.h"

#include <pthread.h>
#include <stdlib.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "slab.h"
#include "stats.h"
#include "util.h"

#define EVICTION_SAMPLES 16
#define TENANT_SAMPLES 16
#define INITIAL_BUCKETS 8
#define INITIAL_SLOTS 8
#define NEGATIVE_MIN_CAPACITY 256
#define TENANTS_MIN_CAPACITY 64
#define INDEX_MEMBERS_MIN 3
#define KIND_LIMIT 64
#define TENANT_NAME_MAX 64
/* Negative entries together hold at most 1/NEGATIVE_SHARE of max_bytes. */
#define NEGATIVE_SHARE 8
/* Negative entries looked at for a tenant holding nothing else (all of them
 * when there are no more). */
#define NEGATIVE_TENANT_SAMPLES 256

/* An entry: seven fixed bytes (one recency word plus a one-byte distance
 * to the read before it for LRU-2, the kind, flags), then, packed:
 *   the expiry as a 32-bit tick (only with ENTRY_EXPIRES; see
 *     fields_set_expiry()),
 *   the lengths of key and value (varints),
 *   the key and the value (the compact JSON, not NUL-terminated),
 *   the lengths of the derived blob (only with KIND_DERIVED) and of the
 *     index key (only with KIND_INDEX), the version (only with
 *     ENTRY_VERSIONED) and the update time (zigzag, relative to the
 *     cache's epoch), as varints,
 *   the derived blob and the index key (unless ENTRY_INDEX_SHARED).
 * So a lookup finds the key, and GET the value, past two varints (one byte
 * each for short ones); only writes and the queries that read derived data
 * decode the rest. A seed-typical entry's fixed and packed bytes are 13-18
 * in all. Only with hot refresh on does an entry carry a read counter
 * (count_read()). Nothing in it changes after entry_create() but the
 * recency word, the gap and (while the writers' lock and the shard's are
 * held) the kind. */
struct cache_entry {
    _Atomic uint32_t access;    /* logical clock of the last read */
    _Atomic uint8_t gap;        /* log-coded reads between the last read and the one
                                 * before it (gap_encode()); 0: read once at most */
    uint8_t kind;               /* ENTRY_KIND: the kind (< KIND_LIMIT); KIND_DERIVED,
                                 * KIND_INDEX: whether those lengths are packed (else 0) */
    uint8_t flags;              /* state (ENTRY_STATE) and the ENTRY_* bits below */
    unsigned char packed[];     /* see above */
};

#define ENTRY_KIND 0x3f
#define KIND_DERIVED 0x40
#define KIND_INDEX 0x80
_Static_assert(KIND_LIMIT - 1 <= ENTRY_KIND, "a kind fits its bits");

#define ENTRY_STATE 0x03          /* enum cache_entry_state */
#define ENTRY_CRITICAL 0x04
#define ENTRY_INDEX_SHARED 0x08   /* the index key is the derived blob's tail, not copied */
#define ENTRY_EXPIRES 0x10        /* it has an expiry */
#define ENTRY_EXPIRES_COARSE 0x20 /* the expiry counts units of COARSE_MS, not ms */
#define ENTRY_COUNTED 0x40        /* a read counter follows the data (count_read()) */
#define ENTRY_VERSIONED 0x80      /* a version other than 0 is packed */
/* Expiries less than FINE_RANGE_MS ahead are kept in ms, wrapping every 2^32
 * ms (49 days): they are told apart from the current time as long as they
 * are less than 2^31 ms (24 days) away, which the margin and the sweep (it
 * visits every entry every few minutes) guarantee. Farther ones (TTLs go up
 * to a year) count units of COARSE_MS, rounded up: 2^31 of them is 69 years. */
#define FINE_RANGE_MS (1ull << 30)
#define COARSE_SHIFT 10
#define COARSE_MS (1ull << COARSE_SHIFT)
#define UPDATED_MAX ((1ull << 48) - 1)

/* Bytes of an entry before its packed fields. */
#define ENTRY_HEADER offsetof(struct cache_entry, packed)
/* A tenant's table (open addressing, linear probing) grows when more than
 * LOAD_MAX_16THS/16 of its slots are taken, to hold 4/3 of its entries:
 * between 3/4 and 7/8 full, 5.7-6.7 bytes an entry with its tags. The
 * tags keep the long probes of a full table cheap: a miss reads a run of
 * tag bytes (about 10 at 3/4, 32 at 7/8), not entries. */
#define LOAD_MAX_16THS 14
#define TAG_USED 0x80             /* a tag's high bit: the slot is taken */
/* Tries at a random slot of a tenant's table for a reference entry before
 * walking on from the last one. */
#define SLOT_TRIES 4

/* One entry of a tenant's secondary index (a parent's children): the hash
 * of its kind and index key, and the entry. */
struct index_member {
    uint32_t hash;
    uint32_t ref;               /* the entry's reference (slab.h) */
};


struct cache_tenant {
    struct cache_tenant *next;  /* chain in the shard's table */
    uint64_t hash;
    /* The entries: `capacity` slots, then as many tags (one byte each: the
     * entry hash's low bits with TAG_USED set, 0 for a free slot) in the same
     * allocation, so that most probes never touch an entry. */
    uint32_t *slots;            /* entries' references (slab.h); 0: free */
    uint32_t capacity;
    uint32_t entry_count;
    uint32_t reference_count;
    uint32_t negative_count;    /* its negative entries (origin 404s) */
    uint32_t tenant_slot;       /* index in cache->tenants */
    uint64_t bytes;
    uint64_t critical_bytes;
    /* The secondary index: every entry with an index key, sorted by
     * index_member.hash (8 bytes each; the entry holds the key). */
    struct index_member *index;
    uint32_t index_count;
    uint32_t index_capacity;
    _Atomic uint32_t access;
    _Atomic uint64_t hits;
    _Atomic uint64_t misses;
    _Atomic uint64_t last_access_ms;
    uint8_t name_len;
    char name[];
};

struct cache_shard {
    pthread_rwlock_t lock;
    struct cache_tenant **buckets;
    uint32_t bucket_count;
    uint32_t tenant_count;
} __attribute__((aligned(64)));

struct cache {
    /* Serialises the writers: the apply thread, and FLUSH from a query
     * thread. Functions named do_* expect the caller to hold it. */
    pthread_mutex_t writer;
    struct cache_shard *shards;
    unsigned shard_count;
    struct cache_limits limits;
    uint64_t seed;
    /* What entries' update times are packed relative to: the wall clock
     * when the cache was made, so that recent ones take 3-4 bytes. */
    uint64_t epoch_ms;
    size_t page_size;
    _Atomic uint32_t clock;
    _Atomic uint64_t wall_ms;
    _Atomic unsigned hot_reads;  /* limits.hot_reads, for the readers */
    /* The writers' latest now_ms: what cache_foreach_entry() tells the
     * wrapped expiries apart by. */
    _Atomic uint64_t now_ms;

    /* The writer's own, for choosing victims: every tenant, and over the
     * same slots a Fenwick tree of their reference entry counts (so that a
     * reference entry is sampled uniformly: a tenant in proportion to its
     * count, then a slot of its table). */
    uint32_t reference_count;
    uint32_t *reference_tree;   /* tenant_capacity + 1 nodes, 1-based */
    /* Every negative entry: the first to go, and bounded as a whole (a peer
     * asking for made-up names must not push real data out). */
    struct cache_entry **negative;
    uint32_t negative_count;
    uint32_t negative_capacity;
    uint64_t negative_bytes;
    struct cache_tenant **tenants;
    uint32_t tenant_count;
    uint32_t tenant_capacity;
    uint32_t sweep_tenant;
    uint32_t sweep_slot;
    uint64_t random_state;
    bool shrinking;

    _Atomic uint64_t bytes;     /* tenants' bytes plus the shared tables */
    _Atomic uint64_t entries;
    _Atomic uint64_t tenant_total;
    _Atomic uint64_t critical_bytes;
    _Atomic uint64_t overhead_bytes;
    _Atomic uint64_t evictions_expired;
    _Atomic uint64_t evictions_reference;
    _Atomic uint64_t evictions_tenant;
    _Atomic uint64_t evictions_negative;
    _Atomic uint64_t negative_entries; /* negative_count, for the readers */
    _Atomic uint64_t not_cached;

    /* The entries' memory (slab.h): used only by whoever holds the writers'
     * lock, as are the entries' allocations and frees. slab_spare is what
     * its slabs hold beyond the live entries (free objects and the slabs'
     * headers), for the readers of the figures. */
    struct slab_pool *slabs;
    _Atomic uint64_t slab_spare;

    /* Told of every change (cache_set_change_hook); set before any writer
     * runs. A flush of everything tells it once, not entry by entry. */
    cache_change_fn *change_fn;
    void *change_arg;
    bool flushing_all;
};

/* ---- small helpers ---- */

static uint64_t load(_Atomic uint64_t *value)
{
    return atomic_load_explicit(value, memory_order_relaxed);
}

static void store(_Atomic uint64_t *value, uint64_t v)
{
    atomic_store_explicit(value, v, memory_order_relaxed);
}

static void adjust(_Atomic uint64_t *value, int64_t delta)
{
    atomic_fetch_add_explicit(value, (uint64_t)delta, memory_order_relaxed);
}

static uint64_t next_random(struct cache *cache)
{
    return util_random(&cache->random_state);
}

/* True if stamp a is older than stamp b on the wrapping logical clock. */
static bool older(uint32_t a, uint32_t b)
{
    return (int32_t)(a - b) < 0;
}

static uint32_t tick(struct cache *cache)
{
    return atomic_fetch_add_explicit(&cache->clock, 1, memory_order_relaxed);
}

static uint32_t entry_hash(const struct cache *cache, unsigned kind, const char *key, size_t len)
{
    return (uint32_t)util_hash(key, len, cache->seed + kind * 0x9e3779b97f4a7c15ull);
}

static struct cache_shard *shard_of(const struct cache *cache, uint64_t tenant_hash)
{
    return &cache->shards[tenant_hash & (cache->shard_count - 1)];
}

/* ---- an entry's packed fields ---- */

/* Reads a varint that entry_pack() wrote (never malformed). */
static uint64_t get_varint(const unsigned char **cursor)
{
    const unsigned char *p = *cursor;
    uint64_t value = *p & 0x7f;
    for (unsigned shift = 7; *p++ & 0x80; shift += 7)
        value |= (uint64_t)(*p & 0x7f) << shift;
    *cursor = p;
    return value;
}

static uint64_t zigzag(int64_t value)
{
    return ((uint64_t)value << 1) ^ (uint64_t)(value >> 63);
}

static int64_t unzigzag(uint64_t value)
{
    return (int64_t)(value >> 1) ^ -(int64_t)(value & 1);
}

/* What an entry says of itself beyond its fixed header, before packing. */
struct entry_fields {
    size_t key_len;
    size_t value_len;
    size_t derived_len;
    size_t index_len;        /* 0: no index key */
    uint64_t version;
    uint64_t updated;        /* zigzag(updated ms - cache->epoch_ms) */
    uint32_t expires;        /* with ENTRY_EXPIRES in flags */
    uint8_t flags;           /* ENTRY_EXPIRES, ENTRY_EXPIRES_COARSE, ENTRY_VERSIONED,
                              * ENTRY_INDEX_SHARED as the entry has them */
};

/* Bytes of the varints that follow the value. */
static size_t trailer_size(const struct entry_fields *fields)
{
    return (fields->derived_len ? util_varint_size(fields->derived_len) : 0) +
           (fields->index_len ? util_varint_size(fields->index_len) : 0) +
           ((fields->flags & ENTRY_VERSIONED) ? util_varint_size(fields->version) : 0) +
           util_varint_size(fields->updated);
}

/* Bytes of the packed fields (all but the key, value and blobs). */
static size_t packed_size(const struct entry_fields *fields)
{
    return ((fields->flags & ENTRY_EXPIRES) ? sizeof(uint32_t) : 0) +
           util_varint_size(fields->key_len) + util_varint_size(fields->value_len) +
           trailer_size(fields);
}

static unsigned entry_kind(const struct cache_entry *entry)
{
    return entry->kind & ENTRY_KIND;
}

/* Writes everything after the fixed bytes but the tail; entry->flags must
 * be set already. The value may be NULL for no value (the fields' lengths
 * are then 0). */
static void entry_pack(struct cache_entry *entry, unsigned kind, const struct entry_fields *fields,
                       const char *key, const struct cache_value *value)
{
    unsigned char *out = entry->packed;
    if (fields->flags & ENTRY_EXPIRES) {
        memcpy(out, &fields->expires, sizeof(fields->expires));
        out += sizeof(fields->expires);
    }
    out = util_put_varint(out, fields->key_len);
    out = util_put_varint(out, fields->value_len);
    memcpy(out, key, fields->key_len);
    out += fields->key_len;
    if (fields->value_len > 0)
        memcpy(out, value->json, fields->value_len);
    out += fields->value_len;
    if (fields->derived_len) {
        out = util_put_varint(out, fields->derived_len);
        kind |= KIND_DERIVED;
    }
    if (fields->index_len) {
        out = util_put_varint(out, fields->index_len);
        kind |= KIND_INDEX;
    }
    if (fields->flags & ENTRY_VERSIONED)
        out = util_put_varint(out, fields->version);
    out = util_put_varint(out, fields->updated);
    if (fields->derived_len > 0)
        memcpy(out, value->derived, fields->derived_len);
    out += fields->derived_len;
    if (fields->index_len > 0 && !(fields->flags & ENTRY_INDEX_SHARED))
        memcpy(out, value->index_key, fields->index_len);
    entry->kind = (uint8_t)kind;
}

/* Where the packed lengths start: the key's, then the value's. */
static const unsigned char *entry_lengths(const struct cache_entry *entry)
{
    return entry->packed + ((entry->flags & ENTRY_EXPIRES) ? sizeof(uint32_t) : 0);
}

/* Where the varints after the value start; the key's and value's lengths
 * in *key_len and *value_len. */
static const unsigned char *entry_trailer(const struct cache_entry *entry, size_t *key_len,
                                          size_t *value_len)
{
    const unsigned char *in = entry_lengths(entry);
    *key_len = (size_t)get_varint(&in);
    *value_len = (size_t)get_varint(&in);
    return in + *key_len + *value_len;
}

static void entry_unpack(const struct cache_entry *entry, struct entry_fields *fields)
{
    fields->flags = entry->flags;
    fields->expires = 0;
    if (entry->flags & ENTRY_EXPIRES)
        memcpy(&fields->expires, entry->packed, sizeof(fields->expires));
    const unsigned char *in = entry_trailer(entry, &fields->key_len, &fields->value_len);
    fields->derived_len = (entry->kind & KIND_DERIVED) ? (size_t)get_varint(&in) : 0;
    fields->index_len = (entry->kind & KIND_INDEX) ? (size_t)get_varint(&in) : 0;
    fields->version = (entry->flags & ENTRY_VERSIONED) ? get_varint(&in) : 0;
    fields->updated = get_varint(&in);
}

/* The key, `*len` bytes. */
static const char *entry_key(const struct cache_entry *entry, size_t *len)
{
    const unsigned char *in = entry_lengths(entry);
    *len = (size_t)get_varint(&in);
    while (*in++ & 0x80) /* the value's length */
        ;
    return (const char *)in;
}

/* The value's text and length. */
static const char *entry_value_ptr(const struct cache_entry *entry, size_t *len)
{
    const unsigned char *in = entry_lengths(entry);
    size_t key_len = (size_t)get_varint(&in);
    *len = (size_t)get_varint(&in);
    return (const char *)in + key_len;
}

static const unsigned char *derived_ptr(const struct cache_entry *entry,
                                        const struct entry_fields *fields)
{
    return entry_lengths(entry) + util_varint_size(fields->key_len) +
           util_varint_size(fields->value_len) + fields->key_len + fields->value_len +
           trailer_size(fields);
}

/* The index key (fields->index_len bytes). */
static const char *entry_index_ptr(const struct cache_entry *entry,
                                   const struct entry_fields *fields)
{
    const char *end = (const char *)derived_ptr(entry, fields) + fields->derived_len;
    return (entry->flags & ENTRY_INDEX_SHARED) ? end - fields->index_len : end;
}

static bool entry_indexed(const struct cache_entry *entry)
{
    return (entry->kind & KIND_INDEX) != 0;
}

/* True if the index key is the derived blob's last bytes (a hierarchy
 * entity's parent is), so that the entry need not store it twice. */
static bool index_in_derived(const struct cache_value *value)
{
    return value != NULL && value->index_key != NULL && value->index_key_len > 0 &&
           value->derived_len >= value->index_key_len &&
           memcmp((const char *)value->derived + value->derived_len - value->index_key_len,
                  value->index_key, value->index_key_len) == 0;
}


static enum cache_entry_state entry_state(const struct cache_entry *entry)
{
    return (enum cache_entry_state)(entry->flags & ENTRY_STATE);
}

static bool entry_critical(const struct cache_entry *entry)
{
    return (entry->flags & ENTRY_CRITICAL) != 0;
}

/* The version; 0 for a negative entry. */
static uint64_t entry_version(const struct cache_entry *entry)
{
    if (!(entry->flags & ENTRY_VERSIONED) || entry_state(entry) == CACHE_ENTRY_NEGATIVE)
        return 0;
    struct entry_fields fields;
    entry_unpack(entry, &fields);
    return fields.version;
}

/* Sets the expiry fields (monotonic ms, 0: never) of an entry written at
 * now_ms. */
static void fields_set_expiry(struct entry_fields *fields, uint64_t expires_ms, uint64_t now_ms)
{
    fields->flags &= (uint8_t)~(ENTRY_EXPIRES | ENTRY_EXPIRES_COARSE);
    fields->expires = 0;
    if (expires_ms == 0)
        return;
    fields->flags |= ENTRY_EXPIRES;
    if (expires_ms < now_ms)
        expires_ms = now_ms; /* already expired: so it stays, however far back */
    if (expires_ms - now_ms < FINE_RANGE_MS) {
        fields->expires = (uint32_t)expires_ms;
    } else {
        fields->flags |= ENTRY_EXPIRES_COARSE;
        fields->expires = (uint32_t)((expires_ms + COARSE_MS - 1) >> COARSE_SHIFT);
    }
}

static uint32_t entry_expiry_tick(const struct cache_entry *entry)
{
    uint32_t tick;
    memcpy(&tick, entry->packed, sizeof(tick));
    return tick;
}

static bool entry_expired(const struct cache_entry *entry, uint64_t now_ms)
{
    if (!(entry->flags & ENTRY_EXPIRES))
        return false;
    if (entry->flags & ENTRY_EXPIRES_COARSE)
        return (int32_t)((uint32_t)(now_ms >> COARSE_SHIFT) - entry_expiry_tick(entry)) >= 0;
    return (int32_t)((uint32_t)now_ms - entry_expiry_tick(entry)) >= 0;
}

/* The expiry as monotonic ms (0: never), told apart from the wrapped
 * values by reference_ms, a time less than 2^31 ticks away from it. */
static uint64_t entry_expires_ms(const struct cache_entry *entry, uint64_t reference_ms)
{
    if (!(entry->flags & ENTRY_EXPIRES))
        return 0;
    uint32_t tick = entry_expiry_tick(entry);
    if (entry->flags & ENTRY_EXPIRES_COARSE) {
        uint64_t units = reference_ms >> COARSE_SHIFT;
        units += (uint64_t)(int64_t)(int32_t)(tick - (uint32_t)units);
        return units << COARSE_SHIFT;
    }
    return reference_ms + (uint64_t)(int64_t)(int32_t)(tick - (uint32_t)reference_ms);
}

static void fields_set_updated(const struct cache *cache, struct entry_fields *fields,
                               uint64_t updated_ms)
{
    if (updated_ms > UPDATED_MAX)
        updated_ms = UPDATED_MAX;
    fields->updated = zigzag((int64_t)updated_ms - (int64_t)cache->epoch_ms);
}

static uint64_t entry_updated(const struct cache *cache, const struct cache_entry *entry)
{
    struct entry_fields fields;
    entry_unpack(entry, &fields);
    return (uint64_t)((int64_t)cache->epoch_ms + unzigzag(fields.updated));
}

/* The distance between an entry's last two reads, in logical clock ticks,
 * in one byte: exact below 16, then 3 significant bits (within 12.5%),
 * enough to order entries by their second-to-last read. 0 stands for "no
 * read before the last", so a distance of 0 is coded as 1. */
static uint8_t gap_encode(uint32_t distance)
{
    if (distance < 16)
        return (uint8_t)(distance ? distance : 1);
    int bit = 31 - __builtin_clz(distance); /* 4 .. 31 */
    return (uint8_t)(16 + (bit - 4) * 8 + ((distance >> (bit - 3)) & 7));
}

static uint32_t gap_decode(uint8_t code)
{
    if (code < 16)
        return code;
    unsigned bit = (unsigned)(code - 16) / 8 + 4;
    return (8u | ((unsigned)(code - 16) & 7)) << (bit - 3);
}

/* The hash is not stored (4 bytes an entry): the table's one-byte tags
 * leave one probe in 128 to get here by chance, and kind and length tell
 * most of those apart before the bytes. */
static bool entry_matches(const struct cache_entry *entry, unsigned kind, const char *key,
                          size_t key_len)
{
    if (entry_kind(entry) != kind)
        return false;
    size_t len;
    const char *entry_key_bytes = entry_key(entry, &len);
    return len == key_len && memcmp(entry_key_bytes, key, key_len) == 0;
}

/* ---- an entry's tail ----
 *
 * What only some entries need follows their data, 8-byte aligned: a
 * negative entry's tenant and its index in cache->negative (negative
 * entries are evicted from the cache's list of them, which must lead back
 * to the tenant), then, when hot refresh is on (limits.hot_reads; off by
 * default) as the entry is written, a read counter (ENTRY_COUNTED): the
 * minute (high 16 bits) and the reads in it (low 16). Entries written while
 * it was off have none and count as never read. */

struct negative_tail {
    struct cache_tenant *tenant;
    uint32_t slot;               /* index in cache->negative */
};

/* Bytes of the packed fields and data of an entry with these fields
 * (ENTRY_INDEX_SHARED in `flags`: the index key is not stored again). */
static size_t data_size(const struct entry_fields *fields)
{
    return packed_size(fields) + fields->key_len + fields->value_len +
           fields->derived_len + ((fields->flags & ENTRY_INDEX_SHARED) ? 0 : fields->index_len);
}

/* Offset of the tail from the entry's start, after `data_bytes` of data. */
static size_t tail_offset(size_t data_bytes)
{
    return (ENTRY_HEADER + data_bytes + 7) & ~(size_t)7;
}

/* Bytes of an entry with `data_bytes` of data and the tail it needs. */
static size_t entry_size_for(size_t data_bytes, bool negative, bool counted)
{
    if (!negative && !counted)
        return ENTRY_HEADER + data_bytes;
    return tail_offset(data_bytes) + (negative ? sizeof(struct negative_tail) : 0) +
           (counted ? sizeof(uint32_t) : 0);
}

static unsigned char *entry_tail(const struct cache_entry *entry)
{
    struct entry_fields fields;
    entry_unpack(entry, &fields);
    return (unsigned char *)((uintptr_t)entry + tail_offset(data_size(&fields)));
}

/* Bytes the entry was allocated with (entry_size() when it was made). */
static size_t entry_alloc_size(const struct cache_entry *entry)
{
    struct entry_fields fields;
    entry_unpack(entry, &fields);
    return entry_size_for(data_size(&fields),
                          (entry->flags & ENTRY_STATE) == CACHE_ENTRY_NEGATIVE,
                          (entry->flags & ENTRY_COUNTED) != 0);
}

static struct negative_tail *negative_tail(const struct cache_entry *entry)
{
    return (struct negative_tail *)(void *)entry_tail(entry);
}

static _Atomic uint32_t *entry_reads(const struct cache_entry *entry)
{
    unsigned char *tail = entry_tail(entry);
    if (entry_state(entry) == CACHE_ENTRY_NEGATIVE)
        tail += sizeof(struct negative_tail);
    return (_Atomic uint32_t *)(void *)tail;
}

static uint32_t current_minute(struct cache *cache)
{
    return (uint32_t)((load(&cache->wall_ms) / 60000) & 0xffff);
}

/* Counts a read. Racy by design (a read lost at a minute's turn does not
 * matter), never locked. */
static void count_read(struct cache *cache, const struct cache_entry *entry)
{
    if (!(entry->flags & ENTRY_COUNTED))
        return;
    _Atomic uint32_t *counter = entry_reads(entry);
    uint32_t minute = current_minute(cache);
    uint32_t reads = atomic_load_explicit(counter, memory_order_relaxed);
    if ((reads >> 16) != minute)
        atomic_store_explicit(counter, (minute << 16) | 1, memory_order_relaxed);
    else if ((reads & 0xffff) != 0xffff)
        atomic_fetch_add_explicit(counter, 1, memory_order_relaxed);
}

/* Reads of the entry in the current minute, or in the previous one when
 * the current one has just begun: "read N times a minute" (hot refresh). */
static uint32_t recent_read_count(struct cache *cache, const struct cache_entry *entry)
{
    if (!(entry->flags & ENTRY_COUNTED))
        return 0;
    uint32_t reads = atomic_load_explicit(entry_reads(entry), memory_order_relaxed);
    uint32_t minute = current_minute(cache);
    uint32_t stamp = reads >> 16;
    if (stamp == minute || stamp == ((minute - 1) & 0xffff))
        return reads & 0xffff;
    return 0;
}

/* The fields of an entry for key and value (NULL: none) as written by
 * `write` at now_ms. */
static void fields_for(const struct cache *cache, struct entry_fields *fields,
                       const struct cache_key *key, const struct cache_value *value,
                       const struct cache_write *write, uint64_t now_ms)
{
    *fields = (struct entry_fields){.key_len = key->key_len};
    if (value != NULL) {
        fields->value_len = value->json_len;
        fields->derived_len = value->derived_len;
        fields->index_len = value->index_key != NULL ? value->index_key_len : 0;
        if (index_in_derived(value))
            fields->flags |= ENTRY_INDEX_SHARED;
    }
    if (write->has_version && write->version != 0) {
        fields->flags |= ENTRY_VERSIONED;
        fields->version = write->version;
    }
    fields_set_expiry(fields, write->expires_ms, now_ms);
    fields_set_updated(cache, fields, write->updated_ms);
}

/* Bytes an entry with these fields allocates (a negative one when
 * `negative`, with a read counter when `counted`). */
static size_t entry_size(const struct entry_fields *fields, bool negative, bool counted)
{
    return entry_size_for(data_size(fields), negative, counted);
}

/* ---- references ---- */

/* The entry a reference in a table names (slab_object()). */
static struct cache_entry *entry_at(const struct cache *cache, uint32_t ref)
{
    return slab_object(cache->slabs, ref);
}

/* The entry in slot i of the tenant's table, or NULL. */
static struct cache_entry *slot_entry(const struct cache *cache, const struct cache_tenant *tenant,
                                      uint32_t i)
{
    uint32_t ref = tenant->slots[i];
    return ref != 0 ? entry_at(cache, ref) : NULL;
}

/* ---- accounting ---- */

static void account_tenant(struct cache *cache, struct cache_tenant *tenant, int64_t delta)
{
    tenant->bytes += (uint64_t)delta;
    adjust(&cache->bytes, delta);
}

static void account_overhead(struct cache *cache, int64_t delta)
{
    adjust(&cache->overhead_bytes, delta);
    adjust(&cache->bytes, delta);
}

/* What an entry holds: its slab class's size, or for a large entry the
 * malloc block's. The slabs' spare room is left out (cache->slab_spare):
 * evicting an entry need not give any of it back, and the eviction loops
 * must see each eviction lower the accounted bytes. */
static int64_t entry_bytes(const struct cache_entry *entry)
{
    size_t size = entry_alloc_size(entry);
    if (size <= SLAB_OBJECT_MAX)
        return (int64_t)slab_object_bytes(size);
    return (int64_t)util_alloc_size(entry);
}

/* At least what util_alloc_size() will say of an allocation of `size`
 * bytes: glibc adds a size word and rounds up to 16 (32 at least), and
 * rounds the chunks it maps (large ones) up to a page. */
static uint64_t alloc_bound(const struct cache *cache, size_t size)
{
    if (size >= 64 * 1024)
        return size + cache->page_size + sizeof(size_t);
    return size + 3 * sizeof(size_t);
}

/* At least what entry_bytes() will say of an entry of `size` bytes. */
static uint64_t entry_bound(const struct cache *cache, size_t size)
{
    if (size <= SLAB_OBJECT_MAX)
        return slab_object_bytes(size);
    return alloc_bound(cache, size);
}

/* The entries' allocator: an entry of `size` bytes (entry_size()). The
 * caller holds the writers' lock (or, in cache_destroy(), is alone). */
static void *entry_alloc(struct cache *cache, size_t size, uint32_t *ref)
{
    void *entry = slab_alloc(cache->slabs, size, ref);
    struct slab_stats figures;
    slab_get_stats(cache->slabs, &figures);
    store(&cache->slab_spare, figures.spare_bytes);
    return entry;
}

/* Frees the entry with reference `ref`. */
static void entry_free(struct cache *cache, uint32_t ref, const struct cache_entry *entry)
{
    slab_free(cache->slabs, ref, entry_alloc_size(entry));
    struct slab_stats figures;
    slab_get_stats(cache->slabs, &figures);
    store(&cache->slab_spare, figures.spare_bytes);
}

/* ---- creation ---- */

struct cache *cache_create(unsigned shards, const struct cache_limits *limits)
{
    struct cache *cache = xcalloc(1, sizeof(*cache));
    if (shards == 0 || (shards & (shards - 1)) != 0)
        shards = 64;
    cache->shard_count = shards;
    cache->limits = *limits;
    atomic_init(&cache->hot_reads, limits->hot_reads);
    pthread_mutex_init(&cache->writer, NULL);
    cache->seed = util_monotonic_us() * 0x9e3779b97f4a7c15ull;
    cache->epoch_ms = util_realtime_ms();
    cache->random_state = cache->seed | 1;
    long page_size = sysconf(_SC_PAGESIZE);
    cache->page_size = page_size > 0 ? (size_t)page_size : 4096;
    cache->shards = aligned_alloc(64, sizeof(struct cache_shard) * shards);
    if (cache->shards == NULL)
        log_fatal("out of memory allocating %u cache shards", shards);
    pthread_rwlockattr_t attributes;
    pthread_rwlockattr_init(&attributes);
    /* A steady stream of readers must not starve the writer applying
     * invalidations: stale answers are worse than a short wait. */
    pthread_rwlockattr_setkind_np(&attributes, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    for (unsigned i = 0; i < shards; i++) {
        struct cache_shard *shard = &cache->shards[i];
        memset(shard, 0, sizeof(*shard));
        pthread_rwlock_init(&shard->lock, &attributes);
        shard->bucket_count = INITIAL_BUCKETS;
        shard->buckets = xcalloc(shard->bucket_count, sizeof(*shard->buckets));
        account_overhead(cache, (int64_t)util_alloc_size(shard->buckets));
    }
    pthread_rwlockattr_destroy(&attributes);
    cache->slabs = slab_pool_create();
    account_overhead(cache, (int64_t)(util_alloc_size(cache) + util_alloc_size(cache->shards) +
                                      util_alloc_size(cache->slabs)));
    return cache;
}

void cache_set_limits(struct cache *cache, const struct cache_limits *limits)
{
    pthread_mutex_lock(&cache->writer);
    cache->limits = *limits;
    atomic_store(&cache->hot_reads, limits->hot_reads);
    pthread_mutex_unlock(&cache->writer);
}

void cache_set_change_hook(struct cache *cache, cache_change_fn *fn, void *arg)
{
    cache->change_fn = fn;
    cache->change_arg = arg;
}

void cache_set_wall_clock(struct cache *cache, uint64_t wall_ms)
{
    store(&cache->wall_ms, wall_ms);
}

/* ---- the writer's victim arrays ---- */

/* Adds delta to the reference count of the tenant in slot `slot` of
 * cache->tenants, in the Fenwick tree. */
static void reference_tree_add(struct cache *cache, uint32_t slot, int64_t delta)
{
    for (uint32_t i = slot + 1; i <= cache->tenant_capacity; i += i & (~i + 1))
        cache->reference_tree[i] = (uint32_t)((int64_t)cache->reference_tree[i] + delta);
}

/* The slot of cache->tenants holding reference entry number `rank` (0 ..
 * reference_count - 1) when they are counted tenant by tenant. */
static uint32_t reference_tree_find(const struct cache *cache, uint32_t rank)
{
    uint32_t position = 0;
    uint32_t step = 1;
    while (step * 2 <= cache->tenant_capacity)
        step *= 2;
    for (; step > 0; step /= 2) {
        uint32_t next = position + step;
        if (next <= cache->tenant_capacity && cache->reference_tree[next] <= rank) {
            position = next;
            rank -= cache->reference_tree[next];
        }
    }
    return position; /* the 1-based node after the last prefix <= rank: 0-based slot */
}

static void reference_add(struct cache *cache, struct cache_tenant *tenant)
{
    cache->reference_count++;
    tenant->reference_count++;
    reference_tree_add(cache, tenant->tenant_slot, 1);
}

static void reference_remove(struct cache *cache, struct cache_tenant *tenant)
{
    cache->reference_count--;
    tenant->reference_count--;
    reference_tree_add(cache, tenant->tenant_slot, -1);
}

/* A negative entry keeps its tenant and its index in cache->negative in
 * its tail (negative_tail()). */
static void negative_add(struct cache *cache, struct cache_tenant *tenant,
                         struct cache_entry *entry)
{
    if (cache->negative_count == cache->negative_capacity) {
        size_t before = util_alloc_size(cache->negative);
        cache->negative_capacity =
            cache->negative_capacity ? cache->negative_capacity * 2 : NEGATIVE_MIN_CAPACITY;
        cache->negative = xrealloc(cache->negative,
                                   cache->negative_capacity * sizeof(*cache->negative));
        account_overhead(cache, (int64_t)util_alloc_size(cache->negative) - (int64_t)before);
    }
    struct negative_tail *tail = negative_tail(entry);
    tail->tenant = tenant;
    tail->slot = cache->negative_count;
    cache->negative[cache->negative_count++] = entry;
    store(&cache->negative_entries, cache->negative_count);
    tenant->negative_count++;
    cache->negative_bytes += (uint64_t)entry_bytes(entry);
}

static void negative_remove(struct cache *cache, struct cache_tenant *tenant,
                            struct cache_entry *entry)
{
    uint32_t slot = negative_tail(entry)->slot;
    struct cache_entry *last = cache->negative[--cache->negative_count];
    store(&cache->negative_entries, cache->negative_count);
    cache->negative[slot] = last;
    negative_tail(last)->slot = slot;
    tenant->negative_count--;
    cache->negative_bytes -= (uint64_t)entry_bytes(entry);
    if (cache->negative_count == 0) {
        account_overhead(cache, -(int64_t)util_alloc_size(cache->negative));
        free(cache->negative);
        cache->negative = NULL;
        cache->negative_capacity = 0;
    }
}

/* Rebuilds the Fenwick tree for the current tenant_capacity. */
static void reference_tree_build(struct cache *cache)
{
    size_t before = util_alloc_size(cache->reference_tree);
    free(cache->reference_tree);
    cache->reference_tree = NULL;
    if (cache->tenant_capacity > 0) {
        cache->reference_tree = xcalloc(cache->tenant_capacity + 1, sizeof(*cache->reference_tree));
        for (uint32_t i = 0; i < cache->tenant_count; i++)
            reference_tree_add(cache, i, cache->tenants[i]->reference_count);
    }
    account_overhead(cache, (int64_t)util_alloc_size(cache->reference_tree) - (int64_t)before);
}

static void tenants_add(struct cache *cache, struct cache_tenant *tenant)
{
    if (cache->tenant_count == cache->tenant_capacity) {
        size_t before = util_alloc_size(cache->tenants);
        cache->tenant_capacity =
            cache->tenant_capacity ? cache->tenant_capacity * 2 : TENANTS_MIN_CAPACITY;
        cache->tenants = xrealloc(cache->tenants, cache->tenant_capacity * sizeof(*cache->tenants));
        account_overhead(cache, (int64_t)util_alloc_size(cache->tenants) - (int64_t)before);
        reference_tree_build(cache);
    }
    tenant->tenant_slot = cache->tenant_count;
    cache->tenants[cache->tenant_count++] = tenant;
    reference_tree_add(cache, tenant->tenant_slot, tenant->reference_count);
}

static void tenants_remove(struct cache *cache, struct cache_tenant *tenant)
{
    uint32_t slot = tenant->tenant_slot;
    reference_tree_add(cache, slot, -(int64_t)tenant->reference_count);
    struct cache_tenant *last = cache->tenants[--cache->tenant_count];
    if (last != tenant) {
        reference_tree_add(cache, last->tenant_slot, -(int64_t)last->reference_count);
        cache->tenants[slot] = last;
        last->tenant_slot = slot;
        reference_tree_add(cache, slot, last->reference_count);
    }
    if (cache->tenant_count == 0) {
        account_overhead(cache, -(int64_t)(util_alloc_size(cache->tenants) +
                                           util_alloc_size(cache->reference_tree)));
        free(cache->tenants);
        free(cache->reference_tree);
        cache->tenants = NULL;
        cache->reference_tree = NULL;
        cache->tenant_capacity = 0;
    }
}

/* ---- a tenant's table of entries ---- */

/* Bytes of a table of `capacity` slots and their tags. */
static size_t table_bytes(uint32_t capacity)
{
    return capacity * (sizeof(uint32_t) + 1);
}

static uint8_t *table_tags(const struct cache_tenant *tenant)
{
    return (uint8_t *)(tenant->slots + tenant->capacity);
}

static uint8_t tag_of(uint32_t hash)
{
    return (uint8_t)(hash | TAG_USED);
}

/* The slot a hash starts probing at (any capacity, not only powers of 2). */
static uint32_t home_slot(uint32_t hash, uint32_t capacity)
{
    /* The high bits pick the slot; the tag is the low ones. */
    return (uint32_t)(((uint64_t)hash * capacity) >> 32);
}

/* The table's capacity once it holds `count` entries: 4/3 of them, a
 * multiple of 8. */
static uint32_t table_capacity_for(uint32_t count)
{
    uint32_t capacity = count + count / 3 + 1;
    return (capacity + 7) & ~7u;
}

/* True if one more entry makes the table fuller than LOAD_MAX_16THS/16. */
static bool table_full(const struct cache_tenant *tenant)
{
    return (uint64_t)(tenant->entry_count + 1) * 16 > (uint64_t)tenant->capacity * LOAD_MAX_16THS;
}

static uint32_t entry_rehash(const struct cache *cache, const struct cache_entry *entry)
{
    size_t len;
    const char *key = entry_key(entry, &len);
    return entry_hash(cache, entry_kind(entry), key, len);
}

/* The slot holding (kind, key), or else the free slot where it would go.
 * The table always has a free slot, so this ends. */
static uint32_t table_find(const struct cache *cache, const struct cache_tenant *tenant,
                           uint32_t hash, unsigned kind, const char *key, size_t key_len)
{
    const uint8_t *tags = table_tags(tenant);
    uint8_t tag = tag_of(hash);
    uint32_t i = home_slot(hash, tenant->capacity);
    for (;;) {
        if (tags[i] == 0)
            return i;
        if (tags[i] == tag && entry_matches(entry_at(cache, tenant->slots[i]), kind, key, key_len))
            return i;
        if (++i == tenant->capacity)
            i = 0;
    }
}

/* The free slot where an entry with this hash goes, for one known not to be
 * in the table (a growth's copies, a remapped entry, a new key): no key is
 * compared. */
static uint32_t table_free_slot(const struct cache_tenant *tenant, uint32_t hash)
{
    const uint8_t *tags = table_tags(tenant);
    uint32_t i = home_slot(hash, tenant->capacity);
    while (tags[i] != 0) {
        if (++i == tenant->capacity)
            i = 0;
    }
    return i;
}

/* Puts the entry with reference `ref` into free slot i. */
static void table_put(struct cache_tenant *tenant, uint32_t i, uint32_t ref, uint32_t hash)
{
    tenant->slots[i] = ref;
    table_tags(tenant)[i] = tag_of(hash);
}

/* Empties slot i, moving back the entries after it that probed past it
 * (no deletion markers: a table never fills up with them). Entries only
 * move to i or after it, wrapping at the end. */
static void table_take(const struct cache *cache, struct cache_tenant *tenant, uint32_t i)
{
    uint8_t *tags = table_tags(tenant);
    uint32_t capacity = tenant->capacity;
    uint32_t hole = i;
    uint32_t j = i;
    for (;;) {
        if (++j == capacity)
            j = 0;
        if (tags[j] == 0)
            break;
        uint32_t home = home_slot(entry_rehash(cache, entry_at(cache, tenant->slots[j])), capacity);
        /* j may fill the hole unless its home lies cyclically in (hole, j]. */
        uint32_t from_home = (j + capacity - home) % capacity;
        uint32_t from_hole = (j + capacity - hole) % capacity;
        if (from_home >= from_hole) {
            tenant->slots[hole] = tenant->slots[j];
            tags[hole] = tags[j];
            hole = j;
        }
    }
    tenant->slots[hole] = 0;
    tags[hole] = 0;
}

/* Grows the table to hold one more entry comfortably; the shard is
 * write-locked. */
static void table_grow(struct cache *cache, struct cache_tenant *tenant)
{
    struct cache_tenant grown = {.capacity = table_capacity_for(tenant->entry_count + 1)};
    grown.slots = xcalloc(1, table_bytes(grown.capacity));
    for (uint32_t i = 0; i < tenant->capacity; i++) {
        if (tenant->slots[i] == 0)
            continue;
        uint32_t hash = entry_rehash(cache, entry_at(cache, tenant->slots[i]));
        table_put(&grown, table_free_slot(&grown, hash), tenant->slots[i], hash);
    }
    account_tenant(cache, tenant,
                   (int64_t)util_alloc_size(grown.slots) - (int64_t)util_alloc_size(tenant->slots));
    free(tenant->slots);
    tenant->slots = grown.slots;
    tenant->capacity = grown.capacity;
}

/* ---- tenants ---- */

static struct cache_tenant *shard_find_tenant(const struct cache_shard *shard, uint64_t hash,
                                              const char *name, size_t len)
{
    struct cache_tenant *tenant = shard->buckets[(hash >> 20) & (shard->bucket_count - 1)];
    for (; tenant != NULL; tenant = tenant->next) {
        if (tenant->hash == hash && tenant->name_len == len && memcmp(tenant->name, name, len) == 0)
            return tenant;
    }
    return NULL;
}

static void shard_grow(struct cache *cache, struct cache_shard *shard)
{
    uint32_t count = shard->bucket_count * 2;
    struct cache_tenant **buckets = xcalloc(count, sizeof(*buckets));
    for (uint32_t i = 0; i < shard->bucket_count; i++) {
        struct cache_tenant *tenant = shard->buckets[i];
        while (tenant != NULL) {
            struct cache_tenant *next = tenant->next;
            uint32_t bucket = (uint32_t)(tenant->hash >> 20) & (count - 1);
            tenant->next = buckets[bucket];
            buckets[bucket] = tenant;
            tenant = next;
        }
    }
    account_overhead(cache, (int64_t)util_alloc_size(buckets) - (int64_t)util_alloc_size(shard->buckets));
    free(shard->buckets);
    shard->buckets = buckets;
    shard->bucket_count = count;
}

/* Called with the shard write-locked. */
static struct cache_tenant *tenant_create(struct cache *cache, struct cache_shard *shard,
                                          uint64_t hash, const char *name, size_t len)
{
    struct cache_tenant *tenant = xcalloc(1, sizeof(*tenant) + len + 1);
    tenant->hash = hash;
    tenant->name_len = (uint8_t)len;
    memcpy(tenant->name, name, len);
    tenant->capacity = INITIAL_SLOTS;
    tenant->slots = xcalloc(1, table_bytes(INITIAL_SLOTS));
    atomic_store_explicit(&tenant->access, tick(cache), memory_order_relaxed);
    if (shard->tenant_count + 1 > shard->bucket_count)
        shard_grow(cache, shard);
    uint32_t bucket = (uint32_t)(hash >> 20) & (shard->bucket_count - 1);
    tenant->next = shard->buckets[bucket];
    shard->buckets[bucket] = tenant;
    shard->tenant_count++;
    tenants_add(cache, tenant);
    adjust(&cache->tenant_total, 1);
    account_tenant(cache, tenant,
                   (int64_t)(util_alloc_size(tenant) + util_alloc_size(tenant->slots)));
    return tenant;
}

/* ---- the secondary index ---- */

static uint32_t index_hash(const struct cache *cache, unsigned kind, const char *key, size_t len)
{
    return (uint32_t)util_hash(key, len, ~cache->seed + kind);
}

/* The first of the tenant's index members whose hash is not below `hash`
 * (`after`: above it). */
static uint32_t index_search(const struct cache_tenant *tenant, uint32_t hash, bool after)
{
    uint32_t low = 0, high = tenant->index_count;
    while (low < high) {
        uint32_t middle = low + (high - low) / 2;
        uint32_t at = tenant->index[middle].hash;
        if (at < hash || (after && at == hash))
            low = middle + 1;
        else
            high = middle;
    }
    return low;
}

/* The capacity the index grows to for one more member: by a quarter, as
 * adding a member moves the ones after it anyway. Odd, so that the block
 * (8-byte members and glibc's 8-byte size word) fills its 16-byte steps. */
static uint32_t index_grown(const struct cache_tenant *tenant)
{
    uint32_t capacity = tenant->index_capacity;
    return capacity ? (capacity + capacity / 4 + 2) | 1 : INDEX_MEMBERS_MIN;
}

/* The index hash of an entry with an index key. */
static uint32_t entry_index_hash(const struct cache *cache, const struct cache_entry *entry)
{
    struct entry_fields fields;
    entry_unpack(entry, &fields);
    return index_hash(cache, entry_kind(entry), entry_index_ptr(entry, &fields), fields.index_len);
}

static void index_add(struct cache *cache, struct cache_tenant *tenant, uint32_t ref,
                      const struct cache_entry *entry)
{
    uint32_t hash = entry_index_hash(cache, entry);
    if (tenant->index_count == tenant->index_capacity) {
        size_t before = util_alloc_size(tenant->index);
        tenant->index_capacity = index_grown(tenant);
        tenant->index = xrealloc(tenant->index, tenant->index_capacity * sizeof(*tenant->index));
        account_tenant(cache, tenant, (int64_t)util_alloc_size(tenant->index) - (int64_t)before);
    }
    uint32_t i = index_search(tenant, hash, true);
    memmove(&tenant->index[i + 1], &tenant->index[i],
            (tenant->index_count - i) * sizeof(*tenant->index));
    tenant->index[i] = (struct index_member){.hash = hash, .ref = ref};
    tenant->index_count++;
}

static void index_remove(struct cache *cache, struct cache_tenant *tenant, uint32_t ref,
                         const struct cache_entry *entry)
{
    uint32_t hash = entry_index_hash(cache, entry);
    uint32_t i = index_search(tenant, hash, false);
    while (i < tenant->index_count && tenant->index[i].hash == hash && tenant->index[i].ref != ref)
        i++;
    if (i == tenant->index_count || tenant->index[i].ref != ref)
        return;
    tenant->index_count--;
    memmove(&tenant->index[i], &tenant->index[i + 1],
            (tenant->index_count - i) * sizeof(*tenant->index));
    if (tenant->index_count == 0) {
        account_tenant(cache, tenant, -(int64_t)util_alloc_size(tenant->index));
        free(tenant->index);
        tenant->index = NULL;
        tenant->index_capacity = 0;
    }
}

/* ---- entries ---- */

/* A new entry with these fields (fields_for()), with a read counter when
 * `counted`, and its reference in *ref. Cannot fail. */
static struct cache_entry *entry_create(struct cache *cache, const struct cache_key *key,
                                        const struct cache_value *value,
                                        const struct entry_fields *fields,
                                        enum cache_entry_state state, bool counted, uint32_t *ref)
{
    struct cache_entry *entry =
        entry_alloc(cache, entry_size(fields, state == CACHE_ENTRY_NEGATIVE, counted), ref);
    atomic_init(&entry->access, 0);
    atomic_init(&entry->gap, 0);
    entry->flags = (uint8_t)((unsigned)state | fields->flags | (counted ? ENTRY_COUNTED : 0));
    entry_pack(entry, key->kind, fields, key->key, value);
    if (state == CACHE_ENTRY_NEGATIVE)
        *negative_tail(entry) = (struct negative_tail){.tenant = NULL, .slot = 0};
    if (counted)
        atomic_init(entry_reads(entry), 0);
    return entry;
}

/* Tells the change hook that entry (linked to tenant) changes. */
static void notify_change(const struct cache *cache, const struct cache_tenant *tenant,
                          const struct cache_entry *entry)
{
    if (cache->change_fn == NULL || cache->flushing_all)
        return;
    size_t key_len;
    const char *key = entry_key(entry, &key_len);
    cache->change_fn(cache->change_arg, tenant->name, tenant->name_len, entry_kind(entry), key,
                     key_len);
}

/* Counts an entry in its tenant, whose table now holds it (reference
 * `ref`): sizes, tier, the secondary index; tells the change hook. */
static void tenant_gain(struct cache *cache, struct cache_tenant *tenant, uint32_t ref,
                        struct cache_entry *entry)
{
    tenant->entry_count++;
    int64_t bytes = entry_bytes(entry);
    account_tenant(cache, tenant, bytes);
    adjust(&cache->entries, 1);
    if (entry_critical(entry)) {
        tenant->critical_bytes += (uint64_t)bytes;
        adjust(&cache->critical_bytes, bytes);
    } else if (entry_state(entry) == CACHE_ENTRY_VALUE) {
        reference_add(cache, tenant);
    } else if (entry_state(entry) == CACHE_ENTRY_NEGATIVE) {
        negative_add(cache, tenant, entry);
    }
    if (entry_state(entry) == CACHE_ENTRY_VALUE && entry_indexed(entry))
        index_add(cache, tenant, ref, entry);
    notify_change(cache, tenant, entry);
}

/* Undoes tenant_gain() for an entry leaving its tenant's table. */
static void tenant_lose(struct cache *cache, struct cache_tenant *tenant, uint32_t ref,
                        struct cache_entry *entry)
{
    notify_change(cache, tenant, entry);
    tenant->entry_count--;
    int64_t bytes = entry_bytes(entry);
    account_tenant(cache, tenant, -bytes);
    adjust(&cache->entries, -1);
    if (entry_critical(entry)) {
        tenant->critical_bytes -= (uint64_t)bytes;
        adjust(&cache->critical_bytes, -bytes);
    } else if (entry_state(entry) == CACHE_ENTRY_VALUE) {
        reference_remove(cache, tenant);
    } else if (entry_state(entry) == CACHE_ENTRY_NEGATIVE) {
        negative_remove(cache, tenant, entry);
    }
    if (entry_state(entry) == CACHE_ENTRY_VALUE && entry_indexed(entry))
        index_remove(cache, tenant, ref, entry);
}

/* Links a new entry into its tenant at free slot i (from table_find(),
 * after any table_grow()); the shard is write-locked. */
static void entry_link(struct cache *cache, struct cache_tenant *tenant, uint32_t i,
                       uint32_t ref, struct cache_entry *entry, uint32_t hash)
{
    table_put(tenant, i, ref, hash);
    tenant_gain(cache, tenant, ref, entry);
}

/* Takes the entry in slot i out of its tenant, with everything counted for
 * it, and returns its reference; the shard is write-locked. Entries after
 * slot i may move back into it (table_take()). */
static uint32_t entry_detach(struct cache *cache, struct cache_tenant *tenant, uint32_t i)
{
    uint32_t ref = tenant->slots[i];
    struct cache_entry *entry = entry_at(cache, ref);
    table_take(cache, tenant, i);
    tenant_lose(cache, tenant, ref, entry);
    return ref;
}

/* Puts a new entry for the same key (so the same hash and tag) in place of
 * the one in slot i, and frees that one; the shard is write-locked. No
 * other entry moves, as they would if the old one were taken out first. */
static void entry_replace(struct cache *cache, struct cache_tenant *tenant, uint32_t i,
                          uint32_t ref, struct cache_entry *entry)
{
    uint32_t old_ref = tenant->slots[i];
    struct cache_entry *old = entry_at(cache, old_ref);
    tenant_lose(cache, tenant, old_ref, old);
    tenant->slots[i] = ref;
    tenant_gain(cache, tenant, ref, entry);
    entry_free(cache, old_ref, old);
}

/* Unlinks and frees the entry in slot i. The shard is write-locked, and
 * readers only hold entries under the read lock, so nobody can still be
 * looking at it. */
static void entry_unlink(struct cache *cache, struct cache_tenant *tenant, uint32_t i)
{
    uint32_t ref = entry_detach(cache, tenant, i);
    entry_free(cache, ref, entry_at(cache, ref));
}

/* Frees a tenant with all it holds; the shard is write-locked. */
static void tenant_destroy(struct cache *cache, struct cache_shard *shard, struct cache_tenant *tenant)
{
    for (uint32_t i = 0; i < tenant->capacity; i++) {
        while (tenant->slots[i] != 0)
            entry_unlink(cache, tenant, i);
    }
    struct cache_tenant **link = &shard->buckets[(tenant->hash >> 20) & (shard->bucket_count - 1)];
    while (*link != tenant)
        link = &(*link)->next;
    *link = tenant->next;
    shard->tenant_count--;
    if (shard->tenant_count == 0 && shard->bucket_count > INITIAL_BUCKETS) {
        /* The shard's last tenant: give back a table grown for many. A
         * caller walking this shard's buckets finds the new, empty table. */
        struct cache_tenant **buckets = xcalloc(INITIAL_BUCKETS, sizeof(*buckets));
        account_overhead(cache, (int64_t)util_alloc_size(buckets) -
                                    (int64_t)util_alloc_size(shard->buckets));
        free(shard->buckets);
        shard->buckets = buckets;
        shard->bucket_count = INITIAL_BUCKETS;
    }
    tenants_remove(cache, tenant);
    adjust(&cache->tenant_total, -1);
    int64_t remaining = (int64_t)tenant->bytes;
    adjust(&cache->bytes, -remaining);
    free(tenant->index);
    free(tenant->slots);
    free(tenant);
}

/* ---- eviction (writer only, no lock held on entry) ---- */

/* The i-th candidate of a sample of `samples` among `count`: each member in
 * turn when there are no more than that (the choice is then exact), else a
 * random one. */
static uint32_t sample_slot(struct cache *cache, uint32_t i, uint32_t count, uint32_t samples)
{
    return count <= samples ? i : (uint32_t)(next_random(cache) % count);
}

static struct cache_shard *tenant_shard(const struct cache *cache, const struct cache_tenant *tenant)
{
    return shard_of(cache, tenant->hash);
}

static void evict_entry(struct cache *cache, struct cache_tenant *tenant, struct cache_entry *victim,
                        _Atomic uint64_t *counter)
{
    struct cache_shard *shard = tenant_shard(cache, tenant);
    pthread_rwlock_wrlock(&shard->lock);
    size_t key_len;
    const char *key = entry_key(victim, &key_len);
    unsigned kind = entry_kind(victim);
    uint32_t i = table_find(cache, tenant, entry_hash(cache, kind, key, key_len), kind, key,
                            key_len);
    if (slot_entry(cache, tenant, i) == victim)
        entry_unlink(cache, tenant, i);
    if (tenant->entry_count == 0)
        tenant_destroy(cache, shard, tenant);
    pthread_rwlock_unlock(&shard->lock);
    adjust(counter, 1);
}

/* True if a is a better victim than b: LRU-2, the older second-to-last read
 * first (an entry read once has none and goes before any read twice), then
 * the older last read. Entries read once do not push out the ones read
 * again and again, which on skewed traffic keeps more hits than plain LRU. */
static bool colder(const struct cache_entry *a, const struct cache_entry *b)
{
    uint32_t a_access = atomic_load_explicit(&a->access, memory_order_relaxed);
    uint32_t b_access = atomic_load_explicit(&b->access, memory_order_relaxed);
    uint8_t a_gap = atomic_load_explicit(&a->gap, memory_order_relaxed);
    uint8_t b_gap = atomic_load_explicit(&b->gap, memory_order_relaxed);
    if (a_gap == 0 || b_gap == 0) {
        if (a_gap != b_gap)
            return a_gap == 0;
    } else {
        uint32_t a_previous = a_access - gap_decode(a_gap);
        uint32_t b_previous = b_access - gap_decode(b_gap);
        if (a_previous != b_previous)
            return older(a_previous, b_previous);
    }
    return older(a_access, b_access);
}

static bool is_reference(const struct cache_entry *entry)
{
    return entry != NULL && !entry_critical(entry) && entry_state(entry) == CACHE_ENTRY_VALUE;
}

/* The coldest entry so far and its tenant. */
struct victim {
    struct cache_entry *entry;
    struct cache_tenant *tenant;
};

static void consider(struct victim *victim, struct cache_tenant *tenant, struct cache_entry *entry)
{
    if (victim->entry == NULL || colder(entry, victim->entry)) {
        victim->entry = entry;
        victim->tenant = tenant;
    }
}

/* Looks at up to `samples` reference entries of the tenant, walking its
 * table from a random slot (all of them when it has no more). */
static void sample_tenant(struct cache *cache, struct cache_tenant *tenant, uint32_t samples,
                          struct victim *victim)
{
    uint32_t start = (uint32_t)(next_random(cache) % tenant->capacity);
    uint32_t seen = 0;
    for (uint32_t n = 0; n < tenant->capacity && seen < samples; n++) {
        uint32_t i = start + n < tenant->capacity ? start + n : start + n - tenant->capacity;
        if (!is_reference(slot_entry(cache, tenant, i)))
            continue;
        consider(victim, tenant, slot_entry(cache, tenant, i));
        seen++;
    }
}

/* A reference entry of the tenant (it has one) at about uniform: a few
 * random slots, then the next one on from the last. */
static struct cache_entry *random_reference(struct cache *cache, const struct cache_tenant *tenant)
{
    uint32_t i = 0;
    for (int t = 0; t < SLOT_TRIES; t++) {
        i = (uint32_t)(next_random(cache) % tenant->capacity);
        if (is_reference(slot_entry(cache, tenant, i)))
            return slot_entry(cache, tenant, i);
    }
    while (!is_reference(slot_entry(cache, tenant, i)))
        i = i + 1 < tenant->capacity ? i + 1 : 0;
    return slot_entry(cache, tenant, i);
}

/* Evicts the coldest of a sample of reference entries (see colder()), from
 * the whole cache (tenant NULL) or from one tenant. The whole cache's sample
 * picks each entry by its rank among all of them (the Fenwick tree finds its
 * tenant), so that every reference entry is as likely to be looked at
 * whatever the size of its tenant; with no more than EVICTION_SAMPLES of
 * them, each is looked at and the choice is exact. Returns false if there
 * was none to evict. */
static bool evict_reference(struct cache *cache, struct cache_tenant *tenant)
{
    struct victim victim = {NULL, NULL};
    if (tenant != NULL) {
        if (tenant->reference_count == 0)
            return false;
        /* The writer owns the structure: no lock is needed just to look. */
        sample_tenant(cache, tenant, EVICTION_SAMPLES, &victim);
    } else if (cache->reference_count == 0) {
        return false;
    } else if (cache->reference_count <= EVICTION_SAMPLES) {
        /* Every tenant holding some, once each: ranks are grouped by tenant. */
        for (uint32_t rank = 0; rank < cache->reference_count;) {
            struct cache_tenant *holder = cache->tenants[reference_tree_find(cache, rank)];
            sample_tenant(cache, holder, holder->reference_count, &victim);
            rank += holder->reference_count;
        }
    } else {
        for (uint32_t i = 0; i < EVICTION_SAMPLES; i++) {
            uint32_t rank = (uint32_t)(next_random(cache) % cache->reference_count);
            struct cache_tenant *holder = cache->tenants[reference_tree_find(cache, rank)];
            consider(&victim, holder, random_reference(cache, holder));
        }
    }
    if (victim.entry == NULL)
        return false;
    evict_entry(cache, victim.tenant, victim.entry, &cache->evictions_reference);
    return true;
}

/* Evicts the least recently read of a sample of negative entries. Returns
 * false if there was none. */
static bool evict_negative(struct cache *cache)
{
    if (cache->negative_count == 0)
        return false;
    struct cache_entry *victim = NULL;
    uint32_t count = cache->negative_count;
    uint32_t samples = count < EVICTION_SAMPLES ? count : EVICTION_SAMPLES;
    for (uint32_t i = 0; i < samples; i++) {
        struct cache_entry *candidate = cache->negative[sample_slot(cache, i, count, EVICTION_SAMPLES)];
        if (victim == NULL || older(atomic_load_explicit(&candidate->access, memory_order_relaxed),
                                    atomic_load_explicit(&victim->access, memory_order_relaxed)))
            victim = candidate;
    }
    evict_entry(cache, negative_tail(victim)->tenant, victim, &cache->evictions_negative);
    return true;
}

/* Frees a tenant slot by dropping a tenant that holds nothing but negative
 * entries, if one is found among (a sample of) the negative entries. Returns
 * false if none. */
static bool evict_negative_tenant(struct cache *cache)
{
    uint32_t count = cache->negative_count;
    for (uint32_t i = 0; i < count && i < NEGATIVE_TENANT_SAMPLES; i++) {
        struct cache_tenant *tenant =
            negative_tail(cache->negative[sample_slot(cache, i, count, NEGATIVE_TENANT_SAMPLES)])
                ->tenant;
        if (tenant->negative_count != tenant->entry_count)
            continue;
        uint64_t dropped = tenant->negative_count;
        struct cache_shard *shard = tenant_shard(cache, tenant);
        pthread_rwlock_wrlock(&shard->lock);
        tenant_destroy(cache, shard, tenant);
        pthread_rwlock_unlock(&shard->lock);
        adjust(&cache->evictions_negative, (int64_t)dropped);
        return true;
    }
    return false;
}

/* Evicts the least recently read of a sample of tenants, never `keep`.
 * Returns false if there was none. */
static bool evict_tenant(struct cache *cache, const struct cache_tenant *keep)
{
    struct cache_tenant *victim = NULL;
    uint32_t victim_access = 0;
    uint32_t count = cache->tenant_count;
    if (count == 0 || (count == 1 && cache->tenants[0] == keep))
        return false;
    /* Few tenants: look at each. Many: sample, retrying past `keep`. */
    uint32_t tries = count <= TENANT_SAMPLES ? count : TENANT_SAMPLES * 4;
    for (uint32_t i = 0; i < tries && (victim == NULL || i < TENANT_SAMPLES); i++) {
        struct cache_tenant *candidate = cache->tenants[sample_slot(cache, i, count, TENANT_SAMPLES)];
        if (candidate == keep)
            continue;
        uint32_t access = atomic_load_explicit(&candidate->access, memory_order_relaxed);
        if (victim == NULL || older(access, victim_access)) {
            victim = candidate;
            victim_access = access;
        }
    }
    if (victim == NULL)
        return false;
    struct cache_shard *shard = tenant_shard(cache, victim);
    pthread_rwlock_wrlock(&shard->lock);
    tenant_destroy(cache, shard, victim);
    pthread_rwlock_unlock(&shard->lock);
    adjust(&cache->evictions_tenant, 1);
    return true;
}

static uint64_t do_sweep(struct cache *cache, uint64_t now_ms, unsigned budget);

/* Makes room for `needed` more bytes in total, in the order of docs/reference.md §6,
 * negative entries first. `keep` (the tenant being written) is never evicted
 * whole. With only_negatives (a query's write for a tenant with nothing
 * cached), no real data is evicted at all (docs/reference.md §8). Returns
 * false if the room cannot be made. */
static bool make_room(struct cache *cache, uint64_t needed, const struct cache_tenant *keep,
                      bool only_negatives, uint64_t now_ms)
{
    if (load(&cache->bytes) + needed <= cache->limits.max_bytes)
        return true;
    do_sweep(cache, now_ms, 1024);
    while (load(&cache->bytes) + needed > cache->limits.max_bytes) {
        if (evict_negative(cache))
            continue;
        if (only_negatives)
            return false;
        if (evict_reference(cache, NULL))
            continue;
        if (!evict_tenant(cache, keep))
            return false;
    }
    return true;
}

/* ---- writes ---- */

/* What a new entry may add to its tenant, including the growth of the
 * tenant's tables it joins: an upper bound, so that the limits hold. */
static uint64_t insert_cost(const struct cache *cache, const struct cache_tenant *tenant,
                            const struct cache_key *key, const struct entry_fields *fields,
                            bool negative)
{
    uint64_t cost =
        entry_bound(cache, entry_size(fields, negative, cache->limits.hot_reads != 0));
    if (tenant == NULL)
        cost += alloc_bound(cache, sizeof(struct cache_tenant) + key->tenant_len + 1) +
                alloc_bound(cache, table_bytes(INITIAL_SLOTS));
    else if (table_full(tenant))
        cost += alloc_bound(cache, table_bytes(table_capacity_for(tenant->entry_count + 1)));
    if (fields->index_len > 0) {
        if (tenant == NULL)
            cost += alloc_bound(cache, INDEX_MEMBERS_MIN * sizeof(struct index_member));
        else if (tenant->index_count == tenant->index_capacity)
            cost += alloc_bound(cache, index_grown(tenant) * sizeof(struct index_member));
    }
    return cost;
}

/* What a new entry may add to the tables every tenant shares (counted in
 * the cache's bytes, not in any tenant's): an upper bound. */
static uint64_t shared_cost(const struct cache *cache, const struct cache_shard *shard,
                            const struct cache_tenant *tenant)
{
    uint64_t cost = 0;
    if (tenant == NULL) {
        if (cache->tenant_count == cache->tenant_capacity) {
            uint64_t capacity =
                cache->tenant_capacity ? cache->tenant_capacity * 2ull : TENANTS_MIN_CAPACITY;
            cost += alloc_bound(cache, capacity * sizeof(*cache->tenants)) +
                    alloc_bound(cache, (capacity + 1) * sizeof(*cache->reference_tree));
        }
        if (shard->tenant_count + 1 > shard->bucket_count)
            cost += alloc_bound(cache, shard->bucket_count * 2 * sizeof(*shard->buckets));
    }
    return cost;
}

/* The unexpired entry for the key in `tenant` (which may be NULL), or NULL. */
static struct cache_entry *live_entry(const struct cache *cache, struct cache_tenant *tenant,
                                      uint32_t hash, const struct cache_key *key, uint64_t now_ms)
{
    if (tenant == NULL)
        return NULL;
    struct cache_entry *entry = slot_entry(
        cache, tenant, table_find(cache, tenant, hash, key->kind, key->key, key->key_len));
    return entry != NULL && !entry_expired(entry, now_ms) ? entry : NULL;
}

enum write_mode {
    WRITE_SET,
    WRITE_DELETE,
    WRITE_NEGATIVE,
};

static enum cache_status write_entry(struct cache *cache, const struct cache_key *key,
                                     const struct cache_value *value,
                                     const struct cache_write *write, enum write_mode mode,
                                     uint64_t now_ms)
{
    uint64_t tenant_hash = util_hash(key->tenant, key->tenant_len, cache->seed);
    struct cache_shard *shard = shard_of(cache, tenant_hash);
    uint32_t hash = entry_hash(cache, key->kind, key->key, key->key_len);
    store(&cache->now_ms, now_ms);

    /* Only the holder of cache->writer changes the structure: look without
     * the shard lock. */
    struct cache_tenant *tenant = shard_find_tenant(shard, tenant_hash, key->tenant, key->tenant_len);
    struct cache_entry *existing = live_entry(cache, tenant, hash, key, now_ms);
    if (existing != NULL) {
        if (write->if_absent && entry_state(existing) != CACHE_ENTRY_NEGATIVE)
            return CACHE_EXISTS;
        if (write->has_version && write->version <= entry_version(existing) &&
            entry_state(existing) != CACHE_ENTRY_NEGATIVE)
            return CACHE_STALE;
    }

    /* Make room. An eviction may take the entry being replaced, or free the
     * tenant itself, which changes what the write costs: plan again after
     * each until the room is there for what is really left. */
    const struct cache_value *stored = mode == WRITE_SET ? value : NULL;
    struct entry_fields fields;
    fields_for(cache, &fields, key, stored, write, now_ms);
    /* A fill is a query's write: for a tenant with nothing cached it never
     * evicts another tenant's data, negative entries aside. */
    bool query = write->if_absent;
    for (;;) {
        uint64_t cost = insert_cost(cache, tenant, key, &fields, mode == WRITE_NEGATIVE);
        uint64_t freed = existing ? (uint64_t)entry_bytes(existing) : 0;
        uint64_t needed = cost > freed ? cost - freed : 0;
        if (cost > cache->limits.tenant_max_bytes)
            goto not_cached;
        /* Negative entries together stay within their share of max_bytes;
         * past it the oldest of them make way. */
        if (mode == WRITE_NEGATIVE &&
            cache->negative_bytes + cost > cache->limits.max_bytes / NEGATIVE_SHARE) {
            if (!evict_negative(cache))
                goto not_cached;
            tenant = shard_find_tenant(shard, tenant_hash, key->tenant, key->tenant_len);
            existing = live_entry(cache, tenant, hash, key, now_ms);
            continue;
        }
        /* Per-tenant limit: reference entries of this tenant go first;
         * critical data over the limit is answered but not kept. */
        if (tenant != NULL && tenant->bytes + needed > cache->limits.tenant_max_bytes) {
            if (!evict_reference(cache, tenant))
                goto not_cached;
        } else if (tenant == NULL && cache->tenant_count >= cache->limits.max_tenants) {
            if (!evict_negative_tenant(cache) && (query || !evict_tenant(cache, NULL)))
                goto not_cached;
        } else {
            needed += shared_cost(cache, shard, tenant);
            if (load(&cache->bytes) + needed <= cache->limits.max_bytes)
                break;
            if (!make_room(cache, needed, tenant, query && tenant == NULL, now_ms))
                goto not_cached;
        }
        tenant = shard_find_tenant(shard, tenant_hash, key->tenant, key->tenant_len);
        existing = live_entry(cache, tenant, hash, key, now_ms);
    }

    uint32_t ref;
    struct cache_entry *entry = entry_create(
        cache, key, stored, &fields,
        mode == WRITE_SET ? CACHE_ENTRY_VALUE
                          : (mode == WRITE_DELETE ? CACHE_ENTRY_TOMBSTONE : CACHE_ENTRY_NEGATIVE),
        cache->limits.hot_reads != 0, &ref);
    if (write->critical && mode == WRITE_SET)
        entry->flags |= ENTRY_CRITICAL;
    atomic_store_explicit(&entry->access, tick(cache), memory_order_relaxed);

    pthread_rwlock_wrlock(&shard->lock);
    if (tenant == NULL)
        tenant = tenant_create(cache, shard, tenant_hash, key->tenant, key->tenant_len);
    uint32_t slot = table_find(cache, tenant, hash, key->kind, key->key, key->key_len);
    if (tenant->slots[slot] != 0) {
        entry_replace(cache, tenant, slot, ref, entry);
    } else {
        if (table_full(tenant)) {
            table_grow(cache, tenant);
            slot = table_free_slot(tenant, hash);
        }
        entry_link(cache, tenant, slot, ref, entry, hash);
    }
    pthread_rwlock_unlock(&shard->lock);

    /* The costs above are upper bounds; should one ever fall short, settle
     * the difference at once. */
    if (load(&cache->bytes) > cache->limits.max_bytes)
        make_room(cache, 0, tenant, false, now_ms);
    return CACHE_OK;

not_cached:
    /* Whatever was cached for the key is older than what we were told:
     * it must not be served. Evictions may have freed the tenant. */
    tenant = shard_find_tenant(shard, tenant_hash, key->tenant, key->tenant_len);
    if (tenant != NULL) {
        pthread_rwlock_wrlock(&shard->lock);
        uint32_t old = table_find(cache, tenant, hash, key->kind, key->key, key->key_len);
        if (slot_entry(cache, tenant, old) != NULL)
            entry_unlink(cache, tenant, old);
        if (tenant->entry_count == 0)
            tenant_destroy(cache, shard, tenant);
        pthread_rwlock_unlock(&shard->lock);
    }
    adjust(&cache->not_cached, 1);
    return CACHE_NOT_CACHED;
}

enum cache_status cache_set(struct cache *cache, const struct cache_key *key,
                            const struct cache_value *value, const struct cache_write *write,
                            uint64_t now_ms)
{
    pthread_mutex_lock(&cache->writer);
    enum cache_status status =
        write->epoch != NULL && atomic_load(write->epoch) != write->epoch_seen
            ? CACHE_STALE
            : write_entry(cache, key, value, write, WRITE_SET, now_ms);
    pthread_mutex_unlock(&cache->writer);
    return status;
}

enum cache_status cache_delete(struct cache *cache, const struct cache_key *key,
                               const struct cache_write *write, uint64_t now_ms)
{
    pthread_mutex_lock(&cache->writer);
    enum cache_status status = write_entry(cache, key, NULL, write, WRITE_DELETE, now_ms);
    pthread_mutex_unlock(&cache->writer);
    return status;
}

enum cache_status cache_set_negative(struct cache *cache, const struct cache_key *key,
                                     uint64_t expires_ms, const _Atomic uint64_t *epoch,
                                     uint64_t epoch_seen, uint64_t now_ms)
{
    struct cache_write write = {.expires_ms = expires_ms, .if_absent = true,
                                .updated_ms = load(&cache->wall_ms)};
    pthread_mutex_lock(&cache->writer);
    enum cache_status status =
        epoch != NULL && atomic_load(epoch) != epoch_seen
            ? CACHE_STALE
            : write_entry(cache, key, NULL, &write, WRITE_NEGATIVE, now_ms);
    pthread_mutex_unlock(&cache->writer);
    return status;
}

static enum cache_status do_invalidate(struct cache *cache, const struct cache_key *key,
                                       bool has_version, uint64_t version, uint64_t now_ms,
                                       uint32_t *recent_reads)
{
    uint64_t tenant_hash = util_hash(key->tenant, key->tenant_len, cache->seed);
    struct cache_shard *shard = shard_of(cache, tenant_hash);
    struct cache_tenant *tenant = shard_find_tenant(shard, tenant_hash, key->tenant, key->tenant_len);
    if (tenant == NULL)
        return CACHE_OK;
    uint32_t hash = entry_hash(cache, key->kind, key->key, key->key_len);
    uint32_t slot = table_find(cache, tenant, hash, key->kind, key->key, key->key_len);
    struct cache_entry *entry = slot_entry(cache, tenant, slot);
    if (entry == NULL)
        return CACHE_OK;
    if (has_version && !entry_expired(entry, now_ms) && version <= entry_version(entry))
        return CACHE_STALE;
    /* A tombstone is not an entry to drop: it must keep blocking fills of
     * the deleted data until it expires. */
    if (entry_state(entry) == CACHE_ENTRY_TOMBSTONE && !entry_expired(entry, now_ms))
        return CACHE_OK;
    *recent_reads = recent_read_count(cache, entry);
    pthread_rwlock_wrlock(&shard->lock);
    entry_unlink(cache, tenant, slot);
    if (tenant->entry_count == 0)
        tenant_destroy(cache, shard, tenant);
    pthread_rwlock_unlock(&shard->lock);
    return CACHE_OK;
}

/* Drops the tenant's entries of `kind` (all when kind < 0); shard write-locked.
 * Frees the tenant if nothing is left. */
static uint64_t flush_tenant(struct cache *cache, struct cache_shard *shard,
                             struct cache_tenant *tenant, int kind)
{
    uint64_t dropped = 0;
    /* Taking an entry moves later ones back into its slot (or, wrapping,
     * into slots already seen, which is harmless): look at it again. */
    for (uint32_t i = 0; i < tenant->capacity && tenant->entry_count > 0;) {
        struct cache_entry *entry = slot_entry(cache, tenant, i);
        if (entry != NULL && (kind < 0 || entry_kind(entry) == (unsigned)kind)) {
            entry_unlink(cache, tenant, i);
            dropped++;
        } else {
            i++;
        }
    }
    if (tenant->entry_count == 0)
        tenant_destroy(cache, shard, tenant);
    return dropped;
}

enum cache_status cache_invalidate(struct cache *cache, const struct cache_key *key,
                                   bool has_version, uint64_t version, uint64_t now_ms,
                                   uint32_t *recent_reads)
{
    uint32_t reads = 0;
    pthread_mutex_lock(&cache->writer);
    enum cache_status status = do_invalidate(cache, key, has_version, version, now_ms, &reads);
    pthread_mutex_unlock(&cache->writer);
    if (recent_reads != NULL)
        *recent_reads = reads;
    return status;
}

static uint64_t do_flush(struct cache *cache, const char *tenant_name, size_t tenant_len, int kind)
{
    uint64_t dropped = 0;
    if (tenant_name != NULL) {
        uint64_t hash = util_hash(tenant_name, tenant_len, cache->seed);
        struct cache_shard *shard = shard_of(cache, hash);
        struct cache_tenant *tenant = shard_find_tenant(shard, hash, tenant_name, tenant_len);
        if (tenant == NULL)
            return 0;
        pthread_rwlock_wrlock(&shard->lock);
        dropped = flush_tenant(cache, shard, tenant, kind);
        pthread_rwlock_unlock(&shard->lock);
        return dropped;
    }
    for (unsigned s = 0; s < cache->shard_count; s++) {
        struct cache_shard *shard = &cache->shards[s];
        pthread_rwlock_wrlock(&shard->lock);
        /* Freeing the shard's last tenant swaps in a new, empty table; the
         * walk then finds nothing more, as it should. */
        for (uint32_t b = 0; b < shard->bucket_count; b++) {
            struct cache_tenant *tenant = shard->buckets[b];
            while (tenant != NULL) {
                struct cache_tenant *next = tenant->next;
                dropped += flush_tenant(cache, shard, tenant, kind);
                tenant = next;
            }
        }
        pthread_rwlock_unlock(&shard->lock);
    }
    return dropped;
}

uint64_t cache_flush(struct cache *cache, const char *tenant_name, size_t tenant_len, int kind)
{
    pthread_mutex_lock(&cache->writer);
    bool all = tenant_name == NULL && kind < 0;
    cache->flushing_all = all;
    uint64_t dropped = do_flush(cache, tenant_name, tenant_len, kind);
    cache->flushing_all = false;
    if (all && cache->change_fn != NULL)
        cache->change_fn(cache->change_arg, NULL, 0, 0, NULL, 0);
    pthread_mutex_unlock(&cache->writer);
    return dropped;
}

static uint64_t do_sweep(struct cache *cache, uint64_t now_ms, unsigned budget)
{
    store(&cache->now_ms, now_ms);
    uint64_t reclaimed = 0;
    unsigned scanned = 0;
    uint32_t tenants_visited = 0;
    /* One pass at most: the tenants there are now (those freed on the way
     * count as visited), plus the one this call may have started inside. */
    uint32_t pass = cache->tenant_count;
    while (scanned < budget && cache->tenant_count > 0 && tenants_visited <= pass) {
        if (cache->sweep_tenant >= cache->tenant_count) {
            cache->sweep_tenant = 0;
            cache->sweep_slot = 0;
        }
        struct cache_tenant *tenant = cache->tenants[cache->sweep_tenant];
        struct cache_shard *shard = tenant_shard(cache, tenant);
        bool locked = false;
        while (scanned < budget && cache->sweep_slot < tenant->capacity) {
            struct cache_entry *entry = slot_entry(cache, tenant, cache->sweep_slot);
            if (entry != NULL && entry_expired(entry, now_ms)) {
                if (!locked) {
                    pthread_rwlock_wrlock(&shard->lock);
                    locked = true;
                }
                /* A later entry may move into the slot: look at it again. */
                entry_unlink(cache, tenant, cache->sweep_slot);
                reclaimed++;
            } else {
                cache->sweep_slot++;
                scanned++;
            }
        }
        bool tenant_done = cache->sweep_slot >= tenant->capacity;
        if (tenant->entry_count == 0) {
            if (!locked) {
                pthread_rwlock_wrlock(&shard->lock);
                locked = true;
            }
            /* The last tenant moves into this slot: sweep it next. */
            tenant_destroy(cache, shard, tenant);
            cache->sweep_slot = 0;
        } else if (tenant_done) {
            cache->sweep_tenant++;
            cache->sweep_slot = 0;
        }
        if (locked)
            pthread_rwlock_unlock(&shard->lock);
        if (tenant_done)
            tenants_visited++;
    }
    adjust(&cache->evictions_expired, (int64_t)reclaimed);
    return reclaimed;
}

uint64_t cache_sweep(struct cache *cache, uint64_t now_ms, unsigned budget)
{
    pthread_mutex_lock(&cache->writer);
    uint64_t reclaimed = do_sweep(cache, now_ms, budget);
    pthread_mutex_unlock(&cache->writer);
    return reclaimed;
}

static bool do_shrink(struct cache *cache, unsigned budget)
{
    double max = (double)cache->limits.max_bytes;
    double used = (double)load(&cache->bytes);
    if (!cache->shrinking && used > max * cache->limits.high_watermark)
        cache->shrinking = true;
    if (!cache->shrinking)
        return false;
    for (unsigned i = 0; i < budget; i++) {
        if ((double)load(&cache->bytes) <= max * cache->limits.low_watermark ||
            !evict_reference(cache, NULL)) {
            cache->shrinking = false;
            return false;
        }
    }
    return true;
}

bool cache_shrink(struct cache *cache, uint64_t now_ms, unsigned budget)
{
    (void)now_ms;
    pthread_mutex_lock(&cache->writer);
    bool more = do_shrink(cache, budget);
    pthread_mutex_unlock(&cache->writer);
    return more;
}

void cache_enforce(struct cache *cache, uint64_t now_ms)
{
    pthread_mutex_lock(&cache->writer);
    while (cache->tenant_count > cache->limits.max_tenants && evict_tenant(cache, NULL)) {
    }
    for (uint32_t i = 0; i < cache->tenant_count; i++) {
        struct cache_tenant *tenant = cache->tenants[i];
        while (tenant->bytes > cache->limits.tenant_max_bytes && tenant->reference_count > 0 &&
               tenant->entry_count > 1)
            evict_reference(cache, tenant);
    }
    while (cache->negative_bytes > cache->limits.max_bytes / NEGATIVE_SHARE && evict_negative(cache)) {
    }
    make_room(cache, 0, NULL, false, now_ms);
    pthread_mutex_unlock(&cache->writer);
}

/* ---- reloads ---- */

/* Renumbers one tenant's entries; the shard is write-locked. Returns the
 * number dropped. */
static uint64_t remap_tenant(struct cache *cache, struct cache_tenant *tenant, const int *map,
                             unsigned map_count)
{
    /* Renumbered entries are taken out, then put back under their new
     * kind: a short-lived list, freed here. */
    uint32_t *moved = NULL;
    uint32_t moved_count = 0;
    uint64_t dropped = 0;
    for (uint32_t i = 0; i < tenant->capacity;) {
        struct cache_entry *entry = slot_entry(cache, tenant, i);
        unsigned kind = entry ? entry_kind(entry) : 0;
        int to = kind < map_count ? map[kind] : -1;
        if (entry == NULL || (to >= 0 && (unsigned)to == kind)) {
            i++;
            continue;
        }
        /* A later entry may move into slot i: look at it again. */
        uint32_t ref = entry_detach(cache, tenant, i);
        if (to < 0) {
            entry_free(cache, ref, entry);
            dropped++;
            continue;
        }
        entry->kind = (uint8_t)((entry->kind & ~ENTRY_KIND) | (unsigned)to);
        if (moved == NULL)
            moved = xmalloc(((size_t)tenant->entry_count + 1) * sizeof(*moved));
        moved[moved_count++] = ref;
    }
    /* The map is one-to-one (kinds keep their names), so a moved entry
     * never meets one of its new kind and key: a free slot is its place. */
    for (uint32_t m = 0; m < moved_count; m++) {
        struct cache_entry *entry = entry_at(cache, moved[m]);
        uint32_t hash = entry_rehash(cache, entry);
        if (table_full(tenant))
            table_grow(cache, tenant);
        entry_link(cache, tenant, table_free_slot(tenant, hash), moved[m], entry, hash);
    }
    free(moved);
    return dropped;
}

uint64_t cache_remap_kinds(struct cache *cache, const int *map, unsigned map_count)
{
    uint64_t dropped = 0;
    pthread_mutex_lock(&cache->writer);
    /* Backwards: a tenant left empty is destroyed, which moves the last
     * tenant of the array into its place. */
    for (uint32_t i = cache->tenant_count; i-- > 0;) {
        struct cache_tenant *tenant = cache->tenants[i];
        struct cache_shard *shard = tenant_shard(cache, tenant);
        pthread_rwlock_wrlock(&shard->lock);
        dropped += remap_tenant(cache, tenant, map, map_count);
        if (tenant->entry_count == 0)
            tenant_destroy(cache, shard, tenant);
        pthread_rwlock_unlock(&shard->lock);
    }
    pthread_mutex_unlock(&cache->writer);
    return dropped;
}

/* ---- readers ---- */

void cache_read_begin(struct cache *cache, const char *tenant, size_t tenant_len, uint64_t now_ms,
                      struct cache_reader *reader)
{
    uint64_t hash = util_hash(tenant, tenant_len, cache->seed);
    reader->cache = cache;
    reader->shard = shard_of(cache, hash);
    reader->now_ms = now_ms;
    pthread_rwlock_rdlock(&reader->shard->lock);
    reader->tenant = shard_find_tenant(reader->shard, hash, tenant, tenant_len);
    reader->stamp = 0;
    reader->hits = reader->misses = 0;
    if (reader->tenant != NULL) {
        /* One tick per session: the entries it reads share the stamp. */
        reader->stamp = tick(cache);
        atomic_store_explicit(&reader->tenant->access, reader->stamp, memory_order_relaxed);
        atomic_store_explicit(&reader->tenant->last_access_ms, load(&cache->wall_ms),
                              memory_order_relaxed);
    }
}

void cache_read_end(struct cache_reader *reader)
{
    /* Under the lock still: the tenant cannot go away before. */
    struct cache_tenant *tenant = reader->tenant;
    if (reader->hits != 0) {
        stats_add(&stats.hits, reader->hits);
        atomic_fetch_add_explicit(&tenant->hits, reader->hits, memory_order_relaxed);
    }
    if (reader->misses != 0) {
        stats_add(&stats.misses, reader->misses);
        if (tenant != NULL)
            atomic_fetch_add_explicit(&tenant->misses, reader->misses, memory_order_relaxed);
    }
    pthread_rwlock_unlock(&reader->shard->lock);
    reader->shard = NULL;
    reader->tenant = NULL;
}

const struct cache_entry *cache_read_find(struct cache_reader *reader, unsigned kind,
                                          const char *key, size_t key_len)
{
    struct cache_tenant *tenant = reader->tenant;
    struct cache_entry *entry = NULL;
    if (tenant != NULL) {
        uint32_t hash = entry_hash(reader->cache, kind, key, key_len);
        entry = slot_entry(reader->cache, tenant,
                           table_find(reader->cache, tenant, hash, kind, key, key_len));
        if (entry != NULL && entry_expired(entry, reader->now_ms))
            entry = NULL;
    }
    if (entry == NULL) {
        reader->misses++;
        return NULL;
    }
    reader->hits++;
    uint32_t last = atomic_load_explicit(&entry->access, memory_order_relaxed);
    if (last != reader->stamp) {
        atomic_store_explicit(&entry->gap, gap_encode(reader->stamp - last), memory_order_relaxed);
        atomic_store_explicit(&entry->access, reader->stamp, memory_order_relaxed);
    }
    if (atomic_load_explicit(&reader->cache->hot_reads, memory_order_relaxed) != 0)
        count_read(reader->cache, entry);
    return entry;
}

void cache_read_index(struct cache_reader *reader, unsigned kind, const char *index_key,
                      size_t index_key_len,
                      void (*fn)(void *arg, const struct cache_entry *entry), void *arg)
{
    struct cache_tenant *tenant = reader->tenant;
    if (tenant == NULL)
        return;
    uint32_t hash = index_hash(reader->cache, kind, index_key, index_key_len);
    for (uint32_t i = index_search(tenant, hash, false);
         i < tenant->index_count && tenant->index[i].hash == hash; i++) {
        const struct cache_entry *entry = entry_at(reader->cache, tenant->index[i].ref);
        struct entry_fields fields;
        entry_unpack(entry, &fields);
        if (entry_kind(entry) == kind && fields.index_len == index_key_len &&
            memcmp(entry_index_ptr(entry, &fields), index_key, index_key_len) == 0 &&
            !entry_expired(entry, reader->now_ms))
            fn(arg, entry);
    }
}

enum cache_entry_state cache_entry_state(const struct cache_entry *entry)
{
    return entry_state(entry);
}

bool cache_entry_critical(const struct cache_entry *entry)
{
    return entry_critical(entry);
}

const char *cache_entry_key(const struct cache_entry *entry, size_t *len)
{
    return entry_key(entry, len);
}

const char *cache_entry_value(const struct cache_entry *entry, size_t *len)
{
    return entry_value_ptr(entry, len);
}

const void *cache_entry_derived(const struct cache_entry *entry, size_t *len)
{
    /* On every CAN and ROLECAN: past the key and value, and the varints
     * after its length, without decoding them (entry_unpack()). */
    size_t key_len, value_len;
    const unsigned char *in = entry_trailer(entry, &key_len, &value_len);
    *len = (entry->kind & KIND_DERIVED) ? (size_t)get_varint(&in) : 0;
    unsigned skipped = 1u + ((entry->kind & KIND_INDEX) != 0) +
                       ((entry->flags & ENTRY_VERSIONED) != 0); /* index, version, update time */
    while (skipped > 0)
        skipped -= (*in++ & 0x80) == 0;
    return in;
}

uint64_t cache_entry_version(const struct cache_entry *entry)
{
    return entry_version(entry);
}

uint64_t cache_entry_updated_ms(const struct cache *cache, const struct cache_entry *entry)
{
    return entry_updated(cache, entry);
}

size_t cache_entry_header_bytes(const struct cache_entry *entry)
{
    struct entry_fields fields;
    entry_unpack(entry, &fields);
    return ENTRY_HEADER + packed_size(&fields);
}

size_t cache_entry_allocated_bytes(const struct cache_entry *entry)
{
    return entry_alloc_size(entry);
}

/* ---- whole-cache walks ---- */

unsigned cache_shard_count(const struct cache *cache)
{
    return cache->shard_count;
}

uint64_t cache_foreach_entry(struct cache *cache, unsigned shard_index,
                             void (*fn)(void *arg, const struct cache_entry_view *entry),
                             void *arg)
{
    if (shard_index >= cache->shard_count)
        return 0;
    struct cache_shard *shard = &cache->shards[shard_index];
    uint64_t shown = 0;
    uint64_t now_ms = load(&cache->now_ms);
    pthread_rwlock_rdlock(&shard->lock);
    for (uint32_t b = 0; b < shard->bucket_count; b++) {
        for (struct cache_tenant *tenant = shard->buckets[b]; tenant != NULL;
             tenant = tenant->next) {
            for (uint32_t e = 0; e < tenant->capacity; e++) {
                const struct cache_entry *entry = slot_entry(cache, tenant, e);
                if (entry == NULL || entry_state(entry) == CACHE_ENTRY_NEGATIVE)
                    continue;
                bool tombstone = entry_state(entry) == CACHE_ENTRY_TOMBSTONE;
                struct entry_fields fields;
                entry_unpack(entry, &fields);
                const char *key = entry_key(entry, &fields.key_len);
                struct cache_entry_view view = {
                    .tenant = tenant->name,
                    .tenant_len = tenant->name_len,
                    .kind = entry_kind(entry),
                    .key = key,
                    .key_len = fields.key_len,
                    .json = tombstone ? "" : key + fields.key_len,
                    .json_len = tombstone ? 0 : fields.value_len,
                    .tombstone = tombstone,
                    .critical = entry_critical(entry),
                    .version = entry_version(entry),
                    .expires_ms = entry_expires_ms(entry, now_ms),
                    .updated_ms = entry_updated(cache, entry),
                };
                fn(arg, &view);
                shown++;
            }
        }
    }
    pthread_rwlock_unlock(&shard->lock);
    return shown;
}

/* ---- figures ---- */

void cache_get_stats(struct cache *cache, struct cache_stats *out)
{
    out->bytes = load(&cache->bytes);
    out->entries = load(&cache->entries);
    out->tenants = load(&cache->tenant_total);
    out->critical_bytes = load(&cache->critical_bytes);
    uint64_t overhead = load(&cache->overhead_bytes);
    uint64_t non_critical = out->bytes > out->critical_bytes + overhead
                                ? out->bytes - out->critical_bytes - overhead
                                : 0;
    out->reference_bytes = non_critical;
    out->evictions_expired = load(&cache->evictions_expired);
    out->evictions_reference = load(&cache->evictions_reference);
    out->evictions_tenant = load(&cache->evictions_tenant);
    out->evictions_negative = load(&cache->evictions_negative);
    out->negative_entries = load(&cache->negative_entries);
    out->not_cached = load(&cache->not_cached);
    out->slab_spare_bytes = load(&cache->slab_spare);
}

/* The tenant's figures; its per-kind ones only when `kinds` (they are
 * counted from its entries: a tenant keeps no per-kind figures, which would
 * cost it more than the 8 bytes a kind that TENANT's walk costs once). */
static void tenant_fill_stats(const struct cache *cache, const struct cache_tenant *tenant,
                              bool kinds, struct cache_tenant_stats *out)
{
    memcpy(out->name, tenant->name, tenant->name_len);
    out->name[tenant->name_len] = '\0';
    out->bytes = tenant->bytes;
    out->critical_bytes = tenant->critical_bytes;
    out->entries = tenant->entry_count;
    out->hits = atomic_load_explicit(&tenant->hits, memory_order_relaxed);
    out->misses = atomic_load_explicit(&tenant->misses, memory_order_relaxed);
    out->last_access_ms = atomic_load_explicit(&tenant->last_access_ms, memory_order_relaxed);
    out->kind_count = 0;
    if (!kinds)
        return;
    out->kind_count = KIND_LIMIT;
    memset(out->kind_entries, 0, sizeof(out->kind_entries));
    memset(out->kind_bytes, 0, sizeof(out->kind_bytes));
    for (uint32_t i = 0; i < tenant->capacity; i++) {
        const struct cache_entry *entry = slot_entry(cache, tenant, i);
        if (entry == NULL)
            continue;
        out->kind_entries[entry_kind(entry)]++;
        out->kind_bytes[entry_kind(entry)] += (uint64_t)entry_bytes(entry);
    }
}

bool cache_tenant_get_stats(struct cache *cache, const char *tenant_name, size_t tenant_len,
                            struct cache_tenant_stats *out)
{
    if (tenant_len > TENANT_NAME_MAX)
        return false;
    uint64_t hash = util_hash(tenant_name, tenant_len, cache->seed);
    struct cache_shard *shard = shard_of(cache, hash);
    pthread_rwlock_rdlock(&shard->lock);
    struct cache_tenant *tenant = shard_find_tenant(shard, hash, tenant_name, tenant_len);
    if (tenant != NULL)
        tenant_fill_stats(cache, tenant, true, out);
    pthread_rwlock_unlock(&shard->lock);
    return tenant != NULL;
}

void cache_foreach_tenant(struct cache *cache,
                          void (*fn)(void *arg, const struct cache_tenant_stats *tenant), void *arg)
{
    struct cache_tenant_stats *figures = xmalloc(sizeof(*figures));
    for (unsigned s = 0; s < cache->shard_count; s++) {
        struct cache_shard *shard = &cache->shards[s];
        pthread_rwlock_rdlock(&shard->lock);
        for (uint32_t b = 0; b < shard->bucket_count; b++) {
            for (struct cache_tenant *tenant = shard->buckets[b]; tenant; tenant = tenant->next) {
                tenant_fill_stats(cache, tenant, false, figures);
                fn(arg, figures);
            }
        }
        pthread_rwlock_unlock(&shard->lock);
    }
    free(figures);
}

void cache_destroy(struct cache *cache)
{
    if (cache == NULL)
        return;
    while (cache->tenant_count > 0) {
        struct cache_tenant *tenant = cache->tenants[cache->tenant_count - 1];
        tenant_destroy(cache, tenant_shard(cache, tenant), tenant);
    }
    for (unsigned s = 0; s < cache->shard_count; s++) {
        struct cache_shard *shard = &cache->shards[s];
        free(shard->buckets);
        pthread_rwlock_destroy(&shard->lock);
    }
    slab_pool_destroy(cache->slabs);
    free(cache->reference_tree);
    free(cache->negative);
    free(cache->tenants);
    free(cache->shards);
    pthread_mutex_destroy(&cache->writer);
    free(cache);
}
