"""online_predictions: the serving API's prediction log brought into the warehouse
(ml.online_predictions), where dbt's score_outcomes judges online scores as it judges the
batch's.

The log is the server's own DuckDB file ($NEXTBUY_HOME/serving/predictions.duckdb,
serving/predictions.py), written by one thread that opens it about once a second: it is
opened here read-only, and while the writer holds it the read is retried a few times
before the run goes on without it (a warning; the next run brings the rows). An absent
file means that no server has logged yet: nothing to bring, and the table is still
created, empty, for dbt.

Only the log's tail is read: the requests from an hour before the newest one the
warehouse holds. The hour is there because the writer writes requests in the order they
finish, not the order they arrived: a slow request can reach the file after a later one
that a run has already brought. Rows the warehouse already holds are not appended again
(Warehouse.append_absent compares whole rows, in one statement), so a rerun adds nothing.
"""

import datetime as dt
import time
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pyarrow as pa  # type: ignore[import-untyped]

from orchestration.environment import current_environment, warehouse_kind
from orchestration.partitions import AS_OF_DATES
from orchestration.resources import Warehouse
from serving.predictions import SCHEMA, default_log_path
from serving.predictions import TABLE as LOG_TABLE

ONLINE_PREDICTIONS = "ml.online_predictions"
ONLINE_PREDICTIONS_KEY = dg.AssetKey(["ml", "online_predictions"])
# The log's columns with the warehouse interface's types.
_BIGQUERY_TYPES = {
    pa.int64(): "INT64",
    pa.float64(): "FLOAT64",
    pa.string(): "STRING",
    pa.date32(): "DATE",
    pa.timestamp("us"): "TIMESTAMP",
}
COLUMNS = tuple((field.name, _BIGQUERY_TYPES[field.type]) for field in SCHEMA)
# How far before the newest request held the log is read again (see the module's doc).
LOOK_BACK = dt.timedelta(hours=1)


class OnlinePredictionsConfig(dg.Config):
    # Empty: $NEXTBUY_HOME/serving/predictions.duckdb, where `nextbuy serve` logs.
    log_path: str = ""
    # The writer holds the file for a moment about once a second: a few tries get between.
    attempts: int = 5
    retry_seconds: float = 0.5


def read_log(
    path: Path, after: dt.datetime | None, *, attempts: int, retry_seconds: float
) -> pd.DataFrame | None:
    """The log's requests after ``after`` (all when None), oldest first; an empty frame
    when the file or its table does not exist, None when the writer held the file at
    every attempt."""
    empty: pd.DataFrame = SCHEMA.empty_table().to_pandas()
    if not path.exists():
        return empty
    for attempt in range(attempts):
        if attempt:
            time.sleep(retry_seconds)
        try:
            con = duckdb.connect(str(path), read_only=True)
        except (duckdb.IOException, duckdb.ConnectionException):
            continue
        try:
            if not con.execute(
                "select 1 from information_schema.tables where table_name = ?", [LOG_TABLE]
            ).fetchall():
                return empty
            columns = ", ".join(SCHEMA.names)
            rows: pd.DataFrame = con.execute(
                f"select {columns} from {LOG_TABLE} where ? is null or requested_at > ? "
                "order by requested_at",
                [after, after],
            ).df()
            return rows
        finally:
            con.close()
    return None


def bring_predictions(
    warehouse: Warehouse, path: Path, *, attempts: int = 5, retry_seconds: float = 0.5
) -> tuple[int, int] | None:
    """Append the log's new requests to ml.online_predictions; returns (rows read, rows
    appended), or None when the log was locked at every attempt."""
    newest = warehouse.newest(ONLINE_PREDICTIONS, "requested_at")
    after = None if newest is None else pd.Timestamp(newest).to_pydatetime() - LOOK_BACK
    rows = read_log(path, after, attempts=attempts, retry_seconds=retry_seconds)
    # Even with nothing to bring, the table exists for dbt's source.
    incoming = SCHEMA.empty_table().to_pandas() if rows is None else rows
    appended = warehouse.append_absent(incoming, ONLINE_PREDICTIONS, COLUMNS, "requested_at")
    return None if rows is None else (len(rows), appended)


@dg.asset(
    key=ONLINE_PREDICTIONS_KEY,
    group_name="monitoring",
    partitions_def=AS_OF_DATES,
    kinds={warehouse_kind()},
)
def online_predictions(
    context: dg.AssetExecutionContext,
    config: OnlinePredictionsConfig,
    warehouse: dg.ResourceParam[Warehouse],
) -> dg.MaterializeResult:  # type: ignore[type-arg]
    """Every prediction the serving API logged (customer, as_of, features hash, score,
    model version, path, request time), appended to ml.online_predictions: only the
    requests the table does not hold yet, in one statement, so a rerun adds nothing. The
    partition only dates the run: it brings whatever the log holds that is new. An absent
    log brings nothing; a log the server keeps locked is skipped with a warning."""
    path = (
        Path(config.log_path) if config.log_path else default_log_path(current_environment().home)
    )
    brought = bring_predictions(
        warehouse, path, attempts=config.attempts, retry_seconds=config.retry_seconds
    )
    if brought is None:
        summary = (
            f"the prediction log {path} was locked by its writer at {config.attempts} "
            "attempts: nothing brought this time (the next run brings it)"
        )
        context.log.warning(summary)
    elif not path.exists():
        summary = f"no prediction log at {path} (no server has logged yet): nothing to bring"
        context.log.info(summary)
    else:
        summary = f"{brought[1]:,} new online predictions brought from {path}"
        context.log.info(summary)
    read, appended = brought or (0, 0)
    return dg.MaterializeResult(
        metadata={
            "log": dg.MetadataValue.path(str(path)),
            "read": read,
            "appended": appended,
            "locked": brought is None,
            "newest_request": str(warehouse.newest(ONLINE_PREDICTIONS, "requested_at")),
            "summary": summary,
        }
    )
