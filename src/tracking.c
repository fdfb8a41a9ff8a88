/* tracking.c - client-side caching: CLIENT TRACKING, its table of names and
 * the delivery of invalidation pushes (see tracking.h).
 *
 * The table maps an entry's full name to the ids of the connections that
 * read it, with the names in the order they were first read so that, past
 * listen.tracking_max_keys, the oldest are invalidated and forgotten (as
 * redis-server does when tracking_table_max_keys is reached). BCAST
 * connections are a short list walked on every change. Each connection has
 * a record holding its outbox: the invalidations queued for it, written out
 * by its own thread in tracking_drain(). */
#include "tracking.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "commands.h"
#include "config.h"
#include "protocol.h"
#include "reply.h"
#include "stats.h"
#include "util.h"

#define PEER_BUCKETS 4096
#define NAME_BUCKETS_MIN 1024
#define CHANNEL "__redis__:invalidate"
#define CHANNEL_LEN 20
#define BATCH_MAX 1024 /* names in one push */

/* What an outbox holds, one record after another. */
enum item_type {
    ITEM_NAME,      /* a name: tenant_off, tenant_len, len, bytes */
    ITEM_ALL,       /* invalidate everything */
    ITEM_BROKEN,    /* the redirect target is gone: its id in the record */
};

struct item_header {
    uint8_t type;
    uint32_t len;        /* name bytes after the header */
    uint32_t tenant_off;
    uint32_t tenant_len;
    uint64_t id;         /* ITEM_BROKEN */
};

struct peer {
    struct peer *hash_next;
    struct commands_client *client; /* dereferenced on its thread only */
    void *conn;
    struct tracking_sink *sink;
    uint64_t id;
    unsigned flags;                 /* TRACKING_ON, _BCAST...: a copy under the lock */
    uint64_t redirect;              /* 0: none */
    bool broken;                    /* the redirect target was gone */
    bool subscribed;                /* SUBSCRIBE __redis__:invalidate */
    char **prefixes;                /* BCAST */
    size_t *prefix_lens;
    size_t prefix_count;
    struct peer *bcast_next;
    /* The outbox. */
    char *box;
    size_t box_len;
    size_t box_capacity;
    bool ready;                     /* on its sink's ready list */
    struct peer *ready_next;
};

struct tracking_sink {
    void (*wake)(void *arg);
    void *arg;
    struct peer *ready;
    bool woken;
};

struct name_node {
    struct name_node *hash_next;
    struct name_node *older;
    struct name_node *newer;
    uint64_t *ids;
    uint32_t count;
    uint32_t capacity;
    uint64_t hash;
    uint32_t len;
    uint32_t tenant_off;
    uint32_t tenant_len;
    char name[];
};

static struct {
    pthread_mutex_t lock;
    bool ready;
    struct peer *peers[PEER_BUCKETS];
    struct peer *bcast;               /* BCAST peers */
    uint64_t tracking_count;          /* peers with TRACKING_ON */
    _Atomic uint64_t active;          /* tracking_count, read without the lock */
    struct name_node **buckets;
    size_t bucket_count;
    size_t name_count;
    struct name_node *oldest;
    struct name_node *newest;
    uint64_t max_keys;
    char *key_format;
    char (*kind_names)[CONFIG_KIND_NAME_MAX + 1];
    size_t kind_count;
    _Atomic uint64_t stale_since;     /* the down period already invalidated */
    int64_t bytes;
} t;

/* ---- memory ---- */

static void account(int64_t delta)
{
    t.bytes += delta;
    atomic_store_explicit(&stats.tracking_bytes, (uint64_t)(t.bytes > 0 ? t.bytes : 0),
                          memory_order_relaxed);
}

static void set_counts(void)
{
    atomic_store_explicit(&stats.tracking_keys, t.name_count, memory_order_relaxed);
    atomic_store_explicit(&stats.tracking_clients, t.tracking_count, memory_order_relaxed);
    atomic_store_explicit(&t.active, t.tracking_count, memory_order_relaxed);
}

/* ---- peers ---- */

static struct peer **peer_slot(uint64_t id)
{
    struct peer **slot = &t.peers[id % PEER_BUCKETS];
    while (*slot != NULL && (*slot)->id != id)
        slot = &(*slot)->hash_next;
    return slot;
}

static struct peer *peer_find(uint64_t id)
{
    return *peer_slot(id);
}

