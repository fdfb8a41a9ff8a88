#!/usr/bin/env bash
# bench.sh - `make bench`: tenantcached measured side by side with redis-server
# on this machine, in one run, and the seed-typical memory scenarios. Prints
# one Markdown table of daemon / redis-server / ratio with the goals, the
# memory-per-tenant table, and every command line used.
#
# It starts its own redis-server instances (Unix sockets, no persistence), the
# daemon (./tenantcached, config generated into a temporary directory,
# `threads: 2`) and the helper programs of scripts/bench/ (compiled into
# build/bench/), and stops them all on exit, whatever happens.
#
# Every timed row is the median of BENCH_RUNS runs (the machine is shared and
# noisy; the load average is printed at the start and the end). Environment
# knobs, for quicker looks: BENCH_RUNS (3), BENCH_REQUESTS (200000, per
# unpipelined redis-benchmark run), BENCH_PIPELINED_REQUESTS (1000000),
# BENCH_SUSTAIN_SECONDS (60), BENCH_MEMORY_TENANTS ("1 100 1000 10000"),
# BENCH_ZIPF_REQUESTS (300000), TENANTCACHED_BIN (./tenantcached), BENCH_ONLY
# (all sections when empty; else a space-separated list of "queries" for
# rows 1-4, "memory" for row 5 and the memory tables, "hitratio" for row 6,
# "csc", "continuity" and "threads" for the scripts run at the end), e.g.
# BENCH_ONLY=memory BENCH_MEMORY_TENANTS=1000 for the memory rows alone;
# BENCH_ONLY=apply: only the apply row's figures (flood and jansson,
# BENCH_RUNS times).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
daemon_bin=${TENANTCACHED_BIN:-$root/tenantcached}
runs=${BENCH_RUNS:-3}
requests=${BENCH_REQUESTS:-200000}
pipelined_requests=${BENCH_PIPELINED_REQUESTS:-1000000}
sustain_seconds=${BENCH_SUSTAIN_SECONDS:-60}
memory_tenants=${BENCH_MEMORY_TENANTS:-"1 100 1000 10000"}
zipf_requests=${BENCH_ZIPF_REQUESTS:-300000}
only=${BENCH_ONLY:-}
zipf_warmup=$((zipf_requests / 6))
zipf_tenants=1000
zipf_keys=25
zipf_key_example=cache:zipf-000000:profile:user-00000
query_tenants=1000      # tenants loaded for the query, apply and latency rows
flood_count=100000      # ~21 MB with RESP framing: below the 32 MB pubsub hard limit
burst_count=300000      # ~65 MB: more than the limit unless the daemon keeps up
sustain_rate=100000
latency_rate=10000
latency_seconds=5
clients=50
channel=tenantcached:invalidate
tools=$root/build/bench
clk_tck=$(getconf CLK_TCK)
# wants SECTION: true if BENCH_ONLY is empty or names SECTION.
wants() { [ -z "$only" ] || [[ " $only " == *" $1 "* ]]; }
wants memory || memory_tenants=""
started=$(date +%s)

for tool in redis-server redis-cli redis-benchmark pkg-config; do
    command -v "$tool" >/dev/null || { echo "bench: $tool not found (make deps)" >&2; exit 1; }
done
[ -x "$daemon_bin" ] || { echo "bench: $daemon_bin not built (make)" >&2; exit 1; }

# ---- the helper programs ----

