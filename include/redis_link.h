/* redis_link.h - one hiredis async connection to Redis on the main loop, made
 * again with backoff whenever it fails. Shared by the pub/sub subscriber and
 * the L2 connection, which differ only in what they send once it is up.
 *
 * An attempt connects (TCP to redis.host:port, or redis.unix), sends AUTH
 * (`AUTH user pass` or `AUTH pass`) when credentials are set, SELECT redis.db
 * when asked to and the db is not 0, a PING when asked for a round trip and
 * nothing else was sent, then hands the context to the owner's on_setup (the
 * subscriber sends SUBSCRIBE there) until the owner calls
 * redis_link_established(). connect_timeout bounds the whole handshake, since
 * hiredis 0.14 has no timeouts. A failed attempt or a lost connection is
 * retried after reconnect_min doubled per consecutive failure up to
 * reconnect_max, with jitter. It never exits the process and never spins.
 *
 * With redis.sentinels set, redis.host/port/unix are not used: each attempt
 * connects to the master sentinel.c last verified (none known: the attempt
 * fails and is retried after the backoff), a lost connection makes the
 * sentinels be asked again, and a master that moves is followed at once.
 *
 * Context lifetime: hiredis frees its async context itself after a failed
 * connect and right after the disconnect callback, and runs every pending
 * reply callback with a NULL reply when a context is freed. This module never
 * frees a context from inside a hiredis callback: a drop asked for there
 * (redis_link_drop_later) is carried out by a libevent event. A context the
 * link gives up on has its `data` cleared first, so that the callbacks hiredis
 * runs while freeing it can tell (redis_link_owner() returns NULL). */
#ifndef TENANTCACHED_REDIS_LINK_H
#define TENANTCACHED_REDIS_LINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <hiredis/async.h>

#include "errors.h"

struct config;
struct event_base;
struct redis_link;

struct redis_link_options {
    const char *name;        /* in log lines: "pub/sub", "L2"; static storage */
    const char *setup_stage; /* what on_setup waits for, in the timeout message ("subscribing") */
    bool select_db;          /* SELECT redis.db when it is not 0 (pub/sub ignores the db) */
    bool ping;               /* PING before on_setup when neither AUTH nor SELECT was
                              * answered, so that "up" always means "Redis answers" */
};

struct redis_link_callbacks {
    /* The connection is made, authenticated and its db selected. The owner
     * sends its own setup commands on ac and calls redis_link_established()
     * when they are confirmed (all within connect_timeout). Runs inside a
     * hiredis callback. NULL: the link is established at once. */
    void (*on_setup)(void *arg, redisAsyncContext *ac);
    /* The link is up (first: the first time since redis_link_create()).
     * redis_link_up() is already true. */
    void (*on_up)(void *arg, bool first);
    /* The link went down or the first attempt of an outage failed; reason is
     * hiredis's or Redis's text. Once per outage, not per failed retry.
     * redis_link_up() is already false. May run inside a hiredis callback. */
    void (*on_down)(void *arg, const char *reason);
    void *arg;
};

/* Returns NULL when config's redis address is usable, else what is wrong
 * with it (static text). */
const char *redis_link_config_problem(const struct config *config);

/* Creates the link and starts connecting from the loop (no callback runs
 * before this returns). The config is copied; options and callbacks are
 * copied too (options->name and setup_stage must stay valid). Returns NULL
 * with the reason in error[ERROR_MAX] only on a config whose address is
 * unusable. */
struct redis_link *redis_link_create(struct event_base *base, const struct config *config,
                                     const struct redis_link_options *options,
                                     const struct redis_link_callbacks *callbacks, char *error);

/* Applies a reloaded config. The connection is made again when the address,
 * the credentials or (with select_db) the db changed, or when reconnect is
 * true (the owner's own settings changed); otherwise only timeouts and
 * backoff bounds change, from the next attempt. Returns 0, or -1 (logged,
 * previous settings kept) on an unusable address. Safe inside callbacks. */
int redis_link_reconfigure(struct redis_link *link, const struct config *config, bool reconnect);

/* Called by the owner when what it sent in on_setup is confirmed. */
void redis_link_established(struct redis_link *link);

/* Gives up the current connection (if any) and reconnects after the backoff.
 * Carried out from the loop, so safe inside hiredis callbacks. */
void redis_link_drop_later(struct redis_link *link, const char *reason);

/* The owner's callbacks.arg when ac is the link's live context (no drop
 * pending), else NULL: the context is being freed or was given up, and its
 * replies must be ignored. For the owner's reply callbacks. */
void *redis_link_owner(const redisAsyncContext *ac);

/* True from redis_link_established() until the connection is lost. */
bool redis_link_up(const struct redis_link *link);
/* The context to send commands on: non-NULL only while up and no drop is
 * pending. Owned by the link; valid until control returns to the loop. */
redisAsyncContext *redis_link_context(const struct redis_link *link);
/* "unix:/path" or "host:port" into buf, for log lines. Returns buf. */
const char *redis_link_address(const struct redis_link *link, char *buf, size_t size);

/* The Redis server in use as "host:port" or "unix:/path" into buf: the
 * configured address, or with redis.sentinels the master they named ("" while
 * none is known). Thread-safe. Returns buf. */
const char *redis_link_master_address(const struct config *config, char *buf, size_t size);

/* The delay before retry number failures + 1: min doubled per failure up to
 * max, then drawn uniformly from its upper half (never below min), so that
 * many daemons restarted together by one Redis outage do not reconnect in
 * lockstep. *rng is util_random()'s state. Cannot fail. */
uint64_t redis_link_backoff_ms(uint64_t min, uint64_t max, unsigned failures, uint64_t *rng);

/* Frees the context (its pending replies are called back with NULL, and
 * redis_link_owner() is NULL for them) and the link. Safe from the loop, from
 * on_up and on_down, and from the owner's reply callbacks (hiredis then
 * defers the context's free until the callback returns). NULL is a no-op. */
void redis_link_free(struct redis_link *link);

#endif
