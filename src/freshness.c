/* freshness.c - the state of the invalidation stream and the one rule that
 * says whether it is fresh (see freshness.h). main.c feeds it from the
 * subscriber's and the catch-up's callbacks and the heartbeat timer. */
#include "freshness.h"

#include <stdatomic.h>

static _Atomic bool subscribed;
static _Atomic uint64_t lost_since_ms;   /* 0 while subscribed and caught up */
static _Atomic uint64_t silent_since_ms; /* 0 unless a publisher is silent */

void freshness_start(uint64_t now_ms)
{
    atomic_store_explicit(&subscribed, false, memory_order_relaxed);
    atomic_store_explicit(&lost_since_ms, now_ms, memory_order_relaxed);
    atomic_store_explicit(&silent_since_ms, 0, memory_order_relaxed);
}

void freshness_current(void)
{
    atomic_store_explicit(&subscribed, true, memory_order_relaxed);
    atomic_store_explicit(&lost_since_ms, 0, memory_order_relaxed);
}

void freshness_lost(uint64_t now_ms)
{
    atomic_store_explicit(&subscribed, false, memory_order_relaxed);
    if (atomic_load_explicit(&lost_since_ms, memory_order_relaxed) == 0)
        atomic_store_explicit(&lost_since_ms, now_ms, memory_order_relaxed);
}

void freshness_set_silent(uint64_t since_ms)
{
    atomic_store_explicit(&silent_since_ms, since_ms, memory_order_relaxed);
}

uint64_t freshness_silent_since(void)
{
    return atomic_load_explicit(&silent_since_ms, memory_order_relaxed);
}

bool freshness_subscribed(void)
{
    return atomic_load_explicit(&subscribed, memory_order_relaxed);
}

uint64_t freshness_down_since(void)
{
    uint64_t since =
        freshness_subscribed() ? 0 : atomic_load_explicit(&lost_since_ms, memory_order_relaxed);
    uint64_t silent = freshness_silent_since();
    if (silent != 0 && (since == 0 || silent < since))
        since = silent;
    return since;
}

uint64_t freshness_down_ms(uint64_t now_ms)
{
    uint64_t since = freshness_down_since();
    return since != 0 && now_ms > since ? now_ms - since : 0;
}

bool freshness_stale(uint64_t now_ms, uint64_t max_stale_ms)
{
    return freshness_down_ms(now_ms) > max_stale_ms;
}
