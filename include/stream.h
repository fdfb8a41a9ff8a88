/* stream.h - catching up from a Redis stream instead of flushing
 * (docs/reference.md §7, redis.stream).
 *
 * Publishers append every message to redis.stream and publish it wrapped in
 * an envelope carrying the entry's ID (scripts/tenantcached.lua). The daemon
 * remembers the last ID it applied. After every (re)subscription main.c calls
 * stream_catch_up(): this module reads the entries after that ID with XRANGE,
 * redis.stream_batch at a time, on a connection of its own (a redis_link),
 * and hands each to on_entry in stream order; each batch is applied before
 * the next is asked for, so the loop keeps serving in between. Live
 * envelopes that arrive meanwhile are held (they are in the stream too) and
 * applied once the end is reached, skipping what the catch-up applied. After
 * that, live envelopes are applied as they come, except those at or before
 * the last ID (duplicates, counted).
 *
 * Catching up is impossible when the entries after the last ID are gone:
 * XINFO STREAM's max-deleted-entry-id (Redis 7) is past it (trimmed, XDEL),
 * or the stream no longer holds the last applied entry and nothing says it
 * was deleted (the stream was lost with a Redis restart and made again), or
 * the key is missing or not a stream. on_caught_up then says so, and the
 * on_reconnect policy is main.c's to apply. Every round reads XINFO STREAM
 * and XRANGE in one MULTI/EXEC, so the check and the read see the same
 * stream.
 *
 * Runs on the main loop only. The first catch-up (no last ID yet) reads
 * XINFO STREAM's last-generated-id: the daemon starts from the stream's end. */
#ifndef TENANTCACHED_STREAM_H
#define TENANTCACHED_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "envelope.h"
#include "errors.h"

struct config;
struct event_base;
struct stream;

struct stream_callbacks {
    /* An entry to apply now, in stream order: from the catch-up, or a live
     * envelope held during it. payload (the message, without envelope) is
     * valid only during the call. The entry counts as applied when it
     * returns, whatever the message was. */
    void (*on_entry)(void *arg, const struct envelope_id *id, const char *payload, size_t len);
    /* The catch-up started by stream_catch_up() is over. ok: the end of the
     * stream was reached and everything missed was applied. !ok: what was
     * missed is gone (reason says why); the daemon resumes from the stream's
     * current end, and the held live envelopes after it are applied right
     * after this returns. */
    void (*on_caught_up)(void *arg, bool ok, const char *reason);
    void *arg;
};

/* What to do with a live envelope. */
enum stream_live {
    STREAM_LIVE_APPLY,     /* apply it now; it is the new last ID */
    STREAM_LIVE_DUPLICATE, /* at or before the last ID: skip (counted) */
    STREAM_LIVE_HELD,      /* catching up: held, applied (or skipped) by the catch-up */
};

/* Returns 0 with the stream reader in *out, or 0 with *out NULL when
 * config->redis.stream is ""; -1 (*out NULL) with the reason in
 * error[ERROR_MAX] when the Redis address is unusable. Starts connecting from
 * the loop; nothing is read until stream_catch_up(). The config is copied
 * where needed. */
int stream_create(struct event_base *base, const struct config *config, struct stream **out,
                  char *error);
/* Sets the callbacks (before the first stream_catch_up()). */
void stream_set_callbacks(struct stream *stream, const struct stream_callbacks *callbacks);
/* Applies a reloaded config: stream_batch and the connection settings. A
 * changed redis.stream name is logged and takes effect at the next start.
 * NULL is a no-op. */
void stream_reconfigure(struct stream *stream, const struct config *config);

/* The subscription is (again) up: start catching up (restarting one in
 * progress). on_caught_up is called later from the loop, never inside. */
void stream_catch_up(struct stream *stream);
/* The subscription was lost: stop catching up and drop the held envelopes
 * (no on_caught_up for this catch-up). */
void stream_abort(struct stream *stream);
/* Decides about a live envelope (payload copied when held). */
enum stream_live stream_live(struct stream *stream, const struct envelope_id *id,
                             const char *payload, size_t len);
/* Sets the last applied ID (a snapshot being loaded, before the first
 * stream_catch_up()): the first catch-up then reads from there. */
void stream_restore_last(struct stream *stream, const struct envelope_id *id);
/* The last applied ID into *id; false when none is known yet. */
bool stream_last_id(const struct stream *stream, struct envelope_id *id);
/* True from stream_catch_up() until on_caught_up. */
bool stream_catching_up(const struct stream *stream);

/* Disconnects and frees; no callback runs. NULL is a no-op. */
void stream_destroy(struct stream *stream);

#endif
