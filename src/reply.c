/* reply.c - RESP2 reply encoding (see reply.h). */
#include "reply.h"

#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Writes "<prefix><number>\r\n" without going through printf. */
static void add_number_line(struct evbuffer *out, char prefix, long long value)
{
    char line[32];
    char *end = line + sizeof(line);
    char *cursor = end;
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
    evbuffer_add(out, cursor, (size_t)(end - cursor));
}

void reply_status(struct evbuffer *out, const char *status)
{
    evbuffer_add(out, "+", 1);
    evbuffer_add(out, status, strlen(status));
    evbuffer_add(out, "\r\n", 2);
}

void reply_error(struct evbuffer *out, const char *fmt, ...)
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
    evbuffer_add(out, "-", 1);
    evbuffer_add(out, text, (size_t)len);
    evbuffer_add(out, "\r\n", 2);
}

void reply_bulk(struct evbuffer *out, const void *data, size_t len)
{
    add_number_line(out, '$', (long long)len);
    evbuffer_add(out, data, len);
    evbuffer_add(out, "\r\n", 2);
}

void reply_bulk_string(struct evbuffer *out, const char *text)
{
    reply_bulk(out, text, strlen(text));
}

void reply_nil(struct evbuffer *out)
{
    evbuffer_add(out, "$-1\r\n", 5);
}

void reply_integer(struct evbuffer *out, long long value)
{
    add_number_line(out, ':', value);
}

void reply_array(struct evbuffer *out, size_t count)
{
    add_number_line(out, '*', (long long)count);
}
