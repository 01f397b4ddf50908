"""The simplest model that wins (ml/selection.py)."""

from __future__ import annotations

import numpy as np

from ml.selection import prefer_simpler
from tests.ml.test_gate import _data


def test_the_simpler_model_is_preferred_unless_beaten() -> None:
    """CatBoost goes to the gate only when it beats the logistic model as a candidate
    beats a contender; an equal or barely better one leaves the simpler model."""
    y, signal = _data(n=6000, seed=9)
    rng = np.random.default_rng(21)
    weaker = signal + rng.normal(scale=1.0, size=y.size)
    twin = signal + rng.normal(scale=0.05, size=y.size)
    rules = {"metric": "roc_auc", "margin": 0.005, "n_boot": 300, "confidence_level": 0.95}
    names = {"complex_name": "catboost", "simple_name": "logistic"}
    clearly = prefer_simpler(y, signal, weaker, seed=7, **names, **rules)
    assert clearly.chosen == "catboost"
    assert clearly.sentence().startswith("catboost: better than logistic (roc_auc +0.")
    tie = prefer_simpler(y, signal, twin, seed=7, groups=np.arange(y.size) // 3, **names, **rules)
    assert tie.chosen == "logistic"
    assert tie.sentence().startswith("logistic (simpler); catboost: ")
    assert not tie.comparison.beaten
