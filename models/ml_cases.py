#!/usr/bin/env python3
"""Operator conformance cases for score-server's own ai.onnx.ml operators
with onnxruntime's outputs as the reference, into
models/ml-cases/:

  <name>.onnx            one operator, float32 input [None, n], hand-built
                         with onnx.helper so every attribute variant of the
                         ONNX-ML spec is exercised (node modes, missing-value
                         tracking, aggregate functions, post-transforms,
                         base_values, the binary-classifier layouts...)
  <name>.reference.json  the input rows (NaN as null) and onnxruntime's
                         outputs, in the format of models/zoo/

Converters only ever produce a few of these variants; these cases pin the
rest. The Rust unit tests in score-engine/src/ml/ load each case and compare
every output with onnxruntime's. Run through `models/generate.sh` (its venv
has onnx and onnxruntime); seeded, so a re-run writes the same bytes.
"""

import json
import pathlib

import numpy as np
import onnxruntime as ort
from onnx import TensorProto, helper

OUT = pathlib.Path(__file__).resolve().parent / "ml-cases"
ML = "ai.onnx.ml"
ROWS = 24
MODES = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"]


def random_trees(rng, n_trees, n_features, depth, modes, missing, thresholds):
    """Nodes of `n_trees` random binary trees as ONNX-ML attribute lists
    and the leaves as (tree, node) pairs."""
    nodes = []
    leaves = []
    for tree in range(n_trees):
        next_id = [0]

        def grow(level):
            node_id = next_id[0]
            next_id[0] += 1
            if level == depth or (level > 0 and rng.random() < 0.25):
                nodes.append((tree, node_id, 0, "LEAF", 0.0, 0, 0, 0))
                leaves.append((tree, node_id))
                return node_id
            slot = len(nodes)
            nodes.append(None)
            true_id = grow(level + 1)
            false_id = grow(level + 1)
            mode = modes[rng.integers(len(modes))]
            feature = int(rng.integers(n_features))
            value = float(thresholds[rng.integers(len(thresholds))])
            track = int(missing and rng.random() < 0.5)
            nodes[slot] = (tree, node_id, feature, mode, value, true_id, false_id, track)
            return node_id

        grow(0)
    # Each tree's nodes stay together, root first (onnxruntime requires it;
    # converters write them so).
    attrs = {
        "nodes_treeids": [n[0] for n in nodes],
        "nodes_nodeids": [n[1] for n in nodes],
        "nodes_featureids": [n[2] for n in nodes],
        "nodes_modes": [n[3] for n in nodes],
        "nodes_values": [n[4] for n in nodes],
        "nodes_truenodeids": [n[5] for n in nodes],
        "nodes_falsenodeids": [n[6] for n in nodes],
    }
    if missing:
        attrs["nodes_missing_value_tracks_true"] = [n[7] for n in nodes]
    return attrs, leaves


def leaf_votes(rng, leaves, prefix, layout, n_out, positive, scale=1.0):
    """Leaf weights: 'one' (every vote for target/class 0), 'per_tree'
    (each tree votes for one class, as XGBoost/LightGBM multiclass),
    'dense' (every leaf votes for every class, as random forests),
    'sparse' (random subsets)."""
    votes = []
    for tree, node in leaves:
        if layout == "one":
            ids = [0]
        elif layout == "per_tree":
            ids = [tree % n_out]
        elif layout == "dense":
            ids = list(range(n_out))
        else:
            ids = [i for i in range(n_out) if rng.random() < 0.5]
        for i in ids:
            w = scale * (float(rng.random()) if positive else float(rng.normal()))
            votes.append((tree, node, i, round(w, 4)))
    order = rng.permutation(len(votes))  # the spec does not order votes
    votes = [votes[i] for i in order]
    return {
        f"{prefix}_treeids": [v[0] for v in votes],
        f"{prefix}_nodeids": [v[1] for v in votes],
        f"{prefix}_ids": [v[2] for v in votes],
        f"{prefix}_weights": [v[3] for v in votes],
    }


