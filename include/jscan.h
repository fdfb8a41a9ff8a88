/* jscan.h - a strict single-pass JSON scanner for the message path.
 *
 * jscan_parse() validates a whole JSON text (RFC 8259) and records its values
 * in a flat array of nodes, in document order, without building a tree or
 * copying a string: a node is a value's type, its place in the text and, for
 * a number, its value. It accepts exactly the texts that jansson's
 * json_loadb() accepts with JSON_REJECT_DUPLICATES (and JSON_DECODE_ANY when
 * `any`), so that the message and fill paths refuse what they refused when
 * they parsed with jansson: UTF-8 validated, control characters and "\u0000"
 * refused in strings, surrogate escapes paired, integers within int64, reals
 * finite, nesting at most JSCAN_MAX_DEPTH values deep, no object repeating a
 * key (compared once decoded), and one NUL byte let pass right after a number
 * or a literal as jansson does.
 *
 * The nodes live in the caller's buffer given to jscan_init() (on its stack
 * for the short messages of the stream) and move to the heap only when a text
 * needs more; jscan_free() releases that. Not thread-safe per scan; separate
 * scans on separate threads are independent. */
#ifndef TENANTCACHED_JSCAN_H
#define TENANTCACHED_JSCAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "errors.h"

/* jansson's limit on how deep a value may be nested (the top level is 1). */
#define JSCAN_MAX_DEPTH 2048

enum jscan_type {
    JSCAN_OBJECT,
    JSCAN_ARRAY,
    JSCAN_STRING,
    JSCAN_INTEGER,
    JSCAN_REAL,
    JSCAN_TRUE,
    JSCAN_FALSE,
    JSCAN_NULL,
};

/* One value. An object's children are its members' keys and values in turns
 * (key, value, key, value...), an array's its items; a node's first child,
 * if any, is the next node, and `next` skips the node's whole subtree. */
struct jscan_node {
    uint32_t start;  /* offset of its first byte (a quote, a bracket, a digit...) */
    uint32_t end;    /* offset just past its last byte */
    uint32_t next;   /* index of the node after its subtree: its next sibling */
    uint8_t type;    /* enum jscan_type */
    bool escaped;    /* a string written with a backslash escape */
    union {
        int64_t integer; /* JSCAN_INTEGER */
        double real;     /* JSCAN_REAL */
        uint32_t count;  /* JSCAN_OBJECT (members), JSCAN_ARRAY (items) */
        uint32_t hash;   /* JSCAN_STRING as an object key: of its decoded bytes */
    } u;
};

struct jscan {
    const char *text;
    size_t len;
    struct jscan_node *nodes; /* node 0 is the top-level value */
    size_t count;
    size_t cap;
    bool heap; /* nodes was allocated here (free with jscan_free()) */
};

/* Starts a scan with buf[0..cap) as the first room for nodes. Cannot fail. */
void jscan_init(struct jscan *scan, struct jscan_node *buf, size_t cap);

/* Validates text[0..len) (`any`: any value at the top level, else only an
 * object or an array). Returns 0 with the nodes filled (they point into
 * text, which must outlive them), or -1 with "invalid JSON at byte N: why"
 * in error[ERROR_MAX]. The scan may be used again for another text. */
int jscan_parse(struct jscan *scan, const char *text, size_t len, bool any, char *error);

/* Frees the nodes if they were moved to the heap. The scan may be reused. */
void jscan_free(struct jscan *scan);

/* Writes the decoded bytes of string node i to out, which has room for the
 * string's length in the text; returns how many were written. */
size_t jscan_decode(const struct jscan *scan, uint32_t i, char *out);

/* Sets *s, *len to string node i's decoded bytes: a view into the text when
 * it has no escape (*owned NULL), else a NUL-terminated copy that the caller
 * frees (*owned, also *s). Cannot fail. */
void jscan_string(const struct jscan *scan, uint32_t i, const char **s, size_t *len,
                  char **owned);

/* True if string node i, decoded, is the NUL-terminated name. */
bool jscan_string_is(const struct jscan *scan, uint32_t i, const char *name);

/* The value of object node i's member `name`, or 0 (never a member's index)
 * when it has none. */
uint32_t jscan_member(const struct jscan *scan, uint32_t i, const char *name);

/* A number node's value as a double. */
double jscan_number(const struct jscan *scan, uint32_t i);

#endif
