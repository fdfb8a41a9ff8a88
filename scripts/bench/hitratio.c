/* hitratio.c - hit ratio of the reference tier on a Zipf trace, against an
 * exact LRU simulation of the same trace.
 *
 *   hitratio DAEMON_SOCK TENANTS KEYS_PER_TENANT REQUESTS WARMUP BUDGET_BYTES
 *
 * The universe is TENANTS x KEYS_PER_TENANT profiles (tenant "zipf-NNNNNN",
 * key "user-NNNNN"), every value the origin's 600-byte profile, so every
 * entry has the same size. The trace draws REQUESTS keys from Zipf(0.99)
 * over that universe (popularity ranks shuffled over the keys; fixed seed,
 * so every run replays the same trace) and sends them as `GET tenant profile
 * key` on one connection, pipelined 32 deep: the daemon reads no further
 * request from a connection while one is parked on a fill, so the daemon
 * sees the trace in order, exactly as the simulation does. Every reply must
 * be the 600-byte value; misses are filled from the origin.
 *
 * Counted after the first WARMUP requests (both sides start cold):
 *   daemon: 1 - fills from the origin / requests (INFO fills_l3, fill_errors);
 *   exact LRU over the same byte budget, each entry costing what the daemon
 *   accounts for one profile entry (TENANT's profile_bytes/profile_entries,
 *   read at the end), i.e. capacity = BUDGET_BYTES / that;
 *   exact LRU with entries costing only key name + value (no overhead);
 *   exact LRU holding as many entries as the daemon held at the end.
 * Prints one line of figures. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

#define PIPELINE 32u
#define VALUE_BYTES 600u

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static uint64_t next_random(void)
{
    uint64_t x = (rng_state += 0x9e3779b97f4a7c15ull);
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static double uniform(void)
{
    return (double)(next_random() >> 11) * 0x1.0p-53;
}

/* Exact LRU over `universe` keys holding at most `capacity` (uniform size);
 * returns the hits among trace[warmup..count-1]. */
static unsigned long long lru_hits(const uint32_t *trace, size_t count, size_t warmup,
                                   uint32_t universe, uint64_t capacity)
{
    uint32_t *prev = malloc(universe * sizeof(*prev)), *next = malloc(universe * sizeof(*next));
    unsigned char *resident = calloc(universe, 1);
    if (prev == NULL || next == NULL || resident == NULL)
        bench_die("out of memory");
    const uint32_t none = UINT32_MAX;
    uint32_t head = none, tail = none; /* head: most recent */
    uint64_t size = 0;
    unsigned long long hits = 0;
    for (size_t i = 0; i < count; i++) {
        uint32_t k = trace[i];
        if (resident[k]) {
            if (i >= warmup)
                hits++;
            if (head == k)
                continue;
            next[prev[k]] = next[k]; /* unlink (k is not the head) */
            if (next[k] != none)
                prev[next[k]] = prev[k];
            else
                tail = prev[k];
        } else {
            if (capacity == 0)
                continue;
            if (size == capacity) { /* evict the least recently used */
                uint32_t victim = tail;
                resident[victim] = 0;
                tail = prev[victim];
                if (tail != none)
                    next[tail] = none;
                else
                    head = none;
                size--;
            }
            resident[k] = 1;
            size++;
        }
        prev[k] = none; /* push front */
        next[k] = head;
        if (head != none)
            prev[head] = k;
        head = k;
        if (tail == none)
            tail = k;
    }
    free(prev);
    free(next);
    free(resident);
    return hits;
}

static long long tenant_field(redisContext *c, const char *tenant, const char *field)
{
    redisReply *reply = bench_command(c, "TENANT %s", tenant);
    long long value = -1;
    size_t len = strlen(field);
    for (const char *line = reply->str; line != NULL && *line;) {
        if (strncmp(line, field, len) == 0 && line[len] == ':') {
            value = atoll(line + len + 1);
            break;
        }
        line = strchr(line, '\n');
        line = line != NULL ? line + 1 : NULL;
    }
    freeReplyObject(reply);
    return value;
}

