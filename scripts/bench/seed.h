/* seed.h - the deterministic "seed-typical" tenant data of the benchmarks.
 *
 * Per tenant, as in the seed's memory analysis: 30 credit costs, 10 roles,
 * 50 users, 10 configs, 25 profiles of ~600 bytes, 20 hierarchy entities
 * (145 entries, ~33 KB of key names and JSON values). The same generator
 * feeds Redis (SET cache:{tenant}:{kind}:{key} value) and the daemon
 * (PUBLISH of set messages), so both hold exactly the same data. */
#ifndef BENCH_SEED_H
#define BENCH_SEED_H

#include <stddef.h>
#include <stdint.h>

#define SEED_ENTRIES_PER_TENANT 145u
#define SEED_CHANNEL "tenantcached:invalidate"

struct seed_entry {
    const char *kind;
    char tenant[32];
    char key[64];
    char value[1024];
    size_t value_len;
};

/* "tenant-000123". */
void seed_tenant_name(unsigned tenant, char *out, size_t size);
/* Entry `index` (0..SEED_ENTRIES_PER_TENANT-1) of tenant number `tenant`. */
void seed_entry(unsigned tenant, unsigned index, struct seed_entry *out);
/* The Redis key name of the entry (cache:{tenant}:{kind}:{key}); returns its length. */
size_t seed_redis_key(const struct seed_entry *entry, char *out, size_t size);
/* The set message carrying the entry; returns its length. */
size_t seed_set_message(const struct seed_entry *entry, char *out, size_t size);
/* Flood message number i: a ~150-byte set of a config entry, cycling over
 * 1,000 tenants x 100 keys so that the daemon's memory stays bounded. */
size_t seed_flood_message(uint64_t i, char *out, size_t size);
/* A profile JSON object for (tenant, key) of exactly `len` bytes (len >= 200). */
size_t seed_profile(const char *tenant, const char *key, size_t len, char *out, size_t size);

#endif
