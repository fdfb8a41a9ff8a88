/* test_acl.c - acl.c: per-peer grants from the `access:` rules (docs/reference.md §8, §9).
 * Configs come from YAML through config_load_buffer(); identities are real
 * NSS accounts of every Linux system (root 0/0, nobody 65534/nogroup 65534)
 * and an id no account has (4242). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "acl.h"
#include "config.h"
#include "util.h"

#define UNKNOWN_ID 4242

static struct config *load(const char *yaml)
{
    char error[ERROR_MAX] = "";
    struct config *config = config_load_buffer("test.yaml", yaml, strlen(yaml), error);
    ck_assert_msg(config != NULL, "config rejected: %s", error);
    return config;
}

static bool allows(const struct acl_grant *grant, const char *tenant)
{
    return acl_allows_tenant(grant, tenant, strlen(tenant));
}

/* Asserts that the grant lists exactly the tenants of want (NULL-terminated),
 * sorted, not every tenant. */
static void assert_tenants(const struct acl_grant *grant, const char *const *want)
{
    ck_assert(!grant->all_tenants);
    size_t count = 0;
    while (want[count] != NULL)
        count++;
    ck_assert_uint_eq(grant->tenant_count, count);
    for (size_t i = 0; i < count; i++) {
        ck_assert_str_eq(grant->tenants[i], want[i]);
        ck_assert(allows(grant, want[i]));
    }
}

static bool running_as(uid_t uid)
{
    return geteuid() == uid;
}

/* ---- no rules ---- */

START_TEST(test_no_rules_everyone_reads_all)
{
    struct config *config = load("log_level: info\n");
    ck_assert_uint_eq(config->access_count, 0);
    static const struct {
        uid_t uid;
        gid_t gid;
    } peers[] = {{0, 0}, {65534, 65534}, {UNKNOWN_ID, UNKNOWN_ID}, {UNKNOWN_ID, 0}};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(peers); i++) {
        struct acl_grant grant;
        memset(&grant, 0xa5, sizeof(grant));
        acl_grant_compute(config, peers[i].uid, peers[i].gid, &grant);
        ck_assert(grant.all_tenants);
        ck_assert_uint_eq(grant.tenant_count, 0);
        ck_assert_ptr_null(grant.tenants);
        /* Admin: root and the daemon's own user only; never from the group. */
        bool admin = peers[i].uid == 0 || peers[i].uid == geteuid();
        ck_assert_msg(grant.admin == admin, "uid %u admin=%d", (unsigned)peers[i].uid,
                      grant.admin);
        ck_assert(allows(&grant, "acme"));
        ck_assert(allows(&grant, "any.tenant-at_all"));
        acl_grant_clear(&grant);
        ck_assert(!grant.all_tenants);
        ck_assert(!grant.admin);
    }
    /* The daemon's own user is admin even when it is not root. */
    struct acl_grant self;
    acl_grant_compute(config, geteuid(), getegid(), &self);
    ck_assert(self.admin);
    acl_grant_clear(&self);
    /* An empty list is no rules too. */
    struct config *empty = load("access: []\n");
    struct acl_grant grant;
    acl_grant_compute(empty, UNKNOWN_ID, UNKNOWN_ID, &grant);
    ck_assert(grant.all_tenants);
    ck_assert(!grant.admin || running_as(UNKNOWN_ID));
    acl_grant_clear(&grant);
    config_free(empty);
    config_free(config);
}
END_TEST

/* ---- rules ---- */

static const char rules_yaml[] =
    "access:\n"
    "  - {uid: 65534, tenants: [globex, acme]}\n"
    "  - {user: nobody, tenants: [initech]}\n"
    "  - {gid: 0, tenants: [x]}\n"
    "  - {group: root, tenants: [y], admin: true}\n"
    "  - {group: nogroup, tenants: [acme, umbrella], admin: false}\n"
    "  - {user: no-such-user-tc, tenants: \"*\", admin: true}\n"
    "  - {group: no-such-group-tc, tenants: \"*\", admin: true}\n"
    "  - {uid: 4243, tenants: \"*\"}\n";

START_TEST(test_rules_root)
{
    struct config *config = load(rules_yaml);
    ck_assert_uint_eq(config->access_count, 8);
    struct acl_grant grant;
    acl_grant_compute(config, 0, 0, &grant);
    /* gid 0 and group root match: the union, admin from the group rule. */
    static const char *const want[] = {"x", "y", NULL};
    assert_tenants(&grant, want);
    ck_assert(grant.admin);
    ck_assert(!allows(&grant, "acme"));
    ck_assert(!allows(&grant, "initech"));
    acl_grant_clear(&grant);
    config_free(config);
}
END_TEST

