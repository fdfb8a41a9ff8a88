/* value.c - checking a value against its kind's shape (docs/reference.md §2), keeping its
 * compact text, and noting where in that text the facts queries need are.
 *
 * The derived blob holds only what a query cannot take from the compact text
 * as it is. Its layout is private to this file (read byte by byte, so a blob
 * at any address is safe to read; places, counts and lengths are varints,
 * 7 bits a byte, low first, the high bit set on all but the last):
 *   credit:    nothing when the text is the cost written in its shortest
 *              form ("3.5"); one byte below '-' when the cost member's
 *              text is that form: its offset (it ends at the next ',' or
 *              '}'); otherwise that shortest form, which starts with '-'
 *              or a digit
 *   role:      the patterns, a list
 *   user:      the status, a string; the roles, a list
 *   hierarchy: the parent id (nothing for a root); it is also the index key
 * A string is a varint v and then: v even, nothing: the string is written
 * without escapes in the text at offset v / 2 (its opening quote) and ends
 * at the next '"'; v odd, its v / 2 decoded bytes (it has escapes).
 * A list is a varint v: v even, no string of the list has escapes, and v / 2
 * is the offset of the list's '[' in the text: readers walk its "..." items
 * up to the ']'; v odd, v / 2 strings follow (count 0: the user has no
 * roles). So a seed user's blob is 2 bytes and a role's 1, and nothing read
 * on the query path depends on the text having no escapes. Other shapes
 * have no blob. */
#include "value.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "names.h"
#include "perm.h"
#include "util.h"

/* Room for util_format_double(): "-2.2250738585072014e-308" and a NUL. */
#define CREDIT_TEXT_MAX 32

/* A credit blob of one byte below this is the offset of the cost in the
 * text: no shortest form of a number starts with a byte below '-'. */
#define CREDIT_PLACE_END '-'

/* A growing blob. Texts are bounded by the message and fill size limits, far
 * below the 2^34 that a varint's 35 bits hold for an offset << 1. */
struct blob {
    unsigned char *data;
    size_t len;
    size_t cap;
};

static void blob_reserve(struct blob *b, size_t more)
{
    if (b->len + more <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + more)
        cap *= 2;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
}

static void put_bytes(struct blob *b, const void *data, size_t len)
{
    blob_reserve(b, len);
    if (len > 0)
        memcpy(b->data + b->len, data, len);
    b->len += len;
}

static void put_varint(struct blob *b, uint64_t v)
{
    unsigned char bytes[UTIL_VARINT_MAX];
    put_bytes(b, bytes, (size_t)(util_put_varint(bytes, v) - bytes));
}

/* Reading: every read checks the bounds, so a truncated or foreign blob makes
 * an accessor fail instead of reading past the end. */
struct reader {
    const unsigned char *cursor;
    const unsigned char *end;
};

/* The longer varints of get_varint(). */
static bool get_varint_long(struct reader *r, uint64_t *out)
{
    uint64_t v = 0;
    for (unsigned shift = 0; shift < 35; shift += 7) {
        if (r->cursor == r->end)
            return false;
        unsigned char byte = *r->cursor++;
        v |= (uint64_t)(byte & 0x7f) << shift;
        if ((byte & 0x80) == 0) {
            *out = v;
            return true;
        }
    }
    return false;
}

/* A varint of at most 5 bytes (a u32: every count and length). Most are one
 * byte (counts, lengths, offsets into short texts), read here inline: CAN
 * reads a dozen of them per query. */
static inline bool get_varint(struct reader *r, uint64_t *out)
{
    if (r->cursor < r->end && *r->cursor < 0x80) {
        *out = *r->cursor++;
        return true;
    }
    return get_varint_long(r, out);
}

/* ---- compact JSON ----
 *
 * The text a value is stored and answered as: the bytes it arrived as, less
 * the whitespace between tokens (docs/reference.md §2). The text was scanned
 * (and so validated) already, so one pass that copies everything but
 * whitespace outside strings is enough: numbers keep their written form and
 * strings their escapes, and nothing is formatted again. */

/* Copies the valid JSON text[0..len) into out without the whitespace between
 * tokens; returns the length written (at most len). */
