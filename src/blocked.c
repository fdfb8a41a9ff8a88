/* blocked.c - requests waiting for fills (see blocked.h).
 *
 * The state of one connection: the request parked while its misses are
 * filled (a private copy, since the input buffer moves on), the fills it
 * waits for, the answers gathered, and the marks of the run in progress in
 * the connection's output, so that whatever a run wrote before it had to
 * wait is discarded here and never reaches the client. */
#include "blocked.h"

#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "config.h"
#include "fill.h"
#include "protocol.h"
#include "reply.h"
#include "util.h"

struct blocked {
    void *home;
    void *owner;                  /* NULL once detached */
    unsigned fills_pending;       /* submitted with this as waiter, not answered */
    struct fill_result **answers; /* gathered for the request (owned references) */
    size_t answer_count;
    size_t answer_capacity;

    /* The parked request: argv points into data, each argument NUL-terminated. */
    bool parked;
    struct protocol_request request;
    char *data;

    /* The run in progress. */
    struct fill *fill;
    const struct config *config;
    struct reply_buffer *out;
    size_t run_mark;              /* output length when the run began */
    size_t step_mark;             /* output length when the step began */
    bool run_pending;             /* a lookup of this run submitted a fill */
    bool step_unavailable;        /* a fill of this step failed */
};

struct blocked *blocked_create(void *home, void *owner)
{
    struct blocked *blocked = xcalloc(1, sizeof(*blocked));
    blocked->home = home;
    blocked->owner = owner;
    return blocked;
}

void *blocked_home(const struct blocked *blocked)
{
    return blocked->home;
}

void *blocked_owner(const struct blocked *blocked)
{
    return blocked->owner;
}

static void release_answers(struct blocked *blocked)
{
    for (size_t i = 0; i < blocked->answer_count; i++)
        fill_result_release(blocked->answers[i]);
    free(blocked->answers);
    blocked->answers = NULL;
    blocked->answer_count = blocked->answer_capacity = 0;
}

static void unpark(struct blocked *blocked)
{
    free(blocked->request.argv);
    free(blocked->request.argv_len);
    free(blocked->data);
    memset(&blocked->request, 0, sizeof(blocked->request));
    blocked->data = NULL;
    blocked->parked = false;
}

static void blocked_free(struct blocked *blocked)
{
    release_answers(blocked);
    unpark(blocked);
    free(blocked);
}

void blocked_detach(struct blocked *blocked)
{
    if (blocked == NULL)
        return;
    blocked->owner = NULL;
    if (blocked->fills_pending == 0)
        blocked_free(blocked);
}

bool blocked_waiting(const struct blocked *blocked)
{
    return blocked->parked;
}

const struct protocol_request *blocked_request(const struct blocked *blocked)
{
    return blocked->parked ? &blocked->request : NULL;
}

/* Copies request into one allocation, each argument NUL-terminated. */
static void park(struct blocked *blocked, const struct protocol_request *request)
{
    size_t total = 0;
    for (size_t i = 0; i < request->argc; i++)
        total += request->argv_len[i] + 1;
    blocked->data = xmalloc(total ? total : 1);
    blocked->request.argc = request->argc;
    blocked->request.argv = xmalloc((request->argc ? request->argc : 1) *
                                    sizeof(*blocked->request.argv));
    blocked->request.argv_len = xmalloc((request->argc ? request->argc : 1) *
                                        sizeof(*blocked->request.argv_len));
    char *cursor = blocked->data;
    for (size_t i = 0; i < request->argc; i++) {
        memcpy(cursor, request->argv[i], request->argv_len[i]);
        cursor[request->argv_len[i]] = '\0';
        blocked->request.argv[i] = cursor;
        blocked->request.argv_len[i] = request->argv_len[i];
        cursor += request->argv_len[i] + 1;
    }
    blocked->parked = true;
}

void blocked_run_begin(struct blocked *blocked, struct fill *fill, const struct config *config,
                       struct reply_buffer *out)
{
    blocked->fill = fill;
    blocked->config = config;
    blocked->out = out;
    blocked->run_mark = blocked->step_mark = reply_buffer_length(out);
    blocked->run_pending = false;
    blocked->step_unavailable = false;
}

void blocked_step_begin(struct blocked *blocked)
{
    blocked->step_mark = reply_buffer_length(blocked->out);
    blocked->step_unavailable = false;
    /* A reply larger than max_reply_backlog is not built. */
    reply_buffer_limit(blocked->out,
                       blocked->step_mark + (size_t)blocked->config->listen.max_reply_backlog);
}

