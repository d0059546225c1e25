"""Small bodies that cost much after arrival: each reproduction against a
fresh score-server under an address-space cap, beside a client that keeps
scoring 10-row requests, reporting per case the answers, the server's peak
RSS growth, the 10-row client's p99 and worst latency, and whether the
server was still up. Driven by load-tests/hostile-probe/run.sh.

    python hostile_probe.py BINARY [BINARY ...] --embed-dir DIR [--cap 2GiB]

With several binaries (a build before a change and after), every case runs
on each in turn, so the table compares them side by side.
"""

import argparse
import io
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pyarrow as pa

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kib(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Server:
    def __init__(self, binary, embed_dir, cap, extra=()):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        models = [
            "--model", f"logreg={ROOT}/models/logreg.onnx",
            "--model", f"mixed={ROOT}/models/zoo/mixed-logreg.onnx",
            "--model", f"mini={embed_dir}",
        ]
        cmd = ["prlimit", f"--as={cap}", binary, "--listen", f"127.0.0.1:{self.port}",
               "--workers", "2", *models, *extra]
        self.log = open(f"/tmp/hostile-probe-{self.port}.log", "w")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.up():
                break
            time.sleep(0.2)
        else:
            raise SystemExit(f"{binary} did not start (log {self.log.name})")
        # Workers make their model states after the server listens: wait
        # until the peak holds still.
        last = -1
        while True:
            time.sleep(1)
            peak = status_kib(self.proc.pid, "VmHWM")
            if peak == last:
                break
            last = peak
        self.baseline = last

    def up(self, timeout=2):
        try:
            with urllib.request.urlopen(self.base + "/healthz", timeout=timeout) as r:
                return r.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def growth_mib(self):
        peak = status_kib(self.proc.pid, "VmHWM")
        return None if peak is None else (peak - self.baseline) // 1024

    def stop(self):
        self.proc.kill()
        self.proc.wait()
        self.log.close()


def request(base, method, path, body, content_type, timeout=300, headers=None):
    req = urllib.request.Request(base + path, data=body, method=method)
    req.add_header("content-type", content_type)
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            return r.status
    except urllib.error.HTTPError as e:
        e.read()
        return e.code
    except (urllib.error.URLError, OSError) as e:
        return type(e).__name__


def small_client(base, stop, out):
    """Scores 10 rows of 100 features, one request after another, until
    `stop` is set; puts its latencies (seconds) and failures in `out`. A
    process of its own: the probe's own work (building bodies) must not
    delay it."""
    body = np.linspace(-1, 1, 1000, dtype=np.float32).tobytes()
    latencies, failures = [], 0
    while not stop.is_set():
        started = time.perf_counter()
        status = request(base, "PUT", "/models/logreg/score", body,
                         "application/octet-stream", timeout=120)
        latencies.append(time.perf_counter() - started)
        failures += status != 200
        time.sleep(0.02)
    out.put((latencies, failures))


class SmallClient:
    def __init__(self, base):
        self.stop = multiprocessing.Event()
        self.out = multiprocessing.Queue()
        self.proc = multiprocessing.Process(target=small_client, args=(base, self.stop, self.out))

    def start(self):
        self.proc.start()

    def summary(self):
        self.stop.set()
        lat, failures = self.out.get(timeout=150)
        self.proc.join()
        lat = sorted(lat)
        if not lat:
            return "no request finished"
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return f"p99 {p99 * 1e3:.1f} ms, worst {lat[-1] * 1e3:.0f} ms, {failures} failed of {len(lat)}"


def arrow_stream(batches, deltas=False):
    sink = io.BytesIO()
    options = pa.ipc.IpcWriteOptions(emit_dictionary_deltas=deltas)
    with pa.ipc.new_stream(sink, batches[0].schema, options=options) as writer:
        for b in batches:
            writer.write_batch(b)
    return sink.getvalue()


def growing_dictionary(first, count):
    """`f: dictionary<int32, utf8>`, `count` one-row batches whose
    dictionary grows by a word each after a first entry of `first` bytes."""
    words = pa.array(["x" * first] + [f"w{i}" for i in range(1, count)])
    batches = []
    for i in range(count):
        # A prefix of one array: O(1) a batch, and each dictionary extends
        # the one before, so pyarrow writes the new word as a delta.
        arr = pa.DictionaryArray.from_arrays(pa.array([i], pa.int32()), words.slice(0, i + 1))
        batches.append(pa.record_batch([arr], names=["f"]))
    return arrow_stream(batches, deltas=True)


def mixed(city, rows):
    return pa.record_batch([
        pa.array(np.full(rows, 1.5, np.float32)),
        pa.array(np.full(rows, 2.5, np.float32)),
        pa.array(np.full(rows, 3, np.int64)),
        city,
        pa.array(["pro"] * rows),
    ], names=["age", "income", "visits", "city", "plan"])


def one_word(word, rows):
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, np.int32)), pa.array([word]))


ARROW = "application/vnd.apache.arrow.stream"
JSON = "application/json"


def post_json(base, path, doc, timeout=300):
    return request(base, "POST", path, json.dumps(doc).encode(), JSON, timeout=timeout)


