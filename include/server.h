/* server.h - the query side: the Unix socket, its connections and the query threads.
 *
 * The main thread owns the listening socket and accepts; each accepted
 * connection is handed to one of `threads` query threads, each running its
 * own libevent loop, which reads RESP requests (protocol.c), runs them
 * (commands.c) and writes the replies in order. Limits of docs/reference.md §8 are
 * enforced here: max_clients, max_request_bytes and max_args (through the
 * parser), idle_timeout, max_reply_backlog and max_buffer_memory (all
 * clients' buffers together). A request waiting for fills is parked in the
 * connection's blocked state (blocked.h). */
#ifndef TENANTCACHED_SERVER_H
#define TENANTCACHED_SERVER_H

#include <stddef.h>

#include "errors.h"

struct blocked;
struct cache;
struct config;
struct event_base;
struct fill;
struct fill_result;
struct server;

/* Creates the socket at config->listen.socket (replacing a stale socket
 * file, refusing a live one), starts the query threads and begins accepting
 * on main_base. The cache and config are borrowed: the config must live until
 * server_reconfigure() or server_stop() returns. Returns NULL with a message
 * in error[ERROR_MAX] on failure. */
struct server *server_start(struct event_base *main_base, struct cache *cache, struct fill *fill,
                            const struct config *config, char *error);

/* The fill engine's deliver callback (fill.h): hands a fill's answer to the
 * query thread of the connection that waits for it. Main thread. */
void server_deliver_fill(struct blocked *waiter, struct fill_result *result);

/* Hands a reloaded config to every query thread and waits until each uses
 * it, so the caller may free the old one on return. A changed socket path,
 * mode or group makes the server listen anew. Returns 0, or -1 with a
 * message if the new socket could not be made (the old one stays). */
int server_reconfigure(struct server *server, const struct config *config, char *error);

/* Stops accepting, lets every connection finish the replies it has pending
 * (for at most a few seconds), stops the threads, removes the socket file and
 * frees everything. */
void server_stop(struct server *server);

#endif
