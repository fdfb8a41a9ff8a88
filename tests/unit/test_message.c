/* test_message.c - invalidation messages (docs/reference.md §3): every op, field, type and
 * boundary; batches rejected whole; kind dispositions; timestamps; limits. */
#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../jscan_jansson.h"
#include "config.h"
#include "message.h"
#include "util.h"

static struct config *defaults;

static void setup(void)
{
    defaults = config_defaults();
}

static void teardown(void)
{
    config_free(defaults);
    defaults = NULL;
}

static struct config *load_config(const char *yaml)
{
    char error[ERROR_MAX] = "";
    struct config *config = config_load_buffer("test.yaml", yaml, strlen(yaml), error);
    ck_assert_msg(config != NULL, "config: %s", error);
    return config;
}

/* Parses text with config; asserts success and returns the batch. */
static struct message_batch parse_ok_with(const struct config *config, const char *text)
{
    struct message_batch batch;
    char error[ERROR_MAX] = "";
    int rc = message_parse(config, text, strlen(text), &batch, error);
    ck_assert_msg(rc == 0, "%s rejected: %s", text, error);
    ck_assert_uint_ge(batch.count, 1);
    ck_assert_ptr_nonnull(batch.operations);
    return batch;
}

static struct message_batch parse_ok(const char *text)
{
    return parse_ok_with(defaults, text);
}

/* Asserts that text is rejected with an error containing want (NULL: any),
 * and that the batch is left empty. */
static void parse_bad_with(const struct config *config, const char *text, size_t len,
                           const char *want)
{
    struct message_batch batch = {(struct message_operation *)0x1, 99};
    char error[ERROR_MAX] = "";
    int rc = message_parse(config, text, len, &batch, error);
    ck_assert_msg(rc == -1, "%.200s accepted", text);
    ck_assert_ptr_null(batch.operations);
    ck_assert_uint_eq(batch.count, 0);
    ck_assert_msg(error[0] != '\0', "%.200s: no error text", text);
    if (want != NULL)
        ck_assert_msg(strstr(error, want) != NULL, "%.200s: error '%s' lacks '%s'", text,
                      error, want);
}

static void parse_bad(const char *text, const char *want)
{
    parse_bad_with(defaults, text, strlen(text), want);
}

/* Every op */

START_TEST(test_set)
{
    struct message_batch b = parse_ok("{\"op\":\"set\",\"tenant\":\"acme\",\"kind\":\"credit\","
                                      "\"key\":\"lead.create\",\"value\":3.5,\"version\":7,"
                                      "\"ts\":\"2024-01-01T10:00:00Z\",\"src\":\"billing-1\","
                                      "\"seq\":42,\"extra\":{\"ignored\":true}}");
    ck_assert_uint_eq(b.count, 1);
    struct message_operation *op = &b.operations[0];
    ck_assert_int_eq(op->op, MESSAGE_SET);
    ck_assert_int_eq(op->disposition, MESSAGE_APPLY);
    ck_assert_str_eq(op->tenant, "acme");
    ck_assert_uint_eq(op->tenant_len, 4);
    ck_assert_int_eq(op->kind, CONFIG_KIND_CREDIT);
    ck_assert_str_eq(op->key, "lead.create");
    ck_assert_uint_eq(op->key_len, 11);
    ck_assert_str_eq(op->value.json, "3.5");
    const char *text;
    size_t text_len;
    ck_assert_int_eq(value_credit(op->value.json, op->value.json_len, op->value.derived,
                                  op->value.derived_len, &text, &text_len),
                     0);
    ck_assert_uint_eq(text_len, 3);
    ck_assert_mem_eq(text, "3.5", 3);
    ck_assert(op->has_version);
    ck_assert_uint_eq(op->version, 7);
    ck_assert(op->has_ts);
    ck_assert_uint_eq(op->ts_ms, 1704103200000ull);
    ck_assert_str_eq(op->src, "billing-1");
    ck_assert(op->has_seq);
    ck_assert_uint_eq(op->seq, 42);
    message_batch_free(&b);
    ck_assert_ptr_null(b.operations);
    ck_assert_uint_eq(b.count, 0);
}
END_TEST

START_TEST(test_set_minimal)
{
    struct message_batch b =
        parse_ok("{\"op\":\"set\",\"tenant\":\"t\",\"kind\":\"config\",\"key\":\"k\",\"value\":null}");
    struct message_operation *op = &b.operations[0];
    ck_assert_int_eq(op->kind, CONFIG_KIND_CONFIG);
    ck_assert_str_eq(op->value.json, "null");
    ck_assert(!op->has_version);
    ck_assert(!op->has_ts);
    ck_assert(!op->has_seq);
    ck_assert_ptr_null(op->src);
    message_batch_free(&b);
}
END_TEST

START_TEST(test_del_invalidate)
{
    struct message_batch b =
        parse_ok("[{\"op\":\"del\",\"tenant\":\"acme\",\"kind\":\"role\",\"key\":\"admin\","
                 "\"version\":3},"
                 "{\"op\":\"invalidate\",\"tenant\":\"acme\",\"kind\":\"user\",\"key\":\"u1\","
                 "\"value\":\"ignored for invalidate\"}]");
    ck_assert_uint_eq(b.count, 2);
    ck_assert_int_eq(b.operations[0].op, MESSAGE_DEL);
    ck_assert_int_eq(b.operations[0].kind, CONFIG_KIND_ROLE);
    ck_assert_str_eq(b.operations[0].key, "admin");
    ck_assert_uint_eq(b.operations[0].version, 3);
    ck_assert_ptr_null(b.operations[0].value.json);
    ck_assert_int_eq(b.operations[1].op, MESSAGE_INVALIDATE);
    ck_assert_int_eq(b.operations[1].kind, CONFIG_KIND_USER);
    ck_assert_str_eq(b.operations[1].key, "u1");
    ck_assert_ptr_null(b.operations[1].value.json);
    message_batch_free(&b);
}
END_TEST

START_TEST(test_flush)
{
    struct message_batch b = parse_ok("[{\"op\":\"flush\",\"tenant\":\"acme\"},"
                                      "{\"op\":\"flush\",\"tenant\":\"acme\",\"kind\":\"profile\"},"
                                      "{\"op\":\"flush\",\"tenant\":\"*\"},"
                                      "{\"op\":\"flush\",\"tenant\":\"*\",\"kind\":\"audit\"}]");
    ck_assert_uint_eq(b.count, 4);
    for (size_t i = 0; i < 4; i++) {
        ck_assert_int_eq(b.operations[i].op, MESSAGE_FLUSH);
        ck_assert_int_eq(b.operations[i].disposition, MESSAGE_APPLY);
        ck_assert_ptr_null(b.operations[i].key);
    }
    ck_assert_int_eq(b.operations[0].kind, -1);
    ck_assert_str_eq(b.operations[0].tenant, "acme");
    ck_assert_int_eq(b.operations[1].kind, CONFIG_KIND_PROFILE);
    ck_assert_str_eq(b.operations[2].tenant, "*");
    ck_assert_uint_eq(b.operations[2].tenant_len, 1);
    ck_assert_int_eq(b.operations[2].kind, -1);
    ck_assert_int_eq(b.operations[3].kind, CONFIG_KIND_AUDIT);
    message_batch_free(&b);
}
END_TEST

