/* yaml_reader.h - libyaml events pulled from a buffer, errors as FILE:LINE:COLUMN.
 *
 * The config loader (config.c) walks the events itself, against its key
 * tables; this module hands it the events of one YAML document, refuses
 * aliases, reports syntax errors with their position (and a hint for the
 * usual mistakes), and keeps the first error in the caller's buffer
 * (errors.h). Single-threaded: one reader per load. */
#ifndef TENANTCACHED_YAML_READER_H
#define TENANTCACHED_YAML_READER_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "errors.h"

struct yaml_reader {
    yaml_parser_t parser;
    bool parser_ready;
    const char *name;   /* stands for the file in messages; borrowed */
    const char *text;   /* borrowed; must outlive the reader */
    size_t len;
    char *error;        /* the caller's error[ERROR_MAX] */
};

/* Prepares to read text[0..len) (NULL: empty), clearing error. A first pass
 * over the whole text reports a syntax error before the caller looks at any
 * key, so that a file that is not YAML says so rather than complaining about
 * a key before the bad line. Returns 0, or -1 with the message in error.
 * Call yaml_reader_close() in both cases. */
int yaml_reader_open(struct yaml_reader *reader, const char *name, const char *text, size_t len,
                     char *error);
void yaml_reader_close(struct yaml_reader *reader);

/* Reads up to the document's root. Returns 1 with the root's first event in
 * *root (the caller deletes it), 0 when there is no document (an empty file,
 * or only comments), -1 on an error. */
int yaml_reader_root(struct yaml_reader *reader, yaml_event_t *root);

/* After the root has been consumed: the document's end, then the end of the
 * stream ("only one YAML document is allowed"). Returns 0 or -1. */
int yaml_reader_end(struct yaml_reader *reader);

/* The next event (delete it with yaml_event_delete()). Returns 0, or -1 on a
 * syntax error or an alias; the event is then not valid and must not be
 * deleted. */
int yaml_reader_next(struct yaml_reader *reader, yaml_event_t *event);

/* Writes "NAME:LINE:COLUMN: message" (or "NAME: message" when mark is NULL)
 * unless an error is already written: the first error is the one reported.
 * Returns -1, so that callers can `return yaml_reader_fail(...)`. */
int yaml_reader_fail(struct yaml_reader *reader, const yaml_mark_t *mark, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int yaml_reader_failv(struct yaml_reader *reader, const yaml_mark_t *mark, const char *fmt,
                      va_list ap) __attribute__((format(printf, 3, 0)));

/* "a mapping", "a list", "a scalar" or "nothing", for messages. */
const char *yaml_reader_describe(const yaml_event_t *event);

/* A scalar event's text (NUL-terminated by libyaml). */
const char *yaml_reader_scalar(const yaml_event_t *event);

/* An empty plain scalar, `~` or `null`: YAML's null. */
bool yaml_reader_is_null(const yaml_event_t *event);

/* The scalar's text in *text, or -1 (and an error naming `name`) when it
 * holds a NUL byte, which YAML allows in a quoted scalar and C strings do not. */
int yaml_reader_scalar_text(struct yaml_reader *reader, const char *name,
                            const yaml_event_t *event, const char **text);

#endif
