/* value.h - validating a kind's value and precomputing what queries need.
 *
 * A `set` carries a JSON value. value_prepare() checks that it fits its kind's
 * shape (docs/reference.md §2), keeps its text less the whitespace, and notes
 * what the query commands need in a small "derived" blob stored next to the
 * text in the cache entry: a credit's cost text, where a role's patterns and
 * a user's status and roles are in the text, a hierarchy entity's parent.
 * Queries read text and blob through the accessors below and never parse
 * JSON or allocate on the hot path.
 *
 * The blob's layout is private to value.c; only the accessors read it. */
#ifndef TENANTCACHED_VALUE_H
#define TENANTCACHED_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "errors.h"
#include "jscan.h"

/* A prepared value. json and derived are owned by the struct: free with
 * value_clear(). derived may be NULL (derived_len 0) when a query needs
 * nothing beyond the text. index_key is the hierarchy parent (the whole of
 * derived), or NULL. The blob is only meaningful with this very text. */
struct value_prepared {
    char *json;
    size_t json_len;
    unsigned char *derived;
    size_t derived_len;
    const char *index_key;
    size_t index_key_len;
};

/* Validates node `value` of a finished scan for shape and fills out:
 * out->json is the node's text without the whitespace between tokens, so
 * numbers and strings keep the form they were written in (docs/reference.md
 * §2). Returns 0, or -1 with a reason such as "credit value must be a number
 * or an object with a number 'cost'" in error[ERROR_MAX] (out is then left
 * empty). Borrows the scan. */
int value_prepare(enum config_shape shape, const struct jscan *scan, uint32_t value,
                  struct value_prepared *out, char *error);

/* The same from JSON text (as a fill from L2 or L3 returns it). */
int value_prepare_text(enum config_shape shape, const char *text, size_t len,
                       struct value_prepared *out, char *error);

void value_clear(struct value_prepared *value);

/* A sequence of strings of a value (in its compact text or its derived
 * blob). Iterate with value_strings_next(). in_text: the strings are read
 * from the text's own list, cursor and end pointing into json; otherwise
 * from the blob's places and copies. */
struct value_strings {
    const char *json;
    size_t json_len;
    const unsigned char *cursor;
    const unsigned char *end;
    uint32_t remaining;
    bool in_text;
};

/* Returns true and sets *str and *len to the next string, or false at the end. */
bool value_strings_next(struct value_strings *strings, const char **str, size_t *len);

/* The accessors read an entry's compact text json[0..json_len) and derived
 * blob together, as value_prepare() made them for the kind's shape; what
 * they return points into either. They never allocate. Each returns 0, or -1
 * if the blob does not fit the text (it was made for another value). */

/* credit: the cost as its shortest exact decimal text ("3.5"). */
int value_credit(const char *json, size_t json_len, const void *derived, size_t derived_len,
                 const char **text, size_t *text_len);

/* role: the permission patterns. */
int value_role_permissions(const char *json, size_t json_len, const void *derived,
                           size_t derived_len, struct value_strings *out);

/* user: the status and the role ids (empty when the value is a plain status). */
int value_user(const char *json, size_t json_len, const void *derived, size_t derived_len,
               const char **status, size_t *status_len, struct value_strings *roles);

/* The same two for a walk that may stop at its first match (CAN): the
 * strings are not walked here but checked one by one as
 * value_strings_next() reaches them, and the first that does not fit the
 * text ends the walk (`remaining` is then only an upper bound, UINT32_MAX
 * when the strings are read from the text's own list). A blob cut short
 * inside the strings is not refused here: the walk ends there. */
int value_role_permissions_lazy(const char *json, size_t json_len, const void *derived,
                                size_t derived_len, struct value_strings *out);
int value_user_lazy(const char *json, size_t json_len, const void *derived, size_t derived_len,
                    const char **status, size_t *status_len, struct value_strings *roles);

/* hierarchy: the parent id (*has_parent false for a root). Cannot fail. */
void value_hierarchy_parent(const void *derived, size_t derived_len, bool *has_parent,
                            const char **parent, size_t *parent_len);

#endif