static size_t strip_whitespace(const char *text, size_t len, char *out)
{
    size_t n = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            if (c == '\\') { /* the escaped character is copied with it */
                out[n++] = c;
                c = text[++i];
            } else if (c == '"') {
                in_string = false;
            }
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\0') {
            continue; /* NUL: the scan lets one pass after a number or literal */
        } else if (c == '"') {
            in_string = true;
        }
        out[n++] = c;
    }
    return n;
}

/* ---- places in the compact text ----
 *
 * The text is valid JSON without whitespace, and the scan's nodes are in the
 * order the text writes them, so a member is found by walking the text
 * alongside the scanned object. */

/* p at a string's opening quote: returns the byte after its closing quote. */
static const char *text_skip_string(const char *p, const char *end)
{
    for (p++; p < end && *p != '"'; p++) {
        if (*p == '\\')
            p++;
    }
    return p < end ? p + 1 : end;
}

/* p at a value: returns the byte after it. */
static const char *text_skip_value(const char *p, const char *end)
{
    size_t depth = 0;
    while (p < end) {
        char c = *p;
        if (c == '"') {
            p = text_skip_string(p, end);
            if (depth == 0)
                return p;
            continue;
        }
        if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            if (depth == 0) /* the end of the enclosing container */
                return p;
            if (--depth == 0)
                return p + 1;
        } else if (c == ',' && depth == 0) {
            return p;
        }
        p++;
    }
    return p;
}

/* p at the '{' of object node obj's compact text: returns where the value
 * of its member `name` starts, or NULL if it has none. */
static const char *text_member(const struct jscan *scan, uint32_t obj, const char *name,
                               const char *p, const char *end)
{
    uint32_t key = obj + 1;
    p++;
    for (uint32_t m = 0; m < scan->nodes[obj].u.count; m++) {
        p = text_skip_string(p, end) + 1; /* the key and ':' */
        if (p >= end)
            return NULL;
        if (jscan_string_is(scan, key, name))
            return p;
        p = text_skip_value(p, end) + 1; /* the value and ',' */
        key = scan->nodes[key + 1].next;
    }
    return NULL;
}

/* Appends string node i, written at p (its opening quote) in json: its
 * place when the text has it without escapes, else its decoded bytes. */
static void put_text_string(struct blob *b, const char *json, const char *p, const char *end,
                            const struct jscan *scan, uint32_t i)
{
    const char *start = p + 1;
    size_t raw_len = (size_t)(text_skip_string(p, end) - 1 - start);
    if (memchr(start, '\\', raw_len) == NULL) {
        put_varint(b, (uint64_t)(p - json) << 1);
    } else {
        const char *s;
        size_t len;
        char *owned;
        jscan_string(scan, i, &s, &len, &owned);
        put_varint(b, ((uint64_t)len << 1) | 1);
        put_bytes(b, s, len);
        free(owned);
    }
}

/* Appends array node array of strings, written at p (its '['): the place
 * of its '[' when none of its strings has escapes (the array holds nothing
 * else that could have a backslash), else the count and each string. */
static void put_text_strings(struct blob *b, const char *json, const char *p, const char *end,
                             const struct jscan *scan, uint32_t array)
{
    size_t array_len = (size_t)(text_skip_value(p, end) - p);
    if (memchr(p, '\\', array_len) == NULL) {
        put_varint(b, (uint64_t)(p - json) << 1);
        return;
    }
    const struct jscan_node *n = &scan->nodes[array];
    put_varint(b, ((uint64_t)n->u.count << 1) | 1);
    p++;
    for (uint32_t item = array + 1; item < n->next; item = scan->nodes[item].next) {
        put_text_string(b, json, p, end, scan, item);
        p = text_skip_string(p, end) + 1; /* the string and ',' */
    }
}

static enum jscan_type type_of(const struct jscan *scan, uint32_t i)
{
    return (enum jscan_type)scan->nodes[i].type;
}

static bool is_number(const struct jscan *scan, uint32_t i)
{
    return type_of(scan, i) == JSCAN_INTEGER || type_of(scan, i) == JSCAN_REAL;
}

/* True if string node i, decoded, is accepted by valid(). */
static bool string_valid(const struct jscan *scan, uint32_t i,
                         bool (*valid)(const char *, size_t))
{
    const char *s;
    size_t len;
    char *owned;
    jscan_string(scan, i, &s, &len, &owned);
    bool ok = valid(s, len);
    free(owned);
    return ok;
}

/* Shape checks: each returns 0, or -1 with error filled. On success the
 * blob is appended to b; json[0..json_len) is the value's compact text. */

