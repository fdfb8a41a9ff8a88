/* common.c - helpers shared by the benchmark programs (see common.h). */
#include "common.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *bench_program = "bench";

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void bench_sleep_until(uint64_t deadline_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(deadline_ns / 1000000000u),
                          .tv_nsec = (long)(deadline_ns % 1000000000u)};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", bench_program);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

redisContext *bench_connect(const char *path)
{
    redisContext *c = redisConnectUnix(path);
    if (c == NULL || c->err)
        bench_die("connect %s: %s", path, c != NULL ? c->errstr : "out of memory");
    return c;
}

redisReply *bench_command(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *reply = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (reply == NULL)
        bench_die("command %s: %s", fmt, c->errstr);
    if (reply->type == REDIS_REPLY_ERROR)
        bench_die("command %s: %s", fmt, reply->str);
    return reply;
}

long long bench_info(redisContext *c, const char *section, const char *field)
{
    redisReply *reply = bench_command(c, "INFO %s", section);
    long long value = -1;
    size_t field_len = strlen(field);
    if (reply->type == REDIS_REPLY_STRING) {
        for (const char *line = reply->str; line != NULL && *line != '\0';) {
            if (strncmp(line, field, field_len) == 0 && line[field_len] == ':') {
                value = strtoll(line + field_len + 1, NULL, 10);
                break;
            }
            line = strchr(line, '\n');
            if (line != NULL)
                line++;
        }
    }
    freeReplyObject(reply);
    return value;
}

unsigned long long bench_parse_u64(const char *text, const char *what)
{
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-')
        bench_die("invalid %s '%s'", what, text);
    return value;
}
