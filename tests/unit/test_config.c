/* test_config.c - the YAML loader (docs/reference.md §9): defaults, the example file,
 * overrides, kinds and applications merging, access rules, and the exact
 * FILE:LINE:COLUMN text of each class of error. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define KB UINT64_C(1024)
#define MB (1024 * KB)
#define GB (1024 * MB)

static char error[ERROR_MAX];

static struct config *load(const char *text)
{
    struct config *config = config_load_buffer("t.yaml", text, strlen(text), error);
    ck_assert_msg(config != NULL, "load failed: %s", error);
    return config;
}

static void expect_error(const char *text, const char *expected)
{
    struct config *config = config_load_buffer("t.yaml", text, strlen(text), error);
    ck_assert_msg(config == NULL, "loaded, expected %s", expected);
    ck_assert_str_eq(error, expected);
}

/* Writes text to a new temporary file; returns its path (static buffer). */
static const char *temp_file(const char *text, size_t len)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/test_config.XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

/* threads: 0 means one query thread per two online CPUs, at least one: the
 * daemon shares its host with the applications that query it. */
static unsigned default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN) / 2;
    return n < 1 ? 1 : n > 1024 ? 1024 : (unsigned)n;
}

/* ---- sizes and durations ------------------------------------------------- */

static const struct {
    const char *text;
    int rc;
    uint64_t value;
} size_cases[] = {
    {"0", 0, 0},
    {"512", 0, 512},
    {"512b", 0, 512},
    {"512B", 0, 512},
    {"1kb", 0, KB},
    {"1KB", 0, KB},
    {"1Kb", 0, KB},
    {"64mb", 0, 64 * MB},
    {"64MB", 0, 64 * MB},
    {"1gb", 0, GB},
    {"3GB", 0, 3 * GB},
    {"007kb", 0, 7 * KB},
    {"18446744073709551615", 0, UINT64_MAX},
    {"18446744073709551615b", 0, UINT64_MAX},
    {"17179869183gb", 0, UINT64_C(17179869183) * GB},
    {"18446744073709551616", -1, 0}, /* 2^64 */
    {"99999999999999999999999", -1, 0},
    {"17179869184gb", -1, 0},        /* 2^34 gb = 2^64 */
    {"18014398509481984kb", -1, 0},  /* 2^54 kb = 2^64 */
    {"", -1, 0},
    {"kb", -1, 0},
    {"b", -1, 0},
    {"-1", -1, 0},
    {"+1", -1, 0},
    {" 1", -1, 0},
    {"1 ", -1, 0},
    {"1 kb", -1, 0},
    {"1.5mb", -1, 0},
    {"1k", -1, 0},
    {"1m", -1, 0},
    {"1tb", -1, 0},
    {"1kbb", -1, 0},
    {"0x10", -1, 0},
    {"1e3", -1, 0},
    {"ten", -1, 0},
};

START_TEST(test_parse_size)
{
    for (size_t i = 0; i < sizeof(size_cases) / sizeof(size_cases[0]); i++) {
        uint64_t value = 12345;
        int rc = config_parse_size(size_cases[i].text, &value);
        ck_assert_msg(rc == size_cases[i].rc, "'%s': rc %d", size_cases[i].text, rc);
        ck_assert_msg(value == (rc == 0 ? size_cases[i].value : 12345), "'%s': %llu",
                      size_cases[i].text, (unsigned long long)value);
    }
    uint64_t value;
    ck_assert_int_eq(config_parse_size(NULL, &value), -1);
}
END_TEST

static const struct {
    const char *text;
    int rc;
    uint64_t ms;
} duration_cases[] = {
    {"0", 0, 0},
    {"0ms", 0, 0},
    {"30", 0, 30000},
    {"500ms", 0, 500},
    {"500MS", 0, 500},
    {"30s", 0, 30000},
    {"30S", 0, 30000},
    {"5m", 0, 300000},
    {"5M", 0, 300000},
    {"1h", 0, 3600000},
    {"1H", 0, 3600000},
    {"10m", 0, 600000},
    {"18446744073709551615ms", 0, UINT64_MAX},
    {"18446744073709551s", 0, UINT64_C(18446744073709551000)},
    {"18446744073709552s", -1, 0},   /* * 1000 overflows */
    {"18446744073709552", -1, 0},    /* plain seconds too */
    {"5124095576030432h", -1, 0},
    {"18446744073709551616ms", -1, 0},
    {"", -1, 0},
    {"ms", -1, 0},
    {"s", -1, 0},
    {"-1s", -1, 0},
    {"+1s", -1, 0},
    {" 1s", -1, 0},
    {"1 s", -1, 0},
    {"1.5s", -1, 0},
    {"1d", -1, 0},
    {"1sec", -1, 0},
    {"1mss", -1, 0},
    {"1us", -1, 0},
    {"PT1S", -1, 0},
};

START_TEST(test_parse_duration)
{
    for (size_t i = 0; i < sizeof(duration_cases) / sizeof(duration_cases[0]); i++) {
        uint64_t ms = 12345;
        int rc = config_parse_duration(duration_cases[i].text, &ms);
        ck_assert_msg(rc == duration_cases[i].rc, "'%s': rc %d", duration_cases[i].text, rc);
        ck_assert_msg(ms == (rc == 0 ? duration_cases[i].ms : 12345), "'%s': %llu",
                      duration_cases[i].text, (unsigned long long)ms);
    }
    uint64_t ms;
    ck_assert_int_eq(config_parse_duration(NULL, &ms), -1);
}
END_TEST

/* ---- defaults -------------------------------------------------------------- */

static void check_strings(const struct config_strings *list, const char *const *items,
                          size_t count)
{
    ck_assert_uint_eq(list->count, count);
    for (size_t i = 0; i < count; i++)
        ck_assert_str_eq(list->items[i], items[i]);
}

static void check_kind(const struct config *c, int index, const char *name, enum config_tier tier,
                       enum config_shape shape, uint64_t ttl_ms, uint64_t l2_ttl_ms, bool cached)
{
    const struct config_kind *kind = &c->kinds[index];
    ck_assert_str_eq(kind->name, name);
    ck_assert_int_eq(kind->tier, tier);
    ck_assert_int_eq(kind->shape, shape);
    ck_assert_uint_eq(kind->ttl_ms, ttl_ms);
    ck_assert_uint_eq(kind->l2_ttl_ms, l2_ttl_ms);
    ck_assert_int_eq(kind->cached, cached);
    ck_assert_int_eq(config_kind_find(c, name, strlen(name)), index);
}

static const struct config_application *find_application(const struct config *c,
                                                          const char *name)
{
    for (size_t i = 0; i < c->application_count; i++) {
        if (strcmp(c->applications[i].name, name) == 0)
            return &c->applications[i];
    }
    ck_abort_msg("no application %s", name);
    return NULL;
}

static void check_builtin_applications(const struct config *c)
{
    static const char *const crm[] = {"credit", "role", "user"};
    static const char *const hrms[] = {"credit", "role", "user", "hierarchy"};
    static const char *const finance[] = {"credit", "role"};
    ck_assert_uint_eq(c->application_count, 3);
    ck_assert_str_eq(c->applications[0].name, "crm");
    ck_assert_str_eq(c->applications[1].name, "hrms");
    ck_assert_str_eq(c->applications[2].name, "finance");
    check_strings(&c->applications[0].kinds, crm, 3);
    check_strings(&c->applications[1].kinds, hrms, 4);
    check_strings(&c->applications[2].kinds, finance, 2);
}

