/* latency.c - publish-to-visible latency at a steady message rate.
 *
 *   latency REDIS_SOCK DAEMON_SOCK|- RATE COUNT
 *
 * Method (open loop, two threads, so that a slow answer never holds back
 * the next message, which would hide latency: "coordinated omission"):
 *  - the publisher thread sends message i at start + i/RATE, whatever
 *    happened before, as `PUBLISH tenantcached:invalidate {"op":"set",
 *    "tenant":"bench-latency","kind":"config","key":"probe","value":{"i":i,
 *    "pad":...}}` (~150 bytes) on its own connection, noting the time just
 *    before the write; it reads Redis's replies in passing;
 *  - the poller thread asks the daemon `GET bench-latency config probe` on a
 *    second connection, 20 us after each answer (not back to back: on two
 *    cores a spinning poller would take the CPU the daemon needs to apply
 *    the messages). Every message sets the same entry and
 *    the daemon applies one channel in order, so a reply showing i means
 *    that messages 0..i are all visible: each of them not yet seen gets the
 *    latency (time of this reply - its send time). The error is at most one
 *    GET round trip (~20 us here) plus the 20 us pause, always upward.
 * With "-" instead of DAEMON_SOCK it measures redis-server's own part, the
 * floor of the above: the messages go to channel "bench:plain", and the
 * second thread is a plain subscriber of it that reads each one as it comes.
 *
 * Prints p50, p90, p99, p99.9 and max in microseconds, and how many
 * messages the publisher sent more than 1 ms after their due time (a sign
 * that the machine, not the daemon, was the bottleneck). */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "common.h"
#include "seed.h"

/* No message seen for this long: the run has failed. */
#define STALL_NS (30ull * 1000000000ull)
#define POLL_PAUSE_NS 20000u

struct run {
    const char *redis_path;
    const char *daemon_path;   /* NULL: plain subscriber mode */
    const char *channel;
    unsigned long long rate;
    unsigned long long count;
    _Atomic uint64_t *sent;    /* send time of each message; 0: not yet */
    uint64_t *latency;
    unsigned long long late;
    uint64_t start;
};

static size_t make_message(unsigned long long i, char *out, size_t size)
{
    int n = snprintf(out, size,
                     "{\"op\":\"set\",\"tenant\":\"bench-latency\",\"kind\":\"config\",\"key\":"
                     "\"probe\",\"value\":{\"i\":%llu,\"pad\":\"publish-to-visible probe\"}}",
                     i);
    return n > 0 ? (size_t)n : 0;
}

/* The number in `"i":N` of a message or value; -1 if there is none. */
static long long index_of(const char *text, size_t len)
{
    const char *p = memmem(text, len, "\"i\":", 4);
    return p != NULL ? strtoll(p + 4, NULL, 10) : -1;
}

static void *publisher(void *arg)
{
    struct run *run = arg;
    redisContext *redis = bench_connect(run->redis_path);
    double interval = 1e9 / (double)run->rate;
    unsigned long long unread = 0;
    for (unsigned long long i = 0; i < run->count; i++) {
        uint64_t due = run->start + (uint64_t)((double)i * interval);
        char message[256];
        size_t len = make_message(i, message, sizeof(message));
        bench_sleep_until(due);
        uint64_t now = bench_now_ns();
        if (now > due + 1000000)
            run->late++;
        atomic_store_explicit(&run->sent[i], now, memory_order_release);
        redisAppendCommand(redis, "PUBLISH %s %b", run->channel, message, len);
        int done = 0;
        while (!done)
            if (redisBufferWrite(redis, &done) != REDIS_OK)
                bench_die("PUBLISH: %s", redis->errstr);
        /* collect the replies now and then, without waiting for them */
        if (++unread >= 64) {
            for (; unread > 0; unread--) {
                redisReply *reply;
                if (redisGetReply(redis, (void **)&reply) != REDIS_OK)
                    bench_die("PUBLISH: %s", redis->errstr);
                if (reply->type != REDIS_REPLY_INTEGER || reply->integer < 1)
                    bench_die("PUBLISH reached no subscriber");
                freeReplyObject(reply);
            }
        }
    }
    redisFree(redis);
    return NULL;
}

static void record(struct run *run, unsigned long long *next, long long upto, uint64_t now)
{
    for (; (long long)*next <= upto && *next < run->count; (*next)++) {
        uint64_t sent;
        while ((sent = atomic_load_explicit(&run->sent[*next], memory_order_acquire)) == 0)
            ; /* seen before its send time was stored: a few instructions away */
        run->latency[*next] = now > sent ? now - sent : 0;
    }
}

