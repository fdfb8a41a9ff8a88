/* test_perm.c - permission pattern matching and validation (docs/reference.md §2), as tables. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "perm.h"

static const struct {
    const char *pattern;
    const char *permission;
    bool granted;
} match_cases[] = {
    /* the examples of docs/reference.md §2 */
    {"crm.*", "crm.leads", true},
    {"crm.*", "crm.leads.create", true},
    {"crm.*", "crm", false},
    {"crm.*", "crmx.a", false},
    {"*.read", "users.read", true},
    {"*.read", "a.b.read", false},
    {"*.read", "read", false},
    /* "*" alone */
    {"*", "crm", true},
    {"*", "crm.leads.create", true},
    {"*", "", false},
    /* literals */
    {"crm.leads.create", "crm.leads.create", true},
    {"crm.leads.create", "crm.leads", false},
    {"crm.leads", "crm.leads.create", false},
    {"crm.leads", "CRM.leads", false},
    {"crm.leads", "crm.lead", false},
    {"crm.lead", "crm.leads", false},
    {"crm", "crm", true},
    {"crm", "crmx", false},
    /* a middle star is exactly one segment */
    {"crm.*.create", "crm.leads.create", true},
    {"crm.*.create", "crm.create", false},
    {"crm.*.create", "crm.a.b.create", false},
    {"crm.*.create", "crm.leads.delete", false},
    {"*.*", "a.b", true},
    {"*.*", "a.b.c", true},
    {"*.*", "a", false},
    {"*.b.*", "a.b.c.d", true},
    {"*.b.*", "a.c.c", false},
    /* a star inside a segment is a literal */
    {"crm*", "crmx", false},
    {"crm*", "crm*", true},
    {"crm.a*", "crm.ab", false},
    /* malformed permissions are never granted */
    {"crm.*", "crm.", false},
    {"crm.*", "crm..leads", false},
    {"crm.*", "crm.leads.", false},
    {"*", ".crm", false},
    {"*", "crm leads", false},
    {"*", "crm.\x01", false},
    {"crm.*", "crm.lé", false},
    /* malformed patterns grant nothing */
    {"", "crm", false},
    {"crm.", "crm.", false},
    {".crm", ".crm", false},
    {"crm..*", "crm..a", false},
    {"crm.", "crm.a", false},
    {"*.", "a.b", false},
    {"*..a", "b.a", false},
    {"crm. a", "crm.a", false},
    {"crm.*", "crm", false},
};

START_TEST(test_match_table)
{
    const char *pattern = match_cases[_i].pattern;
    const char *permission = match_cases[_i].permission;
    bool got = perm_match(pattern, strlen(pattern), permission, strlen(permission));
    ck_assert_msg(got == match_cases[_i].granted, "perm_match(\"%s\", \"%s\") = %d, want %d",
                  pattern, permission, got, match_cases[_i].granted);
}
END_TEST

/* perm_match_valid() answers as perm_match() for every well-formed
 * permission of the table, walking the pattern alone. */
START_TEST(test_match_valid_table)
{
    const char *pattern = match_cases[_i].pattern;
    const char *permission = match_cases[_i].permission;
    if (!perm_valid(permission, strlen(permission)))
        return;
    bool got = perm_match_valid(pattern, strlen(pattern), permission, strlen(permission));
    ck_assert_msg(got == match_cases[_i].granted, "perm_match_valid(\"%s\", \"%s\") = %d, want %d",
                  pattern, permission, got, match_cases[_i].granted);
}
END_TEST

static const struct {
    const char *text;
    bool valid;
} valid_cases[] = {
    {"crm", true},
    {"crm.leads.create", true},
    {"*", true},
    {"crm.*", true},
    {"*.read", true},
    {"a-b_c:d/e!~", true},
    {"!.~", true},
    {"", false},
    {".", false},
    {".crm", false},
    {"crm.", false},
    {"crm..leads", false},
    {"crm leads", false},
    {"crm\tleads", false},
    {"crm.\x7f", false},
    {"caf\xc3\xa9", false},
};

START_TEST(test_valid_table)
{
    const char *text = valid_cases[_i].text;
    ck_assert_msg(perm_valid(text, strlen(text)) == valid_cases[_i].valid,
                  "perm_valid(\"%s\") != %d", text, valid_cases[_i].valid);
}
END_TEST

