#!/usr/bin/env bash
# The artifacts as a user without Rust gets them (docs/install.md): builds
# dist/ (scripts/dist.sh), checks its checksums, then with no cargo or
# rustc on the PATH:
#   1. unpacks the binaries tarball and serves the demo model with its
#      score-server, logging JSON;
#   2. runs the README's quickstart block (marked run=dist) as written, in
#      a fresh directory (scripts/doc_snippets.py --dist): the wheel
#      installed into a fresh venv with pyspark from PyPI, the PySpark
#      example job on 100,000 rows, the Java example compiled with javac
#      against dist/score-client.jar and run under spark-submit --jars;
#   3. scores the same Spark dataset directory with the tarball's
#      score-client (--keep id, Parquet out);
# and checks every output: each id once, two probabilities a row that sum
# to 1, the three clients' scores equal.
set -euo pipefail
cd "$(dirname "$0")/.."
source load-tests/lib/lib.sh # free_port, wait_ready
scripts/dist.sh
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
# Nothing of the test venvs either: the user's Spark is the one the README installs.
as_user=(env -u CARGO_HOME -u RUSTUP_HOME -u VENV -u PYSPARK_PYTHON -u PYSPARK_DRIVER_PYTHON
  -u SPARK_HOME PATH="$clean_path")
user() { "${as_user[@]}" "$@"; }

echo "== 1. the binaries tarball" >&2
mkdir "$work/tarball"
tar -xzf "$dist"/score-*-linux-x86_64.tar.gz -C "$work/tarball"
bin=$(echo "$work"/tarball/score-*/bin)
port=$(free_port)
# Not through `user`: a function in the background is a subshell, and $!
# would be its pid, not the server's (env execs the server, same pid).
"${as_user[@]}" "$bin/score-server" --listen "127.0.0.1:$port" --workers 2 --log-format json \
  2>"$work/server.log" &
server_pid=$!
url=http://127.0.0.1:$port
wait_ready "$url/readyz" || { cat "$work/server.log" >&2; exit 1; }
# JSON logs: every line parses, and the start-up line carries the flags.
python3 -c '
import json, sys
lines = [json.loads(line) for line in open(sys.argv[1])]
assert any("--listen" in l.get("config", "") for l in lines), lines
' "$work/server.log"

echo "== 2. the README's quickstart, as written" >&2
# SPARK_LOCAL_IP: this machine's, not the README's (Spark on loopback here).
user env SPARK_LOCAL_IP=127.0.0.1 python3 scripts/doc_snippets.py --dist "$dist" --work "$work/user"
rows=100000 # the README's --demo

echo "== 3. the CLI on the Spark dataset directory" >&2
user "$bin/score-client" --url "$url" --input "$work/user/demo-in" --keep id \
  --output "$work/user/out-cli.parquet"

"$work/user/env/bin/python" - "$work/user" "$rows" <<'EOF'
import sys
import numpy as np
import pyarrow.parquet as pq

work, rows = sys.argv[1], int(sys.argv[2])
scores = {}
for name in ("demo-py", "demo-java", "out-cli.parquet"):
    table = pq.read_table(f"{work}/{name}").sort_by("id")
    ids = table["id"].to_numpy()
    assert (ids == np.arange(rows)).all(), f"{name}: ids are not each of 0..{rows} once"
    got = np.stack(table["score"].to_numpy(zero_copy_only=False))
    assert got.shape == (rows, 2), f"{name}: {got.shape}"
    np.testing.assert_allclose(got.sum(axis=1), 1, atol=1e-5, err_msg=name)
    scores[name] = got
np.testing.assert_array_equal(scores["demo-py"], scores["demo-java"])
np.testing.assert_array_equal(scores["demo-py"], scores["out-cli.parquet"])
print(f"dist: {rows} rows scored alike by the wheel, the jar and the CLI, without Rust")
EOF
ls -l "$dist"
