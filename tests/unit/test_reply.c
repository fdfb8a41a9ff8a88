/* test_reply.c - reply.c: every RESP2 encoder, byte for byte, into a
 * reply_buffer; errors sanitised and truncated so that one reply stays one
 * line; the buffer keeps its bytes in order across partial drains. */
#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"
#include "util.h"

static struct reply_buffer buffer;
static struct reply_buffer *out = &buffer;

static void setup(void)
{
    memset(&buffer, 0, sizeof(buffer));
}

static void teardown(void)
{
    reply_buffer_free(out);
}

/* Asserts that the buffer holds exactly want[0..len) and empties it. */
static void expect_bytes(const char *want, size_t len)
{
    size_t have = reply_buffer_length(out);
    const char *data = reply_buffer_data(out);
    ck_assert_msg(have == len && (len == 0 || memcmp(data, want, len) == 0),
                  "got %zu bytes '%.*s', want %zu bytes '%.*s'", have, (int)have,
                  data != NULL ? data : "", len, (int)len, want);
    reply_buffer_drain(out, have);
}

static void expect(const char *want)
{
    expect_bytes(want, strlen(want));
}

START_TEST(test_status)
{
    reply_status(out, "OK");
    expect("+OK\r\n");
    reply_status(out, "PONG");
    expect("+PONG\r\n");
    reply_status(out, "");
    expect("+\r\n");
}
END_TEST

START_TEST(test_error)
{
    reply_error(out, "ERR x");
    expect("-ERR x\r\n");
    reply_error(out, "ERR unknown command '%s'", "FOO");
    expect("-ERR unknown command 'FOO'\r\n");
    reply_error(out, "ERR wrong number of arguments for '%s'", "GET");
    expect("-ERR wrong number of arguments for 'GET'\r\n");
    reply_error(out, "NOPERM tenant '%s' not allowed", "acme");
    expect("-NOPERM tenant 'acme' not allowed\r\n");
    reply_error(out, "STALE %d seconds", 31);
    expect("-STALE 31 seconds\r\n");
    reply_error(out, "%s", "");
    expect("-\r\n");
}
END_TEST

START_TEST(test_error_sanitised)
{
    /* What a client sent must not break the reply line. */
    reply_error(out, "ERR unknown command '%s'", "a\r\nb");
    expect("-ERR unknown command 'a  b'\r\n");
    reply_error(out, "ERR %s", "\n\n\r\r");
    expect("-ERR     \r\n");
    reply_error(out, "ERR x\r\n+OK");
    expect("-ERR x  +OK\r\n");
    reply_error(out, "ERR %s", "line\r");
    expect("-ERR line \r\n");
    /* A client's binary argument stops at its NUL, never putting one on the line. */
    reply_error(out, "ERR unknown kind '%.*s'", 5, "ab\0cd");
    expect("-ERR unknown kind 'ab'\r\n");
}
END_TEST

START_TEST(test_error_long_truncated)
{
    size_t long_len = 5000;
    char *text = xmalloc(long_len + 1);
    for (size_t i = 0; i < long_len; i++)
        text[i] = (i % 50 == 49) ? '\n' : (char)('a' + i % 26);
    text[long_len] = '\0';
    reply_error(out, "ERR unknown command '%s'", text);
    free(text);

    size_t have = reply_buffer_length(out);
    const char *data = reply_buffer_data(out);
    ck_assert_uint_gt(have, 100);
    ck_assert_uint_le(have, 1024);
    ck_assert_int_eq(memcmp(data, "-ERR unknown command 'a", 23), 0);
    ck_assert_int_eq(data[have - 2], '\r');
    ck_assert_int_eq(data[have - 1], '\n');
    /* One line: no CR, LF or NUL before the terminator. */
    for (size_t i = 0; i < have - 2; i++) {
        ck_assert_msg(data[i] != '\r' && data[i] != '\n' && data[i] != '\0',
                      "byte %zu is %d", i, data[i]);
    }
    reply_buffer_drain(out, have);

    /* A message right at the limit and one byte over. */
    for (size_t len = 500; len < 520; len++) {
        char *exact = xmalloc(len + 1);
        memset(exact, 'e', len);
        exact[len] = '\0';
        reply_error(out, "%s", exact);
        free(exact);
        have = reply_buffer_length(out);
        data = reply_buffer_data(out);
        ck_assert_int_eq(data[0], '-');
        ck_assert_int_eq(data[have - 2], '\r');
        ck_assert_int_eq(data[have - 1], '\n');
        for (size_t i = 1; i < have - 2; i++)
            ck_assert_int_eq(data[i], 'e');
        ck_assert_uint_le(have, len + 3);
        reply_buffer_drain(out, have);
    }
}
END_TEST

