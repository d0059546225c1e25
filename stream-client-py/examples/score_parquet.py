"""Score a Parquet dataset with Spark through score-server.

    spark-submit stream-client-py/examples/score_parquet.py \\
        --url http://scorer-1:8099 --url http://scorer-2:8099 \\
        --input s3a://bucket/features/ --output s3a://bucket/scores/ \\
        --features features --keep id

Reads the features (one array column, or several numeric columns), scores
every row through the servers with stream_client (`Scorer.transform`:
mapInArrow, Arrow batches straight to the Rust client, no Python row
objects), and writes the kept
columns beside a `score` column. With --demo it first writes a small demo
dataset for the bundled demo model (100 features) to --input.

The executors must run a Python that has stream_client: set PYSPARK_PYTHON
to it on one machine, or ship a packed venv on a cluster
(`venv-pack -o env.tar.gz`, then `--archives env.tar.gz#env
--conf spark.pyspark.python=./env/bin/python`). `--py-files` cannot carry
the wheel: it holds a native library. The Scorer object itself travels in
the task closure, pinned on the driver to the model version served when
the job starts, so every executor scores with that one version.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", action="append", required=True, help="score-server base URL")
    parser.add_argument("--input", required=True, help="Parquet input")
    parser.add_argument("--output", required=True, help="Parquet output (overwritten)")
    parser.add_argument("--features", nargs="+", default=None,
                        help="one array column, or numeric columns in model order "
                             "(default: the only array column)")
    parser.add_argument("--keep", nargs="*", default=["id"], help="columns passed through")
    parser.add_argument("--model", default=None, help="served model name (default model if unset)")
    parser.add_argument("--output-name", default=None, help="model output (?output=)")
    parser.add_argument("--batch-rows", type=int, default=4096)
    parser.add_argument("--in-flight", type=int, default=32,
                        help="most requests in flight a task (adaptive below it)")
    parser.add_argument("--errors", choices=["raise", "column"], default="raise")
    parser.add_argument("--demo", type=int, metavar="ROWS", default=0,
                        help="first write ROWS demo rows to --input")
    parser.add_argument("--master", default=None, help="e.g. local[2] (default: spark-submit's)")
    args = parser.parse_args()

    from pyspark.sql import SparkSession

    from stream_client import Scorer

    builder = SparkSession.builder.appName("score-parquet")
    if args.master:
        builder = builder.master(args.master)
    spark = builder.getOrCreate()

    if args.demo:
        write_demo(spark, args.input, args.demo)

    scorer = Scorer(args.url, model=args.model, output=args.output_name,
                    batch_rows=args.batch_rows, in_flight=args.in_flight)
    scorer = scorer.pinned()  # one model version for every executor
    features = args.features[0] if args.features and len(args.features) == 1 else args.features
    df = spark.read.parquet(args.input)
    scored = scorer.transform(df, features, args.keep, errors=args.errors)
    started = time.monotonic()
    scored.write.mode("overwrite").parquet(args.output)
    seconds = time.monotonic() - started
    rows = spark.read.parquet(args.output).count()
    print(f"scored {rows:,} rows in {seconds:.1f} s ({rows / seconds:,.0f} rows/s) "
          f"-> {args.output}")
    spark.read.parquet(args.output).orderBy("id").show(4, truncate=80)
    spark.stop()


def write_demo(spark, path: str, rows: int) -> None:
    """ROWS rows of `id` and `features` (100 floats in [-1, 1))."""
    from pyspark.sql import functions as F

    df = spark.range(rows).select(
        "id",
        F.array(*[(F.rand(seed=j) * 2 - 1).cast("float") for j in range(100)]).alias("features"),
    )
    df.write.mode("overwrite").parquet(path)


if __name__ == "__main__":
    main()
