#!/usr/bin/env python3
"""Table and plot of load-tests/scaling/run.sh's points: per machine, build and
load, rows/s and requests/s at each worker count W (the median of repeated
runs) and the speed-up against W = 1; the plot (load-tests/scaling/results/scaling.png, needs matplotlib; the
table does not) draws the speed-up against W, with the ideal line.

    python3 load-tests/scaling/scaling_report.py
"""

import json
import pathlib

results = pathlib.Path(__file__).resolve().parent / "results"
points = [json.loads(line) for line in (results / "scaling.jsonl").open()]
groups = {}
for p in points:
    key = (p["machine"], p.get("build", ""), p["load"], int(p["workers"]))
    groups.setdefault(key, []).append(p)
# The run with the median rows/s of each (machine, build, load, W).
median_run = {k: sorted(v, key=lambda p: p["rows_per_s"])[len(v) // 2] for k, v in groups.items()}
series = list(dict.fromkeys(k[:3] for k in median_run))

print("| machine | build | load | W | runs | requests/s | rows/s | × W = 1 | p99 ms | non-200 |")
print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
curves = {}
for m, build, load in series:
    ws = sorted(k[3] for k in median_run if k[:3] == (m, build, load))
    base = median_run[(m, build, load, 1)]["rows_per_s"] if 1 in ws else None
    for w in ws:
        p = median_run[(m, build, load, w)]
        speedup = f"{p['rows_per_s'] / base:.2f}" if base else ""
        bad = sum(n for s, n in p["statuses"].items() if s != "200") + p["transport_errors"]
        shared = " (shared cores)" if p.get("shared") == "true" else ""
        runs = len(groups[(m, build, load, w)])
        print(f"| {m} | {build} | {load} | {w}{shared} | {runs} | {p['requests_per_s']:,.0f} | "
              f"{p['rows_per_s']:,.0f} | {speedup} | {p['p99_ms']:.1f} | {bad} |")
        if base:
            curves.setdefault((m, build, load), []).append((w, p["rows_per_s"] / base))

try:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("\n(no matplotlib: plot skipped)")
else:
    fig, ax = plt.subplots(figsize=(7, 5))
    top = max((w for c in curves.values() for w, _ in c), default=1)
    ax.plot([1, top], [1, top], "k:", label="ideal")
    for (m, build, load), c in curves.items():
        ax.plot([w for w, _ in c], [s for _, s in c], marker="o",
                label=f"{load}, {build} ({m})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("server cores and workers (W)")
    ax.set_ylabel("rows/s against W = 1")
    ax.set_title("score-server scaling (load-tests/scaling/run.sh)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(results / "scaling.png", dpi=110)
    print(f"\nplot: {results / 'scaling.png'}")
