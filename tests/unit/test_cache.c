/* test_cache.c - the cache module's contract (cache.h, docs/reference.md §2, §3, §6).
 *
 * In-process Check suite: entries, versions and tombstones, expiry,
 * negatives and fills, flush scopes, the secondary index, exact memory
 * accounting, the limits and their eviction order, the adaptive shrink, and
 * readers racing the writer (run it under ASan, TSan and valgrind too). */
#include <check.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "names.h"
#include "slab.h"
#include "stats.h"
#include "util.h"

/* Kind numbers as the built-in table orders them; the cache only sees numbers. */
#define KIND_CREDIT 0u
#define KIND_ROLE 1u
#define KIND_USER 2u
#define KIND_CONFIG 3u
#define KIND_PROFILE 4u
#define KIND_HIERARCHY 5u
#define KIND_AUDIT 6u
#define KIND_HISTORY 7u
#define KIND_OPAQUE 12u         /* a configured extra kind, beyond the first eight */

#define NOW 1000000u            /* an arbitrary monotonic "now" */
#define UNLIMITED (1ull << 50)

/* ---- helpers ---- */

static struct cache_limits limits_of(uint64_t max_bytes, uint64_t tenant_max_bytes,
                                     unsigned max_tenants)
{
    struct cache_limits limits = {
        .max_bytes = max_bytes,
        .tenant_max_bytes = tenant_max_bytes,
        .max_tenants = max_tenants,
        .high_watermark = 0.8,
        .low_watermark = 0.7,
    };
    return limits;
}

static struct cache *cache_unlimited(unsigned shards)
{
    struct cache_limits limits = limits_of(UNLIMITED, UNLIMITED, 1000000);
    return cache_create(shards, &limits);
}

static struct cache_key key_of(const char *tenant, unsigned kind, const char *key)
{
    struct cache_key k = {
        .tenant = tenant, .tenant_len = strlen(tenant), .kind = kind,
        .key = key, .key_len = strlen(key),
    };
    return k;
}

static struct cache_value value_of(const char *json)
{
    struct cache_value v = {.json = json, .json_len = strlen(json)};
    return v;
}

static struct cache_write reference_write(void)
{
    struct cache_write w = {.updated_ms = 1700000000000ull};
    return w;
}

static struct cache_write critical_write(void)
{
    struct cache_write w = {.critical = true, .updated_ms = 1700000000000ull};
    return w;
}

static struct cache_write versioned(bool critical, uint64_t version)
{
    struct cache_write w = {.critical = critical, .has_version = true, .version = version,
                            .updated_ms = 1700000000000ull + version};
    return w;
}

static enum cache_status put(struct cache *cache, const char *tenant, unsigned kind,
                             const char *key, const char *json, const struct cache_write *w,
                             uint64_t now)
{
    struct cache_key k = key_of(tenant, kind, key);
    struct cache_value v = value_of(json);
    return cache_set(cache, &k, &v, w, now);
}

static enum cache_status put_ref(struct cache *cache, const char *tenant, unsigned kind,
                                 const char *key, const char *json)
{
    struct cache_write w = reference_write();
    return put(cache, tenant, kind, key, json, &w, NOW);
}

static enum cache_status put_crit(struct cache *cache, const char *tenant, unsigned kind,
                                  const char *key, const char *json)
{
    struct cache_write w = critical_write();
    return put(cache, tenant, kind, key, json, &w, NOW);
}

static enum cache_status put_version(struct cache *cache, const char *tenant, unsigned kind,
                                     const char *key, const char *json, uint64_t version)
{
    struct cache_write w = versioned(false, version);
    return put(cache, tenant, kind, key, json, &w, NOW);
}

static enum cache_status del(struct cache *cache, const char *tenant, unsigned kind,
                             const char *key, bool has_version, uint64_t version,
                             uint64_t expires_ms, uint64_t now)
{
    struct cache_key k = key_of(tenant, kind, key);
    struct cache_write w = {.has_version = has_version, .version = version,
                            .expires_ms = expires_ms, .updated_ms = 1700000000000ull};
    return cache_delete(cache, &k, &w, now);
}

/* A copy of what one find returned, taken inside the read session. */
struct found {
    bool present;
    enum cache_entry_state state;
    bool critical;
    char value[20480];
    size_t value_len;
    unsigned char derived[256];
    size_t derived_len;
    char key[600];
    size_t key_len;
    uint64_t version;
    uint64_t updated_ms;
};

/* The entry's value is exactly `json` (cache_entry_value() gives a length,
 * no NUL). */
static void assert_value_is(const struct cache_entry *entry, const char *json)
{
    size_t len;
    const char *value = cache_entry_value(entry, &len);
    ck_assert_uint_eq(len, strlen(json));
    ck_assert(memcmp(value, json, len) == 0);
}

static struct found *lookup(struct cache *cache, const char *tenant, unsigned kind,
                            const char *key, uint64_t now)
{
    static struct found out;
    memset(&out, 0, sizeof(out));
    struct cache_reader reader;
    cache_read_begin(cache, tenant, strlen(tenant), now, &reader);
    const struct cache_entry *entry = cache_read_find(&reader, kind, key, strlen(key));
    if (entry != NULL) {
        out.present = true;
        out.state = cache_entry_state(entry);
        out.critical = cache_entry_critical(entry);
        const char *value = cache_entry_value(entry, &out.value_len);
        ck_assert_ptr_nonnull(value);
        ck_assert_uint_lt(out.value_len, sizeof(out.value));
        memcpy(out.value, value, out.value_len); /* not NUL-terminated */
        out.value[out.value_len] = '\0';
        const void *derived = cache_entry_derived(entry, &out.derived_len);
        if (out.derived_len > 0 && out.derived_len <= sizeof(out.derived))
            memcpy(out.derived, derived, out.derived_len);
        const char *k = cache_entry_key(entry, &out.key_len);
        ck_assert_uint_lt(out.key_len, sizeof(out.key));
        memcpy(out.key, k, out.key_len);
        out.version = cache_entry_version(entry);
        out.updated_ms = cache_entry_updated_ms(cache, entry);
    }
    cache_read_end(&reader);
    return &out;
}

static bool has_value(struct cache *cache, const char *tenant, unsigned kind, const char *key,
                      const char *json, uint64_t now)
{
    struct found *f = lookup(cache, tenant, kind, key, now);
    return f->present && f->state == CACHE_ENTRY_VALUE && strcmp(f->value, json) == 0;
}

static bool present(struct cache *cache, const char *tenant, unsigned kind, const char *key,
                    uint64_t now)
{
    return lookup(cache, tenant, kind, key, now)->present;
}

static struct cache_stats stats_of(struct cache *cache)
{
    struct cache_stats s;
    cache_get_stats(cache, &s);
    return s;
}

static bool tenant_resident(struct cache *cache, const char *tenant)
{
    struct cache_tenant_stats ts;
    return cache_tenant_get_stats(cache, tenant, strlen(tenant), &ts);
}

static void touch_tenant(struct cache *cache, const char *tenant, uint64_t now)
{
    struct cache_reader reader;
    cache_read_begin(cache, tenant, strlen(tenant), now, &reader);
    cache_read_end(&reader);
}

/* A JSON string value of exactly `len` bytes (len >= 2) into buf. */
static const char *json_of_len(char *buf, size_t len, char fill)
{
    buf[0] = '"';
    memset(buf + 1, fill, len - 2);
    buf[len - 1] = '"';
    buf[len] = '\0';
    return buf;
}

/* Nothing cached, and nothing accounted but the cache's own tables. A
 * shard whose last tenant leaves makes its bucket table again at its first
 * size, and glibc may give the new one a chunk 16 bytes larger than the
 * first (a free chunk too small to split): the accounting follows what
 * glibc really holds, so allow that much for each shard. */
static void assert_empty(struct cache *cache, const struct cache_stats *baseline)
{
    struct cache_stats s = stats_of(cache);
    ck_assert_uint_eq(s.entries, 0);
    ck_assert_uint_eq(s.tenants, 0);
    ck_assert_uint_eq(s.critical_bytes, 0);
    ck_assert_uint_eq(s.reference_bytes, 0);
    ck_assert_uint_ge(s.bytes, baseline->bytes);
    ck_assert_uint_le(s.bytes, baseline->bytes + 16 * cache_shard_count(cache));
}

/* Totals over cache_foreach_tenant, checked against cache_get_stats. */
struct tenant_walk {
    uint64_t tenants;
    uint64_t entries;
    uint64_t bytes;
    uint64_t critical_bytes;
    uint64_t max_tenant_bytes;
    char (*names)[65];
    size_t names_capacity;
};

static void walk_fn(void *arg, const struct cache_tenant_stats *t)
{
    struct tenant_walk *walk = arg;
    if (walk->names != NULL && walk->tenants < walk->names_capacity)
        memcpy(walk->names[walk->tenants], t->name, sizeof(t->name));
    walk->tenants++;
    walk->entries += t->entries;
    walk->bytes += t->bytes;
    walk->critical_bytes += t->critical_bytes;
    if (t->bytes > walk->max_tenant_bytes)
        walk->max_tenant_bytes = t->bytes;
    ck_assert_uint_eq(t->kind_count, 0); /* counted only for one tenant */
    ck_assert_uint_gt(t->entries, 0); /* a tenant with nothing left is freed */
}

/* A tenant's per-kind figures (cache_tenant_get_stats() counts them from
 * its entries) add up to its own. */
static void check_tenant_kinds(struct cache *cache, const char *name)
{
    struct cache_tenant_stats *t = malloc(sizeof(*t));
    ck_assert_ptr_nonnull(t);
    ck_assert(cache_tenant_get_stats(cache, name, strlen(name), t));
    uint64_t kind_entries = 0, kind_bytes = 0;
    ck_assert_uint_le(t->kind_count, 64);
    for (unsigned k = 0; k < t->kind_count; k++) {
        kind_entries += t->kind_entries[k];
        kind_bytes += t->kind_bytes[k];
    }
    ck_assert_uint_eq(kind_entries, t->entries);
    ck_assert_uint_le(kind_bytes, t->bytes);
    ck_assert_uint_le(t->critical_bytes, kind_bytes);
    free(t);
}

static struct tenant_walk walk_tenants(struct cache *cache)
{
    struct cache_stats s = stats_of(cache);
    struct tenant_walk walk = {0};
    walk.names_capacity = s.tenants;
    walk.names = calloc(s.tenants + 1, sizeof(*walk.names));
    ck_assert_ptr_nonnull(walk.names);
    cache_foreach_tenant(cache, walk_fn, &walk);
    for (uint64_t i = 0; i < walk.tenants && i < walk.names_capacity; i++)
        check_tenant_kinds(cache, walk.names[i]);
    free(walk.names);
    walk.names = NULL;
    ck_assert_uint_eq(walk.tenants, s.tenants);
    ck_assert_uint_eq(walk.entries, s.entries);
    ck_assert_uint_eq(walk.critical_bytes, s.critical_bytes);
    ck_assert_uint_eq(walk.bytes, s.critical_bytes + s.reference_bytes);
    ck_assert_uint_le(walk.bytes, s.bytes);
    return walk;
}

/* ---- set / get ---- */

START_TEST(test_packed_fields_extremes)
{
    /* Lengths, versions and update times are packed as varints (update
     * times relative to when the cache was made, either side of it): each
     * comes back as written at the ends of its range. */
    struct cache *cache = cache_unlimited(4);
    static char big[20000];
    json_of_len(big, sizeof(big) - 1, 'b');
    char long_key[NAMES_KEY_MAX + 1];
    memset(long_key, 'k', NAMES_KEY_MAX);
    long_key[NAMES_KEY_MAX] = '\0';
    const struct {
        const char *key;
        const char *json;
        uint64_t version;
        uint64_t updated_ms;
    } cases[] = {
        {"a", "1", 0, 0},
        {"b", "1", 1, 1},
        {"c", "1", 127, 1700000000000ull},
        {"d", "1", 128, util_realtime_ms()},
        {"e", "1", UINT64_MAX - 1, util_realtime_ms() - 1},
        {"f", big, UINT64_MAX, (1ull << 48) - 1},
        {long_key, big, 1ull << 63, util_realtime_ms() + 86400000},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct cache_write w = {.has_version = cases[i].version != 0,
                                .version = cases[i].version,
                                .expires_ms = i % 2 ? NOW + 1000 : 0,
                                .updated_ms = cases[i].updated_ms};
        ck_assert_int_eq(put(cache, "acme", KIND_CONFIG, cases[i].key, cases[i].json, &w, NOW),
                         CACHE_OK);
    }
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct found *f = lookup(cache, "acme", KIND_CONFIG, cases[i].key, NOW);
        ck_assert(f->present);
        ck_assert_uint_eq(f->key_len, strlen(cases[i].key));
        ck_assert_uint_eq(f->value_len, strlen(cases[i].json));
        ck_assert_uint_eq(f->version, cases[i].version);
        ck_assert_uint_eq(f->updated_ms, cases[i].updated_ms);
        /* Odd ones expire at NOW + 1000. */
        ck_assert(lookup(cache, "acme", KIND_CONFIG, cases[i].key, NOW + 1000)->present ==
                  (i % 2 == 0));
    }
    walk_tenants(cache);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_set_get)
{
    struct cache *cache = cache_unlimited(4);
    static const unsigned char blob[] = {1, 0, 2, 0, 0, 0, 'x', 'y', 0, 255};
    struct cache_key k = key_of("acme", KIND_CREDIT, "op.send");
    struct cache_value v = {.json = "{\"cost\":3.5}", .json_len = 12,
                            .derived = blob, .derived_len = sizeof(blob)};
    struct cache_write w = versioned(true, 7);
    w.updated_ms = 1712345678901ull;
    ck_assert_int_eq(cache_set(cache, &k, &v, &w, NOW), CACHE_OK);

    struct found *f = lookup(cache, "acme", KIND_CREDIT, "op.send", NOW);
    ck_assert(f->present);
    ck_assert_int_eq(f->state, CACHE_ENTRY_VALUE);
    ck_assert(f->critical);
    ck_assert_uint_eq(f->value_len, 12);
    ck_assert_str_eq(f->value, "{\"cost\":3.5}");
    ck_assert_uint_eq(f->derived_len, sizeof(blob));
    ck_assert_mem_eq(f->derived, blob, sizeof(blob));
    ck_assert_uint_eq(f->key_len, 7);
    ck_assert_mem_eq(f->key, "op.send", 7);
    ck_assert_uint_eq(f->version, 7);
    ck_assert_uint_eq(f->updated_ms, 1712345678901ull);

    /* The cache copied everything: the caller's buffers may change. */
    char json[16] = "[1,2,3]";
    ck_assert_int_eq(put_ref(cache, "acme", KIND_PROFILE, "u1", json), CACHE_OK);
    memset(json, 'z', sizeof(json) - 1);
    ck_assert(has_value(cache, "acme", KIND_PROFILE, "u1", "[1,2,3]", NOW));
    f = lookup(cache, "acme", KIND_PROFILE, "u1", NOW);
    ck_assert(!f->critical);
    ck_assert_uint_eq(f->derived_len, 0);
    ck_assert_uint_eq(f->version, 0);

    struct cache_stats s = stats_of(cache);
    ck_assert_uint_eq(s.entries, 2);
    ck_assert_uint_eq(s.tenants, 1);
    ck_assert_uint_gt(s.critical_bytes, 0);
    ck_assert_uint_gt(s.reference_bytes, 0);
    walk_tenants(cache);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_create_destroy)
{
    cache_destroy(NULL);
    /* A shard count that is not a power of two falls back to the default. */
    static const unsigned counts[] = {0, 1, 3, 64, 100};
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        struct cache *cache = cache_unlimited(counts[i]);
        struct cache_stats baseline = stats_of(cache);
        ck_assert_uint_gt(baseline.bytes, 0);
        ck_assert_uint_eq(baseline.entries, 0);
        ck_assert_uint_eq(baseline.tenants, 0);
        ck_assert_int_eq(put_ref(cache, "acme", KIND_PROFILE, "p", "1"), CACHE_OK);
        ck_assert(has_value(cache, "acme", KIND_PROFILE, "p", "1", NOW));
        ck_assert_uint_eq(cache_flush(cache, NULL, 0, -1), 1);
        assert_empty(cache, &baseline);
        ck_assert_int_eq(put_crit(cache, "acme", KIND_CREDIT, "c", "1"), CACHE_OK);
        cache_destroy(cache); /* not empty: everything is freed (ASan, valgrind) */
    }
}
END_TEST

START_TEST(test_miss)
{
    struct cache *cache = cache_unlimited(4);
    uint64_t misses = stats_get(&stats.misses);
    ck_assert(!present(cache, "nobody", KIND_ROLE, "admin", NOW));
    ck_assert_int_eq(put_ref(cache, "acme", KIND_ROLE, "admin", "[]"), CACHE_OK);
    ck_assert(!present(cache, "acme", KIND_ROLE, "other", NOW));
    ck_assert(!present(cache, "acme", KIND_USER, "admin", NOW));
    ck_assert(!present(cache, "acm", KIND_ROLE, "admin", NOW));
    ck_assert(!present(cache, "acmee", KIND_ROLE, "admin", NOW));
    ck_assert(!present(cache, "acme", KIND_ROLE, "admi", NOW));
    ck_assert(!present(cache, "acme", KIND_ROLE, "admin2", NOW));
    ck_assert_uint_eq(stats_get(&stats.misses) - misses, 7);
    cache_destroy(cache);
}
END_TEST