START_TEST(test_heartbeat)
{
    struct message_batch b = parse_ok("{\"op\":\"heartbeat\",\"src\":\"pub-1\",\"seq\":9}");
    struct message_operation *op = &b.operations[0];
    ck_assert_int_eq(op->op, MESSAGE_HEARTBEAT);
    ck_assert_int_eq(op->disposition, MESSAGE_APPLY);
    ck_assert_ptr_null(op->tenant);
    ck_assert_ptr_null(op->key);
    ck_assert_int_eq(op->kind, -1);
    ck_assert_str_eq(op->src, "pub-1");
    ck_assert_uint_eq(op->seq, 9);
    message_batch_free(&b);

    /* a tenant on a heartbeat is not used, whatever it holds */
    b = parse_ok("{\"op\":\"heartbeat\",\"src\":\"p\",\"seq\":1,\"tenant\":\"a:b\"}");
    ck_assert_ptr_null(b.operations[0].tenant);
    message_batch_free(&b);

    parse_bad("{\"op\":\"heartbeat\",\"seq\":1}", "field 'src' is required");
    parse_bad("{\"op\":\"heartbeat\",\"src\":\"p\"}", "field 'seq' is required");
    parse_bad("{\"op\":\"heartbeat\"}", "is required");
}
END_TEST

/* Missing fields */

START_TEST(test_missing_fields)
{
    parse_bad("{}", "field 'op' is required");
    parse_bad("{\"tenant\":\"a\",\"kind\":\"credit\",\"key\":\"k\",\"value\":1}",
              "field 'op' is required");

    static const char *const keyed[] = {"set", "del", "invalidate"};
    char text[256];
    for (size_t i = 0; i < UTIL_ARRAY_LEN(keyed); i++) {
        const char *value = strcmp(keyed[i], "set") == 0 ? ",\"value\":1" : "";
        snprintf(text, sizeof(text), "{\"op\":\"%s\",\"kind\":\"credit\",\"key\":\"k\"%s}",
                 keyed[i], value);
        parse_bad(text, "field 'tenant' is required");
        snprintf(text, sizeof(text), "{\"op\":\"%s\",\"tenant\":\"a\",\"key\":\"k\"%s}", keyed[i],
                 value);
        parse_bad(text, "field 'kind' is required");
        snprintf(text, sizeof(text), "{\"op\":\"%s\",\"tenant\":\"a\",\"kind\":\"credit\"%s}",
                 keyed[i], value);
        parse_bad(text, "field 'key' is required");
    }
    parse_bad("{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"credit\",\"key\":\"k\"}",
              "field 'value' is required");
    /* value is required even when the kind is unknown */
    parse_bad("{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"nosuch\",\"key\":\"k\"}",
              "field 'value' is required");
    parse_bad("{\"op\":\"flush\"}", "field 'tenant' is required");
    parse_bad("{\"op\":\"flush\",\"kind\":\"credit\"}", "field 'tenant' is required");
}
END_TEST

/* Wrong types */

START_TEST(test_wrong_types)
{
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"{\"op\":1}", "field 'op' must be a string"},
        {"{\"op\":null}", "field 'op' must be a string"},
        {"{\"op\":\"put\"}", "field 'op' must be one of"},
        {"{\"op\":\"SET\"}", "field 'op' must be one of"},
        {"{\"op\":\"set\",\"tenant\":1,\"kind\":\"credit\",\"key\":\"k\",\"value\":1}",
         "field 'tenant' must be a string"},
        {"{\"op\":\"set\",\"tenant\":\"a\",\"kind\":[],\"key\":\"k\",\"value\":1}",
         "field 'kind' must be a string"},
        {"{\"op\":\"flush\",\"tenant\":\"a\",\"kind\":2}", "field 'kind' must be a string"},
        {"{\"op\":\"del\",\"tenant\":\"a\",\"kind\":\"\",\"key\":\"k\"}",
         "field 'kind' must not be empty"},
        {"{\"op\":\"del\",\"tenant\":\"a\",\"kind\":\"credit\",\"key\":{}}",
         "field 'key' must be a string"},
        {"{\"op\":\"del\",\"tenant\":\"a\",\"kind\":\"credit\",\"key\":\"k\",\"version\":\"1\"}",
         "field 'version' must be a non-negative integer"},
        {"{\"op\":\"del\",\"tenant\":\"a\",\"kind\":\"credit\",\"key\":\"k\",\"version\":1.0}",
         "field 'version' must be a non-negative integer"},
        {"{\"op\":\"del\",\"tenant\":\"a\",\"kind\":\"credit\",\"key\":\"k\",\"version\":-1}",
         "field 'version' must be a non-negative integer"},
        {"{\"op\":\"del\",\"tenant\":\"a\",\"kind\":\"credit\",\"key\":\"k\",\"version\":null}",
         "field 'version' must be a non-negative integer"},
        {"{\"op\":\"del\",\"tenant\":\"a\",\"kind\":\"credit\",\"key\":\"k\",\"ts\":1704103200}",
         "field 'ts' must be a string"},
        {"{\"op\":\"del\",\"tenant\":\"a\",\"kind\":\"credit\",\"key\":\"k\",\"src\":5,\"seq\":1}",
         "field 'src' must be a string"},
        {"{\"op\":\"del\",\"tenant\":\"a\",\"kind\":\"credit\",\"key\":\"k\",\"src\":\"s\","
         "\"seq\":\"1\"}",
         "field 'seq' must be a positive integer"},
        {"{\"op\":\"del\",\"tenant\":\"a\",\"kind\":\"credit\",\"key\":\"k\",\"src\":\"s\","
         "\"seq\":2.5}",
         "field 'seq' must be a positive integer"},
        {"{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"credit\",\"key\":\"k\",\"value\":\"3\"}",
         "field 'value': credit value must be a number"},
        {"{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"role\",\"key\":\"k\",\"value\":[1]}",
         "field 'value': role permissions must be an array of strings"},
        {"{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"profile\",\"key\":\"k\",\"value\":[]}",
         "field 'value': value must be a JSON object"},
        {"[1]", "batch[0]: operation must be a JSON object"},
        {"[{\"op\":\"flush\",\"tenant\":\"a\"},\"x\"]", "batch[1]: operation must be a JSON object"},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++)
        parse_bad(cases[i].text, cases[i].want);
}
END_TEST

/* The error names the element of a batch and the field. */
START_TEST(test_error_names_index)
{
    const char *text = "[{\"op\":\"flush\",\"tenant\":\"a\"},{\"op\":\"flush\",\"tenant\":\"a\"},"
                       "{\"op\":\"flush\",\"tenant\":\"a\"},"
                       "{\"op\":\"del\",\"tenant\":\"a\",\"kind\":\"role\",\"key\":\"k\","
                       "\"version\":-4}]";
    struct message_batch b;
    char error[ERROR_MAX];
    ck_assert_int_eq(message_parse(defaults, text, strlen(text), &b, error), -1);
    ck_assert_str_eq(error, "batch[3]: field 'version' must be a non-negative integer");

    /* a single object carries no index */
    text = "{\"op\":\"del\",\"tenant\":\"a\",\"kind\":\"role\",\"key\":\"k\",\"version\":-4}";
    ck_assert_int_eq(message_parse(defaults, text, strlen(text), &b, error), -1);
    ck_assert_str_eq(error, "field 'version' must be a non-negative integer");
}
END_TEST

/* A batch whose third element is bad returns nothing at all, even though the
 * first two (one with a prepared value) were fine. */
