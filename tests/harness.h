/* harness.h - integration test harness: a private redis-server and the daemon
 * binary on Unix sockets under a temporary directory, plus hiredis helpers.
 *
 * Usage pattern (Check runs every test in a forked child by default):
 *
 *     START_TEST(test_something)
 *     {
 *         struct harness h;
 *         harness_init(&h);                         // in the test body...
 *         ck_assert_int_eq(harness_redis_start(&h), 0);
 *         ck_assert_int_eq(harness_daemon_start(&h, harness_daemon_config_default()), 0);
 *         redisContext *c = harness_connect(&h);
 *         ...
 *         redisFree(c);
 *         harness_cleanup(&h);
 *     }
 *
 * or from a *checked* fixture (tcase_add_checked_fixture), which runs in the
 * same child as the test. Never from an unchecked fixture: that runs in the
 * parent, and the children it starts would be shared by every test.
 *
 * Nothing is left behind when a test fails or crashes: redis-server and the
 * daemon are started with PR_SET_PDEATHSIG, so the kernel kills them when the
 * test process dies however it dies (a failed ck_assert in a forked test
 * calls _exit(), which skips atexit handlers); an atexit handler and
 * SIGINT/SIGTERM/SIGQUIT handlers kill them too; and a small watchdog process
 * removes the temporary directory once the test process is gone. Only the
 * process that called harness_init() acts on a harness.
 *
 * harness_init() ignores SIGPIPE in the test process, as the daemon does:
 * writing to a socket whose peer died must be an error, not a death.
 *
 * Environment: TENANTCACHED_BIN (default ./tenantcached), REDIS_SERVER
 * (default redis-server), TENANTCACHED_SANITIZER (set by make asan, tsan and
 * valgrind: harness_cleanup() then fails the test, with ck_abort_msg(), when
 * the daemon it stops does not exit 0, since the tool reports a leak or an
 * error at exit through the exit code). */
#ifndef TENANTCACHED_TESTS_HARNESS_H
#define TENANTCACHED_TESTS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

struct event_base;

#define HARNESS_PATH_MAX 108 /* sun_path */
#define HARNESS_DIR_MAX 64

struct harness {
    char dir[HARNESS_DIR_MAX];            /* /tmp/tenantcached-test.XXXXXX */
    char redis_socket[HARNESS_PATH_MAX];  /* <dir>/redis.sock */
    char redis_log[HARNESS_PATH_MAX];     /* <dir>/redis.log */
    char redis_password[128];             /* from --requirepass in the extra args */
    pid_t redis_pid;                      /* 0: not running */
    char daemon_socket[HARNESS_PATH_MAX]; /* <dir>/tenantcached.sock */
    char daemon_config[HARNESS_PATH_MAX]; /* <dir>/tenantcached.yaml */
    char daemon_log[HARNESS_PATH_MAX];    /* <dir>/daemon.log (stdout and stderr, appended) */
    pid_t daemon_pid;                     /* 0: not running */
    int daemon_status;                    /* wait status of the last daemon that exited */

    /* private */
    pid_t owner;
    int slot;
    pid_t watchdog_pid;
    int watchdog_fd;
    redisContext *publisher; /* cached connection for harness_publish() */
};

/* Creates the temporary directory and arms the safety nets. Aborts the test
 * process if the directory cannot be made. */
void harness_init(struct harness *h);
/* Stops the daemon and redis-server (SIGTERM, SIGKILL after 10 s), removes
 * the directory recursively. Safe to call twice. With TENANTCACHED_SANITIZER
 * set, fails the test (after cleaning up) if the daemon exits non-zero. */
void harness_cleanup(struct harness *h);

/* --- redis-server ------------------------------------------------------- */

/* Starts redis-server on <dir>/redis.sock (no TCP, no persistence) and waits
 * up to 5 s until it answers PING. extra: more arguments, NULL-terminated
 * ("--requirepass", "secret", NULL); may be NULL. A "--requirepass" among them
 * makes the harness's own connections AUTH. Returns 0, or -1 (log printed).
 * Can be called again after harness_redis_stop() to restart on the same socket. */
int harness_redis_start(struct harness *h);
int harness_redis_start_args(struct harness *h, const char *const *extra);
/* Sends sig (SIGTERM, SIGKILL, ...) and waits for the exit (SIGKILL after
 * 10 s). Returns 0, or -1 if redis was not running. */
