/* slab.h - size-class slabs for the cache's entries.
 *
 * glibc's malloc puts a size word in front of every block and rounds it up
 * to 16 bytes: about 16 bytes on each of millions of small entries. A pool
 * instead carves objects of one size class (every multiple of 8 bytes up to
 * SLAB_OBJECT_MAX) out of 64 KiB slabs, as memcached does, so an object
 * costs its size rounded up to 8 and nothing else. Slabs are aligned at
 * their size, so the slab holding an object is found by masking the
 * object's address; its header holds its class, its live count and its
 * free list. Objects are carved from a slab in order, so the part of a slab
 * never used is never touched and costs no memory. A slab that becomes
 * empty is given back (its pages returned to the system with madvise, the
 * slab kept for any class) unless it is its class's only one or one of
 * the SLAB_KEPT_EMPTY empty slabs the pool keeps warm for a stream of
 * replacements, so memory goes back after a flush or an eviction. Slabs come from 1 MiB chunks,
 * freed with the pool. Larger objects (above SLAB_OBJECT_MAX) are plain
 * malloc blocks.
 *
 * Every object has a 32-bit reference, never 0, that slab_object() turns
 * back into its address: the cache's tables hold these instead of 8-byte
 * pointers. A small object's names its chunk and its place there (16 GiB
 * of slabs at most; past that, small objects are malloc blocks too); a
 * malloc block's is a number in a table of their addresses.
 *
 * Objects are aligned to 8 bytes (the cache's entry header holds a uint64_t
 * and atomics). The caller gives each object's reference and size back
 * when freeing it (the entry knows its own size).
 *
 * Built with AddressSanitizer or ThreadSanitizer, every object is a malloc
 * block of its own, so that the tools still see overflows and races on each
 * one; the sizes reported (slab_object_bytes()) stay the same.
 *
 * Thread rules: a pool has no lock. Its owner must serialise every call on
 * it (the cache allocates and frees entries only under its writers' lock),
 * except slab_object(), which any thread may call for an object that it
 * knows is not freed meanwhile (the cache's readers, under a shard's read
 * lock, for the references in its tables). */
#ifndef TENANTCACHED_SLAB_H
#define TENANTCACHED_SLAB_H

#include <stddef.h>
#include <stdint.h>

/* 1: built with AddressSanitizer or ThreadSanitizer, every object is a
 * malloc block of its own (no slabs). */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define SLAB_PASS_THROUGH 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define SLAB_PASS_THROUGH 1
#endif
#endif
#ifndef SLAB_PASS_THROUGH
#define SLAB_PASS_THROUGH 0
#endif

/* Empty slabs a pool keeps with their pages, beyond each class's last. */
#define SLAB_KEPT_EMPTY 16

/* The largest object carved from slabs; larger ones are malloc blocks. */
#define SLAB_OBJECT_MAX 2048
#define SLAB_ALIGN 8

struct slab_pool;

struct slab_stats {
    uint64_t slabs;           /* slabs in use by some class */
    uint64_t carved_bytes;    /* their headers and the objects ever carved from
                               * them (live or free): what they have touched */
    uint64_t object_bytes;    /* bytes of the live small objects (class sizes) */
    uint64_t spare_bytes;     /* carved_bytes beyond object_bytes: headers and
                               * free objects (0 with SLAB_PASS_THROUGH) */
    uint64_t objects;         /* live small objects */
    uint64_t large_objects;   /* live objects above SLAB_OBJECT_MAX */
};

/* An empty pool. Cannot fail (out of memory is fatal). */
struct slab_pool *slab_pool_create(void);
/* At most `chunks` 1 MiB chunks of slabs from now on (they are 16,384 at
 * most, 16 GiB); past them small objects are malloc blocks. For tests. */
void slab_pool_limit_chunks(struct slab_pool *pool, uint32_t chunks);
/* Frees the pool and every slab it holds: objects not yet freed die with
 * it. Large objects must have been freed by the caller. NULL: no-op. */
void slab_pool_destroy(struct slab_pool *pool);

/* An object of `size` bytes (> 0), aligned to SLAB_ALIGN, uninitialised,
 * and its reference in *ref. Cannot fail (out of memory is fatal). The
 * caller owns it until slab_free(). */
void *slab_alloc(struct slab_pool *pool, size_t size, uint32_t *ref);
/* The address of the object with reference `ref` (not 0, not freed). */
void *slab_object(const struct slab_pool *pool, uint32_t ref);
/* Frees the object with reference `ref` from slab_alloc(pool, size):
 * `size` must be the same. 0: no-op. */
void slab_free(struct slab_pool *pool, uint32_t ref, size_t size);

/* Bytes a small object (size <= SLAB_OBJECT_MAX) takes in its slab: the
 * size rounded up to its class, a multiple of 8. A larger object is a
 * malloc block that its owner measures itself. Pure; cannot fail. */
size_t slab_object_bytes(size_t size);

void slab_get_stats(const struct slab_pool *pool, struct slab_stats *out);

#endif