static int prepare_credit(const struct jscan *scan, uint32_t value, const char *json,
                          size_t json_len, struct blob *b, char *error)
{
    uint32_t cost = value;
    bool object = type_of(scan, value) == JSCAN_OBJECT;
    if (object) {
        cost = jscan_member(scan, value, "cost");
        if (cost == 0) {
            snprintf(error, ERROR_MAX, "credit object must have a number 'cost'");
            return -1;
        }
    } else if (!is_number(scan, value)) {
        snprintf(error, ERROR_MAX,
                 "credit value must be a number or an object with a number 'cost'");
        return -1;
    }
    if (!is_number(scan, cost) || !isfinite(jscan_number(scan, cost))) {
        snprintf(error, ERROR_MAX, "credit cost must be a finite number");
        return -1;
    }

    double number = jscan_number(scan, cost);
    if (number == 0.0)
        number = 0.0; /* -0 would print as "-0" */
    char text[CREDIT_TEXT_MAX];
    size_t text_len = util_format_double(number, text, sizeof(text));
    /* CREDIT answers the text itself when it is already that form, or the
     * cost member's text when that is and starts near enough to the front
     * for its offset to fit the one byte. */
    if (!object) {
        if (text_len != json_len || memcmp(text, json, text_len) != 0)
            put_bytes(b, text, text_len);
        return 0;
    }
    const char *end = json + json_len;
    const char *at = text_member(scan, value, "cost", json, end);
    if (at == NULL) /* the text is not the scan's: a caller's mistake */
        log_fatal("credit value text does not match its scanned value");
    if (at - json < CREDIT_PLACE_END && (size_t)(text_skip_value(at, end) - at) == text_len &&
        memcmp(at, text, text_len) == 0) {
        unsigned char place = (unsigned char)(at - json);
        put_bytes(b, &place, 1);
    } else {
        put_bytes(b, text, text_len);
    }
    return 0;
}

/* True if array node i is an array of strings each accepted by valid(). */
static bool strings_array_valid(const struct jscan *scan, uint32_t i,
                                bool (*valid)(const char *, size_t))
{
    if (type_of(scan, i) != JSCAN_ARRAY)
        return false;
    for (uint32_t item = i + 1; item < scan->nodes[i].next; item = scan->nodes[item].next) {
        if (type_of(scan, item) != JSCAN_STRING || !string_valid(scan, item, valid))
            return false;
    }
    return true;
}

static int prepare_role(const struct jscan *scan, uint32_t value, const char *json,
                        size_t json_len, struct blob *b, char *error)
{
    uint32_t permissions = value;
    const char *end = json + json_len, *at = json;
    if (type_of(scan, value) == JSCAN_OBJECT) {
        permissions = jscan_member(scan, value, "permissions");
        if (permissions == 0) {
            snprintf(error, ERROR_MAX, "role object must have an array 'permissions'");
            return -1;
        }
        at = text_member(scan, value, "permissions", json, end);
    } else if (type_of(scan, value) != JSCAN_ARRAY) {
        snprintf(error, ERROR_MAX,
                 "role value must be an array of permissions or an object with 'permissions'");
        return -1;
    }
    if (type_of(scan, permissions) != JSCAN_ARRAY) {
        snprintf(error, ERROR_MAX, "role permissions must be an array of strings");
        return -1;
    }
    size_t index = 0;
    for (uint32_t item = permissions + 1; item < scan->nodes[permissions].next;
         item = scan->nodes[item].next, index++) {
        if (type_of(scan, item) != JSCAN_STRING) {
            snprintf(error, ERROR_MAX, "role permissions must be an array of strings");
            return -1;
        }
        if (!string_valid(scan, item, perm_valid)) {
            snprintf(error, ERROR_MAX, "role permission %zu is not a valid pattern", index);
            return -1;
        }
    }
    if (at == NULL) /* the text is not the scan's: a caller's mistake */
        log_fatal("role value text does not match its scanned value");
    put_text_strings(b, json, at, end, scan, permissions);
    return 0;
}

