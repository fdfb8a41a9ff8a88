/* test_util.c - util.c: the shortest exact double formatting used by CREDIT,
 * INFO's human byte counts, case-insensitive words, the cache's hash, the
 * allocator wrappers and the clocks. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

/* ---- util_format_double ---- */

/* Formats value and asserts that the text reads back exactly. Returns the
 * text in a static buffer. */
static const char *format_double(double value)
{
    static char out[64];
    memset(out, 'Z', sizeof(out));
    size_t len = util_format_double(value, out, sizeof(out));
    ck_assert_msg(len > 0, "%.17g: nothing written", value);
    ck_assert_uint_lt(len, sizeof(out));
    ck_assert_uint_eq(strlen(out), len);
    char *end = NULL;
    double back = strtod(out, &end);
    ck_assert_msg(*end == '\0', "%.17g -> '%s': trailing text", value, out);
    ck_assert_msg(back == value, "%.17g -> '%s' reads back as %.17g", value, out, back);
    ck_assert_msg(signbit(back) == signbit(value), "%.17g -> '%s': sign lost", value, out);
    return out;
}

/* The fewest significant digits (1..17) with which %e reads back exactly. */
static int shortest_digits(double value)
{
    char text[40];
    for (int precision = 1; precision <= 17; precision++) {
        snprintf(text, sizeof(text), "%.*e", precision - 1, value);
        if (strtod(text, NULL) == value)
            return precision;
    }
    return 17;
}

/* Significant digits written in text: mantissa digits without leading zeros
 * and without trailing zeros. */
static int significant_digits(const char *text)
{
    char digits[64];
    size_t n = 0;
    for (const char *p = text; *p != '\0' && *p != 'e' && *p != 'E'; p++) {
        if (*p >= '0' && *p <= '9' && n < sizeof(digits) - 1)
            digits[n++] = *p;
    }
    digits[n] = '\0';
    size_t start = 0;
    while (start < n && digits[start] == '0')
        start++;
    while (n > start && digits[n - 1] == '0')
        n--;
    return n > start ? (int)(n - start) : 1;
}

START_TEST(test_timeval_from_ms)
{
    struct timeval tv = util_timeval_from_ms(0);
    ck_assert_int_eq(tv.tv_sec, 0);
    ck_assert_int_eq(tv.tv_usec, 0);
    tv = util_timeval_from_ms(1500);
    ck_assert_int_eq(tv.tv_sec, 1);
    ck_assert_int_eq(tv.tv_usec, 500000);
    tv = util_timeval_from_ms(999);
    ck_assert_int_eq(tv.tv_sec, 0);
    ck_assert_int_eq(tv.tv_usec, 999000);
}
END_TEST

/* LEB128: the bytes at each length's boundaries, and the size they take. */
START_TEST(test_varint)
{
    static const struct {
        uint64_t value;
        size_t size;
        unsigned char first, last;
    } cases[] = {
        {0, 1, 0x00, 0x00},          {127, 1, 0x7f, 0x7f},
        {128, 2, 0x80, 0x01},        {300, 2, 0xac, 0x02},
        {16383, 2, 0xff, 0x7f},      {16384, 3, 0x80, 0x01},
        {UINT32_MAX, 5, 0xff, 0x0f}, {UINT64_MAX, UTIL_VARINT_MAX, 0xff, 0x01},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        unsigned char out[UTIL_VARINT_MAX + 1];
        size_t size = (size_t)(util_put_varint(out, cases[i].value) - out);
        ck_assert_uint_eq(size, cases[i].size);
        ck_assert_uint_eq(util_varint_size(cases[i].value), cases[i].size);
        ck_assert_uint_eq(out[0], cases[i].first);
        ck_assert_uint_eq(out[size - 1], cases[i].last);
    }
}
END_TEST

START_TEST(test_random)
{
    /* The same seed gives the same sequence; the state moves; 1000 draws
     * spread over 16 buckets with none empty. */
    uint64_t a = 42, b = 42;
    unsigned buckets[16] = {0};
    for (int i = 0; i < 1000; i++) {
        uint64_t x = util_random(&a);
        ck_assert_uint_eq(x, util_random(&b));
        buckets[x % 16]++;
    }
    ck_assert_uint_ne(a, 42);
    for (int i = 0; i < 16; i++)
        ck_assert_uint_gt(buckets[i], 20);
}
END_TEST

