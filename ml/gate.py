"""The promotion gate: when does a candidate replace the champion?

A candidate is promoted only when, on the same test rows, it beats *every* contender (each
rule baseline and the current champion) on the gate's metric by at least ``margin``, and
the paired bootstrap interval of the difference lies entirely on the candidate's side of
zero. Anything less keeps the champion, and the decision says which contender stopped it
and why, with the numbers.

The gate also says when the test rows could not have shown a difference that matters:
when the comparison is inconclusive and the smallest difference these rows detect (80%
power, ``ml.bootstrap``) is larger than the margin, the verdict is "not enough test data
to decide", not "no better". Examples of one customer are resampled together
(``groups``), and a contender can be compared on a subset of the rows (``rows``: the
champion only on rows it was not trained on).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from ml.bootstrap import paired_bootstrap_difference
from ml.metrics import metric_value


@dataclass(frozen=True)
class Comparison:
    """The candidate against one contender on the gate's metric.

    ``improvement`` is oriented so that positive always means "the candidate is better"
    (for log loss and Brier it is contender minus candidate), and so are ``lower`` and
    ``upper``, the bootstrap interval of the improvement.

    >>> from ml.gate import Comparison
    >>> close = Comparison("champion", "roc_auc", 0.712, 0.709, 0.003, -0.002, 0.008, 0.95, 0.005)
    >>> close.beaten, close.describe()
    (False, 'champion: roc_auc 0.7120 vs 0.7090 (+0.0030, 95% CI [-0.0020, +0.0080])')
    >>> close.why_not()
    'no better: the interval includes zero'
    >>> close.sentence()
    'no better than champion (roc_auc +0.0030, 95% CI -0.0020 to +0.0080)'
    >>> worse = Comparison("rate_by_gender", "roc_auc", 0.57, 0.59, -0.02, -0.036, -0.002, 0.95, 0.0)
    >>> worse.verdict, worse.sentence()
    ('worse', 'worse than rate_by_gender (roc_auc -0.0200, 95% CI -0.0360 to -0.0020)')
    """

    contender: str
    metric: str
    candidate_value: float
    contender_value: float
    improvement: float
    lower: float
    upper: float
    confidence_level: float
    margin: float
    # The smallest improvement these rows detect with 80% power (NaN: unknown).
    detectable_difference: float = float("nan")
    # Test rows the comparison was made on.
    rows: int = 0

    @property
    def underpowered(self) -> bool:
        """The rows could not reliably show an improvement as large as the margin."""
        return bool(self.detectable_difference > max(self.margin, 0.0))

    @property
    def clears_margin(self) -> bool:
        return self.improvement >= self.margin

    @property
    def significant(self) -> bool:
        return self.lower > 0

    @property
    def beaten(self) -> bool:
        return self.clears_margin and self.significant

    def describe(self) -> str:
        level = round(self.confidence_level * 100)
        return (
            f"{self.contender}: {self.metric} {self.candidate_value:.4f} vs "
            f"{self.contender_value:.4f} ({self.improvement:+.4f}, {level}% CI "
            f"[{self.lower:+.4f}, {self.upper:+.4f}])"
        )

    @property
    def verdict(self) -> str:
        """One word for the comparison: ``better`` (beaten), ``worse`` (the whole interval
        is below zero: significantly worse), ``undecided`` (the interval includes zero
        and the rows could not detect a difference as large as the margin), ``no
        better`` (the interval includes zero) or ``not enough better`` (significantly
        better, but by less than the margin)."""
        if self.upper < 0:
            return "worse"
        if not self.significant:
            return "undecided" if self.underpowered else "no better"
        if not self.clears_margin:
            return "not enough better"
        return "better"

    def interval(self) -> str:
        level = round(self.confidence_level * 100)
        return (
            f"{self.metric} {self.improvement:+.4f}, {level}% CI "
            f"{self.lower:+.4f} to {self.upper:+.4f}"
        )

    def sentence(self) -> str:
        """The comparison in words with its interval, e.g. ``worse than rate_by_gender
        (roc_auc -0.0200, 95% CI -0.0360 to -0.0020)``."""
        if self.verdict == "not enough better":
            return (
                f"better than {self.contender} by less than the margin {self.margin:g} "
                f"({self.interval()})"
            )
        if self.verdict == "undecided":
            return (
                f"not enough test data to decide against {self.contender} "
                f"({self.interval()}; {self.rows:,} test rows detect only differences of "
                f"{self.detectable_difference:.4f} or more, the margin is {self.margin:g})"
            )
        return f"{self.verdict} than {self.contender} ({self.interval()})"

    def why_not(self) -> str:
        """Why this contender is not beaten ("" when it is)."""
        return {
            "better": "",
            "worse": "significantly worse: the whole interval is below zero",
            "no better": "no better: the interval includes zero",
            "undecided": (
                "not enough test data to decide: the interval includes zero and these rows "
                f"detect only differences of {self.detectable_difference:.4f} or more"
            ),
            "not enough better": f"better, but by less than the margin {self.margin:g}",
        }[self.verdict]


@dataclass(frozen=True)
class GateDecision:
    """Whether the candidate is promoted, why, and its comparison with every contender.

    >>> from ml.gate import Comparison, GateDecision
    >>> rule = Comparison("overall_rate", "roc_auc", 0.71, 0.5, 0.21, 0.18, 0.24, 0.95, 0.005)
    >>> decision = GateDecision(True, "promoted", "roc_auc", (rule,))
    >>> decision.as_dict()["comparisons"][0]["beaten"]
    True
    """

    promote: bool
    reason: str
    metric: str
    comparisons: tuple[Comparison, ...]

    def as_dict(self) -> dict[str, Any]:
        """JSON-able: what the registry records next to the candidate."""
        return {
            "promote": self.promote,
            "reason": self.reason,
            "metric": self.metric,
            "comparisons": [
                {**asdict(c), "beaten": c.beaten, "why_not": c.why_not()} for c in self.comparisons
            ],
        }


def decide(
    y_true: npt.ArrayLike,
    candidate: npt.ArrayLike,
    contenders: Mapping[str, npt.ArrayLike],
    *,
    metric: str,
    margin: float,
    n_boot: int,
    confidence_level: float,
    seed: int,
    groups: npt.ArrayLike | None = None,
    rows: Mapping[str, npt.ArrayLike] | None = None,
    strata: npt.ArrayLike | None = None,
) -> GateDecision:
    """Compare ``candidate`` scores with each contender's scores on the same rows.

    ``groups`` (e.g. customer ids) makes the bootstrap resample groups, not rows;
    ``rows`` maps a contender to a boolean mask of the rows it is compared on;
    ``strata`` (e.g. the backtest fold of each row) makes ranking metrics compare rows
    only within a stratum.

    >>> from ml.gate import decide
    >>> decision = decide(
    ...     [0, 1] * 10,
    ...     [0.1, 0.9] * 10,
    ...     {"overall_rate": [0.5] * 20},
    ...     metric="roc_auc",
    ...     margin=0.01,
    ...     n_boot=200,
    ...     confidence_level=0.95,
    ...     seed=0,
    ... )
    >>> decision.promote, decision.comparisons[0].describe()
    (True, 'overall_rate: roc_auc 1.0000 vs 0.5000 (+0.5000, 95% CI [+0.5000, +0.5000])')
    """
    if not contenders:
        raise ValueError("the gate needs at least one contender (a baseline) to compare with")
    if margin < 0 or not math.isfinite(margin):
        raise ValueError(f"margin must be a non-negative number, not {margin}")
    y_all = np.asarray(y_true, dtype=np.float64)
    candidate_all = np.asarray(candidate, dtype=np.float64)
    keys = None if groups is None else np.asarray(groups).ravel()
    strata_all = None if strata is None else np.asarray(strata).ravel()
    comparisons = []
    for name, contender in contenders.items():
        scores = np.asarray(contender, dtype=np.float64)
        mask = np.ones(y_all.size, dtype=bool)
        if rows is not None and name in rows:
            mask = np.asarray(rows[name], dtype=bool).ravel()
            if mask.size != y_all.size:
                raise ValueError(f"rows[{name!r}] has {mask.size} entries for {y_all.size} rows")
        if not mask.any():
            raise ValueError(f"no test rows to compare with {name}")
        y, a, b = y_all[mask], candidate_all[mask], scores[mask]
        strata_here = None if strata_all is None else strata_all[mask]
        diff = paired_bootstrap_difference(
            y,
            a,
            b,
            metric,
            n_boot=n_boot,
            seed=seed,
            confidence_level=confidence_level,
            groups=None if keys is None else keys[mask],
            strata=strata_here,
        )
        # diff is metric(candidate) - metric(contender); orient it so positive is better.
        sign = 1.0 if diff.higher_is_better else -1.0
        bounds = sorted((sign * diff.lower, sign * diff.upper))
        comparisons.append(
            Comparison(
                contender=name,
                metric=metric,
                candidate_value=metric_value(metric, y, a, strata_here),
                contender_value=metric_value(metric, y, b, strata_here),
                improvement=sign * diff.difference,
                lower=bounds[0],
                upper=bounds[1],
                confidence_level=confidence_level,
                margin=margin,
                detectable_difference=diff.detectable_difference,
                rows=int(y.size),
            )
        )
    return GateDecision(
        promote=all(c.beaten for c in comparisons),
        reason=gate_sentence(comparisons),
        metric=metric,
        comparisons=tuple(comparisons),
    )


def gate_sentence(comparisons: list[Comparison]) -> str:
    """The decision as one short sentence, naming the contender that matters with its
    interval: the closest one when promoted, the one the candidate did worst against when
    not (the others that also stop it are counted, and listed in ``comparisons``).

    >>> from ml.gate import Comparison, gate_sentence
    >>> rule = Comparison("rate_by_gender", "roc_auc", 0.60, 0.57, 0.03, 0.01, 0.05, 0.95, 0.005)
    >>> gate_sentence([rule])
    'promoted: better than every contender by at least 0.005; closest rate_by_gender (roc_auc +0.0300, 95% CI +0.0100 to +0.0500)'
    >>> tie = Comparison("champion", "roc_auc", 0.60, 0.60, 0.0, -0.01, 0.01, 0.95, 0.005)
    >>> gate_sentence([rule, tie])
    'not promoted: no better than champion (roc_auc +0.0000, 95% CI -0.0100 to +0.0100)'
    """
    closest = min(comparisons, key=lambda c: c.improvement)
    if closest.beaten:
        return (
            f"promoted: better than every contender by at least {closest.margin:g}; "
            f"closest {closest.contender} ({closest.interval()})"
        )
    blocking = [c for c in comparisons if not c.beaten]
    worst = min(blocking, key=_severity)
    sentence = f"not promoted: {worst.sentence()}"
    others = len(blocking) - 1
    if others:
        sentence += f"; {others} other contender{'s' if others > 1 else ''} also not beaten"
    return sentence


def _severity(c: Comparison) -> tuple[int, float]:
    """Worse first, then no better, then not enough better; then the smaller gain."""
    order = {"worse": 0, "no better": 1, "undecided": 2, "not enough better": 3, "better": 4}
    return order[c.verdict], c.improvement