def inputs(rng, n_features, thresholds, nan):
    x = rng.normal(size=(ROWS, n_features)).astype(np.float32)
    # Some values exactly on thresholds, so EQ/NEQ/LEQ/LT differ.
    mask = rng.random(size=x.shape) < 0.3
    x[mask] = rng.choice(thresholds, size=mask.sum())
    if nan:
        x[rng.random(size=x.shape) < 0.15] = np.nan
    return x


def json_float(v):
    if isinstance(v, float) and not np.isfinite(v):
        return None if np.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def save(name, node, n_features, outputs, x, note):
    graph = helper.make_graph(
        [node], name,
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, n_features])],
        outputs)
    save_graph(name, graph, n_features, x, note)


def make_model(graph):
    """The case's model: opset 17 and ai.onnx.ml 3, IR version 8."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid(ML, 3)])
    model.ir_version = 8
    return model


def save_graph(name, graph, n_features, x, note):
    model = make_model(graph)
    path = OUT / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"X": x})
    doc = {"model": f"{name}.onnx", "source": note, "columns": n_features,
           "input": [[None if np.isnan(v) else float(v) for v in row] for row in x],
           "outputs": {}}
    for meta, value in zip(sess.get_outputs(), got):
        value = np.asarray(value)
        doc["outputs"][meta.name] = {
            "dtype": str(value.dtype), "shape": list(value.shape),
            # JSON has no NaN or infinity (PROBIT outside (0, 1)): null,
            # "inf", "-inf".
            "values": [[json_float(v) for v in row]
                       for row in value.reshape(value.shape[0], -1).tolist()]}
    (OUT / f"{name}.reference.json").write_text(json.dumps(doc) + "\n")


def regressor(rng, name, n_targets=1, aggregate="SUM", post="NONE", base=None, modes=("BRANCH_LEQ",),
              missing=False, layout="one", n_trees=5, depth=4):
    n_features = 6
    thresholds = np.round(rng.normal(size=8), 2).astype(np.float32)
    attrs, leaves = random_trees(rng, n_trees, n_features, depth, list(modes), missing, thresholds)
    # PROBIT is finite only on (0, 1): small weights keep most sums there.
    scale = 0.1 if post == "PROBIT" else 1.0
    attrs.update(leaf_votes(rng, leaves, "target", layout, n_targets, positive=False, scale=scale))
    attrs.update(n_targets=n_targets, aggregate_function=aggregate, post_transform=post)
    if base is not None:
        attrs["base_values"] = base
    node = helper.make_node("TreeEnsembleRegressor", ["X"], ["Y"], domain=ML, **attrs)
    x = inputs(rng, n_features, thresholds, missing)
    out = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, n_targets])]
    save(name, node, n_features, out, x,
         f"TreeEnsembleRegressor n_targets={n_targets} {aggregate} {post} base={base} "
         f"modes={','.join(modes)} missing={missing} layout={layout}")


def classifier(rng, name, n_classes=3, post="NONE", base=None, modes=("BRANCH_LEQ",), missing=False,
               layout="dense", positive=True, labels=None, n_trees=5, depth=4):
    n_features = 6
    thresholds = np.round(rng.normal(size=8), 2).astype(np.float32)
    attrs, leaves = random_trees(rng, n_trees, n_features, depth, list(modes), missing, thresholds)
    scale = 0.1 if post == "PROBIT" else 1.0
    attrs.update(leaf_votes(rng, leaves, "class", layout, n_classes, positive, scale=scale))
    attrs.update(classlabels_int64s=labels or list(range(n_classes)), post_transform=post)
    if base is not None:
        attrs["base_values"] = base
    node = helper.make_node("TreeEnsembleClassifier", ["X"], ["label", "probabilities"],
                            domain=ML, **attrs)
    x = inputs(rng, n_features, thresholds, missing)
    out = [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
           helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, n_classes])]
    save(name, node, n_features, out, x,
         f"TreeEnsembleClassifier classes={n_classes} {post} base={base} modes={','.join(modes)} "
         f"missing={missing} layout={layout} positive={positive}")


def linear(rng, name, n_classes=3, post="NONE", multi_class=0, labels=None, strings=False,
           intercepts=True):
    n_features = 7
    n_models = 1 if n_classes == 2 and not multi_class else n_classes
    attrs = dict(coefficients=[round(float(v), 4) for v in rng.normal(size=n_models * n_features)],
                 post_transform=post, multi_class=multi_class)
    if intercepts:
        attrs["intercepts"] = [round(float(v), 4) for v in rng.normal(size=n_models)]
    if strings:
        attrs["classlabels_strings"] = [f"class-{i}" for i in range(n_classes)]
    else:
        attrs["classlabels_ints"] = labels or list(range(n_classes))
    node = helper.make_node("LinearClassifier", ["X"], ["label", "probabilities"], domain=ML, **attrs)
    x = inputs(rng, n_features, np.zeros(1, dtype=np.float32), False)
    label_type = TensorProto.STRING if strings else TensorProto.INT64
    out = [helper.make_tensor_value_info("label", label_type, [None]),
           helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, n_classes])]
    save(name, node, n_features, out, x,
         f"LinearClassifier classes={n_classes} {post} multi_class={multi_class} strings={strings}")


def linear_regressor(rng, name, targets=1, post="NONE"):
    n_features = 7
    attrs = dict(coefficients=[round(float(v), 4) for v in rng.normal(size=targets * n_features)],
                 intercepts=[round(float(v), 4) for v in rng.normal(size=targets)],
                 targets=targets, post_transform=post)
    node = helper.make_node("LinearRegressor", ["X"], ["Y"], domain=ML, **attrs)
    x = inputs(rng, n_features, np.zeros(1, dtype=np.float32), False)
    out = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, targets])]
    save(name, node, n_features, out, x, f"LinearRegressor targets={targets} {post}")


def onehot(rng, name, cast=False):
    """OneHotEncoder on two integer-coded columns (cast to int64 first, as
    skl2onnx does, or fed the floats directly), some values unknown; the
    [N, 2, 4] output reshaped to [N, 8] as pipelines do."""
    nodes = []
    src = "X"
    if cast:
        nodes.append(helper.make_node("Cast", ["X"], ["Xi"], to=TensorProto.INT64))
        src = "Xi"
    nodes.append(helper.make_node("OneHotEncoder", [src], ["H"], domain=ML,
                                  cats_int64s=[0, 1, 2, 5], zeros=1))
    nodes.append(helper.make_node("Reshape", ["H", "shape"], ["Y"]))
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 2])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 8])],
        [helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 8])])
    x = rng.integers(-1, 7, size=(ROWS, 2)).astype(np.float32)
    save_graph(name, graph, 2, x, f"OneHotEncoder cast={cast}")


KERNELS = {"LINEAR": [0.0, 0.0, 0.0], "RBF": [0.3, 0.0, 0.0], "POLY": [0.2, 0.5, 3.0],
           "SIGMOID": [0.1, 0.2, 0.0]}


def svm(rng, name, n_classes=3, kernel="RBF", proba=False, post="NONE", linear_mode=False):
    n_features = 5
    attrs = dict(kernel_type=kernel, kernel_params=KERNELS[kernel], post_transform=post,
                 classlabels_ints=list(range(n_classes)))
    pairs = n_classes * (n_classes - 1) // 2
    if linear_mode:
        attrs["coefficients"] = [round(float(v), 4) for v in rng.normal(size=n_classes * n_features)]
        attrs["rho"] = [round(float(rng.normal()), 4)]
    else:
        per_class = [int(v) for v in rng.integers(1, 4, size=n_classes)]
        n_vectors = sum(per_class)
        attrs.update(
            vectors_per_class=per_class,
            support_vectors=[round(float(v), 4) for v in rng.normal(size=n_vectors * n_features)],
            coefficients=[round(float(v), 4) for v in rng.normal(size=(n_classes - 1) * n_vectors)],
            rho=[round(float(v), 4) for v in rng.normal(size=pairs)])
        if proba:
            attrs["prob_a"] = [round(float(v), 4) for v in -np.abs(rng.normal(size=pairs))]
            attrs["prob_b"] = [round(float(v), 4) for v in rng.normal(size=pairs) * 0.1]
    width = n_classes if (linear_mode or proba) else (pairs if n_classes > 2 else 2)
    node = helper.make_node("SVMClassifier", ["X"], ["label", "probabilities"], domain=ML, **attrs)
    x = inputs(rng, n_features, np.zeros(1, dtype=np.float32), False)
    out = [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
           helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [None, width])]
    save(name, node, n_features, out, x,
         f"SVMClassifier classes={n_classes} {kernel} proba={proba} {post} linear={linear_mode}")


def svm_regressor(rng, name, kernel="RBF", one_class=0, linear_mode=False):
    n_features = 5
    attrs = dict(kernel_type=kernel, kernel_params=KERNELS[kernel], one_class=one_class,
                 rho=[round(float(rng.normal()), 4)])
    if linear_mode:
        attrs.update(n_supports=0, coefficients=[round(float(v), 4) for v in rng.normal(size=n_features)])
    else:
        n = 6
        attrs.update(n_supports=n,
                     support_vectors=[round(float(v), 4) for v in rng.normal(size=n * n_features)],
                     coefficients=[round(float(v), 4) for v in rng.normal(size=n)])
    node = helper.make_node("SVMRegressor", ["X"], ["Y"], domain=ML, **attrs)
    x = inputs(rng, n_features, np.zeros(1, dtype=np.float32), False)
    out = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 1])]
    save(name, node, n_features, out, x, f"SVMRegressor {kernel} one_class={one_class} linear={linear_mode}")


def elementwise(rng, name, op, nan=False, **attrs):
    """Scaler, Binarizer, Imputer, Normalizer: [N, 4] in, [N, 4] out."""
    node = helper.make_node(op, ["X"], ["Y"], domain=ML, **attrs)
    x = inputs(rng, 4, np.array([0.0, 0.5], dtype=np.float32), nan)
    out = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 4])]
    save(name, node, 4, out, x, f"{op} {attrs}")


def feature_extractor(rng, name, indices):
    """ArrayFeatureExtractor with constant indices (a scalar keeps the axis)."""
    idx = np.array(indices, dtype=np.int64)
    width = int(np.prod(idx.shape)) if idx.shape else 1
    graph = helper.make_graph(
        [helper.make_node("ArrayFeatureExtractor", ["X", "I"], ["Y"], domain=ML)], name,
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 5])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, width])],
        [helper.make_tensor("I", TensorProto.INT64, list(idx.shape), idx.reshape(-1).tolist())])
    save_graph(name, graph, 5, inputs(rng, 5, np.zeros(1, dtype=np.float32), False),
               f"ArrayFeatureExtractor indices={indices}")


def vectorizer(rng, name):
    """FeatureVectorizer of the input and a copy of its first column."""
    nodes = [helper.make_node("ArrayFeatureExtractor", ["X", "i0"], ["c0"], domain=ML),
             helper.make_node("FeatureVectorizer", ["X", "c0"], ["Y"], domain=ML,
                              inputdimensions=[3, 1])]
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor("i0", TensorProto.INT64, [1], [0])])
    x = np.round(rng.normal(size=(ROWS, 3)) * 3).astype(np.float32)
    save_graph(name, graph, 3, x, "FeatureVectorizer of [N, 3] and [N, 1]")


def typed_case(name, nodes, inputs, outputs, feeds, note, initializers=()):
    """A graph over typed inputs (strings, integers): `inputs` are
    (name, TensorProto type, shape) and `feeds` their values; the reference
    holds each input's values under "inputs" (dtype, shape, flat values)."""
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        outputs, list(initializers))
    model = make_model(graph)
    path = OUT / f"{name}.onnx"
    path.write_bytes(model.SerializeToString())
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, feeds)
    doc = {"model": f"{name}.onnx", "source": note, "inputs": {}, "outputs": {}}
    for n, value in feeds.items():
        value = np.asarray(value)
        kind = "string" if value.dtype.kind in "OUS" else str(value.dtype)
        flat = [str(v) if kind == "string" else json_float(v.item()) for v in value.reshape(-1)]
        doc["inputs"][n] = {"dtype": kind, "shape": list(value.shape), "values": flat}
    for meta, value in zip(sess.get_outputs(), got):
        value = np.asarray(value)
        strings = value.dtype.kind in "OUS"
        doc["outputs"][meta.name] = {
            "dtype": "string" if strings else str(value.dtype), "shape": list(value.shape),
            "values": [[str(v) if strings else json_float(v) for v in row]
                       for row in value.reshape(value.shape[0], -1).tolist()]}
    (OUT / f"{name}.reference.json").write_text(json.dumps(doc) + "\n")


