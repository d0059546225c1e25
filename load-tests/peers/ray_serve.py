"""Ray Serve serving the tabular peers' models, as its documentation
recommends for throughput: one deployment per model with a replica per
core, the request body read as it came, and `@serve.batch` merging
concurrent requests into one `predict_proba` (and a second copy of each
deployment without batching, for the sizes where merging costs more than it
saves).

Ray Serve has no wire protocol of its own: the handler is ours, so it takes
the same binary body as score-server's `PUT /models/NAME/score` (float32
row-major, `X-Score-Columns`) and answers float32 probabilities. That is
Ray's best encoding, and loadgen drives it exactly as it drives
score-server.

Routes: /models/NAME/score (batching on), /unbatched/models/NAME/score.
Runs until killed:
  python load-tests/peers/ray_serve.py MODELS_DIR PORT
"""

from __future__ import annotations

import pathlib
import sys
import time

import numpy as np
import ray
from ray import serve
from starlette.requests import Request
from starlette.responses import Response

CORES = 2
MODELS = ("logreg", "mlp", "lgbm")


def load(path: pathlib.Path, name: str):
    """A function from a float32 matrix to float32 probabilities [rows, classes]."""
    if name == "lgbm":
        import lightgbm

        booster = lightgbm.Booster(model_file=str(path / "lgbm" / "model.txt"))

        def predict(x):
            p = booster.predict(x).astype(np.float32)
            return np.stack([1 - p, p], axis=1)

        return predict
    import joblib

    model = joblib.load(path / name / "model.joblib")
    return lambda x: model.predict_proba(x).astype(np.float32)


def rows_of(body: bytes, columns: str | None) -> np.ndarray:
    return np.frombuffer(body, np.float32).reshape(-1, int(columns or 100))


@serve.deployment(num_replicas=CORES, ray_actor_options={"num_cpus": 0.15},
                  max_ongoing_requests=64)
class Batched:
    def __init__(self, path: str, name: str):
        self.predict = load(pathlib.Path(path), name)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.002)
    async def run(self, batches: list[np.ndarray]) -> list[bytes]:
        sizes = [len(b) for b in batches]
        out = self.predict(np.concatenate(batches))
        bounds = np.cumsum(sizes)[:-1]
        return [part.tobytes() for part in np.split(out, bounds)]

    async def __call__(self, request: Request) -> Response:
        x = rows_of(await request.body(), request.headers.get("x-score-columns"))
        return Response(await self.run(x), media_type="application/octet-stream")


@serve.deployment(num_replicas=CORES, ray_actor_options={"num_cpus": 0.15},
                  max_ongoing_requests=64)
class Unbatched:
    def __init__(self, path: str, name: str):
        self.predict = load(pathlib.Path(path), name)

    async def __call__(self, request: Request) -> Response:
        x = rows_of(await request.body(), request.headers.get("x-score-columns"))
        return Response(self.predict(x).tobytes(), media_type="application/octet-stream")


def main() -> None:
    path, port = sys.argv[1], int(sys.argv[2])
    ray.init(num_cpus=CORES, include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    for name in MODELS:
        serve.run(Batched.bind(path, name), name=f"{name}-batched",
                  route_prefix=f"/models/{name}")
        serve.run(Unbatched.bind(path, name), name=f"{name}-unbatched",
                  route_prefix=f"/unbatched/models/{name}")
    print("ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    main()
