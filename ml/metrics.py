"""Metrics on (y_true, score): ranking, probability quality, lift, slices, paired bootstrap.

Marketing mails the top of the list, so beyond ROC-AUC what matters is precision and lift
in the top k% and, because scores are published as probabilities, log loss, Brier and
calibration. Every ranking metric here is computed from tie groups of the sorted scores
with per-row weights: unit weights give the plain metric, bootstrap resample counts give
the metric on a resample without re-sorting, which is what makes 1,000 paired resamples of
50k rows take seconds.

Ties are handled deterministically and independently of row order: AUC counts a tied
positive/negative pair as one half, average precision moves through whole tie groups (as
scikit-learn does), and the top k% is exactly k% of the rows, a tie group straddling the
boundary being counted fractionally (the expectation over random tie-breaking).

Scores that are not probabilities (e.g. the prior-share rule) have ranking metrics but no
log loss or Brier: ``evaluate(..., probabilities=False)`` reports those as NaN rather than
punishing a rule for a scale it never claimed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

FloatArray = npt.NDArray[np.float64]

# Keeps log loss finite for a confident wrong 0 or 1; not a tuning knob.
_PROBABILITY_EPSILON = 1e-15
# Bootstrap weight matrices are built in chunks of about this many cells (8 bytes each).
_BOOTSTRAP_CHUNK_CELLS = 2_000_000
_TOP_K_METRIC = re.compile(r"^(precision|lift)_at_(\d+(?:\.\d+)?)$")
_LOWER_IS_BETTER = frozenset({"log_loss", "brier"})
_NULL_SLICE = "NULL"
_METRIC_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")


# --------------------------------------------------------------------------- inputs


def _labels_and_scores(
    y_true: npt.ArrayLike, score: npt.ArrayLike
) -> tuple[FloatArray, FloatArray]:
    y = np.asarray(y_true, dtype=np.float64).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(f"y_true has {y.size} values but score has {s.size}")
    if y.size == 0:
        raise ValueError("no examples to evaluate")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y_true must hold only 0 and 1")
    if not np.isfinite(s).all():
        raise ValueError(f"score holds {int((~np.isfinite(s)).sum())} missing or infinite values")
    return y, s


@dataclass(frozen=True)
class _Ranked:
    """Rows sorted by descending score, cut into groups of equal score."""

    order: npt.NDArray[np.intp]
    group_starts: npt.NDArray[np.intp]
    y_sorted: FloatArray
    score_sorted: FloatArray

    @classmethod
    def of(cls, y: FloatArray, s: FloatArray) -> _Ranked:
        order = np.argsort(-s, kind="stable")
        s_sorted = s[order]
        new_group = np.empty(s.size, dtype=bool)
        new_group[0] = True
        np.not_equal(s_sorted[1:], s_sorted[:-1], out=new_group[1:])
        return cls(order, np.flatnonzero(new_group), y[order], s_sorted)

    def group_sums(self, weights: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Weighted positives and negatives per tie group; weights are (resamples, rows)."""
        w = weights[:, self.order]
        positives = np.add.reduceat(w * self.y_sorted, self.group_starts, axis=1)
        negatives = np.add.reduceat(w, self.group_starts, axis=1) - positives
        return positives, negatives


# ------------------------------------------------------------- weighted metric kernels


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


def _log_loss_rows(y: FloatArray, p: FloatArray) -> FloatArray:
    q = np.clip(p, _PROBABILITY_EPSILON, 1.0 - _PROBABILITY_EPSILON)
    return np.asarray(-(y * np.log(q) + (1.0 - y) * np.log1p(-q)), dtype=np.float64)


def _metric_on_weights(
    metric: str, y: FloatArray, s: FloatArray, ranked: _Ranked, weights: FloatArray
) -> FloatArray:
    """One metric per row of ``weights`` (resamples x examples)."""
    if metric in _LOWER_IS_BETTER:
        per_row = _log_loss_rows(y, s) if metric == "log_loss" else (s - y) ** 2
        return _safe_divide(weights @ per_row, weights.sum(axis=1))
    pos, neg = ranked.group_sums(weights)
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


def _metric(metric: str, y_true: npt.ArrayLike, score: npt.ArrayLike) -> float:
    y, s = _labels_and_scores(y_true, score)
    return float(_metric_on_weights(metric, y, s, _Ranked.of(y, s), np.ones((1, y.size)))[0])


# ------------------------------------------------------------------ public metrics


def higher_is_better(metric: str) -> bool:
    """False for the losses (log loss, Brier), True for every other metric."""
    return metric not in _LOWER_IS_BETTER


