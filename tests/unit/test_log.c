/* test_log.c - log.c: level names and thresholds, the line format on a
 * terminal and under journald, rate-limited lines, truncation, and one line
 * per write when several threads log at once. stderr is redirected into a
 * temporary file for each capture. */
#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* ---- capturing stderr ---- */

static int saved_stderr = -1;
static int capture_fd = -1;
static char captured[1 << 20];

static void capture_begin(void)
{
    char path[] = "/tmp/test_log_XXXXXX";
    capture_fd = mkstemp(path);
    ck_assert_int_ge(capture_fd, 0);
    unlink(path);
    /* O_APPEND: writers from several threads never overwrite each other. */
    ck_assert_int_eq(fcntl(capture_fd, F_SETFL, O_APPEND), 0);
    fflush(stderr);
    saved_stderr = dup(STDERR_FILENO);
    ck_assert_int_ge(saved_stderr, 0);
    ck_assert_int_eq(dup2(capture_fd, STDERR_FILENO), STDERR_FILENO);
}

/* Restores stderr and returns what was written (NUL-terminated in captured). */
static size_t capture_end(void)
{
    fflush(stderr);
    ck_assert_int_eq(dup2(saved_stderr, STDERR_FILENO), STDERR_FILENO);
    close(saved_stderr);
    saved_stderr = -1;
    ck_assert_int_eq(lseek(capture_fd, 0, SEEK_SET), 0);
    size_t len = 0;
    for (;;) {
        ssize_t got = read(capture_fd, captured + len, sizeof(captured) - 1 - len);
        ck_assert_int_ge(got, 0);
        if (got == 0)
            break;
        len += (size_t)got;
        ck_assert_uint_lt(len, sizeof(captured) - 1);
    }
    close(capture_fd);
    capture_fd = -1;
    captured[len] = '\0';
    return len;
}

static size_t count_lines(const char *text)
{
    size_t lines = 0;
    for (const char *p = text; *p != '\0'; p++)
        lines += *p == '\n';
    return lines;
}

