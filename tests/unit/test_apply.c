/* test_apply.c - apply.c: parsed invalidation messages (docs/reference.md §3) applied to a
 * real cache. Asserts the cache's contents, the stats counters of docs/reference.md §4, the
 * per-publisher sequence tracking of docs/reference.md §7 and the on_gap / on_write /
 * on_hot callbacks. stats is a global: every test starts from zero. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "cache.h"
#include "config.h"
#include "log.h"
#include "message.h"
#include "stats.h"
#include "util.h"

#define NOW 1000000ull     /* monotonic ms */
#define WALL 1700000000000ull
#define HOUR_MS 3600000ull

/* ---- what the callbacks saw ---- */

#define MAX_RECORDS 256

struct gap_record {
    char src[MESSAGE_SRC_MAX + 1];
    uint64_t expected;
    uint64_t got;
    bool probe_present; /* the probe entry was cached when on_gap ran */
};

struct write_record {
    bool tenant_null;
    char tenant[MESSAGE_TENANT_MAX + 1];
    int kind;
    bool key_null;
    char key[MESSAGE_KEY_MAX + 1];
};

struct hot_record {
    char tenant[MESSAGE_TENANT_MAX + 1];
    unsigned kind;
    char key[MESSAGE_KEY_MAX + 1];
};

static struct {
    struct gap_record gaps[MAX_RECORDS];
    size_t gap_count;
    struct write_record writes[MAX_RECORDS];
    size_t write_count;
    struct hot_record hots[MAX_RECORDS];
    size_t hot_count;
    /* An entry on_gap looks up, to show it runs before the message applies. */
    const char *probe_tenant;
    unsigned probe_kind;
    const char *probe_key;
} seen;

static struct config *config;
static struct cache *cache;
static struct apply *apply;

static bool probe(const char *tenant, unsigned kind, const char *key, uint64_t now);

static void copy_text(char *out, size_t size, const char *text, size_t len)
{
    ck_assert_uint_lt(len, size);
    memcpy(out, text, len);
    out[len] = '\0';
}

static void on_gap(void *arg, const char *src, uint64_t expected, uint64_t got)
{
    ck_assert_ptr_eq(arg, &seen);
    if (seen.gap_count == MAX_RECORDS)
        return;
    struct gap_record *record = &seen.gaps[seen.gap_count++];
    copy_text(record->src, sizeof(record->src), src, strlen(src));
    record->expected = expected;
    record->got = got;
    record->probe_present = seen.probe_key != NULL &&
                            probe(seen.probe_tenant, seen.probe_kind, seen.probe_key, NOW);
}

static void on_write(void *arg, const char *tenant, size_t tenant_len, int kind, const char *key,
                     size_t key_len)
{
    ck_assert_ptr_eq(arg, &seen);
    if (seen.write_count == MAX_RECORDS)
        return;
    struct write_record *record = &seen.writes[seen.write_count++];
    record->tenant_null = tenant == NULL;
    if (tenant != NULL)
        copy_text(record->tenant, sizeof(record->tenant), tenant, tenant_len);
    else
        ck_assert_uint_eq(tenant_len, 0);
    record->kind = kind;
    record->key_null = key == NULL;
    if (key != NULL)
        copy_text(record->key, sizeof(record->key), key, key_len);
    else
        ck_assert_uint_eq(key_len, 0);
}

static void on_hot(void *arg, const char *tenant, size_t tenant_len, unsigned kind,
                   const char *key, size_t key_len)
{
    ck_assert_ptr_eq(arg, &seen);
    if (seen.hot_count == MAX_RECORDS)
        return;
    struct hot_record *record = &seen.hots[seen.hot_count++];
    copy_text(record->tenant, sizeof(record->tenant), tenant, tenant_len);
    record->kind = kind;
    copy_text(record->key, sizeof(record->key), key, key_len);
}

/* ---- fixture ---- */

static struct config *load(const char *yaml)
{
    char error[ERROR_MAX] = "";
    struct config *loaded = config_load_buffer("test.yaml", yaml, strlen(yaml), error);
    ck_assert_msg(loaded != NULL, "config rejected: %s", error);
    return loaded;
}

static struct cache_limits limits_from(const struct config *from)
{
    struct cache_limits limits = {
        .max_bytes = from->memory.max_bytes,
        .tenant_max_bytes = from->memory.tenant_max_bytes,
        .max_tenants = from->memory.max_tenants,
        .high_watermark = from->memory.high_watermark,
        .low_watermark = from->memory.low_watermark,
        .hot_reads = from->memory.hot_reads,
    };
    return limits;
}

/* Builds config, cache and applier from yaml (with the daemon's wiring). */
static void start(const char *yaml)
{
    config = load(yaml);
    struct cache_limits limits = limits_from(config);
    cache = cache_create(8, &limits);
    cache_set_wall_clock(cache, WALL);
    struct apply_callbacks callbacks = {
        .on_gap = on_gap, .on_write = on_write, .on_hot = on_hot, .arg = &seen,
    };
    apply = apply_create(cache, config, &callbacks);
}

static void setup(void)
{
    log_set_level(LOG_LEVEL_ERROR); /* gaps and flushes are logged: keep the output readable */
    memset(&stats, 0, sizeof(stats));
    memset(&seen, 0, sizeof(seen));
    config = NULL;
    cache = NULL;
    apply = NULL;
}

static void teardown(void)
{
    apply_destroy(apply);
    if (cache != NULL)
        cache_destroy(cache);
    config_free(config);
    apply = NULL;
    cache = NULL;
    config = NULL;
}

/* Parses the formatted message with the current config and applies it. */
__attribute__((format(printf, 2, 3)))
static void send_at(uint64_t now, const char *fmt, ...)
{
    char text[8192];
    va_list args;
    va_start(args, fmt);
    int len = vsnprintf(text, sizeof(text), fmt, args);
    va_end(args);
    ck_assert_int_gt(len, 0);
    ck_assert_int_lt(len, (int)sizeof(text));
    struct message_batch batch;
    char error[ERROR_MAX] = "";
    ck_assert_msg(message_parse(config, text, (size_t)len, &batch, error) == 0,
                  "%s rejected: %s", text, error);
    apply_batch(apply, &batch, now);
    message_batch_free(&batch);
}

