#!/usr/bin/env bash
# Regenerate the committed ONNX fixtures and their onnxruntime references
# (generate.py: the demo and test models; ml_cases.py: one-operator
# conformance cases for our ai.onnx.ml operators; arrow_cases.py: Arrow
# IPC streams the Rust side cannot write, compressed ones).
# Builds (once) a venv with the pinned requirements under target/, so nothing
# leaks into the system Python.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${MODELS_VENV:-$here/../target/models-venv}
source "$here/venv.sh"
ensure_venv "$venv" "$here/requirements.txt"
"$venv/bin/python" "$here/generate.py"
"$venv/bin/python" "$here/ml_cases.py"
"$venv/bin/python" "$here/arrow_cases.py"
