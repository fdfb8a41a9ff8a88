/* log.h - one line per event on stderr.
 *
 * Under systemd ($JOURNAL_STREAM set) each line starts with a "<N>" syslog
 * priority so journald files it correctly; otherwise with a local timestamp.
 * The level is set from the config and may change on reload. */
#ifndef TENANTCACHED_LOG_H
#define TENANTCACHED_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level {
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_INFO,
    LOG_LEVEL_NOTICE,
    LOG_LEVEL_WARNING,
    LOG_LEVEL_ERROR,
};

/* A rate limit for a repeated warning: at most one line per interval; the
 * lines suppressed in between are counted and reported with the next one.
 * Zero-initialise it. */
struct log_ratelimit {
    uint64_t window_start_ms;
    uint64_t suppressed;
};

void log_init(void);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
bool log_enabled(enum log_level level);
/* Parses "debug", "info", "notice", "warning", "error". Returns 0 or -1. */
int log_level_parse(const char *name, enum log_level *out);
const char *log_level_name(enum log_level level);

void log_message(enum log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Logs unless the limit suppresses it (one line per interval_ms). */
void log_limited(struct log_ratelimit *limit, uint64_t interval_ms, enum log_level level,
                 const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* Logs at error level and exits with status 1. For impossible states only. */
void log_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#define log_debug(...)  log_message(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...)   log_message(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_notice(...) log_message(LOG_LEVEL_NOTICE, __VA_ARGS__)
#define log_warn(...)   log_message(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_error(...)  log_message(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
