"""Tables and plots from load-tests/harness/run.sh's runs.jsonl.

    python report.py RUNS.jsonl OUT_DIR [--no-plots] [--results-md RESULTS.md]

Prints the Markdown tables; writes PNG plots into OUT_DIR (needs
matplotlib); with --results-md, replaces the text between the harness
markers of that file with the tables and plot links.
"""

import json
import os
import platform
import subprocess
import sys
from collections import defaultdict

BEGIN, END = "<!-- harness:begin -->", "<!-- harness:end -->"


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def fmt(x, digits=0):
    return f"{x:,.{digits}f}" if x is not None else "–"


def share_429(r):
    total = sum(r["statuses"].values()) + r["transport_errors"]
    return 100.0 * r["statuses"].get("429", 0) / total if total else 0.0


def tables(runs):
    by = defaultdict(list)
    for r in runs:
        by[r["scenario"]].append(r)
    out = []

    out.append("### 1. Serving overhead (logreg, 100 features): score-server vs the seed design\n")
    out.append("Closed loop, loadgen. Seed: Flask + `np.frombuffer` + onnxruntime under uwsgi (2 processes) behind nginx on a unix socket. Ceiling: the same request and answer bytes over loopback TCP, no HTTP, no model.\n")
    out.append("| rows/request | concurrency | score-server rows/s | p99 ms | seed rows/s | p99 ms | ratio | ceiling rows/s | score-server / ceiling |")
    out.append("|---|---|---|---|---|---|---|---|---|")
    ceiling = {(r["rows_per_request"], r["concurrency"]): r["raw"]["requests_per_s"] * r["rows_per_request"] for r in by["ceiling"]}
    points = defaultdict(dict)
    for r in by["overhead"]:
        points[(r["rows_per_request"], r["concurrency"])][r["target"]] = r
    for (rows, c) in sorted(points, key=lambda k: (-k[0], k[1])):
        ss, seed = points[(rows, c)].get("score-server"), points[(rows, c)].get("seed")
        ceil = ceiling.get((rows, c))
        ratio = ss["rows_per_s"] / seed["rows_per_s"] if ss and seed and seed["rows_per_s"] else None
        frac = ss["rows_per_s"] / ceil if ss and ceil else None
        out.append(
            f"| {rows:,} | {c} | {fmt(ss and ss['rows_per_s'])} | {fmt(ss and ss['p99_ms'], 2)} "
            f"| {fmt(seed and seed['rows_per_s'])} | {fmt(seed and seed['p99_ms'], 2)} "
            f"| {fmt(ratio, 2)} | {fmt(ceil)} | {fmt(frac, 2)} |"
        )
    for rows in sorted({k[0] for k in points}, reverse=True):
        best = lambda t: max((p[t]["rows_per_s"] for k, p in points.items() if k[0] == rows and t in p), default=None)
        ss, seed = best("score-server"), best("seed")
        if ss and seed:
            out.append(f"\nBest of each at {rows:,} rows a request: score-server {fmt(ss)} rows/s, seed {fmt(seed)} rows/s: **{ss / seed:.2f}×**.")

    out.append("\n### 2. Serving efficiency (MLP, 1,024 rows a request, 2 threads)\n")
    out.append("Throughput, and CPU per row: in-process tract has both cores to itself, while the server shares them with loadgen, so CPU per row (the server process's, all threads, against the in-process loop's) compares the work each does per row.\n")
    out.append("| what | rows/s | / best in-process tract | CPU ms per 1,000 rows | in-process CPU per row / its CPU per row |")
    out.append("|---|---|---|---|---|")
    tract = max((r["rows_per_s"] for r in by["efficiency"] if r.get("target") == "tract in-process"), default=None)
    cpu = lambda r: r["cpu_s"] / r["rows"] * 1e6 if r.get("rows") else None
    tract_cpu = min((cpu(r) for r in by["efficiency"] if r.get("target") == "tract in-process" and cpu(r)), default=None)
    served_cpu = {r["concurrency"]: cpu(r) for r in by["efficiency-cpu"]}
    for r in by["efficiency"]:
        rps = r["rows_per_s"] if "rows_per_s" in r else r["raw"]["rows_per_s"]
        per_krow = cpu(r)
        if "threads" not in r:
            what = f"score-server, 1,024-row requests, concurrency {r['concurrency']}"
            per_krow = served_cpu.get(r["concurrency"])
        elif "rows_per_call" in r:
            what = f"{r['target']}, {r['rows_per_call']:,} rows a call"
        else:
            what = f"{r['target']}, 1,024 rows a call"
        by_cpu = tract_cpu / per_krow if tract_cpu and per_krow else None
        out.append(f"| {what} | {fmt(rps)} | {fmt(rps / tract if tract else None, 2)} | {fmt(per_krow, 2)} | {fmt(by_cpu, 2)} |")

    out.append("\n### 3. Batch-size sweep (logreg, concurrency 4)\n")
    out.append("| rows/request | rows/s | requests/s | p50 ms | p99 ms |")
    out.append("|---|---|---|---|---|")
    for r in sorted(by["sweep"], key=lambda r: r["rows_per_request"]):
        out.append(f"| {r['rows_per_request']:,} | {fmt(r['rows_per_s'])} | {fmt(r['requests_per_s'], 1)} | {fmt(r['p50_ms'], 2)} | {fmt(r['p99_ms'], 2)} |")

    out.append("\n### 4. Overload (MLP, 4,096 rows a request, admission 13 MiB, no client backoff)\n")
    out.append("| concurrency | ok rows/s | 429 share | p99 of accepted ms | statuses |")
    out.append("|---|---|---|---|---|")
    for r in by["overload"]:
        out.append(f"| {r['concurrency']} | {fmt(r['rows_per_s'])} | {share_429(r):.1f} % | {fmt(r['p99_ms'], 2)} | {r['statuses']} |")
    for r in by["overload-rss"]:
        out.append(f"\nServer RSS: {r['start_mib']} MiB after start, peak {r['peak_mib']} MiB over both runs.")

    if by["client"]:
        out.append("\n### 5. Client path (stream-client end to end, logreg, 4 in flight, 4,096-row batches)\n")
        out.append("| rows | rows/s | client peak RSS |")
        out.append("|---|---|---|")
        for r in by["client"]:
            out.append(f"| {r['rows']:,} | {fmt(r['rows_per_s'])} | {r['client_peak_mib']} MiB |")
    return "\n".join(out) + "\n"