#define send(...) send_at(NOW, __VA_ARGS__)

/* ---- looking at the cache ---- */

struct found {
    bool present;
    enum cache_entry_state state;
    char value[256];
    uint64_t version;
    uint64_t updated_ms;
};

static struct found find_at(const char *tenant, unsigned kind, const char *key, uint64_t now)
{
    struct found found;
    memset(&found, 0, sizeof(found));
    struct cache_reader reader;
    cache_read_begin(cache, tenant, strlen(tenant), now, &reader);
    const struct cache_entry *entry = cache_read_find(&reader, kind, key, strlen(key));
    if (entry != NULL) {
        found.present = true;
        found.state = cache_entry_state(entry);
        size_t len = 0;
        const char *value = cache_entry_value(entry, &len);
        copy_text(found.value, sizeof(found.value), value, len);
        found.version = cache_entry_version(entry);
        found.updated_ms = cache_entry_updated_ms(cache, entry);
    }
    cache_read_end(&reader);
    return found;
}

static bool probe(const char *tenant, unsigned kind, const char *key, uint64_t now)
{
    return find_at(tenant, kind, key, now).present;
}

/* Asserts a live value entry with exactly this JSON (and version). */
static void expect_value_at(const char *tenant, unsigned kind, const char *key, const char *json,
                            uint64_t version, uint64_t now)
{
    struct found found = find_at(tenant, kind, key, now);
    ck_assert_msg(found.present, "%s/%u/%s: absent", tenant, kind, key);
    ck_assert_int_eq(found.state, CACHE_ENTRY_VALUE);
    ck_assert_str_eq(found.value, json);
    ck_assert_uint_eq(found.version, version);
}

#define expect_value(tenant, kind, key, json, version) \
    expect_value_at(tenant, kind, key, json, version, NOW)

static void expect_absent_at(const char *tenant, unsigned kind, const char *key, uint64_t now)
{
    struct found found = find_at(tenant, kind, key, now);
    ck_assert_msg(!found.present, "%s/%u/%s: present (state %d, '%s')", tenant, kind, key,
                  found.state, found.value);
}

#define expect_absent(tenant, kind, key) expect_absent_at(tenant, kind, key, NOW)

static uint64_t entries(void)
{
    struct cache_stats figures;
    cache_get_stats(cache, &figures);
    return figures.entries;
}

#define COUNTER(name) stats_get(&stats.name)

static void expect_counters(uint64_t applied, uint64_t stale, uint64_t unknown,
                            uint64_t filtered, uint64_t gaps)
{
    ck_assert_uint_eq(COUNTER(messages_applied), applied);
    ck_assert_uint_eq(COUNTER(messages_stale), stale);
    ck_assert_uint_eq(COUNTER(messages_unknown_kind), unknown);
    ck_assert_uint_eq(COUNTER(messages_filtered), filtered);
    ck_assert_uint_eq(COUNTER(seq_gaps), gaps);
    ck_assert_uint_eq(COUNTER(messages_invalid), 0); /* parsing is message.c's */
}

static void expect_write(size_t index, const char *tenant, int kind, const char *key)
{
    ck_assert_uint_lt(index, seen.write_count);
    const struct write_record *record = &seen.writes[index];
    if (tenant == NULL) {
        ck_assert_msg(record->tenant_null, "write %zu: tenant '%s', want every tenant", index,
                      record->tenant);
    } else {
        ck_assert(!record->tenant_null);
        ck_assert_str_eq(record->tenant, tenant);
    }
    ck_assert_int_eq(record->kind, kind);
    if (key == NULL) {
        ck_assert(record->key_null);
    } else {
        ck_assert(!record->key_null);
        ck_assert_str_eq(record->key, key);
    }
}

/* ---- set ---- */

START_TEST(test_set)
{
    start("");
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"lead.create\","
         "\"value\":3.5,\"version\":7}");
    expect_counters(1, 0, 0, 0, 0);
    expect_value("acme", CONFIG_KIND_CREDIT, "lead.create", "3.5", 7);
    ck_assert_uint_eq(seen.write_count, 1);
    expect_write(0, "acme", CONFIG_KIND_CREDIT, "lead.create");

    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u1\","
         "\"value\":{\"status\":\"active\",  \"roles\":[\"admin\"]}}");
    expect_value("acme", CONFIG_KIND_USER, "u1", "{\"status\":\"active\",\"roles\":[\"admin\"]}",
                 0);
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"admin\","
         "\"value\":[\"crm.*\"]}");
    expect_value("acme", CONFIG_KIND_ROLE, "admin", "[\"crm.*\"]", 0);
    /* The same key in another tenant and another kind are other entries. */
    send("{\"op\":\"set\",\"tenant\":\"globex\",\"kind\":\"credit\",\"key\":\"lead.create\","
         "\"value\":{\"cost\":12}}");
    expect_value("globex", CONFIG_KIND_CREDIT, "lead.create", "{\"cost\":12}", 0);
    expect_value("acme", CONFIG_KIND_CREDIT, "lead.create", "3.5", 7);
    expect_absent("acme", CONFIG_KIND_CONFIG, "lead.create");
    expect_counters(4, 0, 0, 0, 0);
    ck_assert_uint_eq(entries(), 4);
    ck_assert_uint_eq(seen.write_count, 4);
    ck_assert_uint_eq(seen.gap_count, 0);
    ck_assert_uint_eq(seen.hot_count, 0);
}
END_TEST