int harness_redis_stop(struct harness *h, int sig);
/* SIGSTOP (waits until stopped) / SIGCONT. Return 0 or -1. */
int harness_redis_pause(struct harness *h);
int harness_redis_resume(struct harness *h);
/* A new synchronous connection to redis (5 s timeouts, AUTH done when a
 * password was given). The caller frees it with redisFree(). NULL on error. */
redisContext *harness_redis_connect(struct harness *h);
/* PUBLISH over a cached connection (made again if redis restarted). Returns
 * the number of receivers, or -1. Binary-safe up to the NUL. */
int harness_publish(struct harness *h, const char *channel, const char *payload);
/* Waits until redis reports at least one subscriber: any channel in PUBSUB
 * CHANNELS, or PUBSUB NUMPAT > 0. */
bool harness_wait_subscribed(struct harness *h, int timeout_ms);
/* Prints <dir>/redis.log to stderr. */
void harness_dump_redis_log(const struct harness *h);

/* --- the daemon --------------------------------------------------------- */

/* A minimal valid config template: debug logging, the private sockets, small
 * memory limits, fast reconnects (50 ms .. 500 ms). Static storage. */
const char *harness_daemon_config_default(void);
/* Returns tmpl with @DIR@, @REDIS_SOCKET@ and @DAEMON_SOCKET@ replaced
 * (malloc'ed; the caller frees it). */
char *harness_expand(const struct harness *h, const char *tmpl);
/* Writes the expanded template to <dir>/tenantcached.yaml (for a SIGHUP
 * reload test: write, then harness_daemon_signal(h, SIGHUP)). Returns 0 or -1. */
int harness_daemon_write_config(struct harness *h, const char *tmpl);
/* Writes the config (NULL: the default template), runs $TENANTCACHED_BIN -c
 * <config>, and waits up to 10 s until its socket answers PING. Fails (-1,
 * log printed) if the process exits or does not answer in time; 0 on success. */
int harness_daemon_start(struct harness *h, const char *tmpl);
/* Sends sig and waits up to 10 s for the exit (then SIGKILL, and the log is
 * printed). Returns the exit code, 128+N if killed by signal N, or -1 if no
 * daemon was running. */
int harness_daemon_stop(struct harness *h, int sig);
/* kill(daemon, sig). Returns 0 or -1. */
int harness_daemon_signal(struct harness *h, int sig);
/* True while the daemon process is running (reaps it if it exited). */
bool harness_daemon_alive(struct harness *h);
/* Prints <dir>/daemon.log to stderr. */
void harness_dump_log(const struct harness *h);

/* A suite's teardown: stops the daemon with SIGTERM if it runs (dumping its
 * log when it does not exit 0), cleans up, then fails the test unless the
 * daemon exited 0 (under the sanitizer builds a leak or an error at exit
 * shows here). */
void harness_finish(struct harness *h);
/* Runs $TENANTCACHED_BIN with args (NULL-terminated, not including argv[0])
 * to completion (killed after 10 s), capturing stdout and stderr into out
 * (NUL-terminated, truncated to size). Returns the exit code, 128+N if killed
 * by signal N, or -1 if it could not run. */
int harness_run_binary(struct harness *h, const char *const *args, char *out, size_t size);

/* --- talking to the daemon ---------------------------------------------- */

/* A synchronous connection to the daemon socket with 5 s connect and command
 * timeouts. The caller frees it with redisFree(). NULL on error (printed). */
redisContext *harness_connect(struct harness *h);
/* INFO, then the integer value of the line "field:value"; -1 when absent. */
long long harness_info_int(redisContext *c, const char *field);
/* Repeats INFO until field equals expected or timeout_ms passes. */
bool harness_wait_info(redisContext *c, int timeout_ms, const char *field, long long expected);
/* Repeats the command (redisCommand format) until its reply equals expected
 * (bulk or status text; an integer reply compares as its decimal form; NULL
 * expected means a nil reply) or timeout_ms passes; for "publish, then wait
 * until visible". Prints the last reply on failure. */
bool harness_wait_reply(redisContext *c, int timeout_ms, const char *expected, const char *fmt,
                        ...);

/* Runs the command (redisCommand format) and asserts (Check) that its reply,
 * described as harness_describe_reply() does, equals expected. */
