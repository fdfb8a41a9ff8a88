/* value.c - checking a value against its kind's shape (docs/reference.md §2) and packing
 * the facts queries need into a small "derived" blob.
 *
 * Blob layout, private to this file (integers little-endian, read byte by byte
 * so that a blob at any address is safe to read):
 *   credit:    tag 'C', cost as u64 (IEEE 754 bits), text length, text
 *   role:      tag 'R', count, count x (length, bytes)
 *   user:      tag 'U', status length, status, count, count x (length, bytes)
 *   hierarchy: tag 'H', u8 has_parent, parent length, parent
 * Counts and lengths are varints (7 bits a byte, low first, the high bit set
 * on all but the last): one byte for the short strings these hold, where a
 * u32 spent four on each (the blob lives in every cache entry).
 * Other shapes have no blob. */
#include "value.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "names.h"
#include "perm.h"
#include "util.h"

#define TAG_CREDIT 'C'
#define TAG_ROLE 'R'
#define TAG_USER 'U'
#define TAG_HIERARCHY 'H'

/* Room for util_format_double(): "-2.2250738585072014e-308" and a NUL. */
#define CREDIT_TEXT_MAX 32

/* A growing blob. Sizes are bounded by the message size limit, so a u32
 * length always fits; the check in put_string() is a guard, not a path. */
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

static void put_u8(struct blob *b, uint8_t v)
{
    put_bytes(b, &v, 1);
}

static void put_uint(struct blob *b, uint64_t v, size_t width)
{
    unsigned char bytes[8];
    for (size_t i = 0; i < width; i++)
        bytes[i] = (unsigned char)(v >> (8 * i));
    put_bytes(b, bytes, width);
}

static void put_varint(struct blob *b, uint64_t v)
{
    unsigned char bytes[10];
    size_t n = 0;
    while (v >= 0x80) {
        bytes[n++] = (unsigned char)(v | 0x80);
        v >>= 7;
    }
    bytes[n++] = (unsigned char)v;
    put_bytes(b, bytes, n);
}

static void put_string(struct blob *b, const char *s, size_t len)
{
    if (len > UINT32_MAX)
        log_fatal("value string of %zu bytes does not fit a derived blob", len);
    put_varint(b, len);
    put_bytes(b, s, len);
}

/* Reading: every read checks the bounds, so a truncated or foreign blob makes
 * an accessor fail instead of reading past the end. */
struct reader {
    const unsigned char *cursor;
    const unsigned char *end;
};

static bool get_uint(struct reader *r, size_t width, uint64_t *out)
{
    if ((size_t)(r->end - r->cursor) < width)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < width; i++)
        v |= (uint64_t)r->cursor[i] << (8 * i);
    r->cursor += width;
    *out = v;
    return true;
}

/* A varint of at most 5 bytes (a u32: every count and length). */
static bool get_varint(struct reader *r, uint64_t *out)
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

static bool get_string(struct reader *r, const char **str, size_t *len)
{
    uint64_t n;
    if (!get_varint(r, &n) || (uint64_t)(r->end - r->cursor) < n)
        return false;
    *str = (const char *)r->cursor;
    *len = (size_t)n;
    r->cursor += n;
    return true;
}

/* Opens a blob whose first byte must be tag. */
static bool reader_open(struct reader *r, const void *derived, size_t derived_len, char tag)
{
    if (derived == NULL || derived_len < 1)
        return false;
    r->cursor = derived;
    r->end = r->cursor + derived_len;
    if (*r->cursor != (unsigned char)tag)
        return false;
    r->cursor++;
    return true;
}

/* Opens a sequence of strings (a u32 count, then the strings) at r's cursor.
 * The strings are walked once here so that value_strings_next() can trust them. */
