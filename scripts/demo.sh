#!/usr/bin/env bash
# Builds the theater CLI and the hello actor, runs it on the default data dir
# ($THEATER_HOME, else ~/.theater), then shows and verifies its event chain.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-guest-toolchain.sh
echo "==> building the theater CLI (the first build compiles wasmtime: several minutes)"
cargo build -p theater-cli
theater=target/debug/theater

echo "==> theater build actors/hello"
$theater build actors/hello
echo "==> theater run actors/hello/manifest.toml"
$theater run actors/hello/manifest.toml 2>&1 | tee /tmp/theater-demo.log
id=$(sed -n 's/^theater: root actor hello \([0-9a-f-]*\).*/\1/p' /tmp/theater-demo.log | head -1)
echo "==> theater events $id"
$theater events "$id"
echo "==> theater verify $id"
$theater verify "$id"
