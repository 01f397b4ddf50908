"""Rolling-origin backtest: every scorer fitted and measured on K consecutive test windows.

One test window of four weeks holds a couple of thousand examples: an AUC interval
wider than everything purchase history adds over gender, and an early-stopping window
that picks the number of trees by noise. The backtest fits each scorer once per fold of
``ml.split.rolling_origin_splits`` (its own train window, its own validation window,
then its test window, none seen before), and pools the folds' test rows: K times the
test examples, each scored by a model that never saw it, and a per-fold view of how
stable the model is over time.

What is done per fold, in order:

1. each scorer is fitted by the caller's ``fit`` function (the caller knows the
   estimator's settings and reports progress);
2. the number of trees of the tree model (``select_trees``) is chosen once for all
   folds: the mean of the folds' validation curves peaks there (each fold fitted with
   its trees kept past its own best iteration), and every fold's model is cut to it.
   One validation window of a few hundred positives puts the best iteration anywhere
   between 1 and 135; the mean of K curves does not;
3. the scorers in ``calibrate`` are Platt-scaled on the fold's validation window, the
   most recent labelled days before the test window (``ml.calibration``).

The newest fold's fitted scorers are the ones to deploy: trained on everything up to
the last validation window, calibrated on it, and tested on the last window.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from ml.calibration import Calibrated
from ml.split import TimeSplit

FloatArray = npt.NDArray[np.float64]
FOLD_COLUMN = "fold"


@dataclass
class Fold:
    """One fold: its windows, its fitted scorers and their scores on its test rows."""

    number: int
    split: TimeSplit
    scorers: dict[str, Any]
    # Scores on split.test, calibrated where asked.
    scores: dict[str, FloatArray]
    # Scores of the calibrated scorers before calibration.
    uncalibrated: dict[str, FloatArray] = field(default_factory=dict)
    best_iteration: int | None = None


@dataclass
class Backtest:
    """Every fold, and their test rows pooled (with a ``fold`` column, oldest first)."""

    folds: list[Fold]
    test: pd.DataFrame
    scores: dict[str, FloatArray]
    uncalibrated: dict[str, FloatArray]
    # Trees chosen for ``select_trees`` on the folds' mean validation curve (None: none).
    trees: int | None
    fit_seconds: dict[str, float]
    label_column: str = "label"

    @property
    def newest(self) -> Fold:
        return self.folds[-1]

    def fold_rows(self, number: int) -> npt.NDArray[np.bool_]:
        """The pooled rows of one fold."""
        return np.asarray(self.test[FOLD_COLUMN].to_numpy() == number)


def mean_curve_best(curves: list[FloatArray], higher_is_better: bool = True) -> int:
    """The number of trees at which the mean of the folds' validation curves peaks.

    A fold that stopped early is held at its last value beyond its end (early stopping
    ended it because nothing improved).

    >>> import numpy as np
    >>> from ml.backtest import mean_curve_best
    >>> mean_curve_best([np.array([0.60, 0.62, 0.61]), np.array([0.55, 0.56, 0.58, 0.57])])
    3
    """
    mean = mean_curve(curves)
    best = int(np.argmax(mean) if higher_is_better else np.argmin(mean))
    return best + 1


def mean_curve(curves: list[FloatArray]) -> FloatArray:
    """The folds' validation curves averaged tree by tree, each held at its last value
    past its end."""
    usable = [c for c in curves if c.size]
    if not usable:
        raise ValueError("no validation curves to choose the number of trees from")
    length = max(c.size for c in usable)
    padded = np.vstack([np.pad(c, (0, length - c.size), mode="edge") for c in usable])
    return np.asarray(padded.mean(axis=0), dtype=np.float64)


def run_backtest(
    splits: list[TimeSplit],
    fit: Mapping[str, Callable[[TimeSplit, int], Any]],
    *,
    calibrate: Collection[str] = (),
    select_trees: str | None = None,
    label_column: str = "label",
) -> Backtest:
    """Fit every scorer of ``fit`` (name -> ``fit(split, fold_number)`` returning a fitted
    scorer) on every fold, choose the trees, calibrate, and pool the test scores."""
    if not splits:
        raise ValueError("a backtest needs at least one fold")
    seconds = dict.fromkeys(fit, 0.0)
    fitted: list[dict[str, Any]] = []
    for number, split in enumerate(splits, start=1):
        scorers = {}
        for name, fit_one in fit.items():
            started = time.perf_counter()
            scorers[name] = fit_one(split, number)
            seconds[name] += time.perf_counter() - started
        fitted.append(scorers)

    best_iterations: list[int | None] = [None] * len(splits)
    trees = None
    if select_trees is not None:
        models = [scorers[select_trees] for scorers in fitted]
        best_iterations = [m.best_iteration_ for m in models]
        trees = mean_curve_best([m.validation_curve_ for m in models])
        for model in models:
            model.shrink(trees)

    folds = []
    for number, (split, scorers) in enumerate(zip(splits, fitted, strict=True), start=1):
        uncalibrated = {}
        for name in calibrate:
            uncalibrated[name] = np.asarray(scorers[name].predict_proba(split.test), dtype=float)
            scorers[name] = Calibrated(scorers[name]).fit(
                split.validation, split.validation[label_column]
            )
        scores = {
            name: np.asarray(scorer.predict_proba(split.test), dtype=np.float64)
            for name, scorer in scorers.items()
        }
        best = best_iterations[number - 1]
        folds.append(Fold(number, split, scorers, scores, uncalibrated, best))

    test = pd.concat(
        [fold.split.test.assign(**{FOLD_COLUMN: fold.number}) for fold in folds],
        ignore_index=True,
    )
    return Backtest(
        folds=folds,
        test=test,
        scores={name: np.concatenate([f.scores[name] for f in folds]) for name in fit},
        uncalibrated={
            name: np.concatenate([f.uncalibrated[name] for f in folds]) for name in calibrate
        },
        trees=trees,
        fit_seconds=seconds,
        label_column=label_column,
    )


def fold_table(
    backtest: Backtest, metric: Callable[[FloatArray, FloatArray], float]
) -> pd.DataFrame:
    """One row per fold: its test window, examples, positives, and ``metric`` per scorer
    (columns named after the scorers), then the pooled row."""
    rows = []
    y = backtest.test[backtest.label_column].to_numpy(dtype=np.float64)
    for fold in backtest.folds:
        rows_of = backtest.fold_rows(fold.number)
        w = fold.split.windows
        last = w.test_end - pd.Timedelta(days=1)
        rows.append(
            {
                "fold": str(fold.number),
                "test window": f"{w.test_start:%Y-%m-%d} to {last:%Y-%m-%d}",
                "examples": int(rows_of.sum()),
                "positives": int(y[rows_of].sum()),
                **{s: metric(y[rows_of], v[rows_of]) for s, v in backtest.scores.items()},
            }
        )
    first = backtest.folds[0].split.windows.test_start
    last = backtest.newest.split.windows.test_end - pd.Timedelta(days=1)
    rows.append(
        {
            "fold": "pooled",
            "test window": f"{first:%Y-%m-%d} to {last:%Y-%m-%d}",
            "examples": int(y.size),
            "positives": int(y.sum()),
            **{s: metric(y, v) for s, v in backtest.scores.items()},
        }
    )
    return pd.DataFrame(rows)
