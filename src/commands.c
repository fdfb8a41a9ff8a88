/* commands.c - the query commands of SPEC §4 (see commands.h).
 *
 * Each command validates its arguments (tenant alphabet, access rules,
 * kinds, staleness), reads what it needs under one shard read lock, and
 * writes one reply. Values are served as the compact JSON stored at apply
 * time; authorization answers come from the derived blobs, so the hot path
 * never parses JSON or allocates. */
#include "commands.h"
#include "command_call.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cache.h"
#include "client.h"
#include "config.h"
#include "fill.h"
#include "log.h"
#include "message.h"
#include "perm.h"
#include "protocol.h"
#include "redis_link.h"
#include "reply.h"
#include "sentinel.h"
#include "stats.h"
#include "tracking.h"
#include "transaction.h"
#include "util.h"
#include "value.h"

#define ANCESTORS_MAX_DEPTH 256
#define CHILDREN_INITIAL 16

/* An entry's value as a command sees it: from the cache (valid while the
 * shard is read-locked) or from a fill made for this request. */
struct item {
    const char *json;
    size_t json_len;
    const void *derived;
    size_t derived_len;
};

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
    if (!message_valid_tenant(tenant, len)) {
        reply_error(call->out, "ERR invalid tenant");
        return false;
    }
    if (!acl_allows_tenant(&client->grant, tenant, len)) {
        reply_error(call->out, "NOPERM this user has no access to tenant '%.*s'", (int)len, tenant);
        return false;
    }
    return true;
}

/* Since when (monotonic ms) the invalidation stream counts as down: the
 * subscription is lost, or (redis.heartbeat_timeout) a publisher went silent.
 * 0 while it is up. */
uint64_t commands_stream_down_since(void)
{
    uint64_t since = stats_get(&stats.redis_connected) ? 0 : stats_get(&stats.redis_down_since_ms);
    uint64_t silent = stats_get(&stats.publisher_silent_since_ms);
    if (silent != 0 && (since == 0 || silent < since))
        since = silent;
    return since;
}

static uint64_t stream_down_seconds(uint64_t now_ms)
{
    uint64_t since = commands_stream_down_since();
    return since != 0 && now_ms > since ? (now_ms - since) / 1000 : 0;
}

static bool stream_stale(const struct command_call *call)
{
    uint64_t since = commands_stream_down_since();
    return since != 0 && call->now_ms > since &&
           call->now_ms - since > call->env->config->redis.max_stale_ms;
}

/* Critical data is refused while the stream is stale; reference data is
 * served and counted. Returns false (after replying) when refused. */
static bool staleness_allows(struct command_call *call, unsigned kind)
{
    if (!stream_stale(call))
        return true;
    if (call->env->config->kinds[kind].tier == CONFIG_TIER_REFERENCE) {
        stats_add(&stats.stale_served, 1);
        return true;
    }
    stats_add(&stats.stale_refused, 1);
    /* Tracking applications drop what they hold before the first refusal. */
    tracking_check_stale(commands_stream_down_since(), call->now_ms,
                         call->env->config->redis.max_stale_ms);
    reply_error(call->out,
                "STALE invalidation stream down for %llus; critical data may be stale",
                (unsigned long long)stream_down_seconds(call->now_ms));
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
    if (message_valid_key(key, len))
        return true;
    reply_error(call->out, "ERR invalid key");
    return false;
}

/* A fill made for this request, or NULL. */
static const struct fill_result *fill_made(const struct commands_client *client, const char *tenant,
                                           size_t tenant_len, unsigned kind, const char *key,
                                           size_t key_len)
{
    for (size_t i = 0; i < client->fill_count; i++) {
        const struct fill_result *result = client->fills[i];
        if (result->kind == kind && result->tenant_len == tenant_len &&
            result->key_len == key_len && memcmp(result->tenant, tenant, tenant_len) == 0 &&
            memcmp(result->key, key, key_len) == 0)
            return result;
    }
    return NULL;
}

/* Looks an entry up for a command: first the fills made for this request
 * (a fill's answer goes to its waiters even when a message raced with it and
 * kept it out of the cache), then the cache (a tombstone or a negative entry
 * answers "not found" without a fill), and on a real miss submits a fill and
 * marks the call blocked. Returns true with *item set when there is a value. */
static bool lookup(struct command_call *call, struct cache_reader *reader, const char *tenant,
                   size_t tenant_len, unsigned kind, const char *key, size_t key_len,
                   struct item *item)
{
    const struct fill_result *made = fill_made(call->client, tenant, tenant_len, kind, key, key_len);
    if (made != NULL) {
        if (made->status == FILL_UNAVAILABLE)
            call->unavailable = true;
        if (made->status != FILL_VALUE)
            return false;
        item->json = made->value.json;
        item->json_len = made->value.json_len;
        item->derived = made->value.derived;
        item->derived_len = made->value.derived_len;
        return true;
    }
    const struct cache_entry *entry = cache_read_find(reader, kind, key, key_len);
    if (entry != NULL) {
        if (cache_entry_state(entry) != CACHE_ENTRY_VALUE)
            return false;
        item->json = cache_entry_value(entry, &item->json_len);
        item->derived = cache_entry_derived(entry, &item->derived_len);
        return true;
    }
    struct fill *fill = call->env->fill;
    if (fill == NULL || !fill_possible(call->env->config, kind))
        return false;
    if (fill_submit(fill, tenant, tenant_len, kind, key, key_len, call->client->fill_waiter) != 0) {
        call->unavailable = true;
        return false;
    }
    call->client->fills_pending++;
    call->blocked = true;
    return false;
}

