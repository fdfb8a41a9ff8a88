/* test_snapshot.c - the snapshot file (docs/reference.md §6): a cache written
 * and read back entry for entry (values, versions, tombstones, expiry as wall
 * time, the stream ID, publishers); expired entries and kinds the config does
 * not cache (or saved under another shape) left out; every truncation and
 * every flipped byte rejected with the cache untouched; a value that does
 * not fit its kind in a file with a right checksum loads nothing; the same
 * cache loaded whatever the number of loading threads. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cache.h"
#include "config.h"
#include "snapshot.h"
#include "util.h"
#include "value.h"

#define NOW_MS 5000000ULL          /* monotonic */
#define WALL_MS 1700000000000ULL   /* wall clock */

static struct config *config;
static char dir[64];
static char path[128];

static void setup(void)
{
    config = config_defaults();
    snprintf(dir, sizeof(dir), "/tmp/tenantcached-snapshot.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/snapshot", dir);
    free(config->snapshot.path);
    config->snapshot.path = xstrdup(path);
}

static void teardown(void)
{
    unlink(path);
    rmdir(dir);
    config_free(config);
}

static struct cache *new_cache(void)
{
    struct cache_limits limits = {
        .max_bytes = 64u << 20,
        .tenant_max_bytes = 16u << 20,
        .max_tenants = 1000,
        .high_watermark = 0.8,
        .low_watermark = 0.7,
    };
    return cache_create(4, &limits);
}

static int kind_of(const char *name)
{
    for (unsigned i = 0; i < config->kind_count; i++)
        if (strcmp(config->kinds[i].name, name) == 0)
            return (int)i;
    ck_abort_msg("no kind %s", name);
    return -1;
}

static void put(struct cache *cache, const char *tenant, const char *kind, const char *key,
                const char *json, uint64_t version, uint64_t expires_ms)
{
    int k = kind_of(kind);
    struct cache_key ck = {tenant, strlen(tenant), (unsigned)k, key, strlen(key)};
    struct cache_write write = {
        .critical = config->kinds[k].tier == CONFIG_TIER_CRITICAL,
        .has_version = version != 0,
        .version = version,
        .expires_ms = expires_ms,
        .updated_ms = WALL_MS - 1000,
    };
    if (json == NULL) {
        ck_assert_int_eq(cache_delete(cache, &ck, &write, NOW_MS), CACHE_OK);
        return;
    }
    struct value_prepared value;
    char error[ERROR_MAX];
    ck_assert_int_eq(value_prepare_text(config->kinds[k].shape, json, strlen(json), &value, error),
                     0);
    struct cache_value cv = {value.json, value.json_len, value.derived, value.derived_len,
                             value.index_key, value.index_key_len};
    ck_assert_int_eq(cache_set(cache, &ck, &cv, &write, NOW_MS), CACHE_OK);
    value_clear(&value);
}

/* What one entry reads as: its JSON, "(tombstone)", or "(none)". */
static void look(struct cache *cache, const char *tenant, const char *kind, const char *key,
                 uint64_t now_ms, char *out, size_t size, uint64_t *version)
{
    struct cache_reader reader;
    cache_read_begin(cache, tenant, strlen(tenant), now_ms, &reader);
    const struct cache_entry *entry =
        cache_read_find(&reader, (unsigned)kind_of(kind), key, strlen(key));
    if (entry == NULL) {
        snprintf(out, size, "(none)");
    } else if (cache_entry_state(entry) == CACHE_ENTRY_TOMBSTONE) {
        snprintf(out, size, "(tombstone)");
        *version = cache_entry_version(entry);
    } else {
        size_t len;
        const char *json = cache_entry_value(entry, &len);
        snprintf(out, size, "%.*s", (int)len, json);
        *version = cache_entry_version(entry);
    }
    cache_read_end(&reader);
}

/* Writes cache (with a stream ID and two publishers) to path. */
static void save(struct cache *cache)
{
    struct snapshot_meta meta = {0};
    meta.has_stream_id = true;
    meta.stream_id.ms = 1700000000123ULL;
    meta.stream_id.seq = 4;
    snapshot_meta_add_publisher(&meta, "authz-1", 41);
    snapshot_meta_add_publisher(&meta, "billing", 7);
    struct snapshot_writer *writer = snapshot_writer_begin(config, &meta, WALL_MS);
    snapshot_meta_clear(&meta);
    for (unsigned shard = 0; shard < cache_shard_count(cache); shard++)
        snapshot_writer_add_shard(writer, cache, shard, NOW_MS, WALL_MS);
    char error[ERROR_MAX];
    ck_assert_msg(snapshot_writer_commit(writer, path, error) == 0, "%s", error);
    snapshot_writer_free(writer);
}

static struct cache *filled(void)
{
    struct cache *cache = new_cache();
    put(cache, "acme", "credit", "op", "3", 0, 0);
    put(cache, "acme", "profile", "u1", "{\"name\":\"Ann\"}", 7, NOW_MS + 60000);
    put(cache, "acme", "user", "u2", NULL, 9, NOW_MS + 30000);   /* tombstone */
    put(cache, "beta", "role", "sales", "[\"crm.*\"]", 0, 0);
    put(cache, "beta", "audit", "old", "{\"x\":1}", 0, NOW_MS + 10); /* expires soon */
    return cache;
}

