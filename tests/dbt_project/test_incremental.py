"""Day-by-day incremental builds give exactly the tables of one full refresh."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from tests.dbt_project.conftest import (
    MART_KEYS,
    build,
    compiled_test,
    dbt_target,
    run_models,
    simulate_small,
    table,
)
from thelook import simulator
from thelook.warehouse import connect, write_raw

AS_OF = "2024-07-01"
INCREMENTAL = list(MART_KEYS)
# A data test that var changed_only scopes to the changed customers (scoped_tests.sql).
SCOPED_TEST = "between_training_examples_age__120__0"


def _append(warehouse: Path, days: int) -> None:
    con = connect(warehouse)
    simulator.append_days(con, days)
    con.close()


def _watermarks(warehouse: Path, name: str) -> pd.DataFrame:
    con = duckdb.connect(str(warehouse), read_only=True)
    frame = con.execute(f"select distinct customer_id, _source_modified_at from {name}").df()
    con.close()
    return frame


def _cancel_partition(warehouse: Path) -> set[int]:
    """Re-deliver the busiest old day with every item Cancelled, as a status correction
    would; returns the customers left with no purchase at all."""
    con = connect(warehouse)
    day = con.execute(
        "select strftime(created_at, '%Y%m%d') d from raw.order_items "
        "where created_at < '2024-06-01' group by d order by count(*) desc, d limit 1"
    ).fetchall()[0][0]
    con.execute(
        "create temp table redelivery as select * replace ('Cancelled' as status) "
        "from raw.order_items where strftime(created_at, '%Y%m%d') = ?",
        [day],
    )
    write_raw(con, {"order_items": "redelivery"}, source="test: status correction")
    vanished = {
        r[0]
        for r in con.execute(
            """select user_id from raw.order_items group by user_id
               having bool_and(status = 'Cancelled')
                  and bool_or(strftime(created_at, '%Y%m%d') = ?)""",
            [day],
        ).fetchall()
    }
    con.close()
    return vanished


def test_day_by_day_equals_full_refresh(tmp_path: Path) -> None:
    # Built as the daily runs build, with the data tests scoped to the changed customers
    # (var changed_only): they must pass on every day's correct rows.
    warehouse = tmp_path / "warehouse.duckdb"
    simulate_small(warehouse, users=800, end=dt.date(2024, 6, 20))
    build(warehouse, as_of=AS_OF, changed_only=True)
    before = _watermarks(warehouse, "marts.training_examples")

    _append(warehouse, 1)
    build(warehouse, as_of=AS_OF, changed_only=True)
    after = _watermarks(warehouse, "marts.training_examples")
    # Only the customers of changed partitions were rebuilt; everyone else kept their rows.
    con = duckdb.connect(str(warehouse), read_only=True)
    changed = {
        r[0]
        for r in con.execute(
            """select distinct user_id from raw.order_items
               where strftime(created_at, '%Y%m%d') in (
                   select partition_id from meta.partitions
                   where table_name = 'order_items' and last_modified_time > ?)""",
            [before["_source_modified_at"].max()],
        ).fetchall()
    }
    con.close()
    rebuilt = set(
        after.loc[after["_source_modified_at"] > before["_source_modified_at"].max(), "customer_id"]
    )
    assert rebuilt and rebuilt <= changed
    untouched = before[~before["customer_id"].isin(changed)].merge(after, on="customer_id")
    assert (untouched["_source_modified_at_x"] == untouched["_source_modified_at_y"]).all()

    _append(warehouse, 2)
    build(warehouse, as_of=AS_OF, changed_only=True)
    build(warehouse, as_of=AS_OF, changed_only=True)  # nothing new: a no-op
    vanished = _cancel_partition(warehouse)
    assert vanished, "the correction should leave some customer without purchases"
    build(warehouse, as_of=AS_OF, changed_only=True)
    assert "int_customer_changes" in compiled_test(warehouse, SCOPED_TEST)
    incremental = {name: table(warehouse, name) for name in INCREMENTAL}
    assert not incremental["intermediate.int_orders"]["customer_id"].isin(vanished).any()

    # --full-refresh tests whole tables, whatever the var says.
    build(warehouse, "--full-refresh", as_of=AS_OF, changed_only=True)
    assert "int_customer_changes" not in compiled_test(warehouse, SCOPED_TEST)
    for name in INCREMENTAL:
        pd.testing.assert_frame_equal(
            incremental[name], table(warehouse, name), check_like=False, obj=name
        )


@pytest.fixture(scope="module")
def built_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small shop after one `dbt run`: the starting point of the tests below, each of
    which changes its own copy (``_copy``)."""
    warehouse = tmp_path_factory.mktemp("incremental") / "warehouse.duckdb"
    simulate_small(warehouse, users=400, end=dt.date(2024, 6, 20))
    run_models(warehouse, as_of=AS_OF)
    return warehouse


