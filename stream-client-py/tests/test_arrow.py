"""The binding without Spark: Arrow in and out, laziness, the GIL, errors."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pyarrow as pa
import pytest
from conftest import FEATURES

from stream_client import Scorer, ScoreError


def batches(n_batches: int, rows: int, start: int = 0):
    rng = np.random.default_rng(start)
    for b in range(n_batches):
        x = rng.standard_normal((rows, FEATURES), dtype=np.float32)
        ids = pa.array(np.arange(start + b * rows, start + (b + 1) * rows, dtype=np.int64))
        offsets = pa.array(np.arange(0, (rows + 1) * FEATURES, FEATURES, dtype=np.int32))
        yield pa.record_batch([ids, pa.ListArray.from_arrays(offsets, pa.array(x.ravel()))],
                              names=["id", "features"])


def test_passthrough_columns_are_not_copied(start_server):
    server = start_server()
    inputs = list(batches(3, 1000))
    outputs = list(Scorer(server.url, batch_rows=700).score_batches(iter(inputs), "features",
                                                                     keep=["id"]))
    assert [len(o) for o in outputs] == [1000, 1000, 1000]
    for i, o in zip(inputs, outputs):
        assert o.column("id").buffers()[1].address == i.column("id").buffers()[1].address
        assert o.column("score").type == pa.list_(pa.field("element", pa.float32()))


def test_input_is_pulled_only_as_the_window_allows(start_server):
    server = start_server()
    pulled = 0

    def counting():
        nonlocal pulled
        for b in batches(40, 500):
            pulled += 1
            yield b

    in_flight = 2
    scorer = Scorer(server.url, batch_rows=500, in_flight=in_flight)
    yielded = 0
    for out in scorer.score_batches(counting(), "features"):
        yielded += 1
        # One batch per request: in flight, plus the one being cut.
        assert pulled - yielded <= in_flight + 1, (pulled, yielded)
    assert (pulled, yielded) == (40, 40)


class SlowEcho(BaseHTTPRequestHandler):
    """Answers each row's first value after a pause, from a Python thread:
    it can only answer while the client has released the GIL."""

    def do_PUT(self):  # noqa: N802 (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        threading.Event().wait(0.2)
        x = np.frombuffer(body, dtype="<f4").reshape(-1, FEATURES)
        out = np.ascontiguousarray(x[:, :1]).tobytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("X-Score-Rows", str(len(x)))
        self.send_header("X-Score-Columns", "1")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def test_the_gil_is_released_while_waiting():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), SlowEcho)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        scorer = Scorer(f"http://127.0.0.1:{httpd.server_port}", batch_rows=250, in_flight=4,
                        timeout=10.0, max_attempts=1)
        inputs = list(batches(2, 1000))
        out = pa.Table.from_batches(list(scorer.score_batches(iter(inputs), "features")))
        expected = np.concatenate([
            b.column("features").flatten().to_numpy().reshape(-1, FEATURES)[:, 0]
            for b in inputs])
        np.testing.assert_array_equal(out.column("score").to_numpy(), expected)
    finally:
        httpd.shutdown()


def test_an_input_error_is_raised_after_the_rows_before_it(start_server):
    server = start_server()

    def failing():
        yield from batches(3, 100)
        raise OSError("the input broke")

    got = []
    with pytest.raises(OSError, match="the input broke"):
        for out in Scorer(server.url, batch_rows=64).score_batches(failing(), "features"):
            got.append(len(out))
    assert got == [100, 100, 100]


def test_a_row_of_the_wrong_width_names_its_row(start_server):
    server = start_server()
    good = next(batches(1, 10))
    short = pa.record_batch([pa.array([10]), pa.array([[1.0] * (FEATURES - 1)],
                                                       type=pa.list_(pa.float32()))],
                            names=["id", "features"])
    scorer = Scorer(server.url)
    with pytest.raises(ScoreError, match=r"row 10: \"features\" has 99 values, the model takes 100"):
        list(scorer.score_batches([good, short], "features"))
    out = list(scorer.score_batches([good, short], "features", errors="column"))
    assert out[1].column("score").null_count == 1
    assert "has 99 values" in out[1].column("score_error")[0].as_py()


def test_a_forked_child_gets_its_own_client(start_server):
    # Spark's Python daemon forks its workers: a child must not use the
    # parent's runtime threads (they do not exist in the child) or pool.
    import os

    server = start_server()
    scorer = Scorer(server.url, batch_rows=100, timeout=10.0, max_attempts=2)
    parent = pa.Table.from_batches(list(scorer.score_batches(batches(2, 300), "features")))
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            child = pa.Table.from_batches(list(scorer.score_batches(batches(2, 300), "features")))
            code = 0 if child.equals(parent) else 2
        finally:
            os._exit(code)
    import signal
    import time

    deadline = time.monotonic() + 60
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the forked child hung (a runtime inherited from the parent?)")
        time.sleep(0.05)
    assert os.waitstatus_to_exitcode(done[1]) == 0


def test_a_token_is_sent_and_never_shown(start_server, tmp_path, monkeypatch):
    tokens = tmp_path / "tokens"
    tokens.write_text("s3cret-token\n")
    server = start_server("logreg.onnx", "--auth-token-file", str(tokens))
    with pytest.raises(ScoreError, match="HTTP 401"):
        list(Scorer(server.url).score_batches(batches(1, 10), "features"))
    monkeypatch.setenv("SCORE_TOKEN", "s3cret-token")
    scorer = Scorer(server.url)
    assert "s3cret" not in repr(scorer)
    out = list(scorer.score_batches(batches(2, 10), "features", keep=["id"]))
    assert sum(len(b) for b in out) == 20
    assert scorer.fetch_score_columns() == 2


def test_the_job_is_pinned_to_one_model_version(start_server):
    import stream_client

    server = start_server()
    served = Scorer(server.url).model_info()["version"]
    pinned = Scorer(server.url, batch_rows=500).pinned()
    assert pinned.model_version == served
    outputs = list(pinned.score_batches(batches(2, 1000), "features"))
    assert sum(b.num_rows for b in outputs) == 2000
    stats = stream_client.stats()
    assert stats["model_version"] == served
    assert stats["limits"] and all(limit >= 1 for limit in stats["limits"].values())

    other = Scorer(server.url, model_version="0123456789abcdef", max_attempts=2)
    with pytest.raises(ScoreError, match="pinned") as failure:
        list(other.score_batches(batches(1, 100), "features"))
    assert served in str(failure.value) and "0123456789abcdef" in str(failure.value)
