#!/bin/sh
# Installs, from the distribution's packages, whatever tenantcached needs to build,
# test and run that is not there yet. Idempotent and quiet when nothing is missing.
set -eu

# systemd provides systemd-analyze and systemd-sysusers, groff-base provides
# groff: the ops suite checks the units and the man page with them, and fails
# (rather than skips) without them.
packages="build-essential pkg-config libhiredis-dev libevent-dev libjansson-dev libyaml-dev check redis-server redis-tools systemd groff-base"
missing=""
for package in $packages; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $package"
    fi
done
[ -z "$missing" ] && exit 0

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
