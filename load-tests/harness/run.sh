#!/usr/bin/env bash
# The load-test harness: every scenario of load-tests/RESULTS.md's "Harness"
# section, side by side in one invocation, then the tables and plots.
#
#   load-tests/harness/run.sh            full run: release builds, the seed stack
#                                (Flask + onnxruntime under uwsgi behind
#                                nginx; venv cached in ~/.cache/score), SECS
#                                seconds a point (default 5). Writes
#                                load-tests/harness/results/ and RESULTS.md's section.
#   load-tests/harness/run.sh --smoke    ~30 s check that the harness works: debug
#                                builds, 1 s points, score-server only,
#                                results in a temporary directory.
#
# Servers bind 127.0.0.1 on free ports; every process started here is
# stopped on exit. Needs nginx (scripts/test.sh installs it) and, for the
# full run, gcc and python3-dev (uwsgi builds from source).
set -euo pipefail
cd "$(dirname "$0")/../.."
smoke=false
[ "${1:-}" = --smoke ] && smoke=true
target=${CARGO_TARGET_DIR:-target}
if $smoke; then
  profile=debug secs=1 warm=0s
  # The test build's artifacts (binaries and examples, with its feature
  # set): a no-op right after `cargo nextest run --workspace` in CI, where
  # `cargo build -p … --examples` would rebuild parquet for other features.
  cargo test -q --workspace --no-run
else
  profile=release secs=${SECS:-5} warm=1s
  cargo build --release -q -p score-server -p loadgen -p stream-client --bins --examples
fi
bin=$target/$profile
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
if $smoke; then out=$tmp/results; else out=load-tests/harness/results; fi
mkdir -p "$out"
runs=$out/runs.jsonl
: >"$runs"
nginx=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}

source load-tests/lib/lib.sh
# load TAGS -- LOADGEN_ARGS: one measured point, appended to runs.jsonl.
load() {
  local tags=()
  while [ "$1" != -- ]; do tags+=(--tag "$1"); shift; done
  shift
  "$bin/loadgen" --json --warmup "$warm" --duration "${secs}s" "${tags[@]}" "$@" >>"$runs"
  python3 -c '
import json, sys
r = json.loads(sys.stdin.readlines()[-1])
print("  %s %s rows=%d c=%d: %.0f rows/s, p99 %.2f ms, %s" % (r.get("scenario"), r.get("target", ""),
      r["rows_per_request"], r["concurrency"], r["rows_per_s"], r["p99_ms"], r["statuses"]))' <"$runs"
}
record() { echo "$1" >>"$runs"; echo "  $1"; }
# cpu_of FILE CMD...: runs CMD (its stdout passes through) and writes the
# CPU seconds it used (user + system, all threads) into FILE.
cpu_of() {
  python3 -c 'import resource, subprocess, sys
code = subprocess.run(sys.argv[2:]).returncode
u = resource.getrusage(resource.RUSAGE_CHILDREN)
open(sys.argv[1], "w").write("%.3f" % (u.ru_utime + u.ru_stime))
sys.exit(code)' "$@"
}
# Rows the server at URL has scored with MODEL (its score_rows_total).
scored_rows() {
  curl -fsS "$1/metrics" | awk -v m="score_rows_total{model=\"$2\"}" '$1 == m {print $2; f=1} END {if (!f) print 0}'
}

# score-server: two workers (one per core), the demo model and the MLP.
start_server() { # PORT [FLAGS...]
  local port=$1
  shift
  "$bin/score-server" --listen "127.0.0.1:$port" --workers 2 \
    --model logreg=models/logreg.onnx --model mlp=models/mlp.onnx "$@" 2>>"$tmp/server.log" &
  server_pid=$!
  pids+=("$server_pid")
  wait_ready "http://127.0.0.1:$port/readyz"
}
stop_server() { kill "$server_pid"; wait "$server_pid" 2>/dev/null || true; }

port=$(free_port)
start_server "$port"
score=http://127.0.0.1:$port

# The seed design: Flask + onnxruntime, uwsgi with one process per core,
# nginx in front on a unix socket.
seed=
if ! $smoke; then
  cache=${SCORE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/score}
  hash=$( (python3 --version; cat load-tests/lib/seed/requirements.txt) | sha256sum | cut -c1-12)
  seedvenv=$cache/seed-venv-$hash
  if [ ! -e "$seedvenv/.complete" ]; then
    echo "creating $seedvenv (pip install -r load-tests/lib/seed/requirements.txt)" >&2
    rm -rf "$seedvenv" && python3 -m venv "$seedvenv"
    "$seedvenv/bin/pip" install -q --disable-pip-version-check -r load-tests/lib/seed/requirements.txt
    touch "$seedvenv/.complete"
  fi
  (cd load-tests/lib/seed && SEED_MODEL=$OLDPWD/models/logreg.onnx exec "$seedvenv/bin/uwsgi" \
    --ini uwsgi.ini --processes 2 --socket "$tmp/uwsgi.sock" --home "$seedvenv" \
    2>"$tmp/uwsgi.log") &
  pids+=($!)
  seedport=$(free_port)
  mkdir -p "$tmp/nginx"
  cat >"$tmp/nginx/nginx.conf" <<EOF