START_TEST(test_bulk)
{
    reply_bulk(out, "abc", 3);
    expect("$3\r\nabc\r\n");
    reply_bulk_string(out, "abc");
    expect("$3\r\nabc\r\n");
    reply_bulk(out, "abcdef", 2); /* only len bytes */
    expect("$2\r\nab\r\n");
    reply_bulk(out, "", 0);
    expect("$0\r\n\r\n");
    reply_bulk_string(out, "");
    expect("$0\r\n\r\n");
    reply_bulk_string(out, "{\"cost\":3.5}");
    expect("$12\r\n{\"cost\":3.5}\r\n");
}
END_TEST

START_TEST(test_bulk_binary)
{
    static const char binary[] = {'a', '\0', 'b', '\r', '\n', '\xff', '\0'};
    reply_bulk(out, binary, sizeof(binary));
    static const char want[] = "$7\r\na\0b\r\n\xff\0\r\n";
    expect_bytes(want, sizeof(want) - 1);

    /* A large value: the length line and every byte. */
    size_t len = 1000000;
    char *big = xmalloc(len);
    for (size_t i = 0; i < len; i++)
        big[i] = (char)(i * 7);
    reply_bulk(out, big, len);
    ck_assert_uint_eq(reply_buffer_length(out), strlen("$1000000\r\n") + len + 2);
    const char *data = reply_buffer_data(out);
    ck_assert_int_eq(memcmp(data, "$1000000\r\n", 10), 0);
    ck_assert_int_eq(memcmp(data + 10, big, len), 0);
    ck_assert_int_eq(memcmp(data + 10 + len, "\r\n", 2), 0);
    reply_buffer_drain(out, reply_buffer_length(out));
    free(big);
}
END_TEST

START_TEST(test_nil)
{
    reply_nil(out);
    expect("$-1\r\n");
}
END_TEST

/* After HELLO 3 only nil and maps change; the flag survives the buffer being
 * emptied and given back. */
START_TEST(test_resp3)
{
    reply_map(out, 2);
    expect("*4\r\n");
    out->resp3 = true;
    reply_nil(out);
    reply_map(out, 2);
    reply_array(out, 1);
    reply_bulk(out, "a", 1);
    expect("_\r\n%2\r\n*1\r\n$1\r\na\r\n");
    char big[100 * 1024];
    memset(big, 'x', sizeof(big));
    reply_buffer_add(out, big, sizeof(big));
    reply_buffer_drain(out, sizeof(big));
    reply_buffer_free(out);
    reply_nil(out);
    expect("_\r\n");
}
END_TEST

START_TEST(test_integer)
{
    static const struct {
        long long value;
        const char *text;
    } cases[] = {
        {0, ":0\r\n"},
        {1, ":1\r\n"},
        {-1, ":-1\r\n"},
        {9, ":9\r\n"},
        {10, ":10\r\n"},
        {-42, ":-42\r\n"},
        {1000000007, ":1000000007\r\n"},
        {LLONG_MAX, ":9223372036854775807\r\n"},
        {LLONG_MIN, ":-9223372036854775808\r\n"},
        {LLONG_MIN + 1, ":-9223372036854775807\r\n"},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        reply_integer(out, cases[i].value);
        expect(cases[i].text);
    }
}
END_TEST

START_TEST(test_array)
{
    reply_array(out, 0);
    expect("*0\r\n");
    reply_array(out, 3);
    expect("*3\r\n");
    reply_array(out, 1024);
    expect("*1024\r\n");
}
END_TEST

START_TEST(test_composed)
{
    /* What MGET answers: an array of bulk and nil, appended in order. */
    reply_array(out, 3);
    reply_bulk_string(out, "1");
    reply_nil(out);
    reply_bulk(out, "x\0y", 3);
    reply_integer(out, -7);
    reply_status(out, "OK");
    reply_error(out, "ERR %s", "bad");
    static const char want[] = "*3\r\n$1\r\n1\r\n$-1\r\n$3\r\nx\0y\r\n:-7\r\n+OK\r\n-ERR bad\r\n";
    expect_bytes(want, sizeof(want) - 1);
}
END_TEST