static void *poller(void *arg)
{
    struct run *run = arg;
    redisContext *c = bench_connect(run->daemon_path != NULL ? run->daemon_path : run->redis_path);
    if (run->daemon_path == NULL)
        freeReplyObject(bench_command(c, "SUBSCRIBE %s", run->channel));
    unsigned long long next = 0;
    uint64_t progress_at = bench_now_ns();
    while (next < run->count) {
        unsigned long long before = next;
        redisReply *reply;
        if (run->daemon_path != NULL) {
            if (next > 0)
                bench_sleep_until(bench_now_ns() + POLL_PAUSE_NS);
            reply = bench_command(c, "GET bench-latency config probe");
        } else if (redisGetReply(c, (void **)&reply) != REDIS_OK) {
            bench_die("subscriber: %s", c->errstr);
        }
        uint64_t now = bench_now_ns();
        const redisReply *text = reply;
        if (reply->type == REDIS_REPLY_ARRAY && reply->elements == 3)
            text = reply->element[2];
        if (text->type == REDIS_REPLY_STRING)
            record(run, &next, index_of(text->str, text->len), now);
        freeReplyObject(reply);
        /* A message that never shows (lost with a dropped subscription,
         * say) must end the run, not hang it. */
        if (next != before)
            progress_at = now;
        else if (now - progress_at > STALL_NS)
            bench_die("message %llu of %llu not visible after %d s", next, run->count,
                      (int)(STALL_NS / 1000000000ull));
    }
    redisFree(c);
    return NULL;
}

static int compare_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double percentile(const uint64_t *sorted, unsigned long long n, double p)
{
    return (double)sorted[(size_t)(p * (double)(n - 1) + 0.5)] / 1000.0;
}

int main(int argc, char **argv)
{
    bench_program = "latency";
    if (argc != 5) {
        fprintf(stderr, "usage: latency REDIS_SOCK DAEMON_SOCK|- RATE COUNT\n");
        return 2;
    }
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0); /* wake up on time, not 50 us late */
    struct run run = {
        .redis_path = argv[1],
        .daemon_path = strcmp(argv[2], "-") == 0 ? NULL : argv[2],
        .rate = bench_parse_u64(argv[3], "RATE"),
        .count = bench_parse_u64(argv[4], "COUNT"),
    };
    run.channel = run.daemon_path != NULL ? SEED_CHANNEL : "bench:plain";
    if (run.rate == 0 || run.count == 0)
        bench_die("RATE and COUNT must be positive");
    run.sent = calloc(run.count, sizeof(*run.sent));
    run.latency = calloc(run.count, sizeof(*run.latency));
    if (run.sent == NULL || run.latency == NULL)
        bench_die("out of memory");
    if (run.daemon_path != NULL) {
        /* start from a known state: the probe entry holds no index yet */
        redisContext *c = bench_connect(run.redis_path);
        char message[256];
        size_t len = make_message(0, message, sizeof(message));
        memcpy(strstr(message, "\"i\":0"), "\"j\"", 3);
        freeReplyObject(bench_command(c, "PUBLISH %s %b", SEED_CHANNEL, message, len));
        redisFree(c);
        c = bench_connect(run.daemon_path);
        for (int tries = 0;; tries++) {
            redisReply *reply = bench_command(c, "GET bench-latency config probe");
            int ready = reply->type == REDIS_REPLY_STRING && index_of(reply->str, reply->len) < 0;
            freeReplyObject(reply);
            if (ready)
                break;
            if (tries > 5000)
                bench_die("the daemon never applied the reset message");
            bench_sleep_until(bench_now_ns() + 1000000);
        }
        redisFree(c);
    }
    pthread_t threads[2];
    run.start = bench_now_ns() + 50000000; /* both threads connected by then */
    if (pthread_create(&threads[0], NULL, poller, &run) != 0 ||
        pthread_create(&threads[1], NULL, publisher, &run) != 0)
        bench_die("pthread_create failed");
    pthread_join(threads[1], NULL);
    pthread_join(threads[0], NULL);
    qsort(run.latency, run.count, sizeof(*run.latency), compare_u64);
    printf("messages=%llu rate=%llu p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f "
           "late=%llu\n",
           run.count, run.rate, percentile(run.latency, run.count, 0.5),
           percentile(run.latency, run.count, 0.9), percentile(run.latency, run.count, 0.99),
           percentile(run.latency, run.count, 0.999), (double)run.latency[run.count - 1] / 1000.0,
           run.late);
    free((void *)run.sent);
    free(run.latency);
    return 0;
}
