#!/bin/sh
# Installs, from the distribution's packages, whatever tenantcached needs to build,
# test and run that is not there yet, and the npm packages of the client
# compatibility suite (tests/clients/node, from its package-lock.json).
# Idempotent and quiet when nothing is missing.
set -eu

packages="build-essential pkg-config libhiredis-dev libevent-dev libjansson-dev libyaml-dev check redis-server redis-tools"
# systemd provides systemd-analyze and systemd-sysusers, groff-base provides
# groff: the ops suite checks the units and the man page with them, and fails
# (rather than skips) without them.
packages="$packages systemd groff-base"
# The client libraries of tests/clients/run.sh.
packages="$packages php-cli php-redis ruby ruby-redis python3-redis tmux"
# node and npm from the distribution, unless they are there already (a
# nodesource nodejs bundles npm and conflicts with Debian's npm package).
command -v node >/dev/null 2>&1 || packages="$packages nodejs"
command -v npm >/dev/null 2>&1 || packages="$packages npm"
node_dir="$(cd "$(dirname "$0")/.." && pwd)/tests/clients/node"
install_node_modules() {
    [ -d "$node_dir/node_modules/ioredis" ] && return 0
    echo "install-deps: npm ci in tests/clients/node"
    (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
}
missing=""
for package in $packages; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $package"
    fi
done
if [ -z "$missing" ]; then
    install_node_modules
    exit 0
fi

echo "install-deps: installing$missing"
sudo=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-deps: need root or sudo to install$missing" >&2; exit 1; }
    sudo="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
install_node_modules
