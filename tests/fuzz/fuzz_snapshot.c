/* fuzz_snapshot.c - libFuzzer target for snapshot_decode(): any bytes in, a
 * loaded cache or an error out, nothing leaked, nothing read out of bounds.
 *
 * A random file almost never carries a valid checksum, which would stop the
 * fuzzer at the first check; so the input is taken as a snapshot without its
 * trailing checksum, and the target appends the right one
 * (snapshot_checksum()) before decoding. Inputs shorter than the header are decoded
 * as they are.
 *
 *   make fuzz-build && ./build-fuzz/fuzz_snapshot tests/fuzz/corpus/snapshot */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "config.h"
#include "snapshot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct config *config;
    static struct cache *cache;
    if (config == NULL) {
        config = config_defaults(); /* kept for the whole run */
        struct cache_limits limits = {
            .max_bytes = 64u << 20,
            .tenant_max_bytes = 16u << 20,
            .max_tenants = 1000,
            .high_watermark = 0.8,
            .low_watermark = 0.7,
        };
        cache = cache_create(4, &limits);
    }
    unsigned char *file = malloc(size + 8);
    if (file == NULL)
        return 0;
    if (size > 0)
        memcpy(file, data, size);
    uint64_t hash = snapshot_checksum(file, size);
    for (size_t i = 0; i < 8; i++)
        file[size + i] = (unsigned char)(hash >> (8 * i));

    struct snapshot_meta meta;
    char error[ERROR_MAX];
    int64_t loaded = snapshot_decode(config, file, size + 8, cache, 1000, 1700000000000ULL, &meta,
                                     error);
    if (loaded >= 0) {
        for (size_t i = 0; i < meta.publisher_count; i++) {
            if (meta.publishers[i].src == NULL || meta.publishers[i].src[0] == '\0')
                __builtin_trap();
        }
        snapshot_meta_clear(&meta);
        cache_flush(cache, NULL, 0, -1);
    } else if (memchr(error, '\0', sizeof(error)) == NULL) {
        __builtin_trap();
    }
    free(file);
    return 0;
}
