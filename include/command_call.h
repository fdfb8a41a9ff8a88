/* command_call.h - what the command handlers share, inside the query side.
 *
 * commands.c declares every command in one table (name, arity, flags, group,
 * summary, argument syntax) and dispatches to its handler. The handlers that
 * live in their own files - the connection commands of client.c, MULTI/EXEC
 * of transaction.c, COMMAND of command_docs.c, INFO and HEALTH of report.c
 * (report.h) - receive the same call as the
 * ones in commands.c, and COMMAND reads the same table to describe them
 * (docs/reference.md §4, "Speaking Redis to every client"). Query threads
 * only. */
#ifndef TENANTCACHED_COMMAND_CALL_H
#define TENANTCACHED_COMMAND_CALL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "commands.h"

struct command_call {
    struct commands_env *env;
    struct commands_client *client;
    const struct protocol_request *request;
    struct reply_buffer *out;
    uint64_t now_ms;
};

typedef void command_handler(struct command_call *call);

/* Flags of a command row; COMMAND shows the first ones as redis-server's
 * command flags. */
enum {
    COMMAND_READONLY = 1u << 0, /* "readonly": reads the caches */
    COMMAND_FAST = 1u << 1,     /* "fast" */
    COMMAND_ADMIN = 1u << 2,    /* "admin" */
    COMMAND_STALE = 1u << 3,    /* "stale": answers while the stream is down */
    COMMAND_LOADING = 1u << 4,  /* "loading" */
    COMMAND_NO_QUEUE = 1u << 5, /* runs at once inside MULTI (MULTI, EXEC, DISCARD, WATCH, QUIT) */
};

/* One row of the command table: the only place a command is declared. */
struct command {
    const char *name;       /* upper case */
    int min_args;           /* counting the command name */
    int max_args;           /* -1: no limit */
    command_handler *handler;
    unsigned flags;
    const char *group;      /* COMMAND DOCS "group" */
    const char *summary;    /* COMMAND DOCS "summary", HELP in redis-cli */
    /* The arguments after the name, as redis-cli's help shows them:
     * words separated by spaces, "[...]" optional (may nest), a "..." suffix
     * repeats, ":integer" types a word, an upper-case word is a token
     * ("[SETNAME clientname]"). Parsed by command_docs.c. */
    const char *arguments;
    const char *since;      /* COMMAND DOCS "since": the version that brought it */
};

extern const struct command commands_table[];
extern const size_t commands_table_count;

/* The row for a command name (any case), or NULL. */
const struct command *commands_find(const char *name, size_t len);

/* Argument i of the call (borrowed, not NUL-terminated). */
const char *commands_arg(const struct command_call *call, size_t i, size_t *len);

/* Writes text[0..len) into shown[size] for an error message: shortened,
 * control and non-ASCII bytes as '?'. Cannot fail. */
void commands_quote(const char *text, size_t len, char *shown, size_t size);

/* The caller's grant under the thread's current config. Cannot fail. */
const struct acl_grant *commands_grant(struct command_call *call);

/* Handlers of the connection commands (client.c). */
command_handler client_command_hello;
command_handler client_command_client;
command_handler client_command_select;
command_handler client_command_echo;

/* Handlers of the transaction commands (transaction.c). */
command_handler transaction_command_multi;
command_handler transaction_command_exec;
command_handler transaction_command_discard;
command_handler transaction_command_watch;
command_handler transaction_command_unwatch;

/* COMMAND [COUNT | INFO name... | DOCS [name...] | LIST] (command_docs.c). */
command_handler command_docs_command;

#endif
