#!/usr/bin/env bash
# Theater's benchmark suite, side by side with Erlang/OTP when `escript` is installed.
#
#   scripts/bench.sh [ROUNDS]        (default 3 rounds; THEATER_BENCH_SCALE scales every count)
#
# Each round runs every workload once, Theater's and Erlang's interleaved, so that the machine's
# drift between runs (20-30% here) hits both alike. Every figure is printed as one JSON line as
# it comes, then a table of the medians with the ratios: recorded / unrecorded, and recorded /
# Erlang. The JSON lines are also kept in target/bench/results.jsonl.
#
# Workloads: spawn (idle actors), fork-join (spawn + stop), ping-pong (request and send),
# counting, thread ring, skynet (a tree of actors spawned by their parents), density (resident
# bytes per hibernated actor) and wake latency, the recording overhead (the recorded /
# unrecorded column), every-event group commit and chain verification against the BLAKE3 floor.
#
# Skynet and density are sized apart from the scale: THEATER_BENCH_SKYNET_LEVELS (default 5
# here, 111,111 actors; 6 is the full 1,111,111) and THEATER_BENCH_DENSITY_ACTORS (default
# 100000 here; the full run is 1000000).
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-3}
export THEATER_BENCH_SCALE=${THEATER_BENCH_SCALE:-0.3}
export THEATER_BENCH_ACTORS=${THEATER_BENCH_ACTORS:-10000}
export THEATER_BENCH_SKYNET_LEVELS=${THEATER_BENCH_SKYNET_LEVELS:-5}
export THEATER_BENCH_DENSITY_ACTORS=${THEATER_BENCH_DENSITY_ACTORS:-100000}
out=target/bench/results.jsonl
mkdir -p target/bench
: >"$out"

scripts/setup-guest-toolchain.sh >&2
echo "building the benchmarks (release)..." >&2
cargo bench -q -p theater --bench spawn --bench messaging --bench skynet --bench density --no-run >&2
cargo bench -q -p theater-chain --bench chain --no-run >&2

erlang=
if command -v escript >/dev/null; then
    erlang=1
else
    echo "escript not found: Erlang/OTP figures are skipped (apt-get install erlang-base)" >&2
fi

# Runs one benchmark command, keeping its JSON lines.
run() {
    "$@" 2>/dev/null | grep '^{' | tee -a "$out"
}

# Runs Theater's benchmark BENCH recorded then unrecorded, then its Erlang twin ESCRIPT if any.
theater_then_erlang() {
    local bench=$1 escript=${2:-}
    for mode in recorded unrecorded; do
        run cargo bench -q -p theater --bench "$bench" -- "$mode"
    done
    if [ -n "$erlang" ] && [ -n "$escript" ]; then
        run escript "bench/erlang/$escript"
    fi
}

for round in $(seq "$rounds"); do
    echo "round $round of $rounds" >&2
    theater_then_erlang messaging messaging.escript
    theater_then_erlang spawn spawn.escript
    theater_then_erlang skynet skynet.escript
    theater_then_erlang density
    THEATER_BENCH_EVENTS=$(python3 -c "print(max(1000, int(200000 * $THEATER_BENCH_SCALE)))") \
        run cargo bench -q -p theater-chain --bench chain
done

echo >&2
python3 scripts/bench_table.py "$out"
