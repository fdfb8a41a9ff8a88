/* stream.c - catching up from redis.stream after a (re)subscription instead
 * of flushing (docs/reference.md §7). See stream.h for the protocol.
 *
 * The connection is a redis_link of its own (AUTH, SELECT redis.db, a PING,
 * backoff), so the catch-up never waits behind L2 GETs and L2 never behind a
 * batch. A round is MULTI, XINFO STREAM, XRANGE, EXEC; a generation number
 * travels with it as privdata, so a reply of a catch-up that was restarted
 * or aborted meanwhile is ignored. The module holds no reference to the
 * config: the stream name and the batch size are copied. */
#include "stream.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "config.h"
#include "log.h"
#include "redis_link.h"
#include "stats.h"
#include "util.h"

/* A live envelope that arrived while catching up. */
struct stream_held {
    struct envelope_id id;
    char *payload;
    size_t len;
};

struct stream {
    struct redis_link *link;
    struct stream_callbacks callbacks;
    char *name;
    unsigned batch;

    bool have_last;          /* the last applied ID is known */
    struct envelope_id last;

    bool catching_up;
    bool request_pending;    /* a round of this generation is in flight */
    uint64_t generation;     /* bumped by every (re)start, abort and lost link */

    struct stream_held *held;
    size_t held_count;
    size_t held_cap;         /* redis.stream_batch */
    bool held_overflow;      /* held envelopes were dropped since the round was sent */
};

static void stream_set_last(struct stream *stream, const struct envelope_id *id)
{
    stream->last = *id;
    stream->have_last = true;
    stats_set(&stats.stream_last_seq, id->seq);
    stats_set(&stats.stream_last_ms, id->ms);
}

static void stream_held_clear(struct stream *stream)
{
    for (size_t i = 0; i < stream->held_count; i++)
        free(stream->held[i].payload);
    stream->held_count = 0;
}

/* Applies the held envelopes after the last ID, in arrival (= stream) order,
 * and forgets them all. */
static void stream_held_apply(struct stream *stream)
{
    for (size_t i = 0; i < stream->held_count; i++) {
        struct stream_held *held = &stream->held[i];
        if (envelope_id_compare(&held->id, &stream->last) <= 0) {
            stats_add(&stats.messages_duplicate, 1);
            continue;
        }
        stream_set_last(stream, &held->id);
        if (stream->callbacks.on_entry != NULL)
            stream->callbacks.on_entry(stream->callbacks.arg, &held->id, held->payload, held->len);
    }
    stream_held_clear(stream);
}

/* The catch-up is over: held envelopes applied (after on_caught_up on a
 * failure, so that a flush comes first). */
static void stream_finish(struct stream *stream, bool ok, const char *reason)
{
    stream->catching_up = false;
    stream->request_pending = false;
    stream->generation++;
    stream->held_overflow = false;
    if (ok)
        stream_held_apply(stream);
    if (stream->callbacks.on_caught_up != NULL)
        stream->callbacks.on_caught_up(stream->callbacks.arg, ok, reason);
    if (!ok)
        stream_held_apply(stream);
}

/* ---- XINFO STREAM ---- */

struct stream_info {
    bool exists;
    struct envelope_id last_generated;
    struct envelope_id max_deleted; /* {0, 0} before Redis 7 (the field is absent) */
    char error[128];               /* when !exists: Redis's text */
};

/* Reads the fields of an XINFO STREAM reply (a flat name/value array).
 * Returns 0, or -1 with info->error set. */
static int stream_info_read(const redisReply *reply, struct stream_info *info)
{
    memset(info, 0, sizeof(*info));
    if (reply == NULL) {
        snprintf(info->error, sizeof(info->error), "no reply");
        return -1;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(info->error, sizeof(info->error), "%.*s", (int)reply->len, reply->str);
        return -1;
    }
    if (reply->type != REDIS_REPLY_ARRAY) {
        snprintf(info->error, sizeof(info->error), "unexpected XINFO reply type %d", reply->type);
        return -1;
    }
    bool have_last_generated = false;
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *field = reply->element[i];
        const redisReply *value = reply->element[i + 1];
        if (field->type != REDIS_REPLY_STRING || value->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(field->str, "last-generated-id") == 0)
            have_last_generated = envelope_id_parse(value->str, value->len, &info->last_generated);
        else if (strcmp(field->str, "max-deleted-entry-id") == 0)
            (void)envelope_id_parse(value->str, value->len, &info->max_deleted);
    }
    if (!have_last_generated) {
        snprintf(info->error, sizeof(info->error), "XINFO STREAM without last-generated-id");
        return -1;
    }
    info->exists = true;
    return 0;
}