static bool get_strings(struct reader *r, struct value_strings *out)
{
    uint64_t count;
    if (!get_varint(r, &count))
        return false;
    out->cursor = r->cursor;
    out->remaining = (uint32_t)count;
    for (uint64_t i = 0; i < count; i++) {
        const char *s;
        size_t len;
        if (!get_string(r, &s, &len))
            return false;
    }
    out->end = r->cursor;
    return true;
}

static void put_strings_array(struct blob *b, json_t *array)
{
    size_t index;
    json_t *item;
    put_varint(b, json_array_size(array));
    json_array_foreach(array, index, item)
        put_string(b, json_string_value(item), json_string_length(item));
}

/* ---- compact JSON ----
 *
 * The text a value is stored and answered as: the bytes it arrived as, less
 * the whitespace between tokens (docs/reference.md §2). The text was parsed
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
        } else if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            continue;
        } else if (c == '"') {
            in_string = true;
        }
        out[n++] = c;
    }
    return n;
}

/* Shape checks. Each returns 0, or -1 with error filled. */

static int prepare_credit(json_t *value, struct blob *b, char *error)
{
    json_t *cost = value;
    if (json_is_object(value)) {
        cost = json_object_get(value, "cost");
        if (cost == NULL) {
            snprintf(error, VALUE_ERROR_MAX, "credit object must have a number 'cost'");
            return -1;
        }
    } else if (!json_is_number(value)) {
        snprintf(error, VALUE_ERROR_MAX,
                 "credit value must be a number or an object with a number 'cost'");
        return -1;
    }
    if (!json_is_number(cost) || !isfinite(json_number_value(cost))) {
        snprintf(error, VALUE_ERROR_MAX, "credit cost must be a finite number");
        return -1;
    }

    double number = json_number_value(cost);
    if (number == 0.0)
        number = 0.0; /* -0 would print as "-0" */
    char text[CREDIT_TEXT_MAX];
    size_t text_len = util_format_double(number, text, sizeof(text));
    uint64_t bits;
    memcpy(&bits, &number, sizeof(bits));

    put_u8(b, TAG_CREDIT);
    put_uint(b, bits, 8);
    put_varint(b, text_len);
    put_bytes(b, text, text_len);
    return 0;
}

/* True if array is an array of strings each accepted by valid(). */
static bool strings_array_valid(json_t *array, bool (*valid)(const char *, size_t))
{
    size_t index;
    json_t *item;
    if (!json_is_array(array))
        return false;
    json_array_foreach(array, index, item) {
        if (!json_is_string(item) || !valid(json_string_value(item), json_string_length(item)))
            return false;
    }
    return true;
}

static int prepare_role(json_t *value, struct blob *b, char *error)
{
    json_t *permissions = value;
    if (json_is_object(value)) {
        permissions = json_object_get(value, "permissions");
        if (permissions == NULL) {
            snprintf(error, VALUE_ERROR_MAX, "role object must have an array 'permissions'");
            return -1;
        }
    } else if (!json_is_array(value)) {
        snprintf(error, VALUE_ERROR_MAX,
                 "role value must be an array of permissions or an object with 'permissions'");
        return -1;
    }
    if (!json_is_array(permissions)) {
        snprintf(error, VALUE_ERROR_MAX, "role permissions must be an array of strings");
        return -1;
    }
    size_t index;
    json_t *item;
    json_array_foreach(permissions, index, item) {
        if (!json_is_string(item)) {
            snprintf(error, VALUE_ERROR_MAX, "role permissions must be an array of strings");
            return -1;
        }
        if (!perm_valid(json_string_value(item), json_string_length(item))) {
            snprintf(error, VALUE_ERROR_MAX, "role permission %zu is not a valid pattern", index);
            return -1;
        }
    }
    put_u8(b, TAG_ROLE);
    put_strings_array(b, permissions);
    return 0;
}

