/* flood.c - floods the invalidation channel with ~150-byte set messages.
 *
 *   flood REDIS_SOCK COUNT [DAEMON_SOCK|-] [RATE]
 *
 * Publishes COUNT messages (seed_flood_message; a run of more than a million
 * cycles through the first million) with pipelined PUBLISH on one
 * hiredis connection, in batches of 256, as fast as Redis accepts them, or
 * paced at RATE messages/s (1 ms ticks). With DAEMON_SOCK it then waits until
 * the daemon's INFO messages_applied has grown by COUNT, polling every
 * millisecond; the apply rate is COUNT over the time from the first PUBLISH
 * to that moment. Meanwhile it samples CLIENT LIST (every 16 batches, or
 * every 500 ms when paced) for the largest output buffer (omem) of any
 * pub/sub client, and notes whether the subscriber it saw first is still
 * connected at the end: Redis closes a subscriber whose buffer passes
 * `client-output-buffer-limit pubsub` (32 MB at once, or 8 MB for 60 s).
 *
 * Prints one line: published, publish_seconds, publish_rate, applied,
 * apply_seconds, apply_rate, peak_omem, subscriber_kept (1/0). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "seed.h"

#define BATCH 256u
#define MAX_DISTINCT 1000000ull
#define STALL_NS (5ull * 1000000000u)

struct subscribers {
    long long first_id;     /* the subscriber seen first; -1: none yet */
    int first_present;      /* seen in the last sample */
    long long peak_omem;
};

/* Samples CLIENT LIST: the pub/sub clients' largest omem, and whether the
 * first subscriber is still there. */
static void sample_clients(redisContext *c, struct subscribers *subs)
{
    redisReply *reply = bench_command(c, "CLIENT LIST");
    int present = 0;
    for (char *line = reply->str; line != NULL && *line != '\0';) {
        char *next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        const char *sub = strstr(line, " sub="), *psub = strstr(line, " psub=");
        const char *omem = strstr(line, " omem="), *id = strstr(line, "id=");
        if (sub != NULL && psub != NULL && omem != NULL && id == line &&
            (atoi(sub + 5) > 0 || atoi(psub + 6) > 0)) {
            long long client = atoll(id + 3), mem = atoll(omem + 6);
            if (subs->first_id < 0)
                subs->first_id = client;
            if (client == subs->first_id)
                present = 1;
            if (mem > subs->peak_omem)
                subs->peak_omem = mem;
        }
        line = next;
    }
    subs->first_present = present;
    freeReplyObject(reply);
}

static void read_replies(redisContext *c, unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        redisReply *reply;
        if (redisGetReply(c, (void **)&reply) != REDIS_OK)
            bench_die("PUBLISH: %s", c->errstr);
        if (reply->type == REDIS_REPLY_ERROR)
            bench_die("PUBLISH: %s", reply->str);
        freeReplyObject(reply);
    }
}

int main(int argc, char **argv)
{
    bench_program = "flood";
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: flood REDIS_SOCK COUNT [DAEMON_SOCK|-] [RATE]\n");
        return 2;
    }
    redisContext *redis = bench_connect(argv[1]);
    redisContext *monitor = bench_connect(argv[1]);
    unsigned long long count = bench_parse_u64(argv[2], "COUNT");
    redisContext *daemon = argc >= 4 && strcmp(argv[3], "-") != 0 ? bench_connect(argv[3]) : NULL;
    unsigned long long rate = argc == 5 ? bench_parse_u64(argv[4], "RATE") : 0;

    /* the messages are made before the clock starts; a long run cycles
     * through the first MAX_DISTINCT of them */
    unsigned long long distinct = count < MAX_DISTINCT ? count : MAX_DISTINCT;
    char *messages = malloc(distinct * 192);
    unsigned char *lengths = malloc(distinct);
    if (messages == NULL || lengths == NULL)
        bench_die("out of memory");
    for (unsigned long long i = 0; i < distinct; i++)
        lengths[i] = (unsigned char)seed_flood_message(i, messages + i * 192, 192);

    struct subscribers subs = {.first_id = -1};
    sample_clients(monitor, &subs);
    long long base = daemon != NULL ? bench_info(daemon, "stats", "messages_applied") : 0;
    uint64_t start = bench_now_ns(), next_sample = start;
    unsigned long long sent = 0, batches = 0;
    while (sent < count) {
        unsigned long long due = count;
        if (rate != 0) {
            /* 1 ms ticks: send what is due by now, then sleep to the next tick */
            uint64_t elapsed = bench_now_ns() - start;
            due = (unsigned long long)((double)elapsed * 1e-9 * (double)rate) + 1;
            if (due > count)
                due = count;
            if (due <= sent) {
                bench_sleep_until(start + (elapsed / 1000000 + 1) * 1000000);
                continue;
            }
        }
        unsigned n = 0;
        while (sent < due && n < BATCH) {
            redisAppendCommand(redis, "PUBLISH %s %b", SEED_CHANNEL,
                               messages + (sent % distinct) * 192, (size_t)lengths[sent % distinct]);
            sent++;
            n++;
        }
        read_replies(redis, n);
        batches++;
        if (rate != 0 ? bench_now_ns() >= next_sample : batches % 16 == 0) {
            sample_clients(monitor, &subs);
            next_sample = bench_now_ns() + 500000000u;
        }
    }
    uint64_t published = bench_now_ns();
    long long applied = 0;
    uint64_t done = published;
    if (daemon != NULL) {
        uint64_t last_progress = published;
        for (;;) {
            long long now_applied = bench_info(daemon, "stats", "messages_applied") - base;
            done = bench_now_ns();
            if (now_applied != applied)
                last_progress = done;
            applied = now_applied;
            if (applied >= (long long)count || done - last_progress > STALL_NS)
                break;
            if (done >= next_sample) {
                sample_clients(monitor, &subs);
                next_sample = done + 100000000u;
            }
            bench_sleep_until(done + 1000000);
        }
    }
    sample_clients(monitor, &subs);
    double publish_seconds = (double)(published - start) / 1e9;
    double apply_seconds = (double)(done - start) / 1e9;
    printf("published=%llu publish_seconds=%.3f publish_rate=%.0f applied=%lld apply_seconds=%.3f "
           "apply_rate=%.0f peak_omem=%lld subscriber_kept=%d\n",
           count, publish_seconds, (double)count / publish_seconds, applied, apply_seconds,
           daemon != NULL ? (double)applied / apply_seconds : 0.0, subs.peak_omem,
           subs.first_id >= 0 && subs.first_present);
    free(messages);
    free(lengths);
    redisFree(redis);
    redisFree(monitor);
    if (daemon != NULL)
        redisFree(daemon);
    return 0;
}
