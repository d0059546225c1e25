#!/usr/bin/env python3
"""The models data scientists actually export, with default
converter options and again with ZipMap disabled, into models/zoo/:

  <name>.onnx            skl2onnx / onnxmltools export, float32 input [None, n]
  <name>.reference.json  a 16-row input sample and onnxruntime's outputs;
                         a ZipMap output (a list of {class: probability}) is
                         stored as the probability matrix in class order, the
                         float matrix the server would serve for it

Run through `models/zoo.sh` (own venv with xgboost-cpu, lightgbm and
onnxmltools). `models/zoo_status.py` then tries each on score-server and
writes docs/models.md. Small models on seeded synthetic data: a re-run gives
the same bytes with the same pins.
"""

import json
import pathlib
import warnings

import numpy as np
import onnxruntime as ort
from skl2onnx import to_onnx
from sklearn.compose import ColumnTransformer
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import (GradientBoostingClassifier, GradientBoostingRegressor,
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import Binarizer, MinMaxScaler, Normalizer, OneHotEncoder, StandardScaler
from sklearn.svm import SVC, LinearSVC

OUT = pathlib.Path(__file__).resolve().parent / "zoo"
SEED = 20261123
ROWS = 16
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}


def reference(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {sess.get_inputs()[0].name: x})
    outputs = {}
    for meta, value in zip(sess.get_outputs(), outs):
        if isinstance(value, list):  # ZipMap: [{class: p}, ...]
            classes = sorted(value[0]) if value else []
            matrix = np.array([[row[c] for c in classes] for row in value], dtype=np.float32)
            outputs[meta.name] = {"dtype": "float32", "zipmap": True,
                                  "classes": [str(c) for c in classes],
                                  "shape": list(matrix.shape),
                                  "values": matrix.tolist()}
            continue
        value = np.asarray(value)
        if value.dtype.kind in "OUS":  # string labels
            outputs[meta.name] = {"dtype": "string", "shape": list(value.shape),
                                  "values": [[str(v)] for v in value.reshape(-1)]}
            continue
        outputs[meta.name] = {"dtype": str(value.dtype), "shape": list(value.shape),
                              "values": value.reshape(value.shape[0], -1).tolist()}
    return outputs


def write(name, onx, x, source):
    OUT.mkdir(exist_ok=True)
    # Converters list opsets in set order (varies with hash seeds): sort so
    # a re-run writes the same bytes.
    opsets = sorted(onx.opset_import, key=lambda o: o.domain)
    del onx.opset_import[:]
    onx.opset_import.extend(opsets)
    onx.graph.name = name  # onnxmltools names graphs with a random uuid
    path = OUT / f"{name}.onnx"
    path.write_bytes(onx.SerializeToString())
    x = x[:ROWS].astype(np.float32)
    doc = {"model": f"{name}.onnx", "source": source, "columns": x.shape[1],
           # NaN (missing values for the imputer) as null: JSON has no NaN.
           "input": [[None if np.isnan(v) else v for v in row] for row in x.tolist()],
           "outputs": reference(path, x)}
    (OUT / f"{name}.reference.json").write_text(json.dumps(doc) + "\n")
    print(f"{name}: {path.stat().st_size} bytes; "
          + ", ".join(f"{k}{v['shape']}:{v['dtype']}" for k, v in doc["outputs"].items()))


def sk(name, model, x, source, classifier=True):
    """Default options, and (classifiers) again with zipmap disabled."""
    write(name, to_onnx(model, x[:1].astype(np.float32), target_opset=TARGET_OPSET), x, source)
    if classifier:
        try:
            onx = to_onnx(model, x[:1].astype(np.float32), target_opset=TARGET_OPSET,
                          options={"zipmap": False})
        except NameError:
            return  # no zipmap option: this model emits no ZipMap
        write(f"{name}-nozipmap", onx, x, source + ", zipmap=False")


def mltools(name, model, x, source, converter, classifier=True):
    from onnxmltools.convert.common.data_types import FloatTensorType

    types = [("input", FloatTensorType([None, x.shape[1]]))]
    opset = 15  # the newest onnxmltools 1.16 converts to
    write(name, converter(model, initial_types=types, target_opset=opset), x, source)
    if classifier:
        try:
            onx = converter(model, initial_types=types, target_opset=opset, zipmap=False)
        except TypeError:
            return  # this converter has no zipmap option (and emits no ZipMap)
        write(f"{name}-nozipmap", onx, x, source + ", zipmap=False")


