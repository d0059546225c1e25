"""Where an embedding's CPU goes, one thread, in-process, on the texts of
load-tests/peers/embed.sh (run by it after the servers; or alone):

- tokenizing (the Rust `tokenizers` through Python, as Infinity and
  score-server both use it);
- the encoder alone, batches of 32 texts sorted by length: onnxruntime
  on the fp32 export and on the int8 encoder (what score-server and
  Infinity run), and torch on the same weights (what sentence-
  transformers runs);
- mean pooling and normalisation.

So the ratios the servers reach can be read against what the model's
arithmetic allows: a server cannot be faster per core than its encoder.

    python load-tests/peers/where_time_goes.py --work target/peers/embed [--sentences 1024]
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from embed_peers import hub_dir, text_sets  # noqa: E402  the same texts and weights


def per_sentence(fn, items, sentences: int) -> float:
    """CPU seconds a sentence of FN over ITEMS, which hold SENTENCES in
    all (one untimed call first)."""
    fn(items[0])
    start = time.process_time()
    for item in items:
        fn(item)
    return (time.process_time() - start) / sentences


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--work", required=True, type=pathlib.Path, help="embed.sh's work directory")
    p.add_argument("--sentences", type=int, default=1024)
    p.add_argument("--out", type=pathlib.Path)
    args = p.parse_args()

    import onnxruntime as ort
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModel

    torch.set_num_threads(1)
    tokenizer_file = args.work / "score-int8" / "tokenizer.json"
    tok = Tokenizer.from_file(str(tokenizer_file))
    tok.enable_padding()  # to each batch's longest text, as the servers pad
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    sessions = {p: ort.InferenceSession(str(args.work / f"score-{p}" / "model.onnx"), options,
                                        providers=["CPUExecutionProvider"])
                for p in ("fp32", "int8")}
    torch_model = AutoModel.from_pretrained(str(hub_dir())).eval()

    results = []
    for kind, corpus in text_sets(tokenizer_file).items():
        texts = sorted(corpus[:args.sentences], key=len)
        batches = [texts[i:i + 32] for i in range(0, len(texts), 32)]
        encoded = [tok.encode_batch(b) for b in batches]  # padded to each batch's longest
        feeds = [{"input_ids": np.array([e.ids for e in enc], np.int64),
                  "attention_mask": np.array([e.attention_mask for e in enc], np.int64),
                  "token_type_ids": np.array([e.type_ids for e in enc], np.int64)}
                 for enc in encoded]
        def run_ort(precision, feed):
            session = sessions[precision]
            wanted = {i.name for i in session.get_inputs()}
            return session.run(None, {k: v for k, v in feed.items() if k in wanted})

        hidden = run_ort("fp32", feeds[0])[0]
        mask = feeds[0]["attention_mask"][..., None].astype(np.float32)

        def pool(_):
            v = (hidden * mask).sum(1) / mask.sum(1)
            return v / np.linalg.norm(v, axis=1, keepdims=True)

        n = len(texts)

        def run_torch(feed):
            with torch.inference_mode():
                torch_model(**{k: torch.from_numpy(v) for k, v in feed.items()})

        row = {"texts": kind, "batch": 32, "sentences": len(texts),
               "tokenize_ms": 1e3 * per_sentence(tok.encode_batch, batches, n),
               "onnxruntime_fp32_ms": 1e3 * per_sentence(lambda f: run_ort("fp32", f), feeds, n),
               "onnxruntime_int8_ms": 1e3 * per_sentence(lambda f: run_ort("int8", f), feeds, n),
               "torch_fp32_ms": 1e3 * per_sentence(run_torch, feeds, n),
               "pool_normalize_ms": 1e3 * per_sentence(pool, feeds, len(feeds) * 32)}
        print(json.dumps(row), flush=True)
        results.append(row)
    if args.out:
        with open(args.out, "a") as out:
            for row in results:
                out.write(json.dumps({"where_time_goes": row}) + "\n")


if __name__ == "__main__":
    main()