static bool stream_no_such_key(const struct stream_info *info)
{
    return strstr(info->error, "no such key") != NULL;
}

/* ---- rounds ---- */

static void stream_send(struct stream *stream);

/* The reply to the first round (no last ID): start from the stream's end. */
static void stream_on_start(redisAsyncContext *ac, void *r, void *privdata)
{
    struct stream *stream = redis_link_owner(ac);
    if (stream == NULL || r == NULL || (uintptr_t)privdata != (uintptr_t)stream->generation)
        return;
    stream->request_pending = false;
    struct stream_info info;
    const struct envelope_id start = {0, 0};
    if (stream_info_read(r, &info) != 0) {
        stream_set_last(stream, &start);
        if (stream_no_such_key(&info)) {
            stream_finish(stream, true, NULL); /* created later: read it from its start */
            return;
        }
        log_error("redis.stream '%s': %s", stream->name, info.error);
        stream_finish(stream, false, info.error);
        return;
    }
    stream_set_last(stream, &info.last_generated);
    char id[ENVELOPE_ID_MAX];
    log_info("redis.stream '%s': starting after entry %s", stream->name,
             envelope_id_format(&stream->last, id));
    stream_finish(stream, true, NULL);
}

/* Why the entries after the last ID cannot all be read, or NULL when they
 * can. xrange is the round's XRANGE reply (starting at the last ID). */
static const char *stream_gap(const struct stream *stream, const struct stream_info *info,
                              const redisReply *xrange, char *why, size_t size)
{
    const struct envelope_id zero = {0, 0};
    char last[ENVELOPE_ID_MAX];
    envelope_id_format(&stream->last, last);
    if (!info->exists) {
        if (stream_no_such_key(info) && envelope_id_compare(&stream->last, &zero) == 0)
            return NULL; /* never saw an entry, and there is none */
        snprintf(why, size, "the stream is gone (%s), last applied %s", info->error, last);
        return why;
    }
    char deleted[ENVELOPE_ID_MAX];
    if (envelope_id_compare(&info->max_deleted, &stream->last) > 0) {
        snprintf(why, size, "entries after %s were deleted (max-deleted-entry-id %s)", last,
                 envelope_id_format(&info->max_deleted, deleted));
        return why;
    }
    if (envelope_id_compare(&stream->last, &zero) == 0 ||
        envelope_id_compare(&info->max_deleted, &stream->last) == 0)
        return NULL;
    /* Nothing says the last applied entry was deleted: it must be there. */
    struct envelope_id first;
    const redisReply *entry = xrange->elements > 0 ? xrange->element[0] : NULL;
    if (entry == NULL || entry->type != REDIS_REPLY_ARRAY || entry->elements < 1 ||
        entry->element[0]->type != REDIS_REPLY_STRING ||
        !envelope_id_parse(entry->element[0]->str, entry->element[0]->len, &first) ||
        envelope_id_compare(&first, &stream->last) != 0) {
        snprintf(why, size, "the stream no longer holds entry %s (lost with a Redis restart?)",
                 last);
        return why;
    }
    return NULL;
}

/* Applies one XRANGE entry [id, [field, value, ...]] after the last ID. */
static void stream_apply_entry(struct stream *stream, const redisReply *entry)
{
    struct envelope_id id;
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements < 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING ||
        !envelope_id_parse(entry->element[0]->str, entry->element[0]->len, &id)) {
        log_warn("redis.stream '%s': an entry without a valid ID, ignored", stream->name);
        return;
    }
    if (envelope_id_compare(&id, &stream->last) <= 0)
        return; /* the last applied entry itself, at the start of the range */
    stream_set_last(stream, &id);
    const redisReply *fields = entry->element[1];
    const redisReply *message = NULL;
    for (size_t i = 0; fields->type == REDIS_REPLY_ARRAY && i + 1 < fields->elements; i += 2) {
        const redisReply *name = fields->element[i];
        if (name->type == REDIS_REPLY_STRING && strcmp(name->str, "m") == 0 &&
            fields->element[i + 1]->type == REDIS_REPLY_STRING)
            message = fields->element[i + 1];
    }
    if (message == NULL) {
        stats_add(&stats.messages_invalid, 1);
        log_warn("redis.stream '%s': entry %s has no field 'm', skipped", stream->name,
                 entry->element[0]->str);
        return;
    }
    stats_add(&stats.catchup_applied, 1);
    if (stream->callbacks.on_entry != NULL)
        stream->callbacks.on_entry(stream->callbacks.arg, &id, message->str, message->len);
}

