/* test_fill.c - unit tests of fill.c, filling misses (docs/reference.md §5),
 * with L3 only: a real HTTP origin (http_peer.h) on the loop the engine runs
 * on. What a fill answers its waiters and what it leaves in the cache for a
 * value, a 404, a failure and a value of the wrong shape; misses of one
 * entry sharing one fill; a write or a flush of its tenant racing with a
 * fill keeping it out of the cache (a flush of another tenant does not); a
 * miss after such a write not joining the raced fill; shutdown answering
 * every waiter. (L2 is covered by the integration suite
 * test_fill, against redis-server.) */
#include <check.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "config.h"
#include "fill.h"
#include "http_peer.h"
#include "log.h"
#include "stats.h"

static struct event_base *base;
static struct http_peer peer;
static struct config *config;
static struct cache *cache;
static struct fill *fill;

/* The waiters are opaque to the engine: any distinct pointers will do. */
static char waiter_tokens[8];
#define WAITER(i) ((struct blocked *)&waiter_tokens[i])

static struct {
    struct blocked *waiter;
    struct fill_result *result;
} delivered[16];
static size_t delivered_count;
static bool delivered_enough;
static size_t delivered_wanted;

static void deliver(struct blocked *waiter, struct fill_result *result)
{
    ck_assert_uint_lt(delivered_count, 16);
    delivered[delivered_count].waiter = waiter;
    delivered[delivered_count].result = result;
    delivered_count++;
    delivered_enough = delivered_count >= delivered_wanted;
}

static void setup(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    memset(&stats, 0, sizeof(stats));
    base = event_base_new();
    http_peer_start(&peer, base);
    char url[256], yaml[512];
    http_peer_url(&peer, "/{tenant}/{kind}/{key}", url, sizeof(url));
    snprintf(yaml, sizeof(yaml),
             "log_level: error\norigin:\n  url: \"%s\"\n  negative_ttl: 60s\n", url);
    char error[ERROR_MAX] = "";
    config = config_load_buffer("test.yaml", yaml, strlen(yaml), error);
    ck_assert_msg(config != NULL, "config rejected: %s", error);
    struct cache_limits limits = {
        .max_bytes = 1 << 20, .tenant_max_bytes = 1 << 20, .max_tenants = 10,
        .high_watermark = 0.8, .low_watermark = 0.7,
    };
    cache = cache_create(1, &limits);
    fill = fill_create(base, cache, config, deliver);
    delivered_count = 0;
    delivered_wanted = 0;
    delivered_enough = false;
}

static void teardown(void)
{
    fill_destroy(fill);
    for (size_t i = 0; i < delivered_count; i++)
        fill_result_release(delivered[i].result);
    http_peer_stop(&peer);
    cache_destroy(cache);
    config_free(config);
    event_base_free(base);
}

static unsigned kind_of(const char *name)
{
    int kind = config_kind_find(config, name, strlen(name));
    ck_assert_int_ge(kind, 0);
    return (unsigned)kind;
}

static void submit(const char *kind, const char *key, struct blocked *waiter)
{
    ck_assert_int_eq(fill_submit(fill, "acme", 4, kind_of(kind), key, strlen(key), waiter), 0);
}

/* Runs the loop until count answers have been delivered in all. */
static void run_until_delivered(size_t count)
{
    delivered_wanted = count;
    delivered_enough = delivered_count >= count;
    unit_loop_run_until(base, &delivered_enough, "the deliveries");
    ck_assert_uint_eq(delivered_count, count);
}

/* What the cache holds for acme/kind/key: "(none)", "(tombstone)",
 * "(negative)" or the value's JSON (static). */
static const char *cached(const char *kind, const char *key)
{
    static char text[256];
    struct cache_reader reader;
    cache_read_begin(cache, "acme", 4, 1, &reader);
    const struct cache_entry *entry = cache_read_find(&reader, kind_of(kind), key, strlen(key));
    if (entry == NULL) {
        snprintf(text, sizeof(text), "(none)");
    } else if (cache_entry_state(entry) == CACHE_ENTRY_NEGATIVE) {
        snprintf(text, sizeof(text), "(negative)");
    } else if (cache_entry_state(entry) == CACHE_ENTRY_TOMBSTONE) {
        snprintf(text, sizeof(text), "(tombstone)");
    } else {
        size_t len;
        const char *json = cache_entry_value(entry, &len);
        snprintf(text, sizeof(text), "%.*s", (int)len, json);
    }
    cache_read_end(&reader);
    return text;
}