/* Appends one record to p's outbox and puts p on its sink's ready list. */
static void box_add(struct peer *p, const struct item_header *header, const char *name)
{
    size_t need = sizeof(*header) + header->len;
    if (p->box_len + need > p->box_capacity) {
        size_t capacity = p->box_capacity ? p->box_capacity * 2 : 256;
        while (capacity < p->box_len + need)
            capacity *= 2;
        p->box = xrealloc(p->box, capacity);
        account((int64_t)capacity - (int64_t)p->box_capacity);
        p->box_capacity = capacity;
    }
    memcpy(p->box + p->box_len, header, sizeof(*header));
    if (header->len > 0)
        memcpy(p->box + p->box_len + sizeof(*header), name, header->len);
    p->box_len += need;
    stats_add(&stats.tracking_invalidations, 1);
    if (!p->ready) {
        p->ready = true;
        p->ready_next = p->sink->ready;
        p->sink->ready = p;
        if (!p->sink->woken) {
            p->sink->woken = true;
            p->sink->wake(p->sink->arg);
        }
    }
}

/* Queues an invalidation of tracking peer p: to p, or to its redirect
 * target, or (that one gone) a "tracking-redir-broken" notice to p. */
static void send_item(struct peer *p, const struct item_header *header, const char *name)
{
    struct peer *to = p;
    if (p->redirect != 0) {
        to = peer_find(p->redirect);
        if (to == NULL) {
            p->broken = true;
            struct item_header broken = {.type = ITEM_BROKEN, .id = p->redirect};
            box_add(p, &broken, NULL);
            return;
        }
    }
    box_add(to, header, name);
}

/* ---- the table of names ---- */

static uint64_t name_hash(const char *name, size_t len)
{
    return util_hash(name, len, 0x7472616b);
}

static struct name_node **name_slot(const char *name, size_t len, uint64_t hash)
{
    struct name_node **slot = &t.buckets[hash & (t.bucket_count - 1)];
    while (*slot != NULL && !((*slot)->hash == hash && (*slot)->len == len &&
                              memcmp((*slot)->name, name, len) == 0))
        slot = &(*slot)->hash_next;
    return slot;
}

static void name_grow(void)
{
    size_t count = t.bucket_count * 2;
    struct name_node **buckets = xcalloc(count, sizeof(*buckets));
    for (size_t i = 0; i < t.bucket_count; i++) {
        struct name_node *node = t.buckets[i];
        while (node != NULL) {
            struct name_node *next = node->hash_next;
            node->hash_next = buckets[node->hash & (count - 1)];
            buckets[node->hash & (count - 1)] = node;
            node = next;
        }
    }
    account((int64_t)((count - t.bucket_count) * sizeof(*buckets)));
    free(t.buckets);
    t.buckets = buckets;
    t.bucket_count = count;
}

/* Unlinks *slot from the table and frees it. */
static void name_remove(struct name_node **slot)
{
    struct name_node *node = *slot;
    *slot = node->hash_next;
    if (node->older != NULL)
        node->older->newer = node->newer;
    else
        t.oldest = node->newer;
    if (node->newer != NULL)
        node->newer->older = node->older;
    else
        t.newest = node->older;
    t.name_count--;
    account(-(int64_t)(sizeof(*node) + node->len + node->capacity * sizeof(uint64_t)));
    free(node->ids);
    free(node);
}

/* Invalidates the name held by *slot for every connection that read it,
 * and forgets it. */
static void name_invalidate(struct name_node **slot)
{
    struct name_node *node = *slot;
    struct item_header header = {
        .type = ITEM_NAME,
        .len = node->len,
        .tenant_off = node->tenant_off,
        .tenant_len = node->tenant_len,
    };
    for (uint32_t i = 0; i < node->count; i++) {
        struct peer *p = peer_find(node->ids[i]);
        /* Ids are dropped lazily: a closed connection, or one that turned
         * tracking off or on again in BCAST mode, is skipped. */
        if (p != NULL && (p->flags & TRACKING_ON) && !(p->flags & TRACKING_BCAST))
            send_item(p, &header, node->name);
    }
    name_remove(slot);
}

static void enforce_bound(void)
{
    while (t.name_count > t.max_keys && t.oldest != NULL) {
        struct name_node *oldest = t.oldest;
        name_invalidate(name_slot(oldest->name, oldest->len, oldest->hash));
    }
    set_counts();
}

static void forget_all_names(void)
{
    while (t.oldest != NULL) {
        struct name_node *oldest = t.oldest;
        name_remove(name_slot(oldest->name, oldest->len, oldest->hash));
    }
}

/* Null-form invalidation to every tracking peer; forgets every name. */
static void invalidate_everything(void)
{
    struct item_header header = {.type = ITEM_ALL};
    for (size_t b = 0; b < PEER_BUCKETS; b++) {
        for (struct peer *p = t.peers[b]; p != NULL; p = p->hash_next) {
            if (p->flags & TRACKING_ON)
                send_item(p, &header, NULL);
        }
    }
    forget_all_names();
    set_counts();
}

/* ---- setup ---- */

void tracking_init(const struct config *config)
{
    pthread_mutex_init(&t.lock, NULL);
    t.bucket_count = NAME_BUCKETS_MIN;
    t.buckets = xcalloc(t.bucket_count, sizeof(*t.buckets));
    t.bytes = 0;
    account((int64_t)(t.bucket_count * sizeof(*t.buckets)));
    t.ready = true;
    tracking_configure(config);
}

