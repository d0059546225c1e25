#!/usr/bin/env bash
# Soak: SECS (default 600) of mixed traffic against one release score-server
# (the MLP and the demo model, 2 workers, 64 MiB admission budget):
#   - 10-row requests, 2 connections (loadgen, closed loop)
#   - 1,000-row requests, 2 connections
#   - 30,000-row requests (12 MB), 1 connection
#   - clients that send half a body and hang up, 20 a second
#   - SIGHUP every 60 s (re-reads the auth token file; the loadgens carry
#     no token, so authentication is off and SIGHUP is a no-op reload)
# RSS is sampled every 10 s into load-tests/soak/results/soak.csv; the verdict
# compares the last minute's peak with the RSS after the first minute
# (warm-up): growth must stay under 10 %. Not run in CI (10 minutes).
#   load-tests/soak/run.sh            SECS=120 load-tests/soak/run.sh for a short look
set -euo pipefail
cd "$(dirname "$0")/../.."
source load-tests/lib/lib.sh
secs=${SECS:-600}
cargo build --release -q -p score-server -p loadgen
bin=${CARGO_TARGET_DIR:-target}/release
out=load-tests/soak/results
mkdir -p "$out"
port=$(free_port)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT
"$bin/score-server" --listen "127.0.0.1:$port" --workers 2 --max-inflight-bytes 64MiB \
  --model demo=models/logreg.onnx --model mlp=models/mlp.onnx 2>"$out/soak-server.log" &
server=$!
pids+=("$server")
wait_ready "http://127.0.0.1:$port/readyz"
url="http://127.0.0.1:$port/models/mlp/score"
for spec in "10 2" "1000 2" "30000 1"; do
  set -- $spec
  "$bin/loadgen" --json --url "$url" --rows "$1" --concurrency "$2" --duration "${secs}s" \
    >"$out/soak-load-$1.json" &
  pids+=($!)
done
python3 - "$port" "$secs" <<'PY' &
# Clients that declare a 1 MB body, send half of it and hang up.
import socket, sys, time
port, secs = int(sys.argv[1]), float(sys.argv[2])
head = (b"PUT /models/mlp/score HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
        b"Content-Length: 1000000\r\n\r\n")
end = time.time() + secs
while time.time() < end:
    try:
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(head + b"\0" * 500000)
        s.close()
    except OSError:
        pass
    time.sleep(0.05)
PY
pids+=($!)
echo "seconds,rss_mib" >"$out/soak.csv"
start=$(date +%s)
next_hup=60
while :; do
  now=$(( $(date +%s) - start ))
  [ "$now" -ge "$secs" ] && break
  rss=$(awk '/^VmRSS:/ {printf "%d", $2/1024}' "/proc/$server/status")
  echo "$now,$rss" >>"$out/soak.csv"
  if [ "$now" -ge "$next_hup" ]; then kill -HUP "$server"; next_hup=$((next_hup + 60)); fi
  sleep 10
done
sleep 2
kill -0 "$server" # still alive
python3 - "$out" <<'PY'
import csv, json, sys, glob
out = sys.argv[1]
rows = [(int(r["seconds"]), int(r["rss_mib"])) for r in csv.DictReader(open(f"{out}/soak.csv"))]
warmup = min(60, rows[-1][0] // 4)
warm = next(rss for t, rss in rows if t >= warmup)
last = max(rss for t, rss in rows if t >= rows[-1][0] - 60)
growth = last / warm - 1
print(f"RSS after warm-up ({warmup} s) {warm} MiB, peak of the last minute {last} MiB: growth {growth:+.1%}"
      f" ({'under' if growth < 0.10 else 'OVER'} the 10 % target)")
for f in sorted(glob.glob(f"{out}/soak-load-*.json")):
    r = json.loads(open(f).read().strip().splitlines()[-1])
    print(f"  {r['rows_per_request']:>6} rows: {r['ok']} ok, {r['rows_per_s']:.0f} rows/s, "
          f"p99 {r['p99_ms']:.1f} ms, {r['statuses']}, {r['transport_errors']} transport errors, {r['wrong_answers']} wrong")
PY
