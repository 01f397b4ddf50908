"""The id path's index (serving/stored.py): every stored row is marts.customer_features'
row, every kept score is the batch's and the score the row gets alone; an id request is
answered at once, and every prediction is in the log by the end of shutdown."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest

from serving.champion import load_champion
from serving.predictions import Prediction, PredictionLog, read_predictions
from serving.service import Job
from serving.snapshot import WarehouseSnapshot
from serving.stored import StoredFeatures, StoredScores, feature_frame
from tests.serving.conftest import Shop, serving
from thelook.warehouse import connect


@pytest.fixture(scope="module")
def stored(shop: Shop) -> Iterator[StoredFeatures]:
    snapshot = WarehouseSnapshot.load(shop.home / "warehouse.duckdb")
    try:
        yield StoredFeatures.of(snapshot)
    finally:
        snapshot.close()


def _warehouse(shop: Shop, sql: str) -> list[dict[str, Any]]:
    con = connect(shop.home / "warehouse.duckdb", read_only=True)
    try:
        result = con.execute(sql)
        names = [column[0] for column in result.description]
        return [dict(zip(names, row, strict=True)) for row in result.fetchall()]
    finally:
        con.close()


def test_every_stored_row_is_the_warehouse_row(shop: Shop, stored: StoredFeatures) -> None:
    rows = _warehouse(shop, "select * from marts.customer_features order by customer_id")
    assert len(stored) == len(rows) == len(shop.features)
    assert stored.as_of == shop.as_of
    for row in rows:
        assert stored.row(row["customer_id"]) == row  # the values and their Python types
    users = _warehouse(shop, "select id from raw.users")
    assert stored.known == {user["id"] for user in users}
    without_row = next(u["id"] for u in users if stored.row(u["id"]) is None)
    assert without_row in stored.known
    assert stored.row(max(stored.known) + 1) is None


def test_kept_scores_are_the_batch_scores_and_each_rows_alone(
    shop: Shop, compiled: Any, stored: StoredFeatures
) -> None:
    registry = shop.registry()
    columns = compiled.column_names
    for version, batch in (
        (shop.model_version, shop.model_scores),
        (shop.rule_version, shop.rule_scores),
    ):
        champion = load_champion(registry, registry.version(version))
        scores = StoredScores.of(stored, champion, columns)
        assert scores is not None
        for customer_id in stored.positions:
            kept = scores.score(customer_id)
            assert kept == batch[customer_id], (version, customer_id)
            alone = champion.predict(feature_frame([stored.row(customer_id) or {}], columns))
            assert float(alone[0]) == kept, (version, customer_id)
        assert scores.score(max(stored.known) + 1) is None
    # An online champion's scores move as it learns: none are kept.
    learning = dataclasses.replace(champion, learner=cast(Any, object()))
    assert StoredScores.of(stored, learning, columns) is None


def test_an_id_request_is_answered_at_once_and_logged_by_shutdown(
    shop: Shop, compiled: Any, tmp_path: Path
) -> None:
    customer_ids = [int(i) for i in shop.features["customer_id"].iloc[:20]]
    # Nothing is written before the server stops, unless shutdown writes it.
    with serving(shop, compiled, tmp_path, log_flush_seconds=3600) as client:
        service = client.app.state.service
        for customer_id in customer_ids[:10]:
            job = Job(
                customer_id=customer_id,
                as_of=None,
                history=None,
                requested_at=dt.datetime.now(dt.UTC),
            )
            future = service.submit(job)
            assert future.done(), "an id request for the stored date went to a worker"
            assert future.result().score == shop.model_scores[customer_id]
        answers = [client.post("/score", json={"customer_id": i}).json() for i in customer_ids[10:]]
        assert [a["score"] for a in answers] == [shop.model_scores[i] for i in customer_ids[10:]]
        assert service.predictions.pending == len(customer_ids)
        assert service.predictions.written == 0
    rows = read_predictions(tmp_path / "predictions.duckdb")
    assert [r["customer_id"] for r in rows] == customer_ids
    assert [r["score"] for r in rows] == [shop.model_scores[i] for i in customer_ids]
    assert {r["path"] for r in rows} == {"features"}


def test_predictions_appended_after_close_are_written(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "predictions.duckdb", flush_seconds=3600)
    log.start()

    def prediction(customer_id: int) -> Prediction:
        return Prediction(
            customer_id=customer_id,
            as_of=dt.date(2026, 11, 5),
            features_hash="0" * 64,
            score=0.5,
            model_name="m",
            model_version="1",
            path="features",
            requested_at=dt.datetime(2026, 11, 5, 12),
        )

    log.append([prediction(1), prediction(2)])
    log.close()
    log.append([prediction(3)])  # a request answered while the server stopped
    assert [r["customer_id"] for r in read_predictions(log.path)] == [1, 2, 3]
    assert log.pending == 0 and log.written == 3
