#!/usr/bin/env bash
# Small bodies that cost much after arrival: Arrow dictionary deltas, one
# long word for every row, a shared dictionary behind thousands of
# batches, long texts, many empty texts, clients that never read, one
# large embedding request. Each case runs against a fresh release server
# capped by `prlimit --as` (2 GiB, the default budget, 2 workers) beside a
# client scoring 10-row requests; prints a line per case and a table:
# the answers, the server's peak RSS growth, the 10-row client's p99 and
# worst latency, whether the server was still up.
#   load-tests/hostile-probe/run.sh [BASELINE_BINARY]   (~10 min; ~20 with a baseline)
# With BASELINE_BINARY (e.g. a release build of an earlier commit), every
# case runs on it too, side by side. ONLY=<text> runs the cases whose name
# contains it.
set -euo pipefail
cd "$(dirname "$0")/../.."
cache=${SCORE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/score}
venv=$cache/probe-venv
if [ ! -e "$venv/.complete" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check pyarrow numpy
  touch "$venv/.complete"
fi
ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$(scripts/onnxruntime.sh)}
export ORT_DYLIB_PATH
[ -n "${SCORE_EMBED_DIR:-}" ] || SCORE_EMBED_DIR=$(scripts/minilm.sh)
cargo build --release -q -p score-server
bin=${CARGO_TARGET_DIR:-target}/release/score-server
"$venv/bin/python" load-tests/hostile-probe/hostile_probe.py ${1:+"$1"} "$bin" \
  --embed-dir "$SCORE_EMBED_DIR" --only "${ONLY:-}"
