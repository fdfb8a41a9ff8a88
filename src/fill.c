/* fill.c - one fill per missed entry: L2, then L3, then the caches (see fill.h).
 *
 * Query threads submit through a mutex-protected queue and an event made
 * active on the main loop; everything else happens on the main thread, which
 * is also the caches' writer and the thread that applies messages. So the
 * table of fills in flight needs no lock, and an invalidation message marks
 * the fills it races with as "dirty" before the fill can write anything:
 * their outcome is still answered to the waiters, but never cached. */
#include "fill.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "config.h"
#include "l2.h"
#include "log.h"
#include "names.h"
#include "origin.h"
#include "stats.h"
#include "util.h"

#define TABLE_BUCKETS 1024
/* Flushes remembered by tenant, so that a flush of one tenant discards the
 * fills in flight for that tenant only. A job older than the log is
 * treated as raced by a flush of its tenant. */
#define FLUSH_LOG 64

enum fill_stage {
    STAGE_L2,
    STAGE_L3,
    STAGE_DONE,
};

struct fill_job {
    struct fill_job *next;       /* chain in the table */
    struct fill *fill;
    uint64_t hash;
    char *tenant;
    size_t tenant_len;
    unsigned kind;
    char *key;
    size_t key_len;
    struct blocked **waiters;
    size_t waiter_count;
    size_t waiter_capacity;
    enum fill_stage stage;
    bool dirty;                  /* a message wrote the entry meanwhile */
    uint64_t flush_epoch;        /* fill->flush_epoch when the job started */
    bool l2_missing;             /* L2 answered nil (not a failure) */
    bool l2_invalid;             /* L2 held a value that does not fit the kind */
    unsigned callbacks_pending;  /* L2 or L3 answers still to come */
};

struct submission {
    char *tenant;
    size_t tenant_len;
    unsigned kind;
    char *key;
    size_t key_len;
    struct blocked *waiter;      /* NULL: a hot refresh, or a prefetch */
};

/* One flush of a tenant (every: of every tenant), numbered by the epoch it
 * brought fill->flush_epoch to. */
struct flush_record {
    uint64_t epoch;
    bool every;
    size_t tenant_len;
    char tenant[NAMES_TENANT_MAX];
};

struct fill {
    struct event_base *base;
    struct cache *cache;
    const struct config *config;
    fill_deliver_fn *deliver;
    struct l2 *l2;
    struct origin *origin;
    struct fill_job *table[TABLE_BUCKETS];
    uint64_t seed;
    _Atomic uint64_t flush_epoch; /* bumped by FLUSH from any thread */
    pthread_mutex_t flush_lock;   /* guards flushes, and orders the bumps */
    struct flush_record flushes[FLUSH_LOG]; /* epoch e at e % FLUSH_LOG */

    pthread_mutex_t lock;        /* guards the fields below */
    struct submission *queue;
    size_t queue_count;
    size_t queue_capacity;
    bool closed;
    struct event *queue_event;

    struct log_ratelimit invalid_log;
};

/* ---- results ---- */

void fill_result_release(struct fill_result *result)
{
    if (result == NULL)
        return;
    if (atomic_fetch_sub_explicit(&result->references, 1, memory_order_acq_rel) != 1)
        return;
    value_clear(&result->value);
    free(result->tenant);
    free(result->key);
    free(result);
}

/* ---- the table of fills in flight ---- */

static uint64_t job_hash(const struct fill *fill, const char *tenant, size_t tenant_len,
                         unsigned kind, const char *key, size_t key_len)
{
    uint64_t hash = util_hash(tenant, tenant_len, fill->seed + kind);
    return util_hash(key, key_len, hash);
}

static bool job_matches(const struct fill_job *job, uint64_t hash, const char *tenant,
                        size_t tenant_len, unsigned kind, const char *key, size_t key_len)
{
    return job->hash == hash && job->kind == kind && job->tenant_len == tenant_len &&
           job->key_len == key_len && memcmp(job->tenant, tenant, tenant_len) == 0 &&
           memcmp(job->key, key, key_len) == 0;
}

/* True if a flush since the job started concerned its tenant (or the log
 * no longer reaches back that far). Otherwise the job is brought up to the
 * current epoch: the flushes it missed were of other tenants. */
