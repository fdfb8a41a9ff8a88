/* message.h - invalidation messages (docs/reference.md §3): JSON text in, validated operations out.
 *
 * message_parse() turns one pub/sub payload (an object, or an array of objects
 * applied in order) into a batch of operations. The whole payload is validated
 * before anything is returned: a batch with one bad element is rejected whole,
 * so that nothing is ever applied in part. Applying the batch to the caches is
 * apply.c's job. */
#ifndef TENANTCACHED_MESSAGE_H
#define TENANTCACHED_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "errors.h"
#include "names.h"
#include "value.h"

#define MESSAGE_TENANT_MAX NAMES_TENANT_MAX
#define MESSAGE_KEY_MAX NAMES_KEY_MAX
#define MESSAGE_SRC_MAX 128

enum message_op {
    MESSAGE_SET,
    MESSAGE_DEL,
    MESSAGE_INVALIDATE,
    MESSAGE_FLUSH,
    MESSAGE_HEARTBEAT,
};

/* What apply.c should do with an operation whose kind is not cached here. */
enum message_disposition {
    MESSAGE_APPLY,          /* a cached kind (or a flush/heartbeat) */
    MESSAGE_UNKNOWN_KIND,   /* the config does not know the kind: ignore, count */
    MESSAGE_FILTERED,       /* a known kind outside `application`: ignore, count */
};

struct message_operation {
    enum message_op op;
    enum message_disposition disposition;
    char *tenant;            /* NUL-terminated; "*" only for a flush of every tenant; NULL for heartbeat */
    size_t tenant_len;
    int kind;                /* index into config->kinds; -1 when absent (flush) or unknown */
    char *key;               /* NUL-terminated; NULL when absent */
    size_t key_len;
    struct value_prepared value; /* for MESSAGE_SET of a cached kind */
    bool has_version;
    uint64_t version;
    bool has_ts;
    uint64_t ts_ms;          /* from `ts` (RFC 3339), milliseconds since the epoch */
    char *src;               /* NULL when absent */
    bool has_seq;
    uint64_t seq;
    bool last;               /* a heartbeat with "last": true: the src retires */
};

/* A parsed payload; owns its operations and everything they point to. */
struct message_batch {
    struct message_operation *operations;
    size_t count;
};

/* Validates text[0..len) against the config's kinds and application filter.
 * Returns 0 and fills batch (free with message_batch_free()), or -1 with the
 * reason in error[ERROR_MAX] (batch left empty). A payload longer
 * than config->redis.max_message_bytes is rejected without parsing. */
int message_parse(const struct config *config, const char *text, size_t len,
                  struct message_batch *batch, char *error);

void message_batch_free(struct message_batch *batch);

#endif