def _copy(warehouse: Path, folder: Path) -> Path:
    """The warehouse and dbt's artefacts beside it (dbt_target), in ``folder``."""
    copy = folder / warehouse.name
    shutil.copy2(warehouse, copy)
    shutil.copytree(dbt_target(warehouse).parent, dbt_target(copy).parent)
    return copy


def test_partitions_var_rebuilds_named_days(built_once: Path, tmp_path: Path) -> None:
    """`--vars '{partitions: [...]}'` rebuilds the customers of named days even when the
    warehouse does not show them as changed (raw edited behind the loader's back)."""
    warehouse = _copy(built_once, tmp_path)
    con = duckdb.connect(str(warehouse))
    day = con.execute(
        "select strftime(created_at, '%Y%m%d') d from raw.order_items "
        "group by d order by count(*) desc, d limit 1"
    ).fetchall()[0][0]
    # An edit that does not touch meta.partitions: invisible to an incremental build.
    con.execute(
        "update raw.order_items set status = 'Cancelled' where strftime(created_at, '%Y%m%d') = ?",
        [day],
    )
    con.close()
    stale = table(warehouse, "intermediate.int_purchase_items")
    run_models(warehouse, as_of=AS_OF)
    pd.testing.assert_frame_equal(stale, table(warehouse, "intermediate.int_purchase_items"))

    run_models(warehouse, as_of=AS_OF, partitions=[int(day)])
    rebuilt = {name: table(warehouse, name) for name in INCREMENTAL}
    assert len(rebuilt["intermediate.int_purchase_items"]) < len(stale)
    run_models(warehouse, "--full-refresh", as_of=AS_OF)
    for name in INCREMENTAL:
        pd.testing.assert_frame_equal(rebuilt[name], table(warehouse, name), obj=name)


def test_first_build_on_an_empty_warehouse_then_data(tmp_path: Path) -> None:
    """A first build before any data leaves an empty change log; the data that arrives
    next must still be built, not taken as already seen."""
    warehouse = tmp_path / "warehouse.duckdb"
    connect(warehouse).close()
    run_models(warehouse, as_of=AS_OF)
    simulate_small(warehouse, users=300, end=dt.date(2024, 6, 20))
    run_models(warehouse, as_of=AS_OF)
    incremental = {name: table(warehouse, name) for name in INCREMENTAL}
    assert len(incremental["marts.training_examples"]) > 0
    run_models(warehouse, "--full-refresh", as_of=AS_OF)
    for name in INCREMENTAL:
        pd.testing.assert_frame_equal(incremental[name], table(warehouse, name), obj=name)


def _table_rows(warehouse: Path, name: str) -> int:
    con = duckdb.connect(str(warehouse), read_only=True)
    (rows,) = con.execute(f"select count(*) from {name}").fetchone() or (0,)
    con.close()
    return int(rows)


def _last_logged(warehouse: Path) -> set[int]:
    """The customers the last build logged as changed (empty if it logged none)."""
    con = duckdb.connect(str(warehouse), read_only=True)
    rows = con.execute(
        """select customer_id from intermediate.int_customer_changes
           where changed_at = (select max(changed_at) from intermediate.int_customer_changes)"""
    ).fetchall()
    con.close()
    return {r[0] for r in rows}