/* Entries live in size-class slabs (slab.h): what entries deleted leave
 * free is reused by new ones of the same size, and a flush gives the
 * slabs back but those kept warm. Counted apart from `bytes`. */
START_TEST(test_slab_spare_reused_and_given_back)
{
    struct cache *cache = cache_unlimited(4);
    char json[401], tenant[16], key[16];
    json_of_len(json, 400, 's');
    for (unsigned i = 0; i < 20000; i++) {
        snprintf(tenant, sizeof(tenant), "t%03u", i % 100);
        snprintf(key, sizeof(key), "k%05u", i);
        ck_assert_int_eq(put_ref(cache, tenant, KIND_CONFIG, key, json), CACHE_OK);
    }
    struct cache_stats full = stats_of(cache);
    ck_assert_uint_eq(full.entries, 20000);
    /* About 8 MB of entries of one class: slabs full but the last. */
    ck_assert_uint_lt(full.slab_spare_bytes, full.bytes / 50);
    for (unsigned i = 0; i < 20000; i += 2) {
        snprintf(tenant, sizeof(tenant), "t%03u", i % 100);
        snprintf(key, sizeof(key), "k%05u", i);
        struct cache_key k = key_of(tenant, KIND_CONFIG, key);
        ck_assert_int_eq(cache_invalidate(cache, &k, false, 0, NOW, NULL), CACHE_OK);
    }
    struct cache_stats half = stats_of(cache);
    ck_assert_uint_eq(half.entries, 10000);
    if (!SLAB_PASS_THROUGH)
        ck_assert_uint_gt(half.slab_spare_bytes, 10000 * 400);
    for (unsigned i = 0; i < 20000; i += 2) {
        snprintf(tenant, sizeof(tenant), "t%03u", i % 100);
        snprintf(key, sizeof(key), "k%05u", i);
        ck_assert_int_eq(put_ref(cache, tenant, KIND_CONFIG, key, json), CACHE_OK);
    }
    struct cache_stats again = stats_of(cache);
    ck_assert_uint_eq(again.entries, 20000);
    ck_assert_uint_eq(again.slab_spare_bytes, full.slab_spare_bytes);
    ck_assert_uint_eq(cache_flush(cache, NULL, 0, -1), 20000);
    /* The slabs the pool keeps warm (64 KiB each) are all that is left. */
    ck_assert_uint_le(stats_of(cache).slab_spare_bytes, (SLAB_KEPT_EMPTY + 1) * 65536);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_overwrite)
{
    struct cache *cache = cache_unlimited(4);
    char big[3000];
    ck_assert_int_eq(put_ref(cache, "acme", KIND_CONFIG, "c", "1"), CACHE_OK);
    struct cache_stats small = stats_of(cache);
    ck_assert_int_eq(put_ref(cache, "acme", KIND_CONFIG, "c", json_of_len(big, 2999, 'b')),
                     CACHE_OK);
    struct found *f = lookup(cache, "acme", KIND_CONFIG, "c", NOW);
    ck_assert_uint_eq(f->value_len, 2999);
    ck_assert_str_eq(f->value, big);
    ck_assert_uint_eq(stats_of(cache).entries, 1);
    ck_assert_uint_gt(stats_of(cache).bytes, small.bytes + 2900);
    ck_assert_int_eq(put_ref(cache, "acme", KIND_CONFIG, "c", "2"), CACHE_OK);
    ck_assert(has_value(cache, "acme", KIND_CONFIG, "c", "2", NOW));
    ck_assert_uint_eq(stats_of(cache).entries, 1);
    ck_assert_uint_eq(stats_of(cache).bytes, small.bytes);

    /* Tier may change with the config: critical <-> reference. */
    ck_assert_int_eq(put_crit(cache, "acme", KIND_CONFIG, "c", "3"), CACHE_OK);
    ck_assert(lookup(cache, "acme", KIND_CONFIG, "c", NOW)->critical);
    ck_assert_uint_gt(stats_of(cache).critical_bytes, 0);
    ck_assert_int_eq(put_ref(cache, "acme", KIND_CONFIG, "c", "4"), CACHE_OK);
    ck_assert(!lookup(cache, "acme", KIND_CONFIG, "c", NOW)->critical);
    ck_assert_uint_eq(stats_of(cache).critical_bytes, 0);
    walk_tenants(cache);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_large_derived)
{
    /* A role with many patterns: the derived blob may exceed 64 KiB. */
    struct cache *cache = cache_unlimited(4);
    size_t len = 70000;
    unsigned char *blob = malloc(len);
    for (size_t i = 0; i < len; i++)
        blob[i] = (unsigned char)(i * 31 + 7);
    struct cache_key k = key_of("acme", KIND_ROLE, "admin");
    struct cache_value v = {.json = "[\"*\"]", .json_len = 5, .derived = blob, .derived_len = len};
    struct cache_write w = critical_write();
    ck_assert_int_eq(cache_set(cache, &k, &v, &w, NOW), CACHE_OK);
    struct cache_reader reader;
    cache_read_begin(cache, "acme", 4, NOW, &reader);
    const struct cache_entry *entry = cache_read_find(&reader, KIND_ROLE, "admin", 5);
    ck_assert_ptr_nonnull(entry);
    size_t got_len;
    const void *got = cache_entry_derived(entry, &got_len);
    ck_assert_uint_eq(got_len, len);
    ck_assert(memcmp(got, blob, len) == 0);
    assert_value_is(entry, "[\"*\"]");
    cache_read_end(&reader);
    ck_assert_uint_gt(stats_of(cache).critical_bytes, len);
    free(blob);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_triples_never_collide)
{
    struct cache *cache = cache_unlimited(1);
    ck_assert_int_eq(put_ref(cache, "a", KIND_PROFILE, "b:c", "1"), CACHE_OK);
    ck_assert_int_eq(put_ref(cache, "a:b", KIND_PROFILE, "c", "2"), CACHE_OK);
    ck_assert_int_eq(put_ref(cache, "ab", KIND_PROFILE, "c", "3"), CACHE_OK);
    ck_assert_int_eq(put_ref(cache, "a", KIND_PROFILE, "bc", "4"), CACHE_OK);
    ck_assert_int_eq(put_ref(cache, "a", KIND_CONFIG, "b:c", "5"), CACHE_OK);
    ck_assert_int_eq(put_ref(cache, "a", KIND_OPAQUE, "b:c", "6"), CACHE_OK);
    ck_assert(has_value(cache, "a", KIND_PROFILE, "b:c", "1", NOW));
    ck_assert(has_value(cache, "a:b", KIND_PROFILE, "c", "2", NOW));
    ck_assert(has_value(cache, "ab", KIND_PROFILE, "c", "3", NOW));
    ck_assert(has_value(cache, "a", KIND_PROFILE, "bc", "4", NOW));
    ck_assert(has_value(cache, "a", KIND_CONFIG, "b:c", "5", NOW));
    ck_assert(has_value(cache, "a", KIND_OPAQUE, "b:c", "6", NOW));
    ck_assert(!present(cache, "a", KIND_PROFILE, "c", NOW));
    ck_assert(!present(cache, "a:b", KIND_PROFILE, "b:c", NOW));
    ck_assert_uint_eq(stats_of(cache).entries, 6);
    ck_assert_uint_eq(stats_of(cache).tenants, 3);

    /* Deleting in one kind leaves the other kinds and tenants alone. */
    ck_assert_int_eq(del(cache, "a", KIND_PROFILE, "b:c", false, 0, NOW + 1000, NOW), CACHE_OK);
    ck_assert_int_eq(lookup(cache, "a", KIND_PROFILE, "b:c", NOW)->state, CACHE_ENTRY_TOMBSTONE);
    ck_assert(has_value(cache, "a", KIND_CONFIG, "b:c", "5", NOW));
    ck_assert(has_value(cache, "a:b", KIND_PROFILE, "c", "2", NOW));
    ck_assert_uint_eq(cache_flush(cache, "a:b", 3, -1), 1);
    ck_assert(has_value(cache, "a", KIND_PROFILE, "bc", "4", NOW));
    ck_assert(has_value(cache, "ab", KIND_PROFILE, "c", "3", NOW));

    /* Embedded NULs are bytes like any other. */
    struct cache_key k1 = {.tenant = "t", .tenant_len = 1, .kind = 1, .key = "x\0y", .key_len = 3};
    struct cache_key k2 = {.tenant = "t", .tenant_len = 1, .kind = 1, .key = "x\0z", .key_len = 3};
    struct cache_value v1 = value_of("1"), v2 = value_of("2");
    struct cache_write w = reference_write();
    ck_assert_int_eq(cache_set(cache, &k1, &v1, &w, NOW), CACHE_OK);
    ck_assert_int_eq(cache_set(cache, &k2, &v2, &w, NOW), CACHE_OK);
    struct cache_reader reader;
    cache_read_begin(cache, "t", 1, NOW, &reader);
    const struct cache_entry *e1 = cache_read_find(&reader, 1, "x\0y", 3);
    const struct cache_entry *e2 = cache_read_find(&reader, 1, "x\0z", 3);
    ck_assert_ptr_nonnull(e1);
    ck_assert_ptr_nonnull(e2);
    assert_value_is(e1, "1");
    assert_value_is(e2, "2");
    ck_assert_ptr_null(cache_read_find(&reader, 1, "x", 1));
    cache_read_end(&reader);
    walk_tenants(cache);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_many_tenants_many_keys)
{
    struct cache *cache = cache_unlimited(4);
    struct cache_stats baseline = stats_of(cache);
    char tenant[32], key[64], json[64];
    /* A few big tenants (their tables grow many times) ... */
    for (int t = 0; t < 4; t++) {
        snprintf(tenant, sizeof(tenant), "big%d", t);
        for (int i = 0; i < 5000; i++) {
            snprintf(key, sizeof(key), "user-%d", i);
            snprintf(json, sizeof(json), "{\"t\":%d,\"i\":%d}", t, i);
            ck_assert_int_eq(put_ref(cache, tenant, (unsigned)(i % 3) + KIND_PROFILE, key, json),
                             CACHE_OK);
        }
    }
    /* ... and thousands of small ones (the shards' tables grow). */
    for (int t = 0; t < 3000; t++) {
        snprintf(tenant, sizeof(tenant), "small-%d", t);
        for (int i = 0; i < 3; i++) {
            snprintf(key, sizeof(key), "k%d", i);
            snprintf(json, sizeof(json), "%d", t * 10 + i);
            ck_assert_int_eq(put_crit(cache, tenant, KIND_CREDIT, key, json), CACHE_OK);
        }
    }
    struct cache_stats s = stats_of(cache);
    ck_assert_uint_eq(s.entries, 4 * 5000 + 3000 * 3);
    ck_assert_uint_eq(s.tenants, 4 + 3000);
    for (int t = 0; t < 4; t++) {
        snprintf(tenant, sizeof(tenant), "big%d", t);
        for (int i = 0; i < 5000; i++) {
            snprintf(key, sizeof(key), "user-%d", i);
            snprintf(json, sizeof(json), "{\"t\":%d,\"i\":%d}", t, i);
            ck_assert(has_value(cache, tenant, (unsigned)(i % 3) + KIND_PROFILE, key, json, NOW));
            ck_assert(!present(cache, tenant, (unsigned)((i + 1) % 3) + KIND_PROFILE, key, NOW));
        }
        struct cache_tenant_stats ts;
        ck_assert(cache_tenant_get_stats(cache, tenant, strlen(tenant), &ts));
        ck_assert_uint_eq(ts.entries, 5000);
        ck_assert_uint_eq(ts.kind_entries[KIND_PROFILE], 1667);
        ck_assert_uint_eq(ts.kind_entries[KIND_HIERARCHY], 1667);
        ck_assert_uint_eq(ts.kind_entries[KIND_AUDIT], 1666);
        ck_assert_uint_eq(ts.critical_bytes, 0);
    }
    for (int t = 0; t < 3000; t++) {
        snprintf(tenant, sizeof(tenant), "small-%d", t);
        for (int i = 0; i < 3; i++) {
            snprintf(key, sizeof(key), "k%d", i);
            snprintf(json, sizeof(json), "%d", t * 10 + i);
            ck_assert(has_value(cache, tenant, KIND_CREDIT, key, json, NOW));
        }
    }
    walk_tenants(cache);
    ck_assert_uint_eq(cache_flush(cache, NULL, 0, -1), 4 * 5000 + 3000 * 3);
    assert_empty(cache, &baseline);
    ck_assert(!present(cache, "big0", KIND_PROFILE, "user-0", NOW));
    cache_destroy(cache);
}
END_TEST

/* ---- versions, tombstones, expiry ---- */

