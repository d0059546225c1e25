#!/usr/bin/env bash
# score-server against the embedding peers, the same all-MiniLM-L6-v2 on the
# same two cores, in one run (load-tests/peers/embed_peers.py):
# - score-server (release, --workers 2), int8 and an fp32 export of the
#   same weights, through /v1/embeddings;
# - Infinity 0.0.78 (--engine optimum: its ONNX backend on CPU), the same
#   two ONNX files, through its /v1/embeddings (the same request body);
# - sentence-transformers 6.2 on torch 2.15 CPU, fp32, in-process;
# short and long reviews in batches of 32 and 256; vectors checked against
# sentence-transformers' (cosine). Then seed 000's PySpark job three ways
# (load-tests/peers/spark_peers.py): its pandas UDF with a broadcast
# SentenceTransformer, the same UDF calling Infinity, stream_client with
# score-server.
#   load-tests/peers/embed.sh [--rounds N] [--sentences N] [--spark-rows N] [--spark-only]
set -euo pipefail
cd "$(dirname "$0")/../.."
source models/venv.sh
source load-tests/lib/lib.sh
cache=${SCORE_CACHE:-$HOME/.cache/score}
# Two venvs: Infinity 0.0.78 caps numpy below 2 and pins older
# sentence-transformers; the reference and the PySpark job use current ones.
VENV=$cache/peers-st
ensure_venv "$VENV" load-tests/peers/requirements-st.txt
infinity=$cache/peers-infinity
ensure_venv "$infinity" load-tests/peers/requirements-infinity.txt
ORT_DYLIB_PATH=$(scripts/onnxruntime.sh)
export ORT_DYLIB_PATH
int8=$(scripts/minilm.sh)
cargo build --release -q -p score-server
install_release_wheel
mkdir -p load-tests/peers/results
HF_HUB_OFFLINE=1 "$VENV/bin/python" load-tests/peers/embed_peers.py \
  --score-bin "$TARGET/release/score-server" --infinity-bin "$infinity/bin/infinity_emb" \
  --int8-dir "$int8" --work "$TARGET/peers/embed" --out load-tests/peers/results/embed.jsonl "$@"
# Where the CPU goes, the encoder alone and around it, one thread in-process.
HF_HUB_OFFLINE=1 "$VENV/bin/python" load-tests/peers/where_time_goes.py --work "$TARGET/peers/embed" \
  --out load-tests/peers/results/embed.jsonl
python3 load-tests/peers/embed_report.py load-tests/peers/results/embed.jsonl |
  tee load-tests/peers/results/embed-summary.txt
