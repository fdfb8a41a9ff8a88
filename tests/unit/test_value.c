/* test_value.c - value shapes (docs/reference.md §2): validation, compact text, derived blobs. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "value.h"

/* Prepares text as shape; asserts success. */
static void prepare_ok(enum config_shape shape, const char *text, struct value_prepared *out)
{
    char error[ERROR_MAX] = "";
    int rc = value_prepare_text(shape, text, strlen(text), out, error);
    ck_assert_msg(rc == 0, "%s rejected: %s", text, error);
    ck_assert_ptr_nonnull(out->json);
    ck_assert_uint_eq(out->json_len, strlen(out->json));
}

/* Asserts that text is rejected as shape, with an error containing want, and
 * that out is left empty. */
static void prepare_bad(enum config_shape shape, const char *text, const char *want)
{
    struct value_prepared out;
    char error[ERROR_MAX] = "";
    memset(&out, 0xa5, sizeof(out));
    int rc = value_prepare_text(shape, text, strlen(text), &out, error);
    ck_assert_msg(rc == -1, "%s accepted", text);
    ck_assert_msg(strstr(error, want) != NULL, "%s: error '%s' lacks '%s'", text, error, want);
    ck_assert_ptr_null(out.json);
    ck_assert_ptr_null(out.derived);
    ck_assert_ptr_null(out.index_key);
    ck_assert_uint_eq(out.json_len, 0);
    ck_assert_uint_eq(out.derived_len, 0);
}

/* blob: the size of the derived blob: 0 when the text is the answer, 1 for
 * the place of a cost member written as the answer, else the answer's. */
static void assert_credit(const char *json, double cost, const char *text, size_t blob)
{
    struct value_prepared v;
    const char *t;
    size_t t_len;
    prepare_ok(CONFIG_SHAPE_CREDIT, json, &v);
    ck_assert_int_eq(value_credit(v.json, v.json_len, v.derived, v.derived_len, &t, &t_len), 0);
    ck_assert_msg(t_len == strlen(text) && memcmp(t, text, t_len) == 0, "%s: text '%.*s'",
                  json, (int)t_len, t);
    ck_assert_msg(strtod(text, NULL) == cost, "%s: cost", json);
    /* a text that is already the answer is not copied into the blob */
    ck_assert_msg(v.derived_len == blob, "%s: blob of %zu bytes", json, v.derived_len);
    ck_assert_ptr_null(v.index_key);
    value_clear(&v);
}

START_TEST(test_credit)
{
    assert_credit("3.5", 3.5, "3.5", 0);
    assert_credit("12", 12.0, "12", 0);
    assert_credit("0", 0.0, "0", 0);
    assert_credit("-0.0", 0.0, "0", 1);
    assert_credit("-2.25", -2.25, "-2.25", 0);
    assert_credit("0.1", 0.1, "0.1", 0);
    /* the cost member written in its shortest form: its place, a byte */
    assert_credit("{\"cost\": 3.5}", 3.5, "3.5", 1);
    assert_credit("{\"cost\": 7, \"currency\": \"EUR\", \"tags\": [1]}", 7.0, "7", 1);
    assert_credit("{\"cost\": 0.30000000000000004}", 0.30000000000000004, "0.30000000000000004",
                  1);
    assert_credit("{\"cost\": -2.25, \"currency\": \"credits\"}", -2.25, "-2.25", 1);
    assert_credit("{\"currency\": \"EUR\", \"cost\": 12}", 12.0, "12", 1);
    assert_credit("{\"x\": {\"cost\": 1}, \"l\": [2, 3], \"cost\": 2.5}", 2.5, "2.5", 1);
    /* a number written in another form is answered in the shortest one */
    assert_credit("3.50", 3.5, "3.5", 3);
    assert_credit("1e1", 10.0, "10", 2);
    assert_credit("-0", 0.0, "0", 1);
    assert_credit("{\"cost\": 3.50}", 3.5, "3.5", 3);
    assert_credit("{\"cost\": 1E1}", 10.0, "10", 2);
    /* a place fits the byte up to offset 44 ('-' - 1); further on, a copy */
    assert_credit("{\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\": 1, \"cost\": 12.5}", 12.5, "12.5", 1);
    assert_credit("{\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\": 1, \"cost\": 12.5}", 12.5, "12.5", 4);

    /* A huge real: the text reads back exactly. */
    struct value_prepared v;
    const char *t;
    size_t t_len;
    prepare_ok(CONFIG_SHAPE_CREDIT, "1e300", &v);
    ck_assert_int_eq(value_credit(v.json, v.json_len, v.derived, v.derived_len, &t, &t_len), 0);
    char *copy = strndup(t, t_len);
    ck_assert(strtod(copy, NULL) == 1e300);
    free(copy);
    value_clear(&v);
}
END_TEST

