/* apply.c - validated messages -> cache writes, counters and gap detection.
 * See apply.h for where this sits in the data flow. */
#include "apply.h"

#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "config.h"
#include "log.h"
#include "message.h"
#include "stats.h"
#include "util.h"

/* Publishers are few (one per authoritative service instance); a bound keeps
 * a peer that invents a new `src` per message from growing us without limit. */
#define MAX_PUBLISHERS 4096

struct publisher {
    char *src;
    uint64_t last_seq;
    uint64_t heard_ms;
};

struct apply {
    struct cache *cache;
    const struct config *config;
    struct apply_callbacks callbacks;
    struct publisher *publishers;
    size_t publisher_count;
};

struct apply *apply_create(struct cache *cache, const struct config *config,
                           const struct apply_callbacks *callbacks)
{
    struct apply *apply = xcalloc(1, sizeof(*apply));
    apply->cache = cache;
    apply->config = config;
    if (callbacks != NULL)
        apply->callbacks = *callbacks;
    apply->publishers = xcalloc(MAX_PUBLISHERS, sizeof(*apply->publishers));
    return apply;
}

void apply_set_config(struct apply *apply, const struct config *config)
{
    apply->config = config;
}

void apply_forget_publishers(struct apply *apply)
{
    for (size_t i = 0; i < apply->publisher_count; i++)
        free(apply->publishers[i].src);
    apply->publisher_count = 0;
}

void apply_destroy(struct apply *apply)
{
    if (apply == NULL)
        return;
    apply_forget_publishers(apply);
    free(apply->publishers);
    free(apply);
}

uint64_t apply_oldest_publisher_ms(const struct apply *apply)
{
    uint64_t oldest = 0;
    for (size_t i = 0; i < apply->publisher_count; i++) {
        if (oldest == 0 || apply->publishers[i].heard_ms < oldest)
            oldest = apply->publishers[i].heard_ms;
    }
    return oldest;
}

static void publisher_remove(struct apply *apply, size_t i)
{
    free(apply->publishers[i].src);
    apply->publishers[i] = apply->publishers[--apply->publisher_count];
}

size_t apply_forget_silent_publishers(struct apply *apply, uint64_t now_ms, uint64_t silent_ms)
{
    size_t forgotten = 0;
    for (size_t i = 0; i < apply->publisher_count;) {
        struct publisher *publisher = &apply->publishers[i];
        if (now_ms > publisher->heard_ms && now_ms - publisher->heard_ms > silent_ms) {
            log_warn("publisher '%s' silent for over %llums: forgotten (it no longer makes "
                     "data stale)", publisher->src, (unsigned long long)silent_ms);
            publisher_remove(apply, i);
            forgotten++;
        } else {
            i++;
        }
    }
    return forgotten;
}

static struct publisher *publisher_find(struct apply *apply, const char *src, uint64_t now_ms)
{
    for (size_t i = 0; i < apply->publisher_count; i++) {
        if (strcmp(apply->publishers[i].src, src) == 0)
            return &apply->publishers[i];
    }
    if (apply->publisher_count == MAX_PUBLISHERS) {
        /* Forget the longest silent one. */
        size_t oldest = 0;
        for (size_t i = 1; i < apply->publisher_count; i++) {
            if (apply->publishers[i].heard_ms < apply->publishers[oldest].heard_ms)
                oldest = i;
        }
        publisher_remove(apply, oldest);
    }
    struct publisher *publisher = &apply->publishers[apply->publisher_count++];
    publisher->src = xstrdup(src);
    publisher->last_seq = 0;
    publisher->heard_ms = now_ms;
    return publisher;
}

/* Checks a message's (src, seq). A jump forward is a gap; a repeat or a step
 * back is a duplicate or a restarted publisher, and is applied as usual. A
 * heartbeat carries the last seq sent, so seq > last means the last
 * messages were lost; seq == last is just "still here". */
static void track_sequence(struct apply *apply, const struct message_operation *operation,
                           uint64_t now_ms)
{
    if (operation->src == NULL || !operation->has_seq)
        return;
    struct publisher *publisher = publisher_find(apply, operation->src, now_ms);
    publisher->heard_ms = now_ms;
    uint64_t previous = publisher->last_seq;
    uint64_t expected = previous + 1;
    bool known = previous != 0;
    bool heartbeat = operation->op == MESSAGE_HEARTBEAT;
    bool gap = known && (heartbeat ? operation->seq > previous : operation->seq > expected);
    publisher->last_seq = operation->seq;
    if (heartbeat && operation->last) {
        /* Retired for good: no longer waited for (docs/reference.md §7).
         * Its last messages may still have been lost: checked first. */
        log_info("publisher '%s' retired at seq %llu", operation->src,
                 (unsigned long long)operation->seq);
        publisher_remove(apply, (size_t)(publisher - apply->publishers));
    }
    if (!gap)
        return;
    stats_add(&stats.seq_gaps, 1);
    log_warn("publisher '%s' jumped from seq %llu to %llu%s: messages were lost", operation->src,
             (unsigned long long)previous, (unsigned long long)operation->seq,
             heartbeat ? " (heartbeat)" : "");
    if (apply->callbacks.on_gap != NULL)
        apply->callbacks.on_gap(apply->callbacks.arg, operation->src, expected, operation->seq);
}

