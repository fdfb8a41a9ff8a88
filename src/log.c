/* log.c - one line per event on stderr, with syslog priorities under systemd.
 *
 * When $JOURNAL_STREAM is set (stderr is connected to journald) every line
 * starts with "<N>" so the journal records its priority; otherwise lines carry
 * a local timestamp, the pid and a level word, as a terminal user expects.
 * It sits below util.c (whose xmalloc logs before exiting) and so uses
 * nothing of util.h. */
#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define LEVEL_COUNT (sizeof(levels) / sizeof(levels[0]))

static _Atomic int current_level = LOG_LEVEL_INFO;
static bool to_journal;

static const struct {
    const char *name;
    int syslog_priority;
} levels[] = {
    [LOG_LEVEL_DEBUG] = {"debug", 7},
    [LOG_LEVEL_INFO] = {"info", 6},
    [LOG_LEVEL_NOTICE] = {"notice", 5},
    [LOG_LEVEL_WARNING] = {"warning", 4},
    [LOG_LEVEL_ERROR] = {"error", 3},
};

void log_init(void)
{
    const char *stream = getenv("JOURNAL_STREAM");
    to_journal = stream != NULL && stream[0] != '\0';
}

void log_set_level(enum log_level level)
{
    atomic_store(&current_level, (int)level);
}

enum log_level log_get_level(void)
{
    return (enum log_level)atomic_load(&current_level);
}

bool log_enabled(enum log_level level)
{
    return (int)level >= atomic_load_explicit(&current_level, memory_order_relaxed);
}

int log_level_parse(const char *name, enum log_level *out)
{
    for (size_t i = 0; i < LEVEL_COUNT; i++) {
        if (strcasecmp(name, levels[i].name) == 0) {
            *out = (enum log_level)i;
            return 0;
        }
    }
    return -1;
}

const char *log_level_name(enum log_level level)
{
    return (size_t)level < LEVEL_COUNT ? levels[level].name : "unknown";
}

/* Writes one line; suffix (may be NULL) is appended to the formatted text. */
__attribute__((format(printf, 3, 0)))
static void log_write(enum log_level level, const char *suffix, const char *fmt, va_list args)
{
    /* One write(2) per line, so lines from several threads never interleave. */
    char line[2048];
    size_t used;
    if (to_journal) {
        used = (size_t)snprintf(line, sizeof(line), "<%d>", levels[level].syslog_priority);
    } else {
        struct timeval now;
        struct tm local;
        gettimeofday(&now, NULL);
        localtime_r(&now.tv_sec, &local);
        char stamp[32];
        strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &local);
        used = (size_t)snprintf(line, sizeof(line), "%s.%03ld [%d] %s: ", stamp,
                                (long)(now.tv_usec / 1000), (int)getpid(), levels[level].name);
    }
    size_t body_start = used;
    int body = vsnprintf(line + used, sizeof(line) - used, fmt, args);
    if (body < 0)
        body = 0;
    used += (size_t)body;
    /* Truncated to one line; the suffix (short) survives a truncated body. */
    size_t suffix_len = suffix != NULL ? strlen(suffix) : 0;
    if (used + suffix_len > sizeof(line) - 2)
        used = sizeof(line) - 2 - suffix_len;
    /* One event, one line: text from a peer (a channel name) cannot start
     * lines of its own or carry terminal escapes. */
    for (size_t i = body_start; i < used; i++) {
        if ((unsigned char)line[i] < 0x20 || line[i] == 0x7f)
            line[i] = '?';
    }
    memcpy(line + used, suffix != NULL ? suffix : "", suffix_len);
    used += suffix_len;
    line[used++] = '\n';
    ssize_t ignored = write(STDERR_FILENO, line, used);
    (void)ignored;
}

void log_message(enum log_level level, const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    va_list args;
    va_start(args, fmt);
    log_write(level, NULL, fmt, args);
    va_end(args);
}

void log_limited(struct log_ratelimit *limit, uint64_t interval_ms, enum log_level level,
                 const char *fmt, ...)
{
    if (!log_enabled(level))
        return;
    /* Limits are shared by the query threads; one lock for all of them is
     * plenty for lines that are rare by construction. */
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now = (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
    pthread_mutex_lock(&lock);
    if (limit->window_start_ms != 0 && now - limit->window_start_ms < interval_ms) {
        limit->suppressed++;
        pthread_mutex_unlock(&lock);
        return;
    }
    uint64_t suppressed = limit->suppressed;
    limit->window_start_ms = now;
    limit->suppressed = 0;
    pthread_mutex_unlock(&lock);
    /* The count rides on the line itself: a separate line could be split
     * from it by other threads' lines and would not say what was suppressed. */
    char note[64] = "";
    if (suppressed > 0)
        snprintf(note, sizeof(note), " (%llu similar messages suppressed)",
                 (unsigned long long)suppressed);
    va_list args;
    va_start(args, fmt);
    log_write(level, suppressed > 0 ? note : NULL, fmt, args);
    va_end(args);
}

void log_fatal(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    log_write(LOG_LEVEL_ERROR, NULL, fmt, args);
    va_end(args);
    exit(1);
}