START_TEST(test_set_versions)
{
    start("");
#define fmt "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"k\"," \
            "\"value\":\"v%d\",\"version\":%d}"
    send(fmt, 5, 5);
    send(fmt, 3, 3); /* older */
    send(fmt, 5, 5); /* same */
    expect_value("acme", CONFIG_KIND_CONFIG, "k", "\"v5\"", 5);
    expect_counters(1, 2, 0, 0, 0);
    send(fmt, 6, 6);
    expect_value("acme", CONFIG_KIND_CONFIG, "k", "\"v6\"", 6);
    expect_counters(2, 2, 0, 0, 0);
    /* Without a version a set always applies; the version becomes 0. */
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"k\",\"value\":1}");
    expect_value("acme", CONFIG_KIND_CONFIG, "k", "1", 0);
    send(fmt, 1, 1);
    expect_value("acme", CONFIG_KIND_CONFIG, "k", "\"v1\"", 1);
    expect_counters(4, 2, 0, 0, 0);
    /* A stale set still tells fills in flight (a set wins over a fill). */
    ck_assert_uint_eq(seen.write_count, 6);
    ck_assert_uint_eq(entries(), 1);
#undef fmt
}
END_TEST

START_TEST(test_set_timestamps)
{
    start("");
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"k\",\"value\":1,"
         "\"ts\":\"2024-01-01T10:00:00Z\"}");
    struct found found = find_at("acme", CONFIG_KIND_CONFIG, "k", NOW);
    ck_assert(found.present);
    ck_assert_uint_eq(found.updated_ms, 1704103200000ull);
    /* Without ts: the wall clock now. */
    uint64_t before = util_realtime_ms();
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"k2\",\"value\":1}");
    uint64_t after = util_realtime_ms();
    found = find_at("acme", CONFIG_KIND_CONFIG, "k2", NOW);
    ck_assert_uint_ge(found.updated_ms, before);
    ck_assert_uint_le(found.updated_ms, after);
}
END_TEST

/* ---- TTLs ---- */

START_TEST(test_ttl_from_kind)
{
    start("kinds:\n  flags: {tier: reference, ttl: 2s}\n  audit: {ttl: 0}\n");
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"profile\",\"key\":\"p\","
         "\"value\":{\"name\":\"A\"}}");
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"c\",\"value\":1}");
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"flags\",\"key\":\"f\",\"value\":true}");
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"audit\",\"key\":\"a\",\"value\":[]}");
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"history\",\"key\":\"h\",\"value\":[]}");
    expect_counters(5, 0, 0, 0, 0);

    /* profile: 1 h by default. */
    expect_value_at("acme", CONFIG_KIND_PROFILE, "p", "{\"name\":\"A\"}", 0, NOW + HOUR_MS - 1);
    expect_absent_at("acme", CONFIG_KIND_PROFILE, "p", NOW + HOUR_MS);
    expect_absent_at("acme", CONFIG_KIND_PROFILE, "p", NOW + HOUR_MS + 1);
    /* history: 10 min by default. */
    expect_value_at("acme", CONFIG_KIND_HISTORY, "h", "[]", 0, NOW + 600000 - 1);
    expect_absent_at("acme", CONFIG_KIND_HISTORY, "h", NOW + 600000);
    /* An added kind's TTL. */
    int flags = config_kind_find(config, "flags", 5);
    ck_assert_int_ge(flags, CONFIG_BUILTIN_KINDS);
    expect_value_at("acme", (unsigned)flags, "f", "true", 0, NOW + 1999);
    expect_absent_at("acme", (unsigned)flags, "f", NOW + 2000);
    /* ttl 0 and critical kinds: no expiry. */
    expect_value_at("acme", CONFIG_KIND_AUDIT, "a", "[]", 0, NOW + 1000 * HOUR_MS);
    expect_value_at("acme", CONFIG_KIND_CREDIT, "c", "1", 0, NOW + 100000 * HOUR_MS);

    /* A set later restarts the TTL from its own time. */
    send_at(NOW + HOUR_MS, "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"profile\","
                           "\"key\":\"p\",\"value\":{\"name\":\"B\"}}");
    expect_value_at("acme", CONFIG_KIND_PROFILE, "p", "{\"name\":\"B\"}", 0, NOW + 2 * HOUR_MS - 1);
    expect_absent_at("acme", CONFIG_KIND_PROFILE, "p", NOW + 2 * HOUR_MS);
}
END_TEST

START_TEST(test_ttl_follows_config_swap)
{
    start("");
    struct config *shorter = load("kinds:\n  profile: {ttl: 10s}\n");
    apply_set_config(apply, shorter);
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"profile\",\"key\":\"p\",\"value\":{}}");
    expect_value_at("acme", CONFIG_KIND_PROFILE, "p", "{}", 0, NOW + 9999);
    expect_absent_at("acme", CONFIG_KIND_PROFILE, "p", NOW + 10000);
    apply_set_config(apply, config);
    config_free(shorter);
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"profile\",\"key\":\"q\",\"value\":{}}");
    expect_value_at("acme", CONFIG_KIND_PROFILE, "q", "{}", 0, NOW + HOUR_MS - 1);
}
END_TEST

/* ---- del ---- */

