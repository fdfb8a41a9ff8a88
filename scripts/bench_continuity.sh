#!/usr/bin/env bash
# bench_continuity.sh - continuity across restarts, measured (run by `make
# bench` after bench.sh, or alone): (1) warm restart: 1,000 seed-typical
# tenants loaded through Redis pub/sub (build/bench/load), SIGTERM writes the
# snapshot, then the time from starting the daemon again to its socket
# answering PING with INFO snapshot_loaded_entries > 0, and the snapshot's
# size against the daemon's RSS; (2) catch-up rate from `redis.stream`: the
# daemon's subscription killed and BENCH_CONTINUITY_MESSAGES (600000) messages
# published with FCALL tenantcached_publish in the same MULTI (so none arrive
# live), then the time until INFO catchup_applied reaches that count; (3) the
# origin requests a Redis restart causes: for each of three setups (no
# stream; the stream, Redis with AOF; the stream, Redis without persistence)
# a daemon with an L3 origin (build/bench/origin, which counts requests) is
# loaded with the same tenants, Redis is killed with SIGKILL and restarted,
# and once the daemon has resubscribed every profile of every tenant is read
# once (GET); the origin's count before and after is the figure. Starts its
# own redis-server and daemons on sockets in a temporary directory and stops
# them on exit. A benchmark: it prints figures, it asserts none.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
daemon_bin=${TENANTCACHED_BIN:-$root/tenantcached}
tenants=${BENCH_CONTINUITY_TENANTS:-1000}
messages=${BENCH_CONTINUITY_MESSAGES:-600000}
channel=tenantcached:invalidate
stream=tenantcached:log
tools=$root/build/bench

# shellcheck source=scripts/bench/lib.sh
. scripts/bench/lib.sh
bench_tool load
bench_tool origin
bench_temporary continuity