/* Every default of docs/reference.md §9, field by field. */
static void check_defaults(const struct config *c)
{
    static const char *const active[] = {"active"};
    static const char *const channels[] = {"tenantcached:invalidate"};
    const uint64_t hour = 3600000, ten_minutes = 600000;

    ck_assert_int_eq(c->log_level, LOG_LEVEL_INFO);
    ck_assert_uint_eq(c->threads, default_threads());
    ck_assert_uint_ge(c->threads, 1);
    ck_assert_uint_eq(c->shards, 64);
    ck_assert_str_eq(c->application, "all");
    check_strings(&c->active_statuses, active, 1);

    ck_assert_str_eq(c->listen.socket, "/run/tenantcached/tenantcached.sock");
    ck_assert_uint_eq(c->listen.mode, 0660);
    ck_assert_str_eq(c->listen.group, "");
    ck_assert_uint_eq(c->listen.max_clients, 10000);
    ck_assert_uint_eq(c->listen.max_request_bytes, MB);
    ck_assert_uint_eq(c->listen.max_args, 1024);
    ck_assert_uint_eq(c->listen.idle_timeout_ms, 0);
    ck_assert_uint_eq(c->listen.max_reply_backlog, 16 * MB);
    ck_assert_uint_eq(c->listen.max_buffer_memory, 64 * MB);
    ck_assert_uint_eq(c->listen.tracking_max_keys, 1000000);

    ck_assert_str_eq(c->redis.host, "127.0.0.1");
    ck_assert_uint_eq(c->redis.port, 6379);
    ck_assert_str_eq(c->redis.unix_path, "");
    ck_assert_str_eq(c->redis.username, "");
    ck_assert_str_eq(c->redis.password, "");
    ck_assert_str_eq(c->redis.password_file, "");
    ck_assert_uint_eq(c->redis.db, 0);
    check_strings(&c->redis.channels, channels, 1);
    check_strings(&c->redis.patterns, NULL, 0);
    ck_assert_uint_eq(c->redis.connect_timeout_ms, 1000);
    ck_assert_uint_eq(c->redis.reconnect_min_ms, 100);
    ck_assert_uint_eq(c->redis.reconnect_max_ms, 5000);
    ck_assert_int_eq(c->redis.on_reconnect, CONFIG_ON_RECONNECT_FLUSH);
    ck_assert_uint_eq(c->redis.max_stale_ms, 30000);
    ck_assert_uint_eq(c->redis.heartbeat_timeout_ms, 0);
    ck_assert_uint_eq(c->redis.max_message_bytes, MB);
    ck_assert(!c->redis.l2);
    ck_assert_str_eq(c->redis.key_format, "cache:{tenant}:{kind}:{key}");
    check_strings(&c->redis.sentinels, NULL, 0);
    ck_assert_str_eq(c->redis.master_name, "mymaster");
    ck_assert_str_eq(c->redis.sentinel_password, "");
    ck_assert_str_eq(c->redis.stream, "");
    ck_assert_uint_eq(c->redis.stream_batch, 1000);
    ck_assert_str_eq(c->snapshot.path, "");
    ck_assert_uint_eq(c->snapshot.interval_ms, 300000);

    ck_assert_str_eq(c->origin.url, "");
    ck_assert_uint_eq(c->origin.timeout_ms, 500);
    ck_assert_uint_eq(c->origin.negative_ttl_ms, 5000);
    ck_assert_uint_eq(c->origin.max_concurrent, 64);

    ck_assert_uint_eq(c->memory.max_bytes, 256 * MB);
    ck_assert_uint_eq(c->memory.tenant_max_bytes, MB);
    ck_assert_uint_eq(c->memory.max_tenants, 100000);
    ck_assert_double_eq(c->memory.high_watermark, 0.8);
    ck_assert_double_eq(c->memory.low_watermark, 0.7);
    ck_assert_uint_eq(c->memory.hot_reads, 0);
    ck_assert_uint_eq(c->memory.tombstone_ttl_ms, 60000);

    ck_assert_uint_eq(c->kind_count, CONFIG_BUILTIN_KINDS);
    check_kind(c, CONFIG_KIND_CREDIT, "credit", CONFIG_TIER_CRITICAL, CONFIG_SHAPE_CREDIT, 0,
               hour, true);
    check_kind(c, CONFIG_KIND_ROLE, "role", CONFIG_TIER_CRITICAL, CONFIG_SHAPE_ROLE, 0, hour,
               true);
    check_kind(c, CONFIG_KIND_USER, "user", CONFIG_TIER_CRITICAL, CONFIG_SHAPE_USER, 0, hour,
               true);
    check_kind(c, CONFIG_KIND_CONFIG, "config", CONFIG_TIER_CRITICAL, CONFIG_SHAPE_ANY, 0, hour,
               true);
    check_kind(c, CONFIG_KIND_PROFILE, "profile", CONFIG_TIER_REFERENCE, CONFIG_SHAPE_OBJECT,
               hour, hour, true);
    check_kind(c, CONFIG_KIND_HIERARCHY, "hierarchy", CONFIG_TIER_REFERENCE,
               CONFIG_SHAPE_HIERARCHY, 0, hour, true);
    check_kind(c, CONFIG_KIND_AUDIT, "audit", CONFIG_TIER_REFERENCE, CONFIG_SHAPE_ANY,
               ten_minutes, hour, true);
    check_kind(c, CONFIG_KIND_HISTORY, "history", CONFIG_TIER_REFERENCE, CONFIG_SHAPE_ANY,
               ten_minutes, hour, true);

    check_builtin_applications(c);
    ck_assert_uint_eq(c->access_count, 0);
    ck_assert_ptr_null(c->access);
    ck_assert_str_eq(c->metrics.listen, "");
}

START_TEST(test_defaults)
{
    struct config *c = config_defaults();
    check_defaults(c);
    config_free(c);
}
END_TEST

START_TEST(test_empty_files_are_defaults)
{
    static const char *const texts[] = {
        "",
        "\n\n",
        "# only a comment\n",
        "# one\n\n   # two, indented\n# three",
        "---\n",
        "---\n...\n",
        "~\n",
        "{}\n",
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct config *c = load(texts[i]);
        ck_assert_str_eq(c->path, "t.yaml");
        check_defaults(c);
        config_free(c);
    }
}
END_TEST

START_TEST(test_example_file)
{
    struct config *c = config_load("conf/tenantcached.yaml", error);
    ck_assert_msg(c != NULL, "%s", error);
    ck_assert_str_eq(c->path, "conf/tenantcached.yaml");
    /* it documents the defaults, so it changes none */
    check_defaults(c);
    config_free(c);
}
END_TEST

/* The default column of docs/reference.md §9, written out as a config file,
 * loads (so every documented key exists and its default is in range) and
 * gives exactly the defaults of the key tables. The `kinds` table describes
 * its defaults in words and is left out. */
START_TEST(test_documented_defaults)
{
    FILE *file = fopen("docs/reference.md", "r");
    static char yaml[16384];
    char line[1024];
    size_t used = 0, rows = 0;
    bool in_keys = false, in_table = false;
    const char *indent = ""; /* keys of a section are nested under its name */

    ck_assert_ptr_nonnull(file);
    while (fgets(line, sizeof(line), file) != NULL) {
        if (strncmp(line, "## ", 3) == 0) {
            in_keys = strncmp(line, "## 9. Configuration keys", 24) == 0;
            continue;
        }
        if (!in_keys)
            continue;
        if (strncmp(line, "### ", 4) == 0) {
            /* "### Top level", "### `listen`", ... */
            char *name = strchr(line, '`'), *end = name ? strchr(name + 1, '`') : NULL;
            in_table = strncmp(line, "### Top level", 13) == 0;
            indent = "";
            if (end != NULL && strncmp(name, "`kinds`", 7) != 0) {
                in_table = true;
                indent = "  ";
                used += (size_t)snprintf(yaml + used, sizeof(yaml) - used, "%.*s:\n",
                                         (int)(end - name - 1), name + 1);
            }
            continue;
        }
        /* | `key` | `default` | meaning | */
        if (!in_table || strncmp(line, "| `", 3) != 0)
            continue;
        char *key = line + 3, *key_end = strchr(key, '`');
        ck_assert_ptr_nonnull(key_end);
        char *value = strstr(key_end, "| `");
        ck_assert_msg(value != NULL, "no default for %.*s", (int)(key_end - key), key);
        value += 3;
        char *value_end = strstr(value, "` |");
        ck_assert_ptr_nonnull(value_end);
        used += (size_t)snprintf(yaml + used, sizeof(yaml) - used, "%s%.*s: %.*s\n", indent,
                                 (int)(key_end - key), key, (int)(value_end - value), value);
        ck_assert_uint_lt(used, sizeof(yaml));
        rows++;
    }
    fclose(file);
    /* the seven tables hold over fifty keys: the scan did find them */
    ck_assert_uint_ge(rows, 50);

    struct config *c = config_load_buffer("documented.yaml", yaml, used, error);
    ck_assert_msg(c != NULL, "%s\n%s", error, yaml);
    check_defaults(c);
    config_free(c);
}
END_TEST

