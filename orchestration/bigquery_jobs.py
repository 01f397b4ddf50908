"""The SQL and job settings the BigQuery warehouse (orchestration/bigquery_warehouse.py)
sends: table schemas and partitioning, load jobs of newline-delimited JSON, the literals and
statements that replace or append rows, and the frames it reads back in DuckDB's shapes.
Pure builders: nothing here talks to BigQuery.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from google.cloud import bigquery

# ml.customer_scores, column by column (DESIGN.md's scores contract, the order the
# customer_scores asset writes): the staged and the published table both have it.
SCORES_COLUMNS: tuple[tuple[str, str], ...] = (
    ("customer_id", "INT64"),
    ("score", "FLOAT64"),
    ("decile", "INT64"),
    ("model_name", "STRING"),
    ("model_version", "STRING"),
    ("as_of", "DATE"),
    ("scored_at", "TIMESTAMP"),
)
PARTITION_COLUMN = "as_of"
CLUSTERING = ["customer_id"]


def schema(columns: Sequence[tuple[str, str]] = SCORES_COLUMNS) -> list[bigquery.SchemaField]:
    from google.cloud import bigquery

    return [bigquery.SchemaField(name, kind) for name, kind in columns]


def load_config(columns: Sequence[tuple[str, str]], timeout_ms: int) -> bigquery.LoadJobConfig:
    """Rows to append, loaded whole over what was loaded before."""
    from google.cloud import bigquery

    return bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
        schema=schema(columns),
        write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE,
        job_timeout_ms=timeout_ms,
    )


def timestamp(instant: dt.datetime) -> str:
    """A TIMESTAMP literal of a naive UTC instant, built from a datetime (nothing to inject)."""
    return f"TIMESTAMP '{instant.replace(tzinfo=None).isoformat(sep=' ')}+00:00'"


def append_absent_sql(
    source: str, target: str, columns: Sequence[tuple[str, str]], since: str, after: dt.datetime
) -> str:
    names = ", ".join(name for name, _ in columns)
    return (
        f"INSERT INTO `{target}` ({names})\n"
        f"SELECT {names} FROM `{source}`\n"
        "EXCEPT DISTINCT\n"
        f"SELECT {names} FROM `{target}` WHERE {since} >= {timestamp(after)}"
    )


def partitioning() -> bigquery.TimePartitioning:
    from google.cloud import bigquery

    return bigquery.TimePartitioning(
        type_=bigquery.TimePartitioningType.DAY, field=PARTITION_COLUMN
    )


def parameter(value: Any) -> bigquery.ScalarQueryParameter:
    """A positional query parameter (``?``) of the BigQuery type of ``value``; naive
    datetimes are UTC, as everywhere in the warehouse."""
    import numpy as np
    from google.cloud import bigquery

    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool):
        kind = "BOOL"
    elif isinstance(value, int):
        kind = "INT64"
    elif isinstance(value, float):
        kind = "FLOAT64"
    elif isinstance(value, dt.datetime):
        kind = "TIMESTAMP"
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
    elif isinstance(value, dt.date):
        kind = "DATE"
    elif isinstance(value, str) or value is None:
        kind = "STRING"
    else:
        raise TypeError(f"no BigQuery query parameter for {type(value).__name__} {value!r}")
    return bigquery.ScalarQueryParameter(None, kind, value)


def date(day: dt.date) -> str:
    """A DATE literal. Built from a date, so nothing can be injected; a literal and not a
    query parameter because the emulator does not bind parameters in scripts."""
    return f"DATE '{dt.date(day.year, day.month, day.day).isoformat()}'"


def transaction(source: str, target: str, as_of: dt.date) -> str:
    columns = ", ".join(name for name, _ in SCORES_COLUMNS)
    return (
        "BEGIN TRANSACTION;\n"
        f"DELETE FROM `{target}` WHERE as_of = {date(as_of)};\n"
        f"INSERT INTO `{target}` ({columns}) SELECT {columns} FROM `{source}`;\n"
        "COMMIT TRANSACTION;"
    )


def ndjson(frame: pd.DataFrame, columns: Sequence[tuple[str, str]] = SCORES_COLUMNS) -> bytes:
    """Rows as newline-delimited JSON in the text forms BigQuery's loader reads."""
    out = frame.copy()
    for name, kind in columns:
        if kind == "DATE":
            out[name] = pd.to_datetime(out[name]).dt.strftime("%Y-%m-%d")
        elif kind == "TIMESTAMP":
            out[name] = pd.to_datetime(out[name], utc=True).dt.strftime(
                "%Y-%m-%d %H:%M:%S.%f+00:00"
            )
    # to_dict gives Python's own numbers, whose JSON keeps every digit of a score.
    records = out.astype(object).where(out.notna(), None).to_dict(orient="records")
    return "\n".join(json.dumps(record) for record in records).encode()


def like_duckdb(frame: pd.DataFrame) -> pd.DataFrame:
    """Dates and timestamps as naive datetime64 (UTC), as the DuckDB warehouse's reads
    give them, so that the steps see one shape of frame from either engine."""
    for name in frame.columns:
        column = frame[name]
        if str(column.dtype) == "dbdate":
            frame[name] = pd.to_datetime(column.astype("object")).astype("datetime64[us]")
        elif isinstance(column.dtype, pd.DatetimeTZDtype):
            frame[name] = column.dt.tz_convert("UTC").dt.tz_localize(None)
    return frame
