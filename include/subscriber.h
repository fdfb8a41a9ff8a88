/* subscriber.h - the invalidation stream: a hiredis async pub/sub connection.
 *
 * Runs on the main event loop. Connects to Redis (TCP or Unix socket),
 * authenticates, selects nothing (pub/sub ignores the db), SUBSCRIBEs to the
 * configured channels and PSUBSCRIBEs to the patterns, and hands every payload
 * to the on_message callback. When the connection fails or drops it
 * reconnects with exponential backoff and jitter between reconnect_min and
 * reconnect_max; connect_timeout is enforced with a libevent timer since
 * hiredis 0.14 has none. It never exits the process and never spins. */
#ifndef TENANTCACHED_SUBSCRIBER_H
#define TENANTCACHED_SUBSCRIBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

struct event_base;
struct config;
struct subscriber;

struct subscriber_callbacks {
    /* A payload arrived on `channel` (the channel it was published on, also
     * for pattern subscriptions). The payload is only valid during the call. */
    void (*on_message)(void *arg, const char *channel, const char *payload, size_t len);
    /* Every channel and pattern is subscribed again (first connect: first=true).
     * This is where the on_reconnect policy runs. */
    void (*on_subscribed)(void *arg, bool first);
    /* The subscription was lost (or a connect attempt failed); `reason` is
     * hiredis's error text. Called once per loss, not per failed retry. */
    void (*on_disconnected)(void *arg, const char *reason);
    void *arg;
};

/* Creates the subscriber and starts connecting. The config is copied where
 * needed; the caller keeps ownership of it. Returns NULL only on a config it
 * cannot use, with the reason in error[ERROR_MAX]. */
struct subscriber *subscriber_start(struct event_base *base, const struct config *config,
                                    const struct subscriber_callbacks *callbacks, char *error);

/* Applies a reloaded config: if the address, credentials, channels or
 * patterns changed, the connection is dropped and made again. */
void subscriber_reconfigure(struct subscriber *sub, const struct config *config);

/* Disconnects and frees. Safe to call from outside any hiredis callback. */
void subscriber_stop(struct subscriber *sub);

#endif