WORDS = ["paris", "lyon", "nice", "Москва", "", "naïve 🙂", "Paris"]


def label_encoder(rng, name, keys, values, default=None):
    """LabelEncoder (opset 2) from `keys` ("strings", "int64s", "floats")
    to `values`, on a [N, 2] input holding known and unknown keys."""
    pools = {"strings": WORDS[:4], "int64s": [3, -7, 0, 12], "floats": [0.5, -1.25, 0.0, 7.0]}
    outs = {"strings": ["a", "b", "c", "d"], "int64s": [10, 20, 30, 40],
            "floats": [0.25, 0.75, -2.5, 9.0]}
    attrs = {f"keys_{keys}": pools[keys], f"values_{values}": outs[values]}
    if default is not None:
        attrs[{"strings": "default_string", "int64s": "default_int64",
               "floats": "default_float"}[values]] = default
    types = {"strings": TensorProto.STRING, "int64s": TensorProto.INT64,
             "floats": TensorProto.FLOAT}
    unknown = {"strings": WORDS[4:], "int64s": [5, -1], "floats": [1.5, float("nan")]}
    choice = pools[keys] + unknown[keys]
    x = np.array([choice[i] for i in rng.integers(len(choice), size=ROWS * 2)],
                 dtype=object if keys == "strings" else
                 (np.int64 if keys == "int64s" else np.float32)).reshape(ROWS, 2)
    nodes = [helper.make_node("LabelEncoder", ["X"], ["Y"], domain=ML, **attrs)]
    outputs = [helper.make_tensor_value_info("Y", types[values], [None, 2])]
    if values == "strings":
        # A model needs a numeric output to be served: the strings mapped
        # on to integers (strings flowing between operators).
        nodes.append(helper.make_node("LabelEncoder", ["Y"], ["Z"], domain=ML,
                                      keys_strings=outs["strings"], values_int64s=[1, 2, 3, 4]))
        outputs.append(helper.make_tensor_value_info("Z", TensorProto.INT64, [None, 2]))
    typed_case(name, nodes, [("X", types[keys], [None, 2])], outputs, {"X": x},
               f"LabelEncoder {keys} -> {values}")