void harness_expect(redisContext *c, const char *expected, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* HEALTH, parsed: asserts a bulk reply holding a JSON object, which the
 * caller releases with json_decref(). */
json_t *harness_health(redisContext *c);

/* True when a line of the daemon's log (h->daemon_log) contains text. */
bool harness_log_contains(const struct harness *h, const char *text);

/* A reply as text, for assertions and failure messages: "+STATUS",
 * "-ERROR", ":integer", "(nil)", a bulk string's bytes, "[a,b,...]" for an
 * array (elements described the same way), "(no reply)" for NULL. */
void harness_describe_reply(const redisReply *reply, char *buf, size_t size);

/* --- raw sockets, for what a client library would never send ------------ */

/* A plain connection to the daemon socket; the fd, or -1 (errno set). */
int harness_raw_connect(const struct harness *h);
/* Reads until `want` bytes arrived, the peer closed, or timeout_ms passed.
 * Returns the length read; buffer is NUL-terminated (it must hold want + 1
 * bytes); *closed tells whether EOF or a reset was seen. */
size_t harness_raw_read(int fd, char *buffer, size_t want, int timeout_ms, bool *closed);

/* --- asserting helpers (Check): each fails the test instead of returning -- */

/* Starts the daemon (tmpl as harness_daemon_start takes it), waits until redis
 * counts a subscriber, and returns a new connection to the daemon (the caller
 * frees it with redisFree()). */
redisContext *harness_start_subscribed(struct harness *h, const char *tmpl, int timeout_ms);
/* PUBLISH that at least one subscriber (the daemon) must receive. */
void harness_publish_ok(struct harness *h, const char *channel, const char *payload);
void harness_publishf(struct harness *h, const char *channel, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Publishes {"op":"set","tenant":..,"kind":..,"key":..,"value":json}; json is
 * pasted in as it is (a JSON text). */
void harness_publish_set(struct harness *h, const char *channel, const char *tenant,
                         const char *kind, const char *key, const char *json);
/* Publishes a marker entry sync/<kind>/m<N> = value (a JSON text whose GET
 * reply is the same text) and waits until GET on c returns it: every message
 * published before it over the same connection has then been applied. The
 * marker lives in tenant "sync", so other tenants' figures are untouched. */
void harness_sync_stream(struct harness *h, redisContext *c, const char *channel, const char *kind,
                         const char *value, int timeout_ms);

/* harness_raw_connect() that fails the test when it cannot connect. */
int harness_raw_open(const struct harness *h);
/* Writes all of data (no SIGPIPE); fails the test, with what the daemon
 * answered before it closed, when the write cannot complete. */
void harness_raw_send(int fd, const void *data, size_t len);

/* FUNCTION LOAD REPLACE of the project's function library
 * ($TENANTCACHED_LUA, default scripts/tenantcached.lua) into redis; asserts
 * that redis names it "tenantcached". */
void harness_redis_load_library(redisContext *redis);
/* FCALL tenantcached_publish 1 stream channel message, which must succeed;
 * the new entry's ID into id (size bytes) unless id is NULL. */
void harness_fcall_publish(redisContext *redis, const char *stream, const char *channel, char *id,
                           size_t size, const char *message);

/* True when got equals expected, or starts with expected's text before a
 * final '*' (an expected text ending in '*' is a prefix). */
bool harness_text_matches(const char *got, const char *expected);
/* Runs the command (redisCommand format, %b allowed) and asserts that its
 * reply, described as harness_describe_reply() does, matches expected as
 * harness_text_matches() says. */
void harness_expect_match(redisContext *c, const char *expected, const char *fmt, ...);
/* Repeats the command until its described reply matches expected (as
 * harness_text_matches() says), the connection fails, or timeout_ms passes;
 * prints the last reply when it never matched. */
bool harness_wait_match(redisContext *c, int timeout_ms, const char *expected, const char *fmt,
                        ...);

/* A TCP port on 127.0.0.1 that was free a moment ago (bound, then closed). */
int harness_free_port(void);

/* For suites that run a module's own loop in the test process: runs base in
 * short slices until cond(arg) holds (cond NULL: never) or timeout_ms
 * passes; returns cond(arg). harness_pump_for runs it for ms. */
bool harness_pump_until(struct event_base *base, int timeout_ms, bool (*cond)(int), int arg);
void harness_pump_for(struct event_base *base, int ms);

/* Milliseconds on CLOCK_MONOTONIC; sleep for ms. */
long long harness_now_ms(void);
void harness_sleep_ms(int ms);

#endif
