/* slab.c - size-class slabs for the cache's entries (see slab.h).
 *
 * Each class keeps a list of its slabs that have room (a slab with none is
 * on no list until an object of it is freed), and the pool a list of all its
 * slabs, for slab_pool_destroy(). An object is taken from a slab's free list
 * first, then carved from the slab's never-used tail; freed objects are
 * linked through their first 8 bytes. */
#include "slab.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "util.h"

#define CLASS_COUNT (SLAB_OBJECT_MAX / SLAB_ALIGN)
/* Every slab: at least 31 objects of the largest class. */
#define SLAB_BYTES 65536u
/* Slabs come from chunks of CHUNK_SLABS, allocated once and kept until
 * the pool goes: one malloc block per slab, aligned at its size, would
 * leave a gap of up to a slab's size in glibc's heap for each (measured:
 * RSS per seed-typical tenant grew by half). A chunk is this large so that
 * glibc maps it on its own, where pages never touched cost nothing. */
#define CHUNK_SLABS 16u
#define PAGE_BYTES 4096u

struct slab {
    struct slab *next;          /* in its class's list of slabs with room */
    struct slab *prev;
    void *free;                 /* freed objects, linked through their first bytes */
    uint32_t live;              /* objects handed out and not freed */
    uint32_t carved;            /* objects ever carved from the tail */
    uint32_t class_index;
    uint32_t unused;
};

/* Objects start here, aligned. */
#define HEADER_BYTES ((sizeof(struct slab) + SLAB_ALIGN - 1) & ~(size_t)(SLAB_ALIGN - 1))

struct slab_class {
    struct slab *open;          /* slabs with room */
    uint32_t slabs;             /* slabs of this class, open or full */
};

struct slab_pool {
    struct slab_class classes[CLASS_COUNT];
    void **chunks;
    uint32_t chunk_count;
    uint32_t chunk_capacity;
    /* Slabs of no class: never used, or given back (their pages dropped). */
    struct slab **spare;
    uint32_t spare_count;
    uint32_t spare_capacity;
    uint64_t slabs;
    uint64_t carved_bytes;
    uint64_t object_bytes;
    uint64_t objects;
    uint64_t large_objects;
};

static unsigned class_of(size_t size)
{
    return (unsigned)((size + SLAB_ALIGN - 1) / SLAB_ALIGN - 1);
}

static size_t class_size(unsigned class_index)
{
    return ((size_t)class_index + 1) * SLAB_ALIGN;
}

static uint32_t capacity_of(unsigned class_index)
{
    return (uint32_t)((SLAB_BYTES - HEADER_BYTES) / class_size(class_index));
}

static struct slab *slab_holding(const void *object)
{
    return (struct slab *)((uintptr_t)object & ~(uintptr_t)(SLAB_BYTES - 1));
}

struct slab_pool *slab_pool_create(void)
{
    return xcalloc(1, sizeof(struct slab_pool));
}

void slab_pool_destroy(struct slab_pool *pool)
{
    if (pool == NULL)
        return;
    for (uint32_t i = 0; i < pool->chunk_count; i++)
        free(pool->chunks[i]);
    free(pool->chunks);
    free(pool->spare);
    free(pool);
}

size_t slab_object_bytes(size_t size)
{
    return class_size(class_of(size ? size : 1));
}

static void open_push(struct slab_class *class, struct slab *slab)
{
    slab->prev = NULL;
    slab->next = class->open;
    if (class->open != NULL)
        class->open->prev = slab;
    class->open = slab;
}

static void open_remove(struct slab_class *class, struct slab *slab)
{
    if (slab->prev != NULL)
        slab->prev->next = slab->next;
    else
        class->open = slab->next;
    if (slab->next != NULL)
        slab->next->prev = slab->prev;
    slab->next = slab->prev = NULL;
}

static void spare_push(struct slab_pool *pool, struct slab *slab)
{
    if (pool->spare_count == pool->spare_capacity) {
        pool->spare_capacity = pool->spare_capacity ? pool->spare_capacity * 2 : CHUNK_SLABS;
        pool->spare = xrealloc(pool->spare, pool->spare_capacity * sizeof(*pool->spare));
    }
    pool->spare[pool->spare_count++] = slab;
}

