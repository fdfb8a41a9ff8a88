/* test_yaml_reader.c - the event source of the config loader: document
 * framing, aliases refused, positioned errors, the first error kept.
 * (test_config.c covers the messages as the loader words them.) */
#include <check.h>
#include <string.h>

#include "yaml_reader.h"

static char error[ERROR_MAX];

/* Opens text and reads its root: returns what yaml_reader_root() returned;
 * on 1 the root event is in *root. */
static int open_root(struct yaml_reader *reader, const char *text, yaml_event_t *root)
{
    ck_assert_int_eq(yaml_reader_open(reader, "t.yaml", text, strlen(text), error), 0);
    return yaml_reader_root(reader, root);
}

START_TEST(test_empty_has_no_root)
{
    static const char *const texts[] = {"", "# a comment only\n", "\n\n"};
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        struct yaml_reader reader;
        yaml_event_t root;
        ck_assert_int_eq(open_root(&reader, texts[i], &root), 0);
        ck_assert_str_eq(error, "");
        yaml_reader_close(&reader);
    }
    /* NULL text reads as empty */
    struct yaml_reader reader;
    yaml_event_t root;
    ck_assert_int_eq(yaml_reader_open(&reader, "t.yaml", NULL, 5, error), 0);
    ck_assert_int_eq(yaml_reader_root(&reader, &root), 0);
    yaml_reader_close(&reader);
}
END_TEST

START_TEST(test_walk_a_mapping)
{
    struct yaml_reader reader;
    yaml_event_t root, event;
    const char *text;
    ck_assert_int_eq(open_root(&reader, "a: ~\nb: 'x'\n", &root), 1);
    ck_assert_int_eq(root.type, YAML_MAPPING_START_EVENT);
    ck_assert_str_eq(yaml_reader_describe(&root), "a mapping");
    yaml_event_delete(&root);

    ck_assert_int_eq(yaml_reader_next(&reader, &event), 0);
    ck_assert_str_eq(yaml_reader_scalar(&event), "a");
    yaml_event_delete(&event);
    ck_assert_int_eq(yaml_reader_next(&reader, &event), 0);
    ck_assert(yaml_reader_is_null(&event));
    yaml_event_delete(&event);
    ck_assert_int_eq(yaml_reader_next(&reader, &event), 0);
    yaml_event_delete(&event);
    ck_assert_int_eq(yaml_reader_next(&reader, &event), 0);
    ck_assert(!yaml_reader_is_null(&event)); /* quoted: a string, not null */
    ck_assert_int_eq(yaml_reader_scalar_text(&reader, "b", &event, &text), 0);
    ck_assert_str_eq(text, "x");
    yaml_event_delete(&event);
    ck_assert_int_eq(yaml_reader_next(&reader, &event), 0);
    ck_assert_int_eq(event.type, YAML_MAPPING_END_EVENT);
    yaml_event_delete(&event);

    ck_assert_int_eq(yaml_reader_end(&reader), 0);
    ck_assert_str_eq(error, "");
    yaml_reader_close(&reader);
}
END_TEST

START_TEST(test_second_document_refused)
{
    struct yaml_reader reader;
    yaml_event_t root;
    ck_assert_int_eq(open_root(&reader, "a\n---\nb\n", &root), 1);
    yaml_event_delete(&root);
    ck_assert_int_eq(yaml_reader_end(&reader), -1);
    ck_assert_str_eq(error, "t.yaml:2:1: only one YAML document is allowed");
    yaml_reader_close(&reader);
}
END_TEST

START_TEST(test_alias_refused)
{
    struct yaml_reader reader;
    yaml_event_t root, event;
    ck_assert_int_eq(open_root(&reader, "- &x 1\n- *x\n", &root), 1);
    yaml_event_delete(&root);
    ck_assert_int_eq(yaml_reader_next(&reader, &event), 0);
    yaml_event_delete(&event);
    ck_assert_int_eq(yaml_reader_next(&reader, &event), -1);
    ck_assert_str_eq(error, "t.yaml:2:3: aliases are not supported");
    yaml_reader_close(&reader);
}
END_TEST

/* The syntax error is found by open(), before any event is handed out. */
START_TEST(test_syntax_error_at_open)
{
    struct yaml_reader reader;
    const char *text = "a: 1\nb: [1, 2\n";
    ck_assert_int_eq(yaml_reader_open(&reader, "t.yaml", text, strlen(text), error), -1);
    ck_assert_msg(strncmp(error, "t.yaml:3:1: syntax error: ", 26) == 0, "%s", error);
    yaml_reader_close(&reader);

    text = "a:\n\tb: 1\n";
    ck_assert_int_eq(yaml_reader_open(&reader, "t.yaml", text, strlen(text), error), -1);
    ck_assert_msg(strstr(error, "(a tab: indent YAML with spaces)") != NULL, "%s", error);
    yaml_reader_close(&reader);
}
END_TEST

START_TEST(test_first_error_kept)
{
    struct yaml_reader reader;
    yaml_mark_t mark = {0, 4, 6};
    ck_assert_int_eq(yaml_reader_open(&reader, "t.yaml", "", 0, error), 0);
    ck_assert_int_eq(yaml_reader_fail(&reader, &mark, "first %d", 1), -1);
    ck_assert_int_eq(yaml_reader_fail(&reader, NULL, "second"), -1);
    ck_assert_str_eq(error, "t.yaml:5:7: first 1");
    yaml_reader_close(&reader);

    ck_assert_int_eq(yaml_reader_open(&reader, "t.yaml", "", 0, error), 0);
    ck_assert_str_eq(error, ""); /* open clears it */
    yaml_reader_fail(&reader, NULL, "no position");
    ck_assert_str_eq(error, "t.yaml: no position");
    yaml_reader_close(&reader);
}
END_TEST

START_TEST(test_nul_in_scalar)
{
    struct yaml_reader reader;
    yaml_event_t root;
    const char *text;
    ck_assert_int_eq(open_root(&reader, "\"a\\0b\"\n", &root), 1);
    ck_assert_int_eq(yaml_reader_scalar_text(&reader, "key", &root, &text), -1);
    ck_assert_str_eq(error, "t.yaml:1:1: 'key' contains a NUL byte");
    yaml_event_delete(&root);
    yaml_reader_close(&reader);
}
END_TEST

static Suite *yaml_reader_suite(void)
{
    Suite *s = suite_create("yaml_reader");
    TCase *tc = tcase_create("reader");
    tcase_add_test(tc, test_empty_has_no_root);
    tcase_add_test(tc, test_walk_a_mapping);
    tcase_add_test(tc, test_second_document_refused);
    tcase_add_test(tc, test_alias_refused);
    tcase_add_test(tc, test_syntax_error_at_open);
    tcase_add_test(tc, test_first_error_kept);
    tcase_add_test(tc, test_nul_in_scalar);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *runner = srunner_create(yaml_reader_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failures = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failures ? 1 : 0;
}
