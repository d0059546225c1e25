#!/usr/bin/env bash
# Adaptive concurrency against the best fixed in_flight, side by side in one
# run: the same stream-client job (ROWS generated rows of the MLP fixture,
# 1,000 rows a request) with `in_flight` fixed at 1, 2, 4, 8, 16 and 32, and
# adaptive (ceiling 32, the default), in each scenario:
#   one       one server, 2 workers
#   three     three servers with 1, 2 and 4 workers
#   halves    one server, 2 workers on cores 0-1, re-pinned to core 0 alone
#             HALVE_AFTER seconds into each run (its capacity halves)
#   rtt2      one server behind load-tests' latency-proxy, 2 ms round trip
#   rtt10     the same, 10 ms
# Writes load-tests/adaptive/results/adaptive.jsonl (one line a run) and
# adaptive-limits.jsonl (each adaptive run's limits every 25 ms); plot and
# table: python3 load-tests/adaptive/adaptive_report.py.
# ROUNDS (default 3) repeats each scenario's sweep, modes interleaved and
# rotated (each round starts one mode later); the report takes medians.
#   load-tests/adaptive/run.sh [ROWS]          (default 1,000,000)
#   ONLY=rtt2,rtt10 load-tests/adaptive/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source load-tests/lib/lib.sh
rows=${1:-1000000}
halve_after=${HALVE_AFTER:-2}
rounds=${ROUNDS:-3}
only=${ONLY:-one,three,halves,rtt2,rtt10}
cargo build --release -q -p score-server -p loadgen --bins
cargo build --release -q -p stream-client --example concurrency
bin=target/release
results=load-tests/adaptive/results
runs=$results/adaptive.jsonl
limits=$results/adaptive-limits.jsonl
: >"$runs"
: >"$limits"
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT

# start WORKERS [CPUS]: a score-server serving the MLP; prints its URL.
start() {
  local log
  log=$(mktemp /tmp/adaptive-server.XXXXXX)
  taskset -c "${2:-0,1}" $bin/score-server --model "mlp=models/mlp.onnx" --workers "$1" \
    --listen 127.0.0.1:0 >"$log" 2>&1 &
  pids+=($!)
  LAST_PID=$!
  for _ in $(seq 300); do grep -q "listening" "$log" && break; sleep 0.1; done
  LAST_URL=http://$(sed -n 's/.*listening address=\([0-9.:]*\).*/\1/p' "$log" | head -1)
  rm -f "$log"
}

# proxy URL RTT: a latency-proxy in front of URL; sets LAST_URL to it.
proxy() {
  local out
  out=$(mktemp /tmp/adaptive-proxy.XXXXXX)
  $bin/latency-proxy --upstream "${1#http://}" --rtt "$2" >"$out" &
  pids+=($!)
  for _ in $(seq 100); do grep -q "listening" "$out" && break; sleep 0.05; done
  LAST_URL=http://$(sed -n 's/listening on //p' "$out")
  rm -f "$out"
}

# job SCENARIO URLS MODE: one run, its line appended to $runs.
job() {
  local scenario=$1 urls=$2 mode=$3 samples
  samples=$(mktemp /tmp/adaptive-samples.XXXXXX)
  if [ "$scenario" = halves ]; then
    # Re-pin every thread of the server to core 0 mid-run, back after it.
    (sleep "$halve_after"; taskset -a -p -c 0 "$HALVES_PID" >/dev/null) &
    local halver=$!
  fi
  local line
  line=$($bin/examples/concurrency "$urls" "$rows" 1000 100 "$mode" "$samples")
  if [ "$scenario" = halves ]; then
    wait "$halver" || true
    taskset -a -p -c 0,1 "$HALVES_PID" >/dev/null
  fi
  echo "$line" | python3 -c "
import json, sys
run = json.loads(sys.stdin.read()); run['scenario'] = '$scenario'; run['round'] = $ROUND
print(json.dumps(run))" >>"$runs"
  if [ "${mode%%:*}" = adaptive ]; then
    python3 -c "
import json, sys
for line in open('$samples'):
    s = json.loads(line); s['scenario'] = '$scenario'; s['round'] = $ROUND; print(json.dumps(s))" >>"$limits"
  fi
  rm -f "$samples"
  tail -n 1 "$runs" | python3 -c "
import json, sys
r = json.loads(sys.stdin.read())
print(f\"{r['scenario']:7} {r['mode']:8} {r['in_flight']:3}: {r['rows_per_s']:>10,.0f} rows/s, \"
      f\"429s {r['retries'].get('429', 0)}, limits {r['limits']}\")"
}

sweep() {
  local scenario=$1 urls=$2
  # Warm-up: connections, allocator, caches.
  $bin/examples/concurrency "$urls" 200000 1000 100 fixed:4 >/dev/null
  local modes=(fixed:1 fixed:2 fixed:4 fixed:8 fixed:16 fixed:32 adaptive:32) i
  for ROUND in $(seq "$rounds"); do
    # Each round starts one mode later, so no mode always runs first or
    # last (after the deepest queue, or on a server just warmed).
    for i in "${!modes[@]}"; do
      job "$scenario" "$urls" "${modes[$(((i + ROUND - 1) % ${#modes[@]}))]}"
    done
  done
}

echo "$(nproc) cores, $rows rows a run, MLP fixture, 1,000 rows a request"
for scenario in ${only//,/ }; do
  case $scenario in
    one)
      start 2; sweep one "$LAST_URL" ;;
    three)
      start 1; a=$LAST_URL; start 2; b=$LAST_URL; start 4; c=$LAST_URL
      sweep three "$a,$b,$c" ;;
    halves)
      start 2 0,1; HALVES_PID=$LAST_PID; sweep halves "$LAST_URL" ;;
    rtt2 | rtt10)
      start 2; proxy "$LAST_URL" "${scenario#rtt}ms"; sweep "$scenario" "$LAST_URL" ;;
    *) echo "unknown scenario $scenario" >&2; exit 2 ;;
  esac
  kill "${pids[@]}" 2>/dev/null || true
  pids=()
done
echo "runs in $runs, limits in $limits; table and plot: python3 load-tests/adaptive/adaptive_report.py"
