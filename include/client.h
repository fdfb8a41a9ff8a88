/* client.h - what a Redis client library expects of its connection: an id,
 * a name, the protocol version (HELLO), CLIENT LIST (docs/reference.md §4).
 *
 * server.c registers each connection's commands_client when it is accepted
 * and unregisters it when its socket closes; CLIENT LIST on any query thread
 * reads the registry under its lock. With log_level debug, connects and
 * disconnects are logged with the peer's uid/gid/pid and the client name. */
#ifndef TENANTCACHED_CLIENT_H
#define TENANTCACHED_CLIENT_H

#include <stdint.h>

struct commands_client;

/* Gives client its id and adds it to the registry (uid/gid/pid already
 * set). Any thread; cannot fail. */
void client_register(struct commands_client *client, uint64_t now_ms);

/* Removes client from the registry (a no-op if it is not in it). Any
 * thread; cannot fail. */
void client_unregister(struct commands_client *client);

/* Frees what the client owns: its names and its open transaction. Call
 * after client_unregister(). */
void client_release(struct commands_client *client);

/* Notes the command the client runs (a table name, static) and when, for
 * CLIENT LIST's cmd= and idle=. Cannot fail. */
void client_note_command(struct commands_client *client, const char *name, uint64_t now_ms);

#endif
