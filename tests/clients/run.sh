#!/bin/sh
# The client compatibility suite (run by make check after the C suites): a
# real redis-server and the real daemon, driven by the Redis client libraries
# applications use, each with its default options - redis-py, phpredis,
# redis-rb, and from npm node-redis 4, node-redis (current major) and ioredis
# (hiredis is driven by tests/integration/test_clients.c). Each driver prints
# "ok LIB STEP" or "FAIL LIB STEP: why" for connect, get, can, pipeline,
# transaction, client-name, pool, error and reconnect (the driver asks for the
# daemon to be restarted through $TC_RESTART). client_node_csc.js drives
# node-redis's client-side cache (CLIENT TRACKING). Ends with one
# "clients: N passed, N failed" line; exits non-zero on any failure.
#
# A missing library is a failure. TENANTCACHED_SKIP_CLIENTS=1 skips the
# suite, loudly. "run.sh --restart DIR" is the restart helper itself.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${TENANTCACHED_BIN:-$root/build/tenantcached}
case "$bin" in /*) ;; *) bin="$root/$bin" ;; esac

# Starts the daemon on DIR's config and waits until its socket answers.
start_daemon() {
    "$bin" -c "$1/tenantcached.yaml" >>"$1/daemon.log" 2>&1 &
    echo $! >"$1/daemon.pid"
    i=0
    while [ "$(redis-cli -s "$1/tenantcached.sock" PING 2>/dev/null)" != "PONG" ]; do
        i=$((i + 1))
        if [ $i -gt 100 ]; then echo "clients: the daemon did not start" >&2; return 1; fi
        sleep 0.05
    done
}

# Running and not a zombie (a daemon started by an earlier --restart is
# nobody's child here, and is reaped whenever its new parent gets to it).
alive() {
    state=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)
    [ -n "$state" ] && [ "$state" != Z ]
}

stop_daemon() {
    pid=$(cat "$1/daemon.pid" 2>/dev/null) || return 0
    kill "$pid" 2>/dev/null
    i=0
    while alive "$pid" && [ $i -lt 200 ]; do i=$((i + 1)); sleep 0.02; done
    rm -f "$1/daemon.pid"
}

if [ "${1:-}" = "--restart" ]; then
    stop_daemon "$2" && start_daemon "$2"
    exit $?
fi

if [ "${TENANTCACHED_SKIP_CLIENTS:-0}" = 1 ]; then
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo "!!! client compatibility suite SKIPPED (TENANTCACHED_SKIP_CLIENTS=1)         !!!"
    echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo "clients: 0 passed, 0 failed (SKIPPED)"
    exit 0
fi

dir=$(mktemp -d /tmp/tenantcached-clients.XXXXXX)
cleanup() {
    stop_daemon "$dir"
    [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null
    if [ "${failed:-1}" -ne 0 ] && [ -f "$dir/daemon.log" ]; then
        echo "--- daemon log (last 40 lines)"; tail -n 40 "$dir/daemon.log"
    fi
    rm -rf "$dir"
}
trap cleanup EXIT INT TERM

redis-server --port 0 --unixsocket "$dir/redis.sock" --save "" --appendonly no --dir "$dir" \
    --logfile "$dir/redis.log" --daemonize yes --pidfile "$dir/redis.pid" || exit 1
i=0
until [ "$(redis-cli -s "$dir/redis.sock" PING 2>/dev/null)" = "PONG" ]; do
    i=$((i + 1)); [ $i -gt 100 ] && { echo "clients: redis-server did not start" >&2; exit 1; }
    sleep 0.05
done
# The entries live in Redis (L2): every restart of the daemon fills them again.
redis-cli -s "$dir/redis.sock" MSET \
    cache:acme:credit:crm.leads.create 3.5 \
    cache:acme:user:alice '{"status":"active","roles":["sales"]}' \
    cache:acme:role:sales '["crm.*"]' >/dev/null || exit 1

cat >"$dir/tenantcached.yaml" <<EOT
log_level: debug
threads: 2
listen:
  socket: "$dir/tenantcached.sock"
redis:
  unix: "$dir/redis.sock"
  channels: [tenantcached:invalidate]
  l2: true
  key_format: "cache:{tenant}:{kind}:{key}"
  reconnect_min: 50ms
  reconnect_max: 500ms
  max_stale: 2s
EOT
start_daemon "$dir" || exit 1

export TC_SOCKET="$dir/tenantcached.sock"
export TC_REDIS="$dir/redis.sock"
export TC_RESTART="'$here/run.sh' --restart '$dir'"
export NODE_PATH="$here/node/node_modules"

passed=0; failed=0
# run LIB COMMAND...: a driver that could not run at all (a missing library)
# counts as one failure.
run() {
    lib=$1; shift
    output=$("$@" 2>&1); status=$?
    printf '%s\n' "$output"
    ok=$(printf '%s\n' "$output" | grep -c '^ok ')
    bad=$(printf '%s\n' "$output" | grep -c '^FAIL ')
    if [ "$status" -ne 0 ] && [ "$bad" -eq 0 ]; then
        echo "FAIL $lib: exited with $status"; bad=1
    fi
    passed=$((passed + ok)); failed=$((failed + bad))
}

if [ ! -d "$here/node/node_modules/ioredis" ]; then
    (cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error) || echo "clients: npm ci failed"
fi
run python /usr/bin/python3 "$here/client_python.py"
run php php "$here/client_php.php"
run ruby ruby "$here/client_ruby.rb"
run node-redis4 node "$here/client_node_redis.js" redis4
run node-redis node "$here/client_node_redis.js" redis
run ioredis node "$here/client_ioredis.js"
# Client-side caching (CLIENT TRACKING): node-redis's clientSideCache.
run node-redis-csc node "$here/client_node_csc.js"

# Interactive redis-cli (in a tmux pane): CA<Tab> completes to CAN with its
# argument hint, and HELP CAN shows the summary from COMMAND DOCS.
# Keys typed before redis-cli puts the terminal in raw mode are flushed, so
# each input is typed again (after ^U) until the pane shows what it should.
# type_until KEYS... -- TEXT: up to 5 tries, 1 s each.
pane_has() {
    tmux -L "$tmux_socket" capture-pane -p -t cli | grep -qF -- "$1"
}
type_until() {
    text=$1; shift
    try=0
    while [ $try -lt 5 ]; do
        tmux -L "$tmux_socket" send-keys -t cli C-u "$@"
        i=0
        while [ $i -lt 20 ]; do
            pane_has "$text" && return 0
            i=$((i + 1)); sleep 0.05
        done
        try=$((try + 1))
    done
    echo "FAIL redis-cli: no '$text' in the pane:"; tmux -L "$tmux_socket" capture-pane -p -t cli
    return 1
}
redis_cli() {
    tmux -L "$tmux_socket" new-session -d -s cli -x 200 -y 40 "redis-cli -s '$TC_SOCKET'" || return 1
    type_until "> CAN tenant user permission" 'CA' Tab || return 1
    echo "ok redis-cli completion"
    type_until "summary: 1 if the user is active and a role of theirs grants the permission" \
        'HELP CAN' Enter || return 1
    pane_has "group: tenantcached" || { echo "FAIL redis-cli: no group in HELP CAN"; return 1; }
    echo "ok redis-cli help"
}
tmux_socket="tenantcached-clients-$$"
run redis-cli redis_cli
tmux -L "$tmux_socket" kill-server 2>/dev/null

echo "clients: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
