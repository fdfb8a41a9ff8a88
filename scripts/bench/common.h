/* common.h - helpers shared by the benchmark programs of scripts/bench.sh:
 * clocks, hiredis connections to Unix sockets, INFO fields, fatal errors. */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

/* Monotonic clock in nanoseconds. Cannot fail. */
uint64_t bench_now_ns(void);
/* CPU time (user + system) of this process, in nanoseconds. */
uint64_t bench_cpu_ns(void);
/* Sleeps until the monotonic clock reaches deadline_ns (returns at once if past). */
void bench_sleep_until(uint64_t deadline_ns);

/* Prints "PROGRAM: message" to stderr and exits 1. */
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* A blocking hiredis connection to a Unix socket; exits on failure. */
redisContext *bench_connect(const char *path);
/* Runs a command that must not fail; returns the reply (caller frees). */
redisReply *bench_command(redisContext *c, const char *fmt, ...);
/* The integer value of `field` in INFO `section`, or -1 if it is absent. */
long long bench_info(redisContext *c, const char *section, const char *field);

/* Parses a non-negative decimal argument; exits on garbage. */
unsigned long long bench_parse_u64(const char *text, const char *what);

extern const char *bench_program;

#endif
