#!/usr/bin/env bash
# score-server against the tabular peers, the same models on the same two
# cores, driven by the same generator (loadgen, 4 connections) at 10, 1,000
# and 4,096 rows a request:
# - score-server (release, --workers 2): its binary body, and the Open
#   Inference Protocol in JSON like for like;
# - MLServer 1.7.1 (parallel_workers 2, one per core), JSON (its REST
#   protocol has no binary tensors: a binary request is a 500), adaptive
#   batching off and on (max_batch_size 8, max_batch_time 2 ms);
# - Ray Serve 2.60 (load-tests/peers/ray_serve.py: a deployment a model,
#   2 replicas, dashboard off), the binary body score-server takes (Ray has
#   no protocol, so the handler's encoding is ours to choose),
#   `@serve.batch` on (8 requests, 2 ms) and off;
# - BentoML 1.4 (load-tests/peers/bento_service.py: workers 2), a numpy
#   array in JSON (its encoding for one), adaptive batching on and off.
# Models: logreg and mlp (retrained as models/generate.py trains the
# fixtures, checked against them) and a LightGBM classifier (prepare.py).
# Reports rows/s, p50/p99, server CPU a row (the process tree) and peak RSS;
# load-tests/peers/plot.py draws rows/s by request size.
#   load-tests/peers/run.sh [--rounds N] [--seconds S]
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=2 seconds=3
while [ $# -gt 0 ]; do
  case $1 in --rounds) rounds=$2; shift ;; --seconds) seconds=$2; shift ;; esac
  shift
done
source models/venv.sh
cache=${SCORE_CACHE:-$HOME/.cache/score}
# One venv a peer family: MLServer and Ray pin different pydantic and
# starlette versions.
venv=$cache/peers-mlserver
ensure_venv "$venv" load-tests/peers/requirements.txt
ray_venv=$cache/peers-ray
ensure_venv "$ray_venv" load-tests/peers/requirements-ray.txt
cargo build --release -q -p score-server -p loadgen
source load-tests/lib/lib.sh
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
models=$target/peers/models
"$venv/bin/python" load-tests/peers/prepare.py "$models"
out=load-tests/peers/results
mkdir -p "$out"
: >"$out/peers.jsonl"

# CPU ticks and peak RSS (MiB) of a process and all its descendants (Ray's
# workers are the raylet's children, grandchildren of the driver).
tree_pids() { echo "$1"; local c; for c in $(pgrep -P "$1"); do tree_pids "$c"; done; }
tree_ticks() { local t=0; for p in $(tree_pids "$1"); do t=$((t + $(cpu_ticks "$p" 2>/dev/null || echo 0))); done; echo $t; }
tree_peak() { local m=0; for p in $(tree_pids "$1"); do m=$((m + $(peak_mib "$p" 2>/dev/null || echo 0))); done; echo $m; }
hz=$(getconf CLK_TCK)

