/* commands.c - the query commands of docs/reference.md §4 (see commands.h).
 *
 * Each command validates its arguments (tenant alphabet, access rules,
 * kinds, staleness), reads what it needs under one shard read lock, and
 * writes one reply. Values are served as the compact JSON stored at apply
 * time; authorization answers come from the derived blobs, so the hot path
 * never parses JSON or allocates. */
#include "commands.h"
#include "command_call.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "blocked.h"
#include "cache.h"
#include "client.h"
#include "config.h"
#include "fill.h"
#include "freshness.h"
#include "log.h"
#include "names.h"
#include "message.h"
#include "perm.h"
#include "protocol.h"
#include "reply.h"
#include "report.h"
#include "stats.h"
#include "tracking.h"
#include "transaction.h"
#include "util.h"
#include "value.h"

#define ANCESTORS_MAX_DEPTH 256
#define CHILDREN_INITIAL 16


static const char *arg(const struct command_call *call, size_t i, size_t *len)
{
    *len = call->request->argv_len[i];
    return call->request->argv[i];
}

/* Writes text[0..len) into shown[size] for an error message: shortened,
 * with control and non-ASCII bytes as '?' (a NUL must not cut "credit\0"
 * short, nor a byte a client sent break the reply line). */
static void quote_safely(const char *text, size_t len, char *shown, size_t size)
{
    size_t n = len < size - 1 ? len : size - 1;
    for (size_t i = 0; i < n; i++)
        shown[i] = (text[i] >= 0x20 && text[i] < 0x7f) ? text[i] : '?';
    shown[n] = '\0';
}

/* ---- shared checks ---- */

/* The client's grant under the thread's current config (recomputed after a
 * reload). Cannot fail. */
static const struct acl_grant *client_grant(struct command_call *call)
{
    struct commands_client *client = call->client;
    if (client->grant_generation != call->env->config_generation) {
        acl_grant_clear(&client->grant);
        acl_grant_compute(call->env->config, client->uid, client->gid, &client->grant);
        client->grant_generation = call->env->config_generation;
    }
    return &client->grant;
}

static bool access_tenant(struct command_call *call, const char *tenant, size_t len)
{
    struct commands_client *client = call->client;
    client_grant(call);
    if (!names_valid_tenant(tenant, len)) {
        reply_error(call->out, "ERR invalid tenant");
        return false;
    }
    if (!acl_allows_tenant(&client->grant, tenant, len)) {
        reply_error(call->out, "NOPERM this user has no access to tenant '%.*s'", (int)len, tenant);
        return false;
    }
    return true;
}

/* Critical data is refused while the stream is stale; reference data is
 * served and counted. Returns false (after replying) when refused. */
static bool staleness_allows(struct command_call *call, unsigned kind)
{
    if (!freshness_stale(call->now_ms, call->env->config->redis.max_stale_ms))
        return true;
    if (call->env->config->kinds[kind].tier == CONFIG_TIER_REFERENCE) {
        stats_add(&stats.stale_served, 1);
        return true;
    }
    stats_add(&stats.stale_refused, 1);
    /* Tracking applications drop what they hold before the first refusal. */
    tracking_check_stale(freshness_down_since(), call->now_ms,
                         call->env->config->redis.max_stale_ms);
    reply_error(call->out,
                "STALE invalidation stream down for %llus; critical data may be stale",
                (unsigned long long)(freshness_down_ms(call->now_ms) / 1000));
    return false;
}

static int kind_argument(struct command_call *call, const char *name, size_t len)
{
    int kind = config_kind_find(call->env->config, name, len);
    if (kind < 0) {
        /* Quoted as sent, shortened, without control or non-ASCII bytes: a
         * NUL must not cut "credit\0" to "credit" in the message. */
        char shown[65];
        quote_safely(name, len, shown, sizeof(shown));
        reply_error(call->out, "ERR unknown kind '%s'", shown);
    }
    return kind;
}

static bool key_argument(struct command_call *call, const char *key, size_t len)
{
    if (names_valid_key(key, len))
        return true;
    reply_error(call->out, "ERR invalid key");
    return false;
}

/* Looks an entry up (blocked.h): true with *item set when there is a
 * value. A miss being filled reads as absent here; the request's run is then
 * parked and what the command wrote is discarded (blocked_run_end), so a
 * handler writes its reply as if every lookup had answered. */