START_TEST(test_format_double_table)
{
    static const struct {
        double value;
        const char *text;
    } cases[] = {
        {3.5, "3.5"},
        {12, "12"},
        {20, "20"},
        {100, "100"},
        {0.1, "0.1"},
        {0.5, "0.5"},
        {0.25, "0.25"},
        {1, "1"},
        {0, "0"},
        {-0.0, "-0"},
        {-2.5, "-2.5"},
        {-12, "-12"},
        {1.1, "1.1"},
        {123.456, "123.456"},
        {0.000123, "0.000123"},
        {1e-7, "0.0000001"},
        {1.5e-7, "0.00000015"},
        {1e-8, "1e-08"},
        {1e16, "10000000000000000"},
        {9007199254740992.0, "9007199254740992"},
        {31722300588172752.0, "31722300588172750"}, /* 16 digits, not %.0f's 17 */
        {12345678901234567.0, "12345678901234568"},
        {3e16, "30000000000000000"},
        {-4.5e15, "-4500000000000000"},
        {1e17, "1e+17"},
        {123456789012345678.0, "1.2345678901234568e+17"},
        {1e300, "1e+300"},
        {5e-324, "5e-324"},
        {0.1 + 0.2, "0.30000000000000004"},
        {DBL_MAX, "1.7976931348623157e+308"},
        {-DBL_MAX, "-1.7976931348623157e+308"},
        {DBL_MIN, "2.2250738585072014e-308"},
        {1.0 / 3.0, "0.3333333333333333"},
        {2.0 / 3.0, "0.6666666666666666"},
        {9.5, "9.5"},
        {99.99, "99.99"},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        const char *out = format_double(cases[i].value);
        ck_assert_msg(strcmp(out, cases[i].text) == 0, "%.17g: got '%s', want '%s'",
                      cases[i].value, out, cases[i].text);
    }
}
END_TEST

START_TEST(test_format_double_roundtrip_random)
{
    /* Random bit patterns cover every exponent; each must read back exactly
     * and use no more significant digits than needed. */
    uint64_t state = 0x9e3779b97f4a7c15u;
    int checked = 0;
    for (int i = 0; i < 20000; i++) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        double value;
        memcpy(&value, &state, sizeof(value));
        if (!isfinite(value))
            continue;
        const char *out = format_double(value);
        ck_assert_msg(significant_digits(out) == shortest_digits(value),
                      "%.17g -> '%s' is not the shortest form (%d digits)", value, out,
                      shortest_digits(value));
        checked++;
    }
    ck_assert_int_gt(checked, 19000);
    /* And values of the size credits really have. */
    for (int cents = 0; cents < 100000; cents += 7) {
        double value = cents / 100.0;
        const char *out = format_double(value);
        ck_assert_msg(significant_digits(out) == shortest_digits(value), "%.17g -> '%s'",
                      value, out);
        ck_assert_ptr_null(strchr(out, 'e'));
    }
}
END_TEST

START_TEST(test_format_double_small_buffer)
{
    /* A buffer too small is never overrun and reports nothing written. */
    char out[8];
    memset(out, 'Z', sizeof(out));
    ck_assert_uint_eq(util_format_double(3.5, out, 4), 3);
    ck_assert_str_eq(out, "3.5");
    memset(out, 'Z', sizeof(out));
    ck_assert_uint_eq(util_format_double(3.5, out, 3), 0);
    ck_assert_int_eq(out[3], 'Z');
    ck_assert_uint_eq(util_format_double(123456.5, out, sizeof(out)), 0);
}
END_TEST

/* ---- util_format_human_bytes ---- */

START_TEST(test_format_human_bytes)
{
    static const struct {
        uint64_t bytes;
        const char *text;
    } cases[] = {
        {0, "0B"},
        {1, "1B"},
        {1023, "1023B"},
        {1024, "1.00K"},
        {1536, "1.50K"},
        {1024 * 1024 - 1, "1024.00K"},
        {1024 * 1024, "1.00M"},
        {1536 * 1024, "1.50M"},
        {256ull * 1024 * 1024, "256.00M"},
        {1024ull * 1024 * 1024, "1.00G"},
        {1024ull * 1024 * 1024 * 1024, "1.00T"},
        {1024ull * 1024 * 1024 * 1024 * 1024, "1.00P"},
        {UINT64_MAX, "16384.00P"},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        char out[32];
        memset(out, 'Z', sizeof(out));
        util_format_human_bytes(cases[i].bytes, out, sizeof(out));
        ck_assert_msg(strcmp(out, cases[i].text) == 0, "%llu: got '%s', want '%s'",
                      (unsigned long long)cases[i].bytes, out, cases[i].text);
    }
    /* Truncated, never overrun. */
    char small[4];
    util_format_human_bytes(1536 * 1024, small, sizeof(small));
    ck_assert_str_eq(small, "1.5");
}
END_TEST

/* ---- util_equal_nocase ---- */

