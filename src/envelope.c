/* envelope.c - recognising the {"id":...,"message":...} envelope that the
 * stream's publish function sends, and comparing stream entry IDs. See
 * envelope.h; main.c unwraps live payloads with it before message_parse(). */
#include "envelope.h"

#include <stdio.h>
#include <string.h>

static bool envelope_digits(const char *text, size_t len, uint64_t *out)
{
    if (len == 0 || len > 20)
        return false;
    uint64_t value = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        uint64_t digit = (uint64_t)(text[i] - '0');
        if (value > (UINT64_MAX - digit) / 10)
            return false;
        value = value * 10 + digit;
    }
    *out = value;
    return true;
}

bool envelope_id_parse(const char *text, size_t len, struct envelope_id *id)
{
    const char *dash = memchr(text, '-', len);
    if (dash == NULL)
        return false;
    size_t ms_len = (size_t)(dash - text);
    struct envelope_id parsed;
    if (!envelope_digits(text, ms_len, &parsed.ms) ||
        !envelope_digits(dash + 1, len - ms_len - 1, &parsed.seq))
        return false;
    *id = parsed;
    return true;
}

int envelope_id_compare(const struct envelope_id *a, const struct envelope_id *b)
{
    if (a->ms != b->ms)
        return a->ms < b->ms ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return 0;
}

char *envelope_id_format(const struct envelope_id *id, char *buf)
{
    snprintf(buf, ENVELOPE_ID_MAX, "%llu-%llu", (unsigned long long)id->ms,
             (unsigned long long)id->seq);
    return buf;
}

/* A cursor over the envelope's fixed grammar. */
struct envelope_scan {
    const char *at;
    const char *end;
};

static void envelope_skip_space(struct envelope_scan *scan)
{
    while (scan->at < scan->end &&
           (*scan->at == ' ' || *scan->at == '\t' || *scan->at == '\n' || *scan->at == '\r'))
        scan->at++;
}

/* Skips whitespace, then consumes token; false when it is not next. */
static bool envelope_expect(struct envelope_scan *scan, const char *token)
{
    envelope_skip_space(scan);
    size_t len = strlen(token);
    if ((size_t)(scan->end - scan->at) < len || memcmp(scan->at, token, len) != 0)
        return false;
    scan->at += len;
    return true;
}

enum envelope_result envelope_unwrap(const char *text, size_t len, struct envelope_id *id,
                                     const char **message, size_t *message_len)
{
    struct envelope_scan scan = {text, text + len};
    if (!envelope_expect(&scan, "{") || !envelope_expect(&scan, "\"id\""))
        return ENVELOPE_NONE;
    if (!envelope_expect(&scan, ":") || !envelope_expect(&scan, "\""))
        return ENVELOPE_INVALID;
    const char *id_start = scan.at;
    const char *quote = memchr(id_start, '"', (size_t)(scan.end - id_start));
    if (quote == NULL || !envelope_id_parse(id_start, (size_t)(quote - id_start), id))
        return ENVELOPE_INVALID;
    scan.at = quote + 1;
    if (!envelope_expect(&scan, ",") || !envelope_expect(&scan, "\"message\"") ||
        !envelope_expect(&scan, ":"))
        return ENVELOPE_INVALID;
    envelope_skip_space(&scan);
    /* The message runs to the last closing brace; trailing whitespace after it. */
    const char *last = scan.end;
    while (last > scan.at && (last[-1] == ' ' || last[-1] == '\t' || last[-1] == '\n' ||
                              last[-1] == '\r'))
        last--;
    if (last <= scan.at || last[-1] != '}')
        return ENVELOPE_INVALID;
    last--;
    while (last > scan.at && (last[-1] == ' ' || last[-1] == '\t' || last[-1] == '\n' ||
                              last[-1] == '\r'))
        last--;
    if (last == scan.at)
        return ENVELOPE_INVALID;
    *message = scan.at;
    *message_len = (size_t)(last - scan.at);
    return ENVELOPE_OK;
}
