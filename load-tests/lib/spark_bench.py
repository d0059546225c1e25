"""The same Spark job three ways, side by side in one session (run it with
load-tests/spark-throughput/run.sh, which builds and starts what it needs):

  a) stream_client: mapInArrow -> Rust client -> score-server;
  b) the seeds' way: a pandas UDF with the ONNX model broadcast to the
     executors and run in-process by onnxruntime;
  c) a plain Python client: mapInArrow calling the server with `requests`,
     one Arrow batch (--arrow-batch rows, default 10,000) at a time,
     synchronously.

With --only a,cols,cols-arrow: (a) on the array column against the same
features as 100 separate float columns, interleaved into rows by the
client, or sent as Arrow columns (`by_name=True`) for the server to take
by position.

Also, for reference: a trivial mapInArrow (Spark's own cost of moving the
rows through Python) and (b') onnxruntime in-process through mapInArrow
(no pandas). Every variant scores every row: the job ends in Spark's `noop`
sink, which forces the whole computation without writing anything. Rounds
alternate the variants so a noisy neighbour hits them alike; the median of
the rounds is reported, with ratios.

    python load-tests/lib/spark_bench.py --url http://127.0.0.1:8099 \\
        --model models/logreg.onnx --rows 1000000 --rounds 3
"""


