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
    """Replace raw with the export; the simulator's truth tables go in the same transaction.

    The export is read and checked before anything changes: a truth table from an earlier
    simulation would describe other customers once the export is in, but must survive an
    export that does not load, or `simulate --append-days` has nothing to continue. The
    whole dataset is replaced by design here, so tables the export lacks end up empty.
    """
    from thelook import simulator
    from thelook.loader import LoadError, stage_export
    from thelook.warehouse import (
        WarehouseWriteError,
        apply_raw_writes,
        clear_raw,
        first_row,
        transaction,
    )

    try:
        with stage_export(con, [directory]) as staged:
            items = staged.relations.get("order_items")
            row = first_row(con, f"select max(created_at) from {items}") if items else None
            if row is None or row[0] is None:
                raise DemoError(f"{directory}: the export holds no order items; raw unchanged")
            last = row[0]
            with transaction(con):
                con.execute(f"drop schema if exists {simulator.TRUTH_SCHEMA} cascade")
                clear_raw(con)
                apply_raw_writes(con, staged.relations, source=staged.source)
    except (LoadError, WarehouseWriteError) as e:
        raise DemoError(f"load failed, raw unchanged: {e}") from e
    assert isinstance(last, dt.datetime)
    return last.date() + dt.timedelta(days=1)
