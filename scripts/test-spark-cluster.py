#!/usr/bin/env python3
"""Faults between hosts, on the Spark cluster in containers
(scripts/spark-cluster.sh): a PySpark job (mapInArrow, stream_client) and a
Java job (spark-submit with score-client.jar) each score ROWS rows of
Parquet on two workers through three score-server replicas, once cleanly
and once under each fault, injected mid-job:

  worker-killed     a Spark worker's container is killed (docker kill): its
                    executor and tasks are lost, Spark runs them again
  replica-cut       a replica is cut off the network (docker network
                    disconnect): no RST, its connections hang
  replica-replaced  a replica is replaced by one serving another version of
                    the model: the pinned job must not mix versions
  nginx-restarted   the job goes through nginx, which is restarted

Every output must equal the clean run's bit for bit, every id exactly once;
a job that fails must say why in the versions' terms (replica-replaced
only). Prints, for each job and fault, the Spark task failures and
re-runs, the client's retries and endpoint ejections, the requests nginx
passed to another replica, the time added to the job, and the rows lost
or duplicated; exits 1 on any failed check.

    scripts/test-spark-cluster.py [--rows N] [--only CASE,...] [--keep-up]

Needs Docker and the images (scripts/spark-cluster.sh up builds them).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = ROOT / "scripts" / "spark-cluster.sh"
PROJECT = "score-spark-test"
REPLICAS = ["http://score-1:8099", "http://score-2:8099", "http://score-3:8099"]
NGINX = ["http://nginx:8080"]
CASES = ["worker-killed", "replica-cut", "replica-replaced", "nginx-restarted"]
ENV = {"SCORE_SPARK_PROJECT": PROJECT}


def sh(*args: str, check: bool = True, capture: bool = True, env: dict | None = None) -> str:
    import os

    done = subprocess.run(args, check=False, text=True, env={**os.environ, **ENV, **(env or {})},
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.STDOUT if capture else None)
    if check and done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} exited {done.returncode}:\n{(done.stdout or '')[-3000:]}")
    return done.stdout or ""


def container(service: str) -> str:
    return f"{PROJECT}_{service}_1"


def network() -> str:
    return f"{PROJECT}_default"


def driver(*args: str, check: bool = True) -> str:
    return sh("docker", "exec", container("driver"), *args, check=check)


class Job:
    """A spark-submit on the driver, run in a thread: its exit status,
    output and wall time once done."""

    def __init__(self, lang: str, urls: list[str], out: str, app: str, demo: int = 0) -> None:
        self.lang, self.out, self.app = lang, out, app
        submit = ["docker", "exec", container("driver"), "spark-submit",
                  "--master", "spark://spark-master:7077",
                  # The jobs name themselves; this tells their event logs apart.
                  "--conf", f"spark.score.test={app}",
                  "--conf", "spark.driver.host=driver",
                  # The driver's REST API tells when the job is mid-way.
                  "--conf", "spark.ui.enabled=true", "--conf", "spark.ui.port=4040",
                  "--conf", "spark.ui.showConsoleProgress=false",
                  "--conf", "spark.eventLog.enabled=true",
                  "--conf", "spark.eventLog.dir=file:///data/events",
                  # One plain JSON file an application (Spark 4 compresses
                  # them, and can roll them in a folder).
                  "--conf", "spark.eventLog.rolling.enabled=false",
                  "--conf", "spark.eventLog.compress=false",
                  "--conf", "spark.executorEnv.STREAM_CLIENT_LOG=info"]
        if lang == "python":
            self.argv = [*submit, "/work/python/score_parquet.py",
                         *[a for u in urls for a in ("--url", u)],
                         "--input", "/data/in", "--output", out,
                         *(["--demo", str(demo)] if demo else [])]
        else:
            self.argv = [*submit, "--jars", "/opt/score/score-client.jar",
                         "--class", "example.ScoreParquet", "/tmp/job.jar",
                         ",".join(urls), "/data/in", out]
        self.rc: int | None = None
        self.output = ""
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self._run)
        self.thread.start()

    def _run(self) -> None:
        done = subprocess.run(self.argv, text=True, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, check=False)
        self.seconds = time.monotonic() - self.started
        self.rc, self.output = done.returncode, done.stdout

    def wait(self) -> "Job":
        self.thread.join()
        return self


def finished_tasks(app: str) -> int:
    """Tasks of APP's scoring stage finished so far (from its event log)."""
    return sum(1 for e in events(app) if e.get("Event") == "SparkListenerTaskEnd")


