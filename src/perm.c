/* perm.c - permission patterns (docs/reference.md §2): validation and matching.
 *
 * Both walk the text once, segment by segment, and never allocate: CAN checks
 * every pattern of every role of a user on each query. */
#include "perm.h"

#include <string.h>

/* A segment byte: printable ASCII without space, and not the separator. */
static bool segment_byte(unsigned char c)
{
    return c >= 0x21 && c <= 0x7e && c != '.';
}

/* Returns the end of the segment starting at s (the next '.' or end), or NULL
 * if the segment is empty or holds a byte that no segment may hold. */
static const char *segment_end(const char *s, const char *end)
{
    const char *p = s;
    while (p < end && *p != '.') {
        if (!segment_byte((unsigned char)*p))
            return NULL;
        p++;
    }
    return p == s ? NULL : p;
}

/* True if s[0..end) is one or more well-formed segments. */
static bool segments_valid(const char *s, const char *end)
{
    for (;;) {
        const char *seg = segment_end(s, end);
        if (seg == NULL)
            return false;
        if (seg == end)
            return true;
        s = seg + 1; /* past the dot; a trailing dot leaves an empty segment */
    }
}

bool perm_valid(const char *text, size_t len)
{
    return text != NULL && len > 0 && segments_valid(text, text + len);
}

/* The walk also checks the permission's bytes, so that a pattern never grants
 * a malformed permission ("crm.*" does not grant "crm..x" or "crm.a b"),
 * whatever the caller validated. */
bool perm_match(const char *pattern, size_t pattern_len, const char *permission,
                size_t permission_len)
{
    if (pattern == NULL || permission == NULL || pattern_len == 0 || permission_len == 0)
        return false;

    const char *p = pattern, *p_end = pattern + pattern_len;
    const char *s = permission, *s_end = permission + permission_len;

    for (;;) {
        const char *p_seg = segment_end(p, p_end);
        if (p_seg == NULL)
            return false;
        bool p_last = p_seg == p_end;
        bool star = p_seg - p == 1 && *p == '*';

        /* A trailing `*` takes all that is left: one or more segments. */
        if (star && p_last)
            return segments_valid(s, s_end);

        const char *s_seg = segment_end(s, s_end);
        if (s_seg == NULL)
            return false;
        if (!star && (s_seg - s != p_seg - p || memcmp(p, s, (size_t)(p_seg - p)) != 0))
            return false;

        bool s_last = s_seg == s_end;
        if (p_last || s_last)
            return p_last && s_last;
        p = p_seg + 1;
        s = s_seg + 1;
    }
}
