/* jscan_jansson.h - the differential check of jscan against jansson, shared by
 * tests/unit/test_message.c and tests/fuzz/fuzz_message.c.
 *
 * jscan_agrees() scans a text with jscan_parse() and parses it with
 * json_loadb() under the flags the daemon used with jansson; it is true when
 * both refuse it, or both accept it and read the same values (types, decoded
 * strings and keys, integers, reals). Header-only: static functions. */
#ifndef TENANTCACHED_TESTS_JSCAN_JANSSON_H
#define TENANTCACHED_TESTS_JSCAN_JANSSON_H

#include <jansson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "jscan.h"

/* True if node i of scan and v are the same JSON value. */
static bool jscan_same_as_jansson(const struct jscan *scan, uint32_t i, json_t *v)
{
    const struct jscan_node *n = &scan->nodes[i];
    switch ((enum jscan_type)n->type) {
    case JSCAN_OBJECT: {
        if (!json_is_object(v) || json_object_size(v) != n->u.count)
            return false;
        uint32_t key = i + 1;
        for (uint32_t m = 0; m < n->u.count; m++) {
            const char *s;
            size_t len;
            char *owned;
            jscan_string(scan, key, &s, &len, &owned);
            json_t *member = json_object_getn(v, s, len);
            free(owned);
            if (member == NULL || !jscan_same_as_jansson(scan, key + 1, member))
                return false;
            key = scan->nodes[key + 1].next;
        }
        return key == n->next;
    }
    case JSCAN_ARRAY: {
        if (!json_is_array(v) || json_array_size(v) != n->u.count)
            return false;
        uint32_t item = i + 1;
        for (size_t k = 0; k < n->u.count; k++) {
            if (!jscan_same_as_jansson(scan, item, json_array_get(v, k)))
                return false;
            item = scan->nodes[item].next;
        }
        return item == n->next;
    }
    case JSCAN_STRING: {
        const char *s;
        size_t len;
        char *owned;
        jscan_string(scan, i, &s, &len, &owned);
        bool same = json_is_string(v) && json_string_length(v) == len &&
                    memcmp(json_string_value(v), s, len) == 0;
        free(owned);
        return same;
    }
    case JSCAN_INTEGER:
        return json_is_integer(v) && json_integer_value(v) == n->u.integer;
    case JSCAN_REAL:
        return json_is_real(v) && json_real_value(v) == n->u.real;
    case JSCAN_TRUE:
        return json_is_true(v);
    case JSCAN_FALSE:
        return json_is_false(v);
    case JSCAN_NULL:
        return json_is_null(v);
    }
    return false;
}

/* True if jscan and jansson agree on text[0..len) (`any`: JSON_DECODE_ANY). */
static bool jscan_agrees(const char *text, size_t len, bool any)
{
    char error[ERROR_MAX];
    struct jscan scan;
    jscan_init(&scan, NULL, 0);
    bool scanned = jscan_parse(&scan, text, len, any, error) == 0;
    json_t *parsed = json_loadb(text, len, JSON_REJECT_DUPLICATES | (any ? JSON_DECODE_ANY : 0),
                                NULL);
    bool same = scanned ? parsed != NULL && jscan_same_as_jansson(&scan, 0, parsed) &&
                              scan.nodes[0].next == scan.count
                        : parsed == NULL;
    json_decref(parsed);
    jscan_free(&scan);
    return same;
}

#endif