static bool lookup(struct command_call *call, struct cache_reader *reader, const char *tenant,
                   size_t tenant_len, unsigned kind, const char *key, size_t key_len,
                   struct blocked_item *item)
{
    return blocked_lookup(call->client->blocked, reader, tenant, tenant_len, kind, key, key_len,
                          BLOCKED_MISS_WAIT, item) == BLOCKED_FOUND;
}

static void reply_item(struct reply_buffer *out, bool found, const struct blocked_item *item)
{
    if (found)
        reply_bulk(out, item->json, item->json_len);
    else
        reply_nil(out);
}

/* ---- PING, QUIT, COMMAND ---- */

static void command_ping(struct command_call *call)
{
    if (call->request->argc == 2) {
        size_t len;
        const char *message = arg(call, 1, &len);
        reply_bulk(call->out, message, len);
    } else {
        reply_status(call->out, "PONG");
    }
}

static void command_quit(struct command_call *call)
{
    reply_status(call->out, "OK");
    call->client->close_after_reply = true;
}

/* ---- GET and MGET ---- */

/* Reads one entry named by (tenant, kind, key) after its checks and
 * replies its value or nil. A read by full name (name not NULL; tenant
 * points into it) is remembered for CLIENT TRACKING under the shard's read
 * lock, so no change can fall between the read and the remembering. */
static void get_one(struct command_call *call, const char *tenant, size_t tenant_len, int kind,
                    const char *key, size_t key_len, const char *name, size_t name_len)
{
    struct cache_reader reader;
    struct blocked_item item;
    cache_read_begin(call->env->cache, tenant, tenant_len, call->now_ms, &reader);
    bool found = lookup(call, &reader, tenant, tenant_len, (unsigned)kind, key, key_len, &item);
    reply_item(call->out, found, &item);
    if (name != NULL && call->client->tracking_flags != 0)
        tracking_remember(call->client, name, name_len, (size_t)(tenant - name), tenant_len);
    cache_read_end(&reader);
}

static void command_get(struct command_call *call)
{
    size_t tenant_len, kind_len, key_len, name_len = 0;
    const char *tenant, *kind_name, *key, *name = NULL;
    int kind;
    if (call->request->argc == 2) {
        name = arg(call, 1, &name_len);
        if (!names_parse_entry(call->env->config, name, name_len, &tenant, &tenant_len,
                                 &kind, &key, &key_len)) {
            reply_nil(call->out);
            return;
        }
    } else if (call->request->argc == 4) {
        tenant = arg(call, 1, &tenant_len);
        kind_name = arg(call, 2, &kind_len);
        key = arg(call, 3, &key_len);
        if (!access_tenant(call, tenant, tenant_len) ||
            (kind = kind_argument(call, kind_name, kind_len)) < 0 ||
            !key_argument(call, key, key_len))
            return;
    } else {
        reply_error(call->out, "ERR wrong number of arguments for 'GET'");
        return;
    }
    if ((call->request->argc == 2 && !access_tenant(call, tenant, tenant_len)) ||
        !staleness_allows(call, (unsigned)kind))
        return;
    get_one(call, tenant, tenant_len, kind, key, key_len, name, name_len);
}

static bool mget_names_form(const struct command_call *call)
{
    size_t len;
    const char *first = arg(call, 1, &len);
    return memchr(first, ':', len) != NULL;
}

