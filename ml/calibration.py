"""Calibrated scores: a scorer's probabilities mapped so that they track the recent rate.

Training is mostly older history; when the world drifts (a campaign raises the rate of
target-brand orders) a model still ranks well but its probabilities are off: the mean
score no longer predicts how many customers will buy. ``Calibrated`` refits only the
mapping, on the most recent labelled window the model did not learn from, with Platt
scaling: ``p' = sigmoid(a * logit(p) + b)``. Platt, not isotonic regression: with a > 0
it is strictly increasing, so every ranking metric (ROC-AUC, lift, the audience) is
exactly unchanged; isotonic regression would merge scores into ties and move them.
When the fitted slope is not positive (the window says the scores rank backwards, or
nothing) only the intercept is refitted, which also keeps the order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.linear_model import LogisticRegression  # type: ignore[import-untyped]

from ml.metrics import _labels_and_scores, calibration_table

FloatArray = npt.NDArray[np.float64]
# Scores are clipped this far from 0 and 1 before the logit.
_EPSILON = 1e-6


def _logit(p: FloatArray) -> FloatArray:
    q = np.clip(p, _EPSILON, 1 - _EPSILON)
    return np.asarray(np.log(q / (1 - q)), dtype=np.float64)


@dataclass
class Calibrated:
    """``base`` with its probabilities Platt-scaled; a scorer like any other.

    >>> import numpy as np, pandas as pd
    >>> from ml.baselines import OverallRate
    >>> from ml.calibration import Calibrated
    >>> X = pd.DataFrame(index=range(4))
    >>> base = OverallRate().fit(X, [1, 0, 0, 0])
    >>> calibrated = Calibrated(base).fit(X, [1, 1, 0, 0])
    >>> calibrated.name, round(float(calibrated.predict_proba(X)[0]), 3)
    ('overall_rate', 0.5)
    """

    base: Any
    slope: float = 1.0
    intercept: float = 0.0
    # Examples the mapping was fitted on, and whether the slope had to be fixed at 1.
    fitted_on: int = 0
    slope_fixed: bool = False

    @property
    def name(self) -> str:
        return str(self.base.name)

    @property
    def is_probability(self) -> bool:
        return True

    def fit(self, X: pd.DataFrame, y: npt.ArrayLike) -> Self:
        """Fit the mapping on a calibration window (``base`` is already fitted)."""
        labels, raw = _labels_and_scores(y, self.base.predict_proba(X))
        if np.unique(labels).size < 2:
            raise ValueError(
                f"calibration needs both labels in its window ({labels.size} examples)"
            )
        z = _logit(raw).reshape(-1, 1)
        platt = LogisticRegression(C=1e6, max_iter=1000).fit(z, labels)
        slope, intercept = float(platt.coef_[0, 0]), float(platt.intercept_[0])
        self.slope_fixed = not slope > 0
        if self.slope_fixed:
            slope, intercept = 1.0, _intercept_only(z.ravel(), labels)
        self.slope, self.intercept, self.fitted_on = slope, intercept, int(labels.size)
        return self

    def predict_proba(self, X: pd.DataFrame) -> FloatArray:
        raw = np.asarray(self.base.predict_proba(X), dtype=np.float64)
        return self.map(raw)

    def map(self, raw: npt.ArrayLike) -> FloatArray:
        """The mapping applied to scores of ``base``."""
        z = self.slope * _logit(np.asarray(raw, dtype=np.float64)) + self.intercept
        return np.asarray(1.0 / (1.0 + np.exp(-z)), dtype=np.float64)

    def __getattr__(self, name: str) -> Any:
        # What the base model offers beyond scoring (feature importance, iterations).
        if name.startswith("__") or name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)


def _intercept_only(z: FloatArray, labels: FloatArray) -> float:
    """The shift of the logits that makes the mean probability the window's rate."""
    target = float(labels.mean())
    low, high = -20.0, 20.0
    for _ in range(100):
        middle = (low + high) / 2
        if float(np.mean(1 / (1 + np.exp(-(z + middle))))) < target:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def calibration_errors(
    y_true: npt.ArrayLike, probability: npt.ArrayLike, bins: int
) -> dict[str, float]:
    """How far probabilities are from the rates they predict.

    ``ece``: expected calibration error, the row-weighted mean over equal-count bins of
    |rate - mean score|; ``in_the_large``: |rate / mean score - 1| over all rows (as
    monitoring measures it); ``mean_score`` and ``rate`` themselves.

    >>> from ml.calibration import calibration_errors
    >>> errors = calibration_errors([0, 0, 1, 1], [0.25, 0.25, 0.75, 0.75], bins=2)
    >>> errors["ece"], errors["in_the_large"]
    (0.25, 0.0)
    """
    y, p = _labels_and_scores(y_true, probability)
    table = calibration_table(y, p, bins)
    weights = table["count"] / table["count"].sum()
    ece = float((weights * (table["observed_rate"] - table["mean_score"]).abs()).sum())
    mean_score, rate = float(p.mean()), float(y.mean())
    return {
        "ece": ece,
        "in_the_large": abs(rate / mean_score - 1) if mean_score > 0 else float("nan"),
        "mean_score": mean_score,
        "rate": rate,
    }