START_TEST(test_versions)
{
    struct cache *cache = cache_unlimited(4);
    ck_assert_int_eq(put_version(cache, "acme", KIND_USER, "u", "\"active\"", 5), CACHE_OK);
    ck_assert_int_eq(put_version(cache, "acme", KIND_USER, "u", "\"v6\"", 6), CACHE_OK);
    ck_assert(has_value(cache, "acme", KIND_USER, "u", "\"v6\"", NOW));
    ck_assert_uint_eq(lookup(cache, "acme", KIND_USER, "u", NOW)->version, 6);

    ck_assert_int_eq(put_version(cache, "acme", KIND_USER, "u", "\"eq\"", 6), CACHE_STALE);
    ck_assert_int_eq(put_version(cache, "acme", KIND_USER, "u", "\"old\"", 2), CACHE_STALE);
    ck_assert_int_eq(put_version(cache, "acme", KIND_USER, "u", "\"zero\"", 0), CACHE_STALE);
    struct found *f = lookup(cache, "acme", KIND_USER, "u", NOW);
    ck_assert_str_eq(f->value, "\"v6\"");
    ck_assert_uint_eq(f->version, 6);
    ck_assert_uint_eq(f->updated_ms, 1700000000000ull + 6);

    /* Without a version: always applies, the version becomes 0. */
    ck_assert_int_eq(put_ref(cache, "acme", KIND_USER, "u", "\"forced\""), CACHE_OK);
    f = lookup(cache, "acme", KIND_USER, "u", NOW);
    ck_assert_str_eq(f->value, "\"forced\"");
    ck_assert_uint_eq(f->version, 0);
    ck_assert_int_eq(put_version(cache, "acme", KIND_USER, "u", "\"one\"", 1), CACHE_OK);
    ck_assert_uint_eq(lookup(cache, "acme", KIND_USER, "u", NOW)->version, 1);

    /* Versions are unsigned 64-bit. */
    ck_assert_int_eq(put_version(cache, "acme", KIND_USER, "u", "\"max\"", UINT64_MAX), CACHE_OK);
    ck_assert_int_eq(put_version(cache, "acme", KIND_USER, "u", "\"x\"", UINT64_MAX - 1),
                     CACHE_STALE);
    ck_assert_uint_eq(lookup(cache, "acme", KIND_USER, "u", NOW)->version, UINT64_MAX);
    ck_assert(has_value(cache, "acme", KIND_USER, "u", "\"max\"", NOW));

    /* An expired entry no longer blocks an older version. */
    struct cache_write w = versioned(false, 50);
    w.expires_ms = NOW + 10;
    ck_assert_int_eq(put(cache, "acme", KIND_AUDIT, "a", "50", &w, NOW), CACHE_OK);
    w = versioned(false, 40);
    ck_assert_int_eq(put(cache, "acme", KIND_AUDIT, "a", "40", &w, NOW + 5), CACHE_STALE);
    ck_assert_int_eq(put(cache, "acme", KIND_AUDIT, "a", "40", &w, NOW + 10), CACHE_OK);
    ck_assert(has_value(cache, "acme", KIND_AUDIT, "a", "40", NOW + 10));
    ck_assert_uint_eq(stats_of(cache).entries, 2);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_delete_tombstone)
{
    struct cache *cache = cache_unlimited(4);
    struct cache_stats baseline = stats_of(cache);
    ck_assert_int_eq(put_version(cache, "acme", KIND_ROLE, "r", "[\"a\"]", 3), CACHE_OK);
    /* A delete older than the entry is stale. */
    ck_assert_int_eq(del(cache, "acme", KIND_ROLE, "r", true, 2, NOW + 100, NOW), CACHE_STALE);
    ck_assert_int_eq(del(cache, "acme", KIND_ROLE, "r", true, 3, NOW + 100, NOW), CACHE_STALE);
    ck_assert(has_value(cache, "acme", KIND_ROLE, "r", "[\"a\"]", NOW));

    ck_assert_int_eq(del(cache, "acme", KIND_ROLE, "r", true, 5, NOW + 100, NOW), CACHE_OK);
    struct found *f = lookup(cache, "acme", KIND_ROLE, "r", NOW);
    ck_assert(f->present);
    ck_assert_int_eq(f->state, CACHE_ENTRY_TOMBSTONE);
    ck_assert_uint_eq(f->version, 5);
    ck_assert_uint_eq(f->value_len, 0);
    ck_assert_str_eq(f->value, "");
    ck_assert_uint_eq(f->derived_len, 0);
    ck_assert(!f->critical);
    ck_assert_uint_eq(stats_of(cache).entries, 1);

    /* Older or equal sets stay deleted. */
    ck_assert_int_eq(put_version(cache, "acme", KIND_ROLE, "r", "[\"old\"]", 4), CACHE_STALE);
    ck_assert_int_eq(put_version(cache, "acme", KIND_ROLE, "r", "[\"eq\"]", 5), CACHE_STALE);
    struct cache_write crit = versioned(true, 4);
    ck_assert_int_eq(put(cache, "acme", KIND_ROLE, "r", "[\"c\"]", &crit, NOW), CACHE_STALE);
    ck_assert_int_eq(lookup(cache, "acme", KIND_ROLE, "r", NOW)->state, CACHE_ENTRY_TOMBSTONE);
    /* A fill never resurrects it. */
    struct cache_write fill = reference_write();
    fill.if_absent = true;
    ck_assert_int_eq(put(cache, "acme", KIND_ROLE, "r", "[\"fill\"]", &fill, NOW), CACHE_EXISTS);
    ck_assert_int_eq(lookup(cache, "acme", KIND_ROLE, "r", NOW)->state, CACHE_ENTRY_TOMBSTONE);
    /* A newer set applies. */
    ck_assert_int_eq(put_version(cache, "acme", KIND_ROLE, "r", "[\"new\"]", 6), CACHE_OK);
    ck_assert(has_value(cache, "acme", KIND_ROLE, "r", "[\"new\"]", NOW));

    /* A set without version applies over a tombstone. */
    ck_assert_int_eq(del(cache, "acme", KIND_ROLE, "r", true, 9, NOW + 100, NOW), CACHE_OK);
    ck_assert_int_eq(put_ref(cache, "acme", KIND_ROLE, "r", "[\"nov\"]"), CACHE_OK);
    f = lookup(cache, "acme", KIND_ROLE, "r", NOW);
    ck_assert_int_eq(f->state, CACHE_ENTRY_VALUE);
    ck_assert_uint_eq(f->version, 0);

    /* Deleting an absent key leaves a tombstone too (an in-flight fill must not land). */
    ck_assert_int_eq(del(cache, "acme", KIND_ROLE, "absent", true, 2, NOW + 100, NOW), CACHE_OK);
    ck_assert_int_eq(lookup(cache, "acme", KIND_ROLE, "absent", NOW)->state,
                     CACHE_ENTRY_TOMBSTONE);
    ck_assert_int_eq(put_version(cache, "acme", KIND_ROLE, "absent", "1", 1), CACHE_STALE);
    /* A delete without version over a tombstone: version 0. */
    ck_assert_int_eq(del(cache, "acme", KIND_ROLE, "absent", false, 0, NOW + 100, NOW), CACHE_OK);
    ck_assert_uint_eq(lookup(cache, "acme", KIND_ROLE, "absent", NOW)->version, 0);
    /* A tombstone in a brand-new tenant. */
    ck_assert_int_eq(del(cache, "fresh", KIND_USER, "u", true, 1, NOW + 100, NOW), CACHE_OK);
    ck_assert(tenant_resident(cache, "fresh"));
    ck_assert_uint_eq(stats_of(cache).entries, 3);
    ck_assert_uint_eq(stats_of(cache).critical_bytes, 0);
    walk_tenants(cache);

    ck_assert_uint_eq(cache_flush(cache, NULL, 0, -1), 3);
    assert_empty(cache, &baseline);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_tombstone_expiry)
{
    struct cache *cache = cache_unlimited(4);
    struct cache_stats baseline = stats_of(cache);
    ck_assert_int_eq(put_version(cache, "acme", KIND_ROLE, "r", "[]", 3), CACHE_OK);
    ck_assert_int_eq(del(cache, "acme", KIND_ROLE, "r", true, 5, NOW + 1000, NOW), CACHE_OK);
    ck_assert_int_eq(lookup(cache, "acme", KIND_ROLE, "r", NOW + 999)->state,
                     CACHE_ENTRY_TOMBSTONE);
    ck_assert(!present(cache, "acme", KIND_ROLE, "r", NOW + 1000));
    ck_assert_uint_eq(cache_sweep(cache, NOW + 999, 1000), 0);
    ck_assert_uint_eq(stats_of(cache).entries, 1);
    uint64_t expired = stats_of(cache).evictions_expired;
    ck_assert_uint_eq(cache_sweep(cache, NOW + 1000, 1000), 1);
    ck_assert_uint_eq(stats_of(cache).evictions_expired - expired, 1);
    assert_empty(cache, &baseline);

    /* Once the tombstone is gone, an older version applies again. */
    ck_assert_int_eq(del(cache, "acme", KIND_ROLE, "r", true, 5, NOW + 1000, NOW), CACHE_OK);
    struct cache_write w = versioned(false, 4);
    ck_assert_int_eq(put(cache, "acme", KIND_ROLE, "r", "[4]", &w, NOW + 999), CACHE_STALE);
    ck_assert_int_eq(put(cache, "acme", KIND_ROLE, "r", "[4]", &w, NOW + 1000), CACHE_OK);
    ck_assert(has_value(cache, "acme", KIND_ROLE, "r", "[4]", NOW + 1000));
    ck_assert_uint_eq(stats_of(cache).entries, 1);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_ttl_expiry)
{
    struct cache *cache = cache_unlimited(4);
    struct cache_stats baseline = stats_of(cache);
    struct cache_write w = reference_write();
    w.expires_ms = NOW + 500;
    char key[32];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "e%d", i);
        ck_assert_int_eq(put(cache, "acme", KIND_AUDIT, key, "{}", &w, NOW), CACHE_OK);
        ck_assert_int_eq(put(cache, "other", KIND_AUDIT, key, "{}", &w, NOW), CACHE_OK);
    }
    ck_assert_int_eq(put_ref(cache, "acme", KIND_PROFILE, "forever", "1"), CACHE_OK);
    ck_assert_int_eq(put_crit(cache, "acme", KIND_CREDIT, "forever", "2"), CACHE_OK);

    ck_assert(present(cache, "acme", KIND_AUDIT, "e1", NOW + 499));
    ck_assert(!present(cache, "acme", KIND_AUDIT, "e1", NOW + 500));
    ck_assert(!present(cache, "acme", KIND_AUDIT, "e1", NOW + 100000));
    ck_assert_uint_eq(cache_sweep(cache, NOW + 499, 100000), 0);
    ck_assert_uint_eq(stats_of(cache).entries, 202);

    /* Budgeted sweeps make progress from where they stopped. */
    uint64_t total = 0;
    for (int i = 0; i < 10000 && total < 200; i++)
        total += cache_sweep(cache, NOW + 500, 3);
    ck_assert_uint_eq(total, 200);
    ck_assert_uint_eq(stats_of(cache).evictions_expired, 200);
    ck_assert_uint_eq(stats_of(cache).entries, 2);
    ck_assert_uint_eq(stats_of(cache).tenants, 1);
    ck_assert(!tenant_resident(cache, "other"));

    /* Entries without expiry are never swept. */
    ck_assert_uint_eq(cache_sweep(cache, UINT64_MAX, 100000), 0);
    ck_assert(has_value(cache, "acme", KIND_PROFILE, "forever", "1", UINT64_MAX));
    ck_assert(has_value(cache, "acme", KIND_CREDIT, "forever", "2", UINT64_MAX));
    walk_tenants(cache);

    ck_assert_uint_eq(cache_flush(cache, "acme", 4, -1), 2);
    assert_empty(cache, &baseline);
    /* A sweep of an empty cache does nothing. */
    ck_assert_uint_eq(cache_sweep(cache, UINT64_MAX, 100), 0);
    cache_destroy(cache);
}
END_TEST

/* Expiries are kept in 32 bits (docs/reference.md §6 TTLs): in ms across
 * the 32-bit wrap of the clock, and farther ones (a TTL of a year) within
 * COARSE rounding; the snapshot walk shows them as monotonic ms again. */
struct expiry_seen {
    uint64_t expires_ms[4];
    uint64_t updated_ms[4];
    unsigned count;
};

static void collect_expiry(void *arg, const struct cache_entry_view *entry)
{
    struct expiry_seen *seen = arg;
    unsigned i = entry->key[0] == 'n' ? 0 : (entry->key[0] == 'f' ? 1 : 2);
    seen->expires_ms[i] = entry->expires_ms;
    seen->updated_ms[i] = entry->updated_ms;
    seen->count++;
}

START_TEST(test_expiry_ranges)
{
    struct cache *cache = cache_unlimited(1);
    const uint64_t year = 365ull * 24 * 3600 * 1000;
    /* just below a 32-bit wrap of the millisecond clock */
    const uint64_t now = (5ull << 32) - 100;
    struct cache_write w = reference_write();
    w.expires_ms = now + 200; /* after the wrap */
    w.updated_ms = 253402300799999ull; /* 9999-12-31T23:59:59.999Z */
    ck_assert_int_eq(put(cache, "acme", KIND_AUDIT, "near", "1", &w, now), CACHE_OK);
    w.expires_ms = now + year;
    ck_assert_int_eq(put(cache, "acme", KIND_AUDIT, "far", "2", &w, now), CACHE_OK);
    w.expires_ms = 0;
    ck_assert_int_eq(put(cache, "acme", KIND_AUDIT, "xnever", "3", &w, now), CACHE_OK);

    ck_assert(present(cache, "acme", KIND_AUDIT, "near", now + 199));
    ck_assert(!present(cache, "acme", KIND_AUDIT, "near", now + 200));
    ck_assert(present(cache, "acme", KIND_AUDIT, "far", now + year - 1));
    ck_assert(!present(cache, "acme", KIND_AUDIT, "far", now + year + 1024));
    ck_assert(present(cache, "acme", KIND_AUDIT, "xnever", now + 2 * year));

    struct expiry_seen seen = {0};
    ck_assert_uint_eq(cache_foreach_entry(cache, 0, collect_expiry, &seen), 3);
    ck_assert_uint_eq(seen.expires_ms[0], now + 200);
    ck_assert_uint_ge(seen.expires_ms[1], now + year);
    ck_assert_uint_lt(seen.expires_ms[1], now + year + 1024);
    ck_assert_uint_eq(seen.expires_ms[2], 0);
    ck_assert_uint_eq(seen.updated_ms[0], 253402300799999ull);

    /* The sweep tells them apart the same way. */
    ck_assert_uint_eq(cache_sweep(cache, now + 199, 1000), 0);
    ck_assert_uint_eq(cache_sweep(cache, now + 200, 1000), 1);
    ck_assert_uint_eq(cache_sweep(cache, now + year - 1, 1000), 0);
    ck_assert_uint_eq(cache_sweep(cache, now + year + 1024, 1000), 1);
    ck_assert_uint_eq(stats_of(cache).entries, 1);
    cache_destroy(cache);
}
END_TEST

/* LRU-2 ordering holds when the reads are far apart on the logical clock
 * (the distance to the read before the last is kept approximately). */
START_TEST(test_eviction_lru2_far_reads)
{
    struct cache *cache = cache_unlimited(4);
    ck_assert_int_eq(put_ref(cache, "acme", KIND_PROFILE, "old", "1"), CACHE_OK);
    ck_assert_int_eq(put_ref(cache, "acme", KIND_PROFILE, "new", "1"), CACHE_OK);
    ck_assert_int_eq(put_crit(cache, "other", KIND_CREDIT, "c", "1"), CACHE_OK);
    /* "old" read twice long ago; then 100000 sessions on another tenant;
     * then "new" read twice: "new"'s read before the last is the more
     * recent, so "old" goes first. */
    for (int i = 0; i < 2; i++)
        ck_assert(present(cache, "acme", KIND_PROFILE, "old", NOW));
    for (int i = 0; i < 100000; i++)
        touch_tenant(cache, "other", NOW);
    for (int i = 0; i < 2; i++)
        ck_assert(present(cache, "acme", KIND_PROFILE, "new", NOW));
    uint64_t all = stats_of(cache).bytes;
    struct cache_limits limits = limits_of(all - 1, UNLIMITED, 1000000);
    cache_set_limits(cache, &limits);
    cache_enforce(cache, NOW);
    ck_assert(!present(cache, "acme", KIND_PROFILE, "old", NOW));
    ck_assert(present(cache, "acme", KIND_PROFILE, "new", NOW));
    cache_destroy(cache);
}
END_TEST

/* A tenant's open-addressing table under churn: sets, drops (which move
 * later entries back), expiry, kind flushes and growth; every key is found
 * exactly when it should be. */
START_TEST(test_table_churn)
{
    struct cache *cache = cache_unlimited(1);
    enum { KEYS = 3000 };
    static bool live[KEYS];
    char key[32];
    struct cache_write expiring = reference_write();
    expiring.expires_ms = NOW + 10;
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < KEYS; i++) {
            if ((i * 7 + round) % 3 == 0)
                continue;
            snprintf(key, sizeof(key), "k%d", i);
            struct cache_write *w = i % 5 == 0 ? &expiring : NULL;
            struct cache_write plain = reference_write();
            ck_assert_int_eq(put(cache, "acme", i % 2 ? KIND_USER : KIND_PROFILE, key, "1",
                                 w ? w : &plain, NOW),
                             CACHE_OK);
            live[i] = true;
        }
        for (int i = round; i < KEYS; i += 4) {
            snprintf(key, sizeof(key), "k%d", i);
            struct cache_key k = key_of("acme", i % 2 ? KIND_USER : KIND_PROFILE, key);
            ck_assert_int_eq(cache_invalidate(cache, &k, false, 0, NOW, NULL), CACHE_OK);
            live[i] = false;
        }
        for (int i = 0; i < KEYS; i++) {
            snprintf(key, sizeof(key), "k%d", i);
            ck_assert_msg(present(cache, "acme", i % 2 ? KIND_USER : KIND_PROFILE, key, NOW) ==
                              live[i],
                          "round %d key %s", round, key);
        }
    }
    /* The expiring ones go; the rest stay findable. */
    cache_sweep(cache, NOW + 10, 1u << 30);
    for (int i = 0; i < KEYS; i += 5)
        live[i] = false;
    for (int i = 0; i < KEYS; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert(present(cache, "acme", i % 2 ? KIND_USER : KIND_PROFILE, key, NOW + 10) ==
                  live[i]);
    }
    /* Dropping one kind leaves the other whole. */
    uint64_t users = 0;
    for (int i = 1; i < KEYS; i += 2)
        users += live[i];
    ck_assert_uint_eq(cache_flush(cache, "acme", 4, KIND_USER), users);
    for (int i = 0; i < KEYS; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert(present(cache, "acme", i % 2 ? KIND_USER : KIND_PROFILE, key, NOW + 10) ==
                  (i % 2 == 0 && live[i]));
    }
    walk_tenants(cache);
    cache_destroy(cache);
}
END_TEST

/* LRU-2: an entry read again and again outlives entries referenced only
 * once, even more recent ones; among those, the older goes first. */
START_TEST(test_eviction_prefers_entries_read_once)
{
    struct cache *cache = cache_unlimited(4);
    ck_assert_int_eq(put_ref(cache, "acme", KIND_PROFILE, "hot", "1"), CACHE_OK);
    for (int i = 0; i < 3; i++) {
        struct cache_reader reader;
        cache_read_begin(cache, "acme", 4, NOW, &reader);
        ck_assert_ptr_nonnull(cache_read_find(&reader, KIND_PROFILE, "hot", 3));
        cache_read_end(&reader);
    }
    char key[16];
    uint64_t with_hot = stats_of(cache).bytes;
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "once%d", i);
        /* written (a set, a fill) and not read since: one reference */
        ck_assert_int_eq(put_ref(cache, "acme", KIND_PROFILE, key, "1"), CACHE_OK);
    }
    /* Room for 5 entries fewer: with 11 candidates (fewer than the sample
     * size) every one is looked at, so the order is exact. */
    uint64_t all = stats_of(cache).bytes;
    uint64_t per_entry = (all - with_hot) / 10;
    struct cache_limits limits = limits_of(all - 5 * per_entry - per_entry / 2, UNLIMITED, 1000000);
    cache_set_limits(cache, &limits);
    cache_enforce(cache, NOW);
    ck_assert(present(cache, "acme", KIND_PROFILE, "hot", NOW));
    ck_assert(!present(cache, "acme", KIND_PROFILE, "once0", NOW));
    ck_assert(present(cache, "acme", KIND_PROFILE, "once9", NOW));
    cache_destroy(cache);
}
END_TEST