START_TEST(test_credit_rejected)
{
    prepare_bad(CONFIG_SHAPE_CREDIT, "\"3\"", "credit value must be a number");
    prepare_bad(CONFIG_SHAPE_CREDIT, "true", "credit value must be a number");
    prepare_bad(CONFIG_SHAPE_CREDIT, "null", "credit value must be a number");
    prepare_bad(CONFIG_SHAPE_CREDIT, "[3]", "credit value must be a number");
    prepare_bad(CONFIG_SHAPE_CREDIT, "{\"price\": 3}", "credit object must have a number 'cost'");
    prepare_bad(CONFIG_SHAPE_CREDIT, "{\"cost\": \"3\"}", "credit cost must be a finite number");
    prepare_bad(CONFIG_SHAPE_CREDIT, "{\"cost\": null}", "credit cost must be a finite number");
    prepare_bad(CONFIG_SHAPE_CREDIT, "{\"cost\": {}}", "credit cost must be a finite number");
    /* the scan refuses a real that overflows a double, as jansson does */
    prepare_bad(CONFIG_SHAPE_CREDIT, "1e999", "invalid JSON");
}
END_TEST

/* Collects a value_strings into a comma-joined string for comparison. */
static void join_strings(struct value_strings *strings, char *out, size_t size)
{
    const char *s;
    size_t len;
    out[0] = '\0';
    while (value_strings_next(strings, &s, &len)) {
        size_t used = strlen(out);
        snprintf(out + used, size - used, "%s%.*s", used ? "," : "", (int)len, s);
    }
}

static void assert_role(const char *json, const char *want)
{
    struct value_prepared v;
    struct value_strings perms;
    char joined[256];
    prepare_ok(CONFIG_SHAPE_ROLE, json, &v);
    ck_assert_int_eq(value_role_permissions(v.json, v.json_len, v.derived, v.derived_len, &perms),
                     0);
    join_strings(&perms, joined, sizeof(joined));
    ck_assert_str_eq(joined, want);
    /* the walk that may stop early reads the same patterns */
    ck_assert_int_eq(
        value_role_permissions_lazy(v.json, v.json_len, v.derived, v.derived_len, &perms), 0);
    join_strings(&perms, joined, sizeof(joined));
    ck_assert_str_eq(joined, want);
    value_clear(&v);
}

START_TEST(test_role)
{
    assert_role("[\"crm.*\", \"users.read\", \"*\"]", "crm.*,users.read,*");
    assert_role("{\"permissions\": [\"crm.leads.create\"], \"name\": \"Sales\"}",
                "crm.leads.create");
    assert_role("[]", "");
    assert_role("{\"permissions\": []}", "");
    /* patterns written with escapes are read decoded */
    assert_role("[\"a\\u002eb\", \"c.*\", \"q\\\"x\"]", "a.b,c.*,q\"x");
    /* the member found by name whatever comes before it */
    assert_role("{\"x\": {\"permissions\": [\"no\"], \"s\": \"]\\\\\"}, \"l\": [[], {}],"
                " \"perm\\u0069ssions\": [\"yes.*\", \"ok\"], \"z\": 1}",
                "yes.*,ok");
}
END_TEST

START_TEST(test_role_rejected)
{
    prepare_bad(CONFIG_SHAPE_ROLE, "\"crm.*\"", "role value must be an array");
    prepare_bad(CONFIG_SHAPE_ROLE, "3", "role value must be an array");
    prepare_bad(CONFIG_SHAPE_ROLE, "null", "role value must be an array");
    prepare_bad(CONFIG_SHAPE_ROLE, "{}", "role object must have an array 'permissions'");
    prepare_bad(CONFIG_SHAPE_ROLE, "{\"permissions\": \"crm.*\"}",
                "role permissions must be an array of strings");
    prepare_bad(CONFIG_SHAPE_ROLE, "[\"crm.*\", 1]", "role permissions must be an array of strings");
    prepare_bad(CONFIG_SHAPE_ROLE, "[[\"crm\"]]", "role permissions must be an array of strings");
    prepare_bad(CONFIG_SHAPE_ROLE, "[\"crm..x\"]", "role permission 0 is not a valid pattern");
    prepare_bad(CONFIG_SHAPE_ROLE, "[\"a\", \"crm leads\"]", "role permission 1 is not a valid");
    prepare_bad(CONFIG_SHAPE_ROLE, "[\"\"]", "not a valid pattern");
    prepare_bad(CONFIG_SHAPE_ROLE, "[\"crm.\"]", "not a valid pattern");
}
END_TEST

static void assert_user(const char *json, const char *status, const char *roles)
{
    struct value_prepared v;
    struct value_strings r;
    const char *s;
    size_t s_len;
    char joined[256];
    prepare_ok(CONFIG_SHAPE_USER, json, &v);
    ck_assert_int_eq(value_user(v.json, v.json_len, v.derived, v.derived_len, &s, &s_len, &r), 0);
    ck_assert_msg(s_len == strlen(status) && memcmp(s, status, s_len) == 0, "%s: status", json);
    join_strings(&r, joined, sizeof(joined));
    ck_assert_str_eq(joined, roles);
    s = NULL;
    ck_assert_int_eq(
        value_user_lazy(v.json, v.json_len, v.derived, v.derived_len, &s, &s_len, &r), 0);
    ck_assert_msg(s_len == strlen(status) && memcmp(s, status, s_len) == 0, "%s: status", json);
    join_strings(&r, joined, sizeof(joined));
    ck_assert_str_eq(joined, roles);
    value_clear(&v);
}