/* The EXEC reply of a round: [XINFO STREAM, XRANGE last + COUNT batch+1]. */
static void stream_on_round(redisAsyncContext *ac, void *r, void *privdata)
{
    struct stream *stream = redis_link_owner(ac);
    const redisReply *reply = r;
    if (stream == NULL || reply == NULL || (uintptr_t)privdata != (uintptr_t)stream->generation)
        return;
    stream->request_pending = false;
    char why[256];
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[1]->type != REDIS_REPLY_ARRAY) {
        if (reply->type == REDIS_REPLY_ERROR)
            snprintf(why, sizeof(why), "reading the stream failed: %.*s", (int)reply->len,
                     reply->str);
        else if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
                 reply->element[1]->type == REDIS_REPLY_ERROR)
            snprintf(why, sizeof(why), "reading the stream failed: %s", reply->element[1]->str);
        else
            snprintf(why, sizeof(why), "reading the stream failed: unexpected reply");
        log_error("redis.stream '%s': %s", stream->name, why);
        stream_finish(stream, false, why);
        return;
    }
    struct stream_info info;
    (void)stream_info_read(reply->element[0], &info);
    const redisReply *entries = reply->element[1];
    const char *gap = stream_gap(stream, &info, entries, why, sizeof(why));
    if (gap != NULL) {
        /* Resume from the stream's current end; the policy handles the rest. */
        const struct envelope_id zero = {0, 0};
        stream_set_last(stream, info.exists ? &info.last_generated : &zero);
        log_warn("redis.stream '%s': cannot catch up: %s", stream->name, gap);
        stream_finish(stream, false, gap);
        return;
    }
    for (size_t i = 0; i < entries->elements; i++)
        stream_apply_entry(stream, entries->element[i]);
    /* A short batch is the end, unless held envelopes were dropped since the
     * round was sent: those may be after it, so read on. */
    if (entries->elements < (size_t)stream->batch + 1 && !stream->held_overflow) {
        char id[ENVELOPE_ID_MAX];
        log_info("redis.stream '%s': caught up to entry %s", stream->name,
                 envelope_id_format(&stream->last, id));
        stream_finish(stream, true, NULL);
        return;
    }
    stream_send(stream);
}

/* Sends the next round, when the link is up and none is in flight. */
static void stream_send(struct stream *stream)
{
    redisAsyncContext *ac = redis_link_context(stream->link);
    if (!stream->catching_up || stream->request_pending || ac == NULL)
        return; /* on_up sends it */
    void *generation = (void *)(uintptr_t)stream->generation;
    size_t name_len = strlen(stream->name);
    stream->held_overflow = false;
    if (!stream->have_last) {
        const char *argv[] = {"XINFO", "STREAM", stream->name};
        const size_t lens[] = {5, 6, name_len};
        if (redisAsyncCommandArgv(ac, stream_on_start, generation, 3, argv, lens) != REDIS_OK)
            return;
        stream->request_pending = true;
        return;
    }
    char start[ENVELOPE_ID_MAX];
    char count[24];
    envelope_id_format(&stream->last, start);
    snprintf(count, sizeof(count), "%u", stream->batch + 1);
    const char *info_argv[] = {"XINFO", "STREAM", stream->name};
    const size_t info_lens[] = {5, 6, name_len};
    const char *range_argv[] = {"XRANGE", stream->name, start, "+", "COUNT", count};
    const size_t range_lens[] = {6, name_len, strlen(start), 1, 5, strlen(count)};
    if (redisAsyncCommand(ac, NULL, NULL, "MULTI") != REDIS_OK ||
        redisAsyncCommandArgv(ac, NULL, NULL, 3, info_argv, info_lens) != REDIS_OK ||
        redisAsyncCommandArgv(ac, NULL, NULL, 6, range_argv, range_lens) != REDIS_OK ||
        redisAsyncCommand(ac, stream_on_round, generation, "EXEC") != REDIS_OK) {
        redis_link_drop_later(stream->link, "cannot send the stream's catch-up round");
        return;
    }
    stream->request_pending = true;
}

