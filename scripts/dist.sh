#!/usr/bin/env bash
# Builds what users install without a Rust toolchain, into dist/ (DIST to
# change it), from one release build:
#   stream_client-VERSION-cp311-abi3-manylinux_*.whl  the Python package (pip install)
#   score-client.jar                  the Java/Scala client, its native library stripped
#   score-VERSION-linux-x86_64.tar.gz score-server and score-client, stripped, with the
#                                     onnxruntime library the server's second engine opens
#   score-server-image.tar, score-nginx-image.tar   `docker save` of the two images
#                                     (where a Docker engine answers)
#   SHA256SUMS                        checksums of all of the above
# docs/install.md says how to install each and ship it to a cluster;
# scripts/test-dist.sh installs them as a user would and runs jobs with them.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python-env.sh # maturin, and the Spark jars the jar compiles against
out=${DIST:-dist}
version=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"] == "score-server"))')
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
rm -rf "$out"
mkdir -p "$out"

echo "== release binaries" >&2
# One invocation: the two packages' dependencies get one feature set and
# build once (two invocations rebuilt ~80 crates for the second).
cargo build --release --locked -p score-server -p stream-client --bin score-server --bin score-client
name=score-$version-linux-x86_64
stage=$target/dist-stage/$name
rm -rf "$target/dist-stage"
mkdir -p "$stage/bin" "$stage/lib"
strip -o "$stage/bin/score-server" "$target/release/score-server"
strip -o "$stage/bin/score-client" "$target/release/score-client"
cp -L "$(scripts/onnxruntime.sh)" "$stage/lib/libonnxruntime.so"
cat >"$stage/README.txt" <<EOF
score $version for linux-x86_64 (glibc 2.34 or later).

  bin/score-server --model churn=/models/churn.onnx --listen 0.0.0.0:8099
  bin/score-client --url http://host:8099 --input data/ --output scores.parquet --keep id

score-server runs models on tract, built in. For --engine onnxruntime or
auto (dense networks, embedding models) it opens lib/libonnxruntime.so:
  bin/score-server --onnxruntime lib/libonnxruntime.so --engine auto ...
Every flag: bin/score-server --help. Documentation: docs/ in the repository.
EOF
tar -C "$target/dist-stage" -czf "$out/$name.tar.gz" "$name"

echo "== Python wheel" >&2
"$VENV/bin/maturin" build --quiet --release --strip -m stream-client-py/Cargo.toml \
  -i "$VENV/bin/python" --out "$out"

echo "== Java/Scala jar" >&2
cp "$(JAR_PROFILE=release stream-client-jvm/build-jar.sh)" "$out/score-client.jar"

if docker info >/dev/null 2>&1; then
  echo "== images" >&2
  docker/base-images.sh >&2
  SCORE_TAG=$version BINARY=$target/release/score-server docker/build.sh >&2
  docker save -o "$out/score-server-image.tar" "score-server:$version"
  docker save -o "$out/score-nginx-image.tar" "score-nginx:$version"
else
  echo "SKIPPED: no Docker engine answers: no image tarballs" >&2
fi

(cd "$out" && sha256sum -- * >SHA256SUMS)
ls -l "$out" >&2
