/* harness.c - integration test harness: private redis-server and daemon
 * processes on temporary Unix sockets (see harness.h for the usage pattern
 * and the safety nets that keep a failed test from leaving them behind). */
#include "harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>
#include <event2/event.h>
#include <jansson.h>

#define HARNESS_SLOTS 16
#define HARNESS_STOP_WAIT_MS 10000
#define HARNESS_REDIS_START_MS 5000
#define HARNESS_DAEMON_START_MS 10000

/* What the emergency paths need, copied out of the (possibly stack-allocated
 * and long gone) struct harness: pids read by signal handlers, the directory
 * read by the atexit handler. */
static struct {
    volatile pid_t owner; /* 0: free */
    volatile pid_t redis;
    volatile pid_t daemon;
    pid_t watchdog;
    int watchdog_fd;
    char dir[HARNESS_DIR_MAX];
} slots[HARNESS_SLOTS];

static bool hooks_installed;

long long harness_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void harness_sleep_ms(int ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* --- safety nets -------------------------------------------------------- */

/* Async-signal-safe: only kill(2). */
static void harness_kill_owned(void)
{
    pid_t self = getpid();
    for (int i = 0; i < HARNESS_SLOTS; i++) {
        if (slots[i].owner != self)
            continue;
        if (slots[i].daemon > 0)
            kill(slots[i].daemon, SIGKILL);
        if (slots[i].redis > 0)
            kill(slots[i].redis, SIGKILL);
    }
}

static void harness_on_signal(int sig)
{
    harness_kill_owned();
    signal(sig, SIG_DFL);
    raise(sig);
}

static int harness_remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void harness_remove_dir(const char *dir)
{
    if (dir[0] != '\0')
        nftw(dir, harness_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void harness_wait_gone(pid_t pid)
{
    int status;
    while (waitpid(pid, &status, 0) == -1 && errno == EINTR) {
    }
}

/* A test that returned without harness_cleanup() (or called exit()). */
static void harness_at_exit(void)
{
    harness_kill_owned();
    pid_t self = getpid();
    for (int i = 0; i < HARNESS_SLOTS; i++) {
        if (slots[i].owner != self)
            continue;
        if (slots[i].daemon > 0)
            harness_wait_gone(slots[i].daemon);
        if (slots[i].redis > 0)
            harness_wait_gone(slots[i].redis);
        harness_remove_dir(slots[i].dir);
        if (slots[i].watchdog_fd >= 0)
            close(slots[i].watchdog_fd);
        if (slots[i].watchdog > 0)
            harness_wait_gone(slots[i].watchdog);
        slots[i].owner = 0;
    }
}

static void harness_install_hooks(void)
{
    if (hooks_installed)
        return;
    hooks_installed = true;
    atexit(harness_at_exit);
    static const int sigs[] = {SIGINT, SIGTERM, SIGQUIT};
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
        struct sigaction old;
        if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL)
            signal(sigs[i], harness_on_signal);
    }
}

static void harness_slot_update(const struct harness *h)
{
    if (h->slot < 0)
        return;
    slots[h->slot].redis = h->redis_pid;
    slots[h->slot].daemon = h->daemon_pid;
}

/* A process outside our process group that removes the directory once its
 * stdin (a pipe only the test process holds) reaches end of file, that is
 * once the test process is gone, however it went. */
static void harness_start_watchdog(struct harness *h)
{
    int fds[2];
    h->watchdog_fd = -1;
    h->watchdog_pid = 0;
    if (pipe2(fds, O_CLOEXEC) != 0)
        return;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return;
    }
    if (pid == 0) {
        setpgid(0, 0); /* a ^C to the tests must not kill the cleaner first */
        dup2(fds[0], STDIN_FILENO);
        execl("/bin/sh", "sh", "-c", "cat >/dev/null; rm -rf -- \"$1\"", "tenantcached-harness",
              h->dir, (char *)NULL);
        _exit(127);
    }
    close(fds[0]);
    h->watchdog_fd = fds[1];
    h->watchdog_pid = pid;
}