START_TEST(test_partial_drain)
{
    /* What server.c does when the socket takes part of the replies: the rest
     * stays in order while more are added, across moves and growth. */
    char want[64 * 1024];
    size_t want_len = 0, sent = 0;
    for (int i = 0; i < 3000; i++) {
        char value[16];
        int n = snprintf(value, sizeof(value), "v%d", i);
        reply_bulk(out, value, (size_t)n);
        want_len += (size_t)snprintf(want + want_len, sizeof(want) - want_len, "$%d\r\n%s\r\n", n,
                                     value);
        size_t drop = (size_t)(i % 7) * 3;
        if (drop > reply_buffer_length(out))
            drop = reply_buffer_length(out);
        ck_assert_int_eq(memcmp(reply_buffer_data(out), want + sent, drop), 0);
        reply_buffer_drain(out, drop);
        sent += drop;
        ck_assert_uint_eq(reply_buffer_length(out), want_len - sent);
    }
    expect_bytes(want + sent, want_len - sent);
    ck_assert_uint_eq(reply_buffer_length(out), 0);
    /* Emptied, it works as new. */
    reply_nil(out);
    expect("$-1\r\n");
    reply_buffer_add(out, "+raw\r\n", 6);
    expect("+raw\r\n");
}
END_TEST

/* The RESP3 encoders (nil "_", map "%N") reserve their bytes through the
 * same path as the others, so the cap holds for them too. */
START_TEST(test_limit_applies_to_resp3)
{
    struct reply_buffer capped = {.resp3 = true};
    reply_buffer_limit(&capped, 5);
    reply_nil(&capped);                                /* _\r\n: 3 bytes */
    ck_assert(!reply_buffer_over(&capped));
    reply_map(&capped, 2);                             /* %2\r\n: 4 more, over 5 */
    ck_assert(reply_buffer_over(&capped));
    ck_assert_uint_eq(reply_buffer_length(&capped), 3);
    reply_buffer_limit(&capped, 0);
    reply_map(&capped, 2);
    ck_assert_uint_eq(reply_buffer_length(&capped), 7);
    ck_assert(memcmp(reply_buffer_data(&capped), "_\r\n%2\r\n", 7) == 0);
    reply_buffer_free(&capped);
}
END_TEST

START_TEST(test_limit_drops_what_would_pass_it)
{
    struct reply_buffer capped = {0};
    reply_status(&capped, "OK");                       /* 5 bytes, before the cap */
    reply_buffer_limit(&capped, 5 + 16);
    reply_bulk(&capped, "0123456789", 10);             /* $10\r\n...\r\n: 17 bytes */
    ck_assert(reply_buffer_over(&capped));
    ck_assert_uint_eq(reply_buffer_length(&capped), 5);
    reply_nil(&capped);                                /* after an overflow: nothing more */
    ck_assert_uint_eq(reply_buffer_length(&capped), 5);
    reply_buffer_limit(&capped, 0);
    ck_assert(!reply_buffer_over(&capped));
    reply_bulk(&capped, "0123456789", 10);
    ck_assert_uint_eq(reply_buffer_length(&capped), 22);
    reply_buffer_truncate(&capped, 5);
    ck_assert_uint_eq(reply_buffer_length(&capped), 5);
    ck_assert(memcmp(reply_buffer_data(&capped), "+OK\r\n", 5) == 0);
    reply_buffer_free(&capped);
}
END_TEST

static Suite *reply_suite(void)
{
    Suite *suite = suite_create("reply");
    TCase *encoders = tcase_create("encoders");
    tcase_add_checked_fixture(encoders, setup, teardown);
    tcase_add_test(encoders, test_status);
    tcase_add_test(encoders, test_limit_drops_what_would_pass_it);
    tcase_add_test(encoders, test_limit_applies_to_resp3);
    tcase_add_test(encoders, test_error);
    tcase_add_test(encoders, test_error_sanitised);
    tcase_add_test(encoders, test_error_long_truncated);
    tcase_add_test(encoders, test_bulk);
    tcase_add_test(encoders, test_bulk_binary);
    tcase_add_test(encoders, test_nil);
    tcase_add_test(encoders, test_resp3);
    tcase_add_test(encoders, test_integer);
    tcase_add_test(encoders, test_array);
    tcase_add_test(encoders, test_composed);
    tcase_add_test(encoders, test_partial_drain);
    suite_add_tcase(suite, encoders);
    return suite;
}


int main(void)
{
    SRunner *runner = srunner_create(reply_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
