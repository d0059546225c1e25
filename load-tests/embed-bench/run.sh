#!/usr/bin/env bash
# Sentences/s: score-server embedding texts (Arrow bodies) against
# onnxruntime + Python tokenizers in-process, naive and with the server's
# length sorting (load-tests/embed-bench/embed_bench.py), same 2 cores:
#   load-tests/embed-bench/run.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/../.."
source load-tests/lib/lib.sh
source models/venv.sh
venv=${SCORE_CACHE:-$HOME/.cache/score}/embed-venv
ensure_venv "$venv" models/requirements-embed.txt
"$venv/bin/pip" install -q pyarrow==26.0.1
ORT_DYLIB_PATH=$(scripts/onnxruntime.sh)
export ORT_DYLIB_PATH
dir=$(scripts/minilm.sh)
cargo build --release -q -p score-server
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
start_bench_server "$target/release/score-server" --workers 2 --model "minilm=$dir"
"$venv/bin/python" load-tests/embed-bench/embed_bench.py "$dir" "$SERVER_URL" "${1:-10}"
