#!/usr/bin/env bash
# Checks docker/Dockerfile's from-source path (its default target) on a
# machine without a registry: builds stand-ins for the two images it starts
# from, rust:1.95-bookworm (this machine's Rust toolchain, copied onto
# debian:bookworm-slim with gcc) and python:3.11-slim-bookworm (Debian's
# python3 with pip), builds the image, checks that it serves the demo
# model, and removes the stand-ins (an image already present under those
# names, e.g. pulled, is used as it is and kept). Not in scripts/test.sh:
# the release build in Docker takes 10-15 minutes on 2 cores (705 s here,
# 2026-12-03). The build's intermediate layers stay as Docker's build cache
# (untagged images; `docker image prune` removes them).
#   docker/source-build-check.sh
# Needs the base images (docker/base-images.sh) and crates.io and PyPI
# reachable from containers. The stand-ins carry this machine's CA
# certificates (for a proxy that re-signs TLS, as on the project's machines).
set -euo pipefail
cd "$(dirname "$0")/.."
docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=0
have() { docker image inspect "$1" >/dev/null 2>&1; }
work=$(mktemp -d)
made=()
cleanup() {
  rm -rf "$work"
  [ -n "${container:-}" ] && docker rm -f "$container" >/dev/null 2>&1
  for image in "${made[@]}"; do docker rmi "$image" >/dev/null 2>&1 || true; done
}
trap cleanup EXIT

if ! have rust:1.95-bookworm; then
  toolchain=$(rustc --print sysroot)
  mkdir -p "$work/rust/toolchain"
  cp -a "$toolchain/bin" "$toolchain/lib" "$work/rust/toolchain/"
  cp /etc/ssl/certs/ca-certificates.crt "$work/rust/"
  cat >"$work/rust/Dockerfile" <<'DOCKERFILE'
FROM debian:bookworm-slim
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    gcc libc6-dev ca-certificates binutils && rm -rf /var/lib/apt/lists/*
COPY toolchain /usr/local/rust
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PATH=/usr/local/rust/bin:$PATH CARGO_HOME=/usr/local/cargo
DOCKERFILE
  docker build -q -t rust:1.95-bookworm "$work/rust" >/dev/null
  made+=(rust:1.95-bookworm)
fi
if ! have python:3.11-slim-bookworm; then
  mkdir -p "$work/python"
  cp /etc/ssl/certs/ca-certificates.crt "$work/python/"
  cat >"$work/python/Dockerfile" <<'DOCKERFILE'
FROM debian:bookworm-slim
RUN apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    python3 python3-pip && rm -rf /var/lib/apt/lists/*
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
DOCKERFILE
  docker build -q -t python:3.11-slim-bookworm "$work/python" >/dev/null
  made+=(python:3.11-slim-bookworm)
fi

started=$(date +%s)
docker build -f docker/Dockerfile -t score-server:source . >"$work/build.log" 2>&1 ||
  { tail -40 "$work/build.log" >&2; echo "source-build-check: the build failed" >&2; exit 1; }
made+=(score-server:source)
echo "built from source in $(($(date +%s) - started)) s: $(docker image ls --format '{{.Size}}' score-server:source)"
container=$(docker run -d --read-only -p 127.0.0.1::8099 score-server:source)
addr=$(docker port "$container" 8099/tcp | head -1)
for _ in $(seq 300); do
  curl -fsS "http://$addr/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
scores=$(curl -fsS -X PUT -H 'Content-Type: application/octet-stream' \
  --data-binary @models/demo-sample.f32 "http://$addr/score" | od -An -tf4 -v | xargs)
echo "demo sample scored: $scores"
[ "$(echo "$scores" | wc -w)" = 8 ] || { echo "source-build-check: expected 8 scores" >&2; exit 1; }
