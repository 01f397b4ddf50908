"""The logistic challenger: explicit features crossed with gender."""

from __future__ import annotations

import cloudpickle
import numpy as np
import pandas as pd
import pytest

from ml.logistic import LogisticModel
from ml.metrics import roc_auc


def _shop(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Women buy the target brands more, and a past target item matters more for men."""
    rng = np.random.default_rng(seed)
    gender = rng.choice(["F", "M"], n)
    items = rng.poisson(2, n) + 1
    target_items = rng.binomial(items, 0.3)
    logit = -1.2 + 0.8 * (gender == "F") + np.where(gender == "M", 0.9, 0.3) * (target_items > 0)
    truth = 1 / (1 + np.exp(-logit))
    y = (rng.random(n) < truth).astype(int)
    X = pd.DataFrame(
        {
            "gender": pd.Series(gender).where(rng.random(n) > 0.02),  # a few NULL genders
            "prior_items": items,
            "prior_target_items": target_items,
            "prior_target_brand_share": target_items / items,
        }
    )
    return X, y, truth


def test_learns_the_crossed_effects_and_ranks_like_the_truth() -> None:
    X, y, _ = _shop(20_000, seed=1)
    model = LogisticModel(
        numeric_features=["prior_items", "prior_target_items", "prior_target_brand_share"],
        indicator_features=["prior_target_items"],
    ).fit(X, y)
    assert model.parameter_count == 3 + 3 * 4
    table = model.coefficient_table().set_index("term")["coefficient"]
    any_target = "any prior_target_items x gender="
    assert table[f"{any_target}M"] > table[f"{any_target}F"] > 0
    assert table["gender=F"] > table["gender=M"]
    test, y_test, truth = _shop(10_000, seed=2)
    scores = model.predict_proba(test)
    assert ((scores > 0) & (scores < 1)).all()
    assert roc_auc(y_test, scores) > roc_auc(y_test, truth) - 0.01
    assert abs(scores.mean() - y_test.mean()) < 0.02  # unweighted: probabilities


def test_nulls_and_unseen_levels_score_and_the_model_pickles() -> None:
    X, y, _ = _shop(2000, seed=3)
    model = LogisticModel(numeric_features=["prior_items"]).fit(X, y)
    odd = pd.DataFrame({"gender": ["X", None, "F"], "prior_items": [None, 3.0, 1.0]})
    assert np.isfinite(cloudpickle.loads(cloudpickle.dumps(model)).predict_proba(odd)).all()
    with pytest.raises(ValueError, match="missing from X: \\['prior_items'\\]"):
        model.predict_proba(pd.DataFrame({"gender": ["F"]}))
    with pytest.raises(ValueError, match="both labels"):
        LogisticModel(numeric_features=["prior_items"]).fit(X, np.zeros(len(X)))