def silent_readers(base, count, hold):
    """`count` clients that send a 16 KB /embed request and never read."""
    body = json.dumps({"inputs": [""] * 4000}).encode()
    head = (f"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    port = int(base.rsplit(":", 1)[1])
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(head + body)
        socks.append(s)
    time.sleep(hold)
    for s in socks:
        s.close()
    return f"{count} silent readers held {hold} s"


def cases(embed_texts):
    """(name, prepare, send): `prepare()` builds the body before the clock
    starts, `send(base, body)` sends it and gives the answer."""
    review = ("Доставка задержалась на два дня, но курьер был вежлив, а блендер работает "
              "тихо и мощно. ") * 2

    def put(path, content_type=ARROW):
        return lambda b, body: request(b, "PUT", path, body, content_type)

    def post(path):
        return lambda b, body: request(b, "POST", path, body, JSON)

    def js(doc):
        return lambda: json.dumps(doc).encode()

    return [
        ("1 deltas: 5,001 one-row batches after a 1 MiB word",
         lambda: growing_dictionary(1 << 20, 5001), put("/models/logreg/score")),
        ("1 deltas: 40,000 after a 4 MiB word, two at once",
         lambda: growing_dictionary(4 << 20, 40000),
         lambda b, body: two(lambda: request(b, "PUT", "/models/mixed/score", body, ARROW))),
        ("2 one 64 KiB word for 8,192 rows (mixed)",
         lambda: arrow_stream([mixed(one_word("w" * (64 << 10), 8192), 8192)]),
         put("/models/mixed/score")),
        ("2 one 1 MiB word for 8,192 rows (mixed)",
         lambda: arrow_stream([mixed(one_word("w" * (1 << 20), 8192), 8192)]),
         put("/models/mixed/score")),
        ("2 one 10 KB text for 512 rows (MiniLM, truncate)",
         lambda: arrow_stream([pa.record_batch([one_word(review * 40, 512)], names=["text"])]),
         put("/models/mini/score?truncate=true")),
        ("2 a 100k-word dictionary behind 40,000 batches",
         shared_dictionary, put("/models/mixed/score")),
        ("3 /embed: 5 MB of '!'", js({"inputs": ["!" * (5 << 20)]}), post("/embed")),
        ("3 /embed: 10 MB of '!'", js({"inputs": ["!" * (10 << 20)]}), post("/embed")),
        ("4 /v1/embeddings: 100,000 empty strings", js({"input": [""] * 100000}),
         post("/v1/embeddings")),
        ("4 /embed: 20,000 empty strings", js({"inputs": [""] * 20000}), post("/embed")),
        ("5 ten clients that never read (40 s)", lambda: None,
         lambda b, body: silent_readers(b, 10, 40)),
        ("6 /embed: 4,096 reviews beside the 10-row client",
         js({"inputs": embed_texts, "truncate": True}), post("/embed")),
    ]


def two(send):
    out = []
    threads = [threading.Thread(target=lambda: out.append(send())) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def shared_dictionary():
    words = pa.array([f"city{i}" for i in range(100_000)])
    batches = [mixed(pa.DictionaryArray.from_arrays(pa.array([(i * 7) % 100_000], pa.int32()), words), 1)
               for i in range(40_000)]
    return arrow_stream(batches)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binaries", nargs="+")
    parser.add_argument("--embed-dir", required=True)
    parser.add_argument("--cap", default="2GiB")
    parser.add_argument("--only", default="")
    args = parser.parse_args()
    cap = args.cap.replace("GiB", "").strip()
    cap_bytes = int(cap) << 30
    review = "The delivery was two days late, but the courier was polite and the blender works well."
    rows = []
    for name, prepare, send in cases([review] * 4096):
        if args.only and args.only not in name:
            continue
        body = prepare()
        for binary in args.binaries:
            server = Server(binary, args.embed_dir, cap_bytes)
            client = SmallClient(server.base)
            client.start()
            time.sleep(1)
            started = time.time()
            try:
                answer = send(server.base, body)
            except Exception as e:  # noqa: BLE001 - a crash is a result here
                answer = f"{type(e).__name__}: {e}"[:80]
            took = time.time() - started
            time.sleep(1)
            latency = client.summary()
            alive = server.proc.poll() is None and server.up(timeout=5)
            growth = server.growth_mib()
            row = {"case": name, "binary": binary, "answer": str(answer), "seconds": round(took, 1),
                   "peak_growth_mib": growth, "client": latency, "alive": alive}
            print(json.dumps(row, ensure_ascii=False), flush=True)
            rows.append(row)
            server.stop()
    print()
    print("| case | build | answer | s | peak RSS growth | 10-row client | up after |")
    print("|---|---|---|---:|---:|---|---|")
    for r in rows:
        print(f"| {r['case']} | {os.path.basename(os.path.dirname(os.path.dirname(r['binary'])))} "
              f"| {r['answer']} | {r['seconds']} | {r['peak_growth_mib']} MiB | {r['client']} "
              f"| {'yes' if r['alive'] else 'no'} |")


if __name__ == "__main__":
    main()
