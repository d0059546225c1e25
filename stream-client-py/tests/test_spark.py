"""stream_client in real PySpark (local[2]) against real score-servers."""

from __future__ import annotations

import pickle
import threading
import time

import numpy as np
import pyarrow as pa
import pytest
from conftest import FEATURES, as_matrix, embedding_reference, read_scores

from stream_client import Scorer, ScoreError

# Probabilities are computed by tract on the server and by onnxruntime here:
# the same float32 arithmetic up to summation order.
TOLERANCE = 1e-6


def score_with(scorer, df, features, keep=("id",), **kwargs):
    schema = scorer.output_schema(df.schema, features, keep, **kwargs)
    return df.mapInArrow(
        lambda batches: scorer.score_batches(batches, features, keep, **kwargs), schema
    )


def test_a_million_rows_of_an_array_column(spark, dataset, start_server, tmp_path):
    server = start_server()
    scorer = Scorer(server.url, batch_rows=4096, in_flight=4)
    df = spark.read.parquet(str(dataset.path))
    assert df.rdd.getNumPartitions() >= 2
    out = tmp_path / "scored"
    score_with(scorer, df, "features").write.parquet(str(out))

    table = read_scores(out)
    assert table.schema.names == ["id", "score"]
    assert table.num_rows == dataset.ROWS
    np.testing.assert_array_equal(table.column("id").to_numpy(), np.arange(dataset.ROWS))
    got = as_matrix(table.column("score"))
    assert got.shape == (dataset.ROWS, 2)
    np.testing.assert_allclose(got, dataset.expected, rtol=0, atol=TOLERANCE)
    assert server.rows_scored() == dataset.ROWS, "every row scored once, by the server"


def test_separate_feature_columns_and_mapinpandas(spark, dataset, start_server):
    server = start_server()
    scorer = Scorer([server.url], batch_rows=1000, in_flight=2)
    rows = 30_000
    names = [f"f{j:02d}" for j in range(FEATURES)]
    df = spark.read.parquet(str(dataset.path)).where(f"id < {rows}")
    # Doubles, as pandas-born data usually is: converted to float32 on the way.
    df = df.select("id", *[df.features[j].cast("double").alias(n) for j, n in enumerate(names)])

    by_arrow = score_with(scorer, df, names).toArrow().sort_by("id")
    assert by_arrow.num_rows == rows
    np.testing.assert_allclose(
        as_matrix(by_arrow.column("score")), dataset.expected[:rows], rtol=0, atol=TOLERANCE
    )

    # The same columns sent as they are (Arrow), for the server to take by
    # position: the same scores.
    as_columns = score_with(scorer, df, names, by_name=True).toArrow().sort_by("id")
    assert as_columns.equals(by_arrow), "columns sent as Arrow score differently"

    schema = scorer.output_schema(df.schema, names, ["id"])
    by_pandas = df.mapInPandas(lambda frames: scorer.score_pandas(frames, names, ["id"]), schema)
    by_pandas = by_pandas.toArrow().sort_by("id")
    assert by_pandas.equals(by_arrow), "mapInPandas and mapInArrow disagree"

    # transform, as Java has it: the same DataFrame in one call.
    by_transform = scorer.transform(df, names, ["id"]).toArrow().sort_by("id")
    assert by_transform.equals(by_arrow), "transform and mapInArrow disagree"


def test_a_single_score_per_row_is_a_float_column(spark, dataset, start_server):
    server = start_server()
    scorer = Scorer(server.url, output="label")
    df = spark.read.parquet(str(dataset.path)).where("id < 5000")
    scored = score_with(scorer, df, "features")
    assert scored.schema["score"].dataType.simpleString() == "float"
    labels = scored.toArrow().sort_by("id").column("score").to_numpy()
    np.testing.assert_array_equal(labels, dataset.expected[:5000].argmax(axis=1))


def test_one_of_two_servers_killed_mid_job_changes_nothing(spark, dataset, start_server, tmp_path):
    rows = 300_000
    df = spark.read.parquet(str(dataset.path)).where(f"id < {rows}").repartition(2, "id")
    a, b = start_server(), start_server()
    # Small batches and a short timeout: many requests, so the kill lands
    # mid-job, and a request lost with the server is retried quickly.
    scorer = Scorer([a.url, b.url], batch_rows=500, in_flight=2, timeout=5.0)
    out = tmp_path / "with-kill"
    job = threading.Thread(target=lambda: score_with(scorer, df, "features").write.parquet(str(out)))
    job.start()
    deadline = time.monotonic() + 120
    while a.rows_scored() < 20_000:
        assert job.is_alive(), "the job ended before the kill"
        assert time.monotonic() < deadline, "server a never got work"
        time.sleep(0.01)
    a.kill()
    killed_at = a.proc.returncode
    still_running = job.is_alive()
    job.join(300)
    assert killed_at is not None and still_running, "the kill did not land mid-job"
    assert (out / "_SUCCESS").exists(), "the job failed"

    clean = tmp_path / "clean"
    score_with(Scorer(b.url, batch_rows=500), df, "features").write.parquet(str(clean))
    with_kill, reference = read_scores(out), read_scores(clean)
    assert with_kill.num_rows == rows
    assert with_kill.equals(reference), "output differs from a clean run"
    np.testing.assert_allclose(
        as_matrix(with_kill.column("score")), dataset.expected[:rows], rtol=0, atol=TOLERANCE
    )