void tracking_shutdown(void)
{
    if (!t.ready)
        return;
    pthread_mutex_lock(&t.lock);
    forget_all_names();
    free(t.buckets);
    t.buckets = NULL;
    free(t.key_format);
    t.key_format = NULL;
    free(t.kind_names);
    t.kind_names = NULL;
    t.ready = false;
    pthread_mutex_unlock(&t.lock);
}

void tracking_configure(const struct config *config)
{
    pthread_mutex_lock(&t.lock);
    free(t.key_format);
    t.key_format = xstrdup(config->redis.key_format);
    free(t.kind_names);
    t.kind_count = config->kind_count;
    t.kind_names = xcalloc(t.kind_count ? t.kind_count : 1, sizeof(*t.kind_names));
    for (size_t i = 0; i < t.kind_count; i++)
        memcpy(t.kind_names[i], config->kinds[i].name, sizeof(t.kind_names[i]));
    t.max_keys = config->listen.tracking_max_keys;
    enforce_bound();
    pthread_mutex_unlock(&t.lock);
}

/* ---- changes ---- */

/* Writes the entry's full name (redis.key_format) into buf; returns its
 * length, or 0 if it does not fit. *tenant_off receives where the tenant
 * starts. */
static size_t format_name(char *buf, size_t size, const char *tenant, size_t tenant_len,
                          const char *kind, const char *key, size_t key_len, size_t *tenant_off)
{
    size_t used = 0;
    *tenant_off = 0;
    for (const char *cursor = t.key_format; *cursor != '\0';) {
        const char *part = cursor;
        size_t part_len = 1, skip = 1;
        if (strncmp(cursor, "{tenant}", 8) == 0) {
            part = tenant, part_len = tenant_len, skip = 8;
            *tenant_off = used;
        } else if (strncmp(cursor, "{kind}", 6) == 0) {
            part = kind, part_len = strlen(kind), skip = 6;
        } else if (strncmp(cursor, "{key}", 5) == 0) {
            part = key, part_len = key_len, skip = 5;
        }
        if (used + part_len > size)
            return 0;
        memcpy(buf + used, part, part_len);
        used += part_len;
        cursor += skip;
    }
    return used;
}

static bool prefix_matches(const struct peer *p, const char *name, size_t len)
{
    for (size_t i = 0; i < p->prefix_count; i++) {
        if (p->prefix_lens[i] <= len && memcmp(p->prefixes[i], name, p->prefix_lens[i]) == 0)
            return true;
    }
    return false;
}

void tracking_change(void *arg, const char *tenant, size_t tenant_len, unsigned kind,
                     const char *key, size_t key_len)
{
    (void)arg;
    if (atomic_load_explicit(&t.active, memory_order_relaxed) == 0)
        return;
    pthread_mutex_lock(&t.lock);
    if (tenant == NULL) {
        invalidate_everything();
        pthread_mutex_unlock(&t.lock);
        return;
    }
    char buf[1024];
    size_t tenant_off;
    size_t len = kind < t.kind_count ? format_name(buf, sizeof(buf), tenant, tenant_len,
                                                   t.kind_names[kind], key, key_len, &tenant_off)
                                     : 0;
    if (len > 0) {
        uint64_t hash = name_hash(buf, len);
        struct name_node **slot = name_slot(buf, len, hash);
        if (*slot != NULL) {
            name_invalidate(slot);
            set_counts();
        }
        struct item_header header = {
            .type = ITEM_NAME,
            .len = (uint32_t)len,
            .tenant_off = (uint32_t)tenant_off,
            .tenant_len = (uint32_t)tenant_len,
        };
        for (struct peer *p = t.bcast; p != NULL; p = p->bcast_next) {
            if (prefix_matches(p, buf, len))
                send_item(p, &header, buf);
        }
    }
    pthread_mutex_unlock(&t.lock);
}

void tracking_check_stale(uint64_t down_since_ms, uint64_t now_ms, uint64_t max_stale_ms)
{
    if (down_since_ms == 0 || now_ms <= down_since_ms || now_ms - down_since_ms <= max_stale_ms)
        return;
    /* Every refused read calls this: only the first of a period locks. */
    if (atomic_load_explicit(&t.stale_since, memory_order_acquire) == down_since_ms)
        return;
    pthread_mutex_lock(&t.lock);
    if (atomic_load_explicit(&t.stale_since, memory_order_relaxed) != down_since_ms) {
        invalidate_everything();
        atomic_store_explicit(&t.stale_since, down_since_ms, memory_order_release);
    }
    pthread_mutex_unlock(&t.lock);
}

/* ---- connections ---- */

struct tracking_sink *tracking_sink_create(void (*wake)(void *arg), void *arg)
{
    struct tracking_sink *sink = xcalloc(1, sizeof(*sink));
    sink->wake = wake;
    sink->arg = arg;
    return sink;
}

