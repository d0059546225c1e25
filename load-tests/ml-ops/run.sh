#!/usr/bin/env bash
# Our ai.onnx.ml operators against onnxruntime in-process: builds
# the benchmark models (models/bench_models.py, in the zoo venv), runs the
# criterion bench `ml_ops` (score-engine's model plan vs onnxruntime, one
# thread each, 1,024 rows per call, side by side in one run) and prints
# rows/s and the ratios for load-tests/RESULTS.md.
#   load-tests/ml-ops/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
source models/venv.sh
zoo_venv=${ZOO_VENV:-$root/target/zoo-venv}
ensure_venv "$zoo_venv" models/requirements-zoo.txt
export BENCH_MODELS=$root/target/bench-models
[ -f "$BENCH_MODELS/rf.onnx" ] || "$zoo_venv/bin/python" models/bench_models.py "$BENCH_MODELS"
ORT_DYLIB_PATH=$(ls "$zoo_venv"/lib/python3*/site-packages/onnxruntime/capi/libonnxruntime.so.* | head -1)
export ORT_DYLIB_PATH
target=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
cargo bench -p score-engine --bench ml_ops -- --noplot "$@"
python3 - "$target/criterion" <<'PY'
import json, pathlib, sys
root = pathlib.Path(sys.argv[1])
print("| model | score-server rows/s | onnxruntime rows/s | ratio |")
print("|---|---:|---:|---:|")
for name in ["rf", "xgb", "lgbm", "rf-reg", "logreg", "linreg"]:
    def rate(side):
        f = root / f"ml_ops_{name}" / side / "new" / "estimates.json"
        if not f.exists():
            return None
        ns = json.loads(f.read_text())["median"]["point_estimate"]
        return 1024 / (ns * 1e-9)
    ours, ort = rate("score-server"), rate("onnxruntime")
    if ours and ort:
        print(f"| {name} | {ours:,.0f} | {ort:,.0f} | {ours / ort:.2f} |")
PY
