#!/usr/bin/env bash
# Builds the theater CLI and the hello, dice and notes actors, runs them on the default data dir
# ($THEATER_HOME, else ~/.theater), then shows, verifies (with the node's key) and replays
# their event chains.
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
echo "==> theater verify $id --key \$(theater key)"
$theater verify "$id" --key "$($theater key)"

echo "==> theater build actors/dice"
$theater build actors/dice
echo "==> theater run actors/dice/manifest.toml (random rolls, 20 ms apart)"
$theater run actors/dice/manifest.toml 2>&1 | tee /tmp/theater-demo.log
id=$(sed -n 's/^theater: root actor dice \([0-9a-f-]*\).*/\1/p' /tmp/theater-demo.log | head -1)
echo "==> theater replay $id (the same rolls, from the chain, without the pauses)"
$theater replay "$id"

echo "==> theater build actors/notes"
$theater build actors/notes
echo "==> theater run actors/notes/manifest.toml (a store, a file and one allowed tool: wc)"
$theater run actors/notes/manifest.toml 2>&1 | tee /tmp/theater-demo.log
id=$(sed -n 's/^theater: root actor notes \([0-9a-f-]*\).*/\1/p' /tmp/theater-demo.log | head -1)
echo "==> theater replay $id (store reads, file reads and wc's output come from the chain)"
$theater replay "$id"