START_TEST(test_invalidate_keeps_tombstone)
{
    struct cache *cache = cache_unlimited(4);
    struct cache_key k = key_of("acme", KIND_USER, "u");
    ck_assert_int_eq(put_version(cache, "acme", KIND_USER, "u", "\"a\"", 5), CACHE_OK);
    ck_assert_int_eq(del(cache, "acme", KIND_USER, "u", true, 6, NOW + 60000, NOW), CACHE_OK);
    /* The tombstone keeps blocking fills and older sets until it expires. */
    ck_assert_int_eq(cache_invalidate(cache, &k, false, 0, NOW, NULL), CACHE_OK);
    struct cache_reader reader;
    cache_read_begin(cache, "acme", 4, NOW, &reader);
    const struct cache_entry *entry = cache_read_find(&reader, KIND_USER, "u", 1);
    ck_assert_ptr_nonnull(entry);
    ck_assert_int_eq(cache_entry_state(entry), CACHE_ENTRY_TOMBSTONE);
    cache_read_end(&reader);
    ck_assert_int_eq(put_version(cache, "acme", KIND_USER, "u", "\"b\"", 5), CACHE_STALE);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_invalidate_reports_recent_reads)
{
    struct cache_limits limits = limits_of(UNLIMITED, UNLIMITED, 1000);
    limits.hot_reads = 3;
    struct cache *cache = cache_create(4, &limits);
    cache_set_wall_clock(cache, 1700000000000ull);
    ck_assert_int_eq(put_version(cache, "acme", KIND_USER, "hot", "\"a\"", 1), CACHE_OK);
    ck_assert_int_eq(put_version(cache, "acme", KIND_USER, "cold", "\"a\"", 1), CACHE_OK);
    for (int i = 0; i < 5; i++) {
        struct cache_reader reader;
        cache_read_begin(cache, "acme", 4, NOW, &reader);
        ck_assert_ptr_nonnull(cache_read_find(&reader, KIND_USER, "hot", 3));
        cache_read_end(&reader);
    }
    uint32_t reads = 99;
    struct cache_key hot = key_of("acme", KIND_USER, "hot");
    struct cache_key cold = key_of("acme", KIND_USER, "cold");
    ck_assert_int_eq(cache_invalidate(cache, &hot, false, 0, NOW, &reads), CACHE_OK);
    ck_assert_uint_eq(reads, 5);
    ck_assert_int_eq(cache_invalidate(cache, &cold, false, 0, NOW, &reads), CACHE_OK);
    ck_assert_uint_eq(reads, 0);
    /* Two minutes later the old reads no longer count. */
    ck_assert_int_eq(put_version(cache, "acme", KIND_USER, "hot", "\"a\"", 2), CACHE_OK);
    struct cache_reader reader;
    cache_read_begin(cache, "acme", 4, NOW, &reader);
    ck_assert_ptr_nonnull(cache_read_find(&reader, KIND_USER, "hot", 3));
    cache_read_end(&reader);
    cache_set_wall_clock(cache, 1700000000000ull + 120000);
    ck_assert_int_eq(cache_invalidate(cache, &hot, false, 0, NOW, &reads), CACHE_OK);
    ck_assert_uint_eq(reads, 0);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_invalidate)
{
    struct cache *cache = cache_unlimited(4);
    struct cache_stats baseline = stats_of(cache);
    struct cache_key k = key_of("acme", KIND_USER, "u");
    ck_assert_int_eq(cache_invalidate(cache, &k, false, 0, NOW, NULL), CACHE_OK); /* absent */
    ck_assert_int_eq(put_version(cache, "acme", KIND_USER, "u", "\"a\"", 10), CACHE_OK);
    ck_assert_int_eq(put_version(cache, "acme", KIND_USER, "v", "\"b\"", 10), CACHE_OK);
    ck_assert_int_eq(cache_invalidate(cache, &k, true, 9, NOW, NULL), CACHE_STALE);
    ck_assert_int_eq(cache_invalidate(cache, &k, true, 10, NOW, NULL), CACHE_STALE);
    ck_assert(has_value(cache, "acme", KIND_USER, "u", "\"a\"", NOW));
    ck_assert_int_eq(cache_invalidate(cache, &k, true, 11, NOW, NULL), CACHE_OK);
    ck_assert(!present(cache, "acme", KIND_USER, "u", NOW));
    ck_assert(has_value(cache, "acme", KIND_USER, "v", "\"b\"", NOW));
    /* No tombstone: a fill or older set may land again. */
    ck_assert_int_eq(put_version(cache, "acme", KIND_USER, "u", "\"c\"", 3), CACHE_OK);
    ck_assert_int_eq(cache_invalidate(cache, &k, false, 0, NOW, NULL), CACHE_OK);
    ck_assert(!present(cache, "acme", KIND_USER, "u", NOW));
    struct cache_key kv = key_of("acme", KIND_USER, "v");
    ck_assert_int_eq(cache_invalidate(cache, &kv, false, 0, NOW, NULL), CACHE_OK);
    assert_empty(cache, &baseline);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_negative)
{
    struct cache *cache = cache_unlimited(4);
    cache_set_wall_clock(cache, 1711111111111ull);
    struct cache_key k = key_of("acme", KIND_USER, "ghost");
    ck_assert_int_eq(cache_set_negative(cache, &k, NOW + 5000, NULL, 0, NOW), CACHE_OK);
    struct found *f = lookup(cache, "acme", KIND_USER, "ghost", NOW);
    ck_assert(f->present);
    ck_assert_int_eq(f->state, CACHE_ENTRY_NEGATIVE);
    ck_assert_uint_eq(f->value_len, 0);
    ck_assert_str_eq(f->value, "");
    ck_assert_uint_eq(f->updated_ms, 1711111111111ull);
    ck_assert(!present(cache, "acme", KIND_USER, "ghost", NOW + 5000));
    /* A negative over a negative refreshes it. */
    ck_assert_int_eq(cache_set_negative(cache, &k, NOW + 6000, NULL, 0, NOW), CACHE_OK);
    ck_assert(present(cache, "acme", KIND_USER, "ghost", NOW + 5500));
    ck_assert_uint_eq(stats_of(cache).entries, 1);

    /* A set replaces a negative, with or without a version. */
    ck_assert_int_eq(put_version(cache, "acme", KIND_USER, "ghost", "\"active\"", 1), CACHE_OK);
    ck_assert(has_value(cache, "acme", KIND_USER, "ghost", "\"active\"", NOW));
    ck_assert_int_eq(cache_set_negative(cache, &k, NOW + 5000, NULL, 0, NOW), CACHE_EXISTS);
    ck_assert(has_value(cache, "acme", KIND_USER, "ghost", "\"active\"", NOW));
    struct cache_key k2 = key_of("acme", KIND_USER, "ghost2");
    ck_assert_int_eq(cache_set_negative(cache, &k2, NOW + 5000, NULL, 0, NOW), CACHE_OK);
    ck_assert_int_eq(put_crit(cache, "acme", KIND_USER, "ghost2", "\"x\""), CACHE_OK);
    ck_assert(has_value(cache, "acme", KIND_USER, "ghost2", "\"x\"", NOW));
    /* A fill replaces a negative. */
    struct cache_key k3 = key_of("acme", KIND_USER, "ghost3");
    ck_assert_int_eq(cache_set_negative(cache, &k3, NOW + 5000, NULL, 0, NOW), CACHE_OK);
    struct cache_write fill = critical_write();
    fill.if_absent = true;
    ck_assert_int_eq(put(cache, "acme", KIND_USER, "ghost3", "\"f\"", &fill, NOW), CACHE_OK);
    ck_assert(has_value(cache, "acme", KIND_USER, "ghost3", "\"f\"", NOW));

    /* Not over a tombstone either; but over an expired value, yes. */
    ck_assert_int_eq(del(cache, "acme", KIND_USER, "dead", true, 4, NOW + 100, NOW), CACHE_OK);
    struct cache_key kd = key_of("acme", KIND_USER, "dead");
    ck_assert_int_eq(cache_set_negative(cache, &kd, NOW + 5000, NULL, 0, NOW), CACHE_EXISTS);
    ck_assert_int_eq(lookup(cache, "acme", KIND_USER, "dead", NOW)->state, CACHE_ENTRY_TOMBSTONE);
    ck_assert_int_eq(cache_set_negative(cache, &kd, NOW + 5000, NULL, 0, NOW + 100), CACHE_OK);
    ck_assert_int_eq(lookup(cache, "acme", KIND_USER, "dead", NOW + 100)->state,
                     CACHE_ENTRY_NEGATIVE);
    /* Negatives are not critical data. */
    ck_assert(!lookup(cache, "acme", KIND_USER, "dead", NOW + 100)->critical);
    walk_tenants(cache);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_if_absent)
{
    struct cache *cache = cache_unlimited(4);
    struct cache_write fill = reference_write();
    fill.if_absent = true;
    ck_assert_int_eq(put(cache, "acme", KIND_PROFILE, "p", "{\"f\":1}", &fill, NOW), CACHE_OK);
    ck_assert(has_value(cache, "acme", KIND_PROFILE, "p", "{\"f\":1}", NOW));
    ck_assert_int_eq(put(cache, "acme", KIND_PROFILE, "p", "{\"f\":2}", &fill, NOW), CACHE_EXISTS);
    ck_assert(has_value(cache, "acme", KIND_PROFILE, "p", "{\"f\":1}", NOW));
    /* A versioned fill does not beat a live entry either. */
    struct cache_write vfill = versioned(false, 100);
    vfill.if_absent = true;
    ck_assert_int_eq(put(cache, "acme", KIND_PROFILE, "p", "{\"f\":3}", &vfill, NOW),
                     CACHE_EXISTS);
    ck_assert(has_value(cache, "acme", KIND_PROFILE, "p", "{\"f\":1}", NOW));
    /* Over a tombstone: EXISTS, even with a newer version. */
    ck_assert_int_eq(del(cache, "acme", KIND_PROFILE, "q", true, 5, NOW + 50, NOW), CACHE_OK);
    ck_assert_int_eq(put(cache, "acme", KIND_PROFILE, "q", "1", &fill, NOW), CACHE_EXISTS);
    ck_assert_int_eq(put(cache, "acme", KIND_PROFILE, "q", "1", &vfill, NOW), CACHE_EXISTS);
    ck_assert_int_eq(lookup(cache, "acme", KIND_PROFILE, "q", NOW)->state, CACHE_ENTRY_TOMBSTONE);
    /* Over an expired entry: the fill lands. */
    struct cache_write ttl = reference_write();
    ttl.expires_ms = NOW + 10;
    ck_assert_int_eq(put(cache, "acme", KIND_PROFILE, "r", "old", &ttl, NOW), CACHE_OK);
    ck_assert_int_eq(put(cache, "acme", KIND_PROFILE, "r", "new", &fill, NOW + 10), CACHE_OK);
    ck_assert(has_value(cache, "acme", KIND_PROFILE, "r", "new", NOW + 10));
    ck_assert_int_eq(put(cache, "acme", KIND_PROFILE, "q", "late", &fill, NOW + 50), CACHE_OK);
    ck_assert(has_value(cache, "acme", KIND_PROFILE, "q", "late", NOW + 50));
    ck_assert_uint_eq(stats_of(cache).entries, 3);
    walk_tenants(cache);
    cache_destroy(cache);
}
END_TEST

/* ---- flush ---- */

static void load_flush_fixture(struct cache *cache)
{
    static const char *tenants[] = {"t1", "t2", "t3"};
    char key[16];
    for (int t = 0; t < 3; t++) {
        for (unsigned kind = 0; kind < 3; kind++) {
            for (int i = 0; i < 10; i++) {
                snprintf(key, sizeof(key), "k%d", i);
                ck_assert_int_eq(kind == 0 ? put_crit(cache, tenants[t], kind, key, "1")
                                           : put_ref(cache, tenants[t], kind, key, "2"),
                                 CACHE_OK);
            }
        }
    }
}

START_TEST(test_flush_scopes)
{
    struct cache *cache = cache_unlimited(2);
    struct cache_stats baseline = stats_of(cache);
    load_flush_fixture(cache);
    ck_assert_uint_eq(stats_of(cache).entries, 90);

    ck_assert_uint_eq(cache_flush(cache, "nobody", 6, -1), 0);
    ck_assert_uint_eq(cache_flush(cache, "t1", 2, 5), 0);
    /* tenant + kind */
    ck_assert_uint_eq(cache_flush(cache, "t1", 2, 1), 10);
    ck_assert(!present(cache, "t1", 1, "k0", NOW));
    ck_assert(present(cache, "t1", 0, "k0", NOW));
    ck_assert(present(cache, "t1", 2, "k0", NOW));
    ck_assert(present(cache, "t2", 1, "k0", NOW));
    struct cache_tenant_stats ts;
    ck_assert(cache_tenant_get_stats(cache, "t1", 2, &ts));
    ck_assert_uint_eq(ts.entries, 20);
    ck_assert_uint_eq(ts.kind_entries[1], 0);
    ck_assert_uint_eq(ts.kind_bytes[1], 0);
    ck_assert_uint_eq(ts.kind_entries[0], 10);
    /* tenant */
    ck_assert_uint_eq(cache_flush(cache, "t2", 2, -1), 30);
    ck_assert(!tenant_resident(cache, "t2"));
    ck_assert(!present(cache, "t2", 0, "k0", NOW));
    ck_assert(present(cache, "t3", 0, "k0", NOW));
    ck_assert_uint_eq(stats_of(cache).tenants, 2);
    /* all tenants, one kind */
    ck_assert_uint_eq(cache_flush(cache, NULL, 0, 2), 20);
    ck_assert(!present(cache, "t1", 2, "k3", NOW));
    ck_assert(!present(cache, "t3", 2, "k3", NOW));
    ck_assert(present(cache, "t3", 1, "k3", NOW));
    ck_assert_uint_eq(stats_of(cache).entries, 30);
    walk_tenants(cache);
    /* a tenant's only kind, by kind: the tenant goes */
    ck_assert_uint_eq(cache_flush(cache, "t1", 2, 0), 10);
    ck_assert(!tenant_resident(cache, "t1"));
    /* all */
    ck_assert_uint_eq(cache_flush(cache, NULL, 0, -1), 20);
    assert_empty(cache, &baseline);
    ck_assert_uint_eq(cache_flush(cache, NULL, 0, -1), 0);

    /* Again, everything at once, tombstones and negatives included. */
    load_flush_fixture(cache);
    ck_assert_int_eq(del(cache, "t1", 0, "k0", true, 9, NOW + 100, NOW), CACHE_OK);
    struct cache_key k = key_of("t4", 1, "neg");
    ck_assert_int_eq(cache_set_negative(cache, &k, NOW + 100, NULL, 0, NOW), CACHE_OK);
    ck_assert_uint_eq(cache_flush(cache, NULL, 0, -1), 91);
    assert_empty(cache, &baseline);
    /* A flush clears tombstones too: an older version applies afterwards. */
    ck_assert_int_eq(put_version(cache, "t1", 0, "k0", "1", 1), CACHE_OK);
    cache_destroy(cache);
}
END_TEST

/* ---- secondary index ---- */

struct children {
    int count;
    char keys[32][16];
};

