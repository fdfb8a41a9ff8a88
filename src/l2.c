/* l2.c - the L2 fill source (docs/reference.md §5): GET and SET on a plain Redis
 * connection of its own, separate from the pub/sub one.
 *
 * The connection (connect, AUTH, SELECT redis.db, a PING so that "ready"
 * means "Redis answers", connect_timeout, reconnect with backoff) is a
 * redis_link. This file adds the requests: every GET is a record with its own
 * libevent timer, answered exactly once by whichever comes first, the reply
 * or the timer. hiredis calls every reply callback exactly once (with a NULL
 * reply when the context is freed), so a record lives until both have
 * happened: answered, and no longer held by hiredis.
 *
 * A GET that cannot be sent is answered L2_FAILED from the loop (its timer
 * armed at zero), never from inside l2_get(), so that callers are not
 * re-entered from their own call. The NULL replies of a context being freed
 * are answered the same way, so that no done callback runs inside hiredis's
 * or redis_link's teardown. A real reply is answered from inside the hiredis
 * reply callback.
 *
 * A GET timeout (of at least L2_SILENCE_MIN_MS) on a connection from which
 * nothing at all arrived since that GET was sent (Redis stopped, a network
 * gone silent) drops the connection, which answers the GETs behind it: while
 * it is made again (the handshake bounded by connect_timeout), l2_ready() is
 * false and fills skip L2 instead of each waiting out its timeout. A reply
 * that arrives after its GET timed out is dropped.
 *
 * Only the first connection is waited for: until its first attempt ends
 * (up, or failed within connect_timeout), a GET waits on the pending list
 * unsent, and is sent when the link comes up or answered L2_FAILED when the
 * attempt fails. Nothing is known to be wrong yet, and a daemon just
 * started should not send its first misses to the origin (or answer them
 * -UNAVAILABLE) for want of a few milliseconds. */
#include "l2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "config.h"
#include "log.h"
#include "redis_link.h"
#include "util.h"

#define L2_LOG_INTERVAL_MS 10000
/* A GET timeout shorter than this says nothing about the connection. */
#define L2_SILENCE_MIN_MS 100

struct l2_request;

/* A doubly-linked list of requests (unordered use: removal is O(1)). */
struct l2_list {
    struct l2_request *head;
};

struct l2_request {
    struct l2 *l2;            /* NULL once l2_destroy() let go of the record */
    struct l2_list *list;     /* the list of l2 it is on, or NULL */
    struct l2_request *prev;
    struct l2_request *next;
    struct event *timer;      /* timeout_ms, or 0 to answer L2_FAILED from the loop */
    l2_done_fn *done;
    void *arg;
    uint64_t replies_at_send; /* l2->replies when the GET was sent */
    uint64_t timeout_ms;
    char *waiting_key;        /* unsent, waiting for the first connection (its key) */
    size_t waiting_key_len;
    bool answered;            /* done was called */
    bool in_hiredis;          /* hiredis still holds it: its reply callback is to come */
};

struct l2 {
    struct event_base *base;
    struct redis_link *link;
    unsigned db;

    struct l2_list pending;   /* not answered yet */
    struct l2_list answered;  /* answered (timed out), still held by hiredis */

    uint64_t replies;         /* replies received on the live connection: proof of life */
    bool first_attempt_done;  /* the link came up or failed once: GETs stop waiting */
    bool destroying;

    struct log_ratelimit set_limit;
};

static void l2_list_add(struct l2_list *list, struct l2_request *req)
{
    req->list = list;
    req->prev = NULL;
    req->next = list->head;
    if (list->head != NULL)
        list->head->prev = req;
    list->head = req;
}

static void l2_list_remove(struct l2_request *req)
{
    struct l2_list *list = req->list;
    if (list == NULL)
        return;
    if (req->prev != NULL)
        req->prev->next = req->next;
    else
        list->head = req->next;
    if (req->next != NULL)
        req->next->prev = req->prev;
    req->list = NULL;
    req->prev = NULL;
    req->next = NULL;
}

static void l2_timer_add(struct event *timer, uint64_t delay_ms)
{
    struct timeval tv = util_timeval_from_ms(delay_ms);
    evtimer_add(timer, &tv);
}

static void l2_request_free(struct l2_request *req)
{
    l2_list_remove(req);
    event_free(req->timer);
    free(req->waiting_key);
    free(req);
}

/* Answers req (once). The record is freed here when hiredis no longer holds
 * it, else kept on l2->answered until its reply callback. Nothing is touched
 * after done, which may call l2_get() or l2_destroy(). */
