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
    # The first tie group of each stratum ([0] without strata), and each group's stratum.
    blocks: npt.NDArray[np.intp]
    block_of_group: npt.NDArray[np.intp]

    @classmethod
    def of(cls, y: FloatArray, s: FloatArray, strata: npt.ArrayLike | None = None) -> TieGroups:
        """Groups of equal score, by descending score within each stratum (``strata``: one
        key per row, or None for one stratum)."""
        if strata is None:
            codes = np.zeros(s.size, dtype=np.intp)
        else:
            keys = np.asarray(strata).ravel()
            if keys.size != s.size:
                raise ValueError(f"strata has {keys.size} keys for {s.size} rows")
            codes = np.unique(keys, return_inverse=True)[1].ravel()
        order = np.lexsort((-s, codes))
        s_sorted, codes_sorted = s[order], codes[order]
        new_block = np.empty(s.size, dtype=bool)
        new_block[0] = True
        np.not_equal(codes_sorted[1:], codes_sorted[:-1], out=new_block[1:])
        new_group = new_block.copy()
        new_group[1:] |= s_sorted[1:] != s_sorted[:-1]
        starts = np.flatnonzero(new_group)
        block_of_group = np.cumsum(new_block[starts]) - 1
        blocks = np.flatnonzero(new_block[starts])
        return cls(order, starts, y[order], blocks, block_of_group)

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


def _cumulative(values: FloatArray, groups: TieGroups) -> FloatArray:
    """Running sums over the tie groups (resamples x groups), restarting at each stratum."""
    running = np.cumsum(values, axis=1)
    if groups.blocks.size == 1:
        return running
    before_block = (running - values)[:, groups.blocks]
    return running - before_block[:, groups.block_of_group]


def _per_block(values: FloatArray, groups: TieGroups) -> FloatArray:
    """Totals per stratum (resamples x strata)."""
    return np.add.reduceat(values, groups.blocks, axis=1)


def _roc_auc(pos: FloatArray, neg: FloatArray, groups: TieGroups) -> FloatArray:
    total_neg = _per_block(neg, groups)
    neg_below = total_neg[:, groups.block_of_group] - _cumulative(neg, groups)
    wins = (pos * (neg_below + 0.5 * neg)).sum(axis=1)
    pairs = (_per_block(pos, groups) * total_neg).sum(axis=1)
    return _safe_divide(wins, pairs)


def _average_precision(pos: FloatArray, neg: FloatArray, groups: TieGroups) -> FloatArray:
    true_pos = _cumulative(pos, groups)
    precision = _safe_divide(true_pos, true_pos + _cumulative(neg, groups))
    return _safe_divide(np.nansum(pos * precision, axis=1), pos.sum(axis=1))


def _precision_at(
    pos: FloatArray, neg: FloatArray, groups: TieGroups, k_percent: float
) -> FloatArray:
    size = pos + neg
    cutoff = k_percent * _per_block(size, groups) / 100.0
    before = _cumulative(size, groups) - size
    share_taken = np.clip(_safe_divide(cutoff[:, groups.block_of_group] - before, size), 0.0, 1.0)
    top_positives = np.nansum(share_taken * pos, axis=1)
    return _safe_divide(top_positives, cutoff.sum(axis=1))


def _lift_at(pos: FloatArray, neg: FloatArray, groups: TieGroups, k_percent: float) -> FloatArray:
    rate = _safe_divide(pos.sum(axis=1), (pos + neg).sum(axis=1))
    return _safe_divide(_precision_at(pos, neg, groups, k_percent), rate)


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
        return _roc_auc(pos, neg, groups)
    if metric == "pr_auc":
        return _average_precision(pos, neg, groups)
    match = _TOP_K_METRIC.match(metric)
    if match is None:
        raise ValueError(
            f"unknown metric {metric!r}: use roc_auc, pr_auc, log_loss, brier, "
            "precision_at_<k> or lift_at_<k>"
        )
    kind, k = match.group(1), float(match.group(2))
    if not 0 < k <= 100:
        raise ValueError(f"{metric}: k must be in (0, 100]")
    if kind == "precision":
        return _precision_at(pos, neg, groups, k)
    return _lift_at(pos, neg, groups, k)
