/* test_slab.c - slab.c: size classes, alignment, objects that never overlap,
 * references that name them, free lists, and empty slabs given back. Built with a sanitizer (every
 * object then a malloc block of its own, SLAB_PASS_THROUGH) the slab
 * figures are checked to stay at zero instead. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "slab.h"

static struct slab_stats stats_of(const struct slab_pool *pool)
{
    struct slab_stats s;
    slab_get_stats(pool, &s);
    return s;
}

START_TEST(test_class_sizes)
{
    ck_assert_uint_eq(slab_object_bytes(0), 8);
    ck_assert_uint_eq(slab_object_bytes(1), 8);
    ck_assert_uint_eq(slab_object_bytes(8), 8);
    ck_assert_uint_eq(slab_object_bytes(9), 16);
    ck_assert_uint_eq(slab_object_bytes(37), 40);
    ck_assert_uint_eq(slab_object_bytes(40), 40);
    ck_assert_uint_eq(slab_object_bytes(SLAB_OBJECT_MAX - 1), SLAB_OBJECT_MAX);
    ck_assert_uint_eq(slab_object_bytes(SLAB_OBJECT_MAX), SLAB_OBJECT_MAX);
    for (size_t size = 1; size <= SLAB_OBJECT_MAX; size++) {
        size_t bytes = slab_object_bytes(size);
        ck_assert_uint_ge(bytes, size);
        ck_assert_uint_lt(bytes, size + SLAB_ALIGN);
        ck_assert_uint_eq(bytes % SLAB_ALIGN, 0);
    }
}
END_TEST

#define MANY 6000

/* Objects of every class and some large ones: aligned, never overlapping
 * (each keeps the bytes written into it while the others are written),
 * each named by its own reference, counted, and all freed in another order
 * than they came. */
START_TEST(test_objects_distinct_and_aligned)
{
    struct slab_pool *pool = slab_pool_create();
    static unsigned char *objects[MANY];
    static size_t sizes[MANY];
    static uint32_t refs[MANY];
    uint64_t small_bytes = 0, small = 0, large = 0;
    uint64_t random = 88172645463325252ull;
    for (unsigned i = 0; i < MANY; i++) {
        random ^= random << 13;
        random ^= random >> 7;
        random ^= random << 17;
        size_t size = i % 100 == 99 ? SLAB_OBJECT_MAX + 1 + random % 5000
                                    : 1 + (size_t)(random % SLAB_OBJECT_MAX);
        sizes[i] = size;
        objects[i] = slab_alloc(pool, size, &refs[i]);
        ck_assert_ptr_nonnull(objects[i]);
        ck_assert_uint_ne(refs[i], 0);
        ck_assert_ptr_eq(slab_object(pool, refs[i]), objects[i]);
        ck_assert_uint_eq((uintptr_t)objects[i] % SLAB_ALIGN, 0);
        memset(objects[i], (int)(i & 0xff), size);
        if (size <= SLAB_OBJECT_MAX) {
            small++;
            small_bytes += slab_object_bytes(size);
        } else {
            large++;
        }
    }
    for (unsigned i = 0; i < MANY; i++) {
        for (size_t b = 0; b < sizes[i]; b++)
            ck_assert_msg(objects[i][b] == (i & 0xff), "object %u byte %zu overwritten", i, b);
        ck_assert_ptr_eq(slab_object(pool, refs[i]), objects[i]);
    }
    struct slab_stats s = stats_of(pool);
    ck_assert_uint_eq(s.objects, small);
    ck_assert_uint_eq(s.object_bytes, small_bytes);
    ck_assert_uint_eq(s.large_objects, large);
    if (SLAB_PASS_THROUGH) {
        ck_assert_uint_eq(s.slabs, 0);
        ck_assert_uint_eq(s.carved_bytes, 0);
        ck_assert_uint_eq(s.spare_bytes, 0);
    } else {
        ck_assert_uint_gt(s.carved_bytes, small_bytes);
        ck_assert_uint_eq(s.spare_bytes, s.carved_bytes - small_bytes);
        ck_assert_uint_le(s.slabs, SLAB_OBJECT_MAX / SLAB_ALIGN + small_bytes / 60000);
    }
    for (unsigned i = 0; i < MANY; i += 2)
        slab_free(pool, refs[i], sizes[i]);
    /* The others still answer to their references. */
    for (unsigned i = 1; i < MANY; i += 2)
        ck_assert_ptr_eq(slab_object(pool, refs[i]), objects[i]);
    for (unsigned i = 1; i < MANY; i += 2)
        slab_free(pool, refs[i], sizes[i]);
    s = stats_of(pool);
    ck_assert_uint_eq(s.objects, 0);
    ck_assert_uint_eq(s.object_bytes, 0);
    ck_assert_uint_eq(s.large_objects, 0);
    /* At most one (empty) slab left per class. */
    ck_assert_uint_le(s.slabs, SLAB_OBJECT_MAX / SLAB_ALIGN);
    slab_free(pool, 0, 10);
    slab_pool_destroy(pool);
    slab_pool_destroy(NULL);
}
END_TEST

