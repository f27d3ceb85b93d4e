#!/usr/bin/env bash
# Builds the theater CLI and the hello, dice, notes and http-server actors, runs them on the
# default data dir ($THEATER_HOME, else ~/.theater), then shows, verifies (with the node's key)
# and replays their event chains. The HTTP server is curled on 127.0.0.1:8080, then stopped.
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

echo "==> theater build actors/http-server"
$theater build actors/http-server
echo "==> theater run actors/http-server/manifest.toml (an HTTP server on 127.0.0.1:8080), in the background"
$theater run actors/http-server/manifest.toml > /tmp/theater-demo.log 2>&1 &
server=$!
for _ in $(seq 1 200); do
    if ! kill -0 "$server" 2> /dev/null; then
        cat /tmp/theater-demo.log
        echo "the server exited (is port 8080 taken? set another in actors/http-server/port.txt)" >&2
        exit 1
    fi
    curl -s -o /dev/null http://127.0.0.1:8080/hello/demo && break
    sleep 0.1
done
echo "==> curl http://127.0.0.1:8080/hello/demo"
curl -s http://127.0.0.1:8080/hello/demo
echo "==> curl http://127.0.0.1:8080/old/rewritten (middleware rewrites it to /hello/rewritten)"
curl -s http://127.0.0.1:8080/old/rewritten
echo "==> curl http://127.0.0.1:8080/admin (middleware refuses it without a token)"
curl -s -o /dev/null -w "%{http_code}\n" http://127.0.0.1:8080/admin
echo "==> curl http://127.0.0.1:8080/count"
curl -s http://127.0.0.1:8080/count
echo "==> SIGTERM: the run shuts the server down cleanly"
kill -TERM "$server"
wait "$server"
cat /tmp/theater-demo.log
id=$(sed -n 's/^theater: root actor http-server \([0-9a-f-]*\).*/\1/p' /tmp/theater-demo.log | head -1)
echo "==> theater replay $id (every request comes from the chain; nothing listens)"
$theater replay "$id"