START_TEST(test_equal_nocase)
{
    ck_assert(util_equal_nocase("GET", 3, "get"));
    ck_assert(util_equal_nocase("get", 3, "GET"));
    ck_assert(util_equal_nocase("GeT", 3, "gEt"));
    ck_assert(util_equal_nocase("GETX", 3, "get")); /* only len bytes of buf count */
    ck_assert(util_equal_nocase("", 0, ""));
    ck_assert(!util_equal_nocase("GE", 2, "get"));
    ck_assert(!util_equal_nocase("GETS", 4, "get"));
    ck_assert(!util_equal_nocase("gex", 3, "get"));
    ck_assert(!util_equal_nocase("", 0, "get"));
    ck_assert(!util_equal_nocase("g\0t", 3, "get"));
    ck_assert(!util_equal_nocase("get", 3, ""));
}
END_TEST

/* ---- util_hash ---- */

START_TEST(test_hash_deterministic_and_seeded)
{
    const char *text = "acme";
    uint64_t a = util_hash(text, 4, 0);
    ck_assert_uint_eq(util_hash(text, 4, 0), a);
    ck_assert_uint_eq(util_hash("acme", 4, 0), a);
    ck_assert_uint_ne(util_hash(text, 4, 1), a);
    ck_assert_uint_eq(util_hash(text, 4, 12345), util_hash(text, 4, 12345));
    ck_assert_uint_ne(util_hash(text, 4, 12345), util_hash(text, 4, 54321));
    /* Only len bytes count. */
    ck_assert_uint_eq(util_hash("acmeXYZ", 4, 7), util_hash("acme", 4, 7));
    ck_assert_uint_ne(util_hash("acme", 3, 7), util_hash("acme", 4, 7));
    /* The empty key is hashable and seeded too. */
    ck_assert_uint_eq(util_hash("", 0, 3), util_hash(NULL, 0, 3));
    ck_assert_uint_ne(util_hash("", 0, 3), util_hash("", 0, 4));
    /* Keys one byte apart differ in the low bits too. */
    int same_low = 0;
    for (int i = 0; i < 256; i++) {
        char key[2] = {'k', (char)i};
        char other[2] = {'k', (char)(i + 1)};
        if ((util_hash(key, 2, 9) & 1023) == (util_hash(other, 2, 9) & 1023))
            same_low++;
    }
    ck_assert_int_le(same_low, 3);
}
END_TEST

START_TEST(test_hash_spread_low_bits)
{
    static const uint64_t seeds[] = {0, 1, 0xdeadbeefcafef00du};
    for (size_t s = 0; s < UTIL_ARRAY_LEN(seeds); s++) {
        unsigned buckets[1024] = {0};
        for (int i = 0; i < 10000; i++) {
            char key[32];
            int len = snprintf(key, sizeof(key), "key:%d", i);
            buckets[util_hash(key, (size_t)len, seeds[s]) & 1023]++;
        }
        unsigned max = 0, empty = 0;
        for (size_t b = 0; b < 1024; b++) {
            if (buckets[b] > max)
                max = buckets[b];
            if (buckets[b] == 0)
                empty++;
        }
        ck_assert_msg(max <= 40, "seed %zu: a bucket holds %u keys", s, max);
        ck_assert_msg(empty < 10, "seed %zu: %u empty buckets", s, empty);
    }
    /* Sequential binary keys (entry ids) spread too. */
    unsigned buckets[1024] = {0};
    for (uint32_t i = 0; i < 10000; i++) {
        buckets[util_hash(&i, sizeof(i), 42) & 1023]++;
    }
    for (size_t b = 0; b < 1024; b++)
        ck_assert_uint_le(buckets[b], 40);
}
END_TEST

/* ---- allocation ---- */

START_TEST(test_alloc_size)
{
    ck_assert_uint_eq(util_alloc_size(NULL), 0);
    for (size_t size = 1; size <= 5000; size += (size < 64 ? 1 : 37)) {
        void *ptr = xmalloc(size);
        ck_assert_uint_ge(util_alloc_size(ptr), size);
        free(ptr);
    }
    void *big = xmalloc(1 << 20);
    ck_assert_uint_ge(util_alloc_size(big), (size_t)1 << 20);
    free(big);
}
END_TEST

START_TEST(test_x_allocators)
{
    char *zero = xmalloc(0);
    ck_assert_ptr_nonnull(zero);
    free(zero);

    unsigned char *cleared = xcalloc(100, 3);
    for (size_t i = 0; i < 300; i++)
        ck_assert_uint_eq(cleared[i], 0);
    free(cleared);
    free(xcalloc(0, 0));

    char *grown = xmalloc(4);
    memcpy(grown, "abcd", 4);
    grown = xrealloc(grown, 100000);
    ck_assert_int_eq(memcmp(grown, "abcd", 4), 0);
    grown = xrealloc(grown, 0);
    ck_assert_ptr_nonnull(grown);
    free(grown);

    char *dup = xstrdup("tenant");
    ck_assert_str_eq(dup, "tenant");
    free(dup);
    dup = xstrdup("");
    ck_assert_str_eq(dup, "");
    free(dup);
}
END_TEST

