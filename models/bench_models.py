#!/usr/bin/env python3
"""Benchmark models for our ai.onnx.ml operators against onnxruntime
(`load-tests/ml-ops/run.sh`), written to the directory given as the
only argument (not committed: a few MB, regenerated in seconds):

  rf.onnx      RandomForestClassifier, 100 trees, depth 8, 2 classes
  xgb.onnx     XGBClassifier, 100 trees, depth 6, 2 classes
  lgbm.onnx    LGBMClassifier, 100 trees, 31 leaves, 2 classes
  rf-reg.onnx  RandomForestRegressor, 100 trees, depth 8
  logreg.onnx  LogisticRegression (LinearClassifier), 100 features, 3 classes
  linreg.onnx  LinearRegression (LinearRegressor), 100 features

All exported with zipmap=False, float32 input [None, n]. Run in the zoo
venv (models/zoo.sh builds it). Seeded.
"""

import pathlib
import sys
import warnings

import numpy as np
from lightgbm import LGBMClassifier
from onnxmltools import convert_lightgbm, convert_xgboost
from onnxmltools.convert.common.data_types import FloatTensorType
from skl2onnx import to_onnx
from sklearn.datasets import make_classification, make_regression
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression, LogisticRegression
from xgboost import XGBClassifier

SEED = 20261123


def main(out):
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    warnings.filterwarnings("ignore")
    x, y = make_classification(n_samples=20000, n_features=28, n_informative=14, random_state=SEED)
    x = x.astype(np.float32)
    nozip = {"zipmap": False}

    def save(name, onx):
        (out / f"{name}.onnx").write_bytes(onx.SerializeToString())
        print(f"{name}: {(out / f'{name}.onnx').stat().st_size} bytes")

    rf = RandomForestClassifier(n_estimators=100, max_depth=8, random_state=SEED, n_jobs=2).fit(x, y)
    save("rf", to_onnx(rf, x[:1], options={id(rf): nozip}, target_opset={"": 17, "ai.onnx.ml": 3}))
    types = [("input", FloatTensorType([None, x.shape[1]]))]
    xgb = XGBClassifier(n_estimators=100, max_depth=6, random_state=SEED, n_jobs=2).fit(x, y)
    save("xgb", convert_xgboost(xgb, initial_types=types, target_opset=15))
    lgbm = LGBMClassifier(n_estimators=100, num_leaves=31, random_state=SEED, verbose=-1).fit(x, y)
    save("lgbm", convert_lightgbm(lgbm, initial_types=types, target_opset=15, zipmap=False))
    xr, yr = make_regression(n_samples=20000, n_features=28, noise=5.0, random_state=SEED)
    xr = xr.astype(np.float32)
    rfr = RandomForestRegressor(n_estimators=100, max_depth=8, random_state=SEED, n_jobs=2).fit(xr, yr)
    save("rf-reg", to_onnx(rfr, xr[:1], target_opset={"": 17, "ai.onnx.ml": 3}))

    xl, yl = make_classification(n_samples=5000, n_features=100, n_informative=20, n_classes=3,
                                 random_state=SEED)
    xl = xl.astype(np.float32)
    lr = LogisticRegression(max_iter=500).fit(xl, yl)
    save("logreg", to_onnx(lr, xl[:1], options={id(lr): nozip}, target_opset={"": 17, "ai.onnx.ml": 3}))
    xlr, ylr = make_regression(n_samples=5000, n_features=100, random_state=SEED)
    lin = LinearRegression().fit(xlr.astype(np.float32), ylr)
    save("linreg", to_onnx(lin, xlr[:1].astype(np.float32), target_opset={"": 17, "ai.onnx.ml": 3}))


if __name__ == "__main__":
    main(sys.argv[1])