static int prepare_user(json_t *value, struct blob *b, char *error)
{
    json_t *status = value, *roles = NULL;
    if (json_is_object(value)) {
        status = json_object_get(value, "status");
        roles = json_object_get(value, "roles");
        if (json_is_null(roles)) /* an optional field written as null is absent */
            roles = NULL;
        if (status == NULL) {
            snprintf(error, VALUE_ERROR_MAX, "user object must have a string 'status'");
            return -1;
        }
    } else if (!json_is_string(value)) {
        snprintf(error, VALUE_ERROR_MAX,
                 "user value must be a status string or an object with 'status'");
        return -1;
    }
    if (!json_is_string(status) || json_string_length(status) == 0) {
        snprintf(error, VALUE_ERROR_MAX, "user status must be a non-empty string");
        return -1;
    }
    /* A role id is the key of a role entry, so it follows the key alphabet:
     * anything else could never name a role. */
    if (roles != NULL && !strings_array_valid(roles, names_valid_key)) {
        snprintf(error, VALUE_ERROR_MAX, "user roles must be an array of role ids");
        return -1;
    }

    put_u8(b, TAG_USER);
    put_string(b, json_string_value(status), json_string_length(status));
    if (roles != NULL)
        put_strings_array(b, roles);
    else
        put_varint(b, 0);
    return 0;
}

/* Sets *parent_offset to where the parent's bytes start in the blob, or leaves
 * it 0 for a root (0 is the tag's place). The blob may still move, so the
 * caller turns the offset into a pointer once it is final. */
static int prepare_hierarchy(json_t *value, struct blob *b, size_t *parent_offset, char *error)
{
    if (!json_is_object(value)) {
        snprintf(error, VALUE_ERROR_MAX, "hierarchy value must be an object");
        return -1;
    }
    /* An optional field written as null is absent: publishers commonly send
     * "parent": null for a root. */
    json_t *parent = json_object_get(value, "parent");
    json_t *name = json_object_get(value, "name");
    if (json_is_null(parent))
        parent = NULL;
    if (parent != NULL && (!json_is_string(parent) ||
                           !names_valid_key(json_string_value(parent),
                                              json_string_length(parent)))) {
        snprintf(error, VALUE_ERROR_MAX,
                 "hierarchy parent must be an entity id (1-512 bytes, no spaces or controls)");
        return -1;
    }
    if (name != NULL && !json_is_string(name) && !json_is_null(name)) {
        snprintf(error, VALUE_ERROR_MAX, "hierarchy name must be a string");
        return -1;
    }

    put_u8(b, TAG_HIERARCHY);
    put_u8(b, parent != NULL);
    if (parent != NULL) {
        put_varint(b, json_string_length(parent));
        *parent_offset = b->len;
        put_bytes(b, json_string_value(parent), json_string_length(parent));
    } else {
        put_varint(b, 0);
    }
    return 0;
}

int value_prepare(enum config_shape shape, json_t *value, const char *text, size_t len,
                  struct value_prepared *out, char *error)
{
    struct blob b = {0};
    size_t parent_offset = 0;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (value == NULL) {
        snprintf(error, VALUE_ERROR_MAX, "value is missing");
        return -1;
    }

    switch (shape) {
    case CONFIG_SHAPE_ANY:
        break;
    case CONFIG_SHAPE_OBJECT:
        if (!json_is_object(value)) {
            snprintf(error, VALUE_ERROR_MAX, "value must be a JSON object");
            rc = -1;
        }
        break;
    case CONFIG_SHAPE_CREDIT:
        rc = prepare_credit(value, &b, error);
        break;
    case CONFIG_SHAPE_ROLE:
        rc = prepare_role(value, &b, error);
        break;
    case CONFIG_SHAPE_USER:
        rc = prepare_user(value, &b, error);
        break;
    case CONFIG_SHAPE_HIERARCHY:
        rc = prepare_hierarchy(value, &b, &parent_offset, error);
        break;
    default:
        snprintf(error, VALUE_ERROR_MAX, "unknown value shape %d", (int)shape);
        rc = -1;
    }
    if (rc != 0)
        goto fail;

