/* jparse.c - jansson's own parse rate of the flood messages.
 *
 *   jparse COUNT
 *
 * Makes the same COUNT messages flood.c publishes, then times json_loadb()
 * (with JSON_REJECT_DUPLICATES, as the daemon parses them) and json_decref()
 * of each, on one core. Prints the rate and the CPU time per message: the
 * floor that the daemon's apply path is compared with. */
#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "common.h"
#include "seed.h"

int main(int argc, char **argv)
{
    bench_program = "jparse";
    if (argc != 2) {
        fprintf(stderr, "usage: jparse COUNT\n");
        return 2;
    }
    unsigned long long count = bench_parse_u64(argv[1], "COUNT");
    char *messages = malloc(count * 192);
    size_t *lengths = malloc(count * sizeof(*lengths));
    if (messages == NULL || lengths == NULL)
        bench_die("out of memory");
    for (unsigned long long i = 0; i < count; i++)
        lengths[i] = seed_flood_message(i, messages + i * 192, 192);
    uint64_t cpu = bench_cpu_ns(), wall = bench_now_ns();
    for (unsigned long long i = 0; i < count; i++) {
        json_error_t error;
        json_t *root = json_loadb(messages + i * 192, lengths[i], JSON_REJECT_DUPLICATES, &error);
        if (root == NULL)
            bench_die("message %llu: %s", i, error.text);
        json_decref(root);
    }
    double cpu_s = (double)(bench_cpu_ns() - cpu) / 1e9;
    double wall_s = (double)(bench_now_ns() - wall) / 1e9;
    printf("parsed=%llu cpu_seconds=%.3f rate=%.0f cpu_us_per_message=%.3f wall_seconds=%.3f\n",
           count, cpu_s, (double)count / cpu_s, cpu_s * 1e6 / (double)count, wall_s);
    free(messages);
    free(lengths);
    return 0;
}
