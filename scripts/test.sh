#!/usr/bin/env bash
# Runs every test. Installs the guest toolchain first if the machine lacks one; the guest actors
# under actors/ are then built from source by crates/test-actors' build script. Then checks that
# no module of crates/theater/src uses one in a layer above its own, and that the handler
# families of crates/theater-handlers name no runtime module but theater::plugin
# (docs/architecture.md).
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-guest-toolchain.sh
cargo test --workspace
python3 scripts/module-graph.py --check >/dev/null || {
    python3 scripts/module-graph.py | sed -n '/^layer 1/,$p' >&2
    echo "error: scripts/module-graph.py --check failed: a layer or the plug-in API was crossed" >&2
    exit 1
}
