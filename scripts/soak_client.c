/* soak_client.c - the publisher and the query clients of scripts/soak.sh
 * (which compiles it with cc against hiredis; it is not part of the build).
 *
 * One process: a publisher thread sends versioned set/del messages over KEYS
 * entries to Redis at a steady rate, and CLIENTS query threads read the same
 * entries from the daemon (pipelined GET, GET by full name, MGET) and check
 * every reply against what was published. The rule each reply must follow is
 * stated in soak.sh's header; in short, for entry i, a reply that started at
 * S and completed at E is right when it is
 *   - nil, or -STALE (counted apart), or
 *   - exactly the value published for (i, v) for a version v that was a set,
 *     with v <= the newest version of i the publisher had sent by E, and
 *     v >= floor(i, S) = max(seen(i, S), confirmed(i, S)), where
 *       seen(i, S): the newest version of i in any reply completed before S;
 *       confirmed(i, S): the newest version of i whose PUBLISH reached at
 *         least one subscriber GRACE ms or more before S, with no Redis outage
 *         noticed by the publisher from that PUBLISH until it was confirmed
 *         (GRACE ms later, or a little more).
 * Any other reply (another entry's value, a deleted version, an older one, a
 * protocol or connection error) is counted as wrong or as an error.
 *
 * After the run the publisher stops, waits GRACE ms, and one last sweep reads
 * every entry under the same rule (with every acknowledged publish confirmed).
 *
 * Every second it writes its counters to STATS (write, then rename):
 *   replies errors stale wrong nil published publish_errors outages
 * Exit status: 0 clean; 1 wrong answers or errors; 2 usage or setup failure. */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define TENANTS 4
#define PIPELINE 16
#define MGET_KEYS 4
#define MAX_CLIENTS 256
#define VALUE_MAX 512
#define MESSAGE_MAX 1024
#define REPORT_MAX 20 /* detailed lines printed for wrong answers and errors */

static const char *const kinds[] = {"config", "profile"}; /* critical, reference */

static struct {
    const char *redis_socket;
    const char *daemon_socket;
    const char *channel;
    const char *stats_path;
    unsigned seconds;
    unsigned keys;
    unsigned rate;    /* messages a second */
    unsigned clients;
    unsigned grace_ms;
} opt = {NULL, NULL, "tenantcached:invalidate", NULL, 60, 5000, 2000, 16, 2000};

/* Per entry; all shared between the publisher and the readers. */
static _Atomic uint64_t *started;   /* newest version sent (stored before PUBLISH) */
static _Atomic uint64_t *confirmed; /* newest version that must be visible */
static _Atomic uint64_t *seen;      /* newest version returned by a completed reply */

