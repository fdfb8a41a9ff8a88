/* command_docs.c - COMMAND, COMMAND COUNT/INFO/DOCS/LIST in redis-server 7's
 * shapes (docs/reference.md §4), read from commands.c's one command table.
 *
 * redis-cli asks COMMAND (7.0) or COMMAND DOCS (7.2 and later) when it starts
 * interactively, for completion, argument hints and HELP; client libraries
 * ask COMMAND INFO for a command's flags. A row's argument syntax
 * ("tenant [kind key]") is parsed here into redis-server's argument maps. */
#include <stdio.h>
#include <string.h>

#include "command_call.h"
#include "protocol.h"
#include "reply.h"
#include "util.h"

#define DOC_ARGS_MAX 24
#define DOC_NAME_MAX 48

/* One argument of a command's syntax; children are linked by next. */
struct doc_arg {
    char name[DOC_NAME_MAX];
    const char *type;   /* "string", "integer", "pure-token", "block", "oneof" */
    char token[DOC_NAME_MAX];
    bool optional;
    bool multiple;
    int first_child;    /* -1: none */
    int next;           /* -1: last sibling */
};

struct doc_parse {
    const char *text;
    size_t pos;
    struct doc_arg args[DOC_ARGS_MAX];
    int count;
};

static bool is_token(const char *word, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!((word[i] >= 'A' && word[i] <= 'Z') || word[i] == '-' || word[i] == '|'))
            return false;
    }
    return len > 0;
}

static int new_arg(struct doc_parse *parse)
{
    if (parse->count == DOC_ARGS_MAX)
        return -1;
    struct doc_arg *arg = &parse->args[parse->count];
    memset(arg, 0, sizeof(*arg));
    arg->type = "string";
    arg->first_child = arg->next = -1;
    return parse->count++;
}

static void copy_lower(char *to, const char *from, size_t len)
{
    if (len >= DOC_NAME_MAX)
        len = DOC_NAME_MAX - 1;
    for (size_t i = 0; i < len; i++)
        to[i] = (char)(from[i] >= 'A' && from[i] <= 'Z' ? from[i] + 32 : from[i]);
    to[len] = '\0';
}

static void copy_text(char *to, const char *from, size_t len)
{
    if (len >= DOC_NAME_MAX)
        len = DOC_NAME_MAX - 1;
    memcpy(to, from, len);
    to[len] = '\0';
}

static int parse_list(struct doc_parse *parse, char end);

/* One word: "name", "name:integer", "name...", "TOKEN", "A|B|C". */
static int parse_word(struct doc_parse *parse)
{
    const char *word = parse->text + parse->pos;
    size_t len = strcspn(word, " []");
    parse->pos += len;
    bool multiple = len > 3 && memcmp(word + len - 3, "...", 3) == 0;
    if (multiple)
        len -= 3;
    int index = new_arg(parse);
    if (index < 0)
        return -1;
    struct doc_arg *arg = &parse->args[index];
    arg->multiple = multiple;
    const char *colon = memchr(word, ':', len);
    if (colon != NULL) {
        arg->type = strncmp(colon + 1, "integer", 7) == 0 ? "integer" : "string";
        len = (size_t)(colon - word);
    }
    if (is_token(word, len) && memchr(word, '|', len) != NULL) {
        /* A choice of tokens. */
        arg->type = "oneof";
        copy_text(arg->name, "subcommand", strlen("subcommand"));
        int *link = &arg->first_child;
        for (size_t at = 0; at < len;) {
            size_t part = strcspn(word + at, "|");
            if (at + part > len)
                part = len - at;
            int child = new_arg(parse);
            if (child < 0)
                return index;
            copy_lower(parse->args[child].name, word + at, part);
            copy_text(parse->args[child].token, word + at, part);
            parse->args[child].type = "pure-token";
            *link = child;
            link = &parse->args[child].next;
            at += part + 1;
        }
        return index;
    }
    if (is_token(word, len)) {
        arg->type = "pure-token";
        copy_text(arg->token, word, len);
    }
    copy_lower(arg->name, word, len);
    return index;
}