# One measurement: SERVER_NAME PID URL MODEL ROWS FORMAT OUTPUT [PATH]; with
# PATH the request goes to URL/PATH, else to the model's route. For
# json-rows, OUTPUT names the member that holds the rows.
measure() {
  local name=$1 pid=$2 url=$3 model=$4 rows=$5 format=$6 output=$7 before report input=X
  [ "$format" = json-rows ] && input=$output
  local where=(--url "$url" --model "$model")
  [ $# -gt 7 ] && where=(--url "$url$8")
  before=$(tree_ticks "$pid")
  report=$("$target/release/loadgen" "${where[@]}" --columns 100 --rows "$rows" \
    --concurrency 4 --duration "${seconds}s" --warmup 1s --format "$format" --output "$output" \
    --input "$input" --json --timeout 60s)
  local ticks=$(($(tree_ticks "$pid") - before)) peak
  peak=$(tree_peak "$pid")
  echo "$report" | python3 -c "
import json, sys
d = json.loads(sys.stdin.read())
rows = d['statuses'].get('200', 0) * $rows
d.update(server='$name', model='$model', format='$format', round=$round,
         server_cpu_us_per_row=1e6 * $ticks / $hz / max(rows, 1), peak_rss_mib=$peak)
print(json.dumps(d))" | tee -a "$out/peers.jsonl"
}

# MLServer's model directories and settings: batching off or on.
mlserver_dir() {
  local dir=$target/peers/mlserver-$1 batching=$1
  rm -rf "$dir"; mkdir -p "$dir"
  for m in logreg mlp lgbm; do
    cp -r "$models/$m" "$dir/$m"
    local implementation=mlserver_sklearn.SKLearnModel uri=./model.joblib
    [ "$m" = lgbm ] && implementation=mlserver_lightgbm.LightGBMModel uri=./model.txt
    local extra=""
    [ "$batching" = on ] && extra=', "max_batch_size": 8, "max_batch_time": 0.002'
    echo "{\"name\": \"$m\", \"implementation\": \"$implementation\", \"parameters\": {\"uri\": \"$uri\"}$extra}" \
      >"$dir/$m/model-settings.json"
  done
  local port; port=$(free_port)
  echo "{\"parallel_workers\": 2, \"host\": \"127.0.0.1\", \"http_port\": $port, \"grpc_port\": $(free_port), \"metrics_port\": $(free_port)}" \
    >"$dir/settings.json"
  echo "$dir $port"
}

# One BLAS/OpenMP thread a worker process for the peers that run a process
# a core (MLServer, BentoML), so that two workers use two cores, not four
# threads on two (Ray Serve sets this itself from num_cpus).
one_thread="OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1"
start_bench_server "$target/release/score-server" --workers 2 --model "logreg=models/logreg.onnx" \
  --model "mlp=models/mlp.onnx" --model "lgbm=$models/lgbm.onnx"
score_pid=$SERVER_PID score_url=$SERVER_URL
ml_pids=()
for batching in off on; do
  read -r dir port < <(mlserver_dir $batching)
  (cd "$dir" && exec env $one_thread "$venv/bin/mlserver" start . >"$dir/mlserver.log" 2>&1) &
  ml_pids+=($!)
  for _ in $(seq 600); do curl -fs "http://127.0.0.1:$port/v2/models/lgbm/ready" >/dev/null 2>&1 && break; sleep 0.1; done
  eval "ml_${batching}_url=http://127.0.0.1:$port ml_${batching}_pid=${ml_pids[-1]}"
done
ray_port=$(free_port)
"$ray_venv/bin/python" load-tests/peers/ray_serve.py "$models" "$ray_port" \
  >"$target/peers/ray.log" 2>&1 &
ray_pid=$!
# Ray's daemons outlive a killed driver: end the whole tree.
trap 'kill $score_pid ${ml_pids[*]} $(tree_pids $ray_pid) 2>/dev/null || true; wait 2>/dev/null || true' EXIT
for _ in $(seq 1200); do grep -q '^ready' "$target/peers/ray.log" && break; sleep 0.1; done
grep -q '^ready' "$target/peers/ray.log" || { tail -20 "$target/peers/ray.log" >&2; exit 1; }
ray_url=http://127.0.0.1:$ray_port
bento_port=$(free_port)
env $one_thread PEERS_MODELS="$models" BENTOML_DO_NOT_TRACK=True "$ray_venv/bin/bentoml" serve \
  load-tests/peers/bento_service.py:Peers --host 127.0.0.1 --port "$bento_port" \
  >"$target/peers/bento.log" 2>&1 &
bento_pid=$!
trap 'kill $score_pid ${ml_pids[*]} $(tree_pids $ray_pid) $(tree_pids $bento_pid) 2>/dev/null || true; wait 2>/dev/null || true' EXIT
wait_ready "http://127.0.0.1:$bento_port/readyz"
bento_url=http://127.0.0.1:$bento_port

for round in $(seq "$rounds"); do
  for model in logreg mlp lgbm; do
    ml_output=predict_proba
    [ "$model" = lgbm ] && ml_output=predict
    for rows in 10 1000 4096; do
      measure score-server "$score_pid" "$score_url" "$model" "$rows" binary probabilities
      measure score-server-v2json "$score_pid" "$score_url" "$model" "$rows" v2-json probabilities
      measure mlserver-batching-off "$ml_off_pid" "$ml_off_url" "$model" "$rows" v2-json "$ml_output"
      measure mlserver-batching-on "$ml_on_pid" "$ml_on_url" "$model" "$rows" v2-json "$ml_output"
      measure ray-serve-batching-on "$ray_pid" "$ray_url" "$model" "$rows" binary probabilities
      measure ray-serve-batching-off "$ray_pid" "$ray_url" "$model" "$rows" binary probabilities \
        "/unbatched/models/$model/score"
      measure bentoml-batching-on "$bento_pid" "$bento_url" "$model" "$rows" json-rows x "/$model"
      measure bentoml-batching-off "$bento_pid" "$bento_url" "$model" "$rows" json-rows x \
        "/${model}_unbatched"
    done
  done
done
python3 load-tests/peers/report.py "$out/peers.jsonl" | tee "$out/summary.txt"
# The plot needs matplotlib, in the embedding peers' venv (embed.sh makes it).
if [ -x "$cache/peers-st/bin/python" ]; then
  "$cache/peers-st/bin/python" load-tests/peers/plot.py "$out"
fi
