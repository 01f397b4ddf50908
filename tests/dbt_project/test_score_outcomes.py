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
    _dbt(warehouse, "build", "--select", "stg_ml__online_predictions score_outcomes")
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