static void command_mget(struct command_call *call)
{
    size_t argc = call->request->argc;
    if (mget_names_form(call)) {
        /* Decide every name's access and staleness before any lookup, so
         * that a refusal replies one error, not half an array. */
        for (size_t i = 1; i < argc; i++) {
            size_t len, tenant_len, key_len;
            const char *name = arg(call, i, &len), *tenant, *key;
            int kind;
            if (!names_parse_entry(call->env->config, name, len, &tenant, &tenant_len, &kind,
                                     &key, &key_len))
                continue;
            if (!access_tenant(call, tenant, tenant_len) || !staleness_allows(call, (unsigned)kind))
                return;
        }
        /* Every miss is submitted in this one pass, so they are filled at
         * once; a run that waits has what it wrote discarded. */
        reply_array(call->out, argc - 1);
        for (size_t i = 1; i < argc; i++) {
            size_t len, tenant_len, key_len;
            const char *name = arg(call, i, &len), *tenant, *key;
            int kind;
            if (names_parse_entry(call->env->config, name, len, &tenant, &tenant_len, &kind,
                                    &key, &key_len))
                get_one(call, tenant, tenant_len, kind, key, key_len, name, len);
            else
                reply_nil(call->out);
        }
        return;
    }
    if (argc < 4) {
        reply_error(call->out, "ERR wrong number of arguments for 'MGET'");
        return;
    }
    size_t tenant_len, kind_len;
    const char *tenant = arg(call, 1, &tenant_len);
    const char *kind_name = arg(call, 2, &kind_len);
    int kind;
    if (!access_tenant(call, tenant, tenant_len) ||
        (kind = kind_argument(call, kind_name, kind_len)) < 0 ||
        !staleness_allows(call, (unsigned)kind))
        return;
    for (size_t i = 3; i < argc; i++) {
        size_t key_len;
        const char *key = arg(call, i, &key_len);
        if (!key_argument(call, key, key_len))
            return;
    }
    size_t count = argc - 3;
    struct cache_reader reader;
    cache_read_begin(call->env->cache, tenant, tenant_len, call->now_ms, &reader);
    reply_array(call->out, count);
    for (size_t i = 0; i < count; i++) {
        size_t key_len;
        const char *key = arg(call, i + 3, &key_len);
        struct blocked_item item;
        bool found = lookup(call, &reader, tenant, tenant_len, (unsigned)kind, key, key_len, &item);
        reply_item(call->out, found, &item);
    }
    cache_read_end(&reader);
}

/* ---- the authorization commands ---- */

/* Validates "CMD tenant key ..." for a built-in kind. */
static bool tenant_key_arguments(struct command_call *call, unsigned kind, const char **tenant,
                                 size_t *tenant_len, const char **key, size_t *key_len)
{
    *tenant = arg(call, 1, tenant_len);
    *key = arg(call, 2, key_len);
    return access_tenant(call, *tenant, *tenant_len) && key_argument(call, *key, *key_len) &&
           staleness_allows(call, kind);
}

static bool permission_argument(struct command_call *call, const char *permission, size_t len)
{
    if (perm_valid(permission, len))
        return true;
    reply_error(call->out, "ERR invalid permission");
    return false;
}

/* The start of every "CMD tenant key [permission]" command: checks the
 * arguments (the permission in argv[3] too when with_permission), opens a
 * read session on the tenant and looks the key up in `kind`. Returns false,
 * with the reply written, when the arguments are refused; otherwise the
 * caller replies and ends the session. */
static bool read_one(struct command_call *call, unsigned kind, bool with_permission,
                     struct cache_reader *reader, struct blocked_item *item, bool *found)
{
    const char *tenant, *key;
    size_t tenant_len, key_len, permission_len;
    if (!tenant_key_arguments(call, kind, &tenant, &tenant_len, &key, &key_len))
        return false;
    if (with_permission) {
        const char *permission = arg(call, 3, &permission_len);
        if (!permission_argument(call, permission, permission_len))
            return false;
    }
    cache_read_begin(call->env->cache, tenant, tenant_len, call->now_ms, reader);
    *found = lookup(call, reader, tenant, tenant_len, kind, key, key_len, item);
    return true;
}

static void command_credit(struct command_call *call)
{
    struct cache_reader reader;
    struct blocked_item item;
    bool found;
    if (!read_one(call, CONFIG_KIND_CREDIT, false, &reader, &item, &found))
        return;
    const char *text;
    size_t text_len;
    if (found && value_credit(item.json, item.json_len, item.derived, item.derived_len, &text,
                              &text_len) == 0)
        reply_bulk(call->out, text, text_len);
    else
        reply_nil(call->out);
    cache_read_end(&reader);
}

static void command_status(struct command_call *call)
{
    struct cache_reader reader;
    struct blocked_item item;
    bool found;
    if (!read_one(call, CONFIG_KIND_USER, false, &reader, &item, &found))
        return;
    const char *status;
    size_t status_len;
    struct value_strings roles;
    if (found && value_user(item.json, item.json_len, item.derived, item.derived_len, &status,
                            &status_len, &roles) == 0)
        reply_bulk(call->out, status, status_len);
    else
        reply_nil(call->out);
    cache_read_end(&reader);
}

