/* client.c - the connection commands every Redis client library sends:
 * HELLO, CLIENT, SELECT, ECHO (docs/reference.md §4), and the registry of
 * connections that CLIENT LIST reads (see client.h).
 *
 * A connection's names are written by its own query thread under the
 * registry lock, and read by any thread's CLIENT LIST under it; the last
 * command and its time are single words stored atomically, so the hot path
 * takes no lock. There are no passwords: HELLO's AUTH is accepted, since
 * peers are identified by SO_PEERCRED (docs/reference.md §8). */
#include "client.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "command_call.h"
#include "config.h"
#include "log.h"
#include "protocol.h"
#include "reply.h"
#include "tracking.h"
#include "transaction.h"
#include "util.h"

#define CLIENT_LINE_MAX 768

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct commands_client *registry; /* guarded by registry_lock */
static uint64_t next_id;                 /* atomic */

/* ---- the registry ---- */

void client_register(struct commands_client *client, uint64_t now_ms)
{
    client->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
    client->connected_ms = now_ms;
    __atomic_store_n(&client->last_command_ms, now_ms, __ATOMIC_RELAXED);
    pthread_mutex_lock(&registry_lock);
    client->registry_prev = NULL;
    client->registry_next = registry;
    if (registry != NULL)
        registry->registry_prev = client;
    registry = client;
    client->registered = true;
    pthread_mutex_unlock(&registry_lock);
    log_debug("client %" PRIu64 " connected: uid %u gid %u pid %ld", client->id,
              (unsigned)client->uid, (unsigned)client->gid, (long)client->pid);
}

void client_unregister(struct commands_client *client)
{
    pthread_mutex_lock(&registry_lock);
    if (!client->registered) {
        pthread_mutex_unlock(&registry_lock);
        return;
    }
    if (client->registry_prev != NULL)
        client->registry_prev->registry_next = client->registry_next;
    else
        registry = client->registry_next;
    if (client->registry_next != NULL)
        client->registry_next->registry_prev = client->registry_prev;
    client->registered = false;
    pthread_mutex_unlock(&registry_lock);
    log_debug("client %" PRIu64
              " disconnected: uid %u gid %u pid %ld name '%s' lib-name '%s' lib-ver '%s'",
              client->id, (unsigned)client->uid, (unsigned)client->gid, (long)client->pid,
              client->name ? client->name : "", client->lib_name ? client->lib_name : "",
              client->lib_ver ? client->lib_ver : "");
}

void client_release(struct commands_client *client)
{
    free(client->name);
    free(client->lib_name);
    free(client->lib_ver);
    client->name = client->lib_name = client->lib_ver = NULL;
    transaction_free(client);
}

void client_note_command(struct commands_client *client, const char *name, uint64_t now_ms)
{
    __atomic_store_n(&client->last_command_name, name, __ATOMIC_RELAXED);
    __atomic_store_n(&client->last_command_ms, now_ms, __ATOMIC_RELAXED);
}

/* Replaces *field with value[0..len) (NULL when empty) under the registry
 * lock, since another thread's CLIENT LIST may be reading it. */
static void set_field(char **field, const char *value, size_t len)
{
    char *copy = len > 0 ? xstrndup(value, len) : NULL;
    pthread_mutex_lock(&registry_lock);
    char *old = *field;
    *field = copy;
    pthread_mutex_unlock(&registry_lock);
    free(old);
}

/* redis-server's rule for names: no spaces, newlines or special characters
 * ('!' to '~' only), so that CLIENT LIST lines stay parseable. */
static bool name_valid(const char *name, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (name[i] < '!' || name[i] > '~')
            return false;
    }
    return true;
}

/* Sets the client name after checking it; replies an error and returns
 * false when it is not valid. */
static bool set_name(struct command_call *call, const char *name, size_t len)
{
    if (!name_valid(name, len)) {
        reply_error(call->out,
                    "ERR Client names cannot contain spaces, newlines or special characters.");
        return false;
    }
    set_field(&call->client->name, name, len);
    return true;
}

