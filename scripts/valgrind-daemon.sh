#!/bin/sh
# valgrind-daemon.sh - the TENANTCACHED_BIN of `make valgrind`: runs the daemon
# binary (build/tenantcached, or $VALGRIND_DAEMON_BIN) under valgrind's
# memcheck with the arguments given. exec keeps the pid, so the harness's
# signals (SIGTERM, SIGHUP, SIGSTOP) and PR_SET_PDEATHSIG reach the daemon.
# A memory error, or a definite leak at exit, makes the exit status 99;
# valgrind's report goes to stderr, which the harness keeps in daemon.log.
root=$(cd "$(dirname "$0")/.." && pwd)
exec valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
    --show-leak-kinds=definite --num-callers=30 \
    "${VALGRIND_DAEMON_BIN:-$root/build/tenantcached}" "$@"