START_TEST(test_possible)
{
    ck_assert(fill_possible(config, kind_of("role")));
    ck_assert(!fill_possible(config, (unsigned)config->kind_count)); /* no such kind */
    const char *yaml = "log_level: error\n";
    char error[ERROR_MAX] = "";
    struct config *none = config_load_buffer("none.yaml", yaml, strlen(yaml), error);
    ck_assert_ptr_nonnull(none);
    ck_assert(!fill_possible(none, kind_of("role"))); /* neither L2 nor L3 */
    config_free(none);
    /* a kind the application does not cache never fills */
    char url[256], text[512];
    snprintf(text, sizeof(text), "application: finance\norigin:\n  url: \"%s\"\n",
             http_peer_url(&peer, "/{tenant}/{kind}/{key}", url, sizeof(url)));
    struct config *finance = config_load_buffer("finance.yaml", text, strlen(text), error);
    ck_assert_msg(finance != NULL, "%s", error);
    int user = config_kind_find(finance, "user", 4);
    int credit = config_kind_find(finance, "credit", 6);
    ck_assert_int_ge(credit, 0);
    ck_assert(fill_possible(finance, (unsigned)credit));
    ck_assert_int_ge(user, 0); /* configured, but not cached by this application */
    ck_assert(!fill_possible(finance, (unsigned)user));
    config_free(finance);
}
END_TEST

START_TEST(test_value_is_answered_and_cached)
{
    http_peer_route(&peer, "/acme/role/sales", 200, "[ \"crm.*\" ]");
    submit("role", "sales", WAITER(0));
    run_until_delivered(1);
    struct fill_result *result = delivered[0].result;
    ck_assert_ptr_eq(delivered[0].waiter, WAITER(0));
    ck_assert_int_eq(result->status, FILL_VALUE);
    ck_assert_str_eq(result->tenant, "acme");
    ck_assert_str_eq(result->key, "sales");
    ck_assert_uint_eq(result->kind, kind_of("role"));
    ck_assert_str_eq(result->value.json, "[\"crm.*\"]"); /* compact */
    ck_assert_str_eq(cached("role", "sales"), "[\"crm.*\"]");
    ck_assert_uint_eq(stats.fills_l3, 1);
    ck_assert_uint_eq(stats.fill_errors, 0);
}
END_TEST

START_TEST(test_not_found_is_cached_as_negative)
{
    submit("role", "ghost", WAITER(0));
    run_until_delivered(1);
    ck_assert_int_eq(delivered[0].result->status, FILL_NOT_FOUND);
    ck_assert_str_eq(cached("role", "ghost"), "(negative)");
    ck_assert_uint_eq(stats.fills_negative, 1);
    ck_assert_uint_eq(stats.fills_l3, 0);
}
END_TEST

START_TEST(test_failure_is_unavailable_and_not_cached)
{
    http_peer_route(&peer, "/acme/role/broken", 503, "");
    submit("role", "broken", WAITER(0));
    run_until_delivered(1);
    ck_assert_int_eq(delivered[0].result->status, FILL_UNAVAILABLE);
    ck_assert_str_eq(cached("role", "broken"), "(none)");
    ck_assert_uint_eq(stats.fill_errors, 1);
}
END_TEST

START_TEST(test_wrong_shape_is_unavailable)
{
    /* a credit must be a number or an object with a number cost */
    http_peer_route(&peer, "/acme/credit/op", 200, "\"cheap\"");
    submit("credit", "op", WAITER(0));
    run_until_delivered(1);
    ck_assert_int_eq(delivered[0].result->status, FILL_UNAVAILABLE);
    ck_assert_str_eq(cached("credit", "op"), "(none)");
    ck_assert_uint_eq(stats.fills_l3, 0);
}
END_TEST

