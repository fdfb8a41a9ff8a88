/* server.c - the Unix socket, its connections and the query threads (see server.h).
 *
 * Threads talk through a pipe per query thread: the main thread queues a
 * connection or a config under the thread's mutex and writes one byte; the
 * query thread drains its queue from its own event loop. Nothing else is
 * shared but the caches (which have their own locks) and the counters. */
#include "server.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "commands.h"
#include "config.h"
#include "fill.h"
#include "log.h"
#include "metrics.h"
#include "protocol.h"
#include "reply.h"
#include "stats.h"
#include "util.h"

#define LISTEN_BACKLOG 1024
#define STOP_GRACE_SECONDS 3
#define READ_CHUNK_LIMIT (256 * 1024)

struct worker;

/* A request parked while its misses are filled: a private copy of its
 * arguments, since the input buffer moves on. */
struct parked_request {
    struct protocol_request request;
    char *data;
};

struct connection {
    struct worker *worker;
    struct bufferevent *bev;   /* NULL once closed while fills were pending */
    struct protocol_parser parser;
    struct commands_client client;
    struct parked_request *parked;
    struct connection *prev;
    struct connection *next;
    bool closing;              /* replying a last time, then closed */
    /* Answered, but fills the request submitted have not answered yet (CAN
     * found a grant before its other roles came in): the next request waits
     * for them, so that their answers are never taken for its own. */
    bool draining;
};

struct delivered_fill {
    struct connection *connection;
    struct fill_result *result;
};

struct pending_fd {
    int fd;
    struct ucred peer;
};

struct worker {
    struct server *server;
    unsigned index;
    pthread_t thread;
    struct event_base *base;
    int notify_read;
    int notify_write;
    struct event *notify_event;
    struct event *stop_timer;
    struct commands_env env;
    struct connection *connections;
    bool stopping;

    pthread_mutex_t lock;      /* guards the fields below */
    struct pending_fd *queue;
    size_t queue_count;
    size_t queue_capacity;
    struct delivered_fill *fills;
    size_t fill_count;
    size_t fill_capacity;
    const struct config *next_config;
    bool stop_requested;
};

struct server {
    struct event_base *main_base;
    struct cache *cache;
    struct fill *fill;
    const struct config *config;
    struct evconnlistener *listener;
    char *socket_path;
    struct worker *workers;
    unsigned worker_count;
    unsigned next_worker;
    uint64_t generation;
    int spare_fd;              /* closed to accept-and-drop when out of fds */

    pthread_mutex_t reconfigure_lock;
    pthread_cond_t reconfigured;
    unsigned reconfigure_pending;
};

static struct log_ratelimit accept_log;

/* ---- connections (on their query thread) ---- */

static void parked_free(struct parked_request *parked)
{
    if (parked == NULL)
        return;
    free(parked->request.argv);
    free(parked->request.argv_len);
    free(parked->data);
    free(parked);
}

static struct parked_request *park(const struct protocol_request *request)
{
    struct parked_request *parked = xcalloc(1, sizeof(*parked));
    size_t total = 0;
    for (size_t i = 0; i < request->argc; i++)
        total += request->argv_len[i];
    parked->data = xmalloc(total ? total : 1);
    parked->request.argc = request->argc;
    parked->request.argv = xmalloc(request->argc * sizeof(*parked->request.argv));
    parked->request.argv_len = xmalloc(request->argc * sizeof(*parked->request.argv_len));
    char *cursor = parked->data;
    for (size_t i = 0; i < request->argc; i++) {
        memcpy(cursor, request->argv[i], request->argv_len[i]);
        parked->request.argv[i] = cursor;
        parked->request.argv_len[i] = request->argv_len[i];
        cursor += request->argv_len[i];
    }
    return parked;
}

