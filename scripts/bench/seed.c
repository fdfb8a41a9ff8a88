/* seed.c - the deterministic seed-typical tenant data (see seed.h). */
#include "seed.h"

#include <stdio.h>
#include <string.h>

#define UPDATED "2024-01-01T10:00:00Z"

static const char *const modules[] = {"crm", "hr", "fin", "ops", "doc", "mkt"};
static const char *const entities[] = {"leads",   "contacts", "deals",  "invoices",  "payroll",
                                       "reports", "tickets",  "files",  "campaigns", "orders"};
static const char *const actions[] = {"create", "read", "update", "delete", "export"};
static const char *const role_names[] = {"admin",   "sales", "support",   "finance", "hr-manager",
                                         "viewer",  "audit", "ops-lead",  "marketing", "developer"};
static const char *const patterns[] = {"crm.*",          "crm.leads.read",   "users.read",
                                       "fin.invoices.*", "hr.*.read",        "reports.read",
                                       "ops.tickets.*",  "doc.files.create", "mkt.campaigns.*",
                                       "fin.payroll.read", "crm.deals.update", "doc.*"};
static const char *const statuses[] = {"active", "active", "active", "active", "inactive",
                                       "suspended"};
static const char *const first_names[] = {"Ada", "Grace", "Linus", "Ken", "Barbara", "Dennis",
                                          "Margaret", "Alan", "Frances", "Edsger"};
static const char *const last_names[] = {"Lovelace", "Hopper", "Torvalds", "Thompson", "Liskov",
                                         "Ritchie", "Hamilton", "Turing", "Allen", "Dijkstra"};
static const char *const departments[] = {"Sales", "Support", "Finance", "Engineering",
                                          "Human Resources", "Marketing"};
static const char *const titles[] = {"Manager", "Engineer", "Analyst", "Director",
                                     "Specialist", "Coordinator"};
static const char *const zones[] = {"Europe/Berlin", "America/New_York", "Asia/Tokyo",
                                    "Europe/London", "America/Sao_Paulo"};
static const char *const lorem =
    "Works across teams on customer onboarding, quarterly planning and the renewal "
    "pipeline; prefers asynchronous updates and weekly summaries. ";

#define LEN(a) (sizeof(a) / sizeof((a)[0]))

/* splitmix64: a deterministic stream per (tenant, index). */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void seed_tenant_name(unsigned tenant, char *out, size_t size)
{
    snprintf(out, size, "tenant-%06u", tenant);
}

/* Appends formatted text at *len, never past size (the values are sized to fit). */
#define APPEND(...)                                                                           \
    do {                                                                                      \
        int n_ = snprintf(out + *len, size - *len, __VA_ARGS__);                              \
        if (n_ > 0)                                                                           \
            *len = *len + (size_t)n_ < size ? *len + (size_t)n_ : size - 1;                   \
    } while (0)

static void role_key(unsigned role, char *out, size_t size)
{
    snprintf(out, size, "role-%02u-%s", role, role_names[role % LEN(role_names)]);
}

static void make_role(uint64_t r, unsigned role, char *out, size_t size, size_t *len)
{
    APPEND("{\"permissions\":[");
    if (role == 0) {
        APPEND("\"*\"");
    } else {
        /* the sales role grants crm.*: the CAN benchmark relies on it */
        unsigned count = 2 + (unsigned)(r % 5);
        if (role == 1)
            APPEND("\"crm.*\",");
        for (unsigned i = 0; i < count; i++)
            APPEND("%s\"%s\"", i ? "," : "", patterns[(role * 3 + i * 5) % LEN(patterns)]);
    }
    APPEND("],\"updated_at\":\"" UPDATED "\"}");
}

static void make_user(uint64_t r, unsigned user, char *out, size_t size, size_t *len)
{
    /* user 7 is always an active sales user: the CAN benchmark asks about it */
    const char *status = user == 7 ? "active" : statuses[r % LEN(statuses)];
    unsigned first = user == 7 ? 1 : 1 + (unsigned)((r >> 8) % 9);
    char a[32], b[32];
    role_key(first, a, sizeof(a));
    role_key(1 + (unsigned)((r >> 16) % 9), b, sizeof(b));
    APPEND("{\"status\":\"%s\",\"roles\":[\"%s\",\"%s\"],\"updated_at\":\"" UPDATED "\"}", status,
           a, b);
}

size_t seed_profile(const char *tenant, const char *key, size_t len, char *out, size_t size)
{
    uint64_t r = mix(strlen(tenant) * 131u + (uint64_t)key[strlen(key) - 1]);
    for (const char *p = key; *p; p++)
        r = mix(r ^ (uint64_t)(unsigned char)*p);
    size_t used = 0;
    size_t *lenp = &used;
#define PAPPEND(...)                                                                          \
    do {                                                                                      \
        int n_ = snprintf(out + *lenp, size - *lenp, __VA_ARGS__);                            \
        if (n_ > 0)                                                                           \
            *lenp = *lenp + (size_t)n_ < size ? *lenp + (size_t)n_ : size - 1;                \
    } while (0)
    PAPPEND("{\"id\":\"%s\",\"name\":\"%s %s\",\"email\":\"%s@%s.example.com\","
            "\"department\":\"%s\",\"title\":\"%s\","
            "\"avatar\":\"https://cdn.example.com/avatars/%s/%s.png\",\"locale\":\"en-US\","
            "\"timezone\":\"%s\",\"preferences\":{\"theme\":\"%s\",\"notifications\":"
            "{\"email\":true,\"sms\":false,\"push\":%s},\"dashboard\":[\"leads\",\"deals\","
            "\"tasks\"]},\"bio\":\"",
            key, first_names[r % LEN(first_names)], last_names[(r >> 8) % LEN(last_names)], key,
            tenant, departments[(r >> 16) % LEN(departments)], titles[(r >> 24) % LEN(titles)],
            tenant, key, zones[(r >> 32) % LEN(zones)], (r >> 40) & 1 ? "dark" : "light",
            (r >> 41) & 1 ? "true" : "false");
#undef PAPPEND
    /* the bio pads the object to exactly len bytes */
    size_t lorem_len = strlen(lorem);
    while (used + 2 < len && used + 3 < size) {
        out[used] = lorem[used % lorem_len];
        used++;
    }
    if (used + 3 <= size) {
        out[used++] = '"';
        out[used++] = '}';
    }
    out[used] = '\0';
    return used;
}

