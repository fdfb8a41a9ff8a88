/* jscan.c - the strict single-pass JSON scanner of jscan.h.
 *
 * One loop over the text with an explicit stack of open containers (so a
 * hostile depth costs no C stack), writing one node per value. What jansson
 * refuses is refused here, in the same cases; the differential tests in
 * tests/unit/test_message.c and the fuzz target compare the two. */
#include "jscan.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Objects with more members than this find repeated keys by sorting them;
 * smaller ones compare every pair of key hashes. */
#define SMALL_OBJECT 16

/* Room for a real's text copied to be NUL-terminated for strtod(). */
#define NUMBER_BUF 64

struct state {
    struct jscan *scan;
    const unsigned char *text;
    size_t len;
    size_t p;
    char *error;
};

static int fail(struct state *st, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct state *st, size_t at, const char *fmt, ...)
{
    int used = snprintf(st->error, ERROR_MAX, "invalid JSON at byte %zu: ", at);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(st->error + used, ERROR_MAX - (size_t)used, fmt, ap);
    va_end(ap);
    return -1;
}

void jscan_init(struct jscan *scan, struct jscan_node *buf, size_t cap)
{
    memset(scan, 0, sizeof(*scan));
    scan->nodes = buf;
    scan->cap = cap;
}

void jscan_free(struct jscan *scan)
{
    if (scan->heap)
        free(scan->nodes);
    scan->nodes = NULL;
    scan->cap = 0;
    scan->count = 0;
    scan->heap = false;
}

/* Returns the index of a new node (its fields zeroed but start and type). */
static uint32_t node_add(struct jscan *scan, enum jscan_type type, size_t start)
{
    if (scan->count == scan->cap) {
        size_t cap = scan->cap ? scan->cap * 2 : 64;
        if (scan->heap) {
            scan->nodes = xrealloc(scan->nodes, cap * sizeof(*scan->nodes));
        } else {
            struct jscan_node *nodes = xmalloc(cap * sizeof(*nodes));
            if (scan->count > 0)
                memcpy(nodes, scan->nodes, scan->count * sizeof(*nodes));
            scan->nodes = nodes;
            scan->heap = true;
        }
        scan->cap = cap;
    }
    uint32_t i = (uint32_t)scan->count++;
    struct jscan_node *n = &scan->nodes[i];
    memset(n, 0, sizeof(*n));
    n->start = (uint32_t)start;
    n->type = (uint8_t)type;
    return i;
}

static bool is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static inline void skip_space(struct state *st)
{
    while (st->p < st->len && is_space(st->text[st->p]))
        st->p++;
}

/* The 4 hex digits at s (there must be 4 bytes), or -1. */
static int32_t hex4(const unsigned char *s)
{
    int32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int d = util_hex_value((char)s[i]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Length of the valid UTF-8 sequence at s[0..avail) (its first byte >= 0x80),
 * or 0: jansson's rules (no overlong form, no surrogate, at most U+10FFFF). */
static size_t utf8_sequence(const unsigned char *s, size_t avail)
{
    unsigned char c = s[0];
    size_t n;
    uint32_t v;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        v = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        v = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        v = c & 0x07u;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3Fu);
    }
    if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || (n == 3 && v < 0x800) ||
        (n == 4 && v < 0x10000))
        return 0;
    return n;
}

/* Scans the string whose opening quote is at st->p; st->p ends past its
 * closing quote. */