/* True if any pattern of the role grants permission, which
 * permission_argument() accepted. The patterns are read only up to the
 * first that grants, and each is walked alone. */
static bool role_grants(const struct blocked_item *role, const char *permission, size_t len)
{
    struct value_strings patterns;
    if (value_role_permissions_lazy(role->json, role->json_len, role->derived, role->derived_len,
                                    &patterns) != 0)
        return false;
    const char *pattern;
    size_t pattern_len;
    while (value_strings_next(&patterns, &pattern, &pattern_len)) {
        if (perm_match_valid(pattern, pattern_len, permission, len))
            return true;
    }
    return false;
}

/* True if status[0..len) is one of the configured active statuses. Compared
 * byte by byte up to the configured string's NUL (no strlen() per CAN). */
static bool status_active(const struct config *config, const char *status, size_t len)
{
    for (size_t i = 0; i < config->active_statuses.count; i++) {
        const char *active = config->active_statuses.items[i];
        size_t n = 0;
        while (n < len && active[n] != '\0' && active[n] == status[n])
            n++;
        if (n == len && active[n] == '\0')
            return true;
    }
    return false;
}

static void command_can(struct command_call *call)
{
    size_t tenant_len, permission_len;
    const char *tenant = arg(call, 1, &tenant_len);
    const char *permission = arg(call, 3, &permission_len);
    struct cache_reader reader;
    struct blocked_item item;
    bool found;
    /* Roles are critical too: the staleness check covers both kinds. */
    if (!staleness_allows(call, CONFIG_KIND_ROLE) ||
        !read_one(call, CONFIG_KIND_USER, true, &reader, &item, &found))
        return;
    const char *status;
    size_t status_len;
    struct value_strings roles;
    /* The roles are read only up to the first that grants. */
    if (!found || value_user_lazy(item.json, item.json_len, item.derived, item.derived_len,
                                  &status, &status_len, &roles) != 0) {
        cache_read_end(&reader);
        reply_nil(call->out);
        return;
    }
    bool granted = false;
    if (status_active(call->env->config, status, status_len)) {
        /* A grant from the roles at hand stands: roles that miss are then
         * only prefetched. Otherwise every role that misses is filled, and
         * the decision made again with them; an unknown role grants
         * nothing. */
        struct blocked *blocked = call->client->blocked;
        bool missing = false;
        const char *role_id;
        size_t role_len;
        struct value_strings first = roles;
        while (!granted && value_strings_next(&first, &role_id, &role_len)) {
            struct blocked_item role;
            enum blocked_lookup got = blocked_lookup(blocked, &reader, tenant, tenant_len,
                                                     CONFIG_KIND_ROLE, role_id, role_len,
                                                     BLOCKED_MISS_PEEK, &role);
            missing = missing || got == BLOCKED_PENDING;
            granted = got == BLOCKED_FOUND && role_grants(&role, permission, permission_len);
        }
        if (missing) {
            enum blocked_miss miss = granted ? BLOCKED_MISS_PREFETCH : BLOCKED_MISS_WAIT;
            while (value_strings_next(&roles, &role_id, &role_len)) {
                struct blocked_item role;
                if (blocked_lookup(blocked, &reader, tenant, tenant_len, CONFIG_KIND_ROLE, role_id,
                                   role_len, miss, &role) == BLOCKED_FOUND &&
                    !granted)
                    granted = role_grants(&role, permission, permission_len);
            }
        }
    }
    cache_read_end(&reader);
    reply_integer(call->out, granted ? 1 : 0);
}

static void command_rolecan(struct command_call *call)
{
    size_t permission_len;
    const char *permission = arg(call, 3, &permission_len);
    struct cache_reader reader;
    struct blocked_item role;
    bool found;
    if (!read_one(call, CONFIG_KIND_ROLE, true, &reader, &role, &found))
        return;
    if (!found)
        reply_nil(call->out);
    else
        reply_integer(call->out, role_grants(&role, permission, permission_len) ? 1 : 0);
    cache_read_end(&reader);
}

