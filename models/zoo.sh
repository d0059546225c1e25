#!/usr/bin/env bash
# Regenerates models/zoo/ (the exports users make: scikit-learn pipelines,
# trees, XGBoost, LightGBM, SVMs; models/zoo.py) and docs/models.md (which of
# them score-server loads and how close it is to onnxruntime;
# models/zoo_status.py). Own venv (xgboost-cpu, lightgbm, onnxmltools) under
# target/, from the pinned requirements-zoo.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${ZOO_VENV:-$here/../target/zoo-venv}
source "$here/venv.sh"
ensure_venv "$venv" "$here/requirements-zoo.txt"
rm -rf "$here/zoo"
"$venv/bin/python" "$here/zoo.py"
cd "$here/.."
# Release: the engine column's speed ratios are measured by --engine auto.
cargo build -q --release -p score-server
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
ORT_DYLIB_PATH=$(scripts/onnxruntime.sh)
export ORT_DYLIB_PATH
mkdir -p docs
"$venv/bin/python" "$here/zoo_status.py" "$target/release/score-server" > docs/models.md
echo "wrote docs/models.md" >&2
