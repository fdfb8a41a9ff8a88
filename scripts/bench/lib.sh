# lib.sh - what the side benchmarks (bench_csc.sh, bench_continuity.sh,
# bench_threads.sh) share; sourced, not run.

# A temporary directory in $tmp, and every process whose pid is added to
# the pids array stopped, when the script exits however it exits.
bench_temporary() { # NAME
    tmp=$(mktemp -d "/tmp/tenantcached-bench-$1.XXXXXX")
    pids=()
    trap bench_cleanup EXIT INT TERM
}
bench_cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}

# Builds build/bench/TOOL from scripts/bench/TOOL.c unless it exists (load,
# origin).
bench_tool() { # TOOL
    local tool=$1 flags
    [ -x "build/bench/$tool" ] && return 0
    mkdir -p build/bench
    case $tool in
    origin) read -ra flags <<< "$(pkg-config --cflags --libs libevent)"
        cc -std=c11 -O2 -D_GNU_SOURCE -pthread -Iscripts/bench -o build/bench/origin \
            scripts/bench/origin.c scripts/bench/seed.c "${flags[@]}" ;;
    *) read -ra flags <<< "$(pkg-config --cflags --libs hiredis)"
        cc -std=c11 -O2 -D_GNU_SOURCE -pthread -Iscripts/bench -o "build/bench/$tool" \
            "scripts/bench/$tool.c" scripts/bench/common.c scripts/bench/seed.c "${flags[@]}" ;;
    esac
}

wait_until() { # TRIES COMMAND...: tried 10 ms apart
    local n=$1 i; shift
    for ((i = 0; i < n; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.01; done
    echo "bench: timed out waiting for: $*" >&2
    return 1
}

info_field() { # SOCKET FIELD
    redis-cli -s "$1" INFO everything 2>/dev/null | tr -d '\r' | awk -F: -v f="$2" '$1 == f { print $2 }'
}