worker_processes auto;
pid $tmp/nginx/nginx.pid;
events { worker_connections 4096; }
http {
    access_log off;
    client_max_body_size 64m;
    client_body_buffer_size 8m;
    client_body_temp_path $tmp/nginx/body;
    uwsgi_temp_path $tmp/nginx/uwsgi;
    proxy_temp_path $tmp/nginx/proxy;
    fastcgi_temp_path $tmp/nginx/fastcgi;
    scgi_temp_path $tmp/nginx/scgi;
    server {
        listen 127.0.0.1:$seedport;
        location / {
            include /etc/nginx/uwsgi_params;
            uwsgi_pass unix:$tmp/uwsgi.sock;
        }
    }
}
EOF
  chmod 755 "$tmp" "$tmp/nginx"
  "$nginx" -p "$tmp/nginx" -c "$tmp/nginx/nginx.conf" -e "$tmp/nginx/error.log" -g 'daemon off;' &
  pids+=($!)
  seed=http://127.0.0.1:$seedport
  wait_ready "$seed/healthz"
fi

echo "== 1. serving overhead: logreg, 100 features; score-server vs the seed design"
if $smoke; then concurrencies="1 4"; else concurrencies="1 2 4 8 16 32"; fi
for rows in 1000 10; do
  for c in $concurrencies; do
    load scenario=overhead target=score-server -- --url "$score/score" --rows "$rows" --concurrency "$c"
    [ -n "$seed" ] && load scenario=overhead target=seed -- --url "$seed/score" --rows "$rows" --concurrency "$c" --no-columns-header
  done
  # The ceiling: the same bytes over loopback TCP, no HTTP, no model.
  for c in $concurrencies; do
    r=$("$bin/examples/loopback" $((rows * 400)) $((rows * 8)) "$c" "$secs")
    record "{\"scenario\":\"ceiling\",\"rows_per_request\":$rows,\"concurrency\":$c,\"raw\":$r}"
  done
done

echo "== 2. serving efficiency: MLP, 1,024 rows a request, vs in-process"
# The server cuts a 1,024-row request into two 512-row chunks (one per
# worker), so in-process is measured at 256, 512 and 1,024 rows a call and
# the best is the reference.
# CPU as well as throughput: loadgen shares the two cores with the server,
# while in-process tract has them to itself, so rows per CPU-second is the
# fair comparison of the work each does per row.
for call_rows in 256 512 1024; do
  line=$(cpu_of "$tmp/cpu" "$bin/examples/inprocess" models/mlp.onnx "$call_rows" 2 "$secs")
  inproc=$(echo "$line" | sed -E 's/.*: ([0-9]+) rows\/s.*/\1/')
  record "{\"scenario\":\"efficiency\",\"target\":\"tract in-process\",\"threads\":2,\"rows_per_call\":$call_rows,\"rows_per_s\":$inproc,\"cpu_s\":$(cat "$tmp/cpu"),\"rows\":$((inproc * secs))}"
done
if ! $smoke; then
  r=$("$seedvenv/bin/python" load-tests/lib/seed/inprocess_ort.py models/mlp.onnx 1024 2 "$secs")
  record "{\"scenario\":\"efficiency\",\"target\":\"onnxruntime in-process\",\"threads\":2,\"raw\":$r}"
fi
for c in 2 4 8; do
  cpu0=$(cpu_ticks "$server_pid") rows0=$(scored_rows "$score" mlp)
  load scenario=efficiency target=score-server -- --url "$score/models/mlp/score" --rows 1024 --concurrency "$c"
  cpu1=$(cpu_ticks "$server_pid") rows1=$(scored_rows "$score" mlp)
  record "{\"scenario\":\"efficiency-cpu\",\"concurrency\":$c,\"cpu_s\":$(((cpu1 - cpu0) * 1000 / $(getconf CLK_TCK)))e-3,\"rows\":$((rows1 - rows0))}"
done

echo "== 3. batch-size sweep: logreg, concurrency 4"
if $smoke; then sizes="1 1024"; else sizes="1 4 16 64 256 1024 4096 16384 65536"; fi
for rows in $sizes; do
  load scenario=sweep target=score-server -- --url "$score/score" --rows "$rows" --concurrency 4
done
stop_server

echo "== 4. overload: MLP, 4,096-row requests, admission 4 x workers x body (docs/deploying.md, sizing)"
# Two workers serve about 2 x 2 = 4 requests at once; 16 is four times that.
port=$(free_port)
start_server "$port" --max-inflight-bytes 13MiB
start_mib=$(peak_mib "$server_pid")
for c in 4 16; do
  load scenario=overload target=score-server -- --url "http://127.0.0.1:$port/models/mlp/score" --rows 4096 --concurrency "$c"
done
record "{\"scenario\":\"overload-rss\",\"start_mib\":$start_mib,\"peak_mib\":$(peak_mib "$server_pid")}"
stop_server

if ! $smoke; then
  echo "== 5. client path: stream-client end to end"
  port=$(free_port)
  start_server "$port"
  for rows in 1000000 10000000; do
    line=$("$bin/examples/e2e" "http://127.0.0.1:$port" "$rows" 4)
    rps=$(echo "$line" | sed -E 's/.*: ([0-9]+) rows\/s.*/\1/')
    rss=$(echo "$line" | sed -E 's/.*peak RSS ([0-9]+) MiB.*/\1/')
    record "{\"scenario\":\"client\",\"rows\":$rows,\"rows_per_s\":$rps,\"client_peak_mib\":$rss}"
  done
  stop_server
fi

# The full run plots with the seed venv's matplotlib; the smoke run only
# checks that the tables render.
if $smoke; then
  python3 load-tests/harness/report.py "$runs" "$out" --no-plots >/dev/null
else
  "$seedvenv/bin/python" load-tests/harness/report.py "$runs" "$out" --results-md load-tests/RESULTS.md
fi
echo "results: $out"