static int prepare_user(const struct jscan *scan, uint32_t value, const char *json,
                        size_t json_len, struct blob *b, char *error)
{
    uint32_t status = value, roles = 0;
    bool object = type_of(scan, value) == JSCAN_OBJECT;
    if (object) {
        status = jscan_member(scan, value, "status");
        roles = jscan_member(scan, value, "roles");
        if (roles != 0 && type_of(scan, roles) == JSCAN_NULL)
            roles = 0; /* an optional field written as null is absent */
        if (status == 0) {
            snprintf(error, ERROR_MAX, "user object must have a string 'status'");
            return -1;
        }
    } else if (type_of(scan, value) != JSCAN_STRING) {
        snprintf(error, ERROR_MAX,
                 "user value must be a status string or an object with 'status'");
        return -1;
    }
    if (type_of(scan, status) != JSCAN_STRING ||
        scan->nodes[status].end - scan->nodes[status].start == 2) {
        snprintf(error, ERROR_MAX, "user status must be a non-empty string");
        return -1;
    }
    /* A role id is the key of a role entry, so it follows the key alphabet:
     * anything else could never name a role. */
    if (roles != 0 && !strings_array_valid(scan, roles, names_valid_key)) {
        snprintf(error, ERROR_MAX, "user roles must be an array of role ids");
        return -1;
    }

    const char *end = json + json_len, *status_at = json, *roles_at = NULL;
    if (object) {
        status_at = text_member(scan, value, "status", json, end);
        if (roles != 0)
            roles_at = text_member(scan, value, "roles", json, end);
        if (status_at == NULL || (roles != 0 && roles_at == NULL))
            log_fatal("user value text does not match its scanned value");
    }
    put_text_string(b, json, status_at, end, scan, status);
    if (roles != 0)
        put_text_strings(b, json, roles_at, end, scan, roles);
    else
        put_varint(b, 1); /* a list of 0 strings */
    return 0;
}

/* The blob is the parent's decoded bytes, also the entry's index key. */
static int prepare_hierarchy(const struct jscan *scan, uint32_t value, struct blob *b,
                             char *error)
{
    if (type_of(scan, value) != JSCAN_OBJECT) {
        snprintf(error, ERROR_MAX, "hierarchy value must be an object");
        return -1;
    }
    /* An optional field written as null is absent: publishers commonly send
     * "parent": null for a root. */
    uint32_t parent = jscan_member(scan, value, "parent");
    uint32_t name = jscan_member(scan, value, "name");
    if (parent != 0 && type_of(scan, parent) == JSCAN_NULL)
        parent = 0;
    if (parent != 0 && (type_of(scan, parent) != JSCAN_STRING ||
                        !string_valid(scan, parent, names_valid_key))) {
        snprintf(error, ERROR_MAX,
                 "hierarchy parent must be an entity id (1-512 bytes, no spaces or controls)");
        return -1;
    }
    if (name != 0 && type_of(scan, name) != JSCAN_STRING && type_of(scan, name) != JSCAN_NULL) {
        snprintf(error, ERROR_MAX, "hierarchy name must be a string");
        return -1;
    }
    if (parent != 0) {
        const char *s;
        size_t len;
        char *owned;
        jscan_string(scan, parent, &s, &len, &owned);
        put_bytes(b, s, len);
        free(owned);
    }
    return 0;
}

int value_prepare(enum config_shape shape, const struct jscan *scan, uint32_t value,
                  struct value_prepared *out, char *error)
{
    struct blob b = {0};
    int rc = 0;

    memset(out, 0, sizeof(*out));
    const struct jscan_node *n = &scan->nodes[value];
    const char *text = scan->text + n->start;
    size_t len = n->end - n->start;

    out->json = xmalloc(len + 1);
    out->json_len = strip_whitespace(text, len, out->json);
    out->json[out->json_len] = '\0';

    switch (shape) {
    case CONFIG_SHAPE_ANY:
        break;
    case CONFIG_SHAPE_OBJECT:
        if (type_of(scan, value) != JSCAN_OBJECT) {
            snprintf(error, ERROR_MAX, "value must be a JSON object");
            rc = -1;
        }
        break;
    case CONFIG_SHAPE_CREDIT:
        rc = prepare_credit(scan, value, out->json, out->json_len, &b, error);
        break;
    case CONFIG_SHAPE_ROLE:
        rc = prepare_role(scan, value, out->json, out->json_len, &b, error);
        break;
    case CONFIG_SHAPE_USER:
        rc = prepare_user(scan, value, out->json, out->json_len, &b, error);
        break;
    case CONFIG_SHAPE_HIERARCHY:
        rc = prepare_hierarchy(scan, value, &b, error);
        break;
    default:
        snprintf(error, ERROR_MAX, "unknown value shape %d", (int)shape);
        rc = -1;
    }
    if (rc != 0)
        goto fail;