static bool job_flushed(struct fill *fill, struct fill_job *job)
{
    pthread_mutex_lock(&fill->flush_lock);
    uint64_t now = atomic_load(&fill->flush_epoch);
    bool flushed = now - job->flush_epoch > FLUSH_LOG;
    for (uint64_t epoch = job->flush_epoch + 1; !flushed && epoch <= now; epoch++) {
        const struct flush_record *record = &fill->flushes[epoch % FLUSH_LOG];
        flushed = record->epoch != epoch || record->every ||
                  (record->tenant_len == job->tenant_len &&
                   memcmp(record->tenant, job->tenant, job->tenant_len) == 0);
    }
    if (!flushed)
        job->flush_epoch = now;
    pthread_mutex_unlock(&fill->flush_lock);
    return flushed;
}

/* True (and the job marked dirty) if a message wrote the entry or a flush
 * dropped its tenant since the job started: it brings a value from before
 * that, which is answered to its waiters but never cached, and a miss that
 * comes after never joins it (it starts a new job). */
static bool job_raced(struct fill *fill, struct fill_job *job)
{
    if (!job->dirty && job->flush_epoch != atomic_load(&fill->flush_epoch) &&
        job_flushed(fill, job))
        job->dirty = true;
    return job->dirty;
}

/* The job a new miss of the entry may join, or NULL. Several jobs of one
 * entry can be in the table at once; at most one of them is joinable. */
static struct fill_job *job_find_joinable(struct fill *fill, uint64_t hash, const char *tenant,
                                          size_t tenant_len, unsigned kind, const char *key,
                                          size_t key_len)
{
    for (struct fill_job *job = fill->table[hash % TABLE_BUCKETS]; job != NULL; job = job->next) {
        if (job_matches(job, hash, tenant, tenant_len, kind, key, key_len) &&
            !job_raced(fill, job))
            return job;
    }
    return NULL;
}

static void job_unlink(struct fill *fill, struct fill_job *job)
{
    for (struct fill_job **slot = &fill->table[job->hash % TABLE_BUCKETS]; *slot != NULL;
         slot = &(*slot)->next) {
        if (*slot == job) {
            *slot = job->next;
            return;
        }
    }
}

static void job_free(struct fill_job *job)
{
    free(job->tenant);
    free(job->key);
    free(job->waiters);
    free(job);
}

static void job_add_waiter(struct fill_job *job, struct blocked *waiter)
{
    if (waiter == NULL)
        return;
    if (job->waiter_count == job->waiter_capacity) {
        job->waiter_capacity = job->waiter_capacity ? job->waiter_capacity * 2 : 4;
        job->waiters = xrealloc(job->waiters, job->waiter_capacity * sizeof(*job->waiters));
    }
    job->waiters[job->waiter_count++] = waiter;
}

/* ---- completion ---- */

static void cache_outcome(struct fill *fill, struct fill_job *job, enum fill_status status,
                          const struct value_prepared *value, bool from_origin)
{
    const struct config *config = fill->config;
    uint64_t now = util_monotonic_ms();
    struct cache_key key = {
        .tenant = job->tenant,
        .tenant_len = job->tenant_len,
        .kind = job->kind,
        .key = job->key,
        .key_len = job->key_len,
    };
    /* A flush of another tenant between the check in job_complete() and
     * the write makes the write fail on the epoch: then it is tried again. */
    for (;;) {
        uint64_t epoch_seen = job->flush_epoch;
        enum cache_status written = CACHE_OK;
        if (status == FILL_VALUE) {
            const struct config_kind *kind = &config->kinds[job->kind];
            struct cache_value stored = {
                .json = value->json,
                .json_len = value->json_len,
                .derived = value->derived,
                .derived_len = value->derived_len,
                .index_key = value->index_key,
                .index_key_len = value->index_key_len,
            };
            struct cache_write write = {
                .critical = kind->tier == CONFIG_TIER_CRITICAL,
                .expires_ms = kind->ttl_ms ? now + kind->ttl_ms : 0,
                .updated_ms = util_realtime_ms(),
                .if_absent = true,
                .epoch = &fill->flush_epoch,
                .epoch_seen = epoch_seen,
            };
            written = cache_set(fill->cache, &key, &stored, &write, now);
        } else if (status == FILL_NOT_FOUND && from_origin) {
            written = cache_set_negative(fill->cache, &key, now + config->origin.negative_ttl_ms,
                                         &fill->flush_epoch, epoch_seen, now);
        }
        if (written != CACHE_STALE || atomic_load(&fill->flush_epoch) == epoch_seen ||
            job_flushed(fill, job))
            return;
    }
}

