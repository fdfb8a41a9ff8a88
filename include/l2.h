/* l2.h - the L2 fill source: a plain (non-subscribed) Redis connection, docs/reference.md §5.
 *
 * A hiredis async connection on the main loop, separate from the pub/sub
 * one, used for `GET` of redis.key_format on a miss and `SET key value EX
 * l2_ttl NX` when the origin supplied a value. It connects (and AUTHs and
 * SELECTs redis.db) on its own and reconnects with backoff; while it is not
 * ready, fills skip L2. Every GET is bounded by a libevent timer, since
 * hiredis 0.14 has no command timeouts. */
#ifndef TENANTCACHED_L2_H
#define TENANTCACHED_L2_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

struct config;
struct event_base;
struct l2;

enum l2_status {
    L2_FOUND,      /* value holds the string stored at the key */
    L2_MISSING,    /* the key does not exist (nil) */
    L2_FAILED,     /* not connected, error reply, wrong type, timeout, disconnect */
};

/* value is valid only during the call. */
typedef void l2_done_fn(void *arg, enum l2_status status, const char *value, size_t len);

/* Returns 0 with the client in *out, or 0 with *out NULL when
 * config->redis.l2 is false; -1 (*out NULL) with the reason in
 * error[ERROR_MAX] when the redis address is unusable. The config is copied
 * where needed. Starts connecting from the loop: no callback runs before it
 * returns. */
int l2_create(struct event_base *base, const struct config *config, struct l2 **out,
              char *error);
/* Applies a reloaded config: reconnects if the address, credentials or db
 * changed (redis.l2 itself is the caller's business). NULL is a no-op. */
void l2_reconfigure(struct l2 *l2, const struct config *config);
bool l2_ready(const struct l2 *l2);
/* Ready, or its first connection attempt is still under way (a GET waits
 * for it): worth a GET. False once the link has been up or failed, until it
 * is up again. */
bool l2_available(const struct l2 *l2);

/* GET key, answered through done exactly once, within timeout_ms in every
 * case. done never runs inside l2_get(): while the first connection
 * attempt is under way it waits for it (sent when the link comes up,
 * L2_FAILED when the attempt fails); otherwise when not ready (or the
 * command cannot be sent) it is answered L2_FAILED from the loop's next
 * iteration.
 * Reply STRING: L2_FOUND; nil: L2_MISSING; anything else, the timeout or a
 * lost connection: L2_FAILED. */
void l2_get(struct l2 *l2, const char *key, size_t key_len, uint64_t timeout_ms, l2_done_fn *done,
            void *arg);
/* SET key value EX seconds [NX], fire and forget (skipped when not ready;
 * an error reply is logged). if_absent (NX): the write-back of a fill never
 * replaces what another writer stored at the key meanwhile, which is newer
 * than what the origin answered. ttl_seconds 0: no expiry. */
void l2_set(struct l2 *l2, const char *key, size_t key_len, const char *value, size_t value_len,
            uint64_t ttl_seconds, bool if_absent);

/* Disconnects; every pending GET is answered L2_FAILED before it returns,
 * and everything is freed. Safe inside a done callback. NULL is a no-op. */
void l2_destroy(struct l2 *l2);

#endif