START_TEST(test_del_tombstone)
{
    start("memory:\n  tombstone_ttl: 10s\n");
#define set "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u\"," \
            "\"value\":\"active\",\"version\":%d}"
#define del "{\"op\":\"del\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u\"," \
            "\"version\":%d}"
    send(set, 5);
    send(del, 4); /* older than the entry */
    expect_value("acme", CONFIG_KIND_USER, "u", "\"active\"", 5);
    expect_counters(1, 1, 0, 0, 0);

    send(del, 8);
    expect_counters(2, 1, 0, 0, 0);
    struct found found = find_at("acme", CONFIG_KIND_USER, "u", NOW);
    ck_assert(found.present);
    ck_assert_int_eq(found.state, CACHE_ENTRY_TOMBSTONE);
    ck_assert_uint_eq(found.version, 8);
    ck_assert_str_eq(found.value, "");

    /* While the tombstone lives (tombstone_ttl), older sets are stale. */
    send(set, 7);
    send(set, 8);
    send_at(NOW + 9999, set, 6);
    expect_counters(2, 4, 0, 0, 0);
    ck_assert_int_eq(find_at("acme", CONFIG_KIND_USER, "u", NOW + 9999).state,
                     CACHE_ENTRY_TOMBSTONE);
    /* Then it is gone, and the old set lands. */
    expect_absent_at("acme", CONFIG_KIND_USER, "u", NOW + 10000);
    send_at(NOW + 10000, set, 6);
    expect_counters(3, 4, 0, 0, 0);
    expect_value_at("acme", CONFIG_KIND_USER, "u", "\"active\"", 6, NOW + 10000);

    /* A newer set replaces a live tombstone. */
    send(del, 20);
    send(set, 21);
    expect_value("acme", CONFIG_KIND_USER, "u", "\"active\"", 21);
    expect_counters(5, 4, 0, 0, 0);

    /* Deleting what was never cached still leaves a tombstone. */
    send("{\"op\":\"del\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"never\",\"version\":3}");
    ck_assert_int_eq(find_at("acme", CONFIG_KIND_USER, "never", NOW).state,
                     CACHE_ENTRY_TOMBSTONE);
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"never\","
         "\"value\":\"x\",\"version\":2}");
    expect_counters(6, 5, 0, 0, 0);
    ck_assert_uint_eq(seen.write_count, 11);
#undef set
#undef del
}
END_TEST

START_TEST(test_del_default_tombstone_ttl)
{
    start("");
    ck_assert_uint_eq(config->memory.tombstone_ttl_ms, 60000);
    send("{\"op\":\"del\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"r\",\"version\":2}");
    ck_assert_int_eq(find_at("acme", CONFIG_KIND_ROLE, "r", NOW + 59999).state,
                     CACHE_ENTRY_TOMBSTONE);
    expect_absent_at("acme", CONFIG_KIND_ROLE, "r", NOW + 60000);
    /* Without a version, the tombstone carries 0 and blocks nothing versioned. */
    send("{\"op\":\"del\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"s\"}");
    ck_assert_int_eq(find_at("acme", CONFIG_KIND_ROLE, "s", NOW).state, CACHE_ENTRY_TOMBSTONE);
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"s\",\"value\":[],"
         "\"version\":1}");
    expect_value("acme", CONFIG_KIND_ROLE, "s", "[]", 1);
    expect_counters(3, 0, 0, 0, 0);
}
END_TEST

/* ---- invalidate ---- */

START_TEST(test_invalidate)
{
    start("");
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"r\",\"value\":[],"
         "\"version\":10}");
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"other\",\"value\":[]}");
    send("{\"op\":\"invalidate\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"r\","
         "\"version\":10}");
    expect_value("acme", CONFIG_KIND_ROLE, "r", "[]", 10);
    expect_counters(2, 1, 0, 0, 0);
    send("{\"op\":\"invalidate\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"r\","
         "\"version\":11}");
    expect_absent("acme", CONFIG_KIND_ROLE, "r");
    expect_value("acme", CONFIG_KIND_ROLE, "other", "[]", 0);
    expect_counters(3, 1, 0, 0, 0);
    /* No tombstone: an older set lands again. */
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"r\",\"value\":[\"a\"],"
         "\"version\":3}");
    expect_value("acme", CONFIG_KIND_ROLE, "r", "[\"a\"]", 3);
    /* Without a version it always drops; absent entries are fine. */
    send("{\"op\":\"invalidate\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"r\"}");
    send("{\"op\":\"invalidate\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"r\"}");
    send("{\"op\":\"invalidate\",\"tenant\":\"nobody-here\",\"kind\":\"role\",\"key\":\"r\"}");
    expect_absent("acme", CONFIG_KIND_ROLE, "r");
    expect_counters(7, 1, 0, 0, 0);
    ck_assert_uint_eq(entries(), 1);
    ck_assert_uint_eq(seen.write_count, 8);
    expect_write(7, "nobody-here", CONFIG_KIND_ROLE, "r");
}
END_TEST

/* ---- flush ---- */

static void fill_three_tenants(void)
{
    static const char *const tenants[] = {"acme", "globex", "initech"};
    for (size_t t = 0; t < UTIL_ARRAY_LEN(tenants); t++) {
        send("{\"op\":\"set\",\"tenant\":\"%s\",\"kind\":\"credit\",\"key\":\"a\",\"value\":1}",
             tenants[t]);
        send("{\"op\":\"set\",\"tenant\":\"%s\",\"kind\":\"credit\",\"key\":\"b\",\"value\":2}",
             tenants[t]);
        send("{\"op\":\"set\",\"tenant\":\"%s\",\"kind\":\"role\",\"key\":\"a\",\"value\":[]}",
             tenants[t]);
    }
}

START_TEST(test_flush_scopes)
{
    start("");
    fill_three_tenants();
    ck_assert_uint_eq(entries(), 9);
    seen.write_count = 0;
    memset(&stats, 0, sizeof(stats));

    /* One kind of one tenant. */
    send("{\"op\":\"flush\",\"tenant\":\"acme\",\"kind\":\"credit\"}");
    expect_absent("acme", CONFIG_KIND_CREDIT, "a");
    expect_absent("acme", CONFIG_KIND_CREDIT, "b");
    expect_value("acme", CONFIG_KIND_ROLE, "a", "[]", 0);
    expect_value("globex", CONFIG_KIND_CREDIT, "a", "1", 0);
    ck_assert_uint_eq(entries(), 7);
    expect_write(0, "acme", CONFIG_KIND_CREDIT, NULL);

    /* A whole tenant. */
    send("{\"op\":\"flush\",\"tenant\":\"globex\"}");
    expect_absent("globex", CONFIG_KIND_CREDIT, "a");
    expect_absent("globex", CONFIG_KIND_ROLE, "a");
    expect_value("acme", CONFIG_KIND_ROLE, "a", "[]", 0);
    expect_value("initech", CONFIG_KIND_CREDIT, "b", "2", 0);
    ck_assert_uint_eq(entries(), 4);
    expect_write(1, "globex", -1, NULL);

    /* A tenant with nothing cached. */
    send("{\"op\":\"flush\",\"tenant\":\"umbrella\"}");
    ck_assert_uint_eq(entries(), 4);
    expect_write(2, "umbrella", -1, NULL);

    /* Every tenant, one kind. */
    send("{\"op\":\"flush\",\"tenant\":\"*\",\"kind\":\"role\"}");
    expect_absent("acme", CONFIG_KIND_ROLE, "a");
    expect_absent("initech", CONFIG_KIND_ROLE, "a");
    expect_value("initech", CONFIG_KIND_CREDIT, "a", "1", 0);
    ck_assert_uint_eq(entries(), 2);
    expect_write(3, NULL, CONFIG_KIND_ROLE, NULL);

    /* Everything. */
    send("{\"op\":\"flush\",\"tenant\":\"*\"}");
    ck_assert_uint_eq(entries(), 0);
    expect_absent("initech", CONFIG_KIND_CREDIT, "a");
    expect_write(4, NULL, -1, NULL);

    ck_assert_uint_eq(seen.write_count, 5);
    expect_counters(5, 0, 0, 0, 0);
}
END_TEST

