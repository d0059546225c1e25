#!/usr/bin/env python3
"""Sentences/s: score-server embedding texts against onnxruntime + the
Python tokenizers in-process (the articles' pandas-UDF pipeline without
PyTorch), same texts, same batch size, side by side:

    python load-tests/embed-bench/embed_bench.py MODEL_DIR SERVER_URL [SECONDS]

The texts are synthetic customer reviews (Russian and English words,
5-40 words, seeded). In-process: batches of BATCH texts, tokenized with
`encode_batch`, padded to the batch's longest, onnxruntime with 2 intra-op
threads, mean pooling, L2 norm. Served: the same batches as Arrow bodies
(one utf8 column `text`) to /models/minilm/score from 4 client threads.
Prints one JSON object.
"""

import io
import json
import random
import sys
import threading
import time
import urllib.request

import numpy as np
import onnxruntime as ort
import pyarrow as pa
from tokenizers import Tokenizer

BATCH = 256
WORDS = ("товар доставка качество быстро отлично плохо рекомендую вернул цена магазин "
         "product delivery quality fast great poor recommend returned price store "
         "очень хороший не работает сломался упаковка курьер days week size color").split()


def texts(n, seed=1, words=(5, 40)):
    """`n` synthetic reviews of `words` (fewest, most) words each, seeded."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(*words))).capitalize() + "."
            for _ in range(n)]


def in_process(model_dir, batches, seconds, sort=False):
    tok = Tokenizer.from_file(f"{model_dir}/tokenizer.json")
    tok.no_padding()
    tok.enable_truncation(128)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(f"{model_dir}/model.onnx", options,
                                   providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def embed(batch):
        if sort:
            # As the server does (score-engine/src/embed.rs, call_rows): longest
            # first; a call ends at 8,192 padded tokens or, once it holds
            # 16 texts, at a text shorter than 0.9x its longest; answers
            # back in input order.
            enc = tok.encode_batch(batch)
            order = sorted(range(len(enc)), key=lambda i: -len(enc[i].ids))
            out = [None] * len(enc)
            start = 0
            while start < len(order):
                longest = max(1, len(enc[order[start]].ids))
                cap, rows = max(1, 8192 // longest), 0
                for i in order[start:]:
                    if rows == cap or (rows >= 16 and len(enc[i].ids) * 10 < longest * 9):
                        break
                    rows += 1
                part = order[start:start + max(rows, 1)]
                for i, v in zip(part, run([enc[i] for i in part])):
                    out[i] = v
                start += len(part)
            return out
        return run(tok.encode_batch(batch))

    def run(enc):
        n = max(len(e.ids) for e in enc)
        ids = np.zeros((len(enc), n), np.int64)
        mask = np.zeros((len(enc), n), np.int64)
        for i, e in enumerate(enc):
            ids[i, :len(e.ids)] = e.ids
            mask[i, :len(e.ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = session.run(None, {k: feed[k] for k in names})[0]
        m = mask[:, :, None].astype(np.float32)
        v = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    embed(batches[0])
    done, start, i = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        done += len(embed(batches[i % len(batches)]))
        i += 1
    return done / (time.perf_counter() - start)


def served(url, batches, seconds, threads=4):
    bodies = []
    for b in batches:
        sink = io.BytesIO()
        rb = pa.record_batch([pa.array(b, pa.string())], names=["text"])
        with pa.ipc.new_stream(sink, rb.schema) as w:
            w.write_batch(rb)
        bodies.append(sink.getvalue())
    counts = [0] * threads
    end = time.perf_counter() + seconds

    def worker(k):
        i = k
        while time.perf_counter() < end:
            req = urllib.request.Request(
                f"{url}/models/minilm/score?output=embedding", data=bodies[i % len(bodies)],
                method="PUT", headers={"Content-Type": "application/vnd.apache.arrow.stream"})
            body = urllib.request.urlopen(req).read()
            assert len(body) == len(batches[i % len(batches)]) * 384 * 4
            counts[k] += len(batches[i % len(batches)])
            i += threads

    urllib.request.urlopen(urllib.request.Request(
        f"{url}/models/minilm/score?output=embedding", data=bodies[0], method="PUT",
        headers={"Content-Type": "application/vnd.apache.arrow.stream"})).read()
    start = time.perf_counter()
    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / (time.perf_counter() - start)


if __name__ == "__main__":
    model_dir, url = sys.argv[1], sys.argv[2]
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 10
    all_texts = texts(BATCH * 20)
    batches = [all_texts[i:i + BATCH] for i in range(0, len(all_texts), BATCH)]
    a = served(url, batches, seconds)
    b = in_process(model_dir, batches, seconds)
    c = in_process(model_dir, batches, seconds, sort=True)
    print(json.dumps({"served_sentences_per_s": a, "inprocess_sentences_per_s": b,
                      "inprocess_sorted_sentences_per_s": c,
                      "served_over_inprocess": a / b, "served_over_sorted": a / c,
                      "batch": BATCH}))