static void assert_matches(const char *text, const char *pattern)
{
    regex_t regex;
    ck_assert_int_eq(regcomp(&regex, pattern, REG_EXTENDED | REG_NOSUB), 0);
    int rc = regexec(&regex, text, 0, NULL, 0);
    regfree(&regex);
    ck_assert_msg(rc == 0, "'%s' does not match /%s/", text, pattern);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

/* Every test starts from a terminal (no journald) at level info, whatever the
 * test before it did (CK_FORK=no runs them in one process). */
static void setup(void)
{
    unsetenv("JOURNAL_STREAM");
    log_init();
    log_set_level(LOG_LEVEL_INFO);
}

static void teardown(void)
{
    if (saved_stderr >= 0) {
        dup2(saved_stderr, STDERR_FILENO);
        close(saved_stderr);
        saved_stderr = -1;
    }
    if (capture_fd >= 0) {
        close(capture_fd);
        capture_fd = -1;
    }
    unsetenv("JOURNAL_STREAM");
    log_init();
    log_set_level(LOG_LEVEL_INFO);
}

/* ---- levels ---- */

static const struct {
    const char *name;
    enum log_level level;
} level_names[] = {
    {"debug", LOG_LEVEL_DEBUG},     {"info", LOG_LEVEL_INFO},   {"notice", LOG_LEVEL_NOTICE},
    {"warning", LOG_LEVEL_WARNING}, {"error", LOG_LEVEL_ERROR},
};

START_TEST(test_level_parse_name_roundtrip)
{
    for (size_t i = 0; i < UTIL_ARRAY_LEN(level_names); i++) {
        enum log_level level = (enum log_level)99;
        ck_assert_int_eq(log_level_parse(level_names[i].name, &level), 0);
        ck_assert_int_eq(level, level_names[i].level);
        ck_assert_str_eq(log_level_name(level), level_names[i].name);
        enum log_level again = (enum log_level)99;
        ck_assert_int_eq(log_level_parse(log_level_name(level), &again), 0);
        ck_assert_int_eq(again, level);
    }
    /* Names are not case-sensitive. */
    enum log_level level = LOG_LEVEL_DEBUG;
    ck_assert_int_eq(log_level_parse("WARNING", &level), 0);
    ck_assert_int_eq(level, LOG_LEVEL_WARNING);
    ck_assert_int_eq(log_level_parse("Info", &level), 0);
    ck_assert_int_eq(level, LOG_LEVEL_INFO);
}
END_TEST

START_TEST(test_level_parse_rejects_unknown)
{
    static const char *const bad[] = {"", "warn", "err", "inf", "infos", "critical", "trace",
                                      "debug ", " debug", "info\n", "4", "emerg", "notice!"};
    for (size_t i = 0; i < UTIL_ARRAY_LEN(bad); i++) {
        enum log_level level = LOG_LEVEL_NOTICE;
        ck_assert_msg(log_level_parse(bad[i], &level) == -1, "'%s' accepted", bad[i]);
        ck_assert_int_eq(level, LOG_LEVEL_NOTICE); /* untouched */
    }
    ck_assert_str_eq(log_level_name((enum log_level)99), "unknown");
    ck_assert_str_eq(log_level_name((enum log_level)-1), "unknown");
}
END_TEST

START_TEST(test_enabled_per_level)
{
    for (size_t set = 0; set < UTIL_ARRAY_LEN(level_names); set++) {
        log_set_level(level_names[set].level);
        ck_assert_int_eq(log_get_level(), level_names[set].level);
        for (size_t asked = 0; asked < UTIL_ARRAY_LEN(level_names); asked++) {
            bool want = level_names[asked].level >= level_names[set].level;
            ck_assert_msg(log_enabled(level_names[asked].level) == want,
                          "level %s: %s enabled=%d", level_names[set].name,
                          level_names[asked].name, !want);
        }
    }
}
END_TEST

START_TEST(test_disabled_levels_write_nothing)
{
    log_set_level(LOG_LEVEL_WARNING);
    capture_begin();
    log_debug("debug %d", 1);
    log_info("info %d", 2);
    log_notice("notice %d", 3);
    log_warn("warn %d", 4);
    log_error("error %d", 5);
    struct log_ratelimit limit = {0};
    log_limited(&limit, 1000, LOG_LEVEL_INFO, "limited info");
    capture_end();
    ck_assert_uint_eq(count_lines(captured), 2);
    ck_assert_ptr_null(strstr(captured, "debug 1"));
    ck_assert_ptr_null(strstr(captured, "info 2"));
    ck_assert_ptr_null(strstr(captured, "notice 3"));
    ck_assert_ptr_null(strstr(captured, "limited info"));
    ck_assert_ptr_nonnull(strstr(captured, "warning: warn 4\n"));
    ck_assert_ptr_nonnull(strstr(captured, "error: error 5\n"));
    ck_assert_uint_eq(limit.suppressed, 0);
}
END_TEST

/* ---- line format ---- */

START_TEST(test_terminal_format)
{
    capture_begin();
    log_info("hello %s %d", "world", 42);
    size_t len = capture_end();
    ck_assert_uint_gt(len, 0);
    ck_assert_uint_eq(count_lines(captured), 1);
    char pattern[256];
    snprintf(pattern, sizeof(pattern),
             "^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3} \\[%d\\] "
             "info: hello world 42\n$",
             (int)getpid());
    assert_matches(captured, pattern);
    ck_assert_int_ne(captured[0], '<');

    /* Each level's word. */
    log_set_level(LOG_LEVEL_DEBUG);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(level_names); i++) {
        capture_begin();
        log_message(level_names[i].level, "x");
        capture_end();
        char want[32];
        snprintf(want, sizeof(want), "] %s: x\n", level_names[i].name);
        ck_assert_msg(strstr(captured, want) != NULL, "'%s' lacks '%s'", captured, want);
    }

    /* An empty JOURNAL_STREAM is no journal. */
    setenv("JOURNAL_STREAM", "", 1);
    log_init();
    capture_begin();
    log_warn("plain");
    capture_end();
    ck_assert_int_ne(captured[0], '<');
    ck_assert_ptr_nonnull(strstr(captured, "warning: plain\n"));
}
END_TEST

START_TEST(test_journal_format)
{
    setenv("JOURNAL_STREAM", "8:123456", 1);
    log_init();
    log_set_level(LOG_LEVEL_DEBUG);
    static const struct {
        enum log_level level;
        const char *line;
    } cases[] = {
        {LOG_LEVEL_DEBUG, "<7>message 7\n"},   {LOG_LEVEL_INFO, "<6>message 6\n"},
        {LOG_LEVEL_NOTICE, "<5>message 5\n"},  {LOG_LEVEL_WARNING, "<4>message 4\n"},
        {LOG_LEVEL_ERROR, "<3>message 3\n"},
    };
    for (size_t i = 0; i < UTIL_ARRAY_LEN(cases); i++) {
        capture_begin();
        log_message(cases[i].level, "message %c", cases[i].line[1]);
        capture_end();
        ck_assert_str_eq(captured, cases[i].line);
    }
    capture_begin();
    log_warn("disk %s", "full");
    capture_end();
    ck_assert_str_eq(captured, "<4>disk full\n");

    /* Back to a terminal once the variable is gone and log_init() runs again. */
    unsetenv("JOURNAL_STREAM");
    log_init();
    capture_begin();
    log_warn("disk full");
    capture_end();
    ck_assert_int_ne(captured[0], '<');
    ck_assert_ptr_nonnull(strstr(captured, "warning: disk full\n"));
}
END_TEST

