"""The API's contract: what each endpoint answers, the errors it names, and the
predictions it logs."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from serving.predictions import read_predictions
from tests.serving.conftest import Shop, serving
from thelook.warehouse import connect

MAX_ITEMS = 5


@pytest.fixture(scope="module")
def server(
    shop: Shop, compiled: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Any, Path]]:
    tmp = tmp_path_factory.mktemp("api")
    # Predictions are written only when a test flushes them (and at the end).
    with serving(shop, compiled, tmp, max_items=MAX_ITEMS, log_flush_seconds=3600) as client:
        yield client, tmp / "predictions.duckdb"


@pytest.fixture
def client(server: tuple[Any, Path]) -> Any:
    return server[0]


def _customer(shop: Shop, where: str) -> int:
    con = connect(shop.home / "warehouse.duckdb", read_only=True)
    try:
        row = con.execute(f"select id from raw.users where {where} order by id limit 1").fetchone()
    finally:
        con.close()
    assert row is not None, where
    return int(row[0])


def _small_history(shop: Shop) -> dict[str, Any]:
    """A customer of the shop whose history fits MAX_ITEMS."""
    customer_id = int(shop.features.query(f"prior_items <= {MAX_ITEMS}")["customer_id"].iloc[0])
    body = shop.history_request(customer_id)
    assert 0 < len(body["items"]) <= MAX_ITEMS
    return body


def test_a_customer_of_the_warehouse_is_scored_as_of_the_features_date(
    client: Any, shop: Shop
) -> None:
    customer_id = int(shop.features["customer_id"].iloc[3])
    response = client.post("/score", json={"customer_id": customer_id})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"customer_id", "as_of", "score", "model", "features_hash", "path"}
    assert body["customer_id"] == customer_id
    assert body["as_of"] == shop.as_of.isoformat()
    assert body["model"] == {
        "name": shop.registry().model_name,
        "version": shop.model_version,
        "scorer": "catboost",
    }
    assert 0 <= body["score"] <= 1
    assert len(body["features_hash"]) == 64
    assert body["path"] == "features"


def test_another_as_of_is_computed_from_the_warehouse_rows(client: Any, shop: Shop) -> None:
    """As of another date the warehouse's raw rows go through the compiled SQL: the same
    answer as sending those rows, and a later date counts the days since."""
    customer_id = _customer(
        shop,
        "id in (select customer_id from marts.customer_features) and id not in "
        f"(select user_id from raw.order_items where created_at >= '{shop.as_of}')",
    )
    later = shop.as_of + dt.timedelta(days=10)
    from_warehouse = client.post(
        "/score?include_features=true", json={"customer_id": customer_id, "as_of": str(later)}
    ).json()
    from_request = client.post(
        "/score?include_features=true", json=shop.history_request(customer_id, later)
    ).json()
    assert from_warehouse["path"] == "warehouse_history"
    assert from_warehouse["as_of"] == str(later)
    assert from_warehouse["features"] == from_request["features"]
    stored = shop.feature_row(customer_id)
    assert stored is not None
    assert from_warehouse["features"]["days_since_last_order"] == pytest.approx(
        stored["days_since_last_order"] + 10
    )


def test_unknown_customers_and_customers_without_a_purchase_are_404(
    client: Any, shop: Shop
) -> None:
    unknown = int(shop.features["customer_id"].max()) + 10_000
    response = client.post("/score", json={"customer_id": unknown})
    assert response.status_code == 404
    assert f"customer {unknown} is not in the warehouse" in response.json()["detail"]
    never_bought = _customer(shop, "id not in (select user_id from raw.order_items)")
    response = client.post("/score", json={"customer_id": never_bought})
    assert response.status_code == 404
    assert "no purchase" in response.json()["detail"]
    response = client.post("/score", json={"customer_id": unknown, "as_of": "2020-01-01"})
    assert response.status_code == 404


def test_a_history_without_a_purchase_before_as_of_is_422(client: Any, shop: Shop) -> None:
    body = _small_history(shop)
    cancelled = {**body, "items": [{**i, "status": "Cancelled"} for i in body["items"]]}
    response = client.post("/score", json=cancelled)
    assert response.status_code == 422
    assert "no purchase" in response.json()["detail"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customer_id": "abc"}, "customer_id"),
        ({"customer_id": 1, "as_of": "01/02/2024"}, "as_of"),
        ({"customer_id": 1, "colour": "red"}, "colour"),
        ({"customer": {"id": 1}, "items": [{"order_id": 1}]}, "product_id"),
        (
            {
                "customer": {"id": 1},
                "items": [
                    {
                        "order_id": 1,
                        "product_id": 1,
                        "status": "Complete",
                        "created_at": "yesterday",
                        "sale_price": 1.0,
                    }
                ],
            },
            "created_at",
        ),
    ],
)
def test_a_malformed_body_is_422_naming_the_field(
    client: Any, body: dict[str, Any], field: str
) -> None:
    response = client.post("/score", json=body)
    assert response.status_code == 422
    errors = response.json()["detail"]
    assert any(field in [str(part) for part in error["loc"]] for error in errors), errors


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "customer_id or customer"),
        ({"customer_id": 1, "customer": {"id": 1}, "items": []}, "customer_id or customer"),
        ({"customer": {"id": 1}}, "items: required"),
        ({"customer_id": 1, "items": []}, "items, orders: only with customer"),
    ],
)
def test_an_ambiguous_body_is_422_saying_what_to_send(
    client: Any, body: dict[str, Any], words: str
) -> None:
    response = client.post("/score", json=body)
    assert response.status_code == 422
    assert words in response.text


def test_a_history_beyond_max_items_is_413(client: Any, shop: Shop) -> None:
    body = _small_history(shop)
    item = body["items"][0]
    body["items"] = [{**item, "id": n} for n in range(1, MAX_ITEMS + 2)]
    response = client.post("/score", json=body)
    assert response.status_code == 413
    assert f"more than the {MAX_ITEMS}" in response.json()["detail"]
    # A body too large to hold max_items items is refused before it is parsed.
    huge = client.post(
        "/score",
        content=b'{"customer_id": 1, "pad": "' + b"x" * 200_000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert huge.status_code == 413


def test_item_ids_may_be_left_out(client: Any, shop: Shop) -> None:
    """Without ids, items of equal time keep the order they are listed in."""
    body = _small_history(shop)
    with_ids = client.post("/score?include_features=true", json=body).json()
    ordered = sorted(body["items"], key=lambda i: i["id"])
    without = {**body, "items": [{k: v for k, v in i.items() if k != "id"} for i in ordered]}
    response = client.post("/score?include_features=true", json=without)
    assert response.status_code == 200, response.text
    assert response.json()["features"] == with_ids["features"]


def test_zoned_timestamps_are_taken_as_utc(client: Any, shop: Shop) -> None:
    body = _small_history(shop)
    utc = client.post("/score?include_features=true", json=body).json()

    def shifted(value: str) -> str:
        moment = dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.timezone(dt.timedelta(hours=2))).isoformat()

    zoned = {
        **body,
        "items": [{**i, "created_at": shifted(i["created_at"])} for i in body["items"]],
    }
    assert (
        client.post("/score?include_features=true", json=zoned).json()["features"]
        == (utc["features"])
    )


def test_model_says_what_scores_and_why(client: Any, shop: Shop) -> None:
    response = client.get("/model")
    assert response.status_code == 200
    body = response.json()
    assert body["version"] == shop.model_version
    assert body["scorer"] == "catboost" and body["kind"] == "model"
    assert {"train_start", "train_end", "test_start", "test_end"} <= set(body["training_window"])
    # The gate did not promote it: the decision is recorded, and why it is champion anyway.
    assert body["gate"]["promote"] is False and body["gate"]["reason"].startswith("not promoted")
    assert body["champion_since"]["action"] == "promote"
    assert "tests/serving" in body["champion_since"]["reason"]


def test_health_and_the_openapi_documents(client: Any, shop: Shop) -> None:
    health = client.get("/health")
    assert health.status_code == 200
    body = health.json()
    assert body["status"] == "ok"
    assert body["features"]["as_of"] == shop.as_of.isoformat()
    assert body["features"]["customers"] == len(shop.features)
    assert body["champion"]["version"] == shop.model_version
    schema = client.get("/openapi.json").json()
    assert {"/score", "/model", "/health"} <= set(schema["paths"])
    assert client.get("/docs").status_code == 200


def test_every_prediction_is_logged(server: tuple[Any, Path], shop: Shop) -> None:
    client, path = server
    service = client.app.state.service
    service.predictions.flush()
    before = len(read_predictions(path)) if path.exists() else 0
    customer_ids = [int(i) for i in shop.features["customer_id"].iloc[10:15]]
    answers = [client.post("/score", json={"customer_id": i}).json() for i in customer_ids]
    answers.append(client.post("/score", json=_small_history(shop)).json())
    client.post("/score", json={"customer_id": -1})  # a 404 is no prediction
    assert service.predictions.flush() == len(answers)
    rows = read_predictions(path)[before:]
    assert [r["customer_id"] for r in rows] == [a["customer_id"] for a in answers]
    for row, answer in zip(rows, answers, strict=True):
        assert row["score"] == answer["score"]
        assert row["features_hash"] == answer["features_hash"]
        assert row["as_of"] == shop.as_of
        assert row["model_name"] == answer["model"]["name"]
        assert row["model_version"] == shop.model_version
        assert row["path"] == answer["path"]
        age = dt.datetime.now(dt.UTC).replace(tzinfo=None) - row["requested_at"]
        assert dt.timedelta(0) <= age < dt.timedelta(minutes=5)
    assert [r["path"] for r in rows][-1] == "request_history"