def events(app: str) -> list[dict]:
    # Spark names the file by the application's id; the tag is inside.
    text = driver("sh", "-c", f"f=$(grep -l '\"spark.score.test\":\"{app}\"' /data/events/* "
                  "2>/dev/null | head -n 1); [ -z \"$f\" ] || cat \"$f\"", check=False)
    found = []
    for line in text.splitlines():
        try:
            found.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # the log's last line, being written
    return found


def app_id_of(app: str) -> str | None:
    for e in events(app):
        if e.get("Event") == "SparkListenerApplicationStart":
            return e.get("App ID")
    return None


def task_summary(app: str) -> dict:
    """Hosts the tasks ran on, the tasks that failed and the re-runs."""
    hosts, failed, reruns = set(), 0, 0
    for e in events(app):
        if e.get("Event") != "SparkListenerTaskEnd":
            continue
        info = e["Task Info"]
        hosts.add(info["Host"])
        if e["Task End Reason"]["Reason"] != "Success":
            failed += 1
        if info["Attempt"] > 0:
            reruns += 1
    return {"hosts": sorted(hosts), "task_failures": failed, "task_reruns": reruns}


def client_summary(app: str) -> dict:
    """The stream_client lines of APP's executors ("scoring stream ended"):
    requests, retries, failed batches and endpoint ejections. Each line
    holds its process's totals so far (one client a process), so the last
    line of each executor log and process counts."""
    app_id = app_id_of(app)
    if not app_id:
        return {}
    logs = driver("sh", "-c", f"for f in /data/spark-work/*/{app_id}/*/stderr; do "
                  "echo \"== $f\"; cat \"$f\"; done 2>/dev/null || true", check=False)
    last: dict[tuple[str, str], str] = {}
    log = ""
    for line in logs.splitlines():
        if line.startswith("== "):
            log = line
        elif "scoring stream ended" in line:
            pid = re.search(r"\bpid=(\d+)", line)
            last[(log, pid.group(1) if pid else "")] = line
    totals = {"client_processes": len(last), "requests": 0, "retries": 0,
              "failed_batches": 0, "ejections": 0}
    reasons: dict[str, int] = {}
    for line in last.values():
        for key in ("requests", "retries", "failed_batches", "ejections"):
            m = re.search(rf"\b{key}=(\d+)", line)
            totals[key] += int(m.group(1)) if m else 0
        m = re.search(r'retry_reasons="?([a-z0-9: ]*)', line)
        for label, n in re.findall(r"([a-z0-9]+):(\d+)", m.group(1) if m else ""):
            reasons[label] = reasons.get(label, 0) + int(n)
    totals["retry_reasons"] = " ".join(f"{k}:{v}" for k, v in sorted(reasons.items()))
    return totals


def compare(out: str, clean: str) -> dict:
    """OUT against CLEAN: rows, ids missing, ids more than once, scores that differ."""
    code = f"""
import json, pyarrow.parquet as pq, pyarrow.compute as pc
got = pq.read_table({out!r}).sort_by('id'); want = pq.read_table({clean!r}).sort_by('id')
ids = got['id']
dup = len(ids) - pc.count_distinct(ids).as_py()
lost = len(set(want['id'].to_pylist()) - set(ids.to_pylist()))
same = got.num_rows == want.num_rows and got['score'].equals(want['score'])
print(json.dumps({{"rows": got.num_rows, "lost": lost, "duplicated": dup, "equal": same}}))
"""
    return json.loads(driver("python3", "-c", code).strip().splitlines()[-1])


def nginx_passed_on() -> int:
    """Requests nginx resent to another replica after one failed: access
    log lines (nginx/nginx.conf's `score` format) naming more than one
    upstream address ("score-1:8099, score-2:8099")."""
    text = sh("docker", "logs", container("nginx"), check=False)
    return len(re.findall(r'^\S+ \d{3} "[^"]*" "[^",]*,[^"]*"', text, re.M))