/* Ends a job: caches its outcome unless it raced with a message, hands it
 * to every waiter, and frees the job once no callback can reach it. Takes
 * ownership of value's contents. */
static void job_complete(struct fill_job *job, enum fill_status status,
                         struct value_prepared *value, bool from_origin)
{
    struct fill *fill = job->fill;
    job_unlink(fill, job);
    job->stage = STAGE_DONE;
    bool raced = job_raced(fill, job);
    if (status == FILL_UNAVAILABLE) {
        stats_add(&stats.fill_errors, 1);
    } else if (raced) {
        stats_add(&stats.fills_discarded, 1);
    } else {
        cache_outcome(fill, job, status, value, from_origin);
    }
    if (status == FILL_VALUE)
        stats_add(from_origin ? &stats.fills_l3 : &stats.fills_l2, 1);
    else if (status == FILL_NOT_FOUND && from_origin)
        stats_add(&stats.fills_negative, 1);

    if (job->waiter_count > 0) {
        struct fill_result *result = xcalloc(1, sizeof(*result));
        atomic_init(&result->references, (unsigned)job->waiter_count);
        result->status = status;
        result->tenant = xstrndup(job->tenant, job->tenant_len);
        result->tenant_len = job->tenant_len;
        result->kind = job->kind;
        result->key = xstrndup(job->key, job->key_len);
        result->key_len = job->key_len;
        if (status == FILL_VALUE && value != NULL) {
            result->value = *value;
            memset(value, 0, sizeof(*value));
        }
        for (size_t i = 0; i < job->waiter_count; i++)
            fill->deliver(job->waiters[i], result);
    }
    if (value != NULL)
        value_clear(value);
    if (job->callbacks_pending == 0)
        job_free(job);
}

/* A fill source answered after the job ended (a timeout won): drop it. */
static bool job_answer_is_late(struct fill_job *job)
{
    job->callbacks_pending--;
    if (job->stage != STAGE_DONE)
        return false;
    if (job->callbacks_pending == 0)
        job_free(job);
    return true;
}

/* Validates a value from L2 or L3 like a `set` of its kind. */
static bool prepare(struct fill *fill, struct fill_job *job, const char *text, size_t len,
                    struct value_prepared *out, const char *source)
{
    char error[ERROR_MAX];
    if (value_prepare_text(fill->config->kinds[job->kind].shape, text, len, out, error) == 0)
        return true;
    log_limited(&fill->invalid_log, 10000, LOG_LEVEL_WARNING,
                "%s value for %.*s/%s/%.*s rejected: %s", source, (int)job->tenant_len,
                job->tenant, fill->config->kinds[job->kind].name, (int)job->key_len, job->key,
                error);
    return false;
}

/* ---- L3 ---- */

static void l2_key(const struct fill *fill, const struct fill_job *job, char **out, size_t *len);

static void origin_answered(void *arg, enum origin_status status, const char *body, size_t len)
{
    struct fill_job *job = arg;
    if (job_answer_is_late(job))
        return;
    struct fill *fill = job->fill;
    if (status == ORIGIN_NOT_FOUND) {
        job_complete(job, FILL_NOT_FOUND, NULL, true);
        return;
    }
    struct value_prepared value;
    if (status != ORIGIN_FOUND || !prepare(fill, job, body, len, &value, "origin")) {
        job_complete(job, FILL_UNAVAILABLE, NULL, true);
        return;
    }
    if (fill->l2 != NULL && !job_raced(fill, job)) {
        char *key;
        size_t key_len;
        l2_key(fill, job, &key, &key_len);
        /* Whole seconds, rounded up; l2_ttl 0 means no expiry (l2_set
         * sends a plain SET for 0). */
        uint64_t ttl_ms = fill->config->kinds[job->kind].l2_ttl_ms;
        /* NX, unless what is there is known to be unusable: a value stored
         * meanwhile (another daemon's fill, the publisher) is newer. */
        l2_set(fill->l2, key, key_len, value.json, value.json_len, (ttl_ms + 999) / 1000,
               !job->l2_invalid);
        free(key);
    }
    job_complete(job, FILL_VALUE, &value, true);
}

