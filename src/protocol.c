/* protocol.c - incremental, bounded RESP2 request parser (multibulk and inline).
 *
 * Follows redis-server's processMultibulkBuffer()/processInlineBuffer(), with
 * two differences: every declared length is checked against the limits the
 * moment its header line is complete (nothing ever waits for, or allocates
 * for, a length it will refuse), and the resume state lives in the parser so
 * that a request trickling in one byte per read costs O(n) overall. */
#include "protocol.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Where the current request stands. Offsets are kept rather than pointers
 * because the caller may grow (move) its buffer between calls. */
enum parse_state {
    STATE_START,     /* nothing of the next request looked at yet */
    STATE_MB_COUNT,  /* inside the "*N\r\n" line */
    STATE_BULK_LEN,  /* at or inside a "$L\r\n" line; pos is where '$' must be */
    STATE_BULK_DATA, /* waiting for bulk_len bytes at pos and their CRLF */
    STATE_INLINE,    /* waiting for the '\n' that ends an inline line */
};

/* What a step of the state machine returns besides an enum protocol_status:
 * this element is done, go on with the next one. */
#define STEP_AGAIN (-1)

enum line_result {
    LINE_DONE,     /* CRLF found; *end is the offset of the '\r' */
    LINE_MORE,     /* no CRLF yet, everything so far is plausible */
    LINE_BAD,      /* a byte that cannot belong to a length line, or CR without LF */
    LINE_TOO_LONG, /* more than PROTOCOL_INLINE_MAX bytes and still no CR */
};

/* Between requests: the limits a reload set take effect. */
static void reset(struct protocol_parser *parser)
{
    parser->limits = parser->next_limits;
    parser->state = STATE_START;
    parser->pos = 0;
    parser->scan = 0;
    parser->args_expected = 0;
    parser->args_done = 0;
    parser->bulk_len = 0;
    parser->request_bytes = 0;
}

void protocol_parser_init(struct protocol_parser *parser, const struct protocol_limits *limits)
{
    memset(parser, 0, sizeof(*parser));
    parser->next_limits = *limits;
    reset(parser);
}

void protocol_parser_set_limits(struct protocol_parser *parser, const struct protocol_limits *limits)
{
    parser->next_limits = *limits;
    if (parser->state == STATE_START && parser->scan == 0)
        parser->limits = *limits; /* no request begun */
}

void protocol_parser_free(struct protocol_parser *parser)
{
    free(parser->argv);
    free(parser->argv_len);
    free(parser->argv_off);
    parser->argv = NULL;
    parser->argv_len = NULL;
    parser->argv_off = NULL;
    parser->argv_capacity = 0;
    reset(parser);
}

static int fail(struct protocol_parser *parser, const char *error)
{
    parser->error = error;
    reset(parser);
    return PROTOCOL_ERROR;
}

/* Grows the argument vectors to hold `need` entries. The callers have already
 * checked need <= limits.max_args, so the vectors never exceed it. */
static void reserve_args(struct protocol_parser *parser, size_t need)
{
    if (need <= parser->argv_capacity)
        return;
    size_t capacity = parser->argv_capacity ? parser->argv_capacity * 2 : 8;
    if (capacity < need)
        capacity = need;
    if (capacity > parser->limits.max_args)
        capacity = parser->limits.max_args;
    parser->argv = xrealloc(parser->argv, capacity * sizeof(*parser->argv));
    parser->argv_len = xrealloc(parser->argv_len, capacity * sizeof(*parser->argv_len));
    parser->argv_off = xrealloc(parser->argv_off, capacity * sizeof(*parser->argv_off));
    parser->argv_capacity = capacity;
}

/* Scans the length line whose digits start at buf[start] for its CRLF,
 * resuming where the previous call stopped. Each byte is judged as it
 * arrives, so "*abc" fails at once instead of waiting for a CRLF. A '-' is
 * accepted only as the first byte, and only when allow_minus (for "*-1"). */
