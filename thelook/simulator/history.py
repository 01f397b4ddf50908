"""simulate: a whole shop history, from `start` to `end`, replacing raw and truth."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from thelook import behaviour as bh
from thelook.schema import TABLES
from thelook.settings import SimulationSettings
from thelook.simulator import draws, staging
from thelook.simulator.truth import SOURCE, SimulationResult, create_truth, result
from thelook.warehouse import apply_raw_writes, clear_raw, transaction


def simulate(
    con: duckdb.DuckDBPyConnection, settings: SimulationSettings, target_brands: Sequence[str]
) -> SimulationResult:
    """Replace raw.* and truth.* with a freshly simulated world, in one transaction.

    `target_brands` are brand strings of the shipped catalogue (the campaign's).
    """
    if isinstance(target_brands, str):
        raise TypeError("target_brands is a sequence of brand names, not one string")
    brands = tuple(target_brands)
    try:
        truth_rows = _stage_history(con, settings, brands)
        with transaction(con):
            clear_raw(con)
            writes = apply_raw_writes(con, {t: f"_sim_{t}" for t in TABLES}, source=SOURCE)
            create_truth(con, settings, brands)
        return result(writes, settings, brands, settings.end, truth_rows)
    finally:
        staging.drop_staged(con)


def _stage_history(
    con: duckdb.DuckDBPyConnection, settings: SimulationSettings, target_brands: tuple[str, ...]
) -> dict[str, int]:
    """Draw the history and stage it as temp tables; returns truth row counts.

    A function of its own so that the numpy arrays are freed before the write transaction.
    """
    lookups = staging.register_lookups(con)
    catalogue = bh.load_catalogue(con, target_brands)
    users, world, orders = draws.draw_history(settings, catalogue, lookups)
    staging.stage_users(con, users)
    staging.stage_orders(con, orders, catalogue)
    staging.stage_customers(con, world, slice(None))
    staging.stage_catalogue(con)
    staging.stage_empty_optional(con)
    return {"customers": settings.users, "orders": len(orders.order_id)}
