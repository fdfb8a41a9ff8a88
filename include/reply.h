/* reply.h - encoding RESP2 (and, after HELLO 3, RESP3) replies into a
 * connection's output buffer.
 *
 * The output is a reply_buffer: one contiguous byte array, grown by doubling,
 * that server.c sends with one write per batch of requests and drains by what
 * the socket took. Each encoder reserves its bytes once and copies them in
 * (no callbacks, no locks). Errors take the full first word ("ERR", "NOPERM",
 * "STALE"...), as redis-server's addReplyError does. Out of memory is fatal
 * (util.h), so no encoder can fail. */
#ifndef TENANTCACHED_REPLY_H
#define TENANTCACHED_REPLY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Zero-initialised is empty and ready. The bytes waiting to be sent are
 * data[start..end); the fields are private to reply.c. */
struct reply_buffer {
    char *data;
    size_t start;
    size_t end;
    size_t capacity;
    /* Public: the connection speaks RESP3 (HELLO 3). Only nil and maps are
     * written differently; every other reply keeps its RESP2 shape
     * (docs/reference.md §4). Kept by reply_buffer_free(). */
    bool resp3;
    size_t limit;   /* 0: none; else the pending length no append may pass */
    bool over;      /* an append was dropped for the limit */
};

void reply_buffer_free(struct reply_buffer *out);                       /* back to empty */
/* The pending bytes; the pointer is valid until the next call on out. */
static inline const char *reply_buffer_data(const struct reply_buffer *out)
{
    return out->data != NULL ? out->data + out->start : NULL;
}
static inline size_t reply_buffer_length(const struct reply_buffer *out)
{
    return out->end - out->start;
}
/* Drops the first len (<= length) pending bytes, once sent. An emptied
 * buffer that grew large for a big reply gives its memory back. */
void reply_buffer_drain(struct reply_buffer *out, size_t len);
void reply_buffer_add(struct reply_buffer *out, const void *data, size_t len); /* raw bytes */
/* Caps the pending length at limit (0: no cap) and clears the over flag:
 * an encoder that would pass it appends nothing and sets the flag, so an
 * oversized reply is never built (its caller replaces it). */
void reply_buffer_limit(struct reply_buffer *out, size_t limit);
static inline bool reply_buffer_over(const struct reply_buffer *out)
{
    return out->over;
}
/* Drops what was added after the pending bytes were `length` long (length
 * <= the pending length, and nothing drained since): a reply taken back. */
void reply_buffer_truncate(struct reply_buffer *out, size_t length);

void reply_status(struct reply_buffer *out, const char *status);        /* +OK */
void reply_error(struct reply_buffer *out, const char *fmt, ...)          /* -ERR ... */
    __attribute__((format(printf, 2, 3)));
void reply_bulk(struct reply_buffer *out, const void *data, size_t len);  /* $3\r\nabc\r\n */
void reply_bulk_string(struct reply_buffer *out, const char *text);
void reply_nil(struct reply_buffer *out);                 /* $-1, or _ in RESP3 */
void reply_integer(struct reply_buffer *out, long long value);            /* :1 */
void reply_array(struct reply_buffer *out, size_t count);                 /* *N header */
/* A map of count key/value pairs: %N in RESP3, a flat *2N array in RESP2.
 * The caller writes 2 * count replies after it. */
void reply_map(struct reply_buffer *out, size_t count);

#endif
