#!/usr/bin/env bash
# The same rows sent as the binary float32 matrix and as Arrow IPC streams
# (one list<float32> column; one float32 column per feature), side by side:
#   load-tests/arrow-vs-binary/run.sh [ROUNDS]
# One release server (logreg, 100 features, 2 workers), loadgen closed loop
# at concurrency 4, 1 s warm-up + 5 s a point, the formats taken in turn in
# each round, at 1,000 and 10 rows a request. Prints rows/s per point, then
# the median per format and its ratio to binary.
set -euo pipefail
cd "$(dirname "$0")/../.."
source load-tests/lib/lib.sh
rounds=${1:-3}
cargo build --release -q -p score-server -p loadgen
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
out=$(mktemp /tmp/arrow-vs-binary.XXXXXX)
start_bench_server "$target/release/score-server" --workers 2 --model models/logreg.onnx
for round in $(seq "$rounds"); do
  for rows in 1000 10; do
    for format in binary arrow-list arrow-columns; do
      "$target/release/loadgen" --json --warmup 1s --duration 5s --url "$SERVER_URL/score" \
        --rows "$rows" --concurrency 4 --format "$format" --tag "format=$format" \
        --tag "round=$round" >>"$out"
      tail -1 "$out" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print("  %-14s %5d rows  %10.0f rows/s  p99 %6.2f ms  %s" % (r["format"], r["rows_per_request"],
      r["rows_per_s"], r["p99_ms"], r["statuses"]))'
    done
  done
done
python3 - "$out" <<'EOF'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
print("\n| rows a request | format | rows/s (median) | p99 ms (median) | vs binary |")
print("|---:|---|---:|---:|---:|")
for rows in sorted({r["rows_per_request"] for r in runs}, reverse=True):
    def med(fmt, key):
        return statistics.median(r[key] for r in runs if r["rows_per_request"] == rows and r["format"] == fmt)
    base = med("binary", "rows_per_s")
    for fmt in ["binary", "arrow-list", "arrow-columns"]:
        print(f"| {rows:,} | {fmt} | {med(fmt, 'rows_per_s'):,.0f} | {med(fmt, 'p99_ms'):.2f} | "
              f"{med(fmt, 'rows_per_s') / base:.2f}x |")
EOF
rm -f "$out"
