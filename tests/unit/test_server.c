/* test_server.c - unit tests of server.c, the query side of
 * docs/reference.md §4 and §8: a real server on a private Unix socket in a
 * temporary directory, its main loop on a thread of the test, spoken to in
 * raw RESP. The socket file and its mode, replies in request order, a
 * protocol error answered then closed, QUIT, max_clients, idle_timeout, a
 * live socket refused and a stale one replaced, a reload moving the socket,
 * and the file removed at stop. No fill engine: a miss is nil. */
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "config.h"
#include "log.h"
#include "server.h"
#include "tracking.h"

#define WAIT_MS 5000

static char dir[64];
static char socket_path[100];
static struct event_base *base;
static struct config *config;
static struct cache *cache;
static struct server *server;
static pthread_t loop_thread;
static bool loop_running;
static struct event *stopper; /* made active to stop the loop from its own thread */

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct config *load(const char *path, const char *extra)
{
    char yaml[1024];
    snprintf(yaml, sizeof(yaml), "log_level: error\nthreads: 2\nlisten:\n  socket: \"%s\"\n%s",
             path, extra);
    char error[ERROR_MAX] = "";
    struct config *loaded = config_load_buffer("test.yaml", yaml, strlen(yaml), error);
    ck_assert_msg(loaded != NULL, "config rejected: %s", error);
    return loaded;
}