def test_catalogue_change_rebuilds_its_buyers(built_once: Path, tmp_path: Path) -> None:
    """A product whose brand changes (here: becomes a target brand) changes the features
    and labels of everyone who bought it, and only theirs; a re-delivered catalogue that
    changes nothing rebuilds no one."""
    warehouse = _copy(built_once, tmp_path)
    logged = _table_rows(warehouse, "intermediate.int_customer_changes")
    con = connect(warehouse)
    con.execute("create temp table same as select * from raw.products")
    write_raw(con, {"products": "same"}, source="test: unchanged catalogue")
    con.close()
    run_models(warehouse, as_of=AS_OF)
    assert _table_rows(warehouse, "intermediate.int_customer_changes") == logged

    con = connect(warehouse)
    con.execute(
        """create temp table rebranded as
           select * replace ('Calvin Klein' as brand) from raw.products
           where brand != 'Calvin Klein'
             and id in (select product_id from raw.order_items group by product_id
                        order by count(*) desc, product_id limit 5)"""
    )
    write_raw(con, {"products": "rebranded"}, source="test: rebranded products")
    buyers = {
        r[0]
        for r in con.execute(
            "select distinct user_id from raw.order_items "
            "where product_id in (select id from rebranded)"
        ).fetchall()
    }
    con.close()
    run_models(warehouse, as_of=AS_OF)
    assert buyers and _last_logged(warehouse) == buyers
    incremental = {name: table(warehouse, name) for name in INCREMENTAL}
    run_models(warehouse, "--full-refresh", as_of=AS_OF)
    for name in INCREMENTAL:
        pd.testing.assert_frame_equal(incremental[name], table(warehouse, name), obj=name)


def _features_as_of(warehouse: Path) -> list[str]:
    con = duckdb.connect(str(warehouse), read_only=True)
    rows = con.execute(
        "select distinct cast(as_of as date) from marts.customer_features"
    ).fetchall()
    con.close()
    return [str(r[0]) for r in rows]


def test_customer_features_follow_a_moving_as_of_as_a_full_refresh_would(
    built_once: Path, tmp_path: Path
) -> None:
    """Daily builds move customer_features to a new as_of in place and recompute only
    the customers whose last purchase before as_of changed: backward, forward with a new
    day, forward over purchases that were already in raw (items dated ahead of the day
    that delivered them), and again with nothing new. Each equals a full refresh
    for the same date, to the bit (the days_since columns are compared exactly)."""
    warehouse = _copy(built_once, tmp_path)
    reference = tmp_path / "reference"
    reference.mkdir()
    # Built as of 2024-07-01 on a shop that ends 2024-06-20: back into the history, then
    # forward with a new day, forward over purchases already in raw, and once more.
    steps = [("2024-06-10", 0), ("2024-06-13", 1), ("2024-06-16", 0), ("2024-06-16", 0)]
    for step, (as_of, days) in enumerate(steps):
        if days:
            _append(warehouse, days)
        output = run_models(warehouse, as_of=as_of)
        assert _features_as_of(warehouse) == [as_of]
        incremental = table(warehouse, "marts.customer_features")
        (reference / str(step)).mkdir()
        full = _copy(warehouse, reference / str(step))
        # Its inputs are the incremental models the tests above hold equal to a full build.
        run_models(full, "--full-refresh", "--select", "customer_features", as_of=as_of)
        pd.testing.assert_frame_equal(
            incremental,
            table(full, "marts.customer_features"),
            check_exact=True,
            obj=f"customer_features as of {as_of}",
        )
    # The last build was incremental: it looked for customers to recompute (none).
    assert "incremental model marts.customer_features" in output
    compiled = next((dbt_target(warehouse) / "compiled").rglob("customer_features.sql"))
    assert "least(" in compiled.read_text()
