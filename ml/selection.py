"""Which of two candidate models goes to the promotion gate: the simplest model that wins.

A logistic regression of a handful of coefficients and CatBoost with text features often
rank alike within what the test rows can tell. The complex model is proposed only when it
beats the simple one as a candidate must beat a contender at the gate (``ml.gate``: by
the margin, with a bootstrap interval above zero); otherwise the simple one is, and the
sentence says why.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy.typing as npt

from ml.gate import Comparison, decide


@dataclass(frozen=True)
class Selection:
    """Which of two candidates goes to the gate: the simpler one unless the more complex
    one is better beyond doubt.

    >>> from ml.gate import Comparison
    >>> from ml.selection import Selection
    >>> tie = Comparison("logistic", "roc_auc", 0.581, 0.579, 0.002, -0.004, 0.008, 0.95, 0.005)
    >>> Selection("logistic", "catboost", "logistic", tie).sentence()
    'logistic (simpler); catboost: no better than logistic (roc_auc +0.0020, 95% CI -0.0040 to +0.0080)'
    """

    chosen: str
    complex: str
    simple: str
    # The complex candidate against the simple one.
    comparison: Comparison

    def sentence(self) -> str:
        if self.chosen == self.complex:
            return f"{self.complex}: {self.comparison.sentence()}"
        return f"{self.simple} (simpler); {self.complex}: {self.comparison.sentence()}"


def prefer_simpler(
    y_true: npt.ArrayLike,
    complex_scores: npt.ArrayLike,
    simple_scores: npt.ArrayLike,
    *,
    complex_name: str,
    simple_name: str,
    metric: str,
    margin: float,
    n_boot: int,
    confidence_level: float,
    seed: int,
    groups: npt.ArrayLike | None = None,
    strata: npt.ArrayLike | None = None,
) -> Selection:
    """The simplest model that wins: ``complex_name`` is chosen only when it beats
    ``simple_name`` as a candidate must beat a contender at the gate (by the margin, with
    an interval above zero); otherwise the simpler model, which ranks as well within what
    the test rows can tell, is.

    >>> from ml.selection import prefer_simpler
    >>> y = [0, 1] * 50
    >>> same = [0.2, 0.8] * 50
    >>> prefer_simpler(y, same, same, complex_name="catboost", simple_name="logistic",
    ...     metric="roc_auc", margin=0.005, n_boot=100, confidence_level=0.95, seed=0).chosen
    'logistic'
    """
    decision = decide(
        y_true,
        complex_scores,
        {simple_name: simple_scores},
        metric=metric,
        margin=margin,
        n_boot=n_boot,
        confidence_level=confidence_level,
        seed=seed,
        groups=groups,
        strata=strata,
    )
    (comparison,) = decision.comparisons
    chosen = complex_name if comparison.beaten else simple_name
    return Selection(chosen, complex_name, simple_name, comparison)