/* One CLIENT LIST/INFO line for client, in redis-server 7's field order,
 * then the peer's credentials. The buffer figures of another connection are
 * not shown (0): they belong to its thread. Caller holds registry_lock.
 * Returns the length written into line[CLIENT_LINE_MAX]. */
static size_t format_client(const struct command_call *call, const struct commands_client *client,
                            char *line)
{
    uint64_t now_ms = call->now_ms;
    uint64_t last_ms = __atomic_load_n(&client->last_command_ms, __ATOMIC_RELAXED);
    const char *command = __atomic_load_n(&client->last_command_name, __ATOMIC_RELAXED);
    char lower[32] = "NULL";
    if (command != NULL) {
        size_t i = 0;
        for (; command[i] != '\0' && i + 1 < sizeof(lower); i++)
            lower[i] = (char)(command[i] >= 'A' && command[i] <= 'Z' ? command[i] + 32 : command[i]);
        lower[i] = '\0';
    }
    const char *socket = call->env->config->listen.socket;
    bool own = client == call->client;
    long multi = own ? transaction_queued(client) : -1; /* another's belongs to its thread */
    int len = snprintf(
        line, CLIENT_LINE_MAX,
        "id=%" PRIu64 " addr=%s:0 laddr=%s:0 fd=-1 name=%s age=%" PRIu64 " idle=%" PRIu64
        " flags=N db=0 sub=0 psub=0 ssub=0 multi=%ld qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0"
        " rbs=0 rbp=0 obl=0 oll=0 omem=%zu tot-mem=0 events=r cmd=%s user=default redir=-1"
        " resp=%d lib-name=%s lib-ver=%s uid=%u gid=%u pid=%ld\n",
        client->id, socket, socket, client->name ? client->name : "",
        now_ms > client->connected_ms ? (now_ms - client->connected_ms) / 1000 : 0,
        now_ms > last_ms ? (now_ms - last_ms) / 1000 : 0, multi,
        own ? reply_buffer_length(client->out) : 0, lower, own && client->out->resp3 ? 3 : 2,
        client->lib_name ? client->lib_name : "", client->lib_ver ? client->lib_ver : "",
        (unsigned)client->uid, (unsigned)client->gid, (long)client->pid);
    if (len < 0)
        return 0;
    return (size_t)len < CLIENT_LINE_MAX ? (size_t)len : CLIENT_LINE_MAX - 1;
}

/* ---- HELLO ---- */

static bool parse_integer(const char *text, size_t len, long long *value)
{
    if (len == 0 || len > 20)
        return false;
    char copy[24];
    memcpy(copy, text, len);
    copy[len] = '\0';
    char *end;
    *value = strtoll(copy, &end, 10);
    return *end == '\0' && (copy[0] == '-' || (copy[0] >= '0' && copy[0] <= '9'));
}

