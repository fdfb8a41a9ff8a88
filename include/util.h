/* util.h - allocation that cannot fail, clocks, and small string helpers.
 *
 * Out-of-memory is fatal in exactly one place (util.c): the x* allocators log
 * and abort, so call sites never carry an allocation-failure branch. Everything
 * a peer sends is bounded before it is allocated, so running out of memory is
 * an operator's problem, not an input error. */
#ifndef TENANTCACHED_UTIL_H
#define TENANTCACHED_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/time.h>

#define UTIL_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void *xmalloc(size_t size);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t len);
void *xmemdup(const void *data, size_t len);

/* Bytes the allocator really holds for an allocation from xmalloc() & co:
 * its usable size plus the allocator's per-chunk header. Used for exact
 * memory accounting. */
size_t util_alloc_size(const void *ptr);

/* Milliseconds on CLOCK_MONOTONIC / CLOCK_REALTIME. Cannot fail. */
uint64_t util_monotonic_ms(void);
uint64_t util_monotonic_us(void);
uint64_t util_realtime_ms(void);

/* A duration in milliseconds as the struct timeval libevent's timers take. */
struct timeval util_timeval_from_ms(uint64_t ms);

/* xorshift64*: the next number from *state (which must not be 0). For
 * spreading choices (eviction samples, retry jitter), not for secrets. */
uint64_t util_random(uint64_t *state);

/* Case-insensitive comparison of a (not NUL-terminated) buffer with a C string. */
bool util_equal_nocase(const char *buf, size_t len, const char *word);

/* Writes the shortest decimal form of a finite double that reads back to the
 * same value ("3.5", "12", "0.1"). Returns the length written (< size). */
size_t util_format_double(double value, char *out, size_t size);

/* Formats a byte count the way redis-server's INFO does ("1.50M"). */
void util_format_human_bytes(uint64_t bytes, char *out, size_t size);

/* FNV-1a style 64-bit hash, seeded, for the cache's hash tables. */
uint64_t util_hash(const void *data, size_t len, uint64_t seed);

/* LEB128 varints (7 bits a byte, low first): util_put_varint() writes
 * value at out (at most UTIL_VARINT_MAX bytes) and returns the end;
 * util_varint_size() is how many bytes that takes. Readers are the
 * callers' own: the cache trusts what it wrote, value.c checks bounds. */
#define UTIL_VARINT_MAX 10
unsigned char *util_put_varint(unsigned char *out, uint64_t value);
size_t util_varint_size(uint64_t value);

/* The value of a hexadecimal digit (either case), or -1. */
int util_hex_value(char c);

/* Resident set size of this process in bytes, from /proc/self/statm; 0 if unknown. */
uint64_t util_rss_bytes(void);

#endif