static unsigned char *read_file(size_t *len)
{
    FILE *file = fopen(path, "rb");
    ck_assert_ptr_nonnull(file);
    static unsigned char data[1 << 16];
    *len = fread(data, 1, sizeof(data), file);
    fclose(file);
    ck_assert_uint_gt(*len, 0);
    ck_assert_uint_lt(*len, sizeof(data));
    return data;
}

START_TEST(test_round_trip)
{
    struct cache *cache = filled();
    save(cache);
    cache_destroy(cache);

    /* loaded 20 s later by the wall clock, at another monotonic time */
    struct cache *loaded = new_cache();
    struct snapshot_meta meta;
    char error[ERROR_MAX];
    uint64_t now = 9000000ULL;
    int64_t count = snapshot_load(config, loaded, now, WALL_MS + 20000, &meta, error);
    ck_assert_msg(count == 4, "loaded %lld: %s", (long long)count, error);
    ck_assert(meta.has_stream_id);
    ck_assert_uint_eq(meta.stream_id.ms, 1700000000123ULL);
    ck_assert_uint_eq(meta.stream_id.seq, 4);
    ck_assert_uint_eq(meta.publisher_count, 2);
    ck_assert_str_eq(meta.publishers[0].src, "authz-1");
    ck_assert_uint_eq(meta.publishers[0].seq, 41);
    ck_assert_str_eq(meta.publishers[1].src, "billing");
    ck_assert_uint_eq(meta.saved_at_ms, WALL_MS);
    snapshot_meta_clear(&meta);

    char got[128];
    uint64_t version = 99;
    look(loaded, "acme", "credit", "op", now, got, sizeof(got), &version);
    ck_assert_str_eq(got, "3");
    ck_assert_uint_eq(version, 0);
    look(loaded, "acme", "profile", "u1", now, got, sizeof(got), &version);
    ck_assert_str_eq(got, "{\"name\":\"Ann\"}");
    ck_assert_uint_eq(version, 7);
    look(loaded, "acme", "user", "u2", now, got, sizeof(got), &version);
    ck_assert_str_eq(got, "(tombstone)");
    ck_assert_uint_eq(version, 9);
    look(loaded, "beta", "role", "sales", now, got, sizeof(got), &version);
    ck_assert_str_eq(got, "[\"crm.*\"]");
    look(loaded, "beta", "audit", "old", now, got, sizeof(got), &version);
    ck_assert_str_eq(got, "(none)"); /* expired by the wall clock */
    /* expiry carried as wall time: 60 s after the save is 40 s after the load */
    look(loaded, "acme", "profile", "u1", now + 39000, got, sizeof(got), &version);
    ck_assert_str_eq(got, "{\"name\":\"Ann\"}");
    look(loaded, "acme", "profile", "u1", now + 41000, got, sizeof(got), &version);
    ck_assert_str_eq(got, "(none)");
    cache_destroy(loaded);
}
END_TEST

START_TEST(test_damage_rejected_whole)
{
    struct cache *cache = filled();
    save(cache);
    cache_destroy(cache);
    size_t len;
    unsigned char *data = read_file(&len);
    struct cache *target = new_cache();
    struct cache_stats figures;
    char error[ERROR_MAX];
    struct snapshot_meta meta;
    /* every truncation */
    for (size_t cut = 0; cut < len; cut++) {
        ck_assert_msg(snapshot_decode(config, data, cut, target, NOW_MS, WALL_MS, &meta, error) ==
                          -1,
                      "accepted %zu of %zu bytes", cut, len);
        ck_assert_uint_eq(meta.publisher_count, 0);
    }
    /* every flipped byte */
    for (size_t i = 0; i < len; i++) {
        data[i] ^= 0x41;
        ck_assert_msg(snapshot_decode(config, data, len, target, NOW_MS, WALL_MS, &meta, error) ==
                          -1,
                      "accepted a flip at %zu", i);
        data[i] ^= 0x41;
    }
    cache_get_stats(target, &figures);
    ck_assert_uint_eq(figures.entries, 0);
    /* and the intact file still loads */
    ck_assert_int_eq(snapshot_decode(config, data, len, target, NOW_MS, WALL_MS, &meta, error), 5);
    snapshot_meta_clear(&meta);
    cache_destroy(target);
}
END_TEST

START_TEST(test_missing_file)
{
    struct cache *cache = new_cache();
    struct snapshot_meta meta;
    char error[ERROR_MAX];
    ck_assert_int_eq(snapshot_load(config, cache, NOW_MS, WALL_MS, &meta, error), -1);
    ck_assert_ptr_nonnull(strstr(error, "cannot open"));
    cache_destroy(cache);
}
END_TEST

/* Loading runs over several threads, each with its own run of records; the
 * result is the same cache whatever the number. */