START_TEST(test_misses_share_one_fill)
{
    http_peer_route(&peer, "/acme/user/u1", 200, "\"active\"");
    peer.hold = true;
    submit("user", "u1", WAITER(0));
    http_peer_run_until_seen(&peer, 1);
    submit("user", "u1", WAITER(1));
    submit("user", "u1", WAITER(2));
    unit_loop_run_for(base, 50); /* let the engine take the two submissions */
    http_peer_release(&peer);
    run_until_delivered(3);
    ck_assert_uint_eq(peer.seen_count, 1);
    ck_assert_uint_eq(stats.fills_shared, 2);
    /* one result, shared, with one reference per waiter */
    ck_assert_ptr_eq(delivered[0].result, delivered[1].result);
    ck_assert_ptr_eq(delivered[1].result, delivered[2].result);
    ck_assert_uint_eq(atomic_load(&delivered[0].result->references), 3);
    ck_assert_ptr_eq(delivered[0].waiter, WAITER(0));
    ck_assert_ptr_eq(delivered[1].waiter, WAITER(1));
    ck_assert_ptr_eq(delivered[2].waiter, WAITER(2));
    ck_assert_str_eq(delivered[0].result->value.json, "\"active\"");
}
END_TEST

START_TEST(test_write_during_fill_keeps_it_out_of_the_cache)
{
    http_peer_route(&peer, "/acme/role/sales", 200, "[\"old.*\"]");
    peer.hold = true;
    submit("role", "sales", WAITER(0));
    http_peer_run_until_seen(&peer, 1);
    /* a message wrote the entry meanwhile: the fill's answer is older */
    fill_note_write(fill, "acme", 4, (int)kind_of("role"), "sales", 5);
    http_peer_release(&peer);
    run_until_delivered(1);
    ck_assert_int_eq(delivered[0].result->status, FILL_VALUE); /* the waiter still gets it */
    ck_assert_str_eq(cached("role", "sales"), "(none)");
    ck_assert_uint_eq(stats.fills_discarded, 1);
}
END_TEST

START_TEST(test_write_to_another_entry_changes_nothing)
{
    http_peer_route(&peer, "/acme/role/sales", 200, "[\"crm.*\"]");
    peer.hold = true;
    submit("role", "sales", WAITER(0));
    http_peer_run_until_seen(&peer, 1);
    fill_note_write(fill, "acme", 4, (int)kind_of("role"), "other", 5);
    fill_note_write(fill, "globex", 6, -1, NULL, 0);
    http_peer_release(&peer);
    run_until_delivered(1);
    ck_assert_str_eq(cached("role", "sales"), "[\"crm.*\"]");
    ck_assert_uint_eq(stats.fills_discarded, 0);
}
END_TEST

/* A flush while the fill is in flight (tenant NULL: every tenant); returns
 * whether the fill's answer was cached afterwards. */
static bool cached_after_flush(const char *tenant)
{
    http_peer_route(&peer, "/acme/role/sales", 200, "[\"crm.*\"]");
    peer.hold = true;
    submit("role", "sales", WAITER(0));
    http_peer_run_until_seen(&peer, 1);
    fill_note_flush(fill, tenant, tenant != NULL ? strlen(tenant) : 0);
    http_peer_release(&peer);
    run_until_delivered(1);
    ck_assert_int_eq(delivered[0].result->status, FILL_VALUE); /* the waiter still gets it */
    return strcmp(cached("role", "sales"), "[\"crm.*\"]") == 0;
}

START_TEST(test_flush_of_the_tenant_keeps_the_fill_out)
{
    ck_assert(!cached_after_flush("acme"));
    ck_assert_str_eq(cached("role", "sales"), "(none)");
    ck_assert_uint_eq(stats.fills_discarded, 1);
}
END_TEST

START_TEST(test_flush_of_every_tenant_keeps_the_fill_out)
{
    ck_assert(!cached_after_flush(NULL));
    ck_assert_uint_eq(stats.fills_discarded, 1);
}
END_TEST

START_TEST(test_flush_of_another_tenant_spares_the_fill)
{
    ck_assert(cached_after_flush("globex"));
    ck_assert_uint_eq(stats.fills_discarded, 0);
}
END_TEST