def label_encoder_duplicates(rng, name):
    """LabelEncoder whose keys repeat: onnxruntime keeps the first value."""
    node = helper.make_node("LabelEncoder", ["X"], ["Y"], domain=ML, keys_int64s=[3, 3, 5],
                            values_int64s=[1, 2, 3])
    x = rng.choice([3, 5, 7], size=(ROWS, 2)).astype(np.int64)
    typed_case(name, [node], [("X", TensorProto.INT64, [None, 2])],
               [helper.make_tensor_value_info("Y", TensorProto.INT64, [None, 2])], {"X": x},
               "LabelEncoder with a repeated key")


def onehot_strings(rng, name, zeros=1):
    """OneHotEncoder on a [N, 1] string column with unknown values (and
    `handle_unknown="ignore"`'s zeros=1), then concatenated with a float
    column as ColumnTransformer exports do."""
    nodes = [helper.make_node("OneHotEncoder", ["city"], ["H"], domain=ML,
                              cats_strings=WORDS[:4], zeros=zeros),
             helper.make_node("Reshape", ["H", "shape"], ["Hr"]),
             helper.make_node("Concat", ["age", "Hr"], ["Y"], axis=1)]
    cities = np.array([WORDS[i] for i in rng.integers(4 if zeros == 0 else 7, size=ROWS)],
                      dtype=object).reshape(ROWS, 1)
    ages = rng.normal(size=(ROWS, 1)).astype(np.float32)
    typed_case(name, nodes, [("age", TensorProto.FLOAT, [None, 1]),
                             ("city", TensorProto.STRING, [None, 1])],
               [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 5])],
               {"age": ages, "city": cities}, f"OneHotEncoder on strings, zeros={zeros}",
               [helper.make_tensor("shape", TensorProto.INT64, [2], [-1, 4])])


