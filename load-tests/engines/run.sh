#!/usr/bin/env bash
# score-server under --engine auto against onnxruntime in-process, same
# threads:
#   load-tests/engines/run.sh [ROUNDS]
# For each model: a release score-server with 2 workers and --engine auto
# (what it kept and why, from /models), loaded by loadgen at 1,024 rows a
# request (concurrency 4, 1 s warm-up + 5 s); then the same server with
# --engine tract; then onnxruntime in-process in Python with 2 intra-op
# threads, 1,024 rows a call, for 5 s (load-tests/lib/seed/inprocess_ort.py).
# Everything shares the machine's cores, taken in turn, ROUNDS times;
# medians (table on stdout, runs in load-tests/engines/results/engines.jsonl).
# PIN=1 computes on one and the same core on both sides: the server's one
# worker thread (score-worker-0) and onnxruntime in-process (1 thread) on
# core 0; the server's I/O threads and loadgen on core 1, so neither HTTP
# nor the load generator takes from the compute core
# (results/engines-pinned.jsonl).
# ONLY=mlp,wide-mlp limits the models. Models: the MLP fixture, a 3-layer
# wide MLP (load-tests/engines/engine_models.py), and tree ensembles (the forest
# fixture, zoo exports of LightGBM, gradient boosting and random forest).
set -euo pipefail
cd "$(dirname "$0")/../.."
source load-tests/lib/lib.sh
source models/venv.sh
rounds=${1:-2}
pin=${PIN:-0}
workers=2 threads=2 on_server=() on_loadgen=() on_compute=() out=load-tests/engines/results/engines.jsonl
if [ "$pin" = 1 ]; then
  workers=1 threads=1 on_server=(taskset -c 1) on_loadgen=(taskset -c 1)
  on_compute=(taskset -c 0)
  out=load-tests/engines/results/engines-pinned.jsonl
fi
venv=${MODELS_VENV:-target/models-venv}
ensure_venv "$venv" models/requirements.txt
ORT_DYLIB_PATH=$(scripts/onnxruntime.sh)
export ORT_DYLIB_PATH
cargo build --release -q -p score-server -p loadgen
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
models_dir=${ENGINE_MODELS:-$target/engine-models}
[ -f "$models_dir/wide-mlp.onnx" ] || "$venv/bin/python" load-tests/engines/engine_models.py "$models_dir"
models=(
  "mlp=models/mlp.onnx"
  "wide-mlp=$models_dir/wide-mlp.onnx"
  "forest=models/forest.onnx"
  "lgbm=models/zoo/lgbm-multiclass-nozipmap.onnx"
  "gb=models/zoo/gb-multiclass-nozipmap.onnx"
  "rf=models/zoo/rf-binary-nozipmap.onnx"
)
if [ -n "${ONLY:-}" ]; then
  kept=()
  for spec in "${models[@]}"; do
    [[ ",$ONLY," == *",${spec%%=*},"* ]] && kept+=("$spec")
  done
  models=("${kept[@]}")
fi
# Every measurement, kept for load-tests/engines/engines_plot.py (results/engines.png).
: >"$out"
serve() { # NAME PATH ENGINE ROUND
  local log pid url
  log=$(mktemp /tmp/engines-server.XXXXXX)
  "${on_server[@]}" "$target/release/score-server" --listen 127.0.0.1:0 --workers "$workers" --model "$1=$2" \
    --engine "$3" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do grep -q "listening" "$log" && break; sleep 0.1; done
  url=http://$(sed -n 's/.*listening address=\([0-9.:]*\).*/\1/p' "$log" | head -1)
  if [ "$url" = http:// ]; then cat "$log" >&2; kill "$pid" 2>/dev/null || true; return 1; fi
  if [ "$pin" = 1 ]; then # the worker thread alone onto the compute core
    for task in /proc/"$pid"/task/*; do
      grep -q '^score-worker' "$task/comm" && taskset -p -c 0 "${task##*/}" >/dev/null
    done
  fi
  local doc
  doc=$(curl -fsS "$url/models/$1")
  columns=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["input"]["columns"])' "$doc")
  "${on_loadgen[@]}" "$target/release/loadgen" --json --warmup 1s --duration 5s --url "$url/models/$1/score" \
    --rows 1024 --columns "$columns" --concurrency 4 --tag "model=$1" --tag "variant=served-$3" --tag "round=$4" |
    python3 -c '
import json, sys
r = json.loads(sys.stdin.read()); d = json.loads(sys.argv[1])
r["engine"] = d.get("engine"); r["engine_reason"] = d.get("engine_reason")
print(json.dumps(r))' "$doc" >>"$out"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  rm -f "$log"
  tail -1 "$out" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print("  %-9s %-16s %11.0f rows/s  engine %s" % (r["model"], r["variant"], r["rows_per_s"], r["engine"]))'
}
for round in $(seq "$rounds"); do
  for spec in "${models[@]}"; do
    name=${spec%%=*} path=${spec#*=}
    serve "$name" "$path" auto "$round"
    serve "$name" "$path" tract "$round"
    "${on_compute[@]}" "$venv/bin/python" load-tests/lib/seed/inprocess_ort.py "$path" 1024 "$threads" 5 |
      python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
r.update(model=sys.argv[1], variant="onnxruntime-inprocess", round=sys.argv[2])
print(json.dumps(r))' "$name" "$round" >>"$out"
    tail -1 "$out" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print("  %-9s %-16s %11.0f rows/s" % (r["model"], "ort in-process", r["rows_per_s"]))'
  done
done
python3 - "$out" <<'PY'
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1])]
def med(model, variant):
    return statistics.median(r["rows_per_s"] for r in runs
                             if r["model"] == model and r["variant"] == variant)
print("\n| model | auto kept | served, auto (rows/s) | served, tract | onnxruntime in-process | auto / in-process | auto's measurement |")
print("|---|---|---:|---:|---:|---:|---|")
for model in dict.fromkeys(r["model"] for r in runs):
    auto = [r for r in runs if r["model"] == model and r["variant"] == "served-auto"]
    kept = sorted({r["engine"] for r in auto})
    reason = auto[-1]["engine_reason"].replace("auto: onnxruntime/tract speed ", "").split(" (one")[0]
    a, t, o = med(model, "served-auto"), med(model, "served-tract"), med(model, "onnxruntime-inprocess")
    print(f"| {model} | {'/'.join(kept)} | {a:,.0f} | {t:,.0f} | {o:,.0f} | **{a / o:.2f}x** | {reason} |")
PY
echo "runs in $out; plot: python load-tests/engines/engines_plot.py (matplotlib)"