static void connection_free(struct connection *connection)
{
    struct worker *worker = connection->worker;
    if (connection->bev != NULL) {
        bufferevent_free(connection->bev);
        connection->bev = NULL;
        stats_sub(&stats.connected_clients, 1);
    }
    if (connection->client.fills_pending > 0)
        return; /* freed when the last fill answers (see worker_take_fill) */
    if (connection->prev != NULL)
        connection->prev->next = connection->next;
    else
        worker->connections = connection->next;
    if (connection->next != NULL)
        connection->next->prev = connection->prev;
    protocol_parser_free(&connection->parser);
    acl_grant_clear(&connection->client.grant);
    commands_client_clear_fills(&connection->client);
    parked_free(connection->parked);
    free(connection);
    if (worker->stopping && worker->connections == NULL)
        event_base_loopbreak(worker->base);
}

/* Stops reading and closes once every pending reply is written. Returns
 * false if that was at once (the connection is freed). */
static bool connection_close_after_write(struct connection *connection)
{
    connection->closing = true;
    bufferevent_disable(connection->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_output(connection->bev)) > 0)
        return true;
    connection_free(connection);
    return false;
}

/* Runs every complete request in the input buffer. Returns false if the
 * connection was freed. */
static bool connection_process(struct connection *connection)
{
    struct worker *worker = connection->worker;
    struct evbuffer *input = bufferevent_get_input(connection->bev);
    struct evbuffer *output = bufferevent_get_output(connection->bev);
    uint64_t backlog_limit = worker->env.config->listen.max_reply_backlog;
    while (!connection->closing && connection->parked == NULL && !connection->draining) {
        size_t len = evbuffer_get_length(input);
        if (len == 0)
            break;
        char *data = (char *)evbuffer_pullup(input, -1);
        size_t consumed = 0;
        struct protocol_request request;
        enum protocol_status status =
            protocol_parse(&connection->parser, data, len, &consumed, &request);
        if (status == PROTOCOL_INCOMPLETE)
            break;
        if (status == PROTOCOL_ERROR) {
            stats_add(&stats.protocol_errors, 1);
            reply_error(output, "ERR Protocol error: %s", connection->parser.error);
            evbuffer_drain(input, len);
            return connection_close_after_write(connection);
        }
        if (status == PROTOCOL_REQUEST) {
            uint64_t started_us = util_monotonic_us();
            if (commands_execute(&worker->env, &connection->client, &request) == COMMANDS_BLOCKED) {
                /* Replies go out in request order: nothing more is read or
                 * run until this one is answered. */
                connection->parked = park(&request);
                bufferevent_disable(connection->bev, EV_READ);
            } else {
                metrics_observe_latency((double)(util_monotonic_us() - started_us) / 1e6);
                if (connection->client.fills_pending > 0) {
                    connection->draining = true;
                    bufferevent_disable(connection->bev, EV_READ);
                }
            }
        }
        evbuffer_drain(input, consumed);
        if (evbuffer_get_length(output) > backlog_limit) {
            /* A client that pipelines without reading is dropped, not
             * buffered without bound. */
            stats_add(&stats.clients_dropped_backlog, 1);
            log_limited(&accept_log, 10000, LOG_LEVEL_WARNING,
                        "dropping client pid %ld: %zu bytes of replies unread (max_reply_backlog)",
                        (long)connection->client.pid, evbuffer_get_length(output));
            connection_free(connection);
            return false;
        }
        if (connection->client.close_after_reply)
            return connection_close_after_write(connection);
    }
    return true;
}

static void connection_read(struct bufferevent *bev, void *arg)
{
    (void)bev;
    connection_process(arg);
}