void blocked_step_end(struct blocked *blocked)
{
    struct reply_buffer *out = blocked->out;
    bool too_large = reply_buffer_over(out);
    reply_buffer_limit(out, 0);
    if (blocked->run_pending)
        return; /* a parked run's output is discarded whole */
    if (too_large) {
        reply_buffer_truncate(out, blocked->step_mark);
        reply_error(out, "ERR reply too large");
    } else if (blocked->step_unavailable) {
        reply_buffer_truncate(out, blocked->step_mark);
        reply_error(out, "UNAVAILABLE a fill failed: Redis and the origin are unreachable");
    }
    blocked->step_unavailable = false;
}

bool blocked_run_waits(const struct blocked *blocked)
{
    return blocked->run_pending;
}

enum blocked_outcome blocked_run_end(struct blocked *blocked,
                                     const struct protocol_request *request)
{
    struct reply_buffer *out = blocked->out;
    blocked->fill = NULL;
    blocked->config = NULL;
    blocked->out = NULL;
    if (blocked->run_pending) {
        /* Nothing of a request that must wait reaches the client. */
        reply_buffer_truncate(out, blocked->run_mark);
        if (!blocked->parked)
            park(blocked, request);
        return BLOCKED_PARKED;
    }
    /* No fill is pending once a run completes: every lookup that submitted
     * one parked the run. */
    release_answers(blocked);
    unpark(blocked);
    return BLOCKED_DONE;
}

/* An answer gathered for this request, or NULL. */
static const struct fill_result *answer_find(const struct blocked *blocked, const char *tenant,
                                             size_t tenant_len, unsigned kind, const char *key,
                                             size_t key_len)
{
    for (size_t i = 0; i < blocked->answer_count; i++) {
        const struct fill_result *result = blocked->answers[i];
        if (result->kind == kind && result->tenant_len == tenant_len &&
            result->key_len == key_len && memcmp(result->tenant, tenant, tenant_len) == 0 &&
            memcmp(result->key, key, key_len) == 0)
            return result;
    }
    return NULL;
}

enum blocked_lookup blocked_lookup(struct blocked *blocked, struct cache_reader *reader,
                                   const char *tenant, size_t tenant_len, unsigned kind,
                                   const char *key, size_t key_len, enum blocked_miss miss,
                                   struct blocked_item *item)
{
    /* A fill's answer goes to its waiters even when a message raced with it
     * and kept it out of the cache. */
    const struct fill_result *made = answer_find(blocked, tenant, tenant_len, kind, key, key_len);
    if (made != NULL) {
        if (made->status == FILL_UNAVAILABLE)
            blocked->step_unavailable = true;
        if (made->status != FILL_VALUE)
            return BLOCKED_ABSENT;
        item->json = made->value.json;
        item->json_len = made->value.json_len;
        item->derived = made->value.derived;
        item->derived_len = made->value.derived_len;
        return BLOCKED_FOUND;
    }
    const struct cache_entry *entry = cache_read_find(reader, kind, key, key_len);
    if (entry != NULL) {
        if (cache_entry_state(entry) != CACHE_ENTRY_VALUE)
            return BLOCKED_ABSENT;
        item->json = cache_entry_value(entry, &item->json_len);
        item->derived = cache_entry_derived(entry, &item->derived_len);
        return BLOCKED_FOUND;
    }
    if (blocked->fill == NULL || !fill_possible(blocked->config, kind))
        return BLOCKED_ABSENT;
    if (miss == BLOCKED_MISS_PEEK)
        return BLOCKED_PENDING;
    struct blocked *waiter = miss == BLOCKED_MISS_WAIT ? blocked : NULL;
    if (fill_submit(blocked->fill, tenant, tenant_len, kind, key, key_len, waiter) != 0) {
        if (waiter != NULL)
            blocked->step_unavailable = true;
        return BLOCKED_ABSENT;
    }
    if (waiter == NULL)
        return BLOCKED_ABSENT;
    blocked->fills_pending++;
    blocked->run_pending = true;
    return BLOCKED_PENDING;
}

enum blocked_answer blocked_answer(struct blocked *blocked, struct fill_result *result)
{
    blocked->fills_pending--;
    if (blocked->owner == NULL || !blocked->parked) {
        fill_result_release(result);
        if (blocked->owner == NULL && blocked->fills_pending == 0)
            blocked_free(blocked);
        return BLOCKED_IGNORED;
    }
    if (blocked->answer_count == blocked->answer_capacity) {
        blocked->answer_capacity = blocked->answer_capacity ? blocked->answer_capacity * 2 : 4;
        blocked->answers =
            xrealloc(blocked->answers, blocked->answer_capacity * sizeof(*blocked->answers));
    }
    blocked->answers[blocked->answer_count++] = result;
    return blocked->fills_pending == 0 ? BLOCKED_READY : BLOCKED_WAITING;
}