def metric_value(metric: str, y_true: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """Any metric by its name in `metric_names` (e.g. "roc_auc", "lift_at_10")."""
    return _metric(metric, y_true, score)


def roc_auc(y_true: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """Probability that a random positive outscores a random negative (ties count half)."""
    return _metric("roc_auc", y_true, score)


def average_precision(y_true: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """PR-AUC as average precision (scikit-learn's definition, whole tie groups)."""
    return _metric("pr_auc", y_true, score)


def log_loss(y_true: npt.ArrayLike, probability: npt.ArrayLike) -> float:
    """Mean negative log-likelihood; only meaningful when scores are probabilities."""
    return _metric("log_loss", y_true, probability)


def brier_score(y_true: npt.ArrayLike, probability: npt.ArrayLike) -> float:
    """Mean squared error of probabilities; only meaningful for probabilities."""
    return _metric("brier", y_true, probability)


def precision_at_top(y_true: npt.ArrayLike, score: npt.ArrayLike, k_percent: float) -> float:
    """Share of positives among the top ``k_percent`` % of scores (ties fractional)."""
    return _metric(f"precision_at_{k_percent:g}", y_true, score)


def lift_at_top(y_true: npt.ArrayLike, score: npt.ArrayLike, k_percent: float) -> float:
    """Precision in the top ``k_percent`` % divided by the overall positive rate."""
    return _metric(f"lift_at_{k_percent:g}", y_true, score)


def calibration_table(y_true: npt.ArrayLike, score: npt.ArrayLike, bins: int) -> pd.DataFrame:
    """Equal-count score bins (lowest first): count, mean score, observed positive rate.

    Rows are binned by their average rank, so equal scores always share a bin and the
    table does not depend on row order; with heavy ties some bins are empty and omitted.
    """
    y, s = _labels_and_scores(y_true, score)
    if bins < 1:
        raise ValueError("bins must be at least 1")
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    average_position = (np.cumsum(counts) - counts + (counts - 1) / 2.0)[inverse]
    bin_of_row = np.minimum((average_position * bins / s.size).astype(np.int64), bins - 1)
    frame = pd.DataFrame({"bin": bin_of_row + 1, "score": s, "label": y})
    table = frame.groupby("bin", sort=True).agg(
        count=("label", "size"),
        mean_score=("score", "mean"),
        observed_rate=("label", "mean"),
        min_score=("score", "min"),
        max_score=("score", "max"),
    )
    return table.reset_index()


# ---------------------------------------------------------------------- evaluation


@dataclass(frozen=True)
class Evaluation:
    """Overall metrics and the same metrics per slice value."""

    overall: dict[str, float]
    # One row per (slice, value): columns slice, value, n, positives, then the metrics.
    by_slice: pd.DataFrame

    def flat(self) -> dict[str, float]:
        """One flat mapping (``roc_auc``, ``gender.F.roc_auc``...), e.g. for MLflow.

        Characters MLflow refuses in metric names (city names hold apostrophes and
        accents) become ``_`` in the slice value.
        """
        flat = dict(self.overall)
        metric_columns = [c for c in self.by_slice.columns if c not in ("slice", "value")]
        for record in self.by_slice.to_dict("records"):
            value = _METRIC_KEY_UNSAFE.sub("_", str(record["value"]))
            for column in metric_columns:
                flat[f"{record['slice']}.{value}.{column}"] = float(record[column])
        return flat


def metric_names(top_k_percents: list[float] | tuple[float, ...]) -> list[str]:
    """The metrics ``evaluate`` reports, in order."""
    names = ["roc_auc", "pr_auc", "log_loss", "brier"]
    for k in top_k_percents:
        names += [f"precision_at_{k:g}", f"lift_at_{k:g}"]
    return names


def _all_metrics(
    y: FloatArray,
    s: FloatArray,
    top_k_percents: list[float] | tuple[float, ...],
    probabilities: bool,
) -> dict[str, float]:
    ranked = _Ranked.of(y, s)
    ones = np.ones((1, y.size))
    positives = float(y.sum())
    result = {"n": float(y.size), "positives": positives, "base_rate": positives / y.size}
    for name in metric_names(top_k_percents):
        if name in _LOWER_IS_BETTER and not probabilities:
            result[name] = math.nan
        else:
            result[name] = float(_metric_on_weights(name, y, s, ranked, ones)[0])
    return result


def evaluate(
    y_true: npt.ArrayLike,
    score: npt.ArrayLike,
    slices: Mapping[str, npt.ArrayLike] | None = None,
    *,
    top_k_percents: list[float] | tuple[float, ...],
    min_slice_positives: int,
    probabilities: bool = True,
) -> Evaluation:
    """All metrics overall and per value of each slice (e.g. ``{"gender": ...}``).

    A slice value with fewer than ``min_slice_positives`` positives or negatives gets NaN
    metrics (its n and positives are still reported): a metric on a handful of positives
    is noise, and one thin slice must not fail a whole evaluation. NULL slice values form
    their own slice value, ``NULL``. ``probabilities=False`` marks scores that are only
    rankings: their log loss and Brier are NaN.
    """
    y, s = _labels_and_scores(y_true, score)
    overall = _all_metrics(y, s, top_k_percents, probabilities)
    names = metric_names(top_k_percents)
    rows: list[dict[str, Any]] = []
    for slice_name, values in (slices or {}).items():
        keys = pd.Series(np.asarray(values, dtype=object).ravel(), dtype=object)
        if len(keys) != y.size:
            raise ValueError(f"slice {slice_name!r} has {len(keys)} values for {y.size} examples")
        keys = keys.where(keys.notna(), _NULL_SLICE).astype(str)
        for value, index in sorted(keys.groupby(keys).indices.items()):
            y_part, s_part = y[index], s[index]
            positives = int(y_part.sum())
            row: dict[str, Any] = {
                "slice": slice_name,
                "value": value,
                "n": float(y_part.size),
                "positives": float(positives),
            }
            if min(positives, y_part.size - positives) < max(min_slice_positives, 1):
                row.update(dict.fromkeys(["base_rate", *names], math.nan))
            else:
                row.update(_all_metrics(y_part, s_part, top_k_percents, probabilities))
            rows.append(row)
    columns = ["slice", "value", "n", "positives", "base_rate", *names]
    return Evaluation(overall=overall, by_slice=pd.DataFrame(rows, columns=columns))


# ----------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class BootstrapDifference:
    """``metric(a) - metric(b)`` on the data and its paired-bootstrap interval."""

    metric: str
    difference: float
    bootstrap_mean: float
    lower: float
    upper: float
    confidence_level: float
    n_boot: int
    # Resamples where the metric was undefined (e.g. no positive drawn) and left out.
    undefined_resamples: int

    @property
    def higher_is_better(self) -> bool:
        return higher_is_better(self.metric)

    @property
    def a_is_better(self) -> bool:
        """True when the whole interval lies on the side where ``a`` beats ``b``."""
        return self.lower > 0 if self.higher_is_better else self.upper < 0

    @property
    def excludes_zero(self) -> bool:
        return self.lower > 0 or self.upper < 0


def paired_bootstrap_difference(
    y_true: npt.ArrayLike,
    score_a: npt.ArrayLike,
    score_b: npt.ArrayLike,
    metric: str,
    n_boot: int,
    seed: int,
    confidence_level: float,
) -> BootstrapDifference:
    """Paired bootstrap of ``metric(a) - metric(b)`` with a percentile interval.

    Both scorers are measured on the same resamples, so the interval reflects the
    difference between them rather than the (much larger) noise of each metric alone;
    this is what a promotion gate needs. Resamples are drawn as per-row counts and fed
    to the weighted metric kernels, so nothing is re-sorted per resample.
    """
    y, a = _labels_and_scores(y_true, score_a)
    _, b = _labels_and_scores(y_true, score_b)
    if a.size != b.size:
        raise ValueError("score_a and score_b must have the same length")
    if n_boot < 1:
        raise ValueError("n_boot must be at least 1")
    if not 0 < confidence_level < 1:
        raise ValueError("confidence_level must be between 0 and 1")
    n = y.size
    ranked_a, ranked_b = _Ranked.of(y, a), _Ranked.of(y, b)
    ones = np.ones((1, n))
    observed = float(
        _metric_on_weights(metric, y, a, ranked_a, ones)[0]
        - _metric_on_weights(metric, y, b, ranked_b, ones)[0]
    )
    rng = np.random.default_rng(seed)
    chunk = max(1, _BOOTSTRAP_CHUNK_CELLS // n)
    differences: list[FloatArray] = []
    for first in range(0, n_boot, chunk):
        size = min(chunk, n_boot - first)
        draws = rng.integers(0, n, size=(size, n)) + (np.arange(size) * n)[:, None]
        weights = np.bincount(draws.ravel(), minlength=size * n).reshape(size, n).astype(np.float64)
        differences.append(
            _metric_on_weights(metric, y, a, ranked_a, weights)
            - _metric_on_weights(metric, y, b, ranked_b, weights)
        )
    all_differences = np.concatenate(differences)
    defined = all_differences[np.isfinite(all_differences)]
    if defined.size == 0:
        raise ValueError(f"{metric} is undefined on every bootstrap resample")
    tail = (1.0 - confidence_level) / 2.0
    lower, upper = np.quantile(defined, [tail, 1.0 - tail])
    return BootstrapDifference(
        metric=metric,
        difference=observed,
        bootstrap_mean=float(defined.mean()),
        lower=float(lower),
        upper=float(upper),
        confidence_level=confidence_level,
        n_boot=n_boot,
        undefined_resamples=int(all_differences.size - defined.size),
    )