static void connection_written(struct bufferevent *bev, void *arg)
{
    struct connection *connection = arg;
    if (connection->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        connection_free(connection);
}

static void connection_event(struct bufferevent *bev, short events, void *arg)
{
    (void)bev;
    struct connection *connection = arg;
    if ((events & BEV_EVENT_TIMEOUT) != 0)
        stats_add(&stats.clients_dropped_idle, 1);
    /* EOF, error or idle timeout: nothing more can be delivered. */
    connection_free(connection);
}

static void connection_apply_timeouts(struct connection *connection, const struct config *config)
{
    if (config->listen.idle_timeout_ms == 0) {
        bufferevent_set_timeouts(connection->bev, NULL, NULL);
        return;
    }
    struct timeval idle = {
        .tv_sec = (time_t)(config->listen.idle_timeout_ms / 1000),
        .tv_usec = (suseconds_t)((config->listen.idle_timeout_ms % 1000) * 1000),
    };
    bufferevent_set_timeouts(connection->bev, &idle, NULL);
}

static void connection_create(struct worker *worker, const struct pending_fd *pending)
{
    const struct config *config = worker->env.config;
    struct connection *connection = xcalloc(1, sizeof(*connection));
    connection->worker = worker;
    connection->bev = bufferevent_socket_new(worker->base, pending->fd, BEV_OPT_CLOSE_ON_FREE);
    if (connection->bev == NULL) {
        close(pending->fd);
        free(connection);
        stats_sub(&stats.connected_clients, 1);
        return;
    }
    struct protocol_limits limits = {
        .max_request_bytes = config->listen.max_request_bytes,
        .max_args = config->listen.max_args,
    };
    protocol_parser_init(&connection->parser, &limits);
    connection->client.out = bufferevent_get_output(connection->bev);
    connection->client.uid = pending->peer.uid;
    connection->client.gid = pending->peer.gid;
    connection->client.pid = pending->peer.pid;
    connection->client.grant_generation = UINT64_MAX;
    connection->client.fill_waiter = connection;
    connection->next = worker->connections;
    if (worker->connections != NULL)
        worker->connections->prev = connection;
    worker->connections = connection;
    bufferevent_setcb(connection->bev, connection_read, connection_written, connection_event,
                      connection);
    /* No read high watermark: the parser needs a whole request (up to
     * max_request_bytes) in the buffer, and a watermark below that stalled
     * such a request for ever while the thread spun. The input never holds
     * more than one partial request: complete ones are run and drained, and
     * reading stops while a request is parked. */
    connection_apply_timeouts(connection, config);
    bufferevent_enable(connection->bev, EV_READ | EV_WRITE);
}

static void worker_notify(struct worker *worker);

/* Runs a parked request again once every fill it waited for has answered. */
static void connection_resume(struct connection *connection)
{
    struct worker *worker = connection->worker;
    if (commands_execute(&worker->env, &connection->client, &connection->parked->request) ==
        COMMANDS_BLOCKED)
        return; /* more misses (a user's roles, an entity's parents) */
    parked_free(connection->parked);
    connection->parked = NULL;
    if (connection->client.close_after_reply) {
        connection_close_after_write(connection);
        return;
    }
    if (connection->client.fills_pending > 0) {
        connection->draining = true; /* read stays disabled */
        return;
    }
    bufferevent_enable(connection->bev, EV_READ);
    connection_process(connection);
}

static void worker_take_fill(struct connection *connection, struct fill_result *result)
{
    connection->client.fills_pending--;
    if (connection->bev == NULL) {
        fill_result_release(result);
        if (connection->client.fills_pending == 0)
            connection_free(connection);
        return;
    }
    if (connection->parked == NULL) {
        /* The request was answered without it (CAN found a grant). */
        fill_result_release(result);
        if (connection->client.fills_pending == 0 && connection->draining) {
            connection->draining = false;
            if (connection->client.close_after_reply) {
                connection_close_after_write(connection);
                return;
            }
            bufferevent_enable(connection->bev, EV_READ);
            connection_process(connection);
        }
        return;
    }
    commands_client_add_fill(&connection->client, result);
    if (connection->client.fills_pending == 0)
        connection_resume(connection);
}

void server_deliver_fill(void *waiter, struct fill_result *result)
{
    struct connection *connection = waiter;
    struct worker *worker = connection->worker;
    pthread_mutex_lock(&worker->lock);
    if (worker->fill_count == worker->fill_capacity) {
        worker->fill_capacity = worker->fill_capacity ? worker->fill_capacity * 2 : 16;
        worker->fills = xrealloc(worker->fills, worker->fill_capacity * sizeof(*worker->fills));
    }
    worker->fills[worker->fill_count].connection = connection;
    worker->fills[worker->fill_count].result = result;
    worker->fill_count++;
    pthread_mutex_unlock(&worker->lock);
    worker_notify(worker);
}

/* ---- query threads ---- */

static void worker_notify(struct worker *worker)
{
    char byte = 1;
    ssize_t written;
    do {
        written = write(worker->notify_write, &byte, 1);
    } while (written < 0 && errno == EINTR);
    /* EAGAIN: the pipe is full of wake-ups already, which is as good. */
}

static void worker_stop_now(evutil_socket_t fd, short events, void *arg)
{
    (void)fd;
    (void)events;
    struct worker *worker = arg;
    event_base_loopbreak(worker->base);
}

static void worker_begin_stop(struct worker *worker)
{
    worker->stopping = true;
    struct connection *connection = worker->connections;
    while (connection != NULL) {
        struct connection *next = connection->next;
        /* Requests already read are answered; nothing new is read. A
         * request waiting for fills is answered when they are (the fill
         * engine answers every waiter before the threads stop). */
        if (connection->parked != NULL || connection->draining || connection->bev == NULL) {
            connection->client.close_after_reply = true;
        } else if (!connection->closing) {
            /* What the client sent before the stop is answered too: take
             * what the socket already holds, without waiting for more. */
            struct evbuffer *input = bufferevent_get_input(connection->bev);
            evutil_socket_t fd = bufferevent_getfd(connection->bev);
            uint64_t limit = worker->env.config->listen.max_request_bytes + READ_CHUNK_LIMIT;
            while (evbuffer_get_length(input) < limit && evbuffer_read(input, fd, READ_CHUNK_LIMIT) > 0) {
            }
            if (connection_process(connection))
                connection_close_after_write(connection);
        }
        connection = next;
    }
    struct timeval grace = {.tv_sec = STOP_GRACE_SECONDS};
    worker->stop_timer = evtimer_new(worker->base, worker_stop_now, worker);
    evtimer_add(worker->stop_timer, &grace);
}

static void worker_check_stopped(struct worker *worker)
{
    if (worker->stopping && worker->connections == NULL)
        event_base_loopbreak(worker->base);
}

static void worker_wakeup(evutil_socket_t fd, short events, void *arg)
{
    (void)events;
    struct worker *worker = arg;
    char drain[64];
    while (read(fd, drain, sizeof(drain)) > 0) {
    }
    pthread_mutex_lock(&worker->lock);
    struct pending_fd *queue = worker->queue;
    size_t count = worker->queue_count;
    worker->queue = NULL;
    worker->queue_count = worker->queue_capacity = 0;
    struct delivered_fill *fills = worker->fills;
    size_t fill_count = worker->fill_count;
    worker->fills = NULL;
    worker->fill_count = worker->fill_capacity = 0;
    const struct config *next_config = worker->next_config;
    worker->next_config = NULL;
    bool stop = worker->stop_requested;
    pthread_mutex_unlock(&worker->lock);

    if (next_config != NULL) {
        worker->env.config = next_config;
        worker->env.config_generation++;
        for (struct connection *c = worker->connections; c != NULL; c = c->next) {
            struct protocol_limits limits = {
                .max_request_bytes = next_config->listen.max_request_bytes,
                .max_args = next_config->listen.max_args,
            };
            c->parser.limits = limits;
            connection_apply_timeouts(c, next_config);
        }
        struct server *server = worker->server;
        pthread_mutex_lock(&server->reconfigure_lock);
        server->reconfigure_pending--;
        pthread_cond_broadcast(&server->reconfigured);
        pthread_mutex_unlock(&server->reconfigure_lock);
    }
    for (size_t i = 0; i < count; i++) {
        if (worker->stopping)
            close(queue[i].fd);
        else
            connection_create(worker, &queue[i]);
    }
    free(queue);
    for (size_t i = 0; i < fill_count; i++)
        worker_take_fill(fills[i].connection, fills[i].result);
    free(fills);
    if (stop && !worker->stopping)
        worker_begin_stop(worker);
    worker_check_stopped(worker);
}

static void *worker_main(void *arg)
{
    struct worker *worker = arg;
    event_base_dispatch(worker->base);
    return NULL;
}

static int worker_init(struct server *server, struct worker *worker, unsigned index)
{
    memset(worker, 0, sizeof(*worker));
    worker->server = server;
    worker->index = index;
    worker->env.cache = server->cache;
    worker->env.fill = server->fill;
    worker->env.config = server->config;
    worker->env.config_generation = 1;
    pthread_mutex_init(&worker->lock, NULL);
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
        return -1;
    worker->notify_read = fds[0];
    worker->notify_write = fds[1];
    worker->base = event_base_new();
    if (worker->base == NULL)
        return -1;
    worker->notify_event =
        event_new(worker->base, worker->notify_read, EV_READ | EV_PERSIST, worker_wakeup, worker);
    if (worker->notify_event == NULL || event_add(worker->notify_event, NULL) != 0)
        return -1;
    return 0;
}

static void worker_free(struct worker *worker)
{
    while (worker->connections != NULL) {
        /* At exit nothing answers any more: forget what was pending. */
        worker->connections->client.fills_pending = 0;
        connection_free(worker->connections);
    }
    if (worker->stop_timer != NULL)
        event_free(worker->stop_timer);
    if (worker->notify_event != NULL)
        event_free(worker->notify_event);
    if (worker->base != NULL)
        event_base_free(worker->base);
    if (worker->notify_read > 0)
        close(worker->notify_read);
    if (worker->notify_write > 0)
        close(worker->notify_write);
    for (size_t i = 0; i < worker->queue_count; i++)
        close(worker->queue[i].fd);
    free(worker->queue);
    for (size_t i = 0; i < worker->fill_count; i++) {
        worker->fills[i].connection->client.fills_pending--;
        fill_result_release(worker->fills[i].result);
    }
    free(worker->fills);
    pthread_mutex_destroy(&worker->lock);
}

/* ---- the listening socket (main thread) ---- */

static void reject_connection(int fd, const char *reply)
{
    ssize_t ignored = write(fd, reply, strlen(reply));
    (void)ignored;
    close(fd);
    stats_add(&stats.connections_rejected, 1);
}

static void accept_connection(struct evconnlistener *listener, evutil_socket_t fd,
                              struct sockaddr *address, int address_len, void *arg)
{
    (void)listener;
    (void)address;
    (void)address_len;
    struct server *server = arg;
    stats_add(&stats.connections_received, 1);
    if (stats_get(&stats.connected_clients) >= server->config->listen.max_clients) {
        reject_connection(fd, "-ERR max clients reached\r\n");
        return;
    }
    struct pending_fd pending = {.fd = fd};
    socklen_t length = sizeof(pending.peer);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &pending.peer, &length) != 0) {
        log_limited(&accept_log, 10000, LOG_LEVEL_WARNING, "SO_PEERCRED failed: %s",
                    strerror(errno));
        reject_connection(fd, "-ERR cannot identify peer\r\n");
        return;
    }
    stats_add(&stats.connected_clients, 1);
    struct worker *worker = &server->workers[server->next_worker++ % server->worker_count];
    pthread_mutex_lock(&worker->lock);
    if (worker->queue_count == worker->queue_capacity) {
        worker->queue_capacity = worker->queue_capacity ? worker->queue_capacity * 2 : 16;
        worker->queue = xrealloc(worker->queue, worker->queue_capacity * sizeof(*worker->queue));
    }
    worker->queue[worker->queue_count++] = pending;
    pthread_mutex_unlock(&worker->lock);
    worker_notify(worker);
}

