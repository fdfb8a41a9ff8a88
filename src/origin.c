/* origin.c - L3 fills over HTTP with libevent's client (see origin.h).
 *
 * A fixed pool of origin.max_concurrent keep-alive connections; a request
 * takes a free one or waits in a FIFO queue. libevent reports a refused
 * connection as a response with code 0 and a timeout as a NULL request, both
 * of which are ORIGIN_FAILED here. */
#include "origin.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "util.h"

#define MAX_BODY_BYTES (8u * 1024 * 1024)

struct origin_request {
    struct origin *origin;
    struct origin_slot *slot;
    struct origin_request *next;  /* in the wait queue */
    char *path;
    origin_done_fn *done;
    void *arg;
    uint64_t queued_ms;           /* monotonic: when origin_get() was called */
};

struct origin_slot {
    struct evhttp_connection *connection;
    struct origin_request *active;
};

struct origin {
    struct event_base *base;
    char *host;
    unsigned short port;
    char *path_template;           /* path and query, with placeholders */
    uint64_t timeout_ms;
    struct origin_slot *slots;
    unsigned slot_count;
    struct origin_request *queue_head;
    struct origin_request *queue_tail;
    bool destroying;
    struct log_ratelimit failure_log;
};

/* Splits "http://host[:port]/path?query". Returns 0 or -1. */
static int parse_url(struct origin *origin, const char *url)
{
    static const char scheme[] = "http://";
    if (strncmp(url, scheme, sizeof(scheme) - 1) != 0)
        return -1;
    const char *authority = url + sizeof(scheme) - 1;
    const char *path = strchr(authority, '/');
    size_t authority_len = path ? (size_t)(path - authority) : strlen(authority);
    const char *colon = memchr(authority, ':', authority_len);
    size_t host_len = colon ? (size_t)(colon - authority) : authority_len;
    if (host_len == 0)
        return -1;
    unsigned long port = 80;
    if (colon != NULL) {
        char *end;
        port = strtoul(colon + 1, &end, 10);
        if (end != authority + authority_len || port == 0 || port > 65535)
            return -1;
    }
    origin->host = xstrndup(authority, host_len);
    origin->port = (unsigned short)port;
    origin->path_template = xstrdup(path ? path : "/");
    return 0;
}

struct origin *origin_create(struct event_base *base, const struct config *config)
{
    if (config->origin.url[0] == '\0')
        return NULL;
    struct origin *origin = xcalloc(1, sizeof(*origin));
    origin->base = base;
    if (parse_url(origin, config->origin.url) != 0) {
        log_error("origin.url '%s' is not http://HOST[:PORT]/PATH", config->origin.url);
        free(origin);
        return NULL;
    }
    origin->timeout_ms = config->origin.timeout_ms;
    origin->slot_count = config->origin.max_concurrent ? config->origin.max_concurrent : 1;
    origin->slots = xcalloc(origin->slot_count, sizeof(*origin->slots));
    return origin;
}

/* Appends src with every placeholder replaced by its encoded value. */
static char *expand_path(const struct origin *origin, const char *tenant, size_t tenant_len,
                         const char *kind, const char *key, size_t key_len)
{
    char *parts[3] = {
        evhttp_uriencode(tenant, (ev_ssize_t)tenant_len, 0),
        evhttp_uriencode(kind, -1, 0),
        evhttp_uriencode(key, (ev_ssize_t)key_len, 0),
    };
    static const char *const names[3] = {"{tenant}", "{kind}", "{key}"};
    struct evbuffer *path = evbuffer_new();
    for (const char *cursor = origin->path_template; *cursor != '\0';) {
        size_t i = 0;
        for (; i < 3; i++) {
            size_t len = strlen(names[i]);
            if (strncmp(cursor, names[i], len) == 0) {
                if (parts[i] != NULL)
                    evbuffer_add(path, parts[i], strlen(parts[i]));
                cursor += len;
                break;
            }
        }
        if (i == 3)
            evbuffer_add(path, cursor++, 1);
    }
    evbuffer_add(path, "", 1);
    char *text = xstrdup((const char *)evbuffer_pullup(path, -1));
    evbuffer_free(path);
    for (size_t i = 0; i < 3; i++)
        free(parts[i]);
    return text;
}

static void start_next(struct origin *origin);

static void finish(struct origin_request *request, enum origin_status status, const char *body,
                   size_t len)
{
    request->done(request->arg, status, body, len);
    free(request->path);
    free(request);
}