now_ms() { echo $(($(date +%s%N) / 1000000)); }
rss_bytes() { awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"; }
subscribed() { [ "$(redis-cli -s "$tmp/redis.sock" PUBSUB NUMSUB $channel | tail -1)" -ge 1 ]; }

redis-server --port 0 --unixsocket "$tmp/redis.sock" --save "" --appendonly no \
    --logfile "$tmp/redis.log" &
pids+=($!)
wait_until 500 redis-cli -s "$tmp/redis.sock" PING
redis-cli -s "$tmp/redis.sock" FUNCTION LOAD REPLACE "$(cat scripts/tenantcached.lua)" >/dev/null

cat >"$tmp/tc.yaml" <<EOT
threads: 2
listen:
  socket: "$tmp/tc.sock"
redis:
  unix: "$tmp/redis.sock"
  channels: [$channel]
  stream: "$stream"
memory:
  max_bytes: 2gb
  tenant_max_bytes: 128kb
snapshot:
  path: "$tmp/snapshot"
  interval: 0
EOT
start_daemon() {
    "$daemon_bin" -c "$tmp/tc.yaml" >>"$tmp/tc.log" 2>&1 &
    daemon_pid=$!
    pids+=("$daemon_pid")
}
pong() { [ "$(redis-cli -s "$tmp/tc.sock" PING 2>/dev/null)" = PONG ]; }
loaded() { [ "$(info_field "$tmp/tc.sock" snapshot_loaded_entries)" -gt 0 ]; }

# ---- 1. warm restart ----
echo "bench_continuity: loading $tenants seed-typical tenants..." >&2
start_daemon
wait_until 1000 pong
wait_until 1000 subscribed
load_out=$("$tools/load" daemon "$tmp/redis.sock" "$tmp/tc.sock" 0 "$tenants")
entries=$(info_field "$tmp/tc.sock" entries)
rss=$(rss_bytes "$daemon_pid")
kill -TERM "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true
snapshot_bytes=$(stat -c %s "$tmp/snapshot")
t0=$(now_ms)
start_daemon
wait_until 3000 pong
t_pong=$(now_ms)
wait_until 3000 loaded
t_loaded=$(now_ms)
loaded_entries=$(info_field "$tmp/tc.sock" snapshot_loaded_entries)
wait_until 1000 subscribed

# ---- 2. catch-up from the stream ----
echo "bench_continuity: $messages messages published while the subscription is down..." >&2
applied0=$(info_field "$tmp/tc.sock" catchup_applied)
awk -v n="$messages" -v s="$stream" -v c="$channel" -v maxlen=$((messages + 1000)) '
    function cmd(argc, a,   i, out) {
        out = "*" argc "\r\n"
        for (i = 1; i <= argc; i++) out = out "$" length(a[i]) "\r\n" a[i] "\r\n"
        printf "%s", out
    }
    BEGIN {
        a[1] = "MULTI"; cmd(1, a)
        a[1] = "CLIENT"; a[2] = "KILL"; a[3] = "TYPE"; a[4] = "pubsub"; cmd(4, a)
        a[1] = "FCALL"; a[2] = "tenantcached_publish"; a[3] = "1"; a[4] = s; a[5] = c; a[7] = maxlen
        for (i = 0; i < n; i++) {
            a[6] = sprintf("{\"op\":\"set\",\"tenant\":\"tenant-%06d\",\"kind\":\"credit\",\"key\":\"catchup-%03d\",\"value\":%d}", i % 1000, int(i / 1000) % 100, i)
            cmd(7, a)
        }
        a[1] = "EXEC"; cmd(1, a)
    }' > "$tmp/publish.resp"
t_pub0=$(now_ms)
redis-cli -s "$tmp/redis.sock" --pipe < "$tmp/publish.resp" > "$tmp/pipe.out"
t_pub=$(now_ms)
caught_up() { [ "$(info_field "$tmp/tc.sock" catchup_applied)" -ge $((applied0 + messages)) ]; }
wait_until 12000 caught_up
t_caught=$(now_ms)
applied=$(($(info_field "$tmp/tc.sock" catchup_applied) - applied0))
failed=$(info_field "$tmp/tc.sock" catchup_failed)

kill -TERM "$daemon_pid"; wait "$daemon_pid" 2>/dev/null || true

# ---- 3. origin requests caused by a Redis restart ----
"$tools/origin" "$tmp/origin.port" &
pids+=($!)
wait_until 500 test -s "$tmp/origin.port"
origin_port=$(cat "$tmp/origin.port")
origin_served() { curl -s "http://127.0.0.1:$origin_port/stats" | tr -dc '0-9'; }
awk -v n="$tenants" 'BEGIN {
    for (t = 0; t < n; t++)
        for (k = 0; k < 25; k++) {
            tenant = sprintf("tenant-%06d", t); key = sprintf("user-%05d", k)
            printf "*4\r\n$3\r\nGET\r\n$%d\r\n%s\r\n$7\r\nprofile\r\n$%d\r\n%s\r\n", length(tenant), tenant, length(key), key
        }
}' > "$tmp/sweep.resp"
sweep_gets=$((tenants * 25))
restart_pong() { [ "$(redis-cli -s "$dsock" PING 2>/dev/null)" = PONG ]; }
restart_subscribed() { [ "$(redis-cli -s "$rsock" PUBSUB NUMSUB $channel | tail -1)" -ge 1 ]; }
restart_marked() { [ "$(redis-cli -s "$dsock" GET tenant-000000 config marker)" = 1 ]; }
restart_reconnected() {
    [ "$(info_field "$dsock" redis_reconnects)" -gt "$reconnects0" ] &&
        [ "$(info_field "$dsock" redis_connected)" = 1 ]
}
declare -A restart
for setup in plain stream stream-noaof; do
    echo "bench_continuity: Redis restart, $setup..." >&2
    rdir=$tmp/r-$setup
    mkdir -p "$rdir"
    rsock=$tmp/r-$setup.sock
    persistence=(--appendonly yes --appendfsync always)
    [ "$setup" = stream-noaof ] && persistence=(--appendonly no)
    redis_args=(--port 0 --unixsocket "$rsock" --dir "$rdir" --save "" "${persistence[@]}"
        --logfile "$rdir/redis.log")
    redis-server "${redis_args[@]}" &
    rpid=$!
    pids+=("$rpid")
    wait_until 500 redis-cli -s "$rsock" PING
    redis-cli -s "$rsock" FUNCTION LOAD REPLACE "$(cat scripts/tenantcached.lua)" >/dev/null
    stream_line=""
    [ "$setup" != plain ] && stream_line="  stream: \"$stream\""
    cat >"$tmp/r-$setup.yaml" <<EOT