void harness_init(struct harness *h)
{
    memset(h, 0, sizeof(*h));
    h->slot = -1;
    h->watchdog_fd = -1;
    h->owner = getpid();
    signal(SIGPIPE, SIG_IGN);

    snprintf(h->dir, sizeof(h->dir), "/tmp/tenantcached-test.XXXXXX");
    if (mkdtemp(h->dir) == NULL) {
        fprintf(stderr, "harness: mkdtemp: %s\n", strerror(errno));
        abort();
    }
    snprintf(h->redis_socket, sizeof(h->redis_socket), "%s/redis.sock", h->dir);
    snprintf(h->redis_log, sizeof(h->redis_log), "%s/redis.log", h->dir);
    snprintf(h->daemon_socket, sizeof(h->daemon_socket), "%s/tenantcached.sock", h->dir);
    snprintf(h->daemon_config, sizeof(h->daemon_config), "%s/tenantcached.yaml", h->dir);
    snprintf(h->daemon_log, sizeof(h->daemon_log), "%s/daemon.log", h->dir);

    harness_install_hooks();
    harness_start_watchdog(h);
    for (int i = 0; i < HARNESS_SLOTS; i++) {
        /* A slot is free, or was left to us by a fork of a process that still
         * owns it (a Check parent): ours to reuse only when that owner is dead. */
        bool free_slot = slots[i].owner == 0 ||
                         (slots[i].owner != h->owner && kill(slots[i].owner, 0) != 0);
        if (free_slot) {
            slots[i].owner = h->owner;
            slots[i].redis = 0;
            slots[i].daemon = 0;
            slots[i].watchdog = h->watchdog_pid;
            slots[i].watchdog_fd = h->watchdog_fd;
            snprintf(slots[i].dir, sizeof(slots[i].dir), "%s", h->dir);
            h->slot = i;
            break;
        }
    }
    if (h->slot < 0)
        fprintf(stderr, "harness: more than %d harnesses at once; no atexit safety for %s\n",
                HARNESS_SLOTS, h->dir);
}

/* --- processes ---------------------------------------------------------- */

/* Forks and execs argv with stdout and stderr appended to log_path. The child
 * dies with the process that started it (PR_SET_PDEATHSIG). */
