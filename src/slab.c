/* slab.c - size-class slabs for the cache's entries (see slab.h).
 *
 * Each class keeps a list of its slabs that have room (a slab with none is
 * on no list until an object of it is freed), and the pool a list of all its
 * slabs, for slab_pool_destroy(). An object is taken from a slab's free list
 * first, then carved from the slab's never-used tail; freed objects are
 * linked through their first 8 bytes.
 *
 * References (slab_ref()): a small object's is its chunk's number and its
 * place in the chunk in SLAB_ALIGN units; the chunks' addresses are in an
 * array that never moves, so readers may look one up while the owner adds
 * chunks. A large object (or, with SLAB_PASS_THROUGH, any object; or any
 * once CHUNK_MAX chunks are made) is a malloc block with a number, its
 * address in a two-level table whose pages never move either. */
#include "slab.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "util.h"

#define CLASS_COUNT (SLAB_OBJECT_MAX / SLAB_ALIGN)
/* Every slab: at least 31 objects of the largest class. */
#define SLAB_BYTES 65536u
/* Slabs come from chunks of CHUNK_SLABS, allocated once and kept until
 * the pool goes: one malloc block per slab, aligned at its size, would
 * leave a gap of up to a slab's size in glibc's heap for each (measured:
 * RSS per seed-typical tenant grew by half). A chunk is mapped on its own
 * (chunk_map()), where pages never touched cost nothing. */
#define CHUNK_SLABS 16u
#define CHUNK_BYTES ((size_t)CHUNK_SLABS * SLAB_BYTES)
#define PAGE_BYTES 4096u

/* A reference: with REF_LARGE, the number of a large object; else a
 * chunk's number (high bits) and an object's place in it in SLAB_ALIGN
 * units (REF_OFFSET_BITS low bits). Chunks beyond CHUNK_MAX (16 GiB of
 * slabs) are not made: objects are then malloc blocks like large ones. */
#define REF_LARGE 0x80000000u
#define REF_OFFSET_BITS 17u
#define CHUNK_MAX (1u << (31 - REF_OFFSET_BITS))
/* Large objects' table: LARGE_PAGES pages of LARGE_PAGE_SLOTS addresses
 * (2^27 objects above SLAB_OBJECT_MAX: far more than memory holds). */
#define LARGE_PAGE_BITS 13u
#define LARGE_PAGE_SLOTS (1u << LARGE_PAGE_BITS)
#define LARGE_PAGES (1u << 14)

struct slab {
    struct slab *next;          /* in its class's list of slabs with room */
    struct slab *prev;
    void *free;                 /* freed objects, linked through their first bytes */
    uint32_t live;              /* objects handed out and not freed */
    uint32_t carved;            /* objects ever carved from the tail */
    uint32_t class_index;
    uint32_t ref_base;          /* reference of the slab's first byte */
    uint32_t kept;              /* 1: empty, kept warm (pool->kept_empty) */
};

/* Objects start here, aligned. */
#define HEADER_BYTES ((sizeof(struct slab) + SLAB_ALIGN - 1) & ~(size_t)(SLAB_ALIGN - 1))

struct slab_class {
    struct slab *open;          /* slabs with room */
    uint32_t slabs;             /* slabs of this class, open or full */
};

struct slab_pool {
    struct slab_class classes[CLASS_COUNT];
    char **chunks;              /* CHUNK_MAX slots; never moved */
    uint32_t chunk_count;
    uint32_t chunk_limit;       /* CHUNK_MAX, or less (slab_pool_limit_chunks()) */
    /* Large objects: pages of addresses (never moved), numbers freed for
     * reuse, and the next never-used number (0 is never one). */
    void ***large_pages;        /* LARGE_PAGES slots */
    uint32_t *large_free;
    uint32_t large_free_count;
    uint32_t large_free_capacity;
    uint32_t large_next;
    /* Empty slabs kept with their pages (slab_free()), at most SLAB_KEPT_EMPTY. */
    uint32_t kept_empty;
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
    struct slab_pool *pool = xcalloc(1, sizeof(struct slab_pool));
    /* Untouched pages of these cost nothing. */
    pool->chunks = xcalloc(CHUNK_MAX, sizeof(*pool->chunks));
    pool->large_pages = xcalloc(LARGE_PAGES, sizeof(*pool->large_pages));
    pool->large_next = 1;
    pool->chunk_limit = CHUNK_MAX;
    return pool;
}

