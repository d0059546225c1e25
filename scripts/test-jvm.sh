#!/usr/bin/env bash
# The JVM binding's tests: builds score-client.jar (stream-client-jvm/
# build-jar.sh, dev profile: the test build's dependencies) and the test job
# (stream-client-jvm/tests/ScoreJob.java) and the examples
# (stream-client-jvm/examples/), then runs pytest, which starts
# real score-servers and spark-submit --master local[2] jobs. Called by
# scripts/test.sh; arguments go to pytest (e.g. -k limit).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python-env.sh

# The servers: the binary of the Rust test build (as scripts/test-python.sh).
cargo test --workspace --no-run --quiet
target=$(cargo metadata --format-version 1 --no-deps |
  "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
export SCORE_SERVER_BIN=${SCORE_SERVER_BIN:-$target/debug/score-server}
export SPARK_HOME=${SPARK_HOME:-$("$VENV/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')}

export SCORE_CLIENT_JAR=$(stream-client-jvm/build-jar.sh)
rm -rf "$target/jvm/test-classes"
mkdir -p "$target/jvm/test-classes"
javac --release 17 -Xlint:all,-path -Werror -encoding UTF-8 -d "$target/jvm/test-classes" \
  -cp "$SPARK_HOME/jars/*:$SCORE_CLIENT_JAR" stream-client-jvm/tests/ScoreJob.java \
  stream-client-jvm/tests/ApiCheck.java
jar --create --file "$target/jvm/score-job.jar" -C "$target/jvm/test-classes" .
export SCORE_JOB_JAR=$target/jvm/score-job.jar

# The examples: the Java one with javac, the Scala one with the Scala 2.13
# compiler among Spark's jars (scripts/test-dist.sh runs the Java one).
rm -rf "$target/jvm/example-classes"
mkdir -p "$target/jvm/example-classes"
javac --release 17 -Xlint:all,-path -Werror -encoding UTF-8 -d "$target/jvm/example-classes" \
  -cp "$SPARK_HOME/jars/*:$SCORE_CLIENT_JAR" stream-client-jvm/examples/ScoreParquet.java
java -cp "$SPARK_HOME/jars/*" scala.tools.nsc.Main -usejavacp -classpath "$SCORE_CLIENT_JAR" \
  -deprecation -Werror -d "$target/jvm/example-classes" stream-client-jvm/examples/ScoreParquet.scala
jar --create --file "$target/jvm/examples.jar" -C "$target/jvm/example-classes" .
export SCORE_EXAMPLES_JAR=$target/jvm/examples.jar

cd stream-client-jvm
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider -s "${@:-tests}"
