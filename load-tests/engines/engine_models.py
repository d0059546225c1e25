#!/usr/bin/env python3
"""Dense benchmark models for the engine comparison (load-tests/engines/run.sh),
written to the directory given as the only argument (not committed):

  wide-mlp.onnx  a 3-layer wide MLP: 256 -> 1024 -> 1024 -> 1024 -> 10,
                 ReLU, softmax probabilities, argmax label (as an
                 MLPClassifier export has them); seeded random weights.

Runs in the models venv (numpy, onnx).
"""

import pathlib
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def wide_mlp(path):
    rng = np.random.default_rng(20261202)
    sizes = [256, 1024, 1024, 1024, 10]
    nodes, inits = [], []
    x = "X"
    for i, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
        w = (rng.standard_normal((n_in, n_out)) / np.sqrt(n_in)).astype(np.float32)
        b = (rng.standard_normal(n_out) * 0.1).astype(np.float32)
        inits += [numpy_helper.from_array(w, f"W{i}"), numpy_helper.from_array(b, f"B{i}")]
        y = f"h{i}"
        nodes.append(helper.make_node("Gemm", [x, f"W{i}", f"B{i}"], [y]))
        if i < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [y], [f"r{i}"]))
            y = f"r{i}"
        x = y
    nodes.append(helper.make_node("Softmax", [x], ["probabilities"], axis=1))
    nodes.append(helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0))
    graph = helper.make_graph(
        nodes,
        "wide_mlp",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", sizes[0]])],
        [
            helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", sizes[-1]]),
        ],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


if __name__ == "__main__":
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    wide_mlp(out / "wide-mlp.onnx")
