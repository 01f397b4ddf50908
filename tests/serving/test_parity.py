"""Online scores are the batch's: for a sample of the shop's customers, the features the
API computes from the customer's raw rows equal marts.customer_features column by column,
and the scores equal ml.customer_scores of the same date, for the CatBoost champion.

The sample takes every k-th customer and the ones most likely to expose a difference:
the longest histories (sequences cut at sequence_length), customers with cancelled items
or several items at one instant, and customers with NULLs in their users row.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serving.conftest import SEQUENCE_LENGTH, Shop, serving
from thelook.warehouse import connect

EVERY_KTH = 12


def _sample(shop: Shop) -> list[int]:
    ids = [int(i) for i in shop.features["customer_id"]]
    con = connect(shop.home / "warehouse.duckdb", read_only=True)
    try:
        special = con.execute(
            """
            with features as (select * from marts.customer_features)
            (select customer_id from features order by prior_items desc, customer_id limit 10)
            union
            (select distinct user_id from raw.order_items
             where status = 'Cancelled' and user_id in (select customer_id from features)
             order by user_id limit 15)
            union
            (select user_id from raw.order_items
             where user_id in (select customer_id from features)
             group by user_id having count(distinct created_at) < count(*)
             order by user_id limit 10)
            union
            (select customer_id from features
             where age is null or gender is null or city is null order by customer_id limit 10)
            """
        ).fetchall()
    finally:
        con.close()
    return sorted(set(ids[::EVERY_KTH]) | {int(row[0]) for row in special})


@pytest.fixture(scope="module")
def answers(
    shop: Shop, compiled: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[int, dict[str, Any]]]:
    """Both paths' answers for every customer of the sample (the server is started once)."""
    tmp: Path = tmp_path_factory.mktemp("parity")
    out: dict[int, dict[str, Any]] = {}
    with serving(shop, compiled, tmp) as client:
        for customer_id in _sample(shop):
            history = client.post(
                "/score?include_features=true",
                json=shop.history_request(customer_id, shop.as_of),
            )
            stored = client.post("/score?include_features=true", json={"customer_id": customer_id})
            out[customer_id] = {"history": history, "stored": stored}
    yield out


def test_the_sample_covers_the_hard_cases(shop: Shop, answers: dict[int, dict[str, Any]]) -> None:
    assert len(answers) >= len(shop.features) // EVERY_KTH
    bodies = _ok(answers, "history")
    features = [body["features"] for body in bodies]
    # Sequences cut at sequence_length, NULL categories and ages...
    assert max(int(f["prior_items"]) for f in features) > SEQUENCE_LENGTH
    assert any(f["brand_sequence"].count(";") == SEQUENCE_LENGTH - 1 for f in features)
    assert any(f["age"] is None or f["gender"] is None or f["city"] is None for f in features)
    # ...and cancelled items, which count for nothing.
    con = connect(shop.home / "warehouse.duckdb", read_only=True)
    try:
        cancelled = {
            row[0]
            for row in con.execute(
                "select user_id from raw.order_items where status = 'Cancelled'"
            ).fetchall()
        }
    finally:
        con.close()
    assert len(cancelled & set(answers)) >= 10


def _ok(answers: dict[int, dict[str, Any]], path: str) -> list[dict[str, Any]]:
    responses = [a[path] for a in answers.values()]
    failed = [(r.status_code, r.text) for r in responses if r.status_code != 200]
    assert not failed, failed[:3]
    return [r.json() for r in responses]


def test_features_from_raw_rows_equal_customer_features_column_by_column(
    shop: Shop, answers: dict[int, dict[str, Any]]
) -> None:
    mismatches = []
    for customer_id, answer in answers.items():
        body = answer["history"].json()
        assert answer["history"].status_code == 200, body
        assert body["path"] == "request_history"
        expected = shop.feature_row(customer_id)
        assert expected is not None
        assert list(body["features"]) == list(expected)
        for column, value in expected.items():
            got = body["features"][column]
            want = value.isoformat() if hasattr(value, "isoformat") else value
            # Exact: the same SQL on the same values gives the same doubles.
            if got != want and not (_nan(got) and _nan(want)):
                mismatches.append((customer_id, column, got, want))
    assert not mismatches, mismatches[:10]


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def test_scores_equal_the_batch_scores_of_the_same_date(
    shop: Shop, answers: dict[int, dict[str, Any]]
) -> None:
    for path in ("history", "stored"):
        for body in _ok(answers, path):
            assert body["as_of"] == shop.as_of.isoformat()
            assert body["model"]["version"] == shop.model_version
            assert body["model"]["scorer"] == "catboost"
            # CatBoost scores each row on its own: alone or among 1,454, the same double.
            assert body["score"] == shop.model_scores[body["customer_id"]], body["customer_id"]


def test_both_paths_see_the_same_features(answers: dict[int, dict[str, Any]]) -> None:
    for answer in answers.values():
        history, stored = answer["history"].json(), answer["stored"].json()
        assert stored["path"] == "features"
        assert stored["features"] == history["features"]
        assert stored["features_hash"] == history["features_hash"]
        assert stored["score"] == history["score"]
