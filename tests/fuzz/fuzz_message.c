/* fuzz_message.c - libFuzzer target for message_parse(): any bytes in, either a
 * batch or an error out, nothing leaked, nothing read out of bounds.
 *
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -D_GNU_SOURCE \
 *       $(pkg-config --cflags jansson yaml-0.1) tests/fuzz/fuzz_message.c src/message.c \
 *       src/value.c src/perm.c src/config.c src/util.c src/log.c \
 *       $(pkg-config --libs jansson yaml-0.1) -o fuzz_message
 *   ./fuzz_message tests/fuzz/corpus/message */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct config *config;
    if (config == NULL)
        config = config_defaults(); /* kept for the whole run */

    struct message_batch batch;
    char error[ERROR_MAX];
    if (message_parse(config, (const char *)data, size, &batch, error) == 0) {
        /* Touch what apply.c will read, so that a bad pointer shows up here. */
        for (size_t i = 0; i < batch.count; i++) {
            const struct message_operation *op = &batch.operations[i];
            if (op->tenant != NULL && strlen(op->tenant) > op->tenant_len)
                __builtin_trap();
            if (op->key != NULL && !names_valid_key(op->key, op->key_len))
                __builtin_trap();
            if (op->value.json != NULL && strlen(op->value.json) != op->value.json_len)
                __builtin_trap();
        }
        message_batch_free(&batch);
    } else if (memchr(error, '\0', sizeof(error)) == NULL) {
        __builtin_trap();
    }
    return 0;
}