static void collect_child(void *arg, const struct cache_entry *entry)
{
    struct children *c = arg;
    size_t len;
    const char *key = cache_entry_key(entry, &len);
    ck_assert_int_eq(cache_entry_state(entry), CACHE_ENTRY_VALUE);
    ck_assert_int_lt(c->count, 32);
    ck_assert_uint_lt(len, 16);
    memcpy(c->keys[c->count], key, len);
    c->keys[c->count][len] = '\0';
    c->count++;
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* The children of `parent`, sorted and joined with ',' */
static const char *children_of(struct cache *cache, const char *tenant, unsigned kind,
                               const char *parent, uint64_t now)
{
    static char out[512];
    struct children c = {0};
    struct cache_reader reader;
    cache_read_begin(cache, tenant, strlen(tenant), now, &reader);
    cache_read_index(&reader, kind, parent, strlen(parent), collect_child, &c);
    cache_read_end(&reader);
    qsort(c.keys, (size_t)c.count, sizeof(c.keys[0]), compare_keys);
    out[0] = '\0';
    for (int i = 0; i < c.count; i++) {
        if (i > 0)
            strcat(out, ",");
        strcat(out, c.keys[i]);
    }
    return out;
}

static enum cache_status put_child(struct cache *cache, const char *tenant, unsigned kind,
                                   const char *key, const char *parent, uint64_t expires_ms)
{
    struct cache_key k = key_of(tenant, kind, key);
    struct cache_value v = value_of("{}");
    if (parent != NULL) {
        v.index_key = parent;
        v.index_key_len = strlen(parent);
    }
    struct cache_write w = reference_write();
    w.expires_ms = expires_ms;
    return cache_set(cache, &k, &v, &w, NOW);
}

START_TEST(test_index)
{
    struct cache *cache = cache_unlimited(4);
    struct cache_stats baseline = stats_of(cache);
    ck_assert_int_eq(put_child(cache, "acme", KIND_HIERARCHY, "c1", "p1", 0), CACHE_OK);
    ck_assert_int_eq(put_child(cache, "acme", KIND_HIERARCHY, "c2", "p1", 0), CACHE_OK);
    ck_assert_int_eq(put_child(cache, "acme", KIND_HIERARCHY, "c3", "p1", 0), CACHE_OK);
    ck_assert_int_eq(put_child(cache, "acme", KIND_HIERARCHY, "c4", "p2", 0), CACHE_OK);
    ck_assert_int_eq(put_child(cache, "acme", KIND_HIERARCHY, "root", NULL, 0), CACHE_OK);
    ck_assert_int_eq(put_child(cache, "acme", KIND_OPAQUE, "x1", "p1", 0), CACHE_OK);
    ck_assert_int_eq(put_child(cache, "other", KIND_HIERARCHY, "o1", "p1", 0), CACHE_OK);
    ck_assert_int_eq(put_child(cache, "acme", KIND_HIERARCHY, "t1", "p1", NOW + 10), CACHE_OK);

    ck_assert_str_eq(children_of(cache, "acme", KIND_HIERARCHY, "p1", NOW), "c1,c2,c3,t1");
    ck_assert_str_eq(children_of(cache, "acme", KIND_HIERARCHY, "p1", NOW + 10), "c1,c2,c3");
    ck_assert_str_eq(children_of(cache, "acme", KIND_HIERARCHY, "p2", NOW), "c4");
    ck_assert_str_eq(children_of(cache, "acme", KIND_HIERARCHY, "p3", NOW), "");
    ck_assert_str_eq(children_of(cache, "acme", KIND_HIERARCHY, "p", NOW), "");
    ck_assert_str_eq(children_of(cache, "acme", KIND_OPAQUE, "p1", NOW), "x1");
    ck_assert_str_eq(children_of(cache, "other", KIND_HIERARCHY, "p1", NOW), "o1");
    ck_assert_str_eq(children_of(cache, "nobody", KIND_HIERARCHY, "p1", NOW), "");

    /* Moving to another parent moves it in the index. */
    ck_assert_int_eq(put_child(cache, "acme", KIND_HIERARCHY, "c2", "p2", 0), CACHE_OK);
    ck_assert_str_eq(children_of(cache, "acme", KIND_HIERARCHY, "p1", NOW + 10), "c1,c3");
    ck_assert_str_eq(children_of(cache, "acme", KIND_HIERARCHY, "p2", NOW), "c2,c4");
    /* Becoming a root removes it. */
    ck_assert_int_eq(put_child(cache, "acme", KIND_HIERARCHY, "c4", NULL, 0), CACHE_OK);
    ck_assert_str_eq(children_of(cache, "acme", KIND_HIERARCHY, "p2", NOW), "c2");
    /* Delete (tombstone), invalidate and flush remove it. */
    ck_assert_int_eq(del(cache, "acme", KIND_HIERARCHY, "c1", false, 0, NOW + 100, NOW), CACHE_OK);
    ck_assert_str_eq(children_of(cache, "acme", KIND_HIERARCHY, "p1", NOW + 10), "c3");
    struct cache_key k3 = key_of("acme", KIND_HIERARCHY, "c3");
    ck_assert_int_eq(cache_invalidate(cache, &k3, false, 0, NOW, NULL), CACHE_OK);
    ck_assert_str_eq(children_of(cache, "acme", KIND_HIERARCHY, "p1", NOW + 10), "");
    ck_assert_str_eq(children_of(cache, "acme", KIND_HIERARCHY, "p1", NOW), "t1");
    /* The expired one is swept and leaves the index. */
    ck_assert_uint_eq(cache_sweep(cache, NOW + 10, 1000), 1);
    ck_assert_str_eq(children_of(cache, "acme", KIND_HIERARCHY, "p1", NOW), "");
    /* The same parent comes back. */
    ck_assert_int_eq(put_child(cache, "acme", KIND_HIERARCHY, "c9", "p1", 0), CACHE_OK);
    ck_assert_str_eq(children_of(cache, "acme", KIND_HIERARCHY, "p1", NOW), "c9");

    /* Many parents and children: the index tables grow. */
    char key[16], parent[16];
    for (int i = 0; i < 2000; i++) {
        snprintf(key, sizeof(key), "n%d", i);
        snprintf(parent, sizeof(parent), "P%d", i % 300);
        ck_assert_int_eq(put_child(cache, "big", KIND_HIERARCHY, key, parent, 0), CACHE_OK);
    }
    struct children c = {0};
    struct cache_reader reader;
    cache_read_begin(cache, "big", 3, NOW, &reader);
    cache_read_index(&reader, KIND_HIERARCHY, "P7", 2, collect_child, &c);
    cache_read_end(&reader);
    ck_assert_int_eq(c.count, 7); /* 7, 307, ..., 1807 */
    walk_tenants(cache);

    ck_assert_uint_eq(cache_flush(cache, "acme", 4, KIND_HIERARCHY), 5);
    ck_assert_str_eq(children_of(cache, "acme", KIND_HIERARCHY, "p2", NOW), "");
    ck_assert_str_eq(children_of(cache, "acme", KIND_OPAQUE, "p1", NOW), "x1");
    ck_assert_uint_eq(cache_flush(cache, NULL, 0, -1), 2000 + 1 + 1);
    assert_empty(cache, &baseline);
    cache_destroy(cache);
}
END_TEST

/* ---- accounting ---- */

/* Loads a mix of everything; returns the number of entries. */
static uint64_t load_mix(struct cache *cache, int tenants, int per_tenant, uint64_t expires_ms)
{
    char tenant[32], key[32], json[600], parent[16];
    unsigned char blob[40];
    memset(blob, 0xab, sizeof(blob));
    uint64_t n = 0;
    for (int t = 0; t < tenants; t++) {
        snprintf(tenant, sizeof(tenant), "tenant-%d", t);
        for (int i = 0; i < per_tenant; i++) {
            snprintf(key, sizeof(key), "key-%d", i);
            unsigned kind = (unsigned)(i % 14);
            bool critical = kind < 4;
            size_t len = 2 + (size_t)((i * 37 + t * 11) % 500);
            json_of_len(json, len, (char)('a' + i % 26));
            snprintf(parent, sizeof(parent), "p%d", i % 17);
            struct cache_key k = key_of(tenant, kind, key);
            struct cache_value v = {.json = json, .json_len = len, .derived = blob,
                                    .derived_len = (size_t)(i % 41)};
            if (kind == KIND_HIERARCHY || kind == KIND_OPAQUE) {
                v.index_key = parent;
                v.index_key_len = strlen(parent);
            }
            struct cache_write w = critical ? versioned(true, (uint64_t)i + 1)
                                            : versioned(false, (uint64_t)i + 1);
            w.expires_ms = expires_ms;
            ck_assert_int_eq(cache_set(cache, &k, &v, &w, NOW), CACHE_OK);
            n++;
            if (i % 5 == 0) {
                /* overwrite with another size, and keep the index churning */
                v.json_len = 2 + (size_t)((i * 13) % 300);
                json_of_len(json, v.json_len, 'z');
                snprintf(parent, sizeof(parent), "q%d", i % 7);
                w.version++;
                ck_assert_int_eq(cache_set(cache, &k, &v, &w, NOW), CACHE_OK);
            }
            if (i % 9 == 0) {
                char negative[32];
                snprintf(negative, sizeof(negative), "neg-%d", i);
                struct cache_key nk = key_of(tenant, KIND_USER, negative);
                ck_assert_int_eq(
                    cache_set_negative(cache, &nk, expires_ms ? expires_ms : NOW + 1, NULL, 0, NOW),
                    CACHE_OK);
                n++;
            }
        }
    }
    return n;
}

START_TEST(test_accounting_delete_and_sweep)
{
    struct cache *cache = cache_unlimited(8);
    struct cache_stats baseline = stats_of(cache);
    uint64_t n = load_mix(cache, 30, 120, 0);
    ck_assert_uint_eq(stats_of(cache).entries, n);
    ck_assert_uint_eq(stats_of(cache).tenants, 30);
    walk_tenants(cache);
    /* the negatives expire at NOW + 1 */
    cache_sweep(cache, NOW + 1, 1u << 30);
    char tenant[32], key[32];
    for (int t = 0; t < 30; t++) {
        snprintf(tenant, sizeof(tenant), "tenant-%d", t);
        for (int i = 0; i < 120; i++) {
            snprintf(key, sizeof(key), "key-%d", i);
            ck_assert_int_eq(del(cache, tenant, (unsigned)(i % 14), key, true, 100000,
                                 NOW + 60000, NOW + 1),
                             CACHE_OK);
        }
    }
    ck_assert_uint_eq(stats_of(cache).entries, 30 * 120);
    ck_assert_uint_eq(stats_of(cache).critical_bytes, 0);
    walk_tenants(cache);
    ck_assert_uint_eq(cache_sweep(cache, NOW + 59999, 1u << 30), 0);
    ck_assert_uint_eq(cache_sweep(cache, NOW + 60000, 1u << 30), 30 * 120);
    assert_empty(cache, &baseline);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_accounting_flush_expire_invalidate)
{
    struct cache *cache = cache_unlimited(8);
    struct cache_stats baseline = stats_of(cache);

    uint64_t n = load_mix(cache, 20, 150, 0);
    ck_assert_uint_eq(cache_flush(cache, NULL, 0, -1), n);
    assert_empty(cache, &baseline);

    n = load_mix(cache, 20, 150, 0);
    uint64_t dropped = 0;
    for (int kind = 0; kind < 14; kind++)
        dropped += cache_flush(cache, NULL, 0, kind);
    ck_assert_uint_eq(dropped, n);
    assert_empty(cache, &baseline);

    n = load_mix(cache, 20, 150, NOW + 777);
    uint64_t expired = stats_of(cache).evictions_expired;
    ck_assert_uint_eq(cache_sweep(cache, NOW + 777, 1u << 30), n);
    ck_assert_uint_eq(stats_of(cache).evictions_expired - expired, n);
    assert_empty(cache, &baseline);

    load_mix(cache, 20, 150, 0);
    cache_sweep(cache, NOW + 1, 1u << 30); /* the negatives */
    char tenant[32], key[32];
    for (int t = 0; t < 20; t++) {
        snprintf(tenant, sizeof(tenant), "tenant-%d", t);
        for (int i = 0; i < 150; i++) {
            snprintf(key, sizeof(key), "key-%d", i);
            struct cache_key k = key_of(tenant, (unsigned)(i % 14), key);
            ck_assert_int_eq(cache_invalidate(cache, &k, i % 2 == 0, 1000000, NOW + 1, NULL), CACHE_OK);
        }
    }
    assert_empty(cache, &baseline);

    /* Eviction frees exactly too. */
    load_mix(cache, 20, 150, 0);
    struct cache_limits tiny = limits_of(baseline.bytes, UNLIMITED, 1000);
    cache_set_limits(cache, &tiny);
    cache_enforce(cache, NOW);
    assert_empty(cache, &baseline);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_tenant_stats)
{
    struct cache *cache = cache_unlimited(4);
    cache_set_wall_clock(cache, 1722222222222ull);
    struct cache_tenant_stats ts;
    ck_assert(!cache_tenant_get_stats(cache, "acme", 4, &ts));
    ck_assert_int_eq(put_crit(cache, "acme", KIND_CREDIT, "a", "1"), CACHE_OK);
    ck_assert_int_eq(put_crit(cache, "acme", KIND_CREDIT, "b", "2"), CACHE_OK);
    ck_assert_int_eq(put_ref(cache, "acme", KIND_PROFILE, "p", "{\"name\":\"x\"}"), CACHE_OK);
    ck_assert_int_eq(put_ref(cache, "acme", KIND_OPAQUE, "o", "[]"), CACHE_OK);
    ck_assert_int_eq(put_ref(cache, "globex", KIND_PROFILE, "p", "{}"), CACHE_OK);

    ck_assert(cache_tenant_get_stats(cache, "acme", 4, &ts));
    ck_assert_str_eq(ts.name, "acme");
    ck_assert_uint_eq(ts.entries, 4);
    ck_assert_uint_eq(ts.hits, 0);
    ck_assert_uint_eq(ts.misses, 0);
    ck_assert_uint_eq(ts.last_access_ms, 0);
    ck_assert_uint_gt(ts.kind_count, KIND_OPAQUE);
    ck_assert_uint_eq(ts.kind_entries[KIND_CREDIT], 2);
    ck_assert_uint_eq(ts.kind_entries[KIND_PROFILE], 1);
    ck_assert_uint_eq(ts.kind_entries[KIND_OPAQUE], 1);
    ck_assert_uint_eq(ts.kind_entries[KIND_ROLE], 0);
    ck_assert_uint_eq(ts.kind_bytes[KIND_ROLE], 0);
    ck_assert_uint_gt(ts.kind_bytes[KIND_CREDIT], 0);
    ck_assert_uint_eq(ts.critical_bytes, ts.kind_bytes[KIND_CREDIT]);
    ck_assert_uint_ge(ts.bytes, ts.kind_bytes[KIND_CREDIT] + ts.kind_bytes[KIND_PROFILE] +
                                    ts.kind_bytes[KIND_OPAQUE]);
    uint64_t credit_bytes = ts.kind_bytes[KIND_CREDIT];
    uint64_t profile_bytes = ts.kind_bytes[KIND_PROFILE];
    uint64_t bytes = ts.bytes;

    /* Exact per-kind deltas: a same-size overwrite changes nothing, deleting
     * one of two equal credits halves the kind's bytes. */
    ck_assert_int_eq(put_crit(cache, "acme", KIND_CREDIT, "a", "3"), CACHE_OK);
    ck_assert(cache_tenant_get_stats(cache, "acme", 4, &ts));
    ck_assert_uint_eq(ts.kind_bytes[KIND_CREDIT], credit_bytes);
    ck_assert_uint_eq(ts.bytes, bytes);
    struct cache_key kb = key_of("acme", KIND_CREDIT, "b");
    ck_assert_int_eq(cache_invalidate(cache, &kb, false, 0, NOW, NULL), CACHE_OK);
    ck_assert(cache_tenant_get_stats(cache, "acme", 4, &ts));
    ck_assert_uint_eq(ts.kind_bytes[KIND_CREDIT], credit_bytes / 2);
    ck_assert_uint_eq(ts.bytes, bytes - credit_bytes / 2);
    ck_assert_uint_eq(ts.critical_bytes, credit_bytes / 2);
    ck_assert_uint_eq(stats_of(cache).critical_bytes, credit_bytes / 2);
    ck_assert_uint_eq(ts.kind_bytes[KIND_PROFILE], profile_bytes);

    /* Hits and misses, per tenant and in all. */
    uint64_t hits = stats_get(&stats.hits), misses = stats_get(&stats.misses);
    struct cache_reader reader;
    cache_read_begin(cache, "acme", 4, NOW, &reader);
    for (int i = 0; i < 5; i++)
        ck_assert_ptr_nonnull(cache_read_find(&reader, KIND_CREDIT, "a", 1));
    for (int i = 0; i < 3; i++)
        ck_assert_ptr_null(cache_read_find(&reader, KIND_CREDIT, "zz", 2));
    cache_read_end(&reader);
    ck_assert(!present(cache, "nobody", KIND_CREDIT, "a", NOW));
    ck_assert(present(cache, "globex", KIND_PROFILE, "p", NOW));
    ck_assert_uint_eq(stats_get(&stats.hits) - hits, 6);
    ck_assert_uint_eq(stats_get(&stats.misses) - misses, 4);
    ck_assert(cache_tenant_get_stats(cache, "acme", 4, &ts));
    ck_assert_uint_eq(ts.hits, 5);
    ck_assert_uint_eq(ts.misses, 3);
    ck_assert_uint_eq(ts.last_access_ms, 1722222222222ull);
    ck_assert(cache_tenant_get_stats(cache, "globex", 6, &ts));
    ck_assert_uint_eq(ts.hits, 1);
    ck_assert_uint_eq(ts.misses, 0);

    /* Names: not a prefix match, and too long is simply absent. */
    ck_assert(!cache_tenant_get_stats(cache, "acm", 3, &ts));
    char longname[100];
    memset(longname, 'a', sizeof(longname));
    ck_assert(!cache_tenant_get_stats(cache, longname, sizeof(longname), &ts));
    /* A 64-byte tenant name works end to end. */
    char name64[65];
    memset(name64, 'n', 64);
    name64[64] = '\0';
    ck_assert_int_eq(put_ref(cache, name64, KIND_PROFILE, "k", "1"), CACHE_OK);
    ck_assert(cache_tenant_get_stats(cache, name64, 64, &ts));
    ck_assert_str_eq(ts.name, name64);
    ck_assert(has_value(cache, name64, KIND_PROFILE, "k", "1", NOW));
    walk_tenants(cache);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_foreach_tenant)
{
    struct cache *cache = cache_unlimited(2);
    char tenant[32];
    for (int t = 0; t < 700; t++) {
        snprintf(tenant, sizeof(tenant), "t%d", t);
        ck_assert_int_eq(put_ref(cache, tenant, KIND_PROFILE, "k", "1"), CACHE_OK);
        if (t % 2)
            ck_assert_int_eq(put_crit(cache, tenant, KIND_CREDIT, "k", "1"), CACHE_OK);
    }
    struct tenant_walk walk = {0};
    walk.names = calloc(1000, sizeof(*walk.names));
    walk.names_capacity = 1000;
    cache_foreach_tenant(cache, walk_fn, &walk);
    ck_assert_uint_eq(walk.tenants, 700);
    ck_assert_uint_eq(walk.entries, 700 + 350);
    qsort(walk.names, 700, sizeof(walk.names[0]), compare_keys);
    for (int i = 1; i < 700; i++)
        ck_assert_str_ne(walk.names[i - 1], walk.names[i]);
    for (int t = 0; t < 700; t++) {
        snprintf(tenant, sizeof(tenant), "t%d", t);
        ck_assert_ptr_nonnull(bsearch(tenant, walk.names, 700, sizeof(walk.names[0]),
                                      compare_keys));
    }
    free(walk.names);
    walk_tenants(cache);
    cache_destroy(cache);
}
END_TEST

/* ---- limits and eviction ---- */

/* Checks every limit after a write. */
static void assert_within_limits(struct cache *cache, const struct cache_limits *limits)
{
    struct cache_stats s = stats_of(cache);
    ck_assert_uint_le(s.bytes, limits->max_bytes);
    ck_assert_uint_le(s.tenants, limits->max_tenants);
    struct tenant_walk walk = walk_tenants(cache);
    ck_assert_uint_le(walk.max_tenant_bytes, limits->tenant_max_bytes);
}

START_TEST(test_limits_never_exceeded)
{
    struct cache *cache = cache_unlimited(4);
    struct cache_stats baseline = stats_of(cache);
    struct cache_limits limits = limits_of(baseline.bytes + 48 * 1024, 12 * 1024, 9);
    cache_set_limits(cache, &limits);
    char tenant[32], key[32], json[2100];
    uint64_t seed = 12345, now = NOW;
    uint64_t ok = 0, not_cached = 0;
    for (int op = 0; op < 6000; op++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t r = seed >> 20;
        /* eight regular tenants, and now and then one of three more */
        snprintf(tenant, sizeof(tenant), "t%" PRIu64, r % 50 == 0 ? 8 + (r >> 8) % 3 : r % 8);
        snprintf(key, sizeof(key), "k%" PRIu64, (r >> 5) % 64);
        unsigned kind = (unsigned)((r >> 12) % 6);
        size_t len = 2 + (size_t)((r >> 16) % (r % 7 == 0 ? 2000 : 200));
        json_of_len(json, len, 'v');
        struct cache_write w = kind < 2 ? critical_write() : reference_write();
        now++;
        if ((r >> 30) % 4 == 0)
            w.expires_ms = now + 1 + (r >> 33) % 50;
        enum cache_status status;
        struct cache_key k = key_of(tenant, kind, key);
        switch ((r >> 36) % 10) {
        case 0:
            status = cache_delete(cache, &k, &w, now);
            break;
        case 1:
            status = cache_set_negative(cache, &k, now + 20, NULL, 0, now);
            break;
        case 2:
            status = cache_invalidate(cache, &k, false, 0, now, NULL);
            break;
        default: {
            struct cache_value v = value_of(json);
            status = cache_set(cache, &k, &v, &w, now);
            if (status == CACHE_OK) {
                ok++;
                ck_assert(has_value(cache, tenant, kind, key, json, now));
            } else {
                ck_assert_int_eq(status, CACHE_NOT_CACHED);
                not_cached++;
                ck_assert(!present(cache, tenant, kind, key, now));
            }
            break;
        }
        }
        ck_assert_int_ne(status, CACHE_STALE);
        if ((r >> 40) % 8 == 0)
            touch_tenant(cache, tenant, now);
        assert_within_limits(cache, &limits);
    }
    struct cache_stats s = stats_of(cache);
    ck_assert_uint_gt(ok, 1000);
    ck_assert_uint_ge(s.not_cached, not_cached);
    ck_assert_uint_gt(s.evictions_reference, 0);
    ck_assert_uint_gt(s.evictions_tenant, 0);
    ck_assert_uint_gt(s.evictions_expired, 0);

    /* Lowered limits apply on enforce. */
    limits = limits_of(baseline.bytes + 30 * 1024, 8 * 1024, 5);
    cache_set_limits(cache, &limits);
    cache_enforce(cache, now);
    s = stats_of(cache);
    ck_assert_uint_le(s.bytes, limits.max_bytes);
    ck_assert_uint_le(s.tenants, 5);
    struct tenant_walk walk = walk_tenants(cache);
    (void)walk;
    cache_flush(cache, NULL, 0, -1);
    assert_empty(cache, &baseline);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_global_limit_critical_only)
{
    /* One tenant of critical data only: no victim exists, so writes that do
     * not fit are answered but not cached, and max_bytes still holds. */
    struct cache *cache = cache_unlimited(4);
    struct cache_stats baseline = stats_of(cache);
    struct cache_limits limits = limits_of(baseline.bytes + 20000, UNLIMITED, 100);
    cache_set_limits(cache, &limits);
    char key[32], json[300];
    int cached = 0, refused = 0;
    for (int i = 0; i < 400; i++) {
        snprintf(key, sizeof(key), "c%d", i);
        size_t len = 2 + (size_t)(i * 7 % 250);
        json_of_len(json, len, 'c');
        enum cache_status status = put_crit(cache, "solo", (unsigned)(i % 10), key, json);
        if (status == CACHE_OK) {
            cached++;
            ck_assert(has_value(cache, "solo", (unsigned)(i % 10), key, json, NOW));
        } else {
            ck_assert_int_eq(status, CACHE_NOT_CACHED);
            refused++;
        }
        ck_assert_uint_le(stats_of(cache).bytes, limits.max_bytes);
    }
    ck_assert_int_gt(cached, 20);
    ck_assert_int_gt(refused, 0);
    ck_assert_uint_eq(stats_of(cache).not_cached, (uint64_t)refused);
    walk_tenants(cache);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_not_cached_tenant_vanishes)
{
    /* The writing tenant loses its last entries while room is made, and the
     * write still does not fit. */
    struct cache *cache = cache_unlimited(4);
    struct cache_stats baseline = stats_of(cache);
    ck_assert_int_eq(put_ref(cache, "acme", KIND_PROFILE, "a", "1"), CACHE_OK);
    ck_assert_int_eq(put_ref(cache, "acme", KIND_PROFILE, "b", "2"), CACHE_OK);
    struct cache_limits limits = limits_of(stats_of(cache).bytes + 1000, UNLIMITED, 100);
    cache_set_limits(cache, &limits);
    char big[5000];
    ck_assert_int_eq(put_ref(cache, "acme", KIND_PROFILE, "c", json_of_len(big, 4000, 'x')),
                     CACHE_NOT_CACHED);
    ck_assert_int_eq(put_crit(cache, "acme", KIND_CREDIT, "c", big), CACHE_NOT_CACHED);
    ck_assert(!present(cache, "acme", KIND_PROFILE, "c", NOW));
    ck_assert_uint_le(stats_of(cache).bytes, limits.max_bytes);
    ck_assert_uint_eq(stats_of(cache).not_cached, 2);
    walk_tenants(cache);
    /* Overwriting a key with a value too big: the old value is gone. */
    ck_assert_int_eq(put_ref(cache, "acme", KIND_PROFILE, "a", "1"), CACHE_OK);
    ck_assert_int_eq(put_ref(cache, "acme", KIND_PROFILE, "a", big), CACHE_NOT_CACHED);
    ck_assert(!present(cache, "acme", KIND_PROFILE, "a", NOW));
    walk_tenants(cache);
    cache_flush(cache, NULL, 0, -1);
    assert_empty(cache, &baseline);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_evict_expired_first)
{
    struct cache *cache = cache_unlimited(4);
    struct cache_stats baseline = stats_of(cache);
    char key[32], json[200];
    struct cache_write ttl = reference_write();
    ttl.expires_ms = NOW + 100;
    for (int i = 0; i < 60; i++) {
        snprintf(key, sizeof(key), "e%d", i);
        ck_assert_int_eq(put(cache, "exp", KIND_AUDIT, key, json_of_len(json, 100, 'e'), &ttl, NOW),
                         CACHE_OK);
    }
    for (int i = 0; i < 60; i++) {
        snprintf(key, sizeof(key), "r%d", i);
        ck_assert_int_eq(put_ref(cache, "ref", KIND_PROFILE, key, json_of_len(json, 100, 'r')),
                         CACHE_OK);
    }
    uint64_t full = stats_of(cache).bytes;
    struct cache_limits limits = limits_of(full, UNLIMITED, 100);
    cache_set_limits(cache, &limits);
    /* At NOW + 100 the "exp" entries have expired: new writes take their room. */
    struct cache_write w = reference_write();
    for (int i = 0; i < 30; i++) {
        snprintf(key, sizeof(key), "n%d", i);
        ck_assert_int_eq(put(cache, "new", KIND_PROFILE, key, json_of_len(json, 100, 'n'), &w,
                             NOW + 100),
                         CACHE_OK);
        ck_assert_uint_le(stats_of(cache).bytes, limits.max_bytes);
    }
    struct cache_stats s = stats_of(cache);
    ck_assert_uint_eq(s.evictions_reference, 0);
    ck_assert_uint_eq(s.evictions_tenant, 0);
    ck_assert_uint_eq(s.evictions_expired, 60);
    for (int i = 0; i < 60; i++) {
        snprintf(key, sizeof(key), "r%d", i);
        ck_assert(present(cache, "ref", KIND_PROFILE, key, NOW + 100));
    }
    walk_tenants(cache);
    cache_flush(cache, NULL, 0, -1);
    assert_empty(cache, &baseline);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_evict_lru_reference)
{
    struct cache *cache = cache_unlimited(8);
    char tenant[16], key[32], json[200];
    for (int i = 0; i < 1000; i++) {
        snprintf(tenant, sizeof(tenant), "t%d", i % 10);
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_int_eq(put_ref(cache, tenant, KIND_PROFILE, key, json_of_len(json, 150, 'x')),
                         CACHE_OK);
    }
    /* Critical entries of the same tenants must all survive. */
    for (int t = 0; t < 10; t++) {
        snprintf(tenant, sizeof(tenant), "t%d", t);
        ck_assert_int_eq(put_crit(cache, tenant, KIND_ROLE, "admin", "[\"*\"]"), CACHE_OK);
    }
    for (int i = 0; i < 1000; i += 10) {
        snprintf(tenant, sizeof(tenant), "t%d", i % 10);
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert(present(cache, tenant, KIND_PROFILE, key, NOW));
    }
    struct cache_stats s = stats_of(cache);
    uint64_t per_entry = s.reference_bytes / 1000;
    struct cache_limits limits = limits_of(s.bytes - 500 * per_entry, UNLIMITED, 100);
    cache_set_limits(cache, &limits);
    cache_enforce(cache, NOW);
    s = stats_of(cache);
    ck_assert_uint_le(s.bytes, limits.max_bytes);
    ck_assert_uint_ge(s.evictions_reference, 450);
    ck_assert_uint_eq(s.evictions_tenant, 0);
    int read_survivors = 0, unread_survivors = 0;
    for (int i = 0; i < 1000; i++) {
        snprintf(tenant, sizeof(tenant), "t%d", i % 10);
        snprintf(key, sizeof(key), "k%d", i);
        if (present(cache, tenant, KIND_PROFILE, key, NOW))
            (*(i % 10 == 0 ? &read_survivors : &unread_survivors))++;
    }
    ck_assert_int_ge(read_survivors, 90);
    ck_assert_int_le(unread_survivors, 450);
    for (int t = 0; t < 10; t++) {
        snprintf(tenant, sizeof(tenant), "t%d", t);
        ck_assert(present(cache, tenant, KIND_ROLE, "admin", NOW));
    }
    walk_tenants(cache);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_critical_only_whole_tenants)
{
    struct cache *cache = cache_unlimited(8);
    struct cache_stats baseline = stats_of(cache);
    char tenant[16], key[32], json[200];
    for (int t = 0; t < 8; t++) {
        snprintf(tenant, sizeof(tenant), "t%d", t);
        for (int i = 0; i < 20; i++) {
            snprintf(key, sizeof(key), "c%d", i);
            ck_assert_int_eq(put_crit(cache, tenant, KIND_CONFIG, key, json_of_len(json, 100, 'c')),
                             CACHE_OK);
        }
        for (int i = 0; i < 40; i++) {
            snprintf(key, sizeof(key), "r%d", i);
            ck_assert_int_eq(put_ref(cache, tenant, KIND_PROFILE, key, json_of_len(json, 100, 'r')),
                             CACHE_OK);
        }
    }
    /* Shrink step by step; after every step each tenant is either wholly
     * gone or has every critical entry. */
    uint64_t top = stats_of(cache).bytes;
    for (uint64_t max = top; max > baseline.bytes; max -= (top - baseline.bytes) / 40 + 1) {
        struct cache_limits limits = limits_of(max, UNLIMITED, 100);
        cache_set_limits(cache, &limits);
        cache_enforce(cache, NOW);
        struct cache_stats s = stats_of(cache);
        ck_assert_uint_le(s.bytes, max);
        for (int t = 0; t < 8; t++) {
            snprintf(tenant, sizeof(tenant), "t%d", t);
            bool resident = tenant_resident(cache, tenant);
            for (int i = 0; i < 20; i++) {
                snprintf(key, sizeof(key), "c%d", i);
                ck_assert(present(cache, tenant, KIND_CONFIG, key, NOW) == resident);
            }
        }
        /* Tenants are evicted only once no reference entry is left. */
        if (s.evictions_tenant > 0)
            ck_assert_uint_eq(s.evictions_reference, 8 * 40);
    }
    ck_assert_uint_eq(stats_of(cache).evictions_tenant, 8);
    assert_empty(cache, &baseline);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_evict_lru_tenant)
{
    /* Repeated trials: with few tenants the choice must be exact. */
    for (int trial = 0; trial < 200; trial++) {
        struct cache *cache = cache_unlimited(4);
        char json[300];
        static const char *names[] = {"alpha", "beta", "gamma"};
        for (int t = 0; t < 3; t++)
            ck_assert_int_eq(put_crit(cache, names[t], KIND_CONFIG, "c", json_of_len(json, 200, 'c')),
                             CACHE_OK);
        int untouched = trial % 3;
        for (int t = 0; t < 3; t++) {
            if (t != untouched)
                touch_tenant(cache, names[t], NOW);
        }
        /* Room for three tenants only: a fourth evicts the untouched one. */
        struct cache_limits limits = limits_of(stats_of(cache).bytes + 100, UNLIMITED, 100);
        cache_set_limits(cache, &limits);
        ck_assert_int_eq(put_crit(cache, "delta", KIND_CONFIG, "c", json), CACHE_OK);
        ck_assert_uint_le(stats_of(cache).bytes, limits.max_bytes);
        ck_assert_uint_eq(stats_of(cache).evictions_tenant, 1);
        for (int t = 0; t < 3; t++)
            ck_assert(tenant_resident(cache, names[t]) == (t != untouched));
        ck_assert(has_value(cache, "delta", KIND_CONFIG, "c", json, NOW));
        cache_destroy(cache);
    }
}
END_TEST

START_TEST(test_tenant_max_bytes)
{
    struct cache *cache = cache_unlimited(4);
    struct cache_limits limits = limits_of(UNLIMITED, 16 * 1024, 100);
    cache_set_limits(cache, &limits);
    char key[32], json[600];
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "r%d", i);
        ck_assert_int_eq(put_ref(cache, "other", KIND_PROFILE, key, json_of_len(json, 500, 'o')),
                         CACHE_OK);
        ck_assert_int_eq(put_ref(cache, "acme", KIND_PROFILE, key, json_of_len(json, 500, 'r')),
                         CACHE_OK);
    }
    uint64_t other_bytes;
    struct cache_tenant_stats ts;
    ck_assert(cache_tenant_get_stats(cache, "other", 5, &ts));
    other_bytes = ts.bytes;
    /* Critical writes push the tenant's reference entries out first. */
    int i = 0, refs_seen_evicted_before_refusal = -1;
    enum cache_status status = CACHE_OK;
    for (; i < 200; i++) {
        snprintf(key, sizeof(key), "c%d", i);
        status = put_crit(cache, "acme", KIND_CONFIG, key, json_of_len(json, 500, 'c'));
        ck_assert(cache_tenant_get_stats(cache, "acme", 4, &ts));
        ck_assert_uint_le(ts.bytes, limits.tenant_max_bytes);
        if (status != CACHE_OK)
            break;
        ck_assert(has_value(cache, "acme", KIND_CONFIG, key, json, NOW));
    }
    ck_assert_int_eq(status, CACHE_NOT_CACHED);
    refs_seen_evicted_before_refusal = (int)ts.kind_entries[KIND_PROFILE];
    ck_assert_int_eq(refs_seen_evicted_before_refusal, 0);
    ck_assert_uint_eq(stats_of(cache).evictions_reference, 10);
    ck_assert_uint_eq(stats_of(cache).not_cached, 1);
    ck_assert(!present(cache, "acme", KIND_CONFIG, key, NOW));
    /* Earlier critical entries were kept. */
    ck_assert(present(cache, "acme", KIND_CONFIG, "c0", NOW));
    /* The other tenant was untouched. */
    ck_assert(cache_tenant_get_stats(cache, "other", 5, &ts));
    ck_assert_uint_eq(ts.bytes, other_bytes);
    ck_assert_uint_eq(ts.entries, 10);

    /* A newer critical value that does not fit: the older one is not served. */
    char big[2000];
    ck_assert_int_eq(put_crit(cache, "acme", KIND_CONFIG, "c0", json_of_len(big, 1900, 'B')),
                     CACHE_NOT_CACHED);
    ck_assert(!present(cache, "acme", KIND_CONFIG, "c0", NOW));
    ck_assert_uint_eq(stats_of(cache).not_cached, 2);
    /* Nor is a reference write kept; a delete too big for the tenant clears the value. */
    ck_assert_int_eq(put_ref(cache, "acme", KIND_PROFILE, "late", big), CACHE_NOT_CACHED);
    ck_assert(!present(cache, "acme", KIND_PROFILE, "late", NOW));
    /* Same-size overwrite still fits. */
    ck_assert_int_eq(put_crit(cache, "acme", KIND_CONFIG, "c1", json_of_len(json, 500, 'd')),
                     CACHE_OK);
    ck_assert(has_value(cache, "acme", KIND_CONFIG, "c1", json, NOW));
    /* A single value bigger than the limit, for a new tenant. */
    char huge[20000];
    ck_assert_int_eq(put_crit(cache, "newbie", KIND_CONFIG, "x", json_of_len(huge, 17000, 'h')),
                     CACHE_NOT_CACHED);
    ck_assert(!tenant_resident(cache, "newbie"));
    walk_tenants(cache);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_enforce_tenant_limit)
{
    /* "small" sets the limit: room for acme's critical entries and tables
     * and a few of its reference entries. */
    struct cache *cache = cache_unlimited(4);
    char key[32], json[300], small[32];
    json_of_len(small, 24, 's');
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "r%d", i);
        ck_assert_int_eq(put_ref(cache, "acme", KIND_PROFILE, key, json_of_len(json, 200, 'r')),
                         CACHE_OK);
        ck_assert_int_eq(put_ref(cache, "small", KIND_PROFILE, key, small), CACHE_OK);
    }
    for (int i = 0; i < 10; i++) {
        snprintf(key, sizeof(key), "c%d", i);
        ck_assert_int_eq(put_crit(cache, "acme", KIND_CONFIG, key, json_of_len(json, 200, 'c')),
                         CACHE_OK);
    }
    struct cache_tenant_stats small_before;
    ck_assert(cache_tenant_get_stats(cache, "small", 5, &small_before));
    struct cache_limits limits = limits_of(UNLIMITED, small_before.bytes, 100);
    cache_set_limits(cache, &limits);
    cache_enforce(cache, NOW);
    struct cache_tenant_stats ts;
    ck_assert(cache_tenant_get_stats(cache, "acme", 4, &ts));
    ck_assert_uint_le(ts.bytes, limits.tenant_max_bytes);
    ck_assert_uint_eq(ts.kind_entries[KIND_CONFIG], 10);
    ck_assert_uint_gt(ts.kind_entries[KIND_PROFILE], 0);
    ck_assert(cache_tenant_get_stats(cache, "small", 5, &ts));
    ck_assert_uint_eq(ts.entries, 100);
    ck_assert_uint_eq(stats_of(cache).evictions_tenant, 0);
    walk_tenants(cache);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_tenant_max_bytes_tables)
{
    /* Table growth (entries, kinds, index) counts against the tenant's limit. */
    struct cache *cache = cache_unlimited(4);
    struct cache_limits limits = limits_of(UNLIMITED, 12 * 1024, 100);
    cache_set_limits(cache, &limits);
    char key[32], parent[64];
    for (int i = 0; i < 3000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(parent, sizeof(parent), "parent-with-a-long-name-%d", i);
        struct cache_key k = key_of("acme", (unsigned)(i % 40), key);
        struct cache_value v = value_of("1");
        v.index_key = parent;
        v.index_key_len = strlen(parent);
        struct cache_write w = (i % 3) ? critical_write() : reference_write();
        enum cache_status status = cache_set(cache, &k, &v, &w, NOW);
        ck_assert(status == CACHE_OK || status == CACHE_NOT_CACHED);
        struct cache_tenant_stats ts;
        if (cache_tenant_get_stats(cache, "acme", 4, &ts))
            ck_assert_uint_le(ts.bytes, limits.tenant_max_bytes);
    }
    ck_assert_uint_gt(stats_of(cache).not_cached, 0);
    walk_tenants(cache);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_max_tenants)
{
    for (int trial = 0; trial < 100; trial++) {
        struct cache *cache = cache_unlimited(4);
        struct cache_limits limits = limits_of(UNLIMITED, UNLIMITED, 4);
        cache_set_limits(cache, &limits);
        char tenant[16];
        for (int t = 0; t < 4; t++) {
            snprintf(tenant, sizeof(tenant), "t%d", t);
            ck_assert_int_eq(put_crit(cache, tenant, KIND_CREDIT, "op", "1"), CACHE_OK);
        }
        int lru = trial % 4;
        for (int t = 0; t < 4; t++) {
            snprintf(tenant, sizeof(tenant), "t%d", t);
            if (t != lru)
                touch_tenant(cache, tenant, NOW);
        }
        ck_assert_int_eq(put_crit(cache, "t4", KIND_CREDIT, "op", "1"), CACHE_OK);
        ck_assert_uint_eq(stats_of(cache).tenants, 4);
        ck_assert_uint_eq(stats_of(cache).evictions_tenant, 1);
        for (int t = 0; t <= 4; t++) {
            snprintf(tenant, sizeof(tenant), "t%d", t);
            ck_assert(tenant_resident(cache, tenant) == (t != lru));
        }
        /* Writes to resident tenants evict nobody. */
        ck_assert_int_eq(put_crit(cache, "t4", KIND_CREDIT, "op2", "1"), CACHE_OK);
        ck_assert_uint_eq(stats_of(cache).evictions_tenant, 1);
        /* Lowering the limit and enforcing keeps the most recently read. */
        touch_tenant(cache, "t4", NOW);
        limits.max_tenants = 1;
        cache_set_limits(cache, &limits);
        cache_enforce(cache, NOW);
        ck_assert_uint_eq(stats_of(cache).tenants, 1);
        ck_assert(tenant_resident(cache, "t4"));
        walk_tenants(cache);
        cache_destroy(cache);
    }
}
END_TEST

