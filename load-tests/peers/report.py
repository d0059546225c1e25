"""Medians over rounds of load-tests/peers/run.sh's measurements, and
score-server's rows/s over the best peer's, by model and request size:
  python3 load-tests/peers/report.py load-tests/peers/results/peers.jsonl
"""

import json
import statistics
import sys

runs = [json.loads(line) for line in open(sys.argv[1])]
servers = list(dict.fromkeys(r["server"] for r in runs))
print(f"{'model':>6} {'rows':>5} {'server':>22} {'rows/s':>11} {'p50 ms':>8} {'p99 ms':>8} "
      f"{'CPU us/row':>10} {'peak MiB':>8}")
for model in dict.fromkeys(r["model"] for r in runs):
    for rows in sorted({r["rows_per_request"] for r in runs}):
        med = {}
        for server in servers:
            mine = [r for r in runs if r["model"] == model and r["rows_per_request"] == rows
                    and r["server"] == server]
            if not mine:
                continue
            m = {k: statistics.median(r[k] for r in mine)
                 for k in ("rows_per_s", "p50_ms", "p99_ms", "server_cpu_us_per_row", "peak_rss_mib")}
            errors = sum(sum(v for s, v in r["statuses"].items() if s != "200") +
                         r["transport_errors"] for r in mine)
            med[server] = m
            print(f"{model:>6} {rows:>5} {server:>22} {m['rows_per_s']:>11,.0f} {m['p50_ms']:>8.2f} "
                  f"{m['p99_ms']:>8.2f} {m['server_cpu_us_per_row']:>10.2f} {m['peak_rss_mib']:>8.0f}"
                  + (f"  ({errors} errors)" if errors else ""))
        peers = {s: m for s, m in med.items() if not s.startswith("score-server")}
        if "score-server" in med and peers:
            best = max(peers, key=lambda s: peers[s]["rows_per_s"])
            print(f"{'':>6} {'':>5} score-server / best peer ({best}): "
                  f"{med['score-server']['rows_per_s'] / peers[best]['rows_per_s']:.1f}x")
