#!/bin/sh
# make run: starts a private redis-server and tenantcached with the example
# config (conf/tenantcached.yaml), its paths pointed into build/run/, in the
# foreground. Ctrl-C stops both.
set -eu
cd "$(dirname "$0")/.."
run_dir="$(pwd)/build/run"
mkdir -p "$run_dir"
redis_socket="$run_dir/redis.sock"
daemon_socket="$run_dir/tenantcached.sock"
config="$run_dir/tenantcached.yaml"

# The example config, with the socket and Redis pointed at our private ones.
sed -e "s|^\(  socket:\).*|\1 $daemon_socket|" \
    -e "s|^\(  unix:\).*|\1 \"$redis_socket\"|" \
    conf/tenantcached.yaml > "$config"
./tenantcached --check -c "$config" >/dev/null

redis-server --port 0 --unixsocket "$redis_socket" --unixsocketperm 700 --save "" \
    --appendonly no --dir "$run_dir" --logfile "$run_dir/redis.log" --daemonize yes \
    --pidfile "$run_dir/redis.pid"
cleanup() {
    [ -f "$run_dir/redis.pid" ] && kill "$(cat "$run_dir/redis.pid")" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

cat <<EOT
redis-server: $redis_socket
tenantcached: $daemon_socket  (config $config)
Try, from another terminal:
  redis-cli -s $redis_socket PUBLISH tenantcached:invalidate '{"op":"set","tenant":"acme","kind":"credit","key":"crm.leads.create","value":3.5}'
  redis-cli -s $daemon_socket CREDIT acme crm.leads.create
Ctrl-C stops both.
EOT
./tenantcached -c "$config" || true
