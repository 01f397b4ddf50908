"""The warehouse of `nextbuy demo` (what `make run` runs): the default simulated shop, or a
thelook export in its place, and the date the demo scores as of."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import duckdb

from orchestration.settings import Parameters


class DemoError(RuntimeError):
    """The demo's warehouse could not be made; raw is unchanged."""


@dataclass(frozen=True)
class PreparedWarehouse:
    # The morning after the data's last day: the date the demo scores as of.
    as_of: dt.date
    # What the simulator wrote, for the terminal ("" for an export).
    description: str


def prepare_warehouse(
    path: Path, params: Parameters, thelook_dir: Path | None = None
) -> PreparedWarehouse:
    """Fill ``path``'s raw schema with the default shop of ``params`` or, given
    ``thelook_dir``, with that export (replacing raw)."""
    from thelook import simulator
    from thelook.warehouse import connect

    con = connect(path)
    try:
        if thelook_dir is None:
            result = simulator.simulate(con, params.simulation, params.campaign.target_brands)
            return PreparedWarehouse(result.end + dt.timedelta(days=1), result.describe())
        return PreparedWarehouse(_load_export(con, thelook_dir), "")
    finally:
        con.close()


def _load_export(con: duckdb.DuckDBPyConnection, directory: Path) -> dt.date:
    from thelook import simulator
    from thelook.loader import LoadError, load_export
    from thelook.warehouse import first_row

    # A truth table from an earlier simulation would describe other customers.
    con.execute(f"drop schema if exists {simulator.TRUTH_SCHEMA} cascade")
    try:
        load_export(con, [directory], replace_all=True)
    except LoadError as e:
        raise DemoError(f"load failed, raw unchanged: {e}") from e
    row = first_row(con, "select max(created_at) from raw.order_items")
    if row is None or row[0] is None:
        raise DemoError(f"{directory}: the export holds no order items")
    last = row[0]
    assert isinstance(last, dt.datetime)
    return last.date() + dt.timedelta(days=1)