static pid_t harness_spawn(const char *const *argv, const char *log_path)
{
    pid_t parent = getpid();
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid != 0)
        return pid;

    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent)
        _exit(127); /* the parent died before prctl() */
    int log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null >= 0)
        dup2(null, STDIN_FILENO);
    if (log >= 0) {
        dup2(log, STDOUT_FILENO);
        dup2(log, STDERR_FILENO);
    }
    /* an ignored signal stays ignored across exec: give the child defaults */
    signal(SIGPIPE, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execvp(argv[0], (char *const *)argv);
    fprintf(stderr, "harness: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
}

/* Waits up to timeout_ms for pid to exit. Returns true and its wait status
 * when it did (or it was already reaped: status 0). */
static bool harness_wait_exit(pid_t pid, int timeout_ms, int *status)
{
    long long deadline = harness_now_ms() + timeout_ms;
    for (;;) {
        pid_t got = waitpid(pid, status, WNOHANG);
        if (got == pid)
            return true;
        if (got == -1 && errno != EINTR) {
            *status = 0;
            return true;
        }
        if (harness_now_ms() >= deadline)
            return false;
        harness_sleep_ms(5);
    }
}

/* Signals pid and waits; SIGKILL when it outlives wait_ms. Returns the wait status. */
static int harness_terminate(pid_t pid, int sig, int wait_ms, const char *what, bool *killed)
{
    int status = 0;
    *killed = false;
    /* A stopped process acts on the signal only once resumed. SIGCONT goes
     * first: sent after, it could discard the SIGSTOP with which LeakSanitizer
     * (ptrace) stops the exiting daemon's threads, and the exit would hang. */
    if (sig != SIGKILL && sig != SIGCONT)
        kill(pid, SIGCONT);
    kill(pid, sig);
    if (harness_wait_exit(pid, wait_ms, &status))
        return status;
    fprintf(stderr, "harness: %s (pid %d) still running %d ms after signal %d, killing it\n", what,
            (int)pid, wait_ms, sig);
    *killed = true;
    kill(pid, SIGKILL);
    harness_wait_exit(pid, HARNESS_STOP_WAIT_MS, &status);
    return status;
}

static int harness_exit_code(int status)
{
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return -1;
}

static void harness_dump_file(const char *title, const char *path)
{
    fprintf(stderr, "---- %s (%s) ----\n", title, path);
    FILE *f = fopen(path, "r");
    if (f != NULL) {
        char buf[4096];
        size_t n;
        while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
            fwrite(buf, 1, n, stderr);
        fclose(f);
    } else {
        fprintf(stderr, "(cannot read: %s)\n", strerror(errno));
    }
    fprintf(stderr, "---- end of %s ----\n", title);
}

void harness_dump_log(const struct harness *h)
{
    harness_dump_file("daemon log", h->daemon_log);
}

void harness_dump_redis_log(const struct harness *h)
{
    harness_dump_file("redis log", h->redis_log);
}

void harness_cleanup(struct harness *h)
{
    if (h->owner != getpid()) {
        if (h->owner != 0)
            fprintf(stderr, "harness: cleanup from pid %d of a harness owned by %d ignored\n",
                    (int)getpid(), (int)h->owner);
        return;
    }
    if (h->publisher != NULL) {
        redisFree(h->publisher);
        h->publisher = NULL;
    }
    /* Under make asan/tsan/valgrind, a non-zero exit carries the tool's
     * verdict (a leak or an error found at exit): it fails the test. */
    bool strict = getenv("TENANTCACHED_SANITIZER") != NULL;
    int daemon_code = 0;
    if (h->daemon_pid > 0) {
        daemon_code = harness_daemon_stop(h, SIGTERM);
        if (daemon_code != 0 && strict)
            harness_dump_log(h);
    }
    if (h->redis_pid > 0)
        harness_redis_stop(h, SIGTERM);
    harness_remove_dir(h->dir);
    if (h->watchdog_fd >= 0)
        close(h->watchdog_fd);
    if (h->watchdog_pid > 0)
        harness_wait_gone(h->watchdog_pid);
    if (h->slot >= 0)
        slots[h->slot].owner = 0;
    h->slot = -1;
    h->watchdog_fd = -1;
    h->watchdog_pid = 0;
    h->owner = 0;
    if (daemon_code != 0 && strict)
        ck_abort_msg("the daemon exited with %d on SIGTERM under %s (see its log above)",
                     daemon_code, getenv("TENANTCACHED_SANITIZER"));
}

/* --- redis-server ------------------------------------------------------- */

static redisContext *harness_unix_connect(const char *path, bool quiet)
{
    struct timeval tv = {.tv_sec = 5, .tv_usec = 0};
    redisContext *c = redisConnectUnixWithTimeout(path, tv);
    if (c == NULL || c->err) {
        if (!quiet)
            fprintf(stderr, "harness: connect %s: %s\n", path, c ? c->errstr : "out of memory");
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

/* PING answered: PONG, or NOAUTH from a server with a password. */
static bool harness_redis_answers(const struct harness *h)
{
    redisContext *c = harness_unix_connect(h->redis_socket, true);
    if (c == NULL)
        return false;
    redisReply *r = redisCommand(c, "PING");
    bool ok = r != NULL && ((r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0) ||
                            (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOAUTH", 6) == 0));
    if (r != NULL)
        freeReplyObject(r);
    redisFree(c);
    return ok;
}

int harness_redis_start(struct harness *h)
{
    return harness_redis_start_args(h, NULL);
}

int harness_redis_start_args(struct harness *h, const char *const *extra)
{
    if (h->redis_pid > 0) {
        fprintf(stderr, "harness: redis-server already running\n");
        return -1;
    }
    const char *server = getenv("REDIS_SERVER");
    const char *argv[64] = {
        server != NULL && server[0] != '\0' ? server : "redis-server",
        "--port", "0",
        "--unixsocket", h->redis_socket,
        "--unixsocketperm", "700",
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
        "--dir", h->dir,
    };
    size_t argc = 15;
    h->redis_password[0] = '\0';
    for (size_t i = 0; extra != NULL && extra[i] != NULL; i++) {
        if (argc + 1 >= sizeof(argv) / sizeof(argv[0])) {
            fprintf(stderr, "harness: too many redis-server arguments\n");
            return -1;
        }
        argv[argc++] = extra[i];
        if (strcmp(extra[i], "--requirepass") == 0 && extra[i + 1] != NULL)
            snprintf(h->redis_password, sizeof(h->redis_password), "%s", extra[i + 1]);
    }
    argv[argc] = NULL;

    pid_t pid = harness_spawn(argv, h->redis_log);
    if (pid < 0) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        return -1;
    }
    h->redis_pid = pid;
    harness_slot_update(h);

    long long deadline = harness_now_ms() + HARNESS_REDIS_START_MS;
    while (harness_now_ms() < deadline) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "harness: redis-server exited early (status %d)\n",
                    harness_exit_code(status));
            h->redis_pid = 0;
            harness_slot_update(h);
            harness_dump_redis_log(h);
            return -1;
        }
        if (harness_redis_answers(h))
            return 0;
        harness_sleep_ms(10);
    }
    fprintf(stderr, "harness: redis-server did not answer PING within %d ms\n",
            HARNESS_REDIS_START_MS);
    harness_redis_stop(h, SIGKILL);
    harness_dump_redis_log(h);
    return -1;
}

int harness_redis_stop(struct harness *h, int sig)
{
    if (h->publisher != NULL) {
        redisFree(h->publisher);
        h->publisher = NULL;
    }
    if (h->redis_pid <= 0)
        return -1;
    bool killed;
    harness_terminate(h->redis_pid, sig, HARNESS_STOP_WAIT_MS, "redis-server", &killed);
    h->redis_pid = 0;
    harness_slot_update(h);
    return 0;
}

int harness_redis_pause(struct harness *h)
{
    if (h->redis_pid <= 0 || kill(h->redis_pid, SIGSTOP) != 0)
        return -1;
    int status;
    pid_t got;
    while ((got = waitpid(h->redis_pid, &status, WUNTRACED)) == -1 && errno == EINTR) {
    }
    if (got == h->redis_pid && WIFSTOPPED(status))
        return 0;
    if (got == h->redis_pid) { /* it exited instead */
        h->redis_pid = 0;
        harness_slot_update(h);
    }
    return -1;
}

int harness_redis_resume(struct harness *h)
{
    if (h->redis_pid <= 0 || kill(h->redis_pid, SIGCONT) != 0)
        return -1;
    return 0;
}

redisContext *harness_redis_connect(struct harness *h)
{
    redisContext *c = harness_unix_connect(h->redis_socket, false);
    if (c == NULL || h->redis_password[0] == '\0')
        return c;
    redisReply *r = redisCommand(c, "AUTH %s", h->redis_password);
    bool ok = r != NULL && r->type == REDIS_REPLY_STATUS;
    if (!ok)
        fprintf(stderr, "harness: redis AUTH failed: %s\n",
                r != NULL && r->type == REDIS_REPLY_ERROR ? r->str : c->errstr);
    if (r != NULL)
        freeReplyObject(r);
    if (!ok) {
        redisFree(c);
        return NULL;
    }
    return c;
}

int harness_publish(struct harness *h, const char *channel, const char *payload)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (h->publisher == NULL && (h->publisher = harness_redis_connect(h)) == NULL)
            return -1;
        redisReply *r = redisCommand(h->publisher, "PUBLISH %b %b", channel, strlen(channel),
                                     payload, strlen(payload));
        if (r == NULL) { /* the connection broke: redis restarted since */
            redisFree(h->publisher);
            h->publisher = NULL;
            continue;
        }
        int receivers = r->type == REDIS_REPLY_INTEGER ? (int)r->integer : -1;
        if (r->type == REDIS_REPLY_ERROR)
            fprintf(stderr, "harness: PUBLISH: %s\n", r->str);
        freeReplyObject(r);
        return receivers;
    }
    return -1;
}