START_TEST(test_batch_rejected_whole)
{
    parse_bad("[{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"role\",\"key\":\"admin\","
              "\"value\":[\"crm.*\"]},"
              "{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"user\",\"key\":\"u\",\"value\":\"active\","
              "\"src\":\"s\",\"seq\":1},"
              "{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"credit\",\"key\":\"c\",\"value\":\"x\"},"
              "{\"op\":\"flush\",\"tenant\":\"a\"}]",
              "batch[2]: field 'value': credit value must be a number");
}
END_TEST

START_TEST(test_batch_order)
{
    struct message_batch b = parse_ok("[{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"user\","
                                      "\"key\":\"u1\",\"value\":\"active\"},"
                                      "{\"op\":\"del\",\"tenant\":\"b\",\"kind\":\"user\",\"key\":\"u2\"},"
                                      "{\"op\":\"invalidate\",\"tenant\":\"c\",\"kind\":\"user\","
                                      "\"key\":\"u3\"}]");
    ck_assert_uint_eq(b.count, 3);
    ck_assert_str_eq(b.operations[0].tenant, "a");
    ck_assert_str_eq(b.operations[1].tenant, "b");
    ck_assert_str_eq(b.operations[2].tenant, "c");
    message_batch_free(&b);
}
END_TEST

START_TEST(test_top_level)
{
    parse_bad("[]", "empty batch");
    parse_bad("[ ]", "empty batch");
    parse_bad("3", "invalid JSON");
    parse_bad("\"set\"", "invalid JSON");
    parse_bad("null", "invalid JSON");
    parse_bad("", "invalid JSON");
    parse_bad("{\"op\":\"flush\",\"tenant\":\"a\"} x", "invalid JSON");
    parse_bad("{\"op\":\"flush\",\"tenant\":\"a\"", "invalid JSON");
    parse_bad("{\"op\":\"flush\",\"tenant\":\"a\",\"tenant\":\"b\"}", "duplicate");
    /* the length is honoured, not the NUL */
    const char *text = "{\"op\":\"flush\",\"tenant\":\"a\"}garbage";
    struct message_batch b;
    char error[ERROR_MAX];
    size_t len = strlen(text) - strlen("garbage");
    ck_assert_int_eq(message_parse(defaults, text, len, &b, error), 0);
    message_batch_free(&b);
    parse_bad_with(defaults, text, len - 1, "invalid JSON");
    parse_bad_with(defaults, text, len + 1, "invalid JSON");
}
END_TEST

/* Tenant and key alphabets and lengths */

static void set_text(char *out, size_t size, const char *tenant, const char *key)
{
    snprintf(out, size, "{\"op\":\"set\",\"tenant\":\"%s\",\"kind\":\"config\",\"key\":\"%s\","
                        "\"value\":1}",
             tenant, key);
}

START_TEST(test_tenant_alphabet)
{
    char text[2048], tenant[80];
    struct message_batch b;

    memset(tenant, 'x', 64);
    tenant[64] = '\0';
    set_text(text, sizeof(text), tenant, "k");
    b = parse_ok(text);
    ck_assert_uint_eq(b.operations[0].tenant_len, 64);
    message_batch_free(&b);

    tenant[64] = 'x';
    tenant[65] = '\0';
    set_text(text, sizeof(text), tenant, "k");
    parse_bad(text, "field 'tenant' must be 1-64 bytes of [A-Za-z0-9._-]");

    set_text(text, sizeof(text), "Acme-Corp_2.eu", "k");
    b = parse_ok(text);
    message_batch_free(&b);

    static const char *const bad[] = {"a:b", "", "a b", "a/b", "caf\\u00e9", "a\\u0001", "*a",
                                      ".", ".."};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bad); i++) {
        set_text(text, sizeof(text), bad[i], "k");
        parse_bad(text, "field 'tenant'");
    }

    ck_assert(names_valid_tenant("a", 1));
    ck_assert(!names_valid_tenant("a\0b", 3));
    ck_assert(!names_valid_tenant(NULL, 0));
    ck_assert(!names_valid_tenant("*", 1));
    /* '.' and '..' would be path segments in an origin URL */
    ck_assert(!names_valid_tenant(".", 1));
    ck_assert(!names_valid_tenant("..", 2));
    ck_assert(names_valid_tenant("...", 3));
    ck_assert(names_valid_tenant(".a", 2));
}
END_TEST

START_TEST(test_star_tenant)
{
    parse_bad("{\"op\":\"set\",\"tenant\":\"*\",\"kind\":\"credit\",\"key\":\"k\",\"value\":1}",
              "tenant '*' is only allowed with op 'flush'");
    parse_bad("{\"op\":\"del\",\"tenant\":\"*\",\"kind\":\"credit\",\"key\":\"k\"}",
              "tenant '*' is only allowed with op 'flush'");
    parse_bad("{\"op\":\"invalidate\",\"tenant\":\"*\",\"kind\":\"credit\",\"key\":\"k\"}",
              "tenant '*' is only allowed with op 'flush'");
    parse_bad("{\"op\":\"flush\",\"tenant\":\"**\"}", "field 'tenant'");
}
END_TEST

START_TEST(test_key_alphabet)
{
    char text[2048], key[520];
    struct message_batch b;

    memset(key, 'k', 512);
    key[512] = '\0';
    set_text(text, sizeof(text), "t", key);
    b = parse_ok(text);
    ck_assert_uint_eq(b.operations[0].key_len, 512);
    message_batch_free(&b);

    key[512] = 'k';
    key[513] = '\0';
    set_text(text, sizeof(text), "t", key);
    parse_bad(text, "field 'key' must be 1-512 bytes without spaces or control characters");

    /* anything printable, UTF-8 included, is a key */
    set_text(text, sizeof(text), "t", "user:42/caf\\u00e9#x");
    b = parse_ok(text);
    ck_assert_str_eq(b.operations[0].key, "user:42/caf\xc3\xa9#x");
    message_batch_free(&b);

    static const char *const bad[] = {"", "a b", "a\\tb", "a\\nb", "a\\u007fb", "a\\u001fb", " "};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bad); i++) {
        set_text(text, sizeof(text), "t", bad[i]);
        parse_bad(text, "field 'key'");
    }
    /* jansson refuses a NUL in a string unless asked: rejected either way */
    set_text(text, sizeof(text), "t", "a\\u0000b");
    parse_bad(text, NULL);

    ck_assert(names_valid_key("a", 1));
    ck_assert(!names_valid_key("a\0b", 3));
    ck_assert(!names_valid_key("a\x7f", 2));
    ck_assert(!names_valid_key(NULL, 0));
    ck_assert(!names_valid_key(".", 1));
    ck_assert(!names_valid_key("..", 2));
    ck_assert(names_valid_key("...", 3));
    ck_assert(names_valid_key("../x", 4)); /* one segment: URL-encoded to ..%2Fx */
    for (size_t i = 0; i < 2; i++) {
        set_text(text, sizeof(text), "t", i == 0 ? "." : "..");
        parse_bad(text, "field 'key'");
    }
}
END_TEST

/* Kind dispositions */

START_TEST(test_unknown_kind)
{
    /* the value of an unknown kind is neither checked nor kept */
    struct message_batch b = parse_ok(
        "[{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"nosuch\",\"key\":\"k\",\"value\":{\"x\":1}},"
        "{\"op\":\"del\",\"tenant\":\"a\",\"kind\":\"nosuch\",\"key\":\"k\"},"
        "{\"op\":\"flush\",\"tenant\":\"a\",\"kind\":\"nosuch\"}]");
    for (size_t i = 0; i < 3; i++) {
        ck_assert_int_eq(b.operations[i].disposition, MESSAGE_UNKNOWN_KIND);
        ck_assert_int_eq(b.operations[i].kind, -1);
        ck_assert_ptr_null(b.operations[i].value.json);
    }
    message_batch_free(&b);
}
END_TEST

