/* test_names.c - names.c: the {tenant}/{kind}/{key} templates expanded as
 * fill.c (L2 keys) and origin.c (L3 paths) use them, and entry names parsed
 * back (redis.key_format, docs/reference.md §4): bounds-first, never reading a
 * byte past the name it is given. Each name is placed at the very end of a
 * readable page followed by an inaccessible one, so a read past it crashes
 * the test in any build, not only under AddressSanitizer. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "names.h"
#include "config.h"

static char *guarded_page;
static size_t page_size;

/* Copies text (without its NUL) so that it ends where the guard page begins. */
static const char *at_page_end(const char *text, size_t len)
{
    char *at = guarded_page + page_size - len;
    memcpy(at, text, len);
    return at;
}

static void setup(void)
{
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    guarded_page = mmap(NULL, 2 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                        -1, 0);
    ck_assert_ptr_ne(guarded_page, MAP_FAILED);
    ck_assert_int_eq(mprotect(guarded_page + page_size, page_size, PROT_NONE), 0);
}

static void teardown(void)
{
    munmap(guarded_page, 2 * page_size);
}

static struct config *config_with_format(const char *format)
{
    char text[512];
    snprintf(text, sizeof(text), "redis:\n  key_format: \"%s\"\n", format);
    char error[ERROR_MAX] = "";
    struct config *config = config_load_buffer("test", text, strlen(text), error);
    ck_assert_msg(config != NULL, "config: %s", error);
    return config;
}

/* Parses name (placed at a page end); returns whether it matched. */
static bool parse(const struct config *config, const char *name, const char **tenant,
                  size_t *tenant_len, int *kind, const char **key, size_t *key_len)
{
    size_t len = strlen(name);
    return names_parse_entry(config, at_page_end(name, len), len, tenant, tenant_len, kind, key,
                             key_len);
}

START_TEST(test_names_parse_within_bounds)
{
    struct config *config = config_with_format("cache:{tenant}:{kind}:{key}");
    const char *tenant, *key;
    size_t tenant_len, key_len;
    int kind;
    ck_assert(parse(config, "cache:acme:role:admin", &tenant, &tenant_len, &kind, &key, &key_len));
    ck_assert_uint_eq(tenant_len, 4);
    ck_assert(memcmp(tenant, "acme", 4) == 0);
    ck_assert_int_eq(kind, config_kind_find(config, "role", 4));
    ck_assert_uint_eq(key_len, 5);
    ck_assert(memcmp(key, "admin", 5) == 0);
    /* Names cut short inside or after every placeholder: no match, and no
     * byte read past the name. */
    static const char *const short_names[] = {
        "cache:", "cache:acme", "cache:acme:", "cache:acme:role", "cache:acme:role:",
        "cache:acme:rolex", "c", "",
    };
    for (size_t i = 0; i < sizeof(short_names) / sizeof(short_names[0]); i++)
        ck_assert_msg(!parse(config, short_names[i], &tenant, &tenant_len, &kind, &key, &key_len),
                      "'%s' matched", short_names[i]);
    config_free(config);
}
END_TEST

START_TEST(test_names_with_a_trailing_literal)
{
    struct config *config = config_with_format("{tenant}/{kind}/{key}.json");
    const char *tenant, *key;
    size_t tenant_len, key_len;
    int kind;
    ck_assert(parse(config, "acme/role/admin.json", &tenant, &tenant_len, &kind, &key, &key_len));
    ck_assert_uint_eq(key_len, 5);
    ck_assert(!parse(config, "acme/role/admin", &tenant, &tenant_len, &kind, &key, &key_len));
    ck_assert(!parse(config, "acme/role/admin.jso", &tenant, &tenant_len, &kind, &key, &key_len));
    ck_assert(!parse(config, "acme", &tenant, &tenant_len, &kind, &key, &key_len));
    config_free(config);
}
END_TEST

START_TEST(test_expand)
{
    const char *const values[NAMES_PARTS] = {"acme", "role", "a:b"};
    const size_t lens[NAMES_PARTS] = {4, 4, 3};
    size_t len = 0;
    char *out = names_expand("cache:{tenant}:{kind}:{key}", values, lens, &len);
    ck_assert_str_eq(out, "cache:acme:role:a:b");
    ck_assert_uint_eq(len, strlen(out));
    free(out);
    /* repeated placeholders, unknown braces copied as they are, lengths not NULs */
    const char *const cut[NAMES_PARTS] = {"acmeXX", "role", NULL};
    out = names_expand("/{tenant}/{key}?t={tenant}&{other}", cut, lens, NULL);
    ck_assert_str_eq(out, "/acme/?t=acme&{other}");
    free(out);
    out = names_expand("", values, lens, &len);
    ck_assert_str_eq(out, "");
    ck_assert_uint_eq(len, 0);
    free(out);
}
END_TEST

START_TEST(test_placeholders)
{
    size_t len = 0;
    ck_assert_int_eq(names_placeholder("{tenant}/x", &len), NAMES_TENANT);
    ck_assert_uint_eq(len, 8);
    ck_assert_int_eq(names_placeholder("{kind}", &len), NAMES_KIND);
    ck_assert_uint_eq(len, 6);
    ck_assert_int_eq(names_placeholder("{key}", &len), NAMES_KEY);
    ck_assert_uint_eq(len, 5);
    ck_assert_int_eq(names_placeholder("{keys}", &len), -1);
    ck_assert_int_eq(names_placeholder("{key}.json", &len), NAMES_KEY);
    ck_assert_int_eq(names_placeholder("{ke", &len), -1);
    ck_assert_int_eq(names_placeholder("tenant", &len), -1);
    ck_assert_str_eq(names_placeholder_text(NAMES_KIND), "{kind}");
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("names");
    TCase *templates = tcase_create("templates");
    tcase_add_test(templates, test_expand);
    tcase_add_test(templates, test_placeholders);
    suite_add_tcase(suite, templates);
    TCase *names = tcase_create("names");
    tcase_add_checked_fixture(names, setup, teardown);
    tcase_add_test(names, test_names_parse_within_bounds);
    tcase_add_test(names, test_names_with_a_trailing_literal);
    suite_add_tcase(suite, names);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
