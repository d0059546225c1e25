#!/usr/bin/env bash
# The Open Inference Protocol against the server's own binary PUT /score,
# same model (the demo: 100-feature logistic regression), same request
# sizes, one release server, side by side in rotated rounds:
# 1. the server's side: loadgen (one Rust generator, 4 connections) sending
#    `--format binary` and `--format v2-binary` in turn: requests/s and the
#    server's CPU a request, the client's cost out of the picture;
# 2. the clients as users run them (bench.py): tritonclient.http with
#    binary and with JSON tensors against PUT /score sent with
#    geventhttpclient (the HTTP library tritonclient uses), 4 threads.
#   load-tests/standard-clients/run.sh [--sizes 10,1000,4096] [--threads 4] [--seconds 3] [--rounds 3]
# The clients share the machine's cores with the server: the ratios, not
# the absolute rows/s, are the result.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/python-env.sh
cargo build --release -q -p score-server -p loadgen
source load-tests/lib/lib.sh
target=$(cargo metadata --format-version 1 --no-deps |
  "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
start_bench_server "$target/release/score-server" --model "demo=models/logreg.onnx"
out=load-tests/standard-clients/results
mkdir -p "$out"
rounds=3 sizes=10,1000,4096
args=("$@")
while [ $# -gt 0 ]; do
  case $1 in --rounds) rounds=$2; shift ;; --sizes) sizes=$2; shift ;; esac
  shift
done
hz=$(getconf CLK_TCK)
: >"$out/loadgen.jsonl"
for round in $(seq "$rounds"); do
  formats=(binary v2-binary)
  [ $((round % 2)) = 0 ] && formats=(v2-binary binary)
  for rows in ${sizes//,/ }; do
    for format in "${formats[@]}"; do
      before=$(cpu_ticks "$SERVER_PID")
      report=$("$target/release/loadgen" --url "$SERVER_URL" --model demo --columns 100 \
        --rows "$rows" --concurrency 4 --duration 3s --warmup 1s --format "$format" --json \
        --tag "round=$round" --tag "format=$format")
      ticks=$(($(cpu_ticks "$SERVER_PID") - before))
      echo "$report" | "$VENV/bin/python" -c "
import json, sys
d = json.loads(sys.stdin.read())
d['server_cpu_us'] = 1e6 * $ticks / $hz / max(d['statuses'].get('200', 0), 1)
print(json.dumps(d))" | tee -a "$out/loadgen.jsonl"
    done
  done
done
"$VENV/bin/python" - "$out/loadgen.jsonl" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
print("\nloadgen, median over rounds (v2-binary / binary):")
for rows in sorted({r["rows_per_request"] for r in runs}):
    med = lambda f, k: statistics.median(r[k] for r in runs if r["rows_per_request"] == rows and r["format"] == f)
    rps = {f: med(f, "requests_per_s") for f in ("binary", "v2-binary")}
    cpu = {f: med(f, "server_cpu_us") for f in ("binary", "v2-binary")}
    print(f"rows={rows:>5}: binary {rps['binary']:>8,.0f} req/s, v2-binary {rps['v2-binary']:>8,.0f} "
          f"req/s ({rps['v2-binary'] / rps['binary']:.2f}x); server CPU a request "
          f"{cpu['binary']:.0f} / {cpu['v2-binary']:.0f} us")
PY
"$VENV/bin/python" load-tests/standard-clients/bench.py --url "$SERVER_URL" \
  --server-pid "$SERVER_PID" "${args[@]}" | tee "$out/clients.txt"