START_TEST(test_filtered_kind)
{
    struct config *crm = load_config("application: crm\n");
    /* profile is known but not cached by crm: its value is not validated */
    struct message_batch b = parse_ok_with(
        crm, "[{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"profile\",\"key\":\"k\",\"value\":3},"
             "{\"op\":\"del\",\"tenant\":\"a\",\"kind\":\"hierarchy\",\"key\":\"k\"},"
             "{\"op\":\"flush\",\"tenant\":\"a\",\"kind\":\"audit\"},"
             "{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"credit\",\"key\":\"c\",\"value\":2}]");
    ck_assert_int_eq(b.operations[0].disposition, MESSAGE_FILTERED);
    ck_assert_int_eq(b.operations[0].kind, CONFIG_KIND_PROFILE);
    ck_assert_ptr_null(b.operations[0].value.json);
    ck_assert_int_eq(b.operations[1].disposition, MESSAGE_FILTERED);
    ck_assert_int_eq(b.operations[1].kind, CONFIG_KIND_HIERARCHY);
    ck_assert_int_eq(b.operations[2].disposition, MESSAGE_FILTERED);
    ck_assert_int_eq(b.operations[3].disposition, MESSAGE_APPLY);
    ck_assert_str_eq(b.operations[3].value.json, "2");
    message_batch_free(&b);

    /* a cached kind is still checked under the filter */
    const char *bad_credit =
        "{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"credit\",\"key\":\"c\",\"value\":\"free\"}";
    parse_bad_with(crm, bad_credit, strlen(bad_credit), "credit value must be a number");
    config_free(crm);

    /* with the default `all`, the same profile value is checked */
    parse_bad("{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"profile\",\"key\":\"k\",\"value\":3}",
              "value must be a JSON object");
}
END_TEST

START_TEST(test_added_kind)
{
    struct config *config = load_config("kinds:\n  widget: {tier: reference, ttl: 5m}\n");
    struct message_batch b =
        parse_ok_with(config, "{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"widget\",\"key\":\"w\","
                              "\"value\":[1, \"two\", {\"three\": 3.25}]}");
    ck_assert_int_eq(b.operations[0].disposition, MESSAGE_APPLY);
    ck_assert_int_ge(b.operations[0].kind, CONFIG_BUILTIN_KINDS);
    ck_assert_str_eq(b.operations[0].value.json, "[1,\"two\",{\"three\":3.25}]");
    message_batch_free(&b);
    config_free(config);
}
END_TEST

/* version, src, seq boundaries */

START_TEST(test_version_seq_boundaries)
{
    const char *head = "{\"op\":\"del\",\"tenant\":\"a\",\"kind\":\"user\",\"key\":\"k\"";
    char text[512];
    struct message_batch b;

    snprintf(text, sizeof(text), "%s,\"version\":0}", head);
    b = parse_ok(text);
    ck_assert(b.operations[0].has_version);
    ck_assert_uint_eq(b.operations[0].version, 0);
    message_batch_free(&b);

    snprintf(text, sizeof(text), "%s,\"version\":9223372036854775807}", head);
    b = parse_ok(text);
    ck_assert_uint_eq(b.operations[0].version, 9223372036854775807ull);
    message_batch_free(&b);

    /* beyond json_int_t: jansson refuses the number itself */
    snprintf(text, sizeof(text), "%s,\"version\":18446744073709551615}", head);
    parse_bad(text, "invalid JSON");

    snprintf(text, sizeof(text), "%s,\"src\":\"s\",\"seq\":1}", head);
    b = parse_ok(text);
    ck_assert(b.operations[0].has_seq);
    ck_assert_uint_eq(b.operations[0].seq, 1);
    message_batch_free(&b);

    snprintf(text, sizeof(text), "%s,\"src\":\"s\",\"seq\":0}", head);
    parse_bad(text, "field 'seq' must be a positive integer");
    snprintf(text, sizeof(text), "%s,\"src\":\"s\",\"seq\":-1}", head);
    parse_bad(text, "field 'seq' must be a positive integer");
    snprintf(text, sizeof(text), "%s,\"seq\":5}", head);
    parse_bad(text, "field 'seq' requires field 'src'");

    /* src without seq is allowed */
    snprintf(text, sizeof(text), "%s,\"src\":\"s\"}", head);
    b = parse_ok(text);
    ck_assert_str_eq(b.operations[0].src, "s");
    ck_assert(!b.operations[0].has_seq);
    message_batch_free(&b);

    char src[140];
    memset(src, 's', 128);
    src[128] = '\0';
    snprintf(text, sizeof(text), "%s,\"src\":\"%s\",\"seq\":1}", head, src);
    b = parse_ok(text);
    ck_assert_uint_eq(strlen(b.operations[0].src), 128);
    message_batch_free(&b);
    src[128] = 's';
    src[129] = '\0';
    snprintf(text, sizeof(text), "%s,\"src\":\"%s\",\"seq\":1}", head, src);
    parse_bad(text, "field 'src' must be 1-128 bytes");
    snprintf(text, sizeof(text), "%s,\"src\":\"\",\"seq\":1}", head);
    parse_bad(text, "field 'src' must be 1-128 bytes");
    snprintf(text, sizeof(text), "%s,\"src\":\"a\\nb\",\"seq\":1}", head);
    parse_bad(text, "field 'src' must be 1-128 bytes");
    snprintf(text, sizeof(text), "%s,\"src\":\"pub 1\",\"seq\":1}", head);
    b = parse_ok(text);
    message_batch_free(&b);
}
END_TEST

/* Timestamps */

static const struct {
    const char *ts;
    bool ok;
    uint64_t ms;
} ts_cases[] = {
    {"1970-01-01T00:00:00Z", true, 0},
    {"2024-01-01T10:00:00Z", true, 1704103200000ull},
    {"2024-01-01t10:00:00z", true, 1704103200000ull},
    {"2024-01-01 10:00:00Z", true, 1704103200000ull},
    {"2024-01-01T10:00:00.5Z", true, 1704103200500ull},
    {"2024-01-01T10:00:00.123Z", true, 1704103200123ull},
    {"2024-01-01T10:00:00.123456789Z", true, 1704103200123ull},
    {"2024-01-01T10:00:00.07Z", true, 1704103200070ull},
    {"2024-01-01T12:00:00+02:00", true, 1704103200000ull},
    {"2024-01-01T05:30:00-04:30", true, 1704103200000ull},
    {"2024-01-01T00:30:00+01:00", true, 1704065400000ull},
    {"2024-02-29T00:00:00Z", true, 1709164800000ull},
    {"2000-02-29T00:00:00Z", true, 951782400000ull},
    {"2016-12-31T23:59:60Z", true, 1483228800000ull}, /* a leap second */
    {"9999-12-31T23:59:59Z", true, 253402300799000ull},
    {"2023-02-29T00:00:00Z", false, 0},
    {"1900-02-29T00:00:00Z", false, 0},
    {"2024-04-31T00:00:00Z", false, 0},
    {"2024-13-01T00:00:00Z", false, 0},
    {"2024-00-01T00:00:00Z", false, 0},
    {"2024-01-00T00:00:00Z", false, 0},
    {"2024-01-01T24:00:00Z", false, 0},
    {"2024-01-01T10:60:00Z", false, 0},
    {"2024-01-01T10:00:61Z", false, 0},
    {"2024-01-01", false, 0},
    {"2024-01-01T10:00:00", false, 0},
    {"2024-01-01T10:00Z", false, 0},
    {"2024-01-01T10:00:00.Z", false, 0},
    {"2024-01-01T10:00:00+0200", false, 0},
    {"2024-01-01T10:00:00+02", false, 0},
    {"2024-01-01T10:00:00+24:00", false, 0},
    {"2024-01-01T10:00:00Zjunk", false, 0},
    {"2024-1-01T10:00:00Z", false, 0},
    {"2024-01-01X10:00:00Z", false, 0},
    {" 2024-01-01T10:00:00Z", false, 0},
    {"1969-12-31T23:59:59Z", false, 0},
    {"1970-01-01T00:30:00+01:00", false, 0},
    {"", false, 0},
    {"yesterday", false, 0},
};