static enum cache_status put_negative(struct cache *cache, const char *tenant, unsigned kind,
                                      const char *key)
{
    struct cache_key k = key_of(tenant, kind, key);
    return cache_set_negative(cache, &k, NOW + 60000, NULL, 0, NOW);
}

static enum cache_status put_fill(struct cache *cache, const char *tenant, unsigned kind,
                                  const char *key, const char *json)
{
    struct cache_write w = critical_write();
    w.if_absent = true;
    return put(cache, tenant, kind, key, json, &w, NOW);
}

START_TEST(test_fill_epoch_guard)
{
    /* A fill carries the flush epoch it started with: once the epoch moved
     * (a flush began), neither its value nor its negative entry is kept. */
    struct cache *cache = cache_unlimited(4);
    _Atomic uint64_t epoch = 7;
    struct cache_write w = critical_write();
    w.if_absent = true;
    w.epoch = &epoch;
    w.epoch_seen = 7;
    ck_assert_int_eq(put(cache, "acme", KIND_CONFIG, "a", "1", &w, NOW), CACHE_OK);
    atomic_store(&epoch, 8);
    ck_assert_int_eq(put(cache, "acme", KIND_CONFIG, "b", "1", &w, NOW), CACHE_STALE);
    struct cache_key k = key_of("acme", KIND_CONFIG, "c");
    ck_assert_int_eq(cache_set_negative(cache, &k, NOW + 5000, &epoch, 7, NOW), CACHE_STALE);
    ck_assert_int_eq(cache_set_negative(cache, &k, NOW + 5000, &epoch, 8, NOW), CACHE_OK);
    ck_assert(present(cache, "acme", KIND_CONFIG, "a", NOW));
    ck_assert(!present(cache, "acme", KIND_CONFIG, "b", NOW));
    ck_assert_uint_eq(stats_of(cache).entries, 2);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_remap_kinds)
{
    /* A reload swaps kinds 8 and 9, moves the hierarchy-like kind 5 to 10
     * and removes kind 12: every entry keeps its kind by name, the index
     * follows, the removed kind's entries (of every state) and the tenant
     * left empty are gone, and the accounting stays exact. */
    struct cache *cache = cache_unlimited(4);
    struct cache_stats empty = stats_of(cache);
    char key[16], json[16];
    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(json, sizeof(json), "\"a%d\"", i);
        ck_assert_int_eq(put_ref(cache, "acme", 8, key, json), CACHE_OK);
        snprintf(json, sizeof(json), "\"b%d\"", i);
        ck_assert_int_eq(put_crit(cache, "acme", 9, key, json), CACHE_OK);
        ck_assert_int_eq(put_ref(cache, "acme", KIND_OPAQUE, key, "1"), CACHE_OK);
    }
    ck_assert_int_eq(put_negative(cache, "acme", KIND_OPAQUE, "neg"), CACHE_OK);
    ck_assert_int_eq(put_ref(cache, "gone", KIND_OPAQUE, "only", "1"), CACHE_OK);
    ck_assert_int_eq(put_child(cache, "acme", KIND_HIERARCHY, "c1", "p1", 0), CACHE_OK);
    ck_assert_int_eq(put_child(cache, "acme", KIND_HIERARCHY, "c2", "p1", 0), CACHE_OK);
    uint64_t bytes_before = stats_of(cache).bytes;

    int map[13];
    for (int k = 0; k < 13; k++)
        map[k] = k;
    map[8] = 9;
    map[9] = 8;
    map[KIND_HIERARCHY] = 10;
    map[KIND_OPAQUE] = -1;
    ck_assert_uint_eq(cache_remap_kinds(cache, map, 13), 40 + 1 + 1);

    for (int i = 0; i < 40; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(json, sizeof(json), "\"a%d\"", i);
        ck_assert(has_value(cache, "acme", 9, key, json, NOW));
        snprintf(json, sizeof(json), "\"b%d\"", i);
        ck_assert(has_value(cache, "acme", 8, key, json, NOW));
        ck_assert(!present(cache, "acme", KIND_OPAQUE, key, NOW));
    }
    ck_assert(!present(cache, "acme", KIND_OPAQUE, "neg", NOW));
    ck_assert(!tenant_resident(cache, "gone"));
    ck_assert_str_eq(children_of(cache, "acme", 10, "p1", NOW), "c1,c2");
    ck_assert_str_eq(children_of(cache, "acme", KIND_HIERARCHY, "p1", NOW), "");
    struct cache_stats after = stats_of(cache);
    ck_assert_uint_eq(after.entries, 40 + 40 + 2);
    ck_assert_uint_eq(after.negative_entries, 0);
    ck_assert_uint_lt(after.bytes, bytes_before);
    walk_tenants(cache);
    /* Renumbered entries are still written and dropped as their new kind. */
    ck_assert_int_eq(put_ref(cache, "acme", 9, "k0", "\"new\""), CACHE_OK);
    ck_assert(has_value(cache, "acme", 9, "k0", "\"new\"", NOW));
    ck_assert_uint_eq(cache_flush(cache, "acme", 4, -1), 40 + 40 + 2);
    assert_empty(cache, &empty);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_query_never_evicts_a_tenant)
{
    /* max_tenants reached by real tenants: a fill or a negative entry for a
     * tenant with nothing cached is answered but not kept; nobody goes. */
    struct cache_limits limits = limits_of(UNLIMITED, UNLIMITED, 3);
    struct cache *cache = cache_create(4, &limits);
    ck_assert_int_eq(put_crit(cache, "real0", KIND_CREDIT, "op", "1"), CACHE_OK);
    ck_assert_int_eq(put_crit(cache, "real1", KIND_CREDIT, "op", "1"), CACHE_OK);
    ck_assert_int_eq(put_crit(cache, "real2", KIND_CREDIT, "op", "1"), CACHE_OK);
    char tenant[16];
    for (int i = 0; i < 50; i++) {
        snprintf(tenant, sizeof(tenant), "fake%d", i);
        ck_assert_int_eq(put_negative(cache, tenant, KIND_CONFIG, "k"), CACHE_NOT_CACHED);
        ck_assert_int_eq(put_fill(cache, tenant, KIND_CONFIG, "k", "1"), CACHE_NOT_CACHED);
    }
    for (int i = 0; i < 3; i++) {
        snprintf(tenant, sizeof(tenant), "real%d", i);
        ck_assert(tenant_resident(cache, tenant));
    }
    ck_assert_uint_eq(stats_of(cache).evictions_tenant, 0);

    /* With a slot held by a tenant that has only negative entries, made-up
     * tenants take it from each other, never from a real one. */
    limits.max_tenants = 4;
    cache_set_limits(cache, &limits);
    for (int i = 0; i < 50; i++) {
        snprintf(tenant, sizeof(tenant), "fake%d", i);
        ck_assert_int_eq(put_negative(cache, tenant, KIND_CONFIG, "k"), CACHE_OK);
        ck_assert_uint_eq(stats_of(cache).tenants, 4);
    }
    ck_assert_uint_eq(stats_of(cache).evictions_negative, 49);
    /* A message for a new tenant takes the slot of the tenant that holds
     * only a negative entry, not a real tenant's, however recently read. */
    for (int i = 0; i < 3; i++) {
        snprintf(tenant, sizeof(tenant), "real%d", i);
        touch_tenant(cache, tenant, NOW);
    }
    touch_tenant(cache, "fake49", NOW);
    ck_assert_int_eq(put_crit(cache, "real3", KIND_CREDIT, "op", "1"), CACHE_OK);
    for (int i = 0; i < 4; i++) {
        snprintf(tenant, sizeof(tenant), "real%d", i);
        ck_assert(tenant_resident(cache, tenant));
    }
    ck_assert(!tenant_resident(cache, "fake49"));
    ck_assert_uint_eq(stats_of(cache).evictions_tenant, 0);
    ck_assert_uint_eq(stats_of(cache).evictions_negative, 50);
    walk_tenants(cache);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_negatives_bounded_and_first_to_go)
{
    /* Negative entries hold at most an eighth of max_bytes; under pressure
     * they go before any reference entry. */
    struct cache_limits limits = limits_of(256 * 1024, UNLIMITED, 100000);
    struct cache *cache = cache_create(4, &limits);
    char key[32];
    for (int i = 0; i < 4000; i++) {
        snprintf(key, sizeof(key), "missing%d", i);
        enum cache_status status = put_negative(cache, "acme", KIND_CONFIG, key);
        ck_assert(status == CACHE_OK || status == CACHE_NOT_CACHED);
    }
    struct cache_stats st = stats_of(cache);
    ck_assert_uint_gt(st.negative_entries, 100);
    ck_assert_uint_lt(st.negative_entries, 4000);
    /* The entries themselves within their share; the tables holding them
     * (the tenant's slots, the list of negatives) add up to 17 bytes an
     * entry, twice over after a growth. */
    struct cache_tenant_stats ts;
    ck_assert(cache_tenant_get_stats(cache, "acme", 4, &ts));
    ck_assert_uint_le(ts.kind_bytes[KIND_CONFIG], 256 * 1024 / 8);
    ck_assert_uint_le(st.bytes, 256 * 1024 / 8 + 2 * 17 * ts.entries + 1024);
    ck_assert_uint_gt(st.evictions_negative, 0);
    /* Fill the rest with reference data: the negatives make way first. */
    char json[512];
    json_of_len(json, 400, 'x');
    uint64_t negatives_before = st.negative_entries;
    int stored = 0;
    for (int i = 0; stats_of(cache).negative_entries > 0 && i < 2000; i++) {
        snprintf(key, sizeof(key), "p%d", i);
        ck_assert_int_eq(put_ref(cache, "acme", KIND_PROFILE, key, json), CACHE_OK);
        stored++;
        if (stats_of(cache).negative_entries > 0)
            ck_assert_uint_eq(stats_of(cache).evictions_reference, 0);
    }
    ck_assert_uint_eq(stats_of(cache).negative_entries, 0);
    ck_assert_uint_gt(stored, 0);
    ck_assert_uint_gt(negatives_before, 0);
    ck_assert_uint_le(stats_of(cache).bytes, 256 * 1024);
    walk_tenants(cache);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_shrink)
{
    struct cache *cache = cache_unlimited(4);
    char tenant[16], key[32], json[300];
    for (int i = 0; i < 2000; i++) {
        snprintf(tenant, sizeof(tenant), "t%d", i % 5);
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_int_eq(put_ref(cache, tenant, KIND_PROFILE, key, json_of_len(json, 200, 'x')),
                         CACHE_OK);
    }
    for (int t = 0; t < 5; t++) {
        snprintf(tenant, sizeof(tenant), "t%d", t);
        ck_assert_int_eq(put_crit(cache, tenant, KIND_ROLE, "r", "[]"), CACHE_OK);
    }
    uint64_t used = stats_of(cache).bytes;
    /* Below the high watermark: nothing. */
    struct cache_limits limits = limits_of((uint64_t)((double)used / 0.79), UNLIMITED, 100);
    cache_set_limits(cache, &limits);
    ck_assert(!cache_shrink(cache, NOW, 10));
    ck_assert_uint_eq(stats_of(cache).bytes, used);
    ck_assert_uint_eq(stats_of(cache).evictions_reference, 0);

    /* Above it: budgeted steps down to the low watermark. */
    limits = limits_of((uint64_t)((double)used / 0.9), UNLIMITED, 100);
    cache_set_limits(cache, &limits);
    int calls = 0;
    uint64_t before = 0;
    bool more;
    do {
        before = stats_of(cache).evictions_reference;
        more = cache_shrink(cache, NOW, 10);
        ck_assert_uint_le(stats_of(cache).evictions_reference - before, 10);
        calls++;
        ck_assert_int_lt(calls, 10000);
    } while (more);
    ck_assert_int_gt(calls, 5);
    struct cache_stats s = stats_of(cache);
    ck_assert_uint_le(s.bytes, (uint64_t)((double)limits.max_bytes * 0.7));
    /* It stopped close to the low watermark, not far below. */
    ck_assert_uint_gt(s.bytes, (uint64_t)((double)limits.max_bytes * 0.65));
    ck_assert_uint_eq(s.evictions_tenant, 0);
    for (int t = 0; t < 5; t++) {
        snprintf(tenant, sizeof(tenant), "t%d", t);
        ck_assert(present(cache, tenant, KIND_ROLE, "r", NOW));
    }
    /* Now below: nothing more. */
    uint64_t evicted = s.evictions_reference;
    ck_assert(!cache_shrink(cache, NOW, 10));
    ck_assert_uint_eq(stats_of(cache).evictions_reference, evicted);
    walk_tenants(cache);
    cache_destroy(cache);
}
END_TEST

