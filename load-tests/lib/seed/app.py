"""The design we compare against, as the seed article describes it: Flask
PUT /score taking a little-endian float32 [m x n] matrix, np.frombuffer,
onnxruntime, the probabilities back as float32 bytes. Run under uwsgi with
one process per core behind nginx on a unix socket (see uwsgi.ini and
nginx.conf here). Kept as plain as the article's: this is the baseline,
not something to tune."""

import os

import numpy as np
import onnxruntime as ort
from flask import Flask, Response, request

MODEL = os.environ.get("SEED_MODEL", "models/logreg.onnx")
OUTPUT = os.environ.get("SEED_OUTPUT", "probabilities")

options = ort.SessionOptions()
# One uwsgi process per core: each session on one thread, as in the article.
options.intra_op_num_threads = 1
options.inter_op_num_threads = 1
session = ort.InferenceSession(MODEL, options, providers=["CPUExecutionProvider"])
input_name = session.get_inputs()[0].name
columns = session.get_inputs()[0].shape[1]

app = Flask(__name__)


@app.route("/score", methods=["PUT"])
def score():
    data = np.frombuffer(request.get_data(), dtype="<f4")
    if data.size == 0 or data.size % columns:
        return Response(f"body is not rows of {columns} float32\n", status=400)
    rows = data.reshape(-1, columns)
    (out,) = session.run([OUTPUT], {input_name: rows})
    out = np.ascontiguousarray(out, dtype="<f4")
    return Response(
        out.tobytes(),
        mimetype="application/octet-stream",
        headers={"X-Score-Rows": str(rows.shape[0]), "X-Score-Columns": str(out.shape[1])},
    )


@app.route("/healthz")
def healthz():
    return "ok\n"
