"""onnxruntime in-process throughput: THREADS intra-op threads, ROWS rows a
call, a tight loop for SECONDS. Prints one JSON object (rows/s).

    python inprocess_ort.py MODEL.onnx ROWS THREADS SECONDS
"""

import json
import sys
import time

import numpy as np
import onnxruntime as ort

path, rows, threads, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
options = ort.SessionOptions()
options.intra_op_num_threads = threads
session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
inp = session.get_inputs()[0]
x = np.random.default_rng(1).uniform(-2, 2, (rows, inp.shape[1])).astype(np.float32)
outputs = [session.get_outputs()[-1].name]
session.run(outputs, {inp.name: x})
calls, start = 0, time.perf_counter()
while time.perf_counter() - start < seconds:
    session.run(outputs, {inp.name: x})
    calls += 1
elapsed = time.perf_counter() - start
print(json.dumps({"rows_per_s": calls * rows / elapsed, "calls": calls, "seconds": elapsed}))
