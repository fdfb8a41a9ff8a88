/* origin.c - a tiny authoritative HTTP API (L3) for the hit-ratio benchmark.
 *
 *   origin PORT_FILE [VALUE_BYTES]
 *
 * Listens on 127.0.0.1 (a free port, written to PORT_FILE once listening)
 * with libevent's evhttp. GET /v1/tenants/{tenant}/profile/{key} answers 200
 * with the deterministic profile JSON of seed_profile() (VALUE_BYTES long,
 * default 600); any other kind is 404. GET /stats answers the number of
 * profile requests served, so the benchmark can count the daemon's misses
 * from the origin's side too. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "seed.h"

static unsigned long long served;
static size_t value_bytes = 600;

static void handle(struct evhttp_request *request, void *arg)
{
    (void)arg;
    const char *uri = evhttp_request_get_uri(request);
    struct evbuffer *body = evbuffer_new();
    char tenant[96], kind[32], key[160];
    if (strcmp(uri, "/stats") == 0) {
        evbuffer_add_printf(body, "%llu\n", served);
        evhttp_send_reply(request, HTTP_OK, "OK", body);
    } else if (sscanf(uri, "/v1/tenants/%95[^/]/%31[^/]/%159[^/?]", tenant, kind, key) == 3 &&
               strcmp(kind, "profile") == 0) {
        char value[2048];
        size_t len = seed_profile(tenant, key, value_bytes, value, sizeof(value));
        evbuffer_add(body, value, len);
        evhttp_add_header(evhttp_request_get_output_headers(request), "Content-Type",
                          "application/json");
        served++;
        evhttp_send_reply(request, HTTP_OK, "OK", body);
    } else {
        evhttp_send_reply(request, HTTP_NOTFOUND, "Not Found", body);
    }
    evbuffer_free(body);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: origin PORT_FILE [VALUE_BYTES]\n");
        return 2;
    }
    if (argc == 3)
        value_bytes = (size_t)strtoul(argv[2], NULL, 10);
    if (value_bytes < 200 || value_bytes > 2000) {
        fprintf(stderr, "origin: VALUE_BYTES must be 200..2000\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct event_base *base = event_base_new();
    struct evhttp *http = base != NULL ? evhttp_new(base) : NULL;
    struct evhttp_bound_socket *bound =
        http != NULL ? evhttp_bind_socket_with_handle(http, "127.0.0.1", 0) : NULL;
    if (bound == NULL) {
        fprintf(stderr, "origin: cannot listen on 127.0.0.1\n");
        return 1;
    }
    evhttp_set_gencb(http, handle, NULL);
    struct sockaddr_in address;
    socklen_t address_len = sizeof(address);
    if (getsockname(evhttp_bound_socket_get_fd(bound), (struct sockaddr *)&address,
                    &address_len) != 0) {
        perror("origin: getsockname");
        return 1;
    }
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", argv[1]);
    FILE *file = fopen(tmp, "w");
    if (file == NULL || fprintf(file, "%u\n", (unsigned)ntohs(address.sin_port)) < 0 ||
        fclose(file) != 0 || rename(tmp, argv[1]) != 0) {
        perror("origin: port file");
        return 1;
    }
    event_base_dispatch(base);
    return 0;
}
