/* http_peer.h - a real HTTP origin for the unit suites of origin.c and
 * fill.c: libevent's evhttp server on 127.0.0.1 (an ephemeral port), on the
 * test's own event base, so that the client under test and this server run
 * on one loop. It answers each path from a small table (404 for the rest),
 * remembers the paths it was asked for, and can hold requests unanswered
 * until the test releases them (for requests in flight and queueing).
 *
 * Header-only (static inline functions) because the Makefile builds each unit suite
 * from its one test_*.c; include it from one translation unit per binary. */
#ifndef TENANTCACHED_TESTS_HTTP_PEER_H
#define TENANTCACHED_TESTS_HTTP_PEER_H

#include <arpa/inet.h>
#include <check.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "unit_loop.h"

#define HTTP_PEER_ROUTES 8
#define HTTP_PEER_SEEN 64
#define HTTP_PEER_HELD 16

struct http_peer {
    struct event_base *base;
    struct evhttp *http;
    unsigned short port;
    struct {
        char path[256];
        int code;
        char body[256];
    } routes[HTTP_PEER_ROUTES];
    size_t route_count;
    bool hold; /* keep requests unanswered */
    struct evhttp_request *held[HTTP_PEER_HELD];
    size_t held_count;
    char seen[HTTP_PEER_SEEN][256]; /* paths asked for, in order */
    size_t seen_count;
    size_t seen_wanted; /* for http_peer_run_until_seen */
};

/* The answer of the route for path: its code and body; 404 "" when none. */
static inline void http_peer_respond(struct http_peer *peer, struct evhttp_request *request)
{
    const char *uri = evhttp_request_get_uri(request);
    int code = 404;
    const char *body = "";
    for (size_t i = 0; i < peer->route_count; i++) {
        if (strcmp(peer->routes[i].path, uri) == 0) {
            code = peer->routes[i].code;
            body = peer->routes[i].body;
        }
    }
    struct evbuffer *buffer = evbuffer_new();
    evbuffer_add(buffer, body, strlen(body));
    evhttp_send_reply(request, code, code == 200 ? "OK" : "Other", buffer);
    evbuffer_free(buffer);
}

static inline void http_peer_request(struct evhttp_request *request, void *arg)
{
    struct http_peer *peer = arg;
    if (peer->seen_count < HTTP_PEER_SEEN)
        snprintf(peer->seen[peer->seen_count++], sizeof(peer->seen[0]), "%s",
                 evhttp_request_get_uri(request));
    if (peer->hold) {
        ck_assert_uint_lt(peer->held_count, HTTP_PEER_HELD);
        peer->held[peer->held_count++] = request;
        return;
    }
    http_peer_respond(peer, request);
}

/* Listens on 127.0.0.1 on a free port; fails the test when it cannot. */
static inline void http_peer_start(struct http_peer *peer, struct event_base *base)
{
    memset(peer, 0, sizeof(*peer));
    peer->base = base;
    peer->http = evhttp_new(base);
    ck_assert_ptr_nonnull(peer->http);
    struct evhttp_bound_socket *bound = evhttp_bind_socket_with_handle(peer->http, "127.0.0.1", 0);
    ck_assert_ptr_nonnull(bound);
    struct sockaddr_in address;
    socklen_t length = sizeof(address);
    ck_assert_int_eq(
        getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&address, &length), 0);
    peer->port = ntohs(address.sin_port);
    evhttp_set_gencb(peer->http, http_peer_request, peer);
}

static inline void http_peer_stop(struct http_peer *peer)
{
    if (peer->http != NULL)
        evhttp_free(peer->http);
    peer->http = NULL;
}

/* path (with its query) answers code with body. */
static inline void http_peer_route(struct http_peer *peer, const char *path, int code,
                                   const char *body)
{
    ck_assert_uint_lt(peer->route_count, HTTP_PEER_ROUTES);
    snprintf(peer->routes[peer->route_count].path, sizeof(peer->routes[0].path), "%s", path);
    peer->routes[peer->route_count].code = code;
    snprintf(peer->routes[peer->route_count].body, sizeof(peer->routes[0].body), "%s", body);
    peer->route_count++;
}

/* Answers the held requests from the table, in order, and stops holding. */
static inline void http_peer_release(struct http_peer *peer)
{
    peer->hold = false;
    for (size_t i = 0; i < peer->held_count; i++)
        http_peer_respond(peer, peer->held[i]);
    peer->held_count = 0;
}

/* "http://127.0.0.1:PORT" followed by path into buf. */
static inline const char *http_peer_url(const struct http_peer *peer, const char *path, char *buf,
                                        size_t size)
{
    snprintf(buf, size, "http://127.0.0.1:%u%s", (unsigned)peer->port, path);
    return buf;
}

static inline bool http_peer_seen_enough(const void *arg)
{
    const struct http_peer *peer = arg;
    return peer->seen_count >= peer->seen_wanted;
}

/* Runs the loop until the peer has seen count requests in all. */
static inline void http_peer_run_until_seen(struct http_peer *peer, size_t count)
{
    peer->seen_wanted = count;
    unit_loop_run_until_fn(peer->base, http_peer_seen_enough, peer, "the origin's requests");
}

#endif
