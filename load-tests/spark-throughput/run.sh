#!/usr/bin/env bash
# The PySpark job three ways (stream_client, pandas UDF + broadcast model,
# plain `requests`) on this machine, side by side: see spark_bench.py.
#   [MODEL=mlp] load-tests/spark-throughput/run.sh [ROWS] [ROUNDS]
# MODEL: a fixture in models/ with 100 inputs and a `probabilities` output
# (logreg, the demo model: cheap; mlp: 100-256-256-10, compute-bound).
# ONLY: the variants, e.g. ONLY=a,cols,cols-arrow for the separate-columns
# layouts against the array column.
# MASTER (default local[2]) and WORKERS (server threads, default 2): e.g.
# MASTER='local[1]' WORKERS=1 gives Spark and the server a core each.
# Release builds of the server and the wheel; the server gets 2 workers and
# shares the 2 cores with Spark (as a co-located sidecar would).
# ARROW_BATCH: rows per Spark Arrow batch (default 10,000), so per request
# of the plain `requests` client.
# RTT (e.g. 2ms): Spark reaches the server through load-tests'
# latency-proxy, which adds that round-trip time to every request.
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${1:-1000000}
rounds=${2:-3}
model=models/${MODEL:-logreg}.onnx
source scripts/python-env.sh
cargo build --release -q -p score-server
source load-tests/lib/lib.sh
install_release_wheel
target=$TARGET

start_bench_server "$target/release/score-server" --workers "${WORKERS:-2}" --model "$model"
url=$SERVER_URL
if [ -n "${RTT:-}" ]; then
  cargo build --release -q -p loadgen --bin latency-proxy
  proxy_out=$(mktemp /tmp/spark-proxy.XXXXXX)
  "$target/release/latency-proxy" --upstream "${SERVER_URL#http://}" --rtt "$RTT" >"$proxy_out" &
  proxy_pid=$!
  trap 'kill $SERVER_PID $proxy_pid 2>/dev/null || true; rm -f "$SERVER_LOG" "$proxy_out"' EXIT
  for _ in $(seq 100); do grep -q listening "$proxy_out" && break; sleep 0.05; done
  url=http://$(sed -n 's/listening on //p' "$proxy_out")
  echo "through latency-proxy ($RTT round trip): $url"
fi
"$VENV/bin/python" load-tests/lib/spark_bench.py --url "$url" \
  --model "$model" --rows "$rows" --rounds "$rounds" --data "$target/bench-data" \
  --master "${MASTER:-local[2]}" --only "${ONLY:-trivial,a,b,b2,c}" \
  --arrow-batch "${ARROW_BATCH:-10000}"
