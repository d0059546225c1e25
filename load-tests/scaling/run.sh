#!/usr/bin/env bash
# Server throughput against the cores it is given: score-server
# pinned with taskset to cores 0..W-1 with --workers W, the load generator
# pinned to the other half of the machine, W = 1, 2, 4, ... up to half the
# cores. On a machine of 4 cores or fewer a last point runs the server on
# every core, sharing them with the generator (marked "shared": it measures
# the machine, not the server). Three loads, closed loop, 8·W connections
# (at least 16):
#   logreg-10     the logreg fixture, 10 rows a request (per-request path)
#   logreg-1000   the same, 1,000 rows a request (decode, answer, model)
#   mlp-1000      the MLP fixture, 1,000 rows a request (compute-bound)
# Each point runs SECONDS (default 3) after a 1 s warm-up. Appends one JSON
# line a point to load-tests/scaling/results/scaling.jsonl, labelled with the
# machine; table and plot: python3 load-tests/scaling/scaling_report.py.
#   load-tests/scaling/run.sh            MACHINE="16-core Xeon" to label the rows
# SERVER=path/to/score-server runs another build (built here by default),
# BUILD=label names it in the results (default: the commit). On a lent
# many-core machine (the device), carry target/release/score-server and
# target/release/loadgen and run NO_BUILD=1 MACHINE=... load-tests/scaling/run.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
source load-tests/lib/lib.sh
secs=${SECONDS_PER_POINT:-3}
cores=$(nproc)
half=$((cores / 2 > 0 ? cores / 2 : 1))
machine=${MACHINE:-"$cores cores, $(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)"}
# NO_BUILD=1: use target/release's score-server and loadgen as they are (a
# machine without a Rust toolchain, given the binaries; models/*.onnx are
# committed).
[ -n "${NO_BUILD:-}" ] || cargo build --release -q -p score-server -p loadgen --bins
bin=target/release
server=${SERVER:-$bin/score-server}
build=${BUILD:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
out=load-tests/scaling/results/scaling.jsonl
gen_cores="$half-$((cores - 1))"
[ "$cores" -gt 1 ] || gen_cores=0
gen_threads=$((cores - half > 0 ? cores - half : 1))

widths=()
for ((w = 1; w <= half; w *= 2)); do widths+=("$w"); done
[ "$cores" -gt 4 ] || [ "${widths[-1]}" = "$cores" ] || widths+=("$cores")

echo "$machine; server on cores 0..W-1, generator on $gen_cores ($gen_threads threads)"
for w in "${widths[@]}"; do
  shared=false
  [ "$w" -le "$half" ] || shared=true
  start_bench_server taskset -c "0-$((w - 1))" $server --workers "$w" \
    --model "logreg=models/logreg.onnx" --model "mlp=models/mlp.onnx"
  for load in logreg-10 logreg-1000 mlp-1000; do
    model=${load%-*} rows=${load#*-}
    conns=$((8 * w > 16 ? 8 * w : 16))
    LOADGEN_THREADS=$gen_threads taskset -c "$gen_cores" $bin/loadgen \
      --url "$SERVER_URL/models/$model/score" --columns 100 --rows "$rows" \
      --concurrency "$conns" --duration "${secs}s" --warmup 1s --json \
      --tag "machine=$machine" --tag "build=$build" --tag "workers=$w" --tag "load=$load" --tag "shared=$shared" \
      --tag "generator_cores=$gen_cores" | tee -a "$out" | python3 -c "
import json, sys
r = json.loads(sys.stdin.read())
print(f\"W={$w:<3} {'$load':12} {r['requests_per_s']:>10,.0f} req/s {r['rows_per_s']:>13,.0f} rows/s\"
      f\"  non-200 {sum(v for k, v in r['statuses'].items() if k != '200')}\")"
  done
  kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
done
echo "appended to $out; table and plot: python3 load-tests/scaling/scaling_report.py"
