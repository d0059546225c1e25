#!/usr/bin/env python3
"""PySpark embedding jobs through score-server, in local mode:

    python load-tests/embed-spark/embed_spark.py --server-bin BIN --model-dir DIR --data DIR \
        [--rows 100000] [--bench-rows 20000] [--rounds 2] [--skip-kill] [--skip-bench]

1. Kill test: ROWS synthetic reviews (3-12 words, Russian and English) in
   Parquet, embedded by a `mapInArrow` job with stream_client through two
   servers (1 worker each); one is SIGKILLed once a fifth of the rows are
   done. Then a clean run through the surviving server alone, then the
   reference: the Python tokenizers + onnxruntime in-process. The output
   must equal the clean run bit for bit (the int8 encoder's vectors do not
   depend on which texts share a call) and the reference within cosine
   >= 0.9999, with every id once.
2. Benchmark, side by side in one run, BENCH_ROWS texts, ROUNDS rounds:
   stream_client to one server with 2 workers against the articles' design,
   a pandas UDF with the model broadcast: onnxruntime + tokenizers inside
   the UDF, texts sorted by length and encoded BATCH_SIZE at a time as
   sentence-transformers' `encode` does, one onnxruntime thread per task
   (local[2] runs two). Everything shares the machine's cores.

Prints progress and one JSON object per measurement on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd  # at module level: the pandas UDF's type hints name it
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "embed-bench"))
from embed_bench import texts  # noqa: E402  one text generator for both benchmarks

MODEL = "minilm"


def start_server(binary: str, model_dir: str, workers: int):
    """A score-server process serving the encoder as MODEL: the Python
    tests' `Server` (stream-client-py/tests/conftest.py), one definition."""
    import importlib.util

    os.environ["SCORE_SERVER_BIN"] = binary
    spec = importlib.util.spec_from_file_location(
        "stream_client_py_fixtures",
        Path(__file__).resolve().parents[2] / "stream-client-py/tests/conftest.py")
    fixtures = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixtures)
    return fixtures.Server(f"{MODEL}={model_dir}", "--workers", str(workers))


def spark_session(master: str):
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    # The executors' Python is PYSPARK_PYTHON, else `python3` on the PATH,
    # which need not have pandas or stream_client: this one does.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    from pyspark.sql import SparkSession

    spark = (SparkSession.builder.master(master).appName("embed-spark")
             .config("spark.ui.enabled", "false")
             .config("spark.driver.host", "127.0.0.1")
             .config("spark.driver.bindAddress", "127.0.0.1")
             .config("spark.sql.shuffle.partitions", "4")
             .config("spark.driver.memory", "2g")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def write_texts(path: Path, n: int, seed: int) -> list[str]:
    """`n` reviews of 3-12 words in Parquet (`id`, `text`), made once."""
    corpus = texts(n, seed=seed, words=(3, 12))
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table({"id": np.arange(n, dtype=np.int64), "text": corpus}), path)
    return corpus


def through_servers(spark, path: Path, urls: list[str], out: Path, partitions: int,
                    batch_rows: int, model: str = MODEL):
    from stream_client import Scorer

    scorer = Scorer(urls, model=model, batch_rows=batch_rows, in_flight=2, timeout=30.0,
                    truncate=True)
    df = spark.read.parquet(str(path)).repartition(partitions, "id")
    schema = scorer.output_schema(df.schema, "text", ["id"])
    df.mapInArrow(lambda it: scorer.score_batches(it, "text", ["id"]), schema) \
        .write.mode("overwrite").parquet(str(out))


def vectors(out: Path, n: int) -> np.ndarray:
    table = pq.read_table(out).sort_by("id")
    ids = table["id"].to_numpy()
    assert np.array_equal(ids, np.arange(n)), "a row missing or repeated"
    column = table["score"].combine_chunks()
    assert column.null_count == 0, "a null vector"
    return column.flatten().to_numpy().reshape(n, -1)


class Encoder:
    """The articles' pipeline without PyTorch: tokenizers + onnxruntime,
    sentence-transformers' `encode` order (longest first, `batch_size` a
    call, padded to the call's longest), mean pooling, L2 norm."""

    def __init__(self, model: bytes, tokenizer: str, max_tokens: int, threads: int) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.tok = Tokenizer.from_str(tokenizer)
        self.tok.no_padding()
        self.tok.enable_truncation(max_tokens)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
        self.names = [i.name for i in self.session.get_inputs()]

    def encode(self, batch: list[str], batch_size: int) -> np.ndarray:
        enc = self.tok.encode_batch(batch)
        order = sorted(range(len(enc)), key=lambda i: -len(enc[i].ids))
        out = None
        for start in range(0, len(order), batch_size):
            part = order[start:start + batch_size]
            longest = max(len(enc[i].ids) for i in part)
            ids = np.zeros((len(part), longest), np.int64)
            mask = np.zeros((len(part), longest), np.int64)
            for r, i in enumerate(part):
                ids[r, :len(enc[i].ids)] = enc[i].ids
                mask[r, :len(enc[i].ids)] = 1
            feed = {"input_ids": ids, "attention_mask": mask,
                    "token_type_ids": np.zeros_like(ids)}
            hidden = self.session.run(None, {k: feed[k] for k in self.names})[0]
            m = mask[:, :, None].astype(np.float32)
            v = (hidden * m).sum(1) / np.maximum(m.sum(1), 1e-9)
            if out is None:
                out = np.zeros((len(enc), v.shape[1]), np.float32)
            out[part] = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
        return out


def max_tokens(model_dir: str) -> int:
    config = json.loads((Path(model_dir) / "tokenizer.json").read_text()).get("truncation")
    return config["max_length"] if config else 512


