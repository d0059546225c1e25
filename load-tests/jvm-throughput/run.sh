#!/usr/bin/env bash
# The Spark job three ways on the JVM (load-tests/jvm-throughput/JvmBench.java: Spark's
# floor, score-client.jar, a plain HttpClient one batch at a time), then the
# PySpark path (spark_bench.py: its floor and stream_client) on the same
# Parquet data and the same server, in one invocation:
#   load-tests/jvm-throughput/run.sh [ROWS] [ROUNDS]
# Release builds of the server, the jar and the wheel (PROFILE=dev to reuse
# the test build: dependencies at opt-level 2). The server has 2 workers and
# shares the 2 cores with Spark, as in spark-throughput.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
rows=${1:-1000000}
rounds=${2:-3}
profile=${PROFILE:-release}
model=models/${MODEL:-logreg}.onnx
source scripts/python-env.sh
target=$(cargo metadata --format-version 1 --no-deps |
  "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
cargo build -q -p score-server --profile "$profile"
export SPARK_HOME=${SPARK_HOME:-$("$VENV/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')}
jar=$(JAR_PROFILE=$profile stream-client-jvm/build-jar.sh)
rm -rf "$target/jvm/bench-classes" && mkdir -p "$target/jvm/bench-classes"
javac --release 17 -Xlint:all,-path -encoding UTF-8 -d "$target/jvm/bench-classes" \
  -cp "$SPARK_HOME/jars/*:$jar" load-tests/jvm-throughput/JvmBench.java
jar --create --file "$target/jvm/jvm-bench.jar" -C "$target/jvm/bench-classes" .
rm -f "$target"/wheels/stream_client-*.whl
"$VENV/bin/maturin" build --quiet --profile "$profile" -m stream-client-py/Cargo.toml \
  -i "$VENV/bin/python" --out "$target/wheels"
"$VENV/bin/pip" install --quiet --force-reinstall --no-deps "$target"/wheels/stream_client-*.whl

source load-tests/lib/lib.sh
start_bench_server "$target/$dir/score-server" --workers "${WORKERS:-2}" --model "$model"

# The PySpark path first: it writes the Parquet data both read.
echo "== PySpark"
"$VENV/bin/python" load-tests/lib/spark_bench.py --url "$SERVER_URL" --only trivial,a \
  --model "$model" --rows "$rows" --rounds "$rounds" --data "$target/bench-data" \
  --master "${MASTER:-local[2]}"
echo "== JVM ($rows rows, median of $rounds rounds)"
echo "| variant | seconds | rows/s |"
echo "|---|---:|---:|"
"$SPARK_HOME/bin/spark-submit" --master "${MASTER:-local[2]}" --driver-memory 4g \
  --conf spark.ui.enabled=false --conf spark.driver.host=127.0.0.1 \
  --conf spark.driver.bindAddress=127.0.0.1 --conf spark.ui.showConsoleProgress=false \
  --jars "$jar" --class JvmBench "$target/jvm/jvm-bench.jar" \
  "$SERVER_URL" "$target/bench-data/features-$rows.parquet" "$rounds" 4096 2>/dev/null
