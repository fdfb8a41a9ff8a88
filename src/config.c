/* config.c - loads the YAML configuration of docs/reference.md §9 into a struct config.
 *
 * The loader pulls YAML events (yaml_reader.c) and walks them against tables
 * that say, for each section, which keys exist and how each is typed, stored,
 * bounded and defaulted.
 * The first error stops the load and is reported as FILE:LINE:COLUMN: message.
 * Checks that involve several keys (or keys that may come in any order) run
 * once the whole file has been read, with the marks recorded on the way. */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <unistd.h>

#include "names.h"
#include "util.h"
#include "yaml_reader.h"

#define KB UINT64_C(1024)
#define MB (1024 * KB)
#define GB (1024 * MB)
#define SECOND UINT64_C(1000)
#define MINUTE (60 * SECOND)
#define HOUR (60 * MINUTE)

#define FILE_MAX (1024 * 1024)      /* a config file larger than this is refused */
#define SIZE_LIMIT (1024 * GB)      /* upper bound of the open-ended sizes */
#define DURATION_LIMIT (8760 * HOUR) /* a year: keeps now + duration far from overflow */
#define APPLICATIONS_MAX 1024       /* bounds the duplicate scan over applications */
#define TENANT_NAME_MAX 64
#define PASSWORD_MAX 4096
#define NAME_MAX_LEN 96             /* a qualified key name such as "kinds.NAME.l2_ttl" */
#define SOCKET_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

struct loader;

enum field_type {
    FIELD_STRING,
    FIELD_STRINGS,      /* struct config_strings; min = least number of items */
    FIELD_UINT,         /* unsigned in [min, max] */
    FIELD_SIZE,         /* uint64_t bytes in [min, max] */
    FIELD_DURATION,     /* uint64_t milliseconds in [min, max] */
    FIELD_BOOL,
    FIELD_RATIO,        /* double in (0, 1] */
    FIELD_MODE,         /* unsigned, octal text, at most 0777 */
    FIELD_LOG_LEVEL,
    FIELD_ON_RECONNECT,
    FIELD_TIER,
    FIELD_SECTION,      /* a nested mapping described by another table */
    FIELD_CUSTOM,       /* a handler consumes the value (kinds, applications, access) */
};

/* A check runs after a scalar has been stored; it reports its own error. */
typedef int field_check(struct loader *l, const char *name, const yaml_event_t *value,
                        const void *target);
/* A custom handler consumes the whole value, whose first event it is given. */
typedef int field_parse(struct loader *l, const char *name, const yaml_event_t *value);

struct section;

/* A key's default, in the member its type reads: `number` for the integer,
 * size, duration, mode, boolean and enum types, `ratio` for FIELD_RATIO,
 * `text` for FIELD_STRING and the one item (or NULL: none) of FIELD_STRINGS. */
union field_default {
    uint64_t number;
    double ratio;
    const char *text;
};

struct field {
    const char *key;
    enum field_type type;
    size_t offset;      /* from the base the section is parsed into */
    uint64_t min, max;
    field_check *check;
    const struct section *section;
    field_parse *parse;
    union field_default def; /* what config_defaults() stores; docs/reference.md §9 */
};

struct section {
    const struct field *fields;
    size_t count;
};

/* Where a key and its value were, for the checks that run after the file. */
struct record {
    const struct field *field;
    yaml_mark_t key, value;
};

/* A kind named by an application in the file; it may be defined further down,
 * so it is looked up at the end. */
struct kind_ref {
    const char *kind;   /* owned by the config's application */
    size_t application;
    yaml_mark_t mark;
};

struct loader {
    struct yaml_reader reader;
    struct config *config;
    struct record *records;
    size_t record_count;
    struct kind_ref *refs;
    size_t ref_count;
    size_t current_application; /* the application whose kinds are being read */
};

static int parse_section(struct loader *l, const struct section *section, void *base,
                         const char *where);
static int parse_kinds(struct loader *l, const char *name, const yaml_event_t *value);
static int parse_applications(struct loader *l, const char *name, const yaml_event_t *value);
static int parse_access(struct loader *l, const char *name, const yaml_event_t *value);
static int parse_sentinels(struct loader *l, const char *name, const yaml_event_t *value);
static field_check check_shards, check_not_empty, check_socket_path, check_unix_path,
    check_key_format, check_origin_url, check_metrics_listen;

/* ---- the key tables ------------------------------------------------------ */

#define AT(member) offsetof(struct config, member)
#define KIND_AT(member) offsetof(struct config_kind, member)
#define ROW(key, type, offset, min, max, check, def)                                       \
    {key, type, offset, min, max, check, NULL, NULL, def}
#define NUMBER(value) {.number = (value)}
#define KEY_STRING(key, offset, def, check) \
    ROW(key, FIELD_STRING, offset, 0, 0, check, {.text = (def)})
/* def: the list's one default item, or NULL for an empty list */
#define KEY_STRINGS(key, offset, min, def) \
    ROW(key, FIELD_STRINGS, offset, min, 0, NULL, {.text = (def)})
#define KEY_UINT(key, offset, min, max, def, check) \
    ROW(key, FIELD_UINT, offset, min, max, check, NUMBER(def))
#define KEY_SIZE(key, offset, min, max, def) \
    ROW(key, FIELD_SIZE, offset, min, max, NULL, NUMBER(def))
#define KEY_DURATION(key, offset, min, def) \
    ROW(key, FIELD_DURATION, offset, min, DURATION_LIMIT, NULL, NUMBER(def))
#define KEY_RATIO(key, offset, def) ROW(key, FIELD_RATIO, offset, 0, 0, NULL, {.ratio = (def)})
/* bool, mode and the enum types: def is the stored value */
#define KEY_SCALAR(key, type, offset, def) ROW(key, type, offset, 0, 0, NULL, NUMBER(def))
#define KEY_SECTION(key, section) {key, FIELD_SECTION, 0, 0, 0, NULL, &section, NULL, NUMBER(0)}
#define KEY_CUSTOM(key, parse) {key, FIELD_CUSTOM, 0, 0, 0, NULL, NULL, parse, NUMBER(0)}
#define SECTION(fields) {fields, UTIL_ARRAY_LEN(fields)}

/* One row per key: name, where it is stored, its bounds, its default, and a
 * check that needs more than the bounds. config_defaults() reads the defaults
 * from these rows, so a new key is one row here plus its struct field. */
static const struct field listen_fields[] = {
    KEY_STRING("socket", AT(listen.socket), "/run/tenantcached/tenantcached.sock",
               check_socket_path),
    KEY_SCALAR("mode", FIELD_MODE, AT(listen.mode), 0660),
    KEY_STRING("group", AT(listen.group), "", NULL),
    KEY_UINT("max_clients", AT(listen.max_clients), 1, 1048576, 10000, NULL),
    KEY_SIZE("max_request_bytes", AT(listen.max_request_bytes), 64, GB, MB),
    KEY_UINT("max_args", AT(listen.max_args), 4, 1048576, 1024, NULL),
    KEY_DURATION("idle_timeout", AT(listen.idle_timeout_ms), 0, 0),
    KEY_SIZE("max_reply_backlog", AT(listen.max_reply_backlog), KB, SIZE_LIMIT, 16 * MB),
    KEY_SIZE("max_buffer_memory", AT(listen.max_buffer_memory), MB, SIZE_LIMIT, 64 * MB),
    KEY_UINT("tracking_max_keys", AT(listen.tracking_max_keys), 1, 100000000, 1000000, NULL),
};