START_TEST(test_miss_after_another_tenants_flush_joins_the_fill)
{
    http_peer_route(&peer, "/acme/role/sales", 200, "[\"crm.*\"]");
    peer.hold = true;
    submit("role", "sales", WAITER(0));
    http_peer_run_until_seen(&peer, 1);
    fill_note_flush(fill, "globex", 6);
    submit("role", "sales", WAITER(1));
    http_peer_release(&peer);
    run_until_delivered(2);
    ck_assert_uint_eq(peer.seen_count, 1); /* one request to the origin */
    ck_assert_uint_eq(stats.fills_shared, 1);
    ck_assert_ptr_eq(delivered[0].result, delivered[1].result);
    ck_assert_str_eq(cached("role", "sales"), "[\"crm.*\"]");
    ck_assert_uint_eq(stats.fills_discarded, 0);
}
END_TEST

/* More flushes than the log remembers came while the fill was in flight:
 * whether one was of its tenant is no longer known, so it is not cached. */
START_TEST(test_flushes_past_the_log_keep_the_fill_out)
{
    http_peer_route(&peer, "/acme/role/sales", 200, "[\"crm.*\"]");
    peer.hold = true;
    submit("role", "sales", WAITER(0));
    http_peer_run_until_seen(&peer, 1);
    for (int i = 0; i < 65; i++)
        fill_note_flush(fill, "globex", 6);
    http_peer_release(&peer);
    run_until_delivered(1);
    ck_assert_int_eq(delivered[0].result->status, FILL_VALUE);
    ck_assert_str_eq(cached("role", "sales"), "(none)");
    ck_assert_uint_eq(stats.fills_discarded, 1);
}
END_TEST

START_TEST(test_miss_after_a_write_starts_its_own_fill)
{
    http_peer_route(&peer, "/acme/role/sales", 200, "[\"crm.*\"]");
    peer.hold = true;
    submit("role", "sales", WAITER(0));
    http_peer_run_until_seen(&peer, 1);
    fill_note_write(fill, "acme", 4, (int)kind_of("role"), "sales", 5);
    submit("role", "sales", WAITER(1));
    http_peer_run_until_seen(&peer, 2); /* not joined to the raced fill */
    http_peer_release(&peer);
    run_until_delivered(2);
    ck_assert_uint_eq(stats.fills_shared, 0);
    ck_assert_ptr_ne(delivered[0].result, delivered[1].result);
    /* the second fill began after the write: its answer is cached */
    ck_assert_str_eq(cached("role", "sales"), "[\"crm.*\"]");
    ck_assert_uint_eq(stats.fills_discarded, 1);
}
END_TEST

START_TEST(test_shutdown_answers_every_waiter)
{
    peer.hold = true;
    submit("role", "sales", WAITER(0));
    http_peer_run_until_seen(&peer, 1);
    submit("role", "queued", WAITER(1)); /* submitted, not yet taken by the loop */
    fill_shutdown(fill);
    ck_assert_uint_eq(delivered_count, 2);
    ck_assert_int_eq(delivered[0].result->status, FILL_UNAVAILABLE);
    ck_assert_int_eq(delivered[1].result->status, FILL_UNAVAILABLE);
    ck_assert_int_eq(fill_submit(fill, "acme", 4, kind_of("role"), "late", 4, WAITER(2)), -1);
    ck_assert_str_eq(cached("role", "sales"), "(none)");
    peer.hold = false;
    peer.held_count = 0;
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("fill");
    TCase *tc = tcase_create("l3");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_possible);
    tcase_add_test(tc, test_value_is_answered_and_cached);
    tcase_add_test(tc, test_not_found_is_cached_as_negative);
    tcase_add_test(tc, test_failure_is_unavailable_and_not_cached);
    tcase_add_test(tc, test_wrong_shape_is_unavailable);
    tcase_add_test(tc, test_misses_share_one_fill);
    tcase_add_test(tc, test_write_during_fill_keeps_it_out_of_the_cache);
    tcase_add_test(tc, test_write_to_another_entry_changes_nothing);
    tcase_add_test(tc, test_flush_of_the_tenant_keeps_the_fill_out);
    tcase_add_test(tc, test_flush_of_every_tenant_keeps_the_fill_out);
    tcase_add_test(tc, test_flush_of_another_tenant_spares_the_fill);
    tcase_add_test(tc, test_miss_after_another_tenants_flush_joins_the_fill);
    tcase_add_test(tc, test_flushes_past_the_log_keep_the_fill_out);
    tcase_add_test(tc, test_miss_after_a_write_starts_its_own_fill);
    tcase_add_test(tc, test_shutdown_answers_every_waiter);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
