/* acl.h - who may read which tenant, from the peer's SO_PEERCRED identity.
 *
 * The `access:` rules of the config map a uid, user name, gid or group name
 * to the tenants the peer may read (a list, or every tenant) and whether it is
 * an admin (FLUSH). A peer matched by several rules gets the union. With no
 * rules at all, every peer reads every tenant and only root and the daemon's
 * own user are admins. With rules, a peer no rule matches may read nothing. */
#ifndef TENANTCACHED_ACL_H
#define TENANTCACHED_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct config;

/* What one peer may do; computed once per connection and per config. */
struct acl_grant {
    bool all_tenants;
    bool admin;
    char **tenants;          /* owned; sorted for bsearch */
    size_t tenant_count;
};

/* Computes the peer's grant under config. Resolves user and group names
 * through NSS (getpwnam_r/getgrnam_r and the peer's supplementary groups). The
 * caller owns out's contents: release with acl_grant_clear(). Cannot fail. */
void acl_grant_compute(const struct config *config, uid_t uid, gid_t gid, struct acl_grant *out);
void acl_grant_clear(struct acl_grant *grant);
bool acl_allows_tenant(const struct acl_grant *grant, const char *tenant, size_t len);

#endif
