"""Raw values that would pass silently: NaN and infinite prices, items of customers and
products raw does not know. Staging makes such prices NULL and warn-level dbt tests count
them; customers missing from users are never scored."""

from __future__ import annotations

import datetime as dt
import math
import re
from pathlib import Path

import pytest

from tests.dbt_project.conftest import build, table
from tests.dbt_project.test_edge_cases import _item, write_rows

T = dt.datetime


@pytest.fixture(scope="module")
def bad_values(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    products = [
        {"id": 1, "brand": "Levi's", "department": "Men", "category": "Jeans", "retail_price": math.nan, "cost": math.inf},
        {"id": 2, "brand": "Hanes", "department": "Men", "category": "Socks", "retail_price": 20.0, "cost": 5.0},
    ]  # fmt: skip
    users = [{"id": 1, "gender": "M", "country": "Japan", "created_at": T(2023, 1, 1)}]
    items = [
        {**_item(1, 1, 1, 2, T(2024, 3, 1)), "sale_price": math.nan},
        {**_item(2, 2, 1, 2, T(2024, 4, 1)), "sale_price": math.inf},
        _item(3, 3, 1, 2, T(2024, 5, 1)),  # 20.0
        _item(4, 4, 9, 999, T(2024, 5, 2)),  # neither customer 9 nor product 999 exists
    ]
    warehouse = tmp_path_factory.mktemp("bad_values") / "warehouse.duckdb"
    write_rows(warehouse, products=products, users=users, order_items=items)
    selection = (
        "stg_thelook__order_items stg_thelook__products +customer_features +training_examples"
    )
    return warehouse, build(warehouse, "--select", selection, as_of="2024-07-01")


@pytest.mark.parametrize(
    ("test", "rows"),
    [
        ("order_items_without_a_usable_sale_price", 2),
        ("products_without_a_usable_retail_price", 1),
        ("products_without_a_usable_cost", 1),
        ("order_items_of_unknown_products", 1),
    ],
)
def test_bad_values_warn_with_their_count(
    bad_values: tuple[Path, str], test: str, rows: int
) -> None:
    output = re.sub(r"\x1b\[[0-9;]*m", "", bad_values[1])
    [line] = [
        line for line in output.splitlines() if re.search(rf"\d+ of \d+ WARN \d+ {test} ", line)
    ]
    assert f"WARN {rows} {test} " in line, line


def test_a_nan_or_infinite_price_is_no_price_and_orphans_are_not_scored(
    bad_values: tuple[Path, str],
) -> None:
    warehouse, _ = bad_values
    features = table(warehouse, "marts.customer_features").set_index("customer_id")
    assert list(features.index) == [1]  # customer 9 is not in users: never scored
    assert features.loc[1, "prior_items"] == 3  # the unpriced items still count
    assert features.loc[1, "avg_item_price"] == 20.0  # over the one usable price
