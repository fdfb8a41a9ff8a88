/* layout.c - where a seed-typical entry's bytes go, for `make bench`.
 *
 *   layout
 *
 * Prepares the 145 entries of one seed-typical tenant as the daemon does
 * (value_prepare_text() with the default kinds' shapes) and prints, per
 * entry on average: the entry's own key + compact value, the fixed header
 * (cache_entry_header_bytes()), the two NUL terminators, the derived query
 * data, and what glibc adds to an allocation of that size (its size word
 * and the rounding to 16 bytes, from malloc_usable_size()). Built against
 * the daemon's own objects; bench.sh subtracts these from the measured
 * accounted bytes per entry to show what the tables and tenant records take. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "config.h"
#include "seed.h"
#include "value.h"

int main(void)
{
    struct config *config = config_defaults();
    size_t header = cache_entry_header_bytes();
    double own = 0, derived = 0, slack = 0;
    unsigned n = 0;
    for (unsigned i = 0; i < SEED_ENTRIES_PER_TENANT; i++) {
        struct seed_entry e;
        seed_entry(7, i, &e);
        enum config_shape shape = CONFIG_SHAPE_ANY;
        for (size_t k = 0; k < config->kind_count; k++) {
            if (strcmp(config->kinds[k].name, e.kind) == 0)
                shape = config->kinds[k].shape;
        }
        struct value_prepared v;
        char error[ERROR_MAX];
        if (value_prepare_text(shape, e.value, e.value_len, &v, error) != 0) {
            fprintf(stderr, "layout: %s %s: %s\n", e.kind, e.key, error);
            return 1;
        }
        size_t size = header + strlen(e.key) + 2 + v.json_len + v.derived_len;
        void *block = malloc(size);
        if (block == NULL)
            return 1;
        slack += (double)(malloc_usable_size(block) + sizeof(size_t) - size);
        free(block);
        own += (double)(strlen(e.key) + v.json_len);
        derived += (double)v.derived_len;
        n++;
        value_clear(&v);
    }
    printf("entries=%u own=%.1f header=%zu nul=2 derived=%.1f alloc=%.1f\n", n, own / n, header,
           derived / n, slack / n);
    config_free(config);
    return 0;
}