static void command_perms(struct command_call *call)
{
    struct cache_reader reader;
    struct blocked_item role;
    bool found;
    if (!read_one(call, CONFIG_KIND_ROLE, false, &reader, &role, &found))
        return;
    struct value_strings patterns;
    if (!found || value_role_permissions(role.json, role.json_len, role.derived,
                                             role.derived_len, &patterns) != 0) {
        reply_nil(call->out);
    } else {
        reply_array(call->out, patterns.remaining);
        const char *pattern;
        size_t pattern_len;
        while (value_strings_next(&patterns, &pattern, &pattern_len))
            reply_bulk(call->out, pattern, pattern_len);
    }
    cache_read_end(&reader);
}

/* ---- hierarchy ---- */

static struct log_ratelimit cycle_log;

static void command_ancestors(struct command_call *call)
{
    const char *tenant, *entity;
    size_t tenant_len, entity_len;
    if (!tenant_key_arguments(call, CONFIG_KIND_HIERARCHY, &tenant, &tenant_len, &entity,
                              &entity_len))
        return;
    struct cache_reader reader;
    struct blocked_item item;
    cache_read_begin(call->env->cache, tenant, tenant_len, call->now_ms, &reader);
    if (!lookup(call, &reader, tenant, tenant_len, CONFIG_KIND_HIERARCHY, entity, entity_len,
                &item)) {
        cache_read_end(&reader);
        reply_nil(call->out);
        return;
    }
    /* Collect the chain first: the array header needs its length. An
     * ancestor that misses is filled and the chain walked again. */
    const char *chain[ANCESTORS_MAX_DEPTH];
    size_t chain_len[ANCESTORS_MAX_DEPTH];
    size_t depth = 0;
    bool cut = false, found = true;
    while (found) {
        bool has_parent = false;
        const char *parent;
        size_t parent_len;
        value_hierarchy_parent(item.derived, item.derived_len, &has_parent, &parent, &parent_len);
        if (!has_parent)
            break;
        bool seen = parent_len == entity_len && memcmp(parent, entity, entity_len) == 0;
        for (size_t i = 0; i < depth && !seen; i++)
            seen = chain_len[i] == parent_len && memcmp(chain[i], parent, parent_len) == 0;
        if (seen || depth == ANCESTORS_MAX_DEPTH) {
            cut = true;
            break;
        }
        chain[depth] = parent;
        chain_len[depth] = parent_len;
        depth++;
        found = lookup(call, &reader, tenant, tenant_len, CONFIG_KIND_HIERARCHY, parent, parent_len,
                       &item);
    }
    reply_array(call->out, depth);
    for (size_t i = 0; i < depth; i++)
        reply_bulk(call->out, chain[i], chain_len[i]);
    cache_read_end(&reader);
    if (cut)
        log_limited(&cycle_log, 60000, LOG_LEVEL_WARNING,
                    "hierarchy of tenant '%.*s' has a cycle or is deeper than %d above '%.*s'; "
                    "ANCESTORS cut it",
                    (int)tenant_len, tenant, ANCESTORS_MAX_DEPTH, (int)entity_len, entity);
}

/* A child's key, as the cache holds it (not NUL-terminated). */
struct child {
    const char *key;
    size_t len;
};

struct children {
    struct child *items;
    size_t count;
    size_t capacity;
};

static void collect_child(void *arg, const struct cache_entry *entry)
{
    struct children *children = arg;
    if (children->count == children->capacity) {
        children->capacity = children->capacity ? children->capacity * 2 : CHILDREN_INITIAL;
        children->items =
            xrealloc(children->items, children->capacity * sizeof(*children->items));
    }
    struct child *child = &children->items[children->count++];
    child->key = cache_entry_key(entry, &child->len);
}

/* Byte order, a key before any longer one it begins. */
static int compare_children(const void *a, const void *b)
{
    const struct child *x = a, *y = b;
    int order = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);
    if (order != 0)
        return order;
    return (x->len > y->len) - (x->len < y->len);
}

static void command_children(struct command_call *call)
{
    const char *tenant, *entity;
    size_t tenant_len, entity_len;
    if (!tenant_key_arguments(call, CONFIG_KIND_HIERARCHY, &tenant, &tenant_len, &entity,
                              &entity_len))
        return;
    struct children children = {0};
    struct cache_reader reader;
    cache_read_begin(call->env->cache, tenant, tenant_len, call->now_ms, &reader);
    cache_read_index(&reader, CONFIG_KIND_HIERARCHY, entity, entity_len, collect_child, &children);
    if (children.count > 1)
        qsort(children.items, children.count, sizeof(*children.items), compare_children);
    reply_array(call->out, children.count);
    for (size_t i = 0; i < children.count; i++)
        reply_bulk(call->out, children.items[i].key, children.items[i].len);
    cache_read_end(&reader);
    free(children.items);
}