static void accept_error(struct evconnlistener *listener, void *arg)
{
    struct server *server = arg;
    int error = EVUTIL_SOCKET_ERROR();
    if ((error == EMFILE || error == ENFILE) && server->spare_fd >= 0) {
        /* Out of descriptors: use the spare one to accept and drop a
         * pending connection, so the client hears of it instead of hanging. */
        close(server->spare_fd);
        int fd = accept(evconnlistener_get_fd(listener), NULL, NULL);
        if (fd >= 0)
            reject_connection(fd, "-ERR server out of file descriptors\r\n");
        server->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    log_limited(&accept_log, 10000, LOG_LEVEL_WARNING, "accept: %s", strerror(error));
}

/* Creates, binds and listens on a Unix socket as SPEC §8 says: a stale file
 * is replaced, a live listener makes us refuse. Returns the fd or -1. */
static int listen_unix(const struct config *config, char *error, size_t error_size)
{
    const char *path = config->listen.socket;
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(address.sun_path)) {
        snprintf(error, error_size, "socket path too long: %s", path);
        return -1;
    }
    memcpy(address.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(error, error_size, "socket: %s", strerror(errno));
        return -1;
    }
    struct stat status;
    if (lstat(path, &status) == 0) {
        if (!S_ISSOCK(status.st_mode)) {
            snprintf(error, error_size, "%s exists and is not a socket", path);
            goto fail;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&address, sizeof(address)) == 0) {
            close(probe);
            snprintf(error, error_size, "%s is in use by a running instance", path);
            goto fail;
        }
        if (probe >= 0)
            close(probe);
        unlink(path);
    }
    mode_t mode = (mode_t)config->listen.mode;
    mode_t old_umask = umask((mode_t)(~mode & 0777));
    int bound = bind(fd, (struct sockaddr *)&address, sizeof(address));
    umask(old_umask);
    if (bound != 0) {
        snprintf(error, error_size, "bind %s: %s", path, strerror(errno));
        goto fail;
    }
    if (chmod(path, mode) != 0) {
        snprintf(error, error_size, "chmod %s: %s", path, strerror(errno));
        goto fail_unlink;
    }
    if (config->listen.group[0] != '\0') {
        char buffer[4096];
        struct group entry, *found = NULL;
        if (getgrnam_r(config->listen.group, &entry, buffer, sizeof(buffer), &found) != 0 ||
            found == NULL) {
            snprintf(error, error_size, "listen.group: no group '%s'", config->listen.group);
            goto fail_unlink;
        }
        if (chown(path, (uid_t)-1, found->gr_gid) != 0) {
            snprintf(error, error_size, "chown %s: %s", path, strerror(errno));
            goto fail_unlink;
        }
    }
    if (listen(fd, LISTEN_BACKLOG) != 0) {
        snprintf(error, error_size, "listen %s: %s", path, strerror(errno));
        goto fail_unlink;
    }
    return fd;

