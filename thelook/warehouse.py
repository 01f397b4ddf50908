"""The embedded warehouse's raw side: schema creation and the one write path into raw.

Every writer (the export loader, the simulator) stages typed rows in a relation of its
own and hands them to `write_raw`, which replaces what they cover in one transaction:
day partitions of partitioned tables, primary keys of the others. `meta.partitions`,
modelled on BigQuery's INFORMATION_SCHEMA.PARTITIONS, is updated in the same transaction,
so a reader never sees rows without their partition record and a failed write changes
nothing.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from thelook.schema import (
    META_SCHEMA,
    PARTITIONS_TABLE,
    RAW_SCHEMA,
    TABLES,
    Table,
    partition_id_sql,
)

LOAD_HISTORY_TABLE = f"{META_SCHEMA}.load_history"
# meta.load_history's actions: rows written, raw emptied by a replacing load, a day
# partition dropped. The last two remove rows the incremental marts may still hold
# (orchestration/removals.py).
WRITTEN, REPLACED_ALL, DROPPED = "write", "replace_all", "drop_partition"


class WarehouseWriteError(ValueError):
    """Rows could not be written to raw; nothing was changed."""


@dataclass(frozen=True)
class TableWrite:
    table: str
    rows: int
    partitions: tuple[str, ...]


def connect(path: str | Path, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file, creating it and the raw schema when absent."""
    path = Path(path)
    if read_only:
        con = duckdb.connect(str(path), read_only=True)
        con.execute("set TimeZone = 'UTC'")
        return con
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    # Raw timestamps are UTC instants; no conversion may depend on the machine's zone.
    con.execute("set TimeZone = 'UTC'")
    ensure_schema(con)
    return con


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"create schema if not exists {RAW_SCHEMA}")
    con.execute(f"create schema if not exists {META_SCHEMA}")
    for table in TABLES.values():
        con.execute(table.ddl())
    con.execute(
        f"""create table if not exists {PARTITIONS_TABLE} (
          table_schema varchar not null,
          table_name varchar not null,
          partition_id varchar,  -- YYYYMMDD; NULL for an unpartitioned table
          total_rows bigint not null,
          last_modified_time timestamp not null
        )"""
    )
    con.execute(
        f"""create table if not exists {LOAD_HISTORY_TABLE} (
          loaded_at timestamp not null,
          source varchar not null,
          table_name varchar not null,
          rows_written bigint not null,
          partitions_written bigint not null
        )"""
    )
    # What a row records: a write, a replacement of the whole of raw (REPLACED_ALL) or a
    # dropped day partition (DROPPED); added to warehouses made before it existed.
    con.execute(
        f"alter table {LOAD_HISTORY_TABLE} add column if not exists action varchar default '{WRITTEN}'"
    )


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    con.execute("begin transaction")
    try:
        yield con
    except BaseException:
        con.execute("rollback")
        raise
    con.execute("commit")


def write_raw(
    con: duckdb.DuckDBPyConnection,
    incoming: Mapping[str, str],
    *,
    source: str,
    replace_all: bool = False,
) -> list[TableWrite]:
    """Write staged relations (raw table name -> relation name) into raw atomically.

    With `replace_all`, raw is emptied first in the same transaction: the load becomes
    the whole dataset, and a failure still leaves the previous one in place.
    """
    with transaction(con):
        if replace_all:
            clear_raw(con)
            _record(
                con, dt.datetime.now(dt.UTC).replace(tzinfo=None), source, "*", 0, 0, REPLACED_ALL
            )
        return apply_raw_writes(con, incoming, source=source)


def _record(
    con: duckdb.DuckDBPyConnection,
    at: dt.datetime,
    source: str,
    table: str,
    rows: int,
    partitions: int,
    action: str = WRITTEN,
) -> None:
    con.execute(
        f"""insert into {LOAD_HISTORY_TABLE}
            (loaded_at, source, table_name, rows_written, partitions_written, action)
            values (?, ?, ?, ?, ?, ?)""",
        [at, source, table, rows, partitions, action],
    )