def wait_workers(n: int) -> None:
    code = """
import json, urllib.request
s = json.load(urllib.request.urlopen("http://spark-master:8080/json/"))
print(sum(w["state"] == "ALIVE" for w in s["workers"]))"""
    for _ in range(120):
        if driver("python3", "-c", code, check=False).strip() == str(n):
            return
        time.sleep(1)
    raise SystemExit(f"{n} Spark workers did not register")


def executors() -> list[dict]:
    """The running application's executors, from its driver's REST API
    (the event log is buffered: a task shows there late)."""
    code = """
import json, urllib.request
base = "http://localhost:4040/api/v1/applications"
try:
    app = json.load(urllib.request.urlopen(base, timeout=2))[0]["id"]
    print(json.dumps(json.load(urllib.request.urlopen(f"{base}/{app}/executors", timeout=2))))
except Exception:
    print("[]")"""
    text = driver("python3", "-c", code, check=False).strip().splitlines()
    try:
        return [e for e in json.loads(text[-1]) if e.get("id") != "driver"]
    except (IndexError, json.JSONDecodeError):
        return []


def wait_fleet(limit: float = 60) -> None:
    """Waits until the three replicas and nginx answer by name from the
    driver: a case must leave the fleet as it found it."""
    code = """
import urllib.request
for url in %r:
    urllib.request.urlopen(url + "/readyz", timeout=2)
print("ready")""" % (REPLICAS + NGINX)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if driver("python3", "-c", code, check=False).strip().endswith("ready"):
            return
        time.sleep(1)
    raise SystemExit(f"the fleet did not answer again within {limit:.0f} s")


