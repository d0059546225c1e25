#!/usr/bin/env bash
# The artifacts as a user without Rust gets them (docs/install.md): builds
# dist/ (scripts/dist.sh), checks its checksums, then with no cargo or
# rustc on the PATH:
#   1. unpacks the binaries tarball and serves the demo model with its
#      score-server;
#   2. installs the wheel into a fresh venv (pyspark, pyarrow, pandas from
#      PyPI) and runs stream-client-py/examples/score_parquet.py through it
#      on local[2];
#   3. compiles the Scala example against dist/score-client.jar and runs it
#      under spark-submit --jars dist/score-client.jar on the same input;
#   4. scores the same input with the tarball's score-client (a Spark
#      dataset directory in, Parquet with the ids out);
# and checks every output: each id once, two probabilities a row that sum
# to 1, the three clients' scores equal.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/dist.sh
source scripts/python-env.sh # a JDK, and a Spark (spark-submit, the Scala compiler)
spark_home=$("$VENV/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
dist=$PWD/${DIST:-dist}
(cd "$dist" && sha256sum --quiet -c SHA256SUMS)

work=$(mktemp -d)
server_pid=
cleanup() {
  [ -z "$server_pid" ] || kill "$server_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# A PATH without Rust: the system's directories and the JDK's.
java_bin=$(dirname "$(readlink -f "$(command -v java)")")
clean_path=/usr/local/bin:/usr/bin:/bin:$java_bin
if env PATH="$clean_path" sh -c 'command -v cargo || command -v rustc' >/dev/null; then
  echo "cargo or rustc is on $clean_path: this test would not show that the artifacts need neither" >&2
  exit 1
fi
user() { env -u CARGO_HOME -u RUSTUP_HOME PATH="$clean_path" "$@"; }

echo "== 1. the binaries tarball" >&2
tar -xzf "$dist"/score-*-linux-x86_64.tar.gz -C "$work"
bin=$(echo "$work"/score-*/bin)
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
user "$bin/score-server" --listen "127.0.0.1:$port" --workers 2 --log-format json \
  2>"$work/server.log" &
server_pid=$!
url=http://127.0.0.1:$port
for _ in $(seq 100); do
  curl -fs "$url/readyz" >/dev/null && break
  sleep 0.2
done
curl -fs "$url/readyz" >/dev/null || { cat "$work/server.log" >&2; exit 1; }
# JSON logs: every line parses, and the start-up line carries the flags.
python3 -c '
import json, sys
lines = [json.loads(line) for line in open(sys.argv[1])]
assert any("--listen" in l.get("config", "") for l in lines), lines
' "$work/server.log"

echo "== 2. the wheel in a fresh venv, and a PySpark job" >&2
python3 -m venv "$work/venv"
pins=$(grep -E '^(pyspark|pyarrow|pandas|numpy)==' stream-client-py/requirements-test.txt)
# shellcheck disable=SC2086
user "$work/venv/bin/pip" install --quiet --disable-pip-version-check $pins "$dist"/stream_client-*.whl
rows=20000
user env PYSPARK_PYTHON="$work/venv/bin/python" SPARK_LOCAL_IP=127.0.0.1 \
  "$work/venv/bin/python" stream-client-py/examples/score_parquet.py --master 'local[2]' \
  --url "$url" --demo "$rows" --input "$work/in" --output "$work/out-python" >&2

echo "== 3. the jar under spark-submit" >&2
mkdir -p "$work/classes"
user java -cp "$spark_home/jars/*" scala.tools.nsc.Main -usejavacp \
  -classpath "$dist/score-client.jar" -d "$work/classes" stream-client-jvm/examples/ScoreParquet.scala
jar --create --file "$work/example.jar" -C "$work/classes" .
user env SPARK_LOCAL_IP=127.0.0.1 "$spark_home/bin/spark-submit" --master 'local[2]' \
  --driver-memory 1g --conf spark.ui.enabled=false --jars "$dist/score-client.jar" \
  --class ScoreParquet "$work/example.jar" "$url" "$work/in" "$work/out-java" >&2

echo "== 4. the CLI on the Spark dataset directory" >&2
user "$bin/score-client" --url "$url" --input "$work/in" --keep id --output "$work/out-cli.parquet"

"$work/venv/bin/python" - "$work" "$rows" <<'EOF'
import sys
import numpy as np
import pyarrow.parquet as pq

work, rows = sys.argv[1], int(sys.argv[2])
scores = {}
for name in ("out-python", "out-java", "out-cli.parquet"):
    table = pq.read_table(f"{work}/{name}").sort_by("id")
    ids = table["id"].to_numpy()
    assert (ids == np.arange(rows)).all(), f"{name}: ids are not each of 0..{rows} once"
    got = np.stack(table["score"].to_numpy(zero_copy_only=False))
    assert got.shape == (rows, 2), f"{name}: {got.shape}"
    np.testing.assert_allclose(got.sum(axis=1), 1, atol=1e-5, err_msg=name)
    scores[name] = got
np.testing.assert_array_equal(scores["out-python"], scores["out-java"])
np.testing.assert_array_equal(scores["out-python"], scores["out-cli.parquet"])
print(f"dist: {rows} rows scored alike by the wheel, the jar and the CLI, without Rust")
EOF
ls -l "$dist"