START_TEST(test_ts)
{
    char text[256];
    snprintf(text, sizeof(text),
             "{\"op\":\"invalidate\",\"tenant\":\"a\",\"kind\":\"user\",\"key\":\"k\",\"ts\":\"%s\"}",
             ts_cases[_i].ts);
    if (ts_cases[_i].ok) {
        struct message_batch b = parse_ok(text);
        ck_assert(b.operations[0].has_ts);
        ck_assert_msg(b.operations[0].ts_ms == ts_cases[_i].ms, "%s: %llu", ts_cases[_i].ts,
                      (unsigned long long)b.operations[0].ts_ms);
        message_batch_free(&b);
    } else {
        parse_bad(text, "field 'ts' must be an RFC 3339 timestamp");
    }
}
END_TEST

/* The civil-date arithmetic agrees with timegm() over a spread of dates, and
 * does not depend on TZ. */
START_TEST(test_ts_matches_timegm)
{
    setenv("TZ", "America/New_York", 1);
    tzset();
    for (int year = 1970; year <= 2400; year += 7) {
        for (int month = 1; month <= 12; month++) {
            struct tm tm = {.tm_year = year - 1900, .tm_mon = month - 1, .tm_mday = 28,
                            .tm_hour = 13, .tm_min = 14, .tm_sec = 15};
            time_t t = timegm(&tm);
            char text[256];
            snprintf(text, sizeof(text),
                     "{\"op\":\"flush\",\"tenant\":\"a\",\"ts\":\"%04d-%02d-28T13:14:15Z\"}", year,
                     month);
            struct message_batch b = parse_ok(text);
            ck_assert_uint_eq(b.operations[0].ts_ms, (uint64_t)t * 1000u);
            message_batch_free(&b);
        }
    }
    unsetenv("TZ");
    tzset();
}
END_TEST

/* Limits */

START_TEST(test_too_large)
{
    struct config *config = load_config("redis:\n  max_message_bytes: 100\n");
    char text[128];
    memset(text, ' ', sizeof(text));
    const char *msg = "{\"op\":\"flush\",\"tenant\":\"a\"}";
    memcpy(text, msg, strlen(msg));

    struct message_batch b;
    char error[ERROR_MAX];
    ck_assert_int_eq(message_parse(config, text, 100, &b, error), 0);
    message_batch_free(&b);
    parse_bad_with(config, text, 101, "message too large (101 bytes, limit 100)");
    config_free(config);

    /* over the default 1 MiB, garbage is refused for its size, unparsed */
    size_t len = 1024 * 1024 + 1;
    char *big = malloc(len);
    memset(big, '[', len);
    parse_bad_with(defaults, big, len, "message too large (1048577 bytes, limit 1048576)");
    free(big);
}
END_TEST

START_TEST(test_deep_nesting)
{
    size_t depth = 100000;
    char *text = malloc(2 * depth + 1);
    memset(text, '[', depth);
    memset(text + depth, ']', depth);
    text[2 * depth] = '\0';
    parse_bad(text, "invalid JSON");

    /* the same inside a set's value */
    const char *head = "{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"config\",\"key\":\"k\",\"value\":";
    size_t head_len = strlen(head);
    char *deep = malloc(head_len + 2 * depth + 2);
    memcpy(deep, head, head_len);
    memset(deep + head_len, '[', depth);
    memset(deep + head_len + depth, ']', depth);
    strcpy(deep + head_len + 2 * depth, "}");
    parse_bad(deep, "invalid JSON");

    /* a moderate depth is fine */
    size_t ok_depth = 100;
    memset(deep + head_len, '[', ok_depth);
    memset(deep + head_len + ok_depth, ']', ok_depth);
    strcpy(deep + head_len + 2 * ok_depth, "}");
    struct message_batch b = parse_ok(deep);
    ck_assert_uint_eq(b.operations[0].value.json_len, 2 * ok_depth);
    message_batch_free(&b);

    free(deep);
    free(text);
}
END_TEST

START_TEST(test_invalid_utf8)
{
    parse_bad("{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"config\",\"key\":\"k\xff\",\"value\":1}",
              "invalid JSON");
    parse_bad("{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"config\",\"key\":\"k\",\"value\":\"\xc3\"}",
              "invalid JSON");
    parse_bad("{\"op\":\"flush\",\"tenant\":\"a\",\"x\":\"\xed\xa0\x80\"}", "invalid JSON");
    parse_bad("{\"op\":\"flush\",\"tenant\":\"a\",\"x\":\"\\ud800\"}", "invalid JSON");
}
END_TEST

static char *heartbeats(size_t count)
{
    const char *one = "{\"op\":\"heartbeat\",\"src\":\"p\",\"seq\":1},";
    size_t one_len = strlen(one);
    char *text = malloc(count * one_len + 3);
    char *p = text;
    *p++ = '[';
    for (size_t i = 0; i < count; i++, p += one_len)
        memcpy(p, one, one_len);
    p[-1] = ']';
    *p = '\0';
    return text;
}

START_TEST(test_batch_cap)
{
    char *text = heartbeats(10000);
    struct message_batch b = parse_ok(text);
    ck_assert_uint_eq(b.count, 10000);
    message_batch_free(&b);
    free(text);

    text = heartbeats(10001);
    parse_bad(text, "batch too large (10001 operations, limit 10000)");
    free(text);
}
END_TEST

/* A set keeps its value's own bytes less the whitespace (docs/reference.md §2):
 * found as the top-level member `value` of its object, whatever comes before
 * or after it, however the key is spelt, and per element in a batch. */
