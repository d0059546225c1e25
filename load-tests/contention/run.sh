#!/usr/bin/env bash
# The contention benchmark of the per-request path (the parts are
# described in score-server/benches/request_path.rs): metrics, admission,
# the worker queue and the whole router, each from N threads without
# sockets. Prints the table and keeps it in
# load-tests/contention/results/contention-<label>.txt.
#   load-tests/contention/run.sh [LABEL] [THREADS...]   (default: now, 1 2 4 8)
# To compare two commits, run it in a checkout of each with a label naming
# the commit, side by side in one session.
set -euo pipefail
cd "$(dirname "$0")/../.."
label=${1:-now}
shift || true
cargo bench -q -p score-server --bench request_path -- "$@" |
  tee "load-tests/contention/results/contention-$label.txt"