START_TEST(test_shrink_critical_only)
{
    /* Above the watermark with nothing evictable: it gives up, no tenant goes. */
    struct cache *cache = cache_unlimited(4);
    char key[32], json[300];
    for (int i = 0; i < 100; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        ck_assert_int_eq(put_crit(cache, "acme", KIND_CONFIG, key, json_of_len(json, 200, 'x')),
                         CACHE_OK);
    }
    uint64_t used = stats_of(cache).bytes;
    struct cache_limits limits = limits_of(used + 10, UNLIMITED, 100);
    cache_set_limits(cache, &limits);
    ck_assert(!cache_shrink(cache, NOW, 10));
    ck_assert_uint_eq(stats_of(cache).bytes, used);
    ck_assert_uint_eq(stats_of(cache).tenants, 1);
    cache_destroy(cache);
}
END_TEST

/* ---- readers racing the writer ---- */

#define RACE_TENANTS 4
#define RACE_KEYS 48
#define RACE_KINDS 3

struct race {
    struct cache *cache;
    atomic_bool stop;
    _Atomic uint64_t reads;
    _Atomic uint64_t values_checked;
};

static uint32_t checksum(const char *data, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)data[i]) * 16777619u;
    return h;
}

/* "v<key>-<n>|" padding "#<checksum>": a value that is wrong if torn. */
static size_t race_value(char *out, size_t size, const char *key, unsigned n)
{
    int head = snprintf(out, size, "v%s-%u|", key, n);
    size_t pad = 8 + (n * 37u) % 400;
    size_t len = (size_t)head;
    for (size_t i = 0; i < pad; i++)
        out[len++] = (char)('a' + (n + i) % 26);
    uint32_t sum = checksum(out, len);
    len += (size_t)snprintf(out + len, size - len, "#%08x", sum);
    return len;
}