static const struct field redis_fields[] = {
    KEY_STRING("host", AT(redis.host), "127.0.0.1", check_not_empty),
    KEY_UINT("port", AT(redis.port), 1, 65535, 6379, NULL),
    KEY_STRING("unix", AT(redis.unix_path), "", check_unix_path),
    KEY_STRING("username", AT(redis.username), "", NULL),
    KEY_STRING("password", AT(redis.password), "", NULL),
    KEY_STRING("password_file", AT(redis.password_file), "", NULL),
    KEY_UINT("db", AT(redis.db), 0, 1000, 0, NULL),
    KEY_STRINGS("channels", AT(redis.channels), 0, "tenantcached:invalidate"),
    KEY_STRINGS("patterns", AT(redis.patterns), 0, NULL),
    KEY_DURATION("connect_timeout", AT(redis.connect_timeout_ms), 1, SECOND),
    KEY_DURATION("reconnect_min", AT(redis.reconnect_min_ms), 1, 100),
    KEY_DURATION("reconnect_max", AT(redis.reconnect_max_ms), 1, 5 * SECOND),
    KEY_SCALAR("on_reconnect", FIELD_ON_RECONNECT, AT(redis.on_reconnect),
               CONFIG_ON_RECONNECT_FLUSH),
    KEY_DURATION("max_stale", AT(redis.max_stale_ms), 1, 30 * SECOND),
    KEY_DURATION("heartbeat_timeout", AT(redis.heartbeat_timeout_ms), 0, 0),
    KEY_SIZE("max_message_bytes", AT(redis.max_message_bytes), 16, 512 * MB, MB),
    KEY_SCALAR("l2", FIELD_BOOL, AT(redis.l2), false),
    KEY_STRING("key_format", AT(redis.key_format), "cache:{tenant}:{kind}:{key}",
               check_key_format),
    KEY_CUSTOM("sentinels", parse_sentinels), /* default: none */
    KEY_STRING("master_name", AT(redis.master_name), "mymaster", check_not_empty),
    KEY_STRING("sentinel_password", AT(redis.sentinel_password), "", NULL),
    KEY_STRING("stream", AT(redis.stream), "", NULL),
    KEY_UINT("stream_batch", AT(redis.stream_batch), 1, 100000, 1000, NULL),
};

static const struct field origin_fields[] = {
    KEY_STRING("url", AT(origin.url), "", check_origin_url),
    KEY_DURATION("timeout", AT(origin.timeout_ms), 1, 500),
    KEY_DURATION("negative_ttl", AT(origin.negative_ttl_ms), 1, 5 * SECOND),
    KEY_UINT("max_concurrent", AT(origin.max_concurrent), 1, 65536, 64, NULL),
};

static const struct field memory_fields[] = {
    KEY_SIZE("max_bytes", AT(memory.max_bytes), 64 * KB, SIZE_LIMIT, 256 * MB),
    KEY_SIZE("tenant_max_bytes", AT(memory.tenant_max_bytes), KB, SIZE_LIMIT, MB),
    KEY_UINT("max_tenants", AT(memory.max_tenants), 1, UINT_MAX, 100000, NULL),
    KEY_RATIO("high_watermark", AT(memory.high_watermark), 0.8),
    KEY_RATIO("low_watermark", AT(memory.low_watermark), 0.7),
    KEY_UINT("hot_reads", AT(memory.hot_reads), 0, 1000000, 0, NULL),
    KEY_DURATION("tombstone_ttl", AT(memory.tombstone_ttl_ms), 1, 60 * SECOND),
};

static const struct field snapshot_fields[] = {
    KEY_STRING("path", AT(snapshot.path), "", NULL),
    KEY_DURATION("interval", AT(snapshot.interval_ms), 0, 5 * MINUTE),
};

static const struct field metrics_fields[] = {
    KEY_STRING("listen", AT(metrics.listen), "", check_metrics_listen),
};

/* The entries of `kinds:` are parsed into a struct config_kind. The defaults
 * are a new kind's; a built-in kind then takes its tier and ttl from
 * builtin_kinds. */
static const struct field kind_fields[] = {
    KEY_SCALAR("tier", FIELD_TIER, KIND_AT(tier), CONFIG_TIER_REFERENCE),
    KEY_DURATION("ttl", KIND_AT(ttl_ms), 0, 0),
    KEY_DURATION("l2_ttl", KIND_AT(l2_ttl_ms), 0, HOUR),
};

static const struct section listen_section = SECTION(listen_fields);
static const struct section redis_section = SECTION(redis_fields);
static const struct section origin_section = SECTION(origin_fields);
static const struct section memory_section = SECTION(memory_fields);
static const struct section metrics_section = SECTION(metrics_fields);
static const struct section snapshot_section = SECTION(snapshot_fields);
static const struct section kind_section = SECTION(kind_fields);

/* The defaults of kinds and applications are builtin_kinds and
 * builtin_applications below; access has none. threads 0 is resolved by
 * default_threads(). */
static const struct field root_fields[] = {
    KEY_SCALAR("log_level", FIELD_LOG_LEVEL, AT(log_level), LOG_LEVEL_INFO),
    KEY_UINT("threads", AT(threads), 0, 1024, 0, NULL),
    KEY_UINT("shards", AT(shards), 1, 65536, 64, check_shards),
    KEY_STRING("application", AT(application), "all", NULL), /* checked after the file */
    KEY_STRINGS("active_statuses", AT(active_statuses), 1, "active"),
    KEY_SECTION("listen", listen_section),
    KEY_SECTION("redis", redis_section),
    KEY_SECTION("origin", origin_section),
    KEY_SECTION("memory", memory_section),
    KEY_CUSTOM("kinds", parse_kinds),
    KEY_CUSTOM("applications", parse_applications),
    KEY_CUSTOM("access", parse_access),
    KEY_SECTION("metrics", metrics_section),
    KEY_SECTION("snapshot", snapshot_section),
};

static const struct section root_section = SECTION(root_fields);

/* parse_section() tracks the keys it has seen in a 64-bit mask. */
_Static_assert(UTIL_ARRAY_LEN(root_fields) <= 64, "root table too large");
_Static_assert(UTIL_ARRAY_LEN(redis_fields) <= 64, "redis table too large");

static const struct {
    const char *name;
    enum config_tier tier;
    enum config_shape shape;
    uint64_t ttl_ms;
} builtin_kinds[] = {
    [CONFIG_KIND_CREDIT] = {"credit", CONFIG_TIER_CRITICAL, CONFIG_SHAPE_CREDIT, 0},
    [CONFIG_KIND_ROLE] = {"role", CONFIG_TIER_CRITICAL, CONFIG_SHAPE_ROLE, 0},
    [CONFIG_KIND_USER] = {"user", CONFIG_TIER_CRITICAL, CONFIG_SHAPE_USER, 0},
    [CONFIG_KIND_CONFIG] = {"config", CONFIG_TIER_CRITICAL, CONFIG_SHAPE_ANY, 0},
    [CONFIG_KIND_PROFILE] = {"profile", CONFIG_TIER_REFERENCE, CONFIG_SHAPE_OBJECT, HOUR},
    [CONFIG_KIND_HIERARCHY] = {"hierarchy", CONFIG_TIER_REFERENCE, CONFIG_SHAPE_HIERARCHY, 0},
    [CONFIG_KIND_AUDIT] = {"audit", CONFIG_TIER_REFERENCE, CONFIG_SHAPE_ANY, 10 * MINUTE},
    [CONFIG_KIND_HISTORY] = {"history", CONFIG_TIER_REFERENCE, CONFIG_SHAPE_ANY, 10 * MINUTE},
};
_Static_assert(UTIL_ARRAY_LEN(builtin_kinds) == CONFIG_BUILTIN_KINDS, "built-in kinds");


static const char *const crm_kinds[] = {"credit", "role", "user"};
static const char *const hrms_kinds[] = {"credit", "role", "user", "hierarchy"};
static const char *const finance_kinds[] = {"credit", "role"};

static const struct {
    const char *name;
    const char *const *kinds;
    size_t count;
} builtin_applications[] = {
    {"crm", crm_kinds, UTIL_ARRAY_LEN(crm_kinds)},
    {"hrms", hrms_kinds, UTIL_ARRAY_LEN(hrms_kinds)},
    {"finance", finance_kinds, UTIL_ARRAY_LEN(finance_kinds)},
};