void tracking_sink_destroy(struct tracking_sink *sink)
{
    free(sink);
}

void tracking_client_open(struct commands_client *client, struct tracking_sink *sink, void *conn)
{
    struct peer *p = xcalloc(1, sizeof(*p));
    p->client = client;
    p->conn = conn;
    p->sink = sink;
    p->id = client->id;
    pthread_mutex_lock(&t.lock);
    struct peer **slot = peer_slot(p->id);
    p->hash_next = *slot;
    *slot = p;
    account((int64_t)sizeof(*p));
    pthread_mutex_unlock(&t.lock);
}

static void peer_clear_prefixes(struct peer *p)
{
    for (size_t i = 0; i < p->prefix_count; i++) {
        account(-(int64_t)p->prefix_lens[i]);
        free(p->prefixes[i]);
    }
    free(p->prefixes);
    free(p->prefix_lens);
    p->prefixes = NULL;
    p->prefix_lens = NULL;
    p->prefix_count = 0;
}

static void bcast_remove(struct peer *p)
{
    for (struct peer **link = &t.bcast; *link != NULL; link = &(*link)->bcast_next) {
        if (*link == p) {
            *link = p->bcast_next;
            p->bcast_next = NULL;
            return;
        }
    }
}

/* Turns tracking off for p (lock held); its ids in the table go lazily. */
static void peer_disable(struct peer *p)
{
    if (p->flags & TRACKING_ON) {
        t.tracking_count--;
        if (p->flags & TRACKING_BCAST)
            bcast_remove(p);
    }
    peer_clear_prefixes(p);
    p->flags = 0;
    p->redirect = 0;
    p->broken = false;
    set_counts();
}

void tracking_client_close(struct commands_client *client)
{
    pthread_mutex_lock(&t.lock);
    struct peer **slot = peer_slot(client->id);
    struct peer *p = *slot;
    if (p == NULL) {
        pthread_mutex_unlock(&t.lock);
        return;
    }
    *slot = p->hash_next;
    peer_disable(p);
    if (p->ready) {
        for (struct peer **link = &p->sink->ready; *link != NULL; link = &(*link)->ready_next) {
            if (*link == p) {
                *link = p->ready_next;
                break;
            }
        }
    }
    account(-(int64_t)(sizeof(*p) + p->box_capacity));
    pthread_mutex_unlock(&t.lock);
    free(p->box);
    free(p);
    client->tracking_flags = 0;
}

void tracking_remember(struct commands_client *client, const char *name, size_t name_len,
                       size_t tenant_off, size_t tenant_len)
{
    unsigned flags = client->tracking_flags;
    if (!(flags & TRACKING_ON) || (flags & TRACKING_BCAST))
        return;
    bool caching = (flags & TRACKING_CACHING) != 0;
    if (((flags & TRACKING_OPTIN) && !caching) || ((flags & TRACKING_OPTOUT) && caching))
        return;
    pthread_mutex_lock(&t.lock);
    uint64_t hash = name_hash(name, name_len);
    struct name_node **slot = name_slot(name, name_len, hash);
    struct name_node *node = *slot;
    if (node == NULL) {
        node = xmalloc(sizeof(*node) + name_len);
        node->hash_next = NULL;
        node->older = t.newest;
        node->newer = NULL;
        if (t.newest != NULL)
            t.newest->newer = node;
        else
            t.oldest = node;
        t.newest = node;
        node->ids = NULL;
        node->count = node->capacity = 0;
        node->hash = hash;
        node->len = (uint32_t)name_len;
        node->tenant_off = (uint32_t)tenant_off;
        node->tenant_len = (uint32_t)tenant_len;
        memcpy(node->name, name, name_len);
        *slot = node;
        t.name_count++;
        account((int64_t)(sizeof(*node) + name_len));
        if (t.name_count > t.bucket_count)
            name_grow();
    }
    bool known = false;
    for (uint32_t i = 0; i < node->count && !known; i++)
        known = node->ids[i] == client->id;
    if (!known) {
        if (node->count == node->capacity) {
            uint32_t capacity = node->capacity ? node->capacity * 2 : 1;
            node->ids = xrealloc(node->ids, capacity * sizeof(*node->ids));
            account((int64_t)((capacity - node->capacity) * sizeof(*node->ids)));
            node->capacity = capacity;
        }
        node->ids[node->count++] = client->id;
    }
    if (t.name_count > t.max_keys)
        enforce_bound();
    else
        set_counts();
    pthread_mutex_unlock(&t.lock);
}

void tracking_command_done(struct commands_client *client)
{
    unsigned flags = client->tracking_flags;
    if (!(flags & (TRACKING_CACHING | TRACKING_CACHING_NEXT)) || client->in_exec)
        return;
    flags &= ~(unsigned)TRACKING_CACHING;
    if (flags & TRACKING_CACHING_NEXT)
        flags = (flags & ~(unsigned)TRACKING_CACHING_NEXT) | TRACKING_CACHING;
    client->tracking_flags = flags;
}