def drop_partition(
    con: duckdb.DuckDBPyConnection, table: str, partition_id: str, *, source: str
) -> int:
    """Remove one day partition of a partitioned raw table and its record in
    meta.partitions, noting it in meta.load_history, in one transaction; the rows
    removed. Refuses a table without day partitions and a partition raw does not hold."""
    if table not in TABLES or not TABLES[table].partition_column:
        partitioned = ", ".join(n for n, t in TABLES.items() if t.partition_column)
        raise WarehouseWriteError(
            f"raw.{table} has no day partitions to drop (partitioned: {partitioned})"
        )
    spec = TABLES[table]
    assert spec.partition_column is not None
    pid = partition_id_sql(spec.partition_column)
    with transaction(con):
        counted = first_row(
            con, f"select count(*) from {spec.qualified_name} where {pid} = ?", [partition_id]
        )
        rows = int(counted[0]) if counted else 0  # type: ignore[call-overload]
        known = first_row(
            con,
            f"select min(partition_id), max(partition_id), count(*), "
            f"count(*) filter (where partition_id = ?) from {PARTITIONS_TABLE} "
            "where table_schema = ? and table_name = ?",
            [partition_id, RAW_SCHEMA, table],
        )
        assert known is not None
        if not rows and not known[3]:
            held = (
                f"it holds {known[2]} day partitions, {known[0]} .. {known[1]}"
                if known[2]
                else "it has none"
            )
            raise WarehouseWriteError(
                f"raw.{table} has no day partition {partition_id}: {held}; "
                "`nextbuy warehouse` lists them"
            )
        con.execute(f"delete from {spec.qualified_name} where {pid} = ?", [partition_id])
        con.execute(
            f"delete from {PARTITIONS_TABLE} where table_schema = ? and table_name = ? "
            "and partition_id = ?",
            [RAW_SCHEMA, table, partition_id],
        )
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        _record(con, now, source, table, -rows, 1, DROPPED)
    return rows


def clear_raw(con: duckdb.DuckDBPyConnection) -> None:
    """Empty every raw table and its partition records (inside the caller's transaction)."""
    for table in TABLES.values():
        con.execute(f"delete from {table.qualified_name}")
    con.execute(f"delete from {PARTITIONS_TABLE} where table_schema = ?", [RAW_SCHEMA])