/* Sections left empty (YAML null) keep their defaults. */
START_TEST(test_null_sections)
{
    struct config *c = load("listen:\nredis:\norigin: ~\nmemory:\nkinds:\napplications:\n"
                            "access:\nmetrics:\n");
    check_defaults(c);
    config_free(c);
}
END_TEST

/* ---- overrides --------------------------------------------------------------- */

START_TEST(test_override_top_level)
{
    struct config *c = load("log_level: DEBUG\n"
                            "threads: 3\n"
                            "shards: 1\n"
                            "application: crm\n"
                            "active_statuses: [active, trial]\n");
    static const char *const statuses[] = {"active", "trial"};
    ck_assert_int_eq(c->log_level, LOG_LEVEL_DEBUG);
    ck_assert_uint_eq(c->threads, 3);
    ck_assert_uint_eq(c->shards, 1);
    ck_assert_str_eq(c->application, "crm");
    check_strings(&c->active_statuses, statuses, 2);
    config_free(c);

    c = load("log_level: warning\nthreads: 0\nshards: 65536\n");
    ck_assert_int_eq(c->log_level, LOG_LEVEL_WARNING);
    ck_assert_uint_eq(c->threads, default_threads());
    ck_assert_uint_eq(c->shards, 65536);
    config_free(c);

    c = load("log_level: error\nthreads: 1024\n");
    ck_assert_int_eq(c->log_level, LOG_LEVEL_ERROR);
    ck_assert_uint_eq(c->threads, 1024);
    config_free(c);

    c = load("log_level: notice\n");
    ck_assert_int_eq(c->log_level, LOG_LEVEL_NOTICE);
    config_free(c);
}
END_TEST

START_TEST(test_override_listen)
{
    struct config *c = load("listen:\n"
                            "  socket: /tmp/x.sock\n"
                            "  mode: 0600\n"
                            "  group: cache\n"
                            "  max_clients: 12\n"
                            "  max_request_bytes: 64\n"
                            "  max_args: 4\n"
                            "  idle_timeout: 90s\n"
                            "  max_reply_backlog: 1kb\n"
                            "  max_buffer_memory: 2mb\n");
    ck_assert_str_eq(c->listen.socket, "/tmp/x.sock");
    ck_assert_uint_eq(c->listen.mode, 0600);
    ck_assert_str_eq(c->listen.group, "cache");
    ck_assert_uint_eq(c->listen.max_clients, 12);
    ck_assert_uint_eq(c->listen.max_request_bytes, 64);
    ck_assert_uint_eq(c->listen.max_args, 4);
    ck_assert_uint_eq(c->listen.idle_timeout_ms, 90000);
    ck_assert_uint_eq(c->listen.max_reply_backlog, KB);
    ck_assert_uint_eq(c->listen.max_buffer_memory, 2 * MB);
    config_free(c);

    /* the mode in its quoted, short and YAML 1.2 forms; the group as null */
    static const struct {
        const char *text;
        unsigned mode;
    } modes[] = {
        {"listen: {mode: \"0660\"}", 0660}, {"listen: {mode: '0777'}", 0777},
        {"listen: {mode: 640}", 0640},      {"listen: {mode: 0o600}", 0600},
        {"listen: {mode: 0}", 0},           {"listen: {mode: \"00644\"}", 0644},
    };
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        c = load(modes[i].text);
        ck_assert_uint_eq(c->listen.mode, modes[i].mode);
        config_free(c);
    }
    c = load("listen:\n  group:\n  max_request_bytes: 1gb\n");
    ck_assert_str_eq(c->listen.group, "");
    ck_assert_uint_eq(c->listen.max_request_bytes, GB);
    config_free(c);
}
END_TEST

START_TEST(test_override_redis)
{
    struct config *c = load("redis:\n"
                            "  host: redis.internal\n"
                            "  port: 6380\n"
                            "  unix: /run/redis/redis.sock\n"
                            "  username: cache\n"
                            "  password: \"p@ss: word\"\n"
                            "  db: 1000\n"
                            "  channels: [a, 'b:c']\n"
                            "  patterns:\n"
                            "    - 'tenantcached:*'\n"
                            "  connect_timeout: 250ms\n"
                            "  reconnect_min: 1ms\n"
                            "  reconnect_max: 1ms\n"
                            "  on_reconnect: keep\n"
                            "  max_stale: 2m\n"
                            "  heartbeat_timeout: 15s\n"
                            "  max_message_bytes: 16\n"
                            "  l2: yes\n"
                            "  key_format: \"{key}|{kind}|{tenant}\"\n"
                            "  stream: tenantcached:log\n"
                            "  stream_batch: 100000\n");
    static const char *const channels[] = {"a", "b:c"};
    static const char *const patterns[] = {"tenantcached:*"};
    ck_assert_str_eq(c->redis.host, "redis.internal");
    ck_assert_uint_eq(c->redis.port, 6380);
    ck_assert_str_eq(c->redis.unix_path, "/run/redis/redis.sock");
    ck_assert_str_eq(c->redis.username, "cache");
    ck_assert_str_eq(c->redis.password, "p@ss: word");
    ck_assert_str_eq(c->redis.password_file, "");
    ck_assert_uint_eq(c->redis.db, 1000);
    check_strings(&c->redis.channels, channels, 2);
    check_strings(&c->redis.patterns, patterns, 1);
    ck_assert_uint_eq(c->redis.connect_timeout_ms, 250);
    ck_assert_uint_eq(c->redis.reconnect_min_ms, 1);
    ck_assert_uint_eq(c->redis.reconnect_max_ms, 1);
    ck_assert_int_eq(c->redis.on_reconnect, CONFIG_ON_RECONNECT_KEEP);
    ck_assert_uint_eq(c->redis.max_stale_ms, 120000);
    ck_assert_uint_eq(c->redis.heartbeat_timeout_ms, 15000);
    ck_assert_uint_eq(c->redis.max_message_bytes, 16);
    ck_assert(c->redis.l2);
    ck_assert_str_eq(c->redis.key_format, "{key}|{kind}|{tenant}");
    ck_assert_str_eq(c->redis.stream, "tenantcached:log");
    ck_assert_uint_eq(c->redis.stream_batch, 100000);
    config_free(c);

    /* patterns alone are enough to subscribe */
    c = load("redis:\n  channels: []\n  patterns: ['x:*']\n  max_message_bytes: 512mb\n");
    ck_assert_uint_eq(c->redis.channels.count, 0);
    ck_assert_uint_eq(c->redis.patterns.count, 1);
    ck_assert_uint_eq(c->redis.max_message_bytes, 512 * MB);
    config_free(c);

    /* Sentinel */
    static const char *const sentinels[] = {"10.0.0.5:26379", "sentinel-b.internal:26380",
                                            "[::1]:26381"};
    c = load("redis:\n"
             "  sentinels: [\"10.0.0.5:26379\", sentinel-b.internal:26380, \"[::1]:26381\"]\n"
             "  master_name: cache-primary\n"
             "  sentinel_password: s3cret\n");
    check_strings(&c->redis.sentinels, sentinels, 3);
    ck_assert_str_eq(c->redis.master_name, "cache-primary");
    ck_assert_str_eq(c->redis.sentinel_password, "s3cret");
    config_free(c);
    c = load("redis:\n  sentinels:\n");
    ck_assert_uint_eq(c->redis.sentinels.count, 0);
    config_free(c);
}
END_TEST

