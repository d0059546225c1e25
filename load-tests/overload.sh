#!/usr/bin/env bash
# Accepted p99 under 4x load, side by side for several server settings:
#   load-tests/overload.sh [ROUNDS] [SETTINGS...]
# Each SETTINGS is one quoted string of score-server flags (default: the
# README sizing's byte budget, 4 x workers x body, then 2 x). Per round
# and setting: a fresh release server (MLP, 2 workers), loadgen with 4,096-row
# requests at concurrency 4 (about the unloaded depth of 2 workers) and 16
# (4x), closed loop, no backoff (a refusal is resent at once), 1 s warm-up +
# 5 s. Prints rows/s, p99 and the status counts of each run, then the p99
# ratio (c=16 / c=4) per setting, median over the rounds.
set -euo pipefail
cd "$(dirname "$0")/.."
source load-tests/lib.sh
rounds=${1:-2}
shift || true
if [ $# -eq 0 ]; then
  set -- "--max-inflight-bytes 13MiB" "--max-inflight-bytes 7MiB"
fi
cargo build --release -q -p score-server -p loadgen
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
out=$(mktemp /tmp/overload.XXXXXX)
for round in $(seq "$rounds"); do
  for setting in "$@"; do
    # shellcheck disable=SC2086 # the setting is a list of flags
    start_bench_server "$target/release/score-server" --workers 2 --model models/mlp.onnx $setting
    for c in 4 16; do
      "$target/release/loadgen" --json --warmup 1s --duration 5s --url "$SERVER_URL/score" \
        --rows 4096 --concurrency "$c" --tag "setting=$setting" --tag "round=$round" >>"$out"
      tail -1 "$out" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print("  %-55s c=%-2d %9.0f rows/s  p99 %6.1f ms  %s" % (r["setting"], r["concurrency"],
      r["rows_per_s"], r["p99_ms"], r["statuses"]))'
    done
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  done
done
python3 - "$out" <<'EOF'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
print("\n| setting | c=4 rows/s | c=4 p99 ms | c=16 rows/s | c=16 p99 ms | c=16 429s | p99 ratio |")
print("|---|---:|---:|---:|---:|---:|---:|")
for setting in dict.fromkeys(r["setting"] for r in runs):
    def med(c, key):
        return statistics.median(r[key] for r in runs if r["setting"] == setting and r["concurrency"] == c)
    refused = statistics.median(r["statuses"].get("429", 0) for r in runs
                                if r["setting"] == setting and r["concurrency"] == 16)
    print(f"| `{setting}` | {med(4, 'rows_per_s'):,.0f} | {med(4, 'p99_ms'):.1f} | "
          f"{med(16, 'rows_per_s'):,.0f} | {med(16, 'p99_ms'):.1f} | {refused:,.0f} | "
          f"{med(16, 'p99_ms') / med(4, 'p99_ms'):.1f}x |")
EOF
rm -f "$out"
