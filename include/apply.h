/* apply.h - applying validated invalidation messages to the caches.
 *
 * The middle of the data flow: subscriber -> message_parse -> apply -> cache.
 * Runs on the main thread, the caches' usual writer (FLUSH from a query
 * thread is the other; cache.h serialises them). Besides the writes it
 * keeps the counters of docs/reference.md §4 and the per-publisher sequence numbers of
 * docs/reference.md §7: a jump in a publisher's `seq` means messages were lost, which the
 * daemon handles like a reconnect (through the on_gap callback). */
#ifndef TENANTCACHED_APPLY_H
#define TENANTCACHED_APPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache;
struct config;
struct message_batch;
struct apply;

struct apply_callbacks {
    /* A publisher's sequence jumped (messages were lost). Called before the
     * message that revealed it is applied. */
    void (*on_gap)(void *arg, const char *src, uint64_t expected, uint64_t got);
    /* An entry (or with kind < 0 / key NULL, a whole scope) was written by a
     * message: fills in flight for it must not be cached. */
    void (*on_write)(void *arg, const char *tenant, size_t tenant_len, int kind, const char *key,
                     size_t key_len);
    /* An entry read at least memory.hot_reads times in the last minute was
     * invalidated: it may be filled again at once. */
    void (*on_hot)(void *arg, const char *tenant, size_t tenant_len, unsigned kind,
                   const char *key, size_t key_len);
    void *arg;
};

/* Creates the applier. The cache and config are borrowed; apply_set_config()
 * swaps the config on reload. Cannot fail. */
struct apply *apply_create(struct cache *cache, const struct config *config,
                           const struct apply_callbacks *callbacks);
void apply_set_config(struct apply *apply, const struct config *config);
void apply_destroy(struct apply *apply);

/* Applies every operation of batch in order. */
void apply_batch(struct apply *apply, const struct message_batch *batch, uint64_t now_ms);

/* The oldest "last heard" time (monotonic ms) among publishers that sent a
 * seq, or 0 when none did: for redis.heartbeat_timeout. */
uint64_t apply_oldest_publisher_ms(const struct apply *apply);

/* Forgets the publishers not heard from for more than silent_ms (each
 * logged): a src that stopped for good must not keep data stale. Returns how
 * many were forgotten. */
size_t apply_forget_silent_publishers(struct apply *apply, uint64_t now_ms, uint64_t silent_ms);

/* Forgets every publisher's sequence (after a resubscribe, nothing is known
 * about what was missed, and the caches were dealt with already). */
void apply_forget_publishers(struct apply *apply);

/* Calls fn with every publisher's src and last seq (for a snapshot). */
void apply_foreach_publisher(const struct apply *apply,
                             void (*fn)(void *arg, const char *src, uint64_t seq), void *arg);
/* Remembers src's last seq, heard at now_ms (a snapshot being loaded). */
void apply_restore_publisher(struct apply *apply, const char *src, uint64_t seq, uint64_t now_ms);

#endif
