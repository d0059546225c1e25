#!/usr/bin/env python3
"""The reference embeddings for score-server's embedding models: the
sentence-transformers pipeline recomputed with the Python `tokenizers`
package and onnxruntime (no PyTorch: its CPU wheels are not reachable
here), for the texts in TEXTS, written as JSON:

    python models/embedding_reference.py MODEL_DIR OUT.json

MODEL_DIR is a sentence-transformers export as scripts/minilm.sh lays it
out. Mean pooling over the attention mask, L2 normalisation when
modules.json lists Normalize, truncation at the tokenizer's max_length.

Each row also holds, under "chunked", the text embedded whole in windows
for the overlaps of OVERLAPS (the server's `chunk`), by this rule written
out here rather than through the tokenizer's own windowing: the text's
tokens without the special ones are cut into windows of the limit less
the special tokens, each starting `window - overlap` tokens after the one
before, the last ending at the text's end; each window gets the special
tokens and is encoded alone; the text's vector is the mean of the
windows' mean-pooled vectors weighted by their token counts, then
normalised.
"""

import json
import pathlib
import sys

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

TEXTS = [
    "The food was great and the delivery fast.",
    "Отличный товар, доставка быстрая, рекомендую!",
    "Ужасное качество, вернул через день.",
    "Mixed scripts: доставка OK, 東京 2024 🚀",
    "🙂🙂🙂",
    "",
    " ",
    "a",
    ("Очень длинный отзыв о товаре, который повторяется много раз. " * 40).strip(),
    "word " * 300,
]

OVERLAPS = [0, 32]


def main(model_dir, out):
    model_dir = pathlib.Path(model_dir)
    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tokenizer.no_padding()
    max_len = tokenizer.truncation["max_length"] if tokenizer.truncation else 512
    tokenizer.enable_truncation(max_len)
    modules = json.loads((model_dir / "modules.json").read_text())
    normalize = any(m["type"].endswith(".Normalize") for m in modules)
    session = ort.InferenceSession(str(model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    whole = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    whole.no_padding()
    whole.no_truncation()
    specials = whole.encode("").ids  # [CLS], [SEP] for a BERT tokenizer
    head, tail = specials[:1], specials[1:]
    window = max_len - len(specials)

    def pooled(ids):
        feed = {
            "input_ids": np.array([ids], dtype=np.int64),
            "attention_mask": np.ones((1, len(ids)), dtype=np.int64),
            "token_type_ids": np.zeros((1, len(ids)), dtype=np.int64),
        }
        return session.run(None, {n: feed[n] for n in names})[0][0].mean(0)

    def chunked(text, overlap):
        ids = whole.encode(text, add_special_tokens=False).ids
        starts = [0]
        while starts[-1] + window < len(ids):
            starts.append(starts[-1] + window - overlap)
        windows = [head + ids[s:s + window] + tail for s in starts]
        weights = np.array([len(w) for w in windows], dtype=np.float64)
        v = sum(wt * pooled(w) for wt, w in zip(weights, windows)) / weights.sum()
        if normalize:
            v = v / max(np.linalg.norm(v), 1e-12)
        return {"chunks": len(windows), "tokens": int(weights.sum()),
                "embedding": v.astype(np.float32).tolist()}

    rows = []
    for text in TEXTS:
        e = tokenizer.encode(text)
        feed = {
            "input_ids": np.array([e.ids], dtype=np.int64),
            "attention_mask": np.array([e.attention_mask], dtype=np.int64),
            "token_type_ids": np.array([e.type_ids], dtype=np.int64),
        }
        hidden = session.run(None, {n: feed[n] for n in names})[0][0]
        mask = np.array(e.attention_mask, dtype=np.float32)[:, None]
        v = (hidden * mask).sum(0) / max(mask.sum(), 1e-9)
        if normalize:
            v = v / max(np.linalg.norm(v), 1e-12)
        rows.append({"text": text, "tokens": len(e.ids), "truncated": bool(e.overflowing),
                     "embedding": v.astype(np.float32).tolist(),
                     "chunked": {str(o): chunked(text, o) for o in OVERLAPS}})
    pathlib.Path(out).write_text(json.dumps({"max_tokens": max_len, "rows": rows},
                                            ensure_ascii=False))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
