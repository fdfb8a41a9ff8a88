/* commands.h - the query commands of docs/reference.md §4 and their dispatch.
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

struct blocked;
struct cache;
struct config;
struct fill;
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
    struct blocked *blocked;     /* the waiting-for-fills state (blocked.h); the server's */
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
    COMMANDS_BLOCKED,  /* misses are being filled and nothing was written: run
                          blocked_request(client->blocked) again once
                          blocked_answer() says BLOCKED_READY */
};

/* Runs one request and appends exactly one reply to client->out, or parks
 * it in client->blocked while its misses are filled and replies nothing
 * (COMMANDS_BLOCKED). Every error becomes a RESP error reply. now_ms is the
 * monotonic clock the caller read already (for expiry and staleness), so a
 * request costs one clock read, not two. */
enum commands_outcome commands_execute(struct commands_env *env, struct commands_client *client,
                                       const struct protocol_request *request, uint64_t now_ms);

/* Runs one command as one step of the run commands_execute() began (its
 * reply, or its -UNAVAILABLE, is one element): a transaction's handler runs
 * each queued command with this, and the whole transaction is parked and
 * run again if any of them waits for a fill. */
void commands_run_step(struct commands_env *env, struct commands_client *client,
                       const struct protocol_request *request, uint64_t now_ms);

/* The client's grant under env's current config, computed again after a
 * reload (borrowed; valid until the next reload). The client's thread. */
const struct acl_grant *commands_client_grant(struct commands_env *env,
                                              struct commands_client *client);

#endif