fail_unlink:
    unlink(path);
fail:
    close(fd);
    return -1;
}

static int server_listen(struct server *server, const struct config *config, char *error,
                         size_t error_size)
{
    int fd = listen_unix(config, error, error_size);
    if (fd < 0)
        return -1;
    struct evconnlistener *listener = evconnlistener_new(
        server->main_base, accept_connection, server, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (listener == NULL) {
        snprintf(error, error_size, "cannot watch the socket");
        close(fd);
        unlink(config->listen.socket);
        return -1;
    }
    evconnlistener_set_error_cb(listener, accept_error);
    if (server->listener != NULL) {
        evconnlistener_free(server->listener);
        if (strcmp(server->socket_path, config->listen.socket) != 0)
            unlink(server->socket_path);
        free(server->socket_path);
    }
    server->listener = listener;
    server->socket_path = xstrdup(config->listen.socket);
    return 0;
}

struct server *server_start(struct event_base *main_base, struct cache *cache, struct fill *fill,
                            const struct config *config, char *error, size_t error_size)
{
    struct server *server = xcalloc(1, sizeof(*server));
    server->main_base = main_base;
    server->cache = cache;
    server->fill = fill;
    server->config = config;
    server->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    pthread_mutex_init(&server->reconfigure_lock, NULL);
    pthread_cond_init(&server->reconfigured, NULL);
    server->worker_count = config->threads > 0 ? config->threads : 1;
    server->workers = xcalloc(server->worker_count, sizeof(*server->workers));
    unsigned started = 0;
    for (unsigned i = 0; i < server->worker_count; i++) {
        if (worker_init(server, &server->workers[i], i) != 0) {
            snprintf(error, error_size, "cannot set up query thread %u: %s", i, strerror(errno));
            goto fail;
        }
    }
    if (server_listen(server, config, error, error_size) != 0)
        goto fail;
    for (; started < server->worker_count; started++) {
        int rc = pthread_create(&server->workers[started].thread, NULL, worker_main,
                                &server->workers[started]);
        if (rc != 0) {
            snprintf(error, error_size, "pthread_create: %s", strerror(rc));
            goto fail;
        }
    }
    return server;

fail:
    for (unsigned i = 0; i < started; i++) {
        event_base_loopbreak(server->workers[i].base);
        worker_notify(&server->workers[i]);
        pthread_join(server->workers[i].thread, NULL);
    }
    for (unsigned i = 0; i < server->worker_count; i++)
        worker_free(&server->workers[i]);
    if (server->listener != NULL) {
        evconnlistener_free(server->listener);
        unlink(server->socket_path);
    }
    free(server->socket_path);
    free(server->workers);
    if (server->spare_fd >= 0)
        close(server->spare_fd);
    free(server);
    return NULL;
}

int server_reconfigure(struct server *server, const struct config *config, char *error,
                       size_t error_size)
{
    const struct config *old = server->config;
    if (strcmp(old->listen.socket, config->listen.socket) != 0 ||
        old->listen.mode != config->listen.mode ||
        strcmp(old->listen.group, config->listen.group) != 0) {
        if (strcmp(old->listen.socket, config->listen.socket) == 0) {
            /* Same path: our own live listener would make listen_unix refuse. */
            evconnlistener_free(server->listener);
            server->listener = NULL;
            unlink(server->socket_path);
        }
        if (server_listen(server, config, error, error_size) != 0) {
            if (server->listener == NULL && server_listen(server, old, error, error_size) != 0)
                log_error("cannot listen on %s again either", old->listen.socket);
            return -1;
        }
        log_notice("listening on %s", config->listen.socket);
    }
    server->config = config;
    pthread_mutex_lock(&server->reconfigure_lock);
    server->reconfigure_pending = server->worker_count;
    pthread_mutex_unlock(&server->reconfigure_lock);
    for (unsigned i = 0; i < server->worker_count; i++) {
        struct worker *worker = &server->workers[i];
        pthread_mutex_lock(&worker->lock);
        worker->next_config = config;
        pthread_mutex_unlock(&worker->lock);
        worker_notify(worker);
    }
    pthread_mutex_lock(&server->reconfigure_lock);
    while (server->reconfigure_pending > 0)
        pthread_cond_wait(&server->reconfigured, &server->reconfigure_lock);
    pthread_mutex_unlock(&server->reconfigure_lock);
    return 0;
}

void server_stop(struct server *server)
{
    if (server == NULL)
        return;
    if (server->listener != NULL)
        evconnlistener_free(server->listener);
    for (unsigned i = 0; i < server->worker_count; i++) {
        struct worker *worker = &server->workers[i];
        pthread_mutex_lock(&worker->lock);
        worker->stop_requested = true;
        pthread_mutex_unlock(&worker->lock);
        worker_notify(worker);
    }
    for (unsigned i = 0; i < server->worker_count; i++)
        pthread_join(server->workers[i].thread, NULL);
    for (unsigned i = 0; i < server->worker_count; i++)
        worker_free(&server->workers[i]);
    if (server->socket_path != NULL)
        unlink(server->socket_path);
    free(server->socket_path);
    free(server->workers);
    if (server->spare_fd >= 0)
        close(server->spare_fd);
    pthread_mutex_destroy(&server->reconfigure_lock);
    pthread_cond_destroy(&server->reconfigured);
    free(server);
}
