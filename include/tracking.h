/* tracking.h - client-side caching: CLIENT TRACKING and its invalidation
 * pushes (docs/reference.md §4, "Client-side caching").
 *
 * A connection that turns tracking on is remembered for every entry name it
 * reads with GET name / MGET name... (default mode), or for every name under
 * its prefixes (BCAST). The cache tells this module of every change of an
 * entry (cache_set_change_hook: messages, fills, expiry, eviction, flushes);
 * the first change of a remembered name queues one invalidation for each
 * connection that read it, which then forgets it. A flush of everything, the
 * stream turning stale and connections redirecting to a closed one queue
 * the other forms.
 *
 * Delivery: queued invalidations wait in the connection's outbox under this
 * module's lock; the connection's query thread is woken through its
 * tracking_sink and writes them (tracking_drain) between requests, so a push
 * never splits a reply and is written only by the thread that owns the
 * connection. A connection that closes drops its outbox with its record.
 *
 * Threads: tracking_change() runs on whichever thread writes the cache;
 * tracking_remember() on a query thread under the entry's shard read lock,
 * so that a change is either seen by the read or reaches the connection;
 * the command handlers and tracking_drain() on the connection's own thread.
 * One mutex covers the table, the outboxes and the records. */
#ifndef TENANTCACHED_TRACKING_H
#define TENANTCACHED_TRACKING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "command_call.h"

struct commands_client;
struct config;
struct tracking_sink;

/* Bits of commands_client.tracking_flags (owned by the connection's thread). */
enum {
    TRACKING_ON = 1u << 0,
    TRACKING_BCAST = 1u << 1,
    TRACKING_OPTIN = 1u << 2,
    TRACKING_OPTOUT = 1u << 3,
    TRACKING_NOLOOP = 1u << 4,
    TRACKING_CACHING = 1u << 5,         /* CLIENT CACHING given for this command */
    TRACKING_CACHING_NEXT = 1u << 6,    /* ... for the next command */
};

/* Sets up the module (the lock, the tables). Main thread, before the query
 * threads start; cannot fail. tracking_shutdown() frees everything after
 * they stopped. */
void tracking_init(const struct config *config);
void tracking_shutdown(void);

/* Takes the name format, kind names and listen.tracking_max_keys of a
 * (re)loaded config; copies what it keeps. Lowering the bound invalidates
 * the oldest names at once. Any thread; cannot fail. */
void tracking_configure(const struct config *config);

/* The cache's change hook (cache_change_fn): tenant NULL is a flush of
 * everything. */
void tracking_change(void *arg, const char *tenant, size_t tenant_len, unsigned kind,
                     const char *key, size_t key_len);

/* Sends every tracking connection the "invalidate everything" push and
 * forgets every name, once per period in which the stream is down past
 * max_stale_ms (down_since_ms as freshness_down_since() gives it,
 * 0: up). Called before the first -STALE reply and from the main loop's
 * timer. Any thread. */
void tracking_check_stale(uint64_t down_since_ms, uint64_t now_ms, uint64_t max_stale_ms);

/* ---- connections ---- */

/* The delivery point of one query thread: wake(arg) is called (from any
 * thread, with this module's lock held, so it must only signal) when an
 * outbox of one of its connections became non-empty. Cannot fail. */
struct tracking_sink *tracking_sink_create(void (*wake)(void *arg), void *arg);
void tracking_sink_destroy(struct tracking_sink *sink);

/* Registers a connection (its client id already given) with the sink of its
 * thread; conn is handed back by tracking_drain(). Borrowed: both must live
 * until tracking_client_close(). Cannot fail. */
void tracking_client_open(struct commands_client *client, struct tracking_sink *sink, void *conn);
/* Forgets the connection and drops its outbox. Connections redirecting to
 * it are told so on their next invalidation. Its thread; cannot fail. */
void tracking_client_close(struct commands_client *client);

/* Writes every queued invalidation of the sink's connections into their
 * output buffers (as RESP3 pushes, or pub/sub messages to a RESP2
 * connection subscribed to __redis__:invalidate; names the connection may
 * not read, by its commands_client grant, are left out). prepare(arg, conn)
 * is called first for each such connection, with no lock held, to bring
 * its grant up to date; done(arg, conn) after, with no lock held (done may
 * free the connection). The sink's thread, between requests; cannot fail. */
void tracking_drain(struct tracking_sink *sink, void (*prepare)(void *arg, void *conn),
                    void (*done)(void *arg, void *conn), void *arg);

/* Remembers that client read the entry `name` (tenant at name[tenant_off],
 * tenant_len bytes), if its tracking mode says so. Call with the entry's
 * shard read-locked, after the checks that allowed the read. */
void tracking_remember(struct commands_client *client, const char *name, size_t name_len,
                       size_t tenant_off, size_t tenant_len);

/* After each command: CLIENT CACHING applies to the next command only. */
void tracking_command_done(struct commands_client *client);

/* CLIENT TRACKING / CACHING / GETREDIR / TRACKINGINFO (sub is argument 1). */
void tracking_command_client(struct command_call *call);
/* SUBSCRIBE / UNSUBSCRIBE, for the __redis__:invalidate channel only. */
command_handler tracking_command_subscribe;
command_handler tracking_command_unsubscribe;

/* True if sub names one of the subcommands above. */
bool tracking_is_subcommand(const char *sub, size_t len);

#endif