/* ---- delivery ---- */

static void write_push_header(struct reply_buffer *out, bool resp3)
{
    static const char push[] = ">2\r\n$10\r\ninvalidate\r\n";
    static const char message[] = "*3\r\n$7\r\nmessage\r\n$20\r\n" CHANNEL "\r\n";
    if (resp3)
        reply_buffer_add(out, push, sizeof(push) - 1);
    else
        reply_buffer_add(out, message, sizeof(message) - 1);
}

static void read_header(const char *at, struct item_header *header)
{
    memcpy(header, at, sizeof(*header));
}

/* Writes p's outbox into its connection's output. */
static void write_box(struct peer *p)
{
    struct commands_client *client = p->client;
    struct reply_buffer *out = client->out;
    bool resp3 = out->resp3;
    if (!resp3 && !p->subscribed)
        return; /* RESP2 without a subscription: nowhere to say it (as redis-server) */
    size_t at = 0;
    while (at < p->box_len) {
        struct item_header header;
        read_header(p->box + at, &header);
        if (header.type == ITEM_ALL) {
            write_push_header(out, resp3);
            reply_buffer_add(out, resp3 ? "_\r\n" : "$-1\r\n", resp3 ? 3 : 5);
            at += sizeof(header);
            continue;
        }
        if (header.type == ITEM_BROKEN) {
            if (resp3) {
                static const char broken[] = ">2\r\n$21\r\ntracking-redir-broken\r\n";
                reply_buffer_add(out, broken, sizeof(broken) - 1);
                reply_integer(out, (long long)header.id);
            }
            at += sizeof(header);
            continue;
        }
        /* A run of names: one push, the names this connection may read. */
        size_t count = 0, end = at;
        while (end < p->box_len && count < BATCH_MAX) {
            struct item_header h;
            read_header(p->box + end, &h);
            if (h.type != ITEM_NAME)
                break;
            const char *name = p->box + end + sizeof(h);
            if (acl_allows_tenant(&client->grant, name + h.tenant_off, h.tenant_len))
                count++;
            end += sizeof(h) + h.len;
        }
        if (count > 0) {
            write_push_header(out, resp3);
            reply_array(out, count);
        }
        while (at < end) {
            read_header(p->box + at, &header);
            const char *name = p->box + at + sizeof(header);
            if (acl_allows_tenant(&client->grant, name + header.tenant_off, header.tenant_len))
                reply_bulk(out, name, header.len);
            at += sizeof(header) + header.len;
        }
    }
}

void tracking_drain(struct tracking_sink *sink, void (*prepare)(void *arg, void *conn),
                    void (*done)(void *arg, void *conn), void *arg)
{
    /* First take the ready connections, and let the caller bring their
     * grants up to date without this lock (that may ask NSS); then write. */
    size_t count = 0, capacity = 0;
    struct peer **peers = NULL;
    pthread_mutex_lock(&t.lock);
    sink->woken = false;
    for (struct peer *p = sink->ready; p != NULL; p = p->ready_next)
        capacity++;
    if (capacity > 0)
        peers = xmalloc(capacity * sizeof(*peers));
    struct peer *p = sink->ready;
    sink->ready = NULL;
    while (p != NULL) {
        struct peer *next = p->ready_next;
        p->ready = false;
        p->ready_next = NULL;
        peers[count++] = p;
        p = next;
    }
    pthread_mutex_unlock(&t.lock);
    if (count == 0)
        return;
    /* Only this thread frees these records (tracking_client_close). */
    for (size_t i = 0; i < count; i++)
        prepare(arg, peers[i]->conn);
    pthread_mutex_lock(&t.lock);
    for (size_t i = 0; i < count; i++) {
        struct peer *q = peers[i];
        write_box(q);
        q->box_len = 0;
        if (q->box_capacity > 64 * 1024) {
            account(-(int64_t)q->box_capacity);
            free(q->box);
            q->box = NULL;
            q->box_capacity = 0;
        }
    }
    pthread_mutex_unlock(&t.lock);
    for (size_t i = 0; i < count; i++)
        done(arg, peers[i]->conn);
    free(peers);
}

/* ---- commands ---- */

static bool parse_id(const char *text, size_t len, uint64_t *out)
{
    if (len == 0 || len > 19)
        return false;
    uint64_t v = 0;
    size_t i = 0;
    bool negative = text[0] == '-';
    if (negative)
        i = 1;
    if (i == len)
        return false;
    for (; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(text[i] - '0');
    }
    *out = negative ? 0 : v;
    return true;
}

static bool prefixes_overlap(const char *a, size_t a_len, const char *b, size_t b_len)
{
    return memcmp(a, b, a_len < b_len ? a_len : b_len) == 0;
}