START_TEST(test_user)
{
    assert_user("\"active\"", "active", "");
    assert_user("{\"status\": \"suspended\"}", "suspended", "");
    assert_user("{\"status\": \"active\", \"roles\": [\"admin\", \"sales\"], \"email\": \"x@y\"}",
                "active", "admin,sales");
    assert_user("{\"status\": \"active\", \"roles\": []}", "active", "");
    assert_user("{\"status\": \"active\", \"roles\": null}", "active", "");
    /* escapes; members in any order, after ones that hold the same names */
    assert_user("\"act\\u0069ve\"", "active", "");
    assert_user("{\"x\": {\"status\": \"no\", \"roles\": [\"n\"]}, \"roles\": [\"r\\\"1\", \"r2\"],"
                " \"st\\u0061tus\": \"yes\"}",
                "yes", "r\"1,r2");
}
END_TEST

/* Prepares text as shape and asserts the size of its blob. */
static void assert_derived_len(enum config_shape shape, const char *text, size_t want)
{
    struct value_prepared v;
    prepare_ok(shape, text, &v);
    ck_assert_msg(v.derived_len == want, "%s: blob of %zu bytes, not %zu", text, v.derived_len,
                  want);
    value_clear(&v);
}

/* The blob's sizes for the known shapes (the layout at the top of value.c):
 * a string without escapes is its place, a byte while the text is short; a
 * list of such strings is the place of its '[', a byte; a string with
 * escapes is its decoded bytes, and a list holding one lists every string. */
START_TEST(test_derived_compact)
{
    /* a seed user and a seed role: 2 bytes and 1 */
    assert_derived_len(CONFIG_SHAPE_USER,
                       "{\"status\":\"active\",\"roles\":[\"role-01-sales\",\"role-05-ops\"],"
                       "\"updated_at\":\"2026-01-01T00:00:00Z\"}",
                       2);
    assert_derived_len(CONFIG_SHAPE_USER,
                       "{ \"status\" : \"inactive\", \"roles\" : [ \"a\", \"b\", \"c\" ] }", 2);
    assert_derived_len(CONFIG_SHAPE_ROLE,
                       "{\"permissions\":[\"crm.*\",\"users.read\",\"billing.invoices.*\"],"
                       "\"updated_at\":\"2026-01-01T00:00:00Z\"}",
                       1);
    assert_derived_len(CONFIG_SHAPE_ROLE, "[\"crm.*\", \"*\"]", 1);
    /* empty lists, and no roles at all (an explicit list of 0) */
    assert_derived_len(CONFIG_SHAPE_ROLE, "[]", 1);
    assert_derived_len(CONFIG_SHAPE_ROLE, "{\"permissions\": []}", 1);
    assert_derived_len(CONFIG_SHAPE_USER, "{\"status\": \"active\", \"roles\": []}", 2);
    assert_derived_len(CONFIG_SHAPE_USER, "{\"status\": \"active\"}", 2);
    assert_derived_len(CONFIG_SHAPE_USER, "\"active\"", 2);
    assert_derived_len(CONFIG_SHAPE_USER, "{\"status\": \"active\", \"roles\": null}", 2);
    /* a role with escapes makes the list explicit: count, "r1" decoded (a
     * byte of length and 2), the place of "r2" */
    assert_derived_len(CONFIG_SHAPE_USER,
                       "{\"status\": \"active\", \"roles\": [\"r\\u0031\", \"r2\"]}",
                       1 + 1 + (1 + 2) + 1);
    /* the same when the escape is in the last string */
    assert_derived_len(CONFIG_SHAPE_ROLE, "[\"a.b\", \"c\", \"d\\u002ee\"]", 1 + 1 + 1 + (1 + 3));
    /* a status with escapes is decoded; the roles keep the short form */
    assert_derived_len(CONFIG_SHAPE_USER,
                       "{\"status\": \"act\\u0069ve\", \"roles\": [\"r1\", \"r2\"]}",
                       (1 + 6) + 1);
    /* escapes elsewhere in the value do not matter */
    assert_derived_len(CONFIG_SHAPE_USER,
                       "{\"note\": \"a\\\"b\", \"status\": \"active\", \"roles\": [\"r1\"]}", 2);
}
END_TEST

/* Builds a role of 300 patterns, the last of 200 bytes, the first written
 * with an escape when escaped. Returns the text, owned by the caller. */
static char *long_role(bool escaped)
{
    size_t cap = 16 * 1024, len = 0;
    char *text = xmalloc(cap);
    len += (size_t)snprintf(text + len, cap - len, "{\"permissions\": [");
    if (escaped)
        len += (size_t)snprintf(text + len, cap - len, "\"m\\u0030.*\",");
    for (int i = escaped ? 1 : 0; i < 299; i++)
        len += (size_t)snprintf(text + len, cap - len, "\"m%d.*\",", i);
    len += (size_t)snprintf(text + len, cap - len, "\"");
    for (int i = 0; i < 200; i++)
        text[len++] = 'x';
    snprintf(text + len, cap - len, "\"]}");
    return text;
}

