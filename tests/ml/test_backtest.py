"""The rolling-origin backtest: fits per fold, trees chosen on the folds, calibration,
pooled scores."""

from __future__ import annotations

from typing import Any

import numpy as np

from ml.backtest import fold_table, mean_curve_best, run_backtest
from ml.baselines import RateByGroup
from ml.calibration import Calibrated
from ml.metrics import roc_auc
from ml.model import PropensityModel
from ml.split import TimeSplit, rolling_origin_splits
from tests.ml.synthetic import make_examples


def test_every_fold_is_fitted_before_its_test_and_the_folds_choose_the_trees(
    small_model_kwargs: dict[str, Any],
) -> None:
    examples = make_examples(3000, seed=11)
    examples["as_of"] = examples["as_of"].sort_values().to_numpy()
    splits = rolling_origin_splits(examples, folds=3, test_days=15, validation_days=15, gap_days=2)
    params = {**small_model_kwargs["catboost_params"], "learning_rate": 0.1, "iterations": 80}
    seen: list[tuple[str, int, object]] = []

    def catboost(split: TimeSplit, fold: int) -> PropensityModel:
        seen.append(("catboost", fold, split.train["as_of"].max()))
        return PropensityModel(**{**small_model_kwargs, "catboost_params": params}).fit(
            split.train,
            split.train["label"],
            eval_set=(split.validation, split.validation["label"]),
            keep_trees=True,
        )

    def rule(split: TimeSplit, fold: int) -> RateByGroup:
        return RateByGroup("gender").fit(split.train, split.train["label"])

    backtest = run_backtest(
        splits,
        {"catboost": catboost, "rate_by_gender": rule},
        calibrate=["catboost"],
        select_trees="catboost",
    )
    assert [fold for _, fold, _ in seen] == [1, 2, 3]
    for (_, _, last_train), split in zip(seen, splits, strict=True):
        assert last_train < split.windows.test_start
    # One number of trees for every fold, at the peak of their mean validation curve.
    curves = [f.scorers["catboost"].base.validation_curve_ for f in backtest.folds]
    assert backtest.trees == mean_curve_best(curves)
    assert {f.scorers["catboost"].tree_count_ for f in backtest.folds} == {backtest.trees}
    assert isinstance(backtest.folds[0].scorers["catboost"], Calibrated)
    assert not isinstance(backtest.folds[0].scorers["rate_by_gender"], Calibrated)
    # Pooled: every fold's test rows once, each scored by its own fold's models.
    assert len(backtest.test) == sum(len(s.test) for s in splits)
    assert list(backtest.test["fold"].unique()) == [1, 2, 3]
    newest = backtest.fold_rows(3)
    np.testing.assert_allclose(
        backtest.scores["catboost"][newest],
        backtest.newest.scorers["catboost"].predict_proba(splits[-1].test),
    )
    y = backtest.test["label"].to_numpy()
    for fold in backtest.folds:  # calibration keeps each fold's ranking
        rows = backtest.fold_rows(fold.number)
        assert roc_auc(y[rows], backtest.uncalibrated["catboost"][rows]) == roc_auc(
            y[rows], backtest.scores["catboost"][rows]
        )
    table = fold_table(backtest, roc_auc)
    assert list(table["fold"]) == ["1", "2", "3", "pooled"]
    assert table["examples"].iloc[-1] == len(backtest.test)