START_TEST(test_long_message_truncated)
{
    char *big = xmalloc(5001);
    memset(big, 'x', 5000);
    big[5000] = '\0';
    big[0] = 'A';
    for (int journal = 0; journal <= 1; journal++) {
        if (journal)
            setenv("JOURNAL_STREAM", "8:1", 1);
        else
            unsetenv("JOURNAL_STREAM");
        log_init();
        capture_begin();
        log_warn("%s", big);
        size_t len = capture_end();
        ck_assert_uint_gt(len, 1000);
        ck_assert_uint_le(len, 4096);
        ck_assert_uint_eq(count_lines(captured), 1);
        ck_assert_int_eq(captured[len - 1], '\n');
        ck_assert_uint_eq(strlen(captured), len); /* no NUL inside */
        ck_assert_ptr_nonnull(strstr(captured, journal ? "<4>Axxx" : "warning: Axxx"));
        /* Everything between the prefix and the newline is the message. */
        const char *body = strchr(captured, 'A');
        for (const char *p = body + 1; p < captured + len - 1; p++)
            ck_assert_int_eq(*p, 'x');
    }
    /* Exactly at the edge: a body that just fits, and a format that expands. */
    unsetenv("JOURNAL_STREAM");
    log_init();
    capture_begin();
    log_error("%s%s%s", big, big, big);
    size_t len = capture_end();
    ck_assert_uint_eq(count_lines(captured), 1);
    ck_assert_int_eq(captured[len - 1], '\n');
    free(big);
}
END_TEST

START_TEST(test_control_characters_stay_on_one_line)
{
    /* Text a peer controls (a channel name, a src) cannot start lines. */
    for (int journal = 0; journal <= 1; journal++) {
        if (journal)
            setenv("JOURNAL_STREAM", "8:1", 1);
        log_init();
        capture_begin();
        log_warn("channel '%s' said %s", "evil\n<3>forged", "a\r\nb\x1b[31m");
        size_t len = capture_end();
        ck_assert_uint_eq(count_lines(captured), 1);
        ck_assert_int_eq(captured[len - 1], '\n');
        ck_assert_ptr_null(strchr(captured, '\r'));
        ck_assert_ptr_null(strchr(captured, '\x1b'));
        ck_assert_ptr_nonnull(strstr(captured, "evil"));
        ck_assert_ptr_nonnull(strstr(captured, "forged"));
    }
}
END_TEST

/* ---- rate limit ---- */

START_TEST(test_limited_one_line_per_interval)
{
    struct log_ratelimit limit = {0};
    const uint64_t interval = 400;

    capture_begin();
    for (int i = 0; i < 3; i++)
        log_limited(&limit, interval, LOG_LEVEL_WARNING, "event %d", i);
    capture_end();
    ck_assert_uint_eq(count_lines(captured), 1);
    ck_assert_ptr_nonnull(strstr(captured, "warning: event 0\n"));
    ck_assert_ptr_null(strstr(captured, "suppressed"));
    ck_assert_uint_eq(limit.suppressed, 2);

    /* The next interval's line reports the two suppressed ones, on that
     * same line. */
    sleep_ms((long)interval + 100);
    capture_begin();
    log_limited(&limit, interval, LOG_LEVEL_WARNING, "event %d", 3);
    log_limited(&limit, interval, LOG_LEVEL_WARNING, "event %d", 4);
    capture_end();
    ck_assert_uint_eq(count_lines(captured), 1);
    ck_assert_ptr_nonnull(strstr(captured, "warning: event 3"));
    ck_assert_ptr_nonnull(strstr(captured, "2 similar messages suppressed"));
    ck_assert_ptr_null(strstr(captured, "event 4"));
    ck_assert_uint_eq(limit.suppressed, 1);

    sleep_ms((long)interval + 100);
    capture_begin();
    log_limited(&limit, interval, LOG_LEVEL_WARNING, "event %d", 5);
    capture_end();
    ck_assert_uint_eq(count_lines(captured), 1);
    ck_assert_ptr_nonnull(strstr(captured, "event 5"));
    ck_assert_ptr_nonnull(strstr(captured, "(1 similar messages suppressed)"));

    /* Nothing suppressed in between: a plain line. */
    sleep_ms((long)interval + 100);
    capture_begin();
    log_limited(&limit, interval, LOG_LEVEL_WARNING, "event %d", 6);
    capture_end();
    ck_assert_uint_eq(count_lines(captured), 1);
    ck_assert_ptr_nonnull(strstr(captured, "warning: event 6\n"));
    ck_assert_ptr_null(strstr(captured, "suppressed"));

    /* Two limits are independent. */
    struct log_ratelimit other = {0};
    capture_begin();
    log_limited(&other, interval, LOG_LEVEL_WARNING, "other");
    capture_end();
    ck_assert_ptr_nonnull(strstr(captured, "warning: other\n"));
}
END_TEST

