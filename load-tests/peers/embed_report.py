"""Medians over rounds of load-tests/peers/embed.sh's measurements, and
score-server's sentences per CPU second ("per core") over each peer's;
tokens per CPU second is the same figure in tokens:
  python3 load-tests/peers/embed_report.py load-tests/peers/results/embed.jsonl
"""

import json
import statistics
import sys

lines = [json.loads(line) for line in open(sys.argv[1])]
for line in lines:
    if "cosine_to_fp32_reference" in line:
        print("least cosine to sentence-transformers' fp32 vectors (512 texts):")
        for name, cosine in line["cosine_to_fp32_reference"].items():
            print(f"  {name:>28} {cosine:.6f}")
runs = [r for r in lines if "server" in r]
keys = ("sentences_per_s", "tokens_per_s", "p50_ms", "p99_ms", "sentences_per_cpu_s",
        "peak_rss_mib", "tokens_per_sentence")
print(f"\n{'texts':>5} {'batch':>5} {'server':>28} {'sent/s':>8} {'tokens/s':>9} {'p50 ms':>8} "
      f"{'p99 ms':>8} {'sent/CPU-s':>10} {'tok/CPU-s':>9} {'peak MiB':>8}")
pairs = [("score-server-int8", "infinity-int8"), ("score-server-fp32", "infinity-fp32"),
         ("score-server-fp32", "sentence-transformers-fp32"),
         ("score-server-int8", "sentence-transformers-fp32"),
         ("score-server-int8", "onnxruntime-int8-in-process")]
for texts in dict.fromkeys(r["texts"] for r in runs):
    for batch in sorted({r["batch"] for r in runs}):
        med = {}
        for server in dict.fromkeys(r["server"] for r in runs):
            mine = [r for r in runs if (r["texts"], r["batch"], r["server"]) == (texts, batch, server)]
            if not mine:
                continue
            med[server] = m = {k: statistics.median(r[k] for r in mine) for k in keys}
            errors = sum(r["errors"] for r in mine)
            print(f"{texts:>5} {batch:>5} {server:>28} {m['sentences_per_s']:>8,.0f} "
                  f"{m['tokens_per_s']:>9,.0f} {m['p50_ms']:>8.1f} {m['p99_ms']:>8.1f} "
                  f"{m['sentences_per_cpu_s']:>10,.1f} "
                  f"{m['sentences_per_cpu_s'] * m['tokens_per_sentence']:>9,.0f} "
                  f"{m['peak_rss_mib']:>8.0f}"
                  + (f"  ({errors} errors)" if errors else ""))
        for ours, theirs in pairs:
            if ours in med and theirs in med:
                print(f"{'':>11} {ours} / {theirs}: per core "
                      f"{med[ours]['sentences_per_cpu_s'] / med[theirs]['sentences_per_cpu_s']:.2f}x"
                      f", sentences/s {med[ours]['sentences_per_s'] / med[theirs]['sentences_per_s']:.2f}x")
jobs = [r for r in lines if "job" in r]
if jobs:
    print(f"\nPySpark job, {jobs[0]['rows']:,} reviews, local[2]:")
    med = {}
    for job in dict.fromkeys(r["job"] for r in jobs):
        mine = [r for r in jobs if r["job"] == job]
        med[job] = statistics.median(r["sentences_per_s"] for r in mine)
        cosine = min(r["least_cosine_to_sentence_transformers"] for r in mine)
        print(f"  {job:>20} {med[job]:>8,.0f} sentences/s  (least cosine {cosine:.6f})")
    for ours in ("stream_client-fp32", "stream_client-int8"):
        for theirs in ("st_udf", "infinity_udf"):
            if ours in med and theirs in med:
                print(f"  {ours} / {theirs}: {med[ours] / med[theirs]:.2f}x")
where = [r["where_time_goes"] for r in lines if "where_time_goes" in r]
if where:
    print("\nWhere a sentence's CPU goes, one thread in-process, batches of 32 sorted texts (ms):")
    print(f"{'texts':>6} {'tokenize':>9} {'ORT fp32':>9} {'ORT int8':>9} {'torch fp32':>10} "
          f"{'pool+norm':>9}")
    for w in where:
        print(f"{w['texts']:>6} {w['tokenize_ms']:>9.2f} {w['onnxruntime_fp32_ms']:>9.2f} "
              f"{w['onnxruntime_int8_ms']:>9.2f} {w['torch_fp32_ms']:>10.2f} "
              f"{w['pool_normalize_ms']:>9.3f}")