bool harness_wait_subscribed(struct harness *h, int timeout_ms)
{
    long long deadline = harness_now_ms() + timeout_ms;
    redisContext *c = NULL;
    do {
        if (c == NULL)
            c = harness_redis_connect(h);
        if (c != NULL) {
            bool subscribed = false;
            redisReply *r = redisCommand(c, "PUBSUB NUMPAT");
            if (r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer > 0)
                subscribed = true;
            if (r != NULL)
                freeReplyObject(r);
            r = subscribed ? NULL : redisCommand(c, "PUBSUB CHANNELS");
            if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements > 0)
                subscribed = true;
            if (r != NULL)
                freeReplyObject(r);
            if (c->err) {
                redisFree(c);
                c = NULL;
            }
            if (subscribed) {
                if (c != NULL)
                    redisFree(c);
                return true;
            }
        }
        harness_sleep_ms(10);
    } while (harness_now_ms() < deadline);
    if (c != NULL)
        redisFree(c);
    fprintf(stderr, "harness: no subscriber on redis after %d ms\n", timeout_ms);
    return false;
}

/* --- the daemon --------------------------------------------------------- */

const char *harness_daemon_config_default(void)
{
    return "log_level: debug\n"
           "threads: 2\n"
           "shards: 4\n"
           "listen:\n"
           "  socket: \"@DAEMON_SOCKET@\"\n"
           "redis:\n"
           "  unix: \"@REDIS_SOCKET@\"\n"
           "  channels: [tenantcached:invalidate]\n"
           "  connect_timeout: 500ms\n"
           "  reconnect_min: 50ms\n"
           "  reconnect_max: 500ms\n"
           "memory:\n"
           "  max_bytes: 16mb\n"
           "  tenant_max_bytes: 1mb\n"
           "  max_tenants: 1000\n";
}

char *harness_expand(const struct harness *h, const char *tmpl)
{
    static const char *const names[] = {"@DIR@", "@REDIS_SOCKET@", "@DAEMON_SOCKET@"};
    const char *values[] = {h->dir, h->redis_socket, h->daemon_socket};
    size_t cap = strlen(tmpl) + 1, len = 0;
    for (const char *p = tmpl; (p = strchr(p, '@')) != NULL; p++)
        cap += HARNESS_PATH_MAX; /* generous: every '@' might start a placeholder */
    char *out = malloc(cap);
    if (out == NULL)
        abort();
    for (const char *p = tmpl; *p != '\0';) {
        size_t i;
        for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
            size_t n = strlen(names[i]);
            if (strncmp(p, names[i], n) == 0) {
                size_t v = strlen(values[i]);
                memcpy(out + len, values[i], v);
                len += v;
                p += n;
                break;
            }
        }
        if (i == sizeof(names) / sizeof(names[0]))
            out[len++] = *p++;
    }
    out[len] = '\0';
    return out;
}

