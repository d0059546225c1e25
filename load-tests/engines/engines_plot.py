#!/usr/bin/env python3
"""Plots load-tests/engines/results/engines.jsonl (written by engines.sh) as
load-tests/engines/results/engines.png: rows/s served under --engine auto and under
--engine tract, against onnxruntime in-process, per model (medians).

    python load-tests/engines/engines_plot.py   # needs matplotlib
"""

import json
import pathlib
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

results = pathlib.Path(__file__).resolve().parent / "results"
runs = [json.loads(line) for line in (results / "engines.jsonl").open()]
models = list(dict.fromkeys(r["model"] for r in runs))
variants = [("served-auto", "score-server, --engine auto"),
            ("served-tract", "score-server, --engine tract"),
            ("onnxruntime-inprocess", "onnxruntime in-process")]


def med(model, variant):
    return statistics.median(r["rows_per_s"] for r in runs
                             if r["model"] == model and r["variant"] == variant)


base = {m: med(m, "onnxruntime-inprocess") for m in models}
fig, ax = plt.subplots(figsize=(8, 4))
width = 0.27
for i, (variant, label) in enumerate(variants):
    ratios = [med(m, variant) / base[m] for m in models]
    ax.bar([x + (i - 1) * width for x in range(len(models))], ratios, width, label=label)
ax.axhline(1.0, color="grey", linewidth=0.8)
ax.axhline(0.95, color="grey", linewidth=0.8, linestyle=":")
ax.set_xticks(range(len(models)))
ax.set_xticklabels(models)
ax.set_ylabel("rows/s over onnxruntime in-process")
ax.set_title("1,024 rows a call, 2 threads, 2 shared cores")
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(results / "engines.png", dpi=90)
print(results / "engines.png")
