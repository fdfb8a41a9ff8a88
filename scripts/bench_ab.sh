#!/usr/bin/env bash
# bench_ab.sh - two or more daemon binaries compared on one figure: the
# daemon's own CPU per pipelined GET, which the side-by-side rows of
# bench.sh cannot resolve below about 5% (they divide by redis-server's
# figure, which moves as much as the daemon's).
#
#   scripts/bench_ab.sh BINARY BINARY...
#
# For each of BENCH_RUNS (4) rounds, each binary in turn is started
# (threads: 2), loaded with 100 seed-typical tenants, warmed up, then sent
# BENCH_AB_REQUESTS (5,000,000) GETs of one entry by redis-benchmark
# (50 connections, -P 16); the line printed is its utime+stime from
# /proc/PID/stat over them, per request. Alternating the binaries spreads
# the machine's own drift over all of them. Asserts nothing. Build an older
# commit with `git worktree add /tmp/old COMMIT && make -C /tmp/old`.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
[ $# -ge 2 ] || { echo "usage: $0 BINARY BINARY..." >&2; exit 2; }
runs=${BENCH_RUNS:-4}
requests=${BENCH_AB_REQUESTS:-5000000}
[ -x "$root/build/bench/load" ] || { echo "bench_ab: build/bench/load is missing: run make bench once" >&2; exit 1; }

tmp=$(mktemp -d /tmp/tcbench_ab.XXXXXX)
redis_pid=""
daemon_pid=""
cleanup() {
    [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null && wait "$daemon_pid" 2>/dev/null
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

redis-server --port 0 --unixsocket "$tmp/redis.sock" --unixsocketperm 700 --save '' \
    --appendonly no --dir "$tmp" --logfile "$tmp/redis.log" &
redis_pid=$!
cat > "$tmp/tc.yaml" <<EOF
log_level: notice
threads: 2
listen:
  socket: $tmp/tc.sock
redis:
  unix: "$tmp/redis.sock"
memory:
  max_bytes: 2gb
  tenant_max_bytes: 128kb
EOF

wait_pong() { # SOCKET
    for _ in $(seq 100); do
        [ "$(redis-cli -s "$1" PING 2>/dev/null)" = PONG ] && return 0
        sleep 0.05
    done
    echo "bench_ab: nothing answers on $1" >&2
    exit 1
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
get() { # REQUESTS
    redis-benchmark -s "$tmp/tc.sock" -c 50 -n "$1" -P 16 GET tenant-000042 config cfg-feature-03 \
        >/dev/null 2>&1
}

wait_pong "$tmp/redis.sock"
hz=$(getconf CLK_TCK)
for round in $(seq "$runs"); do
    for bin in "$@"; do
        "$bin" -c "$tmp/tc.yaml" 2>>"$tmp/tc.log" &
        daemon_pid=$!
        wait_pong "$tmp/tc.sock"
        "$root/build/bench/load" daemon "$tmp/redis.sock" "$tmp/tc.sock" 0 100 >/dev/null
        get 300000
        before=$(cpu_ticks "$daemon_pid")
        get "$requests"
        after=$(cpu_ticks "$daemon_pid")
        awk -v r="$round" -v b="$bin" -v t=$((after - before)) -v hz="$hz" -v n="$requests" \
            'BEGIN { printf "round %d  %s  %.3f us/GET\n", r, b, t * 1e6 / hz / n }'
        kill "$daemon_pid"
        wait "$daemon_pid" 2>/dev/null || true
        daemon_pid=""
    done
done