threads: 2
listen:
  socket: "$tmp/rtc-$setup.sock"
redis:
  unix: "$rsock"
  channels: [$channel]
$stream_line
origin:
  url: "http://127.0.0.1:$origin_port/v1/tenants/{tenant}/{kind}/{key}"
memory:
  max_bytes: 2gb
  tenant_max_bytes: 128kb
EOT
    "$daemon_bin" -c "$tmp/r-$setup.yaml" >>"$tmp/rtc-$setup.log" 2>&1 &
    rdaemon=$!
    pids+=("$rdaemon")
    dsock=$tmp/rtc-$setup.sock
    wait_until 1000 restart_pong
    wait_until 1000 restart_subscribed
    "$tools/load" daemon "$rsock" "$dsock" 0 "$tenants" >/dev/null
    # what a publisher using the stream sends: the last change goes through it
    redis-cli -s "$rsock" FCALL tenantcached_publish 1 "$stream" "$channel" \
        '{"op":"set","tenant":"tenant-000000","kind":"config","key":"marker","value":1}' >/dev/null
    wait_until 1000 restart_marked
    reconnects0=$(info_field "$dsock" redis_reconnects)
    kill -KILL "$rpid"; wait "$rpid" 2>/dev/null || true
    redis-server "${redis_args[@]}" &
    rpid=$!
    pids+=("$rpid")
    wait_until 500 redis-cli -s "$rsock" PING
    wait_until 3000 restart_reconnected
    sleep 0.5 # the catch-up (or the flush) right after the resubscription
    before=$(origin_served)
    entries_after=$(info_field "$dsock" entries)
    redis-cli -s "$dsock" --pipe < "$tmp/sweep.resp" > /dev/null
    restart[$setup.origin]=$(($(origin_served) - before))
    restart[$setup.entries]=$entries_after
    restart[$setup.failed]=$(info_field "$dsock" catchup_failed)
    kill -TERM "$rdaemon" "$rpid"; wait "$rdaemon" "$rpid" 2>/dev/null || true
done

ms() { awk -v v="$1" 'BEGIN { printf "%d ms", v }'; }
echo "### Continuity: warm restart and catch-up ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| measurement | figure |"
echo "|---|---|"
echo "| seed-typical tenants loaded through pub/sub (build/bench/load) | $tenants tenants, $entries entries ($load_out) |"
echo "| start to PING answered, snapshot loaded | $(ms $((t_pong - t0))) (snapshot_loaded_entries $loaded_entries; > 0 seen after $(ms $((t_loaded - t0)))) |"
echo "| snapshot file size vs daemon RSS before the stop | $(awk -v a="$snapshot_bytes" -v b="$rss" 'BEGIN { printf "%.1f MB vs %.1f MB (%.2f)", a / 1e6, b / 1e6, a / b }') |"
echo "| messages published while down (one MULTI: CLIENT KILL TYPE pubsub + FCALL tenantcached_publish) | $messages in $(ms $((t_pub - t_pub0))) |"
echo "| catch-up: end of EXEC to catchup_applied = $messages (applied $applied, catchup_failed $failed) | $(ms $((t_caught - t_pub))), $(awk -v n="$applied" -v t=$((t_caught - t_pub)) 'BEGIN { printf "%.0f", (t > 0 ? n * 1000 / t : 0) }') msgs/s |"
echo "| origin requests caused by a Redis restart (SIGKILL, restarted with AOF) and $sweep_gets GETs of every profile afterwards, without the stream | ${restart[plain.origin]} (entries left after the resubscription: ${restart[plain.entries]}) |"
echo "| the same, with \`redis.stream\` (goal: 0) | ${restart[stream.origin]} (entries left: ${restart[stream.entries]}; catchup_failed ${restart[stream.failed]}) |"
echo "| the same, with \`redis.stream\` but Redis without persistence (the stream is lost) | ${restart[stream-noaof.origin]} (entries left: ${restart[stream-noaof.entries]}; catchup_failed ${restart[stream-noaof.failed]}) |"
echo
echo "Start-to-ready is from starting the process to PING answered (the snapshot loads before the socket answers). The catch-up time includes the resubscription (reconnect backoff)."