static void apply_notify_write(struct apply *apply, const struct message_operation *operation)
{
    if (apply->callbacks.on_write == NULL)
        return;
    bool every_tenant = operation->tenant_len == 1 && operation->tenant[0] == '*';
    apply->callbacks.on_write(apply->callbacks.arg, every_tenant ? NULL : operation->tenant,
                              every_tenant ? 0 : operation->tenant_len, operation->kind,
                              operation->key, operation->key_len);
}

static void count_result(enum cache_status status)
{
    if (status == CACHE_STALE)
        stats_add(&stats.messages_stale, 1);
    else
        stats_add(&stats.messages_applied, 1);
}

static void apply_operation(struct apply *apply, const struct message_operation *operation,
                            uint64_t now_ms, uint64_t wall_ms)
{
    const struct config *config = apply->config;
    if (operation->disposition == MESSAGE_UNKNOWN_KIND) {
        stats_add(&stats.messages_unknown_kind, 1);
        return;
    }
    if (operation->disposition == MESSAGE_FILTERED) {
        stats_add(&stats.messages_filtered, 1);
        return;
    }
    struct cache_key key = {
        .tenant = operation->tenant,
        .tenant_len = operation->tenant_len,
        .kind = operation->kind < 0 ? 0 : (unsigned)operation->kind,
        .key = operation->key,
        .key_len = operation->key_len,
    };
    struct cache_write write = {
        .has_version = operation->has_version,
        .version = operation->version,
        .updated_ms = operation->has_ts ? operation->ts_ms : wall_ms,
    };
    switch (operation->op) {
    case MESSAGE_SET: {
        const struct config_kind *kind = &config->kinds[operation->kind];
        write.critical = kind->tier == CONFIG_TIER_CRITICAL;
        write.expires_ms = kind->ttl_ms ? now_ms + kind->ttl_ms : 0;
        struct cache_value value = {
            .json = operation->value.json,
            .json_len = operation->value.json_len,
            .derived = operation->value.derived,
            .derived_len = operation->value.derived_len,
            .index_key = operation->value.index_key,
            .index_key_len = operation->value.index_key_len,
        };
        apply_notify_write(apply, operation);
        count_result(cache_set(apply->cache, &key, &value, &write, now_ms));
        break;
    }
    case MESSAGE_DEL:
        write.expires_ms = now_ms + config->memory.tombstone_ttl_ms;
        apply_notify_write(apply, operation);
        count_result(cache_delete(apply->cache, &key, &write, now_ms));
        break;
    case MESSAGE_INVALIDATE: {
        apply_notify_write(apply, operation);
        uint32_t reads = 0;
        enum cache_status status = cache_invalidate(apply->cache, &key, operation->has_version,
                                                    operation->version, now_ms, &reads);
        count_result(status);
        /* Hot refresh: an entry many readers want is filled again before
         * they ask (docs/reference.md §6). */
        unsigned hot = config->memory.hot_reads;
        if (status == CACHE_OK && hot != 0 && reads >= hot && apply->callbacks.on_hot != NULL)
            apply->callbacks.on_hot(apply->callbacks.arg, operation->tenant, operation->tenant_len,
                                    (unsigned)operation->kind, operation->key, operation->key_len);
        break;
    }
    case MESSAGE_FLUSH: {
        bool every_tenant = operation->tenant_len == 1 && operation->tenant[0] == '*';
        apply_notify_write(apply, operation);
        uint64_t dropped = cache_flush(apply->cache, every_tenant ? NULL : operation->tenant,
                                       every_tenant ? 0 : operation->tenant_len, operation->kind);
        log_info("flush of tenant '%s'%s%s dropped %llu entries", operation->tenant,
                 operation->kind >= 0 ? " kind " : "",
                 operation->kind >= 0 ? config->kinds[operation->kind].name : "",
                 (unsigned long long)dropped);
        stats_add(&stats.messages_applied, 1);
        break;
    }
    case MESSAGE_HEARTBEAT:
        break;
    }
}

void apply_batch(struct apply *apply, const struct message_batch *batch, uint64_t now_ms)
{
    /* One wall-clock read per payload: a batch's operations share a time. */
    uint64_t wall_ms = util_realtime_ms();
    for (size_t i = 0; i < batch->count; i++) {
        track_sequence(apply, &batch->operations[i], now_ms);
        apply_operation(apply, &batch->operations[i], now_ms, wall_ms);
    }
}

void apply_foreach_publisher(const struct apply *apply,
                             void (*fn)(void *arg, const char *src, uint64_t seq), void *arg)
{
    for (size_t i = 0; i < apply->publisher_count; i++)
        fn(arg, apply->publishers[i].src, apply->publishers[i].last_seq);
}

void apply_restore_publisher(struct apply *apply, const char *src, uint64_t seq, uint64_t now_ms)
{
    struct publisher *publisher = publisher_find(apply, src, now_ms);
    publisher->last_seq = seq;
    publisher->heard_ms = now_ms;
}
