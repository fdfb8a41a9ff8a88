/* fuzz_config.c - libFuzzer target for the YAML config loader: any bytes in,
 * either a config or a "NAME:LINE:COLUMN: message" error out, nothing leaked,
 * nothing read out of bounds. The input is handed over without a NUL
 * terminator, as config_load() would after reading a file.
 *
 *   make fuzz            (builds build-fuzz/fuzz_config and runs it on a copy
 *                         of tests/fuzz/corpus/config)
 *
 * `password_file:` makes the loader open a path the input names; run the
 * target with stdin from /dev/null so that "/dev/stdin" cannot block it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char error[ERROR_MAX];
    /* An exact-size copy, so that a read past the end is caught by ASan. */
    char *text = malloc(size ? size : 1);
    if (text == NULL)
        return 0;
    if (size)
        memcpy(text, data, size);

    memset(error, 'x', sizeof(error));
    struct config *config = config_load_buffer("fuzz.yaml", text, size, error);
    if (config != NULL) {
        /* What the daemon relies on after a successful load. */
        if (config->shards == 0 || (config->shards & (config->shards - 1)) != 0)
            __builtin_trap();
        if (config->threads == 0 || config->kind_count < CONFIG_BUILTIN_KINDS ||
            config->kind_count > CONFIG_MAX_KINDS)
            __builtin_trap();
        if (config->redis.channels.count == 0 && config->redis.patterns.count == 0)
            __builtin_trap();
        if (!(config->memory.low_watermark < config->memory.high_watermark))
            __builtin_trap();
        if (config->memory.tenant_max_bytes > config->memory.max_bytes)
            __builtin_trap();
        for (size_t i = 0; i < config->kind_count; i++) {
            const char *name = config->kinds[i].name;
            if (name[0] == '\0' || config_kind_find(config, name, strlen(name)) != (int)i)
                __builtin_trap();
        }
        config_free(config);
    } else if (memchr(error, '\0', sizeof(error)) == NULL || error[0] == '\0' ||
               strncmp(error, "fuzz.yaml:", 10) != 0) {
        /* every failure explains itself, prefixed with the name */
        __builtin_trap();
    }
    free(text);
    return 0;
}