def mixed_frame(rng, n):
    """A customer table as Spark would hold it: float and int64 numbers,
    string categories (a few NaN incomes for the imputer)."""
    import pandas as pd

    cities = np.array(["paris", "lyon", "nice", "Москва", "köln"])
    frame = pd.DataFrame({
        "age": rng.normal(40, 12, n).astype(np.float32),
        "income": rng.lognormal(3, 0.5, n).astype(np.float32),
        "visits": rng.poisson(4, n).astype(np.int64),
        "city": cities[rng.integers(len(cities), size=n)],
        "plan": np.array(["free", "pro", "team"])[rng.integers(3, size=n)],
    })
    score = (frame.age - 40) / 12 + np.log(frame.income) - 3 + 0.2 * frame.visits \
        + frame.city.isin(["paris", "köln"]) - (frame.plan == "free")
    y = (score + rng.normal(0, 0.5, n) > 0.5).astype(np.int64)
    return frame, y


def mixed_types():
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType

    return [("age", FloatTensorType([None, 1])), ("income", FloatTensorType([None, 1])),
            ("visits", Int64TensorType([None, 1])), ("city", StringTensorType([None, 1])),
            ("plan", StringTensorType([None, 1]))]


def write_mixed(name, onx, frame, source, parquet=False):
    """A mixed-input export and its reference: each input's 16 values
    (`inputs`: dtype, shape, flat values; NaN as null) and onnxruntime's
    outputs on them. The sample holds a city unseen in training. With
    `parquet`, the sample also as `<name>.sample.parquet` (one column per
    input, as a DataFrame holds them: docs/cli.md's score-client example)."""
    OUT.mkdir(exist_ok=True)
    opsets = sorted(onx.opset_import, key=lambda o: o.domain)
    del onx.opset_import[:]
    onx.opset_import.extend(opsets)
    onx.graph.name = name
    path = OUT / f"{name}.onnx"
    path.write_bytes(onx.SerializeToString())
    sample = frame.iloc[:ROWS].copy()
    sample.loc[sample.index[3], "city"] = "tokyo"  # unknown category
    feeds = {}
    inputs = {}
    for column in sample.columns:
        values = sample[column].to_numpy()
        if values.dtype.kind in "OUS" or str(values.dtype) in ("str", "string"):
            feeds[column] = values.astype(object).reshape(-1, 1)
            flat = [str(v) for v in values]
            dtype = "string"
        else:
            feeds[column] = values.reshape(-1, 1)
            dtype = str(values.dtype)
            flat = [None if isinstance(v, float) and np.isnan(v) else v for v in values.tolist()]
        inputs[column] = {"dtype": dtype, "shape": [ROWS, 1], "values": flat}
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = {}
    for meta, value in zip(sess.get_outputs(), sess.run(None, feeds)):
        value = np.asarray(value)
        if value.dtype.kind in "OUS":
            outputs[meta.name] = {"dtype": "string", "shape": list(value.shape),
                                  "values": [[str(v)] for v in value.reshape(-1)]}
        else:
            outputs[meta.name] = {"dtype": str(value.dtype), "shape": list(value.shape),
                                  "values": value.reshape(value.shape[0], -1).tolist()}
    doc = {"model": f"{name}.onnx", "source": source, "inputs": inputs, "outputs": outputs}
    (OUT / f"{name}.reference.json").write_text(json.dumps(doc) + "\n")
    if parquet:
        sample.to_parquet(OUT / f"{name}.sample.parquet", index=False)
    print(f"{name}: {path.stat().st_size} bytes; "
          + ", ".join(f"{k}{v['shape']}:{v['dtype']}" for k, v in outputs.items()))