/* True when the command must not reply now (waiting for fills, or a fill
 * failed and commands_execute answers -UNAVAILABLE). */
static bool deferred(const struct command_call *call)
{
    return call->blocked || call->unavailable;
}

static void reply_item(struct reply_buffer *out, bool found, const struct item *item)
{
    if (found)
        reply_bulk(out, item->json, item->json_len);
    else
        reply_nil(out);
}

/* ---- entry names (redis.key_format) ---- */

static bool name_part_valid(const struct config *config, char placeholder, const char *text,
                            size_t len, int *kind)
{
    switch (placeholder) {
    case 't':
        return message_valid_tenant(text, len);
    case 'k':
        *kind = config_kind_find(config, text, len);
        return *kind >= 0;
    default:
        return message_valid_key(text, len);
    }
}

struct name_parts {
    const char *tenant;
    size_t tenant_len;
    int kind;
    const char *key;
    size_t key_len;
};

/* Matches name against format, placeholder by placeholder. A placeholder
 * followed by literal text only ends where that text occurs, which keeps the
 * backtracking short. */
static bool match_name(const struct config *config, const char *format, const char *name,
                       size_t len, struct name_parts *parts)
{
    while (*format != '\0' && *format != '{') {
        if (len == 0 || *name != *format)
            return false;
        format++;
        name++;
        len--;
    }
    if (*format == '\0')
        return len == 0;
    const char *close = strchr(format, '}');
    if (close == NULL)
        return false;
    char placeholder = strncmp(format, "{tenant}", 8) == 0 ? 't'
                       : strncmp(format, "{kind}", 6) == 0 ? 'k'
                                                           : 'y';
    const char *rest = close + 1;
    for (size_t take = 1; take <= len; take++) {
        if (*rest != '\0' && *rest != '{' && name[take] != *rest && take < len)
            continue;
        if (*rest == '\0' && take != len)
            continue;
        int kind = -1;
        if (!name_part_valid(config, placeholder, name, take, &kind))
            continue;
        if (!match_name(config, rest, name + take, len - take, parts))
            continue;
        if (placeholder == 't') {
            parts->tenant = name;
            parts->tenant_len = take;
        } else if (placeholder == 'k') {
            parts->kind = kind;
        } else {
            parts->key = name;
            parts->key_len = take;
        }
        return true;
    }
    return false;
}

