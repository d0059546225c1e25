"""Fixtures: real score-server processes on 127.0.0.1 (ephemeral ports), a
local[2] SparkSession kept on loopback, and a Parquet file of feature rows
with onnxruntime's scores of the same rows as the reference."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
FEATURES = 100  # the demo model (logreg.onnx) takes 100 float32 features


class Server:
    """A score-server process; `kill()` is SIGKILL (a crash), `stop()` SIGTERM."""

    def __init__(self, model: Path | str, *extra: str) -> None:
        binary = os.environ.get("SCORE_SERVER_BIN", str(REPO / "target/debug/score-server"))
        if not Path(binary).exists():
            raise RuntimeError(f"{binary} is missing: build it (cargo build -p score-server) "
                               "or set SCORE_SERVER_BIN")
        self.log = tempfile.NamedTemporaryFile(prefix="score-server-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [binary, "--listen", "127.0.0.1:0", "--model", str(model), "--drain-delay", "0s",
             *extra],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            text = Path(self.log.name).read_text(errors="replace")
            found = re.search(r"listening address=(127\.0\.0\.1:\d+)", text)
            if found:
                self.url = f"http://{found.group(1)}"
                return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"score-server did not start:\n{text}")
            time.sleep(0.05)

    def rows_scored(self) -> int:
        with urllib.request.urlopen(self.url + "/metrics", timeout=5) as r:
            text = r.read().decode()
        return sum(int(float(m)) for m in re.findall(r"^score_rows_total\{[^}]*\} (\S+)", text,
                                                      re.M))

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        self.log.close()
        os.unlink(self.log.name)


@pytest.fixture
def start_server():
    started: list[Server] = []

    def start(model: str = "logreg.onnx", *extra: str) -> Server:
        # NAME=DIR (an embedding model's directory) is passed as it is.
        server = Server(model if "=" in model else MODELS / model, *extra)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def spark():
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[2]")
        .appName("stream-client-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


class Dataset:
    """ROWS rows: `id` (int64) and `features` (array<float>, 100 values),
    in a Parquet file; `x` the same features; `expected` onnxruntime's
    probabilities for them."""

    ROWS = 1_000_000

    def __init__(self, directory: Path) -> None:
        rng = np.random.default_rng(20261123)
        self.x = rng.standard_normal((self.ROWS, FEATURES), dtype=np.float32)
        self.path = directory / "features.parquet"
        offsets = pa.array(np.arange(0, (self.ROWS + 1) * FEATURES, FEATURES, dtype=np.int32))
        features = pa.ListArray.from_arrays(offsets, pa.array(self.x.ravel()))
        table = pa.table({"id": pa.array(np.arange(self.ROWS, dtype=np.int64)),
                          "features": features})
        # Several row groups so Spark reads it in several partitions.
        pq.write_table(table, self.path, row_group_size=125_000, compression="none")
        import onnxruntime as ort

        session = ort.InferenceSession(str(MODELS / "logreg.onnx"),
                                       providers=["CPUExecutionProvider"])
        name = session.get_inputs()[0].name
        outputs = [o.name for o in session.get_outputs()]
        assert outputs == ["label", "probabilities"], outputs
        self.expected = np.concatenate([
            session.run(["probabilities"], {name: self.x[i:i + 100_000]})[0]
            for i in range(0, self.ROWS, 100_000)
        ])


@pytest.fixture(scope="session")
def dataset(tmp_path_factory) -> Dataset:
    return Dataset(tmp_path_factory.mktemp("data"))


def read_scores(path: Path, score_col: str = "score") -> pa.Table:
    """A Spark Parquet output directory as one table sorted by id."""
    table = pq.read_table(path)
    return table.sort_by("id")


def as_matrix(column: pa.ChunkedArray) -> np.ndarray:
    """An array<float> column of fixed width as a 2-D array (no nulls)."""
    column = column.combine_chunks()
    assert column.null_count == 0, "a null score"
    width = len(column[0])
    return column.flatten().to_numpy().reshape(len(column), width)


def embedding_reference():
    """The embedding model's directory and the Python tokenizers +
    onnxruntime reference (`eval "$(scripts/embedding-reference.sh)"`), or a
    skip (a failure under SCORE_REQUIRE_ONNXRUNTIME, as in CI)."""
    import json

    directory, reference = os.environ.get("SCORE_EMBED_DIR"), os.environ.get(
        "SCORE_EMBED_REFERENCE")
    if not (directory and reference and os.environ.get("ORT_DYLIB_PATH")):
        message = ('SCORE_EMBED_DIR, SCORE_EMBED_REFERENCE or ORT_DYLIB_PATH unset: run '
                   'eval "$(scripts/embedding-reference.sh)" and export '
                   'ORT_DYLIB_PATH=$(scripts/onnxruntime.sh)')
        if os.environ.get("SCORE_REQUIRE_ONNXRUNTIME"):
            pytest.fail(message)
        pytest.skip(message)
    return directory, json.loads(Path(reference).read_text())