START_TEST(test_rules_nobody)
{
    struct config *config = load(rules_yaml);
    struct acl_grant grant;
    acl_grant_compute(config, 65534, 65534, &grant);
    /* uid, user name and group name rules all match; acme is granted twice. */
    ck_assert(!grant.all_tenants);
    ck_assert(!grant.admin);
    static const char *const granted[] = {"acme", "globex", "initech", "umbrella"};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(granted); i++)
        ck_assert_msg(allows(&grant, granted[i]), "%s denied", granted[i]);
    ck_assert(!allows(&grant, "x"));
    ck_assert(!allows(&grant, "y"));
    for (size_t i = 1; i < grant.tenant_count; i++)
        ck_assert_int_le(strcmp(grant.tenants[i - 1], grant.tenants[i]), 0);
    acl_grant_clear(&grant);
    config_free(config);
}
END_TEST

START_TEST(test_rules_unmatched_gets_nothing)
{
    struct config *config = load(rules_yaml);
    struct acl_grant grant;
    acl_grant_compute(config, UNKNOWN_ID, UNKNOWN_ID, &grant);
    ck_assert(!grant.all_tenants);
    ck_assert(!grant.admin);
    ck_assert_uint_eq(grant.tenant_count, 0);
    ck_assert(!allows(&grant, "acme"));
    ck_assert(!allows(&grant, "x"));
    ck_assert(!allows(&grant, ""));
    acl_grant_clear(&grant);

    /* An unknown uid still matches by its primary gid. */
    acl_grant_compute(config, UNKNOWN_ID, 0, &grant);
    static const char *const want[] = {"x", "y", NULL};
    assert_tenants(&grant, want);
    ck_assert(grant.admin);
    acl_grant_clear(&grant);

    /* And by uid: a "*" rule. */
    acl_grant_compute(config, 4243, UNKNOWN_ID, &grant);
    ck_assert(grant.all_tenants);
    ck_assert(!grant.admin);
    ck_assert(allows(&grant, "anything"));
    acl_grant_clear(&grant);
    config_free(config);
}
END_TEST

START_TEST(test_rules_all_tenants_and_admin)
{
    struct config *config = load("access:\n"
                                 "  - {uid: 65534, tenants: [acme, globex]}\n"
                                 "  - {user: nobody, tenants: \"*\", admin: true}\n");
    struct acl_grant grant;
    acl_grant_compute(config, 65534, 65534, &grant);
    ck_assert(grant.all_tenants);
    ck_assert(grant.admin);
    ck_assert(allows(&grant, "acme"));
    ck_assert(allows(&grant, "initech"));
    acl_grant_clear(&grant);
    ck_assert_ptr_null(grant.tenants);
    ck_assert_uint_eq(grant.tenant_count, 0);

    /* With rules, root is not special: no rule matches it. */
    acl_grant_compute(config, 0, 0, &grant);
    ck_assert(!grant.all_tenants);
    ck_assert(!grant.admin);
    ck_assert(!allows(&grant, "acme"));
    acl_grant_clear(&grant);

    /* Admin without tenants. */
    struct config *admin_only = load("access:\n  - {uid: 0, tenants: [], admin: true}\n");
    acl_grant_compute(admin_only, 0, 0, &grant);
    ck_assert(grant.admin);
    ck_assert(!grant.all_tenants);
    ck_assert(!allows(&grant, "acme"));
    acl_grant_clear(&grant);
    config_free(admin_only);
    config_free(config);
}
END_TEST

/* ---- lookups ---- */

START_TEST(test_allows_exact_match_only)
{
    struct config *config = load("access:\n  - {uid: 65534, tenants: [acme, globex, a, acme.eu]}\n");
    struct acl_grant grant;
    acl_grant_compute(config, 65534, 65534, &grant);
    static const char *const want[] = {"a", "acme", "acme.eu", "globex", NULL};
    assert_tenants(&grant, want);
    ck_assert(!allows(&grant, "acm"));    /* a prefix */
    ck_assert(!allows(&grant, "acme2"));  /* an extension */
    ck_assert(!allows(&grant, "acme."));
    ck_assert(!allows(&grant, "ACME"));   /* case matters */
    ck_assert(!allows(&grant, "glob"));
    ck_assert(!allows(&grant, "globexx"));
    ck_assert(!allows(&grant, ""));
    ck_assert(!allows(&grant, "b"));
    ck_assert(!allows(&grant, "0"));
    ck_assert(!allows(&grant, "zzz"));
    /* The name is len bytes of a buffer, not a C string. */
    ck_assert(acl_allows_tenant(&grant, "acmeXYZ", 4));
    ck_assert(acl_allows_tenant(&grant, "acme.eu", 4));
    ck_assert(!acl_allows_tenant(&grant, "acme", 3));
    ck_assert(acl_allows_tenant(&grant, "a", 1));
    /* Embedded NUL: never "acme", and never read past the stored name. */
    ck_assert(!acl_allows_tenant(&grant, "acme\0xy", 7));
    ck_assert(!acl_allows_tenant(&grant, "acme\0", 5));
    ck_assert(!acl_allows_tenant(&grant, "a\0", 2));
    ck_assert(!acl_allows_tenant(&grant, "\0", 1));
    acl_grant_clear(&grant);
    config_free(config);
}
END_TEST