START_TEST(test_xstrndup_xmemdup)
{
    /* xstrndup copies exactly len bytes (even past a NUL) and terminates. */
    char *copy = xstrndup("acme:role", 4);
    ck_assert_str_eq(copy, "acme");
    ck_assert_uint_eq(util_alloc_size(copy) >= 5, 1);
    free(copy);
    copy = xstrndup("ab\0cd", 5);
    ck_assert_int_eq(memcmp(copy, "ab\0cd", 6), 0);
    free(copy);
    copy = xstrndup("whatever", 0);
    ck_assert_str_eq(copy, "");
    free(copy);

    const unsigned char blob[] = {0, 1, 2, 0xff, 0, 'x'};
    unsigned char *mem = xmemdup(blob, sizeof(blob));
    ck_assert_int_eq(memcmp(mem, blob, sizeof(blob)), 0);
    ck_assert_ptr_ne(mem, blob);
    free(mem);
    void *empty = xmemdup(NULL, 0);
    ck_assert_ptr_nonnull(empty);
    free(empty);

    char large[10000];
    for (size_t i = 0; i < sizeof(large); i++)
        large[i] = (char)(i * 31);
    char *big = xmemdup(large, sizeof(large));
    ck_assert_int_eq(memcmp(big, large, sizeof(large)), 0);
    free(big);
}
END_TEST

/* ---- clocks and RSS ---- */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

START_TEST(test_clocks)
{
    uint64_t previous = util_monotonic_us();
    for (int i = 0; i < 10000; i++) {
        uint64_t now = util_monotonic_us();
        ck_assert_uint_ge(now, previous);
        previous = now;
    }
    uint64_t ms_before = util_monotonic_ms();
    uint64_t us_before = util_monotonic_us();
    sleep_ms(25);
    uint64_t ms_after = util_monotonic_ms();
    uint64_t us_after = util_monotonic_us();
    ck_assert_uint_ge(ms_after - ms_before, 25);
    ck_assert_uint_lt(ms_after - ms_before, 5000);
    ck_assert_uint_ge(us_after - us_before, 25000);
    /* Both read the same clock. */
    uint64_t ms = util_monotonic_ms();
    uint64_t us = util_monotonic_us();
    ck_assert_uint_ge(us / 1000, ms);
    ck_assert_uint_le(us / 1000 - ms, 1);

    uint64_t wall = util_realtime_ms();
    uint64_t seconds = (uint64_t)time(NULL);
    ck_assert_uint_ge(wall / 1000 + 1, seconds);
    ck_assert_uint_le(wall / 1000, seconds + 1);
    ck_assert_uint_gt(wall, 1600000000000ull); /* after 2020 */
}
END_TEST

START_TEST(test_rss)
{
    uint64_t rss = util_rss_bytes();
    ck_assert_uint_gt(rss, 0);
    ck_assert_uint_eq(rss % 1024, 0);
    /* Touching 32 MiB shows up. */
    size_t size = 32u << 20;
    char *block = xmalloc(size);
    memset(block, 1, size);
    uint64_t grown = util_rss_bytes();
    ck_assert_uint_ge(grown, rss + (size / 2));
    free(block);
}
END_TEST

static Suite *util_suite(void)
{
    Suite *suite = suite_create("util");
    TCase *format = tcase_create("format");
    tcase_add_test(format, test_timeval_from_ms);
    tcase_add_test(format, test_random);
    tcase_add_test(format, test_varint);
    tcase_add_test(format, test_format_double_table);
    tcase_add_test(format, test_format_double_roundtrip_random);
    tcase_add_test(format, test_format_double_small_buffer);
    tcase_add_test(format, test_format_human_bytes);
    tcase_add_test(format, test_equal_nocase);
    tcase_set_timeout(format, 120);
    suite_add_tcase(suite, format);

    TCase *hash = tcase_create("hash");
    tcase_add_test(hash, test_hash_deterministic_and_seeded);
    tcase_add_test(hash, test_hash_spread_low_bits);
    suite_add_tcase(suite, hash);

    TCase *memory = tcase_create("memory");
    tcase_add_test(memory, test_alloc_size);
    tcase_add_test(memory, test_x_allocators);
    tcase_add_test(memory, test_xstrndup_xmemdup);
    tcase_add_test(memory, test_rss);
    suite_add_tcase(suite, memory);

    TCase *clocks = tcase_create("clocks");
    tcase_add_test(clocks, test_clocks);
    suite_add_tcase(suite, clocks);
    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(util_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
