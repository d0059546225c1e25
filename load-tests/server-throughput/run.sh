#!/usr/bin/env bash
# Served throughput of score-server against in-process tract, side by side in
# one run. For each model: in-process rows/s with the server's thread count,
# then wrk against the server at several concurrencies, 1,000 rows a request.
#   load-tests/server-throughput/run.sh [SECONDS]     (default 10 s per point)
# Needs wrk (apt-get install -y wrk; installed here if missing).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-10}
rows=${ROWS:-1000}
workers=${WORKERS:-2}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release -q -p score-server --bins --examples
tmp=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$tmp"' EXIT

echo "| model | mode | concurrency | requests/s | rows/s | p50 ms | p99 ms | non-2xx | vs in-process |"
echo "|---|---|---|---|---|---|---|---|---|"
for model in ${MODELS:-logreg mlp}; do
  cols=100
  python3 -c "import struct,random; random.seed(1); open('$tmp/body.f32','wb').write(struct.pack('<%df' % ($rows*$cols), *[random.uniform(-2,2) for _ in range($rows*$cols)]))"
  inproc=$(./target/release/examples/inprocess "models/$model.onnx" "$rows" "$workers" "$secs" | sed -E 's/.*: ([0-9]+) rows\/s.*/\1/')
  echo "| $model | in-process tract | $workers threads | $((inproc / rows)) | $inproc | | | | 1.00 |"
  port=$((18500 + RANDOM % 1000))
  ./target/release/score-server --listen "127.0.0.1:$port" --workers "$workers" --model "models/$model.onnx" 2>"$tmp/server.log" &
  pid=$!
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  for c in ${CONCURRENCY:-1 4 16}; do
    t=$(( c < 2 ? 1 : 2 ))
    line=$(BODY="$tmp/body.f32" wrk -t"$t" -c"$c" -d"${secs}s" -s load-tests/lib/put.lua "http://127.0.0.1:$port/score" | grep '^RESULT')
    eval "${line#RESULT }"
    rps=$(python3 -c "print(round($requests / ($duration_us / 1e6)))")
    rowsps=$((rps * rows))
    ratio=$(python3 -c "print(f'{$rowsps / $inproc:.2f}')")
    echo "| $model | served (wrk) | $c | $rps | $rowsps | $(python3 -c "print($p50_us/1000)") | $(python3 -c "print($p99_us/1000)") | $non2xx | $ratio |"
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