/* ---- TENANT, INFO, HEALTH, FLUSH ---- */

static void command_tenant(struct command_call *call)
{
    size_t tenant_len;
    const char *tenant = arg(call, 1, &tenant_len);
    if (!access_tenant(call, tenant, tenant_len))
        return;
    struct cache_tenant_stats *figures = xcalloc(1, sizeof(*figures));
    bool resident = cache_tenant_get_stats(call->env->cache, tenant, tenant_len, figures);
    struct evbuffer *text = evbuffer_new();
    evbuffer_add_printf(text, "tenant:%.*s\r\nresident:%d\r\nentries:%llu\r\nbytes:%llu\r\n"
                        "critical_bytes:%llu\r\nhits:%llu\r\nmisses:%llu\r\nlast_access:%llu\r\n",
                        (int)tenant_len, tenant, resident ? 1 : 0,
                        (unsigned long long)figures->entries, (unsigned long long)figures->bytes,
                        (unsigned long long)figures->critical_bytes,
                        (unsigned long long)figures->hits, (unsigned long long)figures->misses,
                        (unsigned long long)(figures->last_access_ms / 1000));
    const struct config *config = call->env->config;
    for (size_t k = 0; k < config->kind_count; k++) {
        uint64_t entries = k < figures->kind_count ? figures->kind_entries[k] : 0;
        uint64_t bytes = k < figures->kind_count ? figures->kind_bytes[k] : 0;
        evbuffer_add_printf(text, "%s_entries:%llu\r\n%s_bytes:%llu\r\n", config->kinds[k].name,
                            (unsigned long long)entries, config->kinds[k].name,
                            (unsigned long long)bytes);
    }
    size_t len = evbuffer_get_length(text);
    reply_bulk(call->out, evbuffer_pullup(text, -1), len);
    evbuffer_free(text);
    free(figures);
}

static void command_flush(struct command_call *call)
{
    size_t tenant_len, kind_len = 0;
    const char *tenant = arg(call, 1, &tenant_len);
    const char *kind_name = call->request->argc == 3 ? arg(call, 2, &kind_len) : NULL;
    struct commands_client *client = call->client;
    bool every_tenant = tenant_len == 1 && tenant[0] == '*';
    if (!every_tenant && !access_tenant(call, tenant, tenant_len))
        return;
    const struct acl_grant *grant = client_grant(call);
    if (!grant->admin) {
        reply_error(call->out, "NOPERM FLUSH needs an admin peer");
        return;
    }
    /* Every tenant is flushed only by a peer that may read every tenant. */
    if (every_tenant && !grant->all_tenants) {
        reply_error(call->out, "NOPERM FLUSH * needs access to every tenant");
        return;
    }
    int kind = -1;
    if (kind_name != NULL && (kind = kind_argument(call, kind_name, kind_len)) < 0)
        return;
    /* The epoch first: a fill that completes while the caches are being
     * flushed must not cache what it brought from before the flush. */
    fill_note_flush(call->env->fill, every_tenant ? NULL : tenant, every_tenant ? 0 : tenant_len);
    uint64_t dropped = cache_flush(call->env->cache, every_tenant ? NULL : tenant,
                                   every_tenant ? 0 : tenant_len, kind);
    log_notice("FLUSH %.*s%s%.*s by uid %u dropped %llu entries", (int)tenant_len, tenant,
               kind_name ? " " : "", (int)kind_len, kind_name ? kind_name : "",
               (unsigned)client->uid, (unsigned long long)dropped);
    reply_status(call->out, "OK");
}

/* ---- dispatch ---- */

/* The one place a command is declared: dispatch, arity, and what COMMAND
 * and COMMAND DOCS tell redis-cli and client libraries (docs/reference.md §4). */
