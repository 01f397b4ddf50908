"""ml/online_predictions (orchestration/defs/monitoring/online.py): the serving log, written
by the server's own PredictionLog, brought into a real DuckDB warehouse by the asset."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import dagster as dg
import duckdb

from orchestration.defs.monitoring.online import ONLINE_PREDICTIONS, online_predictions
from orchestration.resources import WarehouseResource
from serving.predictions import Prediction, PredictionLog

AS_OF = dt.date(2026, 11, 5)


def _prediction(customer_id: int, minute: int, score: float = 0.25) -> Prediction:
    return Prediction(
        customer_id=customer_id,
        as_of=AS_OF,
        features_hash=f"hash-{customer_id}",
        score=score,
        model_name="nextbuy-brand-propensity",
        model_version="3",
        path="features",
        requested_at=dt.datetime(2026, 11, 5, 9, minute),
    )


def _log(path: Path, *predictions: Prediction) -> None:
    """Write as the server does: one flush of what its requests appended."""
    log = PredictionLog(path)
    log.append(list(predictions))
    assert log.flush() == len(predictions)


def _materialise(folder: Path, **config: Any) -> dict[str, Any]:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("as_of_dates", [AS_OF.isoformat()])
    result = dg.materialize(
        [online_predictions],
        resources={"warehouse": WarehouseResource(path=str(folder / "warehouse.duckdb"))},
        run_config={
            "ops": {
                "ml__online_predictions": {
                    "config": {"log_path": str(folder / "predictions.duckdb"), **config}
                }
            }
        },
        instance=instance,
        partition_key=AS_OF.isoformat(),
    )
    (event,) = result.get_asset_materialization_events()
    materialization = event.event_specific_data.materialization  # type: ignore[union-attr]
    return {k: v.value for k, v in materialization.metadata.items()}


def _held(folder: Path) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(folder / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(
            f"select customer_id, score, requested_at from {ONLINE_PREDICTIONS} "
            "order by requested_at, customer_id"
        ).fetchall()


def test_only_new_predictions_are_appended_and_a_rerun_adds_nothing(tmp_path: Path) -> None:
    log = tmp_path / "predictions.duckdb"
    _log(log, _prediction(1, 0), _prediction(2, 1))
    first = _materialise(tmp_path)
    assert (first["read"], first["appended"], first["locked"]) == (2, 2, False)
    assert _materialise(tmp_path)["appended"] == 0
    # A newer request, and an older one the writer wrote late (it finished after the
    # newer): both arrive, once.
    _log(log, _prediction(3, 5), _prediction(4, 0, score=0.75))
    later = _materialise(tmp_path)
    assert later["appended"] == 2
    assert later["newest_request"] == "2026-11-05 09:05:00"
    assert _materialise(tmp_path)["appended"] == 0
    assert _held(tmp_path) == [
        (1, 0.25, dt.datetime(2026, 11, 5, 9, 0)),
        (4, 0.75, dt.datetime(2026, 11, 5, 9, 0)),
        (2, 0.25, dt.datetime(2026, 11, 5, 9, 1)),
        (3, 0.25, dt.datetime(2026, 11, 5, 9, 5)),
    ]


def test_an_absent_log_brings_nothing_and_leaves_an_empty_table(tmp_path: Path) -> None:
    metadata = _materialise(tmp_path)
    assert (metadata["read"], metadata["appended"], metadata["locked"]) == (0, 0, False)
    assert "no prediction log" in metadata["summary"]
    # dbt's source exists from the first run on, with the log's columns.
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        columns = con.execute(f"describe {ONLINE_PREDICTIONS}").fetchall()
    assert [(c[0], c[1]) for c in columns] == [
        ("customer_id", "BIGINT"),
        ("as_of", "DATE"),
        ("features_hash", "VARCHAR"),
        ("score", "DOUBLE"),
        ("model_name", "VARCHAR"),
        ("model_version", "VARCHAR"),
        ("path", "VARCHAR"),
        ("requested_at", "TIMESTAMP"),
    ]


def test_a_log_its_writer_holds_is_skipped_with_a_warning(tmp_path: Path) -> None:
    log = tmp_path / "predictions.duckdb"
    _log(log, _prediction(1, 0))
    # Another process holds the file open for writing, as the server's writer does.
    holder = subprocess.Popen(
        [sys.executable, "-c", f"import duckdb, sys; c = duckdb.connect({str(log)!r}); "
         "print('held', flush=True); sys.stdin.read()"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        started = time.perf_counter()
        metadata = _materialise(tmp_path, attempts=3, retry_seconds=0.05)
        assert time.perf_counter() - started < 30
    finally:
        holder.communicate("")
    assert metadata["locked"] is True and metadata["appended"] == 0
    assert "locked by its writer at 3 attempts" in metadata["summary"]
    # Released: the next run brings it.
    assert _materialise(tmp_path)["appended"] == 1


def test_bigquery_appends_by_a_load_job_and_one_insert_of_the_absent_rows() -> None:
    """No BigQuery here (the emulator's tests are tests/bigquery): the jobs the BigQuery
    warehouse asks of a client that records them, and their SQL parsed as BigQuery's."""
    import pandas as pd
    import sqlglot
    from google.cloud import bigquery

    from orchestration.bigquery_warehouse import BigQueryWarehouseResource
    from orchestration.defs.monitoring.online import COLUMNS

    client = mock.MagicMock()
    client.query.return_value.num_dml_affected_rows = 2

    @contextmanager
    def recording(self: BigQueryWarehouseResource) -> Iterator[Any]:
        yield client

    rows = pd.DataFrame([vars(_prediction(1, 7)), vars(_prediction(2, 3))])
    warehouse = BigQueryWarehouseResource(project="shop-analytics", scores_dataset="nextbuy_ml")
    table = "shop-analytics.nextbuy_ml.online_predictions"
    with mock.patch.object(BigQueryWarehouseResource, "client", recording):
        assert warehouse.append_absent(rows, ONLINE_PREDICTIONS, COLUMNS, "requested_at") == 2
        (created,), _ = client.create_table.call_args
        (data, staged), load = client.load_table_from_file.call_args
        (sql,), _ = client.query.call_args
        client.delete_table.assert_called_once_with(
            f"{table}__incoming", not_found_ok=True, timeout=900.0
        )
        client.reset_mock()
        # Nothing to append: the table is still created, nothing is loaded or queried.
        assert (
            warehouse.append_absent(rows.head(0), ONLINE_PREDICTIONS, COLUMNS, "requested_at") == 0
        )
        assert client.create_table.called
        assert not client.load_table_from_file.called and not client.query.called
    assert f"{created.project}.{created.dataset_id}.{created.table_id}" == table
    assert [(f.name, f.field_type) for f in created.schema] == list(COLUMNS)
    assert created.time_partitioning.field == "requested_at"
    assert staged == f"{table}__incoming"
    config = load["job_config"]
    assert config.source_format == bigquery.SourceFormat.NEWLINE_DELIMITED_JSON
    assert config.write_disposition == bigquery.WriteDisposition.WRITE_TRUNCATE
    first = json.loads(data.getvalue().splitlines()[0])
    assert first["as_of"] == "2026-11-05" and first["requested_at"].startswith(
        "2026-11-05 09:07:00"
    )
    # The rows the table does not hold from the earliest loaded request on, one statement.
    sqlglot.parse_one(sql, read="bigquery")
    assert " ".join(sql.split()) == (
        f"INSERT INTO `{table}` ({', '.join(n for n, _ in COLUMNS)}) "
        f"SELECT {', '.join(n for n, _ in COLUMNS)} FROM `{table}__incoming` "
        f"EXCEPT DISTINCT SELECT {', '.join(n for n, _ in COLUMNS)} FROM `{table}` "
        "WHERE requested_at >= TIMESTAMP '2026-11-05 09:03:00+00:00'"
    )