static void command_tracking(struct command_call *call)
{
    size_t argc = call->request->argc, len;
    struct commands_client *client = call->client;
    const char *mode = commands_arg(call, 2, &len);
    bool on;
    if (util_equal_nocase(mode, len, "ON")) {
        on = true;
    } else if (util_equal_nocase(mode, len, "OFF")) {
        on = false;
    } else {
        reply_error(call->out, "ERR syntax error");
        return;
    }
    unsigned options = 0;
    uint64_t redirect = 0;
    bool has_redirect = false;
    size_t prefix_count = 0;
    const char **prefixes = xcalloc(argc, sizeof(*prefixes));
    size_t *prefix_lens = xcalloc(argc, sizeof(*prefix_lens));
    for (size_t j = 3; j < argc; j++) {
        bool more = j + 1 < argc;
        const char *opt = commands_arg(call, j, &len);
        if (util_equal_nocase(opt, len, "REDIRECT") && more) {
            j++;
            if (has_redirect) {
                reply_error(call->out, "ERR A client can only redirect to a single other client");
                goto done;
            }
            size_t id_len;
            const char *id_text = commands_arg(call, j, &id_len);
            if (!parse_id(id_text, id_len, &redirect)) {
                reply_error(call->out, "ERR value is not an integer or out of range");
                goto done;
            }
            has_redirect = true;
            pthread_mutex_lock(&t.lock);
            bool exists = redirect != 0 && peer_find(redirect) != NULL;
            pthread_mutex_unlock(&t.lock);
            if (!exists) {
                reply_error(call->out, "ERR The client ID you want redirect to does not exist");
                goto done;
            }
        } else if (util_equal_nocase(opt, len, "BCAST")) {
            options |= TRACKING_BCAST;
        } else if (util_equal_nocase(opt, len, "OPTIN")) {
            options |= TRACKING_OPTIN;
        } else if (util_equal_nocase(opt, len, "OPTOUT")) {
            options |= TRACKING_OPTOUT;
        } else if (util_equal_nocase(opt, len, "NOLOOP")) {
            options |= TRACKING_NOLOOP; /* clients never write here: accepted, no effect */
        } else if (util_equal_nocase(opt, len, "PREFIX") && more) {
            j++;
            prefixes[prefix_count] = commands_arg(call, j, &prefix_lens[prefix_count]);
            prefix_count++;
        } else {
            reply_error(call->out, "ERR syntax error");
            goto done;
        }
    }
    unsigned current = client->tracking_flags;
    if (on) {
        if (!(options & TRACKING_BCAST) && prefix_count > 0) {
            reply_error(call->out, "ERR PREFIX option requires BCAST mode to be enabled");
            goto done;
        }
        if ((current & TRACKING_ON) &&
            ((current & TRACKING_BCAST) != 0) != ((options & TRACKING_BCAST) != 0)) {
            reply_error(call->out, "ERR You can't switch BCAST mode on/off before disabling "
                                   "tracking for this client, and then re-enabling it with a "
                                   "different mode.");
            goto done;
        }
        if ((options & TRACKING_BCAST) && (options & (TRACKING_OPTIN | TRACKING_OPTOUT))) {
            reply_error(call->out, "ERR OPTIN and OPTOUT are not compatible with BCAST");
            goto done;
        }
        if ((options & TRACKING_OPTIN) && (options & TRACKING_OPTOUT)) {
            reply_error(call->out, "ERR You can't use both OPTIN and OPTOUT");
            goto done;
        }
        if (((options & TRACKING_OPTIN) && (current & TRACKING_OPTOUT)) ||
            ((options & TRACKING_OPTOUT) && (current & TRACKING_OPTIN))) {
            reply_error(call->out, "ERR You can't switch OPTIN/OPTOUT mode before disabling "
                                   "tracking for this client, and then re-enabling it with a "
                                   "different mode.");
            goto done;
        }
    }
    pthread_mutex_lock(&t.lock);
    struct peer *p = peer_find(client->id);
    if (on && (options & TRACKING_BCAST)) {
        for (size_t i = 0; i < prefix_count; i++) {
            for (size_t k = 0; p != NULL && k < p->prefix_count; k++) {
                if (prefixes_overlap(p->prefix_lens[k] ? p->prefixes[k] : "", p->prefix_lens[k],
                                     prefixes[i], prefix_lens[i])) {
                    pthread_mutex_unlock(&t.lock);
                    reply_error(call->out,
                                "ERR Prefix '%.*s' overlaps with an existing prefix '%.*s'. "
                                "Prefixes for a single client must not overlap.",
                                (int)prefix_lens[i], prefixes[i], (int)p->prefix_lens[k],
                                p->prefixes[k]);
                    goto done;
                }
            }
            for (size_t k = i + 1; k < prefix_count; k++) {
                if (prefixes_overlap(prefixes[i], prefix_lens[i], prefixes[k], prefix_lens[k])) {
                    pthread_mutex_unlock(&t.lock);
                    reply_error(call->out,
                                "ERR Prefix '%.*s' overlaps with another provided prefix '%.*s'. "
                                "Prefixes for a single client must not overlap.",
                                (int)prefix_lens[i], prefixes[i], (int)prefix_lens[k],
                                prefixes[k]);
                    goto done;
                }
            }
        }
    }
    if (p == NULL) { /* not a socket connection: cannot happen */
        pthread_mutex_unlock(&t.lock);
        reply_error(call->out, "ERR tracking is not available on this connection");
        goto done;
    }
    if (!on) {
        peer_disable(p);
        client->tracking_flags = 0;
    } else {
        if (!(p->flags & TRACKING_ON)) {
            t.tracking_count++;
            if (options & TRACKING_BCAST) {
                p->bcast_next = t.bcast;
                t.bcast = p;
            }
        }
        p->flags = TRACKING_ON | (options & (TRACKING_BCAST | TRACKING_OPTIN | TRACKING_OPTOUT |
                                             TRACKING_NOLOOP));
        p->redirect = redirect;
        p->broken = false;
        if (options & TRACKING_BCAST) {
            size_t add = prefix_count ? prefix_count : 1;
            p->prefixes = xrealloc(p->prefixes, (p->prefix_count + add) * sizeof(*p->prefixes));
            p->prefix_lens =
                xrealloc(p->prefix_lens, (p->prefix_count + add) * sizeof(*p->prefix_lens));
            for (size_t i = 0; i < add; i++) {
                const char *prefix = prefix_count ? prefixes[i] : "";
                size_t prefix_len = prefix_count ? prefix_lens[i] : 0;
                bool known = false;
                for (size_t k = 0; k < p->prefix_count && !known; k++)
                    known = p->prefix_lens[k] == prefix_len &&
                            memcmp(p->prefixes[k], prefix, prefix_len) == 0;
                if (known)
                    continue;
                char *copy = xmalloc(prefix_len + 1);
                memcpy(copy, prefix, prefix_len);
                copy[prefix_len] = '\0';
                p->prefixes[p->prefix_count] = copy;
                p->prefix_lens[p->prefix_count++] = prefix_len;
                account((int64_t)prefix_len);
            }
        }
        client->tracking_flags =
            p->flags | (client->tracking_flags & (TRACKING_CACHING | TRACKING_CACHING_NEXT));
        set_counts();
    }
    pthread_mutex_unlock(&t.lock);
    /* The grant is what deliveries are filtered by: have it computed. */
    (void)commands_grant(call);
    reply_status(call->out, "OK");
done:
    free(prefixes);
    free(prefix_lens);
}

