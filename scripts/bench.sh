#!/usr/bin/env bash
# Theater's whole benchmark suite from this checkout: `theater bench` (messaging, spawn, skynet,
# density and wake, each beside its Erlang/OTP twin when `escript` is installed) plus chain
# verification against the BLAKE3 floor, interleaved round by round.
#
#   scripts/bench.sh [ROUNDS] [-- THEATER-BENCH-ARGS...]     (default 3 rounds)
#
# For example `scripts/bench.sh 1 -- --full skynet`. Every figure is printed as one JSON line as
# it comes and kept in target/bench/results.jsonl; then one table of the medians and ratios.
set -euo pipefail
cd "$(dirname "$0")/.."

rounds=${1:-3}
shift || true
[ "${1:-}" = "--" ] && shift
out=target/bench/results.jsonl
mkdir -p target/bench
: >"$out"

scripts/setup-guest-toolchain.sh >&2
echo "building theater and the chain benchmark (release)..." >&2
cargo build -q --release -p theater-cli >&2
cargo bench -q -p theater-chain --bench chain --no-run >&2

# A failed run is said, and the rounds go on: the table of what did run still prints.
failed=0
for round in $(seq "$rounds"); do
    echo "round $round of $rounds" >&2
    target/release/theater bench --out "$out" "$@" | grep "^{" || failed=1
    THEATER_BENCH_EVENTS=${THEATER_BENCH_EVENTS:-60000} cargo bench -q -p theater-chain --bench chain \
        2>/dev/null | grep '^{' | tee -a "$out" || failed=1
done

echo >&2
target/release/theater bench --table "$out"
if [ "$failed" = 1 ]; then
    echo "some runs failed: see above" >&2
    exit 1
fi