    if (b.len > 0) {
        /* A copy of its size rather than the growing buffer trimmed in
         * place, whose freed tail would be left between the cache's entries. */
        out->derived = xmalloc(b.len);
        memcpy(out->derived, b.data, b.len);
        out->derived_len = b.len;
        free(b.data);
        b.data = NULL;
        if (shape == CONFIG_SHAPE_HIERARCHY) {
            out->index_key = (const char *)out->derived;
            out->index_key_len = out->derived_len;
        }
    }
    return 0;

fail:
    free(b.data);
    value_clear(out);
    return -1;
}

/* Nodes on the stack for a fill's value: most need no more. */
#define STACK_NODES 64

int value_prepare_text(enum config_shape shape, const char *text, size_t len,
                       struct value_prepared *out, char *error)
{
    struct jscan_node nodes[STACK_NODES];
    struct jscan scan;
    memset(out, 0, sizeof(*out));
    /* Trailing garbage is refused. A duplicate key is refused as in a
     * message (docs/reference.md §3): the text is kept as it is, and a reader
     * could take either of the two. */
    jscan_init(&scan, nodes, STACK_NODES);
    int rc = jscan_parse(&scan, text, len, true, error);
    if (rc == 0)
        rc = value_prepare(shape, &scan, 0, out, error);
    jscan_free(&scan);
    return rc;
}

void value_clear(struct value_prepared *value)
{
    if (value == NULL)
        return;
    free(value->json);
    free(value->derived);
    memset(value, 0, sizeof(*value));
}

/* The string whose opening quote is at p in text that ends at end, written
 * without escapes: it runs to the next '"'. False if the text ends first. */
static inline bool text_plain_string(const char *p, const char *end, const char **str,
                                     size_t *len)
{
    const char *close = memchr(p + 1, '"', (size_t)(end - p - 1));
    if (close == NULL)
        return false;
    *str = p + 1;
    *len = (size_t)(close - p - 1);
    return true;
}

/* Reads a string written by put_text_string(); false if it does not fit the
 * blob or the text. */
static inline bool get_text_string(struct reader *r, const char *json, size_t json_len,
                                   const char **str, size_t *len)
{
    uint64_t v;
    if (!get_varint(r, &v))
        return false;
    if (v & 1) {
        uint64_t n = v >> 1;
        if ((uint64_t)(r->end - r->cursor) < n)
            return false;
        *str = (const char *)r->cursor;
        *len = (size_t)n;
        r->cursor += n;
        return true;
    }
    uint64_t quote = v >> 1;
    if (json == NULL || quote >= json_len || json[quote] != '"')
        return false;
    return text_plain_string(json + quote, json + json_len, str, len);
}

/* The next item of a list of strings without escapes in the text: *at is
 * just after its '[' or a ','. False at the ']', or where the text does not
 * go on as such a list (it was cut short, or is not the blob's). */
static inline bool text_list_next(const char **at, const char *end, const char **str,
                                  size_t *len)
{
    const char *p = *at;
    if (p >= end || *p != '"' || !text_plain_string(p, end, str, len))
        return false;
    p += *len + 2;
    if (p < end && *p == ',')
        p++;
    *at = p;
    return true;
}

/* Opens a list of strings (put_text_strings()) at r's cursor.
 * walk: the strings are walked once here so that the count can be trusted
 * and what follows them read; otherwise the sequence runs to the end of
 * the blob, or of the text's list, and value_strings_next() checks each
 * string as it reaches it. */
static bool get_text_strings(struct reader *r, const char *json, size_t json_len,
                             struct value_strings *out, bool walk)
{
    uint64_t v;
    if (!get_varint(r, &v))
        return false;
    out->json = json;
    out->json_len = json_len;
    if ((v & 1) == 0) {
        uint64_t open = v >> 1;
        if (json == NULL || open >= json_len || json[open] != '[')
            return false;
        const char *at = json + open + 1, *end = json + json_len;
        out->in_text = true;
        out->cursor = (const unsigned char *)at;
        out->end = (const unsigned char *)end;
        out->remaining = UINT32_MAX;
        if (!walk)
            return true;
        const char *s;
        size_t len;
        uint32_t count = 0;
        while (count < UINT32_MAX && text_list_next(&at, end, &s, &len))
            count++;
        if (at >= end || *at != ']')
            return false;
        out->remaining = count;
        return true;
    }
    uint64_t count = v >> 1;
    /* Each string takes one byte at least. */
    if (count > UINT32_MAX || count > (uint64_t)(r->end - r->cursor))
        return false;
    out->in_text = false;
    out->cursor = r->cursor;
    out->remaining = (uint32_t)count;
    if (!walk) {
        out->end = r->end;
        r->cursor = r->end;
        return true;
    }
    for (uint64_t i = 0; i < count; i++) {
        const char *s;
        size_t len;
        if (!get_text_string(r, json, json_len, &s, &len))
            return false;
    }
    out->end = r->cursor;
    return true;
}