START_TEST(test_booleans)
{
    static const struct {
        const char *word;
        bool value;
    } cases[] = {
        {"true", true}, {"True", true}, {"TRUE", true}, {"yes", true},   {"on", true},
        {"ON", true},   {"\"true\"", true}, {"false", false}, {"False", false}, {"no", false},
        {"off", false}, {"NO", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char text[64];
        snprintf(text, sizeof(text), "redis:\n  l2: %s\n", cases[i].word);
        struct config *c = load(text);
        ck_assert_msg(c->redis.l2 == cases[i].value, "%s", cases[i].word);
        config_free(c);
    }
}
END_TEST

START_TEST(test_override_origin_memory_metrics)
{
    struct config *c = load("origin:\n"
                            "  url: http://127.0.0.1:8080/v1/tenants/{tenant}/{kind}/{key}\n"
                            "  timeout: 2s\n"
                            "  negative_ttl: 1m\n"
                            "  max_concurrent: 1\n"
                            "memory:\n"
                            "  max_bytes: 64kb\n"
                            "  tenant_max_bytes: 1kb\n"
                            "  max_tenants: 1\n"
                            "  high_watermark: 1\n"
                            "  low_watermark: .25\n"
                            "  hot_reads: 10\n"
                            "  tombstone_ttl: 1500ms\n"
                            "metrics:\n"
                            "  listen: 127.0.0.1:9187\n");
    ck_assert_str_eq(c->origin.url, "http://127.0.0.1:8080/v1/tenants/{tenant}/{kind}/{key}");
    ck_assert_uint_eq(c->origin.timeout_ms, 2000);
    ck_assert_uint_eq(c->origin.negative_ttl_ms, 60000);
    ck_assert_uint_eq(c->origin.max_concurrent, 1);
    ck_assert_uint_eq(c->memory.max_bytes, 64 * KB);
    ck_assert_uint_eq(c->memory.tenant_max_bytes, KB);
    ck_assert_uint_eq(c->memory.max_tenants, 1);
    ck_assert_double_eq(c->memory.high_watermark, 1.0);
    ck_assert_double_eq(c->memory.low_watermark, 0.25);
    ck_assert_uint_eq(c->memory.hot_reads, 10);
    ck_assert_uint_eq(c->memory.tombstone_ttl_ms, 1500);
    ck_assert_str_eq(c->metrics.listen, "127.0.0.1:9187");
    config_free(c);

    c = load("memory: {max_bytes: 4gb, tenant_max_bytes: 4gb}\nmetrics: {listen: '[::1]:1'}\n"
             "origin: {url: 'http://o/{tenant}/{kind}/{key}?k={key}'}\n");
    ck_assert_uint_eq(c->memory.max_bytes, 4 * GB);
    ck_assert_uint_eq(c->memory.tenant_max_bytes, 4 * GB);
    ck_assert_str_eq(c->metrics.listen, "[::1]:1");
    ck_assert_str_eq(c->origin.url, "http://o/{tenant}/{kind}/{key}?k={key}");
    config_free(c);
}
END_TEST

/* ---- kinds and applications ---------------------------------------------------- */

START_TEST(test_kinds_merge)
{
    struct config *c = load("kinds:\n"
                            "  credit: {tier: reference, ttl: 30s}\n"
                            "  audit:\n"
                            "    ttl: 0\n"
                            "    l2_ttl: 5m\n"
                            "  feature_flags: {tier: critical, ttl: 5m}\n"
                            "  Notes-2:\n"
                            "  profile: {}\n");
    const uint64_t hour = 3600000;
    ck_assert_uint_eq(c->kind_count, CONFIG_BUILTIN_KINDS + 2);
    check_kind(c, CONFIG_KIND_CREDIT, "credit", CONFIG_TIER_REFERENCE, CONFIG_SHAPE_CREDIT,
               30000, hour, true);
    check_kind(c, CONFIG_KIND_ROLE, "role", CONFIG_TIER_CRITICAL, CONFIG_SHAPE_ROLE, 0, hour,
               true);
    check_kind(c, CONFIG_KIND_PROFILE, "profile", CONFIG_TIER_REFERENCE, CONFIG_SHAPE_OBJECT,
               hour, hour, true);
    check_kind(c, CONFIG_KIND_AUDIT, "audit", CONFIG_TIER_REFERENCE, CONFIG_SHAPE_ANY, 0,
               300000, true);
    check_kind(c, CONFIG_BUILTIN_KINDS, "feature_flags", CONFIG_TIER_CRITICAL,
               CONFIG_SHAPE_ANY, 300000, hour, true);
    /* a new kind with no settings: opaque, reference, no expiry */
    check_kind(c, CONFIG_BUILTIN_KINDS + 1, "Notes-2", CONFIG_TIER_REFERENCE, CONFIG_SHAPE_ANY,
               0, hour, true);
    ck_assert_int_eq(config_kind_find(c, "feature_flagsX", 13), CONFIG_BUILTIN_KINDS);
    ck_assert_int_eq(config_kind_find(c, "feature", 7), -1);
    ck_assert_int_eq(config_kind_find(c, "notes-2", 7), -1);
    ck_assert_int_eq(config_kind_find(c, "", 0), -1);
    config_free(c);
}
END_TEST

START_TEST(test_kinds_limit)
{
    /* 56 new kinds fill the table of 64; one more is refused */
    char text[4096] = "kinds:\n";
    for (int i = 0; i < CONFIG_MAX_KINDS - CONFIG_BUILTIN_KINDS; i++) {
        size_t used = strlen(text);
        snprintf(text + used, sizeof(text) - used, "  k%d: {}\n", i);
    }
    struct config *c = load(text);
    ck_assert_uint_eq(c->kind_count, CONFIG_MAX_KINDS);
    ck_assert_int_eq(config_kind_find(c, "k55", 3), CONFIG_MAX_KINDS - 1);
    config_free(c);
    strcat(text, "  one_more: {}\n");
    expect_error(text, "t.yaml:58:3: too many kinds (at most 64)");
}
END_TEST

static void check_cached(const struct config *c, const char *const *names, size_t count)
{
    for (size_t k = 0; k < c->kind_count; k++) {
        bool expected = false;
        for (size_t i = 0; i < count; i++)
            expected |= strcmp(c->kinds[k].name, names[i]) == 0;
        ck_assert_msg(c->kinds[k].cached == expected, "kind %s cached %d", c->kinds[k].name,
                      c->kinds[k].cached);
    }
}

START_TEST(test_application_filter)
{
    static const char *const hrms[] = {"credit", "role", "user", "hierarchy"};
    static const char *const finance[] = {"credit", "role"};
    static const char *const crm[] = {"credit", "role", "user"};
    static const char *const billing[] = {"invoice", "credit"};
    static const char *const everything[] = {"credit", "role",  "user",  "config", "profile",
                                             "hierarchy", "audit", "history", "invoice"};

    struct config *c = load("application: hrms\n");
    check_cached(c, hrms, 4);
    config_free(c);

    c = load("application: finance\n");
    check_cached(c, finance, 2);
    config_free(c);

    c = load("application: crm\n");
    check_cached(c, crm, 3);
    config_free(c);

    /* an application may name a kind defined further down, and come before its use */
    c = load("application: billing\n"
             "applications:\n"
             "  billing: [invoice, credit]\n"
             "kinds:\n"
             "  invoice: {tier: critical}\n");
    check_cached(c, billing, 2);
    ck_assert_uint_eq(c->application_count, 4);
    check_strings(&find_application(c, "billing")->kinds, billing, 2);
    config_free(c);

    c = load("application: all\nkinds: {invoice: {}}\n");
    check_cached(c, everything, 9);
    config_free(c);
}
END_TEST

START_TEST(test_applications_merge)
{
    static const char *const crm[] = {"user"};
    static const char *const hrms[] = {"credit", "role", "user", "hierarchy"};
    static const char *const ops[] = {"config", "audit", "history"};
    struct config *c = load("applications:\n"
                            "  crm: [user]\n"
                            "  ops:\n"
                            "    - config\n"
                            "    - audit\n"
                            "    - history\n"
                            "application: crm\n");
    ck_assert_uint_eq(c->application_count, 4);
    check_strings(&find_application(c, "crm")->kinds, crm, 1);
    check_strings(&find_application(c, "hrms")->kinds, hrms, 4);
    check_strings(&find_application(c, "ops")->kinds, ops, 3);
    check_cached(c, crm, 1);
    config_free(c);
}
END_TEST

/* ---- access ---------------------------------------------------------------------- */

START_TEST(test_access_rules)
{
    struct config *c = load("access:\n"
                            "  - {user: www-data, tenants: [acme, globex], admin: false}\n"
                            "  - {gid: 0, tenants: \"*\", admin: true}\n"
                            "  - uid: 1000\n"
                            "    tenants: []\n"
                            "  - group: crm\n"
                            "    tenants:\n"
                            "      - a.b_c-9\n"
                            "    admin: yes\n"
                            "  - {uid: 4294967294, tenants: '*'}\n");
    static const char *const tenants[] = {"acme", "globex"};
    static const char *const one[] = {"a.b_c-9"};
    ck_assert_uint_eq(c->access_count, 5);

    ck_assert_int_eq(c->access[0].match, CONFIG_ACCESS_USER);
    ck_assert_str_eq(c->access[0].name, "www-data");
    ck_assert(!c->access[0].all_tenants);
    check_strings(&c->access[0].tenants, tenants, 2);
    ck_assert(!c->access[0].admin);

    ck_assert_int_eq(c->access[1].match, CONFIG_ACCESS_GID);
    ck_assert_uint_eq(c->access[1].id, 0);
    ck_assert_ptr_null(c->access[1].name);
    ck_assert(c->access[1].all_tenants);
    ck_assert_uint_eq(c->access[1].tenants.count, 0);
    ck_assert(c->access[1].admin);

    ck_assert_int_eq(c->access[2].match, CONFIG_ACCESS_UID);
    ck_assert_uint_eq(c->access[2].id, 1000);
    ck_assert(!c->access[2].all_tenants);
    ck_assert_uint_eq(c->access[2].tenants.count, 0);
    ck_assert(!c->access[2].admin);

    ck_assert_int_eq(c->access[3].match, CONFIG_ACCESS_GROUP);
    ck_assert_str_eq(c->access[3].name, "crm");
    check_strings(&c->access[3].tenants, one, 1);
    ck_assert(c->access[3].admin);

    ck_assert_int_eq(c->access[4].match, CONFIG_ACCESS_UID);
    ck_assert_uint_eq(c->access[4].id, 4294967294u);
    ck_assert(c->access[4].all_tenants);
    config_free(c);
}
END_TEST

/* ---- password_file and files ------------------------------------------------------ */

START_TEST(test_password_file)
{
    static const struct {
        const char *content;
        const char *password;
    } cases[] = {
        {"s3cret\nsecond line\n", "s3cret"},
        {"s3cret", "s3cret"},
        {"s3cret\r\n", "s3cret"},
        {"with space \n", "with space "},
        {"\n", ""},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *path = temp_file(cases[i].content, strlen(cases[i].content));
        char text[256];
        snprintf(text, sizeof(text), "redis:\n  password: ignored\n  password_file: %s\n", path);
        struct config *c = load(text);
        ck_assert_str_eq(c->redis.password, cases[i].password);
        ck_assert_str_eq(c->redis.password_file, path);
        config_free(c);
        unlink(path);
    }

    /* password_file overrides password whichever comes first */
    const char *path = temp_file("from-file\n", 10);
    char text[256];
    snprintf(text, sizeof(text), "redis: {password_file: '%s', password: inline}\n", path);
    struct config *c = load(text);
    ck_assert_str_eq(c->redis.password, "from-file");
    config_free(c);
    unlink(path);
}
END_TEST

START_TEST(test_password_file_errors)
{
    expect_error("redis:\n  password_file: /nonexistent/tenantcached.pw\n",
                 "t.yaml:2:3: cannot read password_file '/nonexistent/tenantcached.pw': "
                 "No such file or directory");
    expect_error("redis: {password_file: /}\n",
                 "t.yaml:1:9: cannot read password_file '/': Is a directory");
    char content[5000];
    memset(content, 'x', sizeof(content));
    const char *path = temp_file(content, sizeof(content));
    char text[128], expected[256];
    snprintf(text, sizeof(text), "redis:\n  password_file: %s\n", path);
    snprintf(expected, sizeof(expected),
             "t.yaml:2:3: the first line of password_file '%s' is longer than 4096 bytes", path);
    expect_error(text, expected);
    unlink(path);
}
END_TEST

START_TEST(test_load_file_errors)
{
    ck_assert_ptr_null(config_load("/nonexistent/tenantcached.yaml", error));
    ck_assert_str_eq(error,
                     "/nonexistent/tenantcached.yaml: cannot open: No such file or directory");

    ck_assert_ptr_null(config_load("/", error));
    ck_assert_str_eq(error, "/: cannot read: Is a directory");

    /* 1 MiB is the limit */
    size_t size = 1024 * 1024 + 1;
    char *big = malloc(size);
    memset(big, '#', size);
    big[size - 1] = '\n';
    const char *path = temp_file(big, size);
    char expected[128];
    snprintf(expected, sizeof(expected), "%s: larger than 1048576 bytes", path);
    ck_assert_ptr_null(config_load(path, error));
    ck_assert_str_eq(error, expected);
    unlink(path);

    /* ... and a file of exactly 1 MiB of comments loads */
    path = temp_file(big + 1, size - 1);
    struct config *c = config_load(path, error);
    ck_assert_msg(c != NULL, "%s", error);
    ck_assert_str_eq(c->path, path);
    config_free(c);
    unlink(path);
    free(big);

    path = temp_file("shards: 3\n", 10);
    snprintf(expected, sizeof(expected), "%s:1:9: 'shards' must be a power of two, got 3", path);
    ck_assert_ptr_null(config_load(path, error));
    ck_assert_str_eq(error, expected);
    unlink(path);
}
END_TEST

/* ---- errors ------------------------------------------------------------------------ */

static const struct {
    const char *text;
    const char *error;
} error_cases[] = {
    /* unknown keys */
    {"shards: 64\nbogus: 1\n", "t.yaml:2:1: unknown key 'bogus'"},
    {"memory:\n  max_bytes: 1mb\n  max_byte: 1mb\n",
     "t.yaml:3:3: unknown key 'max_byte' in 'memory'"},
    {"Shards: 64\n", "t.yaml:1:1: unknown key 'Shards'"},
    {"redis:\n  socket: /x\n", "t.yaml:2:3: unknown key 'socket' in 'redis'"},
    {"kinds:\n  audit: {ttl: 1m, tll: 1m}\n", "t.yaml:2:20: unknown key 'tll' in 'kinds.audit'"},
    {"kinds:\n  audit:\n    shape: credit\n",
     "t.yaml:3:5: unknown key 'shape' in 'kinds.audit'"},
    {"access:\n  - {uid: 1, tenants: '*', root: true}\n",
     "t.yaml:2:28: unknown key 'root' in 'access'"},
    {"[1, 2]\n", "t.yaml:1:1: the configuration must be a mapping, not a list"},
    {"shards\n", "t.yaml:1:1: the configuration must be a mapping, not a scalar"},
    {"? [a]\n: 1\n", "t.yaml:1:3: keys must be scalars, not a list"},
    {"listen:\n  ? {a: 1}\n  : 1\n", "t.yaml:2:5: keys in 'listen' must be scalars, not a mapping"},

    /* duplicate keys */
    {"redis:\n  port: 6379\n  host: h\n  port: 6380\n",
     "t.yaml:4:3: duplicate key 'port' in 'redis'"},
    {"shards: 64\nthreads: 1\nshards: 64\n", "t.yaml:3:1: duplicate key 'shards'"},
    {"listen: {}\nlisten: {}\n", "t.yaml:2:1: duplicate key 'listen'"},
    {"kinds:\n  role: {tier: critical}\n  role: {}\n",
     "t.yaml:3:3: duplicate key 'role' in 'kinds'"},
    {"kinds:\n  new: {}\n  new: {}\n", "t.yaml:3:3: duplicate key 'new' in 'kinds'"},
    {"kinds:\n  audit: {ttl: 1s, ttl: 2s}\n", "t.yaml:2:20: duplicate key 'ttl' in 'kinds.audit'"},
    {"applications:\n  crm: [user]\n  crm: [role]\n",
     "t.yaml:3:3: duplicate key 'crm' in 'applications'"},
    {"applications:\n  ops: [user]\n  ops: [role]\n",
     "t.yaml:3:3: duplicate key 'ops' in 'applications'"},
    {"access:\n  - {uid: 1, tenants: '*', tenants: [a]}\n",
     "t.yaml:2:28: duplicate key 'tenants' in 'access'"},
    {"access:\n  - {uid: 1, uid: 2, tenants: '*'}\n",
     "t.yaml:2:14: duplicate key 'uid' in 'access'"},
    {"access:\n  - {admin: true, uid: 1, admin: false, tenants: '*'}\n",
     "t.yaml:2:27: duplicate key 'admin' in 'access'"},

    /* wrong types */
    {"listen: [a]\n", "t.yaml:1:9: 'listen' must be a mapping, not a list"},
    {"listen: /tmp/sock\n", "t.yaml:1:9: 'listen' must be a mapping, not a scalar"},
    {"redis:\n  port: [6379]\n", "t.yaml:2:9: 'redis.port' must be a scalar, not a list"},
    {"redis:\n  host: {a: b}\n", "t.yaml:2:9: 'redis.host' must be a scalar, not a mapping"},
    {"redis:\n  channels: tenantcached:invalidate\n",
     "t.yaml:2:13: 'redis.channels' must be a list, not a scalar"},
    {"redis:\n  channels: [a, [b]]\n",
     "t.yaml:2:17: items of 'redis.channels' must be scalars, not a list"},
    {"active_statuses: {a: 1}\n", "t.yaml:1:18: 'active_statuses' must be a list, not a mapping"},
    {"kinds: [credit]\n", "t.yaml:1:8: 'kinds' must be a mapping, not a list"},
    {"kinds:\n  audit: 10m\n", "t.yaml:2:10: 'kinds.audit' must be a mapping, not a scalar"},
    {"applications:\n  crm: credit\n",
     "t.yaml:2:8: 'applications.crm' must be a list, not a scalar"},
    {"access: {uid: 0}\n", "t.yaml:1:9: 'access' must be a list, not a mapping"},
    {"access:\n  - uid\n", "t.yaml:2:5: rules in 'access' must be mappings, not a scalar"},
    {"access:\n  - {uid: [0], tenants: '*'}\n",
     "t.yaml:2:11: 'access.uid' must be a scalar, not a list"},
    {"access:\n  - {uid: 0, tenants: acme}\n",
     "t.yaml:2:23: 'access.tenants' must be \"*\" or a list of tenants, got acme"},
    {"access:\n  - {uid: 0, tenants: {a: 1}}\n",
     "t.yaml:2:23: 'access.tenants' must be a list, not a mapping"},

    /* malformed scalars */
    {"memory:\n  max_bytes: 64xb\n",
     "t.yaml:2:14: invalid size '64xb' for 'memory.max_bytes' (a number with b, kb, mb or gb)"},
    {"memory:\n  max_bytes: 1.5gb\n",
     "t.yaml:2:14: invalid size '1.5gb' for 'memory.max_bytes' (a number with b, kb, mb or gb)"},
    {"memory:\n  max_bytes: -1\n",
     "t.yaml:2:14: invalid size '-1' for 'memory.max_bytes' (a number with b, kb, mb or gb)"},
    {"memory:\n  max_bytes: 99999999999999999999\n",
     "t.yaml:2:14: invalid size '99999999999999999999' for 'memory.max_bytes' (a number with b, "
     "kb, mb or gb)"},
    {"origin:\n  timeout: 5x\n",
     "t.yaml:2:12: invalid duration '5x' for 'origin.timeout' (a number with ms, s, m or h)"},
    {"redis:\n  max_stale: 1d\n",
     "t.yaml:2:14: invalid duration '1d' for 'redis.max_stale' (a number with ms, s, m or h)"},
    {"kinds:\n  audit: {ttl: forever}\n",
     "t.yaml:2:16: invalid duration 'forever' for 'kinds.audit.ttl' (a number with ms, s, m or "
     "h)"},
    {"redis:\n  l2: maybe\n", "t.yaml:2:7: invalid boolean 'maybe' for 'redis.l2' (true or false)"},
    {"redis:\n  l2: 1\n", "t.yaml:2:7: invalid boolean '1' for 'redis.l2' (true or false)"},
    {"access:\n  - {uid: 0, tenants: '*', admin: sure}\n",
     "t.yaml:2:35: invalid boolean 'sure' for 'access.admin' (true or false)"},
    {"redis:\n  port: 63a\n", "t.yaml:2:9: invalid integer '63a' for 'redis.port'"},
    {"redis:\n  port: -1\n", "t.yaml:2:9: invalid integer '-1' for 'redis.port'"},
    {"redis:\n  port: 0x10\n", "t.yaml:2:9: invalid integer '0x10' for 'redis.port'"},
    {"threads: 1.5\n", "t.yaml:1:10: invalid integer '1.5' for 'threads'"},
    {"access:\n  - {uid: root, tenants: '*'}\n",
     "t.yaml:2:11: invalid integer 'root' for 'access.uid'"},
    {"redis:\n  port:\n", "t.yaml:2:8: missing value for 'redis.port'"},
    {"redis:\n  l2: ''\n", "t.yaml:2:7: missing value for 'redis.l2'"},
    {"memory:\n  high_watermark: high\n",
     "t.yaml:2:19: invalid number 'high' for 'memory.high_watermark'"},
    {"memory:\n  high_watermark: 0.8x\n",
     "t.yaml:2:19: invalid number '0.8x' for 'memory.high_watermark'"},
    {"listen:\n  mode: 0999\n",
     "t.yaml:2:9: invalid mode '0999' for 'listen.mode' (an octal number such as 0660)"},
    {"listen:\n  mode: rw-rw----\n",
     "t.yaml:2:9: invalid mode 'rw-rw----' for 'listen.mode' (an octal number such as 0660)"},
    {"listen:\n  mode: \"01000\"\n", "t.yaml:2:9: 'listen.mode' must be at most 0777, got 01000"},
    {"log_level: verbose\n",
     "t.yaml:1:12: 'log_level' must be debug, info, notice, warning or error, got verbose"},
    {"redis:\n  on_reconnect: drop\n",
     "t.yaml:2:17: 'redis.on_reconnect' must be flush or keep, got drop"},
    {"kinds:\n  audit: {tier: gold}\n",
     "t.yaml:2:17: 'kinds.audit.tier' must be critical or reference, got gold"},
    {"redis:\n  password: \"a\\0b\"\n", "t.yaml:2:13: 'redis.password' contains a NUL byte"},

    /* out of range */
    {"shards: 48\n", "t.yaml:1:9: 'shards' must be a power of two, got 48"},
    {"shards: 0\n", "t.yaml:1:9: 'shards' must be between 1 and 65536, got 0"},
    {"shards: 131072\n", "t.yaml:1:9: 'shards' must be between 1 and 65536, got 131072"},
    {"threads: 1025\n", "t.yaml:1:10: 'threads' must be between 0 and 1024, got 1025"},
    {"threads: 99999999999999999999999\n",
     "t.yaml:1:10: 'threads' must be between 0 and 1024, got 99999999999999999999999"},
    {"listen:\n  max_clients: 0\n",
     "t.yaml:2:16: 'listen.max_clients' must be between 1 and 1048576, got 0"},
    {"listen:\n  max_request_bytes: 63\n",
     "t.yaml:2:22: 'listen.max_request_bytes' must be between 64b and 1gb, got 63"},
    {"listen:\n  max_request_bytes: 1025mb\n",
     "t.yaml:2:22: 'listen.max_request_bytes' must be between 64b and 1gb, got 1025mb"},
    {"listen:\n  max_args: 3\n",
     "t.yaml:2:13: 'listen.max_args' must be between 4 and 1048576, got 3"},
    {"listen:\n  max_reply_backlog: 1023\n",
     "t.yaml:2:22: 'listen.max_reply_backlog' must be between 1kb and 1024gb, got 1023"},
    {"listen:\n  max_buffer_memory: 1023kb\n",
     "t.yaml:2:22: 'listen.max_buffer_memory' must be between 1mb and 1024gb, got 1023kb"},
    {"redis:\n  port: 0\n", "t.yaml:2:9: 'redis.port' must be between 1 and 65535, got 0"},
    {"redis:\n  port: 65536\n", "t.yaml:2:9: 'redis.port' must be between 1 and 65535, got 65536"},
    {"redis:\n  db: 1001\n", "t.yaml:2:7: 'redis.db' must be between 0 and 1000, got 1001"},
    {"snapshot:\n  interval: 8761h\n",
     "t.yaml:2:13: 'snapshot.interval' must be between 0 and 8760h, got 8761h"},
    {"snapshot:\n  depth: 1\n", "t.yaml:2:3: unknown key 'depth' in 'snapshot'"},
    {"redis:\n  stream_batch: 0\n",
     "t.yaml:2:17: 'redis.stream_batch' must be between 1 and 100000, got 0"},
    {"redis:\n  stream_batch: 100001\n",
     "t.yaml:2:17: 'redis.stream_batch' must be between 1 and 100000, got 100001"},
    {"redis:\n  reconnect_min: 0\n",
     "t.yaml:2:18: 'redis.reconnect_min' must be between 1ms and 8760h, got 0"},
    {"redis:\n  connect_timeout: 0ms\n",
     "t.yaml:2:20: 'redis.connect_timeout' must be between 1ms and 8760h, got 0ms"},
    {"listen:\n  idle_timeout: 8761h\n",
     "t.yaml:2:17: 'listen.idle_timeout' must be between 0 and 8760h, got 8761h"},
    {"redis:\n  max_message_bytes: 15\n",
     "t.yaml:2:22: 'redis.max_message_bytes' must be between 16b and 512mb, got 15"},
    {"redis:\n  max_message_bytes: 513mb\n",
     "t.yaml:2:22: 'redis.max_message_bytes' must be between 16b and 512mb, got 513mb"},
    {"origin:\n  max_concurrent: 0\n",
     "t.yaml:2:19: 'origin.max_concurrent' must be between 1 and 65536, got 0"},
    {"memory:\n  max_bytes: 63kb\n",
     "t.yaml:2:14: 'memory.max_bytes' must be between 64kb and 1024gb, got 63kb"},
    {"memory:\n  tenant_max_bytes: 1000\n",
     "t.yaml:2:21: 'memory.tenant_max_bytes' must be between 1kb and 1024gb, got 1000"},
    {"memory:\n  max_tenants: 0\n",
     "t.yaml:2:16: 'memory.max_tenants' must be between 1 and 4294967295, got 0"},
    {"memory:\n  high_watermark: 0\n",
     "t.yaml:2:19: 'memory.high_watermark' must be above 0 and at most 1, got 0"},
    {"memory:\n  high_watermark: 1.01\n",
     "t.yaml:2:19: 'memory.high_watermark' must be above 0 and at most 1, got 1.01"},
    {"access:\n  - {uid: 4294967295, tenants: '*'}\n",
     "t.yaml:2:11: 'access.uid' must be between 0 and 4294967294, got 4294967295"},

    /* values that must name something, or be well formed */
    {"active_statuses: []\n", "t.yaml:1:18: 'active_statuses' must not be empty"},
    {"active_statuses:\n", "t.yaml:1:17: 'active_statuses' must not be empty"},
    {"active_statuses: [active, '']\n", "t.yaml:1:27: empty item in 'active_statuses'"},
    {"listen:\n  socket: ''\n", "t.yaml:2:11: 'listen.socket' must not be empty"},
    {"listen:\n  socket: /run/tenantcached/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sock\n",
     "t.yaml:2:11: 'listen.socket' is too long for a Unix socket (113 bytes, at most 107)"},
    {"redis:\n  host: ''\n", "t.yaml:2:9: 'redis.host' must not be empty"},
    {"redis:\n  channels: []\n",
     "t.yaml:2:13: 'redis.channels' and 'redis.patterns' are both empty: nothing to subscribe to"},
    {"redis:\n  key_format: 'cache:{tenant}:{kind}'\n",
     "t.yaml:2:15: 'redis.key_format' must contain {key}"},
    {"redis:\n  key_format: 'c:{tenant}:{kind}:{key}:{version}'\n",
     "t.yaml:2:15: unknown placeholder '{version}' in 'redis.key_format' (use {tenant}, {kind} and "
     "{key})"},
    {"redis:\n  key_format: 'c:{tenant}:{kind}:{key}:{key}'\n",
     "t.yaml:2:15: 'redis.key_format' must contain {key} only once"},
    {"redis:\n  key_format: 'c:{tenant}:{kind}:{key'\n",
     "t.yaml:2:15: unterminated '{' in 'redis.key_format'"},
    {"origin:\n  url: https://api/{tenant}/{kind}/{key}\n",
     "t.yaml:2:8: 'origin.url' must use http:// (libevent's HTTP client has no TLS; put a local "
     "TLS proxy in front of the origin)"},
    {"origin:\n  url: ftp://api/{tenant}/{kind}/{key}\n",
     "t.yaml:2:8: 'origin.url' must be empty or an http://HOST/... URL, got "
     "ftp://api/{tenant}/{kind}/{key}"},
    {"origin:\n  url: http://api/{tenant}/{key}\n", "t.yaml:2:8: 'origin.url' must contain {kind}"},
    {"metrics:\n  listen: 9187\n",
     "t.yaml:2:11: 'metrics.listen' must be empty or HOST:PORT, got 9187"},
    {"metrics:\n  listen: ':9187'\n",
     "t.yaml:2:11: 'metrics.listen' must be empty or HOST:PORT, got :9187"},
    {"metrics:\n  listen: 127.0.0.1:65536\n",
     "t.yaml:2:11: the port of 'metrics.listen' must be between 1 and 65535, got 65536"},
    {"kinds:\n  'bad kind': {}\n",
     "t.yaml:2:3: invalid kind name 'bad kind' (1 to 32 characters of A-Z a-z 0-9 _ -)"},
    {"kinds:\n  aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa: {}\n",
     "t.yaml:2:3: invalid kind name 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa' (1 to 32 characters of "
     "A-Z a-z 0-9 _ -)"},
    {"applications:\n  all: [credit]\n",
     "t.yaml:2:3: 'all' is reserved and cannot name an application"},
    {"applications:\n  'a:b': [credit]\n",
     "t.yaml:2:3: invalid application name 'a:b' (1 to 32 characters of A-Z a-z 0-9 _ -)"},
    {"applications:\n  ops: []\n", "t.yaml:2:8: 'applications.ops' must not be empty"},
    {"applications:\n  ops: [credit, credit]\n",
     "t.yaml:2:17: kind 'credit' is listed twice in 'applications.ops'"},
    {"applications:\n  ops: [credit, invoices]\n",
     "t.yaml:2:17: unknown kind 'invoices' in 'applications.ops'"},
    {"applications:\n  crm: [credit, 'bad kind']\n",
     "t.yaml:2:17: invalid kind name 'bad kind' in 'applications.crm'"},
    {"application: payroll\n",
     "t.yaml:1:14: unknown application 'payroll' (known: all, crm, hrms, finance)"},
    {"applications:\n  ops: [config]\napplication: pos\n",
     "t.yaml:3:14: unknown application 'pos' (known: all, crm, hrms, finance, ops)"},
    {"application: ''\n", "t.yaml:1:14: unknown application '' (known: all, crm, hrms, finance)"},
    {"access:\n  - {tenants: '*'}\n",
     "t.yaml:2:5: an access rule needs one of uid, user, gid or group"},
    {"access:\n  - uid: 0\n    admin: true\n", "t.yaml:2:5: an access rule needs 'tenants'"},
    {"access:\n  - {uid: 0, group: wheel, tenants: '*'}\n",
     "t.yaml:2:14: 'group' after 'uid': an access rule takes exactly one of uid, user, gid, group"},
    {"access:\n  - {user: '', tenants: '*'}\n", "t.yaml:2:12: missing value for 'access.user'"},
    {"access:\n  - {user: x, tenants: [acme, 'a:b']}\n",
     "t.yaml:2:31: invalid tenant 'a:b' in 'access.tenants' (1 to 64 characters of A-Z a-z 0-9 . "
     "_ -)"},

    /* redis.sentinels and redis.master_name */
    {"redis:\n  sentinels: [\"10.0.0.5\"]\n",
     "t.yaml:2:15: items of 'redis.sentinels' must be HOST:PORT, got 10.0.0.5"},
    {"redis:\n  sentinels:\n    - \"127.0.0.1:26379\"\n    - \":26379\"\n",
     "t.yaml:4:7: items of 'redis.sentinels' must be HOST:PORT, got :26379"},
    {"redis:\n  sentinels: [\"a:0\"]\n",
     "t.yaml:2:15: the port of 'redis.sentinels' item a:0 must be between 1 and 65535"},
    {"redis:\n  sentinels: [\"a:65536\"]\n",
     "t.yaml:2:15: the port of 'redis.sentinels' item a:65536 must be between 1 and 65535"},
    {"redis:\n  sentinels: [\"a:26379x\"]\n",
     "t.yaml:2:15: the port of 'redis.sentinels' item a:26379x must be between 1 and 65535"},
    {"redis:\n  sentinels: \"a:1\"\n", "t.yaml:2:14: 'redis.sentinels' must be a list, not a scalar"},
    {"redis:\n  sentinels: [\"\"]\n", "t.yaml:2:15: empty item in 'redis.sentinels'"},
    {"redis:\n  master_name: \"\"\n", "t.yaml:2:16: 'redis.master_name' must not be empty"},

    /* checks across keys, at the position of the key the file set */
    {"memory:\n  low_watermark: 0.9\n",
     "t.yaml:2:18: 'memory.low_watermark' (0.9) must be below 'memory.high_watermark' (0.8)"},
    {"memory:\n  high_watermark: 0.5\n",
     "t.yaml:2:19: 'memory.low_watermark' (0.7) must be below 'memory.high_watermark' (0.5)"},
    {"memory:\n  high_watermark: 0.6\n  low_watermark: 0.6\n",
     "t.yaml:3:18: 'memory.low_watermark' (0.6) must be below 'memory.high_watermark' (0.6)"},
    {"redis:\n  reconnect_min: 10s\n",
     "t.yaml:2:18: 'redis.reconnect_min' (10s) must not exceed 'redis.reconnect_max' (5s)"},
    {"redis:\n  reconnect_max: 50ms\n",
     "t.yaml:2:18: 'redis.reconnect_min' (100ms) must not exceed 'redis.reconnect_max' (50ms)"},
    {"memory:\n  tenant_max_bytes: 2mb\n  max_bytes: 1mb\n",
     "t.yaml:2:21: 'memory.tenant_max_bytes' (2mb) must not exceed 'memory.max_bytes' (1mb)"},
    {"memory:\n  max_bytes: 512kb\n",
     "t.yaml:2:14: 'memory.tenant_max_bytes' (1mb) must not exceed 'memory.max_bytes' (512kb)"},

    /* YAML itself */
    {"shards: 64\nredis:\n  port: 1\n   host: x\n",
     "t.yaml:4:8: syntax error: mapping values are not allowed in this context"},
    {"bogus: 1\nlisten: {socket: /x\n",
     "t.yaml:3:1: syntax error: did not find expected ',' or '}' (while parsing a flow mapping at "
     "2:9)"},
    {"redis:\n  host: \"unterminated\n",
     "t.yaml:3:1: syntax error: found unexpected end of stream (while scanning a quoted scalar at "
     "2:9)"},
    {"redis:\n\tport: 1\n",
     "t.yaml:2:1: syntax error: found character that cannot start any token (a tab: indent YAML "
     "with spaces)"},
    {"shards: 64\nthreads: \xff\n", "t.yaml:2:10: syntax error: invalid leading UTF-8 octet"},
    {"access:\n  - {gid: 0, tenants: *}\n",
     "t.yaml:2:24: syntax error: did not find expected alphabetic or numeric character (while "
     "scanning an alias at 2:23; write a lone * as \"*\")"},
    {"shards: &n 64\nthreads: *n\n", "t.yaml:2:10: aliases are not supported"},
    {"shards: 64\n---\nshards: 32\n", "t.yaml:2:1: only one YAML document is allowed"},
};

/* One loop iteration per case (_i), so that every failing case is reported. */
START_TEST(test_errors)
{
    const char *text = error_cases[_i].text;
    struct config *config = config_load_buffer("t.yaml", text, strlen(text), error);
    ck_assert_msg(config == NULL, "case %d loaded:\n%s", _i, text);
    ck_assert_msg(strcmp(error, error_cases[_i].error) == 0,
                  "case %d:\n%s\ngot:      %s\nexpected: %s", _i, text, error,
                  error_cases[_i].error);
}
END_TEST

/* A NUL byte inside the buffer is not the end of the text. */
START_TEST(test_nul_in_buffer)
{
    static const char text[] = "shards: 64\n\0threads: 2\n";
    ck_assert_ptr_null(config_load_buffer("t.yaml", text, sizeof(text) - 1, error));
    ck_assert_str_eq(error, "t.yaml:2:1: syntax error: control characters are not allowed");
}
END_TEST

/* The same loader fed every prefix of the example file never crashes or leaks
 * (valgrind), and each refusal names the file. */
START_TEST(test_example_prefixes)
{
    FILE *file = fopen("conf/tenantcached.yaml", "r");
    ck_assert_ptr_nonnull(file);
    static char text[32768];
    size_t len = fread(text, 1, sizeof(text), file);
    fclose(file);
    for (size_t n = 0; n <= len; n += 7) {
        struct config *c = config_load_buffer("p.yaml", text, n, error);
        if (c == NULL)
            ck_assert_msg(strncmp(error, "p.yaml:", 7) == 0, "%s", error);
        config_free(c);
    }
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *parse = tcase_create("parse");
    tcase_add_test(parse, test_parse_size);
    tcase_add_test(parse, test_parse_duration);
    suite_add_tcase(s, parse);

    TCase *load_case = tcase_create("load");
    tcase_add_test(load_case, test_defaults);
    tcase_add_test(load_case, test_empty_files_are_defaults);
    tcase_add_test(load_case, test_example_file);
    tcase_add_test(load_case, test_documented_defaults);
    tcase_add_test(load_case, test_null_sections);
    tcase_add_test(load_case, test_override_top_level);
    tcase_add_test(load_case, test_override_listen);
    tcase_add_test(load_case, test_override_redis);
    tcase_add_test(load_case, test_booleans);
    tcase_add_test(load_case, test_override_origin_memory_metrics);
    tcase_add_test(load_case, test_kinds_merge);
    tcase_add_test(load_case, test_kinds_limit);
    tcase_add_test(load_case, test_application_filter);
    tcase_add_test(load_case, test_applications_merge);
    tcase_add_test(load_case, test_access_rules);
    tcase_add_test(load_case, test_password_file);
    tcase_add_test(load_case, test_password_file_errors);
    tcase_add_test(load_case, test_load_file_errors);
    suite_add_tcase(s, load_case);

    TCase *errors = tcase_create("errors");
    tcase_add_loop_test(errors, test_errors, 0,
                        (int)(sizeof(error_cases) / sizeof(error_cases[0])));
    tcase_add_test(errors, test_nul_in_buffer);
    tcase_add_test(errors, test_example_prefixes);
    tcase_set_timeout(errors, 60);
    suite_add_tcase(s, errors);
    return s;
}

int main(void)
{
    SRunner *runner = srunner_create(config_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failures = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failures ? 1 : 0;
}
