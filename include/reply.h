/* reply.h - encoding RESP2 replies into a connection's output buffer.
 *
 * Thin, allocation-free writers over a libevent evbuffer (the connection's
 * output). Errors take the full first word ("ERR", "NOPERM", "STALE"...), as
 * redis-server's addReplyError does. */
#ifndef TENANTCACHED_REPLY_H
#define TENANTCACHED_REPLY_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

void reply_status(struct evbuffer *out, const char *status);           /* +OK */
void reply_error(struct evbuffer *out, const char *fmt, ...)             /* -ERR ... */
    __attribute__((format(printf, 2, 3)));
void reply_bulk(struct evbuffer *out, const void *data, size_t len);     /* $3\r\nabc\r\n */
void reply_bulk_string(struct evbuffer *out, const char *text);
void reply_nil(struct evbuffer *out);                                    /* $-1 */
void reply_integer(struct evbuffer *out, long long value);               /* :1 */
void reply_array(struct evbuffer *out, size_t count);                    /* *N header */

#endif