void seed_entry(unsigned tenant, unsigned index, struct seed_entry *e)
{
    uint64_t r = mix(((uint64_t)tenant << 32) | index);
    seed_tenant_name(tenant, e->tenant, sizeof(e->tenant));
    char *out = e->value;
    size_t size = sizeof(e->value);
    size_t used = 0;
    size_t *len = &used;
    if (index < 30) { /* credit costs */
        unsigned i = index;
        e->kind = "credit";
        snprintf(e->key, sizeof(e->key), "%s.%s.%s", modules[i % 6], entities[i % 10],
                 actions[i % 5]);
        APPEND("{\"cost\":%g,\"currency\":\"credits\",\"updated_at\":\"" UPDATED "\"}",
               0.5 * (double)(1 + r % 24));
    } else if (index < 40) { /* roles */
        unsigned i = index - 30;
        e->kind = "role";
        role_key(i, e->key, sizeof(e->key));
        make_role(r, i, out, size, len);
    } else if (index < 90) { /* users */
        unsigned i = index - 40;
        e->kind = "user";
        snprintf(e->key, sizeof(e->key), "user-%05u", i);
        make_user(r, i, out, size, len);
    } else if (index < 100) { /* configs */
        unsigned i = index - 90;
        e->kind = "config";
        snprintf(e->key, sizeof(e->key), "cfg-feature-%02u", i);
        APPEND("{\"enabled\":%s,\"rollout\":%u,\"limits\":{\"daily\":%u,\"burst\":%u},"
               "\"variant\":\"%c\",\"updated_at\":\"" UPDATED "\"}",
               r & 1 ? "true" : "false", (unsigned)(r % 101), 100u * (unsigned)(1 + (r >> 8) % 50),
               (unsigned)(1 + (r >> 16) % 100), (char)('a' + (r >> 24) % 4));
    } else if (index < 125) { /* profiles, ~600 bytes */
        unsigned i = index - 100;
        e->kind = "profile";
        snprintf(e->key, sizeof(e->key), "user-%05u", i);
        used = seed_profile(e->tenant, e->key, 560 + (size_t)(r % 81), out, size);
    } else { /* hierarchy: org-main <- dept-01..04 <- team-05..19 */
        unsigned i = index - 125;
        e->kind = "hierarchy";
        if (i == 0) {
            snprintf(e->key, sizeof(e->key), "org-main");
            APPEND("{\"name\":\"Main Organisation\",\"path\":\"org-main\",\"type\":\"org\"}");
        } else if (i < 5) {
            snprintf(e->key, sizeof(e->key), "dept-%02u", i);
            APPEND("{\"parent\":\"org-main\",\"name\":\"%s Department\",\"path\":\"org-main.dept-%02u\","
                   "\"type\":\"department\"}",
                   departments[i % LEN(departments)], i);
        } else {
            unsigned dept = 1 + i % 4;
            snprintf(e->key, sizeof(e->key), "team-%02u", i);
            APPEND("{\"parent\":\"dept-%02u\",\"name\":\"Team %02u\",\"path\":\"org-main.dept-%02u."
                   "team-%02u\",\"type\":\"team\"}",
                   dept, i, dept, i);
        }
    }
    e->value_len = used;
}

size_t seed_redis_key(const struct seed_entry *e, char *out, size_t size)
{
    int n = snprintf(out, size, "cache:%s:%s:%s", e->tenant, e->kind, e->key);
    return n > 0 ? (size_t)n : 0;
}

size_t seed_set_message(const struct seed_entry *e, char *out, size_t size)
{
    int n = snprintf(out, size, "{\"op\":\"set\",\"tenant\":\"%s\",\"kind\":\"%s\",\"key\":\"%s\",\"value\":%s}",
                     e->tenant, e->kind, e->key, e->value);
    return n > 0 ? (size_t)n : 0;
}

size_t seed_flood_message(uint64_t i, char *out, size_t size)
{
    uint64_t r = mix(i);
    int n = snprintf(out, size,
                     "{\"op\":\"set\",\"tenant\":\"tenant-%06u\",\"kind\":\"config\",\"key\":"
                     "\"flood-%03u\",\"value\":{\"enabled\":%s,\"rollout\":%3u,\"limit\":%6u,"
                     "\"variant\":\"%c\",\"n\":%10llu}}",
                     (unsigned)(i % 1000), (unsigned)((i / 1000) % 100), r & 1 ? "true" : "false",
                     (unsigned)(r % 101), (unsigned)((r >> 8) % 1000000),
                     (char)('a' + (r >> 32) % 4), (unsigned long long)i);
    return n > 0 ? (size_t)n : 0;
}
