/* test_envelope.c - the envelope of stream-published messages and stream
 * entry IDs (docs/reference.md §7): what is an envelope, what is a plain
 * message, what is a malformed envelope; ID parsing, order and formatting. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

static enum envelope_result unwrap(const char *text, struct envelope_id *id, char *message,
                                   size_t size)
{
    const char *inner = NULL;
    size_t inner_len = 0;
    enum envelope_result result = envelope_unwrap(text, strlen(text), id, &inner, &inner_len);
    message[0] = '\0';
    if (result == ENVELOPE_OK) {
        ck_assert_ptr_nonnull(inner);
        ck_assert(inner >= text && inner + inner_len <= text + strlen(text));
        ck_assert_uint_lt(inner_len, size);
        memcpy(message, inner, inner_len);
        message[inner_len] = '\0';
    }
    return result;
}

START_TEST(test_unwrap_published_form)
{
    /* exactly what scripts/tenantcached.lua publishes */
    struct envelope_id id = {0, 0};
    char message[256];
    ck_assert_int_eq(unwrap("{\"id\":\"1700000000000-3\",\"message\":{\"op\":\"del\","
                            "\"tenant\":\"acme\",\"kind\":\"profile\",\"key\":\"u1\"}}",
                            &id, message, sizeof(message)),
                     ENVELOPE_OK);
    ck_assert_uint_eq(id.ms, 1700000000000ULL);
    ck_assert_uint_eq(id.seq, 3);
    ck_assert_str_eq(message,
                     "{\"op\":\"del\",\"tenant\":\"acme\",\"kind\":\"profile\",\"key\":\"u1\"}");
    /* a batch inside */
    ck_assert_int_eq(unwrap("{\"id\":\"5-0\",\"message\":[{\"op\":\"flush\",\"tenant\":\"*\"}]}",
                            &id, message, sizeof(message)),
                     ENVELOPE_OK);
    ck_assert_uint_eq(id.ms, 5);
    ck_assert_uint_eq(id.seq, 0);
    ck_assert_str_eq(message, "[{\"op\":\"flush\",\"tenant\":\"*\"}]");
}
END_TEST

START_TEST(test_unwrap_whitespace)
{
    struct envelope_id id;
    char message[256];
    ck_assert_int_eq(unwrap(" {\n \"id\" : \"1-2\" ,\t\"message\" :  {\"op\":\"x\"} \r\n} \n", &id,
                            message, sizeof(message)),
                     ENVELOPE_OK);
    ck_assert_uint_eq(id.ms, 1);
    ck_assert_uint_eq(id.seq, 2);
    ck_assert_str_eq(message, "{\"op\":\"x\"}");
}
END_TEST

START_TEST(test_unwrap_plain_messages)
{
    struct envelope_id id = {7, 7};
    char message[64];
    const char *plain[] = {
        "{\"op\":\"del\",\"tenant\":\"acme\",\"kind\":\"profile\",\"key\":\"u1\"}",
        "[{\"id\":\"1-1\",\"message\":{}}]", /* an array is never an envelope */
        "{\"message\":{},\"id\":\"1-1\"}",    /* the envelope's keys come in its order */
        "{\"idx\":1}",
        "",
        "   ",
        "not json",
        "{",
    };
    for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
        ck_assert_msg(unwrap(plain[i], &id, message, sizeof(message)) == ENVELOPE_NONE, "%s",
                      plain[i]);
        ck_assert_uint_eq(id.ms, 7); /* untouched */
    }
}
END_TEST

