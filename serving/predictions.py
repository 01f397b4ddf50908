"""Every online prediction, in a table the monitoring can read.

Rows go to their own DuckDB file (``$NEXTBUY_HOME/serving/predictions.duckdb``, table
``predictions``), not the warehouse: a batch run holds the warehouse's write lock for
minutes, and a request must never wait for it. One background thread writes them: requests
only append to a list, and the writer opens the file, inserts what has accumulated in one
statement and closes it again about once a second, so a reader (monitoring, a notebook)
can open the file between writes. When the file cannot be opened (a reader holds it
open), the rows wait for the next attempt; beyond ``max_pending`` rows the oldest are
dropped and counted, so a stuck file cannot exhaust the server's memory. No request
waits for a write, and none is lost at shutdown: ``close`` writes what is pending, and
rows appended after it (a request still being answered) are written at once.
"""

from __future__ import annotations

import datetime as dt
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa  # type: ignore[import-untyped]

TABLE = "predictions"


def default_log_path(home: Path) -> Path:
    """Where `nextbuy serve` logs by default, and where monitoring reads the log."""
    return home / "serving" / "predictions.duckdb"


# The log's columns: monitoring joins them with outcomes by customer_id and as_of.
SCHEMA = pa.schema(
    [
        ("customer_id", pa.int64()),
        ("as_of", pa.date32()),
        ("features_hash", pa.string()),
        ("score", pa.float64()),
        ("model_name", pa.string()),
        ("model_version", pa.string()),
        # features: customer_features' row; warehouse_history: computed from the
        # warehouse's raw rows for another as_of; request_history: from the request's rows.
        ("path", pa.string()),
        ("requested_at", pa.timestamp("us")),
    ]
)
DDL = f"""create table if not exists {TABLE} (
    customer_id bigint,
    as_of date,
    features_hash varchar,
    score double,
    model_name varchar,
    model_version varchar,
    path varchar,
    requested_at timestamp
)"""


@dataclass(frozen=True)
class Prediction:
    customer_id: int
    as_of: dt.date
    features_hash: str
    score: float
    model_name: str
    model_version: str
    path: str
    # UTC, naive (as the warehouse stores instants).
    requested_at: dt.datetime


class PredictionLog:
    """Appends predictions to ``path`` from one background thread."""

    def __init__(
        self, path: Path, *, flush_seconds: float = 1.0, max_pending: int = 100_000
    ) -> None:
        self.path = Path(path)
        self.flush_seconds = flush_seconds
        self.max_pending = max_pending
        self.written = 0
        self.dropped = 0
        self.failed_writes = 0
        self.last_error: str | None = None
        self._pending: list[Prediction] = []
        self._lock = threading.Lock()
        # One write at a time, whether the thread's or an explicit flush().
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()

    def append(self, predictions: list[Prediction]) -> None:
        with self._lock:
            self._pending.extend(predictions)
            excess = len(self._pending) - self.max_pending
            if excess > 0:
                del self._pending[:excess]
                self.dropped += excess
            closed = self._closed
        if closed:  # no writer thread any more
            self.flush()

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def flush(self) -> int:
        """Write what is pending now; returns the rows written (0 when the file is busy:
        they stay pending)."""
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return 0
            try:
                self._write(batch)
            except duckdb.Error as e:
                self.failed_writes += 1
                self.last_error = str(e)
                with self._lock:
                    self._pending[:0] = batch
                    excess = len(self._pending) - self.max_pending
                    if excess > 0:
                        del self._pending[:excess]
                        self.dropped += excess
                return 0
            self.written += len(batch)
            return len(batch)

    def close(self) -> None:
        """Stop the writer and write what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            self._closed = True
        self.flush()

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            self.flush()

    def _write(self, batch: list[Prediction]) -> None:
        rows = pa.Table.from_pylist([vars(p) for p in batch], schema=SCHEMA)
        # One thread: a second's rows need no more, and DuckDB's default (one a core)
        # would contend with the requests for this server's cores.
        con = duckdb.connect(str(self.path), config={"threads": 1})
        try:
            con.execute(DDL)
            con.register("_predictions", rows)
            con.execute(f"insert into {TABLE} by name select * from _predictions")
            con.unregister("_predictions")
        finally:
            con.close()


def read_predictions(path: Path) -> list[dict[str, Any]]:
    """The log's rows, oldest first (for tests and quick looks)."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        result = con.execute(f"select * from {TABLE} order by requested_at")
        names = [column[0] for column in result.description or ()]
        return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    finally:
        con.close()