void slab_pool_limit_chunks(struct slab_pool *pool, uint32_t chunks)
{
    pool->chunk_limit = chunks < CHUNK_MAX ? chunks : CHUNK_MAX;
}

void slab_pool_destroy(struct slab_pool *pool)
{
    if (pool == NULL)
        return;
    for (uint32_t i = 0; i < pool->chunk_count; i++)
        munmap(pool->chunks[i], CHUNK_BYTES);
    for (uint32_t i = 0; i < LARGE_PAGES && pool->large_pages[i] != NULL; i++)
        free(pool->large_pages[i]);
    free(pool->chunks);
    free(pool->large_pages);
    free(pool->large_free);
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

/* A chunk straight from mmap, aligned at SLAB_BYTES by unmapping the ends
 * of a larger mapping. Not aligned_alloc(): glibc writes its block headers
 * at the start of the mapping and before the aligned address, two pages of
 * every chunk that no slab uses (measured: 1.8 bytes of RSS per
 * seed-typical entry). Out of memory is fatal, as for xmalloc(). */
static char *chunk_map(void)
{
    size_t span = CHUNK_BYTES + SLAB_BYTES;
    char *mapped = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapped == MAP_FAILED)
        log_fatal("out of memory mapping %zu bytes of slabs", span);
    size_t head = (SLAB_BYTES - (uintptr_t)mapped % SLAB_BYTES) % SLAB_BYTES;
    if (head > 0)
        munmap(mapped, head);
    if (span - head > CHUNK_BYTES)
        munmap(mapped + head + CHUNK_BYTES, span - head - CHUNK_BYTES);
    return mapped + head;
}

/* Adds a chunk of slabs; false if there may be no more (chunk_limit). */
static bool chunk_add(struct slab_pool *pool)
{
    if (pool->chunk_count >= pool->chunk_limit)
        return false;
    char *chunk = chunk_map();
    pool->chunks[pool->chunk_count++] = chunk;
    /* Backwards, so that the chunk's first slab is used first. */
    for (uint32_t i = CHUNK_SLABS; i-- > 0;)
        spare_push(pool, (struct slab *)(void *)(chunk + (size_t)i * SLAB_BYTES));
    return true;
}

/* The reference of a slab's first byte, from the chunk holding it. */
static uint32_t slab_ref_base(const struct slab_pool *pool, const struct slab *slab)
{
    for (uint32_t i = pool->chunk_count; i-- > 0;) {
        const char *chunk = pool->chunks[i];
        if ((const char *)slab >= chunk && (const char *)slab < chunk + CHUNK_BYTES)
            return (i << REF_OFFSET_BITS) |
                   (uint32_t)(((const char *)slab - chunk) / SLAB_ALIGN);
    }
    return 0; /* not reached: every slab is in a chunk */
}