int harness_daemon_write_config(struct harness *h, const char *tmpl)
{
    char *text = harness_expand(h, tmpl != NULL ? tmpl : harness_daemon_config_default());
    /* write then rename, so a daemon reloading on SIGHUP never reads half a file */
    char tmp[HARNESS_PATH_MAX + 8];
    snprintf(tmp, sizeof(tmp), "%s.tmp", h->daemon_config);
    FILE *f = fopen(tmp, "w");
    int rc = -1;
    if (f != NULL) {
        size_t len = strlen(text);
        bool ok = fwrite(text, 1, len, f) == len;
        ok = fclose(f) == 0 && ok;
        if (ok && rename(tmp, h->daemon_config) == 0)
            rc = 0;
    }
    if (rc != 0)
        fprintf(stderr, "harness: cannot write %s: %s\n", h->daemon_config, strerror(errno));
    free(text);
    return rc;
}

static const char *harness_binary(void)
{
    const char *bin = getenv("TENANTCACHED_BIN");
    return bin != NULL && bin[0] != '\0' ? bin : "./tenantcached";
}

/* PING over a fresh connection answered +PONG. */
static bool harness_daemon_answers(const struct harness *h)
{
    redisContext *c = harness_unix_connect(h->daemon_socket, true);
    if (c == NULL)
        return false;
    redisReply *r = redisCommand(c, "PING");
    bool ok = r != NULL && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
    if (r != NULL)
        freeReplyObject(r);
    redisFree(c);
    return ok;
}

int harness_daemon_start(struct harness *h, const char *tmpl)
{
    if (h->daemon_pid > 0) {
        fprintf(stderr, "harness: the daemon is already running\n");
        return -1;
    }
    if (harness_daemon_write_config(h, tmpl) != 0)
        return -1;
    const char *argv[] = {harness_binary(), "-c", h->daemon_config, NULL};
    pid_t pid = harness_spawn(argv, h->daemon_log);
    if (pid < 0) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        return -1;
    }
    h->daemon_pid = pid;
    harness_slot_update(h);

    long long deadline = harness_now_ms() + HARNESS_DAEMON_START_MS;
    while (harness_now_ms() < deadline) {
        if (!harness_daemon_alive(h)) {
            fprintf(stderr, "harness: %s exited during start (status %d)\n", argv[0],
                    harness_exit_code(h->daemon_status));
            harness_dump_log(h);
            return -1;
        }
        if (harness_daemon_answers(h))
            return 0;
        harness_sleep_ms(10);
    }
    fprintf(stderr, "harness: %s did not answer PING on %s within %d ms\n", argv[0],
            h->daemon_socket, HARNESS_DAEMON_START_MS);
    harness_daemon_stop(h, SIGKILL);
    harness_dump_log(h);
    return -1;
}

bool harness_daemon_alive(struct harness *h)
{
    if (h->daemon_pid <= 0)
        return false;
    int status;
    pid_t got = waitpid(h->daemon_pid, &status, WNOHANG);
    if (got == 0)
        return true;
    h->daemon_status = got == h->daemon_pid ? status : 0;
    h->daemon_pid = 0;
    harness_slot_update(h);
    return false;
}

int harness_daemon_stop(struct harness *h, int sig)
{
    if (h->daemon_pid <= 0)
        return -1;
    bool killed;
    int status = harness_terminate(h->daemon_pid, sig, HARNESS_STOP_WAIT_MS, "the daemon", &killed);
    if (killed)
        harness_dump_log(h);
    h->daemon_status = status;
    h->daemon_pid = 0;
    harness_slot_update(h);
    return harness_exit_code(status);
}

int harness_daemon_signal(struct harness *h, int sig)
{
    if (h->daemon_pid <= 0)
        return -1;
    return kill(h->daemon_pid, sig) == 0 ? 0 : -1;
}

