/* server.c - the Unix socket, its connections and the query threads (see server.h).
 *
 * Threads talk through a pipe per query thread: the main thread queues a
 * connection or a config under the thread's mutex and writes one byte; the
 * query thread drains its queue from its own event loop. Nothing else is
 * shared but the caches (which have their own locks) and the counters.
 *
 * A connection is its socket, a persistent EV_READ event, a contiguous input
 * buffer and a reply_buffer, as in redis-server: each wakeup reads what the
 * socket holds, runs every complete request and sends all the replies with
 * one send(); EV_WRITE is armed only while the socket is full. That is two
 * system calls per unpipelined request. */
#include "server.h"

#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "blocked.h"
#include "client.h"
#include "commands.h"
#include "config.h"
#include "fill.h"
#include "log.h"
#include "metrics.h"
#include "protocol.h"
#include "reply.h"
#include "stats.h"
#include "tracking.h"
#include "util.h"

#define LISTEN_BACKLOG 1024
#define STOP_GRACE_SECONDS 3
#define READ_CHUNK_LIMIT (256 * 1024) /* read per wakeup, for fairness between clients */
#define INPUT_INITIAL (16 * 1024)     /* the input buffer's first size */
#define INPUT_KEEP (64 * 1024)        /* an emptied input buffer above this is freed */
#define READ_MIN_SPACE 4096           /* less free space than this: compact or grow first */
#define BULK_FRAMING_MAX 26           /* "$" + 20 digits + CRLF, and the CRLF after the data */

struct worker;

struct connection {
    struct worker *worker;
    int fd;
    struct event *read_event;  /* persistent; added while requests are read */
    struct event *write_event; /* persistent; added only while the socket is full */
    struct event *idle_event;  /* idle_timeout, while requests are read */
    bool reading;              /* read_event and idle_event are added */
    bool writing;              /* write_event is added */
    uint64_t idle_since_us;    /* monotonic; the last read, or reading resumed, or a reload */
    /* Unread input is in[in_start..in_end). While reading it is at most one
     * partial request: every complete one is run as soon as it is read. */
    char *in;
    size_t in_start;
    size_t in_end;
    size_t in_capacity;
    struct reply_buffer out;
    struct protocol_parser parser;
    struct commands_client client; /* client.blocked: a request waiting for fills */
    struct connection *prev;
    struct connection *next;
    bool closing;              /* replying a last time, then closed */
    size_t held;               /* unparsed input + unsent replies, as counted in
                                  stats.client_buffer_bytes */
};