START_TEST(test_flush_drops_tombstones)
{
    start("");
    send("{\"op\":\"del\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u\",\"version\":9}");
    send("{\"op\":\"flush\",\"tenant\":\"acme\"}");
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u\",\"value\":\"x\","
         "\"version\":1}");
    expect_value("acme", CONFIG_KIND_USER, "u", "\"x\"", 1);
    expect_counters(3, 0, 0, 0, 0);
}
END_TEST

/* ---- kinds not cached here ---- */

START_TEST(test_unknown_kind)
{
    start("");
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"nosuch\",\"key\":\"k\",\"value\":1}");
    send("{\"op\":\"del\",\"tenant\":\"acme\",\"kind\":\"nosuch\",\"key\":\"k\"}");
    send("{\"op\":\"invalidate\",\"tenant\":\"acme\",\"kind\":\"nosuch\",\"key\":\"k\"}");
    send("{\"op\":\"flush\",\"tenant\":\"acme\",\"kind\":\"nosuch\"}");
    expect_counters(0, 0, 4, 0, 0);
    ck_assert_uint_eq(entries(), 0);
    ck_assert_uint_eq(seen.write_count, 0);
    /* In a batch, the known ones still apply. */
    send("[{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"nosuch\",\"key\":\"k\",\"value\":1},"
         "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"k\",\"value\":2}]");
    expect_counters(1, 0, 5, 0, 0);
    expect_value("acme", CONFIG_KIND_CREDIT, "k", "2", 0);
    ck_assert_uint_eq(entries(), 1);
}
END_TEST

START_TEST(test_filtered_kind)
{
    start("application: crm\n");
    ck_assert(!config->kinds[CONFIG_KIND_PROFILE].cached);
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"profile\",\"key\":\"p\",\"value\":{}}");
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"hierarchy\",\"key\":\"e\","
         "\"value\":{\"parent\":\"root\"}}");
    send("{\"op\":\"del\",\"tenant\":\"acme\",\"kind\":\"config\",\"key\":\"c\"}");
    send("{\"op\":\"invalidate\",\"tenant\":\"acme\",\"kind\":\"audit\",\"key\":\"a\"}");
    send("{\"op\":\"flush\",\"tenant\":\"acme\",\"kind\":\"history\"}");
    expect_counters(0, 0, 0, 5, 0);
    ck_assert_uint_eq(entries(), 0);
    ck_assert_uint_eq(seen.write_count, 0);
    expect_absent("acme", CONFIG_KIND_PROFILE, "p");
    /* crm's own kinds apply. */
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"k\",\"value\":2}");
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u\",\"value\":\"x\"}");
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"nosuch\",\"key\":\"u\",\"value\":1}");
    expect_counters(2, 0, 1, 5, 0);
    ck_assert_uint_eq(entries(), 2);
}
END_TEST

/* ---- batches ---- */

START_TEST(test_batch_in_order)
{
    start("");
    send("[{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u\",\"value\":\"a\","
         "\"version\":1},"
         "{\"op\":\"del\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u\",\"version\":2},"
         "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u\",\"value\":\"b\","
         "\"version\":2},"
         "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u\",\"value\":\"c\","
         "\"version\":3},"
         "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"v\",\"value\":\"d\"},"
         "{\"op\":\"invalidate\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"v\"}]");
    expect_value("acme", CONFIG_KIND_USER, "u", "\"c\"", 3);
    expect_absent("acme", CONFIG_KIND_USER, "v");
    expect_counters(5, 1, 0, 0, 0);
    ck_assert_uint_eq(seen.write_count, 6);
    expect_write(1, "acme", CONFIG_KIND_USER, "u");
    expect_write(5, "acme", CONFIG_KIND_USER, "v");
}
END_TEST

/* ---- sequence numbers ---- */

#define seq_fmt "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\"," \
                "\"key\":\"k%d\",\"value\":%d,\"src\":\"%s\",\"seq\":%d}"