int harness_run_binary(struct harness *h, const char *const *args, char *out, size_t size)
{
    (void)h;
    const char *argv[64];
    size_t argc = 0;
    argv[argc++] = harness_binary();
    for (size_t i = 0; args != NULL && args[i] != NULL && argc + 1 < 64; i++)
        argv[argc++] = args[i];
    argv[argc] = NULL;

    int fds[2];
    if (size > 0)
        out[0] = '\0';
    if (pipe2(fds, O_CLOEXEC) != 0)
        return -1;
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return -1;
    }
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(fds[1], STDOUT_FILENO);
        dup2(fds[1], STDERR_FILENO);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], (char *const *)argv);
        fprintf(stderr, "harness: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    size_t len = 0;
    long long deadline = harness_now_ms() + HARNESS_STOP_WAIT_MS;
    for (;;) {
        long long left = deadline - harness_now_ms();
        if (left <= 0) {
            fprintf(stderr, "harness: %s still running after %d ms, killing it\n", argv[0],
                    HARNESS_STOP_WAIT_MS);
            kill(pid, SIGKILL);
            break;
        }
        struct pollfd pfd = {.fd = fds[0], .events = POLLIN};
        if (poll(&pfd, 1, (int)left) <= 0)
            continue;
        char buf[4096];
        ssize_t n = read(fds[0], buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (size > 0 && len < size - 1) {
            size_t take = (size_t)n < size - 1 - len ? (size_t)n : size - 1 - len;
            memcpy(out + len, buf, take);
            len += take;
            out[len] = '\0';
        }
    }
    close(fds[0]);
    int status = 0;
    pid_t got;
    while ((got = waitpid(pid, &status, 0)) == -1 && errno == EINTR) {
    }
    return got == pid ? harness_exit_code(status) : -1;
}

/* --- talking to the daemon ---------------------------------------------- */

redisContext *harness_connect(struct harness *h)
{
    return harness_unix_connect(h->daemon_socket, false);
}

long long harness_info_int(redisContext *c, const char *field)
{
    redisReply *r = redisCommand(c, "INFO");
    if (r == NULL)
        return -1;
    long long value = -1;
    if (r->type == REDIS_REPLY_STRING) {
        size_t flen = strlen(field);
        for (const char *line = r->str; line != NULL && *line != '\0';) {
            if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
                char *end;
                errno = 0;
                long long v = strtoll(line + flen + 1, &end, 10);
                if (errno == 0 && end != line + flen + 1)
                    value = v;
                break;
            }
            line = strchr(line, '\n');
            if (line != NULL)
                line++;
        }
    }
    freeReplyObject(r);
    return value;
}

bool harness_wait_info(redisContext *c, int timeout_ms, const char *field, long long expected)
{
    long long deadline = harness_now_ms() + timeout_ms;
    long long last;
    do {
        last = harness_info_int(c, field);
        if (last == expected)
            return true;
        if (c->err)
            break;
        harness_sleep_ms(10);
    } while (harness_now_ms() < deadline);
    fprintf(stderr, "harness: INFO %s is %lld, not %lld, after %d ms\n", field, last, expected,
            timeout_ms);
    return false;
}

static void harness_describe(const redisReply *r, char *buf, size_t size)
{
    if (r == NULL)
        snprintf(buf, size, "(no reply)");
    else if (r->type == REDIS_REPLY_NIL)
        snprintf(buf, size, "(nil)");
    else if (r->type == REDIS_REPLY_INTEGER)
        snprintf(buf, size, "(integer) %lld", r->integer);
    else if (r->type == REDIS_REPLY_ARRAY)
        snprintf(buf, size, "(array of %zu)", r->elements);
    else if (r->type == REDIS_REPLY_ERROR)
        snprintf(buf, size, "(error) %s", r->str);
    else
        snprintf(buf, size, "\"%s\"", r->str);
}

static bool harness_reply_matches(const redisReply *r, const char *expected)
{
    if (r == NULL)
        return false;
    if (expected == NULL)
        return r->type == REDIS_REPLY_NIL;
    if (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
        return strlen(expected) == r->len && memcmp(r->str, expected, r->len) == 0;
    if (r->type == REDIS_REPLY_INTEGER) {
        char num[32];
        snprintf(num, sizeof(num), "%lld", r->integer);
        return strcmp(num, expected) == 0;
    }
    return false;
}

bool harness_wait_reply(redisContext *c, int timeout_ms, const char *expected, const char *fmt,
                        ...)
{
    long long deadline = harness_now_ms() + timeout_ms;
    char last[512] = "(not sent)";
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        redisReply *r = redisvCommand(c, fmt, ap);
        va_end(ap);
        bool match = harness_reply_matches(r, expected);
        harness_describe(r, last, sizeof(last));
        if (r != NULL)
            freeReplyObject(r);
        if (match)
            return true;
        if (r == NULL || harness_now_ms() >= deadline)
            break;
        harness_sleep_ms(10);
    }
    fprintf(stderr, "harness: waited %d ms for %s%s%s, last reply %s%s%s\n", timeout_ms,
            expected ? "\"" : "", expected ? expected : "(nil)", expected ? "\"" : "", last,
            c->err ? ", connection error: " : "", c->err ? c->errstr : "");
    return false;
}

/* --- replies and raw sockets --- */

void harness_describe_reply(const redisReply *r, char *buf, size_t size)
{
    if (size == 0)
        return;
    buf[0] = '\0';
    if (r == NULL) {
        snprintf(buf, size, "(no reply)");
        return;
    }
    switch (r->type) {
    case REDIS_REPLY_NIL:
        snprintf(buf, size, "(nil)");
        break;
    case REDIS_REPLY_INTEGER:
        snprintf(buf, size, ":%lld", r->integer);
        break;
    case REDIS_REPLY_STATUS:
        snprintf(buf, size, "+%s", r->str);
        break;
    case REDIS_REPLY_ERROR:
        snprintf(buf, size, "-%s", r->str);
        break;
    case REDIS_REPLY_STRING:
        snprintf(buf, size, "%.*s", (int)r->len, r->str);
        break;
    case REDIS_REPLY_ARRAY: {
        size_t used = (size_t)snprintf(buf, size, "[");
        for (size_t i = 0; i < r->elements && used < size; i++) {
            char item[256];
            harness_describe_reply(r->element[i], item, sizeof(item));
            used += (size_t)snprintf(buf + used, size - used, "%s%s", i ? "," : "", item);
        }
        if (used < size)
            snprintf(buf + used, size - used, "]");
        break;
    }
    default:
        snprintf(buf, size, "(type %d)", r->type);
        break;
    }
}

