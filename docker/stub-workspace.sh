#!/bin/sh
# docker/Dockerfile's dependency layer: with only the workspace's manifests
# and Cargo.lock copied in, writes a stand-in source file for every target
# the manifests declare or cargo would look for, so that
# `cargo build -p score-server` compiles the dependencies alone. That layer
# is then rebuilt only when a manifest or Cargo.lock changes, not on every
# source change. Run from the workspace root.
set -eu
for manifest in */Cargo.toml */*/Cargo.toml; do
  [ -e "$manifest" ] || continue
  dir=${manifest%/Cargo.toml}
  mkdir -p "$dir/src"
  # Every crate gets a lib and a main: an extra target is harmless here.
  [ -e "$dir/src/lib.rs" ] || : >"$dir/src/lib.rs"
  [ -e "$dir/src/main.rs" ] || echo 'fn main() {}' >"$dir/src/main.rs"
  # Targets by path (`path = "…"` at the start of a line: [[bin]] and the
  # like; dependencies' `{ path = … }` are inline), and [[bench]]es by name.
  awk '
    /^\[/ { section = $0 }
    /^path *= *"/ { gsub(/^path *= *"|".*$/, ""); print; next }
    section == "[[bench]]" && /^name *= *"/ { gsub(/^name *= *"|".*$/, ""); print "benches/" $0 ".rs" }
  ' "$manifest" | while read -r target; do
    mkdir -p "$dir/$(dirname "$target")"
    [ -e "$dir/$target" ] || echo 'fn main() {}' >"$dir/$target"
  done
  # A build script, so that its build-dependencies are compiled here too.
  if grep -q '^\[build-dependencies\]' "$manifest"; then
    [ -e "$dir/build.rs" ] || echo 'fn main() {}' >"$dir/build.rs"
  fi
done