static void command_caching(struct command_call *call)
{
    struct commands_client *client = call->client;
    unsigned flags = client->tracking_flags;
    if (!(flags & TRACKING_ON)) {
        reply_error(call->out, "ERR CLIENT CACHING can be called only when the client is in "
                               "tracking mode with OPTIN or OPTOUT mode enabled");
        return;
    }
    size_t len;
    const char *opt = commands_arg(call, 2, &len);
    if (util_equal_nocase(opt, len, "YES")) {
        if (!(flags & TRACKING_OPTIN)) {
            reply_error(call->out,
                        "ERR CLIENT CACHING YES is only valid when tracking is enabled in OPTIN mode.");
            return;
        }
    } else if (util_equal_nocase(opt, len, "NO")) {
        if (!(flags & TRACKING_OPTOUT)) {
            reply_error(call->out,
                        "ERR CLIENT CACHING NO is only valid when tracking is enabled in OPTOUT mode.");
            return;
        }
    } else {
        reply_error(call->out, "ERR syntax error");
        return;
    }
    /* Inside EXEC it applies to the rest of the transaction at once. */
    client->tracking_flags |= client->in_exec ? TRACKING_CACHING : TRACKING_CACHING_NEXT;
    reply_status(call->out, "OK");
}

static void command_trackinginfo(struct command_call *call)
{
    struct commands_client *client = call->client;
    unsigned flags = client->tracking_flags;
    pthread_mutex_lock(&t.lock);
    struct peer *p = peer_find(client->id);
    bool broken = p != NULL && p->broken;
    uint64_t redirect = p != NULL ? p->redirect : 0;
    size_t prefix_count = p != NULL ? p->prefix_count : 0;
    const char *names[8];
    size_t count = 0;
    names[count++] = flags & TRACKING_ON ? "on" : "off";
    if (flags & TRACKING_BCAST)
        names[count++] = "bcast";
    if (flags & TRACKING_OPTIN)
        names[count++] = "optin";
    if (flags & TRACKING_OPTOUT)
        names[count++] = "optout";
    if (flags & (TRACKING_CACHING | TRACKING_CACHING_NEXT))
        names[count++] = flags & TRACKING_OPTIN ? "caching-yes" : "caching-no";
    if (flags & TRACKING_NOLOOP)
        names[count++] = "noloop";
    if (broken)
        names[count++] = "broken_redirect";
    reply_map(call->out, 3);
    reply_bulk_string(call->out, "flags");
    if (call->out->resp3) {
        char header[32];
        int n = snprintf(header, sizeof(header), "~%zu\r\n", count);
        reply_buffer_add(call->out, header, (size_t)n);
    } else {
        reply_array(call->out, count);
    }
    for (size_t i = 0; i < count; i++)
        reply_bulk_string(call->out, names[i]);
    reply_bulk_string(call->out, "redirect");
    reply_integer(call->out, flags & TRACKING_ON ? (long long)redirect : -1);
    reply_bulk_string(call->out, "prefixes");
    reply_array(call->out, prefix_count);
    for (size_t i = 0; i < prefix_count; i++)
        reply_bulk(call->out, p->prefixes[i], p->prefix_lens[i]);
    pthread_mutex_unlock(&t.lock);
}