static const char *const tier_names[] = {
    [CONFIG_TIER_CRITICAL] = "critical",
    [CONFIG_TIER_REFERENCE] = "reference",
};
static const char *const on_reconnect_names[] = {
    [CONFIG_ON_RECONNECT_FLUSH] = "flush",
    [CONFIG_ON_RECONNECT_KEEP] = "keep",
};

/* ---- small helpers ------------------------------------------------------- */

static void strings_push(struct config_strings *list, const char *item)
{
    /* The capacity is the next power of two, so it needs no field of its own. */
    if ((list->count & (list->count - 1)) == 0)
        list->items = xrealloc(list->items, (list->count ? list->count * 2 : 1) * sizeof(char *));
    list->items[list->count++] = xstrdup(item);
}

static void strings_clear(struct config_strings *list)
{
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i]);
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

/* 1..max bytes of [A-Za-z0-9_-], plus '.' when dot is true. */
static bool valid_name(const char *text, size_t len, size_t max, bool dot)
{
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        /* not isalnum(): names must not depend on the locale */
        bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && c != '_' && c != '-' && !(dot && c == '.'))
            return false;
    }
    return true;
}

static int lookup_word(const char *text, const char *const *words, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (strcasecmp(text, words[i]) == 0)
            return (int)i;
    }
    return -1;
}

/* Parses one or more decimal digits into *out; *end points past them. */
static int parse_digits(const char *text, uint64_t *out, const char **end)
{
    uint64_t value = 0;
    const char *p = text;
    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        unsigned digit = (unsigned)(*p - '0');
        if (value > (UINT64_MAX - digit) / 10)
            return -1;
        value = value * 10 + digit;
    }
    *out = value;
    *end = p;
    return 0;
}

static int parse_scaled(const char *text, const char *const *suffixes, const uint64_t *scales,
                        size_t count, uint64_t plain_scale, uint64_t *out)
{
    uint64_t value, scale = 0;
    const char *suffix;
    if (text == NULL || parse_digits(text, &value, &suffix) < 0)
        return -1;
    if (*suffix == '\0') {
        scale = plain_scale;
    } else {
        int i = lookup_word(suffix, suffixes, count);
        if (i < 0)
            return -1;
        scale = scales[i];
    }
    if (value > UINT64_MAX / scale)
        return -1;
    *out = value * scale;
    return 0;
}

int config_parse_size(const char *text, uint64_t *out)
{
    static const char *const suffixes[] = {"b", "kb", "mb", "gb"};
    static const uint64_t scales[] = {1, KB, MB, GB};
    return parse_scaled(text, suffixes, scales, UTIL_ARRAY_LEN(suffixes), 1, out);
}

int config_parse_duration(const char *text, uint64_t *out_ms)
{
    static const char *const suffixes[] = {"ms", "s", "m", "h"};
    static const uint64_t scales[] = {1, SECOND, MINUTE, HOUR};
    return parse_scaled(text, suffixes, scales, UTIL_ARRAY_LEN(suffixes), SECOND, out_ms);
}

/* The shortest way to write a bound back in the file's own units. */
static const char *format_size(uint64_t bytes, char *out, size_t size)
{
    if (bytes == 0)
        snprintf(out, size, "0");
    else if (bytes % GB == 0)
        snprintf(out, size, "%" PRIu64 "gb", bytes / GB);
    else if (bytes % MB == 0)
        snprintf(out, size, "%" PRIu64 "mb", bytes / MB);
    else if (bytes % KB == 0)
        snprintf(out, size, "%" PRIu64 "kb", bytes / KB);
    else
        snprintf(out, size, "%" PRIu64 "b", bytes);
    return out;
}

static const char *format_duration(uint64_t ms, char *out, size_t size)
{
    if (ms == 0)
        snprintf(out, size, "0");
    else if (ms % HOUR == 0)
        snprintf(out, size, "%" PRIu64 "h", ms / HOUR);
    else if (ms % MINUTE == 0)
        snprintf(out, size, "%" PRIu64 "m", ms / MINUTE);
    else if (ms % SECOND == 0)
        snprintf(out, size, "%" PRIu64 "s", ms / SECOND);
    else
        snprintf(out, size, "%" PRIu64 "ms", ms);
    return out;
}

/* What threads: 0 means: one query thread per two online CPUs, at least
 * one. The daemon shares its host with the applications that query it, and
 * each request costs the client about as much CPU as the daemon; measured
 * on two cores (scripts/bench_threads.sh), one thread serves within 10% of
 * the requests two do, with a p99 1.5 to 2 times lower under pipelining. */
static unsigned default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN) / 2;
    if (n < 1)
        return 1;
    return n > 1024 ? 1024 : (unsigned)n;
}

/* Stores each row's default into base (which the rows' offsets are from),
 * nested sections included. String members must be NULL or owned: they are
 * replaced. Cannot fail. */
static void store_defaults(const struct section *section, void *base)
{
    for (size_t i = 0; i < section->count; i++) {
        const struct field *f = &section->fields[i];
        void *target = (char *)base + f->offset;
        switch (f->type) {
        case FIELD_STRING:
            free(*(char **)target);
            *(char **)target = xstrdup(f->def.text);
            break;
        case FIELD_STRINGS:
            strings_clear(target);
            if (f->def.text != NULL)
                strings_push(target, f->def.text);
            break;
        case FIELD_UINT:
        case FIELD_MODE:
            *(unsigned *)target = (unsigned)f->def.number;
            break;
        case FIELD_SIZE:
        case FIELD_DURATION:
            *(uint64_t *)target = f->def.number;
            break;
        case FIELD_BOOL:
            *(bool *)target = f->def.number != 0;
            break;
        case FIELD_RATIO:
            *(double *)target = f->def.ratio;
            break;
        case FIELD_LOG_LEVEL:
            *(enum log_level *)target = (enum log_level)f->def.number;
            break;
        case FIELD_ON_RECONNECT:
            *(enum config_on_reconnect *)target = (enum config_on_reconnect)f->def.number;
            break;
        case FIELD_TIER:
            *(enum config_tier *)target = (enum config_tier)f->def.number;
            break;
        case FIELD_SECTION:
            store_defaults(f->section, base);
            break;
        case FIELD_CUSTOM:
            break;
        }
    }
}

/* ---- errors and events --------------------------------------------------- */

