#!/usr/bin/env bash
# A/B of score-server builds: each binary in turn serves the same closed-loop
# load; prints rows/s, latency and the server's CPU per request (utime +
# stime from /proc/PID/stat, all threads). Rounds alternate the binaries so
# the machine's drift hits both alike. How RESULTS.md's "Per-request cost"
# figures were taken.
#
#   load-tests/ab/run.sh BIN_A BIN_B [...]
#   env: ROWS (10), C (16), MODEL (logreg|mlp, default logreg), SECS (4),
#        ROUNDS (3), WORKERS (2)
#
# Keep a copy of each build (cp target/release/score-server /tmp/ss-a) before
# rebuilding the next. Needs a release loadgen: cargo build --release -p loadgen.
set -euo pipefail
cd "$(dirname "$0")/../.."
source load-tests/lib/lib.sh
[ $# -ge 1 ] || { sed -n '2,13p' "$0" >&2; exit 2; }
loadgen=${CARGO_TARGET_DIR:-target}/release/loadgen
rows=${ROWS:-10} c=${C:-16} model=${MODEL:-logreg} secs=${SECS:-4}
ticks=$(getconf CLK_TCK)
port=$(free_port)
for round in $(seq "${ROUNDS:-3}"); do
  for server in "$@"; do
    "$server" --listen "127.0.0.1:$port" --workers "${WORKERS:-2}" \
      --model logreg=models/logreg.onnx --model mlp=models/mlp.onnx 2>/dev/null &
    pid=$!
    wait_ready "http://127.0.0.1:$port/readyz"
    # Warm up separately so the CPU window holds only measured requests.
    "$loadgen" --url "http://127.0.0.1:$port/models/$model/score" --rows "$rows" --concurrency "$c" \
      --duration 1s --warmup 0s >/dev/null
    before=$(cpu_ticks "$pid")
    report=$("$loadgen" --url "http://127.0.0.1:$port/models/$model/score" --rows "$rows" \
      --concurrency "$c" --duration "${secs}s" --warmup 0s --json)
    after=$(cpu_ticks "$pid")
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    echo "$report" | python3 -c 'import json, sys
r = json.load(sys.stdin)
cpu_s = (int(sys.argv[3]) - int(sys.argv[2])) / int(sys.argv[4])
print("round %s %s: %.0f rows/s, p50 %.2f ms, p99 %.2f ms, server CPU %.1f us/request"
      % (sys.argv[1], sys.argv[5], r["rows_per_s"], r["p50_ms"], r["p99_ms"], cpu_s * 1e6 / max(r["ok"], 1)))' \
      "$round" "$before" "$after" "$ticks" "$server"
  done
done