import argparse
import os
import statistics
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--model", required=True, help="the ONNX file the server serves")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--data", default="target/bench-data")
    p.add_argument("--only", default="trivial,a,b,b2,c")
    p.add_argument("--master", default="local[2]")
    p.add_argument("--arrow-batch", type=int, default=10_000,
                   help="spark.sql.execution.arrow.maxRecordsPerBatch: rows per Arrow batch, "
                        "so per request of (c)")
    args = p.parse_args()

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, FloatType, LongType, StructField, StructType

    from stream_client import Scorer

    spark = (
        SparkSession.builder.master(args.master)
        .appName("spark-bench")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.memory", "4g")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.maxRecordsPerBatch", str(args.arrow_batch))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")

    data = Path(args.data) / f"features-{args.rows}.parquet"
    if not data.exists():
        spark.range(args.rows, numPartitions=4).select(
            "id",
            F.array(*[(F.rand(seed=j) * 2 - 1).cast("float") for j in range(100)]).alias(
                "features"),
        ).write.mode("overwrite").parquet(str(data))
    df = spark.read.parquet(str(data)).cache()
    df.count()  # read once; every variant then starts from memory
    partitions = df.rdd.getNumPartitions()

    out_schema = StructType([
        StructField("id", LongType()),
        StructField("score", ArrayType(FloatType())),
    ])
    model_bytes = Path(args.model).read_bytes()
    url = args.url.rstrip("/")
    import onnxruntime as ort

    k = [o for o in ort.InferenceSession(model_bytes).get_outputs()
         if o.name == "probabilities"][0].shape[1]

    def zeros(n):
        offsets = pa.array(np.arange(0, (n + 1) * k, k, dtype=np.int32))
        return pa.ListArray.from_arrays(offsets, pa.array(np.zeros(n * k, dtype=np.float32)))

    def trivial(batches):
        # Spark's own cost: the same rows in, k floats a row out, no model.
        for b in batches:
            yield pa.record_batch([b.column("id"), zeros(len(b))], names=["id", "score"])

    # The library's defaults but the batch size: adaptive concurrency up
    # to 32 requests in flight a task.
    scorer = Scorer(url, batch_rows=4096)

    def variant_a():
        return df.mapInArrow(lambda it: scorer.score_batches(it, "features", ["id"]), out_schema)

    # The same features as 100 separate float columns (the layout of a
    # table that was never assembled into an array), built and cached only
    # when a variant needs them.
    names = [f"f{j:02d}" for j in range(100)]
    separate = {}

    def columns_df():
        if "df" not in separate:
            separate["df"] = df.select(
                "id", *[df.features[j].alias(n) for j, n in enumerate(names)]).cache()
            separate["df"].count()
        return separate["df"]

    def variant_cols():
        # The client interleaves the columns into float32 rows.
        return columns_df().mapInArrow(
            lambda it: scorer.score_batches(it, names, ["id"]), out_schema)

    def variant_cols_arrow():
        # The columns go as they are (Arrow IPC); the server interleaves.
        return columns_df().mapInArrow(
            lambda it: scorer.score_batches(it, names, ["id"], by_name=True), out_schema)

    broadcast = spark.sparkContext.broadcast(model_bytes)

    def onnx_session():
        # One session per Python worker process, built from the broadcast.
        import onnxruntime as ort

        global _SESSION
        try:
            return _SESSION
        except NameError:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = 1
            _SESSION = ort.InferenceSession(broadcast.value, opts,
                                            providers=["CPUExecutionProvider"])
            return _SESSION

    @F.pandas_udf(ArrayType(FloatType()))
    def score_udf(features: pd.Series) -> pd.Series:
        session = onnx_session()
        x = np.stack(features.to_numpy()).astype(np.float32, copy=False)
        probabilities = session.run(["probabilities"], {session.get_inputs()[0].name: x})[0]
        return pd.Series(list(probabilities))

    def variant_b():
        return df.select("id", score_udf("features").alias("score"))

    def in_process_arrow(batches):
        session = onnx_session()
        name = session.get_inputs()[0].name
        for b in batches:
            col = b.column("features")
            x = col.flatten().to_numpy().reshape(len(col), 100)
            p = session.run(["probabilities"], {name: x})[0]
            scores = pa.ListArray.from_arrays(
                pa.array(np.arange(0, (len(p) + 1) * k, k, dtype=np.int32)), pa.array(p.ravel()))
            yield pa.record_batch([b.column("id"), scores], names=["id", "score"])

    def variant_b2():
        return df.mapInArrow(in_process_arrow, out_schema)

    def requests_client(batches):
        import requests

        http = requests.Session()
        for b in batches:
            col = b.column("features")
            x = col.flatten().to_numpy().reshape(len(col), 100)
            r = http.put(url + "/score", data=x.tobytes(),
                         headers={"Content-Type": "application/octet-stream"}, timeout=60)
            r.raise_for_status()
            p = np.frombuffer(r.content, dtype="<f4").reshape(len(col), -1)
            scores = pa.ListArray.from_arrays(
                pa.array(np.arange(0, (len(p) + 1) * p.shape[1], p.shape[1], dtype=np.int32)),
                pa.array(p.ravel()))
            yield pa.record_batch([b.column("id"), scores], names=["id", "score"])

    def variant_c():
        return df.mapInArrow(requests_client, out_schema)

    variants = {
        "trivial": ("Spark alone: trivial mapInArrow", lambda: df.mapInArrow(trivial, out_schema)),
        "a": ("(a) stream_client -> score-server", variant_a),
        "b": ("(b) pandas UDF, broadcast model, onnxruntime", variant_b),
        "b2": ("(b') mapInArrow, onnxruntime in-process", variant_b2),
        "c": ("(c) requests, one batch at a time", variant_c),
        "cols-trivial": ("Spark alone, separate columns: trivial mapInArrow",
                         lambda: columns_df().mapInArrow(trivial, out_schema)),
        "cols": ("(a) separate columns, interleaved by the client", variant_cols),
        "cols-arrow": ("(a) separate columns, sent as Arrow", variant_cols_arrow),
    }
    chosen = [v for v in args.only.split(",") if v in variants]

    # A check before timing: (a), (b) and (c) give the same scores.
    sample = {v: variants[v][1]().where("id < 2000").orderBy("id").toPandas()
              for v in chosen if "trivial" not in v}
    ref = np.stack(next(iter(sample.values()))["score"].to_numpy())
    for v, frame in sample.items():
        diff = np.abs(np.stack(frame["score"].to_numpy()) - ref).max()
        assert diff < 1e-5, f"{v} disagrees by {diff}"

    times: dict[str, list[float]] = {v: [] for v in chosen}
    for _ in range(args.rounds):
        for v in chosen:
            started = time.perf_counter()
            variants[v][1]().write.format("noop").mode("overwrite").save()
            times[v].append(time.perf_counter() - started)

    print(f"\n{args.rows:,} rows x 100 float32 features, {args.master}, {partitions} partitions, "
          f"median of {args.rounds} rounds (model {Path(args.model).name})\n")
    print(f"| variant | seconds | rows/s | vs (a) | vs (b) | vs (c) |")
    print(f"|---|---:|---:|---:|---:|---:|")
    median = {v: statistics.median(t) for v, t in times.items()}
    for v in chosen:
        rate = args.rows / median[v]
        vs = lambda o: f"{median[o] / median[v]:.2f}x" if o in median else "-"
        print(f"| {variants[v][0]} | {median[v]:.2f} | {rate:,.0f} | {vs('a')} | {vs('b')} "
              f"| {vs('c')} |")
    print("\nall rounds (s):", {v: [round(x, 2) for x in t] for v, t in times.items()})
    spark.stop()


if __name__ == "__main__":
    main()
