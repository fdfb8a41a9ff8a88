/* yaml_reader.c - libyaml events pulled from a buffer, errors as FILE:LINE:COLUMN.
 *
 * The event source of the config loader (config.c): it owns the libyaml
 * parser, frames the one document, refuses aliases, and turns libyaml's
 * problems into positioned messages. What the keys mean is config.c's. */
#include "yaml_reader.h"

#include <stdio.h>
#include <string.h>

#include "util.h"

int yaml_reader_failv(struct yaml_reader *reader, const yaml_mark_t *mark, const char *fmt,
                      va_list ap)
{
    int n;
    if (reader->error[0] != '\0')
        return -1;
    if (mark != NULL)
        n = snprintf(reader->error, ERROR_MAX, "%s:%zu:%zu: ", reader->name, mark->line + 1,
                     mark->column + 1);
    else
        n = snprintf(reader->error, ERROR_MAX, "%s: ", reader->name);
    if (n >= 0 && n < ERROR_MAX)
        vsnprintf(reader->error + n, ERROR_MAX - (size_t)n, fmt, ap);
    return -1;
}

int yaml_reader_fail(struct yaml_reader *reader, const yaml_mark_t *mark, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    yaml_reader_failv(reader, mark, fmt, ap);
    va_end(ap);
    return -1;
}

/* libyaml's reader reports a byte offset, not a mark: count lines and
 * characters (UTF-8 lead bytes) up to it. */
static yaml_mark_t mark_at_offset(const char *text, size_t len, size_t offset)
{
    yaml_mark_t mark = {offset, 0, 0};
    if (offset > len)
        offset = len;
    for (size_t i = 0; i < offset; i++) {
        if (text[i] == '\n') {
            mark.line++;
            mark.column = 0;
        } else if (((unsigned char)text[i] & 0xC0) != 0x80) {
            mark.column++;
        }
    }
    return mark;
}

static int syntax_error(struct yaml_reader *reader, const yaml_parser_t *p)
{
    const char *problem = p->problem ? p->problem : "malformed YAML";
    if (p->error == YAML_MEMORY_ERROR)
        return yaml_reader_fail(reader, NULL, "out of memory while parsing");
    if (p->error == YAML_READER_ERROR) {
        yaml_mark_t mark = mark_at_offset(reader->text, reader->len, p->problem_offset);
        return yaml_reader_fail(reader, &mark, "syntax error: %s", problem);
    }
    if (p->problem_mark.index < reader->len && reader->text[p->problem_mark.index] == '\t')
        return yaml_reader_fail(reader, &p->problem_mark,
                                "syntax error: %s (a tab: indent YAML with spaces)", problem);
    if (p->context != NULL) {
        /* `tenants: *` is the likely cause: YAML reads a lone star as an alias */
        const char *hint = strcmp(p->context, "while scanning an alias") == 0
                               ? "; write a lone * as \"*\""
                               : "";
        return yaml_reader_fail(reader, &p->problem_mark, "syntax error: %s (%s at %zu:%zu%s)",
                                problem, p->context, p->context_mark.line + 1,
                                p->context_mark.column + 1, hint);
    }
    return yaml_reader_fail(reader, &p->problem_mark, "syntax error: %s", problem);
}

/* The first pass of yaml_reader_open(), with a parser of its own. */
static int check_syntax(struct yaml_reader *reader)
{
    yaml_parser_t parser;
    yaml_event_t event;
    bool end = false;
    int rc = 0;

    if (!yaml_parser_initialize(&parser))
        return yaml_reader_fail(reader, NULL, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)reader->text, reader->len);
    while (!end) {
        if (!yaml_parser_parse(&parser, &event)) {
            rc = syntax_error(reader, &parser);
            break;
        }
        end = event.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&event);
    }
    yaml_parser_delete(&parser);
    return rc;
}

int yaml_reader_open(struct yaml_reader *reader, const char *name, const char *text, size_t len,
                     char *error)
{
    memset(reader, 0, sizeof(*reader));
    reader->name = name;
    reader->text = text ? text : "";
    reader->len = text ? len : 0;
    reader->error = error;
    reader->error[0] = '\0';
    if (!yaml_parser_initialize(&reader->parser))
        return yaml_reader_fail(reader, NULL, "out of memory");
    reader->parser_ready = true;
    yaml_parser_set_input_string(&reader->parser, (const unsigned char *)reader->text,
                                 reader->len);
    return check_syntax(reader);
}

void yaml_reader_close(struct yaml_reader *reader)
{
    if (reader->parser_ready)
        yaml_parser_delete(&reader->parser);
    reader->parser_ready = false;
}

int yaml_reader_next(struct yaml_reader *reader, yaml_event_t *event)
{
    if (!yaml_parser_parse(&reader->parser, event))
        return syntax_error(reader, &reader->parser);
    if (event->type == YAML_ALIAS_EVENT) {
        yaml_mark_t mark = event->start_mark;
        yaml_event_delete(event);
        return yaml_reader_fail(reader, &mark, "aliases are not supported");
    }
    return 0;
}

int yaml_reader_root(struct yaml_reader *reader, yaml_event_t *root)
{
    yaml_event_t event;

    if (yaml_reader_next(reader, &event) < 0) /* stream start */
        return -1;
    yaml_event_delete(&event);
    if (yaml_reader_next(reader, &event) < 0)
        return -1;
    if (event.type == YAML_STREAM_END_EVENT) { /* empty, or only comments */
        yaml_event_delete(&event);
        return 0;
    }
    yaml_event_delete(&event); /* document start */
    return yaml_reader_next(reader, root) < 0 ? -1 : 1;
}

int yaml_reader_end(struct yaml_reader *reader)
{
    yaml_event_t event;
    int rc;

    if (yaml_reader_next(reader, &event) < 0) /* document end */
        return -1;
    yaml_event_delete(&event);
    if (yaml_reader_next(reader, &event) < 0)
        return -1;
    rc = event.type == YAML_STREAM_END_EVENT
             ? 0
             : yaml_reader_fail(reader, &event.start_mark, "only one YAML document is allowed");
    yaml_event_delete(&event);
    return rc;
}

const char *yaml_reader_describe(const yaml_event_t *event)
{
    switch (event->type) {
    case YAML_MAPPING_START_EVENT:
        return "a mapping";
    case YAML_SEQUENCE_START_EVENT:
        return "a list";
    case YAML_SCALAR_EVENT:
        return "a scalar";
    default:
        return "nothing";
    }
}

const char *yaml_reader_scalar(const yaml_event_t *event)
{
    return (const char *)event->data.scalar.value;
}

bool yaml_reader_is_null(const yaml_event_t *event)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    if (event->type != YAML_SCALAR_EVENT || event->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(nulls); i++) {
        if (strcmp(yaml_reader_scalar(event), nulls[i]) == 0)
            return true;
    }
    return false;
}

int yaml_reader_scalar_text(struct yaml_reader *reader, const char *name,
                            const yaml_event_t *event, const char **text)
{
    *text = yaml_reader_scalar(event);
    if (strlen(*text) != event->data.scalar.length)
        return yaml_reader_fail(reader, &event->start_mark, "'%s' contains a NUL byte", name);
    return 0;
}
