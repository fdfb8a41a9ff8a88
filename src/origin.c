/* origin.c - L3 fills over HTTP with libevent's client (see origin.h).
 *
 * A fixed pool of origin.max_concurrent keep-alive connections; a request
 * takes a free one or waits in a FIFO queue. Host names are resolved by
 * evdns on the loop (never a blocking getaddrinfo). Each request is bounded
 * as a whole by origin.timeout, from origin_get() to its answer (queueing
 * and a retry included), by a timer of its own; the body is capped while it
 * is read (evhttp_connection_set_max_body_size).
 *
 * Real origins close connections: HTTP/1.0 servers after each response
 * (libevent's client keeps those "alive"), keep-alive timeouts and
 * per-connection request limits as the next request is sent. As every HTTP
 * client does, a GET that fails for want of a response on a connection that
 * already served one is retried once, on a fresh connection.
 *
 * libevent reports a refused connection as a response with code 0 and other
 * failures (timeout, EOF, oversized body) through the error callback and a
 * NULL request; what really failed is logged (rate-limited). */
#include "origin.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <event2/buffer.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "names.h"
#include "util.h"

#define MAX_BODY_BYTES (8u * 1024 * 1024)

struct origin_request {
    struct origin *origin;
    struct origin_slot *slot;     /* NULL while queued */
    struct origin_request *next;  /* in the wait queue */
    char *path;
    origin_done_fn *done;
    void *arg;
    struct event *deadline;       /* origin.timeout after origin_get() */
    bool retried;                 /* already sent again on a fresh connection */
    int error;                    /* enum evhttp_request_error + 1; 0: none reported */
    int error_errno;              /* errno when the error was reported */
};

struct origin_slot {
    struct evhttp_connection *connection;
    struct origin_request *active;
    unsigned served;              /* responses on the connection since it was last reset */
};