static void chunk_add(struct slab_pool *pool)
{
    if (pool->chunk_count == pool->chunk_capacity) {
        pool->chunk_capacity = pool->chunk_capacity ? pool->chunk_capacity * 2 : 4;
        pool->chunks = xrealloc(pool->chunks, pool->chunk_capacity * sizeof(*pool->chunks));
    }
    char *chunk = xaligned_alloc(SLAB_BYTES, (size_t)CHUNK_SLABS * SLAB_BYTES);
    pool->chunks[pool->chunk_count++] = chunk;
    /* Backwards, so that the chunk's first slab is used first. */
    for (uint32_t i = CHUNK_SLABS; i-- > 0;)
        spare_push(pool, (struct slab *)(void *)(chunk + (size_t)i * SLAB_BYTES));
}

static struct slab *slab_new(struct slab_pool *pool, unsigned class_index)
{
    if (pool->spare_count == 0)
        chunk_add(pool);
    struct slab *slab = pool->spare[--pool->spare_count];
    memset(slab, 0, sizeof(*slab));
    slab->class_index = class_index;
    pool->slabs++;
    pool->carved_bytes += HEADER_BYTES;
    pool->classes[class_index].slabs++;
    open_push(&pool->classes[class_index], slab);
    return slab;
}

/* Gives an empty slab's pages back to the system and keeps the slab for
 * any class. */
static void slab_release(struct slab_pool *pool, struct slab *slab)
{
    struct slab_class *class = &pool->classes[slab->class_index];
    open_remove(class, slab);
    class->slabs--;
    pool->slabs--;
    pool->carved_bytes -= HEADER_BYTES + (size_t)slab->carved * class_size(slab->class_index);
    /* Only what was carved was ever touched. */
    size_t touched = (HEADER_BYTES + (size_t)slab->carved * class_size(slab->class_index) +
                      PAGE_BYTES - 1) & ~(size_t)(PAGE_BYTES - 1);
    madvise(slab, touched, MADV_DONTNEED);
    spare_push(pool, slab);
}

void *slab_alloc(struct slab_pool *pool, size_t size)
{
    if (size == 0)
        size = 1;
    if (size > SLAB_OBJECT_MAX) {
        pool->large_objects++;
        return xmalloc(size);
    }
    unsigned class_index = class_of(size);
    pool->objects++;
    pool->object_bytes += class_size(class_index);
    if (SLAB_PASS_THROUGH)
        return xmalloc(size);
    struct slab_class *class = &pool->classes[class_index];
    struct slab *slab = class->open != NULL ? class->open : slab_new(pool, class_index);
    void *object;
    if (slab->free != NULL) {
        object = slab->free;
        memcpy(&slab->free, object, sizeof(slab->free));
    } else {
        object = (char *)slab + HEADER_BYTES + (size_t)slab->carved * class_size(class_index);
        slab->carved++;
        pool->carved_bytes += class_size(class_index);
    }
    slab->live++;
    if (slab->free == NULL && slab->carved == capacity_of(class_index))
        open_remove(class, slab);
    return object;
}

void slab_free(struct slab_pool *pool, void *object, size_t size)
{
    if (object == NULL)
        return;
    if (size == 0)
        size = 1;
    if (size > SLAB_OBJECT_MAX) {
        pool->large_objects--;
        free(object);
        return;
    }
    unsigned class_index = class_of(size);
    pool->objects--;
    pool->object_bytes -= class_size(class_index);
    if (SLAB_PASS_THROUGH) {
        free(object);
        return;
    }
    struct slab_class *class = &pool->classes[class_index];
    struct slab *slab = slab_holding(object);
    bool was_full = slab->free == NULL && slab->carved == capacity_of(class_index);
    memcpy(object, &slab->free, sizeof(slab->free));
    slab->free = object;
    slab->live--;
    if (was_full)
        open_push(class, slab);
    if (slab->live == 0 && class->slabs > 1)
        slab_release(pool, slab);
}

void slab_get_stats(const struct slab_pool *pool, struct slab_stats *out)
{
    out->slabs = pool->slabs;
    out->carved_bytes = pool->carved_bytes;
    out->object_bytes = pool->object_bytes;
    out->spare_bytes = SLAB_PASS_THROUGH ? 0 : pool->carved_bytes - pool->object_bytes;
    out->objects = pool->objects;
    out->large_objects = pool->large_objects;
}