#define RO_FAST (COMMAND_READONLY | COMMAND_FAST)
const struct command commands_table[] = {
    {"GET", 2, 4, command_get, RO_FAST, "tenantcached",
     "The entry's value as compact JSON, or nil (by full name, or tenant kind key)",
     "name_or_tenant [kind key]", "0.1.0"},
    {"MGET", 2, -1, command_mget, RO_FAST, "tenantcached",
     "The values of several entries (full names, or tenant kind key...)", "name_or_tenant arg...",
     "0.1.0"},
    {"CAN", 4, 4, command_can, RO_FAST, "tenantcached",
     "1 if the user is active and a role of theirs grants the permission, 0 if not, nil if the user is unknown",
     "tenant user permission", "0.1.0"},
    {"CREDIT", 3, 3, command_credit, RO_FAST, "tenantcached",
     "What an operation costs (a decimal string), or nil", "tenant operation", "0.1.0"},
    {"STATUS", 3, 3, command_status, RO_FAST, "tenantcached", "The user's status, or nil",
     "tenant user", "0.1.0"},
    {"ROLECAN", 4, 4, command_rolecan, RO_FAST, "tenantcached",
     "1 if the role grants the permission, 0 if not, nil if the role is unknown",
     "tenant role permission", "0.1.0"},
    {"PERMS", 3, 3, command_perms, RO_FAST, "tenantcached",
     "The role's permission patterns, or nil", "tenant role", "0.1.0"},
    {"ANCESTORS", 3, 3, command_ancestors, COMMAND_READONLY, "tenantcached",
     "The entity's parents up to the root, or nil if the entity is unknown", "tenant entity",
     "0.1.0"},
    {"CHILDREN", 3, 3, command_children, COMMAND_READONLY, "tenantcached",
     "The cached entities whose parent is the entity, sorted", "tenant entity", "0.1.0"},
    {"TENANT", 2, 2, command_tenant, COMMAND_READONLY, "tenantcached",
     "Entries, bytes, hits and misses of one tenant", "tenant", "0.1.0"},
    {"PING", 1, 2, command_ping, COMMAND_FAST | COMMAND_STALE, "connection", "Ping the server",
     "[message]", "0.1.0"},
    {"INFO", 1, 2, report_command_info, COMMAND_STALE | COMMAND_LOADING, "server",
     "Information and statistics about the daemon", "[section]", "0.1.0"},
    {"HEALTH", 1, 1, report_command_health, COMMAND_STALE, "server",
     "Memory, Redis link and staleness as JSON, with recommendations", "", "0.1.0"},
    {"FLUSH", 2, 3, command_flush, COMMAND_ADMIN, "tenantcached",
     "Drop a tenant's entries (or of every tenant: *), of one kind or all (admin)",
     "tenant [kind]", "0.1.0"},
    {"QUIT", 1, 1, command_quit, COMMAND_FAST | COMMAND_STALE | COMMAND_NO_QUEUE, "connection",
     "Close the connection", "", "0.1.0"},
    {"COMMAND", 1, -1, command_docs_command, COMMAND_STALE | COMMAND_LOADING, "server",
     "The daemon's commands: all, COUNT, INFO name..., DOCS [name...], LIST",
     "[COUNT|INFO|DOCS|LIST] [name...]", "0.1.0"},
    {"HELLO", 1, -1, client_command_hello, COMMAND_FAST | COMMAND_STALE, "connection",
     "Handshake: choose RESP2 or RESP3, set the client name",
     "[protover:integer [AUTH username password] [SETNAME clientname]]", "0.2.0"},
    {"CLIENT", 2, -1, client_command_client, COMMAND_STALE, "connection",
     "The connection's id and name, library name and version, CLIENT LIST and INFO",
     "subcommand [arg...]", "0.2.0"},
    {"SUBSCRIBE", 2, -1, tracking_command_subscribe, COMMAND_FAST | COMMAND_STALE, "pubsub",
     "Subscribe to __redis__:invalidate, the channel of CLIENT TRACKING REDIRECT", "channel...",
     "0.2.0"},
    {"UNSUBSCRIBE", 1, -1, tracking_command_unsubscribe, COMMAND_FAST | COMMAND_STALE, "pubsub",
     "Unsubscribe from __redis__:invalidate", "[channel...]", "0.2.0"},
    {"SELECT", 2, 2, client_command_select, COMMAND_FAST | COMMAND_STALE, "connection",
     "Select database 0 (the only one)", "index:integer", "0.2.0"},
    {"ECHO", 2, 2, client_command_echo, COMMAND_FAST | COMMAND_STALE, "connection",
     "Return the message", "message", "0.2.0"},
    {"MULTI", 1, 1, transaction_command_multi, COMMAND_FAST | COMMAND_STALE | COMMAND_NO_QUEUE,
     "transactions", "Start a transaction: later commands are queued until EXEC", "", "0.2.0"},
    {"EXEC", 1, 1, transaction_command_exec, COMMAND_STALE | COMMAND_NO_QUEUE, "transactions",
     "Run the queued commands and answer their replies in order", "", "0.2.0"},
    {"DISCARD", 1, 1, transaction_command_discard, COMMAND_FAST | COMMAND_STALE | COMMAND_NO_QUEUE,
     "transactions", "Forget the queued commands", "", "0.2.0"},
    {"WATCH", 2, -1, transaction_command_watch, COMMAND_FAST | COMMAND_STALE | COMMAND_NO_QUEUE,
     "transactions", "Accepted: no client can change a key, so a watch never fails EXEC",
     "key...", "0.2.0"},
    {"UNWATCH", 1, 1, transaction_command_unwatch, COMMAND_FAST | COMMAND_STALE, "transactions",
     "Accepted (see WATCH)", "", "0.2.0"},
};
const size_t commands_table_count = UTIL_ARRAY_LEN(commands_table);