START_TEST(test_seq_gap)
{
    start("");
    seen.probe_tenant = "acme";
    seen.probe_kind = CONFIG_KIND_CREDIT;
    seen.probe_key = "k5";
    send(seq_fmt, 1, 1, "billing-1", 1);
    send(seq_fmt, 2, 2, "billing-1", 2);
    ck_assert_uint_eq(seen.gap_count, 0);
    send(seq_fmt, 5, 5, "billing-1", 5);
    ck_assert_uint_eq(seen.gap_count, 1);
    ck_assert_str_eq(seen.gaps[0].src, "billing-1");
    ck_assert_uint_eq(seen.gaps[0].expected, 3);
    ck_assert_uint_eq(seen.gaps[0].got, 5);
    /* on_gap runs before the message that revealed the gap is applied. */
    ck_assert(!seen.gaps[0].probe_present);
    /* ...and the message is still applied. */
    expect_value("acme", CONFIG_KIND_CREDIT, "k5", "5", 0);
    expect_counters(3, 0, 0, 0, 1);

    /* In order again: no gap. */
    send(seq_fmt, 6, 6, "billing-1", 6);
    /* A duplicate and a step back: applied, no gap. */
    send(seq_fmt, 6, 6, "billing-1", 6);
    send(seq_fmt, 4, 4, "billing-1", 4);
    /* A restarted publisher: back to 1, no gap. */
    send(seq_fmt, 1, 1, "billing-1", 1);
    send(seq_fmt, 2, 2, "billing-1", 2);
    ck_assert_uint_eq(seen.gap_count, 1);
    expect_counters(8, 0, 0, 0, 1);

    /* Publishers are tracked apart; the first seq heard is no gap. */
    send(seq_fmt, 7, 7, "billing-2", 40);
    send(seq_fmt, 7, 7, "billing-2", 41);
    send(seq_fmt, 3, 3, "billing-1", 3);
    ck_assert_uint_eq(seen.gap_count, 1);
    send(seq_fmt, 7, 7, "billing-2", 43);
    ck_assert_uint_eq(seen.gap_count, 2);
    ck_assert_str_eq(seen.gaps[1].src, "billing-2");
    ck_assert_uint_eq(seen.gaps[1].expected, 42);
    ck_assert_uint_eq(seen.gaps[1].got, 43);
    expect_counters(12, 0, 0, 0, 2);

    /* Messages without seq are not tracked and do not disturb the count. */
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"x\",\"value\":1,"
         "\"src\":\"billing-2\"}");
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"x\",\"value\":1}");
    send(seq_fmt, 7, 7, "billing-2", 44);
    ck_assert_uint_eq(seen.gap_count, 2);
    expect_counters(15, 0, 0, 0, 2);
}
END_TEST

START_TEST(test_seq_counted_for_every_disposition)
{
    /* A stale, filtered or unknown-kind message still advances its
     * publisher's sequence: skipping it must not look like a loss. */
    start("application: crm\n");
    send(seq_fmt, 1, 1, "p", 1);
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"profile\",\"key\":\"p\",\"value\":{},"
         "\"src\":\"p\",\"seq\":2}");
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"nosuch\",\"key\":\"p\",\"value\":1,"
         "\"src\":\"p\",\"seq\":3}");
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"v\",\"value\":1,"
         "\"version\":5,\"src\":\"p\",\"seq\":4}");
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"v\",\"value\":1,"
         "\"version\":4,\"src\":\"p\",\"seq\":5}");
    send("{\"op\":\"flush\",\"tenant\":\"*\",\"src\":\"p\",\"seq\":6}");
    send(seq_fmt, 1, 1, "p", 7);
    ck_assert_uint_eq(seen.gap_count, 0);
    expect_counters(4, 1, 1, 1, 0);
}
END_TEST

START_TEST(test_seq_gap_in_batch)
{
    start("");
    send("[{\"op\":\"invalidate\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"a\","
         "\"src\":\"s\",\"seq\":1},"
         "{\"op\":\"invalidate\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"b\","
         "\"src\":\"s\",\"seq\":2},"
         "{\"op\":\"invalidate\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"c\","
         "\"src\":\"s\",\"seq\":4}]");
    ck_assert_uint_eq(seen.gap_count, 1);
    ck_assert_uint_eq(seen.gaps[0].expected, 3);
    ck_assert_uint_eq(seen.gaps[0].got, 4);
    expect_counters(3, 0, 0, 0, 1);
}
END_TEST

#define heartbeat_fmt "{\"op\":\"heartbeat\",\"src\":\"%s\",\"seq\":%d}"

START_TEST(test_heartbeat)
{
    start("");
    /* A heartbeat from a publisher never heard: nothing to compare. */
    send(heartbeat_fmt, "hb", 7);
    ck_assert_uint_eq(seen.gap_count, 0);
    send(seq_fmt, 8, 8, "hb", 8);
    send(seq_fmt, 9, 9, "hb", 9);
    /* seq == last: "still here". */
    send(heartbeat_fmt, "hb", 9);
    send(heartbeat_fmt, "hb", 9);
    ck_assert_uint_eq(seen.gap_count, 0);
    /* seq > last: the last message was lost. */
    send(heartbeat_fmt, "hb", 10);
    ck_assert_uint_eq(seen.gap_count, 1);
    ck_assert_str_eq(seen.gaps[0].src, "hb");
    ck_assert_uint_eq(seen.gaps[0].expected, 10);
    ck_assert_uint_eq(seen.gaps[0].got, 10);
    ck_assert_uint_eq(COUNTER(seq_gaps), 1);
    /* The heartbeat's seq is now the last: the next message follows it. */
    send(seq_fmt, 11, 11, "hb", 11);
    send(heartbeat_fmt, "hb", 11);
    ck_assert_uint_eq(seen.gap_count, 1);
    send(heartbeat_fmt, "hb", 14);
    ck_assert_uint_eq(seen.gap_count, 2);
    ck_assert_uint_eq(seen.gaps[1].expected, 12);
    ck_assert_uint_eq(seen.gaps[1].got, 14);
    /* A lower heartbeat (restarted publisher): no gap. */
    send(heartbeat_fmt, "hb", 1);
    send(seq_fmt, 2, 2, "hb", 2);
    ck_assert_uint_eq(seen.gap_count, 2);
    /* Heartbeats write nothing. */
    ck_assert_uint_eq(seen.write_count, 4);
    ck_assert_uint_eq(entries(), 4);
    ck_assert_uint_eq(COUNTER(seq_gaps), 2);
    ck_assert_uint_eq(COUNTER(messages_applied), 4);
}
END_TEST

