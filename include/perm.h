/* perm.h - permission patterns (docs/reference.md §2).
 *
 * A permission is dot-separated segments ("crm.leads.create"). In a pattern a
 * `*` segment matches exactly one segment, except as the last segment, where
 * it matches one or more; the pattern "*" alone matches every permission.
 * Matching never allocates. */
#ifndef TENANTCACHED_PERM_H
#define TENANTCACHED_PERM_H

#include <stdbool.h>
#include <stddef.h>

/* True if pattern[0..pattern_len) grants permission[0..permission_len). */
bool perm_match(const char *pattern, size_t pattern_len, const char *permission,
                size_t permission_len);

/* The same for a permission that perm_valid() accepted (undefined
 * otherwise): only the pattern is walked, so a command that checks its
 * permission once can match it against many patterns. */
bool perm_match_valid(const char *pattern, size_t pattern_len, const char *permission,
                      size_t permission_len);

/* True if text is a well-formed permission or pattern: non-empty segments of
 * printable non-space ASCII other than '.', separated by single dots. */
bool perm_valid(const char *text, size_t len);

#endif
