/* config.h - the daemon's configuration, loaded from YAML (docs/reference.md §9).
 *
 * config_load() fills a struct config with every key of the contract, the
 * defaults for what the file leaves out, the built-in kinds and applications
 * merged with the file's, and the application filter resolved into each
 * kind's `cached` flag. Everything after loading only reads fields.
 *
 * A config is immutable once loaded: a reload loads a new one and swaps it in. */
#ifndef TENANTCACHED_CONFIG_H
#define TENANTCACHED_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"
#include "log.h"

#define CONFIG_DEFAULT_PATH "/etc/tenantcached/tenantcached.yaml"
#define CONFIG_MAX_KINDS 64
#define CONFIG_KIND_NAME_MAX 32

enum config_tier {
    CONFIG_TIER_CRITICAL,
    CONFIG_TIER_REFERENCE,
};

/* What a kind's values must look like (docs/reference.md §2). Built-in kinds have their own
 * shape; a kind added by the config is opaque (any JSON). */
enum config_shape {
    CONFIG_SHAPE_ANY,       /* config, audit, history, added kinds */
    CONFIG_SHAPE_CREDIT,    /* number, or object with number `cost` */
    CONFIG_SHAPE_ROLE,      /* array of patterns, or object with `permissions` */
    CONFIG_SHAPE_USER,      /* status string, or object with `status` and optional `roles` */
    CONFIG_SHAPE_OBJECT,    /* profile: any JSON object */
    CONFIG_SHAPE_HIERARCHY, /* object with optional `parent` and `name` */
};

/* Indexes of the built-in kinds in config.kinds: they always come first and in
 * this order, so code that needs "the role kind" uses these constants. */
enum config_builtin_kind {
    CONFIG_KIND_CREDIT,
    CONFIG_KIND_ROLE,
    CONFIG_KIND_USER,
    CONFIG_KIND_CONFIG,
    CONFIG_KIND_PROFILE,
    CONFIG_KIND_HIERARCHY,
    CONFIG_KIND_AUDIT,
    CONFIG_KIND_HISTORY,
    CONFIG_BUILTIN_KINDS,
};

struct config_kind {
    char name[CONFIG_KIND_NAME_MAX + 1];
    enum config_tier tier;
    enum config_shape shape;
    uint64_t ttl_ms;    /* 0: no expiry */
    uint64_t l2_ttl_ms; /* TTL of L3 values written back to L2 (default 1h) */
    bool cached;        /* false: filtered out by `application` */
};

struct config_strings {
    char **items;
    size_t count;
};

struct config_application {
    char *name;
    struct config_strings kinds;
};

enum config_access_match {
    CONFIG_ACCESS_UID,
    CONFIG_ACCESS_USER,
    CONFIG_ACCESS_GID,
    CONFIG_ACCESS_GROUP,
};

/* One `access:` rule. The name of a user or group is resolved when the rule is
 * matched against a peer, so that accounts created after start work. */
struct config_access_rule {
    enum config_access_match match;
    uint32_t id;                   /* uid or gid */
    char *name;                    /* user or group name */
    bool all_tenants;              /* tenants: "*" */
    struct config_strings tenants;
    bool admin;
};

enum config_on_reconnect {
    CONFIG_ON_RECONNECT_FLUSH,
    CONFIG_ON_RECONNECT_KEEP,
};

struct config {
    char *path;

    enum log_level log_level;
    unsigned threads;        /* resolved: 0 in the file means online cores */
    unsigned shards;         /* power of two, 1..65536 */
    char *application;       /* "all" or a name under applications */
    struct config_strings active_statuses;

    struct {
        char *socket;
        unsigned mode;       /* from an octal string such as "0660" */
        char *group;         /* "" : the daemon's own group */
        unsigned max_clients;
        uint64_t max_request_bytes;
        unsigned max_args;
        uint64_t idle_timeout_ms;   /* 0: never */
        uint64_t max_reply_backlog;
        uint64_t max_buffer_memory; /* all clients' input and unsent replies together */
        unsigned tracking_max_keys; /* names CLIENT TRACKING remembers */
    } listen;

    struct {
        char *host;
        unsigned port;
        char *unix_path;     /* key `unix`; "" : use host and port */
        char *username;
        char *password;      /* from password_file when that is set */
        char *password_file;
        unsigned db;
        struct config_strings channels;
        struct config_strings patterns;
        uint64_t connect_timeout_ms;
        uint64_t reconnect_min_ms;
        uint64_t reconnect_max_ms;
        enum config_on_reconnect on_reconnect;
        uint64_t max_stale_ms;
        uint64_t heartbeat_timeout_ms; /* 0: off */
        uint64_t max_message_bytes;
        bool l2;
        char *key_format;
        struct config_strings sentinels; /* "host:port" items; set: host/port/unix unused */
        char *master_name;
        char *sentinel_password;
        char *stream;        /* "" : no catch-up stream */
        unsigned stream_batch;
    } redis;

    struct {
        char *path;          /* "" : no snapshot */
        uint64_t interval_ms; /* 0: only at a clean stop */
    } snapshot;

    struct {
        char *url;           /* "" : no L3 */
        uint64_t timeout_ms;
        uint64_t negative_ttl_ms;
        unsigned max_concurrent;
    } origin;

    struct {
        uint64_t max_bytes;
        uint64_t tenant_max_bytes;
        unsigned max_tenants;
        double high_watermark;
        double low_watermark;
        unsigned hot_reads;  /* 0: hot refresh off */
        uint64_t tombstone_ttl_ms;
    } memory;

    struct config_kind kinds[CONFIG_MAX_KINDS];
    size_t kind_count;

    struct config_application *applications;
    size_t application_count;

    struct config_access_rule *access;
    size_t access_count;

    struct {
        char *listen;        /* "" : off; otherwise "ADDRESS:PORT" */
    } metrics;
};

/* Loads and validates FILE. On success returns a new config (the caller owns
 * it; free with config_free()). On failure returns NULL and writes
 * "FILE:LINE:COLUMN: message" (or "FILE: message" when there is no position)
 * into error[ERROR_MAX] (errors.h). */
struct config *config_load(const char *path, char *error);

/* Parses the same YAML from memory; `name` stands in for the file name in
 * error messages. Used by config_load() and by the tests and fuzzer. */
struct config *config_load_buffer(const char *name, const char *text, size_t len, char *error);

/* A config holding only the defaults of docs/reference.md §9. Cannot fail. */
struct config *config_defaults(void);

void config_free(struct config *config);

/* Returns the index of the kind called name[0..len), or -1. */
int config_kind_find(const struct config *config, const char *name, size_t len);

/* "64mb" -> bytes, "500ms" -> milliseconds. Return 0, or -1 on a malformed or
 * overflowing value. Sizes take b/kb/mb/gb (1024-based, case-insensitive) or
 * none; durations take ms/s/m/h or none (seconds). */
int config_parse_size(const char *text, uint64_t *out);
int config_parse_duration(const char *text, uint64_t *out_ms);

#endif
