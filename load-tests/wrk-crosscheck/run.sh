#!/usr/bin/env bash
# Cross-checks loadgen against wrk: the same release score-server (2 workers,
# demo logreg), the same request bytes, loadgen and wrk taking turns, two
# threads each. Prints one line per turn.
#
#   load-tests/wrk-crosscheck/run.sh [SECONDS]     (default 8; needs wrk: apt-get install wrk)
set -euo pipefail
cd "$(dirname "$0")/../.."
source load-tests/lib/lib.sh
secs=${1:-8}
target=${CARGO_TARGET_DIR:-target}
cargo build --release -q -p score-server -p loadgen
bin=$target/release
command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)" >&2; exit 1; }
tmp=$(mktemp -d)
port=$(free_port)
"$bin/score-server" --listen "127.0.0.1:$port" --workers 2 --model logreg=models/logreg.onnx 2>"$tmp/server.log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$tmp"' EXIT
wait_ready "http://127.0.0.1:$port/readyz"
url=http://127.0.0.1:$port/score
# The body loadgen sends (same generator, same seed), for wrk.
for rows in 1000 10; do
  python3 - "$rows" "$tmp/body-$rows.f32" <<'EOF'
import random, struct, sys
rows, path = int(sys.argv[1]), sys.argv[2]
open(path, "wb").write(struct.pack("<%df" % (rows * 100), *[random.uniform(-2, 2) for _ in range(rows * 100)]))
EOF
done
printf 'round rows c tool requests/s p50_ms p99_ms non-200\n'
for round in 1 2; do
  for rows in 1000 10; do
    for c in 4 16; do
      "$bin/loadgen" --url "$url" --rows "$rows" --concurrency "$c" --duration "${secs}s" --warmup 1s --json |
        python3 -c 'import json, sys; r = json.load(sys.stdin)
print(sys.argv[1], sys.argv[2], sys.argv[3], "loadgen", round(r["requests_per_s"]), "%.2f" % r["p50_ms"], "%.2f" % r["p99_ms"],
      sum(n for s, n in r["statuses"].items() if s != "200") + r["transport_errors"])' "$round" "$rows" "$c"
      BODY=$tmp/body-$rows.f32 wrk -t2 -c"$c" -d"${secs}s" -s load-tests/lib/put.lua "$url" |
        sed -nE 's/RESULT requests=([0-9]+) duration_us=([0-9]+) non2xx=([0-9]+) socket_errors=([0-9]+) p50_us=([0-9]+) p99_us=([0-9]+)/\1 \2 \3 \4 \5 \6/p' |
        while read -r n us non2xx errors p50 p99; do
          echo "$round $rows $c wrk $((n * 1000000 / us)) $(awk "BEGIN {printf \"%.2f %.2f\", $p50 / 1000, $p99 / 1000}") $((non2xx + errors))"
        done
    done
  done
done
