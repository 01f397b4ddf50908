"""The online challenger (ml/online.py): it learns what can be learnt, finds nothing in
noise, and progressive validation never lets it see a label before its moment + delay."""

from __future__ import annotations

import pickle
from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ml.baselines import Scorer
from ml.online import OnlineModel, progressive_validation

DELAY_DAYS = 30


def stream(n: int, seed: int, *, learnable: bool) -> tuple[pd.DataFrame, np.ndarray]:
    """Examples over a year: the label follows the prior share (and gender) when
    ``learnable``, a coin otherwise."""
    rng = np.random.default_rng(seed)
    share = rng.random(n)
    gender = rng.choice(np.array(["F", "M", None], dtype=object), n)
    logit = 4 * share - 2 + np.where(gender == "F", 0.5, -0.5)
    p = 1 / (1 + np.exp(-logit)) if learnable else np.full(n, 0.3)
    frame = pd.DataFrame(
        {
            "as_of": pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.random(n) * 365, unit="D"),
            "prior_target_brand_share": np.where(rng.random(n) < 0.05, np.nan, share),
            "age": rng.integers(18, 70, n).astype(float),
            "gender": gender,
        }
    )
    return frame, (rng.random(n) < p).astype(int)


def model(**settings: Any) -> OnlineModel:
    return OnlineModel(
        ["prior_target_brand_share", "age"],
        ["gender"],
        **{"label_delay_days": DELAY_DAYS, **settings},
    )


def test_progressive_auc_beats_chance_on_a_learnable_stream_and_not_on_noise() -> None:
    learnable = model().fit(*stream(3000, 1, learnable=True))
    noise = model().fit(*stream(3000, 2, learnable=False))
    assert learnable.progressive_["roc_auc"].iloc[-1] > 0.7
    assert abs(noise.progressive_["roc_auc"].iloc[-1] - 0.5) < 0.05
    assert learnable.progressive_["examples"].iloc[-1] == 3000 == learnable.learned_
    # The running log loss of the learnable stream improves on its first checkpoint's.
    assert learnable.progressive_["log_loss"].iloc[-1] < learnable.progressive_["log_loss"].iloc[0]


class Spy(OnlineModel):
    """Records, at every question, its moment and the newest moment of a label learnt so far."""

    def predict_proba_one(self, x: dict[Hashable, Any], **kwargs: Any) -> dict[Any, float]:
        learnt = getattr(self, "learnt", [])
        self.asked = [*getattr(self, "asked", []), (x["as_of"], max(learnt, default=None))]
        return super().predict_proba_one(x, **kwargs)

    def learn_one(self, x: dict[Hashable, Any], y: Any) -> None:
        self.learnt = [*getattr(self, "learnt", []), x["as_of"]]
        super().learn_one(x, y)


def test_no_label_is_learnt_before_its_moment_plus_the_delay() -> None:
    X, y = stream(600, 3, learnable=True)
    spy = Spy(["prior_target_brand_share"], ["gender"], label_delay_days=DELAY_DAYS)
    progressive_validation(spy, X, y)
    # Moments reach the model as seconds since the epoch.
    delay = DELAY_DAYS * 86400
    informed = [(moment, newest) for moment, newest in spy.asked if newest is not None]
    # Most questions came after some learning (the test is not vacuous)...
    assert len(informed) > 400
    # ...and every label learnt before a question was due by that question's moment.
    assert all(newest + delay <= moment for moment, newest in informed)
    # A question a few hours past the first label's due moment has seen it.
    assert min(spy.learnt) + delay + 2 * 86400 > min(m for m, _ in informed)
    assert len(spy.learnt) == len(X)


def test_peeking_at_todays_labels_would_show() -> None:
    """Each day's labels share one coin and nothing else predicts them: a model that saw a
    day's labels while that day is scored would rank it well; one kept a day behind
    cannot."""
    rng = np.random.default_rng(4)
    days = np.repeat(np.arange(200), 10)
    coin = rng.random(200) < 0.5
    X = pd.DataFrame({"as_of": pd.Timestamp("2026-01-01") + pd.to_timedelta(days, unit="D")})
    X["as_of"] += pd.to_timedelta(np.tile(np.arange(10), 200), unit="h")
    y = (rng.random(days.size) < np.where(coin[days], 0.9, 0.1)).astype(int)

    def auc(delay: float) -> float:
        frame = progressive_validation(
            OnlineModel([], label_delay_days=delay, learning_rate=0.5), X, y
        )
        return float(frame["roc_auc"].iloc[-1])

    assert auc(0) > 0.7
    assert abs(auc(1) - 0.5) < 0.06


def test_fit_is_learning_in_time_order_and_scores_like_a_scorer() -> None:
    X, y = stream(500, 5, learnable=True)
    fitted = model().fit(X, y)
    by_hand = model()
    for row, label in zip(
        X.sort_values("as_of").to_dict("records"),
        y[np.argsort(X["as_of"].to_numpy(), kind="stable")],
        strict=True,
    ):
        by_hand.learn_one(row, label)
    np.testing.assert_allclose(fitted.predict_proba(X), by_hand.predict_proba(X))
    quick = model().fit(X, y, progressive=False)
    assert quick.progressive_ is None
    np.testing.assert_allclose(quick.predict_proba(X), fitted.predict_proba(X))
    scorer: Scorer = fitted
    assert scorer.is_probability and scorer.name == "online"
    copy = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(copy.predict_proba(X.head(20)), fitted.predict_proba(X.head(20)))


def test_an_unfitted_model_refuses_to_score() -> None:
    with pytest.raises(RuntimeError, match="not fitted"):
        model().predict_proba(pd.DataFrame({"age": [30.0]}))
