"""Rule baselines ("rules before ML"): what a candidate model must clearly beat.

They share the estimators' interface (``fit(X, y, eval_set=None)`` returning self,
``predict_proba(X)`` returning one score per row, ``name``, ``is_probability``), so the
evaluation code treats a rule and a model alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, Self

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]

# The mart column the share rule reads (a data-contract name, not a tuning choice).
PRIOR_SHARE_COLUMN = "prior_target_brand_share"


class Scorer(Protocol):
    """What evaluation, plots and the promotion gate need from a model or a rule.

    >>> import pandas as pd
    >>> from ml.baselines import OverallRate, Scorer
    >>> X = pd.DataFrame(index=range(4))
    >>> scorer: Scorer = OverallRate().fit(X, [1, 0, 0, 0])
    >>> scorer.name, scorer.is_probability, scorer.predict_proba(X).tolist()
    ('overall_rate', True, [0.25, 0.25, 0.25, 0.25])
    """

    @property
    def name(self) -> str: ...

    @property
    def is_probability(self) -> bool: ...

    def fit(
        self,
        X: pd.DataFrame,
        y: npt.ArrayLike,
        eval_set: tuple[pd.DataFrame, npt.ArrayLike] | None = None,
    ) -> Self: ...

    def predict_proba(self, X: pd.DataFrame) -> FloatArray: ...


def _labels(y: npt.ArrayLike) -> FloatArray:
    labels = np.asarray(y, dtype=np.float64).ravel()
    if labels.size == 0:
        raise ValueError("cannot fit on zero examples")
    return labels


def _check_fitted(estimator: object, attribute: str) -> None:
    if not hasattr(estimator, attribute):
        raise RuntimeError(f"{type(estimator).__name__} is not fitted: call fit first")


class OverallRate:
    """Everyone gets the training label rate: the floor every ranking must beat.

    >>> import pandas as pd
    >>> from ml.baselines import OverallRate
    >>> rule = OverallRate().fit(pd.DataFrame(index=range(5)), [1, 0, 0, 1, 0])
    >>> rule.rate_, rule.predict_proba(pd.DataFrame(index=range(2))).tolist()
    (0.4, [0.4, 0.4])
    """

    is_probability = True

    @property
    def name(self) -> str:
        return "overall_rate"

    def fit(
        self,
        X: pd.DataFrame,
        y: npt.ArrayLike,
        eval_set: tuple[pd.DataFrame, npt.ArrayLike] | None = None,
    ) -> Self:
        """Learn the positive rate; ``X`` and ``eval_set`` are accepted for the interface."""
        self.rate_ = float(_labels(y).mean())
        return self

    def predict_proba(self, X: pd.DataFrame) -> FloatArray:
        """Probability of a positive next order, one per row of ``X``."""
        _check_fitted(self, "rate_")
        return np.full(len(X), self.rate_, dtype=np.float64)


class RateByGroup:
    """The training label rate of the row's group in ``column`` (e.g. gender).

    Unseen and NULL groups get the overall rate: a rule must score everyone, and the
    overall rate is the honest guess for a group it knows nothing about.

    >>> import pandas as pd
    >>> from ml.baselines import RateByGroup
    >>> train = pd.DataFrame({"gender": ["F", "F", "M", "M", None]})
    >>> rule = RateByGroup("gender").fit(train, [1, 1, 0, 1, 0])
    >>> rule.name, rule.group_rates_
    ('rate_by_gender', {'F': 1.0, 'M': 0.5})
    >>> rule.predict_proba(pd.DataFrame({"gender": ["M", "X", None]})).tolist()
    [0.5, 0.6, 0.6]
    """

    is_probability = True

    def __init__(self, column: str) -> None:
        self.column = column

    @property
    def name(self) -> str:
        return f"rate_by_{self.column}"

    def fit(
        self,
        X: pd.DataFrame,
        y: npt.ArrayLike,
        eval_set: tuple[pd.DataFrame, npt.ArrayLike] | None = None,
    ) -> Self:
        """Learn the positive rate of every non-NULL group and the overall rate."""
        labels = _labels(y)
        if len(X) != labels.size:
            raise ValueError(f"X has {len(X)} rows but y has {labels.size} labels")
        groups = pd.Series(X[self.column].to_numpy(dtype=object), dtype=object)
        frame = pd.DataFrame({"group": groups, "label": labels}).dropna(subset=["group"])
        rates = frame.groupby("group")["label"].mean()
        self.overall_rate_ = float(labels.mean())
        self.group_rates_: dict[object, float] = {k: float(v) for k, v in rates.items()}
        return self

    def predict_proba(self, X: pd.DataFrame) -> FloatArray:
        """The row's group rate, or the overall rate for an unseen or NULL group."""
        _check_fitted(self, "group_rates_")
        groups = pd.Series(X[self.column].to_numpy(dtype=object), dtype=object)
        rates = groups.map(
            lambda g: (
                self.group_rates_.get(g, self.overall_rate_) if pd.notna(g) else self.overall_rate_
            )
        )
        return rates.to_numpy(dtype=np.float64)


class PriorShareRule:
    """Score = the customer's prior share of target-brand items (the loyalty rule).

    It learns nothing and is a ranking, not a probability: its log loss and Brier are not
    reported (see ``ml.metrics``). A missing share (no known prior items) scores 0.

    >>> import pandas as pd
    >>> from ml.baselines import PriorShareRule
    >>> X = pd.DataFrame({"prior_target_brand_share": [0.5, None, 1.0]})
    >>> PriorShareRule().fit(X, [1, 0, 1]).predict_proba(X).tolist()
    [0.5, 0.0, 1.0]
    """

    is_probability = False

    def __init__(self, column: str = PRIOR_SHARE_COLUMN) -> None:
        self.column = column

    @property
    def name(self) -> str:
        return "prior_share_rule"

    def fit(
        self,
        X: pd.DataFrame,
        y: npt.ArrayLike,
        eval_set: tuple[pd.DataFrame, npt.ArrayLike] | None = None,
    ) -> Self:
        """Nothing to learn; kept so rules and models are fitted alike."""
        self.fitted_ = True
        return self

    def predict_proba(self, X: pd.DataFrame) -> FloatArray:
        """The prior target-brand share of each row, 0 when missing."""
        _check_fitted(self, "fitted_")
        share = pd.to_numeric(X[self.column], errors="raise").astype("float64")
        return np.asarray(share.fillna(0.0).to_numpy(), dtype=np.float64)


def rule_baselines(group_columns: Sequence[str]) -> list[Scorer]:
    """Every rule a candidate must beat: the overall rate, the rate per each of
    ``group_columns`` (parameters.yaml ``evaluation.baseline_group_columns``) and the
    prior-share rule.

    >>> from ml.baselines import rule_baselines
    >>> [rule.name for rule in rule_baselines(["gender", "country"])]
    ['overall_rate', 'rate_by_gender', 'rate_by_country', 'prior_share_rule']
    """
    return [OverallRate(), *(RateByGroup(column) for column in group_columns), PriorShareRule()]