const struct command *commands_find(const char *name, size_t len)
{
    if (len == 0)
        return NULL;
    /* Every request looks its command up: a row whose first letter differs
     * is passed without a full comparison. Names are upper-case letters. */
    char first = (char)(name[0] & ~0x20);
    for (size_t i = 0; i < commands_table_count; i++) {
        const struct command *command = &commands_table[i];
        if (command->name[0] == first && util_equal_nocase(name, len, command->name))
            return command;
    }
    return NULL;
}

const char *commands_arg(const struct command_call *call, size_t i, size_t *len)
{
    return arg(call, i, len);
}

void commands_quote(const char *text, size_t len, char *shown, size_t size)
{
    quote_safely(text, len, shown, size);
}

const struct acl_grant *commands_grant(struct command_call *call)
{
    return client_grant(call);
}

const struct acl_grant *commands_client_grant(struct commands_env *env,
                                              struct commands_client *client)
{
    struct command_call call = {.env = env, .client = client};
    return client_grant(&call);
}

/* Finds the command, checks its arity and runs its handler. */
static void run_command(struct commands_env *env, struct commands_client *client,
                        const struct protocol_request *request, uint64_t now_ms)
{
    const char *name = request->argv[0];
    size_t name_len = request->argv_len[0];
    const struct command *command = commands_find(name, name_len);
    if (command == NULL) {
        /* Quote what was sent, shortened and without control bytes. */
        char shown[64];
        quote_safely(name, name_len, shown, sizeof(shown));
        reply_error(client->out, "ERR unknown command '%s'", shown);
        transaction_fail(client);
        return;
    }
    client_note_command(client, command->name, now_ms);
    int argc = (int)request->argc;
    if (argc < command->min_args || (command->max_args >= 0 && argc > command->max_args)) {
        reply_error(client->out, "ERR wrong number of arguments for '%s'", command->name);
        transaction_fail(client);
        return;
    }
    if (transaction_queueing(client) && !(command->flags & COMMAND_NO_QUEUE)) {
        transaction_queue(client, request, env->config->listen.max_reply_backlog, client->out);
        return;
    }
    struct command_call call = {
        .env = env,
        .client = client,
        .request = request,
        .out = client->out,
        .now_ms = now_ms,
    };
    command->handler(&call);
}

void commands_run_step(struct commands_env *env, struct commands_client *client,
                       const struct protocol_request *request, uint64_t now_ms)
{
    blocked_step_begin(client->blocked);
    run_command(env, client, request, now_ms);
    blocked_step_end(client->blocked);
}

enum commands_outcome commands_execute(struct commands_env *env, struct commands_client *client,
                                       const struct protocol_request *request, uint64_t now_ms)
{
    struct blocked *blocked = client->blocked;
    if (request != blocked_request(blocked))
        stats_add(&stats.commands_processed, 1); /* not again when resumed */
    blocked_run_begin(blocked, env->fill, env->config, client->out);
    commands_run_step(env, client, request, now_ms);
    if (blocked_run_end(blocked, request) == BLOCKED_PARKED)
        return COMMANDS_BLOCKED;
    tracking_command_done(client);
    return COMMANDS_DONE;
}