static int fail(struct loader *l, const yaml_mark_t *mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Writes the error (only the first one counts) and returns -1. */
static int fail(struct loader *l, const yaml_mark_t *mark, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    yaml_reader_failv(&l->reader, mark, fmt, ap);
    va_end(ap);
    return -1;
}

static int wrong_type(struct loader *l, const char *name, const yaml_event_t *value,
                      const char *expected)
{
    return fail(l, &value->start_mark, "'%s' must be %s, not %s", name, expected,
                yaml_reader_describe(value));
}

static int key_text(struct loader *l, const char *where, const yaml_event_t *key,
                    const char **text)
{
    if (key->type != YAML_SCALAR_EVENT) {
        if (*where == '\0')
            return fail(l, &key->start_mark, "keys must be scalars, not %s",
                        yaml_reader_describe(key));
        return fail(l, &key->start_mark, "keys in '%s' must be scalars, not %s", where,
                    yaml_reader_describe(key));
    }
    return yaml_reader_scalar_text(&l->reader, *where ? where : "key", key, text);
}

static int unknown_key(struct loader *l, const char *where, const yaml_event_t *key)
{
    if (*where == '\0')
        return fail(l, &key->start_mark, "unknown key '%s'", yaml_reader_scalar(key));
    return fail(l, &key->start_mark, "unknown key '%s' in '%s'", yaml_reader_scalar(key), where);
}

static int duplicate_key(struct loader *l, const char *where, const yaml_event_t *key)
{
    if (*where == '\0')
        return fail(l, &key->start_mark, "duplicate key '%s'", yaml_reader_scalar(key));
    return fail(l, &key->start_mark, "duplicate key '%s' in '%s'", yaml_reader_scalar(key), where);
}

static void record(struct loader *l, const struct field *field, const yaml_event_t *key,
                   const yaml_event_t *value)
{
    if ((l->record_count & (l->record_count - 1)) == 0)
        l->records = xrealloc(l->records,
                              (l->record_count ? l->record_count * 2 : 1) * sizeof(*l->records));
    l->records[l->record_count++] = (struct record){field, key->start_mark, value->start_mark};
}

/* The last record of section's key, or NULL when the file did not set it. */
static const struct record *find_record(const struct loader *l, const struct section *section,
                                        const char *key)
{
    for (size_t i = l->record_count; i-- > 0;) {
        const struct field *f = l->records[i].field;
        if (f >= section->fields && f < section->fields + section->count &&
            strcmp(f->key, key) == 0)
            return &l->records[i];
    }
    return NULL;
}

/* The value mark of the first of two keys that the file set, for an error
 * about the pair; NULL when it set neither. */
static const yaml_mark_t *pair_mark(const struct loader *l, const struct section *section,
                                    const char *first, const char *second)
{
    const struct record *r = find_record(l, section, first);
    if (r == NULL)
        r = find_record(l, section, second);
    return r ? &r->value : NULL;
}

/* ---- scalars ------------------------------------------------------------- */

static int range_error(struct loader *l, const char *name, const yaml_event_t *value,
                       enum field_type type, uint64_t min, uint64_t max)
{
    char low[32], high[32];
    if (type == FIELD_SIZE) {
        format_size(min, low, sizeof(low));
        format_size(max, high, sizeof(high));
    } else if (type == FIELD_DURATION) {
        format_duration(min, low, sizeof(low));
        format_duration(max, high, sizeof(high));
    } else {
        snprintf(low, sizeof(low), "%" PRIu64, min);
        snprintf(high, sizeof(high), "%" PRIu64, max);
    }
    return fail(l, &value->start_mark, "'%s' must be between %s and %s, got %s", name, low, high,
                yaml_reader_scalar(value));
}

static int parse_uint(struct loader *l, const char *name, const yaml_event_t *value,
                      uint64_t min, uint64_t max, uint64_t *out)
{
    const char *text = yaml_reader_scalar(value), *end;
    size_t digits = strspn(text, "0123456789");
    uint64_t number;
    if (digits == 0 || text[digits] != '\0')
        return fail(l, &value->start_mark, "invalid integer '%s' for '%s'", text, name);
    /* too many digits for 64 bits is out of range too */
    if (parse_digits(text, &number, &end) < 0 || number < min || number > max)
        return range_error(l, name, value, FIELD_UINT, min, max);
    *out = number;
    return 0;
}

static int parse_bool(struct loader *l, const char *name, const yaml_event_t *value, bool *out)
{
    static const char *const words[] = {"false", "no", "off", "true", "yes", "on"};
    int i = lookup_word(yaml_reader_scalar(value), words, UTIL_ARRAY_LEN(words));
    if (i < 0)
        return fail(l, &value->start_mark, "invalid boolean '%s' for '%s' (true or false)",
                    yaml_reader_scalar(value), name);
    *out = i >= 3;
    return 0;
}

static int parse_ratio(struct loader *l, const char *name, const yaml_event_t *value,
                       double *out)
{
    const char *text = yaml_reader_scalar(value);
    char *end;
    double ratio;
    if (!isdigit((unsigned char)text[0]) && text[0] != '.')
        goto invalid;
    errno = 0;
    ratio = strtod(text, &end);
    if (*end != '\0' || errno != 0)
        goto invalid;
    if (!(ratio > 0.0 && ratio <= 1.0))
        return fail(l, &value->start_mark, "'%s' must be above 0 and at most 1, got %s", name,
                    text);
    *out = ratio;
    return 0;
invalid:
    return fail(l, &value->start_mark, "invalid number '%s' for '%s'", text, name);
}

/* "0660", 0660 (libyaml hands over the text as written), "660" or "0o660". */
static int parse_mode(struct loader *l, const char *name, const yaml_event_t *value,
                      unsigned *out)
{
    const char *p = yaml_reader_scalar(value);
    unsigned mode = 0;
    if (p[0] == '0' && (p[1] == 'o' || p[1] == 'O'))
        p += 2;
    if (*p == '\0')
        goto invalid;
    for (; *p != '\0'; p++) {
        if (*p < '0' || *p > '7')
            goto invalid;
        mode = mode * 8 + (unsigned)(*p - '0');
        if (mode > 0777)
            return fail(l, &value->start_mark, "'%s' must be at most 0777, got %s", name,
                        yaml_reader_scalar(value));
    }
    *out = mode;
    return 0;
invalid:
    return fail(l, &value->start_mark, "invalid mode '%s' for '%s' (an octal number such as 0660)",
                yaml_reader_scalar(value), name);
}

static int parse_word(struct loader *l, const char *name, const yaml_event_t *value,
                      const char *const *words, size_t count, int *out)
{
    int i = lookup_word(yaml_reader_scalar(value), words, count);
    if (i < 0) {
        char list[128] = "";
        for (size_t w = 0; w < count; w++) {
            const char *separator = w == 0 ? "" : w + 1 == count ? " or " : ", ";
            size_t used = strlen(list);
            snprintf(list + used, sizeof(list) - used, "%s%s", separator, words[w]);
        }
        return fail(l, &value->start_mark, "'%s' must be %s, got %s", name, list,
                    yaml_reader_scalar(value));
    }
    *out = i;
    return 0;
}

static int parse_scalar(struct loader *l, const struct field *f, const char *name,
                        const yaml_event_t *value, void *target)
{
    const char *text;
    uint64_t number = 0;
    int word = 0;
    if (yaml_reader_scalar_text(&l->reader, name, value, &text) < 0)
        return -1;
    if (f->type != FIELD_STRING && *text == '\0')
        return fail(l, &value->start_mark, "missing value for '%s'", name);

    switch (f->type) {
    case FIELD_STRING: {
        char **string = target;
        free(*string);
        *string = xstrdup(yaml_reader_is_null(value) ? "" : text);
        break;
    }
    case FIELD_UINT:
        if (parse_uint(l, name, value, f->min, f->max, &number) < 0)
            return -1;
        *(unsigned *)target = (unsigned)number;
        break;
    case FIELD_SIZE:
    case FIELD_DURATION:
        if (f->type == FIELD_SIZE && config_parse_size(text, &number) < 0)
            return fail(l, &value->start_mark,
                        "invalid size '%s' for '%s' (a number with b, kb, mb or gb)", text, name);
        if (f->type == FIELD_DURATION && config_parse_duration(text, &number) < 0)
            return fail(l, &value->start_mark,
                        "invalid duration '%s' for '%s' (a number with ms, s, m or h)", text,
                        name);
        if (number < f->min || number > f->max)
            return range_error(l, name, value, f->type, f->min, f->max);
        *(uint64_t *)target = number;
        break;
    case FIELD_BOOL:
        return parse_bool(l, name, value, target);
    case FIELD_RATIO:
        return parse_ratio(l, name, value, target);
    case FIELD_MODE:
        return parse_mode(l, name, value, target);
    case FIELD_LOG_LEVEL:
        if (log_level_parse(text, target) < 0)
            return fail(l, &value->start_mark,
                        "'%s' must be debug, info, notice, warning or error, got %s", name, text);
        break;
    case FIELD_ON_RECONNECT:
        if (parse_word(l, name, value, on_reconnect_names, UTIL_ARRAY_LEN(on_reconnect_names),
                       &word) < 0)
            return -1;
        *(enum config_on_reconnect *)target = (enum config_on_reconnect)word;
        break;
    case FIELD_TIER:
        if (parse_word(l, name, value, tier_names, UTIL_ARRAY_LEN(tier_names), &word) < 0)
            return -1;
        *(enum config_tier *)target = (enum config_tier)word;
        break;
    case FIELD_STRINGS:
    case FIELD_SECTION:
    case FIELD_CUSTOM:
        break;
    }
    return f->check ? f->check(l, name, value, target) : 0;
}

/* ---- lists and mappings -------------------------------------------------- */

/* Called for each item once it has been appended to the list. */
typedef int item_check(struct loader *l, const char *name, const yaml_event_t *item,
                       const struct config_strings *list);

/* Reads a list of non-empty strings into *out (empty on entry; the caller
 * frees it, also on error). A null value is an empty list. */
static int parse_strings(struct loader *l, const char *name, const yaml_event_t *value,
                         size_t min, item_check *check, struct config_strings *out)
{
    if (yaml_reader_is_null(value))
        goto done;
    if (value->type != YAML_SEQUENCE_START_EVENT)
        return wrong_type(l, name, value, "a list");
    for (;;) {
        yaml_event_t item;
        const char *text = NULL;
        int rc = 0;
        if (yaml_reader_next(&l->reader, &item) < 0)
            return -1;
        if (item.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&item);
            break;
        }
        if (item.type != YAML_SCALAR_EVENT)
            rc = fail(l, &item.start_mark, "items of '%s' must be scalars, not %s", name,
                      yaml_reader_describe(&item));
        else if (yaml_reader_scalar_text(&l->reader, name, &item, &text) < 0)
            rc = -1;
        else if (*text == '\0' || yaml_reader_is_null(&item))
            rc = fail(l, &item.start_mark, "empty item in '%s'", name);
        if (rc == 0) {
            strings_push(out, text);
            if (check != NULL)
                rc = check(l, name, &item, out);
        }
        yaml_event_delete(&item);
        if (rc < 0)
            return -1;
    }
done:
    if (out->count < min)
        return fail(l, &value->start_mark, "'%s' must not be empty", name);
    return 0;
}

