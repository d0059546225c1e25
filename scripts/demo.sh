#!/usr/bin/env bash
# The main job on the bundled demo model (a logistic regression over 100
# features), on this machine:
#   1. builds score-server and serves the demo model on 127.0.0.1;
#   2. scores the committed 4-row sample with curl, binary and JSON;
#   3. builds the stream_client wheel, installs it into the cached venv
#      (scripts/python-env.sh: pyspark, pyarrow, pandas) and runs the PySpark
#      job stream-client-py/examples/score_parquet.py on local[2]: it writes
#      a 100,000-row Parquet dataset (ROWS to change), scores it through the
#      server and writes id + score to Parquet, printing the rate and the
#      first rows;
#   4. stops the server.
#   scripts/demo.sh
# The first run builds in release (about 8 minutes on 2 cores) and fills
# the venv (about a minute); later runs take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
source load-tests/lib/lib.sh # free_port, wait_ready
rows=${ROWS:-100000}
cargo build --release -p score-server
port=${PORT:-$(free_port)}
work=$(mktemp -d)
./target/release/score-server --listen "127.0.0.1:$port" 2>"$work/server.log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
url=http://127.0.0.1:$port
wait_ready "$url/readyz" || { cat "$work/server.log" >&2; exit 1; }
echo "== GET /models/demo"
curl -fsS "$url/models/demo"; echo
echo "== PUT /score, binary: 4 rows x 100 float32 in, 4 rows x 2 probabilities out"
curl -fsS -X PUT -H 'Content-Type: application/octet-stream' \
  --data-binary @models/demo-sample.f32 "$url/score" \
  | python3 -c 'import struct,sys; d=sys.stdin.buffer.read(); v=struct.unpack("<%df" % (len(d)//4), d); [print("  row %d: %.6f %.6f" % (i, v[2*i], v[2*i+1])) for i in range(len(v)//2)]'
echo "== POST /score?output=label, JSON"
curl -fsS -X POST -H 'Content-Type: application/json' \
  --data @models/demo-sample.json "$url/score?output=label"; echo

echo "== the main job: a Parquet dataset scored from PySpark (local[2], $rows rows)"
source scripts/python-env.sh
"$VENV/bin/maturin" build --quiet --release --strip -m stream-client-py/Cargo.toml \
  -i "$VENV/bin/python" --out "$work/wheel"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps \
  "$work"/wheel/stream_client-*.whl
"$VENV/bin/python" stream-client-py/examples/score_parquet.py --master 'local[2]' \
  --url "$url" --demo "$rows" --input "$work/in" --output "$work/out" 2> >(grep -v WARN >&2)
