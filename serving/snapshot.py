"""What online scoring reads from the warehouse, copied into memory once per change.

The warehouse is one DuckDB file, and DuckDB lets a process write it only while no other
process has it open, even read-only. A server that opened it per request would block the
batch pipeline's writes (and be blocked by them for the minutes a run holds the file).
So the server opens it read-only only to copy what it serves from, then closes it:
``marts.customer_features`` (path 1: the batch's own feature rows) and the raw users,
orders, order items and products (the catalogue every history is computed with; the
warehouse's histories for an as-of date other than customer_features'). The copy is
taken again when the file changes (serving/service.py watches it), in one read that sees
one state of the file, and swapped in whole.

The copy costs memory in proportion to the shop (tens of MB for the default 50,000
customers); at millions of order items a server would rather read an indexed store
built by the pipeline, which this first slice does not have. The id path does not query
the copy per request: customer_features' rows and raw.users' ids are read out of it once
into an in-memory index (serving/stored.py).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa  # type: ignore[import-untyped]

from serving.features import History

FEATURES_TABLE = "marts.customer_features"
# Snapshot table <- warehouse relation, ordered by the column lookups filter on, so that
# DuckDB's zone maps skip all but the rows asked for.
_COPIES = {
    "customer_features": ("marts.customer_features", "customer_id"),
    "users": ("raw.users", "id"),
    "orders": ("raw.orders", "user_id"),
    "order_items": ("raw.order_items", "user_id"),
    "products": ("raw.products", "id"),
}


class WarehouseBusy(RuntimeError):
    """Another process holds the warehouse for writing (a batch run): try again later."""


class SnapshotError(RuntimeError):
    """The warehouse cannot be served from (missing, or customer_features not built)."""


@dataclass(frozen=True)
class FileState:
    """What changes when the warehouse file is written: its and its WAL's size and mtime."""

    stamp: tuple[int, ...]

    @classmethod
    def of(cls, path: Path) -> FileState:
        parts: list[int] = []
        for file in (path, path.with_name(path.name + ".wal")):
            try:
                stat = file.stat()
            except FileNotFoundError:
                parts += [-1, -1]
            else:
                parts += [stat.st_mtime_ns, stat.st_size]
        return cls(tuple(parts))


class WarehouseSnapshot:
    """An in-memory copy of the served tables; safe to read from many threads."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        path: Path,
        state: FileState,
        as_of: dt.date | None,
        customers: int,
        seconds: float,
    ) -> None:
        self._con = con
        self.path = path
        self.state = state
        self.as_of = as_of
        self.customers = customers
        self.loaded_at = dt.datetime.now(dt.UTC)
        self.seconds = seconds

    @classmethod
    def load(cls, path: Path) -> WarehouseSnapshot:
        """Copy the served tables of the warehouse at ``path`` (read-only, released after)."""
        path = Path(path)
        if not path.exists():
            raise SnapshotError(
                f"no warehouse at {path}: load or simulate data and run `nextbuy pipeline` first"
            )
        started = time.perf_counter()
        state = FileState.of(path)
        con = duckdb.connect(":memory:")
        con.execute("set TimeZone = 'UTC'")
        try:
            try:
                con.execute(f"attach '{_quote(str(path))}' as wh (read_only)")
            except duckdb.IOException as e:
                raise WarehouseBusy(
                    f"the warehouse {path} is locked by another process: {e}"
                ) from e
            try:
                missing = [
                    relation
                    for relation, _ in _COPIES.values()
                    if not _exists(con, "wh", *relation.split("."))
                ]
                if missing:
                    raise SnapshotError(
                        f"the warehouse {path} has no {', '.join(missing)}: build the features "
                        "first (`nextbuy pipeline`)"
                    )
                for table, (relation, key) in _COPIES.items():
                    con.execute(
                        f"create table {table} as select * from wh.{relation} order by {key}"
                    )
            finally:
                con.execute("detach wh")
            row = con.execute(
                "select min(as_of), max(as_of), count(*) from customer_features"
            ).fetchone()
        except BaseException:
            con.close()
            raise
        first, last, customers = row if row else (None, None, 0)
        if first != last:
            con.close()
            raise SnapshotError(f"{FEATURES_TABLE} holds more than one as_of date")
        as_of = first.date() if isinstance(first, dt.datetime) else first
        return cls(
            con,
            path=path,
            state=state,
            as_of=as_of,
            customers=int(customers),
            seconds=time.perf_counter() - started,
        )

    def close(self) -> None:
        self._con.close()

    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        # A cursor is a connection of its own to the same database: one per thread.
        cursor = self._con.cursor()
        try:
            yield cursor
        finally:
            cursor.close()

    def products(self) -> pa.Table:
        """The catalogue as raw.products holds it."""
        with self._cursor() as cur:
            return cur.sql("select * from products").to_arrow_table()

    def feature_rows(self) -> tuple[list[str], list[tuple[Any, ...]]]:
        """customer_features' column names and rows, ordered by customer id (the id
        path's index, serving/stored.py)."""
        with self._cursor() as cur:
            result = cur.execute("select * from customer_features order by customer_id")
            names = [column[0] for column in result.description or ()]
            return names, result.fetchall()

    def customer_ids(self) -> list[int]:
        """The ids raw.users holds."""
        with self._cursor() as cur:
            return [int(row[0]) for row in cur.execute("select id from users").fetchall()]

    def history(self, customer_id: int) -> History | None:
        """The customer's raw rows as the warehouse holds them; None for an unknown id."""
        with self._cursor() as cur:
            users = _records(cur.execute("select * from users where id = ?", [customer_id]))
            if not users:
                return None
            orders = _records(
                cur.execute(
                    "select * exclude (user_id) from orders where user_id = ? order by order_id",
                    [customer_id],
                )
            )
            items = _records(
                cur.execute(
                    "select * exclude (user_id) from order_items where user_id = ? order by id",
                    [customer_id],
                )
            )
        return History(customer=users[0], orders=orders, items=items)


def _records(result: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [column[0] for column in result.description or ()]
    return [dict(zip(names, values, strict=True)) for values in result.fetchall()]


def _exists(con: duckdb.DuckDBPyConnection, database: str, schema: str, table: str) -> bool:
    row = con.execute(
        "select count(*) from duckdb_tables() "
        "where database_name = ? and schema_name = ? and table_name = ?",
        [database, schema, table],
    ).fetchone()
    return bool(row and row[0])


def _quote(text: str) -> str:
    return text.replace("'", "''")