static void assert_long_role(const struct value_prepared *v, struct value_strings *r)
{
    const char *str;
    size_t str_len;
    unsigned count = 0;
    char want[32];
    ck_assert_uint_eq(r->remaining, 300);
    while (value_strings_next(r, &str, &str_len)) {
        if (count < 299) {
            snprintf(want, sizeof(want), "m%u.*", count);
            ck_assert_uint_eq(str_len, strlen(want));
            ck_assert_mem_eq(str, want, str_len);
        } else {
            ck_assert_uint_eq(str_len, 200);
            ck_assert_int_eq(str[0], 'x');
            ck_assert_int_eq(str[199], 'x');
            /* the last string ends just before the text's "]}" */
            ck_assert_ptr_eq(str + str_len + 3, v->json + v->json_len);
        }
        count++;
    }
    ck_assert_uint_eq(count, 300);
}

/* Long lists and long strings read back in both forms (the explicit one
 * with two-byte varints for the count and the 200-byte string). */
START_TEST(test_derived_long)
{
    struct value_prepared v;
    struct value_strings r;
    char *text = long_role(false);
    prepare_ok(CONFIG_SHAPE_ROLE, text, &v);
    ck_assert_uint_eq(v.derived_len, 1);
    ck_assert_int_eq(value_role_permissions(v.json, v.json_len, v.derived, v.derived_len, &r), 0);
    assert_long_role(&v, &r);
    value_clear(&v);
    free(text);

    text = long_role(true);
    prepare_ok(CONFIG_SHAPE_ROLE, text, &v);
    ck_assert_uint_gt(v.derived_len, 300);
    ck_assert_int_eq(value_role_permissions(v.json, v.json_len, v.derived, v.derived_len, &r), 0);
    assert_long_role(&v, &r);
    /* A truncated blob is refused, never read past its end. */
    ck_assert_int_eq(value_role_permissions(v.json, v.json_len, v.derived, 2, &r), -1);
    ck_assert_int_eq(value_role_permissions(v.json, v.json_len, v.derived, v.derived_len - 1, &r),
                     -1);
    value_clear(&v);
    free(text);
}
END_TEST

/* A list read from the text is walked up to its ']', also when that is
 * the text's last byte, and counted exactly for PERMS; a blob whose place
 * is not the text's '[' (or opening quote) is refused. */
START_TEST(test_derived_text_walk)
{
    struct value_prepared role, user;
    struct value_strings r;
    const char *s;
    size_t len;
    char joined[64];
    prepare_ok(CONFIG_SHAPE_ROLE, "[\"a.b\",\"c\",\"d,e]\"]", &role);
    ck_assert_uint_eq(role.derived_len, 1);
    ck_assert_int_eq(
        value_role_permissions(role.json, role.json_len, role.derived, role.derived_len, &r), 0);
    ck_assert_uint_eq(r.remaining, 3);
    join_strings(&r, joined, sizeof(joined));
    ck_assert_str_eq(joined, "a.b,c,d,e]");
    ck_assert(!value_strings_next(&r, &s, &len));
    ck_assert_int_eq(
        value_role_permissions_lazy(role.json, role.json_len, role.derived, role.derived_len, &r),
        0);
    join_strings(&r, joined, sizeof(joined));
    ck_assert_str_eq(joined, "a.b,c,d,e]");

    prepare_ok(CONFIG_SHAPE_USER, "{\"status\":\"active\",\"roles\":[]}", &user);
    ck_assert_int_eq(
        value_user(user.json, user.json_len, user.derived, user.derived_len, &s, &len, &r), 0);
    ck_assert_uint_eq(r.remaining, 0);
    ck_assert(!value_strings_next(&r, &s, &len));

    /* each blob read with the other's text: the places do not fit */
    ck_assert_int_eq(value_role_permissions(user.json, user.json_len, role.derived,
                                            role.derived_len, &r),
                     -1);
    ck_assert_int_eq(value_role_permissions_lazy(user.json, user.json_len, role.derived,
                                                 role.derived_len, &r),
                     -1);
    ck_assert_int_eq(value_user(role.json, role.json_len, user.derived, user.derived_len, &s, &len,
                                &r),
                     -1);
    value_clear(&role);
    value_clear(&user);
}
END_TEST