static void l2_request_answer(struct l2_request *req, enum l2_status status, const char *value,
                              size_t len)
{
    l2_done_fn *done = req->done;
    void *arg = req->arg;
    req->answered = true;
    evtimer_del(req->timer);
    l2_list_remove(req);
    if (req->in_hiredis) {
        if (req->l2 != NULL)
            l2_list_add(&req->l2->answered, req);
    } else {
        l2_request_free(req);
    }
    done(arg, status, value, len);
}

/* The GET's timer: the timeout, or the deferred answer of a GET that could not
 * be sent or whose connection went away. */
static void l2_request_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct l2_request *req = arg;
    struct l2 *l2 = req->l2;
    if (req->answered)
        return;
    if (req->in_hiredis && l2 != NULL && l2->replies == req->replies_at_send &&
        req->timeout_ms >= L2_SILENCE_MIN_MS) {
        char reason[128];
        snprintf(reason, sizeof(reason), "no reply to GET within %llu ms",
                 (unsigned long long)req->timeout_ms);
        redis_link_drop_later(l2->link, reason);
    }
    l2_request_answer(req, L2_FAILED, NULL, 0);
}

/* hiredis's callback for one GET: a reply, or NULL when the context is
 * being freed (then the answer goes through the loop). */
static void l2_on_get(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;
    struct l2_request *req = privdata;
    req->in_hiredis = false;
    struct l2 *l2 = req->l2;
    if (reply != NULL && l2 != NULL && redis_link_owner(ac) == l2)
        l2->replies++;
    if (req->answered) {
        l2_request_free(req);
        return;
    }
    if (reply == NULL) {
        evtimer_del(req->timer);
        l2_timer_add(req->timer, 0);
        return;
    }
    switch (reply->type) {
    case REDIS_REPLY_STRING:
        l2_request_answer(req, L2_FOUND, reply->str, reply->len);
        break;
    case REDIS_REPLY_NIL:
        l2_request_answer(req, L2_MISSING, NULL, 0);
        break;
    case REDIS_REPLY_ERROR:
        log_debug("redis L2: GET refused: %s", reply->str);
        l2_request_answer(req, L2_FAILED, NULL, 0);
        break;
    default:
        log_debug("redis L2: GET answered with reply type %d", reply->type);
        l2_request_answer(req, L2_FAILED, NULL, 0);
        break;
    }
}

/* hiredis's callback for one SET: errors are logged, nothing else. */
static void l2_on_set(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)privdata;
    redisReply *reply = r;
    struct l2 *l2 = redis_link_owner(ac);
    if (l2 == NULL || reply == NULL)
        return;
    l2->replies++;
    if (reply->type == REDIS_REPLY_ERROR)
        log_limited(&l2->set_limit, L2_LOG_INTERVAL_MS, LOG_LEVEL_WARNING,
                    "redis L2: SET refused: %s", reply->str);
}

static void l2_send(struct l2 *l2, struct l2_request *req, const char *key, size_t key_len);

/* Sends the GETs that waited for the first connection (up), or answers them
 * L2_FAILED from the loop (its first attempt failed). */
static void l2_release_waiting(struct l2 *l2, bool up)
{
    l2->first_attempt_done = true;
    struct l2_request *next;
    for (struct l2_request *req = l2->pending.head; req != NULL; req = next) {
        next = req->next;
        if (req->waiting_key == NULL)
            continue;
        char *key = req->waiting_key;
        req->waiting_key = NULL;
        evtimer_del(req->timer);
        if (up) {
            l2_send(l2, req, key, req->waiting_key_len);
        } else {
            l2_timer_add(req->timer, 0);
        }
        free(key);
    }
}

static void l2_on_up(void *arg, bool first)
{
    struct l2 *l2 = arg;
    char address[300];
    log_info("redis %s: L2 connection ready (db %u)%s",
             redis_link_address(l2->link, address, sizeof(address)), l2->db,
             first ? "" : " again");
    if (!l2->first_attempt_done)
        l2_release_waiting(l2, true);
}

static void l2_on_down(void *arg, const char *reason)
{
    (void)reason; /* logged by the link */
    struct l2 *l2 = arg;
    if (!l2->first_attempt_done)
        l2_release_waiting(l2, false);
}