/* "[ ... ]": one optional argument, a token and its value, or a block. */
static int parse_optional(struct doc_parse *parse)
{
    parse->pos++; /* '[' */
    int first = parse_list(parse, ']');
    if (parse->text[parse->pos] == ']')
        parse->pos++;
    if (first < 0)
        return -1;
    struct doc_arg *head = &parse->args[first];
    if (head->next < 0) {
        head->optional = true;
        return first;
    }
    struct doc_arg *second = &parse->args[head->next];
    if (strcmp(head->type, "pure-token") == 0 && second->next < 0) {
        /* "[SETNAME clientname]": the value, introduced by its token. */
        memcpy(second->token, head->token, sizeof(second->token));
        second->optional = true;
        return head->next;
    }
    int index = new_arg(parse);
    if (index < 0)
        return first;
    struct doc_arg *block = &parse->args[index];
    block->type = "block";
    block->optional = true;
    if (strcmp(head->type, "pure-token") == 0) {
        memcpy(block->token, head->token, sizeof(block->token));
        memcpy(block->name, head->name, sizeof(block->name));
        block->first_child = head->next;
    } else {
        copy_text(block->name, "block", 5);
        block->first_child = first;
    }
    return index;
}

/* Siblings up to end (or the end of the text); returns the first, or -1. */
static int parse_list(struct doc_parse *parse, char end)
{
    int first = -1, last = -1;
    for (;;) {
        while (parse->text[parse->pos] == ' ')
            parse->pos++;
        char c = parse->text[parse->pos];
        if (c == '\0' || c == end || c == ']')
            return first;
        int index = c == '[' ? parse_optional(parse) : parse_word(parse);
        if (index < 0)
            return first;
        if (last >= 0)
            parse->args[last].next = index;
        else
            first = index;
        last = index;
    }
}

/* Writes the argument maps of the siblings starting at first. */
static void reply_args(struct reply_buffer *out, const struct doc_parse *parse, int first)
{
    size_t count = 0;
    for (int i = first; i >= 0; i = parse->args[i].next)
        count++;
    reply_array(out, count);
    for (int i = first; i >= 0; i = parse->args[i].next) {
        const struct doc_arg *arg = &parse->args[i];
        size_t fields = 3 + (arg->token[0] != '\0') + (arg->optional || arg->multiple) +
                        (arg->first_child >= 0);
        reply_map(out, fields);
        reply_bulk_string(out, "name");
        reply_bulk_string(out, arg->name);
        reply_bulk_string(out, "type");
        reply_bulk_string(out, arg->type);
        reply_bulk_string(out, "display_text");
        reply_bulk_string(out, arg->name);
        if (arg->token[0] != '\0') {
            reply_bulk_string(out, "token");
            reply_bulk_string(out, arg->token);
        }
        if (arg->optional || arg->multiple) {
            reply_bulk_string(out, "flags");
            reply_array(out, (size_t)arg->optional + (size_t)arg->multiple);
            if (arg->optional)
                reply_status(out, "optional");
            if (arg->multiple)
                reply_status(out, "multiple");
        }
        if (arg->first_child >= 0) {
            reply_bulk_string(out, "arguments");
            reply_args(out, parse, arg->first_child);
        }
    }
}

static void copy_name_lower(const struct command *command, char *name)
{
    copy_lower(name, command->name, strlen(command->name));
}

static int command_arity(const struct command *command)
{
    return command->max_args == command->min_args ? command->min_args : -command->min_args;
}

/* COMMAND INFO's 10-element description of one command. */
static void reply_info(struct reply_buffer *out, const struct command *command)
{
    static const struct {
        unsigned flag;
        const char *name;
    } flags[] = {
        {COMMAND_READONLY, "readonly"}, {COMMAND_ADMIN, "admin"}, {COMMAND_FAST, "fast"},
        {COMMAND_STALE, "stale"},       {COMMAND_LOADING, "loading"},
    };
    char name[DOC_NAME_MAX];
    copy_name_lower(command, name);
    reply_array(out, 10);
    reply_bulk_string(out, name);
    reply_integer(out, command_arity(command));
    size_t flag_count = 0;
    for (size_t i = 0; i < UTIL_ARRAY_LEN(flags); i++)
        flag_count += (command->flags & flags[i].flag) != 0;
    reply_array(out, flag_count);
    for (size_t i = 0; i < UTIL_ARRAY_LEN(flags); i++) {
        if (command->flags & flags[i].flag)
            reply_status(out, flags[i].name);
    }
    reply_integer(out, 0); /* first key: none of this daemon's arguments is a Redis key */
    reply_integer(out, 0); /* last key */
    reply_integer(out, 0); /* step */
    bool readonly = (command->flags & COMMAND_READONLY) != 0;
    reply_array(out, readonly ? 1 : 0);
    if (readonly)
        reply_status(out, "@read");
    reply_array(out, 0); /* tips */
    reply_array(out, 0); /* key specs */
    reply_array(out, 0); /* subcommands */
}

