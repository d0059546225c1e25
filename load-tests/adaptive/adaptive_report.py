#!/usr/bin/env python3
"""Table and plot of load-tests/adaptive/run.sh's runs: per scenario, the best
fixed in_flight against adaptive concurrency (rows/s, the ratio, 429s), and
load-tests/adaptive/results/adaptive-limits.png: each endpoint's limit over time in
the adaptive runs (the plot needs matplotlib; the table does not).

    python3 load-tests/adaptive/adaptive_report.py
"""

import json
import pathlib
import statistics

results = pathlib.Path(__file__).resolve().parent / "results"
runs = [json.loads(line) for line in (results / "adaptive.jsonl").open()]
scenarios = list(dict.fromkeys(r["scenario"] for r in runs))


def median(scenario, mode, in_flight=None):
    """Median rows/s over the rounds, and the runs."""
    match = [r for r in runs if r["scenario"] == scenario and r["mode"] == mode
             and (in_flight is None or r["in_flight"] == in_flight)]
    if not match:
        return None, []
    return statistics.median(r["rows_per_s"] for r in match), match


def same_round(scenario, k):
    """Median over the rounds of adaptive / fixed k in the same round: the
    machine's slow drift (other tenants) cancels out of each ratio."""
    by_round = {}
    for r in runs:
        if r["scenario"] == scenario and (r["mode"] == "adaptive" or r["in_flight"] == k):
            by_round.setdefault(r.get("round", 1), {})[r["mode"]] = r["rows_per_s"]
    ratios = [m["adaptive"] / m["fixed"] for m in by_round.values() if len(m) == 2]
    return statistics.median(ratios) if ratios else float("nan")


rounds = max(r.get("round", 1) for r in runs)
print(f"Medians of {rounds} round(s), rows/s.")
print()

ks = sorted({r["in_flight"] for r in runs if r["mode"] == "fixed"})
print("| scenario | best fixed in_flight | its rows/s | adaptive rows/s | adaptive / best "
      "| same round, median | 429s (adaptive, all rounds) | final limits (last round) |")
print("|---|---:|---:|---:|---:|---:|---:|---|")
for s in scenarios:
    fixed = [(median(s, "fixed", k)[0], k) for k in ks if median(s, "fixed", k)[0]]
    adaptive, a_runs = median(s, "adaptive")
    if not fixed or adaptive is None:
        continue
    best, best_k = max(fixed)
    storms = sum(r["retries"].get("429", 0) for r in a_runs)
    paired = same_round(s, best_k)
    print(f"| {s} | {best_k} | {best:,.0f} | {adaptive:,.0f} | **{adaptive / best:.2f}x** "
          f"| {paired:.2f}x | {storms} | {'/'.join(map(str, a_runs[-1]['limits']))} |")
print()
print("Every setting (median rows/s):")
print()
print("| scenario | " + " | ".join(f"fixed {k}" for k in ks) + " | adaptive |")
print("|---|" + "---:|" * (len(ks) + 1))
for s in scenarios:
    row = [median(s, "fixed", k)[0] for k in ks] + [median(s, "adaptive")[0]]
    print(f"| {s} | " + " | ".join(f"{v:,.0f}" if v else "" for v in row) + " |")
print()
print("Adaptive / each fixed setting in the same round (median over the rounds):")
print()
print("| scenario | " + " | ".join(f"fixed {k}" for k in ks) + " |")
print("|---|" + "---:|" * len(ks))
for s in scenarios:
    print(f"| {s} | " + " | ".join(f"{same_round(s, k):.2f}x" for k in ks) + " |")
print()

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
    points = [p for p in samples if p["scenario"] == s and p.get("round", 1) == rounds]
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