static int scan_string(struct state *st, uint32_t i)
{
    const unsigned char *t = st->text;
    size_t p = st->p + 1, len = st->len;
    bool escaped = false;
    for (;;) {
        /* the common bytes, printable ASCII, in a tight loop */
        while (p < len && t[p] >= 0x20 && t[p] < 0x80 && t[p] != '"' && t[p] != '\\')
            p++;
        if (p >= len)
            return fail(st, p, "premature end of input in a string");
        unsigned char c = t[p];
        if (c == '"')
            break;
        if (c < 0x20)
            return fail(st, p, "control character 0x%x in a string", c);
        if (c >= 0x80) {
            size_t n = utf8_sequence(t + p, len - p);
            if (n == 0)
                return fail(st, p, "invalid UTF-8");
            p += n;
            continue;
        }
        /* a backslash */
        escaped = true;
        if (p + 1 >= len)
            return fail(st, p, "premature end of input in a string");
        c = t[p + 1];
        if (c != 'u') {
            if (c != '"' && c != '\\' && c != '/' && c != 'b' && c != 'f' && c != 'n' &&
                c != 'r' && c != 't')
                return fail(st, p, "invalid escape");
            p += 2;
            continue;
        }
        int32_t code = len - p >= 6 ? hex4(t + p + 2) : -1;
        if (code < 0)
            return fail(st, p, "invalid escape");
        if (code == 0)
            return fail(st, p, "\\u0000 is not allowed");
        if (code >= 0xDC00 && code <= 0xDFFF)
            return fail(st, p, "invalid Unicode escape (a lone low surrogate)");
        if (code >= 0xD800 && code <= 0xDBFF) {
            int32_t low = len - p >= 12 && t[p + 6] == '\\' && t[p + 7] == 'u'
                              ? hex4(t + p + 8) : -1;
            if (low < 0xDC00 || low > 0xDFFF)
                return fail(st, p, "invalid Unicode escape (an unpaired high surrogate)");
            p += 6;
        }
        p += 6;
    }
    struct jscan_node *n = &st->scan->nodes[i];
    n->escaped = escaped;
    n->end = (uint32_t)(p + 1);
    n->next = i + 1;
    st->p = p + 1;
    return 0;
}

/* jansson lets one NUL byte pass right after a number or a literal (its
 * lexer puts the byte back and then reads past it). */
static void skip_nul_after_token(struct state *st)
{
    if (st->p < st->len && st->text[st->p] == '\0')
        st->p++;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int scan_number(struct state *st, uint32_t i)
{
    const unsigned char *t = st->text;
    size_t start = st->p, p = st->p, len = st->len;
    bool negative = false, integer = true;
    if (t[p] == '-') {
        negative = true;
        p++;
    }
    if (p < len && t[p] == '0') {
        p++;
        if (p < len && is_digit(t[p]))
            return fail(st, start, "invalid number (a leading zero)");
    } else if (p < len && is_digit(t[p])) {
        while (p < len && is_digit(t[p]))
            p++;
    } else {
        return fail(st, start, "invalid number");
    }
    if (p < len && t[p] == '.') {
        integer = false;
        p++;
        if (p >= len || !is_digit(t[p]))
            return fail(st, start, "invalid number");
        while (p < len && is_digit(t[p]))
            p++;
    }
    if (p < len && (t[p] == 'e' || t[p] == 'E')) {
        integer = false;
        p++;
        if (p < len && (t[p] == '+' || t[p] == '-'))
            p++;
        if (p >= len || !is_digit(t[p]))
            return fail(st, start, "invalid number");
        while (p < len && is_digit(t[p]))
            p++;
    }

    struct jscan_node *n = &st->scan->nodes[i];
    if (integer) {
        /* as strtoll() would read it: within int64 or refused */
        uint64_t v = 0, limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
        for (size_t d = start + negative; d < p; d++) {
            unsigned digit = (unsigned)(t[d] - '0');
            if (v > (limit - digit) / 10)
                return fail(st, start, "too big %sinteger", negative ? "negative " : "");
            v = v * 10 + digit;
        }
        n->type = JSCAN_INTEGER;
        n->u.integer = negative ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v)
                                : (int64_t)v;
    } else {
        /* strtod() wants a terminated text: the number is copied out */
        char buf[NUMBER_BUF], *copy = buf;
        size_t n_len = p - start;
        if (n_len >= sizeof(buf))
            copy = xmalloc(n_len + 1);
        memcpy(copy, t + start, n_len);
        copy[n_len] = '\0';
        errno = 0;
        double v = strtod(copy, NULL);
        bool overflow = errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL);
        if (copy != buf)
            free(copy);
        if (overflow)
            return fail(st, start, "real number overflow");
        n->type = JSCAN_REAL;
        n->u.real = v;
    }
    n->end = (uint32_t)p;
    n->next = i + 1;
    st->p = p;
    skip_nul_after_token(st);
    return 0;
}

