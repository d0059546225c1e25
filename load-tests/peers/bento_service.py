"""BentoML serving the tabular peers' models as its documentation shows for
a numpy model: one service, a worker per core, an API a model taking the
rows as a numpy array (a JSON array of arrays on the wire, BentoML's
encoding for `np.ndarray`), with adaptive batching (`batchable=True`) and,
beside it, the same API without batching.

Routes: POST /logreg, /mlp, /lgbm (batching on) and /logreg_unbatched,
/mlp_unbatched, /lgbm_unbatched, each with the body {"x": [[...], ...]}.
The model files come from prepare.py, in the directory PEERS_MODELS names:
  PEERS_MODELS=DIR bentoml serve load-tests/peers/bento_service.py:Peers \\
      --host 127.0.0.1 --port PORT
"""

from __future__ import annotations

import os
import pathlib

import bentoml
import numpy as np

MODELS = pathlib.Path(os.environ.get("PEERS_MODELS", "."))
BATCH = {"batchable": True, "batch_dim": 0, "max_batch_size": 16384, "max_latency_ms": 1000}


@bentoml.service(workers=2, traffic={"timeout": 60})
class Peers:
    def __init__(self) -> None:
        import joblib
        import lightgbm

        self.logreg_model = joblib.load(MODELS / "logreg" / "model.joblib")
        self.mlp_model = joblib.load(MODELS / "mlp" / "model.joblib")
        self.booster = lightgbm.Booster(model_file=str(MODELS / "lgbm" / "model.txt"))

    def _lgbm(self, x: np.ndarray) -> np.ndarray:
        p = self.booster.predict(x).astype(np.float32)
        return np.stack([1 - p, p], axis=1)

    @bentoml.api(**BATCH)
    def logreg(self, x: np.ndarray) -> np.ndarray:
        return self.logreg_model.predict_proba(x).astype(np.float32)

    @bentoml.api(**BATCH)
    def mlp(self, x: np.ndarray) -> np.ndarray:
        return self.mlp_model.predict_proba(x).astype(np.float32)

    @bentoml.api(**BATCH)
    def lgbm(self, x: np.ndarray) -> np.ndarray:
        return self._lgbm(x)

    @bentoml.api
    def logreg_unbatched(self, x: np.ndarray) -> np.ndarray:
        return self.logreg_model.predict_proba(x).astype(np.float32)

    @bentoml.api
    def mlp_unbatched(self, x: np.ndarray) -> np.ndarray:
        return self.mlp_model.predict_proba(x).astype(np.float32)

    @bentoml.api
    def lgbm_unbatched(self, x: np.ndarray) -> np.ndarray:
        return self._lgbm(x)