/* A slab for class_index, or NULL when no chunk may be added. */
static struct slab *slab_new(struct slab_pool *pool, unsigned class_index)
{
    if (pool->spare_count == 0 && !chunk_add(pool))
        return NULL;
    struct slab *slab = pool->spare[--pool->spare_count];
    memset(slab, 0, sizeof(*slab));
    slab->class_index = class_index;
    slab->ref_base = slab_ref_base(pool, slab);
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

/* ---- malloc blocks with a number ---- */

static void **large_slot(const struct slab_pool *pool, uint32_t number)
{
    return &pool->large_pages[number >> LARGE_PAGE_BITS][number & (LARGE_PAGE_SLOTS - 1)];
}

static void *block_alloc(struct slab_pool *pool, size_t size, uint32_t *ref)
{
    uint32_t number;
    if (pool->large_free_count > 0) {
        number = pool->large_free[--pool->large_free_count];
    } else {
        if (pool->large_next == LARGE_PAGES * LARGE_PAGE_SLOTS)
            log_fatal("out of memory: more than %u objects above %d bytes",
                      LARGE_PAGES * LARGE_PAGE_SLOTS - 1, SLAB_OBJECT_MAX);
        number = pool->large_next++;
        if (pool->large_pages[number >> LARGE_PAGE_BITS] == NULL)
            pool->large_pages[number >> LARGE_PAGE_BITS] =
                xcalloc(LARGE_PAGE_SLOTS, sizeof(void *));
    }
    void *block = xmalloc(size);
    *large_slot(pool, number) = block;
    *ref = REF_LARGE | number;
    return block;
}

static void block_free(struct slab_pool *pool, uint32_t ref)
{
    uint32_t number = ref & ~REF_LARGE;
    free(*large_slot(pool, number));
    *large_slot(pool, number) = NULL;
    if (pool->large_free_count == pool->large_free_capacity) {
        pool->large_free_capacity = pool->large_free_capacity ? pool->large_free_capacity * 2 : 64;
        pool->large_free =
            xrealloc(pool->large_free, pool->large_free_capacity * sizeof(*pool->large_free));
    }
    pool->large_free[pool->large_free_count++] = number;
}

/* ---- objects ---- */

void *slab_alloc(struct slab_pool *pool, size_t size, uint32_t *ref)
{
    if (size == 0)
        size = 1;
    if (size > SLAB_OBJECT_MAX) {
        pool->large_objects++;
        return block_alloc(pool, size, ref);
    }
    unsigned class_index = class_of(size);
    pool->objects++;
    pool->object_bytes += class_size(class_index);
    if (SLAB_PASS_THROUGH)
        return block_alloc(pool, size, ref);
    struct slab_class *class = &pool->classes[class_index];
    struct slab *slab = class->open != NULL ? class->open : slab_new(pool, class_index);
    if (slab == NULL) /* no chunk may be added: a block of its own */
        return block_alloc(pool, size, ref);
    char *object;
    if (slab->free != NULL) {
        object = slab->free;
        memcpy(&slab->free, object, sizeof(slab->free));
    } else {
        object = (char *)slab + HEADER_BYTES + (size_t)slab->carved * class_size(class_index);
        slab->carved++;
        pool->carved_bytes += class_size(class_index);
    }
    if (slab->kept) {
        slab->kept = 0;
        pool->kept_empty--;
    }
    slab->live++;
    if (slab->free == NULL && slab->carved == capacity_of(class_index))
        open_remove(class, slab);
    *ref = slab->ref_base + (uint32_t)((size_t)(object - (char *)slab) / SLAB_ALIGN);
    return object;
}

void *slab_object(const struct slab_pool *pool, uint32_t ref)
{
    if (ref & REF_LARGE)
        return *large_slot(pool, ref & ~REF_LARGE);
    return pool->chunks[ref >> REF_OFFSET_BITS] +
           (size_t)(ref & ((1u << REF_OFFSET_BITS) - 1)) * SLAB_ALIGN;
}

void slab_free(struct slab_pool *pool, uint32_t ref, size_t size)
{
    if (ref == 0)
        return;
    if (size == 0)
        size = 1;
    if (size > SLAB_OBJECT_MAX) {
        pool->large_objects--;
        block_free(pool, ref);
        return;
    }
    unsigned class_index = class_of(size);
    pool->objects--;
    pool->object_bytes -= class_size(class_index);
    if (ref & REF_LARGE) {
        block_free(pool, ref);
        return;
    }
    char *object = slab_object(pool, ref);
    struct slab_class *class = &pool->classes[class_index];
    struct slab *slab = slab_holding(object);
    bool was_full = slab->free == NULL && slab->carved == capacity_of(class_index);
    memcpy(object, &slab->free, sizeof(slab->free));
    slab->free = object;
    slab->live--;
    if (was_full)
        open_push(class, slab);
    /* A class keeps its last slab. Other empty slabs keep their pages while
     * there are few of them: a stream of replacements empties a slab and
     * needs a new one a moment later, and giving the pages back and
     * faulting them in again each time cost more than the copying. */
    if (slab->live == 0 && class->slabs > 1) {
        if (pool->kept_empty < SLAB_KEPT_EMPTY) {
            slab->kept = 1;
            pool->kept_empty++;
        } else {
            slab_release(pool, slab);
        }
    }
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