/* A freed object is what the next allocation of its class gets. */
START_TEST(test_free_list_reuse)
{
    struct slab_pool *pool = slab_pool_create();
    uint32_t ra, rb, rc, rd;
    void *a = slab_alloc(pool, 100, &ra);
    void *b = slab_alloc(pool, 100, &rb);
    ck_assert_ptr_ne(a, b);
    ck_assert_uint_ne(ra, rb);
    slab_free(pool, ra, 100);
    void *c = slab_alloc(pool, 97, &rc); /* the same class: 104 bytes */
    if (!SLAB_PASS_THROUGH) {
        ck_assert_ptr_eq(c, a);
        ck_assert_uint_eq(rc, ra);
    }
    void *d = slab_alloc(pool, 200, &rd); /* another class: never a's */
    ck_assert_ptr_ne(d, b);
    ck_assert_ptr_ne(d, c);
    ck_assert_ptr_eq(slab_object(pool, rd), d);
    ck_assert_uint_eq(stats_of(pool).objects, 3);
    slab_free(pool, rb, 100);
    slab_free(pool, rc, 97);
    slab_free(pool, rd, 200);
    ck_assert_uint_eq(stats_of(pool).objects, 0);
    slab_pool_destroy(pool);
}
END_TEST

/* Emptied slabs go back, but for the class's last one and SLAB_KEPT_EMPTY
 * kept warm; objects left undone die with the pool. */
