"""append_days: continue a stored simulation by whole days, touching no earlier partition.

thelook/README.md ("append_days") explains the process: each customer keeps a Poisson
order rate, new customers sign up each day, and each day's randomness depends on the
seed and the date only.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np

from thelook.schema import RAW_SCHEMA, partition_id_sql
from thelook.simulator import draws, staging
from thelook.simulator.truth import SOURCE, SimulationResult, extend_truth, read_simulation, result
from thelook.warehouse import apply_raw_writes, first_row, transaction


def append_days(con: duckdb.DuckDBPyConnection, days: int) -> SimulationResult:
    """Extend the simulated warehouse by `days` new days after its end date.

    The settings and target brands are those stored in truth.simulation by `simulate`.
    """
    if days < 1:
        raise ValueError("days must be at least 1")
    try:
        return _append_days(con, days)
    finally:
        staging.drop_staged(con)


def _append_days(con: duckdb.DuckDBPyConnection, days: int) -> SimulationResult:
    stored = read_simulation(con)
    world = staging.load_world(con, stored.settings, stored.target_brands)
    lookups = staging.register_lookups(con)
    first_new_day = stored.end + dt.timedelta(days=1)
    not_before = draws.us(first_new_day)
    ids = draws.NextIds(
        *(
            _max_id(con, t, c) + 1
            for t, c in (("users", "id"), ("orders", "order_id"), ("order_items", "id"))
        )
    )
    first_customer = len(world.user_id)
    user_parts: list[dict[str, np.ndarray]] = []
    order_parts: list[draws.Orders] = []
    for offset in range(days):
        day = first_new_day + dt.timedelta(days=offset)
        users, orders = draws.draw_day(world, day, ids, lookups, not_before)
        user_parts.append(users)
        order_parts.append(orders)

    new_end = stored.end + dt.timedelta(days=days)
    orders = draws.concat_orders(order_parts)
    staging.stage_users(con, draws.concat_users(user_parts))
    staging.stage_orders(con, orders, world.catalogue)
    staging.stage_customers(con, world, slice(first_customer, None))
    # Items dated after the new end land in partitions that may already hold rows (the
    # future-dated items of earlier writes): those rows are rewritten with them.
    pid = partition_id_sql("created_at")
    con.execute(
        f"""insert into _sim_order_items
            select * from {RAW_SCHEMA}.order_items
            where {pid} in (select distinct {pid} from _sim_order_items)"""
    )
    with transaction(con):
        writes = apply_raw_writes(
            con,
            {"users": "_sim_users", "orders": "_sim_orders", "order_items": "_sim_order_items"},
            source=SOURCE,
        )
        extend_truth(con, new_end, days)
    truth_rows = {"customers": len(world.user_id) - first_customer, "orders": len(orders.order_id)}
    return result(writes, stored.settings, stored.target_brands, new_end, truth_rows)


def _max_id(con: duckdb.DuckDBPyConnection, table: str, column: str) -> int:
    row = first_row(con, f"select coalesce(max({column}), 0) from {RAW_SCHEMA}.{table}")
    assert row is not None
    return int(row[0])  # type: ignore[call-overload]
