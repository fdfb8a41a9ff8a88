/* origin.h - the authoritative HTTP API (L3) as a fill source, docs/reference.md §5.
 *
 * `GET origin.url` with {tenant} {kind} {key} replaced by their URL-encoded
 * values, through libevent's HTTP client on the main loop, at most
 * origin.max_concurrent requests at once (the rest wait in order), each
 * bounded by origin.timeout. */
#ifndef TENANTCACHED_ORIGIN_H
#define TENANTCACHED_ORIGIN_H

#include <stddef.h>

#include "errors.h"

struct config;
struct event_base;
struct origin;

enum origin_status {
    ORIGIN_FOUND,       /* 200: body holds the value */
    ORIGIN_NOT_FOUND,   /* 404 */
    ORIGIN_FAILED,      /* anything else: refused, timed out, other status */
};

/* body is valid only during the call. */
typedef void origin_done_fn(void *arg, enum origin_status status, const char *body, size_t len);

/* Returns 0 with the client in *out, or 0 with *out NULL when
 * config->origin.url is empty; -1 (*out NULL) with the reason in
 * error[ERROR_MAX] when the URL cannot be parsed. */
int origin_create(struct event_base *base, const struct config *config, struct origin **out,
                  char *error);
/* Starts a request; done is always called later, exactly once (also on
 * origin_destroy, with ORIGIN_FAILED). */
void origin_get(struct origin *origin, const char *tenant, size_t tenant_len, const char *kind,
                const char *key, size_t key_len, origin_done_fn *done, void *arg);
void origin_destroy(struct origin *origin);

#endif