START_TEST(test_value_text_as_sent)
{
    struct message_batch b = parse_ok(
        " { \"op\" : \"set\" , \"tenant\" : \"a\" , \"kind\" : \"config\" , \"key\" : \"k\" ,"
        " \"value\" : { \"n\" : 1.50 , \"s\" : \"x \\\" } ]\" , \"e\" : \"\\u00e9\" } } ");
    ck_assert_str_eq(b.operations[0].value.json, "{\"n\":1.50,\"s\":\"x \\\" } ]\",\"e\":\"\\u00e9\"}");
    message_batch_free(&b);

    /* members before it that hold a `value` of their own, or brackets in strings */
    b = parse_ok("{\"meta\":{\"value\":1,\"l\":[{\"value\":2}]},\"x\":\"]}\\\\\",\"value\":[ 3 ],"
                 "\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"config\",\"key\":\"k\",\"z\":{}}");
    ck_assert_str_eq(b.operations[0].value.json, "[3]");
    message_batch_free(&b);

    /* the key written with escapes; a key merely ending in "value" is another */
    b = parse_ok("{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"config\",\"key\":\"k\","
                 "\"xvalue\":0,\"valu\\u0065\":-0.0,\"value\\u0020\":9}");
    ck_assert_str_eq(b.operations[0].value.json, "-0.0");
    message_batch_free(&b);
    b = parse_ok("{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"config\",\"key\":\"k\","
                 "\"\\u0076alue\":1e2}");
    ck_assert_str_eq(b.operations[0].value.json, "1e2");
    message_batch_free(&b);

    /* scalars at the end of an object, and each element of a batch */
    b = parse_ok("[ {\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"config\",\"key\":\"k\",\"value\":true} ,"
                 "{\"op\":\"del\",\"tenant\":\"a\",\"kind\":\"config\",\"key\":\"k\"},\n"
                 "{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"config\",\"key\":\"k\",\"value\":12}"
                 ",{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"config\",\"key\":\"k\",\"value\":\"v\","
                 "\"version\":3} ]");
    ck_assert_uint_eq(b.count, 4);
    ck_assert_str_eq(b.operations[0].value.json, "true");
    ck_assert_ptr_null(b.operations[1].value.json);
    ck_assert_str_eq(b.operations[2].value.json, "12");
    ck_assert_str_eq(b.operations[3].value.json, "\"v\"");
    ck_assert_uint_eq(b.operations[3].version, 3);
    message_batch_free(&b);

    /* jansson lets one NUL byte pass right after a number or a literal: it is
     * no part of the value kept, nor does it hide the members after it */
    static const char with_nul[] =
        "{\"op\":\"set\",\"version\":3\0,\"tenant\":\"a\",\"kind\":\"config\",\"key\":\"k\","
        "\"value\":{\"n\":1\0,\"t\":true\0}}";
    char error[ERROR_MAX] = "";
    ck_assert_msg(message_parse(defaults, with_nul, sizeof(with_nul) - 1, &b, error) == 0, "%s",
                  error);
    ck_assert_str_eq(b.operations[0].value.json, "{\"n\":1,\"t\":true}");
    ck_assert_uint_eq(b.operations[0].value.json_len, 16);
    ck_assert_uint_eq(b.operations[0].version, 3);
    message_batch_free(&b);

    /* a set's shape is still checked on the value found */
    parse_bad("{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"credit\",\"key\":\"k\",\"value\":\"3\"}",
              "credit value must be a number");
}
END_TEST

/* ---- the scanner against jansson ----
 *
 * message_parse() validates with jscan where it once parsed with jansson:
 * these check that the two accept exactly the same texts and read the same
 * values, on tricky texts and on the fuzz corpus and its mutations. */

struct scan_case {
    const char *text;
    size_t len; /* 0: strlen(text) */
};

#define SC(s) {s, sizeof(s) - 1}

static const struct scan_case scan_cases[] = {
    /* top level, whitespace, trailing bytes */
    SC(""), SC(" "), SC("{}"), SC("[]"), SC(" {} "), SC("\t[\n]\r"), SC("{} x"), SC("{}{}"),
    SC("[] []"), SC("3"), SC(" 3 "), SC("\"s\""), SC("true"), SC("false"), SC("null"),
    SC("nul"), SC("nulll"), SC("True"), SC("tru e"), SC("-"), SC("{"), SC("["), SC("]"),
    SC("}"), SC("{]"), SC("[}"), SC("[1,]"), SC("[,1]"), SC("[1 2]"), SC("{\"a\"}"),
    SC("{\"a\":}"), SC("{\"a\":1,}"), SC("{,}"), SC("{\"a\" 1}"), SC("{1:2}"), SC("{a:1}"),
    SC("\xef\xbb\xbf{}"), SC("[1]\n"), SC("[1]\f"), SC("[1]\v"), SC("{}\x00"),
    /* the NUL byte after a number or a literal */
    SC("[1\x00]"), SC("[1\x00\x00]"), SC("[1 \x00]"), SC("[true\x00]"), SC("[null\x00,1]"),
    SC("[\"a\"\x00]"), SC("[\x00" "1]"), SC("1\x00"), SC("1\x00 "), SC("true\x00"),
    SC("[1.5\x00]"), SC("[1e3\x00]"), SC("{\"a\":1\x00}"), SC("{\"a\"\x00:1}"), SC("[[]\x00]"),
    SC("[-\x00" "1]"), SC("[1.\x00" "5]"),
    /* numbers */
    SC("[0]"), SC("[-0]"), SC("[00]"), SC("[01]"), SC("[-01]"), SC("[1.]"), SC("[.1]"),
    SC("[1.e1]"), SC("[1e]"), SC("[1e+]"), SC("[1E-2]"), SC("[1e+2]"), SC("[+1]"), SC("[--1]"),
    SC("[0x10]"), SC("[1.5.3]"), SC("[1e5e5]"), SC("[Infinity]"), SC("[NaN]"), SC("[-Infinity]"),
    SC("[9223372036854775807]"), SC("[9223372036854775808]"), SC("[-9223372036854775808]"),
    SC("[-9223372036854775809]"), SC("[99999999999999999999]"), SC("[18446744073709551616]"),
    SC("[1e308]"), SC("[1e309]"), SC("[-1e309]"), SC("[1.7976931348623157e308]"),
    SC("[1.7976931348623159e308]"), SC("[1e-400]"), SC("[-1e-400]"), SC("[4.9e-324]"),
    SC("[0.0000000000000000000000000000001]"), SC("[123456789012345678901234567890.5]"),
    SC("[1e0000000000000000000000001]"), SC("[0e0]"), SC("[-0.0e-0]"), SC("[1E400]"),
    SC("[12a]"), SC("[1true]"), SC("[true1]"), SC("[1\"a\"]"), SC("9223372036854775808"),
    /* strings */
    SC("[\"\"]"), SC("[\"a\\\"b\"]"), SC("[\"\\\\\"]"), SC("[\"\\/\"]"), SC("[\"\\b\\f\\n\\r\\t\"]"),
    SC("[\"\\a\"]"), SC("[\"\\x41\"]"), SC("[\"\\'\"]"), SC("[\"\\u0041\"]"), SC("[\"\\u00e9\"]"),
    SC("[\"\\u20AC\"]"), SC("[\"\\uFFFF\"]"), SC("[\"\\u0000\"]"), SC("[\"a\\u0000b\"]"),
    SC("[\"\\u004\"]"), SC("[\"\\u00G1\"]"), SC("[\"\\u\"]"), SC("[\"\\"), SC("[\"\\u00"),
    SC("[\"\\ud83d\\ude00\"]"), SC("[\"\\uD83D\\uDE00\"]"), SC("[\"\\ud83d\"]"),
    SC("[\"\\ud83dx\"]"), SC("[\"\\ud83d\\n\"]"), SC("[\"\\ud83d\\u0041\"]"),
    SC("[\"\\ud83d\\ud83d\"]"), SC("[\"\\ude00\"]"), SC("[\"\\ude00\\ud83d\"]"),
    SC("[\"\\udbff\\udfff\"]"), SC("[\"\\ud800\\udc00\"]"), SC("[\"\\ud83d\\ude0\"]"),
    SC("[\"\\ud83d\\u\"]"), SC("[\"\\ud83d\\"), SC("[\"a"), SC("[\"a\\\"]"),
    SC("[\"\x01\"]"), SC("[\"\x1f\"]"), SC("[\"\x7f\"]"), SC("[\"\t\"]"), SC("[\"\n\"]"),
    SC("[\"\x00\"]"), SC("[\"a\x00" "b\"]"),
    /* UTF-8 */
    SC("[\"\xc3\xa9\"]"), SC("[\"\xc3\"]"), SC("[\"\xc3\""), SC("[\"\xc0\xaf\"]"),
    SC("[\"\xc1\xbf\"]"), SC("[\"\xc2\x80\"]"), SC("[\"\xdf\xbf\"]"), SC("[\"\x80\"]"),
    SC("[\"\xbf\"]"), SC("[\"\xe0\x80\x80\"]"), SC("[\"\xe0\x9f\xbf\"]"), SC("[\"\xe0\xa0\x80\"]"),
    SC("[\"\xed\x9f\xbf\"]"), SC("[\"\xed\xa0\x80\"]"), SC("[\"\xed\xbf\xbf\"]"),
    SC("[\"\xee\x80\x80\"]"), SC("[\"\xef\xbf\xbf\"]"), SC("[\"\xe2\x82\"]"),
    SC("[\"\xf0\x8f\xbf\xbf\"]"), SC("[\"\xf0\x90\x80\x80\"]"), SC("[\"\xf4\x8f\xbf\xbf\"]"),
    SC("[\"\xf4\x90\x80\x80\"]"), SC("[\"\xf5\x80\x80\x80\"]"), SC("[\"\xf8\x88\x80\x80\x80\"]"),
    SC("[\"\xff\"]"), SC("[\"\xfe\"]"), SC("[\"\xf0\x9f\x98\"]"), SC("[\xc3\xa9]"),
    SC("[1\xc3\xa9]"), SC("{\"\xc3\xa9\":1}"), SC("{\"\xc3\":1}"),
    /* keys: repeated, decoded before they are compared, at any depth */
    SC("{\"a\":1,\"a\":2}"), SC("{\"a\":1,\"b\":2}"), SC("{\"a\":1,\"\\u0061\":2}"),
    SC("{\"\\u0061\":1,\"a\":2}"), SC("{\"\\u0061\":1,\"\\u0061\":2}"), SC("{\"a\":{\"b\":1,\"b\":1}}"),
    SC("[{\"a\":1},{\"a\":1}]"), SC("{\"a\":{\"a\":1}}"), SC("{\"\":1,\"\":2}"), SC("{\"\":1}"),
    SC("{\"a\\u0000\":1}"), SC("{\"\\u0000\":1}"), SC("{\"ab\":1,\"a\":2,\"b\":3}"),
    SC("{\"\\/\":1,\"/\":2}"), SC("{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}"),
    SC("{\"\\u00e9\":1,\"\xc3\xa9\":2}"), SC("{\"\\u00E9\":1,\"\\u00e9\":2}"),
    SC("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":10,"
       "\"k\":11,\"l\":12,\"m\":13,\"n\":14,\"o\":15,\"p\":16,\"q\":17,\"r\":18,\"a\":19}"),
    SC("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":10,"
       "\"k\":11,\"l\":12,\"m\":13,\"n\":14,\"o\":15,\"p\":16,\"q\":17,\"r\":18,\"s\":19}"),
    SC("{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9,\"j\":10,"
       "\"k\":11,\"l\":12,\"m\":13,\"n\":14,\"o\":15,\"p\":16,\"q\":17,\"r\":18,\"\\u0072\":19}"),
    /* messages */
    SC("{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"config\",\"key\":\"k\",\"value\":{\"x\":[1,2.5,"
       "\"s\",true,false,null,{}]}}"),
    SC("[{\"op\":\"flush\",\"tenant\":\"a\"},{\"op\":\"flush\",\"tenant\":\"a\"}]"),
};

