"""tritonclient against the server's own binary route, on the same model
and request sizes, one server, side by side in rounds (each round runs
every mode once, in a rotated order, so the machine's drift falls on all):

- v1 binary: `PUT /models/demo/score`, float32 rows in and out, sent with
  geventhttpclient (the HTTP library tritonclient itself uses), one
  keep-alive connection a thread;
- v2 binary: `tritonclient.http` with binary tensors in and out (its
  default), the probabilities asked for by name;
- v2 JSON: `tritonclient.http` with JSON tensors in and out.

Each mode runs THREADS client threads, each with its own client and one
request in flight, for SECONDS; rows/s counts answered rows, every answer
checked against the first answer of v1 binary (bit for bit: the same
float32 values must come back whatever the protocol). Prints one JSON
line a measurement and a summary of medians and ratios."""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time

import numpy as np
import tritonclient.http as httpclient
from geventhttpclient import HTTPClient
from geventhttpclient.url import URL


def v1_binary(url: str, x: np.ndarray):
    client = HTTPClient.from_url(URL(url), concurrency=1, connection_timeout=10,
                                 network_timeout=60)
    body = x.tobytes()
    headers = {"Content-Type": "application/octet-stream"}

    def call() -> np.ndarray:
        response = client.request("PUT", "/models/demo/score?output=probabilities", body=body,
                                  headers=headers)
        data = response.read()
        assert response.status_code == 200, data
        return np.frombuffer(data, dtype=np.float32).reshape(len(x), -1)

    return call


def v2(url: str, x: np.ndarray, binary: bool):
    client = httpclient.InferenceServerClient(url.removeprefix("http://"), concurrency=1,
                                              network_timeout=60)
    output = httpclient.InferRequestedOutput("probabilities", binary_data=binary)

    def call() -> np.ndarray:
        tensor = httpclient.InferInput("X", list(x.shape), "FP32")
        tensor.set_data_from_numpy(x, binary_data=binary)
        return client.infer("demo", [tensor], outputs=[output]).as_numpy("probabilities")

    return call


MODES = {
    "v1-binary": lambda url, x: v1_binary(url, x),
    "v2-binary": lambda url, x: v2(url, x, True),
    "v2-json": lambda url, x: v2(url, x, False),
}


def cpu_seconds(pid: int | None) -> float:
    """CPU time (user + system, all threads) process `pid` has used."""
    if pid is None:
        return 0.0
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(mode: str, url: str, x: np.ndarray, want: np.ndarray, threads: int,
            seconds: float, server_pid: int | None = None) -> dict:
    counts = [0] * threads
    latencies: list[list[float]] = [[] for _ in range(threads)]
    failures: list[BaseException] = []
    ready = threading.Barrier(threads + 1)

    def loop(i: int) -> None:
        # gevent's clients belong to the thread that makes them.
        try:
            call = MODES[mode](url, x)
            np.testing.assert_array_equal(call(), want)  # connected and warm
        except BaseException as e:  # noqa: BLE001 - reported below
            failures.append(e)
            ready.abort()
            return
        ready.wait()
        stop = time.monotonic() + seconds
        try:
            while time.monotonic() < stop:
                t = time.perf_counter()
                got = call()
                latencies[i].append(time.perf_counter() - t)
                if counts[i] == 0:
                    np.testing.assert_array_equal(got, want)
                counts[i] += 1
        except BaseException as e:  # noqa: BLE001 - reported below
            failures.append(e)

    workers = [threading.Thread(target=loop, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    try:
        ready.wait()
    except threading.BrokenBarrierError:
        pass
    started, server_cpu = time.monotonic(), cpu_seconds(server_pid)
    client_cpu = time.process_time()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - started
    server_cpu = cpu_seconds(server_pid) - server_cpu
    client_cpu = time.process_time() - client_cpu
    if failures:
        raise failures[0]
    all_latencies = sorted(l for ls in latencies for l in ls)
    requests = sum(counts)
    return {
        "mode": mode, "rows": len(x), "threads": threads, "requests": requests,
        "rows_per_s": requests * len(x) / elapsed,
        "p50_ms": 1e3 * all_latencies[len(all_latencies) // 2],
        "p99_ms": 1e3 * all_latencies[min(len(all_latencies) - 1, int(len(all_latencies) * 0.99))],
        # CPU a request: the server's, and the clients' (this process).
        "server_cpu_us": 1e6 * server_cpu / max(requests, 1),
        "client_cpu_us": 1e6 * client_cpu / max(requests, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--sizes", default="10,1000,4096")
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--server-pid", type=int)
    args = parser.parse_args()
    rng = np.random.default_rng(20261205)
    results: list[dict] = []
    modes = list(MODES)
    for size in [int(s) for s in args.sizes.split(",")]:
        x = rng.standard_normal((size, 100), dtype=np.float32)
        want = v1_binary(args.url, x)()
        for r in range(args.rounds):
            order = modes[r % len(modes):] + modes[:r % len(modes)]
            for mode in order:
                result = measure(mode, args.url, x, want, args.threads, args.seconds,
                                 args.server_pid)
                result["round"] = r
                print(json.dumps(result), flush=True)
                results.append(result)
    print("\nmedian rows/s over rounds (ratio to v1 binary):")
    for size in sorted({r["rows"] for r in results}):
        med = {m: statistics.median(r["rows_per_s"] for r in results
                                    if r["rows"] == size and r["mode"] == m) for m in modes}
        def median(key: str, m: str) -> float:
            return statistics.median(r[key] for r in results
                                     if r["rows"] == size and r["mode"] == m)

        for m in modes:
            print(f"rows={size:>5} {m:>9}: {median('rows_per_s', m):>11,.0f} rows/s "
                  f"({median('rows_per_s', m) / med['v1-binary']:.2f}x)  "
                  f"p50 {median('p50_ms', m):.2f} ms  p99 {median('p99_ms', m):.1f} ms  "
                  f"CPU a request: server {median('server_cpu_us', m):,.0f} us, "
                  f"client {median('client_cpu_us', m):,.0f} us")


if __name__ == "__main__":
    main()
