"""`POST /learn` (serving/online.py): an online champion learns each realised outcome once,
through its one learner, and its scores follow the labels; any other champion refuses."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.serving.conftest import Shop, serving
from thelook.warehouse import connect

CONCURRENT = 50


@pytest.fixture(scope="module")
def online_version(shop: Shop) -> str:
    """An online model trained on the shop's examples, logged and registered as the
    training step would (not promoted)."""
    from ml.online import OnlineModel
    from orchestration.mlflow_store import local_tracking_uri
    from orchestration.settings import load_parameters
    from orchestration.tracking import Tracker

    params = load_parameters(shop.parameters)
    con = connect(shop.home / "warehouse.duckdb", read_only=True)
    try:
        examples = con.execute("select * from marts.training_examples order by as_of").df()
    finally:
        con.close()
    model = OnlineModel(**params.online.estimator_params(params.monitoring.label_horizon_days))
    model.fit(examples, examples["label"])
    tracker = Tracker(local_tracking_uri(shop.home), experiment=params.registry.experiment)
    run_id = tracker.log_run(
        run_name="online-tests-serving",
        scorer=model,
        kind="model",
        params={"candidate": "online"},
        data_window={"train_start": str(examples["as_of"].min())[:10]},
        metrics={"online.progressive_roc_auc": float(model.progressive_["roc_auc"].iloc[-1])},
        figures={},
        tables={},
        input_example=examples.head(5),
        tags={},
    )
    return shop.registry().register(run_id).version


@pytest.fixture
def online_client(shop: Shop, compiled: Any, tmp_path: Path, online_version: str) -> Iterator[Any]:
    registry = shop.registry()
    registry.promote(registry.version(online_version), "tests/serving: an online champion")
    try:
        with serving(shop, compiled, tmp_path) as client:
            yield client
    finally:
        # The other tests start with the CatBoost champion.
        registry.promote(registry.version(shop.model_version), "tests/serving: restore")


def _customers(shop: Shop, n: int) -> list[int]:
    return [int(i) for i in shop.features["customer_id"].iloc[:: max(1, len(shop.features) // n)]][
        :n
    ]


def test_a_batch_champion_refuses_to_learn_and_bad_bodies_are_422(
    shop: Shop, compiled: Any, tmp_path: Path
) -> None:
    customer = _customers(shop, 1)[0]
    good = {"customer_id": customer, "as_of": shop.as_of.isoformat(), "label": 1}
    with serving(shop, compiled, tmp_path) as client:
        refused = client.post("/learn", json=good)
        assert refused.status_code == 409, refused.text
        assert "does not learn online" in refused.json()["detail"]
        for bad, field in (
            ({**good, "label": 2}, "label"),
            ({**good, "label": "yes"}, "label"),
            ({k: v for k, v in good.items() if k != "as_of"}, "as_of"),
            ({**good, "as_of": "someday"}, "as_of"),
            ({**good, "items": []}, "items"),
        ):
            response = client.post("/learn", json=bad)
            assert response.status_code == 422, (bad, response.text)
            assert field in str(response.json()["detail"])
        assert client.get("/model").json()["online"] is None


def test_concurrent_outcomes_are_each_learnt_once_and_move_the_scores(
    online_client: Any, shop: Shop, online_version: str
) -> None:
    client = online_client
    as_of = shop.as_of.isoformat()
    model = client.get("/model").json()
    assert model["version"] == online_version and model["scorer"] == "online"
    assert model["online"]["learned"] == 0 and model["online"]["trained_on"] > 0

    unknown = client.post("/learn", json={"customer_id": 10**9, "as_of": as_of, "label": 1})
    assert unknown.status_code == 404, unknown.text

    customers = _customers(shop, CONCURRENT)
    probe = customers[0]

    def score(customer_id: int) -> float:
        return float(client.post("/score", json={"customer_id": customer_id}).json()["score"])

    def learn(customer_id: int, label: int, day: str = as_of) -> Any:
        return client.post(
            "/learn", json={"customer_id": customer_id, "as_of": day, "label": label}
        )

    before = score(probe)
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda c: learn(c, 1), customers))
    assert [a.status_code for a in answers] == [200] * CONCURRENT, answers[0].text
    # One learner, each example once: the counts it answered are 1..50, each once.
    assert sorted(a.json()["learned"] for a in answers) == list(range(1, CONCURRENT + 1))
    status = client.get("/model").json()["online"]
    assert status["learned"] == CONCURRENT and status["positives"] == CONCURRENT
    assert status["progressive_log_loss"] is not None
    after_positives = score(probe)
    assert after_positives > before

    # An earlier as_of is computed from the warehouse rows, as /score does.
    earlier = (shop.as_of - dt.timedelta(days=30)).isoformat()
    for customer_id in customers[:20]:
        response = learn(customer_id, 0, earlier)
        assert response.status_code in (200, 404), response.text
    learnt = client.get("/model").json()["online"]["learned"]
    assert learnt > CONCURRENT
    assert score(probe) < after_positives
    # The progressive metrics now judge both labels.
    assert client.get("/model").json()["online"]["progressive_roc_auc"] is not None


def test_the_learner_learns_every_example_once_and_nothing_after_it_stops() -> None:
    """The learner alone, without a server: many threads submit, one thread learns."""
    import numpy as np
    import pandas as pd

    from ml.online import OnlineModel
    from serving.online import LearnerStopped, OnlineLearner

    model = OnlineModel(["share"], ["gender"]).fit(
        pd.DataFrame(
            {"as_of": pd.date_range("2026-01-01", periods=20), "share": np.linspace(0, 1, 20)}
        ).assign(gender="F"),
        [0, 1] * 10,
    )
    learner = OnlineLearner(model)
    row = {"share": 0.5, "gender": "F"}
    before = learner.predict(pd.DataFrame([row]))[0]
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = list(pool.map(lambda _: learner.submit(row, 1), range(200)))
    assert sorted(f.result(timeout=30).learned for f in futures) == list(range(1, 201))
    assert learner.status()["learned"] == 200
    assert learner.predict(pd.DataFrame([row]))[0] > before
    # The registered model it was given is untouched: the learner learns a copy.
    assert model.learned_ == 20
    learner.stop()
    learner.stop()
    with pytest.raises(LearnerStopped):
        learner.submit(row, 0)
