"""Plots of load-tests/peers' results (PNG beside them): rows/s by request
size for each tabular model and server, and sentences per CPU second for
each text set, batch and embedding server:
  python load-tests/peers/plot.py load-tests/peers/results
"""

import collections
import json
import pathlib
import statistics
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

results = pathlib.Path(sys.argv[1])

tabular = results / "peers.jsonl"
if tabular.exists():
    runs = [json.loads(line) for line in open(tabular)]
    models = list(dict.fromkeys(r["model"] for r in runs))
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4), squeeze=False)
    for ax, model in zip(axes[0], models):
        by = collections.defaultdict(list)
        for r in runs:
            if r["model"] == model:
                by[(r["server"], r["rows_per_request"])].append(r["rows_per_s"])
        for server in dict.fromkeys(s for s, _ in by):
            sizes = sorted(n for s, n in by if s == server)
            ax.plot(sizes, [statistics.median(by[(server, n)]) for n in sizes], "o-",
                    label=server)
        ax.set(title=model, xscale="log", yscale="log", xlabel="rows a request",
               ylabel="rows/s (median of rounds)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(results / "tabular.png", dpi=100)

embed = results / "embed.jsonl"
if embed.exists():
    runs = [json.loads(line) for line in open(embed) if '"server"' in line]
    groups = list(dict.fromkeys((r["texts"], r["batch"]) for r in runs))
    servers = list(dict.fromkeys(r["server"] for r in runs))
    fig, ax = plt.subplots(figsize=(9, 4))
    width = 0.8 / len(servers)
    for i, server in enumerate(servers):
        values = [statistics.median(r["sentences_per_cpu_s"] for r in runs
                                    if (r["texts"], r["batch"], r["server"]) == (*g, server))
                  for g in groups]
        ax.bar([j + i * width for j in range(len(groups))], values, width, label=server)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups))],
                  [f"{t}, batch {b}" for t, b in groups])
    ax.set(ylabel="sentences per CPU second", title="all-MiniLM-L6-v2, same two cores")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(results / "embeddings.png", dpi=100)
