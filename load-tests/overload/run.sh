#!/usr/bin/env bash
# Accepted p99 under 4x load, side by side for several server settings:
#   load-tests/overload/run.sh [ROUNDS] [SETTINGS...]
# Each SETTINGS is one quoted string of score-server flags (default: the
# docs/deploying.md sizing's byte budget, 4 x workers x body, then 2 x). Per round
# and setting: a fresh release server (MLP, W workers), loadgen with
# 4,096-row requests at concurrency 2W (about the unloaded depth: one
# request scored and one arriving per worker) and 8W (4x), closed loop, no
# backoff (a refusal is resent at once), 1 s warm-up + 5 s. Prints rows/s,
# p99 and the status counts of each run, then the p99 ratio (8W / 2W) per
# setting, median over the rounds.
#
# Cores: by default server and loadgen share the machine's cores and W = 2.
# SERVER_CPUS=0 LOADGEN_CPUS=1 pins them apart with taskset (W = the number
# of server CPUs), so that the load generator's own work (a refused body
# resent at once) does not take the server's cores: the overload is then
# the server's alone to handle.
set -euo pipefail
cd "$(dirname "$0")/../.."
source load-tests/lib/lib.sh
rounds=${1:-2}
shift || true
workers=2
server_pin=() loadgen_pin=()
if [ -n "${SERVER_CPUS:-}" ]; then
  workers=$(python3 -c 'import sys; print(sum(len(range(int(a), int(b or a) + 1)) for a, _, b in (p.partition("-") for p in sys.argv[1].split(","))))' "$SERVER_CPUS")
  server_pin=(taskset -c "$SERVER_CPUS")
fi
if [ -n "${LOADGEN_CPUS:-}" ]; then loadgen_pin=(taskset -c "$LOADGEN_CPUS"); fi
# A 4,096 x 100 float32 body is 1.5625 MiB: n x W bodies, rounded up to MiB
# (13 and 7 MiB for two workers).
budget() { echo "--max-inflight-bytes $(( ($1 * workers * 1600 + 1023) / 1024 ))MiB"; }
if [ $# -eq 0 ]; then set -- "$(budget 4)" "$(budget 2)"; fi
unloaded=$((2 * workers)) loaded=$((8 * workers))
cargo build --release -q -p score-server -p loadgen
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
out=$(mktemp /tmp/overload.XXXXXX)
echo "workers $workers, concurrency $unloaded (unloaded) and $loaded (4x)${SERVER_CPUS:+, server on CPUs $SERVER_CPUS}${LOADGEN_CPUS:+, loadgen on CPUs $LOADGEN_CPUS}"
for round in $(seq "$rounds"); do
  for setting in "$@"; do
    # shellcheck disable=SC2086 # the setting is a list of flags
    start_bench_server "${server_pin[@]}" "$target/release/score-server" --workers "$workers" \
      --model models/mlp.onnx $setting
    for c in "$unloaded" "$loaded"; do
      "${loadgen_pin[@]}" "$target/release/loadgen" --json --warmup 1s --duration 5s \
        --url "$SERVER_URL/score" --rows 4096 --concurrency "$c" --tag "setting=$setting" \
        --tag "round=$round" --tag "load=$([ "$c" = "$unloaded" ] && echo 1x || echo 4x)" >>"$out"
      tail -1 "$out" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print("  %-55s c=%-2d %9.0f rows/s  p99 %6.1f ms  %s" % (r["setting"], r["concurrency"],
      r["rows_per_s"], r["p99_ms"], r["statuses"]))'
    done
    kill "$SERVER_PID"; wait "$SERVER_PID" 2>/dev/null || true
  done
done
python3 - "$out" "$unloaded" "$loaded" <<'EOF'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
lo, hi = sys.argv[2], sys.argv[3]
print(f"\n| setting | c={lo} rows/s | c={lo} p99 ms | c={hi} rows/s | c={hi} p99 ms | c={hi} 429s | p99 ratio |")
print("|---|---:|---:|---:|---:|---:|---:|")
for setting in dict.fromkeys(r["setting"] for r in runs):
    def pick(load):
        return [r for r in runs if r["setting"] == setting and r["load"] == load]
    def med(load, key):
        return statistics.median(r[key] for r in pick(load))
    refused = statistics.median(r["statuses"].get("429", 0) for r in pick("4x"))
    print(f"| `{setting}` | {med('1x', 'rows_per_s'):,.0f} | {med('1x', 'p99_ms'):.1f} | "
          f"{med('4x', 'rows_per_s'):,.0f} | {med('4x', 'p99_ms'):.1f} | {refused:,.0f} | "
          f"{med('4x', 'p99_ms') / med('1x', 'p99_ms'):.1f}x |")
EOF
rm -f "$out"
