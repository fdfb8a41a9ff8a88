/* load.c - loads seed-typical tenants into redis-server or into the daemon.
 *
 *   load redis  REDIS_SOCK FIRST COUNT
 *       SET cache:{tenant}:{kind}:{key} JSON for every entry of tenants
 *       FIRST..FIRST+COUNT-1, pipelined.
 *   load daemon REDIS_SOCK DAEMON_SOCK FIRST COUNT
 *       PUBLISHes one set message per entry on tenantcached:invalidate,
 *       pipelined, and waits until the daemon's INFO messages_applied has
 *       grown by the number of messages. Flow control: at most WINDOW_BYTES of
 *       messages are published ahead of what the daemon has applied, so that
 *       Redis's pub/sub output buffer for the daemon stays far below its
 *       default limits (32 MB hard, 8 MB for 60 s) however fast Redis is.
 *
 * Prints one line of figures: entries, payload bytes (key name + value, the
 * key name as in Redis), own payload bytes (the entry's own key + value, as
 * the daemon keeps them: the tenant and kind are stored once, not per key),
 * seconds, entries/s. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "seed.h"

#define BATCH 1000u
#define WINDOW_BYTES (4u << 20)
#define APPLY_TIMEOUT_NS (120ull * 1000000000u)

static void read_replies(redisContext *c, unsigned count, int want_receivers)
{
    for (unsigned i = 0; i < count; i++) {
        redisReply *reply;
        if (redisGetReply(c, (void **)&reply) != REDIS_OK)
            bench_die("reply: %s", c->errstr);
        if (reply->type == REDIS_REPLY_ERROR)
            bench_die("reply: %s", reply->str);
        if (want_receivers && (reply->type != REDIS_REPLY_INTEGER || reply->integer < 1))
            bench_die("PUBLISH reached no subscriber: is the daemon subscribed?");
        freeReplyObject(reply);
    }
}

/* The daemon's count of messages it will never apply (invalid, unknown
 * kind, filtered), from one INFO stats reply; *applied gets messages_applied. */
static long long unapplied(redisContext *daemon, long long *applied)
{
    static const char *const fields[] = {"messages_invalid", "messages_unknown_kind",
                                         "messages_filtered"};
    redisReply *reply = bench_command(daemon, "INFO stats");
    long long sum = 0;
    *applied = -1;
    for (size_t i = 0; i <= sizeof(fields) / sizeof(fields[0]); i++) {
        const char *name = i < 3 ? fields[i] : "messages_applied";
        const char *line = reply->type == REDIS_REPLY_STRING ? strstr(reply->str, name) : NULL;
        if (line == NULL)
            bench_die("INFO stats has no %s", name);
        long long value = atoll(line + strlen(name) + 1);
        if (i < 3)
            sum += value;
        else
            *applied = value;
    }
    freeReplyObject(reply);
    return sum;
}

/* messages_applied; exits if any message was refused since the start (a
 * generator bug would otherwise hang the load). */
static long long applied(redisContext *daemon, long long invalid_base)
{
    long long count;
    long long invalid = unapplied(daemon, &count);
    if (invalid != invalid_base)
        bench_die("the daemon rejected or filtered %lld of the messages", invalid - invalid_base);
    return count;
}

int main(int argc, char **argv)
{
    bench_program = "load";
    int daemon_mode = argc == 6 && strcmp(argv[1], "daemon") == 0;
    if (!daemon_mode && !(argc == 5 && strcmp(argv[1], "redis") == 0)) {
        fprintf(stderr, "usage: load redis REDIS_SOCK FIRST COUNT\n"
                        "       load daemon REDIS_SOCK DAEMON_SOCK FIRST COUNT\n");
        return 2;
    }
    redisContext *redis = bench_connect(argv[2]);
    redisContext *daemon = daemon_mode ? bench_connect(argv[3]) : NULL;
    unsigned first = (unsigned)bench_parse_u64(argv[daemon_mode ? 4 : 3], "FIRST");
    unsigned count = (unsigned)bench_parse_u64(argv[daemon_mode ? 5 : 4], "COUNT");

    long long base = 0, invalid_base = 0;
    if (daemon_mode) {
        invalid_base = unapplied(daemon, &base);
    }
    uint64_t start = bench_now_ns();
    unsigned long long entries = 0, payload = 0, own_payload = 0, published_bytes = 0;
    unsigned long long total = (unsigned long long)count * SEED_ENTRIES_PER_TENANT;
    unsigned pending = 0;
    struct seed_entry entry;
    char key[256], message[2048];
    for (unsigned long long n = 0; n < total; n++) {
        seed_entry(first + (unsigned)(n / SEED_ENTRIES_PER_TENANT),
                   (unsigned)(n % SEED_ENTRIES_PER_TENANT), &entry);
        size_t key_len = seed_redis_key(&entry, key, sizeof(key));
        payload += key_len + entry.value_len;
        own_payload += strlen(entry.key) + entry.value_len;
        if (daemon_mode) {
            size_t len = seed_set_message(&entry, message, sizeof(message));
            redisAppendCommand(redis, "PUBLISH %s %b", SEED_CHANNEL, message, len);
            published_bytes += len;
        } else {
            redisAppendCommand(redis, "SET %b %b", key, key_len, entry.value, entry.value_len);
        }
        entries++;
        if (++pending < BATCH && n + 1 < total)
            continue;
        read_replies(redis, pending, daemon_mode);
        pending = 0;
        if (!daemon_mode)
            continue;
        /* Flow control: the average message size turns the applied count
         * into bytes; wait while more than WINDOW_BYTES are unapplied. */
        double average = (double)published_bytes / (double)entries;
        for (;;) {
            long long done = applied(daemon, invalid_base) - base;
            if ((double)((long long)entries - done) * average <= WINDOW_BYTES)
                break;
            bench_sleep_until(bench_now_ns() + 200000);
        }
    }
    if (daemon_mode) {
        while (applied(daemon, invalid_base) - base < (long long)entries) {
            if (bench_now_ns() - start > APPLY_TIMEOUT_NS)
                bench_die("the daemon applied %lld of %llu messages",
                          applied(daemon, invalid_base) - base, entries);
            bench_sleep_until(bench_now_ns() + 200000);
        }
    }
    double seconds = (double)(bench_now_ns() - start) / 1e9;
    printf("entries=%llu payload_bytes=%llu own_payload_bytes=%llu seconds=%.3f rate=%.0f\n",
           entries, payload, own_payload, seconds, (double)entries / seconds);
    redisFree(redis);
    if (daemon != NULL)
        redisFree(daemon);
    return 0;
}
