"""The Optuna study on backtest folds, with real CatBoost fits on a small shop."""

from __future__ import annotations

from typing import Any

import pytest

from ml.model import PropensityModel
from ml.split import rolling_origin_splits
from ml.tuning import Range, tune
from tests.ml.synthetic import make_examples


def _study(small_model_kwargs: dict[str, Any], trials: int, seed: int = 3) -> Any:
    examples = make_examples(2400, seed=7)
    examples["as_of"] = examples["as_of"].sort_values().to_numpy()
    splits = rolling_origin_splits(examples, folds=2, test_days=20, validation_days=20, gap_days=2)
    fitted: list[tuple[int, dict[str, Any]]] = []

    def fit_folds(settings: dict[str, Any], trial: int) -> list[PropensityModel]:
        fitted.append((trial, settings))
        params = {**small_model_kwargs["catboost_params"], **settings}
        return [
            PropensityModel(**{**small_model_kwargs, "catboost_params": params}).fit(
                s.train,
                s.train["label"],
                eval_set=(s.validation, s.validation["label"]),
                keep_trees=True,
            )
            for s in splits
        ]

    result = tune(
        fit_folds,
        small_model_kwargs["catboost_params"],
        {"depth": Range(2, 6), "learning_rate": Range(0.05, 0.3, log=True)},
        trials=trials,
        timeout_seconds=600,
        seed=seed,
    )
    return result, fitted


def test_the_configured_settings_come_first_and_the_best_is_kept(
    small_model_kwargs: dict[str, Any],
) -> None:
    result, fitted = _study(small_model_kwargs, trials=4)
    configured = small_model_kwargs["catboost_params"]
    assert fitted[0] == (
        0,
        {"depth": configured["depth"], "learning_rate": configured["learning_rate"]},
    )
    assert len(result.trials) == 4 and len({str(s) for _, s in fitted}) == 4
    assert result.best.value == max(t.value for t in result.trials) >= result.trials[0].value
    assert len(result.models) == 2  # the best trial's fold models, ready for the backtest
    assert all(
        m.model_.get_params()["depth"] == result.best.settings["depth"] for m in result.models
    )
    table = result.table()
    assert list(table["trial"]) == [0, 1, 2, 3] and {"depth", "value", "trees"} <= set(table)
    again, _ = _study(small_model_kwargs, trials=4)
    assert [t.settings for t in again.trials] == [t.settings for t in result.trials]  # seeded


def test_a_searched_setting_needs_a_configured_value() -> None:
    with pytest.raises(ValueError, match=r"\['depth'\] are searched but have no configured value"):
        tune(lambda s, n: [], {}, {"depth": Range(2, 6)}, trials=2, timeout_seconds=1, seed=0)
    with pytest.raises(ValueError, match="trials \\(0\\) must be at least 1"):
        tune(lambda s, n: [], {}, {}, trials=0, timeout_seconds=1, seed=0)
