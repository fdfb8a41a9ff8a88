/* errors.h - the one convention for reporting a recoverable error.
 *
 * A function that can fail returns 0 or -1 (or a pointer or NULL) and, on
 * failure only, writes a one-line message into the caller's buffer, passed
 * last as `char *error` and declared by the caller as `char error[ERROR_MAX]`;
 * the message is always NUL-terminated and cut to fit. The return value alone
 * says whether the call failed: a result that is not a failure, such as a
 * feature that the configuration turns off, is reported another way (0 with
 * a NULL out parameter), never by a NULL that could mean either.
 *
 * Out of memory is not an error a caller handles: xmalloc() and friends log
 * and abort (util.h). Long-lived objects that fail later (the Redis links, the
 * sentinel client) keep their last error in their own state instead. */
#ifndef TENANTCACHED_ERRORS_H
#define TENANTCACHED_ERRORS_H

/* Room for the longest message: a config error with its FILE:LINE:COLUMN,
 * or a snapshot error naming two paths. */
#define ERROR_MAX 512

#endif