bool tracking_is_subcommand(const char *sub, size_t len)
{
    return util_equal_nocase(sub, len, "TRACKING") || util_equal_nocase(sub, len, "CACHING") ||
           util_equal_nocase(sub, len, "GETREDIR") || util_equal_nocase(sub, len, "TRACKINGINFO");
}

void tracking_command_client(struct command_call *call)
{
    size_t len, argc = call->request->argc;
    const char *sub = commands_arg(call, 1, &len);
    if (util_equal_nocase(sub, len, "TRACKING") && argc >= 3) {
        command_tracking(call);
    } else if (util_equal_nocase(sub, len, "CACHING") && argc == 3) {
        command_caching(call);
    } else if (util_equal_nocase(sub, len, "GETREDIR") && argc == 2) {
        unsigned flags = call->client->tracking_flags;
        pthread_mutex_lock(&t.lock);
        struct peer *p = peer_find(call->client->id);
        uint64_t redirect = p != NULL ? p->redirect : 0;
        pthread_mutex_unlock(&t.lock);
        reply_integer(call->out, flags & TRACKING_ON ? (long long)redirect : -1);
    } else if (util_equal_nocase(sub, len, "TRACKINGINFO") && argc == 2) {
        command_trackinginfo(call);
    } else {
        char shown[64];
        commands_quote(sub, len, shown, sizeof(shown));
        for (char *c = shown; *c != '\0'; c++)
            *c = (char)(*c >= 'A' && *c <= 'Z' ? *c + 32 : *c);
        reply_error(call->out, "ERR wrong number of arguments for 'client|%s' command", shown);
    }
}

/* ---- SUBSCRIBE / UNSUBSCRIBE __redis__:invalidate ---- */

static void subscription_reply(struct reply_buffer *out, const char *kind, bool channel,
                               long long count)
{
    if (out->resp3)
        reply_buffer_add(out, ">3\r\n", 4);
    else
        reply_array(out, 3);
    reply_bulk_string(out, kind);
    if (channel)
        reply_bulk(out, CHANNEL, CHANNEL_LEN);
    else
        reply_nil(out);
    reply_integer(out, count);
}

static bool set_subscribed(struct commands_client *client, bool subscribed)
{
    pthread_mutex_lock(&t.lock);
    struct peer *p = peer_find(client->id);
    bool was = p != NULL && p->subscribed;
    if (p != NULL)
        p->subscribed = subscribed;
    pthread_mutex_unlock(&t.lock);
    return was;
}

void tracking_command_subscribe(struct command_call *call)
{
    size_t argc = call->request->argc, len;
    for (size_t i = 1; i < argc; i++) {
        const char *channel = commands_arg(call, i, &len);
        if (len != CHANNEL_LEN || memcmp(channel, CHANNEL, CHANNEL_LEN) != 0) {
            reply_error(call->out, "ERR only the " CHANNEL " channel can be subscribed to here");
            return;
        }
    }
    (void)commands_grant(call);
    for (size_t i = 1; i < argc; i++) {
        set_subscribed(call->client, true);
        subscription_reply(call->out, "subscribe", true, 1);
    }
}

void tracking_command_unsubscribe(struct command_call *call)
{
    size_t argc = call->request->argc, len;
    if (argc == 1) {
        bool was = set_subscribed(call->client, false);
        subscription_reply(call->out, "unsubscribe", was, 0);
        return;
    }
    for (size_t i = 1; i < argc; i++) {
        const char *channel = commands_arg(call, i, &len);
        bool ours = len == CHANNEL_LEN && memcmp(channel, CHANNEL, CHANNEL_LEN) == 0;
        if (ours)
            (void)set_subscribed(call->client, false);
        if (call->out->resp3)
            reply_buffer_add(call->out, ">3\r\n", 4);
        else
            reply_array(call->out, 3);
        reply_bulk_string(call->out, "unsubscribe");
        reply_bulk(call->out, channel, len);
        reply_integer(call->out, 0);
    }
}
