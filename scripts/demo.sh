#!/usr/bin/env bash
# Builds score-server, serves the bundled demo model (a logistic regression
# over 100 features) on 127.0.0.1, scores the committed 4-row sample in binary
# and JSON, prints the scores and stops the server.
#   scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -p score-server
port=${PORT:-8099}
./target/release/score-server --listen "127.0.0.1:$port" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
echo "== GET /models/demo"
curl -fsS "http://127.0.0.1:$port/models/demo"; echo
echo "== PUT /score, binary: 4 rows x 100 float32 in, 4 rows x 2 probabilities out"
curl -fsS -X PUT -H 'Content-Type: application/octet-stream' \
  --data-binary @models/demo-sample.f32 "http://127.0.0.1:$port/score" \
  | python3 -c 'import struct,sys; d=sys.stdin.buffer.read(); v=struct.unpack("<%df" % (len(d)//4), d); [print("  row %d: %.6f %.6f" % (i, v[2*i], v[2*i+1])) for i in range(len(v)//2)]'
echo "== POST /score?output=label, JSON"
curl -fsS -X POST -H 'Content-Type: application/json' \
  --data @models/demo-sample.json "http://127.0.0.1:$port/score?output=label"; echo
