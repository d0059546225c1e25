#!/usr/bin/env bash
# Builds score-spark:TAG (docker/spark/Dockerfile). Stages its build
# context in target/spark-image: the wheels it installs (pyspark, pandas,
# pyarrow and numpy as stream-client-py/requirements-test.txt pins them,
# from pip's cache or PyPI; stream_client built here in release) and
# score-client.jar (release, stripped), and Spark's log settings.
#   docker/spark/build.sh
# Environment:
#   SCORE_TAG   image tag (default latest)
#   WHEEL, JAR  a stream_client wheel and a score-client.jar to ship instead
#               of building them (dist/ holds both)
# The Debian base must be there: pulled, or docker/base-images.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
source scripts/python-env.sh
tag=${SCORE_TAG:-latest}
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0
out=target/spark-image
rm -rf "$out"
mkdir -p "$out/wheels"
mapfile -t pins < <(grep -E '^(pyspark|pandas|pyarrow|numpy)==' stream-client-py/requirements-test.txt)
"$VENV/bin/pip" wheel --quiet --disable-pip-version-check --wheel-dir "$out/wheels" "${pins[@]}"
if [ -n "${WHEEL:-}" ]; then
  cp "$WHEEL" "$out/wheels/"
else
  "$VENV/bin/maturin" build --quiet --release --strip -m stream-client-py/Cargo.toml \
    -i "$VENV/bin/python" --out "$out/wheels"
fi
cp "${JAR:-$(JAR_PROFILE=release stream-client-jvm/build-jar.sh)}" "$out/score-client.jar"
cp docker/spark/log4j2.properties "$out/"
docker build -q -f docker/spark/Dockerfile -t "score-spark:$tag" "$out" >/dev/null
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^score-spark:$tag "