int harness_raw_connect(const struct harness *h)
{
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof(address.sun_path), "%s", h->daemon_socket);
    if (connect(fd, (struct sockaddr *)&address, sizeof(address)) != 0) {
        int error = errno;
        close(fd);
        errno = error;
        return -1;
    }
    return fd;
}

size_t harness_raw_read(int fd, char *buffer, size_t want, int timeout_ms, bool *closed)
{
    size_t got = 0;
    long long deadline = harness_now_ms() + timeout_ms;
    *closed = false;
    while (got < want) {
        long long left = deadline - harness_now_ms();
        if (left <= 0)
            break;
        struct pollfd poller = {.fd = fd, .events = POLLIN};
        int ready = poll(&poller, 1, (int)left);
        if (ready < 0 && errno == EINTR)
            continue;
        if (ready <= 0)
            break;
        ssize_t n = read(fd, buffer + got, want - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            *closed = true;
            break;
        }
        got += (size_t)n;
    }
    buffer[got] = '\0';
    return got;
}

/* --- shared assertions --- */

void harness_expect(redisContext *c, const char *expected, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    redisReply *reply = redisvCommand(c, fmt, args);
    va_end(args);
    char got[1024];
    harness_describe_reply(reply, got, sizeof(got));
    if (reply != NULL)
        freeReplyObject(reply);
    ck_assert_msg(strcmp(got, expected) == 0, "%s: expected '%s', got '%s'", fmt, expected, got);
}

bool harness_log_contains(const struct harness *h, const char *text)
{
    FILE *file = fopen(h->daemon_log, "r");
    if (file == NULL)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof(line), file) != NULL)
        found = strstr(line, text) != NULL;
    fclose(file);
    return found;
}

void harness_finish(struct harness *h)
{
    int code = h->daemon_pid > 0 ? harness_daemon_stop(h, SIGTERM) : 0;
    if (code != 0)
        harness_dump_log(h);
    harness_cleanup(h);
    ck_assert_msg(code == 0, "the daemon exited with %d on SIGTERM", code);
}

/* --- asserting helpers shared by the suites ------------------------------ */

redisContext *harness_start_subscribed(struct harness *h, const char *tmpl, int timeout_ms)
{
    ck_assert_int_eq(harness_daemon_start(h, tmpl), 0);
    ck_assert(harness_wait_subscribed(h, timeout_ms));
    redisContext *c = harness_connect(h);
    ck_assert_ptr_nonnull(c);
    return c;
}

void harness_publish_ok(struct harness *h, const char *channel, const char *payload)
{
    int receivers = harness_publish(h, channel, payload);
    ck_assert_msg(receivers >= 1, "PUBLISH %s '%.80s': %d receivers", channel, payload, receivers);
}

void harness_publishf(struct harness *h, const char *channel, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    char *payload = NULL;
    int n = vasprintf(&payload, fmt, args);
    va_end(args);
    ck_assert_msg(n >= 0, "vasprintf failed");
    harness_publish_ok(h, channel, payload);
    free(payload);
}

void harness_publish_set(struct harness *h, const char *channel, const char *tenant,
                         const char *kind, const char *key, const char *json)
{
    harness_publishf(h, channel,
                     "{\"op\":\"set\",\"tenant\":\"%s\",\"kind\":\"%s\",\"key\":\"%s\",\"value\":%s}",
                     tenant, kind, key, json);
}

void harness_sync_stream(struct harness *h, redisContext *c, const char *channel, const char *kind,
                         const char *value, int timeout_ms)
{
    /* one counter per test process: Check forks every test, and a key is
     * never reused within one */
    static int marker;
    char key[32];
    snprintf(key, sizeof(key), "m%d", ++marker);
    harness_publish_set(h, channel, "sync", kind, key, value);
    ck_assert_msg(harness_wait_reply(c, timeout_ms, value, "GET sync %s %s", kind, key),
                  "the stream marker sync/%s/%s never became visible", kind, key);
}

int harness_raw_open(const struct harness *h)
{
    int fd = harness_raw_connect(h);
    ck_assert_msg(fd >= 0, "connect to the daemon: %s", strerror(errno));
    return fd;
}

