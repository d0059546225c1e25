"""The tabular peers' model files, the same models score-server serves:

- logreg and mlp: retrained exactly as models/generate.py trains the
  committed ONNX fixtures (same data, seeds and pinned scikit-learn), saved
  with joblib for MLServer's sklearn runtime, and checked against the
  fixture's onnxruntime reference (models/<name>.reference.json);
- lgbm: a LightGBM classifier (100 features, 200 trees of 31 leaves),
  saved as a booster file for MLServer's LightGBM runtime and exported to
  ONNX (onnxmltools) for score-server, the two checked against each other.

Writes OUT/<model>/ (model file + MLServer's model-settings.json, filled in
by the driver) and OUT/lgbm.onnx:
  python load-tests/peers/prepare.py OUT
"""

from __future__ import annotations

import json
import pathlib
import sys

import joblib
import numpy as np
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier

REPO = pathlib.Path(__file__).resolve().parents[2]
SEED = 20261122  # models/generate.py's


def check_against_fixture(name: str, model) -> None:
    ref = json.loads((REPO / "models" / f"{name}.reference.json").read_text())
    x = np.array(ref["input"], dtype=np.float32)
    want = np.array(ref["outputs"]["probabilities"]["values"], dtype=np.float32)
    got = model.predict_proba(x.astype(np.float64)).astype(np.float32)
    worst = float(np.abs(got - want).max())
    assert worst < 1e-4, f"{name}: the retrained model differs from the fixture by {worst}"
    print(f"{name}: retrained, max |p - fixture| = {worst:.1e}")


def main() -> None:
    out = pathlib.Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)

    x, y = make_classification(n_samples=4000, n_features=100, n_informative=30,
                               random_state=SEED)
    logreg = LogisticRegression(max_iter=500).fit(x, y)
    check_against_fixture("logreg", logreg)
    (out / "logreg").mkdir(exist_ok=True)
    joblib.dump(logreg, out / "logreg" / "model.joblib")

    x, y = make_classification(n_samples=3000, n_features=100, n_informative=40,
                               n_classes=10, n_clusters_per_class=1, random_state=SEED + 3)
    mlp = MLPClassifier(hidden_layer_sizes=(256, 256), max_iter=30,
                        random_state=SEED).fit(x, y)
    check_against_fixture("mlp", mlp)
    (out / "mlp").mkdir(exist_ok=True)
    joblib.dump(mlp, out / "mlp" / "model.joblib")

    import lightgbm
    import onnxmltools
    import onnxruntime as ort
    from onnxmltools.convert.common.data_types import FloatTensorType

    x, y = make_classification(n_samples=20000, n_features=100, n_informative=30,
                               random_state=SEED + 4)
    lgbm = lightgbm.LGBMClassifier(n_estimators=200, num_leaves=31, random_state=SEED,
                                   verbose=-1).fit(x, y)
    (out / "lgbm").mkdir(exist_ok=True)
    lgbm.booster_.save_model(str(out / "lgbm" / "model.txt"))
    onx = onnxmltools.convert_lightgbm(lgbm, initial_types=[("X", FloatTensorType([None, 100]))],
                                       zipmap=False, target_opset=15)
    (out / "lgbm.onnx").write_bytes(onx.SerializeToString())
    sample = x[:256].astype(np.float32)
    session = ort.InferenceSession(str(out / "lgbm.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["probabilities"], {"X": sample})[0]
    want = lgbm.booster_.predict(sample.astype(np.float64))
    worst = float(np.abs(got[:, 1] - want).max())
    assert worst < 1e-5, f"lgbm: ONNX differs from the booster by {worst}"
    print(f"lgbm: trained, ONNX against the booster max |p| diff = {worst:.1e}")


if __name__ == "__main__":
    main()
