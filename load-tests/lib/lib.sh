# Shell helpers shared by the load-test scenarios (each one's run.sh):
# `source load-tests/lib/lib.sh` from the repository root.

# A free TCP port on 127.0.0.1.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Waits up to 30 s for URL to answer 2xx.
wait_ready() {
  for _ in $(seq 300); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "not ready: $1" >&2
  return 1
}
# Peak RSS of a process, MiB.
peak_mib() { awk '/VmHWM/ {print int($2/1024)}' "/proc/$1/status"; }
# CPU clock ticks (user + system, all threads) a process has used so far;
# `getconf CLK_TCK` of them make a second.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Starts BINARY ARGS... (a score-server) on an ephemeral port of 127.0.0.1
# and waits for it: sets SERVER_PID and SERVER_URL, and stops it (and
# removes its log) when the script exits.
start_bench_server() {
  SERVER_LOG=$(mktemp /tmp/score-bench-server.XXXXXX)
  "$@" --listen 127.0.0.1:0 >"$SERVER_LOG" 2>&1 &
  SERVER_PID=$!
  trap 'kill $SERVER_PID 2>/dev/null || true; rm -f "$SERVER_LOG"' EXIT
  for _ in $(seq 300); do grep -q "listening" "$SERVER_LOG" && break; sleep 0.1; done
  SERVER_URL=http://$(sed -n 's/.*listening address=\([0-9.:]*\).*/\1/p' "$SERVER_LOG" | head -1)
  [ "$SERVER_URL" != http:// ] || { cat "$SERVER_LOG" >&2; return 1; }
}
# Builds the stream_client wheel with the release profile and installs it
# into $VENV (scripts/python-env.sh, sourced first); sets TARGET to cargo's
# target directory.
install_release_wheel() {
  TARGET=$(cargo metadata --format-version 1 --no-deps |
    "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
  rm -f "$TARGET"/wheels/stream_client-*.whl
  "$VENV/bin/maturin" build --quiet --release -m stream-client-py/Cargo.toml \
    -i "$VENV/bin/python" --out "$TARGET/wheels"
  "$VENV/bin/pip" install --quiet --force-reinstall --no-deps "$TARGET"/wheels/stream_client-*.whl
}