def test_a_server_refusal_fails_the_job_with_its_message(spark, dataset, start_server):
    server = start_server()
    scorer = Scorer(server.url)
    names = [f"f{j}" for j in range(FEATURES - 1)]  # one feature short
    df = spark.read.parquet(str(dataset.path)).where("id < 1000")
    df = df.select("id", *[df.features[j].alias(n) for j, n in enumerate(names)])
    with pytest.raises(Exception) as failure:
        score_with(scorer, df, names).collect()
    message = str(failure.value)
    assert "the rows have 99 values each (X-Score-Columns: 99), but model logreg takes 100 a row" \
        in message, message
    # ... and what the job sent, in its own terms.
    assert "this job sends 99 columns, 99 values a row: \"f0\", \"f1\"" in message, message
    assert "ScoreError" in message, message


def test_an_error_column_instead_of_failing(spark, dataset, start_server):
    server = start_server()
    scorer = Scorer(server.url, batch_rows=100)
    df = spark.read.parquet(str(dataset.path)).where("id < 2000")
    # Rows 7 and 1500 lose their features.
    df = df.selectExpr("id", "IF(id IN (7, 1500), NULL, features) AS features")
    table = score_with(scorer, df, "features", errors="column").toArrow().sort_by("id")
    assert table.schema.names == ["id", "score", "score_error"]
    errors = table.column("score_error").to_pylist()
    scores = table.column("score").to_pylist()
    bad = {i for i, e in enumerate(errors) if e is not None}
    assert bad == {7, 1500}
    assert all("is null" in errors[i] for i in bad), errors[7]
    assert all(scores[i] is None for i in bad)
    good = [i for i in range(2000) if i not in bad]
    np.testing.assert_allclose(
        np.array([scores[i] for i in good]), dataset.expected[good], rtol=0, atol=TOLERANCE
    )


def test_the_scorer_pickles_and_checks_its_arguments():
    scorer = Scorer(["http://127.0.0.1:1", "http://127.0.0.1:2"], model="m", in_flight=3)
    copy = pickle.loads(pickle.dumps(scorer))
    assert vars(copy) == vars(scorer)
    with pytest.raises(ValueError, match="in_flight must be at least 1"):
        Scorer("http://127.0.0.1:1", in_flight=0)
    with pytest.raises(ValueError, match="errors must be one of"):
        list(scorer.score_batches([], "f", errors="ignore"))


def test_settings_by_name_reach_the_core_and_unknown_ones_are_refused():
    scorer = Scorer("http://127.0.0.1:1", user_agent="nightly-churn", backoff_max=30,
                    keep_going=True, in_flight=3)
    config = scorer._config()
    assert config.setting("user_agent") == "nightly-churn"
    assert config.setting("backoff_max") == "30s"
    assert config.setting("keep_going") == "true"
    assert config.setting("in_flight") == "3"
    assert config.setting("deadline") is None
    assert vars(pickle.loads(pickle.dumps(scorer))) == vars(scorer)
    with pytest.raises(ValueError, match='unknown setting "user_agnet"; the settings are urls,'):
        Scorer("http://127.0.0.1:1", user_agnet="x")
    with pytest.raises(ValueError, match='timeout "-1.0" is not valid'):
        Scorer("http://127.0.0.1:1", timeout=-1)


def test_no_server_raises_after_the_retries():
    batch = pa.record_batch(
        [pa.array([1, 2]), pa.array([[0.0] * FEATURES] * 2, type=pa.list_(pa.float32()))],
        names=["id", "features"],
    )
    scorer = Scorer("http://127.0.0.1:9", max_attempts=2, timeout=1.0)
    with pytest.raises(ScoreError, match="gave up on rows 0..2 after 2 attempts"):
        list(scorer.score_batches([batch], "features"))


