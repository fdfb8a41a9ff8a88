/* test_notify.c - notify.c: sd_notify(3) datagrams to a real Unix socket
 * (a path in a temporary directory, and an abstract "@name"), the quiet
 * no-op without $NOTIFY_SOCKET, failures, and the watchdog interval. */
#include <check.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "notify.h"

static char dir[64];
static char path[128];
static int listener = -1;

/* The temporary directory lives for a whole test case (an unchecked fixture,
 * run by the parent), so that it is removed even after a failed test. */
static void make_dir(void)
{
    snprintf(dir, sizeof(dir), "/tmp/test_notify_XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        exit(EXIT_FAILURE);
    }
    snprintf(path, sizeof(path), "%s/notify", dir);
}

static void remove_dir(void)
{
    char file[160];
    snprintf(file, sizeof(file), "%s/file", dir);
    unlink(file);
    unlink(path);
    rmdir(dir);
}

/* A datagram socket bound at path. */
static void setup(void)
{
    unlink(path);
    listener = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(listener, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    memcpy(address.sun_path, path, strlen(path) + 1);
    ck_assert_int_eq(bind(listener, (struct sockaddr *)&address, sizeof(address)), 0);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}

static void teardown(void)
{
    if (listener >= 0)
        close(listener);
    listener = -1;
    unlink(path);
    unsetenv("NOTIFY_SOCKET");
    unsetenv("WATCHDOG_USEC");
    unsetenv("WATCHDOG_PID");
}

/* Receives one datagram without waiting; returns its length or -1 if none. */
static ssize_t receive(int fd, char *buffer, size_t size)
{
    ssize_t got = recv(fd, buffer, size - 1, MSG_DONTWAIT);
    if (got >= 0)
        buffer[got] = '\0';
    return got;
}

static void expect_datagram(int fd, const char *want)
{
    char buffer[1024];
    ssize_t got = receive(fd, buffer, sizeof(buffer));
    ck_assert_msg(got >= 0, "no datagram: %s", strerror(errno));
    ck_assert_uint_eq((size_t)got, strlen(want));
    ck_assert_int_eq(memcmp(buffer, want, strlen(want)), 0);
}

static void expect_nothing(int fd)
{
    char buffer[64];
    errno = 0;
    ck_assert_int_eq(receive(fd, buffer, sizeof(buffer)), -1);
    ck_assert(errno == EAGAIN || errno == EWOULDBLOCK);
}

START_TEST(test_send_to_path)
{
    setenv("NOTIFY_SOCKET", path, 1);
    ck_assert_int_eq(notify_send("READY=1"), 0);
    expect_datagram(listener, "READY=1");
    ck_assert_int_eq(notify_send("READY=1\nSTATUS=listening on /run/x.sock"), 0);
    expect_datagram(listener, "READY=1\nSTATUS=listening on /run/x.sock");
    ck_assert_int_eq(notify_sendf("STATUS=redis %s, %d entries", "connected", 42), 0);
    expect_datagram(listener, "STATUS=redis connected, 42 entries");
    ck_assert_int_eq(notify_send("WATCHDOG=1"), 0);
    ck_assert_int_eq(notify_send("STOPPING=1"), 0);
    expect_datagram(listener, "WATCHDOG=1");
    expect_datagram(listener, "STOPPING=1");
    expect_nothing(listener);
}
END_TEST

START_TEST(test_send_to_abstract)
{
    char name[64];
    snprintf(name, sizeof(name), "@tenantcached-test-notify-%ld", (long)getpid());
    int abstract = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(abstract, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    size_t len = strlen(name);
    memcpy(address.sun_path, name, len);
    address.sun_path[0] = '\0';
    socklen_t address_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len);
    ck_assert_int_eq(bind(abstract, (struct sockaddr *)&address, address_len), 0);

    setenv("NOTIFY_SOCKET", name, 1);
    ck_assert_int_eq(notify_send("READY=1"), 0);
    expect_datagram(abstract, "READY=1");
    ck_assert_int_eq(notify_sendf("STATUS=%s", "abstract"), 0);
    expect_datagram(abstract, "STATUS=abstract");
    expect_nothing(listener);

    /* A name that only shares a prefix is another socket. */
    char longer[80];
    snprintf(longer, sizeof(longer), "%sx", name);
    setenv("NOTIFY_SOCKET", longer, 1);
    ck_assert_int_eq(notify_send("READY=1"), -1);
    expect_nothing(abstract);
    close(abstract);
}
END_TEST

START_TEST(test_unset_is_quiet)
{
    unsetenv("NOTIFY_SOCKET");
    ck_assert_int_eq(notify_send("READY=1"), 0);
    ck_assert_int_eq(notify_sendf("STATUS=%d", 1), 0);
    setenv("NOTIFY_SOCKET", "", 1);
    ck_assert_int_eq(notify_send("READY=1"), 0);
    expect_nothing(listener);
}
END_TEST

START_TEST(test_bad_socket)
{
    char missing[160];
    snprintf(missing, sizeof(missing), "%s/missing/notify", dir);
    setenv("NOTIFY_SOCKET", missing, 1);
    ck_assert_int_eq(notify_send("READY=1"), -1);

    setenv("NOTIFY_SOCKET", "relative/notify", 1);
    ck_assert_int_eq(notify_send("READY=1"), -1);

    /* Longer than sun_path. */
    char long_path[300];
    memset(long_path, 'a', sizeof(long_path) - 1);
    long_path[0] = '/';
    long_path[sizeof(long_path) - 1] = '\0';
    setenv("NOTIFY_SOCKET", long_path, 1);
    ck_assert_int_eq(notify_send("READY=1"), -1);

    /* A regular file, not a socket. */
    char file[160];
    snprintf(file, sizeof(file), "%s/file", dir);
    FILE *f = fopen(file, "w");
    ck_assert_ptr_nonnull(f);
    fclose(f);
    setenv("NOTIFY_SOCKET", file, 1);
    ck_assert_int_eq(notify_send("READY=1"), -1);
    unlink(file);

    /* A socket file nobody listens on any more. */
    close(listener);
    listener = -1;
    setenv("NOTIFY_SOCKET", path, 1);
    ck_assert_int_eq(notify_send("READY=1"), -1);
}
END_TEST

/* ---- watchdog ---- */

static void set_pid(long pid)
{
    char text[32];
    snprintf(text, sizeof(text), "%ld", pid);
    setenv("WATCHDOG_PID", text, 1);
}

START_TEST(test_watchdog_interval)
{
    ck_assert_uint_eq(notify_watchdog_interval_ms(), 0); /* unset */

    setenv("WATCHDOG_USEC", "2000000", 1);
    ck_assert_uint_eq(notify_watchdog_interval_ms(), 1000); /* no pid: ours */
    set_pid((long)getpid());
    ck_assert_uint_eq(notify_watchdog_interval_ms(), 1000);
    setenv("WATCHDOG_USEC", "30000000", 1);
    ck_assert_uint_eq(notify_watchdog_interval_ms(), 15000);
    setenv("WATCHDOG_USEC", "3000", 1);
    ck_assert_uint_eq(notify_watchdog_interval_ms(), 1);
    /* Enabled but shorter than 2 ms: still on, as often as we can. */
    setenv("WATCHDOG_USEC", "1000", 1);
    ck_assert_uint_eq(notify_watchdog_interval_ms(), 1);

    /* Another process's watchdog. */
    setenv("WATCHDOG_USEC", "2000000", 1);
    set_pid((long)getpid() + 1);
    ck_assert_uint_eq(notify_watchdog_interval_ms(), 0);
    set_pid(1);
    ck_assert_uint_eq(notify_watchdog_interval_ms(), 0);
    setenv("WATCHDOG_PID", "", 1);
    ck_assert_uint_eq(notify_watchdog_interval_ms(), 1000);

    unsetenv("WATCHDOG_PID");
    setenv("WATCHDOG_USEC", "", 1);
    ck_assert_uint_eq(notify_watchdog_interval_ms(), 0);
    setenv("WATCHDOG_USEC", "0", 1);
    ck_assert_uint_eq(notify_watchdog_interval_ms(), 0);
    unsetenv("WATCHDOG_USEC");
    set_pid((long)getpid());
    ck_assert_uint_eq(notify_watchdog_interval_ms(), 0); /* pid alone */
}
END_TEST

START_TEST(test_watchdog_garbage)
{
    static const char *const bad_usec[] = {"abc", "12abc", "-2000000", " 2000000", "2000000 ",
                                           "+2000000", "0x1000", "2e6", "1.5",
                                           "99999999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad_usec) / sizeof(bad_usec[0]); i++) {
        setenv("WATCHDOG_USEC", bad_usec[i], 1);
        ck_assert_msg(notify_watchdog_interval_ms() == 0, "WATCHDOG_USEC='%s' accepted",
                      bad_usec[i]);
    }
    setenv("WATCHDOG_USEC", "2000000", 1);
    char ours[32];
    snprintf(ours, sizeof(ours), "%ldx", (long)getpid());
    const char *const bad_pid[] = {"abc", ours, "-1", " 1", "0x10"};
    for (size_t i = 0; i < sizeof(bad_pid) / sizeof(bad_pid[0]); i++) {
        setenv("WATCHDOG_PID", bad_pid[i], 1);
        ck_assert_msg(notify_watchdog_interval_ms() == 0, "WATCHDOG_PID='%s' accepted",
                      bad_pid[i]);
    }
}
END_TEST

static Suite *notify_suite(void)
{
    Suite *suite = suite_create("notify");
    TCase *send = tcase_create("send");
    tcase_add_unchecked_fixture(send, make_dir, remove_dir);
    tcase_add_checked_fixture(send, setup, teardown);
    tcase_add_test(send, test_send_to_path);
    tcase_add_test(send, test_send_to_abstract);
    tcase_add_test(send, test_unset_is_quiet);
    tcase_add_test(send, test_bad_socket);
    suite_add_tcase(suite, send);

    TCase *watchdog = tcase_create("watchdog");
    tcase_add_unchecked_fixture(watchdog, make_dir, remove_dir);
    tcase_add_checked_fixture(watchdog, setup, teardown);
    tcase_add_test(watchdog, test_watchdog_interval);
    tcase_add_test(watchdog, test_watchdog_garbage);
    suite_add_tcase(suite, watchdog);
    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(notify_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
