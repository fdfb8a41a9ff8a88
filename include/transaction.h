/* transaction.h - MULTI/EXEC/DISCARD as redis-server runs them
 * (docs/reference.md §4): after MULTI the dispatcher queues each command
 * (+QUEUED) instead of running it; EXEC runs the queue and answers the array
 * of the replies. The handlers are in command_call.h. Query threads only. */
#ifndef TENANTCACHED_TRANSACTION_H
#define TENANTCACHED_TRANSACTION_H

#include <stdbool.h>
#include <stdint.h>

struct commands_client;
struct protocol_request;
struct reply_buffer;

/* True while the client is inside MULTI (and EXEC is not running the queue):
 * commands are queued, not run. */
bool transaction_queueing(const struct commands_client *client);

/* Queues a copy of request and replies +QUEUED to out. A queue whose
 * requests together would exceed limit_bytes is refused: the reply is an
 * error and EXEC will answer -EXECABORT. Cannot fail otherwise. */
void transaction_queue(struct commands_client *client, const struct protocol_request *request,
                       uint64_t limit_bytes, struct reply_buffer *out);

/* An error was reported while queueing (unknown command, wrong arity): EXEC
 * will answer -EXECABORT. */
void transaction_fail(struct commands_client *client);

/* How many commands are queued: -1 outside MULTI (CLIENT LIST's multi=). */
long transaction_queued(const struct commands_client *client);

/* Frees the client's open transaction, if any (DISCARD, EXEC, close). */
void transaction_free(struct commands_client *client);

#endif