def mid_job(job: "Job", host: str | None = None, limit: float = 120) -> None:
    """Returns once JOB is mid-job: a scoring task has finished and another
    is running (on HOST, when given: the fault must find work there)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and job.rc is None:
        found = executors()
        done = sum(e.get("completedTasks", 0) for e in found)
        running = [e["hostPort"].rsplit(":", 1)[0] for e in found if e.get("activeTasks", 0) > 0]
        if done and any(host in (None, h) for h in running):
            return
        time.sleep(0.2)
    raise SystemExit(f"{job.app}: not mid-job after {time.monotonic() - job.started:.0f} s"
                     f"{'' if job.rc is None else f' (it ended, exit {job.rc})'}")


def replace_replica() -> None:
    """score-3 gives way to a container of the same name on the network
    serving the MLP as `demo`: another version of the model."""
    sh("docker", "stop", "-t", "5", container("score-3"))
    image = sh("docker", "inspect", "-f", "{{.Config.Image}}", container("score-3")).strip()
    sh("docker", "run", "-d", "--name", f"{PROJECT}-score-3-v2", "--network", network(),
       "--network-alias", "score-3", "-v", f"{ROOT / 'models'}:/srv/models:ro",
       "-e", "SCORE_MODEL=demo=/srv/models/mlp.onnx", image)


def restore_replica() -> None:
    sh("docker", "rm", "-f", f"{PROJECT}-score-3-v2", check=False)
    sh("docker", "start", container("score-3"))


def run_case(case: str, lang: str, clean: dict, results: list) -> bool:
    app = f"{lang}-{case}-{int(time.time())}"
    out = f"/data/out-{lang}-{case}"
    urls = NGINX if case == "nginx-restarted" else REPLICAS
    nginx_before = nginx_passed_on()
    job = Job(lang, urls, out, app)
    mid_job(job, "spark-worker-2" if case == "worker-killed" else None)
    injected = time.monotonic()
    if case == "worker-killed":
        sh("docker", "kill", container("spark-worker-2"))
    elif case == "replica-cut":
        sh("docker", "network", "disconnect", network(), container("score-2"))
    elif case == "replica-replaced":
        replace_replica()
    elif case == "nginx-restarted":
        sh("docker", "restart", "-t", "1", container("nginx"))
    job.wait()
    time.sleep(1.5)  # nginx flushes its access log each second
    # Put the cluster back as it was for the next case.
    if case == "worker-killed":
        sh("docker", "start", container("spark-worker-2"))
        wait_workers(2)
    elif case == "replica-cut":
        # With its service name: a plain connect leaves the container
        # without it, and nginx, resolving its upstreams as it starts,
        # would then fail to start.
        sh("docker", "network", "connect", "--alias", "score-2", network(), container("score-2"))
    elif case == "replica-replaced":
        restore_replica()
    wait_fleet()
    row = {"job": lang, "fault": case, "exit": job.rc, "seconds": round(job.seconds, 1),
           "added_s": round(job.seconds - clean[lang]["seconds"], 1),
           "fault_at_s": round(injected - job.started, 1),
           **task_summary(app), **client_summary(app),
           "nginx_passed_on": nginx_passed_on() - nginx_before}
    ok = True
    if job.rc == 0:
        row.update(compare(out, clean[lang]["out"]))
        ok = row["equal"] and row["lost"] == 0 and row["duplicated"] == 0
    else:
        # Only a version change may fail the job, and it must say so.
        said = re.search(r"version", job.output, re.I)
        row["failure"] = (said and job.output[max(0, said.start() - 300):said.end() + 300]) or \
            job.output[-1500:]
        ok = case == "replica-replaced" and said is not None
    row["ok"] = ok
    results.append(row)
    print(json.dumps(row), flush=True)
    return ok


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=2_000_000)
    p.add_argument("--only", default=",".join(CASES), help="faults to inject, comma-separated")
    p.add_argument("--jobs", default="python,java", help="jobs to run, comma-separated")
    p.add_argument("--keep-up", action="store_true", help="leave the cluster running")
    args = p.parse_args()
    sh(str(CLUSTER), "down", capture=True, check=False)
    sh(str(CLUSTER), "up", capture=False)
    results: list[dict] = []
    ok = True
    try:
        driver("sh", "-c", "rm -rf /tmp/classes && mkdir /tmp/classes && "
               "javac -cp \"/opt/score/score-client.jar:$SPARK_HOME/jars/*\" -d /tmp/classes "
               "/work/java/ScoreParquet.java && jar --create --file /tmp/job.jar -C /tmp/classes .")
        driver("mkdir", "-p", "/data/events")
        # The input, written by Spark once (score_parquet.py --demo writes it,
        # then scores it: a warm-up, not timed).
        job = Job("python", REPLICAS, "/data/warm-up", "python-input", demo=args.rows).wait()
        if job.rc != 0:
            raise SystemExit(f"writing the input failed:\n{job.output[-3000:]}")
        clean = {}
        for lang in args.jobs.split(","):
            app = f"{lang}-clean-{int(time.time())}"
            out = f"/data/clean-{lang}"
            job = Job(lang, REPLICAS, out, app).wait()
            if job.rc != 0:
                raise SystemExit(f"the clean {lang} job failed:\n{job.output[-3000:]}")
            tasks = task_summary(app)
            row = {"job": lang, "fault": "none", "seconds": round(job.seconds, 1), **tasks,
                   **client_summary(app)}
            both = len(tasks["hosts"]) == 2
            row["ok"] = both
            ok &= both
            print(json.dumps(row), flush=True)
            results.append(row)
            clean[lang] = {"seconds": job.seconds, "out": out}
        if "python" in clean and "java" in clean:
            same = compare(clean["java"]["out"], clean["python"]["out"])
            print(json.dumps({"python_equals_java": same}), flush=True)
            ok &= same["equal"] and same["lost"] == 0 and same["duplicated"] == 0
        for case in args.only.split(","):
            for lang in clean:
                ok &= run_case(case, lang, clean, results)
    finally:
        if not args.keep_up:
            sh(str(CLUSTER), "down", check=False)
    print("\n" + summary(results))
    sys.exit(0 if ok else 1)


def summary(results: list[dict]) -> str:
    cols = ["job", "fault", "ok", "seconds", "added_s", "task_failures", "task_reruns",
            "retries", "retry_reasons", "ejections", "nginx_passed_on", "lost", "duplicated"]
    lines = [" | ".join(cols)]
    for r in results:
        lines.append(" | ".join(str(r.get(c, "")) for c in cols))
    return "\n".join(lines)


if __name__ == "__main__":
    main()
