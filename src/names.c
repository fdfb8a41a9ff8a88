/* names.c - the tenant and key alphabets and the {tenant}/{kind}/{key}
 * templates (see names.h). */
#include "names.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util.h"

/* "." and "..": path segments in an origin URL (docs/reference.md §2). */
static bool dot_segment(const char *text, size_t len)
{
    return (len == 1 && text[0] == '.') || (len == 2 && text[0] == '.' && text[1] == '.');
}

bool names_valid_tenant(const char *tenant, size_t len)
{
    if (tenant == NULL || len == 0 || len > NAMES_TENANT_MAX || dot_segment(tenant, len))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)tenant[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

bool names_valid_key(const char *key, size_t len)
{
    if (key == NULL || len == 0 || len > NAMES_KEY_MAX || dot_segment(key, len))
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c <= 0x20 || c == 0x7f) /* controls (NUL included) and space */
            return false;
    }
    return true;
}

static const char *const placeholders[NAMES_PARTS] = {
    [NAMES_TENANT] = "{tenant}",
    [NAMES_KIND] = "{kind}",
    [NAMES_KEY] = "{key}",
};

int names_placeholder(const char *text, size_t *len)
{
    for (int part = 0; part < NAMES_PARTS; part++) {
        size_t n = strlen(placeholders[part]);
        if (strncmp(text, placeholders[part], n) == 0) {
            *len = n;
            return part;
        }
    }
    return -1;
}

const char *names_placeholder_text(enum names_part part)
{
    return placeholders[part];
}

char *names_expand(const char *template, const char *const values[NAMES_PARTS],
                   const size_t lens[NAMES_PARTS], size_t *len)
{
    size_t size = strlen(template) + 1;
    for (int part = 0; part < NAMES_PARTS; part++)
        size += values[part] != NULL ? lens[part] : 0;
    char *out = xmalloc(size);
    size_t used = 0;
    for (const char *cursor = template; *cursor != '\0';) {
        size_t skip;
        int part = names_placeholder(cursor, &skip);
        if (part < 0) {
            out[used++] = *cursor++;
            continue;
        }
        if (values[part] != NULL) {
            memcpy(out + used, values[part], lens[part]);
            used += lens[part];
        }
        cursor += skip;
    }
    out[used] = '\0';
    if (len != NULL)
        *len = used;
    return out;
}

/* ---- entry names (redis.key_format) ---- */

static bool name_part_valid(const struct config *config, int placeholder, const char *text,
                            size_t len, int *kind)
{
    switch (placeholder) {
    case NAMES_TENANT:
        return names_valid_tenant(text, len);
    case NAMES_KIND:
        *kind = config_kind_find(config, text, len);
        return *kind >= 0;
    default:
        return names_valid_key(text, len);
    }
}

struct name_parts {
    const char *tenant;
    size_t tenant_len;
    int kind;
    const char *key;
    size_t key_len;
};

/* Matches name against format, placeholder by placeholder. A placeholder
 * followed by literal text only ends where that text occurs, which keeps the
 * backtracking short. */
static bool match_name(const struct config *config, const char *format, const char *name,
                       size_t len, struct name_parts *parts)
{
    while (*format != '\0' && *format != '{') {
        if (len == 0 || *name != *format)
            return false;
        format++;
        name++;
        len--;
    }
    if (*format == '\0')
        return len == 0;
    size_t placeholder_len;
    int placeholder = names_placeholder(format, &placeholder_len);
    if (placeholder < 0)
        return false; /* config.c lets no other '{' through */
    const char *rest = format + placeholder_len;
    for (size_t take = 1; take <= len; take++) {
        /* Bounds first: name[take] exists only while take < len, and a
         * literal after the placeholder needs at least one byte there. */
        if (*rest != '\0' && *rest != '{' && (take == len || name[take] != *rest))
            continue;
        if (*rest == '\0' && take != len)
            continue;
        int kind = -1;
        if (!name_part_valid(config, placeholder, name, take, &kind))
            continue;
        if (!match_name(config, rest, name + take, len - take, parts))
            continue;
        if (placeholder == NAMES_TENANT) {
            parts->tenant = name;
            parts->tenant_len = take;
        } else if (placeholder == NAMES_KIND) {
            parts->kind = kind;
        } else {
            parts->key = name;
            parts->key_len = take;
        }
        return true;
    }
    return false;
}

bool names_parse_entry(const struct config *config, const char *name, size_t len,
                       const char **tenant, size_t *tenant_len, int *kind, const char **key,
                       size_t *key_len)
{
    struct name_parts parts = {.kind = -1};
    if (!match_name(config, config->redis.key_format, name, len, &parts))
        return false;
    *tenant = parts.tenant;
    *tenant_len = parts.tenant_len;
    *kind = parts.kind;
    *key = parts.key;
    *key_len = parts.key_len;
    return true;
}