static void job_try_origin(struct fill_job *job)
{
    struct fill *fill = job->fill;
    if (fill->origin == NULL) {
        job_complete(job, job->l2_missing ? FILL_NOT_FOUND : FILL_UNAVAILABLE, NULL, false);
        return;
    }
    job->stage = STAGE_L3;
    job->callbacks_pending++;
    origin_get(fill->origin, job->tenant, job->tenant_len, fill->config->kinds[job->kind].name,
               job->key, job->key_len, origin_answered, job);
}

/* ---- L2 ---- */

static void l2_key(const struct fill *fill, const struct fill_job *job, char **out, size_t *len)
{
    const char *kind = fill->config->kinds[job->kind].name;
    const char *const values[NAMES_PARTS] = {job->tenant, kind, job->key};
    const size_t lens[NAMES_PARTS] = {job->tenant_len, strlen(kind), job->key_len};
    *out = names_expand(fill->config->redis.key_format, values, lens, len);
}

static void l2_answered(void *arg, enum l2_status status, const char *value, size_t len)
{
    struct fill_job *job = arg;
    if (job_answer_is_late(job))
        return;
    struct fill *fill = job->fill;
    if (status == L2_FOUND) {
        struct value_prepared prepared;
        if (prepare(fill, job, value, len, &prepared, "L2")) {
            job_complete(job, FILL_VALUE, &prepared, false);
            return;
        }
        job->l2_invalid = true;
    } else if (status == L2_MISSING) {
        job->l2_missing = true;
    }
    job_try_origin(job);
}

static void job_start(struct fill_job *job)
{
    struct fill *fill = job->fill;
    if (fill->l2 != NULL && l2_available(fill->l2)) {
        char *key;
        size_t key_len;
        l2_key(fill, job, &key, &key_len);
        job->stage = STAGE_L2;
        job->callbacks_pending++;
        l2_get(fill->l2, key, key_len, fill->config->origin.timeout_ms, l2_answered, job);
        free(key);
        return;
    }
    job_try_origin(job);
}

static void request_fill(struct fill *fill, const char *tenant, size_t tenant_len, unsigned kind,
                         const char *key, size_t key_len, struct blocked *waiter)
{
    uint64_t hash = job_hash(fill, tenant, tenant_len, kind, key, key_len);
    struct fill_job *joined = job_find_joinable(fill, hash, tenant, tenant_len, kind, key, key_len);
    if (joined != NULL) {
        if (waiter != NULL)
            stats_add(&stats.fills_shared, 1);
        job_add_waiter(joined, waiter);
        return;
    }
    struct fill_job *job = xcalloc(1, sizeof(*job));
    job->fill = fill;
    job->hash = hash;
    job->tenant = xstrndup(tenant, tenant_len);
    job->tenant_len = tenant_len;
    job->kind = kind;
    job->key = xstrndup(key, key_len);
    job->key_len = key_len;
    job->flush_epoch = atomic_load(&fill->flush_epoch);
    job_add_waiter(job, waiter);
    job->next = fill->table[hash % TABLE_BUCKETS];
    fill->table[hash % TABLE_BUCKETS] = job;
    job_start(job);
}

/* ---- submissions from the query threads ---- */

/* A submission whose kind a reload removed. */
#define KIND_GONE UINT32_MAX

/* Answers a waiter FILL_UNAVAILABLE without a job (its kind is gone). */
static void deliver_unavailable(struct fill *fill, const struct submission *submission)
{
    if (submission->waiter == NULL)
        return;
    struct fill_result *result = xcalloc(1, sizeof(*result));
    atomic_init(&result->references, 1u);
    result->status = FILL_UNAVAILABLE;
    result->tenant = xstrndup(submission->tenant, submission->tenant_len);
    result->tenant_len = submission->tenant_len;
    result->kind = submission->kind;
    result->key = xstrndup(submission->key, submission->key_len);
    result->key_len = submission->key_len;
    stats_add(&stats.fill_errors, 1);
    fill->deliver(submission->waiter, result);
}

