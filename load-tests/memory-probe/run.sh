#!/usr/bin/env bash
# Peak and idle memory of score-server under four concurrent 60 MB bodies
# (binary and JSON, with Content-Length and chunked), against its 256 MiB
# admission budget: the "memory above the budget" probe.
#   load-tests/memory-probe/run.sh            (release build; ~2 min)
# Prints one line per case: answers, peak RSS (VmHWM), RSS after 20 s idle.
set -euo pipefail
cd "$(dirname "$0")/../.."
source load-tests/lib/lib.sh
cargo build --release -q -p score-server
bin=${CARGO_TARGET_DIR:-target}/release/score-server
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 - "$tmp" <<'PY'
import random, struct, sys
random.seed(1)
d = sys.argv[1]
row = struct.pack('<100f', *[random.random() for _ in range(100)])
open(f'{d}/big.f32', 'wb').write(row * 150000)            # 60,000,000 bytes
row = '[' + ','.join('%.3f' % random.random() for _ in range(100)) + ']'
open(f'{d}/big.json', 'w').write('[' + ','.join([row] * 100000) + ']')  # ~60 MB
PY
probe() { # FILE CONTENT_TYPE CHUNKED(yes/no)
  local port; port=$(free_port)
  "$bin" --listen "127.0.0.1:$port" --body-limit 64MiB --max-inflight-bytes 256MiB 2>/dev/null &
  local pid=$!
  wait_ready "http://127.0.0.1:$port/readyz"
  local extra=() codes=()
  [ "$3" = yes ] && extra=(-H "Transfer-Encoding: chunked")
  for _ in 1 2 3 4; do
    curl -s -o /dev/null -w "%{http_code}\n" -X PUT -H "Content-Type: $2" "${extra[@]}" \
      --data-binary "@$tmp/$1" "http://127.0.0.1:$port/score" >>"$tmp/codes" &
  done
  wait $(jobs -p | grep -v "^$pid\$")
  local peak; peak=$(peak_mib "$pid")
  sleep 20
  local idle; idle=$(awk '/^VmRSS:/ {printf "%d", $2/1024}' "/proc/$pid/status")
  kill "$pid"; wait "$pid" 2>/dev/null || true
  echo "$1 chunked=$3: answers $(sort "$tmp/codes" | uniq -c | awk '{printf "%s×%s ", $1, $2}')peak ${peak} MiB (budget 256 MiB), ${idle} MiB after 20 s idle"
  rm -f "$tmp/codes"
}
for f in "big.f32 application/octet-stream" "big.json application/json"; do
  set -- $f
  probe "$1" "$2" no
  probe "$1" "$2" yes
done