static int parse_value(struct loader *l, const struct field *f, const char *name, void *base,
                       const yaml_event_t *value)
{
    void *target = (char *)base + f->offset;
    switch (f->type) {
    case FIELD_SECTION:
        if (yaml_reader_is_null(value))
            return 0;
        if (value->type != YAML_MAPPING_START_EVENT)
            return wrong_type(l, name, value, "a mapping");
        return parse_section(l, f->section, base, name);
    case FIELD_CUSTOM:
        return f->parse(l, name, value);
    case FIELD_STRINGS: {
        struct config_strings list = {NULL, 0};
        if (parse_strings(l, name, value, (size_t)f->min, NULL, &list) < 0) {
            strings_clear(&list);
            return -1;
        }
        strings_clear(target);
        *(struct config_strings *)target = list;
        return 0;
    }
    default:
        if (value->type != YAML_SCALAR_EVENT)
            return wrong_type(l, name, value, "a scalar");
        return parse_scalar(l, f, name, value, target);
    }
}

static int parse_entry(struct loader *l, const struct section *section, void *base,
                       const char *where, const yaml_event_t *key, uint64_t *seen)
{
    const struct field *f = NULL;
    const char *text;
    char name[NAME_MAX_LEN];
    yaml_event_t value;
    size_t i;
    int rc;

    if (key_text(l, where, key, &text) < 0)
        return -1;
    for (i = 0; i < section->count; i++) {
        if (strcmp(section->fields[i].key, text) == 0) {
            f = &section->fields[i];
            break;
        }
    }
    if (f == NULL)
        return unknown_key(l, where, key);
    if (*seen & (UINT64_C(1) << i))
        return duplicate_key(l, where, key);
    *seen |= UINT64_C(1) << i;

    snprintf(name, sizeof(name), "%s%s%s", where, *where ? "." : "", f->key);
    if (yaml_reader_next(&l->reader, &value) < 0)
        return -1;
    record(l, f, key, &value);
    rc = parse_value(l, f, name, base, &value);
    yaml_event_delete(&value);
    return rc;
}

/* Reads a mapping (its start already consumed) of section's keys into base. */
static int parse_section(struct loader *l, const struct section *section, void *base,
                         const char *where)
{
    uint64_t seen = 0;
    for (;;) {
        yaml_event_t key;
        int rc;
        if (yaml_reader_next(&l->reader, &key) < 0)
            return -1;
        if (key.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&key);
            return 0;
        }
        rc = parse_entry(l, section, base, where, &key, &seen);
        yaml_event_delete(&key);
        if (rc < 0)
            return -1;
    }
}

/* Calls entry() for each key of the mapping that value starts (a null value
 * is an empty mapping). entry() consumes the key's value. */
typedef int entry_parse(struct loader *l, const yaml_event_t *key, void *state);

static int parse_mapping(struct loader *l, const char *name, const yaml_event_t *value,
                         entry_parse *entry, void *state)
{
    if (yaml_reader_is_null(value))
        return 0;
    if (value->type != YAML_MAPPING_START_EVENT)
        return wrong_type(l, name, value, "a mapping");
    for (;;) {
        yaml_event_t key;
        const char *text;
        int rc;
        if (yaml_reader_next(&l->reader, &key) < 0)
            return -1;
        if (key.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&key);
            return 0;
        }
        rc = key_text(l, name, &key, &text);
        if (rc == 0)
            rc = entry(l, &key, state);
        yaml_event_delete(&key);
        if (rc < 0)
            return -1;
    }
}

/* ---- kinds ----------------------------------------------------------------- */

static int parse_kind(struct loader *l, const yaml_event_t *key, void *state)
{
    struct config *c = l->config;
    bool *seen = state;
    const char *name = yaml_reader_scalar(key);
    size_t len = key->data.scalar.length;
    char where[NAME_MAX_LEN];
    yaml_event_t value;
    int index, rc;

    if (!valid_name(name, len, CONFIG_KIND_NAME_MAX, false))
        return fail(l, &key->start_mark,
                    "invalid kind name '%s' (1 to %d characters of A-Z a-z 0-9 _ -)", name,
                    CONFIG_KIND_NAME_MAX);
    index = config_kind_find(c, name, len);
    if (index >= 0 && seen[index])
        return duplicate_key(l, "kinds", key);
    if (index < 0) {
        struct config_kind *kind;
        if (c->kind_count == CONFIG_MAX_KINDS)
            return fail(l, &key->start_mark, "too many kinds (at most %d)", CONFIG_MAX_KINDS);
        index = (int)c->kind_count++;
        kind = &c->kinds[index];
        memset(kind, 0, sizeof(*kind));
        memcpy(kind->name, name, len);
        kind->shape = CONFIG_SHAPE_ANY;
        store_defaults(&kind_section, kind);
    }
    seen[index] = true;

    snprintf(where, sizeof(where), "kinds.%s", name);
    if (yaml_reader_next(&l->reader, &value) < 0)
        return -1;
    if (yaml_reader_is_null(&value))
        rc = 0;
    else if (value.type != YAML_MAPPING_START_EVENT)
        rc = wrong_type(l, where, &value, "a mapping");
    else
        rc = parse_section(l, &kind_section, &c->kinds[index], where);
    yaml_event_delete(&value);
    return rc;
}

static int parse_kinds(struct loader *l, const char *name, const yaml_event_t *value)
{
    bool seen[CONFIG_MAX_KINDS] = {false};
    return parse_mapping(l, name, value, parse_kind, seen);
}

int config_kind_find(const struct config *config, const char *name, size_t len)
{
    for (size_t i = 0; i < config->kind_count; i++) {
        const char *kind = config->kinds[i].name;
        if (strlen(kind) == len && memcmp(kind, name, len) == 0)
            return (int)i;
    }
    return -1;
}

/* ---- applications ---------------------------------------------------------- */

