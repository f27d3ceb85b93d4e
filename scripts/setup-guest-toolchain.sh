#!/usr/bin/env bash
# Makes sure Rust can compile guest actors for wasm32-unknown-unknown.
# Uses rustup's target when it can; otherwise installs Debian's rustc-web + rust-web-src, which
# `theater build` uses with -Z build-std (see crates/theater-toolchain). Safe to run repeatedly.
set -euo pipefail

target=wasm32-unknown-unknown
libdir=$(rustc --print target-libdir --target "$target" 2>/dev/null || true)
if [ -n "$libdir" ] && ls "$libdir"/libcore-* >/dev/null 2>&1; then
    echo "guest toolchain: rustup's $target target"
    exit 0
fi
if rustup target add "$target" >/dev/null 2>&1; then
    echo "guest toolchain: installed rustup's $target target"
    exit 0
fi
if [ -x /usr/bin/rustc ] && [ -d /usr/lib/rustlib/src/rust/library ]; then
    echo "guest toolchain: Debian's rustc-web with build-std"
    exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    echo "guest toolchain: installing Debian's rustc-web rust-web-src"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends rustc-web rust-web-src >/dev/null
    exit 0
fi
echo "error: cannot set up a $target toolchain: run 'rustup target add $target'" >&2
exit 1