static void drain_queue(evutil_socket_t fd, short events, void *arg)
{
    (void)fd;
    (void)events;
    struct fill *fill = arg;
    pthread_mutex_lock(&fill->lock);
    struct submission *queue = fill->queue;
    size_t count = fill->queue_count;
    fill->queue = NULL;
    fill->queue_count = fill->queue_capacity = 0;
    pthread_mutex_unlock(&fill->lock);
    for (size_t i = 0; i < count; i++) {
        struct submission *submission = &queue[i];
        if (submission->kind == KIND_GONE)
            deliver_unavailable(fill, submission);
        else
            request_fill(fill, submission->tenant, submission->tenant_len, submission->kind,
                         submission->key, submission->key_len, submission->waiter);
        free(submission->tenant);
        free(submission->key);
    }
    free(queue);
}

int fill_submit(struct fill *fill, const char *tenant, size_t tenant_len, unsigned kind,
                const char *key, size_t key_len, struct blocked *waiter)
{
    pthread_mutex_lock(&fill->lock);
    if (fill->closed) {
        pthread_mutex_unlock(&fill->lock);
        return -1;
    }
    if (fill->queue_count == fill->queue_capacity) {
        fill->queue_capacity = fill->queue_capacity ? fill->queue_capacity * 2 : 64;
        fill->queue = xrealloc(fill->queue, fill->queue_capacity * sizeof(*fill->queue));
    }
    struct submission *submission = &fill->queue[fill->queue_count++];
    submission->tenant = xstrndup(tenant, tenant_len);
    submission->tenant_len = tenant_len;
    submission->kind = kind;
    submission->key = xstrndup(key, key_len);
    submission->key_len = key_len;
    submission->waiter = waiter;
    bool first = fill->queue_count == 1;
    pthread_mutex_unlock(&fill->lock);
    if (first)
        event_active(fill->queue_event, EV_READ, 0);
    return 0;
}

/* ---- the main thread's side ---- */

bool fill_possible(const struct config *config, unsigned kind)
{
    return (config->redis.l2 || config->origin.url[0] != '\0') && kind < config->kind_count &&
           config->kinds[kind].cached;
}

struct fill *fill_create(struct event_base *base, struct cache *cache, const struct config *config,
                         fill_deliver_fn *deliver)
{
    struct fill *fill = xcalloc(1, sizeof(*fill));
    fill->base = base;
    fill->cache = cache;
    fill->config = config;
    fill->deliver = deliver;
    fill->seed = util_monotonic_us();
    pthread_mutex_init(&fill->lock, NULL);
    pthread_mutex_init(&fill->flush_lock, NULL);
    fill->queue_event = event_new(base, -1, 0, drain_queue, fill);
    if (fill->queue_event == NULL)
        log_fatal("cannot create the fill queue event");
    char error[ERROR_MAX];
    if (l2_create(base, config, &fill->l2, error) != 0)
        log_error("%s; no L2 fills", error);
    if (origin_create(base, config, &fill->origin, error) != 0)
        log_error("%s; no L3 fills", error);
    return fill;
}

void fill_reconfigure(struct fill *fill, const struct config *config)
{
    const struct config *old = fill->config;
    char error[ERROR_MAX];
    fill->config = config;
    if (config->redis.l2 && fill->l2 != NULL) {
        l2_reconfigure(fill->l2, config);
    } else if (config->redis.l2 != old->redis.l2) {
        l2_destroy(fill->l2);
        if (l2_create(fill->base, config, &fill->l2, error) != 0)
            log_error("%s; no L2 fills", error);
    }
    if (strcmp(config->origin.url, old->origin.url) != 0 ||
        config->origin.timeout_ms != old->origin.timeout_ms ||
        config->origin.max_concurrent != old->origin.max_concurrent) {
        /* Requests in flight are answered as failures; new ones use the new origin. */
        struct origin *previous = fill->origin;
        if (origin_create(fill->base, config, &fill->origin, error) != 0)
            log_error("%s; no L3 fills", error);
        origin_destroy(previous);
    }
}

