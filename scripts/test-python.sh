#!/usr/bin/env bash
# The Python package's tests: builds the stream_client wheel, installs it
# into the cached venv (scripts/python-env.sh) and runs pytest against real
# score-server processes and a local[2] SparkSession. Called by
# scripts/test.sh; arguments go to pytest (e.g. -k failover).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python-env.sh

# The servers the tests start: the binary of the Rust test build (the same
# command and features as nextest's, so after scripts/test.sh's cargo tests
# this builds nothing).
cargo test --workspace --no-run --quiet
export SCORE_SERVER_BIN=${SCORE_SERVER_BIN:-$(cargo metadata --format-version 1 --no-deps |
  "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/score-server}

# The wheel: WHEEL_PROFILE=release for benchmarks; the dev profile shares
# the test build's dependencies and optimises the client crates (Cargo.toml).
wheels=$(dirname "$SCORE_SERVER_BIN")/../wheels
rm -f "$wheels"/stream_client-*.whl
"$VENV/bin/maturin" build --quiet --profile "${WHEEL_PROFILE:-dev}" \
  -m stream-client-py/Cargo.toml -i "$VENV/bin/python" --out "$wheels"
"$VENV/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps \
  "$wheels"/stream_client-*.whl

cd stream-client-py
exec "$VENV/bin/python" -m pytest -q -p no:cacheprovider "${@:-tests}"