struct delivered_fill {
    struct blocked *waiter;
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
    struct tracking_sink *tracking; /* CLIENT TRACKING pushes for its connections */
    struct commands_env env;
    struct connection *connections;
    bool stopping;
    /* max_buffer_memory: at least what this thread's largest connection
     * holds (written by this thread only; stale-high until its next scan),
     * and a request from another thread to drop its largest. */
    _Atomic size_t largest_held;
    _Atomic bool shed_requested;

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

/* Brings the clients' total (stats.client_buffer_bytes, bounded by
 * listen.max_buffer_memory) up to date with what this connection holds:
 * its unparsed input and its unsent replies. Cannot fail. */
static void connection_account(struct connection *connection)
{
    size_t held = (connection->in_end - connection->in_start) +
                  reply_buffer_length(&connection->out);
    if (held > connection->held)
        stats_add(&stats.client_buffer_bytes, held - connection->held);
    else if (held < connection->held)
        stats_sub(&stats.client_buffer_bytes, connection->held - held);
    connection->held = held;
    struct worker *worker = connection->worker;
    if (held > atomic_load_explicit(&worker->largest_held, memory_order_relaxed))
        atomic_store_explicit(&worker->largest_held, held, memory_order_relaxed);
}

static void connection_free_events(struct connection *connection)
{
    /* A plain event may be freed from its own callback: libevent touches
     * nothing of it after running the callback. */
    if (connection->read_event != NULL)
        event_free(connection->read_event);
    if (connection->write_event != NULL)
        event_free(connection->write_event);
    if (connection->idle_event != NULL)
        event_free(connection->idle_event);
    connection->read_event = connection->write_event = connection->idle_event = NULL;
    connection->reading = connection->writing = false;
}

/* Closes the socket and frees the connection. A request it had parked is
 * left to blocked.c, which frees it once its fills answered. */
static void connection_free(struct connection *connection)
{
    struct worker *worker = connection->worker;
    stats_sub(&stats.client_buffer_bytes, connection->held);
    connection_free_events(connection);
    close(connection->fd);
    free(connection->in);
    reply_buffer_free(&connection->out);
    stats_sub(&stats.connected_clients, 1);
    tracking_client_close(&connection->client);
    client_unregister(&connection->client);
    if (connection->prev != NULL)
        connection->prev->next = connection->next;
    else
        worker->connections = connection->next;
    if (connection->next != NULL)
        connection->next->prev = connection->prev;
    protocol_parser_free(&connection->parser);
    acl_grant_clear(&connection->client.grant);
    client_release(&connection->client);
    blocked_detach(connection->client.blocked);
    free(connection);
    if (worker->stopping && worker->connections == NULL)
        event_base_loopbreak(worker->base);
}

/* True while requests may be run: not closing and nothing parked. Replies
 * go out in request order, so nothing more is read or run while an earlier
 * request waits. */
static bool connection_running(const struct connection *connection)
{
    return !connection->closing && !blocked_waiting(connection->client.blocked);
}

/* (Re)arms the idle timer for what is left of idle_timeout since
 * idle_since_us: one timer update per idle period instead of one per read. */
static void connection_arm_idle(struct connection *connection)
{
    uint64_t idle_us = connection->worker->env.config->listen.idle_timeout_ms * 1000;
    if (idle_us == 0 || !connection->reading) {
        evtimer_del(connection->idle_event);
        return;
    }
    uint64_t quiet_us = util_monotonic_us() - connection->idle_since_us;
    uint64_t left_us = quiet_us < idle_us ? idle_us - quiet_us : 0;
    struct timeval left = {
        .tv_sec = (time_t)(left_us / 1000000),
        .tv_usec = (suseconds_t)(left_us % 1000000),
    };
    evtimer_add(connection->idle_event, &left);
}

/* Reads while requests may be run and the server is not stopping. The idle
 * clock restarts when reading does: waiting for fills is not idleness. */
static void connection_update_read(struct connection *connection)
{
    bool want = connection_running(connection) && !connection->worker->stopping;
    if (want == connection->reading)
        return;
    connection->reading = want;
    if (want) {
        event_add(connection->read_event, NULL);
        connection->idle_since_us = util_monotonic_us();
        connection_arm_idle(connection);
    } else {
        event_del(connection->read_event);
        evtimer_del(connection->idle_event);
    }
}

static void connection_update_write(struct connection *connection, bool want)
{
    if (want == connection->writing)
        return;
    connection->writing = want;
    if (want)
        event_add(connection->write_event, NULL);
    else
        event_del(connection->write_event);
}

/* Sends the pending replies with one send(); what the socket does not take
 * waits for EV_WRITE. Frees the connection when the peer is gone, or when it
 * was closing and everything is sent. Returns false if it was freed. */
static bool connection_send(struct connection *connection)
{
    struct reply_buffer *out = &connection->out;
    size_t pending = reply_buffer_length(out);
    if (pending > 0) {
        ssize_t sent;
        do {
            sent = send(connection->fd, reply_buffer_data(out), pending, MSG_NOSIGNAL);
        } while (sent < 0 && errno == EINTR);
        if (sent < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            /* The peer is gone: nothing more can be delivered. */
            connection_free(connection);
            return false;
        }
        if (sent > 0)
            reply_buffer_drain(out, (size_t)sent);
        pending = reply_buffer_length(out);
        connection_account(connection);
    }
    connection_update_write(connection, pending > 0);
    if (pending == 0 && connection->closing) {
        connection_free(connection);
        return false;
    }
    return true;
}

/* Sends the replies added, unless the socket is known to be full (then the
 * write event sends them). Returns false if the connection was freed. */
static bool connection_flush(struct connection *connection)
{
    if (connection->writing)
        return true;
    return connection_send(connection);
}

/* Stops reading and closes once every pending reply is written. Returns
 * false if that was at once (the connection is freed). */
static bool connection_close_after_write(struct connection *connection)
{
    connection->closing = true;
    connection_update_read(connection);
    return connection_flush(connection);
}

/* The peer closed (eof) or reset the connection: replies already made go
 * out if the socket takes them at once (a client that only shut down its
 * writing still reads), then the connection closes. */
static void connection_lost(struct connection *connection, bool eof)
{
    size_t pending = reply_buffer_length(&connection->out);
    if (eof && pending > 0 && !connection->writing) {
        ssize_t ignored = send(connection->fd, reply_buffer_data(&connection->out), pending,
                               MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)ignored;
    }
    connection_free(connection);
}

/* A client that pipelines without reading is dropped, not buffered without
 * bound: called when the unsent replies exceed max_reply_backlog, it sends
 * what the socket takes and drops the client if they still do. Returns
 * false if the connection was freed. */
static bool connection_check_backlog(struct connection *connection, uint64_t limit)
{
    if (!connection_flush(connection))
        return false;
    size_t unsent = reply_buffer_length(&connection->out);
    if (unsent <= limit)
        return true;
    stats_add(&stats.clients_dropped_backlog, 1);
    log_limited(&accept_log, 10000, LOG_LEVEL_WARNING,
                "dropping client pid %ld: %zu bytes of replies unread (max_reply_backlog)",
                (long)connection->client.pid, unsent);
    connection_free(connection);
    return false;
}

/* Runs every complete request in the input buffer. Returns false if the
 * connection was freed. */
static bool connection_process(struct connection *connection)
{
    struct worker *worker = connection->worker;
    uint64_t backlog_limit = worker->env.config->listen.max_reply_backlog;
    while (connection_running(connection) && connection->in_start < connection->in_end) {
        size_t consumed = 0;
        struct protocol_request request;
        enum protocol_status status =
            protocol_parse(&connection->parser, connection->in + connection->in_start,
                           connection->in_end - connection->in_start, &consumed, &request);
        if (status == PROTOCOL_INCOMPLETE)
            break;
        if (status == PROTOCOL_ERROR) {
            stats_add(&stats.protocol_errors, 1);
            reply_error(&connection->out, "ERR Protocol error: %s", connection->parser.error);
            connection->in_start = connection->in_end = 0;
            return connection_close_after_write(connection);
        }
        if (status == PROTOCOL_REQUEST) {
            uint64_t started_us = util_monotonic_us();
            /* A request that waits for fills is parked by blocked.c:
             * nothing more is read or run until it is answered. */
            if (commands_execute(&worker->env, &connection->client, &request, started_us / 1000) ==
                COMMANDS_DONE)
                metrics_observe_latency((double)(util_monotonic_us() - started_us) / 1e6);
        }
        connection->in_start += consumed;
        if (reply_buffer_length(&connection->out) > backlog_limit &&
            !connection_check_backlog(connection, backlog_limit))
            return false;
        if (connection->client.close_after_reply)
            return connection_close_after_write(connection);
    }
    if (connection->in_start == connection->in_end) {
        connection->in_start = connection->in_end = 0;
        if (connection->in_capacity > INPUT_KEEP) {
            /* A large request is done: do not hold its buffer while idle. */
            free(connection->in);
            connection->in = NULL;
            connection->in_capacity = 0;
        }
    }
    connection_account(connection);
    connection_update_read(connection);
    return true;
}

/* Makes room at the end of the input for a read and returns how much: the
 * consumed bytes are moved out, and the buffer doubles while it holds one
 * partial request, up to what the largest request allowed can take
 * (max_request_bytes and the framing of max_args arguments). Returns 0 when
 * that is full: the request can only be too large. */
static size_t connection_input_space(struct connection *connection)
{
    if (connection->in_capacity - connection->in_end >= READ_MIN_SPACE)
        return connection->in_capacity - connection->in_end;
    if (connection->in_start > 0) {
        size_t unread = connection->in_end - connection->in_start;
        memmove(connection->in, connection->in + connection->in_start, unread);
        connection->in_start = 0;
        connection->in_end = unread;
        if (connection->in_capacity - connection->in_end >= READ_MIN_SPACE)
            return connection->in_capacity - connection->in_end;
    }
    /* The limits of the request being received (a reload does not shrink them). */
    const struct protocol_limits *limits = &connection->parser.limits;
    uint64_t limit = limits->max_request_bytes + PROTOCOL_INLINE_MAX + 64 +
                     (uint64_t)limits->max_args * BULK_FRAMING_MAX;
    if (connection->in_capacity < limit) {
        size_t capacity = connection->in_capacity ? connection->in_capacity * 2 : INPUT_INITIAL;
        if (capacity > limit)
            capacity = (size_t)limit;
        connection->in = xrealloc(connection->in, capacity);
        connection->in_capacity = capacity;
    }
    return connection->in_capacity - connection->in_end;
}

/* Reads what the socket holds, at most limit bytes, running the requests as
 * they complete. A read that leaves space unfilled found the socket empty
 * (epoll reports it again when more comes), so the usual wakeup costs one
 * read; until_empty (stopping) reads on to EAGAIN. Returns false if the
 * connection was freed. */
static bool connection_read(struct connection *connection, size_t limit, bool until_empty)
{
    size_t total = 0;
    while ((until_empty ? connection_running(connection) : connection->reading) && total < limit) {
        size_t space = connection_input_space(connection);
        if (space == 0) {
            stats_add(&stats.protocol_errors, 1);
            reply_error(&connection->out, "ERR Protocol error: request too large");
            connection->in_start = connection->in_end = 0;
            return connection_close_after_write(connection);
        }
        ssize_t got = read(connection->fd, connection->in + connection->in_end, space);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (got <= 0) {
            connection_lost(connection, got == 0);
            return false;
        }
        connection->in_end += (size_t)got;
        connection_account(connection);
        total += (size_t)got;
        connection->idle_since_us = util_monotonic_us();
        if (!connection_process(connection))
            return false;
        if ((size_t)got < space && !until_empty)
            break;
    }
    return true;
}

static void worker_notify(struct worker *worker);

/* listen.max_buffer_memory: while the clients' buffers together hold more,
 * drops the connection that holds the most (docs/reference.md §8). Called
 * where this thread's connections may have grown (a read, fills answered),
 * and when another thread asks. Each thread publishes what its largest
 * connection holds; when another thread's is larger, that thread is asked
 * to shed instead (it corrects a stale figure first, so asking goes back
 * and forth at most until the figures are current). */
static void worker_shed(struct worker *worker)
{
    uint64_t limit = worker->env.config->listen.max_buffer_memory;
    struct server *server = worker->server;
    while (stats_get(&stats.client_buffer_bytes) > limit) {
        struct connection *largest = NULL;
        for (struct connection *c = worker->connections; c != NULL; c = c->next) {
            if (largest == NULL || c->held > largest->held)
                largest = c;
        }
        size_t mine = largest != NULL ? largest->held : 0;
        atomic_store_explicit(&worker->largest_held, mine, memory_order_relaxed);
        struct worker *bigger = NULL;
        size_t most = mine;
        for (unsigned i = 0; i < server->worker_count; i++) {
            struct worker *other = &server->workers[i];
            size_t held = atomic_load_explicit(&other->largest_held, memory_order_relaxed);
            if (other != worker && held > most) {
                most = held;
                bigger = other;
            }
        }
        if (bigger != NULL) {
            atomic_store(&bigger->shed_requested, true);
            worker_notify(bigger);
            return;
        }
        if (mine == 0)
            return;
        stats_add(&stats.clients_dropped_memory, 1);
        log_limited(&accept_log, 10000, LOG_LEVEL_WARNING,
                    "dropping client pid %ld: it holds %zu bytes of input and replies, the most "
                    "while all clients hold more than max_buffer_memory",
                    (long)largest->client.pid, largest->held);
        connection_free(largest);
    }
}

static void connection_readable(evutil_socket_t fd, short events, void *arg)
{
    (void)fd;
    (void)events;
    struct connection *connection = arg;
    struct worker *worker = connection->worker;
    if (connection_read(connection, READ_CHUNK_LIMIT, false))
        connection_flush(connection);
    worker_shed(worker);
}

static void connection_writable(evutil_socket_t fd, short events, void *arg)
{
    (void)fd;
    (void)events;
    connection_send(arg);
}

static void connection_idle(evutil_socket_t fd, short events, void *arg)
{
    (void)fd;
    (void)events;
    struct connection *connection = arg;
    uint64_t idle_us = connection->worker->env.config->listen.idle_timeout_ms * 1000;
    if (!connection->reading || idle_us == 0)
        return;
    if (util_monotonic_us() - connection->idle_since_us < idle_us) {
        connection_arm_idle(connection); /* read since: wait for the rest */
        return;
    }
    stats_add(&stats.clients_dropped_idle, 1);
    /* Nothing more can be delivered to a client that went quiet. */
    connection_free(connection);
}

static void connection_create(struct worker *worker, const struct pending_fd *pending)
{
    const struct config *config = worker->env.config;
    struct connection *connection = xcalloc(1, sizeof(*connection));
    connection->worker = worker;
    connection->fd = pending->fd;
    connection->read_event = event_new(worker->base, pending->fd, EV_READ | EV_PERSIST,
                                       connection_readable, connection);
    connection->write_event = event_new(worker->base, pending->fd, EV_WRITE | EV_PERSIST,
                                        connection_writable, connection);
    connection->idle_event = evtimer_new(worker->base, connection_idle, connection);
    if (connection->read_event == NULL || connection->write_event == NULL ||
        connection->idle_event == NULL) {
        connection_free_events(connection);
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
    connection->client.out = &connection->out;
    connection->client.uid = pending->peer.uid;
    connection->client.gid = pending->peer.gid;
    connection->client.pid = pending->peer.pid;
    connection->client.grant_generation = UINT64_MAX;
    connection->client.blocked = blocked_create(worker, connection);
    client_register(&connection->client, util_monotonic_ms());
    tracking_client_open(&connection->client, worker->tracking, connection);
    connection->next = worker->connections;
    if (worker->connections != NULL)
        worker->connections->prev = connection;
    worker->connections = connection;
    connection_update_read(connection);
}

/* Once a parked request is answered: runs what was read after it
 * and sends the replies; when stopping, closes once nothing is left to run. */
static void connection_continue(struct connection *connection)
{
    if (!connection_process(connection))
        return;
    if (connection->worker->stopping && connection_running(connection))
        connection_close_after_write(connection);
    else
        connection_flush(connection);
}


/* Runs a parked request again once every fill it waited for has answered. */
static void connection_resume(struct connection *connection)
{
    struct worker *worker = connection->worker;
    struct blocked *blocked = connection->client.blocked;
    if (commands_execute(&worker->env, &connection->client, blocked_request(blocked),
                         util_monotonic_ms()) == COMMANDS_BLOCKED)
        return; /* more misses (a user's roles, an entity's parents) */
    if (connection->client.close_after_reply) {
        connection_close_after_write(connection);
        return;
    }
    connection_continue(connection);
}

/* A fill's answer on the waiter's query thread (takes the reference). */
static void worker_take_fill(struct blocked *waiter, struct fill_result *result)
{
    struct connection *connection = blocked_owner(waiter);
    if (blocked_answer(waiter, result) == BLOCKED_READY)
        connection_resume(connection);
}

void server_deliver_fill(struct blocked *waiter, struct fill_result *result)
{
    struct worker *worker = blocked_home(waiter);
    pthread_mutex_lock(&worker->lock);
    if (worker->fill_count == worker->fill_capacity) {
        worker->fill_capacity = worker->fill_capacity ? worker->fill_capacity * 2 : 16;
        worker->fills = xrealloc(worker->fills, worker->fill_capacity * sizeof(*worker->fills));
    }
    worker->fills[worker->fill_count].waiter = waiter;
    worker->fills[worker->fill_count].result = result;
    worker->fill_count++;
    pthread_mutex_unlock(&worker->lock);
    worker_notify(worker);
}

/* ---- query threads ---- */

/* tracking_drain()'s callback: invalidation pushes were added to the
 * connection's output, between two requests; send them (dropping a client
 * that lets them pile up, as for replies). */
static void worker_tracking_written(void *arg, void *conn)
{
    struct connection *connection = conn;
    uint64_t limit = ((struct worker *)arg)->env.config->listen.max_reply_backlog;
    if (connection->fd < 0)
        return;
    if (reply_buffer_length(&connection->out) > limit)
        connection_check_backlog(connection, limit);
    else
        connection_flush(connection);
}

/* tracking_drain()'s first callback: the grant its pushes are filtered by. */
static void worker_tracking_prepare(void *arg, void *conn)
{
    struct connection *connection = conn;
    commands_client_grant(&((struct worker *)arg)->env, &connection->client);
}

/* The tracking sink's wake-up: a byte in the pipe (any thread). */
static void worker_tracking_wake(void *arg)
{
    worker_notify(arg);
}

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
    uint64_t limit = worker->env.config->listen.max_request_bytes + READ_CHUNK_LIMIT;
    struct connection *connection = worker->connections;
    while (connection != NULL) {
        struct connection *next = connection->next;
        /* Requests already read are answered; nothing new is read. A
         * request waiting for fills is answered when they are (the fill
         * engine answers every waiter before the threads stop), and what
         * was read after it then; connection_continue closes. What the
         * client sent before the stop is answered too: take what the socket
         * already holds, without waiting for more. */
        if (connection_running(connection) &&
            connection_read(connection, (size_t)limit, true) && connection_running(connection))
            connection_close_after_write(connection);
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
            protocol_parser_set_limits(&c->parser, &limits);
            /* The new idle_timeout counts from now, as a bufferevent's did. */
            c->idle_since_us = util_monotonic_us();
            connection_arm_idle(c);
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
        worker_take_fill(fills[i].waiter, fills[i].result);
    free(fills);
    if (atomic_exchange(&worker->shed_requested, false) || fill_count > 0)
        worker_shed(worker);
    tracking_drain(worker->tracking, worker_tracking_prepare, worker_tracking_written, worker);
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
    worker->tracking = tracking_sink_create(worker_tracking_wake, worker);
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
    while (worker->connections != NULL)
        connection_free(worker->connections);
    if (worker->stop_timer != NULL)
        event_free(worker->stop_timer);
    if (worker->notify_event != NULL)
        event_free(worker->notify_event);
    tracking_sink_destroy(worker->tracking);
    worker->tracking = NULL;
    if (worker->base != NULL)
        event_base_free(worker->base);
    if (worker->notify_read > 0)
        close(worker->notify_read);
    if (worker->notify_write > 0)
        close(worker->notify_write);
    for (size_t i = 0; i < worker->queue_count; i++)
        close(worker->queue[i].fd);
    free(worker->queue);
    for (size_t i = 0; i < worker->fill_count; i++)
        blocked_answer(worker->fills[i].waiter, worker->fills[i].result); /* owners are gone */
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

/* Creates, binds and listens on a Unix socket as docs/reference.md §8 says: a stale file
 * is replaced, a live listener makes us refuse. Returns the fd or -1. */
static int listen_unix(const struct config *config, char *error)
{
    const char *path = config->listen.socket;
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof(address.sun_path)) {
        snprintf(error, ERROR_MAX, "socket path too long: %s", path);
        return -1;
    }
    memcpy(address.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(error, ERROR_MAX, "socket: %s", strerror(errno));
        return -1;
    }
    struct stat status;
    if (lstat(path, &status) == 0) {
        if (!S_ISSOCK(status.st_mode)) {
            snprintf(error, ERROR_MAX, "%s exists and is not a socket", path);
            goto fail;
        }
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&address, sizeof(address)) == 0) {
            close(probe);
            snprintf(error, ERROR_MAX, "%s is in use by a running instance", path);
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
        snprintf(error, ERROR_MAX, "bind %s: %s", path, strerror(errno));
        goto fail;
    }
    if (chmod(path, mode) != 0) {
        snprintf(error, ERROR_MAX, "chmod %s: %s", path, strerror(errno));
        goto fail_unlink;
    }
    if (config->listen.group[0] != '\0') {
        char buffer[4096];
        struct group entry, *found = NULL;
        if (getgrnam_r(config->listen.group, &entry, buffer, sizeof(buffer), &found) != 0 ||
            found == NULL) {
            snprintf(error, ERROR_MAX, "listen.group: no group '%s'", config->listen.group);
            goto fail_unlink;
        }
        if (chown(path, (uid_t)-1, found->gr_gid) != 0) {
            snprintf(error, ERROR_MAX, "chown %s: %s", path, strerror(errno));
            goto fail_unlink;
        }
    }
    if (listen(fd, LISTEN_BACKLOG) != 0) {
        snprintf(error, ERROR_MAX, "listen %s: %s", path, strerror(errno));
        goto fail_unlink;
    }
    return fd;

fail_unlink:
    unlink(path);
fail:
    close(fd);
    return -1;
}

static int server_listen(struct server *server, const struct config *config, char *error)
{
    int fd = listen_unix(config, error);
    if (fd < 0)
        return -1;
    struct evconnlistener *listener = evconnlistener_new(
        server->main_base, accept_connection, server, LEV_OPT_CLOSE_ON_FREE, -1, fd);
    if (listener == NULL) {
        snprintf(error, ERROR_MAX, "cannot watch the socket");
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
                            const struct config *config, char *error)
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
            snprintf(error, ERROR_MAX, "cannot set up query thread %u: %s", i, strerror(errno));
            goto fail;
        }
    }
    if (server_listen(server, config, error) != 0)
        goto fail;
    for (; started < server->worker_count; started++) {
        int rc = pthread_create(&server->workers[started].thread, NULL, worker_main,
                                &server->workers[started]);
        if (rc != 0) {
            snprintf(error, ERROR_MAX, "pthread_create: %s", strerror(rc));
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

int server_reconfigure(struct server *server, const struct config *config, char *error)
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
        if (server_listen(server, config, error) != 0) {
            if (server->listener == NULL && server_listen(server, old, error) != 0)
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