static int check_application_kind(struct loader *l, const char *name, const yaml_event_t *item,
                                  const struct config_strings *list)
{
    const char *kind = list->items[list->count - 1];
    if (!valid_name(kind, strlen(kind), CONFIG_KIND_NAME_MAX, false))
        return fail(l, &item->start_mark, "invalid kind name '%s' in '%s'", kind, name);
    for (size_t i = 0; i + 1 < list->count; i++) {
        if (strcmp(list->items[i], kind) == 0)
            return fail(l, &item->start_mark, "kind '%s' is listed twice in '%s'", kind, name);
    }
    if ((l->ref_count & (l->ref_count - 1)) == 0)
        l->refs = xrealloc(l->refs, (l->ref_count ? l->ref_count * 2 : 1) * sizeof(*l->refs));
    l->refs[l->ref_count++] = (struct kind_ref){kind, l->current_application, item->start_mark};
    return 0;
}

static int parse_application(struct loader *l, const yaml_event_t *key, void *state)
{
    struct config *c = l->config;
    bool *seen_builtin = state;
    const char *name = yaml_reader_scalar(key);
    struct config_strings kinds = {NULL, 0};
    struct config_application *app = NULL;
    char where[NAME_MAX_LEN];
    yaml_event_t value;
    size_t index;
    int rc;

    if (!valid_name(name, key->data.scalar.length, CONFIG_KIND_NAME_MAX, false))
        return fail(l, &key->start_mark,
                    "invalid application name '%s' (1 to %d characters of A-Z a-z 0-9 _ -)",
                    name, CONFIG_KIND_NAME_MAX);
    if (strcmp(name, "all") == 0)
        return fail(l, &key->start_mark, "'all' is reserved and cannot name an application");
    for (index = 0; index < c->application_count; index++) {
        if (strcmp(c->applications[index].name, name) == 0)
            break;
    }
    /* Applications past the built-ins were added by this very mapping. */
    if (index < c->application_count &&
        (index >= UTIL_ARRAY_LEN(builtin_applications) || seen_builtin[index]))
        return duplicate_key(l, "applications", key);
    if (index == c->application_count && index == APPLICATIONS_MAX)
        return fail(l, &key->start_mark, "too many applications (at most %d)", APPLICATIONS_MAX);

    snprintf(where, sizeof(where), "applications.%s", name);
    if (yaml_reader_next(&l->reader, &value) < 0)
        return -1;
    l->current_application = index;
    rc = parse_strings(l, where, &value, 1, check_application_kind, &kinds);
    yaml_event_delete(&value);
    if (rc < 0) {
        strings_clear(&kinds);
        return -1;
    }

    if (index == c->application_count) {
        c->applications = xrealloc(c->applications, (index + 1) * sizeof(*c->applications));
        app = &c->applications[c->application_count++];
        app->name = xstrdup(name);
    } else {
        app = &c->applications[index];
        seen_builtin[index] = true;
        strings_clear(&app->kinds);
    }
    app->kinds = kinds;
    return 0;
}

static int parse_applications(struct loader *l, const char *name, const yaml_event_t *value)
{
    bool seen_builtin[UTIL_ARRAY_LEN(builtin_applications)] = {false};
    return parse_mapping(l, name, value, parse_application, seen_builtin);
}

/* ---- access ---------------------------------------------------------------- */

static int check_tenant(struct loader *l, const char *name, const yaml_event_t *item,
                        const struct config_strings *list)
{
    const char *tenant = list->items[list->count - 1];
    if (!valid_name(tenant, strlen(tenant), TENANT_NAME_MAX, true))
        return fail(l, &item->start_mark,
                    "invalid tenant '%s' in '%s' (1 to %d characters of A-Z a-z 0-9 . _ -)",
                    tenant, name, TENANT_NAME_MAX);
    return 0;
}

struct rule_state {
    struct config_access_rule *rule;
    bool have_match, have_tenants, have_admin;
};

static int parse_rule_entry(struct loader *l, const yaml_event_t *key, void *state)
{
    static const char *const match_keys[] = {
        [CONFIG_ACCESS_UID] = "uid",
        [CONFIG_ACCESS_USER] = "user",
        [CONFIG_ACCESS_GID] = "gid",
        [CONFIG_ACCESS_GROUP] = "group",
    };
    struct rule_state *s = state;
    struct config_access_rule *rule = s->rule;
    const char *text = yaml_reader_scalar(key);
    char name[NAME_MAX_LEN];
    yaml_event_t value;
    int match = -1, rc = 0;

    for (size_t i = 0; i < UTIL_ARRAY_LEN(match_keys); i++) {
        if (strcmp(text, match_keys[i]) == 0)
            match = (int)i;
    }
    if (match < 0 && strcmp(text, "tenants") != 0 && strcmp(text, "admin") != 0)
        return unknown_key(l, "access", key);
    if (match >= 0 && s->have_match) {
        if (strcmp(match_keys[rule->match], text) == 0)
            return duplicate_key(l, "access", key);
        return fail(l, &key->start_mark,
                    "'%s' after '%s': an access rule takes exactly one of uid, user, gid, group",
                    text, match_keys[rule->match]);
    }
    if ((strcmp(text, "tenants") == 0 && s->have_tenants) ||
        (strcmp(text, "admin") == 0 && s->have_admin))
        return duplicate_key(l, "access", key);

    snprintf(name, sizeof(name), "access.%s", text);
    if (yaml_reader_next(&l->reader, &value) < 0)
        return -1;
    if (match >= 0) {
        uint64_t id;
        const char *string;
        s->have_match = true;
        rule->match = (enum config_access_match)match;
        if (value.type != YAML_SCALAR_EVENT)
            rc = wrong_type(l, name, &value, "a scalar");
        else if (yaml_reader_scalar_text(&l->reader, name, &value, &string) < 0)
            rc = -1;
        else if (*string == '\0' || yaml_reader_is_null(&value))
            rc = fail(l, &value.start_mark, "missing value for '%s'", name);
        else if (match == CONFIG_ACCESS_USER || match == CONFIG_ACCESS_GROUP)
            rule->name = xstrdup(string);
        /* (uid_t)-1 is not an id: chown() and setreuid() read it as "unchanged" */
        else if ((rc = parse_uint(l, name, &value, 0, UINT32_MAX - 1, &id)) == 0)
            rule->id = (uint32_t)id;
    } else if (strcmp(text, "tenants") == 0) {
        s->have_tenants = true;
        if (value.type == YAML_SCALAR_EVENT && strcmp(yaml_reader_scalar(&value), "*") == 0)
            rule->all_tenants = true;
        else if (value.type == YAML_SCALAR_EVENT && !yaml_reader_is_null(&value))
            rc = fail(l, &value.start_mark, "'%s' must be \"*\" or a list of tenants, got %s",
                      name, yaml_reader_scalar(&value));
        else
            rc = parse_strings(l, name, &value, 0, check_tenant, &rule->tenants);
    } else {
        s->have_admin = true;
        if (value.type != YAML_SCALAR_EVENT)
            rc = wrong_type(l, name, &value, "a scalar");
        else if (*yaml_reader_scalar(&value) == '\0')
            rc = fail(l, &value.start_mark, "missing value for '%s'", name);
        else
            rc = parse_bool(l, name, &value, &rule->admin);
    }
    yaml_event_delete(&value);
    return rc;
}