def plots(runs, out_dir):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    for col, rows in enumerate([1000, 10]):
        for target in ["score-server", "seed"]:
            pts = sorted((r["concurrency"], r) for r in runs if r["scenario"] == "overhead" and r["target"] == target and r["rows_per_request"] == rows)
            if pts:
                axes[0][col].plot([c for c, _ in pts], [r["rows_per_s"] for _, r in pts], marker="o", label=target)
                axes[1][col].plot([c for c, _ in pts], [r["p99_ms"] for _, r in pts], marker="o", label=target)
        ceil = sorted((r["concurrency"], r["raw"]["requests_per_s"] * rows) for r in runs if r["scenario"] == "ceiling" and r["rows_per_request"] == rows)
        if ceil:
            axes[0][col].plot([c for c, _ in ceil], [v for _, v in ceil], linestyle="--", label="loopback ceiling")
        axes[0][col].set_title(f"rows/s, {rows} rows a request")
        axes[1][col].set_title(f"p99 latency (ms), {rows} rows a request")
        for ax in (axes[0][col], axes[1][col]):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrency")
            ax.legend()
        axes[0][col].set_yscale("log")
    fig.tight_layout()
    fig.savefig(os.path.join(out_dir, "concurrency.png"), dpi=90)
    files.append("concurrency.png")

    sweep = sorted((r["rows_per_request"], r) for r in runs if r["scenario"] == "sweep")
    if sweep:
        fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
        a.plot([n for n, _ in sweep], [r["rows_per_s"] for _, r in sweep], marker="o")
        a.set_title("rows/s against rows per request (concurrency 4)")
        b.plot([n for n, _ in sweep], [r["p99_ms"] for _, r in sweep], marker="o")
        b.set_title("p99 latency (ms) against rows per request")
        for ax in (a, b):
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_xlabel("rows per request")
        fig.tight_layout()
        fig.savefig(os.path.join(out_dir, "batch-size.png"), dpi=90)
        files.append("batch-size.png")
    return files


def main():
    args = sys.argv[1:]
    runs_path, out_dir = args[0], args[1]
    runs = load(runs_path)
    text = tables(runs)
    files = [] if "--no-plots" in args else plots(runs, out_dir)
    print(text)
    if "--results-md" in args:
        md = args[args.index("--results-md") + 1]
        rel = os.path.relpath(out_dir, os.path.dirname(md))
        cpu = subprocess.run(["sh", "-c", "grep -m1 'model name' /proc/cpuinfo | cut -d: -f2"], capture_output=True, text=True).stdout.strip()
        head = (
            f"Regenerated by `load-tests/harness/run.sh` (points of {runs[0].get('seconds', 0):.0f}+ s after a 1 s warm-up; raw data in "
            f"`{rel}/runs.jsonl`). Machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}; "
            "load generator, servers and nginx share those cores.\n\n"
        )
        images = "".join(f"\n![{f}]({rel}/{f})\n" for f in files)
        with open(md) as f:
            doc = f.read()
        section = f"{BEGIN}\n{head}{text}{images}{END}"
        if BEGIN in doc and END in doc:
            doc = doc[: doc.index(BEGIN)] + section + doc[doc.index(END) + len(END):]
        else:
            doc = doc.rstrip("\n") + "\n\n## Harness: load-tests/harness/run.sh\n\n" + section + "\n"
        with open(md, "w") as f:
            f.write(doc)


if __name__ == "__main__":
    main()
