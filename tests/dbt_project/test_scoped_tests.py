"""Data tests scoped to the changed customers (var changed_only, macros/scoped_tests.sql).

One day is appended and built incrementally; then rows are corrupted in the built tables,
some of customers that day rebuilt and some of customers it left alone. A full `dbt test`
fails on all of them; a scoped one must fail on the changed customers' bad rows, and only
on theirs (it does not read the others). (That the scoped tests pass on good data, day
after day, is shown by test_incremental's day-by-day build, which runs them.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb
import pytest

from orchestration.dbt import SCORING_SELECTOR, run_dbt
from tests.dbt_project.conftest import AS_OF, compiled_test, dbt_target
from thelook import simulator
from thelook.warehouse import connect

ROW_RULE = "between_training_examples_age__120__0"
KEY_RULE = "unique_training_examples_order_id"
NULL_KEY_RULE = "not_null_int_orders_customer_id"
LEAKAGE = "assert_features_see_only_earlier_purchases"
UNCHANGED_PASSING = "not_null_training_examples_as_of"


def _dbt(warehouse: Path, *args: str, changed_only: bool = False) -> dict[str, int]:
    """`dbt <args>` on the warehouse; the failing tests with their failing rows. The
    scoping is asked for as the orchestration asks (env NEXTBUY_CHANGED_ONLY);
    test_incremental asks with the var."""
    result = run_dbt(list(args), warehouse=warehouse, vars={"as_of": AS_OF.isoformat()},
                     changed_only=changed_only, check=False)  # fmt: skip
    results = json.loads((dbt_target(warehouse) / "run_results.json").read_text())["results"]
    errors = [r["unique_id"] for r in results if r["status"] in ("error", "skipped")]
    assert not errors, (errors, result.stdout[-3000:])
    return {r["unique_id"].split(".")[2]: r["failures"] for r in results if r["status"] == "fail"}


def _tested_through(con: duckdb.DuckDBPyConnection, test: str) -> object:
    return con.execute(
        "select max(tested_through) from intermediate._data_test_watermarks "
        "where split_part(test_id, '.', 3) = ?",
        [test],
    ).fetchone()[0]  # type: ignore[index]


def _plant(con: duckdb.DuckDBPyConnection, changed: set[int]) -> None:
    """The defects, each on a customer the last run rebuilt (changed) or left alone."""
    con.execute("create temp table changed (customer_id bigint)")
    con.executemany("insert into changed values (?)", [[c] for c in sorted(changed)])
    # Examples with more prior items than orders, and no other purchase of the customer at
    # the same instant (so that changing one's order_id moves no tie-break).
    rows = con.execute(
        """select e.order_id, e.customer_id in (select customer_id from changed) as is_changed
           from marts.training_examples e
           where e.prior_items > e.prior_orders
             and not exists (
                 select 1 from intermediate.int_orders o
                 where o.customer_id = e.customer_id and o.ordered_at = e.as_of
                   and o.order_id != e.order_id)
           order by e.order_id"""
    ).fetchall()
    changed_rows = [order for order, is_changed in rows if is_changed]
    unchanged_rows = [order for order, is_changed in rows if not is_changed]
    assert len(changed_rows) >= 3 and len(unchanged_rows) >= 3

    def update(assignment: str, order_id: int) -> None:
        sql = f"update marts.training_examples set {assignment} where order_id = {order_id}"
        assert con.execute(sql).fetchone() == (1,)

    # A rule about one row, broken on a changed and on an unchanged customer's row.
    update("age = 130", changed_rows[0])
    update("age = 131", unchanged_rows[0])
    # The leakage test (a singular test, scoped by its own SQL): features that count
    # purchase k itself.
    update("prior_orders = prior_orders + 1", changed_rows[1])
    update("prior_orders = prior_orders + 1", unchanged_rows[1])
    # A key shared across customers: an unchanged customer's example takes the order_id of
    # a changed customer's, as when an order's items move to another customer. (A smaller
    # id than its own, which the leakage test's tie-break at as_of does not mind.)
    taker = next(order for order in unchanged_rows[2:] if order > changed_rows[2])
    update(f"order_id = {changed_rows[2]}", taker)
    # A row that belongs to no customer, which no customer filter would select.
    con.execute(
        """update intermediate.int_orders set customer_id = null
           where order_id = (select min(order_id) from intermediate.int_orders
                             where customer_id not in (select customer_id from changed))"""
    )


@pytest.fixture(scope="module")
def daily(simulated: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[int]]:
    """A copy of the built shop with one more day built incrementally (`dbt run`), and
    the customers that run logged as changed."""
    warehouse = tmp_path_factory.mktemp("scoped") / "warehouse.duckdb"
    shutil.copy(simulated, warehouse)
    con = connect(warehouse)
    simulator.append_days(con, 1)
    con.close()
    assert _dbt(warehouse, "run", "--exclude", SCORING_SELECTOR) == {}
    con = duckdb.connect(str(warehouse), read_only=True)
    changed = {
        r[0]
        for r in con.execute(
            """select customer_id from intermediate.int_customer_changes
               where changed_at = (select max(changed_at) from intermediate.int_customer_changes)"""
        ).fetchall()
    }
    con.close()
    assert changed
    return warehouse, changed


def test_scoped_tests_fail_on_changed_rows_only_and_full_tests_on_all(
    daily: tuple[Path, set[int]],
) -> None:
    warehouse, changed = daily
    con = duckdb.connect(str(warehouse))
    _plant(con, changed)
    before = _tested_through(con, ROW_RULE)
    con.close()
    selection = ("test", "--select", "training_examples int_orders")

    # (The full run first: its vars are those of the build, which dbt need not parse again.)
    full = _dbt(warehouse, *selection)
    assert full == {ROW_RULE: 2, LEAKAGE: 2, KEY_RULE: 1, NULL_KEY_RULE: 1}
    assert "int_customer_changes" not in compiled_test(warehouse, ROW_RULE)

    scoped = _dbt(warehouse, *selection, changed_only=True)
    assert scoped == {ROW_RULE: 1, LEAKAGE: 1, KEY_RULE: 1, NULL_KEY_RULE: 1}
    sql = compiled_test(warehouse, ROW_RULE)
    assert "int_customer_changes" in sql and "changed_at > cast(" in sql
    # A failing test keeps its watermark, so that the next scoped run reads those rows
    # again; a passing one moves on to the newest change.
    con = duckdb.connect(str(warehouse), read_only=True)
    assert _tested_through(con, ROW_RULE) == before
    [(newest,)] = con.execute(
        "select max(changed_at) from intermediate.int_customer_changes"
    ).fetchall()
    assert _tested_through(con, UNCHANGED_PASSING) == newest
    con.close()


STAGED_KEY_RULE = "unique_stg_thelook__order_items_order_item_id"
STAGED_ROW_RULE = "not_null_stg_thelook__order_items_customer_id"


def test_staged_order_items_are_tested_by_the_days_loaded_since(
    daily: tuple[Path, set[int]], tmp_path: Path
) -> None:
    """raw order_items' tests read, in a daily run, the day partitions loaded since they
    last passed: an item of the new day that repeats an old item's id fails the unique
    test (it reads every row sharing an id with the new day's), while a defect in a day
    loaded before is left to full builds, which read everything."""
    warehouse = tmp_path / "warehouse.duckdb"
    shutil.copy(daily[0], warehouse)
    shutil.copytree(dbt_target(daily[0]).parent, dbt_target(warehouse).parent)
    con = duckdb.connect(str(warehouse))
    [(new_day,)] = con.execute(
        "select max(partition_id) from meta.partitions where table_name = 'order_items'"
        " and partition_id != '__NULL__'"
    ).fetchall()
    [(old_day, first_id, last_id)] = con.execute(
        "select strftime(created_at, '%Y%m%d') d, min(id), max(id) from raw.order_items"
        " group by d having count(*) >= 2 order by d limit 1"
    ).fetchall()
    # Written behind the loader's back: meta.partitions says nothing new changed. The new
    # day repeats the old day's first item; the old day's last item loses its customer.
    con.execute(
        "insert into raw.order_items select * replace (strptime(?, '%Y%m%d') + interval 1 hour "
        "as created_at) from raw.order_items where id = ?",
        [new_day, first_id],
    )
    con.execute("update raw.order_items set user_id = null where id = ?", [last_id])
    con.close()
    selection = ("test", "--select", "stg_thelook__order_items")

    scoped = _dbt(warehouse, *selection, changed_only=True)
    sql = " ".join(compiled_test(warehouse, STAGED_ROW_RULE).split())
    assert scoped == {STAGED_KEY_RULE: 1}, sql
    # The days loaded since (the appended one, and those its items reach ahead into).
    assert "partition_id in ('" in sql and f"'{new_day}'" in sql and f"'{old_day}'" not in sql
    assert "created_at >= cast(" in sql

    full = _dbt(warehouse, *selection)
    assert full == {STAGED_KEY_RULE: 1, STAGED_ROW_RULE: 1}
