"""Hand-made raw data for the cases the contract spells out, with hand-computed answers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd
import pytest

from orchestration.settings import load_parameters
from tests.dbt_project import notebook_features as nb
from tests.dbt_project.conftest import build, table
from tests.dbt_project.test_features import SEQUENCE_LENGTH, assert_same
from thelook.schema import TABLES
from thelook.warehouse import connect, write_raw

T = dt.datetime
TARGET = "Calvin Klein"


def _frame(name: str, rows: list[dict[str, object]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in TABLES[name].column_names:
        if column not in frame:
            frame[column] = None
    return frame[TABLES[name].column_names]


def _item(
    id_: int, order: int, user: int, product: int, at: T, status: str = "Complete"
) -> dict[str, object]:
    return {"id": id_, "order_id": order, "user_id": user, "product_id": product,
            "status": status, "created_at": at, "sale_price": float(product * 10)}  # fmt: skip


def write_rows(warehouse: Path, **tables: list[dict[str, object]]) -> None:
    """Write hand-made rows as raw tables, as the loader would."""
    con = connect(warehouse)
    for name, rows in tables.items():
        con.register(f"rows_{name}", _frame(name, rows))
        con.execute(f"create temp table stage_{name} as select * from rows_{name}")
    write_raw(con, {name: f"stage_{name}" for name in tables}, source="test")
    con.close()


@pytest.fixture(scope="module")
def edge_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    assert TARGET in list(load_parameters().campaign.target_brands)
    products = [
        {"id": 1, "brand": TARGET, "department": "Men", "category": "Jeans", "retail_price": 10.0},
        {"id": 2, "brand": "89th &#x0026; Madison", "department": "Women", "category": "Tops &amp; Tees", "retail_price": 20.0},
        {"id": 3, "brand": "Hook & TackleÂ®", "department": "Men", "category": "Outerwear & Coats", "retail_price": 30.0},
        {"id": 4, "brand": "Semi;Colon", "department": "Women", "category": "Swim", "retail_price": 40.0},
    ]  # fmt: skip
    users = [
        {"id": u, "age": 30 + u, "gender": g, "city": c, "country": "España" if u == 2 else "Japan",
         "traffic_source": "Search", "created_at": T(2023, 1, u)}
        for u, g, c in [(1, "M", "Tokyo"), (2, "F", "null"), (3, "F", "Osaka"), (4, "M", "Kyoto")]
    ]  # fmt: skip
    orders = [
        {"order_id": 1, "user_id": 1, "status": "Complete", "created_at": T(2024, 3, 1, 9)},
        {"order_id": 10, "user_id": 2, "status": "Complete", "created_at": T(2024, 1, 1, 10)},
        {"order_id": 11, "user_id": 2, "status": "Cancelled", "created_at": T(2024, 1, 5)},
        # A tie in order time: order_id decides, 12 before 13.
        {"order_id": 12, "user_id": 2, "status": "Complete", "created_at": T(2024, 2, 1, 10)},
        {"order_id": 13, "user_id": 2, "status": "Complete", "created_at": T(2024, 2, 1, 10)},
        {"order_id": 20, "user_id": 3, "status": "Complete", "created_at": T(2024, 1, 10)},
        # No orders row for order 21: its time is its earliest item's.
        {"order_id": 40, "user_id": 4, "status": "Cancelled", "created_at": T(2024, 1, 3)},
    ]  # fmt: skip
    items = [
        _item(1, 1, 1, 3, T(2024, 3, 1, 8)),
        _item(2, 10, 2, 2, T(2024, 1, 1, 9)),
        _item(3, 11, 2, 1, T(2024, 1, 5), status="Cancelled"),
        _item(4, 12, 2, 1, T(2024, 2, 1, 9)),
        _item(5, 13, 2, 4, T(2024, 2, 1, 8)),
        _item(6, 20, 3, 999, T(2024, 1, 10)),  # a product the catalogue does not know
        _item(7, 21, 3, 1, T(2024, 4, 2), status="Cancelled"),  # a cancelled target item
        _item(8, 21, 3, 2, T(2024, 4, 1, 12)),
        _item(9, 40, 4, 1, T(2024, 1, 3), status="Cancelled"),  # cancelled-only customer
    ]
    warehouse = tmp_path_factory.mktemp("edge") / "warehouse.duckdb"
    write_rows(warehouse, products=products, users=users, orders=orders, order_items=items)
    build(warehouse, as_of="2024-07-01")
    return warehouse


def test_training_examples_by_hand(edge_warehouse: Path) -> None:
    examples = table(edge_warehouse, "marts.training_examples").set_index("order_id")
    assert sorted(examples.index) == [12, 13, 21]  # no example for a first purchase
    k2 = examples.loc[12]
    assert (k2.customer_id, k2.label, k2.prior_orders, k2.prior_items) == (2, 1, 1, 1)
    assert k2.brand_sequence == "89th & Madison"  # entity decoded, ';' never leaks in
    assert k2.category_sequence == "Tops & Tees"
    assert k2.country == "Spain" and pd.isna(k2.city)
    k3 = examples.loc[13]
    assert (k3.label, k3.prior_orders, k3.prior_items) == (0, 2, 2)
    assert k3.brand_sequence == "89th & Madison;Calvin Klein"
    assert k3.prior_target_brand_share == 0.5
    assert k3.days_since_last_order == 0  # the tie: same instant, earlier order_id
    other = examples.loc[21]
    assert other.brand_sequence == "Unknown" and other.department_sequence == "Unknown"
    assert other.label == 0  # the only target item was cancelled
    assert other.as_of == pd.Timestamp(2024, 4, 1, 12)  # earliest item, orders row missing


def test_customer_features_by_hand(edge_warehouse: Path) -> None:
    features = table(edge_warehouse, "marts.customer_features").set_index("customer_id")
    assert sorted(features.index) == [1, 2, 3]  # customer 4 never purchased
    assert features.loc[1].brand_sequence == "Hook & Tackle®"  # mojibake repaired
    assert features.loc[2].brand_sequence == "89th & Madison;Calvin Klein;Semi,Colon"
    assert features.loc[2].prior_orders == 3  # the cancelled-only order is not a purchase
    assert features.loc[3].prior_items == 2
    assert (features["as_of"] == pd.Timestamp(2024, 7, 1)).all()


def test_edge_cases_agree_with_the_pandas_definition(edge_warehouse: Path, raw_frames) -> None:  # type: ignore[no-untyped-def]
    raw = raw_frames(edge_warehouse)
    brands = list(load_parameters().campaign.target_brands)
    built = table(edge_warehouse, "marts.training_examples")
    assert_same(
        built,
        nb.training_examples(raw, brands, SEQUENCE_LENGTH)[built.columns],
        ["customer_id", "order_id"],
    )
    built = table(edge_warehouse, "marts.customer_features")
    expected = nb.customer_features(raw, brands, SEQUENCE_LENGTH, dt.date(2024, 7, 1))
    assert_same(built, expected[built.columns], ["customer_id"])
