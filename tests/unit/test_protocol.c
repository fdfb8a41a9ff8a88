/* test_protocol.c - unit tests for the RESP2 request parser (protocol.c).
 *
 * Besides single requests and every framing error, the stream tests feed the
 * same input in every chunk size from 1 to 7 bytes into a buffer that is
 * reallocated at each read, and require the same transcript each time: that
 * catches resume state that depends on how reads were split, and argv
 * pointers that outlive a moved buffer (valgrind/ASan see those). */
#include <check.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

#define MIB (1024u * 1024u)

static const struct protocol_limits default_limits = {.max_request_bytes = MIB, .max_args = 1024};

/* A growable text buffer for transcripts. */
struct text {
    char *data;
    size_t len;
    size_t cap;
};

static void text_append(struct text *t, const char *bytes, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->data = realloc(t->data, t->cap);
        ck_assert_ptr_nonnull(t->data);
    }
    memcpy(t->data + t->len, bytes, n);
    t->len += n;
    t->data[t->len] = '\0';
}

static void text_printf(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void text_printf(struct text *t, const char *fmt, ...)
{
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    ck_assert_int_ge(n, 0);
    text_append(t, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* Appends an argument with non-printable bytes as \xHH, so that binary
 * arguments compare as plain strings. */
static void text_append_arg(struct text *t, const char *arg, size_t len)
{
    text_printf(t, "%zu:", len);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)arg[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            text_append(t, (const char *)&c, 1);
        else
            text_printf(t, "\\x%02x", c);
    }
    text_append(t, " ", 1);
}

/* Feeds data[0..len) in reads of `chunk` bytes (0: all at once) and returns
 * the transcript of what the parser reported, one line per request, skip or
 * error, and a final line with the bytes left unconsumed. The input buffer
 * is a fresh allocation after every read, as a growing connection buffer may
 * be. The caller frees the result. */
static char *run_stream(const char *data, size_t len, size_t chunk,
                        const struct protocol_limits *limits)
{
    struct protocol_parser parser;
    struct protocol_request request;
    struct text t = {0};
    char *buf = NULL;
    size_t buffered = 0, fed = 0;
    bool failed = false;

    protocol_parser_init(&parser, limits);
    if (chunk == 0)
        chunk = len ? len : 1;
    while (fed < len && !failed) {
        size_t n = len - fed < chunk ? len - fed : chunk;
        char *grown = malloc(buffered + n + 1);
        ck_assert_ptr_nonnull(grown);
        if (buffered)
            memcpy(grown, buf, buffered);
        memcpy(grown + buffered, data + fed, n);
        free(buf);
        buf = grown;
        buffered += n;
        fed += n;

        for (;;) {
            size_t consumed = 99;
            enum protocol_status st = protocol_parse(&parser, buf, buffered, &consumed, &request);
            if (st == PROTOCOL_INCOMPLETE) {
                ck_assert_uint_eq(consumed, 0);
                break;
            }
            if (st == PROTOCOL_ERROR) {
                ck_assert_uint_eq(consumed, 0);
                text_printf(&t, "E %s\n", parser.error);
                failed = true;
                break;
            }
            ck_assert_uint_gt(consumed, 0);
            ck_assert_uint_le(consumed, buffered);
            if (st == PROTOCOL_SKIP) {
                text_printf(&t, "S %zu\n", consumed);
            } else {
                ck_assert_int_eq(st, PROTOCOL_REQUEST);
                ck_assert_uint_ge(request.argc, 1);
                ck_assert_uint_le(request.argc, limits->max_args);
                text_printf(&t, "R %zu ", request.argc);
                for (size_t i = 0; i < request.argc; i++) {
                    ck_assert(request.argv[i] >= buf);
                    ck_assert(request.argv[i] + request.argv_len[i] <= buf + consumed);
                    text_append_arg(&t, request.argv[i], request.argv_len[i]);
                }
                text_append(&t, "\n", 1);
            }
            memmove(buf, buf + consumed, buffered - consumed);
            buffered -= consumed;
        }
    }
    if (!failed)
        text_printf(&t, "left %zu\n", buffered);
    free(buf);
    protocol_parser_free(&parser);
    return t.data;
}

/* Parses one request from a writable copy of `input` and returns the status;
 * fills *consumed and *request. The copy is left allocated in *copy. */
static enum protocol_status parse_once(struct protocol_parser *parser, const char *input,
                                       size_t len, char **copy, size_t *consumed,
                                       struct protocol_request *request)
{
    *copy = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(*copy);
    memcpy(*copy, input, len);
    return protocol_parse(parser, *copy, len, consumed, request);
}

/* Asserts that `input` (NUL-terminated) fails at once with `message`. */
static void assert_error(const struct protocol_limits *limits, const char *input, size_t len,
                         const char *message)
{
    struct protocol_parser parser;
    struct protocol_request request;
    size_t consumed = 99;
    char *copy;

    protocol_parser_init(&parser, limits);
    enum protocol_status st = parse_once(&parser, input, len, &copy, &consumed, &request);
    ck_assert_msg(st == PROTOCOL_ERROR, "input %.*s: status %d, wanted an error", (int)len, input,
                  (int)st);
    ck_assert_str_eq(parser.error, message);
    ck_assert_uint_eq(consumed, 0);
    free(copy);
    protocol_parser_free(&parser);
}

#define ASSERT_ERROR(limits, literal, message) \
    assert_error((limits), (literal), sizeof(literal) - 1, (message))

static void assert_arg(const struct protocol_request *request, size_t i, const char *want,
                       size_t want_len)
{
    ck_assert_uint_lt(i, request->argc);
    ck_assert_uint_eq(request->argv_len[i], want_len);
    ck_assert(memcmp(request->argv[i], want, want_len) == 0);
}

#define ASSERT_ARG(request, i, literal) assert_arg((request), (i), (literal), sizeof(literal) - 1)

START_TEST(test_simple_get)
{
    static const char in[] = "*4\r\n$3\r\nGET\r\n$4\r\nacme\r\n$4\r\nrole\r\n$5\r\nadmin\r\n";
    struct protocol_parser parser;
    struct protocol_request request;
    size_t consumed;
    char *copy;

    protocol_parser_init(&parser, &default_limits);
    ck_assert_int_eq(parse_once(&parser, in, sizeof(in) - 1, &copy, &consumed, &request),
                     PROTOCOL_REQUEST);
    ck_assert_uint_eq(consumed, sizeof(in) - 1);
    ck_assert_uint_eq(request.argc, 4);
    ASSERT_ARG(&request, 0, "GET");
    ASSERT_ARG(&request, 1, "acme");
    ASSERT_ARG(&request, 2, "role");
    ASSERT_ARG(&request, 3, "admin");
    /* Multibulk bytes are never rewritten. */
    ck_assert(memcmp(copy, in, sizeof(in) - 1) == 0);
    free(copy);

    /* Nothing at all, and a partial request, are incomplete. */
    ck_assert_int_eq(protocol_parse(&parser, NULL, 0, &consumed, &request), PROTOCOL_INCOMPLETE);
    ck_assert_int_eq(parse_once(&parser, in, 10, &copy, &consumed, &request), PROTOCOL_INCOMPLETE);
    ck_assert_uint_eq(consumed, 0);
    free(copy);
    protocol_parser_free(&parser);
}
END_TEST

START_TEST(test_binary_bulks)
{
    static const char in[] = "*3\r\n$3\r\nSET\r\n$5\r\na\0b\r\n\r\n$4\r\n\0\0\0\0\r\n";
    struct protocol_parser parser;
    struct protocol_request request;
    size_t consumed;
    char *copy;

    protocol_parser_init(&parser, &default_limits);
    ck_assert_int_eq(parse_once(&parser, in, sizeof(in) - 1, &copy, &consumed, &request),
                     PROTOCOL_REQUEST);
    ck_assert_uint_eq(consumed, sizeof(in) - 1);
    ck_assert_uint_eq(request.argc, 3);
    ASSERT_ARG(&request, 1, "a\0b\r\n");
    ASSERT_ARG(&request, 2, "\0\0\0\0");
    free(copy);

    /* An empty bulk. */
    ck_assert_int_eq(parse_once(&parser, "*1\r\n$0\r\n\r\n", 10, &copy, &consumed, &request),
                     PROTOCOL_REQUEST);
    ck_assert_uint_eq(consumed, 10);
    ck_assert_uint_eq(request.argc, 1);
    ck_assert_uint_eq(request.argv_len[0], 0);
    free(copy);
    protocol_parser_free(&parser);
}
END_TEST

START_TEST(test_pipelined)
{
    static const char in[] = "*1\r\n$4\r\nPING\r\n"
                             "*0\r\n"
                             "PING hello\r\n"
                             "*2\r\n$4\r\nECHO\r\n$1\r\nx\r\n"
                             "*1\r\n$4\r\nQU";
    char *t = run_stream(in, sizeof(in) - 1, 0, &default_limits);
    ck_assert_str_eq(t, "R 1 4:PING \n"
                        "S 4\n"
                        "R 2 4:PING 5:hello \n"
                        "R 2 4:ECHO 1:x \n"
                        "left 10\n");
    free(t);
}
END_TEST

/* Every kind of input in one stream, fed in every chunk size from 1 to 7. */
START_TEST(test_chunk_sizes)
{
    static const char ok[] = "*2\r\n$3\r\nGET\r\n$10\r\ncache:a:b:\r\n"
                             "*-1\r\n*0\r\n"
                             "\r\n  \t \n"
                             "PING\n"
                             "set \"a b\" 'c d' \"\\x41\\n\"\r\n"
                             "*3\r\n$1\r\n\0\r\n$0\r\n\r\n$12\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n"
                             "*1\r\n$4\r\nQUIT\r\n";
    static const char bad[] = "*1\r\n$4\r\nPING\r\n"
                              "INFO memory\r\n"
                              "*2\r\n$3\r\nGET\r\n$3\r\nabcd\r\n*1\r\n$4\r\nPING\r\n";
    const char *streams[] = {ok, bad};
    size_t lens[] = {sizeof(ok) - 1, sizeof(bad) - 1};

    for (size_t s = 0; s < 2; s++) {
        char *whole = run_stream(streams[s], lens[s], 0, &default_limits);
        for (size_t chunk = 1; chunk <= 7; chunk++) {
            char *t = run_stream(streams[s], lens[s], chunk, &default_limits);
            ck_assert_msg(strcmp(t, whole) == 0, "chunk %zu:\n%s\nwhole:\n%s", chunk, t, whole);
            free(t);
        }
        if (s == 0)
            ck_assert_str_eq(whole, "R 2 3:GET 10:cache:a:b: \n"
                                    "S 5\nS 4\nS 2\nS 5\n"
                                    "R 1 4:PING \n"
                                    "R 4 3:set 3:a b 3:c d 2:A\\x0a \n"
                                    "R 3 1:\\x00 0: 12:\\x0d\\x0a\\x0d\\x0a\\x0d\\x0a\\x0d"
                                    "\\x0a\\x0d\\x0a\\x0d\\x0a \n"
                                    "R 1 4:QUIT \n"
                                    "left 0\n");
        else
            ck_assert_str_eq(whole, "R 1 4:PING \n"
                                    "R 2 4:INFO 6:memory \n"
                                    "E expected CRLF after bulk string\n");
        free(whole);
    }
}
END_TEST

START_TEST(test_skip_empty_arrays)
{
    struct protocol_parser parser;
    struct protocol_request request;
    size_t consumed;
    char *copy;

    protocol_parser_init(&parser, &default_limits);
    ck_assert_int_eq(parse_once(&parser, "*0\r\n*1", 6, &copy, &consumed, &request), PROTOCOL_SKIP);
    ck_assert_uint_eq(consumed, 4);
    free(copy);
    ck_assert_int_eq(parse_once(&parser, "*-1\r\n", 5, &copy, &consumed, &request), PROTOCOL_SKIP);
    ck_assert_uint_eq(consumed, 5);
    free(copy);
    /* Only the CRLF decides: "*-1\r" waits. */
    ck_assert_int_eq(parse_once(&parser, "*-1\r", 4, &copy, &consumed, &request),
                     PROTOCOL_INCOMPLETE);
    free(copy);
    protocol_parser_free(&parser);
}
END_TEST

START_TEST(test_inline)
{
    struct protocol_parser parser;
    struct protocol_request request;
    size_t consumed;
    char *copy;

    protocol_parser_init(&parser, &default_limits);

    ck_assert_int_eq(parse_once(&parser, "PING\r\n", 6, &copy, &consumed, &request),
                     PROTOCOL_REQUEST);
    ck_assert_uint_eq(consumed, 6);
    ck_assert_uint_eq(request.argc, 1);
    ASSERT_ARG(&request, 0, "PING");
    free(copy);

    ck_assert_int_eq(parse_once(&parser, "PING\nPING\r\n", 11, &copy, &consumed, &request),
                     PROTOCOL_REQUEST);
    ck_assert_uint_eq(consumed, 5);
    ck_assert_uint_eq(request.argc, 1);
    ASSERT_ARG(&request, 0, "PING");
    free(copy);

    ck_assert_int_eq(parse_once(&parser, "PING", 4, &copy, &consumed, &request),
                     PROTOCOL_INCOMPLETE);
    free(copy);
    /* The parser now expects that line to go on: start a new stream. */
    protocol_parser_free(&parser);
    protocol_parser_init(&parser, &default_limits);

    /* Blank lines of any kind are skipped. */
    ck_assert_int_eq(parse_once(&parser, " \t \r\n", 5, &copy, &consumed, &request), PROTOCOL_SKIP);
    ck_assert_uint_eq(consumed, 5);
    free(copy);
    ck_assert_int_eq(parse_once(&parser, "\n", 1, &copy, &consumed, &request), PROTOCOL_SKIP);
    ck_assert_uint_eq(consumed, 1);
    free(copy);

    /* Quotes and escapes, as redis's sdssplitargs() reads them. */
    static const char quoted[] =
        "  GET\t\"a b\" 'c\\'d' \"\\x41\\x7a\\n\\r\\t\\\"\\\\\\q\" '' \"\" x\"y z\" '\\n' \r\n";
    ck_assert_int_eq(parse_once(&parser, quoted, sizeof(quoted) - 1, &copy, &consumed, &request),
                     PROTOCOL_REQUEST);
    ck_assert_uint_eq(consumed, sizeof(quoted) - 1);
    ck_assert_uint_eq(request.argc, 8);
    ASSERT_ARG(&request, 0, "GET");
    ASSERT_ARG(&request, 1, "a b");
    ASSERT_ARG(&request, 2, "c'd");
    ASSERT_ARG(&request, 3, "Az\n\r\t\"\\q");
    ASSERT_ARG(&request, 4, "");
    ASSERT_ARG(&request, 5, "");
    ASSERT_ARG(&request, 6, "xy z");
    ASSERT_ARG(&request, 7, "\\n");
    for (size_t i = 0; i < request.argc; i++) {
        /* Unescaped in place: every argument lies inside the line. */
        ck_assert(request.argv[i] >= copy);
        ck_assert(request.argv[i] + request.argv_len[i] <= copy + consumed);
    }
    free(copy);

    /* A binary byte in an unquoted inline argument is just a byte. */
    ck_assert_int_eq(parse_once(&parser, "a\0b c\n", 6, &copy, &consumed, &request),
                     PROTOCOL_REQUEST);
    ck_assert_uint_eq(request.argc, 2);
    ASSERT_ARG(&request, 0, "a\0b");
    free(copy);
    protocol_parser_free(&parser);

    ASSERT_ERROR(&default_limits, "GET \"abc\r\n", "unbalanced quotes in request");
    ASSERT_ERROR(&default_limits, "GET 'abc\n", "unbalanced quotes in request");
    ASSERT_ERROR(&default_limits, "GET \"a\"b\n", "unbalanced quotes in request");
    ASSERT_ERROR(&default_limits, "GET 'a'b\n", "unbalanced quotes in request");
    ASSERT_ERROR(&default_limits, "GET \"abc\\\"\n", "unbalanced quotes in request");
}
END_TEST

START_TEST(test_inline_too_big)
{
    size_t len = PROTOCOL_INLINE_MAX + 2;
    char *line = malloc(len);
    ck_assert_ptr_nonnull(line);
    memset(line, 'a', len);

    /* Exactly PROTOCOL_INLINE_MAX bytes before the '\n' are fine... */
    line[PROTOCOL_INLINE_MAX] = '\n';
    char *t = run_stream(line, PROTOCOL_INLINE_MAX + 1, 0, &default_limits);
    ck_assert(strncmp(t, "R 1 65536:aaa", 13) == 0);
    ck_assert_str_eq(t + strlen(t) - 7, "left 0\n");
    free(t);
    /* ...one more is an error whether or not the '\n' has arrived. */
    line[PROTOCOL_INLINE_MAX] = 'a';
    line[PROTOCOL_INLINE_MAX + 1] = '\n';
    assert_error(&default_limits, line, len, "too big inline request");
    assert_error(&default_limits, line, len - 1, "too big inline request");
    t = run_stream(line, len, 4096, &default_limits);
    ck_assert_str_eq(t, "E too big inline request\n");
    free(t);
    free(line);
}
END_TEST

START_TEST(test_malformed_headers)
{
    const struct protocol_limits *l = &default_limits;

    ASSERT_ERROR(l, "*abc\r\n", "invalid multibulk length");
    ASSERT_ERROR(l, "*a", "invalid multibulk length"); /* at once, no CRLF needed */
    ASSERT_ERROR(l, "*\r\n", "invalid multibulk length");
    ASSERT_ERROR(l, "*+5\r\n", "invalid multibulk length");
    ASSERT_ERROR(l, "*-2\r\n", "invalid multibulk length");
    ASSERT_ERROR(l, "*-0\r\n", "invalid multibulk length");
    ASSERT_ERROR(l, "*-\r\n", "invalid multibulk length");
    ASSERT_ERROR(l, "*1-\r\n", "invalid multibulk length");
    ASSERT_ERROR(l, "*01\r\n", "invalid multibulk length");
    ASSERT_ERROR(l, "* 1\r\n", "invalid multibulk length");
    ASSERT_ERROR(l, "*1\n", "invalid multibulk length");
    ASSERT_ERROR(l, "*1\rX", "invalid multibulk length");
    ASSERT_ERROR(l, "*99999999999999999999999\r\n", "invalid multibulk length");

    ASSERT_ERROR(l, "*1\r\nX", "expected '$', got 'X'");
    ASSERT_ERROR(l, "*1\r\n*1\r\n", "expected '$', got '*'");
    ASSERT_ERROR(l, "*1\r\n\x01", "expected '$', got '\\x01'");
    ASSERT_ERROR(l, "*2\r\n$1\r\na\r\n:1\r\n", "expected '$', got ':'");

    ASSERT_ERROR(l, "*1\r\n$abc\r\n", "invalid bulk length");
    ASSERT_ERROR(l, "*1\r\n$a", "invalid bulk length");
    ASSERT_ERROR(l, "*1\r\n$\r\n", "invalid bulk length");
    ASSERT_ERROR(l, "*1\r\n$-1\r\n", "invalid bulk length");
    ASSERT_ERROR(l, "*1\r\n$+3\r\n", "invalid bulk length");
    ASSERT_ERROR(l, "*1\r\n$03\r\n", "invalid bulk length");
    ASSERT_ERROR(l, "*1\r\n$3\rX", "invalid bulk length");
    ASSERT_ERROR(l, "*1\r\n$3\n", "invalid bulk length");
    ASSERT_ERROR(l, "*1\r\n$99999999999999999999999\r\n", "invalid bulk length");

    ASSERT_ERROR(l, "*1\r\n$3\r\nabcX", "expected CRLF after bulk string");
    ASSERT_ERROR(l, "*1\r\n$3\r\nabc\rX", "expected CRLF after bulk string");
    ASSERT_ERROR(l, "*1\r\n$3\r\nab\r\n\r\n", "expected CRLF after bulk string");

    /* Header lines of PROTOCOL_INLINE_MAX digits still wait for their CRLF;
     * one more byte is too much. */
    size_t len = PROTOCOL_INLINE_MAX + 6;
    char *line = malloc(len);
    ck_assert_ptr_nonnull(line);
    memset(line, '1', len);
    line[0] = '*';
    char *t = run_stream(line, 1 + PROTOCOL_INLINE_MAX, 0, l);
    ck_assert_str_eq(t, "left 65537\n");
    free(t);
    assert_error(l, line, 2 + PROTOCOL_INLINE_MAX, "too big mbulk count string");
    memcpy(line, "*1\r\n$", 5);
    assert_error(l, line, 6 + PROTOCOL_INLINE_MAX, "too big bulk count string");
    t = run_stream(line, 6 + PROTOCOL_INLINE_MAX, 3, l);
    ck_assert_str_eq(t, "E too big bulk count string\n");
    free(t);
    free(line);
}
END_TEST

START_TEST(test_huge_lengths_rejected_at_once)
{
    struct protocol_parser parser;
    struct protocol_request request;
    size_t consumed;
    char *copy;

    /* Only the header has arrived: refused now, and nothing allocated. */
    protocol_parser_init(&parser, &default_limits);
    ck_assert_int_eq(parse_once(&parser, "*2000000000\r\n", 13, &copy, &consumed, &request),
                     PROTOCOL_ERROR);
    ck_assert_str_eq(parser.error, "invalid multibulk length");
    ck_assert_uint_eq(parser.argv_capacity, 0);
    free(copy);

    ck_assert_int_eq(parse_once(&parser, "$2000000000\r\n", 13, &copy, &consumed, &request),
                     PROTOCOL_REQUEST); /* not '*': an inline command named "$2000000000" */
    free(copy);

    ck_assert_int_eq(parse_once(&parser, "*1\r\n$2000000000\r\n", 17, &copy, &consumed, &request),
                     PROTOCOL_ERROR);
    ck_assert_str_eq(parser.error, "invalid bulk length");
    free(copy);

    /* One byte over the limit, also without its data. */
    ck_assert_int_eq(parse_once(&parser, "*1\r\n$1048577\r\n", 14, &copy, &consumed, &request),
                     PROTOCOL_ERROR);
    ck_assert_str_eq(parser.error, "invalid bulk length");
    free(copy);
    protocol_parser_free(&parser);
}
END_TEST

START_TEST(test_max_args)
{
    const struct protocol_limits limits = {.max_request_bytes = MIB, .max_args = 3};
    char *t;

    t = run_stream("*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n", 25, 0, &limits);
    ck_assert_str_eq(t, "R 3 1:a 1:b 1:c \nleft 0\n");
    free(t);
    ASSERT_ERROR(&limits, "*4\r\n", "invalid multibulk length");

    t = run_stream("a b c\r\n", 7, 1, &limits);
    ck_assert_str_eq(t, "R 3 1:a 1:b 1:c \nleft 0\n");
    free(t);
    ASSERT_ERROR(&limits, "a b c d\r\n", "too many arguments in inline request");

    /* The argument vector grows past its first size and back to work again. */
    const struct protocol_limits many = {.max_request_bytes = MIB, .max_args = 100};
    struct text in = {0};
    text_printf(&in, "*100\r\n");
    for (int i = 0; i < 100; i++)
        text_printf(&in, "$2\r\n%02d\r\n", i);
    t = run_stream(in.data, in.len, 5, &many);
    ck_assert_uint_eq(strlen(t), strlen("R 100 ") + 100 * strlen("2:00 ") + 1 + strlen("left 0\n"));
    ck_assert(strncmp(t, "R 100 2:00 2:01 ", 16) == 0);
    free(t);
    free(in.data);
}
END_TEST

START_TEST(test_request_size)
{
    const struct protocol_limits limits = {.max_request_bytes = 10, .max_args = 16};
    char *t;

    /* Exactly the limit. */
    t = run_stream("*2\r\n$5\r\nhello\r\n$5\r\nworld\r\n", 26, 0, &limits);
    ck_assert_str_eq(t, "R 2 5:hello 5:world \nleft 0\n");
    free(t);
    /* One over, refused at the second header, before its data. */
    ASSERT_ERROR(&limits, "*2\r\n$5\r\nhello\r\n$6\r\n", "request too large");
    ASSERT_ERROR(&limits, "*1\r\n$11\r\n", "invalid bulk length");
    t = run_stream("*1\r\n$10\r\n0123456789\r\n", 21, 0, &limits);
    ck_assert_str_eq(t, "R 1 10:0123456789 \nleft 0\n");
    free(t);

    /* Inline requests count their argument bytes the same way. */
    t = run_stream("hello world\n", 12, 0, &limits);
    ck_assert_str_eq(t, "R 2 5:hello 5:world \nleft 0\n");
    free(t);
    ASSERT_ERROR(&limits, "hello world!\n", "request too large");
}
END_TEST

START_TEST(test_one_mib_bulk_byte_by_byte)
{
    const size_t bulk = MIB;
    const char header[] = "*2\r\n$3\r\nSET\r\n$1048576\r\n";
    size_t header_len = sizeof(header) - 1;
    size_t total = header_len + bulk + 2;
    char *buf = malloc(total);
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, header, header_len);
    for (size_t i = 0; i < bulk; i++)
        buf[header_len + i] = (char)(i * 7);
    memcpy(buf + header_len + bulk, "\r\n", 2);

    struct protocol_parser parser;
    struct protocol_request request;
    size_t consumed = 0;
    enum protocol_status st = PROTOCOL_INCOMPLETE;
    size_t len;

    /* The limit counts every bulk: "SET" too. */
    const struct protocol_limits limits = {.max_request_bytes = 2 * MIB, .max_args = 2};
    protocol_parser_init(&parser, &limits);
    for (len = 1; len <= total; len++) {
        st = protocol_parse(&parser, buf, len, &consumed, &request);
        if (st != PROTOCOL_INCOMPLETE)
            break;
    }
    ck_assert_int_eq(st, PROTOCOL_REQUEST);
    ck_assert_uint_eq(len, total);
    ck_assert_uint_eq(consumed, total);
    ck_assert_uint_eq(request.argc, 2);
    ASSERT_ARG(&request, 0, "SET");
    ck_assert_uint_eq(request.argv_len[1], bulk);
    ck_assert_ptr_eq(request.argv[1], buf + header_len);
    protocol_parser_free(&parser);
    free(buf);
}
END_TEST

START_TEST(test_reuse_after_error)
{
    struct protocol_parser parser;
    struct protocol_request request;
    size_t consumed;
    char *copy;

    protocol_parser_init(&parser, &default_limits);
    ck_assert_int_eq(parse_once(&parser, "*1\r\n$3\r\nab", 10, &copy, &consumed, &request),
                     PROTOCOL_INCOMPLETE);
    free(copy);
    ck_assert_int_eq(parse_once(&parser, "*1\r\n$3\r\nabXY", 12, &copy, &consumed, &request),
                     PROTOCOL_ERROR);
    free(copy);
    /* The error reset the parser: a new stream starts clean. */
    ck_assert_int_eq(parse_once(&parser, "*1\r\n$2\r\nok\r\n", 12, &copy, &consumed, &request),
                     PROTOCOL_REQUEST);
    ASSERT_ARG(&request, 0, "ok");
    free(copy);
    /* A caller that shrinks its buffer mid-request gets a restart, never a
     * read past the end. */
    ck_assert_int_eq(parse_once(&parser, "*1\r\n$5\r\nabc", 11, &copy, &consumed, &request),
                     PROTOCOL_INCOMPLETE);
    free(copy);
    ck_assert_int_eq(parse_once(&parser, "PING\n", 5, &copy, &consumed, &request),
                     PROTOCOL_REQUEST);
    ASSERT_ARG(&request, 0, "PING");
    free(copy);
    protocol_parser_free(&parser);
}
END_TEST

static Suite *protocol_suite(void)
{
    Suite *s = suite_create("protocol");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_simple_get);
    tcase_add_test(tc, test_binary_bulks);
    tcase_add_test(tc, test_pipelined);
    tcase_add_test(tc, test_chunk_sizes);
    tcase_add_test(tc, test_skip_empty_arrays);
    tcase_add_test(tc, test_inline);
    tcase_add_test(tc, test_inline_too_big);
    tcase_add_test(tc, test_malformed_headers);
    tcase_add_test(tc, test_huge_lengths_rejected_at_once);
    tcase_add_test(tc, test_max_args);
    tcase_add_test(tc, test_request_size);
    tcase_add_test(tc, test_one_mib_bulk_byte_by_byte);
    tcase_add_test(tc, test_reuse_after_error);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *runner = srunner_create(protocol_suite());
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