START_TEST(test_user_rejected)
{
    prepare_bad(CONFIG_SHAPE_USER, "\"\"", "user status must be a non-empty string");
    prepare_bad(CONFIG_SHAPE_USER, "3", "user value must be a status string");
    prepare_bad(CONFIG_SHAPE_USER, "[\"active\"]", "user value must be a status string");
    prepare_bad(CONFIG_SHAPE_USER, "null", "user value must be a status string");
    prepare_bad(CONFIG_SHAPE_USER, "{}", "user object must have a string 'status'");
    prepare_bad(CONFIG_SHAPE_USER, "{\"roles\": [\"a\"]}", "user object must have a string");
    prepare_bad(CONFIG_SHAPE_USER, "{\"status\": 1}", "user status must be a non-empty string");
    prepare_bad(CONFIG_SHAPE_USER, "{\"status\": \"\"}", "user status must be a non-empty");
    prepare_bad(CONFIG_SHAPE_USER, "{\"status\": \"a\", \"roles\": \"admin\"}",
                "user roles must be an array of role ids");
    prepare_bad(CONFIG_SHAPE_USER, "{\"status\": \"a\", \"roles\": [\"\"]}", "user roles");
    prepare_bad(CONFIG_SHAPE_USER, "{\"status\": \"a\", \"roles\": [1]}", "user roles");
    prepare_bad(CONFIG_SHAPE_USER, "{\"status\": \"a\", \"roles\": [\"a b\"]}", "user roles");
}
END_TEST

START_TEST(test_object)
{
    struct value_prepared v;
    prepare_ok(CONFIG_SHAPE_OBJECT, "{ \"name\" : \"Ann\", \"age\" : 30 }", &v);
    ck_assert_str_eq(v.json, "{\"name\":\"Ann\",\"age\":30}");
    ck_assert_ptr_null(v.derived);
    ck_assert_uint_eq(v.derived_len, 0);
    value_clear(&v);
    prepare_ok(CONFIG_SHAPE_OBJECT, "{}", &v);
    ck_assert_str_eq(v.json, "{}");
    value_clear(&v);

    prepare_bad(CONFIG_SHAPE_OBJECT, "[]", "value must be a JSON object");
    prepare_bad(CONFIG_SHAPE_OBJECT, "\"x\"", "value must be a JSON object");
    prepare_bad(CONFIG_SHAPE_OBJECT, "1", "value must be a JSON object");
    prepare_bad(CONFIG_SHAPE_OBJECT, "null", "value must be a JSON object");
}
END_TEST

static void assert_hierarchy(const char *json, const char *parent)
{
    struct value_prepared v;
    bool has;
    const char *p;
    size_t p_len;
    prepare_ok(CONFIG_SHAPE_HIERARCHY, json, &v);
    value_hierarchy_parent(v.derived, v.derived_len, &has, &p, &p_len);
    if (parent == NULL) {
        ck_assert(!has);
        ck_assert_ptr_null(p);
        ck_assert_uint_eq(p_len, 0);
        ck_assert_ptr_null(v.index_key);
        ck_assert_uint_eq(v.index_key_len, 0);
    } else {
        ck_assert(has);
        ck_assert_uint_eq(p_len, strlen(parent));
        ck_assert(memcmp(p, parent, p_len) == 0);
        /* the blob is the parent and nothing else, and the index key */
        ck_assert_uint_eq(v.derived_len, p_len);
        ck_assert_ptr_eq(v.index_key, p);
        ck_assert_uint_eq(v.index_key_len, p_len);
        ck_assert_ptr_eq(v.index_key, (const char *)v.derived);
    }
    value_clear(&v);
}

START_TEST(test_hierarchy)
{
    assert_hierarchy("{\"parent\": \"eng\", \"name\": \"Backend\"}", "eng");
    assert_hierarchy("{\"parent\": \"org:1/eng\"}", "org:1/eng");
    assert_hierarchy("{}", NULL);
    assert_hierarchy("{\"name\": \"Root\"}", NULL);
    assert_hierarchy("{\"parent\": null, \"name\": null}", NULL);
    assert_hierarchy("{\"name\": \"x\", \"parent\": \"d\\u00e9pt\"}", "d\xc3\xa9pt");

    char json[600];
    char parent[513];
    memset(parent, 'p', 512);
    parent[512] = '\0';
    snprintf(json, sizeof(json), "{\"parent\": \"%s\"}", parent);
    assert_hierarchy(json, parent);
}
END_TEST

START_TEST(test_hierarchy_rejected)
{
    prepare_bad(CONFIG_SHAPE_HIERARCHY, "[]", "hierarchy value must be an object");
    prepare_bad(CONFIG_SHAPE_HIERARCHY, "\"eng\"", "hierarchy value must be an object");
    prepare_bad(CONFIG_SHAPE_HIERARCHY, "null", "hierarchy value must be an object");
    prepare_bad(CONFIG_SHAPE_HIERARCHY, "{\"parent\": \"\"}", "hierarchy parent must be an entity id");
    prepare_bad(CONFIG_SHAPE_HIERARCHY, "{\"parent\": 3}", "hierarchy parent must be an entity id");
    prepare_bad(CONFIG_SHAPE_HIERARCHY, "{\"parent\": [\"a\"]}", "hierarchy parent");
    prepare_bad(CONFIG_SHAPE_HIERARCHY, "{\"parent\": \"a b\"}", "hierarchy parent");
    prepare_bad(CONFIG_SHAPE_HIERARCHY, "{\"parent\": \"a\\tb\"}", "hierarchy parent");
    prepare_bad(CONFIG_SHAPE_HIERARCHY, "{\"name\": 3}", "hierarchy name must be a string");

    char json[600];
    char parent[514];
    memset(parent, 'p', 513);
    parent[513] = '\0';
    snprintf(json, sizeof(json), "{\"parent\": \"%s\"}", parent);
    prepare_bad(CONFIG_SHAPE_HIERARCHY, json, "hierarchy parent");
}
END_TEST

