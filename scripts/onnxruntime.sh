#!/usr/bin/env bash
# Prints the path of onnxruntime's shared library (for score-server's
# onnxruntime engine and the tests that run both engines), fetching it once
# from the onnxruntime PyPI wheel into ~/.cache/score (no Python packages
# installed: the wheel is a zip, only the library is taken out of it):
#   export ORT_DYLIB_PATH=$(scripts/onnxruntime.sh)
# The version is the one every venv of this repository pins.
set -euo pipefail
version=${ONNXRUNTIME_VERSION:-1.31.1}
dir=${SCORE_CACHE:-$HOME/.cache/score}/onnxruntime-$version
lib=$dir/libonnxruntime.so.$version
if [ ! -f "$lib" ]; then
  mkdir -p "$dir"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download -q --no-deps --only-binary=:all: "onnxruntime==$version" -d "$tmp" >&2
  python3 - "$tmp" "$lib" <<'PY'
import glob, shutil, sys, zipfile
wheel = glob.glob(sys.argv[1] + "/onnxruntime-*.whl")[0]
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if "/capi/libonnxruntime.so" in n)
    with z.open(name) as src, open(sys.argv[2] + ".part", "wb") as dst:
        shutil.copyfileobj(src, dst)
shutil.move(sys.argv[2] + ".part", sys.argv[2])
PY
fi
echo "$lib"
