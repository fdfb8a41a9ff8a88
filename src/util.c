/* util.c - allocation that aborts on failure, clocks, and small helpers.
 * See util.h for why out-of-memory is fatal here and only here. */
#include "util.h"

#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static void out_of_memory(size_t size)
{
    log_fatal("out of memory allocating %zu bytes", size);
}

void *xmalloc(size_t size)
{
    void *ptr = malloc(size ? size : 1);
    if (ptr == NULL)
        out_of_memory(size);
    return ptr;
}

void *xcalloc(size_t count, size_t size)
{
    void *ptr = calloc(count ? count : 1, size ? size : 1);
    if (ptr == NULL)
        out_of_memory(count * size);
    return ptr;
}

void *xrealloc(void *ptr, size_t size)
{
    void *grown = realloc(ptr, size ? size : 1);
    if (grown == NULL)
        out_of_memory(size);
    return grown;
}

char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

char *xstrndup(const char *s, size_t len)
{
    char *copy = xmalloc(len + 1);
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

void *xmemdup(const void *data, size_t len)
{
    void *copy = xmalloc(len);
    if (len > 0)
        memcpy(copy, data, len);
    return copy;
}

size_t util_alloc_size(const void *ptr)
{
    /* glibc keeps one size word in front of every chunk. */
    return ptr ? malloc_usable_size((void *)ptr) + sizeof(size_t) : 0;
}

static uint64_t clock_us(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t util_monotonic_us(void)
{
    return clock_us(CLOCK_MONOTONIC);
}

uint64_t util_monotonic_ms(void)
{
    return clock_us(CLOCK_MONOTONIC) / 1000u;
}

uint64_t util_realtime_ms(void)
{
    return clock_us(CLOCK_REALTIME) / 1000u;
}

struct timeval util_timeval_from_ms(uint64_t ms)
{
    struct timeval tv = {
        .tv_sec = (time_t)(ms / 1000),
        .tv_usec = (suseconds_t)((ms % 1000) * 1000),
    };
    return tv;
}

uint64_t util_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545f4914f6cdd1dull;
}

bool util_equal_nocase(const char *buf, size_t len, const char *word)
{
    return strlen(word) == len && strncasecmp(buf, word, len) == 0;
}

size_t util_format_double(double value, char *out, size_t size)
{
    /* The fewest significant digits that read back exactly (at most 17 for a
     * double), then plain decimal notation unless the exponent is extreme:
     * %g alone would write 20 as "2e+01". */
    char digits[40];
    int precision;
    for (precision = 1; precision < 17; precision++) {
        snprintf(digits, sizeof(digits), "%.*e", precision - 1, value);
        if (strtod(digits, NULL) == value)
            break;
    }
    snprintf(digits, sizeof(digits), "%.*e", precision - 1, value);
    const char *e = strchr(digits, 'e');
    int exponent = e != NULL ? atoi(e + 1) : 0;
    int written;
    if (exponent >= -7 && exponent < 17) {
        int decimals = precision - 1 - exponent;
        if (decimals >= 0) {
            written = snprintf(out, size, "%.*f", decimals, value);
        } else {
            /* An integer with fewer significant digits than places: the
             * shortest digits then zeros ("31722300588172750"), as %.0f
             * would print the binary value's exact noise digits instead. */
            char plain[48];
            size_t n = 0;
            for (const char *p = digits; p < e; p++) {
                if (*p != '.')
                    plain[n++] = *p;
            }
            for (int i = 0; i < -decimals; i++)
                plain[n++] = '0';
            plain[n] = '\0';
            written = snprintf(out, size, "%s", plain);
        }
    } else {
        written = snprintf(out, size, "%.*g", precision, value);
    }
    return written > 0 && (size_t)written < size ? (size_t)written : 0;
}

void util_format_human_bytes(uint64_t bytes, char *out, size_t size)
{
    static const char units[] = "BKMGTP";
    double value = (double)bytes;
    size_t unit = 0;
    while (value >= 1024.0 && unit + 1 < sizeof(units) - 1) {
        value /= 1024.0;
        unit++;
    }
    if (unit == 0)
        snprintf(out, size, "%lluB", (unsigned long long)bytes);
    else
        snprintf(out, size, "%.2f%c", value, units[unit]);
}

uint64_t util_hash(const void *data, size_t len, uint64_t seed)
{
    /* FNV-1a over 64 bits, then a final avalanche so the low bits (used as
     * bucket indexes) depend on every input byte. */
    const unsigned char *bytes = data;
    uint64_t hash = 0xcbf29ce484222325u ^ seed;
    for (size_t i = 0; i < len; i++) {
        hash ^= bytes[i];
        hash *= 0x100000001b3u;
    }
    hash ^= hash >> 33;
    hash *= 0xff51afd7ed558ccdu;
    hash ^= hash >> 33;
    return hash;
}

uint64_t util_rss_bytes(void)
{
    FILE *file = fopen("/proc/self/statm", "r");
    if (file == NULL)
        return 0;
    unsigned long long pages_total = 0, pages_resident = 0;
    int fields = fscanf(file, "%llu %llu", &pages_total, &pages_resident);
    fclose(file);
    if (fields != 2)
        return 0;
    long page = sysconf(_SC_PAGESIZE);
    return pages_resident * (uint64_t)(page > 0 ? page : 4096);
}

int util_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

unsigned char *util_put_varint(unsigned char *out, uint64_t value)
{
    while (value >= 0x80) {
        *out++ = (unsigned char)(value | 0x80);
        value >>= 7;
    }
    *out++ = (unsigned char)value;
    return out;
}

size_t util_varint_size(uint64_t value)
{
    size_t size = 1;
    while (value >= 0x80) {
        value >>= 7;
        size++;
    }
    return size;
}
