/* reply.c - RESP2/RESP3 reply encoding into a reply_buffer (see reply.h). */
#include "reply.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define REPLY_BUFFER_MIN (4 * 1024)   /* first allocation: a batch of small replies */
#define REPLY_BUFFER_KEEP (64 * 1024) /* an emptied buffer above this is freed */
#define NUMBER_LINE_MAX 32            /* "$-9223372036854775808\r\n" and shorter */

void reply_buffer_free(struct reply_buffer *out)
{
    bool resp3 = out->resp3;
    free(out->data);
    memset(out, 0, sizeof(*out));
    out->resp3 = resp3;
}

void reply_buffer_drain(struct reply_buffer *out, size_t len)
{
    out->start += len;
    if (out->start < out->end)
        return;
    out->start = out->end = 0;
    if (out->capacity > REPLY_BUFFER_KEEP)
        reply_buffer_free(out);
}

void reply_buffer_limit(struct reply_buffer *out, size_t limit)
{
    out->limit = limit;
    out->over = false;
}

void reply_buffer_truncate(struct reply_buffer *out, size_t length)
{
    if (length < out->end - out->start)
        out->end = out->start + length;
}

/* Makes room for need more bytes after end: moves the pending bytes to the
 * front when at least as many have been sent (so a move never costs more
 * than the sending did), else grows by doubling. Cannot fail. */
static void make_room(struct reply_buffer *out, size_t need)
{
    size_t pending = out->end - out->start;
    if (out->start > 0 && out->start >= pending) {
        memmove(out->data, out->data + out->start, pending);
        out->start = 0;
        out->end = pending;
        if (out->capacity - out->end >= need)
            return;
    }
    size_t required = out->end + need;
    size_t capacity = out->capacity > REPLY_BUFFER_MIN ? out->capacity : REPLY_BUFFER_MIN;
    while (capacity < required)
        capacity = capacity <= SIZE_MAX / 2 ? capacity * 2 : required;
    out->data = xrealloc(out->data, capacity);
    out->capacity = capacity;
}

/* Reserves need bytes at the end of the pending output and returns where
 * they go; the caller writes exactly need bytes there. Returns NULL (and
 * sets over) when that would pass the buffer's limit; the caller then
 * writes nothing. */
static char *append_space(struct reply_buffer *out, size_t need)
{
    if (out->limit != 0 && (out->over || need > out->limit ||
                            out->end - out->start > out->limit - need)) {
        out->over = true;
        return NULL;
    }
    if (out->capacity - out->end < need)
        make_room(out, need);
    char *at = out->data + out->end;
    out->end += need;
    return at;
}

void reply_buffer_add(struct reply_buffer *out, const void *data, size_t len)
{
    char *at = len > 0 ? append_space(out, len) : NULL;
    if (at != NULL)
        memcpy(at, data, len);
}

/* Formats "<prefix><number>\r\n" without printf into the end of
 * line[NUMBER_LINE_MAX]; returns where it starts. */
static char *format_number_line(char line[NUMBER_LINE_MAX], char prefix, long long value)
{
    char *cursor = line + NUMBER_LINE_MAX;
    *--cursor = '\n';
    *--cursor = '\r';
    unsigned long long magnitude = value < 0 ? 0ull - (unsigned long long)value : (unsigned long long)value;
    do {
        *--cursor = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude != 0);
    if (value < 0)
        *--cursor = '-';
    *--cursor = prefix;
    return cursor;
}

static void add_number_line(struct reply_buffer *out, char prefix, long long value)
{
    char line[NUMBER_LINE_MAX];
    char *text = format_number_line(line, prefix, value);
    reply_buffer_add(out, text, (size_t)(line + NUMBER_LINE_MAX - text));
}

/* Appends prefix, text[0..len) and CRLF with one reservation. */
static void add_line(struct reply_buffer *out, char prefix, const char *text, size_t len)
{
    char *at = append_space(out, len + 3);
    if (at == NULL)
        return;
    at[0] = prefix;
    memcpy(at + 1, text, len);
    at[len + 1] = '\r';
    at[len + 2] = '\n';
}

void reply_status(struct reply_buffer *out, const char *status)
{
    add_line(out, '+', status, strlen(status));
}

void reply_error(struct reply_buffer *out, const char *fmt, ...)
{
    char text[512];
    va_list args;
    va_start(args, fmt);
    int len = vsnprintf(text, sizeof(text), fmt, args);
    va_end(args);
    if (len < 0)
        len = 0;
    if ((size_t)len >= sizeof(text))
        len = (int)sizeof(text) - 1;
    /* A reply line must not be broken by what a client sent us. */
    for (int i = 0; i < len; i++) {
        if (text[i] == '\r' || text[i] == '\n')
            text[i] = ' ';
    }
    add_line(out, '-', text, (size_t)len);
}

void reply_bulk(struct reply_buffer *out, const void *data, size_t len)
{
    char line[NUMBER_LINE_MAX];
    char *header = format_number_line(line, '$', (long long)len);
    size_t header_len = (size_t)(line + NUMBER_LINE_MAX - header);
    char *at = append_space(out, header_len + len + 2);
    if (at == NULL)
        return;
    memcpy(at, header, header_len);
    if (len > 0)
        memcpy(at + header_len, data, len);
    at[header_len + len] = '\r';
    at[header_len + len + 1] = '\n';
}

void reply_bulk_string(struct reply_buffer *out, const char *text)
{
    reply_bulk(out, text, strlen(text));
}

void reply_nil(struct reply_buffer *out)
{
    if (out->resp3)
        reply_buffer_add(out, "_\r\n", 3);
    else
        reply_buffer_add(out, "$-1\r\n", 5);
}

void reply_integer(struct reply_buffer *out, long long value)
{
    add_number_line(out, ':', value);
}

void reply_array(struct reply_buffer *out, size_t count)
{
    add_number_line(out, '*', (long long)count);
}

void reply_map(struct reply_buffer *out, size_t count)
{
    if (out->resp3)
        add_number_line(out, '%', (long long)count);
    else
        add_number_line(out, '*', (long long)(2 * count));
}
