#!/bin/bash
# soak.sh DURATION - runs ./tenantcached (or $TENANTCACHED_BIN) for DURATION
# seconds (at least 30) against a private redis-server, under a steady stream
# of invalidations, many query clients and a Redis restart every 15 s, and
# fails if the daemon gives a wrong answer, errs, dies, does not stop cleanly,
# or grows after warm-up. Builds nothing but its own client: `make` first.
#
# What runs, in a temporary directory (removed at exit, whatever happens):
#   - redis-server on a Unix socket (no TCP, no persistence);
#   - the daemon, config below (max_stale 1s, so that an outage shows -STALE);
#   - scripts/soak_client.c, compiled here with cc against hiredis: a publisher
#     thread sending SOAK_RATE messages a second (default 2000): versioned set
#     and del messages over SOAK_KEYS entries (default 5000: 4 tenants, kinds
#     `config` (critical) and `profile` (reference)), with src/seq, a batch
#     every 97 messages, a duplicate every 101, a malformed one every 499; and
#     SOAK_CLIENTS query threads (default 16), each with its own connection,
#     sending pipelines of 16 GET, GET-by-name and MGET requests;
#   - every 15 s (not in the last 5 s), redis-server is killed with SIGKILL and
#     restarted on the same socket, every other time after 2 s down.
#
# A wrong answer. Versions of an entry i count 1, 2, 3, ... as published; a
# version is a set of a value that names i and v (or a del). A reply for entry
# i, sent at time S and completed at time E, is right if it is nil, or -STALE
# (counted apart), or exactly the value of a set (i, v) with
#     floor(i, S) <= v <= newest version of i sent by E,
# where floor(i, S) is the larger of
#     - the newest version of i in any reply completed before S (no reply may
#       go back in time), and
#     - the newest version of i whose PUBLISH reached a subscriber at least
#       GRACE (2 s) before S, unless the publisher saw Redis go down after that
#       PUBLISH and before it was GRACE old (a message in flight then may be
#       lost; the daemon drops every entry on resubscribing, and nil is right).
# A publish that reached no subscriber (the daemon was reconnecting) sets no
# floor: the daemon had no way to see it, and flushes when it resubscribes.
# Any other reply is wrong: another entry's value, a deleted version, an older
# version than the floor, a version not yet published. Errors other than
# -STALE (and lost connections to the daemon) are counted as errors. At the
# end the publisher stops, and after GRACE every entry is read once more: it
# must be nil or the newest version whose publish was acknowledged.
#
# RSS. The daemon's VmRSS is sampled every second. Warm-up is a third of the
# run, at least 20 s and at most 120 s. Baseline: the largest sample of the
# last 10 s of warm-up. The run fails if a later sample exceeds the baseline by
# more than the slack: 10% of the baseline or 8 MB, whichever is larger.
#
# Every 10 s it prints: RSS, replies a second, errors, wrong answers, -STALE
# replies, messages published, and the daemon's INFO: redis_connected,
# redis_disconnected_seconds, stale_refused, stale_served, seq_gaps, entries.
#
# Exit status: 0 pass; 1 a check failed; 2 cannot run (missing tools, bad
# argument, the daemon or Redis did not start).
set -euo pipefail