bool value_strings_next(struct value_strings *strings, const char **str, size_t *len)
{
    if (strings->remaining == 0)
        return false;
    if (strings->in_text) {
        const char *at = (const char *)strings->cursor;
        if (!text_list_next(&at, (const char *)strings->end, str, len)) {
            strings->remaining = 0;
            return false;
        }
        strings->cursor = (const unsigned char *)at;
        strings->remaining--;
        return true;
    }
    struct reader r = {strings->cursor, strings->end};
    if (!get_text_string(&r, strings->json, strings->json_len, str, len)) {
        strings->remaining = 0;
        return false;
    }
    strings->cursor = r.cursor;
    strings->remaining--;
    return true;
}

int value_credit(const char *json, size_t json_len, const void *derived, size_t derived_len,
                 const char **text, size_t *text_len)
{
    const unsigned char *blob = derived;
    if (blob != NULL && derived_len == 1 && blob[0] < CREDIT_PLACE_END) {
        /* The cost member's text: a number, ended by the object's next ','
         * or its '}', which the text must have. */
        size_t at = blob[0], n = 0;
        if (json == NULL || at >= json_len ||
            (json[at] != '-' && (json[at] < '0' || json[at] > '9')))
            return -1;
        while (at + n < json_len && json[at + n] != ',' && json[at + n] != '}')
            n++;
        if (at + n == json_len)
            return -1;
        *text = json + at;
        *text_len = n;
    } else if (derived_len > 0) {
        *text = derived;
        *text_len = derived_len;
    } else {
        *text = json;
        *text_len = json_len;
    }
    return *text != NULL && *text_len > 0 ? 0 : -1;
}

static int role_permissions(const char *json, size_t json_len, const void *derived,
                            size_t derived_len, struct value_strings *out, bool walk)
{
    struct reader r = {derived, (const unsigned char *)derived + derived_len};
    if (derived == NULL || !get_text_strings(&r, json, json_len, out, walk) || r.cursor != r.end)
        return -1;
    return 0;
}

int value_role_permissions(const char *json, size_t json_len, const void *derived,
                           size_t derived_len, struct value_strings *out)
{
    return role_permissions(json, json_len, derived, derived_len, out, true);
}

int value_role_permissions_lazy(const char *json, size_t json_len, const void *derived,
                                size_t derived_len, struct value_strings *out)
{
    return role_permissions(json, json_len, derived, derived_len, out, false);
}

static int user(const char *json, size_t json_len, const void *derived, size_t derived_len,
                const char **status, size_t *status_len, struct value_strings *roles, bool walk)
{
    struct reader r = {derived, (const unsigned char *)derived + derived_len};
    if (derived == NULL || !get_text_string(&r, json, json_len, status, status_len) ||
        !get_text_strings(&r, json, json_len, roles, walk) || r.cursor != r.end)
        return -1;
    return 0;
}

int value_user(const char *json, size_t json_len, const void *derived, size_t derived_len,
               const char **status, size_t *status_len, struct value_strings *roles)
{
    return user(json, json_len, derived, derived_len, status, status_len, roles, true);
}

int value_user_lazy(const char *json, size_t json_len, const void *derived, size_t derived_len,
                    const char **status, size_t *status_len, struct value_strings *roles)
{
    return user(json, json_len, derived, derived_len, status, status_len, roles, false);
}

void value_hierarchy_parent(const void *derived, size_t derived_len, bool *has_parent,
                            const char **parent, size_t *parent_len)
{
    *has_parent = derived != NULL && derived_len > 0;
    *parent = *has_parent ? derived : NULL;
    *parent_len = *has_parent ? derived_len : 0;
}
