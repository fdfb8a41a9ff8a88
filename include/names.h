/* names.h - what a tenant, a key and an entry name may be, in one place.
 *
 * The alphabets of tenants and keys (docs/reference.md §2), checked wherever
 * a name comes in: messages, snapshots, values, queries. And the
 * {tenant}/{kind}/{key} templates: redis.key_format (an entry's L2 key, and
 * the names `GET name` parses back) and origin.url (the L3 request), checked
 * by config.c, expanded by fill.c and origin.c, parsed by commands.c. Pure
 * functions; any thread. */
#ifndef TENANTCACHED_NAMES_H
#define TENANTCACHED_NAMES_H

#include <stdbool.h>
#include <stddef.h>

struct config;

#define NAMES_TENANT_MAX 64
#define NAMES_KEY_MAX 512

/* Tenant: 1-64 bytes of [A-Za-z0-9._-]; key: 1-512 bytes without ASCII
 * control characters or spaces. Neither may be "." or ".." (they would be
 * path segments in an origin URL). NULL is invalid. */
bool names_valid_tenant(const char *tenant, size_t len);
bool names_valid_key(const char *key, size_t len);

/* The placeholders of a template, in this order. */
enum names_part { NAMES_TENANT, NAMES_KIND, NAMES_KEY, NAMES_PARTS };

/* The placeholder text starts with ("{tenant}"...), its length in *len; or
 * -1 when text does not start with one. */
int names_placeholder(const char *text, size_t *len);

/* The placeholder's text for a part ("{tenant}", "{kind}", "{key}"). */
const char *names_placeholder_text(enum names_part part);

/* template with every placeholder replaced by values[part] (lens[part]
 * bytes; a NULL value expands to nothing). Returns a NUL-terminated string
 * the caller frees, its length in *len (may be NULL). Cannot fail. */
char *names_expand(const char *template, const char *const values[NAMES_PARTS],
                   const size_t lens[NAMES_PARTS], size_t *len);

/* Parses a full entry name written with config->redis.key_format (such as
 * "cache:acme:role:admin") into a valid tenant, a configured kind and a
 * valid key. Returns true on a match; the pointers point into name. Reads
 * no byte outside name[0..len). */
bool names_parse_entry(const struct config *config, const char *name, size_t len,
                       const char **tenant, size_t *tenant_len, int *kind, const char **key,
                       size_t *key_len);

#endif
