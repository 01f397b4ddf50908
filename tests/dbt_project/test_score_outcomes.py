"""score_outcomes on a hand-made warehouse: batch and online scores of the same customers
and dates get the same outcome (the next purchase from the start of the as-of day), the
online one from the latest request of a customer and date; without ml.online_predictions
(no run has brought the serving log yet) the model builds with batch scores only."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from orchestration.dbt import run_dbt
from tests.dbt_project.conftest import compiled_test, dbt_target
from tests.dbt_project.test_edge_cases import TARGET, _item, write_rows

T = dt.datetime
D = dt.date(2026, 7, 1)
OUTCOMES = "marts.score_outcomes"


def _dbt(warehouse: Path, *args: str) -> None:
    result = run_dbt(list(args), warehouse=warehouse, vars={"as_of": D.isoformat()}, check=False)
    assert result.returncode == 0, result.stdout[-6000:]


def _scores(customers: list[int], as_of: dt.date) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": customers,
            "score": [0.5] * len(customers),
            "decile": [1] * len(customers),
            "model_name": "nextbuy-brand-propensity",
            "model_version": "3",
            "as_of": as_of,
            "scored_at": T(2026, 7, 1, 6),
        }
    )


def _online(rows: list[tuple[int, dt.date, float, T]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["customer_id", "as_of", "score", "requested_at"])
    return frame.assign(
        features_hash="hash",
        model_name="nextbuy-brand-propensity",
        model_version="3",
        path="features",
    )


def _outcomes(warehouse: Path) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        frame = con.execute(f"select * from {OUTCOMES} order by source, customer_id").df()
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    return frame.set_index(["source", "customer_id"])


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    products = [
        {"id": 1, "brand": TARGET, "department": "Men", "category": "Jeans", "retail_price": 10.0},
        {"id": 2, "brand": "Other", "department": "Men", "category": "Tops", "retail_price": 20.0},
    ]  # fmt: skip
    users = [
        {"id": u, "age": 30, "gender": "M", "city": "Tokyo", "country": "Japan",
         "traffic_source": "Search", "created_at": T(2025, 1, 1)}
        for u in (1, 2, 3)
    ]  # fmt: skip
    orders = [
        {"order_id": o, "user_id": u, "status": "Complete", "created_at": at}
        for o, u, at in [
            (1, 1, T(2026, 6, 1)), (2, 1, T(2026, 7, 4, 12)),  # D+3: a target brand
            (3, 2, T(2026, 6, 1)), (4, 2, T(2026, 7, 2)),  # D+1: another brand
            (5, 3, T(2026, 6, 1)), (6, 3, T(2026, 7, 10)),  # D+9, after D+2
        ]
    ]  # fmt: skip
    items = [
        _item(1, 1, 1, 2, T(2026, 6, 1)),
        _item(2, 2, 1, 1, T(2026, 7, 4, 12)),
        _item(3, 3, 2, 2, T(2026, 6, 1)),
        _item(4, 4, 2, 2, T(2026, 7, 2)),
        _item(5, 5, 3, 2, T(2026, 6, 1)),
        _item(6, 6, 3, 1, T(2026, 7, 10)),
    ]
    path = tmp_path_factory.mktemp("outcomes") / "warehouse.duckdb"
    write_rows(path, products=products, users=users, orders=orders, order_items=items)
    scores = _scores([1, 2, 3], D)  # noqa: F841 (read by DuckDB)
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists ml")
        con.execute("create table ml.customer_scores as select * from scores")
    _dbt(path, "run", "--select", "+score_outcomes")
    return path


def test_without_online_predictions_only_batch_scores_are_judged(warehouse: Path) -> None:
    outcomes = _outcomes(warehouse)
    assert list(outcomes.index) == [("batch", 1), ("batch", 2), ("batch", 3)]


def test_online_scores_are_judged_like_batch_ones(warehouse: Path) -> None:
    """(Adds ml.online_predictions to the module's warehouse: after the test above.)"""
    online = _online(  # noqa: F841 (read by DuckDB)
        [
            (1, D, 0.1, T(2026, 7, 1, 8)),
            (1, D, 0.9, T(2026, 7, 1, 9)),  # the latest request of customer 1 on D
            (2, D, 0.4, T(2026, 7, 1, 10)),
            (3, D + dt.timedelta(days=2), 0.3, T(2026, 7, 3, 11)),  # a date never batch-scored
        ]
    )
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create table ml.online_predictions as select * from online")
    _dbt(warehouse, "build", "--select", "stg_ml__online_predictions+")
    outcomes = _outcomes(warehouse)
    assert len(outcomes) == 6
    positive = outcomes.loc[("online", 1)]
    # Scored online on D, bought a target brand on D+3: positive, as the batch score is.
    assert (positive["score"], positive["next_order_id"]) == (0.9, 2)
    assert positive["next_order_has_target_brand"] == 1
    assert positive["days_to_next_order"] == pytest.approx(3.5)
    assert positive["requested_at"] == pd.Timestamp(2026, 7, 1, 9)
    assert pd.isna(positive["decile"])
    columns = ["next_order_id", "next_order_has_target_brand", "days_to_next_order"]
    for customer in (1, 2):
        batch, served = outcomes.loc[("batch", customer)], outcomes.loc[("online", customer)]
        assert served[columns].tolist() == batch[columns].tolist(), customer
    assert outcomes.loc[("online", 2), "next_order_has_target_brand"] == 0
    # Customer 3 on D+2: the next purchase from that day on, D+9.
    late = outcomes.loc[("online", 3)]
    assert late["as_of"] == D + dt.timedelta(days=2) and late["next_order_id"] == 6
    assert late["days_to_next_order"] == pytest.approx(7.0)
    assert late["days_observed"] == pytest.approx(7.0)


def _table(warehouse: Path) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(
            "select * from intermediate.int_score_outcomes order by source, customer_id, as_of"
        ).df()


def test_a_daily_build_recomputes_only_what_changed_as_a_full_one_would(warehouse: Path) -> None:
    """(After the tests above, on their warehouse.) A new date is published, D is
    republished by another model version (a rescoring after a promotion), and customer 2
    buys again: the incremental build recomputes those dates and that customer, keeps the
    online rows, and gives what a full refresh gives."""
    later = D + dt.timedelta(days=5)
    # (Both read by DuckDB.)
    republished = _scores([1, 2, 3], D).assign(model_version="4", scored_at=T(2026, 7, 7, 6))  # noqa: F841
    new_date = _scores([1, 2, 3], later).assign(scored_at=T(2026, 7, 7, 6))  # noqa: F841
    with duckdb.connect(str(warehouse)) as con:
        con.execute("delete from ml.customer_scores where as_of = ?", [D])
        con.execute("insert into ml.customer_scores select * from republished")
        con.execute("insert into ml.customer_scores select * from new_date")
    write_rows(
        warehouse,
        orders=[{"order_id": 7, "user_id": 2, "status": "Complete", "created_at": T(2026, 7, 7)}],
        order_items=[_item(7, 7, 2, 1, T(2026, 7, 7))],  # a target brand, D+6
    )
    before = _table(warehouse)
    _dbt(warehouse, "run", "--select", "+int_score_outcomes score_outcomes")
    [compiled] = (dbt_target(warehouse) / "compiled").rglob("int_score_outcomes.sql")
    # Recomputed: the two published dates and the changed customers, not everything.
    assert "as_of in (cast('2026-07-01' as date), cast('2026-07-06' as date))" in (
        compiled.read_text()
    )
    outcomes = _table(warehouse).set_index(["source", "customer_id", "as_of"])
    batch_d = outcomes.loc["batch"].xs(pd.Timestamp(D), level="as_of")
    assert set(batch_d["model_version"]) == {"4"}
    assert len(outcomes.loc["batch"]) == 6
    new = outcomes.loc["batch"].xs(pd.Timestamp(later), level="as_of")
    # Customer 1's last purchase was D+3, before the new date: nothing yet. Customer 2's
    # new purchase of D+6 is their next one from D+5; customer 3's is still D+9.
    assert pd.isna(new.loc[1, "next_order_id"])
    assert (new.loc[2, "next_order_id"], new.loc[2, "next_order_has_target_brand"]) == (7, 1)
    assert new.loc[3, "next_order_id"] == 6
    # The online rows of customers nothing happened to were left as they were.
    online = before[before["source"] == "online"].set_index(["customer_id", "as_of"])
    kept = outcomes.loc["online"]
    assert kept.loc[(1, pd.Timestamp(D)), "score"] == online.loc[(1, pd.Timestamp(D)), "score"]
    incremental = _table(warehouse)
    _dbt(warehouse, "run", "--full-refresh", "--select", "int_score_outcomes")
    # Equal but for when each row was written.
    pd.testing.assert_frame_equal(
        incremental.drop(columns="built_at"), _table(warehouse).drop(columns="built_at")
    )


def test_a_daily_build_tests_only_the_rows_it_wrote(warehouse: Path) -> None:
    """(After the tests above.) With changed_only, as the daily run's scoring step runs
    dbt, the data tests of int_score_outcomes read the rows built since they last passed
    and those of the scores the dates published since: not every date ever scored. A
    duplicate among the rows written still fails."""
    later = D + dt.timedelta(days=9)
    new_date = _scores([1, 2], later).assign(scored_at=T(2026, 7, 11, 6))  # noqa: F841
    scoring = "stg_ml__customer_scores int_score_outcomes score_outcomes"
    run_dbt(["build", "--select", scoring], warehouse=warehouse, changed_only=True)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("insert into ml.customer_scores select * from new_date")
    result = run_dbt(
        ["build", "--select", scoring], warehouse=warehouse, changed_only=True, check=False
    )
    assert result.returncode == 0, result.stdout[-4000:]
    # (dbt names the file of a long test name by a hash.)
    unique = compiled_test(warehouse, "unique_combination_int_score_o_*")
    assert "built_at >" in unique, unique
    grain = compiled_test(
        warehouse, "unique_combination_stg_ml__customer_scores_customer_id__as_of"
    )
    assert "scored_at >" in grain, grain
    # A later build that wrote customer 1's row of the new date twice (a build deletes
    # every row of what it recomputes first, so a duplicate it makes is of its own rows):
    # the scoped test reads both and fails.
    with duckdb.connect(str(warehouse)) as con:
        rewrite = (
            "select * replace (now() as built_at) from intermediate.int_score_outcomes "
            "where customer_id = 1 and as_of = ?"
        )
        con.execute(
            f"insert into intermediate.int_score_outcomes {rewrite} union all {rewrite}",
            [later, later],
        )
    result = run_dbt(
        ["test", "--select", "int_score_outcomes"],
        warehouse=warehouse,
        changed_only=True,
        check=False,
    )
    assert result.returncode != 0 and "FAIL 1 unique_combination_int_score_outcomes" in (
        result.stdout
    ), result.stdout[-4000:]