START_TEST(test_allows_many_tenants_sorted)
{
    /* 600 tenants over two rules, listed in a scrambled order. */
    enum { TENANTS = 600 };
    size_t cap = 64 + TENANTS * 16;
    char *yaml = xmalloc(cap);
    size_t len = (size_t)snprintf(yaml, cap, "access:\n  - {uid: 65534, tenants: [");
    for (int i = 0; i < TENANTS / 2; i++) {
        int n = (i * 7919) % (TENANTS / 2);
        len += (size_t)snprintf(yaml + len, cap - len, "%st%04d", i ? ", " : "", n * 2);
    }
    len += (size_t)snprintf(yaml + len, cap - len, "]}\n  - {gid: 65534, tenants: [");
    for (int i = 0; i < TENANTS / 2; i++) {
        int n = (i * 104729) % (TENANTS / 2);
        len += (size_t)snprintf(yaml + len, cap - len, "%st%04d", i ? ", " : "", n * 2 + 1);
    }
    snprintf(yaml + len, cap - len, "]}\n");
    struct config *config = load(yaml);
    free(yaml);

    struct acl_grant grant;
    acl_grant_compute(config, 65534, 65534, &grant);
    ck_assert_uint_eq(grant.tenant_count, TENANTS);
    for (size_t i = 1; i < grant.tenant_count; i++)
        ck_assert_int_lt(strcmp(grant.tenants[i - 1], grant.tenants[i]), 0);
    for (int i = 0; i < TENANTS; i++) {
        char name[16];
        snprintf(name, sizeof(name), "t%04d", i);
        ck_assert_msg(allows(&grant, name), "%s denied", name);
        snprintf(name, sizeof(name), "t%04dx", i);
        ck_assert_msg(!allows(&grant, name), "%s allowed", name);
        snprintf(name, sizeof(name), "t%03d", i);
        if (i >= 100)
            ck_assert_msg(!allows(&grant, name), "%s allowed", name);
    }
    ck_assert(!allows(&grant, "t0600"));
    ck_assert(!allows(&grant, "t"));
    ck_assert(!allows(&grant, "s9999"));
    ck_assert(!allows(&grant, "u0000"));

    /* Only the gid rule: the odd ones. */
    struct acl_grant odd;
    acl_grant_compute(config, UNKNOWN_ID, 65534, &odd);
    ck_assert_uint_eq(odd.tenant_count, TENANTS / 2);
    ck_assert(allows(&odd, "t0001"));
    ck_assert(!allows(&odd, "t0000"));
    ck_assert(allows(&odd, "t0599"));
    ck_assert(!allows(&odd, "t0598"));
    acl_grant_clear(&odd);
    acl_grant_clear(&grant);
    config_free(config);
}
END_TEST

START_TEST(test_grant_outlives_config)
{
    /* A connection keeps its grant across a reload that frees the old config. */
    struct config *config = load("access:\n  - {uid: 65534, tenants: [acme, globex]}\n");
    struct acl_grant grant;
    acl_grant_compute(config, 65534, 65534, &grant);
    config_free(config);
    ck_assert(allows(&grant, "acme"));
    ck_assert(allows(&grant, "globex"));
    ck_assert(!allows(&grant, "initech"));
    acl_grant_clear(&grant);
    acl_grant_clear(&grant); /* twice is harmless */
    ck_assert_uint_eq(grant.tenant_count, 0);
    ck_assert(!allows(&grant, "acme"));
}
END_TEST

static Suite *acl_suite(void)
{
    Suite *suite = suite_create("acl");
    TCase *rules = tcase_create("rules");
    tcase_add_test(rules, test_no_rules_everyone_reads_all);
    tcase_add_test(rules, test_rules_root);
    tcase_add_test(rules, test_rules_nobody);
    tcase_add_test(rules, test_rules_unmatched_gets_nothing);
    tcase_add_test(rules, test_rules_all_tenants_and_admin);
    suite_add_tcase(suite, rules);

    TCase *lookups = tcase_create("lookups");
    tcase_add_test(lookups, test_allows_exact_match_only);
    tcase_add_test(lookups, test_allows_many_tenants_sorted);
    tcase_add_test(lookups, test_grant_outlives_config);
    suite_add_tcase(suite, lookups);
    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(acl_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