def apply_raw_writes(
    con: duckdb.DuckDBPyConnection, incoming: Mapping[str, str], *, source: str
) -> list[TableWrite]:
    """The body of `write_raw`, for callers that add work to the same transaction."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    writes = []
    for name, relation in incoming.items():
        if name not in TABLES:
            raise WarehouseWriteError(f"unknown raw table {name!r}")
        table = TABLES[name]
        _check_incoming_keys(con, table, relation)
        if table.partition_column:
            partitions = _replace_partitions(con, table, relation)
        else:
            con.execute(
                f"delete from {table.qualified_name} where {table.primary_key} in "
                f"(select {table.primary_key} from {relation})"
            )
            _insert(con, table, relation)
            partitions = []
        _refresh_partition_records(con, table, partitions, now)
        rows = count_rows(con, relation)
        _record(con, now, source, name, rows, len(partitions))
        writes.append(TableWrite(name, rows, tuple(partitions)))
    return writes


def first_row(
    con: duckdb.DuckDBPyConnection, sql: str, params: list[object] | None = None
) -> tuple[object, ...] | None:
    """The first row of a query, with the result fully consumed.

    DuckDB 2 leaves a result read with fetchone() open, and an open result makes a
    following con.register() fail; fetchall() closes it.
    """
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def count_rows(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    row = first_row(con, f"select count(*) from {relation}")
    assert row is not None
    return int(row[0])  # type: ignore[call-overload]


def _insert(con: duckdb.DuckDBPyConnection, table: Table, relation: str) -> None:
    cols = ", ".join(table.column_names)
    con.execute(f"insert into {table.qualified_name} ({cols}) select {cols} from {relation}")


def _check_incoming_keys(con: duckdb.DuckDBPyConnection, table: Table, relation: str) -> None:
    key = table.primary_key
    nulls = count_rows(con, f"(select 1 from {relation} where {key} is null)")
    if nulls:
        raise WarehouseWriteError(f"{table.name}: {nulls} row(s) with a NULL {key}")
    dupes = con.execute(
        f"select {key}, count(*) from {relation} group by {key} having count(*) > 1 "
        f"order by {key} limit 5"
    ).fetchall()
    if dupes:
        shown = ", ".join(f"{k} ({n}x)" for k, n in dupes)
        raise WarehouseWriteError(f"{table.name}: duplicate {key} values: {shown}")


def _replace_partitions(con: duckdb.DuckDBPyConnection, table: Table, relation: str) -> list[str]:
    assert table.partition_column is not None
    pid = partition_id_sql(table.partition_column)
    partitions = [
        r[0] for r in con.execute(f"select distinct {pid} from {relation} order by 1").fetchall()
    ]
    con.execute(
        f"delete from {table.qualified_name} where {pid} in (select distinct {pid} from {relation})"
    )
    # A key may not live on in a partition this write does not replace.
    clash = con.execute(
        f"select i.{table.primary_key}, {partition_id_sql('r.' + table.partition_column)} "
        f"from {relation} i join {table.qualified_name} r using ({table.primary_key}) limit 5"
    ).fetchall()
    if clash:
        shown = ", ".join(f"{k} (in partition {p})" for k, p in clash)
        raise WarehouseWriteError(
            f"{table.name}: {table.primary_key} values already present in partitions "
            f"this load does not replace: {shown}"
        )
    _insert(con, table, relation)
    return partitions


def _refresh_partition_records(
    con: duckdb.DuckDBPyConnection, table: Table, partitions: list[str], now: dt.datetime
) -> None:
    if table.partition_column:
        pid = partition_id_sql(table.partition_column)
        con.execute(
            f"delete from {PARTITIONS_TABLE} where table_schema = ? and table_name = ? "
            f"and partition_id in (select unnest(?::varchar[]))",
            [RAW_SCHEMA, table.name, partitions],
        )
        con.execute(
            f"""insert into {PARTITIONS_TABLE}
                select ?, ?, {pid} as partition_id, count(*), ?
                from {table.qualified_name}
                where {pid} in (select unnest(?::varchar[]))
                group by partition_id""",
            [RAW_SCHEMA, table.name, now, partitions],
        )
    else:
        con.execute(
            f"delete from {PARTITIONS_TABLE} where table_schema = ? and table_name = ?",
            [RAW_SCHEMA, table.name],
        )
        con.execute(
            f"insert into {PARTITIONS_TABLE} select ?, ?, null, count(*), ? from {table.qualified_name}",
            [RAW_SCHEMA, table.name, now],
        )


@dataclass(frozen=True)
class TableSummary:
    table: str
    rows: int
    partitions: int
    first_partition: str | None
    last_partition: str | None
    last_modified: dt.datetime | None


def summarize(con: duckdb.DuckDBPyConnection) -> list[TableSummary]:
    """What raw holds, table by table, as `nextbuy warehouse` prints it."""
    out = []
    for table in TABLES.values():
        rows = count_rows(con, table.qualified_name)
        parts = first_row(
            con,
            f"""select count(partition_id), min(partition_id), max(partition_id),
                       max(last_modified_time)
                from {PARTITIONS_TABLE} where table_schema = ? and table_name = ?""",
            [RAW_SCHEMA, table.name],
        )
        assert parts is not None
        out.append(TableSummary(table.name, rows, int(parts[0]), parts[1], parts[2], parts[3]))
    return out
