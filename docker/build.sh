#!/usr/bin/env bash
# Builds the two images docker/compose.yaml runs, score-server:TAG and
# score-nginx:TAG, from a score-server binary built on this machine: no
# Rust image needed (docker/Dockerfile's `prebuilt` target).
#   docker/build.sh
# Builds the release binary (cargo build --release -p score-server),
# strips it into target/docker/ beside onnxruntime's library
# (scripts/onnxruntime.sh, cached), then runs docker build. The base images
# must be there: pulled from a registry, or docker/base-images.sh.
#
# Environment:
#   SCORE_TAG          image tag (default latest)
#   BINARY             a score-server binary to ship instead of building the
#                      release one (the tests ship the test build's)
#   MODEL, MODEL_NAME  the model baked in (default models/logreg.onnx as demo)
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${SCORE_TAG:-latest}
# Docker's legacy builder where BuildKit's client (buildx) is missing: the
# Dockerfiles need nothing more.
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0

binary=${BINARY:-}
if [ -z "$binary" ]; then
  cargo build --release --locked -p score-server
  binary=target/release/score-server
fi
mkdir -p target/docker
strip -o target/docker/score-server.partial "$binary"
mv target/docker/score-server.partial target/docker/score-server
cp -L "$(scripts/onnxruntime.sh)" target/docker/libonnxruntime.so

model_args=()
[ -z "${MODEL:-}" ] || model_args+=(--build-arg "MODEL=$MODEL")
[ -z "${MODEL_NAME:-}" ] || model_args+=(--build-arg "MODEL_NAME=$MODEL_NAME")
docker build -q -f docker/Dockerfile --target prebuilt "${model_args[@]}" -t "score-server:$tag" . >/dev/null
docker build -q -f docker/nginx.Dockerfile -t "score-nginx:$tag" . >/dev/null
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep -E "^score-(server|nginx):$tag "
