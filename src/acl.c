/* acl.c - per-peer grants from the `access:` rules (see acl.h). */
#include "acl.h"

#include <grp.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

#define MAX_GROUPS 256

/* The peer's user name and every group it belongs to (primary and
 * supplementary), looked up once per grant. */
struct peer_identity {
    uid_t uid;
    gid_t groups[MAX_GROUPS];
    int group_count;
    bool has_name;
    char name[256];
};

static void peer_resolve(uid_t uid, gid_t gid, struct peer_identity *peer)
{
    peer->uid = uid;
    peer->groups[0] = gid;
    peer->group_count = 1;
    peer->has_name = false;
    char buffer[4096];
    struct passwd entry, *found = NULL;
    if (getpwuid_r(uid, &entry, buffer, sizeof(buffer), &found) != 0 || found == NULL)
        return;
    size_t len = strlen(found->pw_name);
    if (len >= sizeof(peer->name))
        return;
    memcpy(peer->name, found->pw_name, len + 1);
    peer->has_name = true;
    int count = MAX_GROUPS;
    if (getgrouplist(peer->name, gid, peer->groups, &count) >= 0)
        peer->group_count = count;
}

static bool peer_in_group(const struct peer_identity *peer, gid_t gid)
{
    for (int i = 0; i < peer->group_count; i++) {
        if (peer->groups[i] == gid)
            return true;
    }
    return false;
}

static bool rule_matches(const struct config_access_rule *rule, const struct peer_identity *peer)
{
    char buffer[4096];
    switch (rule->match) {
    case CONFIG_ACCESS_UID:
        return peer->uid == (uid_t)rule->id;
    case CONFIG_ACCESS_USER:
        return peer->has_name && strcmp(peer->name, rule->name) == 0;
    case CONFIG_ACCESS_GID:
        return peer_in_group(peer, (gid_t)rule->id);
    case CONFIG_ACCESS_GROUP: {
        struct group entry, *found = NULL;
        if (getgrnam_r(rule->name, &entry, buffer, sizeof(buffer), &found) != 0 || found == NULL)
            return false;
        return peer_in_group(peer, found->gr_gid);
    }
    }
    return false;
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void acl_grant_compute(const struct config *config, uid_t uid, gid_t gid, struct acl_grant *out)
{
    memset(out, 0, sizeof(*out));
    if (config->access_count == 0) {
        out->all_tenants = true;
        out->admin = uid == 0 || uid == geteuid();
        return;
    }
    struct peer_identity peer;
    peer_resolve(uid, gid, &peer);
    size_t capacity = 0;
    for (size_t r = 0; r < config->access_count; r++) {
        const struct config_access_rule *rule = &config->access[r];
        if (!rule_matches(rule, &peer))
            continue;
        out->admin |= rule->admin;
        if (rule->all_tenants) {
            out->all_tenants = true;
            continue;
        }
        for (size_t t = 0; t < rule->tenants.count; t++) {
            if (out->tenant_count == capacity) {
                capacity = capacity ? capacity * 2 : 8;
                out->tenants = xrealloc(out->tenants, capacity * sizeof(*out->tenants));
            }
            out->tenants[out->tenant_count++] = xstrdup(rule->tenants.items[t]);
        }
    }
    if (out->tenant_count > 1)
        qsort(out->tenants, out->tenant_count, sizeof(*out->tenants), compare_names);
}

void acl_grant_clear(struct acl_grant *grant)
{
    for (size_t i = 0; i < grant->tenant_count; i++)
        free(grant->tenants[i]);
    free(grant->tenants);
    memset(grant, 0, sizeof(*grant));
}

bool acl_allows_tenant(const struct acl_grant *grant, const char *tenant, size_t len)
{
    if (grant->all_tenants)
        return true;
    size_t low = 0, high = grant->tenant_count;
    while (low < high) {
        size_t middle = low + (high - low) / 2;
        /* tenant is len bytes from a client, not a C string (it may hold a
         * NUL): compare bytes, then lengths, in strcmp's order. */
        const char *name = grant->tenants[middle];
        size_t name_len = strlen(name);
        int order = memcmp(name, tenant, name_len < len ? name_len : len);
        if (order == 0)
            order = name_len < len ? -1 : name_len > len ? 1 : 0;
        if (order == 0)
            return true;
        if (order < 0)
            low = middle + 1;
        else
            high = middle;
    }
    return false;
}