static int parse_access(struct loader *l, const char *name, const yaml_event_t *value)
{
    struct config *c = l->config;
    if (yaml_reader_is_null(value))
        return 0;
    if (value->type != YAML_SEQUENCE_START_EVENT)
        return wrong_type(l, name, value, "a list");
    for (;;) {
        struct rule_state state = {NULL, false, false, false};
        yaml_event_t item;
        int rc;
        if (yaml_reader_next(&l->reader, &item) < 0)
            return -1;
        if (item.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&item);
            return 0;
        }
        if (item.type != YAML_MAPPING_START_EVENT) {
            rc = fail(l, &item.start_mark, "rules in 'access' must be mappings, not %s",
                      yaml_reader_describe(&item));
            yaml_event_delete(&item);
            return rc;
        }
        /* Added before it is filled, so that config_free() frees a half-read rule. */
        if ((c->access_count & (c->access_count - 1)) == 0)
            c->access = xrealloc(c->access,
                                 (c->access_count ? c->access_count * 2 : 1) * sizeof(*c->access));
        state.rule = &c->access[c->access_count++];
        memset(state.rule, 0, sizeof(*state.rule));
        rc = parse_mapping(l, name, &item, parse_rule_entry, &state);
        if (rc == 0 && !state.have_match)
            rc = fail(l, &item.start_mark,
                      "an access rule needs one of uid, user, gid or group");
        if (rc == 0 && !state.have_tenants)
            rc = fail(l, &item.start_mark, "an access rule needs 'tenants'");
        yaml_event_delete(&item);
        if (rc < 0)
            return -1;
    }
}

/* One item of redis.sentinels: HOST:PORT, the port in 1..65535. */
static int check_sentinel(struct loader *l, const char *name, const yaml_event_t *item,
                          const struct config_strings *list)
{
    const char *text = list->items[list->count - 1], *colon = strrchr(text, ':'), *end;
    uint64_t port;
    if (colon == NULL || colon == text)
        return fail(l, &item->start_mark, "items of '%s' must be HOST:PORT, got %s", name, text);
    if (parse_digits(colon + 1, &port, &end) < 0 || *end != '\0' || port < 1 || port > 65535)
        return fail(l, &item->start_mark,
                    "the port of '%s' item %s must be between 1 and 65535", name, text);
    return 0;
}

/* redis.sentinels: a list of HOST:PORT (docs/reference.md §7); empty: no Sentinel. */
static int parse_sentinels(struct loader *l, const char *name, const yaml_event_t *value)
{
    struct config_strings list = {NULL, 0};
    if (parse_strings(l, name, value, 0, check_sentinel, &list) < 0) {
        strings_clear(&list);
        return -1;
    }
    strings_clear(&l->config->redis.sentinels);
    l->config->redis.sentinels = list;
    return 0;
}

/* ---- single-key checks ----------------------------------------------------- */

static int check_shards(struct loader *l, const char *name, const yaml_event_t *value,
                        const void *target)
{
    unsigned shards = *(const unsigned *)target;
    if ((shards & (shards - 1)) != 0)
        return fail(l, &value->start_mark, "'%s' must be a power of two, got %u", name, shards);
    return 0;
}

static int check_not_empty(struct loader *l, const char *name, const yaml_event_t *value,
                           const void *target)
{
    if (**(char *const *)target == '\0')
        return fail(l, &value->start_mark, "'%s' must not be empty", name);
    return 0;
}

static int check_path_length(struct loader *l, const char *name, const yaml_event_t *value,
                             const char *path)
{
    if (strlen(path) > SOCKET_PATH_MAX)
        return fail(l, &value->start_mark,
                    "'%s' is too long for a Unix socket (%zu bytes, at most %zu)", name,
                    strlen(path), SOCKET_PATH_MAX);
    return 0;
}

static int check_socket_path(struct loader *l, const char *name, const yaml_event_t *value,
                             const void *target)
{
    if (check_not_empty(l, name, value, target) < 0)
        return -1;
    return check_path_length(l, name, value, *(char *const *)target);
}

static int check_unix_path(struct loader *l, const char *name, const yaml_event_t *value,
                           const void *target)
{
    return check_path_length(l, name, value, *(char *const *)target);
}

/* Each of {tenant}, {kind}, {key} at least once (exactly once when once is
 * set), and no other {...}. */
static int check_placeholders(struct loader *l, const char *name, const yaml_event_t *value,
                              const char *text, bool once)
{
    unsigned counts[NAMES_PARTS] = {0};
    for (const char *p = strchr(text, '{'); p != NULL; p = strchr(p, '{')) {
        const char *close = strchr(p, '}');
        size_t len, known_len = 0;
        if (close == NULL)
            return fail(l, &value->start_mark, "unterminated '{' in '%s'", name);
        len = (size_t)(close - p) + 1;
        int i = names_placeholder(p, &known_len);
        if (i < 0 || known_len != len)
            return fail(l, &value->start_mark,
                        "unknown placeholder '%.*s' in '%s' (use {tenant}, {kind} and {key})",
                        (int)len, p, name);
        counts[i]++;
        p = close + 1;
    }
    for (int i = 0; i < NAMES_PARTS; i++) {
        const char *placeholder = names_placeholder_text((enum names_part)i);
        if (counts[i] == 0)
            return fail(l, &value->start_mark, "'%s' must contain %s", name, placeholder);
        if (once && counts[i] > 1)
            return fail(l, &value->start_mark, "'%s' must contain %s only once", name,
                        placeholder);
    }
    return 0;
}

/* Exactly once: `GET name` parses entry names back with this template. */
static int check_key_format(struct loader *l, const char *name, const yaml_event_t *value,
                            const void *target)
{
    return check_placeholders(l, name, value, *(char *const *)target, true);
}

static int check_origin_url(struct loader *l, const char *name, const yaml_event_t *value,
                            const void *target)
{
    const char *url = *(char *const *)target;
    if (*url == '\0')
        return 0;
    if (strncasecmp(url, "https://", 8) == 0)
        return fail(l, &value->start_mark,
                    "'%s' must use http:// (libevent's HTTP client has no TLS; put a local "
                    "TLS proxy in front of the origin)", name);
    if (strncasecmp(url, "http://", 7) != 0 || url[7] == '\0' || url[7] == '/' || url[7] == '{')
        return fail(l, &value->start_mark, "'%s' must be empty or an http://HOST/... URL, got %s",
                    name, url);
    return check_placeholders(l, name, value, url, false);
}

static int check_metrics_listen(struct loader *l, const char *name, const yaml_event_t *value,
                                const void *target)
{
    const char *text = *(char *const *)target, *colon, *end;
    uint64_t port;
    if (*text == '\0')
        return 0;
    colon = strrchr(text, ':');
    if (colon == NULL || colon == text)
        return fail(l, &value->start_mark, "'%s' must be empty or HOST:PORT, got %s", name, text);
    if (parse_digits(colon + 1, &port, &end) < 0 || *end != '\0' || port < 1 || port > 65535)
        return fail(l, &value->start_mark,
                    "the port of '%s' must be between 1 and 65535, got %s", name, colon + 1);
    return 0;
}

/* ---- checks after the whole file --------------------------------------------- */