START_TEST(test_unwrap_malformed)
{
    struct envelope_id id;
    char message[64];
    const char *bad[] = {
        "{\"id\":1,\"message\":{}}",                 /* the ID is a string */
        "{\"id\":\"1\",\"message\":{}}",             /* no sequence part */
        "{\"id\":\"-1\",\"message\":{}}",
        "{\"id\":\"1-\",\"message\":{}}",
        "{\"id\":\"a-1\",\"message\":{}}",
        "{\"id\":\"1-1 \",\"message\":{}}",
        "{\"id\":\"18446744073709551616-0\",\"message\":{}}", /* 2^64 */
        "{\"id\":\"1-1\"}",
        "{\"id\":\"1-1\",\"msg\":{}}",
        "{\"id\":\"1-1\",\"message\":}",              /* nothing inside */
        "{\"id\":\"1-1\",\"message\":{}]",
        "{\"id\":\"1-1",
        "{\"id\"",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(unwrap(bad[i], &id, message, sizeof(message)) == ENVELOPE_INVALID, "%s",
                      bad[i]);
    /* The envelope's closing brace is the last one: a message cut short is
     * found as what it is, and message_parse() rejects it as invalid JSON. */
    ck_assert_int_eq(unwrap("{\"id\":\"1-1\",\"message\":{}", &id, message, sizeof(message)),
                     ENVELOPE_OK);
    ck_assert_str_eq(message, "{");
}
END_TEST

START_TEST(test_unwrap_not_terminated)
{
    /* binary-safe: only len bytes are read, no NUL needed */
    const char text[] = "{\"id\":\"9-9\",\"message\":{\"op\":\"x\"}}GARBAGE";
    struct envelope_id id;
    const char *inner;
    size_t inner_len;
    size_t len = strlen(text) - strlen("GARBAGE");
    ck_assert_int_eq(envelope_unwrap(text, len, &id, &inner, &inner_len), ENVELOPE_OK);
    ck_assert_uint_eq(inner_len, strlen("{\"op\":\"x\"}"));
    ck_assert_int_eq(envelope_unwrap(text, 10, &id, &inner, &inner_len), ENVELOPE_INVALID);
}
END_TEST

START_TEST(test_id_parse_compare_format)
{
    struct envelope_id a, b;
    ck_assert(envelope_id_parse("0-0", 3, &a));
    ck_assert_uint_eq(a.ms, 0);
    ck_assert_uint_eq(a.seq, 0);
    const char *max = "18446744073709551615-18446744073709551615";
    ck_assert(envelope_id_parse(max, strlen(max), &a));
    ck_assert_uint_eq(a.ms, UINT64_MAX);
    ck_assert_uint_eq(a.seq, UINT64_MAX);
    char buf[ENVELOPE_ID_MAX];
    ck_assert_str_eq(envelope_id_format(&a, buf), max);
    ck_assert(!envelope_id_parse("", 0, &a));
    ck_assert(!envelope_id_parse("1-2-3", 5, &a));
    ck_assert(!envelope_id_parse("+1-2", 4, &a));
    ck_assert(!envelope_id_parse("1-18446744073709551616", 22, &a));

    ck_assert(envelope_id_parse("10-0", 4, &a));
    ck_assert(envelope_id_parse("9-99", 4, &b));
    ck_assert_int_gt(envelope_id_compare(&a, &b), 0); /* the time part first */
    ck_assert_int_lt(envelope_id_compare(&b, &a), 0);
    ck_assert(envelope_id_parse("10-1", 4, &b));
    ck_assert_int_lt(envelope_id_compare(&a, &b), 0);
    ck_assert_int_eq(envelope_id_compare(&a, &a), 0);
    ck_assert_str_eq(envelope_id_format(&b, buf), "10-1");
}
END_TEST

static Suite *envelope_suite(void)
{
    Suite *suite = suite_create("envelope");
    TCase *unwrap_case = tcase_create("unwrap");
    tcase_add_test(unwrap_case, test_unwrap_published_form);
    tcase_add_test(unwrap_case, test_unwrap_whitespace);
    tcase_add_test(unwrap_case, test_unwrap_plain_messages);
    tcase_add_test(unwrap_case, test_unwrap_malformed);
    tcase_add_test(unwrap_case, test_unwrap_not_terminated);
    suite_add_tcase(suite, unwrap_case);
    TCase *ids = tcase_create("ids");
    tcase_add_test(ids, test_id_parse_compare_format);
    suite_add_tcase(suite, ids);
    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(envelope_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
