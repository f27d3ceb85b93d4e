#!/usr/bin/env bash
# Runs every test. Installs the guest toolchain first if the machine lacks one; the guest actors
# under actors/ are then built from source by crates/test-actors' build script.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-guest-toolchain.sh
cargo test --workspace
