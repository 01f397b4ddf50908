"""The training step's modelling, between reading the marts and logging what happened:
fit CatBoost, the logistic challenger, the online challenger and the rule baselines on
every backtest fold, choose the candidate (the simplest model that wins), and measure
every scorer on the
pooled test rows: overall, per slice, per fold, calibration before and after, and, when
the simulator's truth is there, against the true probabilities.

The modelling is ml/ (split, backtest, models, gate rules, metrics); this module only
says which scorers there are, how each is fitted, and what is measured.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ml import LogisticModel, OnlineModel, PropensityModel, evaluate, rule_baselines
from ml.backtest import FOLD_COLUMN as FOLD
from ml.backtest import Backtest, fold_table, run_backtest
from ml.bootstrap import metric_interval
from ml.calibration import calibration_errors
from ml.metrics import Evaluation, expected_roc_auc, metric_value
from ml.selection import Selection, prefer_simpler
from ml.slices import evaluation_slices
from ml.split import TimeSplit, rolling_origin_splits
from ml.tuning import Range, Tuning, tune
from orchestration.settings import EvaluationSettings, Parameters

CATBOOST = "catboost"
LOGISTIC = "logistic"
ONLINE = "online"
# Platt-scaled on each fold's validation window. Not the online model: a mapping fixed at
# training would be stale after its first learnt outcome, and a logistic regression
# trained on log loss gives probabilities of its own.
BATCH_MODELS = (CATBOOST, LOGISTIC)
MODELS = (*BATCH_MODELS, ONLINE)
ORACLE = "oracle"
CEILING = "ceiling"
# Rows of the metrics table that are references, not scorers a champion could be.
REFERENCES = (ORACLE, CEILING)

# CatBoost's iteration callback: (iteration, most iterations, validation loss).
Progress = Callable[[int, int, float | None], None]


@dataclass
class Measured:
    """The backtest and everything measured on it."""

    backtest: Backtest
    # CatBoost against the challenger (None when the challenger is off).
    selection: Selection | None
    # The online model against the batch model chosen above (None when it is off).
    online_selection: Selection | None
    # Pooled test scores of the models and rules (not the oracle or the ceiling).
    scores: dict[str, np.ndarray]
    # The true probability of each pooled test row, and the observable ceiling's (None
    # without a simulation).
    oracle: np.ndarray | None
    ceiling: np.ndarray | None
    evaluations: dict[str, Evaluation]
    # One row per scorer: pooled metrics (and expected_roc_auc with a truth table).
    metrics: pd.DataFrame
    # The gate's metric per fold and pooled, a column per scorer.
    folds: pd.DataFrame
    # Calibration errors of the models on the pooled test rows, before and after.
    calibration: pd.DataFrame
    # Whether each scorer and reference gives probabilities (log loss, Brier, calibration).
    is_probability: dict[str, bool]
    # The candidate's ROC-AUC on the pooled rows, with its interval (by customer).
    interval: tuple[float, float, float]

    @property
    def batch_candidate(self) -> str:
        return CATBOOST if self.selection is None else self.selection.chosen

    @property
    def candidate(self) -> str:
        if self.online_selection is not None:
            return self.online_selection.chosen
        return self.batch_candidate

    def selection_sentence(self) -> str:
        if self.selection is None:
            batch = "catboost (the logistic challenger is off: challenger.enabled)"
        else:
            batch = self.selection.sentence()
        if self.online_selection is None:
            return batch
        if self.online_selection.chosen == ONLINE:
            return f"{self.online_selection.sentence()}; of the batch models: {batch}"
        return f"{batch}; {ONLINE}: {self.online_selection.comparison.sentence()}"

    def progressive(self) -> pd.DataFrame | None:
        """The online model's progressive validation on the newest fold's training stream
        (the registered model's); None when the online model is off."""
        if ONLINE not in self.scores:
            return None
        progressive: pd.DataFrame = self.backtest.newest.scorers[ONLINE].progressive_
        return progressive

    @property
    def test(self) -> pd.DataFrame:
        return self.backtest.test


def backtest_all(
    examples: pd.DataFrame,
    params: Parameters,
    progress: Callable[[str, int], Progress],
    as_of: dt.date | None = None,
) -> tuple[Backtest, Tuning | None]:
    """Every scorer fitted on every fold, CatBoost's settings searched first when
    ``tuning.trials`` > 1 (the best trial's fold models are the backtest's);
    ``progress(label, rows)`` gives CatBoost's iteration callback for one fit. The
    windows end no later than ``as_of``, the date the run is for: examples dated after it
    (a future-dated order in raw) are in none."""
    splits = rolling_origin_splits(
        examples,
        folds=params.split.folds,
        end=pd.Timestamp(as_of) if as_of is not None else None,
        **params.split.windows(),
    )
    folds = len(splits)

    def fit_catboost(split: TimeSplit, fold: int, settings: dict[str, Any], label: str) -> Any:
        estimator = params.model.estimator_params()
        estimator["catboost_params"] = {**estimator["catboost_params"], **settings}
        return PropensityModel(**estimator).fit(
            split.train,
            split.train["label"],
            eval_set=(split.validation, split.validation["label"]),
            progress=progress(f"{label}fold {fold} of {folds}", len(split.train)),
            keep_trees=True,
        )

    tuning = None
    fit: dict[str, Callable[[TimeSplit, int], Any]] = {
        CATBOOST: lambda split, fold: fit_catboost(split, fold, {}, "")
    }
    if params.tuning.trials > 1:
        search = params.tuning
        tuning = tune(
            lambda settings, trial: [
                fit_catboost(split, fold, settings, f"trial {trial + 1}, ")
                for fold, split in enumerate(splits, start=1)
            ],
            params.model.catboost,
            {name: Range(r.low, r.high, r.log) for name, r in search.space.items()},
            trials=search.trials,
            timeout_seconds=search.timeout_seconds,
            seed=search.seed,
        )
        tuned = tuning.models
        fit[CATBOOST] = lambda split, fold: tuned[fold - 1]
    if params.challenger.enabled:
        fit[LOGISTIC] = lambda split, fold: LogisticModel(
            **params.challenger.estimator_params()
        ).fit(split.train, split.train["label"])
    if params.online.enabled:
        online = params.online.estimator_params(params.monitoring.label_horizon_days)
        # Progressive validation on the newest fold's stream only (the registered model's,
        # which holds the older folds' streams): it triples the cost of a fit.
        fit[ONLINE] = lambda split, fold: OnlineModel(**online).fit(
            split.train, split.train["label"], progressive=fold == folds
        )
    for rule in rule_baselines(params.evaluation.baseline_group_columns):
        fit[rule.name] = _rule_fitter(rule)
    models = [name for name in BATCH_MODELS if name in fit]
    return run_backtest(splits, fit, calibrate=models, select_trees=CATBOOST), tuning


def _rule_fitter(rule: Any) -> Callable[[TimeSplit, int], Any]:
    def fit(split: TimeSplit, fold: int) -> Any:
        return copy.deepcopy(rule).fit(split.train, split.train["label"])

    return fit


def measure(
    backtest: Backtest,
    params: Parameters,
    oracle: np.ndarray | None,
    ceiling: np.ndarray | None,
) -> Measured:
    """Choose the candidate and measure every scorer on the pooled test rows."""
    evaluation, gate = params.evaluation, params.gate
    test = backtest.test
    y = test["label"].to_numpy(dtype=np.float64)
    customers = test["customer_id"].to_numpy()
    # Ranking metrics count pairs within one test window: each window has its own model.
    folds = test[FOLD].to_numpy()

    def simplest(complex_name: str, simple_name: str) -> Selection:
        return prefer_simpler(
            y,
            backtest.scores[complex_name],
            backtest.scores[simple_name],
            complex_name=complex_name,
            simple_name=simple_name,
            metric=gate.metric,
            margin=gate.margin,
            n_boot=evaluation.bootstrap_samples,
            confidence_level=evaluation.confidence_level,
            seed=gate.seed,
            groups=customers,
            strata=folds,
        )

    selection = simplest(CATBOOST, LOGISTIC) if LOGISTIC in backtest.scores else None
    batch = CATBOOST if selection is None else selection.chosen
    # The online model is the more complex one: what serves is no longer what was gated
    # once it learns, and it needs the outcome feed and its one learner. So it is
    # proposed only when it beats the batch model chosen above beyond doubt.
    online_selection = simplest(ONLINE, batch) if ONLINE in backtest.scores else None
    scores = dict(backtest.scores)
    is_probability = {
        name: bool(getattr(backtest.newest.scorers[name], "is_probability", True))
        for name in scores
    }
    measured = dict(scores)
    for name, values in ((ORACLE, oracle), (CEILING, ceiling)):
        if values is not None:
            measured[name] = values
            is_probability[name] = True
    evaluations = _evaluate_all(y, measured, is_probability, test, evaluation, folds)
    metrics = pd.DataFrame(
        [{"scorer": name, **ev.overall} for name, ev in evaluations.items()]
    ).set_index("scorer")
    if oracle is not None:
        metrics["expected_roc_auc"] = [
            expected_roc_auc(oracle, measured[n], strata=folds) for n in metrics.index
        ]
    chosen = batch if online_selection is None else online_selection.chosen
    return Measured(
        backtest=backtest,
        selection=selection,
        online_selection=online_selection,
        scores=scores,
        oracle=oracle,
        ceiling=ceiling,
        evaluations=evaluations,
        metrics=metrics,
        folds=fold_table(backtest, lambda t, s: metric_value(gate.metric, t, s)),
        calibration=_calibration(backtest, y, evaluation.calibration_bins),
        is_probability=is_probability,
        interval=metric_interval(
            y,
            scores[chosen],
            "roc_auc",
            n_boot=evaluation.bootstrap_samples,
            seed=gate.seed,
            confidence_level=evaluation.confidence_level,
            groups=customers,
            strata=folds,
        ),
    )


def _evaluate_all(
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    is_probability: dict[str, bool],
    test: pd.DataFrame,
    settings: EvaluationSettings,
    folds: np.ndarray,
) -> dict[str, Evaluation]:
    """Every scorer measured overall and per slice on the same test rows, ranking metrics
    within each fold's test window."""
    slices = evaluation_slices(
        test,
        categorical=settings.slices.categorical,
        top_categories=settings.slices.top_categories,
        bucketed={k: list(v) for k, v in settings.slices.bucketed.items()},
    )
    return {
        name: evaluate(
            y,
            score,
            slices,
            top_k_percents=list(settings.top_k_percents),
            min_slice_positives=settings.min_slice_positives,
            probabilities=is_probability[name],
            strata=folds,
        )
        for name, score in scores.items()
    }


def _calibration(backtest: Backtest, y: np.ndarray, bins: int) -> pd.DataFrame:
    """Per model: calibration errors on the pooled test rows before and after Platt
    scaling, and whether every fold's ROC-AUC is unchanged by it (it must be: each fold's
    mapping is increasing; so is the pooled AUC, which counts pairs within a fold); the
    online model, not Platt-scaled, as learnt."""
    rows = []
    folds = backtest.test[FOLD].to_numpy()
    stages = {
        name: (("before", raw), ("after", backtest.scores[name]))
        for name, raw in backtest.uncalibrated.items()
    }
    if ONLINE in backtest.scores:
        stages[ONLINE] = (("as learnt", backtest.scores[ONLINE]),)
    for name, staged in stages.items():
        raw, calibrated = staged[0][1], staged[-1][1]
        unchanged = all(
            metric_value("roc_auc", y[rows_of], raw[rows_of])
            == metric_value("roc_auc", y[rows_of], calibrated[rows_of])
            for rows_of in (backtest.fold_rows(f.number) for f in backtest.folds)
        )
        for stage, values in staged:
            errors = calibration_errors(y, values, bins)
            rows.append(
                {
                    "scorer": name,
                    "scores": stage,
                    "mean score": errors["mean_score"],
                    "rate": errors["rate"],
                    "calibration error (ECE)": errors["ece"],
                    "|rate / mean - 1|": errors["in_the_large"],
                    "roc_auc": metric_value("roc_auc", y, values, folds),
                    "fold AUCs unchanged": unchanged,
                }
            )
    return pd.DataFrame(rows)