/* Reads the first line of password_file into redis.password. */
static int read_password(struct loader *l)
{
    struct config *c = l->config;
    const struct record *r = find_record(l, &redis_section, "password_file");
    const yaml_mark_t *mark = r ? &r->key : NULL;
    const char *path = c->redis.password_file;
    char buffer[PASSWORD_MAX + 1];
    size_t len = 0;
    int fd, rc = -1;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return fail(l, mark, "cannot read password_file '%s': %s", path, strerror(errno));
    while (len < sizeof(buffer) && memchr(buffer, '\n', len) == NULL) {
        ssize_t n = read(fd, buffer + len, sizeof(buffer) - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fail(l, mark, "cannot read password_file '%s': %s", path, strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    {
        const char *newline = memchr(buffer, '\n', len);
        size_t line = newline ? (size_t)(newline - buffer) : len;
        if (line > PASSWORD_MAX) {
            fail(l, mark, "the first line of password_file '%s' is longer than %d bytes", path,
                 PASSWORD_MAX);
            goto done;
        }
        if (line > 0 && buffer[line - 1] == '\r')
            line--;
        if (memchr(buffer, '\0', line) != NULL) {
            fail(l, mark, "password_file '%s' contains a NUL byte", path);
            goto done;
        }
        explicit_bzero(c->redis.password, strlen(c->redis.password));
        free(c->redis.password);
        c->redis.password = xstrndup(buffer, line);
    }
    rc = 0;
done:
    explicit_bzero(buffer, sizeof(buffer));
    close(fd);
    return rc;
}

static int check_application(struct loader *l)
{
    struct config *c = l->config;
    const struct record *r = find_record(l, &root_section, "application");
    char known[256] = "all";
    size_t i;

    for (i = 0; i < l->ref_count; i++) {
        const struct kind_ref *ref = &l->refs[i];
        if (config_kind_find(c, ref->kind, strlen(ref->kind)) < 0)
            return fail(l, &ref->mark, "unknown kind '%s' in 'applications.%s'", ref->kind,
                        c->applications[ref->application].name);
    }
    for (i = 0; i < c->kind_count; i++)
        c->kinds[i].cached = strcmp(c->application, "all") == 0;
    if (strcmp(c->application, "all") == 0)
        return 0;
    for (i = 0; i < c->application_count; i++) {
        if (strcmp(c->applications[i].name, c->application) == 0)
            break;
    }
    if (i == c->application_count) {
        for (size_t a = 0; a < c->application_count; a++) {
            size_t used = strlen(known);
            snprintf(known + used, sizeof(known) - used, ", %s", c->applications[a].name);
        }
        return fail(l, r ? &r->value : NULL, "unknown application '%s' (known: %s)",
                    c->application, known);
    }
    for (size_t k = 0; k < c->applications[i].kinds.count; k++) {
        const char *kind = c->applications[i].kinds.items[k];
        c->kinds[config_kind_find(c, kind, strlen(kind))].cached = true;
    }
    return 0;
}

static int finish(struct loader *l)
{
    struct config *c = l->config;
    char a[32], b[32];

    if (c->redis.password_file[0] != '\0' && read_password(l) < 0)
        return -1;
    if (c->redis.reconnect_min_ms > c->redis.reconnect_max_ms)
        return fail(l, pair_mark(l, &redis_section, "reconnect_min", "reconnect_max"),
                    "'redis.reconnect_min' (%s) must not exceed 'redis.reconnect_max' (%s)",
                    format_duration(c->redis.reconnect_min_ms, a, sizeof(a)),
                    format_duration(c->redis.reconnect_max_ms, b, sizeof(b)));
    if (c->redis.channels.count == 0 && c->redis.patterns.count == 0)
        return fail(l, pair_mark(l, &redis_section, "channels", "patterns"),
                    "'redis.channels' and 'redis.patterns' are both empty: "
                    "nothing to subscribe to");
    if (c->memory.tenant_max_bytes > c->memory.max_bytes)
        return fail(l, pair_mark(l, &memory_section, "tenant_max_bytes", "max_bytes"),
                    "'memory.tenant_max_bytes' (%s) must not exceed 'memory.max_bytes' (%s)",
                    format_size(c->memory.tenant_max_bytes, a, sizeof(a)),
                    format_size(c->memory.max_bytes, b, sizeof(b)));
    if (c->memory.low_watermark >= c->memory.high_watermark)
        return fail(l, pair_mark(l, &memory_section, "low_watermark", "high_watermark"),
                    "'memory.low_watermark' (%g) must be below 'memory.high_watermark' (%g)",
                    c->memory.low_watermark, c->memory.high_watermark);
    if (check_application(l) < 0)
        return -1;
    if (c->threads == 0)
        c->threads = default_threads();
    return 0;
}

/* ---- loading ----------------------------------------------------------------- */

static int load_stream(struct loader *l)
{
    yaml_event_t root;
    int rc = yaml_reader_root(&l->reader, &root);

    if (rc <= 0)
        return rc;
    if (root.type == YAML_MAPPING_START_EVENT)
        rc = parse_section(l, &root_section, l->config, "");
    else if (yaml_reader_is_null(&root))
        rc = 0;
    else
        rc = fail(l, &root.start_mark, "the configuration must be a mapping, not %s",
                  yaml_reader_describe(&root));
    yaml_event_delete(&root);
    if (rc < 0)
        return -1;
    return yaml_reader_end(&l->reader);
}

struct config *config_load_buffer(const char *name, const char *text, size_t len, char *error)
{
    struct loader l;
    int rc = -1;

    memset(&l, 0, sizeof(l));
    l.config = config_defaults();
    l.config->path = xstrdup(name);

    rc = yaml_reader_open(&l.reader, name, text, len, error);
    if (rc == 0)
        rc = load_stream(&l);
    if (rc == 0)
        rc = finish(&l);
    yaml_reader_close(&l.reader);
    free(l.records);
    free(l.refs);
    if (rc < 0) {
        config_free(l.config);
        return NULL;
    }
    return l.config;
}

struct config *config_load(const char *path, char *error)
{
    struct config *config = NULL;
    char *text = NULL;
    size_t len = 0;
    int fd;

    error[0] = '\0';
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(error, ERROR_MAX, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    text = xmalloc(FILE_MAX + 1);
    for (;;) {
        ssize_t n = read(fd, text + len, FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(error, ERROR_MAX, "%s: cannot read: %s", path, strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > FILE_MAX) {
            snprintf(error, ERROR_MAX, "%s: larger than %d bytes", path, FILE_MAX);
            goto done;
        }
    }
    config = config_load_buffer(path, text, len, error);
done:
    /* The file may hold the Redis password. */
    explicit_bzero(text, len);
    free(text);
    close(fd);
    return config;
}

/* ---- defaults and freeing ------------------------------------------------------ */

/* The rows' defaults, then the built-in kinds and applications. */
struct config *config_defaults(void)
{
    struct config *c = xcalloc(1, sizeof(*c));

    store_defaults(&root_section, c);
    if (c->threads == 0)
        c->threads = default_threads();

    for (size_t i = 0; i < UTIL_ARRAY_LEN(builtin_kinds); i++) {
        struct config_kind *kind = &c->kinds[i];
        snprintf(kind->name, sizeof(kind->name), "%s", builtin_kinds[i].name);
        store_defaults(&kind_section, kind);
        kind->tier = builtin_kinds[i].tier;
        kind->shape = builtin_kinds[i].shape;
        kind->ttl_ms = builtin_kinds[i].ttl_ms;
        kind->cached = true; /* application: all */
    }
    c->kind_count = UTIL_ARRAY_LEN(builtin_kinds);

    c->application_count = UTIL_ARRAY_LEN(builtin_applications);
    c->applications = xcalloc(c->application_count, sizeof(*c->applications));
    for (size_t i = 0; i < c->application_count; i++) {
        c->applications[i].name = xstrdup(builtin_applications[i].name);
        for (size_t k = 0; k < builtin_applications[i].count; k++)
            strings_push(&c->applications[i].kinds, builtin_applications[i].kinds[k]);
    }
    return c;
}

/* Frees what store_defaults() and the loader allocate for section's rows,
 * nested sections included. Every string is zeroed first: some hold
 * passwords, and the others cost nothing to clear. */
static void free_rows(const struct section *section, void *base)
{
    for (size_t i = 0; i < section->count; i++) {
        const struct field *f = &section->fields[i];
        void *target = (char *)base + f->offset;
        if (f->type == FIELD_STRING) {
            char *string = *(char **)target;
            if (string != NULL)
                explicit_bzero(string, strlen(string));
            free(string);
        } else if (f->type == FIELD_STRINGS) {
            strings_clear(target);
        } else if (f->type == FIELD_SECTION) {
            free_rows(f->section, base);
        }
    }
}

void config_free(struct config *config)
{
    if (config == NULL)
        return;
    free(config->path);
    free_rows(&root_section, config);
    /* the custom keys: their values are not in a row */
    strings_clear(&config->redis.sentinels);
    for (size_t i = 0; i < config->application_count; i++) {
        free(config->applications[i].name);
        strings_clear(&config->applications[i].kinds);
    }
    free(config->applications);
    for (size_t i = 0; i < config->access_count; i++) {
        free(config->access[i].name);
        strings_clear(&config->access[i].tenants);
    }
    free(config->access);
    free(config);
}
