#!/usr/bin/env bash
# Regenerate the committed ONNX fixtures and their onnxruntime references.
# Builds (once) a venv with the pinned requirements under target/, so nothing
# leaks into the system Python.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venv=${MODELS_VENV:-$here/../target/models-venv}
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$here/requirements.txt" "$venv/requirements.txt"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r "$here/requirements.txt"
  cp "$here/requirements.txt" "$venv/requirements.txt"
fi
"$venv/bin/python" "$here/generate.py"
