"""The jar under real Spark on the JVM (spark-submit --master local[2]) against
real score-server processes: every score checked against onnxruntime's."""

from __future__ import annotations

import os
import re
import subprocess
import time
import urllib.request

import numpy as np
import requests
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import (MODELS, Job, Server, as_matrix, command, embedding_reference, spark_submit,
                      submit)


def test_the_builder_checks_its_arguments_and_the_scorer_serializes():
    """ApiCheck.java under plain java: no Spark session, no server."""
    classpath = f"{os.environ['SPARK_HOME']}/jars/*:{os.environ['SCORE_JOB_JAR']}:" \
        f"{os.environ['SCORE_CLIENT_JAR']}"
    out = subprocess.run(["java", "-cp", classpath, "ApiCheck", "http://127.0.0.1:9"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = dict(line.split(": ", 1) for line in out.stdout.splitlines())
    assert lines["no urls"].startswith("IllegalArgumentException: invalid configuration"), lines
    assert lines["batchRows 0"] == \
        "IllegalArgumentException: batchRows must be at least 1, got 0"
    assert lines["inFlight -1"] == "IllegalArgumentException: inFlight must be at least 1, got -1"
    assert lines["timeout NaN"].startswith("IllegalArgumentException: timeoutSeconds must be")
    assert lines["errors ignore"].startswith("IllegalArgumentException: errors must be one of")
    assert lines["bad url"].startswith("IllegalArgumentException:"), lines["bad url"]
    assert lines["no server"].startswith("ScoreException: cannot read the model's description: "
                                         "http://127.0.0.1:9/models: "), lines["no server"]
    assert lines["unknown setting"].startswith(
        'IllegalArgumentException: invalid configuration: unknown setting "user_agnet"; '
        'the settings are urls,'), lines["unknown setting"]
    assert lines["user agent"] == "returned nightly-churn", lines["user agent"]
    assert lines["serialized"].startswith("true "), lines["serialized"]
    assert "s3cret" not in out.stdout


def scores_by_id(path) -> tuple[np.ndarray, np.ndarray]:
    table = pq.read_table(path).sort_by("id")
    return table["id"].to_numpy(), as_matrix(table["score"])


def check_scores(path, dataset) -> np.ndarray:
    ids, scores = scores_by_id(path)
    assert np.array_equal(ids, np.arange(dataset.ROWS)), "a row missing or repeated"
    assert np.abs(scores - dataset.expected).max() <= 1e-6
    return scores


@pytest.fixture(scope="module")
def clean_run(dataset, tmp_path_factory):
    """The 1M-row array-layout job on one server: its scores, for comparisons."""
    server = Server(MODELS / "logreg.onnx")
    try:
        out = tmp_path_factory.mktemp("clean") / "scored"
        job = submit(job="parquet", input=dataset.path, output=out, urls=server.url,
                     layout="array").check()
    finally:
        server.stop()
    assert job.values["rows"] == str(dataset.ROWS)
    print(f"1M rows, array layout: {job.values['seconds']} s")
    return check_scores(out, dataset)


def test_a_million_rows_of_an_array_column(clean_run):
    assert clean_run.shape == (1_000_000, 2)


def test_a_million_rows_of_separate_columns(dataset, start_server, tmp_path, clean_run):
    server = start_server()
    job = submit(job="parquet", input=dataset.path, output=tmp_path / "scored", urls=server.url,
                 layout="columns").check()
    assert job.values["rows"] == str(dataset.ROWS)
    scores = check_scores(tmp_path / "scored", dataset)
    assert np.array_equal(scores, clean_run)


def test_one_of_two_servers_killed_mid_job_changes_nothing(dataset, start_server, tmp_path,
                                                          clean_run):
    a, b = start_server(), start_server()
    cmd = command(job="parquet", input=dataset.path, output=tmp_path / "scored",
                  urls=f"{a.url},{b.url}", layout="array")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while a.rows_scored() + b.rows_scored() < 200_000:
            assert proc.poll() is None, "the job ended before the kill"
            assert time.monotonic() < deadline, "the job scores nothing"
            time.sleep(0.05)
        b.kill()
        stdout, stderr = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    job = Job(subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)).check()
    assert int(re.search(r"retries=(\d+)", job.values["stats"]).group(1)) > 0, \
        "the kill cost no retry: it came too late to test anything"
    scores = check_scores(tmp_path / "scored", dataset)
    assert np.array_equal(scores, clean_run)


def test_a_wrong_feature_count_fails_the_job_with_the_servers_message(dataset, start_server,
                                                                      tmp_path):
    server = start_server()
    job = submit(job="parquet", input=dataset.path, output=tmp_path / "scored", urls=server.url,
                 layout="columns", drop=1)
    assert job.returncode != 0
    assert "score.client.ScoreException" in job.stderr
    assert "the rows have 99 values each (X-Score-Columns: 99), but model logreg takes 100 a row" \
        in job.stderr, \
        job.stderr[-4000:]


def test_the_job_is_pinned_to_one_model_version(dataset, start_server, tmp_path):
    """modelVersion pinned on the driver to the served version: the job runs
    and reports it; pinned to one no server serves: the job fails naming
    both versions."""
    server = start_server()
    served = requests.get(f"{server.url}/models", timeout=10).json()["models"][0]["version"]
    job = submit(job="parquet", input=dataset.path, output=tmp_path / "scored", urls=server.url,
                 model_version="served").check()
    assert job.values["pinned_version"] == served
    assert job.values["limits"].startswith("[") and job.values["limits"] != "[]"
    job = submit(job="parquet", input=dataset.path, output=tmp_path / "other", urls=server.url,
                 model_version="0123456789abcdef")
    assert job.returncode != 0
    assert "pinned" in job.stderr and served in job.stderr and "0123456789abcdef" in job.stderr, \
        job.stderr[-4000:]


def test_an_error_column_instead_of_failing(dataset, start_server, tmp_path):
    server = start_server()
    submit(job="parquet", input=dataset.path, output=tmp_path / "scored", urls=server.url,
           layout="columns", drop=1, errors="column").check()
    table = pq.read_table(tmp_path / "scored")
    assert table.num_rows == dataset.ROWS
    assert table["score"].null_count == dataset.ROWS
    reasons = set(table["score_error"].to_pylist())
    assert len(reasons) > 0 and all(
        "the rows have 99 values each (X-Score-Columns: 99), but model logreg takes 100 a row" in r
        for r in reasons)


def test_rows_that_cannot_be_sent_come_back_in_their_place(dataset, start_server, tmp_path):
    """Every 7th row's features are null, the partition's first row among
    them: with errors as a column each comes back in its place with a null
    score and its reason, the others scored as always, none missing or
    repeated; without, the job fails naming the row."""
    server = start_server()
    submit(job="parquet", input=dataset.path, output=tmp_path / "scored", urls=server.url,
           nulls=7, errors="column").check()
    table = pq.read_table(tmp_path / "scored").sort_by("id")
    ids = table["id"].to_numpy()
    assert np.array_equal(ids, np.arange(dataset.ROWS)), "a row missing or repeated"
    bad = ids % 7 == 0
    errors = table["score_error"].to_pylist()
    assert errors[0] == "row 0 of the partition: feature column features is null", errors[0]
    reason = re.compile(r"row \d+ of the partition: feature column features is null")
    assert all(reason.fullmatch(errors[i]) for i in np.flatnonzero(bad))
    assert all(errors[i] is None for i in np.flatnonzero(~bad))
    assert table["score"].null_count == bad.sum()
    good = as_matrix(table.filter(pa.array(~bad))["score"])
    assert np.abs(good - dataset.expected[~bad]).max() <= 1e-6

    job = submit(job="parquet", input=dataset.path, output=tmp_path / "raised", urls=server.url,
                 nulls=7)
    assert job.returncode != 0
    assert "of the partition: feature column features is null" in job.stderr, job.stderr[-4000:]


def test_a_single_score_per_row_is_a_float_column(linreg_dataset, start_server, tmp_path):
    path, expected = linreg_dataset
    server = start_server("linreg.onnx")
    submit(job="parquet", input=path, output=tmp_path / "scored", urls=server.url,
           layout="columns", width=20).check()
    table = pq.read_table(tmp_path / "scored").sort_by("id")
    assert str(table.schema.field("score").type) == "float"
    # Sums of 20 products of ~100 each: float32 rounding differs between
    # engines' summation orders by up to ~1e-4 absolute.
    np.testing.assert_allclose(table["score"].to_numpy(), expected, rtol=1e-6, atol=2e-4)


def test_a_token_from_score_token_is_sent_and_never_shown(linreg_dataset, start_server,
                                                          tmp_path):
    path, _ = linreg_dataset
    tokens = tmp_path / "tokens"
    tokens.write_text("s3cret-token\n")
    server = start_server("linreg.onnx", "--auth-token-file", str(tokens))
    args = dict(job="parquet", input=path, urls=server.url, layout="columns", width=20)
    refused = submit(output=tmp_path / "refused", **args)
    assert refused.returncode != 0 and "HTTP 401" in refused.stderr, refused.stderr[-3000:]
    job = submit(output=tmp_path / "scored", env={"SCORE_TOKEN": "s3cret-token"}, **args).check()
    assert job.values["rows"] == "10000"
    assert "s3cret" not in job.stdout + job.stderr


def test_the_scala_example_scores_a_parquet_file(linreg_dataset, start_server, tmp_path):
    path, expected = linreg_dataset
    server = start_server("linreg.onnx")
    cmd = spark_submit("1g", "ScoreParquet", os.environ["SCORE_EXAMPLES_JAR"], server.url, path,
                       tmp_path / "scored")
    job = Job(subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                             env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})).check()
    assert job.values["rows"] == "10000"
    table = pq.read_table(tmp_path / "scored").sort_by("id")
    np.testing.assert_allclose(table["score"].to_numpy(), expected, rtol=1e-6, atol=2e-4)