void client_command_hello(struct command_call *call)
{
    size_t argc = call->request->argc, next = 1, len;
    long long version = 0;
    if (argc >= 2) {
        const char *text = commands_arg(call, next++, &len);
        if (!parse_integer(text, len, &version)) {
            reply_error(call->out, "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (version < 2 || version > 3) {
            reply_error(call->out, "NOPROTO unsupported protocol version");
            return;
        }
    }
    const char *name = NULL;
    size_t name_len = 0;
    for (size_t i = next; i < argc; i++) {
        size_t more = argc - 1 - i;
        const char *option = commands_arg(call, i, &len);
        if (util_equal_nocase(option, len, "AUTH") && more >= 2) {
            i += 2; /* no passwords: peers are identified by SO_PEERCRED */
        } else if (util_equal_nocase(option, len, "SETNAME") && more >= 1) {
            name = commands_arg(call, ++i, &name_len);
        } else {
            char shown[64];
            commands_quote(option, len, shown, sizeof(shown));
            reply_error(call->out, "ERR Syntax error in HELLO option '%s'", shown);
            return;
        }
    }
    if (name != NULL && !set_name(call, name, name_len))
        return;
    if (version != 0)
        call->out->resp3 = version == 3;
    reply_map(call->out, 7);
    reply_bulk_string(call->out, "server");
    reply_bulk_string(call->out, "tenantcached");
    reply_bulk_string(call->out, "version");
    reply_bulk_string(call->out, TENANTCACHED_VERSION);
    reply_bulk_string(call->out, "proto");
    reply_integer(call->out, call->out->resp3 ? 3 : 2);
    reply_bulk_string(call->out, "id");
    reply_integer(call->out, (long long)call->client->id);
    reply_bulk_string(call->out, "mode");
    reply_bulk_string(call->out, "standalone");
    reply_bulk_string(call->out, "role");
    reply_bulk_string(call->out, "master");
    reply_bulk_string(call->out, "modules");
    reply_array(call->out, 0);
}

/* ---- CLIENT ---- */

static void client_list(struct command_call *call, bool only_own)
{
    /* LIST [TYPE type] [ID id ...]: the type is always "normal". */
    size_t argc = call->request->argc, len;
    size_t ids_from = argc;
    for (size_t i = 2; i < argc; i++) {
        const char *option = commands_arg(call, i, &len);
        if (util_equal_nocase(option, len, "TYPE") && i + 1 < argc) {
            i++;
        } else if (util_equal_nocase(option, len, "ID") && i + 1 < argc) {
            ids_from = i + 1;
            break;
        } else {
            reply_error(call->out, "ERR syntax error");
            return;
        }
    }
    bool admin = commands_grant(call)->admin && !only_own;
    char *text = NULL;
    size_t text_len = 0, text_capacity = 0;
    pthread_mutex_lock(&registry_lock);
    for (struct commands_client *client = registry; client != NULL; client = client->registry_next) {
        if (!admin && client != call->client)
            continue;
        if (ids_from < argc) {
            bool wanted = false;
            for (size_t i = ids_from; i < argc && !wanted; i++) {
                long long id;
                const char *given = commands_arg(call, i, &len);
                wanted = parse_integer(given, len, &id) && (uint64_t)id == client->id;
            }
            if (!wanted)
                continue;
        }
        if (text_capacity - text_len < CLIENT_LINE_MAX) {
            text_capacity = text_capacity ? text_capacity * 2 : 4 * CLIENT_LINE_MAX;
            text = xrealloc(text, text_capacity);
        }
        text_len += format_client(call, client, text + text_len);
    }
    pthread_mutex_unlock(&registry_lock);
    reply_bulk(call->out, text, text_len);
    free(text);
}

static void client_setinfo(struct command_call *call)
{
    size_t attribute_len, value_len;
    if (call->request->argc != 4) {
        reply_error(call->out, "ERR wrong number of arguments for 'client|setinfo' command");
        return;
    }
    const char *attribute = commands_arg(call, 2, &attribute_len);
    const char *value = commands_arg(call, 3, &value_len);
    char **field;
    const char *shown_name;
    if (util_equal_nocase(attribute, attribute_len, "LIB-NAME")) {
        field = &call->client->lib_name;
        shown_name = "lib-name";
    } else if (util_equal_nocase(attribute, attribute_len, "LIB-VER")) {
        field = &call->client->lib_ver;
        shown_name = "lib-ver";
    } else {
        char shown[64];
        commands_quote(attribute, attribute_len, shown, sizeof(shown));
        reply_error(call->out, "ERR Unrecognized option '%s'", shown);
        return;
    }
    if (!name_valid(value, value_len)) {
        reply_error(call->out, "ERR %s cannot contain spaces, newlines or special characters.",
                    shown_name);
        return;
    }
    set_field(field, value, value_len);
    reply_status(call->out, "OK");
}

static void client_help(struct command_call *call)
{
    static const char *const lines[] = {
        "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "GETNAME",
        "    Return the name of the current connection.",
        "ID",
        "    Return the ID of the current connection.",
        "INFO",
        "    Return information about the current client connection.",
        "LIST [TYPE <type>] [ID <id> [<id> ...]]",
        "    Return information about client connections (every one to an admin peer).",
        "SETINFO <LIB-NAME|LIB-VER> <value>",
        "    Set the library name or version of the connection.",
        "SETNAME <name>",
        "    Assign the name <name> to the current connection.",
        "TRACKING (ON|OFF) [REDIRECT <id>] [BCAST] [PREFIX <prefix> [...]] [OPTIN] [OPTOUT] [NOLOOP]",
        "    Control server assisted client side caching.",
        "CACHING (YES|NO)",
        "    Enable/disable tracking of the keys for next command in OPTIN/OPTOUT modes.",
        "GETREDIR",
        "    Return the client ID we are redirecting to when tracking is enabled.",
        "TRACKINGINFO",
        "    Return information about the current client's tracking status.",
        "HELP",
        "    Print this help.",
    };
    reply_array(call->out, UTIL_ARRAY_LEN(lines));
    for (size_t i = 0; i < UTIL_ARRAY_LEN(lines); i++)
        reply_status(call->out, lines[i]);
}

void client_command_client(struct command_call *call)
{
    size_t len, argc = call->request->argc;
    const char *sub = commands_arg(call, 1, &len);
    if (util_equal_nocase(sub, len, "ID") && argc == 2) {
        reply_integer(call->out, (long long)call->client->id);
    } else if (util_equal_nocase(sub, len, "GETNAME") && argc == 2) {
        if (call->client->name != NULL)
            reply_bulk_string(call->out, call->client->name);
        else
            reply_nil(call->out);
    } else if (util_equal_nocase(sub, len, "SETNAME") && argc == 3) {
        size_t name_len;
        const char *name = commands_arg(call, 2, &name_len);
        if (set_name(call, name, name_len))
            reply_status(call->out, "OK");
    } else if (util_equal_nocase(sub, len, "SETINFO")) {
        client_setinfo(call);
    } else if (util_equal_nocase(sub, len, "INFO") && argc == 2) {
        client_list(call, true);
    } else if (util_equal_nocase(sub, len, "LIST")) {
        client_list(call, false);
    } else if (util_equal_nocase(sub, len, "HELP") && argc == 2) {
        client_help(call);
    } else if (tracking_is_subcommand(sub, len)) {
        tracking_command_client(call);
    } else if (util_equal_nocase(sub, len, "ID") || util_equal_nocase(sub, len, "GETNAME") ||
               util_equal_nocase(sub, len, "SETNAME") || util_equal_nocase(sub, len, "INFO") ||
               util_equal_nocase(sub, len, "HELP")) {
        char shown[64];
        commands_quote(sub, len, shown, sizeof(shown));
        for (char *c = shown; *c != '\0'; c++)
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
        reply_error(call->out, "ERR wrong number of arguments for 'client|%s' command", shown);
    } else {
        char shown[64];
        commands_quote(sub, len, shown, sizeof(shown));
        reply_error(call->out, "ERR unknown subcommand '%s'. Try CLIENT HELP.", shown);
    }
}

/* ---- SELECT, ECHO ---- */

void client_command_select(struct command_call *call)
{
    size_t len;
    const char *text = commands_arg(call, 1, &len);
    long long index;
    if (!parse_integer(text, len, &index)) {
        reply_error(call->out, "ERR value is not an integer or out of range");
        return;
    }
    if (index != 0) {
        reply_error(call->out, "ERR DB index is out of range");
        return;
    }
    reply_status(call->out, "OK");
}

void client_command_echo(struct command_call *call)
{
    size_t len;
    const char *message = commands_arg(call, 1, &len);
    reply_bulk(call->out, message, len);
}