START_TEST(test_empty_slabs_given_back)
{
    struct slab_pool *pool = slab_pool_create();
    enum { MAX = 60000, FILLED = SLAB_KEPT_EMPTY + 4 };
    static uint32_t objects[MAX];
    unsigned count = 0;
    /* Fill FILLED - 1 slabs of the 40-byte class, and one object more. */
    while (count < MAX && (SLAB_PASS_THROUGH ? count < 3000 : stats_of(pool).slabs < FILLED))
        slab_alloc(pool, 40, &objects[count++]);
    ck_assert_uint_lt(count, MAX);
    if (SLAB_PASS_THROUGH) {
        ck_assert_uint_eq(stats_of(pool).slabs, 0);
    } else {
        unsigned per_slab = (count - 1) / (FILLED - 1);
        ck_assert_uint_eq(per_slab * (FILLED - 1) + 1, count);
        /* 64 KiB slabs: at least 1,500 objects of 40 bytes each. */
        ck_assert_uint_ge(per_slab, 1500);
    }
    for (unsigned i = 0; i < count; i++)
        slab_free(pool, objects[i], 40);
    struct slab_stats s = stats_of(pool);
    ck_assert_uint_eq(s.objects, 0);
    /* The first SLAB_KEPT_EMPTY emptied are kept; the rest go back, the last
     * one too, since the class still has slabs (the kept ones). */
    ck_assert_uint_eq(s.slabs, SLAB_PASS_THROUGH ? 0 : SLAB_KEPT_EMPTY);
    /* Filling again reuses the slabs kept and given back. */
    for (unsigned i = 0; i < count; i++)
        slab_alloc(pool, 40, &objects[i]);
    ck_assert_uint_eq(stats_of(pool).slabs, SLAB_PASS_THROUGH ? 0 : FILLED);
    /* A stream of replacements (a new object, then the old one freed) keeps
     * the number of slabs steady. */
    for (unsigned round = 0; round < 3; round++) {
        for (unsigned i = 0; i < count; i++) {
            uint32_t old = objects[i];
            slab_alloc(pool, 40, &objects[i]);
            slab_free(pool, old, 40);
        }
        ck_assert_uint_le(stats_of(pool).slabs, SLAB_PASS_THROUGH ? 0 : FILLED + 1);
    }
    for (unsigned i = 0; i < count / 2; i++)
        slab_free(pool, objects[i], 40);
    ck_assert_uint_eq(stats_of(pool).objects, count - count / 2);
    if (SLAB_PASS_THROUGH) {
        for (unsigned i = count / 2; i < count; i++)
            slab_free(pool, objects[i], 40);
    }
    slab_pool_destroy(pool);
}
END_TEST

/* Past the last chunk a pool may make, small objects are malloc blocks:
 * still distinct, named by their references, counted, and freed. */
START_TEST(test_past_the_last_chunk)
{
    struct slab_pool *pool = slab_pool_create();
    slab_pool_limit_chunks(pool, 1);
    enum { COUNT = 3000, SIZE = 1000 }; /* ~3 MiB: a 1 MiB chunk holds ~1,000 */
    static unsigned char *objects[COUNT];
    static uint32_t refs[COUNT];
    for (unsigned i = 0; i < COUNT; i++) {
        objects[i] = slab_alloc(pool, SIZE, &refs[i]);
        ck_assert_uint_ne(refs[i], 0);
        memset(objects[i], (int)(i & 0xff), SIZE);
    }
    for (unsigned i = 0; i < COUNT; i++) {
        ck_assert_ptr_eq(slab_object(pool, refs[i]), objects[i]);
        for (size_t b = 0; b < SIZE; b++)
            ck_assert_msg(objects[i][b] == (i & 0xff), "object %u byte %zu overwritten", i, b);
    }
    struct slab_stats s = stats_of(pool);
    ck_assert_uint_eq(s.objects, COUNT);
    ck_assert_uint_eq(s.object_bytes, (uint64_t)COUNT * slab_object_bytes(SIZE));
    if (!SLAB_PASS_THROUGH)
        ck_assert_uint_le(s.carved_bytes, 1024 * 1024);
    for (unsigned i = 0; i < COUNT; i++)
        slab_free(pool, refs[i], SIZE);
    s = stats_of(pool);
    ck_assert_uint_eq(s.objects, 0);
    ck_assert_uint_eq(s.object_bytes, 0);
    /* Freed numbers are used again. */
    uint32_t again;
    slab_alloc(pool, SIZE, &again);
    slab_free(pool, again, SIZE);
    slab_pool_destroy(pool);
}
END_TEST

static Suite *slab_suite(void)
{
    Suite *suite = suite_create("slab");
    TCase *classes = tcase_create("classes");
    tcase_add_test(classes, test_class_sizes);
    suite_add_tcase(suite, classes);

    TCase *objects = tcase_create("objects");
    tcase_add_test(objects, test_objects_distinct_and_aligned);
    tcase_add_test(objects, test_free_list_reuse);
    tcase_add_test(objects, test_empty_slabs_given_back);
    tcase_add_test(objects, test_past_the_last_chunk);
    suite_add_tcase(suite, objects);
    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(slab_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
