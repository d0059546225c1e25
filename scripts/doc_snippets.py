"""Docs that cannot drift: every code block of README.md and docs/*.md in a
language people run (sh, bash, python, java, scala, rust) is marked in its
info string, either `run` or `illustration`:

    ```sh run            runs as it is written (it starts what it needs)
    ```sh run=demo       runs against a demo server this script starts first
    ```sh run=dist       runs as a user without Rust would, with the artifacts
                         of scripts/dist.sh: only with --dist (scripts/test-dist.sh)
    ```sh illustration   shows the shape of a call (a cluster, a bucket, hosts
                         that do not exist here); not run

An unmarked block fails the check. A `run` block runs with bash from the
repository root, `set -euo pipefail`, in a process group of its own that is
ended afterwards (servers it starts in the background go with it). The
demo server and any server a block starts listen on a free port of
127.0.0.1: `SCORE_LISTEN` is set to it and the block's `127.0.0.1:8099` and
`localhost:8099` are rewritten to it, so runs never collide. A block fails
when it exits non-zero or prints an error body of the server's
(`"kind":`). `cargo run --release -p score-server` and `... --bin
score-client` in a block run the test build's binaries (target/debug,
which `cargo test --workspace --no-run` builds): the same programs,
without a second, release build in the suite.

    python3 scripts/doc_snippets.py            # check the marks and run the run blocks
    python3 scripts/doc_snippets.py --list     # what would run
    python3 scripts/doc_snippets.py --dist dist --work DIR   # the run=dist blocks

A `run=dist` block runs in DIR, which holds `dist/` and the repository's
example folders (links), on the caller's PATH (test-dist.sh gives one
without cargo) and not the test build's binaries; its `/tmp/` paths are
rewritten into DIR, so the caller finds the outputs there.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
LANGUAGES = {"sh", "bash", "python", "java", "scala", "rust"}
BIN = ROOT / "target" / "debug"
RUN_AS = {"cargo run --release -p score-server": "score-server",
          "cargo run --release -p stream-client --bin score-client": "score-client"}
FENCE = re.compile(r"^```(\S*)(.*)$")


def blocks(path: pathlib.Path):
    """(line, language, marks, text) of each fenced block of PATH."""
    lines = path.read_text().split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i].lstrip())
        if m and m.group(1):
            start, language, marks = i + 1, m.group(1), m.group(2).split()
            indent = len(lines[i]) - len(lines[i].lstrip())
            j = i + 1
            while j < len(lines) and not lines[j].lstrip().startswith("```"):
                j += 1
            yield start, language, marks, "\n".join(l[indent:] for l in lines[i + 1:j])
            i = j
        i += 1


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(port: int, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"the demo server on port {port} was not ready in {seconds} s")


def run(where: str, text: str, demo: bool, env: dict,
        work: pathlib.Path | None = None) -> str | None:
    """Runs one block (in WORK for a run=dist block); None when it passed,
    else why not."""
    port = free_port()
    script = text.replace("127.0.0.1:8099", f"127.0.0.1:{port}").replace(
        "localhost:8099", f"127.0.0.1:{port}")
    if work is not None:
        script = script.replace("/tmp/", f"{work}/")
    # What a reader types builds a release binary; the suite runs the
    # same programs from the test build it already has.
    for command, binary in RUN_AS.items():
        script = re.sub(re.escape(command) + r"(\s+--(?=\s))?", str(BIN / binary), script)
    env = {**env, "SCORE_LISTEN": f"127.0.0.1:{port}"}
    server = None
    if demo:
        server = subprocess.Popen([str(BIN / "score-server")], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                  start_new_session=True)
        wait_ready(port)
    # Output to a file, not a pipe: a server the block starts in the
    # background keeps its copy open after the block ends.
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(["bash", "-c", "set -euo pipefail\n" + script], cwd=work or ROOT,
                            env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        proc.wait(timeout=600)
    except subprocess.TimeoutExpired:
        why = "ran past 600 s"
    else:
        why = None if proc.returncode == 0 else f"exit {proc.returncode}"
    finally:
        for p in (proc, server):
            if p is not None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                p.wait()
    log.seek(0)
    out = log.read()
    if why is None and '"kind":' in out:
        why = "the server answered an error"
    if why:
        return f"{where}: {why}\n{out[-3000:]}"
    print(f"ok  {where}", flush=True)
    return None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--list", action="store_true")
    p.add_argument("--dist", type=pathlib.Path, help="run the run=dist blocks with these artifacts")
    p.add_argument("--work", type=pathlib.Path, help="where the run=dist blocks run")
    args = p.parse_args()
    files = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    unmarked, runs, dist_runs = [], [], []
    for path in files:
        for line, language, marks, text in blocks(path):
            where = f"{path.relative_to(ROOT)}:{line}"
            if language not in LANGUAGES:
                continue
            kind = next((m for m in marks if m.split("=")[0] in ("run", "illustration")), None)
            if kind is None:
                unmarked.append(where)
            elif kind.startswith("run"):
                if language not in ("sh", "bash"):
                    unmarked.append(f"{where} (only sh and bash blocks run)")
                if kind == "run=dist":
                    dist_runs.append((where, text))
                else:
                    runs.append((where, text, kind == "run=demo"))
    if unmarked:
        raise SystemExit("code blocks marked neither run nor illustration:\n  "
                         + "\n  ".join(unmarked))
    if args.list:
        for where, _, demo in runs:
            print(where, "(demo server)" if demo else "")
        for where, _ in dist_runs:
            print(where, "(dist: scripts/test-dist.sh)")
        return
    if args.dist:
        if not args.work:
            raise SystemExit("--dist needs --work")
        return run_dist(args.dist.resolve(), args.work.resolve(), dist_runs)
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    failures = [f for f in (run(where, text, demo, env) for where, text, demo in runs) if f]
    if failures:
        raise SystemExit("\n\n".join(failures))
    print(f"{len(runs)} doc snippets ran ({len(dist_runs)} more run with scripts/test-dist.sh)")


def run_dist(dist: pathlib.Path, work: pathlib.Path, blocks: list) -> None:
    """Runs the run=dist blocks in WORK beside DIST and the examples."""
    if not blocks:
        raise SystemExit("no run=dist block in README.md or docs/")
    work.mkdir(parents=True, exist_ok=True)
    for name, target in [("dist", dist), ("stream-client-py", ROOT / "stream-client-py"),
                         ("stream-client-jvm", ROOT / "stream-client-jvm")]:
        link = work / name
        if not link.exists():
            link.symlink_to(target)
    failures = [f for f in (run(where, text, False, dict(os.environ), work)
                            for where, text in blocks) if f]
    if failures:
        raise SystemExit("\n\n".join(failures))
    print(f"{len(blocks)} dist snippets ran")


if __name__ == "__main__":
    sys.exit(main())