int l2_create(struct event_base *base, const struct config *config, struct l2 **out,
              char *error)
{
    *out = NULL;
    if (!config->redis.l2)
        return 0;
    struct l2 *l2 = xcalloc(1, sizeof(*l2));
    l2->base = base;
    l2->db = config->redis.db;
    const struct redis_link_options options = {
        .name = "L2",
        .setup_stage = NULL,
        .select_db = true,
        .ping = true,
    };
    const struct redis_link_callbacks callbacks = {
        .on_setup = NULL,
        .on_up = l2_on_up,
        .on_down = l2_on_down, /* sent GETs are answered by their NULL replies */
        .arg = l2,
    };
    l2->link = redis_link_create(base, config, &options, &callbacks, error);
    if (l2->link == NULL) {
        free(l2);
        return -1;
    }
    *out = l2;
    return 0;
}

void l2_reconfigure(struct l2 *l2, const struct config *config)
{
    if (l2 == NULL)
        return;
    if (redis_link_reconfigure(l2->link, config, false) == 0)
        l2->db = config->redis.db;
}

bool l2_ready(const struct l2 *l2)
{
    return l2 != NULL && !l2->destroying && redis_link_context(l2->link) != NULL;
}

bool l2_available(const struct l2 *l2)
{
    return l2_ready(l2) || (l2 != NULL && !l2->destroying && !l2->first_attempt_done);
}

/* Sends req's GET (its timer, already made, is armed here), or answers it
 * L2_FAILED from the loop when it cannot be sent. */
static void l2_send(struct l2 *l2, struct l2_request *req, const char *key, size_t key_len)
{
    redisAsyncContext *ac = l2_ready(l2) ? redis_link_context(l2->link) : NULL;
    if (ac != NULL &&
        redisAsyncCommand(ac, l2_on_get, req, "GET %b", key, key_len) == REDIS_OK) {
        req->in_hiredis = true;
        req->replies_at_send = l2->replies;
        l2_timer_add(req->timer, req->timeout_ms);
    } else {
        l2_timer_add(req->timer, 0); /* L2_FAILED from the loop */
    }
}

void l2_get(struct l2 *l2, const char *key, size_t key_len, uint64_t timeout_ms, l2_done_fn *done,
            void *arg)
{
    struct l2_request *req = xcalloc(1, sizeof(*req));
    req->l2 = l2;
    req->done = done;
    req->arg = arg;
    req->timeout_ms = timeout_ms;
    req->timer = evtimer_new(l2->base, l2_request_timer, req);
    if (req->timer == NULL)
        log_fatal("out of memory creating an L2 request timer");
    l2_list_add(&l2->pending, req);
    if (l2->destroying)
        return; /* answered by l2_destroy(), which is running */

    if (!l2_ready(l2) && !l2->first_attempt_done) {
        /* Sent by l2_release_waiting(); the timer bounds the wait. */
        req->waiting_key = xmemdup(key, key_len);
        req->waiting_key_len = key_len;
        l2_timer_add(req->timer, timeout_ms);
        return;
    }
    l2_send(l2, req, key, key_len);
}

void l2_set(struct l2 *l2, const char *key, size_t key_len, const char *value, size_t value_len,
            uint64_t ttl_seconds, bool if_absent)
{
    if (!l2_ready(l2))
        return;
    redisAsyncContext *ac = redis_link_context(l2->link);
    int sent;
    if (ttl_seconds > 0)
        sent = redisAsyncCommand(ac, l2_on_set, NULL,
                                 if_absent ? "SET %b %b EX %llu NX" : "SET %b %b EX %llu", key,
                                 key_len, value, value_len, (unsigned long long)ttl_seconds);
    else
        sent = redisAsyncCommand(ac, l2_on_set, NULL, if_absent ? "SET %b %b NX" : "SET %b %b",
                                 key, key_len, value, value_len);
    if (sent != REDIS_OK)
        log_debug("redis L2: SET not sent: the connection is going away");
}

void l2_destroy(struct l2 *l2)
{
    if (l2 == NULL || l2->destroying)
        return;
    l2->destroying = true;
    /* A done callback may add GETs: they land on pending and are answered too. */
    while (l2->pending.head != NULL)
        l2_request_answer(l2->pending.head, L2_FAILED, NULL, 0);
    /* Records hiredis still holds: freed by their NULL replies, while the link
     * frees the context below (or, inside a hiredis callback, right after it). */
    while (l2->answered.head != NULL) {
        struct l2_request *req = l2->answered.head;
        l2_list_remove(req);
        req->l2 = NULL;
    }
    redis_link_free(l2->link);
    free(l2);
}