struct origin {
    struct event_base *base;
    struct evdns_base *dns;
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

int origin_create(struct event_base *base, const struct config *config, struct origin **out,
                  char *error)
{
    *out = NULL;
    if (config->origin.url[0] == '\0')
        return 0;
    struct origin *origin = xcalloc(1, sizeof(*origin));
    origin->base = base;
    if (parse_url(origin, config->origin.url) != 0) {
        snprintf(error, ERROR_MAX, "origin.url '%s' is not http://HOST[:PORT]/PATH",
                 config->origin.url);
        free(origin);
        return -1;
    }
    /* Name servers from resolv.conf, names from /etc/hosts; without a usable
     * resolv.conf, /etc/hosts and numeric addresses still work. */
    origin->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                           EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (origin->dns == NULL) {
        origin->dns = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
        if (origin->dns == NULL)
            log_fatal("cannot create the origin's DNS resolver");
        evdns_base_load_hosts(origin->dns, NULL);
        log_warn("origin: no name servers from resolv.conf; only /etc/hosts resolves %s",
                    origin->host);
    }
    origin->timeout_ms = config->origin.timeout_ms;
    origin->slot_count = config->origin.max_concurrent ? config->origin.max_concurrent : 1;
    origin->slots = xcalloc(origin->slot_count, sizeof(*origin->slots));
    *out = origin;
    return 0;
}

/* The request path: the template with every placeholder replaced by its
 * URL-encoded value. Returns a string the caller frees. */
static char *expand_path(const struct origin *origin, const char *tenant, size_t tenant_len,
                         const char *kind, const char *key, size_t key_len)
{
    char *parts[NAMES_PARTS] = {
        [NAMES_TENANT] = evhttp_uriencode(tenant, (ev_ssize_t)tenant_len, 0),
        [NAMES_KIND] = evhttp_uriencode(kind, -1, 0),
        [NAMES_KEY] = evhttp_uriencode(key, (ev_ssize_t)key_len, 0),
    };
    const char *values[NAMES_PARTS];
    size_t lens[NAMES_PARTS];
    for (size_t i = 0; i < NAMES_PARTS; i++) {
        values[i] = parts[i];
        lens[i] = parts[i] != NULL ? strlen(parts[i]) : 0;
    }
    char *text = names_expand(origin->path_template, values, lens, NULL);
    for (size_t i = 0; i < NAMES_PARTS; i++)
        free(parts[i]);
    return text;
}

static void start_next(struct origin *origin);

/* Answers the request and frees it; it must be in no queue and no slot. */
static void finish(struct origin_request *request, enum origin_status status, const char *body,
                   size_t len)
{
    event_free(request->deadline);
    request->done(request->arg, status, body, len);
    free(request->path);
    free(request);
}

static void fail(struct origin_request *request, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Logs why the request failed (rate-limited) and answers ORIGIN_FAILED. */
static void fail(struct origin_request *request, const char *fmt, ...)
{
    struct origin *origin = request->origin;
    char reason[160];
    va_list args;
    va_start(args, fmt);
    vsnprintf(reason, sizeof(reason), fmt, args);
    va_end(args);
    log_limited(&origin->failure_log, 10000, LOG_LEVEL_WARNING, "origin %s:%u: GET %s: %s",
                origin->host, origin->port, request->path, reason);
    finish(request, ORIGIN_FAILED, NULL, 0);
}

/* What libevent reported, in words. */
static void describe_failure(const struct origin_request *request, char *out, size_t size)
{
    int saved = request->error_errno;
    switch (request->error - 1) {
    case EVREQ_HTTP_TIMEOUT:
        snprintf(out, size, "timed out (no data within origin.timeout)");
        return;
    case EVREQ_HTTP_EOF:
        if (saved == ECONNRESET)
            snprintf(out, size, "connection reset");
        else if (saved == ECONNREFUSED)
            snprintf(out, size, "connection refused");
        else
            snprintf(out, size, "connection closed before a complete response");
        return;
    case EVREQ_HTTP_INVALID_HEADER:
        snprintf(out, size, "invalid response header");
        return;
    case EVREQ_HTTP_BUFFER_ERROR:
        snprintf(out, size, "read or write error: %s", saved ? strerror(saved) : "unknown");
        return;
    case EVREQ_HTTP_DATA_TOO_LONG:
        snprintf(out, size, "body larger than %u bytes", MAX_BODY_BYTES);
        return;
    default:
        /* No error callback: libevent's connect failure path, which has
         * reset the connection (and errno) before telling us. */
        if (saved == ECONNREFUSED)
            snprintf(out, size, "connection refused");
        else
            snprintf(out, size, "cannot connect (refused, unreachable or name not resolved)");
        return;
    }
}

static void request_error(enum evhttp_request_error error, void *arg)
{
    struct origin_request *request = arg;
    request->error = (int)error + 1;
    request->error_errno = EVUTIL_SOCKET_ERROR();
}

static bool send_on(struct origin *origin, struct origin_slot *slot,
                    struct origin_request *request);

static void request_done(struct evhttp_request *http, void *arg)
{
    struct origin_request *request = arg;
    struct origin *origin = request->origin;
    if (origin->destroying)
        return; /* origin_destroy() answers it */
    if (request->error == 0)
        request->error_errno = EVUTIL_SOCKET_ERROR();
    struct origin_slot *slot = request->slot;
    int code = http ? evhttp_request_get_response_code(http) : 0;
    if (code == 0) {
        /* No response: libevent has reset the connection. A connection that
         * served before was most likely closed by the origin while idle (or
         * as this request was sent): once, try again on a fresh one. */
        bool reused = slot->served > 0;
        slot->served = 0;
        bool retryable = request->error == 0 || request->error - 1 == EVREQ_HTTP_EOF ||
                         request->error - 1 == EVREQ_HTTP_BUFFER_ERROR;
        if (reused && retryable && !request->retried) {
            log_debug("origin %s:%u: GET %s: no response on a reused connection, sent again "
                      "on a fresh one", origin->host, origin->port, request->path);
            request->retried = true;
            request->error = 0;
            request->error_errno = 0;
            if (send_on(origin, slot, request))
                return;
        }
        slot->active = NULL;
        request->slot = NULL;
        char reason[128];
        describe_failure(request, reason, sizeof(reason));
        fail(request, "%s", reason);
        start_next(origin);
        return;
    }
    slot->served++;
    slot->active = NULL;
    request->slot = NULL;
    if (code == 200) {
        struct evbuffer *input = evhttp_request_get_input_buffer(http);
        size_t len = evbuffer_get_length(input);
        if (len <= MAX_BODY_BYTES) {
            const char *body = (const char *)evbuffer_pullup(input, -1);
            finish(request, ORIGIN_FOUND, body ? body : "", len);
        } else {
            fail(request, "body larger than %u bytes", MAX_BODY_BYTES);
        }
    } else if (code == 404) {
        finish(request, ORIGIN_NOT_FOUND, NULL, 0);
    } else {
        fail(request, "HTTP status %d", code);
    }
    start_next(origin);
}

/* Sends the request on the slot's connection (made when there is none).
 * Returns false if libevent refused (the request is then in no slot). */
static bool send_on(struct origin *origin, struct origin_slot *slot, struct origin_request *request)
{
    if (slot->connection == NULL) {
        slot->connection = evhttp_connection_base_new(origin->base, origin->dns, origin->host,
                                                      origin->port);
        if (slot->connection == NULL)
            return false;
        slot->served = 0;
        struct timeval timeout = util_timeval_from_ms(origin->timeout_ms);
        evhttp_connection_set_timeout_tv(slot->connection, &timeout);
        evhttp_connection_set_retries(slot->connection, 0);
        evhttp_connection_set_max_body_size(slot->connection, (ev_ssize_t)MAX_BODY_BYTES);
    }
    struct evhttp_request *http = evhttp_request_new(request_done, request);
    if (http == NULL)
        return false;
    evhttp_request_set_error_cb(http, request_error);
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

/* The request's origin.timeout is over, wherever it is: answered as a
 * failure. An active one takes its connection with it (freeing an
 * evhttp_connection drops its requests without calling them back). */
static void request_expired(evutil_socket_t fd, short events, void *arg)
{
    (void)fd;
    (void)events;
    struct origin_request *request = arg;
    struct origin *origin = request->origin;
    if (request->slot != NULL) {
        struct origin_slot *slot = request->slot;
        evhttp_connection_free(slot->connection);
        slot->connection = NULL;
        slot->active = NULL;
        slot->served = 0;
        request->slot = NULL;
    } else {
        struct origin_request **link = &origin->queue_head;
        struct origin_request *previous = NULL;
        while (*link != NULL && *link != request) {
            previous = *link;
            link = &(*link)->next;
        }
        if (*link == request) {
            *link = request->next;
            if (origin->queue_tail == request)
                origin->queue_tail = previous;
        }
    }
    fail(request, "timed out after %llu ms%s", (unsigned long long)origin->timeout_ms,
         request->retried ? " (retried on a fresh connection)" : "");
    start_next(origin);
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
        if (!send_on(origin, slot, request))
            fail(request, "cannot start a request");
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
    request->deadline = evtimer_new(origin->base, request_expired, request);
    if (request->deadline == NULL)
        log_fatal("cannot create an origin request timer");
    struct timeval timeout = util_timeval_from_ms(origin->timeout_ms);
    evtimer_add(request->deadline, &timeout);
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
    /* After the connections: they may hold name lookups of their own. */
    evdns_base_free(origin->dns, 0);
    free(origin->slots);
    free(origin->host);
    free(origin->path_template);
    free(origin);
}