START_TEST(test_oldest_publisher_and_forget)
{
    start("");
    ck_assert_uint_eq(apply_oldest_publisher_ms(apply), 0);
    send_at(5000, "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"k\","
                  "\"value\":1,\"src\":\"no-seq\"}");
    ck_assert_uint_eq(apply_oldest_publisher_ms(apply), 0);
    send_at(1000, heartbeat_fmt, "a", 1);
    send_at(2000, heartbeat_fmt, "b", 1);
    ck_assert_uint_eq(apply_oldest_publisher_ms(apply), 1000);
    send_at(3000, seq_fmt, 1, 1, "a", 2);
    ck_assert_uint_eq(apply_oldest_publisher_ms(apply), 2000);
    send_at(4000, heartbeat_fmt, "b", 1);
    ck_assert_uint_eq(apply_oldest_publisher_ms(apply), 3000);

    apply_forget_publishers(apply);
    ck_assert_uint_eq(apply_oldest_publisher_ms(apply), 0);
    /* Forgotten: a jump is no gap (nothing is known of what came before). */
    send_at(5000, seq_fmt, 1, 1, "a", 9);
    send_at(5000, heartbeat_fmt, "b", 5);
    ck_assert_uint_eq(seen.gap_count, 0);
    ck_assert_uint_eq(apply_oldest_publisher_ms(apply), 5000);
    /* But they are tracked again from there. */
    send_at(6000, seq_fmt, 1, 1, "a", 11);
    ck_assert_uint_eq(seen.gap_count, 1);
    ck_assert_uint_eq(seen.gaps[0].expected, 10);
    apply_forget_publishers(apply);
    apply_forget_publishers(apply);
    ck_assert_uint_eq(apply_oldest_publisher_ms(apply), 0);
}
END_TEST

START_TEST(test_publishers_bounded)
{
    start("");
    enum { MAX_PUBLISHERS = 4096 };
    const uint64_t base = 100000;
    /* 4096 distinct publishers, each heard once, p0 longest ago. */
    for (int i = 0; i < MAX_PUBLISHERS; i++) {
        char src[32];
        snprintf(src, sizeof(src), "p%d", i);
        send_at(base + (uint64_t)i, heartbeat_fmt, src, 1);
    }
    ck_assert_uint_eq(apply_oldest_publisher_ms(apply), base);
    /* Each is still known: a jump is a gap. */
    send_at(base + 10000, heartbeat_fmt, "p4095", 3);
    ck_assert_uint_eq(seen.gap_count, 1);

    /* One more publisher: the longest silent one (p0) is forgotten. */
    send_at(base + 10001, heartbeat_fmt, "newcomer", 1);
    ck_assert_uint_eq(apply_oldest_publisher_ms(apply), base + 1);
    /* p1 is still known... */
    send_at(base + 10002, heartbeat_fmt, "p1", 3);
    ck_assert_uint_eq(seen.gap_count, 2);
    ck_assert_str_eq(seen.gaps[1].src, "p1");
    /* ...p0 is not: its jump cannot be judged (and it evicts p2 now). */
    send_at(base + 10003, heartbeat_fmt, "p0", 3);
    ck_assert_uint_eq(seen.gap_count, 2);
    ck_assert_uint_eq(apply_oldest_publisher_ms(apply), base + 3);
    send_at(base + 10004, heartbeat_fmt, "p0", 5);
    ck_assert_uint_eq(seen.gap_count, 3);

    /* Many more distinct publishers: still bounded, the newest remembered. */
    for (int i = 0; i < 3 * MAX_PUBLISHERS; i++) {
        char src[32];
        snprintf(src, sizeof(src), "q%d", i);
        send_at(base + 20000 + (uint64_t)i, heartbeat_fmt, src, 1);
    }
    ck_assert_uint_eq(apply_oldest_publisher_ms(apply), base + 20000 + 2 * MAX_PUBLISHERS);
    send_at(base + 40000, heartbeat_fmt, "q12287", 3);
    ck_assert_uint_eq(seen.gap_count, 4);
    ck_assert_uint_eq(COUNTER(seq_gaps), 4);
}
END_TEST

/* ---- on_write and on_hot ---- */

START_TEST(test_on_write_scopes)
{
    start("");
    send("{\"op\":\"set\",\"tenant\":\"t1\",\"kind\":\"credit\",\"key\":\"k1\",\"value\":1}");
    send("{\"op\":\"del\",\"tenant\":\"t2\",\"kind\":\"role\",\"key\":\"k2\"}");
    send("{\"op\":\"invalidate\",\"tenant\":\"t3\",\"kind\":\"user\",\"key\":\"k3\"}");
    send("{\"op\":\"flush\",\"tenant\":\"t4\",\"kind\":\"config\"}");
    send("{\"op\":\"flush\",\"tenant\":\"t5\"}");
    send("{\"op\":\"flush\",\"tenant\":\"*\",\"kind\":\"profile\"}");
    send("{\"op\":\"flush\",\"tenant\":\"*\"}");
    send(heartbeat_fmt, "x", 1);
    ck_assert_uint_eq(seen.write_count, 7);
    expect_write(0, "t1", CONFIG_KIND_CREDIT, "k1");
    expect_write(1, "t2", CONFIG_KIND_ROLE, "k2");
    expect_write(2, "t3", CONFIG_KIND_USER, "k3");
    expect_write(3, "t4", CONFIG_KIND_CONFIG, NULL);
    expect_write(4, "t5", -1, NULL);
    expect_write(5, NULL, CONFIG_KIND_PROFILE, NULL);
    expect_write(6, NULL, -1, NULL);
    /* The longest tenant and key pass through whole. */
    char tenant[MESSAGE_TENANT_MAX + 1], key[MESSAGE_KEY_MAX + 1];
    memset(tenant, 't', MESSAGE_TENANT_MAX);
    tenant[MESSAGE_TENANT_MAX] = '\0';
    memset(key, 'k', MESSAGE_KEY_MAX);
    key[MESSAGE_KEY_MAX] = '\0';
    send("{\"op\":\"invalidate\",\"tenant\":\"%s\",\"kind\":\"user\",\"key\":\"%s\"}", tenant, key);
    expect_write(7, tenant, CONFIG_KIND_USER, key);
}
END_TEST