void fill_note_write(struct fill *fill, const char *tenant, size_t tenant_len, int kind,
                     const char *key, size_t key_len)
{
    if (fill == NULL)
        return;
    if (tenant != NULL && kind >= 0 && key != NULL) {
        uint64_t hash = job_hash(fill, tenant, tenant_len, (unsigned)kind, key, key_len);
        for (struct fill_job *job = fill->table[hash % TABLE_BUCKETS]; job != NULL; job = job->next) {
            if (job_matches(job, hash, tenant, tenant_len, (unsigned)kind, key, key_len))
                job->dirty = true;
        }
        return;
    }
    for (size_t b = 0; b < TABLE_BUCKETS; b++) {
        for (struct fill_job *job = fill->table[b]; job != NULL; job = job->next) {
            bool tenant_matches = tenant == NULL || (job->tenant_len == tenant_len &&
                                                     memcmp(job->tenant, tenant, tenant_len) == 0);
            bool kind_matches = kind < 0 || job->kind == (unsigned)kind;
            if (tenant_matches && kind_matches)
                job->dirty = true;
        }
    }
}

void fill_remap_kinds(struct fill *fill, const int *map, unsigned map_count)
{
    if (fill == NULL)
        return;
    pthread_mutex_lock(&fill->lock);
    for (size_t i = 0; i < fill->queue_count; i++) {
        struct submission *submission = &fill->queue[i];
        unsigned kind = submission->kind;
        int to = kind < map_count ? map[kind] : -1;
        submission->kind = to < 0 ? KIND_GONE : (unsigned)to;
    }
    pthread_mutex_unlock(&fill->lock);
    /* Every job out of the table, then back under its new number (its hash
     * covers the kind); a job of a removed kind is answered unavailable. */
    struct fill_job *jobs = NULL;
    for (size_t b = 0; b < TABLE_BUCKETS; b++) {
        while (fill->table[b] != NULL) {
            struct fill_job *job = fill->table[b];
            fill->table[b] = job->next;
            job->next = jobs;
            jobs = job;
        }
    }
    while (jobs != NULL) {
        struct fill_job *job = jobs;
        jobs = job->next;
        job->next = NULL;
        int to = job->kind < map_count ? map[job->kind] : -1;
        if (to < 0) {
            job_complete(job, FILL_UNAVAILABLE, NULL, false);
            continue;
        }
        job->kind = (unsigned)to;
        job->hash = job_hash(fill, job->tenant, job->tenant_len, job->kind, job->key, job->key_len);
        job->next = fill->table[job->hash % TABLE_BUCKETS];
        fill->table[job->hash % TABLE_BUCKETS] = job;
    }
}

void fill_note_flush(struct fill *fill, const char *tenant, size_t tenant_len)
{
    if (fill == NULL)
        return;
    pthread_mutex_lock(&fill->flush_lock);
    uint64_t epoch = atomic_load(&fill->flush_epoch) + 1;
    struct flush_record *record = &fill->flushes[epoch % FLUSH_LOG];
    record->epoch = epoch;
    record->every = tenant == NULL || tenant_len > sizeof(record->tenant);
    record->tenant_len = record->every ? 0 : tenant_len;
    if (!record->every)
        memcpy(record->tenant, tenant, tenant_len);
    atomic_store(&fill->flush_epoch, epoch);
    pthread_mutex_unlock(&fill->flush_lock);
}

void fill_refresh(struct fill *fill, const char *tenant, size_t tenant_len, unsigned kind,
                  const char *key, size_t key_len)
{
    if (fill != NULL && fill_possible(fill->config, kind))
        request_fill(fill, tenant, tenant_len, kind, key, key_len, NULL);
}

void fill_shutdown(struct fill *fill)
{
    if (fill == NULL)
        return;
    pthread_mutex_lock(&fill->lock);
    fill->closed = true;
    pthread_mutex_unlock(&fill->lock);
    /* Whatever was submitted is answered too, through the table. */
    drain_queue(-1, 0, fill);
    for (size_t b = 0; b < TABLE_BUCKETS; b++) {
        while (fill->table[b] != NULL)
            job_complete(fill->table[b], FILL_UNAVAILABLE, NULL, false);
    }
}

void fill_destroy(struct fill *fill)
{
    if (fill == NULL)
        return;
    fill_shutdown(fill);
    /* Their pending callbacks free the jobs that are done already. */
    l2_destroy(fill->l2);
    origin_destroy(fill->origin);
    event_free(fill->queue_event);
    pthread_mutex_destroy(&fill->lock);
    pthread_mutex_destroy(&fill->flush_lock);
    free(fill);
}