def inflight(server) -> float:
    with urllib.request.urlopen(server.url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    return float(re.search(r"^score_inflight_requests (\S+)", text, re.M).group(1))


def test_limit_10_stops_early_and_leaves_nothing_running(dataset, start_server):
    server = start_server()
    proc = subprocess.Popen(
        command(job="limit", input=dataset.path, urls=server.url, hold=1),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = {}
        for line in proc.stdout:
            if "=" in line:
                key, value = line.strip().split("=", 1)
                lines[key] = value
            if "stats" in lines:
                break
        assert lines.get("rows") == "10", proc.stderr.read() if proc.poll() is not None else lines
        sent = int(re.search(r"rows_sent=(\d+)", lines["stats"]).group(1))
        assert sent < dataset.ROWS // 10, f"{sent} rows sent for limit(10)"
        # The JVM is still alive: its requests must be over (aborted or done).
        deadline = time.monotonic() + 10
        while inflight(server) > 0:
            assert time.monotonic() < deadline, "requests still running after limit(10)"
            time.sleep(0.1)
        scored = server.rows_scored()
        time.sleep(1)
        assert server.rows_scored() == scored, "the server still scores for a finished job"
    finally:
        proc.stdin.close()
        proc.wait(120)


def test_executor_heap_does_not_grow_with_the_partition(start_server):
    server = start_server("linreg.onnx")
    peaks = {}
    for rows in (1_000_000, 10_000_000):
        # 10M rows of 20 floats do not fit a 512 MiB heap: only streaming passes.
        job = submit(memory="512m", job="heap", rows=rows, width=20, urls=server.url).check()
        assert job.values["rows"] == str(rows)
        peaks[rows] = float(job.values["heap_live_peak_mb"])
        print(f"{rows} rows: heap read after a full collection, at most "
              f"{job.values['heap_read_peak_mb']} MiB")
    print(f"live heap peaks (MiB): {peaks}")
    assert peaks[10_000_000] <= 1.5 * peaks[1_000_000] + 32, peaks


def test_a_text_column_gives_embeddings_like_the_python_pipeline(start_server, tmp_path):
    """An embedding model fed a string column: the texts go as Arrow utf8,
    each row gets its embedding (cosine >= 0.9999 against the Python
    tokenizers + onnxruntime pipeline, texts over the limit cut with
    truncate=1); without truncate the job fails with the server's sentence
    naming the text."""
    import pyarrow as pa

    directory, reference = embedding_reference()
    rows = reference["rows"]
    want = np.array([r["embedding"] for r in rows], dtype=np.float32)
    copies = 20
    n = copies * len(rows)
    texts = tmp_path / "texts.parquet"
    pq.write_table(pa.table({"id": np.arange(n, dtype=np.int64),
                             "text": [rows[i % len(rows)]["text"] for i in range(n)]}), texts)
    server = start_server(f"mini={directory}")
    submit(job="parquet", input=texts, output=tmp_path / "vectors", urls=server.url,
           model="mini", features="text", truncate=1, batch_rows=50).check()
    ids, vectors = scores_by_id(tmp_path / "vectors")
    assert np.array_equal(ids, np.arange(n)), "a row missing or repeated"
    expected = want[ids % len(rows)]
    cosine = (vectors * expected).sum(1) / (
        np.linalg.norm(vectors, axis=1) * np.linalg.norm(expected, axis=1))
    assert cosine.min() >= 0.9999, cosine.min()

    job = submit(job="parquet", input=texts, output=tmp_path / "refused", urls=server.url,
                 model="mini", features="text")
    assert job.returncode != 0
    assert "is longer than the model's limit of" in job.stderr, job.stderr[-4000:]