START_TEST(test_any)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"1", "1"},
        {" \"x\" ", "\"x\""},
        {"null", "null"},
        {"true", "true"},
        {"[ ]", "[]"},
        {"{\"a\": [1, 2], \"b\": {\"c\": null}}", "{\"a\":[1,2],\"b\":{\"c\":null}}"},
        {"\"caf\\u00e9\"", "\"caf\\u00e9\""},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        struct value_prepared v;
        prepare_ok(CONFIG_SHAPE_ANY, cases[i].in, &v);
        ck_assert_str_eq(v.json, cases[i].out);
        ck_assert_ptr_null(v.derived);
        ck_assert_ptr_null(v.index_key);
        value_clear(&v);
    }
}
END_TEST

/* The stored text is the text received less the whitespace between tokens
 * (docs/reference.md §2): numbers keep the form they were written in, strings
 * their escapes and their own spaces. */
START_TEST(test_compact_as_received)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"1.50", "1.50"},
        {"1e2", "1e2"},
        {"1E+20", "1E+20"},
        {"-0", "-0"},
        {"-0.0", "-0.0"},
        {"0.1", "0.1"},
        {"100.0", "100.0"},
        {"12345678901234567890.0", "12345678901234567890.0"},
        {"[ 1.0 ,\t2.50e-3 ,\r\n-7 ]", "[1.0,2.50e-3,-7]"},
        {"\"caf\xc3\xa9\"", "\"caf\xc3\xa9\""},
        {"\"q\\\"b\\\\s\\/\"", "\"q\\\"b\\\\s\\/\""},
        {"\"\\u0001\\u20ac \\ud83d\\ude00\"", "\"\\u0001\\u20ac \\ud83d\\ude00\""},
        /* spaces inside strings stay, also after an escaped quote or backslash */
        {"{ \"a b\" : \" x \\\" y \\\\\" , \"c\" : [ \" \" ] }",
         "{\"a b\":\" x \\\" y \\\\\",\"c\":[\" \"]}"},
        {"\n\t{\"k\\n\\u0002\": \"v\", \"a\": {\"b\": [1, 2.5, null]}, \"z\": {}}\n",
         "{\"k\\n\\u0002\":\"v\",\"a\":{\"b\":[1,2.5,null]},\"z\":{}}"},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        struct value_prepared v;
        prepare_ok(CONFIG_SHAPE_ANY, cases[i].in, &v);
        ck_assert_str_eq(v.json, cases[i].out);
        ck_assert_uint_eq(v.json_len, strlen(cases[i].out));
        value_clear(&v);
    }
}
END_TEST

/* value_prepare() keeps the text of the node it is given, not a rendering:
 * here a member's value inside a larger scanned text. */
START_TEST(test_prepare_keeps_text)
{
    const char *text = "{\"x\": 1, \"v\": { \"cost\" : 2.50 } }";
    struct jscan scan;
    char error[ERROR_MAX] = "";
    jscan_init(&scan, NULL, 0);
    ck_assert_int_eq(jscan_parse(&scan, text, strlen(text), false, error), 0);
    uint32_t node = jscan_member(&scan, 0, "v");
    ck_assert_uint_ne(node, 0);
    struct value_prepared v;
    ck_assert_int_eq(value_prepare(CONFIG_SHAPE_CREDIT, &scan, node, &v, error), 0);
    ck_assert_str_eq(v.json, "{\"cost\":2.50}");
    ck_assert_uint_eq(v.derived_len, 3);
    ck_assert_int_eq(memcmp(v.derived, "2.5", 3), 0);
    value_clear(&v);
    jscan_free(&scan);
}
END_TEST

START_TEST(test_prepare_text_rejects_bad_json)
{
    prepare_bad(CONFIG_SHAPE_ANY, "", "invalid JSON");
    prepare_bad(CONFIG_SHAPE_ANY, "{", "invalid JSON");
    prepare_bad(CONFIG_SHAPE_ANY, "3.5 x", "invalid JSON");
    prepare_bad(CONFIG_SHAPE_ANY, "[1] [2]", "invalid JSON");
    prepare_bad(CONFIG_SHAPE_ANY, "\"\xff\"", "invalid JSON");
    prepare_bad(CONFIG_SHAPE_ANY, "nul", "invalid JSON");
    /* the text is kept as sent, so a repeated key is refused as in a message */
    prepare_bad(CONFIG_SHAPE_ANY, "{\"a\": 1, \"a\": 2}", "duplicate");
    prepare_bad(CONFIG_SHAPE_USER, "{\"status\": \"a\", \"x\": {\"s\": 1, \"s\": 1}}", "duplicate");
    /* the length is honoured: the same text cut short is invalid */
    struct value_prepared v;
    char error[ERROR_MAX];
    ck_assert_int_eq(value_prepare_text(CONFIG_SHAPE_ANY, "[1,2]", 4, &v, error), -1);
    ck_assert_int_eq(value_prepare_text(CONFIG_SHAPE_ANY, "[1,2]xyz", 5, &v, error), 0);
    ck_assert_str_eq(v.json, "[1,2]");
    value_clear(&v);
}
END_TEST

