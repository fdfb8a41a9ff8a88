/* null_server.c - a do-nothing RESP server: the CPU-per-request floor.
 *
 * One libevent loop on a Unix socket. Each readable connection is read once
 * (one read(2) into the input buffer, no FIONREAD ioctl), every complete
 * request in it (RESP arrays of bulk strings, or inline lines) is framed and
 * answered `$-1` (nil), or `+OK` with "ok", and the answers are written at
 * once, in one writev(2), the way redis-server writes its replies before it
 * sleeps again: two system calls per batch of requests, and epoll_ctl only
 * for a peer that does not read. What a real server spends beyond this per
 * request is the cost of its own work (and of its I/O design).
 *
 *   null_server SOCKET [nil|ok]  */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>

struct connection {
    struct event *read_event;
    struct event *write_event;
    struct evbuffer *in;
    struct evbuffer *out;
};

static const char *answer = "$-1\r\n";

/* Length of the first complete request in data; 0: incomplete; -1: bad framing. */
static long request_length(const char *data, size_t len)
{
    const char *end = data + len, *p = data;
    const char *nl = memchr(p, '\n', len);
    if (nl == NULL)
        return 0;
    if (*p != '*')
        return nl + 1 - data; /* an inline command is one line */
    long count = strtol(p + 1, NULL, 10);
    for (p = nl + 1; count-- > 0;) {
        if (p >= end)
            return 0;
        if (*p != '$' || (nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
            return *p != '$' ? -1 : 0;
        long bulk = strtol(p + 1, NULL, 10);
        p = nl + 1;
        if (bulk < 0)
            return -1;
        if (end - p < bulk + 2)
            return 0;
        p += bulk + 2;
    }
    return p - data;
}

static void connection_free(struct connection *c)
{
    close(event_get_fd(c->read_event));
    event_free(c->read_event);
    event_free(c->write_event);
    evbuffer_free(c->in);
    evbuffer_free(c->out);
    free(c);
}

/* Writes what it can; waits for EV_WRITE (and stops reading) if the peer is slow. */
static void flush_out(struct connection *c)
{
    evutil_socket_t fd = event_get_fd(c->read_event);
    while (evbuffer_get_length(c->out) > 0)
        if (evbuffer_write(c->out, fd) <= 0)
            break;
    if (evbuffer_get_length(c->out) > 0) {
        event_del(c->read_event);
        event_add(c->write_event, NULL);
    } else {
        event_del(c->write_event);
        event_add(c->read_event, NULL);
    }
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct connection *c = arg;
    struct evbuffer_iovec space;
    if (evbuffer_reserve_space(c->in, 16384, &space, 1) != 1) {
        connection_free(c);
        return;
    }
    ssize_t n = read(fd, space.iov_base, space.iov_len);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
        connection_free(c);
        return;
    }
    space.iov_len = n > 0 ? (size_t)n : 0;
    evbuffer_commit_space(c->in, &space, 1);
    size_t len = evbuffer_get_length(c->in), used = 0, answer_len = strlen(answer);
    const char *data = (const char *)evbuffer_pullup(c->in, -1);
    long request;
    while (used < len && (request = request_length(data + used, len - used)) != 0) {
        if (request < 0) {
            connection_free(c);
            return;
        }
        used += (size_t)request;
        evbuffer_add(c->out, answer, answer_len);
    }
    evbuffer_drain(c->in, used);
    flush_out(c);
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd, (void)what;
    flush_out(arg);
}

static void on_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *addr,
                      int addr_len, void *arg)
{
    (void)addr, (void)addr_len, (void)arg;
    struct event_base *base = evconnlistener_get_base(listener);
    struct connection *c = calloc(1, sizeof(*c));
    if (c == NULL || evutil_make_socket_nonblocking(fd) != 0) {
        close(fd);
        free(c);
        return;
    }
    c->in = evbuffer_new();
    c->out = evbuffer_new();
    c->read_event = event_new(base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->write_event = event_new(base, fd, EV_WRITE | EV_PERSIST, on_write, c);
    event_add(c->read_event, NULL);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: null_server SOCKET [nil|ok]\n");
        return 2;
    }
    if (argc == 3 && strcmp(argv[2], "ok") == 0)
        answer = "+OK\r\n";
    signal(SIGPIPE, SIG_IGN);
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(argv[1]) >= sizeof(sun.sun_path)) {
        fprintf(stderr, "null_server: socket path too long\n");
        return 1;
    }
    memcpy(sun.sun_path, argv[1], strlen(argv[1]) + 1);
    unlink(argv[1]);
    struct event_base *base = event_base_new();
    struct evconnlistener *listener =
        base == NULL ? NULL
                     : evconnlistener_new_bind(base, on_accept, NULL, LEV_OPT_CLOSE_ON_FREE, 511,
                                               (struct sockaddr *)&sun, sizeof(sun));
    if (listener == NULL) {
        fprintf(stderr, "null_server: listen %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    event_base_dispatch(base);
    return 0;
}
