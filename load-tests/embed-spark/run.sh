#!/usr/bin/env bash
# PySpark embedding jobs (load-tests/embed-spark/embed_spark.py): 100,000 texts through
# two servers with one SIGKILLed mid-job (output equal to a clean run and to
# the Python tokenizers + onnxruntime reference), and stream_client against
# a pandas UDF with the model broadcast, side by side on the same cores:
#   load-tests/embed-spark/run.sh [--rows N] [--bench-rows N] [--rounds N] [--skip-kill] [--skip-bench]
# Release builds of the server and the wheel; local[2].
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/python-env.sh
ORT_DYLIB_PATH=$(scripts/onnxruntime.sh)
export ORT_DYLIB_PATH
dir=$(scripts/minilm.sh)
cargo build --release -q -p score-server
source load-tests/lib/lib.sh
install_release_wheel
target=$TARGET
"$VENV/bin/python" load-tests/embed-spark/embed_spark.py --server-bin "$target/release/score-server" \
  --model-dir "$dir" --data "$target/embed-spark" "$@" | tee load-tests/embed-spark/results/embed-spark.jsonl
