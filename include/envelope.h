/* envelope.h - the envelope of a message published through the stream, and
 * Redis stream entry IDs (docs/reference.md §7).
 *
 * scripts/tenantcached.lua appends a message to the stream and publishes
 * {"id":"<the entry's ID>","message":MESSAGE} on the channel, MESSAGE
 * embedded as JSON. This module recognises that envelope and finds the
 * message inside it without parsing the message itself (message_parse() does
 * that, as for a plain payload). Pure functions: no allocation, no state. */
#ifndef TENANTCACHED_ENVELOPE_H
#define TENANTCACHED_ENVELOPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "<ms>-<seq>", both 64-bit decimal, plus the NUL. */
#define ENVELOPE_ID_MAX 42

/* A stream entry ID; {0, 0} is "before every entry". */
struct envelope_id {
    uint64_t ms;
    uint64_t seq;
};

enum envelope_result {
    ENVELOPE_NONE,    /* not an envelope: a plain message */
    ENVELOPE_OK,      /* an envelope: id and the message inside are set */
    ENVELOPE_INVALID, /* starts as an envelope but is not a valid one */
};

/* Parses "<ms>-<seq>" (exactly: decimal digits, no sign, no spaces, no
 * overflow). Returns false, id untouched, on anything else. */
bool envelope_id_parse(const char *text, size_t len, struct envelope_id *id);

/* <0, 0 or >0 as a is before, equal to or after b in stream order. */
int envelope_id_compare(const struct envelope_id *a, const struct envelope_id *b);

/* Writes "<ms>-<seq>" into buf[ENVELOPE_ID_MAX]. Returns buf. Cannot fail. */
char *envelope_id_format(const struct envelope_id *id, char *buf);

/* Recognises text[0..len) as {"id":"<ms>-<seq>","message":MESSAGE} (JSON
 * whitespace allowed between tokens; the keys in that order, nothing else).
 * ENVELOPE_OK: *id is the entry's ID and *message / *message_len point into
 * text at MESSAGE (whose own validity is message_parse()'s business: a
 * MESSAGE followed by anything but the closing brace does not parse as
 * JSON). ENVELOPE_NONE: the payload does not begin with {"id" and is a plain
 * message. ENVELOPE_INVALID: it begins so but the rest is malformed. */
enum envelope_result envelope_unwrap(const char *text, size_t len, struct envelope_id *id,
                                     const char **message, size_t *message_len);

#endif
