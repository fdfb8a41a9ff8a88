/* fuzz_protocol.c - libFuzzer target for the RESP2 request parser.
 *
 * The first input byte picks small limits, the second seeds the read sizes;
 * the rest is the byte stream a client sends. The stream is parsed twice:
 * whole, and in pseudo-random reads into a buffer reallocated at every read
 * (as a connection's input buffer may move). Both runs must report the same
 * requests, skips and error: the parser's verdict must not depend on how the
 * bytes were split. Each result is checked against the limits and the buffer.
 *
 *   clang -std=c11 -g -O1 -fsanitize=fuzzer,address,undefined -Iinclude -D_GNU_SOURCE \
 *       tests/fuzz/fuzz_protocol.c src/protocol.c src/util.c src/log.c -o /tmp/fuzz_protocol
 *   /tmp/fuzz_protocol -max_total_time=60 tests/fuzz/corpus/protocol */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* What one run reported, flattened into bytes for comparison. */
struct transcript {
    uint8_t *data;
    size_t len;
    size_t cap;
};

static void record(struct transcript *t, const void *bytes, size_t n)
{
    if (t->len + n > t->cap) {
        t->cap = (t->len + n) * 2 + 64;
        t->data = realloc(t->data, t->cap);
        CHECK(t->data != NULL);
    }
    memcpy(t->data + t->len, bytes, n);
    t->len += n;
}

static void record_size(struct transcript *t, size_t value)
{
    record(t, &value, sizeof(value));
}

/* Checks one result against the invariants and appends it to t. Returns 1
 * when the caller should parse again, 0 when it should wait or stop. */
static int check_result(struct transcript *t, const struct protocol_parser *parser,
                        const struct protocol_limits *limits, enum protocol_status status,
                        const char *buf, size_t len, size_t consumed,
                        const struct protocol_request *request)
{
    CHECK(consumed <= len);
    switch (status) {
    case PROTOCOL_INCOMPLETE:
        CHECK(consumed == 0);
        return 0;
    case PROTOCOL_ERROR:
        CHECK(consumed == 0);
        CHECK(parser->error != NULL);
        record(t, "E", 1);
        record(t, parser->error, strlen(parser->error) + 1);
        return 0;
    case PROTOCOL_SKIP:
        CHECK(consumed > 0);
        record(t, "S", 1);
        record_size(t, consumed);
        return 1;
    case PROTOCOL_REQUEST: {
        CHECK(consumed > 0);
        CHECK(request->argc >= 1);
        CHECK(request->argc <= limits->max_args);
        record(t, "R", 1);
        record_size(t, consumed);
        record_size(t, request->argc);
        uint64_t total = 0;
        for (size_t i = 0; i < request->argc; i++) {
            const char *arg = request->argv[i];
            size_t arg_len = request->argv_len[i];
            CHECK(arg >= buf && arg <= buf + consumed);
            CHECK(arg_len <= (size_t)(buf + consumed - arg));
            total += arg_len;
            record_size(t, arg_len);
            record(t, arg, arg_len);
        }
        CHECK(total <= limits->max_request_bytes);
        return 1;
    }
    }
    fprintf(stderr, "unknown status %d\n", (int)status);
    abort();
}

/* Parses stream[0..len) fed in reads whose sizes come from `seed` (0: one
 * read), recording into t. */
static void run(struct transcript *t, const struct protocol_limits *limits, const uint8_t *stream,
                size_t len, uint32_t seed)
{
    struct protocol_parser parser;
    struct protocol_request request;
    char *buf = NULL;
    size_t buffered = 0, fed = 0;
    int stop = 0;
    uint32_t state = seed * 2654435761u + 1;

    protocol_parser_init(&parser, limits);
    while (fed < len && !stop) {
        size_t n = len - fed;
        if (seed != 0) {
            /* xorshift32: mostly tiny reads, sometimes larger ones */
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            size_t want = (state & 0x80) ? (state >> 8) % 64 + 1 : (state >> 8) % 4 + 1;
            if (want < n)
                n = want;
        }
        char *grown = malloc(buffered + n);
        CHECK(grown != NULL);
        if (buffered)
            memcpy(grown, buf, buffered);
        memcpy(grown + buffered, stream + fed, n);
        free(buf);
        buf = grown;
        buffered += n;
        fed += n;

        for (;;) {
            size_t consumed = (size_t)-1;
            enum protocol_status status =
                protocol_parse(&parser, buf, buffered, &consumed, &request);
            if (!check_result(t, &parser, limits, status, buf, buffered, consumed, &request)) {
                stop = status == PROTOCOL_ERROR;
                break;
            }
            memmove(buf, buf + consumed, buffered - consumed);
            buffered -= consumed;
        }
    }
    if (!stop) {
        record(t, "L", 1);
        record_size(t, buffered);
    }
    free(buf);
    protocol_parser_free(&parser);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint64_t request_limits[] = {4, 16, 64, 4096};
    struct transcript whole = {0}, split = {0};

    if (size < 2)
        return 0;
    struct protocol_limits limits = {
        .max_request_bytes = request_limits[(data[0] >> 3) & 3],
        .max_args = data[0] & 7,
    };
    uint32_t seed = (uint32_t)data[1] + 1;

    run(&whole, &limits, data + 2, size - 2, 0);
    run(&split, &limits, data + 2, size - 2, seed);
    CHECK(whole.len == split.len);
    CHECK(whole.len == 0 || memcmp(whole.data, split.data, whole.len) == 0);
    free(whole.data);
    free(split.data);
    return 0;
}
