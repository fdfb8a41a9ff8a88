/* message.c - parsing and validating invalidation messages (docs/reference.md §3).
 *
 * A payload is parsed with jansson and checked whole: every operation of a
 * batch, and every `set` value against its kind's shape, before anything is
 * returned. What comes out needs no further checks: apply.c only applies. */
#include "message.h"

#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "util.h"

/* Operations in one payload. A payload is also capped in bytes; this bounds
 * the work of a payload of many tiny operations. */
#define MESSAGE_BATCH_MAX 10000

/* Where errors of one element are reported: "batch[3]: " inside an array,
 * nothing for a single object. */
#define WHERE_MAX 32

struct parse_ctx {
    const struct config *config;
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

/* jansson's error text quotes the input near the error: keep it to printable
 * ASCII, since the reason ends up in the log. */
static void sanitize(char *text)
{
    for (; *text != '\0'; text++) {
        if ((unsigned char)*text < 0x20 || (unsigned char)*text > 0x7e)
            *text = '?';
    }
}

/* ---- jansson's memory while a payload is parsed ----
 *
 * jansson allocates every node, key and string of a parsed payload on its
 * own and frees them one by one; for the short messages of the stream that
 * was a third of the apply time. While message_parse() holds a tree, jansson's
 * allocations on that thread come from a bump arena instead, and freeing the
 * tree costs nothing: the arena is reset when the parse ends (no tree outlives
 * it; what an operation keeps is copied out). Anything larger than what is
 * left, and every allocation outside a parse or on another thread, goes to
 * malloc() as before; a free() inside the arena is a no-op. */

#define ARENA_BYTES (64u * 1024u)
#define ARENA_ALIGN 16u

struct arena {
    unsigned char *base; /* ARENA_BYTES from the thread's first parse on, kept for
                            its life (the daemon parses on the main thread only) */
    size_t used;
    bool active;         /* a parse is under way on this thread */
};

static _Thread_local struct arena arena;

static void *arena_malloc(size_t size)
{
    if (arena.active && size <= ARENA_BYTES - arena.used) {
        void *p = arena.base + arena.used;
        arena.used += (size + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
        if (arena.used > ARENA_BYTES)
            arena.used = ARENA_BYTES;
        return p;
    }
    return malloc(size);
}

static void arena_free(void *p)
{
    uintptr_t at = (uintptr_t)p, base = (uintptr_t)arena.base;
    if (arena.base != NULL && at >= base && at < base + ARENA_BYTES)
        return; /* reclaimed when the parse ends */
    free(p);
}

/* Installed before main() runs, so before any thread can be inside jansson. */
__attribute__((constructor)) static void arena_install(void)
{
    json_set_alloc_funcs(arena_malloc, arena_free);
}

static void arena_begin(void)
{
    if (arena.base == NULL)
        arena.base = xmalloc(ARENA_BYTES);
    arena.used = 0;
    arena.active = true;
}

static void arena_end(void)
{
    arena.active = false;
    arena.used = 0;
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

/* ---- where each `value` is in the text ----
 *
 * A `set` stores its value's own bytes (value.h), so the parse needs to know
 * where the value is in the payload. jansson does not say; these walk the
 * text once jansson has accepted it, so they can trust its grammar (and that
 * no object repeats a key). */

/* A NUL byte counts as whitespace: jansson lets one pass right after a
 * number or a literal (and refuses it anywhere else outside a string). */
static const char *skip_whitespace(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == '\0'))
        p++;
    return p;
}

/* p at a string's opening quote: returns the byte after its closing quote
 * (the first quote not escaped, that is after an even run of backslashes). */
static const char *skip_string(const char *p, const char *end)
{
    const char *from = p + 1;
    for (;;) {
        const char *quote = memchr(from, '"', (size_t)(end - from));
        if (quote == NULL)
            return end;
        size_t backslashes = 0;
        while (quote - backslashes > from && quote[-1 - (ptrdiff_t)backslashes] == '\\')
            backslashes++;
        if (backslashes % 2 == 0)
            return quote + 1;
        from = quote + 1;
    }
}

/* p at a value: returns the byte after it. A container is skipped by
 * counting brackets outside strings (jansson checked that they pair); a
 * number or literal ends at the first byte that cannot be in one. */
static const char *skip_value(const char *p, const char *end)
{
    if (p < end && *p == '"')
        return skip_string(p, end);
    if (p < end && *p != '{' && *p != '[') {
        while (p < end && ((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') ||
                           (*p >= 'A' && *p <= 'Z') || *p == '.' || *p == '+' || *p == '-'))
            p++;
        return p;
    }
    size_t depth = 0;
    while (p < end) {
        char c = *p;
        if (c == '"') {
            p = skip_string(p, end);
            continue;
        }
        p++;
        if (c == '{' || c == '[')
            depth++;
        else if ((c == '}' || c == ']') && --depth == 0)
            return p;
    }
    return p;
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return c - 'A' + 10; /* jansson accepted it: a hex digit */
}

/* True if the string at p (its opening quote) spells the ASCII name once its
 * escapes are decoded ("valu\u0065" is "value"). */
static bool string_is(const char *p, const char *end, const char *name)
{
    for (p++; p < end && *p != '"'; p++, name++) {
        char c = *p;
        if (c == '\\' && end - p >= 2) {
            c = *++p;
            switch (c) {
            case 'b': c = '\b'; break;
            case 'f': c = '\f'; break;
            case 'n': c = '\n'; break;
            case 'r': c = '\r'; break;
            case 't': c = '\t'; break;
            case 'u': {
                if (end - p < 5)
                    return false;
                int code = 0;
                for (int i = 1; i <= 4; i++)
                    code = code * 16 + hex_digit(p[i]);
                if (code >= 0x80) /* not ASCII, so not in name */
                    return false;
                c = (char)code;
                p += 4;
                break;
            }
            default: /* '"', '\\' and '/' stand for themselves */
                break;
            }
        }
        if (*name != c)
            return false;
    }
    return *name == '\0';
}

/* p at an object: sets *value and *value_len to its member `value`'s text,
 * or *value to NULL when it has none. Returns the byte after the object. */
static const char *find_value(const char *p, const char *end, const char **value,
                              size_t *value_len)
{
    *value = NULL;
    *value_len = 0;
    p = skip_whitespace(p + 1, end); /* past '{' */
    while (p < end && *p == '"') {
        bool wanted = string_is(p, end, "value");
        p = skip_whitespace(skip_string(p, end), end);
        p = skip_whitespace(p + 1, end); /* past ':' */
        const char *member_end = skip_value(p, end);
        if (wanted) {
            *value = p;
            *value_len = (size_t)(member_end - p);
        }
        p = skip_whitespace(member_end, end);
        if (p < end && *p == ',')
            p = skip_whitespace(p + 1, end);
    }
    return p < end ? p + 1 : end; /* past '}' */
}

/* Field helpers. Each returns 0, or -1 with the error set; `required` makes a
 * missing field an error, otherwise *out is NULL when absent. */

static int get_string(struct parse_ctx *ctx, json_t *obj, const char *field, bool required,
                      json_t **out)
{
    json_t *v = json_object_get(obj, field);
    *out = NULL;
    if (v == NULL) {
        if (required) {
            fail_at(ctx, "field '%s' is required", field);
            return -1;
        }
        return 0;
    }
    if (!json_is_string(v)) {
        fail_at(ctx, "field '%s' must be a string", field);
        return -1;
    }
    *out = v;
    return 0;
}

/* An optional integer >= min. */
static int get_integer(struct parse_ctx *ctx, json_t *obj, const char *field, json_int_t min,
                       bool *has, uint64_t *out)
{
    json_t *v = json_object_get(obj, field);
    *has = false;
    if (v == NULL)
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < min) {
        fail_at(ctx, "field '%s' must be a %s integer", field,
                min > 0 ? "positive" : "non-negative");
        return -1;
    }
    *has = true;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int parse_op_name(struct parse_ctx *ctx, json_t *obj, enum message_op *op)
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
    json_t *v;
    if (get_string(ctx, obj, "op", true, &v) != 0)
        return -1;
    const char *name = json_string_value(v);
    size_t len = json_string_length(v);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(ops); i++) {
        if (strlen(ops[i].name) == len && memcmp(ops[i].name, name, len) == 0) {
            *op = ops[i].op;
            return 0;
        }
    }
    /* The publisher's text is not echoed: it ends up in the logs. */
    fail_at(ctx, "field 'op' must be one of set, del, invalidate, flush, heartbeat");
    return -1;
}