START_TEST(test_scan_matches_jansson)
{
    const struct scan_case *c = &scan_cases[_i];
    ck_assert_msg(jscan_agrees(c->text, c->len, false), "case %d (%s): jscan and jansson disagree",
                  _i, c->text);
    ck_assert_msg(jscan_agrees(c->text, c->len, true),
                  "case %d (%s), any value: jscan and jansson disagree", _i, c->text);
}
END_TEST

/* Arrays nested `depth` deep around an inner text. */
static char *nested(size_t depth, const char *inner)
{
    size_t inner_len = strlen(inner);
    char *text = malloc(2 * depth + inner_len + 1);
    memset(text, '[', depth);
    memcpy(text + depth, inner, inner_len);
    memset(text + depth + inner_len, ']', depth);
    text[2 * depth + inner_len] = '\0';
    return text;
}

/* The depth limit falls where jansson's does, for containers and scalars. */
START_TEST(test_scan_depth_matches_jansson)
{
    static const char *const inners[] = {"", "1", "{}", "{\"a\":1}", "\"s\"", "[]"};
    for (size_t depth = JSCAN_MAX_DEPTH - 3; depth <= JSCAN_MAX_DEPTH + 2; depth++) {
        for (size_t k = 0; k < UTIL_ARRAY_LEN(inners); k++) {
            char *text = nested(depth, inners[k]);
            ck_assert_msg(jscan_agrees(text, strlen(text), false), "depth %zu around '%s'",
                          depth, inners[k]);
            free(text);
        }
    }
    /* and an object at the limit */
    char *text = nested(JSCAN_MAX_DEPTH - 1, "{\"a\":[]}");
    ck_assert(jscan_agrees(text, strlen(text), false));
    free(text);
}
END_TEST

/* Every escape of every code point's class, and every two-byte string. */
START_TEST(test_scan_strings_match_jansson)
{
    char text[32];
    for (unsigned code = 0; code <= 0xFFFF; code += (code < 0x100 || (code >= 0xD700 && code < 0xE100)) ? 1 : 61) {
        int n = snprintf(text, sizeof(text), "[\"\\u%04x\\udc00\"]", code);
        ck_assert_msg(jscan_agrees(text, (size_t)n, false), "%s", text);
        n = snprintf(text, sizeof(text), "{\"\\u%04X\":1}", code);
        ck_assert_msg(jscan_agrees(text, (size_t)n, false), "%s", text);
    }
    for (unsigned a = 0; a < 256; a++) {
        for (unsigned b = 0; b < 256; b += (a >= 0x80 ? 1 : 17)) {
            char s[] = {'[', '"', (char)a, (char)b, '"', ']'};
            ck_assert_msg(jscan_agrees(s, sizeof(s), false), "bytes %02x %02x", a, b);
            char t[] = {'[', '1', (char)a, (char)b, ']'};
            ck_assert_msg(jscan_agrees(t, sizeof(t), false), "after a number: %02x %02x", a, b);
        }
    }
}
END_TEST

/* An object of `count` keys "k0".."k<count-1>", then `extra` (a member text
 * or ""), then `tail` closing the text. */
static char *large_object(size_t count, const char *extra, const char *tail)
{
    size_t size = count * 24 + strlen(extra) + strlen(tail) + 4;
    char *text = malloc(size);
    size_t n = (size_t)snprintf(text, size, "{");
    for (size_t i = 0; i < count; i++)
        n += (size_t)snprintf(text + n, size - n, "%s\"k%zu\":%zu", i ? "," : "", i, i);
    snprintf(text + n, size - n, "%s%s", extra, tail);
    return text;
}

/* Large objects (their repeated keys are found by sorting): the same verdict
 * as jansson's, whether the repeat is written plainly or with escapes. */