/* COMMAND DOCS's name and map for one command. */
static void reply_docs(struct reply_buffer *out, const struct command *command)
{
    char name[DOC_NAME_MAX];
    copy_name_lower(command, name);
    reply_bulk_string(out, name);
    struct doc_parse parse = {.text = command->arguments};
    int first = parse_list(&parse, '\0');
    reply_map(out, first >= 0 ? 4 : 3);
    reply_bulk_string(out, "summary");
    reply_bulk_string(out, command->summary);
    reply_bulk_string(out, "since");
    reply_bulk_string(out, command->since);
    reply_bulk_string(out, "group");
    reply_bulk_string(out, command->group);
    if (first >= 0) {
        reply_bulk_string(out, "arguments");
        reply_args(out, &parse, first);
    }
}

static void reply_help(struct reply_buffer *out)
{
    static const char *const lines[] = {
        "COMMAND <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "(no subcommand)",
        "    Return details about all commands.",
        "COUNT",
        "    Return the total number of commands.",
        "DOCS [<command-name> ...]",
        "    Return documentary information about commands (all by default).",
        "INFO [<command-name> ...]",
        "    Return details about the given commands (all by default).",
        "LIST",
        "    Return the names of all commands.",
        "HELP",
        "    Print this help.",
    };
    reply_array(out, UTIL_ARRAY_LEN(lines));
    for (size_t i = 0; i < UTIL_ARRAY_LEN(lines); i++)
        reply_status(out, lines[i]);
}

void command_docs_command(struct command_call *call)
{
    struct reply_buffer *out = call->out;
    size_t argc = call->request->argc, len;
    if (argc == 1) {
        reply_array(out, commands_table_count);
        for (size_t i = 0; i < commands_table_count; i++)
            reply_info(out, &commands_table[i]);
        return;
    }
    const char *sub = commands_arg(call, 1, &len);
    if (util_equal_nocase(sub, len, "COUNT") && argc == 2) {
        reply_integer(out, (long long)commands_table_count);
    } else if (util_equal_nocase(sub, len, "LIST") && argc == 2) {
        reply_array(out, commands_table_count);
        for (size_t i = 0; i < commands_table_count; i++) {
            char name[DOC_NAME_MAX];
            copy_name_lower(&commands_table[i], name);
            reply_bulk_string(out, name);
        }
    } else if (util_equal_nocase(sub, len, "INFO")) {
        /* An unknown name answers nil in its place, as redis-server does. */
        if (argc == 2) {
            reply_array(out, commands_table_count);
            for (size_t i = 0; i < commands_table_count; i++)
                reply_info(out, &commands_table[i]);
            return;
        }
        reply_array(out, argc - 2);
        for (size_t i = 2; i < argc; i++) {
            const char *name = commands_arg(call, i, &len);
            const struct command *command = commands_find(name, len);
            if (command != NULL)
                reply_info(out, command);
            else
                reply_nil(out);
        }
    } else if (util_equal_nocase(sub, len, "DOCS")) {
        /* Unknown names are left out, as redis-server does. */
        size_t found = 0;
        for (size_t i = 2; i < argc; i++) {
            const char *name = commands_arg(call, i, &len);
            found += commands_find(name, len) != NULL;
        }
        reply_map(out, argc == 2 ? commands_table_count : found);
        if (argc == 2) {
            for (size_t i = 0; i < commands_table_count; i++)
                reply_docs(out, &commands_table[i]);
            return;
        }
        for (size_t i = 2; i < argc; i++) {
            const char *name = commands_arg(call, i, &len);
            const struct command *command = commands_find(name, len);
            if (command != NULL)
                reply_docs(out, command);
        }
    } else if (util_equal_nocase(sub, len, "HELP") && argc == 2) {
        reply_help(out);
    } else {
        char shown[64];
        commands_quote(sub, len, shown, sizeof(shown));
        reply_error(out, "ERR unknown subcommand '%s'. Try COMMAND HELP.", shown);
    }
}