static enum line_result scan_length_line(struct protocol_parser *parser, const char *buf,
                                         size_t len, size_t start, bool allow_minus, size_t *end)
{
    size_t i = parser->scan > start ? parser->scan : start;

    for (; i < len; i++) {
        char c = buf[i];
        if (c == '\r') {
            if (i + 1 == len) {
                break; /* rescan this CR when its LF may have arrived */
            }
            if (buf[i + 1] != '\n')
                return LINE_BAD;
            *end = i;
            return LINE_DONE;
        }
        if (i - start >= PROTOCOL_INLINE_MAX)
            return LINE_TOO_LONG;
        if (!(c >= '0' && c <= '9') && !(c == '-' && allow_minus && i == start))
            return LINE_BAD;
    }
    parser->scan = i;
    return LINE_MORE;
}

/* Parses buf[0..n) as redis's string2ll() would for a non-negative number:
 * plain digits, no sign, no leading zero (except "0"). Returns false on any
 * other text or on overflow. */
static bool parse_length(const char *buf, size_t n, uint64_t *out)
{
    if (n == 0 || (buf[0] == '0' && n > 1))
        return false;
    uint64_t value = 0;
    for (size_t i = 0; i < n; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return false;
        unsigned digit = (unsigned)(buf[i] - '0');
        if (value > (UINT64_MAX - digit) / 10)
            return false;
        value = value * 10 + digit;
    }
    *out = value;
    return true;
}

static int parse_mb_count(struct protocol_parser *parser, const char *buf, size_t len,
                          size_t *consumed)
{
    size_t end = 0;
    uint64_t count = 0;

    switch (scan_length_line(parser, buf, len, 1, true, &end)) {
    case LINE_MORE:
        return PROTOCOL_INCOMPLETE;
    case LINE_BAD:
        return fail(parser, "invalid multibulk length");
    case LINE_TOO_LONG:
        return fail(parser, "too big mbulk count string");
    case LINE_DONE:
        break;
    }

    /* "*-1" (null array) and "*0" are skipped, as redis-server does. */
    bool null_array = end == 3 && buf[1] == '-' && buf[2] == '1';
    if (!null_array) {
        if (!parse_length(buf + 1, end - 1, &count) || count > parser->limits.max_args)
            return fail(parser, "invalid multibulk length");
    }
    if (null_array || count == 0) {
        *consumed = end + 2;
        reset(parser);
        return PROTOCOL_SKIP;
    }

    parser->args_expected = (size_t)count;
    parser->args_done = 0;
    parser->request_bytes = 0;
    parser->state = STATE_BULK_LEN;
    parser->pos = end + 2;
    parser->scan = 0;
    return STEP_AGAIN;
}

static int parse_bulk_len(struct protocol_parser *parser, const char *buf, size_t len)
{
    size_t start = parser->pos;
    size_t end = 0;
    uint64_t bulk_len;

    if (len <= start)
        return PROTOCOL_INCOMPLETE;
    if (buf[start] != '$') {
        unsigned char got = (unsigned char)buf[start];
        if (got >= 0x20 && got < 0x7f)
            snprintf(parser->errbuf, sizeof(parser->errbuf), "expected '$', got '%c'", got);
        else
            snprintf(parser->errbuf, sizeof(parser->errbuf), "expected '$', got '\\x%02x'", got);
        return fail(parser, parser->errbuf);
    }

    switch (scan_length_line(parser, buf, len, start + 1, false, &end)) {
    case LINE_MORE:
        return PROTOCOL_INCOMPLETE;
    case LINE_BAD:
        return fail(parser, "invalid bulk length");
    case LINE_TOO_LONG:
        return fail(parser, "too big bulk count string");
    case LINE_DONE:
        break;
    }

    if (!parse_length(buf + start + 1, end - start - 1, &bulk_len) ||
        bulk_len > parser->limits.max_request_bytes || bulk_len > SIZE_MAX - 2)
        return fail(parser, "invalid bulk length");
    if (bulk_len > parser->limits.max_request_bytes - parser->request_bytes)
        return fail(parser, "request too large");

    parser->request_bytes += bulk_len;
    reserve_args(parser, parser->args_done + 1);
    parser->argv_off[parser->args_done] = end + 2;
    parser->argv_len[parser->args_done] = (size_t)bulk_len;
    parser->bulk_len = bulk_len;
    parser->pos = end + 2;
    parser->state = STATE_BULK_DATA;
    return STEP_AGAIN;
}

