"""Dagster resources, chosen from the environment (orchestration/environment.py).

local: the DuckDB file under NEXTBUY_HOME, dbt's `local` target, MLflow's SQLite store.
production: dbt's `bigquery` target, the BigQuery warehouse
(orchestration/bigquery_warehouse.py) and the tracking server named by MLFLOW_TRACKING_URI.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import dagster as dg
import duckdb
import pandas as pd

from orchestration.environment import Environment, current_environment
from orchestration.settings import Parameters, load_parameters, parameters_path

if TYPE_CHECKING:
    from orchestration.bigquery_warehouse import BigQueryWarehouseResource
    from orchestration.partitions import PartitionState
    from orchestration.registry import Registry
    from orchestration.settings import RegistrySettings
    from orchestration.tracking import Tracker


class ParametersResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The versioned parameters file, read and validated afresh by every step that needs
    it; a step then uses only its own sections."""

    path: str

    def load(self) -> Parameters:
        return load_parameters(Path(self.path))


@runtime_checkable
class Warehouse(Protocol):
    """What the Python steps ask of the warehouse beyond SQL of one engine: DuckDB's
    (WarehouseResource) and BigQuery's (BigQueryWarehouseResource) answer alike. Tables are
    named ``<dataset>.<table>``."""

    def read_table(self, table: str, order_by: str, where: str = "true") -> pd.DataFrame:
        """The table's rows that meet ``where``, always in the order of ``order_by``."""
        ...

    def has_table(self, table: str) -> bool: ...

    def relation(self, table: str) -> str:
        """``table`` as this engine's SQL names it (BigQuery: `project.dataset.table`)."""
        ...

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> pd.DataFrame:
        """A read-only query's rows. ``sql`` names its tables through `relation`, binds
        ``parameters`` to its ``?`` in order, and keeps to the SQL both engines read alike:
        ``mod()`` not ``%``, ``countif()`` not ``FILTER``, ``concat`` not ``||`` on
        numbers, ``cast(... as string)``."""
        ...

    def sqlalchemy_url(self) -> str:
        """Where Great Expectations' SQL datasource validates tables in place."""
        ...

    def replace_rows(
        self, rows: pd.DataFrame, table: str, columns: Sequence[tuple[str, str]]
    ) -> None:
        """Make ``rows`` the whole content of ``table`` (a small bookkeeping table, created
        with ``columns``: name, BigQuery type), atomically: readers see the old rows or
        the new."""
        ...

    def partitions(self) -> list[PartitionState]:
        """raw order_items' day partitions, sorted by day: what the daily loop's sensor
        and the feature build compare with what was built."""
        ...

    def stage_scores(self, scores: pd.DataFrame, table: str) -> str:
        """Write scores where they can be validated; returns the staged table's name."""
        ...

    def publish_scores(self, staged: str, as_of: dt.date, table: str) -> int:
        """Replace ``as_of``'s scores in ``table`` with the staged ones, atomically;
        returns rows written."""
        ...

    def newest(self, table: str, column: str) -> Any:
        """The largest value of ``column`` in ``table``; None when the table is empty or
        absent."""
        ...

    def append_absent(
        self, rows: pd.DataFrame, table: str, columns: Sequence[tuple[str, str]], since: str
    ) -> int:
        """Append the rows ``table`` does not hold yet, in one statement: the same row among
        those with ``since`` from the smallest of ``rows`` on is not added twice. ``table``
        is created empty with ``columns`` (name, BigQuery type) when absent, even without
        rows. Returns rows appended."""
        ...


class WarehouseResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The embedded DuckDB warehouse, for the Python steps that read marts and write scores.

    dbt reaches the same file through its own profile; the two never hold it at once,
    because Dagster runs dbt as a subprocess that has exited before the next step starts.
    """

    path: str

    @contextmanager
    def connect(self, *, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        from thelook.warehouse import connect

        con = connect(Path(self.path), read_only=read_only)
        try:
            yield con
        finally:
            con.close()

    def read_table(self, table: str, order_by: str, where: str = "true") -> pd.DataFrame:
        """The table (its rows that meet ``where``, an SQL condition), in a fixed row order:
        DuckDB scans in parallel, and CatBoost's result depends on row order, so the same
        data must always arrive the same way."""
        with self.connect(read_only=True) as con:
            if not table_exists(con, table):
                raise LookupError(
                    f"warehouse table {table} does not exist in {self.path}: build the dbt "
                    "models first (`nextbuy features`, or materialise the features group)"
                )
            return con.execute(f"select * from {table} where {where} order by {order_by}").df()

    def has_table(self, table: str) -> bool:
        if not Path(self.path).exists():
            return False
        with self.connect(read_only=True) as con:
            return table_exists(con, table)

    def relation(self, table: str) -> str:
        return table

    def query(self, sql: str, parameters: Sequence[Any] = ()) -> pd.DataFrame:
        with self.connect(read_only=True) as con:
            return con.execute(sql, list(parameters)).df()

    def sqlalchemy_url(self) -> str:
        from orchestration.defs.quality.gx import warehouse_url

        return warehouse_url(Path(self.path))

    def replace_rows(
        self, rows: pd.DataFrame, table: str, columns: Sequence[tuple[str, str]]
    ) -> None:
        from thelook.schema import DUCKDB_TYPES
        from thelook.warehouse import transaction

        definition = ", ".join(f"{name} {DUCKDB_TYPES[kind]} not null" for name, kind in columns)
        names = ", ".join(name for name, _ in columns)
        with self.connect() as con, transaction(con):
            con.execute(f"create schema if not exists {table.split('.')[0]}")
            con.execute(f"create table if not exists {table} ({definition})")
            con.execute(f"delete from {table}")
            con.register("_rows", rows)
            con.execute(f"insert into {table} ({names}) select {names} from _rows")
            con.unregister("_rows")

    def partitions(self) -> list[PartitionState]:
        """From the loader's meta.partitions (modelled on BigQuery's view)."""
        from orchestration.partitions import read_partitions

        return read_partitions(Path(self.path))

    def stage_scores(self, scores: pd.DataFrame, table: str) -> str:
        """Write new scores beside ``table`` (as ``<table>__staged``), where they can be
        validated before anyone reads them; returns the staged table's name."""
        staged = f"{table}__staged"
        with self.connect() as con:
            con.execute(f"create schema if not exists {table.split('.')[0]}")
            con.register("_new_scores", scores)
            con.execute(f"create or replace table {staged} as select * from _new_scores")
            con.unregister("_new_scores")
        return staged

    def publish_scores(self, staged: str, as_of: dt.date, table: str) -> int:
        """Replace the rows of one as_of date of ``table`` with the staged scores, in one
        transaction; returns rows written.

        Delete and insert commit together, so a reader sees the old scores or the new,
        never half of each, and a re-run replaces rather than duplicates.
        """
        from thelook.pause_points import pause_point
        from thelook.warehouse import transaction

        with self.connect() as con, transaction(con):
            con.execute(f"create table if not exists {table} as select * from {staged} where false")
            con.execute(f"delete from {table} where as_of = ?", [as_of])
            con.execute(f"insert into {table} by name select * from {staged}")
            row = con.execute(f"select count(*) from {staged}").fetchone()
            con.execute(f"drop table {staged}")
            pause_point("scores-publishing")
        return int(row[0]) if row else 0

    def newest(self, table: str, column: str) -> Any:
        if not Path(self.path).exists():
            return None
        with self.connect(read_only=True) as con:
            if not table_exists(con, table):
                return None
            row = con.execute(f"select max({column}) from {table}").fetchone()
        return row[0] if row else None

    def append_absent(
        self, rows: pd.DataFrame, table: str, columns: Sequence[tuple[str, str]], since: str
    ) -> int:
        """One transaction: the table (created when absent) and an INSERT of ``rows``
        EXCEPT the rows already held from the smallest ``since`` of ``rows`` on, so a rerun
        with the same rows adds nothing (EXCEPT compares NULLs as equal)."""
        from thelook.schema import DUCKDB_TYPES
        from thelook.warehouse import transaction

        names = ", ".join(name for name, _ in columns)
        typed = ", ".join(
            f"cast({name} as {DUCKDB_TYPES[kind]}) as {name}" for name, kind in columns
        )
        definition = ", ".join(f"{name} {DUCKDB_TYPES[kind]}" for name, kind in columns)
        with self.connect() as con, transaction(con):
            con.execute(f"create schema if not exists {table.split('.')[0]}")
            con.execute(f"create table if not exists {table} ({definition})")
            if rows.empty:
                return 0
            con.register("_incoming", rows)
            row = con.execute(
                f"""insert into {table} ({names})
                select {typed} from _incoming
                except
                select {names} from {table}
                where {since} >= (select min({since}) from _incoming)"""
            ).fetchone()
            con.unregister("_incoming")
        return int(row[0]) if row else 0