usage() {
    echo "usage: $0 DURATION   (seconds, at least 30)" >&2
    exit 2
}
[ $# -eq 1 ] || usage
case "$1" in '' | *[!0-9]*) usage ;; esac
duration=$((10#$1))
[ "$duration" -ge 30 ] || usage

cd "$(dirname "$0")/.."
bin=${TENANTCACHED_BIN:-./tenantcached}
keys=${SOAK_KEYS:-5000}
rate=${SOAK_RATE:-2000}
clients=${SOAK_CLIENTS:-16}
grace_ms=2000
restart_every=15
slack_pct=10
slack_min_kb=$((8 * 1024))
warmup=$((duration / 3))
[ "$warmup" -lt 20 ] && warmup=20
[ "$warmup" -gt 120 ] && warmup=120

[ -x "$bin" ] || { echo "soak: $bin is not there: run make first" >&2; exit 2; }
for tool in redis-server redis-cli cc pkg-config; do
    command -v "$tool" >/dev/null 2>&1 || { echo "soak: $tool is missing" >&2; exit 2; }
done
pkg-config --exists hiredis || { echo "soak: hiredis (libhiredis-dev) is missing" >&2; exit 2; }

tmp=$(mktemp -d /tmp/tenantcached-soak.XXXXXX)
redis_pid=""
daemon_pid=""
client_pid=""

# Stops what is still running (TERM, then KILL after 5 s) and removes $tmp.
stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -TERM "$pid" 2>/dev/null || return 0
    kill -CONT "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    stop_pid "$client_pid"
    stop_pid "$daemon_pid"
    stop_pid "$redis_pid"
    rm -rf "$tmp"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

fail() {
    echo "soak: FAIL: $*" >&2
    if [ -s "$tmp/client.err" ]; then
        echo "---- client findings ----" >&2
        head -n 40 "$tmp/client.err" >&2
    fi
    if [ -s "$tmp/daemon.log" ]; then
        echo "---- daemon log (last 40 lines) ----" >&2
        tail -n 40 "$tmp/daemon.log" >&2
    fi
    exit 1
}

redis_socket="$tmp/redis.sock"
daemon_socket="$tmp/tenantcached.sock"

# shellcheck disable=SC2046 # pkg-config's flags are words
cc -std=c11 -O2 -Wall -Wextra -Werror -Wshadow -Wconversion -Wformat=2 \
    -Wmissing-prototypes -Wstrict-prototypes -Wwrite-strings -Wno-sign-conversion -pthread \
    -o "$tmp/soak_client" scripts/soak_client.c $(pkg-config --cflags --libs hiredis) ||
    { echo "soak: cannot build scripts/soak_client.c" >&2; exit 2; }

# Waits up to 10 s until the socket answers PING.
wait_pong() {
    local socket=$1 i
    for ((i = 0; i < 100; i++)); do
        [ "$(redis-cli -s "$socket" PING 2>/dev/null)" = PONG ] && return 0
        sleep 0.1
    done
    return 1
}

start_redis() {
    redis-server --port 0 --unixsocket "$redis_socket" --unixsocketperm 700 --save "" \
        --appendonly no --dir "$tmp" --logfile "$tmp/redis.log" &
    redis_pid=$!
    wait_pong "$redis_socket" || { echo "soak: redis-server did not start" >&2; exit 2; }
}

restart_redis() { # $1: seconds down
    kill -KILL "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
    redis_pid=""
    sleep "$1"
    start_redis
}

cat >"$tmp/tenantcached.yaml" <<EOF
log_level: notice
threads: 2
shards: 16
listen:
  socket: "$daemon_socket"
  mode: "0600"
redis:
  unix: "$redis_socket"
  channels: [tenantcached:invalidate]
  connect_timeout: 500ms
  reconnect_min: 50ms
  reconnect_max: 500ms
  max_stale: 1s
memory:
  max_bytes: 64mb
  tenant_max_bytes: 16mb
EOF

start_redis
"$bin" -c "$tmp/tenantcached.yaml" >>"$tmp/daemon.log" 2>&1 &
daemon_pid=$!
wait_pong "$daemon_socket" || { tail -n 20 "$tmp/daemon.log" >&2; echo "soak: the daemon did not start" >&2; exit 2; }

"$tmp/soak_client" -r "$redis_socket" -d "$daemon_socket" -o "$tmp/stats" -t "$duration" \
    -k "$keys" -m "$rate" -c "$clients" -g "$grace_ms" >"$tmp/client.out" 2>"$tmp/client.err" &
client_pid=$!

rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$daemon_pid/status" 2>/dev/null || echo 0
}
info() { # the INFO fields given, as name=value
    local text field
    text=$(redis-cli -s "$daemon_socket" INFO 2>/dev/null | tr -d '\r') || true
    for field in "$@"; do
        printf '%s=%s ' "$field" "$(printf '%s\n' "$text" | sed -n "s/^$field://p")"
    done
}
mb() { awk -v kb="$1" 'BEGIN { printf "%.1f MB", kb / 1024 }'; }

echo "soak: $duration s, $keys entries, $rate messages/s, $clients clients, Redis restart every ${restart_every} s; warm-up ${warmup} s"
baseline_kb=0
peak_kb=0
restarts=0
last_replies=0
last_published=0
last_report=0
start=$SECONDS
while :; do
    elapsed=$((SECONDS - start))
    [ "$elapsed" -ge "$duration" ] && break
    kill -0 "$daemon_pid" 2>/dev/null || fail "the daemon died at ${elapsed} s"
    kill -0 "$client_pid" 2>/dev/null || fail "the soak client stopped at ${elapsed} s"
    kb=$(rss_kb)
    if [ "$elapsed" -le "$warmup" ]; then
        if [ "$elapsed" -gt $((warmup - 10)) ] && [ "$kb" -gt "$baseline_kb" ]; then
            baseline_kb=$kb
        fi
    elif [ "$kb" -gt "$peak_kb" ]; then
        peak_kb=$kb
    fi
    if [ "$elapsed" -ge $((last_report + 10)) ] && [ -s "$tmp/stats" ]; then
        read -r replies errors stale wrong _ published _ _ <"$tmp/stats"
        span=$((elapsed - last_report))
        printf '[%4ds] rss %s | %d replies/s | errors %d | wrong %d | -STALE %d | %d msgs/s | %s\n' \
            "$elapsed" "$(mb "$kb")" $(((replies - last_replies) / span)) "$errors" "$wrong" \
            "$stale" $(((published - last_published) / span)) \
            "$(info redis_connected redis_disconnected_seconds stale_refused stale_served seq_gaps entries)"
        last_replies=$replies
        last_published=$published
        last_report=$elapsed
    fi
    if [ "$elapsed" -gt 0 ] && [ $((elapsed % restart_every)) -eq 0 ] &&
        [ "$elapsed" -le $((duration - 5)) ] && [ "$elapsed" -gt $((restarts * restart_every)) ]; then
        restarts=$((restarts + 1))
        down=0.1
        [ $((restarts % 2)) -eq 0 ] && down=2
        echo "[${elapsed}s] restarting redis-server (SIGKILL, ${down} s down)"
        restart_redis "$down"
        continue
    fi
    sleep 1
done

# The client stops publishing, waits GRACE, sweeps every entry and exits.
client_status=0
wait "$client_pid" || client_status=$?
client_pid=""
cat "$tmp/client.out"
[ -s "$tmp/stats" ] || fail "the soak client wrote no counters (exit $client_status)"
read -r replies errors stale wrong _ published _ _ <"$tmp/stats"

kill -0 "$daemon_pid" 2>/dev/null || fail "the daemon died"
daemon_status=0
kill -TERM "$daemon_pid"
wait "$daemon_pid" || daemon_status=$?
daemon_pid=""

slack_kb=$((baseline_kb * slack_pct / 100))
[ "$slack_kb" -lt "$slack_min_kb" ] && slack_kb=$slack_min_kb
echo "soak: RSS baseline $(mb "$baseline_kb") (end of warm-up), peak after warm-up $(mb "$peak_kb"), slack $(mb "$slack_kb")"

[ "$client_status" -eq 0 ] || fail "$wrong wrong answers, $errors errors (client exit $client_status)"
[ "$daemon_status" -eq 0 ] || fail "the daemon exited with $daemon_status on SIGTERM"
if [ "$baseline_kb" -eq 0 ] || [ "$peak_kb" -eq 0 ]; then fail "no RSS samples"; fi
[ "$peak_kb" -le $((baseline_kb + slack_kb)) ] ||
    fail "RSS grew from $(mb "$baseline_kb") to $(mb "$peak_kb") after warm-up (slack $(mb "$slack_kb"))"
echo "soak: PASS: $duration s, $replies replies, $wrong wrong, $errors errors, $stale -STALE, $published messages, $restarts Redis restarts"
