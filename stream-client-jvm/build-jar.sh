#!/usr/bin/env bash
# Builds score-client.jar: the Java API (package score.client) compiled with
# javac against the Spark jars bundled in the pyspark package (no Maven
# Central here), and the native library under native/linux-x86_64/, which
# the jar extracts and loads once per JVM.
#
#   stream-client-jvm/build-jar.sh            # dev profile (what the tests use)
#   JAR_PROFILE=release stream-client-jvm/build-jar.sh   # for benchmarks, users (stripped)
#
# Prints the jar's path. SPARK_HOME: a Spark (or pyspark) directory with
# jars/; default: the pyspark of the cached test venv (scripts/python-env.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${JAR_PROFILE:-dev}
if [ -z "${SPARK_HOME:-}" ]; then
  source scripts/python-env.sh >&2
  SPARK_HOME=$("$VENV/bin/python" -c 'import os, pyspark; print(os.path.dirname(pyspark.__file__))')
fi
if ! command -v javac >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing openjdk-17-jdk-headless (apt-get) for javac" >&2
    { apt-get install -y -qq openjdk-17-jdk-headless ||
      { apt-get update -qq && apt-get install -y -qq openjdk-17-jdk-headless; }; } >&2
  else
    echo "javac is missing: install a JDK 17 (e.g. apt-get install openjdk-17-jdk-headless)" >&2
    exit 1
  fi
fi

cargo build --quiet -p stream-client-jvm --profile "$profile"
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
dir=$([ "$profile" = dev ] && echo debug || echo "$profile")
library=$target/$dir/libscore_client_jvm.so

out=$target/jvm
rm -rf "$out/classes" "$out/native"
mkdir -p "$out/classes" "$out/native/native/linux-x86_64"
# -Xlint:-path: Spark's jars name jars in their manifests that are not there.
javac --release 17 -Xlint:all,-path -Werror -encoding UTF-8 -d "$out/classes" \
  -cp "$SPARK_HOME/jars/*" stream-client-jvm/java/score/client/*.java
# Stripped outside the dev profile: the debug info is most of the library's
# size (a 51 MB jar before), and users need none of it.
if [ "$profile" = dev ]; then
  cp "$library" "$out/native/native/linux-x86_64/"
else
  strip -o "$out/native/native/linux-x86_64/$(basename "$library")" "$library"
fi
jar --create --file "$out/score-client.jar.tmp" -C "$out/classes" . -C "$out/native" .
mv "$out/score-client.jar.tmp" "$out/score-client.jar"
echo "$out/score-client.jar"