bool commands_parse_name(const struct config *config, const char *name, size_t len,
                         const char **tenant, size_t *tenant_len, int *kind, const char **key,
                         size_t *key_len)
{
    struct name_parts parts = {.kind = -1};
    if (!match_name(config, config->redis.key_format, name, len, &parts))
        return false;
    *tenant = parts.tenant;
    *tenant_len = parts.tenant_len;
    *kind = parts.kind;
    *key = parts.key;
    *key_len = parts.key_len;
    return true;
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

/* Reads one entry named by (tenant, kind, key) after its checks; replies
 * unless write is false or the call is deferred. A reply to a read by full
 * name (name not NULL; tenant points into it) is remembered for CLIENT
 * TRACKING under the shard's read lock, so no change can fall between. */
static void get_one(struct command_call *call, const char *tenant, size_t tenant_len, int kind,
                    const char *key, size_t key_len, bool write, const char *name,
                    size_t name_len)
{
    struct cache_reader reader;
    struct item item;
    cache_read_begin(call->env->cache, tenant, tenant_len, call->now_ms, &reader);
    bool found = lookup(call, &reader, tenant, tenant_len, (unsigned)kind, key, key_len, &item);
    if (write && !deferred(call)) {
        reply_item(call->out, found, &item);
        if (name != NULL && call->client->tracking_flags != 0)
            tracking_remember(call->client, name, name_len, (size_t)(tenant - name), tenant_len);
    }
    cache_read_end(&reader);
}

static void command_get(struct command_call *call)
{
    size_t tenant_len, kind_len, key_len, name_len = 0;
    const char *tenant, *kind_name, *key, *name = NULL;
    int kind;
    if (call->request->argc == 2) {
        name = arg(call, 1, &name_len);
        if (!commands_parse_name(call->env->config, name, name_len, &tenant, &tenant_len,
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
    get_one(call, tenant, tenant_len, kind, key, key_len, true, name, name_len);
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
        /* Check every name first so that a refusal replies one error, not
         * half an array. */
        for (size_t i = 1; i < argc; i++) {
            size_t len, tenant_len, key_len;
            const char *name = arg(call, i, &len), *tenant, *key;
            int kind;
            if (!commands_parse_name(call->env->config, name, len, &tenant, &tenant_len, &kind,
                                     &key, &key_len))
                continue;
            if (!access_tenant(call, tenant, tenant_len) || !staleness_allows(call, (unsigned)kind))
                return;
            /* Look everything up first, so that every miss is filled at once. */
            get_one(call, tenant, tenant_len, kind, key, key_len, false, NULL, 0);
        }
        if (deferred(call))
            return;
        reply_array(call->out, argc - 1);
        for (size_t i = 1; i < argc; i++) {
            size_t len, tenant_len, key_len;
            const char *name = arg(call, i, &len), *tenant, *key;
            int kind;
            if (commands_parse_name(call->env->config, name, len, &tenant, &tenant_len, &kind,
                                    &key, &key_len))
                get_one(call, tenant, tenant_len, kind, key, key_len, true, name, len);
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
    struct item stack_items[16];
    bool stack_found[16];
    struct item *items = count <= 16 ? stack_items : xmalloc(count * sizeof(*items));
    bool *found = count <= 16 ? stack_found : xmalloc(count * sizeof(*found));
    struct cache_reader reader;
    cache_read_begin(call->env->cache, tenant, tenant_len, call->now_ms, &reader);
    for (size_t i = 0; i < count; i++) {
        size_t key_len;
        const char *key = arg(call, i + 3, &key_len);
        found[i] = lookup(call, &reader, tenant, tenant_len, (unsigned)kind, key, key_len, &items[i]);
    }
    if (!deferred(call)) {
        reply_array(call->out, count);
        for (size_t i = 0; i < count; i++)
            reply_item(call->out, found[i], &items[i]);
    }
    cache_read_end(&reader);
    if (items != stack_items) {
        free(items);
        free(found);
    }
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
 * caller replies (unless deferred) and ends the session. */
static bool read_one(struct command_call *call, unsigned kind, bool with_permission,
                     struct cache_reader *reader, struct item *item, bool *found)
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
    struct item item;
    bool found;
    if (!read_one(call, CONFIG_KIND_CREDIT, false, &reader, &item, &found))
        return;
    const char *text;
    size_t text_len;
    double cost;
    if (!deferred(call)) {
        if (found && value_credit(item.derived, item.derived_len, &cost, &text, &text_len) == 0)
            reply_bulk(call->out, text, text_len);
        else
            reply_nil(call->out);
    }
    cache_read_end(&reader);
}

static void command_status(struct command_call *call)
{
    struct cache_reader reader;
    struct item item;
    bool found;
    if (!read_one(call, CONFIG_KIND_USER, false, &reader, &item, &found))
        return;
    const char *status;
    size_t status_len;
    struct value_strings roles;
    if (!deferred(call)) {
        if (found && value_user(item.derived, item.derived_len, &status, &status_len, &roles) == 0)
            reply_bulk(call->out, status, status_len);
        else
            reply_nil(call->out);
    }
    cache_read_end(&reader);
}

/* True if any pattern of the role grants permission. */
static bool role_grants(const struct item *role, const char *permission, size_t len)
{
    struct value_strings patterns;
    if (value_role_permissions(role->derived, role->derived_len, &patterns) != 0)
        return false;
    const char *pattern;
    size_t pattern_len;
    while (value_strings_next(&patterns, &pattern, &pattern_len)) {
        if (perm_match(pattern, pattern_len, permission, len))
            return true;
    }
    return false;
}

static bool status_active(const struct config *config, const char *status, size_t len)
{
    for (size_t i = 0; i < config->active_statuses.count; i++) {
        const char *active = config->active_statuses.items[i];
        if (strlen(active) == len && memcmp(active, status, len) == 0)
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
    struct item item;
    bool found;
    /* Roles are critical too: the staleness check covers both kinds. */
    if (!staleness_allows(call, CONFIG_KIND_ROLE) ||
        !read_one(call, CONFIG_KIND_USER, true, &reader, &item, &found))
        return;
    const char *status;
    size_t status_len;
    struct value_strings roles;
    if (!found || value_user(item.derived, item.derived_len, &status, &status_len, &roles) != 0) {
        cache_read_end(&reader);
        if (!deferred(call))
            reply_nil(call->out);
        return;
    }
    bool granted = false;
    if (status_active(call->env->config, status, status_len)) {
        /* A role that misses is filled, and the decision made again with it;
         * an unknown role grants nothing. */
        const char *role_id;
        size_t role_len;
        while (!granted && value_strings_next(&roles, &role_id, &role_len)) {
            struct item role;
            granted = lookup(call, &reader, tenant, tenant_len, CONFIG_KIND_ROLE, role_id, role_len,
                             &role) &&
                      role_grants(&role, permission, permission_len);
        }
    }
    cache_read_end(&reader);
    /* A grant found stands even while other roles are being filled. */
    if (granted) {
        call->blocked = call->unavailable = false;
        reply_integer(call->out, 1);
    } else if (!deferred(call)) {
        reply_integer(call->out, 0);
    }
}

static void command_rolecan(struct command_call *call)
{
    size_t permission_len;
    const char *permission = arg(call, 3, &permission_len);
    struct cache_reader reader;
    struct item role;
    bool found;
    if (!read_one(call, CONFIG_KIND_ROLE, true, &reader, &role, &found))
        return;
    if (!deferred(call) && !found)
        reply_nil(call->out);
    else if (!deferred(call))
        reply_integer(call->out, role_grants(&role, permission, permission_len) ? 1 : 0);
    cache_read_end(&reader);
}

static void command_perms(struct command_call *call)
{
    struct cache_reader reader;
    struct item role;
    bool found;
    if (!read_one(call, CONFIG_KIND_ROLE, false, &reader, &role, &found))
        return;
    struct value_strings patterns;
    if (!deferred(call)) {
        if (!found || value_role_permissions(role.derived, role.derived_len, &patterns) != 0) {
            reply_nil(call->out);
        } else {
            reply_array(call->out, patterns.remaining);
            const char *pattern;
            size_t pattern_len;
            while (value_strings_next(&patterns, &pattern, &pattern_len))
                reply_bulk(call->out, pattern, pattern_len);
        }
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
    struct item item;
    cache_read_begin(call->env->cache, tenant, tenant_len, call->now_ms, &reader);
    if (!lookup(call, &reader, tenant, tenant_len, CONFIG_KIND_HIERARCHY, entity, entity_len,
                &item)) {
        cache_read_end(&reader);
        if (!deferred(call))
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
        if (value_hierarchy_parent(item.derived, item.derived_len, &has_parent, &parent,
                                   &parent_len) != 0 ||
            !has_parent)
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
    if (!deferred(call)) {
        reply_array(call->out, depth);
        for (size_t i = 0; i < depth; i++)
            reply_bulk(call->out, chain[i], chain_len[i]);
    }
    cache_read_end(&reader);
    if (cut)
        log_limited(&cycle_log, 60000, LOG_LEVEL_WARNING,
                    "hierarchy of tenant '%.*s' has a cycle or is deeper than %d above '%.*s'; "
                    "ANCESTORS cut it",
                    (int)tenant_len, tenant, ANCESTORS_MAX_DEPTH, (int)entity_len, entity);
}

struct children {
    const char **keys;
    size_t *lens;
    size_t count;
    size_t capacity;
};

static void collect_child(void *arg, const struct cache_entry *entry)
{
    struct children *children = arg;
    if (children->count == children->capacity) {
        children->capacity = children->capacity ? children->capacity * 2 : CHILDREN_INITIAL;
        children->keys = xrealloc(children->keys, children->capacity * sizeof(*children->keys));
        children->lens = xrealloc(children->lens, children->capacity * sizeof(*children->lens));
    }
    children->keys[children->count] = cache_entry_key(entry, &children->lens[children->count]);
    children->count++;
}

static int compare_keys(const void *a, const void *b)
{
    /* Keys are NUL-terminated in the entry and never contain NUL. */
    return strcmp(*(const char *const *)a, *(const char *const *)b);
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
        qsort(children.keys, children.count, sizeof(*children.keys), compare_keys);
    reply_array(call->out, children.count);
    for (size_t i = 0; i < children.count; i++)
        reply_bulk(call->out, children.keys[i], strlen(children.keys[i]));
    cache_read_end(&reader);
    free(children.keys);
    free(children.lens);
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

static void info_human(struct evbuffer *text, const char *name, uint64_t bytes)
{
    char human[32];
    util_format_human_bytes(bytes, human, sizeof(human));
    evbuffer_add_printf(text, "%s:%llu\r\n%s_human:%s\r\n", name, (unsigned long long)bytes, name,
                        human);
}

static void info_server(struct command_call *call, struct evbuffer *text)
{
    uint64_t uptime = (call->now_ms - stats_get(&stats.start_ms)) / 1000;
    evbuffer_add_printf(text,
                        "# Server\r\ntenantcached_version:%s\r\nredis_version:7.0.0\r\n"
                        "process_id:%ld\r\nuptime_in_seconds:%llu\r\nuptime_in_days:%llu\r\n"
                        "config_file:%s\r\nthreads:%u\r\nshards:%u\r\napplication:%s\r\n"
                        "log_level:%s\r\n",
                        TENANTCACHED_VERSION, (long)getpid(), (unsigned long long)uptime,
                        (unsigned long long)(uptime / 86400), call->env->config->path,
                        call->env->config->threads, call->env->config->shards,
                        call->env->config->application, log_level_name(log_get_level()));
}

static void info_clients(struct command_call *call, struct evbuffer *text)
{
    const struct config *config = call->env->config;
    evbuffer_add_printf(text,
                        "# Clients\r\nconnected_clients:%llu\r\nmax_clients:%u\r\n"
                        "rejected_connections:%llu\r\nclients_dropped_backlog:%llu\r\n"
                        "clients_dropped_idle:%llu\r\nprotocol_errors:%llu\r\n",
                        (unsigned long long)stats_get(&stats.connected_clients),
                        config->listen.max_clients,
                        (unsigned long long)stats_get(&stats.connections_rejected),
                        (unsigned long long)stats_get(&stats.clients_dropped_backlog),
                        (unsigned long long)stats_get(&stats.clients_dropped_idle),
                        (unsigned long long)stats_get(&stats.protocol_errors));
    /* CLIENT TRACKING; its table's bytes are outside used_memory. */
    evbuffer_add_printf(text,
                        "tracking_clients:%llu\r\ntracking_keys:%llu\r\n"
                        "tracking_invalidations:%llu\r\ntracking_max_keys:%u\r\n",
                        (unsigned long long)stats_get(&stats.tracking_clients),
                        (unsigned long long)stats_get(&stats.tracking_keys),
                        (unsigned long long)stats_get(&stats.tracking_invalidations),
                        config->listen.tracking_max_keys);
}

static void info_memory(struct command_call *call, struct evbuffer *text)
{
    struct cache_stats figures;
    cache_get_stats(call->env->cache, &figures);
    const struct config *config = call->env->config;
    evbuffer_add_printf(text, "# Memory\r\n");
    info_human(text, "used_memory", figures.bytes);
    info_human(text, "used_memory_rss", util_rss_bytes());
    info_human(text, "tracking_memory", stats_get(&stats.tracking_bytes));
    info_human(text, "max_memory", config->memory.max_bytes);
    double percent = config->memory.max_bytes
                         ? 100.0 * (double)figures.bytes / (double)config->memory.max_bytes
                         : 0.0;
    evbuffer_add_printf(text,
                        "used_memory_percentage:%.2f\r\nused_memory_critical:%llu\r\n"
                        "used_memory_reference:%llu\r\ntenant_max_memory:%llu\r\n"
                        "max_tenants:%u\r\nentries:%llu\r\ntenants:%llu\r\n"
                        "high_watermark:%.2f\r\nlow_watermark:%.2f\r\n",
                        percent, (unsigned long long)figures.critical_bytes,
                        (unsigned long long)figures.reference_bytes,
                        (unsigned long long)config->memory.tenant_max_bytes,
                        config->memory.max_tenants, (unsigned long long)figures.entries,
                        (unsigned long long)figures.tenants, config->memory.high_watermark,
                        config->memory.low_watermark);
}

static void info_stats(struct command_call *call, struct evbuffer *text)
{
    struct cache_stats figures;
    cache_get_stats(call->env->cache, &figures);
    const struct {
        const char *name;
        uint64_t value;
    } counters[] = {
        {"messages_applied", stats_get(&stats.messages_applied)},
        {"messages_stale", stats_get(&stats.messages_stale)},
        {"messages_invalid", stats_get(&stats.messages_invalid)},
        {"messages_filtered", stats_get(&stats.messages_filtered)},
        {"messages_unknown_kind", stats_get(&stats.messages_unknown_kind)},
        {"seq_gaps", stats_get(&stats.seq_gaps)},
        {"hits", stats_get(&stats.hits)},
        {"misses", stats_get(&stats.misses)},
        {"fills_l2", stats_get(&stats.fills_l2)},
        {"fills_l3", stats_get(&stats.fills_l3)},
        {"fill_errors", stats_get(&stats.fill_errors)},
        {"fills_shared", stats_get(&stats.fills_shared)},
        {"fills_discarded", stats_get(&stats.fills_discarded)},
        {"fills_negative", stats_get(&stats.fills_negative)},
        {"evictions_expired", figures.evictions_expired},
        {"evictions_reference", figures.evictions_reference},
        {"evictions_tenant", figures.evictions_tenant},
        {"not_cached", figures.not_cached},
        {"stale_served", stats_get(&stats.stale_served)},
        {"stale_refused", stats_get(&stats.stale_refused)},
        {"total_commands_processed", stats_get(&stats.commands_processed)},
        {"total_connections_received", stats_get(&stats.connections_received)},
    };
    evbuffer_add_printf(text, "# Stats\r\n");
    for (size_t i = 0; i < UTIL_ARRAY_LEN(counters); i++)
        evbuffer_add_printf(text, "%s:%llu\r\n", counters[i].name,
                            (unsigned long long)counters[i].value);
}

static void info_redis(struct command_call *call, struct evbuffer *text)
{
    char master[300];
    evbuffer_add_printf(text,
                        "# Redis\r\nredis_connected:%d\r\nredis_reconnects:%llu\r\n"
                        "redis_disconnected_seconds:%llu\r\nredis_master:%s\r\n"
                        "sentinel_switches:%llu\r\n",
                        stats_get(&stats.redis_connected) ? 1 : 0,
                        (unsigned long long)stats_get(&stats.redis_reconnects),
                        (unsigned long long)stream_down_seconds(call->now_ms),
                        redis_link_master_address(call->env->config, master, sizeof(master)),
                        (unsigned long long)sentinel_switches());
    /* redis.stream (docs/reference.md §7); the ID is empty without a stream */
    bool stream = call->env->config->redis.stream[0] != '\0';
    char last_id[48] = "";
    if (stream)
        snprintf(last_id, sizeof(last_id), "%llu-%llu",
                 (unsigned long long)stats_get(&stats.stream_last_ms),
                 (unsigned long long)stats_get(&stats.stream_last_seq));
    evbuffer_add_printf(text,
                        "stream_last_id:%s\r\ncatchup_applied:%llu\r\ncatchup_failed:%llu\r\n"
                        "messages_duplicate:%llu\r\n",
                        last_id, (unsigned long long)stats_get(&stats.catchup_applied),
                        (unsigned long long)stats_get(&stats.catchup_failed),
                        (unsigned long long)stats_get(&stats.messages_duplicate));
}

/* snapshot.path (docs/reference.md §6) */
static void info_persistence(struct command_call *call, struct evbuffer *text)
{
    (void)call;
    evbuffer_add_printf(
        text,
        "# Persistence\r\nsnapshot_saved_at:%llu\r\nsnapshot_entries:%llu\r\n"
        "snapshot_save_ms:%llu\r\nsnapshot_stall_us:%llu\r\nsnapshot_loaded_entries:%llu\r\n",
        (unsigned long long)stats_get(&stats.snapshot_saved_at),
        (unsigned long long)stats_get(&stats.snapshot_entries),
        (unsigned long long)stats_get(&stats.snapshot_save_ms),
        (unsigned long long)stats_get(&stats.snapshot_stall_us),
        (unsigned long long)stats_get(&stats.snapshot_loaded_entries));
}

static void info_tenant_line(void *arg, const struct cache_tenant_stats *tenant)
{
    evbuffer_add_printf(arg, "tenant_%s:entries=%llu,bytes=%llu,hits=%llu,misses=%llu\r\n",
                        tenant->name, (unsigned long long)tenant->entries,
                        (unsigned long long)tenant->bytes, (unsigned long long)tenant->hits,
                        (unsigned long long)tenant->misses);
}

static void info_tenants(struct command_call *call, struct evbuffer *text)
{
    evbuffer_add_printf(text, "# Tenants\r\n");
    cache_foreach_tenant(call->env->cache, info_tenant_line, text);
}

static void command_info(struct command_call *call)
{
    static const struct {
        const char *name;
        void (*write)(struct command_call *call, struct evbuffer *text);
        bool in_default;
    } sections[] = {
        {"server", info_server, true}, {"clients", info_clients, true},
        {"memory", info_memory, true}, {"stats", info_stats, true},
        {"redis", info_redis, true},   {"persistence", info_persistence, true},
        {"tenants", info_tenants, false},
    };
    size_t len = 0;
    const char *wanted = call->request->argc == 2 ? arg(call, 1, &len) : NULL;
    bool all = wanted != NULL && (util_equal_nocase(wanted, len, "all") ||
                                  util_equal_nocase(wanted, len, "everything"));
    bool default_set = wanted == NULL || util_equal_nocase(wanted, len, "default");
    struct evbuffer *text = evbuffer_new();
    for (size_t i = 0; i < UTIL_ARRAY_LEN(sections); i++) {
        bool include = all || (default_set && sections[i].in_default) ||
                       (wanted != NULL && util_equal_nocase(wanted, len, sections[i].name));
        if (!include)
            continue;
        if (evbuffer_get_length(text) > 0)
            evbuffer_add(text, "\r\n", 2);
        sections[i].write(call, text);
    }
    size_t text_len = evbuffer_get_length(text);
    reply_bulk(call->out, evbuffer_pullup(text, -1), text_len);
    evbuffer_free(text);
}

struct top_tenants {
    struct {
        char name[65];
        uint64_t bytes;
    } top[5];
    size_t count;
};

static void track_top_tenant(void *arg, const struct cache_tenant_stats *tenant)
{
    struct top_tenants *top = arg;
    size_t capacity = UTIL_ARRAY_LEN(top->top);
    size_t position = top->count;
    while (position > 0 && top->top[position - 1].bytes < tenant->bytes)
        position--;
    if (position >= capacity)
        return;
    size_t last = top->count < capacity ? top->count : capacity - 1;
    memmove(&top->top[position + 1], &top->top[position], (last - position) * sizeof(top->top[0]));
    memcpy(top->top[position].name, tenant->name, sizeof(top->top[position].name));
    top->top[position].bytes = tenant->bytes;
    if (top->count < capacity)
        top->count++;
}

static const char *health_status(double ratio)
{
    if (ratio > 0.9)
        return "CRITICAL";
    if (ratio > 0.8)
        return "HIGH";
    if (ratio >= 0.7)
        return "MODERATE";
    return "LOW";
}

static void command_health(struct command_call *call)
{
    const struct config *config = call->env->config;
    struct cache_stats figures;
    cache_get_stats(call->env->cache, &figures);
    double ratio = config->memory.max_bytes ? (double)figures.bytes / (double)config->memory.max_bytes
                                            : 0.0;
    bool connected = stats_get(&stats.redis_connected) != 0;
    json_t *health = json_object();
    json_object_set_new(health, "status", json_string(health_status(ratio)));
    json_object_set_new(health, "used_bytes", json_integer((json_int_t)figures.bytes));
    json_object_set_new(health, "limit_bytes", json_integer((json_int_t)config->memory.max_bytes));
    json_object_set_new(health, "usage_percentage", json_real(((double)(long long)(ratio * 10000.0)) / 100.0));
    json_object_set_new(health, "rss_bytes", json_integer((json_int_t)util_rss_bytes()));
    json_object_set_new(health, "entries", json_integer((json_int_t)figures.entries));
    json_object_set_new(health, "tenants", json_integer((json_int_t)figures.tenants));
    json_object_set_new(health, "redis", json_string(connected ? "connected" : "disconnected"));
    char master[300], sentinel_error[700];
    json_object_set_new(health, "redis_master",
                        json_string(redis_link_master_address(config, master, sizeof(master))));
    bool sentinel_failing = sentinel_problem(sentinel_error, sizeof(sentinel_error));
    if (sentinel_failing)
        json_object_set_new(health, "sentinel_error", json_string(sentinel_error));
    json_object_set_new(health, "stale_seconds",
                        json_integer((json_int_t)stream_down_seconds(call->now_ms)));
    json_t *evictions = json_object();
    json_object_set_new(evictions, "expired", json_integer((json_int_t)figures.evictions_expired));
    json_object_set_new(evictions, "reference", json_integer((json_int_t)figures.evictions_reference));
    json_object_set_new(evictions, "tenant", json_integer((json_int_t)figures.evictions_tenant));
    json_object_set_new(evictions, "not_cached", json_integer((json_int_t)figures.not_cached));
    json_object_set_new(health, "evictions", evictions);
    struct top_tenants top = {0};
    cache_foreach_tenant(call->env->cache, track_top_tenant, &top);
    json_t *biggest = json_array();
    for (size_t i = 0; i < top.count; i++) {
        json_t *tenant = json_object();
        json_object_set_new(tenant, "tenant", json_string(top.top[i].name));
        json_object_set_new(tenant, "bytes", json_integer((json_int_t)top.top[i].bytes));
        json_array_append_new(biggest, tenant);
    }
    json_object_set_new(health, "top_tenants", biggest);

    json_t *advice = json_array();
    if (ratio > 0.9)
        json_array_append_new(advice, json_string("raise memory.max_bytes or run one instance per application (application:)"));
    if (ratio > 0.8 && !config->redis.l2 && config->origin.url[0] == '\0')
        json_array_append_new(advice, json_string("enable redis.l2 or origin.url so evicted entries can be filled again"));
    if (ratio > 0.8)
        json_array_append_new(advice, json_string("lower the ttl of reference kinds (profile, audit, history)"));
    if (figures.evictions_tenant > 0)
        json_array_append_new(advice, json_string("whole tenants were evicted: raise memory.max_bytes or lower memory.max_tenants"));
    if (figures.not_cached > 0)
        json_array_append_new(advice, json_string("some entries did not fit: raise memory.tenant_max_bytes"));
    if (!connected)
        json_array_append_new(advice, json_string("the invalidation stream is down: check the Redis connection"));
    if (sentinel_failing)
        json_array_append_new(advice, json_string("the sentinels name no usable master: check redis.sentinels and redis.master_name (see sentinel_error)"));
    if (json_array_size(advice) == 0)
        json_array_append_new(advice, json_string("memory usage optimal"));
    json_object_set_new(health, "recommendations", advice);

    char *text = json_dumps(health, JSON_COMPACT | JSON_REAL_PRECISION(6));
    reply_bulk_string(call->out, text ? text : "{}");
    free(text);
    json_decref(health);
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
    fill_note_flush(call->env->fill);
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
     "name_or_tenant [kind key]"},
    {"MGET", 2, -1, command_mget, RO_FAST, "tenantcached",
     "The values of several entries (full names, or tenant kind key...)", "name_or_tenant arg..."},
    {"CAN", 4, 4, command_can, RO_FAST, "tenantcached",
     "1 if the user is active and a role of theirs grants the permission, 0 if not, nil if the user is unknown",
     "tenant user permission"},
    {"CREDIT", 3, 3, command_credit, RO_FAST, "tenantcached",
     "What an operation costs (a decimal string), or nil", "tenant operation"},
    {"STATUS", 3, 3, command_status, RO_FAST, "tenantcached", "The user's status, or nil",
     "tenant user"},
    {"ROLECAN", 4, 4, command_rolecan, RO_FAST, "tenantcached",
     "1 if the role grants the permission, 0 if not, nil if the role is unknown",
     "tenant role permission"},
    {"PERMS", 3, 3, command_perms, RO_FAST, "tenantcached",
     "The role's permission patterns, or nil", "tenant role"},
    {"ANCESTORS", 3, 3, command_ancestors, COMMAND_READONLY, "tenantcached",
     "The entity's parents up to the root, or nil if the entity is unknown", "tenant entity"},
    {"CHILDREN", 3, 3, command_children, COMMAND_READONLY, "tenantcached",
     "The cached entities whose parent is the entity, sorted", "tenant entity"},
    {"TENANT", 2, 2, command_tenant, COMMAND_READONLY, "tenantcached",
     "Entries, bytes, hits and misses of one tenant", "tenant"},
    {"PING", 1, 2, command_ping, COMMAND_FAST | COMMAND_STALE, "connection", "Ping the server",
     "[message]"},
    {"INFO", 1, 2, command_info, COMMAND_STALE | COMMAND_LOADING, "server",
     "Information and statistics about the daemon", "[section]"},
    {"HEALTH", 1, 1, command_health, COMMAND_STALE, "server",
     "Memory, Redis link and staleness as JSON, with recommendations", ""},
    {"FLUSH", 2, 3, command_flush, COMMAND_ADMIN, "tenantcached",
     "Drop a tenant's entries (or of every tenant: *), of one kind or all (admin)",
     "tenant [kind]"},
    {"QUIT", 1, 1, command_quit, COMMAND_FAST | COMMAND_STALE | COMMAND_NO_QUEUE, "connection",
     "Close the connection", ""},
    {"COMMAND", 1, -1, command_docs_command, COMMAND_STALE | COMMAND_LOADING, "server",
     "The daemon's commands: all, COUNT, INFO name..., DOCS [name...], LIST",
     "[COUNT|INFO|DOCS|LIST] [name...]"},
    {"HELLO", 1, -1, client_command_hello, COMMAND_FAST | COMMAND_STALE, "connection",
     "Handshake: choose RESP2 or RESP3, set the client name",
     "[protover:integer [AUTH username password] [SETNAME clientname]]"},
    {"CLIENT", 2, -1, client_command_client, COMMAND_STALE, "connection",
     "The connection's id and name, library name and version, CLIENT LIST and INFO",
     "subcommand [arg...]"},
    {"SUBSCRIBE", 2, -1, tracking_command_subscribe, COMMAND_FAST | COMMAND_STALE, "pubsub",
     "Subscribe to __redis__:invalidate, the channel of CLIENT TRACKING REDIRECT", "channel..."},
    {"UNSUBSCRIBE", 1, -1, tracking_command_unsubscribe, COMMAND_FAST | COMMAND_STALE, "pubsub",
     "Unsubscribe from __redis__:invalidate", "[channel...]"},
    {"SELECT", 2, 2, client_command_select, COMMAND_FAST | COMMAND_STALE, "connection",
     "Select database 0 (the only one)", "index:integer"},
    {"ECHO", 2, 2, client_command_echo, COMMAND_FAST | COMMAND_STALE, "connection",
     "Return the message", "message"},
    {"MULTI", 1, 1, transaction_command_multi, COMMAND_FAST | COMMAND_STALE | COMMAND_NO_QUEUE,
     "transactions", "Start a transaction: later commands are queued until EXEC", ""},
    {"EXEC", 1, 1, transaction_command_exec, COMMAND_STALE | COMMAND_NO_QUEUE, "transactions",
     "Run the queued commands and answer their replies in order", ""},
    {"DISCARD", 1, 1, transaction_command_discard, COMMAND_FAST | COMMAND_STALE | COMMAND_NO_QUEUE,
     "transactions", "Forget the queued commands", ""},
    {"WATCH", 2, -1, transaction_command_watch, COMMAND_FAST | COMMAND_STALE | COMMAND_NO_QUEUE,
     "transactions", "Accepted: no client can change a key, so a watch never fails EXEC",
     "key..."},
    {"UNWATCH", 1, 1, transaction_command_unwatch, COMMAND_FAST | COMMAND_STALE, "transactions",
     "Accepted (see WATCH)", ""},
};
const size_t commands_table_count = UTIL_ARRAY_LEN(commands_table);

const struct command *commands_find(const char *name, size_t len)
{
    for (size_t i = 0; i < commands_table_count; i++) {
        if (util_equal_nocase(name, len, commands_table[i].name))
            return &commands_table[i];
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

void commands_client_clear_fills(struct commands_client *client)
{
    for (size_t i = 0; i < client->fill_count; i++)
        fill_result_release(client->fills[i]);
    free(client->fills);
    client->fills = NULL;
    client->fill_count = client->fill_capacity = 0;
}

void commands_client_add_fill(struct commands_client *client, struct fill_result *result)
{
    if (client->fill_count == client->fill_capacity) {
        client->fill_capacity = client->fill_capacity ? client->fill_capacity * 2 : 4;
        client->fills = xrealloc(client->fills, client->fill_capacity * sizeof(*client->fills));
    }
    client->fills[client->fill_count++] = result;
}

enum commands_outcome commands_run(struct commands_env *env, struct commands_client *client,
                                   const struct protocol_request *request, uint64_t now_ms)
{
    if (client->fill_count == 0)
        stats_add(&stats.commands_processed, 1);
    const char *name = request->argv[0];
    size_t name_len = request->argv_len[0];
    const struct command *command = commands_find(name, name_len);
    if (command == NULL) {
        /* Quote what was sent, shortened and without control bytes. */
        char shown[64];
        quote_safely(name, name_len, shown, sizeof(shown));
        reply_error(client->out, "ERR unknown command '%s'", shown);
        transaction_fail(client);
        return COMMANDS_DONE;
    }
    client_note_command(client, command->name, now_ms);
    int argc = (int)request->argc;
    if (argc < command->min_args || (command->max_args >= 0 && argc > command->max_args)) {
        reply_error(client->out, "ERR wrong number of arguments for '%s'", command->name);
        transaction_fail(client);
        return COMMANDS_DONE;
    }
    if (transaction_queueing(client) && !(command->flags & COMMAND_NO_QUEUE)) {
        transaction_queue(client, request, env->config->listen.max_reply_backlog, client->out);
        return COMMANDS_DONE;
    }
    struct command_call call = {
        .env = env,
        .client = client,
        .request = request,
        .out = client->out,
        .now_ms = now_ms,
    };
    command->handler(&call);
    if (call.blocked && !call.unavailable)
        return COMMANDS_BLOCKED;
    if (call.unavailable)
        reply_error(client->out, "UNAVAILABLE a fill failed: Redis and the origin are unreachable");
    return COMMANDS_DONE;
}

enum commands_outcome commands_execute(struct commands_env *env, struct commands_client *client,
                                       const struct protocol_request *request, uint64_t now_ms)
{
    enum commands_outcome outcome = commands_run(env, client, request, now_ms);
    if (outcome == COMMANDS_DONE) {
        commands_client_clear_fills(client);
        tracking_command_done(client);
    }
    return outcome;
}