static atomic_bool stop_publishing, stop_reading;
static _Atomic uint64_t n_replies, n_errors, n_stale, n_wrong, n_nil;
static _Atomic uint64_t n_published, n_publish_errors, n_outages;
static _Atomic unsigned reports;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static void report(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Prints the first REPORT_MAX findings to stderr. */
static void report(const char *fmt, ...)
{
    if (atomic_fetch_add(&reports, 1) >= REPORT_MAX)
        return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
}

static void atomic_max(_Atomic uint64_t *slot, uint64_t value)
{
    uint64_t old = atomic_load(slot);
    while (old < value && !atomic_compare_exchange_weak(slot, &old, value)) {
    }
}

/* ---- the data model: entry i, version v ---------------------------------- */

static unsigned tenant_of(unsigned i)
{
    return i % TENANTS;
}

static const char *kind_of(unsigned i)
{
    return kinds[(i / TENANTS) % 2];
}

/* One version in ten is a del; which one depends only on (i, v). */
static bool is_del(unsigned i, uint64_t v)
{
    uint64_t h = (v * UINT64_C(0x9E3779B97F4A7C15)) ^ (i * UINT64_C(0xC2B2AE3D27D4EB4F));
    h ^= h >> 29;
    return h % 10 == 0;
}

/* The JSON value of (i, v) as the daemon stores it (compact, in this order);
 * its size varies with v so that entries are freed and reallocated. */
static int value_of(unsigned i, uint64_t v, char *out, size_t size)
{
    char pad[200];
    size_t pad_len = (size_t)((v * 37 + i) % 160);
    memset(pad, 'a' + (int)(v % 26), pad_len);
    pad[pad_len] = '\0';
    return snprintf(out, size, "{\"k\":\"k%u\",\"v\":%" PRIu64 ",\"p\":\"%s\"}", i, v, pad);
}

static int op_of(unsigned i, uint64_t v, bool with_seq, uint64_t seq, char *out, size_t size)
{
    char value[VALUE_MAX], tail[64] = "";
    if (with_seq)
        snprintf(tail, sizeof(tail), ",\"src\":\"soak\",\"seq\":%" PRIu64, seq);
    if (is_del(i, v))
        return snprintf(out, size,
                        "{\"op\":\"del\",\"tenant\":\"soak%u\",\"kind\":\"%s\",\"key\":\"k%u\","
                        "\"version\":%" PRIu64 "%s}",
                        tenant_of(i), kind_of(i), i, v, tail);
    value_of(i, v, value, sizeof(value));
    return snprintf(out, size,
                    "{\"op\":\"set\",\"tenant\":\"soak%u\",\"kind\":\"%s\",\"key\":\"k%u\","
                    "\"value\":%s,\"version\":%" PRIu64 "%s}",
                    tenant_of(i), kind_of(i), i, value, v, tail);
}

/* ---- the publisher --------------------------------------------------------- */

struct pending {
    unsigned i;
    uint64_t v;
    uint64_t acked_ms;
    uint64_t epoch; /* outages noticed when the PUBLISH was acknowledged */
};

struct publisher {
    redisContext *redis;
    uint64_t *versions; /* the publisher's own copy of the newest version */
    uint64_t seq, epoch, sent;
    struct pending *ring;
    size_t ring_cap, ring_head, ring_len;
};

static redisContext *connect_unix(const char *path)
{
    struct timeval timeout = {2, 0};
    redisContext *c = redisConnectUnixWithTimeout(path, timeout);
    if (c == NULL || c->err) {
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    struct timeval command_timeout = {5, 0};
    redisSetTimeout(c, command_timeout);
    return c;
}

static void pending_push(struct publisher *p, unsigned i, uint64_t v, uint64_t at)
{
    if (p->ring_len == p->ring_cap) { /* full: forget the oldest (less strict, never wrong) */
        p->ring_head = (p->ring_head + 1) % p->ring_cap;
        p->ring_len--;
    }
    p->ring[(p->ring_head + p->ring_len) % p->ring_cap] = (struct pending){i, v, at, p->epoch};
    p->ring_len++;
}

/* Confirms what was acknowledged GRACE ms ago with no outage since; all of it
 * when `all` (the final sweep, GRACE ms after the last publish). */
static void pending_promote(struct publisher *p, bool all)
{
    uint64_t now = now_ms();
    while (p->ring_len > 0) {
        const struct pending *e = &p->ring[p->ring_head];
        if (!all && e->acked_ms + opt.grace_ms > now)
            break;
        if (e->epoch == p->epoch)
            atomic_max(&confirmed[e->i], e->v);
        p->ring_head = (p->ring_head + 1) % p->ring_cap;
        p->ring_len--;
    }
}

static void outage(struct publisher *p)
{
    if (p->redis != NULL) {
        redisFree(p->redis);
        p->redis = NULL;
        p->epoch++;
        atomic_fetch_add(&n_outages, 1);
    }
}

/* Sends one PUBLISH; returns the receivers, or -1 (an outage). */
static long long publish(struct publisher *p, const char *payload, size_t len)
{
    if (p->redis == NULL) {
        p->redis = connect_unix(opt.redis_socket);
        if (p->redis == NULL)
            return -1;
    }
    redisReply *r = redisCommand(p->redis, "PUBLISH %s %b", opt.channel, payload, len);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER) {
        if (r != NULL)
            freeReplyObject(r);
        atomic_fetch_add(&n_publish_errors, 1);
        outage(p);
        return -1;
    }
    long long receivers = r->integer;
    freeReplyObject(r);
    atomic_fetch_add(&n_published, 1);
    return receivers;
}

static unsigned pick_key(struct publisher *p)
{
    /* mostly a sweep over every entry (a stride coprime with most key counts),
     * sometimes one of 64 hot entries */
    if (p->sent % 4 == 3)
        return (unsigned)((p->sent * 7919) % (opt.keys < 64 ? opt.keys : 64));
    return (unsigned)((p->sent * 40503) % opt.keys);
}

/* One message: usually one versioned op with src/seq; every 97th a batch of
 * three ops; every 101st a duplicate of an entry's newest version (ignored as
 * stale, or applied if the entry was flushed since: right either way); every
 * 499th a malformed message (rejected and counted). An older version is never
 * replayed: after a flush the daemon would rightly apply it. */
static void publish_one(struct publisher *p)
{
    char message[MESSAGE_MAX * 3 + 8];
    unsigned ids[3];
    size_t n_ids = 0;
    int len = 0;
    p->sent++;

    if (p->sent % 499 == 0) {
        static const char garbage[] = "{\"op\":\"set\",\"tenant\":\"soak0\",\"kind\":";
        publish(p, garbage, sizeof(garbage) - 1);
        return;
    }
    if (p->sent % 101 == 0) {
        unsigned i = pick_key(p);
        if (p->versions[i] > 0) { /* a duplicate: not newer than what the daemon holds */
            len = op_of(i, p->versions[i], false, 0, message, sizeof(message));
            publish(p, message, (size_t)len);
            return;
        }
    }
    if (p->sent % 97 == 0) {
        message[len++] = '[';
        for (size_t b = 0; b < 3; b++) {
            unsigned i = (pick_key(p) + (unsigned)b * 8 + 1) % opt.keys;
            bool dup = false;
            for (size_t d = 0; d < n_ids; d++)
                dup = dup || ids[d] == i;
            if (dup)
                continue;
            uint64_t v = ++p->versions[i];
            atomic_store(&started[i], v);
            if (n_ids > 0)
                message[len++] = ',';
            len += op_of(i, v, false, 0, message + len, sizeof(message) - (size_t)len - 2);
            ids[n_ids++] = i;
        }
        message[len++] = ']';
        message[len] = '\0';
    } else {
        unsigned i = pick_key(p);
        uint64_t v = ++p->versions[i];
        atomic_store(&started[i], v);
        len = op_of(i, v, true, ++p->seq, message, sizeof(message));
        ids[n_ids++] = i;
    }
    long long receivers = publish(p, message, (size_t)len);
    if (receivers >= 1) {
        uint64_t at = now_ms();
        for (size_t d = 0; d < n_ids; d++)
            pending_push(p, ids[d], p->versions[ids[d]], at);
    }
}

static void *publisher_main(void *arg)
{
    struct publisher *p = arg;
    const unsigned tick_ms = 10;
    uint64_t next = now_ms(), owed = 0; /* messages per tick, in hundredths */

    while (!atomic_load(&stop_publishing)) {
        owed += (uint64_t)opt.rate * tick_ms / 10; /* rate * tick / 1000, x100 */
        while (owed >= 100 && !atomic_load(&stop_publishing)) {
            owed -= 100;
            publish_one(p);
            if (p->redis == NULL) { /* Redis is down: retry in a while */
                owed = 0;
                break;
            }
        }
        pending_promote(p, false);
        next += tick_ms;
        uint64_t now = now_ms();
        if (next > now)
            sleep_ms((unsigned)(next - now));
        else
            next = now; /* behind (an outage): do not burst to catch up */
    }
    /* Quiet: whatever the daemon got has been applied GRACE ms later. */
    sleep_ms(opt.grace_ms);
    pending_promote(p, true);
    return NULL;
}

/* ---- the readers ----------------------------------------------------------- */

/* Checks one reply element for entry i; floor was read before sending. */
static void check_element(unsigned i, uint64_t floor, const redisReply *r, const char *what)
{
    atomic_fetch_add(&n_replies, 1);
    if (r->type == REDIS_REPLY_NIL) {
        atomic_fetch_add(&n_nil, 1);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        if (strncmp(r->str, "STALE", 5) == 0) {
            atomic_fetch_add(&n_stale, 1);
            return;
        }
        atomic_fetch_add(&n_errors, 1);
        report("error: %s k%u: %s\n", what, i, r->str);
        return;
    }
    if (r->type != REDIS_REPLY_STRING) {
        atomic_fetch_add(&n_wrong, 1);
        report("WRONG: %s k%u: reply of type %d\n", what, i, r->type);
        return;
    }
    unsigned key;
    uint64_t v;
    char expected[VALUE_MAX];
    const char *why = NULL;
    if (sscanf(r->str, "{\"k\":\"k%u\",\"v\":%" SCNu64 ",", &key, &v) != 2)
        why = "not a value the publisher sends";
    else if (key != i)
        why = "another entry's value";
    else if (value_of(i, v, expected, sizeof(expected)) < 0 || strlen(expected) != r->len ||
             memcmp(expected, r->str, r->len) != 0)
        why = "a corrupted value";
    else if (is_del(i, v))
        why = "a version that was a del";
    else if (v > atomic_load(&started[i]))
        why = "a version not published yet";
    else if (v < floor)
        why = "older than what it must be at least";
    if (why != NULL) {
        atomic_fetch_add(&n_wrong, 1);
        report("WRONG: %s k%u: %s: floor %" PRIu64 " (seen %" PRIu64 ", confirmed %" PRIu64
               "), started %" PRIu64 ", reply %.*s\n",
               what, i, why, floor, atomic_load(&seen[i]), atomic_load(&confirmed[i]),
               atomic_load(&started[i]), (int)(r->len > 120 ? 120 : r->len), r->str);
        return;
    }
    atomic_max(&seen[i], v);
}

static uint64_t floor_of(unsigned i)
{
    uint64_t s = atomic_load(&seen[i]), c = atomic_load(&confirmed[i]);
    return s > c ? s : c;
}

enum request_form { FORM_GET, FORM_NAME, FORM_MGET };

struct request {
    enum request_form form;
    unsigned ids[MGET_KEYS];
    uint64_t floors[MGET_KEYS];
    size_t count;
};

static void append_request(redisContext *c, struct request *q, unsigned i, uint32_t roll)
{
    unsigned t = tenant_of(i);
    const char *kind = kind_of(i);
    q->form = roll % 10 < 7 ? FORM_GET : roll % 10 < 8 ? FORM_NAME : FORM_MGET;
    if (q->form == FORM_MGET) {
        /* entries i, i+8, ... share the tenant and the kind */
        q->count = 0;
        for (unsigned j = 0; j < MGET_KEYS; j++) {
            unsigned id = (i + j * 8) % opt.keys;
            if (tenant_of(id) != t || kind_of(id) != kind)
                break;
            q->ids[q->count++] = id;
        }
    } else {
        q->ids[0] = i;
        q->count = 1;
    }
    for (size_t j = 0; j < q->count; j++)
        q->floors[j] = floor_of(q->ids[j]);

    char tenant[16], key_args[MGET_KEYS][16];
    const char *argv[3 + MGET_KEYS];
    size_t argc = 0;
    snprintf(tenant, sizeof(tenant), "soak%u", t);
    if (q->form == FORM_NAME) {
        char name[64];
        snprintf(name, sizeof(name), "cache:soak%u:%s:k%u", t, kind, i);
        redisAppendCommand(c, "GET %s", name);
        return;
    }
    argv[argc++] = q->form == FORM_MGET ? "MGET" : "GET";
    argv[argc++] = tenant;
    argv[argc++] = kind;
    for (size_t j = 0; j < q->count; j++) {
        snprintf(key_args[j], sizeof(key_args[j]), "k%u", q->ids[j]);
        argv[argc++] = key_args[j];
    }
    redisAppendCommandArgv(c, (int)argc, argv, NULL);
}

static void check_request(const struct request *q, const redisReply *r)
{
    static const char *const names[] = {"GET", "GET name", "MGET"};
    const char *what = names[q->form];
    if (q->form != FORM_MGET) {
        check_element(q->ids[0], q->floors[0], r, what);
        return;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        for (size_t j = 0; j < q->count; j++)
            check_element(q->ids[j], q->floors[j], r, what);
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != q->count) {
        atomic_fetch_add(&n_wrong, 1);
        report("WRONG: MGET of %zu keys: reply of type %d with %zu elements\n", q->count, r->type,
               r->type == REDIS_REPLY_ARRAY ? r->elements : 0);
        return;
    }
    for (size_t j = 0; j < q->count; j++)
        check_element(q->ids[j], q->floors[j], r->element[j], what);
}

static uint32_t next_random(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

static void *reader_main(void *arg)
{
    uint32_t state = (uint32_t)(uintptr_t)arg * 2654435761u + 17;
    redisContext *c = NULL;
    struct request batch[PIPELINE];

    while (!atomic_load(&stop_reading)) {
        if (c == NULL) {
            c = connect_unix(opt.daemon_socket);
            if (c == NULL) {
                atomic_fetch_add(&n_errors, 1);
                report("error: cannot connect to the daemon\n");
                sleep_ms(100);
                continue;
            }
        }
        for (size_t b = 0; b < PIPELINE; b++) {
            uint32_t roll = next_random(&state);
            unsigned i = (roll >> 8) % opt.keys;
            if (roll % 3 == 0) /* the publisher's hot entries */
                i = (roll >> 8) % (opt.keys < 64 ? opt.keys : 64);
            append_request(c, &batch[b], i, next_random(&state));
        }
        for (size_t b = 0; b < PIPELINE; b++) {
            redisReply *r = NULL;
            if (redisGetReply(c, (void **)&r) != REDIS_OK || r == NULL) {
                atomic_fetch_add(&n_errors, 1);
                report("error: daemon connection: %s\n", c->errstr);
                redisFree(c);
                c = NULL;
                break;
            }
            check_request(&batch[b], r);
            freeReplyObject(r);
        }
    }
    if (c != NULL)
        redisFree(c);
    return NULL;
}

/* After the run: every entry once, with everything acknowledged confirmed. */
static int final_sweep(void)
{
    redisContext *c = connect_unix(opt.daemon_socket);
    if (c == NULL) {
        report("error: final sweep: cannot connect to the daemon\n");
        atomic_fetch_add(&n_errors, 1);
        return -1;
    }
    for (unsigned i = 0; i < opt.keys; i++) {
        uint64_t floor = floor_of(i);
        redisReply *r = redisCommand(c, "GET soak%u %s k%u", tenant_of(i), kind_of(i), i);
        if (r == NULL) {
            report("error: final sweep: %s\n", c->errstr);
            atomic_fetch_add(&n_errors, 1);
            redisFree(c);
            return -1;
        }
        check_element(i, floor, r, "final GET");
        freeReplyObject(r);
    }
    redisFree(c);
    return 0;
}

/* ---- main ------------------------------------------------------------------ */

static void write_stats(void)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", opt.stats_path);
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return;
    fprintf(f, "%" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64 " %" PRIu64
               " %" PRIu64 "\n",
            atomic_load(&n_replies), atomic_load(&n_errors), atomic_load(&n_stale),
            atomic_load(&n_wrong), atomic_load(&n_nil), atomic_load(&n_published),
            atomic_load(&n_publish_errors), atomic_load(&n_outages));
    if (fclose(f) == 0)
        rename(tmp, opt.stats_path);
}

static void usage(void)
{
    fprintf(stderr,
            "usage: soak_client -r REDIS_SOCKET -d DAEMON_SOCKET -o STATS [-t SECONDS] [-k KEYS]\n"
            "                   [-m MESSAGES_PER_SECOND] [-c CLIENTS] [-g GRACE_MS] [-C CHANNEL]\n");
    exit(2);
}

static unsigned number(const char *text, unsigned min, unsigned max)
{
    char *end;
    errno = 0;
    unsigned long value = strtoul(text, &end, 10);
    if (errno != 0 || *end != '\0' || end == text || value < min || value > max)
        usage();
    return (unsigned)value;
}

int main(int argc, char **argv)
{
    int o;
    while ((o = getopt(argc, argv, "r:d:o:t:k:m:c:g:C:")) != -1) {
        switch (o) {
        case 'r': opt.redis_socket = optarg; break;
        case 'd': opt.daemon_socket = optarg; break;
        case 'o': opt.stats_path = optarg; break;
        case 't': opt.seconds = number(optarg, 1, 86400 * 7); break;
        case 'k': opt.keys = number(optarg, 8, 10000000); break;
        case 'm': opt.rate = number(optarg, 1, 1000000); break;
        case 'c': opt.clients = number(optarg, 1, MAX_CLIENTS); break;
        case 'g': opt.grace_ms = number(optarg, 100, 60000); break;
        case 'C': opt.channel = optarg; break;
        default: usage();
        }
    }
    if (opt.redis_socket == NULL || opt.daemon_socket == NULL || opt.stats_path == NULL ||
        optind != argc)
        usage();

    signal(SIGPIPE, SIG_IGN); /* a write to a dead Redis or daemon is an error, not a death */
    started = calloc(opt.keys, sizeof(*started));
    confirmed = calloc(opt.keys, sizeof(*confirmed));
    seen = calloc(opt.keys, sizeof(*seen));
    struct publisher pub = {0};
    pub.versions = calloc(opt.keys, sizeof(*pub.versions));
    pub.ring_cap = (size_t)opt.rate * 3 * (opt.grace_ms / 1000 + 2) + 1024;
    pub.ring = calloc(pub.ring_cap, sizeof(*pub.ring));
    if (started == NULL || confirmed == NULL || seen == NULL || pub.versions == NULL ||
        pub.ring == NULL) {
        fprintf(stderr, "soak_client: out of memory\n");
        return 2;
    }

    pthread_t publisher, readers[MAX_CLIENTS];
    if (pthread_create(&publisher, NULL, publisher_main, &pub) != 0)
        return 2;
    for (unsigned r = 0; r < opt.clients; r++) {
        if (pthread_create(&readers[r], NULL, reader_main, (void *)(uintptr_t)(r + 1)) != 0)
            return 2;
    }
    uint64_t end = now_ms() + (uint64_t)opt.seconds * 1000;
    while (now_ms() < end) {
        sleep_ms(1000);
        write_stats();
    }
    /* Stop publishing first; the readers go on checking through the quiet
     * GRACE period, then stop; then the final sweep. */
    atomic_store(&stop_publishing, true);
    pthread_join(publisher, NULL);
    atomic_store(&stop_reading, true);
    for (unsigned r = 0; r < opt.clients; r++)
        pthread_join(readers[r], NULL);
    uint64_t before = atomic_load(&n_replies);
    final_sweep();
    write_stats();
    if (pub.redis != NULL)
        redisFree(pub.redis);

    uint64_t wrong = atomic_load(&n_wrong), errors = atomic_load(&n_errors);
    printf("soak_client: %" PRIu64 " replies (%" PRIu64 " nil, %" PRIu64 " -STALE), %" PRIu64
           " wrong, %" PRIu64 " errors; %" PRIu64 " messages published (%" PRIu64
           " failed, %" PRIu64 " Redis outages seen); final sweep %" PRIu64 " entries\n",
           atomic_load(&n_replies), atomic_load(&n_nil), atomic_load(&n_stale), wrong, errors,
           atomic_load(&n_published), atomic_load(&n_publish_errors), atomic_load(&n_outages),
           atomic_load(&n_replies) - before);
    free(started);
    free(confirmed);
    free(seen);
    free(pub.versions);
    free(pub.ring);
    if (atomic_load(&n_published) == 0 || before == 0) {
        fprintf(stderr, "soak_client: nothing was published or read\n");
        return 1;
    }
    return wrong == 0 && errors == 0 ? 0 : 1;
}