static void request_done(struct evhttp_request *http, void *arg)
{
    struct origin_request *request = arg;
    struct origin *origin = request->origin;
    if (origin->destroying)
        return; /* origin_destroy() answers it */
    request->slot->active = NULL;
    request->slot = NULL;
    int code = http ? evhttp_request_get_response_code(http) : 0;
    if (code == 200) {
        struct evbuffer *input = evhttp_request_get_input_buffer(http);
        size_t len = evbuffer_get_length(input);
        if (len <= MAX_BODY_BYTES) {
            const char *body = (const char *)evbuffer_pullup(input, -1);
            finish(request, ORIGIN_FOUND, body ? body : "", len);
        } else {
            finish(request, ORIGIN_FAILED, NULL, 0);
        }
    } else if (code == 404) {
        finish(request, ORIGIN_NOT_FOUND, NULL, 0);
    } else {
        log_limited(&origin->failure_log, 10000, LOG_LEVEL_WARNING,
                    "origin %s:%u: %s", origin->host, origin->port,
                    http == NULL ? "timed out" : code == 0 ? "connection failed" : "unexpected status");
        finish(request, ORIGIN_FAILED, NULL, 0);
    }
    start_next(origin);
}

static bool start_on(struct origin *origin, struct origin_slot *slot, struct origin_request *request)
{
    if (slot->connection == NULL) {
        slot->connection = evhttp_connection_base_new(origin->base, NULL, origin->host, origin->port);
        if (slot->connection == NULL)
            return false;
        struct timeval timeout = util_timeval_from_ms(origin->timeout_ms);
        evhttp_connection_set_timeout_tv(slot->connection, &timeout);
        evhttp_connection_set_retries(slot->connection, 0);
    }
    struct evhttp_request *http = evhttp_request_new(request_done, request);
    if (http == NULL)
        return false;
    struct evkeyvalq *headers = evhttp_request_get_output_headers(http);
    evhttp_add_header(headers, "Host", origin->host);
    evhttp_add_header(headers, "Accept", "application/json");
    evhttp_add_header(headers, "User-Agent", "tenantcached/" TENANTCACHED_VERSION);
    request->slot = slot;
    slot->active = request;
    if (evhttp_make_request(slot->connection, http, EVHTTP_REQ_GET, request->path) != 0) {
        /* libevent frees the request on failure. */
        slot->active = NULL;
        request->slot = NULL;
        return false;
    }
    return true;
}

static void start_next(struct origin *origin)
{
    while (origin->queue_head != NULL) {
        struct origin_slot *slot = NULL;
        for (unsigned i = 0; i < origin->slot_count && slot == NULL; i++) {
            if (origin->slots[i].active == NULL)
                slot = &origin->slots[i];
        }
        if (slot == NULL)
            return;
        struct origin_request *request = origin->queue_head;
        origin->queue_head = request->next;
        if (origin->queue_head == NULL)
            origin->queue_tail = NULL;
        request->next = NULL;
        /* A request that waited for a slot as long as it may take in all
         * fails now rather than wait out a whole timeout more. */
        if (util_monotonic_ms() - request->queued_ms >= origin->timeout_ms ||
            !start_on(origin, slot, request))
            finish(request, ORIGIN_FAILED, NULL, 0);
    }
}

void origin_get(struct origin *origin, const char *tenant, size_t tenant_len, const char *kind,
                const char *key, size_t key_len, origin_done_fn *done, void *arg)
{
    struct origin_request *request = xcalloc(1, sizeof(*request));
    request->origin = origin;
    request->path = expand_path(origin, tenant, tenant_len, kind, key, key_len);
    request->done = done;
    request->arg = arg;
    request->queued_ms = util_monotonic_ms();
    if (origin->queue_tail != NULL)
        origin->queue_tail->next = request;
    else
        origin->queue_head = request;
    origin->queue_tail = request;
    start_next(origin);
}

void origin_destroy(struct origin *origin)
{
    if (origin == NULL)
        return;
    origin->destroying = true;
    for (unsigned i = 0; i < origin->slot_count; i++) {
        struct origin_slot *slot = &origin->slots[i];
        if (slot->connection != NULL)
            evhttp_connection_free(slot->connection);
        if (slot->active != NULL)
            finish(slot->active, ORIGIN_FAILED, NULL, 0);
    }
    while (origin->queue_head != NULL) {
        struct origin_request *request = origin->queue_head;
        origin->queue_head = request->next;
        finish(request, ORIGIN_FAILED, NULL, 0);
    }
    free(origin->slots);
    free(origin->host);
    free(origin->path_template);
    free(origin);
}
