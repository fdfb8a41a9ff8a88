/* message.c - parsing and validating invalidation messages (docs/reference.md §3).
 *
 * A payload is scanned once with jscan (no tree, no allocation per value)
 * and checked whole: every operation of a batch, and every `set` value
 * against its kind's shape, before anything is returned. What comes out
 * needs no further checks: apply.c only applies. */
#include "message.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jscan.h"
#include "names.h"
#include "util.h"

/* Operations in one payload. A payload is also capped in bytes; this bounds
 * the work of a payload of many tiny operations. */
#define MESSAGE_BATCH_MAX 10000

/* Where errors of one element are reported: "batch[3]: " inside an array,
 * nothing for a single object. */
#define WHERE_MAX 32

/* Nodes on the stack for a payload's values: a short message needs no more,
 * a longer one moves them to the heap for its parse. */
#define STACK_NODES 128

/* The fields an operation may have, as found among its object's members. */
enum field {
    F_OP,
    F_TENANT,
    F_KIND,
    F_KEY,
    F_VALUE,
    F_VERSION,
    F_TS,
    F_SRC,
    F_SEQ,
    F_LAST,
    F_COUNT,
};

#define FIELD(name) {name, sizeof(name) - 1}

static const struct {
    const char *name;
    size_t len;
} fields[F_COUNT] = {
    [F_OP] = FIELD("op"),       [F_TENANT] = FIELD("tenant"),   [F_KIND] = FIELD("kind"),
    [F_KEY] = FIELD("key"),     [F_VALUE] = FIELD("value"),     [F_VERSION] = FIELD("version"),
    [F_TS] = FIELD("ts"),       [F_SRC] = FIELD("src"),         [F_SEQ] = FIELD("seq"),
    [F_LAST] = FIELD("last"),
};

struct parse_ctx {
    const struct config *config;
    const struct jscan *scan;
    uint32_t fields[F_COUNT]; /* the current operation's field values; 0 when absent */
    char where[WHERE_MAX];
    char *error;
};

