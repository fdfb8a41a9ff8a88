/* fill.h - filling misses from Redis (L2) and the origin HTTP API (L3), docs/reference.md §5.
 *
 * A query thread that misses an entry submits a fill and parks its request;
 * the fill runs on the main loop: L2 `GET` of redis.key_format on a separate
 * (non-subscribed) hiredis connection, then L3 `GET` of origin.url. Misses of
 * one entry share one fill. The outcome is handed to every waiter through the
 * deliver callback (on the main thread), and cached unless an invalidation
 * message touched the entry while the fill was in flight (a `set` always wins
 * over a fill; a tombstone blocks it). */
#ifndef TENANTCACHED_FILL_H
#define TENANTCACHED_FILL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include "value.h"

struct blocked;
struct cache;
struct config;
struct event_base;
struct fill;

enum fill_status {
    FILL_VALUE,        /* value holds the entry */
    FILL_NOT_FOUND,    /* neither L2 nor L3 has it (L3 404: cached as negative) */
    FILL_UNAVAILABLE,  /* L2 and L3 failed or timed out */
};

/* The outcome of one fill, shared read-only by its waiters on any thread.
 * Reference-counted: each waiter receives one reference and releases it. */
struct fill_result {
    _Atomic unsigned references;
    enum fill_status status;
    char *tenant;
    size_t tenant_len;
    unsigned kind;
    char *key;
    size_t key_len;
    struct value_prepared value; /* FILL_VALUE only */
};

void fill_result_release(struct fill_result *result);

/* Called on the main thread with a reference the waiter now owns. The
 * waiter is the one given to fill_submit() (blocked.h). */
typedef void fill_deliver_fn(struct blocked *waiter, struct fill_result *result);

/* Creates the fill engine on the main loop (connecting to L2 when
 * redis.l2 is set). The cache and config are borrowed. Cannot fail. */
struct fill *fill_create(struct event_base *base, struct cache *cache, const struct config *config,
                         fill_deliver_fn *deliver);
/* Applies a reloaded config; the old one may be freed on return. */
void fill_reconfigure(struct fill *fill, const struct config *config);

/* Main thread, on a reload that renumbered the kinds, before
 * fill_reconfigure(): fills in flight and queued submissions of kind k take
 * kind map[k]; those of a removed kind (map[k] < 0, or k >= map_count) are
 * answered FILL_UNAVAILABLE. */
void fill_remap_kinds(struct fill *fill, const int *map, unsigned map_count);

/* True if config has a fill source for kind (L2 or L3, and a kind cached here). */
bool fill_possible(const struct config *config, unsigned kind);

/* Any thread: asks for (tenant, kind, key) to be filled; the result goes to
 * waiter through the deliver callback (waiter NULL: nobody waits, the
 * entry is only cached). Returns 0, or -1 once the engine is shutting down
 * (the caller answers -UNAVAILABLE itself). */
int fill_submit(struct fill *fill, const char *tenant, size_t tenant_len, unsigned kind,
                const char *key, size_t key_len, struct blocked *waiter);

/* Main thread: a message wrote the entry (kind < 0: every kind; key NULL:
 * every key; tenant NULL: every tenant), so fills in flight for it must not
 * be cached. */
void fill_note_write(struct fill *fill, const char *tenant, size_t tenant_len, int kind,
                     const char *key, size_t key_len);

/* Any thread, before the flush: the tenant's entries (tenant NULL: every
 * tenant's) are being dropped, so no fill in flight for them may cache what
 * it brings; fills of other tenants still do. */
void fill_note_flush(struct fill *fill, const char *tenant, size_t tenant_len);

/* Main thread: fills an entry nobody waits for (hot refresh). */
void fill_refresh(struct fill *fill, const char *tenant, size_t tenant_len, unsigned kind,
                  const char *key, size_t key_len);

/* Answers every waiter FILL_UNAVAILABLE and refuses new submissions. Call
 * before stopping the query threads; free with fill_destroy() after. */
void fill_shutdown(struct fill *fill);
void fill_destroy(struct fill *fill);

#endif
