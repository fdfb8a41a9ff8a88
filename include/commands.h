/* commands.h - the query commands of SPEC §4 and their dispatch.
 *
 * server.c parses a request and calls commands_execute(); the command reads
 * the caches and writes its reply to the client's output buffer. Commands
 * run on the query threads: they only read the caches and the config, and
 * write counters. */
#ifndef TENANTCACHED_COMMANDS_H
#define TENANTCACHED_COMMANDS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "acl.h"

struct cache;
struct config;
struct fill;
struct fill_result;
struct protocol_request;
struct reply_buffer;
struct transaction;

/* What a query thread shares with its commands. */
struct commands_env {
    struct cache *cache;
    const struct config *config; /* the thread's current config */
    uint64_t config_generation;
    struct fill *fill;           /* NULL: misses are nil */
};

/* One connected client, as commands see it. Owned by server.c. */
struct commands_client {
    struct reply_buffer *out;  /* the connection's output */
    uid_t uid;
    gid_t gid;
    pid_t pid;
    struct acl_grant grant;
    uint64_t grant_generation;   /* config generation grant was computed for */
    bool close_after_reply;      /* set by QUIT */
    /* Fills: the waiter handed to fill_submit() (the connection), how many
     * submitted fills have not answered yet, and the answers gathered for the
     * request being run (owned references). */
    void *fill_waiter;
    unsigned fills_pending;
    struct fill_result **fills;
    size_t fill_count;
    size_t fill_capacity;
    /* What a Redis client library expects of its connection (client.c,
     * docs/reference.md §4): the id, the names CLIENT SETNAME/SETINFO gave
     * (owned; written under client.c's registry lock, since CLIENT LIST on
     * another thread reads them), when it connected and last ran a command,
     * and the open MULTI transaction (NULL outside MULTI; transaction.c). */
    uint64_t id;
    char *name;
    char *lib_name;
    char *lib_ver;
    uint64_t connected_ms;
    uint64_t last_command_ms;           /* atomic */
    const char *last_command_name;      /* atomic; a command table name */
    struct transaction *transaction;
    bool in_exec;                /* EXEC is running the queued commands */
    struct commands_client *registry_prev; /* client.c's list of connections */
    struct commands_client *registry_next;
    bool registered;
    unsigned tracking_flags;     /* CLIENT TRACKING mode (tracking.h), its thread only */
};

enum commands_outcome {
    COMMANDS_DONE,     /* the reply is in client->out */
    COMMANDS_BLOCKED,  /* misses are being filled: run the same request again
                          once fills_pending is 0, with the answers added */
};

/* Runs one request and appends its reply to client->out, or submits fills
 * for its misses and replies nothing (COMMANDS_BLOCKED). Every error becomes
 * a RESP error reply. now_ms is the monotonic clock the caller read already
 * (for expiry and staleness), so a request costs one clock read, not two. */
enum commands_outcome commands_execute(struct commands_env *env, struct commands_client *client,
                                       const struct protocol_request *request, uint64_t now_ms);

/* Adds a fill's answer for the request being run (takes the reference). */
void commands_client_add_fill(struct commands_client *client, struct fill_result *result);
/* Releases the answers gathered (after a request completes, or on close). */
void commands_client_clear_fills(struct commands_client *client);

/* The client's grant under env's current config, computed again after a
 * reload (borrowed; valid until the next reload). The client's thread. */
const struct acl_grant *commands_client_grant(struct commands_env *env,
                                              struct commands_client *client);

/* Since when (monotonic ms) the invalidation stream counts as down (lost,
 * or a publisher silent past redis.heartbeat_timeout); 0 while it is up.
 * Any thread. */
uint64_t commands_stream_down_since(void);

/* Parses a full entry name written with redis.key_format (such as
 * "cache:acme:role:admin") into tenant, kind and key. Returns true on a
 * match; the pointers point into name. */
bool commands_parse_name(const struct config *config, const char *name, size_t len,
                         const char **tenant, size_t *tenant_len, int *kind, const char **key,
                         size_t *key_len);

#endif
