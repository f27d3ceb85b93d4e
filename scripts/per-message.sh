#!/usr/bin/env bash
# Instructions and allocations per message, figures that drift less than time: ping-pong
# requests and counting (the `per-message` workload of `theater bench`), recorded and not.
#
#   scripts/per-message.sh [THEATER-BINARY]      (default: target/release/theater, built here)
#
# This machine's virtual CPU has no instruction counter for `perf stat`, so each run is counted
# by `valgrind --tool=callgrind` (which counts instructions, the same total for the same binary
# and inputs) at two sizes; the difference divided by the difference in messages cancels the
# start-up (compiling the guest, spawning). Allocations are counted in the process, by the
# bench's counting allocator, over the measured loop only. Prints one JSON line per figure.
set -euo pipefail
cd "$(dirname "$0")/.."

theater=${1:-}
if [ -z "$theater" ]; then
    cargo build -q --release -p theater-cli >&2
    theater=target/release/theater
fi
command -v valgrind >/dev/null || {
    echo "error: valgrind is not installed (apt-get install valgrind)" >&2
    exit 1
}
small=${THEATER_PER_MESSAGE_SMALL:-2000}
large=${THEATER_PER_MESSAGE_LARGE:-12000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Prints the instructions callgrind counted for one run, and keeps its JSON lines.
count() {
    local pattern=$1 mode=$2 n=$3
    THEATER_BENCH_PATTERN=$pattern THEATER_BENCH_MESSAGES=$n \
        valgrind --tool=callgrind --callgrind-out-file="$work/out" \
        "$theater" bench --one per-message "$mode" >"$work/lines" 2>"$work/err" || {
        cat "$work/err" >&2
        exit 1
    }
    grep '^{' "$work/lines" >"$work/last-lines" || true
    grep -o 'Collected : [0-9]*' "$work/err" | grep -o '[0-9]*$'
}

for pattern in ping-pong counting; do
    for mode in unrecorded recorded; do
        a=$(count "$pattern" "$mode" "$small")
        b=$(count "$pattern" "$mode" "$large")
        allocs=$(grep -o '"allocations_per_message":[0-9.]*' "$work/last-lines" | cut -d: -f2)
        per=$(( (b - a) / (large - small) ))
        echo "{\"bench\":\"$pattern\",\"mode\":\"$mode\",\"instructions_per_message\":$per,\"allocations_per_message\":$allocs,\"instructions_small\":$a,\"instructions_large\":$b,\"small\":$small,\"large\":$large}"
    done
done