START_TEST(test_scan_large_objects_match_jansson)
{
    static const struct {
        const char *extra;
        bool accepted;
    } cases[] = {
        {"", true},
        {",\"k0\":1", false},
        {",\"k4999\":1", false},
        {",\"k2500\":[]", false},
        {",\"\\u006b7\":1", false},   /* "k7" written with an escape */
        {",\"k\\u0037\":1", false},
        {",\"k\\u00377\":1", false},  /* "k77" */
        {",\"k5000\":1", true},
        {",\"k\\u00e9\":1", true},
        {",\"\":1,\"\\/\":2", true},
        {",\"\":1,\"\":2", false},
        {",\"\\/\":1,\"/\":2", false},
        {",\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2", false},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        char *text = large_object(5000, cases[i].extra, "}");
        ck_assert_msg(jscan_agrees(text, strlen(text), false), "case %zu", i);
        json_t *parsed = json_loads(text, JSON_REJECT_DUPLICATES, NULL);
        ck_assert_msg((parsed != NULL) == cases[i].accepted, "case %zu: jansson %s it", i,
                      parsed != NULL ? "accepts" : "refuses");
        json_decref(parsed);
        free(text);
    }
    /* inside a batch's value, refused with the reason */
    char *value = large_object(100, ",\"k\\u0031\":0", "}");
    size_t size = strlen(value) + 128;
    char *message = malloc(size);
    snprintf(message, size,
             "{\"op\":\"set\",\"tenant\":\"a\",\"kind\":\"config\",\"key\":\"k\",\"value\":%s}", value);
    parse_bad(message, "duplicate object key");
    free(message);
    free(value);
}
END_TEST

/* For a payload message_parse() accepts, what it read is what jansson reads. */
static void check_fields_as_jansson(const char *text, size_t len)
{
    struct message_batch b;
    char error[ERROR_MAX];
    if (message_parse(defaults, text, len, &b, error) != 0)
        return;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
    ck_assert_ptr_nonnull(root);
    for (size_t i = 0; i < b.count; i++) {
        const struct message_operation *op = &b.operations[i];
        json_t *obj = json_is_array(root) ? json_array_get(root, i) : root;
        json_t *tenant = json_object_get(obj, "tenant"), *key = json_object_get(obj, "key");
        json_t *src = json_object_get(obj, "src");
        ck_assert(op->tenant == NULL ? tenant == NULL
                                     : json_string_length(tenant) == op->tenant_len &&
                                           memcmp(json_string_value(tenant), op->tenant,
                                                  op->tenant_len) == 0);
        ck_assert(op->key == NULL ? op->op == MESSAGE_FLUSH || op->op == MESSAGE_HEARTBEAT
                                  : json_string_length(key) == op->key_len &&
                                        memcmp(json_string_value(key), op->key, op->key_len) == 0);
        ck_assert(op->src == NULL ? src == NULL : strcmp(json_string_value(src), op->src) == 0);
        ck_assert(op->has_version == (json_object_get(obj, "version") != NULL));
        if (op->has_version)
            ck_assert_uint_eq(op->version, (uint64_t)json_integer_value(json_object_get(obj, "version")));
        if (op->has_seq)
            ck_assert_uint_eq(op->seq, (uint64_t)json_integer_value(json_object_get(obj, "seq")));
        if (op->value.json != NULL) {
            json_t *kept = json_loadb(op->value.json, op->value.json_len, JSON_DECODE_ANY, NULL);
            ck_assert(kept != NULL && json_equal(kept, json_object_get(obj, "value")));
            json_decref(kept);
        }
    }
    json_decref(root);
    message_batch_free(&b);
}

/* The fuzz corpus, each file cut short at every length and with each byte
 * replaced by a few that matter to the grammar. */
START_TEST(test_scan_corpus_matches_jansson)
{
    static const char replacements[] = {'\0', ' ', '"', '\\', ',', ':', '{', '}', '[', ']', '0',
                                        '-', 'e', '.', 'u', (char)0x80, (char)0xc3, (char)0xff};
    const char *dir_path = "tests/fuzz/corpus/message";
    DIR *dir = opendir(dir_path);
    ck_assert_msg(dir != NULL, "%s: run from the source tree", dir_path);
    struct dirent *entry;
    size_t files = 0;
    while ((entry = readdir(dir)) != NULL) {
        if (entry->d_name[0] == '.')
            continue;
        char path[512];
        snprintf(path, sizeof(path), "%s/%s", dir_path, entry->d_name);
        FILE *f = fopen(path, "rb");
        ck_assert_ptr_nonnull(f);
        char text[4096];
        size_t len = fread(text, 1, sizeof(text), f);
        fclose(f);
        files++;
        for (size_t cut = 0; cut <= len; cut++) {
            ck_assert_msg(jscan_agrees(text, cut, false), "%s cut at %zu", path, cut);
            check_fields_as_jansson(text, cut);
        }
        for (size_t at = 0; at < len; at++) {
            char saved = text[at];
            for (size_t r = 0; r < sizeof(replacements); r++) {
                text[at] = replacements[r];
                ck_assert_msg(jscan_agrees(text, len, false), "%s with byte %zu = 0x%02x", path,
                              at, (unsigned char)replacements[r]);
                check_fields_as_jansson(text, len);
            }
            text[at] = saved;
        }
    }
    closedir(dir);
    ck_assert_uint_ge(files, 10);
}
END_TEST

START_TEST(test_free_empty)
{
    struct message_batch b = {NULL, 0};
    message_batch_free(&b);
    message_batch_free(&b);
    message_batch_free(NULL);
}
END_TEST

static Suite *message_suite(void)
{
    Suite *s = suite_create("message");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_set);
    tcase_add_test(tc, test_set_minimal);
    tcase_add_test(tc, test_del_invalidate);
    tcase_add_test(tc, test_flush);
    tcase_add_test(tc, test_heartbeat);
    tcase_add_test(tc, test_missing_fields);
    tcase_add_test(tc, test_wrong_types);
    tcase_add_test(tc, test_error_names_index);
    tcase_add_test(tc, test_batch_rejected_whole);
    tcase_add_test(tc, test_batch_order);
    tcase_add_test(tc, test_top_level);
    tcase_add_test(tc, test_tenant_alphabet);
    tcase_add_test(tc, test_star_tenant);
    tcase_add_test(tc, test_key_alphabet);
    tcase_add_test(tc, test_unknown_kind);
    tcase_add_test(tc, test_filtered_kind);
    tcase_add_test(tc, test_added_kind);
    tcase_add_test(tc, test_version_seq_boundaries);
    tcase_add_loop_test(tc, test_ts, 0, (int)UTIL_ARRAY_LEN(ts_cases));
    tcase_add_test(tc, test_ts_matches_timegm);
    tcase_add_test(tc, test_too_large);
    tcase_add_test(tc, test_deep_nesting);
    tcase_add_test(tc, test_invalid_utf8);
    tcase_add_test(tc, test_batch_cap);
    tcase_add_test(tc, test_value_text_as_sent);
    tcase_add_test(tc, test_free_empty);
    tcase_add_loop_test(tc, test_scan_matches_jansson, 0, (int)UTIL_ARRAY_LEN(scan_cases));
    tcase_add_test(tc, test_scan_depth_matches_jansson);
    tcase_add_test(tc, test_scan_strings_match_jansson);
    tcase_add_test(tc, test_scan_large_objects_match_jansson);
    tcase_add_test(tc, test_scan_corpus_matches_jansson);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *runner = srunner_create(message_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