static void *run_loop(void *arg)
{
    (void)arg;
    event_base_loop(base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void loop_start(void)
{
    ck_assert_int_eq(pthread_create(&loop_thread, NULL, run_loop, NULL), 0);
    loop_running = true;
}

static void stop_loop(evutil_socket_t fd, short events, void *arg)
{
    (void)fd;
    (void)events;
    (void)arg;
    event_base_loopbreak(base);
}

/* Stops the main loop's thread: the test thread is then the main thread.
 * (Not event_base_loopbreak() from here: a break that comes before the
 * thread entered the loop is forgotten; an active event is not.) */
static void loop_stop(void)
{
    if (!loop_running)
        return;
    event_active(stopper, 0, 0);
    pthread_join(loop_thread, NULL);
    loop_running = false;
}

static void setup(void)
{
    log_set_level(LOG_LEVEL_ERROR);
    ck_assert_int_eq(evthread_use_pthreads(), 0);
    snprintf(dir, sizeof(dir), "/tmp/tenantcached-server.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(socket_path, sizeof(socket_path), "%s/q.sock", dir);
    base = event_base_new();
    stopper = event_new(base, -1, 0, stop_loop, NULL);
    struct cache_limits limits = {
        .max_bytes = 1 << 20, .tenant_max_bytes = 1 << 20, .max_tenants = 10,
        .high_watermark = 0.8, .low_watermark = 0.7,
    };
    cache = cache_create(1, &limits);
    config = NULL;
    server = NULL;
    loop_running = false;
}

/* Starts the server with `extra` lines under listen: and runs the loop. */
static void start(const char *extra)
{
    config = load(socket_path, extra);
    tracking_init(config);
    char error[ERROR_MAX] = "";
    server = server_start(base, cache, NULL, config, error);
    ck_assert_msg(server != NULL, "server_start: %s", error);
    loop_start();
}

static void teardown(void)
{
    loop_stop();
    if (server != NULL) {
        server_stop(server);
        tracking_shutdown();
    }
    config_free(config);
    cache_destroy(cache);
    event_free(stopper);
    event_base_free(base);
    unlink(socket_path);
    rmdir(dir);
}

/* ---- a raw client ---- */

static int connect_to(const char *path)
{
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    ck_assert_int_ge(fd, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof(address.sun_path), "%s", path);
    ck_assert_msg(connect(fd, (struct sockaddr *)&address, sizeof(address)) == 0, "connect %s: %s",
                  path, strerror(errno));
    return fd;
}

static void send_text(int fd, const char *text)
{
    size_t len = strlen(text);
    ck_assert_int_eq(send(fd, text, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Reads until want bytes came, the peer closed, or WAIT_MS passed; returns
 * what came (static, NUL-terminated). *closed: EOF or reset seen. */
static const char *receive(int fd, size_t want, bool *closed)
{
    static char buffer[4096];
    ck_assert_uint_lt(want, sizeof(buffer));
    size_t got = 0;
    *closed = false;
    long long deadline = now_ms() + WAIT_MS;
    while (got < want && now_ms() < deadline) {
        struct pollfd poller = {.fd = fd, .events = POLLIN};
        if (poll(&poller, 1, 50) <= 0)
            continue;
        ssize_t n = read(fd, buffer + got, want - got);
        if (n <= 0) {
            *closed = true;
            break;
        }
        got += (size_t)n;
    }
    buffer[got] = '\0';
    return buffer;
}

/* Sends request and asserts the exact bytes of the reply. */
static void exchange(int fd, const char *request, const char *expected)
{
    send_text(fd, request);
    bool closed;
    const char *got = receive(fd, strlen(expected), &closed);
    ck_assert_str_eq(got, expected);
}

/* True once the peer closes (within WAIT_MS), whatever it sent before. */
static bool closes(int fd)
{
    char buffer[256];
    long long deadline = now_ms() + WAIT_MS;
    while (now_ms() < deadline) {
        struct pollfd poller = {.fd = fd, .events = POLLIN};
        if (poll(&poller, 1, 50) <= 0)
            continue;
        if (read(fd, buffer, sizeof(buffer)) <= 0)
            return true;
    }
    return false;
}

/* ---- the tests ---- */

START_TEST(test_socket_file_and_mode)
{
    start("  mode: \"0640\"\n");
    struct stat st;
    ck_assert_int_eq(stat(socket_path, &st), 0);
    ck_assert(S_ISSOCK(st.st_mode));
    ck_assert_uint_eq(st.st_mode & 0777, 0640);
}
END_TEST

START_TEST(test_replies_in_order)
{
    start("");
    int fd = connect_to(socket_path);
    /* pipelined, multibulk and inline mixed */
    exchange(fd,
             "PING\r\n*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n*4\r\n$3\r\nGET\r\n$4\r\nacme\r\n"
             "$6\r\nconfig\r\n$1\r\nk\r\nPING hello\r\n",
             "+PONG\r\n$2\r\nhi\r\n$-1\r\n$5\r\nhello\r\n");
    /* a request that arrives one byte at a time */
    const char *slow = "*1\r\n$4\r\nPING\r\n";
    for (size_t i = 0; slow[i] != '\0'; i++) {
        char one[2] = {slow[i], '\0'};
        send_text(fd, one);
    }
    bool closed;
    ck_assert_str_eq(receive(fd, 7, &closed), "+PONG\r\n");
    /* an empty array is skipped without a reply */
    exchange(fd, "*0\r\nPING\r\n", "+PONG\r\n");
    close(fd);
}
END_TEST

START_TEST(test_protocol_error_then_close)
{
    start("");
    int fd = connect_to(socket_path);
    int other = connect_to(socket_path);
    exchange(fd, "*1\r\n$abc\r\n", "-ERR Protocol error: invalid bulk length\r\n");
    ck_assert(closes(fd));
    /* other connections are not affected */
    exchange(other, "PING\r\n", "+PONG\r\n");
    close(fd);
    close(other);
}
END_TEST

START_TEST(test_limits_refuse_at_the_header)
{
    start("  max_args: 4\n  max_request_bytes: 64\n");
    int fd = connect_to(socket_path);
    exchange(fd, "*5\r\n", "-ERR Protocol error: invalid multibulk length\r\n");
    ck_assert(closes(fd));
    close(fd);
    fd = connect_to(socket_path);
    exchange(fd, "*2\r\n$3\r\nGET\r\n$65\r\n", "-ERR Protocol error: invalid bulk length\r\n");
    ck_assert(closes(fd));
    close(fd);
}
END_TEST

START_TEST(test_quit)
{
    start("");
    int fd = connect_to(socket_path);
    exchange(fd, "QUIT\r\nPING\r\n", "+OK\r\n");
    ck_assert(closes(fd));
    close(fd);
}
END_TEST

START_TEST(test_max_clients)
{
    start("  max_clients: 2\n");
    int a = connect_to(socket_path);
    int b = connect_to(socket_path);
    exchange(a, "PING\r\n", "+PONG\r\n");
    exchange(b, "PING\r\n", "+PONG\r\n");
    int c = connect_to(socket_path);
    bool closed;
    ck_assert_str_eq(receive(c, strlen("-ERR max clients reached\r\n"), &closed),
                     "-ERR max clients reached\r\n");
    ck_assert(closes(c));
    close(c);
    /* a place freed is a place taken */
    close(a);
    long long deadline = now_ms() + WAIT_MS;
    bool served = false;
    while (!served && now_ms() < deadline) {
        /* refused until the server has seen a close: then the send may fail */
        int d = connect_to(socket_path);
        served = send(d, "PING\r\n", 6, MSG_NOSIGNAL) == 6 &&
                 strcmp(receive(d, 7, &closed), "+PONG\r\n") == 0;
        close(d);
    }
    ck_assert(served);
    close(b);
}
END_TEST

START_TEST(test_idle_timeout)
{
    start("  idle_timeout: 200ms\n");
    int idle = connect_to(socket_path);
    exchange(idle, "PING\r\n", "+PONG\r\n");
    ck_assert(closes(idle));
    close(idle);
}
END_TEST

START_TEST(test_live_socket_refused_stale_replaced)
{
    start("");
    /* a second server on the live socket refuses */
    struct config *second = load(socket_path, "");
    char error[ERROR_MAX] = "";
    ck_assert_ptr_null(server_start(base, cache, NULL, second, error));
    ck_assert_msg(error[0] != '\0', "no message");
    config_free(second);
    /* the first still serves */
    int fd = connect_to(socket_path);
    exchange(fd, "PING\r\n", "+PONG\r\n");
    close(fd);

    /* a socket file nobody listens on is stale: replaced */
    char stale[100];
    snprintf(stale, sizeof(stale), "%s/stale.sock", dir);
    int left = socket(AF_UNIX, SOCK_STREAM, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof(address.sun_path), "%s", stale);
    ck_assert_int_eq(bind(left, (struct sockaddr *)&address, sizeof(address)), 0);
    close(left);
    loop_stop();
    struct config *moved = load(stale, "");
    ck_assert_int_eq(server_reconfigure(server, moved, error), 0);
    config_free(config);
    config = moved;
    loop_start();
    fd = connect_to(stale);
    exchange(fd, "PING\r\n", "+PONG\r\n");
    close(fd);
    /* the old path is given up */
    ck_assert_int_ne(access(socket_path, F_OK), 0);
    snprintf(socket_path, sizeof(socket_path), "%s", stale); /* for teardown */
}
END_TEST

START_TEST(test_stop_removes_the_socket)
{
    start("");
    int fd = connect_to(socket_path);
    exchange(fd, "PING\r\n", "+PONG\r\n");
    loop_stop();
    server_stop(server);
    server = NULL;
    tracking_shutdown();
    ck_assert_int_ne(access(socket_path, F_OK), 0);
    ck_assert(closes(fd));
    close(fd);
}
END_TEST

int main(void)
{
    Suite *suite = suite_create("server");
    TCase *tc = tcase_create("socket");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_socket_file_and_mode);
    tcase_add_test(tc, test_replies_in_order);
    tcase_add_test(tc, test_protocol_error_then_close);
    tcase_add_test(tc, test_limits_refuse_at_the_header);
    tcase_add_test(tc, test_quit);
    tcase_add_test(tc, test_max_clients);
    tcase_add_test(tc, test_idle_timeout);
    tcase_add_test(tc, test_live_socket_refused_stale_replaced);
    tcase_add_test(tc, test_stop_removes_the_socket);
    suite_add_tcase(suite, tc);
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
