"""The standard clients, unchanged, against real score-servers: Triton's
`tritonclient.http` (Open Inference Protocol v2, JSON and binary tensors),
a PySpark `predict_batch_udf` that calls the server through tritonclient as
NVIDIA's Spark examples call Triton, the official `openai` package, and
`huggingface_hub`'s `InferenceClient` at the server's base URL. The
versions are pinned in requirements-test.txt."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import MODELS, embedding_reference

import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def reference(name: str) -> dict:
    return json.loads((MODELS / f"{name}.reference.json").read_text())


def host(server) -> str:
    return server.url.removeprefix("http://")


def fp32_input(name: str, x: np.ndarray, binary: bool) -> httpclient.InferInput:
    tensor = httpclient.InferInput(name, list(x.shape), "FP32")
    tensor.set_data_from_numpy(x, binary_data=binary)
    return tensor


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("model", ["logreg", "mlp", "forest"])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tritonclient_scores_zoo_models_like_onnxruntime(start_server, model, binary):
    server = start_server(f"{model}.onnx")
    ref = reference(model)
    x = np.array(ref["input"], dtype=np.float32)
    client = httpclient.InferenceServerClient(host(server))
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready(model)
    meta = client.get_model_metadata(model)
    (tensor,) = meta["inputs"]
    assert tensor["datatype"] == "FP32" and tensor["shape"] == [-1, x.shape[1]]
    config = client.get_model_config(model)
    assert config["max_batch_size"] > 0 and config["input"][0]["dims"] == [x.shape[1]]

    # No output named: every output, in binary when binary_data_output.
    result = client.infer(model, [fp32_input(tensor["name"], x, binary)])
    assert result.get_response()["model_version"] == meta["versions"][0]
    for name, out in ref["outputs"].items():
        if out["dtype"] == "string":
            continue
        got = result.as_numpy(name)
        want = np.array(out["values"], dtype=np.float64).reshape(got.shape)
        if out["dtype"].startswith("int"):
            assert got.dtype == np.int64, name
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=name)

    # One output by name, JSON or binary as asked.
    (name, out), *_ = [(n, o) for n, o in ref["outputs"].items() if o["dtype"] == "float32"]
    result = client.infer(model, [fp32_input(tensor["name"], x, binary)],
                          outputs=[httpclient.InferRequestedOutput(name, binary_data=binary)])
    assert [o["name"] for o in result.get_response()["outputs"]] == [name]
    np.testing.assert_allclose(result.as_numpy(name).ravel(),
                               np.array(out["values"], dtype=np.float32).ravel(),
                               rtol=1e-5, atol=1e-6)


def test_tritonclient_feeds_a_typed_model_by_input_name(start_server):
    """A ColumnTransformer export: float, integer and string inputs, each a
    tensor named after the model's input; string class labels back as
    BYTES."""
    server = start_server("zoo/mixed-string-labels.onnx")
    ref = json.loads((MODELS / "zoo/mixed-string-labels.reference.json").read_text())
    client = httpclient.InferenceServerClient(host(server))
    datatypes = {i["name"]: i["datatype"] for i in
                 client.get_model_metadata("mixed-string-labels")["inputs"]}
    assert datatypes == {"age": "FP32", "income": "FP32", "visits": "INT64", "city": "BYTES",
                         "plan": "BYTES"}
    inputs = []
    for name, spec in ref["inputs"].items():
        dtype = {"float32": np.float32, "int64": np.int64, "string": np.object_}[spec["dtype"]]
        values = np.array(spec["values"], dtype=dtype).reshape(spec["shape"])
        if dtype is np.object_:
            values = np.vectorize(lambda s: s.encode("utf-8"), otypes=[np.object_])(values)
        tensor = httpclient.InferInput(name, list(values.shape), datatypes[name])
        tensor.set_data_from_numpy(values, binary_data=name != "age")
        inputs.append(tensor)
    result = client.infer("mixed-string-labels", inputs)
    labels = [b.decode() for b in result.as_numpy("label").ravel()]
    assert labels == [r[0] for r in ref["outputs"]["label"]["values"]]
    np.testing.assert_allclose(result.as_numpy("probabilities"),
                               np.array(ref["outputs"]["probabilities"]["values"]), atol=1e-5)


def test_tritonclient_sends_texts_as_bytes_to_the_embedding_model(start_server):
    directory, reference = embedding_reference()
    rows = [r for r in reference["rows"] if not r["truncated"]]
    server = start_server(f"mini={directory}")
    client = httpclient.InferenceServerClient(host(server))
    meta = client.get_model_metadata("mini")
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    texts = np.array([r["text"].encode() for r in rows], dtype=np.object_)
    for binary in (True, False):
        tensor = httpclient.InferInput("text", [len(texts)], "BYTES")
        tensor.set_data_from_numpy(texts, binary_data=binary)
        result = client.infer("mini", [tensor], outputs=[
            httpclient.InferRequestedOutput("embedding", binary_data=binary),
            httpclient.InferRequestedOutput("tokens", binary_data=binary)])
        got = result.as_numpy("embedding")
        want = np.array([r["embedding"] for r in rows], dtype=np.float32)
        assert cosines(got, want).min() >= 0.9999
        assert result.as_numpy("tokens").tolist() == [r["tokens"] for r in rows]

    # Over the limit: refused naming the text, unless asked to cut it.
    long = next(r["text"] for r in reference["rows"] if r["truncated"])
    tensor = httpclient.InferInput("text", [1], "BYTES")
    tensor.set_data_from_numpy(np.array([long.encode()], dtype=np.object_))
    with pytest.raises(InferenceServerException, match="text 0 is longer than the model's limit"):
        client.infer("mini", [tensor])
    result = client.infer("mini", [tensor], parameters={"truncate": True})
    assert result.as_numpy("truncated").tolist() == [1.0]  # cut, as asked


def test_tritonclient_reports_the_servers_sentence(start_server):
    server = start_server("logreg.onnx")
    client = httpclient.InferenceServerClient(host(server))
    x = np.zeros((4, 99), dtype=np.float32)
    with pytest.raises(InferenceServerException) as wrong:
        client.infer("logreg", [fp32_input("X", x, True)])
    assert "99 values a row; model logreg takes X (FP32 [-1, 100])" in wrong.value.message()
    assert wrong.value.status() == "400"
    with pytest.raises(InferenceServerException, match='no model named "churn"'):
        client.infer("churn", [fp32_input("X", np.zeros((1, 100), np.float32), True)])
    with pytest.raises(InferenceServerException, match="is at version"):
        client.infer("logreg", [fp32_input("X", np.zeros((1, 100), np.float32), True)],
                     model_version="0123456789abcdef")


def test_several_tritonclients_at_once(start_server):
    server = start_server("logreg.onnx", "--workers", "2")
    ref = reference("logreg")
    x = np.array(ref["input"], dtype=np.float32)
    want = httpclient.InferenceServerClient(host(server)).infer(
        "logreg", [fp32_input("X", x, True)]).as_numpy("probabilities")
    failures: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            client = httpclient.InferenceServerClient(host(server), concurrency=4)
            rng = np.random.default_rng(seed)
            pending = []
            for _ in range(20):
                rows = rng.permutation(len(x))
                request = client.async_infer("logreg", [fp32_input("X", x[rows], True)])
                pending.append((rows, request))
            for rows, request in pending:
                got = request.get_result().as_numpy("probabilities")
                np.testing.assert_array_equal(got, want[rows])
            client.close()
        except BaseException as e:  # noqa: BLE001 - reported below
            failures.append(e)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures, failures
    assert server.rows_scored() >= 4 * 20 * len(x)


def triton_fn(url: str, model: str, output: str):
    """The predict function NVIDIA's Spark examples give predict_batch_udf
    for Triton: a client per task, numpy batches in and out."""

    def predict_fn():
        import tritonclient.http as httpclient

        client = httpclient.InferenceServerClient(url)
        name = client.get_model_metadata(model)["inputs"][0]["name"]

        def predict(inputs: np.ndarray) -> np.ndarray:
            tensor = httpclient.InferInput(name, list(inputs.shape), "FP32")
            tensor.set_data_from_numpy(inputs.astype(np.float32), binary_data=True)
            result = client.infer(model, [tensor],
                                  outputs=[httpclient.InferRequestedOutput(output)])
            return result.as_numpy(output)

        return predict

    return predict_fn


def test_a_spark_predict_batch_udf_calls_the_server_as_it_calls_triton(spark, dataset,
                                                                        start_server):
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import ArrayType, FloatType

    server = start_server("logreg.onnx")
    rows = 20_000
    df = spark.read.parquet(str(dataset.path)).where(f"id < {rows}").repartition(3)
    classify = predict_batch_udf(triton_fn(host(server), "logreg", "probabilities"),
                                 return_type=ArrayType(FloatType()),
                                 input_tensor_shapes=[[100]], batch_size=1024)
    got = df.withColumn("p", classify("features")).select("id", "p").toPandas()
    got = got.sort_values("id")
    assert got["id"].tolist() == list(range(rows))
    np.testing.assert_allclose(np.stack(got["p"].to_numpy()), dataset.expected[:rows],
                               rtol=1e-5, atol=1e-6)


def test_the_openai_package_with_its_default_encoding_and_float(start_server):
    import openai

    directory, reference = embedding_reference()
    rows = [r for r in reference["rows"] if not r["truncated"]]
    server = start_server(f"mini={directory}")
    client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused")
    want = np.array([r["embedding"] for r in rows], dtype=np.float32)
    texts = [r["text"] for r in rows]
    default = client.embeddings.create(model="mini", input=texts)  # base64 on the wire
    floats = client.embeddings.create(model="mini", input=texts, encoding_format="float")
    for answer in (default, floats):
        got = np.array([d.embedding for d in answer.data], dtype=np.float32)
        assert cosines(got, want).min() >= 0.9999
    # The same float32 values: base64 carries them exactly, JSON as the
    # shortest decimal that reads back as each.
    as_f32 = lambda answer: np.array([d.embedding for d in answer.data], dtype=np.float32)
    np.testing.assert_array_equal(as_f32(default), as_f32(floats))
    assert default.usage.prompt_tokens == sum(r["tokens"] for r in rows)
    with pytest.raises(openai.BadRequestError, match="Matryoshka"):
        client.embeddings.create(model="mini", input=texts, dimensions=64)


def test_huggingface_hubs_inference_client_at_the_base_url(start_server):
    from huggingface_hub import InferenceClient

    directory, reference = embedding_reference()
    rows = [r for r in reference["rows"] if not r["truncated"]]
    server = start_server(f"mini={directory}")
    client = InferenceClient(model=server.url)
    want = np.array([r["embedding"] for r in rows], dtype=np.float32)
    got = client.feature_extraction([r["text"] for r in rows])
    assert got.shape == want.shape
    assert cosines(got, want).min() >= 0.9999
    one = client.feature_extraction(rows[0]["text"], normalize=True)
    assert cosines(one.reshape(1, -1), want[:1]).min() >= 0.9999
