#!/usr/bin/env bash
# bench_csc.sh - client-side caching, measured (run by `make bench` after
# bench.sh, or alone): one Node.js process (node-redis from
# tests/clients/node) doing GET name in a loop for BENCH_CSC_SECONDS (3) -
# against the daemon with the library's cache on (CLIENT TRACKING), off, and
# against redis-server over its Unix socket - giving reads per second, the
# client's CPU per read and the server's; then, cache on, the time from a
# PUBLISH on Redis to the application's GET returning the new value
# (BENCH_CSC_UPDATES samples, 200), p50 and p99. Starts its own redis-server
# and daemon on sockets in a temporary directory and stops them on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
daemon_bin=${TENANTCACHED_BIN:-$root/tenantcached}
seconds=${BENCH_CSC_SECONDS:-3}
updates=${BENCH_CSC_UPDATES:-200}
channel=tenantcached:invalidate
name=cache:acme:credit:bench
clk_tck=$(getconf CLK_TCK)
export NODE_PATH=$root/tests/clients/node/node_modules
[ -d "$NODE_PATH/redis" ] || (cd tests/clients/node && npm ci --no-audit --no-fund --loglevel=error)

# shellcheck source=scripts/bench/lib.sh
. scripts/bench/lib.sh
bench_temporary csc

redis-server --port 0 --unixsocket "$tmp/redis.sock" --save "" --appendonly no \
    --logfile "$tmp/redis.log" &
pids+=($!); redis_pid=$!
cat >"$tmp/tc.yaml" <<EOT
threads: 2
listen:
  socket: "$tmp/tc.sock"
redis:
  unix: "$tmp/redis.sock"
  channels: [$channel]
EOT
for _ in $(seq 100); do [ -S "$tmp/redis.sock" ] && break; sleep 0.05; done
"$daemon_bin" -c "$tmp/tc.yaml" >"$tmp/tc.log" 2>&1 &
pids+=($!); daemon_pid=$!
for _ in $(seq 100); do
    [ "$(redis-cli -s "$tmp/redis.sock" PUBSUB NUMSUB $channel | tail -1)" = 1 ] && break
    sleep 0.05
done
redis-cli -s "$tmp/redis.sock" PUBLISH $channel \
    '{"op":"set","tenant":"acme","kind":"credit","key":"bench","value":3.5}' >/dev/null
redis-cli -s "$tmp/redis.sock" SET $name 3.5 >/dev/null
for _ in $(seq 100); do [ "$(redis-cli -s "$tmp/tc.sock" GET $name)" = 3.5 ] && break; sleep 0.05; done

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# run LABEL SOCKET SERVER_PID on|off
run() {
    local before after line
    before=$(ticks "$3")
    line=$(node scripts/bench/csc.js reads "$2" $name "$seconds" "$4")
    after=$(ticks "$3")
    local reads=${line#reads=}; reads=${reads%% *}
    local server_us
    server_us=$(awk -v t=$((after - before)) -v r="$reads" -v hz="$clk_tck" \
        'BEGIN { printf "%.3f", t * 1e6 / hz / r }')
    local rate=${line#*rate=}; rate=${rate%% *}
    local client_us=${line#*client_cpu_us_per_read=}; client_us=${client_us%% *}
    echo "| $1 | $rate | $client_us | $server_us |"
}
echo "### Client-side caching (one Node.js process, node-redis $(node -p "require('redis/package.json').version"), GET name in a loop, ${seconds} s each)"
echo
echo "| setup | reads/s | client CPU µs/read | server CPU µs/read |"
echo "|---|---|---|---|"
run "daemon, library cache on" "$tmp/tc.sock" "$daemon_pid" on
run "daemon, library cache off" "$tmp/tc.sock" "$daemon_pid" off
run "redis-server, Unix socket" "$tmp/redis.sock" "$redis_pid" off
echo
line=$(node scripts/bench/csc.js latency "$tmp/tc.sock" $name "$updates" "$tmp/redis.sock" \
    $channel acme credit bench)
echo "Publish on Redis to the application's GET returning the new value (cache on): $line"
echo
echo "Commands: node scripts/bench/csc.js reads SOCKET $name $seconds on|off;" \
     "node scripts/bench/csc.js latency SOCKET $name $updates REDIS_SOCKET $channel acme credit bench"