START_TEST(test_prepare_null_value)
{
    struct value_prepared v;
    char error[ERROR_MAX];
    ck_assert_int_eq(value_prepare_text(CONFIG_SHAPE_ANY, "", 0, &v, error), -1);
    ck_assert_ptr_null(v.json);
    /* value_clear() on a cleared value is harmless */
    value_clear(&v);
    value_clear(NULL);
}
END_TEST

/* An accessor refuses a missing blob, a truncated one, and one whose places
 * fall outside the text it is given. */
START_TEST(test_accessors_check_bounds)
{
    struct value_prepared role, user;
    prepare_ok(CONFIG_SHAPE_ROLE, "[\"a.b\", \"c\"]", &role);
    prepare_ok(CONFIG_SHAPE_USER, "{\"status\": \"active\", \"roles\": [\"r1\"]}", &user);

    const char *s;
    size_t len;
    struct value_strings strings;

    ck_assert_int_eq(value_credit(NULL, 0, NULL, 0, &s, &len), -1);
    /* a credit blob that is a place: past the text, at no number, or at a
     * number the text does not close */
    struct value_prepared credit;
    prepare_ok(CONFIG_SHAPE_CREDIT, "{\"cost\": 3.5, \"c\": \"EUR\"}", &credit);
    ck_assert_uint_eq(credit.derived_len, 1);
    ck_assert_int_eq(value_credit(credit.json, credit.json_len, credit.derived, 1, &s, &len), 0);
    ck_assert_uint_eq(len, 3);
    ck_assert_mem_eq(s, "3.5", 3);
    ck_assert_int_eq(value_credit(credit.json, 8, credit.derived, 1, &s, &len), -1);
    ck_assert_int_eq(value_credit(credit.json, 10, credit.derived, 1, &s, &len), -1);
    ck_assert_int_eq(value_credit(NULL, 0, credit.derived, 1, &s, &len), -1);
    ck_assert_int_eq(value_credit(role.json, role.json_len, credit.derived, 1, &s, &len), -1);
    value_clear(&credit);
    ck_assert_int_eq(value_role_permissions(role.json, role.json_len, NULL, 0, &strings), -1);
    ck_assert_int_eq(value_user(user.json, user.json_len, NULL, 0, &s, &len, &strings), -1);

    ck_assert_int_eq(value_role_permissions(role.json, role.json_len, role.derived,
                                            role.derived_len - 1, &strings),
                     -1);
    ck_assert_int_eq(value_user(user.json, user.json_len, user.derived, user.derived_len - 1, &s,
                                &len, &strings),
                     -1);
    /* the last string ends past a text cut short */
    ck_assert_int_eq(value_role_permissions(role.json, role.json_len - 3, role.derived,
                                            role.derived_len, &strings),
                     -1);
    ck_assert_int_eq(value_user(user.json, 12, user.derived, user.derived_len, &s, &len,
                                &strings),
                     -1);
    ck_assert_int_eq(value_user(NULL, 0, user.derived, user.derived_len, &s, &len, &strings), -1);

    bool has = true;
    value_hierarchy_parent(NULL, 0, &has, &s, &len);
    ck_assert(!has);

    value_clear(&role);
    value_clear(&user);
}
END_TEST

/* The lazy accessors check each string as the walk reaches it: a blob or a
 * text cut short ends the walk at the string that no longer fits, and
 * nothing is read past either; a blob too short for its count, or for the
 * user's status, is refused at once. */
