/* protocol.h - a bounded, incremental parser for RESP2 requests.
 *
 * Requests arrive as RESP arrays of bulk strings ("*2\r\n$3\r\nGET\r\n...")
 * or, for debugging with socat/nc, as inline commands ("PING\r\n"). The parser
 * copies no request bytes (its only allocation is the argument vector, grown
 * up to max_args) and never trusts a declared length: a bulk longer than
 * max_request_bytes, an array longer than max_args, or any malformed header is
 * an error at once, before any of the body arrives.
 *
 * The caller keeps the connection's unparsed input in one contiguous, writable
 * buffer and calls protocol_parse() on it; argument pointers point into that
 * buffer and stay valid until the caller consumes (drops) the parsed bytes.
 * The buffer is writable because quoted inline arguments ("a\tb") are
 * unescaped in place: the parser may rewrite bytes of an inline request
 * before returning it (never bytes past the request, never multibulk bytes). */
#ifndef TENANTCACHED_PROTOCOL_H
#define TENANTCACHED_PROTOCOL_H

#include <stddef.h>
#include <stdint.h>

#define PROTOCOL_INLINE_MAX (64 * 1024)  /* longest inline command line */

enum protocol_status {
    PROTOCOL_REQUEST,    /* *request holds a complete command */
    PROTOCOL_SKIP,       /* a null or empty array (*-1, *0) or an empty inline line: consume and go on */
    PROTOCOL_INCOMPLETE, /* need more input; nothing to consume yet */
    PROTOCOL_ERROR,      /* framing error; parser->error says why; close after replying */
};

struct protocol_limits {
    uint64_t max_request_bytes; /* longest single bulk, and longest whole request
                                 * (sum of its argument lengths, framing excluded,
                                 * inline or multibulk alike) */
    unsigned max_args;          /* most arguments in one request */
};

/* One parsed request. argv[i] points into the caller's buffer (not
 * NUL-terminated); argv and argv_len are owned by the parser and reused by
 * the next call. */
struct protocol_request {
    size_t argc;
    const char **argv;
    size_t *argv_len;
};

struct protocol_parser {
    struct protocol_limits limits; /* of the request being parsed (read only) */
    struct protocol_limits next_limits; /* private: from the next request on */
    const char *error;          /* set when PROTOCOL_ERROR is returned: static text or
                                 * errbuf; valid until the next call on this parser */
    /* private: argument vector storage, grown up to limits.max_args */
    const char **argv;
    size_t *argv_len;
    size_t *argv_off;           /* offsets into the buffer while a request is partial:
                                 * the caller may move its buffer between calls */
    size_t argv_capacity;
    /* private: resume state of the current partial request, so that a request
     * arriving in many small reads is not rescanned from its start each time.
     * Reset when a request completes or on error. */
    int state;                  /* enum parse_state in protocol.c */
    size_t pos;                 /* start of the element (line or bulk data) being parsed */
    size_t scan;                /* how far the current line was scanned for its end */
    size_t args_expected;       /* N of the "*N" header */
    size_t args_done;           /* bulks of this request already complete */
    uint64_t bulk_len;          /* length of the bulk whose data is awaited */
    uint64_t request_bytes;     /* sum of the bulk lengths declared so far */
    char errbuf[32];
};

void protocol_parser_init(struct protocol_parser *parser, const struct protocol_limits *limits);
void protocol_parser_free(struct protocol_parser *parser);
/* New limits (a reload): a request already begun keeps the limits it began
 * with (its vectors must not shrink under it); the next request gets these. */
void protocol_parser_set_limits(struct protocol_parser *parser, const struct protocol_limits *limits);

/* Parses at most one request from buf[0..len). On PROTOCOL_REQUEST and
 * PROTOCOL_SKIP, *consumed is the number of bytes the request took: the caller
 * drops them before the next call (after it is done with request->argv). On
 * PROTOCOL_INCOMPLETE (*consumed = 0) the caller must call again with the same
 * bytes plus more; the buffer may have moved in between. On PROTOCOL_ERROR
 * (*consumed = 0), parser->error holds a message such as "invalid bulk length"
 * (the caller prefixes "-ERR Protocol error: ") and closes the connection; the
 * bytes of the failed request may have been rewritten. The parser is reset and
 * ready for a new stream after an error.
 *
 * May rewrite bytes of an inline request in buf (see the top of this file).
 * Reads nothing at or past buf[len]; needs no NUL terminator. */
enum protocol_status protocol_parse(struct protocol_parser *parser, char *buf, size_t len,
                                    size_t *consumed, struct protocol_request *request);

#endif
