/* perm.c - permission patterns (docs/reference.md §2): validation and matching.
 *
 * Both walk the text once and never allocate: CAN checks every pattern of
 * every role of a user on each query. CAN validates its permission once and
 * then matches it with perm_match_valid(), which walks each pattern alone. */
#include "perm.h"

#include <stdint.h>
#include <string.h>

/* Eight bytes at a time (SWAR): CAN checks its argument on every query. */
#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)
#define LOWS UINT64_C(0x7f7f7f7f7f7f7f7f)

/* 0x80 in each byte of v that is zero, exactly (no borrow between bytes). */
static uint64_t zero_bytes(uint64_t v)
{
    return ~(((v & LOWS) + LOWS) | v | LOWS);
}

/* True if every byte of w is a segment byte or a dot (0x21 to 0x7e), and no
 * two dots are next to each other within w. */
static bool word_valid(uint64_t w)
{
    /* a byte below 0x21, or from 0x7f up */
    if ((((w - ONES * 0x21) & ~w) | ((w + ONES) | w)) & HIGHS)
        return false;
    uint64_t dots = zero_bytes(w ^ (ONES * '.'));
    return (dots & (dots << 8)) == 0;
}

bool perm_valid(const char *text, size_t len)
{
    if (text == NULL || len == 0 || text[0] == '.' || text[len - 1] == '.')
        return false;
    /* Segments separated by single dots: with no dot first or last, it is
     * enough that every byte be printable ASCII without space and that no
     * dot follow a dot. */
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, text + i, sizeof(w));
        if (!word_valid(w) || (i > 0 && text[i - 1] == '.' && text[i] == '.'))
            return false;
    }
    for (; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c < 0x21 || c > 0x7e || (c == '.' && i > 0 && text[i - 1] == '.'))
            return false;
    }
    return true;
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