static int parse_bulk_data(struct protocol_parser *parser, const char *buf, size_t len)
{
    size_t avail = len - parser->pos;
    size_t bulk_len = (size_t)parser->bulk_len;
    const char *data = buf + parser->pos;

    /* Judge the terminator bytes as soon as they are present, so that a
     * client that miscounted its bulk is told now, not after more input. */
    if (avail > bulk_len && data[bulk_len] != '\r')
        return fail(parser, "expected CRLF after bulk string");
    if (avail > bulk_len + 1 && data[bulk_len + 1] != '\n')
        return fail(parser, "expected CRLF after bulk string");
    if (avail < bulk_len + 2)
        return PROTOCOL_INCOMPLETE;

    parser->args_done++;
    parser->pos += bulk_len + 2;
    parser->scan = 0;
    parser->state = STATE_BULK_LEN;
    return STEP_AGAIN;
}

/* Separators between inline arguments: redis's sdssplitargs() splits on
 * isspace(); '\n' cannot occur inside a line. */
static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* Splits buf[0..end) into arguments the way sdssplitargs() does (double
 * quotes with \n \r \t \b \a \xHH \<any> escapes, single quotes with \'),
 * unescaping in place: an argument never grows when unescaped, so writing
 * it at its own start never overtakes the bytes still to be read. Returns
 * NULL, or the error message. */
static const char *split_inline(struct protocol_parser *parser, char *buf, size_t end)
{
    size_t i = 0;
    size_t argc = 0;
    uint64_t total = 0;

    for (;;) {
        while (i < end && is_blank(buf[i]))
            i++;
        if (i == end)
            break;
        if (argc == parser->limits.max_args)
            return "too many arguments in inline request";

        size_t start = i;
        size_t out = i;
        bool in_double = false;
        bool in_single = false;
        bool done = false;
        while (!done) {
            if (in_double) {
                if (i == end)
                    return "unbalanced quotes in request";
                char c = buf[i];
                if (c == '\\' && i + 3 < end && buf[i + 1] == 'x' && util_hex_value(buf[i + 2]) >= 0 &&
                    util_hex_value(buf[i + 3]) >= 0) {
                    buf[out++] = (char)(util_hex_value(buf[i + 2]) * 16 + util_hex_value(buf[i + 3]));
                    i += 4;
                } else if (c == '\\' && i + 1 < end) {
                    switch (buf[i + 1]) {
                    case 'n': c = '\n'; break;
                    case 'r': c = '\r'; break;
                    case 't': c = '\t'; break;
                    case 'b': c = '\b'; break;
                    case 'a': c = '\a'; break;
                    default: c = buf[i + 1]; break;
                    }
                    buf[out++] = c;
                    i += 2;
                } else if (c == '"') {
                    /* A closing quote must end the argument ("a"b is an error). */
                    if (i + 1 < end && !is_blank(buf[i + 1]))
                        return "unbalanced quotes in request";
                    i++;
                    done = true;
                } else {
                    buf[out++] = c;
                    i++;
                }
            } else if (in_single) {
                if (i == end)
                    return "unbalanced quotes in request";
                char c = buf[i];
                if (c == '\\' && i + 1 < end && buf[i + 1] == '\'') {
                    buf[out++] = '\'';
                    i += 2;
                } else if (c == '\'') {
                    if (i + 1 < end && !is_blank(buf[i + 1]))
                        return "unbalanced quotes in request";
                    i++;
                    done = true;
                } else {
                    buf[out++] = c;
                    i++;
                }
            } else if (i == end || is_blank(buf[i])) {
                done = true;
            } else if (buf[i] == '"') {
                in_double = true;
                i++;
            } else if (buf[i] == '\'') {
                in_single = true;
                i++;
            } else {
                buf[out++] = buf[i++];
            }
        }

        total += out - start;
        if (total > parser->limits.max_request_bytes)
            return "request too large";
        reserve_args(parser, argc + 1);
        parser->argv[argc] = buf + start;
        parser->argv_len[argc] = out - start;
        argc++;
    }
    parser->args_done = argc;
    return NULL;
}

static int parse_inline(struct protocol_parser *parser, char *buf, size_t len, size_t *consumed,
                        struct protocol_request *request)
{
    /* The '\n' must come within the first PROTOCOL_INLINE_MAX + 1 bytes; the
     * window is fixed so that the verdict does not depend on how the bytes
     * were split into reads. */
    size_t window = len < PROTOCOL_INLINE_MAX + 1 ? len : PROTOCOL_INLINE_MAX + 1;
    const char *newline = NULL;
    if (parser->scan < window)
        newline = memchr(buf + parser->scan, '\n', window - parser->scan);
    if (newline == NULL) {
        if (len > PROTOCOL_INLINE_MAX)
            return fail(parser, "too big inline request");
        parser->scan = len;
        return PROTOCOL_INCOMPLETE;
    }

    size_t line_len = (size_t)(newline - buf);
    size_t next = line_len + 1;
    if (line_len > 0 && buf[line_len - 1] == '\r')
        line_len--;

    const char *error = split_inline(parser, buf, line_len);
    if (error != NULL)
        return fail(parser, error);

    size_t argc = parser->args_done;
    *consumed = next;
    reset(parser);
    if (argc == 0)
        return PROTOCOL_SKIP;
    request->argc = argc;
    request->argv = parser->argv;
    request->argv_len = parser->argv_len;
    return PROTOCOL_REQUEST;
}

enum protocol_status protocol_parse(struct protocol_parser *parser, char *buf, size_t len,
                                    size_t *consumed, struct protocol_request *request)
{
    int step;

    *consumed = 0;
    parser->error = NULL;
    /* Saved offsets beyond the buffer mean the caller dropped bytes of a
     * partial request, against the contract; start over rather than read
     * outside the buffer. */
    if (parser->pos > len || parser->scan > len)
        reset(parser);

    for (;;) {
        switch (parser->state) {
        case STATE_START:
            if (len == 0)
                return PROTOCOL_INCOMPLETE;
            parser->scan = 0;
            if (buf[0] == '*') {
                parser->state = STATE_MB_COUNT;
                parser->pos = 0;
            } else {
                parser->state = STATE_INLINE;
            }
            break;
        case STATE_INLINE:
            return (enum protocol_status)parse_inline(parser, buf, len, consumed, request);
        case STATE_MB_COUNT:
            step = parse_mb_count(parser, buf, len, consumed);
            if (step != STEP_AGAIN)
                return (enum protocol_status)step;
            break;
        case STATE_BULK_LEN:
            step = parse_bulk_len(parser, buf, len);
            if (step != STEP_AGAIN)
                return (enum protocol_status)step;
            break;
        case STATE_BULK_DATA:
            step = parse_bulk_data(parser, buf, len);
            if (step != STEP_AGAIN)
                return (enum protocol_status)step;
            if (parser->args_done == parser->args_expected) {
                for (size_t i = 0; i < parser->args_done; i++)
                    parser->argv[i] = buf + parser->argv_off[i];
                request->argc = parser->args_done;
                request->argv = parser->argv;
                request->argv_len = parser->argv_len;
                *consumed = parser->pos;
                reset(parser);
                return PROTOCOL_REQUEST;
            }
            break;
        default:
            reset(parser);
            break;
        }
    }
}