/* Resolves the kind and from it the disposition. */
static int parse_kind(struct parse_ctx *ctx, json_t *obj, struct message_operation *op)
{
    bool required = op->op != MESSAGE_FLUSH;
    json_t *v;
    if (get_string(ctx, obj, "kind", required, &v) != 0)
        return -1;
    if (v == NULL)
        return 0;
    if (json_string_length(v) == 0) {
        fail_at(ctx, "field 'kind' must not be empty");
        return -1;
    }
    op->kind = config_kind_find(ctx->config, json_string_value(v), json_string_length(v));
    if (op->kind < 0)
        op->disposition = MESSAGE_UNKNOWN_KIND;
    else if (!ctx->config->kinds[op->kind].cached)
        op->disposition = MESSAGE_FILTERED;
    return 0;
}

/* value_text[0..value_len) is the text of obj's `value` (NULL when none). */
static int parse_operation(struct parse_ctx *ctx, json_t *obj, const char *value_text,
                           size_t value_len, struct message_operation *op)
{
    json_t *v;
    char value_error[ERROR_MAX];

    memset(op, 0, sizeof(*op));
    op->kind = -1;
    op->disposition = MESSAGE_APPLY;

    if (!json_is_object(obj)) {
        fail_at(ctx, "operation must be a JSON object");
        return -1;
    }
    if (parse_op_name(ctx, obj, &op->op) != 0)
        return -1;
    bool heartbeat = op->op == MESSAGE_HEARTBEAT;
    bool keyed = op->op == MESSAGE_SET || op->op == MESSAGE_DEL || op->op == MESSAGE_INVALIDATE;

    if (!heartbeat) {
        if (get_string(ctx, obj, "tenant", true, &v) != 0)
            goto fail;
        const char *tenant = json_string_value(v);
        size_t len = json_string_length(v);
        if (len == 1 && tenant[0] == '*') {
            if (op->op != MESSAGE_FLUSH) {
                fail_at(ctx, "tenant '*' is only allowed with op 'flush'");
                goto fail;
            }
        } else if (!names_valid_tenant(tenant, len)) {
            fail_at(ctx, "field 'tenant' must be 1-64 bytes of [A-Za-z0-9._-], not '.' or '..'");
            goto fail;
        }
        op->tenant = xstrndup(tenant, len);
        op->tenant_len = len;

        if (parse_kind(ctx, obj, op) != 0)
            goto fail;
    }

    if (keyed) {
        if (get_string(ctx, obj, "key", true, &v) != 0)
            goto fail;
        if (!names_valid_key(json_string_value(v), json_string_length(v))) {
            fail_at(ctx, "field 'key' must be 1-512 bytes without spaces or control characters, not '.' or '..'");
            goto fail;
        }
        op->key = xstrndup(json_string_value(v), json_string_length(v));
        op->key_len = json_string_length(v);
    }

    if (op->op == MESSAGE_SET) {
        json_t *value = json_object_get(obj, "value");
        if (value == NULL) {
            fail_at(ctx, "field 'value' is required");
            goto fail;
        }
        /* The walk of the text found no `value` where jansson did: never
         * expected, but refused rather than stored as an empty text. */
        if (value_text == NULL) {
            fail_at(ctx, "field 'value' could not be located in the text");
            goto fail;
        }
        /* Only a cached kind's value is checked and kept: the others are
         * ignored whole, so their shape does not matter here. */
        if (op->disposition == MESSAGE_APPLY &&
            value_prepare(ctx->config->kinds[op->kind].shape, value, value_text, value_len,
                          &op->value, value_error) != 0) {
            fail_at(ctx, "field 'value': %s", value_error);
            goto fail;
        }
    }

    if (get_integer(ctx, obj, "version", 0, &op->has_version, &op->version) != 0)
        goto fail;

    if (get_string(ctx, obj, "ts", false, &v) != 0)
        goto fail;
    if (v != NULL) {
        if (!parse_rfc3339(json_string_value(v), json_string_length(v), &op->ts_ms)) {
            fail_at(ctx, "field 'ts' must be an RFC 3339 timestamp such as "
                         "2024-01-01T10:00:00Z");
            goto fail;
        }
        op->has_ts = true;
    }

    if (get_string(ctx, obj, "src", heartbeat, &v) != 0)
        goto fail;
    if (v != NULL) {
        size_t len = json_string_length(v);
        const char *src = json_string_value(v);
        bool ok = len > 0 && len <= MESSAGE_SRC_MAX;
        for (size_t i = 0; ok && i < len; i++) /* it is logged: no control characters */
            ok = (unsigned char)src[i] >= 0x20 && (unsigned char)src[i] != 0x7f;
        if (!ok) {
            fail_at(ctx, "field 'src' must be 1-%d bytes without control characters",
                    MESSAGE_SRC_MAX);
            goto fail;
        }
        op->src = xstrndup(src, len);
    }

    if (get_integer(ctx, obj, "seq", 1, &op->has_seq, &op->seq) != 0)
        goto fail;
    if (heartbeat && !op->has_seq) {
        fail_at(ctx, "field 'seq' is required");
        goto fail;
    }
    if (op->has_seq && op->src == NULL) {
        fail_at(ctx, "field 'seq' requires field 'src'");
        goto fail;
    }
    if (heartbeat && (v = json_object_get(obj, "last")) != NULL) {
        if (!json_is_boolean(v)) {
            fail_at(ctx, "field 'last' must be a boolean");
            goto fail;
        }
        op->last = json_is_true(v);
    }
    return 0;

fail:
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
    struct parse_ctx ctx = {.config = config, .where = "", .error = error};
    json_error_t jerr;
    json_t *root = NULL;
    size_t count;

    batch->operations = NULL;
    batch->count = 0;

    if (len > config->redis.max_message_bytes) {
        snprintf(error, ERROR_MAX, "message too large (%zu bytes, limit %llu)", len,
                 (unsigned long long)config->redis.max_message_bytes);
        return -1;
    }
    /* jansson bounds the nesting depth itself, so a hostile payload of deep
     * brackets is an error, not a stack overflow. */
    arena_begin();
    root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        arena_end();
        snprintf(error, ERROR_MAX, "invalid JSON at line %d column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        sanitize(error);
        return -1;
    }

    if (json_is_object(root)) {
        count = 1;
    } else { /* without JSON_DECODE_ANY the top level is an object or an array */
        count = json_array_size(root);
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
    /* The text is walked alongside the elements for their values' bytes. */
    const char *end = text + len;
    const char *cursor = skip_whitespace(text, end);
    if (json_is_array(root))
        cursor++; /* past '[' */
    for (size_t i = 0; i < count; i++) {
        json_t *obj = root;
        if (json_is_array(root)) {
            obj = json_array_get(root, i);
            snprintf(ctx.where, sizeof(ctx.where), "batch[%zu]: ", i);
        }
        const char *value_text = NULL;
        size_t value_len = 0;
        cursor = skip_whitespace(cursor, end);
        if (json_is_object(obj))
            cursor = find_value(cursor, end, &value_text, &value_len);
        else
            cursor = skip_value(cursor, end);
        cursor = skip_whitespace(cursor, end);
        if (cursor < end && *cursor == ',')
            cursor++;
        if (parse_operation(&ctx, obj, value_text, value_len, &batch->operations[i]) != 0)
            goto fail;
        batch->count = i + 1;
    }
    json_decref(root);
    arena_end();
    return 0;

fail:
    message_batch_free(batch);
    json_decref(root);
    arena_end();
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