START_TEST(test_callbacks_optional)
{
    /* No callbacks at all: gaps, writes and hot entries go unreported. */
    config = load("memory:\n  hot_reads: 1\n");
    struct cache_limits limits = limits_from(config);
    cache = cache_create(4, &limits);
    cache_set_wall_clock(cache, WALL);
    apply = apply_create(cache, config, NULL);
    send(seq_fmt, 1, 1, "s", 1);
    expect_value("acme", CONFIG_KIND_CREDIT, "k1", "1", 0);
    send(seq_fmt, 1, 1, "s", 5);
    send("{\"op\":\"invalidate\",\"tenant\":\"acme\",\"kind\":\"credit\",\"key\":\"k1\"}");
    send("{\"op\":\"flush\",\"tenant\":\"*\"}");
    expect_counters(4, 0, 0, 0, 1);
}
END_TEST

static void read_times(const char *tenant, unsigned kind, const char *key, int times)
{
    for (int i = 0; i < times; i++)
        ck_assert(find_at(tenant, kind, key, NOW).present);
}

START_TEST(test_on_hot)
{
    start("memory:\n  hot_reads: 3\n");
    ck_assert_uint_eq(config->memory.hot_reads, 3);
#define set "{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"%s\"," \
            "\"value\":\"active\",\"version\":%d}"
#define invalidate "{\"op\":\"invalidate\",\"tenant\":\"acme\",\"kind\":\"user\"," \
                   "\"key\":\"%s\"%s}"
    send(set, "hot", 1);
    send(set, "cold", 1);
    read_times("acme", CONFIG_KIND_USER, "hot", 5);
    read_times("acme", CONFIG_KIND_USER, "cold", 1);

    send(invalidate, "cold", "");
    ck_assert_uint_eq(seen.hot_count, 0);
    /* A stale invalidate drops nothing: not hot either. */
    send(invalidate, "hot", ",\"version\":1");
    ck_assert_uint_eq(seen.hot_count, 0);
    send(invalidate, "hot", "");
    ck_assert_uint_eq(seen.hot_count, 1);
    ck_assert_str_eq(seen.hots[0].tenant, "acme");
    ck_assert_uint_eq(seen.hots[0].kind, CONFIG_KIND_USER);
    ck_assert_str_eq(seen.hots[0].key, "hot");
    /* Gone now: invalidating again is not hot. */
    send(invalidate, "hot", "");
    ck_assert_uint_eq(seen.hot_count, 1);

    /* Exactly hot_reads reads is hot; one fewer is not. */
    send(set, "three", 1);
    send(set, "two", 1);
    read_times("acme", CONFIG_KIND_USER, "three", 3);
    read_times("acme", CONFIG_KIND_USER, "two", 2);
    send(invalidate, "two", "");
    send(invalidate, "three", "");
    ck_assert_uint_eq(seen.hot_count, 2);
    ck_assert_str_eq(seen.hots[1].key, "three");

    /* A read-hot entry that is set or deleted is not refreshed by on_hot. */
    send(set, "busy", 1);
    read_times("acme", CONFIG_KIND_USER, "busy", 5);
    send(set, "busy", 2);
    send("{\"op\":\"del\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"busy\",\"version\":3}");
    ck_assert_uint_eq(seen.hot_count, 2);

    /* Reads long ago (two minutes on the wall clock) no longer count. */
    send(set, "old", 1);
    read_times("acme", CONFIG_KIND_USER, "old", 5);
    cache_set_wall_clock(cache, WALL + 120000);
    send(invalidate, "old", "");
    ck_assert_uint_eq(seen.hot_count, 2);
#undef set
#undef invalidate
}
END_TEST

START_TEST(test_on_hot_off)
{
    /* memory.hot_reads 0 (the default): never hot, however often read. */
    start("");
    ck_assert_uint_eq(config->memory.hot_reads, 0);
    send("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u\",\"value\":\"a\"}");
    read_times("acme", CONFIG_KIND_USER, "u", 50);
    send("{\"op\":\"invalidate\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u\"}");
    ck_assert_uint_eq(seen.hot_count, 0);
    expect_counters(2, 0, 0, 0, 0);
}
END_TEST

static Suite *apply_suite(void)
{
    Suite *suite = suite_create("apply");
    TCase *writes = tcase_create("writes");
    tcase_add_checked_fixture(writes, setup, teardown);
    tcase_add_test(writes, test_set);
    tcase_add_test(writes, test_set_versions);
    tcase_add_test(writes, test_set_timestamps);
    tcase_add_test(writes, test_ttl_from_kind);
    tcase_add_test(writes, test_ttl_follows_config_swap);
    tcase_add_test(writes, test_del_tombstone);
    tcase_add_test(writes, test_del_default_tombstone_ttl);
    tcase_add_test(writes, test_invalidate);
    tcase_add_test(writes, test_flush_scopes);
    tcase_add_test(writes, test_flush_drops_tombstones);
    tcase_add_test(writes, test_unknown_kind);
    tcase_add_test(writes, test_filtered_kind);
    tcase_add_test(writes, test_batch_in_order);
    suite_add_tcase(suite, writes);

    TCase *sequences = tcase_create("sequences");
    tcase_add_checked_fixture(sequences, setup, teardown);
    tcase_add_test(sequences, test_seq_gap);
    tcase_add_test(sequences, test_seq_counted_for_every_disposition);
    tcase_add_test(sequences, test_seq_gap_in_batch);
    tcase_add_test(sequences, test_heartbeat);
    tcase_add_test(sequences, test_oldest_publisher_and_forget);
    tcase_add_test(sequences, test_publishers_bounded);
    tcase_set_timeout(sequences, 300);
    suite_add_tcase(suite, sequences);

    TCase *callbacks = tcase_create("callbacks");
    tcase_add_checked_fixture(callbacks, setup, teardown);
    tcase_add_test(callbacks, test_on_write_scopes);
    tcase_add_test(callbacks, test_callbacks_optional);
    tcase_add_test(callbacks, test_on_hot);
    tcase_add_test(callbacks, test_on_hot_off);
    suite_add_tcase(suite, callbacks);
    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(apply_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