def mixed(rng):
    """ColumnTransformer pipelines over typed columns: numbers
    scaled, string categories one-hot or ordinal encoded, then a model."""
    import lightgbm as lgb
    from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes
    from sklearn.preprocessing import OrdinalEncoder

    update_registered_converter(
        lgb.LGBMClassifier, "LightGbmLGBMClassifier", calculate_linear_classifier_output_shapes,
        convert_lightgbm, options={"nocl": [True, False], "zipmap": [True, False, "columns"]})
    frame, y = mixed_frame(rng, 1200)
    numbers, categories = ["age", "income", "visits"], ["city", "plan"]

    def onehot():
        return ColumnTransformer([("num", StandardScaler(), numbers),
                                  ("cat", OneHotEncoder(handle_unknown="ignore"), categories)])

    def export(name, pipeline, source, data=frame, target=y):
        pipeline.fit(data, target)
        onx = to_onnx(pipeline, initial_types=mixed_types(), target_opset=TARGET_OPSET,
                      options={id(pipeline.steps[-1][1]): {"zipmap": False}})
        write_mixed(name, onx, data, source, parquet=name == "mixed-logreg")

    ct = "ColumnTransformer(StandardScaler on age, income, visits; OneHotEncoder on city, plan)"
    export("mixed-logreg", make_pipeline(onehot(), LogisticRegression(max_iter=500)),
           f"skl2onnx: {ct} + LogisticRegression")
    export("mixed-gb", make_pipeline(onehot(), GradientBoostingClassifier(
        n_estimators=20, max_depth=3, random_state=SEED)), f"skl2onnx: {ct} + GradientBoosting")
    export("mixed-rf", make_pipeline(onehot(), RandomForestClassifier(
        n_estimators=10, max_depth=6, random_state=SEED)), f"skl2onnx: {ct} + RandomForest")
    export("mixed-lgbm", make_pipeline(onehot(), lgb.LGBMClassifier(
        n_estimators=20, num_leaves=15, random_state=SEED, verbose=-1)),
        f"skl2onnx + onnxmltools: {ct} + LGBMClassifier")
    holes = frame.copy()
    holes.loc[holes.index[::6], "income"] = np.nan
    imputed = ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numbers),
        ("cat", OneHotEncoder(handle_unknown="ignore"), categories)])
    export("mixed-imputer-logreg", make_pipeline(imputed, LogisticRegression(max_iter=500)),
           "skl2onnx: ColumnTransformer(SimpleImputer + StandardScaler on numbers with NaN; "
           "OneHotEncoder on categories) + LogisticRegression", data=holes)
    ordinal = ColumnTransformer([
        ("num", "passthrough", ["age", "income"]),
        ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
         categories)])
    export("mixed-ordinal-rf", make_pipeline(ordinal, RandomForestClassifier(
        n_estimators=10, max_depth=6, random_state=SEED)),
        "skl2onnx: ColumnTransformer(passthrough age, income; OrdinalEncoder on city, plan) "
        "+ RandomForest")
    export("mixed-string-labels", make_pipeline(onehot(), LogisticRegression(max_iter=500)),
           f"skl2onnx: {ct} + LogisticRegression with string class labels",
           target=np.where(y == 1, "churn", "stay"))