def category_mapper(rng, name):
    """CategoryMapper strings -> int64 (tract's own operator)."""
    node = helper.make_node("CategoryMapper", ["X"], ["Y"], domain=ML,
                            cats_strings=WORDS[:4], cats_int64s=[4, 3, 2, 1], default_int64=-9)
    x = np.array([WORDS[i] for i in rng.integers(len(WORDS), size=ROWS)],
                 dtype=object).reshape(ROWS, 1)
    typed_case(name, [node], [("X", TensorProto.STRING, [None, 1])],
               [helper.make_tensor_value_info("Y", TensorProto.INT64, [None, 1])], {"X": x},
               "CategoryMapper strings -> int64")


def unsupported(name):
    """An operator the server does not implement (ai.onnx.ml opset 5's
    TreeEnsemble), for the start-up test that names it. No reference: it is
    never scored."""
    node = helper.make_node("TreeEnsemble", ["X"], ["Y"], domain=ML)
    graph = helper.make_graph(
        [node], name, [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, 3])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [None, 3])])
    model = make_model(graph)
    (OUT / f"{name}.onnx").write_bytes(model.SerializeToString())


def main():
    OUT.mkdir(exist_ok=True)
    for old in OUT.glob("*"):
        old.unlink()
    rng = np.random.default_rng(20261123)
    for mode in MODES:
        regressor(rng, f"tree-reg-{mode.lower()}", modes=(mode,))
    regressor(rng, "tree-reg-mixed-modes", modes=MODES)
    regressor(rng, "tree-reg-missing", missing=True)
    regressor(rng, "tree-reg-missing-mixed-modes", modes=MODES, missing=True)
    for agg in ["SUM", "AVERAGE", "MIN", "MAX"]:
        regressor(rng, f"tree-reg-{agg.lower()}-base", aggregate=agg, base=[0.25])
        regressor(rng, f"tree-reg3-{agg.lower()}", n_targets=3, aggregate=agg, layout="sparse")
        regressor(rng, f"tree-reg3-{agg.lower()}-base", n_targets=3, aggregate=agg, layout="sparse",
                  base=[0.5, -0.25, 1.0])
    for post in ["LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"]:
        regressor(rng, f"tree-reg-{post.lower()}", post=post)
        regressor(rng, f"tree-reg3-{post.lower()}", n_targets=3, post=post, layout="dense")
    regressor(rng, "tree-reg3-per-tree", n_targets=3, layout="per_tree", n_trees=6)

    for post in ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT"]:
        classifier(rng, f"tree-clf3-dense-{post.lower()}", post=post)
        classifier(rng, f"tree-clf3-sparse-{post.lower()}", post=post, layout="sparse", positive=False)
        # Binary, one vote per leaf (scikit-learn's GradientBoosting, XGBoost,
        # LightGBM: mixed signs; random forests: positive).
        # (Not PROBIT: onnxruntime leaves their second column uninitialized.)
        for positive in [True, False] if post != "PROBIT" else []:
            sign = "pos" if positive else "mixed"
            classifier(rng, f"tree-clf2-one-{sign}-{post.lower()}", n_classes=2, post=post,
                       layout="one", positive=positive)
            classifier(rng, f"tree-clf2-one-{sign}-base1-{post.lower()}", n_classes=2, post=post,
                       layout="one", positive=positive, base=[-0.125])
            classifier(rng, f"tree-clf2-one-{sign}-base2-{post.lower()}", n_classes=2, post=post,
                       layout="one", positive=positive, base=[0.25, -0.125])
        classifier(rng, f"tree-clf2-dense-{post.lower()}", n_classes=2, post=post, layout="dense")
        classifier(rng, f"tree-clf2-dense-base2-{post.lower()}", n_classes=2, post=post,
                   layout="dense", base=[0.25, -0.125])
    classifier(rng, "tree-clf3-per-tree-softmax-base", post="SOFTMAX", layout="per_tree",
               n_trees=6, positive=False, base=[0.1, -0.2, 0.3])
    classifier(rng, "tree-clf3-missing-mixed-modes", modes=MODES, missing=True)
    classifier(rng, "tree-clf3-labels", labels=[7, -3, 12])
    classifier(rng, "tree-clf2-labels", n_classes=2, layout="one", positive=False, labels=[5, 9])
    for post in ["NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"]:
        linear(rng, f"linear-clf3-{post.lower()}", post=post)
        linear(rng, f"linear-clf2-{post.lower()}", n_classes=2, post=post)
    linear(rng, "linear-clf2-multi", n_classes=2, multi_class=1, post="LOGISTIC")
    linear(rng, "linear-clf3-labels", labels=[4, -1, 9])
    linear(rng, "linear-clf2-labels", n_classes=2, labels=[3, 8], post="LOGISTIC")
    linear(rng, "linear-clf3-strings", strings=True, post="SOFTMAX")
    linear(rng, "linear-clf2-strings", n_classes=2, strings=True, post="LOGISTIC")
    for post in ["NONE", "PROBIT"]:
        linear_regressor(rng, f"linear-reg-{post.lower()}", post=post)
    for post in ["NONE", "LOGISTIC", "SOFTMAX"]:
        linear_regressor(rng, f"linear-reg3-{post.lower()}", targets=3, post=post)
    onehot(rng, "onehot-float")
    onehot(rng, "onehot-cast", cast=True)
    for kernel in KERNELS:
        svm(rng, f"svm-clf3-{kernel.lower()}", kernel=kernel)
        svm(rng, f"svm-clf2-{kernel.lower()}", n_classes=2, kernel=kernel)
        svm_regressor(rng, f"svm-reg-{kernel.lower()}", kernel=kernel)
    svm(rng, "svm-clf3-proba", proba=True)
    svm(rng, "svm-clf4-proba", n_classes=4, proba=True)
    svm(rng, "svm-clf2-proba", n_classes=2, proba=True)
    svm(rng, "svm-clf2-logistic", n_classes=2, post="LOGISTIC")
    svm(rng, "svm-clf3-linear-mode", linear_mode=True)
    svm(rng, "svm-clf2-linear-mode", n_classes=2, linear_mode=True)
    svm_regressor(rng, "svm-reg-one-class", one_class=1)
    svm_regressor(rng, "svm-reg-linear-mode", linear_mode=True)
    elementwise(rng, "scaler-per-column", "Scaler", offset=[0.5, -1.0, 0.0, 2.0],
                scale=[2.0, 0.5, -1.0, 0.25])
    elementwise(rng, "scaler-single", "Scaler", offset=[0.5], scale=[3.0])
    elementwise(rng, "binarizer-default", "Binarizer")
    elementwise(rng, "binarizer-threshold", "Binarizer", threshold=0.5)
    elementwise(rng, "imputer-nan-per-column", "Imputer", nan=True,
                imputed_value_floats=[1.0, 2.0, 3.0, 4.0], replaced_value_float=float("nan"))
    elementwise(rng, "imputer-value-single", "Imputer", imputed_value_floats=[9.0],
                replaced_value_float=0.5)
    for norm in ["MAX", "L1", "L2"]:
        elementwise(rng, f"normalizer-{norm.lower()}", "Normalizer", norm=norm)
    feature_extractor(rng, "afe-scalar", 3)
    feature_extractor(rng, "afe-list", [4, 0, 2])
    vectorizer(rng, "vectorizer-mixed")
    for keys in ["strings", "int64s", "floats"]:
        for values in ["strings", "int64s", "floats"]:
            label_encoder(rng, f"label-encoder-{keys}-{values}", keys, values)
    label_encoder(rng, "label-encoder-strings-int64s-default", "strings", "int64s", default=99)
    label_encoder(rng, "label-encoder-int64s-strings-default", "int64s", "strings",
                  default="other")
    label_encoder(rng, "label-encoder-floats-floats-default", "floats", "floats", default=-1.5)
    onehot_strings(rng, "onehot-strings")
    category_mapper(rng, "category-mapper")
    label_encoder_duplicates(rng, "label-encoder-duplicate-keys")
    unsupported("unsupported-treeensemble")
    print(f"wrote {len(list(OUT.glob('*.onnx')))} cases to {OUT}")


if __name__ == "__main__":
    main()
