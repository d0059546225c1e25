#!/usr/bin/env bash
# Prepares what the embedding tests compare against and prints the two
# variables they read (for `eval`):
#   eval "$(scripts/embedding-reference.sh)"
#   SCORE_EMBED_DIR        the int8 all-MiniLM-L6-v2 export (scripts/minilm.sh)
#   SCORE_EMBED_REFERENCE  its embeddings of models/embedding_reference.py's
#                          texts by the Python tokenizers + onnxruntime
# The venv (models/requirements-embed.txt) is cached in ~/.cache/score.
set -euo pipefail
cd "$(dirname "$0")/.."
source models/venv.sh
venv=${SCORE_CACHE:-$HOME/.cache/score}/embed-venv
ensure_venv "$venv" models/requirements-embed.txt >&2
dir=$(scripts/minilm.sh)
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
mkdir -p "$target"
reference=$target/embedding-reference.json
"$venv/bin/python" models/embedding_reference.py "$dir" "$reference" >&2
echo "export SCORE_EMBED_DIR=$dir SCORE_EMBED_REFERENCE=$reference"
