/* blocked.h - requests waiting for fills: the one owner of a parked request.
 *
 * A connection (server.c) owns one `struct blocked`. A command (commands.c)
 * runs inside a *run*: blocked_run_begin() marks the output, the command
 * looks entries up with blocked_lookup(), which answers FOUND, ABSENT or
 * PENDING (a fill was submitted for this run), and writes its reply as if
 * every lookup had answered (a PENDING entry reads as absent).
 * blocked_run_end() then decides, for the command: if any lookup of the run
 * is pending, everything the run wrote is discarded and the request is
 * parked (a private copy of its arguments); if a fill failed, what the
 * command wrote is replaced by one -UNAVAILABLE error. So a request produces
 * exactly one reply, whatever its handler wrote, and no handler checks a
 * flag.
 *
 * The fill engine hands each answer to the main thread's deliver callback
 * with the `struct blocked *` the lookup submitted; server.c moves it to the
 * query thread (blocked_home()) and calls blocked_answer(), which says when
 * every fill of the parked request has answered: the caller then runs the
 * parked request again (blocked_request()), and its lookups find the answers
 * gathered. Answers are kept until the request completes, so an entry is
 * filled at most once per request and a request always completes.
 *
 * A run may hold several steps (blocked_step_begin/end): a transaction (EXEC)
 * runs each queued command as one step of one run: a failed fill turns only
 * that step's reply into -UNAVAILABLE, a pending lookup in any step parks the
 * whole run, and the transaction is run again once all its fills answered.
 * Those steps sit inside EXEC's own step (commands_execute() opens one for
 * every request); each ends itself, so EXEC's end has nothing to replace.
 *
 * Threads: everything but blocked_home() is called on the owning query
 * thread only. */
#ifndef TENANTCACHED_BLOCKED_H
#define TENANTCACHED_BLOCKED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct blocked;
struct cache_reader;
struct config;
struct fill;
struct fill_result;
struct protocol_request;
struct reply_buffer;

/* What a lookup answers. */
enum blocked_lookup {
    BLOCKED_FOUND,   /* *item holds the value */
    BLOCKED_ABSENT,  /* not found (or a fill failed: the step answers -UNAVAILABLE) */
    BLOCKED_PENDING, /* a fill was submitted: the run will be parked */
};

/* What to do on a real miss. */
enum blocked_miss {
    BLOCKED_MISS_WAIT,     /* fill it and park the run */
    BLOCKED_MISS_PREFETCH, /* fill it for later requests; answer ABSENT now */
    BLOCKED_MISS_PEEK,     /* fill nothing; answer PENDING, but park nothing */
};

/* A value as a command sees it: from the cache (valid while the reader's
 * shard is locked) or from a fill gathered for the request (valid until the
 * run ends). */
struct blocked_item {
    const char *json;
    size_t json_len;
    const void *derived;
    size_t derived_len;
};

enum blocked_outcome {
    BLOCKED_DONE,   /* the request's reply is in the output */
    BLOCKED_PARKED, /* nothing was written; run blocked_request() again when
                       blocked_answer() says BLOCKED_READY */
};

enum blocked_answer {
    BLOCKED_WAITING, /* other fills of the parked request have not answered */
    BLOCKED_READY,   /* all answered: run the parked request again */
    BLOCKED_IGNORED, /* nothing waits for it (the owner is gone; freed if last) */
};

/* Creates the waiting state of a connection. home is the owner's query
 * thread (read on the main thread by the deliver callback), owner the
 * connection; both are the caller's, borrowed. Cannot fail. */
struct blocked *blocked_create(void *home, void *owner);
/* Any thread: the home given to blocked_create(). */
void *blocked_home(const struct blocked *blocked);
/* The owner, or NULL once detached. */
void *blocked_owner(const struct blocked *blocked);
/* The owner goes away: frees now, or when the last fill it waits for
 * answers (through blocked_answer()). */
void blocked_detach(struct blocked *blocked);

/* True while a request is parked (the owner reads and runs nothing more). */
bool blocked_waiting(const struct blocked *blocked);
/* The parked request (NULL: none); owned by blocked. Every argument is
 * followed by a NUL byte not counted in its length. */
const struct protocol_request *blocked_request(const struct blocked *blocked);

/* Starts a run of `request` writing to out. fill NULL: misses are absent. */
void blocked_run_begin(struct blocked *blocked, struct fill *fill, const struct config *config,
                       struct reply_buffer *out);
/* A step of the run: one command's reply. */
void blocked_step_begin(struct blocked *blocked);
/* Ends the step: a failed fill replaces what it wrote with -UNAVAILABLE. */
void blocked_step_end(struct blocked *blocked);
/* True when a lookup of the run in progress submitted a fill: the run will
 * be parked and run again (a transaction keeps its queued commands then). */
bool blocked_run_waits(const struct blocked *blocked);
/* Ends the run (see the top of this file). request is parked (copied)
 * unless it is the parked request already. */
enum blocked_outcome blocked_run_end(struct blocked *blocked,
                                     const struct protocol_request *request);

/* Looks (tenant, kind, key) up for the current run: first the answers
 * gathered for this request, then the cache through reader (a tombstone or
 * a negative entry is ABSENT without a fill), and on a real miss submits a
 * fill (see enum blocked_miss). */
enum blocked_lookup blocked_lookup(struct blocked *blocked, struct cache_reader *reader,
                                   const char *tenant, size_t tenant_len, unsigned kind,
                                   const char *key, size_t key_len, enum blocked_miss miss,
                                   struct blocked_item *item);

/* A fill's answer (takes the reference). May free blocked (BLOCKED_IGNORED
 * after blocked_detach). */
enum blocked_answer blocked_answer(struct blocked *blocked, struct fill_result *result);

#endif