int main(int argc, char **argv)
{
    bench_program = "hitratio";
    if (argc != 7) {
        fprintf(stderr, "usage: hitratio DAEMON_SOCK TENANTS KEYS_PER_TENANT REQUESTS WARMUP "
                        "BUDGET_BYTES\n");
        return 2;
    }
    redisContext *daemon = bench_connect(argv[1]);
    uint32_t tenants = (uint32_t)bench_parse_u64(argv[2], "TENANTS");
    uint32_t per_tenant = (uint32_t)bench_parse_u64(argv[3], "KEYS_PER_TENANT");
    size_t requests = (size_t)bench_parse_u64(argv[4], "REQUESTS");
    size_t warmup = (size_t)bench_parse_u64(argv[5], "WARMUP");
    uint64_t budget = bench_parse_u64(argv[6], "BUDGET_BYTES");
    uint32_t universe = tenants * per_tenant;
    if (universe == 0 || warmup >= requests)
        bench_die("empty universe, or WARMUP >= REQUESTS");

    /* Zipf(0.99): cumulative weights of the ranks, ranks shuffled over keys */
    double *cdf = malloc(universe * sizeof(*cdf));
    uint32_t *key_of_rank = malloc(universe * sizeof(*key_of_rank));
    uint32_t *trace = malloc(requests * sizeof(*trace));
    if (cdf == NULL || key_of_rank == NULL || trace == NULL)
        bench_die("out of memory");
    double total = 0;
    for (uint32_t r = 0; r < universe; r++) {
        total += 1.0 / pow((double)r + 1.0, 0.99);
        cdf[r] = total;
        key_of_rank[r] = r;
    }
    for (uint32_t r = universe - 1; r > 0; r--) {
        uint32_t j = (uint32_t)(next_random() % (r + 1));
        uint32_t t = key_of_rank[r];
        key_of_rank[r] = key_of_rank[j];
        key_of_rank[j] = t;
    }
    for (size_t i = 0; i < requests; i++) {
        double u = uniform() * total;
        uint32_t lo = 0, hi = universe - 1;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (cdf[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        trace[i] = key_of_rank[lo];
    }

    long long fills_before = 0, errors_before = 0;
    unsigned long long bad = 0;
    uint64_t start = bench_now_ns();
    size_t sent = 0, received = 0;
    while (received < requests) {
        while (sent < requests && sent - received < PIPELINE) {
            uint32_t k = trace[sent++];
            redisAppendCommand(daemon, "GET zipf-%06u profile user-%05u", k / per_tenant,
                               k % per_tenant);
        }
        redisReply *reply;
        if (redisGetReply(daemon, (void **)&reply) != REDIS_OK)
            bench_die("GET: %s", daemon->errstr);
        if (reply->type != REDIS_REPLY_STRING || reply->len != VALUE_BYTES)
            bad++;
        freeReplyObject(reply);
        if (++received == warmup) {
            /* the pipeline is drained to take the snapshot exactly here */
            while (sent > received) {
                if (redisGetReply(daemon, (void **)&reply) != REDIS_OK)
                    bench_die("GET: %s", daemon->errstr);
                freeReplyObject(reply);
                received++;
            }
            fills_before = bench_info(daemon, "stats", "fills_l3");
            errors_before = bench_info(daemon, "stats", "fill_errors");
        }
    }
    double seconds = (double)(bench_now_ns() - start) / 1e9;
    long long fills = bench_info(daemon, "stats", "fills_l3") - fills_before;
    long long errors = bench_info(daemon, "stats", "fill_errors") - errors_before;
    long long resident = bench_info(daemon, "memory", "entries");
    long long used = bench_info(daemon, "memory", "used_memory");
    /* what the daemon accounts per profile entry: from the most popular key's tenant */
    char tenant[32];
    snprintf(tenant, sizeof(tenant), "zipf-%06u", key_of_rank[0] / per_tenant);
    long long kind_bytes = tenant_field(daemon, tenant, "profile_bytes");
    long long kind_entries = tenant_field(daemon, tenant, "profile_entries");
    if (kind_entries <= 0)
        bench_die("TENANT %s has no profile entries", tenant);
    double entry_cost = (double)kind_bytes / (double)kind_entries;
    /* key name as Redis would store it: cache:zipf-NNNNNN:profile:user-NNNNN */
    double payload = (double)strlen("cache:zipf-000000:profile:user-00000") + VALUE_BYTES;

    size_t measured = requests - warmup;
    double daemon_ratio = 1.0 - (double)(fills + errors) / (double)measured;
    uint64_t capacity_same = (uint64_t)((double)budget / entry_cost);
    uint64_t capacity_payload = (uint64_t)((double)budget / payload);
    double lru_same = (double)lru_hits(trace, requests, warmup, universe, capacity_same) /
                      (double)measured;
    double lru_payload = (double)lru_hits(trace, requests, warmup, universe, capacity_payload) /
                         (double)measured;
    double lru_resident = (double)lru_hits(trace, requests, warmup, universe,
                                           resident > 0 ? (uint64_t)resident : 0) /
                          (double)measured;
    printf("requests=%zu measured=%zu seconds=%.2f daemon_hit_ratio=%.4f fills=%lld "
           "fill_errors=%lld bad_replies=%llu entry_cost=%.1f lru_capacity=%llu "
           "lru_hit_ratio=%.4f lru_payload_capacity=%llu lru_payload_hit_ratio=%.4f "
           "daemon_entries=%lld daemon_used_memory=%lld lru_at_daemon_entries=%.4f\n",
           requests, measured, seconds, daemon_ratio, fills, errors, bad, entry_cost,
           (unsigned long long)capacity_same, lru_same, (unsigned long long)capacity_payload,
           lru_payload, resident, used, lru_resident);
    free(cdf);
    free(key_of_rank);
    free(trace);
    redisFree(daemon);
    return 0;
}
