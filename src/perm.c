/* perm.c - permission patterns (docs/reference.md §2): validation and matching.
 *
 * Both walk the text once and never allocate: CAN checks every pattern of
 * every role of a user on each query. CAN validates its permission once and
 * then matches it with perm_match_valid(), which walks each pattern alone. */
#include "perm.h"

#include <string.h>

bool perm_valid(const char *text, size_t len)
{
    if (text == NULL || len == 0)
        return false;
    /* Segments of printable ASCII without space, separated by single dots:
     * a dot may neither start, end nor follow a dot. */
    bool segment_empty = true;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '.') {
            if (segment_empty)
                return false;
            segment_empty = true;
        } else if (c >= 0x21 && c <= 0x7e) {
            segment_empty = false;
        } else {
            return false;
        }
    }
    return !segment_empty;
}

/* The permission is well formed, so every pattern byte compared equal to it
 * is a segment byte: a malformed pattern (an empty segment, a space) can only
 * fail to match, and nothing of the pattern needs checking beforehand. */
bool perm_match_valid(const char *pattern, size_t pattern_len, const char *permission,
                      size_t permission_len)
{
    if (pattern == NULL || pattern_len == 0)
        return false;
    const char *p = pattern, *p_end = pattern + pattern_len;
    const char *s = permission, *s_end = permission + permission_len;
    /* At the top of the loop p and s start a segment each; s < s_end, since
     * a well-formed permission neither is empty nor ends with a dot. */
    for (;;) {
        if (p == p_end || *p == '.')
            return false; /* an empty pattern segment */
        if (*p == '*' && (p + 1 == p_end || p[1] == '.')) {
            /* A trailing `*` takes all that is left: one or more segments. */
            if (p + 1 == p_end)
                return true;
            /* Otherwise exactly one segment. */
            const char *dot = memchr(s, '.', (size_t)(s_end - s));
            if (dot == NULL)
                return false;
            p += 2;
            s = dot + 1;
            continue;
        }
        while (p < p_end && *p != '.') {
            if (s == s_end || *s != *p)
                return false;
            p++;
            s++;
        }
        /* The pattern's segment ended: the permission's must end with it. */
        if (p == p_end)
            return s == s_end;
        if (s == s_end || *s != '.')
            return false;
        p++;
        s++;
    }
}

bool perm_match(const char *pattern, size_t pattern_len, const char *permission,
                size_t permission_len)
{
    /* A pattern never grants a malformed permission ("crm.*" does not grant
     * "crm..x" or "crm.a b"), whatever the caller validated. */
    return perm_valid(permission, permission_len) &&
           perm_match_valid(pattern, pattern_len, permission, permission_len);
}
