#!/usr/bin/env bash
# stream-client end to end against a real score-server (demo model, 100
# features, 2 workers) on this machine: rows/s at 1, 4 and 16 requests in
# flight, and the client's peak RSS for 1M and 10M rows (it must not grow
# with the input's length).
#   load-tests/client-throughput/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release -q -p score-server -p stream-client --bins --examples
port=$((18600 + RANDOM % 1000))
./target/release/score-server --listen "127.0.0.1:$port" --workers 2 2>/tmp/client-throughput-server.log &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
url="http://127.0.0.1:$port"
for k in 1 4 16; do
  ./target/release/examples/e2e "$url" 1000000 "$k" 4096
done
for n in 1000000 10000000; do
  ./target/release/examples/e2e "$url" "$n" 4 4096
done
