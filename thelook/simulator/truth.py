"""What a simulation leaves besides raw: the truth schema, its record, and the call's report.

`truth.customers` and `truth.orders` hold the latent state and each order's exact
probability of a target-brand item; `truth.simulation` holds one row: mode, seed, the
settings and target brands as JSON (`settings_json`, read back by `read_simulation`),
the first and the current end date, and how many days were appended.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from dataclasses import dataclass

import duckdb
from pydantic import ValidationError

from thelook.schema import RAW_SCHEMA
from thelook.settings import SimulationSettings
from thelook.warehouse import TableWrite, first_row

TRUTH_SCHEMA = "truth"
SOURCE = "simulator"  # how meta.load_history names the simulator's writes


class SimulationError(RuntimeError):
    """The warehouse cannot be simulated into as asked (e.g. no simulation to append to)."""


@dataclass(frozen=True)
class SimulationResult:
    """What one simulate / append_days call wrote."""

    # table -> rows written (raw.* and truth.*); for an append, order_items counts the
    # rows of rewritten future-dated partitions too
    rows: dict[str, int]
    first_partition: str | None  # order_items partitions written, YYYYMMDD
    last_partition: str | None
    end: dt.date  # the simulation's end date after the call
    settings: SimulationSettings
    target_brands: tuple[str, ...]

    def describe(self) -> str:
        """A few lines for the CLI."""
        s = self.settings
        lines = [f"simulated {s.mode} shop (seed {s.seed}), now ending {self.end.isoformat()}"]
        lines += [f"  {table:<26}{rows:>12,} rows" for table, rows in self.rows.items()]
        if self.first_partition:
            lines.append(
                f"  order_items partitions written: {self.first_partition} .. {self.last_partition}"
            )
        return "\n".join(lines)


def result(
    writes: list[TableWrite],
    settings: SimulationSettings,
    target_brands: tuple[str, ...],
    end: dt.date,
    truth_rows: dict[str, int],
) -> SimulationResult:
    rows = {f"{RAW_SCHEMA}.{w.table}": w.rows for w in writes}
    rows.update({f"{TRUTH_SCHEMA}.{k}": v for k, v in truth_rows.items()})
    partitions = [p for w in writes if w.table == "order_items" for p in w.partitions]
    return SimulationResult(
        rows=rows,
        first_partition=min(partitions) if partitions else None,
        last_partition=max(partitions) if partitions else None,
        end=end,
        settings=settings,
        target_brands=target_brands,
    )


def settings_json(settings: SimulationSettings, target_brands: Sequence[str]) -> str:
    """The settings and target brands as truth.simulation stores them."""
    values = {**settings.model_dump(mode="json"), "target_brands": list(target_brands)}
    return json.dumps(values, sort_keys=True)


def parse_settings_json(text: str) -> tuple[SimulationSettings, tuple[str, ...]]:
    """The inverse of `settings_json`, validated as parameters.yaml is."""
    values = json.loads(text)
    target_brands = tuple(values.pop("target_brands"))
    return SimulationSettings.model_validate(values), target_brands


def create_truth(
    con: duckdb.DuckDBPyConnection, settings: SimulationSettings, target_brands: Sequence[str]
) -> None:
    """Replace the truth schema with the staged truth rows (in the caller's transaction)."""
    con.execute(f"drop schema if exists {TRUTH_SCHEMA} cascade")
    con.execute(f"create schema {TRUTH_SCHEMA}")
    con.execute(f"create table {TRUTH_SCHEMA}.customers as select * from _sim_truth_customers")
    con.execute(
        f"create table {TRUTH_SCHEMA}.orders as select * from _sim_truth_orders order by order_id"
    )
    con.execute(
        f"""create table {TRUTH_SCHEMA}.simulation (
              mode varchar, seed bigint, config json, start_date date, end_date date,
              appended_days integer)"""
    )
    con.execute(
        f"insert into {TRUTH_SCHEMA}.simulation values (?, ?, ?, ?, ?, 0)",
        [
            settings.mode,
            settings.seed,
            settings_json(settings, target_brands),
            settings.start,
            settings.end,
        ],
    )


def extend_truth(con: duckdb.DuckDBPyConnection, new_end: dt.date, days: int) -> None:
    """Add the staged truth rows of appended days (in the caller's transaction)."""
    con.execute(f"insert into {TRUTH_SCHEMA}.customers select * from _sim_truth_customers")
    con.execute(f"insert into {TRUTH_SCHEMA}.orders select * from _sim_truth_orders")
    con.execute(
        f"update {TRUTH_SCHEMA}.simulation set end_date = ?, appended_days = appended_days + ?",
        [new_end, days],
    )


@dataclass(frozen=True)
class StoredSimulation:
    settings: SimulationSettings  # as simulated: `end` is the end of the first history
    target_brands: tuple[str, ...]
    end: dt.date  # the current end, after the days appended since


def read_simulation(con: duckdb.DuckDBPyConnection) -> StoredSimulation:
    exists = first_row(
        con,
        "select count(*) from duckdb_tables() where schema_name = ? and table_name = 'simulation'",
        [TRUTH_SCHEMA],
    ) != (0,)
    rows = (
        con.execute(f"select config, end_date from {TRUTH_SCHEMA}.simulation").fetchall()
        if exists
        else []
    )
    if not rows:
        raise SimulationError(
            "this warehouse holds no simulation (truth.simulation is missing or empty): "
            "run simulate first"
        )
    try:
        settings, target_brands = parse_settings_json(rows[0][0])
    except (ValidationError, KeyError) as e:
        raise SimulationError(
            f"truth.simulation's stored settings are no valid simulation settings today: {e}"
        ) from e
    return StoredSimulation(settings, target_brands, rows[0][1])
