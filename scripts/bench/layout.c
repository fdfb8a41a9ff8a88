/* layout.c - where a seed-typical entry's bytes go, for `make bench`.
 *
 *   layout
 *
 * Prepares the 145 entries of one seed-typical tenant as the daemon does
 * (value_prepare_text() with the default kinds' shapes and tiers), stores
 * them in a cache of the daemon's own (cache.c) as the apply thread writes
 * them (an expiry from the kind's TTL, no version, and an update time a
 * day after the cache was made: a daemon that has run for a day packs it
 * in 4 bytes, one that has just started in 1-3),
 * and prints, per entry on average: the entry's own key + compact value,
 * the header (cache_entry_header_bytes(): fixed part and packed lengths,
 * times and version), the derived query
 * data, what the allocator adds to an entry of that size (the rounding up
 * to its slab class, a multiple of 8: slab_object_bytes(); for an entry
 * above SLAB_OBJECT_MAX, glibc's size word and rounding to 16 from
 * malloc_usable_size()), and the tenant's
 * tables: what the cache accounts to the tenant beyond its entries' own
 * allocations (its open-addressing table and tags, the hierarchy index and
 * the tenant record). Built against the daemon's own
 * objects; bench.sh subtracts these from the measured bytes per entry to
 * show what is left (the tables every tenant shares, and for RSS the
 * allocator's free space, the slabs' free objects among it). */
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "config.h"
#include "seed.h"
#include "slab.h"
#include "util.h"
#include "value.h"

#define TENANT "tenant-000007"

int main(void)
{
    struct config *config = config_defaults();
    struct cache_limits limits = {.max_bytes = 1ull << 40, .tenant_max_bytes = 1ull << 40,
                                  .max_tenants = 1000, .high_watermark = 1.0,
                                  .low_watermark = 1.0};
    struct cache *cache = cache_create(1, &limits);
    double own = 0, header = 0, derived = 0, slack = 0, allocated = 0;
    uint64_t now_ms = 1000;
    unsigned n = 0;
    for (unsigned i = 0; i < SEED_ENTRIES_PER_TENANT; i++) {
        struct seed_entry e;
        seed_entry(7, i, &e);
        const struct config_kind *kind = NULL;
        unsigned kind_index = 0;
        for (size_t k = 0; k < config->kind_count; k++) {
            if (strcmp(config->kinds[k].name, e.kind) == 0) {
                kind = &config->kinds[k];
                kind_index = (unsigned)k;
            }
        }
        if (kind == NULL) {
            fprintf(stderr, "layout: no kind %s\n", e.kind);
            return 1;
        }
        struct value_prepared v;
        char error[ERROR_MAX];
        if (value_prepare_text(kind->shape, e.value, e.value_len, &v, error) != 0) {
            fprintf(stderr, "layout: %s %s: %s\n", e.kind, e.key, error);
            return 1;
        }
        struct cache_key key = {.tenant = TENANT, .tenant_len = strlen(TENANT),
                                .kind = kind_index, .key = e.key, .key_len = strlen(e.key)};
        struct cache_value value = {.json = v.json, .json_len = v.json_len,
                                    .derived = v.derived, .derived_len = v.derived_len,
                                    .index_key = v.index_key, .index_key_len = v.index_key_len};
        struct cache_write write = {.critical = kind->tier == CONFIG_TIER_CRITICAL,
                                    .expires_ms = kind->ttl_ms ? now_ms + kind->ttl_ms : 0,
                                    .updated_ms = util_realtime_ms() + 86400000};
        if (cache_set(cache, &key, &value, &write, now_ms) != CACHE_OK) {
            fprintf(stderr, "layout: %s %s not cached\n", e.kind, e.key);
            return 1;
        }

        struct cache_reader reader;
        cache_read_begin(cache, TENANT, strlen(TENANT), now_ms, &reader);
        const struct cache_entry *entry = cache_read_find(&reader, kind_index, e.key,
                                                          strlen(e.key));
        if (entry == NULL) {
            cache_read_end(&reader);
            fprintf(stderr, "layout: %s %s not found\n", e.kind, e.key);
            return 1;
        }
        size_t size = cache_entry_allocated_bytes(entry);
        header += (double)cache_entry_header_bytes(entry);
        cache_read_end(&reader);
        size_t held = slab_object_bytes(size);
        if (size > SLAB_OBJECT_MAX) {
            void *block = malloc(size);
            if (block == NULL)
                return 1;
            held = malloc_usable_size(block) + sizeof(size_t);
            free(block);
        }
        slack += (double)(held - size);
        allocated += (double)held;
        own += (double)(strlen(e.key) + v.json_len);
        derived += (double)v.derived_len;
        n++;
        value_clear(&v);
    }
    struct cache_tenant_stats *tenant = malloc(sizeof(*tenant));
    if (tenant == NULL || !cache_tenant_get_stats(cache, TENANT, strlen(TENANT), tenant) ||
        tenant->entries != n) {
        fprintf(stderr, "layout: the tenant is not cached whole\n");
        return 1;
    }
    double tables = ((double)tenant->bytes - allocated) / n;
    printf("entries=%u own=%.1f header=%.1f derived=%.1f alloc=%.1f tables=%.1f\n", n,
           own / n, header / n, derived / n, slack / n, tables);
    free(tenant);
    cache_destroy(cache);
    config_free(config);
    return 0;
}
