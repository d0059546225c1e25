#!/usr/bin/env python3
"""Train the small fixture models on synthetic data and export them to ONNX.

Run through `models/generate.sh`, which builds a venv from the pinned
`requirements.txt`. Everything it writes is committed, so the Rust tests need
no Python:

  <name>.onnx            the model, float32 input [None, n]
  <name>.reference.json  a small input sample and onnxruntime's outputs for it
  demo-sample.f32/.json  a 4-row input for the curl examples of docs/protocol.md

The data is synthetic and seeded, so a re-run produces the same models (up to
library versions; the pins in requirements.txt keep those fixed).
"""

import json
import pathlib

import numpy as np
import onnxruntime as ort
from skl2onnx import to_onnx
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neural_network import MLPClassifier
import onnx
from onnx import TensorProto, helper

OUT = pathlib.Path(__file__).resolve().parent
SEED = 20261122
SAMPLE_ROWS = 32
# Stay on an opset that tract 0.23 implements fully.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


def export(name, model, n_features, x_sample, zipmap):
    options = {id(model): {"zipmap": False}} if zipmap is False else None
    onx = to_onnx(
        model,
        x_sample[:1].astype(np.float32),
        options=options,
        target_opset=TARGET_OPSET,
    )
    path = OUT / f"{name}.onnx"
    path.write_bytes(onx.SerializeToString())

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = x_sample.astype(np.float32)
    outs = sess.run(None, {sess.get_inputs()[0].name: x})
    reference = {
        "model": f"{name}.onnx",
        "columns": n_features,
        "input": x.tolist(),
        "outputs": {
            meta.name: {
                "dtype": str(value.dtype),
                "shape": list(value.shape),
                "values": value.reshape(value.shape[0], -1).tolist(),
            }
            for meta, value in zip(sess.get_outputs(), outs)
        },
    }
    (OUT / f"{name}.reference.json").write_text(json.dumps(reference) + "\n")
    print(f"{name}: {path.stat().st_size} bytes, outputs "
          + ", ".join(f"{m.name}{list(v.shape)}:{v.dtype}" for m, v in zip(sess.get_outputs(), outs)))


def main():
    rng = np.random.default_rng(SEED)

    # Demo model: binary logistic regression over 100 features.
    x, y = make_classification(n_samples=4000, n_features=100, n_informative=30,
                               random_state=SEED)
    logreg = LogisticRegression(max_iter=500).fit(x, y)
    sample = x[rng.choice(len(x), SAMPLE_ROWS, replace=False)]
    export("logreg", logreg, 100, sample, zipmap=False)
    demo = sample[:4].astype(np.float32)
    (OUT / "demo-sample.f32").write_bytes(demo.astype("<f4").tobytes())
    (OUT / "demo-sample.json").write_text(json.dumps(demo.tolist()) + "\n")

    # Multiclass tree ensemble: 20 shallow trees, 3 classes, 10 features.
    x, y = make_classification(n_samples=3000, n_features=10, n_informative=6,
                               n_classes=3, random_state=SEED + 1)
    forest = RandomForestClassifier(n_estimators=20, max_depth=6,
                                    random_state=SEED).fit(x, y)
    export("forest", forest, 10, x[:SAMPLE_ROWS], zipmap=False)

    # Regressor: ordinary least squares over 20 features (one float output).
    x, y = make_regression(n_samples=2000, n_features=20, noise=0.5,
                           random_state=SEED + 2)
    linreg = LinearRegression().fit(x, y)
    export("linreg", linreg, 20, x[:SAMPLE_ROWS], zipmap=None)

    # Compute-bound MLP: 100 features -> 256 -> 256 -> 10 classes.
    x, y = make_classification(n_samples=3000, n_features=100, n_informative=40,
                               n_classes=10, n_clusters_per_class=1,
                               random_state=SEED + 3)
    mlp = MLPClassifier(hidden_layer_sizes=(256, 256), max_iter=30,
                        random_state=SEED).fit(x, y)
    export("mlp", mlp, 100, x[:SAMPLE_ROWS], zipmap=False)

    # Test-only fixtures below: they exercise failure paths, not models.

    # A model that fails at run time on purpose: it gathers from a 3-element
    # table at the index given by column 0, so a row starting with 7 is out
    # of range (the 500 path). Zeros, as in the start-up check, are fine.
    graph = helper.make_graph(
        [
            helper.make_node("Slice", ["X", "starts", "ends", "axes"], ["first"]),
            helper.make_node("Cast", ["first"], ["index"], to=TensorProto.INT64),
            helper.make_node("Gather", ["table", "index"], ["picked"], axis=0),
            helper.make_node("Reshape", ["picked", "shape"], ["Y"]),
        ],
        "faulty",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["N", 1])],
        initializer=[
            helper.make_tensor("starts", TensorProto.INT64, [1], [0]),
            helper.make_tensor("ends", TensorProto.INT64, [1], [1]),
            helper.make_tensor("axes", TensorProto.INT64, [1], [1]),
            helper.make_tensor("table", TensorProto.FLOAT, [3], [10.0, 20.0, 30.0]),
            helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 1]),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    (OUT / "faulty.onnx").write_bytes(model.SerializeToString())


if __name__ == "__main__":
    main()
