"""Fixtures of the JVM tests: the Python tests' real score-server processes
and 1M-row Parquet dataset with onnxruntime's reference scores (reused from
stream-client-py/tests/conftest.py, one definition), and `submit`, which
runs tests/ScoreJob.java under spark-submit --master local[2] with the jar.

scripts/test-jvm.sh builds the jars and sets SCORE_CLIENT_JAR,
SCORE_JOB_JAR and SPARK_HOME."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

_spec = importlib.util.spec_from_file_location(
    "stream_client_py_fixtures", REPO / "stream-client-py/tests/conftest.py")
_python = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_python)

MODELS = _python.MODELS
Server = _python.Server
Dataset = _python.Dataset
dataset = _python.dataset
start_server = _python.start_server
as_matrix = _python.as_matrix
embedding_reference = _python.embedding_reference


class Job:
    """A finished spark-submit: exit code, output, and the job's key=value lines."""

    def __init__(self, proc: subprocess.CompletedProcess) -> None:
        self.returncode = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.values = dict(line.split("=", 1) for line in proc.stdout.splitlines()
                           if "=" in line and not line.startswith(" "))

    def check(self) -> "Job":
        assert self.returncode == 0, f"the job failed:\n{self.stdout}\n{self.stderr[-6000:]}"
        return self


def spark_submit(memory: str, main: str, jar: str, *args: object) -> list[str]:
    """spark-submit --master local[2] of `main` in `jar`, with score-client.jar."""
    spark_home = os.environ["SPARK_HOME"]
    return [
        f"{spark_home}/bin/spark-submit", "--master", "local[2]",
        "--conf", "spark.ui.enabled=false",
        "--conf", "spark.driver.host=127.0.0.1",
        "--conf", "spark.driver.bindAddress=127.0.0.1",
        "--conf", "spark.sql.shuffle.partitions=4",
        "--driver-memory", memory,
        "--jars", os.environ["SCORE_CLIENT_JAR"],
        "--class", main, jar, *[str(a) for a in args],
    ]


def command(memory: str = "1g", **args: object) -> list[str]:
    """spark-submit running ScoreJob with key=value arguments."""
    return spark_submit(memory, "ScoreJob", os.environ["SCORE_JOB_JAR"],
                        *[f"{k}={v}" for k, v in args.items()])


def submit(memory: str = "1g", timeout: float = 600, env: dict | None = None,
           **args: object) -> Job:
    """Runs the job to its end (`env`: extra environment variables)."""
    proc = subprocess.run(command(memory, **args), capture_output=True, text=True,
                          timeout=timeout,
                          env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", **(env or {})})
    return Job(proc)


@pytest.fixture(scope="session")
def linreg_dataset(tmp_path_factory):
    """10,000 rows of linreg.onnx's 20 features (`id`, `features`) and
    onnxruntime's single score per row."""
    import numpy as np
    import onnxruntime as ort
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows, width = 10_000, 20
    x = np.random.default_rng(7).standard_normal((rows, width), dtype=np.float32)
    path = tmp_path_factory.mktemp("linreg") / "features.parquet"
    offsets = pa.array(np.arange(0, (rows + 1) * width, width, dtype=np.int32))
    pq.write_table(pa.table({"id": pa.array(np.arange(rows, dtype=np.int64)),
                             "features": pa.ListArray.from_arrays(offsets, pa.array(x.ravel()))}),
                   path, row_group_size=2_500)
    session = ort.InferenceSession(str(MODELS / "linreg.onnx"), providers=["CPUExecutionProvider"])
    expected = session.run(None, {session.get_inputs()[0].name: x})[0].reshape(rows)
    return path, expected