START_TEST(test_loaded_alike_by_any_number_of_threads)
{
    struct cache *cache = new_cache();
    char tenant[32], key[32], json[64];
    for (int t = 0; t < 40; t++) {
        snprintf(tenant, sizeof(tenant), "tenant-%02d", t);
        for (int k = 0; k < 50; k++) {
            snprintf(key, sizeof(key), "key-%02d", k);
            snprintf(json, sizeof(json), "{\"n\":%d}", t * 100 + k);
            put(cache, tenant, "profile", key, json, (uint64_t)k + 1, 0);
        }
    }
    save(cache);
    cache_destroy(cache);
    for (unsigned threads = 1; threads <= 5; threads++) {
        config->threads = threads;
        struct cache *loaded = new_cache();
        struct snapshot_meta meta;
        char error[ERROR_MAX];
        ck_assert_int_eq(snapshot_load(config, loaded, NOW_MS, WALL_MS, &meta, error), 2000);
        snapshot_meta_clear(&meta);
        for (int t = 0; t < 40; t++) {
            snprintf(tenant, sizeof(tenant), "tenant-%02d", t);
            for (int k = 0; k < 50; k++) {
                snprintf(key, sizeof(key), "key-%02d", k);
                char expected[64], got[64];
                snprintf(expected, sizeof(expected), "{\"n\":%d}", t * 100 + k);
                uint64_t version = 0;
                look(loaded, tenant, "profile", key, NOW_MS, got, sizeof(got), &version);
                ck_assert_str_eq(got, expected);
                ck_assert_uint_eq(version, (uint64_t)k + 1);
            }
        }
        cache_destroy(loaded);
    }
}
END_TEST

/* A kind saved under another shape than the config gives it now (a
 * daemon that changed a kind's shape) is left out; the rest loads. */
START_TEST(test_kind_of_another_shape_left_out)
{
    struct cache *cache = filled();
    int role = kind_of("role");
    enum config_shape shape = config->kinds[role].shape;
    config->kinds[role].shape = CONFIG_SHAPE_ANY;
    save(cache);
    config->kinds[role].shape = shape;
    cache_destroy(cache);
    struct cache *loaded = new_cache();
    struct snapshot_meta meta;
    char error[ERROR_MAX];
    ck_assert_int_eq(snapshot_load(config, loaded, NOW_MS, WALL_MS, &meta, error), 4);
    snapshot_meta_clear(&meta);
    char got[64];
    uint64_t version = 0;
    look(loaded, "beta", "role", "sales", NOW_MS, got, sizeof(got), &version);
    ck_assert_str_eq(got, "(none)");
    look(loaded, "acme", "credit", "op", NOW_MS, got, sizeof(got), &version);
    ck_assert_str_eq(got, "3");
    cache_destroy(loaded);
}
END_TEST

/* A file with a right checksum whose value does not fit its kind (made by
 * hand, not by the daemon) loads nothing, even what came before it. */
START_TEST(test_crafted_value_loads_nothing)
{
    struct cache *cache = filled();
    put(cache, "acme", "credit", "zz", "4", 0, 0);
    save(cache);
    cache_destroy(cache);
    size_t len;
    unsigned char *data = read_file(&len);
    /* the credit values "3" and "4" become "x", then the checksum is redone */
    unsigned changed = 0;
    for (size_t i = 4; i + 1 < len - 8; i++) {
        if ((data[i] == '3' || data[i] == '4') && data[i - 4] == 1 && data[i - 3] == 0 &&
            data[i - 2] == 0 && data[i - 1] == 0) {
            data[i] = 'x';
            changed++;
        }
    }
    ck_assert_uint_eq(changed, 2);
    uint64_t sum = snapshot_checksum(data, len - 8);
    for (size_t i = 0; i < 8; i++)
        data[len - 8 + i] = (unsigned char)(sum >> (8 * i));
    for (unsigned threads = 1; threads <= 2; threads++) {
        config->threads = threads;
        struct cache *target = new_cache();
        struct snapshot_meta meta;
        char error[ERROR_MAX];
        ck_assert_int_eq(snapshot_decode(config, data, len, target, NOW_MS, WALL_MS, &meta, error),
                         -1);
        ck_assert_ptr_nonnull(strstr(error, "kind credit"));
        ck_assert_uint_eq(meta.publisher_count, 0);
        struct cache_stats figures;
        cache_get_stats(target, &figures);
        ck_assert_uint_eq(figures.entries, 0);
        cache_destroy(target);
    }
}
END_TEST

static Suite *snapshot_suite(void)
{
    Suite *suite = suite_create("snapshot");
    TCase *file = tcase_create("file");
    tcase_add_checked_fixture(file, setup, teardown);
    tcase_set_timeout(file, 120);
    tcase_add_test(file, test_round_trip);
    tcase_add_test(file, test_damage_rejected_whole);
    tcase_add_test(file, test_missing_file);
    tcase_add_test(file, test_loaded_alike_by_any_number_of_threads);
    tcase_add_test(file, test_kind_of_another_shape_left_out);
    tcase_add_test(file, test_crafted_value_loads_nothing);
    suite_add_tcase(suite, file);
    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(snapshot_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