static void race_check_value(const struct cache_entry *entry, const char *key)
{
    size_t len, derived_len, key_len;
    const char *value = cache_entry_value(entry, &len);
    const char *entry_key = cache_entry_key(entry, &key_len);
    ck_assert_uint_eq(key_len, strlen(key));
    ck_assert(memcmp(entry_key, key, key_len) == 0);
    ck_assert_uint_lt(len, 600);
    char copy[600]; /* the value is not NUL-terminated */
    memcpy(copy, value, len);
    copy[len] = '\0';
    value = copy;
    ck_assert_int_eq(value[0], 'v');
    ck_assert(strncmp(value + 1, key, strlen(key)) == 0);
    ck_assert_int_eq(value[1 + strlen(key)], '-');
    unsigned n = (unsigned)strtoul(value + 2 + strlen(key), NULL, 10);
    char expected[600];
    size_t expected_len = race_value(expected, sizeof(expected), key, n);
    ck_assert_uint_eq(len, expected_len);
    ck_assert(memcmp(value, expected, len) == 0);
    const unsigned char *derived = cache_entry_derived(entry, &derived_len);
    ck_assert_uint_eq(derived_len, sizeof(n) + key_len);
    unsigned dn;
    memcpy(&dn, derived, sizeof(dn));
    ck_assert_uint_eq(dn, n);
    ck_assert(memcmp(derived + sizeof(n), key, key_len) == 0);
}

struct race_children {
    unsigned parent;
    unsigned count;
};

static void race_child(void *arg, const struct cache_entry *entry)
{
    struct race_children *c = arg;
    size_t len;
    const char *key = cache_entry_key(entry, &len);
    ck_assert_int_eq(cache_entry_state(entry), CACHE_ENTRY_VALUE);
    unsigned i = (unsigned)strtoul(key + 1, NULL, 10);
    ck_assert_uint_eq(i % 5, c->parent);
    c->count++;
}

static void race_counter(void *arg, const struct cache_tenant_stats *t)
{
    (*(unsigned *)arg)++;
    ck_assert_uint_le(strlen(t->name), 64);
}

static void *race_reader(void *arg)
{
    struct race *race = arg;
    uint64_t x = (uint64_t)(uintptr_t)&x | 1;
    char tenant[16], key[16], parent[8];
    while (!atomic_load(&race->stop)) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        snprintf(tenant, sizeof(tenant), "t%u", (unsigned)(x % RACE_TENANTS));
        struct cache_reader reader;
        cache_read_begin(race->cache, tenant, strlen(tenant), util_monotonic_ms(), &reader);
        for (int j = 0; j < 8; j++) {
            unsigned i = (unsigned)((x >> (8 + j * 5)) % RACE_KEYS);
            unsigned kind = (unsigned)((x >> (4 + j)) % RACE_KINDS);
            snprintf(key, sizeof(key), "k%u", i);
            const struct cache_entry *entry = cache_read_find(&reader, kind, key, strlen(key));
            atomic_fetch_add(&race->reads, 1);
            if (entry == NULL)
                continue;
            if (cache_entry_state(entry) == CACHE_ENTRY_VALUE) {
                race_check_value(entry, key);
                atomic_fetch_add(&race->values_checked, 1);
            } else {
                assert_value_is(entry, "");
            }
        }
        if (x % 16 == 0) {
            struct race_children c = {.parent = (unsigned)(x >> 10) % 5};
            snprintf(parent, sizeof(parent), "p%u", c.parent);
            cache_read_index(&reader, 2, parent, strlen(parent), race_child, &c);
        }
        cache_read_end(&reader);
        if (x % 64 == 1) {
            struct cache_stats s;
            cache_get_stats(race->cache, &s);
            struct cache_tenant_stats ts;
            cache_tenant_get_stats(race->cache, tenant, strlen(tenant), &ts);
            unsigned count = 0;
            cache_foreach_tenant(race->cache, race_counter, &count);
            ck_assert_uint_le(count, RACE_TENANTS);
        }
    }
    return NULL;
}

START_TEST(test_readers_race_writer)
{
    struct cache_limits limits = limits_of(64 * 1024, 24 * 1024, RACE_TENANTS);
    struct race race = {.cache = cache_create(2, &limits)};
    struct cache_stats baseline = stats_of(race.cache);
    limits.max_bytes += baseline.bytes;
    cache_set_limits(race.cache, &limits);
    pthread_t readers[4];
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&readers[i], NULL, race_reader, &race), 0);

    static unsigned counters[RACE_TENANTS][RACE_KINDS][RACE_KEYS];
    static uint64_t versions[RACE_TENANTS][RACE_KINDS][RACE_KEYS];
    memset(counters, 0, sizeof(counters));
    memset(versions, 0, sizeof(versions));
    char tenant[16], key[16], json[600], parent[8];
    unsigned char derived[64];
    uint64_t x = 88172645463325252ull, writes = 0;
    uint64_t start = util_monotonic_ms();
    /* About a second, and enough writes even when threads crawl (valgrind). */
    while ((util_monotonic_ms() - start < 1000 || writes < 2000) &&
           util_monotonic_ms() - start < 30000) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        unsigned t = (unsigned)(x % RACE_TENANTS), kind = (unsigned)((x >> 3) % RACE_KINDS);
        unsigned i = (unsigned)((x >> 6) % RACE_KEYS);
        snprintf(tenant, sizeof(tenant), "t%u", t);
        snprintf(key, sizeof(key), "k%u", i);
        snprintf(parent, sizeof(parent), "p%u", i % 5);
        struct cache_key k = key_of(tenant, kind, key);
        uint64_t now = util_monotonic_ms();
        struct cache_write w = {.critical = kind == 0, .updated_ms = now};
        if ((x >> 20) % 4 != 0) {
            w.has_version = true;
            w.version = ++versions[t][kind][i];
        }
        unsigned op = (unsigned)((x >> 24) % 100);
        if (op < 70) {
            unsigned n = ++counters[t][kind][i];
            size_t len = race_value(json, sizeof(json), key, n);
            memcpy(derived, &n, sizeof(n));
            memcpy(derived + sizeof(n), key, strlen(key));
            struct cache_value v = {.json = json, .json_len = len, .derived = derived,
                                    .derived_len = sizeof(n) + strlen(key)};
            if (kind == 2) {
                v.index_key = parent;
                v.index_key_len = strlen(parent);
            }
            w.expires_ms = (x >> 40) % 3 == 0 ? now + (x >> 42) % 30 : 0;
            w.if_absent = (x >> 50) % 10 == 0;
            cache_set(race.cache, &k, &v, &w, now);
        } else if (op < 82) {
            w.expires_ms = now + 20;
            cache_delete(race.cache, &k, &w, now);
        } else if (op < 90) {
            cache_invalidate(race.cache, &k, w.has_version, w.version, now, NULL);
        } else if (op < 95) {
            cache_set_negative(race.cache, &k, now + 10, NULL, 0, now);
        } else if (op < 96) {
            switch ((x >> 30) % 4) {
            case 0:
                cache_flush(race.cache, tenant, strlen(tenant), (int)kind);
                break;
            case 1:
                cache_flush(race.cache, tenant, strlen(tenant), -1);
                break;
            case 2:
                cache_flush(race.cache, NULL, 0, (int)kind);
                break;
            default:
                if ((x >> 33) % 8 == 0)
                    cache_flush(race.cache, NULL, 0, -1);
                break;
            }
        } else if (op < 98) {
            cache_sweep(race.cache, now, 16);
        } else {
            while (cache_shrink(race.cache, now, 8)) {
            }
        }
        writes++;
        ck_assert_uint_le(stats_of(race.cache).bytes, limits.max_bytes);
    }
    atomic_store(&race.stop, true);
    for (int i = 0; i < 4; i++)
        pthread_join(readers[i], NULL);
    ck_assert_uint_gt(writes, 1000);
    ck_assert_uint_gt(atomic_load(&race.reads), 1000);
    ck_assert_uint_gt(atomic_load(&race.values_checked), 100);
    walk_tenants(race.cache);
    cache_flush(race.cache, NULL, 0, -1);
    assert_empty(race.cache, &baseline);
    cache_destroy(race.cache);
}
END_TEST

/* ---- the change hook ---- */

struct changes {
    char seen[16][64];  /* "tenant/kind/key", or "*" for a flush of everything */
    int count;
};

static void record_change(void *arg, const char *tenant, size_t tenant_len, unsigned kind,
                          const char *key, size_t key_len)
{
    struct changes *changes = arg;
    ck_assert_int_lt(changes->count, 16);
    if (tenant == NULL)
        snprintf(changes->seen[changes->count++], 64, "*");
    else
        snprintf(changes->seen[changes->count++], 64, "%.*s/%u/%.*s", (int)tenant_len, tenant,
                 kind, (int)key_len, key);
}

/* Every change of an entry reaches the hook, whatever its cause; a flush of
 * everything once, as a whole. */
START_TEST(test_change_hook)
{
    struct cache *cache = cache_unlimited(4);
    struct changes changes = {0};
    cache_set_change_hook(cache, record_change, &changes);
    struct cache_key a = key_of("acme", KIND_CREDIT, "a");
    struct cache_value one = value_of("1");
    struct cache_write w = critical_write();
    ck_assert_int_eq(cache_set(cache, &a, &one, &w, NOW), CACHE_OK);
    ck_assert_int_eq(changes.count, 1);
    ck_assert_str_eq(changes.seen[0], "acme/0/a");
    /* Replaced: the old one leaves, the new one comes. */
    ck_assert_int_eq(cache_set(cache, &a, &one, &w, NOW), CACHE_OK);
    ck_assert_int_eq(changes.count, 3);
    /* Invalidated; invalidating nothing is no change. */
    ck_assert_int_eq(cache_invalidate(cache, &a, false, 0, NOW, NULL), CACHE_OK);
    ck_assert_int_eq(changes.count, 4);
    ck_assert_int_eq(cache_invalidate(cache, &a, false, 0, NOW, NULL), CACHE_OK);
    ck_assert_int_eq(changes.count, 4);
    /* Expired and swept. */
    struct cache_key b = key_of("acme", KIND_PROFILE, "b");
    struct cache_write expiring = reference_write();
    expiring.expires_ms = NOW + 10;
    ck_assert_int_eq(cache_set(cache, &b, &one, &expiring, NOW), CACHE_OK);
    ck_assert_int_eq(changes.count, 5);
    ck_assert_uint_eq(cache_sweep(cache, NOW + 20, 1000), 1);
    ck_assert_int_eq(changes.count, 6);
    ck_assert_str_eq(changes.seen[5], "acme/4/b");
    /* A tenant's flush: entry by entry; everything: once. */
    ck_assert_int_eq(cache_set(cache, &a, &one, &w, NOW), CACHE_OK);
    struct cache_key c = key_of("globex", KIND_CREDIT, "c");
    ck_assert_int_eq(cache_set(cache, &c, &one, &w, NOW), CACHE_OK);
    ck_assert_int_eq(changes.count, 8);
    ck_assert_uint_eq(cache_flush(cache, "acme", 4, -1), 1);
    ck_assert_int_eq(changes.count, 9);
    ck_assert_str_eq(changes.seen[8], "acme/0/a");
    ck_assert_int_eq(cache_set(cache, &a, &one, &w, NOW), CACHE_OK);
    ck_assert_uint_eq(cache_flush(cache, NULL, 0, -1), 2);
    ck_assert_int_eq(changes.count, 11);
    ck_assert_str_eq(changes.seen[10], "*");
    cache_destroy(cache);
}
END_TEST

static Suite *cache_suite(void)
{
    Suite *suite = suite_create("cache");
    TCase *basic = tcase_create("entries");
    tcase_add_test(basic, test_create_destroy);
    tcase_add_test(basic, test_set_get);
    tcase_add_test(basic, test_packed_fields_extremes);
    tcase_add_test(basic, test_miss);
    tcase_add_test(basic, test_overwrite);
    tcase_add_test(basic, test_slab_spare_reused_and_given_back);
    tcase_add_test(basic, test_large_derived);
    tcase_add_test(basic, test_triples_never_collide);
    tcase_add_test(basic, test_many_tenants_many_keys);
    tcase_set_timeout(basic, 120);
    suite_add_tcase(suite, basic);

    TCase *versions = tcase_create("versions");
    tcase_add_test(versions, test_versions);
    tcase_add_test(versions, test_delete_tombstone);
    tcase_add_test(versions, test_tombstone_expiry);
    tcase_add_test(versions, test_ttl_expiry);
    tcase_add_test(versions, test_invalidate);
    tcase_add_test(versions, test_invalidate_keeps_tombstone);
    tcase_add_test(versions, test_invalidate_reports_recent_reads);
    tcase_add_test(versions, test_expiry_ranges);
    tcase_add_test(versions, test_eviction_lru2_far_reads);
    tcase_add_test(versions, test_table_churn);
    tcase_add_test(versions, test_negative);
    tcase_add_test(versions, test_if_absent);
    suite_add_tcase(suite, versions);

    TCase *scopes = tcase_create("scopes");
    tcase_add_test(scopes, test_flush_scopes);
    tcase_add_test(scopes, test_index);
    suite_add_tcase(suite, scopes);

    TCase *accounting = tcase_create("accounting");
    tcase_add_test(accounting, test_accounting_delete_and_sweep);
    tcase_add_test(accounting, test_accounting_flush_expire_invalidate);
    tcase_add_test(accounting, test_tenant_stats);
    tcase_add_test(accounting, test_foreach_tenant);
    tcase_set_timeout(accounting, 120);
    suite_add_tcase(suite, accounting);

    TCase *limits = tcase_create("limits");
    tcase_add_test(limits, test_limits_never_exceeded);
    tcase_add_test(limits, test_eviction_prefers_entries_read_once);
    tcase_add_test(limits, test_global_limit_critical_only);
    tcase_add_test(limits, test_not_cached_tenant_vanishes);
    tcase_add_test(limits, test_evict_expired_first);
    tcase_add_test(limits, test_evict_lru_reference);
    tcase_add_test(limits, test_critical_only_whole_tenants);
    tcase_add_test(limits, test_evict_lru_tenant);
    tcase_add_test(limits, test_tenant_max_bytes);
    tcase_add_test(limits, test_enforce_tenant_limit);
    tcase_add_test(limits, test_tenant_max_bytes_tables);
    tcase_add_test(limits, test_max_tenants);
    tcase_add_test(limits, test_query_never_evicts_a_tenant);
    tcase_add_test(limits, test_fill_epoch_guard);
    tcase_add_test(limits, test_remap_kinds);
    tcase_add_test(limits, test_negatives_bounded_and_first_to_go);
    tcase_add_test(limits, test_shrink);
    tcase_add_test(limits, test_shrink_critical_only);
    tcase_add_test(limits, test_change_hook);
    tcase_set_timeout(limits, 300);
    suite_add_tcase(suite, limits);

    TCase *threads = tcase_create("threads");
    tcase_add_test(threads, test_readers_race_writer);
    tcase_set_timeout(threads, 300);
    suite_add_tcase(suite, threads);
    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(cache_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
