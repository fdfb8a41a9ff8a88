#!/bin/sh
# Runs each test binary given, prints its Check summary, and ends with one
# "N passed, N failed" line. Exits non-zero if any test binary failed.
# TEST_WRAPPER, when set, is a command (split on spaces) that runs each test
# binary, e.g. "valgrind --error-exitcode=1" for make valgrind.
set -u
build="$1"; shift
export TENANTCACHED_BIN="${TENANTCACHED_BIN:-$build/tenantcached}"
export CK_DEFAULT_TIMEOUT="${CK_DEFAULT_TIMEOUT:-60}"
passed=0; failed=0; failed_names=""
for test in "$@"; do
    name=$(basename "$test")
    # shellcheck disable=SC2086 # the wrapper is a command and its options
    output=$(${TEST_WRAPPER:-} "$test" 2>&1); status=$?
    summary=$(printf '%s\n' "$output" | grep -E '^[0-9]+%: Checks: ' | tail -n 1)
    checks=$(printf '%s\n' "$summary" | sed -n 's/.*Checks: \([0-9]*\),.*/\1/p')
    fails=$(printf '%s\n' "$summary" | sed -n 's/.*Failures: \([0-9]*\),.*/\1/p')
    errors=$(printf '%s\n' "$summary" | sed -n 's/.*Errors: \([0-9]*\).*/\1/p')
    checks=${checks:-0}; fails=${fails:-0}; errors=${errors:-0}
    if [ "$status" -ne 0 ] || [ "$checks" -eq 0 ]; then
        printf '%s\n' "$output"
        [ "$fails" -eq 0 ] && [ "$errors" -eq 0 ] && errors=1
        failed_names="$failed_names $name"
    fi
    printf '%-28s %s\n' "$name" "${summary:-no summary (exit $status)}"
    passed=$((passed + checks - fails - errors))
    failed=$((failed + fails + errors))
done
echo
[ -n "$failed_names" ] && echo "failing:$failed_names"
echo "tests: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