static void stream_on_up(void *arg, bool first)
{
    (void)first;
    stream_send(arg);
}

static void stream_on_down(void *arg, const char *reason)
{
    struct stream *stream = arg;
    /* A round in flight is lost with the connection; it is sent again. */
    stream->request_pending = false;
    stream->generation++;
    if (stream->catching_up)
        log_warn("redis.stream '%s': connection lost while catching up: %s", stream->name,
                 reason != NULL ? reason : "disconnected");
}

/* ---- the interface ---- */

int stream_create(struct event_base *base, const struct config *config, struct stream **out,
                  char *error)
{
    *out = NULL;
    if (config->redis.stream[0] == '\0')
        return 0;
    struct stream *stream = xcalloc(1, sizeof(*stream));
    stream->name = xstrdup(config->redis.stream);
    stream->batch = config->redis.stream_batch;
    stream->held_cap = config->redis.stream_batch;
    stream->held = xcalloc(stream->held_cap, sizeof(*stream->held));
    const struct redis_link_options options = {
        .name = "stream",
        .setup_stage = "connecting",
        .select_db = true,
        .ping = true,
    };
    const struct redis_link_callbacks callbacks = {
        .on_setup = NULL,
        .on_up = stream_on_up,
        .on_down = stream_on_down,
        .arg = stream,
    };
    stream->link = redis_link_create(base, config, &options, &callbacks, error);
    if (stream->link == NULL) {
        free(stream->held);
        free(stream->name);
        free(stream);
        return -1;
    }
    *out = stream;
    return 0;
}

void stream_set_callbacks(struct stream *stream, const struct stream_callbacks *callbacks)
{
    stream->callbacks = *callbacks;
}

void stream_reconfigure(struct stream *stream, const struct config *config)
{
    if (stream == NULL)
        return;
    if (strcmp(stream->name, config->redis.stream) != 0)
        log_warn("redis.stream changed from '%s' to '%s': takes effect at the next start",
                 stream->name, config->redis.stream);
    stream->batch = config->redis.stream_batch;
    (void)redis_link_reconfigure(stream->link, config, false);
}

void stream_catch_up(struct stream *stream)
{
    stream->catching_up = true;
    stream->request_pending = false;
    stream->generation++;
    stream_held_clear(stream);
    stream->held_overflow = false;
    stream_send(stream);
}

void stream_abort(struct stream *stream)
{
    stream->catching_up = false;
    stream->request_pending = false;
    stream->generation++;
    stream_held_clear(stream);
}

enum stream_live stream_live(struct stream *stream, const struct envelope_id *id,
                             const char *payload, size_t len)
{
    if (stream->catching_up) {
        if (stream->held_count == stream->held_cap) {
            /* They are all in the stream: read on instead of holding more. */
            stream_held_clear(stream);
            stream->held_overflow = true;
        }
        struct stream_held *held = &stream->held[stream->held_count++];
        held->id = *id;
        held->payload = xmalloc(len + 1);
        memcpy(held->payload, payload, len);
        held->payload[len] = '\0';
        held->len = len;
        return STREAM_LIVE_HELD;
    }
    if (stream->have_last && envelope_id_compare(id, &stream->last) <= 0) {
        stats_add(&stats.messages_duplicate, 1);
        return STREAM_LIVE_DUPLICATE;
    }
    stream_set_last(stream, id);
    return STREAM_LIVE_APPLY;
}

void stream_restore_last(struct stream *stream, const struct envelope_id *id)
{
    stream_set_last(stream, id);
}

bool stream_last_id(const struct stream *stream, struct envelope_id *id)
{
    if (!stream->have_last)
        return false;
    *id = stream->last;
    return true;
}

bool stream_catching_up(const struct stream *stream)
{
    return stream->catching_up;
}

void stream_destroy(struct stream *stream)
{
    if (stream == NULL)
        return;
    redis_link_free(stream->link); /* pending replies: redis_link_owner() is NULL */
    stream_held_clear(stream);
    free(stream->held);
    free(stream->name);
    free(stream);
}