def main():
    # Deprecation notices of SVC's probability attributes and a 200-step
    # MLP that has not converged: irrelevant for fixtures.
    warnings.simplefilter("ignore", FutureWarning)
    warnings.filterwarnings("ignore", message="Stochastic Optimizer")
    import lightgbm as lgb
    import xgboost as xgb
    from onnxmltools import convert_lightgbm, convert_xgboost

    xb, yb = make_classification(n_samples=1500, n_features=12, n_informative=8,
                                 random_state=SEED)
    xm, ym = make_classification(n_samples=1500, n_features=12, n_informative=8,
                                 n_classes=3, random_state=SEED + 1)
    xr, yr = make_regression(n_samples=1500, n_features=12, noise=1.0, random_state=SEED + 2)

    # Linear pipelines and preprocessing.
    sk("scaler-logreg", make_pipeline(StandardScaler(), LogisticRegression()).fit(xb, yb), xb,
       "skl2onnx: StandardScaler + LogisticRegression")
    sk("minmax-logreg", make_pipeline(MinMaxScaler(), LogisticRegression()).fit(xm, ym), xm,
       "skl2onnx: MinMaxScaler + LogisticRegression (3 classes)")
    holes = xb.copy()
    holes[::7, 3] = np.nan
    sk("imputer-logreg", make_pipeline(SimpleImputer(), LogisticRegression()).fit(holes, yb),
       holes, "skl2onnx: SimpleImputer + LogisticRegression (NaN in column 3)")
    cats = xb.copy()
    cats[:, :2] = np.abs(np.round(cats[:, :2])) % 4  # integer-coded categories
    ct = ColumnTransformer([("onehot", OneHotEncoder(handle_unknown="ignore"), [0, 1])],
                           remainder="passthrough")
    sk("onehot-logreg", make_pipeline(ct, LogisticRegression(max_iter=500)).fit(cats, yb), cats,
       "skl2onnx: ColumnTransformer(OneHotEncoder on 2 int-coded columns) + LogisticRegression")
    sk("binarizer-normalizer-logreg",
       make_pipeline(Normalizer(), Binarizer(threshold=0.05), LogisticRegression()).fit(xb, yb),
       xb, "skl2onnx: Normalizer + Binarizer + LogisticRegression")
    sk("logreg-string-labels",
       LogisticRegression().fit(xb, np.where(yb == 1, "yes", "no")), xb,
       "skl2onnx: LogisticRegression with string class labels")

    # Trees.
    sk("rf-binary", RandomForestClassifier(n_estimators=10, max_depth=5,
                                           random_state=SEED).fit(xb, yb), xb,
       "skl2onnx: RandomForestClassifier, 2 classes")
    sk("rf-multiclass", RandomForestClassifier(n_estimators=10, max_depth=5,
                                               random_state=SEED).fit(xm, ym), xm,
       "skl2onnx: RandomForestClassifier, 3 classes")
    sk("rf-regressor", RandomForestRegressor(n_estimators=10, max_depth=5,
                                             random_state=SEED).fit(xr, yr), xr,
       "skl2onnx: RandomForestRegressor", classifier=False)
    sk("gb-binary", GradientBoostingClassifier(n_estimators=10, max_depth=3,
                                               random_state=SEED).fit(xb, yb), xb,
       "skl2onnx: GradientBoostingClassifier, 2 classes")
    sk("gb-multiclass", GradientBoostingClassifier(n_estimators=10, max_depth=3,
                                                   random_state=SEED).fit(xm, ym), xm,
       "skl2onnx: GradientBoostingClassifier, 3 classes")
    sk("gb-regressor", GradientBoostingRegressor(n_estimators=10, max_depth=3,
                                                 random_state=SEED).fit(xr, yr), xr,
       "skl2onnx: GradientBoostingRegressor", classifier=False)

    # XGBoost and LightGBM through onnxmltools.
    small = dict(n_estimators=10, max_depth=4, random_state=SEED)
    mltools("xgb-binary", xgb.XGBClassifier(**small).fit(xb, yb), xb,
            "onnxmltools: XGBClassifier, 2 classes", convert_xgboost)
    mltools("xgb-multiclass", xgb.XGBClassifier(**small).fit(xm, ym), xm,
            "onnxmltools: XGBClassifier, 3 classes", convert_xgboost)
    mltools("xgb-regressor", xgb.XGBRegressor(**small).fit(xr, yr), xr,
            "onnxmltools: XGBRegressor", convert_xgboost, classifier=False)
    lsmall = dict(n_estimators=10, num_leaves=15, random_state=SEED, verbose=-1)
    mltools("lgbm-binary", lgb.LGBMClassifier(**lsmall).fit(xb, yb), xb,
            "onnxmltools: LGBMClassifier, 2 classes", convert_lightgbm)
    mltools("lgbm-multiclass", lgb.LGBMClassifier(**lsmall).fit(xm, ym), xm,
            "onnxmltools: LGBMClassifier, 3 classes", convert_lightgbm)
    mltools("lgbm-regressor", lgb.LGBMRegressor(**lsmall).fit(xr, yr), xr,
            "onnxmltools: LGBMRegressor", convert_lightgbm, classifier=False)

    # SVMs and the MLP.
    sk("linearsvc", LinearSVC(random_state=SEED).fit(xb, yb), xb, "skl2onnx: LinearSVC")
    sk("svc", SVC(random_state=SEED).fit(xm[:500], ym[:500]), xm, "skl2onnx: SVC (rbf, 3 classes)")
    sk("mlp-classifier", MLPClassifier(hidden_layer_sizes=(32,), max_iter=200,
                                       random_state=SEED).fit(xm, ym), xm,
       "skl2onnx: MLPClassifier (3 classes)")

    mixed(np.random.default_rng(SEED))


if __name__ == "__main__":
    main()