    out->json = xmalloc(len + 1);
    out->json_len = strip_whitespace(text, len, out->json);
    out->json[out->json_len] = '\0';

    if (b.len > 0) {
        /* A copy of its size rather than the growing buffer trimmed in
         * place, whose freed tail would be left between the cache's entries. */
        out->derived = xmalloc(b.len);
        memcpy(out->derived, b.data, b.len);
        out->derived_len = b.len;
        free(b.data);
        b.data = NULL;
        if (parent_offset != 0) {
            out->index_key = (const char *)out->derived + parent_offset;
            out->index_key_len = out->derived_len - parent_offset;
        }
    }
    return 0;

fail:
    free(b.data);
    value_clear(out);
    return -1;
}

/* jansson's error text quotes the input near the error: keep it to printable
 * ASCII, since the reason may be logged. */
static void sanitize(char *text)
{
    for (; *text != '\0'; text++) {
        if ((unsigned char)*text < 0x20 || (unsigned char)*text > 0x7e)
            *text = '?';
    }
}

int value_prepare_text(enum config_shape shape, const char *text, size_t len,
                       struct value_prepared *out, char *error)
{
    json_error_t jerr;
    memset(out, 0, sizeof(*out));
    /* json_loadb() rejects trailing garbage unless told otherwise. A
     * duplicate key is refused as in a message (docs/reference.md §3): the
     * text is kept as it is, and a reader could take either of the two. */
    json_t *value = json_loadb(text, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
    if (value == NULL) {
        snprintf(error, VALUE_ERROR_MAX, "invalid JSON at position %d: %.80s", jerr.position,
                 jerr.text);
        sanitize(error);
        return -1;
    }
    int rc = value_prepare(shape, value, text, len, out, error);
    json_decref(value);
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

bool value_strings_next(struct value_strings *strings, const char **str, size_t *len)
{
    if (strings->remaining == 0)
        return false;
    struct reader r = {strings->cursor, strings->end};
    if (!get_string(&r, str, len)) {
        strings->remaining = 0;
        return false;
    }
    strings->cursor = r.cursor;
    strings->remaining--;
    return true;
}

int value_credit(const void *derived, size_t derived_len, double *cost, const char **text,
                 size_t *text_len)
{
    struct reader r;
    uint64_t bits, n;
    if (!reader_open(&r, derived, derived_len, TAG_CREDIT) || !get_uint(&r, 8, &bits) ||
        !get_varint(&r, &n) || (uint64_t)(r.end - r.cursor) < n)
        return -1;
    memcpy(cost, &bits, sizeof(*cost));
    *text = (const char *)r.cursor;
    *text_len = (size_t)n;
    return 0;
}

int value_role_permissions(const void *derived, size_t derived_len, struct value_strings *out)
{
    struct reader r;
    if (!reader_open(&r, derived, derived_len, TAG_ROLE) || !get_strings(&r, out))
        return -1;
    return 0;
}

int value_user(const void *derived, size_t derived_len, const char **status, size_t *status_len,
               struct value_strings *roles)
{
    struct reader r;
    if (!reader_open(&r, derived, derived_len, TAG_USER) ||
        !get_string(&r, status, status_len) || !get_strings(&r, roles))
        return -1;
    return 0;
}

int value_hierarchy_parent(const void *derived, size_t derived_len, bool *has_parent,
                           const char **parent, size_t *parent_len)
{
    struct reader r;
    uint64_t flag;
    if (!reader_open(&r, derived, derived_len, TAG_HIERARCHY) || !get_uint(&r, 1, &flag) ||
        !get_string(&r, parent, parent_len))
        return -1;
    *has_parent = flag != 0;
    if (!*has_parent) {
        *parent = NULL;
        *parent_len = 0;
    }
    return 0;
}