START_TEST(test_lazy_accessors_check_bounds)
{
    /* the explicit lists (a string with escapes in each), whose blobs
     * hold a count and strings to cut short */
    struct value_prepared role, user, text_role;
    prepare_ok(CONFIG_SHAPE_ROLE, "[\"a\\u002eb\", \"c\"]", &role);
    prepare_ok(CONFIG_SHAPE_USER,
               "{\"status\": \"active\", \"roles\": [\"r\\u0031\", \"r2\"]}", &user);
    prepare_ok(CONFIG_SHAPE_ROLE, "[\"a.b\", \"c\"]", &text_role);

    const char *s;
    size_t len;
    struct value_strings strings;
    char joined[64];

    ck_assert_int_eq(value_role_permissions_lazy(role.json, role.json_len, NULL, 0, &strings), -1);
    ck_assert_int_eq(value_user_lazy(user.json, user.json_len, NULL, 0, &s, &len, &strings), -1);
    /* the count alone, or a count larger than the bytes that follow */
    ck_assert_int_eq(value_role_permissions_lazy(role.json, role.json_len, role.derived, 1,
                                                 &strings),
                     -1);
    unsigned char *blob = malloc(role.derived_len);
    memcpy(blob, role.derived, role.derived_len);
    ck_assert_uint_eq(blob[0], (2 << 1) | 1); /* 2 strings follow */
    blob[0] = (unsigned char)((role.derived_len << 1) | 1);
    ck_assert_int_eq(value_role_permissions_lazy(role.json, role.json_len, blob,
                                                 role.derived_len, &strings),
                     -1);
    free(blob);
    /* a status that does not fit: refused */
    ck_assert_int_eq(value_user_lazy(user.json, 12, user.derived, user.derived_len, &s, &len,
                                     &strings),
                     -1);

    /* the last pattern cut off the blob: the walk ends before it */
    ck_assert_int_eq(value_role_permissions_lazy(role.json, role.json_len, role.derived,
                                                 role.derived_len - 1, &strings),
                     0);
    join_strings(&strings, joined, sizeof(joined));
    ck_assert_str_eq(joined, "a.b");
    /* the last pattern ends past a text cut short, in both forms */
    ck_assert_int_eq(value_role_permissions_lazy(role.json, role.json_len - 3, role.derived,
                                                 role.derived_len, &strings),
                     0);
    join_strings(&strings, joined, sizeof(joined));
    ck_assert_str_eq(joined, "a.b");
    ck_assert(!value_strings_next(&strings, &s, &len));
    ck_assert_int_eq(value_role_permissions_lazy(text_role.json, text_role.json_len - 3,
                                                 text_role.derived, text_role.derived_len,
                                                 &strings),
                     0);
    join_strings(&strings, joined, sizeof(joined));
    ck_assert_str_eq(joined, "a.b");
    ck_assert(!value_strings_next(&strings, &s, &len));
    /* the text cut inside the first pattern, or just after its '[' */
    ck_assert_int_eq(value_role_permissions_lazy(text_role.json, 3, text_role.derived,
                                                 text_role.derived_len, &strings),
                     0);
    ck_assert(!value_strings_next(&strings, &s, &len));
    ck_assert_int_eq(value_role_permissions_lazy(text_role.json, 1, text_role.derived,
                                                 text_role.derived_len, &strings),
                     0);
    ck_assert(!value_strings_next(&strings, &s, &len));
    /* the text ends before its '[' */
    ck_assert_int_eq(value_role_permissions_lazy(text_role.json, 0, text_role.derived,
                                                 text_role.derived_len, &strings),
                     -1);
    /* the same for the roles of a user */
    ck_assert_int_eq(value_user_lazy(user.json, user.json_len, user.derived,
                                     user.derived_len - 1, &s, &len, &strings),
                     0);
    ck_assert_uint_eq(len, 6);
    join_strings(&strings, joined, sizeof(joined));
    ck_assert_str_eq(joined, "r1");

    value_clear(&role);
    value_clear(&user);
    value_clear(&text_role);
}
END_TEST

/* Blobs are read byte by byte: a copy at an odd address reads the same. */
START_TEST(test_accessors_unaligned)
{
    struct value_prepared credit, role;
    prepare_ok(CONFIG_SHAPE_CREDIT, "{\"cost\": 0.1}", &credit);
    prepare_ok(CONFIG_SHAPE_ROLE, "[\"x.*\", \"y\"]", &role);

    unsigned char *buf = malloc(credit.derived_len + 1);
    memcpy(buf + 1, credit.derived, credit.derived_len);
    const char *t;
    size_t t_len;
    ck_assert_int_eq(value_credit(credit.json, credit.json_len, buf + 1, credit.derived_len, &t,
                                  &t_len),
                     0);
    ck_assert_uint_eq(t_len, 3);
    ck_assert(memcmp(t, "0.1", 3) == 0);
    free(buf);

    buf = malloc(role.derived_len + 3);
    memcpy(buf + 3, role.derived, role.derived_len);
    struct value_strings perms;
    char joined[64];
    ck_assert_int_eq(value_role_permissions(role.json, role.json_len, buf + 3, role.derived_len,
                                            &perms),
                     0);
    join_strings(&perms, joined, sizeof(joined));
    ck_assert_str_eq(joined, "x.*,y");
    free(buf);

    value_clear(&credit);
    value_clear(&role);
}
END_TEST

static Suite *value_suite(void)
{
    Suite *s = suite_create("value");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_credit);
    tcase_add_test(tc, test_credit_rejected);
    tcase_add_test(tc, test_role);
    tcase_add_test(tc, test_role_rejected);
    tcase_add_test(tc, test_lazy_accessors_check_bounds);
    tcase_add_test(tc, test_user);
    tcase_add_test(tc, test_user_rejected);
    tcase_add_test(tc, test_derived_compact);
    tcase_add_test(tc, test_derived_long);
    tcase_add_test(tc, test_derived_text_walk);
    tcase_add_test(tc, test_object);
    tcase_add_test(tc, test_hierarchy);
    tcase_add_test(tc, test_hierarchy_rejected);
    tcase_add_test(tc, test_any);
    tcase_add_test(tc, test_compact_as_received);
    tcase_add_test(tc, test_prepare_keeps_text);
    tcase_add_test(tc, test_prepare_text_rejects_bad_json);
    tcase_add_test(tc, test_prepare_null_value);
    tcase_add_test(tc, test_accessors_check_bounds);
    tcase_add_test(tc, test_accessors_unaligned);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *runner = srunner_create(value_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
