#!/usr/bin/env bash
# Checks the real server against its OpenAPI description (docs/openapi.yaml,
# served at /openapi.json) with schemathesis: generated and mutated requests
# to every operation; fails on any 5xx, a status, content type, header or
# body outside the description, or a 405 missing where a method is not
# served. Only "a schema-valid request must be accepted" is left out: a
# valid row's width depends on the model, which a schema cannot say.
# The venv is cached under ~/.cache/score. Uses the test build's binary.
#   scripts/schemathesis.sh [ST_ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
version=4.32.5
cache=${SCORE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/score}
venv=$cache/schemathesis-$version
if [ ! -e "$venv/.complete" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$version"
  touch "$venv/.complete"
fi
source load-tests/lib/lib.sh
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
bin=${SCORE_SERVER_BIN:-$target/debug/score-server}
[ -x "$bin" ] || cargo build -q -p score-server
tokens=$(mktemp)
echo "schemathesis-$RANDOM$RANDOM" >"$tokens"
pid=
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$tokens"' EXIT
# Twice: open, then with authentication on and no token sent (every
# protected route must answer the documented 401).
for auth in "" "--auth-token-file $tokens"; do
  port=$(free_port)
  # shellcheck disable=SC2086 # $auth is two words or none
  "$bin" --listen "127.0.0.1:$port" $auth 2>/dev/null &
  pid=$!
  wait_ready "http://127.0.0.1:$port/readyz"
  echo "== schemathesis against score-server ${auth:+with }${auth%% *}"
  "$venv/bin/st" run "http://127.0.0.1:$port/openapi.json" \
    --checks all --exclude-checks positive_data_acceptance \
    --max-examples "${ST_EXAMPLES:-50}" --no-color "$@"
  kill -0 "$pid" # the server is still alive
  kill "$pid"; wait "$pid" 2>/dev/null || true
done
