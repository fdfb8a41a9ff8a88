#!/usr/bin/env bash
# bench_threads.sh - the query thread count, measured on a host the daemon
# shares with its clients (run by `make bench` after bench.sh, or alone).
# For `threads: 1` and `threads: 2`, the daemon is loaded with
# BENCH_THREADS_TENANTS (100) seed-typical tenants and redis-benchmark, on
# the same cores, sends GET and CAN with 50 connections, unpipelined and
# with -P 16; each row is the median of BENCH_RUNS (3) runs of
# BENCH_THREADS_REQUESTS (200000) requests. redis-server, with the same keys,
# is measured alongside as the peer. Prints one Markdown table; asserts
# nothing. Starts its own redis-server and daemons on sockets in a temporary
# directory and stops them on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
daemon_bin=${TENANTCACHED_BIN:-$root/tenantcached}
tenants=${BENCH_THREADS_TENANTS:-100}
requests=${BENCH_THREADS_REQUESTS:-200000}
runs=${BENCH_RUNS:-3}
channel=tenantcached:invalidate
tools=$root/build/bench
clients=50

# shellcheck source=scripts/bench/lib.sh
. scripts/bench/lib.sh
bench_tool load
bench_temporary threads
pong() { [ "$(redis-cli -s "$1" PING 2>/dev/null)" = PONG ]; }
subscribed() { [ "$(redis-cli -s "$tmp/redis.sock" PUBSUB NUMSUB $channel | tail -1)" -ge 1 ]; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
# measure SOCKET PIPELINE COMMAND...: prints "rps p99_ms", each the median of the runs
measure() {
    local socket=$1 pipeline=$2 run line rps p99; shift 2
    : >"$tmp/rps"; : >"$tmp/p99"
    for ((run = 1; run <= runs; run++)); do
        line=$(redis-benchmark -s "$socket" -c $clients -n "$requests" -P "$pipeline" --csv "$@" \
            2>/dev/null | tail -n 1 | tr -d '"')
        IFS=, read -r _ rps _ _ _ _ p99 _ <<< "$line"
        echo "$rps" >>"$tmp/rps"; echo "$p99" >>"$tmp/p99"
    done
    echo "$(median <"$tmp/rps") $(median <"$tmp/p99")"
}

redis-server --port 0 --unixsocket "$tmp/redis.sock" --save "" --appendonly no \
    --logfile "$tmp/redis.log" &
pids+=($!)
wait_until 500 pong "$tmp/redis.sock"
"$tools/load" redis "$tmp/redis.sock" 0 "$tenants" >/dev/null

tenant=tenant-000001
get_daemon=(GET "$tenant" config cfg-feature-03)
can_daemon=(CAN "$tenant" user-00007 crm.leads.create)
get_redis=(GET "cache:$tenant:config:cfg-feature-03")

declare -A figure
for threads in 1 2; do
    echo "bench_threads: threads: $threads..." >&2
    cat >"$tmp/tc$threads.yaml" <<EOT
threads: $threads
listen:
  socket: "$tmp/tc$threads.sock"
redis:
  unix: "$tmp/redis.sock"
  channels: [$channel]
EOT
    "$daemon_bin" -c "$tmp/tc$threads.yaml" >>"$tmp/tc$threads.log" 2>&1 &
    pid=$!
    pids+=("$pid")
    wait_until 1000 pong "$tmp/tc$threads.sock"
    wait_until 1000 subscribed
    "$tools/load" daemon "$tmp/redis.sock" "$tmp/tc$threads.sock" 0 "$tenants" >/dev/null
    for pipeline in 1 16; do
        figure[get.$threads.$pipeline]=$(measure "$tmp/tc$threads.sock" $pipeline "${get_daemon[@]}")
        figure[can.$threads.$pipeline]=$(measure "$tmp/tc$threads.sock" $pipeline "${can_daemon[@]}")
    done
    kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
done
for pipeline in 1 16; do
    figure[redis.$pipeline]=$(measure "$tmp/redis.sock" $pipeline "${get_redis[@]}")
done

echo "### Query threads on a host shared with the clients ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "redis-benchmark on the same cores, $clients connections, $requests requests, median of $runs runs. Requests/s and p99 latency (ms)."
echo
echo "| command | pipeline | threads: 1 | threads: 2 | redis-server GET (one thread) |"
echo "|---|---|---|---|---|"
for command in get can; do
    for pipeline in 1 16; do
        read -r r1 p1 <<< "${figure[$command.1.$pipeline]}"
        read -r r2 p2 <<< "${figure[$command.2.$pipeline]}"
        read -r rr pr <<< "${figure[redis.$pipeline]}"
        echo "| ${command^^} | -P $pipeline | $r1/s, p99 $p1 ms | $r2/s, p99 $p2 ms | $rr/s, p99 $pr ms |"
    done
done
