"""Seed 000's PySpark job three ways, side by side on the same cores
(local[2]): ROWS synthetic reviews in Parquet (`id`, `text`) embedded with
all-MiniLM-L6-v2 and written to Parquet with their ids.

- `st_udf`: the article's job as written: a `SentenceTransformer` (torch
  CPU, fp32) broadcast to the executors and a pandas UDF calling
  `encode(x, batch_size=32)`. One torch thread a task (local[2] runs two
  tasks); torch's default of one thread a core would run four on two.
- `infinity_udf`: the same UDF with Infinity behind it: each Arrow batch
  POSTed to Infinity's `/v1/embeddings` in requests of BATCH texts, the
  fp32 ONNX export of the same weights (Infinity's ONNX backend).
- `stream_client-fp32` / `stream_client-int8`: `mapInArrow` with
  stream_client against score-server (--workers 2) serving the fp32 and
  int8 exports (scripts/export-embedding-model.py).

Texts are cut by whole words to the export's token limit first (256, as
sentence-transformers'), so that every pipeline embeds the same whole
texts. Every job's output is
checked: each id once, no null, and the first 512 vectors against
sentence-transformers' own (least cosine). Prints one JSON
object a job:
  python load-tests/peers/spark_peers.py --score-url URL --infinity-url URL \\
      --hub DIR --tokenizer FILE --data DIR [--rows 10000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd  # at module level: the pandas UDFs' type hints name it
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "embed-spark"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "embed-bench"))
from embed_bench import texts  # noqa: E402
from embed_spark import spark_session, through_servers, vectors  # noqa: E402

BATCH = 256


def least_cosine(got: np.ndarray, want: np.ndarray) -> float:
    """The least cosine between the rows of GOT and WANT, pairwise."""
    return float(((got * want).sum(1) / (np.linalg.norm(got, axis=1)
                                         * np.linalg.norm(want, axis=1))).min())


def fit_to_limit(tokenizer_file: Path, texts: list[str]) -> list[tuple[str, int]]:
    """Each text cut by whole words to the tokenizer's own limit (its
    truncation length less [CLS] and [SEP]), with its token count: every
    pipeline then embeds the same whole text, whatever limit it would cut
    at itself (sentence-transformers' is 256, this export's 128)."""
    from tokenizers import Tokenizer

    limit = json.loads(tokenizer_file.read_text())["truncation"]["max_length"] - 2
    tok = Tokenizer.from_file(str(tokenizer_file))
    tok.no_padding()
    tok.no_truncation()
    out = []
    for text in texts:
        words = text.split()
        while len(ids := tok.encode(" ".join(words), add_special_tokens=False).ids) > limit:
            words.pop()
        out.append((" ".join(words), len(ids)))
    return out


def st_udf(spark, path: Path, hub: str, out: Path, partitions: int) -> None:
    """The article's code, one torch thread a task."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, FloatType
    from sentence_transformers import SentenceTransformer

    model = spark.sparkContext.broadcast(SentenceTransformer(hub, device="cpu"))

    @F.pandas_udf(ArrayType(FloatType()))
    def encode_sentences(x: pd.Series) -> pd.Series:
        import torch

        torch.set_num_threads(1)
        return pd.Series(model.value.encode(x.tolist(), batch_size=32,
                                            normalize_embeddings=True).tolist())

    df = spark.read.parquet(str(path)).repartition(partitions, "id")
    df.select("id", encode_sentences("text").alias("score")) \
        .write.mode("overwrite").parquet(str(out))


def infinity_udf(spark, path: Path, url: str, out: Path, partitions: int) -> None:
    """The same UDF, the encoding done by Infinity over HTTP."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, FloatType

    @F.pandas_udf(ArrayType(FloatType()))
    def encode_sentences(x: pd.Series) -> pd.Series:
        import requests

        session = requests.Session()
        values = x.tolist()
        out = []
        for i in range(0, len(values), BATCH):
            r = session.post(f"{url}/v1/embeddings", timeout=300,
                             json={"model": "minilm-fp32", "input": values[i:i + BATCH]})
            r.raise_for_status()
            out += [d["embedding"] for d in r.json()["data"]]
        return pd.Series(out)

    df = spark.read.parquet(str(path)).repartition(partitions, "id")
    df.select("id", encode_sentences("text").alias("score")) \
        .write.mode("overwrite").parquet(str(out))


def run(score_url: str, infinity_url: str, hub: str, tokenizer: Path, data: Path, rows: int,
        rounds: int, master: str = "local[2]"):
    """Yields one measurement a job and round (see the module's help)."""
    corpus = [text for text, _ in fit_to_limit(tokenizer, texts(rows, seed=41, words=(5, 40)))]
    path = data / f"reviews-{rows}.parquet"
    data.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": np.arange(rows, dtype=np.int64), "text": corpus}), path)

    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(hub, device="cpu").encode(
        corpus[:512], batch_size=32, normalize_embeddings=True)
    spark = spark_session(master)
    jobs = {
        "st_udf": lambda out: st_udf(spark, path, hub, out, 4),
        "stream_client-fp32": lambda out: through_servers(
            spark, path, [score_url], out, partitions=4, batch_rows=BATCH, model="minilm-fp32"),
        "stream_client-int8": lambda out: through_servers(
            spark, path, [score_url], out, partitions=4, batch_rows=BATCH, model="minilm-int8"),
    }
    if infinity_url:
        jobs["infinity_udf"] = lambda out: infinity_udf(spark, path, infinity_url, out, 4)
    try:
        for round_ in range(rounds):
            order = list(jobs) if round_ % 2 == 0 else list(reversed(jobs))
            for name in order:
                out = data / f"out-{name}"
                started = time.perf_counter()
                jobs[name](out)
                seconds = time.perf_counter() - started
                got = vectors(out, rows)  # every id once, no null
                yield {"job": name, "round": round_, "rows": rows, "seconds": seconds,
                       "sentences_per_s": rows / seconds,
                       "least_cosine_to_sentence_transformers":
                           least_cosine(got[:512], reference)}
    finally:
        spark.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--score-url", required=True)
    p.add_argument("--infinity-url", help="Infinity's URL (none: no Infinity job)")
    p.add_argument("--hub", required=True, help="the sentence-transformers directory")
    p.add_argument("--tokenizer", required=True, type=Path,
                   help="score-server's tokenizer.json: texts are cut to its limit")
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--master", default="local[2]")
    args = p.parse_args()
    for r in run(args.score_url, args.infinity_url, args.hub, args.tokenizer, args.data, args.rows,
                 args.rounds, args.master):
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