void harness_raw_send(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int error = errno;
            char reply[512];
            bool closed = false;
            harness_raw_read(fd, reply, sizeof(reply) - 1, 1000, &closed);
            ck_abort_msg("send to fd %d (%zu bytes left): %s; the daemon said '%s'%s", fd, len,
                         n < 0 ? strerror(error) : "nothing written", reply,
                         closed ? " and closed" : "");
        }
        p += n;
        len -= (size_t)n;
    }
}

void harness_redis_load_library(redisContext *redis)
{
    const char *path = getenv("TENANTCACHED_LUA");
    if (path == NULL)
        path = "scripts/tenantcached.lua";
    FILE *file = fopen(path, "r");
    ck_assert_msg(file != NULL, "cannot open the function library %s: %s", path, strerror(errno));
    static char code[65536];
    size_t len = fread(code, 1, sizeof(code) - 1, file);
    fclose(file);
    ck_assert_msg(len > 0 && len < sizeof(code) - 1, "%s: %zu bytes", path, len);
    code[len] = '\0';
    redisReply *reply = redisCommand(redis, "FUNCTION LOAD REPLACE %s", code);
    ck_assert_ptr_nonnull(reply);
    ck_assert_msg(reply->type == REDIS_REPLY_STRING && strcmp(reply->str, "tenantcached") == 0,
                  "FUNCTION LOAD: %s", reply->type == REDIS_REPLY_ERROR ? reply->str : "?");
    freeReplyObject(reply);
}

void harness_fcall_publish(redisContext *redis, const char *stream, const char *channel, char *id,
                           size_t size, const char *message)
{
    redisReply *reply =
        redisCommand(redis, "FCALL tenantcached_publish 1 %s %s %s", stream, channel, message);
    ck_assert_ptr_nonnull(reply);
    ck_assert_msg(reply->type == REDIS_REPLY_STRING, "FCALL: %s",
                  reply->type == REDIS_REPLY_ERROR ? reply->str : "not a string");
    if (id != NULL)
        snprintf(id, size, "%s", reply->str);
    freeReplyObject(reply);
}

bool harness_text_matches(const char *got, const char *expected)
{
    size_t n = strlen(expected);
    if (n > 0 && expected[n - 1] == '*')
        return strncmp(got, expected, n - 1) == 0;
    return strcmp(got, expected) == 0;
}

void harness_expect_match(redisContext *c, const char *expected, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    redisReply *reply = redisvCommand(c, fmt, args);
    va_end(args);
    static char got[16384];
    harness_describe_reply(reply, got, sizeof(got));
    if (reply != NULL)
        freeReplyObject(reply);
    ck_assert_msg(harness_text_matches(got, expected), "%s: expected '%s', got '%s'", fmt,
                  expected, got);
}

bool harness_wait_match(redisContext *c, int timeout_ms, const char *expected, const char *fmt,
                        ...)
{
    long long deadline = harness_now_ms() + timeout_ms;
    static char got[16384];
    for (;;) {
        va_list args;
        va_start(args, fmt);
        redisReply *reply = redisvCommand(c, fmt, args);
        va_end(args);
        harness_describe_reply(reply, got, sizeof(got));
        if (reply != NULL)
            freeReplyObject(reply);
        if (harness_text_matches(got, expected))
            return true;
        if (reply == NULL || harness_now_ms() >= deadline)
            break;
        harness_sleep_ms(10);
    }
    fprintf(stderr, "waited %d ms for '%s' on '%s'; last reply '%s'\n", timeout_ms, expected, fmt,
            got);
    return false;
}

int harness_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = 0};
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&address, sizeof(address)), 0);
    socklen_t len = sizeof(address);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&address, &len), 0);
    close(fd);
    return ntohs(address.sin_port);
}

static void harness_pump_slice(struct event_base *base, int ms)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = ms * 1000};
    event_base_loopexit(base, &tv);
    event_base_dispatch(base);
}

bool harness_pump_until(struct event_base *base, int timeout_ms, bool (*cond)(int), int arg)
{
    long long deadline = harness_now_ms() + timeout_ms;
    while (!(cond != NULL && cond(arg)) && harness_now_ms() < deadline)
        harness_pump_slice(base, 5);
    return cond != NULL && cond(arg);
}

void harness_pump_for(struct event_base *base, int ms)
{
    harness_pump_until(base, ms, NULL, 0);
}

json_t *harness_health(redisContext *c)
{
    redisReply *reply = redisCommand(c, "HEALTH");
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(reply->type, REDIS_REPLY_STRING);
    json_error_t error;
    json_t *doc = json_loadb(reply->str, reply->len, 0, &error);
    ck_assert_msg(doc != NULL, "HEALTH is not JSON (%s): %s", error.text, reply->str);
    ck_assert(json_is_object(doc));
    freeReplyObject(reply);
    return doc;
}