def pandas_udf_job(spark, path: Path, model_dir: str, out: Path, partitions: int,
                   batch_size: int):
    """The articles' job: the model broadcast, a pandas UDF encoding each
    Arrow batch (maxRecordsPerBatch, 10,000 rows by default)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, FloatType

    model = spark.sparkContext.broadcast((
        (Path(model_dir) / "model.onnx").read_bytes(),
        (Path(model_dir) / "tokenizer.json").read_text(),
        max_tokens(model_dir)))
    cache: dict[str, Encoder] = {}

    @F.pandas_udf(ArrayType(FloatType()))
    def encode(x: pd.Series) -> pd.Series:
        if "encoder" not in cache:
            onnx, tokenizer, limit = model.value
            cache["encoder"] = Encoder(onnx, tokenizer, limit, threads=1)
        return pd.Series(list(cache["encoder"].encode(x.tolist(), batch_size)))

    df = spark.read.parquet(str(path)).repartition(partitions, "id")
    df.select("id", encode("text").alias("score")).write.mode("overwrite").parquet(str(out))


def kill_test(args, spark) -> None:
    path = Path(args.data) / f"texts-{args.rows}.parquet"
    corpus = write_texts(path, args.rows, seed=19)
    a = start_server(args.server_bin, args.model_dir, workers=1)
    b = start_server(args.server_bin, args.model_dir, workers=1)
    try:
        out = Path(args.data) / "with-kill"
        failure: list[BaseException] = []

        def job():
            try:
                through_servers(spark, path, [a.url, b.url], out, partitions=4,
                                batch_rows=args.batch_rows)
            except BaseException as e:  # reported below
                failure.append(e)

        started = time.perf_counter()
        thread = threading.Thread(target=job)
        thread.start()
        while a.rows_scored() < args.rows // 5 // 2:  # a fifth done, half of it on a
            assert thread.is_alive(), f"the job ended before the kill: {failure}"
            time.sleep(0.2)
        on_a = a.rows_scored()
        a.kill()
        print(f"killed server a after it had embedded {on_a} texts", file=sys.stderr)
        thread.join()
        assert not failure, f"the job with a kill failed: {failure[0]}"
        kill_seconds = time.perf_counter() - started

        clean = Path(args.data) / "clean"
        started = time.perf_counter()
        through_servers(spark, path, [b.url], clean, partitions=4, batch_rows=args.batch_rows)
        clean_seconds = time.perf_counter() - started
    finally:
        a.stop()
        b.stop()
    got, want = vectors(out, args.rows), vectors(clean, args.rows)
    identical = bool(np.array_equal(got, want))

    started = time.perf_counter()
    encoder = Encoder((Path(args.model_dir) / "model.onnx").read_bytes(),
                      (Path(args.model_dir) / "tokenizer.json").read_text(),
                      max_tokens(args.model_dir), threads=2)
    reference = np.concatenate([encoder.encode(corpus[i:i + 10_000], 256)
                                for i in range(0, len(corpus), 10_000)])
    reference_seconds = time.perf_counter() - started
    cosine = (got * reference).sum(1) / (np.linalg.norm(got, axis=1)
                                         * np.linalg.norm(reference, axis=1))
    result = {"test": "kill", "rows": args.rows, "killed_after_texts_on_a": on_a,
              "identical_to_clean_run": identical,
              "max_abs_diff_vs_clean": float(np.abs(got - want).max()),
              "min_cosine_vs_reference": float(cosine.min()),
              "max_abs_diff_vs_reference": float(np.abs(got - reference).max()),
              "seconds_with_kill": kill_seconds, "seconds_clean": clean_seconds,
              "seconds_reference": reference_seconds}
    print(json.dumps(result), flush=True)
    assert identical, "the run with a kill differs from the clean run"
    assert cosine.min() >= 0.9999, f"cosine {cosine.min()} against the reference"


def bench(args, spark) -> None:
    path = Path(args.data) / f"texts-{args.bench_rows}.parquet"
    write_texts(path, args.bench_rows, seed=20)
    server = start_server(args.server_bin, args.model_dir, workers=2)
    try:
        for round_ in range(args.rounds):
            for variant in ("stream_client", "pandas_udf"):
                out = Path(args.data) / f"bench-{variant}"
                started = time.perf_counter()
                if variant == "stream_client":
                    through_servers(spark, path, [server.url], out, partitions=4,
                                    batch_rows=args.batch_rows)
                else:
                    pandas_udf_job(spark, path, args.model_dir, out, partitions=4,
                                   batch_size=args.batch_size)
                seconds = time.perf_counter() - started
                vectors(out, args.bench_rows)  # every row, once, no null
                print(json.dumps({"test": "bench", "variant": variant, "round": round_,
                                  "rows": args.bench_rows, "seconds": seconds,
                                  "sentences_per_s": args.bench_rows / seconds}), flush=True)
    finally:
        server.stop()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--server-bin", required=True)
    p.add_argument("--model-dir", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--bench-rows", type=int, default=20_000)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=32,
                   help="the UDF's encode batch_size (sentence-transformers' default: 32)")
    p.add_argument("--batch-rows", type=int, default=256, help="stream_client's texts a request")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--skip-kill", action="store_true")
    p.add_argument("--skip-bench", action="store_true")
    args = p.parse_args()
    spark = spark_session(args.master)
    try:
        if not args.skip_bench:
            bench(args, spark)
        if not args.skip_kill:
            kill_test(args, spark)
    finally:
        spark.stop()


if __name__ == "__main__":
    main()