/* The definition, byte by byte: what perm_valid() must answer. */
static bool valid_reference(const char *text, size_t len)
{
    if (len == 0)
        return false;
    bool segment_empty = true;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '.') {
            if (segment_empty)
                return false;
            segment_empty = true;
        } else if (c >= 0x21 && c <= 0x7e) {
            segment_empty = false;
        } else {
            return false;
        }
    }
    return !segment_empty;
}

/* perm_valid() reads eight bytes at a time: every byte class at every
 * place of texts up to 40 bytes long (word edges, tails), dots next to each
 * other across words, and pseudo-random texts, each from an exact-size copy
 * so that an overread shows under ASan. */
START_TEST(test_valid_every_place)
{
    static const unsigned char bytes[] = {0x00, 0x01, 0x20, 0x21, '*', '-', '.', '/', 'a',
                                          'Z',  0x7e, 0x7f, 0x80, 0xae, 0xff};
    char text[41];
    for (size_t len = 1; len <= 40; len++) {
        for (size_t at = 0; at < len; at++) {
            for (size_t b = 0; b < sizeof(bytes); b++) {
                for (size_t dot_at = 0; dot_at <= len; dot_at++) {
                    memset(text, 'x', len);
                    if (dot_at < len)
                        text[dot_at] = '.';
                    text[at] = (char)bytes[b];
                    char *copy = malloc(len);
                    memcpy(copy, text, len);
                    ck_assert_msg(perm_valid(copy, len) == valid_reference(copy, len),
                                  "len %zu, byte 0x%02x at %zu, dot at %zu", len, bytes[b], at,
                                  dot_at);
                    free(copy);
                }
            }
        }
    }
    uint64_t state = 42;
    for (int n = 0; n < 100000; n++) {
        state = state * 6364136223846793005u + 1442695040888963407u;
        size_t len = 1 + (size_t)(state >> 59);
        for (size_t i = 0; i < len; i++) {
            state = state * 6364136223846793005u + 1442695040888963407u;
            unsigned pick = (unsigned)(state >> 60);
            text[i] = pick < 9 ? 'a' : pick < 14 ? '.' : (char)bytes[(state >> 40) % sizeof(bytes)];
        }
        ck_assert_msg(perm_valid(text, len) == valid_reference(text, len), "text %.*s",
                      (int)len, text);
    }
}
END_TEST

/* Lengths are honoured: no NUL terminator is needed and none is read past. */
START_TEST(test_lengths)
{
    ck_assert(perm_match("crm.*XYZ", 5, "crm.leadsXYZ", 9));
    ck_assert(!perm_match("crm.*", 5, "crm.leads", 3));
    ck_assert(perm_valid("crm.leads..", 9));
    ck_assert(!perm_valid("crm.leads..", 10));
    ck_assert(!perm_valid(NULL, 0));
    ck_assert(!perm_match(NULL, 0, "a", 1));
    ck_assert(!perm_match("*", 1, NULL, 0));

    /* An embedded NUL is not a printable byte. */
    ck_assert(!perm_valid("a\0b", 3));
    ck_assert(!perm_match("*", 1, "a\0b", 3));

    /* Exact-size heap copies so that valgrind/ASan see any overread. */
    char *pattern = malloc(5), *permission = malloc(16);
    memcpy(pattern, "crm.*", 5);
    memcpy(permission, "crm.leads.create", 16);
    ck_assert(perm_match(pattern, 5, permission, 16));
    ck_assert(perm_match_valid(pattern, 5, permission, 16));
    ck_assert(perm_valid(permission, 16));
    memcpy(pattern, "*.lea", 5);
    ck_assert(!perm_match_valid(pattern, 5, permission, 16));
    ck_assert(!perm_match_valid(pattern, 5, permission, 3));
    ck_assert(!perm_match_valid(pattern, 0, permission, 16));
    free(pattern);
    free(permission);
}
END_TEST

static Suite *perm_suite(void)
{
    Suite *s = suite_create("perm");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_match_table, 0,
                        (int)(sizeof(match_cases) / sizeof(match_cases[0])));
    tcase_add_loop_test(tc, test_match_valid_table, 0,
                        (int)(sizeof(match_cases) / sizeof(match_cases[0])));
    tcase_add_loop_test(tc, test_valid_table, 0,
                        (int)(sizeof(valid_cases) / sizeof(valid_cases[0])));
    tcase_add_test(tc, test_valid_every_place);
    tcase_add_test(tc, test_lengths);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *runner = srunner_create(perm_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
