#!/usr/bin/env bash
# Score a Parquet dataset on a Spark cluster in containers: a Spark
# standalone master, two workers and a driver (docker/spark/), three
# score-server replicas and nginx (docker/compose.yaml), one Docker network,
# a volume at /data for Parquet in and out.
#   scripts/spark-cluster.sh up     # build the images (once) and start it all
#   scripts/spark-cluster.sh demo   # up, then score ROWS demo rows (default
#                                   # 1,000,000) with PySpark and with Java
#   scripts/spark-cluster.sh down   # stop and remove it, the volume too
# Environment: ROWS; SCORE_SPARK_PROJECT (compose project, default
# score-spark); SCORE_TAG; BINARY, WHEEL, JAR (ship these instead of
# building: dist/ or a test build).
set -euo pipefail
cd "$(dirname "$0")/.."
project=${SCORE_SPARK_PROJECT:-score-spark}
export SCORE_PORT=${SCORE_PORT:-0} SCORE_CPUS=${SCORE_CPUS:-1}
compose=(docker-compose -p "$project" -f docker/compose.yaml -f docker/spark/compose.yaml)
tag=${SCORE_TAG:-latest}
urls=http://score-1:8099,http://score-2:8099,http://score-3:8099

have() { docker image inspect "$1" >/dev/null 2>&1; }

up() {
  docker/base-images.sh
  have "score-server:$tag" && have "score-nginx:$tag" || docker/build.sh
  have "score-spark:$tag" || docker/spark/build.sh
  "${compose[@]}" up -d --no-build
  # The workers have registered once the master lists them as ALIVE.
  for _ in $(seq 60); do
    alive=$("${compose[@]}" exec -T driver python3 -c '
import json, urllib.request
s = json.load(urllib.request.urlopen("http://spark-master:8080/json/"))
print(sum(w["state"] == "ALIVE" for w in s["workers"]))' 2>/dev/null || echo 0)
    [ "$alive" = 2 ] && break
    sleep 1
  done
  [ "$alive" = 2 ] || { echo "the Spark workers did not register" >&2; exit 1; }
  echo "Spark master spark://spark-master:7077 with 2 workers; replicas $urls"
}

submit() { # spark-submit on the driver, against the cluster, with an event log
  "${compose[@]}" exec -T driver mkdir -p /data/events
  "${compose[@]}" exec -T driver spark-submit --master spark://spark-master:7077 \
    --conf spark.driver.host=driver --conf spark.ui.enabled=false \
    --conf spark.eventLog.enabled=true --conf spark.eventLog.dir=file:///data/events "$@"
}

demo() {
  up
  rows=${ROWS:-1000000}
  local url_args=()
  for url in ${urls//,/ }; do url_args+=(--url "$url"); done
  submit /work/python/score_parquet.py "${url_args[@]}" \
    --demo "$rows" --input /data/demo-in --output /data/demo-python
  "${compose[@]}" exec -T driver sh -c 'rm -rf /tmp/classes && mkdir /tmp/classes &&
    javac -cp "/opt/score/score-client.jar:$SPARK_HOME/jars/*" -d /tmp/classes \
      /work/java/ScoreParquet.java && jar --create --file /tmp/job.jar -C /tmp/classes .'
  submit --jars /opt/score/score-client.jar --class example.ScoreParquet /tmp/job.jar \
    "$urls" /data/demo-in /data/demo-java
}

case "${1:-}" in
  up) up ;;
  demo) demo ;;
  down) "${compose[@]}" down -v --remove-orphans ;;
  *) sed -n '2,13p' "$0" >&2; exit 2 ;;
esac