class RegistryResource(dg.ConfigurableResource):  # type: ignore[type-arg]
    """MLflow: run tracking (orchestration/tracking.py) and the model registry
    (orchestration/registry.py), in one store whose URI is set once, here."""

    tracking_uri: str

    @classmethod
    def for_environment(cls, env: Environment) -> RegistryResource:
        """The environment's store: MLFLOW_TRACKING_URI, or SQLite under NEXTBUY_HOME."""
        from orchestration.mlflow_store import tracking_uri

        return cls(tracking_uri=tracking_uri(env))

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        from orchestration.mlflow_store import configure_mlflow

        configure_mlflow(self.tracking_uri)

    def open(self, settings: RegistrySettings) -> Registry:
        from orchestration.registry import Registry

        return Registry(
            self.tracking_uri, model_name=settings.model_name, alias=settings.champion_alias
        )

    def tracker(self, settings: RegistrySettings) -> Tracker:
        from orchestration.tracking import Tracker

        return Tracker(self.tracking_uri, experiment=settings.experiment)


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    schema, name = table.split(".")
    rows = con.execute(
        "select 1 from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, name],
    ).fetchall()
    return bool(rows)


def build_resources(
    env: Environment | None = None, warehouse: Path | None = None
) -> dict[str, Any]:
    """Every resource the definitions use, for this environment (``warehouse`` replaces
    its DuckDB file)."""
    from orchestration.dbt import dbt_resource

    env = env or current_environment()
    return {
        "dbt": dbt_resource(env),
        "warehouse": warehouse_resource(env, warehouse),
        "parameters": ParametersResource(path=str(parameters_path())),
        "registry": RegistryResource.for_environment(env),
    }


def as_warehouse(warehouse: Warehouse | Path) -> Warehouse:
    """``warehouse``, or the DuckDB warehouse in the file at that path."""
    return warehouse if isinstance(warehouse, Warehouse) else WarehouseResource(path=str(warehouse))


def duckdb_file(warehouse: Warehouse) -> Path | None:
    """The DuckDB file behind ``warehouse``; None when the warehouse is BigQuery."""
    return Path(warehouse.path) if isinstance(warehouse, WarehouseResource) else None


def warehouse_resource(
    env: Environment, warehouse: Path | None = None
) -> WarehouseResource | BigQueryWarehouseResource:
    """The one choice of warehouse engine: BigQuery in production (settings from the
    NEXTBUY_BQ_* variables dbt's bigquery target reads), else the DuckDB file (``warehouse``
    replaces the environment's)."""
    if env.name == "production":
        from orchestration.bigquery_warehouse import BigQueryWarehouseResource

        return BigQueryWarehouseResource.from_environment()
    return WarehouseResource(path=str(warehouse or env.warehouse_path))
