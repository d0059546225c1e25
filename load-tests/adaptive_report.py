#!/usr/bin/env python3
"""Table and plot of load-tests/adaptive.sh's runs: per scenario, the best
fixed in_flight against adaptive concurrency (rows/s, the ratio, 429s), and
load-tests/results/adaptive-limits.png: each endpoint's limit over time in
the adaptive runs (the plot needs matplotlib; the table does not).

    python3 load-tests/adaptive_report.py
"""

import json
import pathlib

results = pathlib.Path(__file__).resolve().parent / "results"
runs = [json.loads(line) for line in (results / "adaptive.jsonl").open()]
scenarios = list(dict.fromkeys(r["scenario"] for r in runs))

print("| scenario | best fixed in_flight | its rows/s | adaptive rows/s | adaptive / best "
      "| 429s (adaptive) | final limits |")
print("|---|---:|---:|---:|---:|---:|---|")
for s in scenarios:
    fixed = [r for r in runs if r["scenario"] == s and r["mode"] == "fixed"]
    adaptive = [r for r in runs if r["scenario"] == s and r["mode"] == "adaptive"]
    if not fixed or not adaptive:
        continue
    best = max(fixed, key=lambda r: r["rows_per_s"])
    a = adaptive[-1]
    print(f"| {s} | {best['in_flight']} | {best['rows_per_s']:,.0f} | {a['rows_per_s']:,.0f} "
          f"| **{a['rows_per_s'] / best['rows_per_s']:.2f}x** | {a['retries'].get('429', 0)} "
          f"| {'/'.join(map(str, a['limits']))} |")
print()
print("Every fixed setting (rows/s):")
print()
ks = sorted({r["in_flight"] for r in runs if r["mode"] == "fixed"})
print("| scenario | " + " | ".join(f"fixed {k}" for k in ks) + " | adaptive |")
print("|---|" + "---:|" * (len(ks) + 1))
for s in scenarios:
    row = []
    for k in ks:
        match = [r for r in runs if r["scenario"] == s and r["mode"] == "fixed"
                 and r["in_flight"] == k]
        row.append(f"{match[-1]['rows_per_s']:,.0f}" if match else "")
    adaptive = [r for r in runs if r["scenario"] == s and r["mode"] == "adaptive"]
    row.append(f"{adaptive[-1]['rows_per_s']:,.0f}" if adaptive else "")
    print(f"| {s} | " + " | ".join(row) + " |")

try:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
except ImportError:
    print("\n(no matplotlib: no plot)")
    raise SystemExit(0)

samples = [json.loads(line) for line in (results / "adaptive-limits.jsonl").open()]
fig, axes = plt.subplots(len(scenarios), 1, figsize=(8, 2.2 * len(scenarios)), sharex=True)
for ax, s in zip(axes if len(scenarios) > 1 else [axes], scenarios):
    points = [p for p in samples if p["scenario"] == s]
    if not points:
        continue
    for i in range(len(points[0]["limits"])):
        ax.step([p["t"] for p in points], [p["limits"][i] for p in points], where="post",
                label=f"endpoint {i + 1}")
    ax.set_title(s, fontsize=9, loc="left")
    ax.set_ylabel("limit")
    if len(points[0]["limits"]) > 1:
        ax.legend(fontsize=7, loc="upper right")
axes[-1].set_xlabel("seconds into the job") if len(scenarios) > 1 else None
fig.tight_layout()
out = results / "adaptive-limits.png"
fig.savefig(out, dpi=110)
print(f"\nplot: {out}")
