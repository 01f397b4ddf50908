"""Every metric on many weightings of the same rows at once, from a single sort.

Hand-written because no library offers it, and needed twice: ``ml.metrics`` computes
precision and lift in the top k% here (exactly k% of the rows, a tie group straddling the
cut counted fractionally: the expectation over random tie-breaking), and ``ml.bootstrap``
computes every metric on 1,000 resamples here. A resample is a row of per-row counts
(weights); ranking metrics are sums over the tie groups of one sort, so nothing is
re-sorted per resample, where scikit-learn would sort once per resample. With unit
weights the results are scikit-learn's: a tied positive/negative pair counts one half in
ROC-AUC, and average precision moves through whole tie groups.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

LOWER_IS_BETTER = frozenset({"log_loss", "brier"})
# scikit-learn's log_loss clips probabilities to this; the weighted log loss must agree.
_PROBABILITY_EPSILON = float(np.finfo(np.float64).eps)
_TOP_K_METRIC = re.compile(r"^(precision|lift)_at_(\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class TieGroups:
    """Rows sorted by descending score, cut into groups of equal score.

    >>> import numpy as np
    >>> from ml.weighted_metrics import TieGroups
    >>> groups = TieGroups.of(np.array([1.0, 0.0, 1.0]), np.array([0.9, 0.5, 0.5]))
    >>> positives, negatives = groups.sums(np.ones((1, 3)))
    >>> positives.tolist(), negatives.tolist()
    ([[1.0, 1.0]], [[0.0, 1.0]])
    """

    order: npt.NDArray[np.intp]
    starts: npt.NDArray[np.intp]
    y_sorted: FloatArray

    @classmethod
    def of(cls, y: FloatArray, s: FloatArray) -> TieGroups:
        order = np.argsort(-s, kind="stable")
        s_sorted = s[order]
        new_group = np.empty(s.size, dtype=bool)
        new_group[0] = True
        np.not_equal(s_sorted[1:], s_sorted[:-1], out=new_group[1:])
        return cls(order, np.flatnonzero(new_group), y[order])

    def sums(self, weights: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Weighted positives and negatives per tie group; weights are (resamples, rows)."""
        w = weights[:, self.order]
        positives = np.add.reduceat(w * self.y_sorted, self.starts, axis=1)
        negatives = np.add.reduceat(w, self.starts, axis=1) - positives
        return positives, negatives


def _safe_divide(numerator: FloatArray, denominator: FloatArray) -> FloatArray:
    out = np.full(np.broadcast(numerator, denominator).shape, np.nan)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _roc_auc(pos: FloatArray, neg: FloatArray) -> FloatArray:
    total_neg = neg.sum(axis=1, keepdims=True)
    neg_below = total_neg - np.cumsum(neg, axis=1)
    wins = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    return _safe_divide(wins, pos.sum(axis=1) * total_neg[:, 0])


def _average_precision(pos: FloatArray, neg: FloatArray) -> FloatArray:
    true_pos = np.cumsum(pos, axis=1)
    precision = _safe_divide(true_pos, true_pos + np.cumsum(neg, axis=1))
    return _safe_divide(np.nansum(pos * precision, axis=1), pos.sum(axis=1))


def _precision_at(pos: FloatArray, neg: FloatArray, k_percent: float) -> FloatArray:
    size = pos + neg
    total = size.sum(axis=1, keepdims=True)
    cutoff = k_percent * total / 100.0
    before = np.cumsum(size, axis=1) - size
    share_taken = np.clip(_safe_divide(cutoff - before, size), 0.0, 1.0)
    top_positives = np.nansum(share_taken * pos, axis=1)
    return _safe_divide(top_positives, cutoff[:, 0])


def _lift_at(pos: FloatArray, neg: FloatArray, k_percent: float) -> FloatArray:
    rate = _safe_divide(pos.sum(axis=1), (pos + neg).sum(axis=1))
    return _safe_divide(_precision_at(pos, neg, k_percent), rate)


def weighted_metric(
    metric: str, y: FloatArray, s: FloatArray, groups: TieGroups, weights: FloatArray
) -> FloatArray:
    """``metric`` once per row of ``weights`` (resamples x rows), NaN where undefined.

    >>> import numpy as np
    >>> from ml.weighted_metrics import TieGroups, weighted_metric
    >>> y, s = np.array([1.0, 0.0, 1.0, 0.0]), np.array([0.9, 0.5, 0.5, 0.1])
    >>> weights = np.array([[1.0, 1.0, 1.0, 1.0], [0.0, 2.0, 2.0, 0.0]])
    >>> weighted_metric("roc_auc", y, s, TieGroups.of(y, s), weights).tolist()
    [0.875, 0.5]
    """
    if metric in LOWER_IS_BETTER:
        if metric == "log_loss":
            q = np.clip(s, _PROBABILITY_EPSILON, 1.0 - _PROBABILITY_EPSILON)
            per_row = -(y * np.log(q) + (1.0 - y) * np.log1p(-q))
        else:
            per_row = (s - y) ** 2
        return _safe_divide(weights @ per_row, weights.sum(axis=1))
    pos, neg = groups.sums(weights)
    if metric == "roc_auc":
        return _roc_auc(pos, neg)
    if metric == "pr_auc":
        return _average_precision(pos, neg)
    match = _TOP_K_METRIC.match(metric)
    if match is None:
        raise ValueError(
            f"unknown metric {metric!r}: use roc_auc, pr_auc, log_loss, brier, "
            "precision_at_<k> or lift_at_<k>"
        )
    kind, k = match.group(1), float(match.group(2))
    if not 0 < k <= 100:
        raise ValueError(f"{metric}: k must be in (0, 100]")
    return _precision_at(pos, neg, k) if kind == "precision" else _lift_at(pos, neg, k)