static void fail_at(struct parse_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void fail_at(struct parse_ctx *ctx, const char *fmt, ...)
{
    size_t used = (size_t)snprintf(ctx->error, ERROR_MAX, "%s", ctx->where);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(ctx->error + used, ERROR_MAX - used, fmt, ap);
    va_end(ap);
}

/* RFC 3339 timestamps. */

static bool digits(const char *s, size_t n, int *out)
{
    int v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static bool leap_year(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Howard
 * Hinnant's days_from_civil), so that no TZ setting can change the result. */
static int64_t days_from_civil(int y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* Parses "YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)" (T or t or a space,
 * Z or z, as RFC 3339 allows) into milliseconds since the epoch; fractions
 * beyond milliseconds are truncated. Returns false on anything else,
 * including times before 1970 (ts_ms is unsigned). */
static bool parse_rfc3339(const char *s, size_t len, uint64_t *out_ms)
{
    static const int month_days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int year, month, day, hour, minute, second, millis = 0, offset_min = 0;

    if (len < 20 || !digits(s, 4, &year) || s[4] != '-' || !digits(s + 5, 2, &month) ||
        s[7] != '-' || !digits(s + 8, 2, &day) ||
        (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || !digits(s + 11, 2, &hour) ||
        s[13] != ':' || !digits(s + 14, 2, &minute) || s[16] != ':' ||
        !digits(s + 17, 2, &second))
        return false;
    if (month < 1 || month > 12 || day < 1 ||
        day > month_days[month - 1] + (month == 2 && leap_year(year)) || hour > 23 ||
        minute > 59 || second > 60) /* 60: a leap second */
        return false;

    size_t i = 19;
    if (s[i] == '.') {
        size_t start = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (i - start < 3)
                millis = millis * 10 + (s[i] - '0');
            i++;
        }
        if (i == start)
            return false;
        for (size_t n = i - start; n < 3; n++)
            millis *= 10;
    }
    if (i >= len)
        return false;
    if ((s[i] == 'Z' || s[i] == 'z') && i + 1 == len) {
        offset_min = 0;
    } else if ((s[i] == '+' || s[i] == '-') && len - i == 6) {
        int oh, om;
        if (!digits(s + i + 1, 2, &oh) || s[i + 3] != ':' || !digits(s + i + 4, 2, &om) ||
            oh > 23 || om > 59)
            return false;
        offset_min = (oh * 60 + om) * (s[i] == '-' ? -1 : 1);
    } else {
        return false;
    }

    int64_t seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 +
                      second - (int64_t)offset_min * 60;
    if (seconds < 0)
        return false;
    *out_ms = (uint64_t)seconds * 1000u + (uint64_t)millis;
    return true;
}

/* Finds the known fields among object node obj's members (one pass; the
 * scan refused repeated keys, so each is found at most once). */
static void find_fields(struct parse_ctx *ctx, uint32_t obj)
{
    const struct jscan *scan = ctx->scan;
    memset(ctx->fields, 0, sizeof(ctx->fields));
    uint32_t key = obj + 1;
    for (uint32_t m = 0; m < scan->nodes[obj].u.count; m++) {
        const struct jscan_node *n = &scan->nodes[key];
        size_t len = n->end - n->start - 2;
        for (size_t f = 0; f < F_COUNT; f++) {
            if (n->escaped ? jscan_string_is(scan, key, fields[f].name)
                           : fields[f].len == len &&
                                 memcmp(scan->text + n->start + 1, fields[f].name, len) == 0) {
                ctx->fields[f] = key + 1;
                break;
            }
        }
        key = scan->nodes[key + 1].next;
    }
}

/* A string field's decoded bytes; `owned` (NULL when s points into the
 * text) is freed with string_done(). */
struct string {
    const char *s;
    size_t len;
    char *owned;
};

static void string_done(struct string *str)
{
    free(str->owned);
    str->owned = NULL;
}

/* A NUL-terminated copy the caller owns (the decoded copy itself when there
 * was one). */
static char *string_keep(struct string *str)
{
    char *copy = str->owned != NULL ? str->owned : xstrndup(str->s, str->len);
    str->owned = NULL;
    return copy;
}

/* Field helpers. Each returns 0, or -1 with the error set; `required` makes a
 * missing field an error, otherwise *present is false when absent. */

static int get_string(struct parse_ctx *ctx, enum field field, bool required, bool *present,
                      struct string *out)
{
    uint32_t v = ctx->fields[field];
    *present = false;
    out->owned = NULL;
    if (v == 0) {
        if (required) {
            fail_at(ctx, "field '%s' is required", fields[field].name);
            return -1;
        }
        return 0;
    }
    if (ctx->scan->nodes[v].type != JSCAN_STRING) {
        fail_at(ctx, "field '%s' must be a string", fields[field].name);
        return -1;
    }
    jscan_string(ctx->scan, v, &out->s, &out->len, &out->owned);
    *present = true;
    return 0;
}

/* An optional integer >= min. */
static int get_integer(struct parse_ctx *ctx, enum field field, int64_t min, bool *has,
                       uint64_t *out)
{
    uint32_t v = ctx->fields[field];
    *has = false;
    if (v == 0)
        return 0;
    const struct jscan_node *n = &ctx->scan->nodes[v];
    if (n->type != JSCAN_INTEGER || n->u.integer < min) {
        fail_at(ctx, "field '%s' must be a %s integer", fields[field].name,
                min > 0 ? "positive" : "non-negative");
        return -1;
    }
    *has = true;
    *out = (uint64_t)n->u.integer;
    return 0;
}

static int parse_op_name(struct parse_ctx *ctx, enum message_op *op)
{
    static const struct {
        const char *name;
        enum message_op op;
    } ops[] = {
        {"set", MESSAGE_SET},
        {"del", MESSAGE_DEL},
        {"invalidate", MESSAGE_INVALIDATE},
        {"flush", MESSAGE_FLUSH},
        {"heartbeat", MESSAGE_HEARTBEAT},
    };
    struct string name;
    bool present;
    if (get_string(ctx, F_OP, true, &present, &name) != 0)
        return -1;
    int rc = -1;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(ops); i++) {
        if (strlen(ops[i].name) == name.len && memcmp(ops[i].name, name.s, name.len) == 0) {
            *op = ops[i].op;
            rc = 0;
            break;
        }
    }
    string_done(&name);
    /* The publisher's text is not echoed: it ends up in the logs. */
    if (rc != 0)
        fail_at(ctx, "field 'op' must be one of set, del, invalidate, flush, heartbeat");
    return rc;
}

/* Resolves the kind and from it the disposition. */
static int parse_kind(struct parse_ctx *ctx, struct message_operation *op)
{
    bool required = op->op != MESSAGE_FLUSH;
    struct string kind;
    bool present;
    if (get_string(ctx, F_KIND, required, &present, &kind) != 0)
        return -1;
    if (!present)
        return 0;
    if (kind.len == 0) {
        fail_at(ctx, "field 'kind' must not be empty");
        return -1;
    }
    op->kind = config_kind_find(ctx->config, kind.s, kind.len);
    string_done(&kind);
    if (op->kind < 0)
        op->disposition = MESSAGE_UNKNOWN_KIND;
    else if (!ctx->config->kinds[op->kind].cached)
        op->disposition = MESSAGE_FILTERED;
    return 0;
}

/* obj is the operation's object node (or not an object: refused). */
static int parse_operation(struct parse_ctx *ctx, uint32_t obj, struct message_operation *op)
{
    const struct jscan *scan = ctx->scan;
    struct string str = {0};
    bool present;
    char value_error[ERROR_MAX];

    memset(op, 0, sizeof(*op));
    op->kind = -1;
    op->disposition = MESSAGE_APPLY;

    if (scan->nodes[obj].type != JSCAN_OBJECT) {
        fail_at(ctx, "operation must be a JSON object");
        return -1;
    }
    find_fields(ctx, obj);
    if (parse_op_name(ctx, &op->op) != 0)
        return -1;
    bool heartbeat = op->op == MESSAGE_HEARTBEAT;
    bool keyed = op->op == MESSAGE_SET || op->op == MESSAGE_DEL || op->op == MESSAGE_INVALIDATE;

    if (!heartbeat) {
        if (get_string(ctx, F_TENANT, true, &present, &str) != 0)
            goto fail;
        if (str.len == 1 && str.s[0] == '*') {
            if (op->op != MESSAGE_FLUSH) {
                fail_at(ctx, "tenant '*' is only allowed with op 'flush'");
                goto fail;
            }
        } else if (!names_valid_tenant(str.s, str.len)) {
            fail_at(ctx, "field 'tenant' must be 1-64 bytes of [A-Za-z0-9._-], not '.' or '..'");
            goto fail;
        }
        op->tenant_len = str.len;
        op->tenant = string_keep(&str);

        if (parse_kind(ctx, op) != 0)
            goto fail;
    }

    if (keyed) {
        if (get_string(ctx, F_KEY, true, &present, &str) != 0)
            goto fail;
        if (!names_valid_key(str.s, str.len)) {
            fail_at(ctx, "field 'key' must be 1-512 bytes without spaces or control characters, not '.' or '..'");
            goto fail;
        }
        op->key_len = str.len;
        op->key = string_keep(&str);
    }

    if (op->op == MESSAGE_SET) {
        uint32_t value = ctx->fields[F_VALUE];
        if (value == 0) {
            fail_at(ctx, "field 'value' is required");
            goto fail;
        }
        /* Only a cached kind's value is checked and kept: the others are
         * ignored whole, so their shape does not matter here. */
        if (op->disposition == MESSAGE_APPLY &&
            value_prepare(ctx->config->kinds[op->kind].shape, scan, value, &op->value,
                          value_error) != 0) {
            fail_at(ctx, "field 'value': %s", value_error);
            goto fail;
        }
    }

    if (get_integer(ctx, F_VERSION, 0, &op->has_version, &op->version) != 0)
        goto fail;

    if (get_string(ctx, F_TS, false, &present, &str) != 0)
        goto fail;
    if (present) {
        bool ok = parse_rfc3339(str.s, str.len, &op->ts_ms);
        string_done(&str);
        if (!ok) {
            fail_at(ctx, "field 'ts' must be an RFC 3339 timestamp such as "
                         "2024-01-01T10:00:00Z");
            goto fail;
        }
        op->has_ts = true;
    }

    if (get_string(ctx, F_SRC, heartbeat, &present, &str) != 0)
        goto fail;
    if (present) {
        bool ok = str.len > 0 && str.len <= MESSAGE_SRC_MAX;
        for (size_t i = 0; ok && i < str.len; i++) /* it is logged: no control characters */
            ok = (unsigned char)str.s[i] >= 0x20 && (unsigned char)str.s[i] != 0x7f;
        if (!ok) {
            fail_at(ctx, "field 'src' must be 1-%d bytes without control characters",
                    MESSAGE_SRC_MAX);
            goto fail;
        }
        op->src = string_keep(&str);
    }

    if (get_integer(ctx, F_SEQ, 1, &op->has_seq, &op->seq) != 0)
        goto fail;
    if (heartbeat && !op->has_seq) {
        fail_at(ctx, "field 'seq' is required");
        goto fail;
    }
    if (op->has_seq && op->src == NULL) {
        fail_at(ctx, "field 'seq' requires field 'src'");
        goto fail;
    }
    uint32_t last = ctx->fields[F_LAST];
    if (heartbeat && last != 0) {
        uint8_t type = scan->nodes[last].type;
        if (type != JSCAN_TRUE && type != JSCAN_FALSE) {
            fail_at(ctx, "field 'last' must be a boolean");
            goto fail;
        }
        op->last = type == JSCAN_TRUE;
    }
    return 0;

fail:
    string_done(&str);
    free(op->tenant);
    free(op->key);
    free(op->src);
    value_clear(&op->value);
    memset(op, 0, sizeof(*op));
    return -1;
}

int message_parse(const struct config *config, const char *text, size_t len,
                  struct message_batch *batch, char *error)
{
    struct jscan_node nodes[STACK_NODES];
    struct jscan scan;
    struct parse_ctx ctx = {.config = config, .scan = &scan, .where = "", .error = error};
    size_t count;

    batch->operations = NULL;
    batch->count = 0;

    if (len > config->redis.max_message_bytes) {
        snprintf(error, ERROR_MAX, "message too large (%zu bytes, limit %llu)", len,
                 (unsigned long long)config->redis.max_message_bytes);
        return -1;
    }
    /* The scan bounds the nesting depth itself (without recursion), so a
     * hostile payload of deep brackets is an error, not a stack overflow. */
    jscan_init(&scan, nodes, STACK_NODES);
    if (jscan_parse(&scan, text, len, false, error) != 0)
        goto fail;

    const struct jscan_node *root = &scan.nodes[0];
    bool array = root->type == JSCAN_ARRAY;
    if (!array) {
        count = 1;
    } else { /* the top level is an object or an array */
        count = root->u.count;
        if (count == 0) {
            snprintf(error, ERROR_MAX, "empty batch");
            goto fail;
        }
        if (count > MESSAGE_BATCH_MAX) {
            snprintf(error, ERROR_MAX, "batch too large (%zu operations, limit %d)",
                     count, MESSAGE_BATCH_MAX);
            goto fail;
        }
    }

    batch->operations = xcalloc(count, sizeof(*batch->operations));
    uint32_t obj = array ? 1 : 0;
    for (size_t i = 0; i < count; i++) {
        if (array)
            snprintf(ctx.where, sizeof(ctx.where), "batch[%zu]: ", i);
        if (parse_operation(&ctx, obj, &batch->operations[i]) != 0)
            goto fail;
        batch->count = i + 1;
        obj = scan.nodes[obj].next;
    }
    jscan_free(&scan);
    return 0;

fail:
    message_batch_free(batch);
    jscan_free(&scan);
    return -1;
}

void message_batch_free(struct message_batch *batch)
{
    if (batch == NULL)
        return;
    for (size_t i = 0; i < batch->count; i++) {
        struct message_operation *op = &batch->operations[i];
        free(op->tenant);
        free(op->key);
        free(op->src);
        value_clear(&op->value);
    }
    free(batch->operations);
    batch->operations = NULL;
    batch->count = 0;
}