static bool is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int scan_literal(struct state *st, uint32_t i)
{
    static const struct {
        const char *word;
        size_t len;
        enum jscan_type type;
    } literals[] = {
        {"true", 4, JSCAN_TRUE},
        {"false", 5, JSCAN_FALSE},
        {"null", 4, JSCAN_NULL},
    };
    const unsigned char *t = st->text;
    size_t p = st->p;
    /* jansson reads a whole run of letters as one word */
    while (p < st->len && is_alpha(t[p]))
        p++;
    for (size_t k = 0; k < UTIL_ARRAY_LEN(literals); k++) {
        if (p - st->p == literals[k].len && memcmp(t + st->p, literals[k].word, p - st->p) == 0) {
            struct jscan_node *n = &st->scan->nodes[i];
            n->type = (uint8_t)literals[k].type;
            n->end = (uint32_t)p;
            n->next = i + 1;
            st->p = p;
            skip_nul_after_token(st);
            return 0;
        }
    }
    return fail(st, st->p, "invalid token");
}

/* ---- strings decoded ---- */

static size_t utf8_encode(uint32_t code, char *out)
{
    if (code < 0x80) {
        out[0] = (char)code;
        return 1;
    }
    if (code < 0x800) {
        out[0] = (char)(0xC0 | (code >> 6));
        out[1] = (char)(0x80 | (code & 0x3F));
        return 2;
    }
    if (code < 0x10000) {
        out[0] = (char)(0xE0 | (code >> 12));
        out[1] = (char)(0x80 | ((code >> 6) & 0x3F));
        out[2] = (char)(0x80 | (code & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (code >> 18));
    out[1] = (char)(0x80 | ((code >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((code >> 6) & 0x3F));
    out[3] = (char)(0x80 | (code & 0x3F));
    return 4;
}

/* The scan validated the string: every escape is whole and well formed. */
size_t jscan_decode(const struct jscan *scan, uint32_t i, char *out)
{
    const struct jscan_node *n = &scan->nodes[i];
    const unsigned char *p = (const unsigned char *)scan->text + n->start + 1;
    const unsigned char *end = (const unsigned char *)scan->text + n->end - 1;
    size_t w = 0;
    if (!n->escaped) {
        memcpy(out, p, (size_t)(end - p));
        return (size_t)(end - p);
    }
    while (p < end) {
        if (*p != '\\') {
            out[w++] = (char)*p++;
            continue;
        }
        unsigned char c = p[1];
        p += 2;
        switch (c) {
        case 'b': out[w++] = '\b'; break;
        case 'f': out[w++] = '\f'; break;
        case 'n': out[w++] = '\n'; break;
        case 'r': out[w++] = '\r'; break;
        case 't': out[w++] = '\t'; break;
        case 'u': {
            uint32_t code = (uint32_t)hex4(p);
            p += 4;
            if (code >= 0xD800 && code <= 0xDBFF) {
                uint32_t low = (uint32_t)hex4(p + 2);
                code = ((code - 0xD800) << 10) + (low - 0xDC00) + 0x10000;
                p += 6;
            }
            w += utf8_encode(code, out + w);
            break;
        }
        default: /* '"', '\\' and '/' stand for themselves */
            out[w++] = (char)c;
            break;
        }
    }
    return w;
}

void jscan_string(const struct jscan *scan, uint32_t i, const char **s, size_t *len,
                  char **owned)
{
    const struct jscan_node *n = &scan->nodes[i];
    if (!n->escaped) {
        *s = scan->text + n->start + 1;
        *len = n->end - n->start - 2;
        *owned = NULL;
        return;
    }
    char *copy = xmalloc(n->end - n->start);
    *len = jscan_decode(scan, i, copy);
    copy[*len] = '\0';
    *s = copy;
    *owned = copy;
}

bool jscan_string_is(const struct jscan *scan, uint32_t i, const char *name)
{
    const struct jscan_node *n = &scan->nodes[i];
    size_t name_len = strlen(name);
    if (!n->escaped)
        return n->end - n->start - 2 == name_len &&
               memcmp(scan->text + n->start + 1, name, name_len) == 0;
    const char *s;
    size_t len;
    char *owned;
    jscan_string(scan, i, &s, &len, &owned);
    bool same = len == name_len && memcmp(s, name, len) == 0;
    free(owned);
    return same;
}

uint32_t jscan_member(const struct jscan *scan, uint32_t i, const char *name)
{
    const struct jscan_node *object = &scan->nodes[i];
    uint32_t key = i + 1;
    for (uint32_t m = 0; m < object->u.count; m++) {
        if (jscan_string_is(scan, key, name))
            return key + 1;
        key = scan->nodes[key + 1].next;
    }
    return 0;
}

double jscan_number(const struct jscan *scan, uint32_t i)
{
    const struct jscan_node *n = &scan->nodes[i];
    return n->type == JSCAN_INTEGER ? (double)n->u.integer : n->u.real;
}

/* ---- repeated keys ---- */

static uint32_t hash_bytes(const char *s, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t k = 0; k < len; k++)
        h = (h ^ (unsigned char)s[k]) * 16777619u;
    return h;
}

static void hash_key(struct jscan *scan, uint32_t i)
{
    struct jscan_node *n = &scan->nodes[i];
    if (!n->escaped) { /* the common case: the text is the key */
        n->u.hash = hash_bytes(scan->text + n->start + 1, n->end - n->start - 2);
        return;
    }
    const char *s;
    size_t len;
    char *owned;
    jscan_string(scan, i, &s, &len, &owned);
    n->u.hash = hash_bytes(s, len);
    free(owned);
}

static bool keys_equal(const struct jscan *scan, uint32_t a, uint32_t b)
{
    const struct jscan_node *na = &scan->nodes[a], *nb = &scan->nodes[b];
    if (na->u.hash != nb->u.hash)
        return false;
    if (!na->escaped && !nb->escaped)
        return na->end - na->start == nb->end - nb->start &&
               memcmp(scan->text + na->start, scan->text + nb->start, na->end - na->start) == 0;
    const char *sa, *sb;
    size_t la, lb;
    char *oa, *ob;
    jscan_string(scan, a, &sa, &la, &oa);
    jscan_string(scan, b, &sb, &lb, &ob);
    bool same = la == lb && memcmp(sa, sb, la) == 0;
    free(oa);
    free(ob);
    return same;
}

/* A key of a large object, decoded, for sorting. */
struct sorted_key {
    const char *s;
    size_t len;
    uint32_t node;
};

static int sorted_key_compare(const void *a, const void *b)
{
    const struct sorted_key *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->len < y->len ? x->len : y->len);
    return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

/* Returns a key node that repeats another key of object node i, or 0. A
 * small object compares every pair (hashes first); a large one sorts its
 * decoded keys and compares neighbours, O(n log n) whatever the keys are, so
 * keys chosen to collide cannot make it quadratic. */
static uint32_t repeated_key(const struct jscan *scan, uint32_t i)
{
    uint32_t count = scan->nodes[i].u.count;
    if (count < 2)
        return 0;
    if (count <= SMALL_OBJECT) {
        uint32_t keys[SMALL_OBJECT];
        uint32_t key = i + 1;
        for (uint32_t m = 0; m < count; m++) {
            uint32_t hash = scan->nodes[key].u.hash;
            for (uint32_t k = 0; k < m; k++) {
                if (scan->nodes[keys[k]].u.hash == hash && keys_equal(scan, keys[k], key))
                    return key;
            }
            keys[m] = key;
            key = scan->nodes[key + 1].next;
        }
        return 0;
    }
    /* The escaped keys are decoded into one buffer (decoded is never longer
     * than written). */
    size_t escaped_bytes = 0;
    uint32_t key = i + 1;
    for (uint32_t m = 0; m < count; m++) {
        const struct jscan_node *n = &scan->nodes[key];
        if (n->escaped)
            escaped_bytes += n->end - n->start;
        key = scan->nodes[key + 1].next;
    }
    struct sorted_key *keys = xmalloc(count * sizeof(*keys));
    char *decoded = escaped_bytes > 0 ? xmalloc(escaped_bytes) : NULL;
    size_t used = 0;
    key = i + 1;
    for (uint32_t m = 0; m < count; m++) {
        const struct jscan_node *n = &scan->nodes[key];
        keys[m].node = key;
        if (n->escaped) {
            keys[m].s = decoded + used;
            keys[m].len = jscan_decode(scan, key, decoded + used);
            used += keys[m].len;
        } else {
            keys[m].s = scan->text + n->start + 1;
            keys[m].len = n->end - n->start - 2;
        }
        key = scan->nodes[key + 1].next;
    }
    qsort(keys, count, sizeof(*keys), sorted_key_compare);
    uint32_t found = 0;
    for (uint32_t m = 1; m < count && found == 0; m++) {
        if (sorted_key_compare(&keys[m - 1], &keys[m]) == 0)
            found = keys[m].node > keys[m - 1].node ? keys[m].node : keys[m - 1].node;
    }
    free(decoded);
    free(keys);
    return found;
}

/* ---- the scan ---- */

int jscan_parse(struct jscan *scan, const char *text, size_t len, bool any, char *error)
{
    struct state st = {.scan = scan, .text = (const unsigned char *)text, .len = len, .error = error};
    /* the open containers, innermost last */
    uint32_t stack[JSCAN_MAX_DEPTH];
    size_t depth = 0;

    scan->text = text;
    scan->len = len;
    scan->count = 0;
    if (len >= UINT32_MAX)
        return fail(&st, 0, "text too large");

    skip_space(&st);
    if (!any && (st.p >= len || (text[st.p] != '{' && text[st.p] != '[')))
        return fail(&st, st.p, "'[' or '{' expected");

    for (;;) {
        /* a value is expected at st.p */
        if (st.p >= len)
            return fail(&st, st.p, "premature end of input");
        if (depth + 1 > JSCAN_MAX_DEPTH)
            return fail(&st, st.p, "maximum nesting depth reached");
        if (depth > 0)
            scan->nodes[stack[depth - 1]].u.count++;
        unsigned char c = st.text[st.p];
        uint32_t i;
        if (c == '{' || c == '[') {
            i = node_add(scan, c == '{' ? JSCAN_OBJECT : JSCAN_ARRAY, st.p);
            stack[depth++] = i;
            st.p++;
            skip_space(&st);
            char close = c == '{' ? '}' : ']';
            if (st.p < len && text[st.p] == close) {
                st.p++;
                goto close_container;
            }
            if (c == '[')
                continue;
            goto key;
        } else if (c == '"') {
            i = node_add(scan, JSCAN_STRING, st.p);
            if (scan_string(&st, i) != 0)
                return -1;
        } else if (c == '-' || is_digit(c)) {
            i = node_add(scan, JSCAN_INTEGER, st.p);
            if (scan_number(&st, i) != 0)
                return -1;
        } else if (is_alpha(c)) {
            i = node_add(scan, JSCAN_NULL, st.p);
            if (scan_literal(&st, i) != 0)
                return -1;
        } else {
            return fail(&st, st.p, "unexpected token");
        }

    after_value:
        if (depth == 0)
            break;
        skip_space(&st);
        if (st.p >= len)
            return fail(&st, st.p, "premature end of input");
        {
            struct jscan_node *top = &scan->nodes[stack[depth - 1]];
            c = st.text[st.p];
            if (c == ',') {
                st.p++;
                skip_space(&st);
                if (top->type == JSCAN_ARRAY)
                    continue;
                goto key;
            }
            if (c != (top->type == JSCAN_OBJECT ? '}' : ']'))
                return fail(&st, st.p, "',' or '%c' expected",
                            top->type == JSCAN_OBJECT ? '}' : ']');
            st.p++;
        }

    close_container:
        {
            uint32_t closed = stack[--depth];
            struct jscan_node *n = &scan->nodes[closed];
            n->end = (uint32_t)st.p;
            n->next = (uint32_t)scan->count;
            if (n->type == JSCAN_OBJECT) {
                uint32_t again = repeated_key(scan, closed);
                if (again != 0)
                    return fail(&st, scan->nodes[again].start, "duplicate object key");
            }
        }
        goto after_value;

    key:
        if (st.p >= len || text[st.p] != '"')
            return fail(&st, st.p, "string expected as an object key");
        i = node_add(scan, JSCAN_STRING, st.p);
        if (scan_string(&st, i) != 0)
            return -1;
        hash_key(scan, i);
        skip_space(&st);
        if (st.p >= len || text[st.p] != ':')
            return fail(&st, st.p, "':' expected");
        st.p++;
        skip_space(&st);
    }

    skip_space(&st);
    if (st.p != len)
        return fail(&st, st.p, "end of input expected");
    return 0;
}
