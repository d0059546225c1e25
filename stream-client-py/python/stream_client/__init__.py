"""Score Spark DataFrames through score-server.

A :class:`Scorer` holds configuration only; it pickles, so Spark ships it to
the executors inside the task closure. On an executor,
:meth:`Scorer.score_batches` streams the partition's Arrow record batches to
the servers through the Rust stream-client: rows are batched into requests,
a bounded number of requests are in flight, transient failures are retried
(on another server when there are several), and the scored batches come out
in input order, one per input batch, with the columns named in ``keep``
passed through. The generator ends only when every row has its score, or
raises :class:`ScoreError` with the server's message (Spark then retries the
task). With ``errors="column"`` a failed row gets a null score and a message
in an error column instead; a null score is never silent.

Typical use::

    from stream_client import Scorer

    scorer = Scorer(["http://scorer-1:8099", "http://scorer-2:8099"])
    schema = scorer.output_schema(df.schema, features="features", keep=["id"])
    scored = df.mapInArrow(
        lambda batches: scorer.score_batches(batches, features="features", keep=["id"]),
        schema,
    )
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from . import _native
from ._native import ScoreError

__all__ = ["Scorer", "ScoreError", "stats"]

_ERRORS = ("raise", "column")
# The Rust client's defaults (stream-client's ClientConfig::default), read
# once from the native module instead of written again here.
_DEFAULTS = _native.defaults()


def stats() -> dict[str, Any]:
    """Counters of this process's clients: rows sent and scored, requests,
    retries, failed batches, bytes sent, endpoint ejections; the model
    version their answers came from (``model_version``, ``None`` before the
    first), and each endpoint's adaptive concurrency limit now (``limits``,
    by scoring URL)."""
    return dict(_native.stats())


class Scorer:
    """Configuration of a scoring job; cheap, picklable, immutable in use.

    Args:
        urls: one base URL (``"http://host:8099"``) or several; requests are
            spread over them and retried on another when one fails. An nginx
            in front of a fleet is one URL.
        model: the served model's name (``/models/{model}/score``); ``None``
            for the server's default model.
        output: the model output to return (``?output=``); ``None`` for the
            default one (a classifier's probabilities).
        batch_rows: most rows per request.
        in_flight: most requests in flight per task: the backpressure window.
            Memory per task stays near ``in_flight × batch_rows`` rows. Each
            server's share adapts to its answers (a few more requests than
            it has workers) unless ``adaptive=False``; this is the ceiling.
        adaptive: adapt each server's concurrency to its answers (default);
            ``False`` keeps ``in_flight`` requests in flight per task.
        timeout: seconds per request attempt before it is cancelled and
            retried.
        batch_bytes: most request body bytes (keep under the server's
            ``--body-limit``).
        max_attempts: attempts per batch, the first included.
        deadline: optional seconds for a whole partition.
        score_columns: scores per row, if known; otherwise asked of the
            server (``GET /models``) when a schema or an error column needs it.
        token: bearer token for servers started with ``--auth-token-file``;
            by default the ``SCORE_TOKEN`` environment variable of the
            process that builds the ``Scorer`` (the driver). It travels to
            the executors inside the pickled ``Scorer``; it is never shown
            by ``repr``.
        truncate: for an embedding model (a string column in, vectors
            out): cut a text longer than the model's token limit there.
            Without it such a text fails its request with the server's
            sentence naming it (a :class:`ScoreError`, or the error column).
        model_version: the model version to score with (as
            :meth:`model_info` gives it). A server serving another answers
            409 and the batch goes to another; when none serves it the task
            fails with a :class:`ScoreError` naming both. ``None``: each
            executor process pins the version of its first answer. For one
            version across a whole Spark job, pin it on the driver:
            ``scorer = scorer.pinned()``.
        **settings: any other client setting by name, checked by the Rust
            core (a ``ValueError`` names an unknown one and lists them all):
            for example ``user_agent="nightly-churn"`` (added to the
            ``User-Agent`` header), ``keep_going``, ``backoff_max=30``,
            ``eject_after``. See the client settings in the docs.
    """

    def __init__(
        self,
        urls: str | Sequence[str],
        model: str | None = None,
        output: str | None = None,
        batch_rows: int = _DEFAULTS["batch_rows"],
        in_flight: int = _DEFAULTS["in_flight"],
        timeout: float = _DEFAULTS["timeout"],
        *,
        batch_bytes: int = _DEFAULTS["batch_bytes"],
        max_attempts: int = _DEFAULTS["max_attempts"],
        deadline: float | None = None,
        score_columns: int | None = None,
        token: str | None = None,
        truncate: bool = False,
        adaptive: bool = True,
        model_version: str | None = None,
        **settings: Any,
    ) -> None:
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        self.model = model
        self.output = output
        self.batch_rows = int(batch_rows)
        self.in_flight = int(in_flight)
        self.timeout = float(timeout)
        self.batch_bytes = int(batch_bytes)
        self.max_attempts = int(max_attempts)
        self.deadline = None if deadline is None else float(deadline)
        self.score_columns = None if score_columns is None else int(score_columns)
        self.token = token if token is not None else os.environ.get("SCORE_TOKEN")
        self.truncate = bool(truncate)
        self.adaptive = bool(adaptive)
        self.model_version = model_version
        self.settings = dict(settings)
        self._config()  # checks every setting now (ValueError), in one place: Rust

    def _config(self, score_columns: int | None = None) -> Any:
        """The native, validated client configuration."""
        values = {
            "urls": ",".join(self.urls), "model": self.model, "output": self.output,
            "batch_rows": self.batch_rows, "batch_bytes": self.batch_bytes,
            "in_flight": self.in_flight, "timeout": self.timeout,
            "max_attempts": self.max_attempts, "deadline": self.deadline,
            "score_columns": score_columns or self.score_columns, "token": self.token,
            "truncate": self.truncate, "adaptive": self.adaptive,
            "model_version": self.model_version,
            **self.settings,
        }
        return _native.Config([(name, _setting_text(value)) for name, value in values.items()
                               if value is not None])

    def __repr__(self) -> str:
        return (f"Scorer(urls={self.urls!r}, model={self.model!r}, output={self.output!r}, "
                f"batch_rows={self.batch_rows}, in_flight={self.in_flight}, "
                f"timeout={self.timeout}, model_version={self.model_version!r})")

    # -- scoring ---------------------------------------------------------

    def score_batches(
        self,
        batches: Iterable[Any],
        features: str | Sequence[str] | None,
        keep: Sequence[str] = (),
        score_col: str = "score",
        errors: str = "raise",
        error_col: str = "score_error",
        by_name: bool = False,
    ) -> Iterator[Any]:
        """Scores an iterator of ``pyarrow.RecordBatch`` (as ``mapInArrow``
        gives a task), yielding one ``pyarrow.RecordBatch`` per input batch.

        Args:
            batches: the input record batches.
            features: the name of one array column (``array<float>`` or
                ``array<double>``), or a list of numeric columns in the
                model's input order; ``None``: the only array column, else
                every float/double column. For a model with several
                typed inputs (a ``ColumnTransformer`` export: numbers and
                string categories), the columns named after its inputs, of
                any type the server converts (float, double, int, long,
                string, boolean); they are sent as Arrow columns by name
                (never interleaved), which happens when one of them holds
                strings or booleans, or when ``by_name`` is set. A row with a
                null in one of them is not sent: with ``errors="column"``
                its error names the column, else the job fails naming it.
            score_col: the score column: ``float`` when the model output has
                one value per row, ``array<float>`` otherwise.
            errors: ``"raise"`` (default): a batch that cannot be scored
                raises :class:`ScoreError` with the server's message, after
                the rows before it; ``"column"``: its rows get a null score
                and the reason in ``error_col``, and the job goes on.
            error_col: the error column's name when ``errors="column"``.
            by_name: send the feature columns by name even when all are
                numbers (a model fed by name whose inputs are all numeric).
        """
        import pyarrow as pa

        error_col = self._error_col(errors, error_col)
        k = self.score_columns
        if error_col is not None and k is None:
            # A batch may fail before any answer shows the width: learn it
            # now so the score column's type never depends on luck.
            k = self.fetch_score_columns()
        config = self._config(k)
        scored = _native.score(
            batches,
            config,
            features=_feature_list(features),
            keep=list(keep),
            score_col=score_col,
            error_col=error_col,
            by_name=by_name,
        )
        for batch in scored:
            yield pa.record_batch(batch)

    def transform(
        self,
        df: Any,
        features: str | Sequence[str] | None = None,
        keep: Sequence[str] = (),
        score_col: str = "score",
        errors: str = "raise",
        error_col: str = "score_error",
        by_name: bool = False,
    ) -> Any:
        """The scored Spark DataFrame, as Java's ``Scorer.transform`` gives
        it: ``df.mapInArrow`` over :meth:`score_batches` with
        :meth:`output_schema` (the ``keep`` columns, then ``score_col``,
        then the error column with ``errors="column"``). Lazy like any
        DataFrame: nothing is scored until an action (``write``) runs.
        Takes :meth:`score_batches`' arguments.

        ``scorer.transform(df, "features", ["id"]).write.parquet(path)``
        """
        schema = self.output_schema(df.schema, features, keep, score_col, errors, error_col,
                                    by_name)
        keep = list(keep)

        def score(batches: Iterable[Any]) -> Iterator[Any]:
            return self.score_batches(batches, features, keep, score_col, errors, error_col,
                                      by_name)

        return df.mapInArrow(score, schema)

    def score_pandas(
        self,
        frames: Iterable[Any],
        features: str | Sequence[str] | None,
        keep: Sequence[str] = (),
        score_col: str = "score",
        errors: str = "raise",
        error_col: str = "score_error",
    ) -> Iterator[Any]:
        """:meth:`score_batches` for ``mapInPandas``: pandas DataFrames in
        and out (converted through Arrow; prefer ``mapInArrow``, which skips
        the conversions)."""
        import pyarrow as pa

        batches = (pa.RecordBatch.from_pandas(df, preserve_index=False) for df in frames)
        for batch in self.score_batches(batches, features, keep, score_col, errors, error_col):
            yield batch.to_pandas()

    # -- schema ----------------------------------------------------------

    def output_schema(
        self,
        schema: Any,
        features: str | Sequence[str] | None = None,
        keep: Sequence[str] = (),
        score_col: str = "score",
        errors: str = "raise",
        error_col: str = "score_error",
        by_name: bool = False,
    ) -> Any:
        """The Spark ``StructType`` that :meth:`score_batches` yields for an
        input of ``schema``: the ``keep`` fields, then ``score_col`` (float,
        or array<float> when the model gives several values per row), then
        the error column if asked for. Asks the server for the output width
        unless ``score_columns`` was given. ``features`` is checked against
        the schema when given. Takes :meth:`score_batches`' arguments, so
        one set of keywords serves both (``by_name`` does not change the
        schema)."""
        from pyspark.sql.types import ArrayType, FloatType, StringType, StructField, StructType

        error_col = self._error_col(errors, error_col)
        names = schema.fieldNames()
        for name in list(keep) + (_feature_list(features) or []):
            if name not in names:
                raise ValueError(f"no column named {name!r} in the input schema {names}")
        k = self.score_columns or self.fetch_score_columns()
        fields = [schema[name] for name in keep]
        # As Java's outputSchema: a score is null only where the error
        # column says why, and its values never are.
        score_type = FloatType() if k == 1 else ArrayType(FloatType(), False)
        fields.append(StructField(score_col, score_type, error_col is not None))
        if error_col is not None:
            fields.append(StructField(error_col, StringType(), True))
        return StructType(fields)

    # -- model metadata --------------------------------------------------

    def model_info(self) -> dict[str, Any]:
        """The served model's metadata (``GET /models/{name}``, or the
        default model of ``GET /models``), from the first server that
        answers."""
        return json.loads(_native.model_info(self.urls, self.model, self.token))

    def pinned(self) -> "Scorer":
        """This scorer pinned to the model version served now (asked of
        the first server that answers): every executor then scores with
        that one version, and a task that finds none serving it fails
        instead of mixing versions."""
        scorer = copy.copy(self)
        scorer.model_version = self.model_info()["version"]
        scorer._config()
        return scorer

    def fetch_score_columns(self) -> int:
        """Scores per row of the configured output, asked of the server."""
        return _native.score_columns(self.urls, self.model, self.output, self.token)

    @staticmethod
    def _error_col(errors: str, error_col: str) -> str | None:
        if errors not in _ERRORS:
            raise ValueError(f"errors must be one of {_ERRORS}, got {errors!r}")
        return error_col if errors == "column" else None


def _feature_list(features: str | Sequence[str] | None) -> list[str] | None:
    if features is None:
        return None
    if isinstance(features, str):
        return [features]
    return list(features)


def _setting_text(value: Any) -> str:
    """A setting's value as the core parses it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)