START_TEST(test_limited_note_survives_truncation)
{
    struct log_ratelimit limit = {0};
    char *big = xmalloc(5001);
    memset(big, 'y', 5000);
    big[5000] = '\0';
    capture_begin();
    log_limited(&limit, 200, LOG_LEVEL_ERROR, "%s", big);
    log_limited(&limit, 200, LOG_LEVEL_ERROR, "%s", big);
    sleep_ms(300);
    log_limited(&limit, 200, LOG_LEVEL_ERROR, "%s", big);
    size_t len = capture_end();
    free(big);
    ck_assert_uint_eq(count_lines(captured), 2);
    ck_assert_int_eq(captured[len - 1], '\n');
    ck_assert_ptr_nonnull(strstr(captured, "yyy (1 similar messages suppressed)\n"));
}
END_TEST

/* ---- threads ---- */

#define THREADS 4
#define LINES_PER_THREAD 300

static void *log_lines(void *arg)
{
    int id = (int)(intptr_t)arg;
    char padding[200];
    memset(padding, 'a' + id, sizeof(padding) - 1);
    padding[sizeof(padding) - 1] = '\0';
    for (int i = 0; i < LINES_PER_THREAD; i++)
        log_info("thread %d line %d %s", id, i, padding);
    return NULL;
}

START_TEST(test_threads_never_interleave)
{
    setenv("JOURNAL_STREAM", "8:1", 1);
    log_init();
    capture_begin();
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++)
        ck_assert_int_eq(pthread_create(&threads[t], NULL, log_lines, (void *)(intptr_t)t), 0);
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    capture_end();
    ck_assert_uint_eq(count_lines(captured), THREADS * LINES_PER_THREAD);
    int seen[THREADS] = {0};
    char *save = NULL;
    for (char *line = strtok_r(captured, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        int id = -1, number = -1, consumed = 0;
        ck_assert_msg(sscanf(line, "<6>thread %d line %d %n", &id, &number, &consumed) == 2,
                      "garbled line '%s'", line);
        ck_assert_int_ge(id, 0);
        ck_assert_int_lt(id, THREADS);
        ck_assert_int_eq(number, seen[id]); /* each thread's lines in order */
        seen[id]++;
        const char *padding = line + consumed;
        ck_assert_uint_eq(strlen(padding), 199);
        for (size_t i = 0; i < 199; i++)
            ck_assert_int_eq(padding[i], 'a' + id);
    }
    for (int t = 0; t < THREADS; t++)
        ck_assert_int_eq(seen[t], LINES_PER_THREAD);
}
END_TEST

/* ---- fatal ---- */

START_TEST(test_fatal_logs_and_exits_1)
{
    fflush(stdout);
    capture_begin();
    pid_t child = fork();
    ck_assert_int_ge(child, 0);
    if (child == 0) {
        log_set_level(LOG_LEVEL_ERROR);
        log_fatal("cannot %s", "continue");
    }
    int status = 0;
    ck_assert_int_eq(waitpid(child, &status, 0), child);
    capture_end();
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 1);
    ck_assert_ptr_nonnull(strstr(captured, "error: cannot continue\n"));
}
END_TEST

static Suite *log_suite(void)
{
    Suite *suite = suite_create("log");
    TCase *levels = tcase_create("levels");
    tcase_add_checked_fixture(levels, setup, teardown);
    tcase_add_test(levels, test_level_parse_name_roundtrip);
    tcase_add_test(levels, test_level_parse_rejects_unknown);
    tcase_add_test(levels, test_enabled_per_level);
    tcase_add_test(levels, test_disabled_levels_write_nothing);
    suite_add_tcase(suite, levels);

    TCase *format = tcase_create("format");
    tcase_add_checked_fixture(format, setup, teardown);
    tcase_add_test(format, test_terminal_format);
    tcase_add_test(format, test_journal_format);
    tcase_add_test(format, test_long_message_truncated);
    tcase_add_test(format, test_control_characters_stay_on_one_line);
    tcase_add_test(format, test_threads_never_interleave);
    tcase_add_test(format, test_fatal_logs_and_exits_1);
    tcase_set_timeout(format, 60);
    suite_add_tcase(suite, format);

    TCase *limited = tcase_create("limited");
    tcase_add_checked_fixture(limited, setup, teardown);
    tcase_add_test(limited, test_limited_one_line_per_interval);
    tcase_add_test(limited, test_limited_note_survives_truncation);
    tcase_set_timeout(limited, 60);
    suite_add_tcase(suite, limited);
    return suite;
}

int main(void)
{
    SRunner *runner = srunner_create(log_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
