"""Future-dated items and removed partitions (issue 11, defects 3 and 2b).

An item dated 2999 is quarantined by dbt staging, reported by a WARN check and never
moves the evaluation windows; `nextbuy partitions drop` removes one day from raw, and
the next feature build rebuilds the marts without it and says why.

One small simulated shop, two `nextbuy features` runs: the first with a future-dated
item loaded (the session's `small_shop`, tests/orchestration/conftest.py), the second
after a day partition was dropped.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from ml.split import rolling_origin_splits
from orchestration.cli import main
from orchestration.defs.quality.quarantine import quarantine_result
from orchestration.removals import removal_reason
from tests.orchestration.conftest import FUTURE_DAY, SmallShop
from thelook.warehouse import REPLACED_ALL, connect, write_raw

AS_OF = "2024-04-01"


def test_examples_after_the_as_of_date_do_not_move_the_windows() -> None:
    days = pd.date_range("2026-01-01 10:00", periods=40, freq="D")
    examples = pd.DataFrame({"as_of": days, "label": [0, 1] * 20})
    future = pd.DataFrame({"as_of": [pd.Timestamp("2999-06-11 10:00")], "label": [1]})
    windows = {"folds": 2, "test_days": 5, "validation_days": 5, "gap_days": 1}
    alone = rolling_origin_splits(examples, **windows)
    with_future = rolling_origin_splits(
        pd.concat([examples, future], ignore_index=True), **windows, end=pd.Timestamp("2026-02-10")
    )
    assert [s.windows for s in with_future] == [s.windows for s in alone]
    assert all(len(s.test) == 5 for s in with_future)
    # An as-of date before the data's end cuts the windows there.
    cut = rolling_origin_splits(examples, **windows, end=pd.Timestamp("2026-02-01"))
    assert str(cut[-1].windows.test_end.date()) == "2026-02-01"


def test_the_quarantine_check_warns_with_rows_and_partitions() -> None:
    # As DuckDB hands them over: microseconds, so that year 2999 fits.
    times = np.array(["2999-06-11T10:00", "2999-06-11T11:00", "3000-01-01T00:00"], "M8[us]")
    quarantined = pd.DataFrame(
        {
            "order_item_id": [1, 2, 3],
            "partition_id": [FUTURE_DAY, FUTURE_DAY, "30000101"],
            "created_at": times,
            "received_at": np.array(["2026-12-01T00:00"] * 3, "M8[us]"),
        }
    )
    result = quarantine_result(quarantined)
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert "3 future-dated rows of raw.order_items" in (result.description or "")
    assert f"{FUTURE_DAY} (2 rows" in (result.description or "")
    assert "30000101 (1 row" in (result.description or "")
    assert quarantine_result(quarantined.head(0)).passed


def test_a_replacing_load_after_the_last_build_asks_for_a_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.duckdb"
    con = connect(path)
    con.execute("create temp table staged as select * from raw.users limit 0")
    con.execute("insert into staged (id) values (1)")
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=1)
    built = {"20240101": before.isoformat()}
    write_raw(con, {"users": "staged"}, source="test", replace_all=True)
    actions = con.execute("select action from meta.load_history order by loaded_at").fetchall()
    con.close()
    assert (REPLACED_ALL,) in actions
    reason = removal_reason(path, built)
    assert reason is not None and "raw was replaced whole" in reason
    assert "20240101 was removed" in reason  # nor does raw hold that day any more
    after = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)).replace(tzinfo=None)
    assert removal_reason(path, {}) is None
    assert "replaced whole" not in (removal_reason(path, {"x": after.isoformat()}) or "")


@dataclass
class Shop:
    home: Path
    warehouse: Path
    # The output of the shop's one `nextbuy features` (the fixture checked it succeeded).
    first: str
    dropped: str
    dropped_orders: set[int]
    examples_before: pd.DataFrame
    future_order: int


def _query(warehouse: Path, sql: str) -> pd.DataFrame:
    con = connect(warehouse, read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


@pytest.fixture(scope="module")
def shop(small_shop: SmallShop, tmp_path_factory: pytest.TempPathFactory) -> Shop:
    """The session's small shop (built with a 2999 item loaded, tests/orchestration/
    conftest.py), copied: this module drops one of its days."""
    home = small_shop.copy(tmp_path_factory.mktemp("future"))
    warehouse = home / "warehouse.duckdb"
    examples = _query(warehouse, "select order_id, as_of from marts.training_examples")
    # The day whose removal takes the most training examples with it.
    items = _query(
        warehouse,
        "select strftime(created_at, '%Y%m%d') as day, order_id from raw.order_items "
        f"where created_at < '{AS_OF}'",
    )
    whole_day = items.groupby("order_id")["day"].nunique() == 1
    items = items[items["order_id"].map(whole_day)]
    items = items[items["order_id"].isin(examples["order_id"])]
    dropped = str(items["day"].value_counts().idxmax())
    orders = set(items.loc[items["day"] == dropped, "order_id"].astype(int))
    return Shop(
        home, warehouse, small_shop.output, dropped, orders, examples, small_shop.future_order
    )


def test_a_future_dated_item_is_quarantined_and_reported_not_fatal(shop: Shop) -> None:
    assert "warning: check future_dated_order_items" in shop.first
    assert "1 future-dated row of raw.order_items" in shop.first
    assert f"nextbuy partitions drop {FUTURE_DAY}" in shop.first
    quarantined = _query(
        shop.warehouse, "select partition_id from staging.stg_thelook__future_order_items"
    )
    assert quarantined["partition_id"].tolist() == [FUTURE_DAY]
    # No example, feature or as-of date of the build sees it: the simulator's own
    # future-dated items (up to four days after its end) are kept.
    assert shop.future_order not in set(shop.examples_before["order_id"])
    assert pd.to_datetime(shop.examples_before["as_of"]).max() < pd.Timestamp("2024-04-06")
    as_of = _query(shop.warehouse, "select distinct as_of from marts.customer_features")
    assert pd.to_datetime(as_of["as_of"]).max() < pd.Timestamp("2024-04-06")


def test_partitions_drop_refuses_what_raw_does_not_hold(shop: Shop) -> None:
    runner = CliRunner()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEXTBUY_HOME", str(shop.home))
        unknown = runner.invoke(main, ["partitions", "drop", "20000101"])
        malformed = runner.invoke(main, ["partitions", "drop", "2024-01-01"])
        unpartitioned = runner.invoke(main, ["partitions", "drop", FUTURE_DAY, "--table", "users"])
    assert unknown.exit_code == 2, unknown.output
    assert "raw.order_items has no day partition 20000101" in unknown.output
    assert malformed.exit_code == 2 and "not a day partition id (YYYYMMDD)" in malformed.output
    assert (
        unpartitioned.exit_code == 2 and "raw.users has no day partitions" in unpartitioned.output
    )


def test_a_dropped_day_leaves_raw_and_the_marts(shop: Shop) -> None:
    from orchestration.doctor import check_partitions
    from orchestration.environment import current_environment

    assert shop.dropped_orders, "the shop has no day whose orders are training examples"
    assert shop.dropped_orders & set(shop.examples_before["order_id"])
    runner = CliRunner()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("NEXTBUY_HOME", str(shop.home))
        dropped = runner.invoke(main, ["partitions", "drop", shop.dropped])
        assert dropped.exit_code == 0, dropped.output
        doctor = check_partitions(current_environment())
        rebuilt = runner.invoke(main, ["features"])
    assert f"dropped partition {shop.dropped}" in dropped.output
    meta = _query(
        shop.warehouse,
        f"select count(*) as n from meta.partitions where partition_id = '{shop.dropped}'",
    )
    raw = _query(
        shop.warehouse,
        "select count(*) as n from raw.order_items "
        f"where strftime(created_at, '%Y%m%d') = '{shop.dropped}'",
    )
    history = _query(
        shop.warehouse,
        "select rows_written, partitions_written from meta.load_history "
        "where action = 'drop_partition'",
    )
    assert meta["n"].item() == 0 and raw["n"].item() == 0
    assert len(history) == 1 and history["rows_written"].item() < 0
    assert not doctor.ok and f"raw partition {shop.dropped} was removed" in doctor.message
    assert rebuilt.exit_code == 0, rebuilt.output
    assert (
        f"raw partition {shop.dropped} was removed since the last build: rebuilding the "
        "incremental marts from all partitions (full refresh)"
    ) in rebuilt.output
    after = _query(shop.warehouse, "select order_id from marts.training_examples")
    assert not shop.dropped_orders & set(after["order_id"])
    # The future-dated day is still quarantined, still only a warning.
    assert "warning: check future_dated_order_items" in rebuilt.output
