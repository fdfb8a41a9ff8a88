/* fuzz_message.c - libFuzzer target for message_parse(): any bytes in, either a
 * batch or an error out, nothing leaked, nothing read out of bounds. The
 * scanner message_parse() validates with must accept exactly what jansson
 * accepts and read the same values (as an object or array, and as any value,
 * as fills are read). For an accepted payload it also checks each stored
 * value against jansson's own reading of the payload: the text kept is the
 * same JSON value, and what the query accessors read from text and blob is
 * what the value says, through the walks that may stop early (CAN) too.
 *
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -D_GNU_SOURCE \
 *       $(pkg-config --cflags jansson yaml-0.1) tests/fuzz/fuzz_message.c src/message.c \
 *       src/jscan.c src/names.c src/value.c src/perm.c src/config.c src/util.c src/log.c \
 *       $(pkg-config --libs jansson yaml-0.1) -lm -o fuzz_message
 *   ./fuzz_message tests/fuzz/corpus/message */
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../jscan_jansson.h"
#include "config.h"
#include "message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
    if (!ok)
        __builtin_trap();
}

static bool same_string(json_t *string, const char *s, size_t len)
{
    return json_is_string(string) && json_string_length(string) == len &&
           memcmp(json_string_value(string), s, len) == 0;
}

/* Every string of strings equals the array's item at the same index. */
static void check_strings(struct value_strings *strings, json_t *array)
{
    const char *s;
    size_t len, i = 0;
    while (value_strings_next(strings, &s, &len))
        check(same_string(json_array_get(array, i++), s, len));
    check(i == (array != NULL ? json_array_size(array) : 0));
}

/* Checks op's prepared value against want, the operation's `value` as
 * jansson reads it from the whole payload. */
static void check_value(const struct message_operation *op, json_t *want)
{
    const struct value_prepared *v = &op->value;
    json_t *kept = json_loadb(v->json, v->json_len, JSON_DECODE_ANY, NULL);
    check(kept != NULL && json_equal(kept, want));
    json_decref(kept);

    const char *s;
    size_t len;
    struct value_strings strings;
    json_t *object = json_is_object(want) ? want : NULL;
    switch (op->kind) {
    case CONFIG_KIND_CREDIT: {
        check(value_credit(v->json, v->json_len, v->derived, v->derived_len, &s, &len) == 0);
        char *text = strndup(s, len);
        json_t *cost = object != NULL ? json_object_get(object, "cost") : want;
        check(text != NULL && strtod(text, NULL) == json_number_value(cost));
        free(text);
        break;
    }
    case CONFIG_KIND_ROLE:
        check(value_role_permissions(v->json, v->json_len, v->derived, v->derived_len,
                                     &strings) == 0);
        check_strings(&strings, object != NULL ? json_object_get(object, "permissions") : want);
        check(value_role_permissions_lazy(v->json, v->json_len, v->derived, v->derived_len,
                                          &strings) == 0);
        check_strings(&strings, object != NULL ? json_object_get(object, "permissions") : want);
        break;
    case CONFIG_KIND_USER: {
        check(value_user(v->json, v->json_len, v->derived, v->derived_len, &s, &len, &strings) ==
              0);
        check(same_string(object != NULL ? json_object_get(object, "status") : want, s, len));
        json_t *roles = object != NULL ? json_object_get(object, "roles") : NULL;
        check_strings(&strings, json_is_array(roles) ? roles : NULL);
        check(value_user_lazy(v->json, v->json_len, v->derived, v->derived_len, &s, &len,
                              &strings) == 0);
        check(same_string(object != NULL ? json_object_get(object, "status") : want, s, len));
        check_strings(&strings, json_is_array(roles) ? roles : NULL);
        break;
    }
    case CONFIG_KIND_HIERARCHY: {
        bool has;
        value_hierarchy_parent(v->derived, v->derived_len, &has, &s, &len);
        json_t *parent = json_object_get(want, "parent");
        check(has ? same_string(parent, s, len) : parent == NULL || json_is_null(parent));
        break;
    }
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct config *config;
    if (config == NULL)
        config = config_defaults(); /* kept for the whole run */

    check(jscan_agrees((const char *)data, size, false));
    check(jscan_agrees((const char *)data, size, true));

    struct message_batch batch;
    char error[ERROR_MAX];
    if (message_parse(config, (const char *)data, size, &batch, error) == 0) {
        json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
        check(root != NULL);
        /* Touch what apply.c will read, so that a bad pointer shows up here. */
        for (size_t i = 0; i < batch.count; i++) {
            const struct message_operation *op = &batch.operations[i];
            if (op->tenant != NULL && strlen(op->tenant) > op->tenant_len)
                __builtin_trap();
            if (op->key != NULL && !names_valid_key(op->key, op->key_len))
                __builtin_trap();
            if (op->value.json != NULL && strlen(op->value.json) != op->value.json_len)
                __builtin_trap();
            json_t *obj = json_is_array(root) ? json_array_get(root, i) : root;
            if (op->value.json != NULL)
                check_value(op, json_object_get(obj, "value"));
        }
        json_decref(root);
        message_batch_free(&batch);
    } else if (memchr(error, '\0', sizeof(error)) == NULL) {
        __builtin_trap();
    }
    return 0;
}