mkdir -p "$tools"
cflags=(-std=c11 -O2 -Wall -Wextra -Wshadow -Wformat=2 -D_GNU_SOURCE -pthread -Iscripts/bench)
read -ra hiredis_flags <<< "$(pkg-config --cflags --libs hiredis)"
read -ra event_flags <<< "$(pkg-config --cflags --libs libevent)"
read -ra jansson_flags <<< "$(pkg-config --cflags --libs jansson)"
common=(scripts/bench/common.c scripts/bench/seed.c)
build_tool() {
    local name=$1; shift
    cc "${cflags[@]}" -o "$tools/$name" "scripts/bench/$name.c" "$@"
}
build_tool null_server "${event_flags[@]}"
build_tool origin scripts/bench/seed.c "${event_flags[@]}"
build_tool load "${common[@]}" "${hiredis_flags[@]}"
build_tool flood "${common[@]}" "${hiredis_flags[@]}"
build_tool latency "${common[@]}" "${hiredis_flags[@]}"
build_tool jparse "${common[@]}" "${hiredis_flags[@]}" "${jansson_flags[@]}"
build_tool hitratio "${common[@]}" "${hiredis_flags[@]}" -lm
# layout: built against the daemon's own objects (make all built them)
mapfile -t daemon_objs < <(ls build/*.o | grep -v -e '/main\.o$' -e '/harness\.o$')
read -ra yaml_flags <<< "$(pkg-config --cflags --libs yaml-0.1)"
cc "${cflags[@]}" -Iinclude -o "$tools/layout" scripts/bench/layout.c scripts/bench/seed.c \
    "${daemon_objs[@]}" "${hiredis_flags[@]}" -levent_pthreads "${event_flags[@]}" \
    "${jansson_flags[@]}" "${yaml_flags[@]}" -lm

# ---- processes: started here, stopped on exit ----

tmp=$(mktemp -d /tmp/tcbench.XXXXXX)
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

commands=()     # every command line that produced a figure, in order
declare -A configs_shown
note() { commands+=("$*"); }
quoted() { local q; printf -v q '%q ' "$@"; echo "${q% }"; }

# wait_for DESCRIPTION COMMAND...: retries COMMAND (10 ms apart) for 10 s;
# returns 1 (which ends the script, under set -e) if it never succeeds.
wait_for() {
    local what=$1 i; shift
    for ((i = 0; i < 1000; i++)); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.01
    done
    echo "bench: timed out waiting for $what" >&2
    return 1
}

answers_pong() { [ "$(redis-cli -s "$1" PING 2>/dev/null)" = PONG ]; }

# start_redis NAME: a redis-server on $tmp/NAME.sock; sets redis_pid.
start_redis() {
    local name=$1
    local args=(--port 0 --unixsocket "$tmp/$name.sock" --unixsocketperm 700 --save ""
                --appendonly no --dir "$tmp" --logfile "$tmp/$name.log")
    redis-server "${args[@]}" &
    redis_pid=$!
    pids+=("$redis_pid")
    wait_for "redis-server $name" answers_pong "$tmp/$name.sock"
    note "$(quoted redis-server "${args[@]}")"
}

subscribers() {
    redis-cli -s "$1" PUBSUB NUMSUB "$channel" | tail -n 1
}
subscribed() { [ "$(subscribers "$1")" -ge "$2" ]; }

# start_daemon NAME REDIS_NAME [YAML]: the daemon on $tmp/NAME.sock, subscribed
# to $tmp/REDIS_NAME.sock; YAML replaces the memory section. Sets daemon_pid.
start_daemon() {
    local name=$1 redis=$2
    local memory=${3:-$'memory:\n  max_bytes: 2gb\n  tenant_max_bytes: 128kb'}
    local config=$tmp/$name.yaml before line
    before=$(subscribers "$tmp/$redis.sock")
    cat > "$config" <<EOF
log_level: notice
threads: 2
listen:
  socket: $tmp/$name.sock
redis:
  unix: "$tmp/$redis.sock"
$memory
EOF
    "$daemon_bin" -c "$config" 2>>"$tmp/$name.log" &
    daemon_pid=$!
    pids+=("$daemon_pid")
    wait_for "tenantcached $name" answers_pong "$tmp/$name.sock"
    wait_for "tenantcached $name to subscribe" subscribed "$tmp/$redis.sock" $((before + 1))
    if [ -z "${configs_shown[$memory]:-}" ]; then
        note "$(quoted "$daemon_bin" -c "$config")   # $config:"
        while IFS= read -r line; do note "#   $line"; done < "$config"
        configs_shown[$memory]=$config
    else
        note "$(quoted "$daemon_bin" -c "$config")   # as ${configs_shown[$memory]}, with its own socket and Redis"
    fi
}

stop() {
    kill "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}

# CPU time (user + system, all threads) of a process, in clock ticks.
cpu_ticks() {
    local stat fields
    stat=$(< "/proc/$1/stat")
    read -ra fields <<< "${stat##*) }"
    echo $((fields[11] + fields[12]))
}

rss_bytes() {
    awk '/^VmRSS:/ { print $2 * 1024 }' "/proc/$1/status"
}

info_field() { # SOCKET SECTION FIELD
    redis-cli -s "$1" INFO "$2" | tr -d '\r' | awk -F: -v f="$3" '$1 == f { print $2 }'
}

field() { # NAME "k=v k=v ...": the value of NAME
    tr ' ' '\n' <<< "$2" | awk -F= -v k="$1" '$1 == k { print $2 }'
}

calc() { awk "BEGIN { printf \"%.10g\", $1 }"; }

# ---- samples and medians ----

declare -A samples mem
sample() { samples[$1]+="$2 "; }
median() {
    local values
    read -ra values <<< "${samples[$1]:-}"
    [ "${#values[@]}" -gt 0 ] || { echo nan; return; }
    printf '%s\n' "${values[@]}" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# bench_requests KEY PID SOCKET PIPELINE N COMMAND...: one redis-benchmark run;
# samples KEY.rps, KEY.p50, KEY.p99 (ms) and KEY.cpu (server us per request).
bench_requests() {
    local key=$1 pid=$2 socket=$3 pipeline=$4 n=$5; shift 5
    local before after line rps p50 p99
    local cmd=(redis-benchmark -s "$socket" -c "$clients" -n "$n" -P "$pipeline" --csv "$@")
    before=$(cpu_ticks "$pid")
    line=$("${cmd[@]}" 2>/dev/null | tail -n 1 | tr -d '"')
    after=$(cpu_ticks "$pid")
    IFS=, read -r _ rps _ _ p50 _ p99 _ <<< "$line"
    [ -n "$p99" ] || { echo "bench: no result from ${cmd[*]}" >&2; exit 1; }
    sample "$key.rps" "$rps"
    sample "$key.p50" "$p50"
    sample "$key.p99" "$p99"
    sample "$key.cpu" "$(calc "($after - $before) * 1e6 / $clk_tck / $n")"
    [ "$run" -gt 1 ] || note "$(quoted "${cmd[@]}")"
}

loadavg() { cut -d' ' -f1-3 /proc/loadavg; }
load_start=$(loadavg)

# ===== rows 1-4: one redis-server, one daemon, the same 1,000 tenants =====

if wants queries || wants apply; then

echo "bench: loading $query_tenants seed-typical tenants into redis-server and tenantcached..." >&2
start_redis main
main_redis_pid=$redis_pid
start_daemon tc main
tc_pid=$daemon_pid
"$tools/null_server" "$tmp/null.sock" &
null_pid=$!
pids+=("$null_pid")
wait_for "null_server" test -S "$tmp/null.sock"
note "$tools/null_server $tmp/null.sock"

"$tools/load" redis "$tmp/main.sock" 0 "$query_tenants" >/dev/null
note "$tools/load redis $tmp/main.sock 0 $query_tenants"
"$tools/load" daemon "$tmp/main.sock" "$tmp/tc.sock" 0 "$query_tenants" >/dev/null
note "$tools/load daemon $tmp/main.sock $tmp/tc.sock 0 $query_tenants"

tenant="tenant-000042"
get_daemon=(GET "$tenant" config cfg-feature-03)
get_redis=(GET "cache:$tenant:config:cfg-feature-03")
can_daemon=(CAN "$tenant" user-00007 crm.leads.create)
get_user=(GET "cache:$tenant:user:user-00007")
[ "$(redis-cli -s "$tmp/tc.sock" "${get_daemon[@]}")" = "$(redis-cli -s "$tmp/main.sock" "${get_redis[@]}")" ] ||
    { echo "bench: the daemon and redis-server disagree on ${get_redis[*]}" >&2; exit 1; }
[ "$(redis-cli -s "$tmp/tc.sock" "${can_daemon[@]}")" = 1 ] ||
    { echo "bench: ${can_daemon[*]} is not 1" >&2; exit 1; }

reconnects_before=$(info_field "$tmp/tc.sock" redis redis_reconnects)

# the plain-subscriber Redis for rows 3 and 4: nothing else subscribed to it
start_redis pub
redis-cli -s "$tmp/pub.sock" SUBSCRIBE "$channel" >/dev/null &
plain_subscriber=$!
pids+=("$plain_subscriber")
wait_for "the plain subscriber" subscribed "$tmp/pub.sock" 1
note "redis-cli -s $tmp/pub.sock SUBSCRIBE $channel > /dev/null"

# row 3: apply rate (and its CPU) against PUBLISH to a plain subscriber and jansson
apply_row() {
    before=$(cpu_ticks "$tc_pid")
    out=$("$tools/flood" "$tmp/main.sock" "$flood_count" "$tmp/tc.sock")
    after=$(cpu_ticks "$tc_pid")
    [ "$(field applied "$out")" = "$flood_count" ] || echo "bench: flood: $out" >&2
    sample apply.d "$(field apply_rate "$out")"
    sample apply.cpu "$(calc "($after - $before) * 1e6 / $clk_tck / $flood_count")"
    sample apply.omem "$(field peak_omem "$out")"
    sample apply.kept "$(field subscriber_kept "$out")"
    out=$("$tools/flood" "$tmp/pub.sock" "$flood_count")
    sample apply.r "$(field publish_rate "$out")"
    out=$("$tools/jparse" "$flood_count")
    sample jansson.rate "$(field rate "$out")"
    sample jansson.cpu "$(field cpu_us_per_message "$out")"
    if [ "$run" = 1 ]; then
        note "$tools/flood $tmp/main.sock $flood_count $tmp/tc.sock   # daemon CPU from /proc/$tc_pid/stat around it"
        note "$tools/flood $tmp/pub.sock $flood_count"
        note "$tools/jparse $flood_count"
    fi
}

# BENCH_ONLY=apply: only row 3's apply figures, BENCH_RUNS times, then stop.
if [ "${BENCH_ONLY:-}" = apply ]; then
    for ((run = 1; run <= runs; run++)); do apply_row; done
    for k in apply.d apply.cpu jansson.rate jansson.cpu; do echo "$k: ${samples[$k]}(median $(median "$k"))"; done
    echo "ratio: $(calc "$(median apply.cpu) / $(median jansson.cpu)")"
    exit 0
fi

for ((run = 1; run <= runs; run++)); do
    echo "bench: run $run of $runs: queries, apply rate, latency..." >&2
    for pipeline in 1 16; do
        n=$requests
        [ "$pipeline" = 1 ] || n=$pipelined_requests
        bench_requests "get.d.$pipeline" "$tc_pid" "$tmp/tc.sock" "$pipeline" "$n" "${get_daemon[@]}"
        bench_requests "get.r.$pipeline" "$main_redis_pid" "$tmp/main.sock" "$pipeline" "$n" "${get_redis[@]}"
        bench_requests "get.n.$pipeline" "$null_pid" "$tmp/null.sock" "$pipeline" "$n" "${get_redis[@]}"
        bench_requests "can.d.$pipeline" "$tc_pid" "$tmp/tc.sock" "$pipeline" "$n" "${can_daemon[@]}"
        bench_requests "can.r.$pipeline" "$main_redis_pid" "$tmp/main.sock" "$pipeline" "$n" "${get_user[@]}"
    done

    apply_row

    # row 4: publish-to-visible latency at a steady rate
    count=$((latency_rate * latency_seconds))
    out=$("$tools/latency" "$tmp/main.sock" "$tmp/tc.sock" "$latency_rate" "$count")
    sample lat.d.p50 "$(field p50_us "$out")"
    sample lat.d.p99 "$(field p99_us "$out")"
    sample lat.d.late "$(field late "$out")"
    out=$("$tools/latency" "$tmp/pub.sock" - "$latency_rate" "$count")
    sample lat.r.p50 "$(field p50_us "$out")"
    sample lat.r.p99 "$(field p99_us "$out")"
    sample lat.r.late "$(field late "$out")"
    if [ "$run" = 1 ]; then
        note "$tools/latency $tmp/main.sock $tmp/tc.sock $latency_rate $count"
        note "$tools/latency $tmp/pub.sock - $latency_rate $count"
    fi
done

# row 3, continued: 100k messages/s for a minute, then a burst past the limit
echo "bench: $sustain_rate messages/s for $sustain_seconds s..." >&2
sustain=$("$tools/flood" "$tmp/main.sock" $((sustain_rate * sustain_seconds)) "$tmp/tc.sock" "$sustain_rate")
note "$tools/flood $tmp/main.sock $((sustain_rate * sustain_seconds)) $tmp/tc.sock $sustain_rate"
reconnects_sustain=$(($(info_field "$tmp/tc.sock" redis redis_reconnects) - reconnects_before))
burst=$("$tools/flood" "$tmp/main.sock" "$burst_count" "$tmp/tc.sock")
note "$tools/flood $tmp/main.sock $burst_count $tmp/tc.sock"
wait_for "the daemon to resubscribe" subscribed "$tmp/main.sock" 1 || true
reconnects_burst=$(($(info_field "$tmp/tc.sock" redis redis_reconnects) - reconnects_before - reconnects_sustain))
output_limit=$(redis-cli -s "$tmp/main.sock" CONFIG GET client-output-buffer-limit | tail -n 1 | sed 's/.*pubsub/pubsub/')
stop "$tc_pid"
fi

# ===== row 5 and the memory table: fresh processes for each tenant count =====

for tenants in $memory_tenants; do
    echo "bench: memory with $tenants tenants..." >&2
    start_redis "mem$tenants"
    mem_redis_pid=$redis_pid
    start_daemon "memtc$tenants" "mem$tenants"
    mem_daemon_pid=$daemon_pid
    sock=$tmp/mem$tenants.sock
    dsock=$tmp/memtc$tenants.sock
    r_used0=$(info_field "$sock" memory used_memory)
    r_rss0=$(rss_bytes "$mem_redis_pid")
    d_used0=$(info_field "$dsock" memory used_memory)
    d_rss0=$(rss_bytes "$mem_daemon_pid")
    out=$("$tools/load" redis "$sock" 0 "$tenants")
    entries=$(field entries "$out")
    payload=$(field payload_bytes "$out")
    r_used=$(info_field "$sock" memory used_memory)
    r_rss=$(rss_bytes "$mem_redis_pid")
    out=$("$tools/load" daemon "$sock" "$dsock" 0 "$tenants")
    d_used=$(info_field "$dsock" memory used_memory)
    d_rss=$(rss_bytes "$mem_daemon_pid")
    d_entries=$(info_field "$dsock" memory entries)
    [ "$d_entries" = "$entries" ] || echo "bench: the daemon holds $d_entries of $entries entries" >&2
    mem[$tenants.entries]=$entries
    mem[$tenants.payload]=$payload
    own_payload=$(field own_payload_bytes "$out")
    mem[$tenants.rate]=$(field rate "$out")
    mem[$tenants.r_used]=$(calc "($r_used - $r_used0) / $tenants")
    mem[$tenants.r_rss]=$(calc "($r_rss - $r_rss0) / $tenants")
    mem[$tenants.d_used]=$(calc "($d_used - $d_used0) / $tenants")
    mem[$tenants.d_rss]=$(calc "($d_rss - $d_rss0) / $tenants")
    mem[$tenants.r_over]=$(calc "($r_used - $r_used0 - $payload) / $entries")
    mem[$tenants.d_over]=$(calc "($d_used - $d_used0 - $payload) / $entries")
    mem[$tenants.d_rss_over]=$(calc "($d_rss - $d_rss0 - $payload) / $entries")
    mem[$tenants.d_own_over]=$(calc "($d_used - $d_used0 - $own_payload) / $entries")
    mem[$tenants.d_rss_own_over]=$(calc "($d_rss - $d_rss0 - $own_payload) / $entries")
    note "$tools/load redis $sock 0 $tenants; $tools/load daemon $sock $dsock 0 $tenants   # INFO memory used_memory and /proc/PID/status VmRSS before and after"
    stop "$mem_daemon_pid"
    stop "$mem_redis_pid"
done

# ===== row 6: hit ratio of the reference tier, 10% of the data, Zipf(0.99) =====

if wants hitratio; then
echo "bench: hit ratio on a Zipf(0.99) trace of $zipf_requests requests..." >&2
wants queries || start_redis main
"$tools/origin" "$tmp/origin.port" &
pids+=("$!")
wait_for "the origin" test -s "$tmp/origin.port"
origin_port=$(cat "$tmp/origin.port")
note "$tools/origin $tmp/origin.port   # listening on 127.0.0.1:$origin_port"
# the data: every profile as Redis would hold it (key name + 600-byte value)
zipf_data=$((zipf_tenants * zipf_keys * (${#zipf_key_example} + 600)))
zipf_budget=$((zipf_data / 10))
start_daemon zipf main "$(printf '%s\n' \
    "origin:" "  url: \"http://127.0.0.1:$origin_port/v1/tenants/{tenant}/{kind}/{key}\"" \
    "memory:" "  max_bytes: $zipf_budget" "  tenant_max_bytes: 128kb" \
    "  high_watermark: 1.0" "  low_watermark: 0.99")"
# The watermarks are set out of the way: with the defaults (0.8/0.7) the
# daemon keeps about 75% of max_bytes in use by design, which would compare
# its capacity with LRU's rather than its choice of victims.
zipf_pid=$daemon_pid
zipf=$("$tools/hitratio" "$tmp/zipf.sock" "$zipf_tenants" "$zipf_keys" "$zipf_requests" "$zipf_warmup" "$zipf_budget")
note "$tools/hitratio $tmp/zipf.sock $zipf_tenants $zipf_keys $zipf_requests $zipf_warmup $zipf_budget"
stop "$zipf_pid"
if [ "$(field bad_replies "$zipf")" != 0 ] || [ "$(field fill_errors "$zipf")" != 0 ]; then
    echo "bench: hit ratio: some GETs were not answered with the value: $zipf" >&2
fi
fi

load_end=$(loadavg)
elapsed=$(($(date +%s) - started))

# ===== the tables =====

fmt() { # VALUE DECIMALS [SCALE]: a number with thousands separators
    awk -v v="$1" -v d="$2" -v s="${3:-1}" 'BEGIN {
        if (v == "nan" || v == "") { print "n/a"; exit }
        x = sprintf("%." d "f", v * s); neg = x ~ /^-/; if (neg) x = substr(x, 2)
        split(x, p, "."); i = p[1]; o = ""
        while (length(i) > 3) { o = "," substr(i, length(i) - 2) o; i = substr(i, 1, length(i) - 3) }
        printf "%s%s%s%s", neg ? "-" : "", i, o, (d > 0 ? "." p[2] : "") }'
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0 || a == "nan" || b == "nan") print "n/a"; else printf "%.2f", a / b }'; }
# verdict A B OP LIMIT: "yes" or "**no**" for A / B OP LIMIT, on the exact
# ratio (not the two decimals the table shows: 32.1 / 32 is not <= 1.0).
verdict() { awk -v a="$1" -v b="$2" -v op="$3" -v l="$4" 'BEGIN {
    if (b == 0 || a == "nan" || b == "nan" || a == "" || b == "") { print "n/a"; exit }
    r = a / b; ok = (op == ">=") ? r >= l : r <= l; print ok ? "yes" : "**no**" }'; }

rows=()
row() { rows+=("| $1 | $2 | $3 | $4 | $5 | $6 | $7 |"); }

if wants queries; then
for pipeline in 1 16; do
    p="-P $pipeline"
    d=$(median "get.d.$pipeline.rps"); r=$(median "get.r.$pipeline.rps"); q=$(ratio "$d" "$r")
    row 1 "GET requests/s, $p" "$(fmt "$d" 0)" "$(fmt "$r" 0)" "$q" "≥ 1.0" "$(verdict "$d" "$r" '>=' 1.0)"
    d=$(median "get.d.$pipeline.p99"); r=$(median "get.r.$pipeline.p99"); q=$(ratio "$d" "$r")
    row 1 "GET p50 / p99 latency (ms), $p" "$(median "get.d.$pipeline.p50") / $d" \
        "$(median "get.r.$pipeline.p50") / $r" "$q (p99)" "p99 ≤ 1.0" "$(verdict "$d" "$r" '<=' 1.0)"
    d=$(median "get.d.$pipeline.cpu"); r=$(median "get.r.$pipeline.cpu"); q=$(ratio "$d" "$r")
    row 1 "GET server CPU µs/request, $p" "$(fmt "$d" 2)" "$(fmt "$r" 2)" "$q" "≤ 1.0" "$(verdict "$d" "$r" '<=' 1.0)"
    n=$(median "get.n.$pipeline.cpu"); q=$(ratio "$d" "$n")
    row 1 "GET CPU µs/request vs the do-nothing RESP server, $p" "$(fmt "$d" 2)" \
        "$(fmt "$n" 2) (null_server)" "$q" "≤ 1.3 (stretch)" "$(verdict "$d" "$n" '<=' 1.3)"
done
for pipeline in 1 16; do
    p="-P $pipeline"
    d=$(median "can.d.$pipeline.rps"); r=$(median "can.r.$pipeline.rps"); q=$(ratio "$d" "$r")
    row 2 "CAN requests/s vs Redis GET of the user, $p" "$(fmt "$d" 0)" "$(fmt "$r" 0)" "$q" "≥ 1.0" "$(verdict "$d" "$r" '>=' 1.0)"
    d=$(median "can.d.$pipeline.p99"); r=$(median "can.r.$pipeline.p99"); q=$(ratio "$d" "$r")
    row 2 "CAN p50 / p99 latency (ms), $p" "$(median "can.d.$pipeline.p50") / $d" \
        "$(median "can.r.$pipeline.p50") / $r" "$q (p99)" "p99 ≤ 1.0" "$(verdict "$d" "$r" '<=' 1.0)"
    d=$(median "can.d.$pipeline.cpu"); r=$(median "can.r.$pipeline.cpu"); q=$(ratio "$d" "$r")
    row 2 "CAN server CPU µs/request, $p" "$(fmt "$d" 2)" "$(fmt "$r" 2)" "$q" "≤ 1.0" "$(verdict "$d" "$r" '<=' 1.0)"
    d=$(median "can.d.$pipeline.rps"); g=$(median "get.d.$pipeline.rps"); q=$(ratio "$d" "$g")
    row 2 "CAN ÷ GET requests/s (both tenantcached), $p" "$(fmt "$d" 0)" "$(fmt "$g" 0) (daemon GET)" "$q" "≥ 0.9" "$(verdict "$d" "$g" '>=' 0.9)"
done
d=$(median apply.d); r=$(median apply.r); q=$(ratio "$d" "$r")
row 3 "messages/s applied (daemon) vs PUBLISH accepted with 1 plain subscriber (Redis), burst of $(fmt "$flood_count" 0)" \
    "$(fmt "$d" 0)" "$(fmt "$r" 0)" "$q" "daemon ≥ 250,000/s" "$(verdict "$d" 250000 '>=' 1.0)"
d=$(median apply.cpu); j=$(median jansson.cpu); q=$(ratio "$d" "$j")
row 3 "daemon CPU µs/message vs jansson json_loadb alone ($(fmt "$(median jansson.rate)" 0)/s on one core)" \
    "$(fmt "$d" 2)" "$(fmt "$j" 2) (jansson)" "$q" "≤ 1.5" "$(verdict "$d" "$j" '<=' 1.5)"
row 3 "subscription kept through the $(fmt "$flood_count" 0) burst (peak pubsub omem)" \
    "$([ "$(median apply.kept)" = 1 ] && echo yes || echo no) ($(fmt "$(median apply.omem)" 1 1e-6) MB)" \
    "limit: $output_limit" "" "kept" "$([ "$(median apply.kept)" = 1 ] && echo yes || echo '**no**')"
kept=$([ "$reconnects_sustain" = 0 ] && [ "$(field subscriber_kept "$sustain")" = 1 ] && echo yes || echo no)
row 3 "subscription kept at $(fmt "$sustain_rate" 0) msg/s for $sustain_seconds s (applied / published; peak omem; redis_reconnects +$reconnects_sustain)" \
    "$kept ($(field applied "$sustain") / $(field published "$sustain"); $(fmt "$(field peak_omem "$sustain")" 1 1e-6) MB)" \
    "sent at $(fmt "$(field publish_rate "$sustain")" 0)/s" "" "kept" "$([ "$kept" = yes ] && echo yes || echo '**no**')"
kept=$([ "$reconnects_burst" = 0 ] && [ "$(field subscriber_kept "$burst")" = 1 ] && echo yes || echo no)
row 3 "subscription kept through a $(fmt "$burst_count" 0)-message burst (~65 MB; applied before any drop; peak omem)" \
    "$kept ($(field applied "$burst") applied; $(fmt "$(field peak_omem "$burst")" 1 1e-6) MB)" \
    "sent at $(fmt "$(field publish_rate "$burst")" 0)/s" "" "(informative)" ""
d=$(median lat.d.p99); r=$(median lat.r.p99); q=$(ratio "$d" "$r")
row 4 "publish-to-visible p50 / p99 (µs) at $(fmt "$latency_rate" 0) msg/s (Redis: to a plain subscriber; publisher >1 ms late: d $(median lat.d.late), r $(median lat.r.late))" \
    "$(median lat.d.p50) / $d" "$(median lat.r.p50) / $r" "$q (p99)" "p99 ≤ 1,000 µs" \
    "$(verdict "$d" 1000 '<=' 1.0)"
fi
for tenants in $memory_tenants; do
    case $tenants in 1000|10000) ;; *) continue ;; esac
    d=${mem[$tenants.d_rss]}; r=${mem[$tenants.r_rss]}; q=$(ratio "$d" "$r")
    row 5 "RSS per tenant (bytes), $(fmt "$tenants" 0) tenants" "$(fmt "$d" 0)" "$(fmt "$r" 0)" "$q" "≤ 0.75" "$(verdict "$d" "$r" '<=' 0.75)"
    d=${mem[$tenants.d_used]}; r=${mem[$tenants.r_used]}; q=$(ratio "$d" "$r")
    row 5 "used_memory per tenant (bytes), $(fmt "$tenants" 0) tenants" "$(fmt "$d" 0)" "$(fmt "$r" 0)" "$q" "" ""
    d=${mem[$tenants.d_over]}; r=${mem[$tenants.r_over]}; q=$(ratio "$d" "$r")
    row 5 "bytes per entry beyond key name + value (used_memory), $(fmt "$tenants" 0) tenants" "$(fmt "$d" 1)" "$(fmt "$r" 1)" "$q" "" ""
    d=${mem[$tenants.d_rss_own_over]}
    row 5 "bytes of RSS per entry beyond the entry's own key + compact value, $(fmt "$tenants" 0) tenants (layout below)" "$(fmt "$d" 1)" "" "" "daemon ≤ 32" \
        "$(verdict "$d" 32 '<=' 1.0)"
done
if wants hitratio; then
d=$(field daemon_hit_ratio "$zipf"); r=$(field lru_hit_ratio "$zipf"); q=$(ratio "$d" "$r")
row 6 "reference-tier hit ratio, budget $(fmt "$zipf_budget" 0) B = 10% of the data (watermarks 1.0/0.99), Zipf(0.99), $(fmt "$zipf_requests" 0) GETs (exact LRU: same budget, $(field entry_cost "$zipf") B/entry as the daemon accounts it = $(field lru_capacity "$zipf") entries)" \
    "$(fmt "$d" 2 100)%" "$(fmt "$r" 2 100)% (exact LRU)" "$q" "≥ 1.0" "$(verdict "$d" "$r" '>=' 1.0)"
row 6 "the same, exact LRU holding only as many entries as the daemon did at the end ($(field daemon_entries "$zipf")); LRU with no per-entry overhead ($(field lru_payload_capacity "$zipf") entries)" \
    "$(fmt "$d" 2 100)%" "$(fmt "$(field lru_at_daemon_entries "$zipf")" 2 100)% / $(fmt "$(field lru_payload_hit_ratio "$zipf")" 2 100)%" \
    "$(ratio "$d" "$(field lru_at_daemon_entries "$zipf")")" "(informative)" ""
fi

cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
echo
echo "## tenantcached vs redis-server ($(date -u '+%Y-%m-%d %H:%M UTC'))"
echo
echo "$(nproc) cores (${cpu_model:-unknown CPU}), redis-server $(redis-server --version | cut -d' ' -f3 | tr -d 'v='), $("$daemon_bin" --version 2>&1 | head -n 1)."
echo "Median of $runs runs for rows 1-4; rows 5-6 are one deterministic run. Load average at start $load_start, at end $load_end.${only:+ Only: $only.}"
echo "Ratio = tenantcached ÷ the third column. CPU = utime+stime of the server process from /proc/PID/stat, before/after, ÷ requests."
echo
echo "| # | measurement | tenantcached | redis-server (or named baseline) | ratio | goal | met |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
if wants memory; then
echo "### Memory per seed-typical tenant"
echo
echo "Each tenant: 30 credit costs, 10 roles, 50 users, 10 configs, 25 profiles (~600 B), 20 hierarchy entities = 145 entries,"
first_tenants=${memory_tenants%% *}
echo "$(fmt "$(calc "${mem[$first_tenants.payload]:-0} / $first_tenants")" 0) bytes of key names (cache:{tenant}:{kind}:{key}) and JSON values. Fresh processes per row; figures are growth over the idle process ÷ tenants."
echo
echo "| tenants | daemon RSS/tenant | daemon used_memory/tenant | redis used_memory/tenant | redis RSS/tenant | seed's estimate | daemon RSS ÷ redis RSS | load rate (msg/s) |"
echo "|---|---|---|---|---|---|---|---|"
for tenants in $memory_tenants; do
    echo "| $(fmt "$tenants" 0) | $(fmt "${mem[$tenants.d_rss]}" 0 1e-3) KB | $(fmt "${mem[$tenants.d_used]}" 1 1e-3) KB | $(fmt "${mem[$tenants.r_used]}" 1 1e-3) KB | $(fmt "${mem[$tenants.r_rss]}" 0 1e-3) KB | 35–40 KB | $(ratio "${mem[$tenants.d_rss]}" "${mem[$tenants.r_rss]}") | $(fmt "${mem[$tenants.rate]}" 0) |"
done
echo
echo "KB = 1,000 bytes. Per entry beyond key name (cache:{tenant}:{kind}:{key}) + value, 1,000 tenants: daemon $(fmt "${mem[1000.d_over]:-nan}" 1) B accounted,"
echo "$(fmt "${mem[1000.d_rss_over]:-nan}" 1) B of RSS; redis-server $(fmt "${mem[1000.r_over]:-nan}" 1) B. Beyond the entry's own key + value (what the daemon stores per entry): daemon $(fmt "${mem[1000.d_own_over]:-nan}" 1) B."
echo
layout=$("$tools/layout")
note "$tools/layout"
if [ -n "${mem[1000.d_own_over]:-}" ]; then
    l_header=$(field header "$layout"); l_derived=$(field derived "$layout"); l_alloc=$(field alloc "$layout")
    l_tables=$(field tables "$layout")
    l_known=$(calc "$l_header + $l_derived + $l_alloc + $l_tables")
    echo "Layout of the daemon's bytes per entry beyond the entry's own key + compact value (1,000 tenants: $(fmt "${mem[1000.d_own_over]}" 1) B accounted, $(fmt "${mem[1000.d_rss_own_over]}" 1) B of RSS):"
    echo "entry header $l_header B, derived query data $l_derived B, the allocator's rounding up to a slab class (8-byte steps) $l_alloc B,"
    echo "the tenant's own tables $l_tables B (its open-addressing table and tags, hierarchy index and record)"
    echo "(\`$tools/layout\`: the seed entries prepared and cached as the daemon does), and the rest, $(fmt "$(calc "${mem[1000.d_own_over]} - $l_known")" 1) B accounted /"
    echo "$(fmt "$(calc "${mem[1000.d_rss_own_over]} - $l_known")" 1) B of RSS: the tables all tenants share (shards, the tenant list and its Fenwick tree) and, for RSS, the allocators' free space (glibc's, and the entry slabs' free objects)."
    echo
fi
fi
echo "### Commands"
echo
echo "Run from $root; sockets in a temporary directory (here $tmp, removed at exit); helper sources in scripts/bench/."
echo
echo '```'
printf '%s\n' "${commands[@]}"
echo '```'
echo
echo
if wants csc; then
    TENANTCACHED_BIN=$daemon_bin scripts/bench_csc.sh
    echo
fi
if wants continuity; then
    TENANTCACHED_BIN=$daemon_bin scripts/bench_continuity.sh
    echo
fi
if wants threads; then
    TENANTCACHED_BIN=$daemon_bin BENCH_RUNS=$runs scripts/bench_threads.sh
    echo
fi
echo "bench: done in ${elapsed} s ($(date -u '+%H:%M:%S UTC'))"