def test_string_category_columns_score_like_onnxruntime(spark, start_server, tmp_path):
    """A ColumnTransformer export (StandardScaler on numbers, OneHotEncoder on
    string categories) scored from a DataFrame of float, long and string
    columns: sent by name as Arrow, equal to onnxruntime on the same rows;
    a null category is reported in the error column, naming it."""
    import onnxruntime as ort
    import pyarrow.parquet as pq

    from conftest import MODELS

    model = MODELS / "zoo" / "mixed-logreg.onnx"
    server = start_server("zoo/mixed-logreg.onnx")
    rng = np.random.default_rng(17)
    n = 20_000
    cities = np.array(["paris", "lyon", "nice", "Москва", "köln", "tokyo"])
    table = pa.table({
        "id": np.arange(n, dtype=np.int64),
        "age": rng.normal(40, 12, n).astype(np.float32),
        "income": rng.lognormal(3, 0.5, n).astype(np.float32),
        "visits": rng.poisson(4, n).astype(np.int64),
        "city": cities[rng.integers(len(cities), size=n)],
        "plan": np.array(["free", "pro", "team"])[rng.integers(3, size=n)],
    })
    inputs = ["age", "income", "visits", "city", "plan"]
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    feeds = {c: table[c].to_numpy(zero_copy_only=False).reshape(-1, 1) for c in inputs}
    feeds["city"] = feeds["city"].astype(object)
    feeds["plan"] = feeds["plan"].astype(object)
    expected = session.run(["probabilities"], feeds)[0]
    pq.write_table(table, tmp_path / "customers.parquet")
    df = spark.read.parquet(str(tmp_path / "customers.parquet")).repartition(3)

    scorer = Scorer(server.url, output="probabilities", batch_rows=1000, in_flight=2)
    got = score_with(scorer, df, inputs).toArrow().sort_by("id")
    assert got.num_rows == n
    np.testing.assert_allclose(as_matrix(got.column("score")), expected, rtol=0, atol=1e-5)

    holes = df.selectExpr("id", "age", "income", "visits",
                          "CASE WHEN id = 77 THEN NULL ELSE city END AS city", "plan")
    out = score_with(scorer, holes, inputs, errors="column").toArrow().sort_by("id")
    errors = out.column("score_error").to_pylist()
    assert [i for i, e in enumerate(errors) if e is not None] == [77]
    assert 'column "city" is null' in errors[77]
    assert out.column("score").to_pylist()[77] is None


def cosines(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    return (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))


def test_a_text_column_gives_embeddings_like_the_python_pipeline(spark, start_server):
    """An embedding model fed a Spark string column: `features="text"` gives
    an array<float> embedding per row, equal (cosine >= 0.9999) to the
    Python tokenizers + onnxruntime pipeline, for Cyrillic, mixed scripts,
    emoji, empty texts and texts far over the limit (cut with truncate=True).
    Without truncate, a batch holding an over-long text fails with the
    server's sentence naming it, and no row goes without a vector or a
    reason; a null text is reported by column."""
    directory, reference = embedding_reference()
    rows = reference["rows"]
    want = np.array([r["embedding"] for r in rows], dtype=np.float32)
    server = start_server(f"mini={directory}")
    copies = 40
    n = copies * len(rows)
    table = pa.table({"id": np.arange(n, dtype=np.int64),
                      "text": [rows[i % len(rows)]["text"] for i in range(n)]})
    df = spark.createDataFrame(table.to_pandas()).repartition(3)

    scorer = Scorer(server.url, model="mini", batch_rows=64, in_flight=2, truncate=True)
    schema = scorer.output_schema(df.schema, "text", ["id"])
    assert schema["score"].dataType.simpleString() == "array<float>"
    got = score_with(scorer, df, "text").toArrow().sort_by("id")
    assert got.num_rows == n
    vectors = as_matrix(got.column("score"))
    assert vectors.shape == (n, want.shape[1])
    worst = cosines(vectors, want[np.arange(n) % len(rows)]).min()
    assert worst >= 0.9999, f"cosine {worst}"

    long = [i for i, r in enumerate(rows) if r["truncated"]]
    assert long, "the reference has texts over the limit"
    strict = Scorer(server.url, model="mini", batch_rows=len(rows), in_flight=2)
    with pytest.raises(Exception, match="is longer than the model's limit of"):
        score_with(strict, df.where(f"id < {len(rows)}"), "text").collect()

    holes = df.selectExpr("id", "CASE WHEN id = 5 THEN NULL ELSE text END AS text")
    out = score_with(strict, holes, "text", errors="column").toArrow().sort_by("id")
    scores, errors = out.column("score").to_pylist(), out.column("score_error").to_pylist()
    assert all((s is None) != (e is None) for s, e in zip(scores, errors)), "a silent row"
    assert 'column "text" is null' in errors[5]
    for i in range(n):
        if i % len(rows) in long:
            assert "?truncate=true" in errors[i], errors[i]
