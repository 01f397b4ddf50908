"""Metrics on (y_true, score): ranking, probability quality, lift, calibration, slices.

Kept whole: one job, the metrics of one evaluation; Evaluation, missing_reason and
slice_comparison read the same metric names, orientations and NaN rules defined here.

Marketing mails the top of the list, so beyond ROC-AUC what matters is precision and lift
in the top k% and, because scores are published as probabilities, log loss, Brier and
calibration. ROC-AUC, PR-AUC (average precision), log loss and Brier are scikit-learn's;
precision and lift in the top k% (ties counted fractionally) come from
``ml.weighted_metrics``, which the paired bootstrap (``ml.bootstrap``) shares.

Scores that are not probabilities (e.g. the prior-share rule) have ranking metrics but no
log loss or Brier: ``evaluate(..., probabilities=False)`` reports those as NaN rather than
punishing a rule for a scale it never claimed. NaN says nothing to a reader: the
``readable_*`` methods of ``Evaluation`` and ``missing_reason`` show each missing value as
``n/a: <why>`` (not probabilities, one class only, too few positives in a slice).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn import metrics as sklearn_metrics  # type: ignore[import-untyped]

from ml.slices import NULL_SLICE
from ml.weighted_metrics import LOWER_IS_BETTER, TieGroups, weighted_metric

FloatArray = npt.NDArray[np.float64]

# What a metric that has no value shows in place of NaN, before its reason.
NOT_AVAILABLE = "n/a"
_METRIC_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9_\-. /]")


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


# ------------------------------------------------------------------ public metrics


def roc_auc(y_true: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """Probability that a random positive outscores a random negative (ties count half);
    NaN without both classes.

    >>> from ml.metrics import roc_auc
    >>> roc_auc([1, 0, 1, 0], [0.8, 0.4, 0.35, 0.1])
    0.75
    """
    y, s = _labels_and_scores(y_true, score)
    has_both_classes = 0 < y.sum() < y.size
    return float(sklearn_metrics.roc_auc_score(y, s)) if has_both_classes else math.nan


def expected_roc_auc(
    probability: npt.ArrayLike, score: npt.ArrayLike, strata: npt.ArrayLike | None = None
) -> float:
    """ROC-AUC expected under true probabilities, with the noise of realised labels removed.

    Each row is a positive with probability ``probability`` (e.g. the simulator's
    truth), independently: the expected number of correctly ordered positive/negative
    pairs over the expected number of such pairs (ties count half; a row is never paired
    with itself). It ranks scorers far more stably than the AUC of one draw of labels.

    >>> from ml.metrics import expected_roc_auc
    >>> expected_roc_auc([1.0, 0.0, 1.0, 0.0], [0.8, 0.4, 0.35, 0.1])
    0.75
    >>> round(expected_roc_auc([0.9, 0.1], [0.9, 0.1]), 4), round(expected_roc_auc([0.9, 0.1], [0.1, 0.9]), 4)
    (0.9878, 0.0122)

    With ``strata`` only pairs within one stratum count (as ``metric_value``'s).
    """
    p = np.asarray(probability, dtype=np.float64).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if p.shape != s.shape or p.size == 0:
        raise ValueError(f"probability has {p.size} values but score has {s.size}")
    if not (np.isfinite(s).all() and ((p >= 0) & (p <= 1)).all()):
        raise ValueError("probability must lie in [0, 1] and scores must be finite")
    if strata is None:
        concordant, pairs = _expected_pairs(p, s)
    else:
        keys = np.asarray(strata).ravel()
        if keys.size != s.size:
            raise ValueError(f"strata has {keys.size} keys for {s.size} rows")
        codes = np.unique(keys, return_inverse=True)[1].ravel()
        sums = np.array(
            [_expected_pairs(p[codes == c], s[codes == c]) for c in range(codes.max() + 1)]
        )
        concordant, pairs = float(sums[:, 0].sum()), float(sums[:, 1].sum())
    return concordant / pairs if pairs > 0 else math.nan


def _expected_pairs(p: FloatArray, s: FloatArray) -> tuple[float, float]:
    """Expected correctly ordered positive/negative pairs, and expected pairs."""
    order = np.argsort(s, kind="stable")
    s_sorted, pos, neg = s[order], p[order], 1.0 - p[order]
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    group_pos = np.add.reduceat(pos, starts)
    group_neg = np.add.reduceat(neg, starts)
    group_self = np.add.reduceat(pos * neg, starts)
    below_neg = np.cumsum(group_neg) - group_neg
    concordant = float(np.sum(group_pos * below_neg + 0.5 * (group_pos * group_neg - group_self)))
    pairs = float(pos.sum() * neg.sum() - np.sum(pos * neg))
    return concordant, pairs


def average_precision(y_true: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """PR-AUC as average precision (scikit-learn's, whole tie groups); NaN without positives.

    >>> from ml.metrics import average_precision
    >>> round(average_precision([1, 0, 1], [0.9, 0.8, 0.7]), 4)  # (1/1 + 2/3) / 2
    0.8333
    """
    y, s = _labels_and_scores(y_true, score)
    return float(sklearn_metrics.average_precision_score(y, s)) if y.any() else math.nan


def log_loss(y_true: npt.ArrayLike, probability: npt.ArrayLike) -> float:
    """Mean negative log-likelihood; only meaningful when scores are probabilities.

    >>> from ml.metrics import log_loss
    >>> round(log_loss([1, 0], [0.8, 0.2]), 4)  # -ln 0.8
    0.2231
    """
    y, p = _labels_and_scores(y_true, probability)
    return float(sklearn_metrics.log_loss(y, p, labels=[0.0, 1.0]))


def brier_score(y_true: npt.ArrayLike, probability: npt.ArrayLike) -> float:
    """Mean squared error of probabilities; only meaningful for probabilities.

    >>> from ml.metrics import brier_score
    >>> round(brier_score([1, 0], [0.8, 0.2]), 4)
    0.04
    """
    y, p = _labels_and_scores(y_true, probability)
    return float(sklearn_metrics.brier_score_loss(y, p, pos_label=1.0))


_LIBRARY_METRICS: dict[str, Callable[[npt.ArrayLike, npt.ArrayLike], float]] = {
    "roc_auc": roc_auc,
    "pr_auc": average_precision,
    "log_loss": log_loss,
    "brier": brier_score,
}


def higher_is_better(metric: str) -> bool:
    """False for the losses (log loss, Brier), True for every other metric.

    >>> from ml.metrics import higher_is_better
    >>> higher_is_better("roc_auc"), higher_is_better("log_loss")
    (True, False)
    """
    return metric not in LOWER_IS_BETTER


def metric_value(
    metric: str,
    y_true: npt.ArrayLike,
    score: npt.ArrayLike,
    strata: npt.ArrayLike | None = None,
) -> float:
    """Any metric by its name in `metric_names` (e.g. "roc_auc", "lift_at_10"). With
    ``strata`` (one key per row, e.g. the backtest fold) ranking metrics compare rows
    only within a stratum (``ml.weighted_metrics``); losses are per row either way.

    >>> from ml.metrics import metric_value
    >>> metric_value("lift_at_50", [1, 0, 0, 0], [0.9, 0.1, 0.2, 0.3])
    2.0
    >>> y, s = [1, 0, 1, 0], [0.9, 0.8, 0.2, 0.1]  # two strata, each ranked perfectly
    >>> metric_value("roc_auc", y, s), metric_value("roc_auc", y, s, strata=[1, 1, 2, 2])
    (0.75, 1.0)
    """
    library_metric = _LIBRARY_METRICS.get(metric)
    if library_metric is not None and (strata is None or metric in LOWER_IS_BETTER):
        return library_metric(y_true, score)
    y, s = _labels_and_scores(y_true, score)
    groups = TieGroups.of(y, s, strata)
    return float(weighted_metric(metric, y, s, groups, np.ones((1, y.size)))[0])


def precision_at_top(y_true: npt.ArrayLike, score: npt.ArrayLike, k_percent: float) -> float:
    """Share of positives among the top ``k_percent`` % of scores (ties fractional).

    >>> from ml.metrics import precision_at_top
    >>> precision_at_top([1, 0, 1, 0], [0.9, 0.5, 0.5, 0.1], 50)  # 1 + half of a tied pair
    0.75
    """
    return metric_value(f"precision_at_{k_percent:g}", y_true, score)


def lift_at_top(y_true: npt.ArrayLike, score: npt.ArrayLike, k_percent: float) -> float:
    """Precision in the top ``k_percent`` % divided by the overall positive rate.

    >>> from ml.metrics import lift_at_top
    >>> lift_at_top([1, 0, 1, 0], [0.9, 0.5, 0.5, 0.1], 50)
    1.5
    """
    return metric_value(f"lift_at_{k_percent:g}", y_true, score)


def calibration_table(y_true: npt.ArrayLike, score: npt.ArrayLike, bins: int) -> pd.DataFrame:
    """Equal-count score bins (lowest first): count, mean score, observed positive rate.

    Rows are binned by their average rank, so equal scores always share a bin and the
    table does not depend on row order; with heavy ties some bins are empty and omitted.
    Not scikit-learn's ``calibration_curve(strategy="quantile")``: its percentile edges
    cut tied scores into other bins than this, and it reports neither counts nor ranges.

    >>> from ml.metrics import calibration_table
    >>> calibration_table([0, 0, 1, 0, 1, 1], [0.1, 0.2, 0.3, 0.6, 0.7, 0.9], bins=2)
       bin  count  mean_score  observed_rate  min_score  max_score
    0    1      3    0.200000       0.333333        0.1        0.3
    1    2      3    0.733333       0.666667        0.6        0.9
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
    """Overall metrics and the same metrics per slice value (what ``evaluate`` returns).

    >>> from ml.metrics import evaluate
    >>> result = evaluate(
    ...     [1, 0, 1, 0, 1, 0],
    ...     [0.9, 0.2, 0.8, 0.3, 0.4, 0.6],
    ...     {"city": ["Val-d'Or", "Val-d'Or", "Val-d'Or", "Val-d'Or", "Oslo", "Oslo"]},
    ...     top_k_percents=[50],
    ...     min_slice_positives=1,
    ... )
    >>> result.by_slice[["slice", "value", "n", "roc_auc"]]
      slice     value    n  roc_auc
    0  city      Oslo  2.0      0.0
    1  city  Val-d'Or  4.0      1.0
    >>> result.flat()["city.Val-d_Or.roc_auc"]
    1.0
    """

    overall: dict[str, float]
    # One row per (slice, value): columns slice, value, n, positives, then the metrics.
    by_slice: pd.DataFrame
    # How it was measured, so that a missing value can say why (``readable_*``).
    probabilities: bool = True
    min_slice_positives: int = 1

    def readable_overall(self, digits: int = 4) -> dict[str, str]:
        """The overall metrics as text: numbers rounded, counts with thousands
        separators, and a metric without a value as ``n/a: <why>`` (``missing_reason``).

        >>> from ml.metrics import evaluate
        >>> result = evaluate([0, 1, 0, 1], [1.0, 7.0, 2.0, 9.0], top_k_percents=[50],
        ...                   min_slice_positives=1, probabilities=False)
        >>> text = result.readable_overall()
        >>> text["n"], text["roc_auc"], text["log_loss"]
        ('4', '1.0000', 'n/a: scores are not probabilities')
        """
        n, positives = self.overall["n"], self.overall["positives"]
        return {
            name: _readable(
                name, value, missing_reason(name, n, positives, self.probabilities), digits
            )
            for name, value in self.overall.items()
        }

    def readable_by_slice(
        self,
        label: Callable[[str, str], str] | None = None,
        digits: int = 4,
        *,
        note: bool = True,
    ) -> pd.DataFrame:
        """``by_slice`` as text, one row per slice value: ``slice`` names it as people read
        it (``label(slice, value)``, e.g. ``ml.slices.slice_labeller``; ``slice = value``
        by default), then n, positives and every metric, a missing one as ``n/a: <why>``.
        With ``note``, a row whose every metric is missing for one reason (a thin slice)
        shows ``n/a`` in its cells and the reason once, in a last column ``note``.

        >>> from ml.metrics import evaluate
        >>> result = evaluate(
        ...     [1, 0, 1, 0, 1, 0, 0],
        ...     [0.9, 0.2, 0.8, 0.3, 0.4, 0.6, 0.1],
        ...     {"city": ["Oslo", "Oslo", "Oslo", "Oslo", "Lima", "Lima", "Lima"]},
        ...     top_k_percents=[50],
        ...     min_slice_positives=2,
        ... )
        >>> table = result.readable_by_slice(note=False)
        >>> table[["slice", "n", "positives", "roc_auc"]].to_dict("records")[0]
        {'slice': 'city = Lima', 'n': '3', 'positives': '1', 'roc_auc': 'n/a: fewer than 2 positives (1)'}
        >>> table.loc[1, "roc_auc"]
        '1.0000'
        >>> result.readable_by_slice()[["slice", "roc_auc", "note"]].to_dict("records")
        [{'slice': 'city = Lima', 'roc_auc': 'n/a', 'note': 'n/a: fewer than 2 positives (1)'}, {'slice': 'city = Oslo', 'roc_auc': '1.0000', 'note': ''}]
        """
        name = label or (lambda column, value: f"{column} = {value}")
        metric_columns = [c for c in self.by_slice.columns if c not in _SLICE_KEYS]
        rows = []
        for record in self.by_slice.to_dict("records"):
            n, positives = float(record["n"]), float(record["positives"])
            row = {"slice": name(str(record["slice"]), str(record["value"]))}
            for column in metric_columns:
                why = missing_reason(
                    column, n, positives, self.probabilities, self.min_slice_positives
                )
                row[column] = _readable(column, float(record[column]), why, digits)
            rows.append(row)
        table = pd.DataFrame(rows, columns=["slice", *metric_columns])
        if not note:
            return table
        return _shared_reason_as_note(table, [c for c in metric_columns if c not in _COUNTS])

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


_SLICE_KEYS = ("slice", "value")
_COUNTS = ("n", "positives")
_NEEDS_POSITIVES = re.compile(r"pr_auc|precision_at_.*|lift_at_.*")


def missing_reason(
    metric: str,
    n: float,
    positives: float,
    probabilities: bool = True,
    min_slice_positives: int | None = None,
) -> str:
    """Why ``metric`` has no value on ``n`` rows holding ``positives`` positives, as
    ``evaluate`` measures them; "" when it has one.

    ``min_slice_positives`` is given for a slice value: ``evaluate`` leaves every metric
    of a slice value with fewer positives or negatives than that empty.

    >>> from ml.metrics import missing_reason
    >>> missing_reason("roc_auc", n=50, positives=0)
    'n/a: only one class (no positives)'
    >>> missing_reason("lift_at_10", n=50, positives=0), missing_reason("brier", n=50, positives=0)
    ('n/a: no positives', '')
    >>> missing_reason("log_loss", n=50, positives=9, probabilities=False)
    'n/a: scores are not probabilities'
    >>> missing_reason("roc_auc", n=500, positives=12, min_slice_positives=30)
    'n/a: fewer than 30 positives (12)'
    >>> missing_reason("base_rate", n=40, positives=38, min_slice_positives=30)
    'n/a: fewer than 30 negatives (2)'
    """
    negatives = n - positives
    one_class = ""
    if positives <= 0 or negatives <= 0:
        missing = "no positives" if positives <= 0 else "no negatives"
        one_class = f"{NOT_AVAILABLE}: only one class ({missing})"
    if metric in _COUNTS:
        return ""
    if min_slice_positives is not None:
        least = max(min_slice_positives, 1)
        if one_class:
            return one_class
        if positives < least:
            return f"{NOT_AVAILABLE}: fewer than {least} positives ({positives:,.0f})"
        if negatives < least:
            return f"{NOT_AVAILABLE}: fewer than {least} negatives ({negatives:,.0f})"
    if metric in LOWER_IS_BETTER and not probabilities:
        return f"{NOT_AVAILABLE}: scores are not probabilities"
    if metric == "roc_auc" and one_class:
        return one_class
    if _NEEDS_POSITIVES.fullmatch(metric) and positives <= 0:
        return f"{NOT_AVAILABLE}: no positives"
    return ""


def _shared_reason_as_note(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Rows whose ``columns`` all hold the same ``n/a: <why>``: ``n/a`` in each, the reason
    once in a new last column ``note`` ("" in other rows)."""
    out = table.copy()
    notes = []
    for index, cells in out[columns].iterrows():
        values = set(cells.tolist())
        reason = values.pop() if len(values) == 1 else ""
        if columns and reason.startswith(f"{NOT_AVAILABLE}: "):
            out.loc[index, columns] = NOT_AVAILABLE
            notes.append(reason)
        else:
            notes.append("")
    out["note"] = notes
    return out


def _readable(metric: str, value: float, reason: str, digits: int) -> str:
    if not math.isfinite(value):
        return reason or NOT_AVAILABLE
    if metric in _COUNTS:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def slice_comparison(
    evaluations: Mapping[str, Evaluation],
    metric: str,
    label: Callable[[str, str], str] | None = None,
    digits: int = 4,
) -> pd.DataFrame:
    """One metric per slice value for several scorers measured on the same rows (the
    first one's n and positives), as text: who each scorer works for. A slice value too
    thin for every scorer shows ``n/a`` and the reason once, in ``note``.

    >>> from ml.metrics import evaluate, slice_comparison
    >>> y, slices = [1, 0, 1, 0], {"gender": ["F", "F", "M", "M"]}
    >>> evaluations = {
    ...     name: evaluate(y, score, slices, top_k_percents=[50], min_slice_positives=1)
    ...     for name, score in {"model": [0.9, 0.1, 0.8, 0.2], "rule": [0.5] * 4}.items()
    ... }
    >>> slice_comparison(evaluations, "roc_auc").to_dict("records")[0]
    {'slice': 'gender = F', 'n': '2', 'positives': '1', 'model': '1.0000', 'rule': '0.5000', 'note': ''}
    """
    if not evaluations:
        return pd.DataFrame(columns=["slice", *_COUNTS, "note"])
    readable = {
        name: evaluation.readable_by_slice(label, digits, note=False)
        for name, evaluation in evaluations.items()
    }
    first = next(iter(readable.values()))
    table = first[["slice", *_COUNTS]].copy()
    for name, frame in readable.items():
        table[name] = frame[metric].to_numpy() if metric in frame else NOT_AVAILABLE
    return _shared_reason_as_note(table, list(readable))


def metric_names(top_k_percents: list[float] | tuple[float, ...]) -> list[str]:
    """The metrics ``evaluate`` reports, in order.

    >>> from ml.metrics import metric_names
    >>> metric_names([10])
    ['roc_auc', 'pr_auc', 'log_loss', 'brier', 'precision_at_10', 'lift_at_10']
    """
    names = ["roc_auc", "pr_auc", "log_loss", "brier"]
    for k in top_k_percents:
        names += [f"precision_at_{k:g}", f"lift_at_{k:g}"]
    return names


def _all_metrics(
    y: FloatArray,
    s: FloatArray,
    names: list[str],
    probabilities: bool,
    strata: npt.NDArray[Any] | None,
) -> dict[str, float]:
    positives = float(y.sum())
    result = {"n": float(y.size), "positives": positives, "base_rate": positives / y.size}
    for name in names:
        if name in LOWER_IS_BETTER and not probabilities:
            result[name] = math.nan
        else:
            result[name] = metric_value(name, y, s, strata)
    return result


def evaluate(
    y_true: npt.ArrayLike,
    score: npt.ArrayLike,
    slices: Mapping[str, npt.ArrayLike] | None = None,
    *,
    top_k_percents: list[float] | tuple[float, ...],
    min_slice_positives: int,
    probabilities: bool = True,
    strata: npt.ArrayLike | None = None,
) -> Evaluation:
    """All metrics overall and per value of each slice (e.g. ``{"gender": ...}``).

    A slice value with fewer than ``min_slice_positives`` positives or negatives gets NaN
    metrics (its n and positives are still reported): a metric on a handful of positives
    is noise, and one thin slice must not fail a whole evaluation. NULL slice values form
    their own slice value, ``NULL``. ``probabilities=False`` marks scores that are only
    rankings: their log loss and Brier are NaN. ``strata`` (e.g. the backtest fold of
    each row) makes ranking metrics compare rows only within a stratum (``metric_value``).

    >>> from ml.metrics import evaluate
    >>> result = evaluate(
    ...     [0, 1, 0, 1],
    ...     [1.0, 7.0, 2.0, 9.0],
    ...     {"gender": ["F", "F", None, None]},
    ...     top_k_percents=[50],
    ...     min_slice_positives=1,
    ...     probabilities=False,
    ... )
    >>> result.overall["roc_auc"], result.overall["lift_at_50"], result.overall["log_loss"]
    (1.0, 2.0, nan)
    >>> result.by_slice["value"].tolist()
    ['F', 'NULL']
    """
    y, s = _labels_and_scores(y_true, score)
    stratum = None if strata is None else np.asarray(strata).ravel()
    if stratum is not None and stratum.size != y.size:
        raise ValueError(f"strata has {stratum.size} keys for {y.size} examples")
    names = metric_names(top_k_percents)
    overall = _all_metrics(y, s, names, probabilities, stratum)
    rows: list[dict[str, Any]] = []
    for slice_name, values in (slices or {}).items():
        keys = pd.Series(np.asarray(values, dtype=object).ravel(), dtype=object)
        if len(keys) != y.size:
            raise ValueError(f"slice {slice_name!r} has {len(keys)} values for {y.size} examples")
        keys = keys.where(keys.notna(), NULL_SLICE).astype(str)
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
                part_strata = None if stratum is None else stratum[index]
                row.update(_all_metrics(y_part, s_part, names, probabilities, part_strata))
            rows.append(row)
    columns = ["slice", "value", "n", "positives", "base_rate", *names]
    return Evaluation(
        overall=overall,
        by_slice=pd.DataFrame(rows, columns=columns),
        probabilities=probabilities,
        min_slice_positives=min_slice_positives,
    )
